//! Growing topics and changing their configs after creation: CreatePartitions and
//! IncrementalAlterConfigs from confluent-kafka's AdminClient (tests/clients/admin_alter.py) and
//! from `shoal topic add-partitions|alter-config`, with the change seen by produce, describe
//! and a restart.

use shoal_testkit::Broker;

#[test]
fn confluent_admin_grows_topics_and_alters_configs() {
    let broker = Broker::start();
    let stdout = broker.python("admin_alter.py", &["--topic", "admin-alter"]);
    assert!(stdout.contains("\"ok\": true"), "admin_alter.py: {stdout}");
}

#[test]
fn cli_add_partitions_and_alter_config_survive_a_restart() {
    let mut broker = Broker::start();
    broker.cli(&["topic", "create", "grow", "-p", "2"], None);
    let out = broker.cli(&["topic", "add-partitions", "grow", "-n", "5"], None);
    assert!(out.contains("now has 5 partitions"), "{out}");
    let refused = broker.cli_output(&["topic", "add-partitions", "grow", "-n", "4"], None);
    assert!(!refused.status.success(), "shrinking to 4 must fail");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("InvalidPartitions"), "{stderr}");
    broker.cli(
        &[
            "topic",
            "alter-config",
            "grow",
            "--set",
            "retention.ms=7200000",
        ],
        None,
    );
    let refused = broker.cli_output(
        &["topic", "alter-config", "grow", "--set", "segment.ms=never"],
        None,
    );
    assert!(!refused.status.success(), "segment.ms=never must fail");
    let check = |broker: &Broker, when: &str| {
        let describe = broker.cli(&["topic", "describe", "grow"], None);
        assert!(
            describe.contains("PartitionCount: 5\t"),
            "{when}: partitions in\n{describe}"
        );
        assert!(
            describe.contains("retention.ms=7200000"),
            "{when}: configs in\n{describe}"
        );
        assert!(
            !describe.contains("segment.ms"),
            "{when}: refused config in\n{describe}"
        );
    };
    check(&broker, "before the restart");
    broker.restart();
    check(&broker, "after the restart");
    broker.cli(
        &["topic", "alter-config", "grow", "--delete", "retention.ms"],
        None,
    );
    let describe = broker.cli(&["topic", "describe", "grow"], None);
    assert!(!describe.contains("7200000"), "after --delete:\n{describe}");
}

#[test]
fn cli_output_into_a_closed_pipe_ends_without_a_panic() {
    let broker = Broker::start();
    for i in 0..3 {
        broker.cli(&["topic", "create", &format!("pipe-{i}")], None);
    }
    let mut child = std::process::Command::new(shoal_testkit::shoal_bin())
        .args(["topic", "list", "--brokers", &broker.addr()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn shoal topic list");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("wait shoal topic list");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGPIPE),
        "ends by SIGPIPE like other Unix tools: {:?}, stderr: {stderr}",
        output.status
    );
}

/// Kafka answers a Fetch partition that failed with empty records, never null (librdkafka at
/// Fetch v16 trips over null).
#[test]
fn a_failed_fetch_partition_carries_empty_records() {
    let broker = Broker::start();
    broker.create_topic("empty-records", 1);
    let mut conn = shoal_testkit::raw::RawConn::connect(&broker.addr());
    for (partition, offset, code) in [(0, 1_000, 1), (7, 0, 3)] {
        let response = conn.fetch("empty-records", partition, offset);
        let p = &response.responses[0].partitions[0];
        assert_eq!(p.error_code, code, "partition {partition} offset {offset}");
        assert_eq!(
            p.records.as_deref(),
            Some(&[][..]),
            "partition {partition}: records must be empty, not null"
        );
    }
}
