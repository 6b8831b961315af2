//! TDK InvenSense ICM-20948 9-axis IMU (accelerometer, gyroscope, AK09916 magnetometer) on
//! I2C: the glider's artificial horizon.
//!
//! Its address is 0x68 with AD0 low, 0x69 with AD0 high. The board wires AD0 low: the
//! SPS30 particle sensor has the fixed address 0x69 and shares the bus.
//!
//! [`Icm20948::init`] resets the part, checks WHO_AM_I, sets the ranges and sample rate,
//! starts the AK09916 behind the part's own I2C master (SLV4 for single register
//! accesses, SLV0 copying the field into EXT_SLV_SENS_DATA at every sample) and fills the
//! FIFO with one [`FRAME_LEN`]-byte frame per sample: accelerometer, gyroscope (big-endian,
//! in register order) and the magnetometer's HXL..ST2 block (little-endian, as the AK09916
//! keeps it). [`Icm20948::drain`] reads FIFO_COUNT and then every whole frame in one burst,
//! so the host wakes a few times a second whatever the sample rate. The part does not fuse
//! (its DMP needs an undocumented firmware blob): [`fusion`] does, on the board.
//!
//! Invariants: frames are decoded only whole ([`decode_fifo`] never panics, whatever the
//! bytes); an overflowed FIFO (its oldest bytes overwritten, so frame boundaries are lost)
//! is reset and reported as [`Error::FifoOverflow`], never decoded; values come out in the
//! glider's body axes (x forward, y right wing, z down) in SI units, and a sample at a
//! range's rail is marked saturated, never clamped into range.
//!
//! Register map and scale factors: ICM-20948 datasheet DS-000189 rev. 1.3 (sections 7-8,
//! 3.1-3.3) and the AK09916C datasheet (register map, 0.15 uT/LSB).

pub mod fusion;
pub mod sim;

use core::time::Duration;

use aloft_protocol::SensorDescriptor;
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

/// The address with AD0 tied low (the board's wiring).
pub const ADDRESS_AD0_LOW: u8 = 0x68;
/// The address with AD0 tied high.
pub const ADDRESS_AD0_HIGH: u8 = 0x69;
/// How often the agent drains the FIFO when the config names no interval: a few wake-ups
/// a second, whatever the sample rate.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(250);
/// The shortest drain interval accepted.
pub const MIN_INTERVAL: Duration = Duration::from_millis(20);
/// Readings one drain produces at most: roll, pitch, yaw and the two accuracies for each
/// attitude output of the drain (at the default interval and the fastest output rate, at
/// most three outputs).
pub const READINGS_PER_POLL_MAX: f64 = 5.0 * 3.0;

/// WHO_AM_I of an ICM-20948.
pub const WHO_AM_I: u8 = 0xEA;
/// The AK09916's address on the part's auxiliary bus.
pub const AK09916_ADDRESS: u8 = 0x0C;
/// The AK09916's device id (WIA2).
pub const AK09916_ID: u8 = 0x09;
/// Size of the FIFO, bytes (datasheet 1.2, features).
pub const FIFO_SIZE: usize = 512;
/// Bytes of the magnetometer block in a frame: HXL..HZH, TMPS, ST2 (reading ST2 ends the
/// AK09916's read cycle so it latches the next measurement).
pub const MAG_BLOCK_LEN: usize = 8;
/// One FIFO frame: accelerometer (6), gyroscope (6), magnetometer block (8).
pub const FRAME_LEN: usize = 6 + 6 + MAG_BLOCK_LEN;
/// The gyroscope's internal rate the divider divides, Hz (GYRO_SMPLRT_DIV).
pub const GYRO_BASE_RATE_HZ: f64 = 1100.0;
/// The accelerometer's, Hz (ACCEL_SMPLRT_DIV).
pub const ACCEL_BASE_RATE_HZ: f64 = 1125.0;
/// The AK09916's sensitivity, uT per LSB.
pub const MAG_UT_PER_LSB: f64 = 0.15;
/// The AK09916's measurement range, LSB either side of zero.
pub const MAG_RANGE_LSB: i16 = 4912;
/// Die temperature sensitivity, LSB per kelvin (TEMP_OUT), and the temperature at 0 LSB.
pub const TEMP_LSB_PER_K: f64 = 333.87;
/// The die temperature at which TEMP_OUT reads 0, °C.
pub const TEMP_OFFSET_C: f64 = 21.0;
/// The part's rated operating range, K (-40..85 °C).
pub const RATED_TEMPERATURE_K: (f64, f64) = (233.15, 358.15);
/// Standard gravity the accelerometer's g is, m s-2.
pub const G: f64 = crate::atmosphere::G0;
/// Time the part needs after DEVICE_RESET before it answers, ms (start-up time, with margin).
pub const RESET_TIME_MS: u32 = 100;
/// Time the gyroscope needs to start after waking, ms.
pub const WAKE_TIME_MS: u32 = 40;
/// Empty drains in a row after which the FIFO counts as stalled, unless the host drains
/// faster than samples come ([`Icm20948::set_stalled_drains`]).
pub const STALLED_DRAINS: u32 = 3;

