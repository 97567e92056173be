//! Stored form of group metadata and committed offsets in `__consumer_offsets`.
//!
//! Each is one record: a versioned key and value (big-endian, i16-length strings with -1 = null,
//! i32-length bytes), a null value is a tombstone. Keys:
//! - offset: `i16 1, group, topic, i32 partition` → value `i16 0, i64 offset, i32 leader_epoch,
//!   metadata, i64 commit_ts, i64 expire_ts (-1 none)`;
//! - group:  `i16 2, group` → value `i16 0, protocol_type, i32 generation, protocol_name, leader,
//!   i64 state_ts, i32 n, n × member` with member = `id, instance_id, client_id, client_host,
//!   i32 rebalance_timeout, i32 session_timeout, bytes subscription, bytes assignment`.
//!
//! Records travel in uncompressed RecordBatch v2 (magic 2, CRC-32C over attributes..end).
//! Decoding never panics: bad input is an error naming what is wrong.

use bytes::{Buf, BufMut, Bytes, BytesMut};

const KEY_OFFSET: i16 = 1;
const KEY_GROUP: i16 = 2;
const VALUE_VERSION: i16 = 0;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp_ms: i64,
    pub expire_timestamp_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: Option<String>,
    pub generation_id: i32,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    pub state_timestamp_ms: i64,
    pub members: Vec<MemberValue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRecord {
    Offset {
        group_id: String,
        topic: String,
        partition: i32,
        value: Option<OffsetValue>,
    },
    Group {
        group_id: String,
        value: Option<GroupValue>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad __consumer_offsets data: {0}")]
pub struct DecodeError(pub String);

fn bad<T>(what: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError(what.into()))
}

// ----- primitives ------------------------------------------------------------------------------

fn put_str(buf: &mut BytesMut, s: &str) {
    let len = s.len().min(i16::MAX as usize);
    buf.put_i16(len as i16);
    buf.put_slice(&s.as_bytes()[..len]);
}

fn put_opt_str(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(buf, s),
        None => buf.put_i16(-1),
    }
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    buf.put_i32(b.len() as i32);
    buf.put_slice(b);
}

struct Reader(Bytes);

impl Reader {
    fn need(&self, n: usize, what: &str) -> Result<(), DecodeError> {
        if self.0.remaining() < n {
            return bad(format!("truncated {what}"));
        }
        Ok(())
    }
    fn i16(&mut self, what: &str) -> Result<i16, DecodeError> {
        self.need(2, what)?;
        Ok(self.0.get_i16())
    }
    fn i32(&mut self, what: &str) -> Result<i32, DecodeError> {
        self.need(4, what)?;
        Ok(self.0.get_i32())
    }
    fn i64(&mut self, what: &str) -> Result<i64, DecodeError> {
        self.need(8, what)?;
        Ok(self.0.get_i64())
    }
    fn opt_str(&mut self, what: &str) -> Result<Option<String>, DecodeError> {
        let len = self.i16(what)?;
        if len < 0 {
            return Ok(None);
        }
        self.need(len as usize, what)?;
        let raw = self.0.split_to(len as usize);
        String::from_utf8(raw.to_vec())
            .map(Some)
            .map_err(|_| DecodeError(format!("{what} is not UTF-8")))
    }
    fn str(&mut self, what: &str) -> Result<String, DecodeError> {
        self.opt_str(what)?
            .ok_or_else(|| DecodeError(format!("{what} is null")))
    }
    fn bytes(&mut self, what: &str) -> Result<Bytes, DecodeError> {
        let len = self.i32(what)?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        self.need(len as usize, what)?;
        Ok(self.0.split_to(len as usize))
    }
}

// ----- records ---------------------------------------------------------------------------------

impl GroupRecord {
    pub fn group_id(&self) -> &str {
        match self {
            GroupRecord::Offset { group_id, .. } | GroupRecord::Group { group_id, .. } => group_id,
        }
    }

