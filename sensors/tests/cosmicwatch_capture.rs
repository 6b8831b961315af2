//! CosmicWatch v2 recordings through the public API: every line parses, the header gives
//! the descriptor, and the values match the file's own text.
//!
//! Two recordings: the simulator's own (`testdata/captures/cosmicwatch-v2-sim.txt`, always
//! present), and the real capture of a slave detector named "billy" over a day
//! (`shared/data/captures/cosmicwatch-v2-slave-0deg.txt`, kept beside the checkout because
//! it has no stated licence; checked when present, said on stderr when not).

use aloft_protocol::{Quality, Quantity, SensorId, Timestamp};
use aloft_sensors::Sample;
use aloft_sensors::cosmicwatch::{
    CountRate, DetectorStream, Format, MuonDetector, MuonEvent, StreamItem,
};

mod common;

/// A recording and what is known of it independently of the parser.
struct Recording {
    text: String,
    /// The `Device ID:` of its header.
    device_id: &'static str,
    /// Fewest event lines it holds.
    min_events: usize,
}

/// Every recording present: the repository's, and the real one when it is beside the
/// checkout.
fn recordings() -> Vec<Recording> {
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("a UTF-8 recording");
    let mut all = vec![Recording {
        text: text(common::read_capture("cosmicwatch-v2-sim.txt")),
        device_id: "aloft-sim",
        min_events: 600,
    }];
    if let Some(real) = common::read_capture_beside_checkout("cosmicwatch-v2-slave-0deg.txt") {
        all.push(Recording {
            text: text(real),
            device_id: "billy",
            min_events: 600,
        });
    }
    all
}

/// The event lines of the file, split on blanks, independently of the parser under test.
fn event_lines(text: &str) -> Vec<Vec<&str>> {
    text.lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .map(|l| l.split_whitespace().collect())
        .collect()
}

fn parse(text: &str) -> (DetectorStream, Vec<StreamItem>) {
    let mut stream = DetectorStream::new();
    let mut items = Vec::new();
    stream.push_bytes(text.as_bytes(), |i| items.push(i));
    (stream, items)
}

fn events(items: &[StreamItem]) -> Vec<MuonEvent> {
    items
        .iter()
        .filter_map(|i| match i {
            StreamItem::Event(e) => Some(*e),
            _ => None,
        })
        .collect()
}

fn assert_matches_text(e: &MuonEvent, cols: &[&str]) {
    let num = |i: usize| cols[i].parse::<f64>().expect("a number in the file");
    assert_eq!(e.event, cols[0].parse::<u64>().expect("an event number"));
    assert!((e.detector_time_s - num(1) / 1000.0).abs() < 1e-9);
    assert_eq!(e.adc, cols[2].parse::<u16>().expect("an ADC code"));
    assert!((e.sipm_peak_v - num(3) / 1000.0).abs() < 1e-12);
    assert!((e.dead_time_s - num(4) / 1000.0).abs() < 1e-9);
    let temperature_k = e.temperature_k.expect("v2 events carry a temperature");
    assert!((temperature_k - (num(5) + 273.15)).abs() < 1e-9);
}

#[test]
fn whole_recording_parses_into_the_files_events() {
    for rec in recordings() {
        let lines = event_lines(&rec.text);
        let (stream, items) = parse(&rec.text);
        let events = events(&items);

        assert!(
            lines.len() > rec.min_events,
            "{}: {}",
            rec.device_id,
            lines.len()
        );
        assert_eq!(events.len(), lines.len());
        assert_eq!(stream.counters().events, lines.len() as u64);
        assert_eq!(stream.counters().bad_lines, 0);
        assert_eq!(stream.counters().reboots, 0);
        assert!(events.iter().all(|e| e.format == Format::V2));
        for (e, cols) in events.iter().zip(&lines) {
            assert_matches_text(e, cols);
        }
    }
}

