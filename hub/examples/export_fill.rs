//! Fills a new hub data directory with the simulated flight for `cargo xtask bench export`:
//! `aloft-hub init` (in-process), then, per node, the flight's records ingested through the
//! stream storage API in batches, as sessions persist them, until the node holds the
//! readings asked for. Fast: no network, no agent.
//!
//! `cargo run --release -p aloft-hub --example export_fill -- DATA GPS_HZ STATIC_HZ PITOT_HZ
//! NODE=READINGS...`. Writes the admin token to `DATA.admin.token`; prints one line per
//! node on standard error: `filled NODE READINGS readings RECORDS records in SECONDS s`
//! (standard output stays the bench's figures).

use std::time::Instant;

use aloft_protocol::{Record, StoreEpoch};
use aloft_test_support::flight::{FlightOptions, FlightRecords};
use anyhow::{Context, bail};

/// Records per batch, as an agent draining a backlog sends them.
const BATCH: usize = 8192;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data, gps, stat, pitot, nodes @ ..] = args.as_slice() else {
        bail!("usage: export_fill DATA GPS_HZ STATIC_HZ PITOT_HZ NODE=READINGS...");
    };
    let data = std::path::PathBuf::from(data);
    let (gps_hz, static_hz, pitot_hz) = (gps.parse()?, stat.parse()?, pitot.parse()?);
    let nodes = nodes
        .iter()
        .map(|n| {
            let (name, readings) = n.split_once('=').context("NODE=READINGS")?;
            Ok((name.to_owned(), readings.parse::<u64>()?))
        })
        .collect::<anyhow::Result<Vec<(String, u64)>>>()?;
    let first = nodes.first().context("name at least one node")?.0.clone();
    let done = aloft_hub::init::init(&aloft_hub::init::InitOptions {
        data_dir: data.clone(),
        sans: vec!["localhost".into(), "127.0.0.1".into()],
        node: first.clone(),
    })?;
    std::fs::write(
        data.with_extension("admin.token"),
        format!("{}\n", done.admin_token),
    )?;
    let hub = aloft_hub::Hub::open(&data)?;
    for (node, readings) in nodes {
        if node != first {
            hub.registry.create_node(&node)?;
        }
        let started = Instant::now();
        let flight = FlightRecords::new(FlightOptions {
            duration_s: 1.0e6,
            gps_hz,
            static_hz,
            pitot_hz,
            ..FlightOptions::default()
        });
        let epoch = StoreEpoch([0xe7; 16]);
        let mut batch: Vec<(u64, Record)> = Vec::with_capacity(BATCH);
        let mut count = 0u64;
        let mut seq = 0u64;
        for record in flight {
            if matches!(record, Record::Reading(_)) {
                if count == readings {
                    break;
                }
                count += 1;
            }
            batch.push((seq, record));
            seq += 1;
            if batch.len() == BATCH {
                let (a, b) = (batch[0].0, seq - 1);
                hub.streams.ingest(&node, epoch, a, b, &batch)?;
                batch.clear();
            }
        }
        if let (Some(a), Some(b)) = (batch.first().map(|e| e.0), batch.last().map(|e| e.0)) {
            hub.streams.ingest(&node, epoch, a, b, &batch)?;
        }
        if count < readings {
            bail!("the flight ended after {count} readings, short of {readings}");
        }
        eprintln!(
            "filled {node} {count} readings {seq} records in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
