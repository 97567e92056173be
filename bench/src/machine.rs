//! The machine a result was measured on, read from /proc and /sys.

use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Disk {
    pub name: String,
    pub model: String,
    pub size_bytes: u64,
    pub rotational: bool,
    pub scheduler: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub hostname: String,
    pub cpu_model: String,
    pub cores: u32,
    pub memory_bytes: u64,
    pub kernel: String,
    pub os: String,
    pub disks: Vec<Disk>,
}

fn read(root: &Path, rel: &str) -> Option<String> {
    std::fs::read_to_string(root.join(rel))
        .ok()
        .map(|s| s.trim().to_string())
}

impl Machine {
    pub fn detect() -> Machine {
        Machine::from_root(Path::new("/"))
    }

    /// Reads everything relative to `root` (a fake tree in tests).
    pub fn from_root(root: &Path) -> Machine {
        let cpuinfo = read(root, "proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let cores = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count() as u32;
        let memory_bytes = read(root, "proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(0);
        let os = read(root, "etc/os-release")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("PRETTY_NAME="))
            .map(|l| l["PRETTY_NAME=".len()..].trim_matches('"').to_string())
            .unwrap_or_default();
        let mut disks = Vec::new();
        if let Ok(entries) = std::fs::read_dir(root.join("sys/block")) {
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    !n.starts_with("loop") && !n.starts_with("ram") && !n.starts_with("zram")
                })
                .collect();
            names.sort();
            for name in names {
                let q = format!("sys/block/{name}");
                let sectors: u64 = read(root, &format!("{q}/size"))
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                disks.push(Disk {
                    model: read(root, &format!("{q}/device/model")).unwrap_or_default(),
                    size_bytes: sectors * 512,
                    rotational: read(root, &format!("{q}/queue/rotational")).as_deref()
                        == Some("1"),
                    scheduler: read(root, &format!("{q}/queue/scheduler")).unwrap_or_default(),
                    name,
                });
            }
        }
        Machine {
            hostname: read(root, "proc/sys/kernel/hostname").unwrap_or_default(),
            cpu_model,
            cores,
            memory_bytes,
            kernel: read(root, "proc/sys/kernel/osrelease").unwrap_or_default(),
            os,
            disks,
        }
    }

    pub fn one_line(&self) -> String {
        format!(
            "{} x {}, {:.1} GiB RAM, kernel {}, disks: {}",
            self.cores,
            self.cpu_model,
            self.memory_bytes as f64 / (1u64 << 30) as f64,
            self.kernel,
            self.disks
                .iter()
                .map(|d| format!(
                    "{} {:.0} GB {}",
                    d.name,
                    d.size_bytes as f64 / 1e9,
                    if d.rotational { "hdd" } else { "ssd" }
                ))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_fake_tree() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let w = |p: &str, s: &str| {
            std::fs::create_dir_all(r.join(p).parent().unwrap()).unwrap();
            std::fs::write(r.join(p), s).unwrap();
        };
        w("proc/cpuinfo", "processor\t: 0\nmodel name\t: Fake CPU @ 3GHz\n\nprocessor\t: 1\nmodel name\t: Fake CPU @ 3GHz\n");
        w("proc/meminfo", "MemTotal:       1024 kB\nMemFree: 1 kB\n");
        w("proc/sys/kernel/osrelease", "6.18.0\n");
        w("sys/block/vda/size", "2048\n");
        w("sys/block/vda/queue/rotational", "0\n");
        w("sys/block/vda/queue/scheduler", "[none] mq-deadline\n");
        w("sys/block/loop0/size", "1\n");
        let m = Machine::from_root(r);
        assert_eq!(m.cpu_model, "Fake CPU @ 3GHz");
        assert_eq!(m.cores, 2);
        assert_eq!(m.memory_bytes, 1024 * 1024);
        assert_eq!(m.kernel, "6.18.0");
        assert_eq!(m.disks.len(), 1);
        assert_eq!(m.disks[0].size_bytes, 2048 * 512);
        assert_eq!(m.disks[0].scheduler, "[none] mq-deadline");
        assert!(!m.disks[0].rotational);
    }

    #[test]
    fn this_machine_has_cores() {
        assert!(Machine::detect().cores >= 1);
    }
}
