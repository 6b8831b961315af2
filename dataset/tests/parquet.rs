//! Parquet exports of the simulated flight read back by pyarrow and by pandas: every row,
//! value (bit for bit), time (to the ns), quality flag, time source and monotonic time as
//! the dataset's rows say; units in the metadata; a full disk leaves no file.

#![cfg(feature = "parquet")]
#![allow(clippy::unwrap_used)]

use std::path::Path;

use aloft_dataset::source::{MemorySource, hex};
use aloft_dataset::time::source_name;
use aloft_dataset::{
    Completeness, Dataset, DirOutput, ExportOptions, Format, Layout, Selection, export,
};
use aloft_protocol::{Record, StoreEpoch};
use aloft_test_support::flight::{FlightOptions, FlightRecords};
use aloft_test_support::mounts::Tmpfs;
use aloft_test_support::python;
use serde_json::{Value, json};

const NODE: &str = "glider-1";
const CREATED: i64 = 1_790_000_000_000_000_000;

fn flight(opts: FlightOptions) -> MemorySource {
    let epoch = StoreEpoch([7; 16]);
    let records: Vec<(StoreEpoch, u64, Record)> = FlightRecords::new(opts)
        .enumerate()
        .map(|(i, r)| (epoch, i as u64, r))
        .collect();
    let completeness = Completeness {
        origin: "hub".to_owned(),
        ..Completeness::default()
    };
    MemorySource::new(records, completeness)
}

/// The flight with the pitot's outage and a boot whose readings never get UTC.
fn eventful_flight() -> MemorySource {
    flight(FlightOptions {
        duration_s: 300.0,
        pitot_outage_at_s: Some(100.0),
        uncorrelated_boot_s: Some(10.0),
        ..FlightOptions::default()
    })
}

fn options(layout: Layout) -> ExportOptions {
    let mut options = ExportOptions::new(NODE, CREATED);
    options.layout = layout;
    options
}

fn export_to(ds: &Dataset<'_>, dir: &Path) -> Vec<aloft_dataset::FileEntry> {
    let mut out = DirOutput::new(dir, false).unwrap();
    let files = export(ds, Format::Parquet, &mut out).unwrap();
    out.commit().unwrap();
    files
}

/// A float as its bits, so the comparison is exact (and NaN-proof).
fn bits(v: f64) -> u64 {
    v.to_bits()
}

/// The rows the dataset yields, one JSON array a line, in the tidy table's column order.
fn expected_tidy(ds: &Dataset<'_>, path: &Path) -> u64 {
    let mut lines = String::new();
    ds.rows(&mut |row| {
        let line = json!([
            row.utc_ns,
            NODE,
            row.sensor,
            row.quantity.to_string(),
            bits(row.value),
            row.quantity.unit(),
            aloft_dataset::formats::csv::quality_text(row.quality),
            row.quality.bits(),
            source_name(row.time_source),
            row.mono_ns,
            row.boot.map(|b| hex(&b.0)),
            hex(&row.epoch.0),
            row.seq,
        ]);
        lines.push_str(&line.to_string());
        lines.push('\n');
        Ok(())
    })
    .unwrap();
    std::fs::write(path, lines).unwrap();
    ds.stats().rows
}

const READ_TIDY: &str = r#"
import json, struct, sys
import pyarrow as pa, pyarrow.parquet as pq, pandas as pd

path, expected_path = sys.argv[1], sys.argv[2]
exp = [json.loads(l) for l in open(expected_path)]
names = ["time", "node", "sensor", "quantity", "value", "unit", "quality", "quality_bits",
         "time_source", "mono_ns", "boot", "epoch", "seq"]
bits = lambda v: struct.unpack("<Q", struct.pack("<d", v))[0]

t = pq.read_table(path)
assert t.column_names == names, t.column_names
assert t.num_rows == len(exp), (t.num_rows, len(exp))
assert t.schema.field("time").type == pa.timestamp("ns", tz="UTC"), t.schema
for n, ty in [("value", pa.float64()), ("mono_ns", pa.uint64()), ("seq", pa.uint64()),
              ("quality_bits", pa.uint16())]:
    assert t.schema.field(n).type == ty, (n, t.schema.field(n).type)
cols = {}
for n in names:
    c = t.column(n)
    if pa.types.is_dictionary(c.type):
        c = c.cast(c.type.value_type)
    if pa.types.is_timestamp(c.type):
        c = c.cast(pa.int64())
    cols[n] = c.to_pylist()
