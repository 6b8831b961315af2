//! The rules a well-typed config must also follow before the agent runs with it: names,
//! which keys a kind of device takes, addresses and baud rates the parts speak, intervals
//! the parts can do, sensors that feed others, store bounds, the hub's URL, power lines.
//!
//! Invariant: every rule runs on every part that was well typed, so one broken sensor does
//! not hide the problems of the others; a rule about another sensor (a reference) stays
//! silent when that sensor was itself broken, as its own problem is already reported.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use super::errors::Problem;
use super::findings::{Finding, Spans, nearest};
use super::{
    AgentConfig, Attachment, FLUSH_INTERVAL_MAX, HubConfig, MqttConfig, NodeConfig,
    STORE_SEGMENT_BYTES, SensorConfig, SensorKind, SimulationConfig, StoreConfig,
};
use super::{PowerConfig, UPLOAD_BYTES_PER_S_MIN};

/// The longest node or sensor name (the protocol's), shown of a name that is too long.
const NAME_LEN_MAX: usize = aloft_protocol::MAX_NAME_LEN;

/// What the rules need besides the parts.
#[derive(Debug)]
pub(super) struct Context<'a> {
    pub spans: &'a Spans,
    /// `[simulation]` is present: the simulated devices replace ports and buses.
    pub simulated: bool,
}

/// One `[[sensor]]` as far as it could be read.
#[derive(Debug, Default)]
pub(super) struct SensorSlot {
    /// The sensor, if its table was well typed.
    pub config: Option<SensorConfig>,
    /// Its `name` as written, if it was a string.
    pub raw_name: Option<String>,
    /// Its `kind` as written, if it was a string.
    pub raw_kind: Option<String>,
}

/// The parts of the file that were well typed.
#[derive(Debug)]
pub(super) struct Parts<'a> {
    pub node: Option<&'a NodeConfig>,
    pub store: Option<&'a StoreConfig>,
    pub sensors: &'a [SensorSlot],
    pub hub: Option<&'a HubConfig>,
    pub mqtt: Option<&'a MqttConfig>,
    pub simulation: Option<&'a SimulationConfig>,
    pub power: Option<&'a PowerConfig>,
}

/// Collects findings with their place in the file.
struct Rules<'a> {
    ctx: &'a Context<'a>,
    out: &'a mut Vec<Finding>,
}

impl Rules<'_> {
    fn report(&mut self, key: &str, what: impl Into<String>, fix: impl Into<String>) {
        self.out.push(Finding {
            offset: self.ctx.spans.offset(key),
            key: key.to_string(),
            what: what.into(),
            fix: fix.into(),
        });
    }
}

/// Runs every rule on `parts`.
pub(super) fn all(ctx: &Context<'_>, parts: Parts<'_>, out: &mut Vec<Finding>) {
    let mut rules = Rules { ctx, out };
    if let Some(node) = parts.node {
        name(&mut rules, "node.name", &node.name, "node");
    }
    sensors(&mut rules, parts.sensors);
    i2c_addresses(&mut rules, parts.sensors);
    if let Some(store) = parts.store {
        let sensors: Vec<SensorConfig> = parts
            .sensors
            .iter()
            .filter_map(|s| s.config.clone())
            .collect();
        self::store(&mut rules, store, sensors);
    }
    if let Some(hub) = parts.hub {
        self::hub(&mut rules, hub);
    }
    if let Some(mqtt) = parts.mqtt {
        for (key, what, fix) in super::mqtt::problems(mqtt) {
            rules.report(key, what, fix);
        }
    }
    if parts.mqtt.is_none() {
        for (i, slot) in parts.sensors.iter().enumerate() {
            if slot
                .config
                .as_ref()
                .is_some_and(|s| s.kind == SensorKind::Mqtt && s.enabled)
            {
                rules.report(
                    &format!("sensor[{i}].kind"),
                    "an mqtt sensor's readings come over the MQTT bus, and the file has no [mqtt]",
                    "add an [mqtt] section with the broker, or disable the sensor",
                );
            }
        }
    }
    if let Some(sim) = parts.simulation {
        simulation(&mut rules, sim);
    }
    if let Some(power) = parts.power {
        self::power(&mut rules, power, parts.sensors);
    }
}

