//! Rate discovery: the highest rate a setting sustains, by growth then bisection, within a
//! time budget. A pure state machine: the caller runs each step and reports pass/fail and
//! how long the step took, so tests drive it with a model of an endpoint and virtual time.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchConfig {
    /// First rate tried.
    pub rate_start_msgs_per_s: f64,
    /// Never go below / above these.
    pub rate_min_msgs_per_s: f64,
    pub rate_max_msgs_per_s: f64,
    /// Multiplier while no failing rate is known (and divisor while no passing one is).
    pub growth_factor: f64,
    /// Stop when the lowest failing rate is within this fraction above the highest passing one.
    pub precision: f64,
    /// Wall time for the whole search of one setting (s); a step is only started if it fits.
    pub budget_s: f64,
    pub steps_max: u32,
    /// Expected length of one step before any has been measured (s).
    pub step_estimate_s: f64,
    /// Runs that decide a step which failed its first run: the step is repeated until a
    /// majority of this many runs agrees (3: a fail needs 2 of 3; 1: every step is one run).
    /// A first run that passes decides its step at once. Spikes on a shared host make
    /// single-run fails common; a single fail must not end a search low.
    #[serde(default = "one")]
    pub fail_confirm_runs: u32,
}

fn one() -> u32 {
    1
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            rate_start_msgs_per_s: 10_000.0,
            rate_min_msgs_per_s: 500.0,
            rate_max_msgs_per_s: 1_000_000.0,
            growth_factor: 2.0,
            precision: 0.1,
            budget_s: 60.0,
            steps_max: 12,
            step_estimate_s: 6.0,
            fail_confirm_runs: 3,
        }
    }
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SearchConfigError {
    #[error("rate bounds must satisfy 0 < min <= start <= max (got {min} <= {start} <= {max})")]
    Bounds { min: f64, start: f64, max: f64 },
    #[error("growth factor must be > 1 (got {0})")]
    Growth(f64),
    #[error("precision must be in (0, 1) (got {0})")]
    Precision(f64),
    #[error(
        "budget must allow at least one (confirmed) step: budget {budget_s} s, step {step_s} s"
    )]
    Budget { budget_s: f64, step_s: f64 },
    #[error("fail_confirm_runs must be odd, 1..=9 (got {0})")]
    Confirm(u32),
}

impl SearchConfig {
    pub fn validate(&self) -> Result<(), SearchConfigError> {
        let (min, start, max) = (
            self.rate_min_msgs_per_s,
            self.rate_start_msgs_per_s,
            self.rate_max_msgs_per_s,
        );
        if !(min > 0.0 && min <= start && start <= max && max.is_finite()) {
            return Err(SearchConfigError::Bounds { min, start, max });
        }
        if self.growth_factor.is_nan() || self.growth_factor <= 1.0 {
            return Err(SearchConfigError::Growth(self.growth_factor));
        }
        if !(self.precision > 0.0 && self.precision < 1.0) {
            return Err(SearchConfigError::Precision(self.precision));
        }
        if self.fail_confirm_runs.is_multiple_of(2) || self.fail_confirm_runs > 9 {
            return Err(SearchConfigError::Confirm(self.fail_confirm_runs));
        }
        let first_step_s = self.step_estimate_s * self.majority() as f64;
        if self.budget_s.is_nan() || self.budget_s < first_step_s || self.steps_max == 0 {
            return Err(SearchConfigError::Budget {
                budget_s: self.budget_s,
                step_s: first_step_s,
            });
        }
        Ok(())
    }

    /// Runs that make a majority of `fail_confirm_runs`.
    pub fn majority(&self) -> u32 {
        self.fail_confirm_runs.max(1) / 2 + 1
    }
}

/// One decided step: one run, or (after a failing first run) up to `fail_confirm_runs`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchStep {
    pub rate_msgs_per_s: f64,
    pub pass: bool,
    pub elapsed_s: f64,
    /// Runs of this step and how many passed (0 runs: a single-run step of an older sweep).
    #[serde(default)]
    pub runs: u32,
    #[serde(default)]
    pub passes: u32,
}

impl SearchStep {
    pub fn runs(&self) -> u32 {
        self.runs.max(1)
    }

    pub fn passes(&self) -> u32 {
        if self.runs == 0 {
            self.pass as u32
        } else {
            self.passes
        }
    }

    /// Failed in a majority of at least two runs: evidence, not a single spike.
    pub fn confirmed_fail(&self) -> bool {
        let fails = self.runs() - self.passes();
        !self.pass && fails >= 2 && fails > self.passes()
    }
}

