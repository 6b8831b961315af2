//! The seeded mountain-wave flight that every simulator reads its truth from.
//!
//! The flight: on the ground at Minden-Tahoe (Nevada, the Sierra wave site), an aerotow to
//! about 3 000 m, a climb in the wave at 2-5 m/s to 12 000 m while beating north and south
//! along the wave bar, a cruise that rises and sinks around the ceiling (so it crosses the
//! 12 000 m limit of a u-blox receiver in its Portable model), a descent with airbrakes in
//! circles near the field, a straight-in final, touchdown and roll-out; about two hours.
//!
//! [`Scenario::new`] integrates the horizontal and vertical path once, at 1 s steps, into a
//! table (position, ground speed, track, heading, roll, pitch, vertical speed, indicated
//! airspeed, the instrument box's, the cabin's and the battery pack's temperatures, the
//! charge drawn); [`Scenario::state_at`] interpolates it and derives the air (pressure,
//! temperature, humidity, CO2, ozone, particles, the wind) from the altitude. Position is
//! integrated from ground velocity, and ground velocity is the air velocity plus a wind
//! that strengthens and veers with height, so position, track, heading and speed are
//! coherent; roll is the bank of a coordinated turn at the heading's rate. The descent
//! circles at 30° of bank, so the wind drifts its circles (what a flight computer's
//! circling wind method measures).
//!
//! Invariants: the table depends only on the seed, so `state_at` is a pure function of the
//! seed and the time; before the start the glider waits on the ground, after the end it
//! stays landed. Everything is in SI units, like [`FlightState`].

use super::{AirComposition, Attitude, FlightState, Noise, PowerState, Wind};
use crate::{airspeed, atmosphere};

/// A place the scenario flies from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Site {
    /// Latitude of the airfield, degrees north.
    pub latitude_deg: f64,
    /// Longitude of the airfield, degrees east.
    pub longitude_deg: f64,
    /// Field elevation above mean sea level, m.
    pub elevation_m: f64,
    /// Geoid height above the WGS84 ellipsoid at the site (EGM96), m.
    pub geoid_separation_m: f64,
    /// Take-off track, degrees from true north.
    pub runway_track_deg: f64,
    /// Longitude of the wave bar the glider beats along (a north-south line), degrees east.
    pub wave_bar_longitude_deg: f64,
}

/// Minden-Tahoe airport (KMEV), in the lee of the Carson Range: the Sierra wave, where
/// gliders have climbed above 12 km since the 1950s. The primary wave bar stands over the
/// Carson Valley a few km west of the field. The geoid lies roughly 23 m below the
/// ellipsoid there (read off EGM96 maps of the western US, to a few metres; not computed
/// from the model).
pub const MINDEN: Site = Site {
    latitude_deg: 39.0003,
    longitude_deg: -119.7508,
    elevation_m: 1_439.0,
    geoid_separation_m: -23.0,
    runway_track_deg: 300.0,
    wave_bar_longitude_deg: -119.86,
};

/// Part of the flight at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting on the ground before the launch.
    PreLaunch,
    /// Ground roll and aerotow up to the release altitude.
    Tow,
    /// Climbing in the wave.
    WaveClimb,
    /// Near the ceiling.
    Cruise,
    /// Descending with airbrakes, circling near the field.
    Descent,
    /// Straight-in final to touchdown.
    Approach,
    /// Roll-out, then standing on the field for good.
    Landed,
}

/// Seconds on the ground before the tow starts (GNSS receivers get their first fix here).
const PRE_LAUNCH_S: f64 = 180.0;
/// Release altitude of the aerotow, m.
const RELEASE_M: f64 = 3_000.0;
/// Top of the climb, m.
const CEILING_M: f64 = 12_000.0;
/// Amplitude and period of the rise and sink around the ceiling in cruise.
const CRUISE_SWING_M: f64 = 120.0;
const CRUISE_PERIOD_S: f64 = 600.0;
/// Height above the field where the circling descent turns into the final.
const FINAL_HEIGHT_M: f64 = 450.0;
/// Distance from a leg's end where the glider turns for the other end, m.
const TURN_AT_M: f64 = 1_200.0;
/// Standard rate of turn of a glider in wave, degrees per second.
const TURN_RATE_DEG_S: f64 = 3.0;
/// Bank of the circles flown with airbrakes in the descent, degrees (left turns).
const CIRCLING_BANK_DEG: f64 = -30.0;
/// The descent starts circling this close to the field, m, and flies back to it when the
/// wind has drifted the circles this far away.
const CIRCLING_ENTER_M: f64 = 2_500.0;
const CIRCLING_LEAVE_M: f64 = 5_000.0;
/// How fast the pilot rolls into and out of a turn, degrees per second.
const ROLL_RATE_DEG_S: f64 = 15.0;
/// Angle of attack in straight flight at the scheduled speeds, degrees; it grows with the
/// load factor in a turn.
const ANGLE_OF_ATTACK_DEG: f64 = 3.0;
/// The avionics pack: 4 lithium-ion cells in series, its nominal capacity at 25 °C.
const PACK_CELLS: f64 = 4.0;
const PACK_CAPACITY_AH: f64 = 18.0;
/// Charge drawn before the flight (the pack was charged the evening before).
const PACK_USED_AT_START_AH: f64 = 0.5;
/// What the pack can deliver falls linearly from all of it at 25 °C to 40 % at -20 °C
/// and below: the 60 % a lithium-ion pack loses in the cold.
const PACK_WARM_K: f64 = 298.15;
const PACK_COLD_K: f64 = 253.15;
const PACK_COLD_FRACTION: f64 = 0.4;
/// Internal resistance of the pack at 25 °C, ohm, growing e-fold every 20 K colder.
const PACK_RESISTANCE_OHM: f64 = 0.06;
const PACK_RESISTANCE_E_FOLD_K: f64 = 20.0;
/// Avionics, instruments and the Starlink terminal, A.
const BASE_LOAD_A: f64 = 1.8;
/// The instrument box's heater at full power, A: it starts below 5 °C outside and is at
/// full power 40 K colder.
const HEATER_LOAD_A: f64 = 1.2;
/// Lags of the cabin behind the outside air and of the pack behind the cabin, s; what
/// the sun and the pilot add to the cabin, and the pack's own warmth under load, K.
const CABIN_LAG_S: f64 = 600.0;
const PACK_LAG_S: f64 = 1_200.0;
const CABIN_GAIN_K: f64 = 20.0;
const PACK_SELF_HEATING_K: f64 = 4.0;
/// How far the outside air is warmer than ISA: -50 °C at 12 km instead of -56.5 °C.
pub const ISA_OFFSET_K: f64 = 6.5;
/// Integration step of the table, s.
const STEP_S: f64 = 1.0;
/// Upper bound of the table, s: the state machine always lands well before.
const MAX_FLIGHT_S: f64 = 6.0 * 3_600.0;
const EARTH_RADIUS_M: f64 = 6_371_000.0;