/// Node and sensor names: the protocol's one grammar ([`aloft_protocol::check_name`]), so
/// that the hub's API and the protocol accept exactly the names the config does.
fn name(rules: &mut Rules<'_>, key: &str, value: &str, what: &str) {
    let Err(error) = aloft_protocol::check_name(value) else {
        return;
    };
    // A long name is shown by its start: the problem is its length, not its text.
    let shown: String = value.chars().take(NAME_LEN_MAX).collect();
    let shown = if shown.len() < value.len() {
        format!("{shown:?}...")
    } else {
        format!("{shown:?}")
    };
    let what = match error {
        aloft_protocol::NameError::Empty => format!("the {what} name is empty"),
        error => format!("the {what} name {shown} {error}"),
    };
    rules.report(key, what, format!("use {}", aloft_protocol::NAME_RULE));
}

fn sensors(rules: &mut Rules<'_>, slots: &[SensorSlot]) {
    // Names as written, also of sensors that were otherwise broken, so a reference to one
    // of those is not reported as a reference to nothing.
    let mut first_with_name: HashMap<&str, usize> = HashMap::new();
    for (i, slot) in slots.iter().enumerate() {
        let Some(n) = slot.raw_name.as_deref() else {
            continue;
        };
        if let Some(&first) = first_with_name.get(n) {
            if slot.config.is_some() {
                rules.report(
                    &format!("sensor[{i}].name"),
                    format!("the name \"{n}\" is already used by sensor[{first}]"),
                    "give every sensor its own name",
                );
            }
        } else {
            first_with_name.insert(n, i);
        }
    }
    let mut power_lines: HashMap<(PathBuf, u32), usize> = HashMap::new();
    for (i, slot) in slots.iter().enumerate() {
        let Some(s) = &slot.config else {
            continue;
        };
        let at = |key: &str| format!("sensor[{i}].{key}");
        name(rules, &at("name"), &s.name, "sensor");
        keys_of_kind(rules, i, s);
        bus_sensor(rules, i, s);
        place(rules, i, s);
        tunables(rules, i, s);
        if let Some(interval) = s.interval {
            interval_rule(rules, &at("interval"), s.kind, interval);
        }
        if let Some(power) = &s.power {
            let line = (power.chip.clone(), power.line);
            if let Some(&other) = power_lines.get(&line) {
                rules.report(
                    &at("power.line"),
                    format!(
                        "line {} of {} also powers sensor[{other}]",
                        power.line,
                        power.chip.display()
                    ),
                    "give each sensor its own power line, or leave `power` out of one",
                );
            } else {
                power_lines.insert(line, i);
            }
            if power.off_for.is_zero() {
                rules.report(
                    &at("power.off_for"),
                    "is zero: a hard restart would not cut the power",
                    "write how long power stays off, such as \"2s\"",
                );
            }
        }
        if let Some(capture) = &s.capture {
            if capture.max_file_bytes == 0 {
                rules.report(
                    &at("capture.max_file_bytes"),
                    "is zero",
                    "write the size at which a capture file is rotated, such as 16777216",
                );
            }
            if capture.max_files == 0 {
                rules.report(
                    &at("capture.max_files"),
                    "is zero: no capture file could be kept",
                    "write how many files to keep, 1 or more",
                );
            }
        }
        references(rules, i, s, slots, &first_with_name);
    }
}

