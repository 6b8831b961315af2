use super::sim::Icm20948Sim;
use super::*;
use crate::i2c::sim::SimDelay;
use proptest::prelude::*;

fn driver(sim: &Icm20948Sim) -> (Icm20948<Icm20948Sim>, SimDelay) {
    (
        Icm20948::new(sim.clone(), ADDRESS_AD0_LOW, Config::default()),
        sim.delay(),
    )
}

#[test]
fn init_then_a_drain_reads_whole_frames_at_the_sample_rate() {
    let sim = Icm20948Sim::new(ADDRESS_AD0_LOW);
    let (mut d, mut delay) = driver(&sim);
    d.init(&mut delay).expect("initialises");
    sim.advance(Duration::from_millis(250));
    let drain = d.drain().expect("drains");
    // 50 Hz for 250 ms: 12 or 13 frames.
    assert!(
        (12..=13).contains(&drain.frames.len()),
        "{}",
        drain.frames.len()
    );
    let f = drain.frames[0];
    assert!((f.accel_mps2[2] + G).abs() < 0.01, "{f:?}");
    let mag = f.mag_ut.expect("the magnetometer's field");
    assert!(
        (mag[2] - 49.0 * 64f64.to_radians().sin()).abs() < 0.2,
        "{mag:?}"
    );
    assert!(!f.saturated);
    // Drained: the next drain only sees what came since.
    sim.advance(Duration::from_millis(100));
    let next = d.drain().expect("drains");
    assert!(
        (4..=6).contains(&next.frames.len()),
        "{}",
        next.frames.len()
    );
}

#[test]
fn a_drain_is_a_handful_of_transactions_whatever_the_frames() {
    let sim = Icm20948Sim::new(ADDRESS_AD0_LOW);
    let (mut d, mut delay) = driver(&sim);
    d.init(&mut delay).expect("initialises");
    sim.advance(Duration::from_millis(240));
    let before = sim.transactions();
    let drain = d.drain().expect("drains");
    assert!(drain.frames.len() >= 10);
    assert!(
        sim.transactions() - before <= 3,
        "{}",
        sim.transactions() - before
    );
}

#[test]
fn a_part_that_is_not_an_icm20948_is_refused_by_name() {
    let sim = Icm20948Sim::new(ADDRESS_AD0_LOW);
    sim.set_who_am_i(0x71);
    let (mut d, mut delay) = driver(&sim);
    assert!(matches!(d.init(&mut delay), Err(Error::WrongWhoAmI(0x71))));
}

#[test]
fn a_missing_magnetometer_fails_init() {
    let sim = Icm20948Sim::new(ADDRESS_AD0_LOW);
    sim.set_magnetometer_absent(true);
    let (mut d, mut delay) = driver(&sim);
    assert!(matches!(
        d.init(&mut delay),
        Err(Error::MagnetometerNotAnswering)
    ));
}

#[test]
fn a_nack_is_a_bus_error_and_the_next_drain_works() {
    let sim = Icm20948Sim::new(ADDRESS_AD0_LOW);
    let (mut d, mut delay) = driver(&sim);
    d.init(&mut delay).expect("initialises");
    sim.advance(Duration::from_millis(100));
    sim.nack_next(1);
    assert!(matches!(d.drain(), Err(Error::Bus(_))));
    assert!(!d.drain().expect("drains").frames.is_empty());
}

#[test]
fn an_overflow_resets_the_fifo_and_is_reported() {
    let sim = Icm20948Sim::new(ADDRESS_AD0_LOW);
    let (mut d, mut delay) = driver(&sim);
    d.init(&mut delay).expect("initialises");
    sim.overflow_fifo();
    assert!(matches!(d.drain(), Err(Error::FifoOverflow { .. })));
    assert_eq!(sim.fifo_len(), 0);
    // A long sleep of the host overflows the FIFO too.
    sim.advance(Duration::from_secs(3));
    assert!(matches!(d.drain(), Err(Error::FifoOverflow { .. })));
    sim.advance(Duration::from_millis(100));
    assert!(!d.drain().expect("drains").frames.is_empty());
}

#[test]
fn a_stuck_fifo_is_reported_after_a_few_empty_drains() {
    let sim = Icm20948Sim::new(ADDRESS_AD0_LOW);
    let (mut d, mut delay) = driver(&sim);
    d.init(&mut delay).expect("initialises");
    sim.set_stuck_fifo(true);
    let mut result = Ok(Drain::default());
    for _ in 0..STALLED_DRAINS {
        sim.advance(Duration::from_millis(250));
        result = d.drain();
    }
    assert!(matches!(result, Err(Error::FifoStalled(_))), "{result:?}");
    sim.clear_faults();
    sim.advance(Duration::from_millis(250));
    assert!(!d.drain().expect("drains").frames.is_empty());
}

