//! The agent's configuration file (`/etc/aloft/agent.toml`).
//!
//! Invariant (docs/design.md invariant 5): the file owns the hardware (ports, buses, addresses,
//! power lines); the hub's desired state may change only what is safe to change remotely
//! (interval, enabled, sensor tunables).
//!
//! Loading ([`load`], [`parse`]) reads TOML into these types and then validates the whole
//! file, reporting every problem at once with its file, key path (`sensor[2].address`),
//! line and column ([`ConfigErrors`]); [`check`] is `aloft-agent check-config`. A config
//! that loads is one the agent can run: the rest of the agent does not re-validate it, and
//! it takes the per-device defaults (baud, address, interval) from the methods here so that
//! no other module repeats them.
//!
//! Sensor indices in key paths count from 0, like the `SensorId`s the sensors get.
//!
//! What a valid file also satisfies, beyond TOML syntax, known keys and their types:
//! node and sensor names are lowercase letters, digits and dashes (at most 63) and sensor
//! names are unique; a serial kind has a `port` and an I2C kind a `bus` (both may be left
//! out with `[simulation]`), a derived kind (the wind) neither, and a sensor carries no key
//! of another family; addresses
//! and baud rates are ones the part supports ([`SensorKind::addresses`],
//! [`SensorKind::bauds`]); an `interval` is not zero nor shorter than the part can do
//! ([`SensorKind::min_interval`]); `static_pressure_from`, `outside_air_from`,
//! `ambient_pressure_from`, `airspeed_from`, `ground_velocity_from` and `heading_from`
//! name another sensor that can provide it (outside air only from a bme280:
//! [`SensorKind::provides_outside_air`] says why); the store holds two segments
//! ([`STORE_SEGMENT_BYTES`]) and two flush windows; `flush_interval` is above zero and at
//! most a minute; the hub's URL is `ws://` or `wss://` with a host; the hub's keepalive is
//! shorter than its read deadline, every hub duration is above zero, and the upload budget
//! is at least [`UPLOAD_BYTES_PER_S_MIN`]; no GPIO line powers two sensors.
//!
//! [`tunables`] declares the driver settings each sensor kind accepts: the config file's
//! `[sensor.tunables]` and the hub's `spec.tunables` are checked against it here and by
//! the control task, and the adapters in `crate::sensor` apply what it lets through.

mod errors;
mod findings;
mod load;
mod mqtt;
mod power;
pub mod tunables;
mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use errors::{ConfigErrors, Position, Problem, Report};
pub use load::{check, check_installed, load, parse};
pub use mqtt::{MAX_RATE_PER_TOPIC, MIN_KEEPALIVE, MqttConfig, MqttVersion};
pub use power::{PowerConfig, PowerStepConfig};

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
    /// The power policy: the battery and the steps that lower sampling as it runs down.
    #[serde(default)]
    pub power: Option<PowerConfig>,
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

impl FullPolicy {
    /// The policy as the config file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            FullPolicy::DropOldest => "drop-oldest",
            FullPolicy::Decimate => "decimate",
            FullPolicy::RejectNew => "reject-new",
        }
    }
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
    /// How long acked records are kept locally before they may be dropped. The store keeps
    /// them by size: this is converted with [`AgentConfig::retained_acked_bytes`].
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
    /// TDK InvenSense ICM-20948 9-axis IMU on I2C: the artificial horizon.
    Icm20948,
    /// 2B Technologies Personal Ozone Monitor (UV absorption) on a serial port.
    Pom,
    /// Sensirion SPS30 particulate matter sensor on I2C.
    Sps30,
    /// A smart battery (SBS 1.1 fuel gauge) on SMBus: the avionics pack.
    Sbs,
    /// The wind, derived from other sensors' readings (no device of its own).
    Wind,
    /// Aloft's own detector front end (firmware/) on a serial port: framed events,
    /// housekeeping and boots of a SiPM channel pair.
    Detector,
    /// Readings another program on the board publishes on the local MQTT bus.
    Mqtt,
}