/// Keys that do not apply to the sensor's kind: better refused than silently ignored, as a
/// key in the wrong sensor is usually meant for another one.
fn keys_of_kind(rules: &mut Rules<'_>, i: usize, s: &SensorConfig) {
    let kind = s.kind;
    let mut refuse = |present: bool, key: &str, why: &str| {
        if present {
            rules.report(
                &format!("sensor[{i}].{key}"),
                format!("does not apply to {} sensor ({why})", kind.with_article()),
                "remove it",
            );
        }
    };
    match kind.attachment() {
        Attachment::Serial => {
            refuse(s.bus.is_some(), "bus", "it is on a serial port");
            refuse(s.address.is_some(), "address", "it is on a serial port");
            refuse(
                s.interval.is_some(),
                "interval",
                "a serial device sends at its own rate",
            );
        }
        Attachment::I2c => {
            refuse(s.port.is_some(), "port", "it is on an I2C bus");
            refuse(s.baud.is_some(), "baud", "it is on an I2C bus");
            refuse(
                s.capture.is_some(),
                "capture",
                "only serial devices' bytes are captured",
            );
        }
        Attachment::Derived => {
            let derived = "it is computed from other sensors' readings";
            refuse(s.port.is_some(), "port", derived);
            refuse(s.baud.is_some(), "baud", derived);
            refuse(s.bus.is_some(), "bus", derived);
            refuse(s.address.is_some(), "address", derived);
            refuse(s.capture.is_some(), "capture", derived);
            refuse(s.power.is_some(), "power", derived);
        }
        Attachment::Bus => {
            let bus = "another program publishes its readings on the MQTT bus";
            refuse(s.port.is_some(), "port", bus);
            refuse(s.baud.is_some(), "baud", bus);
            refuse(s.bus.is_some(), "bus", bus);
            refuse(s.address.is_some(), "address", bus);
            refuse(s.interval.is_some(), "interval", bus);
            refuse(s.capture.is_some(), "capture", bus);
            refuse(s.power.is_some(), "power", bus);
        }
    }
    let pitot = "only an ms4525do computes true airspeed";
    refuse(
        s.static_pressure_from.is_some() && kind != SensorKind::Ms4525do,
        "static_pressure_from",
        pitot,
    );
    refuse(
        s.outside_air_from.is_some() && !matches!(kind, SensorKind::Ms4525do | SensorKind::Sps30),
        "outside_air_from",
        "only an ms4525do (true airspeed) and an sps30 (its operating range) use the outside air",
    );
    refuse(
        s.ambient_pressure_from.is_some() && kind != SensorKind::Scd41,
        "ambient_pressure_from",
        "only an scd41 compensates for pressure",
    );
    refuse(
        s.airspeed_from.is_some() && !matches!(kind, SensorKind::Icm20948 | SensorKind::Wind),
        "airspeed_from",
        "only an icm20948 (turn compensation) and the wind use the airspeed",
    );
    refuse(
        s.ground_velocity_from.is_some()
            && !matches!(kind, SensorKind::Icm20948 | SensorKind::Wind),
        "ground_velocity_from",
        "only an icm20948 and the wind use the GNSS velocity",
    );
    refuse(
        s.heading_from.is_some() && kind != SensorKind::Wind,
        "heading_from",
        "only the wind uses a heading",
    );
}

/// An `mqtt` sensor's declaration: at least one quantity, each a name of the vocabulary
/// with a finite range whose `min` is at most its `max`; a rate bound above zero and at
/// most [`super::MQTT_READINGS_PER_S_MAX`]; a mapper topic with no wildcard and a mapper
/// quantity it declares, together. Other kinds carry none of these keys.
fn bus_sensor(rules: &mut Rules<'_>, i: usize, s: &SensorConfig) {
    use super::MQTT_READINGS_PER_S_MAX;
    let at = |key: &str| format!("sensor[{i}].{key}");
    if s.kind != SensorKind::Mqtt {
        let why = format!(
            "only an mqtt sensor takes readings from the bus, not {}",
            s.kind.with_article()
        );
        for (present, key) in [
            (!s.quantities.is_empty(), "quantities"),
            (s.client_id.is_some(), "client_id"),
            (s.max_readings_per_s.is_some(), "max_readings_per_s"),
            (s.mapper_topic.is_some(), "mapper_topic"),
            (s.mapper_quantity.is_some(), "mapper_quantity"),
        ] {
            if present {
                rules.report(&at(key), why.clone(), "remove it");
            }
        }
        return;
    }
    if s.quantities.is_empty() {
        rules.report(
            &at("quantities"),
            "an mqtt sensor declares the quantities it takes",
            "add `[sensor.quantities.air_temperature]` with `min` and `max`",
        );
    }
    for (name, range) in &s.quantities {
        let key = at(&format!("quantities.{name}"));
        if aloft_protocol::Quantity::from_name(name).is_none_or(|q| !q.is_known()) {
            let known: Vec<&str> = aloft_protocol::Quantity::ALL
                .iter()
                .filter_map(|q| q.name())
                .collect();
            let fix = match nearest(name, &known) {
                Some(near) => format!("did you mean `{near}`?"),
                None => "use a quantity name of the vocabulary (docs/api.md)".to_string(),
            };
            rules.report(&key, "is not a quantity of the vocabulary", fix);
        } else if !(range.min.is_finite() && range.max.is_finite() && range.min <= range.max) {
            rules.report(
                &key,
                format!(
                    "range [{}, {}] is empty or not finite",
                    range.min, range.max
                ),
                "write finite `min` and `max` with min <= max, in the quantity's unit",
            );
        }
    }
    if let Some(rate) = s.max_readings_per_s
        && !(rate > 0.0 && rate <= MQTT_READINGS_PER_S_MAX)
    {
        rules.report(
            &at("max_readings_per_s"),
            format!("{rate} is not above 0 and at most {MQTT_READINGS_PER_S_MAX}"),
            "write the publisher's highest rate with some margin",
        );
    }
    match (&s.mapper_topic, &s.mapper_quantity) {
        (Some(topic), Some(quantity)) => {
            if topic.is_empty() || topic.contains(['+', '#', '\0']) {
                rules.report(
                    &at("mapper_topic"),
                    "is empty or has a wildcard",
                    "write the push method's topic exactly",
                );
            }
            if !s.quantities.contains_key(quantity) {
                rules.report(
                    &at("mapper_quantity"),
                    format!("{quantity} is not one of the sensor's quantities"),
                    "name a quantity of `[sensor.quantities]`",
                );
            }
        }
        (Some(_), None) => rules.report(
            &at("mapper_quantity"),
            "a mapper topic needs the quantity its values are",
            "add `mapper_quantity`",
        ),
        (None, Some(_)) => rules.report(
            &at("mapper_topic"),
            "a mapper quantity needs the topic its values come on",
            "add `mapper_topic`",
        ),
        (None, None) => {}
    }
}

