//! Reading a config file: TOML with spans, a walk that checks every table on its own, then
//! the semantic rules of [`super::validate`].
//!
//! The walk parses into `toml::de::DeTable` (every key and value with its byte span) and
//! checks each table (`[node]`, `[store]`, each `[[sensor]]` and its `power` and `capture`,
//! ...) separately against its serde type, so one bad table does not hide the problems of
//! the others. Inside a table, unknown keys are found from the type's own field list and a
//! key whose value serde rejects is reported and set aside, and the table is tried again:
//! every bad key of a table is reported, not only the first.
//!
//! Invariants: no input text panics the loader (a property test feeds it arbitrary text);
//! a config is returned only when no problem was found; problems come out in file order.

use std::collections::HashSet;
use std::path::Path;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::errors::{ConfigErrors, Position, Problem, Report};
use super::findings::{Finding, Spans, nearest};
use super::validate;
use super::{
    AgentConfig, CaptureConfig, HubConfig, MetricsConfig, MqttConfig, NodeConfig, PowerConfig,
    PowerLineConfig, SensorConfig, SimulationConfig, StoreConfig,
};

/// Reads and validates the config file at `path`.
///
/// # Errors
///
/// Every problem of the file at once: unreadable file, syntax, unknown keys, wrong types,
/// missing keys and the rules listed in the module doc of [`super`].
pub fn load(path: &Path) -> Result<AgentConfig, ConfigErrors> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        origin: origin.clone(),
        problems: vec![Problem {
            position: None,
            key: "file".into(),
            what: format!("cannot be read: {e}"),
            fix: "check the path and that the agent's user may read it".into(),
        }],
    })?;
    let config = parse(&text, &origin)?;
    tracing::debug!(
        path = %origin,
        node = %config.node.name,
        sensors = config.sensors.len(),
        simulated = config.is_simulated(),
        "Config loaded."
    );
    Ok(config)
}

/// Parses and validates config `text`; `origin` names it in the report (the file's path).
///
/// # Errors
///
/// Every problem of the text at once, as for [`load`].
pub fn parse(text: &str, origin: &str) -> Result<AgentConfig, ConfigErrors> {
    let mut walk = Walk::default();
    let config = walk.document(text);
    if walk.findings.is_empty()
        && let Some(config) = config
    {
        return Ok(config);
    }
    let mut findings = walk.findings;
    // Stable: two problems of one key keep the order they were found in.
    findings.sort_by_key(|f| f.offset.unwrap_or(0));
    Err(ConfigErrors {
        origin: origin.to_string(),
        problems: findings
            .into_iter()
            .map(|f| Problem {
                position: f.offset.map(|o| Position::of_offset(text, o)),
                key: f.key,
                what: f.what,
                fix: f.fix,
            })
            .collect(),
    })
}

/// `aloft-agent check-config FILE`: the report to print and whether the file is valid.
pub fn check(path: &Path) -> Report {
    match load(path) {
        Ok(config) => Report {
            valid: true,
            text: summary(&path.display().to_string(), &config),
        },
        Err(errors) => {
            let n = errors.len();
            let plural = if n == 1 { "problem" } else { "problems" };
            Report {
                valid: false,
                text: format!("{errors}\n{}: {n} {plural}.", errors.origin),
            }
        }
    }
}

/// `aloft-agent check-config FILE` on the board: [`check`], and the files the config
/// names that must be there for the agent to work (its hub token), so that a config that
/// would never connect does not pass.
pub fn check_installed(path: &Path) -> Report {
    let problems = match load(path) {
        Ok(config) => validate::files_present(&config),
        Err(_) => Vec::new(),
    };
    if problems.is_empty() {
        return check(path);
    }
    let errors = ConfigErrors {
        origin: path.display().to_string(),
        problems,
    };
    let n = errors.len();
    let plural = if n == 1 { "problem" } else { "problems" };
    Report {
        valid: false,
        text: format!("{errors}\n{}: {n} {plural}.", errors.origin),
    }
}

