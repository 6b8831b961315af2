//! Where the front end's pulses come from: the [`PulseSource`] seam, and the seeded
//! [`SimulatedDetector`] behind it.
//!
//! A source reports the pulses of a SiPM channel pair in arrival order, with their arrival
//! time (ns since the front end started) and their height (mV at the peak detector); the
//! front end discriminates, pairs and batches them. A real board implements the trait over
//! its comparators' timer captures and its peak-hold ADC; emulation and the agent's
//! simulator use [`SimulatedDetector`].
//!
//! # The pulse model
//!
//! Three independent Poisson processes, each with its own generator seeded from the one
//! seed (so that changing one rate leaves the others' pulses where they were):
//!
//! - muons through both scintillators at [`DetectorModel::muon_rate_mhz`]: a pulse on A at
//!   the arrival and on B up to [`DetectorModel::muon_skew_ns`] later (uniform), each height
//!   an independent Moyal (Landau-like) draw, `mpv + width · X`, with the most probable value
//!   [`DetectorModel::muon_mpv_mv`] and the width [`DetectorModel::muon_width_mv`];
//! - singles on each channel at [`DetectorModel::singles_rate_mhz`] (dark counts,
//!   crosstalk, gammas: pulses on one channel only), heights exponential with mean
//!   [`DetectorModel::singles_mean_mv`], so a higher threshold cuts them steeply.
//!
//! Every height is scaled by the SiPM's gain at the temperature of the moment:
//! `1 + gain_permille_per_c / 1000 · (T − 25 °C)` (at fixed bias the overvoltage, and with
//! it the gain, falls as the breakdown voltage rises with temperature), and capped at
//! [`MAX_PULSE_MV`], the peak detector's full scale. The temperature follows a triangle
//! wave between `temperature_centi_c ± temperature_swing_centi_c` with period
//! `temperature_period_s`, starting at its lowest.
//!
//! Invariants: pulses come out in non-decreasing time order; the sequence is a function of
//! the seed and the model alone, whatever the pattern of [`PulseSource::next_pulse`] calls;
//! integer arithmetic only (the same pulses on the host and on the MCU).

use crate::random::Rng;

/// The peak detector's full scale, mV: no pulse is reported higher.
pub const MAX_PULSE_MV: u16 = 3_300;

/// One of the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Channel A.
    A,
    /// Channel B.
    B,
}

/// A pulse on one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pulse {
    /// When it arrived, ns since the front end started.
    pub at_ns: u64,
    /// Which channel.
    pub channel: Channel,
    /// Its height at the peak detector, mV.
    pub height_mv: u16,
}

/// The pulses of a SiPM channel pair, in arrival order.
pub trait PulseSource {
    /// The next pulse that arrived before `until_ns` (ns since start), or `None` when there
    /// is none (yet). Successive pulses never go back in time; a pulse is returned once.
    fn next_pulse(&mut self, until_ns: u64) -> Option<Pulse>;

    /// The detector's temperature at `now_ns`, hundredths of °C.
    fn temperature_centi_c(&mut self, now_ns: u64) -> i16;

    /// The discriminator threshold changed: a board with comparators sets their reference
    /// here (the front end discriminates in software as well, so a source need not).
    fn threshold_changed(&mut self, _threshold_mv: u16) {}
}

/// The simulated detector's parameters (see the module docs for the model).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DetectorModel {
    /// Muons through both scintillators, mHz.
    pub muon_rate_mhz: u32,
    /// The most B's pulse of a muon lags A's, ns.
    pub muon_skew_ns: u32,
    /// The most probable muon pulse height at 25 °C, mV.
    pub muon_mpv_mv: u16,
    /// The width (scale) of the muon pulse heights, mV.
    pub muon_width_mv: u16,
    /// Single-channel pulses on each channel, before the discriminator, mHz.
    pub singles_rate_mhz: u32,
    /// The mean height of single-channel pulses at 25 °C, mV.
    pub singles_mean_mv: u16,
    /// The mean temperature, hundredths of °C.
    pub temperature_centi_c: i16,
    /// Half the temperature's peak-to-peak swing, hundredths of °C.
    pub temperature_swing_centi_c: i16,
    /// The temperature's period, s.
    pub temperature_period_s: u32,
    /// The gain's change per °C, ‰ (negative: SiPM gain falls as it warms).
    pub gain_permille_per_c: i16,
}

