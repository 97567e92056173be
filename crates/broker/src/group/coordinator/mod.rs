//! The classic group protocol for the groups of one `__consumer_offsets` partition, as a plain
//! state machine (Kafka's `GroupCoordinator` + `GroupMetadata`).
//!
//! Every entry point takes `now_ms` and returns `Effects`: replies to *parked* requests (a
//! JoinGroup waits for the rebalance to complete, a SyncGroup for the leader's assignment, an
//! OffsetCommit for its append) and `Write`s the driver must append durably before it calls
//! `write_done`. Requests that can wait carry a caller-chosen `Ticket`; their reply always comes
//! through `Effects::replies` (possibly from the same call). Nothing here sleeps or does I/O.
//!
//! States: Empty → PreparingRebalance → CompletingRebalance → Stable (→ PreparingRebalance ...);
//! a deleted or expired group is removed (Dead).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use indexmap::IndexMap;

use super::records::{GroupRecord, GroupValue, MemberValue, OffsetValue};
use shoal_protocol::errors as e;

mod admin;
mod join;
mod members;
mod offsets;
mod types;

pub use types::*;

/// Identifies a parked request; chosen by the caller, unique per coordinator.
pub type Ticket = u64;

pub const PROTOCOL_TYPE_CONSUMER: &str = "consumer";

#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// Kafka's `group.min.session.timeout.ms`.
    pub session_timeout_ms_min: i32,
    /// Kafka's `group.max.session.timeout.ms`.
    pub session_timeout_ms_max: i32,
    /// Kafka's `group.initial.rebalance.delay.ms` (Kafka: 3000).
    pub initial_rebalance_delay_ms: i64,
    /// How long a new member may wait in its first join before it is dropped (Kafka: 5 min).
    pub new_member_join_timeout_ms: i64,
    /// Kafka's `offsets.retention.minutes`, in ms: offsets of an empty group expire after this.
    pub offsets_retention_ms: i64,
    /// Kafka's `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval_ms: i64,
    /// Kafka's `group.max.size`: members (and pending members) of one group.
    pub group_members_max: usize,
    /// Kafka's `offset.metadata.max.bytes`.
    pub offset_metadata_bytes_max: usize,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            session_timeout_ms_min: 6_000,
            session_timeout_ms_max: 1_800_000,
            initial_rebalance_delay_ms: 100,
            new_member_join_timeout_ms: 300_000,
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            group_members_max: 1_000,
            offset_metadata_bytes_max: 4_096,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka uses in ListGroups/DescribeGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Group state.

#[derive(Debug, Clone)]
struct Member {
    member_id: String,
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    join_ticket: Option<Ticket>,
    sync_ticket: Option<Ticket>,
    /// Expires (is removed) at this time unless kept alive by a parked join/sync.
    heartbeat_deadline_ms: i64,
    /// Not yet part of a completed generation.
    is_new: bool,
}

impl Member {
    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn keep_alive(&self, now_ms: i64) -> bool {
        if self.is_new {
            return now_ms < self.heartbeat_deadline_ms;
        }
        self.join_ticket.is_some()
            || self.sync_ticket.is_some()
            || now_ms < self.heartbeat_deadline_ms
    }
}

#[derive(Debug)]
struct Group {
    group_id: String,
    state: GroupState,
    state_timestamp_ms: i64,
    generation_id: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader_id: Option<String>,
    /// In join order (the first joined member is the default leader).
    members: IndexMap<String, Member>,
    /// group.instance.id → member id.
    static_members: HashMap<String, String>,
    /// KIP-394: ids handed out with MEMBER_ID_REQUIRED, with their expiry.
    pending_members: BTreeMap<String, i64>,
    /// PreparingRebalance: the join completes at this time at the latest.
    join_deadline_ms: i64,
    /// The first rebalance of an empty group waits `initial_rebalance_delay_ms` and extends it
    /// while new members keep arriving, up to this time.
    initial_join_until_ms: Option<i64>,
    new_member_added: bool,
    /// Members that have not sent SyncGroup for the current generation, and until when they may.
    pending_sync: BTreeSet<String>,
    sync_deadline_ms: i64,
    /// The leader's assignment while its write is in flight.
    staged_assignment: Option<HashMap<String, Bytes>>,
    offsets: BTreeMap<(String, i32), OffsetValue>,
}

