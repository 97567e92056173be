//! Charts: SVG via plotters (no system libraries), PNG by rendering that SVG with resvg.

use plotters::prelude::*;
use std::path::{Path, PathBuf};

pub const WIDTH: u32 = 1200;
/// Rough size of a 13 px label character and line, for label placement.
const LABEL_CHAR_PX: i32 = 7;
const LABEL_LINE_PX: i32 = 15;
/// Right end of the percentile axis (one decade past 99.999%); the max is drawn there.
pub const CURVE_X_MAX: f64 = 1e6;
pub const HEIGHT: u32 = 750;
/// Fonts tried for PNG text, in order (Debian package fonts-dejavu-core).
pub const FONT_PATHS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];
pub const FONT_ENV: &str = "SHOAL_BENCH_FONT";

pub const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// One line of a percentile chart: x = 1/(1-p), y = latency in µs.
pub struct Curve {
    pub name: String,
    pub points: Vec<(f64, u64)>,
    pub color: RGBColor,
    pub dashed: bool,
}

/// One line of a time chart: (seconds, value).
pub struct TimeLine {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub color: RGBColor,
    pub dashed: bool,
}

type PlotResult<T> = Result<T, String>;

fn e<E: std::fmt::Display>(err: E) -> String {
    format!("plot: {err}")
}

pub fn percentile_label(x: f64) -> String {
    // x = 1/(1-p)
    let p = (1.0 - 1.0 / x) * 100.0;
    if x >= CURVE_X_MAX * 0.999 {
        "max".into()
    } else if p <= 0.0 {
        "0%".into()
    } else {
        let s = format!("{p:.5}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        format!("{s}%")
    }
}

pub fn ms_label(ms: f64) -> String {
    if ms >= 1.0 {
        format!("{}", ms.round() as u64)
    } else {
        let s = format!("{ms:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn y_range_ms(mins_maxs: impl Iterator<Item = f64>) -> (f64, f64) {
    let mut lo = f64::MAX;
    let mut hi: f64 = 0.0;
    for v in mins_maxs {
        if v > 0.0 {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if hi <= 0.0 {
        return (0.01, 10.0);
    }
    let lo = 10f64.powf((lo * 0.8).log10().floor());
    let hi = 10f64.powf((hi * 1.25).log10().ceil());
    (lo.max(0.001), hi.max(lo * 10.0))
}

/// The HDR percentile chart: latency (ms, log) against percentile (log of 1/(1-p)).
pub fn percentile_chart(title: &str, curves: &[Curve]) -> PlotResult<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        let (ylo, yhi) = y_range_ms(
            curves
                .iter()
                .flat_map(|c| c.points.iter().map(|p| p.1 as f64 / 1000.0)),
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 26))
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(80)
            .build_cartesian_2d(
                (1f64..1e6)
                    .log_scale()
                    .with_key_points(vec![1.0, 2.0, 10.0, 100.0, 1000.0, 1e4, 1e5, 1e6]),
                (ylo..yhi).log_scale(),
            )
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc("Percentile (log scale of 1/(1-p); the last point is the max)")
            .y_desc("Latency (ms, log scale)")
            .x_label_formatter(&|x| percentile_label(*x))
            .y_label_formatter(&|y| ms_label(*y))
            .axis_desc_style(("sans-serif", 20))
            .label_style(("sans-serif", 16))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(e)?;
        for c in curves {
            let pts: Vec<(f64, f64)> = c
                .points
                .iter()
                .map(|&(x, us)| (x, (us.max(1) as f64 / 1000.0).max(ylo)))
                .collect();
            let style = c.color.stroke_width(3);
            let anno = if c.dashed {
                chart
                    .draw_series(DashedLineSeries::new(pts, 10, 6, style))
                    .map_err(e)?
            } else {
                chart.draw_series(LineSeries::new(pts, style)).map_err(e)?
            };
            let col = c.color;
            let dashed = c.dashed;
            anno.label(c.name.clone()).legend(move |(x, y)| {
                if dashed {
                    PathElement::new(vec![(x, y), (x + 8, y)], col.stroke_width(3))
                } else {
                    PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(3))
                }
            });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 16))
            .draw()
            .map_err(e)?;
        root.present().map_err(e)?;
    }
    Ok(svg)
}

