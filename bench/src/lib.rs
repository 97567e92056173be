//! Shoal benchmark kit: OpenMessaging-style workloads against any Kafka-compatible broker.
//!
//! The scheduling and coordinated-omission logic ([`schedule`]) and the statistics
//! ([`stats`]) are plain state machines; [`kafka`] is the librdkafka edge.

pub mod broker_metrics;
pub mod compare;
pub mod kafka;
pub mod machine;
pub mod plot;
pub mod report;
pub mod result;
pub mod schedule;
pub mod stats;
pub mod workload;
