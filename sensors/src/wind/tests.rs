//! The wind algorithms against synthetic truth, and against the simulated flight's wind.

use proptest::prelude::*;

use super::circling::{CirclingWind, fit_circle};
use super::*;
use crate::flight::{Noise, Phase, Scenario};

fn fresh<T>(value: T) -> Input<T> {
    Input {
        value,
        age_s: 0.0,
        flagged: false,
    }
}

fn ground(speed_mps: f64, track_deg: f64, t_s: f64) -> Input<GroundVelocity> {
    fresh(GroundVelocity {
        speed_mps,
        track_deg,
        t_s,
        fix_3d: true,
    })
}

fn heading(heading_deg: f64) -> Input<Heading> {
    fresh(Heading {
        heading_deg,
        accuracy_deg: Some(2.0),
    })
}

/// The ground velocity of a glider at `tas` on `heading_deg` in `wind`.
fn ground_velocity(tas: f64, heading_deg: f64, wind: Velocity) -> Velocity {
    let air = Velocity::towards(tas, heading_deg);
    Velocity {
        east: air.east + wind.east,
        north: air.north + wind.north,
    }
}

fn distance(a: Velocity, b: Velocity) -> f64 {
    (a.east - b.east).hypot(a.north - b.north)
}

/// Inputs of a glider at `tas` on `heading_deg` in `wind`, all fresh, at `t_s`.
fn inputs_at(t_s: f64, tas: f64, heading_deg: f64, wind: Velocity) -> Inputs {
    let g = ground_velocity(tas, heading_deg, wind);
    Inputs {
        ground: Some(ground(g.speed(), g.towards_deg(), t_s)),
        airspeed: Some(fresh(tas)),
        heading: Some(heading(heading_deg)),
    }
}

/// Feeds `estimator` a steady turn at `rate_deg_s` for `seconds`, one fix a second; the
/// last result.
fn circle(
    estimator: &mut WindEstimator,
    seconds: usize,
    rate_deg_s: f64,
    tas: f64,
    wind: Velocity,
    with_heading: bool,
) -> Result<WindEstimate, NoEstimate> {
    let mut last = Err(NoEstimate::NoGroundVelocity);
    for i in 0..seconds {
        let t = i as f64;
        let mut inputs = inputs_at(t, tas, 10.0 + rate_deg_s * t, wind);
        if !with_heading {
            inputs.heading = None;
        }
        last = estimator.estimate(t, &inputs);
    }
    last
}

