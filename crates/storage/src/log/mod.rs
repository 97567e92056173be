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

use bytes::Bytes;

use super::batch::{self, BatchHeader};
use super::config::{FlushPolicy, LogConfig};
use super::epoch::LeaderEpochCache;
use super::error::{AppendError, StorageError};
use super::fileio;
use super::producer::{ProducerCheck, ProducerStateManager};
use super::segment::{self, LogSegment, LOG_SUFFIX};
use shoal_sync::Notify;

pub use self::clean::{
    CleanReport, IoThrottle, SwapManifest, CLEANED_SUFFIX, CLEAN_SWAP_FILE, CRASH_AT_ENV,
};

mod append;
mod clean;
mod maintenance;
mod open;
mod read;
mod writer;

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

/// Where an append's time goes; one is shared by the logs of a shard (the broker's metrics).
#[derive(Debug, Default)]
pub struct LogTimings {
    /// From `append` being called to the batch placed (FIFO lock, back-pressure, rolls).
    pub append_queue: shoal_metrics::Histogram,
    /// From `append` being called to the batch durable: what an `acks>=1` producer waits for.
    pub append: shoal_metrics::Histogram,
    /// One merged write (one io_uring write).
    pub write: shoal_metrics::Histogram,
    /// One fdatasync.
    pub fsync: shoal_metrics::Histogram,
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
    data: WriteData,
}

/// A queued write's bytes: a batch still in the buffer it arrived in, written as a stamped
/// copy of its head plus the rest of that buffer (no user-space copy of the records), or bytes
/// the log already owns.
enum WriteData {
    Shared { batch: Bytes, stamp: Option<Stamp> },
    Owned(Vec<u8>),
}

/// Header fields an append stamps outside the CRC.
#[derive(Debug, Clone, Copy)]
struct Stamp {
    base_offset: i64,
    leader_epoch: i32,
}

impl WriteData {
    fn len(&self) -> usize {
        match self {
            WriteData::Shared { batch, .. } => batch.len(),
            WriteData::Owned(bytes) => bytes.len(),
        }
    }

    /// The stamped header prefix, if this batch is stamped on its way to the file.
    fn stamped_head(&self) -> Option<[u8; batch::STAMPED_HEAD_BYTES]> {
        match self {
            WriteData::Shared {
                batch,
                stamp: Some(stamp),
            } => Some(batch::stamped_head(
                batch,
                stamp.base_offset,
                stamp.leader_epoch,
            )),
            _ => None,
        }
    }

    /// The bytes after `stamped_head` (or all of them when there is none).
    fn unstamped_rest(&self) -> &[u8] {
        match self {
            WriteData::Shared {
                batch,
                stamp: Some(_),
            } => &batch[batch::STAMPED_HEAD_BYTES..],
            WriteData::Shared { batch, stamp: None } => batch,
            WriteData::Owned(bytes) => bytes,
        }
    }
}

/// Bytes the writer gathers into one write (one system call instead of one per batch).
pub const WRITE_MERGE_BYTES_MAX: usize = 4 << 20;
/// Bytes assigned but not yet in the page cache; appends wait (back-pressure) beyond it.
pub const QUEUED_WRITE_BYTES_MAX: u64 = 64 << 20;

struct LogInner {
    dir: PathBuf,
    /// Changed live by [`PartitionLog::set_config`]; sizes apply from the next segment.
    config: Cell<LogConfig>,
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
    /// Serializes appends, rolls and epoch checkpoints in call order (FIFO: appends keep their
    /// order); retention, truncation and close hold it too, after `maintenance`.
    lock: shoal_sync::FifoLock,
    /// Serializes changes to sealed segments (cleaner swap, retention, truncation, close); taken
    /// before `lock`. The cleaner's swap holds only this one, so appends go on during it.
    maintenance: shoal_sync::FifoLock,
    /// A detached job (roll, truncation, ...) runs on behalf of the lock holder.
    detached_running: Cell<bool>,
    failed: RefCell<Option<String>>,
    closed: Cell<bool>,
    notify: Notify,
    stats: Cell<LogStats>,
    timings: RefCell<Rc<LogTimings>>,
    /// The cleaner's first dirty offset: everything below was cleaned by this process.
    cleaner_end: Cell<i64>,
    /// Earliest delete horizon of a tombstone the last cleaning kept (i64::MAX: none).
    tombstone_horizon_ms: Cell<i64>,
    /// Bumped by truncation: a cleaning that started before it must not swap.
    generation: Cell<u64>,
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
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }
    pub fn config(&self) -> LogConfig {
        self.inner.config.get()
    }

    /// A topic config change, effective from the next append, tick or retention pass; segment
    /// and index sizes apply from the next segment.
    pub fn set_config(&self, config: LogConfig) -> Result<(), StorageError> {
        config.validate()?;
        self.inner.config.set(config);
        Ok(())
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
    /// The end of what has been written to the segment files (readable, perhaps not synced).
    pub fn written_end(&self) -> i64 {
        self.inner.written_end.get()
    }
    /// Waits until the written end reaches `end` (or the log fails or closes).
    pub async fn wait_written(&self, end: i64) -> Result<(), StorageError> {
        self.inner.wait_written(end).await
    }
    /// Records this log's stage timings into `timings` from now on.
    pub fn set_timings(&self, timings: Rc<LogTimings>) {
        *self.inner.timings.borrow_mut() = timings;
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
    /// The leader epoch of the batch holding `offset` (`-1` when none is known).
    pub fn epoch_at(&self, offset: i64) -> i32 {
        self.inner.epochs.borrow().epoch_at(offset).unwrap_or(-1)
    }

    /// Removes every batch at or after `offset` (a batch containing `offset` goes whole).
    /// `offset` <= log start empties the log and restarts it at `offset`.
    pub async fn truncate_to(&self, offset: i64) -> Result<(), StorageError> {
        self.inner
            .locked_detached(move |log| async move {
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
        self.inner
            .locked_detached(move |log| async move { log.enforce_retention(now_ms).await })
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
            .is_some_and(|t| now_ms.saturating_sub(t) >= inner.config.get().segment_ms as i64)
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
        if let FlushPolicy::Interval { flush_ms, .. } = inner.config.get().flush {
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
        let _maintenance = inner.maintenance_lock().await?;
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
        // Gone already is the goal: the broker also sweeps a deleted topic's unopened partition
        // directories, concurrently with the owners' deletes.
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(fileio::io_err("remove dir", &dir, e))
            }
            _ => Ok(()),
        }
    }
}
