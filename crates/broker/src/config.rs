//! Node configuration and limits.
//!
//! Everything has a default so `shoal serve` needs no file. A TOML file (`--config`) can set any
//! field below; topic defaults use Kafka's names (`retention.ms`, `segment.bytes`, ...).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use shoal_storage::{FlushPolicy, LogConfig};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Kafka's `node.id`: this node's broker id and Raft id (>= 1).
    pub node_id: i32,
    /// KRaft's `controller.quorum.voters`: `"1@host:port,2@host:port,3@host:port"` (1, 3 or 5
    /// voters, each at its `cluster_listen` address). Empty: a quorum of one (this node).
    pub controller_quorum_voters: String,
    /// Node-to-node listener carrying `ClusterMessage` frames, `HOST:PORT`. Default: this node's
    /// address in `controller_quorum_voters`; none for a quorum of one.
    pub cluster_listen: Option<String>,
    /// Kafka's `broker.rack`.
    pub rack: Option<String>,
    /// A controller request (CreateTopics, ...) not committed by then fails REQUEST_TIMED_OUT.
    pub controller_request_timeout_ms: u64,
    /// Broker heartbeats to the controller / silence after which it fences a broker.
    pub broker_heartbeat_interval_ms: u64,
    pub broker_session_timeout_ms: u64,
    /// Requests queued for the metadata driver thread.
    pub metadata_queue_max: usize,
    /// Cluster messages queued per peer connection; more are dropped (Raft retries).
    pub cluster_send_queue_max: usize,
    /// Largest frame accepted from a peer on `cluster_listen`.
    pub cluster_frame_bytes_max: usize,
    /// Kafka's `replica.lag.time.max.ms`: an in-sync follower not caught up for this long is
    /// dropped from the ISR.
    pub replica_lag_time_max_ms: u64,
    /// Kafka's `auto.leader.rebalance.enable` and how often the controller checks.
    pub auto_leader_rebalance_enable: bool,
    pub leader_imbalance_check_interval_ms: u64,
    pub data_dir: PathBuf,
    /// Kafka listener, `HOST:PORT`.
    pub listen: String,
    /// Admin listener (`GET /metrics`), `HOST:PORT`; empty: none. Redpanda's port.
    pub admin_listen: String,
    /// Address given to clients in Metadata; defaults to `listen`.
    pub advertise: Option<String>,
    /// Shards (one pinned executor per core). Default: every available core.
    pub cores: Option<usize>,
    /// Largest request frame accepted (Kafka's `socket.request.max.bytes`).
    pub request_bytes_max: usize,
    /// Open client connections per node; more are closed on accept.
    pub connections_max: usize,
    /// Requests a single connection may have in flight before reading pauses (librdkafka
    /// sends one Produce request per partition, so many partitions mean many small requests).
    pub connection_in_flight_max: usize,
    /// Request bytes a single connection may have in flight before reading pauses (one larger
    /// request is still admitted when nothing else is in flight).
    pub connection_in_flight_bytes_max: usize,
    /// Upper bound on a Fetch's `max_wait_ms`.
    pub fetch_wait_ms_max: u64,
    /// Upper bound on a Fetch response's size (Kafka's `fetch.max.bytes`).
    pub fetch_bytes_max: usize,
    /// Fetch record bytes go file to socket with sendfile(2), without a user-space copy;
    /// false reads them into memory and writes them (the path TLS would need).
    pub fetch_zero_copy: bool,
    /// Depth of each cross-shard message queue.
    pub shard_queue_depth_max: usize,
    /// Partitions in one topic.
    pub topic_partitions_max: i32,
    /// Kafka's `auto.create.topics.enable`.
    pub auto_create_topics_enable: bool,
    /// Kafka's `num.partitions`: partitions of an auto-created topic.
    pub num_partitions: i32,
    /// Kafka's `log.retention.check.interval.ms`.
    pub retention_check_interval_ms: u64,
    /// Kafka's `log.cleaner.io.max.bytes.per.second`: each shard's cleaner reads and writes
    /// at most this many bytes per second.
    pub log_cleaner_io_bytes_per_second_max: u64,
    /// Kafka's `log.cleaner.backoff.ms`: how often a shard's cleaner looks for work.
    pub log_cleaner_backoff_ms: u64,
    /// Topic config defaults, Kafka names (e.g. `"retention.ms" = "86400000"`).
    pub topic_defaults: BTreeMap<String, String>,
    /// Partitions of `__consumer_offsets` when it is created (Kafka's `offsets.topic.num.partitions`).
    pub offsets_topic_num_partitions: i32,
    /// Kafka's `offsets.topic.replication.factor` (3), capped by the live brokers at creation.
    pub offsets_topic_replication_factor: i16,
    /// Kafka's `group.initial.rebalance.delay.ms` (Kafka: 3000; smaller here so groups form fast).
    pub group_initial_rebalance_delay_ms: i64,
    /// Kafka's `group.min.session.timeout.ms` / `group.max.session.timeout.ms`.
    pub group_min_session_timeout_ms: i32,
    pub group_max_session_timeout_ms: i32,
    /// Kafka's `group.max.size`.
    pub group_members_max: usize,
    /// Kafka's `offsets.retention.minutes`: offsets of an empty group expire after this.
    pub offsets_retention_minutes: i64,
    /// Kafka's `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval_ms: i64,
    /// Kafka's `offset.metadata.max.bytes`.
    pub offset_metadata_bytes_max: usize,
    /// Group records waiting to be appended per coordinator partition; more are refused.
    pub group_writes_queued_max: usize,
    /// How often group timers (sessions, rebalances) are checked.
    pub group_tick_interval_ms: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            node_id: 1,
            controller_quorum_voters: String::new(),
            cluster_listen: None,
            rack: None,
            controller_request_timeout_ms: 5_000,
            broker_heartbeat_interval_ms:
                shoal_cluster::metadata::controller::BROKER_HEARTBEAT_INTERVAL_MS_DEFAULT,
            broker_session_timeout_ms:
                shoal_cluster::metadata::controller::BROKER_SESSION_TIMEOUT_MS_DEFAULT,
            metadata_queue_max: crate::metadata::METADATA_QUEUE_MAX,
            cluster_send_queue_max: 4_096,
            cluster_frame_bytes_max: shoal_cluster::MESSAGE_BYTES_MAX,
            replica_lag_time_max_ms: 30_000,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_ms:
                shoal_cluster::metadata::controller::LEADER_IMBALANCE_CHECK_INTERVAL_MS_DEFAULT,
            data_dir: PathBuf::from("./shoal-data"),
            listen: "127.0.0.1:9092".to_string(),
            admin_listen: "127.0.0.1:9644".to_string(),
            advertise: None,
            cores: None,
            request_bytes_max: 100 * 1024 * 1024,
            connections_max: 10_000,
            connection_in_flight_max: 1024,
            connection_in_flight_bytes_max: 32 * 1024 * 1024,
            fetch_wait_ms_max: 30_000,
            fetch_bytes_max: 55 * 1024 * 1024,
            fetch_zero_copy: true,
            shard_queue_depth_max: 1024,
            topic_partitions_max: 10_000,
            auto_create_topics_enable: true,
            num_partitions: 1,
            retention_check_interval_ms: 300_000,
            log_cleaner_io_bytes_per_second_max: 64 << 20,
            log_cleaner_backoff_ms: 15_000,
            topic_defaults: BTreeMap::new(),
            offsets_topic_replication_factor: 3,
            offsets_topic_num_partitions: 50,
            group_initial_rebalance_delay_ms: 100,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            group_members_max: 1_000,
            offsets_retention_minutes: 7 * 24 * 60,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_bytes_max: 4_096,
            group_writes_queued_max: 4_096,
            group_tick_interval_ms: 50,
        }
    }
}

