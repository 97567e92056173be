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
    /// A rate of the shared grid (`fraction` is then of the grid's top, not of the setting's
    /// own search result).
    #[serde(default)]
    pub shared: bool,
}

impl PointSummary {
    /// Held by a majority of its repetitions (with or without the latency goal).
    pub fn holds(&self, with_goal: bool) -> bool {
        self.passes_of(with_goal) * 2 > self.reps
    }

    /// Failed in a majority of its repetitions.
    pub fn fails(&self, with_goal: bool) -> bool {
        (self.reps - self.passes_of(with_goal)) * 2 > self.reps
    }

    pub fn passes_of(&self, with_goal: bool) -> usize {
        if with_goal {
            self.passes
        } else {
            self.passes_rate_only
        }
    }
}

/// Passes of one setting at one rate of the shared grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GridCount {
    pub rate_msgs_per_s: u64,
    pub passes: usize,
    pub reps: usize,
}

impl GridCount {
    fn holds(&self) -> bool {
        self.passes * 2 > self.reps
    }
    fn fails(&self) -> bool {
        (self.reps - self.passes) * 2 > self.reps
    }
}

/// How many more of `n` shared-grid runs one setting must pass than another to be called
/// better: ⌈√(2n)⌉ (at least 2). Two settings with the same pass probability p at every
/// rate differ by a count with standard deviation √(2·n·p·(1−p)) ≤ √(n/2); the margin is
/// two of those at the worst case p = ½, so a tie is called a win about 2 % of the time.
pub fn grid_margin(n: usize) -> usize {
    ((2.0 * n as f64).sqrt().ceil() as usize).max(2)
}

/// Whether `b` beats `a` on the shared grid (the same rates, the same repetitions,
/// interleaved): `b` passed at least [`grid_margin`] more of the common runs, and at some
/// rate `b` held in a majority of its repetitions while `a` failed in a majority. Returns
/// why, or None (within noise of each other, as far as the grid can tell).
pub fn grid_beats(b: &[GridCount], a: &[GridCount]) -> Option<String> {
    let common: Vec<(&GridCount, &GridCount)> = b
        .iter()
        .filter_map(|x| {
            a.iter()
                .find(|y| y.rate_msgs_per_s == x.rate_msgs_per_s)
                .map(|y| (x, y))
        })
        .collect();
    let n: usize = common.iter().map(|(x, y)| x.reps.min(y.reps)).sum();
    let (pb, pa): (usize, usize) = common
        .iter()
        .fold((0, 0), |(pb, pa), (x, y)| (pb + x.passes, pa + y.passes));
    let margin = grid_margin(n);
    let split = common
        .iter()
        .find(|(x, y)| x.holds() && y.fails())
        .map(|(x, y)| {
            format!(
                "at {} msg/s {}/{} vs {}/{}",
                x.rate_msgs_per_s, x.passes, x.reps, y.passes, y.reps
            )
        })?;
    (pb >= pa + margin)
        .then(|| format!("passed {pb} vs {pa} of {n} shared-grid runs (margin {margin}); {split}"))
}

/// Pool-adjacent-violators: the non-increasing sequence closest (least squares, weighted
/// by repetitions) to the pass shares of points in ascending rate order. One noisy point
/// is pooled with its neighbours instead of cutting the curve short or extending it.
pub fn monotone_pass_share(points: &[(usize, usize)]) -> Vec<f64> {
    // Blocks of (passes, reps, points pooled).
    let mut blocks: Vec<(f64, f64, usize)> = Vec::new();
    for &(passes, reps) in points {
        blocks.push((passes as f64, reps.max(1) as f64, 1));
        while blocks.len() > 1 {
            let (p2, r2, n2) = blocks[blocks.len() - 1];
            let (p1, r1, n1) = blocks[blocks.len() - 2];
            if p1 / r1 >= p2 / r2 {
                break;
            }
            blocks.pop();
            *blocks.last_mut().expect("two blocks") = (p1 + p2, r1 + r2, n1 + n2);
        }
    }
    blocks
        .iter()
        .flat_map(|&(p, r, n)| std::iter::repeat_n(p / r, n))
        .collect()
}