/// What the agent would run with a valid config: the facts a flight engineer checks before
/// take-off.
fn summary(origin: &str, config: &AgentConfig) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mode = if config.is_simulated() {
        "the simulated flight"
    } else {
        "hardware"
    };
    let _ = writeln!(out, "{origin}: valid.");
    let _ = writeln!(out, "node {} on {mode}", config.node.name);
    let _ = writeln!(
        out,
        "store {} up to {} bytes, {} when full, flush every {}",
        config.store.path.display(),
        config.store.max_bytes,
        config.store.full_policy.as_str(),
        humantime_serde::re::humantime::format_duration(config.store.flush_interval),
    );
    for (i, s) in config.sensors.iter().enumerate() {
        let place = if s.kind.is_serial() {
            let port = s
                .port
                .as_ref()
                .map_or("(simulated)".to_string(), |p| p.display().to_string());
            format!("{port} at {} baud", s.baud_or_default().unwrap_or(0))
        } else {
            let bus = s
                .bus
                .as_ref()
                .map_or("(simulated)".to_string(), |p| p.display().to_string());
            let every = s.interval_or_default().map_or(String::new(), |d| {
                format!(
                    " every {}",
                    humantime_serde::re::humantime::format_duration(d)
                )
            });
            format!(
                "{bus} at 0x{:02x}{every}",
                s.address_or_default().unwrap_or(0)
            )
        };
        let off = if s.enabled { "" } else { " (disabled)" };
        let _ = writeln!(out, "sensor[{i}] {} {} on {place}{off}", s.name, s.kind);
    }
    match &config.hub {
        Some(hub) => {
            let d = |d| humantime_serde::re::humantime::format_duration(d);
            let _ = writeln!(
                out,
                "hub {}: ping every {}, dead after {} of silence, reconnect within {}, \
                 upload at most {} bytes/s, live every {}",
                hub.url,
                d(hub.keepalive),
                d(hub.read_deadline),
                d(hub.reconnect_max),
                hub.upload_bytes_per_s,
                d(hub.live_interval),
            );
        }
        None => {
            let _ = writeln!(out, "no hub: the node keeps everything locally");
        }
    }
    if let Some(power) = &config.power {
        let steps: Vec<String> = power
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{} {}", i + 1, s.name))
            .collect();
        let _ = writeln!(
            out,
            "power policy on battery {}: steps {}",
            power.battery,
            if steps.is_empty() {
                "none".to_string()
            } else {
                steps.join(", ")
            }
        );
    }
    let _ = write!(out, "metrics on {}", config.metrics.listen);
    out
}

/// The walk over one document.
#[derive(Debug, Default)]
struct Walk {
    findings: Vec<Finding>,
    spans: Spans,
    /// Key paths already reported as wrong and left out of their table, so the table's
    /// other keys can still be read and checked. The parts read that way stand in for the
    /// file only for the rules (a config is never returned once anything was reported), and
    /// a rule's finding about a key set aside is dropped: it would be about the default
    /// that took the key's place, not about what the file says.
    set_aside: HashSet<String>,
}

/// A table with its span.
type Table<'i> = Spanned<DeTable<'i>>;

impl Walk {
    fn push(&mut self, offset: Option<usize>, key: &str, what: String, fix: String) {
        self.findings.push(Finding {
            offset,
            key: key.to_string(),
            what,
            fix,
        });
    }

    fn document(&mut self, text: &str) -> Option<AgentConfig> {
        let (root, errors) = DeTable::parse_recoverable(text);
        if !errors.is_empty() {
            for e in errors {
                let mut what = e.message().trim().replace('\n', " ");
                // The parser does not say which key; the text at the span does.
                if what == "duplicate key"
                    && let Some(key) = e
                        .span()
                        .and_then(|s| text.get(s))
                        .filter(|k| !k.is_empty() && k.len() <= 64 && !k.contains('\n'))
                {
                    what = format!("duplicate key `{key}`");
                }
                self.push(
                    e.span().map(|s| s.start),
                    "syntax",
                    what,
                    "correct the TOML here (https://toml.io)".into(),
                );
            }
            return None;
        }
        let mut root = root;
        let simulated = root.get_ref().contains_key("simulation");
        self.unknown_keys::<AgentConfig>(&mut root, "");

        let node = self.section::<NodeConfig>(&mut root, "node", true);
        let store = self.section::<StoreConfig>(&mut root, "store", true);
        let hub = self.section::<HubConfig>(&mut root, "hub", false);
        let mqtt = self.section::<MqttConfig>(&mut root, "mqtt", false);
        let metrics = self.section::<MetricsConfig>(&mut root, "metrics", false);
        let simulation = self.section::<SimulationConfig>(&mut root, "simulation", false);
        let power = self.section::<PowerConfig>(&mut root, "power", false);
        let sensors = self.sensors(&mut root);

        let ctx = validate::Context {
            spans: &self.spans,
            simulated,
        };
        let mut findings = Vec::new();
        validate::all(
            &ctx,
            validate::Parts {
                node: node.as_ref().and_then(Option::as_ref),
                store: store.as_ref().and_then(Option::as_ref),
                sensors: &sensors,
                hub: hub.as_ref().and_then(Option::as_ref),
                mqtt: mqtt.as_ref().and_then(Option::as_ref),
                simulation: simulation.as_ref().and_then(Option::as_ref),
                power: power.as_ref().and_then(Option::as_ref),
            },
            &mut findings,
        );
        let set_aside = &self.set_aside;
        findings.retain(|f| !is_within_any(&f.key, set_aside));
        self.findings.extend(findings);

        let sensors: Option<Vec<SensorConfig>> = sensors.into_iter().map(|s| s.config).collect();
        Some(AgentConfig {
            node: node??,
            store: store??,
            sensors: sensors?,
            hub: hub?,
            mqtt: mqtt?,
            metrics: metrics?.unwrap_or_default(),
            simulation: simulation?,
            power: power?,
        })
    }

