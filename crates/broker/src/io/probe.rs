//! Checks, before any executor starts, that io_uring and locked memory are usable, so a
//! failure names its fix instead of surfacing as an obscure error from deep inside glommio.

use std::fmt;

/// glommio refuses to start below this soft memlock limit (without CAP_IPC_LOCK).
pub const MEMLOCK_BYTES_MIN: u64 = 512 * 1024;
/// Below this, glommio runs without registered buffers (a warning, not an error).
pub const MEMLOCK_BYTES_COMFORTABLE: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct HostReport {
    pub io_uring: Result<(), String>,
    pub memlock_soft_bytes: Option<u64>,
    pub cap_ipc_lock: bool,
}

#[derive(Debug)]
pub enum ProbeError {
    IoUringUnavailable(String),
    MemlockTooLow { soft_bytes: u64 },
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::IoUringUnavailable(why) => write!(
                f,
                "io_uring is not available: {why}.\n  fix: set `sysctl kernel.io_uring_disabled=0`; \
                 in a container allow io_uring in the seccomp profile (e.g. docker \
                 `--security-opt seccomp=unconfined` or a profile permitting io_uring_setup/enter/register); \
                 Shoal needs Linux >= 5.10 with io_uring."
            ),
            ProbeError::MemlockTooLow { soft_bytes } => write!(
                f,
                "locked-memory limit is {soft_bytes} bytes, below the {MEMLOCK_BYTES_MIN} bytes \
                 io_uring needs.\n  fix: `ulimit -l unlimited` in the shell, `LimitMEMLOCK=infinity` \
                 in the systemd unit, `--ulimit memlock=-1` for docker, or grant CAP_IPC_LOCK."
            ),
        }
    }
}

pub fn probe_host() -> HostReport {
    HostReport {
        io_uring: probe_io_uring(),
        memlock_soft_bytes: memlock_soft_bytes(),
        cap_ipc_lock: has_cap_ipc_lock(),
    }
}

impl HostReport {
    /// Fatal problems first; warnings are returned for logging.
    pub fn check(&self) -> Result<Vec<String>, ProbeError> {
        if let Err(why) = &self.io_uring {
            return Err(ProbeError::IoUringUnavailable(why.clone()));
        }
        let mut warnings = Vec::new();
        if let Some(soft) = self.memlock_soft_bytes {
            if !self.cap_ipc_lock && soft < MEMLOCK_BYTES_MIN {
                return Err(ProbeError::MemlockTooLow { soft_bytes: soft });
            }
            if !self.cap_ipc_lock && soft < MEMLOCK_BYTES_COMFORTABLE {
                warnings.push(format!(
                    "locked-memory limit is {soft} bytes: io_uring registered buffers are off \
                     (slower I/O). fix: `ulimit -l unlimited`, `LimitMEMLOCK=infinity` (systemd), \
                     `--ulimit memlock=-1` (docker)"
                ));
            }
        }
        Ok(warnings)
    }
}

fn probe_io_uring() -> Result<(), String> {
    if let Ok(v) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        match v.trim() {
            "0" => {}
            "1" => {
                // 1 = only processes in kernel.io_uring_group may create rings; try anyway.
            }
            other => return Err(format!("/proc/sys/kernel/io_uring_disabled is {other}")),
        }
    }
    match io_uring::IoUring::new(8) {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("io_uring_setup failed: {e}")),
    }
}

fn memlock_soft_bytes() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    if rc != 0 || lim.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    Some(lim.rlim_cur)
}

fn has_cap_ipc_lock() -> bool {
    const CAP_IPC_LOCK: u32 = 14;
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memlock_too_low_names_the_fix() {
        let report = HostReport {
            io_uring: Ok(()),
            memlock_soft_bytes: Some(64 * 1024),
            cap_ipc_lock: false,
        };
        let err = report.check().unwrap_err().to_string();
        assert!(err.contains("ulimit -l unlimited") && err.contains("LimitMEMLOCK"));
    }

    #[test]
    fn io_uring_blocked_names_the_fix() {
        let report = HostReport {
            io_uring: Err("io_uring_setup failed: Operation not permitted".into()),
            memlock_soft_bytes: None,
            cap_ipc_lock: true,
        };
        let err = report.check().unwrap_err().to_string();
        assert!(err.contains("seccomp") && err.contains("io_uring_disabled"));
    }

    #[test]
    fn this_host_has_io_uring() {
        // The machines Shoal is developed and tested on run io_uring; failing here is a real finding.
        probe_host()
            .check()
            .expect("io_uring and memlock usable on this host");
    }
}
