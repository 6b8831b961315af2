//! One data line of the Personal Ozone Monitor, parsed without allocating.
//!
//! Invariants: any bytes give a [`DataLine`] or a [`LineError`], never a panic; every
//! number of a parsed line is finite; date and time fields are checked as calendar
//! values; units are applied only when readings are made ([`PomSample`]).

use aloft_protocol::{Quality, Quantity, Reading, SensorId, Timestamp};

use super::{
    CELL_PRESSURE_MAX_PA, CELL_PRESSURE_MIN_PA, CELL_TEMPERATURE_MAX_K, CELL_TEMPERATURE_MIN_K,
    FLOW_MAX_CC_MIN, FLOW_MIN_CC_MIN, OZONE_MAX_PPB, OZONE_MIN_PPB,
};
use crate::Sample;

/// The unit of the cell temperature on the line (a menu setting of the monitor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TemperatureUnit {
    /// Degrees Celsius.
    #[default]
    Celsius,
    /// Kelvin.
    Kelvin,
}

/// The unit of the cell pressure on the line (a menu setting of the monitor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PressureUnit {
    /// Millibar (hPa).
    #[default]
    Mbar,
    /// Torr (mmHg).
    Torr,
}

/// How the monitor is set up to write its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Units {
    /// The cell temperature's unit.
    pub temperature: TemperatureUnit,
    /// The cell pressure's unit.
    pub pressure: PressureUnit,
}

impl Units {
    /// A cell temperature on the line in K.
    pub fn temperature_k(self, value: f64) -> f64 {
        match self.temperature {
            TemperatureUnit::Celsius => value + 273.15,
            TemperatureUnit::Kelvin => value,
        }
    }

    /// A cell pressure on the line in Pa.
    pub fn pressure_pa(self, value: f64) -> f64 {
        match self.pressure {
            PressureUnit::Mbar => value * 100.0,
            PressureUnit::Torr => value * 101_325.0 / 760.0,
        }
    }

    /// A cell temperature in K as the line writes it.
    pub fn temperature_on_line(self, kelvin: f64) -> f64 {
        match self.temperature {
            TemperatureUnit::Celsius => kelvin - 273.15,
            TemperatureUnit::Kelvin => kelvin,
        }
    }

    /// A cell pressure in Pa as the line writes it.
    pub fn pressure_on_line(self, pa: f64) -> f64 {
        match self.pressure {
            PressureUnit::Mbar => pa / 100.0,
            PressureUnit::Torr => pa * 760.0 / 101_325.0,
        }
    }
}

/// Why a line is not a data line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Nothing but whitespace.
    #[error("empty line")]
    Empty,
    /// Not ASCII text (line noise).
    #[error("not ASCII text")]
    NotText,
    /// Text that does not start with a number: one of the monitor's messages.
    #[error("not a data line")]
    Message,
    /// Neither 6 fields nor 7 (with the log number).
    #[error("{0} fields, expected 6 or 7")]
    FieldCount(usize),
    /// A numeric field is not a finite number.
    #[error("field {0} is not a number")]
    Number(&'static str),
    /// The log number is not a whole number.
    #[error("the log number is not a whole number")]
    LogNumber,
    /// The date is not dd/mm/yy.
    #[error("the date is not dd/mm/yy")]
    Date,
    /// The time is not hh:mm:ss.
    #[error("the time is not hh:mm:ss")]
    Time,
}

/// A parsed data line, numbers as on the line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DataLine {
    /// The log number of a line replayed from the logger.
    pub log: Option<u32>,
    /// Ozone mixing ratio, ppb.
    pub ozone_ppb: f64,
    /// Cell temperature, in the monitor's temperature unit.
    pub cell_temperature: f64,
    /// Cell pressure, in the monitor's pressure unit.
    pub cell_pressure: f64,
    /// Volumetric flow rate, cc/min.
    pub flow_cc_min: f64,
    /// Day, month, two-digit year of the monitor's clock.
    pub date: (u8, u8, u8),
    /// Hour, minute, second of the monitor's clock.
    pub time: (u8, u8, u8),
}

