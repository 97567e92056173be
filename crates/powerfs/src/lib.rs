//! A file system model of a disk with a volatile write cache, for power-cut crash tests.
//!
//! Every inode keeps its current state (what reads see) and its durable state (what survives a
//! power cut):
//! - a file's bytes (and size) become durable only on `fsync` of that file (fsync and
//!   fdatasync alike: both must make the data and the size needed to read it durable);
//! - a directory's entries (create, mkdir, rename, unlink, rmdir) become durable only on
//!   `fsyncdir` of that directory, so a new file whose directory was never synced is gone after
//!   a cut, even if the file itself was synced, and a rename or delete that skipped the
//!   directory sync is undone.
//!
//! `cut` throws away everything not durable and rebuilds the tree from the durable state; with
//! tearing, the last unsynced write of each file may survive as a prefix of whole 512-byte
//! sectors. The model is a pure struct (no FUSE), unit-tested here; `main.rs` serves it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::time::SystemTime;

pub type Ino = u64;
pub const ROOT: Ino = 1;
pub const SECTOR_BYTES: u64 = 512;
/// Largest file the model accepts (keeps a bad offset from allocating the machine away).
pub const FILE_BYTES_MAX: u64 = 1 << 32;

pub type Errno = i32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

#[derive(Clone, Debug)]
pub struct Attr {
    pub ino: Ino,
    pub kind: Kind,
    pub size: u64,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
}

#[derive(Clone, Debug)]
struct Inode {
    kind: Kind,
    perm: u16,
    uid: u32,
    gid: u32,
    mtime: SystemTime,
    ctime: SystemTime,
    /// File: current bytes.
    data: Vec<u8>,
    /// File: bytes as of the last fsync.
    durable: Vec<u8>,
    /// File: byte ranges written since the last fsync (coalesced when contiguous).
    dirty: Vec<(u64, u64)>,
    /// File: smallest size since the last fsync (truncation is volatile too).
    min_len_since_sync: u64,
    /// File: the last write since the last fsync, for tearing.
    last_write: Option<(u64, u64)>,
    /// Dir: current entries.
    entries: BTreeMap<OsString, Ino>,
    /// Dir: entries as of the last fsyncdir.
    durable_entries: BTreeMap<OsString, Ino>,
}

impl Inode {
    fn new(kind: Kind, perm: u16, uid: u32, gid: u32) -> Inode {
        let now = SystemTime::now();
        Inode {
            kind,
            perm,
            uid,
            gid,
            mtime: now,
            ctime: now,
            data: Vec::new(),
            durable: Vec::new(),
            dirty: Vec::new(),
            min_len_since_sync: 0,
            last_write: None,
            entries: BTreeMap::new(),
            durable_entries: BTreeMap::new(),
        }
    }

    fn unsynced(&self) -> bool {
        match self.kind {
            Kind::File => {
                !self.dirty.is_empty()
                    || self.min_len_since_sync != self.data.len() as u64
                    || self.durable.len() != self.data.len()
            }
            Kind::Dir => self.entries != self.durable_entries,
        }
    }
}

/// Counters, reported by the control channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub writes: u64,
    pub written_bytes: u64,
    pub fsyncs: u64,
    pub fsyncdirs: u64,
    pub cuts: u64,
}

/// What a cut threw away.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CutReport {
    /// Files whose content differed from the durable one.
    pub files_reverted: u64,
    /// Unsynced bytes dropped (written ranges not made durable, roughly).
    pub bytes_dropped: u64,
    /// Directories whose entries differed from the durable ones.
    pub dirs_reverted: u64,
    /// Inodes no longer reachable from the durable tree (unsynced creations, and deleted
    /// files whose deletion was durable), freed.
    pub inodes_dropped: u64,
    /// Files whose last write survived as a torn prefix.
    pub torn_writes: u64,
}

