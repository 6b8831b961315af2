//! Timekeeping: what time a reading carries, and the records that map a boot's monotonic
//! clock to UTC (docs/design.md invariant 8).
//!
//! Invariants:
//! - Every [`Timestamp`] carries the monotonic time of this boot; a step of the wall clock
//!   (NTP, an operator's `date -s`) never changes it, so readings keep their order and none
//!   is lost to a step. UTC is attached only when it is known to be good.
//! - Stored readings are never rewritten: when time becomes known (GNSS, NTP) or the wall
//!   clock steps, the [`Timekeeper`] hands out a [`TimeCorrelation`] to append instead.
//!
//! When is the system clock trusted? Only when both hold:
//! 1. it is not earlier than the floor: the later of this build's floor
//!    ([`build_floor_utc_ns`]) and the last good UTC persisted by an earlier run (a board
//!    without an RTC boots in 1970);
//! 2. the kernel does not report it unsynchronised: `adjtimex` (read-only, no privilege)
//!    returns `TIME_ERROR` or sets `STA_UNSYNC` until NTP (chrony, systemd-timesyncd, gpsd
//!    via chrony) has disciplined it, and the kernel sets `STA_UNSYNC` again on every manual
//!    `settimeofday`. Where `adjtimex` is unavailable, rule 1 alone decides.
//!
//! A plausible but unsynchronised clock (a board with an RTC battery and no NTP) is not
//! trusted: an RTC at -50 °C drifts by seconds a day, and the first GNSS fix gives better.
//!
//! Stamps: a trusted system clock gives [`TimeSource::SystemClock`]; else, once GNSS time
//! is known, UTC derived from the latest GNSS correlation with
//! [`TimeSource::Reconstructed`] (the GPS fix's own readings keep [`TimeSource::Gnss`],
//! set by the sensors crate); else monotonic time alone.

use std::sync::{Arc, Mutex, MutexGuard};

use aloft_protocol::{Boot, BootId, TimeCorrelation, TimeSource, Timestamp};

use crate::clock::EARLIEST_PLAUSIBLE_UTC_NS;

const NS_PER_S: u64 = 1_000_000_000;
/// GNSS time further than this after the build floor is not believed: a two-digit NMEA
/// year read in the wrong century (a receiver or simulator saying `70` for 1970) would
/// otherwise become the persisted last good time, and every certificate would look
/// expired at every later start. 30 years outlives any board this build runs on.
const GNSS_CEILING_AFTER_FLOOR_NS: i64 = 30 * 366 * 86_400 * NS_PER_S as i64;

/// Problems of the timekeeper.
#[derive(Debug, thiserror::Error)]
pub enum TimeError {
    /// The operating system gave no randomness for the boot id.
    #[error("no randomness for the boot id: {0}")]
    Randomness(getrandom::Error),
}

/// What the kernel says about the system clock's discipline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStatus {
    /// NTP (or another discipline) keeps the clock; `max_error_ns` is the kernel's bound.
    Synchronised {
        /// The kernel's maximum error estimate, ns.
        max_error_ns: u64,
    },
    /// The kernel says the clock is not synchronised.
    Unsynchronised,
    /// The kernel could not be asked.
    Unknown,
}

/// The two clocks of the board, behind a seam so tests can step the wall clock.
pub trait Clocks: Send + Sync {
    /// The boot's monotonic clock, ns (never goes back, unaffected by clock steps).
    fn mono_ns(&self) -> u64;
    /// The system (wall) clock, ns since the Unix epoch; `None` if before 1970.
    fn wall_utc_ns(&self) -> Option<i64>;
    /// The kernel's view of the wall clock's synchronisation.
    fn sync_status(&self) -> SyncStatus;
}

impl<C: Clocks + ?Sized> Clocks for Arc<C> {
    fn mono_ns(&self) -> u64 {
        (**self).mono_ns()
    }
    fn wall_utc_ns(&self) -> Option<i64> {
        (**self).wall_utc_ns()
    }
    fn sync_status(&self) -> SyncStatus {
        (**self).sync_status()
    }
}

