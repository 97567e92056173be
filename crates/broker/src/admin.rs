//! The admin listener (`admin_listen`, Redpanda's port 9644): `GET /metrics` answers in the
//! Prometheus text format with every shard's metrics merged. It runs on shard 0 and asks each
//! shard for a snapshot per scrape; anything else gets a short 4xx answer.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use shoal_sync::Notify;

use crate::metrics::MetricsSnapshot;
use crate::shard::Shard;

/// Bytes of one HTTP request head; a longer one closes the connection (with a log line).
pub const ADMIN_REQUEST_BYTES_MAX: usize = 8 * 1024;
/// Open admin connections; more are closed on accept.
pub const ADMIN_CONNECTIONS_MAX: usize = 16;
/// A request head must arrive within this.
pub const ADMIN_READ_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn serve(shard: Rc<Shard>, listener: TcpListener, stop: Rc<Notify>) {
    let open = Rc::new(Cell::new(0usize));
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            stop.notified().await;
            None
        })
        .await;
        let Some(accepted) = accepted else {
            return;
        };
        let Ok(stream) = accepted else {
            continue;
        };
        if open.get() >= ADMIN_CONNECTIONS_MAX {
            log::warn!("admin: {ADMIN_CONNECTIONS_MAX} connections open, closing a new one");
            continue;
        }
        open.set(open.get() + 1);
        let (shard, open) = (shard.clone(), open.clone());
        glommio::spawn_local(async move {
            if let Err(e) = answer(&shard, stream).await {
                log::debug!("admin connection: {e}");
            }
            open.set(open.get() - 1);
        })
        .detach();
    }
}

async fn answer(shard: &Rc<Shard>, mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(ADMIN_READ_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > ADMIN_REQUEST_BYTES_MAX {
            log::warn!("admin: request head over {ADMIN_REQUEST_BYTES_MAX} bytes, closing");
            return Ok(());
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let line_end = head.iter().position(|&b| b == b'\r').unwrap_or(0);
    let line = String::from_utf8_lossy(&head[..line_end]).into_owned();
    let mut parts = line.split(' ');
    match (parts.next(), parts.next()) {
        (Some("GET"), Some("/metrics")) => {
            let body = gather(shard).await.render();
            respond(&mut stream, "200 OK", &body).await
        }
        (Some("GET"), Some(_)) => respond(&mut stream, "404 Not Found", "try /metrics\n").await,
        _ => respond(&mut stream, "400 Bad Request", "GET /metrics\n").await,
    }
}

async fn respond(stream: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await
}

/// Every shard's snapshot, merged.
async fn gather(shard: &Rc<Shard>) -> MetricsSnapshot {
    let mut merged = MetricsSnapshot::default();
    for target in 0..shard.ctx.nr_shards {
        let snapshot = shard
            .invoke_on(target, |s| async move { s.metrics.snapshot() })
            .await;
        if let Ok(s) = snapshot {
            merged.merge(&s);
        }
    }
    merged
}
