//! The self-contained HTML report (inline SVG, no scripts, no external files) and the
//! Markdown recommendation.

use crate::analysis::{Analysis, PointSummary, Recommendation, Spread};
use crate::charts;
use crate::driver::SweepV2;
use crate::svg::esc;
use std::fmt::Write;

const CSS: &str = "body{font-family:'DejaVu Sans',Arial,sans-serif;margin:24px;color:#222;max-width:1200px}\
table{border-collapse:collapse;font-size:13px;margin:8px 0}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}\
th{background:#f2f2f2}td.l,th.l{text-align:left}.rec{border:2px solid #d62728;padding:10px 16px;border-radius:6px}\
.curves{display:flex;flex-wrap:wrap;gap:4px}pre{background:#f6f6f6;padding:8px;display:inline-block;margin:4px 16px 4px 0}\
.props{display:flex;flex-wrap:wrap}.small{color:#555;font-size:13px}";

/// `median [min–max]` with a sensible number of digits.
pub fn fmt_spread(s: &Spread) -> String {
    if s.n == 0 {
        return "–".into();
    }
    let d = |v: f64| {
        if v.abs() >= 100.0 {
            format!("{v:.0}")
        } else if v.abs() >= 10.0 {
            format!("{v:.1}")
        } else {
            format!("{v:.2}")
        }
    };
    if s.n == 1 {
        d(s.median)
    } else {
        format!("{} [{}–{}]", d(s.median), d(s.min), d(s.max))
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.digits$}"))
}

fn goal_text(s: &SweepV2) -> String {
    match s.plan.criteria.p99_ms_max {
        Some(g) => format!("most sustained throughput with publish p99 ≤ {g} ms"),
        None => "most sustained throughput (no latency goal)".into(),
    }
}

/// The properties block of the picked setting, for librdkafka and Java clients alike.
fn properties(s: &SweepV2, setting: usize) -> String {
    let st = &s.plan.settings[setting];
    let w = st
        .apply(&s.plan.workload)
        .unwrap_or_else(|_| s.plan.workload.clone());
    let mut text = w.producer.properties_text();
    for (k, v) in &st.values {
        if !k.is_producer_property() {
            let _ = writeln!(text, "# {}: {v}", k.property());
        }
    }
    text
}

fn recommendation_html(s: &SweepV2, a: &Analysis, r: &Recommendation) -> String {
    let t = &s.plan.targets[r.target];
    let mut h = format!(
        r#"<div class="rec" id="recommendation-{}"><h2>Recommendation on {} ({})</h2><p>Goal: {}.</p>"#,
        t.name,
        esc(&t.name),
        esc(&t.brokers),
        goal_text(s)
    );
    let Some(pick) = r.pick else {
        let _ = write!(
            h,
            "<p><b>No recommendation</b>: {}</p></div>",
            esc(&r.explanation)
        );
        return h;
    };
    let ps = &a.settings[pick];
    if !r.goal_met {
        let _ = write!(
            h,
            "<p class=\"goal-missed\"><b>The goal was not met</b> by any setting: what follows ranks settings by sustained throughput alone (sent and acknowledged within 1 %, no growing backlog) and breaks ties by the lowest p99.</p>"
        );
    }
    let sure = if r.clear {
        "<b>Clear</b>: better than the runner-up beyond the spread.".to_string()
    } else {
        format!(
            "<b>Within noise</b> of each other: {}. Chosen by the tie-break: {}.",
            r.within_noise
                .iter()
                .map(|&i| format!("<code>{}</code>", esc(&a.settings[i].label)))
                .collect::<Vec<_>>()
                .join(", "),
            esc(&r.tie_break)
        )
    };
    let _ = write!(
        h,
        "<p>{}: <b><code>{}</code></b>, sustained {} msg/s ({} MB/s), p99 there {} ms (median [min–max] of {} runs); seen failing at {} msg/s.</p><p>{sure}</p><p class=\"small\">{}</p>",
        if r.goal_met { "Recommended" } else { "Best without the goal" },
        esc(&ps.label),
        opt(ps.sustained_msgs_per_s, 0),
        opt(ps.sustained_mb_per_s, 2),
        ps.p99_ms_at_sustained.as_ref().map_or("–".into(), fmt_spread),
        ps.p99_ms_at_sustained.map_or(0, |p| p.n),
        opt(ps.failed_msgs_per_s, 0),
        esc(&r.explanation)
    );
    let _ = write!(
        h,
        r#"<div class="props"><pre class="properties">{}</pre></div>"#,
        esc(&properties(s, ps.setting))
    );
    h.push_str(&comparisons_html(a, r));
    h.push_str("</div>");
    h
}

