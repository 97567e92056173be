//! The active controller's logic: a plain state machine driven by requests and `now_ms`.
//!
//! The controller decides against its *pending* image: the committed image it was activated with
//! plus every batch it has proposed since. Each decision's records are applied to that pending
//! image at once (so a retried CreateTopics sees the topic even before commit), and the caller
//! proposes them to Raft and answers only once they commit. Heartbeat deadlines live in memory
//! only: a new controller grants every broker a full session from its activation.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::image::{
    validate_topic_name, ApplyError, BrokerState, MetadataImage, CONFIG_KEY_BYTES_MAX,
    CONFIG_VALUE_BYTES_MAX, PARTITIONS_PER_TOPIC_MAX, REPLICAS_MAX, TOPIC_CONFIGS_MAX,
};
use crate::placement;
use crate::record::{
    Endpoints, MetadataRecord, PartitionChangeRecord, PartitionRecord, PartitionState,
    RegisterBrokerRecord, TopicRecord, NO_LEADER,
};
use crate::{BrokerId, PartitionId};

/// Brokers heartbeat every 250 ms; the controller fences a broker after 1500 ms of silence.
/// Six missed heartbeats in a row are needed to fence, so a lost or late heartbeat (a busy
/// disk, a dropped packet) never fences a healthy broker, while a dead one is detected in
/// 1.25-1.5 s and its partitions fail over within the 3 s a client should see at most.
/// Heartbeats are soft state (not written to the metadata log), so they cost a message each.
/// Kafka's 2000/9000 trades speed for slower networks.
pub const BROKER_HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 250;
pub const BROKER_SESSION_TIMEOUT_MS_DEFAULT: u64 = 1500;
/// Producer ids are handed out to brokers in blocks of this size.
pub const PRODUCER_ID_BLOCK_LEN: i64 = 1000;
/// Most topics in one CreateTopics/DeleteTopics request.
pub const REQUEST_TOPICS_MAX: usize = 1000;
/// Most new partitions (over all topics) created by one request: bounds one Raft entry.
pub const REQUEST_PARTITIONS_MAX: usize = 20_000;
/// Most config operations in one request.
pub const REQUEST_CONFIG_OPS_MAX: usize = 256;
pub const ENDPOINT_BYTES_MAX: usize = 512;
pub const RACK_BYTES_MAX: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerConfig {
    pub broker_heartbeat_interval_ms: u64,
    pub broker_session_timeout_ms: u64,
    /// Kafka's `auto.leader.rebalance.enable`: leaderships go back to the first replica once it
    /// is in the ISR, checked every `leader_imbalance_check_interval_ms`.
    pub auto_leader_rebalance_enable: bool,
    pub leader_imbalance_check_interval_ms: u64,
}

