//! Golden tests of what operators read: every kind's table (plain and `-o wide`), `top`,
//! and JSON, YAML and `name` output, rendered from fixed hub answers at a fixed "now".
//! Run with `UPDATE_GOLDEN=1` to rewrite the files after an intended change, then review
//! the diff.

#![allow(clippy::unwrap_used)] // Tests: a missing fixture should stop the test loudly.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use aloftctl::cli::Kind;
use aloftctl::output::{self, Format};
use aloftctl::views;
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn now() -> SystemTime {
    // 2026-11-24T13:00:00Z
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_525_200)
}

fn fixture(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(dir().join(format!("{name}.json"))).unwrap();
    let list: Value = serde_json::from_str(&text).unwrap();
    list["items"].as_array().unwrap().clone()
}

fn check(file: &str, actual: &str) {
    let path = dir().join(file);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    assert_eq!(
        actual, expected,
        "{file} differs; if intended, rerun with UPDATE_GOLDEN=1 and review"
    );
}

fn render(format: Format, items: &[Value], kind: Kind) -> String {
    match format {
        Format::Json => output::to_json(&output::document(items, false)),
        Format::Yaml => output::to_yaml(&output::document(items, false)),
        Format::Name => items.iter().map(|o| output::name_of(o) + "\n").collect(),
        Format::Table => views::table(kind, items, false, now()).render(true),
        Format::Wide => views::table(kind, items, true, now()).render(true),
    }
}

#[test]
fn tables_of_every_kind_plain_and_wide() {
    for (name, kind) in [
        ("nodes", Kind::Nodes),
        ("sensors", Kind::Sensors),
        ("commands", Kind::Commands),
        ("events", Kind::Events),
        ("tokens", Kind::Tokens),
    ] {
        let items = fixture(name);
        check(
            &format!("{name}.table.txt"),
            &render(Format::Table, &items, kind),
        );
        check(
            &format!("{name}.wide.txt"),
            &render(Format::Wide, &items, kind),
        );
    }
}

#[test]
fn top_shows_every_newest_value() {
    check(
        "top.table.txt",
        &views::values(&fixture("sensors")).render(true),
    );
}

#[test]
fn json_yaml_and_name_output_of_sensors_and_commands() {
    for (name, kind) in [("sensors", Kind::Sensors), ("commands", Kind::Commands)] {
        let items = fixture(name);
        check(
            &format!("{name}.out.json"),
            &render(Format::Json, &items, kind),
        );
        check(
            &format!("{name}.out.yaml"),
            &render(Format::Yaml, &items, kind),
        );
        check(
            &format!("{name}.names.txt"),
            &render(Format::Name, &items, kind),
        );
    }
}

#[test]
fn yaml_output_of_a_sensor_applies_as_it_is() {
    let sensor = fixture("sensors").into_iter().nth(2).unwrap();
    let yaml = output::to_yaml(&sensor);
    let parsed = aloftctl::manifest::parse("get.yaml", &yaml).unwrap();
    assert_eq!(parsed.len(), 1);
    assert_eq!(parsed[0].interval_ms, Some(200));
    assert_eq!(parsed[0].node, "glider-2");
}

#[test]
fn a_wide_list_with_tunables_shows_them_in_force_and_desired() {
    // A list without any keeps its columns (the fixtures above); this one has a TUNABLES
    // column: in force, a desired value not yet in force as `in-force->desired`.
    let items = fixture("sensors-tunables");
    check(
        "sensors-tunables.wide.txt",
        &render(Format::Wide, &items, Kind::Sensors),
    );
    check(
        "sensors-tunables.table.txt",
        &render(Format::Table, &items, Kind::Sensors),
    );
}

#[test]
fn yaml_output_of_a_sensor_with_tunables_applies_with_them() {
    let sensor = fixture("sensors-tunables").into_iter().next().unwrap();
    let yaml = output::to_yaml(&sensor);
    let parsed = aloftctl::manifest::parse("get.yaml", &yaml).unwrap();
    assert_eq!(
        parsed[0].tunables.get("pressure_oversampling"),
        Some(&aloft_api::TunableValue::Integer(16))
    );
}
