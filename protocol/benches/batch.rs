//! `cargo bench -p aloft-protocol --features sync --bench batch`: the batch codec's
//! candidates on the simulated flight's records. Prints `NAME VALUE UNIT` lines; asserts
//! nothing about time (speed figures are for the decision doc, not for tests).
//!
//! The records: `data/sim-flight.postcard.deflate`, 150 s of what `aloft-agent run` with
//! deploy/examples/sim.toml (seed 7, from 1800 s into the flight) put in its store: every
//! reading the real drivers produced from the simulators, with their datasheet-level noise
//! and the agent's real timestamps, plus its boot, descriptor, status and time-correlation
//! records. To record it again:
//!
//! ```text
//! aloft-agent run --config sim.toml          # for 150 s, then Ctrl-C
//! aloft-agent store dump --store STORE > dump.jsonl
//! cargo bench -p aloft-protocol --features sync --bench batch -- --from-dump dump.jsonl
//! ```
//!
//! For every candidate: bytes of payload per reading, batches of `BATCH` entries (and, for
//! the chosen codec, other batch sizes), encode and decode speed in readings per CPU second
//! of one core (the bench thread's CPU time, not wall time: the machine is shared), and an
//! estimate of the bytes on the wire per reading (payload, batch message, WebSocket header,
//! TLS record overhead and the hub's ack) beside the same readings as
//! KubeEdge-style JSON messages, one per reading.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use aloft_protocol::Record;
use aloft_protocol::sync::batch::{
    BatchEncoding, DEFAULT_BATCH_LIMITS, columnar_bytes, decode_batch, encode_batch,
};

#[path = "common/kubeedge.rs"]
mod kubeedge;
use kubeedge::kubeedge_json_message;

/// Entries per batch: about 2.5 s of the flight, what a drain sends per message.
const BATCH: usize = 1_000;
/// Repeat timed runs until at least this long, for a stable figure.
const MIN_TIMED_S: f64 = 0.3;

/// Bytes each batch message adds around its payload on the wire: the Batch message's other
/// fields (variant, epoch 16, first and last as varints, encoding, payload length: ~28),
/// the WebSocket header of a masked client frame (8), the TLS 1.3 record overhead for a
/// payload under 16 KiB (5 header + 1 type + 16 tag = 22).
const BATCH_OVERHEAD: usize = 28 + 8 + 22;
/// The hub's ack of each batch: Downlink::Ack (variant, epoch 16, watermark ~4), a server
/// WebSocket header (2) and a TLS record (22).
const ACK_OVERHEAD: usize = 21 + 2 + 22;
/// Bytes each JSON message adds on the wire: WebSocket header of a masked text frame under
/// 64 KiB (8) and its TLS record (22); KubeEdge sends one message per twin update.
const JSON_OVERHEAD: usize = 8 + 22;

const FIXTURE: &str = "benches/data/sim-flight.postcard.deflate";

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE)
}

fn load_fixture() -> Vec<(u64, Record)> {
    let packed = std::fs::read(fixture_path()).expect("read the fixture");
    let bytes = miniz_oxide::inflate::decompress_to_vec(&packed).expect("inflate the fixture");
    postcard::from_bytes(&bytes).expect("decode the fixture")
}

/// Turns `aloft-agent store dump` output into the fixture.
fn write_fixture(dump: &Path) {
    let text = std::fs::read_to_string(dump).expect("read the dump");
    let mut entries = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(line).expect("a JSON object per line");
        let seq = object
            .remove("seq")
            .and_then(|s| s.as_u64())
            .expect("a seq field");
        let record: Record =
            serde_json::from_value(serde_json::Value::Object(object)).expect("a record");
        entries.push((seq, record));
    }
    let bytes = postcard::to_allocvec(&entries).expect("encode");
    let packed = miniz_oxide::deflate::compress_to_vec(&bytes, 10);
    std::fs::create_dir_all(fixture_path().parent().expect("a data dir")).expect("mkdir");
    std::fs::write(fixture_path(), packed).expect("write the fixture");
    eprintln!(
        "{} entries written to {}",
        entries.len(),
        fixture_path().display()
    );
}

fn readings(entries: &[(u64, Record)]) -> usize {
    entries
        .iter()
        .filter(|(_, r)| matches!(r, Record::Reading(_)))
        .count()
}

