//! Durable Raft state: the entry log, the hard state and the latest snapshot.
//!
//! [`FileLogStore`] layout in its directory:
//! - `raft.log`: magic, a header record `(prev_index, prev_term)` (the entry just before the
//!   first one kept), then one record per entry. Record: `[len u32 LE][crc32c u32 LE][payload]`.
//!   Appends go to the end (after truncating a conflicting suffix) and are `fdatasync`ed.
//!   Recovery truncates at the first short, bad-CRC or out-of-order record (a torn tail).
//! - `hardstate`, `snapshot`: one record each, replaced atomically (tmp, fsync, rename, fsync dir).
//!
//! Snapshot then log: a snapshot is written before the log is rewritten without the entries it
//! covers, so a crash in between leaves entries the snapshot already holds (dropped on recovery),
//! or an old log that conflicts with a received snapshot (detected by the entry at the snapshot's
//! index, and dropped: installing the snapshot would have dropped it).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use prost::Message as _;
use raft::eraftpb::{Entry, HardState, Snapshot};

use crate::PersistRequest;

const LOG_MAGIC: &[u8; 8] = b"SHRAFTL1";
const RECORD_HEADER_BYTES: usize = 8;
/// Largest record in any of the files (a snapshot of the metadata image is the largest).
pub const RECORD_BYTES_MAX: usize = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("io on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt {path}: {why}")]
    Corrupt { path: PathBuf, why: String },
    #[error("append at index {first} leaves a gap after {last}")]
    Gap { first: u64, last: u64 },
    #[error("append at index {first} rewrites compacted entries (snapshot at {snapshot})")]
    BeforeSnapshot { first: u64, snapshot: u64 },
}

/// What a store holds: hard state, latest snapshot, and the entries after it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovered {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
}

impl Recovered {
    fn snapshot_point(&self) -> (u64, u64) {
        snapshot_point(self.snapshot.as_ref())
    }
}

fn snapshot_point(s: Option<&Snapshot>) -> (u64, u64) {
    s.and_then(|s| s.metadata.as_ref())
        .map_or((0, 0), |m| (m.index, m.term))
}

pub trait LogStore {
    /// Makes `req` durable, in its documented order; returns only once it is.
    fn persist(&mut self, req: &PersistRequest) -> Result<(), StoreError>;
}

/// In-memory store for the simulator: everything persisted survives a "crash" (dropping the
/// node), nothing else does. Clone it to keep a copy across a simulated restart.
#[derive(Debug, Clone, Default)]
pub struct MemLogStore {
    state: Recovered,
}

impl MemLogStore {
    pub fn new() -> MemLogStore {
        MemLogStore::default()
    }
    /// What a restarted node recovers.
    pub fn recover(&self) -> Recovered {
        self.state.clone()
    }
}

impl LogStore for MemLogStore {
    fn persist(&mut self, req: &PersistRequest) -> Result<(), StoreError> {
        let st = &mut self.state;
        if let Some(s) = &req.snapshot {
            st.snapshot = Some(s.clone());
            st.entries.clear();
        }
        if let Some(first) = req.entries.first() {
            let (snap_index, _) = st.snapshot_point();
            let last = st.entries.last().map_or(snap_index, |e| e.index);
            check_append(first.index, snap_index, last)?;
            st.entries.retain(|e| e.index < first.index);
            st.entries.extend(req.entries.iter().cloned());
        }
        if let Some(hs) = &req.hard_state {
            st.hard_state = hs.clone();
        }
        if let Some(s) = &req.compact {
            let (index, _) = snapshot_point(Some(s));
            if index > st.snapshot_point().0 {
                st.entries.retain(|e| e.index > index);
                st.snapshot = Some(s.clone());
            }
        }
        Ok(())
    }
}

fn check_append(first: u64, snapshot: u64, last: u64) -> Result<(), StoreError> {
    if first <= snapshot {
        return Err(StoreError::BeforeSnapshot { first, snapshot });
    }
    if first > last + 1 {
        return Err(StoreError::Gap { first, last });
    }
    Ok(())
}

/// File-backed store in one directory (`DATA/meta/` in the broker).
pub struct FileLogStore {
    dir: PathBuf,
    log: File,
    /// `(entry index, file offset of its record)` for every entry in `raft.log`.
    offsets: Vec<(u64, u64)>,
    /// `(prev_index, prev_term)` of the log file's header.
    prev: (u64, u64),
    log_bytes: u64,
}

