//! The stream tables in SQLite: the [`StreamTables`] of `hub.sqlite`.
//!
//! Layout (tables in `db.rs`): `streams` (one row per node and epoch, with its contiguous
//! watermark), `records` (every record's postcard bytes, keyed by stream and number: what
//! `dump` prints; reading records also fill indexed columns: sensor, quantity, UTC, boot),
//! `pending` (ranges received beyond a hole in the watermark), and what
//! turns readings into answers: `sensors` (names from descriptor records), `boots` (the
//! time correlation of each boot) with `boot_marks` and `descriptor_marks` (where in the
//! stream a boot or descriptor record stood).
//!
//! `records_meta`, a partial index of the records that are not readings, lets an
//! export's catalog pass read them without the readings; `export_memos` keeps what an
//! export knew when it started (its unsynced ranges, the node's backlog) so a resumed
//! download regenerates the same bytes.
//!
//! Beyond the contract of [`StreamTables`]: the stored UTC column of a reconstructed
//! reading is from the boot's newest correlation at ingest (readings that arrived before
//! their boot's first correlation are filled in when it arrives); queries, and their
//! time-range filters, use the boot's correlation nearest in monotonic time instead (of
//! correlations at one monotonic time, the first stored counts), as exports do. Each
//! (node, epoch)'s cursor is kept in memory between batches, read and written back under
//! the one writer lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use aloft_protocol::{Quantity, Reading, Record, StoreEpoch, TimeSource};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::db::Db;
use crate::clock::now_utc_ns;
use crate::storage::streams::{
    EXPORT_MEMO_DAYS, EpochBound, HeldStream, MAX_SEQ, ReadingQuery, ReadingRow, RecordKinds,
    StorageError, StreamGap, StreamStatus, StreamTables, Streams,
};

/// What the hub knows of one stream between batches: kept in memory, rebuilt from the
/// database after a restart.
#[derive(Debug, Clone)]
struct StreamCursor {
    id: i64,
    watermark: Option<u64>,
    boot: Option<BootState>,
    sensors: HashMap<u16, i64>,
}

#[derive(Debug, Clone, Copy)]
struct BootState {
    key: i64,
    correlation: Option<(i64, i64)>,
}

/// The stream tables in the hub's SQLite database.
#[derive(Debug)]
pub struct SqliteStreams {
    db: Db,
    cursors: Mutex<HashMap<(String, StoreEpoch), StreamCursor>>,
}

impl Streams {
    /// The stream store on the stream tables of `db`.
    pub fn sqlite(db: Db) -> Streams {
        Streams::new(Arc::new(SqliteStreams::new(db)))
    }
}

const KIND_READING: i64 = 0;
const KIND_GAP: i64 = 1;

fn kind(record: &Record) -> i64 {
    match record {
        Record::Reading(_) => KIND_READING,
        Record::Gap(_) => KIND_GAP,
        Record::Boot(_) => 2,
        Record::TimeCorrelation(_) => 3,
        Record::Descriptor(_) => 4,
        Record::Status(_) => 5,
        _ => 9,
    }
}

/// A quantity's column value: its stable code, known to this build or not (a newer
/// agent's quantity is stored and queried by its code like any other).
pub(crate) fn quantity_code(q: Quantity) -> i64 {
    i64::from(q.code())
}

fn source_code(s: TimeSource) -> i64 {
    match s {
        TimeSource::Monotonic => 0,
        TimeSource::SystemClock => 1,
        TimeSource::Gnss => 2,
        TimeSource::Reconstructed => 3,
        _ => 9,
    }
}

