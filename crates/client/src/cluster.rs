//! The cluster-level client: metadata, routing to leaders/controller, admin, produce, fetch.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{check, ClientConfig, ClientError, Connection, Result};
use shoal_protocol::errors;
use shoal_protocol::records::{decode_batch, Batches, Record};
use shoal_protocol::request::Request;
use shoal_protocol::response::Response;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerInfo {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    pub error_code: i16,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline: Vec<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub error_code: i16,
    pub topic_id: [u8; 16],
    pub is_internal: bool,
    /// Sorted by partition.
    pub partitions: Vec<PartitionInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMetadata {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: Vec<BrokerInfo>,
    pub topics: Vec<TopicInfo>,
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    /// -1: the broker default.
    pub partitions: i32,
    /// -1: the broker default.
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

/// The broker's answer for one topic of a CreateTopics/DeleteTopics request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicOutcome {
    pub name: String,
    pub error_code: i16,
    pub error_message: Option<String>,
}

impl TopicOutcome {
    pub fn result(&self) -> Result<()> {
        check(
            self.error_code,
            || format!("topic {}", self.name),
            self.error_message.as_deref(),
        )
    }
}

/// Resource types of DescribeConfigs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigResource {
    Topic(String),
    Broker(i32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub read_only: bool,
    pub is_default: bool,
    pub is_sensitive: bool,
}

/// Which offset ListOffsets should find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    /// The first offset whose timestamp is at or after this time (ms).
    Timestamp(i64),
}

impl OffsetSpec {
    fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(ms) => ms,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffset {
    pub partition: i32,
    /// -1 when no record matches a timestamp query.
    pub offset: i64,
    pub timestamp_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    None,
    Leader,
    All,
}

impl Acks {
    pub fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }

    pub fn parse(s: &str) -> Option<Acks> {
        match s {
            "0" => Some(Acks::None),
            "1" => Some(Acks::Leader),
            "-1" | "all" => Some(Acks::All),
            _ => None,
        }
    }
}

/// What the leader answered for one produced batch (nothing for acks=0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceAck {
    pub partition: i32,
    pub base_offset: i64,
    /// -1 unless the topic uses LogAppendTime.
    pub log_append_time_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchOptions {
    pub max_wait_ms: i32,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub partition_max_bytes: i32,
    /// 0 read_uncommitted, 1 read_committed.
    pub isolation_level: i8,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            max_wait_ms: 500,
            min_bytes: 1,
            max_bytes: 50 << 20,
            partition_max_bytes: 1 << 20,
            isolation_level: 0,
        }
    }
}

/// One partition of a Fetch answer. Records before the requested offset are dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionFetch {
    pub partition: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    pub records: Vec<Record>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<GroupMember>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    /// -1: nothing committed.
    pub offset: i64,
    pub metadata: Option<String>,
}

/// A client for one cluster.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    /// The connection used for metadata (the first reachable bootstrap broker).
    bootstrap: Connection,
    pub(super) connections: HashMap<i32, Connection>,
    pub(super) brokers: BTreeMap<i32, BrokerInfo>,
    controller_id: i32,
    topics: HashMap<String, TopicInfo>,
}

