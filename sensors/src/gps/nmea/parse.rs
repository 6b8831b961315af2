//! One line of bytes to one typed [`Sentence`], borrowing from the line, never allocating.

use super::*;

/// Parses one sentence: `$`, address, fields, `*HH`, with an optional CR, LF or CR LF.
pub fn parse(line: &[u8]) -> Result<Sentence<'_>, NmeaError> {
    let line = strip_line_end(line);
    if line.is_empty() {
        return Err(NmeaError::Empty);
    }
    if line.len() > MAX_SENTENCE_LEN - 2 {
        return Err(NmeaError::TooLong);
    }
    // A doubled start is one start: the checksum covers the body after the last `$`.
    let line = match line {
        [b'$', b'$', ..] => line.get(1..).unwrap_or_default(),
        _ => line,
    };
    let (&start, rest) = line.split_first().ok_or(NmeaError::Empty)?;
    if start != b'$' {
        return Err(NmeaError::MissingStart);
    }
    // The checksum sits at a fixed place from the end: looking it up there (instead of at
    // the first '*') makes a '*' inside the body an invalid byte, never a short sentence.
    let split = rest
        .len()
        .checked_sub(3)
        .ok_or(NmeaError::MissingChecksum)?;
    let (body, tail) = rest.split_at(split);
    let [star, hi, lo] = *tail else {
        return Err(NmeaError::MissingChecksum);
    };
    if star != b'*' {
        return Err(NmeaError::MissingChecksum);
    }
    let stated = (hex_digit(hi)? << 4) | hex_digit(lo)?;
    let mut computed = 0u8;
    // Commas counted in the same pass: the address has none, so the fields after it
    // number as many as the body has commas.
    let mut commas = 0usize;
    for &b in body {
        if !(0x20..=0x7e).contains(&b) || b == b'$' || b == b'*' {
            return Err(NmeaError::InvalidByte);
        }
        commas += usize::from(b == b',');
        computed ^= b;
    }
    if computed != stated {
        return Err(NmeaError::ChecksumMismatch { stated, computed });
    }
    // Every byte is printable ASCII from here on.
    let body = core::str::from_utf8(body).map_err(|_| NmeaError::InvalidByte)?;
    let (address, fields) = match body.split_once(',') {
        Some((a, f)) => (a, Some(f)),
        None => (body, None),
    };
    // Standard addresses are five letters; proprietary ones (`$PMTK001`) may be longer.
    if address.is_empty()
        || address.len() > 15
        || !address
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Err(NmeaError::BadAddress);
    }
    let ab = address.as_bytes();
    let typed = match ab {
        [t0, t1, k0, k1, k2] if *t0 != b'P' => {
            Some((Talker::from_code([*t0, *t1]), [*k0, *k1, *k2]))
        }
        _ => None,
    };
    let other = || {
        Sentence::Other(OtherSentence {
            address,
            fields: fields.unwrap_or(""),
        })
    };
    let Some((talker, kind)) = typed else {
        return Ok(other());
    };
    let mut f = Fields::new(fields, commas);
    let sentence = match &kind {
        b"GGA" => Sentence::Gga(parse_gga(talker, &mut f)?),
        b"RMC" => Sentence::Rmc(parse_rmc(talker, &mut f)?),
        b"GSA" => Sentence::Gsa(parse_gsa(talker, &mut f)?),
        b"GSV" => Sentence::Gsv(parse_gsv(talker, &mut f)?),
        b"VTG" => Sentence::Vtg(parse_vtg(talker, &mut f)?),
        b"GLL" => Sentence::Gll(parse_gll(talker, &mut f)?),
        b"GNS" => Sentence::Gns(parse_gns(talker, &mut f)?),
        b"ZDA" => Sentence::Zda(parse_zda(talker, &mut f)?),
        _ => other(),
    };
    Ok(sentence)
}

fn strip_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn hex_digit(b: u8) -> Result<u8, NmeaError> {
    match b {
        b'0'..=b'9' => Ok(b - b'0'),
        b'A'..=b'F' => Ok(b - b'A' + 10),
        b'a'..=b'f' => Ok(b - b'a' + 10),
        _ => Err(NmeaError::BadChecksumSyntax),
    }
}

/// The comma-separated fields after the address, with their count and index.
struct Fields<'a> {
    rest: Option<&'a [u8]>,
    index: u8,
    count: u8,
}

