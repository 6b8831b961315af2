//! A CosmicWatch detector simulator (v2 or v3X) behind [`SerialDevice`].
//!
//! At boot it writes its version's header block, then one event line per detected
//! particle. Arrivals are a Poisson process at [`FlightState::muon_rate_per_s`]; the
//! detector is blind for each event's dead time, and because arrivals are memoryless the
//! next one is drawn from the end of that dead time. So events / live time estimates the
//! configured rate without bias, which is what the count-rate test relies on.
//!
//! Spectrum: the ADC codes of the real capture (`cosmicwatch-v2-slave-0deg.txt`) are
//! roughly flat from the trigger threshold (~30) to ~600, holding ~70 % of events, with a
//! peak near 650 (σ ≈ 40) holding ~30 % and a tail to ~860; the simulator draws from that
//! mixture. The v2 SiPM voltage follows the ADC-to-mV pairs of the same capture (piecewise
//! linear between them). The v3X's 12-bit code is the v2 code × 4 and its SiPM voltage is
//! 0.0706 mV per LSB (the factor CosmicWatch-open derived from the original v3X firmware).
//!
//! Dead time per event: v3X ≈ 400 µs, the original firmware's figure quoted by
//! CosmicWatch-open (FIRMWARE.md §4); v2 ≈ 3 ms, an estimate of its event loop (a
//! 12-term calibration polynomial in software floats, the serial print, and waiting for
//! the peak detector to discharge). v2 prints the dead time accumulated *before* the
//! event (as its sketch does), v3X including it.
//!
//! Invariant: the output is a pure function of the seed and the sequence of states.


use super::line::{Format, Imu, MuonEvent};
use crate::flight::{FlightState, Noise};
use crate::serial::SerialDevice;

/// The v2 header block, as in the real capture (its recorder prints `Device ID:`).
const V2_HEADER: &str = "#####################################################################################\r\n\
### CosmicWatch: The Desktop Muon Detector\r\n\
### Questions? saxani@mit.edu\r\n\
### Comp_date Comp_time Event Ardn_time[ms] ADC[0-1023] SiPM[mV] Deadtime[ms] Temp[C]\r\n\
#####################################################################################\r\n";

const V3X_RULE: &str = "###########################################################################################################################\r\n";
const V3X_TITLE: &str = "#                                     CosmicWatch: The Desktop Muon Detector v3X\r\n";
const V3X_LEGEND: &str = "# Event  Timestamp[s]  Flag  ADC[12b]  SiPM[mV]  Deadtime[s]  Temp[C]  Press[Pa]  Accel(X:Y:Z)[g]  Gyro(X:Y:Z)[deg/sec]  Name\r\n";

/// (ADC code, SiPM mV) pairs read off the real v2 capture, ascending.
const V2_SIPM_CURVE: [(f64, f64); 18] = [
    (31.0, 12.01),
    (49.0, 15.48),
    (99.0, 21.91),
    (152.0, 26.78),
    (199.0, 33.86),
    (248.0, 42.69),
    (300.0, 52.79),
    (352.0, 66.89),
    (399.0, 87.30),
    (449.0, 112.05),
    (499.0, 141.24),
    (551.0, 164.56),
    (600.0, 203.87),
    (649.0, 269.34),
    (700.0, 294.28),
    (755.0, 529.80),
    (799.0, 620.61),
    (856.0, 997.78),
];

/// v3X SiPM mV per ADC LSB.
const V3X_MV_PER_LSB: f64 = 0.0706;

/// Longest command line the v3X simulator buffers.
const MAX_COMMAND_LEN: usize = 64;

/// The state of the current run (from one boot to the next).
#[derive(Debug, Clone)]
struct Run {
    /// Flight time of the boot, s: detector time 0.
    boot_t_s: f64,
    /// Flight time from which the next arrival is drawn (end of the last dead time, or
    /// the last tick while the rate was zero).
    live_from_t_s: f64,
    /// Flight time of the next arrival, once drawn.
    next_event_t_s: Option<f64>,
    /// Events sent in this run.
    events: u64,
    /// Cumulative dead time, s.
    dead_s: f64,
}

/// A simulated CosmicWatch detector.
#[derive(Debug, Clone)]
pub struct CosmicWatchSim {
    format: Format,
    name: String,
    noise: Noise,
    run: Option<Run>,
    command: Vec<u8>,
}

impl CosmicWatchSim {
    /// A detector of `format` named `name`, with noise from `seed`. It boots (writes its
    /// header) at the first tick.
    pub fn new(format: Format, name: impl Into<String>, seed: u64) -> Self {
        CosmicWatchSim {
            format,
            name: name.into(),
            noise: Noise::new(seed),
            run: None,
            command: Vec::new(),
        }
    }

    /// The simulated firmware generation.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The detector's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Events sent since the last boot.
    pub fn events_sent(&self) -> u64 {
        self.run.as_ref().map_or(0, |r| r.events)
    }

    /// Restarts the detector: counters and clock restart and the header is sent again at
    /// the next tick.
    pub fn reboot(&mut self) {
        self.run = None;
    }

