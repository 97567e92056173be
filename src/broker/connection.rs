//! One client connection: frames are read and dispatched as they arrive (pipelining up to
//! `connection_in_flight_max` requests and `connection_in_flight_bytes_max` request bytes; a
//! single larger request is still admitted alone), and responses are written strictly in
//! request order.
//! A malformed frame closes only this connection, with a log line.

use std::cell::Cell;
use std::rc::Rc;

use bytes::{Buf, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel;
use glommio::net::TcpStream;

use crate::broker::handlers::{self, Reply};
use crate::broker::shard::Shard;
use crate::broker::sync::LocalNotify;

const READ_CHUNK_BYTES: usize = 64 * 1024;

pub async fn serve(shard: Rc<Shard>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    let (mut reader, mut writer) = futures_lite::io::split(stream);
    let in_flight_max = shard.node.config.connection_in_flight_max;
    let in_flight_bytes_max = shard.node.config.connection_in_flight_bytes_max;
    // Request bytes dispatched and not yet answered; the writer releases them.
    let budget = Rc::new((Cell::new(0usize), LocalNotify::default()));
    let (tx, rx) = local_channel::new_bounded::<(handlers::Pending, usize)>(in_flight_max);
    let writer_budget = budget.clone();
    let writer_task = glommio::spawn_local(async move {
        while let Some((pending, size)) = rx.recv().await {
            let reply = pending.await;
            let (bytes, released) = &*writer_budget;
            bytes.set(bytes.get() - size);
            released.notify_all();
            match reply {
                Reply::Frame(response) => writer.write_all(&response).await?,
                Reply::Nothing => {}
                Reply::Close => break,
            }
        }
        writer.close().await
    });

    let request_bytes_max = shard.node.config.request_bytes_max;
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    'read: loop {
        // Dispatch every complete frame in the buffer.
        loop {
            if buf.len() < 4 {
                break;
            }
            let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
            if size < 0 || size as usize > request_bytes_max {
                log::warn!(
                    "{peer}: frame of {size} bytes outside 0..={request_bytes_max} (request_bytes_max): closing"
                );
                break 'read;
            }
            let size = size as usize;
            if buf.len() < 4 + size {
                buf.reserve(4 + size - buf.len());
                break;
            }
            loop {
                let (bytes, released) = &*budget;
                if bytes.get() == 0 || bytes.get() + size <= in_flight_bytes_max {
                    break;
                }
                let wait = released.notified();
                if bytes.get() == 0 || bytes.get() + size <= in_flight_bytes_max {
                    break;
                }
                wait.await;
            }
            budget.0.set(budget.0.get() + size);
            buf.advance(4);
            let frame = buf.split_to(size).freeze();
            match handlers::dispatch_from(&shard, frame, &peer) {
                Ok(pending) => {
                    if tx.send((pending, size)).await.is_err() {
                        break 'read;
                    }
                }
                Err(why) => {
                    log::warn!("{peer}: {why}: closing connection");
                    break 'read;
                }
            }
        }
        // Read into a fixed chunk and append what arrived: zero-filling `buf`'s spare
        // capacity before every read cost a 64 KiB memset per small request.
        match reader.read(&mut chunk[..]).await {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => {
                log::debug!("{peer}: read: {e}");
                break;
            }
        }
    }
    drop(tx);
    if let Err(e) = writer_task.await {
        log::debug!("{peer}: write: {e}");
    }
}
