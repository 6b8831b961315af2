//! GeoJSON (RFC 7946), `STEM.geojson`: a FeatureCollection whose first Feature is the
//! track (a LineString of every GNSS fix with UTC, its times in `properties.times`, one
//! per vertex), followed by one Feature per sensor instant (every sensor's, the GNSS
//! receiver's too) with the instant's values in its properties and, as geometry, the
//! Point of the GNSS fix nearest in time within 1 s.
//!
//! Invariants:
//! - positions are `[longitude, latitude, height]` with the height above the WGS 84
//!   ellipsoid (`altitude_msl + geoid_separation`), as RFC 7946 defines a position's third
//!   element; a fix without both altitudes is a two-element position;
//! - numbers print in serde_json's shortest round-trip form, so a reader parsing them into
//!   `f64` gets the very values Aloft holds; a value that is not finite is `null`;
//! - an instant without UTC (no time correlation for its boot) or without a fix within
//!   1 s is still a Feature, with `"geometry": null`, its monotonic time and boot, so
//!   nothing is left out and nothing is given an invented place or time;
//! - the document is written as it goes: the track's coordinates, times and time sources
//!   are spooled to temporary files in one pass, the Points stream in another; only the
//!   fixes' positions are held, for the nearest-in-time lookup.

use std::io::{BufWriter, Seek, Write};

use serde_json::{Map, Value, json};

use crate::ExportError;
use crate::formats::csv::copy;
use crate::formats::track::{Fix, NEAREST_TOLERANCE_NS, Series, gnss_sensor, no_fix};
use crate::output::Output;
use crate::rows::{Dataset, Instant};
use crate::source::hex;
use crate::time::{rfc3339_ns, rfc3339_s, source_name};

/// Where the track's heights come from, as its properties say.
pub const HEIGHT: &str = "height above the WGS 84 ellipsoid (altitude_msl + geoid_separation), m, as RFC 7946 positions are; a two-element position has no height";

/// A fix's position for a Point.
#[derive(Debug, Clone, Copy)]
struct Position {
    lon: f64,
    lat: f64,
    height: Option<f64>,
}

impl Position {
    fn of(fix: &Fix) -> Position {
        Position {
            lon: fix.longitude,
            lat: fix.latitude,
            height: fix.ellipsoidal_height().filter(|h| h.is_finite()),
        }
    }

    fn json(&self) -> Value {
        match self.height {
            Some(h) => json!([self.lon, self.lat, h]),
            None => json!([self.lon, self.lat]),
        }
    }
}

fn io(e: std::io::Error) -> ExportError {
    ExportError::Write(e)
}

fn json_err(e: serde_json::Error) -> ExportError {
    ExportError::Write(e.into())
}

/// A temporary file holding one JSON array's elements, comma-separated.
struct Spool {
    file: BufWriter<std::fs::File>,
    n: u64,
}

impl Spool {
    fn new() -> Result<Spool, ExportError> {
        Ok(Spool {
            file: BufWriter::with_capacity(64 << 10, tempfile::tempfile().map_err(io)?),
            n: 0,
        })
    }

    fn push(&mut self, v: &Value) -> Result<(), ExportError> {
        if self.n > 0 {
            self.file.write_all(b",").map_err(io)?;
        }
        self.n += 1;
        serde_json::to_writer(&mut self.file, v).map_err(json_err)
    }

    fn into_file(self) -> Result<std::fs::File, ExportError> {
        let mut f = self.file.into_inner().map_err(|e| io(e.into_error()))?;
        f.rewind().map_err(io)?;
        Ok(f)
    }
}

