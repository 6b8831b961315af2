//! The simulated flight to 12 km as an agent's record stream, without running an agent:
//! for export tests and the export benchmark, which need the records of a whole flight
//! (or ten million readings of one) in seconds.
//!
//! What it makes, in stream order (sequence numbers from 0): a boot record; descriptors of
//! a u-blox GNSS receiver (`gps`, airborne <2g model), a BME280 static port (`static`), an
//! MS4525DO pitot (`pitot`) and a CosmicWatch detector (`cosmic`); then, at every tick,
//! the readings of each sensor due then. GNSS readings carry GNSS UTC; every other reading
//! carries monotonic time only until the first fix, and system-clock UTC after it, as the
//! agent does, and a time correlation is recorded at the first fix and every 60 s, so the
//! readings before the first fix get reconstructed UTC. Optionally a sensor outage (status
//! failed, a gap, status running), and a second boot that never gets a correlation (its
//! readings have no UTC). Optionally power steps: the battery crosses two steps and
//! recovers (`economy` at 30 % of the flight slows the pitot to one conversion in 5 s and
//! lowers the upload budget, `survival` at 50 % also stops the cosmic-ray detector and would
//! slow the GNSS, which the operator exempted, `economy` again at 80 %, `full` at 90 %), each
//! change a power step record, and the sensors' readings follow.
//!
//! Invariant: the stream is a pure function of the options (the flight's truth comes from
//! the seeded [`Scenario`]; the noise from the seed).

use aloft_protocol::{
    Boot, BootId, DescriptorRecord, DeviceParameter, DynamicModel, ExtensionRecord, Gap, GapReason,
    POWER_STEP_RECORD_KIND, ParameterValue, PowerEffect, PowerStepRecord, Quality, Quantity,
    Reading, Record, SensorDescriptor, SensorId, SensorState, StatusRecord, TimeCorrelation,
    TimeSource, Timestamp,
};
use aloft_sensors::flight::{Noise, Scenario};

/// What the flight's stream holds.
#[derive(Debug, Clone)]
pub struct FlightOptions {
    /// The scenario's seed.
    pub seed: u64,
    /// UTC of the scenario's start, ns.
    pub start_utc_ns: i64,
    /// Seconds of the flight to make (from its start).
    pub duration_s: f64,
    /// GNSS fixes a second.
    pub gps_hz: f64,
    /// BME280 conversions a second.
    pub static_hz: f64,
    /// Pitot conversions a second.
    pub pitot_hz: f64,
    /// Seconds after the start of the first GNSS fix (readings before it carry only
    /// monotonic time).
    pub first_fix_s: f64,
    /// A failure of the pitot from this second, for 30 s (status, gap, status).
    pub pitot_outage_at_s: Option<f64>,
    /// A second boot after the flight whose clock never gets a correlation: this many
    /// seconds of static readings with no UTC.
    pub uncorrelated_boot_s: Option<f64>,
    /// Power steps ([`POWER_STEPS`]): two steps down and back, as records, with the
    /// pitot slowed and the cosmic-ray detector stopped while they hold.
    pub power_steps: bool,
}

/// One power step of the flight: from this share of its duration, the step, level, reason,
/// upload budget, and what it does (pitot interval, cosmic-ray detector stopped).
#[derive(Debug, Clone, Copy)]
pub struct FlightStep {
    /// From this share of the flight's duration.
    pub at: f64,
    /// Its name.
    pub step: &'static str,
    /// Its level.
    pub level: u8,
    /// Why.
    pub reason: &'static str,
    /// The upload budget, bytes/s.
    pub upload_bytes_per_s: Option<u64>,
    /// The pitot's interval under it, ms.
    pub pitot_interval_ms: Option<u32>,
    /// Whether it stops the cosmic-ray detector.
    pub cosmic_disabled: bool,
}

