//! PartitionLog: the segments of one partition replica, owned by one shard.
//!
//! Append = validate, check producer state, assign offsets (synchronously, in order), then a
//! detached task writes the batch into the page cache. Durability is group commit: one flusher
//! task per log fdatasyncs everything whose write completed, then wakes every append it covers;
//! appends completing while a sync is in flight are covered by the next one.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::os::unix::io::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use super::batch::{self, BatchHeader};
use super::config::{FlushPolicy, LogConfig};
use super::epoch::LeaderEpochCache;
use super::error::{AppendError, StorageError};
use super::fileio::{self, Notify};
use super::producer::{ProducerCheck, ProducerStateManager};
use super::segment::{self, LogSegment, LOG_SUFFIX};

pub const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";
pub const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
pub const SNAPSHOT_SUFFIX: &str = "snapshot";
/// Producer-state snapshots kept on disk (newest first).
pub const SNAPSHOTS_MAX: usize = 2;
/// Largest producer snapshot / epoch checkpoint we read.
pub const METADATA_FILE_BYTES_MAX: u64 = 64 << 20;
/// Records parsed per batch when resolving a timestamp to an exact offset.
pub const TIMESTAMP_SCAN_RECORDS_MAX: usize = 1 << 20;

/// Result of an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// -1 unless the log uses LogAppendTime.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

/// Counters for benches and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    pub appends: u64,
    pub appended_bytes: u64,
    pub duplicates: u64,
    pub syncs: u64,
    /// Time spent inside fdatasync calls, and waiting for assigned writes before them.
    pub sync_us: u64,
    pub write_wait_us: u64,
    pub rolls: u64,
}

/// A run of whole batches in one segment file. Holds the segment, so retention cannot close
/// the file under a reader (a deleted segment's file is unlinked but stays readable).
#[derive(Clone)]
pub struct FileSlice {
    segment: Rc<LogSegment>,
    position: u64,
    len: usize,
}

impl std::fmt::Debug for FileSlice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSlice")
            .field("segment", &self.segment.base_offset())
            .field("position", &self.position)
            .field("len", &self.len)
            .finish()
    }
}

impl FileSlice {
    pub fn raw_fd(&self) -> RawFd {
        self.segment.file.as_raw_fd()
    }
    pub fn position(&self) -> u64 {
        self.position
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn segment_base_offset(&self) -> i64 {
        self.segment.base_offset()
    }
    /// Copies the slice out of the page cache.
    pub async fn read(&self) -> Result<Bytes, StorageError> {
        let bytes = self.segment.read_bytes(self.position, self.len).await?;
        if cfg!(debug_assertions) {
            // A slice is whole, valid batches back to back (checked in debug builds).
            let mut at = 0;
            while at < bytes.len() {
                let checked = batch::BatchHeader::parse(&bytes[at..])
                    .ok()
                    .and_then(|h| h.batch_bytes())
                    .filter(|&len| at + len <= bytes.len())
                    .map(|len| (len, batch::verify(&bytes[at..at + len])));
                match checked {
                    Some((len, Ok(_))) => at += len,
                    _ => {
                        return Err(StorageError::Corrupt {
                            path: self.segment.path().to_path_buf(),
                            position: self.position + at as u64,
                            reason: "slice does not hold whole valid batches".into(),
                        })
                    }
                }
            }
        }
        Ok(Bytes::from(bytes))
    }
}

#[derive(Debug, Default)]
pub struct ReadResult {
    pub slices: Vec<FileSlice>,
    pub bytes: usize,
}

/// An assigned batch waiting for the log's writer task.
struct QueuedWrite {
    base_offset: i64,
    next_offset: i64,
    segment: Rc<LogSegment>,
    position: u64,
    data: Vec<u8>,
}

/// Bytes the writer merges into one write (one io_uring op instead of one per batch).
pub const WRITE_MERGE_BYTES_MAX: usize = 4 << 20;
/// Bytes assigned but not yet in the page cache; appends wait (back-pressure) beyond it.
pub const QUEUED_WRITE_BYTES_MAX: u64 = 64 << 20;

struct LogInner {
    dir: PathBuf,
    config: LogConfig,
    segments: RefCell<BTreeMap<i64, Rc<LogSegment>>>,
    log_start_offset: Cell<i64>,
    /// Next offset to assign.
    log_end_offset: Cell<i64>,
    /// All writes below this completed.
    written_end: Cell<i64>,
    /// All data below this is covered by an fdatasync.
    synced_end: Cell<i64>,
    /// Assigned batches not yet handed to the kernel, in offset order.
    write_queue: RefCell<std::collections::VecDeque<QueuedWrite>>,
    writer_running: Cell<bool>,
    /// Bytes in `write_queue` plus the write in flight.
    queued_write_bytes: Cell<u64>,
    flusher_running: Cell<bool>,
    unflushed_messages: Cell<u64>,
    last_flush_ms: Cell<Option<i64>>,
    producers: RefCell<ProducerStateManager>,
    epochs: RefCell<LeaderEpochCache>,
    /// Serializes the async parts of append (roll, epoch checkpoint) and maintenance.
    /// Serializes appends and structural changes in call order (FIFO: appends keep their order).
    lock: crate::sync::FifoLock,
    /// A detached job (roll, truncation, ...) runs on behalf of the lock holder.
    detached_running: Cell<bool>,
    failed: RefCell<Option<String>>,
    closed: Cell<bool>,
    notify: Notify,
    stats: Cell<LogStats>,
}

pub struct PartitionLog {
    inner: Rc<LogInner>,
}

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLog")
            .field("dir", &self.inner.dir)
            .field("log_start_offset", &self.inner.log_start_offset.get())
            .field("log_end_offset", &self.inner.log_end_offset.get())
            .finish()
    }
}

