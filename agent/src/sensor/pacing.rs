//! Read pacing for serial receivers that send in bursts (GNSS epochs).
//!
//! A UART hands its bytes to the reader a FIFO-load at a time, and the simulated devices'
//! pseudo-terminals a 10 ms tick at a time: a reader that reads as soon as anything is there
//! wakes once per chunk, several times per epoch. Paced, the next read after one that
//! returned bytes waits until a window has passed since, so a burst costs a wake-up per
//! window, not one per chunk. When the NMEA adapters see the epoch end (the last sentence
//! of the receiver's cycle, `FixAssembler::between_epochs`) they reset the pacing, so the
//! quiet line after a burst costs no paced wake-up either.
//!
//! Invariants: a quiet line is never paced (the read after an empty one blocks until the
//! first byte and returns at once); a read waits at most one window after data; the window
//! is short enough that the kernel's tty buffer (4 KiB in raw mode) is at most half full
//! after it at the port's line rate, so pacing never drops a byte.

use std::time::{Duration, Instant};

/// The longest window: a sentence read 25 ms late still carries its own epoch time.
pub const MAX_WINDOW: Duration = Duration::from_millis(25);

/// Bytes the tty buffer may hold when the window ends (half of n_tty's 4 KiB).
const BUFFERED_AT_MOST: u64 = 2048;

/// When the next read of a port may go.
#[derive(Debug, Clone)]
pub struct ReadPacing {
    window: Duration,
    last_data: Option<Instant>,
}

impl ReadPacing {
    /// Pacing for a port at `baud` (8N1: ten bits a byte).
    pub fn for_baud(baud: u32) -> ReadPacing {
        let bytes_per_s = u64::from(baud.max(1)) / 10;
        let fill = Duration::from_micros(BUFFERED_AT_MOST * 1_000_000 / bytes_per_s.max(1));
        ReadPacing {
            window: fill.min(MAX_WINDOW),
            last_data: None,
        }
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// How long the read at `now` should wait first.
    pub fn delay_at(&self, now: Instant) -> Duration {
        match self.last_data {
            Some(at) => (at + self.window).saturating_duration_since(now),
            None => Duration::ZERO,
        }
    }

    /// Sleeps until the next read may go.
    pub fn wait(&self) {
        let delay = self.delay_at(Instant::now());
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
    }

    /// Notes what a read returned: bytes start a window, an empty read ends pacing.
    pub fn record(&mut self, got_bytes: bool, now: Instant) {
        self.last_data = got_bytes.then_some(now);
    }

    /// Forgets the last read (the port was reopened).
    pub fn reset(&mut self) {
        self.last_data = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_keeps_the_tty_buffer_at_most_half_full() {
        // 9600 baud: 960 B/s, the tty buffer would take two seconds to half-fill.
        assert_eq!(ReadPacing::for_baud(9_600).window(), MAX_WINDOW);
        assert_eq!(ReadPacing::for_baud(115_200).window(), MAX_WINDOW);
        // 921 600 baud (u-blox's fastest): 92 160 B/s, 2048 B in 22.2 ms.
        let fast = ReadPacing::for_baud(921_600).window();
        assert!(fast < MAX_WINDOW, "{fast:?}");
        assert!(fast.as_secs_f64() * 92_160.0 <= 2048.0, "{fast:?}");
        // A nonsensical rate does not divide by zero.
        assert!(ReadPacing::for_baud(0).window() <= MAX_WINDOW);
    }

    #[test]
    fn only_a_read_that_returned_bytes_delays_the_next() {
        let mut pacing = ReadPacing::for_baud(115_200);
        let start = Instant::now();
        assert_eq!(pacing.delay_at(start), Duration::ZERO, "a fresh port");
        pacing.record(true, start);
        assert_eq!(pacing.delay_at(start), MAX_WINDOW);
        assert_eq!(
            pacing.delay_at(start + Duration::from_millis(10)),
            Duration::from_millis(15)
        );
        assert_eq!(pacing.delay_at(start + MAX_WINDOW * 2), Duration::ZERO);
        pacing.record(false, start + MAX_WINDOW);
        assert_eq!(
            pacing.delay_at(start + MAX_WINDOW),
            Duration::ZERO,
            "a quiet line"
        );
        pacing.record(true, start);
        pacing.reset();
        assert_eq!(pacing.delay_at(start), Duration::ZERO, "a reopened port");
    }

    #[test]
    fn wait_sleeps_out_the_window_after_data() {
        let mut pacing = ReadPacing::for_baud(115_200);
        let start = Instant::now();
        pacing.record(true, start);
        pacing.wait();
        // A lower bound only: sleep never returns early, the machine may be slow.
        assert!(start.elapsed() >= MAX_WINDOW);
    }
}