/// `[sensor.tunables]`: scalars, within the protocol's bounds, each a key the kind
/// declares with a value it takes.
fn tunables(rules: &mut Rules<'_>, i: usize, s: &SensorConfig) {
    use super::tunables::{accepted, check_one, describe, from_toml};
    use aloft_protocol::sync::{MAX_TUNABLES, check_tunables};
    let at = |key: &str| format!("sensor[{i}].tunables.{key}");
    if s.tunables.len() > MAX_TUNABLES {
        rules.report(
            &format!("sensor[{i}].tunables"),
            format!("has {} tunables; at most {MAX_TUNABLES}", s.tunables.len()),
            "leave out the ones at their default",
        );
    }
    let declared = accepted(s.kind);
    for (key, value) in &s.tunables {
        let value = match from_toml(value) {
            Ok(v) => v,
            Err(what) => {
                rules.report(
                    &at(key),
                    format!("is {what}, not a bool, whole number or string"),
                    "write one value (a fraction as a whole number of a finer unit)",
                );
                continue;
            }
        };
        let Some(spec) = declared.iter().find(|d| d.key == key) else {
            let keys: Vec<&str> = declared.iter().map(|d| d.key).collect();
            let fix = match nearest(key, &keys) {
                Some(near) => format!("did you mean `{near}`?"),
                None if keys.is_empty() => {
                    format!(
                        "{} has no tunables; remove the table",
                        s.kind.with_article()
                    )
                }
                None => format!("{} has: {}", s.kind.with_article(), keys.join(", ")),
            };
            rules.report(&at(key), "unknown tunable", fix);
            continue;
        };
        if let Err(e) = check_tunables([(key.as_str(), &value)].into_iter()) {
            rules.report(&at(key), e.to_string(), "shorten it");
        } else if check_one(s.kind, key, &value).is_err() {
            rules.report(
                &at(key),
                format!("{} {value} is not accepted", value.type_name()),
                format!("write {} ({})", describe(spec.accepts), spec.doc),
            );
        }
    }
}

/// Port, bus, address and baud rate.
fn place(rules: &mut Rules<'_>, i: usize, s: &SensorConfig) {
    let kind = s.kind;
    let at = |key: &str| format!("sensor[{i}].{key}");
    if kind.is_serial() {
        match &s.port {
            None if !rules.ctx.simulated => rules.report(
                &at("port"),
                format!("{} sensor needs its serial port", kind.with_article()),
                "add `port = \"/dev/serial/by-id/...\"` (the by-id name survives replugging)",
            ),
            Some(p) if p.as_os_str().is_empty() => {
                rules.report(&at("port"), "is empty", "write the serial port's path")
            }
            _ => {}
        }
        if let Some(baud) = s.baud
            && !kind.bauds().contains(&baud)
        {
            rules.report(
                &at("baud"),
                format!("{} does not speak {baud} baud", kind.with_article()),
                format!(
                    "use one of {} (or leave it out for {})",
                    list(kind.bauds()),
                    kind.default_baud().unwrap_or(0)
                ),
            );
        }
    } else if kind.is_i2c() {
        match &s.bus {
            None if !rules.ctx.simulated => rules.report(
                &at("bus"),
                format!("{} sensor needs its I2C bus", kind.with_article()),
                "add `bus = \"/dev/i2c-1\"`",
            ),
            Some(b) if b.as_os_str().is_empty() => {
                rules.report(&at("bus"), "is empty", "write the I2C bus's path")
            }
            _ => {}
        }
        if let Some(address) = s.address {
            let allowed = kind.addresses();
            if !allowed.contains(&address) {
                let hex: Vec<String> = allowed.iter().map(|a| format!("0x{a:02x}")).collect();
                rules.report(
                    &at("address"),
                    format!("{} cannot be at 0x{address:02x}", kind.with_article()),
                    if hex.len() == 1 {
                        format!(
                            "it is always at {}; write that or leave it out",
                            hex.join("")
                        )
                    } else {
                        format!("use one of {}", hex.join(", "))
                    },
                );
            }
        }
    } else if kind == SensorKind::Wind && s.ground_velocity_from.is_none() {
        rules.report(
            &at("ground_velocity_from"),
            "a wind needs the GNSS receiver's ground speed and track",
            "add `ground_velocity_from = \"gps\"` (a ublox or an nmea sensor)",
        );
    }
}