/// Every setting against the best, with the evidence.
fn comparisons_html(a: &Analysis, r: &Recommendation) -> String {
    let Some(best) = r.best else {
        return String::new();
    };
    let mut h = format!(
        "<details class=\"comparisons\"><summary>Every setting against the best (<code>{}</code>)</summary><ul class=\"small\">",
        esc(&a.settings[best].label)
    );
    for c in &r.comparisons {
        let _ = write!(
            h,
            "<li><code>{}</code>: <b>{}</b> — {}</li>",
            esc(&a.settings[c.setting].label),
            if c.beaten { "worse" } else { "within noise" },
            esc(&c.reason)
        );
    }
    h.push_str("</ul></details>");
    h
}

/// Passes of every setting on the shared grid at every rate, and its verdict against the best.
fn grid_table(s: &SweepV2, a: &Analysis) -> String {
    let Some(g) = &s.grid else {
        return String::new();
    };
    let mut h = format!(
        "<h2 id=\"grid\">Shared grid: the same rates for every setting near the top</h2><p>{:.0}–{:.0} msg/s ({} of the highest search result, {:.0} msg/s), {} runs per rate and setting, interleaved with the curve points. Cells: runs held (goal included) / runs, median p99 (ms). A setting is worse than the best only if it held at least ⌈√(2n)⌉ fewer of the n shared runs <i>and</i> failed in a majority of runs at a rate where the best held in a majority.</p><table id=\"grid-table\"><tr><th class=\"l\">target</th><th class=\"l\">setting</th>",
        g.rates_msgs_per_s.first().copied().unwrap_or(0.0),
        g.rates_msgs_per_s.last().copied().unwrap_or(0.0),
        g.fractions
            .iter()
            .map(|f| format!("{:.0}%", f * 100.0))
            .collect::<Vec<_>>()
            .join(", "),
        g.top_msgs_per_s,
        s.plan.repetitions
    );
    for r in &g.rates_msgs_per_s {
        let _ = write!(h, "<th>{r:.0} msg/s</th>");
    }
    h.push_str("<th>held, all rates</th><th class=\"l\">against the best</th></tr>");
    for (i, x) in a.settings.iter().enumerate() {
        if !g.contains(x.setting) {
            continue;
        }
        let rec = &a.recommendations[x.target];
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td>",
            esc(&s.plan.targets[x.target].name),
            esc(&x.label)
        );
        for &rate in &g.rates_msgs_per_s {
            let p = a.points.iter().find(|p| {
                p.shared
                    && p.target == x.target
                    && p.setting == x.setting
                    && p.rate_msgs_per_s.round() == rate.round()
            });
            match p {
                Some(p) => {
                    let _ = write!(
                        h,
                        "<td>{}/{}, {:.2}</td>",
                        p.passes_of(rec.goal_met),
                        p.reps,
                        p.p99_ms.median
                    );
                }
                None => h.push_str("<td>–</td>"),
            }
        }
        let verdict = if rec.best == Some(i) {
            "the best".to_string()
        } else {
            rec.comparisons
                .iter()
                .find(|c| c.setting == i)
                .map_or("–".to_string(), |c| {
                    if c.beaten { "worse" } else { "within noise" }.to_string()
                })
        };
        let _ = write!(
            h,
            "<td>{}/{}</td><td class=\"l\">{verdict}</td></tr>",
            x.grid_passes(),
            x.grid_runs()
        );
    }
    h.push_str("</table>");
    h
}