    /// Checks the table under `key` of the root. `None`: it was wrong (reported);
    /// `Some(None)`: it is absent (reported if `required`).
    fn section<T: Section>(
        &mut self,
        root: &mut Table<'_>,
        key: &str,
        required: bool,
    ) -> Option<Option<T>> {
        let Some((k, value)) = root.get_mut().remove_entry(key) else {
            if required {
                self.push(
                    Some(0),
                    key,
                    format!("the [{key}] table is missing"),
                    format!("add a [{key}] table (deploy/examples/glider.toml shows one)"),
                );
                return None;
            }
            return Some(None);
        };
        self.spans.insert(key.to_string(), k.span().start);
        let table = self.expect_table(value, key)?;
        self.table::<T>(table, key).map(Some)
    }

    /// The `[[sensor]]` array, each sensor checked on its own.
    fn sensors(&mut self, root: &mut Table<'_>) -> Vec<validate::SensorSlot> {
        let Some((k, value)) = root.get_mut().remove_entry("sensor") else {
            return Vec::new();
        };
        self.spans.insert("sensor".into(), k.span().start);
        let span = value.span();
        let DeValue::Array(items) = value.into_inner() else {
            self.push(
                Some(span.start),
                "sensor",
                "is not an array of tables".into(),
                "write each sensor as a [[sensor]] table".into(),
            );
            return Vec::new();
        };
        let mut slots = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let path = format!("sensor[{i}]");
            self.spans.insert(path.clone(), item.span().start);
            let Some(mut table) = self.expect_table(item, &path) else {
                slots.push(validate::SensorSlot::default());
                continue;
            };
            let raw_name = table
                .get_ref()
                .get("name")
                .and_then(|v| v.get_ref().as_str())
                .map(str::to_string);
            let raw_kind = table
                .get_ref()
                .get("kind")
                .and_then(|v| v.get_ref().as_str())
                .map(str::to_string);
            // Nested tables first: a bad one is reported with its own keys and set aside,
            // so the sensor's other keys are still checked.
            for sub in ["power", "capture"] {
                let Some((k, v)) = table.get_mut().remove_entry(sub) else {
                    continue;
                };
                let sub_path = format!("{path}.{sub}");
                self.spans.insert(sub_path.clone(), k.span().start);
                let span = v.span();
                let typed = match self.expect_table(v.clone(), &sub_path) {
                    Some(t) if sub == "power" => {
                        self.table::<PowerLineConfig>(t, &sub_path).is_some()
                    }
                    Some(t) => self.table::<CaptureConfig>(t, &sub_path).is_some(),
                    None => false,
                };
                let any_set_aside = self
                    .set_aside
                    .iter()
                    .any(|p| is_within_any(p, &HashSet::from([sub_path.clone()])));
                if typed && !any_set_aside {
                    table
                        .get_mut()
                        .insert(k, Spanned::new(span, v.into_inner()));
                } else {
                    // Reported already; the sensor is read without it.
                    self.set_aside.insert(sub_path);
                }
            }
            // The rules check each tunable on its own: they point at its key.
            if let Some(DeValue::Table(tunables)) =
                table.get_ref().get("tunables").map(|v| v.get_ref())
            {
                for (k, _) in tunables.iter() {
                    self.spans
                        .insert(format!("{path}.tunables.{}", k.get_ref()), k.span().start);
                }
            }
            let config = self.table::<SensorConfig>(table, &path);
            slots.push(validate::SensorSlot {
                config,
                raw_name,
                raw_kind,
            });
        }
        slots
    }

    fn expect_table<'i>(&mut self, value: Spanned<DeValue<'i>>, path: &str) -> Option<Table<'i>> {
        let span = value.span();
        match value.into_inner() {
            DeValue::Table(t) => Some(Spanned::new(span, t)),
            other => {
                self.push(
                    Some(span.start),
                    path,
                    format!("is {}, not a table", article(other.type_str())),
                    table_hint(path),
                );
                None
            }
        }
    }

    /// Reports the keys of `table` that `T` does not have and removes them.
    fn unknown_keys<T: DeserializeOwned>(&mut self, table: &mut Table<'_>, path: &str) {
        let known = fields_of::<T>();
        let unknown: Vec<(String, usize)> = table
            .get_ref()
            .keys()
            .filter(|k| !known.contains(&k.get_ref().as_ref()))
            .map(|k| (k.get_ref().to_string(), k.span().start))
            .collect();
        for (key, offset) in unknown {
            table.get_mut().remove(key.as_str());
            let fix = match nearest(&key, known) {
                Some(near) => format!("did you mean `{near}`?"),
                None => format!("known keys here: {}", known.join(", ")),
            };
            self.push(Some(offset), &join(path, &key), "unknown key".into(), fix);
        }
    }

    /// Checks one table against `T`: unknown keys, then every key serde rejects, then the
    /// keys that are missing.
    fn table<T: Section>(&mut self, mut table: Table<'_>, path: &str) -> Option<T> {
        self.unknown_keys::<T>(&mut table, path);
        for (k, v) in table.get_ref().iter() {
            let key = join(path, k.get_ref());
            self.spans.insert(key.clone(), k.span().start);
            // Arrays of tables inside a section (`[[power.step]]`): each item and its
            // keys get their own place, so a rule about one points at it.
            if let DeValue::Array(items) = v.get_ref() {
                for (i, item) in items.iter().enumerate() {
                    let at = format!("{key}[{i}]");
                    self.spans.insert(at.clone(), item.span().start);
                    if let DeValue::Table(t) = item.get_ref() {
                        for (ik, _) in t.iter() {
                            self.spans.insert(join(&at, ik.get_ref()), ik.span().start);
                        }
                    }
                }
            }
        }
        // Each round either succeeds, sets one key aside, or stops: bounded by the keys.
        for _ in 0..=table.get_ref().len() {
            let attempt = T::deserialize(ValueDeserializer::from(Spanned::new(
                table.span(),
                DeValue::Table(table.get_ref().clone()),
            )));
            let error = match attempt {
                Ok(value) => return Some(value),
                Err(e) => e,
            };
            let key_at = error.span().and_then(|span| {
                table
                    .get_ref()
                    .iter()
                    .find(|(k, v)| {
                        let (ks, vs) = (k.span(), v.span());
                        (ks.start <= span.start && span.start < ks.end.max(ks.start + 1))
                            || (vs.start <= span.start && span.start < vs.end.max(vs.start + 1))
                    })
                    .map(|(k, v)| (k.get_ref().to_string(), v.span()))
            });
            match key_at {
                Some((key, value_span)) => {
                    table.get_mut().remove(key.as_str());
                    let (what, fix) = explain(error.message());
                    let key = join(path, &key);
                    self.push(Some(value_span.start), &key, what, fix);
                    self.set_aside.insert(key);
                }
                None => {
                    self.missing::<T>(&table, path, error.message());
                    return None;
                }
            }
        }
        None
    }

    /// Reports every required key of `T` that `table` lacks.
    fn missing<T: Section>(&mut self, table: &Table<'_>, path: &str, message: &str) {
        let absent: Vec<&str> = T::REQUIRED
            .iter()
            .copied()
            .filter(|k| {
                !table.get_ref().contains_key(*k) && !self.set_aside.contains(&join(path, k))
            })
            .collect();
        // The table as a whole: its header, or the `{` of an inline table.
        let at = Some(table.span().start);
        if absent.is_empty() && !message.starts_with("missing field") {
            // Not about a missing key: serde said something else about the table as a
            // whole. (A missing-field message with nothing absent names a key that was
            // set aside as wrong, which is reported already.)
            let (what, fix) = explain(message);
            self.push(at, path, what, fix);
        }
        for key in absent {
            let table_name = if path.is_empty() { "the file" } else { path };
            self.push(
                at,
                &join(path, key),
                "missing".into(),
                format!(
                    "add `{key} = ...` to {table_name} (deploy/examples/glider.toml shows one)"
                ),
            );
        }
    }
}