/// What a setting sustained: at least `sustained`, and seen failing at `failed` (if ever).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SettingSummary {
    pub target: usize,
    pub setting: usize,
    pub label: String,
    /// Rate the search ended on (a fail was confirmed by a majority of runs, a pass by one).
    pub search_pass_msgs_per_s: Option<f64>,
    pub search_fail_msgs_per_s: Option<f64>,
    pub search_steps: usize,
    pub search_spent_s: f64,
    /// Highest repeated rate (curve or grid point) held by a majority of its repetitions
    /// where the monotone fit of pass shares over all the setting's points is above ½.
    pub sustained_msgs_per_s: Option<f64>,
    pub sustained_mb_per_s: Option<f64>,
    /// Lowest rate above `sustained` that failed in a majority of its runs (a repeated point,
    /// or a search step confirmed by a majority); None = never seen failing.
    pub failed_msgs_per_s: Option<f64>,
    /// p99 at the sustained rate (over its repetitions).
    pub p99_ms_at_sustained: Option<Spread>,
    /// Passes at each rate of the shared grid, ascending (empty: not on the grid).
    #[serde(default)]
    pub grid: Vec<GridCount>,
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
    let curve: Vec<&Run> = s
        .runs
        .iter()
        .filter(|r| matches!(r.phase, Phase::Curve | Phase::Grid))
        .collect();
    let mut keys: Vec<(usize, usize, bool, u64)> = curve
        .iter()
        .filter_map(|r| {
            Some((
                r.target,
                r.setting?,
                r.phase == Phase::Grid,
                r.fraction?.to_bits(),
            ))
        })
        .collect();
    keys.sort();
    keys.dedup();
    for (t, st, shared, fb) in keys {
        let runs: Vec<&Run> = curve
            .iter()
            .copied()
            .filter(|r| {
                r.target == t
                    && r.setting == Some(st)
                    && (r.phase == Phase::Grid) == shared
                    && r.fraction.map(f64::to_bits) == Some(fb)
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
            shared,
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
            let counts: Vec<(usize, usize)> = pts
                .iter()
                .map(|p| (p.passes_of(with_goal), p.reps))
                .collect();
            let fit = monotone_pass_share(&counts);
            let held = pts
                .iter()
                .zip(&fit)
                .filter(|(p, &f)| p.holds(with_goal) && f > 0.5)
                .map(|(p, _)| *p)
                .next_back();
            let sustained = held.map(|p| p.rate_msgs_per_s);
            let above = |r: f64| sustained.is_none_or(|s| r > s);
            // Search fails count when a majority of their runs failed; a search of single-run
            // steps (fail_confirm_runs = 1, older sweeps) has no other evidence above its curve.
            let single_runs = rec.search.config.fail_confirm_runs <= 1;
            let search_fails = rec
                .search
                .steps
                .iter()
                .filter(|st| with_goal && (st.confirmed_fail() || (single_runs && !st.pass)))
                .map(|st| st.rate_msgs_per_s);
            let failed = pts
                .iter()
                .filter(|p| p.fails(with_goal))
                .map(|p| p.rate_msgs_per_s)
                .chain(search_fails)
                .filter(|&r| above(r))
                .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.min(r))));
            let grid = pts
                .iter()
                .filter(|p| p.shared)
                .map(|p| GridCount {
                    rate_msgs_per_s: p.rate_msgs_per_s.round() as u64,
                    passes: p.passes_of(with_goal),
                    reps: p.reps,
                })
                .collect();
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
                grid,
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

/// One setting against the best: beaten (and by which evidence), or within noise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Index into the setting summaries.
    pub setting: usize,
    pub beaten: bool,
    pub reason: String,
}

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
    /// The best (before the tie-break) and every other setting against it.
    #[serde(default)]
    pub best: Option<usize>,
    #[serde(default)]
    pub comparisons: Vec<Comparison>,
}

fn knob_f64(s: &SweepV2, setting: usize, k: Knob) -> f64 {
    s.plan.settings[setting]
        .get(k)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

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

    /// Passes over the whole shared grid.
    pub fn grid_passes(&self) -> usize {
        self.grid.iter().map(|g| g.passes).sum()
    }

    pub fn grid_runs(&self) -> usize {
        self.grid.iter().map(|g| g.reps).sum()
    }
}

