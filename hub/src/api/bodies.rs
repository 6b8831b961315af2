//! The JSON request bodies the API reads (a command, a sensor's spec, a token, a node),
//! parsed from bytes by one function, [`parse`]. The handlers reach it through the
//! [`JsonBody`] extractor and the `api_bodies` fuzz target calls it directly, so what is
//! fuzzed is what is served.
//!
//! Invariants:
//! - A body is parsed as axum's `Json` extractor parses one (serde_json over the buffered
//!   bytes, nothing but whitespace after the value), with the same error messages, and
//!   only if it is UTF-8 throughout (serde_json alone lets invalid bytes through in the
//!   strings of fields it skips).
//! - Outside input costs bounded memory and stack: the request body is buffered under the
//!   router's body limit (axum's default, 2 MB) before it is parsed, serde_json allocates
//!   only for what it has read, it refuses values nested deeper than 128 levels, and it
//!   skips an unknown field's value, however deep, with a loop instead of recursion.
//! - A body is only read with a JSON content type (`application/json`, `application/*+json`).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::ApiError;

/// The body of a command: the type clients build it with.
pub use aloft_api::CommandRequest as CommandBody;

/// The body of a spec write.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpecBody {
    /// Sampling interval, ms.
    pub interval_ms: Option<u32>,
    /// Whether the sensor runs.
    pub enabled: Option<bool>,
    /// Tunables to set; in a `PATCH`, `null` removes a key.
    pub tunables: Option<BTreeMap<String, Option<aloft_api::TunableValue>>>,
    /// Exempt the sensor from the node's power steps (`false` clears it).
    pub power_override: Option<bool>,
}

/// The body of a token: the type clients build it with.
pub use aloft_api::TokenRequest as TokenBody;

/// The body of a node: the type clients build it with.
pub use aloft_api::NodeRequest as NodeBody;

/// A request body parsed by [`parse`]: the extractor of every handler that reads JSON.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

/// Why a body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyRejection {
    /// The request does not say its body is JSON.
    #[error("Expected request with `Content-Type: application/json`")]
    NotJson,
    /// The body could not be buffered (too large, or the connection failed).
    #[error(transparent)]
    Unreadable(#[from] BytesRejection),
    /// The body is not UTF-8, which JSON must be (RFC 8259 section 8.1). serde_json
    /// checks only the strings it keeps: an unknown field's value would pass unchecked.
    #[error("the body is not UTF-8, as JSON must be: {0}")]
    NotUtf8(#[from] std::str::Utf8Error),
    /// The body is not valid JSON of the expected shape.
    #[error(transparent)]
    Invalid(#[from] JsonRejection),
}

/// A `Status` object, for a handler that takes the body without looking at the rejection.
impl IntoResponse for BodyRejection {
    fn into_response(self) -> Response {
        let (status, reason) = match &self {
            BodyRejection::NotJson => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType"),
            BodyRejection::Unreadable(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                (StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge")
            }
            BodyRejection::Unreadable(_)
            | BodyRejection::NotUtf8(_)
            | BodyRejection::Invalid(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
        };
        ApiError::new(status, reason, self.to_string()).into_response()
    }
}

/// Parses one body: what every handler that reads JSON runs on the bytes it received.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyRejection> {
    std::str::from_utf8(bytes)?;
    axum::Json::<T>::from_bytes(bytes)
        .map(|axum::Json(value)| value)
        .map_err(BodyRejection::Invalid)
}

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = BodyRejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(request.headers()) {
            return Err(BodyRejection::NotJson);
        }
        let bytes = Bytes::from_request(request, state).await?;
        parse(&bytes).map(JsonBody)
    }
}

/// `application/json`, or any `application/*+json`, with or without parameters; the
/// type and subtype compare case-insensitively (RFC 9110 section 8.3.1).
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let subtype = subtype.to_ascii_lowercase();
    kind.eq_ignore_ascii_case("application") && (subtype == "json" || subtype.ends_with("+json"))
}