/// How a kind of sensor is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attachment {
    /// On a serial port, sending at its own rate.
    Serial,
    /// On an I2C bus, sampled on a schedule.
    I2c,
    /// No device: computed on a schedule from other sensors' newest readings.
    Derived,
    /// No device: another program publishes the readings on the local MQTT bus.
    Bus,
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
    /// reopen. Required on hardware; with `[simulation]` it may be left out, and is
    /// ignored: the simulated device's pseudo-terminal takes its place.
    #[serde(default)]
    pub port: Option<PathBuf>,
    /// Serial baud rate (serial kinds; default per device).
    #[serde(default)]
    pub baud: Option<u32>,
    /// I2C bus (`/dev/i2c-1`; I2C kinds). Required on hardware; with `[simulation]` it may
    /// be left out, and is ignored: the register model takes the bus's place.
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
    /// ICM-20948 and wind: the sensor whose true airspeed the attitude's turn compensation
    /// and the wind triangle use (an ms4525do).
    #[serde(default)]
    pub airspeed_from: Option<String>,
    /// ICM-20948 and wind: the GNSS receiver whose ground speed and track they use.
    #[serde(default)]
    pub ground_velocity_from: Option<String>,
    /// Wind: the sensor whose heading the wind triangle uses (an icm20948).
    #[serde(default)]
    pub heading_from: Option<String>,
    /// `mqtt`: the quantities the publishing program sends, by vocabulary name, with the
    /// values taken (`[sensor.quantities.ozone] min = 0.0, max = 1e-6`).
    #[serde(default)]
    pub quantities: BTreeMap<String, QuantityRange>,
    /// `mqtt`: the MQTT client id of the program that publishes, named in the sensor's
    /// descriptor (the broker's ACL is what binds it to the topic: docs/mqtt.md).
    #[serde(default)]
    pub client_id: Option<String>,
    /// `mqtt`: readings per second taken at most, with a burst of one second's worth; the
    /// excess is refused and counted ([`MQTT_READINGS_PER_S_DEFAULT`] if absent).
    #[serde(default)]
    pub max_readings_per_s: Option<f64>,
    /// `mqtt`: the topic a KubeEdge mapper's MQTT push method publishes this sensor's
    /// values to, each a reading of `mapper_quantity`.
    #[serde(default)]
    pub mapper_topic: Option<String>,
    /// `mqtt`: the declared quantity a mapper's pushed values are.
    #[serde(default)]
    pub mapper_quantity: Option<String>,
    /// The driver settings the sensor's kind declares (`crate::config::tunables`), as
    /// written: the rules check each key and value, [`SensorConfig::tunables`] gives them
    /// typed. The hub's desired tunables override these key by key.
    #[serde(default)]
    pub tunables: BTreeMap<String, toml::Value>,
}

impl SensorConfig {
    /// The config file's tunables, typed; a value that is not a scalar (refused by the
    /// rules at load) is left out.
    pub fn tunables(&self) -> tunables::Tunables {
        self.tunables
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), tunables::from_toml(v).ok()?)))
            .collect()
    }
}

fn enabled() -> bool {
    true
}

/// The values an `mqtt` sensor's quantity takes (inclusive, in the quantity's unit).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct QuantityRange {
    /// The lowest value taken.
    pub min: f64,
    /// The highest value taken.
    pub max: f64,
}

/// An `mqtt` sensor's rate bound when its config names none, readings/s: ten times the
/// fastest real sensor of the simulated flight (the pitot at 50 Hz, four readings).
pub const MQTT_READINGS_PER_S_DEFAULT: f64 = 2_000.0;

/// The highest `max_readings_per_s` accepted: above it one publisher could outrun the store
/// writer's share of the real sensors.
pub const MQTT_READINGS_PER_S_MAX: f64 = 100_000.0;

/// The link to aloft-hub.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HubConfig {
    /// `wss://hub.example.org:8443/v1/nodes/connect`.
    pub url: String,
    /// File holding the node's token.
    pub token_file: PathBuf,
    /// CA certificate to trust for the hub (PEM); without it, the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// A keepalive ping this often.
    #[serde(with = "humantime_serde", default = "default_keepalive")]
    pub keepalive: Duration,
    /// Nothing received from the hub for this long: the link is dead (half-open), reconnect.
    #[serde(with = "humantime_serde", default = "default_read_deadline")]
    pub read_deadline: Duration,
    /// Upper bound of the jittered delay between connection attempts.
    #[serde(with = "humantime_serde", default = "default_reconnect_max")]
    pub reconnect_max: Duration,
    /// Upload bandwidth budget, bytes/s (the glider streams video over the same link).
    #[serde(default = "default_upload_bytes_per_s")]
    pub upload_bytes_per_s: u64,
    /// A live update (newest values, sensor states, backlog) this often.
    #[serde(with = "humantime_serde", default = "default_live_interval")]
    pub live_interval: Duration,
}

fn default_keepalive() -> Duration {
    Duration::from_secs(15)
}

fn default_read_deadline() -> Duration {
    Duration::from_secs(45)
}

fn default_reconnect_max() -> Duration {
    Duration::from_secs(5)
}

fn default_upload_bytes_per_s() -> u64 {
    250_000
}

