//! ICARTT 1001 (File Format Standards V2.0, FFI 1001): one file per sensor,
//! `DATAID_LOCATIONID_YYYYMMDD_RA.ict`, the independent variable `Time_Start` in seconds
//! from 00:00 UTC of the flight date (and `Time_Stop` when the selection averages over
//! intervals), one dependent variable per quantity, a `_flags` variable per quantity and a
//! `time_source` variable.
//!
//! Invariants:
//! - the flight date is the UTC date of the earliest reading with UTC in the selection,
//!   the same for every file of an export; `Time_Start` keeps counting past midnight
//!   (above 86400) so it never goes back;
//! - `Time_Start` prints the exact ns offset (up to nine fraction digits, trailing zeros
//!   dropped); values print in Rust's shortest round-trip form, so a reader parsing them
//!   into `f64` gets the very value; a value that is absent or not finite is the missing
//!   value `-9999`, never zero;
//! - values are never replaced by the LLOD/ULOD flags: a reading out of its sensor's rated
//!   range keeps its value and says so in its `_flags` variable (Aloft's quality bits);
//! - readings without UTC cannot be placed on the time axis: they are left out, and the
//!   sidecar lists them (per boot and sensor) as it does for every format;
//! - rows are in stream order, which is time order for one boot; where the time goes
//!   back (several boots or store epochs) a special comment says how often;
//! - the header's line count (line 1) is the exact number of header lines, the last of
//!   which names every variable;
//! - the data of every sensor is spooled to a temporary file in one pass, then copied
//!   after its header, so memory stays bounded.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{BufWriter, Seek, Write};

use aloft_protocol::Quantity;

use crate::ExportError;
use crate::formats::csv::copy;
use crate::formats::track::one_line;
use crate::output::Output;
use crate::rows::{Dataset, Instant};
use crate::time::{civil, civil_from_days, rfc3339_s, source_code};

const NS_PER_DAY: i64 = 86_400_000_000_000;

/// The missing-value indicator of every dependent variable.
pub const MISSING: &str = "-9999";

/// The revision every export carries: field data, not reviewed by a PI.
pub const REVISION: &str = "RA";

/// The 16 normal-comment keywords of ICARTT V2.0, in their required order.
pub const KEYWORDS: [&str; 16] = [
    "PI_CONTACT_INFO",
    "PLATFORM",
    "LOCATION",
    "ASSOCIATED_DATA",
    "INSTRUMENT_INFO",
    "DATA_INFO",
    "UNCERTAINTY",
    "ULOD_FLAG",
    "ULOD_VALUE",
    "LLOD_FLAG",
    "LLOD_VALUE",
    "DM_CONTACT_INFO",
    "PROJECT_INFO",
    "STIPULATIONS_ON_USE",
    "OTHER_COMMENTS",
    "REVISION",
];

/// What the planning pass learns of one sensor's instants with UTC.
#[derive(Debug, Clone, Default)]
struct Plan {
    quantities: BTreeSet<Quantity>,
    instants: u64,
    first_utc: i64,
    last_utc: i64,
    /// The one spacing of consecutive instants, while there is one.
    spacing: Option<i64>,
    irregular: bool,
    /// Times an instant's UTC is earlier than the one before it in stream order.
    backwards: u64,
}

impl Plan {
    fn add(&mut self, i: &Instant, utc: i64) {
        if self.instants == 0 {
            self.first_utc = utc;
        } else {
            let d = utc.saturating_sub(self.last_utc);
            if d < 0 {
                self.backwards += 1;
            }
            match self.spacing {
                None => self.spacing = Some(d),
                Some(s) if s != d => self.irregular = true,
                Some(_) => {}
            }
        }
        self.last_utc = utc;
        self.instants += 1;
        self.quantities.extend(i.values.iter().map(|(q, _, _)| *q));
    }

    /// ICARTT's data interval: the constant spacing in seconds when there is one of at
    /// most 1 s, else 0 (irregular or coarser data).
    fn data_interval(&self) -> String {
        match self.spacing {
            Some(s) if !self.irregular && s > 0 && s <= 1_000_000_000 => {
                seconds_text(i128::from(s))
            }
            _ => "0".to_owned(),
        }
    }
}