impl NodeConfig {
    pub fn load(path: &std::path::Path) -> Result<NodeConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let config: NodeConfig =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        config.validate()?;
        Ok(config)
    }

    /// `controller_quorum_voters` parsed: (node id, cluster address) per voter.
    pub fn voters(&self) -> Result<Vec<(u64, String)>, String> {
        let mut out: Vec<(u64, String)> = Vec::new();
        for item in self
            .controller_quorum_voters
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let (id, addr) = item
                .split_once('@')
                .ok_or_else(|| format!("controller_quorum_voters: '{item}' is not ID@HOST:PORT"))?;
            let id: u64 = id
                .parse()
                .ok()
                .filter(|&i| i >= 1 && i <= i32::MAX as u64)
                .ok_or_else(|| format!("controller_quorum_voters: bad node id in '{item}'"))?;
            if !addr.contains(':') {
                return Err(format!("controller_quorum_voters: '{item}' has no port"));
            }
            if out.iter().any(|(i, _)| *i == id) {
                return Err(format!("controller_quorum_voters: node {id} named twice"));
            }
            out.push((id, addr.to_string()));
        }
        if !out.is_empty() && ![1, 3, 5].contains(&out.len()) {
            return Err(format!(
                "controller_quorum_voters must name 1, 3 or 5 voters, got {}",
                out.len()
            ));
        }
        if !out.is_empty() && !out.iter().any(|(i, _)| *i == self.node_id as u64) {
            return Err(format!(
                "node_id {} is not one of controller_quorum_voters",
                self.node_id
            ));
        }
        Ok(out)
    }

    /// The node-to-node listener: `cluster_listen`, else this node's voter address.
    pub fn cluster_listen_addr(&self) -> Result<Option<String>, String> {
        if let Some(l) = &self.cluster_listen {
            return Ok(Some(l.clone()));
        }
        Ok(self
            .voters()?
            .into_iter()
            .find(|(i, _)| *i == self.node_id as u64)
            .filter(|_| !self.controller_quorum_voters.is_empty())
            .map(|(_, a)| a))
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.node_id < 1 {
            return Err(format!(
                "node_id must be >= 1 (it is also the Raft id), got {}",
                self.node_id
            ));
        }
        self.voters()?;
        if self.controller_request_timeout_ms == 0
            || self.broker_heartbeat_interval_ms == 0
            || self.broker_session_timeout_ms <= self.broker_heartbeat_interval_ms
        {
            return Err("controller_request_timeout_ms and broker_heartbeat_interval_ms must be > 0, broker_session_timeout_ms > broker_heartbeat_interval_ms".into());
        }
        if self.metadata_queue_max == 0
            || self.cluster_send_queue_max == 0
            || self.cluster_frame_bytes_max < 1024
            || self.cluster_frame_bytes_max > shoal_cluster::MESSAGE_BYTES_MAX
        {
            return Err(format!(
                "metadata_queue_max and cluster_send_queue_max must be > 0, cluster_frame_bytes_max in 1024..={}",
                shoal_cluster::MESSAGE_BYTES_MAX
            ));
        }
        if self.request_bytes_max < 1024 {
            return Err("request_bytes_max must be at least 1024".into());
        }
        if self.connection_in_flight_max == 0
            || self.connection_in_flight_bytes_max == 0
            || self.shard_queue_depth_max == 0
        {
            return Err("connection_in_flight_max, connection_in_flight_bytes_max and shard_queue_depth_max must be > 0".into());
        }
        if self.num_partitions < 1 || self.num_partitions > self.topic_partitions_max {
            return Err("num_partitions must be in 1..=topic_partitions_max".into());
        }
        if self.offsets_topic_num_partitions < 1
            || self.offsets_topic_num_partitions > self.topic_partitions_max
        {
            return Err("offsets_topic_num_partitions must be in 1..=topic_partitions_max".into());
        }
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms
            || self.group_members_max == 0
        {
            return Err("group_min_session_timeout_ms must be <= group_max_session_timeout_ms, group_members_max > 0".into());
        }
        if self.group_initial_rebalance_delay_ms < 0 || self.offsets_retention_minutes < 1 {
            return Err(
                "group_initial_rebalance_delay_ms must be >= 0, offsets_retention_minutes >= 1"
                    .into(),
            );
        }
        topic_log_config(&self.topic_defaults, &BTreeMap::new()).map(|_| ())
    }

    pub fn advertised(&self) -> &str {
        self.advertise.as_deref().unwrap_or(&self.listen)
    }
}

