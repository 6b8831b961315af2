//! CSV read back by readers nobody here wrote: Python's `csv` module (RFC 4180) and pandas.
//! Every row, value, time (to the nanosecond), flag and time source of the simulated flight
//! must be what `Dataset::rows` gave, in both layouts.

#![allow(clippy::unwrap_used)]

use std::io::Write;

use aloft_dataset::source::MemorySource;
use aloft_dataset::{
    Completeness, Dataset, DirOutput, ExportOptions, Format, Layout, Selection, export,
};
use aloft_protocol::{Quality, Record, StoreEpoch};
use aloft_test_support::flight::{FlightOptions, FlightRecords};
use aloft_test_support::python;

fn source() -> MemorySource {
    let epoch = StoreEpoch([3; 16]);
    let records: Vec<(StoreEpoch, u64, Record)> = FlightRecords::new(FlightOptions {
        duration_s: 240.0,
        pitot_outage_at_s: Some(60.0),
        uncorrelated_boot_s: Some(5.0),
        ..FlightOptions::default()
    })
    .enumerate()
    .map(|(i, r)| (epoch, i as u64, r))
    .collect();
    MemorySource::new(records, Completeness::default())
}

/// The rows `Dataset::rows` gives, one JSON array a line:
/// `[utc_ns|null, sensor, quantity, value, quality_bits, time_source, mono_ns, boot|null]`.
fn expected(ds: &Dataset<'_>, path: &std::path::Path) -> u64 {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut n = 0;
    ds.rows(&mut |row| {
        let line = serde_json::json!([
            row.utc_ns,
            row.sensor,
            row.quantity.to_string(),
            row.value,
            row.quality.bits(),
            aloft_dataset::time::source_name(row.time_source),
            row.mono_ns,
            row.boot.map(|b| aloft_dataset::source::hex(&b.0)),
        ]);
        writeln!(f, "{line}").unwrap();
        n += 1;
        Ok(())
    })
    .unwrap();
    f.flush().unwrap();
    n
}

const FLAGS: &str = r#"
NAMES = ["out_of_range", "crc_failed", "stale", "simulated", "invalid", "derived", "degraded_input"]
def flags(bits):
    return "|".join(n for i, n in enumerate(NAMES) if bits & (1 << i))
"#;

const TIDY: &str = r#"
import csv, json, sys
import pandas as pd
path, expected_path, node = sys.argv[1], sys.argv[2], sys.argv[3]
expected = [json.loads(l) for l in open(expected_path)]
with open(path, newline="") as f:
    rows = list(csv.DictReader(f, strict=True))
assert len(rows) == len(expected), (len(rows), len(expected))
for i, (r, e) in enumerate(zip(rows, expected)):
    utc, sensor, quantity, value, bits, source, mono, boot = e
    assert r["node"] == node, (i, r)
    assert r["sensor"] == sensor and r["quantity"] == quantity, (i, r, e)
    assert float(r["value"]) == value, (i, r["value"], value)
    assert r["quality"] == flags(bits), (i, r["quality"], bits)
    assert r["time_source"] == source, (i, r, e)
    assert int(r["mono_ns"]) == mono, (i, r, e)
    assert r["boot"] == (boot or ""), (i, r, e)
    assert (r["time_utc"] == "") == (utc is None), (i, r, e)
frame = pd.read_csv(path, dtype={"quality": str, "boot": str}, keep_default_na=False)
times = pd.to_datetime(frame["time_utc"].replace("", None), utc=True, format="ISO8601")
for i, (t, e) in enumerate(zip(times, expected)):
    if e[0] is None:
        assert pd.isna(t), (i, t)
    else:
        assert t.value == e[0], (i, t.value, e[0])
print(len(rows))
"#;

const WIDE: &str = r#"
import csv, json, sys, glob, os
import pandas as pd
directory, stem, expected_path = sys.argv[1], sys.argv[2], sys.argv[3]
expected = [json.loads(l) for l in open(expected_path)]
by_sensor = {}
for utc, sensor, quantity, value, bits, source, mono, boot in expected:
    by_sensor.setdefault(sensor, {}).setdefault((mono, boot or ""), {})[quantity] = (value, bits, utc, source)
seen = 0
for sensor, instants in by_sensor.items():
    files = [p for p in glob.glob(os.path.join(directory, stem + "_*.csv"))]
    match = [p for p in files if os.path.basename(p) == stem + "_" + sensor + ".csv"]
    assert len(match) == 1, (sensor, files)
    frame = pd.read_csv(match[0], keep_default_na=False, dtype=str)
    assert len(frame) == len(instants), (sensor, len(frame), len(instants))
    for _, row in frame.iterrows():
        values = instants[(int(row["mono_ns"]), row["boot"])]
        for quantity, (value, bits, utc, source) in values.items():
            assert float(row[quantity]) == value, (sensor, quantity, row[quantity], value)
            assert row[quantity + "_quality"] == flags(bits)
            assert row["time_source"] == source
            seen += 1
        for column in frame.columns[4:]:
            if not column.endswith("_quality") and column not in values:
                assert row[column] == "", (sensor, column, row[column])
assert seen == len(expected), (seen, len(expected))
print(seen)
"#;

#[test]
fn python_csv_and_pandas_read_back_every_row_of_both_layouts() {
    let Some(py) = python::readers() else {
        return;
    };
    let source = source();
    let dir = tempfile::tempdir().unwrap();
    for layout in [Layout::Tidy, Layout::Wide] {
        let mut options = ExportOptions::new("glider-1", 1_790_000_000_000_000_000);
        options.layout = layout;
        let stem = options.stem.clone();
        let ds = Dataset::open(&source, "glider-1", Selection::default(), options).unwrap();
        let out_dir = dir.path().join(layout.name());
        let mut out = DirOutput::new(&out_dir, false).unwrap();
        export(&ds, Format::Csv, &mut out).unwrap();
        out.commit().unwrap();
        let expected_path = dir.path().join(format!("{}.jsonl", layout.name()));
        let n = expected(&ds, &expected_path);
        assert!(n > 2_000, "{n}");
        let said = match layout {
            Layout::Tidy => python::run(
                &py,
                &format!("{FLAGS}{TIDY}"),
                &[
                    out_dir.join(format!("{stem}.csv")).as_os_str(),
                    expected_path.as_os_str(),
                    "glider-1".as_ref(),
                ],
            ),
            Layout::Wide => python::run(
                &py,
                &format!("{FLAGS}{WIDE}"),
                &[
                    out_dir.as_os_str(),
                    stem.as_ref(),
                    expected_path.as_os_str(),
                ],
            ),
        };
        assert_eq!(said.stdout.trim(), n.to_string(), "{layout:?}");
    }
    // The flight's readings before the first fix are reconstructed; the second boot's are
    // without UTC, and still exported.
    let ds = Dataset::open(
        &source,
        "glider-1",
        Selection::default(),
        ExportOptions::new("glider-1", 0),
    )
    .unwrap();
    let mut sources = std::collections::BTreeMap::new();
    ds.rows(&mut |row| {
        *sources
            .entry(aloft_dataset::time::source_name(row.time_source))
            .or_insert(0u64) += 1;
        assert!(row.quality.contains(Quality::SIMULATED));
        Ok(())
    })
    .unwrap();
    for s in ["gnss", "system_clock", "reconstructed", "monotonic"] {
        assert!(sources.get(s).copied().unwrap_or(0) > 0, "{s}: {sources:?}");
    }
}
