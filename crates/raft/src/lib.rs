//! Shoal's Raft glue: TiKV's raft-rs `RawNode` driven by our clock, transport and fsync.
//!
//! - [`RaftNode`]: `tick`/`step`/`propose`/`campaign`, then `drain_ready()` → persist →
//!   `persisted()` → messages and committed entries. Messages are only handed out after the
//!   driver confirms the ready's writes are durable.
//! - [`LogStore`]: durable log + hard state + snapshot; [`MemLogStore`] (simulator; a "crash"
//!   keeps only what was persisted) and [`FileLogStore`] (CRC-framed files, atomic replace).
//! - [`codec`]: length-prefixed frames for node-to-node Raft messages.
//!
//! Entries are opaque bytes. Voters are fixed by configuration (1, 3 or 5); other nodes join as
//! learners. A single voter is a quorum of one on the same code path.
//!
//! Architecture invariant: this crate knows nothing of Kafka, metadata records, the broker,
//! sockets or the async runtime; it does no I/O except `FileLogStore`'s std::fs calls.

pub mod codec;
mod node;
mod store;

pub use node::{Advanced, PersistRequest, ProposalId, RaftNode, Ready, Role, SoftState};
pub use raft::eraftpb::{ConfState, Entry, EntryType, HardState, Message, MessageType, Snapshot};
pub use store::{FileLogStore, LogStore, MemLogStore, Recovered, StoreError};

/// Largest single entry accepted by `propose`.
pub const ENTRY_BYTES_MAX: usize = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftConfig {
    /// This node's id (non-zero).
    pub node_id: u64,
    /// Voters: 1, 3 or 5 ids.
    pub voters: Vec<u64>,
    /// Non-voting members (catch up, never vote or count for quorum).
    pub learners: Vec<u64>,
    /// Ticks without a leader before campaigning (randomized in [n, 2n)).
    pub election_tick: usize,
    /// Ticks between leader heartbeats.
    pub heartbeat_tick: usize,
    /// Seeds the election timeout draws (reproducible simulations).
    pub election_seed: u64,
    pub entry_bytes_max: usize,
    /// Bound on the entries in one append message.
    pub message_entries_bytes_max: u64,
    pub inflight_messages_max: usize,
    /// Bound on proposed but uncommitted bytes at the leader.
    pub uncommitted_bytes_max: u64,
}

impl RaftConfig {
    /// Defaults for a tick of 100 ms: election after 1-2 s of silence, heartbeats every 200 ms.
    pub fn new(node_id: u64, voters: Vec<u64>, learners: Vec<u64>) -> RaftConfig {
        RaftConfig {
            node_id,
            voters,
            learners,
            election_tick: 10,
            heartbeat_tick: 2,
            election_seed: node_id,
            entry_bytes_max: ENTRY_BYTES_MAX,
            message_entries_bytes_max: 1 << 20,
            inflight_messages_max: 64,
            uncommitted_bytes_max: 64 << 20,
        }
    }

    pub fn validate(&self) -> Result<(), RaftError> {
        let bad = |why: String| Err(RaftError::Config(why));
        if ![1, 3, 5].contains(&self.voters.len()) {
            return bad(format!("{} voters: must be 1, 3 or 5", self.voters.len()));
        }
        let all: Vec<u64> = self.voters.iter().chain(&self.learners).copied().collect();
        if all.contains(&0) || all.iter().enumerate().any(|(i, id)| all[..i].contains(id)) {
            return bad("node ids must be non-zero and distinct".into());
        }
        if !all.contains(&self.node_id) {
            return bad(format!(
                "node {} is neither voter nor learner",
                self.node_id
            ));
        }
        if self.heartbeat_tick == 0 || self.election_tick <= self.heartbeat_tick {
            return bad("need 0 < heartbeat_tick < election_tick".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RaftError {
    #[error("not the leader")]
    NotLeader,
    #[error("proposal dropped (leadership changing or uncommitted bytes over the limit)")]
    ProposalDropped,
    #[error("entry of {bytes} bytes exceeds {max}")]
    EntryTooLarge { bytes: usize, max: usize },
    #[error("message from an unknown peer or of a local type")]
    BadMessage,
    #[error("compaction index {index} out of range")]
    CompactOutOfRange { index: u64 },
    #[error("config: {0}")]
    Config(String),
    #[error("store: {0}")]
    Store(String),
    #[error("raft: {0}")]
    Other(String),
}

impl RaftError {
    fn from_raft(e: raft::Error) -> RaftError {
        match e {
            raft::Error::ProposalDropped => RaftError::ProposalDropped,
            raft::Error::StepLocalMsg | raft::Error::StepPeerNotFound => RaftError::BadMessage,
            raft::Error::ConfigInvalid(s) => RaftError::Config(s),
            raft::Error::Store(s) => RaftError::Store(s.to_string()),
            other => RaftError::Other(other.to_string()),
        }
    }
}