/// Register addresses, by user bank.
pub mod reg {
    /// Selects the user bank (bits 5:4); present in every bank.
    pub const REG_BANK_SEL: u8 = 0x7F;
    /// User bank 0.
    pub mod bank0 {
        /// Device id (0xEA).
        pub const WHO_AM_I: u8 = 0x00;
        /// FIFO, I2C master and DMP enables.
        pub const USER_CTRL: u8 = 0x03;
        /// Reset, sleep and clock source.
        pub const PWR_MGMT_1: u8 = 0x06;
        /// Accelerometer and gyroscope axis enables.
        pub const PWR_MGMT_2: u8 = 0x07;
        /// Status of the I2C master (SLV4_DONE, SLV4_NACK).
        pub const I2C_MST_STATUS: u8 = 0x17;
        /// FIFO overflow interrupts (bits 4:0), cleared on read.
        pub const INT_STATUS_2: u8 = 0x1B;
        /// Die temperature, high byte.
        pub const TEMP_OUT_H: u8 = 0x39;
        /// First byte read from an auxiliary sensor.
        pub const EXT_SLV_SENS_DATA_00: u8 = 0x3B;
        /// Which auxiliary sensors' data go to the FIFO.
        pub const FIFO_EN_1: u8 = 0x66;
        /// Which of accelerometer, gyroscope and temperature go to the FIFO.
        pub const FIFO_EN_2: u8 = 0x67;
        /// FIFO reset (assert, then de-assert).
        pub const FIFO_RST: u8 = 0x68;
        /// Stream (0) or snapshot (1) mode.
        pub const FIFO_MODE: u8 = 0x69;
        /// FIFO byte count, high byte (bits 12:8).
        pub const FIFO_COUNTH: u8 = 0x70;
        /// FIFO read/write port.
        pub const FIFO_R_W: u8 = 0x72;
    }
    /// User bank 2.
    pub mod bank2 {
        /// Gyroscope rate divider: 1.1 kHz / (1 + div).
        pub const GYRO_SMPLRT_DIV: u8 = 0x00;
        /// Gyroscope range, low-pass filter.
        pub const GYRO_CONFIG_1: u8 = 0x01;
        /// Accelerometer rate divider, bits 11:8.
        pub const ACCEL_SMPLRT_DIV_1: u8 = 0x10;
        /// Accelerometer rate divider, bits 7:0: 1.125 kHz / (1 + div).
        pub const ACCEL_SMPLRT_DIV_2: u8 = 0x11;
        /// Accelerometer range, low-pass filter.
        pub const ACCEL_CONFIG: u8 = 0x14;
    }
    /// User bank 3 (the I2C master).
    pub mod bank3 {
        /// Rate of the auxiliary reads when the gyroscope is off.
        pub const I2C_MST_ODR_CONFIG: u8 = 0x00;
        /// The master's clock.
        pub const I2C_MST_CTRL: u8 = 0x01;
        /// SLV0 address (bit 7: read).
        pub const I2C_SLV0_ADDR: u8 = 0x03;
        /// SLV0 first register.
        pub const I2C_SLV0_REG: u8 = 0x04;
        /// SLV0 enable (bit 7) and length (bits 3:0).
        pub const I2C_SLV0_CTRL: u8 = 0x05;
        /// SLV4 address (bit 7: read).
        pub const I2C_SLV4_ADDR: u8 = 0x13;
        /// SLV4 register.
        pub const I2C_SLV4_REG: u8 = 0x14;
        /// SLV4 enable (bit 7): one transfer, then SLV4_DONE.
        pub const I2C_SLV4_CTRL: u8 = 0x15;
        /// SLV4 byte to write.
        pub const I2C_SLV4_DO: u8 = 0x16;
        /// SLV4 byte read.
        pub const I2C_SLV4_DI: u8 = 0x17;
    }
    /// The AK09916 magnetometer.
    pub mod ak09916 {
        /// Device id (0x09).
        pub const WIA2: u8 = 0x01;
        /// Status 1 (DRDY).
        pub const ST1: u8 = 0x10;
        /// First byte of the field (X, low byte).
        pub const HXL: u8 = 0x11;
        /// Status 2 (HOFL: magnetic overflow, bit 3).
        pub const ST2: u8 = 0x18;
        /// Mode.
        pub const CNTL2: u8 = 0x31;
        /// Soft reset (bit 0).
        pub const CNTL3: u8 = 0x32;
        /// Continuous measurement mode 4: 100 Hz.
        pub const MODE_CONTINUOUS_100HZ: u8 = 0x08;
    }
}