impl Client {
    /// Connects to the first reachable bootstrap broker and loads cluster metadata.
    pub fn connect(config: ClientConfig) -> Result<Client> {
        if config.brokers.is_empty() {
            return Err(ClientError::Invalid("no bootstrap brokers".into()));
        }
        let mut last = None;
        let mut bootstrap = None;
        for addr in &config.brokers {
            match Connection::connect(addr, &config) {
                Ok(c) => {
                    bootstrap = Some(c);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(bootstrap) = bootstrap else {
            return Err(ClientError::NoBroker {
                brokers: config.brokers.clone(),
                last: Box::new(last.expect("at least one attempt")),
            });
        };
        let mut client = Client {
            config,
            bootstrap,
            connections: HashMap::new(),
            brokers: BTreeMap::new(),
            controller_id: -1,
            topics: HashMap::new(),
        };
        client.metadata(Some(&[]), false)?;
        Ok(client)
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    pub fn brokers(&self) -> impl Iterator<Item = &BrokerInfo> {
        self.brokers.values()
    }

    /// The broker metadata requests currently go to.
    pub fn bootstrap_addr(&self) -> &str {
        self.bootstrap.addr()
    }

    pub fn controller_id(&self) -> i32 {
        self.controller_id
    }

    /// Metadata for `topics` (`None`: all topics). Refreshes the broker and topic caches.
    pub fn metadata(
        &mut self,
        topics: Option<&[String]>,
        allow_auto_topic_creation: bool,
    ) -> Result<ClusterMetadata> {
        let mut request = MetadataRequest::default().with_topics(topics.map(|names| {
            names
                .iter()
                .map(|n| {
                    metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(TopicName(sb(n))))
                })
                .collect()
        }));
        request.allow_auto_topic_creation = allow_auto_topic_creation;
        let (_, response) = self.bootstrap_send(
            |conn| {
                let mut request = request.clone();
                // Metadata v0-3 always auto-create; the flag does not exist there.
                if conn.version_for(ApiKey::Metadata)? < 4 {
                    request.allow_auto_topic_creation = true;
                }
                Ok(Request::Metadata(request))
            },
            Duration::ZERO,
        )?;
        let Response::Metadata(r) = response else {
            unreachable!("response kind matches request")
        };
        let metadata = ClusterMetadata {
            cluster_id: r.cluster_id.map(|s| s.to_string()),
            controller_id: r.controller_id.0,
            brokers: r
                .brokers
                .iter()
                .map(|b| BrokerInfo {
                    node_id: b.node_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.as_ref().map(|r| r.to_string()),
                })
                .collect(),
            topics: r
                .topics
                .iter()
                .map(|t| {
                    let mut partitions: Vec<PartitionInfo> = t
                        .partitions
                        .iter()
                        .map(|p| PartitionInfo {
                            partition: p.partition_index,
                            error_code: p.error_code,
                            leader: p.leader_id.0,
                            leader_epoch: p.leader_epoch,
                            replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                            isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                            offline: p.offline_replicas.iter().map(|b| b.0).collect(),
                        })
                        .collect();
                    partitions.sort_by_key(|p| p.partition);
                    TopicInfo {
                        name: t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                        error_code: t.error_code,
                        topic_id: *t.topic_id.as_bytes(),
                        is_internal: t.is_internal,
                        partitions,
                    }
                })
                .collect(),
        };
        self.controller_id = metadata.controller_id;
        for b in &metadata.brokers {
            if self.brokers.get(&b.node_id) != Some(b) {
                // Address changed (or new): drop any stale connection.
                self.connections.remove(&b.node_id);
            }
            self.brokers.insert(b.node_id, b.clone());
        }
        for t in &metadata.topics {
            if t.error_code == errors::NONE {
                self.topics.insert(t.name.clone(), t.clone());
            } else {
                self.topics.remove(&t.name);
            }
        }
        Ok(metadata)
    }

    /// The topic's metadata, from the cache or the broker (no auto-creation).
    pub fn topic(&mut self, name: &str) -> Result<TopicInfo> {
        if let Some(t) = self.topics.get(name) {
            return Ok(t.clone());
        }
        self.refresh_topic(name)
    }

    fn refresh_topic(&mut self, name: &str) -> Result<TopicInfo> {
        let metadata = self.metadata(Some(&[name.to_string()]), false)?;
        let topic = metadata
            .topics
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| ClientError::UnknownTopic(name.to_string()))?;
        if topic.error_code == errors::UNKNOWN_TOPIC_OR_PARTITION {
            return Err(ClientError::UnknownTopic(name.to_string()));
        }
        check(topic.error_code, || format!("metadata for {name}"), None)?;
        Ok(topic)
    }

    pub(super) fn connection(&mut self, node_id: i32) -> Result<&mut Connection> {
        if !self.connections.contains_key(&node_id) {
            let broker = self
                .brokers
                .get(&node_id)
                .ok_or(ClientError::UnknownBroker(node_id))?;
            let conn = Connection::connect(&broker.addr(), &self.config)?;
            self.connections.insert(node_id, conn);
        }
        Ok(self.connections.get_mut(&node_id).expect("inserted above"))
    }

    /// Sends on the bootstrap connection; if that socket failed, reconnects once to the first
    /// reachable broker (bootstrap list first, then known brokers) and sends again.
    fn bootstrap_send(
        &mut self,
        build: impl Fn(&Connection) -> Result<Request>,
        server_wait: Duration,
    ) -> Result<(i16, Response)> {
        let request = build(&self.bootstrap)?;
        match self.bootstrap.send(&request, server_wait) {
            Err(
                e @ (ClientError::Io { .. }
                | ClientError::Closed { .. }
                | ClientError::Timeout { .. }),
            ) => {
                let candidates: Vec<String> = self
                    .config
                    .brokers
                    .iter()
                    .cloned()
                    .chain(self.brokers.values().map(BrokerInfo::addr))
                    .collect();
                let Some(conn) = candidates
                    .iter()
                    .find_map(|addr| Connection::connect(addr, &self.config).ok())
                else {
                    return Err(e);
                };
                log::debug!(
                    "bootstrap connection failed ({e}); now using {}",
                    conn.addr()
                );
                self.bootstrap = conn;
                let request = build(&self.bootstrap)?;
                self.bootstrap.send(&request, server_wait)
            }
            other => other,
        }
    }

    /// Sends to the controller, or to the bootstrap broker when no controller is known.
    fn send_to_controller(
        &mut self,
        request: &Request,
        server_wait: Duration,
    ) -> Result<(i16, Response)> {
        if self.brokers.contains_key(&self.controller_id) {
            let controller = self.controller_id;
            return self.send_to(controller, request, server_wait);
        }
        self.bootstrap_send(|_| Ok(request.clone()), server_wait)
    }

    /// Sends to `node_id`; a failed socket is dropped so the next call reconnects.
    pub(super) fn send_to(
        &mut self,
        node_id: i32,
        request: &Request,
        server_wait: Duration,
    ) -> Result<(i16, Response)> {
        let result = self.connection(node_id)?.send(request, server_wait);
        if matches!(
            result,
            Err(ClientError::Io { .. } | ClientError::Closed { .. } | ClientError::Timeout { .. })
        ) {
            self.connections.remove(&node_id);
        }
        result
    }

    fn leader_of(&mut self, topic: &str, partition: i32) -> Result<i32> {
        let info = self.topic(topic)?;
        let p = info
            .partitions
            .iter()
            .find(|p| p.partition == partition)
            .ok_or_else(|| ClientError::UnknownPartition {
                topic: topic.to_string(),
                partition,
            })?;
        if p.leader < 0 {
            return Err(ClientError::Kafka {
                code: errors::LEADER_NOT_AVAILABLE,
                context: format!("{topic}-{partition}"),
                message: None,
            });
        }
        Ok(p.leader)
    }

    /// Runs `op`, refreshing metadata and retrying on retriable errors.
    fn with_retries<T>(
        &mut self,
        topic: Option<&str>,
        mut op: impl FnMut(&mut Client) -> Result<T>,
    ) -> Result<T> {
        let mut attempt = 0;
        loop {
            match op(self) {
                Err(e) if e.is_retriable() && attempt < self.config.retries_max => {
                    attempt += 1;
                    log::debug!("retry {attempt}/{} after: {e}", self.config.retries_max);
                    std::thread::sleep(self.config.retry_backoff);
                    if let Some(topic) = topic {
                        self.topics.remove(topic);
                        let _ = self.refresh_topic(topic);
                    }
                }
                other => return other,
            }
        }
    }

    /// Creates topics (on the controller). Per-topic outcomes; check each with `result()`.
    pub fn create_topics(
        &mut self,
        topics: &[NewTopic],
        validate_only: bool,
    ) -> Result<Vec<TopicOutcome>> {
        let request = Request::CreateTopics(
            CreateTopicsRequest::default()
                .with_timeout_ms(self.config.request_timeout_ms)
                .with_validate_only(validate_only)
                .with_topics(
                    topics
                        .iter()
                        .map(|t| {
                            create_topics_request::CreatableTopic::default()
                                .with_name(TopicName(sb(&t.name)))
                                .with_num_partitions(t.partitions)
                                .with_replication_factor(t.replication_factor)
                                .with_configs(
                                    t.configs
                                        .iter()
                                        .map(|(k, v)| {
                                            create_topics_request::CreatableTopicConfig::default()
                                                .with_name(sb(k))
                                                .with_value(Some(sb(v)))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
        );
        let wait = Duration::from_millis(self.config.request_timeout_ms.max(0) as u64);
        let (_, response) = self.send_to_controller(&request, wait)?;
        let Response::CreateTopics(r) = response else {
            unreachable!()
        };
        for t in topics {
            self.topics.remove(&t.name);
        }
        Ok(r.topics
            .iter()
            .map(|t| TopicOutcome {
                name: t.name.0.to_string(),
                error_code: t.error_code,
                error_message: t.error_message.as_ref().map(|m| m.to_string()),
            })
            .collect())
    }

    /// Deletes topics by name (on the controller).
    pub fn delete_topics(&mut self, names: &[String]) -> Result<Vec<TopicOutcome>> {
        let request = Request::DeleteTopics(
            DeleteTopicsRequest::default()
                .with_timeout_ms(self.config.request_timeout_ms)
                .with_topic_names(names.iter().map(|n| TopicName(sb(n))).collect()),
        );
        let wait = Duration::from_millis(self.config.request_timeout_ms.max(0) as u64);
        let (_, response) = self.send_to_controller(&request, wait)?;
        let Response::DeleteTopics(r) = response else {
            unreachable!()
        };
        for n in names {
            self.topics.remove(n);
        }
        Ok(r.responses
            .iter()
            .map(|t| TopicOutcome {
                name: t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                error_code: t.error_code,
                error_message: t.error_message.as_ref().map(|m| m.to_string()),
            })
            .collect())
    }

    /// Grows a topic to `count` partitions (on the controller).
    pub fn create_partitions(&mut self, name: &str, count: i32) -> Result<TopicOutcome> {
        let request = Request::CreatePartitions(
            CreatePartitionsRequest::default()
                .with_timeout_ms(self.config.request_timeout_ms)
                .with_topics(vec![
                    create_partitions_request::CreatePartitionsTopic::default()
                        .with_name(TopicName(sb(name)))
                        .with_count(count),
                ]),
        );
        let wait = Duration::from_millis(self.config.request_timeout_ms.max(0) as u64);
        let (_, response) = self.send_to_controller(&request, wait)?;
        let Response::CreatePartitions(r) = response else {
            unreachable!()
        };
        self.topics.remove(name);
        let t = r
            .results
            .first()
            .ok_or_else(|| ClientError::Protocol("CreatePartitions: empty answer".into()))?;
        Ok(TopicOutcome {
            name: t.name.0.to_string(),
            error_code: t.error_code,
            error_message: t.error_message.as_ref().map(|m| m.to_string()),
        })
    }

    /// Sets (`Some`) and deletes (`None`) topic configs in one IncrementalAlterConfigs.
    pub fn alter_topic_configs(
        &mut self,
        name: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<TopicOutcome> {
        const SET: i8 = 0;
        const DELETE: i8 = 1;
        let configs = changes
            .iter()
            .map(|(k, v)| {
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(sb(k))
                    .with_config_operation(if v.is_some() { SET } else { DELETE })
                    .with_value(v.as_deref().map(sb))
            })
            .collect();
        let request = Request::IncrementalAlterConfigs(
            IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(sb(name))
                    .with_configs(configs),
            ]),
        );
        let wait = Duration::from_millis(self.config.request_timeout_ms.max(0) as u64);
        let (_, response) = self.send_to_controller(&request, wait)?;
        let Response::IncrementalAlterConfigs(r) = response else {
            unreachable!()
        };
        let t = r
            .responses
            .first()
            .ok_or_else(|| ClientError::Protocol("IncrementalAlterConfigs: empty answer".into()))?;
        Ok(TopicOutcome {
            name: t.resource_name.to_string(),
            error_code: t.error_code,
            error_message: t.error_message.as_ref().map(|m| m.to_string()),
        })
    }

    /// All configs of a topic or broker (`keys` empty: all).
    pub fn describe_configs(
        &mut self,
        resource: &ConfigResource,
        keys: &[String],
    ) -> Result<Vec<ConfigEntry>> {
        let (resource_type, name, node) = match resource {
            ConfigResource::Topic(t) => (2i8, t.clone(), None),
            ConfigResource::Broker(id) => (4i8, id.to_string(), Some(*id)),
        };
        let request =
            Request::DescribeConfigs(DescribeConfigsRequest::default().with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(sb(&name))
                    .with_configuration_keys(if keys.is_empty() {
                        None
                    } else {
                        Some(keys.iter().map(|k| sb(k)).collect())
                    }),
            ]));
        // Topic configs can be read from any broker; broker configs only from that broker.
        let (version, response) = match node {
            Some(node) => self.send_to(node, &request, Duration::ZERO)?,
            None => self.bootstrap_send(|_| Ok(request.clone()), Duration::ZERO)?,
        };
        let Response::DescribeConfigs(r) = response else {
            unreachable!()
        };
        let result = r
            .results
            .first()
            .ok_or_else(|| ClientError::Protocol("DescribeConfigs: empty answer".into()))?;
        check(
            result.error_code,
            || format!("describe configs of {name}"),
            result.error_message.as_deref(),
        )?;
        Ok(result
            .configs
            .iter()
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.as_ref().map(|v| v.to_string()),
                read_only: c.read_only,
                // v0 has is_default; v1+ config_source 5 = DEFAULT_CONFIG.
                is_default: version >= 1 && c.config_source == 5,
                is_sensitive: c.is_sensitive,
            })
            .collect())
    }

    /// ListOffsets for `partitions` of `topic`, each asked of its leader.
    pub fn list_offsets(
        &mut self,
        topic: &str,
        partitions: &[i32],
        spec: OffsetSpec,
    ) -> Result<Vec<PartitionOffset>> {
        let mut out = Vec::with_capacity(partitions.len());
        for &partition in partitions {
            let offset =
                self.with_retries(Some(topic), |c| c.list_offset(topic, partition, spec))?;
            out.push(offset);
        }
        Ok(out)
    }

    fn list_offset(
        &mut self,
        topic: &str,
        partition: i32,
        spec: OffsetSpec,
    ) -> Result<PartitionOffset> {
        let leader = self.leader_of(topic, partition)?;
        let request = Request::ListOffsets(
            ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                    .with_name(TopicName(sb(topic)))
                    .with_partitions(vec![
                        list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(partition)
                            .with_timestamp(spec.wire()),
                    ])]),
        );
        let (_, response) = self.send_to(leader, &request, Duration::ZERO)?;
        let Response::ListOffsets(r) = response else {
            unreachable!()
        };
        let p = r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| ClientError::Protocol(format!("ListOffsets: no {topic}-{partition}")))?;
        check(
            p.error_code,
            || format!("list offsets {topic}-{partition}"),
            None,
        )?;
        Ok(PartitionOffset {
            partition,
            offset: p.offset,
            timestamp_ms: p.timestamp,
        })
    }

