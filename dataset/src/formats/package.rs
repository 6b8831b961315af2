//! The open-data package (`--format package`): every other format of [`Format::ALL`] in a
//! folder named after it, both layouts where a format has them (tidy in `FORMAT/`, wide in
//! `FORMAT/wide/`), each folder a complete export with its own sidecar; and at the top a
//! `README.md` for people, a Frictionless Data `datapackage.json` for tools, and the
//! package's sidecar, which [`crate::export`] writes last so that it lists every file.
//! A format that refuses the selection before it begins a file (`Unsuitable`: IGC without
//! GNSS fixes) is left out and the README says why; any other failure fails the package.
//!
//! `datapackage.json` describes each CSV and Parquet file as a tabular resource with its
//! Table Schema (field types, descriptions, units as the custom `unit` property, the CF
//! standard name as `cf_standard_name`, `missingValues: [""]`), and every other file as a
//! resource with its format, media type, size and `sha256:` hash (a Parquet table has no
//! `bytes`: frictionless reads Parquet through pyarrow, counts none and would report any
//! size as wrong); the licence, the source,
//! and the time and space the data covers (`temporalCoverage`, `spatialCoverage`, custom
//! properties) come from the export's options and figures.
//!
//! Invariants: the package holds exactly what the formats write for the same dataset, so
//! a format added to [`Format::ALL`] joins it without a change here; every file the package
//! holds before its own sidecar is a resource of `datapackage.json` with the checksum it
//! was written with, and the README names every file.

use std::fmt::Write as _;

use aloft_protocol::Quantity;
use serde_json::{Value, json};

use crate::ExportError;
use crate::formats::{Format, Layout, export, unique_file_names};
use crate::output::{FileEntry, Output};
use crate::rows::{Dataset, Stats};
use crate::sidecar::{self, TIME_DEFINITION};

/// The package's table of contents for tools.
pub const DATAPACKAGE: &str = "datapackage.json";

/// The package's description for people.
pub const README: &str = "README.md";

/// An [`Output`] that writes into a folder of another.
struct Subfolder<'o> {
    inner: &'o mut dyn Output,
    prefix: String,
    /// The files written here, with paths relative to the folder (a format's sidecar lists
    /// its neighbours).
    files: Vec<FileEntry>,
    /// Whether a file was begun here (complete or not).
    started: bool,
}

impl Output for Subfolder<'_> {
    fn file(
        &mut self,
        path: &str,
        format: &str,
        mediatype: &str,
        write: &mut dyn FnMut(&mut dyn std::io::Write) -> Result<(), ExportError>,
    ) -> Result<FileEntry, ExportError> {
        self.started = true;
        let mut entry =
            self.inner
                .file(&format!("{}{path}", self.prefix), format, mediatype, write)?;
        entry.path = path.to_owned();
        self.files.push(entry.clone());
        Ok(entry)
    }

    fn files(&self) -> &[FileEntry] {
        &self.files
    }
}

/// What a data file of the package holds, for its Table Schema.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Table<'a> {
    /// Not a table.
    None,
    /// The tidy layout of `format`.
    Tidy(Format),
    /// The wide table of one sensor.
    Wide(Format, &'a str),
}