fn default_live_interval() -> Duration {
    Duration::from_secs(1)
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

/// The segment size the agent asks of the store, bytes: the store bound must hold at least
/// two (the one being written and one the full policy can drop whole). 4 MiB is about five
/// minutes of the simulated flight's stream (about 14 kB/s), small against the gigabytes of
/// an SD card, and a lost segment never costs more than that.
pub const STORE_SEGMENT_BYTES: u64 = 4 * 1024 * 1024;

/// The smallest upload budget accepted, bytes/s: below it a batch of the smallest size and
/// the live lane no longer fit in a read deadline.
pub const UPLOAD_BYTES_PER_S_MIN: u64 = 2_000;

/// An upper bound of a reading's size in the store, bytes (postcard-encoded record with its
/// length and CRC is 30-50 bytes): what the flush-window estimate counts with.
pub const STORED_READING_BYTES_MAX: u64 = 64;

/// The longest flush interval accepted: a power cut loses at most one flush window
/// (docs/design.md invariant 3), and beyond a minute that is no longer "the last moments".
pub const FLUSH_INTERVAL_MAX: Duration = Duration::from_secs(60);

impl AgentConfig {
    /// The config with the store in `dir` instead (`aloft-agent run --store DIR`).
    #[must_use]
    pub fn with_store_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.store.path = dir.into();
        self
    }

    /// The sensor called `name`, with its index (its `SensorId`).
    pub fn sensor(&self, name: &str) -> Option<(usize, &SensorConfig)> {
        self.sensors
            .iter()
            .enumerate()
            .find(|(_, s)| s.name == name)
    }

    /// An upper bound of the bytes one flush window of every enabled sensor adds to the
    /// store, from each sensor's highest reading rate ([`SensorConfig::readings_per_s_max`]).
    pub fn flush_window_bytes_max(&self) -> u64 {
        let per_s: f64 = self
            .sensors
            .iter()
            .filter(|s| s.enabled)
            .map(SensorConfig::readings_per_s_max)
            .sum();
        let readings = per_s * self.store.flush_interval.as_secs_f64();
        // Saturating float-to-int: a huge estimate only makes the bound stricter.
        (readings.ceil() as u64).saturating_mul(STORED_READING_BYTES_MAX)
    }

    /// The bytes of acked records the store keeps: `retain_acked` at the enabled sensors'
    /// highest reading rates (so at least that long is kept at any real rate), within half of
    /// `max_bytes` (unsent records always come first).
    pub fn retained_acked_bytes(&self) -> u64 {
        let flush_s = self.store.flush_interval.as_secs_f64();
        if flush_s <= 0.0 {
            return 0;
        }
        let per_s = self.flush_window_bytes_max() as f64 / flush_s;
        // Saturating float-to-int: a huge product is capped by the store's bound below.
        let bytes = (per_s * self.store.retain_acked.as_secs_f64()).ceil() as u64;
        bytes.min(self.store.max_bytes / 2)
    }

    /// The fewest wake-ups per second the configured sampling needs: every enabled
    /// sensor's polls ([`SensorConfig::polls_per_s`]), the store's group commit
    /// (`1 / flush_interval`) and, with a hub, the live lane's updates
    /// (`1 / live_interval`). What `agent.wakeups_per_s` of `cargo xtask bench agent` is
    /// held against: the agent cannot do with fewer, and every wake-up above it is
    /// overhead (threads, timers, read pacing).
    pub fn wakeups_floor_per_s(&self) -> f64 {
        let per_s = |d: Duration| {
            if d.is_zero() {
                0.0
            } else {
                1.0 / d.as_secs_f64()
            }
        };
        let sensors: f64 = self
            .sensors
            .iter()
            .filter(|s| s.enabled)
            .map(SensorConfig::polls_per_s)
            .sum();
        let live = self.hub.as_ref().map_or(0.0, |h| per_s(h.live_interval));
        sensors + per_s(self.store.flush_interval) + live
    }

    /// Whether the agent runs the simulated flight's devices instead of hardware.
    pub fn is_simulated(&self) -> bool {
        self.simulation.is_some()
    }
}

impl SensorKind {
    /// Every kind, in declaration order.
    pub const ALL: [SensorKind; 14] = [
        SensorKind::Ublox,
        SensorKind::Nmea,
        SensorKind::Cosmicwatch,
        SensorKind::Bme280,
        SensorKind::Ms5611,
        SensorKind::Scd41,
        SensorKind::Ms4525do,
        SensorKind::Icm20948,
        SensorKind::Pom,
        SensorKind::Sps30,
        SensorKind::Sbs,
        SensorKind::Wind,
        SensorKind::Detector,
        SensorKind::Mqtt,
    ];

