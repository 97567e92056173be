//! A shard: one pinned executor's share of the node. It owns a set of partitions (their logs live
//! only here), accepts its own connections, and runs work for other shards that arrives as
//! messages (`Job`s) over a bounded channel mesh. Nothing here is shared with other threads except
//! the immutable metadata snapshot and the node's atomics.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::channels::channel_mesh::Senders;
use uuid::Uuid;

use crate::context::NodeContext;
use crate::metadata::{MetadataSnapshot, TopicMeta};
use crate::partition::{ops, AppendOutcome, LocalPartition};
use crate::replica::wire::Frame;
use crate::replica::{AcksAll, Links, PartitionReplica};
use shoal_protocol::errors as ec;
use shoal_protocol::now_ms;
use shoal_storage::PartitionLog;
use shoal_sync::FifoLock;
use shoal_sync::{oneshot, Canceled, Notify, OneshotSender};

/// A result crossing shards.
pub type ReplyValue = Box<dyn Any + Send>;

/// Work sent to another shard: runs there with that shard's state and yields the reply.
pub type Job = Box<dyn FnOnce(Rc<Shard>) -> Pin<Box<dyn Future<Output = ReplyValue>>> + Send>;

/// What travels on the shard mesh. Replies come back as messages and complete a oneshot on the
/// origin shard, so no task waker is ever woken or dropped on a foreign thread (glommio's
/// foreign-waker path races with task destruction).
pub enum ShardMessage {
    Job {
        origin: usize,
        id: u64,
        run: Job,
    },
    Reply {
        id: u64,
        value: ReplyValue,
    },
    /// A replication frame from node `from` for a replica this shard holds (fire and forget:
    /// frames of one channel arrive in order).
    Replica {
        from: i32,
        frame: Frame,
    },
}

/// Removes a pending reply slot when its waiter goes away.
struct PendingGuard<'a> {
    shard: &'a Shard,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.shard.pending.borrow_mut().remove(&self.id);
    }
}

/// A partition's place on its shard, created synchronously when the first request for it arrives.
/// `gate` orders appends by arrival, including those that arrive while the log is still opening.
struct PartitionSlot {
    topic_id: Uuid,
    gate: FifoLock,
    open: RefCell<Option<Rc<LocalPartition>>>,
}

pub struct Shard {
    pub id: usize,
    pub ctx: Arc<NodeContext>,
    snapshot: RefCell<Arc<MetadataSnapshot>>,
    partitions: RefCell<HashMap<String, HashMap<i32, Rc<PartitionSlot>>>>,
    /// Keeps jobs sent to each peer in the order they were sent.
    send_locks: Vec<shoal_sync::FifoLock>,
    peers: RefCell<Option<Rc<Senders<ShardMessage>>>>,
    pending: RefCell<HashMap<u64, OneshotSender<ReplyValue>>>,
    next_reply_id: Cell<u64>,
    /// The metadata version whose topic configs the open logs have.
    configs_version: Cell<u64>,
    pub metrics: crate::metrics::ShardMetrics,
    /// This shard's outbound replication channels.
    pub links: Rc<Links>,
    /// Set by `close_all`: roles stay idle from then on.
    closed: Cell<bool>,
}

fn bump(counter: &Cell<u64>) {
    counter.set(counter.get() + 1);
}

/// The local shard of this node's replica of `partition`, leader or not.
fn replica_shard(
    meta: &MetadataSnapshot,
    t: &TopicMeta,
    partition: i32,
    nr_shards: usize,
) -> Option<usize> {
    let p = t.parts.get(usize::try_from(partition).ok()?)?;
    if !p.replicas.contains(&meta.node_id) {
        return None;
    }
    p.shard.map(|s| s as usize % nr_shards)
}

