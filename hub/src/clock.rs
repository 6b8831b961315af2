//! The hub's clock and how it writes times and ids as text: every component stamps and
//! shows time the same way (ns since the Unix epoch, UTC; RFC 3339 in the API) and makes
//! ids of the same random hex.

/// Nanoseconds since the Unix epoch, UTC, by the hub's clock.
pub fn now_utc_ns() -> i64 {
    let now = std::time::SystemTime::now();
    match now.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// RFC 3339 UTC text of a time in ns since the Unix epoch.
pub fn rfc3339(utc_ns: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(utc_ns))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Parses RFC 3339 text or a plain integer of ns since the Unix epoch.
pub fn parse_utc(text: &str) -> Option<i64> {
    if let Ok(ns) = text.parse::<i64>() {
        return Some(ns);
    }
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos()).ok()
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A random id of `bytes` random bytes, hex.
pub fn random_hex(bytes: usize) -> Result<String, getrandom::Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)?;
    Ok(hex(&buf))
}
