//! Consumer groups under failure and scale with Python confluent-kafka (issue 4, acceptance 3,
//! 4 and 5). Members are separate processes (tests/clients/groups_failover.py) committing
//! manually after processing; every wait is bounded and fails with the group's state.
//!
//! 3. SIGKILL one member of three: its partitions move to the other two within
//!    session.timeout.ms + one rebalance, who resume at its last commit; everything consumed,
//!    duplicates exactly its uncommitted tail.
//! 4. Scale 3 -> 5 -> 6 -> 7 members on 6 partitions: spread, disjoint, complete; the 7th idle.
//! 5. Committed offsets survive a broker SIGKILL + restart: the group resumes exactly there.

use shoal_testkit::Broker;

fn assert_ok(stdout: &str, what: &str) {
    assert!(
        stdout.contains("\"ok\": true"),
        "{what}: no success line in {stdout}"
    );
}

#[test]
fn confluent_kafka_member_sigkill_failover() {
    let broker = Broker::start();
    let args = [
        "--mode",
        "failover",
        "--topic",
        "failover",
        "--count",
        "6000",
        "--partitions",
        "6",
        "--commit-until",
        "600",
        "--uncommitted",
        "300",
    ];
    let stdout = broker.python("groups_failover.py", &args);
    assert_ok(&stdout, "failover");
    eprintln!("{stdout}");
}

#[test]
fn confluent_kafka_scale_to_seven_members() {
    let broker = Broker::start();
    let args = [
        "--mode",
        "scale",
        "--topic",
        "scale",
        "--count",
        "1200",
        "--partitions",
        "6",
    ];
    let stdout = broker.python("groups_failover.py", &args);
    assert_ok(&stdout, "scale");
    eprintln!("{stdout}");
}

#[test]
fn confluent_kafka_committed_offsets_survive_broker_sigkill() {
    let mut broker = Broker::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("phase1.json");
    let state = state.to_str().expect("utf-8 path");
    let common_args = [
        "--topic",
        "restart",
        "--count",
        "3000",
        "--partitions",
        "6",
        "--state",
        state,
    ];
    let phase = |broker: &Broker, mode: &str, extra: &[&str]| {
        let mut args = vec!["--mode", mode];
        args.extend_from_slice(&common_args);
        args.extend_from_slice(extra);
        let stdout = broker.python("groups_failover.py", &args);
        assert_ok(&stdout, mode);
        eprintln!("{mode}: {stdout}");
    };
    phase(
        &broker,
        "phase1",
        &["--commit-until", "1000", "--uncommitted", "400"],
    );
    broker.kill();
    broker.restart();
    phase(&broker, "phase2", &[]);
}