/// The local shard of `partition` when this node leads it.
fn local_shard(
    meta: &MetadataSnapshot,
    t: &TopicMeta,
    partition: i32,
    nr_shards: usize,
) -> Result<usize, i16> {
    let p = usize::try_from(partition)
        .ok()
        .and_then(|i| t.parts.get(i))
        .ok_or(ec::UNKNOWN_TOPIC_OR_PARTITION)?;
    if p.leader < 0 {
        return Err(ec::LEADER_NOT_AVAILABLE);
    }
    if p.leader != meta.node_id {
        return Err(ec::NOT_LEADER_OR_FOLLOWER);
    }
    match p.shard {
        Some(s) => Ok(s as usize % nr_shards),
        // Placement is published with the image, so this is a moment at most.
        None => Err(ec::LEADER_NOT_AVAILABLE),
    }
}

impl Shard {
    pub fn new(id: usize, ctx: Arc<NodeContext>) -> Rc<Shard> {
        let snapshot = ctx.metadata.snapshot();
        let send_locks = (0..ctx.nr_shards)
            .map(|_| shoal_sync::FifoLock::new())
            .collect();
        Rc::new(Shard {
            id,
            links: Links::new(ctx.clone(), id),
            closed: Cell::new(false),
            ctx,
            snapshot: RefCell::new(snapshot),
            partitions: RefCell::new(HashMap::new()),
            configs_version: Cell::new(0),
            metrics: Default::default(),
            send_locks,
            peers: RefCell::new(None),
            pending: RefCell::new(HashMap::new()),
            next_reply_id: Cell::new(0),
        })
    }

    pub fn set_peers(&self, senders: Senders<ShardMessage>) {
        *self.peers.borrow_mut() = Some(Rc::new(senders));
    }

    /// Handles a message from another shard (called by the mesh receive loops).
    pub fn handle_message(self: &Rc<Self>, message: ShardMessage) {
        match message {
            ShardMessage::Job { origin, id, run } => {
                let shard = self.clone();
                glommio::spawn_local(async move {
                    let value = run(shard.clone()).await;
                    let peers = shard.peers.borrow().clone();
                    if let Some(peers) = peers {
                        let _ = peers
                            .send_to(origin, ShardMessage::Reply { id, value })
                            .await;
                    }
                })
                .detach();
            }
            ShardMessage::Reply { id, value } => {
                let waiter = self.pending.borrow_mut().remove(&id);
                if let Some(tx) = waiter {
                    tx.send(value);
                }
            }
            ShardMessage::Replica { from, frame } => self.on_replica_frame(from, frame),
        }
    }

    /// The current metadata; refreshed from the node only when its version moved, and then
    /// the roles of the open replicas follow it before anyone reads it.
    pub fn metadata(&self) -> Arc<MetadataSnapshot> {
        let version = self.ctx.metadata.version();
        if self.snapshot.borrow().version != version {
            let next = self.ctx.metadata.snapshot();
            *self.snapshot.borrow_mut() = next.clone();
            self.reconcile_roles(&next);
        }
        self.snapshot.borrow().clone()
    }

    /// Sends a replication frame to the shard holding its replica (or handles it here).
    pub async fn route_replica_frame(self: &Rc<Self>, from: i32, frame: Frame) {
        let meta = self.metadata();
        let Some(t) = meta.topic_by_id(&frame.topic_id) else {
            return;
        };
        let Some(owner) = replica_shard(&meta, t, frame.partition, self.ctx.nr_shards) else {
            return;
        };
        if owner == self.id {
            bump(&self.metrics.replica_frames_direct);
            self.on_replica_frame(from, frame);
            return;
        }
        bump(&self.metrics.replica_frames_forwarded);
        let peers = self.peers.borrow().clone();
        if let Some(peers) = peers {
            let _ = peers
                .send_to(owner, ShardMessage::Replica { from, frame })
                .await;
        }
    }

    /// A replication frame for one of this shard's replicas.
    fn on_replica_frame(&self, from: i32, frame: Frame) {
        self.links
            .learn(frame.topic_id, frame.partition, from, frame.from_shard);
        let meta = self.metadata();
        let Some(t) = meta.topic_by_id(&frame.topic_id) else {
            return;
        };
        let open = self
            .partitions
            .borrow()
            .get(&t.name)
            .and_then(|slots| slots.get(&frame.partition))
            .filter(|slot| slot.topic_id == frame.topic_id)
            .and_then(|slot| slot.open.borrow().clone());
        if let Some(p) = open {
            p.replica.on_frame(from, frame.body);
        }
    }

