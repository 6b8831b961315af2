//! A u-blox receiver simulator (NEO-M8N, or a generation 9 receiver) that speaks NMEA and
//! UBX on one serial line.
//!
//! Each navigation epoch (default 10 Hz) it emits the enabled NMEA sentences (GNRMC,
//! GNVTG, GNGGA, two GNGSA, GPGSV and GLGSV, GNGLL, as an M8N in its default multi-GNSS
//! setup) and UBX NAV-PVT, or instead of NAV-PVT the legacy set of older and timing
//! receivers (NAV-POSLLH, NAV-SOL, NAV-VELNED, NAV-TIMEUTC, in the receiver's id order),
//! and optionally HNR-PVT, from the true [`FlightState`] plus seeded noise at the
//! datasheet's level: 2.5 m CEP horizontal and about twice that vertically, as a slowly
//! wandering (Gauss-Markov, 60 s) error like a real receiver's, and 0.05 m/s white noise on
//! velocity. It answers CFG-NAV5 poll/set, CFG-VALSET/VALGET and MON-VER polls with ACK or
//! NAK as the receiver does.
//!
//! Invariants: the simulator boots in the Portable model and returns to it on
//! [`UbloxSim::brown_out`]; in Portable it reports no fix above 12 000 m or 310 m/s (GGA
//! quality 0, RMC status V, NAV-PVT fixType 0, no position), which is the failure Aloft's
//! configuration exists to prevent; with one seed and one sequence of states and commands
//! it emits the same bytes.

use aloft_protocol::DynamicModel;

use super::framer::{GnssFramer, Item};
use super::nmea::checksum as nmea_checksum;
use super::ubx::{
    self, Ack, CfgNav5, CfgValGet, CfgValSet, ConfigValue, FLAG_GNSS_FIX_OK, HnrPvt,
    KEY_NAVSPG_DYNMODEL, MonVer, NAV5_MASK_DYN, NavPosllh, NavPvt, NavSol, NavTimeUtc, NavVelned,
    msg, sol_flags, timeutc_valid, valid,
};
use crate::flight::{FlightState, Noise};
use crate::serial::SerialDevice;

/// Which receiver generation the simulator behaves as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// u-blox M8 (NEO-M8N, protocol 18): CFG-NAV5; NAKs CFG-VALSET/VALGET.
    M8,
    /// u-blox M9/M10: CFG-VALSET/VALGET only; NAKs CFG-NAV5.
    Gen9,
}

/// How the simulator answers commands, for tests of the host's failure paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandBehaviour {
    /// As the receiver does.
    Answer,
    /// NAK every UBX message received.
    NakAll,
    /// Never answer (navigation output goes on).
    Ignore,
}

/// Which messages the receiver emits each epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outputs {
    /// NMEA RMC.
    pub rmc: bool,
    /// NMEA VTG.
    pub vtg: bool,
    /// NMEA GGA.
    pub gga: bool,
    /// NMEA GSA (one per constellation).
    pub gsa: bool,
    /// NMEA GSV (GPS and GLONASS).
    pub gsv: bool,
    /// NMEA GLL.
    pub gll: bool,
    /// UBX NAV-PVT.
    pub nav_pvt: bool,
    /// The legacy UBX set of receivers without NAV-PVT: NAV-POSLLH, NAV-SOL, NAV-VELNED
    /// and NAV-TIMEUTC.
    pub legacy_nav: bool,
    /// UBX HNR-PVT (here at the navigation rate).
    pub hnr_pvt: bool,
}

impl Outputs {
    /// Every output enabled.
    pub const ALL: Outputs = Outputs {
        rmc: true,
        vtg: true,
        gga: true,
        gsa: true,
        gsv: true,
        gll: true,
        nav_pvt: true,
        legacy_nav: false,
        hnr_pvt: false,
    };
    /// Only UBX NAV-PVT.
    pub const NAV_PVT_ONLY: Outputs = Outputs {
        rmc: false,
        vtg: false,
        gga: false,
        gsa: false,
        gsv: false,
        gll: false,
        nav_pvt: true,
        legacy_nav: false,
        hnr_pvt: false,
    };
    /// Only the legacy UBX set (a receiver that has no NAV-PVT, e.g. a u-blox 6 or a
    /// LEA-M8T in its timing setup).
    pub const LEGACY_NAV_ONLY: Outputs = Outputs {
        rmc: false,
        vtg: false,
        gga: false,
        gsa: false,
        gsv: false,
        gll: false,
        nav_pvt: false,
        legacy_nav: true,
        hnr_pvt: false,
    };
}

impl Default for Outputs {
    fn default() -> Self {
        Outputs::ALL
    }
}

/// Settings of a simulated receiver.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct UbloxSimConfig {
    /// Seed of the receiver's noise.
    pub seed: u64,
    /// Navigation rate, Hz (10 by default; a rate of zero or less runs at 1 Hz).
    pub rate_hz: f64,
    /// Line rate (115 200 by default: 10 Hz NMEA plus NAV-PVT is about 25 kB/s, far over
    /// what 9600 baud carries).
    pub baud: u32,
    /// Receiver generation.
    pub generation: Generation,
    /// Command answering.
    pub commands: CommandBehaviour,
    /// Messages emitted each epoch.
    pub outputs: Outputs,
}

impl Default for UbloxSimConfig {
    fn default() -> Self {
        UbloxSimConfig {
            seed: 0x6E55,
            rate_hz: 10.0,
            baud: 115_200,
            generation: Generation::M8,
            commands: CommandBehaviour::Answer,
            outputs: Outputs::ALL,
        }
    }
}

impl UbloxSimConfig {
    /// Builder: receiver generation.
    pub fn with_generation(mut self, generation: Generation) -> Self {
        self.generation = generation;
        self
    }
    /// Builder: command answering.
    pub fn with_commands(mut self, commands: CommandBehaviour) -> Self {
        self.commands = commands;
        self
    }
    /// Builder: outputs.
    pub fn with_outputs(mut self, outputs: Outputs) -> Self {
        self.outputs = outputs;
        self
    }
    /// Builder: navigation rate, Hz.
    pub fn with_rate_hz(mut self, rate_hz: f64) -> Self {
        self.rate_hz = rate_hz;
        self
    }
    /// Builder: noise seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Builder: line rate.
    pub fn with_baud(mut self, baud: u32) -> Self {
        self.baud = baud;
        self
    }
}

/// Horizontal error per axis: a 2.5 m CEP is 1.1774 sigma of a circular Gaussian.
const SIGMA_HORIZONTAL_M: f64 = 2.5 / 1.1774;
/// Vertical error: about twice the horizontal.
const SIGMA_VERTICAL_M: f64 = 2.0 * SIGMA_HORIZONTAL_M;
/// Velocity noise per axis.
const SIGMA_VELOCITY_MPS: f64 = 0.05;
/// Correlation time of the position error.
const POSITION_ERROR_TAU_S: f64 = 60.0;
/// Epochs emitted at most when the simulator is ticked late: a receiver does not queue.
const MAX_CATCH_UP_EPOCHS: u64 = 10;
/// Mean Earth radius for turning metres of error into degrees.
const EARTH_RADIUS_M: f64 = 6_371_000.0;
/// GPS time minus UTC (leap seconds since 1980, as of 2017 onwards).
const GPS_LEAP_S: i64 = 18;
/// The GPS epoch 1980-01-06 in Unix seconds.
const GPS_EPOCH_UNIX_S: i64 = 315_964_800;
const KNOTS_PER_MPS: f64 = 3600.0 / 1852.0;

