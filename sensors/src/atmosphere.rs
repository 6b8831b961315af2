//! The ICAO standard atmosphere (ISA) up to 20 km: the reference that the flight
//! scenario flies through and that pressure altitude is defined against.
//!
//! Invariant: pure functions of altitude or pressure, SI units (m, Pa, K, kg m-3).

/// Sea-level standard pressure, Pa.
pub const P0_PA: f64 = 101_325.0;
/// Sea-level standard temperature, K.
pub const T0_K: f64 = 288.15;
/// Sea-level standard density, kg m-3.
pub const RHO0_KG_M3: f64 = 1.225;
/// Specific gas constant of dry air, J kg-1 K-1.
pub const R_DRY_AIR: f64 = 287.052_87;
/// Standard gravity, m s-2.
pub const G0: f64 = 9.806_65;
/// Tropospheric lapse rate, K m-1.
pub const LAPSE_K_PER_M: f64 = 0.0065;
/// Geopotential altitude of the tropopause, m.
pub const TROPOPAUSE_M: f64 = 11_000.0;
/// Temperature of the lower stratosphere, K.
pub const T_TROPOPAUSE_K: f64 = 216.65;
/// Pressure at the tropopause, Pa.
pub const P_TROPOPAUSE_PA: f64 = 22_632.06;

/// ISA temperature at `altitude_m` (geopotential), K.
pub fn temperature_k(altitude_m: f64) -> f64 {
    if altitude_m <= TROPOPAUSE_M {
        T0_K - LAPSE_K_PER_M * altitude_m
    } else {
        T_TROPOPAUSE_K
    }
}

/// ISA pressure at `altitude_m` (geopotential), Pa.
pub fn pressure_pa(altitude_m: f64) -> f64 {
    let exponent = G0 / (R_DRY_AIR * LAPSE_K_PER_M);
    if altitude_m <= TROPOPAUSE_M {
        P0_PA * (temperature_k(altitude_m) / T0_K).powf(exponent)
    } else {
        P_TROPOPAUSE_PA * (-G0 * (altitude_m - TROPOPAUSE_M) / (R_DRY_AIR * T_TROPOPAUSE_K)).exp()
    }
}

/// Pressure altitude: the ISA altitude at which the standard pressure is `pressure_pa`, m.
pub fn pressure_altitude_m(pressure_pa: f64) -> f64 {
    let exponent = R_DRY_AIR * LAPSE_K_PER_M / G0;
    if pressure_pa >= P_TROPOPAUSE_PA {
        (T0_K / LAPSE_K_PER_M) * (1.0 - (pressure_pa / P0_PA).powf(exponent))
    } else {
        TROPOPAUSE_M - (R_DRY_AIR * T_TROPOPAUSE_K / G0) * (pressure_pa / P_TROPOPAUSE_PA).ln()
    }
}

/// Density of dry air at `pressure_pa` and `temperature_k`, kg m-3.
pub fn density_kg_m3(pressure_pa: f64, temperature_k: f64) -> f64 {
    pressure_pa / (R_DRY_AIR * temperature_k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_values_match_the_icao_table() {
        assert!((pressure_pa(0.0) - 101_325.0).abs() < 0.01);
        // ICAO table: 5 000 m -> 54 020 Pa, 255.65 K; 12 000 m -> 19 330 Pa, 216.65 K.
        assert!((pressure_pa(5_000.0) - 54_020.0).abs() < 10.0);
        assert!((temperature_k(5_000.0) - 255.65).abs() < 1e-9);
        assert!((pressure_pa(12_000.0) - 19_330.0).abs() < 10.0);
        assert!((temperature_k(12_000.0) - 216.65).abs() < 1e-9);
        assert!((density_kg_m3(P0_PA, T0_K) - RHO0_KG_M3).abs() < 1e-3);
    }

    #[test]
    fn pressure_altitude_inverts_pressure() {
        for h in [0.0, 1_234.0, 8_000.0, 11_000.0, 12_000.0, 15_000.0] {
            assert!(
                (pressure_altitude_m(pressure_pa(h)) - h).abs() < 0.01,
                "{h}"
            );
        }
    }
}
