//! `cargo xtask bench store`: durable appends per second of the simulated flight's reading
//! mix with a 1 s group commit, for the segmented log and for SQLite doing the same work,
//! and the bytes a reading takes on disk; redb and sled, candidates, behind the same outbox.
//! Prints `NAME.FIGURE VALUE UNIT` lines; asserts nothing about time.
//!
//! The mix: GPS 10 Hz (8 readings a fix), static pressure 10 Hz (pressure, temperature),
//! airspeed 50 Hz (differential pressure, true airspeed), CO2 every 5 s (CO2, temperature,
//! humidity), cosmic-ray events about 5 a second (count, ADC, SiPM voltage), from
//! `aloft_sensors::flight::Scenario`.
//!
//! Throughput: for `RUN_S` seconds of wall time, readings of the mix are appended as fast as
//! they come and committed once a second (the agent's default flush interval); the figure
//! is readings made durable per second of wall time.

use std::path::Path;
use std::time::{Duration, Instant};

use aloft_protocol::{Quality, Quantity, Reading, Record, SensorId, TimeSource, Timestamp};
use aloft_sensors::flight::Scenario;
use aloft_store::{Outbox, StoreOptions};

use aloft_store_candidates::{redb_backend, sled_backend};

const RUN_S: f64 = 3.0;
const FLUSH: Duration = Duration::from_secs(1);
/// Flight time turned into the reading mix.
const FLIGHT_S: u64 = 1_200;

fn reading(sensor: u16, quantity: Quantity, t_ns: u64, utc: i64, value: f64) -> Record {
    Record::Reading(Reading {
        sensor: SensorId(sensor),
        quantity,
        time: Timestamp::with_utc(t_ns, utc, TimeSource::Gnss),
        value,
        quality: Quality::GOOD,
    })
}

/// The simulated flight's readings, in time order, at the rates.
fn flight_mix() -> Vec<Record> {
    let scenario = Scenario::new(7, 1_780_000_000_000_000_000);
    let mut out = Vec::new();
    let mut next_muon = 0.0;
    let mut muons = 0u64;
    // Ticks of 20 ms (50 Hz, the fastest sensor).
    for tick in 0..FLIGHT_S * 50 {
        let t_s = tick as f64 / 50.0;
        let t_ns = tick * 20_000_000;
        let s = scenario.state_at(t_s.min(scenario.duration_s()));
        let utc = s.utc_ns;
        out.push(reading(
            3,
            Quantity::DifferentialPressure,
            t_ns,
            utc,
            s.differential_pressure_pa,
        ));
        out.push(reading(
            3,
            Quantity::TrueAirspeed,
            t_ns,
            utc,
            s.true_airspeed_mps,
        ));
        if tick % 5 == 0 {
            for (q, v) in [
                (Quantity::Latitude, s.latitude_deg),
                (Quantity::Longitude, s.longitude_deg),
                (Quantity::AltitudeMsl, s.altitude_m),
                (Quantity::GeoidSeparation, s.geoid_separation_m),
                (Quantity::GroundSpeed, s.ground_speed_mps),
                (Quantity::Track, s.track_deg),
                (Quantity::VerticalSpeed, s.vertical_speed_mps),
                (Quantity::SatellitesUsed, 14.0),
            ] {
                out.push(reading(0, q, t_ns, utc, v));
            }
            out.push(reading(1, Quantity::AirPressure, t_ns, utc, s.pressure_pa));
            out.push(reading(
                1,
                Quantity::AirTemperature,
                t_ns,
                utc,
                s.outside_air_k,
            ));
        }
        if tick % 250 == 0 {
            out.push(reading(
                2,
                Quantity::Co2MoleFraction,
                t_ns,
                utc,
                s.co2_mol_mol,
            ));
            out.push(reading(
                2,
                Quantity::AirTemperature,
                t_ns,
                utc,
                s.box_temperature_k,
            ));
            out.push(reading(
                2,
                Quantity::RelativeHumidity,
                t_ns,
                utc,
                s.relative_humidity,
            ));
        }
        // Muons: about 5 a second, spaced evenly enough for a rate figure.
        if t_s >= next_muon {
            muons += 1;
            out.push(reading(
                4,
                Quantity::MuonEventCount,
                t_ns,
                utc,
                muons as f64,
            ));
            out.push(reading(
                4,
                Quantity::MuonPulseAdc,
                t_ns,
                utc,
                300.0 + (muons % 97) as f64,
            ));
            out.push(reading(
                4,
                Quantity::SipmPeakVoltage,
                t_ns,
                utc,
                0.05 + (muons % 13) as f64 * 0.01,
            ));
            next_muon += 1.0 / s.muon_rate_per_s.clamp(1.0, 20.0);
        }
    }
    out
}

