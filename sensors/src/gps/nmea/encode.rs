//! Formats typed sentences the way a u-blox receiver prints them (NMEA 2.3 layouts, GNS and
//! ZDA as NMEA 4.10, five decimals of arc minutes, CR LF), for simulators, test streams and
//! round trips.
//! Not for the hot path: each sentence is a new `String`.
//!
//! Invariant: what these functions write, [`parse`](super::parse) reads back to the
//! same values up to the printed precision.

use super::{
    Gga, Gll, Gns, Gsa, Gsv, Rmc, Sentence, Status, Talker, TimeOfDay, Vtg, Zda, checksum,
};
use std::fmt::Write;

/// Wraps a body (between `$` and `*`) into a full sentence with checksum and CR LF.
pub fn finish(body: &str) -> String {
    format!("${body}*{:02X}\r\n", checksum(body.as_bytes()))
}

fn talker(t: Talker) -> String {
    String::from_utf8_lossy(&t.code()).into_owned()
}

fn num(out: &mut String, v: Option<f64>, decimals: usize) {
    if let Some(v) = v {
        let _ = write!(out, "{v:.decimals$}");
    }
}

fn coord(out: &mut String, v: Option<f64>, deg_digits: usize, pos: char, neg: char) {
    if let Some(v) = v {
        let a = v.abs();
        let d = a.trunc();
        // Five decimals of minutes, as u-blox sends.
        let m = ((a - d) * 60.0 * 1e5).round() / 1e5;
        let (d, m) = if m >= 60.0 { (d + 1.0, 0.0) } else { (d, m) };
        let _ = write!(
            out,
            "{:0dw$}{:08.5},{}",
            d as u32,
            m,
            if v < 0.0 { neg } else { pos },
            dw = deg_digits
        );
    } else {
        out.push(',');
    }
}

fn time(out: &mut String, t: Option<TimeOfDay>) {
    if let Some(t) = t {
        let _ = write!(
            out,
            "{:02}{:02}{:02}.{:02}",
            t.hour,
            t.minute,
            t.second,
            t.nanosecond / 10_000_000
        );
    }
}

fn opt_u<T: std::fmt::Display>(out: &mut String, v: Option<T>) {
    if let Some(v) = v {
        let _ = write!(out, "{v}");
    }
}

/// Formats GGA.
pub fn gga(s: &Gga) -> String {
    let mut o = format!("{}GGA,", talker(s.talker));
    time(&mut o, s.time);
    o.push(',');
    coord(&mut o, s.latitude_deg, 2, 'N', 'S');
    o.push(',');
    coord(&mut o, s.longitude_deg, 3, 'E', 'W');
    o.push(',');
    opt_u(&mut o, s.quality);
    o.push(',');
    if let Some(n) = s.satellites_used {
        let _ = write!(o, "{n:02}");
    }
    o.push(',');
    num(&mut o, s.hdop, 2);
    o.push(',');
    num(&mut o, s.altitude_msl_m, 1);
    o.push_str(if s.altitude_msl_m.is_some() {
        ",M,"
    } else {
        ",,"
    });
    num(&mut o, s.geoid_separation_m, 1);
    o.push_str(if s.geoid_separation_m.is_some() {
        ",M,"
    } else {
        ",,"
    });
    num(&mut o, s.dgps_age_s, 1);
    o.push(',');
    opt_u(&mut o, s.dgps_station);
    finish(&o)
}

/// Formats RMC (NMEA 2.3 layout, with mode).
pub fn rmc(s: &Rmc) -> String {
    let mut o = format!("{}RMC,", talker(s.talker));
    time(&mut o, s.time);
    o.push(',');
    if let Some(st) = s.status {
        o.push(if st == Status::Valid { 'A' } else { 'V' });
    }
    o.push(',');
    coord(&mut o, s.latitude_deg, 2, 'N', 'S');
    o.push(',');
    coord(&mut o, s.longitude_deg, 3, 'E', 'W');
    o.push(',');
    num(&mut o, s.speed_knots, 3);
    o.push(',');
    num(&mut o, s.track_deg, 2);
    o.push(',');
    if let Some(d) = s.date {
        let _ = write!(o, "{:02}{:02}{:02}", d.day, d.month, d.year % 100);
    }
    o.push(',');
    match s.magnetic_variation_deg {
        Some(v) => {
            let _ = write!(o, "{:.1},{}", v.abs(), if v < 0.0 { 'W' } else { 'E' });
        }
        None => o.push(','),
    }
    o.push(',');
    if let Some(m) = s.mode {
        o.push(char::from(m.letter()));
    }
    finish(&o)
}

/// Formats GSA.
pub fn gsa(s: &Gsa) -> String {
    let mut o = format!("{}GSA,", talker(s.talker));
    if let Some(b) = s.selection {
        o.push(char::from(b));
    }
    o.push(',');
    opt_u(&mut o, s.fix_mode);
    for sat in &s.satellites {
        o.push(',');
        if let Some(p) = sat {
            let _ = write!(o, "{p:02}");
        }
    }
    for d in [s.pdop, s.hdop, s.vdop] {
        o.push(',');
        num(&mut o, d, 2);
    }
    if let Some(id) = s.system_id {
        let _ = write!(o, ",{id:X}");
    }
    finish(&o)
}

