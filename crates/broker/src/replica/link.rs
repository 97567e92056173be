//! Outbound replication channels of one shard: one TCP connection per (peer node, peer shard),
//! dialed to the peer's cluster listener with a replication hello naming that shard, which
//! takes the socket over (no hop through another core on the receiving side when the shard is
//! right). Every message this shard sends to a peer, for any partition, leader or follower
//! side, goes on these; answers come back on the peer's own channels to us.
//!
//! Which shard of the peer holds a partition's replica is learned from the frames it sends
//! (each names its shard); until then frames go to its shard 0, which forwards them on its
//! mesh. A channel queues at most `LINK_QUEUED_BYTES_MAX`; what does not fit, or is queued
//! while the peer is unreachable, is dropped, and the state machines resend.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_lite::AsyncWriteExt;
use uuid::Uuid;

use super::wire::{Body, Frame};
use crate::context::NodeContext;
use shoal_sync::Notify;

/// Bytes queued on one channel; more are dropped.
pub const LINK_QUEUED_BYTES_MAX: usize = 64 << 20;
/// Frames are gathered into writes of up to this many bytes.
const WRITE_GATHER_BYTES_MAX: usize = 256 << 10;
const DIAL_TIMEOUT_MS: u64 = 1000;
const REDIAL_MS: u64 = 100;
/// A write blocked this long (the peer stopped reading) closes the channel.
const LINK_WRITE_TIMEOUT_MS: u64 = 2000;

struct Link {
    queue: RefCell<VecDeque<Bytes>>,
    queued_bytes: Cell<usize>,
    wake: Notify,
    dropped: Cell<u64>,
}

pub struct Links {
    ctx: Arc<NodeContext>,
    shard: u16,
    links: RefCell<HashMap<(i32, u16), Rc<Link>>>,
    /// (topic, partition, node) → the shard of that node holding the replica.
    shards: RefCell<HashMap<(Uuid, i32, i32), u16>>,
}

impl Links {
    pub fn new(ctx: Arc<NodeContext>, shard: usize) -> Rc<Links> {
        Rc::new(Links {
            ctx,
            shard: shard as u16,
            links: RefCell::new(HashMap::new()),
            shards: RefCell::new(HashMap::new()),
        })
    }

    /// `node`'s replica of this partition lives on its shard `shard` (from a frame it sent).
    pub fn learn(&self, topic_id: Uuid, partition: i32, node: i32, shard: u16) {
        self.shards
            .borrow_mut()
            .insert((topic_id, partition, node), shard);
    }

    pub fn send(&self, to: i32, topic_id: Uuid, partition: i32, body: Body) {
        let shard = self
            .shards
            .borrow()
            .get(&(topic_id, partition, to))
            .copied()
            .unwrap_or(0);
        let frame = Frame {
            topic_id,
            partition,
            from_shard: self.shard,
            body,
        }
        .encode();
        let link = self.link(to, shard);
        if link.queued_bytes.get() + frame.len() > LINK_QUEUED_BYTES_MAX {
            let n = link.dropped.get() + 1;
            link.dropped.set(n);
            if n.is_power_of_two() {
                log::warn!(
                    "replication: channel to node {to} shard {shard} full (LINK_QUEUED_BYTES_MAX); {n} frames dropped"
                );
            }
            return;
        }
        link.queued_bytes.set(link.queued_bytes.get() + frame.len());
        link.queue.borrow_mut().push_back(frame);
        link.wake.notify_all();
    }

    fn link(&self, node: i32, shard: u16) -> Rc<Link> {
        if let Some(l) = self.links.borrow().get(&(node, shard)) {
            return l.clone();
        }
        let link = Rc::new(Link {
            queue: RefCell::new(VecDeque::new()),
            queued_bytes: Cell::new(0),
            wake: Notify::default(),
            dropped: Cell::new(0),
        });
        self.links.borrow_mut().insert((node, shard), link.clone());
        let writer = write_loop(self.ctx.clone(), node, shard, link.clone());
        glommio::spawn_local(writer).detach();
        link
    }
}

impl Link {
    fn clear(&self) {
        self.queue.borrow_mut().clear();
        self.queued_bytes.set(0);
    }

    /// The next write: one frame, or several gathered up to `WRITE_GATHER_BYTES_MAX`.
    fn take_write(&self) -> Option<Bytes> {
        let mut queue = self.queue.borrow_mut();
        let first = queue.pop_front()?;
        let mut taken = first.len();
        if queue
            .front()
            .is_none_or(|f| taken + f.len() > WRITE_GATHER_BYTES_MAX)
        {
            self.queued_bytes.set(self.queued_bytes.get() - taken);
            return Some(first);
        }
        let mut gathered = BytesMut::from(&first[..]);
        while let Some(f) = queue.front() {
            if taken + f.len() > WRITE_GATHER_BYTES_MAX {
                break;
            }
            taken += f.len();
            gathered.extend_from_slice(&queue.pop_front().expect("front"));
        }
        self.queued_bytes.set(self.queued_bytes.get() - taken);
        Some(gathered.freeze())
    }
}

async fn dial(ctx: &NodeContext, node: i32, shard: u16) -> Result<glommio::net::TcpStream, String> {
    let registered = || {
        let meta = ctx.metadata.snapshot();
        meta.broker(node).map(|b| b.cluster_addr.clone())
    };
    let addr = ctx
        .peer_cluster_addrs
        .get(&node)
        .cloned()
        .or_else(registered)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| format!("node {node} has no cluster address"))?;
    let connect = glommio::net::TcpStream::connect_timeout(
        addr.as_str(),
        Duration::from_millis(DIAL_TIMEOUT_MS),
    );
    let mut stream = connect.await.map_err(|e| format!("{addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    // A peer that stops reading (paused, wedged) costs this channel, not the shard.
    let timeout = Duration::from_millis(LINK_WRITE_TIMEOUT_MS);
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let hello = crate::metadata::replica_hello(ctx.config.node_id as u64, shard);
    stream
        .write_all(&hello)
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    Ok(stream)
}

async fn write_loop(ctx: Arc<NodeContext>, node: i32, shard: u16, link: Rc<Link>) {
    let mut logged_down = false;
    loop {
        let mut stream = match dial(&ctx, node, shard).await {
            Ok(s) => {
                log::info!("replication: channel to node {node} shard {shard} open");
                logged_down = false;
                s
            }
            Err(e) => {
                if !logged_down {
                    log::warn!("replication: node {node} unreachable: {e}");
                    logged_down = true;
                }
                // What was queued for a peer that is down is stale by the time it is back.
                link.clear();
                glommio::timer::sleep(Duration::from_millis(REDIAL_MS)).await;
                continue;
            }
        };
        loop {
            let Some(write) = link.take_write() else {
                link.wake.notified().await;
                continue;
            };
            if let Err(e) = stream.write_all(&write).await {
                log::warn!("replication: writing to node {node}: {e}; reconnecting");
                link.clear();
                break;
            }
        }
    }
}
