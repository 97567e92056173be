//! Hand-written SVG charts for the report: axes with titles and units, log or linear
//! scales, whiskers for spreads, and point labels placed so that none overlap.

use std::fmt::Write;

pub const FONT: &str = "DejaVu Sans, Arial, sans-serif";
/// Width of one character of the 12 px label font, generously (px).
pub const LABEL_CHAR_PX: f64 = 7.4;
pub const LABEL_HEIGHT_PX: f64 = 14.0;
/// Label placement tries at most this many displacements per label.
pub const LABEL_TRIES_MAX: usize = 60;

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    Linear,
    Log,
}

/// One axis: data range, scale, and its title (which names the unit).
#[derive(Clone, Debug)]
pub struct Axis {
    pub title: String,
    pub lo: f64,
    pub hi: f64,
    pub scale: Scale,
}

impl Axis {
    /// Linear from 0 (or log around the data) with some headroom.
    pub fn fit(title: &str, values: &[f64], scale: Scale) -> Axis {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let max = finite.iter().copied().fold(f64::MIN, f64::max);
        let min = finite.iter().copied().fold(f64::MAX, f64::min);
        let (lo, hi) = match scale {
            Scale::Linear => (0.0, if max > 0.0 { max * 1.1 } else { 1.0 }),
            Scale::Log => {
                let min = if min > 0.0 && min.is_finite() {
                    min
                } else {
                    0.1
                };
                let max = if max > min { max } else { min * 10.0 };
                (
                    10f64.powf((min * 0.8).log10().floor()),
                    10f64.powf((max * 1.25).log10().ceil()),
                )
            }
        };
        Axis {
            title: title.to_string(),
            lo,
            hi,
            scale,
        }
    }

    /// Position in [0, 1] along the axis (clamped).
    pub fn frac(&self, v: f64) -> f64 {
        let f = match self.scale {
            Scale::Linear => (v - self.lo) / (self.hi - self.lo),
            Scale::Log => {
                (v.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
            }
        };
        f.clamp(0.0, 1.0)
    }

    pub fn ticks(&self) -> Vec<f64> {
        match self.scale {
            Scale::Linear => {
                let raw = (self.hi - self.lo) / 5.0;
                let mag = 10f64.powf(raw.log10().floor());
                let step = [1.0, 2.0, 5.0, 10.0]
                    .iter()
                    .map(|m| m * mag)
                    .find(|s| *s >= raw)
                    .unwrap_or(raw);
                let mut v = Vec::new();
                let mut t = (self.lo / step).ceil() * step;
                while t <= self.hi + step * 1e-9 {
                    v.push(t);
                    t += step;
                }
                v
            }
            Scale::Log => {
                let decades = (self.hi / self.lo).log10().round() as i32;
                let mults: &[f64] = if decades <= 2 {
                    &[1.0, 2.0, 5.0]
                } else {
                    &[1.0]
                };
                let mut v = Vec::new();
                let mut d = self.lo;
                while d <= self.hi * 1.0001 {
                    for m in mults {
                        if d * m <= self.hi * 1.0001 {
                            v.push(d * m);
                        }
                    }
                    d *= 10.0;
                }
                v
            }
        }
    }
}

pub fn tick_label(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 10.0 {
        format!("{:.0}", v)
    } else if v.abs() >= 1.0 {
        format!("{}", (v * 10.0).round() / 10.0)
    } else {
        let s = format!("{:.3}", v);
        s.trim_end_matches('0').to_string()
    }
}

/// A chart being drawn: pixel frame and the two axes.
pub struct Frame {
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub right: f64,
    pub top: f64,
    pub bottom: f64,
    pub x: Axis,
    pub y: Axis,
}

impl Frame {
    pub fn px(&self, x: f64, y: f64) -> (f64, f64) {
        let pw = self.width - self.left - self.right;
        let ph = self.height - self.top - self.bottom;
        (
            self.left + self.x.frac(x) * pw,
            self.top + (1.0 - self.y.frac(y)) * ph,
        )
    }