#[test]
fn recording_header_gives_the_v2_descriptor_with_the_device_id() {
    for rec in recordings() {
        let (stream, items) = parse(&rec.text);
        let descriptors: Vec<_> = items
            .iter()
            .filter_map(|i| match i {
                StreamItem::Descriptor(d) => Some(d),
                _ => None,
            })
            .collect();
        assert_eq!(descriptors.len(), 1);
        assert_eq!(descriptors[0].device, "CosmicWatch v2");
        assert_eq!(descriptors[0].serial_number.as_deref(), Some(rec.device_id));
        assert!(stream.run_start_seen());
        // The descriptor comes before the first event.
        let first_event = items.iter().position(|i| matches!(i, StreamItem::Event(_)));
        let descriptor = items
            .iter()
            .position(|i| matches!(i, StreamItem::Descriptor(_)));
        assert!(descriptor < first_event);
    }
}

#[test]
fn recording_rate_over_the_whole_run_is_events_over_live_time() {
    for rec in recordings() {
        let lines = event_lines(&rec.text);
        let last = &lines[lines.len() - 1];
        let (time_ms, dead_ms): (f64, f64) = (last[1].parse().unwrap(), last[4].parse().unwrap());
        let expected = lines.len() as f64 / ((time_ms - dead_ms) / 1000.0);

        let (_, items) = parse(&rec.text);
        let mut rate = CountRate::new(1e9);
        rate.restart_at_run_start();
        let mut estimate = None;
        for e in events(&items) {
            estimate = rate.push(&e).ok();
        }
        let estimate = estimate.unwrap();
        assert_eq!(estimate.events, lines.len() as u64);
        assert!((estimate.rate_per_s - expected).abs() < 1e-12 * expected);
        let reading = estimate.reading(SensorId(1), Timestamp::monotonic(0));
        assert_eq!(reading.quantity, Quantity::MuonCountRate);
        assert_eq!(reading.quality, Quality::DERIVED);
    }
}

#[test]
fn recording_events_become_good_readings_in_si_units() {
    for rec in recordings() {
        let (_, items) = parse(&rec.text);
        let mut readings = Vec::new();
        let events = events(&items);
        for e in &events {
            e.push_readings(SensorId(4), Timestamp::monotonic(1), &mut readings);
        }
        assert_eq!(readings.len(), 5 * events.len());
        // Both were recorded on a bench at 18-23 °C: every temperature in range, in kelvin.
        for r in readings
            .iter()
            .filter(|r| r.quantity == Quantity::SensorTemperature)
        {
            assert!((290.0..297.0).contains(&r.value), "{}", r.value);
            assert_eq!(r.quality, Quality::GOOD);
        }
        // SiPM peaks are tens to hundreds of mV: volts below 1.
        assert!(
            readings
                .iter()
                .filter(|r| r.quantity == Quantity::SipmPeakVoltage)
                .all(|r| r.value > 0.0 && r.value < 1.0)
        );
    }
}

#[test]
fn recording_through_the_detector_gives_every_events_readings_and_a_rate() {
    for rec in recordings() {
        let n = event_lines(&rec.text).len();
        // A window of a day: the real capture's rate is ~0.007 s-1 (coincidences only).
        let mut detector = MuonDetector::new(86_400.0);
        let mut readings = Vec::new();
        detector.push_bytes(
            rec.text.as_bytes(),
            SensorId(4),
            Timestamp::monotonic(1),
            &mut readings,
            |_| {},
        );
        // The header was seen, so even the first event has a rate: 5 readings + 1 each.
        assert_eq!(readings.len(), 6 * n);
        let rates: Vec<_> = readings
            .iter()
            .filter(|r| r.quantity == Quantity::MuonCountRate)
            .collect();
        assert_eq!(rates.len(), n);
        assert!(
            rates
                .iter()
                .all(|r| r.quality == Quality::DERIVED && r.value > 0.0)
        );
    }
}
