//! TE MS4525DO digital differential-pressure sensor (airspeed): driver and conversions.
//!
//! One 4-byte read returns everything: 2 status bits (0 normal, 2 stale, 3 fault; 1 is the
//! factory command mode), a 14-bit bridge count and an 11-bit temperature. The bridge
//! count maps linearly onto the part's pressure range between 10 % and 90 % of 2^14 - 1
//! counts (output type A) or 5 % and 95 % (type B); temperature is
//! `raw * 200 / 2047 - 50` °C.
//!
//! Readings: differential pressure and sensor temperature, and through
//! [`crate::airspeed`] indicated airspeed and, when the caller passes static pressure and
//! the *outside* air temperature (from other sensors: the static pressure sensor and the one
//! the config names as outside), true airspeed. Without both inputs no true airspeed is
//! produced: guessing the density would hide a 2x error at 12 km.
//!
//! Invariants: nothing is clamped. A pressure outside the part's range flags the pressure
//! and airspeeds OUT_OF_RANGE; a die temperature outside the -25..105 °C operating range
//! flags every reading; a stale status flags every reading STALE; a fault status is a typed
//! error. [`sim`] holds a register-level model of the device.

pub mod sim;

use aloft_protocol::{
    DeviceParameter, ParameterValue, Quality, Quantity, Reading, SensorDescriptor, SensorId,
    Timestamp,
};
use embedded_hal::i2c::I2c;

use crate::{Sample, airspeed};

/// Address of the I2C interface variant "I" (the common one).
pub const ADDRESS_I: u8 = 0x28;
/// Address of interface variant "J".
pub const ADDRESS_J: u8 = 0x36;
/// Address of interface variant "K".
pub const ADDRESS_K: u8 = 0x46;

/// Pa per psi.
pub const PA_PER_PSI: f64 = 6_894.757_293_168;
/// Lowest operating temperature, K (-25 °C).
pub const OPERATING_MIN_K: f64 = 248.15;
/// Highest operating temperature, K (105 °C).
pub const OPERATING_MAX_K: f64 = 378.15;

const FULL_SCALE_COUNTS: f64 = 16_383.0;
const CELSIUS_OFFSET_K: f64 = 273.15;

/// The part's output transfer function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputType {
    /// 10 % to 90 % of full-scale counts.
    A,
    /// 5 % to 95 % of full-scale counts.
    B,
}

impl OutputType {
    /// Counts at the range's minimum pressure.
    pub fn counts_at_min(self) -> f64 {
        match self {
            OutputType::A => 0.10 * FULL_SCALE_COUNTS,
            OutputType::B => 0.05 * FULL_SCALE_COUNTS,
        }
    }

    /// Counts at the range's maximum pressure.
    pub fn counts_at_max(self) -> f64 {
        match self {
            OutputType::A => 0.90 * FULL_SCALE_COUNTS,
            OutputType::B => 0.95 * FULL_SCALE_COUNTS,
        }
    }
}

/// The pressure span of a part, Pa.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PressureRange {
    /// Pressure at the bottom of the output span, Pa.
    pub min_pa: f64,
    /// Pressure at the top of the output span, Pa.
    pub max_pa: f64,
}

/// A part-number range code that is not one the driver knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown MS4525DO range code (expected three digits of psi and D, G or A, like 001D)")]
pub struct UnknownRangeCode;

impl PressureRange {
    /// ±`psi` differential.
    pub fn differential_psi(psi: f64) -> Self {
        PressureRange {
            min_pa: -psi * PA_PER_PSI,
            max_pa: psi * PA_PER_PSI,
        }
    }

    /// 0..`psi` gauge (or absolute).
    pub fn gauge_psi(psi: f64) -> Self {
        PressureRange {
            min_pa: 0.0,
            max_pa: psi * PA_PER_PSI,
        }
    }

    /// Parses the range part of the part number: `001D` = ±1 psi differential, `005G` =
    /// 0..5 psi gauge, `015A` = 0..15 psi absolute.
    pub fn from_code(code: &str) -> Result<Self, UnknownRangeCode> {
        let (digits, kind) = code.split_at_checked(3).ok_or(UnknownRangeCode)?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(UnknownRangeCode);
        }
        let psi: u16 = digits.parse().map_err(|_| UnknownRangeCode)?;
        if psi == 0 {
            return Err(UnknownRangeCode);
        }
        let psi = f64::from(psi);
        match kind {
            "D" | "d" => Ok(PressureRange::differential_psi(psi)),
            "G" | "g" | "A" | "a" => Ok(PressureRange::gauge_psi(psi)),
            _ => Err(UnknownRangeCode),
        }
    }

    /// Whether `pressure_pa` lies inside the span.
    pub fn contains(self, pressure_pa: f64) -> bool {
        (self.min_pa..=self.max_pa).contains(&pressure_pa)
    }
}

