//! Shoal's per-node cluster metadata, I/O-free: [`MetadataNode`] combines a Raft member
//! (shoal-raft), the active controller when this node is the Raft leader (shoal-metadata), the
//! applied [`MetadataImage`](shoal_metadata::MetadataImage), and the node's broker duties.
//!
//! The driver (the broker's metadata shard, or the simulator) owns time, sockets and disk:
//! `tick(now_ms)`, `receive(from, msg)`, `client_request(req)`; then `poll_ready()` → make
//! `persist` durable → `persisted(ready)`; then `take_output()` → send messages, deliver answers.
//!
//! # Message flow
//! - **Registration**: at start each node's broker duty sends `RegisterBroker { incarnation }`
//!   to the leader it knows (locally if it is the leader). The controller commits a
//!   `RegisterBroker` record with a new broker epoch (fencing the old incarnation first if it
//!   was live); the reply carries the epoch. The broker starts fenced.
//! - **Heartbeat**: every `broker_heartbeat_interval_ms` (500) the duty sends `BrokerHeartbeat
//!   { epoch }`. The controller keeps deadlines in memory only; a heartbeat from a fenced broker
//!   commits `UnfenceBroker` (and gives leaderless partitions whose ISR holds it back to it).
//! - **Fencing**: a broker silent for `broker_session_timeout_ms` (2000) is fenced: one batch
//!   moves its leaderships to another ISR member (or none), drops it from every ISR but the last
//!   member, then `FenceBroker`. A new controller grants every broker a full session first.
//! - **Forwarding**: a client request on a follower goes to the leader it knows, tagged with that
//!   leader's term; a node that is not leader of exactly that term answers `NotController`. If the
//!   known leader or term changes while a request is out, it fails `NotController` (outcome
//!   unknown: the client retries; CreateTopics dedupes by name). Unanswered requests fail with
//!   `Timeout` after `request_timeout_ms`. Nothing is ever answered with a silent success.
//! - **Commit, then answer**: a Raft leader becomes the active controller only once it has
//!   applied every entry up to its own term's first entry (so the controller's image holds
//!   everything any earlier leader committed), and stops being one the moment Raft says it is no
//!   longer leader of that term. Its decision's records are proposed as one entry; the answer is
//!   released when that entry applies with the proposal's term (another term there: the proposal
//!   was lost → `NotController`). A decision without records waits for an empty barrier entry.
//!   Heartbeat answers that change nothing are the one exception (soft state, answered at once).
//!
//! # Why raft-rs
//! TiKV's `raft` crate is a pure state machine: no threads, timers, sockets or fsync of its own.
//! Our clock drives `tick`, our transport carries its messages, our store persists its readies,
//! so the same code runs on glommio and in a single-threaded deterministic simulator. It is
//! production-proven (TiKV). Its one hidden source of randomness, `thread_rng` election timeouts,
//! is overridden with a seeded draw in shoal-raft.
//!
//! Architecture invariant: this crate knows nothing of Kafka's wire protocol, sockets, files,
//! glommio or the `shoal` broker; it depends only on shoal-metadata and shoal-raft.

mod duty;
pub mod message;
mod node;

pub use message::{ClusterMessage, MessageError, RequestKey, MESSAGE_BYTES_MAX};
pub use node::{
    Applied, MetadataNode, NodeConfig, NodeError, NodeReady, Output, RequestId,
    AWAITING_COMMIT_MAX, HELD_REQUESTS_MAX, OUTBOUND_REQUESTS_MAX, RAFT_TICKS_PER_CALL_MAX,
};
pub use shoal_metadata as metadata;
pub use shoal_raft as raft;
