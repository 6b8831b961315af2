//! Parse throughput of Aloft's device parsers, on one pinned core.
//!
//! Run: `cargo bench -p aloft-sensors --bench parse`. Prints exactly one line per figure
//! on stdout (`NAME VALUE UNIT`), nothing else; notes go to stderr. Figures:
//!
//! - `parse.nmea_per_s`: [`aloft_sensors::gps::nmea::parse`] over a fixed mixed corpus.
//! - `parse.nmea_crate_per_s`: the `nmea` crate's `parse_bytes` (its equivalent of one
//!   sentence in, one typed sentence out) over the same corpus.
//! - `parse.nmea_allocs_per_sentence`: heap allocations per sentence of our parser,
//!   counted by the global allocator below.
//!
//! - `parse.cosmicwatch_per_s`: [`aloft_sensors::cosmicwatch::parse_line`] over event lines
//!   of both detector generations from the simulated flight.
//!
//! A benchmark asserts nothing about timing: the figures go to
//! docs/decisions/nmea-parser.md.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aloft_sensors::cosmicwatch::{self, CosmicWatchSim, Format};
use aloft_sensors::flight::{Noise, Scenario};
use aloft_sensors::gps::nmea::{
    self, Gga, Gll, Gsa, Gsv, GsvSatellite, PositioningMode, Rmc, Status, Talker, TimeOfDay, Vtg,
    encode,
};
use aloft_sensors::serial::SerialDevice;

/// Counts every allocation (and reallocation) of the process.
struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter has no
// effect on the memory handed out.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours, forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through `alloc`/`realloc` above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours, forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// One line of output.
struct Figure {
    name: &'static str,
    value: f64,
    unit: &'static str,
    decimals: usize,
}

fn main() {
    pin_to_one_core();
    let corpus = nmea_corpus();
    let lines: Vec<&[u8]> = corpus.iter().map(|l| l.as_bytes()).collect();
    eprintln!("corpus: {} NMEA sentences", lines.len());
    report_rejects(&lines);

    let [ours, theirs] = rates_per_s_interleaved(
        &lines,
        |l| nmea::parse(l).is_ok(),
        |l| ::nmea::parse_bytes(l).is_ok(),
    );
    let mut figures = vec![
        Figure {
            name: "parse.nmea_per_s",
            value: ours,
            unit: "sentences/s",
            decimals: 0,
        },
        Figure {
            name: "parse.nmea_crate_per_s",
            value: theirs,
            unit: "sentences/s",
            decimals: 0,
        },
        Figure {
            name: "parse.nmea_allocs_per_sentence",
            value: allocations_per_item(&lines, |l| nmea::parse(l).is_ok()),
            unit: "allocs",
            decimals: 3,
        },
    ];
    let detector_corpus = cosmicwatch_corpus();
    let detector_lines: Vec<&[u8]> = detector_corpus.iter().map(Vec::as_slice).collect();
    eprintln!("corpus: {} CosmicWatch event lines", detector_lines.len());
    figures.push(Figure {
        name: "parse.cosmicwatch_per_s",
        value: rate_per_s(&detector_lines, |l| {
            matches!(
                cosmicwatch::parse_line(l),
                Ok(cosmicwatch::Line::Event { .. })
            )
        }),
        unit: "lines/s",
        decimals: 0,
    });
    figures.retain(|f| f.value.is_finite());
    for f in &figures {
        println!("{} {:.*} {}", f.name, f.decimals, f.value, f.unit);
    }
}

/// Event lines as the detectors write them during the simulated flight's climb: half v2
/// (space-separated), half v3X (tab-separated with pressure and IMU columns).
fn cosmicwatch_corpus() -> Vec<Vec<u8>> {
    let scenario = Scenario::new(1, 0);
    let mut lines = Vec::new();
    for format in [Format::V2, Format::V3x] {
        let mut detector = CosmicWatchSim::new(format, "bench", 3);
        let mut out = Vec::new();
        // 20 minutes of the wave climb in 100 ms ticks: a few thousand events each.
        for tick in 0..12_000 {
            detector.tick(
                &scenario.state_at(3_000.0 + f64::from(tick) * 0.1),
                &mut out,
            );
        }
        lines.extend(
            out.split(|&b| b == b'\n')
                .filter(|l| l.first().is_some_and(u8::is_ascii_digit))
                .map(<[u8]>::to_vec),
        );
    }
    lines
}

