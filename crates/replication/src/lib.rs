//! Partition replication as plain state machines (issue 11).
//!
//! The leader's shard pushes the exact stored bytes of its log to each follower; this crate
//! decides *what* happens, the broker (or the simulator in `tests/sim.rs`) does the I/O:
//! - [`LeaderReplica`]: which offsets to push to whom (bounded in flight), the high watermark
//!   (the minimum durable end over the ISR), when an `acks=all` produce is done, and which ISR
//!   changes to propose to the controller (fenced by leader and partition epoch).
//! - [`FollowerReplica`]: the KIP-101/KIP-279 handshake that finds where its log diverges from
//!   the leader's, which pushes to append, and what to acknowledge once durable.
//!
//! Architecture invariant: no clock, no I/O, no Kafka error codes, nothing of the metadata or
//! the broker; times are milliseconds passed in, messages are plain enums.

pub mod follower;
pub mod leader;

pub use follower::{FollowerAction, FollowerReplica};
pub use leader::{AckCheck, IsrProposal, LeaderReplica, PushPlan};

pub type NodeId = i32;
pub type Offset = i64;
pub type Epoch = i32;

/// Where a replica's log stands: written end, durable end, and the high watermark it knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogPosition {
    pub log_end: Offset,
    pub durable_end: Offset,
    pub hw: Offset,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicationConfig {
    /// `replica.lag.time.max.ms`: an ISR follower not caught up for this long is dropped.
    pub lag_time_max_ms: u64,
    /// Bytes pushed to one follower and not yet acknowledged.
    pub inflight_bytes_max: u64,
    /// A push without data (carrying the high watermark) goes at least this often.
    pub heartbeat_interval_ms: u64,
    /// A pushed range unacknowledged for this long is sent again.
    pub push_timeout_ms: u64,
    /// `min.insync.replicas`.
    pub min_insync_replicas: usize,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            lag_time_max_ms: 30_000,
            inflight_bytes_max: 4 << 20,
            heartbeat_interval_ms: 100,
            push_timeout_ms: 1_000,
            min_insync_replicas: 1,
        }
    }
}

/// A replica's leader-epoch history (the log's leader-epoch cache), as Kafka's
/// OffsetForLeaderEpoch answers it.
pub trait EpochHistory {
    /// The largest epoch at or below `epoch` and the offset where the epoch after it starts (the
    /// log end for the latest); `(-1, log start)` when there is none.
    fn end_offset_for_epoch(&self, epoch: Epoch) -> (Epoch, Offset);
    /// The epoch of the last batch (-1: empty history).
    fn latest_epoch(&self) -> Epoch;
}

/// Leader → follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToFollower {
    /// Batches covering `[from, end)` (none when `from == end`: a heartbeat), and the leader's
    /// high watermark.
    Push {
        epoch: Epoch,
        from: Offset,
        end: Offset,
        hw: Offset,
    },
    /// The answer to a `Hello`: the leader's largest epoch at or below the one asked about, and
    /// where it ends in the leader's log.
    EpochEnd {
        epoch: Epoch,
        found_epoch: Epoch,
        end: Offset,
    },
}

/// Follower → leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToLeader {
    /// Start of following `epoch`: where does my history at `last_epoch` end in yours?
    Hello { epoch: Epoch, last_epoch: Epoch },
    /// Everything below `log_end` is durable here.
    Ack { epoch: Epoch, log_end: Offset },
    /// That push did not continue my log, which ends at `log_end`: send from there.
    Nack { epoch: Epoch, log_end: Offset },
}
