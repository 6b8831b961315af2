//! Replays every committed fuzz input of the protocol's targets (`fuzz/corpus/TARGET/` and
//! `fuzz/regressions/TARGET/`) through the targets' bodies in
//! `aloft_protocol::sync::fuzzing`: what the fuzzer once explored or broke stays tested on
//! stable Rust. A counting allocator holds each input to a bound on the memory the decoders
//! allocate (Rust's heap; zstd's own C allocations are bounded by the window cap the batch
//! decoder sets and checked by `-malloc_limit_mb` under `cargo fuzz`).
//!
//! The seeds (valid messages and batches from the real encoders, cut and flipped ones, and
//! hostile ones: huge length prefixes, decompression bombs) are written by
//! `ALOFT_WRITE_FUZZ_SEEDS=1 cargo test -p aloft-protocol --test fuzz_corpus`, which adds
//! or overwrites the `seed-*` files and leaves what the fuzzer found alone.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;

use aloft_protocol::sync::batch::{DEFAULT_BATCH_LIMITS, encode_batch};
use aloft_protocol::sync::evolution::V1_QUANTITIES;
use aloft_protocol::sync::{
    BacklogReport, Batch, BatchEncoding, Command, CommandAction, CommandOutcome, DesiredSensorSpec,
    DesiredSpec, Downlink, GnssModel, Hello, LiveUpdate, LogBatch, LogLine, NodeHealth, Observed,
    ObservedSensor, PROTOCOL_VERSION, RefusalCode, SensorReport, SensorTunables, TunableValue,
    Uplink, Welcome, fuzzing,
};
use aloft_protocol::{
    BootId, ExtensionRecord, Quality, Quantity, Reading, Record, SensorId, SensorState, StoreEpoch,
    Timestamp,
};

// ---------------------------------------------------------------------------------------
// Allocation accounting, per thread (the harness runs tests on several threads).

struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn grew(size: usize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get().saturating_add(size);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn shrank(size: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(size)));
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counters only
// observe the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on as it is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            shrank(layout.size());
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most a body may allocate over what was live before it, whatever the input: the
/// batch decoder's 16 MiB inflate cap, the entries it decodes to, and the body's own round
/// trip through both encodings. A decoder that trusted a length prefix would ask for
/// gigabytes.
const MAX_ALLOCATED: usize = 160 << 20;

/// Runs `body` on `data`, returning the peak of bytes it allocated on this thread.
fn peak_allocation(body: fn(&[u8]), data: &[u8]) -> usize {
    let before = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(before));
    body(data);
    PEAK.with(Cell::get).saturating_sub(before)
}

// ---------------------------------------------------------------------------------------
// Replay.

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn replay(target: &str, body: fn(&[u8])) {
    if std::env::var_os("ALOFT_WRITE_FUZZ_SEEDS").is_some() {
        write_seeds(target);
    }
    let mut count = 0;
    let mut largest = (0, PathBuf::new());
    for dir in ["corpus", "regressions"] {
        let dir = fuzz_dir().join(dir).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("readable corpus directory").path();
            let data = std::fs::read(&path).expect("readable corpus file");
            let result = std::panic::catch_unwind(|| peak_allocation(body, &data));
            match result {
                Ok(peak) => {
                    assert!(
                        peak <= MAX_ALLOCATED,
                        "fuzz input {} allocates {peak} bytes",
                        path.display()
                    );
                    if peak > largest.0 {
                        largest = (peak, path.clone());
                    }
                }
                Err(_) => panic!("fuzz input {} fails", path.display()),
            }
            count += 1;
        }
    }
    eprintln!(
        "{target}: {count} inputs, the most allocated {} bytes ({})",
        largest.0,
        largest.1.display()
    );
    // The corpora are committed: an empty one means they went missing.
    assert!(
        count >= 10,
        "only {count} inputs for {target} under {}",
        fuzz_dir().display()
    );
}

