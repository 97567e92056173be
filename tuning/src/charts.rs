//! The report's charts: one latency–throughput curve per setting, and the frontier.

use crate::analysis::{Analysis, PointSummary, SettingSummary};
use crate::driver::SweepV2;
use crate::svg::{self, esc, Axis, BoxPx, Frame, Scale};
use std::fmt::Write;

pub const CURVE_X_TITLE: &str = "Acknowledged throughput (MB/s)";
pub const CURVE_Y_TITLE: &str = "Publish p99 (ms, log scale)";
pub const FRONTIER_X_TITLE: &str = "Sustained throughput (MB/s)";
pub const FRONTIER_Y_TITLE: &str = "Publish p99 at that rate (ms, log scale)";

fn points_of(a: &Analysis, target: usize, setting: usize) -> Vec<&PointSummary> {
    let mut v: Vec<&PointSummary> = a
        .points
        .iter()
        .filter(|p| p.target == target && p.setting == setting)
        .collect();
    v.sort_by(|x, y| x.rate_msgs_per_s.total_cmp(&y.rate_msgs_per_s));
    v
}

/// Shared axes for all curve panels of a target so they compare at a glance.
pub fn curve_axes(a: &Analysis, target: usize, goal_ms: Option<f64>) -> (Axis, Axis) {
    let pts: Vec<&PointSummary> = a.points.iter().filter(|p| p.target == target).collect();
    let xs: Vec<f64> = pts.iter().map(|p| p.acked_mb_per_s.max).collect();
    let mut ys: Vec<f64> = pts
        .iter()
        .flat_map(|p| [p.p99_ms.min, p.p99_ms.max])
        .collect();
    ys.extend(goal_ms);
    (
        Axis::fit(CURVE_X_TITLE, &xs, Scale::Linear),
        Axis::fit(CURVE_Y_TITLE, &ys, Scale::Log),
    )
}

