//! The two fetch paths (`fetch_zero_copy`): record bytes sent file to socket with sendfile(2),
//! or copied out and written. librdkafka reads every record back, in order and intact, on
//! both; the byte counters on `/metrics` show which path carried them; and a response larger
//! than the socket buffers, to a client that reads late, still arrives whole (the full socket
//! makes sendfile return EAGAIN, and the send goes on through the writer's wait).

use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use shoal_testkit::raw::{self, Outcome, RawConn};
use shoal_testkit::{make_records, rdk, Broker, BrokerOptions};

const FETCH_VERSION: i16 = 12;

fn broker(zero_copy: bool) -> (Broker, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("node.toml");
    std::fs::write(&config, format!("fetch_zero_copy = {zero_copy}\n")).expect("write config");
    let broker = Broker::start_with(BrokerOptions {
        extra_args: vec![
            "--config".into(),
            config.display().to_string(),
            "--admin-listen".into(),
            "127.0.0.1:0".into(),
        ],
        ..BrokerOptions::default()
    });
    (broker, dir)
}

#[test]
fn both_fetch_paths_deliver_every_record_and_count_their_bytes() {
    for zero_copy in [true, false] {
        let (broker, _dir) = broker(zero_copy);
        // Small segments: reads cross segment boundaries, so responses carry several ranges.
        broker.create_topic_with("paths", 4, &["segment.bytes=65536"]);
        let producer = rdk::producer(
            &broker.addr(),
            &[("acks", "all"), ("linger.ms", "2"), ("batch.size", "16384")],
        );
        let records = make_records(3000, "paths");
        let delivered = rdk::produce_all(&producer, "paths", &records, "paths");
        rdk::consume_verified(&broker.addr(), "paths", 4, &records, &delivered);
        let sent = broker.metric("shoal_fetch_zero_copy_bytes_total");
        let copied = broker.metric("shoal_fetch_copied_bytes_total");
        let sends = broker.metric("shoal_fetch_send_seconds_count");
        assert!(
            sends >= 1.0,
            "zero_copy={zero_copy}: {sends} fetch sends timed"
        );
        // Every value crossed the socket at least once, by the configured path.
        let values: usize = records.iter().map(|r| r.value.len()).sum();
        if zero_copy {
            assert!(
                sent >= values as f64,
                "sendfile carried {sent} of {values} bytes"
            );
        } else {
            assert_eq!(sent, 0.0, "the copying path used sendfile");
            assert!(copied >= values as f64, "copied {copied} of {values} bytes");
        }
    }
}

#[test]
fn a_response_larger_than_the_socket_buffers_arrives_whole_to_a_late_reader() {
    let (broker, _dir) = broker(true);
    broker.create_topic("big", 1);
    let producer = rdk::producer(&broker.addr(), &[("acks", "all"), ("linger.ms", "5")]);
    let mut records = make_records(24_000, "big");
    for r in &mut records {
        r.value = vec![b'v'; 1000];
    }
    rdk::produce_all(&producer, "big", &records, "big");

    let mut conn = RawConn::connect(&broker.addr());
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(48 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(raw::topic_name("big"))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(0)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(48 << 20)])]);
    let (correlation_id, payload) = conn.encode_request(FETCH_VERSION, &request);
    conn.write_frame(&payload).expect("write fetch");
    // Let the broker fill the socket buffers before anything is read.
    std::thread::sleep(Duration::from_millis(500));
    let Outcome::Response(bytes) = conn.read_outcome("big fetch") else {
        panic!("the broker closed the connection instead of answering");
    };
    let response: FetchResponse =
        raw::decode_response("big fetch", bytes, FETCH_VERSION, correlation_id);
    let data = raw::single_fetch_partition(&response, "big", 0);
    assert_eq!(data.error_code, 0);
    let set = data.records.clone().expect("records");
    assert!(set.len() > 16 << 20, "only {} bytes fetched", set.len());
    let headers = raw::batch_headers(&set);
    assert!(
        headers.iter().all(|h| h.crc_ok),
        "a batch arrived with a bad CRC"
    );
    let mut next = 0;
    for h in &headers {
        assert_eq!(h.base_offset, next, "batches back to back");
        next = h.base_offset + i64::from(h.last_offset_delta) + 1;
    }
    assert_eq!(
        raw::decode_records(set).len() as i64,
        next,
        "every record of the fetched batches decodes"
    );
    assert!(
        broker.metric("shoal_fetch_copied_bytes_total") > 0.0,
        "the full socket never made sendfile fall back to the writer's wait"
    );
    // The connection is still usable after the long send.
    let again = conn.fetch("big", 0, next - 1);
    assert_eq!(raw::single_fetch_partition(&again, "big", 0).error_code, 0);
}
