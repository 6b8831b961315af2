//! A register-level ICM-20948 (with its AK09916 behind the auxiliary I2C master) that
//! implements `embedded_hal::i2c::I2c`.
//!
//! It models the four user banks behind REG_BANK_SEL, reset and sleep, WHO_AM_I, the
//! rate dividers and ranges, SLV4 single transfers and SLV0 reads of the AK09916, and a
//! 512-byte FIFO that fills at the configured rate on a [`SimClock`] in stream mode (the
//! oldest bytes overwritten and INT_STATUS_2 set when full), with FIFO_COUNT and FIFO_R_W.
//!
//! The motion comes from the flight ([`Icm20948Sim::apply`]): body angular rates from the
//! attitude's rates; the specific force of the airframe, `ω × (TAS, 0, 0) − g` in body
//! axes, which in a coordinated turn is the load factor along −z; and the site's magnetic
//! field rotated into body axes. At Minden (39.0 N, 119.75 W) the field has a declination
//! of about 13° E, an inclination of about 64° and a total intensity of about 49 uT
//! ([`MINDEN_FIELD`]: rounded values as the NOAA/BGS World Magnetic Model's charts show
//! them for the western Great Basin, not computed from the model). Noise at the datasheet's densities (gyroscope
//! 0.015 °/s/√Hz, accelerometer 230 ug/√Hz) and a seeded constant bias per axis are added
//! when asked for.
//!
//! Faults: NACKs and bus errors ([`SimBus`]), a wrong WHO_AM_I, an absent magnetometer, a
//! FIFO overflow and a FIFO that stops filling.
//!
//! Invariants: a cheap handle, never panics on any transaction; the FIFO never holds more
//! than [`FIFO_SIZE`] bytes; time moves only with the clock.

use std::collections::VecDeque;

use embedded_hal::i2c::{ErrorKind, Operation};

use super::{
    AK09916_ID, Config, FIFO_SIZE, G, GYRO_BASE_RATE_HZ, MAG_BLOCK_LEN, RawFrame, TEMP_LSB_PER_K,
    TEMP_OFFSET_C, WHO_AM_I, ranges_of, reg,
};
use crate::flight::{FlightState, Noise};
use crate::i2c::sim::{SimBus, SimClock, SimDevice};

/// The geomagnetic field at a site.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MagneticField {
    /// Declination, degrees east of true north.
    pub declination_deg: f64,
    /// Inclination (dip), degrees below the horizontal.
    pub inclination_deg: f64,
    /// Total intensity, uT.
    pub total_ut: f64,
}

impl MagneticField {
    /// The field in north, east, down components, uT.
    pub fn ned_ut(&self) -> [f64; 3] {
        let (d, i) = (
            self.declination_deg.to_radians(),
            self.inclination_deg.to_radians(),
        );
        let h = self.total_ut * i.cos();
        [h * d.cos(), h * d.sin(), self.total_ut * i.sin()]
    }
}

/// Minden-Tahoe's field (39.0 N, 119.75 W): declination 13° E, inclination 64°, 49 uT,
/// rounded as the World Magnetic Model's charts show them there (not computed from it).
pub const MINDEN_FIELD: MagneticField = MagneticField {
    declination_deg: 13.0,
    inclination_deg: 64.0,
    total_ut: 49.0,
};

/// The body-axis truth a frame is made of.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Motion {
    gyro_rad_s: [f64; 3],
    accel_mps2: [f64; 3],
    mag_ut: [f64; 3],
}

impl Motion {
    fn level(field: &MagneticField) -> Motion {
        Motion {
            gyro_rad_s: [0.0; 3],
            accel_mps2: [0.0, 0.0, -G],
            mag_ut: field.ned_ut(),
        }
    }
}