fn settings_table(s: &SweepV2, a: &Analysis) -> String {
    let mut h = String::from(
        "<table id=\"settings-table\"><tr><th class=\"l\">target</th><th class=\"l\">setting</th><th>search steps</th><th>search time (s)</th><th>search: highest pass (msg/s)</th><th>search: lowest fail (msg/s)</th><th>sustained (msg/s)</th><th>sustained (MB/s)</th><th>seen failing at (msg/s)</th><th>p99 at sustained (ms)</th><th>shared grid: runs held</th><th class=\"l\">status</th></tr>",
    );
    for (i, x) in a.settings.iter().enumerate() {
        let r = &a.recommendations[x.target];
        let status = if r.pick == Some(i) {
            "recommended"
        } else if r.within_noise.contains(&i) {
            "within noise"
        } else if a.frontiers[x.target].contains(&i) {
            "frontier"
        } else {
            ""
        };
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{status}</td></tr>",
            esc(&s.plan.targets[x.target].name),
            esc(&x.label),
            x.search_steps,
            x.search_spent_s,
            opt(x.search_pass_msgs_per_s, 0),
            opt(x.search_fail_msgs_per_s, 0),
            opt(x.sustained_msgs_per_s, 0),
            opt(x.sustained_mb_per_s, 2),
            opt(x.failed_msgs_per_s, 0),
            x.p99_ms_at_sustained.as_ref().map_or("–".into(), fmt_spread),
            if x.grid.is_empty() {
                "–".to_string()
            } else {
                format!("{}/{}", x.grid_passes(), x.grid_runs())
            },
        );
    }
    h.push_str("</table>");
    h
}

fn points_table(s: &SweepV2, a: &Analysis) -> String {
    let mut h = String::from(
        "<table id=\"points-table\"><tr><th class=\"l\">target</th><th class=\"l\">setting</th><th>fraction (own rate, or grid: of the top)</th><th>target (msg/s)</th><th>acked (msg/s)</th><th>acked (MB/s)</th><th>p50 (ms)</th><th>p99 (ms)</th><th>p99.9 (ms)</th><th>runs held (incl. goal)</th><th>runs kept up (rate only)</th><th>load avg 1 min</th><th>steal (%)</th></tr>",
    );
    for p in &a.points {
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}{:.0}%</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td><td>{}/{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.plan.targets[p.target].name),
            esc(&s.plan.settings[p.setting].label),
            if p.shared { "grid " } else { "" },
            p.fraction * 100.0,
            p.rate_msgs_per_s,
            fmt_spread(&p.acked_msgs_per_s),
            fmt_spread(&p.acked_mb_per_s),
            fmt_spread(&p.p50_ms),
            fmt_spread(&p.p99_ms),
            fmt_spread(&p.p999_ms),
            p.passes,
            p.reps,
            p.passes_rate_only,
            p.reps,
            fmt_spread(&p.load_avg_1m),
            fmt_spread(&p.steal_pct),
        );
    }
    h.push_str("</table>");
    h
}

fn compare_table(s: &SweepV2, a: &Analysis) -> String {
    if s.plan.targets.len() < 2 {
        return String::new();
    }
    let (n0, n1) = (&s.plan.targets[0].name, &s.plan.targets[1].name);
    let mut h = format!(
        "<h2 id=\"compare\">Compare: {n1} / {n0}, point by point</h2><p>Same settings and rates on both, interleaved in one sitting. Ratios of medians; &lt; 1 means {n1} is lower.</p><table id=\"compare-table\"><tr><th class=\"l\">setting</th><th>fraction</th><th>rate (msg/s)</th><th>p99 {n0} (ms)</th><th>p99 {n1} (ms)</th><th>p99 ratio</th><th>acked ratio</th></tr>"
    );
    let find = |t: usize, p: &PointSummary| {
        a.points.iter().find(|q| {
            q.target == t
                && q.setting == p.setting
                && q.shared == p.shared
                && q.fraction == p.fraction
        })
    };
    for p in a.points.iter().filter(|p| p.target == 0) {
        let Some(q) = find(1, p) else { continue };
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td>{:.0}%</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.3}</td></tr>",
            esc(&s.plan.settings[p.setting].label),
            p.fraction * 100.0,
            p.rate_msgs_per_s,
            fmt_spread(&p.p99_ms),
            fmt_spread(&q.p99_ms),
            q.p99_ms.median / p.p99_ms.median,
            q.acked_msgs_per_s.median / p.acked_msgs_per_s.median,
        );
    }
    h.push_str("</table><table><tr><th class=\"l\">setting</th>");
    let _ = write!(h, "<th>search capacity {n0} (msg/s)</th><th>search capacity {n1} (msg/s)</th><th>ratio</th></tr>");
    for x in a.settings.iter().filter(|x| x.target == 0) {
        let y = a
            .settings
            .iter()
            .find(|y| y.target == 1 && y.setting == x.setting);
        let (c0, c1) = (
            x.search_pass_msgs_per_s,
            y.and_then(|y| y.search_pass_msgs_per_s),
        );
        let ratio = c0.zip(c1).map(|(a, b)| b / a);
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&x.label),
            opt(c0, 0),
            opt(c1, 0),
            opt(ratio, 2)
        );
    }
    h.push_str("</table>");
    h
}

