//! Kafka wire protocol: framing, headers, request/response codecs.
//!
//! Control-plane messages use the `kafka-protocol` crate's generated types; decoding always
//! starts from a `bytes::Bytes` frame so record payloads stay zero-copy slices of it.
//! Record batches (magic 2) have their own codec in [`records`].
//!
//! A connection loop uses it like this:
//! 1. [`split_frame`]`(buf, request_bytes_max)`: `Ok(None)` read more; `Err` close.
//! 2. [`decode_request`]`(frame)`: on `Err(e)`, send `e.reply()` if it is `Some` (KIP-511
//!    ApiVersions fallback, Produce v0-2 refusal) and carry on, otherwise close.
//!    [`shape`] has already rejected bodies whose array counts cannot fit.
//! 3. Handle `DecodedRequest::request`; skip the response when `!expects_response()`
//!    (Produce acks=0). For an API without a handler, [`error_response`] answers every
//!    topic/partition/group with one error code.
//! 4. [`encode_response`]`(correlation_id, version, &response)` (header v0/v1 chosen per API,
//!    v0 always for ApiVersions), or for Fetch with file-backed records
//!    [`fetch::encode_fetch_response`], which leaves gaps for the record bytes.

/// Calls `$m!` with every supported API: `Variant: RequestType, ResponseType;`.
macro_rules! with_apis {
    ($m:ident) => {
        $m! {
            ApiVersions: ApiVersionsRequest, ApiVersionsResponse;
            Produce: ProduceRequest, ProduceResponse;
            Fetch: FetchRequest, FetchResponse;
            ListOffsets: ListOffsetsRequest, ListOffsetsResponse;
            Metadata: MetadataRequest, MetadataResponse;
            OffsetCommit: OffsetCommitRequest, OffsetCommitResponse;
            OffsetFetch: OffsetFetchRequest, OffsetFetchResponse;
            FindCoordinator: FindCoordinatorRequest, FindCoordinatorResponse;
            JoinGroup: JoinGroupRequest, JoinGroupResponse;
            Heartbeat: HeartbeatRequest, HeartbeatResponse;
            LeaveGroup: LeaveGroupRequest, LeaveGroupResponse;
            SyncGroup: SyncGroupRequest, SyncGroupResponse;
            DescribeGroups: DescribeGroupsRequest, DescribeGroupsResponse;
            ListGroups: ListGroupsRequest, ListGroupsResponse;
            InitProducerId: InitProducerIdRequest, InitProducerIdResponse;
            CreateTopics: CreateTopicsRequest, CreateTopicsResponse;
            DeleteTopics: DeleteTopicsRequest, DeleteTopicsResponse;
            DescribeConfigs: DescribeConfigsRequest, DescribeConfigsResponse;
            DeleteGroups: DeleteGroupsRequest, DeleteGroupsResponse;
            OffsetForLeaderEpoch: OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse;
            OffsetDelete: OffsetDeleteRequest, OffsetDeleteResponse;
            DescribeCluster: DescribeClusterRequest, DescribeClusterResponse;
            CreatePartitions: CreatePartitionsRequest, CreatePartitionsResponse;
            IncrementalAlterConfigs: IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse;
        }
    };
}

pub mod errors;
pub mod fetch;
pub mod frame;
pub mod partitioner;
pub mod records;
pub mod request;
pub mod response;
pub mod shape;
pub mod versions;

pub use frame::{check_frame, split_frame, FrameError, FrameStatus};
pub use request::{decode_request, DecodedRequest, Request, RequestError};
pub use response::{encode_response, error_response, Response};
pub use versions::{api_versions_response, ApiRange, ADVERTISED};

/// Wall-clock milliseconds since the Unix epoch: Kafka's timestamp unit (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
