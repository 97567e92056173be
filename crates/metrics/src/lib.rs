//! Latency histograms for one shard (plain cells: a shard never shares them), the snapshots
//! that cross shards to be merged, and the Prometheus text exposition format.
//!
//! Architecture invariant: no clock of its own, no I/O, no locks: callers pass durations in.

use std::cell::Cell;
use std::fmt::Write;
use std::time::Instant;

/// Upper bounds of the buckets, microseconds (Prometheus `le`, cumulative); one more bucket
/// holds everything above the last.
/// Fine between 0.5 and 50 ms, where a durable append's tail lives.
pub const BUCKETS_US: [u64; 27] = [
    25, 50, 100, 250, 500, 750, 1_000, 1_500, 2_000, 2_500, 3_000, 4_000, 5_000, 7_500, 10_000,
    15_000, 20_000, 25_000, 35_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];

#[derive(Debug, Default)]
pub struct Histogram {
    counts: [Cell<u64>; BUCKETS_US.len() + 1],
    sum_us: Cell<u64>,
}

impl Histogram {
    pub fn record_us(&self, us: u64) {
        let i = BUCKETS_US.partition_point(|&b| b < us);
        self.counts[i].set(self.counts[i].get() + 1);
        self.sum_us.set(self.sum_us.get().saturating_add(us));
    }

    pub fn record_since(&self, start: Instant) {
        self.record_us(start.elapsed().as_micros() as u64);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: self.counts.iter().map(Cell::get).collect(),
            sum_us: self.sum_us.get(),
        }
    }
}

/// A histogram's counts at one moment; `Send`, so shards can hand it to the scraper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Per bucket (not cumulative), `BUCKETS_US.len() + 1` of them.
    pub counts: Vec<u64>,
    pub sum_us: u64,
}

impl Default for HistogramSnapshot {
    fn default() -> Self {
        HistogramSnapshot {
            counts: vec![0; BUCKETS_US.len() + 1],
            sum_us: 0,
        }
    }
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn merge(&mut self, other: &HistogramSnapshot) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum_us += other.sum_us;
    }
}

/// Appends one histogram in the Prometheus text format, in seconds.
pub fn render_histogram(out: &mut String, name: &str, help: &str, h: &HistogramSnapshot) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    let mut cumulative = 0;
    for (i, count) in h.counts.iter().enumerate() {
        cumulative += count;
        match BUCKETS_US.get(i) {
            Some(&us) => {
                let le = us as f64 / 1e6;
                let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
            }
            None => {
                let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
            }
        }
    }
    let _ = writeln!(out, "{name}_sum {}", h.sum_us as f64 / 1e6);
    let _ = writeln!(out, "{name}_count {cumulative}");
}

/// Appends one counter in the Prometheus text format.
pub fn render_counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_bounds_inclusive() {
        let h = Histogram::default();
        for us in [10, 25, 26, 1_000, 20_000_000] {
            h.record_us(us);
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 5);
        assert_eq!(s.counts[0], 2, "10 and 25 are <= 25 us");
        assert_eq!(s.counts[1], 1, "26 us is in (25, 50]");
        assert_eq!(s.counts[BUCKETS_US.len()], 1, "above the last bound");
        let mut merged = HistogramSnapshot::default();
        merged.merge(&s);
        merged.merge(&s);
        assert_eq!(merged.count(), 10);
        let mut text = String::new();
        render_histogram(&mut text, "x_seconds", "test", &merged);
        assert!(
            text.contains("x_seconds_bucket{le=\"0.000025\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("x_seconds_bucket{le=\"0.001\"} 8\n"),
            "{text}"
        );
        assert!(
            text.contains("x_seconds_bucket{le=\"+Inf\"} 10\n"),
            "{text}"
        );
        assert!(text.contains("x_seconds_count 10\n"), "{text}");
    }
}
