//! The metadata driver: one dedicated OS thread per node that owns the `MetadataNode`, its
//! `FileLogStore` (blocking fsync) and the cluster transport (`net.rs`, std::net sockets).
//!
//! Why a thread and not a glommio shard: metadata rates are low (a few entries per second plus
//! heartbeats), but every Raft ready is fsynced before its messages leave. A blocking fsync on a
//! data shard would stall that shard's produce and fetch traffic for the sync's duration; on this
//! thread it stalls only metadata. The shards talk to it over a bounded queue and poll their
//! answer slot every `REPLY_POLL_MS`, so no waker ever crosses threads.
//!
//! Every turn: take inputs (shard commands, peer frames), tick, persist readies, send messages,
//! then — if anything was applied or the controller or fencing changed — update the local
//! placement (persisted) and publish a new snapshot, and only then deliver answers, so a shard
//! that gets "created" already sees the topic.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam::channel::RecvTimeoutError;
use shoal_cluster::metadata::{
    BrokerState, ControllerConfig, ControllerError, ControllerReply, ControllerRequest, Endpoints,
    MetadataImage,
};
use shoal_cluster::raft::{FileLogStore, LogStore};
use shoal_cluster::{ClusterMessage, MetadataNode, NodeConfig, RequestId};

use super::net::{Net, NetLimits};
use super::placement::Placement;
use super::{
    cluster_id_from, random_bytes, BrokerMeta, Command, MetadataSnapshot, MetadataStore,
    PartitionMeta, Published, TopicMeta,
};

/// How often the driver ticks the node when nothing arrives.
pub const DRIVER_TICK_MS: u64 = 10;
/// Inputs taken per turn before ticking and persisting again.
pub const INPUTS_PER_TURN_MAX: usize = 256;
/// Shards waiting for a producer id while a new block is being allocated.
pub const PRODUCER_ID_WAITERS_MAX: usize = 4096;

#[derive(Debug, Clone)]
pub struct Peer {
    pub id: u64,
    /// The peer's `cluster_listen` address.
    pub cluster_addr: String,
}

#[derive(Debug, Clone)]
pub struct DriverConfig {
    pub node_id: i32,
    /// The metadata quorum; empty means a quorum of one (this node).
    pub voters: Vec<Peer>,
    pub cluster_listen: Option<String>,
    pub data_dir: PathBuf,
    pub nr_shards: usize,
    /// `host:port` advertised to Kafka clients.
    pub kafka_endpoint: String,
    pub rack: Option<String>,
    pub request_timeout_ms: u64,
    pub controller: ControllerConfig,
    pub queue_max: usize,
    pub send_queue_max: usize,
    pub frame_bytes_max: usize,
    /// Where accepted replication channels go, per shard.
    pub replica_handoff: super::net::ReplicaHandoff,
}

pub(crate) enum Input {
    Command(Command),
    Peer(u64, ClusterMessage),
}

enum Pending {
    Controller(std::sync::mpsc::SyncSender<Result<ControllerReply, ControllerError>>),
    ProducerBlock,
}

