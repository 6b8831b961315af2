//! CSV (RFC 4180: CRLF line ends, fields quoted when they hold a comma, quote or line
//! break), in the tidy layout (`STEM.csv`, one row per reading) or the wide layout
//! (`STEM_SENSOR.csv`, one table per sensor, one row per instant, a value and a flags
//! column per quantity).
//!
//! Invariants: times are RFC 3339 UTC with nine fraction digits (`time_utc`), empty when
//! the reading has no UTC (its `mono_ns` and `boot` are always there); values print in
//! Rust's shortest round-trip form, so reading them back gives the same `f64`; an empty
//! cell is a missing value, never zero. Wide tables are written to temporary files in one
//! pass and copied into the output one by one.

use std::collections::BTreeMap;
use std::io::{BufWriter, Read, Seek, Write};

use aloft_protocol::Quantity;

use crate::ExportError;
use crate::formats::{Layout, unique_file_names};
use crate::output::Output;
use crate::rows::{Dataset, Instant};
use crate::source::hex;
use crate::time::{rfc3339_ns, source_name};

/// The tidy table's columns.
pub const TIDY_COLUMNS: [&str; 12] = [
    "time_utc",
    "node",
    "sensor",
    "quantity",
    "value",
    "unit",
    "quality",
    "time_source",
    "mono_ns",
    "boot",
    "epoch",
    "seq",
];

/// The leading columns of a wide table; the quantities follow, each as `NAME` and
/// `NAME_quality`.
pub const WIDE_COLUMNS: [&str; 4] = ["time_utc", "time_source", "mono_ns", "boot"];

fn writer<W: Write>(w: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .has_headers(false)
        .from_writer(w)
}

fn csv_err(e: csv::Error) -> ExportError {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => ExportError::Write(io),
        other => ExportError::Encoder {
            format: "csv",
            message: format!("{other:?}"),
        },
    }
}

/// Quality flags as text: names joined by `|`, empty when none is set.
pub fn quality_text(q: aloft_protocol::Quality) -> String {
    q.names().collect::<Vec<_>>().join("|")
}

/// Writes `ds` as CSV in its layout.
pub fn write(ds: &Dataset<'_>, out: &mut dyn Output) -> Result<(), ExportError> {
    match ds.options.layout {
        Layout::Tidy => tidy(ds, out),
        Layout::Wide => wide(ds, out),
    }
}

fn tidy(ds: &Dataset<'_>, out: &mut dyn Output) -> Result<(), ExportError> {
    let name = format!("{}.csv", ds.options.stem);
    out.file(&name, "csv", "text/csv", &mut |w| {
        let mut csv = writer(w);
        csv.write_record(TIDY_COLUMNS).map_err(csv_err)?;
        let mut texts = RowTexts::default();
        ds.rows(&mut |row| {
            texts.update(row);
            csv.write_record([
                texts.time.as_str(),
                ds.node.as_str(),
                row.sensor,
                texts.quantity.as_str(),
                texts.value.as_str(),
                row.quantity.unit().unwrap_or(""),
                texts.quality.as_str(),
                source_name(row.time_source),
                texts.mono.as_str(),
                texts.boot.as_str(),
                texts.epoch.as_str(),
                texts.seq.as_str(),
            ])
            .map_err(csv_err)
        })?;
        csv.flush().map_err(ExportError::write)
    })?;
    Ok(())
}

/// The text of a row's cells, in buffers reused from row to row; the ids, quantity and
/// flags are made again only when they change (they rarely do from one row to the next).
#[derive(Debug, Default)]
struct RowTexts {
    time: String,
    time_of: Option<Option<i64>>,
    value: String,
    mono: String,
    seq: String,
    quantity: String,
    quantity_of: Option<Quantity>,
    quality: String,
    quality_of: Option<aloft_protocol::Quality>,
    boot: String,
    boot_of: Option<Option<aloft_protocol::BootId>>,
    epoch: String,
    epoch_of: Option<aloft_protocol::StoreEpoch>,
}

