//! Writing a response in pieces: inline bytes with `send(2)`, file ranges with `sendfile(2)`
//! (page cache to socket, no user-space copy).
//!
//! glommio exposes no readiness wait of its own, so when the socket is full `sendfile` returns
//! EAGAIN and the next `SENDFILE_STALL_CHUNK_BYTES` of the range are copied and written through
//! the connection's writer, whose write waits for writability on the ring. Then `sendfile`
//! resumes. The socket must be non-blocking (`set_nonblocking`).

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use futures_lite::{AsyncWrite, AsyncWriteExt};

use crate::handlers::Piece;
use crate::partition::FileRange;

/// Copied and written through the writer when the socket is full.
const SENDFILE_STALL_CHUNK_BYTES: usize = 64 * 1024;
/// Largest single `sendfile` call.
const SENDFILE_CALL_BYTES_MAX: usize = 4 << 20;

/// Record bytes a response sent file to socket, and from memory.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SentBytes {
    pub zero_copy: u64,
    pub copied: u64,
}

pub fn set_nonblocking(socket: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own; no memory is passed.
    let flags = unsafe { libc::fcntl(socket, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(socket, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Writes `pieces` in order. An error leaves the frame incomplete: close the connection.
pub async fn write_pieces<W: AsyncWrite + Unpin>(
    writer: &mut W,
    socket: RawFd,
    pieces: &[Piece],
) -> io::Result<SentBytes> {
    let mut sent = SentBytes::default();
    for (i, piece) in pieces.iter().enumerate() {
        let more = i + 1 < pieces.len();
        match piece {
            Piece::Inline(bytes) => send_inline(writer, socket, bytes, more).await?,
            Piece::Records(bytes) => {
                send_inline(writer, socket, bytes, more).await?;
                sent.copied += bytes.len() as u64;
            }
            Piece::File(range) => send_file(writer, socket, range, &mut sent).await?,
        }
    }
    Ok(sent)
}

/// With more pieces to follow, MSG_MORE lets the kernel hold a small header for the bytes that
/// follow instead of sending it as a packet of its own.
async fn send_inline<W: AsyncWrite + Unpin>(
    writer: &mut W,
    socket: RawFd,
    bytes: &[u8],
    more: bool,
) -> io::Result<()> {
    let mut at = 0;
    if more {
        let flags = libc::MSG_DONTWAIT | libc::MSG_MORE | libc::MSG_NOSIGNAL;
        // SAFETY: `bytes` is valid for its length for the duration of the call.
        let n = unsafe { libc::send(socket, bytes.as_ptr().cast(), bytes.len(), flags) };
        if n >= 0 {
            at = n as usize;
        } else {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::WouldBlock {
                return Err(e);
            }
        }
    }
    writer.write_all(&bytes[at..]).await
}

async fn send_file<W: AsyncWrite + Unpin>(
    writer: &mut W,
    socket: RawFd,
    range: &FileRange,
    sent: &mut SentBytes,
) -> io::Result<()> {
    let file = range.fd.as_raw_fd();
    let mut offset = i64::try_from(range.position).map_err(io::Error::other)?;
    let mut left = range.len;
    while left > 0 {
        let want = left.min(SENDFILE_CALL_BYTES_MAX);
        // SAFETY: both descriptors are open (the range holds the file's); `offset` is ours.
        let n = unsafe { libc::sendfile(socket, file, &mut offset, want) };
        if n > 0 {
            let n = n as usize;
            assert!(n <= want);
            left -= n;
            sent.zero_copy += n as u64;
            continue;
        }
        if n == 0 {
            return Err(short_file(range, left));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => {
                let chunk = pread(file, offset as u64, left.min(SENDFILE_STALL_CHUNK_BYTES))?;
                if chunk.is_empty() {
                    return Err(short_file(range, left));
                }
                writer.write_all(&chunk).await?;
                offset += chunk.len() as i64;
                left -= chunk.len();
                sent.copied += chunk.len() as u64;
            }
            _ => return Err(e),
        }
    }
    Ok(())
}

/// The file ended before the range did (truncated under the send): the frame cannot be
/// completed.
fn short_file(range: &FileRange, left: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!(
            "segment file shorter than its fetch range ({} bytes at {}, {left} not sent)",
            range.len, range.position
        ),
    )
}

/// Up to `len` bytes at `offset` (from the page cache: the range was just written or read).
fn pread(file: RawFd, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    loop {
        // SAFETY: `buf` is valid for `len` bytes.
        let n = unsafe { libc::pread(file, buf.as_mut_ptr().cast(), len, offset as i64) };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(buf);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
