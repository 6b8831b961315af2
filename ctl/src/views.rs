//! Tables of the hub's resources: which columns each kind shows, plain and `-o wide`.
//!
//! Pure functions of the hub's objects and a "now", so golden tests pin them. Each object
//! is read as its `aloft_api` type; a field the hub did not send shows as `<none>`, never
//! as a made-up value.

use std::fmt::Display;
use std::time::SystemTime;

use aloft_api::{
    Actor, Backlog, Command, Event, LogLine, Node, NodeHealth, NodePower, Sensor, Token,
    TunableValue, Tunables,
};
use serde_json::Value;

use crate::cli::Kind;
use crate::output::{Table, age_seconds, age_since, read_as, terminal_text};

/// The table of a list of one kind.
pub fn table(kind: Kind, items: &[Value], wide: bool, now: SystemTime) -> Table {
    match kind {
        Kind::Nodes => nodes(&typed(items), wide, now),
        Kind::Sensors => sensors(&typed(items), wide),
        Kind::Commands => commands(&typed(items), wide, now),
        Kind::Events => events(&typed(items), wide, now),
        Kind::Tokens => tokens(&typed(items), wide, now),
    }
}

fn typed<T: serde::de::DeserializeOwned + Default>(items: &[Value]) -> Vec<T> {
    items.iter().map(read_as).collect()
}

/// A text cell: `<none>` for nothing or empty.
fn text(value: Option<&str>) -> String {
    match value {
        None | Some("") => "<none>".into(),
        Some(text) => text.to_owned(),
    }
}

/// A number or flag cell: `<none>` for nothing.
fn shown<T: Display>(value: Option<T>) -> String {
    value.map_or_else(|| "<none>".into(), |v| v.to_string())
}

/// An RFC 3339 time's age, `<unknown>` without one.
fn age(time: Option<&str>, now: SystemTime) -> String {
    age_since(time.unwrap_or_default(), now)
}

fn nodes(items: &[Node], wide: bool, now: SystemTime) -> Table {
    let mut headers = vec![
        "NAME",
        "STATUS",
        "SENSORS",
        "BACKLOG",
        "POWER",
        "LAST SEEN",
        "AGENT",
    ];
    if wide {
        headers.extend(["BOOT", "EPOCH"]);
    }
    let mut table = Table::new(&headers);
    for node in items {
        let status = match node.status.connected {
            Some(true) => "Connected",
            Some(false) => "Offline",
            None => "<unknown>",
        };
        let sensors = node
            .status
            .sensors
            .as_ref()
            .map_or_else(|| "<none>".into(), |s| s.len().to_string());
        let last_seen = match &node.status.last_seen {
            Some(t) => age_since(t, now),
            None => "never".into(),
        };
        let mut row = vec![
            node.metadata.name.clone(),
            status.to_owned(),
            sensors,
            backlog(node.status.backlog.as_ref()),
            power_cell(node.status.health.as_ref().and_then(|h| h.power.as_ref())),
            last_seen,
            text(node.status.agent_version.as_deref()),
        ];
        if wide {
            row.push(text(node.status.boot_id.as_deref()));
            row.push(text(node.status.epoch.as_deref()));
        }
        table.row(row);
    }
    table
}

/// The POWER cell: the step in force and its level (`economy/1`); `<unknown>` for a node
/// that sent none (an older agent, or no power policy): never shown as full power.
fn power_cell(power: Option<&NodePower>) -> String {
    match power {
        None => "<unknown>".into(),
        Some(p) => format!("{}/{}", terminal_text(&p.step, false), p.level),
    }
}

