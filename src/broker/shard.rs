//! A shard: one pinned executor's share of the node. It owns a set of partitions (their logs live
//! only here), accepts its own connections, and runs work for other shards that arrives as
//! messages (`Job`s) over a bounded channel mesh. Nothing here is shared with other threads except
//! the immutable metadata snapshot and the node's atomics.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use glommio::channels::channel_mesh::Senders;
use uuid::Uuid;

use crate::broker::error_codes as ec;
use crate::broker::metadata::MetadataSnapshot;
use crate::broker::node::Node;
use crate::broker::sync::{oneshot, Canceled, LocalNotify};
use crate::storage::{PartitionLog, StorageError};

/// Work sent to another shard: runs there with that shard's state.
pub type Job = Box<dyn FnOnce(Rc<Shard>) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

pub struct LocalPartition {
    pub topic_id: Uuid,
    pub log: Rc<PartitionLog>,
    /// Notified whenever the high watermark may have moved (long-polling fetches wait here).
    pub data_ready: LocalNotify,
}

pub struct Shard {
    pub id: usize,
    pub node: Arc<Node>,
    snapshot: RefCell<Arc<MetadataSnapshot>>,
    partitions: RefCell<HashMap<String, HashMap<i32, Rc<LocalPartition>>>>,
    open_lock: glommio::sync::Semaphore,
    peers: RefCell<Option<Rc<Senders<Job>>>>,
}

