//! `shoal-powerfs MOUNTPOINT --control SOCKET [--sync-delay-us N]`: serves the volatile-cache
//! model over FUSE; every fsync / fsyncdir takes N µs (a disk's flush latency) before it
//! completes.
//!
//! Control: one line per connection on the unix socket, one line back (`ok ...` or
//! `error ...`):
//! - `ping`: `ok`
//! - `poweroff` / `poweroff tear SEED`: power cut now, with the processes still running: drop
//!   everything not durable and answer every later request with EIO (so nothing written after
//!   the cut can be acknowledged as synced); answers with what was thrown away.
//! - `poweron`: after every process using the mount is dead: unmount (waits until no request
//!   can still arrive), mount the durable state again at the same place.
//! - `cut` / `cut tear SEED`: `poweroff` then `poweron` (processes must already be dead).
//! - `stats`: counters.
//! - `quit`: unmount and exit (also on SIGTERM / SIGINT / SIGHUP).
//!
//! Every open is FOPEN_DIRECT_IO (no kernel page cache, so O_DIRECT works and a cut is seen at
//! once) and every entry and attribute is answered with TTL 0.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use fuser::{
    FileAttr, FileType, Filesystem, KernelConfig, MountOption, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
};
use shoal_powerfs::{Attr, Kind, Model};

const TTL: Duration = Duration::ZERO;
const FOPEN_DIRECT_IO: u32 = 1;
/// How long a cut waits for the old mount's last requests (processes must be dead).
const UNMOUNT_WAIT: Duration = Duration::from_secs(20);

struct PowerFs {
    model: Arc<Mutex<Model>>,
    /// Time an fsync / fsyncdir takes before it completes (a disk's flush latency; widens the
    /// window in which a power cut finds written but unsynced data).
    sync_delay: Duration,
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: a.ino,
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: a.mtime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.ctime,
        kind: match a.kind {
            Kind::File => FileType::RegularFile,
            Kind::Dir => FileType::Directory,
        },
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

impl PowerFs {
    /// The model, or EIO while powered off (checked under the lock, so nothing that arrives
    /// after a power-off changes the model).
    fn m(&self) -> Result<std::sync::MutexGuard<'_, Model>, libc::c_int> {
        let m = self.model.lock().expect("model poisoned");
        if m.powered_off {
            return Err(libc::EIO);
        }
        Ok(m)
    }
}

/// The model for one request, or an EIO reply and return.
macro_rules! model {
    ($fs:expr, $reply:expr) => {
        match $fs.m() {
            Ok(m) => m,
            Err(e) => {
                $reply.error(e);
                return;
            }
        }
    };
}

