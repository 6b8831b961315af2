//! What a line carries: the framed bytes per event and the highest event rate a baud rate
//! carries without drops, from real encoded frames.
//!
//! The figures use the frames the front end sends at the rate in question: a full batch
//! ([`MAX_BATCH_EVENTS`] events) of coincident muons at the simulated detector's most
//! probable height (80 mV: one varint byte per channel; a Landau tail above 127 mV takes
//! two), spaced at fifteen evenly spread quantiles of the exponential gap of a Poisson
//! stream at that rate (so the gaps' varint lengths mix as a real stream's do), numbered and
//! time-stamped as an hour into a run; plus one housekeeping message per interval with the
//! counts of such an hour. Replies are left out (a ping a second costs ~20 B/s, 0.2 % of
//! 115 200 baud). The queue ([`crate::frontend::EVENT_QUEUE_BATCHES`] batches) absorbs a
//! Poisson stream's bursts below that rate; above it, the backlog grows and events drop.
//!
//! Invariant: the functions are pure and total.

use crate::random::neg_ln_q16;
use aloft_protocol::detector::{
    Channels, Event, EventBatch, FromFrontEnd, Housekeeping, MAX_BATCH_EVENTS, MAX_FRAME_BYTES,
    encode_frame,
};

/// What a line carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineBudget {
    /// The line's bytes per second (10 bits a byte).
    pub line_bytes_per_s: u32,
    /// A full batch's frame at the highest rate, bytes (delimiter included).
    pub full_batch_frame_bytes: u32,
    /// A housekeeping frame, bytes.
    pub housekeeping_frame_bytes: u32,
    /// The highest steady event rate the line carries without drops, events/s.
    pub max_events_per_s: u32,
}

impl LineBudget {
    /// Framed bytes per event in a full batch at the highest rate, in thousandths.
    pub fn bytes_per_event_milli(&self) -> u32 {
        self.full_batch_frame_bytes * 1_000 / MAX_BATCH_EVENTS as u32
    }
}

/// The most probable pulse height of a muon in the simulated detector, mV: the budget's
/// representative event.
pub const REPRESENTATIVE_PULSE_MV: u16 = 80;

/// A run's length the budget's numbers and time stamps are taken from, s.
const RUN_S: u64 = 3_600;

/// The frame of a full batch of events at `rate` per second of a `tick_hz` counter,
/// `run_s` seconds into a run, bytes.
pub fn full_batch_frame_bytes(rate: u32, tick_hz: u32, run_s: u64) -> u32 {
    let rate = rate.max(1);
    let mean_gap = u64::from(tick_hz) / u64::from(rate);
    let gaps = MAX_BATCH_EVENTS as u64 - 1;
    let mut events = heapless::Vec::new();
    for i in 0..MAX_BATCH_EVENTS as u64 {
        // The gap at quantile p = (i − ½)/15 of an exponential: −ln(1 − p) · mean, with
        // 1 − p = (2·15 − 2i + 1)/(2·15) in Q16.
        let delta_ticks = if i == 0 {
            0
        } else {
            let survival_q16 = ((2 * gaps - 2 * i + 1) << 16) / (2 * gaps);
            (neg_ln_q16(survival_q16, 16) * mean_gap) >> 16
        };
        let _ = events.push(Event {
            delta_ticks: u32::try_from(delta_ticks).unwrap_or(u32::MAX),
            channels: Channels::BOTH,
            pulse_a_mv: REPRESENTATIVE_PULSE_MV,
            pulse_b_mv: REPRESENTATIVE_PULSE_MV,
        });
    }
    frame_bytes(&FromFrontEnd::Events(EventBatch {
        first_event: u32::try_from(u64::from(rate) * run_s).unwrap_or(u32::MAX),
        first_ticks: u64::from(tick_hz) * run_s,
        events,
    }))
}

