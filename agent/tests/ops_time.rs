//! Time across clock steps, GNSS time and restarts (docs/design.md invariant 8), with clocks the
//! test moves by hand.

use std::sync::Arc;

use aloft_agent::state::{self, AgentState};
use aloft_agent::timekeeping::{ManualClocks, SyncStatus, TimePolicy, Timekeeper};
use aloft_protocol::{TimeSource, Timestamp};

const SEC: u64 = 1_000_000_000;

/// 2026-01-01 as the build floor, whatever SOURCE_DATE_EPOCH this build had.
fn policy() -> TimePolicy {
    TimePolicy::default().with_build_floor(1_767_225_600 * SEC as i64)
}
/// 2026-06-01T00:00:00Z.
const JUNE_2026: i64 = 1_780_272_000 * SEC as i64;

fn synced() -> SyncStatus {
    SyncStatus::Synchronised {
        max_error_ns: 2_000_000,
    }
}

/// Takes `n` stamps 10 ms apart, with a check every 100 ms as the daemon's loop does,
/// and collects the correlations the checks hand out.
fn run(
    tk: &Timekeeper<Arc<ManualClocks>>,
    clocks: &ManualClocks,
    n: usize,
    stamps: &mut Vec<Timestamp>,
    correlations: &mut Vec<aloft_protocol::TimeCorrelation>,
) {
    for i in 0..n {
        clocks.advance(10_000_000);
        stamps.push(tk.stamp());
        if i % 10 == 9 {
            correlations.extend(tk.check());
        }
    }
}

#[test]
fn wall_clock_steps_back_and_forth_never_reorder_or_drop_readings() {
    let clocks = Arc::new(ManualClocks::new(100 * SEC, Some(JUNE_2026), synced()));
    let (tk, _) = Timekeeper::start(Arc::clone(&clocks), None, policy()).unwrap();
    let (mut stamps, mut correlations) = (Vec::new(), Vec::new());
    run(&tk, &clocks, 50, &mut stamps, &mut correlations);
    // NTP steps the clock back an hour; it stays synchronised.
    let back = clocks.wall_utc_ns().map(|w| w - 3600 * SEC as i64);
    clocks.step_wall(back);
    run(&tk, &clocks, 50, &mut stamps, &mut correlations);
    // An operator sets it forward a day: the kernel marks it unsynchronised.
    let fwd = clocks.wall_utc_ns().map(|w| w + 86_400 * SEC as i64);
    clocks.step_wall(fwd);
    clocks.set_sync(SyncStatus::Unsynchronised);
    run(&tk, &clocks, 50, &mut stamps, &mut correlations);

    use aloft_agent::timekeeping::Clocks as _;
    assert_eq!(stamps.len(), 150, "every reading got a stamp");
    assert!(
        stamps.windows(2).all(|w| w[0].mono_ns < w[1].mono_ns),
        "monotonic time orders every reading across both steps"
    );
    // Before and after the NTP step: system time; after the manual step: monotonic only.
    assert!(
        stamps[..100]
            .iter()
            .all(|t| t.source == TimeSource::SystemClock)
    );
    assert!(
        stamps[100..]
            .iter()
            .all(|t| t.source == TimeSource::Monotonic)
    );
    assert_eq!(stamps[50].utc_ns, back.map(|b| b + 10_000_000));
    // One correlation when first trusted, one for the NTP step, none for the distrusted one.
    assert_eq!(correlations.len(), 2);
    // The step's correlation maps the first check after it (10 stamps later) to the new time.
    assert_eq!(Some(correlations[1].utc_ns), back.map(|b| b + 100_000_000));
    assert_eq!(correlations[1].mono_ns, stamps[59].mono_ns);
    assert_eq!(tk.status().steps, 2);
}

#[test]
fn a_1970_boot_gets_utc_from_gnss_then_from_ntp() {
    let clocks = Arc::new(ManualClocks::new(
        3 * SEC,
        Some(12 * SEC as i64),
        SyncStatus::Unsynchronised,
    ));
    let (tk, boot) = Timekeeper::start(Arc::clone(&clocks), None, policy()).unwrap();
    assert_eq!(boot.utc_ns, None);
    let before = tk.stamp();
    assert_eq!(before.source, TimeSource::Monotonic);

    clocks.advance(SEC);
    let fix_mono = clocks_mono(&clocks);
    let corr = tk
        .gnss_time(JUNE_2026, fix_mono, Some(100_000_000))
        .unwrap();
    assert_eq!(
        (corr.boot_id, corr.source),
        (tk.boot_id(), TimeSource::Gnss)
    );
    clocks.advance(SEC);
    let after = tk.stamp();
    assert_eq!(after.source, TimeSource::Reconstructed);
    assert_eq!(after.utc_ns, Some(JUNE_2026 + SEC as i64));

    // chrony steps the clock to GNSS time and declares it synchronised.
    clocks.step_wall(Some(JUNE_2026 + SEC as i64));
    clocks.set_sync(synced());
    let ntp = tk.check().unwrap();
    assert_eq!(ntp.source, TimeSource::SystemClock);
    assert_eq!(tk.stamp().source, TimeSource::SystemClock);
    // The earlier stamp was not touched: it still says monotonic only.
    assert_eq!(before, Timestamp::monotonic(3 * SEC));
}

