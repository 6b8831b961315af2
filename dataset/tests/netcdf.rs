//! NetCDF-CF export read back by the readers researchers use: the IOOS compliance-checker
//! (CF 1.8), xarray (times decoded) and netCDF4; and the classic encoder's files read by
//! netCDF4 for any dimensions, attributes and variables.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use aloft_dataset::formats::netcdf::classic::{
    AttrValue, Attribute, Dimension, FILL_DOUBLE, Header, NcType, Variable, write_padding,
};
use aloft_dataset::formats::netcdf::{TOLERANCE_NS, sensor_var_prefix};
use aloft_dataset::source::{MemorySource, hex};
use aloft_dataset::time::{parse_utc, source_name};
use aloft_dataset::{
    Completeness, Dataset, DirOutput, ExportError, ExportOptions, Format, RecordSource, Selection,
    SourceError, export,
};
use aloft_protocol::{Quantity, Record, StoreEpoch};
use aloft_test_support::flight::{FlightOptions, FlightRecords, SECOND_BOOT};
use aloft_test_support::python;
use proptest::prelude::*;
use serde_json::Value;

/// The simulated flight with a pitot outage and a second boot without UTC; the static port
/// at 2 Hz, so that two of its instants are nearest to one fix.
fn flight() -> FlightOptions {
    FlightOptions {
        duration_s: 300.0,
        static_hz: 2.0,
        pitot_outage_at_s: Some(100.0),
        uncorrelated_boot_s: Some(10.0),
        ..FlightOptions::default()
    }
}

fn source(opts: FlightOptions) -> MemorySource {
    let records: Vec<_> = FlightRecords::new(opts)
        .enumerate()
        .map(|(i, r): (usize, Record)| (StoreEpoch([7; 16]), i as u64, r))
        .collect();
    MemorySource::new(
        records,
        Completeness {
            origin: "store".to_owned(),
            ..Completeness::default()
        },
    )
}

fn options() -> ExportOptions {
    ExportOptions::new("glider-1", 1_790_000_000_000_000_000)
}

fn export_to(src: &MemorySource, sel: Selection, dir: &Path) -> Result<PathBuf, ExportError> {
    let ds = Dataset::open(src, "glider-1", sel, options())?;
    let mut out = DirOutput::new(dir, false)?;
    export(&ds, Format::NetCdf, &mut out)?;
    out.commit()?;
    Ok(dir.join("aloft-glider-1.nc"))
}

/// Dumps every variable (raw, unmasked: doubles as their bit patterns), every attribute,
/// and xarray's decoded times (ns, `null` for NaT) of each file named, as a JSON list.
const DUMP: &str = r#"
import json, sys
import numpy as np
import netCDF4
import xarray as xr

def attr(v):
    if isinstance(v, str):
        return v
    a = np.atleast_1d(v)
    if a.dtype.kind == 'f':
        return [int(x) for x in a.astype('<f8').view('<u8')]
    return [int(x) for x in a]

def raw(v):
    a = np.asarray(v[...])
    if a.dtype.kind == 'f':
        return [int(x) for x in a.astype('<f8').view('<u8')]
    if a.dtype.kind == 'S':
        return b''.join(a.tolist()).decode()
    return [int(x) for x in a]

def dump(path):
    ds = netCDF4.Dataset(path)
    ds.set_auto_maskandscale(False)
    ds.set_auto_chartostring(False)
    out = {
        'format': ds.data_model,
        'dims': {k: len(d) for k, d in ds.dimensions.items()},
        'global': {k: attr(ds.getncattr(k)) for k in ds.ncattrs()},
        'vars': {
            n: {
                'dtype': str(v.dtype),
                'dims': list(v.dimensions),
                'attrs': {k: attr(v.getncattr(k)) for k in v.ncattrs()},
                'raw': raw(v),
            }
            for n, v in ds.variables.items()
        },
        'decoded': {},
    }
    x = xr.open_dataset(path)
    for n in x.variables:
        v = x[n]
        if np.issubdtype(v.dtype, np.datetime64):
            ns = v.values.astype('datetime64[ns]')
            out['decoded'][n] = [None if np.isnat(t) else int(t.astype('int64')) for t in ns]
    return out

print(json.dumps([dump(p) for p in sys.argv[1:]]))
"#;

/// The dumps of `files`, in order.
fn dump_all(py: &Path, files: &[PathBuf]) -> Vec<Value> {
    let args: Vec<&OsStr> = files.iter().map(|f| f.as_os_str()).collect();
    let out = python::run(py, DUMP, &args);
    serde_json::from_str(&out.stdout).unwrap()
}

fn dump(py: &Path, file: &Path) -> Value {
    dump_all(py, &[file.to_path_buf()]).remove(0)
}

/// The high-priority failures compliance-checker reports for `test` (e.g. `cf:1.8`).
fn checker_failures(py: &Path, file: &Path, test: &str) -> (Vec<String>, Value) {
    // The CLI is installed next to the readers' interpreter (a venv's bin), else on PATH.
    let beside = py.with_file_name("compliance-checker");
    let checker = if beside.exists() {
        beside
    } else {
        PathBuf::from("compliance-checker")
    };
    let report = tempfile::NamedTempFile::new().unwrap();
    let out = std::process::Command::new(&checker)
        .arg(format!("--test={test}"))
        .args(["--format=json", "-o"])
        .arg(report.path())
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", checker.display()));
    let json: Value = serde_json::from_slice(&std::fs::read(report.path()).unwrap())
        .unwrap_or_else(|e| {
            panic!(
                "compliance-checker wrote no JSON ({e}): {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let result = json[test].clone();
    let failures = result["high_priorities"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["msgs"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |m| format!("{}: {}", r["name"], m))
        })
        .collect();
    (failures, result)
}

fn f64s(v: &Value) -> Vec<f64> {
    v["raw"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| f64::from_bits(b.as_u64().unwrap()))
        .collect()
}

fn ints(v: &Value) -> Vec<i64> {
    v["raw"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_i64().unwrap())
        .collect()
}

fn text<'a>(v: &'a Value, attr: &str) -> &'a str {
    v["attrs"][attr].as_str().unwrap_or_default()
}

