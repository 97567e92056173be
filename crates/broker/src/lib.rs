//! The Kafka-facing broker: a node of shards, their connections, request handlers and metadata.

pub mod admin;
pub mod config;
pub mod connection;
pub mod context;
pub mod errors;
pub mod group;
pub mod handlers;
pub mod io;
pub mod metadata;
pub mod metrics;
pub mod node;
pub mod partition;
pub mod replica;
pub mod replication;
pub mod shard;
