//! What the benches read about a process from Linux's /proc: its CPU time and memory.
//!
//! Invariant: a reading that cannot be had (the process is gone, the file's format is not
//! the expected one) is `None`, never a guess.

use std::process::Command;

/// User plus system CPU time of the process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields start after its closing parenthesis.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the file, 12 and 13 after the name.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Clock ticks a second, the unit of [`cpu_ticks`] (100 where getconf cannot say).
pub fn clock_ticks_per_s() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// /proc/PID/status field `name` in kB.
pub fn status_kb(pid: u32, name: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_time_and_resident_memory_and_a_gone_one_has_none() {
        let me = std::process::id();
        // Spin until the kernel has counted at least one tick of this thread's work.
        let mut spun = 0u64;
        while cpu_ticks(me).unwrap() == 0 {
            spun = spun.wrapping_add(1);
            std::hint::black_box(spun);
        }
        assert!(status_kb(me, "VmRSS:").unwrap() > 0);
        assert!(clock_ticks_per_s() > 0.0);
        assert_eq!(cpu_ticks(u32::MAX), None);
        assert_eq!(status_kb(u32::MAX, "VmRSS:"), None);
    }
}
