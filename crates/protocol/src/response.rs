//! Response encoding: size prefix, response header (v0, or v1 for flexible versions; always v0
//! for ApiVersions), body. Plus an error response for any request, where every topic,
//! partition, group or resource carries the same error code.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::request::{LegacyProduce, Request};
use crate::versions;

macro_rules! define_response {
    ($($variant:ident: $req:ident, $resp:ident;)*) => {
        /// A response body, one variant per supported API.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Response {
            $($variant($resp),)*
        }

        impl Response {
            pub fn api_key(&self) -> ApiKey {
                match self {
                    $(Response::$variant(_) => ApiKey::$variant,)*
                }
            }

            fn encode_body(&self, buf: &mut BytesMut, version: i16) -> Result<(), String> {
                let result = match self {
                    $(Response::$variant(r) => r.encode(buf, version),)*
                };
                result.map_err(|e| e.to_string())
            }

            /// Decodes a response body of `api_key` at `version` (clients and tests).
            pub fn decode_body(api_key: ApiKey, body: &mut bytes::Bytes, version: i16) -> Result<Response, DecodeError> {
                let err = |reason: String| DecodeError { api_key, version, reason };
                match api_key {
                    $(ApiKey::$variant => $resp::decode(body, version).map(Response::$variant).map_err(|e| err(e.to_string())),)*
                    other => Err(err(format!("api {other:?} is not supported"))),
                }
            }
        }
    };
}
with_apis!(define_response);

/// A response that cannot be encoded at the requested version (a field set that the version
/// lacks, a string too long): a bug in the handler, never the client's fault.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot encode {api_key:?} v{version} response: {reason}")]
pub struct EncodeError {
    pub api_key: ApiKey,
    pub version: i16,
    pub reason: String,
}

/// A response body that does not decode (client side).
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot decode {api_key:?} v{version} response: {reason}")]
pub struct DecodeError {
    pub api_key: ApiKey,
    pub version: i16,
    pub reason: String,
}

/// The response header version for `api_key` at `version`.
pub fn response_header_version(api_key: ApiKey, version: i16) -> i16 {
    if api_key == ApiKey::ApiVersions {
        return 0;
    }
    api_key.response_header_version(version)
}

/// A complete response frame: size prefix, header, body.
pub fn encode_response(
    correlation_id: i32,
    version: i16,
    response: &Response,
) -> Result<BytesMut, EncodeError> {
    let mut buf = BytesMut::with_capacity(128);
    encode_response_into(&mut buf, correlation_id, version, response)?;
    Ok(buf)
}

/// Appends a complete response frame to `buf`; on error `buf` is left as it was.
pub fn encode_response_into(
    buf: &mut BytesMut,
    correlation_id: i32,
    version: i16,
    response: &Response,
) -> Result<(), EncodeError> {
    let api_key = response.api_key();
    let start = buf.len();
    buf.put_i32(0);
    let result = ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(buf, response_header_version(api_key, version))
        .map_err(|e| e.to_string())
        .and_then(|()| response.encode_body(buf, version));
    if let Err(reason) = result {
        buf.truncate(start);
        return Err(EncodeError {
            api_key,
            version,
            reason,
        });
    }
    let size = buf.len() - start - 4;
    assert!(size <= i32::MAX as usize, "response of {size} bytes");
    buf[start..start + 4].copy_from_slice(&(size as i32).to_be_bytes());
    Ok(())
}