/// Opens the metadata log, starts the driver thread and the cluster transport, and returns the
/// shards' handle once the recovered image is published.
pub fn start(cfg: DriverConfig) -> Result<MetadataStore, String> {
    if cfg.node_id < 1 {
        return Err(format!(
            "node_id must be >= 1 (Raft ids start at 1), got {}",
            cfg.node_id
        ));
    }
    let node_id = cfg.node_id as u64;
    let voter_ids: Vec<u64> = if cfg.voters.is_empty() {
        vec![node_id]
    } else {
        cfg.voters.iter().map(|p| p.id).collect()
    };
    if !voter_ids.contains(&node_id) {
        return Err(format!(
            "node_id {node_id} is not in controller_quorum_voters (learners are not supported yet)"
        ));
    }
    if ![1, 3, 5].contains(&voter_ids.len()) {
        return Err(format!(
            "controller_quorum_voters must name 1, 3 or 5 voters, got {}",
            voter_ids.len()
        ));
    }
    let meta_dir = cfg.data_dir.join("meta");
    // `meta/`'s entry in DATA is durable only once DATA is synced (a power cut found it gone).
    std::fs::create_dir_all(&meta_dir)
        .and_then(|()| std::fs::File::open(&cfg.data_dir)?.sync_all())
        .map_err(|e| format!("{}: {e}", meta_dir.display()))?;
    if meta_dir.join("cluster.json").exists() && !meta_dir.join("raft.log").exists() {
        // Starting would silently forget every topic of the old single-node format.
        return Err(format!(
            "{} is metadata of a pre-Raft Shoal (single-node cluster.json) and cannot be migrated \
             yet; start on a fresh --data-dir",
            meta_dir.display()
        ));
    }
    let cluster_id = cluster_id(&meta_dir, &voter_ids)?;
    let (store, recovered) = FileLogStore::open(&meta_dir)
        .map_err(|e| format!("metadata log in {}: {e}", meta_dir.display()))?;
    let placement = Placement::open(&meta_dir, cfg.nr_shards)
        .map_err(|e| format!("placement in {}: {e}", meta_dir.display()))?;
    let mut ncfg = NodeConfig::new(node_id, voter_ids, Vec::new(), super::new_uuid());
    ncfg.endpoints = Endpoints {
        kafka: cfg.kafka_endpoint.clone(),
        cluster: cfg.cluster_listen.clone().unwrap_or_default(),
    };
    ncfg.rack = cfg.rack.clone();
    ncfg.request_timeout_ms = cfg.request_timeout_ms;
    ncfg.controller = cfg.controller.clone();
    ncfg.election_seed = u64::from_le_bytes(random_bytes()[..8].try_into().expect("8 bytes"));
    let clock = Instant::now();
    let node = MetadataNode::new(ncfg, recovered, 0).map_err(|e| format!("metadata node: {e}"))?;

    let (tx, rx) = crossbeam::channel::bounded::<Input>(cfg.queue_max);
    let peers: Vec<(u64, String)> = cfg
        .voters
        .iter()
        .map(|p| (p.id, p.cluster_addr.clone()))
        .collect();
    let net = Net::start(
        node_id,
        cfg.cluster_listen.as_deref(),
        &peers,
        tx.clone(),
        NetLimits {
            send_queue_max: cfg.send_queue_max,
            frame_bytes_max: cfg.frame_bytes_max,
        },
        cfg.replica_handoff.clone(),
    )?;
    let published = Arc::new(Published {
        version: AtomicU64::new(0),
        snapshot: Mutex::new(Arc::new(MetadataSnapshot::default())),
    });
    let mut driver = Driver {
        node,
        store,
        placement,
        net,
        published: published.clone(),
        cluster_id,
        node_id: cfg.node_id,
        clock,
        pending: HashMap::new(),
        pid_block: (0, 0),
        pid_waiters: VecDeque::new(),
        pid_request: None,
        last_published: None,
    };
    driver.publish();
    std::thread::Builder::new()
        .name("shoal-metadata".into())
        .spawn(move || driver.run(rx))
        .map_err(|e| format!("spawn metadata driver: {e}"))?;
    Ok(MetadataStore {
        published,
        commands: tx,
        reply_timeout: Duration::from_millis(cfg.request_timeout_ms + 1000),
    })
}

