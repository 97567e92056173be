//! RecordBatch v2 (magic 2): building uncompressed batches, parsing and validating batch
//! headers, and decoding records (duplicate header keys kept, in order).
//!
//! Layout (61-byte header): BaseOffset i64, Length i32, PartitionLeaderEpoch i32, Magic i8,
//! CRC u32, Attributes i16, LastOffsetDelta i32, BaseTimestamp i64, MaxTimestamp i64,
//! ProducerId i64, ProducerEpoch i16, BaseSequence i32, RecordCount i32, then records.
//! CRC-32C covers Attributes to the end, so BaseOffset and PartitionLeaderEpoch can be
//! rewritten in place without recomputing it.

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub const BATCH_HEADER_BYTES: usize = 61;
/// BaseOffset + Length: the part of the header not counted by Length.
pub const BATCH_LOG_OVERHEAD_BYTES: usize = 12;
pub const MAGIC_V2: i8 = 2;

pub const OFFSET_BASE_OFFSET: usize = 0;
pub const OFFSET_LENGTH: usize = 8;
pub const OFFSET_PARTITION_LEADER_EPOCH: usize = 12;
pub const OFFSET_MAGIC: usize = 16;
pub const OFFSET_CRC: usize = 17;
pub const OFFSET_ATTRIBUTES: usize = 21;
pub const OFFSET_LAST_OFFSET_DELTA: usize = 23;
pub const OFFSET_BASE_TIMESTAMP: usize = 27;
pub const OFFSET_MAX_TIMESTAMP: usize = 35;
pub const OFFSET_PRODUCER_ID: usize = 43;
pub const OFFSET_PRODUCER_EPOCH: usize = 51;
pub const OFFSET_BASE_SEQUENCE: usize = 53;
pub const OFFSET_RECORD_COUNT: usize = 57;

pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
pub const ATTR_LOG_APPEND_TIME: i16 = 0x08;
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
pub const ATTR_CONTROL: i16 = 0x20;

/// Smallest encoded record: length, attributes, timestamp delta, offset delta, key length,
/// value length, header count — one byte each.
pub const RECORD_BYTES_MIN: usize = 7;

/// Codec of a batch's records section (attribute bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

impl Compression {
    /// Kafka's `compression.type` names.
    pub fn parse(name: &str) -> Option<Compression> {
        Some(match name {
            "none" => Compression::None,
            "gzip" => Compression::Gzip,
            "snappy" => Compression::Snappy,
            "lz4" => Compression::Lz4,
            "zstd" => Compression::Zstd,
            _ => return None,
        })
    }