#[test]
fn new_ranges_take_effect_with_an_empty_fifo_and_saturation_is_marked() {
    let sim = Icm20948Sim::new(ADDRESS_AD0_LOW);
    let (mut d, mut delay) = driver(&sim);
    d.init(&mut delay).expect("initialises");
    sim.advance(Duration::from_millis(100));
    d.set_config(Config {
        sample_rate_hz: 100.0,
        gyro_range: GyroRange::Dps250,
        accel_range: AccelRange::G2,
    })
    .expect("reconfigures");
    assert_eq!(sim.fifo_len(), 0);
    sim.set_motion([0.0, 0.0, 1.0], [0.0, 0.0, -3.0 * G], [20.0, 5.0, 44.0]);
    sim.advance(Duration::from_millis(100));
    let drain = d.drain().expect("drains");
    assert!(
        (9..=11).contains(&drain.frames.len()),
        "{}",
        drain.frames.len()
    );
    let f = drain.frames[0];
    assert!(f.saturated, "3 g on a 2 g range sits at the rail");
    assert!((f.gyro_rad_s[2] - 1.0).abs() < 0.01, "{f:?}");
}

#[test]
fn the_die_temperature_reads_back() {
    let sim = Icm20948Sim::new(ADDRESS_AD0_LOW);
    let (mut d, mut delay) = driver(&sim);
    d.init(&mut delay).expect("initialises");
    sim.set_die_temperature_k(230.0);
    let t = d.die_temperature_k().expect("reads");
    assert!((t - 230.0).abs() < 0.01, "{t}");
}

#[test]
fn the_descriptor_names_the_part_and_its_settings() {
    let sim = Icm20948Sim::new(ADDRESS_AD0_LOW);
    let (d, _) = driver(&sim);
    let desc = d.descriptor();
    use aloft_protocol::ParameterValue::Integer;
    assert_eq!(desc.parameter("WHO_AM_I"), Some(&Integer(0xEA)));
    assert_eq!(desc.parameter("gyro_range_dps"), Some(&Integer(500)));
    assert_eq!(desc.parameter("GYRO_SMPLRT_DIV"), Some(&Integer(21)));
}

#[test]
fn sample_rate_dividers_follow_the_datasheet_formulas() {
    for (rate, div) in [(25.0, 43u8), (50.0, 21), (100.0, 10)] {
        let c = Config {
            sample_rate_hz: rate,
            ..Config::default()
        };
        assert_eq!(c.gyro_divider(), div);
        assert!((c.fifo_rate_hz() - rate).abs() < 0.01);
    }
    assert_eq!(fifo_count([0xE1, 0x04]), 0x104);
}

proptest! {
    #[test]
    fn any_fifo_bytes_decode_or_are_refused_as_partial(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        match decode_fifo(&bytes) {
            Ok(frames) => {
                let config = Config::default();
                let mut n = 0;
                for f in frames {
                    let s = f.to_body(&config);
                    prop_assert!(s.accel_mps2.iter().chain(s.gyro_rad_s.iter()).all(|v| v.is_finite()));
                    prop_assert!(s.accel_mps2.iter().all(|v| v.abs() <= 8.0 * G * 1.001));
                    n += 1;
                }
                prop_assert_eq!(n * FRAME_LEN, bytes.len());
            }
            Err(FrameError::Partial { len }) => prop_assert_eq!(len % FRAME_LEN != 0, true),
        }
    }

    #[test]
    fn a_frame_round_trips_through_its_bytes(
        accel in proptest::array::uniform3(any::<i16>()),
        gyro in proptest::array::uniform3(any::<i16>()),
        mag in proptest::array::uniform3(any::<i16>()),
        status in any::<u8>(),
    ) {
        let f = RawFrame { accel, gyro, mag, mag_status: status };
        prop_assert_eq!(RawFrame::decode(&f.encode()), f);
    }

    #[test]
    fn body_values_within_range_round_trip_to_a_count(
        a in proptest::array::uniform3(-70.0f64..70.0),
        w in proptest::array::uniform3(-8.0f64..8.0),
        m in proptest::array::uniform3(-700.0f64..700.0),
    ) {
        let config = Config::default();
        let s = RawFrame::from_body(&config, a, w, m).to_body(&config);
        for i in 0..3 {
            prop_assert!((s.accel_mps2[i] - a[i]).abs() <= config.accel_range.mps2_per_lsb());
            prop_assert!((s.gyro_rad_s[i] - w[i]).abs() <= config.gyro_range.rad_s_per_lsb());
        }
        let mag = s.mag_ut.expect("within the AK09916's range");
        for i in 0..3 {
            prop_assert!((mag[i] - m[i]).abs() <= MAG_UT_PER_LSB);
        }
    }

    #[test]
    fn the_simulator_survives_any_register_traffic(ops in proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..8), 0usize..40), 0..60)) {
        use embedded_hal::i2c::I2c;
        let mut sim = Icm20948Sim::new(ADDRESS_AD0_LOW);
        for (register, data, read) in ops {
            let mut w = vec![register];
            w.extend(data);
            let _ = sim.write(ADDRESS_AD0_LOW, &w);
            let mut buf = vec![0u8; read];
            let _ = sim.write_read(ADDRESS_AD0_LOW, &[register], &mut buf);
            sim.advance(Duration::from_millis(7));
            prop_assert!(sim.fifo_len() <= FIFO_SIZE);
        }
    }
}
