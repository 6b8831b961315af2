//! Muon count rate with dead-time correction, over a sliding window of detector time.
//!
//! rate = events / live time, live time = elapsed detector time - dead time accumulated
//! over the same span. The span runs from an *anchor* (the last event at or before the
//! window's start, or the run start at detector time 0 when the boot was seen) to the
//! newest event; the events counted are those after the anchor. Both ends then sit on
//! instants where the detector reported its cumulative dead time, so no dead time has to
//! be interpolated.
//!
//! Why a sliding window in detector time: the glider climbs in wave at a few m/s and the
//! cosmic-ray rate rises several-fold on the way to 12 km, so a whole-run average would
//! lag the climb by hours. The detector's own clock is used (not the agent's arrival time) because serial
//! latency and a paused agent must not distort the rate. The default window of 60 s holds
//! ~60 events at ground level (a v2 counts about 1 s-1 alone; ±13 % statistical error)
//! and several hundred at altitude (a few %), while covering only ~200-300 m of climb;
//! callers that want less noise or less lag choose another window. With n events the estimate n / T is
//! the maximum-likelihood one; its bias, a factor n / (n - 1), is below 2 % from 50 events.
//!
//! Invariants: the window restarts on a reboot (or any step back of the detector clock or
//! dead time); no rate is given for zero or negative live time.

use std::collections::VecDeque;

use aloft_protocol::{Quality, Quantity, Reading, SensorId, Timestamp};

use super::MuonEvent;

/// Default window length, s of detector time.
pub const DEFAULT_WINDOW_S: f64 = 60.0;

/// A dead-time-corrected rate over the current window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateEstimate {
    /// Events per second of live time, s-1.
    pub rate_per_s: f64,
    /// Events counted (after the anchor).
    pub events: u64,
    /// Elapsed detector time from the anchor to the newest event, s.
    pub elapsed_s: f64,
    /// Elapsed time minus the dead time accumulated over it, s.
    pub live_time_s: f64,
}

impl RateEstimate {
    /// Poisson standard error of the rate, s-1 (sqrt(n) / live time).
    pub fn standard_error_per_s(&self) -> f64 {
        (self.events as f64).sqrt() / self.live_time_s
    }

    /// The rate as a [`Quantity::MuonCountRate`] reading flagged [`Quality::DERIVED`].
    pub fn reading(&self, sensor: SensorId, time: Timestamp) -> Reading {
        Reading {
            sensor,
            quantity: Quantity::MuonCountRate,
            time,
            value: self.rate_per_s,
            quality: Quality::DERIVED,
        }
    }
}

/// Why there is no rate yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RateUnavailable {
    /// No anchor and event yet: the window (re)started and has seen at most one event.
    #[error("not enough events in the window yet")]
    NotEnoughEvents,
    /// The dead time covers the whole span (or the clock did not advance).
    #[error("no live time in the window")]
    NoLiveTime,
}

/// One point where the detector reported time and cumulative dead time.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Mark {
    time_s: f64,
    dead_s: f64,
}

/// Sliding-window count rate of one detector.
#[derive(Debug, Clone)]
pub struct CountRate {
    window_s: f64,
    /// Anchor first, then every event after it, oldest first.
    marks: VecDeque<Mark>,
    /// True while the first mark is the run start (not an event, so not counted).
    anchored_at_start: bool,
}

impl Default for CountRate {
    fn default() -> Self {
        CountRate::new(DEFAULT_WINDOW_S)
    }
}

impl CountRate {
    /// A rate over the last `window_s` seconds of detector time (non-positive or NaN
    /// windows fall back to [`DEFAULT_WINDOW_S`]).
    pub fn new(window_s: f64) -> Self {
        let window_s = if window_s > 0.0 {
            window_s
        } else {
            DEFAULT_WINDOW_S
        };
        CountRate {
            window_s,
            marks: VecDeque::new(),
            anchored_at_start: false,
        }
    }

    /// The window length, s.
    pub fn window_s(&self) -> f64 {
        self.window_s
    }

    /// Forgets everything: the next two events open a new window. Use when the stream
    /// was joined mid-run.
    pub fn restart(&mut self) {
        self.marks.clear();
        self.anchored_at_start = false;
    }

    /// Restarts at a run start seen in the stream (the header of a boot): the detector's
    /// clock and dead time are both 0 there, so the first event already gives a rate.
    pub fn restart_at_run_start(&mut self) {
        self.restart();
        self.marks.push_back(Mark {
            time_s: 0.0,
            dead_s: 0.0,
        });
        self.anchored_at_start = true;
    }

    /// Adds an event and returns the rate over the window ending at it.
    pub fn push(&mut self, event: &MuonEvent) -> Result<RateEstimate, RateUnavailable> {
        let mark = Mark {
            time_s: event.detector_time_s,
            dead_s: event.dead_time_s,
        };
        if let Some(last) = self.marks.back() {
            // Both are cumulative since the detector's start: a step back is a new run
            // the stream did not report (or a line it dropped was the header).
            if mark.time_s < last.time_s || mark.dead_s < last.dead_s {
                tracing::debug!(
                    time_s = mark.time_s,
                    last_time_s = last.time_s,
                    "Detector clock went back; count-rate window restarted."
                );
                self.restart();
            }
        }
        self.marks.push_back(mark);
        // Keep exactly one mark at or before the window start as the anchor.
        let start = mark.time_s - self.window_s;
        while self.marks.len() > 2 && self.marks.get(1).is_some_and(|m| m.time_s <= start) {
            self.marks.pop_front();
            self.anchored_at_start = false;
        }
        self.estimate()
    }

