//! The whole sweep schedule and its analysis against a model endpoint of known capacity.

use shoal_bench::workload::Workload;
use shoal_tuning::analysis;
use shoal_tuning::driver::{self, Hooks, ModelEndpoint, Phase, Plan, SweepV2, Target};
use shoal_tuning::knobs::{Dimension, Knob};

fn workload() -> Workload {
    Workload::from_toml(
        "name='m'\ntopics=1\npartitions_per_topic=16\nmessage_size=1000\nproducers_per_topic=1\nconsumers_per_subscription=0\nproducer_rate=2000\nduration_s=3\nwarmup_s=1\n",
    )
    .unwrap()
}

fn plan(targets: usize, goal_ms: Option<f64>) -> Plan {
    let dims = vec![
        Dimension::parse(Knob::LingerMs, "0,5").unwrap(),
        Dimension::parse(Knob::BatchSize, "16k,1M").unwrap(),
    ];
    let targets = (0..targets)
        .map(|i| Target {
            name: format!("t{i}"),
            brokers: format!("model:{i}"),
            description: "model".into(),
        })
        .collect();
    Plan::model(workload(), targets, dims, goal_ms, 2000.0, 7).unwrap()
}

fn run(p: Plan, capacity: Vec<f64>) -> (SweepV2, ModelEndpoint) {
    let mut ep = ModelEndpoint {
        capacity_msgs_per_s: capacity,
        step_s: 5.0,
        calls: Vec::new(),
    };
    let mut log = |_: &str| {};
    let mut save = |_: &SweepV2, _: Option<&str>| Ok(None);
    let s = driver::run_sweep(
        p,
        "test".into(),
        &mut ep,
        Hooks {
            log: &mut log,
            save: &mut save,
        },
    )
    .unwrap();
    (s, ep)
}

#[test]
fn rate_search_model_finds_capacity_within_10_percent_within_budget() {
    let (s, _) = run(plan(1, None), vec![30_000.0]);
    for rec in &s.searches {
        let batch: u64 = s.plan.settings[rec.setting]
            .get(Knob::BatchSize)
            .unwrap()
            .parse()
            .unwrap();
        // The model's capacity for this batch size.
        let cap = 30_000.0 * (1.0 + 0.1 * batch.ilog2() as f64 / 20.0);
        let found = rec.search.pass_msgs_per_s.unwrap();
        assert!(
            found <= cap && found >= cap * 0.9,
            "{}: {found} vs {cap}",
            rec.setting
        );
        assert!(rec.search.spent_s <= s.plan.search.budget_s);
    }
}

#[test]
fn every_curve_point_runs_in_shuffled_rounds_between_reference_runs() {
    let (s, ep) = run(plan(1, None), vec![30_000.0]);
    let phases: Vec<Phase> = s.runs.iter().map(|r| r.phase).collect();
    assert!(phases[..3].iter().all(|p| *p == Phase::ReferenceStart));
    assert!(phases[phases.len() - 3..]
        .iter()
        .all(|p| *p == Phase::ReferenceEnd));
    // All four settings reach the grid (capacities within 10 %): each runs the grid's 4
    // rates and those of its own fractions below the grid (25 %, and 50 % if its search
    // result is below the top).
    let grid = s.grid.as_ref().expect("a shared grid");
    assert_eq!(grid.settings, vec![0, 1, 2, 3]);
    assert_eq!(grid.rates_msgs_per_s.len(), 4);
    let curve: Vec<_> = s
        .runs
        .iter()
        .filter(|r| matches!(r.phase, Phase::Curve | Phase::Grid))
        .collect();
    let own = curve.iter().filter(|r| r.phase == Phase::Curve).count();
    assert!((4 * 3..=4 * 2 * 3).contains(&own), "{own}");
    assert_eq!(curve.len(), own + 4 * 4 * 3);
    for r in curve.iter().filter(|r| r.phase == Phase::Curve) {
        assert!(r.rate_msgs_per_s < 0.95 * grid.rates_msgs_per_s[0], "{r:?}");
    }
    // The grid is the same absolute rates for every setting.
    for st in 0..4 {
        let mut rates: Vec<u64> = curve
            .iter()
            .filter(|r| r.phase == Phase::Grid && r.setting == Some(st) && r.rep == 0)
            .map(|r| r.rate_msgs_per_s as u64)
            .collect();
        rates.sort();
        let want: Vec<u64> = grid.rates_msgs_per_s.iter().map(|&r| r as u64).collect();
        assert_eq!(rates, want, "setting {st}");
    }
    // Each round holds every point once, and rounds are not in the same order.
    let round = |k: u32| {
        curve
            .iter()
            .filter(|r| r.rep == k)
            .map(|r| {
                (
                    r.setting.unwrap(),
                    r.phase == Phase::Grid,
                    r.fraction.unwrap().to_bits(),
                )
            })
            .collect::<Vec<_>>()
    };
    let (r0, r1) = (round(0), round(1));
    assert_eq!(r0.len(), curve.len() / 3);
    let mut a = r0.clone();
    let mut b = r1.clone();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    assert_ne!(r0, r1, "rounds must be shuffled independently");
    // Searches interleave: the first search steps are not all one setting.
    let first: Vec<usize> = s
        .runs
        .iter()
        .filter(|r| r.phase == Phase::Search)
        .take(4)
        .map(|r| r.setting.unwrap())
        .collect();
    let mut d = first.clone();
    d.sort();
    d.dedup();
    assert_eq!(d.len(), 4, "{first:?}");
    assert_eq!(ep.calls.len(), s.runs.len());
}