/// The flight's power steps with [`FlightOptions::power_steps`].
pub const POWER_STEPS: [FlightStep; 4] = [
    FlightStep {
        at: 0.3,
        step: "economy",
        level: 1,
        reason: "state of charge 0.34 below 0.35",
        upload_bytes_per_s: Some(20_000),
        pitot_interval_ms: Some(5_000),
        cosmic_disabled: false,
    },
    FlightStep {
        at: 0.5,
        step: "survival",
        level: 2,
        reason: "pack temperature -21.0 C below -20.0 C",
        upload_bytes_per_s: Some(5_000),
        pitot_interval_ms: Some(5_000),
        cosmic_disabled: true,
    },
    FlightStep {
        at: 0.8,
        step: "economy",
        level: 1,
        reason: "pack temperature -17.5 C above -18.0 C",
        upload_bytes_per_s: Some(20_000),
        pitot_interval_ms: Some(5_000),
        cosmic_disabled: false,
    },
    FlightStep {
        at: 0.9,
        step: "full",
        level: 0,
        reason: "state of charge 0.52 above 0.45",
        upload_bytes_per_s: None,
        pitot_interval_ms: None,
        cosmic_disabled: false,
    },
];

impl FlightStep {
    /// The record of this step at `time`.
    pub fn record(&self, time: Timestamp) -> PowerStepRecord {
        let mut effects = Vec::new();
        if let Some(ms) = self.pitot_interval_ms {
            effects.push(PowerEffect {
                sensor: PITOT,
                interval_ms: Some(ms),
                disabled: false,
                overridden: false,
            });
        }
        if self.cosmic_disabled {
            effects.push(PowerEffect {
                sensor: COSMIC,
                interval_ms: None,
                disabled: true,
                overridden: false,
            });
            effects.push(PowerEffect {
                sensor: GPS,
                interval_ms: Some(10_000),
                disabled: false,
                overridden: true,
            });
        }
        PowerStepRecord {
            time,
            step: self.step.to_owned(),
            level: self.level,
            reason: self.reason.to_owned(),
            effects,
            upload_bytes_per_s: self.upload_bytes_per_s,
        }
    }
}

impl Default for FlightOptions {
    fn default() -> Self {
        FlightOptions {
            seed: 7,
            start_utc_ns: 1_780_000_000_000_000_000,
            duration_s: 600.0,
            gps_hz: 1.0,
            static_hz: 1.0,
            pitot_hz: 1.0,
            first_fix_s: 20.0,
            pitot_outage_at_s: None,
            uncorrelated_boot_s: None,
            power_steps: false,
        }
    }
}

/// The sensors' numbers.
pub const GPS: SensorId = SensorId(0);
/// The static port.
pub const STATIC: SensorId = SensorId(1);
/// The pitot.
pub const PITOT: SensorId = SensorId(2);
/// The cosmic-ray detector.
pub const COSMIC: SensorId = SensorId(3);

/// The records of the flight, generated lazily in stream order.
#[derive(Debug)]
pub struct FlightRecords {
    opts: FlightOptions,
    scenario: Scenario,
    noise: Noise,
    queue: std::collections::VecDeque<Record>,
    /// The next tick's time, s since the start.
    tick: u64,
    ticks_per_s: f64,
    boot_mono_ns: u64,
    stage: Stage,
    muon_events: u64,
    next_muon_s: f64,
    last_correlation_s: Option<f64>,
    /// The power step in force (index in [`POWER_STEPS`]).
    power_step: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Start,
    Flight,
    SecondBoot,
    Done,
}

/// The boot id of the flight's boot.
pub const FLIGHT_BOOT: BootId = BootId([0xb0; 16]);
/// The boot id of the uncorrelated second boot.
pub const SECOND_BOOT: BootId = BootId([0xb1; 16]);

impl FlightRecords {
    /// The flight's records.
    pub fn new(opts: FlightOptions) -> Self {
        let scenario = Scenario::new(opts.seed, opts.start_utc_ns);
        let ticks_per_s = [opts.gps_hz, opts.static_hz, opts.pitot_hz]
            .into_iter()
            .fold(1.0f64, f64::max)
            .ceil();
        FlightRecords {
            noise: Noise::new(opts.seed ^ 0xE4_70_27),
            scenario,
            queue: std::collections::VecDeque::new(),
            tick: 0,
            ticks_per_s,
            boot_mono_ns: 5_000_000_000,
            stage: Stage::Start,
            muon_events: 0,
            next_muon_s: 0.0,
            last_correlation_s: None,
            power_step: None,
            opts,
        }
    }

    fn mono(&self, t_s: f64) -> u64 {
        self.boot_mono_ns + (t_s * 1e9).round() as u64
    }

    fn utc(&self, t_s: f64) -> i64 {
        self.opts.start_utc_ns + (t_s * 1e9).round() as i64
    }