/// `ns` as seconds, exactly: `12.5`, `86400.000000001`, `3`.
pub fn seconds_text(ns: i128) -> String {
    let sign = if ns < 0 { "-" } else { "" };
    let ns = ns.unsigned_abs();
    let (s, frac) = (ns / 1_000_000_000, ns % 1_000_000_000);
    if frac == 0 {
        return format!("{sign}{s}");
    }
    let digits = format!("{frac:09}");
    format!("{sign}{s}.{}", digits.trim_end_matches('0'))
}

/// A value as ICARTT data: shortest round-trip, or the missing value.
fn value_text(v: Option<f64>, into: &mut String) {
    match v {
        Some(v) if v.is_finite() => {
            let _ = write!(into, "{v}");
        }
        _ => into.push_str(MISSING),
    }
}

/// Metadata on one line, `not stated` when empty: a header line ICARTT requires is never
/// blank.
fn stated(text: &str) -> String {
    let s = one_line(text);
    if s.trim().is_empty() {
        "not stated".to_owned()
    } else {
        s
    }
}

/// The ICARTT unit of a quantity: `none` for dimensionless.
fn unit(q: Quantity) -> &'static str {
    match q.unit() {
        Some("1") | None => "none",
        Some(u) => u,
    }
}

/// A file-name part: ASCII letters, digits and `-` only (ICARTT separates the parts with
/// `_`), never empty.
pub fn name_part(text: &str) -> String {
    let s: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let s = s.trim_matches('-').to_owned();
    if s.is_empty() { "X".to_owned() } else { s }
}

/// The longest data or location id in a file name, so that a name stays within ICARTT's
/// 127 characters.
const MAX_ID: usize = 48;

/// The file name of `sensor`'s data on flight date `day` (days since 1970-01-01):
/// `DATAID_LOCATIONID_YYYYMMDD_RA.ict`.
pub fn file_name(sensor: &str, platform: &str, day: i64) -> String {
    file_name_with(&name_part(sensor).to_ascii_uppercase(), platform, day)
}

fn file_name_with(data_id: &str, platform: &str, day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    let cut = |s: String| s.chars().take(MAX_ID).collect::<String>();
    format!(
        "{}_{}_{y:04}{m:02}{d:02}_{REVISION}.ict",
        cut(data_id.to_owned()),
        cut(name_part(platform))
    )
}

/// Every sensor's file name; two sensors whose names give the same data id (names made
/// before the naming rule, `outside_air` and `outside-air`) get `-2`, `-3`, ... so no
/// file replaces another.
fn file_names<'a>(
    sensors: impl Iterator<Item = &'a String>,
    platform: &str,
    day: i64,
) -> BTreeMap<String, String> {
    let mut used = BTreeSet::new();
    let mut names = BTreeMap::new();
    for sensor in sensors {
        let base: String = name_part(sensor)
            .to_ascii_uppercase()
            .chars()
            .take(MAX_ID - 4)
            .collect();
        let mut id = base.clone();
        let mut n = 1;
        while !used.insert(id.clone()) {
            n += 1;
            id = format!("{base}-{n}");
        }
        names.insert(sensor.clone(), file_name_with(&id, platform, day));
    }
    names
}

struct Spool {
    plan: Plan,
    columns: Vec<Quantity>,
    file: BufWriter<std::fs::File>,
}

