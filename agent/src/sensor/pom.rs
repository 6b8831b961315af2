//! The 2B Technologies Personal Ozone Monitor on a serial port: one data line per averaging
//! period into ozone, cell temperature and pressure, and sample flow.
//!
//! The monitor's units and averaging period are set at its front panel; the agent is told
//! them by the sensor's tunables (`temperature_unit`, `pressure_unit`, `averaging_s`) and
//! reads the line accordingly; it sends the monitor nothing.
//!
//! Invariants: the port is opened by its configured path at every open; a bad line after
//! the first good one is counted and reported as degraded, never fatal (the first line
//! after an open may be the tail of one cut by it); a flow outside the nominal band is
//! reported degraded (the zero-flow alarm) while its readings stay flagged; a normal
//! silence is a few averaging periods.

use std::path::PathBuf;
use std::time::Duration;

use aloft_protocol::sync::TunableValue;
use aloft_protocol::{DeviceParameter, ParameterValue, Reading, SensorDescriptor, SensorId};
use aloft_sensors::pom::{self, OzoneStream, PressureUnit, StreamItem, TemperatureUnit, Units};

use super::capture::Capture;
use super::line::SerialLine;
use super::{Device, DeviceError, PollOutcome};
use crate::clock::AgentClock;
use crate::config::tunables::{self, Tunables};

/// The monitor's factory baud rate.
pub const DEFAULT_BAUD: u32 = pom::DEFAULT_BAUD;

/// How long a read waits on a quiet line (it returns as soon as bytes arrive).
const IDLE_READ_TIMEOUT: Duration = Duration::from_millis(500);

/// The monitor's menu settings as the tunables give them: units and averaging period, s.
pub fn settings(tunables: &Tunables) -> (Units, u32) {
    let name = |key: &str| match tunables.get(key) {
        Some(TunableValue::Text(t)) => Some(t.as_str()),
        _ => None,
    };
    let units = Units {
        temperature: match name("temperature_unit") {
            Some("kelvin") => TemperatureUnit::Kelvin,
            _ => TemperatureUnit::Celsius,
        },
        pressure: match name("pressure_unit") {
            Some("torr") => PressureUnit::Torr,
            _ => PressureUnit::Mbar,
        },
    };
    let averaging = tunables::integer(tunables, "averaging_s")
        .and_then(|s| u32::try_from(s).ok())
        .filter(|s| *s > 0)
        .unwrap_or(2);
    (units, averaging)
}

/// The silence that is normal for a monitor averaging `averaging_s`: three periods, and
/// never less than 10 s.
pub fn silence_for(averaging_s: u32) -> Duration {
    Duration::from_secs(u64::from(averaging_s) * 3).max(Duration::from_secs(10))
}

/// The adapter.
#[derive(Debug)]
pub struct PomDevice {
    id: SensorId,
    clock: AgentClock,
    line: SerialLine,
    stream: OzoneStream,
    averaging_s: u32,
    synced: bool,
    silence_override: Option<Duration>,
    changed_descriptor: Option<SensorDescriptor>,
}

impl PomDevice {
    /// The monitor on `path` at `baud`, in its factory settings until told otherwise.
    pub fn new(id: SensorId, path: PathBuf, baud: u32) -> Self {
        PomDevice {
            id,
            clock: AgentClock::new(),
            line: SerialLine::new(path, baud, IDLE_READ_TIMEOUT, 256),
            stream: OzoneStream::new(Units::default()),
            averaging_s: 2,
            synced: false,
            silence_override: None,
            changed_descriptor: None,
        }
    }

    /// Writing the bytes read from the port to `capture`.
    pub fn with_capture(mut self, capture: Capture) -> Self {
        self.line.capture_to(capture);
        self
    }

    /// With a fixed normal silence instead of the averaging period's (tests).
    pub fn with_silence_limit(mut self, limit: Duration) -> Self {
        self.silence_override = Some(limit);
        self
    }

