//! The shard-side driver of the group coordinators: I/O around the `Coordinator` state machine.
//!
//! The coordinator of group G is the shard owning partition `partition_for(G)` of
//! `__consumer_offsets` (created on first use). On that shard's first use of the partition its
//! records are read from the start and replayed before any request is served. Each loaded
//! partition (`Slot`) has:
//! - parked requests: a oneshot per `Ticket`, completed by the state machine's `Effects`;
//! - a writer task: queued `Write`s are encoded into one RecordBatch per round (bounded by
//!   `WRITE_BATCH_BYTES_MAX`), appended through `PartitionLog::append` (durable before it returns
//!   under the topic's sync-before-ack policy), then their completions run — a commit is
//!   acknowledged only after its records are durable;
//! - timers: one ticker per shard calls every coordinator's `tick(now_ms)` (sessions,
//!   rebalance timeouts, offset expiry).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::coordinator::{
    AfterWrite, Coordinator, CoordinatorConfig, Effects, Reply, Ticket, Write,
};
use super::records::{decode_batches, encode_batch, GroupRecord};
use super::{partition_for, OFFSETS_TOPIC};
use crate::config::NodeConfig;
use crate::errors::KafkaCode;
use crate::partition::{ops, LocalPartition, ReadMode, RecordData};
use crate::replica::AcksAll;
use crate::shard::Shard;
use shoal_protocol::errors as e;
use shoal_protocol::now_ms;
use shoal_sync::{oneshot, Notify, OneshotSender};

/// Records of one appended batch (several queued writes are merged up to this size).
const WRITE_BATCH_BYTES_MAX: usize = 512 * 1024;
/// How long an offset commit waits for the ISR before failing (the client retries).
const OFFSETS_COMMIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound of a record's framing (length, attributes, deltas, key/value lengths) in a batch.
const RECORD_OVERHEAD_BYTES: usize = 32;
/// Bytes read per step while loading a partition.
const LOAD_READ_BYTES_MAX: u32 = 1024 * 1024;
/// Segment size of `__consumer_offsets` (Kafka's `offsets.topic.segment.bytes`).
const OFFSETS_SEGMENT_BYTES: &str = "104857600";

pub fn coordinator_config(config: &NodeConfig) -> CoordinatorConfig {
    CoordinatorConfig {
        session_timeout_ms_min: config.group_min_session_timeout_ms,
        session_timeout_ms_max: config.group_max_session_timeout_ms,
        initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
        new_member_join_timeout_ms: 300_000,
        offsets_retention_ms: config.offsets_retention_minutes.saturating_mul(60_000),
        offsets_retention_check_interval_ms: config.offsets_retention_check_interval_ms,
        group_members_max: config.group_members_max,
        offset_metadata_bytes_max: config.offset_metadata_bytes_max,
    }
}

/// Per-shard registry of loaded coordinator partitions.
pub struct ShardGroups {
    slots: RefCell<HashMap<i32, Rc<Slot>>>,
    load_lock: glommio::sync::Semaphore,
    ticker_started: Cell<bool>,
}

impl Default for ShardGroups {
    fn default() -> Self {
        ShardGroups {
            slots: RefCell::new(HashMap::new()),
            load_lock: glommio::sync::Semaphore::new(1),
            ticker_started: Cell::new(false),
        }
    }
}

thread_local! {
    /// This shard's registry: one executor per thread, so a thread-local is shard-local state
    /// (the shard itself stays ignorant of groups, which would make a module cycle).
    static SHARD_GROUPS: Rc<ShardGroups> = Rc::new(ShardGroups::default());
}

impl ShardGroups {
    /// The registry of the shard this executor thread runs.
    pub fn local() -> Rc<ShardGroups> {
        SHARD_GROUPS.with(Rc::clone)
    }

    /// Loaded coordinator partitions of this shard.
    pub fn slots(&self) -> Vec<Rc<Slot>> {
        let mut v: Vec<Rc<Slot>> = self.slots.borrow().values().cloned().collect();
        v.sort_by_key(|s| s.partition);
        v
    }

    fn lookup(&self, partition: i32, log: &Rc<LocalPartition>) -> Option<Rc<Slot>> {
        self.slots
            .borrow()
            .get(&partition)
            .filter(|s| Rc::ptr_eq(&s.log, log))
            .filter(|s| log.replica.leading().map(|(e, _)| e) == Some(s.leader_epoch))
            .cloned()
    }

