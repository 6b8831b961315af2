//! Apache Parquet (arrow-rs, zstd), in the tidy layout (`STEM.parquet`, one row per
//! reading) or the wide layout (`STEM_SENSOR.parquet`, one table per sensor, one row per
//! instant, a value and a quality column per quantity).
//!
//! Columns are typed: `time` is a UTC timestamp in ns (null when the reading has no UTC;
//! its `mono_ns` and `boot` are always there), values are `f64` exactly as read, `mono_ns`
//! and `seq` are `u64`; names, units, flags, boots and epochs are dictionary-encoded
//! strings. Quality is the flag names joined by `|` (empty when none is set) and, in the
//! tidy layout, the same flags as bits (`quality_bits`, `u16`). Units and CF standard names
//! are field metadata (`unit`, `standard_name`) where a column holds one quantity, and the
//! file's key-value metadata carries the quantities, the sensors with their descriptors and
//! the time definition as JSON (`aloft:quantities`, `aloft:sensors`, `aloft:time`).
//!
//! Invariants: memory stays flat whatever the export's size: rows go to the encoder in
//! batches of [`BATCH_ROWS`], a row group closes every [`ROW_GROUP_ROWS`] rows and its bytes
//! leave for the output at once; the bytes depend only on the dataset (the writer's
//! `created_by` names this crate's version, no clock is read). Wide tables are written side
//! by side in one pass to temporary files and copied into the output one by one.

use std::collections::BTreeMap;
use std::io::{Seek, Write};
use std::sync::Arc;

use aloft_protocol::{BootId, Quality, Quantity, StoreEpoch};
use arrow_array::builder::{
    Float64Builder, StringDictionaryBuilder, TimestampNanosecondBuilder, UInt16Builder,
    UInt64Builder,
};
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use serde::Serialize;

use crate::ExportError;
use crate::formats::csv::{copy, quality_text, quantities_by_sensor};
use crate::formats::{Format, Layout, unique_file_names};
use crate::output::Output;
use crate::rows::{Dataset, Instant, Row};
use crate::sidecar::{self, TIME_DEFINITION};
use crate::source::hex;
use crate::time::{rfc3339_ns, source_name};

/// Rows handed to the encoder at once.
pub const BATCH_ROWS: usize = 8192;

/// Rows per row group: small enough to hold one in memory while writing, large enough for
/// readers to skip and decompress efficiently.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// The encoded size at which a row group closes before [`ROW_GROUP_ROWS`]: a wide table
/// of a sensor with many quantities (a GNSS fix is 11) reaches it first, and every wide
/// table holds its own row group at once.
pub const ROW_GROUP_BYTES: usize = 8 << 20;

/// The zstd level: the library's default, a good speed for its ratio.
const ZSTD_LEVEL: i32 = 3;

/// The tidy table's columns.
pub const TIDY_COLUMNS: [&str; 13] = [
    "time",
    "node",
    "sensor",
    "quantity",
    "value",
    "unit",
    "quality",
    "quality_bits",
    "time_source",
    "mono_ns",
    "boot",
    "epoch",
    "seq",
];

/// The leading columns of a wide table; the quantities follow, each as `NAME` and
/// `NAME_quality`.
pub const WIDE_COLUMNS: [&str; 4] = ["time", "time_source", "mono_ns", "boot"];

const MEDIATYPE: &str = "application/vnd.apache.parquet";

fn parquet_err(e: ParquetError) -> ExportError {
    match e {
        ParquetError::External(inner) => match inner.downcast::<std::io::Error>() {
            Ok(io) => ExportError::Write(*io),
            Err(other) => encoder(other),
        },
        other => encoder(other),
    }
}

fn encoder(e: impl std::fmt::Display) -> ExportError {
    ExportError::Encoder {
        format: "parquet",
        message: e.to_string(),
    }
}