fn clocks_mono(c: &ManualClocks) -> u64 {
    use aloft_agent::timekeeping::Clocks as _;
    c.mono_ns()
}

#[test]
fn the_last_good_time_persisted_by_one_run_raises_the_floor_of_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");

    // First run: NTP-synchronised in June 2026.
    let clocks = Arc::new(ManualClocks::new(SEC, Some(JUNE_2026), synced()));
    let (tk, _) = Timekeeper::start(Arc::clone(&clocks), None, policy()).unwrap();
    tk.stamp();
    let good = tk.persist_due().unwrap();
    let st = AgentState {
        last_good_utc_ns: Some(good),
        ..AgentState::default()
    };
    state::save(&path, &st).unwrap();

    // Next run: the RTC came back a week behind, and even claims to be synchronised.
    let loaded = state::load_or_default(&path);
    assert!(loaded.problem.is_none());
    let stale = JUNE_2026 - 7 * 86_400 * SEC as i64;
    let clocks = Arc::new(ManualClocks::new(SEC, Some(stale), synced()));
    let (tk, boot) =
        Timekeeper::start(Arc::clone(&clocks), loaded.state.last_good_utc_ns, policy()).unwrap();
    assert_eq!(boot.utc_ns, None);
    assert_eq!(tk.stamp().source, TimeSource::Monotonic);
    assert_eq!(tk.last_good_utc_ns(), Some(JUNE_2026));
}

/// The simulated flight's u-blox receiver, decoded by the real framer, parser and fix
/// assembler, feeding a board that booted in 1970 and whose monotonic clock runs `ppm`
/// fast. Returns the correlations handed out and, per fix, the stamp's error against the
/// scenario's true UTC when the fix's data arrived.
fn fly_gnss(seconds: f64, ppm: f64) -> (Vec<aloft_protocol::TimeCorrelation>, Vec<i64>) {
    use aloft_sensors::flight::Scenario;
    use aloft_sensors::gps::fix::FixAssembler;
    use aloft_sensors::gps::framer::{GnssFramer, Item};
    use aloft_sensors::gps::nmea;
    use aloft_sensors::gps::sim::{UbloxSim, UbloxSimConfig};
    use aloft_sensors::serial::SerialDevice;

    let scenario = Scenario::new(7, JUNE_2026);
    let mut receiver = UbloxSim::new(UbloxSimConfig::default());
    let boot_mono = 42 * SEC;
    let clocks = Arc::new(ManualClocks::new(
        boot_mono,
        Some(0),
        SyncStatus::Unsynchronised,
    ));
    let (tk, _) =
        Timekeeper::start(Arc::clone(&clocks), None, policy()).expect("timekeeper starts");
    let (mut framer, mut fixes) = (GnssFramer::new(), FixAssembler::new());
    let (mut correlations, mut errors) = (Vec::new(), Vec::new());
    let mut bytes = Vec::new();
    let step_s = 0.02;
    let mut t = 0.0;
    while t < seconds {
        t += step_s;
        let state = scenario.state_at(t);
        // The board's clock: monotonic since its boot, `ppm` fast; its wall clock began at 1970.
        let mono = boot_mono + (t * (1.0 + ppm * 1e-6) * 1e9) as u64;
        clocks.advance(mono - clocks_mono(&clocks));
        bytes.clear();
        receiver.tick(&state, &mut bytes);
        framer.push(&bytes);
        while let Some(item) = framer.next_item() {
            let Item::Nmea(line) = item else { continue };
            let Ok(sentence) = nmea::parse(line) else {
                continue;
            };
            if let Some(fix) = fixes.push(&sentence) {
                correlations.extend(tk.gnss_fix(&fix, mono));
                let stamp = tk.stamp();
                assert_eq!(stamp.source, TimeSource::Reconstructed);
                errors.push(stamp.utc_ns.expect("reconstructed UTC") - state.utc_ns);
            }
        }
    }
    (correlations, errors)
}

#[test]
fn simulated_gnss_fixes_correlate_once_when_the_board_clock_keeps_time() {
    let (correlations, errors) = fly_gnss(20.0, 0.0);
    assert_eq!(correlations.len(), 1, "{correlations:?}");
    assert_eq!(correlations[0].source, TimeSource::Gnss);
    // A fix is assembled when the next epoch's first sentence arrives: its UTC is up to
    // one epoch (100 ms) plus one tick behind the moment of arrival.
    assert!(errors.len() > 150, "{} fixes", errors.len());
    assert!(
        errors.iter().all(|e| e.abs() <= 150_000_000),
        "{:?}",
        errors.iter().max_by_key(|e| e.abs())
    );
}

#[test]
fn simulated_gnss_fixes_correlate_again_when_the_board_clock_drifts() {
    // 2 % fast: 250 ms of drift after ~12.5 s, so a second correlation within 20 s.
    let (correlations, _) = fly_gnss(20.0, 20_000.0);
    assert!(correlations.len() >= 2, "{correlations:?}");
    let (a, b) = (correlations[0], correlations[1]);
    let mono_span = (b.mono_ns - a.mono_ns) as f64;
    let utc_span = (b.utc_ns - a.utc_ns) as f64;
    assert!(
        (mono_span / utc_span - 1.02).abs() < 0.01,
        "{mono_span} / {utc_span}"
    );
}
