//! Typed storage errors. The broker maps them to Kafka error codes (`shoal_broker::errors`);
//! storage itself knows no wire codes.

use std::path::PathBuf;

use super::batch::BatchError;

#[derive(thiserror::Error, Debug)]
pub enum StorageError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt {path} at byte {position}: {reason}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    #[error("offset {requested} out of range [{start}, {end}]")]
    OffsetOutOfRange {
        requested: i64,
        start: i64,
        end: i64,
    },
    /// A write or sync failed earlier: the log refuses further work until reopened (recovery).
    #[error("log {path} is offline after an I/O failure: {reason}")]
    LogFailed { path: PathBuf, reason: String },
    #[error("log {path} is closed")]
    Closed { path: PathBuf },
    #[error("invalid log config: {0}")]
    InvalidConfig(String),
}

impl StorageError {
    pub fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
        source: impl Into<std::io::Error>,
    ) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            source: source.into(),
        }
    }
}

#[derive(thiserror::Error, Debug)]
pub enum AppendError {
    /// Framing or CRC broken (CORRUPT_MESSAGE, 2).
    #[error("corrupt batch: {0}")]
    CorruptMessage(BatchError),
    /// Well-formed but not acceptable: counts, BaseOffset, control batch, producer fields (INVALID_RECORD, 87).
    #[error("invalid record batch: {0}")]
    InvalidRecord(BatchError),
    /// Magic other than 2 (UNSUPPORTED_FOR_MESSAGE_FORMAT, 43).
    #[error("unsupported message format: {0}")]
    UnsupportedForMessageFormat(BatchError),
    /// Batch larger than max.message.bytes (MESSAGE_TOO_LARGE, 10).
    #[error("batch of {bytes} bytes exceeds max.message.bytes {bytes_max}")]
    MessageTooLarge { bytes: usize, bytes_max: u32 },
    /// Batch larger than segment.bytes (RECORD_LIST_TOO_LARGE, 18).
    #[error("batch of {bytes} bytes exceeds segment.bytes {bytes_max}")]
    RecordListTooLarge { bytes: usize, bytes_max: u64 },
    /// Sequence gap for an idempotent producer (OUT_OF_ORDER_SEQUENCE_NUMBER, 45).
    #[error("producer {producer_id}: expected sequence {expected}, got {received}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        received: i32,
    },
    /// Stale producer epoch (INVALID_PRODUCER_EPOCH, 47).
    #[error("producer {producer_id}: epoch {received} is older than current epoch {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        current: i16,
        received: i16,
    },
    /// A replicated batch that does not continue the follower's log.
    #[error("replicated batch at {base_offset} does not continue the log at {expected}")]
    NotContiguous { expected: i64, base_offset: i64 },
    /// Disk or file failure (KAFKA_STORAGE_ERROR, 56).
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<BatchError> for AppendError {
    fn from(error: BatchError) -> Self {
        match error {
            BatchError::TooShort { .. }
            | BatchError::LengthMismatch { .. }
            | BatchError::CrcMismatch { .. }
            | BatchError::UnknownCompression { .. } => AppendError::CorruptMessage(error),
            BatchError::UnsupportedMagic { .. } => AppendError::UnsupportedForMessageFormat(error),
            BatchError::NonZeroBaseOffset { .. }
            | BatchError::BadRecordCount { .. }
            | BatchError::ControlBatch
            | BatchError::Transactional
            | BatchError::MissingKey { .. }
            | BatchError::BadRecords { .. }
            | BatchError::BadSequence { .. } => AppendError::InvalidRecord(error),
        }
    }
}