fn noise_html(s: &SweepV2, a: &Analysis) -> String {
    let mut h = String::from("<h2 id=\"noise\">Host noise</h2><p>The reference point (the workload's own settings at a fixed rate) ran at the start and at the end; every run records load average and CPU steal before and after.</p><table id=\"noise-table\"><tr><th class=\"l\">target</th><th>reference p99 start (ms)</th><th>reference p99 end (ms)</th><th>reference acked start (msg/s)</th><th>reference acked end (msg/s)</th><th>load avg 1 min, all runs</th><th>steal %, all runs</th><th>CPU busy %, all runs</th></tr>");
    let f = |x: &Option<Spread>| x.as_ref().map_or("–".into(), fmt_spread);
    for n in &a.noise {
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.plan.targets[n.target].name),
            f(&n.reference_start_p99_ms),
            f(&n.reference_end_p99_ms),
            f(&n.reference_start_acked_msgs_per_s),
            f(&n.reference_end_acked_msgs_per_s),
            f(&n.load_avg_1m),
            f(&n.steal_pct),
            f(&n.busy_pct),
        );
    }
    h.push_str("</table>");
    h.push_str(&reference_verdict(s));
    h
}

/// How far apart identical runs of the reference point were: differences smaller than
/// this cannot be told from noise in this session.
fn reference_verdict(s: &SweepV2) -> String {
    let p99: Vec<f64> = s
        .runs
        .iter()
        .filter(|r| r.setting.is_none() && r.target == 0)
        .map(|r| r.figures.p99_ms())
        .collect();
    let (lo, hi) = p99
        .iter()
        .fold((f64::MAX, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if p99.len() < 2 || lo <= 0.0 {
        return String::new();
    }
    format!(
        "<p class=\"noise-verdict\">{} identical runs of the reference point had p99 from {lo:.2} to {hi:.2} ms ({:.1}×): on this host, in this session, single-run p99 differences smaller than that are noise.</p>",
        p99.len(),
        hi / lo
    )
}

fn machine_html(s: &SweepV2) -> String {
    let m = &s.machine;
    let p = &s.plan;
    let w = &p.workload;
    let mut h = format!(
        "<h2 id=\"machine\">Machine, broker and plan</h2><table class=\"meta\"><tr><th class=\"l\">machine</th><td class=\"l\">{} — {} × {}, {:.1} GiB, kernel {}, {}</td></tr><tr><th class=\"l\">client</th><td class=\"l\">{}</td></tr>",
        esc(&m.hostname), m.cores, esc(&m.cpu_model), m.memory_bytes as f64 / (1u64 << 30) as f64, esc(&m.kernel), esc(&m.os), esc(&s.client)
    );
    for t in &p.targets {
        let _ = write!(
            h,
            "<tr><th class=\"l\">broker {}</th><td class=\"l\">{} — {}</td></tr>",
            esc(&t.name),
            esc(&t.brokers),
            esc(if t.description.is_empty() {
                "(not described)"
            } else {
                &t.description
            })
        );
    }
    let _ = write!(
        h,
        "<tr><th class=\"l\">workload</th><td class=\"l\">{}: {} topic(s) × {} partitions, {} B messages, {} producer(s), {} consumer(s), acks={}</td></tr><tr><th class=\"l\">step</th><td class=\"l\">warm-up {} s + measured {} s per run</td></tr><tr><th class=\"l\">sustained means</th><td class=\"l\">sent and acknowledged ≥ {:.0}% of target, producer backlog growing by ≤ {:.0}% of the rate per s, no errors{}</td></tr><tr><th class=\"l\">rate search</th><td class=\"l\">start {:.0} msg/s, ×{} until a fail, then bisection to {:.0}% precision; bounds {:.0}–{:.0} msg/s; ≤ {:.0} s and ≤ {} steps per setting; a failing step is repeated until a majority of {} runs decides it; searches interleaved in shuffled rounds; {}</td></tr><tr><th class=\"l\">curves</th><td class=\"l\">{} of the discovered rate, {} repetitions, shuffled rounds (seed {})</td></tr><tr><th class=\"l\">shared grid</th><td class=\"l\">{}</td></tr><tr><th class=\"l\">reference</th><td class=\"l\">workload settings at {:.0} msg/s, {} runs at start and end</td></tr><tr><th class=\"l\">runs</th><td class=\"l\">{} in {:.1} min</td></tr><tr><th class=\"l\">command</th><td class=\"l\"><code>{}</code></td></tr></table>",
        esc(&w.name), w.topics, w.partitions_per_topic, w.message_size, w.producers(), w.consumers(), esc(&w.producer.acks),
        w.warmup_s, w.duration_s,
        100.0 * (1.0 - p.criteria.rate_shortfall_max), 100.0 * p.criteria.backlog_growth_max,
        p.criteria.p99_ms_max.map_or(String::new(), |g| format!(", publish p99 ≤ {g} ms")),
        p.search.rate_start_msgs_per_s, p.search.growth_factor, 100.0 * p.search.precision, p.search.rate_min_msgs_per_s, p.search.rate_max_msgs_per_s, p.search.budget_s, p.search.steps_max,
        p.search.fail_confirm_runs,
        p.search_duration_s.map_or("search runs as long as the curve runs".to_string(), |d| format!("search runs measure {d} s")),
        p.fractions.iter().map(|f| format!("{:.0}%", f * 100.0)).collect::<Vec<_>>().join(", "), p.repetitions, p.seed,
        match &s.grid {
            Some(g) => format!("{} of {:.0} msg/s (the highest search result) = {} msg/s, for {} setting(s); the same repetitions and rounds as the curves", g.fractions.iter().map(|f| format!("{:.0}%", f * 100.0)).collect::<Vec<_>>().join(", "), g.top_msgs_per_s, g.rates_msgs_per_s.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", "), g.settings.len()),
            None => "none".to_string(),
        },
        p.reference_rate_msgs_per_s, p.repetitions,
        s.runs.len(), s.finished_unix_s.saturating_sub(s.started_unix_s) as f64 / 60.0,
        esc(&s.command)
    );
    h
}

fn runs_html(s: &SweepV2) -> String {
    let mut h = String::from("<details><summary>Every run in order (search steps, curve points, reference)</summary><table id=\"runs-table\"><tr><th>#</th><th class=\"l\">phase</th><th class=\"l\">target</th><th class=\"l\">setting</th><th>rate (msg/s)</th><th>acked (msg/s)</th><th>p99 (ms)</th><th>backlog growth (msg/s²)</th><th class=\"l\">verdict</th><th>load before→after</th><th>steal %</th></tr>");
    for r in &s.runs {
        let label = r.setting.map_or("reference".to_string(), |i| {
            s.plan.settings[i].label.clone()
        });
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"l\">{:?}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{:.0}</td><td>{:.0}</td><td>{:.2}</td><td>{:.0}</td><td class=\"l\">{}</td><td>{:.2}→{:.2}</td><td>{:.1}</td></tr>",
            r.seq, r.phase, esc(&s.plan.targets[r.target].name), esc(&label), r.rate_msgs_per_s, r.figures.acked_msgs_per_s,
            r.figures.p99_ms(), r.figures.backlog_growth_msgs_per_s2,
            if r.failures.is_empty() { "pass".to_string() } else { format!("{:?}", r.failures) },
            r.noise.load_avg_1m_before, r.noise.load_avg_1m_after, r.noise.steal_pct
        );
    }
    h.push_str("</table></details>");
    h
}

