//! Real librdkafka (the `rdkafka` crate) against a fake broker made of Shoal's codecs: every
//! request librdkafka sends must decode, every response we encode must satisfy it, and its
//! compressed batches must pass our CRC check and decode with our record codec.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;
use rdkafka::config::ClientConfig as RdConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use shoal_protocol::partitioner::partition_for_key;
use shoal_protocol::records::{decode_batch, BatchHeader, Compression};
use shoal_testkit::fake_broker::FakeBroker;
use shoal_testkit::rdk::DeliveryCounts;

const PARTITIONS: i32 = 8;

/// A consumer of `broker` assigned partitions `0..partitions` of each of `topics`, from the
/// beginning.
fn consumer_from_beginning(
    broker: &FakeBroker,
    topics: &[String],
    partitions: i32,
) -> BaseConsumer {
    let consumer: BaseConsumer = RdConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "shoal-test")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for topic in topics {
        for p in 0..partitions {
            assignment
                .add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
    }
    consumer.assign(&assignment).unwrap();
    consumer
}

/// One poll of `consumer` (None: nothing yet); panics on a consumer error, or once `deadline`
/// (60 s after the start) has passed, saying what was consumed `so_far`.
fn next_message<'a>(
    consumer: &'a BaseConsumer,
    deadline: Instant,
    so_far: &str,
) -> Option<BorrowedMessage<'a>> {
    assert!(
        Instant::now() < deadline,
        "consumed only {so_far} within 60 s"
    );
    match consumer.poll(Duration::from_millis(200)) {
        None => None,
        Some(Err(e)) => panic!("consumer error: {e}"),
        Some(Ok(m)) => Some(m),
    }
}
const RECORDS_PER_CODEC: usize = 500;

fn produce(broker: &FakeBroker, topic: &str, codec: &str, idempotent: bool) {
    let deliveries = DeliveryCounts::default();
    let producer: ThreadedProducer<DeliveryCounts> = RdConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("compression.codec", codec)
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random")
        .set(
            "enable.idempotence",
            if idempotent { "true" } else { "false" },
        )
        .set("message.timeout.ms", "20000")
        .create_with_context(deliveries.clone())
        .expect("producer");
    for i in 0..RECORDS_PER_CODEC {
        let key = format!("key-{}", i % 40);
        let value = format!("{codec}-{i}-{}", "x".repeat(i % 64));
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "dup",
                value: Some("a"),
            })
            .insert(Header {
                key: "dup",
                value: Some("b"),
            })
            .insert(Header::<&str> {
                key: "null",
                value: None,
            });
        producer
            .send(
                BaseRecord::to(topic)
                    .key(&key)
                    .payload(&value)
                    .headers(headers)
                    .timestamp(1_700_000_000_000 + i as i64),
            )
            .expect("enqueue");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
    assert_eq!(
        deliveries.failed.load(Ordering::SeqCst),
        0,
        "{codec}: failed deliveries"
    );
    assert_eq!(
        deliveries.ok.load(Ordering::SeqCst),
        RECORDS_PER_CODEC,
        "{codec}"
    );
}