/// A single node keeps a random cluster id in `meta/cluster.id`; a multi-node cluster derives
/// it from its voter ids, so every node reports the same one without a formatting step.
fn cluster_id(meta_dir: &std::path::Path, voters: &[u64]) -> Result<String, String> {
    if voters.len() > 1 {
        let mut sorted = voters.to_vec();
        sorted.sort_unstable();
        let mut h: u128 = 0x6c62272e07bb014262b821756295c58d; // FNV-1a 128 offset basis
        for b in sorted.iter().flat_map(|v| v.to_le_bytes()) {
            h ^= b as u128;
            h = h.wrapping_mul(0x0000000001000000000000000000013B);
        }
        return Ok(cluster_id_from(h.to_le_bytes()));
    }
    let path = meta_dir.join("cluster.id");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Ok(_) | Err(_) => {
            let id = cluster_id_from(random_bytes());
            let tmp = path.with_extension("tmp");
            let write = || -> std::io::Result<()> {
                use std::io::Write;
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(id.as_bytes())?;
                f.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                std::fs::File::open(meta_dir)?.sync_all()
            };
            write().map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(id)
        }
    }
}

struct Driver {
    node: MetadataNode,
    store: FileLogStore,
    placement: Placement,
    net: Net,
    published: Arc<Published>,
    cluster_id: String,
    node_id: i32,
    clock: Instant,
    pending: HashMap<RequestId, Pending>,
    /// `[next, end)` of this broker's committed producer id block.
    pid_block: (i64, i64),
    pid_waiters: VecDeque<std::sync::mpsc::SyncSender<Result<i64, ControllerError>>>,
    pid_request: Option<RequestId>,
    last_published: Option<(u64, Option<u64>, bool)>,
}