impl std::fmt::Display for CutReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "files_reverted={} bytes_dropped={} dirs_reverted={} inodes_dropped={} torn_writes={}",
            self.files_reverted,
            self.bytes_dropped,
            self.dirs_reverted,
            self.inodes_dropped,
            self.torn_writes
        )
    }
}

/// The file system state. Inode numbers are never reused, so a kernel that still holds an
/// old number after a cut gets ENOENT rather than another file.
pub struct Model {
    inodes: HashMap<Ino, Inode>,
    next_ino: Ino,
    pub stats: Stats,
    /// Powered off: the server answers every request with EIO until it is powered on again.
    pub powered_off: bool,
}

impl Default for Model {
    fn default() -> Self {
        Model::new()
    }
}

/// A small deterministic generator for tearing (no dependency).
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn add_range(dirty: &mut Vec<(u64, u64)>, start: u64, end: u64) {
    if let Some(last) = dirty.last_mut() {
        if start <= last.1 && end >= last.0 {
            last.0 = last.0.min(start);
            last.1 = last.1.max(end);
            return;
        }
    }
    dirty.push((start, end));
    if dirty.len() > 4096 {
        // Many scattered writes: keep the list bounded by merging into one covering range
        // (fsync then copies a little more than needed; the result is the same).
        let lo = dirty.iter().map(|r| r.0).min().unwrap();
        let hi = dirty.iter().map(|r| r.1).max().unwrap();
        dirty.clear();
        dirty.push((lo, hi));
    }
}

impl Model {
    pub fn new() -> Model {
        let mut root = Inode::new(Kind::Dir, 0o755, 0, 0);
        root.ctime = SystemTime::now();
        let mut inodes = HashMap::new();
        inodes.insert(ROOT, root);
        Model {
            inodes,
            next_ino: ROOT + 1,
            stats: Stats::default(),
            powered_off: false,
        }
    }

    fn get(&self, ino: Ino) -> Result<&Inode, Errno> {
        self.inodes.get(&ino).ok_or(libc::ENOENT)
    }

    fn get_mut(&mut self, ino: Ino) -> Result<&mut Inode, Errno> {
        self.inodes.get_mut(&ino).ok_or(libc::ENOENT)
    }

    fn dir(&self, ino: Ino) -> Result<&Inode, Errno> {
        let i = self.get(ino)?;
        if i.kind != Kind::Dir {
            return Err(libc::ENOTDIR);
        }
        Ok(i)
    }

    fn file_mut(&mut self, ino: Ino) -> Result<&mut Inode, Errno> {
        let i = self.get_mut(ino)?;
        if i.kind != Kind::File {
            return Err(libc::EISDIR);
        }
        Ok(i)
    }

    fn nlink(&self, ino: Ino) -> u32 {
        // Counted on demand: the trees here are small.
        let mut n = 0;
        for inode in self.inodes.values() {
            if inode.kind == Kind::Dir {
                n += inode.entries.values().filter(|&&e| e == ino).count() as u32;
            }
        }
        match self.inodes.get(&ino).map(|i| i.kind) {
            Some(Kind::Dir) => n + 1 + if ino == ROOT { 1 } else { 0 },
            _ => n,
        }
    }

    pub fn attr(&self, ino: Ino) -> Result<Attr, Errno> {
        let i = self.get(ino)?;
        Ok(Attr {
            ino,
            kind: i.kind,
            size: match i.kind {
                Kind::File => i.data.len() as u64,
                Kind::Dir => 4096,
            },
            perm: i.perm,
            nlink: if i.kind == Kind::File {
                self.nlink(ino)
            } else {
                2
            },
            uid: i.uid,
            gid: i.gid,
            mtime: i.mtime,
            ctime: i.ctime,
        })
    }

    pub fn lookup(&self, parent: Ino, name: &OsStr) -> Result<Ino, Errno> {
        self.dir(parent)?
            .entries
            .get(name)
            .copied()
            .ok_or(libc::ENOENT)
    }

