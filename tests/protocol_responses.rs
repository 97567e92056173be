//! The response shape walker (used by the client before kafka-protocol decodes) against
//! kafka-protocol's encoder, for populated responses at every version the client can use.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Encodable;
use proptest::prelude::*;
use shoal_client::CLIENT_VERSIONS;
use shoal_protocol::response::Response;
use shoal_protocol::shape;
use shoal_testkit::protocol::{g, s, t, uuid};

fn sample_response(api: ApiKey, v: i16) -> Response {
    let flexible = api.request_header_version(v) >= 2;
    match api {
        ApiKey::ApiVersions => {
            let mut r = ApiVersionsResponse::default().with_api_keys(vec![
                api_versions_response::ApiVersion::default()
                    .with_api_key(0)
                    .with_max_version(13),
                api_versions_response::ApiVersion::default().with_api_key(1),
            ]);
            if v >= 1 {
                r.throttle_time_ms = 3;
            }
            if v >= 3 {
                r.supported_features = vec![api_versions_response::SupportedFeatureKey::default()
                    .with_name(s("metadata.version"))
                    .with_min_version(1)
                    .with_max_version(20)];
                r.finalized_features_epoch = 4;
                r.finalized_features = vec![api_versions_response::FinalizedFeatureKey::default()
                    .with_name(s("metadata.version"))
                    .with_max_version_level(20)
                    .with_min_version_level(20)];
                r.zk_migration_ready = true;
            }
            Response::ApiVersions(r)
        }
        ApiKey::Produce => {
            let mut partition = produce_response::PartitionProduceResponse::default()
                .with_index(1)
                .with_base_offset(10);
            if v >= 5 {
                partition.log_start_offset = 0;
            }
            if v >= 8 {
                partition.record_errors =
                    vec![produce_response::BatchIndexAndErrorMessage::default()
                        .with_batch_index(0)
                        .with_batch_index_error_message(Some(s("bad")))];
                partition.error_message = Some(s("oops"));
            }
            if v >= 10 {
                partition.current_leader = produce_response::LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(2))
                    .with_leader_epoch(5);
            }
            let mut topic = produce_response::TopicProduceResponse::default()
                .with_partition_responses(vec![partition.clone(), partition.with_index(2)]);
            if v <= 12 {
                topic.name = t("a");
            } else {
                topic.topic_id = uuid(1);
            }
            let mut r = ProduceResponse::default().with_responses(vec![topic.clone(), topic]);
            if v >= 10 {
                r.node_endpoints = vec![produce_response::NodeEndpoint::default()
                    .with_node_id(BrokerId(2))
                    .with_host(s("h"))
                    .with_port(9092)];
            }
            Response::Produce(r)
        }
        ApiKey::Fetch => {
            let mut partition = fetch_response::PartitionData::default()
                .with_partition_index(0)
                .with_high_watermark(5)
                .with_aborted_transactions(Some(vec![fetch_response::AbortedTransaction::default(
                )
                .with_producer_id(ProducerId(1))
                .with_first_offset(2)]))
                .with_records(Some(Bytes::from_static(b"records")));
            if v >= 5 {
                partition.log_start_offset = 0;
            }
            if v >= 11 {
                partition.preferred_read_replica = BrokerId(1);
            }
            if v >= 12 {
                partition.diverging_epoch = fetch_response::EpochEndOffset::default()
                    .with_epoch(3)
                    .with_end_offset(4);
                partition.current_leader = fetch_response::LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(1))
                    .with_leader_epoch(2);
                partition.snapshot_id = fetch_response::SnapshotId::default()
                    .with_end_offset(1)
                    .with_epoch(1);
            }
            let mut topic =
                fetch_response::FetchableTopicResponse::default().with_partitions(vec![
                    partition.clone(),
                    partition.with_records(None).with_aborted_transactions(None),
                ]);
            if v <= 12 {
                topic.topic = t("a");
            } else {
                topic.topic_id = uuid(1);
            }
            let mut r = FetchResponse::default().with_responses(vec![topic.clone(), topic]);
            if v >= 7 {
                r.error_code = 0;
                r.session_id = 0;
            }
            if v >= 16 {
                r.node_endpoints = vec![fetch_response::NodeEndpoint::default()
                    .with_node_id(BrokerId(1))
                    .with_host(s("h"))
                    .with_port(1)
                    .with_rack(Some(s("r")))];
            }
            Response::Fetch(r)
        }
        ApiKey::ListOffsets => {
            let mut p = list_offsets_response::ListOffsetsPartitionResponse::default()
                .with_partition_index(0)
                .with_offset(5)
                .with_timestamp(-1);
            if v >= 4 {
                p.leader_epoch = 1;
            }
            let mut r = ListOffsetsResponse::default().with_topics(vec![
                list_offsets_response::ListOffsetsTopicResponse::default()
                    .with_name(t("a"))
                    .with_partitions(vec![p.clone(), p]),
            ]);
            if v >= 2 {
                r.throttle_time_ms = 1;
            }
            Response::ListOffsets(r)
        }
        ApiKey::Metadata => {
            let mut broker = metadata_response::MetadataResponseBroker::default()
                .with_node_id(BrokerId(1))
                .with_host(s("localhost"))
                .with_port(9092);
            if v >= 1 {
                broker.rack = Some(s("rack"));
            }
            let mut partition = metadata_response::MetadataResponsePartition::default()
                .with_partition_index(0)
                .with_leader_id(BrokerId(1))
                .with_replica_nodes(vec![BrokerId(1), BrokerId(2)])
                .with_isr_nodes(vec![BrokerId(1)]);
            if v >= 7 {
                partition.leader_epoch = 3;
            }
            if v >= 5 {
                partition.offline_replicas = vec![BrokerId(2)];
            }
            let mut topic = metadata_response::MetadataResponseTopic::default()
                .with_name(Some(t("a")))
                .with_partitions(vec![partition.clone(), partition.with_partition_index(1)]);
            if v >= 10 {
                topic.topic_id = uuid(1);
            }
            if v >= 8 {
                topic.topic_authorized_operations = 8;
            }
            let mut r = MetadataResponse::default()
                .with_brokers(vec![broker.clone(), broker.with_node_id(BrokerId(2))])
                .with_topics(vec![topic]);
            if v >= 2 {
                r.cluster_id = Some(s("cluster"));
            }
            if v >= 1 {
                r.controller_id = BrokerId(1);
            }
            if (8..=10).contains(&v) {
                r.cluster_authorized_operations = 1;
            }
            Response::Metadata(r)
        }
        ApiKey::OffsetFetch => {
            let mut r = OffsetFetchResponse::default();
            if v <= 7 {
                let mut p = offset_fetch_response::OffsetFetchResponsePartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(5)
                    .with_metadata(Some(s("m")));
                if v >= 5 {
                    p.committed_leader_epoch = 1;
                }
                r.topics = vec![offset_fetch_response::OffsetFetchResponseTopic::default()
                    .with_name(t("a"))
                    .with_partitions(vec![p.clone(), p])];
                if v >= 2 {
                    r.error_code = 0;
                }
            } else {
                r.groups = vec![offset_fetch_response::OffsetFetchResponseGroup::default()
                    .with_group_id(g("g"))
                    .with_topics(vec![
                        offset_fetch_response::OffsetFetchResponseTopics::default()
                            .with_name(t("a"))
                            .with_partitions(vec![
                                offset_fetch_response::OffsetFetchResponsePartitions::default()
                                    .with_partition_index(0)
                                    .with_committed_offset(5),
                            ]),
                    ])];
            }
            if v >= 3 {
                r.throttle_time_ms = 2;
            }
            Response::OffsetFetch(r)
        }
        ApiKey::FindCoordinator => {
            let mut r = FindCoordinatorResponse::default();
            if v <= 3 {
                r.node_id = BrokerId(1);
                r.host = s("localhost");
                r.port = 9092;
                if v >= 1 {
                    r.error_message = Some(s("fine"));
                }
            } else {
                r.coordinators = vec![find_coordinator_response::Coordinator::default()
                    .with_key(s("g"))
                    .with_node_id(BrokerId(1))
                    .with_host(s("h"))
                    .with_port(1)];
            }
            if v >= 1 {
                r.throttle_time_ms = 1;
            }
            Response::FindCoordinator(r)
        }
        ApiKey::DescribeGroups => {
            let mut member = describe_groups_response::DescribedGroupMember::default()
                .with_member_id(s("m"))
                .with_client_id(s("c"))
                .with_client_host(s("/127.0.0.1"))
                .with_member_metadata(Bytes::from_static(b"meta"))
                .with_member_assignment(Bytes::from_static(b"assign"));
            if v >= 4 {
                member.group_instance_id = Some(s("i"));
            }
            let mut group = describe_groups_response::DescribedGroup::default()
                .with_group_id(g("g"))
                .with_group_state(s("Stable"))
                .with_protocol_type(s("consumer"))
                .with_protocol_data(s("range"))
                .with_members(vec![member.clone(), member]);
            if v >= 3 {
                group.authorized_operations = 1;
            }
            if v >= 6 {
                group.error_message = Some(s("none"));
            }
            let mut r = DescribeGroupsResponse::default().with_groups(vec![group]);
            if v >= 1 {
                r.throttle_time_ms = 1;
            }
            Response::DescribeGroups(r)
        }
        ApiKey::ListGroups => {
            let mut group = list_groups_response::ListedGroup::default()
                .with_group_id(g("g"))
                .with_protocol_type(s("consumer"));
            if v >= 4 {
                group.group_state = s("Stable");
            }
            if v >= 5 {
                group.group_type = s("classic");
            }
            let mut r = ListGroupsResponse::default().with_groups(vec![group.clone(), group]);
            if v >= 1 {
                r.throttle_time_ms = 1;
            }
            Response::ListGroups(r)
        }
        ApiKey::CreateTopics => {
            let mut topic = create_topics_response::CreatableTopicResult::default()
                .with_name(t("a"))
                .with_error_code(36);
            if v >= 5 {
                topic.error_message = Some(s("exists"));
                topic.num_partitions = 3;
                topic.replication_factor = 1;
                topic.topic_config_error_code = 40;
                topic.configs = Some(vec![
                    create_topics_response::CreatableTopicConfigs::default()
                        .with_name(s("retention.ms"))
                        .with_value(Some(s("1"))),
                ]);
            }
            if v >= 7 {
                topic.topic_id = uuid(2);
            }
            Response::CreateTopics(
                CreateTopicsResponse::default().with_topics(vec![topic.clone(), topic]),
            )
        }
        ApiKey::DeleteTopics => {
            let mut topic = delete_topics_response::DeletableTopicResult::default()
                .with_name(Some(t("a")))
                .with_error_code(3);
            if v >= 5 {
                topic.error_message = Some(s("unknown"));
            }
            if v >= 6 {
                topic.topic_id = uuid(3);
            }
            Response::DeleteTopics(
                DeleteTopicsResponse::default().with_responses(vec![topic.clone(), topic]),
            )
        }
        ApiKey::DescribeConfigs => {
            let mut entry = describe_configs_response::DescribeConfigsResourceResult::default()
                .with_name(s("retention.ms"))
                .with_value(Some(s("1000")))
                .with_synonyms(vec![
                    describe_configs_response::DescribeConfigsSynonym::default()
                        .with_name(s("log.retention.ms"))
                        .with_value(None)
                        .with_source(5),
                ]);
            if v >= 3 {
                entry.config_type = 5;
                entry.documentation = Some(s("doc"));
            }
            let _ = flexible;
            Response::DescribeConfigs(DescribeConfigsResponse::default().with_results(vec![
                describe_configs_response::DescribeConfigsResult::default()
                    .with_resource_type(2)
                    .with_resource_name(s("a"))
                    .with_configs(vec![entry.clone(), entry]),
            ]))
        }
        ApiKey::CreatePartitions => {
            Response::CreatePartitions(CreatePartitionsResponse::default().with_results(vec![
                create_partitions_response::CreatePartitionsTopicResult::default()
                    .with_name(t("a"))
                    .with_error_code(37)
                    .with_error_message(Some(s("smaller"))),
                create_partitions_response::CreatePartitionsTopicResult::default()
                    .with_name(t("b")),
            ]))
        }
        ApiKey::IncrementalAlterConfigs => Response::IncrementalAlterConfigs(
            IncrementalAlterConfigsResponse::default().with_responses(vec![
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(2)
                    .with_resource_name(s("a"))
                    .with_error_code(40)
                    .with_error_message(Some(s("bad value"))),
            ]),
        ),
        other => panic!("no response sample for {other:?}"),
    }
}