/// Which part is fitted and where.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// I2C address: 0x28, 0x36 or 0x46 by interface variant.
    pub address: u8,
    /// Output transfer function (the "A" or "B" in the part number).
    pub output_type: OutputType,
    /// Pressure range (the "001D" in the part number).
    pub range: PressureRange,
}

impl Default for Config {
    /// MS4525DO-DS5AI001DP: type A, ±1 psi differential, address 0x28 (the usual airspeed
    /// part).
    fn default() -> Self {
        Config {
            address: ADDRESS_I,
            output_type: OutputType::A,
            range: PressureRange::differential_psi(1.0),
        }
    }
}

impl Config {
    /// A config for the part at `address`, with `output_type` and `range`.
    pub fn new(address: u8, output_type: OutputType, range: PressureRange) -> Self {
        Config {
            address,
            output_type,
            range,
        }
    }

    /// Pressure, Pa, of a 14-bit bridge count (not clamped: counts outside the output span
    /// give pressures outside the range).
    pub fn pressure_pa(&self, counts: u16) -> f64 {
        let (lo, hi) = (
            self.output_type.counts_at_min(),
            self.output_type.counts_at_max(),
        );
        (f64::from(counts) - lo) * (self.range.max_pa - self.range.min_pa) / (hi - lo)
            + self.range.min_pa
    }

    /// The (fractional) bridge count for `pressure_pa`: the inverse of
    /// [`Config::pressure_pa`], used by the simulator.
    pub fn counts_for(&self, pressure_pa: f64) -> f64 {
        let (lo, hi) = (
            self.output_type.counts_at_min(),
            self.output_type.counts_at_max(),
        );
        (pressure_pa - self.range.min_pa) * (hi - lo) / (self.range.max_pa - self.range.min_pa) + lo
    }
}

/// Temperature, K, of an 11-bit temperature count.
pub fn temperature_k(counts: u16) -> f64 {
    f64::from(counts) * 200.0 / 2047.0 - 50.0 + CELSIUS_OFFSET_K
}

/// The 11-bit count for a temperature, K (fractional; the simulator rounds).
pub fn temperature_counts_for(temperature_k: f64) -> f64 {
    (temperature_k - CELSIUS_OFFSET_K + 50.0) * 2047.0 / 200.0
}

/// The two status bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 0: a new conversion.
    Normal,
    /// 1: the factory command mode; never seen in operation.
    CommandMode,
    /// 2: data already fetched, no new conversion since.
    Stale,
    /// 3: the device's diagnostic detected a fault.
    Fault,
}

/// One 4-byte packet as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawSample {
    /// Status bits.
    pub status: Status,
    /// 14-bit bridge count.
    pub bridge: u16,
    /// 11-bit temperature count.
    pub temperature: u16,
}

impl RawSample {
    /// Decodes a packet (the low 5 bits of the last byte are undefined and ignored).
    pub fn from_bytes(bytes: [u8; 4]) -> Self {
        let [b0, b1, b2, b3] = bytes;
        let status = match b0 >> 6 {
            0 => Status::Normal,
            1 => Status::CommandMode,
            2 => Status::Stale,
            _ => Status::Fault,
        };
        RawSample {
            status,
            bridge: u16::from_be_bytes([b0 & 0x3F, b1]),
            temperature: (u16::from(b2) << 3) | u16::from(b3 >> 5),
        }
    }

    /// Encodes a packet, as the device sends it (bits beyond 14 and 11 are dropped).
    pub fn to_bytes(self) -> [u8; 4] {
        let status: u8 = match self.status {
            Status::Normal => 0,
            Status::CommandMode => 1,
            Status::Stale => 2,
            Status::Fault => 3,
        };
        let [hi, lo] = (self.bridge & 0x3FFF).to_be_bytes();
        let t = self.temperature & 0x07FF;
        [
            (status << 6) | hi,
            lo,
            (t >> 3) as u8,
            ((t & 0x07) << 5) as u8,
        ]
    }
}

