//! Circling drift: the wind from a full circle of GNSS ground velocities, as glider flight
//! computers (XCSoar's CirclingWind, LXNAV) find it while thermalling.
//!
//! In a steady turn the air velocity (TAS along the heading) turns through every direction
//! while the wind stays; so the ground velocities, wind plus air velocity, lie on a circle
//! of radius TAS around the wind. Neither the heading nor the airspeed is needed: a
//! least-squares circle through the ground velocities of one full turn gives the wind as
//! its centre (and the mean TAS as its radius, a check).
//!
//! Circling is detected from the track alone: consecutive fixes turning the same way at
//! least [`MIN_TURN_RATE_DEG_S`]; a fix that turns slower or the other way, a gap of more
//! than [`MAX_GAP_S`] or a near-zero ground speed ends the turn. A fit is made only over
//! at least 360° of track, so that a TAS or GNSS speed error, the same all round, moves the
//! radius and not the centre.
//!
//! Invariants: fixes closer than [`MIN_SPACING_S`] to the previous one are skipped (a
//! 10 Hz receiver's track noise would otherwise look like turn reversals); nothing here
//! panics, and a fit that is not a circle (collinear points, a poor residual) is refused.

use std::collections::VecDeque;

use super::{Velocity, angle_diff_deg};

/// Slowest track rate counted as circling, degrees per second. The track turns slowest
/// downwind, at the turn rate times TAS / (TAS + wind): about 4°/s for a glider at 48 m/s
/// TAS in 30 m/s of wind at 30° of bank, 2.5°/s at 20°. Measured over [`RATE_SPAN_S`],
/// half a degree of track noise makes 0.2°/s: straight flight stays well below.
pub const MIN_TURN_RATE_DEG_S: f64 = 1.0;
/// A longer gap between fixes ends the turn, s.
pub const MAX_GAP_S: f64 = 5.0;
/// Fixes closer than this to the previous kept one are skipped, s.
pub const MIN_SPACING_S: f64 = 0.5;
/// The turn rate is measured over at least this long (or since the turn began), so that
/// half a degree of track noise per fix does not look like a turn ending, s.
pub const RATE_SPAN_S: f64 = 4.0;
/// A full circle must hold at least this many fixes.
pub const MIN_SAMPLES: usize = 8;
/// A circle that took longer is refused: the wind changed under it, s.
pub const MAX_CIRCLE_S: f64 = 120.0;
/// Below this ground speed the track means nothing, m s-1.
const MIN_GROUND_SPEED_MPS: f64 = 1.0;
/// A circle of airspeeds below this is no glider's, m s-1.
const MIN_RADIUS_MPS: f64 = 5.0;
/// Largest RMS distance of the fixes from the fitted circle, as a fraction of its radius.
const MAX_RELATIVE_RESIDUAL: f64 = 0.2;
/// Fixes kept at most (a few circles at 1-2 Hz).
const MAX_SAMPLES: usize = 512;

/// A least-squares circle through ground velocities.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CircleFit {
    /// The centre: the wind.
    pub centre: Velocity,
    /// The radius: the mean true airspeed over the circle, m s-1.
    pub radius: f64,
    /// RMS distance of the points from the circle, m s-1.
    pub rms_residual: f64,
    /// Points fitted.
    pub samples: usize,
}

/// The algebraic (Kåsa) least-squares circle through `points`: minimises the squared
/// residual of `x² + y² + D x + E y + F`, solved on coordinates centred on the points'
/// mean for numerical stability. `None` for fewer than three points or collinear ones.
/// Unbiased for a full circle; on a short arc with noise it pulls the radius in.
pub fn fit_circle(points: &[Velocity]) -> Option<CircleFit> {
    if points.len() < 3 || points.iter().any(|p| !p.is_finite()) {
        return None;
    }
    let n = points.len() as f64;
    let mean_e = points.iter().map(|p| p.east).sum::<f64>() / n;
    let mean_n = points.iter().map(|p| p.north).sum::<f64>() / n;
    let (mut suu, mut svv, mut suv, mut suuu, mut svvv, mut suvv, mut svuu) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for p in points {
        let u = p.east - mean_e;
        let v = p.north - mean_n;
        suu += u * u;
        svv += v * v;
        suv += u * v;
        suuu += u * u * u;
        svvv += v * v * v;
        suvv += u * v * v;
        svuu += v * u * u;
    }
    let det = suu * svv - suv * suv;
    // Collinear (or coincident) points: no circle. Relative to the spread's square.
    let scale = (suu + svv) * (suu + svv);
    // (Finite points make finite sums; the check also refuses NaN.)
    let well_posed = det > 1e-9 * scale && scale > 0.0;
    if !well_posed {
        return None;
    }
    let b1 = 0.5 * (suuu + suvv);
    let b2 = 0.5 * (svvv + svuu);
    let uc = (svv * b1 - suv * b2) / det;
    let vc = (suu * b2 - suv * b1) / det;
    let radius = (uc * uc + vc * vc + (suu + svv) / n).sqrt();
    let centre = Velocity {
        east: uc + mean_e,
        north: vc + mean_n,
    };
    let rms_residual = (points
        .iter()
        .map(|p| {
            let d = (p.east - centre.east).hypot(p.north - centre.north) - radius;
            d * d
        })
        .sum::<f64>()
        / n)
        .sqrt();
    (centre.is_finite() && radius.is_finite()).then_some(CircleFit {
        centre,
        radius,
        rms_residual,
        samples: points.len(),
    })
}

