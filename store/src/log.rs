//! The purpose-built backend: a segmented, append-only log with a checksum on every record.
//!
//! # On-disk format
//!
//! The store directory holds segment files named `{first:020}-{generation}-{after:020}.seg`,
//! where `first` is the sequence number of the first record ever written to the segment,
//! `generation` counts its rewrites (decimation, repair), and `after` links it to the records
//! before it: the newest record the store held before this segment when it was started (and
//! since the last rewrite of its predecessor). A store's first segment, and every segment
//! written by the earlier format, is named `{first:020}-{generation}.seg` (no link); both
//! forms are read. A segment is a plain sequence of frames, without header or padding:
//!
//! ```text
//! +-----------+-----------+-----------+-------------------------+
//! | crc32 u32 | len u16   | seq u64   | payload (len bytes)     |
//! +-----------+-----------+-----------+-------------------------+
//!   little endian; crc32 (IEEE) covers len, seq and payload
//! ```
//!
//! The payload is opaque to this module (the outbox puts a postcard-encoded `Record` in it).
//! Small files beside the segments (`epoch`, `cursor`) are replaced whole with
//! [`crate::atomic::replace_file`]; `*.tmp` files are leftovers of an interrupted replace or
//! rewrite and are deleted at open.
//!
//! # Invariants
//!
//! - Sequence numbers strictly increase along a segment and from one segment to the next;
//!   they may skip (a rewrite dropped records; the outbox writes a gap record for that).
//! - Only the newest segment is appended to; older ones change only by a whole-file rewrite
//!   (temporary file, fsync, rename to the next generation, fsync of the directory), so a
//!   crash leaves either the old or the new generation; at open the highest wins.
//! - [`SegmentedLog::sync`] makes every appended frame durable: it writes the buffered
//!   frames, fsyncs every file that got bytes, then the directory if a segment was created.
//! - A link that names a record newer than the newest held before the segment shows records
//!   gone with a deleted or cut predecessor (no fsync is added for it: the name is fixed
//!   when the segment's file is created): reported in [`Recovery`] like a corrupt region,
//!   and [`SegmentedLog::repair`] renames the segment to link to what is held. A missing
//!   oldest or newest segment cannot be seen from the segments: the outbox's cursor shows it.
//! - Appends do no I/O: a new segment's file is created, and frames written, at
//!   [`SegmentedLog::sync`]. Frames stay buffered until their fsync succeeded (a failed write
//!   or fsync is cut back and retried), so a full or failing disk never refuses an append.
//! - [`SegmentedLog::open_read_only`] finds and reports the same, changes nothing, and
//!   steps over bad regions when reading.
//! - At open every segment is scanned: a frame whose checksum, length or order is wrong
//!   starts a bad region, which ends at the next valid frame found by sliding byte by byte.
//!   A bad region after which no valid frame exists anywhere is a torn tail (a write the
//!   crash interrupted) and is cut off; any other bad region is reported in [`Recovery`] with
//!   the sequence numbers it may have held, and [`SegmentedLog::repair`] rewrites its segment
//!   without it once the outbox has recorded the loss.

use std::collections::VecDeque;
use std::io;

use crate::atomic::{read_file, replace_file};
use crate::storage::{Storage, StorageFile};
use crate::{Backend, Chunk, StoreError};

/// Bytes of a frame before its payload.
pub const FRAME_HEADER: usize = 14;
/// The largest payload a frame can carry.
pub const MAX_PAYLOAD: usize = u16::MAX as usize;
/// A sparse index entry every this many bytes of a segment.
const INDEX_EVERY: u64 = 64 * 1024;
/// Bytes read from a segment at a time.
const READ_BLOCK: usize = 256 * 1024;

fn frame_crc(frame_after_crc: &[u8]) -> u32 {
    crc32fast::hash(frame_after_crc)
}

