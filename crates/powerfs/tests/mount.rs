//! The FUSE server end to end: mount, ordinary file operations (incl. O_DIRECT, as glommio's
//! DmaFile uses), a cut that keeps exactly what was synced, clean unmount on `quit`.
//! Needs /dev/fuse and root; a missing /dev/fuse fails (never skips) with a message.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn request(control: &Path, line: &str) -> String {
    let mut s = UnixStream::connect(control).expect("connect control socket");
    writeln!(s, "{line}").unwrap();
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer).unwrap();
    answer.trim().to_string()
}

fn mounted(mp: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(&*mp.to_string_lossy()))
}

fn sync_dir(dir: &Path) {
    std::fs::File::open(dir).unwrap().sync_all().unwrap();
}

#[test]
fn cut_keeps_exactly_what_was_synced() {
    assert!(
        Path::new("/dev/fuse").exists(),
        "this test needs /dev/fuse (modprobe fuse, or --device /dev/fuse for a container)"
    );
    let base = std::env::temp_dir().join(format!("shoal-powerfs-mount-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let mp: PathBuf = base.join("mnt");
    std::fs::create_dir_all(&mp).unwrap();
    let control = base.join("control.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal-powerfs"))
        .arg(&mp)
        .arg("--control")
        .arg(&control)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("mounted"), "{line}");
    let mp = std::fs::canonicalize(&mp).unwrap();
    assert!(mounted(&mp));

    // Synced file, synced entry.
    let mut a = std::fs::File::create(mp.join("a")).unwrap();
    a.write_all(b"kept").unwrap();
    a.sync_data().unwrap();
    std::fs::create_dir(mp.join("d")).unwrap();
    // O_DIRECT (aligned) write, then synced.
    let mut direct = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .custom_flags(libc::O_DIRECT)
        .open(mp.join("direct"))
        .unwrap();
    let aligned = vec![7u8; 4096];
    direct.write_all(&aligned).unwrap();
    direct.sync_all().unwrap();
    sync_dir(&mp);
    // Unsynced: a file's data, a new entry in d (d not synced), a new file, a rename.
    a.write_all(b" and lost").unwrap();
    let mut f = std::fs::File::create(mp.join("d/f")).unwrap();
    f.write_all(b"x").unwrap();
    f.sync_all().unwrap();
    std::fs::write(mp.join("b"), b"never synced").unwrap();
    std::fs::rename(mp.join("direct"), mp.join("renamed")).unwrap();
    drop((a, f, direct));

    let answer = request(&control, "cut");
    assert!(answer.starts_with("ok"), "{answer}");
    let mut kept = String::new();
    std::fs::File::open(mp.join("a"))
        .unwrap()
        .read_to_string(&mut kept)
        .unwrap();
    assert_eq!(kept, "kept");
    assert!(mp.join("d").is_dir());
    assert!(
        !mp.join("d/f").exists(),
        "entry of an unsynced directory survived"
    );
    assert!(!mp.join("b").exists());
    assert!(!mp.join("renamed").exists(), "unsynced rename survived");
    assert_eq!(std::fs::read(mp.join("direct")).unwrap(), aligned);

    // Powered off: every operation fails until power-on.
    assert!(request(&control, "poweroff").starts_with("ok"));
    assert!(std::fs::write(mp.join("c"), b"x").is_err());
    assert_eq!(request(&control, "poweron"), "ok");
    std::fs::write(mp.join("c"), b"x").unwrap();

    assert_eq!(request(&control, "quit"), "ok");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "shoal-powerfs did not exit on quit"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!mounted(&mp), "still mounted after quit");
    let _ = std::fs::remove_dir_all(&base);
}