    /// The coordinator of `partition`, loading it from the log on first use.
    pub async fn slot(
        &self,
        shard: &Rc<Shard>,
        partition: i32,
        log: Rc<LocalPartition>,
    ) -> Result<Rc<Slot>, i16> {
        if let Some(s) = self.lookup(partition, &log) {
            return Ok(s);
        }
        let _guard = self
            .load_lock
            .acquire_permit(1)
            .await
            .map_err(|_| e::COORDINATOR_NOT_AVAILABLE)?;
        if let Some(s) = self.lookup(partition, &log) {
            return Ok(s);
        }
        // A coordinator loaded in an earlier leadership may miss what another node wrote since.
        let Some((leader_epoch, _)) = log.replica.leading() else {
            return Err(e::NOT_COORDINATOR);
        };
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let started = std::time::Instant::now();
        let mut coordinator =
            Coordinator::new(coordinator_config(&shard.ctx.config), seed, now_ms());
        let records = load(&log, &mut coordinator).await?;
        coordinator.finish_load(now_ms());
        let level = if records > 0 {
            log::Level::Info
        } else {
            log::Level::Debug
        };
        log::log!(
            level,
            "shard {}: loaded {} group(s) from {OFFSETS_TOPIC}-{partition} ({records} records) in {} ms",
            shard.id,
            coordinator.group_count(),
            started.elapsed().as_millis()
        );
        let slot = Rc::new(Slot {
            partition,
            coordinator: RefCell::new(coordinator),
            waiters: RefCell::new(HashMap::new()),
            next_ticket: Cell::new(1),
            log,
            writes: RefCell::new(VecDeque::new()),
            writes_ready: Notify::default(),
            writes_queued_max: shard.ctx.config.group_writes_queued_max,
            retired: Cell::new(false),
            leader_epoch,
        });
        if let Some(old) = self.slots.borrow_mut().insert(partition, slot.clone()) {
            old.retired.set(true);
            old.writes_ready.notify_all();
        }
        spawn_writer(shard.clone(), slot.clone());
        if !self.ticker_started.replace(true) {
            spawn_ticker(shard.clone());
        }
        Ok(slot)
    }
}

/// Replays every record of the partition into `coordinator`; returns the number of records.
async fn load(log: &Rc<LocalPartition>, coordinator: &mut Coordinator) -> Result<usize, i16> {
    let mut offset = log.log.log_start_offset();
    let end = log.log.high_watermark();
    let mut count = 0;
    while offset < end {
        let read = ops::read(
            log.clone(),
            offset,
            LOAD_READ_BYTES_MAX,
            true,
            ReadMode::Copy,
        )
        .await;
        if read.error_code != e::NONE {
            log::error!(
                "{OFFSETS_TOPIC}: reading at {offset}: error {}",
                read.error_code
            );
            return Err(e::COORDINATOR_NOT_AVAILABLE);
        }
        let RecordData::Copied(data) = read.records else {
            unreachable!("a copying read returns copied records");
        };
        let (records, next) = decode_batches(data).map_err(|err| {
            log::error!("{OFFSETS_TOPIC}: at {offset}: {err}");
            e::COORDINATOR_NOT_AVAILABLE
        })?;
        let Some(next) = next.filter(|n| *n > offset) else {
            log::error!("{OFFSETS_TOPIC}: no progress reading at {offset} (end {end})");
            return Err(e::COORDINATOR_NOT_AVAILABLE);
        };
        for r in records.into_iter().filter(|r| r.offset >= offset) {
            let Some(key) = r.key else {
                log::warn!(
                    "{OFFSETS_TOPIC}: record at {} has no key: skipped",
                    r.offset
                );
                continue;
            };
            match GroupRecord::decode(key, r.value) {
                Ok(record) => {
                    coordinator.replay(record);
                    count += 1;
                }
                Err(err) => log::warn!("{OFFSETS_TOPIC}: record at {}: {err}: skipped", r.offset),
            }
        }
        offset = next;
    }
    Ok(count)
}

/// One loaded `__consumer_offsets` partition: its coordinator and the I/O around it.
pub struct Slot {
    pub partition: i32,
    coordinator: RefCell<Coordinator>,
    waiters: RefCell<HashMap<Ticket, OneshotSender<Reply>>>,
    next_ticket: Cell<Ticket>,
    log: Rc<LocalPartition>,
    writes: RefCell<VecDeque<Write>>,
    writes_ready: Notify,
    writes_queued_max: usize,
    /// Replaced by a newer slot (the topic was re-created, or a new leadership): its writer
    /// stops.
    retired: Cell<bool>,
    /// The leadership it was loaded in.
    leader_epoch: i32,
}