/// Appends one frame to `out`.
fn encode_frame(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    // The caller checks the size; a payload too large never reaches here.
    out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = frame_crc(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// What a buffer holds at its start.
#[derive(Debug, PartialEq, Eq)]
enum Frame {
    /// A valid frame: its sequence number and payload length.
    Valid { seq: u64, len: usize },
    /// The buffer ends before the frame does.
    Incomplete { needed: usize },
    /// Not a valid frame.
    Bad,
}

fn decode_frame(buf: &[u8]) -> Frame {
    if buf.len() < FRAME_HEADER {
        return Frame::Incomplete {
            needed: FRAME_HEADER,
        };
    }
    let crc = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let len = usize::from(u16::from_le_bytes([buf[4], buf[5]]));
    let total = FRAME_HEADER + len;
    if buf.len() < total {
        return Frame::Incomplete { needed: total };
    }
    if frame_crc(&buf[4..total]) != crc {
        return Frame::Bad;
    }
    let mut seq = [0; 8];
    seq.copy_from_slice(&buf[6..14]);
    Frame::Valid {
        seq: u64::from_le_bytes(seq),
        len,
    }
}

/// What opening the log has settled so far.
struct Opening {
    recovery: Recovery,
    segments: Vec<Segment>,
    to_repair: Vec<u64>,
    /// First numbers of segments whose link shows records missing before them.
    to_relink: Vec<u64>,
    /// The newest valid record's number so far.
    prev_seq: Option<u64>,
    /// The highest number a loss reported so far reaches: a later check does not report
    /// it twice.
    reported_to: Option<u64>,
    /// Whether a segment (even an empty one) came before the one being settled.
    seen_segment: bool,
    dir_dirty: bool,
    /// Inspection: find and report, change nothing.
    read_only: bool,
}

impl Opening {
    fn report_lost(&mut self, segment: String, bytes: u64, lo: u64, hi: u64) -> Option<(u64, u64)> {
        let lo = self.reported_to.map_or(lo, |r| lo.max(r.saturating_add(1)));
        let lost = (lo <= hi).then_some((lo, hi));
        if let Some((_, hi)) = lost {
            self.reported_to = Some(self.reported_to.map_or(hi, |r| r.max(hi)));
        } else if bytes == 0 {
            // A missing segment whose numbers a corrupt region already reported.
            return None;
        }
        self.recovery.corrupt.push(CorruptRegion {
            segment,
            bytes,
            lost,
        });
        lost
    }

    /// Settles one scanned segment: checks its link to the records before it (a segment
    /// deleted or cut short before it), records its corrupt regions and the sequence
    /// numbers they held (up to `later_valid`, the first valid frame of any later segment),
    /// cuts a torn tail, drops an empty segment, keeps the rest.
    fn settle<S: Storage>(
        &mut self,
        storage: &S,
        (first, generation, after): SegmentId,
        scan: &Scan,
        later_valid: Option<u64>,
    ) -> Result<(), StoreError> {
        let name = segment_name(first, generation, after);
        // The newest record before this segment was `after` when the segment started (and
        // since its predecessor's last rewrite): records up to it that are not held now
        // went with a deleted or truncated file. Before the oldest segment, removal is the
        // store's own (acked or dropped with a gap): the outbox checks that against its
        // cursor.
        if let Some(after) = after
            && self.seen_segment
        {
            let held_to = self.prev_seq;
            if held_to.is_none_or(|h| h < after) {
                let lo = held_to.map_or(0, |h| h + 1);
                self.to_relink.push(first);
                if let Some((lost_from, lost_to)) =
                    self.report_lost(format!("before {name}"), 0, lo, after)
                {
                    tracing::warn!(
                        segment = %name,
                        lost_from,
                        lost_to,
                        "Records before a segment are missing: a segment file was deleted or cut short."
                    );
                }
            }
        }
        self.seen_segment = true;
        let mut segment = Segment::new(first, generation, after);
        let mut frames = scan.frames.iter().peekable();
        let mut cut_at = None;
        for &(from, to) in &scan.bad {
            // Frames before this region.
            while let Some(&&(seq, off, _)) = frames.peek() {
                if off >= from {
                    break;
                }
                self.prev_seq = Some(seq);
                frames.next();
            }
            let next_seq = frames.peek().map(|f| f.0).or(later_valid);
            let Some(next_seq) = next_seq else {
                cut_at = Some(from);
                self.recovery.torn_bytes += to - from;
                break;
            };
            let lo = self.prev_seq.map_or(first, |p| p + 1);
            let lost = self.report_lost(name.clone(), to - from, lo, next_seq.saturating_sub(1));
            tracing::warn!(
                segment = %name,
                offset = from,
                bytes = to - from,
                lost_from = lost.map(|l| l.0),
                lost_to = lost.map(|l| l.1),
                "Skipped a corrupt region of a segment."
            );
            segment.bad.push((from, to));
            if self.to_repair.last() != Some(&first) {
                self.to_repair.push(first);
            }
        }
        for &(seq, off, total) in &scan.frames {
            if cut_at.is_some_and(|cut| off >= cut) {
                break;
            }
            segment.note_frame(seq, off, total);
            self.prev_seq = Some(seq);
        }
        if let Some(cut) = cut_at
            && segment.records > 0
            && !self.read_only
        {
            let mut file = storage.open(&name).map_err(io_err("open", &name))?;
            file.truncate(cut).map_err(io_err("truncate", &name))?;
            file.sync().map_err(io_err("sync", &name))?;
            tracing::warn!(segment = %name, offset = cut, bytes = self.recovery.torn_bytes, "Cut a torn tail off the log.");
        }
        // An empty segment (created, then the crash came) holds nothing and a new
        // segment may need its name. One whose bytes were all corrupt stays until
        // `repair`: removing it before the outbox made its gap durable could hide the
        // loss if the power went in between.
        if segment.records == 0 && self.to_repair.last() != Some(&first) {
            if !self.read_only {
                storage.remove(&name).map_err(io_err("remove", &name))?;
                self.dir_dirty = true;
            }
            return Ok(());
        }
        self.segments.push(segment);
        Ok(())
    }
}

/// The frames and bad regions of one segment's bytes.
#[derive(Debug, Default)]
struct Scan {
    /// (seq, offset, frame length).
    frames: Vec<(u64, u64, u64)>,
    /// Byte ranges that are not valid frames.
    bad: Vec<(u64, u64)>,
}

/// Scans a segment: valid frames must have a sequence number of at least `min_seq`, and
/// above the previous frame's.
fn scan(bytes: &[u8], mut min_seq: u64) -> Scan {
    let mut out = Scan::default();
    let mut pos = 0;
    let mut bad_from: Option<usize> = None;
    while pos < bytes.len() {
        match decode_frame(&bytes[pos..]) {
            Frame::Valid { seq, len } if seq >= min_seq => {
                if let Some(from) = bad_from.take() {
                    out.bad.push((from as u64, pos as u64));
                }
                let total = FRAME_HEADER + len;
                out.frames.push((seq, pos as u64, total as u64));
                min_seq = seq.saturating_add(1);
                pos += total;
            }
            _ => {
                bad_from.get_or_insert(pos);
                pos += 1;
            }
        }
    }
    if let Some(from) = bad_from {
        out.bad.push((from as u64, bytes.len() as u64));
    }
    out
}

/// A segment as its name says: first number, generation, link.
type SegmentId = (u64, u32, Option<u64>);

fn segment_name(first: u64, generation: u32, after: Option<u64>) -> String {
    match after {
        Some(after) => format!("{first:020}-{generation}-{after:020}.seg"),
        None => format!("{first:020}-{generation}.seg"),
    }
}

/// A segment's name: its first number, its generation, and the link to the records before
/// it (`None` for a store's first segment and for segments of the earlier format).
fn parse_segment_name(name: &str) -> Option<SegmentId> {
    let stem = name.strip_suffix(".seg")?;
    let mut parts = stem.split('-');
    let first = parts.next()?.parse().ok()?;
    let generation = parts.next()?.parse().ok()?;
    let after = match parts.next() {
        Some(after) => Some(after.parse().ok()?),
        None => None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some((first, generation, after))
}

fn io_err(op: &'static str, name: &str) -> impl FnOnce(io::Error) -> StoreError {
    let file = name.to_owned();
    move |source| StoreError::Io { op, file, source }
}

#[derive(Debug)]
struct Segment {
    first: u64,
    generation: u32,
    /// The newest record's sequence number, `None` while empty.
    last: Option<u64>,
    /// Bytes of frames, written or buffered.
    len: u64,
    records: u64,
    /// Sparse (seq, offset) index, one entry per [`INDEX_EVERY`] bytes.
    index: Vec<(u64, u64)>,
    /// The newest record the store held before this segment (its name's link).
    after: Option<u64>,
    /// Byte ranges that are not frames (found at open, or left by a write that failed
    /// and could not be undone): reads step over them.
    bad: Vec<(u64, u64)>,
}

impl Segment {
    fn new(first: u64, generation: u32, after: Option<u64>) -> Self {
        Segment {
            first,
            generation,
            last: None,
            len: 0,
            records: 0,
            index: Vec::new(),
            after,
            bad: Vec::new(),
        }
    }

    fn name(&self) -> String {
        segment_name(self.first, self.generation, self.after)
    }

    /// Where the bad range starting at `offset` ends, if one does.
    fn bad_at(&self, offset: u64) -> Option<u64> {
        self.bad
            .iter()
            .find(|&&(from, _)| from == offset)
            .map(|&(_, to)| to)
    }

    /// Rebuilds the bookkeeping of the unwritten frames (from byte `from` on, after
    /// `records_before` records up to `last_before`) once they moved to start at byte `to`
    /// (the bytes between are a failed write left in the file) or some were shed: `frames`
    /// are the (seq, frame length) still buffered, in order.
    fn renote_tail(
        &mut self,
        (from, to): (u64, u64),
        (records_before, last_before): (u64, Option<u64>),
        frames: &[(u64, u64)],
    ) {
        self.index.retain(|&(_, off)| off < from);
        self.records = records_before;
        self.last = last_before;
        self.len = to;
        if to > from {
            self.bad.push((from, to));
        }
        let mut offset = to;
        for &(seq, total) in frames {
            self.note_frame(seq, offset, total);
            offset += total;
        }
    }

    fn note_frame(&mut self, seq: u64, offset: u64, total: u64) {
        let indexed_to = self.index.last().map(|&(_, off)| off);
        if indexed_to.is_none_or(|off| offset >= off + INDEX_EVERY) {
            self.index.push((seq, offset));
        }
        self.last = Some(seq);
        self.len = offset + total;
        self.records += 1;
    }
}

/// A segment that frames are being written to, and the frames not yet written to it.
#[derive(Debug)]
struct Writer<F> {
    first: u64,
    /// The segment's file, created at the first sync: an append does no I/O, so a full
    /// or failing disk never refuses one.
    file: Option<F>,
    buf: Vec<u8>,
    /// The file's length before `buf` is written: where to cut back to if writing fails.
    written: u64,
    /// Records written before `buf`, and the newest of them.
    written_records: u64,
    written_last: Option<u64>,
}

impl<F> Writer<F> {
    /// (seq, frame length) of the buffered frames, in order.
    fn buffered(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut pos = 0;
        while let Frame::Valid { seq, len } = decode_frame(&self.buf[pos..]) {
            let total = FRAME_HEADER + len;
            out.push((seq, total as u64));
            pos += total;
        }
        out
    }
}

/// A region found bad at open, which held records the outbox must report lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptRegion {
    /// The segment file.
    pub segment: String,
    /// Bytes skipped.
    pub bytes: u64,
    /// Sequence numbers (inclusive) the region may have held; `None` when no number is
    /// missing around it (garbage between two consecutive records).
    pub lost: Option<(u64, u64)>,
}

/// What opening a log found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Bad regions that are not a torn tail: records may have been lost there.
    pub corrupt: Vec<CorruptRegion>,
    /// Bytes cut off the end as a torn tail.
    pub torn_bytes: u64,
    /// The newest sequence number held, `None` for an empty log.
    pub last_seq: Option<u64>,
}

/// Sizes of the segmented log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogOptions {
    /// A segment is closed and a new one started once it would exceed this many bytes.
    /// Smaller segments free space in smaller steps when the store is full.
    pub segment_bytes: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes: 1024 * 1024,
        }
    }
}

