//! From runs to figures with their spread, a sustained-rate interval per setting, the
//! frontier, and a recommendation that says when settings are within noise of each other.

use crate::driver::{Phase, Run, SweepV2};
use crate::knobs::Knob;
use crate::step::Criteria;
use serde::{Deserialize, Serialize};

/// Median and range of one figure over repetitions.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }

    /// (max − min) / median, as a percentage.
    pub fn range_pct(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            100.0 * (self.max - self.min) / self.median
        }
    }
}

/// One curve point (target, setting, fraction) over its repetitions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PointSummary {
    pub target: usize,
    pub setting: usize,
    pub fraction: f64,
    pub rate_msgs_per_s: f64,
    pub acked_msgs_per_s: Spread,
    pub acked_mb_per_s: Spread,
    pub p50_ms: Spread,
    pub p99_ms: Spread,
    pub p999_ms: Spread,
    pub load_avg_1m: Spread,
    pub steal_pct: Spread,
    /// Repetitions that sustained the rate (criteria of the sweep, latency goal included).
    pub passes: usize,
    /// Repetitions that kept up with the rate, whatever their latency.
    #[serde(default)]
    pub passes_rate_only: usize,
    pub reps: usize,
}

impl PointSummary {
    /// Held by a majority of its repetitions (with or without the latency goal).
    pub fn holds(&self, with_goal: bool) -> bool {
        let n = if with_goal {
            self.passes
        } else {
            self.passes_rate_only
        };
        n * 2 > self.reps
    }
}

/// What a setting sustained: at least `sustained`, and seen failing at `failed` (if ever).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SettingSummary {
    pub target: usize,
    pub setting: usize,
    pub label: String,
    /// Rate the search ended on (single runs).
    pub search_pass_msgs_per_s: Option<f64>,
    pub search_fail_msgs_per_s: Option<f64>,
    pub search_steps: usize,
    pub search_spent_s: f64,
    /// Highest curve rate held by a majority of repetitions, with every lower point held too.
    pub sustained_msgs_per_s: Option<f64>,
    pub sustained_mb_per_s: Option<f64>,
    /// Lowest rate above `sustained` that failed (a curve point or the search); None = never seen.
    pub failed_msgs_per_s: Option<f64>,
    /// p99 at the sustained rate (over its repetitions).
    pub p99_ms_at_sustained: Option<Spread>,
}

fn spread_of(runs: &[&Run], f: impl Fn(&Run) -> f64) -> Spread {
    Spread::of(runs.iter().map(|r| f(r))).unwrap_or(Spread {
        median: f64::NAN,
        min: f64::NAN,
        max: f64::NAN,
        n: 0,
    })
}

pub fn point_summaries(s: &SweepV2) -> Vec<PointSummary> {
    let rate_only = Criteria {
        p99_ms_max: None,
        ..s.plan.criteria
    };
    let mut out: Vec<PointSummary> = Vec::new();
    let curve: Vec<&Run> = s.runs.iter().filter(|r| r.phase == Phase::Curve).collect();
    let mut keys: Vec<(usize, usize, u64)> = curve
        .iter()
        .filter_map(|r| Some((r.target, r.setting?, r.fraction?.to_bits())))
        .collect();
    keys.sort();
    keys.dedup();
    for (t, st, fb) in keys {
        let runs: Vec<&Run> = curve
            .iter()
            .copied()
            .filter(|r| {
                r.target == t && r.setting == Some(st) && r.fraction.map(f64::to_bits) == Some(fb)
            })
            .collect();
        out.push(PointSummary {
            target: t,
            setting: st,
            fraction: f64::from_bits(fb),
            rate_msgs_per_s: runs[0].rate_msgs_per_s,
            acked_msgs_per_s: spread_of(&runs, |r| r.figures.acked_msgs_per_s),
            acked_mb_per_s: spread_of(&runs, |r| r.figures.acked_mb_per_s),
            p50_ms: spread_of(&runs, |r| r.figures.p50_us as f64 / 1000.0),
            p99_ms: spread_of(&runs, |r| r.figures.p99_ms()),
            p999_ms: spread_of(&runs, |r| r.figures.p999_us as f64 / 1000.0),
            load_avg_1m: spread_of(&runs, |r| r.noise.load_avg_1m_after),
            steal_pct: spread_of(&runs, |r| r.noise.steal_pct),
            passes: runs.iter().filter(|r| r.failures.is_empty()).count(),
            passes_rate_only: runs.iter().filter(|r| r.figures.passes(&rate_only)).count(),
            reps: runs.len(),
        });
    }
    out
}

