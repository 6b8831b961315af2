//! Register-level model of a smart battery gauge (SBS 1.1, a bq40z50's command set as far
//! as the driver uses it) behind an [`embedded_hal::i2c::I2c`] bus.
//!
//! [`SbsSim`] is a cheap-to-clone handle: the driver owns one clone as its bus while the
//! simulation moves the pack with the flight ([`SbsSim::apply`]: the pack's voltage,
//! current, state of charge and temperature of [`crate::flight::PowerState`]) and a test
//! injects faults through another: NACKs (the bus side), corrupted PECs, alarm bits.
//!
//! A transaction is a command write followed by a read; the reply is the command's word
//! (low byte first) or block (count first) with its PEC, then 0xFF as an idle bus reads. A
//! command the model does not implement is NACKed on its data byte, as the gauge does.
//!
//! Noise: the gauge's own measurement noise (3 sigma): ±10 mV, ±20 mA, ±1 K.

use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource, Operation};

use crate::flight::{FlightState, Noise};
use crate::i2c::sim::{RegisterModel, SimBus, SimDevice};

use super::{ADDRESS, BatteryStatus, MAX_BLOCK, command, read_pec};

/// The pack's design capacity the model reports, mAh (the scenario's 4S 18 Ah pack).
pub const DESIGN_CAPACITY_MAH: u16 = 18_000;
/// The pack's design voltage, mV (4 cells of 3.6 V).
pub const DESIGN_VOLTAGE_MV: u16 = 14_400;

/// The gauge's registers and the truth they measure ([`SbsSim`]'s model).
#[derive(Debug)]
pub struct SbsModel {
    address: u8,
    pointer: Option<u8>,
    voltage_v: f64,
    current_a: f64,
    soc: f64,
    temperature_k: f64,
    noise: Noise,
    corrupt_pecs: u32,
    alarms: u16,
    reads: u64,
}

/// A simulated smart battery. Clones share one gauge. Derefs to its [`SimBus`] (NACKs,
/// transaction count).
pub type SbsSim = SimDevice<SbsModel>;

impl SimDevice<SbsModel> {
    /// A gauge at `address` with noise seed `seed`, on a pack at 15.6 V, 3 A out, 80 %,
    /// 20 °C.
    pub fn new(address: u8, seed: u64) -> Self {
        SimDevice::with_model(|_| SbsModel {
            address,
            pointer: None,
            voltage_v: 15.6,
            current_a: 3.0,
            soc: 0.8,
            temperature_k: 293.15,
            noise: Noise::new(seed),
            corrupt_pecs: 0,
            alarms: 0,
            reads: 0,
        })
    }

    /// A gauge at the specification's address.
    pub fn at_default_address(seed: u64) -> Self {
        Self::new(ADDRESS, seed)
    }

    /// Takes the pack's state from the flight.
    pub fn apply(&self, state: &FlightState) {
        let mut m = self.lock();
        m.voltage_v = state.power.battery_voltage_v;
        m.current_a = state.power.battery_current_a;
        m.soc = state.power.battery_soc;
        m.temperature_k = state.power.battery_temperature_k;
    }

    /// Sets the pack's state: voltage V, current A (positive out of the pack), state of
    /// charge (fraction) and temperature K.
    pub fn set_pack(&self, voltage_v: f64, current_a: f64, soc: f64, temperature_k: f64) {
        let mut m = self.lock();
        m.voltage_v = voltage_v;
        m.current_a = current_a;
        m.soc = soc;
        m.temperature_k = temperature_k;
    }

    /// The next `n` replies carry a wrong PEC.
    pub fn corrupt_pec_next(&self, n: u32) {
        self.lock().corrupt_pecs = n;
    }

    /// Raises the BatteryStatus bits `bits` (alarms) until cleared.
    pub fn raise_alarms(&self, bits: u16) {
        self.lock().alarms |= bits;
    }

    /// Replies sent so far.
    pub fn reads(&self) -> u64 {
        self.lock().reads
    }