/// What `open` found and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub clean_shutdown: bool,
    pub segments: usize,
    pub truncated_bytes: u64,
    pub producer_batches_replayed: u64,
}

fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    segment::file_path(dir, offset, SNAPSHOT_SUFFIX)
}

impl LogInner {
    fn check_failed(&self) -> Result<(), StorageError> {
        match &*self.failed.borrow() {
            Some(reason) => Err(StorageError::LogFailed {
                path: self.dir.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    fn check_usable(&self) -> Result<(), StorageError> {
        self.check_failed()?;
        if self.closed.get() {
            return Err(StorageError::Closed {
                path: self.dir.clone(),
            });
        }
        Ok(())
    }

    fn fail(&self, error: &StorageError) {
        log::error!("{}: taking log offline: {error}", self.dir.display());
        let mut failed = self.failed.borrow_mut();
        if failed.is_none() {
            *failed = Some(error.to_string());
        }
        drop(failed);
        self.notify.notify_all();
    }

    fn active(&self) -> Rc<LogSegment> {
        self.segments
            .borrow()
            .values()
            .next_back()
            .cloned()
            .expect("a log has at least one segment")
    }

    fn segments_vec(&self) -> Vec<Rc<LogSegment>> {
        self.segments.borrow().values().cloned().collect()
    }

    fn segment_for(&self, offset: i64) -> Option<Rc<LogSegment>> {
        self.segments
            .borrow()
            .range(..=offset)
            .next_back()
            .map(|(_, s)| s.clone())
    }

    fn bump(&self, f: impl FnOnce(&mut LogStats)) {
        let mut stats = self.stats.get();
        f(&mut stats);
        self.stats.set(stats);
    }

    fn high_watermark(&self) -> i64 {
        match self.config.flush {
            FlushPolicy::SyncBeforeAck => self.synced_end.get(),
            FlushPolicy::Interval { .. } => self.written_end.get(),
        }
    }

    /// Writes of [base, next_offset) reached the page cache (they complete in offset order).
    fn on_write_done(&self, base: i64, next_offset: i64, segment: &LogSegment, end_position: u64) {
        assert_eq!(base, self.written_end.get(), "writes complete in order");
        assert!(next_offset > base && next_offset <= self.log_end_offset.get());
        segment.mark_written(end_position, next_offset);
        self.written_end.set(next_offset);
        self.notify.notify_all();
    }

    fn enqueue_write(self: &Rc<Self>, write: QueuedWrite) {
        self.queued_write_bytes
            .set(self.queued_write_bytes.get() + write.data.len() as u64);
        self.write_queue.borrow_mut().push_back(write);
        if !self.writer_running.get() {
            self.writer_running.set(true);
            let log = self.clone();
            glommio::spawn_local(async move {
                let result = log.write_loop().await;
                log.writer_running.set(false);
                if let Err(e) = result {
                    log.write_queue.borrow_mut().clear();
                    log.fail(&e);
                }
            })
            .detach();
        }
    }

    /// The log's writer: drains the queue, merging runs of contiguous batches of one segment
    /// into a single write, so N appends arriving together cost one io_uring operation.
    async fn write_loop(&self) -> Result<(), StorageError> {
        loop {
            // Appenders woken by the last sync enqueue first, so their batches share one write
            // (a yield, not a timer: with nothing else runnable it returns at once).
            glommio::executor().yield_now().await;
            let (first, merged) = {
                let mut queue = self.write_queue.borrow_mut();
                let Some(first) = queue.pop_front() else {
                    return Ok(());
                };
                let mut merged: Vec<QueuedWrite> = Vec::new();
                let mut end = first.position + first.data.len() as u64;
                let mut total = first.data.len();
                while let Some(next) = queue.front() {
                    let same_run =
                        Rc::ptr_eq(&next.segment, &first.segment) && next.position == end;
                    if !same_run || total + next.data.len() > WRITE_MERGE_BYTES_MAX {
                        break;
                    }
                    end += next.data.len() as u64;
                    total += next.data.len();
                    merged.push(queue.pop_front().expect("front exists"));
                }
                (first, merged)
            };
            let segment = first.segment.clone();
            let (base, position) = (first.base_offset, first.position);
            let (next_offset, end_position) = match merged.last() {
                Some(last) => (last.next_offset, last.position + last.data.len() as u64),
                None => (first.next_offset, first.position + first.data.len() as u64),
            };
            let data = if merged.is_empty() {
                first.data
            } else {
                let mut data = Vec::with_capacity((end_position - position) as usize);
                data.extend_from_slice(&first.data);
                for w in &merged {
                    data.extend_from_slice(&w.data);
                }
                data
            };
            debug_assert_eq!(data.len() as u64, end_position - position);
            let len = data.len() as u64;
            fileio::write_owned_at(&segment.file, segment.path(), data, position).await?;
            assert!(self.queued_write_bytes.get() >= len);
            self.queued_write_bytes
                .set(self.queued_write_bytes.get() - len);
            self.on_write_done(base, next_offset, &segment, end_position);
        }
    }

    async fn wait_until(&self, done: impl Fn(&LogInner) -> bool) -> Result<(), StorageError> {
        loop {
            let seen = self.notify.generation();
            if done(self) {
                return Ok(());
            }
            if let Some(reason) = &*self.failed.borrow() {
                return Err(StorageError::LogFailed {
                    path: self.dir.clone(),
                    reason: reason.clone(),
                });
            }
            self.notify.wait(seen).await;
        }
    }

    async fn wait_written(&self, end: i64) -> Result<(), StorageError> {
        self.wait_until(|l| l.written_end.get() >= end).await
    }

    /// Waits until `end` is covered by an fdatasync, starting the flusher if needed.
    async fn wait_synced(self: &Rc<Self>, end: i64) -> Result<(), StorageError> {
        self.wait_written(end).await?;
        loop {
            let seen = self.notify.generation();
            if self.synced_end.get() >= end {
                return Ok(());
            }
            self.check_failed()?;
            // (Re)start the flusher: one started for an earlier target may be finishing.
            self.ensure_flusher(false);
            self.notify.wait(seen).await;
        }
    }

    /// Starts the log's flusher task unless one runs or nothing is unsynced.
    fn ensure_flusher(self: &Rc<Self>, once: bool) {
        if self.flusher_running.get() || self.synced_end.get() >= self.written_end.get() {
            return;
        }
        if self.failed.borrow().is_some() {
            return;
        }
        self.flusher_running.set(true);
        let log = self.clone();
        glommio::spawn_local(async move {
            let result = log.flush_loop(once).await;
            log.flusher_running.set(false);
            if let Err(e) = result {
                log.fail(&e);
            }
            log.notify.notify_all();
        })
        .detach();
    }

    /// Syncs until everything written is synced (or one round if `once`).
    async fn flush_loop(&self, once: bool) -> Result<(), StorageError> {
        let mut rounds = 0u64;
        loop {
            if rounds > 0 {
                // Appenders woken by the previous sync get to assign their next batches first
                // (a yield, not a timer: with nothing else runnable it returns at once) ...
                glommio::executor().yield_now().await;
            }
            rounds += 1;
            // ... and writes already assigned land in the page cache, so one sync covers them.
            let assigned = self.log_end_offset.get();
            let waited = std::time::Instant::now();
            self.wait_written(assigned).await?;
            let write_wait_us = waited.elapsed().as_micros() as u64;
            let target = self.written_end.get();
            let from = self.synced_end.get();
            if target <= from {
                return Ok(());
            }
            let dirty: Vec<Rc<LogSegment>> = {
                let segments = self.segments.borrow();
                let first = segments
                    .range(..=from)
                    .next_back()
                    .map(|(&b, _)| b)
                    .unwrap_or(i64::MIN);
                segments
                    .range(first..target)
                    .map(|(_, s)| s.clone())
                    .collect()
            };
            let synced = std::time::Instant::now();
            for segment in &dirty {
                segment
                    .file
                    .fdatasync()
                    .await
                    .map_err(|e| fileio::io_err("fdatasync", segment.path(), e))?;
            }
            let sync_us = synced.elapsed().as_micros() as u64;
            if target > self.synced_end.get() {
                self.synced_end.set(target);
            }
            self.unflushed_messages.set(0);
            self.bump(|s| {
                s.syncs += 1;
                s.sync_us += sync_us;
                s.write_wait_us += write_wait_us;
            });
            self.notify.notify_all();
            if once {
                return Ok(());
            }
        }
    }

    /// Runs `work` as a detached task and waits for its result; the caller holds the lock.
    /// If the caller's future is dropped, the work still runs to completion and the next lock
    /// holder waits for it: multi-step file operations (roll, truncation, retention, close)
    /// are never left half done by a cancelled request.
    async fn detached<T, Fut>(
        self: &Rc<Self>,
        _held: &crate::sync::FifoGuard<'_>,
        work: impl FnOnce(Rc<LogInner>) -> Fut,
    ) -> Result<T, StorageError>
    where
        T: 'static,
        Fut: std::future::Future<Output = Result<T, StorageError>> + 'static,
    {
        assert!(!self.detached_running.get(), "one detached job at a time");
        self.detached_running.set(true);
        let slot: Rc<RefCell<Option<Result<T, StorageError>>>> = Rc::new(RefCell::new(None));
        let future = work(self.clone());
        let (out, log) = (slot.clone(), self.clone());
        glommio::spawn_local(async move {
            let result = future.await;
            *out.borrow_mut() = Some(result);
            log.detached_running.set(false);
            log.notify.notify_all();
        })
        .detach();
        loop {
            let seen = self.notify.generation();
            if let Some(result) = slot.borrow_mut().take() {
                return result;
            }
            self.notify.wait(seen).await;
        }
    }

    fn size_bytes(&self) -> u64 {
        self.segments.borrow().values().map(|s| s.size()).sum()
    }

    async fn truncate_locked(&self, offset: i64) -> Result<(), StorageError> {
        let inner = self;
        let dir = inner.dir.clone();
        let new_end;
        if offset <= inner.log_start_offset.get() {
            let new_start = offset.max(0);
            // Newest first: a crash part-way leaves a shorter log, never one with a hole.
            for segment in inner.segments_vec().into_iter().rev() {
                if segment.base_offset() != new_start {
                    segment.delete_files(&dir).await?;
                }
            }
            // Recreates (empties) the file if a segment already starts at new_start.
            let seg = Rc::new(LogSegment::create(&dir, new_start, &inner.config).await?);
            {
                let mut segments = inner.segments.borrow_mut();
                segments.clear();
                segments.insert(new_start, seg);
            }
            inner.log_start_offset.set(new_start);
            new_end = new_start;
        } else {
            let doomed: Vec<_> = {
                let mut segments = inner.segments.borrow_mut();
                let keys: Vec<i64> = segments.range(offset..).map(|(&k, _)| k).collect();
                keys.iter().filter_map(|k| segments.remove(k)).collect()
            };
            for segment in doomed.into_iter().rev() {
                segment.delete_files(&dir).await?;
            }
            let active = inner.active();
            if let Some(batch) = active.find_batch(offset).await? {
                let cut = batch.header.base_offset;
                active.truncate_to(batch.position, cut).await?;
            }
            new_end = active.next_offset();
            active.write_indexes(&dir).await?;
        }
        fileio::sync_dir(&dir).await?;
        assert!(
            inner.write_queue.borrow().is_empty(),
            "writes drained before truncation"
        );
        inner.log_end_offset.set(new_end);
        inner.written_end.set(new_end);
        inner.synced_end.set(new_end);
        if inner.epochs.borrow_mut().truncate_from_end(new_end) {
            inner.persist_epochs().await?;
        }
        inner.load_producer_state().await?;
        inner.notify.notify_all();
        Ok(())
    }

    /// Caller holds the lock (via `detached`).
    async fn enforce_retention(&self, now_ms: i64) -> Result<usize, StorageError> {
        let inner = self;
        let config = &inner.config;
        let mut total: i64 = inner.size_bytes() as i64;
        let mut doomed = Vec::new();
        loop {
            let (first, next_base) = {
                let segments = inner.segments.borrow();
                let mut it = segments.values();
                match (it.next(), it.next()) {
                    (Some(first), Some(next)) => (first.clone(), next.base_offset()),
                    _ => break,
                }
            };
            let by_time = config.retention_ms >= 0
                && first.max_timestamp() >= 0
                && now_ms.saturating_sub(first.max_timestamp()) > config.retention_ms;
            let by_size = config.retention_bytes >= 0
                && total - first.size() as i64 >= config.retention_bytes;
            if !(by_time || by_size) || next_base > inner.high_watermark() {
                break;
            }
            inner.segments.borrow_mut().remove(&first.base_offset());
            inner.log_start_offset.set(next_base);
            total -= first.size() as i64;
            doomed.push(first);
        }
        let start = inner.log_start_offset.get();
        if !doomed.is_empty() && inner.epochs.borrow_mut().truncate_from_start(start) {
            inner.persist_epochs().await?;
        }
        // Readers holding slices keep the unlinked files open.
        for segment in &doomed {
            segment.delete_files(&inner.dir).await?;
        }
        Ok(doomed.len())
    }

    /// The log's FIFO lock (appends keep call order). Also waits out detached work started
    /// by a holder whose future was dropped.
    async fn lock(&self) -> Result<crate::sync::FifoGuard<'_>, StorageError> {
        let guard = self.lock.lock().await.map_err(|_| StorageError::Closed {
            path: self.dir.clone(),
        })?;
        self.wait_until(|l| !l.detached_running.get()).await?;
        Ok(guard)
    }

    async fn persist_epochs(&self) -> Result<(), StorageError> {
        let bytes = self.epochs.borrow().encode();
        fileio::write_file_atomic(&self.dir.join(LEADER_EPOCH_CHECKPOINT_FILE), bytes).await
    }

    async fn take_snapshot(&self, offset: i64) -> Result<(), StorageError> {
        let bytes = self.producers.borrow().encode();
        fileio::write_file_atomic(&snapshot_path(&self.dir, offset), bytes).await?;
        let mut offsets = list_snapshots(&self.dir)?;
        offsets.sort_unstable_by(|a, b| b.cmp(a));
        for old in offsets.into_iter().skip(SNAPSHOTS_MAX) {
            fileio::remove_file(&snapshot_path(&self.dir, old)).await?;
        }
        Ok(())
    }

    /// Rolls to a new active segment at the log end. Caller holds the lock.
    async fn roll(&self) -> Result<(), StorageError> {
        let end = self.log_end_offset.get();
        self.wait_written(end).await?;
        let old = self.active();
        old.file
            .fdatasync()
            .await
            .map_err(|e| fileio::io_err("fdatasync", old.path(), e))?;
        if end > self.synced_end.get() {
            // Only this segment can hold unsynced data: earlier ones were synced when rolled.
            self.synced_end.set(end);
            self.notify.notify_all();
        }
        old.on_become_inactive();
        old.write_indexes(&self.dir).await?;
        let new = Rc::new(LogSegment::create(&self.dir, end, &self.config).await?);
        fileio::sync_dir(&self.dir).await?;
        self.segments.borrow_mut().insert(end, new);
        self.take_snapshot(end).await?;
        self.bump(|s| s.rolls += 1);
        Ok(())
    }

    fn should_roll(&self, active: &LogSegment, bytes: u64, last_offset: i64, now_ms: i64) -> bool {
        if active.is_empty() {
            return false;
        }
        active.size() + bytes > self.config.segment_bytes
            || active.indexes_full()
            || !active.fits_offset(last_offset)
            || active
                .first_append_ms()
                .is_some_and(|t| now_ms.saturating_sub(t) >= self.config.segment_ms as i64)
    }

    /// Replays producer state from the newest usable snapshot <= log end.
    async fn load_producer_state(&self) -> Result<u64, StorageError> {
        let end = self.log_end_offset.get();
        let mut offsets = list_snapshots(&self.dir)?;
        offsets.sort_unstable_by(|a, b| b.cmp(a));
        let mut state = ProducerStateManager::new();
        let mut from = self.log_start_offset.get();
        for offset in offsets {
            let path = snapshot_path(&self.dir, offset);
            if offset > end {
                fileio::remove_file(&path).await?;
                continue;
            }
            match fileio::read_file(&path, METADATA_FILE_BYTES_MAX).await? {
                Some(bytes) => match ProducerStateManager::decode(&bytes) {
                    Ok(loaded) => {
                        state = loaded;
                        from = offset;
                        break;
                    }
                    Err(e) => {
                        log::warn!("{}: {e}, ignoring", path.display());
                        fileio::remove_file(&path).await?;
                    }
                },
                None => continue,
            }
        }
        let mut replayed = 0;
        for segment in self.segments_vec() {
            if segment.next_offset() <= from {
                continue;
            }
            let mut cursor = segment.cursor(0, segment.written_size(), false);
            if from > segment.base_offset() {
                if let Some(batch) = segment.find_batch(from).await? {
                    cursor = segment.cursor(batch.position, segment.written_size(), false);
                }
            }
            while let Some(batch) = cursor.next_valid().await? {
                if batch.header.base_offset >= from {
                    state.record(&batch.header);
                    replayed += 1;
                }
            }
        }
        *self.producers.borrow_mut() = state;
        Ok(replayed)
    }
}

fn list_snapshots(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| fileio::io_err("read dir", dir, e))? {
        let entry = entry.map_err(|e| fileio::io_err("read dir", dir, e))?;
        if let Some(name) = entry.file_name().to_str() {
            if let Some((offset, SNAPSHOT_SUFFIX)) = segment::parse_file_name(name) {
                out.push(offset);
            }
        }
    }
    Ok(out)
}

impl PartitionLog {
    /// Opens (creating if needed) the log in `dir`, recovering after an unclean shutdown.
    pub async fn open(dir: PathBuf, config: LogConfig) -> Result<Rc<PartitionLog>, StorageError> {
        Ok(Self::open_with_report(dir, config).await?.0)
    }

    pub async fn open_with_report(
        dir: PathBuf,
        config: LogConfig,
    ) -> Result<(Rc<PartitionLog>, RecoveryReport), StorageError> {
        config.validate()?;
        fileio::create_dir_durable(&dir).await?;
        let clean_marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = clean_marker.exists();
        let mut report = RecoveryReport {
            clean_shutdown: clean,
            ..RecoveryReport::default()
        };

        let mut bases = Vec::new();
        let mut strays = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| fileio::io_err("read dir", &dir, e))? {
            let entry = entry.map_err(|e| fileio::io_err("read dir", &dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(".tmp") {
                strays.push(entry.path());
                continue;
            }
            if let Some((base, LOG_SUFFIX)) = segment::parse_file_name(name) {
                bases.push(base);
            }
        }
        for stray in strays {
            fileio::remove_file(&stray).await?;
        }
        bases.sort_unstable();

        let mut epochs = match fileio::read_file(
            &dir.join(LEADER_EPOCH_CHECKPOINT_FILE),
            METADATA_FILE_BYTES_MAX,
        )
        .await?
        {
            Some(bytes) => LeaderEpochCache::decode(&bytes).unwrap_or_else(|e| {
                log::warn!(
                    "{}: leader-epoch-checkpoint: {e}, rebuilding",
                    dir.display()
                );
                LeaderEpochCache::default()
            }),
            None => LeaderEpochCache::default(),
        };
        let epochs_before = epochs.clone();

        let mut segments = BTreeMap::new();
        let mut prev_next: Option<i64> = None;
        for (i, &base) in bases.iter().enumerate() {
            let is_last = i + 1 == bases.len();
            let recover = is_last && !clean;
            let mut on_batch = |h: &BatchHeader| {
                epochs.assign(h.partition_leader_epoch, h.base_offset);
            };
            let (seg, cut) = LogSegment::open(&dir, base, &config, recover, &mut on_batch).await?;
            if let Some(cut) = cut {
                if !is_last {
                    return Err(StorageError::Corrupt {
                        path: seg.path().to_path_buf(),
                        position: cut.position,
                        reason: format!("sealed segment damaged: {}", cut.reason),
                    });
                }
                report.truncated_bytes += cut.bytes;
            }
            if let Some(prev) = prev_next {
                if base > prev {
                    log::warn!(
                        "{}: offsets {prev}..{base} missing before segment",
                        dir.display()
                    );
                }
                if base < prev {
                    return Err(StorageError::Corrupt {
                        path: seg.path().to_path_buf(),
                        position: 0,
                        reason: format!("segment base {base} overlaps previous end {prev}"),
                    });
                }
            }
            prev_next = Some(seg.next_offset());
            segments.insert(base, Rc::new(seg));
        }
        if segments.is_empty() {
            let seg = LogSegment::create(&dir, 0, &config).await?;
            fileio::sync_dir(&dir).await?;
            segments.insert(0, Rc::new(seg));
        }
        report.segments = segments.len();
        let log_start = *segments.keys().next().expect("one segment");
        let active = segments.values().next_back().expect("one segment").clone();
        let log_end = active.next_offset();
        // Whatever survived in the page cache is made durable before anything is served.
        active
            .file
            .fdatasync()
            .await
            .map_err(|e| fileio::io_err("fdatasync", active.path(), e))?;
        epochs.truncate_from_end(log_end);

        let inner = Rc::new(LogInner {
            dir: dir.clone(),
            config,
            segments: RefCell::new(segments),
            log_start_offset: Cell::new(log_start),
            log_end_offset: Cell::new(log_end),
            written_end: Cell::new(log_end),
            synced_end: Cell::new(log_end),
            write_queue: RefCell::new(std::collections::VecDeque::new()),
            writer_running: Cell::new(false),
            queued_write_bytes: Cell::new(0),
            flusher_running: Cell::new(false),
            unflushed_messages: Cell::new(0),
            last_flush_ms: Cell::new(None),
            producers: RefCell::new(ProducerStateManager::new()),
            epochs: RefCell::new(epochs),
            lock: crate::sync::FifoLock::new(),
            detached_running: Cell::new(false),
            failed: RefCell::new(None),
            closed: Cell::new(false),
            notify: Notify::default(),
            stats: Cell::new(LogStats::default()),
        });
        if *inner.epochs.borrow() != epochs_before {
            inner.persist_epochs().await?;
        }
        report.producer_batches_replayed = inner.load_producer_state().await?;
        if clean {
            fileio::remove_file(&clean_marker).await?;
            fileio::sync_dir(&dir).await?;
        }
        Ok((Rc::new(PartitionLog { inner }), report))
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }
    pub fn config(&self) -> &LogConfig {
        &self.inner.config
    }
    pub fn log_start_offset(&self) -> i64 {
        self.inner.log_start_offset.get()
    }
    /// Next offset to assign.
    pub fn log_end_offset(&self) -> i64 {
        self.inner.log_end_offset.get()
    }
    /// What readers may see: synced end under SyncBeforeAck, written end under Interval.
    pub fn high_watermark(&self) -> i64 {
        self.inner.high_watermark()
    }
    pub fn stats(&self) -> LogStats {
        self.inner.stats.get()
    }
    pub fn segment_count(&self) -> usize {
        self.inner.segments.borrow().len()
    }
    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.inner.segments.borrow().keys().copied().collect()
    }
    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.inner.size_bytes()
    }
    pub fn is_failed(&self) -> bool {
        self.inner.failed.borrow().is_some()
    }
    /// Producer ids with idempotence state.
    pub fn producer_count(&self) -> usize {
        self.inner.producers.borrow().len()
    }
    pub fn leader_epochs(&self) -> Vec<(i32, i64)> {
        self.inner.epochs.borrow().entries().to_vec()
    }

    /// Appends one client RecordBatch v2 (BaseOffset 0). See module docs.
    pub async fn append(
        &self,
        mut batch: BytesMut,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        let inner = &self.inner;
        inner.check_usable()?;
        let header = batch::validate_client_batch(&batch)?;
        let bytes = batch.len();
        if bytes > inner.config.max_message_bytes as usize {
            return Err(AppendError::MessageTooLarge {
                bytes,
                bytes_max: inner.config.max_message_bytes,
            });
        }
        if bytes as u64 > inner.config.segment_bytes {
            return Err(AppendError::RecordListTooLarge {
                bytes,
                bytes_max: inner.config.segment_bytes,
            });
        }

        let permit = {
            // The ticket for the FIFO lock is taken here, on the first poll: call order.
            let permit = inner.lock().await?;
            inner.check_usable()?;
            // Back-pressure, in line: wait while too much is assigned but not yet written.
            inner
                .wait_until(|l| l.queued_write_bytes.get() < QUEUED_WRITE_BYTES_MAX)
                .await?;
            let check = inner.producers.borrow().check(&header);
            if let ProducerCheck::Duplicate(original) = check? {
                drop(permit);
                inner.bump(|s| s.duplicates += 1);
                if inner.config.flush == FlushPolicy::SyncBeforeAck {
                    inner.wait_synced(original.last_offset + 1).await?;
                } else {
                    inner.wait_written(original.last_offset + 1).await?;
                }
                return Ok(AppendInfo {
                    base_offset: original.first_offset,
                    last_offset: original.last_offset,
                    log_append_time_ms: if inner.config.log_append_time {
                        original.max_timestamp
                    } else {
                        -1
                    },
                    log_start_offset: inner.log_start_offset.get(),
                });
            }
            let delta = i64::from(header.last_offset_delta);
            let last_offset = inner.log_end_offset.get() + delta;
            let needs_roll = inner.should_roll(&inner.active(), bytes as u64, last_offset, now_ms);
            let needs_epoch = leader_epoch >= 0
                && inner
                    .epochs
                    .borrow()
                    .latest_epoch()
                    .is_none_or(|latest| leader_epoch > latest);
            if needs_roll || needs_epoch {
                // Roll / epoch checkpoint: async file work, detached so a dropped append cannot
                // leave it half done; this append keeps its place (the lock) meanwhile.
                inner
                    .detached(&permit, move |log| async move {
                        let end = log.log_end_offset.get();
                        if log.should_roll(&log.active(), bytes as u64, end + delta, now_ms) {
                            if let Err(e) = log.roll().await {
                                log.fail(&e);
                                return Err(e);
                            }
                        }
                        let end = log.log_end_offset.get();
                        if log.epochs.borrow_mut().assign(leader_epoch, end) {
                            if let Err(e) = log.persist_epochs().await {
                                log.fail(&e);
                                return Err(e);
                            }
                        }
                        Ok(())
                    })
                    .await?;
            }
            permit
        };
        let base_offset = inner.log_end_offset.get();
        let last_offset = base_offset + i64::from(header.last_offset_delta);
        // Everything from here to the spawn is synchronous: offsets are assigned in order.
        assert_eq!(base_offset, inner.log_end_offset.get());
        batch::set_base_offset(&mut batch, base_offset);
        batch::set_partition_leader_epoch(&mut batch, leader_epoch);
        let log_append_time_ms = if inner.config.log_append_time {
            batch::set_log_append_time(&mut batch, now_ms);
            now_ms
        } else {
            -1
        };
        let stamped = BatchHeader::parse(&batch).expect("validated header");
        debug_assert!(batch::verify(&batch).is_ok());
        assert_eq!(stamped.last_offset(), last_offset);
        let active = inner.active();
        let position = active.assign(&stamped, bytes as u64, now_ms, &inner.config);
        let next_offset = last_offset + 1;
        inner.log_end_offset.set(next_offset);
        inner.producers.borrow_mut().record(&stamped);
        inner.bump(|s| {
            s.appends += 1;
            s.appended_bytes += bytes as u64;
        });
        inner.enqueue_write(QueuedWrite {
            base_offset,
            next_offset,
            segment: active,
            position,
            data: Vec::from(batch),
        });
        drop(permit);

        match inner.config.flush {
            FlushPolicy::SyncBeforeAck => inner.wait_synced(next_offset).await?,
            FlushPolicy::Interval { flush_messages, .. } => {
                inner.wait_written(next_offset).await?;
                let unflushed = inner.unflushed_messages.get() + header.record_count as u64;
                inner.unflushed_messages.set(unflushed);
                if unflushed >= flush_messages {
                    inner.unflushed_messages.set(0);
                    inner.ensure_flusher(true);
                }
            }
        }
        Ok(AppendInfo {
            base_offset,
            last_offset,
            log_append_time_ms,
            log_start_offset: inner.log_start_offset.get(),
        })
    }

    /// Whole batches from the one containing `start`, at most `max_bytes` (the first batch
    /// whole regardless if `min_one_batch`), stopping before `upper_offset`.
    pub async fn read(
        &self,
        start: i64,
        max_bytes: u32,
        upper_offset: i64,
        min_one_batch: bool,
    ) -> Result<ReadResult, StorageError> {
        let inner = &self.inner;
        let log_start = inner.log_start_offset.get();
        let log_end = inner.log_end_offset.get();
        if start < log_start || start > log_end {
            return Err(StorageError::OffsetOutOfRange {
                requested: start,
                start: log_start,
                end: log_end,
            });
        }
        let upper = upper_offset.min(inner.written_end.get());
        let mut result = ReadResult::default();
        let mut remaining = u64::from(max_bytes);
        let mut offset = start;
        while offset < upper {
            let Some(segment) = inner.segment_for(offset) else {
                break;
            };
            let Some(first) = segment.find_batch(offset).await? else {
                match inner.segments.borrow().range(offset + 1..).next() {
                    Some((&next, _)) => {
                        offset = next;
                        continue;
                    }
                    None => break,
                }
            };
            if first.header.last_offset() >= upper {
                break;
            }
            let upper_position = if upper >= segment.written_next_offset() {
                segment.written_size()
            } else {
                segment.position_of(upper).await?
            };
            debug_assert!(upper_position > first.position);
            let mut end = upper_position;
            if end - first.position > remaining {
                end = segment
                    .boundary_at_or_before(first.position, first.position + remaining)
                    .await?;
                if end == first.position {
                    if result.slices.is_empty() && min_one_batch {
                        end = first.end();
                    } else {
                        break;
                    }
                }
            }
            let len = end - first.position;
            assert!(len > 0 && end <= segment.written_size());
            result.slices.push(FileSlice {
                segment: segment.clone(),
                position: first.position,
                len: len as usize,
            });
            result.bytes += len as usize;
            remaining = remaining.saturating_sub(len);
            if end < segment.written_size() || remaining == 0 {
                break;
            }
            offset = segment.written_next_offset();
        }
        Ok(result)
    }

    /// First offset whose timestamp >= `timestamp_ms`, with that record's timestamp (the
    /// batch's max timestamp when records are compressed or LogAppendTime). Below the HW only.
    pub async fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        let hw = self.high_watermark();
        for segment in self.inner.segments_vec() {
            if segment.base_offset() >= hw {
                break;
            }
            if segment.max_timestamp() < timestamp_ms {
                continue;
            }
            let Some(found) = segment.find_timestamp(timestamp_ms).await? else {
                continue;
            };
            if found.header.last_offset() >= hw {
                return Ok(None);
            }
            let header = found.header;
            if header.is_log_append_time() || header.compression() != Ok(batch::Compression::None) {
                return Ok(Some((header.base_offset, header.max_timestamp)));
            }
            let bytes = segment
                .read_bytes(found.position, found.bytes as usize)
                .await?;
            if let Some(records) = batch::record_timestamps(&bytes, TIMESTAMP_SCAN_RECORDS_MAX) {
                for (offset_delta, timestamp_delta) in records {
                    let ts = header.base_timestamp + timestamp_delta;
                    if ts >= timestamp_ms {
                        return Ok(Some((header.base_offset + i64::from(offset_delta), ts)));
                    }
                }
            }
            return Ok(Some((header.base_offset, header.max_timestamp)));
        }
        Ok(None)
    }