/// Topic config keys Shoal understands, with Kafka's defaults.
pub const TOPIC_CONFIG_DEFAULTS: &[(&str, &str)] = &[
    ("cleanup.policy", "delete"),
    ("delete.retention.ms", "86400000"),
    ("flush.messages", "9223372036854775807"),
    ("flush.ms", "9223372036854775807"),
    ("index.interval.bytes", "4096"),
    ("max.compaction.lag.ms", "9223372036854775807"),
    ("max.message.bytes", "1048588"),
    ("message.timestamp.type", "CreateTime"),
    ("min.cleanable.dirty.ratio", "0.5"),
    ("min.compaction.lag.ms", "0"),
    ("min.insync.replicas", "1"),
    ("retention.bytes", "-1"),
    ("retention.ms", "604800000"),
    ("segment.bytes", "1073741824"),
    ("segment.index.bytes", "10485760"),
    ("segment.ms", "604800000"),
];

/// Effective value of one topic config: the topic's own, else the node default, else Kafka's.
pub fn topic_config_value<'a>(
    key: &str,
    node_defaults: &'a BTreeMap<String, String>,
    topic: &'a BTreeMap<String, String>,
) -> Option<(&'a str, ConfigSource)> {
    if let Some(v) = topic.get(key) {
        return Some((v.as_str(), ConfigSource::Topic));
    }
    if let Some(v) = node_defaults.get(key) {
        return Some((v.as_str(), ConfigSource::Node));
    }
    TOPIC_CONFIG_DEFAULTS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| (*v, ConfigSource::Default))
}