impl Filesystem for PowerFs {
    fn init(&mut self, _req: &Request<'_>, _config: &mut KernelConfig) -> Result<(), libc::c_int> {
        Ok(())
    }

    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let m = model!(self, reply);
        match m.lookup(parent, name).and_then(|ino| m.attr(ino)) {
            Ok(a) => reply.entry(&TTL, &file_attr(&a), 0),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match model!(self, reply).attr(ino) {
            Ok(a) => reply.attr(&TTL, &file_attr(&a)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        let mut m = model!(self, reply);
        let result = (|| {
            if let Some(size) = size {
                m.truncate(ino, size)?;
            }
            if let Some(mode) = mode {
                m.set_perm(ino, (mode & 0o7777) as u16)?;
            }
            if uid.is_some() || gid.is_some() {
                m.set_owner(ino, uid, gid)?;
            }
            if let Some(t) = mtime {
                let t = match t {
                    TimeOrNow::SpecificTime(t) => t,
                    TimeOrNow::Now => SystemTime::now(),
                };
                m.set_mtime(ino, t)?;
            }
            m.attr(ino)
        })();
        match result {
            Ok(a) => reply.attr(&TTL, &file_attr(&a)),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(libc::EPERM);
        }
        let mut m = model!(self, reply);
        let perm = (mode & !umask & 0o7777) as u16;
        match m
            .create(parent, name, Kind::File, perm, req.uid(), req.gid())
            .and_then(|ino| m.attr(ino))
        {
            Ok(a) => reply.entry(&TTL, &file_attr(&a), 0),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut m = model!(self, reply);
        let perm = (mode & !umask & 0o7777) as u16;
        match m
            .create(parent, name, Kind::Dir, perm, req.uid(), req.gid())
            .and_then(|ino| m.attr(ino))
        {
            Ok(a) => reply.entry(&TTL, &file_attr(&a), 0),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        match model!(self, reply).unlink(parent, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        match model!(self, reply).rmdir(parent, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        match model!(self, reply).rename(parent, name, newparent, newname, flags) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        match model!(self, reply).attr(ino) {
            Ok(_) => reply.opened(0, FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        if offset < 0 {
            return reply.error(libc::EINVAL);
        }
        match model!(self, reply).read(ino, offset as u64, size as usize) {
            Ok(bytes) => reply.data(bytes),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        if offset < 0 {
            return reply.error(libc::EINVAL);
        }
        match model!(self, reply).write(ino, offset as u64, data) {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _lo: u64, reply: ReplyEmpty) {
        reply.ok() // close() makes nothing durable
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok()
    }

    fn fsync(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        std::thread::sleep(self.sync_delay);
        // fsync and fdatasync alike: data and the size needed to read it become durable.
        match model!(self, reply).fsync(ino) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        match model!(self, reply).attr(ino) {
            Ok(a) if a.kind == Kind::Dir => reply.opened(0, 0),
            Ok(_) => reply.error(libc::ENOTDIR),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        let m = model!(self, reply);
        let entries = match m.readdir(ino) {
            Ok(e) => e,
            Err(e) => return reply.error(e),
        };
        let mut all = vec![
            (ino, FileType::Directory, OsStr::new(".").to_os_string()),
            (
                m.parent_of(ino),
                FileType::Directory,
                OsStr::new("..").to_os_string(),
            ),
        ];
        for (name, child, kind) in entries {
            let t = match kind {
                Kind::File => FileType::RegularFile,
                Kind::Dir => FileType::Directory,
            };
            all.push((child, t, name));
        }
        for (i, (child, kind, name)) in all.into_iter().enumerate().skip(offset.max(0) as usize) {
            if reply.add(child, (i + 1) as i64, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _fh: u64,
        _flags: i32,
        reply: ReplyEmpty,
    ) {
        reply.ok()
    }

    fn fsyncdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        std::thread::sleep(self.sync_delay);
        match model!(self, reply).fsyncdir(ino) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        // 64 GiB, mostly free: an in-memory fs that never reports full.
        let blocks = 16 << 20;
        reply.statfs(
            blocks,
            blocks - 1024,
            blocks - 1024,
            1 << 20,
            1 << 20,
            4096,
            255,
            4096,
        );
    }

    fn access(&mut self, _req: &Request<'_>, ino: u64, _mask: i32, reply: ReplyEmpty) {
        match model!(self, reply).attr(ino) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut m = model!(self, reply);
        let perm = (mode & !umask & 0o7777) as u16;
        let ino = match m.lookup(parent, name) {
            Ok(_) if flags & libc::O_EXCL != 0 => return reply.error(libc::EEXIST),
            Ok(ino) => ino,
            Err(libc::ENOENT) => {
                match m.create(parent, name, Kind::File, perm, req.uid(), req.gid()) {
                    Ok(ino) => ino,
                    Err(e) => return reply.error(e),
                }
            }
            Err(e) => return reply.error(e),
        };
        if flags & libc::O_TRUNC != 0 {
            if let Err(e) = m.truncate(ino, 0) {
                return reply.error(e);
            }
        }
        match m.attr(ino) {
            Ok(a) => reply.created(&TTL, &file_attr(&a), 0, 0, FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        length: i64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if offset < 0 || length <= 0 {
            return reply.error(libc::EINVAL);
        }
        match model!(self, reply).fallocate(ino, offset as u64, length as u64, mode) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}

enum Command {
    Line(String, mpsc::Sender<String>),
    Quit,
}

fn mount(
    model: &Arc<Mutex<Model>>,
    mountpoint: &Path,
    sync_delay: Duration,
) -> std::io::Result<fuser::BackgroundSession> {
    let options = [
        MountOption::FSName("shoal-powerfs".into()),
        MountOption::Subtype("shoal-powerfs".into()),
        MountOption::RW,
        MountOption::NoAtime,
    ];
    let fs = PowerFs {
        model: model.clone(),
        sync_delay,
    };
    fuser::spawn_mount2(fs, mountpoint, &options)
}

/// Detaches the mount (MNT_DETACH: new lookups fail at once, open files keep the old
/// connection alive until closed).
fn detach(mountpoint: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(mountpoint.as_os_str().as_bytes()).expect("path without NUL");
    // SAFETY: umount2 on a valid C string.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        let e = std::io::Error::last_os_error();
        eprintln!(
            "shoal-powerfs: umount2({}, MNT_DETACH): {e}",
            mountpoint.display()
        );
    }
}

/// Unmounts lazily and waits until the session thread has seen the last request: after this,
/// nothing that used the old mount can still change the model.
fn unmount(session: fuser::BackgroundSession, mountpoint: &Path) -> Result<(), String> {
    detach(mountpoint);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        session.join();
        let _ = tx.send(());
    });
    rx.recv_timeout(UNMOUNT_WAIT).map_err(|_| {
        format!(
            "the old mount still has users after {UNMOUNT_WAIT:?} (is a process using it still alive?)"
        )
    })
}

/// After a power-off: unmount (waiting until nothing can still reach the model through the old
/// mount), accept requests again, mount at the same place.
fn power_on(
    model: &Arc<Mutex<Model>>,
    mountpoint: &Path,
    sync_delay: Duration,
    session: &mut Option<fuser::BackgroundSession>,
) -> Result<(), String> {
    unmount(session.take().expect("mounted"), mountpoint)?;
    model.lock().unwrap().powered_off = false;
    let s = mount(model, mountpoint, sync_delay).map_err(|e| format!("remount: {e}"))?;
    wait_mounted(mountpoint)?;
    *session = Some(s);
    Ok(())
}

fn is_mounted(mountpoint: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return false;
    };
    let want = mountpoint.to_string_lossy();
    mounts
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(&*want) && l.contains("shoal-powerfs"))
}

fn wait_mounted(mountpoint: &Path) -> Result<(), String> {
    for _ in 0..500 {
        if is_mounted(mountpoint) && std::fs::metadata(mountpoint).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(format!(
        "{} did not show up as mounted",
        mountpoint.display()
    ))
}

fn serve_control(listener: UnixListener, tx: mpsc::Sender<Command>) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut line = String::new();
        if BufReader::new(&stream).read_line(&mut line).is_err() {
            continue;
        }
        let (reply_tx, reply_rx) = mpsc::channel();
        if tx
            .send(Command::Line(line.trim().to_string(), reply_tx))
            .is_err()
        {
            return;
        }
        let reply = reply_rx
            .recv()
            .unwrap_or_else(|_| "error: server gone".into());
        let _ = writeln!(stream, "{reply}");
    }
}

/// Blocks the stop signals in every thread; one thread waits for them.
fn watch_signals(tx: mpsc::Sender<Command>) {
    // SAFETY: plain sigset manipulation on a local set, before other threads exist.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        std::thread::spawn(move || {
            let mut sig = 0;
            libc::sigwait(&set, &mut sig);
            let _ = tx.send(Command::Quit);
        });
    }
}

fn usage() -> ! {
    eprintln!("usage: shoal-powerfs MOUNTPOINT --control SOCKET [--sync-delay-us N]");
    std::process::exit(2);
}

fn main() {
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("warn,fuser::mnt=off"),
    )
    .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut mountpoint, mut control) = (None, None);
    let mut sync_delay = Duration::ZERO;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--sync-delay-us" => {
                let us: u64 = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage());
                sync_delay = Duration::from_micros(us);
            }
            "--control" => control = Some(PathBuf::from(it.next().unwrap_or_else(|| usage()))),
            "-h" | "--help" => usage(),
            _ if mountpoint.is_none() => mountpoint = Some(PathBuf::from(a)),
            _ => usage(),
        }
    }
    let (Some(mountpoint), Some(control)) = (mountpoint, control) else {
        usage()
    };
    let mountpoint = std::fs::canonicalize(&mountpoint).unwrap_or_else(|e| {
        eprintln!("shoal-powerfs: mount point {}: {e}", mountpoint.display());
        std::process::exit(1);
    });
    if !Path::new("/dev/fuse").exists() {
        eprintln!("shoal-powerfs: /dev/fuse does not exist: load the fuse module (modprobe fuse) or run the container with --device /dev/fuse");
        std::process::exit(1);
    }
    let (tx, rx) = mpsc::channel();
    watch_signals(tx.clone());
    let _ = std::fs::remove_file(&control);
    let listener = UnixListener::bind(&control).unwrap_or_else(|e| {
        eprintln!("shoal-powerfs: bind {}: {e}", control.display());
        std::process::exit(1);
    });