/// A step whose first run failed, waiting for its confirming runs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingStep {
    pub rate_msgs_per_s: f64,
    pub runs: u32,
    pub passes: u32,
    pub elapsed_s: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The bracket [pass, fail] is narrower than the precision.
    Converged,
    /// The next step would not fit in the time budget.
    Budget,
    StepsMax,
    /// Passed at the highest allowed rate.
    RateMax,
    /// Lowering the rate did not lower the latency below the goal, and one step above every
    /// tried rate failed too: the setting's latency floor is over the goal.
    LatencyFloor,
    /// Failed at the lowest allowed rate.
    RateMin,
    /// The search ended far below the other settings' and a second look above its failing
    /// rate ([`RateSearch::second_look`]) failed too.
    SecondLook,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RateSearch {
    pub config: SearchConfig,
    /// Highest rate that passed (the capacity estimate).
    pub pass_msgs_per_s: Option<f64>,
    /// Lowest rate above it that failed.
    pub fail_msgs_per_s: Option<f64>,
    pub steps: Vec<SearchStep>,
    pub spent_s: f64,
    pub stopped: Option<StopReason>,
    /// Set by [`RateSearch::latency_floor`]: try this (higher) rate next, once.
    #[serde(default)]
    pub probe_up_msgs_per_s: Option<f64>,
    #[serde(default)]
    pub probed_up: bool,
    /// The step being confirmed (its next run repeats its rate).
    #[serde(default)]
    pub pending: Option<PendingStep>,
    /// Runs so far (steps count once each, however many runs they took).
    #[serde(default)]
    pub runs: u32,
    /// Set by [`RateSearch::second_look`]: try this rate next, once.
    #[serde(default)]
    pub second_look_msgs_per_s: Option<f64>,
    /// Time spent and steps taken when the second look began (it has a budget of its own).
    #[serde(default)]
    pub second_look_from: Option<(f64, u32)>,
}

impl RateSearch {
    pub fn new(config: SearchConfig) -> Result<RateSearch, SearchConfigError> {
        config.validate()?;
        let mut s = RateSearch {
            config,
            pass_msgs_per_s: None,
            fail_msgs_per_s: None,
            steps: Vec::new(),
            spent_s: 0.0,
            stopped: None,
            probe_up_msgs_per_s: None,
            probed_up: false,
            pending: None,
            runs: 0,
            second_look_msgs_per_s: None,
            second_look_from: None,
        };
        s.update_stop();
        Ok(s)
    }

    /// The next rate to try, or None when the search is over (see `stopped`).
    pub fn next_rate(&self) -> Option<f64> {
        if self.stopped.is_some() {
            return None;
        }
        let c = &self.config;
        if let Some(p) = self.pending {
            return Some(p.rate_msgs_per_s);
        }
        if let Some(r) = self.probe_up_msgs_per_s.or(self.second_look_msgs_per_s) {
            return Some(r.clamp(c.rate_min_msgs_per_s, c.rate_max_msgs_per_s));
        }
        let r = match (self.pass_msgs_per_s, self.fail_msgs_per_s) {
            (None, None) => c.rate_start_msgs_per_s,
            (Some(p), None) => p * c.growth_factor,
            (None, Some(f)) => f / c.growth_factor,
            (Some(p), Some(f)) => (p + f) / 2.0,
        };
        Some(r.clamp(c.rate_min_msgs_per_s, c.rate_max_msgs_per_s))
    }

    /// The caller saw that a lower rate failed the latency goal about as badly as a higher
    /// one: going further down is pointless. A setting whose batches fill faster at higher
    /// rates can still meet the goal there, so the search tries once above every rate tried
    /// so far, and stops (`LatencyFloor`) if that fails too.
    pub fn latency_floor(&mut self) {
        if self.pass_msgs_per_s.is_some() || self.stopped.is_some() {
            return;
        }
        if self.probed_up {
            self.stopped = Some(StopReason::LatencyFloor);
            return;
        }
        let top = self
            .steps
            .iter()
            .map(|s| s.rate_msgs_per_s)
            .fold(self.config.rate_start_msgs_per_s, f64::max);
        self.probed_up = true;
        self.probe_up_msgs_per_s = Some(top * self.config.growth_factor);
        self.fail_msgs_per_s = None;
        self.update_stop();
    }

