//! The real CosmicWatch v2 capture (`shared/data/captures/cosmicwatch-v2-slave-0deg.txt`,
//! a day of a slave detector named "billy") through the public API: every line parses,
//! the header gives the descriptor, and the values match the file's own text.

use aloft_protocol::{Quality, Quantity, SensorId, Timestamp};
use aloft_sensors::Sample;
use aloft_sensors::cosmicwatch::{
    CountRate, DetectorStream, Format, MuonDetector, MuonEvent, StreamItem,
};

/// Reads a capture from `shared/data/captures/`, which sits beside the repository
/// (`CARGO_MANIFEST_DIR/../../shared` in CI; one level further up from a worktree).
fn read_capture(name: &str) -> Vec<u8> {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = manifest
        .ancestors()
        .map(|dir| dir.join("shared/data/captures").join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("capture {name} not found beside {}", manifest.display()));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const CAPTURE: &str = "cosmicwatch-v2-slave-0deg.txt";

/// The event lines of the file, split on blanks, independently of the parser under test.
fn event_lines(text: &str) -> Vec<Vec<&str>> {
    text.lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .map(|l| l.split_whitespace().collect())
        .collect()
}

fn parse_capture() -> (DetectorStream, Vec<StreamItem>) {
    let bytes = read_capture(CAPTURE);
    let mut stream = DetectorStream::new();
    let mut items = Vec::new();
    stream.push_bytes(&bytes, |i| items.push(i));
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
fn whole_capture_parses_into_the_files_events() {
    let text = String::from_utf8(read_capture(CAPTURE)).unwrap();
    let lines = event_lines(&text);
    let (stream, items) = parse_capture();
    let events = events(&items);

    assert!(lines.len() > 600, "{}", lines.len());
    assert_eq!(events.len(), lines.len());
    assert_eq!(stream.counters().events, lines.len() as u64);
    assert_eq!(stream.counters().bad_lines, 0);
    assert_eq!(stream.counters().reboots, 0);
    assert!(events.iter().all(|e| e.format == Format::V2));

    assert_matches_text(&events[0], &lines[0]);
    assert_matches_text(&events[events.len() - 1], &lines[lines.len() - 1]);
    for (e, cols) in events.iter().zip(&lines) {
        assert_matches_text(e, cols);
    }
}

#[test]
fn capture_header_gives_the_v2_descriptor_named_billy() {
    let (stream, items) = parse_capture();
    let descriptors: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            StreamItem::Descriptor(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(descriptors.len(), 1);
    assert_eq!(descriptors[0].device, "CosmicWatch v2");
    assert_eq!(descriptors[0].serial_number.as_deref(), Some("billy"));
    assert!(stream.run_start_seen());
    // The descriptor comes before the first event.
    let first_event = items.iter().position(|i| matches!(i, StreamItem::Event(_)));
    let descriptor = items
        .iter()
        .position(|i| matches!(i, StreamItem::Descriptor(_)));
    assert!(descriptor < first_event);
}

#[test]
fn capture_rate_over_the_whole_day_is_events_over_live_time() {
    let text = String::from_utf8(read_capture(CAPTURE)).unwrap();
    let lines = event_lines(&text);
    let last = &lines[lines.len() - 1];
    let (time_ms, dead_ms): (f64, f64) = (last[1].parse().unwrap(), last[4].parse().unwrap());
    let expected = lines.len() as f64 / ((time_ms - dead_ms) / 1000.0);

    let (_, items) = parse_capture();
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

#[test]
fn capture_events_become_good_readings_in_si_units() {
    let (_, items) = parse_capture();
    let mut readings = Vec::new();
    let events = events(&items);
    for e in &events {
        e.push_readings(SensorId(4), Timestamp::monotonic(1), &mut readings);
    }
    assert_eq!(readings.len(), 5 * events.len());
    // A lab at 18-23 °C: every temperature in range, in kelvin.
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

#[test]
fn capture_through_the_detector_gives_every_events_readings_and_a_rate() {
    let text = String::from_utf8(read_capture(CAPTURE)).expect("UTF-8 capture");
    let n = event_lines(&text).len();
    // A window of a day: the capture's rate is ~0.007 s-1 (coincidences only).
    let mut detector = MuonDetector::new(86_400.0);
    let mut readings = Vec::new();
    detector.push_bytes(
        text.as_bytes(),
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