    let model = Arc::new(Mutex::new(Model::new()));
    let mut session = match mount(&model, &mountpoint, sync_delay)
        .map_err(|e| e.to_string())
        .and_then(|s| {
            wait_mounted(&mountpoint)?;
            Ok(s)
        }) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("shoal-powerfs: mount {}: {e}", mountpoint.display());
            std::process::exit(1);
        }
    };
    println!("shoal-powerfs: mounted {}", mountpoint.display());
    let _ = std::io::stdout().flush();
    std::thread::spawn(move || serve_control(listener, tx));

    for command in rx {
        let (line, reply) = match command {
            Command::Quit => break,
            Command::Line(line, reply) => (line, reply),
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["ping"] => "ok".to_string(),
            ["stats"] => {
                let s = model.lock().unwrap().stats;
                format!(
                    "ok writes={} written_bytes={} fsyncs={} fsyncdirs={} cuts={}",
                    s.writes, s.written_bytes, s.fsyncs, s.fsyncdirs, s.cuts
                )
            }
            ["quit"] => {
                let _ = reply.send("ok".into());
                break;
            }
            [cmd @ ("cut" | "poweroff"), rest @ ..] => {
                let tear = match rest {
                    [] => None,
                    ["tear", seed] => match seed.parse::<u64>() {
                        Ok(s) => Some(s),
                        Err(_) => {
                            let _ = reply.send(format!("error: bad seed {seed:?}"));
                            continue;
                        }
                    },
                    _ => {
                        let _ = reply.send(format!("error: usage: {cmd} [tear SEED]"));
                        continue;
                    }
                };
                let started = std::time::Instant::now();
                let report = {
                    let mut m = model.lock().unwrap();
                    if m.powered_off {
                        let _ = reply.send("error: already powered off".into());
                        continue;
                    }
                    m.powered_off = true;
                    m.cut(tear)
                };
                if *cmd == "cut" {
                    if let Err(e) = power_on(&model, &mountpoint, sync_delay, &mut session) {
                        let _ = reply.send(format!("error: {e}"));
                        eprintln!("shoal-powerfs: {e}; exiting");
                        std::process::exit(1);
                    }
                }
                format!("ok {report} ms={}", started.elapsed().as_millis())
            }
            ["poweron"] => {
                if !model.lock().unwrap().powered_off {
                    "error: not powered off".to_string()
                } else if let Err(e) = power_on(&model, &mountpoint, sync_delay, &mut session) {
                    let _ = reply.send(format!("error: {e}"));
                    eprintln!("shoal-powerfs: {e}; exiting");
                    std::process::exit(1);
                } else {
                    "ok".to_string()
                }
            }
            _ => format!("error: unknown command {line:?}"),
        };
        let _ = reply.send(answer);
    }
    // Quit: detach and exit without waiting for leftover users (closing /dev/fuse at exit
    // aborts the connection: they get ENOTCONN).
    if session.is_some() {
        detach(&mountpoint);
    }
    let _ = std::fs::remove_file(&control);
    std::process::exit(0);
}
