//! The open-data package of the simulated flight: `frictionless validate` passes on it, its
//! `datapackage.json` lists every file with the checksum it has, the README names every
//! file, and the package's sidecar lists every file.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use aloft_dataset::source::MemorySource;
use aloft_dataset::{
    Completeness, Dataset, DirOutput, ExportOptions, FileEntry, Format, Selection, export,
};
use aloft_protocol::{Record, StoreEpoch};
use aloft_test_support::flight::{FlightOptions, FlightRecords};
use aloft_test_support::python;
use serde_json::Value;
use sha2::{Digest, Sha256};

const NODE: &str = "glider-1";

fn eventful_flight() -> MemorySource {
    let epoch = StoreEpoch([7; 16]);
    let records: Vec<(StoreEpoch, u64, Record)> = FlightRecords::new(FlightOptions {
        duration_s: 300.0,
        pitot_outage_at_s: Some(100.0),
        uncorrelated_boot_s: Some(10.0),
        ..FlightOptions::default()
    })
    .enumerate()
    .map(|(i, r)| (epoch, i as u64, r))
    .collect();
    let completeness = Completeness {
        origin: "hub".to_owned(),
        ..Completeness::default()
    };
    MemorySource::new(records, completeness)
}

fn package(dir: &Path) -> (Vec<FileEntry>, u64) {
    let source = eventful_flight();
    let options = ExportOptions::new(NODE, 1_790_000_000_000_000_000);
    let ds = Dataset::open(&source, NODE, Selection::default(), options).unwrap();
    let mut out = DirOutput::new(dir, false).unwrap();
    let files = export(&ds, Format::Package, &mut out).unwrap();
    out.commit().unwrap();
    (files, ds.stats().rows)
}

/// Every file under `dir`, relative, `/`-separated, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn sha256(path: &Path) -> String {
    let digest = Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn frictionless(python: &Path) -> PathBuf {
    python.parent().unwrap().join("frictionless")
}

