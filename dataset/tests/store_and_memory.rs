//! An export from an agent's store directory equals the export of the same records held
//! elsewhere (the hub holds them the same way), and bad store directories are refused.

#![allow(clippy::unwrap_used)]

use std::ops::ControlFlow;

use aloft_dataset::source::MemorySource;
use aloft_dataset::{
    Completeness, Dataset, DirOutput, ExportOptions, Format, Layout, RecordSource, Selection,
    StoreDirSource, export,
};
use aloft_protocol::Record;
use aloft_store::{Outbox, StoreOptions};
use aloft_test_support::flight::{FlightOptions, FlightRecords};

fn store_with(dir: &std::path::Path, records: impl Iterator<Item = Record>) {
    let (mut outbox, _) = Outbox::open(dir, StoreOptions::default()).unwrap();
    for r in records {
        outbox.append(&r).unwrap();
    }
    outbox.commit().unwrap();
    outbox.close().unwrap();
}

fn flight() -> FlightOptions {
    FlightOptions {
        duration_s: 300.0,
        pitot_outage_at_s: Some(100.0),
        uncorrelated_boot_s: Some(10.0),
        ..FlightOptions::default()
    }
}

fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
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

fn export_to(source: &dyn RecordSource, layout: Layout, dir: &std::path::Path) {
    let mut options = ExportOptions::new("glider-1", 1_790_000_000_000_000_000);
    options.layout = layout;
    let ds = Dataset::open(source, "glider-1", Selection::default(), options).unwrap();
    let mut out = DirOutput::new(dir, false).unwrap();
    export(&ds, Format::Csv, &mut out).unwrap();
    out.commit().unwrap();
}

#[test]
fn a_store_directory_and_the_same_records_in_memory_export_the_same_csv() {
    let store = tempfile::tempdir().unwrap();
    store_with(store.path(), FlightRecords::new(flight()));
    let from_store = StoreDirSource::open(store.path()).unwrap();
    let mut held = Vec::new();
    from_store
        .for_each_record(&mut |e, s, r| {
            held.push((e, s, r.clone()));
            ControlFlow::Continue(())
        })
        .unwrap();
    let records: Vec<Record> = FlightRecords::new(flight()).collect();
    assert_eq!(
        held.iter().map(|(_, _, r)| r.clone()).collect::<Vec<_>>(),
        records
    );
    let memory = MemorySource::new(held, from_store.completeness());
    for layout in [Layout::Tidy, Layout::Wide] {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        export_to(&from_store, layout, a.path());
        export_to(&memory, layout, b.path());
        let (fa, fb) = (files(a.path()), files(b.path()));
        assert!(
            fa.len() >= 2,
            "{:?}",
            fa.iter().map(|f| &f.0).collect::<Vec<_>>()
        );
        assert_eq!(fa, fb, "{layout:?}");
    }
}

#[test]
fn a_directory_without_a_store_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"not a store").unwrap();
    let e = StoreDirSource::open(dir.path()).unwrap_err();
    assert!(e.to_string().contains("holds no Aloft store"), "{e}");
    let e = StoreDirSource::open(&dir.path().join("missing")).unwrap_err();
    assert!(e.to_string().contains("holds no Aloft store"), "{e}");
    let _ = Completeness::default();
}
