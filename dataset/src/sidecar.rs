//! The JSON sidecar every export carries: what the sensors are, what units the values are
//! in, how good the times are, what is missing and why, and how complete the export is.
//!
//! Invariants: the sidecar is written last, from the figures of the pass that wrote the
//! data files, so its counts are the files' counts; every gap the records say is listed
//! (store losses, sensor failures and restarts, thinning the export asked for), and link
//! outages are not gaps; readings without UTC are listed per boot and sensor, exported or
//! not; an export made while the hub is still missing records says `partial`; every power
//! step the records hold is listed with its time, level, reason and effects by sensor name.

use std::collections::BTreeMap;

use aloft_protocol::{DeviceParameter, DynamicModel, ParameterValue, Quantity};
use serde::Serialize;

use crate::catalog::{GapEntry, PowerStepEntry};
use crate::output::FileEntry;
use crate::rows::{Count, Dataset, WithoutUtc};
use crate::selection::Selection;
use crate::source::{Completeness, hex};
use crate::time::{rfc3339_ns, source_name};

/// The sidecar's schema version.
pub const SIDECAR_VERSION: u32 = 1;

/// The sidecar document.
#[derive(Debug, Clone, Serialize)]
pub struct Sidecar {
    /// [`SIDECAR_VERSION`].
    pub aloft_export: u32,
    /// The node.
    pub node: String,
    /// The format (`parquet`, `csv`, ... `package`).
    pub format: String,
    /// `tidy` or `wide`, where the format has layouts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layout: Option<String>,
    /// When the export was made (RFC 3339 UTC).
    pub created: String,
    /// What was asked for.
    pub selection: SelectionText,
    /// How each reading's UTC was decided, and at what resolution the files hold times.
    pub time: TimeQuality,
    /// The sensors, with their descriptors and the quantities exported.
    pub sensors: Vec<SensorEntry>,
    /// Losses and silences, so that no one reads missing data as zero.
    pub gaps: Vec<GapEntry>,
    /// Readings that have no UTC (no time correlation ever arrived for their boot).
    pub readings_without_utc: Vec<WithoutUtc>,
    /// The power steps the node sampled under, in stream order (node-level: every step of
    /// the exported records, whatever sensors were selected), so a sensor that went quiet
    /// or slowed says why.
    pub power_steps: Vec<PowerStepEntry>,
    /// Power step records that did not decode and were left out.
    pub power_steps_damaged: u64,
    /// How complete the export is.
    pub completeness: CompletenessText,
    /// Totals.
    pub totals: Totals,
    /// The files of the export (the sidecar itself aside).
    pub files: Vec<FileEntry>,
}

/// The selection as text.
#[derive(Debug, Clone, Serialize)]
pub struct SelectionText {
    /// Sensors (all when empty).
    pub sensors: Vec<String>,
    /// Quantities (all when empty).
    pub quantities: Vec<String>,
    /// From, inclusive (RFC 3339).
    pub from: Option<String>,
    /// To, exclusive (RFC 3339).
    pub to: Option<String>,
    /// Thinning or averaging, when asked: method and interval in seconds.
    pub resample: Option<ResampleText>,
}

/// Thinning or averaging as text.
#[derive(Debug, Clone, Serialize)]
pub struct ResampleText {
    /// `decimate` or `mean`.
    pub method: &'static str,
    /// The interval, s.
    pub interval_s: f64,
    /// What was done, in words.
    pub description: String,
}

/// How good the times are.
#[derive(Debug, Clone, Serialize)]
pub struct TimeQuality {
    /// The definition of a reading's UTC used for the filter and every file.
    pub definition: &'static str,
    /// Rows per time source (`gnss`, `system_clock`, `reconstructed`, `monotonic`).
    pub sources: BTreeMap<&'static str, u64>,
    /// The resolution at which the format's files hold UTC.
    pub resolution: String,
    /// Per boot: its time correlations.
    pub boots: Vec<BootTime>,
}

/// One boot's time correlations.
#[derive(Debug, Clone, Serialize)]
pub struct BootTime {
    /// The boot, hex.
    pub boot: String,
    /// The agent's version.
    pub agent_version: String,
    /// How many time correlations it has.
    pub correlations: usize,
    /// Their largest stated uncertainty, s.
    pub worst_uncertainty_s: Option<f64>,
}

/// A sensor in the sidecar.
#[derive(Debug, Clone, Serialize)]
pub struct SensorEntry {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: Option<String>,
    /// Its descriptors, one per (re)start.
    pub descriptors: Vec<DescriptorText>,
    /// Quantities exported, with units and counts.
    pub quantities: Vec<QuantityEntry>,
}

/// A descriptor as text.
#[derive(Debug, Clone, Serialize)]
pub struct DescriptorText {
    /// When the sensor (re)started (RFC 3339, when UTC was known).
    pub time: Option<String>,
    /// Its monotonic time, ns.
    pub mono_ns: u64,
    /// Device.
    pub device: String,
    /// Firmware.
    pub firmware: Option<String>,
    /// Serial number.
    pub serial_number: Option<String>,
    /// GNSS dynamic model.
    pub dynamic_model: Option<String>,
    /// Calibration and configuration words.
    pub parameters: BTreeMap<String, serde_json::Value>,
}