/// Writes the package's data files, README and `datapackage.json` (the sidecar follows).
pub fn write(ds: &Dataset<'_>, out: &mut dyn Output) -> Result<(), ExportError> {
    // (folder, format, layout) of every export in the package.
    let mut parts: Vec<(String, Format, Layout)> = Vec::new();
    for &format in Format::ALL {
        if format == Format::Package {
            continue;
        }
        parts.push((format!("{}/", format.name()), format, Layout::Tidy));
        if format.has_layouts() {
            parts.push((format!("{}/wide/", format.name()), format, Layout::Wide));
        }
    }
    // Formats that cannot carry this selection (IGC without GNSS fixes), with why.
    let mut left_out: Vec<(Format, String)> = Vec::new();
    for (folder, format, layout) in &parts {
        let mut options = ds.options.clone();
        options.layout = *layout;
        let part = ds.with_options(options);
        let mut sub = Subfolder {
            inner: &mut *out,
            prefix: folder.clone(),
            files: Vec::new(),
            started: false,
        };
        match export(&part, *format, &mut sub) {
            Ok(_) => {}
            // Refused before it began a file: nothing of it is in the output.
            Err(ExportError::Unsuitable(why)) if !sub.started => {
                tracing::info!(format = format.name(), reason = %why, "Format left out of the package.");
                if !left_out.iter().any(|(f, _)| f == format) {
                    left_out.push((*format, why));
                }
                continue;
            }
            Err(e) => return Err(e),
        }
        tracing::debug!(
            format = format.name(),
            layout = layout.name(),
            files = sub.files.len(),
            "Package part written."
        );
    }
    // The figures of the whole selection, for the README and the package descriptor.
    ds.rows(&mut |_| Ok(()))?;
    let stats = ds.stats();
    let data_files = out.files().to_vec();
    let kinds = classify(ds, &stats, &parts, &data_files);

    let readme = readme(ds, &stats, &data_files, &left_out);
    out.file(README, "markdown", "text/markdown", &mut |w| {
        w.write_all(readme.as_bytes()).map_err(ExportError::write)
    })?;
    let readme_entry = out.files().last().cloned();

    let mut resources: Vec<Value> = data_files
        .iter()
        .zip(&kinds)
        .map(|(f, kind)| resource(ds, &stats, f, *kind))
        .collect();
    resources.extend(
        readme_entry
            .iter()
            .map(|f| resource(ds, &stats, f, Table::None)),
    );
    let descriptor = descriptor(ds, &stats, resources);
    out.file(DATAPACKAGE, "json", "application/json", &mut |w| {
        serde_json::to_writer_pretty(&mut *w, &descriptor)
            .map_err(|e| ExportError::Write(e.into()))?;
        w.write_all(b"\n").map_err(ExportError::write)
    })?;
    Ok(())
}

/// Which table each data file is, from the folder it was written to and its name.
fn classify<'s>(
    ds: &Dataset<'_>,
    stats: &'s Stats,
    parts: &[(String, Format, Layout)],
    files: &[FileEntry],
) -> Vec<Table<'s>> {
    // The names the wide writers gave each sensor's table.
    let wide_names = unique_file_names(stats.counts.keys().map(String::as_str));
    files
        .iter()
        .map(|f| {
            let tabular = matches!(f.format.as_str(), "csv" | "parquet");
            // The deepest folder the file is in decides its layout.
            let part = parts
                .iter()
                .filter(|(folder, _, _)| {
                    f.path
                        .strip_prefix(folder.as_str())
                        .is_some_and(|rest| !rest.contains('/'))
                })
                .max_by_key(|(folder, _, _)| folder.len());
            match part {
                Some((_, format, Layout::Tidy)) if tabular => Table::Tidy(*format),
                Some((folder, format, Layout::Wide)) if tabular => stats
                    .counts
                    .keys()
                    .find(|sensor| {
                        f.path
                            == format!(
                                "{folder}{}_{}.{}",
                                ds.options.stem,
                                wide_names[sensor.as_str()],
                                format.name()
                            )
                    })
                    .map_or(Table::None, |sensor| Table::Wide(*format, sensor)),
                _ => Table::None,
            }
        })
        .collect()
}

fn field(name: &str, kind: &str, description: &str) -> Value {
    json!({ "name": name, "type": kind, "description": description })
}

fn time_description() -> String {
    format!("UTC of the reading; empty when it has none (see mono_ns and boot). {TIME_DEFINITION}")
}

