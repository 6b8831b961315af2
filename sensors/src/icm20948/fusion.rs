//! Attitude from the IMU's samples: a Mahony complementary filter on the quaternion, with
//! the centripetal acceleration of a turn taken out of the accelerometer before it is
//! trusted as "down".
//!
//! The gyroscope carries the attitude; the accelerometer pulls roll and pitch towards the
//! measured down direction and the magnetometer pulls only the heading (its correction is
//! projected on the down axis, so the field's dip and a mis-calibration do not tilt the
//! horizon); an integral term learns the gyroscope's bias. In a coordinated turn the
//! accelerometer does not point at gravity: it measures `ω × v − g`, and with the airframe's
//! velocity taken as (TAS, 0, 0) in body axes the filter uses `f − ω × (TAS, 0, 0)`. Without
//! a true airspeed the accelerometer is used only while its magnitude is within 5 % of g
//! (an uncompensated 30° turn reads 1.15 g), at a fifth of its weight, and the output says
//! its input was degraded. The GNSS ground speed is no stand-in: it differs from the
//! airspeed by the wind along the track, up to 30 m/s in the wave, which in a 30° turn
//! would tilt the horizon by some 20°, in a direction the magnitude gate cannot see.
//!
//! Invariants: angles in degrees, heading from true north (magnetic heading plus the
//! declination) in 0..360; the estimate is marked unconverged until the filter has run
//! [`CONVERGENCE_S`] on samples with valid accelerometer and magnetometer data; no input
//! (NaN, zero vectors) makes it panic or produce a non-finite angle.

use super::{BodySample, G};

/// The magnetic declination added to the magnetic heading, degrees east: the home site's,
/// Minden-Tahoe (about 13° E, as the World Magnetic Model's charts show it there); the
/// agent's `declination_deg` tunable sets another.
pub const DECLINATION_DEG: f64 = 13.0;
/// Seconds of valid samples after which the estimate is trusted.
pub const CONVERGENCE_S: f64 = 4.0;
/// Seconds of high gains at the start (the filter starts from the accelerometer's and
/// magnetometer's own attitude, then settles).
const SETTLE_S: f64 = 2.0;
/// Proportional gain on the accelerometer's error, rad s-1 per rad.
const KP_ACCEL: f64 = 1.0;
/// Proportional gain on the magnetometer's (heading) error.
const KP_MAG: f64 = 0.5;
/// How far from 1 g the compensated specific force may be and still count as gravity, as a
/// fraction of g: with the true airspeed (gusts, sideslip), and without it (a residual of
/// 0.05 g tilts by 3° at most; an uncompensated turn past 18° of bank reads more).
const TRUSTED_GATE: f64 = 0.5;
const UNTRUSTED_GATE: f64 = 0.05;
/// The accelerometer's weight without a true airspeed: a shallow turn the gate lets through
/// pulls the horizon towards level five times slower.
const UNTRUSTED_ACCEL_WEIGHT: f64 = 0.2;
/// Integral gain (gyroscope bias), rad s-2 per rad.
const KI: f64 = 0.05;
/// The bias the integral term may learn at most, rad s-1 (the datasheet's ±5 °/s).
const MAX_BIAS_RAD_S: f64 = 0.087;
/// How fast the error statistics follow, s.
const ERROR_WINDOW_S: f64 = 5.0;
/// Floors of the accuracy estimates, degrees: what the filter and the sensors' noise and
/// alignment allow at best.
const ATTITUDE_FLOOR_DEG: f64 = 0.5;
const HEADING_FLOOR_DEG: f64 = 1.5;

/// The speed the turn compensation uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// True airspeed, m s-1: the airframe's speed through the air.
    True(f64),
    /// No (fresh, unflagged) true airspeed.
    Unknown,
}

impl Speed {
    /// The true airspeed to compensate with, if it is a plausible one.
    fn value(self) -> Option<f64> {
        match self {
            Speed::True(v) if v.is_finite() && (0.0..350.0).contains(&v) => Some(v),
            _ => None,
        }
    }
}

