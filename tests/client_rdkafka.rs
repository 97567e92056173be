//! librdkafka through the `rdkafka` crate (issue 3, acceptance 1): 10,000 keyed records with
//! headers and timestamps through BaseProducer/BaseConsumer; gzip, snappy, lz4 and zstd
//! batches accepted, stored as sent and read back; the idempotent producer.

use rdkafka::Offset;
use shoal_testkit::rdk;
use shoal_testkit::{make_records, stored_batches, verify, Broker, Checks};

const PARTITIONS: i32 = 8;
const RECORDS: usize = 10_000;

#[test]
fn murmur2_oracle_matches_kafka_test_vectors() {
    // Kafka's UtilsTest.testMurmur2.
    for (data, want) in [
        (&b"21"[..], -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (
            b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58897971,
        ),
        (b"abc", 479470107),
    ] {
        assert_eq!(
            shoal_testkit::murmur2(data),
            want,
            "murmur2({:?})",
            String::from_utf8_lossy(data)
        );
    }
}

#[test]
fn rdkafka_keyed_records_round_trip() {
    let broker = Broker::start();
    let topic = "rdkafka-keyed";
    rdk::create_topic(&broker.addr(), topic, PARTITIONS);
    let records = make_records(RECORDS, "rdkafka");
    let producer = rdk::producer(&broker.addr(), &[]);
    let (delivered, failed) = rdk::produce(&producer, topic, &records);
    assert!(
        failed.is_empty(),
        "{} delivery failures, first: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    let consumed = rdk::consume(
        &broker.addr(),
        topic,
        PARTITIONS,
        Offset::Beginning,
        RECORDS,
    );
    let per_partition = verify(
        &records,
        &consumed,
        PARTITIONS,
        Some(&delivered),
        Checks::ALL,
    );
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
        let (delivered, failed) = rdk::produce(&producer, &topic, &records);
        assert!(
            failed.is_empty(),
            "{codec}: {} delivery failures, first: {:?}",
            failed.len(),
            &failed[..failed.len().min(3)]
        );
        let consumed = rdk::consume(
            &broker.addr(),
            &topic,
            PARTITIONS,
            Offset::Beginning,
            records.len(),
        );
        verify(
            &records,
            &consumed,
            PARTITIONS,
            Some(&delivered),
            Checks::ALL,
        );
        // Stored as the producer sent them (compression.type=producer, Kafka's default).
        let batches = stored_batches(&broker.addr(), &topic, PARTITIONS);
        assert!(!batches.is_empty());
        // librdkafka sends a batch uncompressed when compressing does not make it smaller
        // (rdkafka_msgset_writer.c), which can happen to a lone small record under lz4 when
        // timing sends it alone; any larger batch must carry the codec.
        for (partition, batch) in &batches {
            if batch.compression() == 0 && batch.record_count == 1 {
                continue;
            }
            assert_eq!(
                batch.compression(),
                id,
                "{codec}: partition {partition} holds a batch with codec {} ({batch:?}); librdkafka \
                 sends uncompressed when the broker lacks a feature's ApiVersions (lz4: FindCoordinator v0)",
                batch.compression()
            );
        }
        let compressed = batches
            .iter()
            .filter(|(_, b)| b.compression() == id)
            .count();
        assert!(
            compressed * 2 > batches.len(),
            "{codec}: only {compressed} of {} stored batches use the codec",
            batches.len()
        );
    }
}

#[test]
fn rdkafka_idempotent_producer_round_trip() {
    let broker = Broker::start();
    let topic = "rdkafka-idempotent";
    rdk::create_topic(&broker.addr(), topic, PARTITIONS);
    let records = make_records(RECORDS, "rdkafka-idempotent");
    let producer = rdk::producer(&broker.addr(), &[("enable.idempotence", "true")]);
    let (delivered, failed) = rdk::produce(&producer, topic, &records);
    assert!(
        failed.is_empty(),
        "{} delivery failures, first: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    let consumed = rdk::consume(
        &broker.addr(),
        topic,
        PARTITIONS,
        Offset::Beginning,
        RECORDS,
    );
    verify(
        &records,
        &consumed,
        PARTITIONS,
        Some(&delivered),
        Checks::ALL,
    );
    shoal_testkit::check_idempotent_batches(&stored_batches(&broker.addr(), topic, PARTITIONS));
}
