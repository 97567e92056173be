//! `MetadataImage`: the immutable view of the cluster, built by applying committed records in order.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::record::{
    decode_versioned, encode_versioned, DecodeError, EncodeError, Endpoints, MetadataRecord,
    PartitionChangeRecord, PartitionRecord, PartitionState, RecordBatch, RegisterBrokerRecord,
    TopicRecord, NO_LEADER,
};
use crate::{BrokerId, PartitionId};

pub const TOPIC_NAME_BYTES_MAX: usize = 249;
pub const PARTITIONS_PER_TOPIC_MAX: usize = 10_000;
pub const REPLICAS_MAX: usize = 16;
pub const TOPIC_CONFIGS_MAX: usize = 256;
pub const CONFIG_KEY_BYTES_MAX: usize = 255;
pub const CONFIG_VALUE_BYTES_MAX: usize = 4096;
pub const BROKERS_MAX: usize = 10_000;
pub const TOPICS_MAX: usize = 100_000;
/// Largest encoded image (a Raft snapshot) accepted by [`MetadataImage::decode`].
pub const IMAGE_BYTES_MAX: usize = 256 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BrokerState {
    /// Registered but not (or no longer) heartbeating: leads nothing, in no ISR (but the last).
    Fenced,
    Unfenced,
    /// Asked for a controlled shutdown: leads nothing, gets no new replicas.
    ShuttingDown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub broker_id: BrokerId,
    pub incarnation_id: Uuid,
    pub broker_epoch: i64,
    pub endpoints: Endpoints,
    pub rack: Option<String>,
    pub state: BrokerState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    pub configs: BTreeMap<String, String>,
    pub partitions: Vec<PartitionState>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("unknown broker {0}")]
    UnknownBroker(BrokerId),
    #[error("broker {broker_id}: epoch {got} does not match {current}")]
    BrokerEpochMismatch {
        broker_id: BrokerId,
        got: i64,
        current: i64,
    },
    #[error("broker {broker_id}: new epoch {got} is not above {current}")]
    BrokerEpochNotIncreasing {
        broker_id: BrokerId,
        got: i64,
        current: i64,
    },
    #[error("broker {broker_id} is {state:?}; the record needs another state")]
    BrokerState {
        broker_id: BrokerId,
        state: BrokerState,
    },
    #[error("broker {0} still leads partitions")]
    BrokerStillLeads(BrokerId),
    #[error("too many brokers (max {0})")]
    TooManyBrokers(usize),
    #[error("invalid topic name {0:?}")]
    InvalidTopicName(String),
    #[error("topic {0:?} already exists")]
    TopicNameExists(String),
    #[error("topic id {0} already exists or is nil")]
    TopicIdExists(Uuid),
    #[error("too many topics (max {0})")]
    TooManyTopics(usize),
    #[error("unknown topic id {0}")]
    UnknownTopic(Uuid),
    #[error("topic {topic_id}: partition {partition} is not the next one ({next})")]
    PartitionOutOfOrder {
        topic_id: Uuid,
        partition: PartitionId,
        next: usize,
    },
    #[error("topic {topic_id}: unknown partition {partition}")]
    UnknownPartition {
        topic_id: Uuid,
        partition: PartitionId,
    },
    #[error("invalid partition state: {0}")]
    InvalidPartition(&'static str),
    #[error("invalid config: {0}")]
    InvalidConfig(&'static str),
    #[error("producer id {got} is not above {current}")]
    ProducerIdNotIncreasing { got: i64, current: i64 },
    #[error("record {index} of the batch: {source}")]
    InBatch {
        index: usize,
        #[source]
        source: Box<ApplyError>,
    },
}

/// The cluster as committed records describe it. Cloning shares the topics (`Arc`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    brokers: BTreeMap<BrokerId, BrokerRegistration>,
    topics: BTreeMap<Uuid, Arc<TopicImage>>,
    topic_ids: BTreeMap<String, Uuid>,
    /// First producer id not yet handed out.
    producer_id_next: i64,
    /// Highest broker epoch ever assigned.
    broker_epoch_max: i64,
}

pub fn validate_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= TOPIC_NAME_BYTES_MAX
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

impl MetadataImage {
    pub fn new() -> MetadataImage {
        MetadataImage::default()
    }

