//! Runs a sweep: reference points, interleaved rate searches, then every curve point
//! `repetitions` times in shuffled rounds, then the reference points again.
//!
//! The endpoint is a trait so the whole schedule runs against a model in tests.

use crate::knobs::{KnobError, Setting};
use crate::noise::{HostNoise, HostSample};
use crate::search::{RateSearch, SearchConfig, SearchConfigError};
use crate::step::{Criteria, FailReason, StepFigures};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use shoal_bench::machine::Machine;
use shoal_bench::workload::Workload;

pub const SWEEP_FORMAT_V2: &str = "shoal-tune/2";
/// The shared grid: 50, 67, 83 and 100 % of the highest search result.
pub const DEFAULT_GRID_FRACTIONS: [f64; 4] = [0.5, 0.667, 0.833, 1.0];
pub const REPETITIONS_MAX: u32 = 20;

/// One Kafka-compatible endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    pub brokers: String,
    /// What runs there (e.g. "shoal 0.1.0 release, commit c42bf78"), as given.
    pub description: String,
}

/// What one step returned.
pub struct StepOutput {
    pub figures: StepFigures,
    /// Full result JSON, kept beside the sweep (None for models).
    pub result_json: Option<String>,
    pub elapsed_s: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("run {label} on {target}: {reason}")]
    Run {
        target: String,
        label: String,
        reason: String,
    },
    #[error(transparent)]
    Knob(#[from] KnobError),
    #[error(transparent)]
    Search(#[from] SearchConfigError),
    #[error("{0}")]
    Config(String),
    #[error("write {path}: {reason}")]
    Write { path: String, reason: String },
}

pub trait Endpoint {
    fn run_step(
        &mut self,
        target: &Target,
        w: &Workload,
        label: &str,
    ) -> Result<StepOutput, String>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    ReferenceStart,
    Search,
    Curve,
    /// A rate of the shared grid: the same absolute rates for every setting on it.
    Grid,
    ReferenceEnd,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub seq: usize,
    pub phase: Phase,
    pub target: usize,
    /// Index into `settings`; None for the reference point.
    pub setting: Option<usize>,
    pub fraction: Option<f64>,
    pub rep: u32,
    pub rate_msgs_per_s: f64,
    pub figures: StepFigures,
    pub failures: Vec<FailReason>,
    pub noise: HostNoise,
    pub started_unix_s: u64,
    pub elapsed_s: f64,
    /// Full result JSON relative to the sweep folder, if kept.
    pub result: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchRecord {
    pub target: usize,
    pub setting: usize,
    pub search: RateSearch,
    /// The rate the curve fractions are taken of (the lower capacity over all targets in
    /// compare mode, so every target runs the same rates), and why.
    pub curve_base_msgs_per_s: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub workload: Workload,
    pub targets: Vec<Target>,
    pub dimensions: Vec<crate::knobs::Dimension>,
    pub settings: Vec<Setting>,
    pub criteria: Criteria,
    pub search: SearchConfig,
    /// Fractions of the discovered rate run for the curves (1.0 = the rate itself).
    pub fractions: Vec<f64>,
    /// Fractions of the highest rate any setting's search passed: the shared grid, run by
    /// every setting whose search did not fail (confirmed) at or below its lowest rate, so
    /// that those settings are compared at the same rates. Empty: no shared grid.
    #[serde(default)]
    pub grid_fractions: Vec<f64>,
    /// Measured seconds of a rate-search run, if shorter than the workload's (the curve and
    /// grid points, which decide, keep the workload's).
    #[serde(default)]
    pub search_duration_s: Option<u64>,
    pub repetitions: u32,
    /// The workload's own settings at this rate, run `repetitions` times at start and end.
    pub reference_rate_msgs_per_s: f64,
    pub seed: u64,
}

impl Plan {
    /// The model-endpoint plan the tests share: every combination of `dimensions`, a 60 s
    /// search budget of 5 s runs (failing steps confirmed by a majority of 3), curve points at
    /// 25/50/75/100 % and a shared grid at 50-100 % of the top (4 rates), all run 3 times, p99 goal
    /// `goal_ms`.
    pub fn model(
        workload: Workload,
        targets: Vec<Target>,
        dimensions: Vec<crate::knobs::Dimension>,
        goal_ms: Option<f64>,
        reference_rate_msgs_per_s: f64,
        seed: u64,
    ) -> Result<Plan, KnobError> {
        Ok(Plan {
            workload,
            targets,
            settings: crate::knobs::settings(&dimensions)?,
            dimensions,
            criteria: Criteria {
                p99_ms_max: goal_ms,
                ..Criteria::default()
            },
            search: SearchConfig {
                budget_s: 60.0,
                step_estimate_s: 5.0,
                ..SearchConfig::default()
            },
            fractions: vec![0.25, 0.5, 0.75, 1.0],
            grid_fractions: DEFAULT_GRID_FRACTIONS.to_vec(),
            search_duration_s: None,
            repetitions: 3,
            reference_rate_msgs_per_s,
            seed,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepV2 {
    pub format: String,
    pub command: String,
    pub plan: Plan,
    pub machine: Machine,
    pub client: String,
    pub started_unix_s: u64,
    pub finished_unix_s: u64,
    pub searches: Vec<SearchRecord>,
    /// The shared grid, once the searches are done (None: no grid planned, or an older sweep).
    #[serde(default)]
    pub grid: Option<SharedGrid>,
    pub runs: Vec<Run>,
}

/// Absolute rates every setting on the grid runs, `repetitions` times each, interleaved with
/// the curve points, so that settings near the top are compared like for like.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SharedGrid {
    /// The grid's 100 %: the highest rate any setting's search passed (msgs/s).
    pub top_msgs_per_s: f64,
    /// Fractions of the top and the rates they give, ascending.
    pub fractions: Vec<f64>,
    pub rates_msgs_per_s: Vec<f64>,
    /// Settings run on the grid (on every target).
    pub settings: Vec<usize>,
}

impl SharedGrid {
    pub fn contains(&self, setting: usize) -> bool {
        self.settings.contains(&setting)
    }
}

impl Plan {
    pub fn validate(&self) -> Result<(), SweepError> {
        if self.targets.is_empty() || self.targets.len() > 2 {
            return Err(SweepError::Config("one or two targets".into()));
        }
        if self.repetitions == 0 || self.repetitions > REPETITIONS_MAX {
            return Err(SweepError::Config(format!(
                "repetitions must be 1..={REPETITIONS_MAX}"
            )));
        }
        if self.fractions.is_empty() || self.fractions.iter().any(|f| !(*f > 0.0 && *f <= 1.0)) {
            return Err(SweepError::Config("fractions must be in (0, 1]".into()));
        }
        if self.grid_fractions.iter().any(|f| !(*f > 0.0 && *f <= 1.0)) {
            return Err(SweepError::Config(
                "grid fractions must be in (0, 1]".into(),
            ));
        }
        for s in &self.settings {
            s.apply(&self.workload)?;
        }
        RateSearch::new(self.search)?;
        Ok(())
    }
}

fn now_unix_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Saves the sweep so far and a run's full result JSON; returns where the JSON went.
pub type SaveFn<'a> = dyn FnMut(&SweepV2, Option<&str>) -> Result<Option<String>, SweepError> + 'a;

/// What a sweep in progress needs besides the plan: where to report, and a save hook.
pub struct Hooks<'a> {
    pub log: &'a mut dyn FnMut(&str),
    /// Called after every run with the sweep so far and the run's full result JSON.
    pub save: &'a mut SaveFn<'a>,
}

struct Ctx<'a, 'h> {
    sweep: SweepV2,
    endpoint: &'a mut dyn Endpoint,
    hooks: Hooks<'h>,
}

impl Ctx<'_, '_> {
    fn step(
        &mut self,
        phase: Phase,
        target: usize,
        setting: Option<usize>,
        fraction: Option<f64>,
        rep: u32,
        rate: f64,
    ) -> Result<Run, SweepError> {
        let plan = &self.sweep.plan;
        let t = plan.targets[target].clone();
        let (mut w, label) = match setting {
            Some(i) => (
                plan.settings[i].apply(&plan.workload)?,
                plan.settings[i].label.clone(),
            ),
            None => (plan.workload.clone(), "reference".to_string()),
        };
        w.producer_rate = rate.round().max(1.0);
        if phase == Phase::Search {
            if let Some(d) = plan.search_duration_s {
                w.duration_s = d;
            }
        }
        let before = HostSample::read();
        let started_unix_s = now_unix_s();
        let out = self
            .endpoint
            .run_step(&t, &w, &label)
            .map_err(|reason| SweepError::Run {
                target: t.name.clone(),
                label: label.clone(),
                reason,
            })?;
        let noise = HostNoise::between(&before, &HostSample::read());
        let failures = out.figures.failures(&plan.criteria);
        let mut run = Run {
            seq: self.sweep.runs.len(),
            phase,
            target,
            setting,
            fraction,
            rep,
            rate_msgs_per_s: w.producer_rate,
            figures: out.figures,
            failures,
            noise,
            started_unix_s,
            elapsed_s: out.elapsed_s,
            result: None,
        };
        (self.hooks.log)(&progress_line(&self.sweep, &run, &label));
        self.sweep.runs.push(run.clone());
        run.result = (self.hooks.save)(&self.sweep, out.result_json.as_deref())?;
        *self.sweep.runs.last_mut().expect("pushed") = run.clone();
        Ok(run)
    }

    fn reference(&mut self, phase: Phase) -> Result<(), SweepError> {
        let rate = self.sweep.plan.reference_rate_msgs_per_s;
        for rep in 0..self.sweep.plan.repetitions {
            for t in 0..self.sweep.plan.targets.len() {
                self.step(phase, t, None, None, rep, rate)?;
            }
        }
        Ok(())
    }

    fn searches(&mut self, rng: &mut rand::rngs::StdRng) -> Result<(), SweepError> {
        loop {
            let mut active: Vec<usize> = (0..self.sweep.searches.len())
                .filter(|&i| self.sweep.searches[i].search.next_rate().is_some())
                .collect();
            if active.is_empty() {
                return Ok(());
            }
            active.shuffle(rng);
            for i in active {
                let rec = &self.sweep.searches[i];
                let (t, s) = (rec.target, rec.setting);
                let Some(rate) = rec.search.next_rate() else {
                    continue;
                };
                // rep: the run's number within its step (> 0: confirming a failed first run).
                let rep = rec.search.pending.map_or(0, |p| p.runs);
                let run = self.step(Phase::Search, t, Some(s), None, rep, rate)?;
                let floor = self.latency_floor_seen(i, &run);
                let search = &mut self.sweep.searches[i].search;
                let decided =
                    search.record(run.rate_msgs_per_s, run.failures.is_empty(), run.elapsed_s);
                if floor && decided.is_some_and(|st| !st.pass) {
                    search.latency_floor();
                }
            }
        }
    }

    /// This step failed only the latency goal, at a lower rate than an earlier failed step
    /// of the same search whose p99 was not clearly (20 %) higher: lowering the rate does not help.
    fn latency_floor_seen(&self, search: usize, run: &Run) -> bool {
        let rec = &self.sweep.searches[search];
        if run.failures != [FailReason::P99OverGoal] || rec.search.pass_msgs_per_s.is_some() {
            return false;
        }
        self.sweep.runs.iter().any(|r| {
            r.seq != run.seq
                && r.phase == Phase::Search
                && r.target == rec.target
                && r.setting == Some(rec.setting)
                && r.rate_msgs_per_s > run.rate_msgs_per_s
                && r.failures.contains(&FailReason::P99OverGoal)
                && r.figures.p99_ms() <= run.figures.p99_ms() * 1.25
        })
    }

    /// A search that ended below the shared grid's lowest rate while other settings went
    /// on gets a second look above where it stopped (twice its failing rate, at most the grid's
    /// lowest rate): a false fail must not keep a setting off the grid. Returns whether any
    /// search was reopened.
    fn second_looks(&mut self) -> bool {
        let Some(lowest) = self
            .sweep
            .plan
            .grid_fractions
            .iter()
            .copied()
            .reduce(f64::min)
        else {
            return false;
        };
        let Some(top) = self
            .sweep
            .searches
            .iter()
            .filter_map(|r| r.search.pass_msgs_per_s)
            .reduce(f64::max)
        else {
            return false;
        };
        let floor = top * lowest;
        let growth = self.sweep.plan.search.growth_factor;
        let mut any = false;
        for rec in &mut self.sweep.searches {
            let s = &mut rec.search;
            let Some(pass) = s.pass_msgs_per_s else {
                continue;
            };
            let stopped_at = s.fail_msgs_per_s.unwrap_or(pass);
            if stopped_at < floor {
                s.second_look((stopped_at * growth).min(floor).round());
                any |= s.next_rate().is_some();
            }
        }
        any
    }

    /// The rate each setting's fractions are taken of: its capacity at the goal, or, if it
    /// never met the goal, the highest rate it kept up with; the minimum over targets.
    fn set_curve_bases(&mut self) {
        let n_settings = self.sweep.plan.settings.len();
        let criteria_no_goal = Criteria {
            p99_ms_max: None,
            ..self.sweep.plan.criteria
        };
        for s in 0..n_settings {
            let mut base: Option<f64> = None;
            for rec in self.sweep.searches.iter().filter(|r| r.setting == s) {
                let kept_up = self
                    .sweep
                    .runs
                    .iter()
                    .filter(|r| {
                        r.phase == Phase::Search && r.setting == Some(s) && r.target == rec.target
                    })
                    .filter(|r| r.figures.passes(&criteria_no_goal))
                    .map(|r| r.rate_msgs_per_s)
                    .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))));
                let own = rec.search.pass_msgs_per_s.or(kept_up);
                base = match (base, own) {
                    (Some(b), Some(o)) => Some(b.min(o)),
                    (b, o) => b.or(o),
                };
            }
            for rec in self.sweep.searches.iter_mut().filter(|r| r.setting == s) {
                rec.curve_base_msgs_per_s = base;
            }
        }
    }

    /// The shared grid: fractions of the highest search result (over settings and targets),
    /// run by every setting with a curve base whose search was not seen failing at or below
    /// the grid's lowest rate on every target.
    fn set_grid(&mut self) {
        let plan = &self.sweep.plan;
        if plan.grid_fractions.is_empty() {
            return;
        }
        let top = self
            .sweep
            .searches
            .iter()
            .filter_map(|r| r.search.pass_msgs_per_s)
            .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))))
            .or_else(|| {
                self.sweep
                    .searches
                    .iter()
                    .filter_map(|r| r.curve_base_msgs_per_s)
                    .reduce(f64::max)
            });
        let Some(top) = top else { return };
        let mut pairs: Vec<(f64, f64)> = plan
            .grid_fractions
            .iter()
            .map(|&f| (f, (top * f).max(plan.search.rate_min_msgs_per_s).round()))
            .collect();
        pairs.sort_by(|a, b| a.1.total_cmp(&b.1));
        pairs.dedup_by(|a, b| a.1 == b.1);
        let lowest = pairs[0].1;
        let settings = (0..plan.settings.len())
            .filter(|&s| {
                let recs: Vec<&SearchRecord> = self
                    .sweep
                    .searches
                    .iter()
                    .filter(|r| r.setting == s)
                    .collect();
                recs.iter().all(|r| r.curve_base_msgs_per_s.is_some())
                    && recs
                        .iter()
                        .any(|r| r.search.fail_msgs_per_s.is_none_or(|f| f > lowest))
            })
            .collect();
        self.sweep.grid = Some(SharedGrid {
            top_msgs_per_s: top,
            fractions: pairs.iter().map(|p| p.0).collect(),
            rates_msgs_per_s: pairs.iter().map(|p| p.1).collect(),
            settings,
        });
    }

    /// Curve points (fractions of each setting's own rate; for a setting on the grid only
    /// those below the grid) and grid points, all in one shuffled round per repetition.
    fn curves(&mut self, rng: &mut rand::rngs::StdRng) -> Result<(), SweepError> {
        let plan = self.sweep.plan.clone();
        let grid = self.sweep.grid.clone();
        let mut units: Vec<(usize, Phase, f64, f64)> = Vec::new();
        for s in 0..plan.settings.len() {
            let base = self
                .sweep
                .searches
                .iter()
                .find(|r| r.setting == s)
                .and_then(|r| r.curve_base_msgs_per_s);
            let on_grid = grid.as_ref().filter(|g| g.contains(s));
            if let Some(base) = base {
                for &f in &plan.fractions {
                    let rate = (base * f).max(plan.search.rate_min_msgs_per_s);
                    if on_grid.is_some_and(|g| rate >= 0.95 * g.rates_msgs_per_s[0]) {
                        continue;
                    }
                    units.push((s, Phase::Curve, f, rate));
                }
            }
            if let Some(g) = on_grid {
                for (&f, &rate) in g.fractions.iter().zip(&g.rates_msgs_per_s) {
                    units.push((s, Phase::Grid, f, rate));
                }
            }
        }
        for rep in 0..plan.repetitions {
            units.shuffle(rng);
            for &(s, phase, f, rate) in &units {
                let mut targets: Vec<usize> = (0..plan.targets.len()).collect();
                targets.shuffle(rng);
                for t in targets {
                    self.step(phase, t, Some(s), Some(f), rep, rate)?;
                }
            }
        }
        Ok(())
    }
}