/// Writes `STEM.geojson`.
pub fn write(ds: &Dataset<'_>, out: &mut dyn Output) -> Result<(), ExportError> {
    let Some(gps) = gnss_sensor(ds)? else {
        return Err(no_fix("GeoJSON"));
    };
    let mut fixes: Series<Position> = Series::default();
    let mut coordinates = Spool::new()?;
    let mut times = Spool::new()?;
    let mut sources = Spool::new()?;
    ds.instants(&mut |i| {
        if i.sensor != gps {
            return Ok(());
        }
        let Some(fix) = Fix::of(i) else { return Ok(()) };
        let p = Position::of(&fix);
        fixes.insert(fix.utc_ns, p);
        coordinates.push(&p.json())?;
        times.push(&Value::String(rfc3339_ns(fix.utc_ns)))?;
        sources.push(&Value::String(source_name(fix.time_source).to_owned()))?;
        Ok(())
    })?;
    let vertices = coordinates.n;
    if vertices == 0 {
        return Err(no_fix("GeoJSON"));
    }
    let mut coordinates = Some(coordinates.into_file()?);
    let mut times = Some(times.into_file()?);
    let mut sources = Some(sources.into_file()?);
    let meta = &ds.options.metadata;
    let properties = json!({
        "kind": "track",
        "node": ds.node,
        "sensor": gps,
        "title": meta.title,
        "platform": meta.platform,
        "project": meta.project,
        "institution": meta.institution,
        "license": meta.license,
        "created": rfc3339_s(ds.options.created_utc_ns),
        "height": HEIGHT,
        "vertices": vertices,
        "position_tolerance_s": NEAREST_TOLERANCE_NS as f64 / 1e9,
        "sidecar": format!("{}.sidecar.json", ds.options.stem),
    });
    let name = format!("{}.geojson", ds.options.stem);
    out.file(&name, "geojson", "application/geo+json", &mut |w| {
        let (Some(mut c), Some(mut t), Some(mut s)) =
            (coordinates.take(), times.take(), sources.take())
        else {
            return Err(ExportError::Write(std::io::Error::other(
                "the track was already written",
            )));
        };
        // One vertex makes a Point: a LineString needs two positions.
        let (kind, open, close) = if vertices >= 2 {
            ("LineString", "[", "]")
        } else {
            ("Point", "", "")
        };
        write!(
            w,
            "{{\"type\":\"FeatureCollection\",\"features\":[\n{{\"type\":\"Feature\",\"id\":\"track\",\"geometry\":{{\"type\":\"{kind}\",\"coordinates\":{open}"
        )
        .map_err(io)?;
        copy(&mut c, w)?;
        write!(w, "{close}}},\"properties\":").map_err(io)?;
        // The fixed properties, then the two per-vertex arrays.
        let text = serde_json::to_string(&properties).map_err(json_err)?;
        let open_object = text.strip_suffix('}').unwrap_or(&text);
        write!(w, "{open_object},\"times\":[").map_err(io)?;
        copy(&mut t, w)?;
        w.write_all(b"],\"time_sources\":[").map_err(io)?;
        copy(&mut s, w)?;
        w.write_all(b"]}}").map_err(io)?;
        ds.instants(&mut |i| {
            w.write_all(b",\n").map_err(io)?;
            serde_json::to_writer(&mut *w, &point(i, &fixes)).map_err(json_err)
        })?;
        w.write_all(b"\n]}\n").map_err(io)
    })?;
    Ok(())
}

/// The Feature of one sensor instant.
fn point(i: &Instant, fixes: &Series<Position>) -> Value {
    let at = i.utc_ns.and_then(|utc| fixes.nearest(utc));
    let geometry = match at {
        Some((_, p)) => json!({"type": "Point", "coordinates": p.json()}),
        None => Value::Null,
    };
    let mut props = Map::new();
    props.insert("sensor".into(), json!(i.sensor));
    props.insert("time".into(), json!(i.utc_ns.map(rfc3339_ns)));
    props.insert("time_source".into(), json!(source_name(i.time_source)));
    props.insert("mono_ns".into(), json!(i.mono_ns));
    props.insert("boot".into(), json!(i.boot.map(|b| hex(&b.0))));
    props.insert(
        "position_time".into(),
        json!(at.map(|(t, _)| rfc3339_ns(t))),
    );
    for (q, v, quality) in &i.values {
        props.insert(
            q.to_string(),
            json!({
                "value": if v.is_finite() { json!(v) } else { Value::Null },
                "unit": q.unit(),
                "quality": quality.names().collect::<Vec<_>>(),
            }),
        );
    }
    json!({"type": "Feature", "geometry": geometry, "properties": props})
}