    /// A search that ended far below the other settings' (by a fail, or out of budget)
    /// gets one more step at `rate`, above where it stopped, with a budget and step count of
    /// its own. A pass there contradicts the earlier fail and the search goes on from it; a
    /// fail ends the search (`SecondLook`). Once per search; not after a latency floor.
    pub fn second_look(&mut self, rate: f64) {
        if self.second_look_from.is_some()
            || self.pending.is_some()
            || matches!(
                self.stopped,
                Some(StopReason::LatencyFloor) | Some(StopReason::RateMax) | None
            )
        {
            return;
        }
        self.second_look_from = Some((self.spent_s, self.steps.len() as u32));
        self.second_look_msgs_per_s = Some(rate);
        self.stopped = None;
        self.update_stop();
    }

    /// Reports one run at `rate` (the rate [`RateSearch::next_rate`] asked for). A first run
    /// that passes decides its step; a failing one is repeated (in later calls) until a
    /// majority of `fail_confirm_runs` agrees, or until the next run would not fit the budget
    /// (then the step counts as failed, unconfirmed). Returns the step once it is decided.
    ///
    /// A decided pass at or above the known failing rate (or a fail at or below the known
    /// passing one) is noise: the contradicted bound is dropped.
    pub fn record(&mut self, rate: f64, pass: bool, elapsed_s: f64) -> Option<SearchStep> {
        self.spent_s += elapsed_s;
        self.runs += 1;
        let mut p = match self.pending.take() {
            Some(p) if p.rate_msgs_per_s == rate => p,
            _ => PendingStep {
                rate_msgs_per_s: rate,
                runs: 0,
                passes: 0,
                elapsed_s: 0.0,
            },
        };
        p.runs += 1;
        p.passes += pass as u32;
        p.elapsed_s += elapsed_s;
        let majority = self.config.majority();
        let fails = p.runs - p.passes;
        let decided = if p.runs == 1 && pass {
            Some(true)
        } else if fails >= majority {
            Some(false)
        } else if p.passes >= majority {
            Some(true)
        } else if p.runs >= self.config.fail_confirm_runs.max(1)
            || self.spent_s - self.second_look_from.map_or(0.0, |f| f.0) + self.step_estimate_s()
                > self.config.budget_s
        {
            Some(false)
        } else {
            None
        };
        let Some(pass) = decided else {
            self.pending = Some(p);
            return None;
        };
        let step = SearchStep {
            rate_msgs_per_s: rate,
            pass,
            elapsed_s: p.elapsed_s,
            runs: p.runs,
            passes: p.passes,
        };
        self.steps.push(step);
        let probing = self.probe_up_msgs_per_s.take().is_some();
        if probing && !pass {
            self.fail_msgs_per_s = Some(rate);
            self.stopped = Some(StopReason::LatencyFloor);
            return Some(step);
        }
        let second_look = !probing && self.second_look_msgs_per_s.take().is_some();
        if second_look && !pass {
            self.fail_msgs_per_s = Some(self.fail_msgs_per_s.map_or(rate, |f| f.min(rate)));
            self.stopped = Some(StopReason::SecondLook);
            return Some(step);
        }
        if pass {
            if self.fail_msgs_per_s.is_some_and(|f| rate >= f) {
                self.fail_msgs_per_s = None;
            }
            self.pass_msgs_per_s = Some(self.pass_msgs_per_s.map_or(rate, |p| p.max(rate)));
        } else {
            if self.pass_msgs_per_s.is_some_and(|p| rate <= p) {
                self.pass_msgs_per_s = None;
            }
            self.fail_msgs_per_s = Some(self.fail_msgs_per_s.map_or(rate, |f| f.min(rate)));
        }
        self.update_stop();
        Some(step)
    }

    /// Expected length of one run.
    fn step_estimate_s(&self) -> f64 {
        let runs = self.runs.max(self.steps.len() as u32);
        if runs == 0 {
            self.config.step_estimate_s
        } else {
            self.spent_s / runs as f64
        }
    }