const HOW_TO_READ: &str = "<h2 id=\"how-to-read\">How to read this report</h2><ul>\
<li><b>Rate search</b>: for each setting the tuner searched for the highest fixed rate at which the producer kept up (sent and acknowledged within 1% of the target, no growing backlog, and p99 under the goal if one is given). A step whose first run failed is repeated until a majority of its runs decides it, so one stall does not end a search low; a search that still ended far below the others gets one second look above where it stopped.</li>\
<li><b>Shared grid</b>: every setting whose search reached the grid's lowest rate then ran the same absolute rates (50–100% of the highest search result), as often as the curve points and interleaved with them. Settings are compared there like for like: one is worse than the best only if it held at least ⌈√(2n)⌉ fewer of the n shared runs and failed in a majority of runs at a rate where the best held in a majority. A setting off the grid is worse when it failed in a majority of its runs at or below the best's sustained rate. Otherwise it is <i>within noise</i>, and the pick among the best and those within noise is by the stated tie-break.</li>\
<li><b>Sustained rate</b>: the highest repeated rate (curve or grid point) held by a majority of its runs where a monotone fit of the pass shares of all the setting's points is above ½ (one noisy point is pooled with its neighbours); it was <i>seen failing</i> at the lowest rate above that which failed in a majority of its runs.</li>\
<li><b>Curves</b>: one panel per setting, same axes everywhere: points at fractions of its own search result, and the grid's rates. Dots are medians of the repetitions, whiskers their min–max; a hollow dot did not hold in a majority of runs. The dashed red line is the latency goal.</li>\
<li><b>Frontier</b>: each setting at its sustained throughput and the p99 there. The grey bar runs from the sustained rate to the first rate it was seen failing at: the true capacity lies on that bar. Orange rings are within noise of the best; red is the pick.</li>\
<li><b>Noise</b>: compare the reference point at the start and end of the sweep, and look at load average and steal per point. On a shared machine a single run is not a measurement: medians and ranges of repeated, interleaved runs are.</li></ul>";