    fn time(&self, t_s: f64, sensor_utc: bool) -> Timestamp {
        if t_s >= self.opts.first_fix_s {
            let source = if sensor_utc {
                TimeSource::Gnss
            } else {
                TimeSource::SystemClock
            };
            Timestamp::with_utc(self.mono(t_s), self.utc(t_s), source)
        } else {
            Timestamp::monotonic(self.mono(t_s))
        }
    }

    fn reading(&mut self, sensor: SensorId, quantity: Quantity, t: Timestamp, value: f64) {
        self.queue.push_back(Record::Reading(Reading {
            sensor,
            quantity,
            time: t,
            value,
            quality: Quality::SIMULATED,
        }));
    }

    fn start(&mut self) {
        self.queue.push_back(Record::Boot(Boot {
            boot_id: FLIGHT_BOOT,
            mono_ns: self.boot_mono_ns,
            utc_ns: None,
            agent_version: "0.1.0".to_owned(),
        }));
        let t0 = Timestamp::monotonic(self.boot_mono_ns);
        let mut gps = SensorDescriptor::new("u-blox NEO-M8N");
        gps.firmware = Some("ROM CORE 3.01 (107888)".to_owned());
        gps.dynamic_model = Some(DynamicModel::Airborne2g);
        let mut bme = SensorDescriptor::new("BME280");
        bme.parameters.push(DeviceParameter {
            name: "dig_T1".to_owned(),
            value: ParameterValue::Integer(27_504),
        });
        let mut cosmic = SensorDescriptor::new("CosmicWatch v2");
        cosmic.serial_number = Some("CW-0042".to_owned());
        for (sensor, name, kind, d) in [
            (GPS, "gps", "ublox", gps),
            (STATIC, "static", "bme280", bme),
            (
                PITOT,
                "pitot",
                "ms4525do",
                SensorDescriptor::new("MS4525DO-DS5AI001D"),
            ),
            (COSMIC, "cosmic", "cosmicwatch", cosmic),
        ] {
            self.queue.push_back(Record::Descriptor(DescriptorRecord {
                sensor,
                name: name.to_owned(),
                kind: kind.to_owned(),
                time: t0,
                descriptor: d,
            }));
        }
    }

    fn due(&self, hz: f64) -> bool {
        if hz <= 0.0 {
            return false;
        }
        let per = (self.ticks_per_s / hz).round().max(1.0) as u64;
        self.tick.is_multiple_of(per)
    }

    /// The power step in force at `t_s`, by [`POWER_STEPS`], when the flight has them.
    fn step_index_at(&self, t_s: f64) -> Option<usize> {
        if !self.opts.power_steps {
            return None;
        }
        POWER_STEPS
            .iter()
            .rposition(|p| t_s >= p.at * self.opts.duration_s)
    }

    fn step_at(&self, t_s: f64) -> Option<FlightStep> {
        self.step_index_at(t_s).map(|i| POWER_STEPS[i])
    }

