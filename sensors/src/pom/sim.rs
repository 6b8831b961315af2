//! A Personal Ozone Monitor simulator behind [`SerialDevice`]: one data line per averaging
//! period, following the simulated flight.
//!
//! The ozone is the flight's [`crate::flight::AirComposition::ozone_mol_mol`] at the line's
//! time with the photometer's noise (1 sigma the greater of 1.5 ppb and 2 % of the reading,
//! the monitor's stated precision); the cell pressure is the ambient (static) pressure less
//! the 1 % the pump's suction takes, with 0.5 mbar of noise; the cell sits in the heated
//! instrument box and the UV lamp warms it 4 K above the box; the flow is 1000 cc/min
//! ± 10. Date and time come from the flight's UTC. Lines go out at the line's averaging
//! period from the first tick.
//!
//! Faults ([`PomFaults`], a handle that stays with the test while the simulator runs in its
//! port's thread): garbled lines (a byte of the next lines replaced by noise), dropped
//! bytes (a run of bytes missing from the next lines, as an overrun UART loses them), a
//! stalled monitor (no line at all until released, its firmware hung), and the zero-flow
//! alarm (the pump stopped: the flow reads 0 and the ozone in the unflushed cell drifts).
//!
//! Invariant: the output is a pure function of the seed, the faults and the states.

use std::sync::{Arc, Mutex, MutexGuard};

use super::DEFAULT_BAUD;
use super::line::{DataLine, Units};
use crate::flight::{FlightState, Noise};
use crate::serial::SerialDevice;

/// The faults of one simulated monitor, shared with whoever injects them.
#[derive(Debug, Clone, Default)]
pub struct PomFaults(Arc<Mutex<FaultState>>);

#[derive(Debug, Default)]
struct FaultState {
    garble_lines: u32,
    drop_lines: u32,
    stalled: bool,
    zero_flow: bool,
}

impl PomFaults {
    fn lock(&self) -> MutexGuard<'_, FaultState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Garbles one byte in each of the next `lines` lines.
    pub fn garble_next(&self, lines: u32) {
        self.lock().garble_lines = lines;
    }

    /// Drops a run of bytes from each of the next `lines` lines.
    pub fn drop_bytes_next(&self, lines: u32) {
        self.lock().drop_lines = lines;
    }

    /// Hangs the monitor (no lines) or releases it.
    pub fn set_stalled(&self, stalled: bool) {
        self.lock().stalled = stalled;
    }

    /// Stops the pump (zero-flow alarm) or restarts it.
    pub fn set_zero_flow(&self, on: bool) {
        self.lock().zero_flow = on;
    }

    /// Ends every fault.
    pub fn clear(&self) {
        *self.lock() = FaultState::default();
    }
}

/// A simulated Personal Ozone Monitor.
#[derive(Debug)]
pub struct PomSim {
    baud: u32,
    averaging_s: f64,
    units: Units,
    noise: Noise,
    next_line_t_s: Option<f64>,
    faults: PomFaults,
    lines: u64,
}

impl PomSim {
    /// A monitor at `baud`, averaging `averaging_s` per line, writing in `units`, with
    /// noise from `seed`.
    pub fn new(baud: u32, averaging_s: u32, units: Units, seed: u64) -> Self {
        PomSim {
            baud,
            averaging_s: f64::from(averaging_s.max(1)),
            units,
            noise: Noise::new(seed),
            next_line_t_s: None,
            faults: PomFaults::default(),
            lines: 0,
        }
    }

    /// The factory setup: 2400 baud, 2 s lines, °C and mbar.
    pub fn with_seed(seed: u64) -> Self {
        PomSim::new(DEFAULT_BAUD, 2, Units::default(), seed)
    }

    /// The handle that injects faults into this monitor.
    pub fn faults(&self) -> PomFaults {
        self.faults.clone()
    }

