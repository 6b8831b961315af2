//! Seeded pseudo-random numbers and the few distributions the simulated detector draws
//! from, in integer arithmetic only.
//!
//! The generator is SplitMix64 (Steele, Lea and Flood, 2014): one 64-bit state, an odd
//! increment and a mixing function; it passes BigCrush and compiles to a handful of
//! instructions. The distributions use fixed point ([`neg_ln_q16`] from a bit-by-bit
//! base-2 logarithm), never floating point, so that the same seed draws the same numbers on
//! the host and on a Cortex-M3 without an FPU, and the firmware links no soft-float
//! logarithm.
//!
//! Invariant: every function here is total (no panic, no overflow) for every input.

/// ln 2 in Q16.16.
const LN2_Q16: u64 = 45_426;

/// A seeded SplitMix64 generator.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose sequence is a function of `seed` alone.
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The next 32 random bits (the high half, the better mixed one).
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in `0..n` (0 when `n` is 0), by multiply-shift: bias below 2^-32 · n.
    pub fn below(&mut self, n: u32) -> u32 {
        ((u64::from(self.next_u32()) * u64::from(n)) >> 32) as u32
    }

    /// An exponential variate of mean 1, Q16.16: −ln U for U uniform in (0, 1].
    /// At most 22.2 (U = 2^-32).
    pub fn exponential_q16(&mut self) -> u64 {
        neg_ln_q16(u64::from(self.next_u32()) + 1, 32)
    }

    /// An approximately standard normal variate, Q16.16: the sum of twelve uniforms minus
    /// six (Irwin–Hall), which is within ±6 and close to the normal density near zero,
    /// where the Moyal draw needs it.
    pub fn normal_q16(&mut self) -> i64 {
        let mut sum: i64 = 0;
        for _ in 0..6 {
            let bits = self.next_u32();
            sum += i64::from(bits >> 16) + i64::from(bits & 0xFFFF);
        }
        sum - 6 * 65_536
    }

    /// A standard Moyal variate (the Landau approximation), Q16.16:
    /// X = −2 ln |Z| for Z standard normal, since e^−X of a Moyal variate is χ² with one
    /// degree of freedom. Mode 0, mean γ + ln 2 ≈ 1.27, a long upper tail (capped at about
    /// 22 when |Z| rounds to its smallest step).
    pub fn moyal_q16(&mut self) -> i64 {
        let z = self.normal_q16().unsigned_abs().max(1);
        // |Z| = z / 2^16, so ln |Z| = ln z − 16 ln 2 and X = 2 (16 ln 2 − ln z)
        //     = 2 · neg_ln(z / 2^16) … which is negative when |Z| > 1.
        let ln_z = ln_q16(z);
        2 * (16 * LN2_Q16 as i64 - ln_z)
    }
}

/// log2(x) for x ≥ 1 (0 for 0), Q16.16: the integer part from the leading zeros, sixteen
/// fraction bits by repeated squaring of the mantissa.
pub fn log2_q16(x: u64) -> u64 {
    if x == 0 {
        return 0;
    }
    let int = 63 - u64::from(x.leading_zeros());
    // The mantissa in Q1.31: [2^31, 2^32).
    let mut m = if int >= 31 {
        x >> (int - 31)
    } else {
        x << (31 - int)
    };
    let mut frac = 0u64;
    for bit in (0..16).rev() {
        m = (m * m) >> 31;
        if m >= 1 << 32 {
            m >>= 1;
            frac |= 1 << bit;
        }
    }
    (int << 16) | frac
}

/// ln(x) for x ≥ 1, Q16.16.
pub fn ln_q16(x: u64) -> i64 {
    ((log2_q16(x) * LN2_Q16) >> 16) as i64
}

/// −ln(x / 2^bits) for 1 ≤ x ≤ 2^bits, Q16.16 (0 when x is at or above 2^bits).
pub fn neg_ln_q16(x: u64, bits: u32) -> u64 {
    let log2 = log2_q16(x.max(1));
    let whole = u64::from(bits.min(63)) << 16;
    (whole.saturating_sub(log2) * LN2_Q16) >> 16
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn log2_is_accurate_to_the_last_fraction_bit() {
        for (x, expected) in [
            (1u64, 0.0f64),
            (2, 1.0),
            (3, 1.584_962_5),
            (10, core::f64::consts::LOG2_10),
            (65_536, 16.0),
            (u64::MAX, 64.0),
        ] {
            let got = log2_q16(x) as f64 / 65_536.0;
            assert!((got - expected).abs() < 2.0 / 65_536.0, "log2({x}) = {got}");
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_sequence_and_another_seed_does_not() {
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            core::array::from_fn::<u64, 8, _>(|_| rng.next_u64())
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn exponential_has_mean_one() {
        let mut rng = Rng::new(1);
        let n = 100_000u64;
        let sum: u64 = (0..n).map(|_| rng.exponential_q16()).sum();
        let mean = sum as f64 / n as f64 / 65_536.0;
        assert!((mean - 1.0).abs() < 0.02, "mean {mean}");
    }

    #[test]
    fn moyal_has_its_mode_near_zero_and_its_mean_near_1_27() {
        let mut rng = Rng::new(2);
        let n = 100_000;
        let draws: std::vec::Vec<f64> = (0..n).map(|_| rng.moyal_q16() as f64 / 65_536.0).collect();
        let mean = draws.iter().sum::<f64>() / n as f64;
        assert!((mean - 1.27).abs() < 0.05, "mean {mean}");
        // The Moyal CDF at 0 is erfc(1/√2) ≈ 0.317, at 2 about 0.713.
        let below = |x: f64| draws.iter().filter(|&&d| d < x).count() as f64 / n as f64;
        assert!((below(0.0) - 0.317).abs() < 0.01, "{}", below(0.0));
        assert!((below(2.0) - 0.713).abs() < 0.01, "{}", below(2.0));
        assert!(draws.iter().all(|&d| d > -3.6));
    }

    #[test]
    fn below_stays_below() {
        let mut rng = Rng::new(3);
        assert_eq!(rng.below(0), 0);
        assert!((0..1000).all(|_| rng.below(7) < 7));
    }

    extern crate std;
}
