//! The JSON result of one run, built from merged [`Stats`].

use crate::machine::Machine;
use crate::stats::{HistogramSummary, Stats};
use crate::workload::Workload;
use serde::{Deserialize, Serialize};

pub const RESULT_FORMAT: &str = "shoal-bench/1";

/// One second of the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Seconds since the end of warm-up (negative during warm-up).
    pub t_s: i64,
    pub warmup: bool,
    pub sent_msgs: u64,
    pub publish_msgs: u64,
    pub publish_mb: f64,
    pub publish_errors: u64,
    pub consume_msgs: u64,
    pub consume_mb: f64,
    pub publish_p50_us: Option<u64>,
    pub publish_p99_us: Option<u64>,
    pub publish_max_us: Option<u64>,
    pub e2e_p50_us: Option<u64>,
    pub e2e_p99_us: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Messages handed to the client per second (by send time): what the scheduler achieved.
    #[serde(default)]
    pub sent_msgs_per_s: f64,
    /// Acknowledged messages per second (by acknowledgement time).
    pub publish_msgs_per_s: f64,
    pub publish_mb_per_s: f64,
    pub consume_msgs_per_s: f64,
    pub consume_mb_per_s: f64,
    pub sent_msgs: u64,
    pub publish_msgs: u64,
    pub publish_errors: u64,
    pub consume_msgs: u64,
    pub undelivered_msgs: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Histograms {
    /// Ack time minus intended send time (coordinated-omission corrected at fixed rate).
    pub publish_latency: HistogramSummary,
    /// Ack time minus actual send time (for comparison with tools that do not correct).
    pub publish_latency_uncorrected: HistogramSummary,
    /// Actual minus intended send time.
    pub publish_delay: HistogramSummary,
    /// Receive time minus the intended send time stamped into the record.
    pub e2e_latency: HistogramSummary,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    pub format: String,
    /// Short name for charts and tables (defaults to the workload name).
    pub label: String,
    pub workload: Workload,
    pub brokers: String,
    /// "fixed" or "max".
    pub rate_mode: String,
    pub coordinated_omission_corrected: bool,
    pub target_msgs_per_s: f64,
    /// Effective librdkafka properties of producers and consumers.
    pub producer_config: Vec<(String, String)>,
    pub consumer_config: Vec<(String, String)>,
    pub started_unix_s: u64,
    pub measured_s: f64,
    pub client: String,
    pub machine: Machine,
    pub throughput: Throughput,
    pub histograms: Histograms,
    pub series: Vec<Interval>,
    pub first_error: Option<String>,
    /// Free-form notes (e.g. the max-rate warning).
    pub notes: Vec<String>,
}

const MB: f64 = 1e6;

pub fn series(stats: &Stats, warmup_s: u64) -> Vec<Interval> {
    stats
        .buckets
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let q = |h: &Option<hdrhistogram::Histogram<u64>>, p: f64| {
                h.as_ref()
                    .filter(|h| !h.is_empty())
                    .map(|h| h.value_at_quantile(p))
            };
            Interval {
                t_s: i as i64 - warmup_s as i64,
                warmup: (i as u64) < warmup_s,
                sent_msgs: b.counts.sent,
                publish_msgs: b.counts.acked,
                publish_mb: b.counts.acked_bytes as f64 / MB,
                publish_errors: b.counts.errors,
                consume_msgs: b.counts.received,
                consume_mb: b.counts.received_bytes as f64 / MB,
                publish_p50_us: q(&b.publish, 0.5),
                publish_p99_us: q(&b.publish, 0.99),
                publish_max_us: b
                    .publish
                    .as_ref()
                    .filter(|h| !h.is_empty())
                    .map(|h| h.max()),
                e2e_p50_us: q(&b.e2e, 0.5),
                e2e_p99_us: q(&b.e2e, 0.99),
            }
        })
        .collect()
}

pub fn throughput(stats: &Stats, undelivered: u64) -> Throughput {
    let secs = (stats.measure_end_ns - stats.measure_start_ns) as f64 / 1e9;
    assert!(secs > 0.0);
    Throughput {
        sent_msgs_per_s: stats.counts.sent as f64 / secs,
        publish_msgs_per_s: stats.counts.acked as f64 / secs,
        publish_mb_per_s: stats.counts.acked_bytes as f64 / MB / secs,
        consume_msgs_per_s: stats.counts.received as f64 / secs,
        consume_mb_per_s: stats.counts.received_bytes as f64 / MB / secs,
        sent_msgs: stats.counts.sent,
        publish_msgs: stats.counts.acked,
        publish_errors: stats.counts.errors,
        consume_msgs: stats.counts.received,
        undelivered_msgs: undelivered,
    }
}

pub fn histograms(stats: &Stats) -> Histograms {
    Histograms {
        publish_latency: HistogramSummary::from_histogram(&stats.publish_latency),
        publish_latency_uncorrected: HistogramSummary::from_histogram(
            &stats.publish_latency_uncorrected,
        ),
        publish_delay: HistogramSummary::from_histogram(&stats.publish_delay),
        e2e_latency: HistogramSummary::from_histogram(&stats.e2e_latency),
    }
}

impl BenchResult {
    pub fn load(path: &std::path::Path) -> Result<BenchResult, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let r: BenchResult = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a shoal-bench result: {e}", path.display()))?;
        if r.format != RESULT_FORMAT {
            return Err(format!(
                "{}: format {:?}, expected {RESULT_FORMAT:?}",
                path.display(),
                r.format
            ));
        }
        Ok(r)
    }

    pub fn is_max_rate(&self) -> bool {
        self.rate_mode == "max"
    }

    /// Sent rate over the fixed target (None at max rate).
    pub fn rate_accuracy(&self) -> Option<f64> {
        (!self.is_max_rate() && self.target_msgs_per_s > 0.0)
            .then(|| self.throughput.sent_msgs_per_s / self.target_msgs_per_s)
    }

    /// Acknowledged rate over the fixed target (None at max rate).
    pub fn ack_rate_ratio(&self) -> Option<f64> {
        (!self.is_max_rate() && self.target_msgs_per_s > 0.0)
            .then(|| self.throughput.publish_msgs_per_s / self.target_msgs_per_s)
    }
}
