//! The stream of one detector's serial port: lines in, events, descriptors and reboots out.
//!
//! The stream learns the format (v2 or v3X) from the header or, when it joined mid-run,
//! from the separator of the first event line; it learns the detector's name from the v2
//! `Device ID:` line (or the bare name the older v2 sketches print after the header), the
//! v3X `Detector Name:` header line or the v3X `Name` column. A detector that restarts
//! (brown-out, USB re-enumeration, a `reboot` command) shows it by a new title line, or by
//! its event number or clock going back: the stream reports that as a
//! [`StreamItem::Reboot`] so that the agent can record a new descriptor and restart the
//! count rate.
//!
//! Invariants: bad lines are counted and returned, never fatal; a line longer than
//! [`MAX_LINE_LEN`] is cut and counted as bad rather than buffered without bound.

use aloft_protocol::SensorDescriptor;

use super::line::{Format, HeaderLine, Line, LineError, MuonEvent, parse_line};

/// Longest line kept by [`DetectorStream::push_bytes`]. A full v3X USB line with every
/// column and a 20-character name is about 110 bytes.
pub const MAX_LINE_LEN: usize = 256;

/// Why the stream concluded that the detector restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebootCause {
    /// A new title line after events had been seen.
    NewHeader,
    /// The event number did not increase.
    EventCountWentBack {
        /// Last event number before.
        previous: u64,
        /// The event number now.
        now: u64,
    },
    /// The detector clock went back while the event number increased.
    DetectorTimeWentBack,
}

/// What a line meant for the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    /// Nothing to act on: a blank line, a diagnostic or housekeeping comment, a header
    /// line that taught nothing new.
    Nothing,
    /// The stream learned what the detector is (format and name): record this descriptor.
    Descriptor(SensorDescriptor),
    /// A particle event of the current run.
    Event(MuonEvent),
    /// The detector restarted. When the line that revealed it was an event, that event is
    /// the first of the new run.
    Reboot {
        /// How the restart showed.
        cause: RebootCause,
        /// The event on the same line, if any.
        first_event: Option<MuonEvent>,
    },
    /// The line is not a valid CosmicWatch line; it was counted.
    Bad(LineError),
}

/// Counters of a stream, for health and status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamCounters {
    /// Events yielded.
    pub events: u64,
    /// Lines rejected (including over-long ones).
    pub bad_lines: u64,
    /// Restarts detected.
    pub reboots: u64,
}

/// The state of one detector's line stream.
#[derive(Debug, Clone, Default)]
pub struct DetectorStream {
    format: Option<Format>,
    detector_name: Option<String>,
    /// Event number and detector time of the last event of the current run.
    last: Option<(u64, f64)>,
    /// True between a title line and the first event: a bare name line is accepted here.
    in_header: bool,
    /// True when the current run's start (its header) was seen in this stream.
    run_start_seen: bool,
    counters: StreamCounters,
    partial: Vec<u8>,
    overflowed: bool,
}

impl DetectorStream {
    /// A stream that has seen nothing yet.
    pub fn new() -> Self {
        DetectorStream::default()
    }

    /// The format, once known.
    pub fn format(&self) -> Option<Format> {
        self.format
    }

    /// The detector's name, once known.
    pub fn detector_name(&self) -> Option<&str> {
        self.detector_name.as_deref()
    }

    /// True when the current run's header was seen, so its detector clock and dead time
    /// started at 0 within this stream (see [`super::CountRate::restart_at_run_start`]).
    pub fn run_start_seen(&self) -> bool {
        self.run_start_seen
    }

    /// The counters so far.
    pub fn counters(&self) -> StreamCounters {
        self.counters
    }

    /// What is known of the detector, as a descriptor (`None` until the format is known).
    pub fn descriptor(&self) -> Option<SensorDescriptor> {
        let format = self.format?;
        let mut d = SensorDescriptor::new(format.device_name());
        d.serial_number = self.detector_name.clone();
        Some(d.with_integer("baud", i64::from(format.baud())))
    }

