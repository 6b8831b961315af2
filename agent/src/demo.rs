//! The demo: a simulated flight read live by the real drivers.
//!
//! Every device of the glider's sensor set runs as a simulator driven by one seeded flight
//! scenario: the u-blox receiver and the CosmicWatch detector behind pseudo-terminals that
//! the drivers open like real serial ports, the BME280 (outside air), MS5611 (static
//! pressure), SCD41 (CO2) and MS4525DO (pitot) as register-level I2C models. One thread per
//! bus reads them with the same drivers the agent uses on the board and sends readings to
//! the screen.
//!
//! Invariant: nothing here is special-cased for the simulators beyond building them: the
//! GNSS path configures the receiver's dynamic model and parses its NMEA, the detector path
//! parses its lines, and the I2C drivers speak to register models through embedded-hal.

use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use aloft_protocol::{DynamicModel, Quality, Quantity, Reading, SensorDescriptor, SensorId};
use aloft_sensors::Sample;
use aloft_sensors::bme280::Bme280;
use aloft_sensors::bme280::sim::Bme280Sim;
use aloft_sensors::cosmicwatch::{CosmicWatchSim, Format, MuonDetector, StreamItem};
use aloft_sensors::flight::{FlightClock, Phase, Scenario, start_utc_for_now};
use aloft_sensors::gps::fix::FixAssembler;
use aloft_sensors::gps::framer::{GnssFramer, Item};
use aloft_sensors::gps::sim::{Outputs, UbloxSim, UbloxSimConfig};
use aloft_sensors::gps::{nmea, ublox};
use aloft_sensors::i2c::sim::TemperatureSource;
use aloft_sensors::ms4525do::sim::Ms4525doSim;
use aloft_sensors::ms4525do::{self, Ms4525do, OutsideAir};
use aloft_sensors::ms5611::Ms5611;
use aloft_sensors::ms5611::sim::Ms5611Sim;
use aloft_sensors::scd41::Scd41;
use aloft_sensors::scd41::sim::Scd41Sim;
use aloft_sensors::serial::pty::{PortOptions, SimulatedPort};
use aloft_sensors::serial::{self, LineError, LineReader};

use crate::clock::AgentClock;

/// How the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// A short run without the live screen that fails unless every sensor produced readings.
    pub smoke: bool,
    /// How long to run; `None` runs until interrupted (with `smoke`, a few seconds).
    pub duration: Option<Duration>,
    /// Simulated seconds per real second.
    pub speed: f64,
    /// Where in the flight to start, s after the scenario's start.
    pub start_at_s: f64,
}

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A simulated device could not be started.
    #[error("cannot start the simulated {sensor}: {source}")]
    Simulator {
        /// Which sensor.
        sensor: &'static str,
        /// Why.
        source: aloft_sensors::serial::pty::PtyError,
    },
    /// A sensor thread could not be started.
    #[error("cannot start the {sensor} thread: {source}")]
    Thread {
        /// Which sensor.
        sensor: &'static str,
        /// Why.
        source: io::Error,
    },
    /// Writing to the screen failed.
    #[error("cannot write the demo's output: {0}")]
    Output(#[from] io::Error),
    /// The smoke run ended without readings from these sensors.
    #[error("no readings from {0} during the smoke run")]
    Silent(String),
}

/// The glider's sensors, in the order the screen shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Sensor {
    Gps,
    CosmicRay,
    Static,
    OutsideAir,
    Co2,
    Pitot,
}

impl Sensor {
    const ALL: [Sensor; 6] = [
        Sensor::Gps,
        Sensor::CosmicRay,
        Sensor::Static,
        Sensor::OutsideAir,
        Sensor::Co2,
        Sensor::Pitot,
    ];

    fn id(self) -> SensorId {
        SensorId(self as u16)
    }

    fn name(self) -> &'static str {
        match self {
            Sensor::Gps => "gps",
            Sensor::CosmicRay => "cosmic-ray",
            Sensor::Static => "static",
            Sensor::OutsideAir => "outside-air",
            Sensor::Co2 => "co2",
            Sensor::Pitot => "pitot",
        }
    }

    fn from_id(id: SensorId) -> Option<Sensor> {
        Sensor::ALL.get(usize::from(id.0)).copied()
    }
}

/// What a sensor thread tells the screen.
enum Event {
    Readings(Vec<Reading>),
    Descriptor(Sensor, SensorDescriptor),
    Problem(Sensor, String),
}

