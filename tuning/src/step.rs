//! One measured step (a fixed-rate run): its figures, and whether it sustained its rate.

use serde::{Deserialize, Serialize};
use shoal_bench::result::BenchResult;

/// What a step must show to count as sustained.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Criteria {
    /// Sent and acknowledged rates may fall short of the target by at most this fraction.
    pub rate_shortfall_max: f64,
    /// The producer backlog (due but unacknowledged) may grow by at most this fraction of
    /// the target rate (msgs/s per s, least-squares slope over the measured seconds).
    pub backlog_growth_max: f64,
    /// Publish p99 at or under this (ms), if a latency goal is given.
    pub p99_ms_max: Option<f64>,
}

impl Default for Criteria {
    fn default() -> Self {
        Criteria {
            rate_shortfall_max: 0.01,
            backlog_growth_max: 0.01,
            p99_ms_max: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepFigures {
    pub target_msgs_per_s: f64,
    pub sent_msgs_per_s: f64,
    pub acked_msgs_per_s: f64,
    pub acked_mb_per_s: f64,
    pub errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// Slope of (due − acknowledged) over the measured seconds, msgs/s per s.
    pub backlog_growth_msgs_per_s2: f64,
}

impl StepFigures {
    /// A modelled endpoint's step: `acked` of `rate` msg/s of `message_size` bytes, with this
    /// p99 (p50, p99.9 and max derived from it); the backlog grows by what is not acked.
    pub fn modelled(rate: f64, acked: f64, message_size: u32, p99_us: u64) -> StepFigures {
        StepFigures {
            target_msgs_per_s: rate,
            sent_msgs_per_s: rate,
            acked_msgs_per_s: acked,
            acked_mb_per_s: acked * message_size as f64 / 1e6,
            errors: 0,
            p50_us: p99_us / 3,
            p99_us,
            p999_us: p99_us * 2,
            max_us: p99_us * 3,
            backlog_growth_msgs_per_s2: rate - acked,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailReason {
    Errors,
    SentShort,
    AckedShort,
    BacklogGrowing,
    P99OverGoal,
}

impl StepFigures {
    pub fn from_result(r: &BenchResult) -> StepFigures {
        let h = &r.histograms.publish_latency;
        let target = r.target_msgs_per_s;
        let acked: Vec<f64> = r
            .series
            .iter()
            .filter(|i| !i.warmup && (i.t_s as f64) < r.measured_s)
            .map(|i| i.publish_msgs as f64)
            .collect();
        StepFigures {
            target_msgs_per_s: target,
            sent_msgs_per_s: r.throughput.sent_msgs_per_s,
            acked_msgs_per_s: r.throughput.publish_msgs_per_s,
            acked_mb_per_s: r.throughput.publish_mb_per_s,
            errors: r.throughput.publish_errors,
            p50_us: h.percentile(50.0).unwrap_or(0),
            p99_us: h.percentile(99.0).unwrap_or(0),
            p999_us: h.percentile(99.9).unwrap_or(0),
            max_us: h.max,
            backlog_growth_msgs_per_s2: backlog_slope(target, &acked),
        }
    }

    pub fn p99_ms(&self) -> f64 {
        self.p99_us as f64 / 1000.0
    }

    /// Empty when the step sustained its target under `c`.
    pub fn failures(&self, c: &Criteria) -> Vec<FailReason> {
        let floor = self.target_msgs_per_s * (1.0 - c.rate_shortfall_max);
        let mut out = Vec::new();
        if self.errors > 0 {
            out.push(FailReason::Errors);
        }
        if self.sent_msgs_per_s < floor {
            out.push(FailReason::SentShort);
        }
        if self.acked_msgs_per_s < floor {
            out.push(FailReason::AckedShort);
        }
        if self.backlog_growth_msgs_per_s2 > self.target_msgs_per_s * c.backlog_growth_max {
            out.push(FailReason::BacklogGrowing);
        }
        if c.p99_ms_max.is_some_and(|g| self.p99_ms() > g) {
            out.push(FailReason::P99OverGoal);
        }
        out
    }

    pub fn passes(&self, c: &Criteria) -> bool {
        self.failures(c).is_empty()
    }
}

/// Least-squares slope of the cumulative backlog, where each second `target` messages fall
/// due and `acked[k]` are acknowledged. A steady backlog (in flight, lingering) has slope 0.
pub fn backlog_slope(target: f64, acked: &[f64]) -> f64 {
    let n = acked.len();
    if n < 2 {
        return 0.0;
    }
    let mut backlog = 0.0;
    let ys: Vec<f64> = acked
        .iter()
        .map(|a| {
            backlog += target - a;
            backlog
        })
        .collect();
    let mean_x = (n as f64 - 1.0) / 2.0;
    let mean_y = ys.iter().sum::<f64>() / n as f64;
    let (mut num, mut den) = (0.0, 0.0);
    for (k, y) in ys.iter().enumerate() {
        let dx = k as f64 - mean_x;
        num += dx * (y - mean_y);
        den += dx * dx;
    }
    num / den
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(target: f64, acked: f64, p99_ms: f64, slope: f64) -> StepFigures {
        StepFigures {
            target_msgs_per_s: target,
            sent_msgs_per_s: target,
            acked_msgs_per_s: acked,
            acked_mb_per_s: acked / 1000.0,
            errors: 0,
            p50_us: 100,
            p99_us: (p99_ms * 1000.0) as u64,
            p999_us: 0,
            max_us: 0,
            backlog_growth_msgs_per_s2: slope,
        }
    }

    #[test]
    fn backlog_slope_sees_growth_not_a_steady_queue() {
        assert_eq!(backlog_slope(1000.0, &[1000.0, 1000.0, 1000.0]), 0.0);
        // One late second then steady: the backlog steps once, the slope is small.
        let s = backlog_slope(1000.0, &[990.0, 1000.0, 1000.0, 1000.0]);
        assert!(s.abs() < 5.0, "{s}");
        // Falling behind by 100 msgs every second.
        let s = backlog_slope(1000.0, &[900.0, 900.0, 900.0]);
        assert!((s - 100.0).abs() < 1e-9, "{s}");
        assert_eq!(backlog_slope(1000.0, &[0.0]), 0.0);
    }

    #[test]
    fn verdict_names_every_failure() {
        let c = Criteria {
            p99_ms_max: Some(10.0),
            ..Criteria::default()
        };
        assert!(figures(1000.0, 995.0, 9.0, 0.0).passes(&c));
        assert_eq!(
            figures(1000.0, 980.0, 12.0, 50.0).failures(&c),
            vec![
                FailReason::AckedShort,
                FailReason::BacklogGrowing,
                FailReason::P99OverGoal
            ]
        );
        assert!(figures(1000.0, 1000.0, 12.0, 0.0).passes(&Criteria::default()));
    }
}
