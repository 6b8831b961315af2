use super::parse::parse_decimal;
use super::*;
use proptest::prelude::*;

fn close(a: Option<f64>, b: Option<f64>, tol: f64) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= tol,
        (None, None) => true,
        _ => false,
    }
}

#[test]
fn checksum_of_a_real_gga_matches_its_stated_value() {
    let body = b"GNGGA,171926.00,4404.14063,N,12118.85478,W,1,12,0.91,1147.2,M,-21.3,M,,";
    assert_eq!(checksum(body), 0x44);
}

#[test]
fn parses_real_neo_m8n_gga_with_every_field() {
    let s =
        parse(b"$GNGGA,171926.00,4404.14063,N,12118.85478,W,1,12,0.91,1147.2,M,-21.3,M,,*44\r\n")
            .unwrap();
    let Sentence::Gga(g) = s else { panic!("{s:?}") };
    assert_eq!(g.talker, Talker::Gnss);
    assert_eq!(
        g.time,
        Some(TimeOfDay {
            hour: 17,
            minute: 19,
            second: 26,
            nanosecond: 0
        })
    );
    // gpsd decodes this very sentence to 44.069010500, -121.314246333.
    assert!((g.latitude_deg.unwrap() - 44.069_010_5).abs() < 1e-9);
    assert!((g.longitude_deg.unwrap() + 121.314_246_333).abs() < 1e-9);
    assert_eq!(g.quality, Some(1));
    assert_eq!(g.satellites_used, Some(12));
    assert_eq!(g.hdop, Some(0.91));
    assert_eq!(g.altitude_msl_m, Some(1147.2));
    assert_eq!(g.geoid_separation_m, Some(-21.3));
    assert_eq!(g.dgps_age_s, None);
    assert_eq!(g.dgps_station, None);
}

#[test]
fn parses_nmea_reference_rmc_example_in_southern_western_hemispheres() {
    // Classic example with the hemispheres flipped; variation 3.1 W.
    let body = "GPRMC,225446,A,4916.45,S,12311.12,W,000.5,054.7,191194,020.3,W";
    let line = encode::finish(body);
    let Sentence::Rmc(r) = parse(line.as_bytes()).unwrap() else {
        panic!()
    };
    assert!((r.latitude_deg.unwrap() + (49.0 + 16.45 / 60.0)).abs() < 1e-12);
    assert!((r.longitude_deg.unwrap() + (123.0 + 11.12 / 60.0)).abs() < 1e-12);
    assert_eq!(r.status, Some(Status::Valid));
    assert_eq!(r.speed_knots, Some(0.5));
    assert!((r.speed_mps().unwrap() - 0.257_222).abs() < 1e-6);
    assert_eq!(r.track_deg, Some(54.7));
    assert_eq!(
        r.date,
        Some(Date {
            year: 1994,
            month: 11,
            day: 19
        })
    );
    assert_eq!(r.magnetic_variation_deg, Some(-20.3));
    assert_eq!(r.mode, None);
}

#[test]
fn parses_gsv_with_empty_snr_and_partial_last_group() {
    let Sentence::Gsv(g) = parse(b"$GLGSV,3,3,10,83,27,309,29,84,01,353,*63").unwrap() else {
        panic!()
    };
    assert_eq!(g.talker, Talker::Glonass);
    assert_eq!((g.total_messages, g.message_number), (3, 3));
    assert_eq!(g.satellites_in_view, Some(10));
    assert_eq!(
        g.satellites[1],
        Some(GsvSatellite {
            prn: 84,
            elevation_deg: Some(1.0),
            azimuth_deg: Some(353.0),
            snr_dbhz: None
        })
    );
    assert_eq!(g.satellites[2], None);
}

#[test]
fn parses_gsa_vtg_gll_from_the_capture() {
    let Sentence::Gsa(g) = parse(b"$GNGSA,A,3,67,83,76,82,68,,,,,,,,1.56,0.91,1.27*1D").unwrap()
    else {
        panic!()
    };
    assert_eq!(g.used().collect::<Vec<_>>(), [67, 83, 76, 82, 68]);
    assert_eq!(
        (g.fix_mode, g.pdop, g.vdop),
        (Some(3), Some(1.56), Some(1.27))
    );
    let Sentence::Vtg(v) = parse(b"$GNVTG,,T,,M,0.117,N,0.216,K,A*3F").unwrap() else {
        panic!()
    };
    assert_eq!(v.track_true_deg, None);
    assert!((v.speed_mps().unwrap() - 0.117 * 1852.0 / 3600.0).abs() < 1e-12);
    assert_eq!(v.mode, Some(PositioningMode::Autonomous));
    let Sentence::Gll(l) = parse(b"$GNGLL,4404.14066,N,12118.85481,W,171925.00,A,A*66").unwrap()
    else {
        panic!()
    };
    assert_eq!(l.status, Some(Status::Valid));
    assert_eq!(l.time.map(|t| t.second), Some(25));
}

