//! `aloft-agent store dump` is an inspection: on a damaged store (a corrupt region, a torn
//! tail, a deleted segment, a leftover temporary file) it prints what is readable and leaves
//! every file byte-identical, also from a read-only mount.

#![allow(clippy::unwrap_used)] // A test harness: a failed setup step should stop the test loudly.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use aloft_protocol::{Quality, Quantity, Reading, Record, SensorId, Timestamp};
use aloft_store::{Outbox, StoreOptions};
use aloft_test_support::mounts::ReadOnlyBind;

fn reading(i: u64) -> Record {
    Record::Reading(Reading {
        sensor: SensorId(1),
        quantity: Quantity::AirPressure,
        time: Timestamp::monotonic(i * 1_000_000),
        value: i as f64,
        quality: Quality::GOOD,
    })
}

/// Every file of the directory and its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    names.sort();
    names
}

/// A store of 2000 readings in small segments, then damaged as an SD card would.
fn damaged_store(dir: &Path) {
    let mut options = StoreOptions::default();
    options.segment_bytes = 4096;
    let (mut outbox, _) = Outbox::open(dir, options).unwrap();
    for i in 0..2000 {
        outbox.append(&reading(i)).unwrap();
        if i % 100 == 99 {
            outbox.commit().unwrap();
        }
    }
    outbox.close().unwrap();
    let segs = segments(dir);
    assert!(segs.len() > 5);
    // Bit rot in the middle of the second segment.
    let mut bytes = std::fs::read(&segs[1]).unwrap();
    for b in &mut bytes[200..260] {
        *b ^= 0x5a;
    }
    std::fs::write(&segs[1], bytes).unwrap();
    // The fourth deleted, the newest cut mid-frame.
    std::fs::remove_file(&segs[3]).unwrap();
    let newest = segs.last().unwrap();
    let len = std::fs::metadata(newest).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(newest)
        .unwrap()
        .set_len(len / 2 + 3)
        .unwrap();
    std::fs::write(dir.join("cursor.tmp"), b"half a replace").unwrap();
}

fn dump(store: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_aloft-agent"))
        .args(["store", "dump", "--store"])
        .arg(store)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_dump_of_a_damaged_store_changes_no_file() {
    let dir = tempfile::tempdir().unwrap();
    damaged_store(dir.path());
    let before = snapshot(dir.path());
    let (ok, stdout, stderr) = dump(dir.path());
    assert!(ok, "the dump fails: {stderr}");
    let lines = stdout.lines().count();
    assert!(
        lines > 1000 && lines < 2000,
        "the readable records are printed: {lines}"
    );
    assert!(
        stderr.contains("missing"),
        "the damage is reported: {stderr}"
    );
    assert_eq!(
        snapshot(dir.path()),
        before,
        "the dump changed the store's files"
    );
    // Numbers go up in the dump: nothing read twice, no bad bytes printed as records.
    let seqs: Vec<u64> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));

    // The agent's own open records the damage afterwards, as before.
    let (outbox, report) = Outbox::open(dir.path(), StoreOptions::default()).unwrap();
    assert!(!report.missing.is_empty());
    drop(outbox);
}

#[test]
fn a_store_on_a_read_only_mount_dumps() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let at = dir.path().join("ro");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::create_dir_all(&at).unwrap();
    damaged_store(&store);
    let before = snapshot(&store);
    let Some(mount) = ReadOnlyBind::new(&store, &at) else {
        assert!(
            std::env::var_os("ALOFT_REQUIRE_TOOLS").is_none(),
            "a read-only bind mount could not be made (root is needed)"
        );
        eprintln!("store_dump_read_only: SKIPPED the read-only mount case: mounting needs root");
        return;
    };
    assert!(
        std::fs::write(at.join("probe"), b"x").is_err(),
        "the mount is read-only"
    );
    let (ok, stdout, stderr) = dump(&at);
    drop(mount);
    assert!(ok, "the dump fails on a read-only store: {stderr}");
    assert!(stdout.lines().count() > 1000);
    assert_eq!(snapshot(&store), before);
}