impl Slot {
    /// Runs a call that does not park; its effects (e.g. rebalances it triggers) are applied.
    pub fn with<R>(&self, f: impl FnOnce(&mut Coordinator, i64) -> (R, Effects)) -> R {
        let (r, fx) = f(&mut self.coordinator.borrow_mut(), now_ms());
        self.apply(fx);
        r
    }

    /// Reads coordinator state.
    pub fn read<R>(&self, f: impl FnOnce(&Coordinator) -> R) -> R {
        f(&self.coordinator.borrow())
    }

    /// Runs a call that may park and waits for its reply.
    pub async fn call(
        &self,
        f: impl FnOnce(&mut Coordinator, i64, Ticket) -> Effects,
    ) -> Option<Reply> {
        let ticket = self.next_ticket.get();
        self.next_ticket.set(ticket + 1);
        let (tx, rx) = oneshot();
        self.waiters.borrow_mut().insert(ticket, tx);
        let fx = f(&mut self.coordinator.borrow_mut(), now_ms(), ticket);
        self.apply(fx);
        rx.await.ok()
    }

    fn apply(&self, fx: Effects) {
        for (ticket, reply) in fx.replies {
            match self.waiters.borrow_mut().remove(&ticket) {
                Some(tx) => tx.send(reply),
                None => log::warn!(
                    "{OFFSETS_TOPIC}-{}: reply for unknown ticket {ticket}",
                    self.partition
                ),
            }
        }
        for write in fx.writes {
            if self.writes.borrow().len() >= self.writes_queued_max {
                log::warn!(
                    "{OFFSETS_TOPIC}-{}: group_writes_queued_max ({}) reached: write refused",
                    self.partition,
                    self.writes_queued_max
                );
                if let Some(then) = write.then {
                    let fx = self.coordinator.borrow_mut().write_done(
                        now_ms(),
                        then,
                        e::COORDINATOR_NOT_AVAILABLE,
                    );
                    self.apply(fx);
                }
                continue;
            }
            self.writes.borrow_mut().push_back(write);
        }
        self.writes_ready.notify_all();
    }

    /// Appends queued writes in order, merged into batches, and completes them.
    async fn write_round(&self) {
        let mut records = Vec::new();
        let mut thens: Vec<AfterWrite> = Vec::new();
        let mut bytes = 0usize;
        loop {
            let encoded: Vec<(bytes::Bytes, Option<bytes::Bytes>)> =
                match self.writes.borrow().front() {
                    None => break,
                    Some(w) => w.records.iter().map(|r| r.encode()).collect(),
                };
            let size: usize = encoded
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, |v| v.len()) + RECORD_OVERHEAD_BYTES)
                .sum();
            if !records.is_empty() && bytes + size > WRITE_BATCH_BYTES_MAX {
                break;
            }
            let w = self.writes.borrow_mut().pop_front().expect("front exists");
            bytes += size;
            records.extend(encoded);
            thens.extend(w.then);
        }
        let code = if records.is_empty() {
            e::NONE
        } else {
            let batch = encode_batch(&records, now_ms());
            self.append_replicated(batch).await
        };
        for then in thens {
            let fx = self
                .coordinator
                .borrow_mut()
                .write_done(now_ms(), then, code);
            self.apply(fx);
        }
    }
}

impl Slot {
    /// Appends at the current leader epoch and waits until the ISR has it (a commit is
    /// acknowledged only once a failover cannot take it away).
    async fn append_replicated(&self, batch: bytes::BytesMut) -> i16 {
        let Some((epoch, _)) = self.log.replica.leading() else {
            return e::NOT_COORDINATOR;
        };
        let info = match self.log.log.append(batch, epoch, now_ms()).await {
            Ok(info) => info,
            Err(err) => {
                log::error!("{OFFSETS_TOPIC}-{}: append failed: {err}", self.partition);
                return err.kafka_code();
            }
        };
        self.log.data_ready.notify_all();
        let deadline = std::time::Instant::now() + OFFSETS_COMMIT_TIMEOUT;
        match self
            .log
            .replica
            .wait_acks_all(info.last_offset + 1, epoch, deadline)
            .await
        {
            AcksAll::Done => e::NONE,
            AcksAll::NotLeader => e::NOT_COORDINATOR,
            AcksAll::TooFewReplicasAfterAppend | AcksAll::TimedOut => e::REQUEST_TIMED_OUT,
        }
    }
}

fn spawn_writer(shard: Rc<Shard>, slot: Rc<Slot>) {
    glommio::spawn_local(async move {
        loop {
            if slot.writes.borrow().is_empty() {
                if slot.retired.get() || shard.ctx.shutdown.load(Ordering::SeqCst) {
                    return;
                }
                slot.writes_ready.notified().await;
                continue;
            }
            slot.write_round().await;
        }
    })
    .detach();
}