/// Sea-level rate of a CosmicWatch v2 detector, s-1 (about 1 Hz: Axani et al. 2018,
/// JINST 13 P03019).
const MUON_RATE_SEA_LEVEL_PER_S: f64 = 1.0;
/// Atmospheric depth at sea level, g cm-2.
const SEA_LEVEL_DEPTH_G_CM2: f64 = 1_033.0;
/// Attenuation length of the charged secondary flux, g cm-2.
const MUON_ATTENUATION_G_CM2: f64 = 280.0;
/// The rate at the Pfotzer maximum (~15-20 km), where the model stops rising, s-1.
const MUON_RATE_CAP_PER_S: f64 = 30.0;

/// One row of the precomputed flight: what is integrated rather than derived.
#[derive(Debug, Clone, Copy)]
struct Row {
    phase: Phase,
    latitude_deg: f64,
    longitude_deg: f64,
    altitude_m: f64,
    ground_speed_mps: f64,
    track_deg: f64,
    vertical_speed_mps: f64,
    indicated_mps: f64,
    box_temperature_k: f64,
    heading_deg: f64,
    roll_deg: f64,
    pitch_deg: f64,
    turn_rate_deg_s: f64,
    cabin_temperature_k: f64,
    battery_temperature_k: f64,
    battery_current_a: f64,
    battery_used_ah: f64,
}

/// A seeded flight: the truth at every instant (see the module docs).
#[derive(Debug, Clone)]
pub struct Scenario {
    seed: u64,
    start_utc_ns: i64,
    site: Site,
    weather: Weather,
    rows: Vec<Row>,
}

/// What varies with the seed: the climb's rhythm, the wind, the legs, the cruise.
#[derive(Debug, Clone, Copy)]
struct Weather {
    climb_phase_slow: f64,
    climb_phase_fast: f64,
    wind_scale: f64,
    leg_half_length_m: f64,
    cruise_s: f64,
}

impl Weather {
    fn from_seed(seed: u64) -> Self {
        let mut noise = Noise::new(seed ^ 0xF1_16_47);
        let tau = 2.0 * core::f64::consts::PI;
        Weather {
            climb_phase_slow: noise.uniform() * tau,
            climb_phase_fast: noise.uniform() * tau,
            wind_scale: 0.85 + 0.3 * noise.uniform(),
            leg_half_length_m: 5_000.0 + 4_000.0 * noise.uniform(),
            cruise_s: 1_500.0 + 600.0 * noise.uniform(),
        }
    }

    /// The wind: light from the west-southwest on the field, strong and veering to
    /// west-northwest near the tropopause (the wind that makes the Sierra wave).
    fn wind(&self, altitude_m: f64, field_m: f64) -> Wind {
        let fraction = ((altitude_m - field_m) / (11_000.0 - field_m)).clamp(0.0, 1.0);
        Wind {
            speed_mps: (4.0 + 28.0 * fraction) * self.wind_scale,
            from_deg: 250.0 + 35.0 * fraction,
        }
    }

    /// Wave lift the glider climbs in, 2-5 m/s, varying slowly as it moves along the bar.
    fn climb_rate_mps(&self, t_s: f64) -> f64 {
        let tau = 2.0 * core::f64::consts::PI;
        3.5 + 1.2 * (tau * t_s / 900.0 + self.climb_phase_slow).sin()
            + 0.3 * (tau * t_s / 170.0 + self.climb_phase_fast).sin()
    }
}

impl Scenario {
    /// The flight of `seed` from [`MINDEN`], starting (on the ground) at `start_utc_ns`.
    pub fn new(seed: u64, start_utc_ns: i64) -> Self {
        Self::at_site(seed, start_utc_ns, MINDEN)
    }

    /// The flight of `seed` from another site.
    pub fn at_site(seed: u64, start_utc_ns: i64, site: Site) -> Self {
        let weather = Weather::from_seed(seed);
        Scenario {
            seed,
            start_utc_ns,
            site,
            weather,
            rows: integrate(&site, &weather),
        }
    }

    /// The seed this flight was made from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// UTC of the scenario's time 0, ns since the Unix epoch.
    pub fn start_utc_ns(&self) -> i64 {
        self.start_utc_ns
    }

    /// The airfield.
    pub fn site(&self) -> Site {
        self.site
    }

    /// Seconds from the start until the glider has rolled out and stands on the field.
    pub fn duration_s(&self) -> f64 {
        self.rows.len().saturating_sub(1) as f64 * STEP_S
    }

    /// The part of the flight at `t_s`.
    pub fn phase_at(&self, t_s: f64) -> Phase {
        self.row_pair(t_s).0.phase
    }

