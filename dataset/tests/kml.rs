//! KML exports of the simulated flight, read back by `fastkml` (PyPI), which validates
//! them against the OGC KML 2.2 and Google gx schemas as it parses: the extruded
//! LineString has every fix with its exact coordinates and MSL altitude, the gx:Track one
//! `when` per vertex; and any metadata text gives a well-formed document.

#![allow(clippy::unwrap_used)]

mod track_common;

use aloft_dataset::{Format, Instant, Selection};
use aloft_protocol::Quantity;
use aloft_test_support::flight::FlightOptions;
use aloft_test_support::python;
use proptest::prelude::*;
use serde_json::Value;
use track_common::*;

const READ_BACK: &str = r#"
import sys, json
import xml.etree.ElementTree as ET
from fastkml import kml

ET.parse(sys.argv[1])  # strict well-formedness (fastkml's lxml parser recovers)
k = kml.KML.parse(sys.argv[1])  # strict: validated against the KML 2.2 and gx schemas
document = k.features[0]
line_pm, track_pm = document.features
line = line_pm.kml_geometry
track = track_pm.kml_geometry
print(json.dumps({
    "document_name": document.name,
    "description": document.description,
    "line_kind": type(line).__name__,
    "extrude": line.extrude,
    "altitude_mode": line.altitude_mode.value,
    # repr: the shortest text that parses back to the same float
    "coords": [[repr(c) for c in p] for p in line.kml_coordinates.coords],
    "track_kind": type(track).__name__,
    "track_altitude_mode": track.altitude_mode.value,
    "whens": [w.dt.isoformat() for w in track.whens],
    "track_coords": [[repr(c) for c in item.coord.coords[0]] for item in track.track_items],
}))
"#;

fn read_back(path: &std::path::Path) -> Option<Value> {
    let python = python::readers()?;
    let out = python::run(&python, READ_BACK, &[path.as_os_str()]);
    Some(serde_json::from_str(&out.stdout).unwrap())
}

fn nums(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn the_extruded_track_has_every_fix_and_the_timed_track_every_time() {
    let source = memory(flight());
    let (dir, files) =
        export_to_dir(&source, Format::Kml, Selection::default(), options()).unwrap();
    assert_eq!(files[0].path, "aloft-glider-1.kml");
    let Some(read) = read_back(&dir.path().join("aloft-glider-1.kml")) else {
        return;
    };
    assert_eq!(read["line_kind"], "LineString");
    assert_eq!(read["extrude"], true);
    assert_eq!(read["altitude_mode"], "absolute");
    assert_eq!(read["track_kind"], "Track");
    assert_eq!(read["track_altitude_mode"], "absolute");
    let all = instants(&source, Selection::default());
    let fixes: Vec<&Instant> = all
        .iter()
        .filter(|i| i.sensor == "gps" && i.utc_ns.is_some())
        .collect();
    let coords = read["coords"].as_array().unwrap();
    let track = read["track_coords"].as_array().unwrap();
    let whens = read["whens"].as_array().unwrap();
    assert_eq!(coords.len(), fixes.len());
    assert_eq!(track.len(), fixes.len());
    assert_eq!(whens.len(), fixes.len());
    for (((c, t), w), fix) in coords.iter().zip(track).zip(whens).zip(&fixes) {
        let want = vec![
            fix.get(Quantity::Longitude).unwrap().0,
            fix.get(Quantity::Latitude).unwrap().0,
            fix.get(Quantity::AltitudeMsl).unwrap().0,
        ];
        assert_eq!(nums(c), want, "LineString vertex: lon, lat, MSL altitude");
        assert_eq!(nums(t), want, "gx:coord");
        // Python's datetime holds microseconds: the time to the microsecond.
        let got = aloft_dataset::time::parse_utc(w.as_str().unwrap()).unwrap();
        let utc = fix.utc_ns.unwrap();
        assert_eq!(got, utc.div_euclid(1_000) * 1_000, "{w}");
    }
}

#[test]
fn a_selection_without_a_fix_is_refused() {
    let source = memory(flight());
    let sel = Selection {
        sensors: vec!["static".to_owned()],
        ..Selection::default()
    };
    let e = export_to_dir(&source, Format::Kml, sel, options()).unwrap_err();
    assert!(
        e.is_request_error() && e.to_string().contains("KML needs GNSS fixes"),
        "{e}"
    );
}

#[test]
fn hostile_metadata_is_escaped_and_reads_back_as_written() {
    let source = memory(FlightOptions {
        duration_s: 30.0,
        ..flight()
    });
    let mut opts = options();
    opts.metadata.title = "<![CDATA[ ]]> & </name><script>\"x\"</script>".to_owned();
    opts.metadata.platform = "Stemme's \u{1}glider".to_owned();
    let (dir, _) = export_to_dir(&source, Format::Kml, Selection::default(), opts.clone()).unwrap();
    let Some(read) = read_back(&dir.path().join("aloft-glider-1.kml")) else {
        return;
    };
    assert_eq!(read["document_name"], opts.metadata.title);
    assert!(
        read["description"]
            .as_str()
            .unwrap()
            .contains("Stemme's \u{FFFD}glider")
    );
}

#[test]
fn a_store_directory_gives_the_same_file_as_the_records_held_by_a_hub() {
    store_export_equals_memory_export(Format::Kml);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn any_metadata_gives_a_well_formed_document(
        title in any::<String>(),
        platform in "\\PC*",
        project in any::<String>(),
    ) {
        let source = memory(FlightOptions { duration_s: 22.0, ..flight() });
        let mut opts = options();
        opts.metadata.title = title;
        opts.metadata.platform = platform;
        opts.metadata.project = project;
        let (dir, _) = export_to_dir(&source, Format::Kml, Selection::default(), opts).unwrap();
        let text = std::fs::read_to_string(dir.path().join("aloft-glider-1.kml")).unwrap();
        let doc = roxmltree::Document::parse(&text);
        prop_assert!(doc.is_ok(), "{:?}", doc.err());
        let doc = doc.unwrap();
        prop_assert_eq!(doc.root_element().tag_name().name(), "kml");
        let placemarks = doc.descendants().filter(|n| n.has_tag_name("Placemark")).count();
        prop_assert_eq!(placemarks, 2);
    }
}

#[test]
fn a_single_fix_is_an_extruded_point() {
    let source = memory(flight());
    let sel = Selection {
        sensors: vec!["gps".to_owned()],
        from_utc_ns: Some(1_780_000_000_000_000_000 + 50_000_000_000),
        to_utc_ns: Some(1_780_000_000_000_000_000 + 51_000_000_000),
        ..Selection::default()
    };
    let (dir, _) = export_to_dir(&source, Format::Kml, sel, options()).unwrap();
    let Some(read) = read_back(&dir.path().join("aloft-glider-1.kml")) else {
        return;
    };
    assert_eq!(read["line_kind"], "Point");
    assert_eq!(read["extrude"], true);
    assert_eq!(read["coords"].as_array().unwrap().len(), 1);
    assert_eq!(read["whens"].as_array().unwrap().len(), 1);
}

#[test]
fn the_sidecar_lists_the_readings_without_utc_as_left_out() {
    // The second boot's 10 static readings never got a time correlation.
    assert_eq!(
        without_utc_in_sidecar(Format::Kml),
        [("static".to_owned(), 10, false)]
    );
}