proptest! {
    #[test]
    fn the_triangle_recovers_any_wind_at_any_heading(
        wind_speed in 0.0f64..45.0,
        wind_from in 0.0f64..360.0,
        heading_deg in 0.0f64..360.0,
        tas in 18.0f64..80.0,
    ) {
        let wind = Velocity::towards(wind_speed, wind_from + 180.0);
        let g = ground_velocity(tas, heading_deg, wind);
        let got = triangle(g.speed(), g.towards_deg(), tas, heading_deg);
        prop_assert!(distance(got, wind) < 1e-9, "{got:?} vs {wind:?}");
        if wind_speed > 0.1 {
            prop_assert!(angle_diff_deg(got.from_deg(), wind_from).abs() < 1e-6);
        }
    }

    #[test]
    fn the_circle_fit_finds_the_centre_of_noisy_partial_circles(
        east in -40.0f64..40.0,
        north in -40.0f64..40.0,
        radius in 15.0f64..80.0,
        start_deg in 0.0f64..360.0,
        arc_deg in 180.0f64..360.0,
        points in 20usize..120,
        sigma in 0.0f64..0.4,
        seed in any::<u64>(),
    ) {
        let mut noise = Noise::new(seed);
        let pts: Vec<Velocity> = (0..points)
            .map(|i| {
                let a = start_deg + arc_deg * i as f64 / points as f64;
                let p = Velocity::towards(radius, a);
                Velocity {
                    east: east + p.east + noise.gaussian(sigma),
                    north: north + p.north + noise.gaussian(sigma),
                }
            })
            .collect();
        let fit = fit_circle(&pts).expect("points on an arc make a circle");
        let truth = Velocity { east, north };
        // Half an arc with 0.4 m/s of noise still puts the centre within a m/s; a full
        // circle within a few tenths.
        let bound = if arc_deg >= 350.0 { 0.35 } else { 1.0 };
        prop_assert!(distance(fit.centre, truth) < bound, "{fit:?} vs {truth:?}");
        prop_assert!((fit.radius - radius).abs() < 1.0, "{fit:?} vs {radius}");
    }

    #[test]
    fn circling_drift_recovers_any_wind_from_a_full_noisy_circle_without_heading(
        wind_speed in 0.0f64..35.0,
        wind_from in 0.0f64..360.0,
        tas in 25.0f64..60.0,
        bank_deg in 20.0f64..45.0,
        left in any::<bool>(),
        seed in any::<u64>(),
    ) {
        prop_assume!(wind_speed < 0.8 * tas);
        let wind = Velocity::towards(wind_speed, wind_from + 180.0);
        let rate = (9.81 * bank_deg.to_radians().tan() / tas).to_degrees()
            * if left { -1.0 } else { 1.0 };
        let mut noise = Noise::new(seed);
        let mut detector = CirclingWind::new();
        let period_s = 360.0 / rate.abs();
        let mut t = 0.0;
        let mut first_estimate_at = None;
        while t < 1.5 * period_s {
            let g = ground_velocity(tas + noise.gaussian(0.5), 10.0 + rate * t, wind);
            // GNSS noise: 0.1 m/s of speed, 0.5° of track.
            let measured = Velocity::towards(
                g.speed() + noise.gaussian(0.1),
                g.towards_deg() + noise.gaussian(0.5),
            );
            detector.push(t, measured);
            if let Some(fit) = detector.estimate() {
                first_estimate_at.get_or_insert(t);
                prop_assert!(distance(fit.centre, wind) < 1.0, "{fit:?} vs {wind:?}");
                prop_assert!((fit.radius - tas).abs() < 1.5, "{fit:?} vs {tas}");
            }
            t += 1.0;
        }
        let at = first_estimate_at.expect("a full circle gives an estimate");
        // Not before a full circle has been flown (a second of slack: one fix a second).
        prop_assert!(at >= period_s - 1.0, "an estimate after {at} s of a {period_s} s circle");
    }

    #[test]
    fn every_estimate_is_flagged_derived_whatever_the_inputs(
        gs in proptest::option::of(-5.0f64..100.0),
        track in -720.0f64..720.0,
        tas in proptest::option::of(-5.0f64..100.0),
        hdg in proptest::option::of(-720.0f64..720.0),
        accuracy in proptest::option::of(0.0f64..90.0),
        ages in (0.0f64..10.0, 0.0f64..10.0, 0.0f64..10.0),
        fix_3d in any::<bool>(),
        choice in 0usize..3,
    ) {
        let choice = [MethodChoice::Auto, MethodChoice::Triangle, MethodChoice::Circling][choice];
        let mut estimator = WindEstimator::new(choice, Limits::default());
        let inputs = Inputs {
            ground: gs.map(|s| Input {
                value: GroundVelocity { speed_mps: s, track_deg: track, t_s: 0.0, fix_3d },
                age_s: ages.0,
                flagged: false,
            }),
            airspeed: tas.map(|v| Input { value: v, age_s: ages.1, flagged: false }),
            heading: hdg.map(|h| Input {
                value: Heading { heading_deg: h, accuracy_deg: accuracy },
                age_s: ages.2,
                flagged: false,
            }),
        };
        if let Ok(e) = estimator.estimate(0.0, &inputs) {
            prop_assert!(e.quality.contains(Quality::DERIVED));
            prop_assert!(e.velocity.is_finite());
            let l = Limits::default();
            let stale = ages.0 > l.ground_age_s || ages.1 > l.airspeed_age_s || ages.2 > l.heading_age_s;
            prop_assert_eq!(e.quality.contains(Quality::STALE), stale);
            let degraded = !fix_3d
                || tas.is_some_and(|v| v < l.stall_tas_mps)
                || accuracy.is_some_and(|a| a > l.heading_accuracy_deg);
            prop_assert_eq!(e.quality.contains(Quality::DEGRADED_INPUT), degraded);
        }
    }
}

#[test]
fn a_fresh_trustworthy_heading_makes_the_triangle_the_method() {
    let wind = Velocity::towards(12.0, 70.0);
    let mut estimator = WindEstimator::new(MethodChoice::Auto, Limits::default());
    let e = estimator
        .estimate(0.0, &inputs_at(0.0, 40.0, 200.0, wind))
        .expect("an estimate");
    assert_eq!(e.method, Method::Triangle);
    assert_eq!(e.quality, Quality::DERIVED);
    assert!(distance(e.velocity, wind) < 1e-9);
    assert_eq!(Method::Triangle.code(), 1);
    assert_eq!(Method::Circling.code(), 2);
}