/// Two panels over time: throughput (MB/s, with msgs/s on the right when `msg_bytes` is
/// given) on top, p99 latency (ms, log) below. `warmup_end_s` draws a marker.
pub fn timeline_chart(
    title: &str,
    throughput: &[TimeLine],
    latency_us: &[TimeLine],
    msg_bytes: Option<u32>,
) -> PlotResult<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        let root = root.titled(title, ("sans-serif", 26)).map_err(e)?;
        let (top, bottom) = root.split_vertically(HEIGHT as i32 / 2 - 20);
        let (tmin, tmax) = throughput
            .iter()
            .chain(latency_us.iter())
            .flat_map(|l| l.points.iter().map(|p| p.0))
            .fold((f64::MAX, f64::MIN), |(a, b), t| (a.min(t), b.max(t)));
        let (tmin, tmax) = if tmin > tmax {
            (0.0, 1.0)
        } else {
            (tmin.min(0.0).floor(), tmax.ceil().max(tmin.floor() + 1.0))
        };
        let ymax = throughput
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .fold(0.0f64, f64::max)
            .max(0.001)
            * 1.15;
        {
            let chart = ChartBuilder::on(&top)
                .margin(15)
                .margin_right(35)
                .x_label_area_size(45)
                .y_label_area_size(80)
                .right_y_label_area_size(if msg_bytes.is_some() { 110 } else { 10 })
                .build_cartesian_2d(tmin..tmax, 0.0..ymax)
                .map_err(e)?;
            let per_msg = msg_bytes.unwrap_or(1).max(1) as f64 / 1e6;
            let mut chart = chart.set_secondary_coord(tmin..tmax, 0.0..ymax / per_msg);
            chart
                .configure_mesh()
                .x_desc("Time since warm-up end (s)")
                .y_desc("Throughput (MB/s)")
                .axis_desc_style(("sans-serif", 18))
                .label_style(("sans-serif", 15))
                .light_line_style(WHITE)
                .draw()
                .map_err(e)?;
            if msg_bytes.is_some() {
                chart
                    .configure_secondary_axes()
                    .label_style(("sans-serif", 15))
                    .y_label_formatter(&|v| format!("{} msg/s", format_count(*v)))
                    .draw()
                    .map_err(e)?;
            }
            for l in throughput {
                draw_line(&mut chart, l)?;
            }
            if tmin < 0.0 {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(0.0, 0.0), (0.0, ymax)],
                        BLACK.mix(0.4).stroke_width(1),
                    )))
                    .map_err(e)?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 15))
                .draw()
                .map_err(e)?;
        }
        {
            let (ylo, yhi) = y_range_ms(
                latency_us
                    .iter()
                    .flat_map(|l| l.points.iter().map(|p| p.1 / 1000.0)),
            );
            let mut chart = ChartBuilder::on(&bottom)
                .margin(15)
                .margin_right(if msg_bytes.is_some() { 145 } else { 35 })
                .x_label_area_size(45)
                .y_label_area_size(80)
                .build_cartesian_2d(tmin..tmax, (ylo..yhi).log_scale())
                .map_err(e)?;
            chart
                .configure_mesh()
                .x_desc("Time since warm-up end (s)")
                .y_desc("p99 latency per second (ms, log)")
                .y_label_formatter(&|y| ms_label(*y))
                .axis_desc_style(("sans-serif", 18))
                .label_style(("sans-serif", 15))
                .light_line_style(WHITE)
                .draw()
                .map_err(e)?;
            for l in latency_us {
                let ms = TimeLine {
                    name: l.name.clone(),
                    points: l
                        .points
                        .iter()
                        .map(|&(t, us)| (t, (us / 1000.0).max(ylo)))
                        .collect(),
                    color: l.color,
                    dashed: l.dashed,
                };
                draw_line(&mut chart, &ms)?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 15))
                .draw()
                .map_err(e)?;
        }
        root.present().map_err(e)?;
    }
    Ok(svg)
}

fn draw_line<DB: DrawingBackend, CT: plotters::coord::CoordTranslate<From = (f64, f64)>>(
    chart: &mut ChartContext<'_, DB, CT>,
    l: &TimeLine,
) -> PlotResult<()>
where
    DB::ErrorType: 'static,
{
    let style = l.color.stroke_width(2);
    let pts = l.points.clone();
    let anno = if l.dashed {
        chart
            .draw_series(DashedLineSeries::new(pts, 8, 5, style))
            .map_err(e)?
    } else {
        chart.draw_series(LineSeries::new(pts, style)).map_err(e)?
    };
    let col = l.color;
    anno.label(l.name.clone())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2)));
    Ok(())
}

