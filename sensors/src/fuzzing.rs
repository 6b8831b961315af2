//! Bodies of the fuzz targets in `fuzz/`, kept in the library so that the committed corpora
//! (and every crash input ever found) replay as ordinary tests on stable Rust.
//!
//! Each body drives outside input through the same path the agent uses on a live port and
//! checks the invariants that must hold for any input: no panic, and every reading that
//! comes out has a finite value.

use aloft_protocol::{Reading, SensorId, Timestamp};

use crate::Sample;
use crate::cosmicwatch::{self, MuonDetector};
use crate::gps::fix::FixAssembler;
use crate::gps::framer::{GnssFramer, Item};
use crate::gps::nav::UbxFixAssembler;
use crate::gps::nmea;
use crate::gps::ubx::{
    Ack, CfgNav5, CfgValGet, CfgValSet, Frame, HnrPvt, MonVer, NavPosllh, NavPvt, NavSol,
    NavTimeUtc, NavVelned,
};

const SENSOR: SensorId = SensorId(0);
const TIME: Timestamp = Timestamp::monotonic(1);

fn assert_finite(readings: &[Reading]) {
    for r in readings {
        assert!(
            r.value.is_finite(),
            "{:?} came out as {}",
            r.quantity,
            r.value
        );
    }
}

fn assemble(assembler: &mut FixAssembler, line: &[u8], readings: &mut Vec<Reading>) {
    if let Ok(sentence) = nmea::parse(line)
        && let Some(fix) = assembler.push(&sentence)
    {
        fix.push_readings(SENSOR, TIME, readings);
    }
}

/// NMEA text as a receiver sends it: every line parsed, sentences assembled into fixes.
pub fn nmea(data: &[u8]) {
    let mut assembler = FixAssembler::new();
    let mut readings = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        assemble(&mut assembler, line, &mut readings);
    }
    if let Some(fix) = assembler.finish() {
        fix.push_readings(SENSOR, TIME, &mut readings);
    }
    assert_finite(&readings);
}

/// A u-blox port's bytes: demultiplexed (split where the first byte says, as reads split
/// them), every UBX frame decoded as each message type Aloft reads, fixes made.
pub fn ubx(data: &[u8]) {
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (head, tail) = data.split_at(split);
    let mut framer = GnssFramer::new();
    let mut readings = Vec::new();
    let mut assembler = FixAssembler::new();
    let mut solutions = UbxFixAssembler::new();
    for (piece, last) in [(head, false), (tail, true)] {
        framer.push(piece);
        if last {
            framer.finish();
        }
        while let Some(item) = framer.next_item() {
            match item {
                Item::Ubx(frame) => {
                    decode_all(&frame, &mut readings);
                    let _ = solutions.push(&frame, |fix| {
                        fix.push_readings(SENSOR, TIME, &mut readings);
                    });
                }
                Item::Nmea(line) => assemble(&mut assembler, line, &mut readings),
                Item::Skipped { .. } => {}
            }
        }
    }
    if let Some(fix) = solutions.finish() {
        fix.push_readings(SENSOR, TIME, &mut readings);
    }
    // The frame decoder on its own, at the start of the input.
    if let Ok((frame, _)) = Frame::decode(data) {
        decode_all(&frame, &mut readings);
    }
    assert_finite(&readings);
}

fn decode_all(frame: &Frame<'_>, readings: &mut Vec<Reading>) {
    if let Ok(pvt) = NavPvt::decode(frame) {
        pvt.to_fix().push_readings(SENSOR, TIME, readings);
    }
    if let Ok(hnr) = HnrPvt::decode(frame) {
        hnr.to_fix().push_readings(SENSOR, TIME, readings);
    }
    let _ = NavSol::decode(frame).map(|m| m.status());
    let _ = NavPosllh::decode(frame);
    let _ = NavVelned::decode(frame);
    let _ = NavTimeUtc::decode(frame).map(|m| m.utc());
    let _ = CfgNav5::decode(frame);
    let _ = CfgValSet::decode(frame);
    let _ = CfgValGet::decode(frame);
    let _ = Ack::decode(frame);
    let _ = MonVer::decode(frame);
}