/// Writes one ICARTT file per sensor with readings with UTC.
pub fn write(ds: &Dataset<'_>, out: &mut dyn Output) -> Result<(), ExportError> {
    let mut plans: BTreeMap<String, Plan> = BTreeMap::new();
    ds.instants(&mut |i| {
        if let Some(utc) = i.utc_ns {
            plans.entry(i.sensor.clone()).or_default().add(i, utc);
        }
        Ok(())
    })?;
    let Some(first) = plans.values().map(|p| p.first_utc).min() else {
        return Err(ExportError::Unsuitable(
            "ICARTT counts time in seconds from UTC midnight, and no reading in the selection \
             has a UTC time (readings without one are listed in the sidecar)"
                .to_owned(),
        ));
    };
    // The flight date as days since 1970-01-01, and its midnight in ns (i128: the
    // midnight of a time near i64's ends is outside i64).
    let day = first.div_euclid(NS_PER_DAY);
    let midnight = i128::from(day) * i128::from(NS_PER_DAY);
    let platform = &ds.options.metadata.platform;
    let names = file_names(plans.keys(), platform, day);

    let mut spools: BTreeMap<String, Spool> = BTreeMap::new();
    for (sensor, plan) in plans {
        let file = tempfile::tempfile().map_err(ExportError::write)?;
        spools.insert(
            sensor,
            Spool {
                columns: plan.quantities.iter().copied().collect(),
                plan,
                file: BufWriter::with_capacity(128 << 10, file),
            },
        );
    }
    // Averaged rows cover an interval: ICARTT wants its end as Time_Stop.
    let averaged = match ds.selection.resample {
        Some(crate::Resample::Mean { interval_ns }) => Some(i128::from(interval_ns)),
        _ => None,
    };
    let mut line = String::new();
    ds.instants(&mut |i| {
        let Some(utc) = i.utc_ns else { return Ok(()) };
        let Some(spool) = spools.get_mut(&i.sensor) else {
            return Ok(());
        };
        line.clear();
        line.push_str(&seconds_text(i128::from(utc) - midnight));
        if let Some(width) = averaged {
            line.push(',');
            line.push_str(&seconds_text(i128::from(utc) - midnight + width));
        }
        for q in &spool.columns {
            line.push(',');
            value_text(i.get(*q).map(|(v, _)| v), &mut line);
        }
        for q in &spool.columns {
            line.push(',');
            match i.get(*q) {
                Some((_, flags)) => {
                    let _ = write!(line, "{}", flags.bits());
                }
                None => line.push_str(MISSING),
            }
        }
        let _ = write!(line, ",{}", source_code(i.time_source));
        line.push('\n');
        spool
            .file
            .write_all(line.as_bytes())
            .map_err(ExportError::write)
    })?;

    for (sensor, spool) in spools {
        let mut file = spool
            .file
            .into_inner()
            .map_err(|e| ExportError::Write(e.into_error()))?;
        file.rewind().map_err(ExportError::write)?;
        let header = header(ds, &sensor, &spool.plan, &spool.columns, day, &names);
        let name = &names[&sensor];
        out.file(name, "icartt", "text/plain", &mut |w| {
            w.write_all(header.as_bytes()).map_err(ExportError::write)?;
            copy(&mut file, w)
        })?;
    }
    ds.mark_without_utc_left_out();
    Ok(())
}

/// The special comments of the power steps, when any step touched `sensor`: every step
/// from the first that did (the later ones say when it was let go), one line each, with its
/// UTC, name, level, reason and what it did to this sensor.
fn power_comments(ds: &Dataset<'_>, sensor: &str) -> Vec<String> {
    let steps = &ds.catalog.power_steps;
    let Some(first) = steps
        .iter()
        .position(|p| p.effects.iter().any(|e| e.sensor == sensor))
    else {
        return Vec::new();
    };
    steps[first..]
        .iter()
        .map(|p| {
            let effect = p.effects.iter().find(|e| e.sensor == sensor);
            let what = match effect {
                None => "this sensor back to its desired rate".to_owned(),
                Some(e) if e.overridden => {
                    "this sensor exempted by the operator: not applied".to_owned()
                }
                Some(e) if e.disabled => "this sensor stopped".to_owned(),
                Some(e) => match e.interval_ms {
                    Some(ms) => format!("this sensor at most every {ms} ms"),
                    None => "this sensor unchanged".to_owned(),
                },
            };
            one_line(&format!(
                "Power step {} (level {}) from {}: {}; {what}",
                p.step,
                p.level,
                p.time.as_deref().unwrap_or("an unknown time (no UTC)"),
                p.reason
            ))
        })
        .collect()
}

