//! `shoal-tune`: sweep producer settings against a broker, or check the host.

use clap::{Args, Parser, Subcommand};
use shoal_bench::kafka::{self, RunOptions};
use shoal_bench::plot::{self, ScatterPoint};
use shoal_bench::report;
use shoal_bench::workload::Workload;
use shoal_tuning::host;
use shoal_tuning::sweep::{self, Goal, Grid, Sweep, SweepPoint, SWEEP_FORMAT};
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

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once
enum Cmd {
    /// Run the workload once per combination and recommend settings (default goal: p99 <= 5 ms).
    Sweep {
        workload: PathBuf,
        #[arg(long)]
        brokers: String,
        /// linger.ms values (comma separated).
        #[arg(long, default_value = "0,1,5,20")]
        linger: String,
        /// batch.size values, k/M suffixes allowed.
        #[arg(long, default_value = "16k,128k,1M")]
        batch: String,
        /// acks values (default: the workload's).
        #[arg(long)]
        acks: Option<String>,
        /// compression.type values (default: the workload's).
        #[arg(long)]
        compression: Option<String>,
        /// Partition counts (default: the workload's).
        #[arg(long)]
        partitions: Option<String>,
        /// Target rates in msgs/s, 0 = max (default: the workload's).
        #[arg(long)]
        rates: Option<String>,
        #[arg(long)]
        duration_s: Option<u64>,
        #[arg(long)]
        warmup_s: Option<u64>,
        #[arg(long, default_value = "tune")]
        out: PathBuf,
        #[command(flatten)]
        goal: GoalArgs,
    },
    /// Re-evaluate a finished sweep for another goal (rewrites the plot and recommendation).
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
        Cmd::Sweep {
            workload,
            brokers,
            linger,
            batch,
            acks,
            compression,
            partitions,
            rates,
            duration_s,
            warmup_s,
            out,
            goal,
        } => {
            let mut w = Workload::from_path(&workload)?;
            if let Some(d) = duration_s {
                w.duration_s = d;
            }
            if let Some(d) = warmup_s {
                w.warmup_s = d;
            }
            let grid = Grid {
                linger_ms: sweep::parse_list("--linger", &linger)?,
                batch_size: sweep::parse_list("--batch", &batch)?,
                acks: acks
                    .map(|a| a.split(',').map(|s| s.trim().to_string()).collect())
                    .unwrap_or_else(|| vec![w.producer.acks.clone()]),
                compression: compression
                    .map(|a| a.split(',').map(|s| s.trim().to_string()).collect())
                    .unwrap_or_else(|| vec![w.producer.compression.clone()]),
                partitions: match partitions {
                    Some(p) => sweep::parse_list("--partitions", &p)?,
                    None => vec![w.partitions_per_topic],
                },
                rates: match rates {
                    Some(r) => sweep::parse_list("--rates", &r)?,
                    None => vec![w.producer_rate],
                },
            };
            let settings = grid.points()?;
            for p in &settings {
                sweep::apply(&w, p)?; // validate everything before the first run
            }
            std::fs::create_dir_all(out.join("points"))
                .map_err(|e| format!("create {}: {e}", out.display()))?;
            let per_run = w.warmup_s + w.duration_s + 3;
            eprintln!(
                "shoal-tune: {} points x ~{} s = ~{} min against {}",
                settings.len(),
                per_run,
                (settings.len() as u64 * per_run).div_ceil(60),
                brokers
            );
            let mut s = Sweep {
                format: SWEEP_FORMAT.into(),
                workload: w.clone(),
                brokers: brokers.clone(),
                grid: grid.clone(),
                points: Vec::new(),
            };
            for (i, p) in settings.iter().enumerate() {
                let label = grid.label(p);
                let pw = sweep::apply(&w, p)?;
                let r = kafka::run(
                    &pw,
                    &RunOptions {
                        brokers: brokers.clone(),
                        label: Some(label.clone()),
                        topic_prefix: "shoal-tune".into(),
                        progress: false,
                        on_start: None,
                    },
                )
                .map_err(|e| format!("point {label}: {e}"))?;
                let rel = format!("points/{i:03}.json");
                std::fs::write(
                    out.join(&rel),
                    serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?,
                )
                .map_err(|e| format!("write {rel}: {e}"))?;
                let sp = SweepPoint::from_result(label.clone(), p.clone(), rel, &r);
                eprintln!(
                    "shoal-tune: [{}/{}] {label}: {:.0} msg/s {:.2} MB/s p50 {} ms p99 {} ms p99.9 {} ms errors {}",
                    i + 1,
                    settings.len(),
                    sp.publish_msgs_per_s,
                    sp.publish_mb_per_s,
                    report::fmt_ms(sp.p50_us),
                    report::fmt_ms(sp.p99_us),
                    report::fmt_ms(sp.p999_us),
                    sp.errors
                );
                s.points.push(sp);
                // Save as we go so an interrupted sweep keeps its points.
                std::fs::write(
                    out.join("sweep.json"),
                    serde_json::to_string_pretty(&s).map_err(|e| e.to_string())?,
                )
                .map_err(|e| format!("write sweep.json: {e}"))?;
            }
            finish(&s, goal.goal(), &out)?;
            Ok(ExitCode::SUCCESS)
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
