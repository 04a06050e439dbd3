//! Per-process measurements from Linux `/proc`: CPU seconds (utime + stime, every thread),
//! peak RSS (`VmHWM`) and current RSS (`VmRSS`); and dropping the page cache.

use std::sync::OnceLock;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// User + system CPU time, seconds.
    pub cpu_s: f64,
    /// Peak resident set size since start, bytes (`VmHWM`).
    pub peak_rss: u64,
    /// Resident set size now, bytes (`VmRSS`).
    pub rss: u64,
}

/// Reads `/proc/PID/stat` and `/proc/PID/status`.
pub fn sample(pid: u32) -> Result<Sample, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    let ticks =
        parse_cpu_ticks(&stat).ok_or_else(|| format!("/proc/{pid}/stat: unexpected format"))?;
    let peak_rss = parse_status_kb(&status, "VmHWM")
        .ok_or_else(|| format!("/proc/{pid}/status: no VmHWM"))?
        * 1024;
    let rss = parse_status_kb(&status, "VmRSS")
        .ok_or_else(|| format!("/proc/{pid}/status: no VmRSS"))?
        * 1024;
    Ok(Sample {
        cpu_s: ticks as f64 / clock_ticks_per_second() as f64,
        peak_rss,
        rss,
    })
}

/// utime + stime in clock ticks, from the text of `/proc/PID/stat` (the command name may
/// contain spaces and parentheses, so fields are counted after the last `)`).
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The value in kB of a `Name:   123 kB` line of `/proc/PID/status`.
pub fn parse_status_kb(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// `getconf CLK_TCK` (USER_HZ; 100 on every mainstream Linux, used when getconf is missing).
pub fn clock_ticks_per_second() -> u64 {
    static HZ: OnceLock<u64> = OnceLock::new();
    *HZ.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&hz| hz > 0)
            .unwrap_or(100)
    })
}

/// The 1-minute load average (`/proc/loadavg`): how loaded the shared machine was.
pub fn load_average() -> Option<f64> {
    parse_loadavg(&std::fs::read_to_string("/proc/loadavg").ok()?)
}

/// The first field of `/proc/loadavg`'s text.
pub fn parse_loadavg(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// Flushes dirty pages and drops the clean page cache (`echo 1 > /proc/sys/vm/drop_caches`).
/// Needs root (and a writable /proc/sys); the error says why it was not done.
pub fn drop_page_cache() -> Result<(), String> {
    let _ = std::process::Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", b"1")
        .map_err(|e| format!("cannot write /proc/sys/vm/drop_caches: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_counted_after_a_name_with_spaces_and_parens() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 12 0 5 1000 50";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
    }

    #[test]
    fn status_lines_give_kilobytes_by_name() {
        let status =
            "Name:\tsyncthing\nVmPeak:\t  900 kB\nVmHWM:\t  265000 kB\nVmRSS:\t  170000 kB\n";
        assert_eq!(parse_status_kb(status, "VmHWM"), Some(265_000));
        assert_eq!(parse_status_kb(status, "VmRSS"), Some(170_000));
        assert_eq!(parse_status_kb(status, "VmSwap"), None);
    }

    #[test]
    fn load_average_is_the_first_field_of_loadavg() {
        assert_eq!(parse_loadavg("13.52 9.01 4.20 3/812 4242\n"), Some(13.52));
        assert_eq!(parse_loadavg(""), None);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.peak_rss >= s.rss && s.rss > 0);
    }
}