#[test]
fn other_well_formed_types_are_not_errors() {
    let line = encode::finish("GPZDA,201530.00,04,07,2002,00,00");
    let Sentence::Other(o) = parse(line.as_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(o.address, "GPZDA");
    assert_eq!(o.fields().nth(3), Some("2002"));
    let line = encode::finish("PUBX,00,081350.00,4717.113210,N");
    assert!(matches!(parse(line.as_bytes()), Ok(Sentence::Other(_))));
    let line = encode::finish("GNTXT");
    let Ok(Sentence::Other(o)) = parse(line.as_bytes()) else {
        panic!()
    };
    assert_eq!(o.fields().count(), 0);
}

#[test]
fn checksum_problems_are_typed_errors() {
    assert_eq!(
        parse(b"$GNVTG,,T,,M,0.117,N,0.216,K,A*3E"),
        Err(NmeaError::ChecksumMismatch {
            stated: 0x3e,
            computed: 0x3f
        })
    );
    assert_eq!(
        parse(b"$GNVTG,,T,,M,0.117,N,0.216,K,A"),
        Err(NmeaError::MissingChecksum)
    );
    assert_eq!(
        parse(b"$GNVTG,,T,,M,0.117,N,0.216,K,A*3f"),
        Err(NmeaError::BadChecksumSyntax)
    );
    assert_eq!(parse(b"GNVTG,,T*3F"), Err(NmeaError::MissingStart));
    assert_eq!(parse(b"\r\n"), Err(NmeaError::Empty));
    assert_eq!(parse(b"$*00"), Err(NmeaError::BadAddress));
    assert_eq!(
        parse(b"$GPGGA,1*00").map_err(|e| e.kind()),
        Err("checksum_mismatch")
    );
}

#[test]
fn an_83_byte_sentence_is_too_long_and_82_is_not() {
    // 80 bytes before CR LF is the limit.
    let fill = |n: usize| encode::finish(&format!("GPTXT,{}", "x".repeat(n)));
    let ok = fill(80 - 1 - 6 - 3);
    assert_eq!(ok.len(), 82);
    assert!(parse(ok.as_bytes()).is_ok());
    let long = fill(80 - 1 - 6 - 3 + 1);
    assert_eq!(parse(long.as_bytes()), Err(NmeaError::TooLong));
}

#[test]
fn field_counts_and_numeric_syntax_are_checked() {
    let gga = encode::finish("GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,");
    assert_eq!(
        parse(gga.as_bytes()),
        Err(NmeaError::FieldCount { found: 13 })
    );
    for bad in ["1e3", "inf", "NaN", "1.2.3", "-", ".", "0x1"] {
        let line = encode::finish(&format!(
            "GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,{bad},M,46.9,M,,"
        ));
        assert_eq!(
            parse(line.as_bytes()),
            Err(NmeaError::BadField { index: 8 }),
            "{bad}"
        );
    }
    let minutes = encode::finish("GPGLL,4861.000,N,01131.000,E,123519,A");
    assert_eq!(
        parse(minutes.as_bytes()),
        Err(NmeaError::BadField { index: 0 })
    );
    let hemisphere = encode::finish("GPGLL,4801.000,E,01131.000,E,123519,A");
    assert_eq!(
        parse(hemisphere.as_bytes()),
        Err(NmeaError::BadField { index: 1 })
    );
    let time = encode::finish("GPGLL,4801.000,N,01131.000,E,243519,A");
    assert_eq!(
        parse(time.as_bytes()),
        Err(NmeaError::BadField { index: 4 })
    );
}

#[test]
fn decimal_parser_is_exact_on_typical_values() {
    for (text, v) in [
        ("0.91", 0.91),
        ("-21.3", -21.3),
        ("12500.0", 12500.0),
        ("007", 7.0),
        ("4.14063", 4.14063),
        ("0.000001", 0.000001),
    ] {
        assert_eq!(parse_decimal(text.as_bytes()), Some(v), "{text}");
    }
    // Beyond the fast path the standard library takes over, still exactly.
    assert_eq!(
        parse_decimal(b"1.00000000000000000000000001"),
        Some(1.000_000_000_000_000_000_000_000_01)
    );
}

#[test]
fn unit_helpers_convert_to_si() {
    assert!((knots_to_mps(1.0) - 0.514_444_444).abs() < 1e-9);
    assert!((kmh_to_mps(36.0) - 10.0).abs() < 1e-12);
    assert!((ddmm_to_degrees(4807.038, Hemisphere::North) - 48.1173).abs() < 1e-9);
    assert!((ddmm_to_degrees(1131.0, Hemisphere::West) + 11.516_666_67).abs() < 1e-8);
}

fn arb_talker() -> impl Strategy<Value = Talker> {
    prop_oneof![
        Just(Talker::Gps),
        Just(Talker::Glonass),
        Just(Talker::Galileo),
        Just(Talker::BeidouGb),
        Just(Talker::BeidouBd),
        Just(Talker::Qzss),
        Just(Talker::Gnss),
    ]
}

fn arb_time() -> impl Strategy<Value = Option<TimeOfDay>> {
    proptest::option::of((0u8..24, 0u8..60, 0u8..60, 0u32..100).prop_map(
        |(hour, minute, second, cs)| TimeOfDay {
            hour,
            minute,
            second,
            nanosecond: cs * 10_000_000,
        },
    ))
}

/// A value with `decimals` decimals, as a receiver would print it.
fn arb_fixed(lo: i64, hi: i64, decimals: i32) -> impl Strategy<Value = Option<f64>> {
    proptest::option::of((lo..=hi).prop_map(move |v| v as f64 / 10f64.powi(decimals)))
}

/// A coordinate on the writer's grid (1e-5 minutes).
fn arb_coord(max_deg: i64) -> impl Strategy<Value = Option<f64>> {
    proptest::option::of(
        (-(max_deg - 1)..max_deg, 0i64..6_000_000).prop_map(|(d, m)| {
            let v = d.abs() as f64 + m as f64 / 1e5 / 60.0;
            if d < 0 { -v } else { v }
        }),
    )
}

fn arb_mode() -> impl Strategy<Value = Option<PositioningMode>> {
    proptest::option::of(prop_oneof![
        Just(PositioningMode::Autonomous),
        Just(PositioningMode::Differential),
        Just(PositioningMode::Estimated),
        Just(PositioningMode::NotValid),
    ])
}

fn arb_status() -> impl Strategy<Value = Option<Status>> {
    proptest::option::of(prop_oneof![Just(Status::Valid), Just(Status::Invalid)])
}

fn arb_sentence() -> BoxedStrategy<Sentence<'static>> {
    let gga = (
        arb_talker(),
        arb_time(),
        arb_coord(90),
        arb_coord(180),
        proptest::option::of(0u8..9),
        proptest::option::of(0u8..40),
        arb_fixed(0, 9999, 2),
        arb_fixed(-4000, 130_000, 1),
        arb_fixed(-1000, 1000, 1),
    )
        .prop_map(|(talker, time, lat, lon, q, n, hdop, alt, sep)| {
            Sentence::Gga(Gga {
                talker,
                time,
                latitude_deg: lat,
                longitude_deg: lon,
                quality: q,
                satellites_used: n,
                hdop,
                altitude_msl_m: alt,
                geoid_separation_m: sep,
                dgps_age_s: None,
                dgps_station: None,
            })
        })
        .boxed();
    let rmc = (
        arb_talker(),
        arb_time(),
        arb_status(),
        arb_coord(90),
        arb_coord(180),
        arb_fixed(0, 999_999, 3),
        arb_fixed(0, 35999, 2),
        proptest::option::of((1980u16..2080, 1u8..13, 1u8..32)),
        arb_fixed(-1800, 1800, 1),
        arb_mode(),
    )
        .prop_map(
            |(talker, time, status, lat, lon, spd, trk, date, var, mode)| {
                Sentence::Rmc(Rmc {
                    talker,
                    time,
                    status,
                    latitude_deg: lat,
                    longitude_deg: lon,
                    speed_knots: spd,
                    track_deg: trk,
                    date: date.map(|(year, month, day)| Date { year, month, day }),
                    // The writer prints W for negative values: -0.0 would come back as 0.0.
                    magnetic_variation_deg: var.map(|v| if v == 0.0 { 0.0 } else { v }),
                    mode,
                    navigational_status: None,
                })
            },
        )
        .boxed();
    let gsa = (
        arb_talker(),
        proptest::option::of(prop_oneof![Just(b'A'), Just(b'M')]),
        proptest::option::of(1u8..4),
        proptest::array::uniform12(proptest::option::of(1u16..100)),
        arb_fixed(0, 9999, 2),
        arb_fixed(0, 9999, 2),
        arb_fixed(0, 9999, 2),
        proptest::option::of(1u8..7),
    )
        .prop_map(|(talker, selection, fix_mode, satellites, p, h, v, sys)| {
            Sentence::Gsa(Gsa {
                talker,
                selection,
                fix_mode,
                satellites,
                pdop: p,
                hdop: h,
                vdop: v,
                system_id: sys,
            })
        })
        .boxed();
    let sat = (
        1u16..200,
        arb_fixed(0, 90, 0),
        arb_fixed(0, 359, 0),
        arb_fixed(0, 60, 0),
    )
        .prop_map(|(prn, elevation_deg, azimuth_deg, snr_dbhz)| GsvSatellite {
            prn,
            elevation_deg,
            azimuth_deg,
            snr_dbhz,
        });
    let gsv = (
        arb_talker(),
        1u8..10,
        any::<u8>(),
        proptest::option::of(0u16..100),
        proptest::collection::vec(sat, 0..=4),
        proptest::option::of(prop_oneof![Just(b'1'), Just(b'7'), Just(b'B')]),
    )
        .prop_map(|(talker, total, num, inview, sats, signal_id)| {
            let mut satellites = [None; 4];
            for (slot, s) in satellites.iter_mut().zip(sats) {
                *slot = Some(s);
            }
            Sentence::Gsv(Gsv {
                talker,
                total_messages: total,
                message_number: num % total + 1,
                satellites_in_view: inview,
                satellites,
                signal_id,
            })
        })
        .boxed();
    let vtg = (
        arb_talker(),
        arb_fixed(0, 35999, 2),
        arb_fixed(0, 35999, 2),
        arb_fixed(0, 999_999, 3),
        arb_fixed(0, 999_999, 3),
        arb_mode(),
    )
        .prop_map(|(talker, t, m, n, k, mode)| {
            Sentence::Vtg(Vtg {
                talker,
                track_true_deg: t,
                track_magnetic_deg: m,
                speed_knots: n,
                speed_kmh: k,
                mode,
            })
        })
        .boxed();
    let gll = (
        arb_talker(),
        arb_coord(90),
        arb_coord(180),
        arb_time(),
        arb_status(),
        arb_mode(),
    )
        .prop_map(|(talker, lat, lon, time, status, mode)| {
            Sentence::Gll(Gll {
                talker,
                latitude_deg: lat,
                longitude_deg: lon,
                time,
                status,
                mode,
            })
        })
        .boxed();
    prop_oneof![gga, rmc, gsa, gsv, vtg, gll].boxed()
}