    /// Produces one batch (from [`shoal_protocol::records`]) to a partition's leader.
    pub fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        acks: Acks,
    ) -> Result<Option<ProduceAck>> {
        let acks_list = self.produce_batches(topic, &[(partition, batch)], acks)?;
        Ok(acks_list.into_iter().next())
    }

    /// Produces one batch per partition of `topic`, one request per leader, with retries.
    /// Returns the acks in the order of `batches` (empty for acks=0).
    pub fn produce_batches(
        &mut self,
        topic: &str,
        batches: &[(i32, Bytes)],
        acks: Acks,
    ) -> Result<Vec<ProduceAck>> {
        let mut by_leader: BTreeMap<i32, Vec<(i32, Bytes)>> = BTreeMap::new();
        for (partition, batch) in batches {
            let leader = self.with_retries(Some(topic), |c| c.leader_of(topic, *partition))?;
            by_leader
                .entry(leader)
                .or_default()
                .push((*partition, batch.clone()));
        }
        let mut out = HashMap::new();
        for (_, group) in by_leader {
            for ack in
                self.with_retries(Some(topic), |c| c.produce_to_leader(topic, &group, acks))?
            {
                out.insert(ack.partition, ack);
            }
        }
        if acks == Acks::None {
            return Ok(Vec::new());
        }
        batches
            .iter()
            .map(|(p, _)| {
                out.remove(p).ok_or_else(|| {
                    ClientError::Protocol(format!("Produce: no answer for {topic}-{p}"))
                })
            })
            .collect()
    }

    fn produce_to_leader(
        &mut self,
        topic: &str,
        batches: &[(i32, Bytes)],
        acks: Acks,
    ) -> Result<Vec<ProduceAck>> {
        // The leader may have moved since the batches were grouped.
        let leader = self.leader_of(topic, batches[0].0)?;
        let request = Request::Produce(
            ProduceRequest::default()
                .with_acks(acks.wire())
                .with_timeout_ms(self.config.request_timeout_ms)
                .with_topic_data(vec![produce_request::TopicProduceData::default()
                    .with_name(TopicName(sb(topic)))
                    .with_partition_data(
                        batches
                            .iter()
                            .map(|(p, b)| {
                                produce_request::PartitionProduceData::default()
                                    .with_index(*p)
                                    .with_records(Some(b.clone()))
                            })
                            .collect(),
                    )]),
        );
        if acks == Acks::None {
            let result = self.connection(leader)?.send_no_response(&request);
            if result.is_err() {
                self.connections.remove(&leader);
            }
            result?;
            return Ok(Vec::new());
        }
        let wait = Duration::from_millis(self.config.request_timeout_ms.max(0) as u64);
        let (_, response) = self.send_to(leader, &request, wait)?;
        let Response::Produce(r) = response else {
            unreachable!()
        };
        let mut out = Vec::with_capacity(batches.len());
        for p in r.responses.iter().flat_map(|t| &t.partition_responses) {
            check(
                p.error_code,
                || format!("produce to {topic}-{}", p.index),
                p.error_message.as_deref(),
            )?;
            out.push(ProduceAck {
                partition: p.index,
                base_offset: p.base_offset,
                log_append_time_ms: p.log_append_time_ms,
            });
        }
        Ok(out)
    }

    /// Fetches `positions` (partition, offset) of `topic`, one request per leader.
    pub fn fetch(
        &mut self,
        topic: &str,
        positions: &[(i32, i64)],
        options: FetchOptions,
    ) -> Result<Vec<PartitionFetch>> {
        let mut by_leader: BTreeMap<i32, Vec<(i32, i64)>> = BTreeMap::new();
        for &(partition, offset) in positions {
            let leader = self.with_retries(Some(topic), |c| c.leader_of(topic, partition))?;
            by_leader
                .entry(leader)
                .or_default()
                .push((partition, offset));
        }
        let mut out = Vec::with_capacity(positions.len());
        for (leader, group) in by_leader {
            out.extend(self.fetch_from(leader, topic, &group, options)?);
        }
        out.sort_by_key(|p| p.partition);
        Ok(out)
    }

    fn fetch_from(
        &mut self,
        leader: i32,
        topic: &str,
        positions: &[(i32, i64)],
        options: FetchOptions,
    ) -> Result<Vec<PartitionFetch>> {
        let request = Request::Fetch(
            FetchRequest::default()
                .with_max_wait_ms(options.max_wait_ms)
                .with_min_bytes(options.min_bytes)
                .with_max_bytes(options.max_bytes)
                .with_isolation_level(options.isolation_level)
                .with_session_id(0)
                .with_session_epoch(-1)
                .with_topics(vec![fetch_request::FetchTopic::default()
                    .with_topic(TopicName(sb(topic)))
                    .with_partitions(
                        positions
                            .iter()
                            .map(|&(p, offset)| {
                                fetch_request::FetchPartition::default()
                                    .with_partition(p)
                                    .with_fetch_offset(offset)
                                    .with_partition_max_bytes(options.partition_max_bytes)
                            })
                            .collect(),
                    )]),
        );
        let wait = Duration::from_millis(options.max_wait_ms.max(0) as u64);
        let (version, response) = self.send_to(leader, &request, wait)?;
        let Response::Fetch(r) = response else {
            unreachable!()
        };
        if version >= 7 {
            check(r.error_code, || format!("fetch from broker {leader}"), None)?;
        }
        let mut out = Vec::new();
        for p in r.responses.iter().flat_map(|t| &t.partitions) {
            let requested = positions
                .iter()
                .find(|(q, _)| *q == p.partition_index)
                .map_or(0, |(_, o)| *o);
            let mut records = Vec::new();
            if let Some(set) = &p.records {
                for batch in Batches::new(set.clone()) {
                    let (header, bytes) = batch?;
                    if header.is_control() {
                        continue;
                    }
                    let (_, batch_records) = decode_batch(&bytes)?;
                    records.extend(batch_records.into_iter().filter(|r| r.offset >= requested));
                }
            }
            out.push(PartitionFetch {
                partition: p.partition_index,
                error_code: p.error_code,
                high_watermark: p.high_watermark,
                last_stable_offset: p.last_stable_offset,
                log_start_offset: p.log_start_offset,
                records,
            });
        }
        Ok(out)
    }

    /// The group coordinator of `group`.
    pub fn find_coordinator(&mut self, group: &str) -> Result<BrokerInfo> {
        let request = Request::FindCoordinator(
            FindCoordinatorRequest::default()
                .with_key(sb(group))
                .with_key_type(0),
        );
        let (_, response) = self.bootstrap_send(|_| Ok(request.clone()), Duration::ZERO)?;
        let Response::FindCoordinator(r) = response else {
            unreachable!()
        };
        check(
            r.error_code,
            || format!("find coordinator of {group}"),
            r.error_message.as_deref(),
        )?;
        Ok(BrokerInfo {
            node_id: r.node_id.0,
            host: r.host.to_string(),
            port: r.port,
            rack: None,
        })
    }

    /// Groups known to every broker.
    pub fn list_groups(&mut self) -> Result<Vec<GroupListing>> {
        let nodes: Vec<i32> = self.brokers.keys().copied().collect();
        let mut out = Vec::new();
        for node in nodes {
            let (_, response) = self.send_to(
                node,
                &Request::ListGroups(ListGroupsRequest::default()),
                Duration::ZERO,
            )?;
            let Response::ListGroups(r) = response else {
                unreachable!()
            };
            check(
                r.error_code,
                || format!("list groups on broker {node}"),
                None,
            )?;
            out.extend(r.groups.iter().map(|g| GroupListing {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
            }));
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(out)
    }

    /// DescribeGroups on the group's coordinator.
    pub fn describe_group(&mut self, group: &str) -> Result<GroupDescription> {
        let coordinator = self.find_coordinator(group)?;
        let request = Request::DescribeGroups(
            DescribeGroupsRequest::default().with_groups(vec![GroupId(sb(group))]),
        );
        let (_, response) = self.send_to(coordinator.node_id, &request, Duration::ZERO)?;
        let Response::DescribeGroups(r) = response else {
            unreachable!()
        };
        let g = r
            .groups
            .first()
            .ok_or_else(|| ClientError::Protocol("DescribeGroups: empty answer".into()))?;
        check(
            g.error_code,
            || format!("describe group {group}"),
            g.error_message.as_deref(),
        )?;
        Ok(GroupDescription {
            group_id: g.group_id.0.to_string(),
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
            members: g
                .members
                .iter()
                .map(|m| GroupMember {
                    member_id: m.member_id.to_string(),
                    client_id: m.client_id.to_string(),
                    client_host: m.client_host.to_string(),
                })
                .collect(),
        })
    }

    /// Offsets committed by `group` for the partitions of `topic` (all partitions).
    pub fn committed_offsets(&mut self, group: &str, topic: &str) -> Result<Vec<CommittedOffset>> {
        let info = self.topic(topic)?;
        let coordinator = self.find_coordinator(group)?;
        let request = Request::OffsetFetch(
            OffsetFetchRequest::default()
                .with_group_id(GroupId(sb(group)))
                .with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(TopicName(sb(topic)))
                        .with_partition_indexes(
                            info.partitions.iter().map(|p| p.partition).collect(),
                        ),
                ])),
        );
        let (version, response) = self.send_to(coordinator.node_id, &request, Duration::ZERO)?;
        let Response::OffsetFetch(r) = response else {
            unreachable!()
        };
        if version >= 2 {
            check(r.error_code, || format!("offset fetch for {group}"), None)?;
        }
        let mut out = Vec::new();
        for t in &r.topics {
            for p in &t.partitions {
                check(
                    p.error_code,
                    || format!("offset fetch {group} {}-{}", t.name.0, p.partition_index),
                    None,
                )?;
                out.push(CommittedOffset {
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    metadata: p.metadata.as_ref().map(|m| m.to_string()),
                });
            }
        }
        out.sort_by_key(|o| o.partition);
        Ok(out)
    }
}
