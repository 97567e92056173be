//! `RaftNode`: raft-rs's `RawNode` behind an API that enforces persist-before-send.
//!
//! The driver loop: feed `tick`/`step`/`propose`; then `drain_ready()` gives a [`Ready`] whose
//! `persist` part must be made durable (see [`crate::LogStore`]); only `persisted(ready)` then
//! returns the messages to send and the committed entries to apply. This is raft-rs's documented
//! ready/advance order with the sending of every message moved after persistence (the leader's
//! early-send optimisation is given up: simpler to reason about, and metadata is small).

use prost::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Message, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, RawNode, StateRole, Storage, StorageError};

use crate::{RaftConfig, RaftError, Recovered};

/// What the driver must make durable before anything else of this ready happens. Apply in order:
/// `snapshot` (replaces the whole log), `entries` (truncating any conflicting suffix),
/// `hard_state`, then `compact` (a local snapshot: drop entries up to its index).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersistRequest {
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    pub hard_state: Option<HardState>,
    pub compact: Option<Snapshot>,
}

impl PersistRequest {
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none()
            && self.entries.is_empty()
            && self.hard_state.is_none()
            && self.compact.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftState {
    pub leader_id: Option<u64>,
    pub role: Role,
    pub term: u64,
}

/// A ready awaiting persistence; hand it back to [`RaftNode::persisted`] once `persist` is durable.
pub struct Ready {
    pub persist: PersistRequest,
    held: Option<Held>,
}

/// What a ready releases once persisted.
struct Held {
    number: u64,
    messages: Vec<Message>,
    committed: Vec<Entry>,
}

/// What may happen once a ready is durable.
#[derive(Debug, Default)]
pub struct Advanced {
    /// Messages to send, each to `msg.to`.
    pub messages: Vec<Message>,
    /// A snapshot the state machine must load before applying `committed`.
    pub snapshot: Option<Snapshot>,
    /// Committed entries to apply, in order.
    pub committed: Vec<Entry>,
}

/// Where a proposal landed in the log: it succeeded iff the entry applied at `index` has `term`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProposalId {
    pub index: u64,
    pub term: u64,
}

pub struct RaftNode {
    raw: RawNode<LogCache>,
    config: RaftConfig,
    ready_outstanding: bool,
    compact_pending: Option<Snapshot>,
    /// (term, role) the election timeout was last drawn for, and how many draws so far.
    timeout_key: (u64, Role),
    timeout_draws: u64,
}

impl RaftNode {
    /// A node over what its durable store recovered (empty for a new node).
    pub fn new(config: RaftConfig, recovered: Recovered) -> Result<RaftNode, RaftError> {
        config.validate()?;
        let cache = LogCache::new(&config, recovered)?;
        let applied = cache.snapshot_index();
        let raft_config = raft::Config {
            id: config.node_id,
            election_tick: config.election_tick,
            heartbeat_tick: config.heartbeat_tick,
            applied,
            max_size_per_msg: config.message_entries_bytes_max,
            max_inflight_msgs: config.inflight_messages_max,
            check_quorum: true,
            pre_vote: true,
            max_uncommitted_size: config.uncommitted_bytes_max,
            max_committed_size_per_ready: config.message_entries_bytes_max,
            ..Default::default()
        };
        raft_config
            .validate()
            .map_err(|e| RaftError::Config(e.to_string()))?;
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raw = RawNode::new(&raft_config, cache, &logger).map_err(RaftError::from_raft)?;
        let mut node = RaftNode {
            raw,
            config,
            ready_outstanding: false,
            compact_pending: None,
            timeout_key: (u64::MAX, Role::Leader),
            timeout_draws: 0,
        };
        node.fix_election_timeout();
        Ok(node)
    }

    pub fn config(&self) -> &RaftConfig {
        &self.config
    }

    pub fn tick(&mut self) {
        self.raw.tick();
        self.fix_election_timeout();
    }

