//! The simulated flight: one seeded scenario that drives every simulator coherently.
//!
//! An aerotow at a mountain-wave site, a climb in wave to 12 km, a cruise near the ceiling
//! and a descent ([`Scenario`], in [`scenario`]), through the ISA atmosphere (pressure to
//! ~194 hPa) made 6.5 K warmer so the outside air reaches the -50 °C the glider sees, with
//! airspeed, humidity, CO2 and a cosmic-ray rate that rises with altitude. Each simulator
//! adds its own seeded noise at its datasheet level from [`Noise`].
//!
//! Invariant: [`Scenario::state_at`] is a pure function of the seed and the time, so two
//! runs with one seed see the same flight.

mod noise;
pub mod scenario;

pub use noise::Noise;
pub use scenario::{MINDEN, Phase, Scenario, Site};

/// The true state of the glider and its air at one instant: what an ideal sensor reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlightState {
    /// Seconds since the scenario started.
    pub t_s: f64,
    /// UTC of this instant, ns since the Unix epoch.
    pub utc_ns: i64,
    /// Latitude, degrees north.
    pub latitude_deg: f64,
    /// Longitude, degrees east.
    pub longitude_deg: f64,
    /// Altitude above mean sea level, m.
    pub altitude_m: f64,
    /// Geoid height above the ellipsoid at this position, m.
    pub geoid_separation_m: f64,
    /// Speed over ground, m s-1.
    pub ground_speed_mps: f64,
    /// Course over ground, degrees from true north.
    pub track_deg: f64,
    /// Vertical speed, m s-1, positive up.
    pub vertical_speed_mps: f64,
    /// Static air pressure, Pa.
    pub pressure_pa: f64,
    /// Outside air temperature, K.
    pub outside_air_k: f64,
    /// Temperature inside the (heated, insulated) instrument box, K.
    pub box_temperature_k: f64,
    /// Relative humidity of the outside air, 0..1.
    pub relative_humidity: f64,
    /// CO2 mole fraction, mol mol-1.
    pub co2_mol_mol: f64,
    /// True airspeed, m s-1.
    pub true_airspeed_mps: f64,
    /// Pitot-static differential pressure at that airspeed, Pa.
    pub differential_pressure_pa: f64,
    /// Expected cosmic-ray (muon) event rate of a CosmicWatch detector, s-1.
    pub muon_rate_per_s: f64,
    /// How the airframe lies in the air.
    pub attitude: Attitude,
    /// The wind at the glider.
    pub wind: Wind,
    /// Trace gases and aerosol of the outside air.
    pub air: AirComposition,
    /// The cabin and the avionics battery.
    pub power: PowerState,
}

/// How the airframe lies: what an ideal artificial horizon shows.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Attitude {
    /// Heading of the nose, degrees clockwise from true north: the track less the crab
    /// angle the wind asks for.
    pub heading_deg: f64,
    /// Roll, degrees, right wing down positive: the bank of a coordinated turn.
    pub roll_deg: f64,
    /// Pitch, degrees, nose up positive: the flight path angle plus the angle of attack.
    pub pitch_deg: f64,
    /// Rate of change of the heading, degrees per second, clockwise positive.
    pub turn_rate_deg_s: f64,
    /// Load factor (lift over weight): 1 in straight flight, 1/cos(roll) in a level turn.
    pub load_factor: f64,
}

/// The wind at the glider: the truth the derived wind is held against.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Wind {
    /// Horizontal wind speed, m s-1.
    pub speed_mps: f64,
    /// Direction the wind blows from, degrees clockwise from true north.
    pub from_deg: f64,
}

impl Wind {
    /// The air's velocity over the ground, (east, north), m s-1.
    pub fn velocity_en(&self) -> (f64, f64) {
        let towards = (self.from_deg + 180.0).to_radians();
        (
            self.speed_mps * towards.sin(),
            self.speed_mps * towards.cos(),
        )
    }
}

/// Trace gases and aerosol of the outside air.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AirComposition {
    /// Ozone mole fraction, mol mol-1.
    pub ozone_mol_mol: f64,
    /// Mass concentration of particles up to 2.5 um, kg m-3 (a particle counter's
    /// simulator spreads it over its size bins with its own size distribution).
    pub pm2p5_kg_m3: f64,
}

