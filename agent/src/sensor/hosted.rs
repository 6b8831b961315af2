//! The simulated flight's devices hosted for an agent in another process
//! (`aloft-agent simulate`): the serial ones behind pseudo-terminals, each with a symlink
//! `DIR/<sensor>`, the I2C ones as register models served on bridge sockets
//! `DIR/<sensor>.i2c`; and `DIR/agent.toml`, the same config without `[simulation]` and
//! with those ports and buses, which `aloft-agent run` reads like a glider's.
//!
//! So the agent runs its hardware path (tty configuration, by-id re-resolution, bus opens)
//! and its process holds nothing of the simulation: its CPU and memory are its own, which
//! is how `cargo xtask bench agent` measures it.
//!
//! Invariants: each I2C sensor gets a socket of its own, so sensors that share an address
//! on different buses of the glider do not collide here; a register model's time follows
//! real time between transactions (the agent's driver sleeps through conversions as on the
//! board), and it is moved to the flight's present state at most every
//! [`APPLY_EVERY`]. Stopping removes every symlink and socket.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aloft_sensors::flight::{FlightClock, Scenario};
use aloft_sensors::frontend::SimulatedFrontEnd;
use aloft_sensors::i2c::bridge::{BridgeHandler, I2cBridge};
use aloft_sensors::serial::pty::SimulatedPort;
use embedded_hal::i2c::{ErrorKind, Operation};

use super::simulation::{
    SimulatedFlight, SimulatedI2c, SimulationError, SimulationTuning, device_seed, i2c_model,
    port_options, spawn_front_end, spawn_port,
};
use crate::config::{AgentConfig, SensorKind, SimulationConfig};

/// How often a register model is moved to the flight's present state (the fastest
/// sensor, the pitot at 50 Hz, sees a new state at every measurement).
pub const APPLY_EVERY: Duration = Duration::from_millis(10);

/// The name of the config `simulate` writes beside the devices.
pub const AGENT_CONFIG: &str = "agent.toml";

