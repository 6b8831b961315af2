//! KML 2.2 for Google Earth, `STEM.kml`: a Document with the track twice, as a
//! Placemark with an extruded LineString (the curtain from the track down to the ground
//! that shows the climb) and as a Placemark with a `gx:Track` (one `when` per vertex, so
//! Google Earth's time slider plays the flight).
//!
//! Invariants:
//! - coordinates are `longitude,latitude,altitude` with the altitude above mean sea level
//!   (`altitude_msl`), as KML's `absolute` altitude mode defines it; a fix without one
//!   is `longitude,latitude`;
//! - numbers print in Rust's shortest round-trip form, so a reader gets the very `f64`s;
//! - every text from outside (metadata, sensor and node names) is escaped, and characters
//!   XML 1.0 cannot hold become U+FFFD, so any metadata gives a well-formed document;
//! - fixes without UTC cannot be on a timed track and are left out (the sidecar lists
//!   them); the LineString holds the same fixes as the gx:Track;
//! - the document streams: coordinates, times and gx coordinates are spooled to temporary
//!   files in one pass and copied in; nothing else is held.

use std::fmt::Write as _;
use std::io::{BufWriter, Seek, Write};

use crate::ExportError;
use crate::formats::csv::copy;
use crate::formats::track::{Fix, gnss_sensor, no_fix};
use crate::output::Output;
use crate::rows::Dataset;
use crate::time::{rfc3339_ns, rfc3339_s};

/// `text` escaped for XML character data and attribute values; characters XML 1.0 does
/// not allow (most C0 controls, U+FFFE, U+FFFF) become U+FFFD.
pub fn escape(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '"' => s.push_str("&quot;"),
            '\'' => s.push_str("&apos;"),
            '\t' | '\n' | '\r' => s.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => s.push('\u{FFFD}'),
            c => s.push(c),
        }
    }
    s
}

fn io(e: std::io::Error) -> ExportError {
    ExportError::Write(e)
}

struct Spool {
    file: BufWriter<std::fs::File>,
}

impl Spool {
    fn new() -> Result<Spool, ExportError> {
        Ok(Spool {
            file: BufWriter::with_capacity(64 << 10, tempfile::tempfile().map_err(io)?),
        })
    }

    fn into_file(self) -> Result<std::fs::File, ExportError> {
        let mut f = self.file.into_inner().map_err(|e| io(e.into_error()))?;
        f.rewind().map_err(io)?;
        Ok(f)
    }
}

