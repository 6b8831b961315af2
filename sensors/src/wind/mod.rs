//! The wind at the glider, derived from other instruments' readings: pure algorithms, no I/O.
//!
//! Two methods, as glider flight computers use them:
//! - the wind triangle ([`triangle`]): wind = ground velocity (GNSS speed and track) less
//!   air velocity (true airspeed along the heading). Needs a trustworthy heading; gives a
//!   wind at every instant, averaged here over [`TRIANGLE_AVERAGE_S`] to beat the
//!   heading's and the airspeed's noise.
//! - circling drift ([`circling`]): in a steady turn the ground-velocity vectors trace a
//!   circle of radius TAS whose centre is the wind. Needs no heading and no airspeed, only a
//!   full circle of GNSS velocities.
//!
//! [`WindEstimator`] chooses per estimate ([`Method`]): the triangle when the heading is
//! fresh and trustworthy, circling drift when the heading is unreliable or absent and a
//! full circle is at hand, else the triangle on flawed inputs, flagged. Every estimate is
//! [`Quality::DERIVED`]; [`Quality::STALE`] when an input was older than its limit,
//! [`Quality::DEGRADED_INPUT`] when one was out of range (true airspeed below the stall,
//! GNSS fix not 3D, heading accuracy poor, an input flagged by its own sensor).
//!
//! Invariants: directions are degrees clockwise from true north; a wind's direction is the
//! meteorological "from"; velocities are (east, north) in m s-1; nothing here panics on any
//! input (NaN and infinities are refused as inputs, never propagated into an estimate).

pub mod circling;

use std::collections::VecDeque;

use aloft_protocol::Quality;

pub use circling::{CircleFit, CirclingWind};

/// Seconds of triangle winds averaged into one estimate: long enough to average 2° of
/// heading noise down to a few tenths of a m/s, short against the wind's change with height
/// (a climb at 4 m/s rises 80 m in it).
pub const TRIANGLE_AVERAGE_S: f64 = 20.0;

/// How a wind estimate was made; the code is the `wind_method` reading's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// Ground velocity less air velocity (TAS along the heading).
    Triangle,
    /// The centre of the circle the ground velocity traces in a turn.
    Circling,
}

impl Method {
    /// The `wind_method` code: 1 = wind triangle, 2 = circling drift.
    pub fn code(self) -> u8 {
        match self {
            Method::Triangle => 1,
            Method::Circling => 2,
        }
    }

    /// The method's name, as the `method` tunable spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Triangle => "triangle",
            Method::Circling => "circling",
        }
    }
}

/// Which methods an estimator may use (the `method` tunable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MethodChoice {
    /// The triangle when its inputs are trustworthy, else circling drift when a circle is
    /// at hand, else the triangle on flawed inputs (flagged).
    #[default]
    Auto,
    /// Only the wind triangle.
    Triangle,
    /// Only circling drift.
    Circling,
}

impl MethodChoice {
    /// The names the `method` tunable takes.
    pub const NAMES: &'static [&'static str] = &["auto", "triangle", "circling"];

    /// The choice called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "auto" => Some(MethodChoice::Auto),
            "triangle" => Some(MethodChoice::Triangle),
            "circling" => Some(MethodChoice::Circling),
            _ => None,
        }
    }

    /// The name of the choice.
    pub fn as_str(self) -> &'static str {
        match self {
            MethodChoice::Auto => "auto",
            MethodChoice::Triangle => "triangle",
            MethodChoice::Circling => "circling",
        }
    }
}

/// A horizontal velocity, (east, north), m s-1.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Velocity {
    /// Eastward component.
    pub east: f64,
    /// Northward component.
    pub north: f64,
}

impl Velocity {
    /// The velocity of `speed` towards `direction_deg` (clockwise from true north).
    pub fn towards(speed: f64, direction_deg: f64) -> Self {
        let d = direction_deg.to_radians();
        Velocity {
            east: speed * d.sin(),
            north: speed * d.cos(),
        }
    }

    /// Its magnitude.
    pub fn speed(self) -> f64 {
        self.east.hypot(self.north)
    }

    /// Where it points to, degrees clockwise from true north, in [0, 360).
    pub fn towards_deg(self) -> f64 {
        normalise_deg(self.east.atan2(self.north).to_degrees())
    }

    /// Where a wind of this velocity blows from, degrees clockwise from true north.
    pub fn from_deg(self) -> f64 {
        normalise_deg(self.towards_deg() + 180.0)
    }

    fn minus(self, other: Velocity) -> Velocity {
        Velocity {
            east: self.east - other.east,
            north: self.north - other.north,
        }
    }

    fn is_finite(self) -> bool {
        self.east.is_finite() && self.north.is_finite()
    }
}

