//! Memory and CPU of a process from `/proc` (Linux): what the controller
//! costs, read from outside so the measurement does not change it.

use std::path::PathBuf;

use crate::error::BenchError;

/// One reading of a process's resource use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcSample {
    /// Resident set size now (`VmRSS`), KiB.
    pub rss_kib: u64,
    /// Peak resident set size since start (`VmHWM`), KiB.
    pub peak_rss_kib: u64,
    /// User plus system CPU time since start, seconds.
    pub cpu_seconds: f64,
}

/// Reads `/proc/PID/status` and `/proc/PID/stat`.
pub fn sample(pid: u32) -> Result<ProcSample, BenchError> {
    let read = |name: &str| {
        let path = PathBuf::from(format!("/proc/{pid}/{name}"));
        std::fs::read_to_string(&path).map_err(|source| BenchError::ReadProc { path, source })
    };
    let status = read("status")?;
    let stat = read("stat")?;
    let field = |key: &str| {
        status_kib(&status, key).ok_or_else(|| BenchError::ParseProc { pid, what: format!("{key} in status") })
    };
    let ticks = cpu_ticks(&stat).ok_or_else(|| BenchError::ParseProc { pid, what: "utime/stime in stat".into() })?;
    let per_second = rustix::param::clock_ticks_per_second() as f64;
    Ok(ProcSample { rss_kib: field("VmRSS")?, peak_rss_kib: field("VmHWM")?, cpu_seconds: ticks as f64 / per_second })
}

/// A `Key:   123 kB` line of `/proc/PID/status`, in KiB.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// utime + stime (fields 14 and 15) of `/proc/PID/stat`, in clock ticks.
/// The command name (field 2) may hold spaces and parentheses, so fields are
/// counted from the last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // after_name starts at field 3 (state): utime is field 14, index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_stat_lines() {
        let status = "Name:\tcontroller\nVmHWM:\t   51234 kB\nVmRSS:\t   40960 kB\n";
        assert_eq!(status_kib(status, "VmHWM"), Some(51234));
        assert_eq!(status_kib(status, "VmRSS"), Some(40960));
        assert_eq!(status_kib(status, "VmSwap"), None);
        let stat = "4242 (odd) name)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 123 456 789";
        assert_eq!(cpu_ticks(stat), Some(325));
    }

    #[test]
    fn samples_this_process() {
        // Burn a little CPU so the counters are non-zero.
        let mut acc = 0u64;
        for i in 0..5_000_000u64 {
            acc = acc.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(acc);
        let now = sample(std::process::id()).unwrap_or_else(|e| panic!("{e}"));
        assert!(now.rss_kib > 0 && now.peak_rss_kib >= now.rss_kib, "{now:?}");
        assert!(now.cpu_seconds >= 0.0, "{now:?}");
    }
}