/// The segmented log over a [`Storage`].
#[derive(Debug)]
pub struct SegmentedLog<S: Storage> {
    storage: S,
    options: LogOptions,
    segments: Vec<Segment>,
    /// Segments with bytes to write or fsync; the last one is the one appended to.
    writers: Vec<Writer<S::File>>,
    dir_dirty: bool,
    /// First sequence numbers of segments whose bad regions [`Self::repair`] removes.
    to_repair: Vec<u64>,
    /// First sequence numbers of segments whose link [`Self::repair`] points at the records
    /// held before them, once the loss of those missing is recorded.
    to_relink: Vec<u64>,
    /// Opened for inspection: nothing is written.
    read_only: bool,
}

impl<S: Storage> SegmentedLog<S> {
    /// Opens the log in `storage`, creating nothing until the first sync. Cuts a torn
    /// tail and reports corrupt regions and missing segments; fails only on I/O errors.
    pub fn open(storage: S, options: LogOptions) -> Result<(Self, Recovery), StoreError> {
        Self::open_mode(storage, options, false)
    }

    /// Opens the log for inspection: finds and reports what [`SegmentedLog::open`] does,
    /// but changes nothing (no torn tail cut, no leftover removed, nothing repaired), so the
    /// storage may be read-only. Reads step over the bad regions; appends are refused.
    pub fn open_read_only(storage: S, options: LogOptions) -> Result<(Self, Recovery), StoreError> {
        Self::open_mode(storage, options, true)
    }