/// The rotation of a vector from north-east-down into body axes (ZYX Euler angles).
pub fn ned_to_body(roll_deg: f64, pitch_deg: f64, heading_deg: f64, v: [f64; 3]) -> [f64; 3] {
    let (sf, cf) = roll_deg.to_radians().sin_cos();
    let (st, ct) = pitch_deg.to_radians().sin_cos();
    let (sp, cp) = heading_deg.to_radians().sin_cos();
    // Yaw, then pitch, then roll.
    let x1 = cp * v[0] + sp * v[1];
    let y1 = -sp * v[0] + cp * v[1];
    let z1 = v[2];
    let x2 = ct * x1 - st * z1;
    let z2 = st * x1 + ct * z1;
    let y3 = cf * y1 + sf * z2;
    let z3 = -sf * y1 + cf * z2;
    [x2, y3, z3]
}

/// Body rates, specific force and field of an airframe at `state`, with the roll and
/// pitch rates given (the state carries only the turn rate).
fn motion_of(
    state: &FlightState,
    roll_rate_rad_s: f64,
    pitch_rate_rad_s: f64,
    field: &MagneticField,
) -> Motion {
    let a = &state.attitude;
    let (sf, cf) = a.roll_deg.to_radians().sin_cos();
    let (st, ct) = a.pitch_deg.to_radians().sin_cos();
    let yaw_rate = a.turn_rate_deg_s.to_radians();
    let p = roll_rate_rad_s - yaw_rate * st;
    let q = pitch_rate_rad_s * cf + yaw_rate * sf * ct;
    let r = -pitch_rate_rad_s * sf + yaw_rate * cf * ct;
    let v = state.true_airspeed_mps;
    let gravity = ned_to_body(a.roll_deg, a.pitch_deg, a.heading_deg, [0.0, 0.0, G]);
    Motion {
        gyro_rad_s: [p, q, r],
        // ω × (V, 0, 0) = (0, rV, −qV), less gravity.
        accel_mps2: [-gravity[0], r * v - gravity[1], -q * v - gravity[2]],
        mag_ut: ned_to_body(a.roll_deg, a.pitch_deg, a.heading_deg, field.ned_ut()),
    }
}

/// Registers of the AK09916 the model keeps.
#[derive(Debug, Clone)]
struct Ak09916 {
    present: bool,
    mode: u8,
}

/// The ICM-20948's registers, FIFO and motion ([`Icm20948Sim`]'s model).
#[derive(Debug)]
pub struct Icm20948Model {
    address: u8,
    who_am_i: u8,
    bank: usize,
    banks: [[u8; 128]; 4],
    pointer: u8,
    fifo: VecDeque<u8>,
    next_sample_ns: u64,
    clock: SimClock,
    field: MagneticField,
    motion: Motion,
    die_temperature_k: f64,
    previous: Option<(f64, f64, f64)>,
    noise: Option<Noise>,
    gyro_bias_rad_s: [f64; 3],
    accel_bias_mps2: [f64; 3],
    ak: Ak09916,
    stuck_fifo: bool,
    samples_written: u64,
}

/// A simulated ICM-20948; clones share one device. Derefs to its [`SimBus`].
pub type Icm20948Sim = SimDevice<Icm20948Model>;

const SLEEP: u8 = 0x40;
const PWR_MGMT_1_RESET: u8 = 0x41;

impl SimDevice<Icm20948Model> {
    /// A part at `address`, level and at rest at Minden, 25 °C, without noise.
    pub fn new(address: u8) -> Self {
        SimDevice::with_model(|bus: &SimBus| {
            let mut model = Icm20948Model {
                address,
                who_am_i: WHO_AM_I,
                bank: 0,
                banks: [[0; 128]; 4],
                pointer: 0,
                fifo: VecDeque::with_capacity(FIFO_SIZE),
                next_sample_ns: 0,
                clock: bus.clock(),
                field: MINDEN_FIELD,
                motion: Motion::level(&MINDEN_FIELD),
                die_temperature_k: 298.15,
                previous: None,
                noise: None,
                gyro_bias_rad_s: [0.0; 3],
                accel_bias_mps2: [0.0; 3],
                ak: Ak09916 {
                    present: true,
                    mode: 0,
                },
                stuck_fifo: false,
                samples_written: 0,
            };
            model.reset();
            model
        })
    }