    /// Opens the `<svg>`, draws title, grid, ticks and both axis titles.
    pub fn open(&self, class: &str, title: &str) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart {class}" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="{FONT}" role="img" aria-label="{t}">"#,
            w = self.width,
            h = self.height,
            t = esc(title)
        );
        let _ = write!(
            s,
            r##"<rect width="100%" height="100%" fill="#fff"/><text class="chart-title" x="{}" y="20" font-size="15" font-weight="bold" text-anchor="middle">{}</text>"##,
            self.width / 2.0,
            esc(title)
        );
        s.push_str(&self.axes());
        s
    }

    fn axes(&self) -> String {
        let mut s = String::new();
        let (x0, y0) = (self.left, self.height - self.bottom);
        let (x1, y1) = (self.width - self.right, self.top);
        let _ = write!(s, r#"<g class="axis x">"#);
        for t in self.x.ticks() {
            let (px, _) = self.px(t, self.y.lo);
            let _ = write!(
                s,
                r##"<line x1="{px:.1}" y1="{y1}" x2="{px:.1}" y2="{y0}" stroke="#e5e5e5"/><text class="tick" x="{px:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"##,
                y0 + 15.0,
                tick_label(t)
            );
        }
        let _ = write!(
            s,
            r##"<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#333"/><text class="axis-label x" x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}</text></g>"##,
            (x0 + x1) / 2.0,
            self.height - 8.0,
            esc(&self.x.title)
        );
        let _ = write!(s, r#"<g class="axis y">"#);
        for t in self.y.ticks() {
            let (_, py) = self.px(self.x.lo, t);
            let _ = write!(
                s,
                r##"<line x1="{x0}" y1="{py:.1}" x2="{x1}" y2="{py:.1}" stroke="#e5e5e5"/><text class="tick" x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
                x0 - 5.0,
                py + 4.0,
                tick_label(t)
            );
        }
        let cy = (y0 + y1) / 2.0;
        let _ = write!(
            s,
            r##"<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#333"/><text class="axis-label y" x="14" y="{cy:.1}" font-size="12" text-anchor="middle" transform="rotate(-90 14 {cy:.1})">{}</text></g>"##,
            esc(&self.y.title)
        );
        s
    }

    /// Horizontal dashed line at `y` with a label at the right end.
    pub fn goal_line(&self, y: f64, label: &str) -> String {
        let (xa, py) = self.px(self.x.lo, y);
        let (xb, _) = self.px(self.x.hi, y);
        format!(
            r##"<g class="goal"><line x1="{xa:.1}" y1="{py:.1}" x2="{xb:.1}" y2="{py:.1}" stroke="#d62728" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" font-size="11" fill="#d62728" text-anchor="end">{}</text></g>"##,
            xb - 4.0,
            py - 4.0,
            esc(label)
        )
    }
}

/// An axis-aligned box in pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoxPx {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl BoxPx {
    pub fn overlaps(&self, o: &BoxPx) -> bool {
        self.x < o.x + o.w && o.x < self.x + self.w && self.y < o.y + o.h && o.y < self.y + self.h
    }
}