    /// Like [`SerialDevice::tick`], and also appends each event sent to `events`, so that
    /// tests can compare what was sent with what was parsed.
    pub fn tick_events(&mut self, state: &FlightState, out: &mut Vec<u8>, events: &mut Vec<MuonEvent>) {
        if self.run.is_none() {
            self.write_header(out);
            self.run = Some(Run {
                boot_t_s: state.t_s,
                live_from_t_s: state.t_s,
                next_event_t_s: None,
                events: 0,
                dead_s: 0.0,
            });
        }
        let Some(run) = self.run.as_mut() else {
            return;
        };
        let rate = state.muon_rate_per_s;
        let mut line = String::new();
        loop {
            if !(rate > 0.0 && rate.is_finite()) {
                // No arrivals; draw afresh from here once the rate is positive again.
                run.next_event_t_s = None;
                run.live_from_t_s = run.live_from_t_s.max(state.t_s);
                return;
            }
            let t = match run.next_event_t_s {
                Some(t) => t,
                None => *run
                    .next_event_t_s
                    .insert(run.live_from_t_s + self.noise.exponential(1.0 / rate)),
            };
            if t > state.t_s {
                return;
            }
            let dead = match self.format {
                Format::V2 => (0.003 + self.noise.gaussian(0.0005)).max(0.001),
                Format::V3x => (0.0004 + self.noise.gaussian(0.00005)).max(0.0001),
            };
            run.events += 1;
            let dead_before = run.dead_s;
            run.dead_s += dead;
            run.live_from_t_s = t + dead;
            run.next_event_t_s = None;
            let event = event_at(
                self.format,
                &mut self.noise,
                state,
                run.events,
                t - run.boot_t_s,
                match self.format {
                    Format::V2 => dead_before,
                    Format::V3x => run.dead_s,
                },
            );
            line.clear();
            let name = (self.format == Format::V3x).then_some(self.name.as_str());
            // Writing into a String cannot fail.
            let _ = event.write_line(name, &mut line);
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
            events.push(event);
        }
    }

    fn write_header(&self, out: &mut Vec<u8>) {
        match self.format {
            Format::V2 => {
                out.extend_from_slice(V2_HEADER.as_bytes());
                out.extend_from_slice(format!("Device ID: {}\r\n", self.name).as_bytes());
            }
            Format::V3x => {
                out.extend_from_slice(V3X_RULE.as_bytes());
                out.extend_from_slice(V3X_TITLE.as_bytes());
                out.extend_from_slice(
                    format!(
                        "#                                                 Detector Name: {}\r\n",
                        self.name
                    )
                    .as_bytes(),
                );
                out.extend_from_slice(V3X_LEGEND.as_bytes());
                out.extend_from_slice(V3X_RULE.as_bytes());
            }
        }
    }
}

/// Draws one event's measured values.
fn event_at(
    format: Format,
    noise: &mut Noise,
    state: &FlightState,
    event: u64,
    detector_time_s: f64,
    dead_time_s: f64,
) -> MuonEvent {
    // The spectrum of the real capture: a flat part and a peak near 650.
    let adc10 = if noise.chance(0.3) {
        650.0 + noise.gaussian(40.0)
    } else {
        30.0 + 570.0 * noise.uniform()
    };
    let adc10 = adc10.round().clamp(25.0, 1023.0);
    match format {
        Format::V2 => MuonEvent {
            format,
            event,
            detector_time_s,
            adc: adc10 as u16,
            sipm_peak_v: v2_sipm_mv(adc10) / 1000.0,
            dead_time_s,
            temperature_k: Some(state.box_temperature_k + noise.gaussian(0.3)),
            coincidence: None,
            pressure_pa: None,
            imu: None,
        },
        Format::V3x => {
            let adc = (adc10 * 4.0 + (noise.uniform() * 4.0).floor()).min(4095.0);
            let g = 9.806_65;
            MuonEvent {
                format,
                event,
                detector_time_s,
                adc: adc as u16,
                sipm_peak_v: adc * V3X_MV_PER_LSB / 1000.0,
                dead_time_s,
                temperature_k: Some(state.box_temperature_k + noise.gaussian(0.1)),
                // A lone detector: the coincidence line is idle.
                coincidence: Some(false),
                pressure_pa: Some(state.pressure_pa + noise.gaussian(3.0)),
                imu: Some(Imu {
                    acceleration_mps2: [
                        noise.gaussian(0.01 * g),
                        noise.gaussian(0.01 * g),
                        g + noise.gaussian(0.01 * g),
                    ],
                    angular_rate_rad_s: [
                        noise.gaussian(0.3_f64.to_radians()),
                        noise.gaussian(0.3_f64.to_radians()),
                        noise.gaussian(0.3_f64.to_radians()),
                    ],
                }),
            }
        }
    }
}

/// SiPM mV for a v2 ADC code, interpolated along the capture's pairs (flat beyond them).
fn v2_sipm_mv(adc: f64) -> f64 {
    let mut prev = V2_SIPM_CURVE[0];
    if adc <= prev.0 {
        return prev.1;
    }
    for &(x, y) in &V2_SIPM_CURVE[1..] {
        if adc <= x {
            return prev.1 + (y - prev.1) * (adc - prev.0) / (x - prev.0);
        }
        prev = (x, y);
    }
    prev.1
}

impl SerialDevice for CosmicWatchSim {
    fn baud(&self) -> u32 {
        self.format.baud()
    }

    fn tick(&mut self, state: &FlightState, out: &mut Vec<u8>) {
        let mut events = Vec::new();
        self.tick_events(state, out, &mut events);
    }

    /// The v2 sketch reads nothing. The v3X accepts text commands ending in CR or LF;
    /// `reboot` restarts it (as CosmicWatch-open's command set has it), others are ignored.
    fn receive(&mut self, bytes: &[u8], _out: &mut Vec<u8>) {
        if self.format == Format::V2 {
            return;
        }
        for &b in bytes {
            if b == b'\r' || b == b'\n' {
                if self.command.trim_ascii() == b"reboot" {
                    self.reboot();
                }
                self.command.clear();
            } else if self.command.len() < MAX_COMMAND_LEN {
                self.command.push(b);
            }
        }
    }
}