/// The Table Schema of a table.
fn schema(stats: &Stats, table: Table<'_>) -> Option<Value> {
    let time = match table {
        Table::None => return None,
        Table::Tidy(f) | Table::Wide(f, _) if f.name() == "csv" => "time_utc",
        _ => "time",
    };
    let mut fields = vec![field(time, "datetime", &time_description())];
    let quality = "quality flag names joined by |, empty when none is set";
    let time_source = "where the UTC came from: gnss, system_clock, reconstructed (from monotonic time and a time correlation), monotonic (no UTC)";
    let mono = {
        let mut f = field(
            "mono_ns",
            "integer",
            "the agent's monotonic clock since its boot (field boot)",
        );
        f["unit"] = json!("ns");
        f
    };
    let boot = field("boot", "string", "the agent's boot, hex");
    match table {
        Table::None => return None,
        Table::Tidy(format) => {
            fields.push(field("node", "string", "the node (instrument board)"));
            fields.push(field("sensor", "string", "the sensor's name on the node"));
            fields.push(field("quantity", "string", "what was measured"));
            fields.push(field(
                "value",
                "number",
                "the value, in the unit of field unit",
            ));
            fields.push(field("unit", "string", "UDUNITS unit of value"));
            fields.push(field("quality", "string", quality));
            if format.name() == "parquet" {
                fields.push(field(
                    "quality_bits",
                    "integer",
                    "quality flags as bits: 1 out_of_range, 2 crc_failed, 4 stale, 8 simulated, 16 invalid, 32 derived, 64 degraded_input",
                ));
            }
            fields.push(field("time_source", "string", time_source));
            fields.push(mono);
            fields.push(boot);
            fields.push(field("epoch", "string", "the store epoch, hex"));
            fields.push(field(
                "seq",
                "integer",
                "the reading's sequence number in its store epoch",
            ));
        }
        Table::Wide(_, sensor) => {
            fields.push(field("time_source", "string", time_source));
            fields.push(mono);
            fields.push(boot);
            let quantities: Vec<Quantity> = stats
                .counts
                .get(sensor)
                .map(|qs| qs.keys().copied().collect())
                .unwrap_or_default();
            for q in quantities {
                let mut f = field(
                    &q.to_string(),
                    "number",
                    &format!("{q} measured by {sensor}; empty when this instant has none"),
                );
                if let Some(unit) = q.unit() {
                    f["unit"] = json!(unit);
                }
                if let Some(standard) = q.cf_standard_name() {
                    f["cf_standard_name"] = json!(standard);
                }
                fields.push(f);
                fields.push(field(&format!("{q}_quality"), "string", quality));
            }
        }
    }
    Some(json!({ "fields": fields, "missingValues": [""] }))
}

/// A resource name: lowercase letters, digits, `-`, `.` and `_`, from the file's path.
fn resource_name(path: &str) -> String {
    path.chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '.' | '_' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect()
}

fn resource(ds: &Dataset<'_>, stats: &Stats, file: &FileEntry, table: Table<'_>) -> Value {
    let mut r = json!({
        "name": resource_name(&file.path),
        "path": file.path,
        "format": file.format,
        "mediatype": file.mediatype,
        "bytes": file.bytes,
        "hash": format!("sha256:{}", file.sha256),
    });
    match schema(stats, table) {
        Some(schema) => {
            r["profile"] = json!("tabular-data-resource");
            r["type"] = json!("table");
            r["title"] = json!(match table {
                Table::Wide(_, sensor) => format!(
                    "{} of {}, one row per instant, one column per quantity",
                    sensor, ds.node
                ),
                _ => format!("readings of {}, one row per reading", ds.node),
            });
            if file.format == "parquet" {
                // frictionless reads Parquet through pyarrow, not its byte stream, so it
                // counts no bytes and would call any size wrong; the hash stays.
                if let Some(map) = r.as_object_mut() {
                    map.remove("bytes");
                }
            }
            if file.format == "csv" {
                r["encoding"] = json!("utf-8");
                r["dialect"] = json!({ "delimiter": ",", "lineTerminator": "\r\n", "quoteChar": "\"", "header": true });
            }
            r["schema"] = schema;
        }
        None => {
            r["type"] = json!("file");
        }
    }
    r
}

