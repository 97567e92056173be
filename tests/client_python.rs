//! Python clients (issue 3, acceptance 1): confluent-kafka, kafka-python 3.x (idempotent by
//! default) and aiokafka each create a topic with 8 partitions, produce 10,000 keyed records
//! with headers and timestamps, and consume them all back; the checks are in
//! tests/clients/kafkacheck.py (per-key order, murmur2 partition, headers, timestamps,
//! delivery-report offsets). Here: how the broker stored the batches.

use shoal_testkit::{check_idempotent_batches, stored_batches, Broker};

const PARTITIONS: i32 = 8;
const RECORDS: &str = "10000";

fn run(broker: &Broker, script: &str, topic: &str, extra: &[&str]) {
    let mut args = vec!["--topic", topic, "--count", RECORDS, "--partitions", "8"];
    args.extend_from_slice(extra);
    let stdout = broker.python(script, &args);
    assert!(
        stdout.contains("\"ok\": true"),
        "{script}: no success line in {stdout}"
    );
}

#[test]
fn confluent_kafka_round_trip() {
    let broker = Broker::start();
    run(&broker, "confluent_roundtrip.py", "confluent", &[]);
}

#[test]
fn confluent_kafka_idempotent_round_trip() {
    let broker = Broker::start();
    run(
        &broker,
        "confluent_roundtrip.py",
        "confluent-idem",
        &["--idempotence"],
    );
    check_idempotent_batches(&stored_batches(
        &broker.addr(),
        "confluent-idem",
        PARTITIONS,
    ));
}

#[test]
fn confluent_kafka_compressed_round_trip() {
    let broker = Broker::start();
    for (codec, id) in [("gzip", 1), ("snappy", 2), ("lz4", 3), ("zstd", 4)] {
        let topic = format!("confluent-{codec}");
        let args = [
            "--topic",
            &topic,
            "--count",
            "2000",
            "--partitions",
            "8",
            "--compression",
            codec,
        ];
        let stdout = broker.python("confluent_roundtrip.py", &args);
        assert!(stdout.contains("\"ok\": true"), "{codec}: {stdout}");
        for (partition, batch) in stored_batches(&broker.addr(), &topic, PARTITIONS) {
            assert_eq!(
                batch.compression(),
                id,
                "{codec}: partition {partition}: {batch:?}"
            );
            assert!(
                batch.crc_ok,
                "{codec}: partition {partition}: bad CRC {batch:?}"
            );
        }
    }
}

#[test]
fn kafka_python_idempotent_round_trip() {
    let broker = Broker::start();
    run(&broker, "kafka_python_roundtrip.py", "kafka-python", &[]);
    // Idempotence is kafka-python 3's default: the stored batches prove it was used.
    check_idempotent_batches(&stored_batches(&broker.addr(), "kafka-python", PARTITIONS));
}

#[test]
fn aiokafka_round_trip() {
    let broker = Broker::start();
    run(&broker, "aiokafka_roundtrip.py", "aiokafka", &[]);
    for (partition, batch) in stored_batches(&broker.addr(), "aiokafka", PARTITIONS) {
        assert!(batch.crc_ok, "partition {partition}: bad CRC {batch:?}");
    }
}
