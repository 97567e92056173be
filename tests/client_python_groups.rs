//! Consumer groups with the Python clients (issue 4, acceptance 1, 2 and 7). The scripts
//! (tests/clients/groups_*.py, helpers in groupcheck.py) run their consumers as threads or
//! processes with subscribe(), wait (bounded) for the group to settle, and check what every
//! group consumed and committed against the delivery reports and high watermarks.
//!
//! 1. Distributed queue: 6 partitions, 3 members of one group, 2 partitions each; 30,000
//!    records consumed exactly once across the group, committed offsets = high watermarks.
//! 2. Publish/subscribe: groups "accounts" (2 members) and "audit" (1 member) each receive
//!    every record exactly once.
//! 7. Manual commit after processing: a SIGKILLed consumer's successor resumes exactly at the
//!    last commit (no gaps; duplicates are exactly the uncommitted tail).

use shoal_testkit::Broker;

/// Runs `groups_queue.py` with `client` and the `groups` spec ("NAME:MEMBERS,...").
fn queue(broker: &Broker, client: &str, topic: &str, groups: &str, count: usize) {
    let count = count.to_string();
    let args = [
        "--client",
        client,
        "--topic",
        topic,
        "--groups",
        groups,
        "--count",
        &count,
        "--partitions",
        "6",
    ];
    let stdout = broker.python("groups_queue.py", &args);
    assert!(
        stdout.contains("\"ok\": true"),
        "{client} {groups}: no success line in {stdout}"
    );
}

#[test]
fn confluent_kafka_distributed_queue() {
    let broker = Broker::start();
    queue(&broker, "confluent", "queue-confluent", "queue:3", 30_000);
}

#[test]
fn kafka_python_distributed_queue() {
    let broker = Broker::start();
    queue(
        &broker,
        "kafka-python",
        "queue-kafka-python",
        "queue:3",
        30_000,
    );
}

#[test]
fn aiokafka_distributed_queue() {
    let broker = Broker::start();
    queue(&broker, "aiokafka", "queue-aiokafka", "queue:3", 30_000);
}

#[test]
fn confluent_kafka_publish_subscribe() {
    let broker = Broker::start();
    queue(
        &broker,
        "confluent",
        "bank-confluent",
        "accounts:2,audit:1",
        10_000,
    );
}

#[test]
fn kafka_python_publish_subscribe() {
    let broker = Broker::start();
    queue(
        &broker,
        "kafka-python",
        "bank-kafka-python",
        "accounts:2,audit:1",
        10_000,
    );
}

#[test]
fn aiokafka_publish_subscribe() {
    let broker = Broker::start();
    queue(
        &broker,
        "aiokafka",
        "bank-aiokafka",
        "accounts:2,audit:1",
        10_000,
    );
}

#[test]
fn confluent_kafka_manual_commit_survives_sigkill() {
    let broker = Broker::start();
    let args = [
        "--topic",
        "manual-commit",
        "--count",
        "5000",
        "--partitions",
        "6",
        "--commit-until",
        "2000",
        "--uncommitted",
        "500",
    ];
    let stdout = broker.python("groups_crash.py", &args);
    assert!(
        stdout.contains("\"ok\": true"),
        "no success line in {stdout}"
    );
}
