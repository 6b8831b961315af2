//! Writes the simulated flight into an agent's store directory, or exports such a store in
//! one format, so that the export's peak memory can be measured on its own with
//! `/usr/bin/time -v` (docs/decisions/track-formats-memory.md):
//!
//! ```text
//! cargo run --release -p aloft-dataset --example export_rss -- store DIR SECONDS
//! /usr/bin/time -v target/release/examples/export_rss export DIR FORMAT OUT
//! ```

use std::error::Error;
use std::path::Path;

use aloft_dataset::{Dataset, DirOutput, ExportOptions, Format, Selection, StoreDirSource, export};
use aloft_store::{Outbox, StoreOptions};
use aloft_test_support::flight::{FlightOptions, FlightRecords};

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["store", dir, seconds] => {
            let opts = FlightOptions {
                duration_s: seconds.parse()?,
                ..FlightOptions::default()
            };
            let (mut outbox, _) = Outbox::open(Path::new(dir), StoreOptions::default())?;
            let mut readings = 0u64;
            for r in FlightRecords::new(opts) {
                readings += u64::from(matches!(r, aloft_protocol::Record::Reading(_)));
                outbox.append(&r)?;
            }
            outbox.commit()?;
            outbox.close()?;
            println!("{readings} readings");
        }
        ["export", dir, format, out] => {
            let source = StoreDirSource::open(Path::new(dir))?;
            let options = ExportOptions::new("glider-1", 1_790_000_000_000_000_000);
            let ds = Dataset::open(&source, "glider-1", Selection::default(), options)?;
            let mut output = DirOutput::new(Path::new(out), true)?;
            let files = export(&ds, Format::from_name(format)?, &mut output)?;
            output.commit()?;
            for f in files {
                println!("{} {} bytes", f.path, f.bytes);
            }
        }
        _ => return Err("usage: export_rss store DIR SECONDS | export DIR FORMAT OUT".into()),
    }
    Ok(())
}