/// The writer's settings for `schema`. Numeric columns are never dictionary-encoded: their
/// values are nearly all distinct, and a dictionary per column would be built (up to
/// 1 MiB each, per row group) only to be thrown away. Times, monotonic times and sequence
/// numbers rise steadily and are delta-encoded; values are split by byte, which zstd
/// compresses far better than plain doubles.
fn properties(schema: &Schema) -> WriterProperties {
    let zstd = ZstdLevel::try_new(ZSTD_LEVEL).unwrap_or_default();
    let mut builder = WriterProperties::builder();
    for field in schema.fields() {
        let path = ColumnPath::from(field.name().as_str());
        let encoding = match field.data_type() {
            DataType::Float64 => Encoding::BYTE_STREAM_SPLIT,
            DataType::UInt64 | DataType::Timestamp(..) => Encoding::DELTA_BINARY_PACKED,
            _ => continue,
        };
        builder = builder
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_encoding(path, encoding);
    }
    builder
        .set_compression(Compression::ZSTD(zstd))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
        .set_created_by(format!(
            "aloft-dataset version {} (parquet-rs)",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
}

fn meta(pairs: &[(&str, String)]) -> std::collections::HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn dictionary() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

fn time_field() -> Field {
    Field::new(
        "time",
        DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        true,
    )
    .with_metadata(meta(&[
        ("description", TIME_DEFINITION.to_owned()),
        (
            "null",
            "the reading has no UTC: see mono_ns and boot".to_owned(),
        ),
    ]))
}

fn mono_field() -> Field {
    Field::new("mono_ns", DataType::UInt64, false).with_metadata(meta(&[
        ("unit", "ns".to_owned()),
        (
            "description",
            "the agent's monotonic clock since its boot (column boot)".to_owned(),
        ),
    ]))
}

fn boot_field() -> Field {
    Field::new("boot", dictionary(), true).with_metadata(meta(&[(
        "description",
        "the agent's boot the monotonic time belongs to, hex".to_owned(),
    )]))
}

fn time_source_field() -> Field {
    Field::new("time_source", dictionary(), false).with_metadata(meta(&[(
        "description",
        "where the UTC came from: gnss, system_clock, reconstructed (from monotonic time and a time correlation), monotonic (no UTC)".to_owned(),
    )]))
}

fn tidy_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        time_field(),
        Field::new("node", dictionary(), false),
        Field::new("sensor", dictionary(), false),
        Field::new("quantity", dictionary(), false),
        Field::new("value", DataType::Float64, false).with_metadata(meta(&[(
            "description",
            "the value in the unit of column unit".to_owned(),
        )])),
        Field::new("unit", dictionary(), true).with_metadata(meta(&[(
            "description",
            "UDUNITS unit of value; null for a quantity this build does not know".to_owned(),
        )])),
        Field::new("quality", dictionary(), false).with_metadata(meta(&[(
            "description",
            "quality flag names joined by |, empty when none is set".to_owned(),
        )])),
        Field::new("quality_bits", DataType::UInt16, false).with_metadata(meta(&[(
            "description",
            "quality flags as bits: 1 out_of_range, 2 crc_failed, 4 stale, 8 simulated, 16 invalid, 32 derived, 64 degraded_input".to_owned(),
        )])),
        time_source_field(),
        mono_field(),
        boot_field(),
        Field::new("epoch", dictionary(), false).with_metadata(meta(&[(
            "description",
            "the store epoch of the reading, hex".to_owned(),
        )])),
        Field::new("seq", DataType::UInt64, false).with_metadata(meta(&[(
            "description",
            "the reading's sequence number in its store epoch".to_owned(),
        )])),
    ]))
}

fn wide_schema(quantities: &[Quantity]) -> SchemaRef {
    let mut fields = vec![
        time_field(),
        time_source_field(),
        mono_field(),
        boot_field(),
    ];
    for q in quantities {
        let mut m = vec![("quantity", q.to_string())];
        if let Some(u) = q.unit() {
            m.push(("unit", u.to_owned()));
        }
        if let Some(s) = q.cf_standard_name() {
            m.push(("standard_name", s.to_owned()));
        }
        fields.push(Field::new(q.to_string(), DataType::Float64, true).with_metadata(meta(&m)));
        fields.push(
            Field::new(format!("{q}_quality"), dictionary(), true).with_metadata(meta(&[(
                "description",
                format!(
                    "quality flag names of {q} joined by |, empty when none is set, null when {q} is absent"
                ),
            )])),
        );
    }
    Arc::new(Schema::new(fields))
}