    /// Makes every open replica's role what `meta` says: leader, follower, or idle.
    fn reconcile_roles(&self, meta: &MetadataSnapshot) {
        if self.closed.get() {
            return;
        }
        let open: Vec<(i32, Rc<LocalPartition>)> = self
            .partitions
            .borrow()
            .values()
            .flat_map(|slots| {
                slots
                    .iter()
                    .filter_map(|(&i, s)| s.open.borrow().clone().map(|p| (i, p)))
            })
            .collect();
        for (index, p) in open {
            self.reconcile_role(meta, index, &p);
        }
    }

    fn reconcile_role(&self, meta: &MetadataSnapshot, index: i32, p: &LocalPartition) {
        if self.closed.get() {
            return;
        }
        let r = &p.replica;
        let me = meta.node_id;
        let topic = meta.topic_by_id(&p.topic_id);
        let state = topic
            .and_then(|t| t.parts.get(usize::try_from(index).ok()?))
            .filter(|s| s.replicas.contains(&me));
        let Some(state) = state.filter(|s| s.leader >= 0) else {
            // No longer a replica, or no leader: serve nothing.
            if r.is_active() {
                r.become_idle();
            }
            return;
        };
        if state.leader == me {
            match r.leading() {
                Some((epoch, pe)) if epoch == state.leader_epoch => {
                    if pe < state.partition_epoch {
                        r.on_partition_change(&state.isr, state.partition_epoch);
                    }
                }
                _ => {
                    let t = topic.expect("found above");
                    let cfg = crate::replica::replication_config(
                        self.ctx.config.replica_lag_time_max_ms,
                        crate::config::min_insync_replicas(
                            &self.ctx.config.topic_defaults,
                            &t.configs,
                        ),
                    );
                    r.become_leader(
                        state.leader_epoch,
                        state.partition_epoch,
                        &state.replicas,
                        &state.isr,
                        cfg,
                    );
                }
            }
        } else if r.following() != Some((state.leader, state.leader_epoch)) {
            r.become_follower(state.leader, state.leader_epoch);
        }
    }

    /// Opens this shard's replicas that are not open yet (their roles start on open).
    pub async fn open_replicas(&self) {
        let meta = self.metadata();
        for t in meta.topics.values() {
            for p in 0..t.partitions() {
                if replica_shard(&meta, t, p, self.ctx.nr_shards) != Some(self.id) {
                    continue;
                }
                if let Err(code) = self.replica_partition(&t.name, p).await {
                    log::error!(
                        "shard {}: replica {}-{p} unavailable (error {code})",
                        self.id,
                        t.name
                    );
                }
            }
        }
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
        let id = self.next_reply_id.get();
        self.next_reply_id.set(id + 1);
        let (tx, rx) = oneshot();
        self.pending.borrow_mut().insert(id, tx);
        let _pending = PendingGuard { shard: self, id };
        let run: Job =
            Box::new(move |shard| Box::pin(async move { Box::new(f(shard).await) as ReplyValue }));
        {
            let _in_order = self.send_locks[target].lock().await.map_err(|_| Canceled)?;
            let message = ShardMessage::Job {
                origin: self.id,
                id,
                run,
            };
            peers.send_to(target, message).await.map_err(|_| Canceled)?;
        }
        let value = rx.await?;
        Ok(*value
            .downcast::<R>()
            .expect("a reply has the type its job produced"))
    }

    /// Runs `f` with the partition on its owning shard; errors are Kafka error codes.
    pub async fn on_partition<R, F, Fut>(
        self: &Rc<Self>,
        topic: &str,
        partition: i32,
        f: F,
    ) -> Result<R, i16>
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

    /// The local shard owning a partition this node leads; NOT_LEADER_OR_FOLLOWER when another
    /// node leads it, LEADER_NOT_AVAILABLE when none does.
    pub fn owner_of(&self, topic: &str, partition: i32) -> Result<usize, i16> {
        let meta = self.metadata();
        let t = meta.topic(topic).ok_or(ec::UNKNOWN_TOPIC_OR_PARTITION)?;
        local_shard(&meta, t, partition, self.ctx.nr_shards)
    }