pub fn format_count(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if (1e3..1e4).contains(&v) && v % 1e3 != 0.0 {
        format!("{:.1}k", v / 1e3)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// A labelled scatter: x = throughput (MB/s), y = p99 (ms, log); `frontier` indexes are joined.
pub struct ScatterPoint {
    pub x: f64,
    pub y_ms: f64,
    pub label: String,
    pub highlight: bool,
}

pub fn frontier_chart(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    points: &[ScatterPoint],
    frontier: &[usize],
    y_limit_ms: Option<f64>,
) -> PlotResult<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        let xmax = points.iter().map(|p| p.x).fold(0.0f64, f64::max).max(0.001) * 1.2;
        let (ylo, yhi) = y_range_ms(points.iter().map(|p| p.y_ms).chain(y_limit_ms));
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 24))
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..xmax, (ylo..yhi).log_scale())
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .y_label_formatter(&|y| ms_label(*y))
            .axis_desc_style(("sans-serif", 20))
            .label_style(("sans-serif", 16))
            .light_line_style(WHITE)
            .draw()
            .map_err(e)?;
        if let Some(lim) = y_limit_ms {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(0.0, lim), (xmax, lim)],
                    10,
                    6,
                    RGBColor(214, 39, 40).stroke_width(2),
                ))
                .map_err(e)?
                .label(format!("goal: p99 <= {} ms", ms_label(lim)))
                .legend(|(x, y)| {
                    PathElement::new(
                        vec![(x, y), (x + 20, y)],
                        RGBColor(214, 39, 40).stroke_width(2),
                    )
                });
        }
        let fr: Vec<(f64, f64)> = frontier
            .iter()
            .map(|&i| (points[i].x, points[i].y_ms.max(ylo)))
            .collect();
        chart
            .draw_series(LineSeries::new(fr, color(0).stroke_width(2)))
            .map_err(e)?
            .label("frontier (no point is both faster and lower-latency)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color(0).stroke_width(2)));
        let ink = |p: &ScatterPoint| {
            if p.highlight {
                RGBColor(214, 39, 40)
            } else {
                RGBColor(60, 60, 60)
            }
        };
        for p in points {
            let r = if p.highlight { 8 } else { 5 };
            chart
                .draw_series(std::iter::once(Circle::new(
                    (p.x, p.y_ms.max(ylo)),
                    r,
                    ink(p).filled(),
                )))
                .map_err(e)?;
        }
        // Labels: placed top to bottom, pushed down past labels they would overlap, with a
        // leader line when moved.
        let pix: Vec<(i32, i32)> = points
            .iter()
            .map(|p| chart.backend_coord(&(p.x, p.y_ms.max(ylo))))
            .collect();
        let mut order: Vec<usize> = (0..points.len()).collect();
        order.sort_by_key(|&i| (pix[i].1, pix[i].0));
        let mut placed: Vec<(i32, i32, i32)> = Vec::new();
        for i in order {
            let (px, py) = pix[i];
            let w = points[i].label.chars().count() as i32 * LABEL_CHAR_PX;
            let x = px + 12;
            let mut y = py - LABEL_LINE_PX / 2;
            while placed
                .iter()
                .any(|&(ox, oy, ow)| x < ox + ow && ox < x + w && (y - oy).abs() < LABEL_LINE_PX)
            {
                y += LABEL_LINE_PX;
            }
            placed.push((x, y, w));
            let c = ink(&points[i]);
            if (y + LABEL_LINE_PX / 2 - py).abs() > 3 {
                root.draw(&PathElement::new(
                    vec![(px + 5, py), (x - 2, y + LABEL_LINE_PX / 2)],
                    RGBColor(160, 160, 160).stroke_width(1),
                ))
                .map_err(e)?;
            }
            root.draw(&Text::new(
                points[i].label.clone(),
                (x, y),
                ("sans-serif", 13).into_font().color(&c),
            ))
            .map_err(e)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .draw()
            .map_err(e)?;
        root.present().map_err(e)?;
    }
    Ok(svg)
}