#[test]
fn circling_takes_over_when_the_heading_is_poor_and_a_circle_is_flown() {
    let wind = Velocity::towards(15.0, 100.0);
    let mut estimator = WindEstimator::new(MethodChoice::Auto, Limits::default());
    let e = circle(&mut estimator, 60, 8.0, 40.0, wind, false).expect("a full circle");
    assert_eq!(e.method, Method::Circling);
    assert_eq!(e.quality, Quality::DERIVED);
    assert!(distance(e.velocity, wind) < 0.2, "{e:?}");

    // A heading of poor accuracy is not trusted: circling is still chosen.
    let mut inputs = inputs_at(60.0, 40.0, 10.0 + 8.0 * 60.0, wind);
    inputs.heading = Some(fresh(Heading {
        heading_deg: 10.0 + 8.0 * 60.0,
        accuracy_deg: Some(25.0),
    }));
    let e = estimator.estimate(60.0, &inputs).expect("an estimate");
    assert_eq!(e.method, Method::Circling);
    // A good one is.
    let e = estimator
        .estimate(61.0, &inputs_at(61.0, 40.0, 10.0 + 8.0 * 61.0, wind))
        .expect("an estimate");
    assert_eq!(e.method, Method::Triangle);
}

#[test]
fn a_partial_circle_gives_no_circling_estimate() {
    let wind = Velocity::towards(15.0, 100.0);
    let mut estimator = WindEstimator::new(MethodChoice::Circling, Limits::default());
    // 40 s at 8°/s: 320°.
    assert_eq!(
        circle(&mut estimator, 40, 8.0, 40.0, wind, false),
        Err(NoEstimate::NoCircle)
    );
    assert!(estimator.circling().is_turning());
    assert!(estimator.circling().turned_deg() > 300.0);
}

#[test]
fn a_turn_reversal_or_straight_flight_starts_the_circle_afresh() {
    let wind = Velocity::towards(10.0, 0.0);
    let mut detector = CirclingWind::new();
    for i in 0..30 {
        let t = f64::from(i);
        detector.push(t, ground_velocity(40.0, 8.0 * t, wind));
    }
    for i in 30..60 {
        let t = f64::from(i);
        detector.push(t, ground_velocity(40.0, 240.0 - 8.0 * (t - 30.0), wind));
    }
    assert!(detector.estimate().is_none(), "240° right, then 240° left");
    for i in 60..200 {
        detector.push(f64::from(i), ground_velocity(40.0, 123.0, wind));
    }
    assert!(!detector.is_turning());
    assert!(detector.estimate().is_none());
}

#[test]
fn stale_and_out_of_range_inputs_are_flagged() {
    let wind = Velocity::towards(12.0, 70.0);
    let limits = Limits::default();
    let mut estimator = WindEstimator::new(MethodChoice::Triangle, limits);
    let mut inputs = inputs_at(0.0, 40.0, 200.0, wind);
    if let Some(h) = inputs.heading.as_mut() {
        h.age_s = limits.heading_age_s + 0.5;
    }
    let e = estimator.estimate(0.0, &inputs).expect("an estimate");
    assert_eq!(e.quality, Quality::DERIVED | Quality::STALE);

    let mut inputs = inputs_at(1.0, 15.0, 200.0, wind);
    let e = estimator.estimate(1.0, &inputs).expect("an estimate");
    assert_eq!(
        e.quality,
        Quality::DERIVED | Quality::DEGRADED_INPUT,
        "below stall"
    );

    inputs = inputs_at(2.0, 40.0, 200.0, wind);
    if let Some(g) = inputs.ground.as_mut() {
        g.value.fix_3d = false;
    }
    let e = estimator.estimate(2.0, &inputs).expect("an estimate");
    assert_eq!(
        e.quality,
        Quality::DERIVED | Quality::DEGRADED_INPUT,
        "2D fix"
    );

    let e = estimator
        .estimate(3.0, &inputs_at(3.0, 40.0, 200.0, wind))
        .expect("an estimate");
    assert_eq!(e.quality, Quality::DERIVED, "all well again");

    assert_eq!(
        estimator.estimate(4.0, &Inputs::default()),
        Err(NoEstimate::NoGroundVelocity)
    );
    let mut no_heading = inputs_at(5.0, 40.0, 200.0, wind);
    no_heading.heading = None;
    assert_eq!(
        estimator.estimate(5.0, &no_heading),
        Err(NoEstimate::NoTriangle)
    );
}

