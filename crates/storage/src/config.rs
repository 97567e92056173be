//! Per-log (per-topic) configuration, with Kafka's names and defaults.

use super::error::StorageError;

/// When appended data is made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Acknowledge only once an fdatasync covers the batch (group commit). Default.
    SyncBeforeAck,
    /// Kafka style: acknowledge after the write; sync every `flush_ms` (on `tick`) or every
    /// `flush_messages` appended messages. u64::MAX disables a trigger.
    Interval { flush_ms: u64, flush_messages: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// segment.bytes: roll when the active segment would exceed this.
    pub segment_bytes: u64,
    /// segment.ms: roll a non-empty active segment this long after its first append.
    pub segment_ms: u64,
    /// index.interval.bytes: bytes between sparse index entries.
    pub index_interval_bytes: u32,
    /// segment.index.bytes: offset index size limit (8-byte entries); roll when full.
    pub segment_index_bytes: u32,
    /// retention.ms, -1 = forever.
    pub retention_ms: i64,
    /// retention.bytes, -1 = unlimited.
    pub retention_bytes: i64,
    /// max.message.bytes: largest batch accepted.
    pub max_message_bytes: u32,
    pub flush: FlushPolicy,
    /// message.timestamp.type=LogAppendTime.
    pub log_append_time: bool,
    /// cleanup.policy contains `delete`: retention.ms / retention.bytes delete old segments.
    pub cleanup_delete: bool,
    /// cleanup.policy contains `compact`: the cleaner keeps the latest record per key, and
    /// records without a key are refused.
    pub cleanup_compact: bool,
    /// min.cleanable.dirty.ratio, in thousandths (Kafka's 0.5 = 500).
    pub min_cleanable_dirty_ratio_permille: u32,
    /// min.compaction.lag.ms: a segment is cleanable once its newest record is this old.
    pub min_compaction_lag_ms: i64,
    /// max.compaction.lag.ms: a dirty segment this old is cleaned whatever the dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// delete.retention.ms: a tombstone survives at least this long after it is first cleaned.
    pub delete_retention_ms: i64,
}

pub const GIB: u64 = 1 << 30;
/// Positions in the offset index are u32 and Kafka caps segment.bytes at i32::MAX.
pub const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;
/// Smallest segment we accept (tests use small segments to force many rolls).
pub const SEGMENT_BYTES_MIN: u64 = 1024;
pub const OFFSET_INDEX_ENTRY_BYTES: u32 = 8;
pub const TIME_INDEX_ENTRY_BYTES: u32 = 12;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: GIB,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 * 1024 * 1024,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            max_message_bytes: 1_048_588,
            flush: FlushPolicy::SyncBeforeAck,
            log_append_time: false,
            cleanup_delete: true,
            cleanup_compact: false,
            min_cleanable_dirty_ratio_permille: 500,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            delete_retention_ms: 86_400_000,
        }
    }
}

impl LogConfig {
    pub fn validate(&self) -> Result<(), StorageError> {
        let bad = |why: String| Err(StorageError::InvalidConfig(why));
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.segment_bytes) {
            return bad(format!(
                "segment.bytes {} not in [{SEGMENT_BYTES_MIN}, {SEGMENT_BYTES_MAX}]",
                self.segment_bytes
            ));
        }
        if self.segment_ms == 0 {
            return bad("segment.ms must be > 0".into());
        }
        if self.index_interval_bytes == 0 {
            return bad("index.interval.bytes must be > 0".into());
        }
        if self.segment_index_bytes < 4 * TIME_INDEX_ENTRY_BYTES {
            return bad(format!(
                "segment.index.bytes {} must hold at least 4 entries",
                self.segment_index_bytes
            ));
        }
        if self.retention_ms < -1 || self.retention_bytes < -1 {
            return bad("retention.ms / retention.bytes must be >= -1".into());
        }
        if !self.cleanup_delete && !self.cleanup_compact {
            return bad("cleanup.policy must name delete, compact or both".into());
        }
        if self.min_cleanable_dirty_ratio_permille > 1000 {
            return bad("min.cleanable.dirty.ratio must be in [0, 1]".into());
        }
        if self.min_compaction_lag_ms < 0
            || self.max_compaction_lag_ms < 1
            || self.delete_retention_ms < 0
        {
            return bad(
                "min.compaction.lag.ms and delete.retention.ms must be >= 0, max.compaction.lag.ms >= 1"
                    .into(),
            );
        }
        if self.max_message_bytes < super::batch::HEADER_BYTES as u32 {
            return bad("max.message.bytes is smaller than a batch header".into());
        }
        if let FlushPolicy::Interval {
            flush_ms,
            flush_messages,
        } = self.flush
        {
            if flush_ms == 0 || flush_messages == 0 {
                return bad("flush.ms and flush.messages must be > 0".into());
            }
        }
        Ok(())
    }

    /// Offset index entries per segment (segment.index.bytes / 8).
    pub fn offset_index_entries_max(&self) -> usize {
        (self.segment_index_bytes / OFFSET_INDEX_ENTRY_BYTES) as usize
    }

    /// Time index entries per segment (segment.index.bytes / 12).
    pub fn time_index_entries_max(&self) -> usize {
        (self.segment_index_bytes / TIME_INDEX_ENTRY_BYTES) as usize
    }
}