    /// Parent of a directory (for ".."), searched: directories have one entry.
    pub fn parent_of(&self, dir: Ino) -> Ino {
        if dir == ROOT {
            return ROOT;
        }
        self.inodes
            .iter()
            .find(|(_, i)| i.kind == Kind::Dir && i.entries.values().any(|&e| e == dir))
            .map(|(&p, _)| p)
            .unwrap_or(ROOT)
    }

    /// Current entries of a directory, sorted by name.
    pub fn readdir(&self, dir: Ino) -> Result<Vec<(OsString, Ino, Kind)>, Errno> {
        let d = self.dir(dir)?;
        Ok(d.entries
            .iter()
            .map(|(n, &i)| {
                (
                    n.clone(),
                    i,
                    self.inodes.get(&i).map(|x| x.kind).unwrap_or(Kind::File),
                )
            })
            .collect())
    }

    /// Creates a file or directory `name` in `parent` (EEXIST if the name is taken).
    pub fn create(
        &mut self,
        parent: Ino,
        name: &OsStr,
        kind: Kind,
        perm: u16,
        uid: u32,
        gid: u32,
    ) -> Result<Ino, Errno> {
        if name.len() > 255 {
            return Err(libc::ENAMETOOLONG);
        }
        if self.dir(parent)?.entries.contains_key(name) {
            return Err(libc::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(ino, Inode::new(kind, perm, uid, gid));
        let p = self.get_mut(parent)?;
        p.entries.insert(name.to_os_string(), ino);
        let now = SystemTime::now();
        p.mtime = now;
        p.ctime = now;
        Ok(ino)
    }

    pub fn unlink(&mut self, parent: Ino, name: &OsStr) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        if self.get(ino)?.kind == Kind::Dir {
            return Err(libc::EISDIR);
        }
        let p = self.get_mut(parent)?;
        p.entries.remove(name);
        p.mtime = SystemTime::now();
        Ok(())
    }

    pub fn rmdir(&mut self, parent: Ino, name: &OsStr) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        let d = self.get(ino)?;
        if d.kind != Kind::Dir {
            return Err(libc::ENOTDIR);
        }
        if !d.entries.is_empty() {
            return Err(libc::ENOTEMPTY);
        }
        let p = self.get_mut(parent)?;
        p.entries.remove(name);
        p.mtime = SystemTime::now();
        Ok(())
    }

    /// rename(2), with RENAME_NOREPLACE; RENAME_EXCHANGE is not supported.
    pub fn rename(
        &mut self,
        parent: Ino,
        name: &OsStr,
        new_parent: Ino,
        new_name: &OsStr,
        flags: u32,
    ) -> Result<(), Errno> {
        if flags & !(libc::RENAME_NOREPLACE) != 0 {
            return Err(libc::EINVAL);
        }
        let ino = self.lookup(parent, name)?;
        self.dir(new_parent)?;
        let kind = self.get(ino)?.kind;
        if let Ok(existing) = self.lookup(new_parent, new_name) {
            if existing == ino {
                return Ok(());
            }
            if flags & libc::RENAME_NOREPLACE != 0 {
                return Err(libc::EEXIST);
            }
            let target = self.get(existing)?;
            match (kind, target.kind) {
                (Kind::File, Kind::Dir) => return Err(libc::EISDIR),
                (Kind::Dir, Kind::File) => return Err(libc::ENOTDIR),
                (Kind::Dir, Kind::Dir) if !target.entries.is_empty() => {
                    return Err(libc::ENOTEMPTY)
                }
                _ => {}
            }
        }
        if kind == Kind::Dir {
            // No moving a directory into itself.
            let mut at = new_parent;
            while at != ROOT {
                if at == ino {
                    return Err(libc::EINVAL);
                }
                at = self.parent_of(at);
            }
        }
        let now = SystemTime::now();
        let p = self.get_mut(parent)?;
        p.entries.remove(name);
        p.mtime = now;
        let np = self.get_mut(new_parent)?;
        np.entries.insert(new_name.to_os_string(), ino);
        np.mtime = now;
        self.get_mut(ino)?.ctime = now;
        Ok(())
    }