#[test]
fn frictionless_validates_the_package_and_its_tables() {
    let Some(python) = python::readers() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (files, _) = package(dir.path());
    let out = Command::new(frictionless(&python))
        .arg("validate")
        .arg("--json")
        .arg("datapackage.json")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "frictionless validate failed:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["valid"], Value::Bool(true), "{report:#}");
    // Every CSV and Parquet file was read as a table, with rows.
    let tasks = report["tasks"].as_array().unwrap();
    let mut read: Vec<&str> = tasks
        .iter()
        .filter(|t| t["type"] == "table")
        .inspect(|t| assert!(t["stats"]["rows"].as_u64().unwrap() > 0, "{t:#}"))
        .map(|t| t["place"].as_str().unwrap())
        .collect();
    read.sort_unstable();
    let mut tables: Vec<&str> = files
        .iter()
        .filter(|f| matches!(f.format.as_str(), "csv" | "parquet"))
        .map(|f| f.path.as_str())
        .collect();
    tables.sort_unstable();
    assert!(tables.len() >= 5, "{tables:?}");
    assert_eq!(read, tables);
}

#[test]
fn the_package_lists_every_file_with_its_checksum_and_the_readme_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let (files, rows) = package(dir.path());
    let on_disk = tree(dir.path());
    let sidecar = "aloft-glider-1.sidecar.json";

    // The export's list is what is on disk, the package's sidecar last.
    let mut listed: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
    assert_eq!(listed.last().map(String::as_str), Some(sidecar));
    listed.sort();
    assert_eq!(listed, on_disk);

    // Every other format is in the package, in its own folder, both layouts where it has
    // two.
    for format in Format::ALL.iter().filter(|f| **f != Format::Package) {
        let folder = format!("{}/", format.name());
        assert!(
            on_disk
                .iter()
                .any(|p| p.starts_with(&folder) && p.ends_with(".sidecar.json")),
            "{folder}: {on_disk:?}"
        );
        if format.has_layouts() {
            let wide = format!("{folder}wide/");
            assert!(
                on_disk.iter().any(|p| p.starts_with(&wide)),
                "{wide}: {on_disk:?}"
            );
        }
    }

    // datapackage.json: every file but itself and the sidecar written after it, each with
    // the hash (and, but for Parquet, the size) of the file on disk.
    let descriptor: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("datapackage.json")).unwrap())
            .unwrap();
    let resources = descriptor["resources"].as_array().unwrap();
    let mut paths: Vec<&str> = resources
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    paths.sort_unstable();
    let expected: Vec<&str> = on_disk
        .iter()
        .map(String::as_str)
        .filter(|p| *p != "datapackage.json" && *p != sidecar)
        .collect();
    assert_eq!(paths, expected);
    let mut names: Vec<&str> = resources
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), resources.len(), "resource names are unique");
    for r in resources {
        let path = dir.path().join(r["path"].as_str().unwrap());
        assert_eq!(
            r["hash"].as_str().unwrap(),
            format!("sha256:{}", sha256(&path)),
            "{r:#}"
        );
        let size = std::fs::metadata(&path).unwrap().len();
        match r["format"].as_str().unwrap() {
            "parquet" => assert!(r.get("bytes").is_none(), "{r:#}"),
            _ => assert_eq!(r["bytes"].as_u64(), Some(size), "{r:#}"),
        }
        let tabular = matches!(r["format"].as_str(), Some("csv" | "parquet"));
        assert_eq!(r["schema"].is_object(), tabular, "{r:#}");
        assert_eq!(
            r["type"].as_str(),
            Some(if tabular { "table" } else { "file" })
        );
    }
    // Units on the wide tables' quantities, the licence, the coverage.
    let wide_gps: Vec<&Value> = resources
        .iter()
        .filter(|r| {
            let p = r["path"].as_str().unwrap();
            p.contains("/wide/") && p.contains("_gps.")
        })
        .collect();
    assert!(!wide_gps.is_empty(), "{paths:?}");
    for gps in wide_gps {
        let altitude = gps["schema"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "altitude_msl")
            .unwrap();
        assert_eq!(altitude["unit"], "m", "{gps:#}");
        assert_eq!(altitude["cf_standard_name"], "altitude", "{gps:#}");
    }
    assert_eq!(descriptor["licenses"][0]["name"], "CC-BY-4.0");
    assert!(descriptor["temporalCoverage"]["start"].is_string());
    assert_eq!(
        descriptor["spatialCoverage"]["bbox"]
            .as_array()
            .unwrap()
            .len(),
        4
    );

    // The README names every file.
    let readme = std::fs::read_to_string(dir.path().join("README.md")).unwrap();
    for p in &on_disk {
        assert!(readme.contains(&format!("`{p}`")), "README lacks {p}");
    }
    assert!(readme.contains(&format!("Readings: {rows}")), "{readme}");

    // The package's sidecar lists every file but itself.
    let doc: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(sidecar)).unwrap()).unwrap();
    assert_eq!(doc["format"], "package");
    assert_eq!(doc["totals"]["rows"].as_u64(), Some(rows));
    let mut in_sidecar: Vec<&str> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    in_sidecar.sort_unstable();
    let all_but_sidecar: Vec<&str> = on_disk
        .iter()
        .map(String::as_str)
        .filter(|p| *p != sidecar)
        .collect();
    assert_eq!(in_sidecar, all_but_sidecar);
}

#[test]
fn the_same_records_give_the_same_package_byte_for_byte() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (fa, _) = package(a.path());
    let (fb, _) = package(b.path());
    assert_eq!(fa, fb);
    for p in tree(a.path()) {
        assert_eq!(
            std::fs::read(a.path().join(&p)).unwrap(),
            std::fs::read(b.path().join(&p)).unwrap(),
            "{p}"
        );
    }
}

#[test]
fn a_package_that_fills_the_disk_fails_and_leaves_no_file() {
    let parent = tempfile::tempdir().unwrap();
    let Some(fs) = aloft_test_support::mounts::Tmpfs::mount(parent.path(), "256k") else {
        assert!(
            std::env::var_os("ALOFT_REQUIRE_TOOLS").is_none(),
            "a tmpfs could not be mounted (root is needed)"
        );
        eprintln!("skipped: could not mount a tmpfs (not root?)");
        return;
    };
    let source = eventful_flight();
    let options = ExportOptions::new(NODE, 1_790_000_000_000_000_000);
    let ds = Dataset::open(&source, NODE, Selection::default(), options).unwrap();
    let dir = fs.path().join("package");
    let mut out = DirOutput::new(&dir, false).unwrap();
    let e = export(&ds, Format::Package, &mut out).unwrap_err();
    drop(out);
    assert!(e.to_string().contains("No space left on device"), "{e}");
    assert_eq!(tree(&dir), Vec::<String>::new());
}
