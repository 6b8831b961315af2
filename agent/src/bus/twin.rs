//! KubeEdge's device twin on the local bus: the topics and JSON messages of KubeEdge's
//! DeviceTwin module (edge/pkg/devicetwin, `dttype`), served for Aloft's sensors so that
//! KubeEdge mappers and apps work against the agent.
//!
//! A KubeEdge device is an Aloft sensor of this node, by name. Its twin's keys are:
//! `status` (reported: the supervisor's state), one key per quantity the sensor has a
//! newest value of (reported: the value, its time in the value's metadata), and the
//! desired state the hub gives (`enabled`, `interval_ms`, `tunable.<key>`: expected is the
//! hub's, actual what is in force). Twin values are strings, as in KubeEdge.
//!
//! Pure logic, no I/O: decoding of requests with KubeEdge's key and value rules, and the
//! result, delta, document and get-result messages. `crate::bus::inbound` routes and asks
//! the agent for the [`SensorView`]s.
//!
//! Invariants: desired state stays the hub's: an update carrying any `expected` value is
//! refused whole (code 403) with a reason on the result topic; reported values are taken
//! only for an `mqtt` sensor's declared quantities (as readings, through ingest's checks);
//! every request gets exactly one answer on its result topic, echoing its `event_id`; no
//! payload panics the decoder.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Outgoing;

/// The first levels of every device topic.
pub const DEVICE_PREFIX: &str = "$hw/events/device/";

/// The largest twin message taken, bytes (KubeEdge bounds keys at 128 and values at 512
/// bytes; a twin of a few hundred keys fits).
pub const TWIN_PAYLOAD_BYTES_MAX: usize = 64 * 1024;

/// KubeEdge's codes in a [`ResultMessage`].
pub mod code {
    /// The request is malformed or names what cannot be set.
    pub const BAD_REQUEST: u16 = 400;
    /// Desired state is the hub's alone.
    pub const FORBIDDEN: u16 = 403;
    /// No such device.
    pub const NOT_FOUND: u16 = 404;
}

/// What a device topic asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwinOp {
    /// `$hw/events/device/<id>/twin/update`.
    Update,
    /// `$hw/events/device/<id>/twin/get`.
    Get,
    /// `$hw/events/device/<id>/state/update`.
    StateUpdate,
}

impl TwinOp {
    fn suffix(self) -> &'static str {
        match self {
            TwinOp::Update => "/twin/update",
            TwinOp::Get => "/twin/get",
            TwinOp::StateUpdate => "/state/update",
        }
    }

    /// The topic filter the agent subscribes to for this operation.
    pub fn filter(self) -> String {
        format!("{DEVICE_PREFIX}+{}", self.suffix())
    }

    /// Where the answer to a request on `device` goes.
    pub fn result_topic(self, device: &str) -> String {
        format!("{DEVICE_PREFIX}{device}{}/result", self.suffix())
    }
}

/// The device and operation of a device topic; `None` for any other topic.
pub fn parse_topic(topic: &str) -> Option<(&str, TwinOp)> {
    let rest = topic.strip_prefix(DEVICE_PREFIX)?;
    [TwinOp::Update, TwinOp::Get, TwinOp::StateUpdate]
        .into_iter()
        .find_map(|op| {
            let device = rest.strip_suffix(op.suffix())?;
            (!device.is_empty() && !device.contains('/')).then_some((device, op))
        })
}

/// The topic of a device's twin deltas.
pub fn delta_topic(device: &str) -> String {
    format!("{DEVICE_PREFIX}{device}/twin/update/delta")
}

/// The topic of a device's twin documents.
pub fn document_topic(device: &str) -> String {
    format!("{DEVICE_PREFIX}{device}/twin/update/document")
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// KubeEdge's `TypeMetadata`: a twin's value type (`int`, `float`, `string`, `boolean`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TypeMetadata {
    /// The type.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
}

/// KubeEdge's `ValueMetadata`: when a value was had, ms since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ValueMetadata {
    /// Milliseconds since the Unix epoch; 0 = unknown.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timestamp: i64,
}

/// KubeEdge's `TwinValue`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TwinValue {
    /// The value, always a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// When it was had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ValueMetadata>,
}

/// KubeEdge's `TwinVersion`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TwinVersion {
    /// The cloud's version.
    #[serde(default)]
    pub cloud: i64,
    /// The edge's version.
    #[serde(default)]
    pub edge: i64,
}

