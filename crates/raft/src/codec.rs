//! Wire codec for node-to-node Raft messages: `[len u32 BE][version u8][prost Message]`, where
//! `len` counts the bytes after itself. Garbage is a typed error, never a panic.

use prost::Message as _;
use raft::eraftpb::{Message, MessageType};

pub const FRAME_VERSION: u8 = 1;
/// Largest frame (header excluded): must hold an append of `message_entries_bytes_max` or a
/// snapshot of the metadata image.
pub const FRAME_BYTES_MAX: usize = 64 << 20;
pub const FRAME_HEADER_BYTES: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("frame of {bytes} bytes exceeds {max}")]
    FrameTooLarge { bytes: usize, max: usize },
    #[error("empty frame")]
    Empty,
    #[error("unsupported frame version {0}")]
    UnsupportedVersion(u8),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("unknown message type {0}")]
    UnknownType(i32),
}

/// Wraps `body` in a frame: length prefix and version byte.
pub fn encode_frame(body: &[u8], max: usize) -> Result<Vec<u8>, CodecError> {
    let len = body.len() + 1;
    if len > max {
        return Err(CodecError::FrameTooLarge { bytes: len, max });
    }
    let mut out = Vec::with_capacity(FRAME_HEADER_BYTES + len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.push(FRAME_VERSION);
    out.extend_from_slice(body);
    Ok(out)
}

/// Splits one frame off the front of `buf`: `Ok(None)` when more bytes are needed, else the
/// body (after the version byte) and the bytes consumed. An over-long length is an error at
/// once, before any of it is buffered.
pub fn split_frame(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, CodecError> {
    let Some(header) = buf.get(..FRAME_HEADER_BYTES) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(header.try_into().expect("4 bytes")) as usize;
    if len > max {
        return Err(CodecError::FrameTooLarge { bytes: len, max });
    }
    if len == 0 {
        return Err(CodecError::Empty);
    }
    let Some(frame) = buf.get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + len) else {
        return Ok(None);
    };
    if frame[0] != FRAME_VERSION {
        return Err(CodecError::UnsupportedVersion(frame[0]));
    }
    Ok(Some((&frame[1..], FRAME_HEADER_BYTES + len)))
}

/// Encodes a Raft message body (no frame).
pub fn encode_message(msg: &Message) -> Vec<u8> {
    msg.encode_to_vec()
}

/// Decodes a Raft message body; rejects unknown message types.
pub fn decode_message(body: &[u8]) -> Result<Message, CodecError> {
    let msg = Message::decode(body).map_err(|e| CodecError::Malformed(e.to_string()))?;
    if MessageType::from_i32(msg.msg_type).is_none() {
        return Err(CodecError::UnknownType(msg.msg_type));
    }
    Ok(msg)
}

/// A whole framed Raft message.
pub fn encode_message_frame(msg: &Message) -> Result<Vec<u8>, CodecError> {
    encode_frame(&encode_message(msg), FRAME_BYTES_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::Entry;

    fn sample() -> Message {
        Message {
            msg_type: MessageType::MsgAppend as i32,
            to: 2,
            from: 1,
            term: 7,
            log_term: 6,
            index: 41,
            commit: 40,
            entries: vec![Entry {
                term: 7,
                index: 42,
                data: b"opaque".to_vec(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn round_trip() {
        let frame = encode_message_frame(&sample()).unwrap();
        let (body, used) = split_frame(&frame, FRAME_BYTES_MAX).unwrap().unwrap();
        assert_eq!(used, frame.len());
        assert_eq!(decode_message(body).unwrap(), sample());
        // Partial frames ask for more.
        for cut in 0..frame.len() {
            assert_eq!(split_frame(&frame[..cut], FRAME_BYTES_MAX).unwrap(), None);
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert_eq!(
            split_frame(&[0xff, 0xff, 0xff, 0xff], FRAME_BYTES_MAX),
            Err(CodecError::FrameTooLarge {
                bytes: u32::MAX as usize,
                max: FRAME_BYTES_MAX
            })
        );
        assert_eq!(split_frame(&[0, 0, 0, 0], 10), Err(CodecError::Empty));
        assert_eq!(
            split_frame(&[0, 0, 0, 1, 9], 10),
            Err(CodecError::UnsupportedVersion(9))
        );
        let body = encode_message(&sample());
        for cut in 0..body.len() {
            let _ = decode_message(&body[..cut]);
        }
        let mut x: u64 = 12345;
        for _ in 0..5000 {
            let len = (x % 64) as usize;
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = decode_message(&buf);
            let _ = split_frame(&buf, 1024);
        }
        let unknown = Message {
            msg_type: 999,
            ..Default::default()
        };
        assert_eq!(
            decode_message(&encode_message(&unknown)),
            Err(CodecError::UnknownType(999))
        );
    }
}