    /// Ends every injected fault.
    pub fn clear_faults(&self) {
        SimBus::clear_faults(self);
        let mut m = self.lock();
        m.corrupt_pecs = 0;
        m.alarms = 0;
    }
}

/// A register value to the nearest unit, saturated at what the word carries (`as` does).
fn word(value: f64) -> u16 {
    value.round() as u16
}

impl SbsModel {
    fn word_of(&mut self, command: u8) -> Option<u16> {
        Some(match command {
            command::TEMPERATURE => {
                word((self.temperature_k + self.noise.gaussian(1.0 / 3.0)) * 10.0)
            }
            command::VOLTAGE => word((self.voltage_v + self.noise.gaussian(0.010 / 3.0)) * 1e3),
            // SBS current is positive into the pack.
            command::CURRENT => {
                (-(self.current_a + self.noise.gaussian(0.020 / 3.0)) * 1e3).round() as i16 as u16
            }
            command::RELATIVE_STATE_OF_CHARGE => word(self.soc * 100.0),
            command::REMAINING_CAPACITY => word(self.soc * f64::from(DESIGN_CAPACITY_MAH)),
            command::FULL_CHARGE_CAPACITY => DESIGN_CAPACITY_MAH,
            command::BATTERY_STATUS => {
                let mut s = BatteryStatus::INITIALIZED | self.alarms;
                if self.current_a > 0.0 {
                    s |= BatteryStatus::DISCHARGING;
                }
                if self.soc <= 0.0 {
                    s |= BatteryStatus::FULLY_DISCHARGED;
                }
                s
            }
            command::DESIGN_CAPACITY => DESIGN_CAPACITY_MAH,
            command::DESIGN_VOLTAGE => DESIGN_VOLTAGE_MV,
            command::SERIAL_NUMBER => 0x2026,
            _ => return None,
        })
    }

    fn block_of(command: u8) -> Option<&'static [u8]> {
        match command {
            command::MANUFACTURER_NAME => Some(b"Texas Instruments"),
            command::DEVICE_NAME => Some(b"bq40z50"),
            _ => None,
        }
    }

    fn reply(&mut self, command: u8, buf: &mut [u8]) -> Result<(), ErrorKind> {
        let mut reply = Vec::with_capacity(2 + MAX_BLOCK);
        if let Some(value) = self.word_of(command) {
            reply.extend_from_slice(&value.to_le_bytes());
        } else if let Some(block) = Self::block_of(command) {
            reply.push(block.len() as u8);
            reply.extend_from_slice(block);
        } else {
            return Err(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Data));
        }
        let mut pec = read_pec(self.address, command, &reply);
        if self.corrupt_pecs > 0 {
            self.corrupt_pecs -= 1;
            pec ^= 0x5A;
        }
        reply.push(pec);
        self.reads += 1;
        for (i, byte) in buf.iter_mut().enumerate() {
            *byte = reply.get(i).copied().unwrap_or(0xFF);
        }
        Ok(())
    }
}

impl RegisterModel for SbsModel {
    fn address(&self) -> u8 {
        self.address
    }