/// Items per second of `parse` over `items`: the best of five runs of at least 300 ms
/// each (the best run is the one least disturbed by the other processes on the machine).
fn rate_per_s(items: &[&[u8]], parse: impl Fn(&[u8]) -> bool) -> f64 {
    let mut best = 0.0f64;
    for _ in 0..5 {
        best = best.max(one_run_per_s(items, &parse));
    }
    best
}

/// [`rate_per_s`] of two parsers whose runs alternate (one of the first, one of the
/// second, five times), so that both meet the same load from the other processes on a
/// shared machine and their ratio holds even when the absolute figures do not.
fn rates_per_s_interleaved(
    items: &[&[u8]],
    first: impl Fn(&[u8]) -> bool,
    second: impl Fn(&[u8]) -> bool,
) -> [f64; 2] {
    let mut best = [0.0f64; 2];
    for _ in 0..5 {
        best[0] = best[0].max(one_run_per_s(items, &first));
        best[1] = best[1].max(one_run_per_s(items, &second));
    }
    best
}

/// Items per second of one run of at least 300 ms.
fn one_run_per_s(items: &[&[u8]], parse: &impl Fn(&[u8]) -> bool) -> f64 {
    let start = Instant::now();
    let mut done = 0u64;
    let mut ok = 0u64;
    while start.elapsed() < Duration::from_millis(300) {
        for item in items {
            ok += u64::from(parse(black_box(item)));
        }
        done += items.len() as u64;
    }
    black_box(ok);
    done as f64 / start.elapsed().as_secs_f64()
}

/// Heap allocations per item of one pass of `parse` over `items`.
fn allocations_per_item(items: &[&[u8]], parse: impl Fn(&[u8]) -> bool) -> f64 {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let mut ok = 0u64;
    for item in items {
        ok += u64::from(parse(black_box(item)));
    }
    black_box(ok);
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    (after - before) as f64 / items.len() as f64
}

/// Pins the process to the first core it may run on, so that the figure is one core's.
fn pin_to_one_core() {
    // SAFETY: `cpu_set_t` is plain data; the libc calls get a valid pointer and its size.
    unsafe {
        let mut allowed: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut allowed) != 0 {
            eprintln!("note: sched_getaffinity failed; not pinned");
            return;
        }
        let Some(cpu) = (0..libc::CPU_SETSIZE as usize).find(|&c| libc::CPU_ISSET(c, &allowed))
        else {
            return;
        };
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut one);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &one) == 0 {
            eprintln!("pinned to cpu {cpu}");
        } else {
            eprintln!("note: sched_setaffinity failed; not pinned");
        }
    }
}

/// Both parsers should accept every sentence of the corpus; say so if not.
fn report_rejects(lines: &[&[u8]]) {
    let ours = lines.iter().filter(|l| nmea::parse(l).is_err()).count();
    let theirs: Vec<&[u8]> = lines
        .iter()
        .filter(|l| ::nmea::parse_bytes(l).is_err())
        .copied()
        .collect();
    eprintln!(
        "rejected: ours {ours}, nmea crate {} (e.g. {:?})",
        theirs.len(),
        theirs.first().map(|l| String::from_utf8_lossy(l))
    );
}

