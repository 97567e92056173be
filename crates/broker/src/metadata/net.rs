//! The node-to-node transport for `ClusterMessage` frames: blocking std::net sockets on plain OS
//! threads (metadata traffic is small and rare; nothing here runs on a shard).
//!
//! Each node dials every peer once (one writer thread per peer with a bounded queue) and accepts
//! their dials on `cluster_listen` (one reader thread per connection, at most
//! `CLUSTER_CONNECTIONS_MAX`). A connection starts with a hello (`SHCL`, version, sender's node id).
//! A peer sending garbage (bad hello, bad frame, a frame over `frame_bytes_max`) loses that one
//! connection, with a log line. Messages queued for an unreachable peer are dropped: Raft treats
//! them as lost and retries; controller requests time out at their sender.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam::channel::{Receiver, Sender, TrySendError};

use shoal_cluster::ClusterMessage;

use super::driver::Input;

const HELLO_MAGIC: &[u8; 4] = b"SHCL";
const HELLO_VERSION: u8 = 1;
const HELLO_BYTES: usize = 4 + 1 + 8;
/// A replication channel's hello: magic, version, sender's node id (u64), the shard it wants.
/// Such a connection is handed, as it is, to that shard (`ReplicaHandoff`); nothing of it runs
/// on these threads after the hello.
pub const REPLICA_HELLO_MAGIC: &[u8; 4] = b"SHRP";
pub const REPLICA_HELLO_VERSION: u8 = 1;
pub const REPLICA_HELLO_BYTES: usize = 4 + 1 + 8 + 2;

/// Per shard, where accepted replication connections go: (sender's node id, the socket).
pub type ReplicaHandoff = Arc<Vec<Sender<(u64, TcpStream)>>>;

/// The replication hello a shard sends after dialing a peer's cluster listener.
pub fn replica_hello(node_id: u64, shard: u16) -> [u8; REPLICA_HELLO_BYTES] {
    let mut hello = [0u8; REPLICA_HELLO_BYTES];
    hello[..4].copy_from_slice(REPLICA_HELLO_MAGIC);
    hello[4] = REPLICA_HELLO_VERSION;
    hello[5..13].copy_from_slice(&node_id.to_be_bytes());
    hello[13..15].copy_from_slice(&shard.to_be_bytes());
    hello
}
/// Inbound cluster connections held open at once; more are closed on accept.
pub const CLUSTER_CONNECTIONS_MAX: usize = 64;
/// A dial or a blocked write to a peer gives up after this (the peer is treated as down).
pub const CLUSTER_IO_TIMEOUT_MS: u64 = 1000;
/// Pause between dials of an unreachable peer.
pub const CLUSTER_REDIAL_MS: u64 = 100;
/// Read buffer chunk.
const READ_CHUNK_BYTES: usize = 64 << 10;

#[derive(Debug, Clone, Copy)]
pub struct NetLimits {
    /// Messages queued per peer before new ones are dropped (`cluster_send_queue_max`).
    pub send_queue_max: usize,
    /// Largest frame accepted from a peer (`cluster_frame_bytes_max`).
    pub frame_bytes_max: usize,
}

pub struct Net {
    peers: Vec<(u64, Sender<Vec<u8>>)>,
    dropped: AtomicUsize,
}

impl Net {
    /// Binds `listen` (if any) and starts a writer per peer. Errors only for the bind.
    pub fn start(
        node_id: u64,
        listen: Option<&str>,
        peers: &[(u64, String)],
        inbound: Sender<Input>,
        limits: NetLimits,
        handoff: ReplicaHandoff,
    ) -> Result<Net, String> {
        if let Some(addr) = listen {
            let listener = TcpListener::bind(addr)
                .map_err(|e| format!("cannot listen on {addr} (cluster_listen): {e}"))?;
            let inbound = inbound.clone();
            std::thread::Builder::new()
                .name("shoal-cluster-accept".into())
                .spawn(move || accept_loop(listener, inbound, limits, handoff))
                .map_err(|e| format!("spawn cluster listener: {e}"))?;
        }
        let mut senders = Vec::new();
        for (id, addr) in peers {
            if *id == node_id {
                continue;
            }
            let (tx, rx) = crossbeam::channel::bounded(limits.send_queue_max);
            let (id, addr) = (*id, addr.clone());
            std::thread::Builder::new()
                .name(format!("shoal-cluster-to-{id}"))
                .spawn(move || writer_loop(node_id, id, addr, rx))
                .map_err(|e| format!("spawn cluster writer: {e}"))?;
            senders.push((id, tx));
        }
        Ok(Net {
            peers: senders,
            dropped: AtomicUsize::new(0),
        })
    }

    pub fn send(&self, to: u64, msg: &ClusterMessage) {
        let Some((_, tx)) = self.peers.iter().find(|(id, _)| *id == to) else {
            return;
        };
        let frame = match msg.encode() {
            Ok(f) => f,
            Err(e) => {
                log::error!("cluster: cannot encode a message to node {to}: {e}");
                return;
            }
        };
        match tx.try_send(frame) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed);
                if n.is_multiple_of(1000) {
                    log::warn!(
                        "cluster: send queue to node {to} full, dropping ({} so far)",
                        n + 1
                    );
                }
            }
        }
    }
}