/// Satellites in view: (NMEA number, elevation, azimuth at t = 0). GPS 1-32, GLONASS 65-96.
const GPS_SKY: [(u16, f64, f64); 10] = [
    (2, 64.0, 41.0),
    (5, 19.0, 284.0),
    (7, 33.0, 94.0),
    (8, 12.0, 141.0),
    (9, 42.0, 29.0),
    (13, 39.0, 226.0),
    (17, 32.0, 8.0),
    (19, 15.0, 357.0),
    (28, 77.0, 211.0),
    (30, 63.0, 135.0),
];
const GLONASS_SKY: [(u16, f64, f64); 6] = [
    (65, 8.0, 262.0),
    (71, 43.0, 255.0),
    (72, 51.0, 209.0),
    (80, 41.0, 141.0),
    (82, 34.0, 107.0),
    (83, 26.0, 45.0),
];
/// Satellites below this elevation are tracked but not used.
const ELEVATION_MASK_DEG: f64 = 10.0;

/// The simulated receiver.
#[derive(Debug)]
pub struct UbloxSim {
    config: UbloxSimConfig,
    model: DynamicModel,
    noise: Noise,
    /// Position error north, east, up (m), wandering between epochs.
    error: [f64; 3],
    next_epoch: Option<u64>,
    commands_in: GnssFramer,
}

impl UbloxSim {
    /// A receiver just powered up: Portable model, no epoch emitted yet.
    pub fn new(config: UbloxSimConfig) -> Self {
        let mut noise = Noise::new(config.seed);
        let error = [
            noise.gaussian(SIGMA_HORIZONTAL_M),
            noise.gaussian(SIGMA_HORIZONTAL_M),
            noise.gaussian(SIGMA_VERTICAL_M),
        ];
        UbloxSim {
            config,
            model: DynamicModel::Portable,
            noise,
            error,
            next_epoch: None,
            commands_in: GnssFramer::new(),
        }
    }

    /// The simulator's settings.
    pub fn config(&self) -> &UbloxSimConfig {
        &self.config
    }

    /// Changes how commands are answered (a receiver that stops answering mid-flight).
    pub fn set_commands(&mut self, commands: CommandBehaviour) {
        self.config.commands = commands;
    }

    /// The dynamic model in force.
    pub fn dynamic_model(&self) -> DynamicModel {
        self.model
    }

    /// A supply dip: the receiver restarts with its default configuration (Portable).
    pub fn brown_out(&mut self) {
        self.model = DynamicModel::Portable;
    }

    /// Whether the receiver keeps its fix at this state in its current model. u-blox
    /// documents Portable's limits as 12 000 m and 310 m/s; the airborne models go to
    /// 50 km. Other models' tighter limits are not modelled.
    pub fn has_fix_at(&self, state: &FlightState) -> bool {
        let speed = state.ground_speed_mps.hypot(state.vertical_speed_mps);
        match self.model {
            DynamicModel::Airborne1g | DynamicModel::Airborne2g | DynamicModel::Airborne4g => {
                state.altitude_m <= 50_000.0
            }
            _ => state.altitude_m <= 12_000.0 && speed <= 310.0,
        }
    }

    fn epoch_period_s(&self) -> f64 {
        if self.config.rate_hz > 0.0 {
            1.0 / self.config.rate_hz
        } else {
            1.0
        }
    }

    fn emit_epoch(&mut self, state: &FlightState, utc_ns: i64, out: &mut Vec<u8>) {
        let dt = self.epoch_period_s();
        let a = (-dt / POSITION_ERROR_TAU_S).exp();
        let b = (1.0 - a * a).sqrt();
        let sigmas = [SIGMA_HORIZONTAL_M, SIGMA_HORIZONTAL_M, SIGMA_VERTICAL_M];
        for (e, s) in self.error.iter_mut().zip(sigmas) {
            *e = a * *e + b * self.noise.gaussian(s);
        }
        let [err_n, err_e, err_u] = self.error;
        let fix = self.has_fix_at(state).then(|| {
            let lat = state.latitude_deg + (err_n / EARTH_RADIUS_M).to_degrees();
            let coslat = state.latitude_deg.to_radians().cos().max(1e-6);
            let lon = state.longitude_deg + (err_e / (EARTH_RADIUS_M * coslat)).to_degrees();
            let track = state.track_deg.to_radians();
            let vel_n =
                state.ground_speed_mps * track.cos() + self.noise.gaussian(SIGMA_VELOCITY_MPS);
            let vel_e =
                state.ground_speed_mps * track.sin() + self.noise.gaussian(SIGMA_VELOCITY_MPS);
            let vel_u = state.vertical_speed_mps + self.noise.gaussian(SIGMA_VELOCITY_MPS);
            Solution {
                lat,
                lon,
                alt: state.altitude_m + err_u,
                geoid: state.geoid_separation_m,
                vel_n,
                vel_e,
                vel_u,
            }
        });
        let sky = Sky::at(state.t_s, &mut self.noise);
        let utc = Utc::from_ns(utc_ns);
        let o = self.config.outputs;
        if o.rmc {
            rmc(&utc, fix.as_ref(), out);
        }
        if o.vtg {
            vtg(fix.as_ref(), out);
        }
        if o.gga {
            gga(&utc, fix.as_ref(), &sky, out);
        }
        if o.gsa {
            gsa(fix.as_ref(), &sky, out);
        }
        if o.gsv {
            gsv("GP", &sky.gps, out);
            gsv("GL", &sky.glonass, out);
        }
        if o.gll {
            gll(&utc, fix.as_ref(), out);
        }
        let pvt = nav_pvt(utc_ns, fix.as_ref(), &sky);
        if o.nav_pvt {
            out.extend(pvt.to_bytes());
        }
        if o.legacy_nav {
            legacy_nav(&pvt, utc_ns, out);
        }
        if o.hnr_pvt {
            out.extend(hnr_pvt(&pvt).to_bytes());
        }
    }

