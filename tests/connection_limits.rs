//! Per-connection pipelining limits: with a tiny request-byte budget and request count, a
//! client that pipelines many requests larger than the budget still gets every one answered,
//! in order, and nothing is lost or reordered.

use kafka_protocol::messages::ProduceResponse;
use shoal_testkit::raw::{self, Outcome, RawConn};
use shoal_testkit::{Broker, BrokerOptions};

const PIPELINED_REQUESTS: usize = 40;
const RECORDS_PER_BATCH: usize = 8;

#[test]
fn pipelined_requests_over_the_byte_budget_are_all_answered_in_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        "connection_in_flight_max = 3\nconnection_in_flight_bytes_max = 2048\n",
    )
    .expect("write config");
    let broker = Broker::start_with(BrokerOptions {
        extra_args: vec!["--config".into(), config.display().to_string()],
        ..BrokerOptions::default()
    });
    let mut conn = RawConn::connect(&broker.addr());
    conn.create_topic("pipelined", 2);

    // Every request (about 8 KiB) is larger than the whole 2 KiB budget.
    let value = vec![b'v'; 1000];
    let mut sent = Vec::new();
    for i in 0..PIPELINED_REQUESTS {
        let records: Vec<_> = (0..RECORDS_PER_BATCH)
            .map(|r| {
                raw::record(
                    Some(format!("{i}-{r}").as_bytes()),
                    &value,
                    1_700_000_000_000,
                )
            })
            .collect();
        let partition = (i % 2) as i32;
        let request = raw::produce_request("pipelined", partition, raw::encode_batch(&records));
        let (correlation_id, payload) = conn.encode_request(raw::PRODUCE_VERSION, &request);
        assert!(payload.len() > 2048, "request must exceed the budget");
        conn.write_frame(&payload).expect("pipelined write");
        sent.push((correlation_id, partition));
    }

    let mut next_offset = [0i64; 2];
    for (i, (correlation_id, partition)) in sent.into_iter().enumerate() {
        let what = format!("pipelined Produce #{i}");
        let bytes = match conn.read_outcome(&what) {
            Outcome::Response(bytes) => bytes,
            Outcome::Closed => panic!("{what}: broker closed the connection"),
        };
        let response: ProduceResponse =
            raw::decode_response(&what, bytes, raw::PRODUCE_VERSION, correlation_id);
        let (error, base_offset) = raw::single_produce_result(&response, "pipelined", partition);
        assert_eq!(error, 0, "{what}: error code");
        assert_eq!(
            base_offset, next_offset[partition as usize],
            "{what}: batches of one partition must land in send order"
        );
        next_offset[partition as usize] += RECORDS_PER_BATCH as i64;
    }
    for partition in 0..2 {
        let records = conn.fetch_all("pipelined", partition, 0);
        assert_eq!(
            records.len() as i64,
            next_offset[partition as usize],
            "partition {partition}: every acknowledged record is readable"
        );
    }
}