    fn flight_tick(&mut self) {
        let t_s = self.tick as f64 / self.ticks_per_s;
        let s = self.scenario.state_at(t_s);
        if self.opts.power_steps {
            let due = self.step_index_at(t_s);
            if due.is_some() && due != self.power_step {
                self.power_step = due;
                if let Some(i) = due {
                    let record = POWER_STEPS[i].record(self.time(t_s, false));
                    self.queue.push_back(Record::Extension(ExtensionRecord {
                        kind: POWER_STEP_RECORD_KIND,
                        body: postcard::to_allocvec(&record).unwrap_or_default(),
                    }));
                }
            }
        }
        if t_s >= self.opts.first_fix_s
            && self
                .last_correlation_s
                .is_none_or(|last| t_s - last >= 60.0)
        {
            self.last_correlation_s = Some(t_s);
            self.queue
                .push_back(Record::TimeCorrelation(TimeCorrelation {
                    boot_id: FLIGHT_BOOT,
                    mono_ns: self.mono(t_s),
                    utc_ns: self.utc(t_s),
                    source: TimeSource::Gnss,
                    uncertainty_ns: Some(50_000_000),
                }));
        }
        if self.due(self.opts.gps_hz) && t_s >= self.opts.first_fix_s {
            let t = self.time(t_s, true);
            let n = self.noise.gaussian(1.0);
            for (q, v) in [
                (Quantity::Latitude, s.latitude_deg),
                (Quantity::Longitude, s.longitude_deg),
                (Quantity::AltitudeMsl, s.altitude_m + 2.0 * n),
                (Quantity::GeoidSeparation, s.geoid_separation_m),
                (Quantity::GroundSpeed, s.ground_speed_mps),
                (Quantity::Track, s.track_deg),
                (Quantity::VerticalSpeed, s.vertical_speed_mps),
                (Quantity::FixMode, 3.0),
                (Quantity::SatellitesUsed, 9.0 + (t_s / 300.0).floor() % 4.0),
                (Quantity::Hdop, 0.9),
                (Quantity::HorizontalAccuracy, 2.5),
            ] {
                self.reading(GPS, q, t, v);
            }
        }
        if self.due(self.opts.static_hz) {
            let t = self.time(t_s, false);
            let p = s.pressure_pa + self.noise.gaussian(1.2);
            let k = s.outside_air_k + self.noise.gaussian(0.05);
            self.reading(STATIC, Quantity::AirPressure, t, p);
            self.reading(STATIC, Quantity::AirTemperature, t, k);
            self.reading(STATIC, Quantity::RelativeHumidity, t, s.relative_humidity);
        }
        let outage = self.opts.pitot_outage_at_s.map(|at| (at, at + 30.0));
        if let Some((from, to)) = outage {
            let step = 1.0 / self.ticks_per_s;
            if t_s <= from && from < t_s + step {
                self.queue.push_back(Record::Status(StatusRecord {
                    sensor: PITOT,
                    state: SensorState::Failed,
                    reason: "NACK at 0x28".to_owned(),
                    restarts: 0,
                    time: self.time(t_s, false),
                }));
            }
            if t_s <= to && to < t_s + step {
                self.queue.push_back(Record::Gap(Gap {
                    reason: GapReason::SensorOutage,
                    covers: None,
                    readings: None,
                    sensor: Some(PITOT),
                    span: Some((self.time(from, false), self.time(to, false))),
                }));
                self.queue.push_back(Record::Status(StatusRecord {
                    sensor: PITOT,
                    state: SensorState::Running,
                    reason: "restarted".to_owned(),
                    restarts: 1,
                    time: self.time(t_s, false),
                }));
            }
        }
        let pitot_down = outage.is_some_and(|(from, to)| t_s >= from && t_s < to);
        let step = self.power_step.map(|i| POWER_STEPS[i]);
        // A step's pitot interval thins the pitot's conversions to one in that many ms.
        let pitot_slowed = step.and_then(|s| s.pitot_interval_ms).is_some_and(|ms| {
            let per_s = 1000.0 / f64::from(ms.max(1));
            !self.due(per_s.min(self.opts.pitot_hz))
        });
        if self.due(self.opts.pitot_hz) && !pitot_down && !pitot_slowed {
            let t = self.time(t_s, false);
            let dp = s.differential_pressure_pa + self.noise.gaussian(0.5);
            self.reading(PITOT, Quantity::DifferentialPressure, t, dp);
            self.queue.push_back(Record::Reading(Reading {
                sensor: PITOT,
                quantity: Quantity::TrueAirspeed,
                time: t,
                value: s.true_airspeed_mps,
                quality: Quality::SIMULATED | Quality::DERIVED,
            }));
        }
        while self.next_muon_s <= t_s {
            let at = self.next_muon_s;
            // An event is counted under the step in force at its own time.
            let cosmic_stopped = self.step_at(at).is_some_and(|s| s.cosmic_disabled);
            let t = self.time(at, false);
            // The pulse height is drawn whether the detector runs or not, as its events are.
            let adc = 100.0 + (self.noise.uniform() * 800.0).round();
            if !cosmic_stopped {
                self.muon_events += 1;
                self.reading(COSMIC, Quantity::MuonEventCount, t, self.muon_events as f64);
                self.reading(COSMIC, Quantity::MuonPulseAdc, t, adc);
            }
            let rate = s.muon_rate_per_s.max(0.01);
            self.next_muon_s += self.noise.exponential(1.0 / rate);
        }
        self.tick += 1;
    }

