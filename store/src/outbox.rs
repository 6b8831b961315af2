//! The outbox: the agent's stream, numbered, durable, bounded, read by the uplink.
//!
//! Records get the next sequence number of the store's epoch when appended
//! ([`Outbox::append`]) but are readable only once [`Outbox::commit`] made them durable
//! (the agent commits every flush interval: group commit, one fsync for the window).
//! [`Outbox::ack`] records the hub's contiguous watermark durably.
//!
//! # Small state
//!
//! Beside the backend's records, two files replaced whole and crash-safely:
//! `epoch` (16 random bytes, then a CRC32 of them), written once when the store is created;
//! `cursor`: `acked_below` u64, a clean-shutdown flag u8, the durable mark `end` u64 and
//! `accounted_below` u64 (all little endian), then a CRC32 of them (29 bytes). The flag is
//! set by [`Outbox::close`] and cleared at open, so the next open knows whether the agent
//! stopped cleanly.
//!
//! The durable mark makes the store know the highest number it ever made durable without
//! trusting the segments' lengths: no number at or above `end` is ever made durable.
//! While running, numbers are reserved [`RESERVE`] at a time (one cursor replace per 65 536
//! records, not an extra fsync per group commit); [`Outbox::close`] writes the exact end.
//! At open, numbering resumes at or above `end`; numbers below it that are not held get a
//! gap record ([`GapReason::CorruptRegion`] after a clean stop: a segment cut short or
//! deleted; [`GapReason::Crash`] with the range after a crash, which may also hold
//! reserved numbers never used). `accounted_below` is where the store's own removals
//! (acked, or dropped with a gap) end: an oldest segment missing above it was lost.
//!
//! Compatibility: a cursor of the earlier format (9 bytes and CRC, without `end` and
//! `accounted_below`) is read as before (numbering resumes after the newest record held, no
//! missing-start check); the first cursor write upgrades it. Segments named without a link
//! are read as before.
//!
//! # Invariants
//!
//! - Sequence numbers are contiguous: from the oldest held record to the newest durable one,
//!   every number is held or covered by the `covers` range of a durable gap record.
//! - A loss is made durable as a gap record *before* the records go (policy drops,
//!   decimation): a crash between the two over-reports a loss, never hides one. The one
//!   exception is a full disk (ENOSPC), where space must be freed before anything, the gap
//!   included, can be written.
//! - Only durable records are read. No number is ever issued twice: numbering resumes above
//!   the durable mark, and a [`GapReason::Crash`] gap covers what a crash may have lost.
//! - A commit that cannot write (the disk full with nothing to free, EIO) fails without
//!   losing anything appended: the records wait in memory, within
//!   [`StoreOptions::max_pending_bytes`] (beyond it the oldest of them go, covered by a
//!   [`GapReason::DroppedOldest`] gap), the store reports [`StoreHealth::Full`] or
//!   [`StoreHealth::Degraded`], and the next commit retries. EIO frees nothing.
//! - The store never exceeds `max_bytes` after a commit by more than its newest segment
//!   and the gap records of that commit; when over, it frees acked data first, then applies
//!   the [`FullPolicy`]. Decimation thins only unacked readings: gap, boot,
//!   time-correlation, descriptor and status records stay until their whole segment goes.

use aloft_protocol::{Gap, GapReason, Record, SensorId, StoreEpoch, Timestamp};

use crate::log::{FRAME_HEADER, LogOptions, Recovery, SegmentedLog};
use crate::storage::{OsStorage, Storage};
use crate::{Backend, Chunk, StoreError};

const EPOCH_FILE: &str = "epoch";
const CURSOR_FILE: &str = "cursor";
/// Sequence numbers reserved at a time in the cursor: a record above the durable mark is
/// never made durable, and the mark moves (one small-file replace) once per this many
/// records, not at every group commit.
const RESERVE: u64 = 1 << 16;
/// Records read at a time while counting what a chunk holds.
const SCAN_BATCH: usize = 4096;

/// What the store does when it is full and no acked data is left to free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FullPolicy {
    /// Drop the oldest unsent records, a segment at a time.
    #[default]
    DropOldest,
    /// Thin the oldest unsent backlog evenly (every other reading of the least thinned
    /// segment), so no time span is lost whole; other record kinds are kept.
    Decimate,
    /// Refuse new readings; other records are still accepted.
    RejectNew,
}

/// How a store is bounded and laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreOptions {
    /// The most bytes of records the store keeps.
    pub max_bytes: u64,
    /// What to do when full.
    pub policy: FullPolicy,
    /// Acked records kept locally (for a look on the board) before they are freed.
    pub retain_acked_bytes: u64,
    /// The size of one segment; capped at an eighth of `max_bytes`, so the store frees space
    /// in steps small against its bound.
    pub segment_bytes: u64,
    /// Bytes of records kept in memory while the disk refuses writes (full with nothing to
    /// free, or failing): beyond it the oldest of them are dropped, with a gap record.
    pub max_pending_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_bytes: 1024 * 1024 * 1024,
            policy: FullPolicy::DropOldest,
            retain_acked_bytes: 64 * 1024 * 1024,
            // Small enough that a rewrite (decimation, repair) holds at most 2 MiB.
            segment_bytes: 1024 * 1024,
            // Half an hour of the simulated flight's ~300 records a second.
            max_pending_bytes: 16 * 1024 * 1024,
        }
    }
}

