//! Exponential backoff with jitter between automatic restarts of a sensor.
//!
//! Pure: no clock, no sleeping. The runner asks for the next delay after a failure and
//! tells it how long the device ran healthy before failing.
//!
//! Invariants: a delay never exceeds `max`; without jitter the n-th delay is
//! `min(initial * factor^(n-1), max)`; jitter only shortens a delay (by at most
//! `jitter` of it), so the cap holds and sensors that failed together (a brown-out of the
//! whole board) spread their retries instead of hitting the bus at once. A run of at least
//! `reset_after` healthy time starts the sequence over.

use std::time::Duration;

use aloft_sensors::flight::Noise;

/// How delays grow.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct BackoffPolicy {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Upper bound of every delay.
    pub max: Duration,
    /// Growth per failure (2.0: doubling).
    pub factor: f64,
    /// Fraction of a delay that jitter may take off (0.0 none, 0.5 up to half).
    pub jitter: f64,
    /// Healthy running this long resets the sequence.
    pub reset_after: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        // 1 s first: a vanished USB adapter usually re-enumerates within a second or two;
        // 60 s cap: a dead sensor costs one open attempt a minute, not a busy loop.
        BackoffPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            factor: 2.0,
            jitter: 0.5,
            reset_after: Duration::from_secs(60),
        }
    }
}

impl BackoffPolicy {
    /// A policy with these bounds and the default factor, jitter and reset period.
    pub fn new(initial: Duration, max: Duration) -> Self {
        BackoffPolicy {
            initial,
            max,
            ..BackoffPolicy::default()
        }
    }

    /// With this jitter fraction (clamped to 0..=1).
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// Resetting after this much healthy running.
    pub fn with_reset_after(mut self, reset_after: Duration) -> Self {
        self.reset_after = reset_after;
        self
    }
}

/// The backoff state of one sensor.
#[derive(Debug)]
pub struct Backoff {
    policy: BackoffPolicy,
    failures: u32,
    noise: Noise,
}

impl Backoff {
    /// A fresh sequence; `seed` makes the jitter reproducible (tests) or distinct per
    /// sensor (the agent seeds with the sensor's number and the boot time).
    pub fn new(policy: BackoffPolicy, seed: u64) -> Self {
        Backoff {
            policy,
            failures: 0,
            noise: Noise::new(seed),
        }
    }

    /// Failures since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The undithered delay after the `failures`-th failure (1-based).
    fn ceiling(&self, failures: u32) -> Duration {
        let max = self.policy.max.as_secs_f64();
        let factor = if self.policy.factor.is_finite() && self.policy.factor >= 1.0 {
            self.policy.factor
        } else {
            1.0
        };
        let exponent = i32::try_from(failures.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.policy.initial.as_secs_f64() * factor.powi(exponent);
        // powi overflows to infinity, which min() turns into the cap.
        Duration::from_secs_f64(if secs.is_finite() { secs.min(max) } else { max })
    }

    /// A failure happened after running healthy for `healthy_for` (zero when the device
    /// never came up): the delay before the next attempt.
    pub fn next_delay(&mut self, healthy_for: Duration) -> Duration {
        if healthy_for >= self.policy.reset_after {
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        let ceiling = self.ceiling(self.failures);
        let cut = self.policy.jitter * self.noise.uniform();
        ceiling.mul_f64((1.0 - cut).clamp(0.0, 1.0))
    }

    /// Starts the sequence over (an operator's restart succeeded).
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BackoffPolicy {
        BackoffPolicy::new(Duration::from_millis(100), Duration::from_secs(5))
    }

    #[test]
    fn delays_without_jitter_double_until_the_cap() {
        let mut b = Backoff::new(policy().with_jitter(0.0), 1);
        let delays: Vec<u128> = (0..10)
            .map(|_| b.next_delay(Duration::ZERO).as_millis())
            .collect();
        let expected: Vec<u128> = (0..10u32).map(|n| (100u128 << n).min(5_000)).collect();
        assert_eq!(delays, expected);
    }

    #[test]
    fn jittered_delays_stay_within_their_band_and_under_the_cap() {
        for seed in 0..50 {
            let mut b = Backoff::new(policy(), seed);
            for n in 1..=20u32 {
                let d = b.next_delay(Duration::ZERO);
                let ceiling = Duration::from_millis((100u64 << (n - 1).min(10)).min(5_000));
                assert!(d <= ceiling, "seed {seed} failure {n}: {d:?} > {ceiling:?}");
                assert!(d >= ceiling / 2, "seed {seed} failure {n}: {d:?} < half");
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_delays_and_different_seeds_differ() {
        let run = |seed| {
            let mut b = Backoff::new(policy(), seed);
            (0..8)
                .map(|_| b.next_delay(Duration::ZERO))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn healthy_running_for_the_reset_period_starts_the_sequence_over() {
        let p = policy()
            .with_jitter(0.0)
            .with_reset_after(Duration::from_secs(30));
        let mut b = Backoff::new(p, 3);
        for _ in 0..5 {
            b.next_delay(Duration::ZERO);
        }
        assert_eq!(b.failures(), 5);
        // A short healthy spell does not reset: a flapping device keeps backing off.
        assert_eq!(
            b.next_delay(Duration::from_secs(29)),
            Duration::from_millis(3_200)
        );
        assert_eq!(
            b.next_delay(Duration::from_secs(30)),
            Duration::from_millis(100)
        );
        assert_eq!(b.failures(), 1);
    }

    #[test]
    fn a_huge_number_of_failures_stays_at_the_cap() {
        let mut b = Backoff::new(policy().with_jitter(0.0), 0);
        b.failures = u32::MAX - 1;
        assert_eq!(b.next_delay(Duration::ZERO), Duration::from_secs(5));
        assert_eq!(b.next_delay(Duration::ZERO), Duration::from_secs(5));
    }
}