/// Kafka checks every 300 s; a cluster of a few nodes on one LAN can afford to look more often.
pub const LEADER_IMBALANCE_CHECK_INTERVAL_MS_DEFAULT: u64 = 10_000;

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            broker_heartbeat_interval_ms: BROKER_HEARTBEAT_INTERVAL_MS_DEFAULT,
            broker_session_timeout_ms: BROKER_SESSION_TIMEOUT_MS_DEFAULT,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_ms: LEADER_IMBALANCE_CHECK_INTERVAL_MS_DEFAULT,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigOp {
    Set { key: String, value: String },
    Delete { key: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerRequest {
    RegisterBroker {
        broker_id: BrokerId,
        incarnation_id: Uuid,
        endpoints: Endpoints,
        rack: Option<String>,
    },
    BrokerHeartbeat {
        broker_id: BrokerId,
        broker_epoch: i64,
    },
    ControlledShutdown {
        broker_id: BrokerId,
        broker_epoch: i64,
    },
    CreateTopics {
        topics: Vec<NewTopic>,
    },
    DeleteTopics {
        names: Vec<String>,
    },
    CreatePartitions {
        name: String,
        count: i32,
    },
    AlterTopicConfigs {
        name: String,
        ops: Vec<ConfigOp>,
    },
    /// An ISR change from the partition leader (KIP-497).
    AlterPartition {
        broker_id: BrokerId,
        broker_epoch: i64,
        topic_id: Uuid,
        partition: PartitionId,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<BrokerId>,
    },
    AllocateProducerIds {
        broker_id: BrokerId,
        broker_epoch: i64,
    },
}

impl ControllerRequest {
    /// Broker lifecycle requests are soft state: answered at once when they change nothing.
    pub fn is_broker_lifecycle(&self) -> bool {
        matches!(self, ControllerRequest::BrokerHeartbeat { .. })
    }
}

pub type TopicResult = (String, Result<Uuid, ControllerError>);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerReply {
    RegisterBroker { broker_epoch: i64 },
    Heartbeat { fenced: bool, shutting_down: bool },
    ControlledShutdown { leaderships_remaining: usize },
    CreateTopics(Vec<TopicResult>),
    DeleteTopics(Vec<TopicResult>),
    CreatePartitions,
    AlterTopicConfigs,
    AlterPartition(PartitionState),
    ProducerIds { first: i64, count: i64 },
}

/// Typed controller errors; the broker maps them to Kafka error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ControllerError {
    #[error("this node is not the active controller (outcome unknown if it was proposed)")]
    NotController,
    #[error("request timed out (outcome unknown)")]
    Timeout,
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("invalid topic name")]
    InvalidTopicName,
    #[error("topic already exists")]
    TopicAlreadyExists,
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("invalid partition count: {0}")]
    InvalidPartitions(String),
    #[error("invalid replication factor {requested}: {available} live brokers")]
    InvalidReplicationFactor { requested: i32, available: usize },
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("unknown broker {0}")]
    UnknownBroker(BrokerId),
    #[error("stale broker epoch {got}, current {current}")]
    StaleBrokerEpoch { got: i64, current: i64 },
    #[error("broker {0} is not the partition leader")]
    NotLeader(BrokerId),
    #[error("leader epoch {got} does not match {current}")]
    FencedLeaderEpoch { got: i32, current: i32 },
    #[error("partition epoch {got} does not match {current}")]
    InvalidUpdateVersion { got: i32, current: i32 },
    #[error("invalid ISR: {0}")]
    InvalidIsr(String),
    #[error("broker {0} is not eligible for the ISR")]
    IneligibleReplica(BrokerId),
    #[error("internal error: {0}")]
    Internal(String),
}

/// A controller decision: the records to propose (possibly none) and the reply to send once
/// they commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub records: Vec<MetadataRecord>,
    pub reply: Result<ControllerReply, ControllerError>,
}

impl Decision {
    fn reply(reply: Result<ControllerReply, ControllerError>) -> Decision {
        Decision {
            records: Vec::new(),
            reply,
        }
    }
}

pub struct Controller {
    config: ControllerConfig,
    pending: MetadataImage,
    /// Heartbeat deadline of every broker that is not fenced.
    deadlines_ms: BTreeMap<BrokerId, u64>,
    /// When preferred leaders were last checked.
    rebalanced_ms: u64,
    /// Topic ids: `term` and `instance` make them unique across controllers, `id_counter` within.
    term: u64,
    instance: u8,
    id_counter: u64,
}

impl Controller {
    /// Activates a controller on the fully applied committed image of Raft term `term`.
    /// `instance` distinguishes controllers activated more than once in one term.
    pub fn new(
        config: ControllerConfig,
        committed: &MetadataImage,
        term: u64,
        instance: u8,
        now_ms: u64,
    ) -> Controller {
        assert!(config.broker_session_timeout_ms > config.broker_heartbeat_interval_ms);
        let deadlines_ms = committed
            .brokers()
            .filter(|b| b.state != BrokerState::Fenced)
            .map(|b| (b.broker_id, now_ms + config.broker_session_timeout_ms))
            .collect();
        Controller {
            config,
            pending: committed.clone(),
            deadlines_ms,
            rebalanced_ms: now_ms,
            term,
            instance,
            id_counter: 0,
        }
    }