    /// The kind as the config file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SensorKind::Ublox => "ublox",
            SensorKind::Nmea => "nmea",
            SensorKind::Cosmicwatch => "cosmicwatch",
            SensorKind::Bme280 => "bme280",
            SensorKind::Ms5611 => "ms5611",
            SensorKind::Scd41 => "scd41",
            SensorKind::Ms4525do => "ms4525do",
            SensorKind::Icm20948 => "icm20948",
            SensorKind::Pom => "pom",
            SensorKind::Sps30 => "sps30",
            SensorKind::Sbs => "sbs",
            SensorKind::Wind => "wind",
            SensorKind::Detector => "detector",
            SensorKind::Mqtt => "mqtt",
        }
    }

    /// How the sensor is attached.
    pub fn attachment(self) -> Attachment {
        match self {
            SensorKind::Ublox | SensorKind::Nmea | SensorKind::Cosmicwatch | SensorKind::Pom => {
                Attachment::Serial
            }
            SensorKind::Detector => Attachment::Serial,
            SensorKind::Bme280
            | SensorKind::Ms5611
            | SensorKind::Scd41
            | SensorKind::Ms4525do
            | SensorKind::Icm20948
            | SensorKind::Sps30
            | SensorKind::Sbs => Attachment::I2c,
            SensorKind::Wind => Attachment::Derived,
            SensorKind::Mqtt => Attachment::Bus,
        }
    }

    /// Whether the device is on a serial port.
    pub fn is_serial(self) -> bool {
        self.attachment() == Attachment::Serial
    }

    /// Whether the device is on an I2C bus.
    pub fn is_i2c(self) -> bool {
        self.attachment() == Attachment::I2c
    }

    /// Whether the sensor is derived from other sensors (no port, no bus).
    pub fn is_derived(self) -> bool {
        self.attachment() == Attachment::Derived
    }

    /// Whether the sensor is sampled on a schedule (I2C and derived kinds), so that it has
    /// an `interval`.
    pub fn is_scheduled(self) -> bool {
        !self.is_serial() && self.attachment() != Attachment::Bus
    }

    /// The baud rate used when the config names none (serial kinds): the u-blox receiver
    /// needs 115200 for 10 Hz fixes with NMEA and UBX (about 3 kB/s, more than 9600 carries
    /// with margin); NMEA receivers mostly ship at 9600; a CosmicWatch v2 speaks 9600.
    pub fn default_baud(self) -> Option<u32> {
        match self {
            SensorKind::Ublox => Some(115_200),
            SensorKind::Nmea | SensorKind::Cosmicwatch => Some(9_600),
            SensorKind::Pom => Some(aloft_sensors::pom::DEFAULT_BAUD),
            SensorKind::Detector => Some(DETECTOR_BAUD),
            _ => None,
        }
    }

    /// The baud rates the device speaks (empty for I2C kinds): the u-blox UART's rates, the
    /// NMEA 0183 rates (4800 standard, 38400 high-speed) and the common module rates, the
    /// CosmicWatch v2 (9600) and v3X (115200).
    pub fn bauds(self) -> &'static [u32] {
        match self {
            SensorKind::Ublox => &[
                4_800, 9_600, 19_200, 38_400, 57_600, 115_200, 230_400, 460_800, 921_600,
            ],
            SensorKind::Nmea => &[4_800, 9_600, 19_200, 38_400, 57_600, 115_200],
            SensorKind::Cosmicwatch => &[9_600, 115_200],
            SensorKind::Pom => aloft_sensors::pom::BAUDS,
            SensorKind::Detector => DETECTOR_BAUDS,
            _ => &[],
        }
    }

    /// The I2C address used when the config names none.
    pub fn default_address(self) -> Option<u8> {
        match self {
            SensorKind::Bme280 => Some(aloft_sensors::bme280::ADDRESS_PRIMARY),
            SensorKind::Ms5611 => Some(aloft_sensors::ms5611::ADDRESS_CSB_LOW),
            SensorKind::Scd41 => Some(aloft_sensors::scd41::ADDRESS),
            SensorKind::Ms4525do => Some(aloft_sensors::ms4525do::ADDRESS_I),
            SensorKind::Icm20948 => Some(aloft_sensors::icm20948::ADDRESS_AD0_LOW),
            SensorKind::Sps30 => Some(aloft_sensors::sps30::ADDRESS),
            SensorKind::Sbs => Some(aloft_sensors::sbs::ADDRESS),
            _ => None,
        }
    }

    /// The I2C addresses the part can have (empty for serial kinds).
    pub fn addresses(self) -> &'static [u8] {
        use aloft_sensors::{bme280, icm20948, ms4525do, ms5611, sbs, scd41, sps30};
        match self {
            SensorKind::Bme280 => &[bme280::ADDRESS_PRIMARY, bme280::ADDRESS_SECONDARY],
            SensorKind::Ms5611 => &[ms5611::ADDRESS_CSB_HIGH, ms5611::ADDRESS_CSB_LOW],
            SensorKind::Scd41 => &[scd41::ADDRESS],
            SensorKind::Ms4525do => &[
                ms4525do::ADDRESS_I,
                ms4525do::ADDRESS_J,
                ms4525do::ADDRESS_K,
            ],
            SensorKind::Icm20948 => &[icm20948::ADDRESS_AD0_LOW, icm20948::ADDRESS_AD0_HIGH],
            SensorKind::Sps30 => &[sps30::ADDRESS],
            SensorKind::Sbs => &[sbs::ADDRESS],
            _ => &[],
        }
    }

    /// The sampling interval used when the config names none (I2C kinds): the simulated
    /// flight's rates (static pressure 10 Hz, airspeed 50 Hz, CO2 every 5 s) and outside air
    /// once a second, which a thermometer in a radiation shield cannot resolve faster.
    pub fn default_interval(self) -> Option<Duration> {
        match self {
            SensorKind::Bme280 => Some(Duration::from_secs(1)),
            SensorKind::Ms5611 => Some(Duration::from_millis(100)),
            SensorKind::Scd41 => Some(Duration::from_secs(5)),
            SensorKind::Ms4525do => Some(Duration::from_millis(20)),
            SensorKind::Icm20948 => Some(aloft_sensors::icm20948::DEFAULT_INTERVAL),
            SensorKind::Sps30 => Some(Duration::from_secs(1)),
            SensorKind::Sbs => Some(Duration::from_secs(1)),
            SensorKind::Wind => Some(Duration::from_secs(1)),
            _ => None,
        }
    }

    /// The shortest sampling interval the part can do (I2C kinds): a BME280 forced
    /// measurement with the driver's oversampling (16.2 ms at most), the MS5611's two
    /// conversions at the driver's OSR (2 x 9.04 ms), the SCD41's periodic mode (one
    /// measurement every 5 s), and the MS4525DO's 0.5 ms update twice over (faster reads
    /// return the same packet, flagged stale).
    pub fn min_interval(self) -> Option<Duration> {
        use aloft_sensors::{bme280, ms5611, scd41};
        match self {
            SensorKind::Bme280 => Some(Duration::from_micros(u64::from(
                bme280::Config::default().max_measurement_time_us(),
            ))),
            SensorKind::Ms5611 => Some(Duration::from_micros(
                2 * u64::from(ms5611::Osr::default().max_conversion_time_us()),
            )),
            SensorKind::Scd41 => Some(Duration::from_secs_f64(scd41::PERIOD_S)),
            SensorKind::Ms4525do => Some(Duration::from_millis(1)),
            SensorKind::Icm20948 => Some(aloft_sensors::icm20948::MIN_INTERVAL),
            // A new measurement every second (datasheet 4.3).
            SensorKind::Sps30 => Some(Duration::from_secs(1)),
            SensorKind::Sbs => Some(aloft_sensors::sbs::MIN_INTERVAL),
            // The wind needs a new GNSS velocity between two estimates.
            SensorKind::Wind => Some(Duration::from_millis(100)),
            _ => None,
        }
    }

    /// Whether the device measures the static (ambient) air pressure.
    pub fn provides_static_pressure(self) -> bool {
        matches!(self, SensorKind::Bme280 | SensorKind::Ms5611)
    }

    /// Whether the device can be the outside-air thermometer. Only the BME280: it is the
    /// part mounted outside in a radiation shield. An MS5611's temperature is its die
    /// temperature, kept for its own pressure compensation, and it sits on the static line
    /// inside the instrument box, so it would give true airspeed the cabin's temperature.
    pub fn provides_outside_air(self) -> bool {
        matches!(self, SensorKind::Bme280)
    }

    /// Whether the device measures true airspeed (a pitot-static differential sensor).
    pub fn provides_true_airspeed(self) -> bool {
        matches!(self, SensorKind::Ms4525do)
    }

    /// Whether the device reports ground speed and track (a GNSS receiver).
    pub fn provides_ground_velocity(self) -> bool {
        matches!(self, SensorKind::Ublox | SensorKind::Nmea)
    }

    /// Whether the device reports the airframe's heading (the attitude sensor).
    pub fn provides_heading(self) -> bool {
        matches!(self, SensorKind::Icm20948)
    }

    /// Readings in one sample, at most (every quantity the driver reports).
    fn readings_per_sample_max(self) -> f64 {
        match self {
            // A fix: latitude, longitude, altitude, speed, track, climb, satellites, HDOP,
            // VDOP, PDOP, fix quality, geoid separation.
            SensorKind::Ublox | SensorKind::Nmea => 12.0,
            // An event: count, ADC, SiPM voltage, dead time, temperature, rate (v3X adds
            // pressure and acceleration).
            SensorKind::Cosmicwatch => 10.0,
            SensorKind::Bme280 | SensorKind::Scd41 => 3.0,
            SensorKind::Ms5611 => 2.0,
            // Differential pressure, temperature, indicated and true airspeed.
            SensorKind::Ms4525do => 4.0,
            SensorKind::Icm20948 => aloft_sensors::icm20948::READINGS_PER_POLL_MAX,
            // Ozone, cell temperature and pressure, flow.
            SensorKind::Pom => 4.0,
            // Four mass and five number concentrations, the typical size.
            SensorKind::Sps30 => 10.0,
            // Voltage, current, power, state of charge, pack temperature.
            SensorKind::Sbs => 5.0,
            // Speed, direction, method.
            SensorKind::Wind => 3.0,
            // An event: number, both pulse heights, coincidence.
            SensorKind::Detector => 4.0,
            // One reading per token of its rate bound.
            SensorKind::Mqtt => 1.0,
        }
    }

    /// The kind with its indefinite article, as it is read aloud ("an ms5611", "a bme280").
    pub fn with_article(self) -> String {
        let article = match self {
            SensorKind::Nmea
            | SensorKind::Ms5611
            | SensorKind::Scd41
            | SensorKind::Ms4525do
            | SensorKind::Icm20948
            | SensorKind::Sps30
            | SensorKind::Sbs
            | SensorKind::Mqtt => "an",
            SensorKind::Ublox
            | SensorKind::Cosmicwatch
            | SensorKind::Bme280
            | SensorKind::Pom
            | SensorKind::Wind
            | SensorKind::Detector => "a",
        };
        format!("{article} {}", self.as_str())
    }
}