    fn open_mode(
        storage: S,
        options: LogOptions,
        read_only: bool,
    ) -> Result<(Self, Recovery), StoreError> {
        let names = storage.list().map_err(io_err("list", "."))?;
        let mut found: Vec<SegmentId> = Vec::new();
        let mut dir_dirty = false;
        for name in &names {
            if name.ends_with(".tmp") {
                if !read_only {
                    storage.remove(name).map_err(io_err("remove", name))?;
                    dir_dirty = true;
                }
            } else if let Some(seg) = parse_segment_name(name) {
                found.push(seg);
            }
        }
        found.sort_unstable();
        // A rewrite interrupted between its rename and the removal of the old generation
        // leaves two generations: the newer one is complete (it was fsynced before rename).
        let mut chosen: Vec<SegmentId> = Vec::new();
        for seg in found {
            if let Some(prev) = chosen.last_mut()
                && prev.0 == seg.0
            {
                if !read_only {
                    let older = segment_name(prev.0, prev.1, prev.2);
                    storage.remove(&older).map_err(io_err("remove", &older))?;
                    dir_dirty = true;
                }
                *prev = seg;
            } else {
                chosen.push(seg);
            }
        }

        // Segments are scanned one after another, and each is settled as soon as a later
        // segment with a valid frame is known (a corrupt region's loss ends where the next
        // valid frame starts): at most two segments' frame lists are in memory at once, so
        // opening a large backlog costs memory of a segment, not of the store.
        let mut opening = Opening {
            recovery: Recovery::default(),
            segments: Vec::new(),
            to_repair: Vec::new(),
            to_relink: Vec::new(),
            prev_seq: None,
            reported_to: None,
            seen_segment: false,
            dir_dirty,
            read_only,
        };
        let mut pending: VecDeque<(SegmentId, Scan)> = VecDeque::new();
        let mut min_seq = 0;
        for &seg in &chosen {
            let name = segment_name(seg.0, seg.1, seg.2);
            let bytes = read_file(&storage, &name)
                .map_err(io_err("read", &name))?
                .unwrap_or_default();
            let scan = scan(&bytes, min_seq.max(seg.0));
            if let Some(&(seq, _, _)) = scan.frames.last() {
                min_seq = seq + 1;
            }
            pending.push_back((seg, scan));
            while pending.len() >= 2 && pending.iter().skip(1).any(|p| !p.1.frames.is_empty()) {
                if let Some((seg, scan)) = pending.pop_front() {
                    let later_valid = pending.iter().find_map(|p| p.1.frames.first().map(|f| f.0));
                    opening.settle(&storage, seg, &scan, later_valid)?;
                }
            }
        }
        while let Some((seg, scan)) = pending.pop_front() {
            let later_valid = pending.iter().find_map(|p| p.1.frames.first().map(|f| f.0));
            opening.settle(&storage, seg, &scan, later_valid)?;
        }
        let Opening {
            mut recovery,
            segments,
            to_repair,
            to_relink,
            prev_seq,
            dir_dirty,
            ..
        } = opening;
        if dir_dirty {
            storage.sync_dir().map_err(io_err("sync", "."))?;
        }
        recovery.last_seq = prev_seq;
        let log = SegmentedLog {
            storage,
            options,
            segments,
            writers: Vec::new(),
            dir_dirty: false,
            to_repair,
            to_relink,
            read_only,
        };
        Ok((log, recovery))
    }