impl Driver {
    fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    fn run(mut self, rx: crossbeam::channel::Receiver<Input>) {
        loop {
            match rx.recv_timeout(Duration::from_millis(DRIVER_TICK_MS)) {
                Ok(input) => self.input(input),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            for _ in 0..INPUTS_PER_TURN_MAX {
                match rx.try_recv() {
                    Ok(input) => self.input(input),
                    Err(_) => break,
                }
            }
            self.turn();
        }
    }

    fn input(&mut self, input: Input) {
        match input {
            Input::Peer(from, msg) => self.node.receive(from, msg),
            Input::Command(Command::Controller { request, reply }) => {
                let id = self.node.client_request(request);
                self.pending.insert(id, Pending::Controller(reply));
            }
            Input::Command(Command::ControlledShutdown) => self.node.begin_controlled_shutdown(),
            Input::Command(Command::AsBroker { make, reply }) => match self.node.broker_epoch() {
                Some(broker_epoch) => {
                    let request = make(self.node_id, broker_epoch);
                    let id = self.node.client_request(request);
                    self.pending.insert(id, Pending::Controller(reply));
                }
                None => {
                    let _ = reply.try_send(Err(ControllerError::Timeout));
                }
            },
            Input::Command(Command::ProducerId { reply }) => {
                if self.pid_waiters.len() >= PRODUCER_ID_WAITERS_MAX {
                    let _ = reply.try_send(Err(ControllerError::Timeout));
                } else {
                    self.pid_waiters.push_back(reply);
                }
            }
        }
    }

    fn turn(&mut self) {
        let now = self.now_ms();
        self.node.tick(now);
        self.hand_out_producer_ids();
        loop {
            while let Some(ready) = self.node.poll_ready() {
                if let Err(e) = self.store.persist(&ready.persist) {
                    // The metadata log cannot be made durable: nothing safe is left to do.
                    log::error!("metadata log: {e}; exiting");
                    std::process::exit(74);
                }
                self.node.persisted(ready);
            }
            let out = self.node.take_output();
            for (to, msg) in &out.messages {
                self.net.send(*to, msg);
            }
            if !out.applied.is_empty() || self.publish_key() != self.last_published {
                self.publish();
            }
            let answered = !out.answers.is_empty();
            for (id, result) in out.answers {
                match self.pending.remove(&id) {
                    Some(Pending::Controller(tx)) => {
                        let _ = tx.try_send(result);
                    }
                    Some(Pending::ProducerBlock) => {
                        self.pid_request = None;
                        match result {
                            Ok(ControllerReply::ProducerIds { first, count }) => {
                                self.pid_block = (first, first + count);
                            }
                            Ok(other) => log::error!("producer id block: unexpected {other:?}"),
                            Err(e) => log::warn!("producer id block: {e}; retrying"),
                        }
                    }
                    None => {}
                }
            }
            if answered {
                self.hand_out_producer_ids();
            }
            if out.messages.is_empty() && !answered {
                break;
            }
        }
    }

    fn hand_out_producer_ids(&mut self) {
        while let Some(tx) = self.pid_waiters.front() {
            if self.pid_block.0 >= self.pid_block.1 {
                break;
            }
            let id = self.pid_block.0;
            // A shard that gave up waiting leaves the id for the next one.
            if tx.try_send(Ok(id)).is_ok() {
                self.pid_block.0 += 1;
            }
            self.pid_waiters.pop_front();
        }
        if !self.pid_waiters.is_empty() && self.pid_request.is_none() {
            if let Some(broker_epoch) = self.node.broker_epoch() {
                let id = self
                    .node
                    .client_request(ControllerRequest::AllocateProducerIds {
                        broker_id: self.node_id,
                        broker_epoch,
                    });
                self.pending.insert(id, Pending::ProducerBlock);
                self.pid_request = Some(id);
            }
        }
    }

    fn publish_key(&self) -> Option<(u64, Option<u64>, bool)> {
        Some((
            self.node.applied_index(),
            self.node.controller_id(),
            self.node.broker_fenced(),
        ))
    }

    fn publish(&mut self) {
        let image = self.node.image();
        if let Err(e) = self.placement.update(&image, self.node_id) {
            log::error!("persisting the local placement: {e}; exiting");
            std::process::exit(74);
        }
        let snapshot = build_snapshot(
            &image,
            self.node_id,
            self.node.controller_id(),
            self.node.broker_fenced(),
            &self.placement,
            &self.cluster_id,
        );
        self.published.publish(snapshot);
        self.last_published = self.publish_key();
    }
}

fn split_host_port(addr: &str) -> (String, i32) {
    match addr.rsplit_once(':') {
        Some((h, p)) => (
            h.trim_matches(['[', ']']).to_string(),
            p.parse().unwrap_or(-1),
        ),
        None => (addr.to_string(), -1),
    }
}

fn build_snapshot(
    image: &MetadataImage,
    node_id: i32,
    controller_id: Option<u64>,
    fenced: bool,
    placement: &Placement,
    cluster_id: &str,
) -> MetadataSnapshot {
    let brokers: Vec<BrokerMeta> = image
        .brokers()
        .map(|b| {
            let (host, port) = split_host_port(&b.endpoints.kafka);
            BrokerMeta {
                id: b.broker_id,
                host,
                port,
                cluster_addr: b.endpoints.cluster.clone(),
                rack: b.rack.clone(),
                fenced: b.state != BrokerState::Unfenced,
            }
        })
        .collect();
    let mut topics = std::collections::BTreeMap::new();
    let mut by_id = HashMap::new();
    for t in image.topics() {
        let parts = t
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| PartitionMeta {
                leader: p.leader,
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
                replicas: p.replicas.clone(),
                isr: p.isr.clone(),
                offline: p
                    .replicas
                    .iter()
                    .copied()
                    .filter(|r| !image.is_unfenced(*r))
                    .collect(),
                shard: placement.shard(&t.id, i),
            })
            .collect();
        by_id.insert(t.id, t.name.clone());
        topics.insert(
            t.name.clone(),
            Arc::new(TopicMeta {
                name: t.name.clone(),
                id: t.id,
                parts,
                configs: t.configs.clone(),
                internal: t.name.starts_with("__"),
            }),
        );
    }
    MetadataSnapshot {
        version: 0,
        cluster_id: cluster_id.to_string(),
        node_id,
        controller_id: controller_id.map_or(-1, |c| c as i32),
        fenced,
        brokers,
        topics,
        topic_names_by_id: by_id,
    }
}
