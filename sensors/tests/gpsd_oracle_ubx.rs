//! Differential test against gpsd 3.22, the reference decoder, for the UBX messages of
//! receivers without NAV-PVT (NAV-POSLLH, NAV-SOL, NAV-VELNED, NAV-TIMEUTC), for HNR-PVT,
//! and for time-only solutions: the simulator's bytes go through gpsd (fed by `gpsfake`)
//! and through our framer and fix assembler.
//!
//! What gpsd 3.22 does with these, checked before asserting it:
//! - the legacy set: it decodes every message, but reports a TPV at two points of each
//!   epoch, so a report may pair one epoch's time with the next one's position. The
//!   values are compared as sets: every position, NED velocity, ECEF solution and UTC
//!   gpsd reports is one of ours, to the last printed digit, and it misses none of our
//!   epochs but the last. Its `speed` for this set is not compared: it keeps the first
//!   epoch's for the whole log.
//! - NAV-SOL without NAV-POSLLH: gpsd converts the ECEF solution to latitude and
//!   longitude, but 3.22 keeps the first epoch's for the rest of the log; every position
//!   it reports is one of ours (same conversion, to 1e-8 degrees), and its first is our
//!   first epoch's.
//! - time only (`fixType`/`gpsFix` 5): gpsd marks the report `status` 7 (time only) but
//!   keeps mode 3 and the position; we give the time and no position, as the protocol
//!   specification says. The epochs it marks are exactly ours without a position.
//! - `gnssFixOK`/`gpsFixOK` = 0: gpsd 3.22 does not look at the flag (mode 3, no status);
//!   we keep the values and mark the fix not valid. Only the values are compared.
//! - HNR-PVT: gpsd 3.22 reports nothing from it; it is tested from the specification.
//!
//! Needs Debian's `gpsd gpsd-clients gpsd-tools python3-gps` (see `common::gpsd`).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use aloft_sensors::flight::Scenario;
use aloft_sensors::gps::fix::{Fix, FixMode};
use aloft_sensors::gps::framer::{GnssFramer, Item};
use aloft_sensors::gps::nav::UbxFixAssembler;
use aloft_sensors::gps::sim::{Outputs, UbloxSim, UbloxSimConfig};
use aloft_sensors::gps::ubx::{Frame, NavPvt, NavSol, NavVelned, msg};
use aloft_sensors::serial::SerialDevice;

mod common;

use common::gpsd::{gpsd_reports, tools_present};

/// Epochs per stream.
const EPOCHS: u32 = 20;

/// `EPOCHS` one-second epochs of a glider climbing in wave, as a receiver with `outputs`
/// sends them; from epoch `rewrite_from` on, NAV-PVT and NAV-SOL get `fix_type` and the
/// fix-OK flag `fix_ok`.
fn stream(outputs: Outputs, rewrite_from: u32, fix_type: u8, fix_ok: bool) -> Vec<u8> {
    let scenario = Scenario::new(7, 1_773_835_200_000_000_000);
    let mut sim = UbloxSim::new(
        UbloxSimConfig::default()
            .with_rate_hz(1.0)
            .with_outputs(outputs),
    );
    let mut out = b"# Aloft u-blox simulator for the gpsd oracle\n".to_vec();
    for t in 0..EPOCHS {
        let mut epoch = Vec::new();
        sim.tick(&scenario.state_at(1800.0 + f64::from(t)), &mut epoch);
        let mut at = 0;
        while let Ok((frame, len)) = Frame::decode(&epoch[at..]) {
            at += len;
            let late = t >= rewrite_from;
            let ok_bit = u8::from(fix_ok);
            match frame.kind() {
                msg::NAV_PVT if late => {
                    let mut p = NavPvt::decode(&frame).unwrap();
                    p.fix_type = fix_type;
                    p.flags = (p.flags & !1) | ok_bit;
                    out.extend(p.to_bytes());
                }
                msg::NAV_SOL if late => {
                    let mut s = NavSol::decode(&frame).unwrap();
                    s.gps_fix = fix_type;
                    s.flags = (s.flags & !1) | ok_bit;
                    out.extend(s.to_bytes());
                }
                _ => out.extend(frame.to_bytes()),
            }
        }
        assert_eq!(at, epoch.len(), "the simulator sends whole frames");
    }
    out
}

