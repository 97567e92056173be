//! A `shoal-powerfs` mount for power-cut tests (crates/powerfs): a FUSE file system that keeps
//! written data in memory and makes it durable only on fsync (directory entries on an fsync
//! of the directory). `power_off()` drops everything not durable and fails every later
//! operation with EIO, `power_on()` remounts the durable state at the same path once the users
//! are dead; `cut()` is both at once, for when the users are already dead.
//!
//! Needs `/dev/fuse` and root (the mount is made with mount(2); `fuse3` provides fusermount3 for
//! everything else): a missing device fails the test with a message, never skips it.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::repo_root;

/// Bound for mounting, a cut (unmount + remount) and unmounting.
const POWERFS_WAIT: Duration = Duration::from_secs(30);

/// What a cut threw away, as the file system reported it.
#[derive(Clone, Debug, Default)]
pub struct CutReport {
    pub line: String,
    pub files_reverted: u64,
    pub bytes_dropped: u64,
    pub dirs_reverted: u64,
    pub inodes_dropped: u64,
    pub torn_writes: u64,
}

impl CutReport {
    fn parse(line: &str) -> CutReport {
        let mut r = CutReport {
            line: line.to_string(),
            ..CutReport::default()
        };
        for word in line.split_whitespace() {
            let Some((k, v)) = word.split_once('=') else {
                continue;
            };
            let v: u64 = v.parse().unwrap_or(0);
            match k {
                "files_reverted" => r.files_reverted = v,
                "bytes_dropped" => r.bytes_dropped = v,
                "dirs_reverted" => r.dirs_reverted = v,
                "inodes_dropped" => r.inodes_dropped = v,
                "torn_writes" => r.torn_writes = v,
                _ => {}
            }
        }
        r
    }
}

/// The `shoal-powerfs` binary: `$SHOAL_POWERFS_BIN`, else the workspace build beside this test
/// binary (`cargo test --workspace` builds it), else a build of it into a target dir of its
/// own (a nested cargo on the main target dir would wait for the outer one's lock).
pub fn powerfs_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SHOAL_POWERFS_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/PROFILE");
    let sibling = profile_dir.join("shoal-powerfs");
    let crate_dir = repo_root().join("crates/powerfs");
    if sibling.exists() && newer_than_sources(&sibling, &crate_dir) {
        return sibling;
    }
    let target = profile_dir.join("powerfs-build");
    eprintln!(
        "powerfs: {} missing or older than crates/powerfs: building it into {}",
        sibling.display(),
        target.display()
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "shoal-powerfs",
            "--target-dir",
        ])
        .arg(&target)
        .current_dir(repo_root())
        .status()
        .unwrap_or_else(|e| panic!("run {cargo:?} to build shoal-powerfs: {e}"));
    assert!(
        status.success(),
        "building shoal-powerfs failed ({status}); build it with `cargo build --release -p shoal-powerfs`"
    );
    target.join("release/shoal-powerfs")
}

fn newer_than_sources(bin: &Path, crate_dir: &Path) -> bool {
    let Ok(built) = std::fs::metadata(bin).and_then(|m| m.modified()) else {
        return false;
    };
    // What the binary is built from (cargo relinks it when these change; not tests/).
    let mut newest = std::fs::metadata(crate_dir.join("Cargo.toml"))
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut stack = vec![crate_dir.join("src")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                newest = newest.max(t);
            }
        }
    }
    built >= newest
}

/// Fails the test (never skips it) when FUSE cannot work here.
pub fn require_fuse() {
    assert!(
        Path::new("/dev/fuse").exists(),
        "power-cut tests need /dev/fuse, which does not exist here: load the module \
         (`modprobe fuse`), or give the container the device (`--device /dev/fuse \
         --cap-add SYS_ADMIN`); scripts/install-deps installs the fuse3 package"
    );
}

/// A mounted `shoal-powerfs`. Unmounts (and stops the server) on drop.
pub struct PowerFs {
    child: Option<Child>,
    dir: tempfile::TempDir,
    mountpoint: PathBuf,
    control: PathBuf,
}

impl PowerFs {
    pub fn mount() -> PowerFs {
        PowerFs::mount_with(Duration::ZERO)
    }

