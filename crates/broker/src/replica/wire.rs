//! Frames on a replication channel (after its hello, see `metadata::replica_hello`):
//! `u32` length of the rest, `u8` kind, the partition (topic id, index), the sender's shard,
//! the message's fields, and for a push the batches exactly as the leader stored them.
//! Big-endian. A frame that is short, over the size limit or of an unknown kind is an error:
//! the reader closes that one channel with a log line.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use uuid::Uuid;

use shoal_replication::{ToFollower, ToLeader};

const PUSH: u8 = 1;
const EPOCH_END: u8 = 2;
const HELLO: u8 = 3;
const ACK: u8 = 4;
const NACK: u8 = 5;

/// Kind, topic id, partition, sender's shard.
const HEADER_BYTES: usize = 1 + 16 + 4 + 2;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Batches are empty unless the message is a push carrying data.
    ToFollower(ToFollower, Bytes),
    ToLeader(ToLeader),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub topic_id: Uuid,
    pub partition: i32,
    pub from_shard: u16,
    pub body: Body,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("frame of {bytes} bytes over the limit of {bytes_max}")]
    TooLarge { bytes: usize, bytes_max: usize },
    #[error("frame of kind {kind} with {bytes} bytes is malformed")]
    Malformed { kind: u8, bytes: usize },
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
}

impl Frame {
    pub fn encode(&self) -> Bytes {
        let records = match &self.body {
            Body::ToFollower(_, b) => b.len(),
            Body::ToLeader(_) => 0,
        };
        let mut out = BytesMut::with_capacity(4 + HEADER_BYTES + 28 + records);
        out.put_u32(0);
        let kind = match &self.body {
            Body::ToFollower(ToFollower::Push { .. }, _) => PUSH,
            Body::ToFollower(ToFollower::EpochEnd { .. }, _) => EPOCH_END,
            Body::ToLeader(ToLeader::Hello { .. }) => HELLO,
            Body::ToLeader(ToLeader::Ack { .. }) => ACK,
            Body::ToLeader(ToLeader::Nack { .. }) => NACK,
        };
        out.put_u8(kind);
        out.put_slice(self.topic_id.as_bytes());
        out.put_i32(self.partition);
        out.put_u16(self.from_shard);
        match &self.body {
            Body::ToFollower(
                ToFollower::Push {
                    epoch,
                    from,
                    end,
                    hw,
                },
                batches,
            ) => {
                out.put_i32(*epoch);
                out.put_i64(*from);
                out.put_i64(*end);
                out.put_i64(*hw);
                out.put_slice(batches);
            }
            Body::ToFollower(
                ToFollower::EpochEnd {
                    epoch,
                    found_epoch,
                    end,
                },
                _,
            ) => {
                out.put_i32(*epoch);
                out.put_i32(*found_epoch);
                out.put_i64(*end);
            }
            Body::ToLeader(ToLeader::Hello { epoch, last_epoch }) => {
                out.put_i32(*epoch);
                out.put_i32(*last_epoch);
            }
            Body::ToLeader(ToLeader::Ack { epoch, log_end })
            | Body::ToLeader(ToLeader::Nack { epoch, log_end }) => {
                out.put_i32(*epoch);
                out.put_i64(*log_end);
            }
        }
        let len = (out.len() - 4) as u32;
        out[..4].copy_from_slice(&len.to_be_bytes());
        out.freeze()
    }