/// Bits of the registers the driver writes.
mod bits {
    pub const DEVICE_RESET: u8 = 0x80;
    pub const CLKSEL_AUTO: u8 = 0x01;
    pub const FIFO_EN: u8 = 0x40;
    pub const I2C_MST_EN: u8 = 0x20;
    pub const ACCEL_GYRO_FIFO_EN: u8 = 0x1E;
    pub const SLV0_FIFO_EN: u8 = 0x01;
    pub const FIFO_RESET_ALL: u8 = 0x1F;
    pub const FIFO_OVERFLOW: u8 = 0x1F;
    pub const SLV_EN: u8 = 0x80;
    pub const SLV_READ: u8 = 0x80;
    pub const SLV4_DONE: u8 = 0x40;
    pub const SLV4_NACK: u8 = 0x10;
    pub const HOFL: u8 = 0x08;
    /// I2C master clock 345.6 kHz (the datasheet's recommended setting).
    pub const MST_CLK_345KHZ: u8 = 0x07;
}

/// The gyroscope's full scale (GYRO_FS_SEL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GyroRange {
    /// ±250 °/s.
    Dps250,
    /// ±500 °/s.
    Dps500,
    /// ±1000 °/s.
    Dps1000,
    /// ±2000 °/s.
    Dps2000,
}

impl GyroRange {
    /// The range of a full scale in °/s.
    pub fn from_dps(dps: i64) -> Option<Self> {
        Some(match dps {
            250 => GyroRange::Dps250,
            500 => GyroRange::Dps500,
            1000 => GyroRange::Dps1000,
            2000 => GyroRange::Dps2000,
            _ => return None,
        })
    }

    /// Full scale, °/s.
    pub fn dps(self) -> f64 {
        match self {
            GyroRange::Dps250 => 250.0,
            GyroRange::Dps500 => 500.0,
            GyroRange::Dps1000 => 1000.0,
            GyroRange::Dps2000 => 2000.0,
        }
    }

    fn fs_sel(self) -> u8 {
        match self {
            GyroRange::Dps250 => 0,
            GyroRange::Dps500 => 1,
            GyroRange::Dps1000 => 2,
            GyroRange::Dps2000 => 3,
        }
    }

    fn from_fs_sel(fs: u8) -> Self {
        match fs & 3 {
            0 => GyroRange::Dps250,
            1 => GyroRange::Dps500,
            2 => GyroRange::Dps1000,
            _ => GyroRange::Dps2000,
        }
    }

    /// rad s-1 per LSB (datasheet 3.1: 131, 65.5, 32.8, 16.4 LSB per °/s).
    pub fn rad_s_per_lsb(self) -> f64 {
        let lsb_per_dps: f64 = match self {
            GyroRange::Dps250 => 131.0,
            GyroRange::Dps500 => 65.5,
            GyroRange::Dps1000 => 32.8,
            GyroRange::Dps2000 => 16.4,
        };
        (1.0f64 / lsb_per_dps).to_radians()
    }
}

/// The accelerometer's full scale (ACCEL_FS_SEL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelRange {
    /// ±2 g.
    G2,
    /// ±4 g.
    G4,
    /// ±8 g.
    G8,
    /// ±16 g.
    G16,
}

impl AccelRange {
    /// The range of a full scale in g.
    pub fn from_g(g: i64) -> Option<Self> {
        Some(match g {
            2 => AccelRange::G2,
            4 => AccelRange::G4,
            8 => AccelRange::G8,
            16 => AccelRange::G16,
            _ => return None,
        })
    }

    /// Full scale, g.
    pub fn g(self) -> f64 {
        match self {
            AccelRange::G2 => 2.0,
            AccelRange::G4 => 4.0,
            AccelRange::G8 => 8.0,
            AccelRange::G16 => 16.0,
        }
    }

