//! docs/api.md checked against the types: every `json` example on the page reads into its
//! type and writes back equal (so a field the type does not have, or names differently,
//! fails), every kind of resource and envelope has an example, and every field of every
//! type is named on the page.

#![allow(clippy::unwrap_used)] // Tests: a missing page or a broken example should stop loudly.

use std::collections::BTreeSet;
use std::fmt;

use aloft_api::{
    Actor, Backlog, Command, CommandRequest, CommandRequestSpec, CommandSpec, CommandStatus,
    Condition, DeletedObject, DesiredSensor, DesiredState, DesiredStateSpec, DesiredStateStatus,
    Event, EventSpec, EventStatus, Gap, GnssModel, LastRestart, LatestValue, LinkStats, List,
    ListMeta, LogLine, Node, NodeHealth, NodePower, NodeRequest, NodeRequestMeta, NodeSensor,
    NodeStatus, ObjectMeta, ObjectReference, ObservedSensor, PartialObjectMetadata, Reading,
    SensorSpec, SensorStatus, SensorValue, SeqRange, Status, StoreFill, StreamStatus, TimeSpan,
    Token, TokenRequest, TokenRequestSpec, TokenSpec, TokenStatus, Version, WatchEvent,
};
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::{Serialize, forward_to_deserialize_any};
use serde_json::Value;

fn page() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/api.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The text of every fenced block opened with ```` ```json ````, indented or not.
fn json_blocks(page: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in page.lines() {
        let trimmed = line.trim_start();
        match &mut current {
            None if trimmed == "```json" => current = Some(String::new()),
            Some(_) if trimmed.starts_with("```") => blocks.extend(current.take()),
            Some(text) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    assert!(current.is_none(), "a ```json block is not closed");
    blocks
}

/// The JSON values of a block: one document, or one a line (NDJSON).
fn documents(block: &str) -> Vec<Value> {
    if let Ok(value) = serde_json::from_str(block) {
        return vec![value];
    }
    block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("a ```json example of docs/api.md is not JSON ({e}):\n{block}")
            })
        })
        .collect()
}

/// Reads `example` as `T` and writes it back: equal, or the doc and the type disagree.
fn round_trip<T: DeserializeOwned + Serialize>(what: &str, example: &Value) {
    let typed: T = serde_json::from_value(example.clone())
        .unwrap_or_else(|e| panic!("{what} example does not read as its type: {e}\n{example}"));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        &back, example,
        "{what} example of docs/api.md and its type disagree (a field unknown to the type, \
         named differently, or left out)"
    );
}

/// Which type an example is, and the check of it: by `kind`, else by shape.
fn check(example: &Value) -> &'static str {
    let kind = example.get("kind").and_then(Value::as_str);
    let has = |field: &str| example.get(field).is_some();
    match kind {
        Some("Node") => round_trip::<Node>("Node", example),
        Some("Sensor") => round_trip::<aloft_api::Sensor>("Sensor", example),
        Some("Command") => round_trip::<Command>("Command", example),
        Some("Event") => round_trip::<Event>("Event", example),
        Some("Token") => round_trip::<Token>("Token", example),
        Some("DesiredState") => round_trip::<DesiredState>("DesiredState", example),
        Some("Status") => round_trip::<Status>("Status", example),
        Some("Version") => round_trip::<Version>("Version", example),
        Some("NodeList") => round_trip::<List<Node>>("NodeList", example),
        Some("GapList") => round_trip::<List<Gap>>("GapList", example),
        Some("LogList") => round_trip::<List<LogLine>>("LogList", example),
        Some(other) => panic!("docs/api.md shows a kind {other:?} that no type here has"),
        None if has("type") && has("object") => {
            round_trip::<WatchEvent<DeletedObject>>("WatchEvent", example);
            return "WatchEvent";
        }
        None if has("seq") && has("quantity") => {
            round_trip::<Reading>("Reading", example);
            return "Reading";
        }
        None if has("spec") => {
            round_trip::<CommandRequest>("CommandRequest", example);
            return "CommandRequest";
        }
        None => panic!("an example of docs/api.md matches no type:\n{example}"),
    }
    match kind {
        Some("Node") => "Node",
        Some("Sensor") => "Sensor",
        Some("Command") => "Command",
        Some("Event") => "Event",
        Some("Token") => "Token",
        Some("DesiredState") => "DesiredState",
        Some("Status") => "Status",
        Some("Version") => "Version",
        Some("NodeList") => "NodeList",
        Some("GapList") => "GapList",
        _ => "LogList",
    }
}

#[test]
fn every_json_example_reads_into_its_type_and_writes_back_equal() {
    let page = page();
    let mut seen = BTreeSet::new();
    for block in json_blocks(&page) {
        for example in documents(&block) {
            seen.insert(check(&example));
        }
    }
    // Every resource and envelope the hub serves has its example (lists of resources are
    // `List<T>` of a resource shown; gaps and logs have list examples).
    for kind in [
        "Node",
        "Sensor",
        "Command",
        "Event",
        "Token",
        "DesiredState",
        "Status",
        "Version",
        "GapList",
        "LogList",
        "WatchEvent",
        "Reading",
        "CommandRequest",
    ] {
        assert!(
            seen.contains(kind),
            "docs/api.md has no ```json example of {kind}"
        );
    }
}

