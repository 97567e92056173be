//! The Kafka-facing broker: a node of shards, their connections, request handlers and metadata.

pub mod connection;
pub mod group;
pub mod handlers;
pub mod metadata;
pub mod node;
pub mod shard;
pub mod sync;
