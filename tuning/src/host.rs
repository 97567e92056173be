//! `shoal-tune host-check`: is this host set up for a thread-per-core io_uring broker?
//!
//! Every check reads files relative to a root (a fake tree in tests); the io_uring probe
//! is passed in so tests can simulate a seccomp-blocked container.

use serde::Serialize;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Info,
    Warn,
    Fail,
}

impl Level {
    pub fn tag(self) -> &'static str {
        match self {
            Level::Ok => "OK  ",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    pub name: String,
    pub level: Level,
    pub found: String,
    /// What to change (empty when nothing needs to).
    pub advice: String,
}

fn check(name: &str, level: Level, found: impl Into<String>, advice: impl Into<String>) -> Check {
    Check {
        name: name.to_string(),
        level,
        found: found.into(),
        advice: advice.into(),
    }
}

fn read(root: &Path, rel: &str) -> Option<String> {
    std::fs::read_to_string(root.join(rel))
        .ok()
        .map(|s| s.trim().to_string())
}

/// The facts that do not come from files.
#[derive(Clone, Debug)]
pub struct Probes {
    /// Result of a real io_uring_setup(2): Ok or the errno.
    pub io_uring_setup: Result<(), i32>,
    /// RLIMIT_MEMLOCK (soft, hard) in bytes; u64::MAX = unlimited.
    pub memlock: (u64, u64),
    /// RLIMIT_NOFILE soft.
    pub nofile: u64,
}

impl Probes {
    pub fn detect() -> Probes {
        Probes {
            io_uring_setup: probe_io_uring(),
            memlock: rlimit(libc::RLIMIT_MEMLOCK),
            nofile: rlimit(libc::RLIMIT_NOFILE).0,
        }
    }
}

fn rlimit(resource: libc::__rlimit_resource_t) -> (u64, u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let rc = unsafe { libc::getrlimit(resource, &mut r) };
    if rc != 0 {
        return (0, 0);
    }
    let conv = |v: libc::rlim_t| {
        if v == libc::RLIM_INFINITY {
            u64::MAX
        } else {
            v
        }
    };
    (conv(r.rlim_cur), conv(r.rlim_max))
}

/// Creates (and closes) a real 8-entry ring.
pub fn probe_io_uring() -> Result<(), i32> {
    // struct io_uring_params is 120 bytes; zeroed means no flags.
    let mut params = [0u8; 120];
    // SAFETY: the kernel reads/writes `params`, which outlives the call.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 8u32, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    // SAFETY: fd was just returned to us.
    unsafe { libc::close(fd as i32) };
    Ok(())
}

fn errno_name(e: i32) -> String {
    match e {
        libc::EPERM => "EPERM".into(),
        libc::ENOSYS => "ENOSYS".into(),
        libc::ENOMEM => "ENOMEM".into(),
        libc::EACCES => "EACCES".into(),
        other => format!("errno {other}"),
    }
}

fn human_bytes(b: u64) -> String {
    if b == u64::MAX {
        "unlimited".into()
    } else if b >= 1 << 30 {
        format!("{} GiB", b >> 30)
    } else if b >= 1 << 20 {
        format!("{} MiB", b >> 20)
    } else {
        format!("{} KiB", b >> 10)
    }
}

/// Bit 14 of CapEff in /proc/self/status.
fn has_cap_ipc_lock(root: &Path) -> Option<bool> {
    let status = read(root, "proc/self/status")?;
    let hex = status
        .lines()
        .find(|l| l.starts_with("CapEff:"))?
        .split_whitespace()
        .nth(1)?;
    let caps = u64::from_str_radix(hex, 16).ok()?;
    Some(caps & (1 << 14) != 0)
}

pub const MEMLOCK_BYTES_MIN: u64 = 512 * 1024;
pub const MEMLOCK_BYTES_GOOD: u64 = 64 * 1024 * 1024;

pub fn host_check(root: &Path, probes: &Probes) -> Vec<Check> {
    let mut out = Vec::new();

    // io_uring sysctl (kernel >= 6.6).
    match read(root, "proc/sys/kernel/io_uring_disabled").as_deref() {
        Some("0") => out.push(check("io_uring sysctl", Level::Ok, "kernel.io_uring_disabled = 0", "")),
        Some("1") => out.push(check(
            "io_uring sysctl",
            Level::Warn,
            "kernel.io_uring_disabled = 1 (only members of kernel.io_uring_group may create rings)",
            "add the shoal user to the group in kernel.io_uring_group, or `sysctl -w kernel.io_uring_disabled=0` (persist in /etc/sysctl.d/)",
        )),
        Some("2") => out.push(check(
            "io_uring sysctl",
            Level::Fail,
            "kernel.io_uring_disabled = 2 (io_uring off for everyone)",
            "`sysctl -w kernel.io_uring_disabled=0` and persist it in /etc/sysctl.d/99-shoal.conf",
        )),
        Some(v) => out.push(check("io_uring sysctl", Level::Warn, format!("unexpected value {v:?}"), "expected 0")),
        None => out.push(check(
            "io_uring sysctl",
            Level::Info,
            "kernel.io_uring_disabled absent (kernel older than 6.6, or /proc not mounted)",
            "",
        )),
    }
    match probes.io_uring_setup {
        Ok(()) => out.push(check("io_uring_setup probe", Level::Ok, "created and closed an 8-entry ring", "")),
        Err(e) => out.push(check(
            "io_uring_setup probe",
            Level::Fail,
            format!("io_uring_setup failed: {}", errno_name(e)),
            match e {
                libc::ENOSYS => "kernel built without io_uring or a seccomp filter returns ENOSYS: use a kernel >= 5.19 with CONFIG_IO_URING=y; in containers allow io_uring_setup/io_uring_enter/io_uring_register in the seccomp profile (Docker's default profile blocks them)",
                libc::EPERM | libc::EACCES => "blocked by kernel.io_uring_disabled/io_uring_group, seccomp or an LSM: in Docker/Podman run with a seccomp profile allowing io_uring_*; in systemd do not list them in SystemCallFilter",
                libc::ENOMEM => "memlock too low for the ring: raise LimitMEMLOCK (see memlock)",
                _ => "see io_uring_setup(2)",
            },
        )),
    }

    // memlock.
    let cap = has_cap_ipc_lock(root);
    let (soft, hard) = probes.memlock;
    let found = format!(
        "RLIMIT_MEMLOCK soft {} / hard {}; CAP_IPC_LOCK {}",
        human_bytes(soft),
        human_bytes(hard),
        match cap {
            Some(true) => "yes",
            Some(false) => "no",
            None => "unknown",
        }
    );
    let fix = "systemd: LimitMEMLOCK=infinity; docker: --ulimit memlock=-1:-1 (or --cap-add IPC_LOCK); shell: /etc/security/limits.conf `shoal - memlock unlimited`";
    if cap == Some(true) {
        out.push(check(
            "memlock",
            Level::Ok,
            found + " (registered buffers are not charged)",
            "",
        ));
    } else if soft < MEMLOCK_BYTES_MIN {
        out.push(check(
            "memlock",
            Level::Fail,
            found + " (glommio needs >= 512 KiB)",
            fix,
        ));
    } else if soft < MEMLOCK_BYTES_GOOD {
        out.push(check(
            "memlock",
            Level::Warn,
            found + " (io_uring registered buffers will be small or disabled)",
            fix,
        ));
    } else {
        out.push(check("memlock", Level::Ok, found, ""));
    }

    // CPU frequency governor.
    let mut govs: Vec<String> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(root.join("sys/devices/system/cpu")) {
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n.starts_with("cpu") && n[3..].chars().all(|c| c.is_ascii_digit()) && n.len() > 3
            })
            .collect();
        names.sort();
        for n in names {
            if let Some(g) = read(
                root,
                &format!("sys/devices/system/cpu/{n}/cpufreq/scaling_governor"),
            ) {
                govs.push(g);
            }
        }
    }
    if govs.is_empty() {
        out.push(check(
            "CPU governor",
            Level::Info,
            "no cpufreq interface (VM, or frequency managed by firmware/hypervisor)",
            "on bare metal also check BIOS power profile (performance, C-states limited)",
        ));
    } else if govs.iter().all(|g| g == "performance") {
        out.push(check(
            "CPU governor",
            Level::Ok,
            format!("performance on {} CPUs", govs.len()),
            "",
        ));
    } else {
        let mut uniq = govs.clone();
        uniq.sort();
        uniq.dedup();
        out.push(check(
            "CPU governor",
            Level::Warn,
            format!("{} (on {} CPUs)", uniq.join(", "), govs.len()),
            "`cpupower frequency-set -g performance` (or tuned-adm profile latency-performance): frequency ramp-up adds tail latency",
        ));
    }

    // Transparent huge pages.
    let thp = read(root, "sys/kernel/mm/transparent_hugepage/enabled");
    let defrag = read(root, "sys/kernel/mm/transparent_hugepage/defrag");
    let sel = |s: &Option<String>| {
        s.as_ref().and_then(|s| {
            s.split_whitespace()
                .find(|w| w.starts_with('['))
                .map(|w| w.trim_matches(|c| c == '[' || c == ']').to_string())
        })
    };
    match (sel(&thp), sel(&defrag)) {
        (None, _) => out.push(check(
            "transparent huge pages",
            Level::Info,
            "no THP interface",
            "",
        )),
        (Some(e), d) => {
            let d = d.unwrap_or_else(|| "?".into());
            let found = format!("enabled [{e}], defrag [{d}]");
            if d == "always" {
                out.push(check(
                    "transparent huge pages",
                    Level::Warn,
                    found,
                    "synchronous compaction stalls allocations: `echo defer+madvise > /sys/kernel/mm/transparent_hugepage/defrag`",
                ));
            } else if e == "never" {
                out.push(check(
                    "transparent huge pages",
                    Level::Info,
                    found,
                    "`echo madvise > /sys/kernel/mm/transparent_hugepage/enabled` lets preallocated buffers use MADV_HUGEPAGE (first touch 2-5x faster here)",
                ));
            } else {
                out.push(check("transparent huge pages", Level::Ok, found, ""));
            }
        }
    }

    // IRQ affinity of devices that carry the traffic.
    let irqbalance = std::fs::read_dir(root.join("proc"))
        .map(|entries| {
            entries.filter_map(|e| e.ok()).any(|e| {
                let n = e.file_name();
                n.to_string_lossy().chars().all(|c| c.is_ascii_digit())
                    && std::fs::read_to_string(e.path().join("comm"))
                        .map(|c| c.trim() == "irqbalance")
                        .unwrap_or(false)
            })
        })
        .unwrap_or(false);
    let mut irqs = Vec::new();
    if let Some(text) = read(root, "proc/interrupts") {
        for line in text.lines().skip(1) {
            let Some((num, rest)) = line.trim_start().split_once(':') else {
                continue;
            };
            if !num.chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            let lower = rest.to_lowercase();
            if [
                "nvme", "virtio", "eth", "ens", "enp", "mlx", "ixgbe", "i40e", "ice",
            ]
            .iter()
            .any(|k| lower.contains(k))
            {
                let name = rest.split_whitespace().last().unwrap_or("?").to_string();
                if name.ends_with("-config")
                    || ["inflate", "deflate", "stats", "reporting"]
                        .iter()
                        .any(|k| name.contains(k))
                {
                    continue;
                }
                let aff = read(root, &format!("proc/irq/{num}/smp_affinity_list"))
                    .unwrap_or_else(|| "?".into());
                irqs.push(format!("{num} {name} -> cpus {aff}"));
            }
        }
    }
    let shown: Vec<String> = irqs.iter().take(8).cloned().collect();
    out.push(check(
        "IRQ affinity",
        Level::Info,
        format!(
            "irqbalance {}; {} device IRQs{}{}",
            if irqbalance { "running" } else { "not running" },
            irqs.len(),
            if shown.is_empty() { String::new() } else { format!(": {}", shown.join(", ")) },
            if irqs.len() > shown.len() { ", ..." } else { "" }
        ),
        "with one shard per core, either let irqbalance spread IRQs, or stop it and pin NIC/NVMe queue IRQs to the cores that own those queues (echo CPU > /proc/irq/N/smp_affinity_list); keep housekeeping off shard cores with --cores",
    ));

    // Disk schedulers.
    if let Ok(entries) = std::fs::read_dir(root.join("sys/block")) {
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                !n.starts_with("loop")
                    && !n.starts_with("ram")
                    && !n.starts_with("zram")
                    && !n.starts_with("dm-")
            })
            .collect();
        names.sort();
        for n in names {
            let sched = read(root, &format!("sys/block/{n}/queue/scheduler")).unwrap_or_default();
            let active = sel(&Some(sched.clone())).unwrap_or_else(|| sched.clone());
            let rotational =
                read(root, &format!("sys/block/{n}/queue/rotational")).as_deref() == Some("1");
            let poll =
                read(root, &format!("sys/block/{n}/queue/io_poll")).unwrap_or_else(|| "?".into());
            let found = format!(
                "{n}: scheduler [{active}], {}, io_poll={poll}",
                if rotational {
                    "rotational"
                } else {
                    "non-rotational"
                }
            );
            let name = format!("disk scheduler {n}");
            if !rotational && (active == "bfq" || active == "kyber" || active == "cfq") {
                out.push(check(
                    &name,
                    Level::Warn,
                    found,
                    format!("for NVMe/SSD/virtio use none: `echo none > /sys/block/{n}/queue/scheduler` (udev rule to persist)"),
                ));
            } else if rotational && active == "none" {
                out.push(check(&name, Level::Info, found, format!("for spinning disks mq-deadline usually gives steadier latency: `echo mq-deadline > /sys/block/{n}/queue/scheduler`")));
            } else {
                out.push(check(&name, Level::Ok, found, ""));
            }
        }
    }

    // Open files and swap behaviour.
    if probes.nofile < 65_536 {
        out.push(check(
            "open files",
            Level::Warn,
            format!("RLIMIT_NOFILE {}", probes.nofile),
            "each segment and connection is a file descriptor: LimitNOFILE=1048576 (systemd) or `ulimit -n 1048576`",
        ));
    } else {
        out.push(check(
            "open files",
            Level::Ok,
            format!("RLIMIT_NOFILE {}", probes.nofile),
            "",
        ));
    }
    if let Some(sw) = read(root, "proc/sys/vm/swappiness").and_then(|s| s.parse::<u32>().ok()) {
        if sw > 10 {
            out.push(check(
                "swappiness",
                Level::Info,
                format!("vm.swappiness = {sw}"),
                "page cache holds the log tail; `sysctl -w vm.swappiness=1` keeps the broker's own memory in RAM",
            ));
        } else {
            out.push(check(
                "swappiness",
                Level::Ok,
                format!("vm.swappiness = {sw}"),
                "",
            ));
        }
    }
    out
}