    /// OffsetForLeaderEpoch: (epoch, end offset) from the leader-epoch cache.
    pub fn end_offset_for_leader_epoch(&self, epoch: i32) -> (i32, i64) {
        self.inner
            .epochs
            .borrow()
            .end_offset_for(epoch, self.log_end_offset())
    }

    /// Removes every batch at or after `offset` (a batch containing `offset` goes whole).
    /// `offset` <= log start empties the log and restarts it at `offset`.
    pub async fn truncate_to(&self, offset: i64) -> Result<(), StorageError> {
        let inner = &self.inner;
        inner.check_usable()?;
        let permit = inner.lock().await?;
        inner.check_usable()?;
        inner
            .detached(&permit, move |log| async move {
                let end = log.log_end_offset.get();
                log.wait_synced(end).await?;
                if offset >= end {
                    return Ok(());
                }
                let result = log.truncate_locked(offset).await;
                if let Err(e) = &result {
                    log.fail(e);
                }
                result
            })
            .await
    }

    /// Deletes whole non-active segments by retention.ms / retention.bytes.
    pub async fn enforce_retention(&self, now_ms: i64) -> Result<usize, StorageError> {
        let inner = &self.inner;
        inner.check_usable()?;
        let permit = inner.lock().await?;
        inner.check_usable()?;
        inner
            .detached(&permit, move |log| async move {
                log.enforce_retention(now_ms).await
            })
            .await
    }

