//! Log compaction, the pure part: an offset map (key → latest offset) and the cleaning of one
//! stored batch against it. No I/O; `log/clean.rs` streams segments through these functions
//! and swaps the result in.
//!
//! Kafka's semantics (LogCleaner, KIP-534):
//! - a keyed record survives if no later record of its key is in the map (offset >= the map's);
//!   records without a key are dropped (a compacted topic refuses them on produce);
//! - a surviving tombstone (null value) is kept until its batch's delete horizon has passed;
//!   the first pass that keeps it sets the horizon to now + `delete.retention.ms` (attribute
//!   bit 6, BaseTimestamp = horizon, record timestamp deltas rebased so timestamps stay);
//! - control batches are kept as they are;
//! - a batch left without records is dropped, unless it is one of the batches the producer
//!   state remembers for a live idempotent producer: then its header stays (RecordCount 0), so
//!   sequence checks and duplicate detection work exactly as before cleaning;
//! - offsets never change: BaseOffset, LastOffsetDelta and the records' offset deltas are the
//!   original ones; the CRC is recomputed; compressed batches are rewritten in their codec.

pub mod codec;

use std::collections::{HashMap, HashSet};

use bytes::{BufMut, BytesMut};

use super::batch::{
    self, BatchError, BatchHeader, Compression, ATTRIBUTES_AT, ATTR_COMPRESSION_MASK,
    ATTR_DELETE_HORIZON, BASE_TIMESTAMP_AT, CRC_AT, HEADER_BYTES, LENGTH_AT, LOG_OVERHEAD_BYTES,
    RECORD_COUNT_AT,
};

/// Distinct keys one cleaning pass maps (Kafka sizes its map by `log.cleaner.dedupe.buffer.size`).
pub const OFFSET_MAP_ENTRIES_MAX: usize = 1 << 20;
/// Key bytes the offset map holds in one pass.
pub const OFFSET_MAP_KEY_BYTES_MAX: usize = 64 << 20;
/// Records one batch may hold for the cleaner to parse it.
pub const BATCH_RECORDS_MAX: usize = 1 << 20;

/// One record of a batch's (decompressed) records section, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct RecordView<'a> {
    pub attributes: u8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value_is_null: bool,
    /// Key length onwards (key, value, headers), copied verbatim when re-encoding.
    pub tail: &'a [u8],
}

fn bad(reason: &'static str) -> BatchError {
    BatchError::BadRecords { reason }
}

fn get_varint(buf: &[u8], at: &mut usize) -> Result<i64, BatchError> {
    batch::get_varlong(buf, at).ok_or(bad("truncated varint"))
}

/// A varint length followed by that many bytes (None for -1).
fn get_bytes<'a>(buf: &'a [u8], at: &mut usize) -> Result<Option<&'a [u8]>, BatchError> {
    let len = get_varint(buf, at)?;
    if len < 0 {
        return Ok(None);
    }
    let end = at
        .checked_add(len as usize)
        .filter(|&end| end <= buf.len())
        .ok_or(bad("field overruns the record"))?;
    let out = &buf[*at..end];
    *at = end;
    Ok(Some(out))
}

/// Parses exactly `count` records filling `payload`.
pub fn parse_records(payload: &[u8], count: usize) -> Result<Vec<RecordView<'_>>, BatchError> {
    if count > BATCH_RECORDS_MAX {
        return Err(bad("more records than BATCH_RECORDS_MAX"));
    }
    let mut out = Vec::with_capacity(count);
    let mut at = 0;
    for _ in 0..count {
        let record = get_bytes(payload, &mut at)?.ok_or(bad("negative record length"))?;
        let mut inner = 0;
        let attributes = *record.first().ok_or(bad("empty record"))?;
        inner += 1;
        let timestamp_delta = get_varint(record, &mut inner)?;
        let offset_delta =
            i32::try_from(get_varint(record, &mut inner)?).map_err(|_| bad("offset delta"))?;
        let tail = &record[inner..];
        let key = get_bytes(record, &mut inner)?;
        let value = get_bytes(record, &mut inner)?;
        out.push(RecordView {
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            value_is_null: value.is_none(),
            tail,
        });
    }
    if at != payload.len() {
        return Err(bad("bytes after the last record"));
    }
    Ok(out)
}

/// A batch's records, decompressed, with the framing to write them back in.
pub struct DecodedBatch {
    pub header: BatchHeader,
    pub codec: Compression,
    pub framing: codec::Framing,
    pub payload: Vec<u8>,
}

impl DecodedBatch {
    pub fn decode(batch: &[u8]) -> Result<DecodedBatch, BatchError> {
        let header = BatchHeader::parse(batch)?;
        let codec = header.compression()?;
        let (payload, framing) = codec::decompress(codec, &batch[HEADER_BYTES..])?;
        Ok(DecodedBatch {
            header,
            codec,
            framing,
            payload,
        })
    }

    pub fn records(&self) -> Result<Vec<RecordView<'_>>, BatchError> {
        parse_records(&self.payload, self.header.record_count as usize)
    }
}