impl<'a> Fields<'a> {
    /// The fields after the address; `commas` is the number of commas in the whole body
    /// (the one after the address included), which is the number of fields.
    fn new(fields: Option<&'a str>, commas: usize) -> Self {
        let count = if fields.is_some() { commas } else { 0 };
        Fields {
            rest: fields.map(str::as_bytes),
            index: 0,
            // At most MAX_SENTENCE_LEN bytes, so fewer than 255 fields: fits.
            count: u8::try_from(count).unwrap_or(u8::MAX),
        }
    }

    fn require_count(&self, allowed: impl Fn(u8) -> bool) -> Result<(), NmeaError> {
        if allowed(self.count) {
            Ok(())
        } else {
            Err(NmeaError::FieldCount { found: self.count })
        }
    }

    /// The next field (empty slice past the end: optional trailing fields read as empty),
    /// and its index for errors.
    fn next(&mut self) -> (&'a [u8], u8) {
        let index = self.index;
        self.index = self.index.saturating_add(1);
        let Some(rest) = self.rest else {
            return (&[], index);
        };
        match rest.iter().position(|&b| b == b',') {
            Some(i) => {
                let (field, after) = rest.split_at(i);
                self.rest = after.get(1..);
                (field, index)
            }
            None => {
                self.rest = None;
                (rest, index)
            }
        }
    }

    fn number(&mut self) -> Result<Option<f64>, NmeaError> {
        let (f, i) = self.next();
        opt(f, i, parse_decimal)
    }

    fn unsigned<T: TryFrom<u64>>(&mut self) -> Result<Option<T>, NmeaError> {
        let (f, i) = self.next();
        opt(f, i, |f| {
            parse_unsigned(f).and_then(|v| T::try_from(v).ok())
        })
    }

    fn letter(&mut self, allowed: &[u8]) -> Result<Option<u8>, NmeaError> {
        let (f, i) = self.next();
        opt(f, i, |f| match f {
            [b] if allowed.contains(b) => Some(*b),
            _ => None,
        })
    }

    fn time(&mut self) -> Result<Option<TimeOfDay>, NmeaError> {
        let (f, i) = self.next();
        opt(f, i, parse_time)
    }

    /// A `ddmm.mmmm,N` or `dddmm.mmmm,E` pair.
    fn coordinate(&mut self, degree_digits: usize) -> Result<Option<f64>, NmeaError> {
        let (value, vi) = self.next();
        let (hemi, hi) = self.next();
        let (positive, negative, limit) = if degree_digits == 2 {
            (b'N', b'S', 90.0)
        } else {
            (b'E', b'W', 180.0)
        };
        match (value.is_empty(), hemi) {
            (true, []) => Ok(None),
            (false, [h]) if *h == positive || *h == negative => {
                let deg = parse_coordinate(value, degree_digits)
                    .filter(|d| *d <= limit)
                    .ok_or(NmeaError::BadField { index: vi })?;
                Ok(Some(if *h == negative { -deg } else { deg }))
            }
            _ => Err(NmeaError::BadField { index: hi }),
        }
    }

    /// A value followed by a fixed unit letter (`1147.2,M`); the letter may be empty
    /// only when the value is.
    fn with_unit(&mut self, unit: u8) -> Result<Option<f64>, NmeaError> {
        let v = self.number()?;
        let (u, ui) = self.next();
        match (v, u) {
            (_, [b]) if *b == unit => Ok(v),
            (None, []) => Ok(None),
            _ => Err(NmeaError::BadField { index: ui }),
        }
    }
}

fn opt<T>(
    field: &[u8],
    index: u8,
    f: impl FnOnce(&[u8]) -> Option<T>,
) -> Result<Option<T>, NmeaError> {
    if field.is_empty() {
        Ok(None)
    } else {
        f(field).map(Some).ok_or(NmeaError::BadField { index })
    }
}