    /// The true state at `t_s` seconds after the start. Before 0 (or NaN) the glider waits
    /// on the ground; after [`Scenario::duration_s`] it stays landed.
    pub fn state_at(&self, t_s: f64) -> FlightState {
        let (a, b, f) = self.row_pair(t_s);
        let lerp = |x: f64, y: f64| x + (y - x) * f;
        let altitude_m = lerp(a.altitude_m, b.altitude_m);
        let roll_deg = lerp(a.roll_deg, b.roll_deg);
        let battery_temperature_k = lerp(a.battery_temperature_k, b.battery_temperature_k);
        let battery_current_a = lerp(a.battery_current_a, b.battery_current_a);
        let battery_used_ah = lerp(a.battery_used_ah, b.battery_used_ah);
        let battery_soc = pack_soc(battery_used_ah, battery_temperature_k);
        let pressure_pa = atmosphere::pressure_pa(altitude_m);
        let outside_air_k = outside_air_k(altitude_m);
        let indicated = lerp(a.indicated_mps, b.indicated_mps);
        let density = atmosphere::density_kg_m3(pressure_pa, outside_air_k);
        let true_airspeed_mps = indicated * (atmosphere::RHO0_KG_M3 / density).sqrt();
        // NaN means the start, as in row_pair; the clamp keeps ns within i64 (292 years).
        let t = if t_s.is_nan() {
            0.0
        } else {
            t_s.clamp(-9e9, 9e9)
        };
        FlightState {
            t_s: t,
            utc_ns: self.start_utc_ns.saturating_add((t * 1e9).round() as i64),
            latitude_deg: lerp(a.latitude_deg, b.latitude_deg),
            longitude_deg: lerp(a.longitude_deg, b.longitude_deg),
            altitude_m,
            geoid_separation_m: self.site.geoid_separation_m,
            ground_speed_mps: lerp(a.ground_speed_mps, b.ground_speed_mps),
            track_deg: lerp_angle_deg(a.track_deg, b.track_deg, f),
            vertical_speed_mps: lerp(a.vertical_speed_mps, b.vertical_speed_mps),
            pressure_pa,
            outside_air_k,
            box_temperature_k: lerp(a.box_temperature_k, b.box_temperature_k),
            relative_humidity: relative_humidity(altitude_m, self.site.elevation_m),
            co2_mol_mol: co2_mol_mol(altitude_m, self.site.elevation_m),
            true_airspeed_mps,
            differential_pressure_pa: airspeed::differential_pa_for(
                true_airspeed_mps,
                pressure_pa,
                outside_air_k,
            ),
            muon_rate_per_s: muon_rate_per_s(pressure_pa),
            attitude: Attitude {
                heading_deg: lerp_angle_deg(a.heading_deg, b.heading_deg, f),
                roll_deg,
                pitch_deg: lerp(a.pitch_deg, b.pitch_deg),
                turn_rate_deg_s: lerp(a.turn_rate_deg_s, b.turn_rate_deg_s),
                load_factor: 1.0 / roll_deg.to_radians().cos(),
            },
            wind: self.weather.wind(altitude_m, self.site.elevation_m),
            air: AirComposition {
                ozone_mol_mol: ozone_mol_mol(altitude_m, self.site.elevation_m),
                pm2p5_kg_m3: pm2p5_kg_m3(altitude_m, self.site.elevation_m),
            },
            power: PowerState {
                cabin_temperature_k: lerp(a.cabin_temperature_k, b.cabin_temperature_k),
                battery_temperature_k,
                battery_voltage_v: pack_voltage_v(
                    battery_soc,
                    battery_current_a,
                    battery_temperature_k,
                ),
                battery_current_a,
                battery_soc,
            },
        }
    }

    /// The two rows around `t_s` and the fraction of the way from the first to the second.
    fn row_pair(&self, t_s: f64) -> (Row, Row, f64) {
        let last = self.rows.len().saturating_sub(1);
        // `integrate` always produces rows; the fallback only keeps this total.
        let row = |i: usize| self.rows.get(i.min(last)).copied().unwrap_or(GROUND_ROW);
        if t_s.is_nan() || t_s <= 0.0 {
            return (row(0), row(0), 0.0);
        }
        let position = t_s / STEP_S;
        if position >= last as f64 {
            return (row(last), row(last), 0.0);
        }
        let i = position.floor() as usize;
        (row(i), row(i + 1), position - i as f64)
    }
}

const GROUND_ROW: Row = Row {
    phase: Phase::Landed,
    latitude_deg: MINDEN.latitude_deg,
    longitude_deg: MINDEN.longitude_deg,
    altitude_m: MINDEN.elevation_m,
    ground_speed_mps: 0.0,
    track_deg: MINDEN.runway_track_deg,
    vertical_speed_mps: 0.0,
    indicated_mps: 0.0,
    box_temperature_k: 288.15,
    heading_deg: MINDEN.runway_track_deg,
    roll_deg: 0.0,
    pitch_deg: 0.0,
    turn_rate_deg_s: 0.0,
    cabin_temperature_k: 288.15,
    battery_temperature_k: 288.15,
    battery_current_a: BASE_LOAD_A,
    battery_used_ah: PACK_USED_AT_START_AH,
};

/// Outside air temperature: ISA plus [`ISA_OFFSET_K`], K. Pressure stays ISA so that the
/// pressure altitude equals the altitude flown (a simplification a few hPa wide).
pub fn outside_air_k(altitude_m: f64) -> f64 {
    atmosphere::temperature_k(altitude_m) + ISA_OFFSET_K
}

/// Relative humidity, 0..1: a drying troposphere with a moist layer around 5 km (where
/// the wave's lenticular clouds form) and dry stratospheric air above the tropopause.
pub fn relative_humidity(altitude_m: f64, field_m: f64) -> f64 {
    let height = (altitude_m - field_m).max(0.0);
    let base = 0.45 - 0.30 * (height / (atmosphere::TROPOPAUSE_M - field_m)).min(1.0);
    let layer = 0.40 * (-((altitude_m - 5_000.0) / 1_500.0).powi(2)).exp();
    let stratosphere = if altitude_m > atmosphere::TROPOPAUSE_M {
        ((altitude_m - atmosphere::TROPOPAUSE_M) / 1_000.0).min(1.0) * 0.08
    } else {
        0.0
    };
    (base + layer - stratosphere).clamp(0.02, 0.98)
}

/// CO2 mole fraction, mol mol-1: ~420 ppm in the free troposphere, a few ppm more in the
/// boundary layer over the valley, a few less in older stratospheric air.
pub fn co2_mol_mol(altitude_m: f64, field_m: f64) -> f64 {
    let boundary = 6e-6 * (-(altitude_m - field_m).max(0.0) / 1_000.0).exp();
    let stratosphere = 4e-6 * ((altitude_m - atmosphere::TROPOPAUSE_M) / 1_000.0).clamp(0.0, 1.0);
    420e-6 + boundary - stratosphere
}

/// Ozone mole fraction, mol mol-1: about 40 ppb in the valley's boundary layer, a little
/// more in the free troposphere, and rising steeply towards and above the tropopause, where
/// stratospheric air (hundreds of ppb) is mixed down.
pub fn ozone_mol_mol(altitude_m: f64, field_m: f64) -> f64 {
    let height = (altitude_m - field_m).max(0.0);
    let troposphere = 40e-9 + 20e-9 * (height / 10_000.0).min(1.0);
    let stratospheric = 180e-9 / (1.0 + (-(altitude_m - 10_800.0) / 400.0).exp());
    troposphere + stratospheric
}

/// PM2.5 mass concentration, kg m-3: about 8 ug m-3 in the valley's boundary layer
/// (the lowest 1.5 km), falling with a 1.2 km scale height above it to the clean free
/// troposphere's tenth of a ug m-3.
pub fn pm2p5_kg_m3(altitude_m: f64, field_m: f64) -> f64 {
    let above_layer = (altitude_m - field_m - 1_500.0).max(0.0);
    (8e-9 * (-above_layer / 1_200.0).exp()).max(0.1e-9)
}