impl FileLogStore {
    /// Opens (creating if absent) the store in `dir` and returns what it holds.
    pub fn open(dir: &Path) -> Result<(FileLogStore, Recovered), StoreError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        for tmp in ["hardstate.tmp", "snapshot.tmp", "raft.log.tmp"] {
            let _ = fs::remove_file(dir.join(tmp));
        }
        let snapshot = read_single(&dir.join("snapshot"))?
            .map(|b| decode::<Snapshot>(&b, &dir.join("snapshot")))
            .transpose()?;
        let hard_state = read_single(&dir.join("hardstate"))?
            .map(|b| decode::<HardState>(&b, &dir.join("hardstate")))
            .transpose()?
            .unwrap_or_default();
        let point = snapshot_point(snapshot.as_ref());
        let log_path = dir.join("raft.log");
        if !log_path.exists() {
            write_log(dir, point, &[])?;
        }
        let (prev, mut entries, offsets, valid_bytes) = scan_log(&log_path)?;
        let log = OpenOptions::new()
            .append(true)
            .open(&log_path)
            .map_err(io(&log_path))?;
        let mut store = FileLogStore {
            dir: dir.to_path_buf(),
            log,
            offsets,
            prev,
            log_bytes: valid_bytes,
        };
        store.truncate_file(valid_bytes)?;
        if prev.0 > point.0 {
            return Err(corrupt(&log_path, "log starts after the snapshot"));
        }
        if prev != point {
            // Entries the snapshot covers are dropped; a log that conflicts with the snapshot
            // (it predates a received one) is dropped whole, as installing it would have.
            let matches = entries.iter().any(|e| (e.index, e.term) == point);
            let tail = if matches {
                store.records_after(point.0)?
            } else {
                entries.clear();
                Vec::new()
            };
            store.rewrite_log(point, tail)?;
        }
        entries.retain(|e| e.index > point.0);
        let recovered = Recovered {
            hard_state,
            snapshot,
            entries,
        };
        Ok((store, recovered))
    }

    fn last_index(&self) -> u64 {
        self.offsets.last().map_or(self.prev.0, |&(i, _)| i)
    }

    fn truncate_file(&mut self, len: u64) -> Result<(), StoreError> {
        let path = self.dir.join("raft.log");
        let current = self.log.metadata().map_err(io(&path))?.len();
        if current != len {
            self.log.set_len(len).map_err(io(&path))?;
            self.log.sync_data().map_err(io(&path))?;
        }
        self.log_bytes = len;
        Ok(())
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        check_append(first.index, self.prev.0, self.last_index())?;
        if first.index <= self.last_index() {
            let k = self.offsets.partition_point(|&(i, _)| i < first.index);
            let offset = self.offsets[k].1;
            self.offsets.truncate(k);
            self.truncate_file(offset)?;
        }
        let mut buf = Vec::new();
        for e in entries {
            self.offsets
                .push((e.index, self.log_bytes + buf.len() as u64));
            buf.extend_from_slice(&record(&e.encode_to_vec()));
        }
        let path = self.dir.join("raft.log");
        self.log.write_all(&buf).map_err(io(&path))?;
        self.log.sync_data().map_err(io(&path))?;
        self.log_bytes += buf.len() as u64;
        Ok(())
    }

    /// Replaces `raft.log` by one starting after `prev` holding `tail` (raw records).
    fn rewrite_log(
        &mut self,
        prev: (u64, u64),
        tail: Vec<(u64, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        let records: Vec<u8> = tail.iter().flat_map(|(_, r)| r.iter().copied()).collect();
        write_log(&self.dir, prev, &records)?;
        let path = self.dir.join("raft.log");
        self.log = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        let mut offset = log_header(prev).len() as u64;
        self.offsets = tail
            .iter()
            .map(|(index, r)| {
                let at = offset;
                offset += r.len() as u64;
                (*index, at)
            })
            .collect();
        self.prev = prev;
        self.log_bytes = offset;
        Ok(())
    }

    /// Raw records of the entries after `index`, read back from the log file.
    fn records_after(&self, index: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let path = self.dir.join("raft.log");
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(io(&path))?;
        let mut out = Vec::new();
        for (k, &(i, at)) in self.offsets.iter().enumerate() {
            if i <= index {
                continue;
            }
            let end = self.offsets.get(k + 1).map_or(self.log_bytes, |&(_, o)| o);
            out.push((i, bytes[at as usize..end as usize].to_vec()));
        }
        Ok(out)
    }
}