    fn second_boot(&mut self, seconds: f64) {
        let mono0 = 3_000_000_000u64;
        self.queue.push_back(Record::Boot(Boot {
            boot_id: SECOND_BOOT,
            mono_ns: mono0,
            utc_ns: None,
            agent_version: "0.1.0".to_owned(),
        }));
        self.queue.push_back(Record::Descriptor(DescriptorRecord {
            sensor: STATIC,
            name: "static".to_owned(),
            kind: "bme280".to_owned(),
            time: Timestamp::monotonic(mono0),
            descriptor: SensorDescriptor::new("BME280"),
        }));
        let s = self.scenario.state_at(self.opts.duration_s);
        for i in 0..seconds.max(0.0) as u64 {
            let t = Timestamp::monotonic(mono0 + (i + 1) * 1_000_000_000);
            self.reading(STATIC, Quantity::AirPressure, t, s.pressure_pa);
        }
    }
}

impl Iterator for FlightRecords {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        loop {
            if let Some(r) = self.queue.pop_front() {
                return Some(r);
            }
            match self.stage {
                Stage::Start => {
                    self.start();
                    self.stage = Stage::Flight;
                }
                Stage::Flight => {
                    if (self.tick as f64) < self.opts.duration_s * self.ticks_per_s {
                        self.flight_tick();
                    } else {
                        self.stage = Stage::SecondBoot;
                    }
                }
                Stage::SecondBoot => {
                    if let Some(s) = self.opts.uncorrelated_boot_s {
                        self.second_boot(s);
                    }
                    self.stage = Stage::Done;
                }
                Stage::Done => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_a_pure_function_of_the_options() {
        let opts = FlightOptions {
            pitot_outage_at_s: Some(100.0),
            uncorrelated_boot_s: Some(5.0),
            ..FlightOptions::default()
        };
        let a: Vec<Record> = FlightRecords::new(opts.clone()).collect();
        let b: Vec<Record> = FlightRecords::new(opts).collect();
        assert_eq!(a, b);
        let readings = a.iter().filter(|r| matches!(r, Record::Reading(_))).count();
        assert!(readings > 600 * 5, "{readings}");
        assert!(a.iter().any(|r| matches!(r, Record::Gap(_))));
        assert_eq!(a.iter().filter(|r| matches!(r, Record::Boot(_))).count(), 2);
    }

    #[test]
    fn power_steps_are_recorded_and_the_pitot_and_cosmic_readings_follow_them() {
        let plain = FlightOptions::default();
        let stepped = FlightOptions {
            power_steps: true,
            ..plain.clone()
        };
        let a: Vec<Record> = FlightRecords::new(plain).collect();
        let b: Vec<Record> = FlightRecords::new(stepped).collect();
        let steps: Vec<PowerStepRecord> = b
            .iter()
            .filter_map(|r| match r {
                Record::Extension(e) if e.kind == POWER_STEP_RECORD_KIND => {
                    Some(postcard::from_bytes(&e.body).unwrap())
                }
                _ => None,
            })
            .collect();
        let levels: Vec<u8> = steps.iter().map(|s| s.level).collect();
        assert_eq!(levels, [1, 2, 1, 0]);
        let count = |records: &[Record], sensor: SensorId, from_s: f64, to_s: f64| {
            let (from, to) = (
                5_000_000_000 + (from_s * 1e9) as u64,
                5_000_000_000 + (to_s * 1e9) as u64,
            );
            records
                .iter()
                .filter(|r| matches!(r, Record::Reading(x) if x.sensor == sensor && x.time.mono_ns >= from && x.time.mono_ns < to))
                .count()
        };
        // Survival (300 s to 480 s): the cosmic-ray detector is silent, the pitot at one
        // conversion in 5 s (two quantities each), the static port untouched.
        assert!(count(&a, COSMIC, 300.0, 480.0) > 0);
        assert_eq!(count(&b, COSMIC, 300.0, 480.0), 0);
        assert_eq!(count(&a, PITOT, 300.0, 480.0), 2 * 180);
        assert_eq!(count(&b, PITOT, 300.0, 480.0), 2 * 180 / 5);
        assert_eq!(count(&a, STATIC, 0.0, 600.0), count(&b, STATIC, 0.0, 600.0));
        // Full power again from 540 s: the pitot at its rate, the detector counting (its
        // events' times come from the shared noise, so only their presence compares).
        assert_eq!(
            count(&a, PITOT, 540.0, 600.0),
            count(&b, PITOT, 540.0, 600.0)
        );
        assert!(count(&b, COSMIC, 540.0, 600.0) > 0);
    }
}