/// A housekeeping frame at `rate` events per second, every `interval_ms`, `run_s` seconds
/// into a run, bytes.
pub fn housekeeping_frame_bytes(rate: u32, tick_hz: u32, interval_ms: u32, run_s: u64) -> u32 {
    let per_interval =
        u32::try_from(u64::from(rate) * u64::from(interval_ms) / 1_000).unwrap_or(u32::MAX);
    let interval_ticks =
        u32::try_from(u64::from(tick_hz) * u64::from(interval_ms) / 1_000).unwrap_or(u32::MAX);
    frame_bytes(&FromFrontEnd::Housekeeping(Housekeeping {
        ticks: u64::from(tick_hz) * run_s,
        interval_ticks,
        hits_a: per_interval,
        hits_b: per_interval,
        coincidences: per_interval,
        dead_ticks: interval_ticks / 50,
        temperature_centi_c: 2_200,
        events_total: u32::try_from(u64::from(rate) * run_s).unwrap_or(u32::MAX),
        dropped_events_total: 0,
        rejected_frames_total: 0,
    }))
}

fn frame_bytes(message: &FromFrontEnd) -> u32 {
    let mut out = [0u8; MAX_FRAME_BYTES];
    encode_frame(message, &mut out).map_or(MAX_FRAME_BYTES as u32, |len| len as u32)
}

/// The budget of a line at `baud` for a front end counting at `tick_hz` that sends
/// housekeeping every `housekeeping_interval_ms` (see the module docs).
pub fn line_budget(baud: u32, tick_hz: u32, housekeeping_interval_ms: u32) -> LineBudget {
    let line = u64::from(baud / 10);
    let interval = housekeeping_interval_ms.max(1);
    let batch = |rate: u32| full_batch_frame_bytes(rate, tick_hz, RUN_S);
    let housekeeping = |rate: u32| housekeeping_frame_bytes(rate, tick_hz, interval, RUN_S);
    let events = MAX_BATCH_EVENTS as u64;
    // rate · batch/16 + housekeeping · 1000/interval ≤ line, in integers.
    let fits = |rate: u32| {
        u64::from(rate) * u64::from(batch(rate)) * u64::from(interval)
            + u64::from(housekeeping(rate)) * 1_000 * events
            <= line * events * u64::from(interval)
    };
    let (mut lo, mut hi) = (0u32, (line as u32).max(1));
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    LineBudget {
        line_bytes_per_s: line as u32,
        full_batch_frame_bytes: batch(lo),
        housekeeping_frame_bytes: housekeeping(lo),
        max_events_per_s: lo,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_at_115200_is_well_over_a_thousand_events_a_second() {
        let budget = line_budget(115_200, 12_000_000, 1_000);
        assert_eq!(budget.line_bytes_per_s, 11_520);
        let per_event = budget.full_batch_frame_bytes as f64 / 16.0;
        assert!((5.0..10.0).contains(&per_event), "{budget:?}");
        assert!(
            (1_200..2_000).contains(&budget.max_events_per_s),
            "{budget:?}"
        );
        // The rate found fits and one more does not (the search's own claim).
        let needed = |rate: u32| {
            f64::from(rate) * f64::from(full_batch_frame_bytes(rate, 12_000_000, 3_600)) / 16.0
                + f64::from(housekeeping_frame_bytes(rate, 12_000_000, 1_000, 3_600))
        };
        assert!(needed(budget.max_events_per_s) <= 11_520.0);
        assert!(needed(budget.max_events_per_s + 1) > 11_520.0);
    }

    #[test]
    fn gaps_spread_like_a_poisson_streams() {
        // At 1 000/s of a 12 MHz counter the mean gap is 12 000 ticks: the quantiles run
        // from ~400 (two varint bytes) to ~41 000 (three), ten of the fifteen below 16 384.
        let at = |rate| full_batch_frame_bytes(rate, 12_000_000, 3_600);
        assert!(at(1_000) > at(10_000), "rarer events, longer gaps");
        assert!(at(100) > at(1_000));
    }

    #[test]
    fn a_faster_line_carries_more() {
        let slow = line_budget(9_600, 12_000_000, 1_000).max_events_per_s;
        let fast = line_budget(115_200, 12_000_000, 1_000).max_events_per_s;
        assert!(slow > 0 && fast > 10 * slow, "{slow} {fast}");
    }
}