    /// Steps a message from a peer. Local message types and unknown peers are refused.
    pub fn step(&mut self, msg: Message) -> Result<(), RaftError> {
        let result = self.raw.step(msg).map_err(RaftError::from_raft);
        self.fix_election_timeout();
        result
    }

    pub fn campaign(&mut self) -> Result<(), RaftError> {
        let result = self.raw.campaign().map_err(RaftError::from_raft);
        self.fix_election_timeout();
        result
    }

    /// Proposes opaque bytes; only a leader accepts. The entry is committed iff the entry
    /// applied at the returned index has the returned term.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<ProposalId, RaftError> {
        if self.raw.raft.state != StateRole::Leader {
            return Err(RaftError::NotLeader);
        }
        if data.len() > self.config.entry_bytes_max {
            return Err(RaftError::EntryTooLarge {
                bytes: data.len(),
                max: self.config.entry_bytes_max,
            });
        }
        let before = self.raw.raft.raft_log.last_index();
        self.raw
            .propose(Vec::new(), data)
            .map_err(RaftError::from_raft)?;
        let index = self.raw.raft.raft_log.last_index();
        assert_eq!(index, before + 1, "a proposal appends exactly one entry");
        Ok(ProposalId {
            index,
            term: self.raw.raft.term,
        })
    }

    pub fn soft_state(&self) -> SoftState {
        let r = &self.raw.raft;
        SoftState {
            leader_id: (r.leader_id != raft::INVALID_ID).then_some(r.leader_id),
            role: role_of(r.state),
            term: r.term,
        }
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }
    pub fn last_index(&self) -> u64 {
        self.raw.raft.raft_log.last_index()
    }
    pub fn commit_index(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }
    pub fn applied_index(&self) -> u64 {
        self.raw.raft.raft_log.applied
    }
    /// Index of the latest snapshot (entries up to it are compacted away).
    pub fn snapshot_index(&self) -> u64 {
        self.raw.store().snapshot_index()
    }
    /// Entries kept in the log since the latest snapshot.
    pub fn log_entries(&self) -> u64 {
        self.last_index() - self.snapshot_index()
    }

    pub fn report_unreachable(&mut self, node_id: u64) {
        self.raw.report_unreachable(node_id);
    }

    /// Tells Raft a snapshot sent to `node_id` was handed to the transport (`delivered`) or
    /// failed; without it the leader waits for that follower forever if the snapshot is lost.
    pub fn report_snapshot(&mut self, node_id: u64, delivered: bool) {
        let status = if delivered {
            raft::SnapshotStatus::Finish
        } else {
            raft::SnapshotStatus::Failure
        };
        self.raw.report_snapshot(node_id, status);
    }

    /// The next batch of work, or `None` when there is none or a ready is still outstanding.
    /// Uses raft-rs's asynchronous-persistence protocol (`advance_append_async`, then
    /// `on_persist_ready` once durable), so `tick`/`step`/`propose` stay legal meanwhile.
    pub fn drain_ready(&mut self) -> Option<Ready> {
        if self.ready_outstanding {
            return None;
        }
        if !self.raw.has_ready() {
            let compact = self.compact_pending.take()?;
            self.ready_outstanding = true;
            let persist = PersistRequest {
                compact: Some(compact),
                ..Default::default()
            };
            return Some(Ready {
                persist,
                held: None,
            });
        }
        let mut rd = self.raw.ready();
        let snapshot = (!rd.snapshot().is_empty()).then(|| rd.snapshot().clone());
        // A received snapshot supersedes a local compaction still waiting to be persisted.
        let compact = self.compact_pending.take().filter(|_| snapshot.is_none());
        let persist = PersistRequest {
            snapshot,
            entries: rd.take_entries(),
            hard_state: rd.hs().cloned(),
            compact,
        };
        // raft-rs reads stabilized entries back from `Storage` right after
        // `advance_append_async`: the in-memory cache gets them now, durability comes later.
        let store = self.raw.mut_store();
        if let Some(s) = &persist.snapshot {
            store.install_snapshot(s.clone());
        }
        store.append(&persist.entries);
        if let Some(hs) = &persist.hard_state {
            store.hard_state = hs.clone();
        }
        let mut messages = rd.take_messages();
        messages.extend(rd.take_persisted_messages());
        let held = Held {
            number: rd.number(),
            messages,
            committed: rd.take_committed_entries(),
        };
        self.raw.advance_append_async(rd);
        self.ready_outstanding = true;
        Some(Ready {
            persist,
            held: Some(held),
        })
    }

    /// Call once `ready.persist` is durable: returns what may now be sent and applied. The
    /// caller must apply `committed` (after loading `snapshot`) before its next call.
    pub fn persisted(&mut self, ready: Ready) -> Advanced {
        assert!(
            self.ready_outstanding,
            "persisted() without an outstanding ready"
        );
        self.ready_outstanding = false;
        let Some(held) = ready.held else {
            return Advanced::default();
        };
        self.raw.on_persist_ready(held.number);
        let mut out = Advanced {
            snapshot: ready.persist.snapshot,
            messages: held.messages,
            committed: held.committed,
        };
        let applied = out.committed.last().map(|e| e.index).or_else(|| {
            out.snapshot
                .as_ref()
                .and_then(|s| s.metadata.as_ref())
                .map(|m| m.index)
        });
        if let Some(index) = applied {
            self.raw.advance_apply_to(index);
        }
        // Deterministic order whatever raft-rs's internal maps do.
        out.messages.sort_by_key(|m| m.to);
        self.fix_election_timeout();
        out
    }

    /// Takes a snapshot of the state machine at `applied_index` (`data` is its encoding) and
    /// compacts the in-memory log; the durable store gets it with the next ready.
    pub fn compact(&mut self, applied_index: u64, data: Vec<u8>) -> Result<(), RaftError> {
        if applied_index > self.applied_index() || applied_index <= self.snapshot_index() {
            return Err(RaftError::CompactOutOfRange {
                index: applied_index,
            });
        }
        let term = self
            .raw
            .store()
            .term(applied_index)
            .map_err(RaftError::from_raft)?;
        let conf_state = self.raw.store().conf_state.clone();
        let snapshot = Snapshot {
            data,
            metadata: Some(SnapshotMetadata {
                conf_state: Some(conf_state),
                index: applied_index,
                term,
            }),
        };
        self.raw.mut_store().compact(snapshot.clone());
        self.compact_pending = Some(snapshot);
        Ok(())
    }

    /// raft-rs draws election timeouts from `thread_rng`; replace each draw by one from a
    /// seeded hash of (seed, node, term, role, draw count) so runs are reproducible.
    fn fix_election_timeout(&mut self) {
        let r = &mut self.raw.raft;
        let key = (r.term, role_of(r.state));
        if key != self.timeout_key {
            self.timeout_key = key;
            self.timeout_draws += 1;
        }
        let min = self.config.election_tick;
        let span = self.config.election_tick as u64;
        let h = splitmix(
            self.config.election_seed
                ^ splitmix(self.config.node_id ^ splitmix(self.timeout_draws)),
        );
        let timeout = min + (h % span) as usize;
        if r.randomized_election_timeout() != timeout {
            r.set_randomized_election_timeout(timeout);
        }
    }
}