/// A reading as the comparison sees it: sensor, quantity, UTC (ns), value bits, quality
/// bits, time source, monotonic ns (only for readings without UTC).
type Key = (
    String,
    Quantity,
    Option<i64>,
    u64,
    u16,
    &'static str,
    Option<u64>,
);

/// A fix's values: value bits and quality bits per quantity.
type FixValues = BTreeMap<Quantity, (u64, u16)>;

fn source_of(code: i64) -> &'static str {
    ["monotonic", "system_clock", "gnss", "reconstructed"][usize::try_from(code).unwrap()]
}

#[test]
fn the_flight_passes_the_cf_checker_and_reads_back_exactly_in_netcdf4_and_xarray() {
    let Some(py) = python::readers() else { return };
    let src = source(flight());
    let dir = tempfile::tempdir().unwrap();
    let file = export_to(&src, Selection::default(), dir.path()).unwrap();

    // The same records give the same bytes.
    let again = tempfile::tempdir().unwrap();
    let file2 = export_to(&src, Selection::default(), again.path()).unwrap();
    assert_eq!(
        std::fs::read(&file).unwrap(),
        std::fs::read(&file2).unwrap()
    );

    for test in ["cf:1.8", "cf:1.11"] {
        let (failures, result) = checker_failures(&py, &file, test);
        assert!(
            failures.is_empty(),
            "{test} high-priority failures: {failures:#?}"
        );
        eprintln!(
            "{test}: {} of {} points",
            result["scored_points"], result["possible_points"]
        );
    }

    let d = dump(&py, &file);
    assert_eq!(d["format"], "NETCDF3_64BIT_OFFSET");
    let g = &d["global"];
    assert_eq!(g["featureType"], "trajectory");
    assert!(g["Conventions"].as_str().unwrap().contains("CF-1.8"));
    assert_eq!(g["date_created"], "2026-09-21T14:13:20.000000000Z");
    for key in [
        "title",
        "institution",
        "source",
        "history",
        "platform",
        "instrument",
        "time_coverage_start",
        "time_coverage_end",
        "references",
        "comment",
    ] {
        assert!(!g[key].as_str().unwrap_or_default().is_empty(), "{key}");
    }
    assert_eq!(
        g["time_placement_tolerance_s"],
        serde_json::json!([0.5f64.to_bits()])
    );
    let vars = d["vars"].as_object().unwrap();
    assert_eq!(vars["trajectory"]["raw"], "glider-1");
    assert_eq!(text(&vars["trajectory"], "cf_role"), "trajectory_id");

    // What the file must hold: every selected reading of the dataset, each once.
    let ds = Dataset::open(&src, "glider-1", Selection::default(), options()).unwrap();
    let (expected, fixes) = held(&ds, "gps");
    let n_obs = fixes.len();
    assert!(n_obs > 250, "{n_obs}");
    let per_reason = assert_accounts_for_every_reading(&d, &expected, &fixes, "gps");
    // The second boot's ten static readings have no UTC; the 2 Hz static port has one
    // instant per fix off the track; muons come faster than fixes at altitude.
    assert_eq!(per_reason[0], 10, "{per_reason:?}");
    assert!(per_reason[2] > 100, "{per_reason:?}");
    let unplaced: usize = per_reason.iter().sum();
    assert_eq!(
        g["readings_unplaced"],
        serde_json::json!([(unplaced as f64).to_bits()])
    );
    assert_eq!(text(&vars["alt"], "standard_name"), "altitude");
    assert_eq!(text(&vars["alt"], "positive"), "up");
    assert_eq!(text(&vars["lat"], "standard_name"), "latitude");

    // Every data variable: standard name where the vocabulary has one, units, fill value,
    // coordinates and its ancillary flag variables with their meanings.
    let units = text(&vars["time"], "units");
    for (sensor, qs) in sensors_of(&expected) {
        let prefix = sensor_var_prefix(&sensor);
        if sensor != "gps" {
            assert_eq!(text(&vars[&format!("{prefix}_time")], "units"), units);
        }
        for q in qs {
            let name = var_name(&sensor, q, "gps");
            let v = &vars[&name];
            if let Some(sn) = q.cf_standard_name() {
                assert_eq!(text(v, "standard_name"), sn, "{name}");
            }
            assert_eq!(text(v, "units"), q.unit().unwrap(), "{name}");
            let quality_var = format!("{name}_quality");
            let ancillary = text(v, "ancillary_variables");
            assert!(
                ancillary.split(' ').any(|a| a == quality_var),
                "{name}: {ancillary}"
            );
            for a in ancillary.split(' ') {
                assert!(vars.contains_key(a), "{name}: ancillary {a} missing");
            }
            let qv = &vars[&quality_var];
            assert_eq!(
                text(qv, "flag_meanings"),
                "out_of_range crc_failed stale simulated invalid derived degraded_input"
            );
            assert_eq!(
                qv["attrs"]["flag_masks"],
                serde_json::json!([1, 2, 4, 8, 16, 32, 64])
            );
            if name != "lat" && name != "lon" {
                assert_eq!(
                    v["attrs"]["_FillValue"],
                    serde_json::json!([FILL_DOUBLE.to_bits()])
                );
            }
            if !["lat", "lon", "alt"].contains(&name.as_str()) {
                assert_eq!(text(v, "coordinates"), "time lat lon alt", "{name}");
            }
            let flags = ints(qv);
            for (k, value) in f64s(v).into_iter().enumerate() {
                if value.to_bits() == FILL_DOUBLE.to_bits() {
                    assert_eq!(flags[k], -32_767, "{name} {k}: a fill value's flag is fill");
                }
            }
        }
    }
    let ts = &vars["static_time_source"];
    assert_eq!(
        text(ts, "flag_meanings"),
        "monotonic system_clock gnss reconstructed"
    );
    assert_eq!(ts["attrs"]["flag_values"], serde_json::json!([0, 1, 2, 3]));

    // The pitot's outage is fill, not zero.
    let track: Vec<i64> = track_times(&d);
    let pitot = f64s(&vars["pitot_true_airspeed"]);
    let in_outage: Vec<usize> = (0..n_obs)
        .filter(|&k| track[k] >= flight_utc(100.5) && track[k] <= flight_utc(129.5))
        .collect();
    assert!(in_outage.len() >= 25, "{}", in_outage.len());
    for k in in_outage {
        assert_eq!(
            pitot[k].to_bits(),
            FILL_DOUBLE.to_bits(),
            "pitot at fix {k}"
        );
    }

    // Readings without UTC name their boot.
    let boots: Vec<&str> = text(&vars["unplaced_boot"], "flag_meanings")
        .split(' ')
        .collect();
    let reasons = ints(&vars["unplaced_reason"]);
    let u_boot = ints(&vars["unplaced_boot"]);
    for k in (0..reasons.len()).filter(|&k| reasons[k] == 0) {
        assert_eq!(
            boots[usize::try_from(u_boot[k]).unwrap()],
            format!("boot_{}", hex(&SECOND_BOOT.0))
        );
    }

    // The sidecar names the resolution and counts what the file holds.
    let sidecar: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("aloft-glider-1.sidecar.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(sidecar["format"], "netcdf");
    let on_track = f64::from_bits(g["readings_on_track"][0].as_u64().unwrap());
    assert_eq!(
        sidecar["totals"]["rows"].as_u64().unwrap(),
        on_track as u64 + unplaced as u64
    );
    assert!(
        sidecar["time"]["resolution"]
            .as_str()
            .unwrap()
            .starts_with("1 us")
    );
    assert_eq!(sidecar["readings_without_utc"][0]["readings"], 10);
}

/// Every selected reading of `ds` as a [`Key`], and the fixes of `gnss` (instants with UTC,
/// latitude and longitude) in UTC order.
fn held(ds: &Dataset<'_>, gnss: &str) -> (Vec<Key>, Vec<(i64, FixValues)>) {
    let mut expected: Vec<Key> = Vec::new();
    let mut fixes: Vec<(i64, usize, FixValues)> = Vec::new();
    ds.instants(&mut |i| {
        for (q, v, f) in &i.values {
            expected.push((
                i.sensor.clone(),
                *q,
                i.utc_ns,
                v.to_bits(),
                f.bits(),
                source_name(i.time_source),
                i.utc_ns.is_none().then_some(i.mono_ns),
            ));
        }
        if i.sensor == gnss
            && let Some(utc) = i.utc_ns
            && i.get(Quantity::Latitude).is_some()
            && i.get(Quantity::Longitude).is_some()
        {
            let n = fixes.len();
            fixes.push((
                utc,
                n,
                i.values
                    .iter()
                    .map(|(q, v, f)| (*q, (v.to_bits(), f.bits())))
                    .collect(),
            ));
        }
        Ok(())
    })
    .unwrap();
    fixes.sort_by_key(|(t, n, _)| (*t, *n));
    (
        expected,
        fixes.into_iter().map(|(t, _, v)| (t, v)).collect(),
    )
}

/// Each sensor's quantities among `keys`.
fn sensors_of(keys: &[Key]) -> BTreeMap<String, Vec<Quantity>> {
    let mut m: BTreeMap<String, Vec<Quantity>> = BTreeMap::new();
    for e in keys {
        let qs = m.entry(e.0.clone()).or_default();
        if !qs.contains(&e.1) {
            qs.push(e.1);
        }
    }
    m
}

/// The variable of `sensor`'s `q`.
fn var_name(sensor: &str, q: Quantity, gnss: &str) -> String {
    match q {
        Quantity::Latitude if sensor == gnss => "lat".to_owned(),
        Quantity::Longitude if sensor == gnss => "lon".to_owned(),
        Quantity::AltitudeMsl if sensor == gnss => "alt".to_owned(),
        _ => format!("{}_{q}", sensor_var_prefix(sensor)),
    }
}

/// The `seconds since` epoch of the dump's time variables, ns.
fn time_epoch(d: &Value) -> i64 {
    let units = text(&d["vars"]["time"], "units");
    let day = units.strip_prefix("seconds since ").unwrap();
    parse_utc(&format!("{}Z", day.replace(' ', "T"))).unwrap()
}

/// A time variable's raw values as UTC ns (`None` for fill).
fn utc_of(d: &Value, var: &str) -> Vec<Option<i64>> {
    let epoch = time_epoch(d);
    f64s(&d["vars"][var])
        .into_iter()
        .map(|s| (s.to_bits() != FILL_DOUBLE.to_bits()).then(|| epoch + (s * 1e9).round() as i64))
        .collect()
}

/// xarray's decoding of a time variable, ns (`None` for NaT).
fn decoded(d: &Value, var: &str) -> Vec<Option<i64>> {
    d["decoded"][var]
        .as_array()
        .unwrap_or_else(|| panic!("xarray did not decode {var} as times"))
        .iter()
        .map(Value::as_i64)
        .collect()
}

/// The time of the fix nearest to `utc` within the tolerance, a tie going to the earlier.
fn nearest_fix_time(track: &[i64], utc: i64) -> Option<i64> {
    track
        .iter()
        .copied()
        .filter(|f| f.abs_diff(utc) <= TOLERANCE_NS as u64)
        .min_by_key(|f| (f.abs_diff(utc), *f))
}

/// A `short` flag as the 16 bits it holds.
fn bits16(v: i64) -> u16 {
    u16::from_be_bytes(i16::try_from(v).unwrap().to_be_bytes())
}

fn track_times(d: &Value) -> Vec<i64> {
    utc_of(d, "time").into_iter().map(Option::unwrap).collect()
}

/// Checks that the file `d` holds exactly `expected` (each reading once, on the track or
/// off it), that the track is `fixes`, that times decode in xarray to 1 us, that placed
/// instants are within the tolerance of their fix and that every `unplaced` row's reason is
/// true. Returns the `unplaced` rows per reason.
fn assert_accounts_for_every_reading(
    d: &Value,
    expected: &[Key],
    fixes: &[(i64, FixValues)],
    gnss: &str,
) -> [usize; 3] {
    let vars = d["vars"].as_object().unwrap();
    let n_obs = fixes.len();
    assert_eq!(d["dims"]["obs"], n_obs);
    let track = track_times(d);
    let decoded_track = decoded(d, "time");
    for (k, (utc, values)) in fixes.iter().enumerate() {
        assert_eq!(track[k], *utc, "fix {k}");
        assert!(decoded_track[k].unwrap().abs_diff(*utc) <= 1_000, "fix {k}");
        for (var, q) in [("lat", Quantity::Latitude), ("lon", Quantity::Longitude)] {
            assert_eq!(f64s(&vars[var])[k].to_bits(), values[&q].0, "{var} {k}");
        }
    }
    let mut actual: Vec<Key> = Vec::new();
    for (sensor, qs) in sensors_of(expected) {
        let prefix = sensor_var_prefix(&sensor);
        let (times, sources) = if sensor == gnss {
            (
                track.iter().map(|t| Some(*t)).collect::<Vec<_>>(),
                ints(&vars["time_source"]),
            )
        } else {
            let times = utc_of(d, &format!("{prefix}_time"));
            let shown = decoded(d, &format!("{prefix}_time"));
            for (k, (a, b)) in times.iter().zip(&shown).enumerate() {
                match (a, b) {
                    (Some(a), Some(b)) => {
                        assert!(a.abs_diff(*b) <= 1_000, "{sensor} {k}");
                        assert_eq!(
                            nearest_fix_time(&track, *a),
                            Some(track[k]),
                            "{sensor} {k}: placed at the nearest fix, a tie to the earlier"
                        );
                    }
                    (None, None) => {}
                    _ => panic!("{sensor} time {k}: {a:?} decoded as {b:?}"),
                }
            }
            (times, ints(&vars[&format!("{prefix}_time_source")]))
        };
        for q in qs {
            let name = var_name(&sensor, q, gnss);
            let values = f64s(&vars[&name]);
            let flags = ints(&vars[&format!("{name}_quality")]);
            for k in 0..n_obs {
                if values[k].to_bits() != FILL_DOUBLE.to_bits() {
                    actual.push((
                        sensor.clone(),
                        q,
                        times[k],
                        values[k].to_bits(),
                        bits16(flags[k]),
                        source_of(sources[k]),
                        None,
                    ));
                }
            }
        }
    }
    let mut per_reason = [0usize; 3];
    if vars.contains_key("unplaced_reason") {
        let names: Vec<String> = text(&vars["unplaced_sensor"], "flag_meanings")
            .split(' ')
            .map(str::to_owned)
            .collect();
        let reasons = ints(&vars["unplaced_reason"]);
        let u_times = utc_of(d, "unplaced_time");
        let u_shown = decoded(d, "unplaced_time");
        let u_mono = f64s(&vars["unplaced_mono_time"]);
        let u_sensor = ints(&vars["unplaced_sensor"]);
        let u_quantity = ints(&vars["unplaced_quantity"]);
        let u_value = f64s(&vars["unplaced_value"]);
        let u_quality = ints(&vars["unplaced_quality"]);
        let u_source = ints(&vars["unplaced_time_source"]);
        for k in 0..reasons.len() {
            per_reason[usize::try_from(reasons[k]).unwrap()] += 1;
            let nearest = u_times[k].map(|t| track.iter().map(|f| f.abs_diff(t)).min().unwrap());
            match reasons[k] {
                0 => {
                    assert_eq!(u_times[k], None, "row {k}: no UTC is no time");
                    assert_eq!(u_shown[k], None, "row {k}: xarray shows NaT");
                }
                1 => assert!(nearest.unwrap() > TOLERANCE_NS as u64, "row {k}"),
                _ => {
                    // The nearest fix's place is held by another instant of the sensor.
                    let at = nearest_fix_time(&track, u_times[k].unwrap()).unwrap();
                    let sensor = &names[usize::try_from(u_sensor[k]).unwrap()];
                    let held_by = if *sensor == gnss.replace('-', "_") {
                        vec![Some(at); n_obs]
                    } else {
                        utc_of(d, &format!("{}_time", sensor_var_prefix(sensor)))
                    };
                    assert!(
                        (0..n_obs).any(|p| track[p] == at && held_by[p].is_some()),
                        "row {k}: its fix is free"
                    );
                }
            }
            if let (Some(a), Some(b)) = (u_times[k], u_shown[k]) {
                assert!(a.abs_diff(b) <= 1_000, "row {k}");
            }
            actual.push((
                names[usize::try_from(u_sensor[k]).unwrap()].replace('_', "-"),
                Quantity::from_code(u16::try_from(u_quantity[k]).unwrap()),
                u_times[k],
                u_value[k].to_bits(),
                bits16(u_quality[k]),
                source_of(u_source[k]),
                u_times[k]
                    .is_none()
                    .then(|| (u_mono[k] * 1e9).round() as u64),
            ));
        }
    }
    let mut expected = expected.to_vec();
    expected.sort();
    actual.sort();
    assert_eq!(actual.len(), expected.len());
    assert_eq!(actual, expected);
    per_reason
}

fn flight_utc(t_s: f64) -> i64 {
    FlightOptions::default().start_utc_ns + (t_s * 1e9) as i64
}

#[test]
fn a_selection_without_gnss_fixes_is_refused_and_writes_no_file() {
    let src = source(FlightOptions {
        duration_s: 60.0,
        ..FlightOptions::default()
    });
    let refusals = [
        Selection {
            sensors: vec!["static".to_owned(), "pitot".to_owned()],
            ..Selection::default()
        },
        Selection {
            quantities: vec![Quantity::Latitude, Quantity::AirPressure],
            ..Selection::default()
        },
        Selection {
            from_utc_ns: Some(flight_utc(1.0)),
            to_utc_ns: Some(flight_utc(15.0)),
            ..Selection::default()
        },
    ];
    for sel in refusals {
        let dir = tempfile::tempdir().unwrap();
        let e = export_to(&src, sel.clone(), dir.path()).unwrap_err();
        assert!(matches!(e, ExportError::Unsuitable(_)), "{sel:?}: {e}");
        assert!(e.is_request_error());
        assert!(e.to_string().contains("needs GNSS fixes"), "{e}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{sel:?}: {left:?}");
    }
}

#[test]
fn a_store_directory_and_the_same_records_in_memory_give_the_same_bytes() {
    let store = tempfile::tempdir().unwrap();
    {
        let (mut outbox, _) =
            aloft_store::Outbox::open(store.path(), aloft_store::StoreOptions::default()).unwrap();
        for r in FlightRecords::new(flight()) {
            outbox.append(&r).unwrap();
        }
        outbox.commit().unwrap();
        outbox.close().unwrap();
    }
    let from_store = aloft_dataset::StoreDirSource::open(store.path()).unwrap();
    let mut held = Vec::new();
    from_store
        .for_each_record(&mut |e, s, r| {
            held.push((e, s, r.clone()));
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    let memory = MemorySource::new(held, from_store.completeness());
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for (src, dir) in [
        (&from_store as &dyn RecordSource, a.path()),
        (&memory as &dyn RecordSource, b.path()),
    ] {
        let ds = Dataset::open(src, "glider-1", Selection::default(), options()).unwrap();
        let mut out = DirOutput::new(dir, false).unwrap();
        export(&ds, Format::NetCdf, &mut out).unwrap();
        out.commit().unwrap();
    }
    for name in ["aloft-glider-1.nc", "aloft-glider-1.sidecar.json"] {
        let (fa, fb) = (
            std::fs::read(a.path().join(name)).unwrap(),
            std::fs::read(b.path().join(name)).unwrap(),
        );
        assert!(fa.len() > 1000, "{name}");
        assert!(fa == fb, "{name} differs");
    }
}

#[test]
fn averaged_exports_keep_the_method_and_stay_readable() {
    let Some(py) = python::readers() else { return };
    let src = source(flight());
    let dir = tempfile::tempdir().unwrap();
    let sel = Selection {
        resample: Some(aloft_dataset::Resample::Mean {
            interval_ns: 10_000_000_000,
        }),
        ..Selection::default()
    };
    let file = export_to(&src, sel, dir.path()).unwrap();
    let (failures, _) = checker_failures(&py, &file, "cf:1.8");
    assert!(failures.is_empty(), "{failures:#?}");
    let d = dump(&py, &file);
    // 280 s of fixes in 10 s bins: 28 or 29 averaged fixes (the first bin may be partial).
    let n = d["dims"]["obs"].as_u64().unwrap();
    assert!((28..=29).contains(&n), "{n}");
    let times: Vec<i64> = d["decoded"]["time"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_i64().unwrap())
        .collect();
    assert!(times.iter().all(|t| t % 10_000_000_000 == 0), "{times:?}");
    let sidecar: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("aloft-glider-1.sidecar.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(sidecar["selection"]["resample"]["method"], "mean");
    assert!(
        d["global"]["resampling"]
            .as_str()
            .unwrap()
            .starts_with("the arithmetic mean")
    );
    assert_eq!(
        d["vars"]["static_air_pressure"]["attrs"]["cell_methods"],
        "time: mean (interval: 10 s)"
    );
}

/// One instant of a random stream: a GNSS fix or a barometer conversion, its UTC in
/// tenths of a second (none: monotonic time only), its values and its quality bits.
#[derive(Debug, Clone)]
enum Event {
    Fix {
        utc_ds: Option<u8>,
        lat: f64,
        lon: f64,
        alt: Option<f64>,
        quality: u16,
    },
    Baro {
        utc_ds: Option<u8>,
        pressure: f64,
        quality: u16,
    },
}

fn arb_event() -> impl Strategy<Value = Event> {
    let utc = proptest::option::weighted(0.85, 0u8..60);
    prop_oneof![
        (
            utc.clone(),
            -90.0f64..90.0,
            -180.0f64..180.0,
            proptest::option::of(-400.0f64..15_000.0),
            any::<u16>()
        )
            .prop_map(|(utc_ds, lat, lon, alt, quality)| Event::Fix {
                utc_ds,
                lat,
                lon,
                alt,
                quality
            }),
        (utc, 1_000.0f64..110_000.0, any::<u16>()).prop_map(|(utc_ds, pressure, quality)| {
            Event::Baro {
                utc_ds,
                pressure,
                quality,
            }
        }),
    ]
}

/// A stream: a boot, descriptors of `gps` and `baro`, maybe a time correlation (so readings
/// without UTC get reconstructed UTC), a first fix with UTC, then the events.
fn stream(correlated: bool, first: Event, events: &[Event]) -> MemorySource {
    use aloft_protocol::{
        Boot, BootId, DescriptorRecord, Quality, Reading, SensorDescriptor, SensorId,
        TimeCorrelation, TimeSource, Timestamp,
    };
    const T0: i64 = 1_780_000_000_000_000_000;
    let boot = BootId([0xa0; 16]);
    let mut records = vec![Record::Boot(Boot {
        boot_id: boot,
        mono_ns: 1_000,
        utc_ns: None,
        agent_version: "0.1.0".to_owned(),
    })];
    for (id, name, kind) in [(0, "gps", "ublox"), (1, "baro", "bme280")] {
        records.push(Record::Descriptor(DescriptorRecord {
            sensor: SensorId(id),
            name: name.to_owned(),
            kind: kind.to_owned(),
            time: Timestamp::monotonic(1_000),
            descriptor: SensorDescriptor::new("device"),
        }));
    }
    if correlated {
        records.push(Record::TimeCorrelation(TimeCorrelation {
            boot_id: boot,
            mono_ns: 1_000_000_000,
            utc_ns: T0 + 2_000_000_000,
            source: TimeSource::Gnss,
            uncertainty_ns: None,
        }));
    }
    for (n, e) in std::iter::once(&first).chain(events).enumerate() {
        // Each instant its own monotonic time (100 ms apart), so instants never merge.
        let mono = 1_000_000_000 + n as u64 * 100_000_000;
        let time = |utc_ds: Option<u8>, source| match utc_ds {
            Some(ds) => Timestamp::with_utc(mono, T0 + i64::from(ds) * 100_000_000, source),
            None => Timestamp::monotonic(mono),
        };
        let mut push = |sensor: u16, quantity, time, value, quality: u16| {
            records.push(Record::Reading(Reading {
                sensor: SensorId(sensor),
                quantity,
                time,
                value,
                quality: Quality::from_bits(quality),
            }));
        };
        match e {
            Event::Fix {
                utc_ds,
                lat,
                lon,
                alt,
                quality,
            } => {
                let t = time(*utc_ds, TimeSource::Gnss);
                push(0, Quantity::Latitude, t, *lat, *quality);
                push(0, Quantity::Longitude, t, *lon, *quality);
                if let Some(alt) = alt {
                    push(0, Quantity::AltitudeMsl, t, *alt, *quality);
                }
            }
            Event::Baro {
                utc_ds,
                pressure,
                quality,
            } => {
                let t = time(*utc_ds, TimeSource::SystemClock);
                push(1, Quantity::AirPressure, t, *pressure, *quality);
            }
        }
    }
    let records = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| (StoreEpoch([3; 16]), i as u64, r))
        .collect();
    MemorySource::new(records, Completeness::default())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    /// Any stream of fixes and conversions (fixes out of order and at equal times, readings
    /// exactly at the tolerance, without UTC, with any quality bits) exports every reading
    /// exactly once, on the track or off it with a true reason, as netCDF4 and xarray read it.
    #[test]
    fn any_stream_exports_every_reading_once(
        streams in proptest::collection::vec(
            (
                any::<bool>(),
                (0u8..60, any::<u16>()),
                proptest::collection::vec(arb_event(), 0..40),
            ),
            8,
        )
    ) {
        let Some(py) = python::readers() else { return Ok(()) };
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        let mut wanted = Vec::new();
        for (n, (correlated, (first_ds, first_q), events)) in streams.iter().enumerate() {
            let first = Event::Fix {
                utc_ds: Some(*first_ds),
                lat: 47.0,
                lon: 11.0,
                alt: Some(1_000.0),
                quality: *first_q,
            };
            let src = stream(*correlated, first, events);
            let sub = dir.path().join(n.to_string());
            let file = export_to(&src, Selection::default(), &sub).unwrap();
            let ds = Dataset::open(&src, "glider-1", Selection::default(), options()).unwrap();
            wanted.push(held(&ds, "gps"));
            files.push(file);
        }
        let dumps = dump_all(&py, &files);
        for (d, (expected, fixes)) in dumps.iter().zip(&wanted) {
            assert_accounts_for_every_reading(d, expected, fixes, "gps");
        }
    }
}

/// A source that breaks the promise of re-readability: from its third pass on (the catalog
/// and the writer's survey are the first two), it yields one more reading.
struct GrowingSource {
    inner: MemorySource,
    passes: std::cell::Cell<u32>,
    extra: Record,
}

impl RecordSource for GrowingSource {
    fn for_each_record(
        &self,
        each: &mut dyn FnMut(StoreEpoch, u64, &Record) -> std::ops::ControlFlow<()>,
    ) -> Result<(), SourceError> {
        self.passes.set(self.passes.get() + 1);
        let mut last = 0;
        let mut stopped = false;
        self.inner.for_each_record(&mut |e, seq, r| {
            last = seq;
            let flow = each(e, seq, r);
            stopped = flow.is_break();
            flow
        })?;
        if self.passes.get() >= 3 && !stopped {
            let _ = each(StoreEpoch([7; 16]), last + 1, &self.extra);
        }
        Ok(())
    }

    fn completeness(&self) -> Completeness {
        self.inner.completeness()
    }
}

#[test]
fn records_that_change_between_passes_are_refused_not_half_written() {
    let opts = FlightOptions {
        duration_s: 60.0,
        ..FlightOptions::default()
    };
    let last_fix = FlightRecords::new(opts.clone())
        .filter_map(|r| match r {
            Record::Reading(r) if r.quantity == Quantity::Latitude => Some(r),
            _ => None,
        })
        .last()
        .unwrap();
    // A reading of a sensor the earlier passes never saw.
    let mut extra = last_fix;
    extra.sensor = aloft_protocol::SensorId(9);
    extra.quantity = Quantity::AirPressure;
    let src = GrowingSource {
        inner: source(opts),
        passes: std::cell::Cell::new(0),
        extra: Record::Reading(extra),
    };
    let ds = Dataset::open(&src, "glider-1", Selection::default(), options()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut out = DirOutput::new(dir.path(), false).unwrap();
    let e = export(&ds, Format::NetCdf, &mut out).unwrap_err();
    assert!(
        e.to_string()
            .contains("changed between the export's passes"),
        "{e}"
    );
    drop(out);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Writes `h` with deterministic values for every variable; returns the values written
/// as the dump prints them (doubles and floats as f64 bits, others as integers, text).
fn write_classic(h: &Header, path: &Path) -> Vec<Value> {
    let (bytes, layout) = h.encode().unwrap();
    let mut data = bytes;
    let mut written = Vec::new();
    for (i, v) in h.vars.iter().enumerate() {
        let n = h.values(i);
        let start = data.len();
        let mut values = Vec::new();
        let mut chars = String::new();
        for k in 0..n {
            let x = (k as i64 * 37 + i as i64 * 11) % 200 - 100;
            match v.nc_type {
                NcType::Byte => {
                    data.push((x as i8).to_be_bytes()[0]);
                    values.push(Value::from(x));
                }
                NcType::Char => {
                    let c = b'a' + (k % 26) as u8;
                    data.push(c);
                    chars.push(c as char);
                }
                NcType::Short => {
                    let y = (x * 300) as i16;
                    data.extend(y.to_be_bytes());
                    values.push(Value::from(y));
                }
                NcType::Int => {
                    let y = (x * 20_000_000) as i32;
                    data.extend(y.to_be_bytes());
                    values.push(Value::from(y));
                }
                NcType::Float => {
                    let y = x as f32 / 3.0;
                    data.extend(y.to_be_bytes());
                    values.push(Value::from(f64::from(y).to_bits()));
                }
                NcType::Double => {
                    let y = x as f64 / 7.0 + 1e-300;
                    data.extend(y.to_be_bytes());
                    values.push(Value::from(y.to_bits()));
                }
            }
        }
        let len = (data.len() - start) as u64;
        write_padding(&mut data, len).unwrap();
        assert_eq!(layout.vars[i].begin, start as u64);
        written.push(if v.nc_type == NcType::Char {
            Value::from(chars)
        } else {
            Value::from(values)
        });
    }
    assert_eq!(data.len() as u64, layout.file_len);
    std::fs::write(path, data).unwrap();
    written
}

fn attr_json(a: &AttrValue) -> (Value, &'static str) {
    match a {
        AttrValue::Text(t) => (Value::from(t.clone()), "text"),
        AttrValue::Bytes(v) => (Value::from(v.clone()), "int8"),
        AttrValue::Shorts(v) => (Value::from(v.clone()), "int16"),
        AttrValue::Ints(v) => (Value::from(v.clone()), "int32"),
        AttrValue::Floats(v) => (
            Value::from(
                v.iter()
                    .map(|x| f64::from(*x).to_bits())
                    .collect::<Vec<_>>(),
            ),
            "float32",
        ),
        AttrValue::Doubles(v) => (
            Value::from(v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()),
            "float64",
        ),
    }
}

const DUMP_CLASSIC: &str = r#"
import json, sys
import numpy as np
import netCDF4

def attr(v):
    if isinstance(v, str):
        return [v, 'text']
    a = np.atleast_1d(v)
    vals = [int(x) for x in a.astype('<f8').view('<u8')] if a.dtype.kind == 'f' else [int(x) for x in a]
    return [vals, str(a.dtype)]

def raw(v):
    a = np.asarray(v[...]).reshape(-1)
    if a.dtype.kind == 'f':
        return [int(x) for x in a.astype('<f8').view('<u8')]
    if a.dtype.kind == 'S':
        return b''.join(a.tolist()).decode()
    return [int(x) for x in a]

files = []
for path in sys.argv[1:]:
    ds = netCDF4.Dataset(path)
    ds.set_auto_maskandscale(False)
    ds.set_auto_chartostring(False)
    files.append({
        'format': ds.data_model,
        'dims': [[k, len(d)] for k, d in ds.dimensions.items()],
        'global': [[k] + attr(ds.getncattr(k)) for k in ds.ncattrs()],
        'vars': [[n, str(v.dtype), list(v.dimensions),
                  [[k] + attr(v.getncattr(k)) for k in v.ncattrs()], raw(v)]
                 for n, v in ds.variables.items()],
    })
print(json.dumps(files))
"#;

fn arb_name() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9_.@+-]{0,12}"
}

fn arb_attr_value() -> impl Strategy<Value = AttrValue> {
    prop_oneof![
        "[!-~][ -~]{0,18}[!-~]".prop_map(AttrValue::Text),
        proptest::collection::vec(any::<i8>(), 1..5).prop_map(AttrValue::Bytes),
        proptest::collection::vec(any::<i16>(), 1..5).prop_map(AttrValue::Shorts),
        proptest::collection::vec(any::<i32>(), 1..5).prop_map(AttrValue::Ints),
        proptest::collection::vec(-1e30f32..1e30, 1..5).prop_map(AttrValue::Floats),
        proptest::collection::vec(-1e300f64..1e300, 1..5).prop_map(AttrValue::Doubles),
    ]
}

fn attrs_of(m: BTreeMap<String, AttrValue>) -> Vec<Attribute> {
    m.into_iter().map(|(n, v)| Attribute::new(&n, v)).collect()
}

/// Any header with unique names: up to 3 dimensions, 4 global attributes, 5 variables.
fn arb_header() -> impl Strategy<Value = Header> {
    let dims = proptest::collection::btree_map(arb_name(), 1u32..6, 0..4);
    let attrs = proptest::collection::btree_map(arb_name(), arb_attr_value(), 0..5);
    (dims, attrs).prop_flat_map(|(dims, attrs)| {
        let dims: Vec<Dimension> = dims
            .into_iter()
            .map(|(name, len)| Dimension { name, len })
            .collect();
        let nd = dims.len();
        let types = prop_oneof![
            Just(NcType::Byte),
            Just(NcType::Char),
            Just(NcType::Short),
            Just(NcType::Int),
            Just(NcType::Float),
            Just(NcType::Double),
        ];
        let dim_ids = if nd == 0 {
            Just(Vec::new()).boxed()
        } else {
            proptest::collection::vec(0..nd, 0..3).boxed()
        };
        let var = (
            dim_ids,
            types,
            proptest::collection::btree_map(arb_name(), arb_attr_value(), 0..3),
        );
        (
            Just(dims),
            Just(attrs_of(attrs)),
            proptest::collection::btree_map(arb_name(), var, 0..6),
        )
            .prop_map(|(dims, attrs, vars)| Header {
                dims,
                attrs,
                vars: vars
                    .into_iter()
                    .map(|(name, (dims, nc_type, attrs))| Variable {
                        name,
                        dims,
                        nc_type,
                        attrs: attrs_of(attrs),
                    })
                    .collect(),
            })
    })
}

fn expected_attrs(attrs: &[Attribute]) -> Value {
    Value::from(
        attrs
            .iter()
            .map(|a| {
                let (v, t) = attr_json(&a.value);
                serde_json::json!([a.name, v, t])
            })
            .collect::<Vec<_>>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// Any dimensions, attributes and variables the encoder accepts read back in netCDF4
    /// (libnetcdf) with every name, type, shape, attribute and value.
    #[test]
    fn any_header_and_its_data_read_back_in_netcdf4(
        headers in proptest::collection::vec(arb_header(), 10)
    ) {
        let Some(py) = python::readers() else { return Ok(()) };
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        let mut expected = Vec::new();
        for (i, h) in headers.iter().enumerate() {
            let path = dir.path().join(format!("{i}.nc"));
            let data = write_classic(h, &path);
            let dtype = |t: NcType| match t {
                NcType::Byte => "int8",
                NcType::Char => "|S1",
                NcType::Short => "int16",
                NcType::Int => "int32",
                NcType::Float => "float32",
                NcType::Double => "float64",
            };
            expected.push(serde_json::json!({
                "format": "NETCDF3_64BIT_OFFSET",
                "dims": h.dims.iter().map(|d| serde_json::json!([d.name, d.len])).collect::<Vec<_>>(),
                "global": expected_attrs(&h.attrs),
                "vars": h.vars.iter().zip(data).map(|(v, data)| serde_json::json!([
                    v.name,
                    dtype(v.nc_type),
                    v.dims.iter().map(|&d| h.dims[d].name.clone()).collect::<Vec<_>>(),
                    expected_attrs(&v.attrs),
                    data,
                ])).collect::<Vec<_>>(),
            }));
            paths.push(path);
        }
        let args: Vec<&OsStr> = paths.iter().map(|p| p.as_os_str()).collect();
        let out = python::run(&py, DUMP_CLASSIC, &args);
        let got: Value = serde_json::from_str(&out.stdout).unwrap();
        prop_assert_eq!(got, Value::from(expected));
    }
}
