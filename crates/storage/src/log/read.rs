//! Reads: batch lookup through the offset index, and timestamp lookup.

use super::*;

impl PartitionLog {
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
}
