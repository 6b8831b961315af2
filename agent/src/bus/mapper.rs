//! What a KubeEdge mapper's MQTT push method publishes, as values of a declared `mqtt`
//! sensor's quantity (its config names the push topic, `mapper_topic`, and the quantity,
//! `mapper_quantity`).
//!
//! The mapper framework's MQTT push (mapper-framework `data/publish/mqtt`) publishes one
//! text message per collected value to its configured topic:
//! `time is 2006-01-02 15:04:05  <topic>: <value>`, the time in the mapper's local zone at
//! whole seconds. That time names no zone, so it is not used: the value is stamped on
//! arrival, a fraction of a second later. Mappers that push JSON instead
//! (`{"name": "...", "value": 21.5, "timestamp": <ms since the epoch>}`) keep their time.
//!
//! Pure logic, no I/O; nothing panics on any payload, and a refusal says why.

use serde::Deserialize;

/// The largest push taken, bytes: one value with its time and topic.
pub const PUSH_BYTES_MAX: usize = 4 * 1024;

/// One pushed value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PushedValue {
    /// The value.
    pub value: f64,
    /// When the mapper collected it, ms since the Unix epoch, if it said so with a zone.
    pub timestamp_ms: Option<i64>,
}

/// Why a push was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// Larger than [`PUSH_BYTES_MAX`].
    #[error("push of {0} bytes, at most {PUSH_BYTES_MAX}")]
    Oversized(usize),
    /// Neither of the push formats.
    #[error("not a mapper push: {0}")]
    Malformed(String),
    /// The value is not a finite number.
    #[error("value {0:?} is not a finite number")]
    NotANumber(String),
}

#[derive(Deserialize)]
struct JsonPush {
    value: serde_json::Value,
    #[serde(default)]
    timestamp: Option<i64>,
}

/// Decodes one push.
pub fn decode_push(payload: &[u8]) -> Result<PushedValue, PushError> {
    if payload.len() > PUSH_BYTES_MAX {
        return Err(PushError::Oversized(payload.len()));
    }
    let text = std::str::from_utf8(payload)
        .map_err(|_| PushError::Malformed("not UTF-8".into()))?
        .trim();
    if text.starts_with('{') {
        let push: JsonPush =
            serde_json::from_str(text).map_err(|e| PushError::Malformed(e.to_string()))?;
        let value = match &push.value {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| PushError::NotANumber(shorten(&push.value.to_string())))?;
        return Ok(PushedValue {
            value,
            timestamp_ms: push.timestamp.filter(|t| *t > 0),
        });
    }
    let rest = text
        .strip_prefix("time is ")
        .ok_or_else(|| PushError::Malformed("expected `time is ...` or a JSON object".into()))?;
    let (_, value) = rest
        .rsplit_once(": ")
        .ok_or_else(|| PushError::Malformed("no `<topic>: <value>`".into()))?;
    let value = value.trim();
    let number = value
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| PushError::NotANumber(shorten(value)))?;
    Ok(PushedValue {
        value: number,
        timestamp_ms: None,
    })
}

fn shorten(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_frameworks_text_push_gives_its_value_stamped_on_arrival() {
        let v = decode_push(b"time is 2026-12-07 22:10:05  ke/sampler/ozone: 4.5e-8").unwrap();
        assert_eq!(
            v,
            PushedValue {
                value: 4.5e-8,
                timestamp_ms: None
            }
        );
        // A topic with `: ` in it: the value is after the last one.
        let v = decode_push(b"time is 2026-12-07 22:10:05  a: b: 12\n").unwrap();
        assert_eq!(v.value, 12.0);
    }

    #[test]
    fn a_json_push_keeps_its_time() {
        let v =
            decode_push(br#"{"name":"sampler/ozone","value":"3.25","timestamp":1780000000000}"#)
                .unwrap();
        assert_eq!(v.value, 3.25);
        assert_eq!(v.timestamp_ms, Some(1_780_000_000_000));
        let v = decode_push(br#"{"value":7}"#).unwrap();
        assert_eq!(v.value, 7.0);
        assert_eq!(v.timestamp_ms, None);
    }

    #[test]
    fn what_is_not_a_number_is_refused() {
        for bad in [
            &b"time is 2026-12-07 22:10:05  t: on"[..],
            b"time is 2026-12-07 22:10:05  t: NaN",
            b"time is 2026-12-07 22:10:05  t: inf",
            br#"{"value":null}"#,
            br#"{"value":"x"}"#,
        ] {
            assert!(
                matches!(decode_push(bad), Err(PushError::NotANumber(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(matches!(decode_push(b"23.5"), Err(PushError::Malformed(_))));
        assert!(matches!(
            decode_push(&[b' '; PUSH_BYTES_MAX + 1]),
            Err(PushError::Oversized(_))
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_pushes_never_panic(payload in prop::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(v) = decode_push(&payload) {
                prop_assert!(v.value.is_finite());
            }
        }

        #[test]
        fn text_pushes_read_back_their_value(value in -1e12f64..1e12, topic in "[a-z/]{1,20}") {
            let text = format!("time is 2026-01-01 00:00:00  {topic}: {value}");
            prop_assert_eq!(decode_push(text.as_bytes()).unwrap().value, value);
        }
    }
}