    /// The storage under the log.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Starts a segment in memory; its file is created at the next sync.
    fn start_segment(&mut self, first: u64) {
        // The link to the records before: at open a missing or shortened predecessor shows.
        let after = self.segments.iter().rev().find_map(|s| s.last);
        self.segments.push(Segment::new(first, 0, after));
        self.writers.push(Writer {
            first,
            file: None,
            buf: Vec::new(),
            written: 0,
            written_records: 0,
            written_last: None,
        });
        self.dir_dirty = true;
    }

    /// Points the segment after `pos` at the records now held before it, renaming its file
    /// (after a rewrite dropped its predecessor's newest records).
    fn relink_after(&mut self, pos: usize) -> Result<(), StoreError> {
        let held_before = self.segments[..=pos].iter().rev().find_map(|s| s.last);
        let Some(next) = self.segments.get(pos + 1) else {
            return Ok(());
        };
        if next.after.is_none() || next.after == held_before {
            return Ok(());
        }
        let old_name = next.name();
        let first = next.first;
        let created = self
            .writers
            .iter()
            .find(|w| w.first == first)
            .is_none_or(|w| w.file.is_some());
        self.segments[pos + 1].after = held_before;
        if created {
            let new_name = self.segments[pos + 1].name();
            self.storage
                .rename(&old_name, &new_name)
                .map_err(io_err("rename", &new_name))?;
        }
        Ok(())
    }

    /// Rewrites the segment starting at `first`, keeping the valid frames `keep` accepts.
    fn rewrite(&mut self, first: u64, keep: &dyn Fn(u64) -> bool) -> Result<(), StoreError> {
        let Some(pos) = self.segments.iter().position(|s| s.first == first) else {
            return Ok(());
        };
        if self.writers.iter().any(|w| w.first == first) {
            return Err(StoreError::Busy { first });
        }
        let old = &self.segments[pos];
        let old_name = old.name();
        let bytes = read_file(&self.storage, &old_name)
            .map_err(io_err("read", &old_name))?
            .unwrap_or_default();
        let scan = scan(&bytes, old.first);
        let mut out = Vec::with_capacity(bytes.len());
        let mut segment = Segment::new(first, old.generation + 1, old.after);
        for &(seq, off, total) in &scan.frames {
            if keep(seq) {
                let (off, total) = (off as usize, total as usize);
                segment.note_frame(seq, out.len() as u64, total as u64);
                out.extend_from_slice(&bytes[off..off + total]);
            }
        }
        let new_name = segment.name();
        let tmp = format!("{new_name}.tmp");
        let mut file = self.storage.create(&tmp).map_err(io_err("create", &tmp))?;
        file.append(&out).map_err(io_err("write", &tmp))?;
        file.sync().map_err(io_err("sync", &tmp))?;
        drop(file);
        self.storage
            .rename(&tmp, &new_name)
            .map_err(io_err("rename", &new_name))?;
        self.storage
            .remove(&old_name)
            .map_err(io_err("remove", &old_name))?;
        self.segments[pos] = segment;
        // Records dropped from the segment's end are accounted for (a gap record): the
        // next segment's link follows, or the next open would report them missing.
        self.relink_after(pos)?;
        self.storage.sync_dir().map_err(io_err("sync", "."))?;
        Ok(())
    }