    /// `broker_id` gets two heartbeat intervals instead of a full session before it is fenced
    /// (the Raft leader this controller replaced: it went silent for an election timeout).
    pub fn shorten_session(&mut self, broker_id: BrokerId, now_ms: u64) {
        let short = now_ms + 2 * self.config.broker_heartbeat_interval_ms;
        if let Some(deadline) = self.deadlines_ms.get_mut(&broker_id) {
            *deadline = (*deadline).min(short);
        }
    }

    /// The committed image plus everything this controller has proposed.
    pub fn pending_image(&self) -> &MetadataImage {
        &self.pending
    }

    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    /// Decides one request; the decision's records are already applied to the pending image.
    pub fn handle(&mut self, request: &ControllerRequest, now_ms: u64) -> Decision {
        let decision = match request {
            ControllerRequest::RegisterBroker {
                broker_id,
                incarnation_id,
                endpoints,
                rack,
            } => self.register(*broker_id, *incarnation_id, endpoints, rack, now_ms),
            ControllerRequest::BrokerHeartbeat {
                broker_id,
                broker_epoch,
            } => self.heartbeat(*broker_id, *broker_epoch, now_ms),
            ControllerRequest::ControlledShutdown {
                broker_id,
                broker_epoch,
            } => self.controlled_shutdown(*broker_id, *broker_epoch),
            ControllerRequest::CreateTopics { topics } => self.create_topics(topics),
            ControllerRequest::DeleteTopics { names } => self.delete_topics(names),
            ControllerRequest::CreatePartitions { name, count } => {
                self.create_partitions(name, *count)
            }
            ControllerRequest::AlterTopicConfigs { name, ops } => self.alter_configs(name, ops),
            ControllerRequest::AlterPartition {
                broker_id,
                broker_epoch,
                topic_id,
                partition,
                leader_epoch,
                partition_epoch,
                new_isr,
            } => self.alter_partition(
                *broker_id,
                *broker_epoch,
                topic_id,
                *partition,
                (*leader_epoch, *partition_epoch),
                new_isr,
            ),
            ControllerRequest::AllocateProducerIds {
                broker_id,
                broker_epoch,
            } => self.allocate_producer_ids(*broker_id, *broker_epoch),
        };
        debug_assert!(self.pending.check_invariants().is_ok());
        decision
    }

