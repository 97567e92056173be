//! `shoal-tune`: sweep producer settings against a broker, or check the host.

use clap::{Args, Parser, Subcommand};
use shoal_bench::plot::{self, ScatterPoint};
use shoal_bench::workload::Workload;
use shoal_tuning::driver::{self, Hooks, Plan, SweepError, SweepV2, Target};
use shoal_tuning::host;
use shoal_tuning::knobs::{self, Dimension, Knob};
use shoal_tuning::search::SearchConfig;
use shoal_tuning::step::Criteria;
use shoal_tuning::sweep::{self, Goal, Sweep, SWEEP_FORMAT};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "shoal-tune",
    version,
    about = "Find producer settings for a throughput/latency goal; check the host"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone, Copy)]
struct GoalArgs {
    /// Goal: most throughput with publish p99 <= this (ms).
    #[arg(long, conflicts_with = "min_mb_per_s")]
    max_p99_ms: Option<f64>,
    /// Goal: lowest publish p99 with at least this throughput (MB/s).
    #[arg(long)]
    min_mb_per_s: Option<f64>,
}

impl GoalArgs {
    fn goal(self) -> Goal {
        match (self.max_p99_ms, self.min_mb_per_s) {
            (_, Some(mb)) => Goal::MinP99 { mb_per_s_min: mb },
            (Some(ms), None) => Goal::MaxThroughput { p99_ms_max: ms },
            (None, None) => Goal::MaxThroughput { p99_ms_max: 5.0 },
        }
    }
}

#[derive(Args, Clone)]
struct SweepArgs {
    workload: PathBuf,
    /// Bootstrap servers of an endpoint; twice for `compare`.
    #[arg(long, required = true)]
    brokers: Vec<String>,
    /// What runs at each --brokers (recorded in the report), in the same order.
    #[arg(long)]
    broker_info: Vec<String>,
    /// linger.ms values (comma separated).
    #[arg(long, default_value = "0,1,5,20")]
    linger: String,
    /// batch.size values, k/M suffixes allowed.
    #[arg(long, default_value = "16k,128k,1M")]
    batch: String,
    /// Optional knobs (comma-separated values; default: the workload's).
    #[arg(long)]
    acks: Option<String>,
    #[arg(long)]
    compression: Option<String>,
    /// max.in.flight.requests.per.connection values.
    #[arg(long)]
    max_in_flight: Option<String>,
    /// enable.idempotence values (true,false).
    #[arg(long)]
    idempotence: Option<String>,
    #[arg(long)]
    partitions: Option<String>,
    /// Message sizes (bytes).
    #[arg(long)]
    message_size: Option<String>,
    /// Consumer fetch.min.bytes values (needs a workload with consumers).
    #[arg(long)]
    fetch_min_bytes: Option<String>,
    /// Consumer fetch.wait.max.ms values (needs a workload with consumers).
    #[arg(long)]
    fetch_wait_max_ms: Option<String>,
    /// Latency goal: a rate only counts as sustained with publish p99 <= this (ms).
    #[arg(long)]
    max_p99_ms: Option<f64>,
    /// Runs of every curve point (and of the reference point at start and end).
    #[arg(long, default_value_t = 3)]
    repetitions: u32,
    /// Fractions of the discovered rate for the curves.
    #[arg(long, default_value = "0.25,0.5,0.75,1")]
    fractions: String,
    /// The shared grid: fractions of the highest search result that every setting near the
    /// top runs (the same absolute rates for all, compared like for like); "none" for no grid.
    #[arg(long, default_value = "0.5,0.667,0.833,1")]
    grid: String,
    /// Runs that decide a rate-search step whose first run failed (a majority must fail;
    /// 1 = single runs).
    #[arg(long, default_value_t = 3)]
    search_confirm: u32,
    /// Measured seconds of a rate-search run (default: --duration-s); the repeated curve and
    /// grid points, which decide, keep --duration-s.
    #[arg(long)]
    search_duration_s: Option<u64>,
    /// Rate search: first rate, bounds (msgs/s), precision, and wall-time budget per setting (s).
    #[arg(long, default_value_t = 10_000.0)]
    rate_start: f64,
    #[arg(long, default_value_t = 500.0)]
    rate_min: f64,
    #[arg(long, default_value_t = 1_000_000.0)]
    rate_max: f64,
    #[arg(long, default_value_t = 0.1)]
    precision: f64,
    #[arg(long, default_value_t = 60.0)]
    search_budget_s: f64,
    #[arg(long, default_value_t = 12)]
    search_steps_max: u32,
    /// Rate of the reference point (the workload's own settings; default: its producer_rate).
    #[arg(long)]
    reference_rate: Option<f64>,
    /// Step length (overrides the workload).
    #[arg(long)]
    duration_s: Option<u64>,
    #[arg(long)]
    warmup_s: Option<u64>,
    /// Seed of the shuffled order (default: from the clock; recorded).
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, default_value = "tune")]
    out: PathBuf,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once