    fn answer(&mut self, kind: (u8, u8), payload: &[u8], out: &mut Vec<u8>) {
        let reply = |accepted: bool, out: &mut Vec<u8>| {
            out.extend(
                Ack {
                    acked: kind,
                    accepted,
                }
                .to_bytes(),
            );
        };
        match self.config.commands {
            CommandBehaviour::Ignore => return,
            CommandBehaviour::NakAll => return reply(false, out),
            CommandBehaviour::Answer => {}
        }
        let frame = ubx::Frame::new(kind, payload);
        let gen9 = self.config.generation == Generation::Gen9;
        match kind {
            msg::CFG_NAV5 if gen9 => reply(false, out),
            msg::CFG_NAV5 if payload.is_empty() => {
                let current = CfgNav5 {
                    mask: 0xFFFF,
                    dyn_model: self.model.code(),
                    // fixMode auto (3), then the rest of the receiver's defaults left zero.
                    rest: nav5_defaults(),
                };
                out.extend(current.to_bytes());
                reply(true, out);
            }
            msg::CFG_NAV5 => match CfgNav5::decode(&frame) {
                Ok(set) if set.mask & NAV5_MASK_DYN == 0 => reply(true, out),
                Ok(set) => match set.dynamic_model() {
                    Some(model) => {
                        self.model = model;
                        reply(true, out);
                    }
                    None => reply(false, out),
                },
                Err(_) => reply(false, out),
            },
            msg::CFG_VALSET if !gen9 => reply(false, out),
            msg::CFG_VALSET => {
                let model = CfgValSet::decode(&frame).ok().and_then(|set| {
                    let [item] = set.items.as_slice() else {
                        return None;
                    };
                    let code = u8::try_from(item.value).ok()?;
                    (item.key == KEY_NAVSPG_DYNMODEL)
                        .then(|| DynamicModel::from_code(code))
                        .flatten()
                        .map(|m| (m, set.layers))
                });
                match model {
                    Some((m, layers)) => {
                        if layers & ubx::layer::RAM != 0 {
                            self.model = m;
                        }
                        reply(true, out);
                    }
                    None => reply(false, out),
                }
            }
            msg::CFG_VALGET if !gen9 => reply(false, out),
            msg::CFG_VALGET => match CfgValGet::decode(&frame) {
                Ok(CfgValGet::Poll { layer, keys }) if keys == [KEY_NAVSPG_DYNMODEL] => {
                    let items = vec![ConfigValue {
                        key: KEY_NAVSPG_DYNMODEL,
                        value: self.model.code().into(),
                    }];
                    out.extend(CfgValGet::Response { layer, items }.to_bytes());
                    reply(true, out);
                }
                _ => reply(false, out),
            },
            msg::MON_VER if payload.is_empty() => out.extend(self.mon_ver().to_bytes()),
            (0x06, _) => reply(false, out),
            _ => {}
        }
    }

    fn mon_ver(&self) -> MonVer {
        let (sw, hw, ext): (&str, &str, &[&str]) = match self.config.generation {
            Generation::M8 => (
                "ROM CORE 3.01 (107888)",
                "00080000",
                &[
                    "FWVER=SPG 3.01",
                    "PROTVER=18.00",
                    "GPS;GLO;GAL;BDS",
                    "SBAS;IMES;QZSS",
                    "MOD=NEO-M8N",
                ],
            ),
            Generation::Gen9 => (
                "EXT CORE 4.04 (7f89f7)",
                "00190000",
                &[
                    "ROM BASE 0x118B2060",
                    "FWVER=SPG 4.04",
                    "PROTVER=32.01",
                    "MOD=NEO-M9N",
                    "GPS;GLO;GAL;BDS",
                ],
            ),
        };
        MonVer {
            sw_version: sw.into(),
            hw_version: hw.into(),
            extensions: ext.iter().map(|s| (*s).to_string()).collect(),
        }
    }
}

fn nav5_defaults() -> [u8; 33] {
    let mut rest = [0u8; 33];
    if let Some(fix_mode) = rest.first_mut() {
        *fix_mode = 3;
    }
    rest
}

impl SerialDevice for UbloxSim {
    fn baud(&self) -> u32 {
        self.config.baud
    }

    fn tick(&mut self, state: &FlightState, out: &mut Vec<u8>) {
        let period = self.epoch_period_s();
        let now = (state.t_s / period + 1e-9).floor().max(0.0) as u64;
        let mut next = self.next_epoch.unwrap_or(now);
        // A receiver ticked late does not replay every missed epoch.
        if now >= next + MAX_CATCH_UP_EPOCHS {
            next = now + 1 - MAX_CATCH_UP_EPOCHS;
        }
        while next <= now {
            let t_epoch = next as f64 * period;
            let utc_ns = state.utc_ns - ((state.t_s - t_epoch) * 1e9).round() as i64;
            // Epochs fall on whole milliseconds of UTC, as a receiver aligns them.
            let utc_ns = utc_ns.saturating_add(500_000).div_euclid(1_000_000) * 1_000_000;
            self.emit_epoch(state, utc_ns, out);
            next += 1;
        }
        self.next_epoch = Some(next);
    }

    fn receive(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        self.commands_in.push(bytes);
        let mut frames = Vec::new();
        while let Some(item) = self.commands_in.next_item() {
            if let Item::Ubx(f) = item {
                frames.push((f.kind(), f.payload.to_vec()));
            }
        }
        for (kind, payload) in frames {
            self.answer(kind, &payload, out);
        }
    }
}

/// The receiver's solution of one epoch.
struct Solution {
    lat: f64,
    lon: f64,
    /// Altitude above mean sea level, m.
    alt: f64,
    geoid: f64,
    vel_n: f64,
    vel_e: f64,
    vel_u: f64,
}

impl Solution {
    fn ground_speed(&self) -> f64 {
        self.vel_n.hypot(self.vel_e)
    }
    fn track_deg(&self) -> f64 {
        self.vel_e.atan2(self.vel_n).to_degrees().rem_euclid(360.0)
    }
}

#[derive(Clone, Copy)]
struct Satellite {
    prn: u16,
    elevation: f64,
    azimuth: f64,
    snr: f64,
}

impl Satellite {
    fn used(&self) -> bool {
        self.elevation >= ELEVATION_MASK_DEG
    }
}

struct Sky {
    gps: Vec<Satellite>,
    glonass: Vec<Satellite>,
}

impl Sky {
    /// The sky at `t_s`: satellites drift slowly in azimuth; signal strength follows
    /// elevation with a little noise.
    fn at(t_s: f64, noise: &mut Noise) -> Sky {
        let mut sats = |list: &[(u16, f64, f64)]| {
            list.iter()
                .map(|&(prn, el, az)| Satellite {
                    prn,
                    elevation: el,
                    azimuth: (az + t_s * 0.004).rem_euclid(360.0),
                    snr: (28.0 + el / 4.0 + noise.gaussian(1.5)).clamp(0.0, 55.0),
                })
                .collect()
        };
        Sky {
            gps: sats(&GPS_SKY),
            glonass: sats(&GLONASS_SKY),
        }
    }

    fn used(&self) -> usize {
        self.gps
            .iter()
            .chain(&self.glonass)
            .filter(|s| s.used())
            .count()
    }
}

/// DOPs of the simulated constellation (fixed: the sky barely changes in a flight).
const HDOP: f64 = 0.8;
const VDOP: f64 = 1.3;

fn pdop() -> f64 {
    HDOP.hypot(VDOP)
}

/// UTC broken down for NMEA.
struct Utc {
    date: (u16, u8, u8),
    hour: i64,
    minute: i64,
    second: i64,
    centis: i64,
}

