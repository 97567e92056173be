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
// Requests and replies (plain types; the handlers convert from/to the wire types).

#[derive(Debug, Clone, Default)]
pub struct JoinRequest {
    pub group_id: String,
    /// Empty for a member joining for the first time.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+ (KIP-394): a new dynamic member first gets MEMBER_ID_REQUIRED and its id.
    pub require_known_member_id: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JoinMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JoinResponse {
    pub error: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub skip_assignment: bool,
    pub member_id: String,
    /// Only the leader gets the members (with their metadata for the chosen protocol).
    pub members: Vec<JoinMember>,
}

impl JoinResponse {
    pub fn error(error: i16, member_id: &str) -> Self {
        JoinResponse {
            error,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// Non-empty only from the leader.
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyncResponse {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    pub fn error(error: i16) -> Self {
        SyncResponse {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct HeartbeatRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    pub group_id: String,
    /// -1 for a consumer that does not use group management.
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// OffsetCommit v2-4 `retention_time_ms`; `None` for the broker default.
    pub retention_ms: Option<i64>,
    pub offsets: Vec<CommitOffset>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedPartition {
    pub partition: i32,
    /// -1 when nothing is committed.
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub error: i16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedTopic {
    pub topic: String,
    pub partitions: Vec<FetchedPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DescribedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DescribedGroup {
    pub error: i16,
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_name: String,
    pub generation_id: i32,
    pub members: Vec<DescribedMember>,
}

/// The reply to a parked request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Join(JoinResponse),
    Sync(SyncResponse),
    /// One error code per offset, in request order.
    Commit(Vec<i16>),
    Delete(i16),
    /// Top-level error and one error per requested partition.
    OffsetDelete(i16, Vec<i16>),
}

/// What to do once a `Write` is durable (or failed).
#[derive(Debug, Clone, PartialEq)]
pub enum AfterWrite {
    /// The leader's assignment of `generation_id` is stored: the group becomes Stable.
    SyncStored {
        group_id: String,
        generation_id: i32,
    },
    /// Offsets are stored: apply them and answer the commit.
    OffsetsStored {
        group_id: String,
        ticket: Ticket,
        offsets: Vec<(String, i32, OffsetValue)>,
        /// Per request offset: `None` if it is in this write, else its (validation) error.
        errors: Vec<Option<i16>>,
    },
    /// Answer `ticket` with `reply`, or with the write's error in the reply's shape.
    Reply { ticket: Ticket, reply: Reply },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    pub records: Vec<GroupRecord>,
    pub then: Option<AfterWrite>,
}

#[derive(Debug, Default)]
pub struct Effects {
    pub replies: Vec<(Ticket, Reply)>,
    pub writes: Vec<Write>,
}

impl Effects {
    fn reply(&mut self, ticket: Ticket, reply: Reply) {
        self.replies.push((ticket, reply));
    }
    pub fn append(&mut self, mut other: Effects) {
        self.replies.append(&mut other.replies);
        self.writes.append(&mut other.writes);
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

    // ----- JoinGroup -------------------------------------------------------------------------

    pub fn join(&mut self, now_ms: i64, req: JoinRequest, ticket: Ticket) -> Effects {
        let mut fx = Effects::default();
        let reject = |fx: &mut Effects, code: i16| {
            fx.reply(
                ticket,
                Reply::Join(JoinResponse::error(code, &req.member_id)),
            )
        };
        if req.group_id.is_empty() {
            reject(&mut fx, e::INVALID_GROUP_ID);
            return fx;
        }
        if req.session_timeout_ms < self.config.session_timeout_ms_min
            || req.session_timeout_ms > self.config.session_timeout_ms_max
        {
            reject(&mut fx, e::INVALID_SESSION_TIMEOUT);
            return fx;
        }
        let unknown_member = req.member_id.is_empty();
        if !self.groups.contains_key(&req.group_id) {
            if !unknown_member {
                reject(&mut fx, e::UNKNOWN_MEMBER_ID);
                return fx;
            }
            self.groups
                .insert(req.group_id.clone(), Group::new(&req.group_id, now_ms));
        }
        let group = self.groups.get(&req.group_id).expect("present");
        let error = if group.state == GroupState::Dead {
            Some(e::COORDINATOR_NOT_AVAILABLE)
        } else if !group.supports_protocols(&req.protocol_type, &req.protocols) {
            Some(e::INCONSISTENT_GROUP_PROTOCOL)
        } else if !group.members.contains_key(&req.member_id)
            && !group.pending_members.contains_key(&req.member_id)
            && !req
                .group_instance_id
                .as_ref()
                .is_some_and(|i| group.static_members.contains_key(i))
            && group.size() >= self.config.group_members_max
        {
            Some(e::GROUP_MAX_SIZE_REACHED)
        } else {
            None
        };
        if let Some(code) = error {
            reject(&mut fx, code);
            self.remove_if_unused(&req.group_id);
            return fx;
        }
        if unknown_member {
            self.join_new_member(now_ms, req, ticket, &mut fx);
        } else {
            self.join_known_member(now_ms, req, ticket, &mut fx);
        }
        fx
    }

    /// A group created by a request that then failed holds nothing: forget it.
    fn remove_if_unused(&mut self, group_id: &str) {
        if let Some(g) = self.groups.get(group_id) {
            if g.state == GroupState::Empty
                && g.generation_id == 0
                && g.members.is_empty()
                && g.pending_members.is_empty()
                && g.offsets.is_empty()
                && g.protocol_type.is_none()
            {
                self.groups.remove(group_id);
            }
        }
    }

    fn join_new_member(&mut self, now_ms: i64, req: JoinRequest, ticket: Ticket, fx: &mut Effects) {
        let member_id = self.new_member_id(&req.client_id, req.group_instance_id.as_deref());
        let group = self.groups.get_mut(&req.group_id).expect("present");
        match req.group_instance_id.as_deref() {
            Some(instance) if group.static_members.contains_key(instance) => {
                self.replace_static_member(now_ms, req, member_id, ticket, fx);
            }
            Some(_) => self.add_member_and_rebalance(now_ms, req, member_id, ticket, fx),
            None if req.require_known_member_id => {
                let deadline = now_ms + req.session_timeout_ms as i64;
                group.pending_members.insert(member_id.clone(), deadline);
                fx.reply(
                    ticket,
                    Reply::Join(JoinResponse::error(e::MEMBER_ID_REQUIRED, &member_id)),
                );
            }
            None => self.add_member_and_rebalance(now_ms, req, member_id, ticket, fx),
        }
    }

    fn join_known_member(
        &mut self,
        now_ms: i64,
        req: JoinRequest,
        ticket: Ticket,
        fx: &mut Effects,
    ) {
        let group = self.groups.get_mut(&req.group_id).expect("present");
        let member_id = req.member_id.clone();
        if group.pending_members.remove(&member_id).is_some() {
            self.add_member_and_rebalance(now_ms, req, member_id, ticket, fx);
            return;
        }
        let reject = |fx: &mut Effects, code: i16| {
            fx.reply(ticket, Reply::Join(JoinResponse::error(code, &member_id)))
        };
        if group.is_static_fenced(req.group_instance_id.as_deref(), &member_id) {
            return reject(fx, e::FENCED_INSTANCE_ID);
        }
        let Some(member) = group.members.get(&member_id) else {
            return reject(fx, e::UNKNOWN_MEMBER_ID);
        };
        if member.group_instance_id.is_some() && member.group_instance_id != req.group_instance_id {
            return reject(fx, e::FENCED_INSTANCE_ID);
        }
        let same_protocols = member.protocols == req.protocols;
        match group.state {
            GroupState::PreparingRebalance => {
                self.update_member_and_rebalance(now_ms, req, ticket, fx)
            }
            GroupState::CompletingRebalance if same_protocols => {
                // The member lost the join response: send it again.
                let reply = group.join_reply(&member_id, group.is_leader(&member_id));
                let m = group.members.get_mut(&member_id).expect("member");
                m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
                fx.reply(ticket, Reply::Join(reply));
            }
            GroupState::Stable if same_protocols && !group.is_leader(&member_id) => {
                // A follower rejoining with unchanged metadata: nothing to rebalance.
                let reply = group.join_reply(&member_id, false);
                let m = group.members.get_mut(&member_id).expect("member");
                m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
                fx.reply(ticket, Reply::Join(reply));
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(now_ms, req, ticket, fx)
            }
            GroupState::Empty | GroupState::Dead => reject(fx, e::UNKNOWN_MEMBER_ID),
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        now_ms: i64,
        req: JoinRequest,
        member_id: String,
        ticket: Ticket,
        fx: &mut Effects,
    ) {
        let new_member_join_timeout_ms = self.config.new_member_join_timeout_ms;
        let group = self.groups.get_mut(&req.group_id).expect("present");
        if group.state == GroupState::PreparingRebalance && group.generation_id == 0 {
            group.new_member_added = true;
        }
        if group.members.is_empty() {
            group.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(instance) = &req.group_instance_id {
            group
                .static_members
                .insert(instance.clone(), member_id.clone());
        }
        if group.leader_id.is_none() {
            group.leader_id = Some(member_id.clone());
        }
        group.members.insert(
            member_id.clone(),
            Member {
                member_id: member_id.clone(),
                group_instance_id: req.group_instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                protocols: req.protocols,
                assignment: Bytes::new(),
                join_ticket: Some(ticket),
                sync_ticket: None,
                heartbeat_deadline_ms: now_ms + new_member_join_timeout_ms,
                is_new: true,
            },
        );
        let group_id = req.group_id;
        self.maybe_prepare_rebalance(now_ms, &group_id, fx);
    }

    fn update_member_and_rebalance(
        &mut self,
        now_ms: i64,
        req: JoinRequest,
        ticket: Ticket,
        fx: &mut Effects,
    ) {
        let group = self.groups.get_mut(&req.group_id).expect("present");
        let m = group.members.get_mut(&req.member_id).expect("member");
        m.protocols = req.protocols;
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.client_id = req.client_id;
        m.client_host = req.client_host;
        if let Some(old) = m.join_ticket.replace(ticket) {
            // A retried join replaces the earlier one, which the client no longer waits for.
            fx.reply(
                old,
                Reply::Join(JoinResponse::error(
                    e::REBALANCE_IN_PROGRESS,
                    &req.member_id,
                )),
            );
        }
        self.maybe_prepare_rebalance(now_ms, &req.group_id, fx);
    }

    /// A static member rejoining with an unknown member id (a restarted process): it takes over
    /// the old member's place; the old member id is fenced.
    fn replace_static_member(
        &mut self,
        now_ms: i64,
        req: JoinRequest,
        new_id: String,
        ticket: Ticket,
        fx: &mut Effects,
    ) {
        let group = self.groups.get_mut(&req.group_id).expect("present");
        let instance = req.group_instance_id.clone().expect("static");
        let old_id = group.static_members[&instance].clone();
        let old_leader = group.leader_id.clone().unwrap_or_default();
        let was_leader = group.is_leader(&old_id);
        let Some(mut member) = group.members.shift_remove(&old_id) else {
            fx.reply(
                ticket,
                Reply::Join(JoinResponse::error(e::UNKNOWN_MEMBER_ID, "")),
            );
            return;
        };
        if let Some(t) = member.join_ticket.take() {
            fx.reply(
                t,
                Reply::Join(JoinResponse::error(e::FENCED_INSTANCE_ID, &old_id)),
            );
        }
        if let Some(t) = member.sync_ticket.take() {
            fx.reply(t, Reply::Sync(SyncResponse::error(e::FENCED_INSTANCE_ID)));
        }
        let old_protocols = std::mem::replace(&mut member.protocols, req.protocols);
        member.member_id = new_id.clone();
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.heartbeat_deadline_ms = now_ms + req.session_timeout_ms as i64;
        group.members.insert(new_id.clone(), member);
        group.static_members.insert(instance, new_id.clone());
        if was_leader {
            group.leader_id = Some(new_id.clone());
        }
        if group.pending_sync.remove(&old_id) {
            group.pending_sync.insert(new_id.clone());
        }
        match group.state {
            GroupState::Stable => {
                let unchanged = group.select_protocol() == group.protocol_name
                    && old_protocols == group.members[&new_id].protocols;
                if unchanged {
                    // Keep the assignment; the returned leader is the old leader id so the
                    // rejoined member does not compute a new assignment (v9: skip_assignment).
                    let mut reply = group.join_reply(&new_id, was_leader);
                    reply.leader = old_leader;
                    reply.skip_assignment = was_leader;
                    fx.writes.push(Write {
                        records: vec![group.metadata_record()],
                        then: Some(AfterWrite::Reply {
                            ticket,
                            reply: Reply::Join(reply),
                        }),
                    });
                } else {
                    group.members.get_mut(&new_id).expect("member").join_ticket = Some(ticket);
                    let group_id = req.group_id;
                    self.prepare_rebalance(now_ms, &group_id, fx);
                }
            }
            GroupState::CompletingRebalance | GroupState::PreparingRebalance => {
                group.members.get_mut(&new_id).expect("member").join_ticket = Some(ticket);
                let group_id = req.group_id;
                self.maybe_prepare_rebalance(now_ms, &group_id, fx);
            }
            GroupState::Empty | GroupState::Dead => {
                fx.reply(
                    ticket,
                    Reply::Join(JoinResponse::error(e::COORDINATOR_NOT_AVAILABLE, &new_id)),
                );
            }
        }
    }

    /// Starts a rebalance unless one is in progress, in which case the join may now complete.
    fn maybe_prepare_rebalance(&mut self, now_ms: i64, group_id: &str, fx: &mut Effects) {
        let state = self.groups[group_id].state;
        match state {
            GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now_ms, group_id, fx)
            }
            GroupState::PreparingRebalance => self.try_complete_join(now_ms, group_id, fx),
            GroupState::Dead => {}
        }
    }

    fn prepare_rebalance(&mut self, now_ms: i64, group_id: &str, fx: &mut Effects) {
        let delay_ms = self.config.initial_rebalance_delay_ms;
        let group = self.groups.get_mut(group_id).expect("present");
        if group.state == GroupState::CompletingRebalance {
            // Syncs waiting for the leader's assignment are told to rejoin.
            for m in group.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(t) = m.sync_ticket.take() {
                    fx.reply(
                        t,
                        Reply::Sync(SyncResponse::error(e::REBALANCE_IN_PROGRESS)),
                    );
                }
            }
        }
        group.staged_assignment = None;
        group.pending_sync.clear();
        let rebalance_timeout_ms = group.rebalance_timeout_ms();
        if group.state == GroupState::Empty {
            group.join_deadline_ms = now_ms + delay_ms.min(rebalance_timeout_ms);
            group.initial_join_until_ms = Some(now_ms + rebalance_timeout_ms);
            group.new_member_added = false;
        } else {
            group.join_deadline_ms = now_ms + rebalance_timeout_ms;
            group.initial_join_until_ms = None;
        }
        group.transition(GroupState::PreparingRebalance, now_ms);
        self.try_complete_join(now_ms, group_id, fx);
    }

    /// Completes the join phase when every member has rejoined (or, for the first rebalance of
    /// an empty group, when the initial delay is over), or when the rebalance timeout expires.
    fn try_complete_join(&mut self, now_ms: i64, group_id: &str, fx: &mut Effects) {
        let delay_ms = self.config.initial_rebalance_delay_ms;
        let group = self.groups.get_mut(group_id).expect("present");
        if group.state != GroupState::PreparingRebalance {
            return;
        }
        if let Some(until) = group.initial_join_until_ms {
            if now_ms < group.join_deadline_ms {
                return;
            }
            if group.new_member_added && now_ms < until {
                group.new_member_added = false;
                group.join_deadline_ms = now_ms + delay_ms.min(until - now_ms);
                return;
            }
        } else if !group.all_members_joined() && now_ms < group.join_deadline_ms {
            return;
        }
        self.complete_join(now_ms, group_id, fx);
    }

    fn complete_join(&mut self, now_ms: i64, group_id: &str, fx: &mut Effects) {
        let group = self.groups.get_mut(group_id).expect("present");
        // Members that did not rejoin in time are dropped.
        let gone: Vec<String> = group
            .members
            .values()
            .filter(|m| m.join_ticket.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in &gone {
            let m = group.members.shift_remove(id).expect("member");
            if let Some(instance) = &m.group_instance_id {
                group.static_members.remove(instance);
            }
            if let Some(t) = m.sync_ticket {
                fx.reply(t, Reply::Sync(SyncResponse::error(e::UNKNOWN_MEMBER_ID)));
            }
        }
        if group
            .leader_id
            .as_ref()
            .is_none_or(|l| !group.members.contains_key(l))
        {
            group.leader_id = group.members.keys().next().cloned();
        }
        group.initial_join_until_ms = None;
        group.new_member_added = false;
        group.generation_id += 1;
        if group.members.is_empty() {
            group.protocol_name = None;
            group.transition(GroupState::Empty, now_ms);
            fx.writes.push(Write {
                records: vec![group.metadata_record()],
                then: None,
            });
            return;
        }
        let Some(protocol) = group.select_protocol() else {
            // Members updated their protocols into incompatibility: nobody can be served.
            let ids: Vec<String> = group.members.keys().cloned().collect();
            for id in ids {
                let m = group.members.shift_remove(&id).expect("member");
                if let Some(t) = m.join_ticket {
                    fx.reply(
                        t,
                        Reply::Join(JoinResponse::error(e::INCONSISTENT_GROUP_PROTOCOL, &id)),
                    );
                }
            }
            group.static_members.clear();
            group.leader_id = None;
            group.protocol_name = None;
            group.transition(GroupState::Empty, now_ms);
            fx.writes.push(Write {
                records: vec![group.metadata_record()],
                then: None,
            });
            return;
        };
        group.protocol_name = Some(protocol);
        group.transition(GroupState::CompletingRebalance, now_ms);
        group.pending_sync = group.members.keys().cloned().collect();
        group.sync_deadline_ms = now_ms + group.rebalance_timeout_ms();
        let leader = group.leader_id.clone().expect("leader");
        let leader_reply = group.join_reply(&leader, true);
        for m in group.members.values_mut() {
            m.is_new = false;
            m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
            let t = m
                .join_ticket
                .take()
                .expect("every remaining member rejoined");
            let mut reply = leader_reply.clone();
            reply.member_id = m.member_id.clone();
            if m.member_id != leader {
                reply.members = Vec::new();
            }
            fx.reply(t, Reply::Join(reply));
        }
    }

    // ----- SyncGroup -------------------------------------------------------------------------

    pub fn sync(&mut self, now_ms: i64, req: SyncRequest, ticket: Ticket) -> Effects {
        let mut fx = Effects::default();
        let reject =
            |fx: &mut Effects, code: i16| fx.reply(ticket, Reply::Sync(SyncResponse::error(code)));
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            reject(&mut fx, e::UNKNOWN_MEMBER_ID);
            return fx;
        };
        if group.state == GroupState::Dead {
            reject(&mut fx, e::COORDINATOR_NOT_AVAILABLE);
        } else if group.is_static_fenced(req.group_instance_id.as_deref(), &req.member_id) {
            reject(&mut fx, e::FENCED_INSTANCE_ID);
        } else if !group.members.contains_key(&req.member_id) {
            reject(&mut fx, e::UNKNOWN_MEMBER_ID);
        } else if req.generation_id != group.generation_id {
            reject(&mut fx, e::ILLEGAL_GENERATION);
        } else if req
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != group.protocol_type.as_ref())
            || req
                .protocol_name
                .as_ref()
                .is_some_and(|n| Some(n) != group.protocol_name.as_ref())
        {
            reject(&mut fx, e::INCONSISTENT_GROUP_PROTOCOL);
        } else {
            match group.state {
                GroupState::Empty | GroupState::Dead => reject(&mut fx, e::UNKNOWN_MEMBER_ID),
                GroupState::PreparingRebalance => reject(&mut fx, e::REBALANCE_IN_PROGRESS),
                GroupState::CompletingRebalance => {
                    group.pending_sync.remove(&req.member_id);
                    let is_leader = group.is_leader(&req.member_id);
                    let m = group.members.get_mut(&req.member_id).expect("member");
                    m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
                    if let Some(old) = m.sync_ticket.replace(ticket) {
                        fx.reply(
                            old,
                            Reply::Sync(SyncResponse::error(e::REBALANCE_IN_PROGRESS)),
                        );
                    }
                    if is_leader && group.staged_assignment.is_none() {
                        let mut staged: HashMap<String, Bytes> = HashMap::new();
                        for (id, a) in req.assignments {
                            if group.members.contains_key(&id) {
                                staged.insert(id, a);
                            }
                        }
                        group.staged_assignment = Some(staged);
                        fx.writes.push(Write {
                            records: vec![group.metadata_record()],
                            then: Some(AfterWrite::SyncStored {
                                group_id: group.group_id.clone(),
                                generation_id: group.generation_id,
                            }),
                        });
                    }
                }
                GroupState::Stable => {
                    group.pending_sync.remove(&req.member_id);
                    let m = group.members.get_mut(&req.member_id).expect("member");
                    m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
                    let reply = SyncResponse {
                        error: e::NONE,
                        protocol_type: group.protocol_type.clone(),
                        protocol_name: group.protocol_name.clone(),
                        assignment: m.assignment.clone(),
                    };
                    fx.reply(ticket, Reply::Sync(reply));
                }
            }
        }
        fx
    }

    // ----- Write completions -----------------------------------------------------------------

    /// Called by the driver once a `Write` is durable (`error == NONE`) or failed.
    pub fn write_done(&mut self, now_ms: i64, after: AfterWrite, error: i16) -> Effects {
        let mut fx = Effects::default();
        let error = map_write_error(error);
        match after {
            AfterWrite::SyncStored {
                group_id,
                generation_id,
            } => {
                let Some(group) = self.groups.get_mut(&group_id) else {
                    return fx;
                };
                if group.state != GroupState::CompletingRebalance
                    || group.generation_id != generation_id
                {
                    return fx; // A rebalance started meanwhile and answered the parked syncs.
                }
                let Some(staged) = group.staged_assignment.take() else {
                    return fx;
                };
                if error != e::NONE {
                    for m in group.members.values_mut() {
                        m.assignment = Bytes::new();
                        if let Some(t) = m.sync_ticket.take() {
                            fx.reply(t, Reply::Sync(SyncResponse::error(error)));
                        }
                    }
                    self.prepare_rebalance(now_ms, &group_id, &mut fx);
                    return fx;
                }
                let (ptype, pname) = (group.protocol_type.clone(), group.protocol_name.clone());
                for m in group.members.values_mut() {
                    m.assignment = staged.get(&m.member_id).cloned().unwrap_or_default();
                    if let Some(t) = m.sync_ticket.take() {
                        fx.reply(
                            t,
                            Reply::Sync(SyncResponse {
                                error: e::NONE,
                                protocol_type: ptype.clone(),
                                protocol_name: pname.clone(),
                                assignment: m.assignment.clone(),
                            }),
                        );
                    }
                }
                group.transition(GroupState::Stable, now_ms);
            }
            AfterWrite::OffsetsStored {
                group_id,
                ticket,
                offsets,
                errors,
            } => {
                if error == e::NONE {
                    let group = self
                        .groups
                        .entry(group_id.clone())
                        .or_insert_with(|| Group::new(&group_id, now_ms));
                    for (topic, partition, value) in offsets {
                        group.offsets.insert((topic, partition), value);
                    }
                }
                let codes = errors.into_iter().map(|c| c.unwrap_or(error)).collect();
                fx.reply(ticket, Reply::Commit(codes));
            }
            AfterWrite::Reply { ticket, reply } => {
                let reply = if error == e::NONE {
                    reply
                } else {
                    match reply {
                        Reply::Join(j) => Reply::Join(JoinResponse::error(error, &j.member_id)),
                        Reply::Sync(_) => Reply::Sync(SyncResponse::error(error)),
                        Reply::Commit(c) => Reply::Commit(vec![error; c.len()]),
                        Reply::Delete(_) => Reply::Delete(error),
                        Reply::OffsetDelete(_, p) => {
                            Reply::OffsetDelete(error, vec![error; p.len()])
                        }
                    }
                };
                fx.reply(ticket, reply);
            }
        }
        fx
    }

    // ----- Heartbeat, LeaveGroup -------------------------------------------------------------

    pub fn heartbeat(&mut self, now_ms: i64, req: HeartbeatRequest) -> i16 {
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return e::UNKNOWN_MEMBER_ID;
        };
        if group.state == GroupState::Dead {
            return e::COORDINATOR_NOT_AVAILABLE;
        }
        if group.is_static_fenced(req.group_instance_id.as_deref(), &req.member_id) {
            return e::FENCED_INSTANCE_ID;
        }
        let generation_id = group.generation_id;
        let state = group.state;
        let Some(m) = group.members.get_mut(&req.member_id) else {
            return e::UNKNOWN_MEMBER_ID;
        };
        if req.generation_id != generation_id {
            return e::ILLEGAL_GENERATION;
        }
        match state {
            GroupState::Empty | GroupState::Dead => e::UNKNOWN_MEMBER_ID,
            GroupState::PreparingRebalance => {
                m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
                e::REBALANCE_IN_PROGRESS
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
                e::NONE
            }
        }
    }

    /// LeaveGroup for `(member_id, group_instance_id)` pairs (v3+ batches; v0-2 send one).
    /// Returns the top-level error and one error per member.
    pub fn leave(
        &mut self,
        now_ms: i64,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> (i16, Vec<i16>, Effects) {
        let mut fx = Effects::default();
        let Some(group) = self.groups.get(group_id) else {
            return (
                e::UNKNOWN_MEMBER_ID,
                vec![e::UNKNOWN_MEMBER_ID; members.len()],
                fx,
            );
        };
        if group.state == GroupState::Dead {
            return (
                e::COORDINATOR_NOT_AVAILABLE,
                vec![e::COORDINATOR_NOT_AVAILABLE; members.len()],
                fx,
            );
        }
        let mut errors = Vec::with_capacity(members.len());
        for (member_id, instance) in members {
            let group = self.groups.get_mut(group_id).expect("present");
            let code = if let Some(instance) = instance {
                match group.static_members.get(instance).cloned() {
                    None => e::UNKNOWN_MEMBER_ID,
                    Some(owner) if !member_id.is_empty() && *member_id != owner => {
                        e::FENCED_INSTANCE_ID
                    }
                    Some(owner) => {
                        self.remove_member_and_update_group(now_ms, group_id, &owner, &mut fx);
                        e::NONE
                    }
                }
            } else if group.pending_members.remove(member_id).is_some() {
                self.try_complete_join(now_ms, group_id, &mut fx);
                e::NONE
            } else if !group.members.contains_key(member_id) {
                e::UNKNOWN_MEMBER_ID
            } else {
                self.remove_member_and_update_group(now_ms, group_id, member_id, &mut fx);
                e::NONE
            };
            errors.push(code);
        }
        (e::NONE, errors, fx)
    }

    fn remove_member_and_update_group(
        &mut self,
        now_ms: i64,
        group_id: &str,
        member_id: &str,
        fx: &mut Effects,
    ) {
        let group = self.groups.get_mut(group_id).expect("present");
        let Some(m) = group.members.shift_remove(member_id) else {
            return;
        };
        if let Some(instance) = &m.group_instance_id {
            if group.static_members.get(instance).map(String::as_str) == Some(member_id) {
                group.static_members.remove(instance);
            }
        }
        if let Some(t) = m.join_ticket {
            fx.reply(
                t,
                Reply::Join(JoinResponse::error(e::UNKNOWN_MEMBER_ID, member_id)),
            );
        }
        if let Some(t) = m.sync_ticket {
            fx.reply(t, Reply::Sync(SyncResponse::error(e::UNKNOWN_MEMBER_ID)));
        }
        group.pending_sync.remove(member_id);
        if group.is_leader(member_id) {
            group.leader_id = group.members.keys().next().cloned();
        }
        match group.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now_ms, group_id, fx)
            }
            GroupState::PreparingRebalance => self.try_complete_join(now_ms, group_id, fx),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    // ----- Offsets ---------------------------------------------------------------------------

    pub fn commit(&mut self, now_ms: i64, req: CommitRequest, ticket: Ticket) -> Effects {
        let mut fx = Effects::default();
        let n = req.offsets.len();
        let reject = |fx: &mut Effects, code: i16| fx.reply(ticket, Reply::Commit(vec![code; n]));
        if req.group_id.is_empty() {
            reject(&mut fx, e::INVALID_GROUP_ID);
            return fx;
        }
        if !self.groups.contains_key(&req.group_id) {
            if req.generation_id >= 0 {
                reject(&mut fx, e::ILLEGAL_GENERATION);
                return fx;
            }
            self.groups
                .insert(req.group_id.clone(), Group::new(&req.group_id, now_ms));
        }
        let group = self.groups.get_mut(&req.group_id).expect("present");
        let code = if group.state == GroupState::Dead {
            Some(e::COORDINATOR_NOT_AVAILABLE)
        } else if group.is_static_fenced(req.group_instance_id.as_deref(), &req.member_id) {
            Some(e::FENCED_INSTANCE_ID)
        } else if req.generation_id < 0 && group.state == GroupState::Empty {
            None // Offsets only: the group does not use group management.
        } else if !group.members.contains_key(&req.member_id) {
            Some(e::UNKNOWN_MEMBER_ID)
        } else if req.generation_id != group.generation_id {
            Some(e::ILLEGAL_GENERATION)
        } else {
            match group.state {
                GroupState::CompletingRebalance => Some(e::REBALANCE_IN_PROGRESS),
                GroupState::Stable | GroupState::PreparingRebalance => {
                    let m = group.members.get_mut(&req.member_id).expect("member");
                    m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
                    None
                }
                GroupState::Empty | GroupState::Dead => Some(e::UNKNOWN_MEMBER_ID),
            }
        };
        if let Some(code) = code {
            reject(&mut fx, code);
            return fx;
        }
        let mut offsets = Vec::new();
        let mut errors = Vec::with_capacity(n);
        let mut records = Vec::new();
        for o in req.offsets {
            if o.metadata
                .as_ref()
                .is_some_and(|m| m.len() > self.config.offset_metadata_bytes_max)
            {
                errors.push(Some(e::OFFSET_METADATA_TOO_LARGE));
                continue;
            }
            let value = OffsetValue {
                offset: o.offset,
                leader_epoch: o.leader_epoch,
                metadata: o.metadata,
                commit_timestamp_ms: now_ms,
                expire_timestamp_ms: req
                    .retention_ms
                    .filter(|r| *r >= 0)
                    .map(|r| now_ms.saturating_add(r)),
            };
            records.push(GroupRecord::Offset {
                group_id: req.group_id.clone(),
                topic: o.topic.clone(),
                partition: o.partition,
                value: Some(value.clone()),
            });
            offsets.push((o.topic, o.partition, value));
            errors.push(None);
        }
        if records.is_empty() {
            fx.reply(
                ticket,
                Reply::Commit(errors.into_iter().map(|c| c.unwrap_or(e::NONE)).collect()),
            );
            return fx;
        }
        fx.writes.push(Write {
            records,
            then: Some(AfterWrite::OffsetsStored {
                group_id: req.group_id,
                ticket,
                offsets,
                errors,
            }),
        });
        fx
    }

    /// Committed offsets of `group_id`: the requested partitions, or all (`topics == None`).
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Vec<FetchedTopic> {
        let group = self.groups.get(group_id);
        let lookup = |topic: &str, partition: i32| -> FetchedPartition {
            match group.and_then(|g| g.offsets.get(&(topic.to_string(), partition))) {
                Some(v) => FetchedPartition {
                    partition,
                    offset: v.offset,
                    leader_epoch: v.leader_epoch,
                    metadata: v.metadata.clone(),
                    error: e::NONE,
                },
                None => FetchedPartition {
                    partition,
                    offset: -1,
                    leader_epoch: -1,
                    metadata: Some(String::new()),
                    error: e::NONE,
                },
            }
        };
        match topics {
            Some(topics) => topics
                .iter()
                .map(|(t, ps)| FetchedTopic {
                    topic: t.clone(),
                    partitions: ps.iter().map(|p| lookup(t, *p)).collect(),
                })
                .collect(),
            None => {
                let mut out: Vec<FetchedTopic> = Vec::new();
                if let Some(g) = group {
                    for (topic, partition) in g.offsets.keys() {
                        if out.last().is_none_or(|t| &t.topic != topic) {
                            out.push(FetchedTopic {
                                topic: topic.clone(),
                                partitions: Vec::new(),
                            });
                        }
                        out.last_mut()
                            .expect("pushed")
                            .partitions
                            .push(lookup(topic, *partition));
                    }
                }
                out
            }
        }
    }

    /// OffsetDelete: offsets of topics the group is not consuming (any, when it is empty).
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: &[(String, i32)],
        ticket: Ticket,
    ) -> Effects {
        let mut fx = Effects::default();
        let n = partitions.len();
        let Some(group) = self.groups.get_mut(group_id) else {
            fx.reply(
                ticket,
                Reply::OffsetDelete(e::GROUP_ID_NOT_FOUND, vec![e::NONE; n]),
            );
            return fx;
        };
        let subscribed = match group.state {
            GroupState::Dead => {
                fx.reply(
                    ticket,
                    Reply::OffsetDelete(e::GROUP_ID_NOT_FOUND, vec![e::NONE; n]),
                );
                return fx;
            }
            GroupState::Empty => None,
            _ if group.protocol_type.as_deref() == Some(PROTOCOL_TYPE_CONSUMER) => {
                // Unknown subscriptions count as subscribed to everything.
                Some(group.subscribed_topics())
            }
            _ => {
                fx.reply(
                    ticket,
                    Reply::OffsetDelete(e::NON_EMPTY_GROUP, vec![e::NONE; n]),
                );
                return fx;
            }
        };
        let mut errors = Vec::with_capacity(n);
        let mut records = Vec::new();
        for (topic, partition) in partitions {
            let busy = match &subscribed {
                None => false,
                Some(None) => true,
                Some(Some(topics)) => topics.contains(topic),
            };
            if busy {
                errors.push(e::GROUP_SUBSCRIBED_TO_TOPIC);
                continue;
            }
            if group.offsets.remove(&(topic.clone(), *partition)).is_some() {
                records.push(GroupRecord::Offset {
                    group_id: group_id.to_string(),
                    topic: topic.clone(),
                    partition: *partition,
                    value: None,
                });
            }
            errors.push(e::NONE);
        }
        let reply = Reply::OffsetDelete(e::NONE, errors);
        if records.is_empty() {
            fx.reply(ticket, reply);
        } else {
            fx.writes.push(Write {
                records,
                then: Some(AfterWrite::Reply { ticket, reply }),
            });
        }
        fx
    }

    // ----- Admin -----------------------------------------------------------------------------

    pub fn list_groups(&self) -> Vec<ListedGroup> {
        self.groups
            .values()
            .map(|g| ListedGroup {
                group_id: g.group_id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state,
            })
            .collect()
    }

    pub fn describe(&self, group_id: &str) -> DescribedGroup {
        let Some(g) = self.groups.get(group_id) else {
            return DescribedGroup {
                error: e::NONE,
                group_id: group_id.to_string(),
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol_name: String::new(),
                generation_id: -1,
                members: Vec::new(),
            };
        };
        // Like Kafka: member metadata and assignments only while Stable.
        let stable = g.state == GroupState::Stable;
        let protocol = g.protocol_name.clone().unwrap_or_default();
        DescribedGroup {
            error: e::NONE,
            group_id: g.group_id.clone(),
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol_name: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            generation_id: g.generation_id,
            members: g
                .members
                .values()
                .map(|m| DescribedMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }
    }

    /// DeleteGroups for one group: only groups without members; offsets go with it.
    pub fn delete_group(&mut self, group_id: &str, ticket: Ticket) -> Effects {
        let mut fx = Effects::default();
        let code = match self.groups.get(group_id) {
            None => Some(e::GROUP_ID_NOT_FOUND),
            Some(g) if g.state == GroupState::Dead => Some(e::GROUP_ID_NOT_FOUND),
            Some(g) if g.state != GroupState::Empty || !g.members.is_empty() => {
                Some(e::NON_EMPTY_GROUP)
            }
            Some(_) => None,
        };
        if let Some(code) = code {
            fx.reply(ticket, Reply::Delete(code));
            return fx;
        }
        let group = self.groups.remove(group_id).expect("present");
        fx.writes.push(Write {
            records: tombstones(&group),
            then: Some(AfterWrite::Reply {
                ticket,
                reply: Reply::Delete(e::NONE),
            }),
        });
        fx
    }

    // ----- Timers ----------------------------------------------------------------------------

    /// Expires sessions, pending members, join and sync phases, and (periodically) offsets.
    pub fn tick(&mut self, now_ms: i64) -> Effects {
        let mut fx = Effects::default();
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        for id in &ids {
            let Some(group) = self.groups.get_mut(id) else {
                continue;
            };
            let before = group.pending_members.len();
            group
                .pending_members
                .retain(|_, deadline| now_ms < *deadline);
            let pending_expired = group.pending_members.len() != before;
            let expired: Vec<String> = group
                .members
                .values()
                .filter(|m| !m.keep_alive(now_ms))
                .map(|m| m.member_id.clone())
                .collect();
            for member_id in expired {
                self.remove_member_and_update_group(now_ms, id, &member_id, &mut fx);
            }
            let group = self.groups.get_mut(id).expect("present");
            if matches!(
                group.state,
                GroupState::CompletingRebalance | GroupState::Stable
            ) && !group.pending_sync.is_empty()
                && now_ms >= group.sync_deadline_ms
            {
                // Members that never sent SyncGroup within the rebalance timeout.
                let laggards: Vec<String> = std::mem::take(&mut group.pending_sync)
                    .into_iter()
                    .collect();
                for member_id in laggards {
                    self.remove_member_and_update_group(now_ms, id, &member_id, &mut fx);
                }
            }
            let group = self.groups.get_mut(id).expect("present");
            if group.state == GroupState::PreparingRebalance
                && (pending_expired || now_ms >= group.join_deadline_ms)
            {
                self.try_complete_join(now_ms, id, &mut fx);
            }
        }
        if now_ms >= self.next_cleanup_ms {
            self.next_cleanup_ms = now_ms + self.config.offsets_retention_check_interval_ms;
            self.expire_offsets(now_ms, &mut fx);
        }
        fx
    }

    /// Kafka's offset expiry: all offsets of an empty group once it has been empty for the
    /// retention period; for a Stable consumer group, offsets of topics it no longer consumes;
    /// explicit per-commit expiry (OffsetCommit v2-4). Empty groups left without offsets go.
    pub fn expire_offsets(&mut self, now_ms: i64, fx: &mut Effects) {
        let retention = self.config.offsets_retention_ms;
        let mut dead = Vec::new();
        for group in self.groups.values_mut() {
            let subscribed = if group.state == GroupState::Stable {
                group.subscribed_topics()
            } else {
                None
            };
            let eligible = match group.state {
                GroupState::Empty => true,
                GroupState::Stable => subscribed.is_some(),
                _ => false,
            };
            if !eligible {
                continue;
            }
            let empty_since = if group.protocol_type.is_some() && group.state == GroupState::Empty {
                Some(group.state_timestamp_ms)
            } else {
                None
            };
            let expired: Vec<(String, i32)> = group
                .offsets
                .iter()
                .filter(|((topic, _), v)| {
                    if subscribed.as_ref().is_some_and(|s| s.contains(topic)) {
                        return false;
                    }
                    match v.expire_timestamp_ms {
                        Some(at) => now_ms >= at,
                        None => {
                            let base = empty_since
                                .map_or(v.commit_timestamp_ms, |t| t.max(v.commit_timestamp_ms));
                            now_ms >= base.saturating_add(retention)
                        }
                    }
                })
                .map(|(k, _)| k.clone())
                .collect();
            let mut records = Vec::new();
            for (topic, partition) in expired {
                group.offsets.remove(&(topic.clone(), partition));
                records.push(GroupRecord::Offset {
                    group_id: group.group_id.clone(),
                    topic,
                    partition,
                    value: None,
                });
            }
            if group.state == GroupState::Empty
                && group.offsets.is_empty()
                && group.pending_members.is_empty()
            {
                records.push(GroupRecord::Group {
                    group_id: group.group_id.clone(),
                    value: None,
                });
                dead.push(group.group_id.clone());
            }
            if !records.is_empty() {
                fx.writes.push(Write {
                    records,
                    then: None,
                });
            }
        }
        for id in dead {
            self.groups.remove(&id);
        }
    }

    // ----- Loading ---------------------------------------------------------------------------

    /// Applies one stored record (in log order) while loading the partition.
    pub fn replay(&mut self, record: GroupRecord) {
        match record {
            GroupRecord::Offset {
                group_id,
                topic,
                partition,
                value,
            } => match value {
                Some(v) => {
                    self.groups
                        .entry(group_id.clone())
                        .or_insert_with(|| Group::new(&group_id, v.commit_timestamp_ms))
                        .offsets
                        .insert((topic, partition), v);
                }
                None => {
                    if let Some(g) = self.groups.get_mut(&group_id) {
                        g.offsets.remove(&(topic, partition));
                    }
                }
            },
            GroupRecord::Group { group_id, value } => match value {
                Some(v) => {
                    let group = self
                        .groups
                        .entry(group_id.clone())
                        .or_insert_with(|| Group::new(&group_id, v.state_timestamp_ms));
                    group.generation_id = v.generation_id;
                    group.protocol_type = v.protocol_type;
                    group.protocol_name = v.protocol_name.clone();
                    group.leader_id = v.leader_id;
                    group.state_timestamp_ms = v.state_timestamp_ms;
                    group.members.clear();
                    group.static_members.clear();
                    let protocol = v.protocol_name.unwrap_or_default();
                    for m in v.members {
                        if let Some(i) = &m.group_instance_id {
                            group.static_members.insert(i.clone(), m.member_id.clone());
                        }
                        group.members.insert(
                            m.member_id.clone(),
                            Member {
                                member_id: m.member_id,
                                group_instance_id: m.group_instance_id,
                                client_id: m.client_id,
                                client_host: m.client_host,
                                session_timeout_ms: m.session_timeout_ms,
                                rebalance_timeout_ms: m.rebalance_timeout_ms,
                                protocols: vec![(protocol.clone(), m.subscription)],
                                assignment: m.assignment,
                                join_ticket: None,
                                sync_ticket: None,
                                heartbeat_deadline_ms: 0,
                                is_new: false,
                            },
                        );
                    }
                }
                None => {
                    let keep_offsets = self
                        .groups
                        .remove(&group_id)
                        .map(|g| g.offsets)
                        .unwrap_or_default();
                    if !keep_offsets.is_empty() {
                        let mut g = Group::new(&group_id, 0);
                        g.offsets = keep_offsets;
                        self.groups.insert(group_id, g);
                    }
                }
            },
        }
    }

    /// Ends loading: groups with members are Stable (their sessions restart now), others Empty.
    pub fn finish_load(&mut self, now_ms: i64) {
        for group in self.groups.values_mut() {
            if group.members.is_empty() {
                group.state = GroupState::Empty;
                group.leader_id = None;
            } else {
                group.state = GroupState::Stable;
                if group
                    .leader_id
                    .as_ref()
                    .is_none_or(|l| !group.members.contains_key(l))
                {
                    group.leader_id = group.members.keys().next().cloned();
                }
                for m in group.members.values_mut() {
                    m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms as i64;
                }
            }
        }
        self.next_cleanup_ms = now_ms + self.config.offsets_retention_check_interval_ms;
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