/// Static pressure and outside air temperature from other sensors, for true airspeed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutsideAir {
    /// Static pressure, Pa (from the static pressure sensor).
    pub static_pressure_pa: f64,
    /// Outside air temperature, K (from the sensor the config names as outside).
    pub temperature_k: f64,
    /// The worst quality of those two readings: a flaw ([`Quality::has_flaw`]; a simulated
    /// value is none) marks the true airspeed DEGRADED_INPUT.
    pub quality: Quality,
}

/// One decoded MS4525DO measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// The packet as read.
    pub raw: RawSample,
    /// Differential pressure, Pa (pitot minus static).
    pub differential_pressure_pa: f64,
    /// Die temperature, K.
    pub sensor_temperature_k: f64,
    /// Whether the pressure lies outside the part's range.
    pub pressure_out_of_range: bool,
    /// Inputs for true airspeed, when the caller had them.
    pub outside_air: Option<OutsideAir>,
}

impl Measurement {
    /// Converts a packet for the part described by `config`. A fault or command-mode status
    /// is an error: such a packet carries no measurement.
    pub fn from_raw(raw: RawSample, config: &Config) -> Result<Self, StatusError> {
        match raw.status {
            Status::Fault => return Err(StatusError::Fault),
            Status::CommandMode => return Err(StatusError::CommandMode),
            Status::Normal | Status::Stale => {}
        }
        let differential_pressure_pa = config.pressure_pa(raw.bridge);
        Ok(Measurement {
            raw,
            differential_pressure_pa,
            sensor_temperature_k: temperature_k(raw.temperature),
            pressure_out_of_range: !config.range.contains(differential_pressure_pa),
            outside_air: None,
        })
    }

    /// The same measurement with the inputs for true airspeed.
    pub fn with_outside_air(mut self, air: OutsideAir) -> Self {
        self.outside_air = Some(air);
        self
    }

    /// Flags every reading of this measurement carries.
    fn common_quality(&self) -> Quality {
        let mut q = Quality::GOOD;
        if self.raw.status == Status::Stale {
            q |= Quality::STALE;
        }
        if !(OPERATING_MIN_K..=OPERATING_MAX_K).contains(&self.sensor_temperature_k) {
            q |= Quality::OUT_OF_RANGE;
        }
        q
    }

    /// Quality of the differential pressure reading.
    pub fn pressure_quality(&self) -> Quality {
        let mut q = self.common_quality();
        if self.pressure_out_of_range {
            q |= Quality::OUT_OF_RANGE;
        }
        q
    }

    /// Indicated airspeed, m s-1.
    pub fn indicated_airspeed_mps(&self) -> f64 {
        airspeed::indicated_mps(self.differential_pressure_pa)
    }

    /// True airspeed, m s-1, with its quality; `None` without (physical) outside-air inputs.
    pub fn true_airspeed(&self) -> Option<(f64, Quality)> {
        let air = self.outside_air?;
        let tas = airspeed::true_mps(
            self.differential_pressure_pa,
            air.static_pressure_pa,
            air.temperature_k,
        )?;
        let mut q = self.pressure_quality() | Quality::DERIVED;
        if air.quality.has_flaw() {
            q |= Quality::DEGRADED_INPUT;
        }
        Some((tas, q))
    }
}

impl Sample for Measurement {
    fn push_readings(&self, sensor: SensorId, time: Timestamp, out: &mut Vec<Reading>) {
        let reading = |quantity, value, quality| Reading {
            sensor,
            quantity,
            time,
            value,
            quality,
        };
        out.push(reading(
            Quantity::DifferentialPressure,
            self.differential_pressure_pa,
            self.pressure_quality(),
        ));
        out.push(reading(
            Quantity::SensorTemperature,
            self.sensor_temperature_k,
            self.common_quality(),
        ));
        out.push(reading(
            Quantity::IndicatedAirspeed,
            self.indicated_airspeed_mps(),
            self.pressure_quality() | Quality::DERIVED,
        ));
        if let Some((tas, quality)) = self.true_airspeed() {
            out.push(reading(Quantity::TrueAirspeed, tas, quality));
        }
    }
}

/// A status that carries no measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    /// Status 3: the device's diagnostic found a fault.
    #[error("MS4525DO reports a fault")]
    Fault,
    /// Status 1: the device is in its factory command mode.
    #[error("MS4525DO is in command mode")]
    CommandMode,
}