fn source_of(code: i64) -> TimeSource {
    match code {
        1 => TimeSource::SystemClock,
        2 => TimeSource::Gnss,
        3 => TimeSource::Reconstructed,
        _ => TimeSource::Monotonic,
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn epoch_of(bytes: Vec<u8>) -> Result<StoreEpoch, StorageError> {
    let len = bytes.len();
    <[u8; 16]>::try_from(bytes)
        .map(StoreEpoch)
        .map_err(|_| StorageError::BadEpoch(len))
}

impl SqliteStreams {
    /// The stream tables of `db`.
    pub fn new(db: Db) -> SqliteStreams {
        SqliteStreams {
            db,
            cursors: Mutex::new(HashMap::new()),
        }
    }
}

impl StreamTables for SqliteStreams {
    fn watermark(&self, node: &str, epoch: StoreEpoch) -> Result<Option<u64>, StorageError> {
        let conn = self.db.reader()?;
        let w: Option<Option<i64>> = conn
            .query_row(
                "SELECT watermark FROM streams WHERE node = ?1 AND epoch = ?2",
                params![node, epoch.0.as_slice()],
                |row| row.get(0),
            )
            .optional()?;
        Ok(w.flatten().and_then(|w| u64::try_from(w).ok()))
    }

    fn ingest(
        &self,
        node: &str,
        epoch: StoreEpoch,
        first: u64,
        last: u64,
        entries: &[(u64, Record)],
        registered: bool,
    ) -> Result<Option<u64>, StorageError> {
        if let Some(seq) = [first, last]
            .into_iter()
            .chain(entries.iter().map(|(seq, _)| *seq))
            .find(|seq| *seq > MAX_SEQ)
        {
            return Err(StorageError::SeqTooLarge(seq));
        }
        let key = (node.to_owned(), epoch);
        // The cursor is read and written back while the writer lock is held: two
        // sessions of one node (a replaced one still persisting) never work from a stale
        // cursor.
        self.db.write(|conn| {
            let mut cursors = self.cursors.lock().unwrap_or_else(|e| e.into_inner());
            let mut cursor = match cursors.remove(&key) {
                Some(c) => c,
                None => load_cursor(conn, node, epoch)?,
            };
            let tx = conn.transaction()?;
            if registered
                && tx
                    .query_row("SELECT 1 FROM nodes WHERE name = ?1", params![node], |_| {
                        Ok(())
                    })
                    .optional()?
                    .is_none()
            {
                // The cursor was taken out of the map; an untouched one may go back.
                cursors.insert(key, cursor);
                return Err(StorageError::NoSuchNode(node.to_owned()));
            }
            ingest_in(&tx, node, &mut cursor, first, last, entries)?;
            tx.commit()?;
            // Only a committed cursor goes back; after a failure the next batch reloads
            // it from the database.
            let watermark = cursor.watermark;
            cursors.insert(key, cursor);
            Ok(watermark)
        })
    }

    fn dump(
        &self,
        node: &str,
        each: &mut dyn FnMut(StoreEpoch, u64, Record) -> bool,
    ) -> Result<(), StorageError> {
        let conn = self.db.reader()?;
        let mut streams =
            conn.prepare("SELECT id, epoch FROM streams WHERE node = ?1 ORDER BY epoch")?;
        let ids = streams
            .query_map(params![node], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut records =
            conn.prepare("SELECT seq, body FROM records WHERE stream = ?1 ORDER BY seq")?;
        for (id, epoch) in ids {
            let epoch = epoch_of(epoch)?;
            let mut rows = records.query(params![id])?;
            while let Some(row) = rows.next()? {
                let seq: i64 = row.get(0)?;
                let body = row.get_ref(1)?.as_blob()?;
                let record: Record = postcard::from_bytes(body)?;
                if !each(epoch, u64::try_from(seq).unwrap_or(0), record) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn readings(
        &self,
        query: &ReadingQuery,
        each: &mut dyn FnMut(ReadingRow) -> bool,
    ) -> Result<(), StorageError> {
        let conn = self.db.reader()?;
        let mut sql = String::from(
            "SELECT s.epoch, r.seq, n.name, r.body, r.utc_ns, r.source, r.boot \
             FROM streams s JOIN records r ON r.stream = s.id JOIN sensors n ON n.id = r.sensor \
             WHERE s.node = ?1 AND r.kind = 0",
        );
        if query.sensor.is_some() {
            sql.push_str(" AND n.name = ?2");
        }
        if query.quantity.is_some() {
            sql.push_str(" AND r.quantity = ?3");
        }
        // A reconstructed reading's UTC is decided below, from its boot's correlation
        // nearest in monotonic time (the dataset's definition, docs/export.md "Time"), not
        // from the one stored at ingest: such readings pass the SQL filter and are
        // filtered here.
        if query.since_utc_ns.is_some() {
            sql.push_str(" AND (r.source = 3 OR r.utc_ns >= ?4)");
        }
        if query.until_utc_ns.is_some() {
            sql.push_str(" AND (r.source = 3 OR r.utc_ns < ?5)");
        }
        sql.push_str(" ORDER BY s.epoch, r.seq");
        let mut stmt = conn.prepare(&sql)?;
        let mut left = query.limit.unwrap_or(u64::MAX);
        let mut named: Vec<(&str, &dyn rusqlite::ToSql)> = vec![("?1", &query.node)];
        let quantity = query.quantity.map(quantity_code);
        if let Some(sensor) = &query.sensor {
            named.push(("?2", sensor));
        }
        if let Some(q) = &quantity {
            named.push(("?3", q));
        }
        if let Some(s) = &query.since_utc_ns {
            named.push(("?4", s));
        }
        if let Some(u) = &query.until_utc_ns {
            named.push(("?5", u));
        }
        let mut corr_stmt =
            conn.prepare("SELECT mono_ns, utc_ns FROM correlations WHERE boot = ?1")?;
        let mut correlations: HashMap<i64, BTreeMap<i64, i64>> = HashMap::new();
        let mut rows = stmt.query(named.as_slice())?;
        while let Some(row) = rows.next()? {
            let Record::Reading(r) = postcard::from_bytes(row.get_ref(3)?.as_blob()?)? else {
                continue;
            };
            let source = source_of(row.get(5)?);
            let mut utc_ns: Option<i64> = row.get(4)?;
            if source == TimeSource::Reconstructed
                && let Some(boot) = row.get::<_, Option<i64>>(6)?
            {
                // The nearest correlation of the reading's boot, as docs/protocol.md
                // says; the stored UTC (from the newest one at ingest) serves the filters.
                let points = match correlations.entry(boot) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => e.insert(
                        corr_stmt
                            .query_map(params![boot], |row| Ok((row.get(0)?, row.get(1)?)))?
                            .collect::<Result<BTreeMap<i64, i64>, _>>()?,
                    ),
                };
                if let Some(utc) = nearest_utc(points, to_i64(r.time.mono_ns)) {
                    utc_ns = Some(utc);
                }
            }
            if source == TimeSource::Reconstructed
                && (query.since_utc_ns.is_some() || query.until_utc_ns.is_some())
                && !utc_ns.is_some_and(|utc| {
                    query.since_utc_ns.is_none_or(|s| utc >= s)
                        && query.until_utc_ns.is_none_or(|u| utc < u)
                })
            {
                continue;
            }
            if left == 0 {
                break;
            }
            left -= 1;
            let reading = ReadingRow {
                epoch: epoch_of(row.get(0)?)?,
                seq: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                sensor: row.get(2)?,
                quantity: r.quantity,
                value: r.value,
                mono_ns: r.time.mono_ns,
                utc_ns,
                source,
                quality: r.quality,
            };
            if !each(reading) {
                break;
            }
        }
        Ok(())
    }

    fn gaps(&self, node: &str) -> Result<Vec<StreamGap>, StorageError> {
        let conn = self.db.reader()?;
        let mut out = Vec::new();
        let mut streams = conn
            .prepare("SELECT id, epoch, watermark FROM streams WHERE node = ?1 ORDER BY epoch")?;
        let list = streams
            .query_map(params![node], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, Vec<u8>>(1)?,
                    row.get::<_, Option<i64>>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut gaps = conn
            .prepare("SELECT seq, body FROM records WHERE stream = ?1 AND kind = 1 ORDER BY seq")?;
        let mut pending =
            conn.prepare("SELECT first, last FROM pending WHERE stream = ?1 ORDER BY first")?;
        for (id, epoch, watermark) in list {
            let epoch = epoch_of(epoch)?;
            let mut rows = gaps.query(params![id])?;
            while let Some(row) = rows.next()? {
                let seq = u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0);
                if let Record::Gap(gap) = postcard::from_bytes(row.get_ref(1)?.as_blob()?)? {
                    out.push(StreamGap::Recorded { epoch, seq, gap });
                }
            }
            let mut next = watermark.map_or(0, |w| w.saturating_add(1));
            let ranges = pending
                .query_map(params![id], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            for (first, last) in ranges {
                if first > next {
                    out.push(StreamGap::Unsynced {
                        epoch,
                        first: u64::try_from(next).unwrap_or(0),
                        last: u64::try_from(first - 1).unwrap_or(0),
                    });
                }
                next = next.max(last.saturating_add(1));
            }
        }
        Ok(out)
    }

    fn streams(&self, node: &str) -> Result<Vec<StreamStatus>, StorageError> {
        let conn = self.db.reader()?;
        let mut stmt = conn.prepare(
            "SELECT epoch, watermark, created_utc_ns FROM streams WHERE node = ?1 ORDER BY created_utc_ns, epoch",
        )?;
        let rows = stmt
            .query_map(params![node], |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, Option<i64>>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(epoch, watermark, created)| {
                Ok(StreamStatus {
                    epoch: epoch_of(epoch)?,
                    watermark: watermark.and_then(|w| u64::try_from(w).ok()),
                    created_utc_ns: created,
                })
            })
            .collect()
    }

    fn held(&self, node: &str) -> Result<Vec<HeldStream>, StorageError> {
        let conn = self.db.reader()?;
        let mut stmt = conn.prepare(
            "SELECT s.epoch, s.watermark, (SELECT max(seq) FROM records r WHERE r.stream = s.id) \
             FROM streams s WHERE s.node = ?1 ORDER BY s.epoch",
        )?;
        let rows = stmt
            .query_map(params![node], |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, Option<i64>>(1)?,
                    row.get::<_, Option<i64>>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(epoch, watermark, newest)| {
                Ok(HeldStream {
                    epoch: epoch_of(epoch)?,
                    watermark: watermark.and_then(|w| u64::try_from(w).ok()),
                    newest: newest.and_then(|n| u64::try_from(n).ok()),
                })
            })
            .collect()
    }

    fn dump_bounded(
        &self,
        node: &str,
        bounds: &[EpochBound],
        kinds: RecordKinds,
        each: &mut dyn FnMut(StoreEpoch, u64, Record) -> bool,
    ) -> Result<(), StorageError> {
        let conn = self.db.reader()?;
        let mut ids = SqliteStreams::bounded_ids(&conn, node, bounds)?;
        // Epochs in ascending byte order, as every dump gives them.
        ids.sort_by_key(|(_, b)| b.epoch);
        // `kind <> 0` is the condition of the partial index `records_meta`: the catalog's
        // pass reads the few records that are not readings without touching the readings.
        let sql = match kinds {
            RecordKinds::All => {
                "SELECT seq, body FROM records WHERE stream = ?1 AND seq <= ?2 ORDER BY seq"
            }
            RecordKinds::Meta => {
                "SELECT seq, body FROM records INDEXED BY records_meta \
                 WHERE stream = ?1 AND seq <= ?2 AND kind <> 0 ORDER BY seq"
            }
        };
        let mut records = conn.prepare(sql)?;
        for (id, bound) in ids {
            let mut rows = records.query(params![id, to_i64(bound.upto)])?;
            while let Some(row) = rows.next()? {
                let seq = u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0);
                if !bound.holes.is_empty() && !bound.holds(seq) {
                    continue;
                }
                let record: Record = postcard::from_bytes(row.get_ref(1)?.as_blob()?)?;
                if !each(bound.epoch, seq, record) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn count_bounded(&self, node: &str, bounds: &[EpochBound]) -> Result<u64, StorageError> {
        let conn = self.db.reader()?;
        let ids = SqliteStreams::bounded_ids(&conn, node, bounds)?;
        let mut count = conn.prepare(
            "SELECT count(*) FROM records WHERE stream = ?1 AND seq >= ?2 AND seq <= ?3",
        )?;
        let mut total: u64 = 0;
        for (id, bound) in ids {
            let mut n: i64 =
                count.query_row(params![id, 0i64, to_i64(bound.upto)], |r| r.get(0))?;
            for &(first, last) in &bound.holes {
                if first > bound.upto {
                    continue;
                }
                let last = last.min(bound.upto);
                let inside: i64 =
                    count.query_row(params![id, to_i64(first), to_i64(last)], |r| r.get(0))?;
                n -= inside;
            }
            total += u64::try_from(n).unwrap_or(0);
        }
        Ok(total)
    }

    fn export_memo(
        &self,
        node: &str,
        created_utc_ns: i64,
        upto: &str,
        memo: &str,
    ) -> Result<String, StorageError> {
        let now = now_utc_ns();
        self.db.write(|conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "DELETE FROM export_memos WHERE kept_utc_ns < ?1",
                params![now.saturating_sub(EXPORT_MEMO_DAYS * 86_400 * 1_000_000_000)],
            )?;
            tx.execute(
                "INSERT OR IGNORE INTO export_memos(node, created_utc_ns, upto, memo, kept_utc_ns) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![node, created_utc_ns, upto, memo, now],
            )?;
            let kept: String = tx.query_row(
                "SELECT memo FROM export_memos WHERE node = ?1 AND created_utc_ns = ?2 AND upto = ?3",
                params![node, created_utc_ns, upto],
                |row| row.get(0),
            )?;
            tx.commit()?;
            Ok(kept)
        })
    }
}

impl SqliteStreams {
    /// The (id, epoch) of each stream of `node` named in `bounds`, in `bounds`' order.
    fn bounded_ids<'b>(
        conn: &Connection,
        node: &str,
        bounds: &'b [EpochBound],
    ) -> Result<Vec<(i64, &'b EpochBound)>, StorageError> {
        let mut stmt = conn.prepare("SELECT id FROM streams WHERE node = ?1 AND epoch = ?2")?;
        let mut out = Vec::with_capacity(bounds.len());
        for bound in bounds {
            let id: Option<i64> = stmt
                .query_row(params![node, bound.epoch.0.as_slice()], |row| row.get(0))
                .optional()?;
            if let Some(id) = id {
                out.push((id, bound));
            }
        }
        Ok(out)
    }
}

fn load_cursor(
    conn: &Connection,
    node: &str,
    epoch: StoreEpoch,
) -> Result<StreamCursor, StorageError> {
    let found: Option<(i64, Option<i64>)> = conn
        .query_row(
            "SELECT id, watermark FROM streams WHERE node = ?1 AND epoch = ?2",
            params![node, epoch.0.as_slice()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let (id, watermark) = match found {
        Some(f) => f,
        None => {
            conn.execute(
                "INSERT INTO streams(node, epoch, watermark, created_utc_ns) VALUES (?1, ?2, NULL, ?3)",
                params![node, epoch.0.as_slice(), now_utc_ns()],
            )?;
            (conn.last_insert_rowid(), None)
        }
    };
    let boot: Option<(i64, Option<i64>, Option<i64>)> = conn
        .query_row(
            "SELECT b.id, b.corr_mono_ns, b.corr_utc_ns FROM boot_marks m JOIN boots b ON b.id = m.boot \
             WHERE m.stream = ?1 ORDER BY m.seq DESC LIMIT 1",
            params![id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    let mut sensors = HashMap::new();
    let mut stmt = conn
        .prepare("SELECT sensor_id, sensor FROM descriptor_marks WHERE stream = ?1 ORDER BY seq")?;
    let rows = stmt.query_map(params![id], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
    })?;
    for row in rows {
        let (sensor_id, sensor) = row?;
        if let Ok(sensor_id) = u16::try_from(sensor_id) {
            sensors.insert(sensor_id, sensor);
        }
    }
    Ok(StreamCursor {
        id,
        watermark: watermark.and_then(|w| u64::try_from(w).ok()),
        boot: boot.map(|(key, mono, utc)| BootState {
            key,
            correlation: mono.zip(utc),
        }),
        sensors,
    })
}

fn sensor_key(tx: &Transaction<'_>, node: &str, name: &str) -> Result<i64, rusqlite::Error> {
    tx.prepare_cached("INSERT OR IGNORE INTO sensors(node, name) VALUES (?1, ?2)")?
        .execute(params![node, name])?;
    tx.prepare_cached("SELECT id FROM sensors WHERE node = ?1 AND name = ?2")?
        .query_row(params![node, name], |row| row.get(0))
}

fn boot_key(
    tx: &Transaction<'_>,
    node: &str,
    boot: &[u8],
) -> Result<(i64, Option<(i64, i64)>), rusqlite::Error> {
    tx.prepare_cached("INSERT OR IGNORE INTO boots(node, boot) VALUES (?1, ?2)")?
        .execute(params![node, boot])?;
    tx.prepare_cached(
        "SELECT id, corr_mono_ns, corr_utc_ns FROM boots WHERE node = ?1 AND boot = ?2",
    )?
    .query_row(params![node, boot], |row| {
        let mono: Option<i64> = row.get(1)?;
        let utc: Option<i64> = row.get(2)?;
        Ok((row.get(0)?, mono.zip(utc)))
    })
}

fn ingest_in(
    tx: &Transaction<'_>,
    node: &str,
    cursor: &mut StreamCursor,
    first: u64,
    last: u64,
    entries: &[(u64, Record)],
) -> Result<(), StorageError> {
    let mut insert_record = tx.prepare_cached(
        "INSERT OR IGNORE INTO records(stream, seq, kind, body, sensor, quantity, mono_ns, boot, utc_ns, source) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    let mut body = Vec::with_capacity(64);
    for (seq, record) in entries {
        if cursor.watermark.is_some_and(|w| *seq <= w) {
            continue;
        }
        body.clear();
        body = postcard::to_extend(record, body)?;
        let added = match record {
            Record::Reading(r) => {
                let sensor = match cursor.sensors.get(&r.sensor.0) {
                    Some(k) => *k,
                    None => {
                        let k = sensor_key(tx, node, &format!("sensor-{}", r.sensor.0))?;
                        cursor.sensors.insert(r.sensor.0, k);
                        k
                    }
                };
                let (utc, source) = reading_utc(r, cursor.boot);
                insert_record.execute(params![
                    cursor.id,
                    to_i64(*seq),
                    KIND_READING,
                    body,
                    sensor,
                    quantity_code(r.quantity),
                    to_i64(r.time.mono_ns),
                    cursor.boot.map(|b| b.key),
                    utc,
                    source_code(source),
                ])?
            }
            other => insert_record.execute(params![
                cursor.id,
                to_i64(*seq),
                kind(other),
                body,
                None::<i64>,
                None::<i64>,
                None::<i64>,
                None::<i64>,
                None::<i64>,
                None::<i64>,
            ])?,
        };
        if added == 0 {
            continue;
        }
        match record {
            Record::Boot(b) => {
                let (key, correlation) = boot_key(tx, node, &b.boot_id.0)?;
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO boot_marks(stream, seq, boot) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![cursor.id, to_i64(*seq), key])?;
                cursor.boot = Some(BootState { key, correlation });
            }
            Record::TimeCorrelation(c) => {
                let (key, before) = boot_key(tx, node, &c.boot_id.0)?;
                let correlation = (to_i64(c.mono_ns), c.utc_ns);
                tx.prepare_cached(
                    "UPDATE boots SET corr_mono_ns = ?2, corr_utc_ns = ?3 WHERE id = ?1",
                )?
                .execute(params![key, correlation.0, correlation.1])?;
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO correlations(boot, mono_ns, utc_ns) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![key, correlation.0, correlation.1])?;
                if before.is_none() {
                    // Readings of this boot that came before its first correlation.
                    tx.prepare_cached(
                        "UPDATE records SET utc_ns = CAST(?2 + (mono_ns - ?3) AS INTEGER), source = 3 \
                         WHERE kind = 0 AND boot = ?1 AND utc_ns IS NULL",
                    )?
                    .execute(params![key, correlation.1, correlation.0])?;
                }
                if let Some(boot) = cursor.boot.as_mut().filter(|b| b.key == key) {
                    boot.correlation = Some(correlation);
                }
            }
            Record::Descriptor(d) => {
                let key = sensor_key(tx, node, &d.name)?;
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO descriptor_marks(stream, seq, sensor_id, sensor) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![cursor.id, to_i64(*seq), i64::from(d.sensor.0), key])?;
                cursor.sensors.insert(d.sensor.0, key);
            }
            _ => {}
        }
    }
    advance_watermark(tx, cursor, first, last)?;
    Ok(())
}

/// UTC of monotonic time `mono` by the correlation nearest to it.
fn nearest_utc(points: &BTreeMap<i64, i64>, mono: i64) -> Option<i64> {
    let before = points.range(..=mono).next_back();
    let after = points.range(mono..).next();
    let (c_mono, c_utc) = match (before, after) {
        (Some(b), Some(a)) => {
            if mono.saturating_sub(*b.0) <= a.0.saturating_sub(mono) {
                b
            } else {
                a
            }
        }
        (Some(p), None) | (None, Some(p)) => p,
        (None, None) => return None,
    };
    Some(c_utc.saturating_add(mono.saturating_sub(*c_mono)))
}

fn reading_utc(r: &Reading, boot: Option<BootState>) -> (Option<i64>, TimeSource) {
    if let Some(utc) = r.time.utc_ns {
        return (Some(utc), r.time.source);
    }
    match boot.and_then(|b| b.correlation) {
        Some((mono, utc)) => (
            Some(utc.saturating_add(to_i64(r.time.mono_ns).saturating_sub(mono))),
            TimeSource::Reconstructed,
        ),
        None => (None, TimeSource::Monotonic),
    }
}

fn advance_watermark(
    tx: &Transaction<'_>,
    cursor: &mut StreamCursor,
    first: u64,
    last: u64,
) -> Result<(), StorageError> {
    let contiguous = match cursor.watermark {
        None => true,
        Some(w) => first <= w.saturating_add(1),
    };
    if !contiguous {
        tx.prepare_cached(
            "INSERT INTO pending(stream, first, last) VALUES (?1, ?2, ?3) \
             ON CONFLICT(stream, first) DO UPDATE SET last = max(last, excluded.last)",
        )?
        .execute(params![cursor.id, to_i64(first), to_i64(last)])?;
        return Ok(());
    }
    let mut watermark = cursor.watermark.map_or(last, |w| w.max(last));
    // Ranges received earlier beyond a hole may now join the prefix.
    let ranges: Vec<(i64, i64)> = tx
        .prepare_cached("SELECT first, last FROM pending WHERE stream = ?1 ORDER BY first")?
        .query_map(params![cursor.id], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (p_first, p_last) in ranges {
        let (p_first, p_last) = (
            u64::try_from(p_first).unwrap_or(0),
            u64::try_from(p_last).unwrap_or(0),
        );
        if p_first > watermark.saturating_add(1) {
            break;
        }
        watermark = watermark.max(p_last);
        tx.prepare_cached("DELETE FROM pending WHERE stream = ?1 AND first = ?2")?
            .execute(params![cursor.id, to_i64(p_first)])?;
    }
    tx.prepare_cached("UPDATE streams SET watermark = ?2 WHERE id = ?1")?
        .execute(params![cursor.id, to_i64(watermark)])?;
    cursor.watermark = Some(watermark);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aloft_protocol::{Quality, SensorId, Timestamp};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn reading(seq: u64, copy: u32) -> Record {
        Record::Reading(Reading {
            sensor: SensorId(1),
            quantity: Quantity::AirPressure,
            time: Timestamp::monotonic(seq),
            value: f64::from(copy),
            quality: Quality::GOOD,
        })
    }

    /// Ranges partitioning `0..n` with cut points, and which numbers do not exist.
    fn scenario() -> impl Strategy<Value = (Vec<(u64, u64)>, Vec<bool>, Vec<usize>)> {
        (2u64..60).prop_flat_map(|n| {
            (
                proptest::collection::btree_set(1..n, 0..8),
                proptest::collection::vec(proptest::bool::weighted(0.8), n as usize),
                proptest::collection::vec(0usize..64, 1..24),
            )
                .prop_map(move |(cuts, exists, order)| {
                    let mut ranges = Vec::new();
                    let mut start = 0;
                    for cut in cuts.into_iter().chain([n]) {
                        ranges.push((start, cut - 1));
                        start = cut;
                    }
                    (ranges, exists, order)
                })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Whatever order batches arrive in, resent or not (the first always being the
        /// oldest, as the agent starts there), the watermark is the end of the covered
        /// prefix, every existing number is stored once with its first content, and
        /// nothing else is stored.
        #[test]
        fn the_watermark_is_the_covered_prefix_and_each_number_is_stored_once(
            (ranges, exists, order) in scenario()
        ) {
            // tmpfs where there is one: this is about logic, not fsync (one per batch).
            let shm = std::path::Path::new("/dev/shm");
            let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
            let streams = Streams::sqlite(Db::open(dir.path()).unwrap());
            let epoch = StoreEpoch([1; 16]);
            let deliveries: Vec<usize> = std::iter::once(0)
                .chain(order.into_iter().map(|i| i % ranges.len()))
                .collect();
            let mut covered = vec![false; exists.len()];
            let mut first_copy: BTreeMap<u64, u32> = BTreeMap::new();
            for (copy, &index) in deliveries.iter().enumerate() {
                let (first, last) = ranges[index];
                let entries: Vec<_> = (first..=last)
                    .filter(|&s| exists[s as usize])
                    .map(|s| (s, reading(s, copy as u32)))
                    .collect();
                let watermark = streams.ingest("glider", epoch, first, last, &entries).unwrap();
                for s in first..=last {
                    covered[s as usize] = true;
                    if exists[s as usize] {
                        first_copy.entry(s).or_insert(copy as u32);
                    }
                }
                let prefix = covered.iter().take_while(|c| **c).count() as u64;
                prop_assert_eq!(watermark, Some(prefix - 1));
                prop_assert_eq!(streams.watermark("glider", epoch).unwrap(), Some(prefix - 1));
            }
            let mut stored = BTreeMap::new();
            streams
                .dump("glider", |_, seq, record| {
                    if let Record::Reading(r) = record {
                        stored.insert(seq, r.value as u32);
                    }
                    true
                })
                .unwrap();
            prop_assert_eq!(stored, first_copy);
        }

        /// Around 2^63 a batch is stored exactly when all its numbers fit the store's
        /// signed integers; one reaching past is refused whole and nothing is stored or
        /// acknowledged (never clamped to the largest integer).
        #[test]
        fn numbers_at_or_above_2_63_are_refused_whole_and_below_stored_as_they_are(
            first in prop_oneof![
                (MAX_SEQ - 8)..=(MAX_SEQ + 8),
                (u64::MAX - 8)..=u64::MAX,
            ],
            len in 0u64..8,
        ) {
            let shm = std::path::Path::new("/dev/shm");
            let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
            let streams = Streams::sqlite(Db::open(dir.path()).unwrap());
            let epoch = StoreEpoch([2; 16]);
            let last = first.saturating_add(len);
            let entries: Vec<_> = (first..=last).map(|s| (s, reading(s, 1))).collect();
            let result = streams.ingest("glider", epoch, first, last, &entries);
            let mut stored = Vec::new();
            streams.dump("glider", |_, seq, _| { stored.push(seq); true }).unwrap();
            if last <= MAX_SEQ {
                prop_assert_eq!(result.unwrap(), Some(last));
                prop_assert_eq!(stored, (first..=last).collect::<Vec<_>>());
            } else {
                let refused = matches!(result, Err(StorageError::SeqTooLarge(seq)) if seq > MAX_SEQ);
                prop_assert!(refused);
                prop_assert!(stored.is_empty());
                prop_assert_eq!(streams.watermark("glider", epoch).unwrap(), None);
            }
        }
    }

    /// A reading stored with UTC from its boot's newest correlation at ingest is found by
    /// time filters at the UTC queries show for it: from the correlation nearest in
    /// monotonic time (the dataset's definition), whichever arrived first.
    #[test]
    fn time_filters_use_the_nearest_correlation_not_the_one_stored_at_ingest() {
        use aloft_protocol::{Boot, BootId, TimeCorrelation};
        let dir = tempfile::tempdir().unwrap();
        let streams = Streams::sqlite(Db::open(dir.path()).unwrap());
        let s = 1_000_000_000i64;
        let boot = BootId([4; 16]);
        let corr = |mono_s: i64, utc_s: i64| {
            Record::TimeCorrelation(TimeCorrelation {
                boot_id: boot,
                mono_ns: (mono_s * s) as u64,
                utc_ns: utc_s * s,
                source: TimeSource::Gnss,
                uncertainty_ns: None,
            })
        };
        let entries = vec![
            (
                0,
                Record::Boot(Boot {
                    boot_id: boot,
                    mono_ns: 0,
                    utc_ns: None,
                    agent_version: "t".to_owned(),
                }),
            ),
            (1, corr(1_000, 10_000)),
            // Stored at 11 000 s from the only correlation then; nearest is the next one.
            (2, reading(1_900 * s as u64, 2)),
            (3, corr(2_000, 20_000)),
        ];
        streams
            .ingest("glider", StoreEpoch([4; 16]), 0, 3, &entries)
            .unwrap();
        let found = |since: Option<i64>, until: Option<i64>| {
            let mut utc = Vec::new();
            streams
                .readings(
                    &ReadingQuery {
                        node: "glider".to_owned(),
                        since_utc_ns: since.map(|t| t * s),
                        until_utc_ns: until.map(|t| t * s),
                        ..ReadingQuery::default()
                    },
                    |row| {
                        utc.push(row.utc_ns.map(|u| u / s));
                        true
                    },
                )
                .unwrap();
            utc
        };
        assert_eq!(found(None, None), [Some(19_900)]);
        assert_eq!(found(Some(19_000), None), [Some(19_900)]);
        assert!(found(None, Some(12_000)).is_empty());
        assert!(found(Some(19_901), None).is_empty());
        assert_eq!(found(Some(10_000), Some(19_901)), [Some(19_900)]);
    }

    /// A bounded read yields the records at or below the bound less the holes, of the
    /// kinds asked for, across epochs in byte order; records arriving later inside the
    /// bound's holes or beyond it stay out, and the count agrees with the read.
    #[test]
    fn a_bounded_read_holds_to_its_bound_while_records_arrive() {
        use crate::storage::streams::{EpochBound, RecordKinds};
        let dir = tempfile::tempdir().unwrap();
        let streams = Streams::sqlite(Db::open(dir.path()).unwrap());
        let gap = |n: u64| {
            Record::Gap(aloft_protocol::Gap {
                reason: aloft_protocol::GapReason::Crash,
                covers: None,
                readings: Some(n),
                sensor: None,
                span: None,
            })
        };
        let (a, b) = (StoreEpoch([9; 16]), StoreEpoch([1; 16]));
        let entries = |range: std::ops::RangeInclusive<u64>| -> Vec<(u64, Record)> {
            range
                .map(|s| (s, if s % 5 == 0 { gap(s) } else { reading(s, 1) }))
                .collect()
        };
        streams.ingest("glider", a, 0, 9, &entries(0..=9)).unwrap();
        // 10..=14 not synced yet; 15..=19 arrived beyond the hole.
        streams
            .ingest("glider", a, 15, 19, &entries(15..=19))
            .unwrap();
        streams.ingest("glider", b, 0, 3, &entries(0..=3)).unwrap();
        let held = streams.held("glider").unwrap();
        assert_eq!(
            held.iter()
                .map(|h| (h.epoch, h.watermark, h.newest))
                .collect::<Vec<_>>(),
            [(b, Some(3), Some(3)), (a, Some(9), Some(19))]
        );
        let bounds = [
            EpochBound {
                epoch: a,
                upto: 17,
                holes: vec![(10, 14)],
            },
            EpochBound {
                epoch: b,
                upto: 3,
                holes: vec![],
            },
        ];
        // More arrives: the hole is filled, and beyond every bound.
        streams
            .ingest("glider", a, 10, 25, &entries(10..=25))
            .unwrap();
        streams.ingest("glider", b, 4, 6, &entries(4..=6)).unwrap();
        let read = |kinds| {
            let mut seen = Vec::new();
            streams
                .dump_bounded("glider", &bounds, kinds, |e, s, _| {
                    seen.push((e.0[0], s));
                    true
                })
                .unwrap();
            seen
        };
        let all = read(RecordKinds::All);
        let expected: Vec<(u8, u64)> = (0..=3)
            .map(|s| (1, s))
            .chain((0..=9).chain(15..=17).map(|s| (9, s)))
            .collect();
        assert_eq!(all, expected);
        assert_eq!(
            read(RecordKinds::Meta),
            [(1, 0), (9, 0), (9, 5), (9, 15)],
            "only the gap records"
        );
        assert_eq!(
            streams.count_bounded("glider", &bounds).unwrap(),
            expected.len() as u64
        );
    }

    #[test]
    fn a_registered_ingest_refuses_a_node_that_does_not_exist() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let streams = Streams::sqlite(db.clone());
        let epoch = StoreEpoch([3; 16]);
        let entries = [(0, reading(0, 1))];
        assert!(matches!(
            streams.ingest_registered("ghost", epoch, 0, 0, &entries),
            Err(StorageError::NoSuchNode(_))
        ));
        let mut stored = 0;
        streams
            .dump("ghost", |_, _, _| {
                stored += 1;
                true
            })
            .unwrap();
        assert_eq!(stored, 0);
        db.write(|conn| {
            conn.execute(
                "INSERT INTO nodes(name, created_utc_ns) VALUES ('ghost', 0)",
                [],
            )
        })
        .unwrap();
        assert_eq!(
            streams
                .ingest_registered("ghost", epoch, 0, 0, &entries)
                .unwrap(),
            Some(0)
        );
    }
}
