//! Peers of other protocol versions against this build's decoders (docs/protocol.md,
//! "Evolution"): version 1, as it was declared (`v1`), and a next version that adds a
//! quantity, a record kind and fields at the end of two messages, as the rule says a next
//! version must (`next`). Each side encodes its own types; the other decodes with its own.

use aloft_protocol::sync::batch::{
    BatchEncoding, DEFAULT_BATCH_LIMITS, PREFERRED_ENCODING, decode_batch, encode_batch,
};
use aloft_protocol::sync::evolution::{V1_QUANTITIES, decode_message, record_decodable_by};
use aloft_protocol::sync::{
    BacklogReport, DecodeError, DesiredSensorSpec, DesiredSpec, Downlink, LiveUpdate, Observed,
    ObservedSensor, PROTOCOL_VERSION, SensorTunables, TunableValue, Uplink,
};
use aloft_protocol::{
    ExtensionRecord, Quality, Quantity, Reading, Record, SensorId, TimeSource, Timestamp,
};
use proptest::prelude::*;

mod common;

/// Version 1's declarations of the types that changed since (the rest are unchanged).
mod v1 {
    use aloft_protocol::{
        Boot, DescriptorRecord, Gap, Quality, SensorId, StatusRecord, TimeCorrelation, Timestamp,
    };
    use serde::{Deserialize, Serialize};

    /// The quantity enum of version 1: 37 variants, encoded by index (names do not travel).
    #[rustfmt::skip]
    #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
    pub enum Quantity {
        Q0, Q1, Q2, Q3, Q4, Q5, Q6, Q7, Q8, Q9, Q10, Q11, Q12, Q13, Q14, Q15, Q16, Q17, Q18,
        Q19, Q20, Q21, Q22, Q23, Q24, Q25, Q26, Q27, Q28, Q29, Q30, Q31, Q32, Q33, Q34, Q35,
        Q36,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
    pub struct Reading {
        pub sensor: SensorId,
        pub quantity: Quantity,
        pub time: Timestamp,
        pub value: f64,
        pub quality: Quality,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub enum Record {
        Reading(Reading),
        Gap(Gap),
        Boot(Boot),
        TimeCorrelation(TimeCorrelation),
        Descriptor(DescriptorRecord),
        Status(StatusRecord),
    }
}

/// A next version: a quantity ([`next::PANEL_VOLTAGE`]), a record kind
/// ([`next::PowerRecord`]), a field at the end of the live update and one at the end of the
/// desired spec (per sensor, in a list of its own keyed by sensor name).
mod next {
    use aloft_protocol::sync::{
        BacklogReport, Batch, CommandOutcome, DesiredSensorSpec, Hello, LogBatch, Observed,
        RefusalCode, SensorReport, SensorTunables, Welcome,
    };
    use aloft_protocol::{Quantity, Reading, StoreEpoch, Timestamp};
    use serde::{Deserialize, Serialize};

    pub const VERSION: u16 = aloft_protocol::sync::PROTOCOL_VERSION + 1;
    /// Its `FIELDS_ADDED`: this build's, and the one field it added to each of two messages.
    pub const FIELDS_ADDED: &[(u16, usize)] = &[(VERSION, 1)];

    pub fn fields_added_since(version: u16) -> usize {
        FIELDS_ADDED
            .iter()
            .filter(|(v, _)| *v > version)
            .map(|(_, n)| n)
            .sum()
    }

    /// The quantity it adds: the next code this build does not know.
    pub const PANEL_VOLTAGE: Quantity = Quantity::from_code(super::KNOWN_QUANTITIES);

