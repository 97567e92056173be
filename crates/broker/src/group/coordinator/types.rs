//! Requests and replies of the coordinator: plain types; the handlers convert from/to the wire types.

use super::*;

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
    pub(super) fn reply(&mut self, ticket: Ticket, reply: Reply) {
        self.replies.push((ticket, reply));
    }
    pub fn append(&mut self, mut other: Effects) {
        self.replies.append(&mut other.replies);
        self.writes.append(&mut other.writes);
    }
}
