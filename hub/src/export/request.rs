//! The export route's query: `format=F[&layout=L][&sensor=S]...[&quantity=Q]...[&from=T]
//! [&to=T][&interval=D][&method=M][&stem=NAME][&upto=EPOCH:SEQ,...][&created=NS]
//! [&skip=BYTES]`, read from the raw query string because `sensor` and `quantity` repeat.
//!
//! Invariants: every parameter is checked here, before a record is read, and refused with a
//! message that names it and says what it takes; an unknown or repeated parameter is
//! refused, not ignored; parsing never panics on any input (a property test says so).

use aloft_dataset::formats::file_safe;
use aloft_dataset::selection::Resample;
use aloft_dataset::time::parse_utc;
use aloft_dataset::{Format, Layout, Selection};
use aloft_protocol::{Quantity, StoreEpoch};

use crate::storage::streams::MAX_SEQ;

/// The longest stem accepted, in bytes (a longer file name gets a pax record in the tar).
pub const MAX_STEM: usize = 200;

/// A refused export query: the message says which parameter and what it takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RequestError(pub String);

impl From<aloft_dataset::ExportError> for RequestError {
    fn from(e: aloft_dataset::ExportError) -> Self {
        RequestError(e.to_string())
    }
}

/// An export query, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRequest {
    /// The format.
    pub format: Format,
    /// The layout (formats without layouts ignore it).
    pub layout: Layout,
    /// Sensors (all when empty).
    pub sensors: Vec<String>,
    /// Quantities (all when empty).
    pub quantities: Vec<Quantity>,
    /// From (inclusive), UTC ns.
    pub from_utc_ns: Option<i64>,
    /// To (exclusive), UTC ns.
    pub to_utc_ns: Option<i64>,
    /// Thinning or averaging.
    pub resample: Option<Resample>,
    /// The files' stem, made safe with [`file_safe`]; the default for the node when
    /// `None`.
    pub stem: Option<String>,
    /// The snapshot: the newest number per epoch; now's when `None`.
    pub upto: Option<Vec<(StoreEpoch, u64)>>,
    /// The creation time, ns; now when `None`.
    pub created_utc_ns: Option<i64>,
    /// Bytes of the stream the client has already.
    pub skip: u64,
}

impl ExportRequest {
    /// The selection the query makes.
    pub fn selection(&self) -> Selection {
        Selection {
            sensors: self.sensors.clone(),
            quantities: self.quantities.clone(),
            from_utc_ns: self.from_utc_ns,
            to_utc_ns: self.to_utc_ns,
            resample: self.resample,
        }
    }

