//! The codec's properties: lossless round trips (bit for bit, holes, every record kind,
//! the simulated flight within its byte budget), and refusal without panic or
//! over-allocation of whatever a hostile payload holds.

extern crate std;

use super::encode::put_varint;
use super::*;
use crate::{
    Boot, BootId, DescriptorRecord, Gap, GapReason, Quality, Quantity, Reading, SensorDescriptor,
    SensorId, SensorState, StatusRecord, TimeCorrelation, TimeSource, Timestamp,
};
use alloc::string::ToString;
use alloc::vec;
use proptest::prelude::*;

const BOTH: [BatchEncoding; 2] = [BatchEncoding::Postcard, BatchEncoding::ColumnarZstd];

fn reading(n: u64) -> Record {
    Record::Reading(Reading {
        sensor: SensorId(1),
        quantity: Quantity::AirPressure,
        time: Timestamp::monotonic(n * 100_000_000),
        value: 19_400.0 + n as f64,
        quality: Quality::GOOD,
    })
}

fn value_reading(sensor: u16, value: f64) -> Record {
    Record::Reading(Reading {
        sensor: SensorId(sensor),
        quantity: Quantity::TrueAirspeed,
        time: Timestamp::with_utc(5, 1_780_000_000_000_000_000, TimeSource::Gnss),
        value,
        quality: Quality::DERIVED,
    })
}

/// Bit-exact equality: postcard writes an f64's bits as they are, so equal encodings
/// mean equal records, NaN payloads and -0.0 included (`==` on f64 would not say so).
fn same_bits(a: &[(u64, Record)], b: &[(u64, Record)]) -> bool {
    postcard::to_allocvec(a).ok() == postcard::to_allocvec(b).ok()
}

fn round_trip(encoding: BatchEncoding, entries: &[(u64, Record)]) -> Vec<(u64, Record)> {
    let payload = encode_batch(encoding, entries).unwrap();
    decode_batch(encoding, &payload, &DEFAULT_BATCH_LIMITS).unwrap()
}

/// A hand-made columnar payload: `frame` compressed as the codec does.
fn compressed(frame: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(frame, ZSTD_LEVEL).unwrap()
}

#[test]
fn entries_with_holes_round_trip() {
    let entries = vec![(3, reading(3)), (4, reading(4)), (9, reading(9))];
    for encoding in BOTH {
        assert_eq!(round_trip(encoding, &entries), entries, "{encoding:?}");
    }
}

#[test]
fn an_empty_batch_round_trips() {
    for encoding in BOTH {
        assert_eq!(round_trip(encoding, &[]), vec![], "{encoding:?}");
    }
}

#[test]
fn special_floats_keep_their_exact_bits() {
    let specials = [
        0.0,
        -0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        -f64::NAN,
        f64::from_bits(0x7FF0_0000_0000_0001), // signalling NaN
        f64::from_bits(0x7FF8_DEAD_BEEF_0001), // NaN with a payload
        f64::MIN_POSITIVE,
        f64::from_bits(1), // smallest subnormal
        f64::MAX,
        f64::MIN,
        223.15,
        1e300,
        -4.6e18,
        9.3e18,
        0.1 + 0.2,
        (2231.5_f64 / 100.0) + 273.15,
    ];
    // Twice in a row and interleaved with decimals, so every predictor path sees them.
    let mut entries = Vec::new();
    for (i, v) in specials.iter().chain(specials.iter()).enumerate() {
        entries.push((2 * i as u64, value_reading(0, *v)));
        entries.push((2 * i as u64 + 1, value_reading(1, (i as f64) / 10.0)));
    }
    for encoding in BOTH {
        let back = round_trip(encoding, &entries);
        assert!(same_bits(&back, &entries), "{encoding:?}");
    }
}