    /// Adds seeded noise at the datasheet's densities and a constant bias per axis
    /// (gyroscope up to 0.5 °/s, accelerometer up to 20 mg).
    pub fn with_noise(self, seed: u64) -> Self {
        {
            let mut m = self.lock();
            let mut noise = Noise::new(seed);
            for i in 0..3 {
                m.gyro_bias_rad_s[i] = ((noise.uniform() - 0.5) * 1.0).to_radians();
                m.accel_bias_mps2[i] = (noise.uniform() - 0.5) * 0.04 * G;
            }
            m.noise = Some(noise);
        }
        self
    }

    /// The geomagnetic field of another site.
    pub fn with_field(self, field: MagneticField) -> Self {
        {
            let mut m = self.lock();
            m.field = field;
            m.motion = Motion::level(&field);
        }
        self
    }

    /// Moves the part to the flight's present state (the instrument box's temperature is
    /// its die's).
    pub fn apply(&self, state: &FlightState) {
        let mut m = self.lock();
        // Roll and pitch rates from the previous state, in the flight's time.
        let (roll_rate, pitch_rate) = match m.previous {
            Some((t, roll, pitch)) if state.t_s > t && state.t_s - t < 5.0 => {
                let dt = state.t_s - t;
                (
                    (state.attitude.roll_deg - roll).to_radians() / dt,
                    (state.attitude.pitch_deg - pitch).to_radians() / dt,
                )
            }
            _ => (0.0, 0.0),
        };
        m.previous = Some((state.t_s, state.attitude.roll_deg, state.attitude.pitch_deg));
        let field = m.field;
        m.motion = motion_of(state, roll_rate, pitch_rate, &field);
        m.die_temperature_k = state.box_temperature_k;
    }

    /// Sets the body rates (rad s-1), specific force (m s-2) and field (uT) directly.
    pub fn set_motion(&self, gyro_rad_s: [f64; 3], accel_mps2: [f64; 3], mag_ut: [f64; 3]) {
        self.lock().motion = Motion {
            gyro_rad_s,
            accel_mps2,
            mag_ut,
        };
    }

    /// Sets the die temperature, K.
    pub fn set_die_temperature_k(&self, k: f64) {
        self.lock().die_temperature_k = k;
    }

    /// WHO_AM_I reads `id` (another part answering at the address).
    pub fn set_who_am_i(&self, id: u8) {
        self.lock().who_am_i = id;
    }

    /// The AK09916 does not answer on the auxiliary bus.
    pub fn set_magnetometer_absent(&self, absent: bool) {
        self.lock().ak.present = !absent;
    }

    /// The FIFO stops filling (a part whose sampling stalled).
    pub fn set_stuck_fifo(&self, on: bool) {
        self.lock().stuck_fifo = on;
    }

    /// Fills the FIFO to overflowing now.
    pub fn overflow_fifo(&self) {
        let mut m = self.lock();
        m.catch_up_now();
        while m.fifo.len() < FIFO_SIZE {
            m.fifo.push_back(0xA5);
        }
        m.banks[0][usize::from(reg::bank0::INT_STATUS_2)] |= 0x1F;
    }

    /// Frames written to the FIFO since the part was made.
    pub fn samples_written(&self) -> u64 {
        self.lock().samples_written
    }

    /// Bytes in the FIFO now.
    pub fn fifo_len(&self) -> usize {
        let mut m = self.lock();
        m.catch_up_now();
        m.fifo.len()
    }

    /// Clears every fault.
    pub fn clear_faults(&self) {
        SimBus::clear_faults(self);
        let mut m = self.lock();
        m.who_am_i = WHO_AM_I;
        m.ak.present = true;
        m.stuck_fifo = false;
    }
}

impl Icm20948Model {
    fn reset(&mut self) {
        self.banks = [[0; 128]; 4];
        self.banks[0][usize::from(reg::bank0::PWR_MGMT_1)] = PWR_MGMT_1_RESET;
        self.bank = 0;
        self.fifo.clear();
        self.ak.mode = 0;
    }

