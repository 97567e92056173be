//! Console summary and the files of one run: result.json, latency and timeline charts.

use crate::plot::{self, Curve, TimeLine};
use crate::result::BenchResult;
use crate::stats::{percentile_curve, HistogramSummary};
use std::fmt::Write;
use std::path::{Path, PathBuf};

pub fn fmt_ms(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

fn hist_row(name: &str, h: &HistogramSummary) -> String {
    let mut row = format!("{name:<28}");
    for (_, v) in &h.percentiles {
        let _ = write!(row, "{:>9}", fmt_ms(*v));
    }
    let _ = write!(row, "{:>10}{:>11}", fmt_ms(h.max), h.count);
    row
}

pub fn summary(r: &BenchResult) -> String {
    let mut s = String::new();
    let w = &r.workload;
    let t = &r.throughput;
    let _ = writeln!(s, "== {} ({}) against {}", r.label, w.name, r.brokers);
    let _ = writeln!(
        s,
        "   {} topic(s) x {} partitions, {} B messages, {} producer(s), {} consumer(s); acks={} linger.ms={} batch.size={} compression={}",
        w.topics,
        w.partitions_per_topic,
        w.message_size,
        w.producers(),
        w.consumers(),
        w.producer.acks,
        crate::workload::format_number(w.producer.linger_ms),
        w.producer.batch_size,
        w.producer.compression
    );
    if r.is_max_rate() {
        let _ = writeln!(
            s,
            "   rate: MAX (not coordinated-omission corrected: latency is from the actual send)"
        );
    } else {
        let _ = writeln!(
            s,
            "   rate: fixed {} msg/s; sent {:.1}%, acknowledged {:.1}% of target in the window (latency from the intended send time)",
            r.target_msgs_per_s,
            r.rate_accuracy().unwrap_or(0.0) * 100.0,
            r.ack_rate_ratio().unwrap_or(0.0) * 100.0
        );
    }
    let _ = writeln!(
        s,
        "   publish {:.0} msg/s {:.2} MB/s | consume {:.0} msg/s {:.2} MB/s | errors {} | over {} s after {} s warm-up",
        t.publish_msgs_per_s,
        t.publish_mb_per_s,
        t.consume_msgs_per_s,
        t.consume_mb_per_s,
        t.publish_errors,
        r.measured_s,
        w.warmup_s
    );
    let mut head = format!("   {:<28}", "latency (ms)");
    for (p, _) in &r.histograms.publish_latency.percentiles {
        let _ = write!(head, "{:>9}", format!("p{p}"));
    }
    let _ = write!(head, "{:>10}{:>11}", "max", "samples");
    let _ = writeln!(s, "{head}");
    let h = &r.histograms;
    for (name, hist) in [
        ("publish latency", &h.publish_latency),
        ("  (uncorrected, from send)", &h.publish_latency_uncorrected),
        ("publish delay", &h.publish_delay),
        ("end-to-end latency", &h.e2e_latency),
    ] {
        // At max rate every message is sent when "due": the delay and the correction say nothing.
        if r.is_max_rate() && name != "publish latency" && name != "end-to-end latency" {
            continue;
        }
        let _ = writeln!(s, "   {}", hist_row(name, hist));
    }
    if let Some(e) = &r.first_error {
        let _ = writeln!(s, "   first error: {e}");
    }
    for n in &r.notes {
        let _ = writeln!(s, "   note: {n}");
    }
    let _ = writeln!(
        s,
        "   machine: {}; client {}",
        r.machine.one_line(),
        r.client
    );
    s
}

pub fn curves(r: &BenchResult, color_index: usize, prefix: &str) -> Result<Vec<Curve>, String> {
    let mut out = Vec::new();
    for (name, h, dashed) in [
        ("publish", &r.histograms.publish_latency, false),
        ("end-to-end", &r.histograms.e2e_latency, true),
    ] {
        if h.count == 0 {
            continue;
        }
        out.push(Curve {
            name: format!("{prefix}{name}"),
            points: percentile_curve(&h.decode()?),
            color: plot::color(color_index + if prefix.is_empty() && dashed { 1 } else { 0 }),
            dashed,
        });
    }
    Ok(out)
}

/// Seconds of the run proper (warm-up included, the drain after the end left out),
/// plotted at the middle of each second.
fn plotted(r: &BenchResult) -> impl Iterator<Item = &crate::result::Interval> {
    let end = r.workload.duration_s as i64;
    r.series.iter().filter(move |i| i.t_s < end)
}

pub fn throughput_line(r: &BenchResult, color_index: usize, name: &str, consume: bool) -> TimeLine {
    TimeLine {
        name: name.to_string(),
        points: plotted(r)
            .map(|i| {
                (
                    i.t_s as f64 + 0.5,
                    if consume { i.consume_mb } else { i.publish_mb },
                )
            })
            .collect(),
        color: plot::color(color_index),
        dashed: consume,
    }
}

pub fn p99_line(r: &BenchResult, color_index: usize, name: &str, e2e: bool) -> TimeLine {
    TimeLine {
        name: name.to_string(),
        points: plotted(r)
            .filter_map(|i| {
                let v = if e2e { i.e2e_p99_us } else { i.publish_p99_us }?;
                Some((i.t_s as f64 + 0.5, v as f64))
            })
            .collect(),
        color: plot::color(color_index),
        dashed: e2e,
    }
}

/// Writes result.json and the charts into `dir`; returns written paths and warnings.
pub fn write_run(r: &BenchResult, dir: &Path) -> Result<(Vec<PathBuf>, Vec<String>), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let mut paths = Vec::new();
    let mut warnings = Vec::new();
    let json = dir.join("result.json");
    let text = serde_json::to_string_pretty(r).map_err(|e| format!("json: {e}"))?;
    std::fs::write(&json, text).map_err(|e| format!("write {}: {e}", json.display()))?;
    paths.push(json);
    let sum = dir.join("summary.txt");
    std::fs::write(&sum, summary(r)).map_err(|e| format!("write {}: {e}", sum.display()))?;
    paths.push(sum);
    let mode = if r.is_max_rate() {
        "MAX rate, not CO-corrected".to_string()
    } else {
        format!("{} msg/s fixed, CO-corrected", r.target_msgs_per_s)
    };
    let title = format!("{}: latency by percentile ({mode})", r.label);
    let svg = plot::percentile_chart(&title, &curves(r, 0, "")?)?;
    let (p, w) = plot::write_chart(dir, "latency", &svg)?;
    paths.extend(p);
    warnings.extend(w);
    let svg = plot::timeline_chart(
        &format!("{}: throughput and p99 per second ({mode})", r.label),
        &[
            throughput_line(r, 0, "publish (acked)", false),
            throughput_line(r, 1, "consume", true),
        ],
        &[
            p99_line(r, 0, "publish p99", false),
            p99_line(r, 1, "end-to-end p99", true),
        ],
        Some(r.workload.message_size),
    )?;
    let (p, w) = plot::write_chart(dir, "timeline", &svg)?;
    paths.extend(p);
    warnings.extend(w);
    Ok((paths, warnings))
}