/// CPU time of this thread, s: the machine is shared, and wall time would count the other
/// processes' turns on the core as the codec's.
fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `ts` is.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0;
    assert!(ok, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Runs `f` over every batch until `MIN_TIMED_S` of CPU time has passed; returns readings
/// per CPU second of one core.
fn rate(batches: &[&[(u64, Record)]], readings: usize, mut f: impl FnMut(usize)) -> f64 {
    let start = thread_cpu_s();
    let mut rounds = 0usize;
    while rounds == 0 || thread_cpu_s() - start < MIN_TIMED_S {
        for i in 0..batches.len() {
            f(i);
        }
        rounds += 1;
    }
    (readings * rounds) as f64 / (thread_cpu_s() - start)
}

type Encoder = Box<dyn Fn(&[(u64, Record)]) -> Vec<u8>>;
type Decoder = Box<dyn Fn(&[u8]) -> Vec<(u64, Record)>>;

struct Candidate {
    name: &'static str,
    encode: Encoder,
    decode: Decoder,
}

fn postcard_then(
    name: &'static str,
    pack: fn(&[u8]) -> Vec<u8>,
    unpack: fn(&[u8]) -> Vec<u8>,
) -> Candidate {
    Candidate {
        name,
        encode: Box::new(move |e| pack(&postcard::to_allocvec(e).expect("postcard"))),
        decode: Box::new(move |p| postcard::from_bytes(&unpack(p)).expect("postcard")),
    }
}

fn columnar_then(
    name: &'static str,
    pack: fn(&[u8]) -> Vec<u8>,
    _unpack: fn(&[u8]) -> Vec<u8>,
) -> Candidate {
    Candidate {
        name,
        encode: Box::new(move |e| pack(&columnar_bytes(e).expect("columnar"))),
        // The columns are decoded only by the codec (after zstd), timed below.
        decode: Box::new(|_| Vec::new()),
    }
}

fn zstd_pack<const L: i32>(b: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(b, L).expect("zstd")
}
fn zstd_unpack(b: &[u8]) -> Vec<u8> {
    zstd::stream::decode_all(b).expect("zstd")
}
fn lz4_pack(b: &[u8]) -> Vec<u8> {
    lz4_flex::compress_prepend_size(b)
}
fn lz4_unpack(b: &[u8]) -> Vec<u8> {
    lz4_flex::decompress_size_prepended(b).expect("lz4")
}
fn deflate_pack(b: &[u8]) -> Vec<u8> {
    miniz_oxide::deflate::compress_to_vec(b, 6)
}
fn deflate_unpack(b: &[u8]) -> Vec<u8> {
    miniz_oxide::inflate::decompress_to_vec(b).expect("deflate")
}
fn identity(b: &[u8]) -> Vec<u8> {
    b.to_vec()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--from-dump") {
        write_fixture(Path::new(args.get(i + 1).expect("--from-dump FILE")));
        return;
    }
    let entries = load_fixture();
    let total_readings = readings(&entries);
    println!("sync.codec.fixture_entries {} records", entries.len());
    println!("sync.codec.fixture_readings {total_readings} readings");

    let batches: Vec<&[(u64, Record)]> = entries.chunks(BATCH).collect();
    let candidates = [
        postcard_then("postcard", identity, identity),
        postcard_then("postcard_lz4", lz4_pack, lz4_unpack),
        postcard_then("postcard_deflate6", deflate_pack, deflate_unpack),
        postcard_then("postcard_zstd3", zstd_pack::<3>, zstd_unpack),
        postcard_then("postcard_zstd19", zstd_pack::<19>, zstd_unpack),
        columnar_then("columnar", identity, identity),
        columnar_then("columnar_lz4", lz4_pack, lz4_unpack),
        columnar_then("columnar_deflate6", deflate_pack, deflate_unpack),
        columnar_then("columnar_zstd1", zstd_pack::<1>, zstd_unpack),
        columnar_then("columnar_zstd9", zstd_pack::<9>, zstd_unpack),
        columnar_then("columnar_zstd19", zstd_pack::<19>, zstd_unpack),
    ];
    for c in &candidates {
        let payloads: Vec<Vec<u8>> = batches.iter().map(|b| (c.encode)(b)).collect();
        let bytes: usize = payloads.iter().map(Vec::len).sum();
        println!(
            "sync.codec.{}.bytes_per_reading {:.2} B",
            c.name,
            bytes as f64 / total_readings as f64
        );
        let encode = rate(&batches, total_readings, |i| {
            black_box((c.encode)(batches[i]));
        });
        println!(
            "sync.codec.{}.encode_per_s {:.0} readings/s",
            c.name, encode
        );
        if c.name.starts_with("postcard") {
            let decode = rate(&batches, total_readings, |i| {
                black_box((c.decode)(&payloads[i]));
            });
            println!(
                "sync.codec.{}.decode_per_s {:.0} readings/s",
                c.name, decode
            );
        }
    }

    // The codec itself, through its public API, at the batch sizes a drain may use.
    for size in [250, BATCH, 4_000] {
        let batches: Vec<&[(u64, Record)]> = entries.chunks(size).collect();
        let payloads: Vec<Vec<u8>> = batches
            .iter()
            .map(|b| encode_batch(BatchEncoding::ColumnarZstd, b).expect("encode"))
            .collect();
        let bytes: usize = payloads.iter().map(Vec::len).sum();
        let name = format!("sync.codec.columnar_zstd3_batch{size}");
        println!(
            "{name}.bytes_per_reading {:.2} B",
            bytes as f64 / total_readings as f64
        );
        let wire = bytes + batches.len() * (BATCH_OVERHEAD + ACK_OVERHEAD);
        println!(
            "{name}.wire_bytes_per_reading_estimate {:.2} B",
            wire as f64 / total_readings as f64
        );
        let encode = rate(&batches, total_readings, |i| {
            black_box(encode_batch(BatchEncoding::ColumnarZstd, batches[i]).expect("encode"));
        });
        println!("{name}.encode_per_s {encode:.0} readings/s");
        let decode = rate(&batches, total_readings, |i| {
            black_box(
                decode_batch(
                    BatchEncoding::ColumnarZstd,
                    &payloads[i],
                    &DEFAULT_BATCH_LIMITS,
                )
                .expect("decode"),
            );
        });
        println!("{name}.decode_per_s {decode:.0} readings/s");
        for (b, p) in batches.iter().zip(&payloads) {
            let back = decode_batch(BatchEncoding::ColumnarZstd, p, &DEFAULT_BATCH_LIMITS)
                .expect("decode");
            assert!(back.as_slice() == *b, "the codec must be lossless");
        }
    }

    column_breakdown(&entries, total_readings);

    // The same readings as KubeEdge-style JSON, one message per reading.
    if let Some((_, first)) = entries
        .iter()
        .find(|(_, r)| matches!(r, Record::Reading(_)))
    {
        eprintln!(
            "one reading as JSON: {}",
            kubeedge_json_message("glider-sim", first)
        );
    }
    let mut json = 0usize;
    for (_, r) in entries
        .iter()
        .filter(|(_, r)| matches!(r, Record::Reading(_)))
    {
        json += kubeedge_json_message("glider-sim", r).len() + JSON_OVERHEAD;
    }
    println!(
        "sync.codec.json_wire_bytes_per_reading_estimate {:.1} B",
        json as f64 / total_readings as f64
    );
}