/// A quantity of a sensor.
#[derive(Debug, Clone, Serialize)]
pub struct QuantityEntry {
    /// Name.
    pub name: String,
    /// Unit (UDUNITS); `null` for a quantity this build does not know.
    pub unit: Option<&'static str>,
    /// CF standard name, where one exists.
    pub cf_standard_name: Option<&'static str>,
    /// Counts.
    #[serde(flatten)]
    pub count: Count,
}

/// Completeness as the sidecar says it.
#[derive(Debug, Clone, Serialize)]
pub struct CompletenessText {
    /// `complete` when nothing is known to be missing, else `partial`.
    pub status: &'static str,
    /// In words.
    pub summary: String,
    /// The source's account.
    #[serde(flatten)]
    pub detail: Completeness,
}

/// Totals.
#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    /// Rows in the files.
    pub rows: u64,
    /// First and last UTC (RFC 3339).
    pub time_coverage_start: Option<String>,
    /// Last UTC.
    pub time_coverage_end: Option<String>,
    /// Latitude range.
    pub latitude: Option<(f64, f64)>,
    /// Longitude range.
    pub longitude: Option<(f64, f64)>,
    /// Altitude range, m above MSL.
    pub altitude_m: Option<(f64, f64)>,
}

/// The time definition, in the words the sidecar carries.
pub const TIME_DEFINITION: &str = "A reading keeps the UTC it carried (gnss, system_clock, or reconstructed by the agent). Otherwise its boot is the newest boot record before it in its store epoch (sequence-number order) and its UTC is reconstructed from that boot's time correlation nearest in monotonic time (a tie goes to the earlier one): utc = correlation.utc + (reading.mono - correlation.mono), time source reconstructed. Otherwise it has no UTC and is listed under readings_without_utc.";

fn dynamic_model_name(m: DynamicModel) -> String {
    format!("{m:?}").to_lowercase()
}

fn parameter_json(p: &DeviceParameter) -> serde_json::Value {
    match &p.value {
        ParameterValue::Integer(i) => serde_json::Value::from(*i),
        ParameterValue::Real(r) => serde_json::Value::from(*r),
        ParameterValue::Text(t) => serde_json::Value::from(t.clone()),
    }
}

/// The selection as the sidecar and metadata print it.
pub fn selection_text(sel: &Selection) -> SelectionText {
    SelectionText {
        sensors: sel.sensors.clone(),
        quantities: sel.quantities.iter().map(ToString::to_string).collect(),
        from: sel.from_utc_ns.map(rfc3339_ns),
        to: sel.to_utc_ns.map(rfc3339_ns),
        resample: sel.resample.map(|r| {
            let s = r.interval_ns() as f64 / 1e9;
            match r {
                crate::selection::Resample::Decimate { .. } => ResampleText {
                    method: "decimate",
                    interval_s: s,
                    description: format!(
                        "the first reading of each sensor and quantity in each {s} s interval (aligned to 1970-01-01T00:00:00Z), unchanged; the others are left out and counted as thinned"
                    ),
                },
                crate::selection::Resample::Mean { .. } => ResampleText {
                    method: "mean",
                    interval_s: s,
                    description: format!(
                        "the arithmetic mean of each sensor's quantity over each {s} s interval (aligned to 1970-01-01T00:00:00Z), stamped with the interval's start; quality flags of the readings or-ed"
                    ),
                },
            }
        }),
    }
}