fn same_members(a: &ConfState, b: &ConfState) -> bool {
    let sorted = |v: &[u64]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v
    };
    sorted(&a.voters) == sorted(&b.voters) && sorted(&a.learners) == sorted(&b.learners)
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn role_of(state: StateRole) -> Role {
    match state {
        StateRole::Follower => Role::Follower,
        StateRole::PreCandidate => Role::PreCandidate,
        StateRole::Candidate => Role::Candidate,
        StateRole::Leader => Role::Leader,
    }
}

/// raft-rs's read side: what has been persisted, kept in memory (entries since the snapshot).
struct LogCache {
    hard_state: HardState,
    conf_state: ConfState,
    snapshot_meta: SnapshotMetadata,
    snapshot: Snapshot,
    /// `entries[i].index == snapshot_meta.index + 1 + i`.
    entries: Vec<Entry>,
}

impl LogCache {
    fn new(config: &RaftConfig, recovered: Recovered) -> Result<LogCache, RaftError> {
        let conf_state = ConfState {
            voters: config.voters.clone(),
            learners: config.learners.clone(),
            ..Default::default()
        };
        let snapshot = recovered.snapshot.unwrap_or_default();
        let snapshot_meta = snapshot.metadata.clone().unwrap_or_default();
        if let Some(cs) = &snapshot_meta.conf_state {
            if !same_members(cs, &conf_state) {
                return Err(RaftError::Config(format!(
                    "configured voters {:?} learners {:?} differ from the snapshot's {:?} {:?}",
                    conf_state.voters, conf_state.learners, cs.voters, cs.learners
                )));
            }
        }
        let mut cache = LogCache {
            hard_state: recovered.hard_state,
            conf_state,
            snapshot_meta,
            snapshot,
            entries: Vec::new(),
        };
        let first = cache.snapshot_index() + 1;
        let entries: Vec<Entry> = recovered
            .entries
            .into_iter()
            .filter(|e| e.index >= first)
            .collect();
        if entries.first().is_some_and(|e| e.index != first)
            || entries.windows(2).any(|w| w[1].index != w[0].index + 1)
        {
            return Err(RaftError::Store("recovered log is not contiguous".into()));
        }
        cache.entries = entries;
        // The commit index may lag (it is persisted lazily) but never lead the log.
        let last = cache.last();
        if cache.hard_state.commit > last {
            return Err(RaftError::Store(format!(
                "hard state commit {} beyond the log's last index {last}",
                cache.hard_state.commit
            )));
        }
        cache.hard_state.commit = cache.hard_state.commit.max(cache.snapshot_index());
        Ok(cache)
    }