/// How to write the table at `path` in TOML (`sensor[0].power` is a `[sensor.power]`
/// header after its `[[sensor]]`).
fn table_hint(path: &str) -> String {
    match path.split_once('[') {
        None => format!("write it as a [{path}] table"),
        Some((array, rest)) => {
            let inner = rest.split_once(']').map_or("", |(_, after)| after);
            match inner.strip_prefix('.') {
                Some(sub) => format!(
                    "write it as a [{array}.{sub}] table after its [[{array}]], or as {sub} = {{ ... }}"
                ),
                None => format!("write it as a [[{array}]] table"),
            }
        }
    }
}

/// Whether `key` is one of `paths` or inside one (`sensor[0].power.line` is inside
/// `sensor[0].power`).
fn is_within_any(key: &str, paths: &HashSet<String>) -> bool {
    paths.iter().any(|p| {
        key.strip_prefix(p.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    })
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn article(type_str: &str) -> String {
    match type_str.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {type_str}"),
        _ => format!("a {type_str}"),
    }
}

/// The keys `T` reads, from its own `Deserialize` impl, so this list cannot drift from the
/// types.
fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut probe = introspect::FieldProbe::default();
    // The probe always stops the deserialization; what it recorded is the answer.
    let _ = T::deserialize(&mut probe);
    probe.fields
}

