//! linger.ms x batch.size (x acks, compression, partitions, rate) sweeps, the
//! throughput / p99 frontier, and a recommendation for a stated goal.

use serde::{Deserialize, Serialize};
use shoal_bench::result::BenchResult;
use shoal_bench::workload::{format_number, ProducerSettings, Workload};
use std::fmt::Write;

pub use crate::knobs::{parse_size, short_bytes};

pub const SWEEP_POINTS_MAX: usize = 400;
pub const SWEEP_FORMAT: &str = "shoal-tune/1";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    pub linger_ms: Vec<f64>,
    pub batch_size: Vec<u64>,
    pub acks: Vec<String>,
    pub compression: Vec<String>,
    pub partitions: Vec<u32>,
    /// Target rates (msgs/s, 0 = max rate).
    pub rates: Vec<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PointSettings {
    pub linger_ms: f64,
    pub batch_size: u64,
    pub acks: String,
    pub compression: String,
    pub partitions: u32,
    pub rate: f64,
}

impl Grid {
    /// Every combination, batch size fastest-varying; errors past [`SWEEP_POINTS_MAX`].
    pub fn points(&self) -> Result<Vec<PointSettings>, String> {
        let dims = [
            ("linger", self.linger_ms.len()),
            ("batch", self.batch_size.len()),
            ("acks", self.acks.len()),
            ("compression", self.compression.len()),
            ("partitions", self.partitions.len()),
            ("rates", self.rates.len()),
        ];
        for (name, n) in dims {
            if n == 0 {
                return Err(format!("sweep dimension {name} is empty"));
            }
        }
        let total: usize = dims.iter().map(|d| d.1).product();
        if total > SWEEP_POINTS_MAX {
            return Err(format!(
                "{total} sweep points is more than {SWEEP_POINTS_MAX}"
            ));
        }
        let mut out = Vec::with_capacity(total);
        for &rate in &self.rates {
            for &partitions in &self.partitions {
                for acks in &self.acks {
                    for compression in &self.compression {
                        for &linger_ms in &self.linger_ms {
                            for &batch_size in &self.batch_size {
                                out.push(PointSettings {
                                    linger_ms,
                                    batch_size,
                                    acks: acks.clone(),
                                    compression: compression.clone(),
                                    partitions,
                                    rate,
                                });
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Label naming only the dimensions that vary.
    pub fn label(&self, p: &PointSettings) -> String {
        let mut parts = vec![
            format!("l={}", format_number(p.linger_ms)),
            format!("b={}", short_bytes(p.batch_size)),
        ];
        if self.acks.len() > 1 {
            parts.push(format!("acks={}", p.acks));
        }
        if self.compression.len() > 1 {
            parts.push(p.compression.clone());
        }
        if self.partitions.len() > 1 {
            parts.push(format!("p={}", p.partitions));
        }
        if self.rates.len() > 1 {
            parts.push(if p.rate == 0.0 {
                "@max".to_string()
            } else {
                format!("@{}/s", shoal_bench::plot::format_count(p.rate))
            });
        }
        parts.join(" ")
    }
}

/// The workload of one sweep point.
pub fn apply(base: &Workload, p: &PointSettings) -> Result<Workload, String> {
    let mut w = base.clone();
    w.producer.linger_ms = p.linger_ms;
    w.producer.batch_size = p.batch_size;
    w.producer.acks = p.acks.clone();
    w.producer.compression = p.compression.clone();
    w.partitions_per_topic = p.partitions;
    w.producer_rate = p.rate;
    w.validate()?;
    Ok(w)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    pub label: String,
    pub settings: PointSettings,
    pub producer: ProducerSettings,
    /// result.json of this point, relative to the sweep folder.
    pub result: String,
    pub max_rate: bool,
    pub publish_msgs_per_s: f64,
    pub publish_mb_per_s: f64,
    pub rate_accuracy: Option<f64>,
    /// Acknowledged / target (fixed rate only).
    #[serde(default)]
    pub ack_ratio: Option<f64>,
    pub errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl SweepPoint {
    pub fn from_result(
        label: String,
        settings: PointSettings,
        result_rel: String,
        r: &BenchResult,
    ) -> SweepPoint {
        let h = &r.histograms.publish_latency;
        SweepPoint {
            label,
            settings,
            producer: r.workload.producer.clone(),
            result: result_rel,
            max_rate: r.is_max_rate(),
            publish_msgs_per_s: r.throughput.publish_msgs_per_s,
            publish_mb_per_s: r.throughput.publish_mb_per_s,
            rate_accuracy: r.rate_accuracy(),
            ack_ratio: r.ack_rate_ratio(),
            errors: r.throughput.publish_errors,
            p50_us: h.percentile(50.0).unwrap_or(0),
            p99_us: h.percentile(99.0).unwrap_or(0),
            p999_us: h.percentile(99.9).unwrap_or(0),
            max_us: h.max,
        }
    }

    /// Usable for a recommendation: no errors, and a fixed rate was actually kept.
    pub fn eligible(&self) -> bool {
        self.errors == 0
            && self.publish_msgs_per_s > 0.0
            && self.rate_accuracy.is_none_or(|a| a >= 0.98)
            && self.ack_ratio.is_none_or(|a| a >= 0.95)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    pub format: String,
    pub workload: Workload,
    pub brokers: String,
    pub grid: Grid,
    pub points: Vec<SweepPoint>,
}

/// Indexes of the points no other point beats on both throughput and p99, by throughput.
pub fn frontier(points: &[SweepPoint]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..points.len())
        .filter(|&i| points[i].eligible())
        .collect();
    idx.retain(|&i| {
        let a = &points[i];
        // Throughputs within THROUGHPUT_TIE count as equal (at a fixed rate they differ by noise).
        !points.iter().enumerate().any(|(j, b)| {
            let as_fast = b.publish_mb_per_s >= a.publish_mb_per_s * (1.0 - THROUGHPUT_TIE);
            let faster = b.publish_mb_per_s > a.publish_mb_per_s * (1.0 + THROUGHPUT_TIE);
            j != i
                && b.eligible()
                && as_fast
                && b.p99_us <= a.p99_us
                && (b.p99_us < a.p99_us || faster)
        })
    });
    idx.sort_by(|&a, &b| {
        points[a]
            .publish_mb_per_s
            .total_cmp(&points[b].publish_mb_per_s)
    });
    idx
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Goal {
    /// Most throughput with p99 publish latency at most this many ms.
    MaxThroughput { p99_ms_max: f64 },
    /// Lowest p99 with at least this many MB/s.
    MinP99 { mb_per_s_min: f64 },
}

impl Goal {
    pub fn describe(&self) -> String {
        match self {
            Goal::MaxThroughput { p99_ms_max } => {
                format!(
                    "most throughput with publish p99 <= {} ms",
                    format_number(*p99_ms_max)
                )
            }
            Goal::MinP99 { mb_per_s_min } => {
                format!(
                    "lowest publish p99 at >= {} MB/s",
                    format_number(*mb_per_s_min)
                )
            }
        }
    }
}

/// Points within this fraction of the best throughput count as equally fast.
pub const THROUGHPUT_TIE: f64 = 0.01;

pub fn recommend(points: &[SweepPoint], goal: Goal) -> Result<usize, String> {
    let eligible: Vec<usize> = (0..points.len())
        .filter(|&i| points[i].eligible())
        .collect();
    if eligible.is_empty() {
        return Err("no sweep point ran without errors at its target rate".into());
    }
    let pick_lowest_p99 = |cands: &[usize]| -> usize {
        *cands
            .iter()
            .min_by(|&&a, &&b| {
                points[a].p99_us.cmp(&points[b].p99_us).then(
                    points[b]
                        .publish_mb_per_s
                        .total_cmp(&points[a].publish_mb_per_s),
                )
            })
            .expect("non-empty")
    };
    match goal {
        Goal::MaxThroughput { p99_ms_max } => {
            let ok: Vec<usize> = eligible
                .iter()
                .copied()
                .filter(|&i| points[i].p99_us as f64 <= p99_ms_max * 1000.0)
                .collect();
            if ok.is_empty() {
                let best = pick_lowest_p99(&eligible);
                return Err(format!(
                    "no point meets p99 <= {} ms; the lowest p99 was {:.2} ms ({})",
                    format_number(p99_ms_max),
                    points[best].p99_us as f64 / 1000.0,
                    points[best].label
                ));
            }
            let top = ok
                .iter()
                .map(|&i| points[i].publish_mb_per_s)
                .fold(0.0f64, f64::max);
            let tied: Vec<usize> = ok
                .into_iter()
                .filter(|&i| points[i].publish_mb_per_s >= top * (1.0 - THROUGHPUT_TIE))
                .collect();
            Ok(pick_lowest_p99(&tied))
        }
        Goal::MinP99 { mb_per_s_min } => {
            let ok: Vec<usize> = eligible
                .iter()
                .copied()
                .filter(|&i| points[i].publish_mb_per_s >= mb_per_s_min)
                .collect();
            if ok.is_empty() {
                let best = eligible
                    .iter()
                    .copied()
                    .max_by(|&a, &b| {
                        points[a]
                            .publish_mb_per_s
                            .total_cmp(&points[b].publish_mb_per_s)
                    })
                    .expect("non-empty");
                return Err(format!(
                    "no point reaches {} MB/s; the most was {:.2} MB/s ({})",
                    format_number(mb_per_s_min),
                    points[best].publish_mb_per_s,
                    points[best].label
                ));
            }
            Ok(pick_lowest_p99(&ok))
        }
    }
}

/// The recommendation as text: figures plus the client properties.
pub fn recommendation_text(sweep: &Sweep, goal: Goal, pick: usize) -> String {
    let p = &sweep.points[pick];
    let mut s = String::new();
    let _ = writeln!(s, "Goal: {}", goal.describe());
    let _ = writeln!(
        s,
        "Recommended: {}  ->  {:.0} msg/s, {:.2} MB/s, publish p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms{}",
        p.label,
        p.publish_msgs_per_s,
        p.publish_mb_per_s,
        p.p50_us as f64 / 1000.0,
        p.p99_us as f64 / 1000.0,
        p.p999_us as f64 / 1000.0,
        if p.max_rate { " (max-rate run)" } else { "" }
    );
    if sweep.workload.partitions_per_topic != p.settings.partitions {
        let _ = writeln!(s, "Topic: {} partitions", p.settings.partitions);
    }
    let _ = write!(s, "\n{}", p.producer.properties_text());
    s
}

pub fn table(sweep: &Sweep, frontier: &[usize], pick: Option<usize>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| settings | target msg/s | msg/s | MB/s | p50 ms | p99 ms | p99.9 ms | max ms | errors | frontier |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
    for (i, p) in sweep.points.iter().enumerate() {
        let _ = writeln!(
            s,
            "| {}{} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {} |",
            p.label,
            if Some(i) == pick {
                " **(recommended)**"
            } else {
                ""
            },
            if p.max_rate {
                "max".to_string()
            } else {
                format_number(p.settings.rate)
            },
            p.publish_msgs_per_s,
            p.publish_mb_per_s,
            p.p50_us as f64 / 1000.0,
            p.p99_us as f64 / 1000.0,
            p.p999_us as f64 / 1000.0,
            p.max_us as f64 / 1000.0,
            p.errors,
            if frontier.contains(&i) { "yes" } else { "" }
        );
    }
    s
}

pub fn parse_list<T: std::str::FromStr>(what: &str, s: &str) -> Result<Vec<T>, String> {
    s.split(',')
        .map(|x| x.trim())
        .filter(|x| !x.is_empty())
        .map(|x| {
            parse_size(x)
                .and_then(|v| v.to_string().parse::<T>().ok())
                .or_else(|| x.parse::<T>().ok())
                .ok_or_else(|| format!("{what}: cannot parse {x:?}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(label: &str, mb: f64, p99_ms: f64, errors: u64, acc: Option<f64>) -> SweepPoint {
        SweepPoint {
            label: label.into(),
            settings: PointSettings {
                linger_ms: 1.0,
                batch_size: 16384,
                acks: "all".into(),
                compression: "none".into(),
                partitions: 16,
                rate: 1000.0,
            },
            producer: ProducerSettings::default(),
            result: String::new(),
            max_rate: false,
            publish_msgs_per_s: mb * 1000.0,
            publish_mb_per_s: mb,
            rate_accuracy: acc,
            ack_ratio: acc,
            errors,
            p50_us: 100,
            p99_us: (p99_ms * 1000.0) as u64,
            p999_us: 0,
            max_us: 0,
        }
    }

    #[test]
    fn grid_enumerates_and_labels() {
        let g = Grid {
            linger_ms: vec![0.0, 1.0, 5.0, 20.0],
            batch_size: vec![16384, 131072, 1 << 20],
            acks: vec!["all".into()],
            compression: vec!["none".into()],
            partitions: vec![16],
            rates: vec![1000.0, 0.0],
        };
        let pts = g.points().unwrap();
        assert_eq!(pts.len(), 24);
        assert_eq!(g.label(&pts[1]), "l=0 b=128k @1k/s");
        assert_eq!(g.label(&pts[23]), "l=20 b=1M @max");
        let mut empty = g.clone();
        empty.acks.clear();
        assert!(empty.points().unwrap_err().contains("acks"));
    }

    #[test]
    fn frontier_keeps_undominated_points() {
        let pts = vec![
            pt("a", 10.0, 5.0, 0, None),
            pt("b", 20.0, 8.0, 0, None),
            pt("c", 15.0, 9.0, 0, None), // dominated by b
            pt("d", 30.0, 50.0, 0, None),
            pt("e", 40.0, 1.0, 3, None), // errors: not eligible
        ];
        assert_eq!(frontier(&pts), vec![0, 1, 3]);
    }

    #[test]
    fn throughput_noise_does_not_make_a_frontier_point() {
        let pts = vec![
            pt("steady", 40.96, 11.0, 0, Some(1.0)),
            pt("noisy", 41.0, 30.0, 0, Some(1.0)), // 0.1% faster, 3x the p99
        ];
        assert_eq!(frontier(&pts), vec![0]);
    }

    #[test]
    fn recommendations_follow_the_goal() {
        let pts = vec![
            pt("a", 10.0, 2.0, 0, Some(1.0)),
            pt("b", 20.0, 4.0, 0, Some(1.0)),
            pt("b2", 20.1, 3.0, 0, Some(1.0)), // tie on throughput, lower p99
            pt("c", 30.0, 9.0, 0, Some(0.9)),  // missed its rate
            pt("d", 25.0, 7.0, 0, Some(1.0)),
        ];
        assert_eq!(
            recommend(&pts, Goal::MaxThroughput { p99_ms_max: 5.0 }),
            Ok(2)
        );
        assert_eq!(
            recommend(&pts, Goal::MaxThroughput { p99_ms_max: 10.0 }),
            Ok(4)
        );
        assert_eq!(recommend(&pts, Goal::MinP99 { mb_per_s_min: 15.0 }), Ok(2));
        let e = recommend(&pts, Goal::MaxThroughput { p99_ms_max: 1.0 }).unwrap_err();
        assert!(e.contains("lowest p99 was 2.00 ms (a)"), "{e}");
        let e = recommend(
            &pts,
            Goal::MinP99 {
                mb_per_s_min: 100.0,
            },
        )
        .unwrap_err();
        assert!(e.contains("25.00 MB/s (d)"), "{e}");
    }

    #[test]
    fn lists_and_sizes_parse() {
        assert_eq!(
            parse_list::<u64>("batch", "16k, 128k,1M,100").unwrap(),
            vec![16384, 131072, 1 << 20, 100]
        );
        assert_eq!(
            parse_list::<f64>("linger", "0,0.5,5").unwrap(),
            vec![0.0, 0.5, 5.0]
        );
        assert!(parse_list::<u64>("batch", "x").is_err());
    }
}