/// Every record of a batch for a compacted topic must have a key (Kafka: INVALID_RECORD).
pub fn check_keys(batch: &[u8]) -> Result<(), BatchError> {
    let decoded = DecodedBatch::decode(batch)?;
    match decoded.records()?.iter().find(|r| r.key.is_none()) {
        Some(record) => Err(BatchError::MissingKey {
            offset_delta: record.offset_delta,
        }),
        None => Ok(()),
    }
}

/// Key → offset of its latest record, over the dirty section of a log.
#[derive(Debug, Default)]
pub struct OffsetMap {
    latest: HashMap<Box<[u8]>, i64>,
    key_bytes: usize,
    entries_max: usize,
    key_bytes_max: usize,
}

/// The map cannot take another key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapFull;

impl OffsetMap {
    pub fn new() -> Self {
        Self::with_limits(OFFSET_MAP_ENTRIES_MAX, OFFSET_MAP_KEY_BYTES_MAX)
    }

    pub fn with_limits(entries_max: usize, key_bytes_max: usize) -> Self {
        assert!(entries_max > 0 && key_bytes_max > 0);
        OffsetMap {
            latest: HashMap::new(),
            key_bytes: 0,
            entries_max,
            key_bytes_max,
        }
    }

    pub fn len(&self) -> usize {
        self.latest.len()
    }
    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.latest.get(key).copied()
    }

    /// Records that `key`'s latest record is at `offset` (offsets arrive in log order).
    pub fn put(&mut self, key: &[u8], offset: i64) -> Result<(), MapFull> {
        if let Some(slot) = self.latest.get_mut(key) {
            assert!(offset >= *slot, "offsets are mapped in log order");
            *slot = offset;
            return Ok(());
        }
        if self.latest.len() >= self.entries_max || self.key_bytes + key.len() > self.key_bytes_max
        {
            return Err(MapFull);
        }
        self.key_bytes += key.len();
        self.latest.insert(key.into(), offset);
        Ok(())
    }

    /// Maps every keyed record of a stored batch. On `MapFull` part of the batch may be in;
    /// that is harmless (those entries point past what the caller then cleans).
    pub fn put_batch(&mut self, batch: &[u8]) -> Result<Result<(), MapFull>, BatchError> {
        let header = BatchHeader::parse(batch)?;
        if header.is_control() {
            return Ok(Ok(()));
        }
        let decoded = DecodedBatch::decode(batch)?;
        for record in decoded.records()? {
            if let Some(key) = record.key {
                let offset = header.base_offset + i64::from(record.offset_delta);
                if let Err(full) = self.put(key, offset) {
                    return Ok(Err(full));
                }
            }
        }
        Ok(Ok(()))
    }
}

/// What one cleaning needs besides the batch.
pub struct CleanContext<'a> {
    pub map: &'a OffsetMap,
    pub now_ms: i64,
    /// delete.retention.ms: a kept tombstone's batch gets horizon now + this.
    pub delete_retention_ms: i64,
    /// (producer id, base offset) of the batches the producer state remembers: kept even empty.
    pub producer_batches: &'a HashSet<(i64, i64)>,
}

/// The outcome for one batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Cleaned {
    /// Keep the stored bytes as they are.
    Unchanged,
    /// Keep these bytes instead (fewer records, or a delete horizon set).
    Rewritten(Vec<u8>),
    /// Nothing of the batch remains.
    Dropped,
}

/// Counts of one cleaning, for the log line and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub records_kept: u64,
    pub records_dropped: u64,
    pub tombstones_dropped: u64,
    pub batches_emptied_kept: u64,
    /// Earliest delete horizon among kept tombstones (i64::MAX if none): when a pass is due.
    pub horizon_min_ms: i64,
}

impl CleanStats {
    pub fn new() -> Self {
        CleanStats {
            horizon_min_ms: i64::MAX,
            ..CleanStats::default()
        }
    }
}