/// One summary per search (target, setting); `with_goal` = the latency goal counts.
pub fn setting_summaries(
    s: &SweepV2,
    points: &[PointSummary],
    with_goal: bool,
) -> Vec<SettingSummary> {
    let msg_mb = |setting: usize, rate: f64| {
        let size = s.plan.settings[setting]
            .get(Knob::MessageSize)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(s.plan.workload.message_size as f64);
        rate * size / 1e6
    };
    s.searches
        .iter()
        .map(|rec| {
            let mut pts: Vec<&PointSummary> = points
                .iter()
                .filter(|p| p.target == rec.target && p.setting == rec.setting)
                .collect();
            pts.sort_by(|a, b| a.rate_msgs_per_s.total_cmp(&b.rate_msgs_per_s));
            let held = pts
                .iter()
                .take_while(|p| p.holds(with_goal))
                .last()
                .copied();
            let sustained = held.map(|p| p.rate_msgs_per_s);
            let above = |r: f64| sustained.is_none_or(|s| r > s);
            let failed = pts
                .iter()
                .filter(|p| !p.holds(with_goal))
                .map(|p| p.rate_msgs_per_s)
                .chain(rec.search.fail_msgs_per_s.filter(|_| with_goal))
                .filter(|&r| above(r))
                .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.min(r))));
            SettingSummary {
                target: rec.target,
                setting: rec.setting,
                label: s.plan.settings[rec.setting].label.clone(),
                search_pass_msgs_per_s: rec.search.pass_msgs_per_s,
                search_fail_msgs_per_s: rec.search.fail_msgs_per_s,
                search_steps: rec.search.steps.len(),
                search_spent_s: rec.search.spent_s,
                sustained_msgs_per_s: sustained,
                sustained_mb_per_s: sustained.map(|r| msg_mb(rec.setting, r)),
                failed_msgs_per_s: failed,
                p99_ms_at_sustained: held.map(|p| p.p99_ms),
            }
        })
        .collect()
}

/// The tie-break among settings within noise of the best, as stated in every report.
pub const TIE_BREAK: &str =
    "lowest linger.ms, then smallest batch.size, then the higher sustained rate";
/// The tie-break when no setting met the latency goal: get as close to it as possible.
pub const TIE_BREAK_GOAL_MISSED: &str =
    "lowest median p99 at the sustained rate, then lowest linger.ms, then smallest batch.size";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub target: usize,
    /// Index into the setting summaries of this target's pick.
    pub pick: Option<usize>,
    /// Setting summaries (indexes) within noise of the best, best first.
    pub within_noise: Vec<usize>,
    /// The best is better than every other setting beyond the spread.
    pub clear: bool,
    /// Some setting met the latency goal; if not, the pick is by throughput alone.
    #[serde(default = "yes")]
    pub goal_met: bool,
    #[serde(default)]
    pub tie_break: String,
    pub explanation: String,
}