/// The fraction of its nominal capacity the pack can deliver at `temperature_k`.
fn pack_capacity_fraction(temperature_k: f64) -> f64 {
    let warmth = ((temperature_k - PACK_COLD_K) / (PACK_WARM_K - PACK_COLD_K)).clamp(0.0, 1.0);
    PACK_COLD_FRACTION + (1.0 - PACK_COLD_FRACTION) * warmth
}

/// Charge left as a fraction of what the pack can deliver at `temperature_k`.
fn pack_soc(used_ah: f64, temperature_k: f64) -> f64 {
    let deliverable = PACK_CAPACITY_AH * pack_capacity_fraction(temperature_k);
    ((deliverable - used_ah) / deliverable).clamp(0.0, 1.0)
}

/// Terminal voltage: each cell's open-circuit voltage (3.3 V empty to 4.2 V full) less
/// the drop across the pack's internal resistance at `temperature_k`.
fn pack_voltage_v(soc: f64, current_a: f64, temperature_k: f64) -> f64 {
    let resistance =
        PACK_RESISTANCE_OHM * ((PACK_WARM_K - temperature_k) / PACK_RESISTANCE_E_FOLD_K).exp();
    PACK_CELLS * (3.3 + 0.9 * soc) - current_a * resistance
}

/// Expected event rate of a CosmicWatch detector at static pressure `pressure_pa`, s-1.
///
/// The charged secondary flux grows roughly exponentially as the atmospheric depth above
/// the detector shrinks (the lower flank of the Regener-Pfotzer curve, Pfotzer 1936), from
/// about 1 s-1 at sea level for a CosmicWatch v2 (Axani et al. 2018) with an attenuation
/// length of 280 g cm-2 (about 20x at 12 km, like the factors seen on airliner flights),
/// and stops rising at the Pfotzer maximum, capped at 30 s-1.
pub fn muon_rate_per_s(pressure_pa: f64) -> f64 {
    // 1 g cm-2 of air weighs 98.0665 Pa.
    let depth = pressure_pa / (atmosphere::G0 * 10.0);
    let rate = MUON_RATE_SEA_LEVEL_PER_S
        * ((SEA_LEVEL_DEPTH_G_CM2 - depth) / MUON_ATTENUATION_G_CM2).exp();
    rate.min(MUON_RATE_CAP_PER_S)
}

/// Interpolates between two angles the short way round, degrees in [0, 360).
fn lerp_angle_deg(a: f64, b: f64, f: f64) -> f64 {
    let diff = (b - a + 540.0).rem_euclid(360.0) - 180.0;
    (a + diff * f).rem_euclid(360.0)
}

/// Bearing and distance from one point to another (flat earth: fine over tens of km).
fn bearing_distance(lat: f64, lon: f64, to_lat: f64, to_lon: f64) -> (f64, f64) {
    let north = (to_lat - lat).to_radians() * EARTH_RADIUS_M;
    let east = (to_lon - lon).to_radians() * EARTH_RADIUS_M * lat.to_radians().cos();
    (
        east.atan2(north).to_degrees().rem_euclid(360.0),
        north.hypot(east),
    )
}

/// Ground speed along `track_deg` of a glider flying `tas` in `wind`: the glider crabs so
/// that air velocity plus wind lies along the track.
fn ground_speed_along(track_deg: f64, tas: f64, wind: Wind) -> f64 {
    let (east, north) = wind.velocity_en();
    let track = track_deg.to_radians();
    let along = east * track.sin() + north * track.cos();
    let discriminant = along * along - wind.speed_mps * wind.speed_mps + tas * tas;
    (along + discriminant.max(0.0).sqrt()).max(0.0)
}

/// The heading that flies `tas` along `track_deg` at `ground_speed` in `wind`: the
/// direction of the air velocity (ground velocity less the wind).
fn heading_for(track_deg: f64, ground_speed: f64, wind: Wind) -> f64 {
    let (east, north) = wind.velocity_en();
    let track = track_deg.to_radians();
    let air_east = ground_speed * track.sin() - east;
    let air_north = ground_speed * track.cos() - north;
    if air_east.hypot(air_north) < 1.0 {
        return track_deg;
    }
    air_east.atan2(air_north).to_degrees().rem_euclid(360.0)
}

/// Turns `track` toward `desired` at most `max_step` degrees. A reversal (more than 150°)
/// turns through west, into the wind, as glider pilots turn in wave.
fn turn_toward(track: f64, desired: f64, max_step: f64) -> f64 {
    let mut diff = (desired - track + 540.0).rem_euclid(360.0) - 180.0;
    if diff.abs() > 150.0 {
        // Which way passes through 270°: left (negative) when heading east of north-south.
        let through_west = (270.0 - track + 540.0).rem_euclid(360.0) - 180.0;
        diff = if through_west < 0.0 {
            -diff.abs()
        } else {
            diff.abs()
        };
    }
    (track + diff.clamp(-max_step, max_step)).rem_euclid(360.0)
}

fn approach(value: f64, target: f64, max_step: f64) -> f64 {
    value + (target - value).clamp(-max_step, max_step)
}

/// Indicated airspeed the pilot flies in each phase, m s-1 (Vne is a true airspeed
/// limit, so the climb is flown slower higher up).
fn scheduled_ias(phase: Phase, altitude_m: f64) -> f64 {
    match phase {
        Phase::PreLaunch | Phase::Landed => 0.0,
        Phase::Tow => 33.0,
        Phase::WaveClimb => 27.0 - 2.0 * ((altitude_m - 6_000.0) / 6_000.0).clamp(0.0, 1.0),
        Phase::Cruise => 26.0,
        Phase::Descent => 32.0,
        Phase::Approach => 28.0,
    }
}