/// What we make of a stream: the fixes, and the NAV-SOL and NAV-VELNED messages.
struct Ours {
    fixes: Vec<Fix>,
    sols: Vec<NavSol>,
    velneds: Vec<NavVelned>,
}

fn ours(bytes: &[u8]) -> Ours {
    let mut framer = GnssFramer::new();
    framer.push(bytes);
    framer.finish();
    let mut assembler = UbxFixAssembler::new();
    let mut o = Ours {
        fixes: Vec::new(),
        sols: Vec::new(),
        velneds: Vec::new(),
    };
    while let Some(item) = framer.next_item() {
        if let Item::Ubx(frame) = item {
            assembler.push(&frame, |f| o.fixes.push(f)).unwrap();
            o.sols.extend(NavSol::decode(&frame).ok());
            o.velneds.extend(NavVelned::decode(&frame).ok());
        }
    }
    o.fixes.extend(assembler.finish());
    o
}

fn gpsd(name: &str, bytes: &[u8]) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.ubx"));
    std::fs::write(&path, bytes).unwrap();
    gpsd_reports(&path)
        .into_iter()
        .filter(|r| r["class"] == "TPV")
        .collect()
}

/// Our fix's UTC as gpsd prints it.
fn iso(fix: &Fix) -> Option<String> {
    let t = fix.time?;
    let (y, m, d) = t.date?;
    Some(format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.hour,
        t.minute,
        t.second,
        t.nanosecond / 1_000_000
    ))
}

fn near(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance
}

fn field(tpv: &serde_json::Value, key: &str) -> f64 {
    tpv[key]
        .as_f64()
        .unwrap_or_else(|| panic!("gpsd TPV without {key}: {tpv}"))
}

#[test]
fn gpsd_and_our_assembler_agree_on_a_receiver_without_nav_pvt() {
    if !tools_present("gpsd_oracle_ubx") {
        return;
    }
    let bytes = stream(Outputs::LEGACY_NAV_ONLY, EPOCHS, 3, true);
    let o = ours(&bytes);
    assert_eq!(o.fixes.len(), EPOCHS as usize);
    assert!(o.fixes.iter().all(Fix::has_position_fix));
    let tpvs = gpsd("legacy", &bytes);
    assert!(tpvs.len() >= EPOCHS as usize, "{} reports", tpvs.len());

    let mut positions_seen = BTreeSet::new();
    let mut times_seen = BTreeSet::new();
    for tpv in &tpvs {
        assert_eq!(tpv["mode"], 3, "{tpv}");
        // gpsd prints degrees to 1e-9 (POSLLH has 1e-7) and metres to 1e-3 or 1e-4.
        let (lat, lon) = (field(tpv, "lat"), field(tpv, "lon"));
        let (msl, hae) = (field(tpv, "altMSL"), field(tpv, "altHAE"));
        let i = o
            .fixes
            .iter()
            .position(|f| {
                near(f.latitude_deg.unwrap(), lat, 2e-9)
                    && near(f.longitude_deg.unwrap(), lon, 2e-9)
            })
            .unwrap_or_else(|| panic!("gpsd reports a position we do not: {tpv}"));
        let f = &o.fixes[i];
        assert!(near(f.altitude_msl_m.unwrap(), msl, 1e-3), "{tpv}");
        let our_hae = f.altitude_msl_m.unwrap() + f.geoid_separation_m.unwrap();
        assert!(near(our_hae, hae, 1e-3), "{tpv}");
        assert!(near(
            f.horizontal_accuracy_m.unwrap(),
            field(tpv, "eph"),
            5e-4
        ));
        assert!(near(
            f.vertical_accuracy_m.unwrap(),
            field(tpv, "epv"),
            5e-4
        ));
        positions_seen.insert(i);

        let time = tpv["time"].as_str().unwrap();
        let j = o
            .fixes
            .iter()
            .position(|f| iso(f).as_deref() == Some(time))
            .unwrap_or_else(|| panic!("gpsd reports a time we do not: {tpv}"));
        times_seen.insert(j);

        // ECEF from NAV-SOL, printed in metres to the centimetre the message has.
        if tpv["ecefx"].is_f64() {
            let cm = |key: &str| (field(tpv, key) * 100.0).round() as i64;
            assert!(
                o.sols.iter().any(|s| {
                    [s.ecef_x_cm, s.ecef_y_cm, s.ecef_z_cm].map(i64::from)
                        == [cm("ecefx"), cm("ecefy"), cm("ecefz")]
                        && [s.ecef_vx_cms, s.ecef_vy_cms, s.ecef_vz_cms].map(i64::from)
                            == [cm("ecefvx"), cm("ecefvy"), cm("ecefvz")]
                        && i64::from(s.p_acc_cm) == cm("ecefpAcc")
                }),
                "gpsd reports an ECEF solution we did not decode: {tpv}"
            );
        }
        // NED velocity from NAV-VELNED, printed in m/s to the centimetre.
        if tpv["velN"].is_f64() {
            let cms = |key: &str| (field(tpv, key) * 100.0).round() as i32;
            let k = o
                .velneds
                .iter()
                .position(|v| {
                    [v.vel_n_cms, v.vel_e_cms, v.vel_d_cms]
                        == [cms("velN"), cms("velE"), cms("velD")]
                })
                .unwrap_or_else(|| panic!("gpsd reports a velocity we did not decode: {tpv}"));
            // One NAV-VELNED per epoch, one fix per epoch, in order.
            let (v, fix) = (&o.velneds[k], &o.fixes[k]);
            assert_eq!(fix.vertical_speed_mps, Some(-f64::from(v.vel_d_cms) * 1e-2));
            let horizontal = f64::from(v.vel_n_cms).hypot(f64::from(v.vel_e_cms)) * 1e-2;
            // gSpeed and the rounded components differ by the rounding at most.
            assert!(
                near(fix.ground_speed_mps.unwrap(), horizontal, 0.011),
                "{tpv}"
            );
        }
    }
    // gpsd reports each epoch once its next one starts: all but the last.
    assert!(
        positions_seen.len() >= EPOCHS as usize - 1,
        "{positions_seen:?}"
    );
    assert!(times_seen.len() >= EPOCHS as usize - 1, "{times_seen:?}");
}