fn writer_loop(node_id: u64, peer: u64, addr: String, rx: Receiver<Vec<u8>>) {
    let mut hello = Vec::with_capacity(HELLO_BYTES);
    hello.extend_from_slice(HELLO_MAGIC);
    hello.push(HELLO_VERSION);
    hello.extend_from_slice(&node_id.to_be_bytes());
    let mut logged_down = false;
    loop {
        let stream = dial(&addr).and_then(|mut s| {
            s.set_write_timeout(Some(Duration::from_millis(CLUSTER_IO_TIMEOUT_MS)))?;
            s.set_nodelay(true)?;
            s.write_all(&hello)?;
            Ok(s)
        });
        let mut stream = match stream {
            Ok(s) => {
                log::info!("cluster: connected to node {peer} at {addr}");
                logged_down = false;
                s
            }
            Err(e) => {
                if !logged_down {
                    log::warn!("cluster: node {peer} at {addr} unreachable: {e}");
                    logged_down = true;
                }
                // What was queued for a peer that is down is stale by the time it is back.
                while rx.try_recv().is_ok() {}
                std::thread::sleep(Duration::from_millis(CLUSTER_REDIAL_MS));
                continue;
            }
        };
        loop {
            let frame = match rx.recv() {
                Ok(f) => f,
                Err(_) => return,
            };
            if let Err(e) = stream.write_all(&frame) {
                log::warn!("cluster: writing to node {peer} at {addr}: {e}; reconnecting");
                break;
            }
        }
    }
}

fn dial(addr: &str) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for a in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, Duration::from_millis(CLUSTER_IO_TIMEOUT_MS)) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn accept_loop(
    listener: TcpListener,
    inbound: Sender<Input>,
    limits: NetLimits,
    handoff: ReplicaHandoff,
) {
    let open = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                log::warn!("cluster: accept: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if open.fetch_add(1, Ordering::SeqCst) >= CLUSTER_CONNECTIONS_MAX {
            open.fetch_sub(1, Ordering::SeqCst);
            log::warn!("cluster: {CLUSTER_CONNECTIONS_MAX} connections open (CLUSTER_CONNECTIONS_MAX); closing a new one");
            continue;
        }
        let (inbound, open, handoff) = (inbound.clone(), open.clone(), handoff.clone());
        let spawned = std::thread::Builder::new()
            .name("shoal-cluster-from".into())
            .spawn(move || {
                let peer = stream
                    .peer_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                if let Err(e) = reader(stream, &inbound, limits, &handoff) {
                    log::warn!("cluster: connection from {peer} closed: {e}");
                }
                open.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            log::error!("cluster: cannot spawn a reader thread");
        }
    }
}

/// A replication channel: the rest of its hello, then the socket goes to the shard it names.
fn hand_off(mut stream: TcpStream, handoff: &ReplicaHandoff) -> Result<(), String> {
    let mut rest = [0u8; REPLICA_HELLO_BYTES - 4];
    stream
        .read_exact(&mut rest)
        .map_err(|e| format!("no replication hello: {e}"))?;
    if rest[0] != REPLICA_HELLO_VERSION {
        return Err(format!("replication hello of version {}", rest[0]));
    }
    let from = u64::from_be_bytes(rest[1..9].try_into().expect("8 bytes"));
    let shard = u16::from_be_bytes(rest[9..11].try_into().expect("2 bytes")) as usize;
    if handoff.is_empty() {
        return Err(format!(
            "node {from}: replication channel before the shards started"
        ));
    }
    let to = &handoff[shard % handoff.len()];
    stream.set_read_timeout(None).map_err(|e| e.to_string())?;
    stream.set_nonblocking(true).map_err(|e| e.to_string())?;
    to.try_send((from, stream))
        .map_err(|_| format!("node {from}: shard {shard} has too many channels waiting"))
}

fn reader(
    mut stream: TcpStream,
    inbound: &Sender<Input>,
    limits: NetLimits,
    handoff: &ReplicaHandoff,
) -> Result<(), String> {
    stream
        .set_read_timeout(Some(Duration::from_millis(5 * CLUSTER_IO_TIMEOUT_MS)))
        .map_err(|e| e.to_string())?;
    let mut hello = [0u8; HELLO_BYTES];
    stream
        .read_exact(&mut hello[..4])
        .map_err(|e| format!("no hello: {e}"))?;
    if &hello[..4] == REPLICA_HELLO_MAGIC {
        return hand_off(stream, handoff);
    }
    stream
        .read_exact(&mut hello[4..])
        .map_err(|e| format!("no hello: {e}"))?;
    if &hello[..4] != HELLO_MAGIC || hello[4] != HELLO_VERSION {
        return Err("bad hello (not a shoal cluster peer, or another version)".into());
    }
    let from = u64::from_be_bytes(hello[5..13].try_into().expect("8 bytes"));
    stream.set_read_timeout(None).map_err(|e| e.to_string())?;
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    loop {
        // Drain every whole frame buffered so far.
        let mut start = 0;
        loop {
            let rest = &buf[start..];
            if rest.len() >= 4 {
                let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
                if len > limits.frame_bytes_max {
                    return Err(format!(
                        "node {from} sent a frame of {len} bytes (cluster_frame_bytes_max {})",
                        limits.frame_bytes_max
                    ));
                }
            }
            match ClusterMessage::decode(rest) {
                Ok(Some((msg, used))) => {
                    start += used;
                    if inbound.send(Input::Peer(from, msg)).is_err() {
                        return Ok(());
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(format!("node {from} sent garbage: {e}")),
            }
        }
        buf.drain(..start);
        let n = stream.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("node {from} closed the connection"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