impl Utc {
    fn from_ns(ns: i64) -> Utc {
        let day_ns = 86_400_000_000_000i64;
        let (days, tod) = (ns.div_euclid(day_ns), ns.rem_euclid(day_ns));
        let secs = tod / 1_000_000_000;
        Utc {
            date: ubx::civil_from_days(days),
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
            centis: tod % 1_000_000_000 / 10_000_000,
        }
    }

    fn time(&self) -> String {
        format!(
            "{:02}{:02}{:02}.{:02}",
            self.hour, self.minute, self.second, self.centis
        )
    }

    fn date(&self) -> String {
        let (y, m, d) = self.date;
        format!("{d:02}{m:02}{:02}", y % 100)
    }
}

/// `ddmm.mmmmm,N` or `dddmm.mmmmm,E`; minutes are rounded before splitting, so 59.999999'
/// becomes the next degree rather than `60.00000`.
fn coordinate(value: f64, degree_digits: usize, pos: char, neg: char) -> String {
    let hemisphere = if value < 0.0 { neg } else { pos };
    let total = (value.abs() * 60.0 * 100_000.0).round() as i64;
    let (deg, rest) = (total / 6_000_000, total % 6_000_000);
    format!(
        "{deg:0width$}{:02}.{:05},{hemisphere}",
        rest / 100_000,
        rest % 100_000,
        width = degree_digits
    )
}

fn lat_lon(fix: Option<&Solution>) -> String {
    match fix {
        Some(f) => format!(
            "{},{}",
            coordinate(f.lat, 2, 'N', 'S'),
            coordinate(f.lon, 3, 'E', 'W')
        ),
        None => ",,,".to_string(),
    }
}

fn sentence(body: &str, out: &mut Vec<u8>) {
    let sum = nmea_checksum(body.as_bytes());
    out.extend(format!("${body}*{sum:02X}\r\n").into_bytes());
}

fn rmc(utc: &Utc, fix: Option<&Solution>, out: &mut Vec<u8>) {
    let (status, mode) = if fix.is_some() {
        ('A', 'A')
    } else {
        ('V', 'N')
    };
    let motion = fix
        .map(|f| {
            format!(
                "{:.3},{:.2}",
                f.ground_speed() * KNOTS_PER_MPS,
                f.track_deg()
            )
        })
        .unwrap_or_else(|| ",".into());
    let body = format!(
        "GNRMC,{},{status},{},{motion},{},,,{mode}",
        utc.time(),
        lat_lon(fix),
        utc.date()
    );
    sentence(&body, out);
}

fn vtg(fix: Option<&Solution>, out: &mut Vec<u8>) {
    let body = match fix {
        Some(f) => format!(
            "GNVTG,{:.2},T,,M,{:.3},N,{:.3},K,A",
            f.track_deg(),
            f.ground_speed() * KNOTS_PER_MPS,
            f.ground_speed() * 3.6
        ),
        None => "GNVTG,,,,,,,,,N".into(),
    };
    sentence(&body, out);
}

fn gga(utc: &Utc, fix: Option<&Solution>, sky: &Sky, out: &mut Vec<u8>) {
    let body = match fix {
        Some(f) => format!(
            "GNGGA,{},{},1,{:02},{HDOP:.2},{:.1},M,{:.1},M,,",
            utc.time(),
            lat_lon(Some(f)),
            sky.used(),
            f.alt,
            f.geoid
        ),
        None => format!("GNGGA,{},,,,,0,00,99.99,,,,,,", utc.time()),
    };
    sentence(&body, out);
}

fn gsa(fix: Option<&Solution>, sky: &Sky, out: &mut Vec<u8>) {
    for sats in [&sky.gps, &sky.glonass] {
        let mut prns: Vec<String> = match fix {
            Some(_) => sats
                .iter()
                .filter(|s| s.used())
                .map(|s| format!("{:02}", s.prn))
                .collect(),
            None => Vec::new(),
        };
        prns.truncate(12);
        prns.resize(12, String::new());
        let body = match fix {
            Some(_) => format!(
                "GNGSA,A,3,{},{:.2},{HDOP:.2},{VDOP:.2}",
                prns.join(","),
                pdop()
            ),
            None => format!("GNGSA,A,1,{},99.99,99.99,99.99", prns.join(",")),
        };
        sentence(&body, out);
    }
}

fn gsv(talker: &str, sats: &[Satellite], out: &mut Vec<u8>) {
    let pages = sats.len().div_ceil(4).max(1);
    for (page, chunk) in sats.chunks(4).enumerate() {
        let mut body = format!("{talker}GSV,{pages},{},{:02}", page + 1, sats.len());
        for s in chunk {
            body.push_str(&format!(
                ",{:02},{:02.0},{:03.0},{:02.0}",
                s.prn, s.elevation, s.azimuth, s.snr
            ));
        }
        sentence(&body, out);
    }
}

fn gll(utc: &Utc, fix: Option<&Solution>, out: &mut Vec<u8>) {
    let (status, mode) = if fix.is_some() {
        ('A', 'A')
    } else {
        ('V', 'N')
    };
    let body = format!("GNGLL,{},{},{status},{mode}", lat_lon(fix), utc.time());
    sentence(&body, out);
}

fn nav_pvt(utc_ns: i64, fix: Option<&Solution>, sky: &Sky) -> NavPvt {
    let utc = Utc::from_ns(utc_ns);
    let (year, month, day) = utc.date;
    let gps_ms = (utc_ns.div_euclid(1_000_000)) - (GPS_EPOCH_UNIX_S - GPS_LEAP_S) * 1000;
    let itow_ms = u32::try_from(gps_ms.rem_euclid(604_800_000)).unwrap_or(0);
    let time = NavPvt {
        itow_ms,
        year,
        month,
        day,
        hour: u8::try_from(utc.hour).unwrap_or(0),
        minute: u8::try_from(utc.minute).unwrap_or(0),
        second: u8::try_from(utc.second).unwrap_or(0),
        valid: valid::DATE | valid::TIME | valid::FULLY_RESOLVED,
        t_acc_ns: 20,
        nano: i32::try_from(utc_ns.rem_euclid(1_000_000_000)).unwrap_or(0),
        ..NavPvt::default()
    };
    let mm = |m: f64| (m * 1000.0).round() as i32;
    match fix {
        Some(f) => NavPvt {
            fix_type: 3,
            flags: FLAG_GNSS_FIX_OK,
            num_sv: u8::try_from(sky.used()).unwrap_or(u8::MAX),
            lon: (f.lon * 1e7).round() as i32,
            lat: (f.lat * 1e7).round() as i32,
            height_mm: mm(f.alt + f.geoid),
            h_msl_mm: mm(f.alt),
            h_acc_mm: mm(SIGMA_HORIZONTAL_M * std::f64::consts::SQRT_2) as u32,
            v_acc_mm: mm(SIGMA_VERTICAL_M) as u32,
            vel_n: mm(f.vel_n),
            vel_e: mm(f.vel_e),
            vel_d: mm(-f.vel_u),
            g_speed: mm(f.ground_speed()),
            head_mot: (f.track_deg() * 1e5).round() as i32,
            s_acc: mm(SIGMA_VELOCITY_MPS * 2.0) as u32,
            head_acc: 50 * 100_000,
            p_dop: (pdop() * 100.0).round() as u16,
            ..time
        },
        None => NavPvt {
            fix_type: 0,
            h_acc_mm: u32::MAX,
            v_acc_mm: u32::MAX,
            s_acc: 20_000,
            head_acc: 180 * 100_000,
            p_dop: 9999,
            ..time
        },
    }
}

