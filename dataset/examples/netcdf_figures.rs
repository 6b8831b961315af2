//! The NetCDF-CF writer's figures for docs/decisions/netcdf-writer.md: exports the
//! simulated flight with about N readings from an agent's store directory and prints
//! readings per second and the file's size. Peak RSS comes from the caller
//! (`/usr/bin/time -f %M`), so the store is written by a separate run:
//!
//! ```text
//! cargo build --release -p aloft-dataset --example netcdf_figures
//! target/release/examples/netcdf_figures store /tmp/flight-store 1000000
//! /usr/bin/time -f maxrss_kb=%M target/release/examples/netcdf_figures export /tmp/flight-store
//! ```

use std::time::Instant;

use aloft_dataset::{Dataset, DirOutput, ExportOptions, Format, Selection, StoreDirSource, export};
use aloft_store::{Outbox, StoreOptions};
use aloft_test_support::flight::{FlightOptions, FlightRecords};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::Path::new(args.get(2).ok_or("usage: store|export DIR [READINGS]")?);
    match args[1].as_str() {
        "store" => {
            let want: u64 = args
                .get(3)
                .map(|a| a.parse())
                .transpose()?
                .unwrap_or(1_000_000);
            // About 18 readings a second of flight at 1 Hz near the ground, more with
            // altitude (muons).
            let opts = FlightOptions {
                duration_s: want as f64 / 18.0,
                ..FlightOptions::default()
            };
            let (mut outbox, _) = Outbox::open(dir, StoreOptions::default())?;
            for r in FlightRecords::new(opts) {
                outbox.append(&r)?;
            }
            outbox.commit()?;
            outbox.close()?;
        }
        _ => {
            let source = StoreDirSource::open(dir)?;
            let out_dir = tempfile::tempdir()?;
            let started = Instant::now();
            let ds = Dataset::open(
                &source,
                "glider-1",
                Selection::default(),
                ExportOptions::new("glider-1", 0),
            )?;
            let mut out = DirOutput::new(out_dir.path(), false)?;
            let files = export(&ds, Format::NetCdf, &mut out)?;
            out.commit()?;
            let s = started.elapsed().as_secs_f64();
            let readings = ds.stats().rows;
            println!(
                "netcdf readings={readings} seconds={s:.2} readings_per_s={:.0} file_bytes={}",
                readings as f64 / s,
                files[0].bytes
            );
        }
    }
    Ok(())
}