/// Header bytes of a response whose body the caller writes itself (e.g. a Fetch response
/// whose record sets are file slices): size prefix covering `header + body_bytes`, then the
/// response header. Returns the header length (prefix included).
pub fn encode_response_header(
    buf: &mut BytesMut,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body_bytes: usize,
) -> usize {
    let start = buf.len();
    let header_version = response_header_version(api_key, version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_bytes = header
        .compute_size(header_version)
        .expect("response header size");
    let size = header_bytes + body_bytes;
    assert!(size <= i32::MAX as usize, "response of {size} bytes");
    buf.put_i32(size as i32);
    header
        .encode(buf, header_version)
        .expect("response header encodes");
    buf.len() - start
}

fn empty() -> StrBytes {
    StrBytes::new()
}

/// The response to `request` (received at `version`) in which everything failed with `code`.
pub fn error_response(request: &Request, version: i16, code: i16) -> Response {
    match request {
        Request::ApiVersions(_) => {
            let (_, mut r) = versions::api_versions_response(version);
            r.error_code = code;
            Response::ApiVersions(r)
        }
        Request::Produce(r) => Response::Produce(
            ProduceResponse::default().with_responses(
                r.topic_data
                    .iter()
                    .map(|t| {
                        produce_response::TopicProduceResponse::default()
                            .with_name(t.name.clone())
                            .with_topic_id(t.topic_id)
                            .with_partition_responses(
                                t.partition_data
                                    .iter()
                                    .map(|p| {
                                        produce_response::PartitionProduceResponse::default()
                                            .with_index(p.index)
                                            .with_error_code(code)
                                            .with_base_offset(-1)
                                            .with_log_append_time_ms(-1)
                                            .with_log_start_offset(-1)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        Request::Fetch(r) => Response::Fetch(
            FetchResponse::default()
                .with_error_code(if version >= 7 { code } else { 0 })
                .with_session_id(0)
                .with_responses(
                    r.topics
                        .iter()
                        .map(|t| {
                            fetch_response::FetchableTopicResponse::default()
                                .with_topic(t.topic.clone())
                                .with_topic_id(t.topic_id)
                                .with_partitions(
                                    t.partitions
                                        .iter()
                                        .map(|p| {
                                            fetch_response::PartitionData::default()
                                                .with_partition_index(p.partition)
                                                .with_error_code(code)
                                                .with_high_watermark(-1)
                                                .with_last_stable_offset(-1)
                                                .with_log_start_offset(-1)
                                                .with_records(Some(Default::default()))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
        ),
        Request::ListOffsets(r) => Response::ListOffsets(
            ListOffsetsResponse::default().with_topics(
                r.topics
                    .iter()
                    .map(|t| {
                        list_offsets_response::ListOffsetsTopicResponse::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        list_offsets_response::ListOffsetsPartitionResponse::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(code)
                                            .with_timestamp(-1)
                                            .with_offset(-1)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        Request::Metadata(r) => Response::Metadata(
            MetadataResponse::default()
                .with_controller_id(BrokerId(-1))
                .with_error_code(if version >= 13 { code } else { 0 })
                .with_topics(
                    r.topics
                        .iter()
                        .flatten()
                        .map(|t| {
                            metadata_response::MetadataResponseTopic::default()
                                .with_name(Some(t.name.clone().unwrap_or_default()))
                                .with_topic_id(t.topic_id)
                                .with_error_code(code)
                        })
                        .collect(),
                ),
        ),
        Request::OffsetCommit(r) => Response::OffsetCommit(
            OffsetCommitResponse::default().with_topics(
                r.topics
                    .iter()
                    .map(|t| {
                        offset_commit_response::OffsetCommitResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_topic_id(t.topic_id)
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        offset_commit_response::OffsetCommitResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        Request::OffsetFetch(r) => {
            let mut out = OffsetFetchResponse::default();
            if version >= 8 {
                out.groups = r
                    .groups
                    .iter()
                    .map(|g| {
                        offset_fetch_response::OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id.clone())
                            .with_error_code(code)
                            .with_topics(
                                g.topics
                                    .iter()
                                    .flatten()
                                    .map(|t| {
                                        offset_fetch_response::OffsetFetchResponseTopics::default()
                                            .with_name(t.name.clone())
                                            .with_topic_id(t.topic_id)
                                            .with_partitions(
                                                t.partition_indexes
                                                    .iter()
                                                    .map(|&p| {
                                                        offset_fetch_response::OffsetFetchResponsePartitions::default()
                                                            .with_partition_index(p)
                                                            .with_committed_offset(-1)
                                                            .with_committed_leader_epoch(-1)
                                                            .with_metadata(Some(empty()))
                                                            .with_error_code(code)
                                                    })
                                                    .collect(),
                                            )
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
            } else {
                out.error_code = if version >= 2 { code } else { 0 };
                out.topics = r
                    .topics
                    .iter()
                    .flatten()
                    .map(|t| {
                        offset_fetch_response::OffsetFetchResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partition_indexes
                                    .iter()
                                    .map(|&p| {
                                        offset_fetch_response::OffsetFetchResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(-1)
                                            .with_committed_leader_epoch(-1)
                                            .with_metadata(Some(empty()))
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
            }
            Response::OffsetFetch(out)
        }
        Request::FindCoordinator(r) => {
            let mut out = FindCoordinatorResponse::default();
            if version >= 4 {
                out.coordinators = r
                    .coordinator_keys
                    .iter()
                    .map(|k| {
                        find_coordinator_response::Coordinator::default()
                            .with_key(k.clone())
                            .with_node_id(BrokerId(-1))
                            .with_host(empty())
                            .with_port(-1)
                            .with_error_code(code)
                    })
                    .collect();
            } else {
                out.error_code = code;
                out.node_id = BrokerId(-1);
                out.port = -1;
            }
            Response::FindCoordinator(out)
        }
        Request::JoinGroup(r) => Response::JoinGroup(
            JoinGroupResponse::default()
                .with_error_code(code)
                .with_generation_id(-1)
                .with_protocol_name(if version >= 7 { None } else { Some(empty()) })
                .with_member_id(r.member_id.clone()),
        ),
        Request::Heartbeat(_) => {
            Response::Heartbeat(HeartbeatResponse::default().with_error_code(code))
        }
        Request::LeaveGroup(r) => Response::LeaveGroup(
            LeaveGroupResponse::default()
                .with_error_code(code)
                .with_members(if version >= 3 {
                    r.members
                        .iter()
                        .map(|m| {
                            leave_group_response::MemberResponse::default()
                                .with_member_id(m.member_id.clone())
                                .with_group_instance_id(m.group_instance_id.clone())
                                .with_error_code(code)
                        })
                        .collect()
                } else {
                    Vec::new()
                }),
        ),
        Request::SyncGroup(_) => {
            Response::SyncGroup(SyncGroupResponse::default().with_error_code(code))
        }
        Request::DescribeGroups(r) => Response::DescribeGroups(
            DescribeGroupsResponse::default().with_groups(
                r.groups
                    .iter()
                    .map(|g| {
                        describe_groups_response::DescribedGroup::default()
                            .with_group_id(g.clone())
                            .with_error_code(code)
                    })
                    .collect(),
            ),
        ),
        Request::ListGroups(_) => {
            Response::ListGroups(ListGroupsResponse::default().with_error_code(code))
        }
        Request::InitProducerId(_) => Response::InitProducerId(
            InitProducerIdResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        ),
        Request::CreateTopics(r) => Response::CreateTopics(
            CreateTopicsResponse::default().with_topics(
                r.topics
                    .iter()
                    .map(|t| {
                        create_topics_response::CreatableTopicResult::default()
                            .with_name(t.name.clone())
                            .with_error_code(code)
                            .with_num_partitions(-1)
                            .with_replication_factor(-1)
                            .with_configs(None)
                    })
                    .collect(),
            ),
        ),
        Request::DeleteTopics(r) => {
            let results = if version >= 6 {
                r.topics
                    .iter()
                    .map(|t| {
                        delete_topics_response::DeletableTopicResult::default()
                            .with_name(t.name.clone())
                            .with_topic_id(t.topic_id)
                            .with_error_code(code)
                    })
                    .collect()
            } else {
                r.topic_names
                    .iter()
                    .map(|n| {
                        delete_topics_response::DeletableTopicResult::default()
                            .with_name(Some(n.clone()))
                            .with_error_code(code)
                    })
                    .collect()
            };
            Response::DeleteTopics(DeleteTopicsResponse::default().with_responses(results))
        }
        Request::DescribeConfigs(r) => Response::DescribeConfigs(
            DescribeConfigsResponse::default().with_results(
                r.resources
                    .iter()
                    .map(|res| {
                        describe_configs_response::DescribeConfigsResult::default()
                            .with_error_code(code)
                            .with_resource_type(res.resource_type)
                            .with_resource_name(res.resource_name.clone())
                    })
                    .collect(),
            ),
        ),
        Request::DeleteGroups(r) => Response::DeleteGroups(
            DeleteGroupsResponse::default().with_results(
                r.groups_names
                    .iter()
                    .map(|g| {
                        delete_groups_response::DeletableGroupResult::default()
                            .with_group_id(g.clone())
                            .with_error_code(code)
                    })
                    .collect(),
            ),
        ),
        Request::OffsetForLeaderEpoch(r) => Response::OffsetForLeaderEpoch(
            OffsetForLeaderEpochResponse::default().with_topics(
                r.topics
                    .iter()
                    .map(|t| {
                        offset_for_leader_epoch_response::OffsetForLeaderTopicResult::default()
                            .with_topic(t.topic.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        offset_for_leader_epoch_response::EpochEndOffset::default()
                                            .with_partition(p.partition)
                                            .with_error_code(code)
                                            .with_leader_epoch(-1)
                                            .with_end_offset(-1)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        Request::OffsetDelete(r) => Response::OffsetDelete(
            OffsetDeleteResponse::default().with_error_code(code).with_topics(
                r.topics
                    .iter()
                    .map(|t| {
                        offset_delete_response::OffsetDeleteResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        offset_delete_response::OffsetDeleteResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        Request::DescribeCluster(r) => Response::DescribeCluster(
            DescribeClusterResponse::default()
                .with_error_code(code)
                .with_endpoint_type(r.endpoint_type)
                .with_controller_id(BrokerId(-1)),
        ),
        Request::CreatePartitions(r) => Response::CreatePartitions(
            CreatePartitionsResponse::default().with_results(
                r.topics
                    .iter()
                    .map(|t| {
                        create_partitions_response::CreatePartitionsTopicResult::default()
                            .with_name(t.name.clone())
                            .with_error_code(code)
                    })
                    .collect(),
            ),
        ),
        Request::IncrementalAlterConfigs(r) => Response::IncrementalAlterConfigs(
            IncrementalAlterConfigsResponse::default().with_responses(
                r.resources
                    .iter()
                    .map(|res| {
                        incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                            .with_resource_type(res.resource_type)
                            .with_resource_name(res.resource_name.clone())
                            .with_error_code(code)
                    })
                    .collect(),
            ),
        ),
    }
}

/// A Produce v0-2 response (header v0) in which every partition failed with `code`.
/// v0: [topic, [partition, error, base_offset]]; v1 adds throttle_time_ms at the end; v2 adds
/// log_append_time after base_offset.
pub fn encode_legacy_produce_error(
    correlation_id: i32,
    version: i16,
    request: &LegacyProduce,
    code: i16,
) -> BytesMut {
    assert!((0..=2).contains(&version), "legacy produce v{version}");
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0);
    buf.put_i32(correlation_id);
    buf.put_i32(request.topics.len() as i32);
    for (topic, partitions) in &request.topics {
        buf.put_i16(topic.len() as i16);
        buf.put_slice(topic.as_bytes());
        buf.put_i32(partitions.len() as i32);
        for &partition in partitions {
            buf.put_i32(partition);
            buf.put_i16(code);
            buf.put_i64(-1);
            if version >= 2 {
                buf.put_i64(-1);
            }
        }
    }
    if version >= 1 {
        buf.put_i32(0);
    }
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    buf
}
