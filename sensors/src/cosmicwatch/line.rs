//! One line of a CosmicWatch serial stream, parsed without allocating.
//!
//! A line is a header or comment line (`#...`), the v2 `Device ID:` line, a blank line,
//! or an event line. Event lines are checked against the firmware's own domain (ADC
//! range, non-negative times, dead time not exceeding elapsed time) so that a corrupted
//! line is rejected with a [`LineError`] instead of producing a wrong reading. Values are
//! converted to SI units here, once; [`MuonEvent::write_line`] converts back, so that
//! simulators and tests speak exactly the firmware's text.
//!
//! Invariant: [`parse_line`] never panics, whatever the bytes.

use core::fmt;

use aloft_protocol::{Quality, Quantity, Reading, SensorId, Timestamp};

/// Standard gravity: the MPU-6050 reports acceleration in g.
const STANDARD_GRAVITY: f64 = 9.806_65;
/// Offset between degrees Celsius and kelvin.
const CELSIUS_OFFSET: f64 = 273.15;
/// Most fields a v3X line can carry: six fixed, temperature, pressure, accel, gyro, name.
const MAX_FIELDS: usize = 11;

/// Which firmware generation wrote the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Arduino Nano detector: 9600 baud, space separated, 10-bit ADC, times in ms.
    V2,
    /// RP2040 detector: 115200 baud, tab separated, 12-bit ADC, times in s.
    V3x,
}

impl Format {
    /// Serial line speed of this generation.
    pub const fn baud(self) -> u32 {
        match self {
            Format::V2 => 9600,
            Format::V3x => 115_200,
        }
    }

    /// Largest ADC code the detector's converter can produce.
    pub const fn adc_max(self) -> u16 {
        match self {
            Format::V2 => 1023,
            Format::V3x => 4095,
        }
    }

    /// Device name for the sensor descriptor.
    pub const fn device_name(self) -> &'static str {
        match self {
            Format::V2 => "CosmicWatch v2",
            Format::V3x => "CosmicWatch v3X",
        }
    }

    /// Rated temperature range of the detector's temperature sensor, K: the v2's TMP36
    /// (-40..125 °C) and the v3X's BMP280 (-40..85 °C).
    pub const fn temperature_range_k(self) -> (f64, f64) {
        match self {
            Format::V2 => (-40.0 + CELSIUS_OFFSET, 125.0 + CELSIUS_OFFSET),
            Format::V3x => (-40.0 + CELSIUS_OFFSET, 85.0 + CELSIUS_OFFSET),
        }
    }
}

/// BMP280 rated pressure range, Pa (300..1100 hPa). The glider reaches ~194 hPa, below it.
pub const BMP280_PRESSURE_RANGE_PA: (f64, f64) = (30_000.0, 110_000.0);

/// The v3X's MPU-6050 readings, in SI units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Imu {
    /// Acceleration along x, y, z, m s-2.
    pub acceleration_mps2: [f64; 3],
    /// Angular rate about x, y, z, rad s-1.
    pub angular_rate_rad_s: [f64; 3],
}

/// One detected particle, as the detector reported it, in SI units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MuonEvent {
    /// Firmware generation that wrote the line.
    pub format: Format,
    /// Running event number since the detector's start (from 1).
    pub event: u64,
    /// Detector clock at the event, s since the detector's start.
    pub detector_time_s: f64,
    /// Raw peak-detector ADC code (0..=1023 on v2, 0..=4095 on v3X).
    pub adc: u16,
    /// SiPM peak voltage the firmware calculated, V.
    pub sipm_peak_v: f64,
    /// Cumulative dead time since the detector's start, s.
    pub dead_time_s: f64,
    /// Detector temperature, K (absent on a v3X without its BMP280).
    pub temperature_k: Option<f64>,
    /// v3X: whether the paired detector saw the event too.
    pub coincidence: Option<bool>,
    /// v3X: air pressure at the detector, Pa (absent without the BMP280).
    pub pressure_pa: Option<f64>,
    /// v3X: accelerometer and gyroscope (absent without the MPU-6050).
    pub imu: Option<Imu>,
}

