//! The blocking client against a small in-process fake broker built from Shoal's own codecs
//! (on 127.0.0.1, one thread per connection). The real broker is exercised separately.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use shoal_client::*;
use shoal_protocol::errors;
use shoal_protocol::partitioner::partition_for_key;
use shoal_protocol::records::{NewRecord, RecordHeader};
use shoal_testkit::fake_broker::FakeBroker;

fn record(key: Option<&str>, value: &str) -> NewRecord {
    NewRecord {
        key: key.map(|k| Bytes::from(k.to_string())),
        value: Some(Bytes::from(value.to_string())),
        headers: vec![
            RecordHeader {
                key: Bytes::from_static(b"h"),
                value: Some(Bytes::from_static(b"1")),
            },
            RecordHeader {
                key: Bytes::from_static(b"h"),
                value: None,
            },
        ],
        timestamp_ms: 1_700_000_000_123,
    }
}

use shoal_protocol::versions::ApiRange;

const fn r(api_key: ApiKey, min: i16, max: i16) -> ApiRange {
    ApiRange { api_key, min, max }
}

/// Every API the client uses at the lowest version both sides speak; ApiVersions v0 only,
/// so the client's v3 ApiVersions goes through the KIP-511 fallback.
static LOWEST: &[ApiRange] = &[
    r(ApiKey::Produce, 3, 3),
    r(ApiKey::Fetch, 4, 4),
    r(ApiKey::ListOffsets, 1, 1),
    r(ApiKey::Metadata, 1, 1),
    r(ApiKey::OffsetFetch, 1, 1),
    r(ApiKey::FindCoordinator, 0, 0),
    r(ApiKey::DescribeGroups, 0, 0),
    r(ApiKey::ListGroups, 0, 0),
    r(ApiKey::ApiVersions, 0, 0),
    r(ApiKey::CreateTopics, 2, 2),
    r(ApiKey::DeleteTopics, 1, 1),
    r(ApiKey::DescribeConfigs, 1, 1),
];

/// The last non-flexible version of each API.
static LAST_RIGID: &[ApiRange] = &[
    r(ApiKey::Produce, 0, 8),
    r(ApiKey::Fetch, 4, 11),
    r(ApiKey::ListOffsets, 1, 5),
    r(ApiKey::Metadata, 0, 8),
    r(ApiKey::OffsetFetch, 1, 5),
    r(ApiKey::FindCoordinator, 0, 2),
    r(ApiKey::DescribeGroups, 0, 4),
    r(ApiKey::ListGroups, 0, 2),
    r(ApiKey::ApiVersions, 0, 2),
    r(ApiKey::CreateTopics, 2, 4),
    r(ApiKey::DeleteTopics, 1, 3),
    r(ApiKey::DescribeConfigs, 1, 3),
];

#[test]
fn admin_produce_fetch_and_offsets_round_trip() {
    round_trip(FakeBroker::start());
}

#[test]
fn admin_produce_fetch_and_offsets_at_the_lowest_versions() {
    round_trip(FakeBroker::start_with(LOWEST));
}

#[test]
fn admin_produce_fetch_and_offsets_at_the_last_non_flexible_versions() {
    round_trip(FakeBroker::start_with(LAST_RIGID));
}

fn round_trip(broker: FakeBroker) {
    let mut client = Client::connect(broker.config()).unwrap();
    assert_eq!(client.controller_id(), 1);

    let outcomes = client
        .create_topics(
            &[NewTopic {
                name: "chat".into(),
                partitions: 4,
                replication_factor: 1,
                configs: vec![("retention.ms".into(), "1000".into())],
            }],
            false,
        )
        .unwrap();
    assert_eq!(outcomes.len(), 1);
    outcomes[0].result().unwrap();
    let again = client
        .create_topics(
            &[NewTopic {
                name: "chat".into(),
                partitions: 4,
                replication_factor: 1,
                configs: vec![],
            }],
            false,
        )
        .unwrap();
    assert_eq!(again[0].error_code, errors::TOPIC_ALREADY_EXISTS);
    assert_eq!(
        again[0].result().unwrap_err().code(),
        Some(errors::TOPIC_ALREADY_EXISTS)
    );

    let validated = client
        .create_topics(
            &[NewTopic {
                name: "dry-run".into(),
                partitions: 2,
                replication_factor: 1,
                configs: vec![],
            }],
            true,
        )
        .unwrap();
    validated[0].result().unwrap();
    assert!(
        matches!(client.topic("dry-run"), Err(ClientError::UnknownTopic(_))),
        "validate-only creates nothing"
    );

    let topic = client.topic("chat").unwrap();
    assert_eq!(topic.partitions.len(), 4);
    assert!(matches!(
        client.topic("nope"),
        Err(ClientError::UnknownTopic(_))
    ));

    let batch = shoal_protocol::records::build_batch(
        &[record(Some("k"), "one"), record(None, "two")],
        Default::default(),
    );
    let ack = client
        .produce("chat", 2, batch.clone(), Acks::All)
        .unwrap()
        .unwrap();
    assert_eq!((ack.partition, ack.base_offset), (2, 0));
    let ack = client
        .produce("chat", 2, batch, Acks::Leader)
        .unwrap()
        .unwrap();
    assert_eq!(ack.base_offset, 2);

    let fetched = client
        .fetch("chat", &[(2, 1), (0, 0)], FetchOptions::default())
        .unwrap();
    assert_eq!(fetched.len(), 2);
    assert!(fetched[0].records.is_empty());
    let p2 = &fetched[1];
    assert_eq!(p2.high_watermark, 4);
    let offsets: Vec<i64> = p2.records.iter().map(|r| r.offset).collect();
    assert_eq!(
        offsets,
        vec![1, 2, 3],
        "records before the fetch offset are dropped"
    );
    assert_eq!(p2.records[0].value.as_deref(), Some(&b"two"[..]));
    assert_eq!(p2.records[1].key.as_deref(), Some(&b"k"[..]));
    assert_eq!(p2.records[1].timestamp_ms, 1_700_000_000_123);
    assert_eq!(p2.records[1].headers.len(), 2);

    let latest = client
        .list_offsets("chat", &[2, 3], OffsetSpec::Latest)
        .unwrap();
    assert_eq!(
        latest.iter().map(|o| o.offset).collect::<Vec<_>>(),
        vec![4, 0]
    );
    let earliest = client
        .list_offsets("chat", &[2], OffsetSpec::Earliest)
        .unwrap();
    assert_eq!(earliest[0].offset, 0);

    let deleted = client
        .delete_topics(&["chat".into(), "ghost".into()])
        .unwrap();
    assert_eq!(deleted[0].error_code, errors::NONE);
    assert_eq!(deleted[1].error_code, errors::UNKNOWN_TOPIC_OR_PARTITION);
}