/// The licence as Data Package wants it: a URL is a path, anything else a name.
fn license(id: &str) -> Value {
    let known = [
        (
            "CC-BY-4.0",
            "https://creativecommons.org/licenses/by/4.0/",
            "Creative Commons Attribution 4.0",
        ),
        (
            "CC0-1.0",
            "https://creativecommons.org/publicdomain/zero/1.0/",
            "CC0 1.0",
        ),
        (
            "ODbL-1.0",
            "https://opendatacommons.org/licenses/odbl/1-0/",
            "Open Data Commons Open Database License 1.0",
        ),
        (
            "CC-BY-SA-4.0",
            "https://creativecommons.org/licenses/by-sa/4.0/",
            "Creative Commons Attribution Share-Alike 4.0",
        ),
    ];
    if let Some((name, path, title)) = known.iter().find(|(n, _, _)| *n == id) {
        json!({ "name": name, "path": path, "title": title })
    } else if id.starts_with("http://") || id.starts_with("https://") {
        json!({ "path": id, "title": id })
    } else {
        json!({ "name": id, "title": id })
    }
}

fn title(ds: &Dataset<'_>) -> String {
    if ds.options.metadata.title.is_empty() {
        format!(
            "Flight data of {} ({})",
            ds.node, ds.options.metadata.platform
        )
    } else {
        ds.options.metadata.title.clone()
    }
}

fn descriptor(ds: &Dataset<'_>, stats: &Stats, resources: Vec<Value>) -> Value {
    let meta = &ds.options.metadata;
    let coverage = stats.coverage_text();
    let completeness = ds.completeness();
    let mut d = json!({
        "profile": "data-package",
        "name": resource_name(&ds.options.stem),
        "title": title(ds),
        "description": format!(
            "Readings of the sensors of node {} on the {} of project {}, exported by Aloft. See README.md; {}.sidecar.json lists gaps and completeness.",
            ds.node, meta.platform, meta.project, ds.options.stem
        ),
        "created": sidecar_created(ds),
        "licenses": [license(&meta.license)],
        "sources": [{
            "title": format!("the record stream of node {} held by the {}", ds.node, completeness.origin),
        }],
        "contributors": [{ "title": meta.principal_investigator, "role": "author", "organization": meta.institution }],
        "keywords": [meta.platform, meta.project],
        "resources": resources,
    });
    if let Some((start, end)) = coverage {
        d["temporalCoverage"] = json!({ "start": start, "end": end });
    }
    if let (Some(lat), Some(lon)) = (stats.latitude, stats.longitude) {
        let mut space = json!({
            "type": "bbox",
            "crs": "EPSG:4326",
            "bbox": [lon.0, lat.0, lon.1, lat.1],
        });
        if let Some(alt) = stats.altitude {
            space["altitude_m_msl"] = json!([alt.0, alt.1]);
        }
        d["spatialCoverage"] = space;
    }
    d
}

fn sidecar_created(ds: &Dataset<'_>) -> String {
    crate::time::rfc3339_ns(ds.options.created_utc_ns)
}

fn what_file_is(path: &str, format: &str) -> &'static str {
    match format {
        _ if path.ends_with(".sidecar.json") => {
            "the export's sidecar: sensors and descriptors, units, time quality, gaps, completeness"
        }
        "csv" if path.contains("/wide/") => "CSV, one table per sensor (wide)",
        "csv" => "CSV, one row per reading (tidy)",
        "parquet" if path.contains("/wide/") => "Parquet, one table per sensor (wide)",
        "parquet" => "Parquet, one row per reading (tidy)",
        "netcdf" => "NetCDF-CF trajectory",
        "icartt" => "ICARTT 1001",
        "igc" => "IGC flight log",
        "geojson" => "GeoJSON track and readings",
        "kml" => "KML track for Google Earth",
        _ => "data file",
    }
}

fn range(r: Option<(f64, f64)>, unit: &str) -> String {
    r.map_or_else(|| "none".to_owned(), |(a, b)| format!("{a} to {b} {unit}"))
}