fn interval_rule(rules: &mut Rules<'_>, key: &str, kind: SensorKind, interval: Duration) {
    let Some(min) = kind.min_interval() else {
        // Serial kinds: refused by `keys_of_kind` already.
        return;
    };
    let show = |d: Duration| humantime_serde::re::humantime::format_duration(d).to_string();
    if interval.is_zero() {
        rules.report(
            key,
            "is zero",
            format!("write a sampling interval of at least {}", show(min)),
        );
    } else if interval < min {
        let why = match kind {
            SensorKind::Scd41 => "its periodic mode measures once every 5 s",
            SensorKind::Bme280 => "a forced measurement takes that long",
            SensorKind::Ms5611 => "its two conversions take that long",
            _ => "the part updates no faster",
        };
        rules.report(
            key,
            format!(
                "{} is shorter than {} can do ({} at least: {why})",
                show(interval),
                kind.with_article(),
                show(min)
            ),
            format!("write {} or more", show(min)),
        );
    }
}

/// A key naming another sensor: the key, its value, what the target must be able to
/// provide, and why.
type Reference<'a> = (
    &'static str,
    &'a Option<String>,
    fn(SensorKind) -> bool,
    &'static str,
);

/// `static_pressure_from`, `outside_air_from`, `ambient_pressure_from`, `airspeed_from`,
/// `ground_velocity_from`, `heading_from`.
fn references(
    rules: &mut Rules<'_>,
    i: usize,
    s: &SensorConfig,
    slots: &[SensorSlot],
    names: &HashMap<&str, usize>,
) {
    let refs: [Reference<'_>; 6] = [
        (
            "static_pressure_from",
            &s.static_pressure_from,
            SensorKind::provides_static_pressure,
            "static pressure comes from a bme280 or an ms5611",
        ),
        (
            "outside_air_from",
            &s.outside_air_from,
            SensorKind::provides_outside_air,
            "outside air temperature comes from a bme280 mounted outside (an ms5611's \
             temperature is its die's, inside the box)",
        ),
        (
            "ambient_pressure_from",
            &s.ambient_pressure_from,
            SensorKind::provides_static_pressure,
            "ambient pressure comes from a bme280 or an ms5611",
        ),
        (
            "airspeed_from",
            &s.airspeed_from,
            SensorKind::provides_true_airspeed,
            "true airspeed comes from an ms4525do pitot sensor",
        ),
        (
            "ground_velocity_from",
            &s.ground_velocity_from,
            SensorKind::provides_ground_velocity,
            "ground speed and track come from a GNSS receiver (a ublox or an nmea)",
        ),
        (
            "heading_from",
            &s.heading_from,
            SensorKind::provides_heading,
            "the heading comes from an icm20948 attitude sensor",
        ),
    ];
    for (key, target, can, why) in refs {
        let Some(target) = target else { continue };
        let key = format!("sensor[{i}].{key}");
        let Some(&j) = names.get(target.as_str()) else {
            let known: Vec<&str> = names.keys().copied().collect();
            let fix = match nearest(target, &known) {
                Some(near) => format!("did you mean \"{near}\"?"),
                None => "name one of the [[sensor]] tables".into(),
            };
            rules.report(&key, format!("no sensor is called \"{target}\""), fix);
            continue;
        };
        if j == i {
            rules.report(
                &key,
                "names the sensor itself",
                format!("name another sensor: {why}"),
            );
            continue;
        }
        // A broken target is reported on its own; its kind, if readable, still counts.
        let kind = match &slots[j].config {
            Some(c) => Some(c.kind),
            None => slots[j]
                .raw_kind
                .as_deref()
                .and_then(|k| SensorKind::ALL.into_iter().find(|x| x.as_str() == k)),
        };
        if let Some(kind) = kind
            && !can(kind)
        {
            rules.report(
                &key,
                format!(
                    "\"{target}\" is {}, which cannot provide it",
                    kind.with_article()
                ),
                format!("name another sensor: {why}"),
            );
        }
    }
}