fn parse_unsigned(f: &[u8]) -> Option<u64> {
    if f.is_empty() || f.len() > 9 {
        return None;
    }
    let mut v = 0u64;
    for &b in f {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
    }
    Some(v)
}

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// NMEA numeric syntax: optional `-` (or `+`), digits, optional `.` and digits; at least
/// one digit. No exponents, no `inf`/`nan`.
pub(super) fn parse_decimal(f: &[u8]) -> Option<f64> {
    let (negative, digits) = match f {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, f),
    };
    let mut mantissa = 0u64;
    let mut significant = 0usize;
    let mut fraction_digits = 0usize;
    let mut seen_point = false;
    let mut any_digit = false;
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                any_digit = true;
                if significant < 19 {
                    mantissa = mantissa * 10 + u64::from(b - b'0');
                    if mantissa != 0 {
                        significant += 1;
                    }
                    if seen_point {
                        fraction_digits += 1;
                    }
                } else if !seen_point {
                    return None; // more than 19 integer digits: not an NMEA number
                }
            }
            b'.' if !seen_point => seen_point = true,
            _ => return None,
        }
    }
    if !any_digit {
        return None;
    }
    // Both exact as f64 (mantissa < 2^53, power <= 22), so one division rounds correctly.
    let value = match POW10.get(fraction_digits) {
        Some(p) if mantissa < (1 << 53) => mantissa as f64 / p,
        _ => core::str::from_utf8(digits).ok()?.parse::<f64>().ok()?,
    };
    Some(if negative { -value } else { value })
}

/// `ddmm.mmmm` (or `dddmm.mmmm`) to unsigned degrees, parsed from the text so that the
/// minutes keep every digit the receiver sent.
fn parse_coordinate(f: &[u8], degree_digits: usize) -> Option<f64> {
    let point = f.iter().position(|&b| b == b'.').unwrap_or(f.len());
    if point != degree_digits + 2 {
        return None;
    }
    let (deg, minutes) = f.split_at(degree_digits);
    let deg = parse_unsigned(deg)? as f64;
    if !minutes.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let minutes = parse_decimal(minutes)?;
    if minutes >= 60.0 {
        return None;
    }
    Some(deg + minutes / 60.0)
}

