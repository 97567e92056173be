//! Shoal's cluster metadata: KRaft-style records, the immutable [`MetadataImage`] they build, and
//! the active controller's deterministic state machine ([`Controller`]).
//!
//! Everything here is pure data and pure functions of their inputs (`now_ms` is passed in):
//! no I/O, no clocks, no threads, no randomness. Errors are typed; the broker maps them to Kafka
//! error codes.
//!
//! Architecture invariant: this crate knows nothing of Raft, the network, files, the `shoal`
//! broker, or Kafka's wire protocol and error codes.

pub mod controller;
pub mod image;
pub mod placement;
pub mod record;

pub type BrokerId = i32;
pub type PartitionId = i32;

pub use controller::{
    ConfigOp, Controller, ControllerConfig, ControllerError, ControllerReply, ControllerRequest,
    Decision, NewTopic,
};
pub use image::{ApplyError, BrokerRegistration, BrokerState, MetadataImage, TopicImage};
pub use record::{
    DecodeError, EncodeError, Endpoints, MetadataRecord, PartitionChangeRecord, PartitionRecord,
    PartitionState, RecordBatch, RegisterBrokerRecord, TopicRecord, NO_LEADER,
};

#[cfg(test)]
mod tests;