/// KubeEdge's `MsgTwin`: one key's desired (`expected`) and reported (`actual`) values.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MsgTwin {
    /// The desired value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<TwinValue>,
    /// The reported value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<TwinValue>,
    /// Whether the key may be absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
    /// The value's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TypeMetadata>,
    /// Versions of the desired value (not kept by Aloft: the hub's generation is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<TwinVersion>,
    /// Versions of the reported value (not kept by Aloft).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_version: Option<TwinVersion>,
}

/// KubeEdge's `BaseMessage` fields, and a `DeviceTwinUpdate` (`twin/update`), a get
/// (`twin/get`, `twin` absent) or a `DeviceTwinResult` (`twin/update/result`,
/// `twin/get/result`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TwinMessage {
    /// The request's id, echoed in its result.
    #[serde(default)]
    pub event_id: String,
    /// Milliseconds since the Unix epoch.
    #[serde(default)]
    pub timestamp: i64,
    /// The keys (a `null` entry deletes a key in KubeEdge).
    #[serde(default)]
    pub twin: Option<BTreeMap<String, Option<MsgTwin>>>,
}

/// KubeEdge's `Result`: a refused request's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultMessage {
    /// The request's id.
    pub event_id: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// [`code`].
    #[serde(default)]
    pub code: u16,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// KubeEdge's `DeviceTwinDelta`: the whole twin and the keys whose desired value differs
/// from the reported one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaMessage {
    /// A new id.
    pub event_id: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The twin.
    pub twin: BTreeMap<String, MsgTwin>,
    /// Key to desired value, where it differs from the reported one.
    pub delta: BTreeMap<String, String>,
}

/// KubeEdge's `TwinDoc`: one key before and after an update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwinDoc {
    /// Before (`null` for a new key).
    pub last: Option<MsgTwin>,
    /// After.
    pub current: Option<MsgTwin>,
}

/// KubeEdge's `DeviceTwinDocument`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentMessage {
    /// A new id.
    pub event_id: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The keys the update changed.
    pub twin: BTreeMap<String, TwinDoc>,
}

/// KubeEdge's `DeviceUpdate` (`state/update`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StateUpdate {
    /// The request's id.
    #[serde(default)]
    pub event_id: String,
    /// Milliseconds since the Unix epoch.
    #[serde(default)]
    pub timestamp: i64,
    /// `online`, `offline`, ...
    #[serde(default)]
    pub state: String,
}

/// KubeEdge's `Device` as `BuildDeviceState` fills it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceState {
    /// The device.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Its state.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state: String,
    /// When it was last online (RFC 3339), if known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_online: String,
}

/// KubeEdge's `DeviceMsg` (`state/update/result`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStateMessage {
    /// A new id.
    pub event_id: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The device.
    pub device: DeviceState,
}

/// A setting of the desired state: what the hub asks (if it asks) and what is in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The hub's desired value, as a twin string.
    pub desired: Option<String>,
    /// The value in force; `None` when the sensor has no such setting (a desired interval
    /// of a sensor that is not scheduled), so the desired value is never in force.
    pub in_force: Option<String>,
    /// Its twin type (`boolean`, `int`, `string`).
    pub kind: &'static str,
}

/// A sensor's newest value of one quantity.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// The quantity's name.
    pub quantity: String,
    /// The value.
    pub value: f64,
    /// When it was taken, ms since the Unix epoch, if known.
    pub utc_ms: Option<i64>,
}

/// What the twin shows of one sensor, as the agent knows it now.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorView {
    /// Its name: the twin's device id.
    pub name: String,
    /// The supervisor's state (`running`, `degraded`, ...).
    pub status: String,
    /// Desired-state settings by twin key (`enabled`, `interval_ms`, `tunable.<key>`).
    pub settings: BTreeMap<String, Setting>,
    /// Newest values.
    pub observed: Vec<Observed>,
    /// The quantities a mapper may report (an `mqtt` sensor's declared ones; empty for a
    /// sensor the agent reads itself).
    pub reportable: Vec<String>,
}

/// A twin value: the shortest decimal text that reads back to the same `f64` (Rust's
/// `Display`, which never uses an exponent, so KubeEdge's value rule takes it).
pub fn value_text(value: f64) -> String {
    format!("{value}")
}

