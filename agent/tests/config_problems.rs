//! Each problem a config can have is reported with the right key path and line, all the
//! problems of a file come out together, and the report's text is what a flight engineer
//! reads (golden test). Lines are found in the test text itself, never typed in by hand.

use aloft_agent::config::{self, ConfigErrors, Problem};
use proptest::prelude::*;

/// A valid config with the glider's sensor set; cases break one thing in it.
const BASE: &str = r#"[node]
name = "glider-test"

[store]
path = "/var/lib/aloft/store"
max_bytes = 1_073_741_824
full_policy = "drop-oldest"
flush_interval = "1s"
retain_acked = "1d"

[[sensor]]
name = "gps"
kind = "ublox"
port = "/dev/serial/by-id/usb-u-blox_GNSS-if00"

[sensor.power]
chip = "/dev/gpiochip0"
line = 17

[[sensor]]
name = "cosmic-ray"
kind = "cosmicwatch"
port = "/dev/serial/by-id/usb-1a86_USB2.0-Serial-if00-port0"
baud = 9600

[sensor.power]
chip = "/dev/gpiochip0"
line = 27

[[sensor]]
name = "static"
kind = "ms5611"
bus = "/dev/i2c-1"
address = 0x77
interval = "100ms"

[[sensor]]
name = "outside-air"
kind = "bme280"
bus = "/dev/i2c-1"
address = 0x76
interval = "1s"

[[sensor]]
name = "co2"
kind = "scd41"
bus = "/dev/i2c-1"
interval = "5s"
ambient_pressure_from = "static"

[[sensor]]
name = "pitot"
kind = "ms4525do"
bus = "/dev/i2c-1"
address = 0x28
interval = "20ms"
static_pressure_from = "static"
outside_air_from = "outside-air"

[hub]
url = "wss://hub.example.org:8443/v1/nodes/connect"
token_file = "/etc/aloft/token"
"#;

/// The 1-based line of the first line of `text` that contains `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{needle:?} is not in the test text"))
}

/// The 1-based line of the `[[sensor]]` header of sensor `index`.
fn sensor_header(text: &str, index: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim() == "[[sensor]]")
        .nth(index)
        .map(|(i, _)| i + 1)
        .unwrap_or_else(|| panic!("no sensor {index}"))
}

/// `BASE` with `old` replaced by `new` (exactly once: a case that changes nothing is a
/// broken case, not a passing one).
fn edited(old: &str, new: &str) -> String {
    assert_eq!(
        BASE.matches(old).count(),
        1,
        "{old:?} must occur once in BASE"
    );
    BASE.replacen(old, new, 1)
}

fn errors_of(text: &str) -> ConfigErrors {
    match config::parse(text, "test.toml") {
        Ok(_) => panic!("this config should not load:\n{text}"),
        Err(e) => e,
    }
}

/// Asserts that the one problem of `text` is at `key` on `line`, and returns it.
fn only_problem(text: &str, key: &str, line: usize) -> Problem {
    let errors = errors_of(text);
    assert_eq!(
        errors.problems.len(),
        1,
        "expected one problem, got:\n{errors}"
    );
    let p = errors.problems[0].clone();
    assert_eq!(p.key, key, "{errors}");
    assert_eq!(p.position.map(|p| p.line), Some(line), "{errors}");
    assert!(!p.what.is_empty() && !p.fix.is_empty(), "{errors}");
    p
}

#[test]
fn base_config_of_these_tests_is_valid() {
    let c = config::parse(BASE, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.sensors.len(), 6);
}

#[test]
fn syntax_error_is_reported_at_its_line() {
    let text = edited("name = \"co2\"", "name = \"co2");
    let errors = errors_of(&text);
    let p = &errors.problems[0];
    assert_eq!(p.key, "syntax");
    assert_eq!(
        p.position.map(|p| p.line),
        Some(line_of(&text, "name = \"co2"))
    );
}