impl std::fmt::Display for SensorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The highest fix rate of a GNSS receiver on the glider (the u-blox M8 at 10 Hz with
/// several constellations).
const GNSS_FIX_RATE_MAX_HZ: f64 = 10.0;

/// The detector front end's line rate (its firmware paces its output to it).
const DETECTOR_BAUD: u32 = 115_200;

/// The line rates the detector front end's firmware can pace its output to.
const DETECTOR_BAUDS: &[u32] = &[115_200];

/// Bytes per event of the detector front end on the wire, framed and batched, at the least
/// (a full batch of 16 events with one-byte fields, its header and CRC shared): what bounds
/// the event rate its port carries.
const DETECTOR_EVENT_BYTES_MIN: f64 = 6.0;

/// The fewest frames per second the detector front end sends: housekeeping once a second
/// at its default interval (events come on top, in batches).
const DETECTOR_FRAMES_PER_S_MIN: f64 = 1.0;

/// Bytes of the shortest CosmicWatch event line: what bounds the event rate a port carries.
const COSMICWATCH_LINE_BYTES_MIN: f64 = 30.0;

/// Epochs per second of the u-blox receiver the glider carries (10 Hz; the simulated one
/// too): one burst of NMEA and UBX each, read in one paced wake-up.
const UBLOX_EPOCHS_PER_S: f64 = GNSS_FIX_RATE_MAX_HZ;

/// Epochs per second of a plain NMEA receiver: 1 Hz, what they ship with.
const NMEA_EPOCHS_PER_S: f64 = 1.0;

/// The fewest event lines per second of a CosmicWatch v2: its sea-level muon rate (about
/// 1 Hz: Axani et al. 2018, JINST 13 P03019); the rate only rises with altitude.
const COSMICWATCH_EVENTS_PER_S_MIN: f64 = 1.0;

impl SensorConfig {
    /// The baud rate: the configured one, else the device's default (`None` for I2C kinds).
    pub fn baud_or_default(&self) -> Option<u32> {
        if self.kind.is_serial() {
            self.baud.or(self.kind.default_baud())
        } else {
            None
        }
    }

    /// The I2C address: the configured one, else the part's default (`None` for serial
    /// kinds).
    pub fn address_or_default(&self) -> Option<u8> {
        if self.kind.is_i2c() {
            self.address.or(self.kind.default_address())
        } else {
            None
        }
    }

    /// The sampling interval: the configured one, else the part's default (`None` for
    /// serial kinds, which send at their own rate).
    pub fn interval_or_default(&self) -> Option<Duration> {
        if self.kind.is_scheduled() {
            self.interval.or(self.kind.default_interval())
        } else {
            None
        }
    }

    /// An `mqtt` sensor's rate bound: the configured one, else
    /// [`MQTT_READINGS_PER_S_DEFAULT`].
    pub fn max_readings_per_s_or_default(&self) -> f64 {
        self.max_readings_per_s
            .unwrap_or(MQTT_READINGS_PER_S_DEFAULT)
    }

    /// How often the agent must wake for this sensor, per second, at the least: a
    /// scheduled (I2C or derived) sensor once per interval; a serial one once per message
    /// it sends (a GNSS epoch, a detector event, an ozone line), however many reads a
    /// message takes. 0 for a sensor with no usable interval.
    pub fn polls_per_s(&self) -> f64 {
        match self.kind {
            SensorKind::Ublox => UBLOX_EPOCHS_PER_S,
            SensorKind::Nmea => NMEA_EPOCHS_PER_S,
            SensorKind::Cosmicwatch => COSMICWATCH_EVENTS_PER_S_MIN,
            SensorKind::Pom => aloft_sensors::pom::LINES_PER_S_MAX,
            SensorKind::Detector => DETECTOR_FRAMES_PER_S_MIN,
            _ => match self.interval_or_default() {
                Some(i) if !i.is_zero() => 1.0 / i.as_secs_f64(),
                _ => 0.0,
            },
        }
    }

    /// The most readings per second this sensor can produce: an I2C part's samples at its
    /// interval, a GNSS receiver at its highest fix rate, a CosmicWatch at as many event
    /// lines as its baud rate carries.
    pub fn readings_per_s_max(&self) -> f64 {
        let per_sample = self.kind.readings_per_sample_max();
        let samples_per_s = match self.kind {
            SensorKind::Ublox | SensorKind::Nmea => GNSS_FIX_RATE_MAX_HZ,
            SensorKind::Cosmicwatch => {
                let baud = self.baud_or_default().unwrap_or(9_600);
                f64::from(baud) / 10.0 / COSMICWATCH_LINE_BYTES_MIN
            }
            SensorKind::Pom => aloft_sensors::pom::LINES_PER_S_MAX,
            SensorKind::Detector => {
                let baud = self.baud_or_default().unwrap_or(DETECTOR_BAUD);
                f64::from(baud) / 10.0 / DETECTOR_EVENT_BYTES_MIN
            }
            SensorKind::Mqtt => self.max_readings_per_s_or_default(),
            _ => match self.interval_or_default() {
                Some(i) if !i.is_zero() => 1.0 / i.as_secs_f64(),
                _ => 0.0,
            },
        };
        per_sample * samples_per_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sensor(toml_text: &str) -> SensorConfig {
        toml::from_str(toml_text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn serial_defaults_are_the_devices_own_baud_rates() {
        assert_eq!(SensorKind::Ublox.default_baud(), Some(115_200));
        assert_eq!(SensorKind::Cosmicwatch.default_baud(), Some(9_600));
        let gps = sensor("name = 'gps'\nkind = 'ublox'");
        assert_eq!(gps.baud_or_default(), Some(115_200));
        let cw = sensor("name = 'cw'\nkind = 'cosmicwatch'\nbaud = 115200");
        assert_eq!(cw.baud_or_default(), Some(115_200));
        assert_eq!(cw.address_or_default(), None);
        assert_eq!(cw.interval_or_default(), None);
    }

    const MINIMAL: &str = "[node]\nname = 'n'\n[store]\npath = '/s'\nmax_bytes = 10_000_000_000\n\
        full_policy = 'decimate'\nflush_interval = '1s'\nretain_acked = '1h'\n";

    #[test]
    fn hub_tunables_default_to_the_contract() {
        let text =
            format!("{MINIMAL}[hub]\nurl = 'wss://h:8443/v1/nodes/connect'\ntoken_file = '/t'\n");
        let config = parse(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
        let hub = config.hub.unwrap_or_else(|| panic!("hub"));
        assert_eq!(hub.keepalive, Duration::from_secs(15));
        assert_eq!(hub.read_deadline, Duration::from_secs(45));
        assert_eq!(hub.reconnect_max, Duration::from_secs(5));
        assert_eq!(hub.upload_bytes_per_s, 250_000);
        assert_eq!(hub.live_interval, Duration::from_secs(1));
    }

    #[test]
    fn hub_tunables_that_cannot_work_are_reported_with_key_and_line() {
        let text = format!(
            "{MINIMAL}[hub]\nurl = 'wss://h/v1/nodes/connect'\ntoken_file = '/t'\n\
             keepalive = '1m'\nread_deadline = '45s'\nreconnect_max = '0s'\n\
             upload_bytes_per_s = 10\n"
        );
        let errors = parse(&text, "t.toml")
            .err()
            .unwrap_or_else(|| panic!("refused"));
        let keys: Vec<(&str, usize)> = errors
            .problems
            .iter()
            .map(|p| (p.key.as_str(), p.position.map_or(0, |p| p.line)))
            .collect();
        assert_eq!(
            keys,
            [
                ("hub.keepalive", 12),
                ("hub.reconnect_max", 14),
                ("hub.upload_bytes_per_s", 15)
            ],
            "{errors}"
        );
    }

    #[test]
    fn i2c_defaults_are_the_parts_usual_address_and_interval() {
        let s = sensor("name = 's'\nkind = 'ms5611'");
        assert_eq!(s.address_or_default(), Some(0x77));
        assert_eq!(s.interval_or_default(), Some(Duration::from_millis(100)));
        assert_eq!(s.baud_or_default(), None);
        let s = sensor("name = 's'\nkind = 'bme280'\naddress = 0x77\ninterval = '2s'");
        assert_eq!(s.address_or_default(), Some(0x77));
        assert_eq!(s.interval_or_default(), Some(Duration::from_secs(2)));
    }

    #[test]
    fn every_default_is_one_the_validation_accepts() {
        for kind in SensorKind::ALL {
            if let Some(baud) = kind.default_baud() {
                assert!(kind.bauds().contains(&baud), "{kind}");
            }
            if let Some(address) = kind.default_address() {
                assert!(kind.addresses().contains(&address), "{kind}");
            }
            match (kind.default_interval(), kind.min_interval()) {
                (Some(d), Some(m)) => assert!(d >= m, "{kind}: {d:?} < {m:?}"),
                (None, None) => assert!(
                    kind.is_serial() || kind.attachment() == Attachment::Bus,
                    "{kind}"
                ),
                other => panic!("{kind}: {other:?}"),
            }
            assert_eq!(kind.is_serial(), !kind.bauds().is_empty(), "{kind}");
            assert_eq!(kind.is_i2c(), !kind.addresses().is_empty(), "{kind}");
        }
    }

    #[test]
    fn minimum_intervals_follow_the_drivers_timings() {
        assert_eq!(
            SensorKind::Scd41.min_interval(),
            Some(Duration::from_secs(5))
        );
        let bme = aloft_sensors::bme280::Config::default().max_measurement_time_us();
        assert_eq!(
            SensorKind::Bme280.min_interval(),
            Some(Duration::from_micros(u64::from(bme)))
        );
    }

    #[test]
    fn kinds_spell_as_in_the_file_and_read_with_their_article() {
        for kind in SensorKind::ALL {
            let parsed: SensorKind =
                toml::from_str::<SensorConfig>(&format!("name = 'x'\nkind = '{kind}'"))
                    .map(|s| s.kind)
                    .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(parsed, kind);
        }
        assert_eq!(SensorKind::Scd41.with_article(), "an scd41");
        assert_eq!(SensorKind::Bme280.with_article(), "a bme280");
    }

    #[test]
    fn flush_window_estimate_grows_with_the_interval_and_skips_disabled_sensors() {
        let text = |flush: &str, enabled: bool| {
            format!(
                "[node]\nname = 'n'\n[store]\npath = '/s'\nmax_bytes = 1\n\
                 full_policy = 'decimate'\nflush_interval = '{flush}'\nretain_acked = '1d'\n\
                 [[sensor]]\nname = 'pitot'\nkind = 'ms4525do'\ninterval = '20ms'\n\
                 enabled = {enabled}\n"
            )
        };
        let config =
            |t: String| -> AgentConfig { toml::from_str(&t).unwrap_or_else(|e| panic!("{e}")) };
        let one = config(text("1s", true)).flush_window_bytes_max();
        let ten = config(text("10s", true)).flush_window_bytes_max();
        // 50 samples/s x 4 readings x 64 bytes.
        assert_eq!(one, 50 * 4 * STORED_READING_BYTES_MAX);
        assert_eq!(ten, 10 * one);
        assert_eq!(config(text("1s", false)).flush_window_bytes_max(), 0);
    }
}

#[cfg(test)]
mod wakeup_floor_tests {
    use super::*;

    const STORE: &str = "[node]\nname = 'n'\n[store]\npath = '/s'\nmax_bytes = 10_000_000_000\n\
        full_policy = 'decimate'\nretain_acked = '1h'\n";

    fn config(text: &str) -> AgentConfig {
        parse(text, "t.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_floor_counts_each_enabled_sensors_polls_the_flush_and_the_live_lane() {
        let text = format!(
            "{STORE}flush_interval = '2s'\n\
             [[sensor]]\nname = 'gps'\nkind = 'ublox'\nport = '/dev/ttyS0'\n\
             [[sensor]]\nname = 'receiver'\nkind = 'nmea'\nport = '/dev/ttyS1'\n\
             [[sensor]]\nname = 'muons'\nkind = 'cosmicwatch'\nport = '/dev/ttyS2'\n\
             [[sensor]]\nname = 'static'\nkind = 'ms5611'\nbus = '/dev/i2c-1'\ninterval = '50ms'\n\
             [[sensor]]\nname = 'air'\nkind = 'bme280'\nbus = '/dev/i2c-1'\n\
             [[sensor]]\nname = 'co2'\nkind = 'scd41'\nbus = '/dev/i2c-1'\nenabled = false\n\
             [[sensor]]\nname = 'wind'\nkind = 'wind'\nground_velocity_from = 'gps'\ninterval = '500ms'\n"
        );
        let c = config(&text);
        // u-blox 10 epochs, NMEA 1, CosmicWatch 1 event at sea level, MS5611 20 Hz,
        // BME280 1 Hz by default, the SCD41 disabled, the wind 2 Hz, a flush every 2 s.
        let want = 10.0 + 1.0 + 1.0 + 20.0 + 1.0 + 2.0 + 0.5;
        assert!(
            (c.wakeups_floor_per_s() - want).abs() < 1e-9,
            "{}",
            c.wakeups_floor_per_s()
        );

        let hub = format!(
            "{text}[hub]\nurl = 'wss://h:8443/v1/nodes/connect'\ntoken_file = '/t'\n\
             live_interval = '250ms'\n"
        );
        let with_hub = config(&hub).wakeups_floor_per_s();
        assert!((with_hub - want - 4.0).abs() < 1e-9, "{with_hub}");
    }

    #[test]
    fn the_example_flights_floor_is_its_sensors_rates_and_one_flush() {
        let example =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/sim.toml");
        let c = crate::config::load(&example).unwrap_or_else(|e| panic!("{e}"));
        let by_hand: f64 = c
            .sensors
            .iter()
            .filter(|s| s.enabled)
            .map(|s| match s.interval_or_default() {
                Some(i) => 1.0 / i.as_secs_f64(),
                None => s.polls_per_s(),
            })
            .sum::<f64>()
            + 1.0 / c.store.flush_interval.as_secs_f64();
        assert!(c.hub.is_none());
        assert!((c.wakeups_floor_per_s() - by_hand).abs() < 1e-9);
        assert!(c.wakeups_floor_per_s() > 0.0);
    }
}

#[cfg(test)]
mod retention_tests {
    #[test]
    fn acked_retention_is_the_configured_time_at_the_highest_rates_within_half_the_store() {
        let example =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/sim.toml");
        let mut config = crate::config::load(&example).unwrap();
        config.store.retain_acked = std::time::Duration::from_secs(10);
        let ten_s = config.retained_acked_bytes();
        assert_eq!(
            ten_s,
            config.flush_window_bytes_max() * 10,
            "1 s flush windows"
        );
        config.store.retain_acked = std::time::Duration::from_secs(3600 * 24 * 365);
        assert_eq!(config.retained_acked_bytes(), config.store.max_bytes / 2);
    }
}