#[test]
fn noisy_values_that_come_back_are_written_as_repeats() {
    // A 14-bit sensor's values scaled to Pa: full-mantissa floats, a few of them over
    // and over (interleaved with another series, as the pitot's quantities are).
    let levels: Vec<f64> = (0..20)
        .map(|n| (8000 + n) as f64 * (13_789.514_586_336 / 16_383.0))
        .collect();
    let entries: Vec<_> = (0..2_000u64)
        .map(|i| {
            let level = levels[(i * 7 % 20) as usize];
            (i, value_reading((i % 2) as u16, level + (i % 2) as f64))
        })
        .collect();
    let frame = columnar_bytes(&entries).unwrap();
    let back = decode_batch(
        BatchEncoding::ColumnarZstd,
        &compressed(&frame),
        &DEFAULT_BATCH_LIMITS,
    )
    .unwrap();
    assert!(same_bits(&back, &entries));
    // Each series cycles through 10 levels: after the first 10 values, every value is
    // a repeat and costs its mode byte alone. Raw, an entry takes 5 bytes (step, kind,
    // clock, mode, quality); XOR bytes would add about 6 more to each.
    assert!(frame.len() < 2_000 * 5 + 500, "{} bytes", frame.len());
}

#[test]
fn every_record_kind_round_trips_among_readings() {
    let t = Timestamp::with_utc(77, 1_780_000_000_000_000_000, TimeSource::SystemClock);
    let entries = vec![
        (
            0,
            Record::Boot(Boot {
                boot_id: BootId([7; 16]),
                mono_ns: 1,
                utc_ns: None,
                agent_version: "0.1.0".into(),
            }),
        ),
        (1, reading(1)),
        (
            2,
            Record::Gap(Gap {
                reason: GapReason::Decimated,
                covers: Some((10, 20)),
                readings: Some(5),
                sensor: None,
                span: Some((t, t)),
            }),
        ),
        (
            40,
            Record::TimeCorrelation(TimeCorrelation {
                boot_id: BootId([7; 16]),
                mono_ns: 9,
                utc_ns: 1_780_000_000_000_000_000,
                source: TimeSource::Gnss,
                uncertainty_ns: Some(1_000_000),
            }),
        ),
        (41, reading(2)),
        (
            42,
            Record::Descriptor(DescriptorRecord {
                sensor: SensorId(0),
                name: "gps".into(),
                kind: "ublox".into(),
                time: t,
                descriptor: SensorDescriptor::new("u-blox NEO-M8N").with_real("x", -0.0),
            }),
        ),
        (
            u64::MAX - 1,
            Record::Status(StatusRecord {
                sensor: SensorId(0),
                state: SensorState::Restarting,
                reason: "operator".into(),
                restarts: 1,
                time: t,
            }),
        ),
        (u64::MAX, reading(3)),
    ];
    for encoding in BOTH {
        assert!(
            same_bits(&round_trip(encoding, &entries), &entries),
            "{encoding:?}"
        );
    }
}

/// 150 s of what `aloft-agent run` recorded on the simulated flight (see the bench).
fn simulated_flight() -> Vec<(u64, Record)> {
    let packed = include_bytes!("../../../benches/data/sim-flight.postcard.deflate");
    let bytes = miniz_oxide::inflate::decompress_to_vec(packed).unwrap();
    postcard::from_bytes(&bytes).unwrap()
}

#[test]
fn the_simulated_flight_round_trips_exactly_in_under_8_bytes_a_reading() {
    let entries = simulated_flight();
    let mut bytes = 0;
    let mut readings = 0;
    for batch in entries.chunks(1_000) {
        let payload = encode_batch(PREFERRED_ENCODING, batch).unwrap();
        bytes += payload.len();
        readings += batch
            .iter()
            .filter(|(_, r)| matches!(r, Record::Reading(_)))
            .count();
        let back = decode_batch(PREFERRED_ENCODING, &payload, &DEFAULT_BATCH_LIMITS);
        assert!(same_bits(&back.unwrap(), batch));
    }
    // The budget is 8 bytes a reading on the wire, framing and acks included:
    // the payload must leave room for them.
    let per_reading = bytes as f64 / readings as f64;
    assert!(per_reading < 6.0, "{per_reading} bytes a reading");
}

