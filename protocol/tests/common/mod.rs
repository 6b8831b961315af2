//! Batches built from every record kind, every quantity, every enum variant a record can
//! hold and the `f64` values a codec gets wrong first (NaN payloads, -0.0, infinities,
//! subnormals, printed decimals, float noise): the cross-architecture test vectors and the
//! fuzz seeds are made from them. Deterministic: no randomness, no clock.

#![allow(dead_code)]

use aloft_protocol::{
    Boot, BootId, DescriptorRecord, DynamicModel, Gap, GapReason, ParameterValue, Quality,
    Quantity, Reading, Record, SensorDescriptor, SensorId, SensorState, StatusRecord,
    TimeCorrelation, TimeSource, Timestamp,
};

pub const SOURCES: [TimeSource; 4] = [
    TimeSource::Monotonic,
    TimeSource::SystemClock,
    TimeSource::Gnss,
    TimeSource::Reconstructed,
];

/// Values whose bits a lossless codec must keep.
pub const HARD_VALUES: [f64; 14] = [
    19_400.25,
    -0.0,
    0.0,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::MIN_POSITIVE,
    5e-324,
    f64::MAX,
    -273.15,
    0.1 + 0.2,
    1e-9,
    123_456_789.123_456_78,
    // Two NaNs with payloads (quiet and signalling bit patterns).
    f64::from_bits(0x7ff8_0000_dead_beef),
    f64::from_bits(0xfff0_0000_0000_0001),
];

const UTC_BASE: i64 = 1_780_000_000_000_000_000;

fn time(i: u64) -> Timestamp {
    let source = SOURCES[(i % 4) as usize];
    if source == TimeSource::Monotonic {
        Timestamp::monotonic(1_000_000_000 + i * 10_000_000)
    } else {
        Timestamp::with_utc(
            1_000_000_000 + i * 10_000_000,
            UTC_BASE + i as i64 * 10_000_037,
            source,
        )
    }
}

const GAP_REASONS: [GapReason; 6] = [
    GapReason::DroppedOldest,
    GapReason::Decimated,
    GapReason::RejectedNew,
    GapReason::CorruptRegion,
    GapReason::Crash,
    GapReason::SensorOutage,
];

const STATES: [SensorState; 6] = [
    SensorState::Starting,
    SensorState::Running,
    SensorState::Degraded,
    SensorState::Failed,
    SensorState::Restarting,
    SensorState::Disabled,
];

const MODELS: [DynamicModel; 10] = [
    DynamicModel::Portable,
    DynamicModel::Stationary,
    DynamicModel::Pedestrian,
    DynamicModel::Automotive,
    DynamicModel::Sea,
    DynamicModel::Airborne1g,
    DynamicModel::Airborne2g,
    DynamicModel::Airborne4g,
    DynamicModel::Wrist,
    DynamicModel::Bike,
];

/// Every record kind: a reading of every quantity with every time source and quality bit,
/// the hard values, a gap of every reason, boots, time correlations of every source,
/// descriptors of every dynamic model and parameter kind, statuses of every state.
/// Numbers increase with holes (what the store's full policy leaves).
pub fn every_kind() -> Vec<(u64, Record)> {
    let mut records = Vec::new();
    for (i, &quantity) in Quantity::ALL.iter().enumerate() {
        let i = i as u64;
        records.push(Record::Reading(Reading {
            sensor: SensorId((i % 5) as u16),
            quantity,
            time: time(i / 3),
            value: HARD_VALUES[(i as usize) % HARD_VALUES.len()],
            quality: Quality::from_bits(1 << (i % 7)),
        }));
    }
    for (i, &value) in HARD_VALUES.iter().enumerate() {
        records.push(Record::Reading(Reading {
            sensor: SensorId(9),
            quantity: Quantity::ALL[0],
            time: time(100 + i as u64),
            value,
            quality: Quality::from_bits(if i == 0 { 0x7f } else { u16::MAX }),
        }));
    }
    for (i, &reason) in GAP_REASONS.iter().enumerate() {
        let full = i % 2 == 0;
        records.push(Record::Gap(Gap {
            reason,
            covers: full.then_some((10 * i as u64, 10 * i as u64 + 9)),
            readings: full.then_some(i as u64 * 1000),
            sensor: full.then_some(SensorId(i as u16)),
            span: full.then_some((time(i as u64), time(i as u64 + 50))),
        }));
    }
    records.push(Record::Boot(Boot {
        boot_id: BootId([0xa5; 16]),
        mono_ns: 0,
        utc_ns: None,
        agent_version: "0.1.0".into(),
    }));
    records.push(Record::Boot(Boot {
        boot_id: BootId(core::array::from_fn(|n| n as u8)),
        mono_ns: u64::MAX,
        utc_ns: Some(i64::MIN),
        agent_version: "0.2.0-dev+été".into(),
    }));
    for (i, &source) in SOURCES.iter().enumerate() {
        records.push(Record::TimeCorrelation(TimeCorrelation {
            boot_id: BootId([i as u8; 16]),
            mono_ns: 5_000_000_000 + i as u64,
            utc_ns: UTC_BASE - i as i64,
            source,
            uncertainty_ns: (i % 2 == 1).then_some(1_000 * i as u64),
        }));
    }
    for (i, &model) in MODELS.iter().enumerate() {
        let mut descriptor = SensorDescriptor::new(format!("device-{i}"))
            .with_integer("rate_hz", i as i64 - 5)
            .with_real("offset", HARD_VALUES[i % HARD_VALUES.len()]);
        descriptor.parameters.push(aloft_protocol::DeviceParameter {
            name: "profile".into(),
            value: ParameterValue::Text(format!("text {i} ✈")),
        });
        descriptor.firmware = (i % 2 == 0).then(|| format!("fw {i}"));
        descriptor.serial_number = (i % 3 == 0).then(|| format!("SN{i:04}"));
        descriptor.dynamic_model = Some(model);
        records.push(Record::Descriptor(DescriptorRecord {
            sensor: SensorId(i as u16),
            name: format!("sensor-{i}"),
            kind: "ublox".into(),
            time: time(200 + i as u64),
            descriptor,
        }));
    }
    records.push(Record::Descriptor(DescriptorRecord {
        sensor: SensorId(u16::MAX),
        name: String::new(),
        kind: String::new(),
        time: Timestamp::monotonic(0),
        descriptor: SensorDescriptor::new(""),
    }));
    for (i, &state) in STATES.iter().enumerate() {
        records.push(Record::Status(StatusRecord {
            sensor: SensorId(i as u16),
            state,
            reason: format!("reason {i}"),
            restarts: i as u32 * 7,
            time: time(300 + i as u64),
        }));
    }
    number(records, 1_000)
}