    pub fn broker(&self, id: BrokerId) -> Option<&BrokerRegistration> {
        self.brokers.get(&id)
    }
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values()
    }
    pub fn topic(&self, id: &Uuid) -> Option<&Arc<TopicImage>> {
        self.topics.get(id)
    }
    pub fn topic_by_name(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topic_ids.get(name).and_then(|id| self.topics.get(id))
    }
    pub fn topics(&self) -> impl Iterator<Item = &Arc<TopicImage>> {
        self.topics.values()
    }
    pub fn partition(&self, topic_id: &Uuid, partition: PartitionId) -> Option<&PartitionState> {
        let index = usize::try_from(partition).ok()?;
        self.topics.get(topic_id)?.partitions.get(index)
    }
    pub fn producer_id_next(&self) -> i64 {
        self.producer_id_next
    }
    pub fn broker_epoch_max(&self) -> i64 {
        self.broker_epoch_max
    }
    pub fn is_unfenced(&self, id: BrokerId) -> bool {
        self.broker(id)
            .is_some_and(|b| b.state == BrokerState::Unfenced)
    }
    /// All (topic id, partition, state), in topic id then partition order.
    pub fn partitions(&self) -> impl Iterator<Item = (Uuid, PartitionId, &PartitionState)> {
        self.topics.values().flat_map(|t| {
            t.partitions
                .iter()
                .enumerate()
                .map(move |(i, p)| (t.id, i as PartitionId, p))
        })
    }
    pub fn leads_any(&self, broker_id: BrokerId) -> bool {
        self.partitions().any(|(_, _, p)| p.leader == broker_id)
    }

    /// Applies one batch all-or-nothing.
    pub fn apply_batch(&mut self, batch: &RecordBatch) -> Result<(), ApplyError> {
        if let [record] = batch.records.as_slice() {
            return self.apply(record);
        }
        let mut next = self.clone();
        for (index, record) in batch.records.iter().enumerate() {
            next.apply(record).map_err(|e| ApplyError::InBatch {
                index,
                source: Box::new(e),
            })?;
        }
        *self = next;
        Ok(())
    }

    /// Applies one record. Total: a record that does not fit returns an error and changes nothing.
    pub fn apply(&mut self, record: &MetadataRecord) -> Result<(), ApplyError> {
        match record {
            MetadataRecord::RegisterBroker(r) => self.apply_register(r),
            MetadataRecord::FenceBroker {
                broker_id,
                broker_epoch,
            } => self.apply_broker_state(*broker_id, *broker_epoch, BrokerState::Fenced),
            MetadataRecord::UnfenceBroker {
                broker_id,
                broker_epoch,
            } => self.apply_broker_state(*broker_id, *broker_epoch, BrokerState::Unfenced),
            MetadataRecord::BrokerShuttingDown {
                broker_id,
                broker_epoch,
            } => self.apply_broker_state(*broker_id, *broker_epoch, BrokerState::ShuttingDown),
            MetadataRecord::Topic(r) => self.apply_topic(r),
            MetadataRecord::Partition(r) => self.apply_partition(r),
            MetadataRecord::PartitionChange(r) => self.apply_partition_change(r),
            MetadataRecord::RemoveTopic { topic_id } => {
                let topic = self
                    .topics
                    .remove(topic_id)
                    .ok_or(ApplyError::UnknownTopic(*topic_id))?;
                self.topic_ids.remove(&topic.name);
                Ok(())
            }
            MetadataRecord::TopicConfig {
                topic_id,
                key,
                value,
            } => self.apply_topic_config(topic_id, key, value.as_deref()),
            MetadataRecord::ProducerIds {
                broker_id,
                broker_epoch,
                next_producer_id,
            } => {
                self.check_broker_epoch(*broker_id, *broker_epoch)?;
                if *next_producer_id <= self.producer_id_next {
                    return Err(ApplyError::ProducerIdNotIncreasing {
                        got: *next_producer_id,
                        current: self.producer_id_next,
                    });
                }
                self.producer_id_next = *next_producer_id;
                Ok(())
            }
        }
    }

    fn apply_register(&mut self, r: &RegisterBrokerRecord) -> Result<(), ApplyError> {
        match self.brokers.get(&r.broker_id) {
            Some(old) => {
                if r.broker_epoch <= old.broker_epoch {
                    return Err(ApplyError::BrokerEpochNotIncreasing {
                        broker_id: r.broker_id,
                        got: r.broker_epoch,
                        current: old.broker_epoch,
                    });
                }
                if self.leads_any(r.broker_id) {
                    return Err(ApplyError::BrokerStillLeads(r.broker_id));
                }
            }
            None if self.brokers.len() >= BROKERS_MAX => {
                return Err(ApplyError::TooManyBrokers(BROKERS_MAX))
            }
            None => {}
        }
        self.broker_epoch_max = self.broker_epoch_max.max(r.broker_epoch);
        self.brokers.insert(
            r.broker_id,
            BrokerRegistration {
                broker_id: r.broker_id,
                incarnation_id: r.incarnation_id,
                broker_epoch: r.broker_epoch,
                endpoints: r.endpoints.clone(),
                rack: r.rack.clone(),
                state: BrokerState::Fenced,
            },
        );
        Ok(())
    }

    fn check_broker_epoch(&self, broker_id: BrokerId, epoch: i64) -> Result<(), ApplyError> {
        let b = self
            .brokers
            .get(&broker_id)
            .ok_or(ApplyError::UnknownBroker(broker_id))?;
        if b.broker_epoch != epoch {
            return Err(ApplyError::BrokerEpochMismatch {
                broker_id,
                got: epoch,
                current: b.broker_epoch,
            });
        }
        Ok(())
    }

    /// Fenced ← Unfenced | ShuttingDown; Unfenced ← Fenced; ShuttingDown ← Unfenced.
    fn apply_broker_state(
        &mut self,
        broker_id: BrokerId,
        epoch: i64,
        to: BrokerState,
    ) -> Result<(), ApplyError> {
        self.check_broker_epoch(broker_id, epoch)?;
        let from = self.brokers[&broker_id].state;
        let allowed = match to {
            BrokerState::Fenced => from != BrokerState::Fenced,
            BrokerState::Unfenced => from == BrokerState::Fenced,
            BrokerState::ShuttingDown => from == BrokerState::Unfenced,
        };
        if !allowed {
            return Err(ApplyError::BrokerState {
                broker_id,
                state: from,
            });
        }
        if to != BrokerState::Unfenced && self.leads_any(broker_id) {
            return Err(ApplyError::BrokerStillLeads(broker_id));
        }
        self.brokers.get_mut(&broker_id).expect("checked").state = to;
        Ok(())
    }

    fn apply_topic(&mut self, r: &TopicRecord) -> Result<(), ApplyError> {
        if !validate_topic_name(&r.name) {
            return Err(ApplyError::InvalidTopicName(r.name.clone()));
        }
        if self.topic_ids.contains_key(&r.name) {
            return Err(ApplyError::TopicNameExists(r.name.clone()));
        }
        if r.topic_id.is_nil() || self.topics.contains_key(&r.topic_id) {
            return Err(ApplyError::TopicIdExists(r.topic_id));
        }
        if self.topics.len() >= TOPICS_MAX {
            return Err(ApplyError::TooManyTopics(TOPICS_MAX));
        }
        if r.configs.len() > TOPIC_CONFIGS_MAX {
            return Err(ApplyError::InvalidConfig("too many configs"));
        }
        for (k, v) in &r.configs {
            validate_config(k, Some(v))?;
        }
        self.topic_ids.insert(r.name.clone(), r.topic_id);
        let topic = TopicImage {
            name: r.name.clone(),
            id: r.topic_id,
            configs: r.configs.clone(),
            partitions: Vec::new(),
        };
        self.topics.insert(r.topic_id, Arc::new(topic));
        Ok(())
    }

    fn apply_partition(&mut self, r: &PartitionRecord) -> Result<(), ApplyError> {
        let topic = self
            .topics
            .get(&r.topic_id)
            .ok_or(ApplyError::UnknownTopic(r.topic_id))?;
        let next = topic.partitions.len();
        if usize::try_from(r.partition).ok() != Some(next) {
            return Err(ApplyError::PartitionOutOfOrder {
                topic_id: r.topic_id,
                partition: r.partition,
                next,
            });
        }
        if next >= PARTITIONS_PER_TOPIC_MAX {
            return Err(ApplyError::InvalidPartition("too many partitions"));
        }
        let state = r.state.clone();
        if state.leader_epoch < 0 || state.partition_epoch < 0 {
            return Err(ApplyError::InvalidPartition("negative epoch"));
        }
        self.validate_partition(&state)?;
        let topic = self.topics.get_mut(&r.topic_id).expect("checked");
        Arc::make_mut(topic).partitions.push(state);
        Ok(())
    }

    fn apply_partition_change(&mut self, r: &PartitionChangeRecord) -> Result<(), ApplyError> {
        let old = self
            .partition(&r.topic_id, r.partition)
            .ok_or(ApplyError::UnknownPartition {
                topic_id: r.topic_id,
                partition: r.partition,
            })?;
        let mut new = old.clone();
        if let Some(replicas) = &r.replicas {
            new.replicas = replicas.clone();
        }
        if let Some(isr) = &r.isr {
            new.isr = isr.clone();
        }
        if let Some(leader) = r.leader {
            if leader != old.leader {
                new.leader = leader;
                new.leader_epoch = bump(old.leader_epoch)?;
            }
        }
        new.partition_epoch = bump(old.partition_epoch)?;
        self.validate_partition(&new)?;
        let topic = self.topics.get_mut(&r.topic_id).expect("checked");
        Arc::make_mut(topic).partitions[r.partition as usize] = new;
        Ok(())
    }

    /// The structural invariants of a partition.
    fn validate_partition(&self, p: &PartitionState) -> Result<(), ApplyError> {
        use ApplyError::InvalidPartition as Bad;
        if p.replicas.is_empty() || p.replicas.len() > REPLICAS_MAX {
            return Err(Bad("replica count out of range"));
        }
        if has_duplicates(&p.replicas) || has_duplicates(&p.isr) {
            return Err(Bad("duplicate replica"));
        }
        if p.replicas.iter().any(|b| !self.brokers.contains_key(b)) {
            return Err(Bad("replica on an unregistered broker"));
        }
        if p.isr.is_empty() || p.isr.iter().any(|b| !p.replicas.contains(b)) {
            return Err(Bad("isr empty or not within replicas"));
        }
        if p.leader != NO_LEADER && (!p.isr.contains(&p.leader) || !self.is_unfenced(p.leader)) {
            return Err(Bad("leader not an unfenced isr member"));
        }
        Ok(())
    }

    fn apply_topic_config(
        &mut self,
        topic_id: &Uuid,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), ApplyError> {
        validate_config(key, value)?;
        let topic = self
            .topics
            .get_mut(topic_id)
            .ok_or(ApplyError::UnknownTopic(*topic_id))?;
        match value {
            Some(v) => {
                if !topic.configs.contains_key(key) && topic.configs.len() >= TOPIC_CONFIGS_MAX {
                    return Err(ApplyError::InvalidConfig("too many configs"));
                }
                Arc::make_mut(topic)
                    .configs
                    .insert(key.to_string(), v.to_string());
            }
            None => {
                Arc::make_mut(topic).configs.remove(key);
            }
        }
        Ok(())
    }

    /// Checks every invariant across the image (tests and the simulator call this).
    pub fn check_invariants(&self) -> Result<(), String> {
        for (id, t) in &self.topics {
            if self.topic_ids.get(&t.name) != Some(id) {
                return Err(format!("topic {} not indexed by name", t.name));
            }
            for (i, p) in t.partitions.iter().enumerate() {
                self.validate_partition(p)
                    .map_err(|e| format!("{}-{i}: {e}", t.name))?;
            }
        }
        if self.topic_ids.len() != self.topics.len() {
            return Err("name index and topics differ".into());
        }
        Ok(())
    }

    /// Encodes the image (a Raft snapshot's data): `[version u8][postcard body]`.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        encode_versioned(self, IMAGE_BYTES_MAX)
    }

    /// Decodes an image and checks its invariants; garbage is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<MetadataImage, DecodeError> {
        let image: MetadataImage = decode_versioned(bytes, IMAGE_BYTES_MAX)?;
        image.check_invariants().map_err(DecodeError::Malformed)?;
        Ok(image)
    }
}

fn bump(epoch: i32) -> Result<i32, ApplyError> {
    epoch
        .checked_add(1)
        .ok_or(ApplyError::InvalidPartition("epoch overflow"))
}

fn has_duplicates(ids: &[BrokerId]) -> bool {
    ids.iter().enumerate().any(|(i, id)| ids[..i].contains(id))
}

fn validate_config(key: &str, value: Option<&str>) -> Result<(), ApplyError> {
    if key.is_empty() || key.len() > CONFIG_KEY_BYTES_MAX {
        return Err(ApplyError::InvalidConfig("key length out of range"));
    }
    if value.is_some_and(|v| v.len() > CONFIG_VALUE_BYTES_MAX) {
        return Err(ApplyError::InvalidConfig("value too long"));
    }
    Ok(())
}