impl LogStore for FileLogStore {
    fn persist(&mut self, req: &PersistRequest) -> Result<(), StoreError> {
        if let Some(s) = &req.snapshot {
            atomic_write(&self.dir, "snapshot", &s.encode_to_vec())?;
            self.rewrite_log(snapshot_point(Some(s)), Vec::new())?;
        }
        self.append(&req.entries)?;
        if let Some(hs) = &req.hard_state {
            atomic_write(&self.dir, "hardstate", &hs.encode_to_vec())?;
        }
        if let Some(s) = req
            .compact
            .as_ref()
            .filter(|s| snapshot_point(Some(s)).0 > self.prev.0)
        {
            let point = snapshot_point(Some(s));
            atomic_write(&self.dir, "snapshot", &s.encode_to_vec())?;
            let tail = self.records_after(point.0)?;
            self.rewrite_log(point, tail)?;
        }
        Ok(())
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, why: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

fn record(payload: &[u8]) -> Vec<u8> {
    assert!(
        payload.len() <= RECORD_BYTES_MAX,
        "record over RECORD_BYTES_MAX"
    );
    let mut out = Vec::with_capacity(RECORD_HEADER_BYTES + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Parses the record at the front of `buf`: `None` if short, oversized or its CRC is wrong.
fn parse_record(buf: &[u8]) -> Option<(&[u8], usize)> {
    let header = buf.get(..RECORD_HEADER_BYTES)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    if len > RECORD_BYTES_MAX {
        return None;
    }
    let payload = buf.get(RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + len)?;
    (crc32c::crc32c(payload) == crc).then_some((payload, RECORD_HEADER_BYTES + len))
}

fn decode<M: prost::Message + Default>(bytes: &[u8], path: &Path) -> Result<M, StoreError> {
    M::decode(bytes).map_err(|e| corrupt(path, e.to_string()))
}

/// Reads a single-record file (`hardstate`, `snapshot`); absent is `None`, damaged is an error
/// (these files are replaced atomically, so damage is not a torn write).
fn read_single(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    match parse_record(&bytes) {
        Some((payload, used)) if used == bytes.len() => Ok(Some(payload.to_vec())),
        _ => Err(corrupt(path, "bad length or CRC")),
    }
}

fn atomic_write(dir: &Path, name: &str, payload: &[u8]) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    write_synced(&tmp, &record(payload))?;
    fs::rename(&tmp, &path).map_err(io(&path))?;
    sync_dir(dir)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut f = File::create(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

fn log_header(prev: (u64, u64)) -> Vec<u8> {
    let mut payload = prev.0.to_le_bytes().to_vec();
    payload.extend_from_slice(&prev.1.to_le_bytes());
    let mut out = LOG_MAGIC.to_vec();
    out.extend_from_slice(&record(&payload));
    out
}

/// Atomically replaces `raft.log` by a header plus `records`.
fn write_log(dir: &Path, prev: (u64, u64), records: &[u8]) -> Result<(), StoreError> {
    let tmp = dir.join("raft.log.tmp");
    let mut bytes = log_header(prev);
    bytes.extend_from_slice(records);
    write_synced(&tmp, &bytes)?;
    fs::rename(&tmp, dir.join("raft.log")).map_err(io(dir))?;
    sync_dir(dir)
}

type Scanned = ((u64, u64), Vec<Entry>, Vec<(u64, u64)>, u64);

/// Reads the log: header, then entries up to the first bad record. Returns the header's
/// `prev`, the entries, their offsets and the length of the valid prefix.
fn scan_log(path: &Path) -> Result<Scanned, StoreError> {
    let bytes = fs::read(path).map_err(io(path))?;
    if bytes.get(..LOG_MAGIC.len()) != Some(LOG_MAGIC.as_slice()) {
        return Err(corrupt(path, "bad magic"));
    }
    let (header, used) =
        parse_record(&bytes[LOG_MAGIC.len()..]).ok_or_else(|| corrupt(path, "bad header"))?;
    if header.len() != 16 {
        return Err(corrupt(path, "bad header length"));
    }
    let prev = (
        u64::from_le_bytes(header[..8].try_into().expect("8 bytes")),
        u64::from_le_bytes(header[8..].try_into().expect("8 bytes")),
    );
    let mut at = LOG_MAGIC.len() + used;
    let (mut entries, mut offsets) = (Vec::new(), Vec::new());
    let mut expected = prev.0 + 1;
    while let Some((payload, used)) = parse_record(&bytes[at..]) {
        let Ok(entry) = Entry::decode(payload) else {
            break;
        };
        if entry.index != expected {
            break;
        }
        offsets.push((entry.index, at as u64));
        entries.push(entry);
        expected += 1;
        at += used;
    }
    Ok((prev, entries, offsets, at as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::SnapshotMetadata;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: format!("e{index}").into_bytes(),
            ..Default::default()
        }
    }

    fn append(entries: Vec<Entry>, commit: u64) -> PersistRequest {
        PersistRequest {
            entries,
            hard_state: Some(HardState {
                term: 2,
                vote: 1,
                commit,
            }),
            ..Default::default()
        }
    }

    fn snap(index: u64, term: u64) -> Snapshot {
        Snapshot {
            data: b"image".to_vec(),
            metadata: Some(SnapshotMetadata {
                index,
                term,
                conf_state: None,
            }),
        }
    }

    #[test]
    fn reopen_keeps_everything_and_truncates_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, r) = FileLogStore::open(dir.path()).unwrap();
        assert_eq!(r, Recovered::default());
        s.persist(&append((1..=5).map(|i| entry(i, 1)).collect(), 3))
            .unwrap();
        s.persist(&append(vec![entry(4, 2), entry(5, 2), entry(6, 2)], 4))
            .unwrap();
        drop(s);
        let (_, r) = FileLogStore::open(dir.path()).unwrap();
        let got: Vec<(u64, u64)> = r.entries.iter().map(|e| (e.index, e.term)).collect();
        assert_eq!(got, vec![(1, 1), (2, 1), (3, 1), (4, 2), (5, 2), (6, 2)]);
        assert_eq!(r.hard_state.commit, 4);
        assert!(matches!(
            FileLogStore::open(dir.path())
                .unwrap()
                .0
                .persist(&append(vec![entry(9, 2)], 4)),
            Err(StoreError::Gap { .. })
        ));
    }

    #[test]
    fn torn_tail_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = FileLogStore::open(dir.path()).unwrap();
        s.persist(&append((1..=4).map(|i| entry(i, 1)).collect(), 1))
            .unwrap();
        drop(s);
        let log = dir.path().join("raft.log");
        let len = fs::metadata(&log).unwrap().len();
        // Cut the last record in half.
        OpenOptions::new()
            .write(true)
            .open(&log)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let (mut s, r) = FileLogStore::open(dir.path()).unwrap();
        assert_eq!(r.entries.len(), 3);
        // The store appends cleanly after the truncation point.
        s.persist(&append(vec![entry(4, 2)], 1)).unwrap();
        drop(s);
        // Garbage after a good prefix.
        let mut f = OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(&[0x55; 40]).unwrap();
        drop(f);
        let (_, r) = FileLogStore::open(dir.path()).unwrap();
        assert_eq!(r.entries.last().map(|e| (e.index, e.term)), Some((4, 2)));
    }

    #[test]
    fn flipped_byte_truncates_from_there() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = FileLogStore::open(dir.path()).unwrap();
        s.persist(&append((1..=4).map(|i| entry(i, 1)).collect(), 1))
            .unwrap();
        let third = s.offsets[2].1 as usize;
        drop(s);
        let log = dir.path().join("raft.log");
        let mut bytes = fs::read(&log).unwrap();
        bytes[third + RECORD_HEADER_BYTES + 1] ^= 0xff;
        fs::write(&log, &bytes).unwrap();
        let (_, r) = FileLogStore::open(dir.path()).unwrap();
        assert_eq!(r.entries.len(), 2);
    }

    #[test]
    fn garbage_files_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("raft.log"), b"not a log").unwrap();
        assert!(matches!(
            FileLogStore::open(dir.path()),
            Err(StoreError::Corrupt { .. })
        ));
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("hardstate"), [1, 2, 3]).unwrap();
        assert!(matches!(
            FileLogStore::open(dir.path()),
            Err(StoreError::Corrupt { .. })
        ));
        let dir = tempfile::tempdir().unwrap();
        let bad = record(&[0xff; 10]);
        fs::write(dir.path().join("snapshot"), bad).unwrap();
        assert!(matches!(
            FileLogStore::open(dir.path()),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn compaction_and_snapshot_install_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = FileLogStore::open(dir.path()).unwrap();
        s.persist(&append((1..=6).map(|i| entry(i, 1)).collect(), 6))
            .unwrap();
        s.persist(&PersistRequest {
            compact: Some(snap(4, 1)),
            ..Default::default()
        })
        .unwrap();
        s.persist(&append(vec![entry(7, 1)], 7)).unwrap();
        drop(s);
        let (mut s, r) = FileLogStore::open(dir.path()).unwrap();
        assert_eq!(snapshot_point(r.snapshot.as_ref()), (4, 1));
        let idx: Vec<u64> = r.entries.iter().map(|e| e.index).collect();
        assert_eq!(idx, vec![5, 6, 7]);
        // A received snapshot replaces the whole log.
        s.persist(&PersistRequest {
            snapshot: Some(snap(20, 3)),
            ..Default::default()
        })
        .unwrap();
        drop(s);
        let (_, r) = FileLogStore::open(dir.path()).unwrap();
        assert_eq!(snapshot_point(r.snapshot.as_ref()), (20, 3));
        assert!(r.entries.is_empty());
    }

    #[test]
    fn crash_between_snapshot_and_log_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = FileLogStore::open(dir.path()).unwrap();
        s.persist(&append((1..=6).map(|i| entry(i, 1)).collect(), 6))
            .unwrap();
        drop(s);
        // Local compaction crashed after the snapshot: entries it covers are dropped.
        atomic_write(dir.path(), "snapshot", &snap(3, 1).encode_to_vec()).unwrap();
        let (_, r) = FileLogStore::open(dir.path()).unwrap();
        assert_eq!(r.entries.first().map(|e| e.index), Some(4));
        // A received, conflicting snapshot crashed before the log was replaced: log dropped.
        atomic_write(dir.path(), "snapshot", &snap(5, 4).encode_to_vec()).unwrap();
        let (_, r) = FileLogStore::open(dir.path()).unwrap();
        assert!(r.entries.is_empty());
    }

    #[test]
    fn mem_store_matches_semantics() {
        let mut m = MemLogStore::new();
        m.persist(&append((1..=5).map(|i| entry(i, 1)).collect(), 2))
            .unwrap();
        m.persist(&append(vec![entry(3, 2)], 2)).unwrap();
        m.persist(&PersistRequest {
            compact: Some(snap(2, 1)),
            ..Default::default()
        })
        .unwrap();
        let r = m.recover();
        let got: Vec<(u64, u64)> = r.entries.iter().map(|e| (e.index, e.term)).collect();
        assert_eq!(got, vec![(3, 2)]);
        assert!(matches!(
            m.persist(&append(vec![entry(2, 3)], 2)),
            Err(StoreError::BeforeSnapshot { .. })
        ));
    }
}

