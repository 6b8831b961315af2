//! Tables of the hub's resources: which columns each kind shows, plain and `-o wide`.
//!
//! Pure functions of the hub's JSON objects and a "now", so golden tests pin them. A field
//! the hub did not send shows as `<none>`, never as a made-up value.

use std::time::SystemTime;

use serde_json::Value;

use crate::cli::Kind;
use crate::output::{Table, age_secs, age_since, cell, str_at, terminal_text};

/// The table of a list of one kind.
pub fn table(kind: Kind, items: &[Value], wide: bool, now: SystemTime) -> Table {
    match kind {
        Kind::Nodes => nodes(items, wide, now),
        Kind::Sensors => sensors(items, wide),
        Kind::Commands => commands(items, wide, now),
        Kind::Events => events(items, wide, now),
        Kind::Tokens => tokens(items, wide, now),
    }
}

fn nodes(items: &[Value], wide: bool, now: SystemTime) -> Table {
    let mut headers = vec!["NAME", "STATUS", "SENSORS", "BACKLOG", "LAST SEEN", "AGENT"];
    if wide {
        headers.extend(["BOOT", "EPOCH"]);
    }
    let mut table = Table::new(&headers);
    for node in items {
        let connected = node.pointer("/status/connected").and_then(Value::as_bool);
        let status = match connected {
            Some(true) => "Connected",
            Some(false) => "Offline",
            None => "<unknown>",
        };
        let sensors = node
            .pointer("/status/sensors")
            .and_then(Value::as_array)
            .map(|s| s.len().to_string())
            .unwrap_or_else(|| "<none>".into());
        let last_seen = match node.pointer("/status/lastSeen").and_then(Value::as_str) {
            Some(t) => age_since(t, now),
            None => "never".into(),
        };
        let mut row = vec![
            str_at(node, "/metadata/name").to_owned(),
            status.to_owned(),
            sensors,
            backlog(node.pointer("/status/backlog")),
            last_seen,
            cell(node, "/status/agentVersion"),
        ];
        if wide {
            row.push(cell(node, "/status/bootId"));
            row.push(cell(node, "/status/epoch"));
        }
        table.row(row);
    }
    table
}

/// `12 (3.4 KiB, 2m)`: records, bytes and age of the oldest.
fn backlog(value: Option<&Value>) -> String {
    let Some(backlog) = value.filter(|v| !v.is_null()) else {
        return "<none>".into();
    };
    let records = backlog.get("records").and_then(Value::as_u64).unwrap_or(0);
    if records == 0 {
        return "0".into();
    }
    let age = age_secs(backlog, "/oldestAgeSeconds");
    if age == "<none>" {
        records.to_string()
    } else {
        format!("{records} ({age})")
    }
}

fn sensors(items: &[Value], wide: bool) -> Table {
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
    let mut table = Table::new(&headers);
    for sensor in items {
        let generation = sensor
            .pointer("/metadata/generation")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let observed = sensor
            .pointer("/status/observedGeneration")
            .and_then(Value::as_u64);
        let refused = sensor
            .pointer("/status/refused")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty());
        // kubectl shows a rollout as "observed/desired"; nothing desired yet shows "-". A
        // generation the agent refused (in part) is observed but not in effect: it says so,
        // and `-o wide` shows the agent's reason.
        let generations = match (generation, observed) {
            (0, _) => "-".to_owned(),
            (g, Some(o)) if refused.is_some() => format!("{o}/{g} refused"),
            (g, Some(o)) => format!("{o}/{g}"),
            (g, None) => format!("?/{g}"),
        };
        let interval = match sensor.pointer("/status/intervalMs").and_then(Value::as_u64) {
            Some(ms) => format!("{ms}ms"),
            None => "<none>".into(),
        };
        let mut state = cell(sensor, "/status/state");
        if sensor
            .pointer("/status/nodeConnected")
            .and_then(Value::as_bool)
            == Some(false)
        {
            // The state is the last one the node reported: say it may be old.
            state = format!("{state} (offline)");
        }
        let mut row = vec![
            str_at(sensor, "/metadata/node").to_owned(),
            str_at(sensor, "/metadata/name").to_owned(),
            cell(sensor, "/status/kind"),
            state,
            cell(sensor, "/status/restarts"),
            age_secs(sensor, "/status/newestValueAgeSeconds"),
            interval,
            generations,
            backlog(sensor.pointer("/status/nodeBacklog")),
        ];
        if wide {
            row.push(cell(sensor, "/status/enabled"));
            row.push(cell(sensor, "/status/reason"));
            row.push(cell(sensor, "/status/lastError"));
            row.push(refused.unwrap_or("<none>").to_owned());
        }
        table.row(row);
    }
    table
}

/// `restart cosmic-ray (hard)`.
pub fn command_action(command: &Value) -> String {
    let action = str_at(command, "/spec/action");
    let sensor = str_at(command, "/spec/sensor");
    let verb = match action {
        "restartSensor" => "restart",
        other => other,
    };
    let hard = if command.pointer("/spec/hard").and_then(Value::as_bool) == Some(true) {
        " (hard)"
    } else {
        ""
    };
    format!("{verb} {sensor}{hard}")
}