#[test]
fn gpsd_converts_nav_sol_alone_to_the_position_we_convert_it_to() {
    if !tools_present("gpsd_oracle_ubx") {
        return;
    }
    let legacy = stream(Outputs::LEGACY_NAV_ONLY, EPOCHS, 3, true);
    // Keep NAV-SOL and NAV-TIMEUTC: a receiver set to send no POSLLH or VELNED.
    let mut bytes = b"# NAV-SOL and NAV-TIMEUTC only\n".to_vec();
    let mut framer = GnssFramer::new();
    framer.push(&legacy);
    framer.finish();
    while let Some(item) = framer.next_item() {
        if let Item::Ubx(f) = item
            && [msg::NAV_SOL, msg::NAV_TIMEUTC].contains(&f.kind())
        {
            bytes.extend(f.to_bytes());
        }
    }
    let o = ours(&bytes);
    assert_eq!(o.fixes.len(), EPOCHS as usize);
    assert!(
        o.fixes
            .iter()
            .all(|f| f.has_position_fix() && f.altitude_msl_m.is_none())
    );
    let tpvs = gpsd("sol-only", &bytes);
    assert!(tpvs.len() >= EPOCHS as usize - 1, "{} reports", tpvs.len());
    for tpv in &tpvs {
        let (lat, lon) = (field(tpv, "lat"), field(tpv, "lon"));
        assert!(
            o.fixes
                .iter()
                .any(|f| near(f.latitude_deg.unwrap(), lat, 1e-8)
                    && near(f.longitude_deg.unwrap(), lon, 1e-8)),
            "gpsd converts to a position we do not: {tpv}"
        );
    }
    let first = &tpvs[0];
    assert_eq!(first["time"].as_str(), iso(&o.fixes[0]).as_deref());
    assert!(near(
        o.fixes[0].latitude_deg.unwrap(),
        field(first, "lat"),
        1e-8
    ));
    assert!(near(
        o.fixes[0].longitude_deg.unwrap(),
        field(first, "lon"),
        1e-8
    ));
    // gpsd prints the NED velocity it converts to the millimetre per second.
    let ground = field(first, "velN").hypot(field(first, "velE"));
    assert!(
        near(o.fixes[0].ground_speed_mps.unwrap(), ground, 2e-3),
        "{first}"
    );
    assert!(near(
        o.fixes[0].vertical_speed_mps.unwrap(),
        -field(first, "velD"),
        1e-3
    ));
}