#[test]
fn latency_goal_limits_the_rate_and_ties_are_named() {
    // p99 = linger + 0.5 ms / (1 - load): with a 10 ms goal linger 5 is capped lower.
    let (s, _) = run(plan(1, Some(10.0)), vec![30_000.0]);
    let a = analysis::analyse(&s);
    let r = &a.recommendations[0];
    let pick = &a.settings[r.pick.unwrap()];
    // The model's settings differ by 3-6% in capacity: within the 10% search precision.
    assert!(pick.label.starts_with("l=0"), "{}", pick.label);
    assert!(!r.clear, "{r:?}");
    assert!(r.within_noise.len() >= 2, "{r:?}");
    assert_eq!(
        pick.label, "l=0 b=16k",
        "tie-break: lowest linger, smallest batch"
    );
}

#[test]
fn compare_runs_the_same_rates_on_both_targets() {
    let (s, _) = run(plan(2, None), vec![30_000.0, 15_000.0]);
    let a = analysis::analyse(&s);
    let rate_of = |t: usize| {
        let mut v: Vec<(usize, u64, u64)> = a
            .points
            .iter()
            .filter(|p| p.target == t)
            .map(|p| (p.setting, p.fraction.to_bits(), p.rate_msgs_per_s as u64))
            .collect();
        v.sort();
        v
    };
    assert_eq!(rate_of(0), rate_of(1));
    let cap = |t: usize| {
        s.searches
            .iter()
            .find(|r| r.target == t && r.setting == 0)
            .unwrap()
            .search
            .pass_msgs_per_s
            .unwrap()
    };
    let ratio = cap(1) / cap(0);
    assert!((0.45..0.55).contains(&ratio), "{ratio}");
}

#[test]
fn an_unmet_goal_says_so_and_ranks_by_throughput() {
    // The model's p99 is at least 0.5 ms: a 0.1 ms goal is never met.
    let (s, _) = run(plan(1, Some(0.1)), vec![30_000.0]);
    let a = analysis::analyse(&s);
    let r = &a.recommendations[0];
    assert!(!r.goal_met, "{r:?}");
    assert!(
        r.explanation.contains("NO setting met p99"),
        "{}",
        r.explanation
    );
    let pick = &a.settings[r.pick.expect("ranked by throughput")];
    assert!(pick.sustained_msgs_per_s.is_some());
}

#[test]
fn two_sweeps_of_the_same_model_agree_and_different_ones_do_not() {
    let (a, _) = run(plan(1, Some(10.0)), vec![30_000.0]);
    let mut p = plan(1, Some(10.0));
    p.seed = 99;
    let (b, _) = run(p, vec![30_000.0]);
    let v = analysis::agreement(&a, &b);
    assert!(v.agree, "{}", v.text);
    // Only l=5 and 1M batches: a different question, a different answer.
    let mut p = plan(1, Some(10.0));
    p.settings.retain(|s| s.label == "l=5 b=1M");
    let (c, _) = run(p, vec![30_000.0]);
    let v = analysis::agreement(&a, &c);
    assert!(!v.agree, "{}", v.text);
}

#[test]
fn a_missed_goal_breaks_ties_by_the_lowest_p99() {
    let (s, _) = run(plan(1, Some(0.1)), vec![30_000.0]);
    let a = analysis::analyse(&s);
    let r = &a.recommendations[0];
    assert_eq!(r.tie_break, analysis::TIE_BREAK_GOAL_MISSED);
    let p99 = |i: usize| a.settings[i].p99_ms_at_sustained.unwrap().median;
    let pick = r.pick.unwrap();
    for &i in &r.within_noise {
        assert!(
            p99(pick) <= p99(i),
            "{} vs {}",
            a.settings[pick].label,
            a.settings[i].label
        );
    }
}