/// The real clocks: CLOCK_MONOTONIC, the system clock and `adjtimex`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClocks;

impl Clocks for SystemClocks {
    fn mono_ns(&self) -> u64 {
        crate::clock::monotonic_ns()
    }

    fn wall_utc_ns(&self) -> Option<i64> {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_nanos()).ok())
    }

    #[cfg(target_os = "linux")]
    fn sync_status(&self) -> SyncStatus {
        // SAFETY: `timex` is plain integers, so all-zero is a valid value; with `modes = 0`
        // adjtimex only reads the kernel's state into the struct we own.
        let mut tx: libc::timex = unsafe { std::mem::zeroed() };
        tx.modes = 0;
        // SAFETY: `tx` is a valid, exclusively borrowed `timex` for the call's duration.
        let state = unsafe { libc::adjtimex(&mut tx) };
        if state == -1 {
            SyncStatus::Unknown
        } else if state == libc::TIME_ERROR || tx.status & libc::STA_UNSYNC != 0 {
            SyncStatus::Unsynchronised
        } else {
            SyncStatus::Synchronised {
                max_error_ns: u64::try_from(tx.maxerror).unwrap_or(0).saturating_mul(1000),
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn sync_status(&self) -> SyncStatus {
        SyncStatus::Unknown
    }
}

/// Clocks a test sets by hand: monotonic and wall time move only when told.
#[derive(Debug)]
pub struct ManualClocks {
    inner: Mutex<ManualState>,
}

#[derive(Debug)]
struct ManualState {
    mono_ns: u64,
    wall_utc_ns: Option<i64>,
    sync: SyncStatus,
}

impl ManualClocks {
    /// Clocks at `mono_ns` and `wall_utc_ns`, with the given sync status.
    pub fn new(mono_ns: u64, wall_utc_ns: Option<i64>, sync: SyncStatus) -> Self {
        ManualClocks {
            inner: Mutex::new(ManualState {
                mono_ns,
                wall_utc_ns,
                sync,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, ManualState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Both clocks advance by `ns`, as real time passing does.
    pub fn advance(&self, ns: u64) {
        let mut s = self.state();
        s.mono_ns += ns;
        s.wall_utc_ns = s.wall_utc_ns.map(|w| w + ns as i64);
    }

    /// The wall clock jumps to `wall_utc_ns` (NTP step, `date -s`); monotonic time does not.
    pub fn step_wall(&self, wall_utc_ns: Option<i64>) {
        self.state().wall_utc_ns = wall_utc_ns;
    }

    /// The kernel's sync status changes.
    pub fn set_sync(&self, sync: SyncStatus) {
        self.state().sync = sync;
    }
}

impl Clocks for ManualClocks {
    fn mono_ns(&self) -> u64 {
        self.state().mono_ns
    }
    fn wall_utc_ns(&self) -> Option<i64> {
        self.state().wall_utc_ns
    }
    fn sync_status(&self) -> SyncStatus {
        self.state().sync
    }
}

/// Tunables of the timekeeper.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TimePolicy {
    /// UTC before which the system clock is certainly wrong (this build's floor).
    pub build_floor_utc_ns: i64,
    /// A change of (wall - monotonic) larger than this, beyond what slewing could do, is a
    /// step. NTP slews below 128 ms and steps above, so 100 ms catches every step.
    pub step_threshold_ns: u64,
    /// A new GNSS correlation is appended at least this often while GNSS time flows.
    pub correlation_interval_ns: u64,
    /// A new GNSS correlation is appended as soon as GNSS UTC departs from the latest
    /// correlation's prediction by more than this. NMEA arrives 50-500 ms after its epoch
    /// with jitter, so a smaller bound would append on noise.
    pub drift_threshold_ns: u64,
    /// The last good UTC is offered for persisting at most this often (SD card wear).
    pub persist_interval_ns: u64,
}

/// This build's floor: `SOURCE_DATE_EPOCH` of the build (reproducible builds, Debian's
/// packaging and the cross build set it) when later than the project's fixed floor.
pub fn build_floor_utc_ns() -> i64 {
    option_env!("SOURCE_DATE_EPOCH")
        .and_then(|s| s.trim().parse::<i64>().ok())
        .and_then(|s| s.checked_mul(NS_PER_S as i64))
        .map_or(EARLIEST_PLAUSIBLE_UTC_NS, |b| {
            b.max(EARLIEST_PLAUSIBLE_UTC_NS)
        })
}

impl Default for TimePolicy {
    fn default() -> Self {
        TimePolicy {
            build_floor_utc_ns: build_floor_utc_ns(),
            step_threshold_ns: 100_000_000,
            correlation_interval_ns: 600 * NS_PER_S,
            drift_threshold_ns: 250_000_000,
            persist_interval_ns: 600 * NS_PER_S,
        }
    }
}

impl TimePolicy {
    /// This policy with another build floor (tests, and builds that know better).
    pub fn with_build_floor(mut self, utc_ns: i64) -> Self {
        self.build_floor_utc_ns = utc_ns;
        self
    }
}

/// The most a disciplined clock slews: 500 ppm (the kernel's limit).
const MAX_SLEW_PPM: u64 = 500;

/// The timekeeper's view, for status and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeStatus {
    /// This boot.
    pub boot_id: BootId,
    /// What a stamp taken now would carry.
    pub source: TimeSource,
    /// Whether the system clock is trusted.
    pub system_clock_trusted: bool,
    /// The kernel's sync status at the last check.
    pub sync: SyncStatus,
    /// The latest correlation handed out.
    pub last_correlation: Option<TimeCorrelation>,
    /// Wall clock steps seen since start.
    pub steps: u64,
    /// The latest trusted UTC, ns.
    pub last_good_utc_ns: Option<i64>,
}

#[derive(Debug)]
struct TimeState {
    floor_utc_ns: i64,
    sync: SyncStatus,
    /// Wall - monotonic at the latest look at both clocks, and the monotonic time then.
    baseline: Option<(i128, u64)>,
    step_pending: bool,
    steps: u64,
    trusted_at_last_check: bool,
    gnss: Option<TimeCorrelation>,
    last_correlation: Option<TimeCorrelation>,
    last_good_utc_ns: Option<i64>,
    last_persist_mono_ns: Option<u64>,
    /// What the state file holds (loaded at start, then what `persist_due` handed out).
    persisted_utc_ns: Option<i64>,
}

/// Stamps readings and says when time-correlation records are due. Shared by every
/// sensor task (`&self` methods; a short mutex inside, no I/O).
#[derive(Debug)]
pub struct Timekeeper<C: Clocks = SystemClocks> {
    clocks: C,
    boot_id: BootId,
    policy: TimePolicy,
    state: Mutex<TimeState>,
}

impl Timekeeper<SystemClocks> {
    /// The timekeeper of the real clocks; see [`Timekeeper::start`].
    pub fn start_system(
        last_good_utc_ns: Option<i64>,
        policy: TimePolicy,
    ) -> Result<(Self, Boot), TimeError> {
        Timekeeper::start(SystemClocks, last_good_utc_ns, policy)
    }
}

impl<C: Clocks + Send + Sync> crate::clock::Stamp for Timekeeper<C> {
    fn stamp(&self) -> Timestamp {
        Timekeeper::stamp(self)
    }
}

impl<C: Clocks> Timekeeper<C> {
    /// Starts timekeeping for this run: a random boot id and the [`Boot`] record to append
    /// first. `last_good_utc_ns` is what an earlier run persisted (state file); it raises
    /// the floor under which the system clock is not believed.
    pub fn start(
        clocks: C,
        last_good_utc_ns: Option<i64>,
        policy: TimePolicy,
    ) -> Result<(Self, Boot), TimeError> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(TimeError::Randomness)?;
        let floor_utc_ns = last_good_utc_ns
            .unwrap_or(i64::MIN)
            .max(policy.build_floor_utc_ns);
        let sync = clocks.sync_status();
        let keeper = Timekeeper {
            boot_id: BootId(id),
            policy,
            state: Mutex::new(TimeState {
                floor_utc_ns,
                sync,
                baseline: None,
                step_pending: false,
                steps: 0,
                trusted_at_last_check: false,
                gnss: None,
                last_correlation: None,
                last_good_utc_ns,
                last_persist_mono_ns: None,
                persisted_utc_ns: last_good_utc_ns,
            }),
            clocks,
        };
        let time = keeper.stamp();
        let boot = Boot {
            boot_id: keeper.boot_id,
            mono_ns: time.mono_ns,
            utc_ns: (time.source == TimeSource::SystemClock)
                .then_some(time.utc_ns)
                .flatten(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        tracing::info!(
            boot_id = %hex(&keeper.boot_id.0),
            time_source = ?time.source,
            sync = ?sync,
            "Timekeeping started."
        );
        Ok((keeper, boot))
    }

    /// This run's boot id.
    pub fn boot_id(&self) -> BootId {
        self.boot_id
    }

    fn lock(&self) -> MutexGuard<'_, TimeState> {
        // No code under this lock panics on outside input; a poisoned lock still holds a
        // consistent state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wall_trusted(state: &TimeState, wall: Option<i64>) -> Option<i64> {
        let wall = wall?;
        let synced = !matches!(state.sync, SyncStatus::Unsynchronised);
        (synced && wall >= state.floor_utc_ns).then_some(wall)
    }

    /// Looks at both clocks; a change of their offset beyond slewing is a step, after
    /// which the kernel's sync status is read again at once (a manual step unsyncs it).
    fn observe(&self, state: &mut TimeState) -> (u64, Option<i64>) {
        let mono = self.clocks.mono_ns();
        let wall = self.clocks.wall_utc_ns();
        if let Some(w) = wall {
            let offset = i128::from(w) - i128::from(mono);
            if let Some((prev, prev_mono)) = state.baseline {
                let elapsed = mono.saturating_sub(prev_mono);
                let allowance = self.policy.step_threshold_ns as i128
                    + i128::from(elapsed / 1_000_000 * MAX_SLEW_PPM);
                if (offset - prev).abs() > allowance {
                    state.steps += 1;
                    state.step_pending = true;
                    state.sync = self.clocks.sync_status();
                    tracing::warn!(
                        step_ns = i64::try_from(offset - prev).unwrap_or(i64::MAX),
                        sync = ?state.sync,
                        "System clock stepped; readings keep monotonic order."
                    );
                }
            }
            state.baseline = Some((offset, mono));
        }
        (mono, wall)
    }

    /// Now, as a reading's timestamp: monotonic always, UTC when known to be good.
    pub fn stamp(&self) -> Timestamp {
        let mut state = self.lock();
        let (mono, wall) = self.observe(&mut state);
        if let Some(utc) = Self::wall_trusted(&state, wall) {
            state.last_good_utc_ns = Some(utc);
            return Timestamp::with_utc(mono, utc, TimeSource::SystemClock);
        }
        match state.gnss {
            Some(c) => Timestamp::with_utc(mono, extrapolate(&c, mono), TimeSource::Reconstructed),
            None => Timestamp::monotonic(mono),
        }
    }

    /// The periodic look (every second or so, and at each flush): refreshes the kernel's
    /// sync status and returns a correlation to append when the system clock became
    /// trusted or stepped while trusted.
    pub fn check(&self) -> Option<TimeCorrelation> {
        let mut state = self.lock();
        state.sync = self.clocks.sync_status();
        let (mono, wall) = self.observe(&mut state);
        let trusted = Self::wall_trusted(&state, wall);
        let became_trusted = trusted.is_some() && !state.trusted_at_last_check;
        let stepped = std::mem::take(&mut state.step_pending);
        state.trusted_at_last_check = trusted.is_some();
        let utc = trusted?;
        state.last_good_utc_ns = Some(utc);
        if !(became_trusted || stepped) {
            return None;
        }
        let correlation = TimeCorrelation {
            boot_id: self.boot_id,
            mono_ns: mono,
            utc_ns: utc,
            source: TimeSource::SystemClock,
            uncertainty_ns: match state.sync {
                SyncStatus::Synchronised { max_error_ns } => Some(max_error_ns),
                _ => None,
            },
        };
        tracing::info!(
            mono_ns = mono,
            utc_ns = utc,
            stepped,
            "System clock trusted; appending a time correlation."
        );
        state.last_correlation = Some(correlation);
        Some(correlation)
    }

    /// GNSS time from a valid fix: `utc_ns` is the fix's UTC, `received_mono_ns` the
    /// monotonic time its data arrived (later than the epoch by the receiver's output
    /// latency, 50-500 ms over NMEA: say so in `uncertainty_ns` when it is known). Returns a correlation to append the first time,
    /// then every `correlation_interval_ns` or when the fix departs from the latest
    /// correlation by more than `drift_threshold_ns`. A UTC below the build floor (a
    /// receiver without almanac, a week-number rollover) is ignored, and so is one decades
    /// after it (a two-digit year read in the wrong century).
    pub fn gnss_time(
        &self,
        utc_ns: i64,
        received_mono_ns: u64,
        uncertainty_ns: Option<u64>,
    ) -> Option<TimeCorrelation> {
        let mut state = self.lock();
        if utc_ns < self.policy.build_floor_utc_ns {
            tracing::debug!(utc_ns, "GNSS time before the build floor ignored.");
            return None;
        }
        if utc_ns - self.policy.build_floor_utc_ns > GNSS_CEILING_AFTER_FLOOR_NS {
            tracing::warn!(utc_ns, "GNSS time decades after this build ignored.");
            return None;
        }
        let due = match state.gnss {
            None => true,
            Some(prev) => {
                let drift = (i128::from(extrapolate(&prev, received_mono_ns)) - i128::from(utc_ns))
                    .unsigned_abs();
                received_mono_ns.saturating_sub(prev.mono_ns) >= self.policy.correlation_interval_ns
                    || drift > u128::from(self.policy.drift_threshold_ns)
            }
        };
        // GNSS time is good time: it may move the floor only forward.
        state.last_good_utc_ns = Some(state.last_good_utc_ns.map_or(utc_ns, |g| g.max(utc_ns)));
        if !due {
            return None;
        }
        let correlation = TimeCorrelation {
            boot_id: self.boot_id,
            mono_ns: received_mono_ns,
            utc_ns,
            source: TimeSource::Gnss,
            uncertainty_ns,
        };
        if state.gnss.is_none() {
            tracing::info!(utc_ns, mono_ns = received_mono_ns, "GNSS time known.");
        }
        state.gnss = Some(correlation);
        state.last_correlation = Some(correlation);
        Some(correlation)
    }

    /// [`Timekeeper::gnss_time`] from an assembled fix received at `received_mono_ns`:
    /// only a fix with a usable position and a known date gives time (a receiver without
    /// a fix reports the time of its own RTC, which may be years off).
    pub fn gnss_fix(
        &self,
        fix: &aloft_sensors::gps::Fix,
        received_mono_ns: u64,
    ) -> Option<TimeCorrelation> {
        if !fix.has_position_fix() {
            return None;
        }
        let utc = fix.time?.utc_ns()?;
        self.gnss_time(utc, received_mono_ns, None)
    }

    /// The latest good UTC, when it is time to persist it: when it differs from what the
    /// state file holds and `persist_interval_ns` passed since the last time (the first
    /// time at once). The caller writes it to the state file.
    pub fn persist_due(&self) -> Option<i64> {
        let mono = self.clocks.mono_ns();
        let mut state = self.lock();
        let utc = state.last_good_utc_ns?;
        let due = state.persisted_utc_ns != Some(utc)
            && state
                .last_persist_mono_ns
                .is_none_or(|t| mono.saturating_sub(t) >= self.policy.persist_interval_ns);
        if !due {
            return None;
        }
        state.last_persist_mono_ns = Some(mono);
        state.persisted_utc_ns = Some(utc);
        Some(utc)
    }

    /// The time to check certificate validity against: the latest of the system clock, the
    /// last good UTC (persisted or seen) and the build floor, so a board that boots in 1970
    /// can still connect before its first fix (docs/design.md, edge <-> hub protocol).
    pub fn certificate_time_utc_ns(&self) -> i64 {
        let wall = self.clocks.wall_utc_ns().unwrap_or(i64::MIN);
        let good = self.lock().last_good_utc_ns.unwrap_or(i64::MIN);
        wall.max(good).max(self.policy.build_floor_utc_ns)
    }

    /// The latest good UTC known now (for certificate checks before any fix).
    pub fn last_good_utc_ns(&self) -> Option<i64> {
        self.lock().last_good_utc_ns
    }

    /// The timekeeper's view for status and metrics.
    pub fn status(&self) -> TimeStatus {
        let source = self.stamp().source;
        let state = self.lock();
        TimeStatus {
            boot_id: self.boot_id,
            source,
            system_clock_trusted: source == TimeSource::SystemClock,
            sync: state.sync,
            last_correlation: state.last_correlation,
            steps: state.steps,
            last_good_utc_ns: state.last_good_utc_ns,
        }
    }
}

/// UTC at `mono_ns` by a correlation (the monotonic clock runs at the rate of UTC to a few
/// ppm, which the drift threshold bounds).
fn extrapolate(c: &TimeCorrelation, mono_ns: u64) -> i64 {
    let delta = i128::from(mono_ns) - i128::from(c.mono_ns);
    i64::try_from(i128::from(c.utc_ns) + delta).unwrap_or(c.utc_ns)
}

/// Lower-case hex of an id, for logs and status.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const T2026: i64 = EARLIEST_PLAUSIBLE_UTC_NS + 86_400 * NS_PER_S as i64;
    const SEC: u64 = NS_PER_S;

    /// A fixed floor, whatever SOURCE_DATE_EPOCH this build had.
    fn policy() -> TimePolicy {
        TimePolicy::default().with_build_floor(EARLIEST_PLAUSIBLE_UTC_NS)
    }

    fn synced() -> SyncStatus {
        SyncStatus::Synchronised {
            max_error_ns: 1_000_000,
        }
    }

    fn keeper(clocks: &Arc<ManualClocks>) -> (Timekeeper<Arc<ManualClocks>>, Boot) {
        Timekeeper::start(Arc::clone(clocks), None, policy()).unwrap()
    }

    #[test]
    fn a_board_booting_in_1970_stamps_monotonic_time_only() {
        let clocks = Arc::new(ManualClocks::new(
            5 * SEC,
            Some(0),
            SyncStatus::Unsynchronised,
        ));
        let (tk, boot) = keeper(&clocks);
        assert_eq!(boot.utc_ns, None);
        assert_eq!(tk.stamp(), Timestamp::monotonic(5 * SEC));
        assert_eq!(tk.check(), None);
    }

    #[test]
    fn a_synchronised_plausible_clock_stamps_system_time_and_correlates_once() {
        let clocks = Arc::new(ManualClocks::new(SEC, Some(T2026), synced()));
        let (tk, boot) = keeper(&clocks);
        assert_eq!(boot.utc_ns, Some(T2026));
        let first = tk.check().unwrap();
        assert_eq!((first.mono_ns, first.utc_ns), (SEC, T2026));
        assert_eq!(first.source, TimeSource::SystemClock);
        clocks.advance(SEC);
        assert_eq!(tk.check(), None);
        assert_eq!(
            tk.stamp(),
            Timestamp::with_utc(2 * SEC, T2026 + SEC as i64, TimeSource::SystemClock)
        );
    }

    #[test]
    fn an_unsynchronised_plausible_clock_is_not_trusted() {
        let clocks = Arc::new(ManualClocks::new(
            SEC,
            Some(T2026),
            SyncStatus::Unsynchronised,
        ));
        let (tk, _) = keeper(&clocks);
        assert_eq!(tk.stamp().source, TimeSource::Monotonic);
    }

    #[test]
    fn a_clock_behind_the_persisted_last_good_time_is_not_trusted() {
        let clocks = Arc::new(ManualClocks::new(SEC, Some(T2026), SyncStatus::Unknown));
        let later = T2026 + 3600 * SEC as i64;
        let (tk, _) = Timekeeper::start(Arc::clone(&clocks), Some(later), policy()).unwrap();
        assert_eq!(tk.stamp().source, TimeSource::Monotonic);
        assert_eq!(tk.last_good_utc_ns(), Some(later));
    }

    #[test]
    fn gnss_time_correlates_first_then_on_drift_or_interval_only() {
        let clocks = Arc::new(ManualClocks::new(SEC, Some(0), SyncStatus::Unsynchronised));
        let (tk, _) = keeper(&clocks);
        let c = tk.gnss_time(T2026, 10 * SEC, Some(100_000_000)).unwrap();
        assert_eq!(c.source, TimeSource::Gnss);
        // On the prediction: nothing new.
        assert_eq!(tk.gnss_time(T2026 + SEC as i64, 11 * SEC, None), None);
        // 300 ms off the prediction: drift.
        let drifted = T2026 + 2 * SEC as i64 + 300_000_000;
        assert_eq!(
            tk.gnss_time(drifted, 12 * SEC, None).unwrap().utc_ns,
            drifted
        );
        // The interval passed.
        let late = 12 * SEC + 600 * SEC;
        assert!(
            tk.gnss_time(drifted + 600 * SEC as i64, late, None)
                .is_some()
        );
    }

    #[test]
    fn after_gnss_time_readings_carry_reconstructed_utc() {
        let clocks = Arc::new(ManualClocks::new(
            10 * SEC,
            Some(0),
            SyncStatus::Unsynchronised,
        ));
        let (tk, _) = keeper(&clocks);
        tk.gnss_time(T2026, 10 * SEC, None);
        clocks.advance(2 * SEC);
        assert_eq!(
            tk.stamp(),
            Timestamp::with_utc(12 * SEC, T2026 + 2 * SEC as i64, TimeSource::Reconstructed)
        );
    }

    #[test]
    fn gnss_time_before_the_build_floor_is_ignored() {
        let clocks = Arc::new(ManualClocks::new(SEC, Some(0), SyncStatus::Unsynchronised));
        let (tk, _) = keeper(&clocks);
        assert_eq!(tk.gnss_time(315_964_800 * SEC as i64, SEC, None), None);
        assert_eq!(tk.stamp().source, TimeSource::Monotonic);
    }

    #[test]
    fn gnss_time_decades_after_the_build_is_ignored_and_never_persisted() {
        let clocks = Arc::new(ManualClocks::new(SEC, Some(0), SyncStatus::Unsynchronised));
        let (tk, _) = keeper(&clocks);
        // 2070-01-01: an NMEA year `70` read in the 21st century.
        let year_2070 = 3_155_760_000 * SEC as i64;
        assert_eq!(tk.gnss_time(year_2070, SEC, None), None);
        assert_eq!(tk.stamp().source, TimeSource::Monotonic);
        assert_eq!(tk.persist_due(), None);
        // A plausible time still goes through.
        assert!(tk.gnss_time(T2026, 2 * SEC, None).is_some());
    }

    #[test]
    fn persisting_the_last_good_time_is_offered_first_then_by_interval_when_changed() {
        let clocks = Arc::new(ManualClocks::new(SEC, Some(T2026), synced()));
        let (tk, _) = keeper(&clocks);
        assert_eq!(tk.persist_due(), Some(T2026));
        clocks.advance(SEC);
        tk.stamp();
        assert_eq!(tk.persist_due(), None);
        clocks.advance(600 * SEC);
        tk.stamp();
        assert_eq!(tk.persist_due(), Some(T2026 + 601 * SEC as i64));
    }

    #[test]
    fn a_last_good_time_only_loaded_is_not_written_back() {
        let clocks = Arc::new(ManualClocks::new(SEC, Some(0), SyncStatus::Unsynchronised));
        let (tk, _) = Timekeeper::start(Arc::clone(&clocks), Some(T2026), policy()).unwrap();
        assert_eq!(tk.persist_due(), None);
        tk.gnss_time(T2026 + 60 * SEC as i64, 2 * SEC, None);
        assert_eq!(tk.persist_due(), Some(T2026 + 60 * SEC as i64));
    }

    #[test]
    fn only_a_fix_with_a_position_and_a_date_gives_time() {
        use aloft_sensors::gps::{Fix, GnssTime};
        let clocks = Arc::new(ManualClocks::new(SEC, Some(0), SyncStatus::Unsynchronised));
        let (tk, _) = keeper(&clocks);
        let time = GnssTime {
            date: Some((2026, 6, 1)),
            hour: 12,
            minute: 0,
            second: 0,
            nanosecond: 0,
        };
        let mut fix = Fix {
            time: Some(time),
            valid: false,
            ..Fix::default()
        };
        assert_eq!(tk.gnss_fix(&fix, SEC), None, "no position fix");
        fix.valid = true;
        fix.time = Some(GnssTime { date: None, ..time });
        assert_eq!(tk.gnss_fix(&fix, SEC), None, "no date");
        fix.time = Some(time);
        let c = tk.gnss_fix(&fix, SEC).unwrap();
        assert_eq!(c.utc_ns, 1_780_315_200 * SEC as i64);
        assert_eq!(c.source, TimeSource::Gnss);
    }

    #[test]
    fn certificate_time_is_the_latest_of_wall_clock_last_good_time_and_build_floor() {
        let clocks = Arc::new(ManualClocks::new(SEC, Some(0), SyncStatus::Unsynchronised));
        let (tk, _) = keeper(&clocks);
        assert_eq!(tk.certificate_time_utc_ns(), EARLIEST_PLAUSIBLE_UTC_NS);
        let later = EARLIEST_PLAUSIBLE_UTC_NS + 3600 * SEC as i64;
        let (tk, _) = Timekeeper::start(Arc::clone(&clocks), Some(later), policy()).unwrap();
        assert_eq!(tk.certificate_time_utc_ns(), later);
        clocks.step_wall(Some(later + SEC as i64));
        assert_eq!(tk.certificate_time_utc_ns(), later + SEC as i64);
    }

    #[test]
    fn boot_ids_differ_between_starts() {
        let clocks = Arc::new(ManualClocks::new(SEC, None, SyncStatus::Unknown));
        assert_ne!(keeper(&clocks).0.boot_id(), keeper(&clocks).0.boot_id());
    }

    #[test]
    fn the_real_clocks_answer() {
        let c = SystemClocks;
        let a = c.mono_ns();
        assert!(c.mono_ns() >= a);
        assert!(c.wall_utc_ns().is_some());
        // Synchronised or not depends on the machine; asking must not fail here.
        assert_ne!(c.sync_status(), SyncStatus::Unknown);
    }
}