#[test]
fn out_of_order_entries_are_refused_both_ways() {
    let entries = vec![(4, reading(4)), (4, reading(4))];
    for encoding in BOTH {
        assert_eq!(
            encode_batch(encoding, &entries),
            Err(BatchError::OutOfOrder { index: 1, seq: 4 })
        );
    }
    let payload = postcard::to_allocvec(&entries).unwrap();
    assert!(matches!(
        decode_batch(BatchEncoding::Postcard, &payload, &DEFAULT_BATCH_LIMITS),
        Err(BatchError::OutOfOrder { index: 1, .. })
    ));
    // The columnar form writes steps, so only a step past u64::MAX can go backwards.
    let mut frame = columnar_bytes(&[(u64::MAX - 1, reading(1)), (u64::MAX, reading(2))]).unwrap();
    // Header: count 2 (1 byte), first = u64::MAX - 1 (10 bytes), then steps: len 1,
    // step 0. A step of 1 makes the second number overflow.
    assert_eq!(frame.get(11..13), Some(&[1u8, 0][..]));
    frame[12] = 1;
    assert_eq!(
        decode_batch(
            BatchEncoding::ColumnarZstd,
            &compressed(&frame),
            &DEFAULT_BATCH_LIMITS
        ),
        Err(BatchError::OutOfOrder {
            index: 1,
            seq: u64::MAX
        })
    );
}

#[test]
fn a_huge_declared_count_is_refused_without_allocating_it() {
    let payload = postcard::to_allocvec(&(u32::MAX,)).unwrap();
    assert!(matches!(
        decode_batch(BatchEncoding::Postcard, &payload, &DEFAULT_BATCH_LIMITS),
        Err(BatchError::TooManyRecords { .. })
    ));
    let mut frame = Vec::new();
    put_varint(&mut frame, u64::MAX);
    assert_eq!(
        decode_batch(
            BatchEncoding::ColumnarZstd,
            &compressed(&frame),
            &DEFAULT_BATCH_LIMITS
        ),
        Err(BatchError::TooManyRecords {
            count: usize::MAX,
            max: DEFAULT_BATCH_LIMITS.max_records
        })
    );
    // Under the cap but more than the frame holds: refused before reserving.
    let mut frame = columnar_bytes(&[(0, reading(0))]).unwrap();
    frame[0] = 60;
    assert_eq!(
        decode_batch(
            BatchEncoding::ColumnarZstd,
            &compressed(&frame),
            &DEFAULT_BATCH_LIMITS
        ),
        Err(BatchError::Columns(
            "more entries declared than the batch holds"
        ))
    );
    let small = BatchLimits {
        max_records: 10,
        max_decoded_bytes: 1 << 20,
    };
    let entries: Vec<_> = (0..11).map(|n| (n, reading(n))).collect();
    for encoding in BOTH {
        let payload = encode_batch(encoding, &entries).unwrap();
        assert_eq!(
            decode_batch(encoding, &payload, &small),
            Err(BatchError::TooManyRecords { count: 11, max: 10 })
        );
    }
}

#[test]
fn a_decompression_bomb_is_refused_at_the_cap() {
    // 64 MiB of zeros compress to a few kB: four times the default cap. Streamed, the
    // frame does not declare its size, so the cap must hold while inflating.
    let zeros = vec![0u8; 64 << 20];
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    std::io::Write::write_all(&mut encoder, &zeros).unwrap();
    let streamed = encoder.finish().unwrap();
    assert!(matches!(
        zstd::zstd_safe::get_frame_content_size(&streamed),
        Ok(None)
    ));
    // One that declares its size is refused from its header.
    let declared = zstd::bulk::compress(&zeros, 1).unwrap();
    for bomb in [streamed, declared] {
        assert!(bomb.len() < 64 << 10);
        assert_eq!(
            decode_batch(BatchEncoding::ColumnarZstd, &bomb, &DEFAULT_BATCH_LIMITS),
            Err(BatchError::TooLarge { max: 16 << 20 })
        );
    }
    // An honest batch that inflates past a small cap is refused the same way.
    let entries: Vec<_> = (0..1_000).map(|n| (n, reading(n))).collect();
    let payload = encode_batch(PREFERRED_ENCODING, &entries).unwrap();
    let tight = BatchLimits {
        max_records: 65_536,
        max_decoded_bytes: 1_000,
    };
    assert_eq!(
        decode_batch(PREFERRED_ENCODING, &payload, &tight),
        Err(BatchError::TooLarge { max: 1_000 })
    );
}