/// A table of the file: the keys it cannot do without.
///
/// Kept by hand next to the serde types; a test removes each key from a valid table and
/// checks that serde calls exactly these missing, so the list cannot drift.
pub(super) trait Section: DeserializeOwned {
    /// Keys without a default.
    const REQUIRED: &'static [&'static str];
}

impl Section for AgentConfig {
    const REQUIRED: &'static [&'static str] = &["node", "store"];
}
impl Section for NodeConfig {
    const REQUIRED: &'static [&'static str] = &["name"];
}
impl Section for StoreConfig {
    const REQUIRED: &'static [&'static str] = &[
        "path",
        "max_bytes",
        "full_policy",
        "flush_interval",
        "retain_acked",
    ];
}
impl Section for SensorConfig {
    const REQUIRED: &'static [&'static str] = &["name", "kind"];
}
impl Section for PowerLineConfig {
    const REQUIRED: &'static [&'static str] = &["chip", "line"];
}
impl Section for CaptureConfig {
    const REQUIRED: &'static [&'static str] = &["dir", "max_file_bytes", "max_files"];
}
impl Section for HubConfig {
    const REQUIRED: &'static [&'static str] = &["url", "token_file"];
}
impl Section for MqttConfig {
    const REQUIRED: &'static [&'static str] = &["broker"];
}
impl Section for MetricsConfig {
    const REQUIRED: &'static [&'static str] = &[];
}
impl Section for SimulationConfig {
    const REQUIRED: &'static [&'static str] = &[];
}
impl Section for PowerConfig {
    const REQUIRED: &'static [&'static str] = &["battery"];
}

/// Turns a serde message into what is wrong and what to do.
fn explain(message: &str) -> (String, String) {
    let message = message.trim();
    if let Some(rest) = message.strip_prefix("invalid type: ")
        && let Some((found, expected)) = rest.split_once(", expected ")
    {
        return (
            format!("wrong type: found {found}"),
            format!("write {}", friendly(expected)),
        );
    }
    if let Some(rest) = message.strip_prefix("invalid value: ")
        && let Some((found, expected)) = rest.split_once(", expected ")
    {
        return (
            format!("bad value: {found}"),
            format!("write {}", friendly(expected)),
        );
    }
    if message.starts_with("unknown variant") {
        let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
        if let Some((found, choices)) = quoted.split_first() {
            let fix = match nearest(found, choices) {
                Some(near) => format!("did you mean \"{near}\"? (one of: {})", choices.join(", ")),
                None => format!("write one of: {}", choices.join(", ")),
            };
            return (format!("unknown value \"{found}\""), fix);
        }
    }
    if message.contains("duration") || message.contains("time unit") {
        return (
            format!("not a duration: {message}"),
            "write a duration such as \"500ms\", \"1s\" or \"7d\"".into(),
        );
    }
    if message.contains("socket address") {
        return (
            format!("not an address: {message}"),
            "write an address and port such as \"127.0.0.1:9464\"".into(),
        );
    }
    (
        message.to_string(),
        "see deploy/examples/glider.toml for this key".into(),
    )
}

