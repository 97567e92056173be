//! Per-shard metrics (plain cells, never shared) and what the node's `/metrics` page shows:
//! every shard hands a snapshot to the scraping shard, which merges and renders them.

use std::cell::Cell;
use std::rc::Rc;

use shoal_metrics::{render_counter, render_histogram, Histogram, HistogramSnapshot};
use shoal_storage::LogTimings;

#[derive(Debug, Default)]
pub struct ShardMetrics {
    /// Produce: decoded to response ready (the acks wait included).
    pub produce_request: Histogram,
    /// Fetch: decoded to response ready (the long-poll wait included).
    pub fetch_request: Histogram,
    pub requests: Cell<u64>,
    pub produce_requests: Cell<u64>,
    pub fetch_requests: Cell<u64>,
    /// acks=all: the append durable on the leader to the high watermark covering it.
    pub replication_wait: Histogram,
    /// Replication frames read on the shard owning their replica / forwarded to another shard.
    pub replica_frames_direct: Cell<u64>,
    pub replica_frames_forwarded: Cell<u64>,
    /// Fetch: response ready to its last byte written.
    pub fetch_send: Histogram,
    /// Fetch record bytes sent file to socket / written from memory.
    pub fetch_bytes_zero_copy: Cell<u64>,
    pub fetch_bytes_copied: Cell<u64>,
    /// Shared by every log this shard opens.
    pub log: Rc<LogTimings>,
}

/// (name, help) of each histogram, in `MetricsSnapshot::histograms` order.
const HISTOGRAMS: [(&str, &str); 8] = [
    (
        "shoal_produce_request_latency_seconds",
        "Produce requests, decoded to response ready (the acks wait included).",
    ),
    (
        "shoal_fetch_request_latency_seconds",
        "Fetch requests, decoded to response ready (the long-poll wait included).",
    ),
    (
        "shoal_log_append_queue_seconds",
        "Log appends, called to placed in the log (FIFO lock, back-pressure, rolls).",
    ),
    (
        "shoal_log_append_seconds",
        "Log appends, called to durable (what a producer with acks>=1 waits for).",
    ),
    (
        "shoal_log_write_seconds",
        "Log writes (one merged io_uring write each).",
    ),
    ("shoal_log_fsync_seconds", "Log fdatasyncs."),
    (
        "shoal_produce_replication_wait_seconds",
        "acks=all produces, durable on the leader to covered by the high watermark.",
    ),
    (
        "shoal_fetch_send_seconds",
        "Fetch responses, ready to their last byte written to the socket.",
    ),
];
const COUNTERS: [(&str, &str); 7] = [
    ("shoal_requests_total", "Kafka requests decoded."),
    ("shoal_produce_requests_total", "Produce requests answered."),
    ("shoal_fetch_requests_total", "Fetch requests answered."),
    (
        "shoal_replica_frames_direct_total",
        "Replication frames read on the shard that holds their replica.",
    ),
    (
        "shoal_replica_frames_forwarded_total",
        "Replication frames forwarded to the shard that holds their replica.",
    ),
    (
        "shoal_fetch_zero_copy_bytes_total",
        "Fetch record bytes sent file to socket (sendfile).",
    ),
    (
        "shoal_fetch_copied_bytes_total",
        "Fetch record bytes written from memory (copying path, or a full socket's next chunk).",
    ),
];

/// One shard's (or the merged node's) metrics at one moment.
#[derive(Clone, Debug, Default)]
pub struct MetricsSnapshot {
    pub histograms: [HistogramSnapshot; HISTOGRAMS.len()],
    pub counters: [u64; COUNTERS.len()],
}

impl ShardMetrics {
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            histograms: [
                self.produce_request.snapshot(),
                self.fetch_request.snapshot(),
                self.log.append_queue.snapshot(),
                self.log.append.snapshot(),
                self.log.write.snapshot(),
                self.log.fsync.snapshot(),
                self.replication_wait.snapshot(),
                self.fetch_send.snapshot(),
            ],
            counters: [
                self.requests.get(),
                self.produce_requests.get(),
                self.fetch_requests.get(),
                self.replica_frames_direct.get(),
                self.replica_frames_forwarded.get(),
                self.fetch_bytes_zero_copy.get(),
                self.fetch_bytes_copied.get(),
            ],
        }
    }
}

impl MetricsSnapshot {
    pub fn merge(&mut self, other: &MetricsSnapshot) {
        for (a, b) in self.histograms.iter_mut().zip(&other.histograms) {
            a.merge(b);
        }
        for (a, b) in self.counters.iter_mut().zip(&other.counters) {
            *a += b;
        }
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for ((name, help), value) in COUNTERS.iter().zip(&self.counters) {
            render_counter(&mut out, name, help, *value);
        }
        for ((name, help), h) in HISTOGRAMS.iter().zip(&self.histograms) {
            render_histogram(&mut out, name, help, h);
        }
        out
    }
}