/// The README: what the flight is, the files, units, time, gaps, completeness, licence,
/// and how to read it.
fn readme(
    ds: &Dataset<'_>,
    stats: &Stats,
    files: &[FileEntry],
    left_out: &[(Format, String)],
) -> String {
    let meta = &ds.options.metadata;
    let doc = sidecar::build(ds, Format::Package.name(), None, "", files);
    let stem = &ds.options.stem;
    let mut s = String::new();
    let _ = writeln!(s, "# {}\n", title(ds));
    let _ = writeln!(
        s,
        "Readings of the sensors of node `{}` on the {} of project {} ({}), exported by Aloft on {}. Principal investigator: {}. Pilot: {}. Glider: {} ({}).\n",
        ds.node,
        meta.platform,
        meta.project,
        meta.institution,
        doc.created,
        meta.principal_investigator,
        meta.pilot,
        meta.glider_type,
        meta.glider_id,
    );
    let _ = writeln!(s, "## Coverage\n");
    let coverage = stats.coverage_text();
    let _ = writeln!(
        s,
        "- Time (UTC): {}",
        coverage.map_or_else(|| "none".to_owned(), |(a, b)| format!("{a} to {b}"))
    );
    let _ = writeln!(s, "- Latitude: {}", range(stats.latitude, "degrees north"));
    let _ = writeln!(s, "- Longitude: {}", range(stats.longitude, "degrees east"));
    let _ = writeln!(
        s,
        "- Altitude: {}",
        range(stats.altitude, "m above mean sea level")
    );
    let _ = writeln!(s, "- Readings: {}\n", stats.rows);

    let _ = writeln!(s, "## Files\n");
    let _ = writeln!(
        s,
        "Each folder is one format, a complete export with its own sidecar; `wide/` holds the wide layout of a format that has two.\n"
    );
    let _ = writeln!(
        s,
        "| file | what | bytes | sha256 |\n| --- | --- | --- | --- |"
    );
    for f in files {
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | `{}` |",
            f.path,
            what_file_is(&f.path, &f.format),
            f.bytes,
            f.sha256
        );
    }
    let _ = writeln!(s, "| `{README}` | this file | | |");
    let _ = writeln!(
        s,
        "| `{DATAPACKAGE}` | the Frictionless Data package: a Table Schema for every table, checksums of every file | | |"
    );
    let _ = writeln!(
        s,
        "| `{stem}.sidecar.json` | the package's sidecar: sensors and descriptors, units, time quality, gaps, completeness, every file | | |\n"
    );

    for (format, why) in left_out {
        let _ = writeln!(
            s,
            "Not in this package: {}, which cannot carry this selection: {why}\n",
            format.name()
        );
    }
    let _ = writeln!(s, "## Sensors and units\n");
    let _ = writeln!(
        s,
        "Values are in SI-derived units (UDUNITS spelling), never converted.\n\n| sensor | device | quantity | unit | CF standard name | readings |\n| --- | --- | --- | --- | --- | --- |"
    );
    for sensor in &doc.sensors {
        let device = sensor.descriptors.last().map_or("", |d| d.device.as_str());
        for q in &sensor.quantities {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                sensor.name,
                device,
                q.name,
                q.unit.unwrap_or("(unknown)"),
                q.cf_standard_name.unwrap_or(""),
                q.count.readings
            );
        }
    }
    let _ = writeln!(s, "\n## Time\n\n{TIME_DEFINITION}\n");
    let _ = writeln!(s, "Readings per time source:\n");
    for (source, n) in &stats.time_sources {
        let _ = writeln!(s, "- {source}: {n}");
    }
    let _ = writeln!(
        s,
        "\nA reading with no UTC (time source `monotonic`) has an empty time and keeps its monotonic time (`mono_ns`) and boot. Files hold UTC at these resolutions:\n"
    );
    for &format in Format::ALL {
        if format != Format::Package {
            let _ = writeln!(s, "- {}: {}", format.name(), format.time_resolution());
        }
    }
    let _ = writeln!(s, "\n## Gaps\n");
    let _ = writeln!(
        s,
        "Missing data is never zero: an empty cell is a missing value. What the records say is missing (link outages are not gaps: the data arrived later):\n"
    );
    if doc.gaps.is_empty() {
        let _ = writeln!(s, "- none");
    }
    for g in &doc.gaps {
        let _ = writeln!(
            s,
            "- {}{}{}{}{}",
            g.reason,
            g.sensor
                .as_ref()
                .map(|x| format!(", sensor {x}"))
                .unwrap_or_default(),
            match (&g.from, &g.to) {
                (Some(a), Some(b)) => format!(", {a} to {b}"),
                (Some(a), None) => format!(", from {a}"),
                _ => String::new(),
            },
            g.readings
                .map(|n| format!(", {n} readings"))
                .unwrap_or_default(),
            g.detail
                .as_ref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default(),
        );
    }
    power_steps_section(&mut s, &doc);
    if !doc.readings_without_utc.is_empty() {
        let _ = writeln!(
            s,
            "\nReadings without UTC (no time correlation for their boot):\n"
        );
        for w in &doc.readings_without_utc {
            let _ = writeln!(
                s,
                "- boot {}, sensor {}: {} readings, monotonic {} to {} ns{}",
                w.boot.as_deref().unwrap_or("unknown"),
                w.sensor,
                w.readings,
                w.first_mono_ns,
                w.last_mono_ns,
                if w.exported {
                    ""
                } else {
                    " (not exported: a time filter cannot match them)"
                }
            );
        }
    }
    let _ = writeln!(s, "\n## Completeness\n\n{}\n", doc.completeness.summary);
    let _ = writeln!(
        s,
        "## Licence\n\n{}. Cite the principal investigator and the project when you use the data.\n",
        meta.license
    );
    let tidy_parquet = files
        .iter()
        .find(|f| f.format == "parquet" && !f.path.contains("/wide/"));
    let tidy_csv = files
        .iter()
        .find(|f| f.format == "csv" && !f.path.contains("/wide/"));
    let _ = writeln!(
        s,
        "## Reading it in Python\n\n```python\nimport pandas as pd"
    );
    if let Some(f) = tidy_parquet {
        let _ = writeln!(
            s,
            "readings = pd.read_parquet(\"{}\")  # time is datetime64[ns, UTC]",
            f.path
        );
    }
    if let Some(f) = tidy_csv {
        let _ = writeln!(
            s,
            "readings = pd.read_csv(\"{}\", parse_dates=[\"time_utc\"], keep_default_na=False, na_values={{\"value\": [\"\"], \"time_utc\": [\"\"]}})",
            f.path
        );
    }
    let _ = writeln!(
        s,
        "\nfrom frictionless import Package\npackage = Package(\"{DATAPACKAGE}\")\n```"
    );
    s
}

