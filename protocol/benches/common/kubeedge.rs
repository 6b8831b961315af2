//! The comparison the sync benchmarks print beside the codec's figures: the same records as
//! KubeEdge-style JSON messages, one message per reading. It is a measuring stick, not part
//! of the protocol, so it lives with the benchmarks and keeps `serde_json` out of the wire
//! crate. Included by path from `protocol/benches/batch.rs` (the codec's estimate),
//! `tests/benches/sync.rs` (the same messages over a real link) and
//! `protocol/tests/kubeedge_comparison.rs` (its shape).
//!
//! Message ids are derived from the record (UUID-shaped, as KubeEdge's v4 UUIDs), so the
//! comparison is reproducible.

use aloft_protocol::{Record, Timestamp};

/// One record as the JSON message a KubeEdge edge node would send for it: beehive's
/// `model.Message` (`header` with a message id and a millisecond timestamp, `route` with
/// source, group, operation and resource) whose `content` is a device-twin update
/// (`event_id`, `timestamp`, `twin` with the quantity's `actual` value as a string and its
/// metadata). One message per reading, as the twin and eventbus topics carry them. Used
/// for `sync.json_bytes_per_reading`, not by the protocol.
pub fn kubeedge_json_message(node: &str, record: &Record) -> String {
    let (device, millis, twin) = match record {
        Record::Reading(r) => {
            let millis = reading_millis(&r.time);
            let value = if r.value.is_finite() {
                format!("{}", r.value)
            } else {
                format!("{:?}", r.value)
            };
            let twin = serde_json::json!({
                (r.quantity.to_string()): {
                    "actual": {
                        "value": value,
                        "metadata": { "timestamp": millis },
                    },
                    "metadata": {
                        "type": "double",
                        "unit": r.quantity.unit(),
                        "quality": r.quality.bits(),
                        "mono_ns": r.time.mono_ns,
                    },
                }
            });
            (format!("sensor-{}", r.sensor.0), millis, twin)
        }
        other => (
            "agent".into(),
            0,
            serde_json::json!({ "record": serde_json::to_value(other).unwrap_or_default() }),
        ),
    };
    let message = serde_json::json!({
        "header": {
            "msg_id": message_id(node, record),
            "parent_msg_id": "",
            "timestamp": millis,
            "sync": false,
        },
        "route": {
            "source": "eventbus",
            "group": "twin",
            "operation": "update",
            "resource": format!("$hw/events/device/{node}-{device}/twin/update"),
        },
        "content": {
            "event_id": message_id(node, record),
            "timestamp": millis,
            "twin": twin,
        },
    });
    message.to_string()
}

fn reading_millis(time: &Timestamp) -> i64 {
    time.utc_ns
        .map_or((time.mono_ns / 1_000_000) as i64, |u| u / 1_000_000)
}

/// A UUID-shaped id (KubeEdge uses v4 UUIDs: 36 characters), derived from the record so
/// that the comparison is reproducible.
fn message_id(node: &str, record: &Record) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut mix = |bytes: &[u8]| {
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    mix(node.as_bytes());
    if let Record::Reading(r) = record {
        mix(&r.time.mono_ns.to_le_bytes());
        mix(&r.value.to_bits().to_le_bytes());
        mix(&r.sensor.0.to_le_bytes());
    }
    let a = h;
    let b = h.rotate_left(29) ^ 0x9E37_79B9_7F4A_7C15;
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xFFFF,
        a & 0xFFF,
        0x8000 | ((b >> 48) & 0x3FFF),
        b & 0xFFFF_FFFF_FFFF
    )
}