    /// (key, value); a `None` value is a tombstone.
    pub fn encode(&self) -> (Bytes, Option<Bytes>) {
        let mut key = BytesMut::new();
        match self {
            GroupRecord::Offset {
                group_id,
                topic,
                partition,
                value,
            } => {
                key.put_i16(KEY_OFFSET);
                put_str(&mut key, group_id);
                put_str(&mut key, topic);
                key.put_i32(*partition);
                let value = value.as_ref().map(|v| {
                    let mut b = BytesMut::new();
                    b.put_i16(VALUE_VERSION);
                    b.put_i64(v.offset);
                    b.put_i32(v.leader_epoch);
                    put_opt_str(&mut b, v.metadata.as_deref());
                    b.put_i64(v.commit_timestamp_ms);
                    b.put_i64(v.expire_timestamp_ms.unwrap_or(-1));
                    b.freeze()
                });
                (key.freeze(), value)
            }
            GroupRecord::Group { group_id, value } => {
                key.put_i16(KEY_GROUP);
                put_str(&mut key, group_id);
                let value = value.as_ref().map(|v| {
                    let mut b = BytesMut::new();
                    b.put_i16(VALUE_VERSION);
                    put_opt_str(&mut b, v.protocol_type.as_deref());
                    b.put_i32(v.generation_id);
                    put_opt_str(&mut b, v.protocol_name.as_deref());
                    put_opt_str(&mut b, v.leader_id.as_deref());
                    b.put_i64(v.state_timestamp_ms);
                    b.put_i32(v.members.len() as i32);
                    for m in &v.members {
                        put_str(&mut b, &m.member_id);
                        put_opt_str(&mut b, m.group_instance_id.as_deref());
                        put_str(&mut b, &m.client_id);
                        put_str(&mut b, &m.client_host);
                        b.put_i32(m.rebalance_timeout_ms);
                        b.put_i32(m.session_timeout_ms);
                        put_bytes(&mut b, &m.subscription);
                        put_bytes(&mut b, &m.assignment);
                    }
                    b.freeze()
                });
                (key.freeze(), value)
            }
        }
    }

    pub fn decode(key: Bytes, value: Option<Bytes>) -> Result<GroupRecord, DecodeError> {
        let mut k = Reader(key);
        match k.i16("key version")? {
            KEY_OFFSET => {
                let group_id = k.str("group id")?;
                let topic = k.str("topic")?;
                let partition = k.i32("partition")?;
                let value = match value {
                    None => None,
                    Some(v) => {
                        let mut r = Reader(v);
                        let version = r.i16("offset value version")?;
                        if version != VALUE_VERSION {
                            return bad(format!("offset value version {version}"));
                        }
                        let offset = r.i64("offset")?;
                        let leader_epoch = r.i32("leader epoch")?;
                        let metadata = r.opt_str("metadata")?;
                        let commit_timestamp_ms = r.i64("commit timestamp")?;
                        let expire = r.i64("expire timestamp")?;
                        Some(OffsetValue {
                            offset,
                            leader_epoch,
                            metadata,
                            commit_timestamp_ms,
                            expire_timestamp_ms: (expire >= 0).then_some(expire),
                        })
                    }
                };
                Ok(GroupRecord::Offset {
                    group_id,
                    topic,
                    partition,
                    value,
                })
            }
            KEY_GROUP => {
                let group_id = k.str("group id")?;
                let value = match value {
                    None => None,
                    Some(v) => {
                        let mut r = Reader(v);
                        let version = r.i16("group value version")?;
                        if version != VALUE_VERSION {
                            return bad(format!("group value version {version}"));
                        }
                        let protocol_type = r.opt_str("protocol type")?;
                        let generation_id = r.i32("generation")?;
                        let protocol_name = r.opt_str("protocol name")?;
                        let leader_id = r.opt_str("leader")?;
                        let state_timestamp_ms = r.i64("state timestamp")?;
                        let n = r.i32("member count")?;
                        if n < 0 || n as usize > r.0.remaining() {
                            return bad(format!("member count {n}"));
                        }
                        let mut members = Vec::with_capacity(n as usize);
                        for _ in 0..n {
                            members.push(MemberValue {
                                member_id: r.str("member id")?,
                                group_instance_id: r.opt_str("instance id")?,
                                client_id: r.str("client id")?,
                                client_host: r.str("client host")?,
                                rebalance_timeout_ms: r.i32("rebalance timeout")?,
                                session_timeout_ms: r.i32("session timeout")?,
                                subscription: r.bytes("subscription")?,
                                assignment: r.bytes("assignment")?,
                            });
                        }
                        Some(GroupValue {
                            protocol_type,
                            generation_id,
                            protocol_name,
                            leader_id,
                            state_timestamp_ms,
                            members,
                        })
                    }
                };
                Ok(GroupRecord::Group { group_id, value })
            }
            v => bad(format!("unknown key version {v}")),
        }
    }
}

// ----- RecordBatch v2 --------------------------------------------------------------------------

const BATCH_HEADER_BYTES: usize = 61;
/// Offset of Attributes: everything from here to the end is covered by the CRC.
const CRC_START: usize = 21;
const MAGIC_OFFSET: usize = 16;

fn put_varint(buf: &mut BytesMut, v: i32) {
    put_varlong(buf, v as i64);
}

fn put_varlong(buf: &mut BytesMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        buf.put_u8((z as u8) | 0x80);
        z >>= 7;
    }
    buf.put_u8(z as u8);
}

