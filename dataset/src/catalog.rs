//! The catalog: what an export knows before it writes a row, from one pass over every
//! record that is not a reading: the sensors and their descriptors, the boots, the time
//! correlations, the gaps (store losses, sensor outages), the power steps the node sampled
//! under and the epochs.
//!
//! A power step record whose body does not decode (damaged, or from a hostile or newer
//! writer) is skipped and counted, never a failure of the export; extension records of
//! other kinds are left alone.
//!
//! Invariants: sensors are named as the hub names them: by the newest descriptor for
//! their number before the record in the stream, `sensor-N` before any. Link outages are
//! not gaps (the agent's store keeps everything across them); store losses, sensor
//! failures and restarts are, and so is thinning an export asks for.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use aloft_protocol::{
    BootId, DescriptorRecord, GapReason, POWER_STEP_RECORD_KIND, PowerStepRecord, Record, SensorId,
    SensorState, StoreEpoch, Timestamp,
};
use serde::Serialize;

use crate::source::{RecordSource, SourceError, hex, reason_name};
use crate::time::{Correlations, reading_utc, rfc3339_ns, source_name};

/// A sensor's name before any descriptor named it.
pub fn unnamed_sensor(id: SensorId) -> String {
    format!("sensor-{}", id.0)
}

/// What the export knows about one sensor (by name).
#[derive(Debug, Clone, PartialEq)]
pub struct SensorInfo {
    /// The name in the node's config.
    pub name: String,
    /// The configured kind (`ublox`, `bme280`, ...), from its newest descriptor.
    pub kind: Option<String>,
    /// Every descriptor recorded for it, in stream order (one per (re)start).
    pub descriptors: Vec<DescriptorRecord>,
}

/// One boot of the node's board.
#[derive(Debug, Clone, PartialEq)]
pub struct BootInfo {
    /// The boot.
    pub boot_id: BootId,
    /// The epoch and number of its boot record.
    pub epoch: StoreEpoch,
    /// Its boot record's number.
    pub seq: u64,
    /// The agent's version then.
    pub agent_version: String,
}

/// Something lost, or a time a sensor gave no readings, that an export must not let
/// anyone read as zero.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GapEntry {
    /// `dropped_oldest`, `decimated`, `rejected_new`, `corrupt_region`, `crash`,
    /// `sensor_outage` (from the agent's gap records); `sensor_failed`,
    /// `sensor_restart` (from the sensor's status changes); `export_decimation`.
    pub reason: String,
    /// The epoch, lowercase hex, when the gap is a record of the stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
    /// The record's sequence number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Sequence numbers (inclusive) the gap accounts for, when they had numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub covers: Option<[u64; 2]>,
    /// Readings lost, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readings: Option<u64>,
    /// The sensor concerned, when one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
    /// From (RFC 3339 UTC), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// To (RFC 3339 UTC), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// From, monotonic ns of the boot, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_mono_ns: Option<u64>,
    /// To, monotonic ns, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_mono_ns: Option<u64>,
    /// What the agent said (a sensor failure's reason).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What a power step did to one sensor, by name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PowerEffectEntry {
    /// The sensor's name (as the stream named it at the step).
    pub sensor: String,
    /// The interval the step holds it to at least, ms; `None` when it does not slow it.
    pub interval_ms: Option<u32>,
    /// The step switched it off.
    pub disabled: bool,
    /// The operator exempted it: the effect was not applied.
    pub overridden: bool,
}

/// A power step the node entered (or left, back to `full` at level 0), so an export shows
/// why a sensor went quiet or slowed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PowerStepEntry {
    /// When it took effect (RFC 3339 UTC, by the dataset's definition of a reading's UTC:
    /// its own, else reconstructed from its boot's correlations); `None` without UTC.
    pub time: Option<String>,
    /// Where that UTC came from (`gnss`, `system_clock`, `reconstructed`, `monotonic`).
    pub time_source: &'static str,
    /// When, monotonic ns of its boot.
    pub mono_ns: u64,
    /// The epoch, lowercase hex.
    pub epoch: String,
    /// The record's sequence number.
    pub seq: u64,
    /// The step's name in the agent's config; `full` at level 0.
    pub step: String,
    /// 0 at full power; higher saves more.
    pub level: u8,
    /// Why, in the agent's words.
    pub reason: String,
    /// The upload budget it held the link to, bytes/s, when it lowered it.
    pub upload_bytes_per_s: Option<u64>,
    /// What it did to each sensor it touched.
    pub effects: Vec<PowerEffectEntry>,
    /// Its UTC, ns, for sorting and range checks (not written: `time` says it).
    #[serde(skip)]
    pub utc_ns: Option<i64>,
}