cols["value"] = [bits(v) for v in cols["value"]]
for i, e in enumerate(exp):
    got = [cols[n][i] for n in names]
    if got != e:
        raise SystemExit(f"pyarrow row {i}: {got} != {e}")

kv = pq.ParquetFile(path).metadata.metadata
units = {q["name"]: q["unit"] for q in json.loads(kv[b"aloft:quantities"])}
for e in exp:
    assert units[e[3]] == e[5], (e[3], units.get(e[3]), e[5])
assert any(u is not None for u in units.values()), units
sensors = json.loads(kv[b"aloft:sensors"])
assert {s["name"] for s in sensors} == {e[2] for e in exp}, sensors
assert all(s["descriptors"] for s in sensors), sensors
time = json.loads(kv[b"aloft:time"])
assert "correlation" in time["definition"], time

df = pd.read_parquet(path)
assert len(df) == len(exp), (len(df), len(exp))
assert str(df["time"].dtype) == "datetime64[ns, UTC]", df["time"].dtype
assert str(df["mono_ns"].dtype) == "uint64", df["mono_ns"].dtype
times = [None if pd.isna(x) else x.value for x in df["time"]]
values = [bits(v) for v in df["value"].tolist()]
quality = df["quality"].astype(object).tolist()
sources = df["time_source"].astype(object).tolist()
mono = df["mono_ns"].tolist()
for i, e in enumerate(exp):
    got = [times[i], values[i], quality[i], sources[i], mono[i]]
    want = [e[0], e[4], e[6], e[8], e[9]]
    if got != want:
        raise SystemExit(f"pandas row {i}: {got} != {want}")
print(len(exp), "rows")
"#;