    fn fs_sel(self) -> u8 {
        match self {
            AccelRange::G2 => 0,
            AccelRange::G4 => 1,
            AccelRange::G8 => 2,
            AccelRange::G16 => 3,
        }
    }

    fn from_fs_sel(fs: u8) -> Self {
        match fs & 3 {
            0 => AccelRange::G2,
            1 => AccelRange::G4,
            2 => AccelRange::G8,
            _ => AccelRange::G16,
        }
    }

    /// m s-2 per LSB (datasheet 3.2: 16384, 8192, 4096, 2048 LSB per g).
    pub fn mps2_per_lsb(self) -> f64 {
        G * self.g() / 32768.0
    }
}

/// What [`Icm20948::init`] and [`Icm20948::set_config`] write.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// Samples per second written to the FIFO (rounded to what the divider can make).
    pub sample_rate_hz: f64,
    /// Gyroscope full scale.
    pub gyro_range: GyroRange,
    /// Accelerometer full scale.
    pub accel_range: AccelRange,
}

impl Default for Config {
    /// 50 Hz (a 250 ms drain holds 13 frames, half the FIFO), ±500 °/s (the glider rolls
    /// at tens of °/s, gusts more), ±8 g (beyond the airframe's +5.3/-2.65 g limits).
    fn default() -> Self {
        Config {
            sample_rate_hz: 50.0,
            gyro_range: GyroRange::Dps500,
            accel_range: AccelRange::G8,
        }
    }
}

impl Config {
    /// GYRO_SMPLRT_DIV for the sample rate.
    pub fn gyro_divider(&self) -> u8 {
        divider(GYRO_BASE_RATE_HZ, self.sample_rate_hz).min(255) as u8
    }

    /// ACCEL_SMPLRT_DIV (12 bits) for the sample rate.
    pub fn accel_divider(&self) -> u16 {
        divider(ACCEL_BASE_RATE_HZ, self.sample_rate_hz).min(4095) as u16
    }

    /// The rate the FIFO fills at, Hz: the gyroscope's, after its divider.
    pub fn fifo_rate_hz(&self) -> f64 {
        GYRO_BASE_RATE_HZ / (1.0 + f64::from(self.gyro_divider()))
    }

    /// The low-pass filter setting (DLPFCFG) for the rate: well below Nyquist.
    fn dlpf(&self) -> u8 {
        if self.sample_rate_hz >= 100.0 { 3 } else { 5 }
    }
}

fn divider(base_hz: f64, rate_hz: f64) -> u32 {
    if !(rate_hz.is_finite() && rate_hz > 0.0) {
        return 0;
    }
    ((base_hz / rate_hz).round() as u32).saturating_sub(1)
}

/// Why the driver failed.
#[derive(Debug, thiserror::Error)]
pub enum Error<E: core::fmt::Debug> {
    /// The bus failed.
    #[error("I2C: {0:?}")]
    Bus(E),
    /// Not an ICM-20948.
    #[error("WHO_AM_I reads {0:#04x}, an ICM-20948 reads 0xea")]
    WrongWhoAmI(u8),
    /// The AK09916 did not answer on the part's auxiliary bus.
    #[error("the AK09916 magnetometer does not answer on the auxiliary bus")]
    MagnetometerNotAnswering,
    /// The auxiliary device is not an AK09916.
    #[error("the magnetometer's WIA2 reads {0:#04x}, an AK09916 reads 0x09")]
    WrongMagnetometerId(u8),
    /// The FIFO overflowed and was reset: the samples it held are lost.
    #[error("the FIFO overflowed ({count} bytes) and was reset")]
    FifoOverflow {
        /// FIFO_COUNT when the overflow was seen.
        count: u16,
    },
    /// The FIFO has stayed empty for several drains.
    #[error("the FIFO has stayed empty for {0} drains")]
    FifoStalled(u32),
}

/// A frame's counts as the part wrote them, in the chip's axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawFrame {
    /// Accelerometer X, Y, Z.
    pub accel: [i16; 3],
    /// Gyroscope X, Y, Z.
    pub gyro: [i16; 3],
    /// Magnetometer X, Y, Z (AK09916 axes).
    pub mag: [i16; 3],
    /// AK09916 ST2 (bit 3: the field overflowed).
    pub mag_status: u8,
}