#[test]
fn an_inflate_error_keeps_the_decompressor_error_as_its_source() {
    // Not a zstd frame at all: the decompressor's own error is the cause.
    let err = decode_batch(
        BatchEncoding::ColumnarZstd,
        &[0x28, 0xB5, 0x2F, 0xFD, 0xFF],
        &DEFAULT_BATCH_LIMITS,
    )
    .unwrap_err();
    assert!(matches!(err, BatchError::Inflate(_)), "{err:?}");
    let source = std::error::Error::source(&err).expect("a source");
    assert!(source.downcast_ref::<std::io::Error>().is_some());
    assert!(err.to_string().contains(&source.to_string()), "{err}");
}

#[test]
fn a_frame_asking_for_a_huge_window_is_refused() {
    // A frame header asking for a 32 MiB window (zstd's own limit is 128 MiB) and
    // declaring no content size: past the 16 MiB cap, the decoder must not allocate
    // the window. Magic, frame header descriptor (no content size, not single-segment,
    // no checksum), window descriptor 0x78 (2^25), then an empty last raw block.
    let frame = vec![0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x78, 0x01, 0x00, 0x00];
    assert!(matches!(
        decode_batch(BatchEncoding::ColumnarZstd, &frame, &DEFAULT_BATCH_LIMITS),
        Err(BatchError::Inflate(_))
    ));
}

#[test]
fn every_truncation_of_a_payload_is_refused() {
    let entries: Vec<_> = (0..50).map(|n| (n * 2, reading(n))).collect();
    for encoding in BOTH {
        let payload = encode_batch(encoding, &entries).unwrap();
        for end in 0..payload.len() {
            assert!(
                decode_batch(encoding, &payload[..end], &DEFAULT_BATCH_LIMITS).is_err(),
                "{encoding:?} cut at {end}"
            );
        }
    }
    // Truncated columns inside an intact zstd frame: every cut of the frame.
    let frame = columnar_bytes(&entries).unwrap();
    for end in 0..frame.len() {
        assert!(
            decode_batch(
                BatchEncoding::ColumnarZstd,
                &compressed(&frame[..end]),
                &DEFAULT_BATCH_LIMITS
            )
            .is_err(),
            "frame cut at {end}"
        );
    }
}

#[test]
fn errors_say_what_went_wrong() {
    assert_eq!(
        BatchError::TooLarge { max: 16_777_216 }.to_string(),
        "batch inflates past 16777216 bytes"
    );
    assert_eq!(
        BatchError::Record {
            index: 17,
            reason: "truncated modes column"
        }
        .to_string(),
        "record 17: truncated modes column"
    );
    assert_eq!(
        BatchError::OutOfOrder { index: 42, seq: 7 }.to_string(),
        "sequence numbers not increasing at entry 42 (7)"
    );
}

fn arb_time() -> impl Strategy<Value = Timestamp> {
    let source = prop_oneof![
        Just(TimeSource::Monotonic),
        Just(TimeSource::SystemClock),
        Just(TimeSource::Gnss),
        Just(TimeSource::Reconstructed),
    ];
    (
        prop_oneof![0..3u64, 1_000_000_000..1_000_100_000u64, any::<u64>()],
        proptest::option::of(prop_oneof![
            1_780_000_000_000_000_000..1_780_000_000_001_000_000i64,
            any::<i64>()
        ]),
        source,
    )
        .prop_map(|(mono_ns, utc_ns, source)| Timestamp {
            mono_ns,
            utc_ns,
            source,
        })
}

fn arb_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        any::<f64>(),
        (-10_000_000i64..10_000_000, 0..12u32).prop_map(|(n, k)| n as f64 / 10f64.powi(k as i32)),
        (-1000i64..1000).prop_map(|n| n as f64 / 100.0 + 273.15),
        Just(-0.0),
        Just(f64::NAN),
    ]
}

fn arb_reading() -> impl Strategy<Value = Record> {
    (
        0..3u16,
        prop_oneof![Just(0usize), Just(1), 0..Quantity::ALL.len()],
        arb_time(),
        arb_value(),
        prop_oneof![Just(0u16), any::<u16>()],
    )
        .prop_map(|(sensor, q, time, value, quality)| {
            Record::Reading(Reading {
                sensor: SensorId(sensor),
                quantity: Quantity::ALL[q],
                time,
                value,
                quality: Quality::from_bits(quality),
            })
        })
}

