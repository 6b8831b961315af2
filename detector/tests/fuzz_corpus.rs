//! Replays every committed input of the `detector_requests` fuzz target (its corpus and
//! every crash input found) through the target's body, so what the fuzzer explored or
//! broke stays tested on stable Rust.
//!
//! The seeds (every request from the real encoder, with and without the fault hook, cut,
//! flipped, flooded, overlong and noisy ones) are written by
//! `ALOFT_WRITE_FUZZ_SEEDS=1 cargo test -p aloft-detector --test fuzz_corpus`, which
//! overwrites the `seed-*` files and leaves what the fuzzer found alone.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use aloft_protocol::detector::{Command, MAX_FRAME_BYTES, ToFrontEnd, encode_frame};

const TARGET: &str = "detector_requests";

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn frame(id: u16, command: Command) -> Vec<u8> {
    let mut out = [0u8; MAX_FRAME_BYTES];
    let len = encode_frame(&ToFrontEnd { id, command }, &mut out).unwrap();
    out[..len].to_vec()
}

/// The seeds: a mode byte (bit 0 the fault hook, the rest ticks per byte) and the bytes.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let commands = [
        ("ping", Command::Ping),
        ("threshold", Command::SetThreshold { mv: 45 }),
        (
            "threshold-out-of-range",
            Command::SetThreshold { mv: u16::MAX },
        ),
        ("window", Command::SetCoincidenceWindow { ns: 250 }),
        ("housekeeping", Command::SetHousekeepingInterval { ms: 100 }),
        ("settings", Command::GetSettings),
        ("reset", Command::Reset),
        ("stall", Command::Stall),
    ];
    let mut seeds = Vec::new();
    for (i, (name, command)) in commands.into_iter().enumerate() {
        let bytes = frame(i as u16, command);
        for (mode, hook) in [(0x10u8, "plain"), (0x11, "hook")] {
            let mut seed = vec![mode];
            seed.extend(&bytes);
            seeds.push((format!("seed-{name}-{hook}"), seed));
        }
        let mut cut = vec![0x20];
        cut.extend(&bytes[..bytes.len() / 2]);
        cut.push(0);
        cut.extend(&bytes);
        seeds.push((format!("seed-{name}-cut"), cut));
        let mut flipped = vec![0x02];
        flipped.extend(&bytes);
        flipped[2] ^= 0x40;
        flipped.extend(frame(0xFFFF, Command::Ping));
        seeds.push((format!("seed-{name}-flipped"), flipped));
    }
    let mut flood = vec![0x00];
    for id in 0..40 {
        flood.extend(frame(id, Command::GetSettings));
    }
    seeds.push(("seed-flood".into(), flood));
    let mut overlong = vec![0x7E];
    overlong.extend([0x5A; 2 * MAX_FRAME_BYTES]);
    overlong.push(0);
    overlong.extend(frame(1, Command::Ping));
    seeds.push(("seed-overlong".into(), overlong));
    let mut after_reset = vec![0x01];
    after_reset.extend(frame(1, Command::Reset));
    after_reset.extend(frame(2, Command::Ping));
    after_reset.extend(frame(3, Command::Stall));
    seeds.push(("seed-after-reset".into(), after_reset));
    seeds
}

#[test]
fn detector_requests_corpus_replays_cleanly() {
    let corpus = fuzz_dir().join("corpus").join(TARGET);
    if std::env::var_os("ALOFT_WRITE_FUZZ_SEEDS").is_some() {
        std::fs::create_dir_all(&corpus).unwrap();
        for (name, bytes) in seeds() {
            std::fs::write(corpus.join(name), bytes).unwrap();
        }
    }
    let mut count = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(dir).join(TARGET)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let result = std::panic::catch_unwind(|| aloft_detector::fuzzing::requests(&data));
            assert!(result.is_ok(), "fuzz input {} fails", path.display());
            count += 1;
        }
    }
    // The corpus is committed: fewer inputs than seeds means it went missing.
    assert!(count >= seeds().len(), "only {count} inputs for {TARGET}");
}

#[test]
fn the_seeds_are_the_committed_ones() {
    let corpus = fuzz_dir().join("corpus").join(TARGET);
    for (name, bytes) in seeds() {
        let committed = std::fs::read(corpus.join(&name)).unwrap();
        assert!(
            committed == bytes,
            "{name} differs: regenerate with ALOFT_WRITE_FUZZ_SEEDS=1"
        );
    }
}