/// Body of the `api_bodies` fuzz target (kept in the library so that the committed corpus
/// replays as a unit test): `data` is parsed as every body type the API reads. Checks: no
/// panic, and whatever parses as a body is valid JSON whose fields say what the body took
/// from it (the typed parse neither accepts what is not JSON nor invents a value).
pub fn fuzz_every_body(data: &[u8]) {
    use serde_json::Value;

    let json = || match serde_json::from_slice::<Value>(data) {
        Ok(value) => value,
        Err(e) => panic!("a body parsed from bytes that are not JSON: {e}"),
    };
    if let Ok(body) = parse::<CommandBody>(data) {
        let json = json();
        let spec = &json["spec"];
        assert_eq!(spec["action"].as_str(), Some(body.spec.action.as_str()));
        assert_eq!(spec["sensor"].as_str(), Some(body.spec.sensor.as_str()));
        assert_eq!(spec["hard"].as_bool().unwrap_or(false), body.spec.hard);
        assert_eq!(spec["ttlSeconds"].as_u64(), body.spec.ttl_seconds);
    }
    if let Ok(body) = parse::<SpecBody>(data) {
        let json = json();
        assert_eq!(json["intervalMs"].as_u64(), body.interval_ms.map(u64::from));
        assert_eq!(json["enabled"].as_bool(), body.enabled);
        assert_eq!(json["powerOverride"].as_bool(), body.power_override);
    }
    if let Ok(body) = parse::<TokenBody>(data) {
        let json = json();
        assert_eq!(json["spec"]["role"].as_str(), Some(body.spec.role.as_str()));
        assert_eq!(
            json["spec"]["description"].as_str(),
            body.spec.description.as_deref()
        );
    }
    if let Ok(body) = parse::<NodeBody>(data) {
        let json = json();
        assert_eq!(
            json["metadata"]["name"].as_str(),
            Some(body.metadata.name.as_str())
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use axum::body::Body;

    use super::*;

    fn request(content_type: Option<&str>, body: &'static str) -> Request {
        let mut builder = axum::http::Request::builder().method("POST").uri("/");
        if let Some(content_type) = content_type {
            builder = builder.header(header::CONTENT_TYPE, content_type);
        }
        builder.body(Body::from(body)).expect("a valid request")
    }

    #[tokio::test]
    async fn the_extractor_reads_json_bodies_through_parse() {
        let body = r#"{"spec": {"action": "restartSensor", "sensor": "gps", "ttlSeconds": 60}}"#;
        for content_type in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
        ] {
            let JsonBody(command) =
                JsonBody::<CommandBody>::from_request(request(Some(content_type), body), &())
                    .await
                    .unwrap_or_else(|e| panic!("{content_type}: {e}"));
            assert_eq!(command.spec.sensor, "gps");
            assert_eq!(command.spec.ttl_seconds, Some(60));
        }
    }

    #[tokio::test]
    async fn a_body_without_a_json_content_type_is_refused_unread() {
        for content_type in [None, Some("text/json"), Some("text/plain"), Some("json")] {
            let refused =
                JsonBody::<SpecBody>::from_request(request(content_type, "{}"), &()).await;
            assert!(
                matches!(refused, Err(BodyRejection::NotJson)),
                "{content_type:?}"
            );
        }
    }

    #[test]
    fn tunables_are_bools_whole_numbers_text_or_null_and_nothing_else() {
        use aloft_api::TunableValue;
        let body: SpecBody =
            parse(br#"{"tunables": {"a": 16, "b": true, "c": "airborne4g", "d": null}}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        let tunables = body.tunables.unwrap_or_default();
        assert_eq!(tunables.get("a"), Some(&Some(TunableValue::Integer(16))));
        assert_eq!(tunables.get("b"), Some(&Some(TunableValue::Bool(true))));
        assert_eq!(
            tunables.get("c"),
            Some(&Some(TunableValue::Text("airborne4g".into())))
        );
        assert_eq!(tunables.get("d"), Some(&None));
        for refused in [
            &br#"{"tunables": {"a": 1.5}}"#[..],
            br#"{"tunables": {"a": [1]}}"#,
            br#"{"tunables": {"a": {"b": 1}}}"#,
            br#"{"tunables": [1, 2]}"#,
            br#"{"tunables": {"a": 99999999999999999999}}"#,
        ] {
            assert!(
                parse::<SpecBody>(refused).is_err(),
                "{}",
                String::from_utf8_lossy(refused)
            );
        }
    }

    #[test]
    fn errors_are_axums_messages() {
        let Err(e) = parse::<SpecBody>(br#"{"intervalMs": "fast"}"#) else {
            panic!("a string interval parsed");
        };
        assert!(
            e.to_string()
                .starts_with("Failed to deserialize the JSON body into the target type"),
            "{e}"
        );
        let Err(e) = parse::<SpecBody>(b"{} trailing") else {
            panic!("trailing bytes parsed");
        };
        assert!(e.to_string().contains("trailing characters"), "{e}");
    }

    #[test]
    fn a_body_that_is_not_utf8_is_refused_wherever_the_bad_byte_is() {
        let body = br#"{"metadata": {"name": "glider-2", "labels": {"a": "b"}}, "x": [1]}"#;
        assert!(parse::<NodeBody>(body).is_ok());
        // Every position, every byte that cannot appear in UTF-8 text.
        for at in 0..body.len() {
            for bad in [0x80u8, 0x91, 0xc0, 0xff] {
                let mut broken = body.to_vec();
                broken[at] = bad;
                assert!(parse::<NodeBody>(&broken).is_err(), "{bad:#x} at {at}");
            }
        }
    }

    #[test]
    fn deep_nesting_costs_no_stack() {
        // 100 000 levels would overflow the test thread's stack if parsing recursed per
        // level: a known field refuses the nesting (serde_json's recursion limit, or the
        // field's type), an unknown one is skipped with a loop.
        for depth in [127, 129, 100_000] {
            let nested = format!(
                r#"{{"spec": {{"role": "viewer", "description": {}1{}}}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            );
            assert!(parse::<TokenBody>(nested.as_bytes()).is_err());
            let unknown = format!(
                r#"{{"x": {}1{}, "spec": {{"action": "restartSensor", "sensor": "gps"}}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            );
            let parsed = parse::<CommandBody>(unknown.as_bytes())
                .unwrap_or_else(|e| panic!("depth {depth}: {e}"));
            assert_eq!(parsed.spec.sensor, "gps");
        }
    }

    // -----------------------------------------------------------------------------------
    // The committed corpus of the `api_bodies` fuzz target, replayed.

    fn corpus_dirs() -> [PathBuf; 2] {
        let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        [
            fuzz.join("corpus/api_bodies"),
            fuzz.join("regressions/api_bodies"),
        ]
    }

    #[test]
    fn api_bodies_corpus_replays_cleanly() {
        if std::env::var_os("ALOFT_WRITE_FUZZ_SEEDS").is_some() {
            let [dir, _] = corpus_dirs();
            std::fs::create_dir_all(&dir).expect("create the corpus directory");
            for (name, data) in seeds() {
                std::fs::write(dir.join(format!("seed-{name}")), data).expect("write a seed");
            }
        }
        let mut count = 0;
        for dir in corpus_dirs() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("readable corpus directory").path();
                let data = std::fs::read(&path).expect("readable corpus file");
                let result = std::panic::catch_unwind(|| fuzz_every_body(&data));
                assert!(result.is_ok(), "fuzz input {} fails", path.display());
                count += 1;
            }
        }
        // The corpus is committed: an empty one means it went missing.
        assert!(count >= 10, "only {count} inputs for api_bodies");
    }

    /// Valid bodies of every type (as aloftctl and the docs write them), near-valid ones,
    /// and hostile ones: deep nesting, huge numbers, long strings, invalid UTF-8.
    fn seeds() -> Vec<(String, Vec<u8>)> {
        let mut seeds: Vec<(String, Vec<u8>)> = [
            (
                "command",
                r#"{"spec": {"action": "restartSensor", "sensor": "gps", "hard": false, "ttlSeconds": 3600}}"#,
            ),
            (
                "command-minimal",
                r#"{"spec":{"action":"restartSensor","sensor":"static"}}"#,
            ),
            (
                "command-unknown-field",
                r#"{"spec": {"action": "restartSensor", "sensor": "gps", "force": true}}"#,
            ),
            (
                "command-ttl-overflow",
                r#"{"spec": {"action": "restartSensor", "sensor": "gps", "ttlSeconds": 18446744073709551616}}"#,
            ),
            (
                "command-negative-ttl",
                r#"{"spec": {"action": "restartSensor", "sensor": "gps", "ttlSeconds": -1}}"#,
            ),
            ("spec", r#"{"intervalMs": 500, "enabled": true}"#),
            ("spec-nulls", r#"{"intervalMs": null, "enabled": null}"#),
            ("spec-empty", "{}"),
            ("spec-interval-over-u32", r#"{"intervalMs": 4294967296}"#),
            ("spec-float-interval", r#"{"intervalMs": 1e3}"#),
            ("spec-duplicate-key", r#"{"enabled": true, "enabled": false}"#),
            (
                "token",
                r#"{"spec": {"role": "operator", "description": "ground station"}}"#,
            ),
            ("token-node-role", r#"{"spec": {"role": "node"}}"#),
            (
                "token-escapes",
                r#"{"spec": {"role": "viewer", "description": "\u001b[2J\u0000\ud83d\ude00"}}"#,
            ),
            (
                "token-lone-surrogate",
                r#"{"spec": {"role": "viewer", "description": "\ud800"}}"#,
            ),
            ("node", r#"{"metadata": {"name": "glider-2"}}"#),
            (
                "node-extra",
                r#"{"metadata": {"name": "glider-2", "labels": {"a": "b"}}, "spec": {}}"#,
            ),
            ("not-an-object", "[]"),
            ("trailing", r#"{"metadata": {"name": "g"}} {}"#),
            ("numbers", "-0.0e-400"),
        ]
        .into_iter()
        .map(|(name, text)| (name.to_owned(), text.as_bytes().to_vec()))
        .collect();
        for (name, text) in seeds.clone() {
            if text.len() > 2 {
                seeds.push((format!("{name}-cut"), text[..text.len() / 2].to_vec()));
            }
        }
        let deep = |depth: usize, open: &str, close: &str| {
            format!(
                r#"{{"spec": {{"role": "viewer", "description": "x", "x": {}0{}}}}}"#,
                open.repeat(depth),
                close.repeat(depth)
            )
        };
        seeds.push(("hostile-deep-arrays".into(), deep(100_000, "[", "]").into()));
        seeds.push((
            "hostile-deep-objects".into(),
            deep(50_000, r#"{"a":"#, "}").into(),
        ));
        seeds.push((
            "hostile-deep-unknown-field".into(),
            format!(
                r#"{{"x": {}, "spec": {{"action": "restartSensor", "sensor": "gps"}}}}"#,
                "[".repeat(200_000)
            )
            .into(),
        ));
        seeds.push((
            "hostile-long-name".into(),
            format!(r#"{{"metadata": {{"name": "{}"}}}}"#, "a".repeat(1_200_000)).into(),
        ));
        seeds.push((
            "hostile-long-escapes".into(),
            format!(
                r#"{{"spec": {{"action": "restartSensor", "sensor": "{}"}}}}"#,
                "\\u00e9".repeat(100_000)
            )
            .into(),
        ));
        seeds.push((
            "hostile-long-number".into(),
            format!(r#"{{"intervalMs": 1{}}}"#, "0".repeat(100_000)).into(),
        ));
        seeds.push((
            "hostile-invalid-utf8".into(),
            b"{\"metadata\": {\"name\": \"\xff\xfe\"}}".to_vec(),
        ));
        seeds
    }
}