impl Default for DetectorModel {
    /// Two 5 cm scintillator tiles on the ground: about 3 muons a second through both,
    /// 40 single-channel pulses a second per channel (mean 12 mV) before the discriminator,
    /// a muon's most probable pulse 80 mV wide 10 mV, 22 ± 3 °C over 20 minutes, −0.8 %/°C.
    fn default() -> Self {
        Self {
            muon_rate_mhz: 3_000,
            muon_skew_ns: 20,
            muon_mpv_mv: 80,
            muon_width_mv: 10,
            singles_rate_mhz: 40_000,
            singles_mean_mv: 12,
            temperature_centi_c: 2_200,
            temperature_swing_centi_c: 300,
            temperature_period_s: 1_200,
            gain_permille_per_c: -8,
        }
    }
}

/// A Poisson stream's generator and its next arrival.
#[derive(Debug, Clone)]
struct Stream {
    rng: Rng,
    /// The next arrival, ns; `None` while the rate is 0.
    next_ns: Option<u64>,
}

impl Stream {
    fn new(seed: u64, salt: u64, rate_mhz: u32) -> Self {
        // The salt separates the streams; SplitMix's own mixing decorrelates them.
        let mut seeder = Rng::new(seed ^ salt);
        let mut stream = Self {
            rng: Rng::new(seeder.next_u64()),
            next_ns: None,
        };
        stream.next_ns = stream.gap_ns(rate_mhz);
        stream
    }

    /// An exponential gap at `rate_mhz`, ns (`None` at rate 0).
    fn gap_ns(&mut self, rate_mhz: u32) -> Option<u64> {
        if rate_mhz == 0 {
            return None;
        }
        // −ln U (Q16, at most 22.2 · 2^16) · 10^12 fits u64 (1.5 · 10^18).
        Some((self.rng.exponential_q16() * 1_000_000_000_000 / u64::from(rate_mhz)) >> 16)
    }

    fn advance(&mut self, from_ns: u64, rate_mhz: u32) {
        self.next_ns = self.gap_ns(rate_mhz).map(|gap| from_ns.saturating_add(gap));
    }
}

/// A seeded simulated SiPM channel pair (see the module docs).
#[derive(Debug, Clone)]
pub struct SimulatedDetector {
    model: DetectorModel,
    muons: Stream,
    singles_a: Stream,
    singles_b: Stream,
    /// B's pulse of the last muon, not yet reported.
    muon_b: Option<Pulse>,
    /// The last pulse reported, ns: nothing goes out before it.
    last_ns: u64,
}

impl SimulatedDetector {
    /// A detector of `model` whose pulses are a function of `seed`.
    pub fn new(model: DetectorModel, seed: u64) -> Self {
        Self {
            model,
            muons: Stream::new(seed, 0x6D75_6F6E, model.muon_rate_mhz),
            singles_a: Stream::new(seed, 0x7369_6E41, model.singles_rate_mhz),
            singles_b: Stream::new(seed, 0x7369_6E42, model.singles_rate_mhz),
            muon_b: None,
            last_ns: 0,
        }
    }

    /// The model.
    pub fn model(&self) -> &DetectorModel {
        &self.model
    }

    /// The temperature at `at_ns` (see the module docs), hundredths of °C.
    pub fn temperature_at(&self, at_ns: u64) -> i16 {
        let m = &self.model;
        let period_ms = u64::from(m.temperature_period_s.max(1)) * 1_000;
        let half = period_ms / 2;
        let phase = (at_ns / 1_000_000) % period_ms;
        let rise = if phase < half {
            phase
        } else {
            period_ms - phase
        };
        let swing = i64::from(m.temperature_swing_centi_c);
        let t =
            i64::from(m.temperature_centi_c) - swing + 2 * swing * rise as i64 / half.max(1) as i64;
        t.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16
    }