    fn transaction(&mut self, operations: &mut [Operation<'_>]) -> Result<(), ErrorKind> {
        for operation in operations {
            match operation {
                Operation::Write(bytes) => {
                    // The command byte; a write of a word after it (a host setting a
                    // register) is acknowledged and ignored: the driver never writes.
                    if let Some(&c) = bytes.first() {
                        self.pointer = Some(c);
                    }
                }
                Operation::Read(buf) => {
                    let Some(c) = self.pointer else {
                        return Err(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Data));
                    };
                    self.reply(c, buf)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flight::Scenario;
    use crate::sbs::{Config, Error, ReplyError, Sbs};
    use aloft_protocol::Quality;
    use embedded_hal::i2c::I2c;

    fn started(seed: u64) -> (SbsSim, Sbs<SbsSim>) {
        let sim = SbsSim::at_default_address(seed);
        let mut sbs = Sbs::new(sim.clone(), Config::default());
        let identity = sbs.init().unwrap();
        assert_eq!(identity.device, "bq40z50");
        assert_eq!(identity.manufacturer, "Texas Instruments");
        assert_eq!(identity.design_capacity_mah, DESIGN_CAPACITY_MAH);
        (sim, sbs)
    }

    #[test]
    fn the_gauge_follows_the_pack_through_the_flight() {
        let (sim, mut sbs) = started(1);
        let scenario = Scenario::new(1, 0);
        let mut t = 0.0;
        while t < scenario.duration_s() {
            let state = scenario.state_at(t);
            sim.apply(&state);
            let m = sbs.measure().unwrap();
            let p = state.power;
            assert!(
                (m.voltage_v - p.battery_voltage_v).abs() < 0.02,
                "{t}: {m:?} {p:?}"
            );
            assert!((m.current_a - p.battery_current_a).abs() < 0.04, "{t}");
            assert!(
                (m.state_of_charge - p.battery_soc).abs() <= 0.005 + 1e-9,
                "{t}"
            );
            assert!(
                (m.temperature_k - p.battery_temperature_k).abs() < 1.5,
                "{t}"
            );
            assert!(m.current_a > 0.0, "the pack discharges all flight");
            t += 300.0;
        }
    }

    #[test]
    fn a_corrupted_pec_is_a_typed_error_and_the_next_read_is_good() {
        let (sim, mut sbs) = started(2);
        sim.corrupt_pec_next(1);
        assert!(matches!(
            sbs.measure(),
            Err(Error::Reply(ReplyError::Pec { .. }))
        ));
        assert!(sbs.measure().is_ok());
        // Without PEC the host does not read it, so it cannot notice.
        let mut plain = Sbs::new(sim.clone(), Config::new(ADDRESS, false));
        sim.corrupt_pec_next(7);
        assert!(plain.measure().is_ok());
    }

    #[test]
    fn alarm_bits_reach_the_readings_quality() {
        let (sim, mut sbs) = started(3);
        sim.raise_alarms(BatteryStatus::TERMINATE_DISCHARGE_ALARM | BatteryStatus::OVER_TEMP_ALARM);
        let m = sbs.measure().unwrap();
        assert!(m.voltage_quality().contains(Quality::OUT_OF_RANGE));
        assert!(m.temperature_quality().contains(Quality::OUT_OF_RANGE));
        sim.clear_faults();
        let m = sbs.measure().unwrap();
        assert!(m.voltage_quality().is_good() && m.temperature_quality().is_good());
        assert!(
            m.raw
                .status
                .has(BatteryStatus::DISCHARGING | BatteryStatus::INITIALIZED)
        );
    }

    #[test]
    fn nacks_are_typed_errors_and_unknown_commands_are_nacked() {
        let (sim, mut sbs) = started(4);
        sim.nack_next(1);
        assert!(matches!(sbs.measure(), Err(Error::I2c(_))));
        assert!(sbs.measure().is_ok());
        assert!(matches!(sbs.read_word(0x55), Err(Error::I2c(_))));
        let mut wrong = Sbs::new(sim.clone(), Config::new(0x0C, true));
        assert!(matches!(wrong.init(), Err(Error::I2c(_))));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bus_traffic_never_panics_the_model(
            ops in proptest::collection::vec(
                (0u8..4, proptest::prelude::any::<u8>(), 0usize..40, proptest::prelude::any::<f64>()),
                0..40,
            )
        ) {
            let mut sim = SbsSim::at_default_address(9);
            for (kind, byte, len, x) in ops {
                match kind {
                    0 => { let _ = sim.write(ADDRESS, &[byte]); }
                    1 => { let mut buf = vec![0u8; len]; let _ = sim.write_read(ADDRESS, &[byte], &mut buf); }
                    2 => { let mut buf = vec![0u8; len]; let _ = sim.read(ADDRESS, &mut buf); }
                    _ => sim.set_pack(x, x, x, x),
                }
            }
        }
    }
}