    fn snapshot_index(&self) -> u64 {
        self.snapshot_meta.index
    }
    fn first(&self) -> u64 {
        self.snapshot_meta.index + 1
    }
    fn last(&self) -> u64 {
        self.snapshot_meta.index + self.entries.len() as u64
    }

    fn install_snapshot(&mut self, snapshot: Snapshot) {
        let meta = snapshot.metadata.clone().unwrap_or_default();
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.hard_state.commit = meta.index;
        if let Some(cs) = &meta.conf_state {
            self.conf_state = cs.clone();
        }
        self.entries.clear();
        self.snapshot_meta = meta;
        self.snapshot = snapshot;
    }

    fn compact(&mut self, snapshot: Snapshot) {
        let meta = snapshot.metadata.clone().unwrap_or_default();
        assert!(meta.index > self.snapshot_index() && meta.index <= self.last());
        let drop = (meta.index - self.snapshot_index()) as usize;
        self.entries.drain(..drop);
        self.snapshot_meta = meta;
        self.snapshot = snapshot;
    }

    fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        assert!(first.index >= self.first(), "append before the snapshot");
        assert!(first.index <= self.last() + 1, "append leaves a gap");
        self.entries.truncate((first.index - self.first()) as usize);
        self.entries.extend_from_slice(entries);
    }
}

impl Storage for LogCache {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let max_size = max_size.into().unwrap_or(u64::MAX);
        let mut out = Vec::new();
        let mut size = 0u64;
        for e in &self.entries[(low - self.first()) as usize..(high - self.first()) as usize] {
            size += e.encoded_len() as u64;
            if !out.is_empty() && size > max_size {
                break;
            }
            out.push(e.clone());
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snapshot_meta.index {
            return Ok(self.snapshot_meta.term);
        }
        if idx < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.entries[(idx - self.first()) as usize].term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot_meta.index == 0 || self.snapshot_meta.index < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}