/// Appends the mix for `RUN_S` of wall time, calling `commit` once per `FLUSH`; returns the
/// durable readings per second.
fn sustained(mix: &[Record], mut append: impl FnMut(&Record), mut commit: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut last_commit = start;
    let mut appended = 0u64;
    let run = Duration::from_secs_f64(RUN_S);
    let durable = 'run: loop {
        for batch in mix.chunks(256) {
            for r in batch {
                append(r);
            }
            appended += batch.len() as u64;
            if last_commit.elapsed() >= FLUSH {
                commit();
                last_commit = Instant::now();
                if start.elapsed() >= run {
                    break 'run appended;
                }
            }
        }
    };
    durable as f64 / start.elapsed().as_secs_f64()
}

/// Durable readings per second of `outbox` over `mix`: the same drive for every backend.
fn outbox_rate<B: aloft_store::Backend>(outbox: &mut Outbox<B>, mix: &[Record]) -> f64 {
    let outbox = std::cell::RefCell::new(outbox);
    sustained(
        mix,
        |r| {
            outbox.borrow_mut().append(r).expect("append");
        },
        || outbox.borrow_mut().commit().expect("commit"),
    )
}

fn segmented(dir: &Path, mix: &[Record]) -> f64 {
    let (mut outbox, _) =
        Outbox::open(dir.join("segmented"), StoreOptions::default()).expect("open the store");
    outbox_rate(&mut outbox, mix)
}

fn redb(dir: &Path, mix: &[Record]) -> f64 {
    let (backend, recovery) =
        redb_backend::RedbBackend::open(&dir.join("store.redb")).expect("open redb");
    let (mut outbox, _) =
        Outbox::open_with(backend, recovery, StoreOptions::default()).expect("open the redb store");
    outbox_rate(&mut outbox, mix)
}

fn sled(dir: &Path, mix: &[Record]) -> f64 {
    let (backend, recovery) =
        sled_backend::SledBackend::open(&dir.join("store.sled")).expect("open sled");
    let (mut outbox, _) =
        Outbox::open_with(backend, recovery, StoreOptions::default()).expect("open the sled store");
    outbox_rate(&mut outbox, mix)
}

fn sqlite(dir: &Path, mix: &[Record]) -> f64 {
    let conn = rusqlite::Connection::open(dir.join("sqlite.db")).expect("open sqlite");
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
         CREATE TABLE records (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL);
         BEGIN;",
    )
    .expect("set sqlite up");
    let conn = std::cell::RefCell::new(conn);
    let mut seq = 0i64;
    let mut scratch = Vec::new();
    let rate = sustained(
        mix,
        |r| {
            scratch.clear();
            scratch = postcard::to_extend(r, std::mem::take(&mut scratch)).expect("encode");
            let conn = conn.borrow();
            let mut insert = conn
                .prepare_cached("INSERT INTO records (seq, payload) VALUES (?1, ?2)")
                .expect("prepare");
            insert.execute((seq, &scratch)).expect("insert");
            seq += 1;
        },
        || {
            conn.borrow()
                .execute_batch("COMMIT; BEGIN;")
                .expect("commit");
        },
    );
    let _ = conn.borrow().execute_batch("COMMIT;");
    rate
}

/// Bytes on disk per reading for the flight's mix with a 1 s flush of flight time.
fn bytes_per_reading(dir: &Path, mix: &[Record]) -> f64 {
    let path = dir.join("footprint");
    let (mut outbox, _) = Outbox::open(&path, StoreOptions::default()).expect("open the store");
    let per_second = mix.len() / FLIGHT_S as usize;
    for window in mix.chunks(per_second.max(1)) {
        for r in window {
            outbox.append(r).expect("append");
        }
        outbox.commit().expect("commit");
    }
    let readings = outbox.durable_end();
    outbox.close().expect("close");
    let bytes: u64 = std::fs::read_dir(&path)
        .expect("list the store")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    bytes as f64 / readings as f64
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mix = flight_mix();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a bench directory");
    eprintln!(
        "store bench: {} readings of {} s of simulated flight ({:.0}/s), {RUN_S} s runs, {} s flush",
        mix.len(),
        FLIGHT_S,
        mix.len() as f64 / FLIGHT_S as f64,
        FLUSH.as_secs()
    );
    let segmented = segmented(dir.path(), &mix);
    let redb = redb(dir.path(), &mix);
    let sled = sled(dir.path(), &mix);
    let sqlite = sqlite(dir.path(), &mix);
    let bytes = bytes_per_reading(dir.path(), &mix);
    println!("store.append_per_s {segmented:.0} readings/s");
    println!("store.segmented_append_per_s {segmented:.0} readings/s");
    println!("store.redb_append_per_s {redb:.0} readings/s");
    println!("store.sled_append_per_s {sled:.0} readings/s");
    println!("store.sqlite_append_per_s {sqlite:.0} readings/s");
    println!("store.vs_sqlite {:.2} x", segmented / sqlite);
    println!("store.bytes_per_reading {bytes:.1} B");
}
