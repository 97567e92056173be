//! Kafka wire protocol: framing, headers, request/response codecs.
//!
//! Control-plane messages use the `kafka-protocol` crate's generated types; decoding always
//! starts from a `bytes::Bytes` frame so record payloads stay zero-copy slices of it.
//! Record batches (magic 2) have their own codec in [`records`].

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
        }
    };
}

pub mod errors;
pub mod fetch;
pub mod frame;
pub mod records;
pub mod request;
pub mod response;
pub mod shape;
pub mod versions;

pub use frame::{check_frame, split_frame, FrameError, FrameStatus};
pub use request::{decode_request, DecodedRequest, Request, RequestError};
pub use response::{encode_response, error_response, Response};
pub use versions::{api_versions_response, ApiRange, ADVERTISED};