    /// Parses a raw query string (without the `?`).
    pub fn parse(query: &str) -> Result<ExportRequest, RequestError> {
        let mut format = None;
        let mut layout = None;
        let mut sensors = Vec::new();
        let mut quantity_names = Vec::new();
        let mut from = None;
        let mut to = None;
        let mut interval = None;
        let mut method = None;
        let mut stem = None;
        let mut upto = None;
        let mut created = None;
        let mut skip = None;
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let value = value.into_owned();
            let once = |slot: &mut Option<String>, value: String| {
                if slot.is_some() {
                    return Err(RequestError(format!(
                        "parameter {key} is given more than once; only sensor and quantity repeat"
                    )));
                }
                *slot = Some(value);
                Ok(())
            };
            match key.as_ref() {
                "format" => once(&mut format, value)?,
                "layout" => once(&mut layout, value)?,
                "sensor" => sensors.push(value),
                "quantity" => quantity_names.push(value),
                "from" => once(&mut from, value)?,
                "to" => once(&mut to, value)?,
                "interval" => once(&mut interval, value)?,
                "method" => once(&mut method, value)?,
                "stem" => once(&mut stem, value)?,
                "upto" => once(&mut upto, value)?,
                "created" => once(&mut created, value)?,
                "skip" => once(&mut skip, value)?,
                other => {
                    return Err(RequestError(format!(
                        "unknown parameter {other:?}; the export takes format, layout, sensor, \
                         quantity, from, to, interval, method, stem, upto, created, skip \
                         (docs/api.md)"
                    )));
                }
            }
        }
        let format = match format {
            Some(name) => Format::from_name(&name)?,
            None => {
                return Err(RequestError(format!(
                    "format is required (formats: {})",
                    Format::ALL
                        .iter()
                        .map(|f| f.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        };
        let layout = match layout {
            Some(name) => Layout::from_name(&name)?,
            None => Layout::Tidy,
        };
        let quantities = Selection::parse_quantities(&quantity_names)?;
        for s in &sensors {
            if s.is_empty() {
                return Err(RequestError("sensor is empty; name a sensor".to_owned()));
            }
        }
        let time = |text: Option<String>, what: &str| -> Result<Option<i64>, RequestError> {
            text.map(|t| {
                parse_utc(&t).ok_or_else(|| {
                    RequestError(format!(
                        "{what}={t:?} is neither RFC 3339 (2026-11-24T12:00:00Z) nor ns since 1970"
                    ))
                })
            })
            .transpose()
        };
        let from_utc_ns = time(from, "from")?;
        let to_utc_ns = time(to, "to")?;
        if let (Some(f), Some(t)) = (from_utc_ns, to_utc_ns)
            && f >= t
        {
            return Err(aloft_dataset::ExportError::EmptyRange {
                from: aloft_dataset::time::rfc3339_ns(f),
                to: aloft_dataset::time::rfc3339_ns(t),
            }
            .into());
        }
        let resample = match (interval, method) {
            (None, None) => None,
            (None, Some(m)) => {
                return Err(RequestError(format!(
                    "method={m:?} needs an interval (interval=10s)"
                )));
            }
            (Some(text), method) => {
                let d = humantime::parse_duration(&text).map_err(|e| {
                    RequestError(format!(
                        "interval={text:?} is not a duration like 10s or 1m: {e}"
                    ))
                })?;
                let interval_ns = u64::try_from(d.as_nanos())
                    .map_err(|_| RequestError(format!("interval={text:?} is too long")))?;
                if interval_ns == 0 {
                    return Err(aloft_dataset::ExportError::BadInterval.into());
                }
                Some(match method.as_deref() {
                    None | Some("decimate") => Resample::Decimate { interval_ns },
                    Some("mean") => Resample::Mean { interval_ns },
                    Some(other) => {
                        return Err(RequestError(format!(
                            "unknown method {other:?} (methods: decimate, mean)"
                        )));
                    }
                })
            }
        };
        // A stem is a name, not a path: one that names a folder or a place is refused;
        // any other is made safe (a space or a letter outside ASCII becomes `_`).
        if let Some(s) = &stem
            && (s.is_empty()
                || s.len() > MAX_STEM
                || s == "."
                || s == ".."
                || s.chars().any(|c| c == '/' || c == '\\' || c.is_control()))
        {
            return Err(RequestError(format!(
                "stem={s:?} is not a plain file name: 1 to {MAX_STEM} bytes, no / or \\ or \
                 control characters, not . or .."
            )));
        }
        let stem = stem.map(|s| file_safe(&s));
        let upto = upto.map(|text| parse_upto(&text)).transpose()?;
        let created_utc_ns = created
            .map(|text| {
                text.parse::<u64>()
                    .ok()
                    .and_then(|n| i64::try_from(n).ok())
                    .ok_or_else(|| {
                        RequestError(format!(
                            "created={text:?} is not a creation time in ns since 1970 (the \
                             Aloft-Export-Created header of the first answer)"
                        ))
                    })
            })
            .transpose()?;
        let skip = skip
            .map(|text| {
                text.parse::<u64>().map_err(|_| {
                    RequestError(format!(
                        "skip={text:?} is not a number of bytes already received"
                    ))
                })
            })
            .transpose()?
            .unwrap_or(0);
        Ok(ExportRequest {
            format,
            layout,
            sensors,
            quantities,
            from_utc_ns,
            to_utc_ns,
            resample,
            stem,
            upto,
            created_utc_ns,
            skip,
        })
    }
}

/// Parses a snapshot `EPOCHHEX:SEQ,EPOCHHEX:SEQ` (empty: no epoch) into ascending epoch
/// order.
pub fn parse_upto(text: &str) -> Result<Vec<(StoreEpoch, u64)>, RequestError> {
    let bad = |why: &str| {
        RequestError(format!(
            "upto={text:?} {why}; it takes EPOCH:SEQ pairs separated by commas, as the \
             Aloft-Export-Upto header of the first answer gives them"
        ))
    };
    let mut out: Vec<(StoreEpoch, u64)> = Vec::new();
    if text.is_empty() {
        return Ok(out);
    }
    for part in text.split(',') {
        let (epoch, seq) = part
            .split_once(':')
            .ok_or_else(|| bad("has a part without a colon"))?;
        let epoch =
            parse_epoch(epoch).ok_or_else(|| bad("has an epoch that is not 32 hex digits"))?;
        let seq: u64 = seq
            .parse()
            .ok()
            .filter(|s| *s <= MAX_SEQ)
            .ok_or_else(|| bad("has a sequence number that is not a number below 2^63"))?;
        if out.iter().any(|(e, _)| *e == epoch) {
            return Err(bad("names an epoch twice"));
        }
        out.push((epoch, seq));
    }
    out.sort_by_key(|(e, _)| *e);
    Ok(out)
}

/// A snapshot's text form, as [`parse_upto`] reads it.
pub fn upto_text(upto: &[(StoreEpoch, u64)]) -> String {
    upto.iter()
        .map(|(e, s)| format!("{}:{s}", crate::clock::hex(&e.0)))
        .collect::<Vec<_>>()
        .join(",")
}

/// An epoch from 32 lowercase or uppercase hex digits.
pub fn parse_epoch(text: &str) -> Option<StoreEpoch> {
    if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(StoreEpoch(bytes))
}

/// Body of the `export_query` fuzz target (kept in the library so that the committed
/// corpus replays as a unit test): `data`, as a raw query string, through
/// [`ExportRequest::parse`]. Checks: no panic, and what parses keeps the invariants the
/// route relies on: a time range that is not empty, an interval above zero, a stem
/// [`file_safe`] leaves as it is, a snapshot within the numbers the hub stores.
pub fn fuzz_query(data: &[u8]) {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(request) = ExportRequest::parse(query) else {
        return;
    };
    if let (Some(from), Some(to)) = (request.from_utc_ns, request.to_utc_ns) {
        assert!(from < to, "an empty range parsed: {query:?}");
    }
    if let Some(r) = request.resample {
        assert!(r.interval_ns() > 0, "a zero interval parsed: {query:?}");
    }
    if let Some(stem) = &request.stem {
        assert_eq!(
            &file_safe(stem),
            stem,
            "a stem that is not plain parsed: {query:?}"
        );
        assert!(stem.len() <= MAX_STEM);
    }
    for (_, seq) in request.upto.iter().flatten() {
        assert!(
            *seq <= MAX_SEQ,
            "a snapshot past the largest number parsed: {query:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_full_query_parses_with_repeats() {
        let r = ExportRequest::parse(
            "format=csv&layout=wide&sensor=gps&sensor=static&quantity=air_pressure\
             &from=2026-11-24T12:00:00Z&to=1800000000000000000&interval=10s&method=mean\
             &stem=flight-1&upto=000102030405060708090a0b0c0d0e0f:42&created=17&skip=5",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.format, Format::Csv);
        assert_eq!(r.layout, Layout::Wide);
        assert_eq!(r.sensors, ["gps", "static"]);
        assert_eq!(r.quantities, [Quantity::AirPressure]);
        assert_eq!(r.to_utc_ns, Some(1_800_000_000_000_000_000));
        assert_eq!(
            r.resample,
            Some(Resample::Mean {
                interval_ns: 10_000_000_000
            })
        );
        assert_eq!(r.stem.as_deref(), Some("flight-1"));
        for (given, safe) in [
            ("flight 1", "flight_1"),
            (".hidden", "_.hidden"),
            ("vol\u{e9}", "vol_"),
        ] {
            let r = ExportRequest::parse(&format!("format=csv&stem={}", given.replace(' ', "%20")))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(r.stem.as_deref(), Some(safe));
        }
        let upto = r.upto.unwrap_or_default();
        assert_eq!(upto_text(&upto), "000102030405060708090a0b0c0d0e0f:42");
        assert_eq!((r.created_utc_ns, r.skip), (Some(17), 5));
        let d = ExportRequest::parse("format=csv&interval=1m").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            d.resample,
            Some(Resample::Decimate {
                interval_ns: 60_000_000_000
            })
        );
    }

    #[test]
    fn each_bad_parameter_is_named() {
        for (query, says) in [
            ("", "format is required"),
            ("format=xls", "unknown format"),
            ("format=csv&layout=long", "unknown layout"),
            ("format=csv&quantity=warp", "unknown quantity"),
            ("format=csv&from=yesterday", "from="),
            ("format=csv&from=20&to=10", "is empty"),
            ("format=csv&from=10&to=10", "is empty"),
            ("format=csv&interval=often", "interval="),
            ("format=csv&interval=0s", "longer than zero"),
            ("format=csv&method=mean", "needs an interval"),
            ("format=csv&interval=1s&method=median", "unknown method"),
            ("format=csv&stem=../x", "stem="),
            ("format=csv&stem=..", "stem="),
            ("format=csv&stem=a%5Cb", "stem="),
            ("format=csv&stem=a%0Ab", "stem="),
            ("format=csv&upto=zz:1", "upto="),
            ("format=csv&upto=000102030405060708090a0b0c0d0e0f", "upto="),
            ("format=csv&created=-1", "created="),
            ("format=csv&skip=x", "skip="),
            ("format=csv&format=csv", "more than once"),
            ("format=csv&node=x", "unknown parameter"),
            ("format=csv&sensor=", "sensor is empty"),
        ] {
            let e = ExportRequest::parse(query)
                .err()
                .map(|e| e.0)
                .unwrap_or_default();
            assert!(e.contains(says), "{query}: {e:?} does not say {says:?}");
        }
    }

    proptest! {
        #[test]
        fn any_query_parses_or_is_refused_without_panicking(
            query in "(format|layout|sensor|quantity|from|to|interval|method|stem|upto|created|skip|x)=[\\PC%&=+:,]{0,40}(&(format|sensor|upto|skip|interval)=[\\PC%&=+:,]{0,30}){0,4}"
        ) {
            let _ = ExportRequest::parse(&query);
        }

        #[test]
        fn every_snapshot_round_trips(pairs in proptest::collection::btree_map(any::<[u8; 16]>(), 0..=MAX_SEQ, 0..5)) {
            let upto: Vec<(StoreEpoch, u64)> = pairs.into_iter().map(|(e, s)| (StoreEpoch(e), s)).collect();
            prop_assert_eq!(parse_upto(&upto_text(&upto)).ok(), Some(upto));
        }
    }

    // -----------------------------------------------------------------------------------
    // The committed corpus of the `export_query` fuzz target, replayed.

    fn corpus_dirs() -> [std::path::PathBuf; 2] {
        let fuzz = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        [
            fuzz.join("corpus/export_query"),
            fuzz.join("regressions/export_query"),
        ]
    }

    /// Valid queries of every parameter, near-valid and hostile ones.
    fn seeds() -> Vec<(&'static str, String)> {
        let epoch = "0123456789abcdef0123456789abcdef";
        vec![
            ("csv", "format=csv".to_owned()),
            (
                "full",
                "format=parquet&layout=wide&sensor=gps&sensor=static&quantity=air_pressure&from=2026-11-24T12:00:00Z&to=2026-11-24T13:00:00.5%2B01:00&interval=10s&method=mean&stem=flight-3".to_owned(),
            ),
            (
                "resume",
                format!("format=igc&upto={epoch}:42,{epoch}:7&created=1790000000000000000&skip=1024"),
            ),
            ("empty-range", "format=csv&from=5&to=5".to_owned()),
            ("zero-interval", "format=csv&interval=0s".to_owned()),
            ("repeated", "format=csv&format=kml".to_owned()),
            ("unknown", "format=csv&colour=red".to_owned()),
            ("stem-path", "format=csv&stem=..%2F..%2Fetc%2Fpasswd".to_owned()),
            ("stem-long", format!("format=csv&stem={}", "a".repeat(400))),
            ("upto-huge", format!("format=csv&upto={epoch}:99999999999999999999")),
            ("percent", "format=%ZZ&sensor=%00%ff".to_owned()),
            ("created-edge", "format=csv&created=-9223372036854775808".to_owned()),
            ("time-edge", "format=csv&from=9999-12-31T23:59:60.999999999Z".to_owned()),
        ]
    }

    #[test]
    fn export_query_corpus_replays_cleanly() {
        if std::env::var_os("ALOFT_WRITE_FUZZ_SEEDS").is_some() {
            let [dir, _] = corpus_dirs();
            std::fs::create_dir_all(&dir).expect("create the corpus directory");
            for (name, data) in seeds() {
                std::fs::write(dir.join(format!("seed-{name}")), data).expect("write a seed");
            }
        }
        for (name, data) in seeds() {
            let result = std::panic::catch_unwind(|| fuzz_query(data.as_bytes()));
            assert!(result.is_ok(), "seed {name} fails");
        }
        let mut count = 0;
        for dir in corpus_dirs() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("readable corpus directory").path();
                let data = std::fs::read(&path).expect("readable corpus file");
                let result = std::panic::catch_unwind(|| fuzz_query(&data));
                assert!(result.is_ok(), "fuzz input {} fails", path.display());
                count += 1;
            }
        }
        // The corpus is committed: an empty one means it went missing.
        assert!(count >= 10, "only {count} inputs for export_query");
    }

    proptest! {
        #[test]
        fn any_bytes_as_a_query_keep_the_parsed_invariants(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            fuzz_query(&data);
        }
    }
}