/// WGS 84 semi-major axis, m, and first eccentricity squared.
const WGS84_A: f64 = 6_378_137.0;
const WGS84_E2: f64 = 6.694_379_990_14e-3;

/// Earth-centred, Earth-fixed position (m) of a geodetic position (height above the
/// ellipsoid, m), and the ECEF velocity (m/s) of a north, east, down velocity there.
fn ecef(lat_deg: f64, lon_deg: f64, height_m: f64, ned: [f64; 3]) -> ([f64; 3], [f64; 3]) {
    let (sl, cl) = lat_deg.to_radians().sin_cos();
    let (so, co) = lon_deg.to_radians().sin_cos();
    let n = WGS84_A / (1.0 - WGS84_E2 * sl * sl).sqrt();
    let position = [
        (n + height_m) * cl * co,
        (n + height_m) * cl * so,
        (n * (1.0 - WGS84_E2) + height_m) * sl,
    ];
    let [vn, ve, vd] = ned;
    let velocity = [
        -sl * co * vn - so * ve - cl * co * vd,
        -sl * so * vn + co * ve - cl * so * vd,
        cl * vn - sl * vd,
    ];
    (position, velocity)
}

/// The legacy navigation set of one epoch, from the same solution as its NAV-PVT, in the
/// order a u-blox receiver sends them (by message id).
fn legacy_nav(pvt: &NavPvt, utc_ns: i64, out: &mut Vec<u8>) {
    let itow_ms = pvt.itow_ms;
    let cm = |mm: i32| mm.div_euclid(10) + i32::from(mm.rem_euclid(10) >= 5);
    let cm_u = |mm: u32| mm.saturating_add(5) / 10;
    let has_fix = pvt.fix_type != 0;
    out.extend(
        NavPosllh {
            itow_ms,
            lon: pvt.lon,
            lat: pvt.lat,
            height_mm: pvt.height_mm,
            h_msl_mm: pvt.h_msl_mm,
            h_acc_mm: pvt.h_acc_mm,
            v_acc_mm: pvt.v_acc_mm,
        }
        .to_bytes(),
    );
    let ned = [pvt.vel_n, pvt.vel_e, pvt.vel_d].map(|v| f64::from(v) * 1e-3);
    let (position, velocity) = ecef(
        f64::from(pvt.lat) * 1e-7,
        f64::from(pvt.lon) * 1e-7,
        f64::from(pvt.height_mm) * 1e-3,
        ned,
    );
    let [x, y, z] = position.map(|m| (m * 100.0).round() as i32);
    let [vx, vy, vz] = velocity.map(|v| (v * 100.0).round() as i32);
    let gps_ms = utc_ns.div_euclid(1_000_000) - (GPS_EPOCH_UNIX_S - GPS_LEAP_S) * 1000;
    let week = i16::try_from(gps_ms.div_euclid(604_800_000)).unwrap_or(i16::MAX);
    let time_flags = sol_flags::WKN_SET | sol_flags::TOW_SET;
    out.extend(
        NavSol {
            itow_ms,
            ftow_ns: 0,
            week,
            gps_fix: pvt.fix_type,
            flags: time_flags | if has_fix { sol_flags::GPS_FIX_OK } else { 0 },
            ecef_x_cm: if has_fix { x } else { 0 },
            ecef_y_cm: if has_fix { y } else { 0 },
            ecef_z_cm: if has_fix { z } else { 0 },
            p_acc_cm: cm_u(pvt.h_acc_mm.saturating_add(pvt.v_acc_mm) / 2),
            ecef_vx_cms: if has_fix { vx } else { 0 },
            ecef_vy_cms: if has_fix { vy } else { 0 },
            ecef_vz_cms: if has_fix { vz } else { 0 },
            s_acc_cms: cm_u(pvt.s_acc),
            p_dop: pvt.p_dop,
            num_sv: pvt.num_sv,
            ..NavSol::default()
        }
        .to_bytes(),
    );
    let speed_3d = f64::from(pvt.vel_n)
        .hypot(f64::from(pvt.vel_e))
        .hypot(f64::from(pvt.vel_d));
    out.extend(
        NavVelned {
            itow_ms,
            vel_n_cms: cm(pvt.vel_n),
            vel_e_cms: cm(pvt.vel_e),
            vel_d_cms: cm(pvt.vel_d),
            speed_cms: (speed_3d / 10.0).round() as u32,
            g_speed_cms: u32::try_from(cm(pvt.g_speed)).unwrap_or(0),
            heading: pvt.head_mot,
            s_acc_cms: cm_u(pvt.s_acc),
            c_acc: pvt.head_acc,
        }
        .to_bytes(),
    );
    out.extend(
        NavTimeUtc {
            itow_ms,
            t_acc_ns: pvt.t_acc_ns,
            nano: pvt.nano,
            year: pvt.year,
            month: pvt.month,
            day: pvt.day,
            hour: pvt.hour,
            minute: pvt.minute,
            second: pvt.second,
            // Valid time of week, week and UTC; UTC standard 3 (USNO, as GPS receivers say).
            valid: timeutc_valid::TOW | timeutc_valid::WKN | timeutc_valid::UTC | 0x30,
        }
        .to_bytes(),
    );
}

