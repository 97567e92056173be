//! Fetch responses for the zero-copy data path: the response is encoded as inline byte chunks
//! with gaps where each partition's record bytes go, so the connection can write the inline
//! parts from memory and the records straight from segment files (splice/sendfile), or copy
//! them in with [`FetchFrame::assemble`].
//!
//! Of the tagged fields, partitions can carry the diverging epoch (KIP-320) and the current
//! leader (KIP-951) from v12; snapshot ids and the v16+ node endpoints are not written.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::StrBytes;

use crate::response::{response_header_version, EncodeError};

/// Versions this encoder writes (Fetch v4-18).
pub const FETCH_VERSION_MIN: i16 = 4;
pub const FETCH_VERSION_MAX: i16 = 18;
const FLEXIBLE_FROM: i16 = 12;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPartitionHead {
    pub partition_index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// (producer id, first offset); `None` is written as a null array.
    pub aborted_transactions: Option<Vec<(i64, i64)>>,
    pub preferred_read_replica: i32,
    /// Length of this partition's record bytes; `None` writes null records.
    pub records_bytes: Option<usize>,
    /// (epoch, end offset) where the fetcher's log diverges (v12+, tagged 0).
    pub diverging_epoch: Option<(i32, i64)>,
    /// (leader id, leader epoch) for NOT_LEADER_OR_FOLLOWER answers (v12+, tagged 1).
    pub current_leader: Option<(i32, i32)>,
}

impl Default for FetchPartitionHead {
    fn default() -> Self {
        FetchPartitionHead {
            partition_index: 0,
            error_code: 0,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            aborted_transactions: None,
            preferred_read_replica: -1,
            records_bytes: None,
            diverging_epoch: None,
            current_leader: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FetchTopicHead {
    /// Written for v4-12.
    pub name: StrBytes,
    /// Written for v13+.
    pub topic_id: uuid::Uuid,
    pub partitions: Vec<FetchPartitionHead>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FetchResponseHead {
    pub throttle_time_ms: i32,
    pub error_code: i16,
    /// 0: sessions declined (KIP-227).
    pub session_id: i32,
    pub topics: Vec<FetchTopicHead>,
}

/// One piece of an encoded Fetch response frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchChunk {
    Inline(Bytes),
    /// The record bytes of `topics[topic].partitions[partition]`, exactly `bytes` long.
    Records {
        topic: usize,
        partition: usize,
        bytes: usize,
    },
}

/// A complete response frame (size prefix included) as chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchFrame {
    pub chunks: Vec<FetchChunk>,
    /// Total bytes on the wire, prefix included.
    pub frame_bytes: usize,
}

impl FetchFrame {
    /// The frame as one buffer, copying records from `records(topic, partition)`, which must
    /// return exactly the announced number of bytes.
    pub fn assemble<'a>(&self, mut records: impl FnMut(usize, usize) -> &'a [u8]) -> BytesMut {
        let mut out = BytesMut::with_capacity(self.frame_bytes);
        for chunk in &self.chunks {
            match chunk {
                FetchChunk::Inline(b) => out.put_slice(b),
                FetchChunk::Records {
                    topic,
                    partition,
                    bytes,
                } => {
                    let r = records(*topic, *partition);
                    assert_eq!(r.len(), *bytes, "records of {topic}/{partition}");
                    out.put_slice(r);
                }
            }
        }
        assert_eq!(out.len(), self.frame_bytes);
        out
    }
}

/// A tagged field holding a struct with no tagged fields of its own: tag, size, the fields
/// `put` writes, an empty tagged-field count. Tag and size are single-byte uvarints here.
fn put_tagged_struct(buf: &mut BytesMut, tag: u8, put: impl FnOnce(&mut BytesMut)) {
    let mut body = BytesMut::with_capacity(16);
    put(&mut body);
    body.put_u8(0);
    assert!(tag < 0x80 && body.len() < 0x80, "single-byte uvarints");
    buf.put_u8(tag);
    buf.put_u8(body.len() as u8);
    buf.put_slice(&body);
}

fn put_uvarint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

struct Writer {
    chunks: Vec<FetchChunk>,
    buf: BytesMut,
    flexible: bool,
    total: usize,
}

impl Writer {
    fn array_len(&mut self, n: Option<usize>) -> Result<(), String> {
        match (self.flexible, n) {
            (true, None) => put_uvarint(&mut self.buf, 0),
            (true, Some(n)) => put_uvarint(&mut self.buf, n as u64 + 1),
            (false, None) => self.buf.put_i32(-1),
            (false, Some(n)) => self
                .buf
                .put_i32(i32::try_from(n).map_err(|_| format!("array of {n}"))?),
        }
        Ok(())
    }

    fn string(&mut self, s: &str) -> Result<(), String> {
        if self.flexible {
            put_uvarint(&mut self.buf, s.len() as u64 + 1);
        } else {
            let n = i16::try_from(s.len()).map_err(|_| format!("string of {} bytes", s.len()))?;
            self.buf.put_i16(n);
        }
        self.buf.put_slice(s.as_bytes());
        Ok(())
    }

    fn tagged_none(&mut self) {
        if self.flexible {
            self.buf.put_u8(0);
        }
    }