    pub fn read(&self, ino: Ino, offset: u64, size: usize) -> Result<&[u8], Errno> {
        let i = self.get(ino)?;
        if i.kind != Kind::File {
            return Err(libc::EISDIR);
        }
        let len = i.data.len() as u64;
        if offset >= len {
            return Ok(&[]);
        }
        let end = (offset + size as u64).min(len);
        Ok(&i.data[offset as usize..end as usize])
    }

    pub fn write(&mut self, ino: Ino, offset: u64, bytes: &[u8]) -> Result<usize, Errno> {
        let end = offset.checked_add(bytes.len() as u64).ok_or(libc::EFBIG)?;
        if end > FILE_BYTES_MAX {
            return Err(libc::EFBIG);
        }
        let f = self.file_mut(ino)?;
        if (f.data.len() as u64) < end {
            f.data.resize(end as usize, 0);
        }
        f.data[offset as usize..end as usize].copy_from_slice(bytes);
        add_range(&mut f.dirty, offset, end);
        f.last_write = Some((offset, end));
        f.mtime = SystemTime::now();
        self.stats.writes += 1;
        self.stats.written_bytes += bytes.len() as u64;
        Ok(bytes.len())
    }

    pub fn truncate(&mut self, ino: Ino, size: u64) -> Result<(), Errno> {
        if size > FILE_BYTES_MAX {
            return Err(libc::EFBIG);
        }
        let f = self.file_mut(ino)?;
        let old = f.data.len() as u64;
        f.data.resize(size as usize, 0);
        f.min_len_since_sync = f.min_len_since_sync.min(size);
        if size > old {
            add_range(&mut f.dirty, old, size);
        }
        f.mtime = SystemTime::now();
        Ok(())
    }