    fn bank0(&self, r: u8) -> u8 {
        self.banks[0][usize::from(r)]
    }

    fn config(&self) -> Config {
        let b2 = &self.banks[2];
        let (gyro_range, accel_range) = ranges_of(
            b2[usize::from(reg::bank2::GYRO_CONFIG_1)],
            b2[usize::from(reg::bank2::ACCEL_CONFIG)],
        );
        Config {
            sample_rate_hz: self.rate_hz(),
            gyro_range,
            accel_range,
        }
    }

    fn rate_hz(&self) -> f64 {
        GYRO_BASE_RATE_HZ
            / (1.0 + f64::from(self.banks[2][usize::from(reg::bank2::GYRO_SMPLRT_DIV)]))
    }

    fn sampling(&self) -> bool {
        self.bank0(reg::bank0::PWR_MGMT_1) & SLEEP == 0
    }

    fn fifo_enabled(&self) -> bool {
        self.bank0(reg::bank0::USER_CTRL) & 0x40 != 0
            && self.bank0(reg::bank0::FIFO_EN_2) & 0x1E == 0x1E
    }

    fn slv0_in_fifo(&self) -> bool {
        let b3 = &self.banks[3];
        self.bank0(reg::bank0::USER_CTRL) & 0x20 != 0
            && self.bank0(reg::bank0::FIFO_EN_1) & 0x01 != 0
            && b3[usize::from(reg::bank3::I2C_SLV0_CTRL)] & 0x80 != 0
    }

    /// Writes the frames due up to the clock's now.
    fn catch_up_now(&mut self) {
        let now = self.clock.now_ns();
        if !self.sampling() {
            self.next_sample_ns = now;
            return;
        }
        let period_ns = (1e9 / self.rate_hz()) as u64;
        if self.next_sample_ns == 0 || self.next_sample_ns > now.saturating_add(period_ns) {
            self.next_sample_ns = now;
        }
        if now < self.next_sample_ns {
            return;
        }
        let due = (now - self.next_sample_ns) / period_ns.max(1) + 1;
        self.next_sample_ns = self
            .next_sample_ns
            .saturating_add(due.saturating_mul(period_ns));
        if self.stuck_fifo || !self.fifo_enabled() {
            return;
        }
        let frame_len = 12
            + if self.slv0_in_fifo() {
                self.slv0_len()
            } else {
                0
            };
        // Only the frames the FIFO can still hold matter; older ones would be overwritten.
        let keep = (FIFO_SIZE / frame_len.max(1) + 1) as u64;
        if due > keep {
            self.overflowed();
        }
        for _ in 0..due.min(keep) {
            self.write_sample();
        }
    }

    fn slv0_len(&self) -> usize {
        usize::from(self.banks[3][usize::from(reg::bank3::I2C_SLV0_CTRL)] & 0x0F)
    }

    fn overflowed(&mut self) {
        self.banks[0][usize::from(reg::bank0::INT_STATUS_2)] |= 0x1F;
    }

    fn write_sample(&mut self) {
        let config = self.config();
        let mut m = self.motion;
        if let Some(noise) = &mut self.noise {
            let rate = config.sample_rate_hz;
            // Datasheet noise densities over the bandwidth (about half the rate).
            let gyro_sigma = (0.015f64 * (rate / 2.0).sqrt()).to_radians();
            let accel_sigma = 230e-6 * G * (rate / 2.0).sqrt();
            for i in 0..3 {
                m.gyro_rad_s[i] += self.gyro_bias_rad_s[i] + noise.gaussian(gyro_sigma);
                m.accel_mps2[i] += self.accel_bias_mps2[i] + noise.gaussian(accel_sigma);
                m.mag_ut[i] += noise.gaussian(0.3);
            }
        }
        let frame = RawFrame::from_body(&config, m.accel_mps2, m.gyro_rad_s, m.mag_ut);
        let bytes = frame.encode();
        let mut data: Vec<u8> = bytes[..12].to_vec();
        if self.slv0_in_fifo() {
            let start = self.banks[3][usize::from(reg::bank3::I2C_SLV0_REG)];
            for i in 0..self.slv0_len() {
                let b = self.ak_read(start.wrapping_add(i as u8), &bytes);
                data.push(b);
            }
        }
        // Mirror the auxiliary read into EXT_SLV_SENS_DATA.
        for (i, b) in data.iter().skip(12).enumerate().take(24) {
            self.banks[0][usize::from(reg::bank0::EXT_SLV_SENS_DATA_00) + i] = *b;
        }
        for b in data {
            if self.fifo.len() >= FIFO_SIZE {
                self.fifo.pop_front();
                self.overflowed();
            }
            self.fifo.push_back(b);
        }
        self.samples_written += 1;
    }