/// Why FIFO bytes cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The bytes are not a whole number of frames.
    #[error("{len} FIFO bytes are not a whole number of {FRAME_LEN}-byte frames")]
    Partial {
        /// How many bytes.
        len: usize,
    },
}

impl RawFrame {
    /// Decodes one frame.
    pub fn decode(bytes: &[u8; FRAME_LEN]) -> RawFrame {
        let be = |i: usize| i16::from_be_bytes([bytes[i], bytes[i + 1]]);
        let le = |i: usize| i16::from_le_bytes([bytes[i], bytes[i + 1]]);
        RawFrame {
            accel: [be(0), be(2), be(4)],
            gyro: [be(6), be(8), be(10)],
            mag: [le(12), le(14), le(16)],
            mag_status: bytes[19],
        }
    }

    /// Encodes the frame as the part writes it (what the simulator pushes).
    pub fn encode(&self) -> [u8; FRAME_LEN] {
        let mut out = [0u8; FRAME_LEN];
        for (i, v) in self.accel.iter().chain(self.gyro.iter()).enumerate() {
            out[2 * i..2 * i + 2].copy_from_slice(&v.to_be_bytes());
        }
        for (i, v) in self.mag.iter().enumerate() {
            out[12 + 2 * i..14 + 2 * i].copy_from_slice(&v.to_le_bytes());
        }
        out[19] = self.mag_status;
        out
    }

    /// The frame in SI units and the glider's body axes.
    ///
    /// The board mounts the chip with X forward, Y to the left wing and Z up, so body =
    /// (x, -y, -z) for the accelerometer and gyroscope; the AK09916's Y and Z point
    /// opposite to the accelerometer's (datasheet 11, orientation of axes), so its field
    /// is body = (x, y, z).
    pub fn to_body(&self, config: &Config) -> BodySample {
        let a = config.accel_range.mps2_per_lsb();
        let g = config.gyro_range.rad_s_per_lsb();
        let m = MAG_UT_PER_LSB;
        let rail = |v: &[i16; 3]| v.iter().any(|&x| x == i16::MAX || x == i16::MIN);
        let mag_valid = self.mag_status & bits::HOFL == 0
            && self
                .mag
                .iter()
                .all(|x| x.unsigned_abs() <= MAG_RANGE_LSB.unsigned_abs())
            && self.mag != [0, 0, 0];
        BodySample {
            accel_mps2: [
                f64::from(self.accel[0]) * a,
                -f64::from(self.accel[1]) * a,
                -f64::from(self.accel[2]) * a,
            ],
            gyro_rad_s: [
                f64::from(self.gyro[0]) * g,
                -f64::from(self.gyro[1]) * g,
                -f64::from(self.gyro[2]) * g,
            ],
            mag_ut: mag_valid.then(|| {
                [
                    f64::from(self.mag[0]) * m,
                    f64::from(self.mag[1]) * m,
                    f64::from(self.mag[2]) * m,
                ]
            }),
            saturated: rail(&self.accel) || rail(&self.gyro),
        }
    }

    /// The counts a frame holds for body-axis values (the simulator's side of
    /// [`RawFrame::to_body`]); values beyond a range stick at its rail, as the part's do.
    pub fn from_body(
        config: &Config,
        accel_mps2: [f64; 3],
        gyro_rad_s: [f64; 3],
        mag_ut: [f64; 3],
    ) -> RawFrame {
        let a = config.accel_range.mps2_per_lsb();
        let g = config.gyro_range.rad_s_per_lsb();
        let count = |v: f64, scale: f64| {
            let c = (v / scale).round();
            if c >= f64::from(i16::MAX) {
                i16::MAX
            } else if c <= f64::from(i16::MIN) {
                i16::MIN
            } else {
                c as i16
            }
        };
        let mag = mag_ut.map(|v| count(v, MAG_UT_PER_LSB));
        let overflow = mag
            .iter()
            .any(|x| x.unsigned_abs() > MAG_RANGE_LSB.unsigned_abs());
        RawFrame {
            accel: [
                count(accel_mps2[0], a),
                count(-accel_mps2[1], a),
                count(-accel_mps2[2], a),
            ],
            gyro: [
                count(gyro_rad_s[0], g),
                count(-gyro_rad_s[1], g),
                count(-gyro_rad_s[2], g),
            ],
            mag,
            mag_status: if overflow { bits::HOFL } else { 0 },
        }
    }
}