/// `deg` in [0, 360).
pub fn normalise_deg(deg: f64) -> f64 {
    let d = deg.rem_euclid(360.0);
    if d >= 360.0 { 0.0 } else { d }
}

/// The signed smallest difference `b - a` between two directions, in (-180, 180].
pub fn angle_diff_deg(a: f64, b: f64) -> f64 {
    let d = (b - a).rem_euclid(360.0);
    if d > 180.0 { d - 360.0 } else { d }
}

/// The wind triangle: the wind is the ground velocity (`ground_speed` along `track_deg`)
/// less the air velocity (`tas` along `heading_deg`).
pub fn triangle(ground_speed: f64, track_deg: f64, tas: f64, heading_deg: f64) -> Velocity {
    Velocity::towards(ground_speed, track_deg).minus(Velocity::towards(tas, heading_deg))
}

/// One input's newest value as the estimator sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Input<T> {
    /// The value.
    pub value: T,
    /// Its age at the estimate, s.
    pub age_s: f64,
    /// Its own sensor flagged it (invalid, out of range, stale, degraded).
    pub flagged: bool,
}

/// A GNSS ground velocity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroundVelocity {
    /// Speed over ground, m s-1.
    pub speed_mps: f64,
    /// Track, degrees from true north.
    pub track_deg: f64,
    /// When the fix was taken, s on the estimator's clock (a newer time is a new fix).
    pub t_s: f64,
    /// Whether the fix was 3D.
    pub fix_3d: bool,
}

/// An airframe heading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Heading {
    /// True heading of the nose, degrees.
    pub heading_deg: f64,
    /// Its estimated error (1 sigma), degrees, when the attitude sensor reports one.
    pub accuracy_deg: Option<f64>,
}

/// The inputs of one estimate: each input's newest value, if it has one at all.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Inputs {
    /// From the GNSS receiver.
    pub ground: Option<Input<GroundVelocity>>,
    /// True airspeed, m s-1, from the pitot.
    pub airspeed: Option<Input<f64>>,
    /// From the attitude sensor.
    pub heading: Option<Input<Heading>>,
}

/// When an input counts as stale or out of range.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Limits {
    /// Oldest GNSS velocity used as fresh, s (receivers send at 1-10 Hz).
    pub ground_age_s: f64,
    /// Oldest true airspeed used as fresh, s.
    pub airspeed_age_s: f64,
    /// Oldest heading used as fresh, s: a glider turns 10-20°/s in a thermal.
    pub heading_age_s: f64,
    /// Below this true airspeed the glider is not flying (on the ground, or the pitot is
    /// blocked), m s-1.
    pub stall_tas_mps: f64,
    /// A heading less accurate than this (1 sigma) is not trusted, degrees.
    pub heading_accuracy_deg: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            ground_age_s: 3.0,
            airspeed_age_s: 2.0,
            heading_age_s: 1.0,
            stall_tas_mps: 18.0,
            heading_accuracy_deg: 10.0,
        }
    }
}

/// One derived wind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindEstimate {
    /// The air's velocity over the ground.
    pub velocity: Velocity,
    /// How it was made.
    pub method: Method,
    /// [`Quality::DERIVED`], with [`Quality::STALE`] / [`Quality::DEGRADED_INPUT`] when an
    /// input was old or out of range.
    pub quality: Quality,
}

impl WindEstimate {
    /// Wind speed, m s-1.
    pub fn speed_mps(&self) -> f64 {
        self.velocity.speed()
    }

    /// Where the wind blows from, degrees clockwise from true north.
    pub fn from_deg(&self) -> f64 {
        self.velocity.from_deg()
    }
}

/// Why no wind could be estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoEstimate {
    /// No GNSS velocity at all.
    #[error("no ground velocity")]
    NoGroundVelocity,
    /// The triangle lacks its airspeed or heading, and no full circle has been flown.
    #[error("no airspeed or heading for the triangle, and not circling")]
    NoTriangleNoCircle,
    /// Only the triangle is allowed and it lacks an input.
    #[error("no airspeed or heading for the triangle")]
    NoTriangle,
    /// Only circling drift is allowed and no full circle is at hand.
    #[error("no full circle flown")]
    NoCircle,
}

/// What the triangle makes of one set of inputs.
#[derive(Debug, Clone, Copy)]
struct TriangleSample {
    t_s: f64,
    velocity: Velocity,
    quality: Quality,
}

/// The wind estimator: feed it every input set ([`WindEstimator::estimate`]); it keeps the
/// circle of ground velocities and the triangle's average between calls.
#[derive(Debug, Clone)]
pub struct WindEstimator {
    choice: MethodChoice,
    limits: Limits,
    circling: CirclingWind,
    triangles: VecDeque<TriangleSample>,
}