fn string_value(value: String, timestamp: i64) -> TwinValue {
    TwinValue {
        value: Some(value),
        metadata: (timestamp != 0).then_some(ValueMetadata { timestamp }),
    }
}

fn typed(kind: &str) -> Option<TypeMetadata> {
    Some(TypeMetadata {
        kind: kind.to_string(),
    })
}

/// The twin of `view`: status, newest values and settings.
pub fn twin_of(view: &SensorView) -> BTreeMap<String, MsgTwin> {
    let mut twin = BTreeMap::new();
    twin.insert(
        "status".to_string(),
        MsgTwin {
            actual: Some(string_value(view.status.clone(), 0)),
            optional: Some(false),
            metadata: typed("string"),
            ..MsgTwin::default()
        },
    );
    for o in &view.observed {
        twin.insert(o.quantity.clone(), observed_twin(o));
    }
    for (key, s) in &view.settings {
        twin.insert(
            key.clone(),
            MsgTwin {
                expected: s.desired.clone().map(|v| string_value(v, 0)),
                actual: s.in_force.clone().map(|v| string_value(v, 0)),
                optional: Some(true),
                metadata: typed(s.kind),
                ..MsgTwin::default()
            },
        );
    }
    twin
}

fn observed_twin(o: &Observed) -> MsgTwin {
    MsgTwin {
        actual: Some(string_value(value_text(o.value), o.utc_ms.unwrap_or(0))),
        optional: Some(true),
        metadata: typed("float"),
        ..MsgTwin::default()
    }
}

/// Why a twin request is refused: its code and reason on the result topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {reason}")]
pub struct TwinRefusal {
    /// [`code`].
    pub code: u16,
    /// Why, for the requester.
    pub reason: String,
}

impl TwinRefusal {
    /// A refusal with `code`.
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        TwinRefusal {
            code,
            reason: reason.into(),
        }
    }
}

/// KubeEdge's rule for twin keys: letters, digits and `-_.,:/@#`, 1 to 128 bytes.
pub fn valid_key(key: &str) -> bool {
    (1..=128).contains(&key.len()) && key.bytes().all(allowed_byte)
}

/// KubeEdge's rule for twin values: the same characters, at most 512 bytes (an empty
/// value is not checked).
pub fn valid_value(value: &str) -> bool {
    value.len() <= 512 && value.bytes().all(allowed_byte)
}

fn allowed_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.,:/@#".contains(&b)
}

/// The request's `event_id` if a payload is JSON with one, for answering a request that
/// is otherwise refused.
pub fn event_id_of(payload: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Id {
        #[serde(default)]
        event_id: String,
    }
    if payload.len() > TWIN_PAYLOAD_BYTES_MAX {
        return String::new();
    }
    serde_json::from_slice::<Id>(payload)
        .map(|i| i.event_id)
        .unwrap_or_default()
}

/// A mapper's reported value of one key, checked to be a number.
#[derive(Debug, Clone, PartialEq)]
pub struct Reported {
    /// The key: a quantity's name.
    pub key: String,
    /// The value.
    pub value: f64,
    /// When the mapper had it, ms since the Unix epoch, if it said.
    pub timestamp_ms: Option<i64>,
}