/// A header or comment line (`#...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderLine<'a> {
    /// The line without its leading `#` characters and surrounding blanks.
    pub text: &'a str,
    /// True for the title line a detector prints once per boot
    /// (`CosmicWatch: The Desktop Muon Detector`): seeing it again means a reboot.
    pub is_banner: bool,
    /// The format this line reveals, if it does (the v3X title, either column legend).
    pub format: Option<Format>,
    /// The v3X `Detector Name:` line's name.
    pub detector_name: Option<&'a str>,
}

/// What one line of the stream is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Line<'a> {
    /// An empty line (the firmware sends none, but a reopened port may).
    Blank,
    /// A header, diagnostic or housekeeping line.
    Header(HeaderLine<'a>),
    /// The v2 `Device ID: <name>` line that follows the header.
    DeviceId(&'a str),
    /// A particle event; v3X lines sent over USB end with the detector's name.
    Event {
        /// The event.
        event: MuonEvent,
        /// The trailing `Name` column, when present.
        detector_name: Option<&'a str>,
    },
}

/// Which column of an event line was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// Event number.
    Event,
    /// Detector time.
    Time,
    /// Coincidence flag (v3X).
    Coincidence,
    /// ADC code.
    Adc,
    /// SiPM peak voltage.
    Sipm,
    /// Cumulative dead time.
    DeadTime,
    /// Temperature.
    Temperature,
    /// Pressure (v3X).
    Pressure,
    /// Accelerometer triple (v3X).
    Acceleration,
    /// Gyroscope triple (v3X).
    AngularRate,
}

/// Why a line is not a valid CosmicWatch line. Small and `Copy`: bad lines are counted on
/// the hot path, not collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum LineError {
    /// The bytes are not UTF-8 (line noise, a baud mismatch).
    #[error("line is not UTF-8 text")]
    NotText,
    /// An event line with a column count no firmware writes.
    #[error("{format:?} event line has {found} columns")]
    WrongColumnCount {
        /// Format the separator indicated.
        format: Format,
        /// Columns found (capped just above the most a line can have).
        found: usize,
    },
    /// A column that does not parse as the number it must be.
    #[error("column {0:?} is not a number")]
    BadNumber(Field),
    /// A column that parses but is outside what the firmware can write.
    #[error("column {0:?} is outside its domain")]
    OutOfDomain(Field),
    /// A line longer than any the firmware writes (reported by the stream, which cuts it).
    #[error("line too long")]
    TooLong,
}

/// Parses one line (with or without its CR LF).
pub fn parse_line(bytes: &[u8]) -> Result<Line<'_>, LineError> {
    let text = core::str::from_utf8(bytes).map_err(|_| LineError::NotText)?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(Line::Blank);
    }
    if text.starts_with('#') {
        return Ok(Line::Header(header_line(text)));
    }
    if let Some(name) = text.strip_prefix("Device ID:") {
        return Ok(Line::DeviceId(name.trim()));
    }
    if text.contains('\t') {
        parse_v3x(text)
    } else {
        parse_v2(text).map(|event| Line::Event {
            event,
            detector_name: None,
        })
    }
}

fn header_line(line: &str) -> HeaderLine<'_> {
    let text = line.trim_start_matches('#').trim();
    let is_banner = text.contains("CosmicWatch: The Desktop Muon Detector");
    let format = if text.contains("v3X") || text.contains("Timestamp[s]") {
        Some(Format::V3x)
    } else if text.contains("Ardn_time") || text.contains("ADC[0-1023]") {
        Some(Format::V2)
    } else {
        None
    };
    let detector_name = text
        .strip_prefix("Detector Name:")
        .map(str::trim)
        .filter(|n| !n.is_empty());
    HeaderLine {
        text,
        is_banner,
        format,
        detector_name,
    }
}

/// Splits `text` into at most `MAX_FIELDS` fields; returns how many there were in all.
fn split_fields<'a>(
    fields: impl Iterator<Item = &'a str>,
    out: &mut [&'a str; MAX_FIELDS],
) -> usize {
    let mut n = 0;
    for field in fields {
        if let Some(slot) = out.get_mut(n) {
            *slot = field;
        }
        n += 1;
        if n > MAX_FIELDS {
            break;
        }
    }
    n
}

