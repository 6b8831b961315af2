//! Measures the hub's ingest: batches of readings decoded and persisted (one SQLite
//! transaction each, `synchronous=FULL`), as a session does, without the network.
//!
//! `cargo run -p aloft-hub --example ingest [READINGS] [BATCH]` (dependencies, SQLite
//! included, build optimised even in the dev profile). Prints `hub.ingest_per_s`.

use std::time::Instant;

use aloft_protocol::sync::batch::{
    DEFAULT_BATCH_LIMITS, PREFERRED_ENCODING, decode_batch, encode_batch,
};
use aloft_protocol::{
    Boot, BootId, DescriptorRecord, Quality, Quantity, Reading, Record, SensorDescriptor, SensorId,
    StoreEpoch, TimeCorrelation, TimeSource, Timestamp,
};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let total: u64 = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let batch: u64 = args.next().map_or(Ok(4096), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("hub");
    aloft_hub::init::init(&aloft_hub::init::InitOptions {
        data_dir: data.clone(),
        sans: vec!["localhost".into()],
        node: "glider".into(),
    })?;
    let hub = aloft_hub::Hub::open(&data)?;
    let epoch = StoreEpoch([7; 16]);
    let boot = BootId([8; 16]);
    let sensors = ["gps", "static", "pitot", "co2", "cosmic"];
    let quantities = [
        Quantity::Latitude,
        Quantity::AirPressure,
        Quantity::DifferentialPressure,
        Quantity::Co2MoleFraction,
        Quantity::AirTemperature,
    ];
    let mut head: Vec<Record> = vec![Record::Boot(Boot {
        boot_id: boot,
        mono_ns: 0,
        utc_ns: None,
        agent_version: "bench".into(),
    })];
    for (i, name) in sensors.iter().enumerate() {
        head.push(Record::Descriptor(DescriptorRecord {
            sensor: SensorId(i as u16),
            name: (*name).into(),
            kind: "sim".into(),
            time: Timestamp::monotonic(0),
            descriptor: SensorDescriptor::new("sim"),
        }));
    }
    head.push(Record::TimeCorrelation(TimeCorrelation {
        boot_id: boot,
        mono_ns: 1,
        utc_ns: 1_790_000_000_000_000_000,
        source: TimeSource::Gnss,
        uncertainty_ns: None,
    }));
    let record = |n: u64| -> Record {
        let s = (n % 5) as usize;
        Record::Reading(Reading {
            sensor: SensorId(s as u16),
            quantity: quantities[s],
            time: Timestamp::monotonic(n * 4_000_000),
            value: 19_000.0 + (n % 1000) as f64 * 0.37,
            quality: Quality::GOOD,
        })
    };
    // Encode everything first: the agent's work, not the hub's.
    let mut payloads = Vec::new();
    let mut seq = 0u64;
    let mut pending: Vec<(u64, Record)> = head
        .into_iter()
        .map(|r| {
            seq += 1;
            (seq - 1, r)
        })
        .collect();
    let mut readings = 0u64;
    while readings < total {
        while (pending.len() as u64) < batch && readings < total {
            pending.push((seq, record(seq)));
            seq += 1;
            readings += 1;
        }
        let first = pending.first().map_or(0, |p| p.0);
        let last = pending.last().map_or(0, |p| p.0);
        payloads.push((first, last, encode_batch(PREFERRED_ENCODING, &pending)?));
        pending.clear();
    }
    let bytes: usize = payloads.iter().map(|p| p.2.len()).sum();
    let start = Instant::now();
    let mut watermark = None;
    for (first, last, payload) in &payloads {
        let entries = decode_batch(PREFERRED_ENCODING, payload, &DEFAULT_BATCH_LIMITS)?;
        watermark = hub
            .streams
            .ingest("glider", epoch, *first, *last, &entries)?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    anyhow::ensure!(
        watermark == Some(seq - 1),
        "watermark {watermark:?}, expected {}",
        seq - 1
    );
    let db_bytes = std::fs::metadata(data.join("hub.sqlite"))?.len()
        + std::fs::metadata(data.join("hub.sqlite-wal")).map_or(0, |m| m.len());
    println!("hub.ingest_per_s {:.0} readings/s", total as f64 / elapsed);
    println!("hub.ingest_batches {} batches of {batch}", payloads.len());
    println!(
        "hub.ingest_payload_bytes_per_reading {:.1} B",
        bytes as f64 / total as f64
    );
    println!(
        "hub.db_bytes_per_reading {:.1} B",
        db_bytes as f64 / total as f64
    );
    Ok(())
}
