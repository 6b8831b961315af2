//! Replays the committed inputs of the `detector_intake` fuzz target (its corpus and every
//! crash input found) through its body, `aloft_agent::sensor::detector::fuzz_intake`.
//!
//! The `seed-*` inputs are written by the real encoder (every message the front end sends,
//! a stream of them, the same cut in half, with a byte flipped, and noise between frames);
//! `ALOFT_WRITE_FUZZ_SEEDS=1` writes them again and leaves the fuzzer's finds alone.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use aloft_agent::sensor::detector::fuzz_intake;
use aloft_protocol::detector::{
    BootInfo, Channels, DETECTOR_PROTOCOL_VERSION, DetectorSettings, Event, EventBatch,
    FirmwareVersion, FromFrontEnd, Housekeeping, MAX_BATCH_EVENTS, MAX_FRAME_BYTES, Reply,
    ReplyBody, ResetCause, encode_frame,
};

fn target_dir(kind: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(kind)
        .join("detector_intake")
}

fn frame(message: &FromFrontEnd) -> Vec<u8> {
    let mut out = [0u8; MAX_FRAME_BYTES];
    let len = encode_frame(message, &mut out).unwrap();
    out[..len].to_vec()
}

fn messages() -> Vec<FromFrontEnd> {
    let settings = DetectorSettings {
        threshold_mv: 40,
        coincidence_window_ns: 200,
        housekeeping_interval_ms: 1_000,
        baud: 115_200,
    };
    let boot = |protocol_version, tick_hz| {
        FromFrontEnd::Boot(BootInfo {
            firmware: FirmwareVersion {
                major: 0,
                minor: 1,
                patch: 0,
            },
            protocol_version,
            reset_cause: ResetCause::Watchdog,
            boot_count: 3,
            serial: 0x1234_5678,
            tick_hz,
            settings,
        })
    };
    let mut events = heapless::Vec::new();
    for i in 0..MAX_BATCH_EVENTS {
        events
            .push(Event {
                delta_ticks: 1_000 * i as u32,
                channels: [Channels::A, Channels::B, Channels::BOTH][i % 3],
                pulse_a_mv: 50 + i as u16,
                pulse_b_mv: 60 + i as u16,
            })
            .unwrap();
    }
    vec![
        boot(DETECTOR_PROTOCOL_VERSION, 12_000_000),
        boot(DETECTOR_PROTOCOL_VERSION + 1, 12_000_000),
        boot(DETECTOR_PROTOCOL_VERSION, 0),
        FromFrontEnd::Events(EventBatch {
            first_event: 0,
            first_ticks: 5_000,
            events: events.clone(),
        }),
        FromFrontEnd::Events(EventBatch {
            first_event: u32::MAX - 3,
            first_ticks: u64::MAX - 10,
            events,
        }),
        FromFrontEnd::Housekeeping(Housekeeping {
            ticks: 12_000_000,
            interval_ticks: 12_000_000,
            hits_a: 30,
            hits_b: 28,
            coincidences: 11,
            dead_ticks: 1_200,
            temperature_centi_c: -1_250,
            events_total: 47,
            dropped_events_total: 2,
            rejected_frames_total: 1,
        }),
        FromFrontEnd::Housekeeping(Housekeeping {
            ticks: 0,
            interval_ticks: 0,
            hits_a: u32::MAX,
            hits_b: 0,
            coincidences: u32::MAX,
            dead_ticks: u32::MAX,
            temperature_centi_c: i16::MIN,
            events_total: 0,
            dropped_events_total: u32::MAX,
            rejected_frames_total: u32::MAX,
        }),
        FromFrontEnd::Reply(Reply {
            id: 7,
            body: ReplyBody::Pong { ticks: 99 },
        }),
        FromFrontEnd::Reply(Reply {
            id: 8,
            body: ReplyBody::Settings(settings),
        }),
    ]
}

/// The seeds: each message alone (split after its first byte), the whole stream, the
/// stream cut in half, with a byte flipped, and with noise between its frames.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    let mut stream = Vec::new();
    for (n, message) in messages().iter().enumerate() {
        let f = frame(message);
        let mut alone = vec![1u8];
        alone.extend(&f);
        seeds.push((format!("seed-message-{n}"), alone));
        stream.extend(f);
    }
    let mut whole = vec![40u8];
    whole.extend(&stream);
    seeds.push(("seed-stream".into(), whole.clone()));
    seeds.push(("seed-stream-cut".into(), whole[..whole.len() / 2].to_vec()));
    let mut flipped = whole.clone();
    let at = flipped.len() / 3;
    flipped[at] ^= 0x21;
    seeds.push(("seed-stream-flipped".into(), flipped));
    let mut noisy = vec![255u8, 0x13, 0x37, 0, 0xff, 0xfe];
    noisy.extend(&stream);
    noisy.extend([0x55; MAX_FRAME_BYTES * 2]);
    noisy.push(0);
    noisy.extend(frame(&messages()[0]));
    seeds.push(("seed-hostile-noise-and-overlong".into(), noisy));
    seeds
}

#[test]
fn detector_intake_corpus_replays_cleanly() {
    let corpus = target_dir("corpus");
    if std::env::var_os("ALOFT_WRITE_FUZZ_SEEDS").is_some() {
        std::fs::create_dir_all(&corpus).unwrap();
        for (name, data) in seeds() {
            std::fs::write(corpus.join(name), data).unwrap();
        }
    }
    // The seeds as written now run whether or not the committed files are current.
    for (name, data) in seeds() {
        let result = std::panic::catch_unwind(|| fuzz_intake(&data));
        assert!(result.is_ok(), "seed {name} fails");
    }
    let mut count = 0;
    for dir in [corpus, target_dir("regressions")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let result = std::panic::catch_unwind(|| fuzz_intake(&data));
            assert!(result.is_ok(), "fuzz input {} fails", path.display());
            count += 1;
        }
    }
    assert!(count >= 10, "only {count} committed inputs");
}