impl DataLine {
    /// The line as the monitor writes it (without the line end).
    pub fn format(&self) -> String {
        let (d, mo, y) = self.date;
        let (h, mi, s) = self.time;
        let log = self.log.map(|n| format!("{n},")).unwrap_or_default();
        format!(
            "{log}{:.1},{:.1},{:.1},{:.0},{d:02}/{mo:02}/{y:02},{h:02}:{mi:02}:{s:02}",
            self.ozone_ppb, self.cell_temperature, self.cell_pressure, self.flow_cc_min
        )
    }
}

fn number(field: &str, name: &'static str) -> Result<f64, LineError> {
    let field = field.trim();
    // Plain decimals only: `f64::from_str` would also take "inf", "NaN" and exponents.
    let plain = !field.is_empty()
        && field
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'+');
    match field.parse::<f64>() {
        Ok(v) if plain && v.is_finite() => Ok(v),
        _ => Err(LineError::Number(name)),
    }
}

fn triple(field: &str, sep: char) -> Option<(u8, u8, u8)> {
    let mut parts = field.trim().split(sep);
    let mut next = || -> Option<u8> {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse().ok()
    };
    let t = (next()?, next()?, next()?);
    if parts.next().is_some() {
        return None;
    }
    Some(t)
}

/// Parses one line (with or without its `\r\n`).
pub fn parse_line(bytes: &[u8]) -> Result<DataLine, LineError> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(LineError::NotText);
    };
    if !text.is_ascii() {
        return Err(LineError::NotText);
    }
    let text = text.trim();
    if text.is_empty() {
        return Err(LineError::Empty);
    }
    if !text
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_digit() || b == b'-' || b == b'+' || b == b'.')
    {
        return Err(LineError::Message);
    }
    let mut fields = [""; 7];
    let mut n = 0;
    for field in text.split(',') {
        if let Some(slot) = fields.get_mut(n) {
            *slot = field;
        }
        n += 1;
    }
    let (log, rest) = match n {
        6 => (None, &fields[..6]),
        7 => {
            let log = fields[0]
                .trim()
                .parse::<u32>()
                .map_err(|_| LineError::LogNumber)?;
            (Some(log), &fields[1..7])
        }
        n => return Err(LineError::FieldCount(n)),
    };
    let [ozone, temperature, pressure, flow, date, time] = rest else {
        return Err(LineError::FieldCount(n));
    };
    let date = triple(date, '/')
        .filter(|(d, m, _)| (1..=31).contains(d) && (1..=12).contains(m))
        .ok_or(LineError::Date)?;
    let time = triple(time, ':')
        .filter(|(h, m, s)| *h < 24 && *m < 60 && *s < 60)
        .ok_or(LineError::Time)?;
    Ok(DataLine {
        log,
        ozone_ppb: number(ozone, "ozone")?,
        cell_temperature: number(temperature, "cell temperature")?,
        cell_pressure: number(pressure, "cell pressure")?,
        flow_cc_min: number(flow, "flow")?,
        date,
        time,
    })
}

/// A data line with the units it was written in: what becomes readings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PomSample {
    /// The line.
    pub line: DataLine,
    /// The monitor's units.
    pub units: Units,
}

impl PomSample {
    /// Ozone mole fraction, mol mol-1.
    pub fn ozone_mol_mol(&self) -> f64 {
        self.line.ozone_ppb * 1e-9
    }

    /// Cell temperature, K.
    pub fn cell_temperature_k(&self) -> f64 {
        self.units.temperature_k(self.line.cell_temperature)
    }

    /// Cell pressure, Pa.
    pub fn cell_pressure_pa(&self) -> f64 {
        self.units.pressure_pa(self.line.cell_pressure)
    }

    /// Sample flow, m3 s-1.
    pub fn flow_m3_s(&self) -> f64 {
        self.line.flow_cc_min * 1e-6 / 60.0
    }