fn two_digits(f: &[u8]) -> Option<u8> {
    match f {
        [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => Some((a - b'0') * 10 + (b - b'0')),
        _ => None,
    }
}

fn parse_time(f: &[u8]) -> Option<TimeOfDay> {
    let (hms, fraction) = match f.split_at_checked(6)? {
        (hms, []) => (hms, &[][..]),
        (hms, [b'.', frac @ ..]) if !frac.is_empty() => (hms, frac),
        _ => return None,
    };
    let hour = two_digits(hms.get(0..2)?)?;
    let minute = two_digits(hms.get(2..4)?)?;
    let second = two_digits(hms.get(4..6)?)?;
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut nanosecond = 0u32;
    let mut scale = 100_000_000u32;
    for &b in fraction {
        if !b.is_ascii_digit() {
            return None;
        }
        // Digits past the ninth are below 1 ns: checked but dropped.
        nanosecond += u32::from(b - b'0') * scale;
        scale /= 10;
    }
    Some(TimeOfDay {
        hour,
        minute,
        second,
        nanosecond,
    })
}

fn parse_date(f: &[u8]) -> Option<Date> {
    if f.len() != 6 {
        return None;
    }
    let day = two_digits(f.get(0..2)?)?;
    let month = two_digits(f.get(2..4)?)?;
    let yy = two_digits(f.get(4..6)?)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let year = if yy >= 80 { 1900 } else { 2000 } + u16::from(yy);
    Some(Date { year, month, day })
}

fn status(f: &mut Fields<'_>) -> Result<Option<Status>, NmeaError> {
    Ok(f.letter(b"AV")?.map(|b| {
        if b == b'A' {
            Status::Valid
        } else {
            Status::Invalid
        }
    }))
}

fn mode(f: &mut Fields<'_>) -> Result<Option<PositioningMode>, NmeaError> {
    let (field, i) = f.next();
    opt(field, i, |field| match field {
        [b] => PositioningMode::from_letter(*b),
        _ => None,
    })
}

fn angle(f: &mut Fields<'_>, max: f64) -> Result<Option<f64>, NmeaError> {
    let index = f.index;
    match f.number()? {
        Some(v) if !(-max..=max).contains(&v) => Err(NmeaError::BadField { index }),
        v => Ok(v),
    }
}

fn non_negative(f: &mut Fields<'_>) -> Result<Option<f64>, NmeaError> {
    let index = f.index;
    match f.number()? {
        Some(v) if v < 0.0 => Err(NmeaError::BadField { index }),
        v => Ok(v),
    }
}

fn parse_gga(talker: Talker, f: &mut Fields<'_>) -> Result<Gga, NmeaError> {
    f.require_count(|n| n == 14)?;
    let time = f.time()?;
    let latitude_deg = f.coordinate(2)?;
    let longitude_deg = f.coordinate(3)?;
    let quality = f.unsigned::<u8>()?;
    let index = f.index;
    let satellites_used = f.unsigned::<u8>()?;
    if satellites_used.is_some_and(|n| n > 99) {
        return Err(NmeaError::BadField { index });
    }
    Ok(Gga {
        talker,
        time,
        latitude_deg,
        longitude_deg,
        quality,
        satellites_used,
        hdop: non_negative(f)?,
        altitude_msl_m: f.with_unit(b'M')?,
        geoid_separation_m: f.with_unit(b'M')?,
        dgps_age_s: non_negative(f)?,
        dgps_station: f.unsigned::<u16>()?,
    })
}

fn parse_rmc(talker: Talker, f: &mut Fields<'_>) -> Result<Rmc, NmeaError> {
    f.require_count(|n| (11..=13).contains(&n))?;
    let time = f.time()?;
    let status = status(f)?;
    let latitude_deg = f.coordinate(2)?;
    let longitude_deg = f.coordinate(3)?;
    let speed_knots = non_negative(f)?;
    let track_deg = angle(f, 360.0)?;
    let (d, di) = f.next();
    let date = opt(d, di, parse_date)?;
    let (v, _) = f.next();
    let (h, _) = f.next();
    // Receivers fill the variation pair oddly (no direction, a direction without a value,
    // dashes, other letters). It is auxiliary: whatever the pair holds, the sentence keeps
    // its speed, track and date, and the variation is known only when both parts are sound.
    let magnetic_variation_deg = match (parse_decimal(v).filter(|v| (0.0..=180.0).contains(v)), h) {
        (Some(v), [b'E']) => Some(v),
        (Some(v), [b'W']) => Some(-v),
        _ => None,
    };
    let mode = mode(f)?;
    let navigational_status = f.letter(b"SCUV")?;
    Ok(Rmc {
        talker,
        time,
        status,
        latitude_deg,
        longitude_deg,
        speed_knots,
        track_deg,
        date,
        magnetic_variation_deg,
        mode,
        navigational_status,
    })
}

fn parse_gsa(talker: Talker, f: &mut Fields<'_>) -> Result<Gsa, NmeaError> {
    f.require_count(|n| n == 17 || n == 18)?;
    let selection = f.letter(b"AM")?;
    let fix_mode = f.letter(b"123")?.map(|b| b - b'0');
    let mut satellites = [None; 12];
    for slot in &mut satellites {
        *slot = f.unsigned::<u16>()?;
    }
    Ok(Gsa {
        talker,
        selection,
        fix_mode,
        satellites,
        pdop: non_negative(f)?,
        hdop: non_negative(f)?,
        vdop: non_negative(f)?,
        system_id: f.unsigned::<u8>()?,
    })
}

fn parse_gsv(talker: Talker, f: &mut Fields<'_>) -> Result<Gsv, NmeaError> {
    let count = f.count;
    f.require_count(|n| (3..=20).contains(&n) && matches!((n - 3) % 4, 0 | 1))?;
    let blocks = usize::from((count - 3) / 4);
    let has_signal = (count - 3) % 4 == 1;
    let (t, ti) = f.next();
    let total_messages = opt(t, ti, |t| {
        parse_unsigned(t).and_then(|v| u8::try_from(v).ok())
    })?
    .filter(|v| (1..=9).contains(v))
    .ok_or(NmeaError::BadField { index: ti })?;
    let (m, mi) = f.next();
    let message_number = opt(m, mi, |m| {
        parse_unsigned(m).and_then(|v| u8::try_from(v).ok())
    })?
    .filter(|v| (1..=total_messages).contains(v))
    .ok_or(NmeaError::BadField { index: mi })?;
    let satellites_in_view = f.unsigned::<u16>()?;
    let mut satellites = [None; 4];
    for slot in satellites.iter_mut().take(blocks) {
        let index = f.index;
        let prn = f.unsigned::<u16>()?;
        let elevation_deg = angle(f, 90.0)?;
        let azimuth_deg = angle(f, 360.0)?;
        let snr_dbhz = non_negative(f)?;
        *slot = match prn {
            Some(prn) => Some(GsvSatellite {
                prn,
                elevation_deg,
                azimuth_deg,
                snr_dbhz,
            }),
            None if elevation_deg.is_none() && azimuth_deg.is_none() && snr_dbhz.is_none() => None,
            None => return Err(NmeaError::BadField { index }),
        };
    }
    let signal_id = if has_signal {
        let (s, si) = f.next();
        opt(s, si, |s| match s {
            [b] if b.is_ascii_hexdigit() => Some(*b),
            _ => None,
        })?
    } else {
        None
    };
    Ok(Gsv {
        talker,
        total_messages,
        message_number,
        satellites_in_view,
        satellites,
        signal_id,
    })
}

fn parse_vtg(talker: Talker, f: &mut Fields<'_>) -> Result<Vtg, NmeaError> {
    f.require_count(|n| n == 8 || n == 9)?;
    let track_true_deg = angle(f, 360.0)?;
    unit_letter(f, b'T')?;
    let track_magnetic_deg = angle(f, 360.0)?;
    unit_letter(f, b'M')?;
    let speed_knots = non_negative(f)?;
    unit_letter(f, b'N')?;
    let speed_kmh = non_negative(f)?;
    unit_letter(f, b'K')?;
    Ok(Vtg {
        talker,
        track_true_deg,
        track_magnetic_deg,
        speed_knots,
        speed_kmh,
        mode: mode(f)?,
    })
}

/// VTG's unit letters: receivers send them even when the value is empty.
fn unit_letter(f: &mut Fields<'_>, unit: u8) -> Result<(), NmeaError> {
    let (u, i) = f.next();
    match u {
        [] => Ok(()),
        [b] if *b == unit => Ok(()),
        _ => Err(NmeaError::BadField { index: i }),
    }
}

fn parse_gll(talker: Talker, f: &mut Fields<'_>) -> Result<Gll, NmeaError> {
    f.require_count(|n| (5..=7).contains(&n))?;
    Ok(Gll {
        talker,
        latitude_deg: f.coordinate(2)?,
        longitude_deg: f.coordinate(3)?,
        time: f.time()?,
        status: status(f)?,
        mode: mode(f)?,
    })
}

fn parse_gns(talker: Talker, f: &mut Fields<'_>) -> Result<Gns, NmeaError> {
    // 12 fields up to NMEA 4.00; 4.10 adds the navigational status.
    f.require_count(|n| n == 12 || n == 13)?;
    let time = f.time()?;
    let latitude_deg = f.coordinate(2)?;
    let longitude_deg = f.coordinate(3)?;
    let (m, mi) = f.next();
    let modes = ModeIndicators::parse(m).ok_or(NmeaError::BadField { index: mi })?;
    let index = f.index;
    let satellites_used = f.unsigned::<u8>()?;
    if satellites_used.is_some_and(|n| n > 99) {
        return Err(NmeaError::BadField { index });
    }
    Ok(Gns {
        talker,
        time,
        latitude_deg,
        longitude_deg,
        modes,
        satellites_used,
        hdop: non_negative(f)?,
        altitude_msl_m: f.number()?,
        geoid_separation_m: f.number()?,
        dgps_age_s: non_negative(f)?,
        dgps_station: f.unsigned::<u16>()?,
        navigational_status: f.letter(b"SCUV")?,
    })
}

fn parse_zda(talker: Talker, f: &mut Fields<'_>) -> Result<Zda, NmeaError> {
    f.require_count(|n| n == 6)?;
    let time = f.time()?;
    let (d, di) = f.next();
    let (m, mi) = f.next();
    let (y, yi) = f.next();
    let date = match (d, m, y) {
        ([], [], []) => None,
        _ => {
            let day = two_digits(d)
                .filter(|d| (1..=31).contains(d))
                .ok_or(NmeaError::BadField { index: di })?;
            let month = two_digits(m)
                .filter(|m| (1..=12).contains(m))
                .ok_or(NmeaError::BadField { index: mi })?;
            let year = (y.len() == 4)
                .then(|| parse_unsigned(y))
                .flatten()
                .and_then(|y| u16::try_from(y).ok())
                .ok_or(NmeaError::BadField { index: yi })?;
            Some(Date { year, month, day })
        }
    };
    let (h, hi) = f.next();
    let local_zone_hours = opt(h, hi, |h| {
        parse_decimal(h)
            .filter(|v| v.fract() == 0.0 && (-13.0..=13.0).contains(v))
            .map(|v| v as i8)
    })?;
    let (mm, mmi) = f.next();
    let local_zone_minutes = opt(mm, mmi, |m| two_digits(m).filter(|m| *m < 60))?;
    Ok(Zda {
        talker,
        time,
        date,
        local_zone_hours,
        local_zone_minutes,
    })
}
