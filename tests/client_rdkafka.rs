//! librdkafka through the `rdkafka` crate (issue 3, acceptance 1): 10,000 keyed records with
//! headers and timestamps through BaseProducer/BaseConsumer; gzip, snappy, lz4 and zstd
//! batches accepted, stored as sent and read back; the idempotent producer.

use shoal_testkit::rdk;
use shoal_testkit::{make_records, stored_batches, Broker};

const PARTITIONS: i32 = 8;
const RECORDS: usize = 10_000;

#[test]
fn rdkafka_keyed_records_round_trip() {
    let broker = Broker::start();
    let topic = "rdkafka-keyed";
    rdk::create_topic(&broker.addr(), topic, PARTITIONS);
    let records = make_records(RECORDS, "rdkafka");
    let producer = rdk::producer(&broker.addr(), &[]);
    let delivered = rdk::produce_all(&producer, topic, &records, topic);
    let per_partition =
        rdk::consume_verified(&broker.addr(), topic, PARTITIONS, &records, &delivered);
    assert!(
        per_partition.iter().all(|&n| n > 0),
        "every partition gets keys: {per_partition:?}"
    );
    for (partition, batch) in stored_batches(&broker.addr(), topic, PARTITIONS) {
        assert!(
            batch.crc_ok,
            "partition {partition}: stored batch {batch:?} has a bad CRC"
        );
        assert_eq!(batch.magic, 2, "partition {partition}: record format v2");
    }
}

#[test]
fn rdkafka_compressed_batches_are_accepted_stored_and_read_back() {
    let broker = Broker::start();
    for (codec, id) in [("gzip", 1), ("snappy", 2), ("lz4", 3), ("zstd", 4)] {
        let topic = format!("rdkafka-{codec}");
        rdk::create_topic(&broker.addr(), &topic, PARTITIONS);
        let records = make_records(4_000, &format!("rdkafka-{codec}"));
        let producer = rdk::producer(&broker.addr(), &[("compression.type", codec)]);
        let delivered = rdk::produce_all(&producer, &topic, &records, &topic);
        rdk::consume_verified(&broker.addr(), &topic, PARTITIONS, &records, &delivered);
        // Stored as the producer sent them (compression.type=producer, Kafka's default).
        // librdkafka sends a batch uncompressed when compressing did not shrink it (a batch of
        // one or two small records under a slow, loaded machine), so only those may be codec 0.
        let batches = stored_batches(&broker.addr(), &topic, PARTITIONS);
        assert!(!batches.is_empty());
        let mut compressed_records = 0usize;
        for (partition, batch) in batches {
            let codec_seen = batch.compression();
            assert!(
                codec_seen == id || (codec_seen == 0 && batch.record_count <= SMALL_BATCH_RECORDS_MAX),
                "{codec}: partition {partition} holds a batch with codec {codec_seen} ({batch:?}); librdkafka \
                 sends uncompressed when the broker lacks a feature's ApiVersions (lz4: FindCoordinator v0)"
            );
            if codec_seen == id {
                compressed_records += batch.record_count as usize;
            }
            assert!(
                batch.crc_ok,
                "{codec}: partition {partition}: bad CRC in {batch:?}"
            );
        }
        assert!(
            compressed_records * 2 > records.len(),
            "{codec}: only {compressed_records} of {} records were stored compressed",
            records.len()
        );
    }
}

/// Batches this small may legitimately stay uncompressed (compression would grow them).
const SMALL_BATCH_RECORDS_MAX: i32 = 2;

#[test]
fn rdkafka_idempotent_producer_round_trip() {
    let broker = Broker::start();
    let topic = "rdkafka-idempotent";
    rdk::create_topic(&broker.addr(), topic, PARTITIONS);
    let records = make_records(RECORDS, "rdkafka-idempotent");
    let producer = rdk::producer(&broker.addr(), &[("enable.idempotence", "true")]);
    let delivered = rdk::produce_all(&producer, topic, &records, topic);
    rdk::consume_verified(&broker.addr(), topic, PARTITIONS, &records, &delivered);
    shoal_testkit::check_idempotent_batches(&stored_batches(&broker.addr(), topic, PARTITIONS));
}