/// Decodes a burst of FIFO bytes into frames; refuses a partial frame.
pub fn decode_fifo(bytes: &[u8]) -> Result<impl Iterator<Item = RawFrame> + '_, FrameError> {
    if !bytes.len().is_multiple_of(FRAME_LEN) {
        return Err(FrameError::Partial { len: bytes.len() });
    }
    Ok(bytes.chunks_exact(FRAME_LEN).filter_map(|chunk| {
        <&[u8; FRAME_LEN]>::try_from(chunk)
            .ok()
            .map(RawFrame::decode)
    }))
}

/// One sample in the body axes (x forward, y right wing, z down), SI units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BodySample {
    /// Specific force, m s-2 (about (0, 0, -9.8) in level flight).
    pub accel_mps2: [f64; 3],
    /// Angular rate, rad s-1.
    pub gyro_rad_s: [f64; 3],
    /// Magnetic field, uT, when the AK09916 gave a valid one.
    pub mag_ut: Option<[f64; 3]>,
    /// An accelerometer or gyroscope axis sat at its range's rail.
    pub saturated: bool,
}

/// What one drain read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Drain {
    /// The frames, oldest first.
    pub frames: Vec<BodySample>,
    /// Bytes left in the FIFO (a frame being written).
    pub left_bytes: u16,
}

/// The driver. Owns the bus; remembers the user bank it selected last.
#[derive(Debug)]
pub struct Icm20948<I2C> {
    i2c: I2C,
    address: u8,
    config: Config,
    bank: Option<u8>,
    empty_drains: u32,
    stalled_drains: u32,
    buffer: Vec<u8>,
}