    /// A height of `nominal_q16` mV (Q16.16) at 25 °C, scaled by the gain at `at_ns`.
    fn height_mv(&self, nominal_q16: i64, at_ns: u64) -> u16 {
        let t = i64::from(self.temperature_at(at_ns));
        let gain_permille = 1_000 + i64::from(self.model.gain_permille_per_c) * (t - 2_500) / 100;
        let mv = ((nominal_q16.max(0) >> 8) * gain_permille.max(0) / 1_000) >> 8;
        mv.clamp(0, i64::from(MAX_PULSE_MV)) as u16
    }

    fn muon_height(&mut self, at_ns: u64) -> u16 {
        let x = self.muons.rng.moyal_q16();
        let mpv = i64::from(self.model.muon_mpv_mv) << 16;
        let nominal = mpv + i64::from(self.model.muon_width_mv) * x;
        self.height_mv(nominal, at_ns)
    }

    fn single_height(stream: &mut Stream, mean_mv: u16) -> i64 {
        (stream.rng.exponential_q16() * u64::from(mean_mv)).min(i64::MAX as u64) as i64
    }
}

impl PulseSource for SimulatedDetector {
    fn next_pulse(&mut self, until_ns: u64) -> Option<Pulse> {
        // The earliest of the four candidates; ties go to the last muon's B, a new muon, A, B.
        let muon = self.muons.next_ns;
        let muon_b = self.muon_b.map(|p| p.at_ns);
        let a = self.singles_a.next_ns;
        let b = self.singles_b.next_ns;
        let earliest = [muon, muon_b, a, b].into_iter().flatten().min()?;
        if earliest >= until_ns {
            return None;
        }
        let at_ns = earliest.max(self.last_ns);
        self.last_ns = at_ns;
        let pulse = if muon_b == Some(earliest) {
            // Before a muon at the same instant: the pending pulse is never overwritten.
            self.muon_b.take()?
        } else if muon == Some(earliest) {
            let height_a = self.muon_height(at_ns);
            let skew = u64::from(
                self.muons
                    .rng
                    .below(self.model.muon_skew_ns.saturating_add(1)),
            );
            let height_b = self.muon_height(at_ns.saturating_add(skew));
            self.muon_b = Some(Pulse {
                at_ns: at_ns.saturating_add(skew),
                channel: Channel::B,
                height_mv: height_b,
            });
            // The next muon is drawn from this one (memoryless); it never precedes B's pulse.
            self.muons.advance(at_ns, self.model.muon_rate_mhz);
            self.muons.next_ns = self
                .muons
                .next_ns
                .map(|n| n.max(at_ns.saturating_add(skew)));
            Pulse {
                at_ns,
                channel: Channel::A,
                height_mv: height_a,
            }
        } else if a == Some(earliest) {
            let nominal = Self::single_height(&mut self.singles_a, self.model.singles_mean_mv);
            self.singles_a.advance(at_ns, self.model.singles_rate_mhz);
            Pulse {
                at_ns,
                channel: Channel::A,
                height_mv: self.height_mv(nominal, at_ns),
            }
        } else {
            let nominal = Self::single_height(&mut self.singles_b, self.model.singles_mean_mv);
            self.singles_b.advance(at_ns, self.model.singles_rate_mhz);
            Pulse {
                at_ns,
                channel: Channel::B,
                height_mv: self.height_mv(nominal, at_ns),
            }
        };
        Some(pulse)
    }

