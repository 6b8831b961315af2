//! The simulated flight with the values and names a broken or hostile agent could send
//! (NaN, infinities, the largest and smallest doubles, positions off the globe, sensor
//! names and devices with separators, quotes, line breaks and markup), exported as ICARTT,
//! IGC, GeoJSON and KML: every export succeeds, and each file still reads back with its
//! real reader without an error.

#![allow(clippy::unwrap_used)]

mod track_common;

use aloft_dataset::source::MemorySource;
use aloft_dataset::{Completeness, Format, Selection};
use aloft_protocol::{Quantity, Record, StoreEpoch};
use aloft_test_support::flight::{FlightOptions, FlightRecords};
use aloft_test_support::python;
use serde_json::Value;
use track_common::*;

const CHECK: &str = r#"
import sys, os, glob, json, warnings
fmt, d = sys.argv[1], sys.argv[2]
report = {}
if fmt == "icartt":
    import icartt
    for p in sorted(glob.glob(os.path.join(d, "*.ict"))):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = icartt.Dataset(p)
        report[os.path.basename(p)] = {
            "complaints": [str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)],
            "header_exact": ds.nHeader == ds.nHeaderFile,
            "rows": int(len(ds.data[ds.independentVariable.shortname])),
        }
elif fmt == "igc":
    from aerofiles.igc import Reader
    for p in sorted(glob.glob(os.path.join(d, "*.igc"))):
        with open(p) as f:
            igc = Reader().read(f)
        report[os.path.basename(p)] = {
            "errors": {k: [repr(e) for e in v[0]] for k, v in igc.items() if v[0]},
            "fixes": len(igc["fix_records"][1]),
        }
elif fmt == "geojson":
    import geojson
    for p in sorted(glob.glob(os.path.join(d, "*.geojson"))):
        with open(p, encoding="utf-8") as f:
            obj = geojson.loads(f.read())
        report[os.path.basename(p)] = {"valid": obj.is_valid, "features": len(obj["features"])}
elif fmt == "kml":
    import xml.etree.ElementTree as ET
    from fastkml import kml
    for p in sorted(glob.glob(os.path.join(d, "*.kml"))):
        ET.parse(p)
        k = kml.KML.parse(p)
        report[os.path.basename(p)] = {"placemarks": len(k.features[0].features)}
print(json.dumps(report))
"#;

fn hostile_flight() -> MemorySource {
    let odd = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MAX,
        -0.0,
        5e-324,
        1e300,
    ];
    // The static port's, the pitot's and the detector's names.
    let names = [
        "st,at\"ic\r\n<x>&amp;",
        "HFPLT:evil\r\nB1200000000000N00000000EA0000000000",
        "cosmic]]>",
    ];
    let epoch = StoreEpoch([3; 16]);
    let mut n = 0usize;
    let mut latitudes = 0usize;
    let records: Vec<(StoreEpoch, u64, Record)> = FlightRecords::new(FlightOptions {
        duration_s: 60.0,
        ..flight()
    })
    .map(|r| match r {
        Record::Reading(mut reading) => {
            n += 1;
            if n.is_multiple_of(7) {
                reading.value = odd[(n / 7) % odd.len()];
            }
            // Every tenth latitude off the globe: not a fix, still a value.
            if reading.quantity == Quantity::Latitude {
                latitudes += 1;
                if latitudes.is_multiple_of(10) {
                    reading.value = 123.0;
                }
            }
            Record::Reading(reading)
        }
        Record::Descriptor(mut d) if d.name != "gps" => {
            d.name = names[(usize::from(d.sensor.0) + 2) % names.len()].to_owned();
            d.descriptor.device = format!("{}\u{0}, <dev>", d.descriptor.device);
            Record::Descriptor(d)
        }
        other => other,
    })
    .enumerate()
    .map(|(i, r)| (epoch, i as u64, r))
    .collect();
    MemorySource::new(records, Completeness::default())
}

#[test]
fn hostile_values_and_names_export_and_read_back_in_every_track_format() {
    let source = hostile_flight();
    for format in [Format::Icartt, Format::Igc, Format::Geojson, Format::Kml] {
        let mut opts = options();
        opts.metadata.pilot = "O'Brien, \"Ace\"\r\nHFX".to_owned();
        opts.metadata.title = "<b>&</b>\u{1}".to_owned();
        let (dir, files) = export_to_dir(&source, format, Selection::default(), opts).unwrap();
        assert!(files.len() >= 2, "{format:?}: {files:?}");
        let Some(python) = python::readers() else {
            return;
        };
        let out = python::run(
            &python,
            CHECK,
            &[format.name().as_ref(), dir.path().as_os_str()],
        );
        let report: Value = serde_json::from_str(&out.stdout).unwrap();
        let entries = report.as_object().unwrap();
        assert!(!entries.is_empty(), "{format:?}: no file read");
        for (name, r) in entries {
            match format {
                Format::Icartt => {
                    assert_eq!(r["complaints"], serde_json::json!([]), "{name}");
                    assert_eq!(r["header_exact"], true, "{name}");
                    assert!(r["rows"].as_u64().unwrap() > 0, "{name}");
                }
                Format::Igc => {
                    assert_eq!(r["errors"], serde_json::json!({}), "{name}");
                    assert!(r["fixes"].as_u64().unwrap() > 30, "{name}: {r}");
                }
                Format::Geojson => assert_eq!(r["valid"], true, "{name}"),
                _ => assert_eq!(r["placemarks"], 2, "{name}"),
            }
        }
    }
}
