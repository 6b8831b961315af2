//! Measures the hub's ingest: batches of readings decoded and persisted (one SQLite
//! transaction each, `synchronous=FULL`), as a session does, without the network.
//!
//! `cargo run -p aloft-hub --example ingest [READINGS] [BATCH]` (dependencies, SQLite
//! included, build optimised even in the dev profile). Prints `hub.ingest_per_s`, then
//! `hub.wire_ingest_per_s`: the same batches sent by the test client over loopback TLS
//! WebSocket to an in-process hub, four batches in flight, until the last is acked.

use std::time::Instant;

use aloft_protocol::sync::batch::{
    DEFAULT_BATCH_LIMITS, PREFERRED_ENCODING, decode_batch, encode_batch,
};
use aloft_protocol::{
    Boot, BootId, DescriptorRecord, Quality, Quantity, Reading, Record, SensorDescriptor, SensorId,
    StoreEpoch, TimeCorrelation, TimeSource, Timestamp,
};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
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
    let cpu_start = cpu_seconds();
    let mut watermark = None;
    for (first, last, payload) in &payloads {
        let entries = decode_batch(PREFERRED_ENCODING, payload, &DEFAULT_BATCH_LIMITS)?;
        watermark = hub
            .streams
            .ingest("glider", epoch, *first, *last, &entries)?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    anyhow::ensure!(
        watermark == Some(seq - 1),
        "watermark {watermark:?}, expected {}",
        seq - 1
    );
    let db_bytes = std::fs::metadata(data.join("hub.sqlite"))?.len()
        + std::fs::metadata(data.join("hub.sqlite-wal")).map_or(0, |m| m.len());
    println!("hub.ingest_per_s {:.0} readings/s", total as f64 / elapsed);
    // Robust to other load on the machine: readings per second of this process's CPU.
    println!("hub.ingest_per_cpu_s {:.0} readings/s", total as f64 / cpu);
    let wire = wire(&data, &payloads, total).await?;
    println!("hub.wire_ingest_per_s {wire:.0} readings/s");
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

/// The same batches over TLS WebSocket, in a new epoch so nothing is deduplicated.
async fn wire(
    data: &std::path::Path,
    payloads: &[(u64, u64, Vec<u8>)],
    total: u64,
) -> anyhow::Result<f64> {
    use aloft_hub::testing::{NodeClient, client_config, hello};
    use aloft_protocol::sync::{Batch, Downlink, Uplink};
    let hub = aloft_hub::Hub::open(data)?;
    let (_, token) = {
        let created = hub.registry.create_node("wire")?;
        (created.token, created.secret)
    };
    let tls = aloft_hub::pki::server_config(data)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(aloft_hub::server::serve(
        hub,
        tls,
        listener,
        aloft_hub::server::ServeOptions::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let epoch = StoreEpoch([9; 16]);
    let client_tls = client_config(&data.join(aloft_hub::pki::CA_CERT))?;
    let mut client = NodeClient::connect(addr, &client_tls, &token).await?;
    client.hello(hello("wire", epoch)).await?;
    let start = Instant::now();
    let cpu_start = cpu_seconds();
    let mut in_flight = 0;
    let last = payloads.last().map_or(0, |p| p.1);
    let mut acked = None;
    for (first, last, payload) in payloads {
        client
            .send(&Uplink::Batch(Batch {
                epoch,
                first: *first,
                last: *last,
                encoding: PREFERRED_ENCODING,
                payload: payload.clone(),
            }))
            .await?;
        in_flight += 1;
        while in_flight >= 4 {
            if let Downlink::Ack { watermark, .. } = client.recv().await? {
                acked = Some(watermark);
                in_flight -= 1;
            }
        }
    }
    while acked != Some(last) {
        if let Downlink::Ack { watermark, .. } = client.recv().await? {
            acked = Some(watermark);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    println!(
        "hub.wire_ingest_per_cpu_s {:.0} readings/s (client and hub in one process)",
        total as f64 / cpu
    );
    drop(client);
    let _ = stop.send(());
    server.await??;
    Ok(total as f64 / elapsed)
}

/// User + system CPU time of this process, s.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}
