//! Shared by the protocol tests: a populated sample of every supported request at every
//! version, built only from fields that version carries (kafka-protocol refuses to encode
//! fields a version lacks), and framing with kafka-protocol as the oracle.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use shoal_protocol::records::{build_batch, BatchOptions, NewRecord};
use shoal_protocol::Request;

pub fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

pub fn t(x: &str) -> TopicName {
    TopicName(s(x))
}

pub fn g(x: &str) -> GroupId {
    GroupId(s(x))
}

pub fn uuid(n: u8) -> uuid::Uuid {
    uuid::Uuid::from_bytes([n; 16])
}

pub fn batch() -> Bytes {
    build_batch(
        &[NewRecord {
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"v")),
            headers: vec![],
            timestamp_ms: 1_700_000_000_000,
        }],
        BatchOptions::default(),
    )
}

/// A request of `api_key` at `version` with non-empty arrays at every level.
pub fn sample(api_key: ApiKey, v: i16) -> Request {
    match api_key {
        ApiKey::ApiVersions => {
            let mut r = ApiVersionsRequest::default();
            if v >= 3 {
                r.client_software_name = s("shoal-test");
                r.client_software_version = s("1.0");
            }
            Request::ApiVersions(r)
        }
        ApiKey::Produce => {
            let topic = |name: &str, n: u8| {
                let mut topic = produce_request::TopicProduceData::default();
                if v <= 12 {
                    topic.name = t(name);
                } else {
                    topic.topic_id = uuid(n);
                }
                topic.partition_data = vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch())),
                    produce_request::PartitionProduceData::default()
                        .with_index(3)
                        .with_records(Some(batch())),
                ];
                topic
            };
            let mut r = ProduceRequest::default()
                .with_transactional_id(Some(TransactionalId(s("txn"))))
                .with_acks(-1)
                .with_timeout_ms(1500)
                .with_topic_data(vec![topic("a", 1), topic("b", 2)]);
            if v >= 9 {
                r.unknown_tagged_fields
                    .insert(99, Bytes::from_static(b"ignored"));
            }
            Request::Produce(r)
        }
        ApiKey::Fetch => {
            let partition = |p: i32| {
                let mut fp = fetch_request::FetchPartition::default()
                    .with_partition(p)
                    .with_fetch_offset(100)
                    .with_partition_max_bytes(1 << 20);
                if v >= 9 {
                    fp.current_leader_epoch = 5;
                }
                if v >= 12 {
                    fp.last_fetched_epoch = 4;
                }
                if v >= 5 {
                    fp.log_start_offset = 0;
                }
                if v >= 17 {
                    fp.replica_directory_id = uuid(9);
                }
                if v >= 18 {
                    fp.high_watermark = 1000;
                }
                fp
            };
            let mut topic = fetch_request::FetchTopic::default()
                .with_partitions(vec![partition(0), partition(1)]);
            if v <= 12 {
                topic.topic = t("a");
            } else {
                topic.topic_id = uuid(1);
            }
            let mut r = FetchRequest::default()
                .with_max_wait_ms(500)
                .with_min_bytes(1)
                .with_max_bytes(50 << 20)
                .with_isolation_level(1)
                .with_topics(vec![topic.clone(), topic]);
            if v >= 7 {
                r.session_id = 0;
                r.session_epoch = -1;
                let mut forgotten =
                    fetch_request::ForgottenTopic::default().with_partitions(vec![3, 4]);
                if v <= 12 {
                    forgotten.topic = t("old");
                } else {
                    forgotten.topic_id = uuid(3);
                }
                r.forgotten_topics_data = vec![forgotten];
            }
            if v >= 11 {
                r.rack_id = s("rack-1");
            }
            if v >= 12 {
                r.cluster_id = Some(s("cluster"));
            }
            if v >= 15 {
                r.replica_state = fetch_request::ReplicaState::default()
                    .with_replica_id(BrokerId(-1))
                    .with_replica_epoch(7);
            }
            Request::Fetch(r)
        }
        ApiKey::ListOffsets => {
            let partition = |p: i32| {
                let mut lp = list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(p)
                    .with_timestamp(-2);
                if v >= 4 {
                    lp.current_leader_epoch = 3;
                }
                lp
            };
            let mut r = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                    .with_name(t("a"))
                    .with_partitions(vec![partition(0), partition(1)])]);
            if v >= 2 {
                r.isolation_level = 1;
            }
            if v >= 10 {
                r.timeout_ms = 3000;
            }
            Request::ListOffsets(r)
        }
        ApiKey::Metadata => {
            let topic = |name: &str| {
                let mut mt =
                    metadata_request::MetadataRequestTopic::default().with_name(Some(t(name)));
                if v >= 10 {
                    mt.topic_id = uuid::Uuid::nil();
                }
                mt
            };
            let mut r = MetadataRequest::default().with_topics(Some(vec![topic("a"), topic("b")]));
            if v >= 4 {
                r.allow_auto_topic_creation = false;
            }
            if v >= 8 {
                r.include_topic_authorized_operations = true;
            }
            if (8..=10).contains(&v) {
                r.include_cluster_authorized_operations = true;
            }
            Request::Metadata(r)
        }
        ApiKey::OffsetCommit => {
            let partition = |p: i32| {
                let mut op = offset_commit_request::OffsetCommitRequestPartition::default()
                    .with_partition_index(p)
                    .with_committed_offset(42)
                    .with_committed_metadata(Some(s("meta")));
                if v >= 6 {
                    op.committed_leader_epoch = 2;
                }
                op
            };
            let mut r = OffsetCommitRequest::default()
                .with_group_id(g("group"))
                .with_generation_id_or_member_epoch(3)
                .with_member_id(s("member-1"))
                .with_topics(vec![
                    offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(t("a"))
                        .with_partitions(vec![partition(0), partition(1)]),
                ]);
            if v >= 7 {
                r.group_instance_id = Some(s("instance"));
            }
            if v <= 4 {
                r.retention_time_ms = 60_000;
            }
            Request::OffsetCommit(r)
        }
        ApiKey::OffsetFetch => {
            let mut r = OffsetFetchRequest::default();
            if v <= 7 {
                r.group_id = g("group");
                r.topics = Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(t("a"))
                        .with_partition_indexes(vec![0, 1, 2]),
                ]);
            } else {
                let mut group = offset_fetch_request::OffsetFetchRequestGroup::default()
                    .with_group_id(g("group"))
                    .with_topics(Some(vec![
                        offset_fetch_request::OffsetFetchRequestTopics::default()
                            .with_name(t("a"))
                            .with_partition_indexes(vec![0, 1]),
                    ]));
                if v >= 9 {
                    group.member_id = Some(s("member"));
                    group.member_epoch = 4;
                }
                r.groups = vec![group.clone(), group.with_topics(None)];
            }
            if v >= 7 {
                r.require_stable = true;
            }
            Request::OffsetFetch(r)
        }
        ApiKey::FindCoordinator => {
            let mut r = FindCoordinatorRequest::default();
            if v <= 3 {
                r.key = s("group");
            } else {
                r.coordinator_keys = vec![s("g1"), s("g2")];
            }
            if v >= 1 {
                r.key_type = 0;
            }
            Request::FindCoordinator(r)
        }
        ApiKey::JoinGroup => {
            let mut r = JoinGroupRequest::default()
                .with_group_id(g("group"))
                .with_session_timeout_ms(45_000)
                .with_member_id(s(""))
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![
                    join_group_request::JoinGroupRequestProtocol::default()
                        .with_name(s("range"))
                        .with_metadata(Bytes::from_static(b"\x00\x01meta")),
                    join_group_request::JoinGroupRequestProtocol::default()
                        .with_name(s("roundrobin"))
                        .with_metadata(Bytes::new()),
                ]);
            if v >= 1 {
                r.rebalance_timeout_ms = 300_000;
            }
            if v >= 5 {
                r.group_instance_id = Some(s("instance"));
            }
            if v >= 8 {
                r.reason = Some(s("test"));
            }
            Request::JoinGroup(r)
        }
        ApiKey::Heartbeat => {
            let mut r = HeartbeatRequest::default()
                .with_group_id(g("group"))
                .with_generation_id(2)
                .with_member_id(s("m"));
            if v >= 3 {
                r.group_instance_id = Some(s("i"));
            }
            Request::Heartbeat(r)
        }
        ApiKey::LeaveGroup => {
            let mut r = LeaveGroupRequest::default().with_group_id(g("group"));
            if v <= 2 {
                r.member_id = s("m");
            } else {
                let mut m = leave_group_request::MemberIdentity::default()
                    .with_member_id(s("m1"))
                    .with_group_instance_id(Some(s("i1")));
                if v >= 5 {
                    m.reason = Some(s("bye"));
                }
                r.members = vec![m.clone(), m.with_member_id(s("m2"))];
            }
            Request::LeaveGroup(r)
        }
        ApiKey::SyncGroup => {
            let mut r = SyncGroupRequest::default()
                .with_group_id(g("group"))
                .with_generation_id(1)
                .with_member_id(s("m"))
                .with_assignments(vec![
                    sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(s("m"))
                        .with_assignment(Bytes::from_static(b"assignment")),
                    sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(s("n"))
                        .with_assignment(Bytes::new()),
                ]);
            if v >= 3 {
                r.group_instance_id = Some(s("i"));
            }
            if v >= 5 {
                r.protocol_type = Some(s("consumer"));
                r.protocol_name = Some(s("range"));
            }
            Request::SyncGroup(r)
        }
        ApiKey::DescribeGroups => {
            let mut r = DescribeGroupsRequest::default().with_groups(vec![g("a"), g("b")]);
            if v >= 3 {
                r.include_authorized_operations = true;
            }
            Request::DescribeGroups(r)
        }
        ApiKey::ListGroups => {
            let mut r = ListGroupsRequest::default();
            if v >= 4 {
                r.states_filter = vec![s("Stable"), s("Empty")];
            }
            if v >= 5 {
                r.types_filter = vec![s("classic")];
            }
            Request::ListGroups(r)
        }
        ApiKey::InitProducerId => {
            let mut r = InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000);
            if v >= 3 {
                r.producer_id = ProducerId(-1);
                r.producer_epoch = -1;
            }
            Request::InitProducerId(r)
        }
        ApiKey::CreateTopics => Request::CreateTopics(
            CreateTopicsRequest::default()
                .with_timeout_ms(30_000)
                .with_validate_only(true)
                .with_topics(vec![
                    create_topics_request::CreatableTopic::default()
                        .with_name(t("new"))
                        .with_num_partitions(8)
                        .with_replication_factor(1)
                        .with_configs(vec![
                            create_topics_request::CreatableTopicConfig::default()
                                .with_name(s("retention.ms"))
                                .with_value(Some(s("1000"))),
                            create_topics_request::CreatableTopicConfig::default()
                                .with_name(s("cleanup.policy"))
                                .with_value(None),
                        ]),
                    create_topics_request::CreatableTopic::default()
                        .with_name(t("assigned"))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1)
                        .with_assignments(vec![
                            create_topics_request::CreatableReplicaAssignment::default()
                                .with_partition_index(0)
                                .with_broker_ids(vec![BrokerId(1), BrokerId(2)]),
                        ]),
                ]),
        ),
        ApiKey::DeleteTopics => {
            let mut r = DeleteTopicsRequest::default().with_timeout_ms(30_000);
            if v <= 5 {
                r.topic_names = vec![t("a"), t("b")];
            } else {
                r.topics = vec![
                    delete_topics_request::DeleteTopicState::default().with_name(Some(t("a"))),
                    delete_topics_request::DeleteTopicState::default()
                        .with_name(None)
                        .with_topic_id(uuid(7)),
                ];
            }
            Request::DeleteTopics(r)
        }
        ApiKey::DescribeConfigs => {
            let mut r = DescribeConfigsRequest::default()
                .with_include_synonyms(true)
                .with_resources(vec![
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s("a"))
                        .with_configuration_keys(Some(vec![s("retention.ms")])),
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(4)
                        .with_resource_name(s("1"))
                        .with_configuration_keys(None),
                ]);
            if v >= 3 {
                r.include_documentation = true;
            }
            Request::DescribeConfigs(r)
        }
        ApiKey::DeleteGroups => Request::DeleteGroups(
            DeleteGroupsRequest::default().with_groups_names(vec![g("a"), g("b")]),
        ),
        ApiKey::OffsetForLeaderEpoch => {
            let mut r = OffsetForLeaderEpochRequest::default().with_topics(vec![
                offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                    .with_topic(t("a"))
                    .with_partitions(vec![
                        offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                            .with_partition(0)
                            .with_current_leader_epoch(3)
                            .with_leader_epoch(2),
                    ]),
            ]);
            if v >= 3 {
                r.replica_id = BrokerId(-1);
            }
            Request::OffsetForLeaderEpoch(r)
        }
        ApiKey::OffsetDelete => Request::OffsetDelete(
            OffsetDeleteRequest::default()
                .with_group_id(g("group"))
                .with_topics(vec![
                    offset_delete_request::OffsetDeleteRequestTopic::default()
                        .with_name(t("a"))
                        .with_partitions(vec![
                            offset_delete_request::OffsetDeleteRequestPartition::default()
                                .with_partition_index(0),
                        ]),
                ]),
        ),
        ApiKey::DescribeCluster => {
            let mut r =
                DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
            if v >= 1 {
                r.endpoint_type = 1;
            }
            if v >= 2 {
                r.include_fenced_brokers = true;
            }
            Request::DescribeCluster(r)
        }
        ApiKey::CreatePartitions => Request::CreatePartitions(
            CreatePartitionsRequest::default()
                .with_timeout_ms(30_000)
                .with_topics(vec![
                    create_partitions_request::CreatePartitionsTopic::default()
                        .with_name(t("a"))
                        .with_count(4)
                        .with_assignments(Some(vec![
                            create_partitions_request::CreatePartitionsAssignment::default()
                                .with_broker_ids(vec![BrokerId(1)]),
                        ])),
                    create_partitions_request::CreatePartitionsTopic::default()
                        .with_name(t("b"))
                        .with_count(2)
                        .with_assignments(None),
                ]),
        ),
        ApiKey::IncrementalAlterConfigs => Request::IncrementalAlterConfigs(
            IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("a"))
                    .with_configs(vec![
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(s("retention.ms"))
                            .with_config_operation(0)
                            .with_value(Some(s("1000"))),
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(s("segment.ms"))
                            .with_config_operation(1)
                            .with_value(None),
                    ]),
            ]),
        ),
        other => panic!("no sample for {other:?}"),
    }
}

/// The request header kafka-protocol would write for `api_key` v`version`.
pub fn header_bytes(api_key: ApiKey, version: i16, correlation_id: i32) -> BytesMut {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(s("test-client")))
        .encode(&mut buf, api_key.request_header_version(version))
        .unwrap();
    buf
}

/// Header + body (no size prefix), encoded by kafka-protocol.
pub fn frame(request: &Request, version: i16, correlation_id: i32) -> (Bytes, usize) {
    let api_key = request.api_key();
    let mut buf = header_bytes(api_key, version, correlation_id);
    let header_len = buf.len();
    request.encode_body(&mut buf, version).unwrap();
    (buf.freeze(), header_len)
}

/// Header + raw body bytes.
pub fn raw_frame(api_key: ApiKey, version: i16, body: &[u8]) -> Bytes {
    let mut buf = header_bytes(api_key, version, 7);
    buf.put_slice(body);
    buf.freeze()
}
