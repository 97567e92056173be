//! Shoal: a Kafka-compatible, thread-per-core message broker on io_uring.
//!
//! See `docs/ARCHITECTURE.md` for the code map and the invariants.

pub mod broker;
pub mod cli;
pub mod client;
pub mod config;
pub mod io;
pub mod partitioner;
pub mod protocol;
pub mod storage;
pub mod sync;
