//! GeoJSON exports of the simulated flight, read back by the `geojson` package (PyPI) with
//! its validation, and by Python's `json` for the exact numbers (the `geojson` package
//! rounds coordinates to 6 decimals as it loads): the track's every vertex and time, and
//! every sensor instant's Feature with its values, time source and nearest fix.

#![allow(clippy::unwrap_used)]

mod track_common;

use aloft_dataset::{Format, Instant, Selection};
use aloft_protocol::Quantity;
use aloft_test_support::flight::FlightOptions;
use aloft_test_support::python;
use serde_json::Value;
use track_common::*;

const READ_BACK: &str = r#"
import sys, json
import geojson

with open(sys.argv[1], encoding="utf-8") as f:
    text = f.read()
obj = geojson.loads(text)
plain = json.loads(text)

def exact(x):
    # repr: the shortest text that parses back to the same float
    if isinstance(x, float):
        return repr(x)
    if isinstance(x, list):
        return [exact(v) for v in x]
    if isinstance(x, dict):
        return {k: exact(v) for k, v in x.items()}
    return x

track = obj["features"][0]
loaded = track["geometry"]["coordinates"]
held = plain["features"][0]["geometry"]["coordinates"]
if track["geometry"]["type"] == "Point":
    loaded, held = [loaded], [held]
rounded_ok = all(a == round(b, 6) for pa, pb in zip(loaded, held) for a, b in zip(pa, pb))
print(json.dumps({
    "valid": obj.is_valid,
    "errors": obj.errors(),
    "class": type(obj).__name__,
    "feature_classes": sorted({type(f).__name__ for f in obj["features"]}),
    "track_geometry_class": type(track["geometry"]).__name__,
    "rounded_ok": rounded_ok,
    "doc": exact(plain),
}))
"#;

fn read_back(path: &std::path::Path) -> Option<Value> {
    let python = python::readers()?;
    let out = python::run(&python, READ_BACK, &[path.as_os_str()]);
    Some(serde_json::from_str(&out.stdout).unwrap())
}

fn num(v: &Value) -> f64 {
    v.as_str().unwrap().parse().unwrap()
}

fn position(fix: &Instant) -> Vec<f64> {
    let lon = fix.get(Quantity::Longitude).unwrap().0;
    let lat = fix.get(Quantity::Latitude).unwrap().0;
    let h =
        fix.get(Quantity::AltitudeMsl).unwrap().0 + fix.get(Quantity::GeoidSeparation).unwrap().0;
    vec![lon, lat, h]
}