    fn temperature_centi_c(&mut self, now_ns: u64) -> i16 {
        self.temperature_at(now_ns)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    extern crate std;

    use std::vec::Vec;

    use super::*;

    fn pulses(seed: u64, until_ns: u64, step_ns: u64) -> Vec<Pulse> {
        let mut detector = SimulatedDetector::new(DetectorModel::default(), seed);
        let mut out = Vec::new();
        let mut now = 0;
        while now < until_ns {
            now = (now + step_ns).min(until_ns);
            while let Some(p) = detector.next_pulse(now) {
                assert!(p.at_ns < now);
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn the_same_seed_gives_the_same_pulses_however_often_it_is_asked() {
        let coarse = pulses(11, 30_000_000_000, 1_000_000_000);
        let fine = pulses(11, 30_000_000_000, 7_000_000);
        assert!(coarse.len() > 500, "{}", coarse.len());
        assert_eq!(coarse, fine);
        assert_ne!(coarse, pulses(12, 30_000_000_000, 1_000_000_000));
    }

    #[test]
    fn pulses_come_in_time_order_at_the_model_rates() {
        let all = pulses(5, 100_000_000_000, 250_000_000);
        assert!(all.windows(2).all(|w| w[0].at_ns <= w[1].at_ns));
        // 100 s: muons 3/s on both channels, singles 40/s on each.
        let on = |c| all.iter().filter(|p| p.channel == c).count() as f64 / 100.0;
        for c in [Channel::A, Channel::B] {
            let rate = on(c);
            assert!((rate - 43.0).abs() < 43.0 * 0.05, "{c:?}: {rate}/s");
        }
    }

    #[test]
    fn muon_heights_peak_at_the_most_probable_value() {
        let model = DetectorModel {
            singles_rate_mhz: 0,
            temperature_swing_centi_c: 0,
            temperature_centi_c: 2_500,
            ..DetectorModel::default()
        };
        let mut detector = SimulatedDetector::new(model, 3);
        let mut heights = Vec::new();
        while let Some(p) = detector.next_pulse(2_000_000_000_000) {
            heights.push(p.height_mv);
        }
        // A histogram in 10 mV bins: the fullest is the one holding the mpv (80 mV).
        let mut bins = [0u32; 40];
        for h in &heights {
            bins[usize::from(*h / 10).min(39)] += 1;
        }
        let fullest = (0..40).max_by_key(|&i| bins[i]).unwrap();
        assert!((7..=8).contains(&fullest), "{bins:?}");
        // The Landau tail: about 29 % above mpv + 2 widths.
        let tail = heights.iter().filter(|&&h| h >= 100).count() as f64 / heights.len() as f64;
        assert!((tail - 0.287).abs() < 0.02, "{tail}");
    }

    #[test]
    fn warming_lowers_the_gain() {
        let model = DetectorModel::default();
        let detector = SimulatedDetector::new(model, 1);
        let cold = detector.height_mv(100 << 16, 0);
        let half_period_ns = u64::from(model.temperature_period_s) * 500_000_000;
        let warm = detector.height_mv(100 << 16, half_period_ns);
        assert_eq!(detector.temperature_at(0), 1_900);
        assert_eq!(detector.temperature_at(half_period_ns), 2_500);
        assert!(warm < cold, "{warm} !< {cold}");
        assert_eq!(warm, 100);
    }

    #[test]
    fn every_muon_pulses_both_channels_even_when_muons_crowd() {
        // A million a second: 2 % of the gaps (mean 1 µs) are shorter than the 20 ns skew.
        let model = DetectorModel {
            muon_rate_mhz: 1_000_000_000,
            singles_rate_mhz: 0,
            ..DetectorModel::default()
        };
        let mut detector = SimulatedDetector::new(model, 4);
        let mut last = 0;
        let (mut a, mut b) = (0u32, 0u32);
        while let Some(p) = detector.next_pulse(10_000_000) {
            assert!(p.at_ns >= last);
            last = p.at_ns;
            match p.channel {
                Channel::A => a += 1,
                Channel::B => b += 1,
            }
        }
        assert!(a > 9_000, "{a}");
        assert!(a - b <= 1, "{a} muons, {b} pulses on B");
    }

    #[test]
    fn a_zero_rate_stream_is_silent() {
        let model = DetectorModel {
            muon_rate_mhz: 0,
            singles_rate_mhz: 0,
            ..DetectorModel::default()
        };
        let mut detector = SimulatedDetector::new(model, 1);
        assert_eq!(detector.next_pulse(u64::MAX), None);
    }
}