/// Flies the whole scenario at 1 s steps.
fn integrate(site: &Site, weather: &Weather) -> Vec<Row> {
    let field = site.elevation_m;
    let leg_end = |north: bool| {
        let offset = weather.leg_half_length_m / EARTH_RADIUS_M;
        let sign = if north { 1.0 } else { -1.0 };
        (
            site.latitude_deg + sign * offset.to_degrees(),
            site.wave_bar_longitude_deg,
        )
    };
    let mut row = Row {
        phase: Phase::PreLaunch,
        latitude_deg: site.latitude_deg,
        longitude_deg: site.longitude_deg,
        altitude_m: field,
        ground_speed_mps: 0.0,
        track_deg: site.runway_track_deg,
        vertical_speed_mps: 0.0,
        indicated_mps: 0.0,
        // The electronics have warmed the box a little above the air on the ground.
        box_temperature_k: outside_air_k(field) + 5.0,
        heading_deg: site.runway_track_deg,
        roll_deg: 0.0,
        pitch_deg: 0.0,
        turn_rate_deg_s: 0.0,
        // The glider stood in the sun-warmed hangar: cabin and pack above the air.
        cabin_temperature_k: outside_air_k(field) + CABIN_GAIN_K,
        battery_temperature_k: outside_air_k(field) + CABIN_GAIN_K,
        battery_current_a: BASE_LOAD_A,
        battery_used_ah: PACK_USED_AT_START_AH,
    };
    let mut rows = Vec::with_capacity(8_000);
    let mut t = 0.0;
    let mut airborne = false;
    let mut heading_north = false;
    let mut cruise_start = 0.0;
    let mut rolled_out_s = 0.0;
    let mut circling = false;
    while t <= MAX_FLIGHT_S {
        rows.push(row);
        t += STEP_S;
        let tas_factor = {
            let p = atmosphere::pressure_pa(row.altitude_m);
            let rho = atmosphere::density_kg_m3(p, outside_air_k(row.altitude_m));
            (atmosphere::RHO0_KG_M3 / rho).sqrt()
        };
        let wind = weather.wind(row.altitude_m, field);
        let previous_heading = row.heading_deg;
        let (to_field_deg, to_field_m) = bearing_distance(
            row.latitude_deg,
            row.longitude_deg,
            site.latitude_deg,
            site.longitude_deg,
        );

        // Phase changes.
        row.phase = match row.phase {
            Phase::PreLaunch if t >= PRE_LAUNCH_S => Phase::Tow,
            Phase::Tow if row.altitude_m >= RELEASE_M => Phase::WaveClimb,
            Phase::WaveClimb if row.altitude_m >= CEILING_M => {
                cruise_start = t;
                Phase::Cruise
            }
            // Leave the ceiling when sinking anyway, so the descent never starts upward.
            Phase::Cruise
                if t - cruise_start >= weather.cruise_s && row.vertical_speed_mps <= 0.0 =>
            {
                Phase::Descent
            }
            Phase::Descent if row.altitude_m <= field + FINAL_HEIGHT_M => Phase::Approach,
            Phase::Approach if row.altitude_m <= field + 0.5 => Phase::Landed,
            Phase::Landed => {
                rolled_out_s += if row.ground_speed_mps <= 0.0 {
                    STEP_S
                } else {
                    0.0
                };
                if rolled_out_s > 60.0 {
                    break;
                }
                Phase::Landed
            }
            unchanged => unchanged,
        };

        // Airspeed, and whether the wings carry the glider yet.
        let ias_target = scheduled_ias(row.phase, row.altitude_m);
        let ias_step = match row.phase {
            Phase::Tow if !airborne => 2.0,
            Phase::Landed => 1.5,
            _ => 1.0,
        };
        row.indicated_mps = approach(row.indicated_mps, ias_target, ias_step * STEP_S).max(0.0);
        if row.phase == Phase::Tow && row.indicated_mps >= 26.0 {
            airborne = true;
        }
        let tas = row.indicated_mps * tas_factor;

        // Vertical speed.
        let vs_target = match row.phase {
            Phase::PreLaunch | Phase::Landed => 0.0,
            Phase::Tow if !airborne => 0.0,
            Phase::Tow => 3.0,
            Phase::WaveClimb => weather.climb_rate_mps(t),
            Phase::Cruise => {
                let omega = 2.0 * core::f64::consts::PI / CRUISE_PERIOD_S;
                CRUISE_SWING_M * omega * (omega * (t - cruise_start)).cos()
            }
            Phase::Descent => -7.0,
            Phase::Approach => {
                let ground_speed = row.ground_speed_mps.max(10.0);
                let time_to_field = (to_field_m / ground_speed).max(10.0);
                (-(row.altitude_m - field) / time_to_field).clamp(-5.0, -0.3)
            }
        };
        row.vertical_speed_mps = match row.phase {
            // The wheel stops the sink at once.
            Phase::Landed | Phase::PreLaunch => 0.0,
            Phase::Tow | Phase::WaveClimb => {
                approach(row.vertical_speed_mps, vs_target, 0.5 * STEP_S).max(0.0)
            }
            Phase::Descent | Phase::Approach => {
                approach(row.vertical_speed_mps, vs_target, 0.5 * STEP_S).min(0.0)
            }
            Phase::Cruise => approach(row.vertical_speed_mps, vs_target, 0.5 * STEP_S),
        };

        // Track: the runway, then legs along the wave bar, then circles and the final.
        let desired_track = match row.phase {
            Phase::PreLaunch | Phase::Landed => row.track_deg,
            Phase::Tow if row.altitude_m < field + 150.0 => site.runway_track_deg,
            Phase::Tow | Phase::WaveClimb | Phase::Cruise => {
                let (lat, lon) = leg_end(heading_north);
                let (bearing, distance) =
                    bearing_distance(row.latitude_deg, row.longitude_deg, lat, lon);
                if distance < TURN_AT_M {
                    heading_north = !heading_north;
                }
                bearing
            }
            // Between the circles, back to the field.
            Phase::Descent => to_field_deg,
            Phase::Approach if to_field_m < 300.0 => row.track_deg,
            Phase::Approach => to_field_deg,
        };
        // Circles with airbrakes near the field in the descent, drifting with the wind;
        // back towards the field when they have drifted too far.
        circling = row.phase == Phase::Descent
            && if circling {
                to_field_m < CIRCLING_LEAVE_M
            } else {
                to_field_m < CIRCLING_ENTER_M
            };
        let on_wheel = matches!(row.phase, Phase::PreLaunch | Phase::Landed)
            || (row.phase == Phase::Tow && !airborne);
        if circling {
            // A turn at a constant bank in the air: the heading turns at g tan(bank) / TAS,
            // and the wind carries the circle over the ground.
            row.roll_deg = approach(row.roll_deg, CIRCLING_BANK_DEG, ROLL_RATE_DEG_S * STEP_S);
            let rate_deg_s =
                (atmosphere::G0 * row.roll_deg.to_radians().tan() / tas.max(1.0)).to_degrees();
            row.heading_deg = (row.heading_deg + rate_deg_s * STEP_S).rem_euclid(360.0);
            let (wind_east, wind_north) = wind.velocity_en();
            let heading = row.heading_deg.to_radians();
            let east = tas * heading.sin() + wind_east;
            let north = tas * heading.cos() + wind_north;
            row.track_deg = east.atan2(north).to_degrees().rem_euclid(360.0);
            row.ground_speed_mps = east.hypot(north);
        } else {
            row.track_deg = turn_toward(
                row.track_deg,
                desired_track.rem_euclid(360.0),
                TURN_RATE_DEG_S * STEP_S,
            );
            row.ground_speed_mps = match row.phase {
                Phase::PreLaunch => 0.0,
                // Rolling on the wheel: the airspeed less the headwind, never backwards.
                Phase::Landed => (tas - wind.speed_mps).max(0.0).min(row.indicated_mps),
                Phase::Tow if !airborne => (tas - wind.speed_mps).max(0.0),
                _ => ground_speed_along(row.track_deg, tas, wind),
            };
            row.heading_deg = if on_wheel {
                row.track_deg
            } else {
                heading_for(row.track_deg, row.ground_speed_mps, wind)
            };
            // The bank of a coordinated turn at the heading's rate, rolled into at the
            // pilot's roll rate.
            let rate = ((row.heading_deg - previous_heading + 540.0).rem_euclid(360.0) - 180.0)
                .to_radians()
                / STEP_S;
            let bank = if on_wheel {
                0.0
            } else {
                (tas * rate / atmosphere::G0).atan().to_degrees()
            };
            row.roll_deg = approach(row.roll_deg, bank, ROLL_RATE_DEG_S * STEP_S);
        }
        row.turn_rate_deg_s =
            ((row.heading_deg - previous_heading + 540.0).rem_euclid(360.0) - 180.0) / STEP_S;
        row.pitch_deg = if on_wheel || tas < 1.0 {
            0.0
        } else {
            let load_factor = 1.0 / row.roll_deg.to_radians().cos();
            let path = (row.vertical_speed_mps / tas)
                .clamp(-1.0, 1.0)
                .asin()
                .to_degrees();
            path + ANGLE_OF_ATTACK_DEG * load_factor * row.roll_deg.to_radians().cos()
        };

        // Move.
        let track = row.track_deg.to_radians();
        let north = row.ground_speed_mps * track.cos() * STEP_S;
        let east = row.ground_speed_mps * track.sin() * STEP_S;
        let radius = EARTH_RADIUS_M + row.altitude_m;
        row.latitude_deg += (north / radius).to_degrees();
        row.longitude_deg += (east / (radius * row.latitude_deg.to_radians().cos())).to_degrees();
        row.altitude_m = (row.altitude_m + row.vertical_speed_mps * STEP_S).max(field);

        // The heated, insulated box follows its heater's target with a 20-minute lag:
        // the electronics keep it 8 K above the air, the heater holds 5 °C while its
        // 45 K of lift lasts.
        let air = outside_air_k(row.altitude_m);
        let target = (air + 8.0).max(278.15_f64.min(air + 45.0));
        row.box_temperature_k += (target - row.box_temperature_k) * STEP_S / 1_200.0;

        // The cabin follows the air with a lag, the pack the cabin; the heater draws more
        // the colder the air, and the pack's charge goes with the current.
        row.cabin_temperature_k +=
            (air + CABIN_GAIN_K - row.cabin_temperature_k) * STEP_S / CABIN_LAG_S;
        row.battery_temperature_k +=
            (row.cabin_temperature_k + PACK_SELF_HEATING_K - row.battery_temperature_k) * STEP_S
                / PACK_LAG_S;
        let heater = ((278.15 - air) / 40.0).clamp(0.0, 1.0);
        row.battery_current_a = BASE_LOAD_A + HEATER_LOAD_A * heater;
        row.battery_used_ah += row.battery_current_a * STEP_S / 3_600.0;
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: i64 = 1_700_000_000_000_000_000;

    fn samples(scenario: &Scenario, step_s: f64) -> Vec<FlightState> {
        let n = (scenario.duration_s() / step_s) as usize + 1;
        (0..=n)
            .map(|i| scenario.state_at(i as f64 * step_s))
            .collect()
    }

    #[test]
    fn flight_lasts_about_two_hours_and_passes_every_phase_in_order() {
        for seed in [1, 2, 42] {
            let scenario = Scenario::new(seed, START);
            let duration = scenario.duration_s();
            assert!(
                (5_400.0..10_800.0).contains(&duration),
                "seed {seed}: {duration}"
            );
            let mut phases = vec![];
            for s in samples(&scenario, 5.0) {
                let phase = scenario.phase_at(s.t_s);
                if phases.last() != Some(&phase) {
                    phases.push(phase);
                }
            }
            use Phase::*;
            assert_eq!(
                phases,
                [PreLaunch, Tow, WaveClimb, Cruise, Descent, Approach, Landed],
                "seed {seed}"
            );
        }
    }

    #[test]
    fn altitude_is_monotone_in_tow_climb_descent_and_approach() {
        for seed in [3, 4] {
            let scenario = Scenario::new(seed, START);
            let states = samples(&scenario, 1.0);
            for pair in states.windows(2) {
                let [a, b] = pair else { continue };
                let (pa, pb) = (scenario.phase_at(a.t_s), scenario.phase_at(b.t_s));
                if pa != pb {
                    continue;
                }
                match pa {
                    Phase::Tow | Phase::WaveClimb => {
                        assert!(b.altitude_m >= a.altitude_m, "{pa:?} at {}", a.t_s)
                    }
                    Phase::Descent | Phase::Approach => {
                        assert!(b.altitude_m <= a.altitude_m, "{pa:?} at {}", a.t_s)
                    }
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn wave_climb_runs_between_two_and_five_metres_per_second() {
        let scenario = Scenario::new(9, START);
        let climb: Vec<f64> = samples(&scenario, 10.0)
            .iter()
            .filter(|s| scenario.phase_at(s.t_s - 120.0) == Phase::WaveClimb)
            .filter(|s| scenario.phase_at(s.t_s) == Phase::WaveClimb)
            .map(|s| s.vertical_speed_mps)
            .collect();
        assert!(climb.len() > 100);
        for vs in climb {
            assert!((1.9..=5.1).contains(&vs), "{vs}");
        }
    }

    #[test]
    fn tow_releases_near_three_thousand_metres() {
        let scenario = Scenario::new(5, START);
        let first_climb = samples(&scenario, 1.0)
            .into_iter()
            .find(|s| scenario.phase_at(s.t_s) == Phase::WaveClimb)
            .map(|s| s.altitude_m);
        let altitude = first_climb.unwrap_or_default();
        assert!((2_990.0..3_050.0).contains(&altitude), "{altitude}");
    }

    #[test]
    fn reaches_twelve_km_where_air_is_minus_fifty_and_pressure_194_hpa() {
        let scenario = Scenario::new(7, START);
        let top = samples(&scenario, 1.0)
            .into_iter()
            .max_by(|a, b| a.altitude_m.total_cmp(&b.altitude_m));
        let Some(top) = top else { panic!("no samples") };
        assert!(top.altitude_m >= 12_000.0, "{}", top.altitude_m);
        assert!(top.altitude_m < 12_400.0, "{}", top.altitude_m);
        let celsius = top.outside_air_k - 273.15;
        assert!((celsius + 50.0).abs() <= 2.0, "{celsius}");
        let at_12km = samples(&scenario, 1.0)
            .into_iter()
            .find(|s| s.altitude_m >= 12_000.0);
        let Some(at_12km) = at_12km else {
            panic!("never at 12 km")
        };
        assert!(
            (at_12km.pressure_pa / 100.0 - 194.0).abs() <= 5.0,
            "{}",
            at_12km.pressure_pa
        );
    }

    #[test]
    fn true_airspeed_is_about_twice_indicated_at_twelve_km_and_close_to_it_on_the_field() {
        let scenario = Scenario::new(8, START);
        for s in samples(&scenario, 5.0) {
            if s.true_airspeed_mps < 15.0 {
                continue;
            }
            let ias = airspeed::indicated_mps(s.differential_pressure_pa);
            let tas =
                airspeed::true_mps(s.differential_pressure_pa, s.pressure_pa, s.outside_air_k);
            let Some(tas) = tas else {
                panic!("unphysical air at {}", s.t_s)
            };
            assert!((tas - s.true_airspeed_mps).abs() < 1e-6);
            let ratio = tas / ias;
            if s.altitude_m >= 12_000.0 {
                assert!((ratio - 2.0).abs() < 0.1, "{ratio} at {}", s.altitude_m);
            }
            if s.altitude_m < 2_000.0 {
                assert!((1.0..1.15).contains(&ratio), "{ratio} at {}", s.altitude_m);
            }
        }
    }

    #[test]
    fn position_moves_by_ground_speed_along_track() {
        let scenario = Scenario::new(11, START);
        for t in (300..6_000).step_by(97) {
            let (a, b) = (
                scenario.state_at(t as f64),
                scenario.state_at(t as f64 + 1.0),
            );
            let (bearing, distance) = bearing_distance(
                a.latitude_deg,
                a.longitude_deg,
                b.latitude_deg,
                b.longitude_deg,
            );
            if scenario.phase_at(t as f64) == Phase::Landed {
                continue;
            }
            assert!(
                (distance - b.ground_speed_mps).abs() < 0.02 * b.ground_speed_mps + 0.5,
                "t {t}: moved {distance} at {}",
                b.ground_speed_mps
            );
            if distance > 5.0 {
                let off = (bearing - b.track_deg + 540.0).rem_euclid(360.0) - 180.0;
                assert!(
                    off.abs() < 2.0,
                    "t {t}: bearing {bearing} track {}",
                    b.track_deg
                );
            }
        }
    }

    #[test]
    fn stays_near_the_wave_site_and_lands_near_the_field() {
        let scenario = Scenario::new(12, START);
        for s in samples(&scenario, 30.0) {
            let (_, distance) = bearing_distance(
                s.latitude_deg,
                s.longitude_deg,
                MINDEN.latitude_deg,
                MINDEN.longitude_deg,
            );
            assert!(distance < 40_000.0, "{distance} at {}", s.t_s);
        }
        let end = scenario.state_at(scenario.duration_s() + 3_600.0);
        let (_, distance) = bearing_distance(
            end.latitude_deg,
            end.longitude_deg,
            MINDEN.latitude_deg,
            MINDEN.longitude_deg,
        );
        assert!(distance < 2_000.0, "{distance}");
        assert_eq!(end.ground_speed_mps, 0.0);
        assert_eq!(end.vertical_speed_mps, 0.0);
        assert_eq!(end.true_airspeed_mps, 0.0);
        assert!((end.altitude_m - MINDEN.elevation_m).abs() < 1.0);
    }

    #[test]
    fn same_seed_same_flight_other_seed_other_flight() {
        let (a, b, c) = (
            Scenario::new(21, START),
            Scenario::new(21, START),
            Scenario::new(22, START),
        );
        assert_eq!(samples(&a, 13.0), samples(&b, 13.0));
        assert_ne!(a.state_at(3_000.0), c.state_at(3_000.0));
    }

    #[test]
    fn before_start_on_the_ground_and_utc_follows_time() {
        let scenario = Scenario::new(1, START);
        let before = scenario.state_at(-50.0);
        assert_eq!(before.altitude_m, MINDEN.elevation_m);
        assert_eq!(scenario.state_at(f64::NAN).utc_ns, START);
        assert_eq!(scenario.state_at(1.5).utc_ns, START + 1_500_000_000);
        assert_eq!(before.geoid_separation_m, MINDEN.geoid_separation_m);
    }

    #[test]
    fn box_is_warmer_than_outside_and_lags_it() {
        let scenario = Scenario::new(2, START);
        let states = samples(&scenario, 10.0);
        // Up to the descent: in a fast descent the cold-soaked box may lag below the air.
        for s in states
            .iter()
            .take_while(|s| scenario.phase_at(s.t_s) != Phase::Descent)
        {
            assert!(s.box_temperature_k > s.outside_air_k, "at {}", s.t_s);
        }
        // Lag: when the air stops cooling (the tropopause), the box is still cooling.
        let Some(tropopause) = states
            .iter()
            .find(|s| s.altitude_m >= atmosphere::TROPOPAUSE_M)
        else {
            panic!("never at the tropopause")
        };
        let later = scenario.state_at(tropopause.t_s + 600.0);
        assert!(later.box_temperature_k < tropopause.box_temperature_k - 1.0);
        assert!((later.outside_air_k - tropopause.outside_air_k).abs() < 1e-9);
    }

    #[test]
    fn humidity_co2_and_muon_rate_have_plausible_profiles() {
        for h in (0..13_000).step_by(250) {
            let h = h as f64;
            let rh = relative_humidity(h, MINDEN.elevation_m);
            assert!((0.0..=1.0).contains(&rh));
            let co2 = co2_mol_mol(h, MINDEN.elevation_m) * 1e6;
            assert!((410.0..432.0).contains(&co2), "{co2} ppm at {h}");
        }
        assert!((muon_rate_per_s(atmosphere::P0_PA) - 1.0).abs() < 0.05);
        let mut previous = 0.0;
        for h in (0..20_000).step_by(500) {
            let rate = muon_rate_per_s(atmosphere::pressure_pa(h as f64));
            assert!(rate >= previous, "{rate} at {h}");
            previous = rate;
        }
        let at_12km = muon_rate_per_s(atmosphere::pressure_pa(12_000.0));
        assert!((10.0..30.0).contains(&at_12km), "{at_12km}");
        assert_eq!(
            muon_rate_per_s(atmosphere::pressure_pa(25_000.0)),
            MUON_RATE_CAP_PER_S
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        #[test]
        fn any_time_gives_a_finite_physical_state(t in proptest::num::f64::ANY) {
            let scenario = Scenario::new(1, START);
            let s = scenario.state_at(t);
            for value in [
                s.t_s, s.latitude_deg, s.longitude_deg, s.altitude_m, s.ground_speed_mps,
                s.track_deg, s.vertical_speed_mps, s.pressure_pa, s.outside_air_k,
                s.box_temperature_k, s.relative_humidity, s.co2_mol_mol, s.true_airspeed_mps,
                s.differential_pressure_pa, s.muon_rate_per_s, s.attitude.heading_deg,
                s.attitude.roll_deg, s.attitude.pitch_deg, s.attitude.turn_rate_deg_s,
                s.attitude.load_factor, s.wind.speed_mps, s.wind.from_deg,
                s.air.ozone_mol_mol, s.air.pm2p5_kg_m3, s.power.cabin_temperature_k,
                s.power.battery_temperature_k, s.power.battery_voltage_v,
                s.power.battery_current_a, s.power.battery_soc,
            ] {
                proptest::prop_assert!(value.is_finite(), "{s:?}");
            }
            proptest::prop_assert!(s.pressure_pa > 0.0 && s.ground_speed_mps >= 0.0);
            proptest::prop_assert!((0.0..360.0).contains(&s.track_deg));
        }
    }

    #[test]
    fn ground_velocity_is_the_air_velocity_along_the_heading_plus_the_wind() {
        let scenario = Scenario::new(13, START);
        let mut airborne = 0;
        for s in samples(&scenario, 7.0) {
            let phase = scenario.phase_at(s.t_s);
            if matches!(phase, Phase::PreLaunch | Phase::Landed)
                || s.altitude_m < MINDEN.elevation_m + 10.0
            {
                continue;
            }
            airborne += 1;
            let heading = s.attitude.heading_deg.to_radians();
            let (wind_east, wind_north) = s.wind.velocity_en();
            let track = s.track_deg.to_radians();
            let east =
                s.ground_speed_mps * track.sin() - wind_east - s.true_airspeed_mps * heading.sin();
            let north =
                s.ground_speed_mps * track.cos() - wind_north - s.true_airspeed_mps * heading.cos();
            // Interpolating between 1 s rows in a turn costs a little.
            assert!(
                east.hypot(north) < 1.5,
                "{phase:?} at {}: off by {}",
                s.t_s,
                east.hypot(north)
            );
        }
        assert!(airborne > 500, "{airborne}");
    }

    #[test]
    fn the_descent_circles_at_thirty_degrees_of_bank_and_the_wind_veers_with_height() {
        for seed in [1, 14] {
            let scenario = Scenario::new(seed, START);
            let mut turned_deg = 0.0;
            let mut previous: Option<FlightState> = None;
            for s in samples(&scenario, 1.0) {
                assert!(
                    s.attitude.roll_deg.abs() <= 31.0,
                    "roll {} at {}",
                    s.attitude.roll_deg,
                    s.t_s
                );
                if let Some(p) = previous
                    && scenario.phase_at(s.t_s) == Phase::Descent
                    && s.attitude.roll_deg <= -29.0
                {
                    turned_deg += (p.attitude.heading_deg - s.attitude.heading_deg + 540.0)
                        .rem_euclid(360.0)
                        - 180.0;
                }
                previous = Some(s);
            }
            assert!(
                turned_deg > 3.0 * 360.0,
                "seed {seed}: turned {turned_deg}° circling"
            );
        }
        let scenario = Scenario::new(1, START);
        let low = scenario
            .weather
            .wind(MINDEN.elevation_m, MINDEN.elevation_m);
        let high = scenario.weather.wind(11_000.0, MINDEN.elevation_m);
        assert!(high.speed_mps > 5.0 * low.speed_mps);
        assert!(high.from_deg > low.from_deg + 30.0);
    }

    #[test]
    fn ozone_rises_towards_the_tropopause_and_particles_fall_with_height() {
        let field = MINDEN.elevation_m;
        let ppb = |h: f64| ozone_mol_mol(h, field) * 1e9;
        assert!((35.0..50.0).contains(&ppb(field)), "{}", ppb(field));
        assert!(ppb(12_000.0) > 4.0 * ppb(field), "{}", ppb(12_000.0));
        let mut previous = 0.0;
        for h in (0..13_000).step_by(100) {
            let o3 = ppb(h as f64);
            assert!(o3 >= previous, "{o3} at {h}");
            previous = o3;
        }
        let ug = |h: f64| pm2p5_kg_m3(h, field) * 1e9;
        assert!(ug(10_000.0) < ug(field) / 20.0);
        assert!(ug(12_000.0) > 0.0);
    }

    #[test]
    fn the_pack_cools_sags_and_recovers_in_the_descent() {
        let scenario = Scenario::new(15, START);
        let states = samples(&scenario, 10.0);
        let Some(first) = states.first() else {
            panic!("no states")
        };
        let Some(coldest) = states.iter().min_by(|a, b| {
            a.power
                .battery_voltage_v
                .total_cmp(&b.power.battery_voltage_v)
        }) else {
            panic!("no states")
        };
        let landed = scenario.state_at(scenario.duration_s());
        assert!(first.power.battery_voltage_v > 16.0, "{:?}", first.power);
        assert!(coldest.power.battery_voltage_v < first.power.battery_voltage_v - 3.0);
        assert!(
            coldest.power.battery_temperature_k < 263.15,
            "{:?}",
            coldest.power
        );
        assert!(landed.power.battery_voltage_v > coldest.power.battery_voltage_v + 1.0);
        assert!(landed.power.battery_temperature_k > coldest.power.battery_temperature_k + 5.0);
        assert!(landed.power.battery_soc > coldest.power.battery_soc);
        for s in &states {
            assert!((0.0..=1.0).contains(&s.power.battery_soc));
            assert!(s.power.battery_current_a > 0.0);
        }
    }

    #[test]
    fn turns_reverse_through_west() {
        assert_eq!(turn_toward(0.0, 180.0, 3.0), 357.0);
        assert_eq!(turn_toward(180.0, 0.0, 3.0), 183.0);
        assert_eq!(turn_toward(10.0, 20.0, 3.0), 13.0);
        assert!((lerp_angle_deg(350.0, 10.0, 0.5) - 0.0).abs() < 1e-9);
    }
}
