//! Clients cannot write to or delete the internal `__consumer_offsets` topic (as in Kafka).

use shoal_testkit::{describe_output, Broker};

#[test]
fn internal_offsets_topic_refuses_produce_and_delete() {
    let broker = Broker::start();
    // A group lookup creates __consumer_offsets.
    let out = broker.cli_output(&["group", "describe", "probe-group"], None);
    assert!(
        out.status.success(),
        "{}",
        describe_output("group describe", &out)
    );
    let out = broker.cli_output(&["topic", "list"], None);
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        listing.contains("__consumer_offsets"),
        "internal topic not created:\n{listing}"
    );

    let out = broker.cli_output(
        &["produce", "__consumer_offsets", "--partition", "0"],
        Some(b"x\n"),
    );
    assert!(
        !out.status.success(),
        "{}",
        describe_output("produce to internal topic", &out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("InvalidTopic") || err.contains("(17)"),
        "unexpected error: {err}"
    );

    let out = broker.cli_output(&["topic", "delete", "__consumer_offsets"], None);
    assert!(
        !out.status.success(),
        "{}",
        describe_output("delete internal topic", &out)
    );
    let out = broker.cli_output(&["topic", "list"], None);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("__consumer_offsets"),
        "internal topic was deleted"
    );
}
