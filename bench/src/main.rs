//! `shoal-bench`: run a workload against any Kafka-compatible broker, or compare results.

use clap::{Parser, Subcommand};
use shoal_bench::kafka::{self, RunOptions};
use shoal_bench::result::BenchResult;
use shoal_bench::workload::Workload;
use shoal_bench::{broker_metrics, compare, report};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "shoal-bench",
    version,
    about = "Throughput and tail-latency benchmark for Kafka-compatible brokers (librdkafka client)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a workload file and write result.json plus charts into --out.
    Run {
        workload: PathBuf,
        /// Bootstrap servers, e.g. 127.0.0.1:9092.
        #[arg(long)]
        brokers: String,
        /// Output folder (default: results/<workload>-<unix time>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Label for charts and compare tables.
        #[arg(long)]
        label: Option<String>,
        /// Override the target rate (msgs/s, 0 = max).
        #[arg(long)]
        rate: Option<f64>,
        #[arg(long)]
        duration_s: Option<u64>,
        #[arg(long)]
        warmup_s: Option<u64>,
        /// Producer property overrides, e.g. --set linger.ms=5 --set acks=1.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        #[arg(long, default_value = "shoal-bench")]
        topic_prefix: String,
        #[arg(long)]
        quiet: bool,
        /// The broker's Prometheus page (Shoal: http://127.0.0.1:9644/metrics), scraped before
        /// and after: prints the broker-side stage breakdown, writes broker-metrics.json.
        #[arg(long)]
        broker_metrics: Option<String>,
    },
    /// Overlay 2..8 result.json files in one chart set and one table.
    Compare {
        results: Vec<PathBuf>,
        #[arg(long, default_value = "compare")]
        out: PathBuf,
    },
    /// Re-draw the charts and summary of a result.json.
    Report {
        result: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shoal-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Applies `--set key=value` to the workload's producer settings.
pub fn apply_sets(w: &mut Workload, sets: &[String]) -> Result<(), String> {
    shoal_bench::workload::apply_producer_sets(&mut w.producer, sets)?;
    w.validate()
}

fn real_main() -> Result<(), String> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run {
            workload,
            brokers,
            out,
            label,
            rate,
            duration_s,
            warmup_s,
            set,
            topic_prefix,
            quiet,
            broker_metrics,
        } => {
            let mut w = Workload::from_path(&workload)?;
            if let Some(r) = rate {
                w.producer_rate = r;
            }
            if let Some(d) = duration_s {
                w.duration_s = d;
            }
            if let Some(d) = warmup_s {
                w.warmup_s = d;
            }
            apply_sets(&mut w, &set)?;
            let out = out.unwrap_or_else(|| {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                PathBuf::from(format!("results/{}-{t}", w.name))
            });
            let scrape =
                |url: &String| broker_metrics::fetch(url).map(|p| broker_metrics::parse(&p));
            let before = broker_metrics.as_ref().map(scrape).transpose()?;
            let r = kafka::run(
                &w,
                &RunOptions {
                    brokers,
                    label,
                    topic_prefix,
                    progress: !quiet,
                    on_start: None,
                },
            )?;
            let (mut paths, warnings) = report::write_run(&r, &out)?;
            print!("{}", report::summary(&r));
            if let (Some(url), Some(before)) = (&broker_metrics, before) {
                let stages = broker_metrics::breakdown(&before, &scrape(url)?);
                print!("{}", broker_metrics::render(&stages));
                let path = out.join("broker-metrics.json");
                let json = serde_json::to_string_pretty(&stages).map_err(|e| e.to_string())?;
                std::fs::write(&path, json).map_err(|e| format!("{}: {e}", path.display()))?;
                paths.push(path);
            }
            print_outputs(&warnings, &paths, "   ");
            Ok(())
        }
        Cmd::Compare { results, out } => {
            let loaded = results
                .iter()
                .map(|p| BenchResult::load(p))
                .collect::<Result<Vec<_>, _>>()?;
            let (table, paths, warnings) = compare::compare(loaded, &out)?;
            print!("{table}");
            print_outputs(&warnings, &paths, "");
            Ok(())
        }
        Cmd::Report { result, out } => {
            let r = BenchResult::load(&result)?;
            let out = out.unwrap_or_else(|| {
                result
                    .parent()
                    .map(|p| p.to_path_buf())
                    .unwrap_or_else(|| PathBuf::from("."))
            });
            let (paths, warnings) = report::write_run(&r, &out)?;
            print!("{}", report::summary(&r));
            print_outputs(&warnings, &paths, "   ");
            Ok(())
        }
    }
}

/// Warnings to stderr, then the files written, one per line.
fn print_outputs(warnings: &[String], paths: &[PathBuf], indent: &str) {
    for w in warnings {
        eprintln!("shoal-bench: warning: {w}");
    }
    for p in paths {
        println!("{indent}wrote {}", p.display());
    }
}
