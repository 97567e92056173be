//! The client against librdkafka's mock Kafka cluster (a third-party implementation of the
//! broker side): KIP-511 ApiVersions fallback (the mock serves ApiVersions v0-2 only),
//! leaders spread over three brokers, produce/fetch/list-offsets and group lookups.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use rdkafka::mocking::MockCluster;
use shoal_client::*;
use shoal_protocol::partitioner::partition_for_key;
use shoal_protocol::records::{NewRecord, RecordHeader};

fn config(bootstrap: String) -> ClientConfig {
    ClientConfig {
        brokers: bootstrap.split(',').map(str::to_string).collect(),
        socket_timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    }
}

#[test]
fn client_works_against_librdkafka_mock_cluster() {
    let mock = MockCluster::new(3).unwrap();
    mock.create_topic("mock", 6, 3).unwrap();
    let mut client = Client::connect(config(mock.bootstrap_servers())).unwrap();
    assert_eq!(client.brokers().count(), 3);

    let topic = client.topic("mock").unwrap();
    assert_eq!(topic.partitions.len(), 6);
    let leaders: std::collections::BTreeSet<i32> =
        topic.partitions.iter().map(|p| p.leader).collect();
    assert!(leaders.len() > 1, "leaders on several brokers: {leaders:?}");

    let mut producer = Producer::new(
        client,
        ProducerConfig {
            linger: Duration::from_secs(3600),
            batch_bytes_max: 2048,
            seed: Some(3),
            ..ProducerConfig::default()
        },
    )
    .unwrap();
    let mut expected: BTreeMap<i32, Vec<(String, String)>> = BTreeMap::new();
    for i in 0..600 {
        let key = format!("key-{}", i % 50);
        let value = format!("value-{i}");
        let record = NewRecord {
            key: Some(Bytes::from(key.clone())),
            value: Some(Bytes::from(value.clone())),
            headers: vec![RecordHeader {
                key: Bytes::from_static(b"n"),
                value: Some(Bytes::from(i.to_string())),
            }],
            timestamp_ms: 1_700_000_000_000 + i,
        };
        let p = producer.send("mock", None, record).unwrap();
        assert_eq!(p, partition_for_key(key.as_bytes(), 6));
        expected.entry(p).or_default().push((key, value));
    }
    let report = producer.flush().unwrap();
    assert_eq!(report.records, 600);
    let mut client = producer.into_client();

    let partitions: Vec<i32> = (0..6).collect();
    let latest = client
        .list_offsets("mock", &partitions, OffsetSpec::Latest)
        .unwrap();
    for o in &latest {
        let n = expected.get(&o.partition).map_or(0, Vec::len) as i64;
        assert_eq!(o.offset, n, "partition {}", o.partition);
    }
    let earliest = client
        .list_offsets("mock", &partitions, OffsetSpec::Earliest)
        .unwrap();
    assert!(earliest.iter().all(|o| o.offset == 0));

    for (p, values) in &expected {
        let mut got = Vec::new();
        let mut offset = 0;
        while got.len() < values.len() {
            let f = client
                .fetch("mock", &[(*p, offset)], FetchOptions::default())
                .unwrap();
            assert_eq!(f[0].error_code, 0, "partition {p}");
            assert!(
                !f[0].records.is_empty(),
                "partition {p} ran dry at {offset}"
            );
            for r in &f[0].records {
                assert_eq!(r.offset, offset);
                got.push((
                    String::from_utf8(r.key.clone().unwrap().to_vec()).unwrap(),
                    String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap(),
                ));
                offset += 1;
            }
        }
        assert_eq!(&got, values, "partition {p}");
    }

    let coordinator = client.find_coordinator("group-1").unwrap();
    assert!((1..=3).contains(&coordinator.node_id), "{coordinator:?}");
    let committed = client.committed_offsets("group-1", "mock").unwrap();
    assert_eq!(committed.len(), 6);
    assert!(committed.iter().all(|c| c.offset == -1));

    assert!(matches!(
        client.topic("missing"),
        Err(ClientError::UnknownTopic(_) | ClientError::Kafka { .. })
    ));
}

#[test]
fn retriable_errors_are_retried_and_a_dead_bootstrap_broker_is_replaced() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let mock = MockCluster::new(3).unwrap();
    mock.create_topic("retry", 1, 1).unwrap();
    let mut client = Client::connect(ClientConfig {
        retry_backoff: Duration::from_millis(1),
        ..config(mock.bootstrap_servers())
    })
    .unwrap();
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        ],
    );
    let batch = shoal_protocol::records::build_batch(
        &[NewRecord {
            value: Some(Bytes::from_static(b"x")),
            ..NewRecord::default()
        }],
        Default::default(),
    );
    let ack = client
        .produce("retry", 0, batch.clone(), Acks::All)
        .unwrap()
        .unwrap();
    assert_eq!(ack.base_offset, 0, "two retriable errors, then success");

    // A non-retriable error is returned at once.
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_REQUIRED_ACKS],
    );
    let err = client.produce("retry", 0, batch, Acks::All).unwrap_err();
    assert_eq!(
        err.code(),
        Some(shoal_protocol::errors::INVALID_REQUIRED_ACKS)
    );

    // The bootstrap broker goes down: metadata moves to another broker.
    let bootstrap = client.bootstrap_addr().to_string();
    let down = client
        .brokers()
        .find(|b| b.addr() == bootstrap)
        .map(|b| b.node_id)
        .expect("bootstrap broker is in the metadata");
    mock.broker_down(down).unwrap();
    let metadata = client
        .metadata(Some(&["retry".to_string()]), false)
        .unwrap();
    assert_eq!(metadata.topics[0].partitions.len(), 1);
    assert_ne!(client.bootstrap_addr(), bootstrap);
}