/// Result of appending one partition's batch (owner side).
#[derive(Debug, Clone)]
pub struct AppendOutcome {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub base_offset: i64,
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

/// Result of reading one partition (owner side).
#[derive(Debug, Clone, Default)]
pub struct ReadOutcome {
    pub error_code: i16,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub records: Option<Bytes>,
}

impl ReadOutcome {
    pub fn error(code: i16) -> Self {
        ReadOutcome {
            error_code: code,
            high_watermark: -1,
            log_start_offset: -1,
            records: None,
        }
    }
    pub fn bytes(&self) -> usize {
        self.records.as_ref().map_or(0, |r| r.len())
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn storage_error_code(e: &StorageError) -> i16 {
    match e {
        StorageError::OffsetOutOfRange { .. } => ec::OFFSET_OUT_OF_RANGE,
        _ => ec::KAFKA_STORAGE_ERROR,
    }
}

impl Shard {
    pub fn new(id: usize, node: Arc<Node>) -> Rc<Shard> {
        let snapshot = node.metadata.snapshot();
        Rc::new(Shard {
            id,
            node,
            snapshot: RefCell::new(snapshot),
            partitions: RefCell::new(HashMap::new()),
            open_lock: glommio::sync::Semaphore::new(1),
            peers: RefCell::new(None),
        })
    }

    pub fn set_peers(&self, senders: Senders<Job>) {
        *self.peers.borrow_mut() = Some(Rc::new(senders));
    }

    /// The current metadata; refreshed from the node only when its version moved.
    pub fn metadata(&self) -> Arc<MetadataSnapshot> {
        let version = self.node.metadata.version();
        if self.snapshot.borrow().version != version {
            *self.snapshot.borrow_mut() = self.node.metadata.snapshot();
        }
        self.snapshot.borrow().clone()
    }

    /// Runs `f` on shard `target` (directly when it is this shard) and returns its result.
    pub async fn invoke_on<R, F, Fut>(self: &Rc<Self>, target: usize, f: F) -> Result<R, Canceled>
    where
        R: Send + 'static,
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        if target == self.id {
            return Ok(f(self.clone()).await);
        }
        let peers = self.peers.borrow().clone().ok_or(Canceled)?;
        let (tx, rx) = oneshot();
        let job: Job = Box::new(move |shard| {
            Box::pin(async move {
                tx.send(f(shard).await);
            })
        });
        peers.send_to(target, job).await.map_err(|_| Canceled)?;
        rx.await
    }

    /// Runs `f` with the partition on its owning shard; errors are Kafka error codes.
    pub async fn on_partition<R, F, Fut>(self: &Rc<Self>, topic: &str, partition: i32, f: F) -> Result<R, i16>
    where
        R: Send + 'static,
        F: FnOnce(Rc<Shard>, Rc<LocalPartition>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        let owner = self.owner_of(topic, partition)?;
        let topic = topic.to_string();
        let result = self
            .invoke_on(owner, move |shard| async move {
                match shard.partition(&topic, partition).await {
                    Ok(p) => Ok(f(shard, p).await),
                    Err(code) => Err(code),
                }
            })
            .await;
        result.unwrap_or(Err(ec::NOT_LEADER_OR_FOLLOWER))
    }

    pub fn owner_of(&self, topic: &str, partition: i32) -> Result<usize, i16> {
        let meta = self.metadata();
        let t = meta.topic(topic).ok_or(ec::UNKNOWN_TOPIC_OR_PARTITION)?;
        if partition < 0 || partition >= t.partitions() {
            return Err(ec::UNKNOWN_TOPIC_OR_PARTITION);
        }
        Ok(t.partition_shards[partition as usize] as usize % self.node.nr_shards)
    }

    /// The local partition, opening (and recovering) its log on first use.
    pub async fn partition(&self, topic: &str, partition: i32) -> Result<Rc<LocalPartition>, i16> {
        let meta = self.metadata();
        let t = meta.topic(topic).ok_or(ec::UNKNOWN_TOPIC_OR_PARTITION)?.clone();
        if partition < 0 || partition >= t.partitions() {
            return Err(ec::UNKNOWN_TOPIC_OR_PARTITION);
        }
        if t.partition_shards[partition as usize] as usize % self.node.nr_shards != self.id {
            return Err(ec::NOT_LEADER_OR_FOLLOWER);
        }
        if let Some(p) = self.lookup(topic, partition, t.id) {
            return Ok(p);
        }
        let _guard = self
            .open_lock
            .acquire_permit(1)
            .await
            .map_err(|_| ec::KAFKA_STORAGE_ERROR)?;
        if let Some(p) = self.lookup(topic, partition, t.id) {
            return Ok(p);
        }
        let log_config = crate::config::topic_log_config(&self.node.config.topic_defaults, &t.configs)
            .map_err(|e| {
                log::error!("topic {topic}: bad config: {e}");
                ec::INVALID_CONFIG
            })?;
        let dir = self.node.partition_dir(topic, partition);
        let log = PartitionLog::open(dir.clone(), log_config).await.map_err(|e| {
            log::error!("shard {}: cannot open {}: {e}", self.id, dir.display());
            ec::KAFKA_STORAGE_ERROR
        })?;
        let p = Rc::new(LocalPartition {
            topic_id: t.id,
            log,
            data_ready: LocalNotify::default(),
        });
        self.partitions
            .borrow_mut()
            .entry(topic.to_string())
            .or_default()
            .insert(partition, p.clone());
        Ok(p)
    }

    fn lookup(&self, topic: &str, partition: i32, topic_id: Uuid) -> Option<Rc<LocalPartition>> {
        let map = self.partitions.borrow();
        map.get(topic)
            .and_then(|ps| ps.get(&partition))
            .filter(|p| p.topic_id == topic_id)
            .cloned()
    }

    /// Opens every partition this shard owns (at start, so recovery runs before serving).
    pub async fn open_owned_partitions(&self) {
        let meta = self.metadata();
        for t in meta.topics.values() {
            for (p, &s) in t.partition_shards.iter().enumerate() {
                if s as usize % self.node.nr_shards == self.id {
                    if let Err(code) = self.partition(&t.name, p as i32).await {
                        log::error!("shard {}: {}-{p} unavailable (error {code})", self.id, t.name);
                    }
                }
            }
        }
    }

    /// Closes and deletes this shard's partitions of a deleted topic.
    pub async fn drop_topic(&self, topic: &str, partitions: i32, topic_id: Uuid) {
        let removed = self.partitions.borrow_mut().remove(topic).unwrap_or_default();
        for (p, lp) in removed {
            if lp.topic_id != topic_id {
                continue;
            }
            lp.data_ready.notify_all();
            let log = lp.log.clone();
            drop(lp);
            if let Err(e) = log.delete().await {
                log::error!("shard {}: deleting {topic}-{p}: {e}", self.id);
            }
        }
        if self.id == 0 {
            // Directories of partitions never opened in this run.
            for p in 0..partitions {
                let dir = self.node.partition_dir(topic, p);
                if dir.exists() {
                    if let Err(e) = std::fs::remove_dir_all(&dir) {
                        log::error!("deleting {}: {e}", dir.display());
                    }
                }
            }
        }
    }

    pub fn local_partitions(&self) -> Vec<Rc<LocalPartition>> {
        self.partitions
            .borrow()
            .values()
            .flat_map(|m| m.values().cloned())
            .collect()
    }

    /// Periodic work: segment.ms rolls, flush.ms flushes, retention.
    pub async fn tick(&self, retention_due: bool) {
        let now = now_ms();
        for p in self.local_partitions() {
            if let Err(e) = p.log.tick(now).await {
                log::error!("shard {}: tick: {e}", self.id);
            }
            if retention_due {
                if let Err(e) = p.log.enforce_retention(now).await {
                    log::error!("shard {}: retention: {e}", self.id);
                }
            }
            // Interval-flushed logs move their watermark without an append completing.
            p.data_ready.notify_all();
        }
    }

    pub async fn close_all(&self) {
        for p in self.local_partitions() {
            if let Err(e) = p.log.close().await {
                log::error!("shard {}: close: {e}", self.id);
            }
        }
    }
}

/// Owner-side partition operations, run through `Shard::on_partition`.
pub mod ops {
    use super::*;

