//! Workload files (TOML), in the spirit of OpenMessaging Benchmark workloads.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

pub const TOPICS_MAX: u32 = 64;
pub const PARTITIONS_PER_TOPIC_MAX: u32 = 10_000;
pub const MESSAGE_BYTES_MAX: u32 = 16 * 1024 * 1024;
pub const PRODUCERS_PER_TOPIC_MAX: u32 = 64;
pub const CONSUMERS_PER_SUBSCRIPTION_MAX: u32 = 64;
pub const SUBSCRIPTIONS_PER_TOPIC_MAX: u32 = 16;
pub const DURATION_S_MAX: u64 = 24 * 3600;
pub const PRODUCER_RATE_MAX: f64 = 10_000_000.0;

/// Payload bytes: `random` does not compress, `zeros` compresses to nothing,
/// `text` is random lowercase words (compresses roughly 2:1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    Random,
    Zeros,
    Text,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyDistribution {
    /// No key: librdkafka's sticky partitioner picks partitions.
    None,
    /// Keys cycle through `key_space` values, spreading records over partitions in turn.
    RoundRobin,
    /// Uniformly random keys.
    Random,
}

/// Producer settings that the tuner sweeps; anything else goes in `extra`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProducerSettings {
    #[serde(default = "default_acks")]
    pub acks: String,
    #[serde(default = "default_linger_ms")]
    pub linger_ms: f64,
    #[serde(default = "default_batch_size")]
    pub batch_size: u64,
    #[serde(default = "default_compression")]
    pub compression: String,
    #[serde(default)]
    pub idempotence: bool,
    /// Any other librdkafka producer property, passed through verbatim.
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

fn default_acks() -> String {
    "all".into()
}
fn default_linger_ms() -> f64 {
    5.0
}
fn default_batch_size() -> u64 {
    131_072
}
fn default_compression() -> String {
    "none".into()
}

impl Default for ProducerSettings {
    fn default() -> Self {
        ProducerSettings {
            acks: default_acks(),
            linger_ms: default_linger_ms(),
            batch_size: default_batch_size(),
            compression: default_compression(),
            idempotence: false,
            extra: BTreeMap::new(),
        }
    }
}

impl ProducerSettings {
    /// The librdkafka properties these settings stand for, in a stable order.
    pub fn librdkafka_properties(&self) -> Vec<(String, String)> {
        let mut props = vec![
            ("acks".to_string(), self.acks.clone()),
            ("linger.ms".to_string(), format_number(self.linger_ms)),
            ("batch.size".to_string(), self.batch_size.to_string()),
            ("compression.type".to_string(), self.compression.clone()),
            (
                "enable.idempotence".to_string(),
                self.idempotence.to_string(),
            ),
        ];
        for (k, v) in &self.extra {
            props.push((k.clone(), v.clone()));
        }
        props
    }

    /// The settings as a properties file for both client families: librdkafka's keys are
    /// the Java producer's, except that Java's `linger.ms` is whole milliseconds.
    pub fn properties_text(&self) -> String {
        let mut text = String::from(
            "# librdkafka (C/C++, confluent-kafka-*, rdkafka-rust, kcat -X) and the Java producer\n",
        );
        for (k, v) in self.librdkafka_properties() {
            text.push_str(&format!("{k}={v}\n"));
        }
        if self.linger_ms.fract() != 0.0 {
            let whole = self.linger_ms.ceil() as u64;
            text.push_str(&format!(
                "# Java: linger.ms={whole} (whole milliseconds, rounded up)\n"
            ));
        }
        text
    }

    /// The same settings as Java producer properties (`linger.ms` is an integer there).
    pub fn java_properties(&self) -> Vec<(String, String)> {
        let mut props = self.librdkafka_properties();
        for (k, v) in props.iter_mut() {
            if k == "linger.ms" {
                *v = (self.linger_ms.ceil() as u64).to_string();
            }
        }
        props
    }
}