/// A node's power step as `describe node` shows it: the step, why, since when, the upload
/// budget, the sensors exempted; every text the node chose made one visible line.
fn node_power(power: Option<&NodePower>, now: SystemTime) -> Vec<(&'static str, String)> {
    let one_line = |t: &str| terminal_text(t, false).into_owned();
    let Some(power) = power else {
        return vec![(
            "Power",
            "<unknown> (the agent reports no power step: older than protocol version 4, or no power policy)".into(),
        )];
    };
    let since = match &power.since {
        Some(t) => format!("{} ago ({})", age_since(t, now), one_line(t)),
        None => format!("monotonic {} ns (no UTC)", power.since_mono_ns),
    };
    let budget = power
        .upload_bytes_per_s
        .map_or_else(|| "not lowered".into(), |b| format!("{}/s", human_bytes(b)));
    let overridden = if power.overridden.is_empty() {
        "<none>".into()
    } else {
        power
            .overridden
            .iter()
            .map(|s| one_line(s))
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        (
            "Power",
            format!(
                "{} (level {})",
                text(Some(&one_line(&power.step))),
                power.level
            ),
        ),
        ("Power reason", text(Some(&one_line(&power.reason)))),
        ("Power since", since),
        ("Budget", budget),
        ("Overridden", overridden),
    ]
}

/// A node's health as `describe node` shows it: one `(label, value)` a line, every text
/// the node chose made one visible line.
pub fn node_health(health: &NodeHealth, now: SystemTime) -> Vec<(&'static str, String)> {
    let one_line = |t: &str| terminal_text(t, false).into_owned();
    let received = match &health.received {
        Some(t) => format!("{} ago ({})", age_since(t, now), one_line(t)),
        None => "<none>".into(),
    };
    let trust = match health.clock_trusted {
        Some(true) => "clock trusted",
        Some(false) => "clock not trusted",
        None => "clock trust unknown",
    };
    let time = format!(
        "{} from {}, {trust}",
        text(health.utc.as_deref().map(one_line).as_deref()),
        text(Some(&one_line(&health.time_source)))
    );
    let store = &health.store;
    let percent = store
        .percent
        .map_or_else(|| "<none>".into(), |p| format!("{p:.1}%"));
    let store = format!(
        "{percent} full ({} of {}), {} when full",
        human_bytes(store.bytes),
        human_bytes(store.max_bytes),
        text(Some(&one_line(&store.full_policy)))
    );
    let mut lines = vec![("Received", received), ("Time", time), ("Store", store)];
    if health.gnss_models.is_empty() {
        lines.push(("GNSS models", "<none>".into()));
    }
    for model in &health.gnss_models {
        let name = model
            .name
            .as_deref()
            .map_or_else(|| format!("sensor {}", model.sensor), one_line);
        let shown = model.model.as_deref().map_or("<unknown>", |m| m);
        lines.push((
            "GNSS model",
            format!("{name}: {} (code {})", one_line(shown), model.code),
        ));
    }
    lines.extend(node_power(health.power.as_ref(), now));
    lines
}

/// `52428800` as `50.0 MiB`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `12 (3.4 KiB, 2m)`: records, bytes and age of the oldest.
fn backlog(backlog: Option<&Backlog>) -> String {
    let Some(backlog) = backlog else {
        return "<none>".into();
    };
    if backlog.records == 0 {
        return "0".into();
    }
    let age = age_seconds(backlog.oldest_age_seconds);
    if age == "<none>" {
        backlog.records.to_string()
    } else {
        format!("{} ({age})", backlog.records)
    }
}

