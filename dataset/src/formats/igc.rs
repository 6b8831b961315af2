//! IGC (FAI technical specification for GNSS flight recorders, appendix A), how glider
//! pilots share flights: `STEM.igc` with an A record (manufacturer `XAL`: X because Aloft
//! is not an IGC-approved recorder), H records from the metadata and the sensors'
//! descriptors, an I record declaring the fix accuracy (FXA), satellites in use (SIU) and
//! true airspeed (TAS) extensions from byte 36, L records saying how the file was made, and
//! one B record per GNSS fix with UTC, in stream order.
//!
//! Invariants:
//! - positions print in IGC's DDMMmmm / DDDMMmmm (thousandths of a minute, rounded);
//!   validity `A` for a 3D fix (`fix_mode` 3), `V` otherwise;
//! - the GNSS altitude is above the WGS 84 ellipsoid (`HFALGALTGPS:ELL`): `altitude_msl`
//!   plus `geoid_separation`; the pressure altitude is the ISA altitude (1013.25 hPa,
//!   `HFALPALTPRESSURE:ISA`) of the static pressure nearest in time within 1 s, `00000`
//!   when there is none (IGC's "no pressure altitude"); both in whole metres, negative as
//!   `-0012`, and held to IGC's five characters (-9999 to 99999 m);
//! - an extension with no value (no pitot reading within 1 s, no accuracy) is dashes, never
//!   zero, so a missing airspeed cannot be read as 0 km/h;
//! - fixes without UTC cannot be written (B records carry UTC): they are left out and the
//!   sidecar lists them; HFDTE holds the UTC date of the first fix, and B times wrap
//!   after 23:59:59 (IGC readers move to the next day when the time goes back);
//! - no G record: a security record is a recorder's signature, which Aloft does not have.

use std::fmt::Write as _;

use aloft_protocol::Quantity;

use crate::ExportError;
use crate::formats::track::{
    Fix, NEAREST_TOLERANCE_NS, Series, gnss_sensor, no_fix, sensor_with_most,
};
use crate::output::Output;
use crate::rows::Dataset;
use crate::selection::Resample;
use crate::time::{civil, rfc3339_s};

/// The manufacturer code of a recorder that is not IGC-approved (X...), Aloft's.
pub const MANUFACTURER: &str = "XAL";

/// The I record: FXA in bytes 36-38, SIU in 39-40, TAS in 41-45.
pub const I_RECORD: &str = "I033638FXA3940SIU4145TAS";

/// ISA sea-level pressure, Pa (1013.25 hPa).
const P0_PA: f64 = 101_325.0;
const T0_K: f64 = 288.15;
const LAPSE_K_PER_M: f64 = 0.0065;
const R_DRY_AIR: f64 = 287.052_87;
const G0: f64 = 9.806_65;
const TROPOPAUSE_M: f64 = 11_000.0;
const T_TROPOPAUSE_K: f64 = 216.65;
const P_TROPOPAUSE_PA: f64 = 22_632.06;

/// ISA pressure altitude of `pressure_pa`, m: the altitude at which the ICAO standard
/// atmosphere (1013.25 hPa, 15 °C at sea level) has that pressure, troposphere and lower
/// stratosphere.
pub fn pressure_altitude_m(pressure_pa: f64) -> f64 {
    if pressure_pa >= P_TROPOPAUSE_PA {
        let exponent = R_DRY_AIR * LAPSE_K_PER_M / G0;
        (T0_K / LAPSE_K_PER_M) * (1.0 - (pressure_pa / P0_PA).powf(exponent))
    } else {
        TROPOPAUSE_M - (R_DRY_AIR * T_TROPOPAUSE_K / G0) * (pressure_pa / P_TROPOPAUSE_PA).ln()
    }
}

/// An altitude in IGC's five characters: `01234`, `-0012`; held to -9999..=99999 m.
pub fn altitude_text(m: f64) -> String {
    let m = m.round().clamp(-9_999.0, 99_999.0) as i64;
    if m < 0 {
        format!("-{:04}", -m)
    } else {
        format!("{m:05}")
    }
}

