//! MS5611 measurements with the conversion running between them, as PX4's driver takes
//! them: each measurement reads the pressure conversion the previous one started, and
//! starts the next before it returns; the temperature is converted once every
//! [`PRESSURES_PER_TEMPERATURE`] pressures (PX4's `MS5611_MEASUREMENT_RATIO`).
//!
//! Why: [`Ms5611::measure`] converts D1 and D2 back to back and sleeps through both
//! conversion times, seven bus transactions and sleeps per sample. Here a sample is one
//! ADC read and one conversion command, plus the temperature's three every third sample:
//! on the glider's 10 Hz static port that is 40 instead of 70 wake-ups of the sensor's
//! thread a second. The die temperature changes over seconds (the sensor sits in the
//! fuselage), so compensating with one at most two samples old costs nothing measurable.
//!
//! Invariants: a pressure is stamped with the time its conversion started (the caller's
//! clock, read just before the command), so it never claims a later moment than it
//! describes; the temperature reading is only emitted for a fresh D2 and carries its own
//! time; a conversion is never read before its datasheet maximum time (the remainder is
//! waited if a measurement comes early); after any error nothing is assumed to be running,
//! so the next measurement starts afresh (both conversions, waited out).

use aloft_protocol::{Quantity, Reading, SensorId, Timestamp};
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

use super::{Conversion, Error, Measurement, Ms5611};

/// Pressure conversions per temperature conversion.
pub const PRESSURES_PER_TEMPERATURE: u8 = 3;

/// A pressure conversion started at the end of the last measurement.
#[derive(Debug, Clone, Copy)]
struct Running {
    time: Timestamp,
}

/// The state carried from one measurement to the next.
#[derive(Debug, Default)]
pub struct Pipeline {
    running: Option<Running>,
    /// The last temperature conversion, and when it was taken.
    d2: Option<(u32, Timestamp)>,
    pressures_since_temperature: u8,
}

/// One measurement of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampled {
    /// The compensated values (the temperature those of the newest D2).
    pub measurement: Measurement,
    /// When the pressure conversion started.
    pub pressure_time: Timestamp,
    /// When the temperature conversion started, if this measurement took one.
    pub temperature_time: Option<Timestamp>,
}

impl Sampled {
    /// The pressure, and the die temperature when it was converted for this sample.
    pub fn push_readings(&self, sensor: SensorId, out: &mut Vec<Reading>) {
        let m = &self.measurement;
        out.push(Reading {
            sensor,
            quantity: Quantity::AirPressure,
            time: self.pressure_time,
            value: m.pressure_pa,
            quality: m.pressure_quality(),
        });
        if let Some(time) = self.temperature_time {
            out.push(Reading {
                sensor,
                quantity: Quantity::SensorTemperature,
                time,
                value: m.temperature_k,
                quality: m.temperature_quality(),
            });
        }
    }
}

impl Pipeline {
    /// A pipeline with nothing running: its first measurement converts both values.
    pub fn new() -> Self {
        Pipeline::default()
    }

    /// Forgets what was running (the device was reset or reopened).
    pub fn reset(&mut self) {
        *self = Pipeline::default();
    }

    /// Whether a pressure conversion was left running for the next measurement.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// One measurement; `now` is the caller's clock (its `mono_ns` times the conversions).
    pub fn measure<I2C: I2c, D: DelayNs>(
        &mut self,
        device: &mut Ms5611<I2C>,
        delay: &mut D,
        now: &mut dyn FnMut() -> Timestamp,
    ) -> Result<Sampled, Error<I2C::Error>> {
        let result = self.try_measure(device, delay, now);
        if result.is_err() {
            self.reset();
        }
        result
    }