fn store(rules: &mut Rules<'_>, store: &StoreConfig, sensors: Vec<SensorConfig>) {
    if store.path.as_os_str().is_empty() {
        rules.report(
            "store.path",
            "is empty",
            "write the store's directory, such as \"/var/lib/aloft/store\"",
        );
    }
    let flush = store.flush_interval;
    if flush.is_zero() {
        rules.report(
            "store.flush_interval",
            "is zero: every record would wait for its own fsync",
            "write the group-commit interval, such as \"1s\" (the most a power cut loses)",
        );
    } else if flush > FLUSH_INTERVAL_MAX {
        rules.report(
            "store.flush_interval",
            format!(
                "{} is more than a minute: a power cut would lose all of it",
                humantime_serde::re::humantime::format_duration(flush)
            ),
            "write a minute or less; \"1s\" is the default of the design",
        );
    }
    // Only with a usable flush interval is the flush window's size meaningful.
    let window = if flush.is_zero() || flush > FLUSH_INTERVAL_MAX {
        0
    } else {
        window_bytes(store, sensors)
    };
    let need = (2 * STORE_SEGMENT_BYTES).max(window.saturating_mul(2));
    if store.max_bytes < need {
        let what = if window > STORE_SEGMENT_BYTES {
            format!(
                "{} bytes cannot hold two flush windows of the configured sensors (up to {window} bytes each)",
                store.max_bytes
            )
        } else {
            format!(
                "{} bytes cannot hold two store segments of {STORE_SEGMENT_BYTES} bytes (the one being written and one to drop when full)",
                store.max_bytes
            )
        };
        rules.report(
            "store.max_bytes",
            what,
            format!("write {need} or more (an SD card's gigabytes are usual)"),
        );
    }
}

fn window_bytes(store: &StoreConfig, sensors: Vec<SensorConfig>) -> u64 {
    // The estimate is a method of the whole config; build one with only what it reads.
    let config = AgentConfig {
        node: NodeConfig {
            name: String::new(),
        },
        store: store.clone(),
        sensors,
        hub: None,
        mqtt: None,
        metrics: super::MetricsConfig::default(),
        simulation: None,
        power: None,
    };
    config.flush_window_bytes_max()
}

fn hub(rules: &mut Rules<'_>, hub: &HubConfig) {
    let url = hub.url.trim();
    let rest = url
        .strip_prefix("wss://")
        .or_else(|| url.strip_prefix("ws://"));
    match rest {
        None => rules.report(
            "hub.url",
            format!("\"{url}\" is not a WebSocket URL"),
            "write a ws:// or wss:// URL, such as \"wss://hub.example.org:8443/v1/nodes/connect\"",
        ),
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
            if host.is_empty() || host.starts_with(':') {
                rules.report(
                    "hub.url",
                    format!("\"{url}\" names no host"),
                    "write the hub's host after the scheme, such as \"wss://hub.example.org:8443/v1/nodes/connect\"",
                );
            }
        }
    }
    for (key, value) in [
        ("hub.keepalive", hub.keepalive),
        ("hub.read_deadline", hub.read_deadline),
        ("hub.reconnect_max", hub.reconnect_max),
        ("hub.live_interval", hub.live_interval),
    ] {
        if value.is_zero() {
            rules.report(
                key,
                "is zero",
                "write a duration above zero, such as \"1s\"",
            );
        }
    }
    if !hub.read_deadline.is_zero() && hub.keepalive >= hub.read_deadline {
        rules.report(
            "hub.keepalive",
            format!(
                "{} is not shorter than hub.read_deadline ({}): a quiet but healthy link would be dropped",
                humantime_serde::re::humantime::format_duration(hub.keepalive),
                humantime_serde::re::humantime::format_duration(hub.read_deadline),
            ),
            "make the keepalive a third of the read deadline or less (15s and 45s by default)",
        );
    }
    if hub.upload_bytes_per_s < super::UPLOAD_BYTES_PER_S_MIN {
        rules.report(
            "hub.upload_bytes_per_s",
            format!("{} bytes/s is too little to sync", hub.upload_bytes_per_s),
            format!(
                "write at least {} (250000 by default)",
                super::UPLOAD_BYTES_PER_S_MIN
            ),
        );
    }
    if hub.token_file.as_os_str().is_empty() {
        rules.report(
            "hub.token_file",
            "is empty",
            "write the path of the file that holds the node's token",
        );
    }
}

