//! The durable, segmented partition log (issue 2).
//!
//! Kafka's vocabulary: a [`PartitionLog`] owns [`LogSegment`]s; each segment is a `.log` file
//! of RecordBatch v2 bytes exactly as Kafka stores them, with a sparse `.index` and
//! `.timeindex`. See `docs/ARCHITECTURE.md` ("Storage") for the format and recovery rules.

pub mod batch;
pub mod compaction;
pub mod config;
pub mod epoch;
pub mod error;
mod fileio;
pub mod index;
pub mod log;
pub mod producer;
pub mod segment;

pub use self::config::{FlushPolicy, LogConfig};
pub use self::error::{AppendError, StorageError};
pub use self::log::{
    AppendInfo, CleanReport, FileSlice, IoThrottle, LogStats, LogTimings, PartitionLog, ReadResult,
    RecoveryReport,
};
pub use self::segment::LogSegment;