pub fn report_html(s: &SweepV2, a: &Analysis) -> String {
    let mut h = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>shoal-tune sweep: {}</title><style>{CSS}</style></head><body><h1>shoal-tune sweep: {}</h1><p class=\"small\">{} settings, {} target(s), {} runs. Goal: {}.</p>",
        esc(&s.plan.workload.name), esc(&s.plan.workload.name), s.plan.settings.len(), s.plan.targets.len(), s.runs.len(), goal_text(s)
    );
    for r in &a.recommendations {
        h.push_str(&recommendation_html(s, a, r));
    }
    for t in 0..s.plan.targets.len() {
        let name = &s.plan.targets[t].name;
        let _ = write!(h, "<h2 id=\"frontier-{name}\">Frontier ({name})</h2><div class=\"frontier-wrap\">{}</div>", charts::frontier_chart(s, a, t));
        let axes = charts::curve_axes(a, t, s.plan.criteria.p99_ms_max);
        let _ = write!(h, "<h2 id=\"curves-{name}\">Latency–throughput curve per setting ({name})</h2><div class=\"curves\">");
        for x in a.settings.iter().filter(|x| x.target == t) {
            h.push_str(&charts::curve_panel(s, a, t, x, &axes));
        }
        h.push_str("</div>");
    }
    h.push_str("<h2 id=\"settings\">Settings: rate search and sustained rate</h2>");
    h.push_str(&settings_table(s, a));
    h.push_str(&grid_table(s, a));
    h.push_str(
        "<h2 id=\"points\">Every curve and grid point, median [min–max] over repetitions</h2>",
    );
    h.push_str(&points_table(s, a));
    h.push_str(&compare_table(s, a));
    h.push_str(&noise_html(s, a));
    h.push_str(&machine_html(s));
    h.push_str(&runs_html(s));
    h.push_str(HOW_TO_READ);
    h.push_str("</body></html>\n");
    h
}