fn check(opts: FlightOptions) -> Value {
    let source = memory(opts);
    let (dir, files) =
        export_to_dir(&source, Format::Geojson, Selection::default(), options()).unwrap();
    assert_eq!(files[0].path, "aloft-glider-1.geojson");
    assert_eq!(files[0].mediatype, "application/geo+json");
    let Some(read) = read_back(&dir.path().join("aloft-glider-1.geojson")) else {
        return Value::Null;
    };
    assert_eq!(read["valid"], true, "{}", read["errors"]);
    assert_eq!(read["class"], "FeatureCollection");
    assert_eq!(read["feature_classes"], serde_json::json!(["Feature"]));
    assert_eq!(read["track_geometry_class"], "LineString");
    assert_eq!(read["rounded_ok"], true);
    let doc = &read["doc"];
    let features = doc["features"].as_array().unwrap();

    let all = instants(&source, Selection::default());
    let fixes: Vec<&Instant> = all
        .iter()
        .filter(|i| i.sensor == "gps" && i.utc_ns.is_some())
        .collect();
    let track = &features[0];
    let coords = track["geometry"]["coordinates"].as_array().unwrap();
    let times = track["properties"]["times"].as_array().unwrap();
    let sources = track["properties"]["time_sources"].as_array().unwrap();
    assert_eq!(coords.len(), fixes.len());
    assert_eq!(times.len(), coords.len(), "one time per vertex");
    assert_eq!(sources.len(), coords.len());
    for ((c, t), fix) in coords.iter().zip(times).zip(&fixes) {
        let got: Vec<f64> = c.as_array().unwrap().iter().map(num).collect();
        assert_eq!(got, position(fix), "every coordinate exactly as held");
        assert!((-180.0..=180.0).contains(&got[0]) && (-90.0..=90.0).contains(&got[1]));
        let t = t.as_str().unwrap();
        assert_eq!(aloft_dataset::time::parse_utc(t), fix.utc_ns, "{t}");
    }
    assert!(
        track["properties"]["height"]
            .as_str()
            .unwrap()
            .contains("ellipsoid")
    );

    // Every instant of every sensor is a Feature, in stream order.
    let points = &features[1..];
    assert_eq!(points.len(), all.len());
    for (f, i) in points.iter().zip(&all) {
        let p = &f["properties"];
        assert_eq!(p["sensor"], i.sensor.as_str());
        assert_eq!(
            p["time_source"],
            aloft_dataset::time::source_name(i.time_source)
        );
        assert_eq!(p["mono_ns"].as_u64().unwrap(), i.mono_ns);
        match i.utc_ns {
            Some(utc) => assert_eq!(
                aloft_dataset::time::parse_utc(p["time"].as_str().unwrap()),
                Some(utc)
            ),
            None => assert_eq!(p["time"], Value::Null, "no UTC: no invented time"),
        }
        for (q, v, quality) in &i.values {
            let e = &p[q.to_string()];
            assert_eq!(num(&e["value"]), *v, "{} {q}", i.sensor);
            assert_eq!(e["unit"], q.unit().unwrap());
            let names: Vec<&str> = quality.names().collect();
            assert_eq!(e["quality"], serde_json::json!(names));
        }
        // The nearest fix within 1 s (a tie to the earlier), or no geometry.
        let nearest = i.utc_ns.and_then(|utc| {
            fixes
                .iter()
                .map(|fx| (fx.utc_ns.unwrap().abs_diff(utc), fx.utc_ns.unwrap(), *fx))
                .filter(|(d, _, _)| *d <= 1_000_000_000)
                .min_by_key(|(d, t, _)| (*d, *t))
                .map(|(_, _, fx)| fx)
        });
        match nearest {
            Some(fx) => {
                assert_eq!(f["geometry"]["type"], "Point");
                let got: Vec<f64> = f["geometry"]["coordinates"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(num)
                    .collect();
                assert_eq!(got, position(fx));
            }
            None => assert_eq!(f["geometry"], Value::Null),
        }
    }
    read
}

#[test]
fn the_track_and_every_sensor_instant_read_back_exactly() {
    let read = check(flight());
    if read.is_null() {
        return;
    }
    let features = read["doc"]["features"].as_array().unwrap();
    // The second boot's 10 static readings have no UTC: Features without time or place.
    let without = features
        .iter()
        .filter(|f| f["properties"]["time_source"] == "monotonic")
        .count();
    assert_eq!(without, 10);
    assert!(
        features
            .iter()
            .any(|f| f["properties"]["time_source"] == "reconstructed")
    );
}

#[test]
fn a_single_fix_is_a_point_track() {
    let source = memory(flight());
    let sel = Selection {
        sensors: vec!["gps".to_owned()],
        from_utc_ns: Some(1_780_000_000_000_000_000 + 50_000_000_000),
        to_utc_ns: Some(1_780_000_000_000_000_000 + 51_000_000_000),
        ..Selection::default()
    };
    let (dir, _) = export_to_dir(&source, Format::Geojson, sel, options()).unwrap();
    let Some(read) = read_back(&dir.path().join("aloft-glider-1.geojson")) else {
        return;
    };
    assert_eq!(read["valid"], true, "{}", read["errors"]);
    assert_eq!(read["track_geometry_class"], "Point");
    assert_eq!(
        read["doc"]["features"][0]["properties"]["times"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_selection_without_a_fix_is_refused() {
    let source = memory(flight());
    let sel = Selection {
        sensors: vec!["cosmic".to_owned()],
        ..Selection::default()
    };
    let e = export_to_dir(&source, Format::Geojson, sel, options()).unwrap_err();
    assert!(
        e.is_request_error() && e.to_string().contains("GeoJSON needs GNSS fixes"),
        "{e}"
    );
}

#[test]
fn hostile_metadata_stays_valid_json() {
    let source = memory(FlightOptions {
        duration_s: 30.0,
        ..flight()
    });
    let mut opts = options();
    opts.metadata.title = "\"}],\u{0}\n<b>\\".to_owned();
    let (dir, _) =
        export_to_dir(&source, Format::Geojson, Selection::default(), opts.clone()).unwrap();
    let Some(read) = read_back(&dir.path().join("aloft-glider-1.geojson")) else {
        return;
    };
    assert_eq!(read["valid"], true);
    assert_eq!(
        read["doc"]["features"][0]["properties"]["title"],
        opts.metadata.title
    );
}

#[test]
fn a_store_directory_gives_the_same_file_as_the_records_held_by_a_hub() {
    store_export_equals_memory_export(Format::Geojson);
}

#[test]
fn the_sidecar_lists_the_readings_without_utc_as_in_the_file() {
    assert_eq!(
        without_utc_in_sidecar(Format::Geojson),
        [("static".to_owned(), 10, true)]
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    #[test]
    fn any_metadata_gives_a_json_document_that_keeps_it(
        title in proptest::prelude::any::<String>(),
        platform in proptest::prelude::any::<String>(),
    ) {
        let source = memory(FlightOptions { duration_s: 22.0, ..flight() });
        let mut opts = options();
        opts.metadata.title = title.clone();
        opts.metadata.platform = platform.clone();
        let (dir, _) = export_to_dir(&source, Format::Geojson, Selection::default(), opts).unwrap();
        let doc: Value = serde_json::from_slice(&std::fs::read(dir.path().join("aloft-glider-1.geojson")).unwrap()).unwrap();
        let props = &doc["features"][0]["properties"];
        proptest::prop_assert_eq!(props["title"].as_str(), Some(title.as_str()));
        proptest::prop_assert_eq!(props["platform"].as_str(), Some(platform.as_str()));
    }
}