enum Cmd {
    /// Rate discovery per setting, then curves at fractions of each setting's rate, every
    /// point repeated in shuffled rounds; writes sweep.json and report.html.
    Sweep(SweepArgs),
    /// The same sweep against two endpoints in one sitting (give --brokers twice), interleaved;
    /// the report adds the ratio point by point.
    Compare(SweepArgs),
    /// Re-write report.html, the charts and recommendation.md of a finished (or interrupted) sweep.
    Report {
        sweep: PathBuf,
        /// Change the latency goal for the recommendation (default: the sweep's).
        #[arg(long)]
        max_p99_ms: Option<f64>,
    },
    /// Do two sweeps (e.g. the same command run twice) agree on their recommendation, or on
    /// the set of settings within noise of each other? Exit 1 if not.
    Agree { first: PathBuf, second: PathBuf },
    /// (shoal-tune/1 sweeps) Re-evaluate a finished sweep for another goal.
    Recommend {
        sweep: PathBuf,
        #[command(flatten)]
        goal: GoalArgs,
    },
    /// Report io_uring, memlock, CPU governor, THP, IRQ affinity, disk scheduler and what to change.
    HostCheck {
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("shoal-tune: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<ExitCode, String> {
    match Cli::parse().cmd {
        Cmd::HostCheck { json } => {
            let checks = host::host_check(Path::new("/"), &host::Probes::detect());
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&checks).map_err(|e| e.to_string())?
                );
            } else {
                print!("{}", host::render(&checks));
            }
            let fail = checks.iter().any(|c| c.level == host::Level::Fail);
            Ok(if fail {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        Cmd::Recommend { sweep, goal } => {
            let text = std::fs::read_to_string(&sweep)
                .map_err(|e| format!("read {}: {e}", sweep.display()))?;
            let s: Sweep = serde_json::from_str(&text)
                .map_err(|e| format!("{} is not a shoal-tune sweep: {e}", sweep.display()))?;
            if s.format != SWEEP_FORMAT {
                return Err(format!(
                    "{}: format {:?}, expected {SWEEP_FORMAT:?}",
                    sweep.display(),
                    s.format
                ));
            }
            let dir = sweep.parent().unwrap_or(Path::new("."));
            finish(&s, goal.goal(), dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Agree { first, second } => agree_cmd(&first, &second),
        Cmd::Sweep(args) => sweep_cmd(args, false),
        Cmd::Compare(args) => sweep_cmd(args, true),
        Cmd::Report { sweep, max_p99_ms } => {
            let mut s = shoal_tuning::report::load(&sweep).map_err(|e| e.to_string())?;
            if let Some(g) = max_p99_ms {
                s.plan.criteria.p99_ms_max = Some(g);
            }
            let dir = sweep.parent().unwrap_or(Path::new("."));
            report_cmd(&s, dir)
        }
    }
}

/// Frontier plot, table and recommendation for a finished sweep.
fn finish(s: &Sweep, goal: Goal, dir: &Path) -> Result<(), String> {
    let front = sweep::frontier(&s.points);
    let pick = sweep::recommend(&s.points, goal);
    let pick_idx = pick.as_ref().ok().copied();
    let points: Vec<ScatterPoint> = s
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| ScatterPoint {
            x: p.publish_mb_per_s,
            y_ms: p.p99_us as f64 / 1000.0,
            label: if p.eligible() {
                p.label.clone()
            } else {
                format!("{} (missed rate/errors)", p.label)
            },
            highlight: Some(i) == pick_idx,
        })
        .collect();
    let w = &s.workload;
    let title = format!(
        "{}: publish p99 vs throughput ({} B msgs, acks={}, {} partitions)",
        w.name, w.message_size, w.producer.acks, w.partitions_per_topic
    );
    let limit = match goal {
        Goal::MaxThroughput { p99_ms_max } => Some(p99_ms_max),
        Goal::MinP99 { .. } => None,
    };
    let svg = plot::frontier_chart(
        &title,
        "Publish throughput (MB/s, acknowledged)",
        "Publish latency p99 (ms, log scale)",
        &points,
        &front,
        limit,
    )?;
    let (paths, warning) = plot::write_chart(dir, "frontier", &svg)?;
    if let Some(w) = warning {
        eprintln!("shoal-tune: warning: {w}");
    }
    let table = sweep::table(s, &front, pick_idx);
    let rec = match &pick {
        Ok(i) => sweep::recommendation_text(s, goal, *i),
        Err(e) => format!("Goal: {}\nNo recommendation: {e}\n", goal.describe()),
    };
    let md = format!(
        "# shoal-tune sweep: {}\n\nBrokers: {}\n\n{table}\n```\n{rec}```\n",
        w.name, s.brokers
    );
    std::fs::write(dir.join("recommendation.md"), &md)
        .map_err(|e| format!("write recommendation.md: {e}"))?;
    println!("{table}");
    println!("{rec}");
    for p in paths {
        println!("wrote {}", p.display());
    }
    println!("wrote {}", dir.join("recommendation.md").display());
    Ok(())
}

fn dimensions(a: &SweepArgs, w: &Workload) -> Result<Vec<Dimension>, knobs::KnobError> {
    let mut dims = vec![
        Dimension::parse(Knob::LingerMs, &a.linger)?,
        Dimension::parse(Knob::BatchSize, &a.batch)?,
    ];
    let optional = [
        (Knob::Acks, &a.acks),
        (Knob::Compression, &a.compression),
        (Knob::MaxInFlight, &a.max_in_flight),
        (Knob::Idempotence, &a.idempotence),
        (Knob::Partitions, &a.partitions),
        (Knob::MessageSize, &a.message_size),
        (Knob::FetchMinBytes, &a.fetch_min_bytes),
        (Knob::FetchWaitMaxMs, &a.fetch_wait_max_ms),
    ];
    for (knob, list) in optional {
        if let Some(list) = list {
            dims.push(Dimension::parse(knob, list)?);
        }
    }
    let consumer_knob = dims
        .iter()
        .any(|d| matches!(d.knob, Knob::FetchMinBytes | Knob::FetchWaitMaxMs));
    if consumer_knob && w.consumers() == 0 {
        eprintln!("shoal-tune: warning: fetch.* knobs do nothing: the workload has no consumers");
    }
    Ok(dims)
}

fn plan(a: &SweepArgs, compare: bool) -> Result<Plan, String> {
    let mut w = Workload::from_path(&a.workload)?;
    if let Some(d) = a.duration_s {
        w.duration_s = d;
    }
    if let Some(d) = a.warmup_s {
        w.warmup_s = d;
    }
    if compare != (a.brokers.len() == 2) || a.brokers.len() > 2 {
        return Err(if compare {
            "compare needs --brokers twice".into()
        } else {
            "sweep takes one --brokers (use compare for two)".into()
        });
    }
    let targets = a
        .brokers
        .iter()
        .enumerate()
        .map(|(i, b)| Target {
            name: format!("t{i}"),
            brokers: b.clone(),
            description: a.broker_info.get(i).cloned().unwrap_or_default(),
        })
        .collect();
    let dims = dimensions(a, &w).map_err(|e| e.to_string())?;
    let settings = knobs::settings(&dims).map_err(|e| e.to_string())?;
    let search_step_s = (w.warmup_s + a.search_duration_s.unwrap_or(w.duration_s)) as f64 + 2.0;
    let seed = a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    });
    Ok(Plan {
        reference_rate_msgs_per_s: a.reference_rate.unwrap_or(w.producer_rate.max(1.0)),
        workload: w,
        targets,
        dimensions: dims,
        settings,
        criteria: Criteria {
            p99_ms_max: a.max_p99_ms,
            ..Criteria::default()
        },
        search: SearchConfig {
            rate_start_msgs_per_s: a.rate_start,
            rate_min_msgs_per_s: a.rate_min,
            rate_max_msgs_per_s: a.rate_max,
            growth_factor: 2.0,
            precision: a.precision,
            budget_s: a.search_budget_s,
            steps_max: a.search_steps_max,
            step_estimate_s: search_step_s,
            fail_confirm_runs: a.search_confirm,
        },
        fractions: sweep::parse_list("--fractions", &a.fractions)?,
        grid_fractions: if a.grid.trim() == "none" {
            Vec::new()
        } else {
            sweep::parse_list("--grid", &a.grid)?
        },
        search_duration_s: a.search_duration_s,
        repetitions: a.repetitions,
        seed,
    })
}

fn sweep_cmd(a: SweepArgs, compare: bool) -> Result<ExitCode, String> {
    let plan = plan(&a, compare)?;
    plan.validate().map_err(|e| e.to_string())?;
    let out = a.out.clone();
    std::fs::create_dir_all(out.join("points"))
        .map_err(|e| format!("create {}: {e}", out.display()))?;
    let step_s = (plan.workload.warmup_s + plan.workload.duration_s) as f64 + 2.0;
    let n_units = plan.settings.len() * plan.targets.len();
    // At most: every setting runs every curve fraction and the grid (a setting on the grid
    // skips the fractions the grid covers).
    let curve_runs =
        n_units * (plan.fractions.len() + plan.grid_fractions.len()) * plan.repetitions as usize;
    eprintln!(
        "shoal-tune: {} settings x {} target(s); search <= {:.0} s each (<= {:.0} min; failing steps confirmed by a majority of {}), then <= {} curve and grid runs + {} reference runs of ~{:.0} s (<= {:.0} min); seed {}",
        plan.settings.len(),
        plan.targets.len(),
        plan.search.budget_s,
        n_units as f64 * plan.search.budget_s / 60.0,
        plan.search.fail_confirm_runs,
        curve_runs,
        2 * plan.repetitions as usize * plan.targets.len(),
        step_s,
        (curve_runs as f64 + 2.0 * plan.repetitions as f64) * step_s / 60.0,
        plan.seed
    );
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut endpoint = shoal_tuning::live::KafkaEndpoint {
        topic_prefix: format!("shoal-tune-{:x}", plan.seed),
    };
    let mut log = |line: &str| eprintln!("{line}");
    let out2 = out.clone();
    let mut save = move |s: &SweepV2, result: Option<&str>| save_progress(&out2, s, result);
    let s = driver::run_sweep(
        plan,
        command,
        &mut endpoint,
        Hooks {
            log: &mut log,
            save: &mut save,
        },
    )
    .map_err(|e| e.to_string())?;
    report_cmd(&s, &out)
}

fn save_progress(
    dir: &Path,
    s: &SweepV2,
    result: Option<&str>,
) -> Result<Option<String>, SweepError> {
    let write = |rel: &str, text: &str| {
        std::fs::write(dir.join(rel), text).map_err(|e| SweepError::Write {
            path: dir.join(rel).display().to_string(),
            reason: e.to_string(),
        })
    };
    let rel = match result {
        Some(json) => {
            let rel = format!("points/{:03}.json", s.runs.len().saturating_sub(1));
            write(&rel, json)?;
            Some(rel)
        }
        None => None,
    };
    let mut s = s.clone();
    if let (Some(r), Some(last)) = (&rel, s.runs.last_mut()) {
        last.result = Some(r.clone());
    }
    let text = serde_json::to_string_pretty(&s).map_err(|e| SweepError::Config(e.to_string()))?;
    write("sweep.json", &text)?;
    Ok(rel)
}

fn report_cmd(s: &SweepV2, dir: &Path) -> Result<ExitCode, String> {
    let written = shoal_tuning::report::write_all(s, dir).map_err(|e| e.to_string())?;
    for p in written {
        println!("wrote {}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn agree_cmd(first: &Path, second: &Path) -> Result<ExitCode, String> {
    let load = |p: &Path| shoal_tuning::report::load(p).map_err(|e| e.to_string());
    let (a, b) = (load(first)?, load(second)?);
    let verdict = shoal_tuning::analysis::agreement(&a, &b);
    print!("{}", verdict.text);
    Ok(if verdict.agree {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