fn encode(response: &Response, v: i16) -> Bytes {
    let mut buf = BytesMut::new();
    let result = match response {
        Response::ApiVersions(r) => r.encode(&mut buf, v),
        Response::Produce(r) => r.encode(&mut buf, v),
        Response::Fetch(r) => r.encode(&mut buf, v),
        Response::ListOffsets(r) => r.encode(&mut buf, v),
        Response::Metadata(r) => r.encode(&mut buf, v),
        Response::OffsetFetch(r) => r.encode(&mut buf, v),
        Response::FindCoordinator(r) => r.encode(&mut buf, v),
        Response::DescribeGroups(r) => r.encode(&mut buf, v),
        Response::ListGroups(r) => r.encode(&mut buf, v),
        Response::CreateTopics(r) => r.encode(&mut buf, v),
        Response::DeleteTopics(r) => r.encode(&mut buf, v),
        Response::DescribeConfigs(r) => r.encode(&mut buf, v),
        Response::CreatePartitions(r) => r.encode(&mut buf, v),
        Response::IncrementalAlterConfigs(r) => r.encode(&mut buf, v),
        other => panic!("unexpected {:?}", other.api_key()),
    };
    result.unwrap_or_else(|e| panic!("{:?} v{v}: {e}", response.api_key()));
    buf.freeze()
}