/// Cleans one stored batch (already verified) against the map.
pub fn clean_batch(
    stored: &[u8],
    ctx: &CleanContext<'_>,
    stats: &mut CleanStats,
) -> Result<Cleaned, BatchError> {
    let header = BatchHeader::parse(stored)?;
    if header.is_control() {
        return Ok(Cleaned::Unchanged);
    }
    let decoded = DecodedBatch::decode(stored)?;
    let records = decoded.records()?;
    let has_horizon = header.attributes & ATTR_DELETE_HORIZON != 0;
    let horizon_passed = has_horizon && ctx.now_ms >= header.base_timestamp;
    let mut kept = Vec::with_capacity(records.len());
    let mut tombstones_kept = false;
    for record in &records {
        let Some(key) = record.key else {
            stats.records_dropped += 1;
            continue;
        };
        let offset = header.base_offset + i64::from(record.offset_delta);
        if ctx.map.get(key).is_some_and(|latest| offset < latest) {
            stats.records_dropped += 1;
            continue;
        }
        if record.value_is_null {
            if horizon_passed {
                stats.records_dropped += 1;
                stats.tombstones_dropped += 1;
                continue;
            }
            tombstones_kept = true;
        }
        kept.push(*record);
    }
    stats.records_kept += kept.len() as u64;
    let set_horizon = tombstones_kept && !has_horizon;
    if tombstones_kept {
        let horizon = if set_horizon {
            ctx.now_ms.saturating_add(ctx.delete_retention_ms)
        } else {
            header.base_timestamp
        };
        stats.horizon_min_ms = stats.horizon_min_ms.min(horizon);
    }
    if kept.len() == records.len() && !set_horizon {
        return Ok(Cleaned::Unchanged);
    }
    if kept.is_empty() {
        let remembered = header.has_producer_id()
            && ctx
                .producer_batches
                .contains(&(header.producer_id, header.base_offset));
        if !remembered {
            return Ok(Cleaned::Dropped);
        }
        stats.batches_emptied_kept += 1;
        return Ok(Cleaned::Rewritten(write_empty_batch(&header)));
    }
    let (base_timestamp, attributes) = if set_horizon {
        (
            ctx.now_ms.saturating_add(ctx.delete_retention_ms),
            header.attributes | ATTR_DELETE_HORIZON,
        )
    } else {
        (header.base_timestamp, header.attributes)
    };
    Ok(Cleaned::Rewritten(write_batch(
        &header,
        &decoded,
        &kept,
        base_timestamp,
        attributes,
    )))
}

fn encode_record(out: &mut BytesMut, record: &RecordView<'_>, timestamp_delta: i64) {
    let mut body = BytesMut::with_capacity(record.tail.len() + 16);
    body.put_u8(record.attributes);
    batch::put_varlong(&mut body, timestamp_delta);
    batch::put_varint(&mut body, record.offset_delta);
    body.put_slice(record.tail);
    batch::put_varint(out, body.len() as i32);
    out.put_slice(&body);
}

/// The stored header with `records` (original offset deltas) in the batch's own codec:
/// BaseOffset, LastOffsetDelta, producer fields and leader epoch unchanged; CRC recomputed.
pub fn write_batch(
    header: &BatchHeader,
    decoded: &DecodedBatch,
    records: &[RecordView<'_>],
    base_timestamp: i64,
    attributes: i16,
) -> Vec<u8> {
    assert!(!records.is_empty() && records.len() <= header.record_count as usize);
    let mut payload = BytesMut::with_capacity(decoded.payload.len());
    for record in records {
        let timestamp = header.base_timestamp.saturating_add(record.timestamp_delta);
        encode_record(
            &mut payload,
            record,
            timestamp.saturating_sub(base_timestamp),
        );
    }
    let body = codec::compress(decoded.codec, &payload, decoded.framing);
    finish_batch(
        header,
        &body,
        records.len() as i32,
        base_timestamp,
        attributes,
    )
}

/// Kafka's `writeEmptyHeader`: the offset range and producer fields of a batch with no records
/// (uncompressed, BaseTimestamp = MaxTimestamp), so the producer's sequence state survives.
pub fn write_empty_batch(header: &BatchHeader) -> Vec<u8> {
    let attributes = header.attributes & !ATTR_COMPRESSION_MASK & !ATTR_DELETE_HORIZON;
    let mut out = finish_batch(header, &[], 0, header.max_timestamp, attributes);
    debug_assert_eq!(out.len(), HEADER_BYTES);
    out.shrink_to_fit();
    out
}

fn finish_batch(
    header: &BatchHeader,
    body: &[u8],
    record_count: i32,
    base_timestamp: i64,
    attributes: i16,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + body.len());
    out.extend_from_slice(&header.base_offset.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes()); // Length, below
    out.extend_from_slice(&header.partition_leader_epoch.to_be_bytes());
    out.push(header.magic as u8);
    out.extend_from_slice(&0u32.to_be_bytes()); // CRC, below
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&header.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&base_timestamp.to_be_bytes());
    out.extend_from_slice(&header.max_timestamp.to_be_bytes());
    out.extend_from_slice(&header.producer_id.to_be_bytes());
    out.extend_from_slice(&header.producer_epoch.to_be_bytes());
    out.extend_from_slice(&header.base_sequence.to_be_bytes());
    out.extend_from_slice(&record_count.to_be_bytes());
    debug_assert_eq!(out.len(), HEADER_BYTES);
    debug_assert_eq!(
        &out[ATTRIBUTES_AT..ATTRIBUTES_AT + 2],
        &attributes.to_be_bytes()
    );
    debug_assert_eq!(
        &out[BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8],
        &base_timestamp.to_be_bytes()
    );
    debug_assert_eq!(
        &out[RECORD_COUNT_AT..RECORD_COUNT_AT + 4],
        &record_count.to_be_bytes()
    );
    out.extend_from_slice(body);
    let length = (out.len() - LOG_OVERHEAD_BYTES) as i32;
    out[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
    let crc = batch::compute_crc(&out);
    out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    out
}

#[cfg(test)]
mod tests;