/// One setting's curve: median p99 against median throughput at each fraction of its rate,
/// whiskers from the lowest to the highest repetition, hollow where a majority failed.
pub fn curve_panel(
    s: &SweepV2,
    a: &Analysis,
    target: usize,
    summary: &SettingSummary,
    axes: &(Axis, Axis),
) -> String {
    let f = Frame {
        width: 380.0,
        height: 270.0,
        left: 58.0,
        right: 14.0,
        top: 30.0,
        bottom: 44.0,
        x: axes.0.clone(),
        y: axes.1.clone(),
    };
    let color = svg::PALETTE[summary.setting % svg::PALETTE.len()];
    let mut out = f.open("curve", &format!("{} — p99 vs throughput", summary.label));
    if let Some(g) = s.plan.criteria.p99_ms_max {
        out.push_str(&f.goal_line(g, &format!("goal {} ms", svg::tick_label(g))));
    }
    let goal_met = a.recommendations[target].goal_met;
    let pts = points_of(a, target, summary.setting);
    let line: Vec<String> = pts
        .iter()
        .map(|p| {
            let (x, y) = f.px(p.acked_mb_per_s.median, p.p99_ms.median);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let _ = write!(
        out,
        r#"<polyline class="curve-line" points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
        line.join(" ")
    );
    for p in &pts {
        let (x, y) = f.px(p.acked_mb_per_s.median, p.p99_ms.median);
        let (_, ylo) = f.px(0.0, p.p99_ms.min);
        let (_, yhi) = f.px(0.0, p.p99_ms.max);
        let fill = if p.holds(goal_met) { color } else { "#fff" };
        let _ = write!(
            out,
            r#"<g class="point" data-fraction="{:.2}" data-passes="{}/{}"><line x1="{x:.1}" y1="{ylo:.1}" x2="{x:.1}" y2="{yhi:.1}" stroke="{color}" stroke-width="1.5"/><circle cx="{x:.1}" cy="{y:.1}" r="4.5" fill="{fill}" stroke="{color}" stroke-width="1.5"><title>{}{:.0}% of {:.0} msg/s: {:.2} MB/s, p99 {:.2} ms [{:.2}–{:.2}], {}/{} runs held</title></circle></g>"#,
            p.fraction,
            p.passes,
            p.reps,
            if p.shared { "shared grid, " } else { "" },
            p.fraction * 100.0,
            p.rate_msgs_per_s / p.fraction,
            p.acked_mb_per_s.median,
            p.p99_ms.median,
            p.p99_ms.min,
            p.p99_ms.max,
            p.passes,
            p.reps
        );
    }
    let note = match summary.sustained_msgs_per_s {
        Some(r) => format!("sustained {r:.0} msg/s"),
        None => "no curve rate held".to_string(),
    };
    let _ = write!(
        out,
        r##"<text class="note" x="{:.1}" y="{:.1}" font-size="11" fill="#555">{}</text></svg>"##,
        f.left + 6.0,
        f.top + 14.0,
        esc(&note)
    );
    out
}

/// End of a setting's rate bar (MB/s): the rate it was seen failing at, if ever.
fn bar_end_mb(x: &SettingSummary) -> Option<f64> {
    let per_msg = x.sustained_mb_per_s.unwrap_or(0.0) / x.sustained_msgs_per_s.unwrap_or(1.0);
    x.failed_msgs_per_s.map(|f| f * per_msg)
}

fn frontier_frame(s: &SweepV2, ss: &[(usize, &SettingSummary)]) -> Frame {
    let xs: Vec<f64> = ss
        .iter()
        .flat_map(|(_, x)| {
            [
                x.sustained_mb_per_s.unwrap_or(0.0),
                bar_end_mb(x).unwrap_or(0.0),
            ]
        })
        .collect();
    let mut ys: Vec<f64> = ss
        .iter()
        .filter_map(|(_, x)| x.p99_ms_at_sustained)
        .flat_map(|p| [p.min, p.max])
        .collect();
    ys.extend(s.plan.criteria.p99_ms_max);
    Frame {
        width: 960.0,
        height: 560.0,
        left: 70.0,
        right: 30.0,
        top: 40.0,
        bottom: 50.0,
        x: Axis::fit(FRONTIER_X_TITLE, &xs, Scale::Linear),
        y: Axis::fit(FRONTIER_Y_TITLE, &ys, Scale::Log),
    }
}

fn frontier_line(f: &Frame, a: &Analysis, target: usize) -> String {
    let line: Vec<String> = a.frontiers[target]
        .iter()
        .map(|&i| {
            let x = &a.settings[i];
            let (px, py) = f.px(
                x.sustained_mb_per_s.unwrap_or(0.0),
                x.p99_ms_at_sustained.map_or(0.0, |p| p.median),
            );
            format!("{px:.1},{py:.1}")
        })
        .collect();
    format!(
        r##"<polyline class="frontier-line" points="{}" fill="none" stroke="#1f77b4" stroke-width="2"/>"##,
        line.join(" ")
    )
}

/// One setting on the frontier chart: rate bar, p99 whisker, dot. Returns the SVG, the
/// dot's pixel position and the bar's box (an obstacle for labels).
fn frontier_setting(
    f: &Frame,
    a: &Analysis,
    target: usize,
    i: usize,
) -> (String, (f64, f64), BoxPx) {
    let x = &a.settings[i];
    let rec = &a.recommendations[target];
    let p99 = x.p99_ms_at_sustained.expect("sustained has p99");
    let (px, py) = f.px(x.sustained_mb_per_s.expect("sustained"), p99.median);
    let (_, ylo) = f.px(0.0, p99.min);
    let (_, yhi) = f.px(0.0, p99.max);
    let (bx, _) = f.px(bar_end_mb(x).unwrap_or(f.x.hi), 0.0);
    let picked = rec.pick == Some(i);
    let ink = if picked {
        "#d62728"
    } else if a.frontiers[target].contains(&i) {
        "#1f77b4"
    } else {
        "#555"
    };
    let ring = if rec.within_noise.contains(&i) {
        r##" stroke="#ff7f0e" stroke-width="3""##
    } else {
        ""
    };
    let svg = format!(
        r##"<g class="setting{}"><line class="rate-interval" x1="{px:.1}" y1="{py:.1}" x2="{bx:.1}" y2="{py:.1}" stroke="{ink}" stroke-opacity="0.45" stroke-width="3"/><line x1="{px:.1}" y1="{ylo:.1}" x2="{px:.1}" y2="{yhi:.1}" stroke="{ink}" stroke-width="1.5"/><circle cx="{px:.1}" cy="{py:.1}" r="{}" fill="{ink}"{ring}/></g>"##,
        if picked { " recommended" } else { "" },
        if picked { 7 } else { 5 },
    );
    let bar = BoxPx {
        x: px,
        y: py - 2.0,
        w: (bx - px).max(0.0),
        h: 4.0,
    };
    (svg, (px, py), bar)
}

/// The frontier: each setting at its sustained throughput and the p99 there; horizontal
/// bars run from the sustained rate to the rate it was seen failing at, vertical whiskers
/// span the repetitions' p99.
pub fn frontier_chart(s: &SweepV2, a: &Analysis, target: usize) -> String {
    let ss: Vec<(usize, &SettingSummary)> = a
        .settings
        .iter()
        .enumerate()
        .filter(|(_, x)| x.target == target && x.sustained_mb_per_s.is_some())
        .collect();
    let f = frontier_frame(s, &ss);
    let name = &s.plan.targets[target].name;
    let mut out = f.open(
        "frontier",
        &format!("Frontier on {name}: sustained throughput vs p99 (median of repetitions)"),
    );
    let mut obstacles = Vec::new();
    if let Some(g) = s.plan.criteria.p99_ms_max {
        out.push_str(&f.goal_line(g, &format!("goal: p99 ≤ {} ms", svg::tick_label(g))));
        let (_, gy) = f.px(0.0, g);
        obstacles.push(BoxPx {
            x: f.left,
            y: gy - 2.0,
            w: f.width - f.left - f.right,
            h: 4.0,
        });
    }
    out.push_str(&frontier_line(&f, a, target));
    let (mut anchors, mut texts) = (Vec::new(), Vec::new());
    for &(i, x) in &ss {
        let (svg, anchor, bar) = frontier_setting(&f, a, target, i);
        out.push_str(&svg);
        anchors.push(anchor);
        obstacles.push(bar);
        texts.push(if a.recommendations[target].pick == Some(i) {
            format!("{} (recommended)", x.label)
        } else {
            x.label.clone()
        });
    }
    out.push_str(&labels(&f, &anchors, &texts, &obstacles));
    out.push_str(&frontier_legend(&f));
    out.push_str("</svg>");
    out
}

fn labels(f: &Frame, anchors: &[(f64, f64)], texts: &[String], obstacles: &[BoxPx]) -> String {
    let bounds = BoxPx {
        x: f.left + 2.0,
        y: f.top + 2.0,
        w: f.width - f.left - f.right - 4.0,
        h: f.height - f.top - f.bottom - 4.0,
    };
    let boxes = svg::place_labels(anchors, texts, 8.0, bounds, obstacles);
    let mut out = String::from(r#"<g class="labels">"#);
    for ((b, t), (ax, ay)) in boxes.iter().zip(texts).zip(anchors) {
        let (cx, cy) = (b.x + b.w / 2.0, b.y + b.h / 2.0);
        if (cx - ax).abs() > b.w / 2.0 + 14.0 || (cy - ay).abs() > b.h + 12.0 {
            let tx = if *ax < b.x { b.x } else { b.x + b.w };
            let _ = write!(
                out,
                r##"<line class="leader" x1="{ax:.1}" y1="{ay:.1}" x2="{tx:.1}" y2="{cy:.1}" stroke="#aaa"/>"##
            );
        }
        let _ = write!(
            out,
            r#"<text class="point-label" x="{:.1}" y="{:.1}" font-size="12">{}</text>"#,
            b.x,
            b.y + b.h - 3.0,
            esc(t)
        );
    }
    out.push_str("</g>");
    out
}

fn frontier_legend(f: &Frame) -> String {
    let x = f.width - f.right - 330.0;
    let y = f.height - f.bottom - 62.0;
    format!(
        r##"<g class="legend" font-size="11"><rect x="{x}" y="{y}" width="326" height="58" fill="#fff" fill-opacity="0.9" stroke="#999"/><circle cx="{a}" cy="{b1}" r="5" fill="#1f77b4"/><text x="{t}" y="{c1}">on the frontier (no setting faster and lower p99)</text><circle cx="{a}" cy="{b2}" r="5" fill="#555" stroke="#ff7f0e" stroke-width="3"/><text x="{t}" y="{c2}">within noise of the best sustained rate</text><line x1="{l0}" y1="{b3}" x2="{l1}" y2="{b3}" stroke="#555" stroke-opacity="0.45" stroke-width="3"/><text x="{t}" y="{c3}">sustained → first rate seen failing</text></g>"##,
        a = x + 12.0,
        t = x + 24.0,
        l0 = x + 5.0,
        l1 = x + 19.0,
        b1 = y + 12.0,
        c1 = y + 16.0,
        b2 = y + 29.0,
        c2 = y + 33.0,
        b3 = y + 46.0,
        c3 = y + 50.0,
    )
}