/// The scenario's states with realistic sensor noise, through the estimator, once a
/// second over the whole flight.
struct FlightRun {
    /// (truth, estimate, phase, roll) for every estimate made in flight.
    estimates: Vec<(Velocity, WindEstimate, Phase, f64)>,
}

fn fly(seed: u64, choice: MethodChoice, with_heading: bool) -> FlightRun {
    let scenario = Scenario::new(seed, 0);
    let mut noise = Noise::new(seed ^ 0x57_1D);
    let mut estimator = WindEstimator::new(choice, Limits::default());
    let mut estimates = Vec::new();
    let mut airborne_since = None;
    let mut t = 0.0;
    while t <= scenario.duration_s() {
        let s = scenario.state_at(t);
        let inputs = Inputs {
            ground: Some(ground(
                s.ground_speed_mps + noise.gaussian(0.1),
                s.track_deg + noise.gaussian(0.5),
                t,
            )),
            airspeed: Some(fresh(s.true_airspeed_mps + noise.gaussian(0.5))),
            heading: with_heading.then(|| heading(s.attitude.heading_deg + noise.gaussian(2.0))),
        };
        if let Ok(e) = estimator.estimate(t, &inputs) {
            let (east, north) = s.wind.velocity_en();
            let phase = scenario.phase_at(t);
            // Off the ground: on the wheel the scenario holds the nose on the runway, no
            // wind triangle.
            // and the triangle's average must hold no ground roll.
            let airborne = s.altitude_m > scenario.site().elevation_m + 10.0;
            if !airborne {
                airborne_since = None;
            }
            let since = *airborne_since.get_or_insert(t);
            let airborne = airborne && t - since > TRIANGLE_AVERAGE_S;
            if airborne && e.quality == Quality::DERIVED {
                estimates.push((Velocity { east, north }, e, phase, s.attitude.roll_deg));
            }
        }
        t += 1.0;
    }
    FlightRun { estimates }
}

/// Straight flight: wings level, in the air.
fn straight(roll_deg: f64) -> bool {
    roll_deg.abs() < 5.0
}

/// Circling: the descent's 30° bank.
fn circling(phase: Phase, roll_deg: f64) -> bool {
    phase == Phase::Descent && roll_deg < -25.0
}

#[test]
fn the_triangle_recovers_the_simulated_flights_wind_in_straight_flight_and_circling() {
    for seed in [7, 11] {
        let run = fly(seed, MethodChoice::Auto, true);
        let (mut straight_n, mut circling_n) = (0, 0);
        for (truth, e, phase, roll) in &run.estimates {
            if straight(*roll) {
                straight_n += 1;
                assert!(
                    (e.speed_mps() - truth.speed()).abs() <= 1.5,
                    "seed {seed}: {e:?} vs {truth:?} ({phase:?})"
                );
                assert!(
                    angle_diff_deg(e.from_deg(), truth.from_deg()).abs() <= 15.0,
                    "seed {seed}: from {} vs {} ({phase:?})",
                    e.from_deg(),
                    truth.from_deg()
                );
            } else if circling(*phase, *roll) {
                circling_n += 1;
                assert!(
                    distance(e.velocity, *truth) <= 2.0,
                    "seed {seed}: {e:?} vs {truth:?}"
                );
            }
        }
        assert!(
            straight_n > 3_000,
            "seed {seed}: {straight_n} straight estimates"
        );
        assert!(
            circling_n > 100,
            "seed {seed}: {circling_n} circling estimates"
        );
    }
}

#[test]
fn circling_drift_recovers_the_simulated_flights_wind_in_the_descents_circles() {
    for seed in [7, 11] {
        let run = fly(seed, MethodChoice::Auto, false);
        let mut n = 0;
        for (truth, e, phase, roll) in &run.estimates {
            assert_eq!(e.method, Method::Circling, "no heading: only circling");
            let error = distance(e.velocity, *truth);
            if circling(*phase, *roll) {
                n += 1;
                assert!(error <= 2.0, "seed {seed}: {e:?} vs {truth:?}");
                assert!(
                    (e.speed_mps() - truth.speed()).abs() <= 2.0,
                    "seed {seed}: {e:?} vs {truth:?}"
                );
            }
        }
        assert!(n > 100, "seed {seed}: {n} circling estimates");
    }
}