#[derive(Debug, Clone, Copy)]
struct Fix {
    t_s: f64,
    velocity: Velocity,
    track_deg: f64,
}

/// The ground velocities of the turn in progress, and the wind from its last full circle.
#[derive(Debug, Clone, Default)]
pub struct CirclingWind {
    fixes: VecDeque<Fix>,
    /// +1 turning right, -1 left, 0 not (yet) turning.
    turn_sign: f64,
}

impl CirclingWind {
    /// A detector that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the ground velocity of a fix taken at `t_s`. An older or repeated fix is
    /// ignored.
    pub fn push(&mut self, t_s: f64, velocity: Velocity) {
        if !t_s.is_finite() || !velocity.is_finite() {
            return;
        }
        let track_deg = velocity.towards_deg();
        let fix = Fix {
            t_s,
            velocity,
            track_deg,
        };
        if let Some(last) = self.fixes.back().copied() {
            let dt = t_s - last.t_s;
            if dt < MIN_SPACING_S {
                return;
            }
            // The newest fix at least RATE_SPAN_S back, else the turn's first.
            let base = self
                .fixes
                .iter()
                .rev()
                .find(|f| t_s - f.t_s >= RATE_SPAN_S)
                .or(self.fixes.front())
                .copied()
                .unwrap_or(last);
            let rate = angle_diff_deg(base.track_deg, track_deg) / (t_s - base.t_s);
            let turning = dt <= MAX_GAP_S
                && velocity.speed() >= MIN_GROUND_SPEED_MPS
                && last.velocity.speed() >= MIN_GROUND_SPEED_MPS
                && rate.abs() >= MIN_TURN_RATE_DEG_S
                && (self.turn_sign == 0.0 || rate.signum() == self.turn_sign);
            if turning {
                self.turn_sign = rate.signum();
            } else {
                // The turn ended: this fix may start the next one.
                self.fixes.clear();
                self.turn_sign = 0.0;
            }
        }
        self.fixes.push_back(fix);
        while self.fixes.len() > MAX_SAMPLES
            || self
                .fixes
                .front()
                .is_some_and(|f| t_s - f.t_s > 2.0 * MAX_CIRCLE_S)
        {
            self.fixes.pop_front();
        }
    }

    /// Whether the last fixes turn steadily one way.
    pub fn is_turning(&self) -> bool {
        self.turn_sign != 0.0
    }

    /// Degrees of track turned the turn's way since the turn began (within what is
    /// kept): signed, so that track noise cancels instead of adding up.
    pub fn turned_deg(&self) -> f64 {
        self.fixes
            .iter()
            .zip(self.fixes.iter().skip(1))
            .map(|(a, b)| angle_diff_deg(a.track_deg, b.track_deg) * self.turn_sign)
            .sum()
    }

    /// The circle through the fixes of the newest full turn (360° of track), if one has
    /// been flown within [`MAX_CIRCLE_S`] and the fixes lie on a circle.
    pub fn estimate(&self) -> Option<CircleFit> {
        if !self.is_turning() {
            return None;
        }
        let mut turned = 0.0;
        let mut first = None;
        for i in (1..self.fixes.len()).rev() {
            let (a, b) = (self.fixes.get(i - 1)?, self.fixes.get(i)?);
            turned += angle_diff_deg(a.track_deg, b.track_deg) * self.turn_sign;
            if turned >= 360.0 {
                first = Some(i - 1);
                break;
            }
        }
        let first = first?;
        let newest = self.fixes.back()?;
        let oldest = self.fixes.get(first)?;
        if newest.t_s - oldest.t_s > MAX_CIRCLE_S {
            return None;
        }
        // The first fix repeats the last one's direction: leave it out so that no part of
        // the circle counts twice.
        let points: Vec<Velocity> = self
            .fixes
            .iter()
            .skip(first + 1)
            .map(|f| f.velocity)
            .collect();
        if points.len() < MIN_SAMPLES {
            return None;
        }
        let fit = fit_circle(&points)?;
        (fit.radius >= MIN_RADIUS_MPS && fit.rms_residual <= MAX_RELATIVE_RESIDUAL * fit.radius)
            .then_some(fit)
    }
}