/// Errors of the MS4525DO driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error<E> {
    /// The bus failed (for example a NACK).
    #[error("I2C bus error: {0:?}")]
    I2c(E),
    /// The device reported a fault (status 3).
    #[error("MS4525DO reports a fault")]
    Fault,
    /// The device answered in command mode (status 1).
    #[error("MS4525DO is in command mode")]
    CommandMode,
}

impl<E> From<StatusError> for Error<E> {
    fn from(e: StatusError) -> Self {
        match e {
            StatusError::Fault => Error::Fault,
            StatusError::CommandMode => Error::CommandMode,
        }
    }
}

/// Driver of one MS4525DO. Owns its bus; the part needs no delays (it converts
/// continuously), so the delay is kept only for the common driver shape.
#[derive(Debug)]
pub struct Ms4525do<I2C, D> {
    bus: I2C,
    #[allow(
        dead_code,
        reason = "kept so every I2C driver has one shape; the part needs no waits"
    )]
    delay: D,
    config: Config,
}

impl<I2C: I2c, D: embedded_hal::delay::DelayNs> Ms4525do<I2C, D> {
    /// A driver for the part described by `config` on `bus`.
    pub fn new(bus: I2C, delay: D, config: Config) -> Self {
        Ms4525do { bus, delay, config }
    }

    /// Gives the bus back.
    pub fn destroy(self) -> I2C {
        self.bus
    }

    /// The part's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// (Re)initialises: the part has no reset command and converts continuously, so this
    /// reads one packet to confirm the device answers and reports no fault. A stale packet
    /// is fine here.
    pub fn init(&mut self) -> Result<(), Error<I2C::Error>> {
        let raw = self.read_raw()?;
        Measurement::from_raw(raw, &self.config)?;
        tracing::debug!(address = self.config.address, "MS4525DO initialised.");
        Ok(())
    }

    /// What this sensor is.
    pub fn descriptor(&self) -> SensorDescriptor {
        let mut d = SensorDescriptor::new("TE MS4525DO")
            .with_integer("address", i64::from(self.config.address))
            .with_real("p_min_pa", self.config.range.min_pa)
            .with_real("p_max_pa", self.config.range.max_pa);
        d.parameters.push(DeviceParameter {
            name: "output_type".into(),
            value: ParameterValue::Text(
                match self.config.output_type {
                    OutputType::A => "A",
                    OutputType::B => "B",
                }
                .into(),
            ),
        });
        d
    }

    /// Reads one packet as it comes.
    pub fn read_raw(&mut self) -> Result<RawSample, Error<I2C::Error>> {
        let mut buf = [0u8; 4];
        self.bus
            .read(self.config.address, &mut buf)
            .map_err(Error::I2c)?;
        Ok(RawSample::from_bytes(buf))
    }

    /// Reads one measurement (stale ones are returned, flagged STALE).
    pub fn measure(&mut self) -> Result<Measurement, Error<I2C::Error>> {
        let raw = self.read_raw()?;
        Ok(Measurement::from_raw(raw, &self.config)?)
    }

    /// Reads one measurement and attaches the inputs for true airspeed.
    pub fn measure_with_outside_air(
        &mut self,
        air: OutsideAir,
    ) -> Result<Measurement, Error<I2C::Error>> {
        Ok(self.measure()?.with_outside_air(air))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal_mock::eh1::delay::NoopDelay;
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction};
    use proptest::prelude::*;

    const PSI: f64 = PA_PER_PSI;

    fn raw(status: Status, bridge: u16, temperature: u16) -> RawSample {
        RawSample {
            status,
            bridge,
            temperature,
        }
    }

    #[test]
    fn type_a_plus_minus_one_psi_maps_ten_and_ninety_percent_to_the_range_ends() {
        let c = Config::default();
        // 10 %, 50 % and 90 % of 16383 counts: -1, 0 and +1 psi.
        assert!((c.counts_for(-PSI) - 1_638.3).abs() < 1e-9);
        assert!((c.counts_for(0.0) - 8_191.5).abs() < 1e-9);
        assert!((c.counts_for(PSI) - 14_744.7).abs() < 1e-9);
        // One count is 2 psi / 13106.4 counts = 1.052 Pa.
        assert!((c.pressure_pa(8_192) - PSI * 2.0 * 0.5 / 13_106.4).abs() < 1e-9);
        assert!((c.pressure_pa(1_638) + PSI).abs() < 1.1);
    }

