//! One client connection: frames are read and dispatched as they arrive (pipelining up to
//! `connection_in_flight_max` requests and `connection_in_flight_bytes_max` request bytes; a
//! single larger request is still admitted alone), and responses are written strictly in
//! request order.
//! A malformed frame closes only this connection, with a log line.

use std::cell::Cell;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use bytes::{Buf, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel;
use glommio::net::TcpStream;

use crate::handlers::{self, Reply};
use crate::io::send::{set_nonblocking, write_pieces};
use crate::shard::Shard;
use shoal_protocol::frame::{check_frame, FrameStatus, FRAME_PREFIX_BYTES};
use shoal_sync::Notify;

const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Request bytes dispatched and not yet answered (`connection_in_flight_bytes_max`); the writer
/// releases them as it answers.
#[derive(Default)]
struct InFlightBytes {
    bytes: Cell<usize>,
    released: Notify,
}

impl InFlightBytes {
    fn admits(&self, size: usize, bytes_max: usize) -> bool {
        let bytes = self.bytes.get();
        bytes == 0 || bytes + size <= bytes_max
    }

    /// Waits until `size` more bytes fit (a request larger than the budget is admitted alone).
    async fn acquire(&self, size: usize, bytes_max: usize) {
        loop {
            if self.admits(size, bytes_max) {
                break;
            }
            let wait = self.released.notified();
            if self.admits(size, bytes_max) {
                break;
            }
            wait.await;
        }
        self.bytes.set(self.bytes.get() + size);
    }

    fn release(&self, size: usize) {
        self.bytes.set(self.bytes.get() - size);
        self.released.notify_all();
    }
}

type Outbox = local_channel::LocalSender<(handlers::Pending, usize)>;

pub async fn serve(shard: Rc<Shard>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let socket = stream.as_raw_fd();
    if let Err(e) = set_nonblocking(socket) {
        log::warn!("cannot make a client socket non-blocking ({e}): closing it");
        return;
    }
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    let (reader, mut writer) = futures_lite::io::split(stream);
    let budget = Rc::new(InFlightBytes::default());
    let (tx, rx) = local_channel::new_bounded::<(handlers::Pending, usize)>(
        shard.ctx.config.connection_in_flight_max,
    );
    let writer_budget = budget.clone();
    let writer_shard = shard.clone();
    let writer_task = glommio::spawn_local(async move {
        while let Some((pending, size)) = rx.recv().await {
            let reply = pending.await;
            writer_budget.release(size);
            match reply {
                Reply::Frame(response) => writer.write_all(&response).await?,
                Reply::Pieces(pieces) => {
                    let started = std::time::Instant::now();
                    let sent = write_pieces(&mut writer, socket, &pieces).await?;
                    let m = &writer_shard.metrics;
                    m.fetch_send.record_since(started);
                    m.fetch_bytes_zero_copy
                        .set(m.fetch_bytes_zero_copy.get() + sent.zero_copy);
                    m.fetch_bytes_copied
                        .set(m.fetch_bytes_copied.get() + sent.copied);
                }
                Reply::Nothing => {}
                Reply::Close => break,
            }
        }
        writer.close().await
    });
    read_loop(&shard, reader, &tx, &budget, &peer).await;
    drop(tx);
    if let Err(e) = writer_task.await {
        log::debug!("{peer}: write: {e}");
    }
}

/// Reads frames and dispatches each as soon as it is whole, until EOF, an error or a bad frame.
/// Bytes are read straight into the buffer that frames are split from, so a request's bytes
/// are copied only by the kernel.
async fn read_loop(
    shard: &Rc<Shard>,
    mut reader: impl futures_lite::AsyncRead + Unpin,
    tx: &Outbox,
    budget: &InFlightBytes,
    peer: &str,
) {
    let request_bytes_max = shard.ctx.config.request_bytes_max;
    let in_flight_bytes_max = shard.ctx.config.connection_in_flight_bytes_max;
    let mut buf = ReadBuffer::default();
    loop {
        let mut space_min = READ_CHUNK_BYTES;
        loop {
            let size = match check_frame(buf.filled(), request_bytes_max) {
                Ok(FrameStatus::Frame { size }) => size,
                Ok(FrameStatus::NeedMore { bytes_min }) => {
                    space_min = space_min.max(bytes_min.saturating_sub(buf.filled().len()));
                    break;
                }
                Err(e) => {
                    log::warn!("{peer}: {e} (request_bytes_max): closing");
                    return;
                }
            };
            budget.acquire(size, in_flight_bytes_max).await;
            let frame = buf.take_frame(size);
            let pending = match handlers::dispatch_from(shard, frame, peer) {
                Ok(pending) => pending,
                Err(why) => {
                    log::warn!("{peer}: {why}: closing connection");
                    return;
                }
            };
            if tx.send((pending, size)).await.is_err() {
                return;
            }
        }
        match reader.read(buf.space(space_min)).await {
            Ok(0) => return,
            Ok(n) => buf.advance(n),
            Err(e) => {
                log::debug!("{peer}: read: {e}");
                return;
            }
        }
    }
}

/// `bytes[..filled]` are read and not yet split off; the rest is initialized space to read
/// into. Space is zeroed once per allocation, not before every read (a 64 KiB memset per small
/// request when it was).
#[derive(Default)]
struct ReadBuffer {
    bytes: BytesMut,
    filled: usize,
}

impl ReadBuffer {
    fn filled(&self) -> &[u8] {
        &self.bytes[..self.filled]
    }

    /// At least `space_min` bytes to read into, after the filled ones.
    fn space(&mut self, space_min: usize) -> &mut [u8] {
        if self.bytes.len() - self.filled < space_min {
            self.bytes.truncate(self.filled);
            self.bytes.reserve(space_min);
            let capacity = self.bytes.capacity();
            self.bytes.resize(capacity, 0);
        }
        &mut self.bytes[self.filled..]
    }

    fn advance(&mut self, n: usize) {
        assert!(self.filled + n <= self.bytes.len());
        self.filled += n;
    }

    /// The whole frame of `size` bytes after its length prefix, which must be filled.
    fn take_frame(&mut self, size: usize) -> bytes::Bytes {
        let len = FRAME_PREFIX_BYTES + size;
        assert!(len <= self.filled);
        let mut frame = self.bytes.split_to(len);
        self.filled -= len;
        frame.advance(FRAME_PREFIX_BYTES);
        frame.freeze()
    }
}