impl Group {
    fn new(group_id: &str, now_ms: i64) -> Group {
        Group {
            group_id: group_id.to_string(),
            state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: IndexMap::new(),
            static_members: HashMap::new(),
            pending_members: BTreeMap::new(),
            join_deadline_ms: 0,
            initial_join_until_ms: None,
            new_member_added: false,
            pending_sync: BTreeSet::new(),
            sync_deadline_ms: 0,
            staged_assignment: None,
            offsets: BTreeMap::new(),
        }
    }

    fn transition(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_timestamp_ms = now_ms;
    }

    fn size(&self) -> usize {
        self.members.len() + self.pending_members.len()
    }

    fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    /// A static member whose instance id is now owned by another member id.
    fn is_static_fenced(&self, instance: Option<&str>, member_id: &str) -> bool {
        match instance.and_then(|i| self.static_members.get(i)) {
            Some(owner) => owner != member_id,
            None => false,
        }
    }

    /// Kafka's `supportsProtocols`: an empty group takes any non-empty protocol list; otherwise
    /// the type must match and one of the protocols must be supported by every member.
    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    /// Kafka's `selectProtocol`: among protocols every member supports, each member votes for
    /// its most preferred one; most votes wins (ties: the first candidate in the leader's order).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == *name))
            })
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let mut votes: Vec<usize> = vec![0; candidates.len()];
        for m in self.members.values() {
            if let Some((i, _)) = m
                .protocols
                .iter()
                .find_map(|(n, _)| candidates.iter().position(|c| *c == n).map(|i| (i, ())))
            {
                votes[i] += 1;
            }
        }
        let best = votes.iter().max().copied().unwrap_or(0);
        let i = votes.iter().position(|v| *v == best).expect("a candidate");
        Some(candidates[i].clone())
    }

    fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms as i64)
            .max()
            .unwrap_or(0)
    }

    fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.join_ticket.is_some())
    }

    /// Topics the members subscribe to (consumer protocol), or `None` if unknown.
    fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some(PROTOCOL_TYPE_CONSUMER) {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for m in self.members.values() {
            topics.extend(parse_subscription(&m.metadata(protocol))?);
        }
        Some(topics)
    }

    fn join_reply(&self, member_id: &str, with_members: bool) -> JoinResponse {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        JoinResponse {
            error: e::NONE,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone().unwrap_or_default(),
            skip_assignment: false,
            member_id: member_id.to_string(),
            members: if with_members {
                self.members
                    .values()
                    .map(|m| JoinMember {
                        member_id: m.member_id.clone(),
                        group_instance_id: m.group_instance_id.clone(),
                        metadata: m.metadata(&protocol),
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    fn metadata_record(&self) -> GroupRecord {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        GroupRecord::Group {
            group_id: self.group_id.clone(),
            value: Some(GroupValue {
                protocol_type: self.protocol_type.clone(),
                generation_id: self.generation_id,
                protocol_name: self.protocol_name.clone(),
                leader_id: self.leader_id.clone(),
                state_timestamp_ms: self.state_timestamp_ms,
                members: self
                    .members
                    .values()
                    .map(|m| MemberValue {
                        member_id: m.member_id.clone(),
                        group_instance_id: m.group_instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        rebalance_timeout_ms: m.rebalance_timeout_ms,
                        session_timeout_ms: m.session_timeout_ms,
                        subscription: m.metadata(&protocol),
                        assignment: self
                            .staged_assignment
                            .as_ref()
                            .and_then(|a| a.get(&m.member_id).cloned())
                            .unwrap_or_else(|| m.assignment.clone()),
                    })
                    .collect(),
            }),
        }
    }
}

/// Topics of a ConsumerProtocolSubscription (`None` if it does not parse). Parsed by hand: the
/// `kafka-protocol` decoder preallocates from untrusted array lengths (a bad length aborts).
pub fn parse_subscription(metadata: &Bytes) -> Option<Vec<String>> {
    use bytes::Buf;
    let mut buf = metadata.clone();
    if buf.remaining() < 6 {
        return None;
    }
    if buf.get_i16() < 0 {
        return None;
    }
    let n = buf.get_i32();
    // Every topic takes at least its 2-byte length.
    if n < 0 || n as usize > buf.remaining() / 2 {
        return None;
    }
    let mut topics = Vec::with_capacity(n as usize);
    for _ in 0..n {
        if buf.remaining() < 2 {
            return None;
        }
        let len = buf.get_i16();
        if len < 0 || len as usize > buf.remaining() {
            return None;
        }
        let raw = buf.split_to(len as usize);
        topics.push(String::from_utf8(raw.to_vec()).ok()?);
    }
    Some(topics)
}

// ---------------------------------------------------------------------------------------------

/// The groups of one `__consumer_offsets` partition.
pub struct Coordinator {
    config: CoordinatorConfig,
    groups: BTreeMap<String, Group>,
    rng: u64,
    next_cleanup_ms: i64,
}

impl Coordinator {
    /// `seed` drives member id generation (deterministic in tests).
    pub fn new(config: CoordinatorConfig, seed: u64, now_ms: i64) -> Coordinator {
        let next_cleanup_ms = now_ms + config.offsets_retention_check_interval_ms;
        Coordinator {
            config,
            groups: BTreeMap::new(),
            rng: seed,
            next_cleanup_ms,
        }
    }

    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    fn random_u64(&mut self) -> u64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `client_id-uuid` (or `group_instance_id-uuid` for static members), as Kafka does.
    fn new_member_id(&mut self, client_id: &str, instance: Option<&str>) -> String {
        let bits = (self.random_u64() as u128) << 64 | self.random_u64() as u128;
        let uuid = uuid::Builder::from_random_bytes(bits.to_be_bytes()).into_uuid();
        format!("{}-{uuid}", instance.unwrap_or(client_id))
    }

    pub fn group_state(&self, group_id: &str) -> Option<GroupState> {
        self.groups.get(group_id).map(|g| g.state)
    }

    pub fn group_generation(&self, group_id: &str) -> Option<i32> {
        self.groups.get(group_id).map(|g| g.generation_id)
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Member ids of a group, in join order.
    pub fn members(&self, group_id: &str) -> Vec<String> {
        self.groups
            .get(group_id)
            .map(|g| g.members.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub fn leader(&self, group_id: &str) -> Option<String> {
        self.groups.get(group_id).and_then(|g| g.leader_id.clone())
    }
}

fn tombstones(group: &Group) -> Vec<GroupRecord> {
    let mut records: Vec<GroupRecord> = group
        .offsets
        .keys()
        .map(|(topic, partition)| GroupRecord::Offset {
            group_id: group.group_id.clone(),
            topic: topic.clone(),
            partition: *partition,
            value: None,
        })
        .collect();
    records.push(GroupRecord::Group {
        group_id: group.group_id.clone(),
        value: None,
    });
    records
}

/// Kafka's mapping of append errors to what group clients understand (retriable where it is).
fn map_write_error(code: i16) -> i16 {
    match code {
        e::NONE => e::NONE,
        // UNKNOWN_TOPIC_OR_PARTITION, NOT_ENOUGH_REPLICAS(_AFTER_APPEND), REQUEST_TIMED_OUT
        3 | 19 | 20 | 7 => e::COORDINATOR_NOT_AVAILABLE,
        // NOT_LEADER_OR_FOLLOWER
        6 => e::NOT_COORDINATOR,
        // MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE, INVALID_FETCH_SIZE
        10 | 18 | 4 => e::INVALID_COMMIT_OFFSET_SIZE,
        e::COORDINATOR_NOT_AVAILABLE | e::NOT_COORDINATOR => code,
        _ => e::COORDINATOR_NOT_AVAILABLE,
    }
}
