//! Replays every committed fuzz input (the corpora and every crash input found) through the
//! fuzz targets' bodies: what the fuzzer once explored or broke stays tested on stable Rust.

use std::path::PathBuf;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn replay(target: &str, body: fn(&[u8])) {
    let mut count = 0;
    for dir in ["corpus", "regressions"] {
        let dir = fuzz_dir().join(dir).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("readable corpus directory").path();
            let data = std::fs::read(&path).expect("readable corpus file");
            let result = std::panic::catch_unwind(|| body(&data));
            assert!(result.is_ok(), "fuzz input {} fails", path.display());
            count += 1;
        }
    }
    // The corpora are committed: an empty one means they went missing.
    assert!(
        count >= 10,
        "only {count} inputs for {target} under {}",
        fuzz_dir().display()
    );
}

#[test]
fn nmea_corpus_replays_cleanly() {
    replay("nmea", aloft_sensors::fuzzing::nmea);
}

#[test]
fn ubx_corpus_replays_cleanly() {
    replay("ubx", aloft_sensors::fuzzing::ubx);
}

#[test]
fn cosmicwatch_corpus_replays_cleanly() {
    replay("cosmicwatch", aloft_sensors::fuzzing::cosmicwatch);
}

#[test]
fn pom_corpus_replays_cleanly() {
    replay("pom", aloft_sensors::fuzzing::pom);
}

#[test]
fn sps30_corpus_replays_cleanly() {
    replay("sps30", aloft_sensors::fuzzing::sps30);
}

#[test]
fn icm20948_corpus_replays_cleanly() {
    replay("icm20948", aloft_sensors::fuzzing::icm20948);
}

#[test]
fn sbs_corpus_replays_cleanly() {
    replay("sbs", aloft_sensors::fuzzing::sbs);
}