/// The README's power steps: when the node changed step, to which level, why, and what it
/// did to each sensor, so a sensor that went quiet or slowed is not read as a fault. Text
/// the agent chose is made one line.
fn power_steps_section(s: &mut String, doc: &sidecar::Sidecar) {
    use crate::formats::track::one_line;
    if doc.power_steps.is_empty() && doc.power_steps_damaged == 0 {
        return;
    }
    let _ = writeln!(s, "\n## Power steps\n");
    let _ = writeln!(
        s,
        "The node lowers sampling rates, stops sensors or lowers its upload budget as its battery runs down (level 0, `full`, is full power). Each change:\n"
    );
    for p in &doc.power_steps {
        let effects: Vec<String> = p
            .effects
            .iter()
            .map(|e| {
                let what = if e.disabled {
                    "stopped".to_owned()
                } else if let Some(ms) = e.interval_ms {
                    format!("at most every {ms} ms")
                } else {
                    "unchanged".to_owned()
                };
                format!(
                    "{} {what}{}",
                    one_line(&e.sensor),
                    if e.overridden {
                        " (exempted by the operator: not applied)"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "- {}: {} (level {}): {}{}{}",
            p.time
                .clone()
                .unwrap_or_else(|| format!("no UTC (monotonic {} ns)", p.mono_ns)),
            one_line(&p.step),
            p.level,
            one_line(&p.reason),
            p.upload_bytes_per_s
                .map(|b| format!("; upload budget {b} bytes/s"))
                .unwrap_or_default(),
            if effects.is_empty() {
                String::new()
            } else {
                format!("; {}", effects.join(", "))
            },
        );
    }
    if doc.power_steps_damaged > 0 {
        let _ = writeln!(
            s,
            "\n{} power step records could not be read and are left out.",
            doc.power_steps_damaged
        );
    }
}