/// A Parquet writer whose bytes leave for `sink` as soon as the encoder lets them go: the
/// encoder writes into a `Vec` that is emptied after every batch, so at most one row group
/// is held.
struct Table<S> {
    schema: SchemaRef,
    writer: ArrowWriter<Vec<u8>>,
    sink: S,
}

impl<S: Write> Table<S> {
    fn new(schema: SchemaRef, sink: S) -> Result<Self, ExportError> {
        let writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(properties(&schema)))
            .map_err(parquet_err)?;
        Ok(Table {
            schema,
            writer,
            sink,
        })
    }

    fn drain(&mut self) -> Result<(), ExportError> {
        let bytes = std::mem::take(self.writer.inner_mut());
        self.sink.write_all(&bytes).map_err(ExportError::write)
    }

    fn write(&mut self, columns: Vec<ArrayRef>) -> Result<(), ExportError> {
        let batch = RecordBatch::try_new(self.schema.clone(), columns).map_err(encoder)?;
        self.writer.write(&batch).map_err(parquet_err)?;
        self.drain()
    }

    fn finish(mut self, metadata: Vec<(&str, String)>) -> Result<S, ExportError> {
        for (key, value) in metadata {
            self.writer
                .append_key_value_metadata(KeyValue::new(key.to_owned(), value));
        }
        self.writer.finish().map_err(parquet_err)?;
        self.drain()?;
        self.sink.flush().map_err(ExportError::write)?;
        Ok(self.sink)
    }
}

/// Writes `ds` as Parquet in its layout.
pub fn write(ds: &Dataset<'_>, out: &mut dyn Output) -> Result<(), ExportError> {
    match ds.options.layout {
        Layout::Tidy => tidy(ds, out),
        Layout::Wide => wide(ds, out),
    }
}

#[derive(Serialize)]
struct QuantityMeta {
    name: String,
    unit: Option<&'static str>,
    cf_standard_name: Option<&'static str>,
}

#[derive(Serialize)]
struct TimeMeta {
    definition: &'static str,
    resolution: &'static str,
    created: String,
}

/// The file's key-value metadata, from the figures of the pass that wrote it.
fn file_metadata(
    ds: &Dataset<'_>,
    only_sensor: Option<&str>,
) -> Result<Vec<(&'static str, String)>, ExportError> {
    let doc = sidecar::build(
        ds,
        Format::Parquet.name(),
        Some(ds.options.layout.name()),
        Format::Parquet.time_resolution(),
        &[],
    );
    let sensors: Vec<_> = doc
        .sensors
        .into_iter()
        .filter(|s| only_sensor.is_none_or(|o| o == s.name))
        .collect();
    let mut quantities: Vec<Quantity> = ds
        .stats()
        .counts
        .iter()
        .filter(|(s, _)| only_sensor.is_none_or(|o| o == s.as_str()))
        .flat_map(|(_, qs)| qs.keys().copied())
        .collect();
    quantities.sort();
    quantities.dedup();
    let quantities: Vec<QuantityMeta> = quantities
        .into_iter()
        .map(|q| QuantityMeta {
            name: q.to_string(),
            unit: q.unit(),
            cf_standard_name: q.cf_standard_name(),
        })
        .collect();
    let time = TimeMeta {
        definition: TIME_DEFINITION,
        resolution: Format::Parquet.time_resolution(),
        created: rfc3339_ns(ds.options.created_utc_ns),
    };
    let mut pairs = vec![
        ("aloft:node", ds.node.clone()),
        ("aloft:layout", ds.options.layout.name().to_owned()),
        ("aloft:quantities", json(&quantities)?),
        ("aloft:sensors", json(&sensors)?),
        ("aloft:time", json(&time)?),
    ];
    if !ds.options.metadata.license.is_empty() {
        pairs.push(("aloft:license", ds.options.metadata.license.clone()));
    }
    Ok(pairs)
}

fn json<T: Serialize>(value: &T) -> Result<String, ExportError> {
    serde_json::to_string(value).map_err(encoder)
}

