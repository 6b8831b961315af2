//! The power policy's figures: the step in force (level, name, why, since when), how many
//! changes of step there were, and whether the battery's values are too old to decide on.
//!
//! Invariant: the level, the count and the staleness are relaxed atomics; the name and the
//! reason, which change only with the step, sit behind a lock.

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::clock::monotonic_ns;

/// The power step's figures.
#[derive(Debug, Default)]
pub struct PowerMetrics {
    configured: AtomicBool,
    level: AtomicU64,
    transitions: AtomicU64,
    battery_stale: AtomicBool,
    since_mono_ns: AtomicU64,
    step: Mutex<(String, String)>,
}

impl PowerMetrics {
    /// The node has a power policy, at full power.
    pub fn configure(&self) {
        self.configured.store(true, Ordering::Relaxed);
        self.set_step(0, "full", "no step taken since start");
    }

    /// Whether the node has a power policy.
    pub fn configured(&self) -> bool {
        self.configured.load(Ordering::Relaxed)
    }

    fn set_step(&self, level: u8, name: &str, reason: &str) {
        self.level.store(u64::from(level), Ordering::Relaxed);
        self.since_mono_ns.store(monotonic_ns(), Ordering::Relaxed);
        let mut step = self.step.lock().unwrap_or_else(|e| e.into_inner());
        *step = (name.to_owned(), reason.to_owned());
    }

    /// The node entered step `name` at `level`, for `reason`.
    pub fn transition(&self, level: u8, name: &str, reason: &str) {
        self.transitions.fetch_add(1, Ordering::Relaxed);
        self.set_step(level, name, reason);
    }

    /// Whether the battery's values are too old (or missing) to decide on.
    pub fn set_battery_stale(&self, stale: bool) {
        self.battery_stale.store(stale, Ordering::Relaxed);
    }

    /// The level in force.
    pub fn level(&self) -> u8 {
        u8::try_from(self.level.load(Ordering::Relaxed)).unwrap_or(u8::MAX)
    }

    /// Changes of step since start.
    pub fn transitions(&self) -> u64 {
        self.transitions.load(Ordering::Relaxed)
    }

    /// Whether the battery's values are too old to decide on.
    pub fn battery_stale(&self) -> bool {
        self.battery_stale.load(Ordering::Relaxed)
    }

    /// The step's name and why it is in force.
    pub fn step(&self) -> (String, String) {
        self.step.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// When the step took effect, monotonic ns.
    pub fn since_mono_ns(&self) -> u64 {
        self.since_mono_ns.load(Ordering::Relaxed)
    }

    /// Appends the figures in the Prometheus text format (nothing without a policy).
    pub fn render(&self, out: &mut String) {
        if !self.configured() {
            return;
        }
        let (name, reason) = self.step();
        let _ = writeln!(
            out,
            "# HELP aloft_power_step_level The power step in force (0 is full power; higher saves more).\n# TYPE aloft_power_step_level gauge\naloft_power_step_level {}",
            self.level()
        );
        let _ = writeln!(
            out,
            "# HELP aloft_power_step_info The power step in force by name, and why.\n# TYPE aloft_power_step_info gauge\naloft_power_step_info{{step=\"{}\",reason=\"{}\"}} 1",
            super::escape(&name),
            super::escape(&reason)
        );
        let _ = writeln!(
            out,
            "# HELP aloft_power_step_transitions_total Changes of power step since start.\n# TYPE aloft_power_step_transitions_total counter\naloft_power_step_transitions_total {}",
            self.transitions()
        );
        let _ = writeln!(
            out,
            "# HELP aloft_power_battery_stale Whether the battery's values are too old to decide on (the step holds).\n# TYPE aloft_power_battery_stale gauge\naloft_power_battery_stale {}",
            u8::from(self.battery_stale())
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_render_only_with_a_policy_and_follow_the_step() {
        let m = PowerMetrics::default();
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.is_empty());
        m.configure();
        m.transition(2, "survival", "battery voltage 13.40 V below 13.50 V");
        m.render(&mut out);
        assert!(out.contains("aloft_power_step_level 2\n"), "{out}");
        assert!(out.contains("step=\"survival\""), "{out}");
        assert!(
            out.contains("aloft_power_step_transitions_total 1\n"),
            "{out}"
        );
    }
}