    /// Makes everything appended so far durable (any policy) and waits for it.
    pub async fn flush(&self) -> Result<(), StorageError> {
        let inner = &self.inner;
        inner.check_usable()?;
        inner.wait_synced(inner.log_end_offset.get()).await
    }

    /// Time-driven work: segment.ms rolls and flush.ms interval flushes.
    pub async fn tick(&self, now_ms: i64) -> Result<(), StorageError> {
        let inner = &self.inner;
        inner.check_usable()?;
        let active = inner.active();
        if active
            .first_append_ms()
            .is_some_and(|t| now_ms.saturating_sub(t) >= inner.config.segment_ms as i64)
            && !active.is_empty()
        {
            let permit = inner.lock().await?;
            inner
                .detached(&permit, move |log| async move {
                    // Re-check: an append may have rolled meanwhile.
                    if Rc::ptr_eq(&active, &log.active()) && !active.is_empty() {
                        if let Err(e) = log.roll().await {
                            log.fail(&e);
                            return Err(e);
                        }
                    }
                    Ok(())
                })
                .await?;
        }
        if let FlushPolicy::Interval { flush_ms, .. } = inner.config.flush {
            let last = *inner.last_flush_ms.get().get_or_insert(now_ms);
            inner.last_flush_ms.set(Some(last));
            if now_ms.saturating_sub(last) >= flush_ms as i64 {
                inner.last_flush_ms.set(Some(now_ms));
                let end = inner.written_end.get();
                inner.ensure_flusher(true);
                inner.wait_synced(end).await?;
            }
        }
        Ok(())
    }