    /// fallocate: mode 0 (allocate, extending the size) and FALLOC_FL_KEEP_SIZE (no-op here).
    pub fn fallocate(
        &mut self,
        ino: Ino,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> Result<(), Errno> {
        let end = offset.checked_add(length).ok_or(libc::EFBIG)?;
        match mode {
            0 => {
                let len = self.file_mut(ino)?.data.len() as u64;
                if end > len {
                    self.truncate(ino, end)?;
                }
                Ok(())
            }
            libc::FALLOC_FL_KEEP_SIZE => self.file_mut(ino).map(|_| ()),
            _ => Err(libc::EOPNOTSUPP),
        }
    }

    pub fn set_perm(&mut self, ino: Ino, perm: u16) -> Result<(), Errno> {
        let i = self.get_mut(ino)?;
        i.perm = perm;
        i.ctime = SystemTime::now();
        Ok(())
    }

    pub fn set_owner(&mut self, ino: Ino, uid: Option<u32>, gid: Option<u32>) -> Result<(), Errno> {
        let i = self.get_mut(ino)?;
        if let Some(uid) = uid {
            i.uid = uid;
        }
        if let Some(gid) = gid {
            i.gid = gid;
        }
        Ok(())
    }

    pub fn set_mtime(&mut self, ino: Ino, mtime: SystemTime) -> Result<(), Errno> {
        self.get_mut(ino)?.mtime = mtime;
        Ok(())
    }

    /// fsync / fdatasync of a file: its bytes and size become durable. (On a directory this
    /// is `fsyncdir`.)
    pub fn fsync(&mut self, ino: Ino) -> Result<(), Errno> {
        if self.get(ino)?.kind == Kind::Dir {
            return self.fsyncdir(ino);
        }
        self.stats.fsyncs += 1;
        let f = self.file_mut(ino)?;
        let len = f.data.len();
        f.durable.truncate(f.min_len_since_sync as usize);
        f.durable.resize(len, 0);
        for &(start, end) in &f.dirty {
            let (start, end) = (start as usize, (end as usize).min(len));
            if start < end {
                f.durable[start..end].copy_from_slice(&f.data[start..end]);
            }
        }
        debug_assert!(f.durable == f.data);
        f.dirty.clear();
        f.min_len_since_sync = len as u64;
        f.last_write = None;
        Ok(())
    }

    /// fsync of a directory: its current entries become durable.
    pub fn fsyncdir(&mut self, ino: Ino) -> Result<(), Errno> {
        self.stats.fsyncdirs += 1;
        let d = self.get_mut(ino)?;
        if d.kind != Kind::Dir {
            return Err(libc::ENOTDIR);
        }
        d.durable_entries = d.entries.clone();
        Ok(())
    }

    /// True if anything is not durable.
    pub fn has_unsynced(&self) -> bool {
        self.reachable_durable()
            .iter()
            .any(|ino| self.inodes[ino].unsynced())
    }

    fn reachable_durable(&self) -> HashSet<Ino> {
        let mut seen = HashSet::new();
        let mut stack = vec![ROOT];
        while let Some(ino) = stack.pop() {
            if !seen.insert(ino) {
                continue;
            }
            if let Some(i) = self.inodes.get(&ino) {
                if i.kind == Kind::Dir {
                    stack.extend(i.durable_entries.values().copied());
                }
            }
        }
        seen
    }

    /// Power cut: every inode goes back to its durable state; inodes the durable tree does
    /// not reach are gone. With `tear_seed`, each file's last unsynced write may survive as a
    /// prefix of whole sectors (chosen by the seed), applied on top of the durable bytes.
    pub fn cut(&mut self, tear_seed: Option<u64>) -> CutReport {
        let mut report = CutReport::default();
        let mut rng = tear_seed.unwrap_or(0);
        let reachable = self.reachable_durable();
        let before = self.inodes.len();
        self.inodes.retain(|ino, _| reachable.contains(ino));
        report.inodes_dropped = (before - self.inodes.len()) as u64;
        let mut inos: Vec<Ino> = self.inodes.keys().copied().collect();
        inos.sort_unstable(); // deterministic tearing
        for ino in inos {
            let i = self.inodes.get_mut(&ino).unwrap();
            match i.kind {
                Kind::Dir => {
                    if i.entries != i.durable_entries {
                        report.dirs_reverted += 1;
                        i.entries = i.durable_entries.clone();
                    }
                }
                Kind::File => {
                    if !i.unsynced() {
                        continue;
                    }
                    report.files_reverted += 1;
                    report.bytes_dropped += i.dirty.iter().map(|r| r.1 - r.0).sum::<u64>();
                    let mut data = i.durable.clone();
                    if let (Some(_), Some((start, end))) = (tear_seed, i.last_write) {
                        let end = end.min(i.data.len() as u64);
                        // Sector boundaries strictly inside the write, plus its end.
                        let first = (start / SECTOR_BYTES + 1) * SECTOR_BYTES;
                        let mut cuts: Vec<u64> =
                            (first..end).step_by(SECTOR_BYTES as usize).collect();
                        cuts.push(end);
                        // Keep nothing, or a prefix up to one of the boundaries.
                        let pick = splitmix(&mut rng) % (cuts.len() as u64 + 1);
                        if pick > 0 && start < end {
                            let keep_to = cuts[(pick - 1) as usize];
                            if (data.len() as u64) < keep_to {
                                data.resize(keep_to as usize, 0);
                            }
                            data[start as usize..keep_to as usize]
                                .copy_from_slice(&i.data[start as usize..keep_to as usize]);
                            report.torn_writes += 1;
                        }
                    }
                    i.data = data.clone();
                    i.durable = data;
                    i.dirty.clear();
                    i.min_len_since_sync = i.data.len() as u64;
                    i.last_write = None;
                }
            }
        }
        self.stats.cuts += 1;
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    fn file(m: &mut Model, parent: Ino, name: &str) -> Ino {
        m.create(parent, os(name), Kind::File, 0o644, 0, 0).unwrap()
    }

    fn content(m: &Model, ino: Ino) -> Vec<u8> {
        m.read(ino, 0, usize::MAX >> 1).unwrap().to_vec()
    }

    #[test]
    fn unsynced_file_and_entry_vanish() {
        let mut m = Model::new();
        let f = file(&mut m, ROOT, "a");
        m.write(f, 0, b"hello").unwrap();
        m.fsync(f).unwrap();
        // Data synced, directory not: the file is gone.
        let r = m.cut(None);
        assert_eq!(m.lookup(ROOT, os("a")), Err(libc::ENOENT));
        assert_eq!(r.inodes_dropped, 1);
        assert_eq!(r.dirs_reverted, 1);
    }

    #[test]
    fn synced_data_survives_unsynced_tail_does_not() {
        let mut m = Model::new();
        let f = file(&mut m, ROOT, "a");
        m.fsyncdir(ROOT).unwrap();
        m.write(f, 0, b"hello").unwrap();
        m.fsync(f).unwrap();
        m.write(f, 5, b" world").unwrap();
        m.write(f, 0, b"J").unwrap();
        assert_eq!(content(&m, f), b"Jello world");
        m.cut(None);
        assert_eq!(m.lookup(ROOT, os("a")), Ok(f));
        assert_eq!(content(&m, f), b"hello");
        assert!(!m.has_unsynced());
    }

    #[test]
    fn truncation_is_volatile_until_fsync() {
        let mut m = Model::new();
        let f = file(&mut m, ROOT, "a");
        m.fsyncdir(ROOT).unwrap();
        m.write(f, 0, b"abcdef").unwrap();
        m.fsync(f).unwrap();
        m.truncate(f, 2).unwrap();
        m.truncate(f, 4).unwrap();
        assert_eq!(content(&m, f), b"ab\0\0");
        m.cut(None);
        assert_eq!(content(&m, f), b"abcdef");
        m.truncate(f, 2).unwrap();
        m.truncate(f, 4).unwrap();
        m.fsync(f).unwrap();
        m.cut(None);
        assert_eq!(content(&m, f), b"ab\0\0");
    }

    #[test]
    fn rename_and_unlink_need_the_directory_sync() {
        let mut m = Model::new();
        let tmp = file(&mut m, ROOT, "meta.tmp");
        m.write(tmp, 0, b"v2").unwrap();
        m.fsync(tmp).unwrap();
        let old = file(&mut m, ROOT, "meta");
        m.write(old, 0, b"v1").unwrap();
        m.fsync(old).unwrap();
        m.unlink(ROOT, os("meta.tmp")).unwrap();
        m.fsyncdir(ROOT).unwrap(); // durable: meta = v1
        let tmp = file(&mut m, ROOT, "meta.tmp");
        m.write(tmp, 0, b"v2").unwrap();
        m.fsync(tmp).unwrap();
        m.rename(ROOT, os("meta.tmp"), ROOT, os("meta"), 0).unwrap();
        assert_eq!(content(&m, m.lookup(ROOT, os("meta")).unwrap()), b"v2");
        // Without the directory sync the replace is undone.
        m.cut(None);
        assert_eq!(content(&m, m.lookup(ROOT, os("meta")).unwrap()), b"v1");
        assert_eq!(m.lookup(ROOT, os("meta.tmp")), Err(libc::ENOENT));
        // With it, it sticks; a later unsynced unlink is undone.
        let tmp = file(&mut m, ROOT, "meta.tmp");
        m.write(tmp, 0, b"v3").unwrap();
        m.fsync(tmp).unwrap();
        m.rename(ROOT, os("meta.tmp"), ROOT, os("meta"), 0).unwrap();
        m.fsyncdir(ROOT).unwrap();
        m.unlink(ROOT, os("meta")).unwrap();
        m.cut(None);
        assert_eq!(content(&m, m.lookup(ROOT, os("meta")).unwrap()), b"v3");
    }

    #[test]
    fn nested_directories_need_every_level_synced() {
        let mut m = Model::new();
        let d = m.create(ROOT, os("d"), Kind::Dir, 0o755, 0, 0).unwrap();
        let f = file(&mut m, d, "f");
        m.write(f, 0, b"x").unwrap();
        m.fsync(f).unwrap();
        m.fsyncdir(d).unwrap();
        m.cut(None);
        assert_eq!(
            m.lookup(ROOT, os("d")),
            Err(libc::ENOENT),
            "root never synced"
        );
        let d = m.create(ROOT, os("d"), Kind::Dir, 0o755, 0, 0).unwrap();
        m.fsyncdir(ROOT).unwrap();
        let f = file(&mut m, d, "f");
        m.write(f, 0, b"x").unwrap();
        m.fsync(f).unwrap();
        m.fsyncdir(d).unwrap();
        m.cut(None);
        let d = m.lookup(ROOT, os("d")).unwrap();
        assert_eq!(content(&m, m.lookup(d, os("f")).unwrap()), b"x");
    }

    #[test]
    fn unlinked_but_durably_linked_file_comes_back_with_its_data() {
        let mut m = Model::new();
        let f = file(&mut m, ROOT, "seg");
        m.write(f, 0, b"durable").unwrap();
        m.fsync(f).unwrap();
        m.fsyncdir(ROOT).unwrap();
        m.unlink(ROOT, os("seg")).unwrap();
        m.cut(None);
        assert_eq!(content(&m, m.lookup(ROOT, os("seg")).unwrap()), b"durable");
    }

    #[test]
    fn tearing_keeps_whole_sector_prefixes_of_the_last_write() {
        let mut kept = HashSet::new();
        for seed in 0..200 {
            let mut m = Model::new();
            let f = file(&mut m, ROOT, "a");
            m.fsyncdir(ROOT).unwrap();
            m.write(f, 0, &[1u8; 100]).unwrap();
            m.fsync(f).unwrap();
            m.write(f, 100, &[2u8; 2000]).unwrap(); // dropped whole (not the last)
            m.write(f, 2100, &[3u8; 1500]).unwrap(); // 2100..3600: boundaries 2560, 3072, 3584
            m.cut(Some(seed));
            let c = content(&m, f);
            assert_eq!(&c[..100], &[1u8; 100]);
            assert!(
                c.len() == 100 || [2560, 3072, 3584, 3600].contains(&c.len()),
                "{}",
                c.len()
            );
            if c.len() > 100 {
                assert!(
                    c[100..2100].iter().all(|&b| b == 0),
                    "earlier unsynced write lost"
                );
                assert!(c[2100..].iter().all(|&b| b == 3));
            }
            kept.insert(c.len());
        }
        assert_eq!(kept.len(), 5, "every choice happens: {kept:?}");
    }

    #[test]
    fn rename_errors() {
        let mut m = Model::new();
        let d = m.create(ROOT, os("d"), Kind::Dir, 0o755, 0, 0).unwrap();
        file(&mut m, d, "x");
        file(&mut m, ROOT, "f");
        assert_eq!(m.rename(ROOT, os("f"), ROOT, os("d"), 0), Err(libc::EISDIR));
        let e = m.create(ROOT, os("e"), Kind::Dir, 0o755, 0, 0).unwrap();
        assert_eq!(
            m.rename(ROOT, os("e"), ROOT, os("d"), 0),
            Err(libc::ENOTEMPTY)
        );
        assert_eq!(m.rename(ROOT, os("d"), d, os("dd"), 0), Err(libc::EINVAL));
        assert_eq!(
            m.rename(ROOT, os("f"), ROOT, os("e2"), libc::RENAME_NOREPLACE),
            Ok(())
        );
        let _ = e;
        assert_eq!(m.rmdir(ROOT, os("d")), Err(libc::ENOTEMPTY));
        assert_eq!(m.unlink(ROOT, os("d")), Err(libc::EISDIR));
    }
}