    fn descriptor(&self) -> SensorDescriptor {
        let units = self.stream.units();
        let t = match units.temperature {
            TemperatureUnit::Celsius => "celsius",
            TemperatureUnit::Kelvin => "kelvin",
        };
        let p = match units.pressure {
            PressureUnit::Mbar => "mbar",
            PressureUnit::Torr => "torr",
        };
        let mut d = SensorDescriptor::new("2B Technologies Personal Ozone Monitor")
            .with_integer("averaging_s", i64::from(self.averaging_s))
            .with_real("ozone_max_mol_mol", pom::OZONE_MAX_PPB * 1e-9)
            .with_real("flow_min_m3_s", pom::FLOW_MIN_CC_MIN * 1e-6 / 60.0)
            .with_real("flow_max_m3_s", pom::FLOW_MAX_CC_MIN * 1e-6 / 60.0);
        for (name, value) in [("temperature_unit", t), ("pressure_unit", p)] {
            d.parameters.push(DeviceParameter {
                name: name.into(),
                value: ParameterValue::Text(value.into()),
            });
        }
        d
    }
}

impl Device for PomDevice {
    fn open(&mut self) -> Result<SensorDescriptor, DeviceError> {
        self.line.open()?;
        self.stream.reset();
        self.synced = false;
        Ok(self.descriptor())
    }

    fn poll(&mut self, out: &mut Vec<Reading>) -> Result<PollOutcome, DeviceError> {
        let Some(bytes) = self.line.read()? else {
            return Ok(PollOutcome::Healthy);
        };
        let (mut bad, mut no_flow) = (0u32, 0u32);
        let now = self.clock.now();
        let synced = &mut self.synced;
        self.stream
            .push_bytes(bytes, self.id, now, out, |item| match item {
                StreamItem::Sample(s) => {
                    *synced = true;
                    if !s.flow_nominal() {
                        no_flow += 1;
                    }
                }
                StreamItem::Message => {}
                StreamItem::Bad(_) | StreamItem::TooLong => {
                    if *synced {
                        bad += 1;
                    }
                }
            });
        if no_flow > 0 {
            tracing::warn!(
                sensor = self.id.0,
                lines = no_flow,
                "Ozone monitor sample flow outside its band."
            );
            return Ok(PollOutcome::Degraded(format!(
                "sample flow outside {:.0}..{:.0} cc/min in {no_flow} line(s)",
                pom::FLOW_MIN_CC_MIN,
                pom::FLOW_MAX_CC_MIN
            )));
        }
        Ok(PollOutcome::counting_bad(bad, "bad line(s)"))
    }

    fn close(&mut self) {
        self.line.close();
    }

    fn interval(&self) -> Option<Duration> {
        None
    }

    fn set_tunables(&mut self, tunables: &Tunables) -> Result<(), DeviceError> {
        let (units, averaging_s) = settings(tunables);
        if units != self.stream.units() || averaging_s != self.averaging_s {
            self.stream.set_units(units);
            self.averaging_s = averaging_s;
            self.changed_descriptor = Some(self.descriptor());
        }
        Ok(())
    }

    fn silence_limit(&self) -> Duration {
        self.silence_override
            .unwrap_or_else(|| silence_for(self.averaging_s))
    }

    fn take_descriptor(&mut self) -> Option<SensorDescriptor> {
        self.changed_descriptor.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tunables_name_the_menus_units_and_period() {
        let set = tunables::in_force(crate::config::SensorKind::Pom, &Tunables::new());
        assert_eq!(settings(&set), (Units::default(), 2));
        let set = Tunables::from([
            (
                "temperature_unit".into(),
                TunableValue::Text("kelvin".into()),
            ),
            ("pressure_unit".into(), TunableValue::Text("torr".into())),
            ("averaging_s".into(), TunableValue::Integer(60)),
        ]);
        let (units, averaging) = settings(&set);
        assert_eq!(units.temperature, TemperatureUnit::Kelvin);
        assert_eq!(units.pressure, PressureUnit::Torr);
        assert_eq!(averaging, 60);
        assert_eq!(silence_for(averaging), Duration::from_secs(180));
        assert_eq!(silence_for(2), Duration::from_secs(10));
    }
}
