//! Records as a hostile or broken agent could send them, exported in every format: names
//! and descriptor strings with quotes, separators, line breaks, markup and control
//! characters; values that are NaN, infinite or huge; quantity codes this build does not
//! know; readings before any boot or descriptor; times far from now. Every export either
//! succeeds or refuses with an error, never panics, and never leaves a partial file; the
//! tidy CSV export, read back with a CSV reader, has exactly one row per reading with the
//! names intact.

#![allow(clippy::unwrap_used)]

use aloft_dataset::source::MemorySource;
use aloft_dataset::{
    Completeness, Dataset, DirOutput, ExportOptions, Format, Layout, Selection, export,
};
use aloft_protocol::{
    Boot, BootId, DescriptorRecord, Quality, Quantity, Reading, Record, SensorDescriptor, SensorId,
    StoreEpoch, TimeCorrelation, TimeSource, Timestamp,
};
use proptest::prelude::*;

fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,8}",
        "\\PC{0,24}",
        Just("a,b\"c\r\nd".to_owned()),
        Just("<Placemark>&amp;]]>".to_owned()),
        Just("\u{0}\u{1b}[31m\u{7f}".to_owned()),
        Just("HFPLTPILOTINCHARGE:evil\r\nB1200000000000N00000000EA0000000000".to_owned()),
        Just(String::new()),
    ]
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        -1e6f64..1e6,
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MAX),
        Just(-0.0),
        Just(5e-324),
    ]
}

fn quantity() -> impl Strategy<Value = Quantity> {
    prop_oneof![
        Just(Quantity::Latitude),
        Just(Quantity::Longitude),
        Just(Quantity::AltitudeMsl),
        Just(Quantity::AirPressure),
        Just(Quantity::TrueAirspeed),
        Just(Quantity::SatellitesUsed),
        (37u16..u16::MAX).prop_map(Quantity::from_code),
    ]
}

fn time() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        (0u64..u64::MAX / 2).prop_map(Timestamp::monotonic),
        (
            0u64..10_000_000_000_000,
            -4_000_000_000_000_000_000i64..4_000_000_000_000_000_000
        )
            .prop_map(|(m, u)| Timestamp::with_utc(m, u, TimeSource::Gnss)),
        (0u64..10_000_000_000_000).prop_map(|m| Timestamp::with_utc(
            m,
            1_780_000_000_000_000_000 + m as i64,
            TimeSource::SystemClock
        )),
    ]
}

fn record() -> impl Strategy<Value = Record> {
    prop_oneof![
        6 => (0u16..4, quantity(), time(), value(), any::<u16>()).prop_map(|(s, q, t, v, f)| {
            Record::Reading(Reading {
                sensor: SensorId(s),
                quantity: q,
                time: t,
                value: v,
                quality: Quality::from_bits(f),
            })
        }),
        1 => (0u16..4, hostile_text(), hostile_text(), hostile_text()).prop_map(|(s, name, kind, device)| {
            let mut d = SensorDescriptor::new(device.clone());
            d.firmware = Some(device);
            Record::Descriptor(DescriptorRecord {
                sensor: SensorId(s),
                name,
                kind,
                time: Timestamp::monotonic(1),
                descriptor: d,
            })
        }),
        1 => (any::<u8>(), hostile_text()).prop_map(|(b, version)| Record::Boot(Boot {
            boot_id: BootId([b; 16]),
            mono_ns: 0,
            utc_ns: None,
            agent_version: version,
        })),
        1 => (any::<u8>(), 0u64..10_000_000_000_000, any::<i64>()).prop_map(|(b, m, u)| {
            Record::TimeCorrelation(TimeCorrelation {
                boot_id: BootId([b; 16]),
                mono_ns: m,
                utc_ns: u,
                source: TimeSource::Gnss,
                uncertainty_ns: None,
            })
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_format_survives_hostile_records(records in proptest::collection::vec(record(), 0..60)) {
        let epoch = StoreEpoch([9; 16]);
        let readings = records.iter().filter(|r| matches!(r, Record::Reading(_))).count();
        let source = MemorySource::new(
            records.into_iter().enumerate().map(|(i, r)| (epoch, i as u64, r)).collect(),
            Completeness::default(),
        );
        for format in Format::ALL {
            for layout in [Layout::Tidy, Layout::Wide] {
                let dir = tempfile::tempdir().unwrap();
                let mut options = ExportOptions::new("node\"1,\n", 0);
                options.layout = layout;
                options.metadata.pilot = "O'Brien, \"Ace\"\r\nHFX".to_owned();
                let ds = match Dataset::open(&source, "node\"1,\n", Selection::default(), options) {
                    Ok(ds) => ds,
                    Err(e) => panic!("the catalog pass failed on records it must take: {e}"),
                };
                let stem = ds.options.stem.clone();
                let mut out = DirOutput::new(dir.path(), false).unwrap();
                let result = export(&ds, *format, &mut out);
                match result {
                    Ok(_) => {
                        out.commit().unwrap();
                    }
                    Err(e) => {
                        drop(out);
                        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
                        prop_assert!(left.is_empty(), "{format:?}: a failed export ({e}) left {left:?}");
                        continue;
                    }
                }
                if *format == Format::Csv && layout == Layout::Tidy {
                    let path = dir.path().join(format!("{stem}.csv"));
                    let mut reader = csv::ReaderBuilder::new().from_path(&path).unwrap();
                    let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>().unwrap();
                    prop_assert_eq!(rows.len(), readings);
                    for row in &rows {
                        prop_assert_eq!(&row[1], "node\"1,\n");
                    }
                }
            }
        }
    }
}
