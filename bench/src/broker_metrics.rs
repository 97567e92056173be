//! The broker's own view of a run: the Prometheus `/metrics` page (Shoal's admin listener, or
//! any broker exposing `*_seconds` histograms) scraped before and after, and for each histogram
//! what happened in between: count, mean and bucket-bounded p50/p99.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A `/metrics` page larger than this is refused.
pub const SCRAPE_BYTES_MAX: usize = 4 << 20;
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Histograms of one scrape: per name, (upper bound s, cumulative count) in page order, and sums.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scrape {
    buckets: BTreeMap<String, Vec<(f64, f64)>>,
    sums: BTreeMap<String, f64>,
}

/// One histogram's share of the run, in milliseconds. The quantiles are the upper bounds of the
/// buckets they fall in (infinite: above the last bound).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageFigures {
    pub name: String,
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms_at_most: f64,
    pub p99_ms_at_most: f64,
    pub p999_ms_at_most: f64,
}

/// `GET` of an `http://host:port/path` URL.
pub fn fetch(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs"))?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let fail = |e: std::io::Error| format!("{url}: {e}");
    let mut s = std::net::TcpStream::connect(host).map_err(fail)?;
    s.set_read_timeout(Some(SCRAPE_TIMEOUT)).map_err(fail)?;
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(fail)?;
    let mut body = Vec::new();
    s.take(SCRAPE_BYTES_MAX as u64 + 1)
        .read_to_end(&mut body)
        .map_err(fail)?;
    if body.len() > SCRAPE_BYTES_MAX {
        return Err(format!("{url}: page over {SCRAPE_BYTES_MAX} bytes"));
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    let (head, page) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(format!(
            "{url}: {}",
            head.lines().next().unwrap_or("no answer")
        ));
    }
    Ok(page.to_string())
}

pub fn parse(page: &str) -> Scrape {
    let mut scrape = Scrape::default();
    for line in page.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        if let Some((name, labels)) = series.split_once("_bucket{") {
            let le = labels
                .split_once("le=\"")
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(le, _)| le);
            let bound = match le {
                Some("+Inf") => f64::INFINITY,
                Some(le) => match le.parse() {
                    Ok(b) => b,
                    Err(_) => continue,
                },
                None => continue,
            };
            scrape
                .buckets
                .entry(name.to_string())
                .or_default()
                .push((bound, value));
        } else if let Some(name) = series.strip_suffix("_sum") {
            scrape.sums.insert(name.to_string(), value);
        }
    }
    scrape
}

/// Per histogram present in both scrapes with samples in between.
pub fn breakdown(before: &Scrape, after: &Scrape) -> Vec<StageFigures> {
    let mut out = Vec::new();
    for (name, buckets) in &after.buckets {
        let earlier = before.buckets.get(name);
        let delta: Vec<(f64, f64)> = buckets
            .iter()
            .enumerate()
            .map(|(i, &(bound, c))| {
                let prev = earlier.and_then(|b| b.get(i)).map_or(0.0, |b| b.1);
                (bound, (c - prev).max(0.0))
            })
            .collect();
        let count = delta.last().map_or(0.0, |d| d.1);
        if count <= 0.0 {
            continue;
        }
        let sum = after.sums.get(name).copied().unwrap_or(0.0)
            - before.sums.get(name).copied().unwrap_or(0.0);
        let at_most = |q: f64| {
            delta
                .iter()
                .find(|(_, c)| *c >= q * count)
                .map_or(f64::INFINITY, |(b, _)| b * 1e3)
        };
        out.push(StageFigures {
            name: name.clone(),
            count: count as u64,
            mean_ms: sum / count * 1e3,
            p50_ms_at_most: at_most(0.50),
            p99_ms_at_most: at_most(0.99),
            p999_ms_at_most: at_most(0.999),
        });
    }
    out
}

pub fn render(stages: &[StageFigures]) -> String {
    let mut s = String::from("broker-side (from /metrics, over the whole run):\n");
    s += &format!(
        "  {:<42} {:>9} {:>9} {:>9} {:>9} {:>10}\n",
        "histogram", "count", "mean ms", "p50 ≤ ms", "p99 ≤ ms", "p99.9 ≤ ms"
    );
    let ms = |v: f64| {
        if v.is_finite() {
            format!("{v:.3}")
        } else {
            "> last".into()
        }
    };
    for st in stages {
        s += &format!(
            "  {:<42} {:>9} {:>9.3} {:>9} {:>9} {:>10}\n",
            st.name,
            st.count,
            st.mean_ms,
            ms(st.p50_ms_at_most),
            ms(st.p99_ms_at_most),
            ms(st.p999_ms_at_most)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(counts: [u64; 4], sum: f64) -> String {
        format!(
            "# TYPE x_seconds histogram\nx_seconds_bucket{{le=\"0.001\"}} {}\nx_seconds_bucket{{le=\"0.005\"}} {}\nx_seconds_bucket{{le=\"0.01\"}} {}\nx_seconds_bucket{{le=\"+Inf\"}} {}\nx_seconds_sum {sum}\nx_seconds_count {}\nother_total 7\n",
            counts[0], counts[1], counts[2], counts[3], counts[3]
        )
    }

    #[test]
    fn the_difference_of_two_scrapes_gives_counts_means_and_bounded_quantiles() {
        let before = parse(&page([10, 10, 10, 10], 0.005));
        // 100 more samples: 50 below 1 ms, 49 in (1, 5] ms, 1 above 10 ms.
        let after = parse(&page([60, 109, 109, 110], 0.005 + 0.3));
        let b = breakdown(&before, &after);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].name, "x_seconds");
        assert_eq!(b[0].count, 100);
        assert!((b[0].mean_ms - 3.0).abs() < 1e-9, "{}", b[0].mean_ms);
        assert_eq!(b[0].p50_ms_at_most, 1.0);
        assert_eq!(b[0].p99_ms_at_most, 5.0);
        assert_eq!(
            b[0].p999_ms_at_most,
            f64::INFINITY,
            "the one sample above 10 ms"
        );
        let none = breakdown(&after, &after);
        assert!(none.is_empty(), "no samples in between: {none:?}");
        let table = render(&b);
        assert!(table.contains("x_seconds"), "{table}");
    }

    #[test]
    fn a_fetch_of_a_closed_port_is_an_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        assert!(fetch(&format!("http://127.0.0.1:{port}/metrics")).is_err());
        assert!(fetch("https://example.invalid/metrics").is_err());
    }
}