/// Places one label per anchor (px) so that no two labels overlap each other, any marker
/// (radius `marker_r` around every anchor) or leave `bounds`. Returns the label boxes
/// (x, y = top-left). A label that cannot be placed near its point moves further away and
/// gets a leader line (drawn by the caller when the box is far from its anchor).
pub fn place_labels(
    anchors: &[(f64, f64)],
    texts: &[String],
    marker_r: f64,
    bounds: BoxPx,
    obstacles: &[BoxPx],
) -> Vec<BoxPx> {
    let markers: Vec<BoxPx> = anchors
        .iter()
        .map(|&(x, y)| BoxPx {
            x: x - marker_r,
            y: y - marker_r,
            w: 2.0 * marker_r,
            h: 2.0 * marker_r,
        })
        .collect();
    let mut order: Vec<usize> = (0..anchors.len()).collect();
    order.sort_by(|&a, &b| {
        anchors[a]
            .1
            .total_cmp(&anchors[b].1)
            .then(anchors[a].0.total_cmp(&anchors[b].0))
    });
    let mut placed: Vec<Option<BoxPx>> = vec![None; anchors.len()];
    for i in order {
        let (ax, ay) = anchors[i];
        let w = texts[i].chars().count() as f64 * LABEL_CHAR_PX;
        let h = LABEL_HEIGHT_PX;
        let fits = |b: &BoxPx, placed: &[Option<BoxPx>]| {
            b.x >= bounds.x
                && b.y >= bounds.y
                && b.x + b.w <= bounds.x + bounds.w
                && b.y + b.h <= bounds.y + bounds.h
                && !markers.iter().chain(obstacles).any(|m| m.overlaps(b))
                && !placed.iter().flatten().any(|p| p.overlaps(b))
        };
        let mut chosen = None;
        'search: for k in 0..LABEL_TRIES_MAX {
            let d = (k / 6) as f64 * LABEL_HEIGHT_PX;
            let gap = marker_r + 3.0;
            let cands = [
                (ax + gap, ay - h / 2.0 - d),
                (ax + gap, ay - h / 2.0 + d),
                (ax - gap - w, ay - h / 2.0 - d),
                (ax - gap - w, ay - h / 2.0 + d),
                (ax - w / 2.0, ay - gap - h - d),
                (ax - w / 2.0, ay + gap + d),
            ];
            let (x, y) = cands[k % 6];
            let b = BoxPx { x, y, w, h };
            if fits(&b, &placed) {
                chosen = Some(b);
                break 'search;
            }
        }
        // Last resort: stack below everything placed, inside the bounds.
        let b = chosen.unwrap_or_else(|| {
            let bottom = placed
                .iter()
                .flatten()
                .map(|p| p.y + p.h)
                .fold(bounds.y, f64::max);
            BoxPx {
                x: (ax + marker_r + 3.0)
                    .min(bounds.x + bounds.w - w)
                    .max(bounds.x),
                y: bottom + 1.0,
                w,
                h,
            }
        });
        placed[i] = Some(b);
    }
    placed
        .into_iter()
        .map(|b| b.expect("every label placed"))
        .collect()
}

/// Colours for series, distinguishable and printable.
pub const PALETTE: [&str; 12] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_tick_sensibly() {
        let a = Axis::fit("x (MB/s)", &[3.0, 41.0], Scale::Linear);
        assert_eq!(a.lo, 0.0);
        let t = a.ticks();
        assert_eq!(t.first(), Some(&0.0));
        assert!(t.len() >= 4 && t.len() <= 11, "{t:?}");
        let l = Axis::fit("p99 (ms)", &[0.8, 90.0], Scale::Log);
        assert_eq!((l.lo, l.hi), (0.1, 1000.0));
        assert_eq!(l.ticks(), vec![0.1, 1.0, 10.0, 100.0, 1000.0]);
        assert_eq!(tick_label(0.25), "0.25");
        assert_eq!(tick_label(20.0), "20");
    }

    #[test]
    fn labels_never_overlap_even_when_points_coincide() {
        let anchors: Vec<(f64, f64)> = (0..12).map(|i| (300.0 + (i % 3) as f64, 200.0)).collect();
        let texts: Vec<String> = (0..12).map(|i| format!("l={i} b=128k")).collect();
        let bounds = BoxPx {
            x: 60.0,
            y: 30.0,
            w: 600.0,
            h: 400.0,
        };
        let boxes = place_labels(&anchors, &texts, 5.0, bounds, &[]);
        for i in 0..boxes.len() {
            for j in i + 1..boxes.len() {
                assert!(
                    !boxes[i].overlaps(&boxes[j]),
                    "{i} {j}: {:?} {:?}",
                    boxes[i],
                    boxes[j]
                );
            }
            assert!(boxes[i].x >= bounds.x && boxes[i].x + boxes[i].w <= bounds.x + bounds.w);
        }
    }
}
