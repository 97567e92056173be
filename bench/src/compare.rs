//! `shoal-bench compare A.json B.json …`: one overlaid chart set and one table.

use crate::plot;
use crate::report::{curves, fmt_ms, p99_line, throughput_line};
use crate::result::BenchResult;
use std::fmt::Write;
use std::path::{Path, PathBuf};

pub const COMPARE_RESULTS_MAX: usize = 8;

/// Markdown table: one row per result.
pub fn table(results: &[BenchResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| label | brokers | mode | target msg/s | publish msg/s | MB/s | pub p50 ms | pub p99 ms | pub p99.9 ms | pub max ms | e2e p50 ms | e2e p99 ms | e2e p99.9 ms | e2e max ms | errors |"
    );
    let _ = writeln!(s, "|{}", "---|".repeat(15));
    for r in results {
        let p = &r.histograms.publish_latency;
        let e = &r.histograms.e2e_latency;
        let g = |h: &crate::stats::HistogramSummary, q: f64| {
            if h.count == 0 {
                "-".to_string()
            } else {
                fmt_ms(h.percentile(q).unwrap_or(0))
            }
        };
        let _ =
            writeln!(
            s,
            "| {} | {} | {} | {} | {:.0} | {:.2} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.label,
            r.brokers,
            if r.is_max_rate() { "max" } else { "fixed" },
            if r.is_max_rate() { "-".to_string() } else { format!("{}", r.target_msgs_per_s) },
            r.throughput.publish_msgs_per_s,
            r.throughput.publish_mb_per_s,
            g(p, 50.0),
            g(p, 99.0),
            g(p, 99.9),
            if p.count == 0 { "-".into() } else { fmt_ms(p.max) },
            g(e, 50.0),
            g(e, 99.0),
            g(e, 99.9),
            if e.count == 0 { "-".into() } else { fmt_ms(e.max) },
            r.throughput.publish_errors,
        );
    }
    s
}

/// Makes labels unique (appending #n) so legends can be told apart.
pub fn unique_labels(results: &mut [BenchResult]) {
    let labels: Vec<String> = results.iter().map(|r| r.label.clone()).collect();
    for (i, r) in results.iter_mut().enumerate() {
        if labels.iter().filter(|l| **l == labels[i]).count() > 1 {
            r.label = format!("{}#{}", labels[i], i + 1);
        }
    }
}