fn sensors(items: &[Sensor], wide: bool) -> Table {
    let mut headers = vec![
        "NODE",
        "NAME",
        "KIND",
        "STATE",
        "RESTARTS",
        "NEWEST",
        "INTERVAL",
        "GENERATION",
        "BACKLOG",
    ];
    if wide {
        headers.extend(["ENABLED", "REASON", "LAST ERROR", "REFUSED"]);
    }
    // Only a list with tunables somewhere gets their column: other lists read as before.
    let tunables_column = wide
        && items
            .iter()
            .any(|s| !s.spec.tunables.is_empty() || s.status.tunables.is_some());
    if tunables_column {
        headers.push("TUNABLES");
    }
    let mut table = Table::new(&headers);
    for sensor in items {
        let status = &sensor.status;
        let generation = sensor.metadata.generation.unwrap_or(0);
        let refused = status.refused.as_deref().filter(|r| !r.is_empty());
        // kubectl shows a rollout as "observed/desired"; nothing desired yet shows "-". A
        // generation the agent refused (in part) is observed but not in effect: it says so,
        // and `-o wide` shows the agent's reason.
        let generations = match (generation, status.observed_generation) {
            (0, _) => "-".to_owned(),
            (g, Some(o)) if refused.is_some() => format!("{o}/{g} refused"),
            (g, Some(o)) => format!("{o}/{g}"),
            (g, None) => format!("?/{g}"),
        };
        let interval = match status.interval_ms {
            Some(ms) => format!("{ms}ms"),
            None => "<none>".into(),
        };
        let mut state = text(status.state.as_deref());
        if status.node_connected == Some(false) {
            // The state is the last one the node reported: say it may be old.
            state = format!("{state} (offline)");
        }
        let mut row = vec![
            sensor.metadata.node.clone().unwrap_or_default(),
            sensor.metadata.name.clone(),
            text(status.kind.as_deref()),
            state,
            shown(status.restarts),
            age_seconds(status.newest_value_age_seconds),
            interval,
            generations,
            backlog(status.node_backlog.as_ref()),
        ];
        if wide {
            row.push(shown(status.enabled));
            row.push(text(status.reason.as_deref()));
            row.push(text(status.last_error.as_deref()));
            row.push(refused.unwrap_or("<none>").to_owned());
        }
        if tunables_column {
            row.push(tunables_cell(
                &sensor.spec.tunables,
                status.tunables.as_ref(),
            ));
        }
        table.row(row);
    }
    table
}

/// `key=value` of each tunable in force (else desired), a desired one not (yet) in force
/// shown as `key=in-force->desired`.
fn tunables_cell(desired: &Tunables, in_force: Option<&Tunables>) -> String {
    let shown = |v: &TunableValue| match v {
        TunableValue::Bool(b) => b.to_string(),
        TunableValue::Integer(i) => i.to_string(),
        TunableValue::Text(t) => t.clone(),
    };
    let mut cells = Vec::new();
    let mut keys: Vec<&String> = desired.keys().collect();
    if let Some(f) = in_force {
        keys.extend(f.keys());
    }
    keys.sort();
    keys.dedup();
    for key in keys {
        let (want, have) = (desired.get(key), in_force.and_then(|f| f.get(key)));
        cells.push(match (want, have) {
            (Some(w), Some(h)) if w != h => format!("{key}={}->{}", shown(h), shown(w)),
            (Some(w), None) => format!("{key}=?->{}", shown(w)),
            (_, Some(h)) => format!("{key}={}", shown(h)),
            (None, None) => continue,
        });
    }
    if cells.is_empty() {
        "<none>".to_owned()
    } else {
        text(Some(&cells.join(",")))
    }
}

/// `restart cosmic-ray (hard)`.
pub fn command_action(command: &Command) -> String {
    let verb = match command.spec.action.as_str() {
        "restartSensor" => "restart",
        other => other,
    };
    let hard = if command.spec.hard { " (hard)" } else { "" };
    format!("{verb} {}{hard}", command.spec.sensor)
}

fn commands(items: &[Command], wide: bool, now: SystemTime) -> Table {
    let mut headers = vec!["ID", "NODE", "ACTION", "PHASE", "AGE", "MESSAGE"];
    if wide {
        headers.extend(["BY", "EXPIRES"]);
    }
    let mut table = Table::new(&headers);
    for command in items {
        let mut row = vec![
            command.metadata.name.clone(),
            command.metadata.node.clone().unwrap_or_default(),
            command_action(command),
            text(Some(&command.status.phase)),
            age(command.metadata.creation_timestamp.as_deref(), now),
            text(Some(&command.status.message)),
        ];
        if wide {
            row.push(who(&command.spec.created_by));
            row.push(text(Some(&command.spec.expires)));
        }
        table.row(row);
    }
    table
}

fn who(actor: &Actor) -> String {
    format!("{} ({})", actor.token, actor.role)
}

