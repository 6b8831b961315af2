//! Idle wake-ups: how often the agent's threads leave the CPU of their own accord (a
//! blocking read returning, a timer firing). On a battery at -50 °C every wake-up costs;
//! this is the `agent.wakeups_per_s` figure, and a spinning poll loop shows here first.
//!
//! Counted as the sum of `voluntary_ctxt_switches` in `/proc/<pid>/task/*/status`: one per
//! time a thread blocked and was woken. Works for this process or another (the benchmark
//! watches the agent as a child). Threads that exited between two samples take their
//! counts with them, so a rate is a lower bound; [`WakeupSample::rate_since`] saturates at
//! zero rather than go negative.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::Instant;

/// Voluntary context switches of every live thread of `pid` (`None`: this process).
pub fn voluntary_switches(pid: Option<u32>) -> io::Result<u64> {
    Ok(switches_by_thread(pid)?.iter().map(|(_, n)| n).sum())
}

/// Voluntary context switches of each live thread of `pid` (`None`: this process), as
/// `(thread id, count)` pairs.
pub fn switches_by_thread(pid: Option<u32>) -> io::Result<Vec<(u32, u64)>> {
    let tasks = match pid {
        Some(p) => PathBuf::from(format!("/proc/{p}/task")),
        None => PathBuf::from("/proc/self/task"),
    };
    let mut threads = Vec::new();
    for entry in fs::read_dir(tasks)? {
        let entry = entry?;
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<u32>().ok())
        else {
            continue;
        };
        let status = match fs::read_to_string(entry.path().join("status")) {
            Ok(s) => s,
            // The thread exited between listing and reading.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let switches = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        threads.push((tid, switches));
    }
    Ok(threads)
}

/// A count of wake-ups at a moment.
#[derive(Debug, Clone, Copy)]
pub struct WakeupSample {
    at: Instant,
    switches: u64,
}

impl WakeupSample {
    /// Samples `pid` (`None`: this process) now.
    pub fn take(pid: Option<u32>) -> io::Result<Self> {
        Ok(WakeupSample {
            at: Instant::now(),
            switches: voluntary_switches(pid)?,
        })
    }

    /// Wake-ups per second between `earlier` and this sample.
    pub fn rate_since(&self, earlier: &WakeupSample) -> f64 {
        let secs = self.at.saturating_duration_since(earlier.at).as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        self.switches.saturating_sub(earlier.switches) as f64 / secs
    }

    /// The count at this sample.
    pub fn switches(&self) -> u64 {
        self.switches
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// This thread's id, as the kernel names it in `/proc/<pid>/task`.
    fn this_thread_id() -> u32 {
        let link = fs::read_link("/proc/thread-self").unwrap();
        link.file_name().unwrap().to_str().unwrap().parse().unwrap()
    }

    // Other tests of this process run on threads that come and go, and an exited thread
    // takes its counts out of the sum: so the sleeper's own count is what is checked.
    // (Under qemu-user the sum fell between two samples, and a difference of sums failed.)
    #[test]
    fn a_thread_that_sleeps_fifty_times_adds_at_least_fifty_wakeups() {
        let (slept_tx, slept_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let before = WakeupSample::take(None).unwrap();
        let sleeper = std::thread::spawn(move || {
            let tid = this_thread_id();
            for _ in 0..50 {
                std::thread::sleep(Duration::from_millis(1));
            }
            let _ = slept_tx.send(tid);
            // Stay alive until sampled: an exited thread's counts leave /proc.
            let _ = done_rx.recv_timeout(Duration::from_secs(10));
        });
        let tid = slept_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let threads = switches_by_thread(None).unwrap();
        let after = WakeupSample::take(None).unwrap();
        let _ = done_tx.send(());
        sleeper.join().unwrap();
        let sleeper_switches = threads
            .iter()
            .find(|(t, _)| *t == tid)
            .map(|(_, n)| *n)
            .expect("the sleeping thread is listed");
        assert!(sleeper_switches >= 50, "{sleeper_switches} wake-ups");
        assert!(after.switches() >= sleeper_switches);
        assert!(after.rate_since(&before) >= 0.0);
    }

    #[test]
    fn another_process_can_be_watched_and_a_missing_one_is_an_error() {
        assert!(voluntary_switches(Some(std::process::id())).is_ok());
        assert!(voluntary_switches(Some(u32::MAX)).is_err());
    }
}