/// Why the devices could not be hosted.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The config has no `[simulation]` table.
    #[error("{0} has no [simulation] table: there is no simulated flight to host")]
    NotSimulated(String),
    /// A device could not start.
    #[error(transparent)]
    Device(#[from] SimulationError),
    /// A bridge socket could not be served.
    #[error("cannot serve the I2C bus of sensor {sensor} on {}: {source}", path.display())]
    Bridge {
        /// The sensor.
        sensor: String,
        /// The socket.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The directory or the agent's config could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file could not be read back as TOML.
    #[error("cannot rewrite {} for the agent: {source}", path.display())]
    Rewrite {
        /// The config.
        path: PathBuf,
        /// Why.
        source: RewriteError,
    },
}

/// Why the simulation's config could not be turned into the agent's.
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    /// The file could not be read.
    #[error("{0}")]
    Read(#[source] std::io::Error),
    /// The file is not TOML.
    #[error("{}", .0.message())]
    Parse(#[source] toml::de::Error),
    /// The rewritten table could not be written as TOML.
    #[error("{0}")]
    Write(#[source] toml::ser::Error),
}

/// One register model served on its bridge.
struct HostedModel {
    model: SimulatedI2c,
    scenario: Arc<Scenario>,
    flight: FlightClock,
    last_transaction: Option<Instant>,
    last_apply: Option<Instant>,
}

impl BridgeHandler for HostedModel {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), ErrorKind> {
        let now = Instant::now();
        if let Some(last) = self.last_transaction {
            self.model.advance(now.saturating_duration_since(last));
        }
        self.last_transaction = Some(now);
        if self
            .last_apply
            .is_none_or(|t| now.saturating_duration_since(t) >= APPLY_EVERY)
        {
            self.model.apply(&self.scenario.state_at(self.flight.t_s()));
            self.last_apply = Some(now);
        }
        self.model.transaction(address, operations)
    }
}

/// The hosted devices: keep them alive as long as the agent reads them.
#[derive(Debug)]
pub struct HostedDevices {
    dir: PathBuf,
    ports: HashMap<String, SimulatedPort>,
    bridges: HashMap<String, I2cBridge>,
    models: HashMap<String, SimulatedI2c>,
    front_ends: HashMap<String, SimulatedFrontEnd>,
}

impl HostedDevices {
    /// Starts every configured sensor's device in `dir` (made if missing) and writes
    /// `dir/agent.toml` from `config_file` (the file `config` was loaded from).
    pub fn start(
        config: &AgentConfig,
        config_file: &Path,
        dir: &Path,
    ) -> Result<HostedDevices, HostError> {
        let simulation: &SimulationConfig = config
            .simulation
            .as_ref()
            .ok_or_else(|| HostError::NotSimulated(config_file.display().to_string()))?;
        std::fs::create_dir_all(dir).map_err(|source| HostError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let SimulatedFlight {
            scenario,
            clock: flight,
        } = SimulatedFlight::start(simulation);
        let mut hosted = HostedDevices {
            dir: dir.to_path_buf(),
            ports: HashMap::new(),
            bridges: HashMap::new(),
            models: HashMap::new(),
            front_ends: HashMap::new(),
        };
        let mut paths = HashMap::new();
        for (n, sensor) in config.sensors.iter().enumerate() {
            // The same seeds as the in-process simulation: the same flight either way.
            if sensor.kind.is_derived() {
                // Computed by the agent from the other sensors: no device to host.
                continue;
            }
            let seed = device_seed(simulation, n);
            let (key, path) = hosted.device_path(sensor.kind, &sensor.name);
            if sensor.kind == SensorKind::Detector {
                let front_end = spawn_front_end(sensor, seed, port_options(simulation, &path))?;
                hosted.front_ends.insert(sensor.name.clone(), front_end);
            } else if sensor.kind.is_serial() {
                let spawned = spawn_port(
                    sensor,
                    seed,
                    port_options(simulation, &path),
                    &scenario,
                    SimulationTuning::default(),
                )?;
                hosted.ports.insert(sensor.name.clone(), spawned.port);
            } else {
                let model = i2c_model(sensor.kind, sensor, seed);
                let handler = HostedModel {
                    model: model.clone(),
                    scenario: Arc::clone(&scenario),
                    flight,
                    last_transaction: None,
                    last_apply: None,
                };
                let bridge =
                    I2cBridge::spawn(&path, handler).map_err(|source| HostError::Bridge {
                        sensor: sensor.name.clone(),
                        path: path.clone(),
                        source,
                    })?;
                hosted.bridges.insert(sensor.name.clone(), bridge);
                hosted.models.insert(sensor.name.clone(), model);
            }
            paths.insert(sensor.name.clone(), (key, path));
        }
        let rewrite_error = |source| HostError::Rewrite {
            path: config_file.to_path_buf(),
            source,
        };
        let text = std::fs::read_to_string(config_file)
            .map_err(|e| rewrite_error(RewriteError::Read(e)))?;
        let agent_config = agent_config_text(&text, &paths).map_err(rewrite_error)?;
        let agent_path = hosted.agent_config();
        std::fs::write(&agent_path, agent_config).map_err(|source| HostError::Write {
            path: agent_path,
            source,
        })?;
        tracing::info!(dir = %dir.display(), sensors = config.sensors.len(),
            "The simulated flight's devices are up.");
        Ok(hosted)
    }

    /// Where a sensor's device is, with the config key that names it: the pty symlink
    /// (`port`) or the bridge socket (`bus`).
    fn device_path(&self, kind: SensorKind, name: &str) -> (&'static str, PathBuf) {
        if kind.is_serial() {
            ("port", self.dir.join(name))
        } else {
            ("bus", self.dir.join(format!("{name}.i2c")))
        }
    }

    /// The config an agent runs to read these devices.
    pub fn agent_config(&self) -> PathBuf {
        self.dir.join(AGENT_CONFIG)
    }

    /// The simulated port of a serial sensor (to inject faults).
    pub fn port(&self, sensor: &str) -> Option<&SimulatedPort> {
        self.ports.get(sensor)
    }

    /// The register model of an I2C sensor (to make it NACK).
    pub fn i2c(&self, sensor: &str) -> Option<&SimulatedI2c> {
        self.models.get(sensor)
    }

    /// The bridge of an I2C sensor (to cut its clients off).
    pub fn bridge(&self, sensor: &str) -> Option<&I2cBridge> {
        self.bridges.get(sensor)
    }

    /// Stops every device, removing its symlink or socket.
    pub fn stop(self) {
        for (_, port) in self.ports {
            // A port only fails to stop if its thread panicked; the logs said so.
            let _ = port.stop();
        }
        for (_, front_end) in self.front_ends {
            let _ = front_end.stop();
        }
        for (_, bridge) in self.bridges {
            bridge.stop();
        }
    }
}

/// `text` (a config with `[simulation]`) rewritten for an agent reading hosted devices:
/// no `[simulation]`, each sensor's `port` or `bus` (the key in `paths`) set to its device,
/// and no power lines (the simulated devices have none to pull).
pub fn agent_config_text(
    text: &str,
    paths: &HashMap<String, (&'static str, PathBuf)>,
) -> Result<String, RewriteError> {
    let mut table: toml::Table = text.parse().map_err(RewriteError::Parse)?;
    table.remove("simulation");
    if let Some(toml::Value::Array(sensors)) = table.get_mut("sensor") {
        for sensor in sensors.iter_mut() {
            let Some(sensor) = sensor.as_table_mut() else {
                continue;
            };
            let name = sensor
                .get("name")
                .and_then(|n| n.as_str())
                .unwrap_or_default();
            let Some((key, path)) = paths.get(name) else {
                continue;
            };
            let path = toml::Value::String(path.display().to_string());
            sensor.remove("power");
            sensor.insert((*key).into(), path);
        }
    }
    let body = toml::to_string(&table).map_err(RewriteError::Write)?;
    Ok(format!(
        "# Written by `aloft-agent simulate`: the simulated flight's devices, hosted in\n\
         # that process, read by an agent in another. Serial sensors read pseudo-terminals,\n\
         # I2C sensors bridge sockets. Regenerated at every start.\n\n{body}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_config_loses_the_simulation_and_power_and_names_each_device() {
        let text = r#"
[simulation]
seed = 3

[node]
name = "n"

[[sensor]]
name = "gps"
kind = "ublox"

[[sensor]]
name = "static"
kind = "ms5611"
address = 0x77
[sensor.power]
chip = "/dev/gpiochip0"
line = 4
"#;
        let paths = HashMap::from([
            ("gps".to_string(), ("port", PathBuf::from("/d/gps"))),
            (
                "static".to_string(),
                ("bus", PathBuf::from("/d/static.i2c")),
            ),
        ]);
        let out = agent_config_text(text, &paths).unwrap();
        let table: toml::Table = out.parse().unwrap();
        assert!(!table.contains_key("simulation"));
        let sensors = table["sensor"].as_array().unwrap();
        assert_eq!(sensors[0]["port"].as_str(), Some("/d/gps"));
        assert_eq!(sensors[1]["bus"].as_str(), Some("/d/static.i2c"));
        assert_eq!(sensors[1]["address"].as_integer(), Some(0x77));
        assert!(sensors[1].get("power").is_none());
        assert_eq!(table["node"]["name"].as_str(), Some("n"));
    }

    #[test]
    fn a_config_that_is_not_toml_is_refused_with_the_reason() {
        let e = agent_config_text("[node\nname=", &HashMap::new()).expect_err("not TOML");
        assert!(matches!(e, RewriteError::Parse(_)), "{e:?}");
        assert!(
            std::error::Error::source(&e).is_some(),
            "the parser's error is kept"
        );
    }
}