    /// Whether the flow is inside its nominal band.
    pub fn flow_nominal(&self) -> bool {
        (FLOW_MIN_CC_MIN..=FLOW_MAX_CC_MIN).contains(&self.line.flow_cc_min)
    }
}

fn flag(inside: bool) -> Quality {
    if inside {
        Quality::GOOD
    } else {
        Quality::OUT_OF_RANGE
    }
}

impl Sample for PomSample {
    fn push_readings(&self, sensor: SensorId, time: Timestamp, out: &mut Vec<Reading>) {
        let reading = |quantity, value, quality| Reading {
            sensor,
            quantity,
            time,
            value,
            quality,
        };
        let flow = flag(self.flow_nominal());
        let t = self.cell_temperature_k();
        let t_q = flag((CELL_TEMPERATURE_MIN_K..=CELL_TEMPERATURE_MAX_K).contains(&t));
        let p = self.cell_pressure_pa();
        let p_q = flag((CELL_PRESSURE_MIN_PA..=CELL_PRESSURE_MAX_PA).contains(&p));
        let ozone_q = flag((OZONE_MIN_PPB..=OZONE_MAX_PPB).contains(&self.line.ozone_ppb));
        // The ozone is computed with the cell's temperature and pressure and assumes a
        // flushed cell: any of them outside its range makes it out of range too.
        out.push(reading(
            Quantity::OzoneMoleFraction,
            self.ozone_mol_mol(),
            ozone_q | flow | t_q | p_q,
        ));
        out.push(reading(Quantity::CellTemperature, t, t_q));
        out.push(reading(Quantity::CellPressure, p, p_q));
        out.push(reading(Quantity::SampleFlowRate, self.flow_m3_s(), flow));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_live_line_and_a_logged_line_parse() {
        let l = parse_line(b"  42.3,31.5,845.2,1020,07/12/26,18:31:05\r\n").unwrap();
        assert_eq!(l.log, None);
        assert_eq!(l.ozone_ppb, 42.3);
        assert_eq!(l.cell_temperature, 31.5);
        assert_eq!(l.cell_pressure, 845.2);
        assert_eq!(l.flow_cc_min, 1020.0);
        assert_eq!(l.date, (7, 12, 26));
        assert_eq!(l.time, (18, 31, 5));
        let logged = parse_line(b"2893,-1.2,309.4,759.3,840,15/10/10,18:31:27").unwrap();
        assert_eq!(logged.log, Some(2893));
        assert_eq!(logged.ozone_ppb, -1.2);
    }

    #[test]
    fn units_follow_the_monitors_menu_settings() {
        let l = parse_line(b"3.2,309.4,759.3,840,15/10/10,18:31:27").unwrap();
        let s = PomSample {
            line: l,
            units: Units {
                temperature: TemperatureUnit::Kelvin,
                pressure: PressureUnit::Torr,
            },
        };
        assert!((s.cell_temperature_k() - 309.4).abs() < 1e-9);
        assert!((s.cell_pressure_pa() - 101_231.7).abs() < 1.0);
        assert!((s.ozone_mol_mol() - 3.2e-9).abs() < 1e-15);
        assert!((s.flow_m3_s() - 14e-6).abs() < 1e-12);
        let mut out = Vec::new();
        s.push_readings(SensorId(1), Timestamp::monotonic(1), &mut out);
        assert!(out.iter().all(|r| r.quality == Quality::GOOD), "{out:?}");
        // The same line read as °C is a cell at 582 K: out of range, never clamped.
        let celsius = PomSample {
            units: Units::default(),
            ..s
        };
        out.clear();
        celsius.push_readings(SensorId(1), Timestamp::monotonic(1), &mut out);
        assert!(out[1].quality.contains(Quality::OUT_OF_RANGE));
        assert!((out[1].value - 582.55).abs() < 1e-9);
    }

    #[test]
    fn a_flow_outside_its_band_flags_the_ozone_as_well() {
        let l = parse_line(b"55.0,30.0,900.0,0,07/12/26,18:31:05").unwrap();
        let mut out = Vec::new();
        PomSample {
            line: l,
            units: Units::default(),
        }
        .push_readings(SensorId(1), Timestamp::monotonic(1), &mut out);
        assert_eq!(out[0].quantity, Quantity::OzoneMoleFraction);
        assert!(out[0].quality.contains(Quality::OUT_OF_RANGE));
        assert_eq!(out[1].quality, Quality::GOOD);
        assert!(out[3].quality.contains(Quality::OUT_OF_RANGE));
    }

    #[test]
    fn what_is_not_a_data_line_says_why() {
        assert_eq!(parse_line(b"\r\n"), Err(LineError::Empty));
        assert_eq!(parse_line(b"Logging Started"), Err(LineError::Message));
        assert_eq!(parse_line(b"1,2,3"), Err(LineError::FieldCount(3)));
        assert_eq!(
            parse_line(b"nan,1,1,1,01/01/20,00:00:00"),
            Err(LineError::Message)
        );
        assert_eq!(
            parse_line(b"1,inf,1,1,01/01/20,00:00:00"),
            Err(LineError::Number("cell temperature"))
        );
        assert_eq!(
            parse_line(b"1,1,1,1,32/01/20,00:00:00"),
            Err(LineError::Date)
        );
        assert_eq!(
            parse_line(b"1,1,1,1,01/01/20,24:00:00"),
            Err(LineError::Time)
        );
        assert_eq!(
            parse_line(b"1x,1,1,1,1,01/01/20,00:00:00"),
            Err(LineError::LogNumber)
        );
        assert_eq!(parse_line(&[0x31, 0xFF, 0x2C]), Err(LineError::NotText));
    }

    fn arb_line() -> impl Strategy<Value = DataLine> {
        (
            proptest::option::of(0u32..100_000),
            -20.0f64..20_000.0,
            -50.0f64..400.0,
            0.0f64..1_200.0,
            0.0f64..3_000.0,
            (1u8..=31, 1u8..=12, 0u8..=99),
            (0u8..24, 0u8..60, 0u8..60),
        )
            .prop_map(|(log, o, t, p, f, date, time)| DataLine {
                log,
                ozone_ppb: o,
                cell_temperature: t,
                cell_pressure: p,
                flow_cc_min: f,
                date,
                time,
            })
    }

    proptest! {
        #[test]
        fn any_bytes_parse_to_a_line_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
            if let Ok(l) = parse_line(&bytes) {
                prop_assert!(l.ozone_ppb.is_finite() && l.cell_pressure.is_finite());
                prop_assert!(l.cell_temperature.is_finite() && l.flow_cc_min.is_finite());
            }
        }

        #[test]
        fn any_line_the_monitor_writes_parses_back_to_its_values(line in arb_line()) {
            let text = line.format();
            let parsed = parse_line(text.as_bytes()).expect("a monitor's line parses");
            prop_assert_eq!(parsed.log, line.log);
            prop_assert!((parsed.ozone_ppb - line.ozone_ppb).abs() <= 0.05 + 1e-9);
            prop_assert!((parsed.cell_temperature - line.cell_temperature).abs() <= 0.05 + 1e-9);
            prop_assert!((parsed.cell_pressure - line.cell_pressure).abs() <= 0.05 + 1e-9);
            prop_assert!((parsed.flow_cc_min - line.flow_cc_min).abs() <= 0.5 + 1e-9);
            prop_assert_eq!(parsed.date, line.date);
            prop_assert_eq!(parsed.time, line.time);
        }

        #[test]
        fn a_cut_line_is_an_error_or_a_line_with_fewer_digits(line in arb_line(), cut in 0usize..60) {
            let text = line.format();
            let cut = cut.min(text.len());
            // Whatever the cut, no panic and no non-finite value.
            if let Ok(l) = parse_line(&text.as_bytes()[..cut]) {
                prop_assert!(l.ozone_ppb.is_finite());
            }
        }
    }
}