/// Builds the sidecar of `ds` after its files were written with the latest pass.
pub fn build(
    ds: &Dataset<'_>,
    format: &str,
    layout: Option<&str>,
    resolution: &str,
    files: &[FileEntry],
) -> Sidecar {
    let stats = ds.stats();
    let completeness = ds.completeness();
    let sensors = ds
        .catalog
        .sensors
        .values()
        .filter(|s| ds.selection.sensors.is_empty() || ds.selection.sensors.contains(&s.name))
        .map(|s| sensor_entry(s, stats.counts.get(&s.name)))
        .chain(
            // Sensors seen only in readings (no descriptor before them).
            stats
                .counts
                .iter()
                .filter(|(name, _)| !ds.catalog.sensors.contains_key(*name))
                .map(|(name, counts)| {
                    sensor_entry(
                        &crate::catalog::SensorInfo {
                            name: name.clone(),
                            kind: None,
                            descriptors: Vec::new(),
                        },
                        Some(counts),
                    )
                }),
        )
        .collect();
    let mut gaps: Vec<GapEntry> = ds
        .catalog
        .gaps
        .iter()
        .filter(|g| {
            g.sensor
                .as_ref()
                .is_none_or(|s| ds.selection.sensors.is_empty() || ds.selection.sensors.contains(s))
        })
        .cloned()
        .collect();
    for (sensor, quantities) in &stats.counts {
        for (q, c) in quantities {
            if c.thinned > 0 {
                gaps.push(GapEntry {
                    reason: "export_decimation".to_owned(),
                    epoch: None,
                    seq: None,
                    covers: None,
                    readings: Some(c.thinned),
                    sensor: Some(sensor.clone()),
                    from: None,
                    to: None,
                    from_mono_ns: None,
                    to_mono_ns: None,
                    detail: Some(format!(
                        "{q}: left out by the export's decimation, still held by the source"
                    )),
                });
            }
        }
    }
    // A backlog the node reported counts until the hub is known to hold it: a node that
    // drained and went offline before its next report is not partial for ever.
    let outstanding = completeness.origin == "hub"
        && completeness
            .node_backlog
            .as_ref()
            .is_some_and(|b| b.unsent_records > 0 && b.arrived != Some(true));
    let partial = !completeness.missing.is_empty() || outstanding;
    let summary = if partial {
        let missing: u64 = completeness
            .missing
            .iter()
            .map(|m| m.last.saturating_sub(m.first).saturating_add(1))
            .sum();
        let mut why = Vec::new();
        if missing > 0 {
            why.push(format!(
                "{missing} sequence numbers are not held by the {}",
                completeness.origin
            ));
        }
        if let Some(b) = completeness.node_backlog.as_ref().filter(|_| outstanding) {
            why.push(format!(
                "the node last reported {} records not yet acknowledged{}, and the hub has not received them all",
                b.unsent_records,
                b.reported
                    .as_ref()
                    .map(|t| format!(" at {t}"))
                    .unwrap_or_default()
            ));
        }
        format!("partial: {}", why.join("; "))
    } else {
        format!(
            "complete: the {} holds every record of the node's stream up to its newest",
            completeness.origin
        )
    };
    let boots = ds
        .catalog
        .boots
        .iter()
        .map(|b| BootTime {
            boot: hex(&b.boot_id.0),
            agent_version: b.agent_version.clone(),
            correlations: ds.catalog.correlations.count(&b.boot_id),
            worst_uncertainty_s: ds
                .catalog
                .correlations
                .worst_uncertainty(&b.boot_id)
                .map(|n| n as f64 / 1e9),
        })
        .collect();
    let coverage = stats.coverage_text();
    Sidecar {
        aloft_export: SIDECAR_VERSION,
        node: ds.node.clone(),
        format: format.to_owned(),
        layout: layout.map(str::to_owned),
        created: rfc3339_ns(ds.options.created_utc_ns),
        selection: selection_text(&ds.selection),
        time: TimeQuality {
            definition: TIME_DEFINITION,
            sources: stats.time_sources.clone(),
            resolution: resolution.to_owned(),
            boots,
        },
        sensors,
        gaps,
        readings_without_utc: stats.without_utc.clone(),
        power_steps: ds.catalog.power_steps.clone(),
        power_steps_damaged: ds.catalog.damaged_power_steps,
        completeness: CompletenessText {
            status: if partial { "partial" } else { "complete" },
            summary,
            detail: completeness,
        },
        totals: Totals {
            rows: stats.rows,
            time_coverage_start: coverage.as_ref().map(|c| c.0.clone()),
            time_coverage_end: coverage.map(|c| c.1),
            latitude: stats.latitude,
            longitude: stats.longitude,
            altitude_m: stats.altitude,
        },
        files: files.to_vec(),
    }
}

fn sensor_entry(
    s: &crate::catalog::SensorInfo,
    counts: Option<&BTreeMap<Quantity, Count>>,
) -> SensorEntry {
    SensorEntry {
        name: s.name.clone(),
        kind: s.kind.clone(),
        descriptors: s
            .descriptors
            .iter()
            .map(|d| DescriptorText {
                time: d.time.utc_ns.map(rfc3339_ns),
                mono_ns: d.time.mono_ns,
                device: d.descriptor.device.clone(),
                firmware: d.descriptor.firmware.clone(),
                serial_number: d.descriptor.serial_number.clone(),
                dynamic_model: d.descriptor.dynamic_model.map(dynamic_model_name),
                parameters: d
                    .descriptor
                    .parameters
                    .iter()
                    .map(|p| (p.name.clone(), parameter_json(p)))
                    .collect(),
            })
            .collect(),
        quantities: counts
            .into_iter()
            .flatten()
            .map(|(q, c)| QuantityEntry {
                name: q.to_string(),
                unit: q.unit(),
                cf_standard_name: q.cf_standard_name(),
                count: c.clone(),
            })
            .collect(),
    }
}

/// Names of time sources, for formats that list them in metadata.
pub fn time_source_names() -> [&'static str; 4] {
    [
        source_name(aloft_protocol::TimeSource::Monotonic),
        source_name(aloft_protocol::TimeSource::SystemClock),
        source_name(aloft_protocol::TimeSource::Gnss),
        source_name(aloft_protocol::TimeSource::Reconstructed),
    ]
}