fn knob_f64(s: &SweepV2, setting: usize, k: Knob) -> f64 {
    s.plan.settings[setting]
        .get(k)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Best = highest sustained rate (MB/s). Another setting is within noise of it when the rate
/// it was seen failing at (None: never) is above the best's sustained rate: its capacity
/// lies in [sustained, failed), and that interval reaches past the best's rate. A setting
/// seen failing exactly where the best held is worse, not tied.
fn yes() -> bool {
    true
}

pub fn recommend(s: &SweepV2, summaries: &[SettingSummary], target: usize) -> Recommendation {
    recommend_with(s, summaries, target, false)
}

impl SettingSummary {
    fn mb(&self) -> f64 {
        self.sustained_mb_per_s.unwrap_or(0.0)
    }

    /// The rate seen failing, in MB/s (infinite: never seen failing).
    fn failed_mb(&self) -> f64 {
        self.failed_msgs_per_s.map_or(f64::INFINITY, |f| {
            f * self.mb() / self.sustained_msgs_per_s.unwrap_or(1.0)
        })
    }
}

fn explain(
    ss: &[SettingSummary],
    cands: &[usize],
    best: usize,
    within: &[usize],
    tie: &str,
) -> String {
    if within.len() > 1 {
        return format!(
            "{} settings are within noise of the best ({}, {:.2} MB/s): none of them was seen failing below its sustained rate. Tie-break: {tie}.",
            within.len(),
            ss[best].label,
            ss[best].mb()
        );
    }
    let runner_up = cands
        .iter()
        .copied()
        .filter(|&i| i != best)
        .max_by(|&a, &b| ss[a].failed_mb().total_cmp(&ss[b].failed_mb()));
    match runner_up {
        Some(r) => format!(
            "{} sustained {:.2} MB/s in a majority of repetitions at every curve point up to it; every other setting was seen failing at or below that (the closest, {}, failed at {:.2} MB/s).",
            ss[best].label, ss[best].mb(), ss[r].label, ss[r].failed_mb()
        ),
        None => format!("{} is the only setting that sustained a curve rate.", ss[best].label),
    }
}

/// `latency_first`: the tie-break is the lowest p99 (used when the latency goal was missed).
pub fn recommend_with(
    s: &SweepV2,
    ss: &[SettingSummary],
    target: usize,
    latency_first: bool,
) -> Recommendation {
    let tie_break = if latency_first {
        TIE_BREAK_GOAL_MISSED
    } else {
        TIE_BREAK
    };
    let cands: Vec<usize> = (0..ss.len())
        .filter(|&i| ss[i].target == target && ss[i].sustained_mb_per_s.is_some())
        .collect();
    let Some(best) = cands
        .iter()
        .copied()
        .max_by(|&a, &b| ss[a].mb().total_cmp(&ss[b].mb()))
    else {
        return Recommendation {
            target,
            pick: None,
            within_noise: Vec::new(),
            clear: false,
            goal_met: false,
            tie_break: tie_break.into(),
            explanation: "no setting sustained any curve rate in a majority of its repetitions"
                .into(),
        };
    };
    let mut within: Vec<usize> = cands
        .iter()
        .copied()
        .filter(|&i| i == best || ss[i].failed_mb() > ss[best].mb())
        .collect();
    within.sort_by(|&a, &b| ss[b].mb().total_cmp(&ss[a].mb()));
    let key = |i: usize| {
        let p99 = ss[i].p99_ms_at_sustained.map_or(f64::MAX, |p| p.median);
        [
            if latency_first { p99 } else { 0.0 },
            knob_f64(s, ss[i].setting, Knob::LingerMs),
            knob_f64(s, ss[i].setting, Knob::BatchSize),
            -ss[i].mb(),
        ]
    };
    let pick = within
        .iter()
        .copied()
        .min_by(|&a, &b| {
            key(a)
                .partial_cmp(&key(b))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .expect("best is in the set");
    Recommendation {
        target,
        pick: Some(pick),
        clear: within.len() == 1,
        explanation: explain(ss, &cands, best, &within, tie_break),
        within_noise: within,
        goal_met: true,
        tie_break: tie_break.into(),
    }
}

/// Indexes (into `summaries`, one target) no other setting beats on both sustained
/// throughput and p99 there, by throughput.
pub fn frontier(summaries: &[SettingSummary], target: usize) -> Vec<usize> {
    let pts: Vec<(usize, f64, f64)> = summaries
        .iter()
        .enumerate()
        .filter(|(_, s)| s.target == target)
        .filter_map(|(i, s)| Some((i, s.sustained_mb_per_s?, s.p99_ms_at_sustained?.median)))
        .collect();
    let mut front: Vec<(usize, f64)> = pts
        .iter()
        .filter(|&&(i, x, y)| {
            !pts.iter()
                .any(|&(j, x2, y2)| j != i && x2 >= x && y2 <= y && (x2 > x || y2 < y))
        })
        .map(|&(i, x, _)| (i, x))
        .collect();
    front.sort_by(|a, b| a.1.total_cmp(&b.1));
    front.into_iter().map(|(i, _)| i).collect()
}

/// The host during the sweep: the reference point at the start and at the end, and the
/// load and steal over all runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoiseSummary {
    pub target: usize,
    pub reference_start_p99_ms: Option<Spread>,
    pub reference_end_p99_ms: Option<Spread>,
    pub reference_start_acked_msgs_per_s: Option<Spread>,
    pub reference_end_acked_msgs_per_s: Option<Spread>,
    pub load_avg_1m: Option<Spread>,
    pub steal_pct: Option<Spread>,
    pub busy_pct: Option<Spread>,
}

pub fn noise_summary(s: &SweepV2, target: usize) -> NoiseSummary {
    let of = |phase: Phase, f: &dyn Fn(&Run) -> f64| {
        Spread::of(
            s.runs
                .iter()
                .filter(|r| r.phase == phase && r.target == target)
                .map(f),
        )
    };
    let all = |f: &dyn Fn(&Run) -> f64| Spread::of(s.runs.iter().map(f));
    NoiseSummary {
        target,
        reference_start_p99_ms: of(Phase::ReferenceStart, &|r| r.figures.p99_ms()),
        reference_end_p99_ms: of(Phase::ReferenceEnd, &|r| r.figures.p99_ms()),
        reference_start_acked_msgs_per_s: of(Phase::ReferenceStart, &|r| {
            r.figures.acked_msgs_per_s
        }),
        reference_end_acked_msgs_per_s: of(Phase::ReferenceEnd, &|r| r.figures.acked_msgs_per_s),
        load_avg_1m: all(&|r| r.noise.load_avg_1m_after.max(r.noise.load_avg_1m_before)),
        steal_pct: all(&|r| r.noise.steal_pct),
        busy_pct: all(&|r| r.noise.busy_pct),
    }
}

/// Everything the report shows, computed once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub points: Vec<PointSummary>,
    pub settings: Vec<SettingSummary>,
    pub recommendations: Vec<Recommendation>,
    pub frontiers: Vec<Vec<usize>>,
    pub noise: Vec<NoiseSummary>,
}

/// Per target: with the latency goal if any setting met it, else by throughput alone (the
/// recommendation then says so and names the lowest p99 seen).
pub fn analyse(s: &SweepV2) -> Analysis {
    let points = point_summaries(s);
    let with_goal = setting_summaries(s, &points, true);
    let rate_only = setting_summaries(s, &points, false);
    let n = s.plan.targets.len();
    let goal_met: Vec<bool> = (0..n)
        .map(|t| {
            with_goal
                .iter()
                .any(|x| x.target == t && x.sustained_msgs_per_s.is_some())
        })
        .collect();
    let settings: Vec<SettingSummary> = with_goal
        .into_iter()
        .zip(rate_only)
        .map(|(g, r)| if goal_met[g.target] { g } else { r })
        .collect();
    let recommendations = (0..n)
        .map(|t| {
            let missed = !goal_met[t] && s.plan.criteria.p99_ms_max.is_some();
            let mut r = recommend_with(s, &settings, t, missed);
            if missed {
                r.goal_met = false;
                r.explanation = format!(
                    "{} Without the latency goal: {}",
                    goal_missed(s, &points, t),
                    r.explanation
                );
            }
            r
        })
        .collect();
    Analysis {
        recommendations,
        frontiers: (0..n).map(|t| frontier(&settings, t)).collect(),
        noise: (0..n).map(|t| noise_summary(s, t)).collect(),
        points,
        settings,
    }
}

fn goal_missed(s: &SweepV2, points: &[PointSummary], target: usize) -> String {
    let goal = s.plan.criteria.p99_ms_max.unwrap_or(0.0);
    let best = points
        .iter()
        .filter(|p| p.target == target)
        .min_by(|a, b| a.p99_ms.median.total_cmp(&b.p99_ms.median));
    match best {
        Some(p) => format!(
            "NO setting met p99 <= {goal} ms in a majority of runs at any curve rate; the lowest median p99 was {:.2} ms [{:.2}-{:.2}] ({} at {:.0} msg/s).",
            p.p99_ms.median,
            p.p99_ms.min,
            p.p99_ms.max,
            s.plan.settings[p.setting].label,
            p.rate_msgs_per_s
        ),
        None => format!("NO setting met p99 <= {goal} ms."),
    }
}

/// Whether two sweeps agree (first target of each).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    pub agree: bool,
    pub text: String,
}

