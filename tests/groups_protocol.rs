//! Every advertised version of every group API against a real `shoal`, over a raw socket with the
//! `kafka-protocol` crate's codecs: old non-flexible versions (kafka-python, aiokafka) as much as
//! the newest flexible ones. A mis-encoded response would close the connection or fail to decode.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use shoal_testkit::Broker;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

struct Conn {
    stream: TcpStream,
    correlation: i32,
}

impl Conn {
    fn open(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Conn {
            stream,
            correlation: 0,
        }
    }

    fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &Req,
    ) -> Resp {
        self.correlation += 1;
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(s("proto-test")))
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("encode {key:?} v{version}: {e}"));
        let n = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&n.to_be_bytes());
        self.stream.write_all(&buf).unwrap();
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .unwrap_or_else(|e| panic!("{key:?} v{version}: no response ({e})"));
        let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut frame).unwrap();
        let mut frame = Bytes::from(frame);
        let header =
            ResponseHeader::decode(&mut frame, key.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation);
        let resp = Resp::decode(&mut frame, version)
            .unwrap_or_else(|e| panic!("decode {key:?} v{version}: {e}"));
        assert_eq!(frame.remaining(), 0, "{key:?} v{version}: trailing bytes");
        resp
    }
}

fn subscription(topic: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0); // ConsumerProtocolSubscription v0
    b.put_i32(1);
    b.put_i16(topic.len() as i16);
    b.put_slice(topic.as_bytes());
    b.put_i32(-1); // user data
    b.freeze()
}

fn create_topic(conn: &mut Conn, topic: &str, partitions: i32) {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s(topic)))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
        .with_timeout_ms(10_000);
    let resp: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, 5, &req);
    assert_eq!(resp.topics[0].error_code, 0, "create {topic}");
}