    /// Drops buffered (not yet written) frames, oldest first, until at least `bytes` are
    /// freed, and calls `shed` with each; returns the bytes freed. Written frames are never
    /// touched.
    fn shed(&mut self, bytes: u64, shed: &mut dyn FnMut(u64, &[u8])) -> u64 {
        let mut freed = 0;
        for writer in &mut self.writers {
            if freed >= bytes {
                break;
            }
            let frames = writer.buffered();
            let mut drop = 0;
            let mut dropped = 0;
            for &(_, total) in &frames {
                if freed + dropped >= bytes {
                    break;
                }
                dropped += total;
                drop += 1;
            }
            if drop == 0 {
                continue;
            }
            let mut pos = 0;
            for &(seq, total) in &frames[..drop] {
                let total = total as usize;
                shed(seq, &writer.buf[pos + FRAME_HEADER..pos + total]);
                pos += total;
            }
            writer.buf.drain(..pos);
            freed += pos as u64;
            if let Some(segment) = self.segments.iter_mut().find(|s| s.first == writer.first) {
                segment.renote_tail(
                    (writer.written, writer.written),
                    (writer.written_records, writer.written_last),
                    &frames[drop..],
                );
            }
        }
        freed
    }
}

impl<S: Storage> Backend for SegmentedLog<S> {
    fn append(&mut self, seq: u64, payload: &[u8]) -> Result<(), StoreError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(StoreError::RecordTooLarge {
                bytes: payload.len(),
            });
        }
        let total = (FRAME_HEADER + payload.len()) as u64;
        let roll = match (self.segments.last(), self.writers.last()) {
            (Some(seg), Some(w)) if w.first == seg.first => {
                seg.records > 0 && seg.len + total > self.options.segment_bytes
            }
            // After open the newest segment is not appended to: a fresh one starts.
            _ => true,
        };
        if self.read_only {
            return Err(io_err("write", "segment")(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the store is open read-only for inspection",
            )));
        }
        if roll {
            self.start_segment(seq);
        }
        let (Some(segment), Some(writer)) = (self.segments.last_mut(), self.writers.last_mut())
        else {
            return Err(StoreError::Busy { first: seq });
        };
        let offset = segment.len;
        encode_frame(seq, payload, &mut writer.buf);
        segment.note_frame(seq, offset, total);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        let n = self.writers.len();
        for writer in &mut self.writers {
            let Some(pos) = self.segments.iter().position(|s| s.first == writer.first) else {
                continue;
            };
            if writer.file.is_none() && self.segments[pos].after.is_some() {
                // Records before it may have been shed from memory since it started: link
                // to what is held, or the next open would report them missing again.
                let held = self.segments[..pos].iter().rev().find_map(|s| s.last);
                self.segments[pos].after = held;
            }
            let segment = &mut self.segments[pos];
            let name = segment.name();
            let file = match &mut writer.file {
                Some(file) => file,
                None => writer.file.insert(
                    self.storage
                        .create(&name)
                        .map_err(io_err("create", &name))?,
                ),
            };
            // The frames stay buffered until they are durable: a failed write or sync is
            // undone and the next sync writes them again, once.
            let failed = match file.append(&writer.buf) {
                Err(e) => Some(io_err("write", &name)(e)),
                Ok(()) => file.sync().err().map(io_err("sync", &name)),
            };
            if let Some(e) = failed {
                if file.truncate(writer.written).is_err() {
                    // The failed bytes stay in the file: step over them from now on, so
                    // reads skip them and the retry lands after them.
                    let len = file
                        .len()
                        .unwrap_or(writer.written + writer.buf.len() as u64);
                    if len > writer.written {
                        let frames = writer.buffered();
                        segment.renote_tail(
                            (writer.written, len),
                            (writer.written_records, writer.written_last),
                            &frames,
                        );
                        writer.written = len;
                    }
                }
                return Err(e);
            }
            writer.written += writer.buf.len() as u64;
            writer.buf.clear();
            writer.written_records = segment.records;
            writer.written_last = segment.last;
        }
        if self.dir_dirty {
            self.storage.sync_dir().map_err(io_err("sync", "."))?;
            self.dir_dirty = false;
        }
        // Only the newest writer stays: older segments are complete.
        if n > 1 {
            self.writers.drain(..n - 1);
        }
        Ok(())
    }

    fn read_from(
        &self,
        seq: u64,
        max: usize,
        out: &mut Vec<(u64, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        let mut taken = 0;
        let mut buf = Vec::new();
        for segment in &self.segments {
            if segment.last.is_none_or(|last| last < seq) {
                continue;
            }
            if self
                .writers
                .iter()
                .any(|w| w.first == segment.first && w.file.is_none())
            {
                // Not written yet: nothing of it (or after it) is readable.
                break;
            }
            let name = segment.name();
            let file = self.storage.open(&name).map_err(io_err("open", &name))?;
            let mut offset = segment
                .index
                .iter()
                .take_while(|&&(s, _)| s <= seq)
                .last()
                .map_or(0, |&(_, off)| off);
            let mut need = 0;
            'segment: while offset < segment.len {
                // Small segments and tails are read in one small read, not a whole block.
                let left = usize::try_from(segment.len - offset).unwrap_or(usize::MAX);
                let want = left.min(READ_BLOCK).max(need);
                buf.resize(want, 0);
                let n = file
                    .read_at(offset, &mut buf)
                    .map_err(io_err("read", &name))?;
                if n == 0 {
                    break;
                }
                let mut pos = 0;
                while pos < n {
                    if !segment.bad.is_empty()
                        && let Some(to) = segment.bad_at(offset + pos as u64)
                    {
                        offset = to;
                        need = 0;
                        continue 'segment;
                    }
                    match decode_frame(&buf[pos..n]) {
                        Frame::Valid { seq: s, len } => {
                            if s >= seq {
                                let start = pos + FRAME_HEADER;
                                out.push((s, buf[start..start + len].to_vec()));
                                taken += 1;
                                if taken >= max {
                                    return Ok(());
                                }
                            }
                            pos += FRAME_HEADER + len;
                        }
                        Frame::Incomplete { needed } => {
                            if pos == 0 && n < want {
                                // The file ends inside a frame: buffered, not yet written.
                                break 'segment;
                            }
                            need = needed;
                            break;
                        }
                        Frame::Bad => {
                            return Err(StoreError::Corrupt {
                                file: name,
                                offset: offset + pos as u64,
                            });
                        }
                    }
                }
                offset += pos as u64;
            }
        }
        Ok(())
    }

    fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    fn chunks(&self) -> Vec<Chunk> {
        self.segments
            .iter()
            .filter_map(|s| {
                Some(Chunk {
                    first: s.first,
                    last: s.last?,
                    bytes: s.len,
                    generation: s.generation,
                })
            })
            .collect()
    }

    fn remove_chunk(&mut self, first: u64) -> Result<(), StoreError> {
        if self.writers.iter().any(|w| w.first == first) {
            return Err(StoreError::Busy { first });
        }
        let Some(pos) = self.segments.iter().position(|s| s.first == first) else {
            return Ok(());
        };
        let name = self.segments[pos].name();
        if self.read_only {
            return Err(io_err("remove", &name)(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the store is open read-only for inspection",
            )));
        }
        self.storage
            .remove(&name)
            .map_err(io_err("remove", &name))?;
        self.storage.sync_dir().map_err(io_err("sync", "."))?;
        self.segments.remove(pos);
        Ok(())
    }

    fn thin_chunk(&mut self, first: u64, drop: &[u64]) -> Result<(), StoreError> {
        self.rewrite(first, &|seq| drop.binary_search(&seq).is_err())
    }

    fn repair(&mut self) -> Result<(), StoreError> {
        for first in std::mem::take(&mut self.to_repair) {
            self.rewrite(first, &|_| true)?;
        }
        let relink = std::mem::take(&mut self.to_relink);
        for first in &relink {
            if let Some(pos) = self.segments.iter().position(|s| s.first == *first)
                && pos > 0
            {
                self.relink_after(pos - 1)?;
            }
        }
        if !relink.is_empty() {
            self.storage.sync_dir().map_err(io_err("sync", "."))?;
        }
        Ok(())
    }

    fn shed_unsynced(&mut self, bytes: u64, shed: &mut dyn FnMut(u64, &[u8])) -> u64 {
        self.shed(bytes, shed)
    }

    fn load_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        read_file(&self.storage, name).map_err(io_err("read", name))
    }

    fn store_meta(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        replace_file(&self.storage, name, bytes).map_err(io_err("replace", name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sim::SimDisk;

    /// The disk's segment files, oldest first.
    fn log_names(disk: &SimDisk) -> Vec<String> {
        let mut names: Vec<String> = disk
            .list()
            .unwrap()
            .into_iter()
            .filter(|n| parse_segment_name(n).is_some())
            .collect();
        names.sort();
        names
    }

    fn frames(seqs: impl IntoIterator<Item = u64>) -> Vec<u8> {
        let mut out = Vec::new();
        for seq in seqs {
            encode_frame(seq, format!("record {seq}").as_bytes(), &mut out);
        }
        out
    }

    #[test]
    fn a_frame_round_trips_and_a_flipped_bit_fails_its_checksum() {
        let mut buf = frames([42]);
        assert_eq!(
            decode_frame(&buf),
            Frame::Valid {
                seq: 42,
                len: "record 42".len()
            }
        );
        let last = buf.len() - 1;
        buf[last] ^= 0x01;
        assert_eq!(decode_frame(&buf), Frame::Bad);
    }

    #[test]
    fn scanning_slides_past_garbage_to_the_next_valid_frame() {
        let mut bytes = frames(0..3);
        let second = FRAME_HEADER + "record 0".len();
        bytes[second + 5] ^= 0xff; // damage record 1's header
        let scan = scan(&bytes, 0);
        let seqs: Vec<u64> = scan.frames.iter().map(|f| f.0).collect();
        assert_eq!(seqs, vec![0, 2]);
        assert_eq!(scan.bad.len(), 1);
        assert_eq!(scan.bad[0].0, second as u64);
    }

    #[test]
    fn scanning_rejects_frames_that_go_backwards() {
        let mut bytes = frames(5..7);
        bytes.extend(frames([3]));
        let scan = scan(&bytes, 0);
        assert_eq!(scan.frames.len(), 2);
        assert_eq!(scan.bad.len(), 1, "a replayed old frame is not accepted");
    }

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(
            parse_segment_name(&segment_name(123, 4, None)),
            Some((123, 4, None))
        );
        assert_eq!(
            parse_segment_name(&segment_name(123, 4, Some(122))),
            Some((123, 4, Some(122)))
        );
        assert_eq!(parse_segment_name("1-2-3-4.seg"), None);
        assert_eq!(parse_segment_name("cursor"), None);
        assert_eq!(parse_segment_name("x-1.seg"), None);
    }

    #[test]
    fn appended_frames_are_readable_after_sync_and_segments_roll_at_their_size() {
        let disk = SimDisk::new();
        let options = LogOptions { segment_bytes: 100 };
        let (mut log, recovery) = SegmentedLog::open(disk.clone(), options).unwrap();
        assert_eq!(recovery, Recovery::default());
        for seq in 0..20 {
            log.append(seq, format!("r{seq}").as_bytes()).unwrap();
        }
        log.sync().unwrap();
        assert!(log.chunks().len() > 3, "{:?}", log.chunks());
        let mut out = Vec::new();
        log.read_from(7, 5, &mut out).unwrap();
        let seqs: Vec<u64> = out.iter().map(|r| r.0).collect();
        assert_eq!(seqs, vec![7, 8, 9, 10, 11]);
        assert_eq!(out[0].1, b"r7");

        drop(log);
        disk.power_cut(9);
        let (log, recovery) = SegmentedLog::open(disk, options).unwrap();
        assert_eq!(recovery.last_seq, Some(19));
        let mut out = Vec::new();
        log.read_from(0, 100, &mut out).unwrap();
        assert_eq!(out.len(), 20);
    }

    #[test]
    fn garbage_in_the_middle_is_reported_with_the_numbers_it_held_and_repaired() {
        let disk = SimDisk::new();
        let (mut log, _) = SegmentedLog::open(disk.clone(), LogOptions::default()).unwrap();
        for seq in 0..10 {
            log.append(seq, b"0123456789").unwrap();
        }
        log.sync().unwrap();
        drop(log);
        let frame = FRAME_HEADER + 10;
        let name = segment_name(0, 0, None);
        disk.overwrite(&name, 3 * frame + 2, &[0xAA; 30]).unwrap();

        let (mut log, recovery) = SegmentedLog::open(disk.clone(), LogOptions::default()).unwrap();
        assert_eq!(recovery.corrupt.len(), 1);
        // Bytes 74..104 damage frames 3 (72..96) and 4 (96..120).
        assert_eq!(recovery.corrupt[0].lost, Some((3, 4)));
        assert_eq!(recovery.last_seq, Some(9));
        log.repair().unwrap();
        let (_, again) = SegmentedLog::open(disk, LogOptions::default()).unwrap();
        assert!(again.corrupt.is_empty(), "repair leaves no bad region");
        assert_eq!(again.last_seq, Some(9));
    }

    #[test]
    fn a_segment_of_nothing_but_garbage_is_kept_until_repair_and_its_numbers_reported() {
        let disk = SimDisk::new();
        let options = LogOptions { segment_bytes: 100 };
        let (mut log, _) = SegmentedLog::open(disk.clone(), options).unwrap();
        for seq in 0..12 {
            log.append(seq, b"0123456789").unwrap();
        }
        log.sync().unwrap();
        let chunks = log.chunks();
        assert!(chunks.len() >= 3, "{chunks:?}");
        drop(log);
        let middle = chunks[1];
        let name = log_names(&disk)[1].clone();
        let len = disk.contents(&name).unwrap().len();
        disk.overwrite(&name, 0, &vec![0x55; len]).unwrap();

        let (mut log, recovery) = SegmentedLog::open(disk.clone(), options).unwrap();
        assert_eq!(recovery.corrupt.len(), 1);
        assert_eq!(recovery.corrupt[0].lost, Some((middle.first, middle.last)));
        assert!(
            disk.contents(&name).is_some(),
            "the damaged file stays until its loss is recorded"
        );
        log.repair().unwrap();
        let (_, again) = SegmentedLog::open(disk, options).unwrap();
        assert!(again.corrupt.is_empty());
    }

    #[test]
    fn a_torn_tail_is_cut_and_not_reported_as_corruption() {
        let disk = SimDisk::new();
        let (mut log, _) = SegmentedLog::open(disk.clone(), LogOptions::default()).unwrap();
        for seq in 0..4 {
            log.append(seq, b"abc").unwrap();
        }
        log.sync().unwrap();
        drop(log);
        let name = segment_name(0, 0, None);
        let mut f = disk.open(&name).unwrap();
        f.append(&frames([4])[..7]).unwrap();
        f.sync().unwrap();
        let (_, recovery) = SegmentedLog::open(disk.clone(), LogOptions::default()).unwrap();
        assert!(recovery.corrupt.is_empty());
        assert_eq!(recovery.torn_bytes, 7);
        assert_eq!(recovery.last_seq, Some(3));
        assert_eq!(
            disk.contents(&name).unwrap().len(),
            4 * (FRAME_HEADER + 3),
            "the tail is cut off the file"
        );
    }
}
