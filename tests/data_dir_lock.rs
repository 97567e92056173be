//! A second node on a data dir that a running node owns refuses to start, with a message that
//! names the problem; the first node keeps serving.

use std::process::Command;
use std::time::Duration;

use shoal_testkit::raw::RawConn;
use shoal_testkit::Broker;

#[test]
fn second_node_on_the_same_data_dir_refuses_to_start() {
    let mut broker = Broker::start();
    let mut conn = RawConn::connect(&broker.addr());
    conn.create_topic("locked", 1);

    let mut second = Command::new(shoal_testkit::shoal_bin());
    second.args([
        "serve",
        "--data-dir",
        &broker.data_dir().display().to_string(),
        "--listen",
        &format!("127.0.0.1:{}", shoal_testkit::free_port()),
    ]);
    let output = shoal_testkit::run(second, None, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "second node on the same data dir must fail; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("in use by another shoal process"),
        "the error must name the problem; stderr:\n{stderr}"
    );

    broker.assert_running();
    let (error, offset) = conn.produce("locked", 0, &[shoal_testkit::raw::record(None, b"v", 1)]);
    assert_eq!((error, offset), (0, 0), "the first node still serves");

    // Once the first node is gone the lock goes with it: a restart on the same dir works.
    broker.restart();
    let mut conn = RawConn::connect(&broker.addr());
    let records = conn.fetch_all("locked", 0, 0);
    assert_eq!(records.len(), 1, "the record survives the restart");
}