/// Two devices cannot answer at one address of one bus: each would garble the other's
/// replies. Sensors without a bus (simulated) share nothing.
fn i2c_addresses(rules: &mut Rules<'_>, slots: &[SensorSlot]) {
    let mut taken: HashMap<(PathBuf, u8), usize> = HashMap::new();
    for (i, slot) in slots.iter().enumerate() {
        let Some(s) = &slot.config else {
            continue;
        };
        let (Some(bus), Some(address)) = (&s.bus, s.address_or_default()) else {
            continue;
        };
        if !s.kind.is_i2c() || bus.as_os_str().is_empty() {
            continue;
        }
        match taken.get(&(bus.clone(), address)) {
            Some(&first) => rules.report(
                &format!("sensor[{i}].address"),
                format!(
                    "0x{address:02x} on {} is already sensor[{first}]'s address",
                    bus.display()
                ),
                "two devices cannot answer at one address of one bus: give this one its other address (set by its address pin) or put it on another bus",
            ),
            None => {
                taken.insert((bus.clone(), address), i);
            }
        }
    }
}

/// Files the config names that must exist where the agent runs, checked by
/// `check-config` (and not by every parse, so that a config can be written and parsed
/// before it reaches its board): the token file, without which the agent never connects.
pub(super) fn files_present(config: &AgentConfig) -> Vec<Problem> {
    let mut problems = Vec::new();
    let Some(hub) = &config.hub else {
        return problems;
    };
    let path = &hub.token_file;
    if path.as_os_str().is_empty() {
        // Reported by the `hub` rule already.
        return problems;
    }
    let what = match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Some(format!("{} is empty", path.display())),
        Ok(_) => None,
        Err(e) => Some(format!("{} cannot be read: {e}", path.display())),
    };
    if let Some(what) = what {
        problems.push(Problem {
            position: None,
            key: "hub.token_file".into(),
            what,
            fix: "write the node's token there (`aloftctl create node NAME` prints it once), readable by the agent's user; without it the agent never connects".into(),
        });
    }
    problems
}

fn simulation(rules: &mut Rules<'_>, sim: &SimulationConfig) {
    if !(sim.speed.is_finite() && sim.speed > 0.0) {
        rules.report(
            "simulation.speed",
            format!("{} is not a speed-up", sim.speed),
            "write simulated seconds per real second, more than 0 (1 is real time)",
        );
    }
    if !(sim.start_at_s.is_finite() && sim.start_at_s >= 0.0) {
        rules.report(
            "simulation.start_at_s",
            format!("{} is not a time in the flight", sim.start_at_s),
            "write seconds after the scenario's start, 0 or more",
        );
    }
}