    #[test]
    fn type_b_uses_five_to_ninety_five_percent() {
        let c = Config::new(ADDRESS_J, OutputType::B, PressureRange::gauge_psi(5.0));
        assert!((c.counts_for(0.0) - 819.15).abs() < 1e-9);
        assert!((c.counts_for(5.0 * PSI) - 15_563.85).abs() < 1e-9);
        assert!((c.pressure_pa(15_564) - 5.0 * PSI).abs() < 4.0);
    }

    #[test]
    fn temperature_spans_minus_fifty_to_one_hundred_fifty_celsius() {
        assert!((temperature_k(0) - 223.15).abs() < 1e-9);
        assert!((temperature_k(2047) - 423.15).abs() < 1e-9);
        assert!((temperature_k(1023) - (273.15 + 1023.0 * 200.0 / 2047.0 - 50.0)).abs() < 1e-9);
    }

    #[test]
    fn a_packet_decodes_status_bridge_and_masked_temperature() {
        // 0x60 << 3 = 768 counts = 25.04 °C; the low five bits of the last byte are junk.
        let r = RawSample::from_bytes([0x1F, 0xFF, 0x60, 0x1F]);
        assert_eq!(r, raw(Status::Normal, 8_191, 768));
        assert_eq!(
            RawSample::from_bytes([0x9F, 0xFF, 0x60, 0x00]).status,
            Status::Stale
        );
        assert_eq!(RawSample::from_bytes([0xC0, 0, 0, 0]).status, Status::Fault);
        assert_eq!(
            RawSample::from_bytes([0x40, 0, 0, 0]).status,
            Status::CommandMode
        );
    }

    #[test]
    fn range_codes_of_the_part_number_parse() {
        let r = PressureRange::from_code("001D").unwrap();
        assert!((r.min_pa + PSI).abs() < 1e-9 && (r.max_pa - PSI).abs() < 1e-9);
        let g = PressureRange::from_code("005G").unwrap();
        assert_eq!(g.min_pa, 0.0);
        assert!((g.max_pa - 5.0 * PSI).abs() < 1e-9);
        for bad in ["", "01D", "000D", "001X", "0x1D", "001DD", "ÿÿÿD"] {
            assert_eq!(
                PressureRange::from_code(bad),
                Err(UnknownRangeCode),
                "{bad}"
            );
        }
    }

    #[test]
    fn stale_flags_every_reading_and_fault_is_an_error() {
        let c = Config::default();
        let m = Measurement::from_raw(raw(Status::Stale, 9_000, 700), &c).unwrap();
        let mut out = Vec::new();
        m.push_readings(SensorId(2), Timestamp::monotonic(5), &mut out);
        assert_eq!(out.len(), 3, "no true airspeed without outside air");
        assert!(out.iter().all(|r| r.quality.contains(Quality::STALE)));
        assert_eq!(
            Measurement::from_raw(raw(Status::Fault, 9_000, 700), &c),
            Err(StatusError::Fault)
        );
        assert_eq!(
            Measurement::from_raw(raw(Status::CommandMode, 9_000, 700), &c),
            Err(StatusError::CommandMode)
        );
    }

    #[test]
    fn pressure_outside_the_span_is_flagged_not_clamped() {
        let c = Config::default();
        let m = Measurement::from_raw(raw(Status::Normal, 16_000, 700), &c).unwrap();
        assert!(m.differential_pressure_pa > PSI);
        assert!(m.pressure_quality().contains(Quality::OUT_OF_RANGE));
        assert!(m.common_quality().is_good(), "temperature is fine");
        let inside = Measurement::from_raw(raw(Status::Normal, 9_000, 700), &c).unwrap();
        assert!(inside.pressure_quality().is_good());
    }

    #[test]
    fn die_temperature_outside_operating_range_flags_every_reading() {
        let c = Config::default();
        let cold = temperature_counts_for(223.15 + 0.5).round() as u16;
        let m = Measurement::from_raw(raw(Status::Normal, 9_000, cold), &c).unwrap();
        let mut out = Vec::new();
        m.push_readings(SensorId(2), Timestamp::monotonic(5), &mut out);
        assert!(
            out.iter()
                .all(|r| r.quality.contains(Quality::OUT_OF_RANGE))
        );
    }