/// Stops a deserialization at the first struct, keeping the names of its fields as serde
/// reads them (after renames): the names a type has on the wire, without an instance.
#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field names collected")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Stop
    }
}

struct FieldNames<'a>(&'a mut Vec<&'static str>);

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        self.0.extend_from_slice(fields);
        Err(Stop)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

fn fields_of<T: DeserializeOwned>() -> Vec<&'static str> {
    let mut names = Vec::new();
    let _ = T::deserialize(FieldNames(&mut names));
    assert!(
        !names.is_empty(),
        "{} is not a struct",
        std::any::type_name::<T>()
    );
    names
}

/// The keys of a value, at every depth.
fn keys(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                out.insert(key.clone());
                keys(item, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| keys(item, out)),
        _ => {}
    }
}

/// Whether `word` appears on the page as a whole word (not inside a longer name).
fn named(page: &str, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    page.match_indices(word).any(|(at, _)| {
        let before = page[..at].chars().next_back();
        let after = page[at + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// Every field name on the wire of every type: structs by their serde field lists, the
/// internally tagged `Gap` by one value of each of its variants.
fn wire_names() -> BTreeSet<String> {
    let mut names: BTreeSet<String> = [
        fields_of::<ObjectMeta>(),
        fields_of::<ListMeta>(),
        fields_of::<List<Value>>(),
        fields_of::<WatchEvent<Value>>(),
        fields_of::<DeletedObject>(),
        fields_of::<PartialObjectMetadata>(),
        fields_of::<Status>(),
        fields_of::<Version>(),
        fields_of::<Node>(),
        fields_of::<NodeStatus>(),
        fields_of::<Condition>(),
        fields_of::<LinkStats>(),
        fields_of::<Backlog>(),
        fields_of::<NodeSensor>(),
        fields_of::<LastRestart>(),
        fields_of::<LatestValue>(),
        fields_of::<StreamStatus>(),
        fields_of::<NodeHealth>(),
        fields_of::<StoreFill>(),
        fields_of::<GnssModel>(),
        fields_of::<NodePower>(),
        fields_of::<aloft_api::Sensor>(),
        fields_of::<SensorSpec>(),
        fields_of::<SensorStatus>(),
        fields_of::<SensorValue>(),
        fields_of::<Command>(),
        fields_of::<CommandSpec>(),
        fields_of::<CommandStatus>(),
        fields_of::<Actor>(),
        fields_of::<Event>(),
        fields_of::<EventSpec>(),
        fields_of::<ObjectReference>(),
        fields_of::<EventStatus>(),
        fields_of::<Token>(),
        fields_of::<TokenSpec>(),
        fields_of::<TokenStatus>(),
        fields_of::<DesiredState>(),
        fields_of::<DesiredStateSpec>(),
        fields_of::<DesiredSensor>(),
        fields_of::<DesiredStateStatus>(),
        fields_of::<ObservedSensor>(),
        fields_of::<Reading>(),
        fields_of::<SeqRange>(),
        fields_of::<TimeSpan>(),
        fields_of::<LogLine>(),
        fields_of::<CommandRequest>(),
        fields_of::<CommandRequestSpec>(),
        fields_of::<TokenRequest>(),
        fields_of::<TokenRequestSpec>(),
        fields_of::<NodeRequest>(),
        fields_of::<NodeRequestMeta>(),
    ]
    .into_iter()
    .flatten()
    .map(str::to_owned)
    .collect();
    let covers = SeqRange { first: 1, last: 2 };
    for gap in [
        Gap::Recorded {
            epoch: String::new(),
            seq: 0,
            reason: String::new(),
            covers: Some(covers),
            readings: Some(0),
            sensor: Some(0),
            span: Some(TimeSpan::default()),
        },
        Gap::Unsynced {
            epoch: String::new(),
            covers,
        },
    ] {
        keys(&serde_json::to_value(gap).unwrap(), &mut names);
    }
    names
}

#[test]
fn every_field_of_every_type_is_named_on_the_page() {
    let page = page();
    let missing: Vec<String> = wire_names()
        .into_iter()
        .filter(|name| !named(&page, name))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/api.md names no field {missing:?}: document them, or the type has a field the \
         API does not"
    );
}

#[test]
fn the_field_name_collector_sees_renamed_fields() {
    // camelCase on the wire, as the page shows them.
    let names = fields_of::<SensorStatus>();
    assert!(names.contains(&"newestValueAgeSeconds"), "{names:?}");
    assert!(!names.contains(&"newest_value_age_seconds"), "{names:?}");
    assert!(fields_of::<Reading>().contains(&"utc_ns"));
}

#[test]
fn a_field_the_type_lacks_fails_the_round_trip() {
    let mut example = serde_json::json!({"apiVersion": "aloft.dev/v1", "kind": "Version",
        "version": "0.1.0"});
    round_trip::<Version>("Version", &example);
    example["versoin"] = "0.1.0".into();
    let outcome = std::panic::catch_unwind(|| round_trip::<Version>("Version", &example));
    assert!(outcome.is_err(), "an unknown field passed the round trip");
}
