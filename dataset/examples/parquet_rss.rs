//! Peak memory of one export of the simulated flight, generated record by record (no copy
//! of the records is held), so the figure is the export's own: the peak RSS the kernel
//! reports (`VmHWM`) after the export.
//!
//! `cargo run -p aloft-dataset --example parquet_rss -- READINGS FORMAT [LAYOUT]` prints
//! `readings N` (about READINGS), `bytes N` (the files written) and `peak_rss_mb X`.

use std::ops::ControlFlow;

use aloft_dataset::source::SourceError;
use aloft_dataset::{
    Completeness, Dataset, DirOutput, ExportOptions, Format, Layout, RecordSource, Selection,
    export,
};
use aloft_protocol::{Record, StoreEpoch};
use aloft_test_support::flight::{FlightOptions, FlightRecords};

/// The flight, generated anew on every pass.
struct Generated(FlightOptions);

impl RecordSource for Generated {
    fn for_each_record(
        &self,
        each: &mut dyn FnMut(StoreEpoch, u64, &Record) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        for (seq, record) in FlightRecords::new(self.0.clone()).enumerate() {
            if each(StoreEpoch([7; 16]), seq as u64, &record).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn completeness(&self) -> Completeness {
        Completeness {
            origin: "hub".to_owned(),
            ..Completeness::default()
        }
    }
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let readings: f64 = args.first().map_or(Ok(1e6), |a| a.parse())?;
    let format = Format::from_name(args.get(1).map_or("parquet", String::as_str))?;
    let layout = Layout::from_name(args.get(2).map_or("tidy", String::as_str))?;
    // About 355 readings a second of flight at these rates.
    let opts = FlightOptions {
        duration_s: (readings / 355.0).ceil(),
        gps_hz: 10.0,
        static_hz: 50.0,
        pitot_hz: 50.0,
        ..FlightOptions::default()
    };
    let source = Generated(opts);
    let mut options = ExportOptions::new("glider-1", 1_790_000_000_000_000_000);
    options.layout = layout;
    let ds = Dataset::open(&source, "glider-1", Selection::default(), options)?;
    let dir = tempfile::tempdir()?;
    let mut out = DirOutput::new(dir.path(), false)?;
    export(&ds, format, &mut out)?;
    let files = out.commit()?;
    let bytes: u64 = files.iter().map(|f| f.bytes).sum();
    println!("readings {}", ds.stats().rows);
    println!("bytes {bytes}");
    println!("peak_rss_mb {:.1}", peak_rss_mb());
    Ok(())
}