fn get_varlong(buf: &mut Bytes) -> Result<i64, DecodeError> {
    let mut z: u64 = 0;
    for shift in (0..70).step_by(7) {
        if !buf.has_remaining() {
            return bad("truncated varint");
        }
        let b = buf.get_u8();
        z |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
        }
    }
    bad("varint too long")
}

fn get_varint(buf: &mut Bytes) -> Result<i32, DecodeError> {
    let v = get_varlong(buf)?;
    i32::try_from(v).map_err(|_| DecodeError(format!("varint {v} out of range")))
}

/// One uncompressed RecordBatch v2 (base offset 0, no producer id) holding `records`.
pub fn encode_batch(records: &[(Bytes, Option<Bytes>)], now_ms: i64) -> BytesMut {
    assert!(!records.is_empty(), "a batch holds at least one record");
    let mut body = BytesMut::new();
    for (i, (key, value)) in records.iter().enumerate() {
        let mut rec = BytesMut::new();
        rec.put_i8(0); // attributes
        put_varlong(&mut rec, 0); // timestamp delta
        put_varint(&mut rec, i as i32); // offset delta
        put_varint(&mut rec, key.len() as i32);
        rec.put_slice(key);
        match value {
            Some(v) => {
                put_varint(&mut rec, v.len() as i32);
                rec.put_slice(v);
            }
            None => put_varint(&mut rec, -1),
        }
        put_varint(&mut rec, 0); // headers
        put_varint(&mut body, rec.len() as i32);
        body.put_slice(&rec);
    }
    let mut buf = BytesMut::with_capacity(BATCH_HEADER_BYTES + body.len());
    buf.put_i64(0); // base offset
    buf.put_i32((BATCH_HEADER_BYTES - 12 + body.len()) as i32); // length after this field
    buf.put_i32(-1); // partition leader epoch
    buf.put_i8(2); // magic
    buf.put_u32(0); // crc, filled below
    buf.put_i16(0); // attributes: no compression, CreateTime
    buf.put_i32(records.len() as i32 - 1); // last offset delta
    buf.put_i64(now_ms); // base timestamp
    buf.put_i64(now_ms); // max timestamp
    buf.put_i64(-1); // producer id
    buf.put_i16(-1); // producer epoch
    buf.put_i32(-1); // base sequence
    buf.put_i32(records.len() as i32);
    buf.put_slice(&body);
    let crc = crc32c::crc32c(&buf[CRC_START..]);
    buf[CRC_START - 4..CRC_START].copy_from_slice(&crc.to_be_bytes());
    buf
}

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub offset: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
}