/// The high-rate solution of the epoch, from the same solution as its NAV-PVT.
fn hnr_pvt(pvt: &NavPvt) -> HnrPvt {
    let speed_3d = f64::from(pvt.vel_n)
        .hypot(f64::from(pvt.vel_e))
        .hypot(f64::from(pvt.vel_d));
    HnrPvt {
        itow_ms: pvt.itow_ms,
        year: pvt.year,
        month: pvt.month,
        day: pvt.day,
        hour: pvt.hour,
        minute: pvt.minute,
        second: pvt.second,
        valid: pvt.valid,
        nano: pvt.nano,
        gps_fix: pvt.fix_type,
        flags: pvt.flags | sol_flags::WKN_SET | sol_flags::TOW_SET,
        lon: pvt.lon,
        lat: pvt.lat,
        height_mm: pvt.height_mm,
        h_msl_mm: pvt.h_msl_mm,
        g_speed: pvt.g_speed,
        speed: speed_3d.round() as i32,
        head_mot: pvt.head_mot,
        head_veh: pvt.head_mot,
        h_acc_mm: pvt.h_acc_mm,
        v_acc_mm: pvt.v_acc_mm,
        s_acc: pvt.s_acc,
        head_acc: pvt.head_acc,
        ..HnrPvt::default()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::gps::fix::FixMode;
    use crate::gps::ubx::Frame;

    /// A glider state at `altitude_m`, `t_s` seconds into the flight (2026-03-18 12:00 UTC
    /// plus `t_s`), over the Sierra Nevada lee wave site.
    pub(crate) fn state(t_s: f64, altitude_m: f64) -> FlightState {
        FlightState {
            t_s,
            utc_ns: 1_773_835_200_000_000_000 + (t_s * 1e9) as i64,
            latitude_deg: 36.65,
            longitude_deg: -118.05,
            altitude_m,
            geoid_separation_m: -27.0,
            ground_speed_mps: 40.0,
            track_deg: 270.0,
            vertical_speed_mps: 2.0,
            pressure_pa: 19_400.0,
            outside_air_k: 223.0,
            box_temperature_k: 288.0,
            relative_humidity: 0.2,
            co2_mol_mol: 420e-6,
            true_airspeed_mps: 60.0,
            differential_pressure_pa: 500.0,
            muon_rate_per_s: 5.0,
            ..crate::flight::isa_state(0.0, 0.0)
        }
    }

    /// UBX frames as (class, id, payload).
    pub(crate) type Frames = Vec<(u8, u8, Vec<u8>)>;

    /// Everything the receiver says, split by the framer: NMEA lines and UBX frames.
    pub(crate) fn split(bytes: &[u8]) -> (Vec<String>, Frames) {
        let mut framer = GnssFramer::new();
        framer.push(bytes);
        framer.finish();
        let (mut lines, mut frames) = (Vec::new(), Vec::new());
        while let Some(item) = framer.next_item() {
            match item {
                Item::Nmea(l) => lines.push(String::from_utf8_lossy(l).into_owned()),
                Item::Ubx(f) => frames.push((f.class, f.id, f.payload.to_vec())),
                Item::Skipped { bytes, reason } => {
                    panic!("sim emitted {bytes} bad bytes: {reason:?}")
                }
            }
        }
        (lines, frames)
    }

    fn run_seconds(sim: &mut UbloxSim, altitude_m: f64, from_s: f64, seconds: f64) -> Vec<u8> {
        let mut out = Vec::new();
        let steps = (seconds * 100.0) as usize;
        for i in 0..=steps {
            sim.tick(&state(from_s + i as f64 * 0.01, altitude_m), &mut out);
        }
        out
    }

    fn pvts(frames: &[(u8, u8, Vec<u8>)]) -> Vec<NavPvt> {
        frames
            .iter()
            .filter_map(|(c, i, p)| NavPvt::decode(&Frame::new((*c, *i), p)).ok())
            .collect()
    }

    fn command(sim: &mut UbloxSim, bytes: &[u8]) -> Vec<(u8, u8, Vec<u8>)> {
        let mut out = Vec::new();
        sim.receive(bytes, &mut out);
        split(&out).1
    }

    fn ack(frames: &[(u8, u8, Vec<u8>)]) -> Option<Ack> {
        frames
            .iter()
            .find_map(|(c, i, p)| Ack::decode(&Frame::new((*c, *i), p)).ok())
    }

    #[test]
    fn emits_every_sentence_and_nav_pvt_at_10_hz_by_default() {
        let mut sim = UbloxSim::new(UbloxSimConfig::default());
        let out = run_seconds(&mut sim, 3000.0, 100.0, 0.999);
        let (lines, frames) = split(&out);
        assert_eq!(pvts(&frames).len(), 10);
        for id in [
            "$GNRMC", "$GNVTG", "$GNGGA", "$GNGSA", "$GPGSV", "$GLGSV", "$GNGLL",
        ] {
            assert!(lines.iter().any(|l| l.starts_with(id)), "{id} missing");
        }
        assert_eq!(lines.iter().filter(|l| l.starts_with("$GNGSA")).count(), 20);
        // 10 Hz of this traffic fits 115200 baud (11 520 bytes/s) but not 9600.
        assert!(
            out.len() < 11_520 && out.len() > 960,
            "{} bytes/s",
            out.len()
        );
    }

    #[test]
    fn every_sentence_fits_nmea_length_and_parses_with_an_independent_decoder() {
        let mut sim = UbloxSim::new(UbloxSimConfig::default());
        let out = run_seconds(&mut sim, 3000.0, 100.0, 0.5);
        let (lines, frames) = split(&out);
        for l in &lines {
            assert!(l.len() + 2 <= 82, "{l}");
            nmea::parse_str(l).unwrap_or_else(|e| panic!("{l}: {e:?}"));
        }
        let pvt = pvts(&frames)[0];
        let gga = lines.iter().find(|l| l.starts_with("$GNGGA")).unwrap();
        let nmea::ParseResult::GGA(gga) = nmea::parse_str(gga).unwrap() else {
            panic!()
        };
        assert!((gga.latitude.unwrap() - f64::from(pvt.lat) * 1e-7).abs() < 1e-6);
        assert!((f64::from(gga.altitude.unwrap()) - f64::from(pvt.h_msl_mm) * 1e-3).abs() < 0.06);
    }

    #[test]
    fn portable_above_12_km_reports_no_fix_anywhere() {
        let mut sim = UbloxSim::new(UbloxSimConfig::default());
        assert_eq!(sim.dynamic_model(), DynamicModel::Portable);
        let out = run_seconds(&mut sim, 12_500.0, 100.0, 0.2);
        let (lines, frames) = split(&out);
        for l in &lines {
            nmea::parse_str(l).unwrap_or_else(|e| panic!("{l}: {e:?}"));
        }
        for p in pvts(&frames) {
            assert_eq!(p.fix_type, 0);
            let fix = p.to_fix();
            assert_eq!((fix.mode, fix.latitude_deg), (Some(FixMode::NoFix), None));
        }
        let gga = lines.iter().find(|l| l.starts_with("$GNGGA")).unwrap();
        assert_eq!(gga.split(',').nth(6), Some("0"));
        let rmc = lines.iter().find(|l| l.starts_with("$GNRMC")).unwrap();
        assert_eq!(rmc.split(',').nth(2), Some("V"));
    }

    #[test]
    fn airborne_2g_keeps_the_fix_above_12_km() {
        let mut sim = UbloxSim::new(UbloxSimConfig::default());
        let frames = command(
            &mut sim,
            &CfgNav5::set_dynamic_model(DynamicModel::Airborne2g).to_bytes(),
        );
        assert_eq!(
            ack(&frames),
            Some(Ack {
                acked: msg::CFG_NAV5,
                accepted: true
            })
        );
        let out = run_seconds(&mut sim, 12_500.0, 100.0, 0.2);
        let (lines, frames) = split(&out);
        let p = pvts(&frames)[0];
        assert_eq!(p.fix_type, 3);
        assert!((p.to_fix().altitude_msl_m.unwrap() - 12_500.0).abs() < 30.0);
        let rmc = lines.iter().find(|l| l.starts_with("$GNRMC")).unwrap();
        assert_eq!(rmc.split(',').nth(2), Some("A"));
    }

    #[test]
    fn portable_drops_the_fix_above_310_mps() {
        let sim = UbloxSim::new(UbloxSimConfig::default());
        let fast = FlightState {
            ground_speed_mps: 320.0,
            ..state(0.0, 1000.0)
        };
        assert!(!sim.has_fix_at(&fast));
        assert!(sim.has_fix_at(&state(0.0, 11_900.0)));
    }

    #[test]
    fn nav5_poll_reports_the_model_then_acks_and_brown_out_reverts() {
        let mut sim = UbloxSim::new(UbloxSimConfig::default());
        command(
            &mut sim,
            &CfgNav5::set_dynamic_model(DynamicModel::Airborne2g).to_bytes(),
        );
        let frames = command(&mut sim, &CfgNav5::poll());
        let (c, i, p) = &frames[0];
        let nav5 = CfgNav5::decode(&Frame::new((*c, *i), p)).unwrap();
        assert_eq!(nav5.dynamic_model(), Some(DynamicModel::Airborne2g));
        assert_eq!(
            ack(&frames[1..]),
            Some(Ack {
                acked: msg::CFG_NAV5,
                accepted: true
            })
        );
        sim.brown_out();
        assert_eq!(sim.dynamic_model(), DynamicModel::Portable);
    }

    #[test]
    fn generation_9_naks_nav5_and_takes_valset() {
        let mut sim = UbloxSim::new(UbloxSimConfig::default().with_generation(Generation::Gen9));
        let frames = command(
            &mut sim,
            &CfgNav5::set_dynamic_model(DynamicModel::Airborne2g).to_bytes(),
        );
        assert_eq!(
            ack(&frames),
            Some(Ack {
                acked: msg::CFG_NAV5,
                accepted: false
            })
        );
        let frames = command(
            &mut sim,
            &CfgValSet::dynamic_model(DynamicModel::Airborne2g).to_bytes(),
        );
        assert_eq!(
            ack(&frames),
            Some(Ack {
                acked: msg::CFG_VALSET,
                accepted: true
            })
        );
        assert_eq!(sim.dynamic_model(), DynamicModel::Airborne2g);
        let frames = command(&mut sim, &CfgValGet::poll_dynamic_model().to_bytes());
        let (c, i, p) = &frames[0];
        let got = CfgValGet::decode(&Frame::new((*c, *i), p)).unwrap();
        assert_eq!(got.value(KEY_NAVSPG_DYNMODEL), Some(7));
    }

    #[test]
    fn m8_naks_valset() {
        let mut sim = UbloxSim::new(UbloxSimConfig::default());
        let frames = command(
            &mut sim,
            &CfgValSet::dynamic_model(DynamicModel::Airborne2g).to_bytes(),
        );
        assert_eq!(
            ack(&frames),
            Some(Ack {
                acked: msg::CFG_VALSET,
                accepted: false
            })
        );
        assert_eq!(sim.dynamic_model(), DynamicModel::Portable);
    }

    #[test]
    fn mon_ver_names_the_module() {
        let mut sim = UbloxSim::new(UbloxSimConfig::default());
        let frames = command(&mut sim, &MonVer::poll());
        let (c, i, p) = &frames[0];
        let ver = MonVer::decode(&Frame::new((*c, *i), p)).unwrap();
        assert_eq!(ver.module(), Some("NEO-M8N"));
        assert_eq!(ver.protocol_version(), Some("18.00"));
    }

    #[test]
    fn nak_all_and_ignore_modes_fail_every_command() {
        let set = CfgNav5::set_dynamic_model(DynamicModel::Airborne2g).to_bytes();
        let mut sim =
            UbloxSim::new(UbloxSimConfig::default().with_commands(CommandBehaviour::NakAll));
        assert_eq!(
            ack(&command(&mut sim, &set)),
            Some(Ack {
                acked: msg::CFG_NAV5,
                accepted: false
            })
        );
        assert_eq!(
            ack(&command(&mut sim, &MonVer::poll())).map(|a| a.accepted),
            Some(false)
        );
        let mut sim =
            UbloxSim::new(UbloxSimConfig::default().with_commands(CommandBehaviour::Ignore));
        assert!(command(&mut sim, &set).is_empty());
        assert_eq!(sim.dynamic_model(), DynamicModel::Portable);
    }

    #[test]
    fn position_noise_has_the_datasheet_cep_and_same_seed_same_bytes() {
        let config = UbloxSimConfig::default()
            .with_outputs(Outputs::NAV_PVT_ONLY)
            .with_rate_hz(1.0);
        let mut sim = UbloxSim::new(config);
        let mut out = Vec::new();
        // 4000 one-second epochs span ~65 correlation times of the error.
        for t in 0..4000 {
            sim.tick(&state(f64::from(t), 1000.0), &mut out);
        }
        let truth = state(0.0, 1000.0);
        let mut horizontal: Vec<f64> = pvts(&split(&out).1)
            .iter()
            .map(|p| {
                let n =
                    (f64::from(p.lat) * 1e-7 - truth.latitude_deg).to_radians() * EARTH_RADIUS_M;
                let e = (f64::from(p.lon) * 1e-7 - truth.longitude_deg).to_radians()
                    * EARTH_RADIUS_M
                    * truth.latitude_deg.to_radians().cos();
                n.hypot(e)
            })
            .collect();
        assert_eq!(horizontal.len(), 4000);
        horizontal.sort_by(f64::total_cmp);
        let cep = horizontal[horizontal.len() / 2];
        assert!((1.8..3.3).contains(&cep), "CEP {cep}");

        let mut again = UbloxSim::new(config);
        let mut out2 = Vec::new();
        for t in 0..4000 {
            again.tick(&state(f64::from(t), 1000.0), &mut out2);
        }
        assert_eq!(out, out2);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

        #[test]
        fn arbitrary_host_bytes_never_panic_and_answers_are_well_formed(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            wrap in proptest::prelude::any::<bool>(),
        ) {
            let mut sim = UbloxSim::new(UbloxSimConfig::default());
            let mut out = Vec::new();
            // Arbitrary payloads inside valid CFG frames reach the command decoders too.
            let input = if wrap { ubx::Frame::new(msg::CFG_NAV5, &bytes).to_bytes() } else { bytes };
            sim.receive(&input, &mut out);
            split(&out);
        }
    }

    fn nav_fixes(
        frames: &[(u8, u8, Vec<u8>)],
    ) -> (Vec<crate::gps::fix::Fix>, Vec<crate::gps::fix::Fix>) {
        let mut legacy = crate::gps::nav::NavEpochAssembler::new();
        let (mut from_legacy, mut from_hnr) = (Vec::new(), Vec::new());
        for (c, i, p) in frames {
            let frame = Frame::new((*c, *i), p);
            legacy.push_frame(&frame, |f| from_legacy.push(f)).unwrap();
            if let Ok(h) = HnrPvt::decode(&frame) {
                from_hnr.push(h.to_fix());
            }
        }
        from_legacy.extend(legacy.finish());
        (from_legacy, from_hnr)
    }

    #[test]
    fn legacy_receiver_sends_the_nav_set_in_id_order_and_no_nav_pvt() {
        let mut sim =
            UbloxSim::new(UbloxSimConfig::default().with_outputs(Outputs::LEGACY_NAV_ONLY));
        let out = run_seconds(&mut sim, 3000.0, 100.0, 0.999);
        let (lines, frames) = split(&out);
        assert!(lines.is_empty());
        assert!(pvts(&frames).is_empty());
        let kinds: Vec<(u8, u8)> = frames.iter().map(|(c, i, _)| (*c, *i)).collect();
        assert_eq!(kinds.len(), 40);
        for epoch in kinds.chunks(4) {
            assert_eq!(
                epoch,
                [
                    msg::NAV_POSLLH,
                    msg::NAV_SOL,
                    msg::NAV_VELNED,
                    msg::NAV_TIMEUTC
                ]
            );
        }
        // Every message of an epoch carries its iTOW.
        for epoch in frames.chunks(4) {
            let itows: Vec<&[u8]> = epoch.iter().map(|(_, _, p)| &p[..4]).collect();
            assert!(itows.windows(2).all(|w| w[0] == w[1]));
        }
    }

    #[test]
    fn legacy_set_and_hnr_pvt_say_what_nav_pvt_says() {
        let outputs = Outputs {
            legacy_nav: true,
            hnr_pvt: true,
            ..Outputs::NAV_PVT_ONLY
        };
        let mut sim = UbloxSim::new(UbloxSimConfig::default().with_outputs(outputs));
        let out = run_seconds(&mut sim, 3000.0, 100.0, 0.999);
        let frames = split(&out).1;
        let reference: Vec<_> = pvts(&frames).iter().map(NavPvt::to_fix).collect();
        let (legacy, hnr) = nav_fixes(&frames);
        assert_eq!((reference.len(), legacy.len(), hnr.len()), (10, 10, 10));
        for ((r, l), h) in reference.iter().zip(&legacy).zip(&hnr) {
            assert_eq!(l.time, r.time);
            assert_eq!(h.time, r.time);
            for f in [l, h] {
                assert_eq!(
                    (f.latitude_deg, f.longitude_deg),
                    (r.latitude_deg, r.longitude_deg)
                );
                assert_eq!(f.altitude_msl_m, r.altitude_msl_m);
                assert_eq!(f.geoid_separation_m, r.geoid_separation_m);
                assert_eq!(f.track_deg, r.track_deg);
                assert_eq!((f.mode, f.quality, f.valid), (r.mode, r.quality, r.valid));
                // VELNED has centimetres where NAV-PVT has millimetres.
                assert!((f.ground_speed_mps.unwrap() - r.ground_speed_mps.unwrap()).abs() <= 0.005);
            }
            assert!((l.vertical_speed_mps.unwrap() - r.vertical_speed_mps.unwrap()).abs() <= 0.005);
            assert_eq!((l.satellites_used, l.pdop), (r.satellites_used, r.pdop));
        }
    }

    #[test]
    fn nav_sol_alone_puts_the_receiver_where_nav_pvt_does() {
        let outputs = Outputs {
            legacy_nav: true,
            ..Outputs::NAV_PVT_ONLY
        };
        let mut sim = UbloxSim::new(UbloxSimConfig::default().with_outputs(outputs));
        let out = run_seconds(&mut sim, 3000.0, 100.0, 0.999);
        let frames = split(&out).1;
        let reference: Vec<_> = pvts(&frames).iter().map(NavPvt::to_fix).collect();
        let sol_only: Vec<_> = frames
            .iter()
            .filter(|(c, i, _)| [msg::NAV_SOL, msg::NAV_TIMEUTC].contains(&(*c, *i)))
            .cloned()
            .collect();
        let (fixes, _) = nav_fixes(&sol_only);
        assert_eq!(fixes.len(), reference.len());
        for (f, r) in fixes.iter().zip(&reference) {
            assert_eq!(f.time, r.time);
            // ECEF in centimetres: 1e-7 degrees.
            assert!((f.latitude_deg.unwrap() - r.latitude_deg.unwrap()).abs() < 2e-7);
            assert!((f.longitude_deg.unwrap() - r.longitude_deg.unwrap()).abs() < 2e-7);
            assert!((f.ground_speed_mps.unwrap() - r.ground_speed_mps.unwrap()).abs() < 0.02);
            assert!((f.vertical_speed_mps.unwrap() - r.vertical_speed_mps.unwrap()).abs() < 0.02);
            let dtrack =
                (f.track_deg.unwrap() - r.track_deg.unwrap() + 180.0).rem_euclid(360.0) - 180.0;
            assert!(dtrack.abs() < 0.1, "{dtrack}");
            assert_eq!(f.altitude_msl_m, None);
        }
    }

    #[test]
    fn legacy_receiver_in_portable_above_12_km_reports_no_fix() {
        let mut sim =
            UbloxSim::new(UbloxSimConfig::default().with_outputs(Outputs::LEGACY_NAV_ONLY));
        let out = run_seconds(&mut sim, 12_500.0, 100.0, 0.2);
        let (fixes, _) = nav_fixes(&split(&out).1);
        assert!(!fixes.is_empty());
        for f in &fixes {
            assert_eq!(
                (f.mode, f.latitude_deg, f.valid),
                (Some(FixMode::NoFix), None, false)
            );
            assert!(f.time.is_some());
        }
    }

    #[test]
    fn ecef_of_the_specification_ellipsoid_points() {
        let (p, _) = ecef(0.0, 0.0, 0.0, [0.0; 3]);
        assert!((p[0] - WGS84_A).abs() < 1e-6 && p[1].abs() < 1e-6 && p[2].abs() < 1e-6);
        let (p, _) = ecef(90.0, 0.0, 0.0, [0.0; 3]);
        // The WGS 84 semi-minor axis.
        assert!((p[2] - 6_356_752.314_245).abs() < 1e-3, "{p:?}");
        // Flying north at the equator and Greenwich is +Z; east is +Y; down is -X.
        let (_, v) = ecef(0.0, 0.0, 0.0, [1.0, 2.0, 3.0]);
        assert!(
            (v[0] + 3.0).abs() < 1e-12 && (v[1] - 2.0).abs() < 1e-12 && (v[2] - 1.0).abs() < 1e-12
        );
    }

    #[test]
    fn coordinates_round_into_the_next_degree_instead_of_sixty_minutes() {
        assert_eq!(coordinate(47.999_999_999, 2, 'N', 'S'), "4800.00000,N");
        assert_eq!(coordinate(-118.5, 3, 'E', 'W'), "11830.00000,W");
    }

    #[test]
    fn nav_pvt_time_matches_the_state_utc() {
        let mut sim = UbloxSim::new(UbloxSimConfig::default().with_outputs(Outputs::NAV_PVT_ONLY));
        let mut out = Vec::new();
        sim.tick(&state(100.0, 500.0), &mut out);
        let p = pvts(&split(&out).1)[0];
        let t = p.to_fix().time.unwrap();
        assert_eq!(t.date, Some((2026, 3, 18)));
        assert_eq!((t.hour, t.minute, t.second), (12, 1, 40));
        // 2026-03-18 is a Wednesday: GPS time of week = 3 days + 12:01:40 + 18 s leap.
        assert_eq!(p.itow_ms, (3 * 86_400 + 12 * 3600 + 100 + 18) * 1000);
    }
}
