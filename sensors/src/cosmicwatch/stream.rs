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
    /// A detector's boot header began (with no events of an earlier run seen before it):
    /// its clock and dead time start from 0 here.
    RunStart,
    /// The stream learned what the detector is (format and name): record this descriptor.
    Descriptor(SensorDescriptor),
    /// A particle event of the current run.
    Event(MuonEvent),
    /// The detector restarted. When the line that revealed it was an event, that event is
    /// the first of the new run (whose start was not seen); otherwise it was a new header
    /// and, as with [`StreamItem::RunStart`], the clock and dead time start from 0 here.
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
    /// True when format or name changed since a descriptor was last handed out.
    descriptor_changed: bool,
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

    /// The descriptor, if what is known of the detector changed since a descriptor was
    /// last handed out (as a [`StreamItem::Descriptor`] or by this method). A stream that
    /// missed the header learns the format and (v3X) the name from event lines, which
    /// yield their event; this is how the caller learns it has a new descriptor to record.
    pub fn take_new_descriptor(&mut self) -> Option<SensorDescriptor> {
        if !self.descriptor_changed {
            return None;
        }
        let d = self.descriptor()?;
        self.descriptor_changed = false;
        Some(d)
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
            item = if self.last.is_some() {
                self.counters.reboots += 1;
                tracing::info!(cause = "new header", "CosmicWatch detector rebooted.");
                StreamItem::Reboot {
                    cause: RebootCause::NewHeader,
                    first_event: None,
                }
            } else {
                StreamItem::RunStart
            };
            self.last = None;
            self.in_header = true;
            self.run_start_seen = true;
        }
        if let Some(f) = h.format {
            self.set_format(f);
        }
        match h.detector_name {
            Some(name) => self.learn_name(name),
            None => item,
        }
    }

    fn set_format(&mut self, format: Format) {
        if self.format != Some(format) {
            self.format = Some(format);
            self.descriptor_changed = true;
        }
    }

    fn set_name(&mut self, name: &str) {
        if self.detector_name.as_deref() != Some(name) {
            self.detector_name = Some(name.to_owned());
            self.descriptor_changed = true;
        }
    }

    /// A name from the header: always worth a descriptor record, since the header means
    /// a (re)start.
    fn learn_name(&mut self, name: &str) -> StreamItem {
        self.in_header = false;
        if !name.is_empty() {
            self.set_name(name);
        }
        match self.descriptor() {
            Some(d) => {
                self.descriptor_changed = false;
                StreamItem::Descriptor(d)
            }
            None => StreamItem::Nothing,
        }
    }

    fn event(&mut self, event: MuonEvent, name: Option<&str>) -> StreamItem {
        self.in_header = false;
        self.set_format(event.format);
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            // The v3X Name column: it names a detector whose header was missed.
            self.set_name(name);
        }
        let cause = match self.last {
            Some((previous, _)) if event.event <= previous => {
                Some(RebootCause::EventCountWentBack {
                    previous,
                    now: event.event,
                })
            }
            Some((_, t)) if event.detector_time_s < t => Some(RebootCause::DetectorTimeWentBack),
            _ => None,
        };
        self.last = Some((event.event, event.detector_time_s));
        self.counters.events += 1;
        if let Some(cause) = cause {
            self.counters.reboots += 1;
            // A restart that skipped the header: the run's start was not seen.
            self.run_start_seen = false;
            tracing::info!(
                ?cause,
                event = event.event,
                "CosmicWatch detector rebooted."
            );
            return StreamItem::Reboot {
                cause,
                first_event: Some(event),
            };
        }
        StreamItem::Event(event)
    }

    fn bad(&mut self, e: LineError) -> StreamItem {
        self.counters.bad_lines += 1;
        tracing::debug!(error = %e, "Bad CosmicWatch line.");
        StreamItem::Bad(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const V2_BOOT: &str = "#####################################################################################\r\n\
### CosmicWatch: The Desktop Muon Detector\r\n\
### Questions? saxani@mit.edu\r\n\
### Comp_date Comp_time Event Ardn_time[ms] ADC[0-1023] SiPM[mV] Deadtime[ms] Temp[C]\r\n\
#####################################################################################\r\n";

    fn feed_all(stream: &mut DetectorStream, text: &str) -> Vec<StreamItem> {
        let mut items = Vec::new();
        stream.push_bytes(text.as_bytes(), |i| items.push(i));
        items
    }

    fn events(items: &[StreamItem]) -> Vec<u64> {
        items
            .iter()
            .filter_map(|i| match i {
                StreamItem::Event(e) => Some(e.event),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn v2_boot_gives_a_descriptor_with_the_device_id_then_events() {
        let mut s = DetectorStream::new();
        let items = feed_all(
            &mut s,
            &format!("{V2_BOOT}Device ID: billy\r\n1 54840 675 317.99 10 18.00\r\n"),
        );
        let descriptor = items.iter().find_map(|i| match i {
            StreamItem::Descriptor(d) => Some(d.clone()),
            _ => None,
        });
        let d = descriptor.expect("descriptor");
        assert_eq!(d.device, "CosmicWatch v2");
        assert_eq!(d.serial_number.as_deref(), Some("billy"));
        assert_eq!(events(&items), [1]);
        assert_eq!(s.format(), Some(Format::V2));
        assert!(s.run_start_seen());
        // Already handed out as an item.
        assert_eq!(s.take_new_descriptor(), None);
        assert_eq!(s.counters().bad_lines, 0);
    }

    #[test]
    fn bare_name_after_the_v2_header_is_the_device_name() {
        let mut s = DetectorStream::new();
        let items = feed_all(&mut s, &format!("{V2_BOOT}Adler\r\n"));
        assert!(matches!(items.last(), Some(StreamItem::Descriptor(_))));
        assert_eq!(s.detector_name(), Some("Adler"));
        // The same word later is a bad line, not a rename.
        let items = feed_all(&mut s, "1 54840 675 317.99 10 18.00\r\nBob\r\n");
        assert!(matches!(items.last(), Some(StreamItem::Bad(_))));
        assert_eq!(s.detector_name(), Some("Adler"));
    }

    #[test]
    fn format_is_detected_from_the_separator_when_the_header_was_missed() {
        let mut s = DetectorStream::new();
        assert_eq!(s.descriptor(), None);
        feed_all(&mut s, "5\t1.5\t0\t100\t7.1\t0.0004\tTOP\r\n");
        assert_eq!(s.format(), Some(Format::V3x));
        assert_eq!(s.detector_name(), Some("TOP"));
        assert!(!s.run_start_seen());
        let d = s.take_new_descriptor().unwrap();
        assert_eq!(d.device, "CosmicWatch v3X");
        assert_eq!(d.serial_number.as_deref(), Some("TOP"));
        assert_eq!(s.descriptor(), Some(d));
        // Handed out once; the next line teaches nothing new.
        feed_all(&mut s, "6\t2.5\t0\t100\t7.1\t0.0004\tTOP\r\n");
        assert_eq!(s.take_new_descriptor(), None);
    }

    #[test]
    fn a_new_header_after_events_is_a_reboot() {
        let mut s = DetectorStream::new();
        feed_all(
            &mut s,
            &format!("{V2_BOOT}Device ID: billy\r\n1 100 675 317.99 0 18.00\r\n"),
        );
        let items = feed_all(&mut s, V2_BOOT);
        assert!(items.contains(&StreamItem::Reboot {
            cause: RebootCause::NewHeader,
            first_event: None
        }));
        // The first event of the new run is an ordinary event.
        let items = feed_all(&mut s, "Device ID: billy\r\n1 90 675 317.99 0 18.00\r\n");
        assert_eq!(events(&items), [1]);
        assert_eq!(s.counters().reboots, 1);
    }

    #[test]
    fn event_count_or_clock_going_back_is_a_reboot() {
        let mut s = DetectorStream::new();
        let items = feed_all(
            &mut s,
            "7 5000 675 317.99 10 18.00\r\n8 6000 675 317.99 10 18.00\r\n2 1000 675 317.99 0 18.00\r\n",
        );
        let StreamItem::Reboot { cause, first_event } = &items[2] else {
            panic!("{items:?}")
        };
        assert_eq!(
            *cause,
            RebootCause::EventCountWentBack {
                previous: 8,
                now: 2
            }
        );
        assert_eq!(first_event.map(|e| e.event), Some(2));
        let items = feed_all(&mut s, "3 500 675 317.99 0 18.00\r\n");
        assert!(matches!(
            items[0],
            StreamItem::Reboot {
                cause: RebootCause::DetectorTimeWentBack,
                ..
            }
        ));
        assert_eq!(s.counters().reboots, 2);
        assert_eq!(s.counters().events, 4);
    }

    #[test]
    fn housekeeping_comments_mid_run_are_not_reboots() {
        let mut s = DetectorStream::new();
        let items = feed_all(
            &mut s,
            "1\t1.0\t0\t100\t7.1\t0.0004\r\n# HK t=60.001 events=1 src=periodic\r\n2\t2.0\t0\t100\t7.1\t0.0008\r\n",
        );
        assert_eq!(items[1], StreamItem::Nothing);
        assert_eq!(events(&items), [1, 2]);
        assert_eq!(s.counters().reboots, 0);
    }

    #[test]
    fn bad_lines_are_counted_and_survived() {
        let mut s = DetectorStream::new();
        let mut items = Vec::new();
        s.push_bytes(
            b"1 100 675 317.99 0 18.00\r\n1 10\xC3 675\r\n2 200 2000 1 0 18\r\n3 300 675 317.99 0 18.00\r\n",
            |i| items.push(i),
        );
        assert_eq!(events(&items), [1, 3]);
        assert_eq!(s.counters().bad_lines, 2);
    }

    #[test]
    fn lines_split_across_reads_are_reassembled_and_overlong_lines_dropped() {
        let mut s = DetectorStream::new();
        let mut items = Vec::new();
        for part in [
            "1 100 67",
            "5 317.99 0 1",
            "8.00\r\n2 2",
            "00 675 317.99 0 18.00\r\n",
        ] {
            s.push_bytes(part.as_bytes(), |i| items.push(i));
        }
        assert_eq!(events(&items), [1, 2]);
        let long = "9".repeat(MAX_LINE_LEN * 3);
        let items = feed_all(&mut s, &format!("{long}\r\n3 300 675 317.99 0 18.00\r\n"));
        assert_eq!(items[0], StreamItem::Bad(LineError::TooLong));
        assert_eq!(events(&items), [3]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_bytes_never_panic_the_stream(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..6)
        ) {
            let mut s = DetectorStream::new();
            let mut bad = 0;
            for chunk in &chunks {
                s.push_bytes(chunk, |i| if matches!(i, StreamItem::Bad(_)) { bad += 1 });
            }
            prop_assert_eq!(s.counters().bad_lines, bad);
            prop_assert!(s.partial.len() <= MAX_LINE_LEN);
        }
    }
}
