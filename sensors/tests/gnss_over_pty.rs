//! The GNSS path end to end as it runs on the board: the u-blox simulator behind a
//! pseudo-terminal, opened by path, its bytes split by the framer, NMEA parsed and
//! assembled into fixes, the dynamic model configured over the same port.
//!
//! The point of the test is the glider's ceiling: in the receiver's default Portable model
//! there is no fix above 12 000 m; after the driver sets Airborne <2g there is, and it is
//! where the flight is. Line noise on the way is skipped, never turned into a fix.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aloft_protocol::DynamicModel;
use aloft_sensors::flight::Scenario;
use aloft_sensors::gps::framer::{GnssFramer, Item, SkipReason};
use aloft_sensors::gps::sim::{Outputs, UbloxSim, UbloxSimConfig};
use aloft_sensors::gps::{Fix, FixAssembler, nmea, ublox};
use aloft_sensors::serial::pty::{Fault, PortOptions, SimulatedPort};
use aloft_sensors::serial::{self, LineError, Port};

/// Bound of every wait: generous for a loaded 2-core machine, never reached when it works.
const PATIENCE: Duration = Duration::from_secs(20);

/// A scenario time when the glider has been above 12 050 m for a while and stays above
/// 12 000 m for the next minute.
fn above_the_ceiling(scenario: &Scenario) -> f64 {
    let above = |t: f64| scenario.state_at(t).altitude_m > 12_000.0;
    (0..scenario.duration_s() as u32)
        .map(f64::from)
        .find(|&t| {
            scenario.state_at(t).altitude_m > 12_050.0 && (0..60).all(|d| above(t + f64::from(d)))
        })
        .expect("the scenario flies above 12 km for a minute")
}

/// Reads the port until `n` fixes were assembled; counts what the framer skipped.
fn read_fixes(port: &mut Port, n: usize, skipped_checksums: &mut usize) -> Vec<Fix> {
    let (mut framer, mut assembler) = (GnssFramer::new(), FixAssembler::new());
    let mut fixes = Vec::new();
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + PATIENCE;
    while fixes.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} fixes within {PATIENCE:?}",
            fixes.len()
        );
        let got = match port.read(&mut buf) {
            Ok(got) => got,
            Err(e) if LineError::from_io(&e) == LineError::Timeout => continue,
            Err(e) => panic!("reading the receiver: {e}"),
        };
        framer.push(&buf[..got]);
        while let Some(item) = framer.next_item() {
            match item {
                Item::Nmea(line) => {
                    let sentence = nmea::parse(line).expect("the framer hands out whole sentences");
                    fixes.extend(assembler.push(&sentence));
                }
                Item::Skipped {
                    reason: SkipReason::NmeaChecksum,
                    ..
                } => *skipped_checksums += 1,
                Item::Ubx(_) | Item::Skipped { .. } => {}
            }
        }
    }
    fixes
}

#[test]
fn above_twelve_km_only_airborne_2g_gives_a_fix_and_it_is_where_the_glider_is() {
    let scenario = Arc::new(Scenario::new(42, 1_780_000_000_000_000_000));
    let start = above_the_ceiling(&scenario);
    let receiver = UbloxSim::new(UbloxSimConfig::default().with_outputs(Outputs {
        nav_pvt: false,
        ..Outputs::ALL
    }));
    let baud = receiver.config().baud;
    let sim = SimulatedPort::spawn(
        receiver,
        Arc::clone(&scenario),
        PortOptions::new().scenario_offset_s(start),
    )
    .expect("pty");
    let path = sim.path().expect("the receiver is present");
    let mut port = serial::open(&path, baud, Duration::from_millis(200)).expect("open the pty");
    let mut skipped = 0;

    // Booted in Portable: above 12 km the receiver reports, but has no fix.
    let portable = read_fixes(&mut port, 5, &mut skipped);
    // The first epoch may be cut by when the port was opened; the rest are whole.
    for fix in &portable[1..] {
        assert!(!fix.valid, "a Portable-model fix above 12 km: {fix:?}");
        assert!(!fix.has_position_fix());
    }

    let info =
        ublox::configure_dynamic_model(&mut port, DynamicModel::Airborne2g, Duration::from_secs(2))
            .expect("the receiver takes Airborne <2g");
    assert_eq!(
        info.to_descriptor().dynamic_model,
        Some(DynamicModel::Airborne2g)
    );

    // Line noise on the way: the framer drops the damaged sentence, no fix is invented.
    sim.inject(Fault::CorruptNextLine).expect("inject");
    let airborne = read_fixes(&mut port, 20, &mut skipped);
    assert!(skipped >= 1, "the corrupted line was not noticed");
    let valid: Vec<&Fix> = airborne
        .iter()
        .filter(|f| f.valid && f.has_position_fix())
        .collect();
    assert!(
        valid.len() >= 15,
        "only {} of 20 fixes valid after Airborne <2g",
        valid.len()
    );
    for fix in valid {
        let utc_ns = fix.time.and_then(|t| t.utc_ns()).expect("dated fix");
        let t = (utc_ns - scenario.start_utc_ns()) as f64 / 1e9;
        let truth = scenario.state_at(t);
        let altitude = fix.altitude_msl_m.expect("altitude");
        assert!(altitude > 11_950.0, "fix at {altitude} m above the ceiling");
        // NEO-M8N: 2.5 m CEP horizontally, about twice that vertically; 30 m is far outside.
        assert!(
            (altitude - truth.altitude_m).abs() < 30.0,
            "{altitude} m vs {} m",
            truth.altitude_m
        );
        let north_m = (fix.latitude_deg.expect("lat") - truth.latitude_deg) * 111_000.0;
        assert!(north_m.abs() < 30.0, "{north_m} m north of the truth");
    }
    sim.stop().expect("clean stop");
}
