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
    #[error("budget must allow at least one step: budget {budget_s} s, step {step_s} s")]
    Budget { budget_s: f64, step_s: f64 },
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
        if self.budget_s.is_nan() || self.budget_s < self.step_estimate_s || self.steps_max == 0 {
            return Err(SearchConfigError::Budget {
                budget_s: self.budget_s,
                step_s: self.step_estimate_s,
            });
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchStep {
    pub rate_msgs_per_s: f64,
    pub pass: bool,
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
        if let Some(r) = self.probe_up_msgs_per_s {
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

    /// Reports the outcome of a step at `rate`. A pass at or above the known failing rate
    /// (or a fail at or below the known passing one) is noise: the contradicted bound is dropped.
    pub fn record(&mut self, rate: f64, pass: bool, elapsed_s: f64) {
        self.steps.push(SearchStep {
            rate_msgs_per_s: rate,
            pass,
            elapsed_s,
        });
        self.spent_s += elapsed_s;
        let probing = self.probe_up_msgs_per_s.take().is_some();
        if probing && !pass {
            self.fail_msgs_per_s = Some(rate);
            self.stopped = Some(StopReason::LatencyFloor);
            return;
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
    }

    fn step_estimate_s(&self) -> f64 {
        if self.steps.is_empty() {
            self.config.step_estimate_s
        } else {
            self.spent_s / self.steps.len() as f64
        }
    }

    fn update_stop(&mut self) {
        let c = &self.config;
        let (p, f) = (self.pass_msgs_per_s, self.fail_msgs_per_s);
        self.stopped = if let (Some(p), Some(f)) = (p, f) {
            (f <= p * (1.0 + c.precision)).then_some(StopReason::Converged)
        } else if p.is_some_and(|p| p >= c.rate_max_msgs_per_s) {
            Some(StopReason::RateMax)
        } else if f.is_some_and(|f| f <= c.rate_min_msgs_per_s) && p.is_none() {
            Some(StopReason::RateMin)
        } else {
            None
        };
        if self.stopped.is_none() {
            if self.steps.len() as u32 >= c.steps_max {
                self.stopped = Some(StopReason::StepsMax);
            } else if self.spent_s + self.step_estimate_s() > c.budget_s {
                self.stopped = Some(StopReason::Budget);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An endpoint that sustains exactly `capacity` msgs/s; each step costs `step_s`.
    fn search_model(capacity: f64, cfg: SearchConfig, step_s: f64) -> RateSearch {
        let mut s = RateSearch::new(cfg).unwrap();
        while let Some(r) = s.next_rate() {
            s.record(r, r <= capacity, step_s);
        }
        s
    }

    #[test]
    fn finds_capacity_within_precision_and_budget() {
        let cfg = SearchConfig::default();
        for capacity in [700.0, 3_333.0, 10_000.0, 27_500.0, 61_000.0, 150_000.0] {
            let s = search_model(capacity, cfg, 5.0);
            let found = s.pass_msgs_per_s.expect("found a passing rate");
            assert!(found <= capacity, "{capacity}: {found}");
            assert!(found >= capacity / 1.1, "{capacity}: found {found}");
            assert!(s.spent_s <= cfg.budget_s, "{capacity}: {} s", s.spent_s);
            assert_eq!(s.stopped, Some(StopReason::Converged), "{capacity}");
        }
    }

    #[test]
    fn stops_at_the_budget_with_the_best_so_far() {
        let cfg = SearchConfig {
            budget_s: 20.0,
            ..SearchConfig::default()
        };
        let s = search_model(100_000.0, cfg, 6.0);
        assert_eq!(s.stopped, Some(StopReason::Budget));
        assert_eq!(s.steps.len(), 3);
        assert!(s.spent_s <= 20.0);
        assert_eq!(s.pass_msgs_per_s, Some(40_000.0));
    }

    #[test]
    fn reports_limits_of_the_range() {
        let s = search_model(1e9, SearchConfig::default(), 1.0);
        assert_eq!(s.stopped, Some(StopReason::RateMax));
        assert_eq!(s.pass_msgs_per_s, Some(1_000_000.0));
        let s = search_model(10.0, SearchConfig::default(), 1.0);
        assert_eq!(s.stopped, Some(StopReason::RateMin));
        assert_eq!(s.pass_msgs_per_s, None);
    }

    #[test]
    fn a_contradicting_step_reopens_the_bracket() {
        let mut s = RateSearch::new(SearchConfig::default()).unwrap();
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
        let mut s = RateSearch::new(SearchConfig::default()).unwrap();
        s.record(10_000.0, false, 5.0);
        s.record(5_000.0, false, 5.0);
        s.latency_floor();
        assert_eq!(s.next_rate(), Some(20_000.0));
        s.record(20_000.0, true, 5.0);
        assert_eq!(s.next_rate(), Some(40_000.0));
        // A setting that fails above as well stops.
        let mut s = RateSearch::new(SearchConfig::default()).unwrap();
        s.record(10_000.0, false, 5.0);
        s.record(5_000.0, false, 5.0);
        s.latency_floor();
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
        let bad = SearchConfig {
            budget_s: 1.0,
            ..SearchConfig::default()
        };
        assert!(matches!(
            RateSearch::new(bad),
            Err(SearchConfigError::Budget { .. })
        ));
    }
}