fn events(items: &[Event], wide: bool, now: SystemTime) -> Table {
    let mut headers = vec!["AGE", "WHO", "ACTION", "OBJECT", "OUTCOME", "MESSAGE"];
    if wide {
        headers.insert(0, "TIME");
    }
    let mut table = Table::new(&headers);
    for event in items {
        let object = &event.spec.object;
        let node = object.node.as_deref().unwrap_or_default();
        let kind = object.kind.to_ascii_lowercase();
        let name = &object.name;
        let object = format!(
            "{}{}",
            // A refused creation has no name yet: the kind alone says what was tried.
            if name.is_empty() {
                kind
            } else {
                format!("{kind}/{name}")
            },
            if node.is_empty() {
                String::new()
            } else {
                format!(" on {node}")
            }
        );
        let created = event.metadata.creation_timestamp.as_deref();
        let mut row = vec![
            age(created, now),
            who(&event.spec.actor),
            text(Some(&event.spec.action)),
            object,
            text(Some(&event.status.outcome)),
            text(Some(&event.status.message)),
        ];
        if wide {
            row.insert(0, text(created));
        }
        table.row(row);
    }
    table
}

fn tokens(items: &[Token], wide: bool, now: SystemTime) -> Table {
    let mut headers = vec!["ID", "ROLE", "NODE", "STATUS", "AGE", "DESCRIPTION"];
    if wide {
        headers.push("CREATED");
    }
    let mut table = Table::new(&headers);
    for token in items {
        let created = token.metadata.creation_timestamp.as_deref();
        let mut row = vec![
            token.metadata.name.clone(),
            text(Some(&token.spec.role)),
            text(token.spec.node.as_deref()),
            if token.status.revoked {
                "Revoked"
            } else {
                "Active"
            }
            .to_owned(),
            age(created, now),
            text(Some(&token.spec.description)),
        ];
        if wide {
            row.push(text(created));
        }
        table.row(row);
    }
    table
}

/// `logs`: one line per log line of the node, `TIME LEVEL [sensor] message`, every field
/// escaped, so a line the node sent is one line on the terminal and cannot drive it.
pub fn log_lines(lines: &[LogLine]) -> String {
    let mut text = String::new();
    for line in lines {
        let level = terminal_text(&line.level, false);
        let sensor = line.sensor.as_deref().unwrap_or_default();
        text.push_str(&terminal_text(&line.time, false));
        text.push(' ');
        text.push_str(&level);
        // Levels padded to five, as `WARN ` and `ERROR` line up.
        text.extend(std::iter::repeat_n(
            ' ',
            5usize.saturating_sub(level.chars().count()) + 1,
        ));
        if !sensor.is_empty() {
            text.push('[');
            text.push_str(&terminal_text(sensor, false));
            text.push_str("] ");
        }
        text.push_str(&terminal_text(&line.message, false));
        text.push('\n');
    }
    text
}

/// `top`: the newest value of every quantity of every sensor.
pub fn values(sensors: &[Value]) -> Table {
    let mut table = Table::new(&[
        "NODE", "SENSOR", "QUANTITY", "VALUE", "UNIT", "AGE", "QUALITY",
    ]);
    for sensor in typed::<Sensor>(sensors) {
        for value in &sensor.status.values {
            table.row(vec![
                sensor.metadata.node.clone().unwrap_or_default(),
                sensor.metadata.name.clone(),
                text(Some(&value.quantity)),
                value.value.map_or_else(|| "<none>".into(), format_value),
                text(value.unit.as_deref()),
                age_seconds(value.age_seconds),
                text(Some(&value.quality)),
            ]);
        }
    }
    table
}

