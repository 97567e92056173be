//! Length-prefixed frames: a big-endian i32 size, then `size` bytes of request.

use bytes::{Buf, Bytes, BytesMut};

/// Bytes of the size prefix.
pub const FRAME_PREFIX_BYTES: usize = 4;

/// What the buffer holds so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameStatus {
    /// Not a whole frame yet: at least `bytes_min` bytes (prefix included) are needed in total.
    NeedMore { bytes_min: usize },
    /// A whole frame: `size` bytes of request follow the 4-byte prefix.
    Frame { size: usize },
}

/// A frame the connection cannot continue after: close it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {size} is negative")]
    Negative { size: i32 },
    #[error("frame of {size} bytes exceeds request_bytes_max ({request_bytes_max})")]
    TooLarge {
        size: usize,
        request_bytes_max: usize,
    },
}

/// Looks at the start of `buf` without consuming it. The size is checked against
/// `request_bytes_max` as soon as the prefix is in, before any of the body is buffered.
pub fn check_frame(buf: &[u8], request_bytes_max: usize) -> Result<FrameStatus, FrameError> {
    if buf.len() < FRAME_PREFIX_BYTES {
        return Ok(FrameStatus::NeedMore {
            bytes_min: FRAME_PREFIX_BYTES,
        });
    }
    let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if size < 0 {
        return Err(FrameError::Negative { size });
    }
    let size = size as usize;
    if size > request_bytes_max {
        return Err(FrameError::TooLarge {
            size,
            request_bytes_max,
        });
    }
    let total = FRAME_PREFIX_BYTES + size;
    if buf.len() < total {
        return Ok(FrameStatus::NeedMore { bytes_min: total });
    }
    Ok(FrameStatus::Frame { size })
}

/// Takes the next whole frame (without its prefix) off the front of `buf`, zero-copy.
/// `Ok(None)` means more bytes are needed.
pub fn split_frame(
    buf: &mut BytesMut,
    request_bytes_max: usize,
) -> Result<Option<Bytes>, FrameError> {
    match check_frame(buf, request_bytes_max)? {
        FrameStatus::NeedMore { .. } => Ok(None),
        FrameStatus::Frame { size } => {
            buf.advance(FRAME_PREFIX_BYTES);
            let frame = buf.split_to(size).freeze();
            debug_assert_eq!(frame.len(), size);
            Ok(Some(frame))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn need_more_until_prefix_and_body_are_in() {
        assert_eq!(
            check_frame(&[], 100),
            Ok(FrameStatus::NeedMore { bytes_min: 4 })
        );
        assert_eq!(
            check_frame(&[0, 0, 0], 100),
            Ok(FrameStatus::NeedMore { bytes_min: 4 })
        );
        assert_eq!(
            check_frame(&[0, 0, 0, 3, 1, 2], 100),
            Ok(FrameStatus::NeedMore { bytes_min: 7 })
        );
        assert_eq!(
            check_frame(&[0, 0, 0, 3, 1, 2, 3, 9], 100),
            Ok(FrameStatus::Frame { size: 3 })
        );
        assert_eq!(
            check_frame(&[0, 0, 0, 0], 100),
            Ok(FrameStatus::Frame { size: 0 })
        );
    }

    #[test]
    fn limits_close_the_connection() {
        assert_eq!(
            check_frame(&[0xff, 0xff, 0xff, 0xff], 100),
            Err(FrameError::Negative { size: -1 })
        );
        assert_eq!(
            check_frame(&[0x80, 0, 0, 0], 100),
            Err(FrameError::Negative { size: i32::MIN })
        );
        // Exactly at the limit is fine, one over is not; detected from the prefix alone.
        assert_eq!(
            check_frame(&[0, 0, 0, 100], 100),
            Ok(FrameStatus::NeedMore { bytes_min: 104 })
        );
        assert_eq!(
            check_frame(&[0, 0, 0, 101], 100),
            Err(FrameError::TooLarge {
                size: 101,
                request_bytes_max: 100
            })
        );
        assert_eq!(
            check_frame(&[0x7f, 0xff, 0xff, 0xff], usize::MAX),
            Ok(FrameStatus::NeedMore {
                bytes_min: 4 + i32::MAX as usize
            })
        );
    }

    #[test]
    fn split_takes_frames_in_order() {
        let mut buf = BytesMut::from(&[0, 0, 0, 2, 7, 8, 0, 0, 0, 1, 9, 0, 0][..]);
        assert_eq!(split_frame(&mut buf, 10).unwrap().unwrap(), &[7, 8][..]);
        assert_eq!(split_frame(&mut buf, 10).unwrap().unwrap(), &[9][..]);
        assert_eq!(split_frame(&mut buf, 10).unwrap(), None);
        assert_eq!(buf.len(), 2);
    }
}