fn summary(
    s: &SweepV2,
    setting: usize,
    sustained: f64,
    failed: f64,
    grid: &[usize],
) -> shoal_tuning::analysis::SettingSummary {
    use shoal_tuning::analysis::{GridCount, SettingSummary, Spread};
    SettingSummary {
        target: 0,
        setting,
        label: s.plan.settings[setting].label.clone(),
        search_pass_msgs_per_s: None,
        search_fail_msgs_per_s: None,
        search_steps: 0,
        search_spent_s: 0.0,
        sustained_msgs_per_s: Some(sustained),
        sustained_mb_per_s: Some(sustained / 1000.0),
        failed_msgs_per_s: Some(failed),
        p99_ms_at_sustained: Some(Spread::of([7.0]).unwrap()),
        grid: grid
            .iter()
            .enumerate()
            .map(|(k, &passes)| GridCount {
                rate_msgs_per_s: 10_000 * (k as u64 + 1),
                passes,
                reps: 3,
            })
            .collect(),
    }
}

#[test]
fn failing_where_the_best_held_is_worse_not_tied() {
    let (s, _) = run(plan(1, Some(10.0)), vec![30_000.0]);
    // Off the grid: setting 0 held 2,500 and failed at 5,000, where setting 1 held.
    let ss = vec![
        summary(&s, 0, 2_500.0, 5_000.0, &[]),
        summary(&s, 1, 5_000.0, 7_500.0, &[]),
    ];
    let r = analysis::recommend(&s, &ss, 0);
    assert_eq!(r.pick, Some(1));
    assert!(r.clear, "{r:?}");
    // Failing just above the best's rate: within noise, and the tie-break picks linger 0.
    let ss = vec![
        summary(&s, 0, 2_500.0, 5_100.0, &[]),
        summary(&s, 1, 5_000.0, 7_500.0, &[]),
    ];
    let r = analysis::recommend(&s, &ss, 0);
    assert!(!r.clear);
    assert_eq!(r.pick, Some(0));
}

#[test]
fn settings_on_the_shared_grid_are_compared_there_only() {
    let (s, _) = run(plan(1, Some(10.0)), vec![30_000.0]);
    // 12 shared runs each: the margin is 5 passes, and a rate the best held and the other
    // failed in a majority.
    assert_eq!(analysis::grid_margin(12), 5);
    // 11 vs 7: 4 fewer, within noise, although setting 0's curve "failed" below the best's
    // sustained rate (the grid, same rates and runs for both, overrides that).
    let ss = vec![
        summary(&s, 0, 30_000.0, 30_000.0, &[3, 3, 1, 0]),
        summary(&s, 1, 40_000.0, 50_000.0, &[3, 3, 3, 2]),
    ];
    let r = analysis::recommend(&s, &ss, 0);
    assert_eq!(r.best, Some(1));
    assert!(!r.clear, "{r:?}");
    assert_eq!(r.within_noise, vec![1, 0]);
    assert_eq!(r.pick, Some(0), "tie-break: lowest linger");
    assert!(!r.comparisons[0].beaten);
    // 11 vs 5, and 3/3 against 0/3 at 30,000 msg/s: beaten.
    let ss = vec![
        summary(&s, 0, 20_000.0, 30_000.0, &[3, 2, 0, 0]),
        summary(&s, 1, 40_000.0, 50_000.0, &[3, 3, 3, 2]),
    ];
    let r = analysis::recommend(&s, &ss, 0);
    assert!(r.clear, "{r:?}");
    assert_eq!(r.pick, Some(1));
    assert!(
        r.comparisons[0].reason.contains("30000 msg/s 3/3 vs 0/3"),
        "{}",
        r.comparisons[0].reason
    );
    // A setting off the grid is beaten by a confirmed fail below the best's sustained rate.
    let ss = vec![
        summary(&s, 0, 8_000.0, 9_000.0, &[]),
        summary(&s, 1, 40_000.0, 50_000.0, &[3, 3, 3, 2]),
        summary(&s, 2, 40_000.0, 50_000.0, &[3, 3, 3, 1]),
    ];
    let r = analysis::recommend(&s, &ss, 0);
    assert_eq!(r.within_noise, vec![1, 2]);
    assert_eq!(r.pick, Some(1), "l=0 b=1M: linger 0 first");
}