impl WindEstimator {
    /// An estimator choosing by `choice`, judging inputs by `limits`.
    pub fn new(choice: MethodChoice, limits: Limits) -> Self {
        WindEstimator {
            choice,
            limits,
            circling: CirclingWind::default(),
            triangles: VecDeque::new(),
        }
    }

    /// The method choice in force.
    pub fn choice(&self) -> MethodChoice {
        self.choice
    }

    /// Chooses by `choice` from the next estimate on (what was learned is kept).
    pub fn set_choice(&mut self, choice: MethodChoice) {
        self.choice = choice;
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The circle detector (for inspection).
    pub fn circling(&self) -> &CirclingWind {
        &self.circling
    }

    /// The wind at `now_s` (the estimator's clock, s) from `inputs`.
    pub fn estimate(&mut self, now_s: f64, inputs: &Inputs) -> Result<WindEstimate, NoEstimate> {
        let ground = inputs
            .ground
            .filter(|g| g.value.speed_mps.is_finite() && g.value.track_deg.is_finite());
        let Some(ground) = ground else {
            return Err(NoEstimate::NoGroundVelocity);
        };
        let g = ground.value;
        // Only velocities of a valid 3D fix trace the circle: a 2D or invalid fix's speed
        // is not the glider's.
        if g.fix_3d && !ground.flagged {
            self.circling
                .push(g.t_s, Velocity::towards(g.speed_mps, g.track_deg));
        }
        let ground_stale = ground.age_s > self.limits.ground_age_s;
        let ground_degraded = !g.fix_3d || ground.flagged;

        let triangle = self.triangle_now(now_s, &ground, inputs);
        let circle = self.circling.estimate().map(|fit| {
            let mut quality = Quality::DERIVED;
            if ground_stale {
                quality |= Quality::STALE;
            }
            if ground_degraded {
                quality |= Quality::DEGRADED_INPUT;
            }
            WindEstimate {
                velocity: fit.centre,
                method: Method::Circling,
                quality,
            }
        });
        let triangle_trusted = triangle
            .as_ref()
            .is_some_and(|t| t.quality == Quality::DERIVED);
        match self.choice {
            MethodChoice::Triangle => triangle.ok_or(NoEstimate::NoTriangle),
            MethodChoice::Circling => circle.ok_or(NoEstimate::NoCircle),
            MethodChoice::Auto if triangle_trusted => triangle.ok_or(NoEstimate::NoTriangle),
            MethodChoice::Auto => circle.or(triangle).ok_or(NoEstimate::NoTriangleNoCircle),
        }
    }

    /// The averaged triangle wind with this instant's sample added, if the triangle has
    /// all its inputs now.
    fn triangle_now(
        &mut self,
        now_s: f64,
        ground: &Input<GroundVelocity>,
        inputs: &Inputs,
    ) -> Option<WindEstimate> {
        let horizon = now_s - TRIANGLE_AVERAGE_S;
        while self.triangles.front().is_some_and(|s| s.t_s <= horizon) {
            self.triangles.pop_front();
        }
        let airspeed = inputs.airspeed.filter(|a| a.value.is_finite())?;
        let heading = inputs.heading.filter(|h| {
            h.value.heading_deg.is_finite() && h.value.accuracy_deg.is_none_or(f64::is_finite)
        })?;
        let l = &self.limits;
        let g = ground.value;
        let mut quality = Quality::DERIVED;
        if ground.age_s > l.ground_age_s
            || airspeed.age_s > l.airspeed_age_s
            || heading.age_s > l.heading_age_s
        {
            quality |= Quality::STALE;
        }
        let heading_poor = heading
            .value
            .accuracy_deg
            .is_some_and(|a| a > l.heading_accuracy_deg);
        if !g.fix_3d
            || ground.flagged
            || airspeed.flagged
            || heading.flagged
            || airspeed.value < l.stall_tas_mps
            || heading_poor
        {
            quality |= Quality::DEGRADED_INPUT;
        }
        let velocity = triangle(
            g.speed_mps,
            g.track_deg,
            airspeed.value,
            heading.value.heading_deg,
        );
        if !velocity.is_finite() {
            return None;
        }
        // A flawed sample is not averaged with good ones: the average would carry its
        // flag for the whole window, or hide it. A good one ends a flawed run.
        if self
            .triangles
            .back()
            .is_some_and(|last| last.quality != quality)
        {
            self.triangles.clear();
        }
        self.triangles.push_back(TriangleSample {
            t_s: now_s,
            velocity,
            quality,
        });
        let n = self.triangles.len() as f64;
        let (east, north) = self.triangles.iter().fold((0.0, 0.0), |(e, n), s| {
            (e + s.velocity.east, n + s.velocity.north)
        });
        Some(WindEstimate {
            velocity: Velocity {
                east: east / n,
                north: north / n,
            },
            method: Method::Triangle,
            quality,
        })
    }
}

#[cfg(test)]
mod tests;