/// An attitude with its estimated errors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Roll, degrees, right wing down positive.
    pub roll_deg: f64,
    /// Pitch, degrees, nose up positive.
    pub pitch_deg: f64,
    /// Heading, degrees clockwise from true north, 0..360.
    pub heading_deg: f64,
    /// Estimated error (1 sigma) of roll and pitch, degrees.
    pub attitude_sigma_deg: f64,
    /// Estimated error (1 sigma) of the heading, degrees.
    pub heading_sigma_deg: f64,
    /// The filter has converged.
    pub converged: bool,
    /// The centripetal acceleration was compensated with a true airspeed.
    pub turn_compensated: bool,
}

/// The filter's state.
#[derive(Debug, Clone)]
pub struct Ahrs {
    q: [f64; 4],
    bias: [f64; 3],
    declination_deg: f64,
    started: bool,
    valid_s: f64,
    accel_error_sq: f64,
    heading_error_sq: f64,
    turn_compensated: bool,
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

fn unit(a: [f64; 3]) -> Option<[f64; 3]> {
    let n = norm(a);
    (n.is_finite() && n > 1e-9).then(|| [a[0] / n, a[1] / n, a[2] / n])
}

fn finite(a: [f64; 3]) -> bool {
    a.iter().all(|x| x.is_finite())
}

/// The quaternion (body to north-east-down) of ZYX Euler angles, radians.
fn quaternion(roll: f64, pitch: f64, yaw: f64) -> [f64; 4] {
    let (sr, cr) = (roll / 2.0).sin_cos();
    let (sp, cp) = (pitch / 2.0).sin_cos();
    let (sy, cy) = (yaw / 2.0).sin_cos();
    [
        cr * cp * cy + sr * sp * sy,
        sr * cp * cy - cr * sp * sy,
        cr * sp * cy + sr * cp * sy,
        cr * cp * sy - sr * sp * cy,
    ]
}

/// Roll, pitch and magnetic heading (radians) from the down direction and the field in
/// body axes: the accelerometer's tilt and a tilt-compensated compass.
fn attitude_of(down: [f64; 3], mag: [f64; 3]) -> (f64, f64, f64) {
    let roll = down[1].atan2(down[2]);
    let pitch = (-down[0]).atan2(down[1].hypot(down[2]));
    let (sr, cr) = roll.sin_cos();
    let (sp, cp) = pitch.sin_cos();
    let xh = mag[0] * cp + mag[1] * sr * sp + mag[2] * cr * sp;
    let yh = mag[1] * cr - mag[2] * sr;
    (roll, pitch, (-yh).atan2(xh))
}

impl Ahrs {
    /// A filter that adds `declination_deg` (east positive) to the magnetic heading.
    pub fn new(declination_deg: f64) -> Self {
        Ahrs {
            q: [1.0, 0.0, 0.0, 0.0],
            bias: [0.0; 3],
            declination_deg: if declination_deg.is_finite() {
                declination_deg
            } else {
                0.0
            },
            started: false,
            valid_s: 0.0,
            accel_error_sq: 0.0,
            heading_error_sq: 0.0,
            turn_compensated: false,
        }
    }

    /// Uses another declination (east positive) from the next estimate on.
    pub fn set_declination(&mut self, declination_deg: f64) {
        if declination_deg.is_finite() {
            self.declination_deg = declination_deg;
        }
    }

    /// The gyroscope bias learnt, rad s-1.
    pub fn gyro_bias_rad_s(&self) -> [f64; 3] {
        self.bias
    }

    /// Earth's down axis in body axes, from the quaternion.
    fn down(&self) -> [f64; 3] {
        let [q0, q1, q2, q3] = self.q;
        [
            2.0 * (q1 * q3 - q0 * q2),
            2.0 * (q0 * q1 + q2 * q3),
            q0 * q0 - q1 * q1 - q2 * q2 + q3 * q3,
        ]
    }