impl<I2C, E> Icm20948<I2C>
where
    I2C: I2c<Error = E>,
    E: core::fmt::Debug,
{
    /// A driver for the part at `address` with `config` (nothing is written before
    /// [`Icm20948::init`]).
    pub fn new(i2c: I2C, address: u8, config: Config) -> Self {
        Icm20948 {
            i2c,
            address,
            config,
            bank: None,
            empty_drains: 0,
            stalled_drains: STALLED_DRAINS,
            buffer: Vec::with_capacity(FIFO_SIZE),
        }
    }

    /// Gives the bus back.
    pub fn destroy(self) -> I2C {
        self.i2c
    }

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn select(&mut self, bank: u8) -> Result<(), Error<E>> {
        if self.bank != Some(bank) {
            self.i2c
                .write(self.address, &[reg::REG_BANK_SEL, bank << 4])
                .map_err(Error::Bus)?;
            self.bank = Some(bank);
        }
        Ok(())
    }

    fn write(&mut self, bank: u8, register: u8, value: u8) -> Result<(), Error<E>> {
        self.select(bank)?;
        self.i2c
            .write(self.address, &[register, value])
            .map_err(Error::Bus)
    }

    fn read(&mut self, bank: u8, register: u8, buf: &mut [u8]) -> Result<(), Error<E>> {
        self.select(bank)?;
        self.i2c
            .write_read(self.address, &[register], buf)
            .map_err(Error::Bus)
    }

    fn read_u8(&mut self, bank: u8, register: u8) -> Result<u8, Error<E>> {
        let mut b = [0u8];
        self.read(bank, register, &mut b)?;
        Ok(b[0])
    }

    /// Resets and configures the part and its magnetometer, and starts the FIFO.
    pub fn init<D: DelayNs>(&mut self, delay: &mut D) -> Result<(), Error<E>> {
        use reg::{ak09916 as ak, bank0, bank3};
        self.bank = None;
        self.empty_drains = 0;
        self.write(0, bank0::PWR_MGMT_1, bits::DEVICE_RESET)?;
        delay.delay_ms(RESET_TIME_MS);
        // The reset selects bank 0 again.
        self.bank = None;
        let id = self.read_u8(0, bank0::WHO_AM_I)?;
        if id != WHO_AM_I {
            return Err(Error::WrongWhoAmI(id));
        }
        self.write(0, bank0::PWR_MGMT_1, bits::CLKSEL_AUTO)?;
        self.write(0, bank0::PWR_MGMT_2, 0x00)?;
        delay.delay_ms(WAKE_TIME_MS);
        self.write_rates_and_ranges()?;

        self.write(0, bank0::USER_CTRL, bits::I2C_MST_EN)?;
        self.write(3, bank3::I2C_MST_CTRL, bits::MST_CLK_345KHZ)?;
        let mag_id = self.aux_read(ak::WIA2, delay)?;
        if mag_id != AK09916_ID {
            return Err(Error::WrongMagnetometerId(mag_id));
        }
        self.aux_write(ak::CNTL3, 0x01, delay)?;
        delay.delay_ms(1);
        self.aux_write(ak::CNTL2, ak::MODE_CONTINUOUS_100HZ, delay)?;
        self.write(3, bank3::I2C_SLV0_ADDR, bits::SLV_READ | AK09916_ADDRESS)?;
        self.write(3, bank3::I2C_SLV0_REG, ak::HXL)?;
        self.write(3, bank3::I2C_SLV0_CTRL, bits::SLV_EN | MAG_BLOCK_LEN as u8)?;

        self.write(0, bank0::FIFO_EN_1, bits::SLV0_FIFO_EN)?;
        self.write(0, bank0::FIFO_EN_2, bits::ACCEL_GYRO_FIFO_EN)?;
        self.write(0, bank0::FIFO_MODE, 0x00)?;
        self.write(0, bank0::USER_CTRL, bits::FIFO_EN | bits::I2C_MST_EN)?;
        self.reset_fifo()?;
        tracing::debug!(
            address = self.address,
            rate_hz = self.config.fifo_rate_hz(),
            "ICM-20948 initialised."
        );
        Ok(())
    }

    fn write_rates_and_ranges(&mut self) -> Result<(), Error<E>> {
        use reg::bank2;
        let c = self.config;
        let accel_div = c.accel_divider();
        self.write(2, bank2::GYRO_SMPLRT_DIV, c.gyro_divider())?;
        self.write(
            2,
            bank2::GYRO_CONFIG_1,
            (c.dlpf() << 3) | (c.gyro_range.fs_sel() << 1) | 1,
        )?;
        self.write(2, bank2::ACCEL_SMPLRT_DIV_1, (accel_div >> 8) as u8)?;
        self.write(2, bank2::ACCEL_SMPLRT_DIV_2, (accel_div & 0xFF) as u8)?;
        self.write(
            2,
            bank2::ACCEL_CONFIG,
            (c.dlpf() << 3) | (c.accel_range.fs_sel() << 1) | 1,
        )
    }

    /// One transfer of SLV4 on the auxiliary bus; waits for SLV4_DONE.
    fn aux_transfer<D: DelayNs>(
        &mut self,
        address: u8,
        register: u8,
        out: u8,
        delay: &mut D,
    ) -> Result<u8, Error<E>> {
        use reg::{bank0, bank3};
        self.write(3, bank3::I2C_SLV4_ADDR, address)?;
        self.write(3, bank3::I2C_SLV4_REG, register)?;
        self.write(3, bank3::I2C_SLV4_DO, out)?;
        self.write(3, bank3::I2C_SLV4_CTRL, bits::SLV_EN)?;
        for _ in 0..10 {
            delay.delay_ms(1);
            let status = self.read_u8(0, bank0::I2C_MST_STATUS)?;
            if status & bits::SLV4_NACK != 0 {
                return Err(Error::MagnetometerNotAnswering);
            }
            if status & bits::SLV4_DONE != 0 {
                return self.read_u8(3, bank3::I2C_SLV4_DI);
            }
        }
        Err(Error::MagnetometerNotAnswering)
    }

    fn aux_read<D: DelayNs>(&mut self, register: u8, delay: &mut D) -> Result<u8, Error<E>> {
        self.aux_transfer(bits::SLV_READ | AK09916_ADDRESS, register, 0, delay)
    }

    fn aux_write<D: DelayNs>(
        &mut self,
        register: u8,
        value: u8,
        delay: &mut D,
    ) -> Result<(), Error<E>> {
        self.aux_transfer(AK09916_ADDRESS, register, value, delay)
            .map(|_| ())
    }

    /// How many empty drains in a row count as a stalled FIFO (at least
    /// [`STALLED_DRAINS`]): a host that drains faster than the sample rate sees empty
    /// drains in between.
    pub fn set_stalled_drains(&mut self, drains: u32) {
        self.stalled_drains = drains.max(STALLED_DRAINS);
    }

    /// Empties the FIFO (assert, then de-assert FIFO_RST).
    pub fn reset_fifo(&mut self) -> Result<(), Error<E>> {
        self.write(0, reg::bank0::FIFO_RST, bits::FIFO_RESET_ALL)?;
        self.write(0, reg::bank0::FIFO_RST, 0x00)
    }

    /// New ranges and rate, written at once; the FIFO is reset so that no frame of the old
    /// scale is read with the new one.
    pub fn set_config(&mut self, config: Config) -> Result<(), Error<E>> {
        self.config = config;
        self.write_rates_and_ranges()?;
        self.reset_fifo()
    }

    /// The die temperature, K.
    pub fn die_temperature_k(&mut self) -> Result<f64, Error<E>> {
        let mut b = [0u8; 2];
        self.read(0, reg::bank0::TEMP_OUT_H, &mut b)?;
        Ok(die_temperature_k(i16::from_be_bytes(b)))
    }

    /// Reads every whole frame in the FIFO in one burst.
    ///
    /// An overflow (the part's flag, or a count at the FIFO's size) resets the FIFO and is
    /// reported as [`Error::FifoOverflow`]; [`STALLED_DRAINS`] (or the number set) empty
    /// drains in a row as [`Error::FifoStalled`].
    pub fn drain(&mut self) -> Result<Drain, Error<E>> {
        let overflow = self.read_u8(0, reg::bank0::INT_STATUS_2)? & bits::FIFO_OVERFLOW;
        let mut count_bytes = [0u8; 2];
        self.read(0, reg::bank0::FIFO_COUNTH, &mut count_bytes)?;
        let count = fifo_count(count_bytes);
        if overflow != 0 || usize::from(count) >= FIFO_SIZE {
            self.reset_fifo()?;
            tracing::debug!(address = self.address, count, "ICM-20948 FIFO overflowed.");
            return Err(Error::FifoOverflow { count });
        }
        let whole = usize::from(count) / FRAME_LEN * FRAME_LEN;
        if whole == 0 {
            self.empty_drains = self.empty_drains.saturating_add(1);
            if self.empty_drains >= self.stalled_drains {
                return Err(Error::FifoStalled(self.empty_drains));
            }
            return Ok(Drain {
                frames: Vec::new(),
                left_bytes: count,
            });
        }
        self.empty_drains = 0;
        self.buffer.clear();
        self.buffer.resize(whole, 0);
        self.select(0)?;
        self.i2c
            .write_read(self.address, &[reg::bank0::FIFO_R_W], &mut self.buffer)
            .map_err(Error::Bus)?;
        let config = self.config;
        let frames = match decode_fifo(&self.buffer) {
            Ok(frames) => frames.map(|f| f.to_body(&config)).collect(),
            // `whole` is a multiple of the frame length: cannot happen, and would lose
            // only this drain.
            Err(_) => Vec::new(),
        };
        Ok(Drain {
            frames,
            left_bytes: count.saturating_sub(whole as u16),
        })
    }

    /// The device, its identity and its settings.
    pub fn descriptor(&self) -> SensorDescriptor {
        SensorDescriptor::new("TDK InvenSense ICM-20948 + AK09916")
            .with_integer("address", i64::from(self.address))
            .with_integer("WHO_AM_I", i64::from(WHO_AM_I))
            .with_integer("AK09916_WIA2", i64::from(AK09916_ID))
            .with_integer("gyro_range_dps", self.config.gyro_range.dps() as i64)
            .with_integer("accel_range_g", self.config.accel_range.g() as i64)
            .with_integer("GYRO_SMPLRT_DIV", i64::from(self.config.gyro_divider()))
            .with_integer("ACCEL_SMPLRT_DIV", i64::from(self.config.accel_divider()))
            .with_integer(
                "fifo_rate_mhz",
                (self.config.fifo_rate_hz() * 1000.0).round() as i64,
            )
            .with_integer("mag_rate_hz", 100)
    }
}

/// FIFO_COUNTH/L as a byte count (13 bits).
pub fn fifo_count(bytes: [u8; 2]) -> u16 {
    u16::from_be_bytes([bytes[0] & 0x1F, bytes[1]])
}

/// TEMP_OUT as the die temperature, K (datasheet 8.32: (TEMP_OUT - offset) / 333.87 + 21).
pub fn die_temperature_k(raw: i16) -> f64 {
    f64::from(raw) / TEMP_LSB_PER_K + TEMP_OFFSET_C + 273.15
}

/// The settings a GYRO_CONFIG_1 and ACCEL_CONFIG pair encodes (the simulator reads them).
pub fn ranges_of(gyro_config_1: u8, accel_config: u8) -> (GyroRange, AccelRange) {
    (
        GyroRange::from_fs_sel(gyro_config_1 >> 1),
        AccelRange::from_fs_sel(accel_config >> 1),
    )
}

#[cfg(test)]
mod tests;