    /// Every fsync / fsyncdir takes `sync_delay` (a disk's flush latency) before completing.
    pub fn mount_with(sync_delay: Duration) -> PowerFs {
        require_fuse();
        let dir = tempfile::Builder::new()
            .prefix("shoal-powerfs-")
            .tempdir()
            .expect("temp dir");
        let mountpoint = dir.path().join("mnt");
        std::fs::create_dir(&mountpoint).unwrap();
        let control = dir.path().join("control.sock");
        let bin = powerfs_bin();
        let log = std::fs::File::create(dir.path().join("powerfs.log")).unwrap();
        let mut cmd = Command::new(&bin);
        cmd.arg(&mountpoint)
            .arg("--control")
            .arg(&control)
            .arg("--sync-delay-us")
            .arg(sync_delay.as_micros().to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // SAFETY: prctl in the forked child before exec; async-signal-safe. If the test
        // thread dies without dropping us, the server gets SIGTERM and unmounts.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let mut fs = PowerFs {
            child: Some(child),
            dir,
            mountpoint,
            control,
        };
        let deadline = Instant::now() + POWERFS_WAIT;
        loop {
            if let Some(status) = fs.child.as_mut().unwrap().try_wait().unwrap() {
                fs.child = None;
                panic!(
                    "shoal-powerfs exited while mounting ({status}):\n{}",
                    fs.log()
                );
            }
            if fs.log().contains("shoal-powerfs: mounted") && fs.request("ping").is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "shoal-powerfs did not mount within {POWERFS_WAIT:?}:\n{}",
                fs.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        fs
    }

    /// The mount point: everything below it lives in the model.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("powerfs.log")).unwrap_or_default()
    }

    fn request(&self, line: &str) -> std::io::Result<String> {
        let mut s = UnixStream::connect(&self.control)?;
        s.set_read_timeout(Some(POWERFS_WAIT))?;
        writeln!(s, "{line}")?;
        let mut answer = String::new();
        BufReader::new(s).read_line(&mut answer)?;
        Ok(answer.trim().to_string())
    }

    fn command(&self, line: &str) -> String {
        let answer = self
            .request(line)
            .unwrap_or_else(|e| panic!("shoal-powerfs `{line}`: {e}\n{}", self.log()));
        assert!(
            answer.starts_with("ok"),
            "shoal-powerfs `{line}`: {answer}\n{}",
            self.log()
        );
        answer
    }

    /// Power cut: drops everything not durable; the mount shows the durable state when this
    /// returns. Every process using the mount must be dead (the cut waits for the unmount).
    pub fn cut(&self) -> CutReport {
        CutReport::parse(&self.command("cut"))
    }

    /// Power cut that may keep, per file, a prefix of whole 512-byte sectors of its last
    /// unsynced write (chosen by `seed`).
    pub fn cut_torn(&self, seed: u64) -> CutReport {
        CutReport::parse(&self.command(&format!("cut tear {seed}")))
    }

    /// Power cut now, while processes still use the mount: everything not durable is dropped
    /// and every later operation fails with EIO (nothing written after this moment can be
    /// synced, so nothing acknowledged after it can be new). Kill the users, then `power_on`.
    pub fn power_off(&self) -> CutReport {
        CutReport::parse(&self.command("poweroff"))
    }

    /// `power_off`, keeping per file maybe a whole-sector prefix of its last unsynced write.
    pub fn power_off_torn(&self, seed: u64) -> CutReport {
        CutReport::parse(&self.command(&format!("poweroff tear {seed}")))
    }

    /// After `power_off` and once every process that used the mount is dead: remount the
    /// durable state.
    pub fn power_on(&self) {
        self.command("poweron");
    }

    pub fn stats(&self) -> String {
        self.command("stats")
    }

    /// fsync of a directory on the mount (e.g. after a test creates one).
    pub fn sync_dir(&self, dir: &Path) {
        std::fs::File::open(dir)
            .and_then(|f| f.sync_all())
            .unwrap_or_else(|e| panic!("fsync {}: {e}", dir.display()));
    }

    fn is_mounted(&self) -> bool {
        std::fs::read_to_string("/proc/self/mounts")
            .unwrap_or_default()
            .lines()
            .any(|l| l.split(' ').nth(1) == Some(&*self.mountpoint.to_string_lossy()))
    }
}

impl Drop for PowerFs {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = self.request("quit");
            let deadline = Instant::now() + POWERFS_WAIT;
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        if self.is_mounted() {
            // Never leave a mount behind (e.g. the server was killed): detach it.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&self.mountpoint)
                .status();
        }
        if std::thread::panicking() {
            eprintln!("--- shoal-powerfs log ---\n{}", self.log());
        }
    }
}
