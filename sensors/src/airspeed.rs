//! Airspeed from a pitot-static differential pressure.
//!
//! Indicated airspeed uses sea-level standard density (what the pilot's airspeed
//! indicator shows); true airspeed uses the density of the air actually flown through,
//! from static pressure and the *outside* air temperature (from the sensor the config
//! names as outside, never one inside the instrument box). Incompressible Bernoulli:
//! below Mach 0.3 (all a glider flies) the error is under 1 %.

use crate::atmosphere::{RHO0_KG_M3, density_kg_m3};

/// Indicated airspeed, m s-1, from differential pressure in Pa. Negative differential
/// pressure (sensor offset, tail wind on the ground) gives 0.
pub fn indicated_mps(differential_pa: f64) -> f64 {
    if differential_pa <= 0.0 {
        0.0
    } else {
        (2.0 * differential_pa / RHO0_KG_M3).sqrt()
    }
}

/// True airspeed, m s-1, from differential pressure, static pressure (Pa) and outside air
/// temperature (K). Returns `None` when the static pressure or temperature cannot be
/// physical (zero, negative or not finite).
pub fn true_mps(differential_pa: f64, static_pa: f64, outside_air_k: f64) -> Option<f64> {
    if !(static_pa.is_finite() && outside_air_k.is_finite())
        || static_pa <= 0.0
        || outside_air_k <= 0.0
    {
        return None;
    }
    if differential_pa <= 0.0 {
        return Some(0.0);
    }
    Some((2.0 * differential_pa / density_kg_m3(static_pa, outside_air_k)).sqrt())
}

/// Differential pressure that a pitot tube sees at `true_mps` in air of the given static
/// pressure and temperature: the inverse of [`true_mps`], used by the simulators.
pub fn differential_pa_for(true_mps: f64, static_pa: f64, outside_air_k: f64) -> f64 {
    0.5 * density_kg_m3(static_pa, outside_air_k) * true_mps * true_mps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atmosphere;

    #[test]
    fn at_sea_level_true_equals_indicated() {
        let dp = 1_000.0;
        let tas = true_mps(dp, atmosphere::P0_PA, atmosphere::T0_K).unwrap();
        assert!((tas - indicated_mps(dp)).abs() < 0.05);
        assert!((indicated_mps(dp) - 40.41).abs() < 0.01);
    }

    #[test]
    fn at_twelve_km_true_airspeed_is_about_twice_indicated() {
        let (p, t) = (
            atmosphere::pressure_pa(12_000.0),
            atmosphere::temperature_k(12_000.0),
        );
        let dp = differential_pa_for(60.0, p, t);
        let tas = true_mps(dp, p, t).unwrap();
        assert!((tas - 60.0).abs() < 1e-9);
        let ratio = tas / indicated_mps(dp);
        assert!((ratio - 2.0).abs() < 0.1, "{ratio}");
    }

    #[test]
    fn unphysical_inputs_are_refused() {
        assert_eq!(true_mps(100.0, 0.0, 250.0), None);
        assert_eq!(true_mps(100.0, 20_000.0, f64::NAN), None);
        assert_eq!(true_mps(-5.0, 20_000.0, 220.0), Some(0.0));
    }
}