fn client_pairs() -> Vec<(ApiKey, i16)> {
    CLIENT_VERSIONS
        .iter()
        .flat_map(|&(api, min, max)| (min..=max).map(move |v| (api, v)))
        .collect()
}

#[test]
fn response_walker_agrees_with_kafka_protocol_at_every_client_version() {
    let mut checked = 0;
    for (api, v) in client_pairs() {
        let body = encode(&sample_response(api, v), v);
        assert_eq!(
            shape::check_response(api, v, &body),
            Ok(body.len()),
            "{api:?} v{v}"
        );
        // Every strict prefix is rejected by the walker or is itself complete.
        for cut in 0..body.len() {
            if let Ok(n) = shape::check_response(api, v, &body[..cut]) {
                assert!(n <= cut);
            }
        }
        checked += 1;
    }
    assert!(checked > 60, "{checked}");
}

#[test]
fn huge_response_counts_are_rejected() {
    // Metadata v1: brokers count i32::MAX.
    let err = shape::check_response(ApiKey::Metadata, 1, &i32::MAX.to_be_bytes()).unwrap_err();
    assert!(err.to_string().contains("cannot fit"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// What the client does with a response body: walk, then decode only if the walk passed.
    #[test]
    fn random_response_bodies_never_panic(
        index in any::<prop::sample::Index>(),
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let pairs = client_pairs();
        let (api, v) = pairs[index.index(pairs.len())];
        if shape::check_response(api, v, &body).is_ok() {
            let _ = Response::decode_body(api, &mut Bytes::from(body), v);
        }
    }

    #[test]
    fn mutated_responses_never_panic(
        index in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let pairs = client_pairs();
        let (api, v) = pairs[index.index(pairs.len())];
        let mut body = encode(&sample_response(api, v), v).to_vec();
        for (at, value) in flips {
            let i = at.index(body.len());
            body[i] = value;
        }
        if shape::check_response(api, v, &body).is_ok() {
            let _ = Response::decode_body(api, &mut Bytes::from(body), v);
        }
    }
}