/// Finds the font used for PNG text.
pub fn font_path() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var(FONT_ENV) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("{FONT_ENV}={} is not a file", p.display()))
        };
    }
    FONT_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "no font for PNG text: install Debian's fonts-dejavu-core (looked at {}) or set {FONT_ENV}=/path/to/font.ttf; the SVG charts are written regardless",
                FONT_PATHS.join(", ")
            )
        })
}

/// Renders an SVG to PNG bytes.
pub fn svg_to_png(svg: &str) -> Result<Vec<u8>, String> {
    let font = font_path()?;
    let mut opt = resvg::usvg::Options::default();
    {
        let db = opt.fontdb_mut();
        let data = std::fs::read(&font)
            .map_err(|err| format!("cannot read font {}: {err}", font.display()))?;
        db.load_font_data(data);
        let family = db
            .faces()
            .next()
            .and_then(|f| f.families.first().map(|(n, _)| n.clone()))
            .ok_or_else(|| format!("font {} has no family name", font.display()))?;
        db.set_sans_serif_family(family.clone());
        db.set_serif_family(family);
    }
    let tree = resvg::usvg::Tree::from_str(svg, &opt).map_err(|err| format!("svg parse: {err}"))?;
    let size = tree.size().to_int_size();
    let mut pixmap =
        resvg::tiny_skia::Pixmap::new(size.width(), size.height()).ok_or("svg has zero size")?;
    pixmap.fill(resvg::tiny_skia::Color::WHITE);
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::default(),
        &mut pixmap.as_mut(),
    );
    pixmap
        .encode_png()
        .map_err(|err| format!("png encode: {err}"))
}

/// Writes `<dir>/<stem>.svg` and `<dir>/<stem>.png`; returns the written paths, and a
/// warning instead of the PNG when it cannot be rendered.
pub fn write_chart(
    dir: &Path,
    stem: &str,
    svg: &str,
) -> Result<(Vec<PathBuf>, Option<String>), String> {
    let svg_path = dir.join(format!("{stem}.svg"));
    std::fs::write(&svg_path, svg).map_err(|err| format!("write {}: {err}", svg_path.display()))?;
    let mut paths = vec![svg_path];
    match svg_to_png(svg) {
        Ok(png) => {
            let p = dir.join(format!("{stem}.png"));
            std::fs::write(&p, png).map_err(|err| format!("write {}: {err}", p.display()))?;
            paths.push(p);
            Ok((paths, None))
        }
        Err(w) => Ok((paths, Some(w))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(2.0), "50%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(percentile_label(1e4), "99.99%");
        assert_eq!(percentile_label(1e5), "99.999%");
        assert_eq!(percentile_label(CURVE_X_MAX), "max");
        assert_eq!(ms_label(0.25), "0.25");
        assert_eq!(ms_label(10.0), "10");
        assert_eq!(format_count(12_500.0), "12k");
    }

    #[test]
    fn percentile_chart_has_labelled_axes() {
        let curve = Curve {
            name: "publish".into(),
            points: vec![(1.0, 100), (10.0, 200), (100.0, 900), (1000.0, 5000)],
            color: color(0),
            dashed: false,
        };
        let svg = percentile_chart("t", &[curve]).unwrap();
        assert!(svg.contains("Latency (ms, log scale)"));
        assert!(svg.contains("99.9%"));
        assert!(svg.contains("publish"));
    }

    #[test]
    fn png_renders_when_a_font_is_installed() {
        let svg = timeline_chart(
            "t",
            &[TimeLine {
                name: "publish".into(),
                points: vec![(-1.0, 1.0), (0.0, 2.0), (1.0, 2.0)],
                color: color(0),
                dashed: false,
            }],
            &[TimeLine {
                name: "p99".into(),
                points: vec![(0.0, 1500.0), (1.0, 2500.0)],
                color: color(1),
                dashed: true,
            }],
            Some(1024),
        )
        .unwrap();
        match font_path() {
            Ok(_) => {
                let png = svg_to_png(&svg).unwrap();
                assert_eq!(&png[1..4], b"PNG");
                assert!(png.len() > 10_000, "suspiciously small PNG");
            }
            Err(msg) => {
                // Missing fonts must give the install hint, not a panic.
                assert!(msg.contains("fonts-dejavu-core"), "{msg}");
                assert!(svg_to_png(&svg).is_err());
            }
        }
    }
}