#[test]
fn librdkafka_produces_every_codec_and_consumes_through_our_codecs() {
    let broker = FakeBroker::start();
    let codecs = [
        ("none", Compression::None),
        ("gzip", Compression::Gzip),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ];
    for (codec, _) in &codecs {
        broker.create_topic(&format!("t-{codec}"), PARTITIONS as usize);
    }
    for (i, (codec, expected)) in codecs.iter().enumerate() {
        let topic = format!("t-{codec}");
        produce(&broker, &topic, codec, i % 2 == 1);
        // What librdkafka sent, read back with our record codec.
        let mut count = 0;
        let mut per_key: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for (partition, batches) in broker.batches(&topic).iter().enumerate() {
            for batch in batches {
                let header = BatchHeader::parse(batch).unwrap();
                assert_eq!(header.compression(), Some(*expected), "{codec}");
                let (_, records) = decode_batch(batch).unwrap();
                for r in records {
                    let key = r.key.clone().unwrap();
                    assert_eq!(
                        partition as i32,
                        partition_for_key(&key, PARTITIONS),
                        "{codec}: key {key:?} in the partition Kafka's partitioner picks"
                    );
                    assert_eq!(r.headers.len(), 3);
                    assert_eq!(r.headers[0].key, r.headers[1].key);
                    assert_eq!(r.headers[2].value, None);
                    let value = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
                    let i: i64 = value.split('-').nth(1).unwrap().parse().unwrap();
                    assert_eq!(r.timestamp_ms, 1_700_000_000_000 + i);
                    per_key
                        .entry(String::from_utf8(key.to_vec()).unwrap())
                        .or_default()
                        .push(i);
                    count += 1;
                }
            }
        }
        assert_eq!(count, RECORDS_PER_CODEC, "{codec}");
        for (key, seq) in per_key {
            assert!(
                seq.windows(2).all(|w| w[0] < w[1]),
                "{codec}: order of {key}"
            );
        }
    }

    // Consume everything back with librdkafka (Fetch, ListOffsets through our encoder).
    let topics: Vec<String> = codecs
        .iter()
        .map(|(codec, _)| format!("t-{codec}"))
        .collect();
    let consumer = consumer_from_beginning(&broker, &topics, PARTITIONS);
    let total = RECORDS_PER_CODEC * codecs.len();
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen < total {
        let so_far = format!("{seen} of {total} records");
        let Some(m) = next_message(&consumer, deadline, &so_far) else {
            continue;
        };
        let headers = m.headers().expect("headers");
        assert_eq!(headers.count(), 3);
        assert_eq!(headers.get(0).key, "dup");
        assert_eq!(headers.get(1).key, "dup");
        assert_eq!(headers.get(1).value, Some(&b"b"[..]));
        assert_eq!(headers.get(2).value, None);
        assert!(m.timestamp().to_millis().unwrap() >= 1_700_000_000_000);
        seen += 1;
    }
    let st = broker.state.lock().unwrap();
    eprintln!("versions librdkafka used: {:?}", st.versions);
    assert!(st.seen.contains_key(&(ApiKey::Fetch as i16)));
    // Metadata carries topic ids, so librdkafka fetches by id (v13+).
    assert!(
        st.versions[&(ApiKey::Fetch as i16)]
            .iter()
            .any(|&v| v >= 13),
        "fetch versions {:?}",
        st.versions[&(ApiKey::Fetch as i16)]
    );
    assert!(
        st.seen.contains_key(&(ApiKey::InitProducerId as i16)),
        "idempotent producers"
    );
}

#[test]
fn librdkafka_consumes_what_our_producer_compressed() {
    use shoal_client::{Client, Producer, ProducerConfig};
    use shoal_protocol::records::NewRecord;
    let broker = FakeBroker::start();
    let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    for codec in codecs {
        broker.create_topic(&format!("ours-{codec}"), 2);
    }
    let mut producer = Producer::new(
        Client::connect(broker.config()).unwrap(),
        ProducerConfig {
            linger: Duration::from_secs(3600),
            ..ProducerConfig::default()
        },
    )
    .unwrap();
    for codec in codecs {
        producer = Producer::new(
            producer.into_client(),
            ProducerConfig {
                linger: Duration::from_secs(3600),
                compression: Compression::parse(codec).unwrap(),
                ..ProducerConfig::default()
            },
        )
        .unwrap();
        for i in 0..100 {
            producer
                .send(
                    &format!("ours-{codec}"),
                    None,
                    NewRecord {
                        key: Some(format!("k{i}").into_bytes().into()),
                        value: Some(format!("{codec} value {i}").into_bytes().into()),
                        headers: vec![],
                        timestamp_ms: 1_700_000_000_000,
                    },
                )
                .unwrap();
        }
        producer.flush().unwrap();
        for batches in broker.batches(&format!("ours-{codec}")) {
            for b in batches {
                let header = BatchHeader::parse(&b).unwrap();
                assert_eq!(header.compression(), Compression::parse(codec));
            }
        }
    }
    let topics: Vec<String> = codecs.iter().map(|codec| format!("ours-{codec}")).collect();
    let consumer = consumer_from_beginning(&broker, &topics, 2);
    let mut per_topic: BTreeMap<String, usize> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while per_topic.values().sum::<usize>() < 100 * codecs.len() {
        let so_far = format!("{per_topic:?}");
        let Some(m) = next_message(&consumer, deadline, &so_far) else {
            continue;
        };
        let value = std::str::from_utf8(m.payload().unwrap()).unwrap();
        let codec = m.topic().strip_prefix("ours-").unwrap();
        assert!(value.starts_with(codec), "{value} in {}", m.topic());
        *per_topic.entry(m.topic().to_string()).or_default() += 1;
    }
    assert!(per_topic.values().all(|&n| n == 100), "{per_topic:?}");
}