#[test]
fn gpsd_marks_time_only_exactly_where_we_give_no_position() {
    if !tools_present("gpsd_oracle_ubx") {
        return;
    }
    for (name, outputs) in [
        ("pvt-time-only", Outputs::NAV_PVT_ONLY),
        ("legacy-time-only", Outputs::LEGACY_NAV_ONLY),
    ] {
        let bytes = stream(outputs, EPOCHS / 2, 5, true);
        let o = ours(&bytes);
        assert_eq!(o.fixes.len(), EPOCHS as usize, "{name}");
        let time_only = o
            .fixes
            .iter()
            .filter(|f| f.time.is_some() && f.latitude_deg.is_none())
            .count();
        assert_eq!(time_only, EPOCHS as usize / 2, "{name}");
        let tpvs = gpsd(name, &bytes);
        let mut marked = 0;
        for tpv in &tpvs {
            let time = tpv["time"].as_str().unwrap();
            let fix = o
                .fixes
                .iter()
                .find(|f| iso(f).as_deref() == Some(time))
                .unwrap_or_else(|| panic!("{name}: gpsd reports a time we do not: {tpv}"));
            let gpsd_time_only = tpv["status"] == 7;
            assert_eq!(
                gpsd_time_only,
                fix.latitude_deg.is_none(),
                "{name}: gpsd {tpv} ours {fix:?}"
            );
            if gpsd_time_only {
                marked += 1;
                assert_eq!(fix.mode, Some(FixMode::NoFix));
                assert!(!fix.has_position_fix());
            }
        }
        assert!(marked >= EPOCHS as usize / 2 - 1, "{name}: {marked} marked");
    }
}

#[test]
fn without_fix_ok_gpsd_gives_our_values_and_we_mark_them_not_valid() {
    if !tools_present("gpsd_oracle_ubx") {
        return;
    }
    let bytes = stream(Outputs::NAV_PVT_ONLY, 0, 3, false);
    let o = ours(&bytes);
    assert!(o.fixes.iter().all(|f| !f.valid && !f.has_position_fix()));
    let tpvs = gpsd("pvt-no-fix-ok", &bytes);
    assert!(tpvs.len() >= EPOCHS as usize - 2);
    for tpv in &tpvs {
        let time = tpv["time"].as_str().unwrap();
        let fix = o
            .fixes
            .iter()
            .find(|f| iso(f).as_deref() == Some(time))
            .unwrap_or_else(|| panic!("gpsd reports a time we do not: {tpv}"));
        assert!(near(fix.latitude_deg.unwrap(), field(tpv, "lat"), 2e-9));
        assert!(near(fix.longitude_deg.unwrap(), field(tpv, "lon"), 2e-9));
        assert!(near(
            fix.altitude_msl_m.unwrap(),
            field(tpv, "altMSL"),
            1e-3
        ));
        assert!(near(
            fix.ground_speed_mps.unwrap(),
            field(tpv, "speed"),
            5e-4
        ));
    }
}

#[test]
fn gpsd_3_22_reports_nothing_from_hnr_pvt_alone() {
    if !tools_present("gpsd_oracle_ubx") {
        return;
    }
    let outputs = Outputs {
        nav_pvt: false,
        hnr_pvt: true,
        ..Outputs::NAV_PVT_ONLY
    };
    let bytes = stream(outputs, EPOCHS, 3, true);
    let o = ours(&bytes);
    assert_eq!(o.fixes.len(), EPOCHS as usize);
    assert!(o.fixes.iter().all(Fix::has_position_fix));
    // Should a newer packaged gpsd decode HNR-PVT, compare it here like NAV-PVT.
    let tpvs = gpsd("hnr", &bytes);
    assert!(
        tpvs.is_empty(),
        "the packaged gpsd now reports HNR-PVT: compare it: {tpvs:?}"
    );
}
