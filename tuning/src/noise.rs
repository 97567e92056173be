//! How busy the host was around each step: load average and CPU steal, from /proc.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// One reading of /proc/loadavg and the aggregate `cpu` line of /proc/stat.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostSample {
    pub load_avg_1m: f64,
    /// Cumulative jiffies of the `cpu` line: all states, and steal alone.
    pub cpu_total_ticks: u64,
    pub cpu_steal_ticks: u64,
    /// Idle + iowait jiffies.
    pub cpu_idle_ticks: u64,
}

impl HostSample {
    pub fn read() -> HostSample {
        HostSample::from_root(Path::new("/"))
    }

    /// Reads `proc/loadavg` and `proc/stat` under `root`; missing files read as zeros.
    pub fn from_root(root: &Path) -> HostSample {
        let load_avg_1m = std::fs::read_to_string(root.join("proc/loadavg"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
            .unwrap_or(0.0);
        let stat = std::fs::read_to_string(root.join("proc/stat")).unwrap_or_default();
        let ticks: Vec<u64> = stat
            .lines()
            .find(|l| l.starts_with("cpu "))
            .map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .filter_map(|v| v.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        // user nice system idle iowait irq softirq steal guest guest_nice; guest time is
        // already counted in user/nice.
        let at = |i: usize| ticks.get(i).copied().unwrap_or(0);
        HostSample {
            load_avg_1m,
            cpu_total_ticks: ticks.iter().take(8).sum(),
            cpu_steal_ticks: at(7),
            cpu_idle_ticks: at(3) + at(4),
        }
    }
}

/// The host around one step: readings before and after, and shares of CPU time between them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostNoise {
    pub load_avg_1m_before: f64,
    pub load_avg_1m_after: f64,
    pub steal_pct: f64,
    /// CPU busy (not idle/iowait) over the step, all processes, % of all cores.
    pub busy_pct: f64,
}

impl HostNoise {
    pub fn between(before: &HostSample, after: &HostSample) -> HostNoise {
        let total = after.cpu_total_ticks.saturating_sub(before.cpu_total_ticks);
        let pct = |d: u64| {
            if total == 0 {
                0.0
            } else {
                100.0 * d as f64 / total as f64
            }
        };
        let idle = after.cpu_idle_ticks.saturating_sub(before.cpu_idle_ticks);
        HostNoise {
            load_avg_1m_before: before.load_avg_1m,
            load_avg_1m_after: after.load_avg_1m,
            steal_pct: pct(after.cpu_steal_ticks.saturating_sub(before.cpu_steal_ticks)),
            busy_pct: pct(total.saturating_sub(idle)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(dir: &Path, load: &str, cpu: &str) -> HostSample {
        std::fs::create_dir_all(dir.join("proc")).unwrap();
        std::fs::write(
            dir.join("proc/loadavg"),
            format!("{load} 0.5 0.2 1/100 42\n"),
        )
        .unwrap();
        std::fs::write(
            dir.join("proc/stat"),
            format!("cpu  {cpu}\ncpu0 1 2 3\nintr 5\n"),
        )
        .unwrap();
        HostSample::from_root(dir)
    }

    #[test]
    fn steal_and_busy_come_from_the_tick_deltas() {
        let d = tempfile::tempdir().unwrap();
        let a = fake(d.path(), "1.25", "100 0 50 800 50 0 0 0 0 0");
        let b = fake(d.path(), "2.50", "160 0 70 860 50 0 0 60 0 0");
        assert_eq!(a.load_avg_1m, 1.25);
        assert_eq!(a.cpu_total_ticks, 1000);
        let n = HostNoise::between(&a, &b);
        assert_eq!(n.load_avg_1m_after, 2.5);
        assert!((n.steal_pct - 30.0).abs() < 1e-9, "{n:?}");
        assert!((n.busy_pct - 70.0).abs() < 1e-9, "{n:?}");
        let none = HostSample::from_root(&d.path().join("missing"));
        assert_eq!(none, HostSample::default());
    }
}