impl StoreOptions {
    /// Options with this bound and policy, other fields default.
    pub fn new(max_bytes: u64, policy: FullPolicy) -> Self {
        StoreOptions {
            max_bytes,
            policy,
            ..StoreOptions::default()
        }
    }

    fn log_options(&self) -> LogOptions {
        LogOptions {
            segment_bytes: self.segment_bytes.min(self.max_bytes / 8).max(1024),
        }
    }
}

/// What happened to an appended record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// It has this sequence number and becomes durable at the next commit.
    Numbered(u64),
    /// The store is full under [`FullPolicy::RejectNew`]: it got no number; a gap record
    /// will count it once space is back.
    Rejected,
}

/// What opening the store found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// This open made a new epoch: a new store, or one whose epoch file was lost or
    /// damaged (its records are kept and numbered on under the new epoch).
    pub created: bool,
    /// The previous run did not close the store (crash, kill or power cut).
    pub unclean: bool,
    /// Corrupt regions skipped (each reported by a gap record).
    pub corrupt_regions: usize,
    /// Bytes cut off a torn tail.
    pub torn_bytes: u64,
    /// Numbers that were durable once and are not held now (a segment file cut short or
    /// deleted, a corrupt region): each got a gap record, or, opened read-only, would.
    pub missing: Vec<MissingRange>,
}

/// Sequence numbers (inclusive) found missing at open, and the gap reason recorded for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingRange {
    /// The first missing number.
    pub first: u64,
    /// The last missing number.
    pub last: u64,
    /// [`GapReason::CorruptRegion`] for records known durable, [`GapReason::Crash`] when
    /// the range may also hold numbers reserved and never used before a crash.
    pub reason: GapReason,
}

/// Whether the store's writes get through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreHealth {
    /// The last commit made everything durable.
    #[default]
    Healthy,
    /// The disk is full (ENOSPC, EDQUOT) and nothing more can be freed: records wait in
    /// memory, within [`StoreOptions::max_pending_bytes`], for the next commit.
    Full,
    /// Writes fail otherwise (EIO: a failing card): nothing is deleted, records wait in
    /// memory within the bound, every commit retries.
    Degraded,
}

/// Losses since the store opened, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Losses {
    /// Records dropped by [`FullPolicy::DropOldest`] (or on a full disk).
    pub dropped: u64,
    /// Readings thinned by [`FullPolicy::Decimate`].
    pub decimated: u64,
    /// Readings refused by [`FullPolicy::RejectNew`].
    pub rejected: u64,
    /// Corrupt regions skipped at open.
    pub corrupt_regions: u64,
    /// Records dropped from memory while the disk refused writes (beyond the bound).
    pub held_back: u64,
    /// Commits that failed (the disk full with nothing to free, or a write error).
    pub failed_commits: u64,
}

/// The store's numbers, for status and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    /// The store's epoch.
    pub epoch: StoreEpoch,
    /// The oldest record held, if any.
    pub oldest_seq: Option<u64>,
    /// The first number not yet acked by the hub.
    pub first_unacked: u64,
    /// One past the newest durable record.
    pub durable_end: u64,
    /// The number the next record gets.
    pub next_seq: u64,
    /// Bytes of records on disk (not counting those still to be committed).
    pub disk_bytes: u64,
    /// The bound.
    pub max_bytes: u64,
    /// Losses since open.
    pub losses: Losses,
    /// Whether writes get through.
    pub health: StoreHealth,
    /// Records appended and waiting for a commit to make them durable.
    pub pending_records: u64,
}

/// Readings refused under [`FullPolicy::RejectNew`] and not yet reported by a gap.
#[derive(Debug, Default)]
struct Refused {
    readings: u64,
    span: Option<(Timestamp, Timestamp)>,
    sensor: Option<Option<SensorId>>,
}

/// The agent's outbox over a [`Backend`] (by default the segmented log on disk).
#[derive(Debug)]
pub struct Outbox<B: Backend = SegmentedLog<OsStorage>> {
    backend: B,
    options: StoreOptions,
    epoch: StoreEpoch,
    next_seq: u64,
    durable_end: u64,
    acked_below: u64,
    pending_bytes: u64,
    refused: Refused,
    losses: Losses,
    scratch: Vec<u8>,
    /// Numbers below this may be durable: the mark in the cursor file.
    reserved_below: u64,
    /// Every number below this is acked or covered by a gap record (what the store freed
    /// itself); a missing oldest segment above it was lost.
    accounted_below: u64,
    health: StoreHealth,
    /// The error of the last failed commit, while unhealthy.
    problem: Option<String>,
    /// The cursor in memory is ahead of the file (its write failed).
    cursor_dirty: bool,
    /// The backend's damaged regions wait for the gap records of their loss to be durable.
    repair_due: bool,
    /// Opened for inspection: nothing is written.
    read_only: bool,
    /// Numbers appended since the last durable sync whose records were dropped from memory.
    shed_pending: u64,
}