    /// The rate over the current window, without adding an event.
    pub fn estimate(&self) -> Result<RateEstimate, RateUnavailable> {
        let (Some(anchor), Some(newest)) = (self.marks.front(), self.marks.back()) else {
            return Err(RateUnavailable::NotEnoughEvents);
        };
        if self.marks.len() < 2 {
            return Err(RateUnavailable::NotEnoughEvents);
        }
        let events = (self.marks.len() - 1) as u64;
        let elapsed_s = newest.time_s - anchor.time_s;
        let live_time_s = elapsed_s - (newest.dead_s - anchor.dead_s);
        if live_time_s.is_nan() || live_time_s <= 0.0 {
            return Err(RateUnavailable::NoLiveTime);
        }
        Ok(RateEstimate {
            rate_per_s: events as f64 / live_time_s,
            events,
            elapsed_s,
            live_time_s,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cosmicwatch::Format;

    fn event(n: u64, time_s: f64, dead_s: f64) -> MuonEvent {
        MuonEvent {
            format: Format::V2,
            event: n,
            detector_time_s: time_s,
            adc: 500,
            sipm_peak_v: 0.1,
            dead_time_s: dead_s,
            temperature_k: Some(293.15),
            coincidence: None,
            pressure_pa: None,
            imu: None,
        }
    }

    #[test]
    fn rate_is_events_over_live_time_on_hand_computed_numbers() {
        let mut rate = CountRate::new(100.0);
        assert_eq!(
            rate.push(&event(1, 10.0, 0.5)),
            Err(RateUnavailable::NotEnoughEvents)
        );
        rate.push(&event(2, 20.0, 1.0)).unwrap();
        let r = rate.push(&event(3, 30.0, 2.5)).unwrap();
        // Anchor at event 1 (t 10 s, dead 0.5 s): 2 events over 20 s, of which 2 s dead.
        assert_eq!(r.events, 2);
        assert_eq!(r.elapsed_s, 20.0);
        assert_eq!(r.live_time_s, 18.0);
        assert_eq!(r.rate_per_s, 2.0 / 18.0);
    }

    #[test]
    fn run_start_anchor_gives_a_rate_from_the_first_event() {
        let mut rate = CountRate::new(100.0);
        rate.restart_at_run_start();
        let r = rate.push(&event(1, 4.0, 0.0)).unwrap();
        assert_eq!((r.events, r.live_time_s), (1, 4.0));
        let r = rate.push(&event(2, 10.0, 1.0)).unwrap();
        // 2 events in 10 s of which 1 s dead.
        assert_eq!(r.rate_per_s, 2.0 / 9.0);
    }

    #[test]
    fn window_slides_and_keeps_one_anchor_before_its_start() {
        let mut rate = CountRate::new(10.0);
        for (i, t) in [0.0, 5.0, 12.0, 14.0, 20.0].into_iter().enumerate() {
            let _ = rate.push(&event(i as u64 + 1, t, t / 100.0));
        }
        // Window (10, 20]: anchor is the event at 5 s (last one at or before 10 s);
        // counted: 12, 14, 20.
        let r = rate.estimate().unwrap();
        assert_eq!(r.events, 3);
        assert_eq!(r.elapsed_s, 15.0);
        assert!((r.live_time_s - (15.0 - 0.15)).abs() < 1e-12);
    }

    #[test]
    fn detector_clock_going_back_restarts_the_window() {
        let mut rate = CountRate::new(100.0);
        rate.push(&event(1, 10.0, 0.0)).unwrap_err();
        rate.push(&event(2, 20.0, 0.0)).unwrap();
        assert_eq!(
            rate.push(&event(1, 3.0, 0.0)),
            Err(RateUnavailable::NotEnoughEvents)
        );
        let r = rate.push(&event(2, 5.0, 0.0)).unwrap();
        assert_eq!((r.events, r.elapsed_s), (1, 2.0));
    }

    #[test]
    fn zero_live_time_gives_no_rate() {
        let mut rate = CountRate::new(100.0);
        rate.push(&event(1, 10.0, 1.0)).unwrap_err();
        // Two events at the same millisecond.
        assert_eq!(
            rate.push(&event(2, 10.0, 1.0)),
            Err(RateUnavailable::NoLiveTime)
        );
        // Dead time covering the whole span.
        assert_eq!(
            rate.push(&event(3, 12.0, 3.0)),
            Err(RateUnavailable::NoLiveTime)
        );
    }

    #[test]
    fn reading_is_flagged_derived() {
        let mut rate = CountRate::new(100.0);
        rate.restart_at_run_start();
        let r = rate.push(&event(1, 2.0, 0.0)).unwrap();
        let reading = r.reading(SensorId(3), Timestamp::monotonic(7));
        assert_eq!(reading.quantity, Quantity::MuonCountRate);
        assert_eq!(reading.quality, Quality::DERIVED);
        assert_eq!(reading.value, 0.5);
        assert_eq!(r.standard_error_per_s(), 0.5);
    }
}