#[cfg(test)]
mod model_tests {
    //! The file store against the in-memory model: random persist sequences, reopened after
    //! every step, must recover exactly what the model holds.
    use super::*;
    use raft::eraftpb::SnapshotMetadata;

    struct Xorshift(u64);
    impl Xorshift {
        fn next(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    fn random_request(rng: &mut Xorshift, model: &Recovered, term: &mut u64) -> PersistRequest {
        let (snap_index, _) = model.snapshot_point();
        let last = model.entries.last().map_or(snap_index, |e| e.index);
        let mut req = PersistRequest::default();
        match rng.next(10) {
            0 => {
                *term += 1;
                let index = last + rng.next(5);
                req.snapshot = Some(snapshot(index.max(snap_index + 1), *term));
            }
            1 if last > snap_index => {
                let index = snap_index + 1 + rng.next(last - snap_index);
                let t = model
                    .entries
                    .iter()
                    .find(|e| e.index == index)
                    .map_or(0, |e| e.term);
                req.compact = Some(snapshot(index, t));
            }
            _ => {
                if rng.next(4) == 0 {
                    *term += 1;
                }
                let first = snap_index + 1 + rng.next(last - snap_index + 1);
                let n = 1 + rng.next(4);
                req.entries = (first..first + n)
                    .map(|index| Entry {
                        index,
                        term: *term,
                        data: vec![index as u8; rng.next(20) as usize],
                        ..Default::default()
                    })
                    .collect();
            }
        }
        if rng.next(2) == 0 {
            req.hard_state = Some(HardState {
                term: *term,
                vote: rng.next(3),
                commit: snap_index,
            });
        }
        req
    }

    fn snapshot(index: u64, term: u64) -> Snapshot {
        Snapshot {
            data: index.to_le_bytes().to_vec(),
            metadata: Some(SnapshotMetadata {
                index,
                term,
                conf_state: None,
            }),
        }
    }

    #[test]
    fn file_store_matches_model() {
        for seed in 1..=5u64 {
            let mut rng = Xorshift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let dir = tempfile::tempdir().unwrap();
            let mut model = MemLogStore::new();
            let mut term = 1;
            let (mut file, _) = FileLogStore::open(dir.path()).unwrap();
            for step in 0..40 {
                let req = random_request(&mut rng, &model.recover(), &mut term);
                model.persist(&req).unwrap();
                file.persist(&req).unwrap();
                if step % 3 == 0 {
                    drop(file);
                    let (f, recovered) = FileLogStore::open(dir.path()).unwrap();
                    assert_eq!(recovered, model.recover(), "seed {seed} step {step}");
                    file = f;
                }
            }
        }
    }
}