    #[test]
    fn true_airspeed_needs_both_outside_inputs_and_marks_degraded_ones() {
        let c = Config::default();
        let m = Measurement::from_raw(raw(Status::Normal, 9_000, 700), &c).unwrap();
        assert_eq!(m.true_airspeed(), None);
        let air = OutsideAir {
            static_pressure_pa: 50_000.0,
            temperature_k: 250.0,
            quality: Quality::GOOD,
        };
        let (tas, q) = m.with_outside_air(air).true_airspeed().unwrap();
        assert!(tas > m.indicated_airspeed_mps());
        assert_eq!(q, Quality::DERIVED);
        let flagged = OutsideAir {
            quality: Quality::OUT_OF_RANGE,
            ..air
        };
        let (_, q) = m.with_outside_air(flagged).true_airspeed().unwrap();
        assert_eq!(q, Quality::DERIVED | Quality::DEGRADED_INPUT);
        // Inputs from simulated devices are not flawed for being simulated.
        let simulated = OutsideAir {
            quality: Quality::SIMULATED | Quality::DERIVED,
            ..air
        };
        let (_, q) = m.with_outside_air(simulated).true_airspeed().unwrap();
        assert_eq!(q, Quality::DERIVED);
        let unphysical = OutsideAir {
            static_pressure_pa: f64::NAN,
            ..air
        };
        assert_eq!(m.with_outside_air(unphysical).true_airspeed(), None);
    }

    #[test]
    fn init_and_a_measurement_are_single_four_byte_reads() {
        let packet = raw(Status::Normal, 9_000, 768).to_bytes();
        let stale = raw(Status::Stale, 9_000, 768).to_bytes();
        let expectations = [
            Transaction::read(ADDRESS_I, packet.to_vec()),
            Transaction::read(ADDRESS_I, stale.to_vec()),
            Transaction::read(ADDRESS_I, packet.to_vec()),
        ];
        let mut bus = Mock::new(&expectations);
        let mut ms = Ms4525do::new(bus.clone(), NoopDelay::new(), Config::default());
        ms.init().unwrap();
        let m = ms.measure().unwrap();
        assert_eq!(m.raw.status, Status::Stale);
        let m = ms.measure().unwrap();
        assert_eq!(m.raw.status, Status::Normal);
        assert!((m.differential_pressure_pa - Config::default().pressure_pa(9_000)).abs() < 1e-12);
        assert_eq!(
            ms.descriptor().parameter("address"),
            Some(&ParameterValue::Integer(0x28))
        );
        bus.done();
    }

    #[test]
    fn a_fault_status_fails_init() {
        let expectations = [Transaction::read(
            ADDRESS_I,
            raw(Status::Fault, 0, 0).to_bytes().to_vec(),
        )];
        let mut bus = Mock::new(&expectations);
        let mut ms = Ms4525do::new(bus.clone(), NoopDelay::new(), Config::default());
        assert_eq!(ms.init(), Err(Error::Fault));
        bus.done();
    }

    proptest! {
        #[test]
        fn any_packet_decodes_and_converts_without_panicking(bytes: [u8; 4], type_b: bool, psi in 1u16..=150) {
            let output_type = if type_b { OutputType::B } else { OutputType::A };
            let c = Config::new(ADDRESS_I, output_type, PressureRange::differential_psi(f64::from(psi)));
            let r = RawSample::from_bytes(bytes);
            prop_assert!(r.bridge <= 0x3FFF && r.temperature <= 0x07FF);
            if let Ok(m) = Measurement::from_raw(r, &c) {
                prop_assert!(m.differential_pressure_pa.is_finite() && m.sensor_temperature_k.is_finite());
                let mut out = Vec::new();
                m.push_readings(SensorId(0), Timestamp::monotonic(0), &mut out);
                prop_assert!(out.iter().all(|r| r.value.is_finite()));
            }
        }

        #[test]
        fn packets_round_trip(status in 0u8..4, bridge in 0u16..=0x3FFF, temperature in 0u16..=0x07FF) {
            let status = [Status::Normal, Status::CommandMode, Status::Stale, Status::Fault][usize::from(status)];
            let r = raw(status, bridge, temperature);
            prop_assert_eq!(RawSample::from_bytes(r.to_bytes()), r);
        }

        #[test]
        fn counts_invert_pressure(counts in 0u16..=0x3FFF) {
            let c = Config::default();
            prop_assert!((c.counts_for(c.pressure_pa(counts)) - f64::from(counts)).abs() < 1e-6);
        }

        #[test]
        fn range_codes_never_panic(code in "\\PC{0,6}") {
            let _ = PressureRange::from_code(&code);
        }
    }
}