/// The tidy layout's columns being filled.
struct TidyBatch {
    time: TimestampNanosecondBuilder,
    node: StringDictionaryBuilder<Int32Type>,
    sensor: StringDictionaryBuilder<Int32Type>,
    quantity: StringDictionaryBuilder<Int32Type>,
    value: Float64Builder,
    unit: StringDictionaryBuilder<Int32Type>,
    quality: StringDictionaryBuilder<Int32Type>,
    quality_bits: UInt16Builder,
    time_source: StringDictionaryBuilder<Int32Type>,
    mono_ns: UInt64Builder,
    boot: StringDictionaryBuilder<Int32Type>,
    epoch: StringDictionaryBuilder<Int32Type>,
    seq: UInt64Builder,
    len: usize,
    texts: Texts,
}

/// The texts of values that repeat row after row (flags, boots, epochs), made once.
#[derive(Default)]
struct Texts {
    quality: BTreeMap<u16, String>,
    boot: Option<(BootId, String)>,
    epoch: Option<(StoreEpoch, String)>,
}

impl Texts {
    fn quality(&mut self, q: Quality) -> &str {
        self.quality
            .entry(q.bits())
            .or_insert_with(|| quality_text(q))
    }

    fn boot(&mut self, b: BootId) -> &str {
        if self.boot.as_ref().is_none_or(|(id, _)| *id != b) {
            self.boot = Some((b, hex(&b.0)));
        }
        self.boot.as_ref().map_or("", |(_, h)| h.as_str())
    }

    fn epoch(&mut self, e: StoreEpoch) -> &str {
        if self.epoch.as_ref().is_none_or(|(id, _)| *id != e) {
            self.epoch = Some((e, hex(&e.0)));
        }
        self.epoch.as_ref().map_or("", |(_, h)| h.as_str())
    }
}

impl TidyBatch {
    fn new() -> Self {
        TidyBatch {
            time: TimestampNanosecondBuilder::with_capacity(BATCH_ROWS).with_timezone("UTC"),
            node: StringDictionaryBuilder::new(),
            sensor: StringDictionaryBuilder::new(),
            quantity: StringDictionaryBuilder::new(),
            value: Float64Builder::with_capacity(BATCH_ROWS),
            unit: StringDictionaryBuilder::new(),
            quality: StringDictionaryBuilder::new(),
            quality_bits: UInt16Builder::with_capacity(BATCH_ROWS),
            time_source: StringDictionaryBuilder::new(),
            mono_ns: UInt64Builder::with_capacity(BATCH_ROWS),
            boot: StringDictionaryBuilder::new(),
            epoch: StringDictionaryBuilder::new(),
            seq: UInt64Builder::with_capacity(BATCH_ROWS),
            len: 0,
            texts: Texts::default(),
        }
    }

    fn push(&mut self, node: &str, row: &Row<'_>) {
        self.time.append_option(row.utc_ns);
        self.node.append_value(node);
        self.sensor.append_value(row.sensor);
        match row.quantity.name() {
            Some(name) => self.quantity.append_value(name),
            None => self.quantity.append_value(row.quantity.to_string()),
        }
        self.value.append_value(row.value);
        self.unit.append_option(row.quantity.unit());
        self.quality.append_value(self.texts.quality(row.quality));
        self.quality_bits.append_value(row.quality.bits());
        self.time_source.append_value(source_name(row.time_source));
        self.mono_ns.append_value(row.mono_ns);
        match row.boot {
            Some(b) => self.boot.append_value(self.texts.boot(b)),
            None => self.boot.append_null(),
        }
        self.epoch.append_value(self.texts.epoch(row.epoch));
        self.seq.append_value(row.seq);
        self.len += 1;
    }

    fn finish(&mut self) -> Vec<ArrayRef> {
        self.len = 0;
        vec![
            Arc::new(self.time.finish()),
            Arc::new(self.node.finish()),
            Arc::new(self.sensor.finish()),
            Arc::new(self.quantity.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.unit.finish()),
            Arc::new(self.quality.finish()),
            Arc::new(self.quality_bits.finish()),
            Arc::new(self.time_source.finish()),
            Arc::new(self.mono_ns.finish()),
            Arc::new(self.boot.finish()),
            Arc::new(self.epoch.finish()),
            Arc::new(self.seq.finish()),
        ]
    }
}