/// A glider's receiver for 200 epochs, as a u-blox M8 prints it: GN RMC, VTG, GGA, one
/// GSA per constellation, GSV groups from GP, GL, GA and GB (BD and GQ in the second
/// half), GLL. Deterministic (seeded noise), no line ends: the `nmea` crate wants none,
/// and ours takes either.
fn nmea_corpus() -> Vec<String> {
    let mut noise = Noise::new(0xA10F7);
    let mut out = Vec::new();
    let (mut lat, mut lon, mut alt) = (-45.03_f64, -168.66_f64, 1_200.0_f64);
    for epoch in 0u32..200 {
        let time = Some(TimeOfDay {
            hour: 14,
            minute: (epoch / 60) as u8,
            second: (epoch % 60) as u8,
            nanosecond: 0,
        });
        let knots = 55.0 + noise.gaussian(3.0);
        let track = (250.0_f64 + noise.gaussian(5.0)).rem_euclid(360.0);
        lat += 0.0002 * (1.0 + noise.gaussian(0.1));
        lon -= 0.0003 * (1.0 + noise.gaussian(0.1));
        alt = (alt + 4.0 + noise.gaussian(1.0)).min(12_500.0);
        let talker = Talker::Gnss;
        let (lat_o, lon_o) = (Some(lat), Some(lon));
        let mode = Some(PositioningMode::Autonomous);
        let status = Some(Status::Valid);
        let mut push = |s: String| out.push(s.trim_end().to_owned());
        push(encode::rmc(&Rmc {
            talker,
            time,
            status,
            latitude_deg: lat_o,
            longitude_deg: lon_o,
            speed_knots: Some(knots),
            track_deg: Some(track),
            date: Some(nmea::Date {
                year: 2026,
                month: 11,
                day: 24,
            }),
            magnetic_variation_deg: None,
            mode,
            navigational_status: None,
        }));
        push(encode::vtg(&Vtg {
            talker,
            track_true_deg: Some(track),
            track_magnetic_deg: None,
            speed_knots: Some(knots),
            speed_kmh: Some(knots * 1.852),
            mode,
        }));
        push(encode::gga(&Gga {
            talker,
            time,
            latitude_deg: lat_o,
            longitude_deg: lon_o,
            quality: Some(1),
            satellites_used: Some(12),
            hdop: Some(0.8 + noise.uniform() * 0.3),
            altitude_msl_m: Some(alt),
            geoid_separation_m: Some(9.8),
            dgps_age_s: None,
            dgps_station: None,
        }));
        let used: [&[u16]; 3] = [
            &[2, 5, 12, 13, 15, 18, 20, 25, 29],
            &[65, 66, 72, 81],
            &[3, 8, 13, 26],
        ];
        for sats in used {
            let mut slots = [None; 12];
            for (slot, prn) in slots.iter_mut().zip(sats) {
                *slot = Some(*prn);
            }
            push(encode::gsa(&Gsa {
                talker,
                selection: Some(b'A'),
                fix_mode: Some(3),
                satellites: slots,
                pdop: Some(1.4),
                hdop: Some(0.9),
                vdop: Some(1.1),
                system_id: None,
            }));
        }
        let beidou = if epoch < 100 {
            Talker::BeidouGb
        } else {
            Talker::BeidouBd
        };
        let fifth = if epoch < 100 {
            Talker::Galileo
        } else {
            Talker::Qzss
        };
        for (talker, in_view) in [
            (Talker::Gps, 11u16),
            (Talker::Glonass, 8),
            (fifth, 6),
            (beidou, 5),
        ] {
            let total = in_view.div_ceil(4) as u8;
            for part in 0..total {
                let mut satellites = [None; 4];
                for (i, slot) in satellites.iter_mut().enumerate() {
                    let n = u16::from(part) * 4 + i as u16;
                    if n < in_view {
                        *slot = Some(GsvSatellite {
                            prn: 1 + n * 3,
                            elevation_deg: Some(f64::from(5 + (n * 7) % 80)),
                            azimuth_deg: Some(f64::from((n * 37) % 360)),
                            snr_dbhz: (n % 5 != 4)
                                .then(|| (20.0_f64 + noise.uniform() * 25.0).round()),
                        });
                    }
                }
                push(encode::gsv(&Gsv {
                    talker,
                    total_messages: total,
                    message_number: part + 1,
                    satellites_in_view: Some(in_view),
                    satellites,
                    signal_id: None,
                }));
            }
        }
        push(encode::gll(&Gll {
            talker,
            latitude_deg: lat_o,
            longitude_deg: lon_o,
            time,
            status,
            mode,
        }));
    }
    out
}
