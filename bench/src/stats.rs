//! Latency histograms and per-second buckets, merged across producer/consumer threads.

use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Longest latency a histogram can hold; longer samples saturate here (and count as such).
pub const LATENCY_US_MAX: u64 = 3_600_000_000;
/// Seconds of per-second buckets kept per thread.
pub const BUCKETS_MAX: usize = 24 * 3600 + 600;
/// Percentiles reported everywhere.
pub const PERCENTILES: [f64; 6] = [50.0, 75.0, 95.0, 99.0, 99.9, 99.99];

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("static histogram bounds are valid")
}

fn record(h: &mut Histogram<u64>, us: u64) {
    h.saturating_record(us.clamp(1, LATENCY_US_MAX));
}

/// Counters and latency samples for one second of the run (by event time).
#[derive(Clone, Debug, Default)]
pub struct Bucket {
    pub counts: Counts,
    pub publish: Option<Histogram<u64>>,
    pub e2e: Option<Histogram<u64>>,
}

/// Event totals: of one bucket, or of the whole measurement window.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    pub sent: u64,
    pub acked: u64,
    pub acked_bytes: u64,
    pub errors: u64,
    pub received: u64,
    pub received_bytes: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.sent += other.sent;
        self.acked += other.acked;
        self.acked_bytes += other.acked_bytes;
        self.errors += other.errors;
        self.received += other.received;
        self.received_bytes += other.received_bytes;
    }
}

impl Bucket {
    fn merge(&mut self, other: &Bucket) {
        self.counts.add(&other.counts);
        merge_opt(&mut self.publish, &other.publish);
        merge_opt(&mut self.e2e, &other.e2e);
    }
}

fn merge_opt(into: &mut Option<Histogram<u64>>, from: &Option<Histogram<u64>>) {
    if let Some(f) = from {
        into.get_or_insert_with(new_histogram)
            .add(f)
            .expect("histograms share bounds");
    }
}

/// What one thread (or the merge of all threads) observed. Times are ns since run start.
#[derive(Clone, Debug)]
pub struct Stats {
    /// Samples whose intended send time is in [measure_start_ns, measure_end_ns) enter the histograms.
    pub measure_start_ns: u64,
    pub measure_end_ns: u64,
    /// Acknowledgement time minus intended send time (coordinated-omission corrected).
    pub publish_latency: Histogram<u64>,
    /// Acknowledgement time minus actual send time (what a naive tool reports).
    pub publish_latency_uncorrected: Histogram<u64>,
    /// Actual send time minus intended send time.
    pub publish_delay: Histogram<u64>,
    /// Receive time minus the intended send time stamped into the record.
    pub e2e_latency: Histogram<u64>,
    /// Totals of events whose own time falls in the measurement window.
    pub counts: Counts,
    pub first_error: Option<String>,
    pub buckets: Vec<Bucket>,
}

impl Stats {
    pub fn new(measure_start_ns: u64, measure_end_ns: u64) -> Stats {
        assert!(measure_start_ns <= measure_end_ns);
        Stats {
            measure_start_ns,
            measure_end_ns,
            publish_latency: new_histogram(),
            publish_latency_uncorrected: new_histogram(),
            publish_delay: new_histogram(),
            e2e_latency: new_histogram(),
            counts: Counts::default(),
            first_error: None,
            buckets: Vec::new(),
        }
    }

    fn in_window(&self, t_ns: u64) -> bool {
        t_ns >= self.measure_start_ns && t_ns < self.measure_end_ns
    }

    fn bucket(&mut self, t_ns: u64) -> &mut Bucket {
        let i = ((t_ns / 1_000_000_000) as usize).min(BUCKETS_MAX - 1);
        if self.buckets.len() <= i {
            self.buckets.resize_with(i + 1, Bucket::default);
        }
        &mut self.buckets[i]
    }

