//! RecordBatch v2 (magic 2): the 61-byte header view. Pure, no I/O.
//!
//! Layout (big-endian): BaseOffset i64 @0, Length i32 @8, PartitionLeaderEpoch i32 @12,
//! Magic i8 @16, CRC u32 @17, Attributes i16 @21, LastOffsetDelta i32 @23, BaseTimestamp i64 @27,
//! MaxTimestamp i64 @35, ProducerId i64 @43, ProducerEpoch i16 @51, BaseSequence i32 @53,
//! RecordCount i32 @57, records @61. CRC-32C covers Attributes .. end of batch, so BaseOffset and
//! PartitionLeaderEpoch can be stamped in place without recomputing it.

use bytes::{BufMut, BytesMut};

/// Bytes of the v2 header, records start here.
pub const HEADER_BYTES: usize = 61;
/// BaseOffset + Length: the part of the header that `Length` does not count.
pub const LOG_OVERHEAD_BYTES: usize = 12;
pub const MAGIC_V2: i8 = 2;

pub const BASE_OFFSET_AT: usize = 0;
pub const LENGTH_AT: usize = 8;
pub const PARTITION_LEADER_EPOCH_AT: usize = 12;
pub const MAGIC_AT: usize = 16;
pub const CRC_AT: usize = 17;
pub const ATTRIBUTES_AT: usize = 21;
pub const LAST_OFFSET_DELTA_AT: usize = 23;
pub const BASE_TIMESTAMP_AT: usize = 27;
pub const MAX_TIMESTAMP_AT: usize = 35;
pub const PRODUCER_ID_AT: usize = 43;
pub const PRODUCER_EPOCH_AT: usize = 51;
pub const BASE_SEQUENCE_AT: usize = 53;
pub const RECORD_COUNT_AT: usize = 57;

pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
pub const ATTR_TIMESTAMP_TYPE_LOG_APPEND: i16 = 0x08;
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
pub const ATTR_CONTROL: i16 = 0x20;
/// KIP-534: BaseTimestamp holds the delete horizon (set by the cleaner on batches whose
/// tombstones it keeps; they may go once the horizon has passed).
pub const ATTR_DELETE_HORIZON: i16 = 0x40;

pub const NO_PRODUCER_ID: i64 = -1;
pub const NO_PRODUCER_EPOCH: i16 = -1;
pub const NO_SEQUENCE: i32 = -1;
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;

/// Compression codecs a v2 batch may declare (attributes bits 0-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

/// Why a batch was rejected. Pure data; the log maps it to a Kafka error code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch of {len} bytes is shorter than the {HEADER_BYTES}-byte header")]
    TooShort { len: usize },
    #[error("batch Length field {length} disagrees with the {actual} bytes received")]
    LengthMismatch { length: i32, actual: usize },
    #[error("unsupported magic {magic}, only RecordBatch v2 is accepted")]
    UnsupportedMagic { magic: i8 },
    #[error("CRC-32C mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("client batch must have BaseOffset 0, got {base_offset}")]
    NonZeroBaseOffset { base_offset: i64 },
    #[error(
        "RecordCount {record_count} must be > 0 and equal LastOffsetDelta {last_offset_delta} + 1"
    )]
    BadRecordCount {
        record_count: i32,
        last_offset_delta: i32,
    },
    #[error("control batches may not be produced by clients")]
    ControlBatch,
    #[error("transactional batches are not supported")]
    Transactional,
    #[error("compacted topic: record at offset delta {offset_delta} has no key")]
    MissingKey { offset_delta: i32 },
    #[error("unknown compression codec {codec}")]
    UnknownCompression { codec: i16 },
    #[error("records do not match the header: {reason}")]
    BadRecords { reason: &'static str },
    #[error("producer id {producer_id} with invalid BaseSequence {base_sequence} or epoch {producer_epoch}")]
    BadSequence {
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    },
}

/// A parsed copy of the 61-byte header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn get_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}
fn get_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}
fn get_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}
fn get_i64(buf: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(buf[at..at + 8].try_into().expect("8 bytes"))
}