    /// Feeds one line (with or without its line end).
    pub fn feed_line(&mut self, line: &[u8]) -> StreamItem {
        match parse_line(line) {
            Ok(Line::Blank) => StreamItem::Nothing,
            Ok(Line::Header(h)) => self.header(&h),
            Ok(Line::DeviceId(name)) => self.learn_name(name),
            Ok(Line::Event {
                event,
                detector_name,
            }) => self.event(event, detector_name),
            Err(e) => {
                // Older v2 sketches print the bare EEPROM name after the header.
                if self.in_header
                    && let Ok(text) = core::str::from_utf8(line)
                {
                    let name = text.trim();
                    if !name.is_empty() && !name.contains([' ', '\t']) {
                        self.in_header = false;
                        return self.learn_name(name);
                    }
                }
                self.bad(e)
            }
        }
    }

    /// Feeds raw bytes from the port, calling `on_item` for each completed line.
    /// A partial line is kept until its `\n` arrives.
    pub fn push_bytes(&mut self, bytes: &[u8], mut on_item: impl FnMut(StreamItem)) {
        for chunk in bytes.split_inclusive(|&b| b == b'\n') {
            let complete = chunk.last() == Some(&b'\n');
            let room = MAX_LINE_LEN.saturating_sub(self.partial.len());
            if chunk.len() > room {
                self.overflowed = true;
            }
            let kept = chunk.get(..room.min(chunk.len())).unwrap_or_default();
            self.partial.extend_from_slice(kept);
            if complete {
                let item = if self.overflowed {
                    self.counters.bad_lines += 1;
                    tracing::debug!(max = MAX_LINE_LEN, "CosmicWatch line too long; dropped.");
                    StreamItem::Bad(LineError::TooLong)
                } else {
                    let line = core::mem::take(&mut self.partial);
                    let item = self.feed_line(&line);
                    self.partial = line;
                    item
                };
                self.partial.clear();
                self.overflowed = false;
                on_item(item);
            }
        }
    }

    fn header(&mut self, h: &HeaderLine<'_>) -> StreamItem {
        let mut item = StreamItem::Nothing;
        if h.is_banner {
            if self.last.is_some() {
                self.counters.reboots += 1;
                tracing::info!(cause = "new header", "CosmicWatch detector rebooted.");
                item = StreamItem::Reboot {
                    cause: RebootCause::NewHeader,
                    first_event: None,
                };
            }
            self.last = None;
            self.in_header = true;
            self.run_start_seen = true;
        }
        if let Some(f) = h.format {
            self.format = Some(f);
        }
        match h.detector_name {
            Some(name) => self.learn_name(name),
            None => item,
        }
    }

    fn learn_name(&mut self, name: &str) -> StreamItem {
        self.in_header = false;
        if self.detector_name.as_deref() != Some(name) {
            self.detector_name = Some(name.to_owned());
        }
        match self.descriptor() {
            Some(d) => StreamItem::Descriptor(d),
            None => StreamItem::Nothing,
        }
    }

    fn event(&mut self, event: MuonEvent, name: Option<&str>) -> StreamItem {
        self.in_header = false;
        self.format = Some(event.format);
        let cause = match self.last {
            Some((previous, _)) if event.event <= previous => Some(RebootCause::EventCountWentBack {
                previous,
                now: event.event,
            }),
            Some((_, t)) if event.detector_time_s < t => Some(RebootCause::DetectorTimeWentBack),
            _ => None,
        };
        self.last = Some((event.event, event.detector_time_s));
        self.counters.events += 1;
        if let Some(cause) = cause {
            self.counters.reboots += 1;
            // A restart that skipped the header: the run's start was not seen.
            self.run_start_seen = false;
            tracing::info!(?cause, event = event.event, "CosmicWatch detector rebooted.");
            return StreamItem::Reboot {
                cause,
                first_event: Some(event),
            };
        }
        if let Some(name) = name
            && self.detector_name.as_deref() != Some(name)
        {
            // The v3X Name column names a detector whose header was missed; the name
            // shows in `descriptor()`. The event itself is what this line yields.
            self.detector_name = Some(name.to_owned());
        }
        StreamItem::Event(event)
    }

    fn bad(&mut self, e: LineError) -> StreamItem {
        self.counters.bad_lines += 1;
        tracing::debug!(error = %e, "Bad CosmicWatch line.");
        StreamItem::Bad(e)
    }
}