/// The cursor file's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    acked_below: u64,
    clean: bool,
    /// The durable mark: no number at or above it was ever made durable. `None` in the
    /// earlier format.
    end: Option<u64>,
    /// `None` in the earlier format.
    accounted_below: Option<u64>,
}

impl Cursor {
    /// `acked_below` u64, clean u8, then (since the durable mark) `end` u64 and
    /// `accounted_below` u64, all little endian; the CRC is outside.
    fn parse(body: &[u8]) -> Option<Cursor> {
        let u64_at = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(body.get(at..at + 8)?.try_into().ok()?))
        };
        match body.len() {
            9 => Some(Cursor {
                acked_below: u64_at(0)?,
                clean: body[8] == 1,
                end: None,
                accounted_below: None,
            }),
            25 => Some(Cursor {
                acked_below: u64_at(0)?,
                clean: body[8] == 1,
                end: Some(u64_at(9)?),
                accounted_below: Some(u64_at(17)?),
            }),
            _ => None,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut bytes = self.acked_below.to_le_bytes().to_vec();
        bytes.push(u8::from(self.clean));
        bytes.extend_from_slice(&self.end.unwrap_or(0).to_le_bytes());
        bytes.extend_from_slice(&self.accounted_below.unwrap_or(0).to_le_bytes());
        bytes
    }
}

/// Narrows `lo` past the ranges already reported, so one loss gets one gap record.
fn past_reported(mut lo: u64, reported: &[(u64, u64)]) -> u64 {
    while let Some(&(_, hi)) = reported.iter().find(|&&(a, b)| a <= lo && lo <= b) {
        lo = hi.saturating_add(1);
    }
    lo
}

fn with_crc(mut bytes: Vec<u8>) -> Vec<u8> {
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
}

fn checked(bytes: &[u8]) -> Option<&[u8]> {
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    let crc = u32::from_le_bytes(crc.try_into().ok()?);
    (crc32fast::hash(body) == crc).then_some(body)
}