impl BatchHeader {
    /// Parses the header fields from the first 61 bytes of `buf`. Checks only that there are
    /// enough bytes and that the magic is 2 (the layout depends on it); nothing else.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < HEADER_BYTES {
            return Err(BatchError::TooShort { len: buf.len() });
        }
        let magic = buf[MAGIC_AT] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic { magic });
        }
        Ok(BatchHeader {
            base_offset: get_i64(buf, BASE_OFFSET_AT),
            length: get_i32(buf, LENGTH_AT),
            partition_leader_epoch: get_i32(buf, PARTITION_LEADER_EPOCH_AT),
            magic,
            crc: get_u32(buf, CRC_AT),
            attributes: get_i16(buf, ATTRIBUTES_AT),
            last_offset_delta: get_i32(buf, LAST_OFFSET_DELTA_AT),
            base_timestamp: get_i64(buf, BASE_TIMESTAMP_AT),
            max_timestamp: get_i64(buf, MAX_TIMESTAMP_AT),
            producer_id: get_i64(buf, PRODUCER_ID_AT),
            producer_epoch: get_i16(buf, PRODUCER_EPOCH_AT),
            base_sequence: get_i32(buf, BASE_SEQUENCE_AT),
            record_count: get_i32(buf, RECORD_COUNT_AT),
        })
    }

    /// Total bytes of the batch on disk (Length + 12), or None if Length is impossible.
    pub fn batch_bytes(&self) -> Option<usize> {
        let length = usize::try_from(self.length).ok()?;
        let total = length.checked_add(LOG_OVERHEAD_BYTES)?;
        (total >= HEADER_BYTES).then_some(total)
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Offset after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    pub fn compression(&self) -> Result<Compression, BatchError> {
        match self.attributes & ATTR_COMPRESSION_MASK {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            codec => Err(BatchError::UnknownCompression { codec }),
        }
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_TIMESTAMP_TYPE_LOG_APPEND != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
    pub fn has_producer_id(&self) -> bool {
        self.producer_id > NO_PRODUCER_ID
    }

    /// Last sequence of the batch (sequences wrap at i32::MAX to 0, as in Kafka).
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence == NO_SEQUENCE {
            return NO_SEQUENCE;
        }
        let last = i64::from(self.base_sequence) + i64::from(self.last_offset_delta);
        if last > i64::from(i32::MAX) {
            (last - i64::from(i32::MAX) - 1) as i32
        } else {
            last as i32
        }
    }
}

/// CRC-32C over Attributes .. end of batch.
pub fn compute_crc(batch: &[u8]) -> u32 {
    debug_assert!(batch.len() >= HEADER_BYTES);
    crc32c::crc32c(&batch[ATTRIBUTES_AT..])
}