    /// Syncs everything, writes the active segment's indexes, a producer snapshot and the
    /// clean-shutdown marker. Further appends fail with `Closed`.
    pub async fn close(&self) -> Result<(), StorageError> {
        if self.inner.closed.get() {
            return Ok(());
        }
        let inner = &self.inner;
        let permit = inner.lock().await?;
        inner
            .detached(&permit, |log| async move {
                if log.closed.get() {
                    return Ok(());
                }
                log.closed.set(true);
                // A failed log gets no marker: the next open recovers.
                log.check_failed()?;
                let end = log.log_end_offset.get();
                log.wait_synced(end).await?;
                let active = log.active();
                active.write_indexes(&log.dir).await?;
                log.take_snapshot(end).await?;
                log.persist_epochs().await?;
                fileio::write_file_atomic(&log.dir.join(CLEAN_SHUTDOWN_FILE), Vec::new()).await
            })
            .await
    }

    /// Closes the log and removes its directory.
    pub async fn delete(self: Rc<Self>) -> Result<(), StorageError> {
        let inner = &self.inner;
        if !inner.closed.get() {
            let _ = self.close().await;
        }
        let dir = inner.dir.clone();
        for segment in inner.segments_vec() {
            segment.delete_files(&dir).await?;
        }
        inner.segments.borrow_mut().clear();
        std::fs::remove_dir_all(&dir).map_err(|e| fileio::io_err("remove dir", &dir, e))?;
        Ok(())
    }
}