    /// Fences every broker whose session expired; one batch (record list) per broker.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Vec<MetadataRecord>> {
        let expired: Vec<BrokerId> = self
            .deadlines_ms
            .iter()
            .filter(|(_, &deadline)| deadline <= now_ms)
            .map(|(&b, _)| b)
            .collect();
        let mut batches = Vec::new();
        for broker_id in expired {
            self.deadlines_ms.remove(&broker_id);
            let Some(b) = self.pending.broker(broker_id) else {
                continue;
            };
            if b.state == BrokerState::Fenced {
                continue;
            }
            let mut records = self.move_off(broker_id);
            records.push(MetadataRecord::FenceBroker {
                broker_id,
                broker_epoch: b.broker_epoch,
            });
            if let Ok(records) = self.apply_pending(records) {
                batches.push(records);
            }
        }
        let due = now_ms.saturating_sub(self.rebalanced_ms)
            >= self.config.leader_imbalance_check_interval_ms;
        if self.config.auto_leader_rebalance_enable && due {
            self.rebalanced_ms = now_ms;
            let records = self.preferred_leaders();
            if !records.is_empty() {
                if let Ok(records) = self.apply_pending(records) {
                    batches.push(records);
                }
            }
        }
        batches
    }

    /// Leaderships back to each partition's first replica where it is unfenced and in the ISR.
    fn preferred_leaders(&self) -> Vec<MetadataRecord> {
        self.pending
            .partitions()
            .filter_map(|(topic_id, partition, p)| {
                let preferred = *p.replicas.first()?;
                let eligible = preferred != p.leader
                    && p.isr.contains(&preferred)
                    && self.pending.is_unfenced(preferred);
                eligible.then_some(MetadataRecord::PartitionChange(PartitionChangeRecord {
                    topic_id,
                    partition,
                    isr: None,
                    leader: Some(preferred),
                    replicas: None,
                }))
            })
            .collect()
    }

    /// Applies a decision's records to the pending image; a failure there is a controller bug,
    /// turned into an `Internal` error with no records (debug builds assert).
    fn decide(
        &mut self,
        records: Vec<MetadataRecord>,
        reply: Result<ControllerReply, ControllerError>,
    ) -> Decision {
        match self.apply_pending(records) {
            Ok(records) => Decision { records, reply },
            Err(e) => Decision::reply(Err(e)),
        }
    }

    fn apply_pending(
        &mut self,
        records: Vec<MetadataRecord>,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        if records.is_empty() {
            return Ok(records);
        }
        let batch = crate::record::RecordBatch::new(records);
        match self.pending.apply_batch(&batch) {
            Ok(()) => Ok(batch.records),
            Err(e) => {
                debug_assert!(false, "controller produced an inapplicable batch: {e}");
                Err(internal(e))
            }
        }
    }

    fn register(
        &mut self,
        broker_id: BrokerId,
        incarnation_id: Uuid,
        endpoints: &Endpoints,
        rack: &Option<String>,
        now_ms: u64,
    ) -> Decision {
        if broker_id < 0
            || endpoints.kafka.len() > ENDPOINT_BYTES_MAX
            || endpoints.cluster.len() > ENDPOINT_BYTES_MAX
            || rack.as_ref().is_some_and(|r| r.len() > RACK_BYTES_MAX)
        {
            return Decision::reply(Err(ControllerError::InvalidRequest(
                "broker id, endpoint or rack out of range".into(),
            )));
        }
        let deadline_ms = now_ms + self.config.broker_session_timeout_ms;
        let mut records = Vec::new();
        if let Some(old) = self.pending.broker(broker_id) {
            if old.incarnation_id == incarnation_id {
                // A retry of a registration that already happened.
                let broker_epoch = old.broker_epoch;
                self.deadlines_ms.insert(broker_id, deadline_ms);
                return Decision::reply(Ok(ControllerReply::RegisterBroker { broker_epoch }));
            }
            if old.state != BrokerState::Fenced {
                // The old incarnation is gone: fence it before it is replaced.
                records = self.move_off(broker_id);
                records.push(MetadataRecord::FenceBroker {
                    broker_id,
                    broker_epoch: old.broker_epoch,
                });
            }
        }
        let broker_epoch = self.pending.broker_epoch_max() + 1;
        records.push(MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            broker_id,
            incarnation_id,
            broker_epoch,
            endpoints: endpoints.clone(),
            rack: rack.clone(),
        }));
        self.deadlines_ms.insert(broker_id, deadline_ms);
        self.decide(
            records,
            Ok(ControllerReply::RegisterBroker { broker_epoch }),
        )
    }

    fn check_broker(&self, broker_id: BrokerId, broker_epoch: i64) -> Result<(), ControllerError> {
        let b = self
            .pending
            .broker(broker_id)
            .ok_or(ControllerError::UnknownBroker(broker_id))?;
        if b.broker_epoch != broker_epoch {
            return Err(ControllerError::StaleBrokerEpoch {
                got: broker_epoch,
                current: b.broker_epoch,
            });
        }
        Ok(())
    }

    fn heartbeat(&mut self, broker_id: BrokerId, broker_epoch: i64, now_ms: u64) -> Decision {
        if let Err(e) = self.check_broker(broker_id, broker_epoch) {
            return Decision::reply(Err(e));
        }
        self.deadlines_ms
            .insert(broker_id, now_ms + self.config.broker_session_timeout_ms);
        let state = self.pending.broker(broker_id).expect("checked").state;
        let mut records = Vec::new();
        if state == BrokerState::Fenced {
            records.push(MetadataRecord::UnfenceBroker {
                broker_id,
                broker_epoch,
            });
            records.extend(self.elect_returning(broker_id));
        }
        let reply = ControllerReply::Heartbeat {
            fenced: false,
            shutting_down: state == BrokerState::ShuttingDown,
        };
        self.decide(records, Ok(reply))
    }

    fn controlled_shutdown(&mut self, broker_id: BrokerId, broker_epoch: i64) -> Decision {
        if let Err(e) = self.check_broker(broker_id, broker_epoch) {
            return Decision::reply(Err(e));
        }
        let mut records = Vec::new();
        if self.pending.broker(broker_id).expect("checked").state == BrokerState::Unfenced {
            records = self.move_off(broker_id);
            records.push(MetadataRecord::BrokerShuttingDown {
                broker_id,
                broker_epoch,
            });
        }
        let reply = ControllerReply::ControlledShutdown {
            leaderships_remaining: 0,
        };
        self.decide(records, Ok(reply))
    }

    /// Partition changes that take `broker_id` out of every ISR (but the last member) and move
    /// its leaderships to the first eligible ISR member in replica order, or to no leader.
    fn move_off(&self, broker_id: BrokerId) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        for (topic_id, partition, p) in self.pending.partitions() {
            if !p.isr.contains(&broker_id) && p.leader != broker_id {
                continue;
            }
            let mut isr: Vec<BrokerId> =
                p.isr.iter().copied().filter(|&b| b != broker_id).collect();
            if isr.is_empty() {
                isr = p.isr.clone(); // Keep the last ISR member: it has all the committed data.
            }
            let leader = if p.leader == broker_id {
                p.replicas
                    .iter()
                    .copied()
                    .find(|&b| b != broker_id && isr.contains(&b) && self.pending.is_unfenced(b))
                    .unwrap_or(NO_LEADER)
            } else {
                p.leader
            };
            if isr == p.isr && leader == p.leader {
                continue;
            }
            records.push(MetadataRecord::PartitionChange(PartitionChangeRecord {
                topic_id,
                partition,
                isr: (isr != p.isr).then_some(isr),
                leader: (leader != p.leader).then_some(leader),
                replicas: None,
            }));
        }
        records
    }

    /// Leaderless partitions whose ISR holds `broker_id` get it back as leader (epoch bumped).
    fn elect_returning(&self, broker_id: BrokerId) -> Vec<MetadataRecord> {
        self.pending
            .partitions()
            .filter(|(_, _, p)| p.leader == NO_LEADER && p.isr.contains(&broker_id))
            .map(|(topic_id, partition, _)| {
                MetadataRecord::PartitionChange(PartitionChangeRecord {
                    topic_id,
                    partition,
                    isr: None,
                    leader: Some(broker_id),
                    replicas: None,
                })
            })
            .collect()
    }

    fn next_topic_id(&mut self) -> Uuid {
        loop {
            self.id_counter += 1;
            let mut bytes = [0u8; 16];
            bytes[..6].copy_from_slice(&self.term.to_be_bytes()[2..]);
            bytes[7] = self.instance;
            bytes[9..].copy_from_slice(&self.id_counter.to_be_bytes()[1..]);
            let id = uuid::Builder::from_custom_bytes(bytes).into_uuid();
            if self.pending.topic(&id).is_none() {
                return id;
            }
        }
    }

    fn create_topics(&mut self, topics: &[NewTopic]) -> Decision {
        if topics.len() > REQUEST_TOPICS_MAX {
            return Decision::reply(Err(ControllerError::InvalidRequest(format!(
                "more than {REQUEST_TOPICS_MAX} topics"
            ))));
        }
        let mut results = Vec::with_capacity(topics.len());
        let mut records = Vec::new();
        let mut partitions_total = 0usize;
        for (i, t) in topics.iter().enumerate() {
            let result = if topics[..i].iter().any(|o| o.name == t.name) {
                Err(ControllerError::InvalidRequest("duplicate topic".into()))
            } else {
                self.create_topic(t, &mut partitions_total)
            };
            match result {
                Ok(topic_records) => {
                    let id = match &topic_records[0] {
                        MetadataRecord::Topic(r) => r.topic_id,
                        _ => unreachable!("create_topic starts with the topic record"),
                    };
                    records.extend(topic_records);
                    results.push((t.name.clone(), Ok(id)));
                }
                Err(e) => results.push((t.name.clone(), Err(e))),
            }
        }
        Decision {
            records,
            reply: Ok(ControllerReply::CreateTopics(results)),
        }
    }

    /// Validates and places one topic; its records are applied to the pending image at once so
    /// the next topic of the request sees its load (so `create_topics` does not `decide`).
    fn create_topic(
        &mut self,
        t: &NewTopic,
        partitions_total: &mut usize,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        if !validate_topic_name(&t.name) {
            return Err(ControllerError::InvalidTopicName);
        }
        if self.pending.topic_by_name(&t.name).is_some() {
            return Err(ControllerError::TopicAlreadyExists);
        }
        validate_configs(&t.configs)?;
        let count = usize::try_from(t.partitions)
            .ok()
            .filter(|&n| (1..=PARTITIONS_PER_TOPIC_MAX).contains(&n))
            .ok_or_else(|| {
                ControllerError::InvalidPartitions(format!(
                    "must be 1..={PARTITIONS_PER_TOPIC_MAX}"
                ))
            })?;
        if *partitions_total + count > REQUEST_PARTITIONS_MAX {
            return Err(ControllerError::InvalidRequest(format!(
                "more than {REQUEST_PARTITIONS_MAX} partitions in one request"
            )));
        }
        let rf = usize::try_from(t.replication_factor)
            .ok()
            .filter(|&n| (1..=REPLICAS_MAX).contains(&n));
        let placement = rf
            .ok_or(placement::NotEnoughBrokers {
                requested: 0,
                available: 0,
            })
            .and_then(|rf| placement::place(&self.pending, count, rf))
            .map_err(|e| ControllerError::InvalidReplicationFactor {
                requested: t.replication_factor.into(),
                available: e.available,
            })?;
        let topic_id = self.next_topic_id();
        let mut records = vec![MetadataRecord::Topic(TopicRecord {
            name: t.name.clone(),
            topic_id,
            configs: t.configs.clone(),
        })];
        records.extend(partition_records(topic_id, 0, placement));
        self.pending
            .apply_batch(&crate::record::RecordBatch::new(records.clone()))
            .map_err(internal)?;
        *partitions_total += count;
        Ok(records)
    }

    fn delete_topics(&mut self, names: &[String]) -> Decision {
        if names.len() > REQUEST_TOPICS_MAX {
            return Decision::reply(Err(ControllerError::InvalidRequest(format!(
                "more than {REQUEST_TOPICS_MAX} topics"
            ))));
        }
        let mut seen = BTreeSet::new();
        let mut records = Vec::new();
        let results = names
            .iter()
            .map(|name| {
                let result = match self.pending.topic_by_name(name) {
                    Some(t) if seen.insert(t.id) => {
                        records.push(MetadataRecord::RemoveTopic { topic_id: t.id });
                        Ok(t.id)
                    }
                    Some(_) => Err(ControllerError::InvalidRequest("duplicate topic".into())),
                    None => Err(ControllerError::UnknownTopicOrPartition),
                };
                (name.clone(), result)
            })
            .collect();
        self.decide(records, Ok(ControllerReply::DeleteTopics(results)))
    }

    fn create_partitions(&mut self, name: &str, count: i32) -> Decision {
        match self.create_partitions_records(name, count) {
            Ok(records) => self.decide(records, Ok(ControllerReply::CreatePartitions)),
            Err(e) => Decision::reply(Err(e)),
        }
    }

    fn create_partitions_records(
        &self,
        name: &str,
        count: i32,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        let topic = self
            .pending
            .topic_by_name(name)
            .ok_or(ControllerError::UnknownTopicOrPartition)?;
        let current = topic.partitions.len();
        let count = usize::try_from(count).unwrap_or(0);
        if count <= current
            || count > PARTITIONS_PER_TOPIC_MAX
            || count - current > REQUEST_PARTITIONS_MAX
        {
            return Err(ControllerError::InvalidPartitions(format!(
                "{count} must be above {current} and at most {PARTITIONS_PER_TOPIC_MAX}"
            )));
        }
        let rf = topic.partitions.first().map_or(1, |p| p.replicas.len());
        let placement = placement::place(&self.pending, count - current, rf).map_err(|e| {
            ControllerError::InvalidReplicationFactor {
                requested: rf as i32,
                available: e.available,
            }
        })?;
        Ok(partition_records(topic.id, current, placement).collect())
    }

    fn alter_configs(&mut self, name: &str, ops: &[ConfigOp]) -> Decision {
        match self.alter_configs_records(name, ops) {
            Ok(records) => self.decide(records, Ok(ControllerReply::AlterTopicConfigs)),
            Err(e) => Decision::reply(Err(e)),
        }
    }

    fn alter_configs_records(
        &self,
        name: &str,
        ops: &[ConfigOp],
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        let topic = self
            .pending
            .topic_by_name(name)
            .ok_or(ControllerError::UnknownTopicOrPartition)?;
        if ops.len() > REQUEST_CONFIG_OPS_MAX {
            return Err(ControllerError::InvalidRequest(
                "too many config ops".into(),
            ));
        }
        let mut configs = topic.configs.clone();
        let mut records = Vec::new();
        for op in ops {
            let (key, value) = match op {
                ConfigOp::Set { key, value } => (key, Some(value)),
                ConfigOp::Delete { key } => (key, None),
            };
            validate_config(key, value.map(String::as_str))?;
            let changed = match value {
                Some(v) => configs.insert(key.clone(), v.clone()).as_ref() != Some(v),
                None => configs.remove(key).is_some(),
            };
            if changed {
                records.push(MetadataRecord::TopicConfig {
                    topic_id: topic.id,
                    key: key.clone(),
                    value: value.cloned(),
                });
            }
        }
        if configs.len() > TOPIC_CONFIGS_MAX {
            return Err(ControllerError::InvalidConfig(format!(
                "more than {TOPIC_CONFIGS_MAX} configs"
            )));
        }
        Ok(records)
    }

    fn alter_partition(
        &mut self,
        broker_id: BrokerId,
        broker_epoch: i64,
        topic_id: &Uuid,
        partition: PartitionId,
        epochs: (i32, i32),
        new_isr: &[BrokerId],
    ) -> Decision {
        let records = match self.alter_partition_records(
            broker_id,
            broker_epoch,
            topic_id,
            partition,
            epochs,
            new_isr,
        ) {
            Ok(records) => records,
            Err(e) => return Decision::reply(Err(e)),
        };
        match self.apply_pending(records) {
            Ok(records) => {
                let state = self
                    .pending
                    .partition(topic_id, partition)
                    .expect("checked");
                let reply = Ok(ControllerReply::AlterPartition(state.clone()));
                Decision { records, reply }
            }
            Err(e) => Decision::reply(Err(e)),
        }
    }

    fn alter_partition_records(
        &self,
        broker_id: BrokerId,
        broker_epoch: i64,
        topic_id: &Uuid,
        partition: PartitionId,
        (leader_epoch, partition_epoch): (i32, i32),
        new_isr: &[BrokerId],
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        self.check_broker(broker_id, broker_epoch)?;
        let p = self
            .pending
            .partition(topic_id, partition)
            .ok_or(ControllerError::UnknownTopicOrPartition)?;
        if p.leader != broker_id {
            return Err(ControllerError::NotLeader(broker_id));
        }
        if leader_epoch != p.leader_epoch {
            return Err(ControllerError::FencedLeaderEpoch {
                got: leader_epoch,
                current: p.leader_epoch,
            });
        }
        if partition_epoch != p.partition_epoch {
            return Err(ControllerError::InvalidUpdateVersion {
                got: partition_epoch,
                current: p.partition_epoch,
            });
        }
        validate_isr(p, broker_id, new_isr)?;
        if let Some(&b) = new_isr
            .iter()
            .find(|&&b| b != broker_id && !self.pending.is_unfenced(b))
        {
            return Err(ControllerError::IneligibleReplica(b));
        }
        if new_isr == p.isr.as_slice() {
            return Ok(Vec::new());
        }
        Ok(vec![MetadataRecord::PartitionChange(
            PartitionChangeRecord {
                topic_id: *topic_id,
                partition,
                isr: Some(new_isr.to_vec()),
                leader: None,
                replicas: None,
            },
        )])
    }

    fn allocate_producer_ids(&mut self, broker_id: BrokerId, broker_epoch: i64) -> Decision {
        if let Err(e) = self.check_broker(broker_id, broker_epoch) {
            return Decision::reply(Err(e));
        }
        let first = self.pending.producer_id_next();
        let Some(next) = first.checked_add(PRODUCER_ID_BLOCK_LEN) else {
            return Decision::reply(Err(ControllerError::Internal(
                "producer ids exhausted".into(),
            )));
        };
        let records = vec![MetadataRecord::ProducerIds {
            broker_id,
            broker_epoch,
            next_producer_id: next,
        }];
        let reply = ControllerReply::ProducerIds {
            first,
            count: PRODUCER_ID_BLOCK_LEN,
        };
        self.decide(records, Ok(reply))
    }
}