/// Decodes a `twin/update` for `view` into the reported values to take, refusing as
/// KubeEdge does (400 for a malformed message or a key or value outside its rules) and as
/// Aloft must (403 for any desired value, or for reported values of a sensor the agent
/// reads itself; 400 for a key that is not a declared quantity or a value that is not a
/// number).
pub fn decode_update(
    payload: &[u8],
    view: &SensorView,
) -> Result<(TwinMessage, Vec<Reported>), TwinRefusal> {
    let bad = |reason: String| TwinRefusal::new(code::BAD_REQUEST, reason);
    if payload.len() > TWIN_PAYLOAD_BYTES_MAX {
        return Err(bad(format!(
            "message of {} bytes, at most {TWIN_PAYLOAD_BYTES_MAX}",
            payload.len()
        )));
    }
    let msg: TwinMessage = serde_json::from_slice(payload)
        .map_err(|e| bad(format!("Unmarshal update request body failed: {e}")))?;
    let Some(twin) = &msg.twin else {
        return Err(bad("Update twin error, key:twin does not exist".into()));
    };
    let mut reported = Vec::with_capacity(twin.len());
    for (key, entry) in twin {
        if !valid_key(key) {
            return Err(bad(format!(
                "key {:?} has characters or a length KubeEdge refuses",
                key.chars().take(64).collect::<String>()
            )));
        }
        let Some(entry) = entry else {
            return Err(TwinRefusal::new(
                code::FORBIDDEN,
                format!("{key}: the keys of an Aloft sensor's twin cannot be deleted"),
            ));
        };
        for v in [&entry.expected, &entry.actual].into_iter().flatten() {
            if let Some(text) = &v.value
                && !valid_value(text)
            {
                return Err(bad(format!(
                    "{key}: the value has characters or a length KubeEdge refuses"
                )));
            }
        }
        if entry.expected.is_some() {
            return Err(TwinRefusal::new(
                code::FORBIDDEN,
                format!("{key}: desired state is set at the hub (aloftctl), not on the local bus"),
            ));
        }
        let Some(actual) = &entry.actual else {
            continue;
        };
        if view.reportable.is_empty() {
            return Err(TwinRefusal::new(
                code::FORBIDDEN,
                format!(
                    "{}: the agent reports this sensor itself; only an mqtt sensor takes reported values",
                    view.name
                ),
            ));
        }
        if !view.reportable.iter().any(|q| q == key) {
            return Err(bad(format!(
                "{key} is not a quantity sensor {} declares",
                view.name
            )));
        }
        let text = actual.value.as_deref().unwrap_or("");
        let value = text
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| bad(format!("{key}: {text:?} is not a finite number")))?;
        reported.push(Reported {
            key: key.clone(),
            value,
            timestamp_ms: actual
                .metadata
                .as_ref()
                .map(|m| m.timestamp)
                .filter(|t| *t > 0),
        });
    }
    Ok((msg, reported))
}

/// The messages that answer an accepted `twin/update` of `before`: the result (the keys
/// as they now are, echoing `event_id`), the document (each key before and after) and,
/// when some desired value differs from its reported one, the delta.
pub fn update_accepted(
    before: &SensorView,
    reported: &[Reported],
    event_id: &str,
    now_ms: i64,
    new_id: &mut dyn FnMut() -> String,
) -> Vec<Outgoing> {
    let old = twin_of(before);
    let mut after = before.clone();
    let mut changed = BTreeMap::new();
    for r in reported {
        let o = Observed {
            quantity: r.key.clone(),
            value: r.value,
            utc_ms: Some(r.timestamp_ms.unwrap_or(now_ms)),
        };
        after.observed.retain(|x| x.quantity != r.key);
        after.observed.push(o.clone());
        changed.insert(r.key.clone(), observed_twin(&o));
    }
    let device = before.name.as_str();
    let result = TwinMessage {
        event_id: event_id.to_string(),
        timestamp: now_ms,
        twin: Some(
            changed
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect(),
        ),
    };
    let document = DocumentMessage {
        event_id: new_id(),
        timestamp: now_ms,
        twin: changed
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    TwinDoc {
                        last: old.get(k).cloned(),
                        current: Some(v.clone()),
                    },
                )
            })
            .collect(),
    };
    let mut out = vec![
        json_message(TwinOp::Update.result_topic(device), &result),
        json_message(document_topic(device), &document),
    ];
    if let Some(delta) = delta_of(&after, now_ms, new_id) {
        out.push(json_message(delta_topic(device), &delta));
    }
    out
}

/// The delta of `view` (KubeEdge's `BuildDeviceTwinDelta`): `None` when every desired
/// value is in force.
pub fn delta_of(
    view: &SensorView,
    now_ms: i64,
    new_id: &mut dyn FnMut() -> String,
) -> Option<DeltaMessage> {
    let twin = twin_of(view);
    let delta: BTreeMap<String, String> = twin
        .iter()
        .filter_map(|(k, t)| {
            let expected = t
                .expected
                .as_ref()?
                .value
                .clone()
                .filter(|v| !v.is_empty())?;
            let actual = t.actual.as_ref().and_then(|a| a.value.as_deref());
            (actual != Some(expected.as_str())).then(|| (k.clone(), expected))
        })
        .collect();
    if delta.is_empty() {
        return None;
    }
    Some(DeltaMessage {
        event_id: new_id(),
        timestamp: now_ms,
        twin: twin
            .into_iter()
            .filter(|(_, t)| t.expected.is_some())
            .collect(),
        delta,
    })
}

