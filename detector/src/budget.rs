//! What a line carries: the framed bytes per event and the highest event rate a baud rate
//! carries without drops, from real encoded frames.
//!
//! The figures use the frames the front end sends: a full batch ([`MAX_BATCH_EVENTS`]
//! events) whose events are spaced evenly at the rate in question (the mean spacing of a
//! Poisson stream), coincident, with pulse heights of two varint bytes (128 mV and up: a
//! muon's tail; the mode's heights encode in one), the event number and start tick of a
//! day-long run, plus one housekeeping message per interval with every count at its
//! largest encoding. Replies are left out (a ping a second costs ~20 B/s, 0.2 % of
//! 115 200 baud). So the rate is what the line carries of a steady stream; a Poisson
//! stream's bursts are absorbed by the queue ([`crate::frontend::EVENT_QUEUE_BATCHES`]
//! batches) up to close to that rate.
//!
//! Invariant: the functions are pure and total.

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

/// The frame of a full batch whose events are `delta_ticks` apart, bytes.
pub fn full_batch_frame_bytes(delta_ticks: u32, first_ticks: u64) -> u32 {
    let mut events = heapless::Vec::new();
    for i in 0..MAX_BATCH_EVENTS {
        let _ = events.push(Event {
            delta_ticks: if i == 0 { 0 } else { delta_ticks },
            channels: Channels::BOTH,
            pulse_a_mv: 200,
            pulse_b_mv: 200,
        });
    }
    frame_bytes(&FromFrontEnd::Events(EventBatch {
        first_event: u32::MAX,
        first_ticks,
        events,
    }))
}

/// The largest housekeeping frame of a day-long run, bytes.
pub fn housekeeping_frame_bytes(tick_hz: u32) -> u32 {
    frame_bytes(&FromFrontEnd::Housekeeping(Housekeeping {
        ticks: u64::from(tick_hz) * 86_400,
        interval_ticks: u32::MAX,
        hits_a: u32::MAX,
        hits_b: u32::MAX,
        coincidences: u32::MAX,
        dead_ticks: u32::MAX,
        temperature_centi_c: i16::MIN,
        events_total: u32::MAX,
        dropped_events_total: u32::MAX,
        rejected_frames_total: u32::MAX,
    }))
}

fn frame_bytes(message: &FromFrontEnd) -> u32 {
    let mut out = [0u8; MAX_FRAME_BYTES];
    encode_frame(message, &mut out).map_or(MAX_FRAME_BYTES as u32, |len| len as u32)
}

/// The budget of a line at `baud` for a front end counting at `tick_hz` that sends
/// housekeeping every `housekeeping_interval_ms`.
pub fn line_budget(baud: u32, tick_hz: u32, housekeeping_interval_ms: u32) -> LineBudget {
    let line = u64::from(baud / 10);
    let interval = u64::from(housekeeping_interval_ms.max(1));
    let first_ticks = u64::from(tick_hz) * 86_400;
    let housekeeping = housekeeping_frame_bytes(tick_hz);
    let batch = |rate: u32| full_batch_frame_bytes(tick_hz / rate.max(1), first_ticks);
    let events = MAX_BATCH_EVENTS as u64;
    // rate · batch/16 + housekeeping · 1000/interval ≤ line, in integers.
    let fits = |rate: u32| {
        u64::from(rate) * u64::from(batch(rate)) * interval
            + u64::from(housekeeping) * 1_000 * events
            <= line * events * interval
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
        housekeeping_frame_bytes: housekeeping,
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
        assert!((8.0..12.0).contains(&per_event), "{budget:?}");
        assert!(
            (1_000..1_600).contains(&budget.max_events_per_s),
            "{budget:?}"
        );
        // The rate found fits and one more does not (the search's own claim).
        let needed = |rate: u32| {
            f64::from(rate)
                * f64::from(full_batch_frame_bytes(
                    12_000_000 / rate,
                    12_000_000 * 86_400,
                ))
                / 16.0
                + f64::from(budget.housekeeping_frame_bytes)
        };
        assert!(needed(budget.max_events_per_s) <= 11_520.0);
        assert!(needed(budget.max_events_per_s + 1) > 11_520.0);
    }

    #[test]
    fn a_faster_line_carries_more() {
        let slow = line_budget(9_600, 12_000_000, 1_000).max_events_per_s;
        let fast = line_budget(115_200, 12_000_000, 1_000).max_events_per_s;
        assert!(slow > 0 && fast > 10 * slow, "{slow} {fast}");
    }
}
