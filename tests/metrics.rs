//! The admin listener's `GET /metrics` (Prometheus text): a produce moves the request
//! counters and the per-stage histograms (request, log append, write, fsync), every histogram
//! is well formed, and bad requests get short 4xx answers.

use std::collections::BTreeMap;

use shoal_testkit::{make_records, rdk, Broker};

/// `name value` lines (no labels), and for each histogram its cumulative buckets in order.
struct Scrape {
    values: BTreeMap<String, f64>,
    buckets: BTreeMap<String, Vec<f64>>,
}

fn scrape(broker: &Broker) -> Scrape {
    let (status, body) = broker.admin_get("/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let mut values = BTreeMap::new();
    let mut buckets: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value in {line:?}"));
        match name.split_once("_bucket{") {
            Some((family, _)) => buckets.entry(family.to_string()).or_default().push(value),
            None => {
                values.insert(name.to_string(), value);
            }
        }
    }
    Scrape { values, buckets }
}

impl Scrape {
    fn get(&self, name: &str) -> f64 {
        *self
            .values
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing"))
    }
    fn count(&self, histogram: &str) -> f64 {
        self.get(&format!("{histogram}_count"))
    }
}

const STAGES: [&str; 5] = [
    "shoal_produce_request_latency_seconds",
    "shoal_log_append_queue_seconds",
    "shoal_log_append_seconds",
    "shoal_log_write_seconds",
    "shoal_log_fsync_seconds",
];

#[test]
fn a_produce_moves_the_request_counters_and_stage_histograms() {
    let broker = Broker::start_with_admin();
    broker.create_topic("metered", 2);
    let before = scrape(&broker);
    for stage in STAGES {
        assert_eq!(before.count(stage), 0.0, "{stage} before any produce");
    }
    let producer = rdk::producer(&broker.addr(), &[("acks", "all"), ("linger.ms", "0")]);
    let records = make_records(300, "metrics");
    rdk::produce_all(&producer, "metered", &records, "metered");
    let after = scrape(&broker);
    let produces = after.get("shoal_produce_requests_total");
    assert!(produces >= 1.0, "produce requests: {produces}");
    assert_eq!(
        after.count(STAGES[0]),
        produces,
        "one latency sample per produce request"
    );
    let appends = after.count("shoal_log_append_seconds");
    assert!(
        appends >= produces,
        "{appends} appends for {produces} produce requests"
    );
    assert_eq!(after.count("shoal_log_append_queue_seconds"), appends);
    assert!(after.count("shoal_log_write_seconds") >= 1.0);
    assert!(
        after.count("shoal_log_fsync_seconds") >= 1.0,
        "acks=all syncs"
    );
    assert!(
        after.get("shoal_requests_total") > produces,
        "metadata requests count too"
    );
    for stage in STAGES {
        assert!(after.get(&format!("{stage}_sum")) > 0.0, "{stage} sum");
    }
    for (family, cumulative) in &after.buckets {
        assert!(
            cumulative.windows(2).all(|w| w[0] <= w[1]),
            "{family}: buckets not cumulative: {cumulative:?}"
        );
        let total = *cumulative.last().unwrap();
        assert_eq!(total, after.count(family), "{family}: +Inf bucket = count");
    }
    // More produce, more samples.
    rdk::produce_all(&producer, "metered", &records, "metered again");
    let again = scrape(&broker);
    assert!(again.count(STAGES[0]) > after.count(STAGES[0]));
    assert!(again.count("shoal_log_fsync_seconds") > after.count("shoal_log_fsync_seconds"));
}

#[test]
fn bad_admin_requests_get_short_answers() {
    let broker = Broker::start_with_admin();
    assert_eq!(broker.admin_get("/nope").0, "HTTP/1.1 404 Not Found");
    use std::io::{Read, Write};
    let send = |request: &[u8]| {
        let mut s = std::net::TcpStream::connect(broker.admin_addr()).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let _ = s.write_all(request);
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    assert!(send(b"POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 400"));
    let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    assert!(
        !send(huge.as_bytes()).contains("200 OK"),
        "an oversize head is not answered"
    );
    // The listener still answers.
    assert_eq!(broker.admin_get("/metrics").0, "HTTP/1.1 200 OK");
}
