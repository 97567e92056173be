//! Acceptance 4: fixed-rate mode against a real `shoal serve` process.
//! The rate is within 2% of the target well below capacity, and a stall of the broker
//! (SIGSTOP/SIGCONT) shows up in the reported, coordinated-omission corrected latency.

use shoal_bench::kafka::{self, RunOptions};
use shoal_bench::result::BenchResult;
use shoal_bench::workload::Workload;
use shoal_testkit::Broker;
use std::sync::mpsc;
use std::time::Duration;

fn workload(name: &str, in_flight_max: u64) -> Workload {
    Workload::from_toml(&format!(
        r#"
name = "{name}"
topics = 1
partitions_per_topic = 4
message_size = 512
producers_per_topic = 1
consumers_per_subscription = 1
producer_rate = 2000
warmup_s = 1
duration_s = 8
in_flight_messages_max = {in_flight_max}
[producer]
acks = "1"
linger_ms = 1
"#
    ))
    .unwrap()
}

fn run(broker: &Broker, w: &Workload, on_start: Option<mpsc::Sender<()>>) -> BenchResult {
    kafka::run(
        w,
        &RunOptions {
            brokers: broker.addr.clone(),
            label: None,
            topic_prefix: "test".into(),
            progress: false,
            on_start,
        },
    )
    .unwrap_or_else(|e| panic!("run {} failed: {e}", w.name))
}

#[test]
fn fixed_rate_is_accurate_and_a_broker_stall_is_charged() {
    let broker = Broker::start();

    // 1. Well below capacity (2,000 x 512 B/s): the achieved rate is the target.
    let r = run(&broker, &workload("steady", 100_000), None);
    assert_eq!(r.throughput.publish_errors, 0, "{:?}", r.first_error);
    let acc = r.rate_accuracy().unwrap();
    assert!(
        (acc - 1.0).abs() <= 0.02,
        "sent {:.1} msg/s against 2000 target ({:.2}%)",
        r.throughput.sent_msgs_per_s,
        acc * 100.0
    );
    assert!(r.coordinated_omission_corrected);
    // Every message due in the 8 s window was sent and acknowledged: 2000 x 8.
    assert_eq!(r.histograms.publish_latency.count, 16_000);
    let acked = r.throughput.publish_msgs;
    assert!(
        acked.abs_diff(16_000) <= 1_600,
        "acknowledged {acked} in the window (acks lag sends by the latency, so not exact)"
    );
    assert!(
        r.histograms.e2e_latency.count >= 15_000,
        "consumer saw too little"
    );

    // 2. Pause the broker for 800 ms, 3 s into the run, with at most 50 messages in flight
    // (so the producer is blocked during the stall, as a naive load generator would be).
    let (tx, rx) = mpsc::channel();
    let pid = broker.pid() as i32;
    let staller = std::thread::spawn(move || {
        rx.recv_timeout(Duration::from_secs(120))
            .expect("the run never started producing");
        std::thread::sleep(Duration::from_secs(3));
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        std::thread::sleep(Duration::from_millis(800));
        unsafe { libc::kill(pid, libc::SIGCONT) };
    });
    let r = run(&broker, &workload("stalled", 50), Some(tx));
    staller.join().unwrap();
    let h = &r.histograms;
    assert_eq!(
        r.throughput.publish_errors, 0,
        "the stalled run had errors (first: {:?}; notes: {:?})",
        r.first_error, r.notes
    );
    let p99 = h.publish_latency.percentile(99.0).unwrap();
    let naive_p99 = h.publish_latency_uncorrected.percentile(99.0).unwrap();
    assert!(
        h.publish_latency.max >= 700_000,
        "max publish latency {} us does not include the 800 ms stall",
        h.publish_latency.max
    );
    // ~1,600 of 16,000 messages were due during the stall: p99 sits deep inside it.
    assert!(p99 >= 500_000, "corrected p99 {p99} us misses the stall");
    assert!(
        naive_p99 * 2 < p99,
        "uncorrected p99 {naive_p99} us should hide most of the stall (corrected {p99} us)"
    );
    assert!(
        h.publish_delay.max >= 600_000,
        "publish delay max {}",
        h.publish_delay.max
    );
    assert!(
        h.e2e_latency.max >= 700_000,
        "end-to-end max {} us does not include the stall",
        h.e2e_latency.max
    );
    // Every message due in the window was measured, none was dropped by the stall.
    assert_eq!(h.publish_latency.count, 16_000);
}