/// A power step read in the pass, its time decided once every correlation is known.
#[derive(Debug, Clone)]
struct PendingStep {
    boot: Option<BootId>,
    time: Timestamp,
    entry: PowerStepEntry,
}

/// The catalog of a node's records.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Sensors by name.
    pub sensors: BTreeMap<String, SensorInfo>,
    /// Boots in stream order.
    pub boots: Vec<BootInfo>,
    /// Every boot's time correlations.
    pub correlations: Correlations,
    /// Gaps in stream order.
    pub gaps: Vec<GapEntry>,
    /// Epochs in the order the source gives them.
    pub epochs: Vec<StoreEpoch>,
    /// Power steps in stream order.
    pub power_steps: Vec<PowerStepEntry>,
    /// Power step records whose body did not decode: skipped, counted here.
    pub damaged_power_steps: u64,
}

/// Tracks, in stream order, the boot and the sensor names that apply at each record.
#[derive(Debug, Clone, Default)]
pub struct StreamPosition {
    epoch: Option<StoreEpoch>,
    /// The boot of the newest boot record in this epoch so far.
    pub boot: Option<BootId>,
    names: BTreeMap<SensorId, String>,
}

impl StreamPosition {
    /// Moves to `record` at (`epoch`, seq): a new epoch forgets the boot and names.
    pub fn advance(&mut self, epoch: StoreEpoch, record: &Record) {
        if self.epoch != Some(epoch) {
            self.epoch = Some(epoch);
            self.boot = None;
            self.names.clear();
        }
        match record {
            Record::Boot(b) => self.boot = Some(b.boot_id),
            Record::Descriptor(d) => {
                self.names.insert(d.sensor, d.name.clone());
            }
            _ => {}
        }
    }

    /// The name of sensor `id` here.
    pub fn name(&self, id: SensorId) -> std::borrow::Cow<'_, str> {
        match self.names.get(&id) {
            Some(n) => std::borrow::Cow::Borrowed(n),
            None => std::borrow::Cow::Owned(unnamed_sensor(id)),
        }
    }
}

/// A sensor that stopped giving readings, waiting for it to run again.
#[derive(Debug)]
struct Outage {
    gap: usize,
}

