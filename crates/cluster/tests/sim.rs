//! Deterministic simulation of a metadata cluster: simulated clock and network (seeded loss,
//! delay, duplication, reordering, partitions incl. one-sided, healing), crashes that lose what
//! was not persisted, restarts, and clients issuing admin requests to random nodes.
//!
//! `SIM_SEED=<n> cargo test -p shoal-cluster --test sim` reproduces one seed;
//! `SIM_SEEDS=<count>` (default 300 in release, 30 in debug builds) and `SIM_SEED_BASE` choose
//! the batch run by default.

mod sim_support;

use sim_support::{run_controlled_shutdown, run_seed, SimOutcome, Stats};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn run_reporting(seed: u64) -> Result<SimOutcome, String> {
    let result = std::panic::catch_unwind(|| run_seed(seed));
    match result {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(why)) => Err(format!("SIM_SEED={seed} failed: {why}")),
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("SIM_SEED={seed} panicked: {why}"))
        }
    }
}

#[test]
fn simulated_cluster_keeps_its_invariants() {
    if let Some(seed) = env_u64("SIM_SEED") {
        let outcome = run_reporting(seed).unwrap_or_else(|e| panic!("{e}"));
        eprintln!("seed {seed}: {outcome:?}");
        return;
    }
    // Unoptimized builds run ~15x slower: fewer seeds by default there.
    let default_count = if cfg!(debug_assertions) { 30 } else { 300 };
    let count = env_u64("SIM_SEEDS").unwrap_or(default_count);
    let base = env_u64("SIM_SEED_BASE").unwrap_or(0);
    let started = std::time::Instant::now();
    let mut failures = Vec::new();
    let mut worst_fence_ms = [0, 0];
    let mut acked = 0;
    let mut stats = Stats::default();
    for seed in base..base + count {
        match run_reporting(seed) {
            Ok(o) => {
                if let Some((ms, was_controller)) = o.fence_detect_ms {
                    let w = &mut worst_fence_ms[usize::from(was_controller)];
                    *w = (*w).max(ms);
                }
                acked += o.acked_ops;
                stats.add(&o.stats);
            }
            Err(e) => {
                eprintln!("{e}");
                failures.push(seed);
            }
        }
    }
    eprintln!(
        "{count} seeds in {:.1} s; {acked} acknowledged ops; slowest fencing of a dead broker {} ms, of a dead controller's broker {} ms",
        started.elapsed().as_secs_f64(),
        worst_fence_ms[0],
        worst_fence_ms[1],
    );
    eprintln!("faults and outcomes over all seeds: {stats:?}");
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
}

#[test]
fn controlled_shutdown_moves_leadership_then_fences() {
    for seed in 0..20 {
        run_controlled_shutdown(seed).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
}

#[test]
fn simulation_is_deterministic() {
    for seed in [1, 2, 3, 7] {
        let a = run_seed(seed).unwrap();
        let b = run_seed(seed).unwrap();
        assert_eq!(a, b, "seed {seed} is not reproducible");
    }
}