impl RowTexts {
    fn update(&mut self, row: &crate::rows::Row<'_>) {
        use std::fmt::Write as _;
        // The readings of one instant (a fix's eleven) share their time.
        if self.time_of != Some(row.utc_ns) {
            self.time.clear();
            if let Some(utc) = row.utc_ns {
                crate::time::write_rfc3339_ns(&mut self.time, utc);
            }
            self.time_of = Some(row.utc_ns);
        }
        self.value.clear();
        let _ = write!(self.value, "{}", row.value);
        self.mono.clear();
        let _ = write!(self.mono, "{}", row.mono_ns);
        self.seq.clear();
        let _ = write!(self.seq, "{}", row.seq);
        if self.quantity_of != Some(row.quantity) {
            self.quantity = row.quantity.to_string();
            self.quantity_of = Some(row.quantity);
        }
        if self.quality_of != Some(row.quality) {
            self.quality = quality_text(row.quality);
            self.quality_of = Some(row.quality);
        }
        if self.boot_of != Some(row.boot) {
            self.boot = row.boot.map(|b| hex(&b.0)).unwrap_or_default();
            self.boot_of = Some(row.boot);
        }
        if self.epoch_of != Some(row.epoch) {
            self.epoch = hex(&row.epoch.0);
            self.epoch_of = Some(row.epoch);
        }
    }
}

/// The quantities of each sensor in the selection, from a counting pass.
pub fn quantities_by_sensor(
    ds: &Dataset<'_>,
) -> Result<BTreeMap<String, Vec<Quantity>>, ExportError> {
    ds.rows(&mut |_| Ok(()))?;
    Ok(ds
        .stats()
        .counts
        .into_iter()
        .map(|(s, qs)| (s, qs.into_keys().collect()))
        .collect())
}

struct Table {
    quantities: Vec<Quantity>,
    csv: csv::Writer<BufWriter<std::fs::File>>,
}

fn wide(ds: &Dataset<'_>, out: &mut dyn Output) -> Result<(), ExportError> {
    let sensors = quantities_by_sensor(ds)?;
    let mut tables: BTreeMap<String, Table> = BTreeMap::new();
    for (sensor, quantities) in &sensors {
        let file = tempfile::tempfile().map_err(ExportError::write)?;
        let mut csv = writer(BufWriter::with_capacity(128 << 10, file));
        let mut header: Vec<String> = WIDE_COLUMNS.iter().map(|c| (*c).to_owned()).collect();
        for q in quantities {
            header.push(q.to_string());
            header.push(format!("{q}_quality"));
        }
        csv.write_record(&header).map_err(csv_err)?;
        tables.insert(
            sensor.clone(),
            Table {
                quantities: quantities.clone(),
                csv,
            },
        );
    }
    ds.instants(&mut |i: &Instant| {
        let Some(table) = tables.get_mut(&i.sensor) else {
            return Ok(());
        };
        let mut record: Vec<String> = Vec::with_capacity(4 + 2 * table.quantities.len());
        record.push(i.utc_ns.map(rfc3339_ns).unwrap_or_default());
        record.push(source_name(i.time_source).to_owned());
        record.push(i.mono_ns.to_string());
        record.push(i.boot.map(|b| hex(&b.0)).unwrap_or_default());
        for q in &table.quantities {
            match i.get(*q) {
                Some((v, f)) => {
                    record.push(v.to_string());
                    record.push(quality_text(f));
                }
                None => {
                    record.push(String::new());
                    record.push(String::new());
                }
            }
        }
        table.csv.write_record(&record).map_err(csv_err)
    })?;
    let names = unique_file_names(tables.keys().map(String::as_str));
    for (sensor, table) in tables {
        let mut file = table
            .csv
            .into_inner()
            .map_err(|e| ExportError::Write(std::io::Error::other(e.to_string())))?
            .into_inner()
            .map_err(|e| ExportError::Write(e.into_error()))?;
        file.rewind().map_err(ExportError::write)?;
        let name = format!("{}_{}.csv", ds.options.stem, names[&sensor]);
        out.file(&name, "csv", "text/csv", &mut |w| copy(&mut file, w))?;
    }
    Ok(())
}

/// Copies a spooled file into an output file.
pub fn copy(from: &mut std::fs::File, to: &mut dyn Write) -> Result<(), ExportError> {
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = from.read(&mut buf).map_err(ExportError::write)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n]).map_err(ExportError::write)?;
    }
}