/// Runs the demo, writing its screen to `out`.
pub fn run(options: &DemoOptions, out: &mut impl Write) -> Result<(), DemoError> {
    let speed = if options.speed.is_finite() && options.speed > 0.0 {
        options.speed
    } else {
        1.0
    };
    let clock = AgentClock::new();
    // The scenario's UTC is arranged so that the flight is happening now.
    let scenario = Arc::new(Scenario::new(2026, start_utc_for_now(options.start_at_s)));
    let flight = FlightClock::start(options.start_at_s, speed);
    let port_options = PortOptions::new()
        .speed(speed)
        .scenario_offset_s(options.start_at_s);

    let gps_device = UbloxSim::new(UbloxSimConfig::default().with_outputs(Outputs {
        nav_pvt: false,
        ..Outputs::ALL
    }));
    let gps_baud = gps_device.config().baud;
    let gps_port = SimulatedPort::spawn(gps_device, Arc::clone(&scenario), port_options.clone())
        .map_err(|source| DemoError::Simulator {
            sensor: "u-blox receiver",
            source,
        })?;
    let detector = CosmicWatchSim::new(Format::V2, "glider", 7);
    let detector_port = SimulatedPort::spawn(detector, Arc::clone(&scenario), port_options)
        .map_err(|source| DemoError::Simulator {
            sensor: "CosmicWatch detector",
            source,
        })?;

    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let mut threads = Vec::new();
    let gps_path = gps_port.path();
    threads.push(spawn("gps", {
        let (tx, stop) = (tx.clone(), Arc::clone(&stop));
        move || read_gnss(gps_path, gps_baud, clock, &tx, &stop)
    })?);
    let detector_path = detector_port.path();
    threads.push(spawn("cosmic-ray", {
        let (tx, stop) = (tx.clone(), Arc::clone(&stop));
        move || read_detector(detector_path, clock, &tx, &stop)
    })?);
    threads.push(spawn("i2c", {
        let (tx, stop, scenario) = (tx.clone(), Arc::clone(&stop), Arc::clone(&scenario));
        move || read_i2c_bus(&scenario, flight, clock, &tx, &stop)
    })?);
    drop(tx);

    let duration = options
        .duration
        .or(options.smoke.then_some(Duration::from_secs(8)));
    let screen = if options.smoke {
        Screen::Summary
    } else if io::stdout().is_terminal() {
        Screen::Live
    } else {
        Screen::Log
    };
    let screen = show(&rx, out, &scenario, flight, duration, screen);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    // Stopping a port only fails if its thread panicked; the screen already said so.
    let _ = gps_port.stop();
    let _ = detector_port.stop();
    let table = screen?;
    if options.smoke {
        let silent: Vec<&str> = Sensor::ALL
            .iter()
            .filter(|s| !table.counts.contains_key(s))
            .map(|s| s.name())
            .collect();
        if !silent.is_empty() {
            return Err(DemoError::Silent(silent.join(", ")));
        }
        writeln!(out, "demo smoke run: every sensor produced readings")?;
    }
    Ok(())
}