pub fn format_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub topics: u32,
    pub partitions_per_topic: u32,
    #[serde(default = "one_i32")]
    pub replication_factor: i32,
    pub message_size: u32,
    #[serde(default = "default_payload")]
    pub payload: Payload,
    #[serde(default = "default_keys")]
    pub key_distribution: KeyDistribution,
    /// Distinct keys for `round_robin`.
    #[serde(default = "default_key_space")]
    pub key_space: u64,
    pub producers_per_topic: u32,
    #[serde(default = "one")]
    pub subscriptions_per_topic: u32,
    pub consumers_per_subscription: u32,
    /// Total target rate in messages/s over all producers; 0 = as fast as possible (max-rate).
    pub producer_rate: f64,
    #[serde(default)]
    pub warmup_s: u64,
    pub duration_s: u64,
    /// Messages handed to a producer but not yet acknowledged, per producer.
    #[serde(default = "default_in_flight")]
    pub in_flight_messages_max: u64,
    #[serde(default)]
    pub producer: ProducerSettings,
    /// How consumers get partitions: `manual` (each consumer assign()s a fixed share,
    /// no group coordinator needed) or `group` (subscribe() in one group per subscription).
    #[serde(default = "default_assignment")]
    pub consumer_assignment: ConsumerAssignment,
    /// Extra librdkafka consumer properties.
    #[serde(default)]
    pub consumer: BTreeMap<String, String>,
    /// Topic configs sent with CreateTopics (e.g. `"flush.messages" = "1"`).
    #[serde(default)]
    pub topic_config: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsumerAssignment {
    Manual,
    Group,
}

fn default_assignment() -> ConsumerAssignment {
    ConsumerAssignment::Manual
}

fn default_payload() -> Payload {
    Payload::Random
}
fn default_keys() -> KeyDistribution {
    KeyDistribution::None
}
fn default_key_space() -> u64 {
    1024
}
fn one() -> u32 {
    1
}
fn one_i32() -> i32 {
    1
}
fn default_in_flight() -> u64 {
    100_000
}

impl Workload {
    pub fn from_path(path: &Path) -> Result<Workload, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read workload {}: {e}", path.display()))?;
        Workload::from_toml(&text).map_err(|e| format!("workload {}: {e}", path.display()))
    }

    pub fn from_toml(text: &str) -> Result<Workload, String> {
        let w: Workload = toml::from_str(text).map_err(|e| e.to_string())?;
        w.validate()?;
        Ok(w)
    }

    pub fn is_max_rate(&self) -> bool {
        self.producer_rate == 0.0
    }

    pub fn producers(&self) -> u32 {
        self.topics * self.producers_per_topic
    }

    pub fn consumers(&self) -> u32 {
        self.topics * self.subscriptions_per_topic * self.consumers_per_subscription
    }

    pub fn validate(&self) -> Result<(), String> {
        fn range<T: PartialOrd + std::fmt::Display>(
            name: &str,
            v: T,
            lo: T,
            hi: T,
        ) -> Result<(), String> {
            if v < lo || v > hi {
                return Err(format!("{name} = {v} is outside [{lo}, {hi}]"));
            }
            Ok(())
        }
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(format!(
                "name {:?} must be non-empty and use only [A-Za-z0-9._-] (it becomes part of topic names)",
                self.name
            ));
        }
        range("topics", self.topics, 1, TOPICS_MAX)?;
        range(
            "partitions_per_topic",
            self.partitions_per_topic,
            1,
            PARTITIONS_PER_TOPIC_MAX,
        )?;
        range("replication_factor", self.replication_factor, 1, 16)?;
        range("message_size", self.message_size, 1, MESSAGE_BYTES_MAX)?;
        range(
            "producers_per_topic",
            self.producers_per_topic,
            1,
            PRODUCERS_PER_TOPIC_MAX,
        )?;
        range(
            "subscriptions_per_topic",
            self.subscriptions_per_topic,
            0,
            SUBSCRIPTIONS_PER_TOPIC_MAX,
        )?;
        range(
            "consumers_per_subscription",
            self.consumers_per_subscription,
            0,
            CONSUMERS_PER_SUBSCRIPTION_MAX,
        )?;
        if !self.producer_rate.is_finite() {
            return Err("producer_rate must be a finite number".into());
        }
        range("producer_rate", self.producer_rate, 0.0, PRODUCER_RATE_MAX)?;
        range("duration_s", self.duration_s, 1, DURATION_S_MAX)?;
        range("warmup_s", self.warmup_s, 0, DURATION_S_MAX)?;
        range("key_space", self.key_space, 1, u64::MAX)?;
        range(
            "in_flight_messages_max",
            self.in_flight_messages_max,
            1,
            10_000_000,
        )?;
        let p = &self.producer;
        if !["0", "1", "all", "-1"].contains(&p.acks.as_str()) {
            return Err(format!(
                "producer.acks = {:?}: expected 0, 1 or all",
                p.acks
            ));
        }
        if !p.linger_ms.is_finite() {
            return Err("producer.linger_ms must be a finite number".into());
        }
        range("producer.linger_ms", p.linger_ms, 0.0, 900_000.0)?;
        range("producer.batch_size", p.batch_size, 1, 2_147_483_647)?;
        if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&p.compression.as_str()) {
            return Err(format!(
                "producer.compression = {:?}: expected none, gzip, snappy, lz4 or zstd",
                p.compression
            ));
        }
        Ok(())
    }
}