/// Formats GSV with as many blocks as are `Some` (then trailing `None`s are dropped).
pub fn gsv(s: &Gsv) -> String {
    let mut o = format!(
        "{}GSV,{},{},",
        talker(s.talker),
        s.total_messages,
        s.message_number
    );
    if let Some(n) = s.satellites_in_view {
        let _ = write!(o, "{n:02}");
    }
    for sat in s.satellites.iter().flatten() {
        let _ = write!(o, ",{:02},", sat.prn);
        num(&mut o, sat.elevation_deg, 0);
        o.push(',');
        if let Some(a) = sat.azimuth_deg {
            let _ = write!(o, "{a:03.0}");
        }
        o.push(',');
        num(&mut o, sat.snr_dbhz, 0);
    }
    if let Some(id) = s.signal_id {
        let _ = write!(o, ",{}", char::from(id));
    }
    finish(&o)
}

/// Formats VTG (NMEA 2.3 layout).
pub fn vtg(s: &Vtg) -> String {
    let mut o = format!("{}VTG,", talker(s.talker));
    num(&mut o, s.track_true_deg, 2);
    o.push_str(",T,");
    num(&mut o, s.track_magnetic_deg, 2);
    o.push_str(",M,");
    num(&mut o, s.speed_knots, 3);
    o.push_str(",N,");
    num(&mut o, s.speed_kmh, 3);
    o.push_str(",K,");
    if let Some(m) = s.mode {
        o.push(char::from(m.letter()));
    }
    finish(&o)
}

/// Formats GLL (NMEA 2.3 layout).
pub fn gll(s: &Gll) -> String {
    let mut o = format!("{}GLL,", talker(s.talker));
    coord(&mut o, s.latitude_deg, 2, 'N', 'S');
    o.push(',');
    coord(&mut o, s.longitude_deg, 3, 'E', 'W');
    o.push(',');
    time(&mut o, s.time);
    o.push(',');
    if let Some(st) = s.status {
        o.push(if st == Status::Valid { 'A' } else { 'V' });
    }
    o.push(',');
    if let Some(m) = s.mode {
        o.push(char::from(m.letter()));
    }
    finish(&o)
}

/// Formats GNS (NMEA 4.10 layout when a navigational status is given, else 4.00).
pub fn gns(s: &Gns) -> String {
    let mut o = format!("{}GNS,", talker(s.talker));
    time(&mut o, s.time);
    o.push(',');
    coord(&mut o, s.latitude_deg, 2, 'N', 'S');
    o.push(',');
    coord(&mut o, s.longitude_deg, 3, 'E', 'W');
    o.push(',');
    for m in s.modes.as_slice() {
        o.push(char::from(m.letter()));
    }
    o.push(',');
    if let Some(n) = s.satellites_used {
        let _ = write!(o, "{n:02}");
    }
    o.push(',');
    num(&mut o, s.hdop, 2);
    o.push(',');
    num(&mut o, s.altitude_msl_m, 1);
    o.push(',');
    num(&mut o, s.geoid_separation_m, 1);
    o.push(',');
    num(&mut o, s.dgps_age_s, 1);
    o.push(',');
    opt_u(&mut o, s.dgps_station);
    if let Some(n) = s.navigational_status {
        let _ = write!(o, ",{}", char::from(n));
    }
    finish(&o)
}

/// Formats ZDA.
pub fn zda(s: &Zda) -> String {
    let mut o = format!("{}ZDA,", talker(s.talker));
    time(&mut o, s.time);
    match s.date {
        Some(d) => {
            let _ = write!(o, ",{:02},{:02},{:04}", d.day, d.month, d.year);
        }
        None => o.push_str(",,,"),
    }
    o.push(',');
    if let Some(h) = s.local_zone_hours {
        let sign = if h < 0 { "-" } else { "" };
        let _ = write!(o, "{sign}{:02}", h.unsigned_abs());
    }
    o.push(',');
    if let Some(m) = s.local_zone_minutes {
        let _ = write!(o, "{m:02}");
    }
    finish(&o)
}

/// Formats any of the eight typed sentences.
pub fn sentence(s: &Sentence<'_>) -> String {
    match s {
        Sentence::Gga(s) => gga(s),
        Sentence::Rmc(s) => rmc(s),
        Sentence::Gsa(s) => gsa(s),
        Sentence::Gsv(s) => gsv(s),
        Sentence::Vtg(s) => vtg(s),
        Sentence::Gll(s) => gll(s),
        Sentence::Gns(s) => gns(s),
        Sentence::Zda(s) => zda(s),
        Sentence::Other(o) if o.fields.is_empty() => finish(o.address),
        Sentence::Other(o) => finish(&format!("{},{}", o.address, o.fields)),
    }
}
