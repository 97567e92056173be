//! A shard's replication duties: take over the replication channels the cluster listener
//! accepted for it, read their frames and route each to the shard holding that replica, and
//! keep the roles of its replicas in step with the metadata (open new replicas; the roles of
//! open ones follow every new snapshot in `Shard::metadata`).

use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::AsyncReadExt;

use crate::replica::wire::Frame;
use crate::shard::Shard;
use shoal_sync::Notify;

/// How often a shard looks for new channels and a newer snapshot.
const POLL_MS: u64 = 5;
/// How often it opens replicas the metadata gave it.
const OPEN_REPLICAS_EVERY_MS: u64 = 200;
const READ_CHUNK_BYTES: usize = 256 << 10;

pub async fn run(shard: Rc<Shard>, stop: Rc<Notify>) {
    let mut last_open = Instant::now();
    let mut stopped = Box::pin(stop.notified());
    loop {
        let tick = glommio::timer::sleep(Duration::from_millis(POLL_MS));
        let go_on = futures_lite::future::or(
            async {
                tick.await;
                true
            },
            async {
                (&mut stopped).await;
                false
            },
        )
        .await;
        if !go_on || shard.ctx.shutdown.load(Ordering::SeqCst) {
            return;
        }
        shard.metadata();
        if last_open.elapsed() >= Duration::from_millis(OPEN_REPLICAS_EVERY_MS) {
            last_open = Instant::now();
            shard.open_replicas().await;
        }
        while let Ok((from, stream)) = shard.ctx.replica_accepts[shard.id].try_recv() {
            // SAFETY: the descriptor comes from a std socket we own; glommio takes it over.
            let stream = unsafe { glommio::net::TcpStream::from_raw_fd(stream.into_raw_fd()) };
            let shard = shard.clone();
            glommio::spawn_local(async move {
                let from = from as i32;
                if let Err(e) = read_channel(&shard, from, stream).await {
                    log::warn!(
                        "shard {}: replication channel from node {from} closed: {e}",
                        shard.id
                    );
                }
            })
            .detach();
        }
    }
}

/// Reads frames until the peer closes or sends garbage; batches stay slices of the read buffer.
async fn read_channel(
    shard: &Rc<Shard>,
    from: i32,
    mut stream: glommio::net::TcpStream,
) -> Result<(), String> {
    let frame_bytes_max = shard.ctx.config.cluster_frame_bytes_max;
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    loop {
        while buf.len() >= 4 {
            let len = u32::from_be_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
            if len > frame_bytes_max {
                return Err(format!(
                    "a frame of {len} bytes (cluster_frame_bytes_max {frame_bytes_max})"
                ));
            }
            if buf.len() < 4 + len {
                buf.reserve(4 + len - buf.len());
                break;
            }
            let whole = buf.split_to(4 + len).freeze();
            match Frame::decode(&whole, frame_bytes_max) {
                Ok(Some((frame, _))) => shard.route_replica_frame(from, frame).await,
                Ok(None) => unreachable!("a whole frame"),
                Err(e) => return Err(format!("garbage: {e}")),
            }
        }
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