/// The answer to a `twin/get` of `view` (KubeEdge's `BuildDeviceTwinResult` for a get:
/// the whole twin, no versions).
pub fn get_result(view: &SensorView, event_id: &str, now_ms: i64) -> Outgoing {
    let result = TwinMessage {
        event_id: event_id.to_string(),
        timestamp: now_ms,
        twin: Some(
            twin_of(view)
                .into_iter()
                .map(|(k, v)| (k, Some(v)))
                .collect(),
        ),
    };
    json_message(TwinOp::Get.result_topic(&view.name), &result)
}

/// A refusal on the result topic of `op` for `device` (KubeEdge's `BuildErrorResult`).
pub fn refused(
    op: TwinOp,
    device: &str,
    event_id: &str,
    now_ms: i64,
    refusal: &TwinRefusal,
) -> Outgoing {
    json_message(
        op.result_topic(device),
        &ResultMessage {
            event_id: event_id.to_string(),
            timestamp: now_ms,
            code: refusal.code,
            reason: refusal.reason.clone(),
        },
    )
}

/// Decodes a `state/update`.
pub fn decode_state_update(payload: &[u8]) -> Result<StateUpdate, TwinRefusal> {
    if payload.len() > TWIN_PAYLOAD_BYTES_MAX {
        return Err(TwinRefusal::new(code::BAD_REQUEST, "message too large"));
    }
    let update: StateUpdate = serde_json::from_slice(payload).map_err(|e| {
        TwinRefusal::new(
            code::BAD_REQUEST,
            format!("Unmarshal state update failed: {e}"),
        )
    })?;
    if update.state.is_empty() || !valid_value(&update.state) || update.state.len() > 64 {
        return Err(TwinRefusal::new(
            code::BAD_REQUEST,
            "state is empty or has characters KubeEdge refuses",
        ));
    }
    Ok(update)
}

/// The answer to an accepted `state/update` (KubeEdge's `BuildDeviceState`).
pub fn state_result(
    device: &str,
    state: &str,
    last_online: &str,
    event_id: String,
    now_ms: i64,
) -> Outgoing {
    json_message(
        TwinOp::StateUpdate.result_topic(device),
        &DeviceStateMessage {
            event_id,
            timestamp: now_ms,
            device: DeviceState {
                name: device.to_string(),
                state: state.to_string(),
                last_online: last_online.to_string(),
            },
        },
    )
}