fn arb_other() -> impl Strategy<Value = Record> {
    prop_oneof![
        (
            any::<u64>(),
            proptest::option::of(any::<(u64, u64)>()),
            arb_time()
        )
            .prop_map(|(n, covers, t)| Record::Gap(Gap {
                reason: GapReason::SensorOutage,
                covers,
                readings: Some(n),
                sensor: Some(SensorId(1)),
                span: Some((t, t)),
            })),
        (any::<[u8; 16]>(), any::<u64>(), ".{0,12}").prop_map(|(id, mono_ns, v)| {
            Record::Boot(Boot {
                boot_id: BootId(id),
                mono_ns,
                utc_ns: None,
                agent_version: v,
            })
        }),
        (arb_time(), ".{0,20}", arb_value()).prop_map(|(time, reason, v)| {
            Record::Descriptor(DescriptorRecord {
                sensor: SensorId(2),
                name: reason.clone(),
                kind: "bme280".into(),
                time,
                descriptor: SensorDescriptor::new(reason).with_real("c", v),
            })
        }),
    ]
}

/// Entries with strictly increasing numbers: steps of 1 mostly, holes sometimes.
fn arb_entries() -> impl Strategy<Value = Vec<(u64, Record)>> {
    (
        prop_oneof![0..10u64, any::<u64>().prop_map(|s| s / 2)],
        proptest::collection::vec(
            (
                prop_oneof![4 => Just(1u64), 1 => 1..1_000u64],
                prop_oneof![
                    6 => arb_reading(),
                    1 => arb_other(),
                    // The same time as the entry before, as readings of one sample.
                    2 => Just(Record::Gap(Gap {
                        reason: GapReason::Crash,
                        covers: None,
                        readings: None,
                        sensor: None,
                        span: None,
                    })),
                ],
            ),
            0..120,
        ),
    )
        .prop_map(|(start, steps)| {
            let mut seq = start;
            let mut out: Vec<(u64, Record)> = Vec::new();
            for (step, record) in steps {
                seq = seq.saturating_add(step);
                if out.last().is_some_and(|(s, _)| *s >= seq) {
                    break;
                }
                // Every third reading repeats the previous reading's time.
                let record = match (record, out.last()) {
                    (Record::Reading(mut r), Some((_, Record::Reading(p)))) if seq % 3 == 0 => {
                        r.time = p.time;
                        Record::Reading(r)
                    }
                    (r, _) => r,
                };
                out.push((seq, record));
            }
            out
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_entries_round_trip_bit_for_bit(entries in arb_entries()) {
        for encoding in BOTH {
            let payload = encode_batch(encoding, &entries).unwrap();
            let back = decode_batch(encoding, &payload, &DEFAULT_BATCH_LIMITS).unwrap();
            prop_assert!(same_bits(&back, &entries), "{:?}", encoding);
        }
    }

    #[test]
    fn garbage_is_refused_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        for encoding in BOTH {
            let _ = decode_batch(encoding, &bytes, &DEFAULT_BATCH_LIMITS);
        }
        // Garbage that inflates: it reaches the column decoder.
        let _ = decode_batch(BatchEncoding::ColumnarZstd, &compressed(&bytes), &DEFAULT_BATCH_LIMITS);
    }

    #[test]
    fn corrupted_columns_are_refused_or_decoded_without_panicking(
        entries in arb_entries(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut frame = columnar_bytes(&entries).unwrap();
        if frame.is_empty() {
            return Ok(());
        }
        for (at, byte) in flips {
            let i = at.index(frame.len());
            frame[i] ^= byte.max(1);
        }
        if let Ok(back) = decode_batch(BatchEncoding::ColumnarZstd, &compressed(&frame), &DEFAULT_BATCH_LIMITS) {
            // Whatever decodes is a valid batch.
            prop_assert!(check_order(back.iter().map(|(s, _)| *s)).is_ok());
        }
    }
}
