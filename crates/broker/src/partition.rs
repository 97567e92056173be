//! A partition as its owning shard holds it, and the owner-side operations on it (append, read,
//! wait for data). Nothing here knows the shard mesh: callers reach the owner first
//! (`Shard::on_partition`), then call these.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use uuid::Uuid;

use crate::errors::KafkaCode;
use crate::replica::PartitionReplica;
use shoal_protocol::errors as ec;
use shoal_protocol::now_ms;
use shoal_storage::{FileSlice, PartitionLog};
use shoal_sync::Notify;

pub struct LocalPartition {
    pub topic_id: Uuid,
    pub log: Rc<PartitionLog>,
    /// Notified whenever the high watermark may have moved (long-polling fetches wait here).
    pub data_ready: Rc<Notify>,
    /// Its role (leader, follower, idle) and replication state.
    pub replica: Rc<PartitionReplica>,
}

impl LocalPartition {
    /// What consumers may see: below the replicated high watermark (on a single replica, the
    /// log's durable end).
    pub fn high_watermark(&self) -> i64 {
        self.replica.high_watermark()
    }
}

impl AppendOutcome {
    pub fn error(code: i16, message: impl Into<String>) -> Self {
        AppendOutcome {
            error_code: code,
            error_message: Some(message.into()),
            base_offset: -1,
            last_offset: -1,
            log_append_time_ms: -1,
            log_start_offset: -1,
        }
    }
}

/// Result of appending one partition's batch (owner side).
#[derive(Debug, Clone)]
pub struct AppendOutcome {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub base_offset: i64,
    /// Not on the wire: where `acks=all` must wait to.
    pub last_offset: i64,
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

/// Result of reading one partition (owner side).
#[derive(Debug, Clone, Default)]
pub struct ReadOutcome {
    pub error_code: i16,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// Empty when there is nothing to return, never absent: Kafka sends empty records even
    /// with an error.
    pub records: RecordData,
}

/// A partition's record bytes as read: copied out of the page cache, or the file ranges that
/// hold them, for a zero-copy send (`fetch_zero_copy`).
#[derive(Debug, Clone)]
pub enum RecordData {
    Copied(Bytes),
    Files(Vec<FileRange>),
}

impl Default for RecordData {
    fn default() -> Self {
        RecordData::Copied(Bytes::new())
    }
}

impl RecordData {
    pub fn len(&self) -> usize {
        match self {
            RecordData::Copied(b) => b.len(),
            RecordData::Files(ranges) => ranges.iter().map(|r| r.len).sum(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whole batches at `position..position + len` of a segment file, through a duplicate of the
/// segment's descriptor: it can cross shards, and it keeps the file readable after retention
/// unlinks it (the pin the zero-copy send needs).
#[derive(Debug, Clone)]
pub struct FileRange {
    pub fd: Arc<OwnedFd>,
    pub position: u64,
    pub len: usize,
}

impl FileRange {
    fn of(slice: &FileSlice) -> std::io::Result<Self> {
        // SAFETY: the slice holds its segment, so the descriptor is open while it is borrowed.
        let borrowed = unsafe { BorrowedFd::borrow_raw(slice.raw_fd()) };
        Ok(FileRange {
            fd: Arc::new(borrowed.try_clone_to_owned()?),
            position: slice.position(),
            len: slice.len(),
        })
    }
}

impl ReadOutcome {
    pub fn error(code: i16) -> Self {
        ReadOutcome {
            error_code: code,
            high_watermark: -1,
            log_start_offset: -1,
            records: RecordData::default(),
        }
    }
    pub fn bytes(&self) -> usize {
        self.records.len()
    }
}

/// How `ops::read` returns record bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    Copy,
    FileRanges,
}

/// Owner-side partition operations, run through `Shard::on_partition`.
pub mod ops {
    use super::*;

    /// Must reach `PartitionLog::append` without awaiting first (see `Shard::append_ordered`).
    /// The batch is stamped with the partition's current `leader_epoch`.
    pub async fn append(p: Rc<LocalPartition>, batch: Bytes, leader_epoch: i32) -> AppendOutcome {
        let result = p.log.append(batch, leader_epoch, now_ms()).await;
        match result {
            Ok(info) => {
                p.data_ready.notify_all();
                AppendOutcome {
                    error_code: ec::NONE,
                    error_message: None,
                    base_offset: info.base_offset,
                    last_offset: info.last_offset,
                    log_append_time_ms: info.log_append_time_ms,
                    log_start_offset: info.log_start_offset,
                }
            }
            Err(e) => AppendOutcome {
                error_code: e.kafka_code(),
                error_message: Some(e.to_string()),
                base_offset: -1,
                last_offset: -1,
                log_append_time_ms: -1,
                log_start_offset: p.log.log_start_offset(),
            },
        }
    }

    /// Reads whole batches from `offset` below the high watermark.
    pub async fn read(
        p: Rc<LocalPartition>,
        offset: i64,
        max_bytes: u32,
        min_one_batch: bool,
        mode: ReadMode,
    ) -> ReadOutcome {
        let hw = p.high_watermark();
        let log_start = p.log.log_start_offset();
        let mut out = ReadOutcome {
            error_code: ec::NONE,
            high_watermark: hw,
            log_start_offset: log_start,
            records: RecordData::default(),
        };
        // Between the high watermark and the log end (a new leader whose followers have not
        // acknowledged yet) is no error: nothing to return yet, as Kafka answers.
        if offset < log_start || offset > p.log.log_end_offset() {
            out.error_code = ec::OFFSET_OUT_OF_RANGE;
            return out;
        }
        if offset >= hw {
            return out;
        }
        let result = match p.log.read(offset, max_bytes, hw, min_one_batch).await {
            Ok(result) => result,
            Err(e) => {
                out.error_code = e.kafka_code();
                return out;
            }
        };
        let records = match mode {
            ReadMode::FileRanges => file_ranges(&result.slices),
            ReadMode::Copy => copy_out(&result.slices).await,
        };
        match records {
            Ok(records) => out.records = records,
            Err(code) => out.error_code = code,
        }
        out
    }

    fn file_ranges(slices: &[FileSlice]) -> Result<RecordData, i16> {
        let ranges = slices
            .iter()
            .map(FileRange::of)
            .collect::<Result<Vec<_>, _>>();
        ranges.map(RecordData::Files).map_err(|e| {
            log::error!("read: duplicating a segment descriptor: {e}");
            ec::KAFKA_STORAGE_ERROR
        })
    }

    async fn copy_out(slices: &[FileSlice]) -> Result<RecordData, i16> {
        let copy = |e: shoal_storage::StorageError| {
            log::error!("read: {e}");
            e.kafka_code()
        };
        if let [slice] = slices {
            return slice.read().await.map(RecordData::Copied).map_err(copy);
        }
        let mut buf = BytesMut::with_capacity(slices.iter().map(FileSlice::len).sum());
        for slice in slices {
            buf.extend_from_slice(&slice.read().await.map_err(copy)?);
        }
        Ok(RecordData::Copied(buf.freeze()))
    }

    /// Waits until the partition has data at `offset` (or it changes state), bounded by `deadline`.
    pub async fn wait_for_data(p: Rc<LocalPartition>, offset: i64, deadline: Instant) {
        loop {
            if p.high_watermark() > offset || p.log.log_start_offset() > offset {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            let notified = p.data_ready.notified();
            futures_lite::future::or(notified, glommio::timer::sleep(deadline - now)).await;
        }
    }
}