/// A stretch of flight: 4 sensors sampling their quantities together (one time per
/// sample), printed decimals, a stuck value, float noise, a sensor that drops out: what
/// the columnar form's predictions are for.
pub fn flight() -> Vec<(u64, Record)> {
    let series: [(u16, &[Quantity]); 4] = [
        (0, &Quantity::ALL[..3.min(Quantity::ALL.len())]),
        (1, &Quantity::ALL[3.min(Quantity::ALL.len() - 1)..]),
        (2, &Quantity::ALL[..1]),
        (3, &Quantity::ALL[..2]),
    ];
    let mut records = Vec::new();
    for sample in 0..60u64 {
        for (sensor, quantities) in series {
            if sensor == 3 && (20..30).contains(&sample) {
                continue;
            }
            let t = time(sample * 4 + u64::from(sensor));
            for (q, &quantity) in quantities.iter().take(6).enumerate() {
                let value = match sensor {
                    // Printed with two decimals.
                    0 => (101_325 - sample as i64 * 3 + q as i64) as f64 / 100.0,
                    // Float noise around a slow drift.
                    1 => (sample as f64 * 0.013 + q as f64).sin() * 1e3,
                    // Stuck.
                    2 => 42.5,
                    _ => -(sample as f64) * 0.1,
                };
                records.push(Record::Reading(Reading {
                    sensor: SensorId(sensor),
                    quantity,
                    time: t,
                    value,
                    quality: if sample % 17 == 0 {
                        Quality::STALE
                    } else {
                        Quality::GOOD
                    },
                }));
            }
        }
    }
    number(records, 7)
}

/// The numbering's edges: the first number, and the last numbers before `u64::MAX`.
pub fn edges() -> Vec<(u64, Record)> {
    let reading = |value: f64| {
        Record::Reading(Reading {
            sensor: SensorId(0),
            quantity: Quantity::ALL[0],
            time: Timestamp::with_utc(u64::MAX, i64::MAX, TimeSource::Gnss),
            value,
            quality: Quality::GOOD,
        })
    };
    vec![
        (0, reading(1.0)),
        (1 << 32, reading(2.0)),
        (u64::MAX - 2, reading(f64::NAN)),
        (u64::MAX, reading(-0.0)),
    ]
}

/// Numbers from `start`, steps of 1 with a hole after every 13th entry.
fn number(records: Vec<Record>, start: u64) -> Vec<(u64, Record)> {
    let mut seq = start;
    records
        .into_iter()
        .enumerate()
        .map(|(i, record)| {
            let entry = (seq, record);
            seq += if i % 13 == 12 { 1 + i as u64 } else { 1 };
            entry
        })
        .collect()
}

/// The test vectors' batches: name and entries.
pub fn vector_cases() -> Vec<(&'static str, Vec<(u64, Record)>)> {
    vec![
        ("every-kind", every_kind()),
        ("flight", flight()),
        ("edges", edges()),
        ("empty", Vec::new()),
    ]
}

/// The entries bit for bit (postcard keeps every `f64` bit).
pub fn bits(entries: &[(u64, Record)]) -> Vec<u8> {
    postcard::to_allocvec(entries).expect("records encode")
}