    fn try_measure<I2C: I2c, D: DelayNs>(
        &mut self,
        device: &mut Ms5611<I2C>,
        delay: &mut D,
        now: &mut dyn FnMut() -> Timestamp,
    ) -> Result<Sampled, Error<I2C::Error>> {
        let prom = *device.prom().ok_or(Error::NotInitialized)?;
        let conversion_ns = u64::from(device.osr().max_conversion_time_us()) * 1_000;
        let converted = match self.running.take() {
            Some(running) => {
                let elapsed = now().mono_ns.saturating_sub(running.time.mono_ns);
                if let Some(left) = conversion_ns.checked_sub(elapsed).filter(|&l| l > 0) {
                    delay.delay_ns(u32::try_from(left).unwrap_or(u32::MAX));
                }
                Some((device.read_conversion(Conversion::Pressure)?, running.time))
            }
            None => None,
        };
        let mut temperature_time = None;
        let d2 = match self.d2 {
            Some((d2, _)) if self.pressures_since_temperature < PRESSURES_PER_TEMPERATURE => d2,
            _ => {
                let time = now();
                let d2 = device.convert(Conversion::Temperature, delay)?;
                self.d2 = Some((d2, time));
                self.pressures_since_temperature = 0;
                temperature_time = Some(time);
                d2
            }
        };
        let (d1, pressure_time) = match converted {
            Some(c) => c,
            None => {
                let time = now();
                (device.convert(Conversion::Pressure, delay)?, time)
            }
        };
        self.pressures_since_temperature = self.pressures_since_temperature.saturating_add(1);
        let next = now();
        match device.start_conversion(Conversion::Pressure) {
            Ok(()) => self.running = Some(Running { time: next }),
            // This sample is good; the next measurement converts while it waits.
            Err(e) => {
                tracing::debug!(address = device.address(), error = %e, "MS5611 next conversion not started.")
            }
        }
        Ok(Sampled {
            measurement: Measurement::compensate(&prom, d1, d2),
            pressure_time,
            temperature_time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::sim::Ms5611Sim;
    use super::*;
    use crate::i2c::sim::SimDelay;

    type SimError = <Ms5611Sim as embedded_hal::i2c::ErrorType>::Error;

    /// A device at 194 hPa and its pipeline; the caller's clock is the simulator's, so
    /// the time a test lets pass between measurements, and every wait of the driver,
    /// moves both.
    struct Rig {
        sim: Ms5611Sim,
        device: Ms5611<Ms5611Sim>,
        delay: SimDelay,
        pipeline: Pipeline,
    }

    impl Rig {
        fn new() -> Rig {
            let sim = Ms5611Sim::new(0x77);
            sim.set_environment(19_400.0, 223.15, 0.2);
            let mut delay = sim.delay();
            let mut device = Ms5611::new(sim.clone(), 0x77);
            device.init(&mut delay).expect("initialises");
            Rig {
                sim,
                device,
                delay,
                pipeline: Pipeline::new(),
            }
        }

        fn measure(&mut self) -> Result<Sampled, Error<SimError>> {
            let clock = self.sim.clock();
            self.pipeline
                .measure(&mut self.device, &mut self.delay, &mut || {
                    Timestamp::monotonic(clock.now_ns())
                })
        }
    }

    #[test]
    fn a_sample_costs_two_transactions_and_the_temperature_three_more_every_third() {
        let mut rig = Rig::new();
        let mut per_sample = Vec::new();
        let mut temperatures = 0;
        for _ in 0..9 {
            let before = rig.sim.transactions();
            let s = rig.measure().expect("measures");
            per_sample.push(rig.sim.transactions() - before);
            temperatures += usize::from(s.temperature_time.is_some());
            assert!((s.measurement.pressure_pa - 19_400.0).abs() < 50.0, "{s:?}");
            // The interval passes (the device's conversion completes meanwhile).
            rig.sim.clock().advance_ns(100_000_000);
        }
        // First: D2 and D1 converted (2 each) and the next D1 started; then read + start,
        // with D2's command and read added every third sample.
        assert_eq!(per_sample, vec![5, 2, 2, 4, 2, 2, 4, 2, 2]);
        assert_eq!(temperatures, 3);
    }

    #[test]
    fn a_pressure_is_stamped_when_its_conversion_started_and_read_no_earlier_than_allowed() {
        let mut rig = Rig::new();
        rig.measure().expect("measures");
        let started = rig.sim.clock().now_ns();
        // Asked again at once: the remaining conversion time is waited, not a 0 read.
        let s = rig.measure().expect("measures");
        assert_eq!(s.pressure_time.mono_ns, started);
        assert!(rig.sim.clock().now_ns() - started >= 9_040_000);
        assert_eq!(s.temperature_time, None);
    }

    #[test]
    fn after_an_error_the_next_measurement_starts_afresh() {
        let mut rig = Rig::new();
        rig.measure().expect("measures");
        assert!(rig.pipeline.is_running());
        rig.sim.nack_next(1);
        assert!(rig.measure().is_err());
        assert!(!rig.pipeline.is_running());
        rig.measure().expect("measures again");
        assert!(rig.pipeline.is_running());
        // A brown-out reset the device: the running conversion reads 0.
        rig.sim.zero_next_adc_reads(1);
        assert!(matches!(
            rig.measure(),
            Err(Error::AdcNotReady(Conversion::Pressure))
        ));
        assert!(!rig.pipeline.is_running());
        let s = rig.measure().expect("measures after the reset");
        assert!(s.temperature_time.is_some(), "both converted afresh");
        assert!(rig.pipeline.is_running());
    }
}