/// One full group life cycle with the i-th version of each API (clamped to its range).
fn life_cycle(conn: &mut Conn, addr_port: i32, i: i16) {
    let v = |min: i16, max: i16| i.clamp(min, max);
    let group = format!("group-{i}");
    let g = || GroupId(s(&group));

    // FindCoordinator v0-6.
    let fv = v(0, 6);
    let mut req = FindCoordinatorRequest::default().with_key_type(0);
    if fv >= 4 {
        req.coordinator_keys = vec![s(&group)];
    } else {
        req.key = s(&group);
    }
    let resp: FindCoordinatorResponse = conn.call(ApiKey::FindCoordinator, fv, &req);
    let (code, port) = if fv >= 4 {
        (resp.coordinators[0].error_code, resp.coordinators[0].port)
    } else {
        (resp.error_code, resp.port)
    };
    assert_eq!((code, port), (0, addr_port), "FindCoordinator v{fv}");

    // JoinGroup v0-9 (v4+: MEMBER_ID_REQUIRED first).
    let jv = v(0, 9);
    let join = |member: &str| {
        JoinGroupRequest::default()
            .with_group_id(g())
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(if jv >= 1 { 20_000 } else { -1 })
            .with_member_id(s(member))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
            )
            .with_name(s("range"))
            .with_metadata(subscription("t"))])
    };
    let mut resp: JoinGroupResponse = conn.call(ApiKey::JoinGroup, jv, &join(""));
    if jv >= 4 {
        assert_eq!(resp.error_code, 79, "JoinGroup v{jv}: MEMBER_ID_REQUIRED");
        let id = resp.member_id.to_string();
        assert!(id.starts_with("proto-test-"), "{id}");
        resp = conn.call(ApiKey::JoinGroup, jv, &join(&id));
    }
    assert_eq!(resp.error_code, 0, "JoinGroup v{jv}");
    let member = resp.member_id.to_string();
    assert_eq!(resp.generation_id, 1);
    assert_eq!(resp.leader, resp.member_id);
    assert_eq!(resp.protocol_name.as_deref(), Some("range"));
    assert_eq!(resp.members.len(), 1);
    assert_eq!(resp.members[0].metadata, subscription("t"));

    // SyncGroup v0-5.
    let sv = v(0, 5);
    let mut req = SyncGroupRequest::default()
        .with_group_id(g())
        .with_generation_id(1)
        .with_member_id(s(&member))
        .with_assignments(vec![
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(s(&member))
                .with_assignment(Bytes::from_static(b"my-assignment")),
        ]);
    if sv >= 5 {
        req.protocol_type = Some(s("consumer"));
        req.protocol_name = Some(s("range"));
    }
    let resp: SyncGroupResponse = conn.call(ApiKey::SyncGroup, sv, &req);
    assert_eq!(resp.error_code, 0, "SyncGroup v{sv}");
    assert_eq!(resp.assignment, Bytes::from_static(b"my-assignment"));

    // Heartbeat v0-4; a stale generation is ILLEGAL_GENERATION.
    let hv = v(0, 4);
    let hb = |generation| {
        HeartbeatRequest::default()
            .with_group_id(g())
            .with_generation_id(generation)
            .with_member_id(s(&member))
    };
    let resp: HeartbeatResponse = conn.call(ApiKey::Heartbeat, hv, &hb(1));
    assert_eq!(resp.error_code, 0, "Heartbeat v{hv}");
    let resp: HeartbeatResponse = conn.call(ApiKey::Heartbeat, hv, &hb(0));
    assert_eq!(resp.error_code, 22, "Heartbeat v{hv}: ILLEGAL_GENERATION");

    // OffsetCommit v2-9, then OffsetFetch v1-9 sees it.
    let cv = v(2, 9);
    let req = OffsetCommitRequest::default()
        .with_group_id(g())
        .with_generation_id_or_member_epoch(1)
        .with_member_id(s(&member))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(1)
                        .with_committed_offset(42 + i as i64)
                        .with_committed_metadata(Some(s("meta"))),
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(99)
                        .with_committed_offset(1),
                ]),
        ]);
    let resp: OffsetCommitResponse = conn.call(ApiKey::OffsetCommit, cv, &req);
    let codes: Vec<i16> = resp.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(
        codes,
        vec![0, 3],
        "OffsetCommit v{cv}: ok, UNKNOWN_TOPIC_OR_PARTITION"
    );

    let fetched = |conn: &mut Conn, fv: i16| -> i64 {
        if fv >= 8 {
            let req = OffsetFetchRequest::default().with_groups(vec![
                offset_fetch_request::OffsetFetchRequestGroup::default()
                    .with_group_id(g())
                    .with_topics(Some(vec![
                        offset_fetch_request::OffsetFetchRequestTopics::default()
                            .with_name(TopicName(s("t")))
                            .with_partition_indexes(vec![1]),
                    ])),
            ]);
            let resp: OffsetFetchResponse = conn.call(ApiKey::OffsetFetch, fv, &req);
            assert_eq!(resp.groups[0].error_code, 0);
            resp.groups[0].topics[0].partitions[0].committed_offset
        } else {
            let req = OffsetFetchRequest::default()
                .with_group_id(g())
                .with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(TopicName(s("t")))
                        .with_partition_indexes(vec![1]),
                ]));
            let resp: OffsetFetchResponse = conn.call(ApiKey::OffsetFetch, fv, &req);
            assert_eq!(resp.error_code, 0);
            let p = &resp.topics[0].partitions[0];
            assert_eq!(p.error_code, 0);
            p.committed_offset
        }
    };
    let ov = v(1, 9);
    assert_eq!(fetched(conn, ov), 42 + i as i64, "OffsetFetch v{ov}");

    // DescribeGroups v0-6 and ListGroups v0-5.
    let dv = v(0, 6);
    let req = DescribeGroupsRequest::default().with_groups(vec![g()]);
    let resp: DescribeGroupsResponse = conn.call(ApiKey::DescribeGroups, dv, &req);
    let d = &resp.groups[0];
    assert_eq!(
        (d.error_code, d.group_state.as_str()),
        (0, "Stable"),
        "DescribeGroups v{dv}"
    );
    assert_eq!(d.protocol_data.as_str(), "range");
    assert_eq!(d.members[0].client_id.as_str(), "proto-test");
    assert_eq!(d.members[0].client_host.as_str(), "/127.0.0.1");
    assert_eq!(
        d.members[0].member_assignment,
        Bytes::from_static(b"my-assignment")
    );
    let lv = v(0, 5);
    let resp: ListGroupsResponse = conn.call(ApiKey::ListGroups, lv, &ListGroupsRequest::default());
    let listed = resp
        .groups
        .iter()
        .find(|x| x.group_id.0.as_str() == group)
        .expect("listed");
    assert_eq!(listed.protocol_type.as_str(), "consumer");
    if lv >= 4 {
        assert_eq!(listed.group_state.as_str(), "Stable");
    }

    // LeaveGroup v0-5 (v3+ batched).
    let leave_v = v(0, 5);
    let mut req = LeaveGroupRequest::default().with_group_id(g());
    if leave_v >= 3 {
        req.members =
            vec![leave_group_request::MemberIdentity::default().with_member_id(s(&member))];
    } else {
        req.member_id = s(&member);
    }
    let resp: LeaveGroupResponse = conn.call(ApiKey::LeaveGroup, leave_v, &req);
    assert_eq!(resp.error_code, 0, "LeaveGroup v{leave_v}");
    if leave_v >= 3 {
        assert_eq!(resp.members[0].error_code, 0);
    }

    // OffsetDelete v0 on the now empty group, then DeleteGroups v0-2.
    let req = OffsetDeleteRequest::default()
        .with_group_id(g())
        .with_topics(vec![
            offset_delete_request::OffsetDeleteRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partitions(vec![
                    offset_delete_request::OffsetDeleteRequestPartition::default()
                        .with_partition_index(1),
                ]),
        ]);
    let resp: OffsetDeleteResponse = conn.call(ApiKey::OffsetDelete, 0, &req);
    assert_eq!(resp.error_code, 0, "OffsetDelete");
    assert_eq!(resp.topics[0].partitions[0].error_code, 0);
    assert_eq!(fetched(conn, ov), -1, "offset deleted");
    let delv = v(0, 2);
    let req = DeleteGroupsRequest::default().with_groups_names(vec![g()]);
    let resp: DeleteGroupsResponse = conn.call(ApiKey::DeleteGroups, delv, &req);
    assert_eq!(resp.results[0].error_code, 0, "DeleteGroups v{delv}");
    let resp: DeleteGroupsResponse = conn.call(ApiKey::DeleteGroups, delv, &req);
    assert_eq!(
        resp.results[0].error_code, 69,
        "GROUP_ID_NOT_FOUND once deleted"
    );
}