fn json_message(topic: String, body: &impl Serialize) -> Outgoing {
    Outgoing {
        topic,
        payload: serde_json::to_vec(body).unwrap_or_default(),
        retain: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    const NOW: i64 = 1_780_000_000_123;

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("aloft-{n}")
        }
    }

    fn sampler() -> SensorView {
        SensorView {
            name: "sampler".into(),
            status: "running".into(),
            settings: BTreeMap::from([(
                "enabled".to_string(),
                Setting {
                    desired: Some("true".into()),
                    in_force: Some("true".into()),
                    kind: "boolean",
                },
            )]),
            observed: vec![Observed {
                quantity: "ozone".into(),
                value: 4e-8,
                utc_ms: Some(NOW - 1000),
            }],
            reportable: vec!["ozone".into(), "air_temperature".into()],
        }
    }

    fn gps() -> SensorView {
        SensorView {
            name: "gps".into(),
            status: "degraded".into(),
            settings: BTreeMap::from([(
                "tunable.dynamic_model".to_string(),
                Setting {
                    desired: Some("airborne2g".into()),
                    in_force: Some("portable".into()),
                    kind: "string",
                },
            )]),
            observed: vec![],
            reportable: vec![],
        }
    }

    fn json_of(o: &Outgoing) -> Value {
        serde_json::from_slice(&o.payload).unwrap()
    }

    #[test]
    fn topics_name_the_device_and_the_operation() {
        assert_eq!(
            parse_topic("$hw/events/device/gps/twin/update"),
            Some(("gps", TwinOp::Update))
        );
        assert_eq!(
            parse_topic("$hw/events/device/gps/twin/get"),
            Some(("gps", TwinOp::Get))
        );
        assert_eq!(
            parse_topic("$hw/events/device/gps/state/update"),
            Some(("gps", TwinOp::StateUpdate))
        );
        assert_eq!(
            parse_topic("$hw/events/device/gps/twin/update/result"),
            None
        );
        assert_eq!(parse_topic("$hw/events/device//twin/update"), None);
        assert_eq!(parse_topic("$hw/events/device/a/b/twin/get"), None);
        assert_eq!(TwinOp::Update.filter(), "$hw/events/device/+/twin/update");
        assert_eq!(
            TwinOp::Get.result_topic("gps"),
            "$hw/events/device/gps/twin/get/result"
        );
    }

    #[test]
    fn a_get_answers_the_whole_twin_in_kubeedges_format() {
        let out = get_result(&sampler(), "e-1", NOW);
        assert_eq!(out.topic, "$hw/events/device/sampler/twin/get/result");
        assert_eq!(
            json_of(&out),
            json!({
                "event_id": "e-1",
                "timestamp": NOW,
                "twin": {
                    "enabled": {
                        "expected": {"value": "true"},
                        "actual": {"value": "true"},
                        "optional": true,
                        "metadata": {"type": "boolean"}
                    },
                    "ozone": {
                        "actual": {"value": "0.00000004", "metadata": {"timestamp": NOW - 1000}},
                        "optional": true,
                        "metadata": {"type": "float"}
                    },
                    "status": {
                        "actual": {"value": "running"},
                        "optional": false,
                        "metadata": {"type": "string"}
                    }
                }
            })
        );
    }

    #[test]
    fn a_reported_value_is_taken_and_answered_with_result_and_document() {
        let view = sampler();
        let request = json!({
            "event_id": "req-7",
            "timestamp": NOW,
            "twin": {"ozone": {"actual": {"value": "5.5e-8", "metadata": {"timestamp": NOW - 10}},
                               "metadata": {"type": "float"}}}
        });
        let (msg, reported) = decode_update(request.to_string().as_bytes(), &view).unwrap();
        assert_eq!(msg.event_id, "req-7");
        assert_eq!(
            reported,
            [Reported {
                key: "ozone".into(),
                value: 5.5e-8,
                timestamp_ms: Some(NOW - 10)
            }]
        );
        let out = update_accepted(&view, &reported, &msg.event_id, NOW, &mut ids());
        assert_eq!(out.len(), 2, "no delta: every desired value is in force");
        assert_eq!(out[0].topic, "$hw/events/device/sampler/twin/update/result");
        assert_eq!(
            json_of(&out[0]),
            json!({
                "event_id": "req-7",
                "timestamp": NOW,
                "twin": {"ozone": {
                    "actual": {"value": "0.000000055", "metadata": {"timestamp": NOW - 10}},
                    "optional": true,
                    "metadata": {"type": "float"}
                }}
            })
        );
        assert_eq!(
            out[1].topic,
            "$hw/events/device/sampler/twin/update/document"
        );
        assert_eq!(
            json_of(&out[1]),
            json!({
                "event_id": "aloft-1",
                "timestamp": NOW,
                "twin": {"ozone": {
                    "last": {
                        "actual": {"value": "0.00000004", "metadata": {"timestamp": NOW - 1000}},
                        "optional": true,
                        "metadata": {"type": "float"}
                    },
                    "current": {
                        "actual": {"value": "0.000000055", "metadata": {"timestamp": NOW - 10}},
                        "optional": true,
                        "metadata": {"type": "float"}
                    }
                }}
            })
        );
    }

    #[test]
    fn a_desired_value_from_the_bus_is_refused_with_403() {
        let request = json!({"event_id": "x", "timestamp": 1,
            "twin": {"enabled": {"expected": {"value": "false"}}}});
        let e = decode_update(request.to_string().as_bytes(), &sampler()).unwrap_err();
        assert_eq!(e.code, code::FORBIDDEN);
        assert!(e.reason.contains("hub"), "{}", e.reason);
        let out = refused(TwinOp::Update, "sampler", "x", NOW, &e);
        assert_eq!(out.topic, "$hw/events/device/sampler/twin/update/result");
        assert_eq!(
            json_of(&out),
            json!({"event_id": "x", "timestamp": NOW, "code": 403, "reason": e.reason})
        );
    }

    #[test]
    fn reported_values_are_refused_for_a_sensor_the_agent_reads_itself() {
        let request = json!({"event_id": "x", "twin": {"latitude": {"actual": {"value": "1"}}}});
        let e = decode_update(request.to_string().as_bytes(), &gps()).unwrap_err();
        assert_eq!(e.code, code::FORBIDDEN);
    }

    #[test]
    fn malformed_updates_are_refused_with_400_as_kubeedge_does() {
        let view = sampler();
        for payload in [
            "nope".to_string(),
            json!({"event_id": "x"}).to_string(),
            json!({"twin": {"bad key!": {"actual": {"value": "1"}}}}).to_string(),
            json!({"twin": {"ozone": {"actual": {"value": "1 2"}}}}).to_string(),
            json!({"twin": {"ozone": {"actual": {"value": "abc"}}}}).to_string(),
            json!({"twin": {"co2": {"actual": {"value": "1"}}}}).to_string(),
        ] {
            let e = decode_update(payload.as_bytes(), &view).unwrap_err();
            assert_eq!(e.code, code::BAD_REQUEST, "{payload}: {e}");
        }
    }

    #[test]
    fn a_desired_value_not_in_force_is_a_delta() {
        let delta = delta_of(&gps(), NOW, &mut ids()).unwrap();
        let v = serde_json::to_value(&delta).unwrap();
        assert_eq!(
            v,
            json!({
                "event_id": "aloft-1",
                "timestamp": NOW,
                "twin": {"tunable.dynamic_model": {
                    "expected": {"value": "airborne2g"},
                    "actual": {"value": "portable"},
                    "optional": true,
                    "metadata": {"type": "string"}
                }},
                "delta": {"tunable.dynamic_model": "airborne2g"}
            })
        );
        assert!(delta_of(&sampler(), NOW, &mut ids()).is_none());
    }

    #[test]
    fn a_state_update_is_answered_with_the_device_state() {
        let u =
            decode_state_update(br#"{"event_id":"s1","timestamp":5,"state":"online"}"#).unwrap();
        assert_eq!(u.state, "online");
        let out = state_result("sampler", &u.state, "", "aloft-9".into(), NOW);
        assert_eq!(out.topic, "$hw/events/device/sampler/state/update/result");
        assert_eq!(
            json_of(&out),
            json!({"event_id": "aloft-9", "timestamp": NOW,
                   "device": {"name": "sampler", "state": "online"}})
        );
        assert!(decode_state_update(b"{}").is_err());
        assert!(decode_state_update(br#"{"state":"on line"}"#).is_err());
    }

    #[test]
    fn the_event_id_of_a_refused_request_is_still_echoed() {
        assert_eq!(event_id_of(br#"{"event_id":"abc","twin":7}"#), "abc");
        assert_eq!(event_id_of(br#"{"event_id":"abc"}"#), "abc");
        assert_eq!(event_id_of(b"\xff"), "");
    }

    #[test]
    fn values_read_back_exactly() {
        for v in [0.0, -1.5, 4e-8, 1e300, 101325.0, f64::MIN_POSITIVE] {
            assert_eq!(value_text(v).parse::<f64>().unwrap(), v);
        }
        assert_eq!(value_text(101325.0), "101325");
    }

    proptest! {
        #[test]
        fn arbitrary_update_payloads_never_panic_and_refusals_have_a_reason(
            payload in prop::collection::vec(any::<u8>(), 0..300)
        ) {
            if let Err(e) = decode_update(&payload, &sampler()) {
                prop_assert!(!e.reason.is_empty());
            }
            let _ = decode_state_update(&payload);
            let _ = event_id_of(&payload);
        }

        #[test]
        fn arbitrary_twins_never_panic(
            keys in prop::collection::btree_map("\\PC{0,140}", ("\\PC{0,20}", any::<bool>()), 0..5)
        ) {
            let twin: serde_json::Map<String, Value> = keys
                .into_iter()
                .map(|(k, (v, expected))| {
                    let side = if expected { "expected" } else { "actual" };
                    (k, json!({ side: {"value": v} }))
                })
                .collect();
            let payload = json!({"event_id": "p", "twin": twin}).to_string();
            match decode_update(payload.as_bytes(), &sampler()) {
                Ok((_, reported)) => {
                    for r in reported {
                        prop_assert!(r.value.is_finite());
                        prop_assert!(sampler().reportable.contains(&r.key));
                    }
                }
                Err(e) => prop_assert!(!e.reason.is_empty()),
            }
        }
    }
}
