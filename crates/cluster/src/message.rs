//! `ClusterMessage`: everything one metadata node sends another, and its wire codec.
//!
//! Frame: `[len u32 BE][version u8][tag u8][body]` (the frame layer is shoal-raft's). Raft
//! messages are prost-encoded; the others are postcard. Garbage is a typed error, never a panic.

use serde::{Deserialize, Serialize};
use shoal_metadata::{ControllerError, ControllerReply, ControllerRequest};
use shoal_raft::codec::{self, CodecError};
use shoal_raft::Message;
use uuid::Uuid;

/// Largest encoded message (frame body): a Raft snapshot of the metadata image is the largest.
pub const MESSAGE_BYTES_MAX: usize = codec::FRAME_BYTES_MAX;

const TAG_RAFT: u8 = 0;
const TAG_REQUEST: u8 = 1;
const TAG_REPLY: u8 = 2;

/// Names one controller request cluster-wide: the originating node, its incarnation (so ids
/// restart safely after a crash) and a per-incarnation sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestKey {
    pub node_id: u64,
    pub incarnation_id: Uuid,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClusterMessage {
    /// Raft traffic between metadata voters and learners.
    Raft(Message),
    /// A request to the active controller: a forwarded client request (CreateTopics, ...) or this
    /// node's broker duties (RegisterBroker, BrokerHeartbeat). `term` is the Raft term of the
    /// leader it is meant for: any other term's leader refuses it (NotController).
    ControllerRequest {
        term: u64,
        key: RequestKey,
        request: ControllerRequest,
    },
    /// The controller's answer, sent only once the request's records are committed.
    ControllerReply {
        key: RequestKey,
        reply: Result<ControllerReply, ControllerError>,
    },
}

#[derive(Serialize, Deserialize)]
struct RequestBody {
    term: u64,
    key: RequestKey,
    request: ControllerRequest,
}

#[derive(Serialize, Deserialize)]
struct ReplyBody {
    key: RequestKey,
    reply: Result<ControllerReply, ControllerError>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("unknown message tag {0}")]
    UnknownTag(u8),
    #[error("malformed body: {0}")]
    Malformed(String),
    #[error("trailing bytes after the message")]
    Trailing,
}

impl ClusterMessage {
    /// Encodes a whole frame.
    pub fn encode(&self) -> Result<Vec<u8>, MessageError> {
        let mut body = Vec::new();
        match self {
            ClusterMessage::Raft(m) => {
                body.push(TAG_RAFT);
                body.extend_from_slice(&codec::encode_message(m));
            }
            ClusterMessage::ControllerRequest { term, key, request } => {
                body.push(TAG_REQUEST);
                body.extend(to_postcard(&RequestBody {
                    term: *term,
                    key: *key,
                    request: request.clone(),
                })?);
            }
            ClusterMessage::ControllerReply { key, reply } => {
                body.push(TAG_REPLY);
                body.extend(to_postcard(&ReplyBody {
                    key: *key,
                    reply: reply.clone(),
                })?);
            }
        }
        Ok(codec::encode_frame(&body, MESSAGE_BYTES_MAX)?)
    }

    /// Splits and decodes one message off the front of `buf`: `Ok(None)` when more bytes are
    /// needed, else the message and the bytes consumed.
    pub fn decode(buf: &[u8]) -> Result<Option<(ClusterMessage, usize)>, MessageError> {
        let Some((body, used)) = codec::split_frame(buf, MESSAGE_BYTES_MAX)? else {
            return Ok(None);
        };
        let (&tag, rest) = body.split_first().ok_or(CodecError::Empty)?;
        let msg = match tag {
            TAG_RAFT => ClusterMessage::Raft(codec::decode_message(rest)?),
            TAG_REQUEST => {
                let b: RequestBody = from_postcard(rest)?;
                ClusterMessage::ControllerRequest {
                    term: b.term,
                    key: b.key,
                    request: b.request,
                }
            }
            TAG_REPLY => {
                let b: ReplyBody = from_postcard(rest)?;
                ClusterMessage::ControllerReply {
                    key: b.key,
                    reply: b.reply,
                }
            }
            other => return Err(MessageError::UnknownTag(other)),
        };
        Ok(Some((msg, used)))
    }
}

fn from_postcard<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, MessageError> {
    let (v, rest) =
        postcard::take_from_bytes(bytes).map_err(|e| MessageError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(MessageError::Trailing);
    }
    Ok(v)
}

fn to_postcard<T: Serialize>(v: &T) -> Result<Vec<u8>, MessageError> {
    postcard::to_allocvec(v).map_err(|e| MessageError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_metadata::NewTopic;

    fn key() -> RequestKey {
        RequestKey {
            node_id: 2,
            incarnation_id: Uuid::from_u128(5),
            seq: 9,
        }
    }

    fn samples() -> Vec<ClusterMessage> {
        vec![
            ClusterMessage::Raft(Message {
                msg_type: shoal_raft::MessageType::MsgHeartbeat as i32,
                to: 1,
                from: 2,
                term: 3,
                ..Default::default()
            }),
            ClusterMessage::ControllerRequest {
                term: 3,
                key: key(),
                request: ControllerRequest::CreateTopics {
                    topics: vec![NewTopic {
                        name: "t".into(),
                        partitions: 3,
                        replication_factor: 2,
                        configs: Default::default(),
                    }],
                },
            },
            ClusterMessage::ControllerReply {
                key: key(),
                reply: Err(ControllerError::NotController),
            },
        ]
    }

    #[test]
    fn round_trip() {
        for m in samples() {
            let frame = m.encode().unwrap();
            let (back, used) = ClusterMessage::decode(&frame).unwrap().unwrap();
            assert_eq!(used, frame.len());
            assert_eq!(back, m);
            assert_eq!(
                ClusterMessage::decode(&frame[..frame.len() - 1]).unwrap(),
                None
            );
        }
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        for m in samples() {
            let frame = m.encode().unwrap();
            for i in 4..frame.len() {
                for v in [0u8, 0x7f, 0xff] {
                    let mut bad = frame.clone();
                    bad[i] = v;
                    let _ = ClusterMessage::decode(&bad);
                }
            }
        }
        let frame = codec::encode_frame(&[7, 1, 2], MESSAGE_BYTES_MAX).unwrap();
        assert_eq!(
            ClusterMessage::decode(&frame),
            Err(MessageError::UnknownTag(7))
        );
    }
}