    /// The first whole frame in `buf` and the bytes it took; `None` when more bytes are needed.
    /// The batches of a push are a slice of `buf`, not a copy.
    pub fn decode(buf: &Bytes, bytes_max: usize) -> Result<Option<(Frame, usize)>, WireError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
        if len > bytes_max {
            return Err(WireError::TooLarge {
                bytes: len,
                bytes_max,
            });
        }
        if buf.len() < 4 + len {
            return Ok(None);
        }
        let mut body = buf.slice(4..4 + len);
        let kind = body.first().copied().unwrap_or(0);
        let malformed = WireError::Malformed { kind, bytes: len };
        if len < HEADER_BYTES {
            return Err(malformed);
        }
        body.advance(1);
        let topic_id = Uuid::from_slice(&body[..16]).expect("16 bytes");
        body.advance(16);
        let partition = body.get_i32();
        let from_shard = body.get_u16();
        let fixed = match kind {
            PUSH => 28,
            EPOCH_END => 16,
            HELLO => 8,
            ACK | NACK => 12,
            other => return Err(WireError::UnknownKind(other)),
        };
        if body.len() < fixed || (kind != PUSH && body.len() != fixed) {
            return Err(malformed);
        }
        let epoch = body.get_i32();
        let message = match kind {
            PUSH => {
                let (from, end, hw) = (body.get_i64(), body.get_i64(), body.get_i64());
                if end < from || from < 0 {
                    return Err(malformed);
                }
                Body::ToFollower(
                    ToFollower::Push {
                        epoch,
                        from,
                        end,
                        hw,
                    },
                    body,
                )
            }
            EPOCH_END => Body::ToFollower(
                ToFollower::EpochEnd {
                    epoch,
                    found_epoch: body.get_i32(),
                    end: body.get_i64(),
                },
                Bytes::new(),
            ),
            HELLO => Body::ToLeader(ToLeader::Hello {
                epoch,
                last_epoch: body.get_i32(),
            }),
            ACK => Body::ToLeader(ToLeader::Ack {
                epoch,
                log_end: body.get_i64(),
            }),
            _ => Body::ToLeader(ToLeader::Nack {
                epoch,
                log_end: body.get_i64(),
            }),
        };
        let frame = Frame {
            topic_id,
            partition,
            from_shard,
            body: message,
        };
        Ok(Some((frame, 4 + len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames() -> Vec<Frame> {
        let id = Uuid::from_u128(0x1234_5678_9abc_def0_1122_3344_5566_7788);
        let bodies = vec![
            Body::ToFollower(
                ToFollower::Push {
                    epoch: 3,
                    from: 10,
                    end: 12,
                    hw: 9,
                },
                Bytes::from_static(b"batch bytes"),
            ),
            Body::ToFollower(
                ToFollower::Push {
                    epoch: 3,
                    from: 12,
                    end: 12,
                    hw: 12,
                },
                Bytes::new(),
            ),
            Body::ToFollower(
                ToFollower::EpochEnd {
                    epoch: 4,
                    found_epoch: 2,
                    end: 77,
                },
                Bytes::new(),
            ),
            Body::ToLeader(ToLeader::Hello {
                epoch: 4,
                last_epoch: -1,
            }),
            Body::ToLeader(ToLeader::Ack {
                epoch: 4,
                log_end: 1 << 40,
            }),
            Body::ToLeader(ToLeader::Nack {
                epoch: 1,
                log_end: 0,
            }),
        ];
        bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| Frame {
                topic_id: id,
                partition: i as i32,
                from_shard: 7,
                body,
            })
            .collect()
    }

    #[test]
    fn every_kind_round_trips_in_one_stream() {
        let mut stream = BytesMut::new();
        for f in frames() {
            stream.extend_from_slice(&f.encode());
        }
        let mut buf = stream.freeze();
        let mut decoded = Vec::new();
        while let Some((f, used)) = Frame::decode(&buf, 1 << 20).unwrap() {
            decoded.push(f);
            buf.advance(used);
        }
        assert!(buf.is_empty());
        assert_eq!(decoded, frames());
    }

    #[test]
    fn a_partial_frame_waits_for_more() {
        let whole = frames()[0].encode();
        for cut in 0..whole.len() {
            let part = whole.slice(..cut);
            assert_eq!(Frame::decode(&part, 1 << 20), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let oversize = Bytes::from(vec![0xff, 0xff, 0xff, 0xff, 1]);
        assert!(matches!(
            Frame::decode(&oversize, 1 << 20),
            Err(WireError::TooLarge { .. })
        ));
        let mut unknown = frames()[3].encode().to_vec();
        unknown[4] = 99;
        assert_eq!(
            Frame::decode(&Bytes::from(unknown), 1 << 20),
            Err(WireError::UnknownKind(99))
        );
        let mut short = frames()[4].encode().to_vec();
        short.pop();
        let len = (short.len() - 4) as u32;
        short[..4].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(
            Frame::decode(&Bytes::from(short), 1 << 20),
            Err(WireError::Malformed { kind: ACK, .. })
        ));
        let mut backwards = frames()[0].encode().to_vec();
        backwards[4 + HEADER_BYTES + 4..4 + HEADER_BYTES + 12]
            .copy_from_slice(&20i64.to_be_bytes());
        assert!(matches!(
            Frame::decode(&Bytes::from(backwards), 1 << 20),
            Err(WireError::Malformed { kind: PUSH, .. })
        ));
        // Seeded random bytes never panic the decoder.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let mut junk = Vec::new();
            for _ in 0..(x % 80) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                junk.push(x as u8);
            }
            let len = junk.len().saturating_sub(4) as u32;
            if junk.len() >= 4 && x.is_multiple_of(2) {
                junk[..4].copy_from_slice(&len.to_be_bytes());
            }
            let _ = Frame::decode(&Bytes::from(junk), 1 << 20);
        }
    }
}