    pub fn on_send(&mut self, intended_ns: u64, sent_ns: u64) {
        assert!(
            sent_ns >= intended_ns,
            "a message cannot be sent before it is due"
        );
        if self.in_window(intended_ns) {
            record(&mut self.publish_delay, (sent_ns - intended_ns) / 1000);
        }
        if self.in_window(sent_ns) {
            self.counts.sent += 1;
        }
        self.bucket(sent_ns).counts.sent += 1;
    }

    pub fn on_ack(&mut self, intended_ns: u64, sent_ns: u64, acked_ns: u64, bytes: u64) {
        let acked_ns = acked_ns.max(sent_ns);
        if self.in_window(intended_ns) {
            record(&mut self.publish_latency, (acked_ns - intended_ns) / 1000);
            record(
                &mut self.publish_latency_uncorrected,
                (acked_ns - sent_ns) / 1000,
            );
        }
        if self.in_window(acked_ns) {
            self.counts.acked += 1;
            self.counts.acked_bytes += bytes;
        }
        let b = self.bucket(acked_ns);
        b.counts.acked += 1;
        b.counts.acked_bytes += bytes;
        record(
            b.publish.get_or_insert_with(new_histogram),
            (acked_ns - intended_ns) / 1000,
        );
    }

    pub fn on_error(&mut self, at_ns: u64, error: &str) {
        if self.first_error.is_none() {
            self.first_error = Some(error.to_string());
        }
        if self.in_window(at_ns) {
            self.counts.errors += 1;
        }
        self.bucket(at_ns).counts.errors += 1;
    }

    /// `intended_ns` is the producer's intended send time carried in the record; it may be
    /// later than `received_ns` by clock jitter across threads, which then counts as 0.
    pub fn on_receive(&mut self, intended_ns: Option<u64>, received_ns: u64, bytes: u64) {
        if self.in_window(received_ns) {
            self.counts.received += 1;
            self.counts.received_bytes += bytes;
        }
        let e2e_us = intended_ns.map(|i| received_ns.saturating_sub(i) / 1000);
        if let (Some(i), Some(us)) = (intended_ns, e2e_us) {
            if self.in_window(i) {
                record(&mut self.e2e_latency, us);
            }
        }
        let b = self.bucket(received_ns);
        b.counts.received += 1;
        b.counts.received_bytes += bytes;
        if let Some(us) = e2e_us {
            record(b.e2e.get_or_insert_with(new_histogram), us);
        }
    }

    pub fn merge(&mut self, other: &Stats) {
        assert_eq!(self.measure_start_ns, other.measure_start_ns);
        assert_eq!(self.measure_end_ns, other.measure_end_ns);
        for (a, b) in [
            (&mut self.publish_latency, &other.publish_latency),
            (
                &mut self.publish_latency_uncorrected,
                &other.publish_latency_uncorrected,
            ),
            (&mut self.publish_delay, &other.publish_delay),
            (&mut self.e2e_latency, &other.e2e_latency),
        ] {
            a.add(b).expect("histograms share bounds");
        }
        self.counts.add(&other.counts);
        if self.first_error.is_none() {
            self.first_error = other.first_error.clone();
        }
        if self.buckets.len() < other.buckets.len() {
            self.buckets
                .resize_with(other.buckets.len(), Bucket::default);
        }
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            a.merge(b);
        }
    }
}

/// A histogram as it appears in the JSON result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistogramSummary {
    pub unit: String,
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub max: u64,
    /// `[percentile, value]` pairs for [`PERCENTILES`].
    pub percentiles: Vec<(f64, u64)>,
    /// HdrHistogram V2 serialization, base64 (decode with any HdrHistogram library).
    pub hdr_v2_base64: String,
}

