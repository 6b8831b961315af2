//! The agent's configuration file (`/etc/aloft/agent.toml`).
//!
//! Invariant (DESIGN.md invariant 5): the file owns the hardware (ports, buses, addresses,
//! power lines); the hub's desired state may change only what is safe to change remotely
//! (interval, enabled, sensor tunables).
//!
//! (Loading, validation with key and line, and `check-config` are being built; these are
//! the types the rest of the agent uses.)

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AgentConfig {
    /// This node.
    pub node: NodeConfig,
    /// The local store (the outbox).
    pub store: StoreConfig,
    /// The sensors, in the order their `SensorId`s are numbered (0, 1, ...).
    #[serde(default, rename = "sensor")]
    pub sensors: Vec<SensorConfig>,
    /// The link to aloft-hub (used by the sync issue).
    #[serde(default)]
    pub hub: Option<HubConfig>,
    /// The local MQTT bus (used by its issue).
    #[serde(default)]
    pub mqtt: Option<MqttConfig>,
    /// Where Prometheus metrics are served (localhost only by default).
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Run the simulated flight's devices instead of hardware (deploy/examples/sim.toml).
    #[serde(default)]
    pub simulation: Option<SimulationConfig>,
}

/// This node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct NodeConfig {
    /// The node's name at the hub (`glider-d-kmwp`).
    pub name: String,
}

/// What the store does when it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FullPolicy {
    /// Drop the oldest unsent records (after the acked ones).
    DropOldest,
    /// Thin the oldest unsent backlog evenly (after the acked ones).
    Decimate,
    /// Refuse new readings (after dropping the acked ones).
    RejectNew,
}

/// The local store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct StoreConfig {
    /// Directory of the store (`/var/lib/aloft/store`).
    pub path: PathBuf,
    /// Bound of the store on disk, bytes.
    pub max_bytes: u64,
    /// What to do when full.
    pub full_policy: FullPolicy,
    /// Group-commit interval: at most this much is lost in a power cut.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// How long acked records are kept locally before they may be dropped.
    #[serde(with = "humantime_serde")]
    pub retain_acked: Duration,
}

/// Which device a sensor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SensorKind {
    /// u-blox GNSS receiver (NMEA + UBX on one serial port).
    Ublox,
    /// Any NMEA 0183 GNSS receiver on a serial port.
    Nmea,
    /// CosmicWatch muon detector (v2 or v3X) on a serial port.
    Cosmicwatch,
    /// Bosch BME280 on I2C.
    Bme280,
    /// TE MS5611 on I2C.
    Ms5611,
    /// Sensirion SCD41 on I2C.
    Scd41,
    /// TE MS4525DO on I2C.
    Ms4525do,
}

/// A GPIO line that powers a sensor, for hard restarts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PowerLineConfig {
    /// GPIO chip (`/dev/gpiochip0`).
    pub chip: PathBuf,
    /// Line offset on the chip.
    pub line: u32,
    /// The sensor is powered when the line is low.
    #[serde(default)]
    pub active_low: bool,
    /// How long power stays off in a hard restart.
    #[serde(with = "humantime_serde", default = "default_power_off")]
    pub off_for: Duration,
}

fn default_power_off() -> Duration {
    Duration::from_secs(2)
}

/// Raw capture of what a serial sensor sent, in files `aloft-agent replay` reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CaptureConfig {
    /// Directory of the capture files.
    pub dir: PathBuf,
    /// A file is rotated at this size, bytes.
    pub max_file_bytes: u64,
    /// Files kept; the oldest is deleted beyond.
    pub max_files: u32,
}

/// One sensor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SensorConfig {
    /// Name in readings, the CLI and the hub (`gps`, `static`, `outside-air`).
    pub name: String,
    /// Which device.
    pub kind: SensorKind,
    /// Serial port (serial kinds); a `/dev/serial/by-id/...` name is re-resolved on every
    /// reopen.
    #[serde(default)]
    pub port: Option<PathBuf>,
    /// Serial baud rate (serial kinds; default per device).
    #[serde(default)]
    pub baud: Option<u32>,
    /// I2C bus (`/dev/i2c-1`; I2C kinds).
    #[serde(default)]
    pub bus: Option<PathBuf>,
    /// I2C address (I2C kinds; default per device).
    #[serde(default)]
    pub address: Option<u8>,
    /// Sampling interval (I2C kinds; a serial device sends at its own rate).
    #[serde(with = "humantime_serde", default)]
    pub interval: Option<Duration>,
    /// Whether the sensor runs.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// The power line for hard restarts, if the sensor has one.
    #[serde(default)]
    pub power: Option<PowerLineConfig>,
    /// Raw capture of the port's bytes (serial kinds).
    #[serde(default)]
    pub capture: Option<CaptureConfig>,
    /// MS4525DO: the sensor whose pressure is the static pressure for true airspeed.
    #[serde(default)]
    pub static_pressure_from: Option<String>,
    /// MS4525DO: the sensor whose air temperature is the outside air temperature for true
    /// airspeed (never one inside the instrument box).
    #[serde(default)]
    pub outside_air_from: Option<String>,
    /// SCD41: the sensor whose pressure feeds the CO2 pressure compensation.
    #[serde(default)]
    pub ambient_pressure_from: Option<String>,
}

fn enabled() -> bool {
    true
}

/// The link to aloft-hub.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HubConfig {
    /// `wss://hub.example.org:8443/v1/nodes`.
    pub url: String,
    /// File holding the node's token.
    pub token_file: PathBuf,
    /// CA certificate to trust for the hub.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// The local MQTT bus.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MqttConfig {
    /// Broker address (`127.0.0.1:1883`).
    pub broker: String,
}

/// Prometheus metrics endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MetricsConfig {
    /// Listen address; loopback by default.
    #[serde(default = "default_metrics_listen")]
    pub listen: std::net::SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: default_metrics_listen(),
        }
    }
}

fn default_metrics_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 9464))
}

/// The simulated flight, instead of hardware.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SimulationConfig {
    /// Seed of the scenario and the devices' noise.
    #[serde(default)]
    pub seed: u64,
    /// Simulated seconds per real second.
    #[serde(default = "one")]
    pub speed: f64,
    /// Where in the flight to start, s after the scenario's start.
    #[serde(default)]
    pub start_at_s: f64,
}

fn one() -> f64 {
    1.0
}
