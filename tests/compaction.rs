//! Compaction end to end (`shoal serve`, real clients, SIGKILL during cleaning).

use shoal_testkit::{topic_name, Broker, BrokerOptions};

/// A node whose cleaner looks for work every 100 ms, paced at 1 GiB/s (unpaced, here).
fn compacting_broker() -> (Broker, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("shoal.toml");
    std::fs::write(
        &config,
        "log_cleaner_backoff_ms = 100\nlog_cleaner_io_bytes_per_second_max = 1073741824\n",
    )
    .unwrap();
    let broker = Broker::start_with(BrokerOptions {
        extra_args: vec!["--config".into(), config.display().to_string()],
        ..BrokerOptions::default()
    });
    (broker, dir)
}

const COMPACT_TOPIC: &[&str] = &[
    "cleanup.policy=compact",
    "segment.bytes=65536",
    "segment.ms=300",
    "min.cleanable.dirty.ratio=0.01",
    "delete.retention.ms=1000",
];

fn client_round(lib: &str) {
    let (broker, _config) = compacting_broker();
    let topic = topic_name("compact");
    broker.create_topic_with(&topic, 1, COMPACT_TOPIC);
    let out = broker.python(
        "compaction_check.py",
        &["--topic", &topic, "--lib", lib, "--timeout", "90"],
    );
    assert!(out.contains("updates: 1000 records"), "{out}");
    assert!(out.contains("deletes: 900 records"), "{out}");
}

#[test]
fn confluent_kafka_reads_the_latest_value_per_key_and_deletes_go() {
    client_round("confluent");
}

#[test]
fn kafka_python_reads_the_latest_value_per_key_and_deletes_go() {
    client_round("kafka-python");
}