    /// One register of the AK09916 as the master reads it; `frame` holds the field.
    fn ak_read(&self, register: u8, frame: &[u8; super::FRAME_LEN]) -> u8 {
        if !self.ak.present {
            return 0;
        }
        let measuring = matches!(self.ak.mode, 0x02 | 0x04 | 0x06 | 0x08);
        match register {
            0x00 => 0x48,
            reg::ak09916::WIA2 => AK09916_ID,
            reg::ak09916::ST1 => u8::from(measuring),
            r @ reg::ak09916::HXL..=0x16 if measuring => frame[12 + usize::from(r - 0x11)],
            0x17 => 0,
            reg::ak09916::ST2 if measuring => frame[12 + MAG_BLOCK_LEN - 1],
            reg::ak09916::CNTL2 => self.ak.mode,
            _ => 0,
        }
    }

    fn slv4_transfer(&mut self) {
        let b3 = self.banks[3];
        let address = b3[usize::from(reg::bank3::I2C_SLV4_ADDR)];
        let register = b3[usize::from(reg::bank3::I2C_SLV4_REG)];
        let out = b3[usize::from(reg::bank3::I2C_SLV4_DO)];
        let status = usize::from(reg::bank0::I2C_MST_STATUS);
        if self.bank0(reg::bank0::USER_CTRL) & 0x20 == 0 {
            // The master is off: nothing happens, SLV4_DONE never comes.
            return;
        }
        if !self.ak.present || address & 0x7F != super::AK09916_ADDRESS {
            self.banks[0][status] |= 0x10;
            return;
        }
        if address & 0x80 != 0 {
            let frame = [0u8; super::FRAME_LEN];
            let value = self.ak_read(register, &frame);
            self.banks[3][usize::from(reg::bank3::I2C_SLV4_DI)] = value;
        } else {
            match register {
                reg::ak09916::CNTL2 => self.ak.mode = out & 0x1F,
                reg::ak09916::CNTL3 if out & 1 != 0 => self.ak.mode = 0,
                _ => {}
            }
        }
        self.banks[0][status] |= 0x40;
        // SLV4_EN clears itself after the transfer.
        self.banks[3][usize::from(reg::bank3::I2C_SLV4_CTRL)] &= 0x7F;
    }

    fn write_register(&mut self, register: u8, value: u8) {
        if register == reg::REG_BANK_SEL {
            self.bank = usize::from((value >> 4) & 3);
            self.banks.iter_mut().for_each(|b| b[0x7F] = value & 0x30);
            return;
        }
        let r = usize::from(register & 0x7F);
        match (self.bank, register) {
            (0, reg::bank0::WHO_AM_I) => {}
            (0, reg::bank0::PWR_MGMT_1) if value & 0x80 != 0 => self.reset(),
            (0, reg::bank0::FIFO_RST) => {
                if value & 0x1F != 0 {
                    self.fifo.clear();
                }
                self.banks[0][r] = value;
            }
            (0, reg::bank0::FIFO_R_W) => {
                if self.fifo.len() < FIFO_SIZE {
                    self.fifo.push_back(value);
                }
            }
            (3, reg::bank3::I2C_SLV4_CTRL) => {
                self.banks[3][r] = value;
                if value & 0x80 != 0 {
                    self.slv4_transfer();
                }
            }
            (bank, _) => self.banks[bank][r] = value,
        }
    }