    pub fn from_attributes(attributes: i16) -> Option<Compression> {
        Some(match attributes & ATTR_COMPRESSION_MASK {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record batch truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    #[error("unsupported magic {0} (only 2)")]
    Magic(i8),
    #[error("batch length {0} is invalid")]
    Length(i32),
    #[error("CRC mismatch: header {expected:#010x}, computed {computed:#010x}")]
    Crc { expected: u32, computed: u32 },
    #[error("unknown compression codec {0}")]
    Codec(i16),
    #[error("record count {record_count} does not match last offset delta {last_offset_delta}")]
    Count {
        record_count: i32,
        last_offset_delta: i32,
    },
    #[error("malformed record: {0}")]
    Record(String),
    #[error("decompression failed: {0}")]
    Decompress(String),
    #[error("batch of {size} bytes exceeds {size_max} (max.message.bytes)")]
    TooLarge { size: usize, size_max: usize },
    #[error("invalid batch: {0}")]
    Invalid(&'static str),
}

impl RecordError {
    /// The Kafka error code a Produce partition gets for this (as Kafka's LogValidator).
    pub fn error_code(&self) -> i16 {
        use crate::errors;
        match self {
            RecordError::Truncated { .. }
            | RecordError::Length(_)
            | RecordError::Crc { .. }
            | RecordError::Record(_)
            | RecordError::Decompress(_) => errors::CORRUPT_MESSAGE,
            RecordError::Magic(_) | RecordError::Count { .. } | RecordError::Invalid(_) => {
                errors::INVALID_RECORD
            }
            RecordError::Codec(_) => errors::UNSUPPORTED_COMPRESSION_TYPE,
            RecordError::TooLarge { .. } => errors::MESSAGE_TOO_LARGE,
        }
    }
}

/// The fixed 61-byte header of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes after the Length field (total batch bytes - 12).
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

impl BatchHeader {
    /// Parses the header at the start of `buf`; checks magic and that Length is at least the
    /// header, but not the CRC (see [`verify_crc`]).
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, RecordError> {
        if buf.len() < BATCH_HEADER_BYTES {
            // Magic may already be visible; report it first, it is the more useful error.
            if buf.len() > OFFSET_MAGIC && buf[OFFSET_MAGIC] as i8 != MAGIC_V2 {
                return Err(RecordError::Magic(buf[OFFSET_MAGIC] as i8));
            }
            return Err(RecordError::Truncated {
                needed: BATCH_HEADER_BYTES,
                available: buf.len(),
            });
        }
        let mut b = &buf[..BATCH_HEADER_BYTES];
        let header = BatchHeader {
            base_offset: b.get_i64(),
            length: b.get_i32(),
            partition_leader_epoch: b.get_i32(),
            magic: b.get_i8(),
            crc: b.get_u32(),
            attributes: b.get_i16(),
            last_offset_delta: b.get_i32(),
            base_timestamp: b.get_i64(),
            max_timestamp: b.get_i64(),
            producer_id: b.get_i64(),
            producer_epoch: b.get_i16(),
            base_sequence: b.get_i32(),
            record_count: b.get_i32(),
        };
        if header.magic != MAGIC_V2 {
            return Err(RecordError::Magic(header.magic));
        }
        if (header.length as i64) < (BATCH_HEADER_BYTES - BATCH_LOG_OVERHEAD_BYTES) as i64 {
            return Err(RecordError::Length(header.length));
        }
        Ok(header)
    }

    /// Total bytes of the batch, header included.
    pub fn batch_bytes(&self) -> usize {
        debug_assert!(self.length >= 0);
        BATCH_LOG_OVERHEAD_BYTES + self.length as usize
    }

    pub fn compression(&self) -> Option<Compression> {
        Compression::from_attributes(self.attributes)
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_LOG_APPEND_TIME != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }
}

/// CRC-32C of a whole batch's covered range (Attributes to the end).
pub fn compute_crc(batch: &[u8]) -> u32 {
    assert!(batch.len() >= BATCH_HEADER_BYTES);
    crc32c::crc32c(&batch[OFFSET_ATTRIBUTES..])
}

/// Checks the stored CRC of a complete batch (`batch` is exactly one batch).
pub fn verify_crc(batch: &[u8]) -> Result<(), RecordError> {
    let header = BatchHeader::parse(batch)?;
    if batch.len() != header.batch_bytes() {
        return Err(RecordError::Truncated {
            needed: header.batch_bytes(),
            available: batch.len(),
        });
    }
    let computed = compute_crc(batch);
    if computed != header.crc {
        return Err(RecordError::Crc {
            expected: header.crc,
            computed,
        });
    }
    Ok(())
}

/// Sets BaseOffset and PartitionLeaderEpoch in place (outside the CRC).
pub fn stamp_batch(batch: &mut [u8], base_offset: i64, partition_leader_epoch: i32) {
    assert!(batch.len() >= BATCH_HEADER_BYTES);
    batch[OFFSET_BASE_OFFSET..OFFSET_BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    batch[OFFSET_PARTITION_LEADER_EPOCH..OFFSET_PARTITION_LEADER_EPOCH + 4]
        .copy_from_slice(&partition_leader_epoch.to_be_bytes());
}

/// Splits a record set (e.g. a Fetch partition's `records`) into whole batches, zero-copy.
/// A trailing partial batch (Fetch may cut the last one) ends the iteration silently; a
/// malformed header yields one error and ends it.
pub struct Batches {
    rest: Bytes,
    failed: bool,
}

impl Batches {
    pub fn new(record_set: Bytes) -> Batches {
        Batches {
            rest: record_set,
            failed: false,
        }
    }

    /// Bytes not yet returned (the partial batch once iteration ended).
    pub fn remaining(&self) -> &Bytes {
        &self.rest
    }
}

impl Iterator for Batches {
    type Item = Result<(BatchHeader, Bytes), RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.len() < BATCH_HEADER_BYTES {
            return None;
        }
        let header = match BatchHeader::parse(&self.rest) {
            Ok(h) => h,
            Err(e) => {
                self.failed = true;
                return Some(Err(e));
            }
        };
        if self.rest.len() < header.batch_bytes() {
            return None;
        }
        Some(Ok((header, self.rest.split_to(header.batch_bytes()))))
    }
}

/// One record header; keys may repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// A record to put in a new batch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<RecordHeader>,
    pub timestamp_ms: i64,
}

/// A decoded record with its absolute offset and timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<RecordHeader>,
}

/// Batch-level fields of a new batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    pub base_offset: i64,
    pub partition_leader_epoch: i32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub transactional: bool,
    /// Codec for the records section (written uncompressed if the codec fails).
    pub compression: Compression,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            base_offset: 0,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            transactional: false,
            compression: Compression::None,
        }
    }
}

fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn put_uvarint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

fn put_varint(buf: &mut BytesMut, v: i64) {
    put_uvarint(buf, zigzag64(v));
}

fn uvarint_bytes(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn varint_bytes(v: i64) -> usize {
    uvarint_bytes(zigzag64(v))
}

fn opt_len(b: &Option<Bytes>) -> i64 {
    b.as_ref().map_or(-1, |b| b.len() as i64)
}

/// Builds one batch record by record (compressed at `finish` if the options say so).
#[derive(Debug)]
pub struct BatchBuilder {
    options: BatchOptions,
    records: BytesMut,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
}

impl BatchBuilder {
    pub fn new(options: BatchOptions) -> BatchBuilder {
        BatchBuilder {
            options,
            records: BytesMut::new(),
            count: 0,
            base_timestamp: -1,
            max_timestamp: -1,
        }
    }

    pub fn record_count(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of the batch if finished now without compression (what batch-size limits use).
    pub fn batch_bytes(&self) -> usize {
        BATCH_HEADER_BYTES + self.records.len()
    }

    /// Bytes `record` would add to the batch.
    pub fn record_bytes(&self, record: &NewRecord) -> usize {
        let body = self.record_body_bytes(record);
        varint_bytes(body as i64) + body
    }

    fn timestamp_delta(&self, record: &NewRecord) -> i64 {
        if self.count == 0 {
            0
        } else {
            record.timestamp_ms.wrapping_sub(self.base_timestamp)
        }
    }

    fn record_body_bytes(&self, record: &NewRecord) -> usize {
        let mut n = 1; // attributes
        n += varint_bytes(self.timestamp_delta(record));
        n += varint_bytes(self.count as i64);
        n += varint_bytes(opt_len(&record.key)) + record.key.as_ref().map_or(0, |k| k.len());
        n += varint_bytes(opt_len(&record.value)) + record.value.as_ref().map_or(0, |v| v.len());
        n += varint_bytes(record.headers.len() as i64);
        for h in &record.headers {
            n += varint_bytes(h.key.len() as i64) + h.key.len();
            n += varint_bytes(opt_len(&h.value)) + h.value.as_ref().map_or(0, |v| v.len());
        }
        n
    }

    pub fn push(&mut self, record: &NewRecord) {
        assert!(self.count < i32::MAX, "batch record count");
        let body = self.record_body_bytes(record);
        let delta = self.timestamp_delta(record);
        if self.count == 0 {
            self.base_timestamp = record.timestamp_ms;
        }
        self.max_timestamp = self.max_timestamp.max(record.timestamp_ms);
        let buf = &mut self.records;
        put_varint(buf, body as i64);
        let body_start = buf.len();
        buf.put_i8(0);
        put_varint(buf, delta);
        put_varint(buf, self.count as i64);
        put_varint(buf, opt_len(&record.key));
        if let Some(k) = &record.key {
            buf.put_slice(k);
        }
        put_varint(buf, opt_len(&record.value));
        if let Some(v) = &record.value {
            buf.put_slice(v);
        }
        put_varint(buf, record.headers.len() as i64);
        for h in &record.headers {
            put_varint(buf, h.key.len() as i64);
            buf.put_slice(&h.key);
            put_varint(buf, opt_len(&h.value));
            if let Some(v) = &h.value {
                buf.put_slice(v);
            }
        }
        assert_eq!(buf.len() - body_start, body);
        self.count += 1;
    }

    /// The finished batch. Panics if empty: an empty batch is invalid.
    pub fn finish(self) -> Bytes {
        assert!(self.count > 0, "empty record batch");
        let o = self.options;
        let (codec, payload) = match compress(o.compression, &self.records) {
            Ok(compressed) => (o.compression, compressed),
            Err(e) => {
                log::warn!(
                    "{:?} compression failed ({e}); sending the batch uncompressed",
                    o.compression
                );
                (Compression::None, self.records.freeze())
            }
        };
        let total = BATCH_HEADER_BYTES + payload.len();
        assert!(total - BATCH_LOG_OVERHEAD_BYTES <= i32::MAX as usize);
        let mut attributes = codec as i16;
        if o.transactional {
            attributes |= ATTR_TRANSACTIONAL;
        }
        let mut buf = BytesMut::with_capacity(total);
        buf.put_i64(o.base_offset);
        buf.put_i32((total - BATCH_LOG_OVERHEAD_BYTES) as i32);
        buf.put_i32(o.partition_leader_epoch);
        buf.put_i8(MAGIC_V2);
        buf.put_u32(0); // CRC, below
        buf.put_i16(attributes);
        buf.put_i32(self.count - 1);
        buf.put_i64(self.base_timestamp);
        buf.put_i64(self.max_timestamp);
        buf.put_i64(o.producer_id);
        buf.put_i16(o.producer_epoch);
        buf.put_i32(o.base_sequence);
        buf.put_i32(self.count);
        buf.put_slice(&payload);
        assert_eq!(buf.len(), total);
        let crc = compute_crc(&buf);
        buf[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        buf.freeze()
    }
}

/// The records section compressed with `codec` (Kafka's framing: xerial snappy, lz4 frame).
fn compress(codec: Compression, records: &BytesMut) -> Result<Bytes, String> {
    use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};
    let mut out = BytesMut::with_capacity(records.len() / 2 + 64);
    let fill = |tmp: &mut BytesMut| {
        tmp.extend_from_slice(records);
        Ok(())
    };
    let result = match codec {
        Compression::None => return Ok(records.clone().freeze()),
        Compression::Gzip => Gzip::compress(&mut out, fill),
        Compression::Snappy => Snappy::compress(&mut out, fill),
        Compression::Lz4 => Lz4::compress(&mut out, fill),
        Compression::Zstd => Zstd::compress(&mut out, fill),
    };
    result.map_err(|e| format!("{e:#}"))?;
    Ok(out.freeze())
}

/// Builds one batch from `records` (at least one).
pub fn build_batch(records: &[NewRecord], options: BatchOptions) -> Bytes {
    let mut builder = BatchBuilder::new(options);
    for r in records {
        builder.push(r);
    }
    builder.finish()
}

/// A zero-copy reader of record fields.
struct Reader {
    buf: Bytes,
}

impl Reader {
    fn err(what: &str) -> RecordError {
        RecordError::Record(what.to_string())
    }

    fn uvarint(&mut self) -> Result<u64, RecordError> {
        let mut v = 0u64;
        for i in 0..10 {
            if !self.buf.has_remaining() {
                return Err(Self::err("truncated varint"));
            }
            let b = self.buf.get_u8();
            v |= ((b & 0x7f) as u64) << (i * 7);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(Self::err("varint longer than 10 bytes"))
    }

    fn varlong(&mut self) -> Result<i64, RecordError> {
        let z = self.uvarint()?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    fn varint(&mut self) -> Result<i32, RecordError> {
        let v = self.varlong()?;
        i32::try_from(v).map_err(|_| Self::err("varint out of i32 range"))
    }

    fn bytes(&mut self, nullable: bool) -> Result<Option<Bytes>, RecordError> {
        let n = self.varint()?;
        if n < 0 {
            if n == -1 && nullable {
                return Ok(None);
            }
            return Err(Self::err("negative length"));
        }
        let n = n as usize;
        if self.buf.remaining() < n {
            return Err(Self::err("length past end of record"));
        }
        Ok(Some(self.buf.split_to(n)))
    }
}

/// Decodes the records of one batch (exactly one batch's bytes), decompressing if needed.
/// Checks the CRC. Control batches decode like any other (their key says which marker).
pub fn decode_batch(batch: &Bytes) -> Result<(BatchHeader, Vec<Record>), RecordError> {
    verify_crc(batch)?;
    let header = BatchHeader::parse(batch)?;
    if header.record_count < 0 || header.last_offset_delta < 0 {
        return Err(RecordError::Count {
            record_count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    let payload = batch.slice(BATCH_HEADER_BYTES..);
    let records = match header.compression() {
        None => {
            return Err(RecordError::Codec(
                header.attributes & ATTR_COMPRESSION_MASK,
            ))
        }
        Some(Compression::None) => payload,
        Some(codec) => decompress(codec, payload)?,
    };
    let count = header.record_count as usize;
    if count.saturating_mul(RECORD_BYTES_MIN) > records.len() {
        return Err(RecordError::Count {
            record_count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    let mut reader = Reader { buf: records };
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let length = reader.varint()?;
        if length < 0 || length as usize > reader.buf.remaining() {
            return Err(Reader::err("record length past end of batch"));
        }
        let mut r = Reader {
            buf: reader.buf.split_to(length as usize),
        };
        let _attributes = if r.buf.has_remaining() {
            r.buf.get_i8()
        } else {
            return Err(Reader::err("empty record"));
        };
        let timestamp_delta = r.varlong()?;
        let offset_delta = r.varint()?;
        let key = r.bytes(true)?;
        let value = r.bytes(true)?;
        let header_count = r.varint()?;
        if header_count < 0 || header_count as usize > r.buf.remaining() {
            return Err(Reader::err("bad header count"));
        }
        let mut headers = Vec::with_capacity(header_count as usize);
        for _ in 0..header_count {
            let key = r.bytes(false)?.expect("non-nullable");
            let value = r.bytes(true)?;
            headers.push(RecordHeader { key, value });
        }
        if r.buf.has_remaining() {
            return Err(Reader::err("trailing bytes in record"));
        }
        let timestamp_ms = if header.is_log_append_time() {
            header.max_timestamp
        } else {
            header.base_timestamp.wrapping_add(timestamp_delta)
        };
        out.push(Record {
            offset: header.base_offset + offset_delta as i64,
            timestamp_ms,
            key,
            value,
            headers,
        });
    }
    if reader.buf.has_remaining() {
        return Err(Reader::err("trailing bytes after last record"));
    }
    Ok((header, out))
}

fn decompress(codec: Compression, payload: Bytes) -> Result<Bytes, RecordError> {
    use kafka_protocol::compression::{Decompressor, Gzip, Lz4, Snappy, Zstd};
    let mut input = payload;
    let result = match codec {
        Compression::None => return Ok(input),
        Compression::Gzip => Gzip::decompress(&mut input, |b: &mut Bytes| Ok(b.split_to(b.len()))),
        Compression::Snappy => {
            Snappy::decompress(&mut input, |b: &mut Bytes| Ok(b.split_to(b.len())))
        }
        Compression::Lz4 => Lz4::decompress(&mut input, |b: &mut Bytes| Ok(b.split_to(b.len()))),
        Compression::Zstd => Zstd::decompress(&mut input, |b: &mut Bytes| Ok(b.split_to(b.len()))),
    };
    result.map_err(|e| RecordError::Decompress(format!("{codec:?}: {e:#}")))
}

/// Decodes every whole batch of a record set; a trailing partial batch is ignored.
pub fn decode_record_set(record_set: Bytes) -> Result<Vec<Record>, RecordError> {
    let mut out = Vec::new();
    for batch in Batches::new(record_set) {
        let (_, bytes) = batch?;
        let (_, records) = decode_batch(&bytes)?;
        out.extend(records);
    }
    Ok(out)
}

/// What Kafka checks on a producer batch before appending it (one batch per partition):
/// size within `batch_bytes_max` (the topic's max.message.bytes), magic 2, exact length,
/// known codec, RecordCount = LastOffsetDelta + 1 > 0, BaseOffset 0, not a control batch,
/// BaseSequence >= 0 when a producer id is set, and the CRC. Records are not decompressed.
pub fn validate_produce_batch(
    batch: &[u8],
    batch_bytes_max: usize,
) -> Result<BatchHeader, RecordError> {
    if batch.len() > batch_bytes_max {
        return Err(RecordError::TooLarge {
            size: batch.len(),
            size_max: batch_bytes_max,
        });
    }
    let header = BatchHeader::parse(batch)?;
    if batch.len() != header.batch_bytes() {
        return Err(RecordError::Length(header.length));
    }
    if header.compression().is_none() {
        return Err(RecordError::Codec(
            header.attributes & ATTR_COMPRESSION_MASK,
        ));
    }
    if header.record_count <= 0
        || header.last_offset_delta.checked_add(1) != Some(header.record_count)
    {
        return Err(RecordError::Count {
            record_count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    if header.base_offset != 0 {
        return Err(RecordError::Invalid(
            "producer batches must have base offset 0",
        ));
    }
    if header.is_control() {
        return Err(RecordError::Invalid(
            "clients may not produce control batches",
        ));
    }
    if header.producer_id >= 0 && header.base_sequence < 0 {
        return Err(RecordError::Invalid(
            "idempotent batch without a base sequence",
        ));
    }
    verify_crc(batch)?;
    Ok(header)
}