    /// A body vector in north-east-down.
    fn to_earth(&self, v: [f64; 3]) -> [f64; 3] {
        let [q0, q1, q2, q3] = self.q;
        [
            (1.0 - 2.0 * (q2 * q2 + q3 * q3)) * v[0]
                + 2.0 * (q1 * q2 - q0 * q3) * v[1]
                + 2.0 * (q1 * q3 + q0 * q2) * v[2],
            2.0 * (q1 * q2 + q0 * q3) * v[0]
                + (1.0 - 2.0 * (q1 * q1 + q3 * q3)) * v[1]
                + 2.0 * (q2 * q3 - q0 * q1) * v[2],
            2.0 * (q1 * q3 - q0 * q2) * v[0]
                + 2.0 * (q2 * q3 + q0 * q1) * v[1]
                + (1.0 - 2.0 * (q1 * q1 + q2 * q2)) * v[2],
        ]
    }

    /// A north-east-down vector in body axes.
    fn to_body(&self, v: [f64; 3]) -> [f64; 3] {
        let [q0, q1, q2, q3] = self.q;
        let conj = Ahrs {
            q: [q0, -q1, -q2, -q3],
            ..self.clone()
        };
        conj.to_earth(v)
    }

    /// Feeds one sample taken `dt_s` after the previous one, with the speed the turn
    /// compensation uses.
    pub fn update(&mut self, sample: &BodySample, dt_s: f64, speed: Speed) {
        let plausible_dt = dt_s.is_finite() && dt_s > 0.0 && dt_s < 1.0;
        if !plausible_dt || !finite(sample.gyro_rad_s) {
            return;
        }
        let tas = speed.value();
        let trusted = tas.is_some();
        self.turn_compensated = trusted;
        let omega = [
            sample.gyro_rad_s[0] - self.bias[0],
            sample.gyro_rad_s[1] - self.bias[1],
            sample.gyro_rad_s[2] - self.bias[2],
        ];
        // The specific force less the centripetal acceleration: what gravity alone gives.
        let f = match tas {
            Some(v) => [
                sample.accel_mps2[0],
                sample.accel_mps2[1] - omega[2] * v,
                sample.accel_mps2[2] + omega[1] * v,
            ],
            None => sample.accel_mps2,
        };
        let off_g = (norm(f) / G - 1.0).abs();
        let accel_ok = finite(f)
            && if trusted {
                off_g < TRUSTED_GATE
            } else {
                off_g < UNTRUSTED_GATE
            };
        let down_measured = if accel_ok {
            unit([-f[0], -f[1], -f[2]])
        } else {
            None
        };
        let mag = sample.mag_ut.filter(|m| finite(*m)).and_then(unit);

        if !self.started {
            if let (Some(down), Some(mag)) = (down_measured, mag) {
                let (roll, pitch, yaw) = attitude_of(down, mag);
                self.q = quaternion(roll, pitch, yaw);
                self.started = true;
            }
            return;
        }

        let settling = self.valid_s < SETTLE_S;
        let gain = if settling { 10.0 } else { 1.0 };
        let accel_gain = if trusted {
            gain
        } else {
            gain * UNTRUSTED_ACCEL_WEIGHT
        };
        let mut error = [0.0; 3];
        let down_est = self.down();
        if let Some(down) = down_measured {
            let e = cross(down, down_est);
            let angle = norm(e).clamp(-1.0, 1.0).asin();
            self.track(true, angle, dt_s);
            for i in 0..3 {
                error[i] += KP_ACCEL * accel_gain * e[i];
            }
        }
        if let Some(m) = mag {
            // The field's horizontal direction as the estimate sees it, against magnetic
            // north; only the part of the correction about the down axis is kept.
            let h = self.to_earth(m);
            let reference = [h[0].hypot(h[1]), 0.0, h[2]];
            let expected = self.to_body(reference);
            let e = cross(m, expected);
            let about_down = dot(e, down_est);
            let horizontal = h[0].hypot(h[1]).max(1e-6);
            let heading_error = (h[1] / horizontal).clamp(-1.0, 1.0).asin();
            self.track(false, heading_error, dt_s);
            for i in 0..3 {
                error[i] += KP_MAG * gain * about_down * down_est[i];
            }
        }
        if !settling {
            for (bias, e) in self.bias.iter_mut().zip(error) {
                *bias = (*bias - KI * e * dt_s).clamp(-MAX_BIAS_RAD_S, MAX_BIAS_RAD_S);
            }
        }
        if down_measured.is_some() && mag.is_some() {
            self.valid_s += dt_s;
        }
        let w = [
            omega[0] + error[0],
            omega[1] + error[1],
            omega[2] + error[2],
        ];
        let [q0, q1, q2, q3] = self.q;
        let half = 0.5 * dt_s;
        let q = [
            q0 + half * (-q1 * w[0] - q2 * w[1] - q3 * w[2]),
            q1 + half * (q0 * w[0] + q2 * w[2] - q3 * w[1]),
            q2 + half * (q0 * w[1] - q1 * w[2] + q3 * w[0]),
            q3 + half * (q0 * w[2] + q1 * w[1] - q2 * w[0]),
        ];
        let n = (q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]).sqrt();
        if n.is_finite() && n > 1e-9 {
            self.q = [q[0] / n, q[1] / n, q[2] / n, q[3] / n];
        }
    }