pub fn render(checks: &[Check]) -> String {
    let mut s = String::new();
    for c in checks {
        s.push_str(&format!("[{}] {:<26} {}\n", c.level.tag(), c.name, c.found));
        if !c.advice.is_empty() && c.level != Level::Ok {
            s.push_str(&format!("       {:<26} -> {}\n", "", c.advice));
        }
    }
    let worst = checks.iter().map(|c| c.level).max().unwrap_or(Level::Ok);
    let n = |l: Level| checks.iter().filter(|c| c.level == l).count();
    s.push_str(&format!(
        "summary: {} ok, {} info, {} warn, {} fail (worst: {})\n",
        n(Level::Ok),
        n(Level::Info),
        n(Level::Warn),
        n(Level::Fail),
        worst.tag().trim()
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (p, s) in files {
            let path = d.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, s).unwrap();
        }
        d
    }

    fn probes(io: Result<(), i32>, memlock: u64) -> Probes {
        Probes {
            io_uring_setup: io,
            memlock: (memlock, memlock),
            nofile: 1_048_576,
        }
    }

    fn find<'a>(c: &'a [Check], name: &str) -> &'a Check {
        c.iter()
            .find(|c| c.name.starts_with(name))
            .unwrap_or_else(|| panic!("no check {name}"))
    }

    #[test]
    fn a_well_tuned_host_passes() {
        let d = tree(&[
            ("proc/sys/kernel/io_uring_disabled", "0\n"),
            ("proc/self/status", "Name: x\nCapEff:\t0000000000004000\n"),
            (
                "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
                "performance\n",
            ),
            (
                "sys/devices/system/cpu/cpu1/cpufreq/scaling_governor",
                "performance\n",
            ),
            (
                "sys/kernel/mm/transparent_hugepage/enabled",
                "always [madvise] never\n",
            ),
            (
                "sys/kernel/mm/transparent_hugepage/defrag",
                "always defer [defer+madvise] madvise never\n",
            ),
            ("sys/block/nvme0n1/queue/scheduler", "[none] mq-deadline\n"),
            ("sys/block/nvme0n1/queue/rotational", "0\n"),
            (
                "proc/interrupts",
                "           CPU0 CPU1\n 24:  1 2 PCI-MSI nvme0q1\n 25: 1 2 PCI-MSI eth0-rx-0\n",
            ),
            ("proc/irq/24/smp_affinity_list", "0\n"),
        ]);
        let c = host_check(d.path(), &probes(Ok(()), 8 << 20));
        assert!(c.iter().all(|c| c.level <= Level::Info), "{}", render(&c));
        assert!(find(&c, "IRQ affinity")
            .found
            .contains("24 nvme0q1 -> cpus 0"));
    }

    #[test]
    fn blocked_io_uring_and_low_memlock_fail_with_fixes() {
        let d = tree(&[
            ("proc/sys/kernel/io_uring_disabled", "2\n"),
            ("proc/self/status", "CapEff:\t0000000000000000\n"),
            (
                "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
                "powersave\n",
            ),
            (
                "sys/kernel/mm/transparent_hugepage/enabled",
                "[always] madvise never\n",
            ),
            (
                "sys/kernel/mm/transparent_hugepage/defrag",
                "[always] defer madvise never\n",
            ),
            ("sys/block/sda/queue/scheduler", "mq-deadline [bfq] none\n"),
            ("sys/block/sda/queue/rotational", "0\n"),
        ]);
        let c = host_check(d.path(), &probes(Err(libc::EPERM), 64 * 1024));
        assert_eq!(find(&c, "io_uring sysctl").level, Level::Fail);
        let p = find(&c, "io_uring_setup");
        assert_eq!(p.level, Level::Fail);
        assert!(p.found.contains("EPERM") && p.advice.contains("seccomp"));
        let m = find(&c, "memlock");
        assert_eq!(m.level, Level::Fail);
        assert!(m.advice.contains("LimitMEMLOCK=infinity"));
        assert_eq!(find(&c, "CPU governor").level, Level::Warn);
        assert_eq!(find(&c, "transparent huge pages").level, Level::Warn);
        assert!(find(&c, "disk scheduler sda").advice.contains("none"));
        assert!(render(&c).contains("fail"));
    }

    #[test]
    fn memlock_without_cap_is_judged_by_the_limit() {
        let d = tree(&[("proc/self/status", "CapEff:\t0\n")]);
        let c = host_check(d.path(), &probes(Ok(()), 8 << 20));
        assert_eq!(find(&c, "memlock").level, Level::Warn);
        let c = host_check(d.path(), &probes(Ok(()), u64::MAX));
        assert_eq!(find(&c, "memlock").level, Level::Ok);
    }

    #[test]
    fn the_real_probe_answers() {
        // Either a ring or an errno: never a panic.
        let _ = probe_io_uring();
        let c = host_check(Path::new("/"), &Probes::detect());
        assert!(c.len() >= 6);
    }
}
