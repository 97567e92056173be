//! Opens a sweep report in headless Chromium, takes a screenshot, and checks from the
//! rendered DOM that the curves, the frontier and the table are there, that every chart
//! has axis titles with units, and that no two frontier labels overlap.
//!
//! Needs Debian's `chromium` (scripts/install-deps); fails, does not skip, without it.

use shoal_bench::workload::Workload;
use shoal_tuning::driver::{self, Hooks, ModelEndpoint, Plan, SweepV2, Target};
use shoal_tuning::knobs::{Dimension, Knob};
use shoal_tuning::report;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs in the page after layout; writes its findings into <pre id="dom-check">.
const CHECK_JS: &str = r#"
<script>
window.addEventListener('load', () => {
  const out = {};
  const charts = [...document.querySelectorAll('svg.chart')];
  out.curves = document.querySelectorAll('svg.chart.curve').length;
  out.curve_lines = document.querySelectorAll('svg.chart.curve polyline.curve-line').length;
  out.frontiers = document.querySelectorAll('svg.chart.frontier').length;
  out.frontier_points = document.querySelectorAll('svg.chart.frontier g.setting circle').length;
  out.table_rows = document.querySelectorAll('#points-table tr').length - 1;
  out.grid_rows = document.querySelectorAll('#grid-table tr').length - 1;
  out.recommendation = (document.querySelector('[id^=recommendation]') || {}).textContent || '';
  out.properties = (document.querySelector('pre.properties') || {}).textContent || '';
  out.charts = charts.length;
  out.unlabelled = [];
  const unit = /\((ms|MB\/s|msg\/s)[,)]/;
  for (const c of charts) {
    for (const axis of ['x', 'y']) {
      const t = c.querySelector('text.axis-label.' + axis);
      const box = t ? t.getBBox() : null;
      if (!t || !unit.test(t.textContent) || !box || box.width < 20) {
        out.unlabelled.push((c.getAttribute('aria-label') || '?') + ' axis ' + axis);
      }
    }
    if (c.querySelectorAll('g.axis text.tick').length < 4) out.unlabelled.push('ticks of ' + c.getAttribute('aria-label'));
  }
  out.overlaps = [];
  for (const f of document.querySelectorAll('svg.chart.frontier')) {
    const boxes = [...f.querySelectorAll('text.point-label')].map(t => [t.textContent, t.getBBox()]);
    out.frontier_labels = boxes.length;
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i][1], b = boxes[j][1];
      if (a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height)
        out.overlaps.push(boxes[i][0] + ' / ' + boxes[j][0]);
    }
  }
  const pre = document.createElement('pre');
  pre.id = 'dom-check';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"#;

fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("which").arg(name).output() {
            if out.status.success() {
                return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            }
        }
    }
    panic!(
        "headless Chromium is required for this test and was not found on PATH: \
         install Debian's `chromium` (scripts/install-deps does)"
    );
}

fn model_sweep() -> SweepV2 {
    let w = Workload::from_toml(
        "name='tune-model'\ntopics=1\npartitions_per_topic=16\nmessage_size=1024\nproducers_per_topic=1\nconsumers_per_subscription=0\nproducer_rate=5000\nduration_s=3\nwarmup_s=1\n",
    )
    .unwrap();
    let dims = vec![
        Dimension::parse(Knob::LingerMs, "0,1,5,20").unwrap(),
        Dimension::parse(Knob::BatchSize, "16k,128k,1M").unwrap(),
    ];
    let targets = vec![Target {
        name: "t0".into(),
        brokers: "model:0".into(),
        description: "model endpoint".into(),
    }];
    let plan = Plan::model(w, targets, dims, Some(10.0), 5000.0, 11).unwrap();
    let mut ep = ModelEndpoint {
        capacity_msgs_per_s: vec![40_000.0],
        step_s: 5.0,
        calls: Vec::new(),
    };
    let (mut log, mut save) = (|_: &str| {}, |_: &SweepV2, _: Option<&str>| Ok(None));
    driver::run_sweep(
        plan,
        "model".into(),
        &mut ep,
        Hooks {
            log: &mut log,
            save: &mut save,
        },
    )
    .unwrap()
}

fn field<'a>(json: &'a serde_json::Value, k: &str) -> &'a serde_json::Value {
    json.get(k)
        .unwrap_or_else(|| panic!("dom-check has no {k}: {json}"))
}

fn run_chromium(args: &[&str], page: &Path) -> String {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--virtual-time-budget=5000",
        ])
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("start chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn report_renders_in_headless_chromium_with_labelled_charts() {
    let s = model_sweep();
    let a = shoal_tuning::analysis::analyse(&s);
    let grid = s.grid.as_ref().expect("the sweep has a shared grid");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-chromium");
    std::fs::create_dir_all(&dir).unwrap();
    report::write_all(&s, &dir).unwrap();
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        !html.contains("<script"),
        "the report itself is script-free"
    );
    let checked = dir.join("report-checked.html");
    std::fs::write(
        &checked,
        html.replace("</body>", &format!("{CHECK_JS}</body>")),
    )
    .unwrap();

    let shot = dir.join("report.png");
    let _ = std::fs::remove_file(&shot);
    run_chromium(
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,2600",
        ],
        &checked,
    );
    let png = std::fs::read(&shot).expect("chromium wrote a screenshot");
    assert_eq!(&png[1..4], b"PNG");
    assert!(
        png.len() > 50_000,
        "screenshot looks blank: {} bytes",
        png.len()
    );

    let dom = run_chromium(&["--dump-dom"], &checked);
    let start = dom
        .find("<pre id=\"dom-check\">")
        .expect("check script ran")
        + 20;
    let end = start + dom[start..].find("</pre>").unwrap();
    let text = dom[start..end]
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"");
    let j: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(field(&j, "curves"), 12, "{j}");
    assert_eq!(field(&j, "curve_lines"), 12, "{j}");
    assert_eq!(field(&j, "frontiers"), 1, "{j}");
    assert!(field(&j, "frontier_points").as_u64().unwrap() >= 6, "{j}");
    assert_eq!(
        field(&j, "frontier_labels"),
        field(&j, "frontier_points"),
        "{j}"
    );
    // Every curve and grid point; 12 settings' own fractions (some covered by the grid).
    assert_eq!(field(&j, "table_rows"), a.points.len(), "{j}");
    assert!(a.points.len() >= 12 * 3, "{}", a.points.len());
    assert!(a.points.iter().any(|p| p.shared));
    assert_eq!(field(&j, "grid_rows"), grid.settings.len(), "{j}");
    assert!(grid.settings.len() >= 2, "{grid:?}");
    assert_eq!(field(&j, "charts"), 13, "{j}");
    assert_eq!(field(&j, "unlabelled"), &serde_json::json!([]), "{j}");
    assert_eq!(field(&j, "overlaps"), &serde_json::json!([]), "{j}");
    let rec = field(&j, "recommendation").as_str().unwrap();
    assert!(rec.contains("Recommended:"), "{rec}");
    let properties = field(&j, "properties").as_str().unwrap();
    for key in ["linger.ms=", "batch.size=", "acks="] {
        assert!(properties.contains(key), "{key} in {properties}");
    }
    eprintln!("screenshot: {}", shot.display());
}