/// One ticker per shard drives the timers of all its coordinators.
fn spawn_ticker(shard: Rc<Shard>) {
    let interval = Duration::from_millis(shard.ctx.config.group_tick_interval_ms.max(1));
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(interval).await;
            let slots = ShardGroups::local().slots();
            if shard.ctx.shutdown.load(Ordering::SeqCst) {
                // Idle writers wake up and see the shutdown.
                slots.iter().for_each(|s| s.writes_ready.notify_all());
                return;
            }
            let now = now_ms();
            for slot in slots {
                let fx = slot.coordinator.borrow_mut().tick(now);
                slot.apply(fx);
            }
        }
    })
    .detach();
}

/// Partitions of `__consumer_offsets`: the existing topic's, else the configured count.
pub fn offsets_partitions(shard: &Shard) -> i32 {
    shard
        .metadata()
        .topic(OFFSETS_TOPIC)
        .map(|t| t.partitions())
        .unwrap_or(shard.ctx.config.offsets_topic_num_partitions)
}

/// Creates `__consumer_offsets` (internal) through the controller if it does not exist yet.
pub async fn ensure_offsets_topic(shard: &Shard) -> Result<(), i16> {
    if shard.metadata().topic(OFFSETS_TOPIC).is_some() {
        return Ok(());
    }
    let configs: BTreeMap<String, String> = [
        // Like Kafka's: compacted (latest commit per group and partition, tombstones delete),
        // so a coordinator's load after a restart reads a bounded log.
        ("cleanup.policy".to_string(), "compact".to_string()),
        (
            "segment.bytes".to_string(),
            OFFSETS_SEGMENT_BYTES.to_string(),
        ),
    ]
    .into();
    let partitions = shard.ctx.config.offsets_topic_num_partitions;
    // Kafka's offsets.topic.replication.factor, capped by the brokers there are.
    let brokers = shard.metadata().live_brokers().count().max(1);
    let replication_factor = shard
        .ctx
        .config
        .offsets_topic_replication_factor
        .clamp(1, brokers as i16);
    match shard
        .ctx
        .metadata
        .create_topic(OFFSETS_TOPIC, partitions, replication_factor, configs)
        .await
    {
        Ok(_) => {
            log::info!("created {OFFSETS_TOPIC} with {partitions} partitions, {replication_factor} replica(s) each");
            Ok(())
        }
        Err(shoal_cluster::metadata::ControllerError::TopicAlreadyExists) => {
            // Created concurrently (by another request or node): wait until it is visible here.
            let visible = shard
                .ctx
                .metadata
                .wait_for(shard.ctx.metadata.reply_timeout(), |m| {
                    m.topic(OFFSETS_TOPIC).is_some()
                })
                .await;
            if visible {
                Ok(())
            } else {
                Err(e::COORDINATOR_NOT_AVAILABLE)
            }
        }
        Err(err) => {
            log::warn!("creating {OFFSETS_TOPIC}: {err}");
            Err(e::COORDINATOR_NOT_AVAILABLE)
        }
    }
}

/// Runs `f` with the coordinator of `group_id`, on the shard owning its partition. Errors are
/// group error codes (COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR) clients retry on.
pub async fn on_coordinator<R, F, Fut>(shard: &Rc<Shard>, group_id: &str, f: F) -> Result<R, i16>
where
    R: Send + 'static,
    F: FnOnce(Rc<Slot>) -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
{
    ensure_offsets_topic(shard).await?;
    let partition = partition_for(group_id, offsets_partitions(shard));
    on_partition_slot(shard, partition, f).await
}

/// Runs `f` with the coordinator of one `__consumer_offsets` partition, on its owner shard.
pub async fn on_partition_slot<R, F, Fut>(shard: &Rc<Shard>, partition: i32, f: F) -> Result<R, i16>
where
    R: Send + 'static,
    F: FnOnce(Rc<Slot>) -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
{
    let result = shard
        .on_partition(OFFSETS_TOPIC, partition, move |shard, log| async move {
            match ShardGroups::local().slot(&shard, partition, log).await {
                Ok(slot) => Ok(f(slot).await),
                Err(code) => Err(code),
            }
        })
        .await;
    match result {
        Ok(inner) => inner,
        Err(shoal_protocol::errors::NOT_LEADER_OR_FOLLOWER) => Err(e::NOT_COORDINATOR),
        Err(_) => Err(e::COORDINATOR_NOT_AVAILABLE),
    }
}