fn pick_and_set(s: &SweepV2) -> (Option<String>, Vec<String>, bool) {
    let a = analyse(s);
    let r = &a.recommendations[0];
    let mut set: Vec<String> = r
        .within_noise
        .iter()
        .map(|&i| a.settings[i].label.clone())
        .collect();
    set.sort();
    (r.pick.map(|i| a.settings[i].label.clone()), set, r.clear)
}

/// Same pick, or both within noise with the same set of tied settings.
pub fn agreement(first: &SweepV2, second: &SweepV2) -> Agreement {
    let (p1, s1, c1) = pick_and_set(first);
    let (p2, s2, c2) = pick_and_set(second);
    let same_pick = p1.is_some() && p1 == p2;
    let same_set = !c1 && !c2 && s1 == s2;
    let common = s1.iter().filter(|x| s2.contains(x)).count();
    let text = format!(
        "first:  pick {:?}, {}, within noise: [{}]\nsecond: pick {:?}, {}, within noise: [{}]\nsame pick: {same_pick}; same within-noise set: {same_set} ({common} in common)\n=> {}\n",
        p1,
        if c1 { "clear" } else { "within noise" },
        s1.join(", "),
        p2,
        if c2 { "clear" } else { "within noise" },
        s2.join(", "),
        if same_pick || same_set { "AGREE" } else { "DISAGREE" }
    );
    Agreement {
        agree: same_pick || same_set,
        text,
    }
}