/// Applies `key=value` producer overrides (`acks`, `linger.ms`, `batch.size`,
/// `compression.type`/`compression`, `enable.idempotence`; anything else goes to `extra`).
pub fn apply_producer_sets(p: &mut ProducerSettings, sets: &[String]) -> Result<(), String> {
    for s in sets {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| format!("--set {s:?}: expected KEY=VALUE"))?;
        let (k, v) = (k.trim(), v.trim());
        let num = |what: &str| -> Result<f64, String> {
            v.parse::<f64>()
                .map_err(|_| format!("{what} = {v:?} is not a number"))
        };
        match k {
            "acks" => p.acks = v.to_string(),
            "linger.ms" | "linger_ms" => p.linger_ms = num(k)?,
            "batch.size" | "batch_size" => {
                p.batch_size = v
                    .parse()
                    .map_err(|_| format!("{k} = {v:?} is not a byte count"))?
            }
            "compression.type" | "compression" => p.compression = v.to_string(),
            "enable.idempotence" | "idempotence" => {
                p.idempotence = v
                    .parse()
                    .map_err(|_| format!("{k} = {v:?}: expected true or false"))?
            }
            _ => {
                p.extra.insert(k.to_string(), v.to_string());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
name = "small"
topics = 1
partitions_per_topic = 4
message_size = 1024
producers_per_topic = 1
consumers_per_subscription = 1
producer_rate = 1000
duration_s = 10
[producer]
linger_ms = 1
"#;

    #[test]
    fn parses_with_defaults() {
        let w = Workload::from_toml(SMALL).unwrap();
        assert_eq!(w.subscriptions_per_topic, 1);
        assert_eq!(w.producer.acks, "all");
        assert_eq!(w.producer.linger_ms, 1.0);
        assert_eq!(w.payload, Payload::Random);
        assert!(!w.is_max_rate());
        assert_eq!(w.consumers(), 1);
    }

    #[test]
    fn rejects_bad_values_with_a_message() {
        let bad = SMALL.replace("partitions_per_topic = 4", "partitions_per_topic = 0");
        let err = Workload::from_toml(&bad).unwrap_err();
        assert!(err.contains("partitions_per_topic"), "{err}");
        let bad = SMALL.replace("linger_ms = 1", "linger_ms = 1\ncompression = \"brotli\"");
        let err = Workload::from_toml(&bad).unwrap_err();
        assert!(err.contains("compression"), "{err}");
        let bad = SMALL.replace("topics = 1", "topics = 1\nbogus = 3");
        assert!(Workload::from_toml(&bad).is_err());
        let bad = SMALL.replace("name = \"small\"", "name = \"a b\"");
        assert!(Workload::from_toml(&bad).unwrap_err().contains("name"));
    }

    #[test]
    fn java_properties_round_linger_up() {
        let p = ProducerSettings {
            linger_ms: 0.5,
            ..Default::default()
        };
        let j = p.java_properties();
        assert!(j.contains(&("linger.ms".into(), "1".into())));
        let l = p.librdkafka_properties();
        assert!(l.contains(&("linger.ms".into(), "0.5".into())));
        let text = p.properties_text();
        assert!(text.contains("\nlinger.ms=0.5\n"), "{text}");
        assert!(text.contains("# Java: linger.ms=1 "), "{text}");
        let whole = ProducerSettings::default().properties_text();
        assert!(!whole.contains("# Java:"), "{whole}");
    }

    #[test]
    fn shipped_workloads_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) == Some("toml") {
                let w = Workload::from_path(&path).unwrap();
                assert_eq!(
                    path.file_stem().unwrap().to_str().unwrap(),
                    w.name,
                    "file name and workload name differ"
                );
                n += 1;
            }
        }
        assert!(
            n >= 6,
            "expected the standard workloads in {}",
            dir.display()
        );
    }
}