#[test]
fn producer_partitions_like_kafka_and_batches() {
    let broker = FakeBroker::start();
    let mut client = Client::connect(broker.config()).unwrap();
    client
        .create_topics(
            &[NewTopic {
                name: "keys".into(),
                partitions: 8,
                replication_factor: 1,
                configs: vec![],
            }],
            false,
        )
        .unwrap()[0]
        .result()
        .unwrap();
    let mut producer = Producer::new(
        client,
        ProducerConfig {
            linger: Duration::from_secs(3600),
            batch_bytes_max: 4096,
            seed: Some(7),
            ..ProducerConfig::default()
        },
    )
    .unwrap();
    let mut expected: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for i in 0..1000 {
        let key = format!("user-{}", i % 37);
        let value = format!("v{i}");
        let p = producer
            .send("keys", None, record(Some(&key), &value))
            .unwrap();
        assert_eq!(p, partition_for_key(key.as_bytes(), 8));
        expected.entry(p).or_default().push(value);
    }
    let report = producer.flush().unwrap();
    assert_eq!(report.records, 1000);
    assert!(
        report.batches > 8,
        "4 KiB batches: {} batches",
        report.batches
    );
    assert_eq!(report.acks.len(), report.batches);

    let mut client = producer.into_client();
    for (p, values) in expected {
        let mut got = Vec::new();
        let mut offset = 0;
        while got.len() < values.len() {
            let f = client
                .fetch("keys", &[(p, offset)], FetchOptions::default())
                .unwrap();
            assert_eq!(f[0].error_code, 0);
            assert!(
                !f[0].records.is_empty(),
                "partition {p} ran dry at {offset}"
            );
            for r in &f[0].records {
                got.push(String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap());
                offset = r.offset + 1;
            }
        }
        assert_eq!(got, values, "partition {p}: order per key preserved");
    }
}

#[test]
fn null_keys_stick_until_a_batch_is_sent_or_round_robin() {
    let broker = FakeBroker::start();
    let mut client = Client::connect(broker.config()).unwrap();
    client
        .create_topics(
            &[NewTopic {
                name: "nulls".into(),
                partitions: 4,
                replication_factor: 1,
                configs: vec![],
            }],
            false,
        )
        .unwrap();
    let config = ProducerConfig {
        linger: Duration::from_secs(3600),
        batch_bytes_max: 1024,
        seed: Some(1),
        ..ProducerConfig::default()
    };
    let mut producer = Producer::new(client, config.clone()).unwrap();
    let mut runs = Vec::new();
    for i in 0..200 {
        let p = producer
            .send("nulls", None, record(None, &format!("{i:040}")))
            .unwrap();
        if runs.last().map(|(q, _)| *q) != Some(p) {
            runs.push((p, 0));
        }
        runs.last_mut().unwrap().1 += 1;
    }
    assert!(runs.len() > 3, "sticky partition moves on: {runs:?}");
    assert!(
        runs.iter().all(|(_, n)| *n > 1),
        "sticks for a batch: {runs:?}"
    );
    for w in runs.windows(2) {
        assert_ne!(w[0].0, w[1].0);
    }
    producer.flush().unwrap();

    let mut producer = Producer::new(
        producer.into_client(),
        ProducerConfig {
            null_keys: NullKeyPolicy::RoundRobin,
            ..config
        },
    )
    .unwrap();
    let ps: Vec<i32> = (0..8)
        .map(|i| {
            producer
                .send("nulls", None, record(None, &i.to_string()))
                .unwrap()
        })
        .collect();
    for w in ps.windows(2) {
        assert_eq!(w[1], (w[0] + 1) % 4);
    }
}