/// Runs the whole plan. Stops at the first failed run (its error names it); everything
/// measured before has already been handed to `hooks.save`.
pub fn run_sweep(
    plan: Plan,
    command: String,
    endpoint: &mut dyn Endpoint,
    hooks: Hooks<'_>,
) -> Result<SweepV2, SweepError> {
    plan.validate()?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(plan.seed);
    let searches = (0..plan.targets.len())
        .flat_map(|t| (0..plan.settings.len()).map(move |s| (t, s)))
        .map(|(target, setting)| {
            Ok(SearchRecord {
                target,
                setting,
                search: RateSearch::new(plan.search)?,
                curve_base_msgs_per_s: None,
            })
        })
        .collect::<Result<Vec<_>, SearchConfigError>>()?;
    let mut ctx = Ctx {
        sweep: SweepV2 {
            format: SWEEP_FORMAT_V2.into(),
            command,
            plan,
            machine: Machine::detect(),
            client: format!("librdkafka {}", shoal_bench::kafka::librdkafka_version()),
            started_unix_s: now_unix_s(),
            finished_unix_s: 0,
            searches,
            grid: None,
            runs: Vec::new(),
        },
        endpoint,
        hooks,
    };
    ctx.reference(Phase::ReferenceStart)?;
    ctx.searches(&mut rng)?;
    if ctx.second_looks() {
        ctx.searches(&mut rng)?;
    }
    ctx.set_curve_bases();
    ctx.set_grid();
    ctx.curves(&mut rng)?;
    ctx.reference(Phase::ReferenceEnd)?;
    ctx.sweep.finished_unix_s = now_unix_s();
    (ctx.hooks.save)(&ctx.sweep, None)?;
    Ok(ctx.sweep)
}