    fn track(&mut self, accel: bool, angle_rad: f64, dt_s: f64) {
        if !angle_rad.is_finite() {
            return;
        }
        let k = (dt_s / ERROR_WINDOW_S).min(1.0);
        let slot = if accel {
            &mut self.accel_error_sq
        } else {
            &mut self.heading_error_sq
        };
        *slot += k * (angle_rad * angle_rad - *slot);
    }

    /// The attitude now.
    pub fn estimate(&self) -> Estimate {
        let [q0, q1, q2, q3] = self.q;
        let roll = (2.0 * (q0 * q1 + q2 * q3)).atan2(1.0 - 2.0 * (q1 * q1 + q2 * q2));
        let pitch = (2.0 * (q0 * q2 - q3 * q1)).clamp(-1.0, 1.0).asin();
        let yaw = (2.0 * (q0 * q3 + q1 * q2)).atan2(1.0 - 2.0 * (q2 * q2 + q3 * q3));
        let heading = (yaw.to_degrees() + self.declination_deg).rem_euclid(360.0);
        let sigma = |floor: f64, sq: f64| floor.hypot(sq.sqrt().to_degrees());
        Estimate {
            roll_deg: roll.to_degrees(),
            pitch_deg: pitch.to_degrees(),
            heading_deg: if heading >= 360.0 { 0.0 } else { heading },
            attitude_sigma_deg: sigma(ATTITUDE_FLOOR_DEG, self.accel_error_sq),
            heading_sigma_deg: sigma(HEADING_FLOOR_DEG, self.heading_error_sq),
            converged: self.started && self.valid_s >= CONVERGENCE_S,
            turn_compensated: self.turn_compensated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::icm20948::sim::{MINDEN_FIELD, ned_to_body};

    fn sample(roll: f64, pitch: f64, heading: f64, gyro: [f64; 3], tas: f64) -> BodySample {
        let g = ned_to_body(roll, pitch, heading, [0.0, 0.0, G]);
        let mag = ned_to_body(roll, pitch, heading - 0.0, MINDEN_FIELD.ned_ut());
        BodySample {
            accel_mps2: [-g[0], gyro[2] * tas - g[1], -gyro[1] * tas - g[2]],
            gyro_rad_s: gyro,
            mag_ut: Some(mag),
            saturated: false,
        }
    }

    fn angle_diff(a: f64, b: f64) -> f64 {
        ((a - b + 540.0).rem_euclid(360.0) - 180.0).abs()
    }

    #[test]
    fn a_still_tilted_airframe_is_found_and_converges() {
        let mut ahrs = Ahrs::new(MINDEN_FIELD.declination_deg);
        let s = sample(20.0, -5.0, 123.0, [0.0; 3], 0.0);
        for _ in 0..(50.0 * (CONVERGENCE_S + 1.0)) as usize {
            ahrs.update(&s, 0.02, Speed::Unknown);
        }
        let e = ahrs.estimate();
        assert!(e.converged);
        assert!((e.roll_deg - 20.0).abs() < 0.2, "{e:?}");
        assert!((e.pitch_deg + 5.0).abs() < 0.2, "{e:?}");
        assert!(angle_diff(e.heading_deg, 123.0) < 0.5, "{e:?}");
    }

    /// Level for 10 s, a roll into a 30° coordinated turn at 10 °/s, then two minutes of
    /// turning at 40 m/s; the worst roll error after the first 30 s, and whether the
    /// filter converged.
    fn turn(speed: Speed) -> (f64, bool) {
        let v = 40.0;
        let dt = 0.02;
        let mut ahrs = Ahrs::new(MINDEN_FIELD.declination_deg);
        let (mut heading, mut bank) = (0.0f64, 0.0f64);
        let mut worst: f64 = 0.0;
        for i in 0..(130.0 / dt) as usize {
            let t = i as f64 * dt;
            let roll_rate: f64 = if (10.0..13.0).contains(&t) { 10.0 } else { 0.0 };
            let rate = G * bank.to_radians().tan() / v;
            let (sf, cf) = bank.to_radians().sin_cos();
            let gyro = [roll_rate.to_radians(), rate * sf, rate * cf];
            ahrs.update(&sample(bank, 0.0, heading, gyro, v), dt, speed);
            heading = (heading + rate.to_degrees() * dt).rem_euclid(360.0);
            bank = (bank + roll_rate * dt).min(30.0);
            if t > 30.0 {
                worst = worst.max((ahrs.estimate().roll_deg - bank).abs());
            }
        }
        (worst, ahrs.estimate().converged)
    }

    #[test]
    fn a_coordinated_turn_holds_its_bank_with_the_turn_compensated() {
        let (worst, converged) = turn(Speed::True(40.0));
        assert!(converged);
        assert!(worst < 1.0, "worst roll error {worst}°");
    }

    #[test]
    fn without_an_airspeed_the_turn_is_left_to_the_gyroscope() {
        // The accelerometer reads 1.15 g in the turn: gated off, so the gyroscope (no bias
        // here) carries the bank instead of the accelerometer levelling it. The roll-in's
        // first 18°, where the gate still lets the accelerometer through at a fifth of its
        // weight, cost about 3° (with the airspeed: under 1°).
        let (worst, _) = turn(Speed::Unknown);
        assert!(worst < 5.0, "worst roll error {worst}°");
        // Started in the turn without an airspeed, the filter has no trustworthy down
        // direction and never claims to have converged.
        let mut ahrs = Ahrs::new(0.0);
        let rate = G * 30f64.to_radians().tan() / 40.0;
        let (sf, cf) = 30f64.to_radians().sin_cos();
        let s = sample(30.0, 0.0, 0.0, [0.0, rate * sf, rate * cf], 40.0);
        for _ in 0..1000 {
            ahrs.update(&s, 0.02, Speed::Unknown);
        }
        assert!(!ahrs.estimate().converged);
    }

    #[test]
    fn nonsense_input_never_makes_a_non_finite_angle() {
        let mut ahrs = Ahrs::new(f64::NAN);
        let bad = [
            BodySample {
                accel_mps2: [f64::NAN, 0.0, 0.0],
                gyro_rad_s: [0.0; 3],
                mag_ut: Some([0.0; 3]),
                saturated: true,
            },
            BodySample {
                accel_mps2: [0.0; 3],
                gyro_rad_s: [1e300, -1e300, 0.0],
                mag_ut: None,
                saturated: true,
            },
            sample(0.0, 0.0, 0.0, [0.0; 3], 0.0),
            BodySample {
                accel_mps2: [1e308, 1e308, 1e308],
                gyro_rad_s: [1e3, 1e3, 1e3],
                mag_ut: Some([f64::INFINITY, 0.0, 0.0]),
                saturated: true,
            },
        ];
        for s in bad.iter().cycle().take(400) {
            ahrs.update(s, 0.02, Speed::True(f64::NAN));
            let e = ahrs.estimate();
            assert!(e.roll_deg.is_finite() && e.pitch_deg.is_finite());
            assert!((0.0..360.0).contains(&e.heading_deg), "{e:?}");
        }
    }
}