    /// Data lines written so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// The line the monitor writes for `state`, faults aside (the pump's state included).
    pub fn data_line(&mut self, state: &FlightState, zero_flow: bool) -> DataLine {
        let ppb = state.air.ozone_mol_mol * 1e9;
        let sigma = (0.02 * ppb.abs()).max(1.5);
        let mut ozone = ppb + self.noise.gaussian(sigma);
        let flow = if zero_flow {
            // The unflushed cell holds old air that the lamp's ozone-free zero drifts from.
            ozone += 15.0 + self.noise.gaussian(10.0);
            0.0
        } else {
            1_000.0 + self.noise.gaussian(10.0)
        };
        let cell_k = state.box_temperature_k + 4.0 + self.noise.gaussian(0.1);
        let cell_pa = state.pressure_pa * 0.99 + self.noise.gaussian(50.0);
        let (date, time) = civil(state.utc_ns);
        DataLine {
            log: None,
            ozone_ppb: ozone,
            cell_temperature: self.units.temperature_on_line(cell_k),
            cell_pressure: self.units.pressure_on_line(cell_pa),
            flow_cc_min: flow,
            date,
            time,
        }
    }
}

/// Day, month, two-digit year and hour, minute, second of a UTC time in ns since 1970.
fn civil(utc_ns: i64) -> ((u8, u8, u8), (u8, u8, u8)) {
    let secs = utc_ns.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let u = |v: i64| u8::try_from(v).unwrap_or(0);
    (
        (u(d), u(m), u(y.rem_euclid(100))),
        (u(sod / 3_600), u(sod / 60 % 60), u(sod % 60)),
    )
}

impl SerialDevice for PomSim {
    fn baud(&self) -> u32 {
        self.baud
    }

    fn tick(&mut self, state: &FlightState, out: &mut Vec<u8>) {
        let due = *self
            .next_line_t_s
            .get_or_insert(state.t_s + self.averaging_s);
        if state.t_s < due {
            return;
        }
        // Periods missed while the port was not ticked give one line, as an average would.
        let periods = ((state.t_s - due) / self.averaging_s).floor().max(0.0) + 1.0;
        self.next_line_t_s = Some(due + periods * self.averaging_s);
        let (stalled, zero_flow, garble, drop) = {
            let mut f = self.faults.lock();
            let garble = f.garble_lines > 0;
            f.garble_lines = f.garble_lines.saturating_sub(1);
            let drop = f.drop_lines > 0;
            f.drop_lines = f.drop_lines.saturating_sub(1);
            (f.stalled, f.zero_flow, garble, drop)
        };
        if stalled {
            return;
        }
        let mut line = self.data_line(state, zero_flow).format().into_bytes();
        let n = line.len();
        if garble && n > 2 {
            // Never the first byte: a letter there would read as one of the monitor's messages.
            let at = 1 + usize::try_from(self.noise.next_u64() % (n as u64 - 1)).unwrap_or(0);
            if let Some(b) = line.get_mut(at) {
                // A letter where a digit, comma or slash was: the parser refuses it.
                *b = b'A' + (self.noise.next_u64() % 26) as u8;
            }
        }
        if drop && n > 8 {
            let at = usize::try_from(self.noise.next_u64() % (n as u64 - 8)).unwrap_or(0);
            line.drain(at..at + 6);
        }
        line.extend_from_slice(b"\r\n");
        out.extend_from_slice(&line);
        self.lines += 1;
    }