/// Parses consecutive batches. Returns the records and the offset after the last whole batch
/// (a partial batch at the end is left for the next read). Control batches are skipped.
pub fn decode_batches(mut data: Bytes) -> Result<(Vec<LogRecord>, Option<i64>), DecodeError> {
    let mut out = Vec::new();
    let mut next_offset = None;
    while data.len() >= 12 {
        let base_offset = i64::from_be_bytes(data[0..8].try_into().expect("8 bytes"));
        let length = i32::from_be_bytes(data[8..12].try_into().expect("4 bytes"));
        if length < (BATCH_HEADER_BYTES - 12) as i32 {
            return bad(format!("batch at {base_offset}: length {length}"));
        }
        let total = 12 + length as usize;
        if data.len() < total {
            break;
        }
        let batch = data.split_to(total);
        if batch[MAGIC_OFFSET] != 2 {
            return bad(format!(
                "batch at {base_offset}: magic {}",
                batch[MAGIC_OFFSET]
            ));
        }
        let crc = u32::from_be_bytes(batch[17..21].try_into().expect("4 bytes"));
        if crc32c::crc32c(&batch[CRC_START..]) != crc {
            return bad(format!("batch at {base_offset}: CRC mismatch"));
        }
        let mut h = batch.slice(CRC_START..BATCH_HEADER_BYTES);
        let attributes = h.get_i16();
        let last_offset_delta = h.get_i32();
        next_offset = Some(base_offset + last_offset_delta as i64 + 1);
        if attributes & 0x20 != 0 {
            continue; // control batch
        }
        if attributes & 0x7 != 0 {
            return bad(format!(
                "batch at {base_offset}: compressed (codec {})",
                attributes & 7
            ));
        }
        h.advance(8 + 8 + 8 + 2 + 4);
        let count = h.get_i32();
        let mut body = batch.slice(BATCH_HEADER_BYTES..);
        if count < 0 || count as usize > body.len() {
            return bad(format!("batch at {base_offset}: record count {count}"));
        }
        for _ in 0..count {
            let len = get_varint(&mut body)?;
            if len < 0 || len as usize > body.len() {
                return bad(format!("batch at {base_offset}: record length {len}"));
            }
            let mut rec = body.split_to(len as usize);
            if !rec.has_remaining() {
                return bad("empty record");
            }
            rec.advance(1); // attributes
            get_varlong(&mut rec)?; // timestamp delta
            let offset_delta = get_varint(&mut rec)?;
            let mut field = |what: &str| -> Result<Option<Bytes>, DecodeError> {
                let n = get_varint(&mut rec)?;
                if n < 0 {
                    return Ok(None);
                }
                if n as usize > rec.len() {
                    return bad(format!("batch at {base_offset}: {what} length {n}"));
                }
                Ok(Some(rec.split_to(n as usize)))
            };
            let key = field("key")?;
            let value = field("value")?;
            out.push(LogRecord {
                offset: base_offset + offset_delta as i64,
                key,
                value,
            });
        }
    }
    Ok((out, next_offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<GroupRecord> {
        vec![
            GroupRecord::Offset {
                group_id: "g".into(),
                topic: "orders".into(),
                partition: 3,
                value: Some(OffsetValue {
                    offset: 42,
                    leader_epoch: -1,
                    metadata: Some("m".into()),
                    commit_timestamp_ms: 1000,
                    expire_timestamp_ms: None,
                }),
            },
            GroupRecord::Offset {
                group_id: "g".into(),
                topic: "orders".into(),
                partition: 4,
                value: None,
            },
            GroupRecord::Group {
                group_id: "g".into(),
                value: Some(GroupValue {
                    protocol_type: Some("consumer".into()),
                    generation_id: 7,
                    protocol_name: Some("range".into()),
                    leader_id: Some("c-1".into()),
                    state_timestamp_ms: 5,
                    members: vec![MemberValue {
                        member_id: "c-1".into(),
                        group_instance_id: Some("i".into()),
                        client_id: "c".into(),
                        client_host: "/127.0.0.1".into(),
                        rebalance_timeout_ms: 300_000,
                        session_timeout_ms: 45_000,
                        subscription: Bytes::from_static(b"sub"),
                        assignment: Bytes::from_static(b"asg"),
                    }],
                }),
            },
            GroupRecord::Group {
                group_id: "gone".into(),
                value: None,
            },
        ]
    }

    #[test]
    fn records_round_trip_through_a_batch() {
        let records = samples();
        let encoded: Vec<_> = records.iter().map(|r| r.encode()).collect();
        let mut log = BytesMut::new();
        log.extend_from_slice(&encode_batch(&encoded[..2], 9));
        let mut second = encode_batch(&encoded[2..], 9);
        second[..8].copy_from_slice(&2i64.to_be_bytes()); // the log assigns base offset 2
        log.extend_from_slice(&second);
        let (read, next) = decode_batches(log.freeze()).unwrap();
        assert_eq!(next, Some(4));
        assert_eq!(
            read.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        let decoded: Vec<_> = read
            .into_iter()
            .map(|r| GroupRecord::decode(r.key.unwrap(), r.value).unwrap())
            .collect();
        assert_eq!(decoded, records);
    }

    #[test]
    fn batch_matches_kafka_protocol_decoder() {
        let encoded: Vec<_> = samples().iter().map(|r| r.encode()).collect();
        let mut batch = encode_batch(&encoded, 77).freeze();
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut batch).unwrap();
        assert_eq!(set.records.len(), 4);
        assert_eq!(set.records[1].value, None);
        assert_eq!(set.records[0].key.as_ref(), Some(&encoded[0].0));
    }

    #[test]
    fn corrupt_input_is_an_error_not_a_panic() {
        let encoded: Vec<_> = samples().iter().map(|r| r.encode()).collect();
        let batch = encode_batch(&encoded, 1).freeze();
        for cut in 0..batch.len() {
            let _ = decode_batches(batch.slice(..cut)); // partial: no panic
        }
        for i in 12..batch.len() {
            let mut b = BytesMut::from(&batch[..]);
            b[i] ^= 0x5a;
            let _ = decode_batches(b.freeze()); // flipped byte: error (CRC) or no panic
        }
        let mut b = BytesMut::from(&batch[..]);
        b[40] ^= 1;
        assert!(decode_batches(b.freeze()).unwrap_err().0.contains("CRC"));
        for (k, v) in &encoded {
            for cut in 0..k.len() {
                let _ = GroupRecord::decode(k.slice(..cut), v.clone());
            }
            if let Some(v) = v {
                for cut in 0..v.len() {
                    assert!(GroupRecord::decode(k.clone(), Some(v.slice(..cut))).is_err());
                }
            }
        }
        assert!(GroupRecord::decode(Bytes::from_static(&[0, 9]), None).is_err());
    }
}