fn internal(e: ApplyError) -> ControllerError {
    ControllerError::Internal(e.to_string())
}

fn partition_records(
    topic_id: Uuid,
    first: usize,
    placement: Vec<Vec<BrokerId>>,
) -> impl Iterator<Item = MetadataRecord> {
    placement.into_iter().enumerate().map(move |(i, replicas)| {
        MetadataRecord::Partition(PartitionRecord {
            topic_id,
            partition: (first + i) as PartitionId,
            state: PartitionState {
                isr: replicas.clone(),
                leader: replicas[0],
                replicas,
                leader_epoch: 0,
                partition_epoch: 0,
            },
        })
    })
}

fn validate_isr(
    p: &PartitionState,
    leader: BrokerId,
    isr: &[BrokerId],
) -> Result<(), ControllerError> {
    let bad = |why: &str| Err(ControllerError::InvalidIsr(why.into()));
    if !isr.contains(&leader) {
        return bad("does not contain the leader");
    }
    if isr.iter().any(|b| !p.replicas.contains(b)) {
        return bad("member outside the replicas");
    }
    if isr.iter().enumerate().any(|(i, b)| isr[..i].contains(b)) {
        return bad("duplicate member");
    }
    Ok(())
}

fn validate_config(key: &str, value: Option<&str>) -> Result<(), ControllerError> {
    if key.is_empty() || key.len() > CONFIG_KEY_BYTES_MAX {
        return Err(ControllerError::InvalidConfig(format!(
            "key must be 1..={CONFIG_KEY_BYTES_MAX} bytes"
        )));
    }
    if value.is_some_and(|v| v.len() > CONFIG_VALUE_BYTES_MAX) {
        return Err(ControllerError::InvalidConfig(format!(
            "value longer than {CONFIG_VALUE_BYTES_MAX} bytes"
        )));
    }
    Ok(())
}

fn validate_configs(configs: &BTreeMap<String, String>) -> Result<(), ControllerError> {
    if configs.len() > TOPIC_CONFIGS_MAX {
        return Err(ControllerError::InvalidConfig(format!(
            "more than {TOPIC_CONFIGS_MAX} configs"
        )));
    }
    configs
        .iter()
        .try_for_each(|(k, v)| validate_config(k, Some(v)))
}