    fn receive(&mut self, _bytes: &[u8], _out: &mut Vec<u8>) {
        // The monitor's serial menu is for people at a terminal; the agent sends nothing.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pom::line::parse_line;
    use crate::pom::{OzoneStream, StreamItem};
    use aloft_protocol::{Quality, Quantity, SensorId, Timestamp};

    fn state(altitude_m: f64, t_s: f64) -> FlightState {
        let mut s = crate::flight::isa_state(altitude_m, t_s);
        s.air.ozone_mol_mol = crate::flight::scenario::ozone_mol_mol(altitude_m, 0.0);
        s.utc_ns = 1_796_670_000_000_000_000 + (t_s * 1e9) as i64;
        s
    }

    fn run(sim: &mut PomSim, from_s: f64, to_s: f64, altitude_m: f64) -> Vec<u8> {
        let mut out = Vec::new();
        let mut t = from_s;
        while t <= to_s {
            sim.tick(&state(altitude_m, t), &mut out);
            t += 0.1;
        }
        out
    }

    #[test]
    fn a_line_every_averaging_period_that_parses_to_the_truth() {
        let mut sim = PomSim::with_seed(1);
        let bytes = run(&mut sim, 0.0, 20.05, 1_000.0);
        assert_eq!(sim.lines(), 10);
        let truth = crate::flight::scenario::ozone_mol_mol(1_000.0, 0.0) * 1e9;
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let l = parse_line(line).expect("a data line");
            assert!(
                (l.ozone_ppb - truth).abs() < 8.0,
                "{} vs {truth}",
                l.ozone_ppb
            );
            let p = crate::atmosphere::pressure_pa(1_000.0) * 0.99 / 100.0;
            assert!((l.cell_pressure - p).abs() < 3.0);
            assert!((l.cell_temperature - 24.0).abs() < 1.0);
            assert!(l.date.2 < 100 && l.time.0 < 24);
        }
    }

    #[test]
    fn ozone_rises_towards_the_tropopause() {
        let mut sim = PomSim::with_seed(2);
        let mean = |sim: &mut PomSim, h: f64, t0: f64| {
            let bytes = run(sim, t0, t0 + 40.0, h);
            let v: Vec<f64> = bytes
                .split(|&b| b == b'\n')
                .filter_map(|l| parse_line(l).ok())
                .map(|l| l.ozone_ppb)
                .collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        let low = mean(&mut sim, 1_000.0, 0.0);
        let high = mean(&mut sim, 11_500.0, 100.0);
        assert!(high > 3.0 * low, "{low} ppb low, {high} ppb high");
    }

    #[test]
    fn civil_time_is_the_calendar() {
        // 2026-12-07T18:31:05Z.
        assert_eq!(civil(1_796_668_265_000_000_000), ((7, 12, 26), (18, 31, 5)));
        assert_eq!(civil(0), ((1, 1, 70), (0, 0, 0)));
    }

    #[test]
    fn faults_garble_drop_stall_and_stop_the_pump() {
        let mut sim = PomSim::with_seed(3);
        let faults = sim.faults();
        let mut stream = OzoneStream::new(Units::default());
        let mut feed = |bytes: &[u8]| {
            let mut items = Vec::new();
            let mut out = Vec::new();
            stream.push_bytes(bytes, SensorId(1), Timestamp::monotonic(1), &mut out, |i| {
                items.push(i)
            });
            (items, out)
        };
        faults.garble_next(3);
        let (items, _) = feed(&run(&mut sim, 0.0, 6.5, 1_000.0));
        assert_eq!(items.len(), 3);
        assert!(
            items.iter().all(|i| matches!(i, StreamItem::Bad(_))),
            "{items:?}"
        );
        faults.drop_bytes_next(3);
        let (items, _) = feed(&run(&mut sim, 6.6, 12.5, 1_000.0));
        assert!(
            items.iter().all(|i| !matches!(i, StreamItem::Sample(_))),
            "{items:?}"
        );
        faults.set_stalled(true);
        assert!(run(&mut sim, 12.6, 30.0, 1_000.0).is_empty());
        faults.clear();
        faults.set_zero_flow(true);
        let (_, out) = feed(&run(&mut sim, 30.1, 32.5, 1_000.0));
        let ozone = out
            .iter()
            .find(|r| r.quantity == Quantity::OzoneMoleFraction)
            .expect("a line");
        assert!(ozone.quality.contains(Quality::OUT_OF_RANGE));
        faults.clear();
        let (items, _) = feed(&run(&mut sim, 32.6, 34.5, 1_000.0));
        assert!(
            matches!(items.as_slice(), [StreamItem::Sample(_)]),
            "{items:?}"
        );
    }
}