    fn update_stop(&mut self) {
        let c = &self.config;
        let (p, f) = (self.pass_msgs_per_s, self.fail_msgs_per_s);
        self.stopped = if self.second_look_msgs_per_s.is_some() {
            None
        } else if let (Some(p), Some(f)) = (p, f) {
            (f <= p * (1.0 + c.precision)).then_some(StopReason::Converged)
        } else if p.is_some_and(|p| p >= c.rate_max_msgs_per_s) {
            Some(StopReason::RateMax)
        } else if f.is_some_and(|f| f <= c.rate_min_msgs_per_s) && p.is_none() {
            Some(StopReason::RateMin)
        } else {
            None
        };
        // A step starts only if the budget has room to confirm a fail (a majority of runs).
        // A second look counts its own time and steps.
        let (spent0, steps0) = self.second_look_from.unwrap_or((0.0, 0));
        if self.stopped.is_none() {
            if self.steps.len() as u32 - steps0 >= c.steps_max {
                self.stopped = Some(StopReason::StepsMax);
            } else if self.spent_s - spent0 + self.step_estimate_s() * c.majority() as f64
                > c.budget_s
            {
                self.stopped = Some(StopReason::Budget);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every step one run, as before confirmation existed.
    fn single() -> SearchConfig {
        SearchConfig {
            fail_confirm_runs: 1,
            ..SearchConfig::default()
        }
    }

    /// An endpoint that sustains exactly `capacity` msgs/s; each run costs `step_s`.
    fn search_model(capacity: f64, cfg: SearchConfig, step_s: f64) -> RateSearch {
        let mut s = RateSearch::new(cfg).unwrap();
        while let Some(r) = s.next_rate() {
            s.record(r, r <= capacity, step_s);
        }
        s
    }

    #[test]
    fn finds_capacity_within_precision_and_budget() {
        // Confirming a fail costs a second run: twice the budget buys the same precision.
        for cfg in [
            single(),
            SearchConfig {
                budget_s: 120.0,
                ..SearchConfig::default()
            },
        ] {
            for capacity in [700.0, 3_333.0, 10_000.0, 27_500.0, 61_000.0, 150_000.0] {
                let s = search_model(capacity, cfg, 5.0);
                let found = s.pass_msgs_per_s.expect("found a passing rate");
                assert!(found <= capacity, "{capacity}: {found}");
                assert!(found >= capacity / 1.1, "{capacity}: found {found}");
                assert!(s.spent_s <= cfg.budget_s, "{capacity}: {} s", s.spent_s);
                assert_eq!(s.stopped, Some(StopReason::Converged), "{capacity}");
                // A deterministic endpoint: every fail is confirmed by its second run.
                for st in s.steps.iter().filter(|st| !st.pass) {
                    assert_eq!((st.runs, st.passes), (cfg.majority(), 0), "{st:?}");
                    assert_eq!(st.confirmed_fail(), cfg.fail_confirm_runs > 1);
                }
            }
        }
    }

    #[test]
    fn a_single_spike_does_not_end_the_search_low() {
        // Sustains 100k, but the first run at 40k has a p99 spike.
        let run = |cfg: SearchConfig| {
            let mut s = RateSearch::new(cfg).unwrap();
            let mut spiked = false;
            while let Some(r) = s.next_rate() {
                let spike = r == 40_000.0 && !spiked;
                spiked |= spike;
                s.record(r, r <= 100_000.0 && !spike, 5.0);
            }
            s.pass_msgs_per_s.unwrap()
        };
        let confirmed = run(SearchConfig {
            budget_s: 120.0,
            ..SearchConfig::default()
        });
        assert!(confirmed >= 90_000.0, "{confirmed}");
        // Single runs: the spike is taken for the capacity.
        let single_run = run(SearchConfig {
            budget_s: 120.0,
            ..single()
        });
        assert!(single_run < 40_000.0, "{single_run}");
    }

    #[test]
    fn a_failed_first_run_is_decided_by_the_majority() {
        let mut s = RateSearch::new(SearchConfig::default()).unwrap();
        assert_eq!(s.record(10_000.0, false, 5.0), None);
        assert_eq!(s.next_rate(), Some(10_000.0), "repeats the rate");
        assert_eq!(s.record(10_000.0, true, 5.0), None, "1-1: a third run");
        let step = s.record(10_000.0, true, 5.0).expect("2 of 3 passed");
        assert!(step.pass && !step.confirmed_fail());
        assert_eq!((step.runs, step.passes), (3, 2));
        assert_eq!(s.pass_msgs_per_s, Some(10_000.0));
        assert_eq!(s.next_rate(), Some(20_000.0));
        assert_eq!(s.record(20_000.0, false, 5.0), None);
        assert_eq!(s.record(20_000.0, true, 5.0), None);
        let step = s.record(20_000.0, false, 5.0).expect("2 of 3 failed");
        assert!(!step.pass && step.confirmed_fail());
        assert_eq!(s.fail_msgs_per_s, Some(20_000.0));
        assert_eq!(s.next_rate(), Some(15_000.0));
        assert_eq!(s.record(15_000.0, false, 5.0), None);
        let step = s.record(15_000.0, false, 5.0).expect("2 of 2 failed");
        assert_eq!((step.runs, step.passes), (2, 0));
        assert_eq!(s.fail_msgs_per_s, Some(15_000.0));
        assert_eq!(s.steps.len(), 3);
        assert_eq!(s.runs, 8);
    }

    #[test]
    fn an_unconfirmed_fail_ends_the_search_at_the_budget() {
        // Room for a fail (2 runs) but not for the tie-breaking third run.
        let mut s = RateSearch::new(SearchConfig {
            budget_s: 14.0,
            ..SearchConfig::default()
        })
        .unwrap();
        assert_eq!(s.record(10_000.0, true, 5.0).map(|st| st.pass), Some(true));
        assert_eq!(s.next_rate(), None, "5 s + two 5 s runs do not fit in 14 s");
        let mut s = RateSearch::new(SearchConfig {
            budget_s: 14.0,
            ..SearchConfig::default()
        })
        .unwrap();
        assert_eq!(s.record(10_000.0, false, 5.0), None);
        let step = s.record(10_000.0, true, 5.0).expect("decided: no room");
        assert!(!step.pass && !step.confirmed_fail(), "{step:?}");
        assert_eq!(s.stopped, Some(StopReason::Budget));
        assert!(s.spent_s <= 14.0);
    }

    #[test]
    fn stops_at_the_budget_with_the_best_so_far() {
        let cfg = SearchConfig {
            budget_s: 20.0,
            ..single()
        };
        let s = search_model(100_000.0, cfg, 6.0);
        assert_eq!(s.stopped, Some(StopReason::Budget));
        assert_eq!(s.steps.len(), 3);
        assert!(s.spent_s <= 20.0);
        assert_eq!(s.pass_msgs_per_s, Some(40_000.0));
    }

    #[test]
    fn reports_limits_of_the_range() {
        for cfg in [single(), SearchConfig::default()] {
            let s = search_model(1e9, cfg, 1.0);
            assert_eq!(s.stopped, Some(StopReason::RateMax));
            assert_eq!(s.pass_msgs_per_s, Some(1_000_000.0));
            let s = search_model(10.0, cfg, 1.0);
            assert_eq!(s.stopped, Some(StopReason::RateMin));
            assert_eq!(s.pass_msgs_per_s, None);
        }
    }

    #[test]
    fn a_contradicting_step_reopens_the_bracket() {
        let mut s = RateSearch::new(single()).unwrap();
        s.record(10_000.0, true, 1.0);
        s.record(20_000.0, false, 1.0); // noise: the endpoint really does 30k
        assert_eq!(s.next_rate(), Some(15_000.0));
        s.record(15_000.0, true, 1.0);
        s.record(17_500.0, true, 1.0);
        s.record(20_000.0, true, 1.0); // contradicts the fail at 20k
        assert_eq!(s.fail_msgs_per_s, None);
        assert_eq!(s.next_rate(), Some(40_000.0));
    }

    #[test]
    fn a_latency_floor_probes_up_once_then_stops() {
        // Fails the goal at low rates (linger dominates), passes at 40k..60k (batches fill).
        let mut s = RateSearch::new(single()).unwrap();
        s.record(10_000.0, false, 5.0);
        s.record(5_000.0, false, 5.0);
        s.latency_floor();
        assert_eq!(s.next_rate(), Some(20_000.0));
        s.record(20_000.0, true, 5.0);
        assert_eq!(s.next_rate(), Some(40_000.0));
        // A setting that fails above as well stops, after confirming that fail.
        let mut s = RateSearch::new(SearchConfig::default()).unwrap();
        for r in [10_000.0, 10_000.0, 5_000.0, 5_000.0] {
            s.record(r, false, 5.0);
        }
        s.latency_floor();
        assert_eq!(s.next_rate(), Some(20_000.0));
        assert_eq!(s.record(20_000.0, false, 5.0), None);
        assert_eq!(s.next_rate(), Some(20_000.0));
        s.record(20_000.0, false, 5.0);
        assert_eq!(s.stopped, Some(StopReason::LatencyFloor));
        assert_eq!(s.next_rate(), None);
        assert_eq!(s.pass_msgs_per_s, None);
    }

    #[test]
    fn rejects_bad_configs() {
        let bad = SearchConfig {
            rate_start_msgs_per_s: 100.0,
            ..SearchConfig::default()
        };
        assert!(matches!(
            RateSearch::new(bad),
            Err(SearchConfigError::Bounds { .. })
        ));
        // Room for one run but not for confirming its fail.
        let bad = SearchConfig {
            budget_s: 8.0,
            ..SearchConfig::default()
        };
        assert!(matches!(
            RateSearch::new(bad),
            Err(SearchConfigError::Budget { .. })
        ));
        let bad = SearchConfig {
            fail_confirm_runs: 2,
            ..SearchConfig::default()
        };
        assert!(matches!(
            RateSearch::new(bad),
            Err(SearchConfigError::Confirm(2))
        ));
    }
}