/// Equal up to the rounding of decimal printing (coordinates to 1e-5 minutes).
fn same(a: &Sentence<'_>, b: &Sentence<'_>) -> bool {
    const C: f64 = 1e-9;
    const V: f64 = 1e-9;
    match (a, b) {
        (Sentence::Gga(a), Sentence::Gga(b)) => {
            a.talker == b.talker
                && a.time == b.time
                && close(a.latitude_deg, b.latitude_deg, C)
                && close(a.longitude_deg, b.longitude_deg, C)
                && a.quality == b.quality
                && a.satellites_used == b.satellites_used
                && close(a.hdop, b.hdop, V)
                && close(a.altitude_msl_m, b.altitude_msl_m, V)
                && close(a.geoid_separation_m, b.geoid_separation_m, V)
        }
        (Sentence::Rmc(a), Sentence::Rmc(b)) => {
            a.talker == b.talker
                && a.time == b.time
                && a.status == b.status
                && close(a.latitude_deg, b.latitude_deg, C)
                && close(a.longitude_deg, b.longitude_deg, C)
                && close(a.speed_knots, b.speed_knots, V)
                && close(a.track_deg, b.track_deg, V)
                && a.date == b.date
                && close(a.magnetic_variation_deg, b.magnetic_variation_deg, V)
                && a.mode == b.mode
        }
        (Sentence::Gll(a), Sentence::Gll(b)) => {
            a.talker == b.talker
                && a.time == b.time
                && a.status == b.status
                && close(a.latitude_deg, b.latitude_deg, C)
                && close(a.longitude_deg, b.longitude_deg, C)
                && a.mode == b.mode
        }
        // GSA, GSV and VTG carry values the writer prints exactly.
        _ => a == b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
        let _ = parse(&bytes);
    }

    #[test]
    fn arbitrary_sentence_shaped_text_never_panics(
        body in "[A-Z]{2}(GGA|RMC|GSA|GSV|VTG|GLL)(,[0-9.NSEWAVMTK+-]{0,8}){0,20}",
    ) {
        // Valid checksum, so the field parsers themselves get exercised.
        let _ = parse(encode::finish(&body).as_bytes());
    }

    #[test]
    fn written_sentences_round_trip(s in arb_sentence()) {
        let line = encode::sentence(&s);
        let parsed = parse(line.as_bytes());
        prop_assert!(parsed.is_ok(), "{line:?}: {parsed:?}");
        let parsed = parsed.unwrap();
        prop_assert!(same(&s, &parsed), "{line:?}\n{s:?}\n{parsed:?}");
    }

    #[test]
    fn a_single_changed_byte_is_always_detected(
        s in arb_sentence(),
        at in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let mut line = encode::sentence(&s).into_bytes();
        let i = at.index(line.len());
        line[i] ^= mask;
        prop_assert!(parse(&line).is_err(), "{:?}", String::from_utf8_lossy(&line));
    }
}