/// The cabin and the avionics battery (a 4S lithium-ion pack in the cabin).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PowerState {
    /// Cabin air temperature, K: between the outside air and what the sun and the pilot
    /// add, with a lag.
    pub cabin_temperature_k: f64,
    /// Temperature of the pack, K: it follows the cabin with a lag of its own.
    pub battery_temperature_k: f64,
    /// Terminal voltage under load, V: the open-circuit voltage of the charge left, less
    /// the drop across the internal resistance, which grows in the cold.
    pub battery_voltage_v: f64,
    /// Current drawn, A (positive while discharging): the avionics, the Starlink terminal
    /// and the instrument box's heater, which draws more the colder the air.
    pub battery_current_a: f64,
    /// Charge left as a fraction of what the pack can deliver at its present temperature
    /// (0..1): it falls as charge is drawn and as the pack cools, and part of it comes back
    /// when the pack warms again.
    pub battery_soc: f64,
}

/// Scenario time as the simulators of one simulated flight see it: it starts at
/// `start_at_s` and runs `speed` times as fast as real time.
#[derive(Debug, Clone, Copy)]
pub struct FlightClock {
    started: std::time::Instant,
    start_at_s: f64,
    speed: f64,
}

impl FlightClock {
    /// A clock at `start_at_s` now; a speed that is not a positive number runs at 1.
    pub fn start(start_at_s: f64, speed: f64) -> Self {
        let speed = if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            1.0
        };
        FlightClock {
            started: std::time::Instant::now(),
            start_at_s,
            speed,
        }
    }

    /// Scenario time now, s.
    pub fn t_s(&self) -> f64 {
        self.start_at_s + self.started.elapsed().as_secs_f64() * self.speed
    }

    /// Simulated seconds per real second.
    pub fn speed(&self) -> f64 {
        self.speed
    }
}

/// The start UTC that makes a scenario's `start_at_s` happen now, by the host's wall clock:
/// the simulated world (and its GNSS time) runs on the host's time, whatever the agent
/// thinks of that clock.
pub fn start_utc_for_now(start_at_s: f64) -> i64 {
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
        .unwrap_or(0);
    now_ns - (start_at_s * 1e9) as i64
}

/// A test fixture: the true state at `altitude_m` in the plain ISA at time `t_s`, flying at
/// 30 m/s indicated, the box heated to 20 °C, 420 ppm CO2.
#[cfg(test)]
pub(crate) fn isa_state(altitude_m: f64, t_s: f64) -> FlightState {
    use crate::{airspeed, atmosphere};
    let p = atmosphere::pressure_pa(altitude_m);
    let t = atmosphere::temperature_k(altitude_m);
    let ias = 30.0;
    let tas = ias * (atmosphere::RHO0_KG_M3 / atmosphere::density_kg_m3(p, t)).sqrt();
    FlightState {
        t_s,
        utc_ns: 0,
        latitude_deg: 46.0,
        longitude_deg: 7.0,
        altitude_m,
        geoid_separation_m: 48.0,
        ground_speed_mps: tas,
        track_deg: 270.0,
        vertical_speed_mps: 2.0,
        pressure_pa: p,
        outside_air_k: t,
        box_temperature_k: 293.15,
        relative_humidity: 0.3,
        co2_mol_mol: 420e-6,
        true_airspeed_mps: tas,
        differential_pressure_pa: airspeed::differential_pa_for(tas, p, t),
        muon_rate_per_s: 1.0,
        attitude: Attitude {
            heading_deg: 270.0,
            load_factor: 1.0,
            ..Attitude::default()
        },
        wind: Wind::default(),
        air: AirComposition {
            ozone_mol_mol: 40e-9,
            pm2p5_kg_m3: 5e-9,
        },
        power: PowerState {
            cabin_temperature_k: 293.15,
            battery_temperature_k: 293.15,
            battery_voltage_v: 15.6,
            battery_current_a: 3.0,
            battery_soc: 0.8,
        },
    }
}
