//! The KubeEdge-style JSON message the sync benchmarks compare the codec with: beehive's
//! header / route / content with a device-twin body, one per record.

#[path = "../benches/common/kubeedge.rs"]
mod kubeedge;

use aloft_protocol::{
    Gap, GapReason, Quality, Quantity, Reading, Record, SensorId, TimeSource, Timestamp,
};
use kubeedge::kubeedge_json_message;

#[test]
fn a_kubeedge_message_has_header_route_and_content() {
    let record = Record::Reading(Reading {
        sensor: SensorId(2),
        quantity: Quantity::AirPressure,
        time: Timestamp::with_utc(5, 1_780_000_000_123_456_789, TimeSource::Gnss),
        value: 19_400.25,
        quality: Quality::SIMULATED,
    });
    let text = kubeedge_json_message("glider-1", &record);
    let message: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(message["header"]["timestamp"], 1_780_000_000_123_i64);
    assert_eq!(message["header"]["msg_id"].as_str().map(str::len), Some(36));
    assert_eq!(message["route"]["group"], "twin");
    assert_eq!(
        message["route"]["resource"],
        "$hw/events/device/glider-1-sensor-2/twin/update"
    );
    let twin = &message["content"]["twin"]["air_pressure"];
    assert_eq!(twin["actual"]["value"], "19400.25");
    assert_eq!(twin["metadata"]["unit"], "Pa");
    // Other records travel too (as their JSON), so every record has a message.
    let gap = kubeedge_json_message(
        "glider-1",
        &Record::Gap(Gap {
            reason: GapReason::Crash,
            covers: None,
            readings: None,
            sensor: None,
            span: None,
        }),
    );
    let gap: serde_json::Value = serde_json::from_str(&gap).unwrap();
    assert_eq!(gap["content"]["twin"]["record"]["Gap"]["reason"], "Crash");
}