fn spawn(
    sensor: &'static str,
    f: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, DemoError> {
    thread::Builder::new()
        .name(sensor.into())
        .spawn(f)
        .map_err(|source| DemoError::Thread { sensor, source })
}

fn simulated(mut readings: Vec<Reading>) -> Vec<Reading> {
    for r in &mut readings {
        r.quality |= Quality::SIMULATED;
    }
    readings
}

/// The u-blox receiver: configure Airborne <2g, then decode NMEA into fixes.
fn read_gnss(
    path: Option<std::path::PathBuf>,
    baud: u32,
    clock: AgentClock,
    tx: &Sender<Event>,
    stop: &AtomicBool,
) {
    let problem = |m: String| {
        let _ = tx.send(Event::Problem(Sensor::Gps, m));
    };
    let Some(path) = path else {
        return problem("the simulated receiver has no port".into());
    };
    let mut port = match serial::open(&path, baud, Duration::from_millis(100)) {
        Ok(p) => p,
        Err(e) => return problem(e.to_string()),
    };
    match ublox::configure_dynamic_model(
        &mut port,
        DynamicModel::Airborne2g,
        Duration::from_secs(2),
    ) {
        Ok(info) => {
            let _ = tx.send(Event::Descriptor(Sensor::Gps, info.to_descriptor()));
        }
        Err(e) => problem(format!("dynamic model not confirmed: {e}")),
    }
    let mut framer = GnssFramer::new();
    let mut fixes = FixAssembler::new();
    let mut buf = [0u8; 1024];
    while !stop.load(Ordering::Relaxed) {
        let n = match port.read(&mut buf) {
            Ok(0) => return problem("the receiver's port closed".into()),
            Ok(n) => n,
            Err(e) => match LineError::from_io(&e) {
                LineError::Timeout => continue,
                _ => return problem(format!("reading the receiver: {e}")),
            },
        };
        framer.push(buf.get(..n).unwrap_or_default());
        let mut readings = Vec::new();
        while let Some(item) = framer.next_item() {
            let Item::Nmea(line) = item else { continue };
            let Ok(sentence) = nmea::parse(line) else {
                continue;
            };
            if let Some(fix) = fixes.push(&sentence) {
                fix.push_readings(Sensor::Gps.id(), clock.now(), &mut readings);
            }
        }
        if !readings.is_empty() && tx.send(Event::Readings(simulated(readings))).is_err() {
            return;
        }
    }
}

/// The CosmicWatch detector: lines into events and a dead-time-corrected rate.
fn read_detector(
    path: Option<std::path::PathBuf>,
    clock: AgentClock,
    tx: &Sender<Event>,
    stop: &AtomicBool,
) {
    let problem = |m: String| {
        let _ = tx.send(Event::Problem(Sensor::CosmicRay, m));
    };
    let Some(path) = path else {
        return problem("the simulated detector has no port".into());
    };
    let port = match serial::open(&path, Format::V2.baud(), Duration::from_millis(100)) {
        Ok(p) => p,
        Err(e) => return problem(e.to_string()),
    };
    let mut lines = LineReader::new(port, aloft_sensors::cosmicwatch::stream::MAX_LINE_LEN);
    let mut detector = MuonDetector::new(60.0);
    while !stop.load(Ordering::Relaxed) {
        let line = match lines.read_line() {
            Ok(line) => line,
            Err(LineError::Timeout | LineError::TooLong { .. }) => continue,
            Err(e) => return problem(format!("reading the detector: {e}")),
        };
        let mut readings = Vec::new();
        let item = detector.feed_line(line, Sensor::CosmicRay.id(), clock.now(), &mut readings);
        if let StreamItem::Bad(e) = item {
            problem(format!("bad line: {e}"));
        }
        if let Some(descriptor) = detector.take_new_descriptor() {
            let _ = tx.send(Event::Descriptor(Sensor::CosmicRay, descriptor));
        }
        if !readings.is_empty() && tx.send(Event::Readings(simulated(readings))).is_err() {
            return;
        }
    }
}

/// The I2C bus: static pressure and pitot at 10 Hz, outside air at 2 Hz, CO2 when ready.
fn read_i2c_bus(
    scenario: &Scenario,
    flight: FlightClock,
    clock: AgentClock,
    tx: &Sender<Event>,
    stop: &AtomicBool,
) {
    let report = |sensor: Sensor, m: String| {
        let _ = tx.send(Event::Problem(sensor, m));
    };
    let static_sim = Ms5611Sim::new(0x77)
        .with_noise(11)
        .with_temperature_source(TemperatureSource::InstrumentBox);
    let outside_sim = Bme280Sim::new(0x76)
        .with_noise(12)
        .with_temperature_source(TemperatureSource::OutsideAir);
    let co2_sim = Scd41Sim::new(0x0A10_F7A1_2026, 13);
    let pitot_config = ms4525do::Config::default();
    let pitot_sim = Ms4525doSim::new(pitot_config, 14);
    let apply_all = |t_s: f64| {
        let state = scenario.state_at(t_s);
        static_sim.apply(&state);
        outside_sim.apply(&state);
        co2_sim.apply(&state);
        pitot_sim.apply(&state);
    };
    apply_all(flight.t_s());

    let mut static_delay = static_sim.delay();
    let mut static_drv = Ms5611::new(static_sim.clone(), 0x77);
    let mut outside_delay = outside_sim.delay();
    let mut outside_drv = Bme280::new(outside_sim.clone(), 0x76);
    let mut co2_drv = Scd41::new(co2_sim.clone(), co2_sim.delay());
    let mut pitot_drv = Ms4525do::new(
        pitot_sim.clone(),
        aloft_sensors::i2c::sim::NoopDelay,
        pitot_config,
    );

    let init = |sensor: Sensor, result: Result<SensorDescriptor, String>| match result {
        Ok(d) => tx.send(Event::Descriptor(sensor, d)).is_ok(),
        Err(e) => {
            report(sensor, format!("init failed: {e}"));
            false
        }
    };
    let static_ok = init(
        Sensor::Static,
        static_drv
            .init(&mut static_delay)
            .map(|()| static_drv.descriptor())
            .map_err(|e| e.to_string()),
    );
    let outside_ok = init(
        Sensor::OutsideAir,
        outside_drv
            .init(&mut outside_delay)
            .map(|()| outside_drv.descriptor())
            .map_err(|e| e.to_string()),
    );
    let co2_ok = init(
        Sensor::Co2,
        co2_drv
            .init()
            .map(|_| co2_drv.descriptor())
            .map_err(|e| e.to_string()),
    );
    let pitot_ok = init(
        Sensor::Pitot,
        pitot_drv
            .init()
            .map(|()| pitot_drv.descriptor())
            .map_err(|e| e.to_string()),
    );

    let period = Duration::from_millis(100);
    let mut latest_static: Option<(f64, Quality)> = None;
    let mut latest_outside: Option<(f64, Quality)> = None;
    let mut tick: u64 = 0;
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        apply_all(flight.t_s());
        let mut readings = Vec::new();
        let now = clock.now();
        if static_ok {
            match static_drv.measure(&mut static_delay) {
                Ok(m) => m.push_readings(Sensor::Static.id(), now, &mut readings),
                Err(e) => report(Sensor::Static, e.to_string()),
            }
        }
        if outside_ok && tick.is_multiple_of(5) {
            match outside_drv.measure(&mut outside_delay) {
                Ok(m) => m.push_readings(Sensor::OutsideAir.id(), now, &mut readings),
                Err(e) => report(Sensor::OutsideAir, e.to_string()),
            }
        }
        for r in &readings {
            match (Sensor::from_id(r.sensor), r.quantity) {
                (Some(Sensor::Static), Quantity::AirPressure) => {
                    latest_static = Some((r.value, r.quality))
                }
                (Some(Sensor::OutsideAir), Quantity::AirTemperature) => {
                    latest_outside = Some((r.value, r.quality))
                }
                _ => {}
            }
        }
        if pitot_ok {
            let air = latest_static
                .zip(latest_outside)
                .map(|((p, pq), (t, tq))| OutsideAir {
                    static_pressure_pa: p,
                    temperature_k: t,
                    quality: pq | tq,
                });
            let measured = match air {
                Some(air) => pitot_drv.measure_with_outside_air(air),
                None => pitot_drv.measure(),
            };
            match measured {
                Ok(m) => m.push_readings(Sensor::Pitot.id(), now, &mut readings),
                Err(e) => report(Sensor::Pitot, e.to_string()),
            }
        }
        if co2_ok && tick.is_multiple_of(5) {
            if let Some((p, _)) = latest_static
                && let Err(e) = co2_drv.set_ambient_pressure(p)
            {
                report(Sensor::Co2, format!("pressure compensation: {e}"));
            }
            match co2_drv.measurement() {
                Ok(m) => m.push_readings(Sensor::Co2.id(), now, &mut readings),
                Err(aloft_sensors::scd41::Error::NotReady) => {}
                Err(e) => report(Sensor::Co2, e.to_string()),
            }
        }
        if !readings.is_empty() && tx.send(Event::Readings(simulated(readings))).is_err() {
            return;
        }
        tick += 1;
        next += period;
        thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

/// What the screen knows: the newest reading of every (sensor, quantity).
#[derive(Default)]
struct Table {
    latest: BTreeMap<(Sensor, Quantity), Reading>,
    counts: BTreeMap<Sensor, u64>,
    descriptors: BTreeMap<Sensor, SensorDescriptor>,
    problems: BTreeMap<Sensor, (u64, String)>,
}

impl Table {
    fn take(&mut self, event: Event, out: &mut impl Write, live: bool) -> io::Result<()> {
        match event {
            Event::Readings(readings) => {
                for r in readings {
                    let Some(sensor) = Sensor::from_id(r.sensor) else {
                        continue;
                    };
                    *self.counts.entry(sensor).or_default() += 1;
                    self.latest.insert((sensor, r.quantity), r);
                }
            }
            Event::Descriptor(sensor, d) => {
                if !live {
                    writeln!(out, "{:<12} started: {}", sensor.name(), describe(&d))?;
                }
                self.descriptors.insert(sensor, d);
            }
            Event::Problem(sensor, message) => {
                if !live {
                    writeln!(out, "{:<12} problem: {message}", sensor.name())?;
                }
                let entry = self.problems.entry(sensor).or_insert((0, String::new()));
                *entry = (entry.0 + 1, message);
            }
        }
        Ok(())
    }

    fn render(&self, out: &mut impl Write, header: &str, now_mono_ns: u64) -> io::Result<()> {
        writeln!(out, "{header}")?;
        writeln!(
            out,
            "{:<12} {:<22} {:>14} {:<13} {:>6}  flags",
            "SENSOR", "QUANTITY", "VALUE", "UNIT", "AGE"
        )?;
        for ((sensor, quantity), r) in &self.latest {
            let age = now_mono_ns.saturating_sub(r.time.mono_ns) as f64 / 1e9;
            let flags: Vec<&str> = r.quality.names().filter(|n| *n != "simulated").collect();
            writeln!(
                out,
                "{:<12} {:<22} {:>14} {:<13} {:>5.1}s  {}",
                sensor.name(),
                quantity.name(),
                format_value(*quantity, r.value),
                quantity.unit(),
                age,
                flags.join(",")
            )?;
        }
        let counts: Vec<String> = Sensor::ALL
            .iter()
            .map(|s| format!("{} {}", s.name(), self.counts.get(s).copied().unwrap_or(0)))
            .collect();
        writeln!(out, "readings so far: {}", counts.join(", "))?;
        for (sensor, (n, last)) in &self.problems {
            writeln!(out, "{:<12} {n} problem(s), last: {last}", sensor.name())?;
        }
        Ok(())
    }
}

fn describe(d: &SensorDescriptor) -> String {
    let mut s = d.device.clone();
    if let Some(fw) = &d.firmware {
        s.push_str(&format!(", firmware {fw}"));
    }
    if let Some(sn) = &d.serial_number {
        s.push_str(&format!(", serial {sn}"));
    }
    if let Some(m) = d.dynamic_model {
        s.push_str(&format!(", dynamic model {m:?} confirmed"));
    }
    if !d.parameters.is_empty() {
        s.push_str(&format!(", {} device parameters", d.parameters.len()));
    }
    s
}

fn format_value(quantity: Quantity, value: f64) -> String {
    match quantity {
        Quantity::Latitude | Quantity::Longitude => format!("{value:.6}"),
        Quantity::Co2MoleFraction => format!("{value:.3e}"),
        Quantity::AirPressure | Quantity::DifferentialPressure => format!("{value:.1}"),
        _ => format!("{value:.3}"),
    }
}

/// How the demo shows what it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Screen {
    /// A terminal: the table redrawn in place every second.
    Live,
    /// A pipe or file: the table appended every second.
    Log,
    /// The smoke run: start-up events as they happen, the table once at the end.
    Summary,
}

fn show(
    rx: &Receiver<Event>,
    out: &mut impl Write,
    scenario: &Scenario,
    flight: FlightClock,
    duration: Option<Duration>,
    screen: Screen,
) -> Result<Table, DemoError> {
    let live = screen == Screen::Live;
    let started = Instant::now();
    let mut table = Table::default();
    let mut next_frame = started + Duration::from_secs(1);
    loop {
        if duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        match rx.recv_timeout(next_frame.saturating_duration_since(Instant::now())) {
            Ok(event) => table.take(event, out, live)?,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if Instant::now() >= next_frame {
            next_frame += Duration::from_secs(1);
            if screen != Screen::Summary {
                if live {
                    // Clear the terminal and redraw, like `watch`.
                    write!(out, "\x1b[2J\x1b[H")?;
                }
                let header = header(scenario, flight);
                table.render(out, &header, AgentClock::new().now().mono_ns)?;
                writeln!(out, "\nCtrl-C to stop.")?;
                out.flush()?;
            }
        }
    }
    let header = header(scenario, flight);
    table.render(out, &header, AgentClock::new().now().mono_ns)?;
    Ok(table)
}

fn header(scenario: &Scenario, flight: FlightClock) -> String {
    let t = flight.t_s();
    let state = scenario.state_at(t);
    let phase = match scenario.phase_at(t) {
        Phase::PreLaunch => "pre-launch",
        Phase::Tow => "tow",
        Phase::WaveClimb => "wave climb",
        Phase::Cruise => "cruise",
        Phase::Descent => "descent",
        Phase::Approach => "approach",
        Phase::Landed => "landed",
    };
    format!(
        "Aloft demo: simulated flight at t+{t:.0} s, {phase}, true altitude {:.0} m, outside air {:.1} °C",
        state.altitude_m,
        state.outside_air_k - 273.15
    )
}
