//! The ozone monitor's port: bytes as reads return them, split into lines, each line a
//! sample (its readings appended) or a reason it is not one.
//!
//! Invariants: a line is at most [`MAX_LINE`] bytes (a longer run without a line end is
//! dropped as garbage, and the line after it starts clean); bytes of an unfinished line wait
//! for the next push; memory is bounded by [`MAX_LINE`] whatever arrives.

use aloft_protocol::{Reading, SensorId, Timestamp};

use super::MAX_LINE;
use super::line::{LineError, PomSample, Units, parse_line};
use crate::Sample;

/// What one line turned out to be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StreamItem {
    /// A data line, its readings appended.
    Sample(PomSample),
    /// One of the monitor's messages (logging started, averaging changed): not an error.
    Message,
    /// A line that should have been data and is not (noise, a dropped byte).
    Bad(LineError),
    /// More than [`MAX_LINE`] bytes without a line end.
    TooLong,
}

/// Bytes in, samples out.
#[derive(Debug, Clone)]
pub struct OzoneStream {
    units: Units,
    pending: Vec<u8>,
    overflowed: bool,
}

impl OzoneStream {
    /// A stream of a monitor set to `units`.
    pub fn new(units: Units) -> Self {
        OzoneStream {
            units,
            pending: Vec::with_capacity(MAX_LINE),
            overflowed: false,
        }
    }

    /// The units the lines are read in.
    pub fn units(&self) -> Units {
        self.units
    }

    /// Reads the lines from now on in `units` (the monitor's menu was changed).
    pub fn set_units(&mut self, units: Units) {
        self.units = units;
    }

    /// Forgets a partial line (the port was reopened).
    pub fn reset(&mut self) {
        self.pending.clear();
        self.overflowed = false;
    }

    /// Takes `bytes`; every complete line's readings (stamped `time`) go to `out`, and
    /// `on_item` hears what each line was.
    pub fn push_bytes(
        &mut self,
        bytes: &[u8],
        sensor: SensorId,
        time: Timestamp,
        out: &mut Vec<Reading>,
        mut on_item: impl FnMut(StreamItem),
    ) {
        for &b in bytes {
            if b == b'\n' || b == b'\r' {
                if self.overflowed {
                    self.overflowed = false;
                    self.pending.clear();
                    on_item(StreamItem::TooLong);
                    continue;
                }
                if self.pending.is_empty() {
                    continue;
                }
                let item = match parse_line(&self.pending) {
                    Ok(line) => {
                        let sample = PomSample {
                            line,
                            units: self.units,
                        };
                        sample.push_readings(sensor, time, out);
                        StreamItem::Sample(sample)
                    }
                    Err(LineError::Message) => StreamItem::Message,
                    Err(e) => StreamItem::Bad(e),
                };
                self.pending.clear();
                on_item(item);
            } else if self.pending.len() < MAX_LINE {
                self.pending.push(b);
            } else {
                self.overflowed = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aloft_protocol::Quantity;

    #[test]
    fn lines_split_across_reads_become_one_sample_each() {
        let mut s = OzoneStream::new(Units::default());
        let mut out = Vec::new();
        let mut items = Vec::new();
        let data = b"Logging Started\r\n42.0,30.0,900.0,1000,07/12/26,18:00:00\r\n43.0,30.0,9";
        s.push_bytes(data, SensorId(1), Timestamp::monotonic(1), &mut out, |i| {
            items.push(i)
        });
        assert_eq!(out.len(), 4);
        assert_eq!(out[0].quantity, Quantity::OzoneMoleFraction);
        s.push_bytes(
            b"00.0,1000,07/12/26,18:00:02\r\n",
            SensorId(1),
            Timestamp::monotonic(2),
            &mut out,
            |i| items.push(i),
        );
        assert_eq!(out.len(), 8);
        assert!((out[4].value - 43e-9).abs() < 1e-15);
        assert!(matches!(items[0], StreamItem::Message));
        assert_eq!(items.len(), 3);
    }

    #[test]
    fn a_run_without_a_line_end_is_dropped_and_the_next_line_reads() {
        let mut s = OzoneStream::new(Units::default());
        let mut out = Vec::new();
        let mut items = Vec::new();
        let mut data = vec![b'7'; 500];
        data.extend_from_slice(b"\r\n42.0,30.0,900.0,1000,07/12/26,18:00:00\r\n");
        s.push_bytes(&data, SensorId(1), Timestamp::monotonic(1), &mut out, |i| {
            items.push(i)
        });
        assert!(matches!(items[0], StreamItem::TooLong));
        assert!(matches!(items[1], StreamItem::Sample(_)));
        assert_eq!(out.len(), 4);
    }
}