#[test]
fn duplicate_key_is_reported_with_its_name_and_line() {
    let text = edited("baud = 9600", "baud = 9600\nbaud = 115200");
    let errors = errors_of(&text);
    let p = &errors.problems[0];
    assert_eq!(p.key, "syntax");
    assert!(p.what.contains("`baud`"), "{p}");
    assert_eq!(p.position.map(|p| p.line), Some(line_of(&text, "115200")));
}

#[test]
fn nested_table_of_the_wrong_type_says_how_to_write_one() {
    let text = edited("[sensor.power]\nchip = \"/dev/gpiochip0\"\nline = 27\n", "")
        .replace("baud = 9600", "baud = 9600\npower = 27");
    let p = only_problem(&text, "sensor[1].power", line_of(&text, "power = 27"));
    assert!(p.fix.contains("[sensor.power]"), "{p}");
}

#[test]
fn unknown_key_suggests_the_nearest_known_one() {
    let text = edited("address = 0x76", "adress = 0x76");
    let p = only_problem(&text, "sensor[3].adress", line_of(&text, "adress"));
    assert!(p.fix.contains("`address`"), "{p}");
}

#[test]
fn unknown_top_level_table_is_reported() {
    let text = format!("{BASE}\n[metrix]\nlisten = \"127.0.0.1:9464\"\n");
    let p = only_problem(&text, "metrix", line_of(&text, "[metrix]"));
    assert!(p.fix.contains("`metrics`"), "{p}");
}

#[test]
fn wrong_type_names_the_key_and_the_expected_type() {
    let text = edited("baud = 9600", "baud = \"fast\"");
    let p = only_problem(&text, "sensor[1].baud", line_of(&text, "baud = \"fast\""));
    assert!(p.what.contains("wrong type"), "{p}");
    assert!(p.fix.contains("integer"), "{p}");
}

#[test]
fn unknown_kind_suggests_the_nearest_kind() {
    let text = edited("kind = \"bme280\"", "kind = \"bme28\"");
    let p = only_problem(&text, "sensor[3].kind", line_of(&text, "bme28\""));
    assert!(p.fix.contains("\"bme280\""), "{p}");
}

#[test]
fn missing_required_key_points_at_its_table() {
    let text = edited("kind = \"scd41\"\n", "");
    only_problem(&text, "sensor[4].kind", sensor_header(&text, 4));
}

#[test]
fn missing_store_table_is_reported() {
    let start = BASE.find("[store]").expect("store");
    let end = BASE.find("[[sensor]]").expect("sensor");
    let text = format!("{}{}", &BASE[..start], &BASE[end..]);
    let errors = errors_of(&text);
    assert_eq!(errors.problems.len(), 1, "{errors}");
    assert_eq!(errors.problems[0].key, "store");
}

#[test]
fn duplicate_sensor_name_is_reported_on_the_second_sensor() {
    let text = edited("name = \"co2\"", "name = \"static\"");
    let p = only_problem(&text, "sensor[4].name", sensor_header(&text, 4) + 1);
    assert!(p.what.contains("sensor[2]"), "{p}");
}

#[test]
fn sensor_names_must_be_lowercase_letters_digits_and_dashes() {
    for bad in ["Outside-Air", "outside air", "outside_air", "", "-outside"] {
        let text = edited("name = \"outside-air\"", &format!("name = \"{bad}\""));
        // The pitot's reference to "outside-air" now names nothing, too.
        let errors = errors_of(&text);
        let p = errors
            .problems
            .iter()
            .find(|p| p.key == "sensor[3].name")
            .unwrap_or_else(|| panic!("{bad:?} accepted:\n{errors}"));
        assert_eq!(
            p.position.map(|p| p.line),
            Some(sensor_header(&text, 3) + 1)
        );
    }
}