pub fn compare(
    mut results: Vec<BenchResult>,
    out: &Path,
) -> Result<(String, Vec<PathBuf>, Vec<String>), String> {
    if results.len() < 2 || results.len() > COMPARE_RESULTS_MAX {
        return Err(format!(
            "compare needs 2 to {COMPARE_RESULTS_MAX} results, got {}",
            results.len()
        ));
    }
    unique_labels(&mut results);
    std::fs::create_dir_all(out).map_err(|e| format!("create {}: {e}", out.display()))?;
    let mut all = Vec::new();
    for (i, r) in results.iter().enumerate() {
        all.extend(curves(r, i, &format!("{}: ", r.label))?);
    }
    let mut paths = Vec::new();
    let mut warnings = Vec::new();
    let svg = plot::percentile_chart(
        "Latency by percentile (solid: publish, dashed: end-to-end)",
        &all,
    )?;
    let (p, w) = plot::write_chart(out, "compare-latency", &svg)?;
    paths.extend(p);
    warnings.extend(w);
    let tput: Vec<_> = results
        .iter()
        .enumerate()
        .map(|(i, r)| throughput_line(r, i, &format!("{} publish", r.label), false))
        .collect();
    let lat: Vec<_> = results
        .iter()
        .enumerate()
        .map(|(i, r)| p99_line(r, i, &format!("{} publish p99", r.label), false))
        .collect();
    let sizes: Vec<u32> = results.iter().map(|r| r.workload.message_size).collect();
    let same_size = sizes.windows(2).all(|w| w[0] == w[1]);
    let svg = plot::timeline_chart(
        "Publish throughput and p99 per second",
        &tput,
        &lat,
        same_size.then_some(sizes[0]),
    )?;
    let (p, w) = plot::write_chart(out, "compare-timeline", &svg)?;
    paths.extend(p);
    warnings.extend(w);
    let table = table(&results);
    let md = out.join("compare.md");
    std::fs::write(&md, &table).map_err(|e| format!("write {}: {e}", md.display()))?;
    paths.push(md);
    Ok((table, paths, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Machine;
    use crate::result::{self, RESULT_FORMAT};
    use crate::stats::Stats;
    use crate::workload::Workload;

    const S: u64 = 1_000_000_000;

    /// A result built from synthetic samples: `lat_us` per message at 100 msg/s for 3 s.
    pub fn synthetic(label: &str, lat_us: u64) -> BenchResult {
        let w = Workload::from_toml(
            "name='syn'\ntopics=1\npartitions_per_topic=1\nmessage_size=100\nproducers_per_topic=1\nconsumers_per_subscription=1\nproducer_rate=100\nwarmup_s=1\nduration_s=2\n",
        )
        .unwrap();
        let mut st = Stats::new(S, 3 * S);
        for i in 0..300u64 {
            let t = i * S / 100;
            st.on_send(t, t);
            st.on_ack(t, t, t + lat_us * 1000, 100);
            st.on_receive(Some(t), t + 2 * lat_us * 1000, 100);
        }
        BenchResult {
            format: RESULT_FORMAT.into(),
            label: label.into(),
            workload: w,
            brokers: "127.0.0.1:1".into(),
            rate_mode: "fixed".into(),
            coordinated_omission_corrected: true,
            target_msgs_per_s: 100.0,
            producer_config: vec![],
            consumer_config: vec![],
            started_unix_s: 0,
            measured_s: 2.0,
            client: "test".into(),
            machine: Machine::default(),
            throughput: result::throughput(&st, 0),
            histograms: result::histograms(&st),
            series: result::series(&st, 1),
            first_error: None,
            notes: vec![],
        }
    }

    #[test]
    fn compare_writes_one_chart_set_and_table() {
        let dir = tempfile::tempdir().unwrap();
        let a = synthetic("a", 1000);
        let b = synthetic("a", 5000);
        // Through JSON and back, as the CLI does.
        let pa = dir.path().join("a.json");
        std::fs::write(&pa, serde_json::to_string(&a).unwrap()).unwrap();
        let a = BenchResult::load(&pa).unwrap();
        assert_eq!(a.throughput.publish_msgs, 200);
        assert_eq!(a.rate_accuracy(), Some(1.0));
        let (table, paths, _) = compare(vec![a, b], dir.path()).unwrap();
        assert!(
            table.contains("| a#1 |") && table.contains("| a#2 |"),
            "{table}"
        );
        assert!(
            table.contains("| 1.00 |") && table.contains("| 5.00 |"),
            "{table}"
        );
        for stem in ["compare-latency.svg", "compare-timeline.svg", "compare.md"] {
            assert!(paths.iter().any(|p| p.ends_with(stem)), "{stem} missing");
        }
        let svg = std::fs::read_to_string(dir.path().join("compare-latency.svg")).unwrap();
        assert!(svg.contains("a#1: publish") && svg.contains("a#2: end-to-end"));
        assert!(compare(vec![synthetic("x", 1)], dir.path()).is_err());
    }

    #[test]
    fn run_folder_has_json_summary_and_charts() {
        let dir = tempfile::tempdir().unwrap();
        let r = synthetic("solo", 2000);
        let (paths, _) = crate::report::write_run(&r, dir.path()).unwrap();
        for f in ["result.json", "summary.txt", "latency.svg", "timeline.svg"] {
            assert!(paths.iter().any(|p| p.ends_with(f)), "{f} missing");
        }
        let summary = crate::report::summary(&r);
        assert!(summary.contains("sent 100.0%"), "{summary}");
        let timeline = std::fs::read_to_string(dir.path().join("timeline.svg")).unwrap();
        assert!(timeline.contains("Throughput (MB/s)") && timeline.contains("msg/s"));
    }
}