    fn gap(&mut self, topic: usize, partition: usize, bytes: usize) {
        if !self.buf.is_empty() {
            let inline = self.buf.split().freeze();
            self.total += inline.len();
            self.chunks.push(FetchChunk::Inline(inline));
        }
        self.total += bytes;
        self.chunks.push(FetchChunk::Records {
            topic,
            partition,
            bytes,
        });
    }
}

/// Encodes a Fetch response (v4-18) as chunks with gaps for record bytes.
pub fn encode_fetch_response(
    correlation_id: i32,
    version: i16,
    head: &FetchResponseHead,
) -> Result<FetchFrame, EncodeError> {
    encode(correlation_id, version, head).map_err(|reason| EncodeError {
        api_key: ApiKey::Fetch,
        version,
        reason,
    })
}

fn encode(
    correlation_id: i32,
    version: i16,
    head: &FetchResponseHead,
) -> Result<FetchFrame, String> {
    if !(FETCH_VERSION_MIN..=FETCH_VERSION_MAX).contains(&version) {
        return Err("version not supported".into());
    }
    let mut w = Writer {
        chunks: Vec::new(),
        buf: BytesMut::with_capacity(256),
        flexible: version >= FLEXIBLE_FROM,
        total: 0,
    };
    w.buf.put_i32(0); // size prefix, patched below
    w.buf.put_i32(correlation_id);
    if response_header_version(ApiKey::Fetch, version) >= 1 {
        w.buf.put_u8(0);
    }
    w.buf.put_i32(head.throttle_time_ms);
    if version >= 7 {
        w.buf.put_i16(head.error_code);
        w.buf.put_i32(head.session_id);
    } else if head.error_code != 0 || head.session_id != 0 {
        return Err("error_code/session_id need v7+".into());
    }
    w.array_len(Some(head.topics.len()))?;
    for (ti, topic) in head.topics.iter().enumerate() {
        if version <= 12 {
            w.string(&topic.name)?;
        } else {
            w.buf.put_slice(topic.topic_id.as_bytes());
        }
        w.array_len(Some(topic.partitions.len()))?;
        for (pi, p) in topic.partitions.iter().enumerate() {
            w.buf.put_i32(p.partition_index);
            w.buf.put_i16(p.error_code);
            w.buf.put_i64(p.high_watermark);
            w.buf.put_i64(p.last_stable_offset);
            if version >= 5 {
                w.buf.put_i64(p.log_start_offset);
            }
            w.array_len(p.aborted_transactions.as_ref().map(Vec::len))?;
            for &(producer_id, first_offset) in p.aborted_transactions.iter().flatten() {
                w.buf.put_i64(producer_id);
                w.buf.put_i64(first_offset);
                w.tagged_none();
            }
            if version >= 11 {
                w.buf.put_i32(p.preferred_read_replica);
            } else if p.preferred_read_replica != -1 {
                return Err("preferred_read_replica needs v11+".into());
            }
            match p.records_bytes {
                None => {
                    if w.flexible {
                        put_uvarint(&mut w.buf, 0);
                    } else {
                        w.buf.put_i32(-1);
                    }
                }
                Some(n) => {
                    if n > i32::MAX as usize - 1 {
                        return Err(format!("records of {n} bytes"));
                    }
                    if w.flexible {
                        put_uvarint(&mut w.buf, n as u64 + 1);
                    } else {
                        w.buf.put_i32(n as i32);
                    }
                    if n > 0 {
                        w.gap(ti, pi, n);
                    }
                }
            }
            if w.flexible {
                let tags = usize::from(p.diverging_epoch.is_some())
                    + usize::from(p.current_leader.is_some());
                w.buf.put_u8(tags as u8);
                if let Some((epoch, end_offset)) = p.diverging_epoch {
                    // tag 0, size 13: epoch i32, end offset i64, no tagged fields.
                    put_tagged_struct(&mut w.buf, 0, |b| {
                        b.put_i32(epoch);
                        b.put_i64(end_offset);
                    });
                }
                if let Some((leader_id, leader_epoch)) = p.current_leader {
                    // tag 1, size 9: leader id i32, leader epoch i32, no tagged fields.
                    put_tagged_struct(&mut w.buf, 1, |b| {
                        b.put_i32(leader_id);
                        b.put_i32(leader_epoch);
                    });
                }
            } else if p.diverging_epoch.is_some() || p.current_leader.is_some() {
                return Err("diverging_epoch/current_leader need v12+".into());
            }
        }
        w.tagged_none();
    }
    w.tagged_none();
    let tail = w.buf.split().freeze();
    w.total += tail.len();
    w.chunks.push(FetchChunk::Inline(tail));
    let size = w.total - 4;
    if size > i32::MAX as usize {
        return Err(format!("response of {size} bytes"));
    }
    // Patch the size prefix at the start of the first inline chunk.
    let FetchChunk::Inline(first) = &w.chunks[0] else {
        unreachable!("frames start inline");
    };
    let mut patched = BytesMut::from(&first[..]);
    patched[..4].copy_from_slice(&(size as i32).to_be_bytes());
    w.chunks[0] = FetchChunk::Inline(patched.freeze());
    Ok(FetchFrame {
        chunks: w.chunks,
        frame_bytes: w.total,
    })
}