#[test]
fn a_name_over_63_characters_is_reported_with_its_length() {
    let long = "a".repeat(64);
    let text = edited("name = \"glider-test\"", &format!("name = \"{long}\""));
    let p = only_problem(&text, "node.name", line_of(&text, &long));
    assert!(p.what.contains("64 characters long"), "{p}");
}

/// Names of every kind: labels of the grammar, and strings near it (upper case, `_`, `.`,
/// spaces, a non-ASCII letter, edge hyphens, lengths around 63) that TOML can quote as is.
fn name_candidate() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?",
        "[-a-z0-9]{0,70}",
        "[-a-zA-Z0-9_. é]{0,70}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The config accepts a node or sensor name exactly when the protocol's grammar
    /// does (the hub's API asks the same function).
    #[test]
    fn node_and_sensor_names_are_accepted_exactly_when_the_protocol_accepts_them(name in name_candidate()) {
        let valid = aloft_protocol::check_name(&name).is_ok();
        let node = edited("name = \"glider-test\"", &format!("name = \"{name}\""));
        let node_errors = match config::parse(&node, "test.toml") {
            Ok(_) => None,
            Err(e) => e.problems.iter().find(|p| p.key == "node.name").cloned(),
        };
        prop_assert_eq!(node_errors.is_none(), valid, "node name {:?}: {:?}", name, node_errors);
        // A sensor no other sensor refers to, so its name is the only thing at stake.
        let sensor = edited("name = \"gps\"", &format!("name = \"{name}\""));
        let sensor_errors = match config::parse(&sensor, "test.toml") {
            Ok(_) => None,
            Err(e) => e.problems.iter().find(|p| p.key == "sensor[0].name").cloned(),
        };
        prop_assert_eq!(sensor_errors.is_none(), valid, "sensor name {:?}: {:?}", name, sensor_errors);
    }
}

#[test]
fn serial_sensor_without_port_is_reported_at_its_table() {
    let text = edited("port = \"/dev/serial/by-id/usb-u-blox_GNSS-if00\"\n", "");
    only_problem(&text, "sensor[0].port", sensor_header(&text, 0));
}

#[test]
fn i2c_sensor_without_bus_is_reported_at_its_table() {
    let text = edited(
        "kind = \"ms5611\"\nbus = \"/dev/i2c-1\"\n",
        "kind = \"ms5611\"\n",
    );
    only_problem(&text, "sensor[2].bus", sensor_header(&text, 2));
}