/// Writes `STEM.kml`.
pub fn write(ds: &Dataset<'_>, out: &mut dyn Output) -> Result<(), ExportError> {
    let Some(gps) = gnss_sensor(ds)? else {
        return Err(no_fix("KML"));
    };
    let mut line = Spool::new()?;
    let mut whens = Spool::new()?;
    let mut coords = Spool::new()?;
    let mut vertices = 0u64;
    let mut first_last: Option<(i64, i64)> = None;
    let mut text = String::new();
    ds.instants(&mut |i| {
        if i.sensor != gps {
            return Ok(());
        }
        let Some(fix) = Fix::of(i) else { return Ok(()) };
        vertices += 1;
        first_last = Some(first_last.map_or((fix.utc_ns, fix.utc_ns), |(a, _)| (a, fix.utc_ns)));
        text.clear();
        let _ = write!(text, "{},{}", fix.longitude, fix.latitude);
        if let Some(alt) = fix.altitude_msl {
            let _ = write!(text, ",{alt}");
        }
        text.push('\n');
        line.file.write_all(text.as_bytes()).map_err(io)?;
        text.clear();
        let _ = writeln!(text, "<when>{}</when>", rfc3339_ns(fix.utc_ns));
        whens.file.write_all(text.as_bytes()).map_err(io)?;
        text.clear();
        let _ = write!(text, "<gx:coord>{} {}", fix.longitude, fix.latitude);
        if let Some(alt) = fix.altitude_msl {
            let _ = write!(text, " {alt}");
        }
        text.push_str("</gx:coord>\n");
        coords.file.write_all(text.as_bytes()).map_err(io)
    })?;
    let Some((first, last)) = first_last else {
        return Err(no_fix("KML"));
    };
    let mut files = Some((line.into_file()?, whens.into_file()?, coords.into_file()?));
    let meta = &ds.options.metadata;
    let title = if meta.title.is_empty() {
        format!("{} ({})", ds.options.stem, ds.node)
    } else {
        meta.title.clone()
    };
    let description = format!(
        "Flight of {} (node {}), sensor {gps}, {} to {}: {vertices} GNSS fixes. Altitudes above mean sea level (altitude_msl). Project {}; {}; licence {}. Exported by Aloft at {}; readings without UTC are left out and listed in {}.sidecar.json.",
        meta.platform,
        ds.node,
        rfc3339_ns(first),
        rfc3339_ns(last),
        meta.project,
        meta.institution,
        meta.license,
        rfc3339_s(ds.options.created_utc_ns),
        ds.options.stem,
    );
    let name = format!("{}.kml", ds.options.stem);
    out.file(&name, "kml", "application/vnd.google-earth.kml+xml", &mut |w| {
        let Some((mut line, mut whens, mut coords)) = files.take() else {
            return Err(io(std::io::Error::other("the track was already written")));
        };
        write!(
            w,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <kml xmlns=\"http://www.opengis.net/kml/2.2\" xmlns:gx=\"http://www.google.com/kml/ext/2.2\">\n\
             <Document>\n<name>{}</name>\n<description>{}</description>\n\
             <Style id=\"track-style\"><LineStyle><color>ff00aaff</color><width>2</width></LineStyle>\
             <PolyStyle><color>5500aaff</color></PolyStyle></Style>\n\
             <Placemark id=\"track\">\n<name>{}</name>\n<styleUrl>#track-style</styleUrl>\n",
            escape(&title),
            escape(&description),
            escape(&format!("track of {gps}")),
        )
        .map_err(io)?;
        // A LineString needs two positions; a single fix is a Point.
        let kind = if vertices >= 2 { "LineString" } else { "Point" };
        write!(
            w,
            "<{kind}>\n<extrude>1</extrude>\n<altitudeMode>absolute</altitudeMode>\n<coordinates>\n"
        )
        .map_err(io)?;
        copy(&mut line, w)?;
        write!(
            w,
            "</coordinates>\n</{kind}>\n</Placemark>\n\
             <Placemark id=\"timed-track\">\n<name>{}</name>\n<styleUrl>#track-style</styleUrl>\n\
             <gx:Track>\n<altitudeMode>absolute</altitudeMode>\n",
            escape(&format!("timed track of {gps}")),
        )
        .map_err(io)?;
        copy(&mut whens, w)?;
        copy(&mut coords, w)?;
        w.write_all(b"</gx:Track>\n</Placemark>\n</Document>\n</kml>\n")
            .map_err(io)
    })?;
    ds.mark_without_utc_left_out();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn markup_and_controls_are_escaped() {
        assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
        assert_eq!(escape("\u{0}x\u{1b}"), "\u{FFFD}x\u{FFFD}");
    }

    proptest! {
        #[test]
        fn any_text_escaped_is_well_formed_xml_that_reads_back(text in any::<String>()) {
            let doc = format!("<a b=\"{0}\">{0}</a>", escape(&text));
            let parsed = roxmltree::Document::parse(&doc);
            prop_assert!(parsed.is_ok(), "{:?}: {:?}", text, parsed.err());
            let parsed = parsed.unwrap();
            let want: String = text
                .chars()
                .map(|c| if ((c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{FFFE}' || c == '\u{FFFF}' { '\u{FFFD}' } else { c })
                .collect();
            // XML normalises line ends in text; compare with them normalised.
            let norm = |s: &str| s.replace("\r\n", "\n").replace('\r', "\n");
            prop_assert_eq!(norm(parsed.root_element().text().unwrap_or("")), norm(&want));
        }
    }
}