fn parse_v2(text: &str) -> Result<MuonEvent, LineError> {
    let mut f = [""; MAX_FIELDS];
    let n = split_fields(text.split_ascii_whitespace(), &mut f);
    let [event, time_ms, adc, sipm_mv, dead_ms, temp_c, ..] = f;
    if n != 6 {
        return Err(LineError::WrongColumnCount {
            format: Format::V2,
            found: n,
        });
    }
    let event = integer(event, Field::Event)?;
    // The Arduino prints millis() and an unsigned long of whole milliseconds.
    let time_ms: u64 = integer(time_ms, Field::Time)?;
    let adc = adc_code(adc, Format::V2)?;
    let sipm_mv = non_negative(sipm_mv, Field::Sipm)?;
    let dead_ms: u64 = integer(dead_ms, Field::DeadTime)?;
    let temperature_k = temperature(temp_c)?;
    if dead_ms > time_ms {
        return Err(LineError::OutOfDomain(Field::DeadTime));
    }
    Ok(MuonEvent {
        format: Format::V2,
        event,
        detector_time_s: time_ms as f64 / 1000.0,
        adc,
        sipm_peak_v: sipm_mv / 1000.0,
        dead_time_s: dead_ms as f64 / 1000.0,
        temperature_k: Some(temperature_k),
        coincidence: None,
        pressure_pa: None,
        imu: None,
    })
}

fn parse_v3x(text: &str) -> Result<Line<'_>, LineError> {
    let mut f = [""; MAX_FIELDS];
    let n = split_fields(text.split('\t').map(str::trim), &mut f);
    let wrong = LineError::WrongColumnCount {
        format: Format::V3x,
        found: n,
    };
    if !(6..=MAX_FIELDS).contains(&n) {
        return Err(wrong);
    }
    let [event, time_s, flag, adc, sipm_mv, dead_s, rest @ ..] = f;
    let event = integer(event, Field::Event)?;
    let time_s = non_negative(time_s, Field::Time)?;
    let coincidence = match flag {
        "0" => false,
        "1" => true,
        _ => return Err(LineError::OutOfDomain(Field::Coincidence)),
    };
    let adc = adc_code(adc, Format::V3x)?;
    let sipm_mv = non_negative(sipm_mv, Field::Sipm)?;
    let dead_s = non_negative(dead_s, Field::DeadTime)?;
    if dead_s > time_s {
        return Err(LineError::OutOfDomain(Field::DeadTime));
    }

    // The optional columns come in groups the firmware decides at boot: [Temp Press] if
    // the BMP280 answered, [Accel Gyro] if the MPU-6050 did, and [Name] on USB only. The
    // count of optional columns and whether the first carries ':' say which are present,
    // so a detector named "42" is still read as a name.
    let optional = rest.get(..n - 6).unwrap_or(&[]);
    let (sensors, detector_name) = if optional.len() % 2 == 1 {
        let (name, sensors) = optional.split_last().ok_or(wrong)?;
        (sensors, Some(*name))
    } else {
        (optional, None)
    };
    let (environment, motion) = match sensors {
        [] => (None, None),
        [a, b] if a.contains(':') => (None, Some((*a, *b))),
        [t, p] => (Some((*t, *p)), None),
        [t, p, a, g] => (Some((*t, *p)), Some((*a, *g))),
        _ => return Err(wrong),
    };
    let (temperature_k, pressure_pa) = match environment {
        Some((t, p)) => (
            Some(temperature(t)?),
            Some(non_negative(p, Field::Pressure)?),
        ),
        None => (None, None),
    };
    let imu = match motion {
        Some((a, g)) => {
            let a = triple(a, Field::Acceleration)?;
            let g = triple(g, Field::AngularRate)?;
            Some(Imu {
                acceleration_mps2: a.map(|x| x * STANDARD_GRAVITY),
                angular_rate_rad_s: g.map(f64::to_radians),
            })
        }
        None => None,
    };
    Ok(Line::Event {
        event: MuonEvent {
            format: Format::V3x,
            event,
            detector_time_s: time_s,
            adc,
            sipm_peak_v: sipm_mv / 1000.0,
            dead_time_s: dead_s,
            temperature_k,
            coincidence: Some(coincidence),
            pressure_pa,
            imu,
        },
        detector_name: detector_name.filter(|n| !n.is_empty()),
    })
}

fn integer<T: core::str::FromStr>(field: &str, which: Field) -> Result<T, LineError> {
    // FromStr for integers accepts a leading '+', which no firmware writes: refuse it.
    if field.starts_with('+') {
        return Err(LineError::BadNumber(which));
    }
    field.parse().map_err(|_| LineError::BadNumber(which))
}

