//! Kafka-compatible key partitioning (murmur2).