    /// The record kind it adds, carried as an extension record of this kind: the next code
    /// this build does not know.
    pub const POWER_KIND: u16 = aloft_protocol::POWER_STEP_RECORD_KIND + 1;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct PowerRecord {
        pub time: Timestamp,
        pub on_battery: bool,
        pub battery_v: f32,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Health {
        pub store_fill: f32,
        pub clock_trusted: bool,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct LiveUpdate {
        pub time: Timestamp,
        pub readings: Vec<Reading>,
        pub sensors: Vec<SensorReport>,
        pub backlog: BacklogReport,
        /// Added at the end.
        pub health: Option<Health>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct SensorLimits {
        pub name: String,
        pub limits: Vec<(String, f64)>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct DesiredSpec {
        pub sensors: Vec<DesiredSensorSpec>,
        pub tunables: Vec<SensorTunables>,
        /// This build's last field.
        pub power_overrides: Vec<String>,
        /// Added at the end: per sensor, keyed by name.
        pub limits: Vec<SensorLimits>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub enum Uplink {
        Hello(Hello),
        Batch(Batch),
        Live(LiveUpdate),
        Ping { nonce: u64 },
        Pong { nonce: u64 },
        CommandAck { id: String },
        CommandResult { id: String, outcome: CommandOutcome },
        Observed(Observed),
        Logs(LogBatch),
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub enum Downlink {
        Welcome(Welcome),
        Ack { epoch: StoreEpoch, watermark: u64 },
        Refused { code: RefusalCode, message: String },
        Ping { nonce: u64 },
        Pong { nonce: u64 },
        Desired(DesiredSpec),
    }
}

fn reading(sensor: u16, quantity: Quantity, i: u64, value: f64) -> Record {
    Record::Reading(Reading {
        sensor: SensorId(sensor),
        quantity,
        time: Timestamp::with_utc(
            1_000_000 * i,
            1_780_000_000_000_000_000 + 1_000_000 * i as i64,
            TimeSource::Gnss,
        ),
        value,
        quality: Quality::GOOD,
    })
}

fn power_record(i: u64) -> Record {
    let body = postcard::to_allocvec(&next::PowerRecord {
        time: Timestamp::monotonic(i),
        on_battery: i.is_multiple_of(2),
        battery_v: 12.5,
    })
    .unwrap_or_default();
    Record::Extension(ExtensionRecord {
        kind: next::POWER_KIND,
        body,
    })
}

fn live(readings: Vec<Reading>) -> LiveUpdate {
    LiveUpdate {
        time: Timestamp::monotonic(9),
        readings,
        sensors: Vec::new(),
        backlog: BacklogReport {
            records: 3,
            bytes: 120,
            oldest_age_s: Some(0.5),
        },
    }
}

#[test]
fn a_next_version_agents_batch_decodes_here_whole_in_both_encodings() {
    let entries: Vec<(u64, Record)> = (0..200u64)
        .map(|i| {
            let record = match i % 4 {
                0 => reading(0, Quantity::AirPressure, i, 19_000.0 + i as f64),
                1 => reading(0, next::PANEL_VOLTAGE, i, 13.1 + i as f64 / 100.0),
                2 => power_record(i),
                _ => reading(1, Quantity::AirTemperature, i, 250.0),
            };
            (i, record)
        })
        .collect();
    for encoding in [BatchEncoding::Postcard, PREFERRED_ENCODING] {
        let payload = encode_batch(encoding, &entries).unwrap();
        let decoded = decode_batch(encoding, &payload, &DEFAULT_BATCH_LIMITS).unwrap();
        assert_eq!(
            common::bits(&decoded),
            common::bits(&entries),
            "{encoding:?}"
        );
    }
    // The next version reads its own record back out of what this build kept.
    let Record::Extension(kept) = &entries[2].1 else {
        panic!("entry 2 is the power record");
    };
    let power: next::PowerRecord = postcard::from_bytes(&kept.body).unwrap();
    assert!(power.on_battery);
    // And the quantity is shown by its code here.
    assert!(!next::PANEL_VOLTAGE.is_known());
    assert_eq!(
        next::PANEL_VOLTAGE.to_string(),
        format!("quantity_{KNOWN_QUANTITIES}")
    );
}

#[test]
fn a_field_added_at_the_end_is_ignored_here_and_reads_as_absent_there() {
    let base = live(vec![Reading {
        sensor: SensorId(1),
        quantity: Quantity::AirPressure,
        time: Timestamp::monotonic(1),
        value: 1.0,
        quality: Quality::GOOD,
    }]);
    // Next agent -> this hub: the health it added is ignored.
    let from_next = next::Uplink::Live(next::LiveUpdate {
        time: base.time,
        readings: base.readings.clone(),
        sensors: Vec::new(),
        backlog: base.backlog,
        health: Some(next::Health {
            store_fill: 0.25,
            clock_trusted: true,
        }),
    });
    let bytes = postcard::to_allocvec(&from_next).unwrap();
    assert_eq!(Uplink::decode(&bytes), Ok(Uplink::Live(base.clone())));

    // This agent -> next hub: the health reads as absent, by the padding the next version
    // computes for a peer of this version; without it the message ends early.
    let bytes = Uplink::Live(base.clone()).encode();
    let padding = next::fields_added_since(PROTOCOL_VERSION);
    match decode_message::<next::Uplink>(&bytes, padding) {
        Ok(next::Uplink::Live(update)) => {
            assert_eq!(update.health, None);
            assert_eq!(update.readings, base.readings);
            assert_eq!(update.backlog, base.backlog);
        }
        other => panic!("a live update, got {other:?}"),
    }
    assert!(matches!(
        decode_message::<next::Uplink>(&bytes, 0),
        Err(DecodeError::Malformed(_))
    ));
    // The padding is only for older peers: the next version's own messages need none.
    assert_eq!(next::fields_added_since(next::VERSION), 0);
}

fn arb_spec() -> impl Strategy<Value = DesiredSpec> {
    proptest::collection::vec(
        (
            "[a-z][a-z0-9-]{0,20}",
            any::<u64>(),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<bool>()),
        )
            .prop_map(
                |(name, generation, interval_ms, enabled)| DesiredSensorSpec {
                    name,
                    generation,
                    interval_ms,
                    enabled,
                },
            ),
        0..8,
    )
    .prop_flat_map(|sensors| {
        proptest::collection::vec(
            (
                "[a-z][a-z0-9-]{0,20}",
                proptest::collection::vec(("[a-z_]{1,12}", any::<i64>()), 0..4),
            )
                .prop_map(|(name, tunables)| SensorTunables {
                    name,
                    tunables: tunables
                        .into_iter()
                        .map(|(k, v)| (k, TunableValue::Integer(v)))
                        .collect(),
                }),
            0..4,
        )
        .prop_map(move |tunables| DesiredSpec {
            sensors: sensors.clone(),
            tunables,
            power_overrides: sensors.iter().take(1).map(|s| s.name.clone()).collect(),
        })
    })
}

fn arb_tunables() -> impl Strategy<Value = Vec<next::SensorLimits>> {
    proptest::collection::vec(
        (
            "[a-z][a-z0-9-]{0,20}",
            proptest::collection::vec(("[a-z_]{1,12}", any::<f64>()), 0..4),
        )
            .prop_map(|(name, limits)| next::SensorLimits { name, limits }),
        0..4,
    )
}

/// Readings and records of any quantity code, any record kind, any extension body.
fn arb_record() -> impl Strategy<Value = Record> {
    prop_oneof![
        (any::<u16>(), any::<u16>(), any::<u32>(), any::<f64>()).prop_map(
            |(sensor, code, i, value)| {
                reading(sensor % 4, Quantity::from_code(code), u64::from(i), value)
            }
        ),
        (0..V1_QUANTITIES, any::<u32>(), any::<f64>()).prop_map(|(code, i, value)| {
            reading(0, Quantity::from_code(code), u64::from(i), value)
        }),
        (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(kind, body)| Record::Extension(ExtensionRecord { kind, body })),
        (0..common::every_kind().len()).prop_map(|i| common::every_kind().swap_remove(i).1),
    ]
}

proptest! {
    #[test]
    fn a_next_hubs_desired_spec_decodes_here_without_what_it_added(
        spec in arb_spec(),
        tunables in arb_tunables(),
    ) {
        let from_next = next::Downlink::Desired(next::DesiredSpec {
            sensors: spec.sensors.clone(),
            tunables: spec.tunables.clone(),
            power_overrides: spec.power_overrides.clone(),
            limits: tunables,
        });
        let bytes = postcard::to_allocvec(&from_next).unwrap();
        prop_assert_eq!(Downlink::decode(&bytes), Ok(Downlink::Desired(spec)));
    }

    #[test]
    fn this_hubs_desired_spec_decodes_at_the_next_version_with_what_it_added_absent(
        spec in arb_spec(),
    ) {
        let bytes = Downlink::Desired(spec.clone()).encode();
        let decoded = decode_message::<next::Downlink>(
            &bytes,
            next::fields_added_since(PROTOCOL_VERSION),
        );
        prop_assert_eq!(
            decoded,
            Ok(next::Downlink::Desired(next::DesiredSpec {
                sensors: spec.sensors,
                tunables: spec.tunables,
                power_overrides: spec.power_overrides,
                limits: Vec::new(),
            }))
        );
    }

    #[test]
    fn unknown_codes_and_kinds_pass_through_a_batch_bit_for_bit(
        records in proptest::collection::vec(arb_record(), 0..40),
    ) {
        let entries: Vec<(u64, Record)> =
            records.into_iter().enumerate().map(|(i, r)| (i as u64 * 2, r)).collect();
        for encoding in [BatchEncoding::Postcard, PREFERRED_ENCODING] {
            let payload = encode_batch(encoding, &entries).unwrap();
            let decoded = decode_batch(encoding, &payload, &DEFAULT_BATCH_LIMITS).unwrap();
            prop_assert_eq!(common::bits(&decoded), common::bits(&entries));
        }
    }

    /// What the agent withholds from a version 1 hub is exactly what version 1's decoder
    /// refuses, and what it sends is in the bytes version 1 wrote.
    #[test]
    fn record_decodable_by_1_is_exactly_what_version_1_decodes(record in arb_record()) {
        let bytes = postcard::to_allocvec(&record).unwrap();
        let by_v1 = postcard::from_bytes::<v1::Record>(&bytes);
        prop_assert_eq!(record_decodable_by(&record, 1), by_v1.is_ok(), "{:?}", record);
        if let Ok(old) = by_v1 {
            prop_assert_eq!(postcard::to_allocvec(&old).unwrap(), bytes);
        }
        prop_assert!(record_decodable_by(&record, PROTOCOL_VERSION));
    }
}

/// Codes this build knows: the next version's quantity takes the first code past them.
const KNOWN_QUANTITIES: u16 = Quantity::ALL.len() as u16;

#[test]
fn every_record_of_today_reads_the_same_at_version_1_or_is_withheld_from_it() {
    let mut withheld = 0;
    for (_, record) in common::every_kind() {
        let bytes = postcard::to_allocvec(&record).unwrap();
        if !record_decodable_by(&record, 1) {
            // Quantities added after version 1: never sent to a version 1 hub, which
            // could not decode them.
            assert!(
                postcard::from_bytes::<v1::Record>(&bytes).is_err(),
                "{record:?}"
            );
            withheld += 1;
            continue;
        }
        let old: v1::Record = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(postcard::to_allocvec(&old).unwrap(), bytes, "{record:?}");
    }
    assert_eq!(withheld, usize::from(KNOWN_QUANTITIES - V1_QUANTITIES));
}

/// Version 2's desired spec and observed state: before the tunables.
mod v2 {
    use aloft_protocol::sync::{DesiredSensorSpec, ObservedSensor};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct DesiredSpec {
        pub sensors: Vec<DesiredSensorSpec>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Observed {
        pub sensors: Vec<ObservedSensor>,
    }
}

proptest! {
    #[test]
    fn a_version_2_agent_reads_a_spec_with_tunables_without_them(spec in arb_spec()) {
        // Its postcard stops where its type ends (the hub never sends it tunables anyway).
        let bytes = postcard::to_allocvec(&spec).unwrap();
        let old: v2::DesiredSpec = postcard::from_bytes(&bytes).unwrap();
        prop_assert_eq!(old.sensors, spec.sensors);
    }

    #[test]
    fn a_version_2_agents_observed_state_reads_here_with_no_tunables(
        generations in proptest::collection::vec(any::<u64>(), 0..6),
    ) {
        let sensors: Vec<ObservedSensor> = generations
            .iter()
            .enumerate()
            .map(|(i, g)| ObservedSensor {
                name: format!("s{i}"),
                observed_generation: *g,
                refused: (g % 2 == 0).then(|| "refused".to_string()),
            })
            .collect();
        let old = postcard::to_allocvec(&v2::Observed { sensors: sensors.clone() }).unwrap();
        let mut message = vec![7u8]; // Uplink::Observed's variant index.
        message.extend_from_slice(&old);
        prop_assert_eq!(
            Uplink::decode_from(&message, 2),
            Ok(Uplink::Observed(Observed { sensors, tunables: vec![] }))
        );
        prop_assert!(matches!(Uplink::decode(&message), Err(DecodeError::Malformed(_))));
    }
}

#[test]
fn tunables_round_trip_with_every_value_type() {
    let observed = Uplink::Observed(Observed {
        sensors: vec![],
        tunables: vec![SensorTunables {
            name: "gps".into(),
            tunables: vec![
                ("a".into(), TunableValue::Bool(true)),
                ("b".into(), TunableValue::Integer(-3)),
                ("d".into(), TunableValue::Text("airborne2g".into())),
            ],
        }],
    });
    assert_eq!(Uplink::decode(&observed.encode()), Ok(observed));
}