/// A latitude as `DDMMmmmN`.
pub fn latitude_text(deg: f64) -> String {
    let mm = (deg.abs() * 60_000.0).round() as u64;
    let h = if deg < 0.0 { 'S' } else { 'N' };
    format!("{:02}{:05}{h}", mm / 60_000, mm % 60_000)
}

/// A longitude as `DDDMMmmmE`.
pub fn longitude_text(deg: f64) -> String {
    let mm = (deg.abs() * 60_000.0).round() as u64;
    let h = if deg < 0.0 { 'W' } else { 'E' };
    format!("{:03}{:05}{h}", mm / 60_000, mm % 60_000)
}

/// A whole number in `width` digits, or dashes when there is none.
fn digits(v: Option<f64>, width: usize) -> String {
    let max = 10f64.powi(width as i32) - 1.0;
    match v {
        Some(v) if v.is_finite() => format!("{:0width$}", v.round().clamp(0.0, max) as u64),
        _ => "-".repeat(width),
    }
}

/// Text for an IGC header: printable ASCII, without the characters IGC reserves
/// (`$ * ! \ ^ ~`); anything else becomes `_`. Empty text is `NIL`.
pub fn header_text(text: &str) -> String {
    let s: String = text
        .trim()
        .chars()
        .map(|c| {
            if (' '..='~').contains(&c) && !matches!(c, '$' | '*' | '!' | '\\' | '^' | '~') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "NIL".to_owned() } else { s }
}

/// A three-character recorder id from the node's name (FNV-1a, base 36), so that a node's
/// files keep one id.
fn logger_id(node: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    (0..3)
        .map(|i| char::from(DIGITS[((h >> (i * 8)) % 36) as usize]))
        .collect()
}

/// What the pass before writing learns.
#[derive(Default)]
struct Plan {
    first: Option<Fix>,
    first_boot: Option<aloft_protocol::BootId>,
    pressure: Series,
    airspeed: Series,
}

/// Writes `STEM.igc`.
pub fn write(ds: &Dataset<'_>, out: &mut dyn Output) -> Result<(), ExportError> {
    if let Some(Resample::Mean { .. }) = ds.selection.resample {
        return Err(ExportError::Unsuitable(
            "IGC holds fixes as the receiver gave them: averaged positions are not fixes; \
             ask for a decimating interval instead"
                .to_owned(),
        ));
    }
    let Some(gps) = gnss_sensor(ds)? else {
        return Err(no_fix("IGC"));
    };
    let static_port = sensor_with_most(ds, Quantity::AirPressure, None);
    let pitot = sensor_with_most(ds, Quantity::TrueAirspeed, None);
    let mut plan = Plan::default();
    ds.instants(&mut |i| {
        let Some(utc) = i.utc_ns else { return Ok(()) };
        if i.sensor == gps && plan.first.is_none() {
            plan.first = Fix::of(i);
            plan.first_boot = i.boot;
        }
        if static_port.as_deref() == Some(i.sensor.as_str())
            && let Some((p, _)) = i.get(Quantity::AirPressure)
        {
            plan.pressure.add(utc, p);
        }
        if pitot.as_deref() == Some(i.sensor.as_str())
            && let Some((v, _)) = i.get(Quantity::TrueAirspeed)
        {
            plan.airspeed.add(utc, v);
        }
        Ok(())
    })?;
    let Some(first) = plan.first else {
        return Err(no_fix("IGC"));
    };
    let head = header(ds, &gps, static_port.as_deref(), &plan, &first);
    let name = format!("{}.igc", ds.options.stem);
    let mut line = String::new();
    out.file(&name, "igc", "text/plain", &mut |w| {
        w.write_all(head.as_bytes()).map_err(ExportError::write)?;
        ds.instants(&mut |i| {
            if i.sensor != gps {
                return Ok(());
            }
            let Some(fix) = Fix::of(i) else { return Ok(()) };
            line.clear();
            b_record(&fix, &plan, &mut line);
            w.write_all(line.as_bytes()).map_err(ExportError::write)
        })
    })?;
    ds.mark_without_utc_left_out();
    Ok(())
}

fn b_record(fix: &Fix, plan: &Plan, line: &mut String) {
    let (_, _, _, h, m, s) = civil(fix.utc_ns.div_euclid(1_000_000_000));
    let validity = if fix.fix_mode.is_some_and(|m| m >= 3.0) {
        'A'
    } else {
        'V'
    };
    let pressure_alt = plan.pressure.nearest(fix.utc_ns).map_or_else(
        || "00000".to_owned(),
        |(_, p)| altitude_text(pressure_altitude_m(p)),
    );
    let gnss_alt = fix
        .ellipsoidal_height()
        .map_or_else(|| "00000".to_owned(), altitude_text);
    // FXA is an estimated position error at 2 sigma; receivers give 1 sigma.
    let fxa = digits(fix.horizontal_accuracy.map(|a| 2.0 * a), 3);
    let siu = digits(fix.satellites, 2);
    // TAS in hundredths of km/h (m/s x 3.6 x 100).
    let tas = digits(plan.airspeed.nearest(fix.utc_ns).map(|(_, v)| v * 360.0), 5);
    let _ = write!(
        line,
        "B{h:02}{m:02}{s:02}{}{}{validity}{pressure_alt}{gnss_alt}{fxa}{siu}{tas}\r\n",
        latitude_text(fix.latitude),
        longitude_text(fix.longitude),
    );
}

fn header(
    ds: &Dataset<'_>,
    gps: &str,
    static_port: Option<&str>,
    plan: &Plan,
    first: &Fix,
) -> String {
    let meta = &ds.options.metadata;
    let device = |sensor: &str| {
        ds.catalog
            .sensors
            .get(sensor)
            .and_then(|s| s.descriptors.last())
            .map(|d| d.descriptor.device.replace(',', " "))
    };
    let agent = plan
        .first_boot
        .and_then(|b| ds.catalog.boots.iter().find(|i| i.boot_id == b))
        .map(|b| format!("aloft-agent {}", b.agent_version));
    let (y, mo, d, ..) = civil(first.utc_ns.div_euclid(1_000_000_000));
    let mut h = String::new();
    let mut line = |text: String| {
        h.push_str(&text);
        h.push_str("\r\n");
    };
    line(format!(
        "A{MANUFACTURER}{}{}",
        logger_id(&ds.node),
        header_text(&ds.node)
    ));
    line(format!(
        "HFDTEDATE:{d:02}{mo:02}{:02},01",
        y.rem_euclid(100)
    ));
    line(format!("HFPLTPILOTINCHARGE:{}", header_text(&meta.pilot)));
    line(format!("HFCM2CREW2:{}", header_text(&meta.copilot)));
    line(format!(
        "HFGTYGLIDERTYPE:{}",
        header_text(&meta.glider_type)
    ));
    line(format!("HFGIDGLIDERID:{}", header_text(&meta.glider_id)));
    line("HFDTM100GPSDATUM:WGS-1984".to_owned());
    line(format!(
        "HFRFWFIRMWAREVERSION:{}",
        header_text(agent.as_deref().unwrap_or(""))
    ));
    line("HFRHWHARDWAREVERSION:NIL".to_owned());
    line("HFFTYFRTYPE:Aloft,aloft-agent".to_owned());
    line(format!(
        "HFGPSRECEIVER:{}",
        header_text(device(gps).as_deref().unwrap_or(""))
    ));
    line(format!(
        "HFPRSPRESSALTSENSOR:{}",
        header_text(static_port.and_then(device).as_deref().unwrap_or(""))
    ));
    line("HFALGALTGPS:ELL".to_owned());
    line("HFALPALTPRESSURE:ISA".to_owned());
    line(format!(
        "HFCIDCOMPETITIONID:{}",
        header_text(&meta.competition_id)
    ));
    line(I_RECORD.to_owned());
    let tolerance_s = NEAREST_TOLERANCE_NS / 1_000_000_000;
    for comment in [
        format!(
            "exported by Aloft at {} from node {}, sensor {gps}; not a signed recorder: no G record",
            rfc3339_s(ds.options.created_utc_ns),
            header_text(&ds.node)
        ),
        "GNSS altitude: altitude_msl + geoid_separation (WGS 84 ellipsoid)".to_owned(),
        format!(
            "pressure altitude: ISA 1013.25 hPa from sensor {} nearest within {tolerance_s} s, 00000 when none",
            header_text(static_port.unwrap_or("NIL"))
        ),
        format!(
            "FXA: 2 x the receiver's 1-sigma horizontal accuracy, m; TAS: true airspeed nearest within {tolerance_s} s, km/h x 100; dashes: no value"
        ),
        format!(
            "fixes without UTC are left out and listed in {}.sidecar.json",
            header_text(&ds.options.stem)
        ),
    ] {
        for part in l_records(&comment) {
            line(part);
        }
    }
    h
}

/// The longest B, I, J, K or L record IGC allows, without CRLF.
pub const MAX_RECORD: usize = 76;

/// `comment` as L records of at most [`MAX_RECORD`] characters, split at spaces where it
/// can be.
fn l_records(comment: &str) -> Vec<String> {
    let room = MAX_RECORD - 1 - MANUFACTURER.len();
    let mut out = Vec::new();
    let mut rest = header_text(comment);
    while rest.len() > room {
        let cut = rest[..=room].rfind(' ').filter(|&c| c > 0).unwrap_or(room);
        out.push(format!("L{MANUFACTURER}{}", rest[..cut].trim_end()));
        rest = rest[cut..].trim_start().to_owned();
    }
    out.push(format!("L{MANUFACTURER}{rest}"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn positions_and_altitudes_print_in_igc_form() {
        assert_eq!(latitude_text(51.5), "5130000N");
        assert_eq!(latitude_text(-33.999_999_9), "3400000S");
        assert_eq!(longitude_text(-0.5), "00030000W");
        assert_eq!(longitude_text(7.123_456), "00707407E");
        assert_eq!(altitude_text(-12.4), "-0012");
        assert_eq!(altitude_text(12_001.6), "12002");
        assert_eq!(altitude_text(1e9), "99999");
        assert_eq!(digits(None, 3), "---");
        assert_eq!(digits(Some(7.4), 2), "07");
    }

    #[test]
    fn isa_pressure_altitude_is_zero_at_1013_25_hpa() {
        assert!(pressure_altitude_m(101_325.0).abs() < 1e-9);
        assert!((pressure_altitude_m(22_632.06) - 11_000.0).abs() < 0.5);
    }

    proptest! {
        #[test]
        fn any_comment_becomes_l_records_of_at_most_76_characters(text in "\\PC{0,300}") {
            for l in l_records(&text) {
                prop_assert!(l.len() <= MAX_RECORD && l.starts_with("LXAL"), "{l:?}");
            }
        }

        #[test]
        fn any_header_text_stays_on_one_printable_line(text in "\\PC{0,40}|[\\x00-\\x7f]{0,40}") {
            let t = header_text(&text);
            prop_assert!(!t.is_empty());
            prop_assert!(t.bytes().all(|b| (0x20..0x7f).contains(&b)));
        }

        #[test]
        fn positions_round_trip_to_a_thousandth_of_a_minute(lat in -90.0f64..90.0, lon in -180.0f64..180.0) {
            let parse = |t: &str, dd: usize| {
                let d: f64 = t[..dd].parse().unwrap();
                let m: f64 = t[dd..dd + 5].parse::<f64>().unwrap() / 1000.0;
                let v = d + m / 60.0;
                if t.ends_with('S') || t.ends_with('W') { -v } else { v }
            };
            let half = 0.5 / 60_000.0 + 1e-12;
            prop_assert!((parse(&latitude_text(lat), 2) - lat).abs() <= half);
            prop_assert!((parse(&longitude_text(lon), 3) - lon).abs() <= half);
        }
    }
}