fn tidy(ds: &Dataset<'_>, out: &mut dyn Output) -> Result<(), ExportError> {
    let name = format!("{}.parquet", ds.options.stem);
    out.file(&name, "parquet", MEDIATYPE, &mut |w| {
        let mut table = Table::new(tidy_schema(), w)?;
        let mut batch = TidyBatch::new();
        ds.rows(&mut |row| {
            batch.push(&ds.node, row);
            if batch.len >= BATCH_ROWS {
                table.write(batch.finish())?;
            }
            Ok(())
        })?;
        if batch.len > 0 {
            table.write(batch.finish())?;
        }
        table.finish(file_metadata(ds, None)?)?;
        Ok(())
    })?;
    Ok(())
}

/// One wide table being filled, spooled to a temporary file.
struct WideTable {
    quantities: Vec<Quantity>,
    table: Table<std::fs::File>,
    time: TimestampNanosecondBuilder,
    time_source: StringDictionaryBuilder<Int32Type>,
    mono_ns: UInt64Builder,
    boot: StringDictionaryBuilder<Int32Type>,
    values: Vec<(Float64Builder, StringDictionaryBuilder<Int32Type>)>,
    len: usize,
    texts: Texts,
}

impl WideTable {
    fn new(quantities: &[Quantity]) -> Result<Self, ExportError> {
        let file = tempfile::tempfile().map_err(ExportError::write)?;
        Ok(WideTable {
            quantities: quantities.to_vec(),
            table: Table::new(wide_schema(quantities), file)?,
            time: TimestampNanosecondBuilder::with_capacity(BATCH_ROWS).with_timezone("UTC"),
            time_source: StringDictionaryBuilder::new(),
            mono_ns: UInt64Builder::with_capacity(BATCH_ROWS),
            boot: StringDictionaryBuilder::new(),
            values: quantities
                .iter()
                .map(|_| {
                    (
                        Float64Builder::with_capacity(BATCH_ROWS),
                        StringDictionaryBuilder::new(),
                    )
                })
                .collect(),
            len: 0,
            texts: Texts::default(),
        })
    }

    fn push(&mut self, i: &Instant) -> Result<(), ExportError> {
        self.time.append_option(i.utc_ns);
        self.time_source.append_value(source_name(i.time_source));
        self.mono_ns.append_value(i.mono_ns);
        match i.boot {
            Some(b) => self.boot.append_value(self.texts.boot(b)),
            None => self.boot.append_null(),
        }
        for (q, (value, quality)) in self.quantities.iter().zip(&mut self.values) {
            match i.get(*q) {
                Some((v, f)) => {
                    value.append_value(v);
                    quality.append_value(self.texts.quality(f));
                }
                None => {
                    value.append_null();
                    quality.append_null();
                }
            }
        }
        self.len += 1;
        if self.len >= BATCH_ROWS {
            self.write()?;
        }
        Ok(())
    }

    fn write(&mut self) -> Result<(), ExportError> {
        if self.len == 0 {
            return Ok(());
        }
        self.len = 0;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.time_source.finish()),
            Arc::new(self.mono_ns.finish()),
            Arc::new(self.boot.finish()),
        ];
        for (value, quality) in &mut self.values {
            columns.push(Arc::new(value.finish()));
            columns.push(Arc::new(quality.finish()));
        }
        self.table.write(columns)
    }
}

fn wide(ds: &Dataset<'_>, out: &mut dyn Output) -> Result<(), ExportError> {
    let sensors = quantities_by_sensor(ds)?;
    let mut tables: BTreeMap<String, WideTable> = BTreeMap::new();
    for (sensor, quantities) in &sensors {
        tables.insert(sensor.clone(), WideTable::new(quantities)?);
    }
    ds.instants(&mut |i: &Instant| match tables.get_mut(&i.sensor) {
        Some(table) => table.push(i),
        None => Ok(()),
    })?;
    let names = unique_file_names(tables.keys().map(String::as_str));
    for (sensor, mut table) in tables {
        table.write()?;
        let mut file = table.table.finish(file_metadata(ds, Some(&sensor))?)?;
        file.rewind().map_err(ExportError::write)?;
        let name = format!("{}_{}.parquet", ds.options.stem, names[&sensor]);
        out.file(&name, "parquet", MEDIATYPE, &mut |w| copy(&mut file, w))?;
    }
    Ok(())
}