/// A CosmicWatch port's bytes: every line parsed, and the stream with its rate window fed.
pub fn cosmicwatch(data: &[u8]) {
    for line in data.split(|&b| b == b'\n') {
        let _ = cosmicwatch::parse_line(line);
    }
    let mut detector = MuonDetector::new(60.0);
    let mut readings = Vec::new();
    detector.push_bytes(data, SENSOR, TIME, &mut readings, |_| {});
    assert_finite(&readings);
}

/// An ozone monitor's port bytes: every line parsed in both unit settings, and the stream
/// fed as reads would split it.
pub fn pom(data: &[u8]) {
    use crate::pom::{OzoneStream, PressureUnit, TemperatureUnit, Units};
    for line in data.split(|&b| b == b'\n') {
        let _ = crate::pom::parse_line(line);
    }
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (head, tail) = data.split_at(split);
    let mut readings = Vec::new();
    for units in [
        Units::default(),
        Units {
            temperature: TemperatureUnit::Kelvin,
            pressure: PressureUnit::Torr,
        },
    ] {
        let mut stream = OzoneStream::new(units);
        stream.push_bytes(head, SENSOR, TIME, &mut readings, |_| {});
        stream.push_bytes(tail, SENSOR, TIME, &mut readings, |_| {});
    }
    assert_finite(&readings);
}

/// An SPS30's measured-values answer (and any other register block) as the bus returns it.
pub fn sps30(data: &[u8]) {
    use crate::sps30::{DeviceStatus, Measurement, OperatingAir, RawMeasurement};
    let mut readings = Vec::new();
    if let Ok(raw) = RawMeasurement::decode::<core::convert::Infallible>(data) {
        let status = DeviceStatus(
            data.get(60..64)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u32::from_be_bytes),
        );
        Measurement {
            raw,
            status,
            air: OperatingAir::Stale,
        }
        .push_readings(SENSOR, TIME, &mut readings);
    }
    let _ = crate::scd41::decode_words::<2>(data);
    let _ = crate::scd41::decode_words::<16>(data);
    assert_finite(&readings);
}

/// An ICM-20948 FIFO burst: decoded into frames (or refused as partial), each frame in body
/// axes and fed to the attitude filter, whose output stays finite.
pub fn icm20948(data: &[u8]) {
    use crate::icm20948::{self, fusion::Ahrs};
    let config = icm20948::Config::default();
    let _ = icm20948::decode_fifo(data);
    let whole = data.len() / icm20948::FRAME_LEN * icm20948::FRAME_LEN;
    let mut ahrs = Ahrs::new(13.0);
    if let Ok(frames) = icm20948::decode_fifo(&data[..whole]) {
        for frame in frames {
            let sample = frame.to_body(&config);
            ahrs.update(&sample, 0.02, icm20948::fusion::Speed::True(40.0));
            let e = ahrs.estimate();
            assert!(e.roll_deg.is_finite() && e.pitch_deg.is_finite() && e.heading_deg.is_finite());
        }
    }
}

/// A smart battery's SMBus replies: the input cut into 34-byte replies (the longest a
/// block read returns), each decoded as a word and a block (with and without
/// PEC), and the words that decode converted into readings.
pub fn sbs(data: &[u8]) {
    use crate::sbs::{self, BatteryStatus, Measurement, RawSample};
    let mut words = Vec::new();
    for (i, reply) in data.chunks(2 + sbs::MAX_BLOCK).enumerate() {
        let command = i as u8;
        for with_pec in [false, true] {
            if let Ok(w) = sbs::decode_word(sbs::ADDRESS, command, reply, with_pec) {
                words.push(w);
            }
            if let Ok(block) = sbs::decode_block(sbs::ADDRESS, command, reply, with_pec) {
                assert!(block.len() <= sbs::MAX_BLOCK);
            }
        }
    }
    let w = |i: usize| words.get(i).copied().unwrap_or_default();
    let m = Measurement::from_raw(RawSample {
        temperature_dk: w(0),
        voltage_mv: w(1),
        current_ma: w(2) as i16,
        relative_soc_pct: w(3),
        remaining_mah: w(4),
        full_charge_mah: w(5),
        status: BatteryStatus(w(6)),
    });
    let mut readings = Vec::new();
    m.push_readings(SENSOR, TIME, &mut readings);
    assert_finite(&readings);
}
