//! What the read-back tests of the ICARTT, IGC, GeoJSON and KML exports share: the
//! simulated flight (with a pitot outage and an uncorrelated second boot) held in memory
//! as a hub holds it, an export of it into a directory, and the selection's instants as
//! the export library defines them (the values every file must carry).

#![allow(dead_code, clippy::unwrap_used)]

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use aloft_dataset::source::MemorySource;
use aloft_dataset::{
    Completeness, Dataset, DirOutput, ExportError, ExportOptions, FileEntry, Format, Instant,
    Selection, StoreDirSource, export,
};
use aloft_protocol::{Record, StoreEpoch};
use aloft_test_support::flight::{FlightOptions, FlightRecords};

/// The export's creation time in every test.
pub const CREATED_UTC_NS: i64 = 1_790_000_000_000_000_000;

/// The flight every test exports: 300 s, a 30 s pitot outage at 100 s, and a second boot
/// of 10 s of static readings that never gets a time correlation.
pub fn flight() -> FlightOptions {
    FlightOptions {
        duration_s: 300.0,
        pitot_outage_at_s: Some(100.0),
        uncorrelated_boot_s: Some(10.0),
        ..FlightOptions::default()
    }
}

/// The flight's records numbered as one store epoch holds them.
pub fn memory(opts: FlightOptions) -> MemorySource {
    let epoch = StoreEpoch([7; 16]);
    let records: Vec<(StoreEpoch, u64, Record)> = FlightRecords::new(opts)
        .enumerate()
        .map(|(i, r)| (epoch, i as u64, r))
        .collect();
    MemorySource::new(records, Completeness::default())
}

/// Options with the test's creation time.
pub fn options() -> ExportOptions {
    ExportOptions::new("glider-1", CREATED_UTC_NS)
}

/// An export of `source` in `format` into a new directory: the directory and its files.
pub fn export_to_dir(
    source: &MemorySource,
    format: Format,
    selection: Selection,
    options: ExportOptions,
) -> Result<(tempfile::TempDir, Vec<FileEntry>), ExportError> {
    let dir = tempfile::tempdir().unwrap();
    let ds = Dataset::open(source, "glider-1", selection, options)?;
    let mut out = DirOutput::new(dir.path(), false).unwrap();
    export(&ds, format, &mut out)?;
    let files = out.commit()?;
    Ok((dir, files))
}

/// Every instant of the selection, as the export library defines them.
pub fn instants(source: &MemorySource, selection: Selection) -> Vec<Instant> {
    let ds = Dataset::open(source, "glider-1", selection, options()).unwrap();
    let mut all = Vec::new();
    ds.instants(&mut |i| {
        all.push(i.clone());
        Ok(())
    })
    .unwrap();
    all
}

/// The path of `name` in `dir`.
pub fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// The files of a directory, sorted by name, with their bytes.
pub fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// The same flight written to a real store directory and exported from there gives the
/// same bytes as the export of the records held in memory (as the hub holds them).
pub fn store_export_equals_memory_export(format: Format) {
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
    let from_store = StoreDirSource::open(store.path()).unwrap();
    let mut held = Vec::new();
    aloft_dataset::RecordSource::for_each_record(&from_store, &mut |e, s, r| {
        held.push((e, s, r.clone()));
        ControlFlow::Continue(())
    })
    .unwrap();
    let memory = MemorySource::new(held, aloft_dataset::RecordSource::completeness(&from_store));
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for (source, dir) in [
        (&from_store as &dyn aloft_dataset::RecordSource, a.path()),
        (&memory as &dyn aloft_dataset::RecordSource, b.path()),
    ] {
        let ds = Dataset::open(source, "glider-1", Selection::default(), options()).unwrap();
        let mut out = DirOutput::new(dir, false).unwrap();
        export(&ds, format, &mut out).unwrap();
        out.commit().unwrap();
    }
    let (fa, fb) = (files(a.path()), files(b.path()));
    assert!(
        fa.len() >= 2,
        "{:?}",
        fa.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert_eq!(fa, fb, "{format:?}");
}

/// The sidecar's `readings_without_utc` of an export of the test flight in `format`:
/// (sensor, readings, exported) per entry.
pub fn without_utc_in_sidecar(format: Format) -> Vec<(String, u64, bool)> {
    let source = memory(flight());
    let (dir, files) = export_to_dir(&source, format, Selection::default(), options()).unwrap();
    let sidecar = files.last().unwrap();
    assert!(sidecar.path.ends_with(".sidecar.json"));
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(&sidecar.path)).unwrap()).unwrap();
    doc["readings_without_utc"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["sensor"].as_str().unwrap().to_owned(),
                w["readings"].as_u64().unwrap(),
                w["exported"].as_bool().unwrap(),
            )
        })
        .collect()
}
