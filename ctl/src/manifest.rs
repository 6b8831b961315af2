//! Files for `apply -f` and `diff -f`: YAML documents of desired sensor state.
//!
//! ```yaml
//! apiVersion: aloft.dev/v1
//! kind: Sensor
//! metadata:
//!   name: cosmic-ray
//!   node: glider
//! spec:
//!   interval: 500ms    # or intervalMs: 500
//!   enabled: true
//!   tunables:          # driver settings the sensor's kind declares
//!     pressure_oversampling: 16
//!   powerOverride: true  # exempt from the node's power steps
//! ```
//!
//! Several documents are separated by `---`. A field left out is not desired: the node's
//! config file decides it (invariant 5: the file owns the hardware, the hub only what is
//! safe to change). Every problem names the document and, where the parser knows it, the
//! line, so an operator can fix the file without guessing. Nothing is sent unless the whole
//! file is valid.

use std::time::Duration;

use aloft_api::Tunables;
use serde::Deserialize;
use serde_json::{Value, json};

/// The only apiVersion this build knows.
pub const API_VERSION: &str = aloft_api::API_VERSION;

/// Why a file cannot be applied.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ManifestError {
    /// Not YAML of the expected shape.
    #[error("{file}: document {document}: {message}")]
    Malformed {
        /// The file's name.
        file: String,
        /// 1-based document number.
        document: usize,
        /// What is wrong (with line and column when known).
        message: String,
    },
    /// No document in it.
    #[error("{file}: no document in it; write at least one `kind: Sensor` document")]
    Empty {
        /// The file's name.
        file: String,
    },
}

/// One sensor's desired state, from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorManifest {
    /// The node.
    pub node: String,
    /// The sensor's name in the node's config.
    pub name: String,
    /// The desired sampling interval, ms.
    pub interval_ms: Option<u64>,
    /// Whether it should run.
    pub enabled: Option<bool>,
    /// The desired tunables (none: the node's config file decides them).
    pub tunables: Tunables,
    /// Exempt the sensor from the node's power steps.
    pub power_override: bool,
}