#[test]
fn batch_corpus_replays_cleanly() {
    replay("batch", fuzzing::batch);
}

#[test]
fn uplink_corpus_replays_cleanly() {
    replay("uplink", fuzzing::uplink);
}

#[test]
fn downlink_corpus_replays_cleanly() {
    replay("downlink", fuzzing::downlink);
}

#[test]
fn the_allocation_bound_catches_a_decoder_that_trusts_a_length() {
    // The accounting itself: a body that reserves what an input claims is caught.
    fn trusting(data: &[u8]) {
        let claimed = data.iter().fold(0usize, |n, &b| n << 8 | usize::from(b));
        let v: Vec<u8> = Vec::with_capacity(claimed);
        std::hint::black_box(v);
    }
    assert!(peak_allocation(trusting, &[0x10, 0, 0, 0]) > MAX_ALLOCATED);
    assert!(peak_allocation(trusting, &[0x10]) < 1024);
}

#[test]
fn hostile_seeds_are_refused_within_the_bound() {
    // Seeds whose whole point is to be refused: none of them may decode.
    for (name, data) in batch_seeds() {
        if name.starts_with("hostile") {
            let (&selector, payload) = data.split_first().expect("a selector byte");
            let encoding = if selector & 1 == 0 {
                BatchEncoding::Postcard
            } else {
                BatchEncoding::ColumnarZstd
            };
            assert!(
                aloft_protocol::sync::batch::decode_batch(encoding, payload, &DEFAULT_BATCH_LIMITS)
                    .is_err(),
                "{name} decodes"
            );
        }
    }
    for (name, data) in uplink_seeds() {
        if name.starts_with("hostile") {
            assert!(Uplink::decode(&data).is_err(), "{name} decodes");
        }
    }
    for (name, data) in downlink_seeds() {
        if name.starts_with("hostile") {
            assert!(Downlink::decode(&data).is_err(), "{name} decodes");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Seeds.

fn write_seeds(target: &str) {
    let seeds = match target {
        "batch" => batch_seeds(),
        "uplink" => uplink_seeds(),
        "downlink" => downlink_seeds(),
        _ => panic!("no seeds for {target}"),
    };
    let dir = fuzz_dir().join("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("create the corpus directory");
    for (name, data) in seeds {
        std::fs::write(dir.join(format!("seed-{name}")), data).expect("write a seed");
    }
}

fn leb128(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// Cut in half and with one byte flipped in the middle: near-valid inputs.
fn damaged(name: &str, data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if data.len() > 2 {
        out.push((format!("{name}-cut"), data[..data.len() / 2].to_vec()));
        let mut flipped = data.to_vec();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x5a;
        out.push((format!("{name}-flipped"), flipped));
    }
    out
}

fn batch_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for (case, entries) in common::vector_cases() {
        for (selector, encoding, label) in [
            (0u8, BatchEncoding::Postcard, "postcard"),
            (1u8, BatchEncoding::ColumnarZstd, "columnar"),
        ] {
            let payload = encode_batch(encoding, &entries).expect("the cases encode");
            let mut data = vec![selector];
            data.extend_from_slice(&payload);
            let name = format!("{case}-{label}");
            seeds.extend(damaged(&name, &data));
            // The same with the small limits (selector bit 1).
            let mut small = data.clone();
            small[0] |= 2;
            seeds.push((format!("{name}-small-limits"), small));
            seeds.push((name, data));
        }
    }
    // What a newer agent sends: quantity codes and a record kind this build does not know.
    let newer: Vec<(u64, Record)> = (0..40u64)
        .map(|i| {
            let record = match i % 3 {
                0 => Record::Reading(Reading {
                    quantity: Quantity::from_code(V1_QUANTITIES + (i % 7) as u16 * 1000),
                    ..reading()
                }),
                1 => Record::Extension(ExtensionRecord {
                    kind: (i % 5) as u16,
                    body: i.to_le_bytes().to_vec(),
                }),
                _ => Record::Reading(reading()),
            };
            (i * 2, record)
        })
        .collect();
    for (selector, encoding, label) in [
        (0u8, BatchEncoding::Postcard, "postcard"),
        (1u8, BatchEncoding::ColumnarZstd, "columnar"),
    ] {
        let mut data = vec![selector];
        data.extend(encode_batch(encoding, &newer).expect("the newer entries encode"));
        let name = format!("newer-version-{label}");
        seeds.extend(damaged(&name, &data));
        seeds.push((name, data));
    }
    // An extension record claiming a 2^62-byte body.
    let mut claims = vec![0u8];
    claims.extend(leb128(1));
    claims.extend(leb128(5)); // sequence number
    claims.extend(leb128(6)); // Record::Extension
    claims.extend(leb128(1)); // kind
    claims.extend(leb128(1 << 62)); // body length
    seeds.push(("hostile-extension-body-length".into(), claims));
    // Postcard: a count of u32::MAX entries, and one within the cap with nothing behind it.
    let mut huge_count = vec![0u8];
    huge_count.extend(leb128(u64::from(u32::MAX)));
    seeds.push(("hostile-postcard-count".into(), huge_count));
    let mut empty_count = vec![0u8];
    empty_count.extend(leb128(65_536));
    seeds.push(("hostile-postcard-count-no-entries".into(), empty_count));
    // A postcard entry whose descriptor claims 2^32 parameters and a 2^62-byte name.
    let mut claims = vec![0u8];
    claims.extend(leb128(1));
    claims.extend(leb128(5)); // sequence number
    claims.extend(leb128(4)); // Record::Descriptor
    claims.extend(leb128(1)); // sensor
    claims.extend(leb128(1 << 62)); // name length
    seeds.push(("hostile-postcard-string-length".into(), claims));
    // zstd: 64 MiB of zeros, streamed (no declared size) and declared.
    let zeros = vec![0u8; 64 << 20];
    let mut streamed = zstd::stream::write::Encoder::new(Vec::new(), 1).expect("zstd encoder");
    std::io::Write::write_all(&mut streamed, &zeros).expect("compress");
    let streamed = streamed.finish().expect("compress");
    let declared = zstd::bulk::compress(&zeros, 1).expect("compress");
    for (name, bomb) in [
        ("hostile-zstd-bomb-streamed", streamed),
        ("hostile-zstd-bomb-declared", declared),
    ] {
        let mut data = vec![1u8];
        data.extend(bomb);
        seeds.push((name.into(), data));
    }
    // A frame asking for a 32 MiB window with no content size.
    seeds.push((
        "hostile-zstd-window".into(),
        vec![1, 0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x78, 0x01, 0x00, 0x00],
    ));
    // Columns that claim 2^62 entries and a 2^62-byte column.
    let mut columns = leb128(1 << 62);
    columns.extend(leb128(0));
    columns.extend(leb128(1 << 62));
    let mut data = vec![1u8];
    data.extend(zstd::bulk::compress(&columns, 3).expect("compress"));
    seeds.push(("hostile-columns-counts".into(), data));
    seeds
}

fn reading() -> Reading {
    Reading {
        sensor: SensorId(2),
        quantity: Quantity::ALL[0],
        time: Timestamp::monotonic(7),
        value: f64::from_bits(0x7ff8_0000_dead_beef),
        quality: Quality::GOOD,
    }
}

fn uplink_messages() -> Vec<(&'static str, Uplink)> {
    let entries = common::flight();
    let payload = encode_batch(BatchEncoding::ColumnarZstd, &entries).expect("encodes");
    let first = entries.first().map_or(0, |(s, _)| *s);
    let last = entries.last().map_or(0, |(s, _)| *s);
    vec![
        (
            "hello",
            Uplink::Hello(Hello {
                protocol_version: PROTOCOL_VERSION,
                node: "glider-1".into(),
                epoch: StoreEpoch([3; 16]),
                boot: BootId([4; 16]),
                agent_version: "0.1.0".into(),
                first_unacked: 10,
                durable_end: 20,
            }),
        ),
        (
            "batch",
            Uplink::Batch(Batch {
                epoch: StoreEpoch([3; 16]),
                first,
                last,
                encoding: BatchEncoding::ColumnarZstd,
                payload,
            }),
        ),
        (
            "batch-postcard",
            Uplink::Batch(Batch {
                epoch: StoreEpoch([3; 16]),
                first: 1000,
                last: 2000,
                encoding: BatchEncoding::Postcard,
                payload: encode_batch(BatchEncoding::Postcard, &common::every_kind())
                    .expect("encodes"),
            }),
        ),
        (
            "live",
            Uplink::Live(LiveUpdate {
                time: Timestamp::monotonic(9),
                readings: vec![reading(), reading()],
                sensors: vec![SensorReport {
                    sensor: SensorId(2),
                    name: "static".into(),
                    kind: "ms5611".into(),
                    state: SensorState::Running,
                    reason: "ok".into(),
                    restarts: 1,
                    last_restart: Some((Timestamp::monotonic(3), "operator".into())),
                    last_error: Some("timeout".into()),
                    interval_ms: Some(100),
                    enabled: true,
                    readings: 99,
                }],
                backlog: BacklogReport {
                    records: 5,
                    bytes: 200,
                    oldest_age_s: Some(1.5),
                },
            }),
        ),
        ("ping", Uplink::Ping { nonce: u64::MAX }),
        ("pong", Uplink::Pong { nonce: 2 }),
        ("command-ack", Uplink::CommandAck { id: "c1".into() }),
        (
            "command-result",
            Uplink::CommandResult {
                id: "c1".into(),
                outcome: CommandOutcome::Failed {
                    message: "sensor not found".into(),
                },
            },
        ),
        (
            "command-expired",
            Uplink::CommandResult {
                id: "c2".into(),
                outcome: CommandOutcome::Expired,
            },
        ),
        (
            "observed",
            Uplink::Observed(Observed {
                sensors: vec![ObservedSensor {
                    name: "gps".into(),
                    observed_generation: 4,
                    refused: Some("interval below 100 ms".into()),
                }],
                tunables: vec![],
            }),
        ),
        (
            "logs",
            Uplink::Logs(LogBatch {
                request: 7,
                lines: vec![LogLine {
                    time: Timestamp::monotonic(1),
                    level: "WARN".into(),
                    sensor: Some("gps".into()),
                    message: "Sensor restarted.".into(),
                }],
            }),
        ),
        (
            "health",
            Uplink::Health(NodeHealth {
                time: Timestamp::monotonic(3),
                clock_trusted: Some(true),
                store_bytes: 1 << 20,
                store_max_bytes: 1 << 30,
                store_policy: "drop-oldest".into(),
                gnss_models: vec![GnssModel {
                    sensor: SensorId(0),
                    code: 7,
                }],
                power: None,
            }),
        ),
    ]
}

fn uplink_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for (name, message) in uplink_messages() {
        let bytes = message.encode();
        seeds.extend(damaged(name, &bytes));
        seeds.push((name.to_owned(), bytes));
    }
    // A hello of a future version with a body this build cannot read.
    let mut future = leb128(0);
    future.extend(leb128(u64::from(u16::MAX)));
    future.extend([0xff; 8]);
    seeds.push(("future-hello".into(), future));
    // Live: a readings vector claiming 2^32 entries.
    let mut live = leb128(2);
    live.extend(leb128(7)); // time.mono_ns
    live.push(0); // utc_ns: None
    live.extend(leb128(0)); // source
    live.extend(leb128(u64::from(u32::MAX)));
    seeds.push(("hostile-live-vector-length".into(), live));
    // A command ack whose id claims 2^62 bytes.
    let mut ack = leb128(5);
    ack.extend(leb128(1 << 62));
    seeds.push(("hostile-string-length".into(), ack));
    // A batch whose payload claims 2^32 bytes.
    let mut batch = leb128(1);
    batch.extend([3; 16]);
    batch.extend(leb128(1));
    batch.extend(leb128(2));
    batch.extend(leb128(1));
    batch.extend(leb128(u64::from(u32::MAX)));
    seeds.push(("hostile-payload-length".into(), batch));
    // An overlong varint variant index and an unknown variant.
    seeds.push(("hostile-overlong-varint".into(), vec![0xff; 11]));
    seeds.push(("hostile-unknown-variant".into(), leb128(200)));
    seeds
}

fn downlink_messages() -> Vec<(&'static str, Downlink)> {
    vec![
        (
            "welcome",
            Downlink::Welcome(Welcome {
                protocol_version: PROTOCOL_VERSION,
                epoch: StoreEpoch([3; 16]),
                watermark: Some(41),
                server_utc_ns: 1_780_000_000_000_000_000,
            }),
        ),
        (
            "welcome-new-epoch",
            Downlink::Welcome(Welcome {
                protocol_version: PROTOCOL_VERSION,
                epoch: StoreEpoch([9; 16]),
                watermark: None,
                server_utc_ns: i64::MIN,
            }),
        ),
        (
            "ack",
            Downlink::Ack {
                epoch: StoreEpoch([3; 16]),
                watermark: u64::MAX,
            },
        ),
        (
            "refused",
            Downlink::Refused {
                code: RefusalCode::TooLarge,
                message: "batch over the cap".into(),
            },
        ),
        ("ping", Downlink::Ping { nonce: 1 }),
        ("pong", Downlink::Pong { nonce: 2 }),
        (
            "desired",
            Downlink::Desired(DesiredSpec {
                sensors: vec![
                    DesiredSensorSpec {
                        name: "gps".into(),
                        generation: 3,
                        interval_ms: Some(200),
                        enabled: Some(true),
                    },
                    DesiredSensorSpec {
                        name: "static".into(),
                        generation: 1,
                        interval_ms: None,
                        enabled: None,
                    },
                ],
                tunables: vec![SensorTunables {
                    name: "static".into(),
                    tunables: vec![("pressure_oversampling".into(), TunableValue::Integer(8))],
                }],
                power_overrides: Vec::new(),
            }),
        ),
        (
            "command",
            Downlink::Command(Command {
                id: "c1".into(),
                expires_utc_ns: 1_780_003_600_000_000_000,
                action: CommandAction::RestartSensor {
                    sensor: "gps".into(),
                    hard: true,
                },
            }),
        ),
        (
            "fetch-logs",
            Downlink::FetchLogs {
                request: 7,
                sensor: Some("gps".into()),
                max_lines: 500,
            },
        ),
    ]
}

fn downlink_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for (name, message) in downlink_messages() {
        let bytes = message.encode();
        seeds.extend(damaged(name, &bytes));
        seeds.push((name.to_owned(), bytes));
    }
    // Desired state claiming 2^32 sensors.
    let mut desired = leb128(5);
    desired.extend(leb128(u64::from(u32::MAX)));
    seeds.push(("hostile-desired-length".into(), desired));
    // A command whose sensor name claims 2^62 bytes.
    let mut command = leb128(6);
    command.extend(leb128(2));
    command.extend(*b"c1");
    command.extend(leb128(10));
    command.extend(leb128(0));
    command.extend(leb128(1 << 62));
    seeds.push(("hostile-sensor-name-length".into(), command));
    // One byte over the message cap.
    let mut over = Downlink::Ping { nonce: 1 }.encode();
    over.resize(aloft_protocol::sync::MAX_MESSAGE_BYTES + 1, 0);
    seeds.push(("hostile-over-the-cap".into(), over));
    seeds.push(("hostile-overlong-varint".into(), vec![0xff; 11]));
    seeds
}