/// The `[power]` section: the battery is an `sbs` sensor, the policy's durations and
/// hysteresis are sane, and every step has a name of its own, a threshold to enter it by,
/// and effects on sensors that exist (never switching off the battery it watches).
fn power(rules: &mut Rules<'_>, power: &PowerConfig, slots: &[SensorSlot]) {
    let names: Vec<&str> = slots.iter().filter_map(|s| s.raw_name.as_deref()).collect();
    let sensor = |name: &str| {
        slots
            .iter()
            .find(|s| s.raw_name.as_deref() == Some(name))
            .map(|s| s.config.as_ref().map(|c| c.kind))
    };
    let unknown = |rules: &mut Rules<'_>, key: &str, name: &str| {
        let fix = match nearest(name, &names) {
            Some(near) => format!("did you mean \"{near}\"?"),
            None => "name one of the [[sensor]] tables".into(),
        };
        rules.report(key, format!("no sensor is called \"{name}\""), fix);
    };
    match sensor(&power.battery) {
        None => unknown(rules, "power.battery", &power.battery),
        Some(Some(kind)) if kind != SensorKind::Sbs => rules.report(
            "power.battery",
            format!(
                "\"{}\" is {}, not a battery",
                power.battery,
                kind.with_article()
            ),
            "name the sensor of kind \"sbs\" (the smart battery)",
        ),
        Some(_) => {}
    }
    if power.check_interval.is_zero() {
        rules.report(
            "power.check_interval",
            "is zero",
            "write how often the policy looks, such as \"5s\"",
        );
    }
    if power.stale_after.is_zero() {
        rules.report(
            "power.stale_after",
            "is zero",
            "write how old battery values may be, such as \"60s\"",
        );
    }
    for (key, value, limit) in [
        ("power.soc_hysteresis", power.soc_hysteresis, 1.0),
        (
            "power.voltage_hysteresis_v",
            power.voltage_hysteresis_v,
            100.0,
        ),
        (
            "power.temperature_hysteresis_k",
            power.temperature_hysteresis_k,
            100.0,
        ),
    ] {
        if !(value.is_finite() && (0.0..limit).contains(&value)) {
            rules.report(
                key,
                format!("{value} is not a hysteresis"),
                format!("write 0 or more, below {limit}"),
            );
        }
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, step) in power.steps.iter().enumerate() {
        let at = |k: &str| format!("power.step[{i}].{k}");
        name(rules, &at("name"), &step.name, "power step");
        if step.name == "full" {
            rules.report(
                &at("name"),
                "\"full\" is the name of full power (level 0)",
                "give the step another name, such as \"economy\"",
            );
        }
        if let Some(&first) = seen.get(step.name.as_str()) {
            rules.report(
                &at("name"),
                format!(
                    "the name \"{}\" is already used by power.step[{first}]",
                    step.name
                ),
                "give every step its own name",
            );
        } else {
            seen.insert(&step.name, i);
        }
        if step.soc_below.is_none()
            && step.voltage_below_v.is_none()
            && step.temperature_below_c.is_none()
        {
            rules.report(
                &format!("power.step[{i}]"),
                "has no threshold, so it is never entered",
                "add soc_below, voltage_below_v or temperature_below_c",
            );
        }
        if let Some(soc) = step.soc_below
            && !(soc.is_finite() && soc > 0.0 && soc <= 1.0)
        {
            rules.report(
                &at("soc_below"),
                format!("{soc} is not a state of charge"),
                "write a fraction above 0 and at most 1, such as 0.35",
            );
        }
        if let Some(v) = step.voltage_below_v
            && !(v.is_finite() && v > 0.0 && v < 1_000.0)
        {
            rules.report(
                &at("voltage_below_v"),
                format!("{v} is not a pack voltage"),
                "write volts, such as 13.5",
            );
        }
        if let Some(t) = step.temperature_below_c
            && !(t.is_finite() && (-100.0..=100.0).contains(&t))
        {
            rules.report(
                &at("temperature_below_c"),
                format!("{t} is not a pack temperature"),
                "write degrees Celsius between -100 and 100, such as -10",
            );
        }
        if let Some(f) = step.interval_factor
            && !(f.is_finite() && (1.0..=10_000.0).contains(&f))
        {
            rules.report(
                &at("interval_factor"),
                format!("{f} would not lengthen intervals"),
                "write 1 or more (2 halves every sampling rate); a step only lowers",
            );
        }
        for (sensor_name, interval) in &step.intervals {
            let key = at(&format!("intervals.{sensor_name}"));
            match sensor(sensor_name) {
                None => unknown(rules, &key, sensor_name),
                Some(Some(kind)) if kind.min_interval().is_none() => rules.report(
                    &key,
                    format!(
                        "\"{sensor_name}\" is {}, which sends at its own rate",
                        kind.with_article()
                    ),
                    "disable it in this step instead, or leave it out",
                ),
                Some(_) if interval.is_zero() => {
                    rules.report(&key, "is zero", "write a duration such as \"60s\"")
                }
                Some(_) => {}
            }
        }
        for (j, sensor_name) in step.disable.iter().enumerate() {
            let key = at(&format!("disable[{j}]"));
            if sensor(sensor_name).is_none() {
                unknown(rules, &key, sensor_name);
            } else if *sensor_name == power.battery {
                rules.report(
                    &key,
                    format!("\"{sensor_name}\" is the battery the policy watches"),
                    "keep the battery running: without it no step is ever left",
                );
            }
        }
        if let Some(bytes) = step.upload_bytes_per_s
            && bytes < UPLOAD_BYTES_PER_S_MIN
        {
            rules.report(
                &at("upload_bytes_per_s"),
                format!("{bytes} bytes/s is below what the link needs"),
                format!("write {UPLOAD_BYTES_PER_S_MIN} or more"),
            );
        }
    }
}

fn list(values: &[u32]) -> String {
    values
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
