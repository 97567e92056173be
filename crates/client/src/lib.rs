//! A small blocking Kafka client for Shoal's CLI (in the spirit of `rpk`): std `TcpStream`,
//! the codecs of [`shoal_protocol`], a timeout on every socket operation and typed errors.
//!
//! - [`Connection`]: one broker socket, ApiVersions negotiation, request/response.
//! - [`Client`]: bootstrap, metadata, routing to partition leaders and the controller, admin
//!   calls (topics, configs), ListOffsets, Produce, Fetch and group lookups.
//! - [`Consumer`]: reads chosen partitions from a start position (no group).
//! - [`Producer`]: batches records per partition (murmur2 for keys, sticky or round-robin for
//!   null keys) with `linger` and `batch_bytes_max`, like Kafka's producer.
//! - [`GroupConsumer`]: a classic-protocol consumer group member (range assignor, heartbeats,
//!   rejoin on rebalance, offset commits), its state in [`Membership`].

mod cluster;
mod connection;
mod consumer;
mod group;
mod group_consumer;
mod producer;

pub use cluster::*;
pub use connection::*;
pub use consumer::*;
pub use group::*;
pub use group_consumer::*;
pub use producer::*;

use std::time::Duration;

use kafka_protocol::messages::ApiKey;

use shoal_protocol::errors;
use shoal_protocol::frame::FrameError;
use shoal_protocol::records::RecordError;
use shoal_protocol::response::{DecodeError, EncodeError};

/// Client settings. Every limit is explicit.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Bootstrap brokers, `host:port`, tried in order.
    pub brokers: Vec<String>,
    pub client_id: String,
    /// Connect, read and write timeout of each socket operation (server-side waits such as a
    /// Fetch's `max_wait_ms` are added to the read timeout of that request).
    pub socket_timeout: Duration,
    /// Timeout the broker is given for Produce (acks=all), CreateTopics and DeleteTopics.
    pub request_timeout_ms: i32,
    /// Largest response frame accepted.
    pub response_bytes_max: usize,
    /// Retries after a retriable error (leader moved, topic being created), with metadata
    /// refresh and `retry_backoff` between attempts.
    pub retries_max: u32,
    pub retry_backoff: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            brokers: vec!["127.0.0.1:9092".to_string()],
            client_id: "shoal-cli".to_string(),
            socket_timeout: Duration::from_secs(10),
            request_timeout_ms: 30_000,
            response_bytes_max: 256 << 20,
            retries_max: 5,
            retry_backoff: Duration::from_millis(100),
        }
    }
}

/// Everything that can go wrong talking to a broker.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{broker}: {source}")]
    Io {
        broker: String,
        source: std::io::Error,
    },
    #[error("{broker}: timed out during {operation}")]
    Timeout {
        broker: String,
        operation: &'static str,
    },
    #[error("{broker}: connection closed by the broker")]
    Closed { broker: String },
    #[error("could not connect to any broker of {brokers:?}: {last}")]
    NoBroker {
        brokers: Vec<String>,
        last: Box<ClientError>,
    },
    #[error("{broker}: bad response frame: {source}")]
    Frame { broker: String, source: FrameError },
    #[error("{broker}: response correlation id {got}, expected {expected}")]
    Correlation {
        broker: String,
        expected: i32,
        got: i32,
    },
    #[error("{broker}: no common version of {api_key:?} (broker {broker_range:?}, client {client_min}..={client_max})")]
    Unsupported {
        broker: String,
        api_key: ApiKey,
        broker_range: Option<(i16, i16)>,
        client_min: i16,
        client_max: i16,
    },
    #[error("{0}")]
    Decode(#[from] DecodeError),
    #[error("{0}")]
    Encode(#[from] EncodeError),
    #[error("{context}: {} ({code}){}", errors::name(*code), message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kafka {
        code: i16,
        context: String,
        message: Option<String>,
    },
    #[error("records: {0}")]
    Records(#[from] RecordError),
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    #[error("topic {topic} has no partition {partition}")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("broker {0} is not in the cluster metadata")]
    UnknownBroker(i32),
    #[error("{0}")]
    Protocol(String),
    #[error("invalid argument: {0}")]
    Invalid(String),
}

impl ClientError {
    /// The Kafka error code, if the broker answered with one.
    pub fn code(&self) -> Option<i16> {
        match self {
            ClientError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Worth a metadata refresh and another try.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Kafka { code, .. } => errors::is_retriable(*code),
            ClientError::Io { .. } | ClientError::Closed { .. } | ClientError::Timeout { .. } => {
                true
            }
            _ => false,
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// `Err(Kafka)` unless `code` is NONE.
pub(crate) fn check(
    code: i16,
    context: impl FnOnce() -> String,
    message: Option<&str>,
) -> Result<()> {
    if code == errors::NONE {
        return Ok(());
    }
    Err(ClientError::Kafka {
        code,
        context: context(),
        message: message.map(str::to_string),
    })
}