/// Parses the header and checks the framing (Length matches `batch.len()`) and the CRC.
/// This is what recovery requires of every stored batch.
pub fn verify(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(batch)?;
    match header.batch_bytes() {
        Some(total) if total == batch.len() => {}
        _ => {
            return Err(BatchError::LengthMismatch {
                length: header.length,
                actual: batch.len(),
            })
        }
    }
    let computed = compute_crc(batch);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    // A cleaned batch keeps its offset range with fewer records (even none: the last batch of
    // an idempotent producer), so stored batches need only 0 <= RecordCount <= LastOffsetDelta + 1.
    if header.record_count < 0
        || header.last_offset_delta < 0
        || i64::from(header.record_count) > i64::from(header.last_offset_delta) + 1
    {
        return Err(BatchError::BadRecordCount {
            record_count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    header.compression()?;
    Ok(header)
}

/// RecordCount = LastOffsetDelta + 1 > 0: what a producer must send (no gaps of its own).
fn check_full_count(header: &BatchHeader) -> Result<(), BatchError> {
    if header.record_count <= 0
        || header.last_offset_delta.checked_add(1) != Some(header.record_count)
    {
        return Err(BatchError::BadRecordCount {
            record_count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(())
}

/// Everything Kafka checks on a batch produced by a client (one batch, BaseOffset 0,
/// CRC, counts, no control batch, sane producer fields). Size limits are the log's job.
pub fn validate_client_batch(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = verify(batch)?;
    check_full_count(&header)?;
    if header.base_offset != 0 {
        return Err(BatchError::NonZeroBaseOffset {
            base_offset: header.base_offset,
        });
    }
    if header.is_control() {
        return Err(BatchError::ControlBatch);
    }
    if header.is_transactional() {
        return Err(BatchError::Transactional);
    }
    if header.has_producer_id() && (header.base_sequence < 0 || header.producer_epoch < 0) {
        return Err(BatchError::BadSequence {
            producer_id: header.producer_id,
            producer_epoch: header.producer_epoch,
            base_sequence: header.base_sequence,
        });
    }
    if header.compression()? == Compression::None {
        check_records(batch, &header)?;
    }
    Ok(header)
}

/// Walks the records of an uncompressed batch: exactly RecordCount records with offset deltas
/// 0, 1, .. filling the batch to its end. (Compressed payloads stay opaque.)
pub fn check_records(batch: &[u8], header: &BatchHeader) -> Result<(), BatchError> {
    let bad = |reason| Err(BatchError::BadRecords { reason });
    let mut at = HEADER_BYTES;
    for expected_delta in 0..header.record_count {
        let Some(length) = get_varlong(batch, &mut at) else {
            return bad("truncated record length");
        };
        let Ok(length) = usize::try_from(length) else {
            return bad("negative record length");
        };
        let Some(end) = at.checked_add(length).filter(|&end| end <= batch.len()) else {
            return bad("record overruns the batch");
        };
        let record = &batch[..end];
        let mut inner = at + 1; // attributes
        if inner > end || get_varlong(record, &mut inner).is_none() {
            return bad("truncated record timestamp");
        }
        match get_varlong(record, &mut inner) {
            Some(delta) if delta == i64::from(expected_delta) => {}
            Some(_) => return bad("offset deltas not consecutive"),
            None => return bad("truncated record offset delta"),
        }
        at = end;
    }
    if at != batch.len() {
        return bad("bytes after the last record");
    }
    Ok(())
}

/// Stamps BaseOffset in place (outside the CRC).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    assert!(batch.len() >= HEADER_BYTES);
    batch[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// The header prefix an append stamps (BaseOffset .. PartitionLeaderEpoch, outside the CRC).
pub const STAMPED_HEAD_BYTES: usize = MAGIC_AT;

/// `batch`'s first `STAMPED_HEAD_BYTES` with BaseOffset and PartitionLeaderEpoch stamped: what
/// the writer puts in front of the rest of the batch, which it writes unchanged.
pub fn stamped_head(batch: &[u8], base_offset: i64, epoch: i32) -> [u8; STAMPED_HEAD_BYTES] {
    assert!(batch.len() >= HEADER_BYTES);
    let mut head = [0u8; STAMPED_HEAD_BYTES];
    head.copy_from_slice(&batch[..STAMPED_HEAD_BYTES]);
    head[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&base_offset.to_be_bytes());
    head[PARTITION_LEADER_EPOCH_AT..PARTITION_LEADER_EPOCH_AT + 4]
        .copy_from_slice(&epoch.to_be_bytes());
    head
}

/// Stamps PartitionLeaderEpoch in place (outside the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    assert!(batch.len() >= HEADER_BYTES);
    batch[PARTITION_LEADER_EPOCH_AT..PARTITION_LEADER_EPOCH_AT + 4]
        .copy_from_slice(&epoch.to_be_bytes());
}

/// LogAppendTime: sets the timestamp-type bit and MaxTimestamp, then recomputes the CRC
/// (both fields are inside it; the records stay untouched and compressed).
pub fn set_log_append_time(batch: &mut [u8], timestamp_ms: i64) {
    assert!(batch.len() >= HEADER_BYTES);
    let attributes = get_i16(batch, ATTRIBUTES_AT) | ATTR_TIMESTAMP_TYPE_LOG_APPEND;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&timestamp_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

// ---------------------------------------------------------------------------------------------
// Records (uncompressed payloads only): varints as in Kafka (zigzag).

pub(crate) fn put_varint(buf: &mut BytesMut, value: i32) {
    put_varlong(buf, i64::from(value));
}

pub(crate) fn put_varlong(buf: &mut BytesMut, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// Reads a zigzag varlong at `*at`, advancing it. None on truncation or overlong encoding.
pub(crate) fn get_varlong(buf: &[u8], at: &mut usize) -> Option<i64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    None
}

/// One record to encode with [`build_batch`].
#[derive(Clone, Debug, Default)]
pub struct RecordSpec<'a> {
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(&'a [u8], Option<&'a [u8]>)],
}

/// Producer fields of a batch built with [`build_batch`].
#[derive(Clone, Copy, Debug)]
pub struct ProducerFields {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl ProducerFields {
    pub const NONE: ProducerFields = ProducerFields {
        producer_id: NO_PRODUCER_ID,
        producer_epoch: NO_PRODUCER_EPOCH,
        base_sequence: NO_SEQUENCE,
    };
}

/// Builds an uncompressed client batch (BaseOffset 0, leader epoch -1) with a valid CRC.
/// Used by tests and the bench; the broker receives batches from clients instead.
pub fn build_batch(
    base_timestamp: i64,
    producer: ProducerFields,
    records: &[RecordSpec<'_>],
) -> BytesMut {
    assert!(!records.is_empty(), "a batch holds at least one record");
    let mut buf = BytesMut::with_capacity(HEADER_BYTES + records.len() * 16);
    buf.put_bytes(0, HEADER_BYTES);
    let mut max_timestamp = base_timestamp;
    for (delta, record) in records.iter().enumerate() {
        max_timestamp = max_timestamp.max(base_timestamp + record.timestamp_delta);
        let mut body = BytesMut::new();
        body.put_i8(0);
        put_varlong(&mut body, record.timestamp_delta);
        put_varint(&mut body, delta as i32);
        match record.key {
            Some(key) => {
                put_varint(&mut body, key.len() as i32);
                body.put_slice(key);
            }
            None => put_varint(&mut body, -1),
        }
        match record.value {
            Some(value) => {
                put_varint(&mut body, value.len() as i32);
                body.put_slice(value);
            }
            None => put_varint(&mut body, -1),
        }
        put_varint(&mut body, record.headers.len() as i32);
        for (key, value) in record.headers {
            put_varint(&mut body, key.len() as i32);
            body.put_slice(key);
            match value {
                Some(value) => {
                    put_varint(&mut body, value.len() as i32);
                    body.put_slice(value);
                }
                None => put_varint(&mut body, -1),
            }
        }
        put_varint(&mut buf, body.len() as i32);
        buf.put_slice(&body);
    }
    let length = (buf.len() - LOG_OVERHEAD_BYTES) as i32;
    let count = records.len() as i32;
    let header = &mut buf[..HEADER_BYTES];
    header[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
    header[PARTITION_LEADER_EPOCH_AT..PARTITION_LEADER_EPOCH_AT + 4]
        .copy_from_slice(&NO_PARTITION_LEADER_EPOCH.to_be_bytes());
    header[MAGIC_AT] = MAGIC_V2 as u8;
    header[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
        .copy_from_slice(&(count - 1).to_be_bytes());
    header[BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8].copy_from_slice(&base_timestamp.to_be_bytes());
    header[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    header[PRODUCER_ID_AT..PRODUCER_ID_AT + 8].copy_from_slice(&producer.producer_id.to_be_bytes());
    header[PRODUCER_EPOCH_AT..PRODUCER_EPOCH_AT + 2]
        .copy_from_slice(&producer.producer_epoch.to_be_bytes());
    header[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4]
        .copy_from_slice(&producer.base_sequence.to_be_bytes());
    header[RECORD_COUNT_AT..RECORD_COUNT_AT + 4].copy_from_slice(&count.to_be_bytes());
    let crc = compute_crc(&buf);
    buf[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    buf
}

/// (offset delta, timestamp delta) of each record of an uncompressed batch, in order.
/// None if the batch is compressed or its records are malformed. `records_max` bounds the work.
pub fn record_timestamps(batch: &[u8], records_max: usize) -> Option<Vec<(i32, i64)>> {
    let header = BatchHeader::parse(batch).ok()?;
    if header.compression().ok()? != Compression::None {
        return None;
    }
    let count = usize::try_from(header.record_count).ok()?;
    if count > records_max {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    let mut at = HEADER_BYTES;
    for _ in 0..count {
        let length = usize::try_from(get_varlong(batch, &mut at)?).ok()?;
        let end = at.checked_add(length)?;
        if end > batch.len() {
            return None;
        }
        let mut inner = at + 1; // attributes
        let timestamp_delta = get_varlong(&batch[..end], &mut inner)?;
        let offset_delta = i32::try_from(get_varlong(&batch[..end], &mut inner)?).ok()?;
        out.push((offset_delta, timestamp_delta));
        at = end;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BytesMut {
        build_batch(
            1_000,
            ProducerFields::NONE,
            &[
                RecordSpec {
                    timestamp_delta: 0,
                    key: Some(b"k"),
                    value: Some(b"v1"),
                    headers: &[],
                },
                RecordSpec {
                    timestamp_delta: 7,
                    key: None,
                    value: Some(b"v2"),
                    headers: &[(b"h", Some(b"x"))],
                },
            ],
        )
    }

    #[test]
    fn built_batch_validates_and_stamps_without_crc_change() {
        let mut batch = sample();
        let header = validate_client_batch(&batch).unwrap();
        assert_eq!(header.record_count, 2);
        assert_eq!(header.max_timestamp, 1_007);
        set_base_offset(&mut batch, 42);
        set_partition_leader_epoch(&mut batch, 3);
        let stamped = verify(&batch).unwrap();
        assert_eq!(stamped.base_offset, 42);
        assert_eq!(stamped.partition_leader_epoch, 3);
        assert_eq!(stamped.last_offset(), 43);
        assert_eq!(stamped.crc, header.crc);
        assert_eq!(record_timestamps(&batch, 10).unwrap(), vec![(0, 0), (1, 7)]);
    }

    #[test]
    fn record_walk_rejects_counts_that_lie() {
        let mut batch = sample();
        // Claim 3 records (consistently in both fields) while 2 are present.
        batch[RECORD_COUNT_AT..RECORD_COUNT_AT + 4].copy_from_slice(&3i32.to_be_bytes());
        batch[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4].copy_from_slice(&2i32.to_be_bytes());
        let crc = compute_crc(&batch);
        batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        assert!(verify(&batch).is_ok(), "framing and CRC are fine");
        assert!(matches!(
            validate_client_batch(&batch),
            Err(BatchError::BadRecords { .. })
        ));
        // Trailing garbage after the records.
        let mut batch = sample();
        batch.extend_from_slice(&[0, 0]);
        let length = (batch.len() - LOG_OVERHEAD_BYTES) as i32;
        batch[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
        let crc = compute_crc(&batch);
        batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate_client_batch(&batch),
            Err(BatchError::BadRecords { .. })
        ));
    }

    #[test]
    fn varlong_round_trip() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            i32::MAX as i64,
            i64::MIN,
            i64::MAX,
        ] {
            let mut buf = BytesMut::new();
            put_varlong(&mut buf, v);
            let mut at = 0;
            assert_eq!(get_varlong(&buf, &mut at), Some(v));
            assert_eq!(at, buf.len());
        }
    }

    #[test]
    fn log_append_time_recomputes_crc() {
        let mut batch = sample();
        set_log_append_time(&mut batch, 99);
        let header = verify(&batch).unwrap();
        assert!(header.is_log_append_time());
        assert_eq!(header.max_timestamp, 99);
    }
}