/// `a` against the best `b`. Two settings that both ran the shared grid are compared there
/// only ([`grid_beats`]); otherwise `a` is beaten when it failed in a majority of its runs
/// at a rate at or below one the best held in a majority of its runs (its sustained rate).
fn versus_best(b: &SettingSummary, a: &SettingSummary) -> (bool, String) {
    if !a.grid.is_empty() && !b.grid.is_empty() {
        return match grid_beats(&b.grid, &a.grid) {
            Some(why) => (true, format!("shared grid: {why}")),
            None => (
                false,
                format!(
                    "shared grid: passed {} vs the best's {} of {} runs, not beyond the margin of {} with a rate the best held and it failed",
                    a.grid_passes(),
                    b.grid_passes(),
                    a.grid_runs().min(b.grid_runs()),
                    grid_margin(a.grid_runs().min(b.grid_runs()))
                ),
            ),
        };
    }
    if a.failed_mb() <= b.mb() {
        (
            true,
            format!(
                "failed in a majority of runs at {:.0} msg/s ({:.2} MB/s), at or below the best's sustained {:.2} MB/s",
                a.failed_msgs_per_s.unwrap_or(0.0),
                a.failed_mb(),
                b.mb()
            ),
        )
    } else {
        (
            false,
            match a.failed_msgs_per_s {
                Some(f) => format!(
                    "seen failing (majority) only at {f:.0} msg/s ({:.2} MB/s), above the best's sustained {:.2} MB/s",
                    a.failed_mb(),
                    b.mb()
                ),
                None => "never seen failing in a majority of runs".to_string(),
            },
        )
    }
}

fn explain(
    ss: &[SettingSummary],
    best: usize,
    within: &[usize],
    comparisons: &[Comparison],
    tie: &str,
) -> String {
    let b = &ss[best];
    let how = if b.grid.is_empty() {
        format!("{}, sustained {:.2} MB/s", b.label, b.mb())
    } else {
        format!(
            "{}, {} of {} shared-grid runs passed, sustained {:.2} MB/s",
            b.label,
            b.grid_passes(),
            b.grid_runs(),
            b.mb()
        )
    };
    if within.len() > 1 {
        let tied: Vec<String> = comparisons
            .iter()
            .filter(|c| !c.beaten)
            .map(|c| {
                let x = &ss[c.setting];
                if x.grid.is_empty() || b.grid.is_empty() {
                    format!("{} (off the grid, {})", x.label, c.reason)
                } else {
                    format!("{} ({}/{})", x.label, x.grid_passes(), x.grid_runs())
                }
            })
            .collect();
        let rule = if b.grid.is_empty() {
            "None of them was seen failing in a majority of runs at or below the best's sustained rate".to_string()
        } else {
            format!(
                "None of them passed at least {} fewer shared-grid runs with a rate where the best held and it failed in a majority",
                grid_margin(b.grid_runs())
            )
        };
        return format!(
            "{} settings are within noise of the best ({how}): {}. {rule}. Tie-break: {tie}.",
            within.len(),
            tied.join(", ")
        );
    }
    if comparisons.is_empty() {
        return format!(
            "{} is the only setting that sustained a repeated rate.",
            b.label
        );
    }
    let beaten: Vec<String> = comparisons
        .iter()
        .map(|c| format!("{} ({})", ss[c.setting].label, c.reason))
        .collect();
    format!(
        "The best ({how}) beats every other setting beyond the spread: {}.",
        beaten.join("; ")
    )
}