#[test]
fn simulated_config_needs_no_ports_or_buses() {
    let text = format!("[simulation]\nseed = 3\n\n{BASE}")
        .replace("port = \"/dev/serial/by-id/usb-u-blox_GNSS-if00\"\n", "")
        .replace("bus = \"/dev/i2c-1\"\n", "");
    let c = config::parse(&text, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    assert!(c.is_simulated());
    assert!(c.sensors.iter().all(|s| s.bus.is_none()));
}

#[test]
fn addresses_outside_what_each_part_supports_are_reported() {
    let cases = [
        ("address = 0x76", "address = 0x78", "sensor[3].address"),
        ("address = 0x77", "address = 0x75", "sensor[2].address"),
        (
            "kind = \"scd41\"\n",
            "kind = \"scd41\"\naddress = 0x63\n",
            "sensor[4].address",
        ),
        ("address = 0x28", "address = 0x29", "sensor[5].address"),
    ];
    for (old, new, key) in cases {
        let text = edited(old, new);
        let needle = new.lines().last().expect("a line");
        let p = only_problem(&text, key, line_of(&text, needle));
        assert!(p.what.contains(&needle["address = ".len()..]), "{p}");
    }
}

#[test]
fn the_supported_addresses_of_each_part_are_accepted() {
    // The MS5611 (0x77) and the BME280 (0x76) share a bus, so each takes its other address
    // only if the other moves too: swapped, both are on their other address.
    let swapped = edited("address = 0x77", "address = 0x7?")
        .replacen("address = 0x76", "address = 0x77", 1)
        .replacen("address = 0x7?", "address = 0x76", 1);
    config::parse(&swapped, "test.toml").unwrap_or_else(|e| panic!("swapped: {e}"));
    for (old, new) in [
        ("address = 0x28", "address = 0x36"),
        ("address = 0x28", "address = 0x46"),
    ] {
        let text = edited(old, new);
        config::parse(&text, "test.toml").unwrap_or_else(|e| panic!("{new}: {e}"));
    }
}

#[test]
fn baud_rates_the_device_does_not_speak_are_reported() {
    let text = edited("baud = 9600", "baud = 57600");
    let p = only_problem(&text, "sensor[1].baud", line_of(&text, "57600"));
    assert!(p.fix.contains("115200"), "{p}");
    let text = edited(
        "port = \"/dev/serial/by-id/usb-u-blox_GNSS-if00\"",
        "port = \"/dev/serial/by-id/usb-u-blox_GNSS-if00\"\nbaud = 12345",
    );
    only_problem(&text, "sensor[0].baud", line_of(&text, "12345"));
}

#[test]
fn zero_interval_is_reported() {
    let text = edited("interval = \"100ms\"", "interval = \"0s\"");
    only_problem(&text, "sensor[2].interval", line_of(&text, "\"0s\""));
}

#[test]
fn interval_below_what_the_part_can_do_is_reported() {
    let text = edited("interval = \"5s\"", "interval = \"2s\"");
    let p = only_problem(&text, "sensor[4].interval", line_of(&text, "\"2s\""));
    assert!(p.what.contains("5s"), "{p}");
    let text = edited("\ninterval = \"1s\"", "\ninterval = \"10ms\"");
    only_problem(&text, "sensor[3].interval", line_of(&text, "\"10ms\""));
    let text = edited("interval = \"100ms\"", "interval = \"15ms\"");
    only_problem(&text, "sensor[2].interval", line_of(&text, "\"15ms\""));
}

#[test]
fn interval_on_a_serial_sensor_is_refused() {
    let text = edited("baud = 9600", "baud = 9600\ninterval = \"1s\"");
    only_problem(
        &text,
        "sensor[1].interval",
        line_of(&text, "baud = 9600") + 1,
    );
}

#[test]
fn reference_to_a_sensor_that_does_not_exist_is_reported() {
    let text = edited(
        "static_pressure_from = \"static\"",
        "static_pressure_from = \"statik\"",
    );
    let p = only_problem(
        &text,
        "sensor[5].static_pressure_from",
        line_of(&text, "statik"),
    );
    assert!(p.fix.contains("\"static\""), "{p}");
}

#[test]
fn reference_to_a_sensor_of_the_wrong_kind_is_reported() {
    let cases = [
        (
            "static_pressure_from = \"static\"",
            "static_pressure_from = \"co2\"",
            "sensor[5].static_pressure_from",
        ),
        // An MS5611's temperature is its die's, inside the box: not outside air.
        (
            "outside_air_from = \"outside-air\"",
            "outside_air_from = \"static\"",
            "sensor[5].outside_air_from",
        ),
        (
            "ambient_pressure_from = \"static\"",
            "ambient_pressure_from = \"pitot\"",
            "sensor[4].ambient_pressure_from",
        ),
    ];
    for (old, new, key) in cases {
        let text = edited(old, new);
        only_problem(&text, key, line_of(&text, new));
    }
}

#[test]
fn static_pressure_may_come_from_a_bme280() {
    let text = edited(
        "static_pressure_from = \"static\"",
        "static_pressure_from = \"outside-air\"",
    );
    config::parse(&text, "test.toml").unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn store_too_small_for_its_segments_is_reported() {
    let text = edited("max_bytes = 1_073_741_824", "max_bytes = 1_000_000");
    let p = only_problem(&text, "store.max_bytes", line_of(&text, "1_000_000"));
    let need = 2 * config::STORE_SEGMENT_BYTES;
    assert!(p.fix.contains(&need.to_string()), "{p}");
}

#[test]
fn store_too_small_for_its_flush_window_is_reported() {
    // A minute's flush window with airspeed at 1 kHz: more than two segments' worth.
    let text = edited("flush_interval = \"1s\"", "flush_interval = \"60s\"")
        .replace("interval = \"20ms\"", "interval = \"1ms\"")
        .replace("max_bytes = 1_073_741_824", "max_bytes = 8_388_608");
    let errors = errors_of(&text);
    let p = errors
        .problems
        .iter()
        .find(|p| p.key == "store.max_bytes")
        .unwrap_or_else(|| panic!("{errors}"));
    assert!(p.what.contains("flush window"), "{p}");
}

#[test]
fn flush_interval_zero_or_above_a_minute_is_reported() {
    for bad in ["0s", "61s", "5m"] {
        let text = edited(
            "flush_interval = \"1s\"",
            &format!("flush_interval = \"{bad}\""),
        );
        only_problem(
            &text,
            "store.flush_interval",
            line_of(&text, "flush_interval"),
        );
    }
    let text = edited("flush_interval = \"1s\"", "flush_interval = \"60s\"");
    config::parse(&text, "test.toml").unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn hub_url_must_be_a_websocket_url() {
    for bad in [
        "https://hub.example.org/v1/nodes",
        "hub.example.org",
        "wss:///v1/nodes",
    ] {
        let text = edited(
            "url = \"wss://hub.example.org:8443/v1/nodes/connect\"",
            &format!("url = \"{bad}\""),
        );
        only_problem(&text, "hub.url", line_of(&text, "url = "));
    }
    let text = edited(
        "url = \"wss://hub.example.org:8443/v1/nodes/connect\"",
        "url = \"ws://127.0.0.1:8080/v1/nodes\"",
    );
    config::parse(&text, "test.toml").unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn duplicate_power_line_is_reported_on_the_second_sensor() {
    let text = edited("line = 27", "line = 17");
    // The first `line = 17` is the gps's; the report points at the cosmic-ray's.
    let second = text
        .lines()
        .enumerate()
        .filter(|(_, l)| *l == "line = 17")
        .nth(1)
        .map(|(i, _)| i + 1)
        .expect("two power lines 17");
    let p = only_problem(&text, "sensor[1].power.line", second);
    assert!(p.what.contains("sensor[0]"), "{p}");
}

#[test]
fn unknown_full_policy_is_reported_with_the_choices() {
    let text = edited("full_policy = \"drop-oldest\"", "full_policy = \"drop\"");
    let p = only_problem(&text, "store.full_policy", line_of(&text, "\"drop\""));
    assert!(p.fix.contains("decimate"), "{p}");
}

#[test]
fn several_problems_in_one_file_are_all_reported_in_file_order() {
    let text = BASE
        .replace("name = \"glider-test\"", "name = \"Glider Test\"")
        .replace("flush_interval = \"1s\"", "flush_interval = \"0s\"")
        .replace("line = 17", "line = \"seventeen\"")
        .replace("baud = 9600", "baud = 9601")
        .replace("address = 0x77", "address = 0x99")
        .replace("interval = \"5s\"", "interval = \"1s\"\ncolour = \"red\"")
        .replace(
            "outside_air_from = \"outside-air\"",
            "outside_air_from = \"co2\"",
        )
        .replace("wss://hub", "https://hub");
    let errors = errors_of(&text);
    let got: Vec<(&str, usize)> = errors
        .problems
        .iter()
        .map(|p| (p.key.as_str(), p.position.map_or(0, |p| p.line)))
        .collect();
    let want = vec![
        ("node.name", line_of(&text, "Glider Test")),
        ("store.flush_interval", line_of(&text, "\"0s\"")),
        ("sensor[0].power.line", line_of(&text, "seventeen")),
        ("sensor[1].baud", line_of(&text, "9601")),
        ("sensor[2].address", line_of(&text, "0x99")),
        // The co2's interval is the line before its colour.
        ("sensor[4].interval", line_of(&text, "colour") - 1),
        ("sensor[4].colour", line_of(&text, "colour")),
        (
            "sensor[5].outside_air_from",
            line_of(&text, "outside_air_from"),
        ),
        ("hub.url", line_of(&text, "https://hub")),
    ];
    assert_eq!(got, want, "{errors}");
}

/// A broken file and its report, word for word: what `check-config` prints.
#[test]
fn report_of_a_broken_file_reads_as_expected() {
    let text = r#"[node]
name = "glider 1"

[store]
path = "/var/lib/aloft/store"
max_bytes = 1000
full_policy = "decimate"
flush_interval = "2m"
retain_acked = "7d"

[[sensor]]
name = "gps"
kind = "ublox"
port = "/dev/ttyACM0"
baud = 4800000

[[sensor]]
name = "co2"
kind = "scd41"
bus = "/dev/i2c-1"
interval = "1s"
ambient_pressure_from = "static"

[hub]
url = "https://hub.example.org"
token_file = "/etc/aloft/token"
"#;
    let errors = errors_of(text);
    let expected = r#"test.toml:2:1: node.name: the node name "glider 1" has ' ' at position 7; only a-z, 0-9 and '-' are allowed; use 1 to 63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit (a DNS-1123 label, like "outside-air")
test.toml:6:1: store.max_bytes: 1000 bytes cannot hold two store segments of 4194304 bytes (the one being written and one to drop when full); write 8388608 or more (an SD card's gigabytes are usual)
test.toml:8:1: store.flush_interval: 2m is more than a minute: a power cut would lose all of it; write a minute or less; "1s" is the default of the design
test.toml:15:1: sensor[0].baud: a ublox does not speak 4800000 baud; use one of 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600 (or leave it out for 115200)
test.toml:21:1: sensor[1].interval: 1s is shorter than an scd41 can do (5s at least: its periodic mode measures once every 5 s); write 5s or more
test.toml:22:1: sensor[1].ambient_pressure_from: no sensor is called "static"; name one of the [[sensor]] tables
test.toml:25:1: hub.url: "https://hub.example.org" is not a WebSocket URL; write a ws:// or wss:// URL, such as "wss://hub.example.org:8443/v1/nodes/connect""#;
    assert_eq!(errors.to_string(), expected);
}

#[test]
fn check_reports_an_unreadable_file_as_invalid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = config::check(&dir.path().join("absent.toml"));
    assert!(!report.valid);
    assert!(
        report.text.contains("absent.toml: file: cannot be read"),
        "{}",
        report.text
    );
}

#[test]
fn check_counts_the_problems_of_an_invalid_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("agent.toml");
    let text = edited("baud = 9600", "baud = 57600").replace("address = 0x28", "address = 0x29");
    std::fs::write(&path, text).expect("write");
    let report = config::check(&path);
    assert!(!report.valid);
    assert_eq!(report.text.lines().count(), 3, "{}", report.text);
    assert!(report.text.ends_with(": 2 problems."), "{}", report.text);
}

#[test]
fn store_dir_override_replaces_only_the_store_path() {
    let c = config::parse(BASE, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    let before = c.store.max_bytes;
    let c = c.with_store_dir("/tmp/elsewhere");
    assert_eq!(c.store.path, std::path::Path::new("/tmp/elsewhere"));
    assert_eq!(c.store.max_bytes, before);
}

/// A `key = value` line of the agent's own keys (and one stranger) with values of every
/// type, including extremes: what the rules see when the syntax is right.
fn config_line() -> impl Strategy<Value = String> {
    let keys = prop::sample::select(vec![
        "name",
        "kind",
        "port",
        "baud",
        "bus",
        "address",
        "interval",
        "enabled",
        "static_pressure_from",
        "outside_air_from",
        "ambient_pressure_from",
        "path",
        "max_bytes",
        "full_policy",
        "flush_interval",
        "retain_acked",
        "url",
        "token_file",
        "listen",
        "broker",
        "seed",
        "speed",
        "start_at_s",
        "chip",
        "line",
        "off_for",
        "dir",
        "max_files",
        "max_file_bytes",
        "colour",
    ]);
    (keys, config_value()).prop_map(|(k, v)| format!("{k} = {v}"))
}

/// A TOML value of any type the agent's keys take, including extremes.
fn config_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        any::<u64>().prop_map(|v| v.to_string()),
        prop::num::f64::ANY.prop_map(|v| format!("{v:?}").to_lowercase()),
        "\"[a-z0-9 :/.-]{0,12}\"",
        "\"[0-9]{1,22}(ns|ms|s|m|h|d)\"",
        prop::sample::select(vec![
            "true",
            "\"gps\"",
            "\"static\"",
            "\"outside-air\"",
            "\"co2\"",
            "\"ublox\"",
            "\"cosmicwatch\"",
            "\"bme280\"",
            "\"ms5611\"",
            "\"scd41\"",
            "\"ms4525do\"",
            "\"decimate\"",
            "\"ws://h/\"",
            "\"127.0.0.1:9464\"",
            "[]",
            "{}",
        ])
        .prop_map(str::to_string),
    ]
}

/// `BASE` with the values of some of its keys replaced by arbitrary ones: reaches every
/// rule, since the rest of the file stays valid.
fn base_with_values_replaced() -> impl Strategy<Value = String> {
    let assignments = BASE.lines().filter(|l| l.contains(" = ")).count();
    prop::collection::vec((0..assignments, config_value()), 1..4).prop_map(|changes| {
        let mut lines: Vec<String> = BASE.lines().map(str::to_string).collect();
        for (n, value) in changes {
            if let Some(line) = lines.iter_mut().filter(|l| l.contains(" = ")).nth(n) {
                let key = line.split(" = ").next().unwrap_or_default().to_string();
                *line = format!("{key} = {value}");
            }
        }
        lines.join("\n")
    })
}

/// Tables of such lines under the agent's headers, in any order and number.
fn config_document() -> impl Strategy<Value = String> {
    let header = prop::sample::select(vec![
        "[node]",
        "[store]",
        "[[sensor]]",
        "[[sensor]]",
        "[sensor.power]",
        "[sensor.capture]",
        "[hub]",
        "[mqtt]",
        "[metrics]",
        "[simulation]",
    ]);
    prop::collection::vec((header, prop::collection::vec(config_line(), 0..8)), 0..10).prop_map(
        |tables| {
            tables
                .into_iter()
                .map(|(h, lines)| format!("{h}\n{}\n", lines.join("\n")))
                .collect::<String>()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics_the_loader(text in ".{0,400}") {
        if let Err(e) = config::parse(&text, "fuzz.toml") {
            prop_assert!(!e.problems.is_empty());
        }
    }

    /// Documents of the agent's keys with values of any type and size: every rule runs on
    /// extremes (huge intervals, sizes, baud rates) without panicking, and every problem is
    /// placed inside the text.
    #[test]
    fn arbitrary_documents_of_the_agents_keys_never_panic_the_rules(text in config_document()) {
        if let Err(e) = config::parse(&text, "fuzz.toml") {
            let lines = text.lines().count() + 1;
            for p in &e.problems {
                let pos = p.position.expect("parsed text has positions");
                prop_assert!(pos.line >= 1 && pos.line <= lines, "{p} in {lines} lines");
            }
        }
    }

    /// A valid config with some values replaced by anything: never a panic, and every
    /// problem is placed inside the text.
    #[test]
    fn valid_config_with_arbitrary_values_never_panics_the_rules(
        text in base_with_values_replaced(),
    ) {
        if let Err(e) = config::parse(&text, "fuzz.toml") {
            let lines = text.lines().count() + 1;
            for p in &e.problems {
                let pos = p.position.expect("parsed text has positions");
                prop_assert!(pos.line >= 1 && pos.line <= lines, "{p} in {lines} lines");
            }
        }
    }

    /// Damaged copies of a valid config: every problem is placed inside the text.
    #[test]
    fn damaged_configs_report_positions_inside_the_text(
        cut in 0..BASE.len(),
        len in 0usize..40,
        insert in "[a-z0-9=\\[\\]\"\n ._-]{0,12}",
    ) {
        let mut text = BASE.to_string();
        let start = (0..=cut).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        let end = (start + len).min(text.len());
        text.replace_range(start..end, &insert);
        if let Err(e) = config::parse(&text, "fuzz.toml") {
            let lines = text.lines().count() + 1;
            for p in &e.problems {
                let pos = p.position.expect("parsed text has positions");
                prop_assert!(pos.line >= 1 && pos.line <= lines, "{p} in {lines} lines");
                prop_assert!(pos.column >= 1);
            }
        }
    }
}

/// `BASE` with a `[sensor.tunables]` table of `body` after the BME280's interval.
fn with_bme280_tunables(body: &str) -> String {
    edited(
        "address = 0x76\ninterval = \"1s\"\n",
        &format!("address = 0x76\ninterval = \"1s\"\n\n[sensor.tunables]\n{body}\n"),
    )
}

#[test]
fn tunables_a_kind_declares_load_typed() {
    let text = with_bme280_tunables("pressure_oversampling = 16");
    let config = config::parse(&text, "test.toml").expect("valid tunables load");
    let air = config.sensor("outside-air").expect("the bme280").1;
    assert_eq!(
        air.tunables().get("pressure_oversampling"),
        Some(&aloft_protocol::sync::TunableValue::Integer(16))
    );
}

#[test]
fn an_unknown_tunable_suggests_the_nearest_the_kind_declares() {
    let text = with_bme280_tunables("presure_oversampling = 16");
    let p = only_problem(
        &text,
        "sensor[3].tunables.presure_oversampling",
        line_of(&text, "presure_oversampling ="),
    );
    assert!(p.what.contains("unknown tunable"), "{p}");
    assert!(p.fix.contains("`pressure_oversampling`"), "{p}");
}

#[test]
fn a_tunable_value_out_of_range_says_what_the_kind_takes() {
    let text = with_bme280_tunables("pressure_oversampling = 3");
    let p = only_problem(
        &text,
        "sensor[3].tunables.pressure_oversampling",
        line_of(&text, "pressure_oversampling ="),
    );
    assert!(p.what.contains("an integer 3 is not accepted"), "{p}");
    assert!(p.fix.contains("one of 1, 2, 4, 8, 16"), "{p}");
    let text = with_bme280_tunables("pressure_oversampling = \"x16\"");
    let p = only_problem(
        &text,
        "sensor[3].tunables.pressure_oversampling",
        line_of(&text, "pressure_oversampling ="),
    );
    assert!(p.what.contains("a string"), "{p}");
}

#[test]
fn a_tunable_that_is_not_a_scalar_or_on_a_kind_without_tunables_is_refused() {
    let text = with_bme280_tunables("pressure_oversampling = [16]");
    let p = only_problem(
        &text,
        "sensor[3].tunables.pressure_oversampling",
        line_of(&text, "pressure_oversampling ="),
    );
    assert!(p.what.contains("an array"), "{p}");
    let text = edited(
        "bus = \"/dev/i2c-1\"\naddress = 0x77\n",
        "bus = \"/dev/i2c-1\"\naddress = 0x77\ntunables = { dead_time = 2 }\n",
    );
    let p = only_problem(
        &text,
        "sensor[2].tunables.dead_time",
        line_of(&text, "tunables ="),
    );
    assert!(p.fix.contains("has no tunables"), "{p}");
}