fn real(field: &str, which: Field) -> Result<f64, LineError> {
    // Rust's float parser also accepts "inf", "NaN" and exponents; the firmware prints
    // plain decimals, so anything not finite is a corrupted line.
    let x: f64 = field.parse().map_err(|_| LineError::BadNumber(which))?;
    if x.is_finite() {
        Ok(x)
    } else {
        Err(LineError::BadNumber(which))
    }
}

fn non_negative(field: &str, which: Field) -> Result<f64, LineError> {
    let x = real(field, which)?;
    if x >= 0.0 {
        Ok(x)
    } else {
        Err(LineError::OutOfDomain(which))
    }
}

fn temperature(field: &str) -> Result<f64, LineError> {
    let k = real(field, Field::Temperature)? + CELSIUS_OFFSET;
    // Below absolute zero is corruption; a cold but physical value is kept and flagged.
    if k >= 0.0 {
        Ok(k)
    } else {
        Err(LineError::OutOfDomain(Field::Temperature))
    }
}

fn adc_code(field: &str, format: Format) -> Result<u16, LineError> {
    let code: u16 = integer(field, Field::Adc)?;
    if code <= format.adc_max() {
        Ok(code)
    } else {
        Err(LineError::OutOfDomain(Field::Adc))
    }
}

fn triple(field: &str, which: Field) -> Result<[f64; 3], LineError> {
    let mut parts = field.split(':');
    let mut out = [0.0; 3];
    for slot in &mut out {
        *slot = real(parts.next().ok_or(LineError::BadNumber(which))?, which)?;
    }
    if parts.next().is_some() {
        return Err(LineError::BadNumber(which));
    }
    Ok(out)
}

