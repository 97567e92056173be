//! The chunked Fetch response encoder against kafka-protocol's FetchResponse as the oracle.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};
use shoal_protocol::fetch::*;
use shoal_protocol::records::decode_record_set;
use shoal_protocol::response::response_header_version;
use shoal_testkit::protocol::{batch, s, t, uuid};

fn records_of(topic: usize, partition: usize) -> Bytes {
    let mut set = BytesMut::new();
    for _ in 0..=(topic + partition) {
        set.extend_from_slice(&batch());
    }
    set.freeze()
}

fn head(version: i16) -> FetchResponseHead {
    let partition = |topic: usize, p: usize, records: bool| FetchPartitionHead {
        partition_index: p as i32,
        error_code: if records { 0 } else { 1 },
        high_watermark: 100 + p as i64,
        last_stable_offset: 90,
        log_start_offset: if version >= 5 { 3 } else { -1 },
        aborted_transactions: (p == 1).then(|| vec![(7, 8), (9, 10)]),
        preferred_read_replica: if version >= 11 { 2 } else { -1 },
        records_bytes: records.then(|| records_of(topic, p).len()),
        diverging_epoch: (version >= 12 && p == 1).then_some((4, 77)),
        current_leader: (version >= 12 && p != 0).then_some((3, 9)),
    };
    FetchResponseHead {
        throttle_time_ms: 5,
        error_code: 0,
        session_id: 0,
        topics: (0..2)
            .map(|ti| FetchTopicHead {
                name: s(&format!("topic-{ti}")),
                topic_id: uuid(ti as u8 + 1),
                partitions: vec![
                    partition(ti, 0, true),
                    partition(ti, 1, false),
                    partition(ti, 2, true),
                ],
            })
            .collect(),
    }
}

fn oracle(version: i16, head: &FetchResponseHead) -> FetchResponse {
    FetchResponse::default()
        .with_throttle_time_ms(head.throttle_time_ms)
        .with_error_code(head.error_code)
        .with_session_id(head.session_id)
        .with_responses(
            head.topics
                .iter()
                .enumerate()
                .map(|(ti, topic)| {
                    let mut r = fetch_response::FetchableTopicResponse::default().with_partitions(
                        topic
                            .partitions
                            .iter()
                            .enumerate()
                            .map(|(pi, p)| {
                                fetch_response::PartitionData::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(p.error_code)
                                    .with_high_watermark(p.high_watermark)
                                    .with_last_stable_offset(p.last_stable_offset)
                                    .with_log_start_offset(p.log_start_offset)
                                    .with_aborted_transactions(p.aborted_transactions.as_ref().map(
                                        |a| {
                                            a.iter()
                                                .map(|&(pid, first)| {
                                                    fetch_response::AbortedTransaction::default()
                                                        .with_producer_id(ProducerId(pid))
                                                        .with_first_offset(first)
                                                })
                                                .collect()
                                        },
                                    ))
                                    .with_preferred_read_replica(BrokerId(p.preferred_read_replica))
                                    .with_records(p.records_bytes.map(|_| records_of(ti, pi)))
                                    .with_diverging_epoch(p.diverging_epoch.map_or_else(
                                        Default::default,
                                        |(epoch, end_offset)| {
                                            fetch_response::EpochEndOffset::default()
                                                .with_epoch(epoch)
                                                .with_end_offset(end_offset)
                                        },
                                    ))
                                    .with_current_leader(p.current_leader.map_or_else(
                                        Default::default,
                                        |(id, epoch)| {
                                            fetch_response::LeaderIdAndEpoch::default()
                                                .with_leader_id(BrokerId(id))
                                                .with_leader_epoch(epoch)
                                        },
                                    ))
                            })
                            .collect(),
                    );
                    if version <= 12 {
                        r.topic = t(&topic.name);
                    } else {
                        r.topic_id = topic.topic_id;
                    }
                    r
                })
                .collect(),
        )
}

fn decode(frame: &[u8], version: i16) -> (i32, FetchResponse) {
    let mut b = Bytes::copy_from_slice(frame);
    assert_eq!(b.get_i32() as usize, b.len(), "size prefix");
    let header =
        ResponseHeader::decode(&mut b, response_header_version(ApiKey::Fetch, version)).unwrap();
    let body = FetchResponse::decode(&mut b, version).unwrap();
    assert!(!b.has_remaining(), "v{version}: trailing bytes");
    (header.correlation_id, body)
}

#[test]
fn chunked_fetch_responses_match_kafka_protocol_at_every_version() {
    for version in FETCH_VERSION_MIN..=FETCH_VERSION_MAX {
        let head = head(version);
        let frame = encode_fetch_response(99, version, &head).unwrap();
        let gaps = frame
            .chunks
            .iter()
            .filter(|c| matches!(c, FetchChunk::Records { .. }))
            .count();
        assert_eq!(gaps, 4, "v{version}: one gap per partition with records");
        let stored: Vec<Vec<Bytes>> = (0..2)
            .map(|ti| (0..3).map(|pi| records_of(ti, pi)).collect())
            .collect();
        let assembled = frame.assemble(|ti, pi| &stored[ti][pi][..]);
        assert_eq!(assembled.len(), frame.frame_bytes);
        let (correlation_id, ours) = decode(&assembled, version);
        assert_eq!(correlation_id, 99);

        let mut reference = BytesMut::new();
        oracle(version, &head)
            .encode(&mut reference, version)
            .unwrap();
        let expected = FetchResponse::decode(&mut reference.freeze(), version).unwrap();
        assert_eq!(ours, expected, "v{version}");
        if version >= 12 {
            let p1 = &ours.responses[0].partitions[1];
            assert_eq!(
                (p1.diverging_epoch.epoch, p1.diverging_epoch.end_offset),
                (4, 77)
            );
            assert_eq!(p1.current_leader.leader_id, BrokerId(3));
        }
        // The record bytes arrive intact and decode.
        let records = ours.responses[1].partitions[2].records.clone().unwrap();
        assert_eq!(decode_record_set(records).unwrap().len(), 4);
    }
}

#[test]
fn empty_and_null_record_sets_need_no_gap() {
    let head = FetchResponseHead {
        topics: vec![FetchTopicHead {
            name: s("a"),
            topic_id: uuid(1),
            partitions: vec![
                FetchPartitionHead {
                    records_bytes: Some(0),
                    ..FetchPartitionHead::default()
                },
                FetchPartitionHead {
                    partition_index: 1,
                    ..FetchPartitionHead::default()
                },
            ],
        }],
        ..FetchResponseHead::default()
    };
    for version in [4, 11, 12, 16] {
        let frame = encode_fetch_response(1, version, &head).unwrap();
        assert_eq!(frame.chunks.len(), 1);
        let (_, r) = decode(&frame.assemble(|_, _| unreachable!()), version);
        assert_eq!(r.responses[0].partitions[0].records, Some(Bytes::new()));
        assert_eq!(r.responses[0].partitions[1].records, None);
    }
    assert!(encode_fetch_response(1, 3, &head).is_err());
    assert!(encode_fetch_response(1, 19, &head).is_err());
    let with_session = FetchResponseHead {
        session_id: 5,
        ..FetchResponseHead::default()
    };
    assert!(encode_fetch_response(1, 6, &with_session).is_err());
    let mut tagged_too_early = head.clone();
    tagged_too_early.topics[0].partitions[0].current_leader = Some((1, 1));
    assert!(encode_fetch_response(1, 11, &tagged_too_early).is_err());
    assert!(encode_fetch_response(1, 12, &tagged_too_early).is_ok());
}