/// serde's type names in words.
fn friendly(expected: &str) -> String {
    match expected {
        "u8" => "an integer from 0 to 255".into(),
        "u16" => "an integer from 0 to 65535".into(),
        "u32" => "an integer from 0 to 4294967295".into(),
        "u64" => "a whole number of 0 or more".into(),
        "f64" | "f32" => "a number".into(),
        "a boolean" => "true or false".into(),
        "path string" => "a path in quotes".into(),
        "socket address" => "an address and port such as \"127.0.0.1:9464\"".into(),
        other if other.contains("Duration") || other.contains("duration") => {
            "a duration such as \"500ms\", \"1s\" or \"7d\"".into()
        }
        other => other.to_string(),
    }
}

/// Deserializers that only look at what a `Deserialize` impl asks for.
mod introspect {
    use std::fmt;

    use serde::de::{self, Visitor};
    use serde::forward_to_deserialize_any;

    /// The probe stopped (always: it only records).
    #[derive(Debug)]
    pub struct Stop;

    impl fmt::Display for Stop {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("probe stopped")
        }
    }

    impl std::error::Error for Stop {}

    impl de::Error for Stop {
        fn custom<T: fmt::Display>(_msg: T) -> Self {
            Stop
        }
    }

    /// Records the field list a struct asks for.
    #[derive(Debug, Default)]
    pub struct FieldProbe {
        pub fields: &'static [&'static str],
    }

    impl<'de> de::Deserializer<'de> for &mut FieldProbe {
        type Error = Stop;

        fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Stop> {
            self.fields = fields;
            Err(Stop)
        }

        forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that `T::REQUIRED` is exactly the set of keys whose absence serde refuses,
    /// starting from `full`, a table that has every key of `T`.
    fn required_matches_serde<T: Section>(full: &str) {
        let table = DeTable::parse(full).unwrap_or_else(|e| panic!("{e}"));
        let fields = fields_of::<T>();
        assert!(!fields.is_empty());
        for f in fields {
            assert!(
                table.get_ref().contains_key(*f),
                "the test table lacks `{f}`"
            );
        }
        let whole = Spanned::new(table.span(), DeValue::Table(table.get_ref().clone()));
        if let Err(e) = T::deserialize(ValueDeserializer::from(whole)) {
            panic!("the full table does not deserialize: {e}");
        }
        for f in fields {
            let mut without = table.get_ref().clone();
            without.remove(*f);
            let value = Spanned::new(table.span(), DeValue::Table(without));
            let refused = match T::deserialize(ValueDeserializer::from(value)) {
                Ok(_) => false,
                Err(e) => e.message().contains(&format!("missing field `{f}`")),
            };
            assert_eq!(
                refused,
                T::REQUIRED.contains(f),
                "`{f}`: serde and REQUIRED disagree"
            );
        }
    }

    #[test]
    fn required_keys_of_every_table_match_what_serde_refuses_to_miss() {
        required_matches_serde::<NodeConfig>("name = 'n'");
        required_matches_serde::<StoreConfig>(
            "path = '/s'\nmax_bytes = 1\nfull_policy = 'decimate'\nflush_interval = '1s'\n\
             retain_acked = '1d'",
        );
        required_matches_serde::<SensorConfig>(
            "name = 'p'\nkind = 'ms4525do'\nport = '/p'\nbaud = 9600\nbus = '/b'\n\
             address = 40\ninterval = '1s'\nenabled = true\n\
             power = { chip = '/c', line = 1 }\n\
             capture = { dir = '/d', max_file_bytes = 1, max_files = 1 }\n\
             static_pressure_from = 's'\noutside_air_from = 'o'\nambient_pressure_from = 'a'\n\
             airspeed_from = 'v'\nground_velocity_from = 'g'\nheading_from = 'h'\n\
             tunables = { pressure_oversampling = 4 }\n\
             quantities = { ozone = { min = 0.0, max = 1.0 } }\nclient_id = 'c'\n\
             max_readings_per_s = 10.0\nmapper_topic = 't'\nmapper_quantity = 'ozone'",
        );
        required_matches_serde::<PowerLineConfig>(
            "chip = '/c'\nline = 1\nactive_low = true\noff_for = '2s'",
        );
        required_matches_serde::<CaptureConfig>("dir = '/d'\nmax_file_bytes = 1\nmax_files = 1");
        required_matches_serde::<HubConfig>(
            "url = 'ws://h'\ntoken_file = '/t'\nca_file = '/c'\nkeepalive = '15s'\n\
             read_deadline = '45s'\nreconnect_max = '5s'\nupload_bytes_per_s = 250000\n\
             live_interval = '1s'",
        );
        required_matches_serde::<MqttConfig>(
            "broker = '127.0.0.1:1883'\nversion = '5'\nclient_id = 'c'\nqos = 1\n\
             keepalive = '30s'\nusername = 'u'\npassword_file = '/p'\ntls = true\n\
             ca_file = '/ca'\ncert_file = '/c'\nkey_file = '/k'\ntopic_prefix = 'aloft'\n\
             max_rate_per_topic = 2.0\nreconnect_max = '10s'\nreplay_outage = true",
        );
        required_matches_serde::<MetricsConfig>("listen = '127.0.0.1:9464'");
        required_matches_serde::<SimulationConfig>("seed = 1\nspeed = 1.0\nstart_at_s = 0.0");
        required_matches_serde::<AgentConfig>(
            "node = { name = 'n' }\n\
             store = { path = '/s', max_bytes = 1, full_policy = 'decimate', \
             flush_interval = '1s', retain_acked = '1d' }\n\
             sensor = []\nhub = { url = 'ws://h', token_file = '/t' }\n\
             mqtt = { broker = 'b' }\nmetrics = {}\nsimulation = {}\npower = { battery = 'b' }",
        );
        required_matches_serde::<PowerConfig>(
            "battery = 'b'\ncheck_interval = '5s'\ndwell = '10s'\nstale_after = '60s'\n\
             soc_hysteresis = 0.03\nvoltage_hysteresis_v = 0.3\ntemperature_hysteresis_k = 2.0\n\
             step = []",
        );
    }

    #[test]
    fn field_lists_come_from_the_types_with_their_renames() {
        let root = fields_of::<AgentConfig>();
        assert!(
            root.contains(&"sensor") && !root.contains(&"sensors"),
            "{root:?}"
        );
        let sensor = fields_of::<SensorConfig>();
        assert!(sensor.contains(&"ambient_pressure_from"), "{sensor:?}");
    }

    #[test]
    fn positions_count_lines_and_characters_from_one() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(
            Position::of_offset(text, 0),
            Position { line: 1, column: 1 }
        );
        let x = text.find('x').expect("x");
        // 'é' is two bytes but one column.
        assert_eq!(
            Position::of_offset(text, x),
            Position { line: 2, column: 7 }
        );
        // Inside 'é': the character's own column.
        let e = text.find('é').expect("é");
        assert_eq!(
            Position::of_offset(text, e + 1),
            Position { line: 2, column: 2 }
        );
        // Past the end: the end.
        assert_eq!(
            Position::of_offset(text, text.len() + 10),
            Position { line: 3, column: 1 }
        );
    }

    #[test]
    fn serde_messages_become_what_is_wrong_and_what_to_do() {
        let (what, fix) = explain("invalid type: string \"x\", expected u8");
        assert_eq!(what, "wrong type: found string \"x\"");
        assert_eq!(fix, "write an integer from 0 to 255");
        let (what, fix) = explain("unknown variant `ubox`, expected one of `ublox`, `nmea`");
        assert_eq!(what, "unknown value \"ubox\"");
        assert!(fix.starts_with("did you mean \"ublox\"?"), "{fix}");
    }

    #[test]
    fn keys_inside_a_set_aside_table_are_recognised() {
        let set = HashSet::from(["sensor[0].power".to_string()]);
        assert!(is_within_any("sensor[0].power", &set));
        assert!(is_within_any("sensor[0].power.line", &set));
        assert!(!is_within_any("sensor[0].powerline", &set));
        assert!(!is_within_any("sensor[0]", &set));
    }
}