    fn read_register(&mut self, register: u8) -> u8 {
        if register == reg::REG_BANK_SEL {
            return (self.bank as u8) << 4;
        }
        let r = usize::from(register & 0x7F);
        match (self.bank, register) {
            (0, reg::bank0::WHO_AM_I) => self.who_am_i,
            (0, reg::bank0::INT_STATUS_2) | (0, reg::bank0::I2C_MST_STATUS) => {
                let v = self.banks[0][r];
                self.banks[0][r] = 0;
                v
            }
            (0, reg::bank0::FIFO_COUNTH) => ((self.fifo.len() >> 8) & 0x1F) as u8,
            (0, 0x71) => (self.fifo.len() & 0xFF) as u8,
            (0, reg::bank0::FIFO_R_W) => self.fifo.pop_front().unwrap_or(0xFF),
            (0, reg::bank0::TEMP_OUT_H) | (0, 0x3A) => {
                let raw = ((self.die_temperature_k - 273.15 - TEMP_OFFSET_C) * TEMP_LSB_PER_K)
                    .round()
                    .clamp(f64::from(i16::MIN), f64::from(i16::MAX))
                    as i16;
                let [h, l] = raw.to_be_bytes();
                if register == reg::bank0::TEMP_OUT_H {
                    h
                } else {
                    l
                }
            }
            (bank, _) => self.banks[bank][r],
        }
    }
}

impl crate::i2c::sim::RegisterModel for Icm20948Model {
    fn address(&self) -> u8 {
        self.address
    }

    fn catch_up(&mut self) {
        self.catch_up_now();
    }

    fn transaction(&mut self, operations: &mut [Operation<'_>]) -> Result<(), ErrorKind> {
        for op in operations {
            match op {
                Operation::Write(bytes) => {
                    let Some((&first, rest)) = bytes.split_first() else {
                        continue;
                    };
                    self.pointer = first;
                    for &value in rest {
                        self.write_register(self.pointer, value);
                        if self.pointer != reg::bank0::FIFO_R_W || self.bank != 0 {
                            self.pointer = self.pointer.wrapping_add(1) & 0x7F;
                        }
                    }
                }
                Operation::Read(buffer) => {
                    for byte in buffer.iter_mut() {
                        *byte = self.read_register(self.pointer);
                        // FIFO_R_W does not advance: every byte comes from the FIFO.
                        if self.pointer != reg::bank0::FIFO_R_W || self.bank != 0 {
                            self.pointer = self.pointer.wrapping_add(1) & 0x7F;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_airframe_heading_north_feels_gravity_up_and_the_field_dips_north() {
        let state = crate::flight::isa_state(3000.0, 0.0);
        let mut s = state;
        s.attitude.heading_deg = 0.0;
        let m = motion_of(&s, 0.0, 0.0, &MINDEN_FIELD);
        assert!((m.accel_mps2[2] + G).abs() < 1e-9, "{:?}", m.accel_mps2);
        assert!(m.mag_ut[0] > 0.0 && m.mag_ut[2] > 0.0, "{:?}", m.mag_ut);
        // Declination east: the field has a component to the right wing.
        assert!(m.mag_ut[1] > 0.0);
    }

    #[test]
    fn a_coordinated_turn_loads_the_airframe_along_its_own_z_axis_only() {
        let mut s = crate::flight::isa_state(3000.0, 0.0);
        let bank = 30f64;
        s.attitude.roll_deg = bank;
        s.attitude.pitch_deg = 0.0;
        s.attitude.turn_rate_deg_s =
            (G * bank.to_radians().tan() / s.true_airspeed_mps).to_degrees();
        let m = motion_of(&s, 0.0, 0.0, &MINDEN_FIELD);
        let n = 1.0 / bank.to_radians().cos();
        assert!(m.accel_mps2[1].abs() < 1e-9, "{:?}", m.accel_mps2);
        assert!((m.accel_mps2[2] + n * G).abs() < 1e-9, "{:?}", m.accel_mps2);
    }
}