#[test]
fn every_group_api_version_round_trips() {
    let broker = Broker::start();
    let port: i32 = broker.addr.rsplit_once(':').unwrap().1.parse().unwrap();
    let mut conn = Conn::open(&broker.addr);
    create_topic(&mut conn, "t", 2);
    for i in 0..=9 {
        life_cycle(&mut conn, port, i);
    }
    // Unsupported key type, and a transactional coordinator.
    let resp: FindCoordinatorResponse = conn.call(
        ApiKey::FindCoordinator,
        2,
        &FindCoordinatorRequest::default()
            .with_key(s("x"))
            .with_key_type(1),
    );
    assert_eq!(
        resp.error_code, 15,
        "COORDINATOR_NOT_AVAILABLE for transactions"
    );
    // A simple (generation -1) commit creates an Empty group; a stale member is refused.
    let commit = |member: &str, generation: i32| {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(s("simple")))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(s(member))
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(7),
                    ]),
            ])
    };
    let resp: OffsetCommitResponse = conn.call(ApiKey::OffsetCommit, 8, &commit("", -1));
    assert_eq!(resp.topics[0].partitions[0].error_code, 0);
    let resp: OffsetCommitResponse = conn.call(ApiKey::OffsetCommit, 8, &commit("ghost", 3));
    assert_eq!(
        resp.topics[0].partitions[0].error_code, 25,
        "UNKNOWN_MEMBER_ID"
    );
    // OffsetFetch of all topics (null) of several groups at once (v8).
    let req = OffsetFetchRequest::default().with_groups(vec![
        offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s("simple")))
            .with_topics(None),
        offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s("nobody")))
            .with_topics(None),
    ]);
    let resp: OffsetFetchResponse = conn.call(ApiKey::OffsetFetch, 8, &req);
    assert_eq!(resp.groups.len(), 2);
    assert_eq!(resp.groups[0].topics[0].partitions[0].committed_offset, 7);
    assert!(resp.groups[1].topics.is_empty());
}