pub fn recommendation_md(s: &SweepV2, a: &Analysis) -> String {
    let mut m = format!(
        "# shoal-tune sweep: {}\n\nGoal: {}.\n\n",
        s.plan.workload.name,
        goal_text(s)
    );
    for r in &a.recommendations {
        let t = &s.plan.targets[r.target];
        let _ = writeln!(m, "## {} ({})\n", t.name, t.brokers);
        let Some(pick) = r.pick else {
            let _ = writeln!(m, "No recommendation: {}\n", r.explanation);
            continue;
        };
        let ps = &a.settings[pick];
        if !r.goal_met {
            let _ = writeln!(
                m,
                "**The goal was not met by any setting**; ranked by sustained throughput alone.\n"
            );
        }
        let _ = writeln!(
            m,
            "{}: **{}** — sustained {} msg/s ({} MB/s), p99 there {} ms.\n",
            if r.goal_met {
                "Recommended"
            } else {
                "Best without the goal"
            },
            ps.label,
            opt(ps.sustained_msgs_per_s, 0),
            opt(ps.sustained_mb_per_s, 2),
            ps.p99_ms_at_sustained
                .as_ref()
                .map_or("–".into(), fmt_spread)
        );
        if r.clear {
            let _ = writeln!(m, "Clear: {}\n", r.explanation);
        } else {
            let names: Vec<&str> = r
                .within_noise
                .iter()
                .map(|&i| a.settings[i].label.as_str())
                .collect();
            let _ = writeln!(m, "Within noise: {}. {}\n", names.join(", "), r.explanation);
        }
        let _ = writeln!(m, "```\n{}```\n", properties(s, ps.setting));
        if let Some(best) = r.best {
            let _ = writeln!(m, "Against the best ({}):\n", a.settings[best].label);
            for c in &r.comparisons {
                let _ = writeln!(
                    m,
                    "- {}: {} — {}",
                    a.settings[c.setting].label,
                    if c.beaten { "worse" } else { "within noise" },
                    c.reason
                );
            }
            m.push('\n');
        }
    }
    if let Some(g) = &s.grid {
        let _ = writeln!(
            m,
            "Shared grid: {} msg/s ({} of the highest search result, {:.0} msg/s).\n",
            g.rates_msgs_per_s
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(", "),
            g.fractions
                .iter()
                .map(|f| format!("{:.0}%", f * 100.0))
                .collect::<Vec<_>>()
                .join(", "),
            g.top_msgs_per_s
        );
    }
    let _ = writeln!(m, "| target | setting | search pass / fail msg/s | sustained msg/s | MB/s | seen failing at msg/s | p99 at sustained ms | grid held |\n|---|---|---|---|---|---|---|---|");
    for x in &a.settings {
        let _ = writeln!(
            m,
            "| {} | {} | {} / {} | {} | {} | {} | {} | {} |",
            s.plan.targets[x.target].name,
            x.label,
            opt(x.search_pass_msgs_per_s, 0),
            opt(x.search_fail_msgs_per_s, 0),
            opt(x.sustained_msgs_per_s, 0),
            opt(x.sustained_mb_per_s, 2),
            opt(x.failed_msgs_per_s, 0),
            x.p99_ms_at_sustained
                .as_ref()
                .map_or("–".into(), fmt_spread),
            if x.grid.is_empty() {
                "–".to_string()
            } else {
                format!("{}/{}", x.grid_passes(), x.grid_runs())
            }
        );
    }
    let n = &a.noise[0];
    let f = |x: &Option<Spread>| x.as_ref().map_or("–".into(), fmt_spread);
    let _ = writeln!(
        m,
        "\nHost noise: reference p99 {} ms at the start, {} ms at the end; load average {}; steal {} %.",
        f(&n.reference_start_p99_ms),
        f(&n.reference_end_p99_ms),
        f(&n.load_avg_1m),
        f(&n.steal_pct)
    );
    m
}
