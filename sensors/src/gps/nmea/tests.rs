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
    let line = encode::finish("GPGBS,201530.00,2.1,1.8,3.4,,,,");
    let Sentence::Other(o) = parse(line.as_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(o.address, "GPGBS");
    assert_eq!(o.fields().nth(3), Some("3.4"));
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
        parse(b"$GNVTG,,T,,M,0.117,N,0.216,K,A*3g"),
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
fn sentences_past_82_bytes_are_accepted_up_to_130_and_131_is_too_long() {
    let fill = |n: usize| encode::finish(&format!("GPTXT,{}", "x".repeat(n)));
    let standard = fill(STANDARD_SENTENCE_LEN - 2 - 1 - 6 - 3);
    assert_eq!(standard.len(), 82);
    assert!(parse(standard.as_bytes()).is_ok());
    let over_standard = fill(STANDARD_SENTENCE_LEN - 2 - 1 - 6 - 3 + 1);
    assert_eq!(over_standard.len(), 83);
    assert!(parse(over_standard.as_bytes()).is_ok());
    let longest = fill(MAX_SENTENCE_LEN - 2 - 1 - 6 - 3);
    assert_eq!(longest.len(), MAX_SENTENCE_LEN);
    assert!(parse(longest.as_bytes()).is_ok());
    let long = fill(MAX_SENTENCE_LEN - 2 - 1 - 6 - 3 + 1);
    assert_eq!(parse(long.as_bytes()), Err(NmeaError::TooLong));
    // The bound counts a doubled start too.
    let doubled = format!("${longest}");
    assert_eq!(parse(doubled.as_bytes()), Err(NmeaError::TooLong));
}

#[test]
fn parses_a_high_precision_gga_with_eight_decimals_of_minutes() {
    // The GGA example of Trimble's and NovAtel's manuals (RTK, 8 decimals): 86 bytes.
    let line = "$GPGGA,172814.0,3723.46587704,N,12202.26957864,W,2,6,1.2,18.893,M,-25.669,M,2.0,0031*4F\r\n";
    assert!(line.len() > STANDARD_SENTENCE_LEN);
    let Sentence::Gga(g) = parse(line.as_bytes()).unwrap() else {
        panic!()
    };
    assert!((g.latitude_deg.unwrap() - (37.0 + 23.465_877_04 / 60.0)).abs() < 1e-12);
    assert!((g.longitude_deg.unwrap() + (122.0 + 2.269_578_64 / 60.0)).abs() < 1e-12);
    assert_eq!(g.quality, Some(2));
    assert_eq!(g.satellites_used, Some(6));
    assert_eq!(g.altitude_msl_m, Some(18.893));
    assert_eq!(g.geoid_separation_m, Some(-25.669));
    assert_eq!(g.dgps_age_s, Some(2.0));
    assert_eq!(g.dgps_station, Some(31));
}

#[test]
fn a_doubled_start_reads_as_one_and_lower_case_checksums_are_accepted() {
    let one = parse(b"$GNVTG,,T,,M,0.117,N,0.216,K,A*3F\r\n").unwrap();
    assert_eq!(parse(b"$$GNVTG,,T,,M,0.117,N,0.216,K,A*3F\r\n"), Ok(one));
    assert_eq!(parse(b"$GNVTG,,T,,M,0.117,N,0.216,K,A*3f\r\n"), Ok(one));
    assert_eq!(parse(b"$$GNVTG,,T,,M,0.117,N,0.216,K,A*3f"), Ok(one));
    // Only one extra start: a third is a '$' inside the body.
    assert_eq!(
        parse(b"$$$GNVTG,,T,,M,0.117,N,0.216,K,A*3F"),
        Err(NmeaError::InvalidByte)
    );
    // The checksum still covers the whole body after the start.
    assert!(matches!(
        parse(b"$$NVTG,,T,,M,0.117,N,0.216,K,A*3F"),
        Err(NmeaError::ChecksumMismatch { .. })
    ));
}

#[test]
fn parses_the_gns_example_of_novatels_manual() {
    // NovAtel OEM7 GNS example: RTK fixed on GPS and GLONASS, 13 satellites.
    let line = b"$GNGNS,014035.00,4332.69262,S,17235.48549,E,RR,13,0.9,25.63,11.24,,*70\r\n";
    let Sentence::Gns(g) = parse(line).unwrap() else {
        panic!()
    };
    assert_eq!(g.talker, Talker::Gnss);
    assert_eq!(
        g.time.map(|t| (t.hour, t.minute, t.second)),
        Some((1, 40, 35))
    );
    assert!((g.latitude_deg.unwrap() + (43.0 + 32.692_62 / 60.0)).abs() < 1e-12);
    assert!((g.longitude_deg.unwrap() - (172.0 + 35.485_49 / 60.0)).abs() < 1e-12);
    assert_eq!(
        g.modes.as_slice(),
        [PositioningMode::FixedRtk, PositioningMode::FixedRtk]
    );
    assert!(g.modes.any_fix());
    assert_eq!(g.satellites_used, Some(13));
    assert_eq!(g.hdop, Some(0.9));
    assert_eq!(g.altitude_msl_m, Some(25.63));
    assert_eq!(g.geoid_separation_m, Some(11.24));
    assert_eq!(g.dgps_age_s, None);
    assert_eq!(g.navigational_status, None);
}

#[test]
fn parses_u_blox_nmea_410_gns_with_navigational_status() {
    // u-blox M8 protocol specification's GNS example (GPS autonomous, GLONASS, Galileo
    // and BeiDou not used), NMEA 4.10 layout with navigational status V.
    let line =
        encode::finish("GNGNS,103600.01,5114.51176,N,00012.29380,W,ANNN,07,1.18,111.5,45.6,,,V");
    let Sentence::Gns(g) = parse(line.as_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(g.modes.as_slice().len(), 4);
    assert!(g.modes.any_fix());
    assert_eq!(g.time.map(|t| t.nanosecond), Some(10_000_000));
    assert_eq!(g.satellites_used, Some(7));
    assert_eq!(g.navigational_status, Some(b'V'));
    // No constellation in the fix.
    let none = encode::finish("GNGNS,103600.01,,,,,NNNN,00,99.99,,,,,V");
    let Sentence::Gns(g) = parse(none.as_bytes()).unwrap() else {
        panic!()
    };
    assert!(!g.modes.any_fix());
    assert_eq!(g.latitude_deg, None);
    // A mode letter that is none, too many letters, a wrong field count: typed errors.
    for (body, error) in [
        (
            "GNGNS,103600.01,,,,,AX,00,,,,,,V",
            NmeaError::BadField { index: 5 },
        ),
        (
            "GNGNS,103600.01,,,,,AAAAAAAAA,00,,,,,,V",
            NmeaError::BadField { index: 5 },
        ),
        (
            "GNGNS,103600.01,,,,,AN,100,,,,,,V",
            NmeaError::BadField { index: 6 },
        ),
        (
            "GNGNS,103600.01,,,,,AN,00,,,,",
            NmeaError::FieldCount { found: 11 },
        ),
    ] {
        assert_eq!(parse(encode::finish(body).as_bytes()), Err(error), "{body}");
    }
}

#[test]
fn parses_gns_as_the_standard_and_real_receivers_print_it() {
    // NMEA 0183 4.10's own GNS example: differential GPS, autonomous GLONASS, DGPS age and
    // station, navigational status S (safe).
    let line = encode::finish(
        "GNGNS,122310.2,3722.425671,N,12258.856215,W,DA,14,0.9,1005.543,6.5,5.2,23,S",
    );
    let Sentence::Gns(g) = parse(line.as_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(
        g.modes.as_slice(),
        [PositioningMode::Differential, PositioningMode::Autonomous]
    );
    assert_eq!((g.dgps_age_s, g.dgps_station), (Some(5.2), Some(23)));
    assert_eq!(g.navigational_status, Some(b'S'));
    assert_eq!(g.altitude_msl_m, Some(1005.543));
    // A Unicore/RTK receiver: eight decimals of minutes, five constellations, 92 bytes.
    let rtk = b"$GNGNS,024034.00,4004.73854216,N,11614.19720023,E,ANAAA,28,0.8,1574.406,-8.4923,,,S*71\r\n";
    assert!(rtk.len() > STANDARD_SENTENCE_LEN);
    let Sentence::Gns(g) = parse(rtk).unwrap() else {
        panic!()
    };
    assert!((g.latitude_deg.unwrap() - (40.0 + 4.738_542_16 / 60.0)).abs() < 1e-12);
    assert_eq!(g.modes.as_slice().len(), 5);
    assert_eq!(g.geoid_separation_m, Some(-8.4923));
    // A phone modem (Motorola Droid 4) before its first fix: every field empty but the
    // mode letters.
    let Sentence::Gns(g) = parse(b"$GNGNS,,,,,,NN,,,,,,*53\r\n").unwrap() else {
        panic!()
    };
    assert_eq!(
        (g.time, g.latitude_deg, g.satellites_used),
        (None, None, None)
    );
    assert!(!g.modes.any_fix());
}

#[test]
fn parses_the_zda_example_of_the_nmea_reference() {
    let line = b"$GPZDA,201530.00,04,07,2002,00,00*60\r\n";
    let Sentence::Zda(z) = parse(line).unwrap() else {
        panic!()
    };
    assert_eq!(
        z.time.map(|t| (t.hour, t.minute, t.second)),
        Some((20, 15, 30))
    );
    assert_eq!(
        z.date,
        Some(Date {
            year: 2002,
            month: 7,
            day: 4
        })
    );
    assert_eq!(
        (z.local_zone_hours, z.local_zone_minutes),
        (Some(0), Some(0))
    );
    // A receiver before its first fix sends empty fields; the zone may be negative.
    let empty = encode::finish("GPZDA,,,,,,");
    let Sentence::Zda(z) = parse(empty.as_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!((z.time, z.date), (None, None));
    let west = encode::finish("GPZDA,201530.00,04,07,2002,-05,30");
    let Sentence::Zda(z) = parse(west.as_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(
        (z.local_zone_hours, z.local_zone_minutes),
        (Some(-5), Some(30))
    );
    for (body, error) in [
        (
            "GPZDA,201530.00,32,07,2002,00,00",
            NmeaError::BadField { index: 1 },
        ),
        (
            "GPZDA,201530.00,04,13,2002,00,00",
            NmeaError::BadField { index: 2 },
        ),
        (
            "GPZDA,201530.00,04,07,02,00,00",
            NmeaError::BadField { index: 3 },
        ),
        (
            "GPZDA,201530.00,04,,2002,00,00",
            NmeaError::BadField { index: 2 },
        ),
        (
            "GPZDA,201530.00,04,07,2002,14,00",
            NmeaError::BadField { index: 4 },
        ),
        (
            "GPZDA,201530.00,04,07,2002,00,60",
            NmeaError::BadField { index: 5 },
        ),
        (
            "GPZDA,201530.00,04,07,2002,00",
            NmeaError::FieldCount { found: 5 },
        ),
    ] {
        assert_eq!(parse(encode::finish(body).as_bytes()), Err(error), "{body}");
    }
}

#[test]
fn an_rmc_with_an_odd_magnetic_variation_keeps_its_speed_and_date() {
    for variation in [
        "3.1,", ",E", "3.1,X", "abc,E", "-,-", "3.1,e", "200.0,E", ",", "3.1,EW",
    ] {
        let line = encode::finish(&format!(
            "GPRMC,120001.00,A,4404.14063,N,12118.85478,W,11.0,254.1,180325,{variation},A"
        ));
        let Ok(Sentence::Rmc(r)) = parse(line.as_bytes()) else {
            panic!("{line:?}")
        };
        assert_eq!(r.speed_knots, Some(11.0), "{line:?}");
        assert_eq!(r.track_deg, Some(254.1));
        assert_eq!(r.date.map(|d| d.year), Some(2025));
        assert_eq!(r.magnetic_variation_deg, None, "{line:?}");
        assert_eq!(r.mode, Some(PositioningMode::Autonomous));
    }
    let line = encode::finish("GPRMC,120001.00,A,4404.14063,N,12118.85478,W,11.0,,180325,3.1,W,A");
    let Ok(Sentence::Rmc(r)) = parse(line.as_bytes()) else {
        panic!()
    };
    assert_eq!(r.magnetic_variation_deg, Some(-3.1));
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
    let gns = (
        arb_talker(),
        arb_time(),
        arb_coord(90),
        arb_coord(180),
        proptest::collection::vec(
            prop_oneof![
                Just(b'A'),
                Just(b'D'),
                Just(b'N'),
                Just(b'R'),
                Just(b'F'),
                Just(b'E')
            ],
            0..=ModeIndicators::MAX,
        ),
        proptest::option::of(0u8..100),
        arb_fixed(0, 9999, 2),
        (arb_fixed(-4000, 130_000, 1), arb_fixed(-1000, 1000, 1)),
        proptest::option::of(prop_oneof![Just(b'S'), Just(b'C'), Just(b'U'), Just(b'V')]),
    )
        .prop_map(
            |(talker, time, lat, lon, modes, n, hdop, (alt, sep), nav)| {
                Sentence::Gns(Gns {
                    talker,
                    time,
                    latitude_deg: lat,
                    longitude_deg: lon,
                    modes: ModeIndicators::from_letters(&modes).unwrap(),
                    satellites_used: n,
                    hdop,
                    altitude_msl_m: alt,
                    geoid_separation_m: sep,
                    dgps_age_s: None,
                    dgps_station: None,
                    navigational_status: nav,
                })
            },
        )
        .boxed();
    let zda = (
        arb_talker(),
        arb_time(),
        proptest::option::of((1980u16..10_000, 1u8..13, 1u8..32)),
        proptest::option::of(-13i8..=13),
        proptest::option::of(0u8..60),
    )
        .prop_map(|(talker, time, date, h, m)| {
            Sentence::Zda(Zda {
                talker,
                time,
                date: date.map(|(year, month, day)| Date { year, month, day }),
                local_zone_hours: h,
                local_zone_minutes: m,
            })
        })
        .boxed();
    prop_oneof![gga, rmc, gsa, gsv, vtg, gll, gns, zda].boxed()
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
        (Sentence::Gns(a), Sentence::Gns(b)) => {
            a.talker == b.talker
                && a.time == b.time
                && close(a.latitude_deg, b.latitude_deg, C)
                && close(a.longitude_deg, b.longitude_deg, C)
                && a.modes == b.modes
                && a.satellites_used == b.satellites_used
                && close(a.hdop, b.hdop, V)
                && close(a.altitude_msl_m, b.altitude_msl_m, V)
                && close(a.geoid_separation_m, b.geoid_separation_m, V)
                && a.navigational_status == b.navigational_status
        }
        // GSA, GSV, VTG and ZDA carry values the writer prints exactly.
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
        body in "[A-Z]{2}(GGA|RMC|GSA|GSV|VTG|GLL|GNS|ZDA)(,[0-9.NSEWAVMTKDRF+-]{0,8}){0,20}",
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
        let was = line[i];
        line[i] ^= mask;
        // Case is not significant in the checksum's hex letters.
        let same_digit = i + 4 >= line.len()
            && was.is_ascii_hexdigit()
            && line[i].eq_ignore_ascii_case(&was);
        prop_assume!(!same_digit);
        prop_assert!(parse(&line).is_err(), "{:?}", String::from_utf8_lossy(&line));
    }

    #[test]
    fn a_doubled_start_or_lower_case_checksum_parses_to_the_same_sentence(
        s in arb_sentence(),
        doubled in any::<bool>(),
    ) {
        let line = encode::sentence(&s);
        let (head, digits) = line.trim_end().split_at(line.trim_end().len() - 2);
        let variant = format!(
            "{}{head}{}\r\n",
            if doubled { "$" } else { "" },
            digits.to_ascii_lowercase()
        );
        prop_assert_eq!(parse(variant.as_bytes()), parse(line.as_bytes()));
    }

    #[test]
    fn high_precision_coordinates_keep_every_decimal(
        lat_minutes in 0u64..6_000_000_000,
        lon_minutes in 0u64..6_000_000_000,
        lat_deg in 0u8..90,
        lon_deg in 0u16..180,
        decimals in 5usize..=10,
        extra_altitude_digits in 0usize..30,
    ) {
        // Minutes printed with up to ten decimals, as RTK receivers do; lines up to the
        // bound are read, longer ones refused, never cut.
        let scale = 10u64.pow(u32::try_from(10 - decimals).unwrap());
        let (lat_m, lon_m) = (lat_minutes / scale, lon_minutes / scale);
        let minutes = |m: u64| format!("{:02}.{:0decimals$}", m / 10u64.pow(decimals as u32), m % 10u64.pow(decimals as u32));
        let body = format!(
            "GNGGA,120000.00,{lat_deg:02}{},N,{lon_deg:03}{},E,4,24,0.5,1234.5{},M,-21.3,M,1.0,0000",
            minutes(lat_m),
            minutes(lon_m),
            "0".repeat(extra_altitude_digits)
        );
        let line = encode::finish(&body);
        match parse(line.as_bytes()) {
            Ok(Sentence::Gga(g)) => {
                prop_assert!(line.len() <= MAX_SENTENCE_LEN);
                let want = |deg: f64, m: u64| deg + m as f64 / 10f64.powi(decimals as i32) / 60.0;
                prop_assert!((g.latitude_deg.unwrap() - want(f64::from(lat_deg), lat_m)).abs() < 1e-12);
                prop_assert!((g.longitude_deg.unwrap() - want(f64::from(lon_deg), lon_m)).abs() < 1e-12);
                prop_assert_eq!(g.altitude_msl_m, Some(1234.5));
            }
            other => {
                prop_assert!(line.len() > MAX_SENTENCE_LEN, "{line:?}: {other:?}");
                prop_assert_eq!(other, Err(NmeaError::TooLong));
            }
        }
    }

    #[test]
    fn any_magnetic_variation_pair_leaves_speed_track_and_date(
        value in "[ -~&&[^,*$]]{0,6}",
        direction in "[ -~&&[^,*$]]{0,2}",
    ) {
        let line = encode::finish(&format!(
            "GPRMC,120001.00,A,4404.14063,N,12118.85478,W,11.0,254.1,180325,{value},{direction},A"
        ));
        let Ok(Sentence::Rmc(r)) = parse(line.as_bytes()) else {
            return Err(TestCaseError::fail(format!("{line:?}")));
        };
        prop_assert_eq!(r.speed_knots, Some(11.0));
        prop_assert_eq!(r.track_deg, Some(254.1));
        prop_assert_eq!(r.date.map(|d| (d.year, d.month, d.day)), Some((2025, 3, 18)));
        if let Some(v) = r.magnetic_variation_deg {
            prop_assert!(v.abs() <= 180.0 && matches!(direction.as_str(), "E" | "W"));
        }
    }
}