/// A topic's `min.insync.replicas` (validated as a positive integer when set).
pub fn min_insync_replicas(
    node_defaults: &BTreeMap<String, String>,
    topic: &BTreeMap<String, String>,
) -> usize {
    topic_config_value("min.insync.replicas", node_defaults, topic)
        .and_then(|(v, _)| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    Topic,
    Node,
    Default,
}

/// Checks one topic config entry; returns a message naming the problem.
pub fn validate_topic_config(key: &str, value: &str) -> Result<(), String> {
    let int = |min: i64| -> Result<(), String> {
        match value.parse::<i64>() {
            Ok(v) if v >= min => Ok(()),
            _ => Err(format!("{key}={value}: expected an integer >= {min}")),
        }
    };
    match key {
        "cleanup.policy" => cleanup_policy(value).map(|_| ()),
        "min.cleanable.dirty.ratio" => match value.parse::<f64>() {
            Ok(v) if (0.0..=1.0).contains(&v) => Ok(()),
            _ => Err(format!("{key}={value}: expected a number in [0, 1]")),
        },
        "delete.retention.ms" | "min.compaction.lag.ms" => int(0),
        "max.compaction.lag.ms" => int(1),
        "message.timestamp.type" => match value {
            "CreateTime" | "LogAppendTime" => Ok(()),
            _ => Err(format!(
                "{key}={value}: expected CreateTime or LogAppendTime"
            )),
        },
        "retention.ms" | "retention.bytes" => int(-1),
        "segment.bytes" => int(14),
        "segment.ms" | "flush.ms" | "flush.messages" => int(1),
        "index.interval.bytes" => int(0),
        "segment.index.bytes" => int(8),
        "max.message.bytes" => int(0),
        "min.insync.replicas" => int(1),
        _ => Err(format!("unknown topic config '{key}'")),
    }
}

/// `cleanup.policy`: (delete, compact) from `delete`, `compact` or both, comma separated.
pub fn cleanup_policy(value: &str) -> Result<(bool, bool), String> {
    let (mut delete, mut compact) = (false, false);
    for part in value.split(',').map(str::trim) {
        match part {
            "delete" => delete = true,
            "compact" => compact = true,
            _ => {
                return Err(format!(
                    "cleanup.policy={value}: expected delete, compact or compact,delete"
                ))
            }
        }
    }
    Ok((delete, compact))
}

/// Builds the storage configuration of a topic from its configs over the node defaults.
pub fn topic_log_config(
    node_defaults: &BTreeMap<String, String>,
    topic: &BTreeMap<String, String>,
) -> Result<LogConfig, String> {
    for (k, v) in node_defaults.iter().chain(topic.iter()) {
        validate_topic_config(k, v)?;
    }
    let get = |key: &str| -> i64 {
        let (v, _) = topic_config_value(key, node_defaults, topic).expect("known key");
        v.parse::<i64>().expect("validated")
    };
    let explicit = |key: &str| topic.contains_key(key) || node_defaults.contains_key(key);
    let flush = if explicit("flush.ms") || explicit("flush.messages") {
        FlushPolicy::Interval {
            flush_ms: get("flush.ms") as u64,
            flush_messages: get("flush.messages") as u64,
        }
    } else {
        FlushPolicy::SyncBeforeAck
    };
    let timestamp_type = topic_config_value("message.timestamp.type", node_defaults, topic)
        .map(|(v, _)| v)
        .unwrap_or("CreateTime");
    let text = |key: &str| -> &str {
        topic_config_value(key, node_defaults, topic)
            .map(|(v, _)| v)
            .expect("known key")
    };
    let (cleanup_delete, cleanup_compact) = cleanup_policy(text("cleanup.policy"))?;
    let ratio: f64 = text("min.cleanable.dirty.ratio")
        .parse()
        .expect("validated");
    Ok(LogConfig {
        cleanup_delete,
        cleanup_compact,
        min_cleanable_dirty_ratio_permille: (ratio * 1000.0).round() as u32,
        min_compaction_lag_ms: get("min.compaction.lag.ms"),
        max_compaction_lag_ms: get("max.compaction.lag.ms"),
        delete_retention_ms: get("delete.retention.ms"),
        segment_bytes: get("segment.bytes") as u64,
        segment_ms: get("segment.ms") as u64,
        index_interval_bytes: get("index.interval.bytes").min(u32::MAX as i64) as u32,
        segment_index_bytes: get("segment.index.bytes").min(u32::MAX as i64) as u32,
        retention_ms: get("retention.ms"),
        retention_bytes: get("retention.bytes"),
        max_message_bytes: get("max.message.bytes").min(u32::MAX as i64) as u32,
        flush,
        log_append_time: timestamp_type == "LogAppendTime",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_sync_before_ack() {
        let cfg = topic_log_config(&BTreeMap::new(), &BTreeMap::new()).unwrap();
        assert!(matches!(cfg.flush, FlushPolicy::SyncBeforeAck));
        assert_eq!(cfg.segment_bytes, 1 << 30);
        assert_eq!(cfg.retention_ms, 604_800_000);
    }

    #[test]
    fn topic_overrides_node_and_flush_ms_selects_interval() {
        let node: BTreeMap<String, String> =
            [("retention.ms".to_string(), "1000".to_string())].into();
        let topic: BTreeMap<String, String> = [("flush.ms".to_string(), "50".to_string())].into();
        let cfg = topic_log_config(&node, &topic).unwrap();
        assert_eq!(cfg.retention_ms, 1000);
        assert!(matches!(
            cfg.flush,
            FlushPolicy::Interval { flush_ms: 50, .. }
        ));
    }

    #[test]
    fn bad_configs_are_named() {
        assert!(validate_topic_config("retention.ms", "soon")
            .unwrap_err()
            .contains("retention.ms"));
        assert!(validate_topic_config("cleanup.policy", "compact").is_ok());
        assert!(validate_topic_config("cleanup.policy", "compact,delete").is_ok());
        assert!(validate_topic_config("cleanup.policy", "shred").is_err());
        assert!(validate_topic_config("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(validate_topic_config("no.such.key", "1")
            .unwrap_err()
            .contains("unknown"));
    }

    #[test]
    fn cleanup_policy_and_compaction_knobs_reach_the_log() {
        let cfg = topic_log_config(&BTreeMap::new(), &BTreeMap::new()).unwrap();
        assert!(cfg.cleanup_delete && !cfg.cleanup_compact);
        assert_eq!(cfg.min_cleanable_dirty_ratio_permille, 500);
        assert_eq!(cfg.delete_retention_ms, 86_400_000);
        assert_eq!(cfg.max_compaction_lag_ms, i64::MAX);
        let topic: BTreeMap<String, String> = [
            ("cleanup.policy", "compact"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("delete.retention.ms", "100"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let cfg = topic_log_config(&BTreeMap::new(), &topic).unwrap();
        assert!(!cfg.cleanup_delete && cfg.cleanup_compact);
        assert_eq!(cfg.min_cleanable_dirty_ratio_permille, 10);
        assert_eq!(cfg.delete_retention_ms, 100);
    }

    #[test]
    fn default_node_config_is_valid() {
        NodeConfig::default().validate().unwrap();
    }
}