impl MuonEvent {
    /// Writes the event as its firmware prints it (without the line end).
    ///
    /// v2: `event time_ms adc sipm_mV dead_ms temp_C`; v3X: tab-separated `Event
    /// Timestamp[s] Flag ADC SiPM[mV] Deadtime[s] [Temp[C] Press[Pa]] [Accel Gyro] [Name]`,
    /// with the precisions of the v3X firmware (`%.6f` times, `%.1f` SiPM and
    /// temperature, `%.0f` pressure, `%.3f` g, `%.1f` deg/s). A v2 event without a
    /// temperature is written with 0 °C, because the v2 always prints one.
    pub fn write_line<W: fmt::Write>(&self, detector_name: Option<&str>, w: &mut W) -> fmt::Result {
        let temp_c = self.temperature_k.map(|k| k - CELSIUS_OFFSET);
        match self.format {
            Format::V2 => write!(
                w,
                "{} {} {} {:.2} {} {:.2}",
                self.event,
                (self.detector_time_s * 1000.0).round() as u64,
                self.adc,
                self.sipm_peak_v * 1000.0,
                (self.dead_time_s * 1000.0).round() as u64,
                temp_c.unwrap_or(0.0),
            ),
            Format::V3x => {
                write!(
                    w,
                    "{}\t{:.6}\t{}\t{}\t{:.1}\t{:.6}",
                    self.event,
                    self.detector_time_s,
                    u8::from(self.coincidence.unwrap_or(false)),
                    self.adc,
                    self.sipm_peak_v * 1000.0,
                    self.dead_time_s,
                )?;
                if let (Some(t), Some(p)) = (temp_c, self.pressure_pa) {
                    write!(w, "\t{t:.1}\t{p:.0}")?;
                }
                if let Some(imu) = &self.imu {
                    let [ax, ay, az] = imu.acceleration_mps2.map(|a| a / STANDARD_GRAVITY);
                    let [gx, gy, gz] = imu.angular_rate_rad_s.map(f64::to_degrees);
                    write!(w, "\t{ax:.3}:{ay:.3}:{az:.3}\t{gx:.1}:{gy:.1}:{gz:.1}")?;
                }
                match detector_name {
                    Some(name) => write!(w, "\t{name}"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl crate::Sample for MuonEvent {
    fn push_readings(&self, sensor: SensorId, time: Timestamp, out: &mut Vec<Reading>) {
        let mut push = |quantity, value, quality| {
            out.push(Reading {
                sensor,
                quantity,
                time,
                value,
                quality,
            });
        };
        let in_range = |x: f64, (lo, hi): (f64, f64)| {
            if (lo..=hi).contains(&x) {
                Quality::GOOD
            } else {
                Quality::OUT_OF_RANGE
            }
        };
        push(Quantity::MuonEventCount, self.event as f64, Quality::GOOD);
        let adc_quality = if self.adc > self.format.adc_max() {
            Quality::OUT_OF_RANGE
        } else {
            Quality::GOOD
        };
        push(Quantity::MuonPulseAdc, f64::from(self.adc), adc_quality);
        push(Quantity::SipmPeakVoltage, self.sipm_peak_v, Quality::GOOD);
        push(Quantity::DetectorDeadTime, self.dead_time_s, Quality::GOOD);
        if let Some(k) = self.temperature_k {
            let q = in_range(k, self.format.temperature_range_k());
            push(Quantity::SensorTemperature, k, q);
        }
        if let Some(c) = self.coincidence {
            push(
                Quantity::MuonCoincidence,
                f64::from(u8::from(c)),
                Quality::GOOD,
            );
        }
        if let Some(p) = self.pressure_pa {
            push(
                Quantity::AirPressure,
                p,
                in_range(p, BMP280_PRESSURE_RANGE_PA),
            );
        }
        if let Some(imu) = &self.imu {
            let [ax, ay, az] = imu.acceleration_mps2;
            let [gx, gy, gz] = imu.angular_rate_rad_s;
            push(Quantity::AccelerationX, ax, Quality::GOOD);
            push(Quantity::AccelerationY, ay, Quality::GOOD);
            push(Quantity::AccelerationZ, az, Quality::GOOD);
            push(Quantity::AngularRateX, gx, Quality::GOOD);
            push(Quantity::AngularRateY, gy, Quality::GOOD);
            push(Quantity::AngularRateZ, gz, Quality::GOOD);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sample;
    use proptest::prelude::*;

    fn event(line: &str) -> (MuonEvent, Option<&str>) {
        match parse_line(line.as_bytes()) {
            Ok(Line::Event {
                event,
                detector_name,
            }) => (event, detector_name),
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    #[test]
    fn v2_line_from_the_capture_converts_to_si_units() {
        let (e, name) = event("4 516410 216 36.85 238 19.61\r\n");
        assert_eq!(name, None);
        assert_eq!(e.format, Format::V2);
        assert_eq!(e.event, 4);
        assert_eq!(e.detector_time_s, 516.41);
        assert_eq!(e.adc, 216);
        assert!((e.sipm_peak_v - 0.03685).abs() < 1e-12);
        assert_eq!(e.dead_time_s, 0.238);
        assert!((e.temperature_k.unwrap() - 292.76).abs() < 1e-9);
        assert_eq!((e.coincidence, e.pressure_pa, e.imu), (None, None, None));
    }

    #[test]
    fn v3x_usb_line_with_every_column_converts_to_si_units() {
        let (e, name) = event(
            "17\t12.345678\t1\t2650\t187.1\t0.006800\t-41.5\t19400\t0.010:-0.020:1.000\t1.5:-3.0:90.0\tTOP\r\n",
        );
        assert_eq!(name, Some("TOP"));
        assert_eq!(e.format, Format::V3x);
        assert_eq!((e.event, e.adc, e.coincidence), (17, 2650, Some(true)));
        assert_eq!(e.detector_time_s, 12.345678);
        assert!((e.sipm_peak_v - 0.1871).abs() < 1e-12);
        assert_eq!(e.dead_time_s, 0.0068);
        assert!((e.temperature_k.unwrap() - 231.65).abs() < 1e-9);
        assert_eq!(e.pressure_pa, Some(19400.0));
        let imu = e.imu.unwrap();
        assert!((imu.acceleration_mps2[2] - 9.80665).abs() < 1e-12);
        assert!((imu.acceleration_mps2[1] + 0.196_133).abs() < 1e-9);
        assert!((imu.angular_rate_rad_s[2] - core::f64::consts::FRAC_PI_2).abs() < 1e-12);
    }

    #[test]
    fn v3x_optional_column_groups_are_told_apart() {
        // SD card line: sensors, no name.
        let (e, name) = event("1\t0.5\t0\t100\t7.1\t0.0004\t21.0\t101325\t0:0:1\t0:0:0");
        assert_eq!(
            (name, e.pressure_pa.is_some(), e.imu.is_some()),
            (None, true, true)
        );
        // No BMP280, MPU-6050 present, USB name that looks like a number.
        let (e, name) = event("1\t0.5\t0\t100\t7.1\t0.0004\t0:0:1\t0:0:0\t42");
        assert_eq!(name, Some("42"));
        assert_eq!((e.temperature_k, e.pressure_pa), (None, None));
        assert!(e.imu.is_some());
        // Only the fixed columns and the name.
        let (e, name) = event("1\t0.5\t0\t100\t7.1\t0.0004\tTOP");
        assert_eq!((name, e.temperature_k, e.imu), (Some("TOP"), None, None));
        // BMP280 only.
        let (e, _) = event("1\t0.5\t0\t100\t7.1\t0.0004\t21.0\t101325");
        assert_eq!(e.pressure_pa, Some(101_325.0));
        assert!(e.imu.is_none());
    }

    #[test]
    fn header_and_device_id_lines_are_recognised() {
        let Ok(Line::Header(h)) = parse_line(b"### CosmicWatch: The Desktop Muon Detector\r\n")
        else {
            panic!()
        };
        assert!(h.is_banner);
        assert_eq!(h.format, None);
        let Ok(Line::Header(h)) = parse_line(
            b"### Comp_date Comp_time Event Ardn_time[ms] ADC[0-1023] SiPM[mV] Deadtime[ms] Temp[C]",
        ) else {
            panic!()
        };
        assert_eq!((h.is_banner, h.format), (false, Some(Format::V2)));
        let Ok(Line::Header(h)) =
            parse_line(b"#        CosmicWatch: The Desktop Muon Detector v3X\r\n")
        else {
            panic!()
        };
        assert_eq!((h.is_banner, h.format), (true, Some(Format::V3x)));
        let Ok(Line::Header(h)) = parse_line(b"#          Detector Name: TOP  ") else {
            panic!()
        };
        assert_eq!(h.detector_name, Some("TOP"));
        let Ok(Line::Header(h)) = parse_line(b"# HK t=60.001 T=23.41 events=171") else {
            panic!()
        };
        assert!(!h.is_banner);
        assert_eq!(
            parse_line(b"Device ID: billy\r\n"),
            Ok(Line::DeviceId("billy"))
        );
        assert_eq!(parse_line(b"\r\n"), Ok(Line::Blank));
    }

    #[test]
    fn bad_lines_give_typed_errors() {
        use LineError::*;
        let cases: &[(&[u8], LineError)] = &[
            (
                b"1 2 3 4 5",
                WrongColumnCount {
                    format: Format::V2,
                    found: 5,
                },
            ),
            (
                b"1 2 3 4 5 6 7",
                WrongColumnCount {
                    format: Format::V2,
                    found: 7,
                },
            ),
            (b"1 54840 1024 317.99 10 18.00", OutOfDomain(Field::Adc)),
            (b"1 54840 675 -3.0 10 18.00", OutOfDomain(Field::Sipm)),
            (
                b"1 54840 675 317.99 60000 18.00",
                OutOfDomain(Field::DeadTime),
            ),
            (
                b"1 54840 675 317.99 10 -300",
                OutOfDomain(Field::Temperature),
            ),
            (b"1 54840 675 317.99 10 NaN", BadNumber(Field::Temperature)),
            (b"1 54840 675 inf 10 18", BadNumber(Field::Sipm)),
            (b"x 54840 675 317.99 10 18.00", BadNumber(Field::Event)),
            (b"+1 54840 675 317.99 10 18.00", BadNumber(Field::Event)),
            (b"1 -5 675 317.99 10 18.00", BadNumber(Field::Time)),
            (
                b"1\t0.5\t2\t100\t7.1\t0.0004",
                OutOfDomain(Field::Coincidence),
            ),
            (b"1\t0.5\t0\t4096\t7.1\t0.0004", OutOfDomain(Field::Adc)),
            (
                b"1\t0.5\t0\t100\t7.1",
                WrongColumnCount {
                    format: Format::V3x,
                    found: 5,
                },
            ),
            (
                b"1\t0.5\t0\t100\t7.1\t0.0004\t1\t2\t3\t4\t5\t6",
                WrongColumnCount {
                    format: Format::V3x,
                    found: 12,
                },
            ),
            (
                b"1\t0.5\t0\t100\t7.1\t0.0004\t0:0\t0:0:0",
                BadNumber(Field::Acceleration),
            ),
            (
                b"1\t0.5\t0\t100\t7.1\t0.0004\t0:0:1\t0:0:0:0",
                BadNumber(Field::AngularRate),
            ),
            (
                b"1\t0.5\t0\t100\t7.1\t0.0004\t21.0\t-5",
                OutOfDomain(Field::Pressure),
            ),
            (b"\xff\xfe 2 3", NotText),
        ];
        for (line, want) in cases {
            assert_eq!(
                parse_line(line),
                Err(*want),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    fn readings(e: &MuonEvent) -> Vec<Reading> {
        let mut out = Vec::new();
        e.push_readings(SensorId(9), Timestamp::monotonic(5), &mut out);
        out
    }

    #[test]
    fn v2_event_pushes_its_five_quantities() {
        let (e, _) = event("1 54840 675 317.99 10 18.00");
        let r = readings(&e);
        let q: Vec<_> = r.iter().map(|r| (r.quantity, r.value, r.quality)).collect();
        assert_eq!(q.len(), 5);
        assert_eq!(q[0], (Quantity::MuonEventCount, 1.0, Quality::GOOD));
        assert_eq!(q[1], (Quantity::MuonPulseAdc, 675.0, Quality::GOOD));
        assert_eq!(q[2].0, Quantity::SipmPeakVoltage);
        assert!((q[2].1 - 0.31799).abs() < 1e-12);
        assert_eq!(q[3], (Quantity::DetectorDeadTime, 0.01, Quality::GOOD));
        assert_eq!(q[4].0, Quantity::SensorTemperature);
        assert_eq!(q[4].2, Quality::GOOD);
        assert!(
            r.iter()
                .all(|r| r.sensor == SensorId(9) && r.time.mono_ns == 5)
        );
    }

    #[test]
    fn v3x_event_pushes_coincidence_pressure_and_imu() {
        let (e, _) = event("3\t1.0\t1\t100\t7.1\t0.0004\t20.0\t90000\t0:0:1\t0:0:0");
        let quantities: Vec<_> = readings(&e).iter().map(|r| r.quantity).collect();
        assert_eq!(
            quantities,
            [
                Quantity::MuonEventCount,
                Quantity::MuonPulseAdc,
                Quantity::SipmPeakVoltage,
                Quantity::DetectorDeadTime,
                Quantity::SensorTemperature,
                Quantity::MuonCoincidence,
                Quantity::AirPressure,
                Quantity::AccelerationX,
                Quantity::AccelerationY,
                Quantity::AccelerationZ,
                Quantity::AngularRateX,
                Quantity::AngularRateY,
                Quantity::AngularRateZ,
            ]
        );
    }

    #[test]
    fn temperature_below_minus_40_and_pressure_below_300_hpa_are_flagged_not_clamped() {
        let (cold, _) = event("3\t1.0\t0\t100\t7.1\t0.0004\t-40.1\t19400");
        let r = readings(&cold);
        let t = r
            .iter()
            .find(|r| r.quantity == Quantity::SensorTemperature)
            .unwrap();
        assert_eq!(t.quality, Quality::OUT_OF_RANGE);
        assert!((t.value - 233.05).abs() < 1e-9);
        let p = r
            .iter()
            .find(|r| r.quantity == Quantity::AirPressure)
            .unwrap();
        assert_eq!((p.value, p.quality), (19_400.0, Quality::OUT_OF_RANGE));

        let (edge, _) = event("1 54840 675 317.99 10 -40.00");
        let t = readings(&edge)
            .into_iter()
            .find(|r| r.quantity == Quantity::SensorTemperature)
            .unwrap();
        assert_eq!(t.quality, Quality::GOOD);
    }

    #[test]
    fn write_line_reproduces_the_capture_text() {
        let text = "632 87019804 668 291.28 46720 22.19";
        let (e, _) = event(text);
        let mut out = String::new();
        e.write_line(None, &mut out).unwrap();
        assert_eq!(out, text);
    }

    fn arb_v2() -> impl Strategy<Value = (u64, u32, u16, u32, u32, i32)> {
        (
            any::<u64>(),
            any::<u32>(),
            0..=1023u16,
            0..2_000_000u32,
            any::<u32>(),
            -27_000..15_000i32,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
            let _ = parse_line(&bytes);
        }

        #[test]
        fn arbitrary_field_soup_never_panics(
            fields in proptest::collection::vec(
                prop_oneof![
                    "[0-9]{1,25}", "-?[0-9]{0,6}\\.[0-9]{0,8}", "[0-9.:eE+-]{0,12}",
                    "(inf|NaN|TOP|billy)", Just(String::new()),
                ],
                0..14,
            ),
            tab in any::<bool>(),
        ) {
            let line = fields.join(if tab { "\t" } else { " " });
            let _ = parse_line(line.as_bytes());
        }

        #[test]
        fn v2_text_round_trips((n, time_ms, adc, sipm_cmv, dead, temp_cc) in arb_v2()) {
            let dead = dead.min(time_ms);
            let text = format!(
                "{n} {time_ms} {adc} {}.{:02} {dead} {}{}.{:02}",
                sipm_cmv / 100, sipm_cmv % 100,
                if temp_cc < 0 { "-" } else { "" }, temp_cc.unsigned_abs() / 100, temp_cc.unsigned_abs() % 100,
            );
            let (e, _) = event(&text);
            prop_assert_eq!(e.event, n);
            prop_assert_eq!(e.adc, adc);
            let mut back = String::new();
            e.write_line(None, &mut back).unwrap();
            // "-0.00" writes back as "-0.00" or "0.00": compare the parsed values then.
            let (again, _) = event(&back);
            prop_assert_eq!(again, e);
        }

        #[test]
        fn v3x_events_round_trip_within_print_precision(
            n in any::<u64>(),
            time_us in 0..10_000_000_000u64,
            flag in any::<bool>(),
            adc in 0..=4095u16,
            sipm_dmv in 0..20_000u32,
            dead_frac in 0.0..1.0f64,
            env in proptest::option::of((-600..600i32, 100..120_000u32)),
            imu in proptest::option::of(proptest::array::uniform6(-2000..2000i32)),
            name in proptest::option::of("[A-Za-z][A-Za-z0-9-]{0,19}"),
        ) {
            let e = MuonEvent {
                format: Format::V3x,
                event: n,
                detector_time_s: time_us as f64 / 1e6,
                coincidence: Some(flag),
                adc,
                sipm_peak_v: f64::from(sipm_dmv) / 10_000.0,
                dead_time_s: (time_us as f64 * dead_frac).floor() / 1e6,
                temperature_k: env.map(|(t, _)| f64::from(t) / 10.0 + CELSIUS_OFFSET),
                pressure_pa: env.map(|(_, p)| f64::from(p)),
                imu: imu.map(|v| Imu {
                    acceleration_mps2: [v[0], v[1], v[2]].map(|x| f64::from(x) / 1000.0 * STANDARD_GRAVITY),
                    angular_rate_rad_s: [v[3], v[4], v[5]].map(|x| (f64::from(x) / 10.0).to_radians()),
                }),
            };
            let mut text = String::new();
            e.write_line(name.as_deref(), &mut text).unwrap();
            let (back, back_name) = event(&text);
            prop_assert_eq!(back_name, name.as_deref());
            prop_assert_eq!((back.event, back.adc, back.coincidence), (e.event, e.adc, e.coincidence));
            prop_assert!((back.detector_time_s - e.detector_time_s).abs() < 1e-9);
            prop_assert!((back.dead_time_s - e.dead_time_s).abs() < 1e-9);
            prop_assert!((back.sipm_peak_v - e.sipm_peak_v).abs() < 1e-9);
            prop_assert_eq!(back.temperature_k.is_some(), e.temperature_k.is_some());
            if let (Some(a), Some(b)) = (back.temperature_k, e.temperature_k) {
                prop_assert!((a - b).abs() < 1e-9);
            }
            prop_assert_eq!(back.pressure_pa, e.pressure_pa);
            prop_assert_eq!(back.imu.is_some(), e.imu.is_some());
            if let (Some(a), Some(b)) = (back.imu, e.imu) {
                for i in 0..3 {
                    prop_assert!((a.acceleration_mps2[i] - b.acceleration_mps2[i]).abs() < 1e-9);
                    prop_assert!((a.angular_rate_rad_s[i] - b.angular_rate_rad_s[i]).abs() < 1e-9);
                }
            }
        }
    }
}