#[test]
fn the_tidy_flight_reads_back_in_pyarrow_and_pandas_row_for_row() {
    let Some(python) = python::readers() else {
        return;
    };
    let source = eventful_flight();
    let ds = Dataset::open(&source, NODE, Selection::default(), options(Layout::Tidy)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let expected = dir.path().join("expected.jsonl");
    let rows = expected_tidy(&ds, &expected);
    let out = dir.path().join("out");
    let files = export_to(&ds, &out);
    assert_eq!(
        files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
        ["aloft-glider-1.parquet", "aloft-glider-1.sidecar.json"]
    );
    assert_eq!(ds.stats().rows, rows);
    // The flight has every kind of time the export must carry.
    let sources = ds.stats().time_sources;
    for s in ["gnss", "system_clock", "reconstructed", "monotonic"] {
        assert!(sources.get(s).copied().unwrap_or(0) > 0, "{s}: {sources:?}");
    }
    let said = python::run(
        &python,
        READ_TIDY,
        &[
            out.join("aloft-glider-1.parquet").as_os_str(),
            expected.as_os_str(),
        ],
    );
    assert_eq!(said.stdout.trim(), format!("{rows} rows"));
}

const READ_WIDE: &str = r#"
import json, struct, sys
import pyarrow as pa, pyarrow.parquet as pq, pandas as pd

folder, expected_path = sys.argv[1], sys.argv[2]
exp = json.load(open(expected_path))
bits = lambda v: struct.unpack("<Q", struct.pack("<d", v))[0]
values = 0
for name, table in exp["files"].items():
    path = f"{folder}/{name}"
    qs = [q for q, _, _ in table["quantities"]]
    names = ["time", "time_source", "mono_ns", "boot"] + [c for q in qs for c in (q, q + "_quality")]
    rows = table["rows"]
    t = pq.read_table(path)
    assert t.column_names == names, (name, t.column_names, names)
    assert t.num_rows == len(rows), (name, t.num_rows, len(rows))
    for q, unit, standard_name in table["quantities"]:
        md = t.schema.field(q).metadata or {}
        assert md.get(b"unit") == (unit.encode() if unit else None), (q, md)
        assert md.get(b"standard_name") == (standard_name.encode() if standard_name else None), (q, md)
    cols = {}
    for n in names:
        c = t.column(n)
        if pa.types.is_dictionary(c.type):
            c = c.cast(c.type.value_type)
        if pa.types.is_timestamp(c.type):
            c = c.cast(pa.int64())
        cols[n] = c.to_pylist()
    for i, r in enumerate(rows):
        got = [cols["time"][i], cols["time_source"][i], cols["mono_ns"][i], cols["boot"][i]]
        for q in qs:
            v = cols[q][i]
            got.append([None if v is None else bits(v), cols[q + "_quality"][i]])
            values += v is not None
        if got != r:
            raise SystemExit(f"pyarrow {name} row {i}: {got} != {r}")

    df = pd.read_parquet(path)
    assert len(df) == len(rows), (name, len(df), len(rows))
    times = [None if pd.isna(x) else x.value for x in df["time"]]
    mono = df["mono_ns"].tolist()
    for i, r in enumerate(rows):
        assert times[i] == r[0] and mono[i] == r[2], (name, i, times[i], mono[i], r)
    for k, q in enumerate(qs):
        col = df[q].tolist()
        for i, r in enumerate(rows):
            want = r[4 + k][0]
            got = None if pd.isna(col[i]) else bits(col[i])
            assert got == want, (name, q, i, got, want)
print(values, "values")
"#;

#[test]
fn the_wide_flight_reads_back_one_table_per_sensor_with_units_per_column() {
    let Some(python) = python::readers() else {
        return;
    };
    let source = eventful_flight();
    let ds = Dataset::open(&source, NODE, Selection::default(), options(Layout::Wide)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let quantities = aloft_dataset::formats::csv::quantities_by_sensor(&ds).unwrap();
    let mut files = serde_json::Map::new();
    for (sensor, qs) in &quantities {
        files.insert(
            format!("aloft-glider-1_{sensor}.parquet"),
            json!({
                "quantities": qs.iter().map(|q| json!([q.to_string(), q.unit(), q.cf_standard_name()])).collect::<Vec<_>>(),
                "rows": [],
            }),
        );
    }
    ds.instants(&mut |i| {
        let table = files
            .get_mut(&format!("aloft-glider-1_{}.parquet", i.sensor))
            .unwrap();
        let mut row = vec![
            json!(i.utc_ns),
            json!(source_name(i.time_source)),
            json!(i.mono_ns),
            json!(i.boot.map(|b| hex(&b.0))),
        ];
        for q in &quantities[&i.sensor] {
            row.push(match i.get(*q) {
                Some((v, f)) => json!([bits(v), aloft_dataset::formats::csv::quality_text(f)]),
                None => json!([null, null]),
            });
        }
        table["rows"]
            .as_array_mut()
            .unwrap()
            .push(Value::Array(row));
        Ok(())
    })
    .unwrap();
    let rows = ds.stats().rows;
    let expected = dir.path().join("expected.json");
    std::fs::write(&expected, json!({ "files": files }).to_string()).unwrap();
    let out = dir.path().join("out");
    let written = export_to(&ds, &out);
    let mut names: Vec<&str> = written.iter().map(|f| f.path.as_str()).collect();
    names.pop();
    assert_eq!(
        names,
        files.keys().map(String::as_str).collect::<Vec<_>>(),
        "one file per sensor"
    );
    assert!(names.len() >= 4, "{names:?}");
    let said = python::run(&python, READ_WIDE, &[out.as_os_str(), expected.as_os_str()]);
    assert_eq!(said.stdout.trim(), format!("{rows} values"));
}

#[test]
fn the_same_records_give_the_same_bytes() {
    let source = eventful_flight();
    for layout in [Layout::Tidy, Layout::Wide] {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let ds = Dataset::open(&source, NODE, Selection::default(), options(layout)).unwrap();
        let fa = export_to(&ds, a.path());
        let ds = Dataset::open(&source, NODE, Selection::default(), options(layout)).unwrap();
        let fb = export_to(&ds, b.path());
        assert_eq!(fa, fb, "{layout:?}");
    }
}

#[test]
fn a_disk_that_fills_while_writing_gives_an_error_and_leaves_no_file() {
    let parent = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(parent.path(), "256k") else {
        assert!(
            std::env::var_os("ALOFT_REQUIRE_TOOLS").is_none(),
            "a tmpfs could not be mounted (root is needed)"
        );
        eprintln!("skipped: could not mount a tmpfs (not root?)");
        return;
    };
    // About 400 000 readings: several MB of Parquet, far more than the disk holds.
    let source = flight(FlightOptions {
        duration_s: 1800.0,
        gps_hz: 5.0,
        static_hz: 10.0,
        pitot_hz: 10.0,
        ..FlightOptions::default()
    });
    for layout in [Layout::Tidy, Layout::Wide] {
        let dir = fs.path().join(layout.name());
        let ds = Dataset::open(&source, NODE, Selection::default(), options(layout)).unwrap();
        let mut out = DirOutput::new(&dir, false).unwrap();
        let e = export(&ds, Format::Parquet, &mut out).unwrap_err();
        drop(out);
        let text = e.to_string();
        assert!(
            text.contains("No space left on device"),
            "{layout:?}: {text}"
        );
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{layout:?} left {left:?}");
    }
}

mod any_selection {
    //! Whatever is selected, Parquet holds as many rows as CSV, table by table.

    use std::path::Path;
    use std::sync::OnceLock;

    use aloft_dataset::{
        Dataset, DirOutput, Format, Layout, Resample, Selection, export, source::MemorySource,
    };
    use aloft_protocol::Quantity;
    use aloft_test_support::flight::FlightOptions;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use proptest::prelude::*;

    fn source() -> &'static MemorySource {
        static SOURCE: OnceLock<MemorySource> = OnceLock::new();
        SOURCE.get_or_init(super::eventful_flight)
    }

    const SENSORS: [&str; 4] = ["gps", "static", "pitot", "cosmic"];

    fn quantities() -> &'static [Quantity] {
        static QUANTITIES: OnceLock<Vec<Quantity>> = OnceLock::new();
        QUANTITIES.get_or_init(|| {
            let ds = Dataset::open(
                source(),
                super::NODE,
                Selection::default(),
                super::options(Layout::Tidy),
            )
            .unwrap();
            ds.rows(&mut |_| Ok(())).unwrap();
            let mut qs: Vec<Quantity> = ds
                .stats()
                .counts
                .values()
                .flat_map(|q| q.keys().copied())
                .collect();
            qs.sort();
            qs.dedup();
            qs
        })
    }

    /// Rows of each table of an export: file stem (without extension) and its rows, read
    /// back by the parquet crate's row reader or the csv crate.
    fn rows_per_table(dir: &Path, format: Format) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| !p.to_string_lossy().ends_with(".sidecar.json"))
            .map(|p| {
                let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
                let rows = match format {
                    Format::Csv => csv::ReaderBuilder::new()
                        .from_path(&p)
                        .unwrap()
                        .records()
                        .try_fold(0u64, |n, r| r.map(|_| n + 1))
                        .unwrap(),
                    _ => {
                        let reader =
                            SerializedFileReader::new(std::fs::File::open(&p).unwrap()).unwrap();
                        let stated = reader.metadata().file_metadata().num_rows();
                        let read = reader
                            .get_row_iter(None)
                            .unwrap()
                            .try_fold(0u64, |n, r| r.map(|_| n + 1))
                            .unwrap();
                        assert_eq!(stated, read as i64, "{}", p.display());
                        read
                    }
                };
                (stem, rows)
            })
            .collect();
        out.sort();
        out
    }

    fn exported(
        selection: &Selection,
        layout: Layout,
        format: Format,
    ) -> (Vec<(String, u64)>, u64) {
        let dir = tempfile::tempdir().unwrap();
        let ds = Dataset::open(
            source(),
            super::NODE,
            selection.clone(),
            super::options(layout),
        )
        .unwrap();
        let mut out = DirOutput::new(dir.path(), false).unwrap();
        export(&ds, format, &mut out).unwrap();
        out.commit().unwrap();
        (rows_per_table(dir.path(), format), ds.stats().rows)
    }

    fn selection() -> impl Strategy<Value = Selection> {
        let start = FlightOptions::default().start_utc_ns;
        let s = 1_000_000_000i64;
        (
            proptest::sample::subsequence(SENSORS.to_vec(), 0..=SENSORS.len()),
            proptest::sample::subsequence(quantities().to_vec(), 0..=4),
            proptest::option::of((-30i64..330, 1i64..400)),
            proptest::option::of((any::<bool>(), 1u64..30)),
        )
            .prop_map(move |(sensors, quantities, range, resample)| Selection {
                sensors: sensors.into_iter().map(str::to_owned).collect(),
                quantities,
                from_utc_ns: range.map(|(from, _)| start + from * s),
                to_utc_ns: range.map(|(from, len)| start + (from + len) * s),
                resample: resample.map(|(mean, interval)| {
                    let interval_ns = interval * 1_000_000_000;
                    if mean {
                        Resample::Mean { interval_ns }
                    } else {
                        Resample::Decimate { interval_ns }
                    }
                }),
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn parquet_holds_as_many_rows_as_csv_table_by_table(selection in selection()) {
            for layout in [Layout::Tidy, Layout::Wide] {
                let (parquet, rows) = exported(&selection, layout, Format::Parquet);
                let (csv, csv_rows) = exported(&selection, layout, Format::Csv);
                prop_assert_eq!(&parquet, &csv, "{:?}", layout);
                prop_assert_eq!(rows, csv_rows);
                if layout == Layout::Tidy {
                    prop_assert_eq!(parquet.iter().map(|(_, n)| n).sum::<u64>(), rows);
                }
            }
        }
    }
}