fn progress_line(s: &SweepV2, r: &Run, label: &str) -> String {
    let f = &r.figures;
    format!(
        "shoal-tune: #{:<3} {:?} {} {label}{} @ {:.0} msg/s: acked {:.0} msg/s, p50 {:.2} ms, p99 {:.2} ms, backlog {:+.0}/s{} | load {:.2}->{:.2} steal {:.1}% | {:.1} s",
        r.seq,
        r.phase,
        s.plan.targets[r.target].name,
        r.fraction
            .map(|f| format!(" x{:.0}%", f * 100.0))
            .unwrap_or_default(),
        r.rate_msgs_per_s,
        f.acked_msgs_per_s,
        f.p50_us as f64 / 1000.0,
        f.p99_ms(),
        f.backlog_growth_msgs_per_s2,
        if r.failures.is_empty() {
            " PASS".to_string()
        } else {
            format!(" FAIL {:?}", r.failures)
        },
        r.noise.load_avg_1m_before,
        r.noise.load_avg_1m_after,
        r.noise.steal_pct,
        r.elapsed_s
    )
}

/// A model endpoint: sustains `capacity_msgs_per_s` (per target), with p99 rising as the
/// load approaches it. For tests of the schedule and the analysis.
pub struct ModelEndpoint {
    pub capacity_msgs_per_s: Vec<f64>,
    pub step_s: f64,
    pub calls: Vec<(String, String, f64)>,
}

impl Endpoint for ModelEndpoint {
    fn run_step(
        &mut self,
        target: &Target,
        w: &Workload,
        label: &str,
    ) -> Result<StepOutput, String> {
        let t = target
            .name
            .strip_prefix('t')
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        // Higher linger costs latency; capacity scales with the target and a per-label factor.
        let cap = self.capacity_msgs_per_s[t.min(self.capacity_msgs_per_s.len() - 1)]
            * (1.0 + 0.1 * w.producer.batch_size.ilog2() as f64 / 20.0);
        let rate = w.producer_rate;
        let acked = rate.min(cap);
        let load = (rate / cap).min(0.99);
        let p99_us = ((w.producer.linger_ms * 1000.0) + 500.0 / (1.0 - load)) as u64;
        self.calls
            .push((target.name.clone(), label.to_string(), rate));
        Ok(StepOutput {
            figures: StepFigures::modelled(rate, acked, w.message_size, p99_us),
            result_json: None,
            elapsed_s: self.step_s,
        })
    }
}
