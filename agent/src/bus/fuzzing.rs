//! The fuzz target's body for what other programs publish on the bus (`fuzz/fuzz_targets/
//! bus.rs`): here, in the library, so that the committed corpus replays as a unit test.
//!
//! The first byte picks the decoder (ingest, twin update, twin get or state update, mapper
//! push); the rest is the payload. Beyond "no panic": every reading ingest takes is finite,
//! of a declared quantity and within its declared range; every reported twin value taken
//! is finite and of a reportable key; every answer is JSON that reads back.

use std::collections::BTreeMap;

use aloft_protocol::{Quantity, SensorId, TimeSource, Timestamp};

use super::ingest::{DeclaredQuantity, Ingest, IngestSensor, TokenBucket};
use super::{mapper, twin};

fn ingest() -> Ingest {
    Ingest::new(vec![IngestSensor {
        id: SensorId(0),
        name: "sampler".into(),
        quantities: vec![
            (
                "air_temperature".into(),
                DeclaredQuantity {
                    quantity: Quantity::AirTemperature,
                    min: 150.0,
                    max: 350.0,
                },
            ),
            (
                "ozone_mole_fraction".into(),
                DeclaredQuantity {
                    quantity: Quantity::OzoneMoleFraction,
                    min: 0.0,
                    max: 1e-5,
                },
            ),
        ],
        bucket: TokenBucket::new(1e9, 1e9),
        enabled: true,
    }])
}

fn view() -> twin::SensorView {
    twin::SensorView {
        name: "sampler".into(),
        status: "running".into(),
        settings: BTreeMap::from([(
            "enabled".to_string(),
            twin::Setting {
                desired: Some("true".into()),
                in_force: Some("false".into()),
                kind: "boolean",
            },
        )]),
        observed: vec![],
        reportable: vec!["air_temperature".into(), "ozone_mole_fraction".into()],
    }
}

fn reads_back(payload: &[u8]) {
    assert!(
        serde_json::from_slice::<serde_json::Value>(payload).is_ok(),
        "an answer is not JSON"
    );
}

/// One bus message: `data[0]` picks the decoder, the rest is the payload.
pub fn bus_message(data: &[u8]) {
    let Some((&which, payload)) = data.split_first() else {
        return;
    };
    let arrival = Timestamp::with_utc(
        3_600_000_000_000,
        1_780_000_000_000_000_000,
        TimeSource::SystemClock,
    );
    match which % 4 {
        0 => {
            let mut out = Vec::new();
            let mut i = ingest();
            match i.accept("sampler", payload, arrival, &mut out) {
                Ok((_, n)) => {
                    assert_eq!(n, out.len());
                    for r in &out {
                        let (_, d) = i.sensors()[0]
                            .quantities
                            .iter()
                            .find(|(_, d)| d.quantity == r.quantity)
                            .expect("a declared quantity");
                        // Finite always; outside the declared range only when flagged.
                        assert!(r.value.is_finite());
                        assert!(
                            (d.min..=d.max).contains(&r.value)
                                || r.quality.contains(aloft_protocol::Quality::OUT_OF_RANGE)
                        );
                    }
                }
                Err(e) => {
                    assert!(out.is_empty());
                    reads_back(&e.to_json());
                }
            }
        }
        1 => {
            let v = view();
            match twin::decode_update(payload, &v) {
                Ok((msg, reported)) => {
                    for r in &reported {
                        assert!(r.value.is_finite() && v.reportable.contains(&r.key));
                    }
                    let mut n = 0;
                    let mut ids = || {
                        n += 1;
                        format!("f-{n}")
                    };
                    for o in twin::update_accepted(&v, &reported, &msg.event_id, 1, &mut ids) {
                        reads_back(&o.payload);
                    }
                }
                Err(e) => {
                    let o = twin::refused(
                        twin::TwinOp::Update,
                        "sampler",
                        &twin::event_id_of(payload),
                        1,
                        &e,
                    );
                    reads_back(&o.payload);
                }
            }
        }
        2 => {
            if let Ok(u) = twin::decode_state_update(payload) {
                reads_back(&twin::state_result("sampler", &u.state, "", "f".into(), 1).payload);
            }
            reads_back(&twin::get_result(&view(), &twin::event_id_of(payload), 1).payload);
        }
        _ => {
            if let Ok(p) = mapper::decode_push(payload) {
                assert!(p.value.is_finite());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_committed_corpus_replays_cleanly() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/bus");
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).expect("the bus corpus is committed") {
            let path = entry.expect("readable corpus directory").path();
            let data = std::fs::read(&path).expect("readable corpus file");
            let result = std::panic::catch_unwind(|| bus_message(&data));
            assert!(result.is_ok(), "fuzz input {} fails", path.display());
            count += 1;
        }
        assert!(count >= 8, "only {count} inputs for bus");
    }

    proptest! {
        #[test]
        fn any_bytes_keep_the_decoders_invariants(data in prop::collection::vec(any::<u8>(), 0..300)) {
            bus_message(&data);
        }
    }
}
