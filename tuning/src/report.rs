//! Files of a finished sweep: report.html, charts (SVG + PNG), recommendation.md.

use crate::analysis::{self, Analysis};
use crate::charts;
use crate::driver::{SweepV2, SWEEP_FORMAT_V2};
use crate::html;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path} is not a {SWEEP_FORMAT_V2} sweep: {reason}")]
    Format { path: String, reason: String },
    #[error("write {path}: {reason}")]
    Write { path: String, reason: String },
}

pub fn load(path: &Path) -> Result<SweepV2, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReportError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let s: SweepV2 = serde_json::from_str(&text).map_err(|e| ReportError::Format {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    if s.format != SWEEP_FORMAT_V2 {
        return Err(ReportError::Format {
            path: path.display().to_string(),
            reason: format!("format {:?}", s.format),
        });
    }
    Ok(s)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, ReportError> {
    let p = dir.join(name);
    std::fs::write(&p, bytes).map_err(|e| ReportError::Write {
        path: p.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(p)
}

/// Writes an SVG and, when a font is installed, its PNG.
fn write_chart(dir: &Path, stem: &str, svg: &str) -> Result<Vec<PathBuf>, ReportError> {
    let mut out = vec![write(dir, &format!("{stem}.svg"), svg.as_bytes())?];
    match shoal_bench::plot::svg_to_png(svg) {
        Ok(png) => out.push(write(dir, &format!("{stem}.png"), &png)?),
        Err(w) => eprintln!("shoal-tune: warning: no {stem}.png: {w}"),
    }
    Ok(out)
}

/// All curve panels of one target in one SVG (nested panels), for the PNG.
fn curves_sheet(s: &SweepV2, a: &Analysis, target: usize) -> String {
    let axes = charts::curve_axes(a, target, s.plan.criteria.p99_ms_max);
    let panels: Vec<String> = a
        .settings
        .iter()
        .filter(|x| x.target == target)
        .map(|x| charts::curve_panel(s, a, target, x, &axes))
        .collect();
    let cols = 3.min(panels.len().max(1));
    let rows = panels.len().div_ceil(cols);
    let (w, h) = (380.0 * cols as f64, 270.0 * rows as f64);
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">"#
    );
    for (i, p) in panels.iter().enumerate() {
        let (x, y) = ((i % cols) as f64 * 380.0, (i / cols) as f64 * 270.0);
        out.push_str(&p.replacen("<svg ", &format!(r#"<svg x="{x}" y="{y}" "#), 1));
    }
    out.push_str("</svg>");
    out
}

pub fn write_all(s: &SweepV2, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let a = analysis::analyse(s);
    let mut out = Vec::new();
    for t in 0..s.plan.targets.len() {
        let sfx = if s.plan.targets.len() > 1 {
            format!("-{}", s.plan.targets[t].name)
        } else {
            String::new()
        };
        out.extend(write_chart(
            dir,
            &format!("frontier{sfx}"),
            &charts::frontier_chart(s, &a, t),
        )?);
        out.extend(write_chart(
            dir,
            &format!("curves{sfx}"),
            &curves_sheet(s, &a, t),
        )?);
    }
    let json = serde_json::to_string_pretty(&a).map_err(|e| ReportError::Write {
        path: "analysis.json".into(),
        reason: e.to_string(),
    })?;
    out.push(write(dir, "analysis.json", json.as_bytes())?);
    out.push(write(
        dir,
        "recommendation.md",
        html::recommendation_md(s, &a).as_bytes(),
    )?);
    out.push(write(
        dir,
        "report.html",
        html::report_html(s, &a).as_bytes(),
    )?);
    Ok(out)
}