impl SensorManifest {
    /// The spec as the hub's API takes it (`tunables` only when there are some: a `PUT`
    /// without them clears them, as it clears any field the file leaves out).
    pub fn spec_json(&self) -> Value {
        let mut spec = json!({ "intervalMs": self.interval_ms, "enabled": self.enabled });
        if !self.tunables.is_empty() {
            spec["tunables"] = json!(self.tunables);
        }
        if self.power_override {
            spec["powerOverride"] = json!(true);
        }
        spec
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Document {
    api_version: String,
    kind: String,
    metadata: Metadata,
    #[serde(default)]
    spec: Spec,
    // Accepted so that `get sensor -o yaml` output applies as it is.
    #[serde(default)]
    #[allow(dead_code)]
    status: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    name: String,
    node: String,
    // Kept out of `deny_unknown_fields` so the hub's own metadata (generation, uid, ...)
    // in a file written from `get -o yaml` is not an error.
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Spec {
    interval: Option<String>,
    interval_ms: Option<u64>,
    enabled: Option<bool>,
    #[serde(default)]
    tunables: Tunables,
    power_override: Option<bool>,
}

/// Parses every document of a file; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Vec<SensorManifest>, ManifestError> {
    let mut sensors = Vec::new();
    for (index, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let number = index + 1;
        let malformed = |message: String| ManifestError::Malformed {
            file: file.to_owned(),
            document: number,
            message,
        };
        let value =
            serde_norway::Value::deserialize(document).map_err(|e| malformed(e.to_string()))?;
        if value.is_null() {
            // An empty document (a trailing `---`).
            continue;
        }
        let doc: Document =
            serde_norway::from_value(value).map_err(|e| malformed(e.to_string()))?;
        if doc.api_version != API_VERSION {
            return Err(malformed(format!(
                "apiVersion `{}` is not known; write `apiVersion: {API_VERSION}`",
                doc.api_version
            )));
        }
        if doc.kind != "Sensor" {
            return Err(malformed(format!(
                "kind `{}` cannot be applied; only `kind: Sensor` (desired sensor state) can",
                doc.kind
            )));
        }
        if doc.metadata.name.trim().is_empty() || doc.metadata.node.trim().is_empty() {
            return Err(malformed(
                "metadata.name (the sensor) and metadata.node must not be empty".into(),
            ));
        }
        let interval_ms = match (&doc.spec.interval, doc.spec.interval_ms) {
            (Some(_), Some(_)) => {
                return Err(malformed(
                    "spec has both interval and intervalMs; keep one".into(),
                ));
            }
            (Some(text), None) => Some(interval(text).map_err(malformed)?),
            (None, ms) => ms,
        };
        if interval_ms == Some(0) {
            return Err(malformed("spec.interval must be more than 0".into()));
        }
        sensors.push(SensorManifest {
            node: doc.metadata.node,
            name: doc.metadata.name,
            interval_ms,
            enabled: doc.spec.enabled,
            tunables: doc.spec.tunables,
            power_override: doc.spec.power_override.unwrap_or(false),
        });
    }
    if sensors.is_empty() {
        return Err(ManifestError::Empty {
            file: file.to_owned(),
        });
    }
    Ok(sensors)
}

fn interval(text: &str) -> Result<u64, String> {
    let duration: Duration = humantime::parse_duration(text).map_err(|e| {
        format!("spec.interval `{text}` is not a duration ({e}); write e.g. 100ms or 2s")
    })?;
    u64::try_from(duration.as_millis()).map_err(|_| format!("spec.interval `{text}` is too long"))
}

/// The lines `diff` prints for one sensor: `-` what the hub has, `+` what the file wants;
/// empty when nothing would change.
pub fn diff_lines(manifest: &SensorManifest, current_spec: Option<&Value>) -> Vec<String> {
    let field = |name: &str| -> Value {
        current_spec
            .and_then(|spec| spec.get(name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let wanted = manifest.spec_json();
    let mut lines = Vec::new();
    for name in ["intervalMs", "enabled", "powerOverride"] {
        let have = field(name);
        let want = wanted.get(name).cloned().unwrap_or(Value::Null);
        if have != want {
            let show = |v: &Value| {
                if v.is_null() {
                    "<unset>".to_owned()
                } else {
                    v.to_string()
                }
            };
            lines.push(format!("-  {name}: {}", show(&have)));
            lines.push(format!("+  {name}: {}", show(&want)));
        }
    }
    let have = field("tunables");
    let empty = serde_json::Map::new();
    let have = have.as_object().unwrap_or(&empty);
    let want = wanted
        .get("tunables")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let keys: std::collections::BTreeSet<&String> = have.keys().chain(want.keys()).collect();
    for key in keys {
        let (h, w) = (have.get(key), want.get(key));
        if h != w {
            let show = |v: Option<&Value>| v.map_or("<unset>".to_owned(), Value::to_string);
            lines.push(format!("-  tunables.{key}: {}", show(h)));
            lines.push(format!("+  tunables.{key}: {}", show(w)));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_documents_with_both_interval_spellings_parse() {
        let text = "apiVersion: aloft.dev/v1\nkind: Sensor\nmetadata: {name: cosmic-ray, node: glider}\nspec: {interval: 500ms, enabled: true}\n---\napiVersion: aloft.dev/v1\nkind: Sensor\nmetadata: {name: gps, node: glider}\nspec: {intervalMs: 200}\n---\n";
        assert_eq!(
            parse("f.yaml", text),
            Ok(vec![
                SensorManifest {
                    node: "glider".into(),
                    name: "cosmic-ray".into(),
                    interval_ms: Some(500),
                    enabled: Some(true),
                    tunables: Default::default(),
                    power_override: false,
                },
                SensorManifest {
                    node: "glider".into(),
                    name: "gps".into(),
                    interval_ms: Some(200),
                    enabled: None,
                    tunables: Default::default(),
                    power_override: false,
                },
            ])
        );
    }

    #[test]
    fn malformed_yaml_names_the_document_and_line() {
        let text = "apiVersion: aloft.dev/v1\nkind: Sensor\nmetadata: {name: gps, node: glider}\n---\nkind: [Sensor\n";
        let err = parse("f.yaml", text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("f.yaml: document 2:"), "{err}");
        assert!(err.contains("line"), "{err}");
    }

    #[test]
    fn a_misspelt_field_is_refused_not_ignored() {
        let text = "apiVersion: aloft.dev/v1\nkind: Sensor\nmetadata: {name: gps, node: glider}\nspec: {intervall: 5s}\n";
        let err = parse("f.yaml", text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("unknown field `intervall`"), "{err}");
    }

    #[test]
    fn wrong_kind_version_and_bad_interval_say_what_to_write() {
        let base = |api: &str, kind: &str, spec: &str| {
            format!(
                "apiVersion: {api}\nkind: {kind}\nmetadata: {{name: gps, node: glider}}\nspec: {spec}\n"
            )
        };
        let cases = [
            (
                base("v1", "Sensor", "{}"),
                "write `apiVersion: aloft.dev/v1`",
            ),
            (base(API_VERSION, "Node", "{}"), "only `kind: Sensor`"),
            (
                base(API_VERSION, "Sensor", "{interval: fast}"),
                "write e.g. 100ms",
            ),
            (base(API_VERSION, "Sensor", "{interval: 0s}"), "more than 0"),
        ];
        for (text, expected) in cases {
            let err = parse("f", &text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(expected), "{err}");
        }
        assert_eq!(
            parse("f", "\n"),
            Err(ManifestError::Empty { file: "f".into() })
        );
    }

    #[test]
    fn diff_shows_only_changed_fields() {
        let manifest = SensorManifest {
            node: "glider".into(),
            name: "gps".into(),
            interval_ms: Some(200),
            enabled: Some(true),
            tunables: Default::default(),
            power_override: false,
        };
        let current = json!({"intervalMs": 1000, "enabled": true});
        assert_eq!(
            diff_lines(&manifest, Some(&current)),
            vec![
                "-  intervalMs: 1000".to_owned(),
                "+  intervalMs: 200".to_owned()
            ]
        );
        assert!(
            diff_lines(
                &manifest,
                Some(&json!({"intervalMs": 200, "enabled": true}))
            )
            .is_empty()
        );
        assert_eq!(diff_lines(&manifest, None).len(), 4);
    }

    #[test]
    fn a_power_override_in_a_file_is_sent_and_diffed_and_left_out_when_not_wanted() {
        let text = "apiVersion: aloft.dev/v1\nkind: Sensor\nmetadata: {name: gps, node: glider}\nspec: {powerOverride: true}\n---\napiVersion: aloft.dev/v1\nkind: Sensor\nmetadata: {name: pitot, node: glider}\nspec: {intervalMs: 200, powerOverride: false}\n";
        let sensors = parse("f", text).unwrap();
        assert!(sensors[0].power_override);
        assert_eq!(sensors[0].spec_json()["powerOverride"], json!(true));
        // `false` is no exemption: left out of the PUT, which clears one the hub holds.
        assert!(!sensors[1].power_override);
        assert_eq!(sensors[1].spec_json().get("powerOverride"), None);
        assert_eq!(
            diff_lines(&sensors[0], Some(&json!({"powerOverride": true}))),
            Vec::<String>::new()
        );
        assert_eq!(
            diff_lines(
                &sensors[1],
                Some(&json!({"intervalMs": 200, "powerOverride": true}))
            ),
            vec![
                "-  powerOverride: true".to_owned(),
                "+  powerOverride: <unset>".to_owned()
            ]
        );
        assert!(
            parse(
                "f",
                &text.replace("powerOverride: true", "powerOverride: maybe")
            )
            .is_err()
        );
    }

    #[test]
    fn tunables_of_a_file_are_sent_and_diffed_key_by_key() {
        let text = "apiVersion: aloft.dev/v1\nkind: Sensor\nmetadata: {name: outside-air, node: glider}\n\
                    spec:\n  tunables:\n    pressure_oversampling: 16\n    humidity_oversampling: 2\n";
        let parsed = parse("t.yaml", text).unwrap();
        let spec = parsed[0].spec_json();
        assert_eq!(
            spec["tunables"],
            json!({"humidity_oversampling": 2, "pressure_oversampling": 16})
        );
        let current = json!({"intervalMs": null, "enabled": null,
                             "tunables": {"pressure_oversampling": 4, "dynamic_model": "sea"}});
        assert_eq!(
            diff_lines(&parsed[0], Some(&current)),
            vec![
                "-  tunables.dynamic_model: \"sea\"",
                "+  tunables.dynamic_model: <unset>",
                "-  tunables.humidity_oversampling: <unset>",
                "+  tunables.humidity_oversampling: 2",
                "-  tunables.pressure_oversampling: 4",
                "+  tunables.pressure_oversampling: 16",
            ]
        );
        // A file without tunables sends none: the PUT clears what the hub had.
        let plain = parse("p.yaml", "apiVersion: aloft.dev/v1\nkind: Sensor\nmetadata: {name: s, node: g}\nspec: {enabled: true}\n").unwrap();
        assert!(plain[0].spec_json().get("tunables").is_none());
        let refused = parse(
            "f.yaml",
            "apiVersion: aloft.dev/v1\nkind: Sensor\nmetadata: {name: s, node: g}\nspec:\n  tunables: {a: 1.5}\n",
        );
        assert!(
            matches!(refused, Err(ManifestError::Malformed { .. })),
            "{refused:?}"
        );
    }
}