impl HistogramSummary {
    pub fn from_histogram(h: &Histogram<u64>) -> HistogramSummary {
        let mut bytes = Vec::new();
        V2Serializer::new()
            .serialize(h, &mut bytes)
            .expect("serializing to a Vec cannot fail");
        HistogramSummary {
            unit: "us".into(),
            count: h.len(),
            min: if h.is_empty() { 0 } else { h.min() },
            mean: if h.is_empty() { 0.0 } else { h.mean() },
            max: if h.is_empty() { 0 } else { h.max() },
            percentiles: PERCENTILES
                .iter()
                .map(|&p| {
                    (
                        p,
                        if h.is_empty() {
                            0
                        } else {
                            h.value_at_quantile(p / 100.0)
                        },
                    )
                })
                .collect(),
            hdr_v2_base64: base64::engine::general_purpose::STANDARD.encode(&bytes),
        }
    }

    pub fn decode(&self) -> Result<Histogram<u64>, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.hdr_v2_base64)
            .map_err(|e| format!("histogram base64: {e}"))?;
        Deserializer::new()
            .deserialize(&mut std::io::Cursor::new(bytes))
            .map_err(|e| format!("histogram V2 decode: {e:?}"))
    }

    pub fn percentile(&self, p: f64) -> Option<u64> {
        self.percentiles
            .iter()
            .find(|(q, _)| (*q - p).abs() < 1e-9)
            .map(|(_, v)| *v)
    }
}

/// Points of the classic HDR percentile chart: x = 1/(1-p) (p as a fraction), y = value.
pub fn percentile_curve(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    // Up to 99.999%: ticks per half-distance, like HdrHistogram's percentile output.
    for step in 0..=5 * 20 {
        let nines = step as f64 / 20.0;
        let q = 1.0 - 10f64.powf(-nines);
        out.push((10f64.powf(nines), h.value_at_quantile(q)));
    }
    out.push((crate::plot::CURVE_X_MAX, h.max()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_and_buckets() {
        let mut s = Stats::new(1_000_000_000, 3_000_000_000);
        // Before the window: counted in buckets only.
        s.on_send(500_000_000, 500_000_000);
        s.on_ack(500_000_000, 500_000_000, 600_000_000, 100);
        assert_eq!(s.publish_latency.len(), 0);
        assert_eq!(s.buckets[0].counts.acked, 1);
        // In the window; acked 2 ms after the intended time, sent 1 ms late.
        s.on_send(1_500_000_000, 1_501_000_000);
        s.on_ack(1_500_000_000, 1_501_000_000, 1_502_000_000, 100);
        assert_eq!(s.publish_latency.max(), 2000);
        assert_eq!(s.publish_latency_uncorrected.max(), 1000);
        assert_eq!(s.publish_delay.max(), 1000);
        assert_eq!(
            (s.counts.sent, s.counts.acked, s.counts.acked_bytes),
            (1, 1, 100)
        );
        s.on_receive(Some(1_500_000_000), 1_510_000_000, 100);
        assert!(s.e2e_latency.equivalent(s.e2e_latency.max(), 10_000));
        let mut m = Stats::new(1_000_000_000, 3_000_000_000);
        m.merge(&s);
        m.merge(&s);
        assert_eq!(m.counts.acked, 2);
        assert_eq!(m.buckets[1].counts.acked, 2);
        assert_eq!(m.buckets[1].e2e.as_ref().unwrap().len(), 2);
    }

    #[test]
    fn summary_round_trips_through_base64() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v).unwrap();
        }
        let s = HistogramSummary::from_histogram(&h);
        assert_eq!(s.count, 10_000);
        assert!((s.percentile(99.0).unwrap() as i64 - 9900).abs() <= 10);
        let back = s.decode().unwrap();
        assert_eq!(back.len(), h.len());
        assert_eq!(back.max(), h.max());
        let json = serde_json::to_string(&s).unwrap();
        let again: HistogramSummary = serde_json::from_str(&json).unwrap();
        assert_eq!(again, s);
    }

    #[test]
    fn curve_is_monotone() {
        let mut h = new_histogram();
        for v in 1..=100_000u64 {
            h.record(v).unwrap();
        }
        let c = percentile_curve(&h);
        assert!(c.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(c.last().unwrap().1, h.max());
    }
}