    /// The slot of a partition this shard owns (created on first use, synchronously); only
    /// while this node leads it unless `any_role`.
    fn slot(
        &self,
        topic: &str,
        partition: i32,
        any_role: bool,
    ) -> Result<(Rc<PartitionSlot>, Arc<TopicMeta>), i16> {
        let meta = self.metadata();
        let t = meta
            .topic(topic)
            .ok_or(ec::UNKNOWN_TOPIC_OR_PARTITION)?
            .clone();
        let owner = if any_role {
            replica_shard(&meta, &t, partition, self.ctx.nr_shards)
                .ok_or(ec::NOT_LEADER_OR_FOLLOWER)?
        } else {
            local_shard(&meta, &t, partition, self.ctx.nr_shards)?
        };
        if owner != self.id {
            return Err(ec::NOT_LEADER_OR_FOLLOWER);
        }
        let mut map = self.partitions.borrow_mut();
        let slots = map.entry(topic.to_string()).or_default();
        match slots.get(&partition) {
            Some(slot) if slot.topic_id == t.id => Ok((slot.clone(), t)),
            _ => {
                let slot = Rc::new(PartitionSlot {
                    topic_id: t.id,
                    gate: FifoLock::new(),
                    open: RefCell::new(None),
                });
                slots.insert(partition, slot.clone());
                Ok((slot, t))
            }
        }
    }

    /// KIP-320: a client's current leader epoch (-1: unchecked) against this node's metadata.
    /// Older: FENCED_LEADER_EPOCH (the client is behind); newer: UNKNOWN_LEADER_EPOCH (this
    /// node is behind); both make the client refresh its metadata and retry.
    pub fn check_leader_epoch(&self, topic: &str, partition: i32, client: i32) -> Result<(), i16> {
        if client < 0 {
            return Ok(());
        }
        let meta = self.metadata();
        let current = meta
            .topic(topic)
            .and_then(|t| t.parts.get(usize::try_from(partition).ok()?))
            .map(|p| p.leader_epoch)
            .ok_or(ec::UNKNOWN_TOPIC_OR_PARTITION)?;
        match client.cmp(&current) {
            std::cmp::Ordering::Equal => Ok(()),
            std::cmp::Ordering::Less => Err(ec::FENCED_LEADER_EPOCH),
            std::cmp::Ordering::Greater => Err(ec::UNKNOWN_LEADER_EPOCH),
        }
    }

    /// The local partition this node leads, opening (and recovering) its log on first use.
    pub async fn partition(&self, topic: &str, partition: i32) -> Result<Rc<LocalPartition>, i16> {
        self.open_partition(topic, partition, false).await
    }