#[test]
fn acks_zero_gets_no_response_and_the_connection_stays_in_sync() {
    let broker = FakeBroker::start();
    let mut client = Client::connect(broker.config()).unwrap();
    client
        .create_topics(
            &[NewTopic {
                name: "fire".into(),
                partitions: 1,
                replication_factor: 1,
                configs: vec![],
            }],
            false,
        )
        .unwrap();
    let batch = shoal_protocol::records::build_batch(&[record(None, "x")], Default::default());
    for _ in 0..3 {
        assert_eq!(
            client
                .produce("fire", 0, batch.clone(), Acks::None)
                .unwrap(),
            None
        );
    }
    // The next request/response on the same connection still matches correlation ids.
    let latest = client
        .list_offsets("fire", &[0], OffsetSpec::Latest)
        .unwrap();
    assert_eq!(latest[0].offset, 3);
    assert_eq!(
        broker.state.lock().unwrap().seen[&(ApiKey::Produce as i16)],
        3
    );
}

#[test]
fn connection_errors_are_typed() {
    // Nothing listens on this port once the listener is dropped.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = Client::connect(ClientConfig {
        brokers: vec![format!("127.0.0.1:{port}")],
        socket_timeout: Duration::from_secs(2),
        ..ClientConfig::default()
    })
    .unwrap_err();
    assert!(matches!(err, ClientError::NoBroker { .. }), "{err}");

    // A server that accepts and never answers: the read times out.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let hold = std::thread::spawn(move || {
        let (s, _) = silent.accept().unwrap();
        // Hold the socket open, silent, until the client has given up.
        let _ = done_rx.recv();
        drop(s);
    });
    let err = Connection::connect(
        &addr.to_string(),
        &ClientConfig {
            socket_timeout: Duration::from_millis(200),
            ..ClientConfig::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Timeout {
                operation: "read",
                ..
            }
        ),
        "{err}"
    );
    done_tx.send(()).unwrap();
    hold.join().unwrap();

    // A server that answers with an oversized frame.
    let liar = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = liar.local_addr().unwrap();
    let hold = std::thread::spawn(move || {
        let (mut s, _) = liar.accept().unwrap();
        let mut header = [0u8; 4];
        s.read_exact(&mut header).unwrap();
        s.write_all(&0x7fff_ffffi32.to_be_bytes()).unwrap();
    });
    let err = Connection::connect(
        &addr.to_string(),
        &ClientConfig {
            response_bytes_max: 1 << 20,
            ..ClientConfig::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, ClientError::Frame { .. }), "{err}");
    hold.join().unwrap();
}

#[test]
fn consumer_reads_from_start_positions_until_caught_up() {
    let broker = FakeBroker::start();
    broker.create_topic("log", 3);
    let mut client = Client::connect(broker.config()).unwrap();
    for p in 0..3 {
        for b in 0..2 {
            let batch = shoal_protocol::records::build_batch(
                &[
                    record(None, &format!("p{p}-b{b}-0")),
                    record(None, &format!("p{p}-b{b}-1")),
                ],
                Default::default(),
            );
            client.produce("log", p, batch, Acks::All).unwrap();
        }
    }
    let mut consumer = Consumer::new(
        client,
        "log",
        None,
        StartOffset::Earliest,
        FetchOptions::default(),
    )
    .unwrap();
    assert!(!consumer.caught_up());
    let mut got: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for _ in 0..10 {
        if consumer.caught_up() {
            break;
        }
        for r in consumer.poll().unwrap() {
            got.entry(r.partition).or_default().push(r.record.offset);
        }
    }
    assert!(consumer.caught_up());
    for p in 0..3 {
        assert_eq!(got[&p], vec![0, 1, 2, 3], "partition {p}");
    }

    let client = consumer.into_client();
    let mut consumer = Consumer::new(
        client,
        "log",
        Some(&[1]),
        StartOffset::Offset(3),
        FetchOptions::default(),
    )
    .unwrap();
    let records = consumer.poll().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].record.value.as_deref(), Some(&b"p1-b1-1"[..]));

    let client = consumer.into_client();
    let mut consumer = Consumer::new(
        client,
        "log",
        Some(&[2]),
        StartOffset::Latest,
        FetchOptions::default(),
    )
    .unwrap();
    assert!(consumer.caught_up());
    assert!(consumer.poll().unwrap().is_empty());
    assert_eq!(consumer.positions()[&2], 4);
    let err = Consumer::new(
        consumer.into_client(),
        "log",
        Some(&[9]),
        StartOffset::Earliest,
        FetchOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, ClientError::UnknownPartition { partition: 9, .. }),
        "{err}"
    );
}