/// Six significant digits, no exponent for the ranges sensors produce.
fn format_value(v: f64) -> String {
    let magnitude = v.abs();
    let decimals = if magnitude >= 100_000.0 {
        0
    } else if magnitude >= 1.0 {
        5usize.saturating_sub(magnitude.log10().floor() as usize)
    } else {
        6
    };
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::output::{is_terminal_control, read_as};

    fn hostile_text() -> impl Strategy<Value = String> {
        let special = prop::sample::select(vec![
            '\u{1b}', '\n', '\r', '\t', '\u{7}', '\u{7f}', '\u{9b}', '\u{202e}', '\u{2066}',
            '\u{2028}',
        ]);
        prop::collection::vec(prop_oneof![any::<char>(), special], 0..32)
            .prop_map(String::from_iter)
    }

    proptest! {
        #[test]
        fn log_lines_of_any_text_are_one_line_each_without_control_characters(
            lines in prop::collection::vec(
                (hostile_text(), hostile_text(), prop::option::of(hostile_text()), hostile_text()),
                0..6,
            )
        ) {
            let values: Vec<LogLine> = lines
                .iter()
                .map(|(time, level, sensor, message)| LogLine {
                    time: time.clone(),
                    level: level.clone(),
                    sensor: sensor.clone(),
                    message: message.clone(),
                })
                .collect();
            let text = log_lines(&values);
            prop_assert_eq!(text.matches('\n').count(), lines.len());
            prop_assert!(!text.chars().any(|c| c != '\n' && is_terminal_control(c)), "{:?}", text);
        }

        #[test]
        fn objects_of_any_shape_show_one_row_each_in_every_kind_of_table(
            items in prop::collection::vec(hub_object(), 0..5),
            wide in any::<bool>(),
        ) {
            for kind in [Kind::Nodes, Kind::Sensors, Kind::Commands, Kind::Events, Kind::Tokens] {
                let text = table(kind, &items, wide, SystemTime::UNIX_EPOCH).render(true);
                prop_assert_eq!(text.lines().count(), items.len() + 1, "{:?}: {}", kind, text);
            }
            let text = values(&items).render(false);
            let shown: usize = items
                .iter()
                .map(|i| read_as::<Sensor>(i).status.values.len())
                .sum();
            prop_assert_eq!(text.lines().count(), shown);
        }
    }

    /// What a hub, an older or newer one, or a broken one might answer: the API's field
    /// names with values of any JSON type, nested, any of them missing.
    fn hub_object() -> impl Strategy<Value = Value> {
        let key = prop::sample::select(vec![
            "metadata",
            "name",
            "node",
            "uid",
            "generation",
            "creationTimestamp",
            "spec",
            "status",
            "connected",
            "sensors",
            "backlog",
            "records",
            "oldestAgeSeconds",
            "values",
            "value",
            "ageSeconds",
            "phase",
            "message",
            "actor",
            "object",
            "kind",
            "revoked",
            "intervalMs",
            "observedGeneration",
            "refused",
            "nodeConnected",
            "createdBy",
            "token",
            "role",
            "state",
            "restarts",
            "lastSeen",
            "quality",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e9f64..1e9).prop_map(Value::from),
            hostile_text().prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map(key.clone(), inner, 0..6).prop_map(|map| {
                    Value::Object(map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn a_health_report_of_any_text_shows_one_visible_line_per_label(
            texts in prop::collection::vec(hostile_text(), 5),
            code in any::<u8>(),
            bytes in any::<u64>(),
            max_bytes in any::<u64>(),
        ) {
            let health = NodeHealth {
                utc: Some(texts[0].clone()),
                time_source: texts[1].clone(),
                store: aloft_api::StoreFill {
                    bytes,
                    max_bytes,
                    percent: Some(12.3),
                    full_policy: texts[2].clone(),
                },
                gnss_models: vec![aloft_api::GnssModel {
                    sensor: 0,
                    name: Some(texts[3].clone()),
                    model: Some(texts[4].clone()),
                    code,
                }],
                power: Some(NodePower {
                    step: texts[0].clone(),
                    reason: texts[1].clone(),
                    since: Some(texts[2].clone()),
                    overridden: vec![texts[3].clone(), texts[4].clone()],
                    ..NodePower::default()
                }),
                received: Some(texts[0].clone()),
                ..NodeHealth::default()
            };
            let lines = node_health(&health, SystemTime::UNIX_EPOCH);
            prop_assert_eq!(lines.len(), 9);
            for (_, value) in &lines {
                prop_assert!(!value.chars().any(is_terminal_control), "{:?}", value);
            }
        }
    }

    #[test]
    fn a_health_report_shows_the_store_fill_the_clock_and_each_receivers_model() {
        let health = NodeHealth {
            utc: Some("2026-11-24T13:20:01Z".into()),
            time_source: "gnss".into(),
            mono_ns: 1,
            clock_trusted: Some(true),
            store: aloft_api::StoreFill {
                bytes: 52_428_800,
                max_bytes: 268_435_456,
                percent: Some(19.5),
                full_policy: "decimate".into(),
            },
            gnss_models: vec![
                aloft_api::GnssModel {
                    sensor: 0,
                    name: Some("gps".into()),
                    model: Some("airborne2g".into()),
                    code: 7,
                },
                aloft_api::GnssModel {
                    sensor: 4,
                    name: None,
                    model: None,
                    code: 200,
                },
            ],
            power: None,
            received: Some("2026-11-24T13:20:01Z".into()),
        };
        let now = humantime::parse_rfc3339("2026-11-24T13:20:04Z").unwrap();
        let lines = node_health(&health, now);
        assert_eq!(
            lines,
            [
                ("Received", "3s ago (2026-11-24T13:20:01Z)".to_owned()),
                (
                    "Time",
                    "2026-11-24T13:20:01Z from gnss, clock trusted".to_owned()
                ),
                (
                    "Store",
                    "19.5% full (50.0 MiB of 256.0 MiB), decimate when full".to_owned()
                ),
                ("GNSS model", "gps: airborne2g (code 7)".to_owned()),
                ("GNSS model", "sensor 4: <unknown> (code 200)".to_owned()),
                (
                    "Power",
                    "<unknown> (the agent reports no power step: older than protocol version 4, or no power policy)".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn a_power_step_shows_its_level_reason_since_budget_and_exempted_sensors() {
        let now = humantime::parse_rfc3339("2026-11-24T13:20:04Z").unwrap();
        let power = NodePower {
            step: "economy".into(),
            level: 1,
            reason: "state of charge 0.34 below 0.35".into(),
            since: Some("2026-11-24T13:20:00Z".into()),
            since_mono_ns: 5,
            upload_bytes_per_s: Some(51_200),
            overridden: vec!["gps".into(), "static".into()],
        };
        assert_eq!(
            node_power(Some(&power), now),
            [
                ("Power", "economy (level 1)".to_owned()),
                ("Power reason", "state of charge 0.34 below 0.35".to_owned()),
                ("Power since", "4s ago (2026-11-24T13:20:00Z)".to_owned()),
                ("Budget", "50.0 KiB/s".to_owned()),
                ("Overridden", "gps, static".to_owned()),
            ]
        );
        assert_eq!(power_cell(Some(&power)), "economy/1");
        assert_eq!(power_cell(None), "<unknown>");
        let full = NodePower {
            step: "full".into(),
            since: None,
            upload_bytes_per_s: None,
            overridden: vec![],
            level: 0,
            ..power
        };
        let lines = node_power(Some(&full), now);
        assert_eq!(lines[0].1, "full (level 0)");
        assert_eq!(lines[2].1, "monotonic 5 ns (no UTC)");
        assert_eq!(lines[3].1, "not lowered");
        assert_eq!(lines[4].1, "<none>");
        // A step name of the node's choosing cannot move the cursor or split the row.
        let hostile = NodePower {
            step: "eco\u{1b}[2Jnomy\nx".into(),
            ..NodePower::default()
        };
        assert!(!power_cell(Some(&hostile)).chars().any(is_terminal_control));
    }

    #[test]
    fn byte_counts_read_in_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(268_435_456), "256.0 MiB");
        assert_eq!(human_bytes(u64::MAX), "16777216.0 TiB");
    }

    #[test]
    fn values_keep_six_significant_digits_without_trailing_zeros() {
        assert_eq!(format_value(19_400.5), "19400.5");
        assert_eq!(format_value(-51.234_567), "-51.2346");
        assert_eq!(format_value(0.000_42), "0.00042");
        assert_eq!(format_value(101_325.0), "101325");
        assert_eq!(format_value(3.0), "3");
    }
}