/// The best: most passes on the shared grid (when any setting passed there), then the
/// higher sustained rate; without a grid, the highest sustained rate. Every other setting is
/// within noise of it unless [`versus_best`] says beaten; the pick among the best and those
/// within noise is by the tie-break. `latency_first`: the tie-break is the lowest p99 (used
/// when the latency goal was missed).
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
    let key = |i: usize| {
        let p99 = ss[i].p99_ms_at_sustained.map_or(f64::MAX, |p| p.median);
        [
            if latency_first { p99 } else { 0.0 },
            knob_f64(s, ss[i].setting, Knob::LingerMs),
            knob_f64(s, ss[i].setting, Knob::BatchSize),
            -ss[i].mb(),
        ]
    };
    let by_key = |a: usize, b: usize| {
        key(a)
            .partial_cmp(&key(b))
            .unwrap_or(std::cmp::Ordering::Equal)
    };
    let on_grid = cands.iter().any(|&i| ss[i].grid_passes() > 0);
    let Some(best) = cands.iter().copied().max_by(|&a, &b| {
        let grid = |i: usize| if on_grid { ss[i].grid_passes() } else { 0 };
        grid(a)
            .cmp(&grid(b))
            .then(ss[a].mb().total_cmp(&ss[b].mb()))
            .then(by_key(b, a))
    }) else {
        return Recommendation {
            target,
            pick: None,
            within_noise: Vec::new(),
            clear: false,
            goal_met: false,
            tie_break: tie_break.into(),
            explanation: "no setting sustained any repeated rate in a majority of its repetitions"
                .into(),
            best: None,
            comparisons: Vec::new(),
        };
    };
    let comparisons: Vec<Comparison> = cands
        .iter()
        .copied()
        .filter(|&i| i != best)
        .map(|i| {
            let (beaten, reason) = versus_best(&ss[best], &ss[i]);
            Comparison {
                setting: i,
                beaten,
                reason,
            }
        })
        .collect();
    let mut within: Vec<usize> = std::iter::once(best)
        .chain(comparisons.iter().filter(|c| !c.beaten).map(|c| c.setting))
        .collect();
    within[1..].sort_by(|&a, &b| {
        ss[b]
            .grid_passes()
            .cmp(&ss[a].grid_passes())
            .then(ss[b].mb().total_cmp(&ss[a].mb()))
    });
    let pick = within
        .iter()
        .copied()
        .min_by(|&a, &b| by_key(a, b))
        .expect("best is in the set");
    Recommendation {
        target,
        pick: Some(pick),
        clear: within.len() == 1,
        explanation: explain(ss, best, &within, &comparisons, tie_break),
        within_noise: within,
        goal_met: true,
        tie_break: tie_break.into(),
        best: Some(best),
        comparisons,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(passes: &[usize]) -> Vec<GridCount> {
        passes
            .iter()
            .enumerate()
            .map(|(k, &p)| GridCount {
                rate_msgs_per_s: 100_000 * (k as u64 + 1),
                passes: p,
                reps: 3,
            })
            .collect()
    }

    #[test]
    fn the_grid_margin_grows_with_the_runs() {
        assert_eq!(grid_margin(0), 2);
        assert_eq!(grid_margin(3), 3);
        assert_eq!(grid_margin(12), 5);
        assert_eq!(grid_margin(15), 6);
    }

    #[test]
    fn beating_needs_the_margin_and_a_split_rate() {
        // Identical: never.
        assert_eq!(grid_beats(&grid(&[3, 3, 2, 1]), &grid(&[3, 3, 2, 1])), None);
        // 4 more of 12: below the margin of 5.
        assert_eq!(grid_beats(&grid(&[3, 3, 3, 2]), &grid(&[3, 3, 1, 0])), None);
        // 5 more, and 3/3 vs 1/3 at 300k.
        let why = grid_beats(&grid(&[3, 3, 3, 2]), &grid(&[3, 2, 1, 0])).unwrap();
        assert!(why.contains("passed 11 vs 6 of 12"), "{why}");
        assert!(why.contains("at 300000 msg/s 3/3 vs 1/3"), "{why}");
        // The other way round: not beaten.
        assert_eq!(grid_beats(&grid(&[3, 2, 1, 0]), &grid(&[3, 3, 3, 2])), None);
        // Enough passes but no rate where one held and the other failed in a majority
        // (2/3 vs 2/3 splits everywhere... and 3/3 vs 2/3): within noise.
        assert_eq!(
            grid_beats(&grid(&[3, 3, 3, 3, 3, 3]), &grid(&[2, 2, 2, 2, 2, 2])),
            None
        );
        // Only common rates count.
        let mut short = grid(&[3, 3]);
        short[1].rate_msgs_per_s = 999;
        assert_eq!(grid_beats(&grid(&[3, 0, 0, 0]), &short), None);
    }

    #[test]
    fn the_monotone_fit_pools_a_noisy_point_with_its_neighbours() {
        let fit = |c: &[(usize, usize)]| monotone_pass_share(c);
        assert_eq!(fit(&[(3, 3), (2, 3), (0, 3)]), vec![1.0, 2.0 / 3.0, 0.0]);
        // A low spike (1/3 at the lowest rate) is pooled with the passes above it.
        let f = fit(&[(1, 3), (3, 3), (3, 3), (2, 3), (1, 3)]);
        assert!((f[0] - 7.0 / 9.0).abs() < 1e-12, "{f:?}");
        assert_eq!(f[0], f[2]);
        assert_eq!(&f[3..], &[2.0 / 3.0, 1.0 / 3.0]);
        // A lucky pass above a fail: pooled to ½, which does not hold.
        let f = fit(&[(3, 3), (1, 3), (2, 3)]);
        assert_eq!(f, vec![1.0, 0.5, 0.5]);
        assert!(fit(&[]).is_empty());
    }
}