/// The header of `sensor`'s file, every line ended by CRLF.
fn header(
    ds: &Dataset<'_>,
    sensor: &str,
    plan: &Plan,
    columns: &[Quantity],
    day: i64,
    names: &BTreeMap<String, String>,
) -> String {
    let meta = &ds.options.metadata;
    let descriptor = ds
        .catalog
        .sensors
        .get(sensor)
        .and_then(|s| s.descriptors.last());
    let device = descriptor.map_or("unknown device".to_owned(), |d| {
        one_line(&d.descriptor.device)
    });
    let (y, m, d) = civil_from_days(day);
    let (ry, rm, rd, ..) = civil(ds.options.created_utc_ns.div_euclid(1_000_000_000));

    let mut lines: Vec<String> = Vec::new();
    lines.push(stated(&meta.principal_investigator));
    lines.push(stated(&meta.institution));
    lines.push(format!(
        "Aloft sensor {} ({device}) on {} (node {})",
        one_line(sensor),
        one_line(&meta.platform),
        one_line(&ds.node)
    ));
    lines.push(stated(&meta.project));
    lines.push("1, 1".to_owned());
    lines.push(format!("{y:04}, {m:02}, {d:02}, {ry:04}, {rm:02}, {rd:02}"));
    lines.push(plan.data_interval());
    lines.push(
        "Time_Start, seconds, Time_Start, start time of the reading in seconds from 00:00 UTC of the flight date"
            .to_owned(),
    );
    let averaged = matches!(ds.selection.resample, Some(crate::Resample::Mean { .. }));
    let n_dependent = 2 * columns.len() + 1 + usize::from(averaged);
    lines.push(n_dependent.to_string());
    lines.push(vec!["1"; n_dependent].join(", "));
    lines.push(vec![MISSING; n_dependent].join(", "));
    let mut shortnames = vec!["Time_Start".to_owned()];
    if averaged {
        lines.push(
            "Time_Stop, seconds, Time_Stop, end of the averaging interval in seconds from 00:00 UTC of the flight date"
                .to_owned(),
        );
        shortnames.push("Time_Stop".to_owned());
    }
    for q in columns {
        let name = q.to_string();
        let standard = q.cf_standard_name().unwrap_or(&name).to_owned();
        lines.push(format!(
            "{name}, {}, {standard}, {name} measured by {}",
            unit(*q),
            one_line(sensor).replace(',', ";")
        ));
        shortnames.push(name);
    }
    for q in columns {
        let name = format!("{q}_flags");
        lines.push(format!(
            "{name}, none, {name}, quality flags of {q} (sum of the bits listed in DATA_INFO)"
        ));
        shortnames.push(name);
    }
    lines.push(
        "time_source, none, time_source, where the time came from: 1 system clock; 2 GNSS; 3 reconstructed from monotonic time and a time correlation"
            .to_owned(),
    );
    shortnames.push("time_source".to_owned());
    // Special comments only when there is something special: the time going back (rows
    // are in stream order, which for readings of several boots or store epochs may not be
    // time order), and the power steps that slowed or stopped this sensor.
    let mut special: Vec<String> = Vec::new();
    if plan.backwards > 0 {
        special.push(format!(
            "Time_Start goes back {} times: the rows are in the order the node recorded them, across several boots or store epochs; sort by Time_Start to use them as a time series",
            plan.backwards
        ));
    }
    special.extend(power_comments(ds, sensor));
    lines.push(special.len().to_string());
    lines.extend(special);

    let instrument = match descriptor {
        Some(d) => {
            let d = &d.descriptor;
            let mut s = device.clone();
            if let Some(f) = &d.firmware {
                let _ = write!(s, "; firmware {}", one_line(f));
            }
            if let Some(n) = &d.serial_number {
                let _ = write!(s, "; serial {}", one_line(n));
            }
            if let Some(m) = d.dynamic_model {
                let _ = write!(s, "; GNSS dynamic model {m:?}");
            }
            s
        }
        None => "no descriptor recorded".to_owned(),
    };
    let associated: Vec<&str> = names
        .iter()
        .filter(|(s, _)| s.as_str() != sensor)
        .map(|(_, n)| n.as_str())
        .collect();
    let resample = match ds.selection.resample {
        None => "none: every reading as recorded".to_owned(),
        Some(crate::Resample::Decimate { interval_ns }) => format!(
            "decimated: the first reading of each {} s interval (UTC) kept, the rest left out",
            seconds_text(i128::from(interval_ns))
        ),
        Some(crate::Resample::Mean { interval_ns }) => format!(
            "averaged: the arithmetic mean over each {} s interval (UTC) stamped with its start",
            seconds_text(i128::from(interval_ns))
        ),
    };
    let contact = format!(
        "{}, {}",
        one_line(&meta.principal_investigator),
        one_line(&meta.institution)
    );
    let normal: [String; 16] = [
        contact.clone(),
        format!("{} (Aloft node {})", one_line(&meta.platform), one_line(&ds.node)),
        "latitude, longitude and altitude are in the file of the GNSS sensor listed in ASSOCIATED_DATA (or in this file if it is that sensor)".to_owned(),
        if associated.is_empty() {
            format!("{}.sidecar.json", ds.options.stem)
        } else {
            format!("{} {}.sidecar.json", associated.join(" "), ds.options.stem)
        },
        instrument,
        format!(
            "SI units as in the variable lines; _flags variables sum Aloft's quality bits: 1 out_of_range; 2 crc_failed; 4 stale; 8 simulated; 16 invalid; 32 derived; 64 degraded_input; values out of rated range are kept and flagged 1; never replaced by LLOD or ULOD flags; resampling {resample}"
        ),
        "not assessed by Aloft; see the sensor's datasheet for its accuracy".to_owned(),
        "-7777".to_owned(),
        "N/A".to_owned(),
        "-8888".to_owned(),
        "N/A".to_owned(),
        contact,
        format!(
            "{}{}",
            one_line(&meta.project),
            if meta.title.is_empty() {
                String::new()
            } else {
                format!(" - {}", one_line(&meta.title))
            }
        ),
        format!("licence {}", one_line(&meta.license)),
        format!(
            "readings without a UTC time (no time correlation for their boot) cannot be placed on Time_Start and are left out; {}.sidecar.json lists them with their boot and monotonic times; times are UTC as Aloft defines it (docs/export.md)",
            ds.options.stem
        ),
        REVISION.to_owned(),
    ];
    let mut comments: Vec<String> = KEYWORDS
        .iter()
        .zip(normal)
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    comments.push(format!(
        "{REVISION}: field data exported by Aloft at {}, not reviewed by the PI",
        rfc3339_s(ds.options.created_utc_ns)
    ));
    comments.push(shortnames.join(", "));
    lines.push(comments.len().to_string());
    lines.extend(comments);

    // Line 1 counts itself and every header line after it.
    let total = lines.len() + 1;
    let mut text = format!("{total}, 1001, V02_2016\n");
    for l in lines {
        text.push_str(&l);
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_print_exactly() {
        assert_eq!(seconds_text(0), "0");
        assert_eq!(seconds_text(12_500_000_000), "12.5");
        assert_eq!(seconds_text(86_400_000_000_001), "86400.000000001");
        assert_eq!(seconds_text(-1_500_000_000), "-1.5");
    }

    #[test]
    fn file_names_follow_the_convention() {
        assert_eq!(
            file_name("static", "glider", 20_601),
            "STATIC_glider_20260528_RA.ict"
        );
        assert_eq!(name_part("a_b c"), "a-b-c");
        assert_eq!(name_part("__"), "X");
    }

    #[test]
    fn sensors_whose_names_give_one_data_id_get_distinct_files() {
        let sensors = ["outside-air".to_owned(), "outside_air".to_owned()];
        let names = file_names(sensors.iter(), "glider", 0);
        assert_eq!(names["outside-air"], "OUTSIDE-AIR_glider_19700101_RA.ict");
        assert_eq!(names["outside_air"], "OUTSIDE-AIR-2_glider_19700101_RA.ict");
        let long = "x".repeat(300);
        let names = file_names([long.clone()].iter(), &long, 0);
        assert!(names[&long].len() <= 127, "{}", names[&long]);
    }
}