/// Where the columnar form's bytes go: each column's raw size and its size compressed
/// alone with zstd 3, per reading, over batches of `BATCH` entries.
fn column_breakdown(entries: &[(u64, Record)], total_readings: usize) {
    const NAMES: [&str; 11] = [
        "steps", "kinds", "series", "others", "clocks", "mono", "utc", "modes", "ints", "xors",
        "quality",
    ];
    let mut raw = [0usize; 11];
    let mut packed = [0usize; 11];
    for batch in entries.chunks(BATCH) {
        let frame = columnar_bytes(batch).expect("columnar");
        let mut rest = frame.as_slice();
        let _count = varint(&mut rest);
        let _first = varint(&mut rest);
        for i in 0..NAMES.len() {
            let len = varint(&mut rest) as usize;
            let (column, tail) = rest.split_at(len);
            raw[i] += column.len();
            packed[i] += zstd_pack::<3>(column).len();
            rest = tail;
        }
    }
    for (i, name) in NAMES.iter().enumerate() {
        println!(
            "sync.codec.column.{name}.bytes_per_reading {:.3} B raw, {:.3} B zstd3 alone",
            raw[i] as f64 / total_readings as f64,
            packed[i] as f64 / total_readings as f64
        );
    }
}

fn varint(bytes: &mut &[u8]) -> u64 {
    let mut value = 0u64;
    let mut shift = 0;
    while let Some((&b, rest)) = bytes.split_first() {
        *bytes = rest;
        value |= u64::from(b & 0x7F) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    value
}