    pub async fn append(p: Rc<LocalPartition>, batch: Bytes) -> AppendOutcome {
        let result = p.log.append(BytesMut::from(&batch[..]), 0, now_ms()).await;
        match result {
            Ok(info) => {
                p.data_ready.notify_all();
                AppendOutcome {
                    error_code: ec::NONE,
                    error_message: None,
                    base_offset: info.base_offset,
                    log_append_time_ms: info.log_append_time_ms,
                    log_start_offset: info.log_start_offset,
                }
            }
            Err(e) => AppendOutcome {
                error_code: e.kafka_error_code(),
                error_message: Some(e.to_string()),
                base_offset: -1,
                log_append_time_ms: -1,
                log_start_offset: p.log.log_start_offset(),
            },
        }
    }

    /// Reads whole batches from `offset` below the high watermark.
    pub async fn read(p: Rc<LocalPartition>, offset: i64, max_bytes: u32, min_one_batch: bool) -> ReadOutcome {
        let hw = p.log.high_watermark();
        let log_start = p.log.log_start_offset();
        let mut out = ReadOutcome {
            error_code: ec::NONE,
            high_watermark: hw,
            log_start_offset: log_start,
            records: None,
        };
        if offset == hw {
            out.records = Some(Bytes::new());
            return out;
        }
        if offset < log_start || offset > hw {
            out.error_code = ec::OFFSET_OUT_OF_RANGE;
            return out;
        }
        match p.log.read(offset, max_bytes, hw, min_one_batch).await {
            Ok(result) => {
                let mut buf = BytesMut::with_capacity(result.bytes);
                for slice in &result.slices {
                    match slice.read().await {
                        Ok(b) => buf.extend_from_slice(&b),
                        Err(e) => {
                            log::error!("read: {e}");
                            out.error_code = storage_error_code(&e);
                            return out;
                        }
                    }
                }
                out.records = Some(buf.freeze());
            }
            Err(e) => out.error_code = storage_error_code(&e),
        }
        out
    }

    /// Waits until the partition has data at `offset` (or it changes state), bounded by `deadline`.
    pub async fn wait_for_data(p: Rc<LocalPartition>, offset: i64, deadline: Instant) {
        loop {
            if p.log.high_watermark() > offset || p.log.log_start_offset() > offset {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            let notified = p.data_ready.notified();
            futures_lite::future::or(notified, glommio::timer::sleep(deadline - now)).await;
        }
    }
}
