//! One CosmicWatch detector as the agent sees it: its line stream and its count rate
//! together, so that lines go in and readings come out.
//!
//! This is where the stream's run boundaries drive the rate window: a seen run start
//! (header) anchors the window at detector time 0; a restart seen only as a step back of
//! the event number or clock restarts the window empty, because that run's start was not
//! seen.
//!
//! Invariant: every event yields its own readings, and a [`Quantity::MuonCountRate`]
//! reading whenever the window has live time; bad lines yield none.
//!
//! [`Quantity::MuonCountRate`]: aloft_protocol::Quantity::MuonCountRate

use aloft_protocol::{Reading, SensorId, Timestamp};

use super::MuonEvent;
use super::rate::{CountRate, RateEstimate};
use super::stream::{DetectorStream, StreamItem};
use crate::Sample;

/// A detector's stream and rate window.
#[derive(Debug, Clone, Default)]
pub struct MuonDetector {
    stream: DetectorStream,
    rate: CountRate,
    latest_rate: Option<RateEstimate>,
}

impl MuonDetector {
    /// A detector whose rate uses a window of `window_s` seconds of detector time.
    pub fn new(window_s: f64) -> Self {
        MuonDetector {
            stream: DetectorStream::new(),
            rate: CountRate::new(window_s),
            latest_rate: None,
        }
    }

    /// The line stream (format, name, descriptor, counters).
    pub fn stream(&self) -> &DetectorStream {
        &self.stream
    }

    /// See [`DetectorStream::take_new_descriptor`].
    pub fn take_new_descriptor(&mut self) -> Option<aloft_protocol::SensorDescriptor> {
        self.stream.take_new_descriptor()
    }

    /// The rate after the latest event, if the window had live time then.
    pub fn latest_rate(&self) -> Option<RateEstimate> {
        self.latest_rate
    }

    /// Feeds one line; appends the readings of its event (and the rate) taken at `time`
    /// to `out`, and returns what the line was, so that the caller can record a
    /// descriptor, note a reboot or count a bad line.
    pub fn feed_line(
        &mut self,
        line: &[u8],
        sensor: SensorId,
        time: Timestamp,
        out: &mut Vec<Reading>,
    ) -> StreamItem {
        let item = self.stream.feed_line(line);
        apply(
            &mut self.rate,
            &mut self.latest_rate,
            &item,
            sensor,
            time,
            out,
        );
        item
    }

    /// Feeds raw bytes from the port; every completed line is handled as by
    /// [`MuonDetector::feed_line`], all at `time`, and passed to `on_item`.
    pub fn push_bytes(
        &mut self,
        bytes: &[u8],
        sensor: SensorId,
        time: Timestamp,
        out: &mut Vec<Reading>,
        mut on_item: impl FnMut(StreamItem),
    ) {
        let (rate, latest) = (&mut self.rate, &mut self.latest_rate);
        self.stream.push_bytes(bytes, |item| {
            apply(rate, latest, &item, sensor, time, out);
            on_item(item);
        });
    }
}

fn apply(
    rate: &mut CountRate,
    latest: &mut Option<RateEstimate>,
    item: &StreamItem,
    sensor: SensorId,
    time: Timestamp,
    out: &mut Vec<Reading>,
) {
    let event: &MuonEvent = match item {
        StreamItem::RunStart
        | StreamItem::Reboot {
            first_event: None, ..
        } => {
            rate.restart_at_run_start();
            *latest = None;
            return;
        }
        StreamItem::Reboot {
            first_event: Some(event),
            ..
        } => {
            rate.restart();
            event
        }
        StreamItem::Event(event) => event,
        StreamItem::Nothing | StreamItem::Descriptor(_) | StreamItem::Bad(_) => return,
    };
    event.push_readings(sensor, time, out);
    *latest = rate.push(event).ok();
    if let Some(r) = latest {
        out.push(r.reading(sensor, time));
    }
}

#[cfg(test)]
mod tests {
    use aloft_protocol::{Quality, Quantity};

    use super::*;

    const SENSOR: SensorId = SensorId(2);

    fn feed(d: &mut MuonDetector, text: &str) -> (Vec<Reading>, Vec<StreamItem>) {
        let mut out = Vec::new();
        let mut items = Vec::new();
        d.push_bytes(
            text.as_bytes(),
            SENSOR,
            Timestamp::monotonic(9),
            &mut out,
            |i| items.push(i),
        );
        (out, items)
    }

    fn rates(readings: &[Reading]) -> Vec<f64> {
        readings
            .iter()
            .filter(|r| r.quantity == Quantity::MuonCountRate)
            .map(|r| {
                assert_eq!(r.quality, Quality::DERIVED);
                r.value
            })
            .collect()
    }

    const V2_HEADER: &str = "### CosmicWatch: The Desktop Muon Detector\r\nDevice ID: billy\r\n";

    #[test]
    fn events_after_a_header_give_readings_and_a_rate_from_the_first_event() {
        let mut d = MuonDetector::new(60.0);
        let (out, _) = feed(
            &mut d,
            &format!("{V2_HEADER}1 4000 675 317.99 0 18.00\r\n2 10000 600 200.00 1000 18.00\r\n"),
        );
        // 5 readings per v2 event plus one rate each.
        assert_eq!(out.len(), 12);
        // 1 event in 4 s live; then 2 events in 10 s with 1 s dead.
        assert_eq!(rates(&out), [0.25, 2.0 / 9.0]);
        assert_eq!(d.latest_rate().map(|r| r.events), Some(2));
    }

    #[test]
    fn joined_mid_run_the_rate_needs_two_events() {
        let mut d = MuonDetector::new(60.0);
        let (out, _) = feed(
            &mut d,
            "7 4000 675 317.99 0 18.00\r\n8 6000 600 200.00 0 18.00\r\n",
        );
        assert_eq!(rates(&out), [0.5]);
    }

    #[test]
    fn a_reboot_restarts_the_rate_window() {
        let mut d = MuonDetector::new(600.0);
        feed(
            &mut d,
            &format!("{V2_HEADER}1 1000 675 317.99 0 18.00\r\n2 2000 600 200.00 0 18.00\r\n"),
        );
        // A header again: anchored at 0, so the first event of the new run gives 1 / 5 s.
        let (out, items) = feed(&mut d, &format!("{V2_HEADER}1 5000 675 317.99 0 18.00\r\n"));
        assert!(matches!(items[0], StreamItem::Reboot { .. }));
        assert_eq!(rates(&out), [0.2]);
        // Count going back without a header: no anchor, no rate for its first event.
        let (out, _) = feed(&mut d, "1 700 675 317.99 0 18.00\r\n");
        assert_eq!(rates(&out), Vec::<f64>::new());
        assert_eq!(out.len(), 5);
        assert_eq!(d.stream().counters().reboots, 2);
    }

    #[test]
    fn bad_lines_give_no_readings() {
        let mut d = MuonDetector::new(60.0);
        let mut out = Vec::new();
        let item = d.feed_line(b"1 2 3", SENSOR, Timestamp::monotonic(1), &mut out);
        assert!(matches!(item, StreamItem::Bad(_)));
        assert!(out.is_empty());
        assert_eq!(d.stream().counters().bad_lines, 1);
    }
}