fn commands(items: &[Value], wide: bool, now: SystemTime) -> Table {
    let mut headers = vec!["ID", "NODE", "ACTION", "PHASE", "AGE", "MESSAGE"];
    if wide {
        headers.extend(["BY", "EXPIRES"]);
    }
    let mut table = Table::new(&headers);
    for command in items {
        let mut row = vec![
            str_at(command, "/metadata/name").to_owned(),
            str_at(command, "/metadata/node").to_owned(),
            command_action(command),
            cell(command, "/status/phase"),
            age_since(str_at(command, "/metadata/creationTimestamp"), now),
            cell(command, "/status/message"),
        ];
        if wide {
            row.push(who(command.pointer("/spec/createdBy")));
            row.push(cell(command, "/spec/expires"));
        }
        table.row(row);
    }
    table
}

fn who(actor: Option<&Value>) -> String {
    match actor {
        Some(actor) => format!("{} ({})", str_at(actor, "/token"), str_at(actor, "/role")),
        None => "<none>".into(),
    }
}

fn events(items: &[Value], wide: bool, now: SystemTime) -> Table {
    let mut headers = vec!["AGE", "WHO", "ACTION", "OBJECT", "OUTCOME", "MESSAGE"];
    if wide {
        headers.insert(0, "TIME");
    }
    let mut table = Table::new(&headers);
    for event in items {
        let node = str_at(event, "/spec/object/node");
        let kind = str_at(event, "/spec/object/kind").to_ascii_lowercase();
        let name = str_at(event, "/spec/object/name");
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
        let mut row = vec![
            age_since(str_at(event, "/metadata/creationTimestamp"), now),
            who(event.pointer("/spec/actor")),
            cell(event, "/spec/action"),
            object,
            cell(event, "/status/outcome"),
            cell(event, "/status/message"),
        ];
        if wide {
            row.insert(0, cell(event, "/metadata/creationTimestamp"));
        }
        table.row(row);
    }
    table
}

fn tokens(items: &[Value], wide: bool, now: SystemTime) -> Table {
    let mut headers = vec!["ID", "ROLE", "NODE", "STATUS", "AGE", "DESCRIPTION"];
    if wide {
        headers.push("CREATED");
    }
    let mut table = Table::new(&headers);
    for token in items {
        let revoked = token.pointer("/status/revoked").and_then(Value::as_bool) == Some(true);
        let mut row = vec![
            str_at(token, "/metadata/name").to_owned(),
            cell(token, "/spec/role"),
            cell(token, "/spec/node"),
            if revoked { "Revoked" } else { "Active" }.to_owned(),
            age_since(str_at(token, "/metadata/creationTimestamp"), now),
            cell(token, "/spec/description"),
        ];
        if wide {
            row.push(cell(token, "/metadata/creationTimestamp"));
        }
        table.row(row);
    }
    table
}

/// `logs`: one line per log line of the node, `TIME LEVEL [sensor] message`, every field
/// escaped, so a line the node sent is one line on the terminal and cannot drive it.
pub fn log_lines(lines: &[Value]) -> String {
    let mut text = String::new();
    for line in lines {
        let level = terminal_text(str_at(line, "/level"), false);
        let sensor = str_at(line, "/sensor");
        text.push_str(&terminal_text(str_at(line, "/time"), false));
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
        text.push_str(&terminal_text(str_at(line, "/message"), false));
        text.push('\n');
    }
    text
}

/// `top`: the newest value of every quantity of every sensor.
pub fn values(sensors: &[Value]) -> Table {
    let mut table = Table::new(&[
        "NODE", "SENSOR", "QUANTITY", "VALUE", "UNIT", "AGE", "QUALITY",
    ]);
    for sensor in sensors {
        let values = sensor
            .pointer("/status/values")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for value in values {
            let number = match value.get("value").and_then(Value::as_f64) {
                Some(v) => format_value(v),
                None => "<none>".into(),
            };
            table.row(vec![
                str_at(sensor, "/metadata/node").to_owned(),
                str_at(sensor, "/metadata/name").to_owned(),
                cell(value, "/quantity"),
                number,
                cell(value, "/unit"),
                age_secs(value, "/ageSeconds"),
                cell(value, "/quality"),
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
    use serde_json::json;

    use super::*;
    use crate::output::is_terminal_control;

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
            let values: Vec<Value> = lines
                .iter()
                .map(|(time, level, sensor, message)| {
                    json!({"time": time, "level": level, "sensor": sensor, "message": message})
                })
                .collect();
            let text = log_lines(&values);
            prop_assert_eq!(text.matches('\n').count(), lines.len());
            prop_assert!(!text.chars().any(|c| c != '\n' && is_terminal_control(c)), "{:?}", text);
        }
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