impl Catalog {
    /// Reads every record of `source` that is not a reading.
    pub fn scan(source: &dyn RecordSource) -> Result<Catalog, SourceError> {
        let mut catalog = Catalog::default();
        let mut position = StreamPosition::default();
        let mut open_outages: BTreeMap<String, Outage> = BTreeMap::new();
        let mut steps: Vec<PendingStep> = Vec::new();
        source.for_each_meta_record(&mut |epoch, seq, record| {
            if catalog.epochs.last() != Some(&epoch) {
                catalog.epochs.push(epoch);
                open_outages.clear();
            }
            position.advance(epoch, record);
            let epoch_hex = || Some(hex(&epoch.0));
            match record {
                Record::Boot(b) => {
                    catalog.boots.push(BootInfo {
                        boot_id: b.boot_id,
                        epoch,
                        seq,
                        agent_version: b.agent_version.clone(),
                    });
                    // A sensor failed when the board stopped is not running in the new boot.
                    open_outages.clear();
                }
                Record::TimeCorrelation(c) => catalog.correlations.add(c),
                Record::Descriptor(d) => {
                    let info = catalog
                        .sensors
                        .entry(d.name.clone())
                        .or_insert_with(|| SensorInfo {
                            name: d.name.clone(),
                            kind: None,
                            descriptors: Vec::new(),
                        });
                    info.kind = Some(d.kind.clone());
                    info.descriptors.push(d.clone());
                }
                Record::Gap(g) => {
                    let (from, to) = span_parts(g.span);
                    catalog.gaps.push(GapEntry {
                        reason: reason_name(g.reason).to_owned(),
                        epoch: epoch_hex(),
                        seq: Some(seq),
                        covers: g.covers.map(|(a, b)| [a, b]),
                        readings: g.readings,
                        sensor: g.sensor.map(|s| position.name(s).into_owned()),
                        from: from.0,
                        to: to.0,
                        from_mono_ns: from.1,
                        to_mono_ns: to.1,
                        detail: (g.reason == GapReason::Crash && g.readings.is_none()).then(
                            || "records accepted in the last flush window before the stop are lost; how many is not known".to_owned(),
                        ),
                    });
                }
                Record::Status(s) => {
                    let name = position.name(s.sensor).into_owned();
                    match s.state {
                        SensorState::Failed | SensorState::Restarting => {
                            if let std::collections::btree_map::Entry::Vacant(slot) =
                                open_outages.entry(name.clone())
                            {
                                let (t, mono) = time_parts(s.time);
                                catalog.gaps.push(GapEntry {
                                    reason: if s.state == SensorState::Failed {
                                        "sensor_failed".to_owned()
                                    } else {
                                        "sensor_restart".to_owned()
                                    },
                                    epoch: epoch_hex(),
                                    seq: Some(seq),
                                    covers: None,
                                    readings: None,
                                    sensor: Some(name.clone()),
                                    from: t,
                                    to: None,
                                    from_mono_ns: Some(mono),
                                    to_mono_ns: None,
                                    detail: Some(s.reason.clone()),
                                });
                                slot.insert(Outage {
                                    gap: catalog.gaps.len() - 1,
                                });
                            }
                        }
                        SensorState::Running | SensorState::Degraded => {
                            if let Some(o) = open_outages.remove(&name) {
                                let (t, mono) = time_parts(s.time);
                                let gap = &mut catalog.gaps[o.gap];
                                gap.to = t;
                                gap.to_mono_ns = Some(mono);
                            }
                        }
                        _ => {}
                    }
                }
                // Decoded as `PowerStepRecord::from_extension` does (that lives behind the
                // protocol's `sync` feature, which this crate does not otherwise need).
                Record::Extension(ext) => match (ext.kind == POWER_STEP_RECORD_KIND)
                    .then(|| postcard::from_bytes::<PowerStepRecord>(&ext.body))
                {
                    None => {}
                    Some(Ok(step)) => steps.push(PendingStep {
                        boot: position.boot,
                        time: step.time,
                        entry: PowerStepEntry {
                            time: None,
                            time_source: "monotonic",
                            mono_ns: step.time.mono_ns,
                            epoch: hex(&epoch.0),
                            seq,
                            effects: step
                                .effects
                                .iter()
                                .map(|e| PowerEffectEntry {
                                    sensor: position.name(e.sensor).into_owned(),
                                    interval_ms: e.interval_ms,
                                    disabled: e.disabled,
                                    overridden: e.overridden,
                                })
                                .collect(),
                            step: step.step,
                            level: step.level,
                            reason: step.reason,
                            upload_bytes_per_s: step.upload_bytes_per_s,
                            utc_ns: None,
                        },
                    }),
                    Some(Err(error)) => {
                        catalog.damaged_power_steps += 1;
                        tracing::warn!(
                            epoch = %hex(&epoch.0),
                            seq,
                            %error,
                            "Power step record does not decode; skipped."
                        );
                    }
                },
                _ => {}
            }
            ControlFlow::Continue(())
        })?;
        // A correlation may follow the step in the stream: times are decided after the pass.
        for pending in steps {
            let mut entry = pending.entry;
            let (utc, source) = reading_utc(
                &catalog.correlations,
                pending.boot.as_ref(),
                pending.time.utc_ns,
                pending.time.source,
                pending.time.mono_ns,
            );
            entry.utc_ns = utc;
            entry.time = utc.map(rfc3339_ns);
            entry.time_source = source_name(source);
            catalog.power_steps.push(entry);
        }
        Ok(catalog)
    }

    /// Keeps the power steps that held during `[from, to)` (UTC ns, either end open): the
    /// last one that took effect at or before `from`, in force when the range begins, and
    /// every one that took effect inside it. With no range, all of them. A step with no
    /// UTC cannot be placed in a range and is left out of one, as readings without UTC are.
    pub fn keep_power_steps_in(&mut self, from: Option<i64>, to: Option<i64>) {
        if from.is_none() && to.is_none() {
            return;
        }
        let starts_before = |utc: i64| from.is_some_and(|f| utc <= f);
        let in_force_at_start = self
            .power_steps
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.utc_ns.filter(|&u| starts_before(u)).map(|u| (u, i)))
            .max()
            .map(|(_, i)| i);
        let mut index = 0;
        self.power_steps.retain(|p| {
            let i = index;
            index += 1;
            match p.utc_ns {
                None => false,
                Some(_) if Some(i) == in_force_at_start => true,
                Some(utc) => from.is_none_or(|f| utc >= f) && to.is_none_or(|t| utc < t),
            }
        });
    }

    /// The boots with no time correlation at all: their readings that carried no UTC
    /// have none in the export.
    pub fn uncorrelated_boots(&self) -> Vec<&BootInfo> {
        self.boots
            .iter()
            .filter(|b| self.correlations.count(&b.boot_id) == 0)
            .collect()
    }
}

fn time_parts(t: Timestamp) -> (Option<String>, u64) {
    (t.utc_ns.map(rfc3339_ns), t.mono_ns)
}

type Part = (Option<String>, Option<u64>);

fn span_parts(span: Option<(Timestamp, Timestamp)>) -> (Part, Part) {
    match span {
        None => ((None, None), (None, None)),
        Some((a, b)) => (
            (a.utc_ns.map(rfc3339_ns), Some(a.mono_ns)),
            (b.utc_ns.map(rfc3339_ns), Some(b.mono_ns)),
        ),
    }
}