fn new_epoch() -> Result<StoreEpoch, StoreError> {
    let mut id = [0; 16];
    getrandom::fill(&mut id).map_err(|e| StoreError::Io {
        op: "random",
        file: EPOCH_FILE.into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(StoreEpoch(id))
}

fn widen(span: Option<(Timestamp, Timestamp)>, t: Timestamp) -> Option<(Timestamp, Timestamp)> {
    Some(match span {
        None => (t, t),
        Some((first, _)) => (first, t),
    })
}

/// Readings in a set of records: count, their time span, and their sensor if all share one.
#[derive(Debug, Default)]
struct ReadingTally {
    readings: u64,
    span: Option<(Timestamp, Timestamp)>,
    sensor: Option<Option<SensorId>>,
}

impl ReadingTally {
    fn add(&mut self, record: &Record) {
        if let Record::Reading(r) = record {
            self.readings += 1;
            self.span = widen(self.span, r.time);
            self.sensor = match self.sensor {
                None => Some(Some(r.sensor)),
                Some(Some(s)) if s == r.sensor => Some(Some(s)),
                Some(_) => Some(None),
            };
        }
    }
}

impl Outbox<SegmentedLog<OsStorage>> {
    /// Opens (or creates) the store in directory `dir`.
    pub fn open(
        dir: impl AsRef<std::path::Path>,
        options: StoreOptions,
    ) -> Result<(Self, OpenReport), StoreError> {
        let storage = OsStorage::exclusive(dir.as_ref()).map_err(|source| StoreError::Io {
            op: "create",
            file: dir.as_ref().display().to_string(),
            source,
        })?;
        Outbox::open_on(storage, options)
    }

    /// Opens the existing store in `dir` for inspection: every file is left as it is (the
    /// directory may be read-only) and no lock is taken. What an open would record (torn
    /// tail, corrupt regions, missing numbers) is reported, not written; only
    /// [`Outbox::read_from`] and the figures work.
    pub fn open_read_only(
        dir: impl AsRef<std::path::Path>,
        options: StoreOptions,
    ) -> Result<(Self, OpenReport), StoreError> {
        let storage = OsStorage::read_only(dir.as_ref()).map_err(|source| StoreError::Io {
            op: "open",
            file: dir.as_ref().display().to_string(),
            source,
        })?;
        Outbox::open_read_only_on(storage, options)
    }
}

impl<S: Storage> Outbox<SegmentedLog<S>> {
    /// Opens (or creates) the store on `storage` (the simulated disk in tests).
    pub fn open_on(storage: S, options: StoreOptions) -> Result<(Self, OpenReport), StoreError> {
        let (log, recovery) = SegmentedLog::open(storage, options.log_options())?;
        Outbox::open_with(log, recovery, options)
    }

    /// [`Outbox::open_read_only`] on `storage`.
    pub fn open_read_only_on(
        storage: S,
        options: StoreOptions,
    ) -> Result<(Self, OpenReport), StoreError> {
        let (log, recovery) = SegmentedLog::open_read_only(storage, options.log_options())?;
        Outbox::open_mode(log, recovery, options, true)
    }

    /// The storage under the store.
    pub fn storage(&self) -> &S {
        self.backend.storage()
    }
}

impl<B: Backend> Outbox<B> {
    /// Opens the outbox over an opened backend and what its recovery found: records the
    /// losses as gap records, then repairs the backend.
    ///
    /// A disk that is full or failing does not stop the open: the gap records wait in
    /// memory like any record ([`Outbox::commit`]), and the repair waits for them.
    pub fn open_with(
        backend: B,
        recovery: Recovery,
        options: StoreOptions,
    ) -> Result<(Self, OpenReport), StoreError> {
        Self::open_mode(backend, recovery, options, false)
    }

    fn open_mode(
        backend: B,
        recovery: Recovery,
        options: StoreOptions,
        read_only: bool,
    ) -> Result<(Self, OpenReport), StoreError> {
        let mut outbox = Outbox {
            backend,
            options,
            epoch: StoreEpoch([0; 16]),
            next_seq: 0,
            durable_end: 0,
            acked_below: 0,
            pending_bytes: 0,
            refused: Refused::default(),
            losses: Losses::default(),
            scratch: Vec::new(),
            reserved_below: 0,
            accounted_below: 0,
            health: StoreHealth::Healthy,
            problem: None,
            cursor_dirty: false,
            repair_due: false,
            read_only,
            shed_pending: 0,
        };
        let stored_epoch = outbox
            .backend
            .load_meta(EPOCH_FILE)?
            .and_then(|b| checked(&b).and_then(|e| <[u8; 16]>::try_from(e).ok()));
        let created = stored_epoch.is_none();
        outbox.epoch = match stored_epoch {
            Some(id) => StoreEpoch(id),
            None if read_only => {
                return Err(StoreError::Io {
                    op: "read",
                    file: EPOCH_FILE.into(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no readable epoch: not a store, or a damaged one",
                    ),
                });
            }
            None => {
                let epoch = new_epoch()?;
                if recovery.last_seq.is_some() {
                    // Records without a readable epoch: keep them and their numbers under a
                    // new epoch rather than lose them.
                    tracing::error!(
                        "The store's epoch file is missing or damaged; its records continue under a new epoch."
                    );
                }
                outbox
                    .backend
                    .store_meta(EPOCH_FILE, &with_crc(epoch.0.to_vec()))?;
                epoch
            }
        };
        let cursor = outbox
            .backend
            .load_meta(CURSOR_FILE)?
            .and_then(|b| checked(&b).and_then(Cursor::parse));
        let cursor = cursor.unwrap_or(Cursor {
            acked_below: 0,
            // No cursor: a new store is clean, an old one without a cursor is not.
            clean: created && recovery.last_seq.is_none(),
            end: None,
            accounted_below: None,
        });
        let clean = cursor.clean;
        let acked_below = cursor.acked_below;
        outbox.acked_below = acked_below;
        let held_end = recovery.last_seq.map_or(0, |s| s + 1);

        // What was durable once and is not held now. The log found corrupt regions and
        // segments missing between others; the cursor's marks show a missing start and a
        // missing end, which the segments cannot show about themselves.
        let mut reported: Vec<(u64, u64)> =
            recovery.corrupt.iter().filter_map(|r| r.lost).collect();
        let mut missing: Vec<MissingRange> = reported
            .iter()
            .map(|&(first, last)| MissingRange {
                first,
                last,
                reason: GapReason::CorruptRegion,
            })
            .collect();
        // Once the gap for a missing start is durable, the start is accounted for.
        let mut accounted_on_commit = None;
        if let (Some(accounted), Some(oldest)) = (
            cursor.accounted_below,
            outbox.backend.chunks().first().map(|c| c.first),
        ) {
            let lo = past_reported(accounted.max(acked_below), &reported);
            if lo < oldest {
                tracing::warn!(
                    lost_from = lo,
                    lost_to = oldest - 1,
                    "The store's oldest records are missing: a segment file was deleted."
                );
                missing.push(MissingRange {
                    first: lo,
                    last: oldest - 1,
                    reason: GapReason::CorruptRegion,
                });
                reported.push((lo, oldest - 1));
                accounted_on_commit = Some(oldest);
            }
        }
        let mut crash_covers = None;
        if let Some(end) = cursor.end {
            let lo = past_reported(held_end.max(acked_below), &reported);
            if lo < end {
                if clean {
                    // A clean stop wrote the exact end: these records were durable.
                    tracing::warn!(
                        lost_from = lo,
                        lost_to = end - 1,
                        "The store's newest records are missing: a segment file was cut short or deleted."
                    );
                    missing.push(MissingRange {
                        first: lo,
                        last: end - 1,
                        reason: GapReason::CorruptRegion,
                    });
                } else {
                    // After a crash the range also holds numbers reserved and never used.
                    crash_covers = Some((lo, end - 1));
                    missing.push(MissingRange {
                        first: lo,
                        last: end - 1,
                        reason: GapReason::Crash,
                    });
                }
            }
        }
        outbox.next_seq = held_end.max(acked_below).max(cursor.end.unwrap_or(0));
        outbox.durable_end = if read_only { held_end } else { outbox.next_seq };
        outbox.reserved_below = outbox.next_seq;
        outbox.accounted_below = cursor
            .accounted_below
            .unwrap_or(acked_below)
            .max(acked_below);

        let report = OpenReport {
            created,
            unclean: !clean,
            corrupt_regions: recovery.corrupt.len(),
            torn_bytes: recovery.torn_bytes,
            missing,
        };
        if read_only {
            return Ok((outbox, report));
        }
        if !clean {
            tracing::warn!(
                next_seq = outbox.next_seq,
                torn_bytes = recovery.torn_bytes,
                "The store was not closed cleanly; at most one flush window was lost."
            );
            outbox.append_gap(Gap {
                reason: GapReason::Crash,
                covers: crash_covers,
                readings: None,
                sensor: None,
                span: None,
            })?;
        }
        for range in &report.missing {
            if range.reason == GapReason::CorruptRegion {
                outbox.append_gap(Gap {
                    reason: GapReason::CorruptRegion,
                    covers: Some((range.first, range.last)),
                    readings: None,
                    sensor: None,
                    span: None,
                })?;
            }
        }
        outbox.losses.corrupt_regions += recovery.corrupt.len() as u64;
        // Only once the losses are durable may the damaged bytes go.
        outbox.repair_due = true;
        match outbox.commit() {
            Ok(()) => {
                if let Some(oldest) = accounted_on_commit {
                    outbox.accounted_below = outbox.accounted_below.max(oldest);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "The store's open records wait in memory; the disk refuses writes.");
            }
        }
        if outbox.reserved_below <= outbox.next_seq {
            outbox.reserved_below = outbox.next_seq.saturating_add(RESERVE);
        }
        if let Err(e) = outbox.write_cursor(false) {
            outbox.reserved_below = outbox.next_seq;
            outbox.cursor_dirty = true;
            outbox.note_failure(&e);
        }
        Ok((outbox, report))
    }

    /// The store's epoch.
    pub fn epoch(&self) -> StoreEpoch {
        self.epoch
    }

    /// The number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// One past the newest durable (readable) record.
    pub fn durable_end(&self) -> u64 {
        self.durable_end
    }

    /// The first number the hub has not acked.
    pub fn first_unacked(&self) -> u64 {
        self.acked_below
    }

    /// The options the store runs with.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// The store's numbers.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            epoch: self.epoch,
            oldest_seq: self.backend.chunks().first().map(|c| c.first),
            first_unacked: self.acked_below,
            durable_end: self.durable_end,
            next_seq: self.next_seq,
            disk_bytes: self.backend.disk_bytes(),
            max_bytes: self.options.max_bytes,
            losses: self.losses,
            health: self.health,
            pending_records: self.next_seq - self.durable_end - self.shed_pending,
        }
    }

    /// Why the store is not healthy: the error of the last failed commit.
    pub fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }

    fn write_cursor(&mut self, clean: bool) -> Result<(), StoreError> {
        let cursor = Cursor {
            acked_below: self.acked_below,
            clean,
            end: Some(self.reserved_below),
            accounted_below: Some(self.accounted_below),
        };
        self.backend
            .store_meta(CURSOR_FILE, &with_crc(cursor.encode()))?;
        self.cursor_dirty = false;
        Ok(())
    }

    /// Makes the durable mark cover every appended number before they are made durable:
    /// a number is never durable above the mark the cursor file holds.
    fn reserve(&mut self) -> Result<(), StoreError> {
        if self.next_seq > self.reserved_below {
            let before = self.reserved_below;
            self.reserved_below = self.next_seq.saturating_add(RESERVE);
            if let Err(e) = self.write_cursor(false) {
                self.reserved_below = before;
                return Err(e);
            }
        }
        Ok(())
    }

    fn note_failure(&mut self, error: &StoreError) {
        let health = if error.is_storage_full() {
            StoreHealth::Full
        } else {
            StoreHealth::Degraded
        };
        if self.health != health {
            tracing::error!(error = %error, ?health, "The store cannot write; records wait in memory and every commit retries.");
        }
        self.health = health;
        self.problem = Some(error.to_string());
    }

    /// A commit failed: keep the appended records in memory for the next one, within
    /// [`StoreOptions::max_pending_bytes`]. Beyond it the oldest of them go, with a gap
    /// record (which itself waits in memory), so the newest readings are kept.
    fn hold_back(&mut self, error: StoreError) -> StoreError {
        self.losses.failed_commits += 1;
        self.note_failure(&error);
        if self.pending_bytes > self.options.max_pending_bytes {
            let excess = self.pending_bytes - self.options.max_pending_bytes / 2;
            let mut tally = ReadingTally::default();
            let mut range: Option<(u64, u64)> = None;
            let mut records = 0u64;
            let freed = self.backend.shed_unsynced(excess, &mut |seq, payload| {
                records += 1;
                let mut lo = seq;
                match postcard::from_bytes::<Record>(payload) {
                    // A gap waiting with the rest: the new gap takes over what it counted.
                    Ok(Record::Gap(gap)) => {
                        if let Some((first, _)) = gap.covers {
                            lo = lo.min(first);
                        }
                        tally.readings += gap.readings.unwrap_or(0);
                        if let Some((from, to)) = gap.span {
                            tally.span = widen(widen(tally.span, from), to);
                        }
                        tally.sensor = Some(None);
                    }
                    Ok(record) => tally.add(&record),
                    Err(_) => {}
                }
                range = Some(range.map_or((lo, seq), |(first, _)| (first.min(lo), seq)));
            });
            self.pending_bytes = self.pending_bytes.saturating_sub(freed);
            if let Some(covers) = range {
                self.losses.held_back += records;
                self.shed_pending += records;
                tracing::warn!(
                    first = covers.0,
                    last = covers.1,
                    readings = tally.readings,
                    "The disk refuses writes and the memory bound is reached; dropped the oldest waiting records."
                );
                let gap = Gap {
                    reason: GapReason::DroppedOldest,
                    covers: Some(covers),
                    readings: Some(tally.readings),
                    sensor: tally.sensor.flatten(),
                    span: tally.span,
                };
                if let Err(e) = self.append_gap(gap) {
                    tracing::error!(error = %e, "Could not record the loss of waiting records.");
                }
            }
        }
        error
    }

    /// Bytes acked records take in chunks that could be freed (all but the newest).
    fn reclaimable_bytes(&self, chunks: &[Chunk]) -> u64 {
        let older = chunks.len().saturating_sub(1);
        chunks[..older]
            .iter()
            .take_while(|c| c.last < self.acked_below)
            .map(|c| c.bytes)
            .sum()
    }

    fn push(&mut self, record: &Record) -> Result<u64, StoreError> {
        self.scratch.clear();
        self.scratch = postcard::to_extend(record, std::mem::take(&mut self.scratch))?;
        let seq = self.next_seq;
        self.backend.append(seq, &self.scratch)?;
        self.next_seq += 1;
        self.pending_bytes += (FRAME_HEADER + self.scratch.len()) as u64;
        Ok(seq)
    }

    fn append_gap(&mut self, gap: Gap) -> Result<u64, StoreError> {
        self.push(&Record::Gap(gap))
    }

    /// Appends a record: it gets the next sequence number and becomes readable at the next
    /// [`Outbox::commit`]. Under [`FullPolicy::RejectNew`] a full store refuses readings.
    pub fn append(&mut self, record: &Record) -> Result<AppendOutcome, StoreError> {
        if let Record::Reading(reading) = record
            && self.options.policy == FullPolicy::RejectNew
        {
            let size = (FRAME_HEADER + postcard::experimental::serialized_size(record)?) as u64;
            let chunks = self.backend.chunks();
            // Bytes on disk count the appended, not yet committed records too.
            let held = self.backend.disk_bytes() - self.reclaimable_bytes(&chunks);
            if held + size > self.options.max_bytes {
                self.refused.readings += 1;
                self.refused.span = widen(self.refused.span, reading.time);
                self.refused.sensor = match self.refused.sensor {
                    None => Some(Some(reading.sensor)),
                    Some(Some(s)) if s == reading.sensor => Some(Some(s)),
                    Some(_) => Some(None),
                };
                self.losses.rejected += 1;
                return Ok(AppendOutcome::Rejected);
            }
        }
        self.report_refused()?;
        Ok(AppendOutcome::Numbered(self.push(record)?))
    }

    /// Appends the gap record for readings refused since the last one, if any.
    fn report_refused(&mut self) -> Result<(), StoreError> {
        if self.refused.readings > 0 {
            let refused = std::mem::take(&mut self.refused);
            tracing::warn!(
                readings = refused.readings,
                "The store was full and refused new readings."
            );
            self.append_gap(Gap {
                reason: GapReason::RejectedNew,
                covers: None,
                readings: Some(refused.readings),
                sensor: refused.sensor.flatten(),
                span: refused.span,
            })?;
        }
        Ok(())
    }

    /// Makes every appended record durable and readable (one fsync for the whole window),
    /// then brings the store back under its bound.
    ///
    /// A full disk frees space by the policy and retries; with nothing left to free, or on
    /// any other write error (nothing is deleted then), the records stay in memory within
    /// the bound, the store reports itself [`StoreHealth::Full`] or
    /// [`StoreHealth::Degraded`], the error is returned and the next commit retries.
    pub fn commit(&mut self) -> Result<(), StoreError> {
        if self.read_only {
            return Ok(());
        }
        if self.next_seq != self.durable_end {
            loop {
                match self.reserve().and_then(|()| self.backend.sync()) {
                    Ok(()) => break,
                    // Free a chunk at a time and retry.
                    Err(e) if e.is_storage_full() => {
                        tracing::warn!(error = %e, "The disk is full; freeing space by the store's policy.");
                        match self.free_for_full_disk() {
                            Ok(true) => {}
                            Ok(false) => return Err(self.hold_back(e)),
                            Err(e) => return Err(self.hold_back(e)),
                        }
                    }
                    Err(e) => return Err(self.hold_back(e)),
                }
            }
            self.durable_end = self.next_seq;
            self.pending_bytes = 0;
            self.shed_pending = 0;
        }
        if self.health != StoreHealth::Healthy {
            tracing::info!("The store writes again.");
            self.health = StoreHealth::Healthy;
            self.problem = None;
        }
        if self.repair_due {
            self.backend.repair()?;
            self.repair_due = false;
        }
        if self.cursor_dirty {
            self.write_cursor(false)?;
        }
        self.enforce_bound()
    }

    /// Reads up to `max` durable records numbered `seq` or above, in order.
    pub fn read_from(&self, seq: u64, max: usize) -> Result<Vec<(u64, Record)>, StoreError> {
        let mut raw = Vec::new();
        if seq < self.durable_end {
            self.backend.read_from(seq, max, &mut raw)?;
        }
        raw.into_iter()
            .take_while(|(s, _)| *s < self.durable_end)
            .map(|(s, bytes)| Ok((s, postcard::from_bytes(&bytes)?)))
            .collect()
    }

    /// Records the hub's contiguous watermark: every record up to `up_to` (inclusive) is
    /// acked. Durable when this returns Ok; on an error the ack still holds in memory and
    /// the next commit writes it. Acks of numbers not yet durable are capped.
    pub fn ack(&mut self, up_to: u64) -> Result<(), StoreError> {
        let below = up_to.saturating_add(1).min(self.durable_end);
        if below <= self.acked_below {
            return Ok(());
        }
        self.acked_below = below;
        self.accounted_below = self.accounted_below.max(below);
        if let Err(e) = self.write_cursor(false) {
            // The hub holds these records whether or not the cursor says so: the ack holds
            // in memory and the next commit writes the cursor again; a crash before then
            // resends them, which is harmless. Nothing is freed on an ack not durable.
            self.cursor_dirty = true;
            self.note_failure(&e);
            return Err(e);
        }
        // Retention: acked records beyond what is kept locally go.
        loop {
            let chunks = self.backend.chunks();
            let older = chunks.len().saturating_sub(1);
            let acked: Vec<&Chunk> = chunks[..older]
                .iter()
                .take_while(|c| c.last < self.acked_below)
                .collect();
            let acked_bytes: u64 = acked.iter().map(|c| c.bytes).sum();
            match acked.first() {
                Some(oldest) if acked_bytes > self.options.retain_acked_bytes => {
                    self.backend.remove_chunk(oldest.first)?;
                }
                _ => break,
            }
        }
        Ok(())
    }

    /// Commits and marks the store cleanly closed. Readings refused while full are
    /// reported by a gap record first, so a stop does not hide them.
    pub fn close(mut self) -> Result<(), StoreError> {
        if self.read_only {
            return Ok(());
        }
        self.report_refused()?;
        if let Err(e) = self.commit() {
            // What waits in memory is lost with this process: the next open reports the
            // numbers up to the durable mark as a crash's.
            let _ = self.write_cursor(false);
            return Err(e);
        }
        // The exact end: a later open tells records cut off the end from numbers never used.
        self.reserved_below = self.durable_end;
        self.write_cursor(true)
    }

    /// Calls `visit` with every record of a chunk, a batch at a time, so a full segment is
    /// never held decoded in memory at once.
    fn each_record(
        &self,
        chunk: &Chunk,
        mut visit: impl FnMut(u64, &Record),
    ) -> Result<(), StoreError> {
        let mut from = chunk.first;
        let mut raw = Vec::new();
        loop {
            raw.clear();
            self.backend.read_from(from, SCAN_BATCH, &mut raw)?;
            for (seq, bytes) in &raw {
                if *seq > chunk.last {
                    return Ok(());
                }
                from = seq + 1;
                visit(*seq, &postcard::from_bytes(bytes)?);
            }
            if raw.len() < SCAN_BATCH {
                return Ok(());
            }
        }
    }

    /// Drops a whole chunk after a durable gap record covering its unacked part.
    ///
    /// The gap covers everything unacked up to the chunk's end, not only the chunk: earlier
    /// drops' gap records may have been dropped with their own chunks by now, and the hub
    /// must learn of every unacked number it will never get, or its watermark stalls.
    fn drop_chunk(&mut self, chunk: Chunk, gap_first: bool) -> Result<(), StoreError> {
        let lo = self.acked_below;
        let mut tally = ReadingTally::default();
        self.each_record(&chunk, |seq, record| {
            if seq >= lo {
                tally.add(record);
            }
        })?;
        if !gap_first {
            self.backend.remove_chunk(chunk.first)?;
        }
        if lo <= chunk.last {
            tracing::warn!(
                first = lo,
                last = chunk.last,
                readings = tally.readings,
                "The store was full and dropped its oldest unsent records."
            );
            self.losses.dropped += chunk.last - lo.max(chunk.first) + 1;
            self.append_gap(Gap {
                reason: GapReason::DroppedOldest,
                covers: Some((lo, chunk.last)),
                readings: Some(tally.readings),
                sensor: tally.sensor.flatten(),
                span: tally.span,
            })?;
            if gap_first {
                self.sync_now()?;
            }
        }
        if gap_first {
            self.backend.remove_chunk(chunk.first)?;
        }
        // Written with the next cursor: a crash before then over-reports this drop as a
        // missing segment at open, never hides one.
        self.accounted_below = self.accounted_below.max(chunk.last + 1);
        Ok(())
    }

    fn sync_now(&mut self) -> Result<(), StoreError> {
        self.reserve()?;
        self.backend.sync()?;
        self.durable_end = self.next_seq;
        self.pending_bytes = 0;
        self.shed_pending = 0;
        Ok(())
    }

    /// Thins every other unacked reading of a chunk, after a durable gap record; returns
    /// false when there is too little to thin.
    fn decimate_chunk(&mut self, chunk: Chunk) -> Result<bool, StoreError> {
        let mut drop = Vec::new();
        let mut tally = ReadingTally::default();
        let mut nth = 0u64;
        let acked_below = self.acked_below;
        self.each_record(&chunk, |seq, record| {
            if seq < acked_below || !matches!(record, Record::Reading(_)) {
                return;
            }
            if nth % 2 == 1 {
                drop.push(seq);
                tally.add(record);
            }
            nth += 1;
        })?;
        // Thinning a single reading frees less than its gap record takes.
        let (Some(&first), Some(&last)) = (drop.first(), drop.last()) else {
            return Ok(false);
        };
        if drop.len() < 2 {
            return Ok(false);
        }
        tracing::warn!(
            first,
            last,
            readings = tally.readings,
            "The store was full and thinned its oldest unsent readings."
        );
        self.losses.decimated += tally.readings;
        self.append_gap(Gap {
            reason: GapReason::Decimated,
            covers: Some((first, last)),
            readings: Some(tally.readings),
            sensor: tally.sensor.flatten(),
            span: tally.span,
        })?;
        self.sync_now()?;
        self.backend.thin_chunk(chunk.first, &drop)?;
        Ok(true)
    }

    /// Brings the store under `max_bytes`: acked chunks first, then the policy. The newest
    /// chunk always stays (it carries the numbering on).
    fn enforce_bound(&mut self) -> Result<(), StoreError> {
        loop {
            if self.backend.disk_bytes() <= self.options.max_bytes {
                return Ok(());
            }
            let chunks = self.backend.chunks();
            if chunks.len() <= 1 {
                return Ok(());
            }
            let candidates = &chunks[..chunks.len() - 1];
            let oldest = candidates[0];
            if oldest.last < self.acked_below {
                self.backend.remove_chunk(oldest.first)?;
                continue;
            }
            match self.options.policy {
                FullPolicy::RejectNew => return Ok(()),
                FullPolicy::DropOldest => self.drop_chunk(oldest, true)?,
                FullPolicy::Decimate => {
                    let mut order: Vec<Chunk> = candidates.to_vec();
                    // Least thinned first, oldest first among equals: the backlog is thinned
                    // evenly instead of one span to nothing.
                    order.sort_by_key(|c| (c.generation, c.first));
                    let mut thinned = false;
                    for chunk in order {
                        if self.decimate_chunk(chunk)? {
                            thinned = true;
                            break;
                        }
                    }
                    if !thinned {
                        self.drop_chunk(oldest, true)?;
                    }
                }
            }
        }
    }

    /// Frees space when the disk itself is full: an acked chunk, else (unless the policy
    /// refuses new readings) the oldest unsent chunk, whose gap is written after it goes.
    /// Returns whether anything was freed.
    fn free_for_full_disk(&mut self) -> Result<bool, StoreError> {
        let chunks = self.backend.chunks();
        let older = chunks.len().saturating_sub(1);
        let Some(&oldest) = chunks[..older].first() else {
            return Ok(false);
        };
        if oldest.last < self.acked_below {
            return match self.backend.remove_chunk(oldest.first) {
                Ok(()) => Ok(true),
                Err(StoreError::Busy { .. }) => Ok(false),
                Err(e) => Err(e),
            };
        }
        if self.options.policy == FullPolicy::RejectNew {
            return Ok(false);
        }
        match self.drop_chunk(oldest, false) {
            Ok(()) => Ok(true),
            // The oldest chunk is itself still waiting to be written: nothing on disk to free.
            Err(StoreError::Busy { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_state_with_a_flipped_bit_is_refused() {
        let mut bytes = with_crc(vec![1, 2, 3, 4, 5, 6, 7, 8, 1]);
        assert_eq!(checked(&bytes), Some(&[1, 2, 3, 4, 5, 6, 7, 8, 1][..]));
        bytes[3] ^= 0x10;
        assert_eq!(checked(&bytes), None);
        assert_eq!(checked(&[1, 2]), None, "shorter than a CRC");
    }

    #[test]
    fn segments_are_capped_at_an_eighth_of_the_bound() {
        let options = StoreOptions::new(64 * 1024, FullPolicy::Decimate);
        assert_eq!(options.log_options().segment_bytes, 8 * 1024);
        let options = StoreOptions::new(1 << 40, FullPolicy::Decimate);
        assert_eq!(options.log_options().segment_bytes, 1024 * 1024);
    }

    #[test]
    fn a_tally_names_the_sensor_only_when_all_readings_share_it() {
        use aloft_protocol::{Quality, Quantity, Reading};
        let r = |sensor| {
            Record::Reading(Reading {
                sensor: SensorId(sensor),
                quantity: Quantity::AirPressure,
                time: Timestamp::monotonic(u64::from(sensor)),
                value: 1.0,
                quality: Quality::GOOD,
            })
        };
        let mut one = ReadingTally::default();
        one.add(&r(2));
        one.add(&r(2));
        assert_eq!(one.sensor.flatten(), Some(SensorId(2)));
        let mut two = ReadingTally::default();
        two.add(&r(2));
        two.add(&r(3));
        assert_eq!(two.sensor.flatten(), None);
        assert_eq!(two.readings, 2);
        assert_eq!(two.span.map(|s| (s.0.mono_ns, s.1.mono_ns)), Some((2, 3)));
    }
}