    /// The local replica, leader or follower, opening its log on first use.
    pub async fn replica_partition(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Rc<LocalPartition>, i16> {
        self.open_partition(topic, partition, true).await
    }

    async fn open_partition(
        &self,
        topic: &str,
        partition: i32,
        any_role: bool,
    ) -> Result<Rc<LocalPartition>, i16> {
        let (slot, t) = self.slot(topic, partition, any_role)?;
        let existing = slot.open.borrow().clone();
        if let Some(p) = existing {
            return Ok(p);
        }
        let _gate = slot
            .gate
            .lock()
            .await
            .map_err(|_| ec::NOT_LEADER_OR_FOLLOWER)?;
        self.open_slot(&slot, &t, topic, partition).await
    }

    /// Appends in arrival order (the gate is held until the log has queued this append), then
    /// for `acks=all` waits until the ISR has it, at most `timeout`.
    pub async fn append_ordered(
        &self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        acks: i16,
        timeout: Duration,
    ) -> AppendOutcome {
        let deadline = Instant::now() + timeout;
        let (slot, t) = match self.slot(topic, partition, false) {
            Ok(x) => x,
            Err(code) => return AppendOutcome::error(code, "partition unavailable"),
        };
        let Ok(gate) = slot.gate.lock().await else {
            return AppendOutcome::error(ec::NOT_LEADER_OR_FOLLOWER, "partition closed");
        };
        let existing = slot.open.borrow().clone();
        let p = match existing {
            Some(p) => p,
            None => match self.open_slot(&slot, &t, topic, partition).await {
                Ok(p) => p,
                Err(code) => return AppendOutcome::error(code, "partition unavailable"),
            },
        };
        let leader_epoch = t.parts[partition as usize].leader_epoch;
        if p.replica.leading().map(|(e, _)| e) != Some(leader_epoch) {
            return AppendOutcome::error(ec::NOT_LEADER_OR_FOLLOWER, "leadership is moving");
        }
        if acks == -1 && !p.replica.can_append_acks_all() {
            return AppendOutcome::error(
                ec::NOT_ENOUGH_REPLICAS,
                "fewer in-sync replicas than min.insync.replicas",
            );
        }
        // PartitionLog::append takes its place in the log's FIFO on its first poll.
        let mut append = Box::pin(ops::append(p.clone(), batch, leader_epoch));
        let first = futures_lite::future::poll_once(&mut append).await;
        drop(gate);
        let outcome = match first {
            Some(outcome) => outcome,
            None => append.await,
        };
        if acks != -1 || outcome.error_code != ec::NONE {
            return outcome;
        }
        let durable = Instant::now();
        let waited = p
            .replica
            .wait_acks_all(outcome.last_offset + 1, leader_epoch, deadline)
            .await;
        self.metrics.replication_wait.record_since(durable);
        let (code, message) = match waited {
            AcksAll::Done => return outcome,
            AcksAll::TooFewReplicasAfterAppend => (
                ec::NOT_ENOUGH_REPLICAS_AFTER_APPEND,
                "the ISR shrank below min.insync.replicas",
            ),
            AcksAll::NotLeader => (ec::NOT_LEADER_OR_FOLLOWER, "leadership moved"),
            AcksAll::TimedOut => (ec::REQUEST_TIMED_OUT, "not replicated to the ISR in time"),
        };
        AppendOutcome::error(code, message)
    }

    async fn open_slot(
        &self,
        slot: &PartitionSlot,
        t: &TopicMeta,
        topic: &str,
        partition: i32,
    ) -> Result<Rc<LocalPartition>, i16> {
        let existing = slot.open.borrow().clone();
        if let Some(p) = existing {
            return Ok(p);
        }
        let log_config =
            crate::config::topic_log_config(&self.ctx.config.topic_defaults, &t.configs).map_err(
                |e| {
                    log::error!("topic {topic}: bad config: {e}");
                    ec::INVALID_CONFIG
                },
            )?;
        let dir = self.ctx.partition_dir(topic, partition);
        let log = PartitionLog::open(dir.clone(), log_config)
            .await
            .map_err(|e| {
                log::error!("shard {}: cannot open {}: {e}", self.id, dir.display());
                ec::KAFKA_STORAGE_ERROR
            })?;
        log.set_timings(self.metrics.log.clone());
        let data_ready = Rc::new(Notify::default());
        let replica = PartitionReplica::new(
            t.id,
            partition,
            log.clone(),
            data_ready.clone(),
            self.links.clone(),
            self.ctx.clone(),
        );
        let p = Rc::new(LocalPartition {
            topic_id: t.id,
            log,
            data_ready,
            replica: Rc::new(replica),
        });
        *slot.open.borrow_mut() = Some(p.clone());
        let meta = self.metadata();
        self.reconcile_role(&meta, partition, &p);
        Ok(p)
    }

    /// Closes and deletes this shard's partitions of a deleted topic.
    pub async fn drop_topic(&self, topic: &str, partitions: i32, topic_id: Uuid) {
        let removed = self
            .partitions
            .borrow_mut()
            .remove(topic)
            .unwrap_or_default();
        for (p, slot) in removed {
            if slot.topic_id != topic_id {
                continue;
            }
            slot.gate.close();
            let Some(lp) = slot.open.borrow_mut().take() else {
                continue;
            };
            lp.replica.become_idle();
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
                let dir = self.ctx.partition_dir(topic, p);
                match std::fs::remove_dir_all(&dir) {
                    // An owner shard may have deleted it a moment ago.
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        log::error!("deleting {}: {e}", dir.display());
                    }
                    _ => {}
                }
            }
        }
    }

    /// Closes and deletes partitions of topics the metadata no longer has (deleted through
    /// another node, or while this one was down).
    pub async fn drop_removed_topics(&self) {
        let meta = self.metadata();
        let removed: Vec<(String, i32, Uuid)> = self
            .partitions
            .borrow()
            .iter()
            .filter_map(|(name, slots)| {
                let (_, slot) = slots.iter().next()?;
                let gone = meta.topic(name).is_none_or(|t| t.id != slot.topic_id);
                let partitions = slots.keys().max().map_or(0, |m| m + 1);
                gone.then(|| (name.clone(), partitions, slot.topic_id))
            })
            .collect();
        for (name, partitions, id) in removed {
            if meta.topic(&name).is_none() {
                log::info!(
                    "shard {}: topic '{name}' was deleted; removing its local partitions",
                    self.id
                );
                self.drop_topic(&name, partitions, id).await;
            }
        }
    }

    pub fn local_partitions(&self) -> Vec<Rc<LocalPartition>> {
        self.partitions
            .borrow()
            .values()
            .flat_map(|m| m.values().filter_map(|s| s.open.borrow().clone()))
            .collect()
    }

    /// Gives this shard's open logs the topic configs committed since the last call.
    pub fn apply_topic_configs(&self) {
        let meta = self.metadata();
        if self.configs_version.replace(meta.version) == meta.version {
            return;
        }
        let defaults = &self.ctx.config.topic_defaults;
        for (topic, slots) in self.partitions.borrow().iter() {
            let Some(t) = meta.topic(topic) else {
                continue;
            };
            let config = match crate::config::topic_log_config(defaults, &t.configs) {
                Ok(c) => c,
                Err(e) => {
                    log::error!("topic {topic}: bad config, keeping the old one: {e}");
                    continue;
                }
            };
            let open = slots.values().filter(|s| s.topic_id == t.id);
            for p in open.filter_map(|s| s.open.borrow().clone()) {
                if p.log.config() == config {
                    continue;
                }
                match p.log.set_config(config) {
                    Ok(()) => log::info!("{}: topic config changed", p.log.dir().display()),
                    Err(e) => log::error!("topic {topic}: config refused by the log: {e}"),
                }
            }
        }
    }

    /// Periodic work: topic config changes, segment.ms rolls, flush.ms flushes, retention.
    pub async fn tick(&self, retention_due: bool) {
        self.drop_removed_topics().await;
        self.apply_topic_configs();
        let now = now_ms();
        for p in self.local_partitions() {
            let hw_before = p.high_watermark();
            if let Err(e) = p.log.tick(now).await {
                log::error!("shard {}: tick: {e}", self.id);
            }
            if retention_due {
                if let Err(e) = p.log.enforce_retention(now).await {
                    log::error!("shard {}: retention: {e}", self.id);
                }
            }
            // Interval-flushed logs move their watermark without an append completing.
            if p.high_watermark() != hw_before {
                p.data_ready.notify_all();
            }
        }
    }

    /// One cleaning pass over each compacted local log that needs one, below the replicated
    /// high watermark (each replica cleans its own log; offsets and latest values never change).
    pub async fn clean_logs(&self, throttle: &shoal_storage::IoThrottle) {
        for p in self.local_partitions() {
            if !p.log.config().cleanup_compact {
                continue;
            }
            match p.log.clean(now_ms(), p.high_watermark(), throttle).await {
                Ok(Some(report)) => log::info!("{}: cleaned: {report:?}", p.log.dir().display()),
                Ok(None) => {}
                Err(e) => log::error!("{}: cleaner: {e}", p.log.dir().display()),
            }
        }
    }

    pub async fn close_all(&self) {
        self.closed.set(true);
        for p in self.local_partitions() {
            p.replica.become_idle();
            if let Err(e) = p.log.close().await {
                log::error!("shard {}: close: {e}", self.id);
            }
        }
    }
}
