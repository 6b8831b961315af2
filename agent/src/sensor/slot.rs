//! The wiring place: each configured sensor's slot, ready to be supervised.
//!
//! A [`SensorSlot`] is everything the supervisor needs of one sensor: its number, name,
//! kind, enabled flag, adapter and power line. [`assemble`] builds the slots of a config in
//! one place for every path (real hardware in [`super::hardware_slots`], the simulated
//! flight in [`super::simulation::Simulation::start`]); a path only says how it makes each
//! sensor's adapter and power line.
//!
//! Invariants: sensors are numbered by their position in the config (the number their
//! readings carry); a power line's polarity and off time come from the sensor's config,
//! whichever line drives it; the dependency runs one way: the supervisor uses this module,
//! nothing under `sensor` uses the supervisor.

use std::time::Duration;

use aloft_protocol::SensorId;

use super::Device;
use super::power::PowerLine;
use crate::config::tunables::Tunables;
use crate::config::{SensorConfig, SensorKind};

/// A sensor's power switch for hard restarts.
#[derive(Debug)]
pub struct PowerSwitch {
    /// The line.
    pub line: Box<dyn PowerLine>,
    /// The sensor is powered when the line is low.
    pub active_low: bool,
    /// How long power stays off.
    pub off_for: Duration,
}

/// One sensor to supervise.
pub struct SensorSlot {
    /// Its number in readings.
    pub id: SensorId,
    /// Its name in the config.
    pub name: String,
    /// Its kind.
    pub kind: SensorKind,
    /// Whether it runs.
    pub enabled: bool,
    /// Its adapter.
    pub device: Box<dyn Device>,
    /// Its power line, if it has one.
    pub power: Option<PowerSwitch>,
    /// Its readings come from a simulator (flagged `Quality::SIMULATED`).
    pub simulated: bool,
    /// The tunables of its config file, checked at load.
    pub tunables: Tunables,
}

impl std::fmt::Debug for SensorSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SensorSlot")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("enabled", &self.enabled)
            .field("power", &self.power)
            .field("simulated", &self.simulated)
            .finish_non_exhaustive()
    }
}

/// What a path makes for one sensor: its adapter, and its power line when the config
/// gives it one (and it could be had).
pub type SensorParts = (Box<dyn Device>, Option<Box<dyn PowerLine>>);

/// The slots of `sensors`, numbered in config order; `parts` makes each sensor's adapter
/// and power line. `simulated` flags every reading of these slots as simulated.
pub fn assemble<E>(
    sensors: &[SensorConfig],
    simulated: bool,
    mut parts: impl FnMut(SensorId, &SensorConfig) -> Result<SensorParts, E>,
) -> Result<Vec<SensorSlot>, E> {
    let mut slots = Vec::with_capacity(sensors.len());
    for (n, config) in sensors.iter().enumerate() {
        let id = SensorId(u16::try_from(n).unwrap_or(u16::MAX));
        let (device, line) = parts(id, config)?;
        let power = line
            .zip(config.power.as_ref())
            .map(|(line, p)| PowerSwitch {
                line,
                active_low: p.active_low,
                off_for: p.off_for,
            });
        slots.push(SensorSlot {
            id,
            name: config.name.clone(),
            kind: config.kind,
            enabled: config.enabled,
            device,
            power,
            simulated,
            tunables: config.tunables(),
        });
    }
    Ok(slots)
}
