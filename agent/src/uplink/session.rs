//! The sync state of one connection to the hub, with no I/O: it decides which range of the
//! store to send next and what an ack means for the store, and the shell in
//! [`super::link`] does the reading, the encoding and the sockets.
//!
//! Invariants (docs/design.md invariants 1-2, protocol/src/sync/mod.rs):
//! - Nothing is sent before the hub's welcome; the first batch of a connection starts at
//!   the hub's watermark + 1 (0 when it holds nothing of the epoch), so a reconnect resends
//!   from the acked point and never leaves a hole behind at the hub.
//! - Batches of one connection are contiguous: each starts where the previous one ended
//!   (`first == previous last + 1`), and each covers `first..=last` whole (numbers missing
//!   from its payload do not exist in the store: [`plan_batch`] only extends a batch over
//!   numbers the store read proved absent).
//! - At most `window_bytes` of batches are unacked at once: the live lane never waits
//!   behind more than that in kernel and proxy buffers.
//! - An ack only moves forward, and only for this connection's epoch; the store is acked up
//!   to the watermark, never beyond what is durable (the store caps it too).
//! - Nothing goes to the hub that the session's version cannot decode (docs/protocol.md,
//!   "Evolution"): the welcome names a version from the oldest to the one offered, and
//!   [`withhold`] takes out of a batch what that version would refuse; the batch still
//!   covers their numbers, so the stream goes on past them.

use std::collections::VecDeque;
use std::time::Duration;

use aloft_protocol::sync::evolution::record_decodable_by;
use aloft_protocol::sync::{OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION, Welcome};
use aloft_protocol::{Record, StoreEpoch};

/// Why the hub's messages cannot be followed: the connection is dropped and made again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The welcome names another epoch than the hello.
    #[error("welcome for another store epoch")]
    WrongEpoch,
    /// The welcome names a version this agent did not offer or does not speak.
    #[error(
        "hub welcomed protocol version {0}; this agent offered it no such version (it speaks {OLDEST_PROTOCOL_VERSION} to {PROTOCOL_VERSION})"
    )]
    Version(u16),
    /// A second welcome, or an ack before the welcome.
    #[error("unexpected {0} from the hub")]
    Unexpected(&'static str),
}

/// What to read from the store for the next batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRequest {
    /// The first number of the batch.
    pub from: u64,
    /// At most this many records.
    pub max_records: usize,
}

/// The sync state of one connection.
#[derive(Debug)]
pub struct SyncSession {
    epoch: StoreEpoch,
    /// The version the hello offered; the welcome's is the session's, at most this.
    offered: u16,
    /// The session's version, once welcomed.
    version: u16,
    welcomed: bool,
    /// Every number below this is acked by the hub.
    hub_next: u64,
    /// The first number of the next batch.
    next_send: u64,
    /// One past the newest durable record.
    durable_end: u64,
    /// Sent batches not wholly acked: (last number, bytes on the wire).
    in_flight: VecDeque<(u64, u64)>,
    in_flight_bytes: u64,
    /// Bytes of batches the hub acked on this connection.
    acked_bytes: u64,
    window_bytes: u64,
    batch_records: usize,
}

impl SyncSession {
    /// A connection for the store `epoch` whose newest durable record is `durable_end - 1`;
    /// at most `window_bytes` unacked, at most `batch_records` per batch.
    pub fn new(
        epoch: StoreEpoch,
        durable_end: u64,
        window_bytes: u64,
        batch_records: usize,
    ) -> Self {
        SyncSession {
            epoch,
            offered: PROTOCOL_VERSION,
            version: PROTOCOL_VERSION,
            welcomed: false,
            hub_next: 0,
            next_send: 0,
            durable_end,
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
            acked_bytes: 0,
            window_bytes: window_bytes.max(1),
            batch_records: batch_records.max(1),
        }
    }

    /// The hello of this connection offers `version` (one this agent speaks), not
    /// [`PROTOCOL_VERSION`]: a hub refused the newer ones.
    pub fn offering(mut self, version: u16) -> Self {
        self.offered = version.clamp(OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION);
        self.version = self.offered;
        self
    }

    /// The hub's welcome: where this connection resumes, and the session's version (from
    /// the oldest this agent speaks to the one it offered). Returns the number the store
    /// may be acked up to: the hub may hold what the store never heard acked (an ack lost
    /// with the previous connection).
    pub fn welcome(&mut self, welcome: &Welcome) -> Result<Option<u64>, SessionError> {
        if self.welcomed {
            return Err(SessionError::Unexpected("second welcome"));
        }
        if !(OLDEST_PROTOCOL_VERSION..=self.offered).contains(&welcome.protocol_version) {
            return Err(SessionError::Version(welcome.protocol_version));
        }
        if welcome.epoch != self.epoch {
            return Err(SessionError::WrongEpoch);
        }
        self.welcomed = true;
        self.version = welcome.protocol_version;
        self.hub_next = welcome.watermark.map_or(0, |w| w.saturating_add(1));
        self.next_send = self.hub_next;
        Ok(welcome.watermark)
    }

    /// Whether the welcome came.
    pub fn is_welcomed(&self) -> bool {
        self.welcomed
    }

    /// The session's version: what the hub decodes (the offered one until the welcome).
    pub fn version(&self) -> u16 {
        self.version
    }

    /// The store made more records durable.
    pub fn durable(&mut self, durable_end: u64) {
        self.durable_end = self.durable_end.max(durable_end);
    }

    /// What to read next, if a batch may be sent now (welcomed, something unsent, room in
    /// the window).
    pub fn next_read(&self) -> Option<ReadRequest> {
        (self.welcomed
            && self.next_send < self.durable_end
            && self.in_flight_bytes < self.window_bytes)
            .then_some(ReadRequest {
                from: self.next_send,
                max_records: self.batch_records,
            })
    }

    /// A batch covering `first..=last` of `bytes` went out. Out-of-order calls are a bug
    /// of the shell and are ignored (the batch would not be contiguous).
    pub fn sent(&mut self, first: u64, last: u64, bytes: u64) -> bool {
        if first != self.next_send || last < first {
            return false;
        }
        self.next_send = last.saturating_add(1);
        self.in_flight.push_back((last, bytes));
        self.in_flight_bytes = self.in_flight_bytes.saturating_add(bytes);
        true
    }

    /// The hub's ack: the number the store may be acked up to (inclusive), when it moved.
    pub fn ack(&mut self, epoch: StoreEpoch, watermark: u64) -> Result<Option<u64>, SessionError> {
        if !self.welcomed {
            return Err(SessionError::Unexpected("ack before the welcome"));
        }
        if epoch != self.epoch {
            return Err(SessionError::WrongEpoch);
        }
        let next = watermark.saturating_add(1);
        if next <= self.hub_next {
            return Ok(None);
        }
        self.hub_next = next;
        while let Some(&(last, bytes)) = self.in_flight.front() {
            if last >= next {
                break;
            }
            self.in_flight.pop_front();
            self.in_flight_bytes = self.in_flight_bytes.saturating_sub(bytes);
            self.acked_bytes = self.acked_bytes.saturating_add(bytes);
        }
        // The hub may hold more than this connection sent (an earlier one's batches it
        // persisted after that one dropped): do not send those again.
        self.next_send = self.next_send.max(next);
        Ok(Some(watermark))
    }

    /// Bytes of batches wholly acked on this connection.
    pub fn acked_bytes(&self) -> u64 {
        self.acked_bytes
    }

    /// The send window from now on, bytes ([`WindowTuner`]).
    pub fn set_window(&mut self, window_bytes: u64) {
        self.window_bytes = window_bytes.max(1);
    }

    /// The send window, bytes.
    pub fn window(&self) -> u64 {
        self.window_bytes
    }

    /// At most this many records per batch from now on (the shell adapts it to the bytes
    /// per record it measures).
    pub fn set_batch_records(&mut self, batch_records: usize) {
        self.batch_records = batch_records.max(1);
    }

    /// Every number below this is acked by the hub.
    pub fn hub_next(&self) -> u64 {
        self.hub_next
    }

    /// The first number of the next batch.
    pub fn next_send(&self) -> u64 {
        self.next_send
    }

    /// Bytes of batches sent and not acked.
    pub fn in_flight_bytes(&self) -> u64 {
        self.in_flight_bytes
    }
}

/// The range a batch covers, from what a store read of `request` returned (`seqs`, in
/// increasing order) and the store's durable end at that read. `None` when there is
/// nothing to send.
///
/// A full read ends at its last record (what follows is unknown); a short read returned
/// everything durable, so the batch extends to `durable_end - 1`, declaring the numbers
/// after its last record absent. Records outside `from..durable_end` are not expected
/// and make the plan refuse (`None`), so a batch never claims what it does not hold.
pub fn plan_batch(request: ReadRequest, seqs: &[u64], durable_end: u64) -> Option<(u64, u64)> {
    if seqs.first().is_some_and(|&s| s < request.from)
        || seqs.last().is_some_and(|&s| s >= durable_end)
    {
        return None;
    }
    match seqs.last() {
        Some(&last) if seqs.len() >= request.max_records => Some((request.from, last)),
        _ if durable_end > request.from => Some((request.from, durable_end - 1)),
        _ => None,
    }
}

/// Takes out of a batch's records what a hub of `version` cannot decode (a reading of a
/// quantity it has no code for, an extension record, for a version 1 hub); returns how many
/// were taken. The batch still covers their numbers: the hub's watermark passes over them
/// as over any number the batch does not hold, and the store lets them go once acked. A hub
/// that old has no way to keep them, and holding the stream back behind them would fill
/// the store until its full policy dropped readings that hub could have kept.
pub fn withhold(records: &mut Vec<(u64, Record)>, version: u16) -> usize {
    let before = records.len();
    records.retain(|(_, record)| record_decodable_by(record, version));
    before - records.len()
}

/// Sizes the send window from the rate the hub acks at: `window = delivery rate x target`.
///
/// Why: a window derived from the configured budget alone queues minutes of backlog ahead
/// of the live lane whenever the link is slower than the budget (a 1 Mbit/s Starlink
/// moment under a 10 MB/s budget). Measured, the window settles where the queue ahead of
/// the live lane is `target` long: while the queue is short the acks come back quickly,
/// the measured rate is `window / rtt` and the window grows by `target / rtt` per sample;
/// once the link is the bottleneck the measured rate is the link's and the window stops at
/// `link rate x target`, which is still several round trips of data (the link stays busy).
#[derive(Debug, Clone)]
pub struct WindowTuner {
    window: u64,
    min: u64,
    max: u64,
    target: Duration,
    sample_start: Duration,
    acked_at_start: u64,
}

impl WindowTuner {
    /// Starting at `initial` bytes, kept within `min..=max`, aiming at `target` of queue.
    pub fn new(initial: u64, min: u64, max: u64, target: Duration, now: Duration) -> Self {
        let max = max.max(min);
        WindowTuner {
            window: initial.clamp(min, max),
            min,
            max,
            target,
            sample_start: now,
            acked_at_start: 0,
        }
    }

    /// The window now.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// The session has had `acked_total` bytes acked by `now`; returns the window. A
    /// sample lasts at least 200 ms and holds a quarter window of acks (or 1 s passes, then
    /// the link really is that slow: a window sized for a faster link queues the live lane
    /// behind it), so one late ack does not collapse the window.
    pub fn acked(&mut self, acked_total: u64, now: Duration) -> u64 {
        let elapsed = now.saturating_sub(self.sample_start);
        let acked = acked_total.saturating_sub(self.acked_at_start);
        let enough = acked >= self.window / 4 || elapsed >= Duration::from_secs(1);
        if elapsed >= Duration::from_millis(200) && enough {
            let rate = acked as f64 / elapsed.as_secs_f64();
            let window = (rate * self.target.as_secs_f64()) as u64;
            self.window = window.clamp(self.min, self.max);
            self.sample_start = now;
            self.acked_at_start = acked_total;
        }
        self.window
    }
}

/// The upload bandwidth budget: a token bucket in bytes. A message goes out when the bucket
/// is not in debt and then takes its size (so a message larger than the burst still goes,
/// and the debt paces what follows): the long-run rate is `rate` whatever the message
/// sizes.
#[derive(Debug, Clone)]
pub struct Budget {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Duration,
}

impl Budget {
    /// `bytes_per_s` on average, bursts of at most `burst` bytes; `now` is any monotonic
    /// time.
    pub fn new(bytes_per_s: u64, burst: u64, now: Duration) -> Self {
        let burst = burst.max(1) as f64;
        Budget {
            rate: bytes_per_s.max(1) as f64,
            burst,
            tokens: burst,
            at: now,
        }
    }

    fn refill(&mut self, now: Duration) {
        let elapsed = now.saturating_sub(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = self.at.max(now);
    }

    /// How long until a message may go (zero: now).
    pub fn wait(&mut self, now: Duration) -> Duration {
        self.refill(now);
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }

    /// A message of `bytes` went out at `now`.
    pub fn spend(&mut self, bytes: u64, now: Duration) {
        self.refill(now);
        self.tokens -= bytes as f64;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    const EPOCH: StoreEpoch = StoreEpoch([7; 16]);

    fn welcome(watermark: Option<u64>) -> Welcome {
        Welcome {
            protocol_version: PROTOCOL_VERSION,
            epoch: EPOCH,
            watermark,
            server_utc_ns: 0,
        }
    }

    #[test]
    fn nothing_is_sent_before_the_welcome_and_then_from_the_hub_watermark() {
        let mut s = SyncSession::new(EPOCH, 100, 10_000, 10);
        assert_eq!(s.next_read(), None);
        s.welcome(&welcome(Some(41))).expect("welcome");
        assert_eq!(
            s.next_read(),
            Some(ReadRequest {
                from: 42,
                max_records: 10
            })
        );
    }

    #[test]
    fn a_new_epoch_at_the_hub_is_sent_from_its_start() {
        let mut s = SyncSession::new(EPOCH, 5, 10_000, 10);
        s.welcome(&welcome(None)).expect("welcome");
        assert_eq!(s.next_read().map(|r| r.from), Some(0));
    }

    #[test]
    fn a_welcome_of_another_epoch_or_version_is_refused() {
        let mut s = SyncSession::new(EPOCH, 5, 10_000, 10);
        let mut w = welcome(None);
        w.epoch = StoreEpoch([1; 16]);
        assert_eq!(s.welcome(&w), Err(SessionError::WrongEpoch));
        let mut w = welcome(None);
        w.protocol_version = PROTOCOL_VERSION + 1;
        assert_eq!(
            s.welcome(&w),
            Err(SessionError::Version(PROTOCOL_VERSION + 1))
        );
        s.welcome(&welcome(None)).expect("welcome");
        assert!(s.welcome(&welcome(None)).is_err());
    }

    #[test]
    fn a_welcome_names_a_version_from_the_oldest_to_the_one_offered() {
        let mut s = SyncSession::new(EPOCH, 5, 10_000, 10).offering(OLDEST_PROTOCOL_VERSION);
        let mut w = welcome(None);
        // A hub must not welcome more than was offered, nor less than this agent speaks.
        w.protocol_version = OLDEST_PROTOCOL_VERSION + 1;
        assert_eq!(
            s.welcome(&w),
            Err(SessionError::Version(OLDEST_PROTOCOL_VERSION + 1))
        );
        w.protocol_version = OLDEST_PROTOCOL_VERSION - 1;
        assert_eq!(
            s.welcome(&w),
            Err(SessionError::Version(OLDEST_PROTOCOL_VERSION - 1))
        );
        w.protocol_version = OLDEST_PROTOCOL_VERSION;
        s.welcome(&w).expect("welcome");
        assert_eq!(s.version(), OLDEST_PROTOCOL_VERSION);

        let mut s = SyncSession::new(EPOCH, 5, 10_000, 10);
        s.welcome(&welcome(None)).expect("welcome");
        assert_eq!(s.version(), PROTOCOL_VERSION);
    }

    fn reading_of(code: u16) -> Record {
        Record::Reading(aloft_protocol::Reading {
            sensor: aloft_protocol::SensorId(0),
            quantity: aloft_protocol::Quantity::from_code(code),
            time: aloft_protocol::Timestamp::monotonic(1),
            value: 1.0,
            quality: aloft_protocol::Quality::GOOD,
        })
    }

    #[test]
    fn an_older_hubs_welcome_holds_back_what_it_cannot_decode() {
        use aloft_protocol::ExtensionRecord;
        use aloft_protocol::sync::evolution::V1_QUANTITIES;
        let mut s = SyncSession::new(EPOCH, 10, 10_000, 10).offering(1);
        s.welcome(&Welcome {
            protocol_version: 1,
            ..welcome(None)
        })
        .expect("welcome");
        let extension = Record::Extension(ExtensionRecord {
            kind: 4,
            body: vec![1],
        });
        let mut records = vec![
            (0, reading_of(0)),
            (1, reading_of(V1_QUANTITIES)),
            (2, extension.clone()),
            (3, reading_of(V1_QUANTITIES - 1)),
        ];
        let request = s.next_read().expect("a read");
        let seqs: Vec<u64> = records.iter().map(|(n, _)| *n).collect();
        assert_eq!(plan_batch(request, &seqs, 10), Some((0, 9)));
        assert_eq!(withhold(&mut records, s.version()), 2);
        assert_eq!(
            records.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            [0, 3],
            "the batch still covers 0..=9; 1 and 2 are left out"
        );
        // A hub of this version keeps both.
        let mut records = vec![(1, reading_of(V1_QUANTITIES)), (2, extension)];
        assert_eq!(withhold(&mut records, PROTOCOL_VERSION), 0);
        assert_eq!(records.len(), 2);
    }

    #[test]
    fn the_window_stops_batches_until_an_ack_frees_it() {
        let mut s = SyncSession::new(EPOCH, 1000, 300, 10);
        s.welcome(&welcome(None)).expect("welcome");
        assert!(s.sent(0, 9, 200));
        assert!(s.next_read().is_some());
        assert!(s.sent(10, 19, 200));
        assert_eq!(s.next_read(), None, "400 bytes in flight, window 300");
        // An ack inside the second batch frees only the first.
        assert_eq!(s.ack(EPOCH, 12), Ok(Some(12)));
        assert_eq!(s.in_flight_bytes(), 200);
        assert_eq!(s.next_read().map(|r| r.from), Some(20));
    }

    #[test]
    fn acks_only_move_forward_and_only_for_this_epoch() {
        let mut s = SyncSession::new(EPOCH, 1000, 1000, 10);
        assert!(s.ack(EPOCH, 3).is_err(), "before the welcome");
        s.welcome(&welcome(Some(9))).expect("welcome");
        assert_eq!(s.ack(EPOCH, 5), Ok(None));
        assert_eq!(s.ack(EPOCH, 9), Ok(None));
        assert_eq!(
            s.ack(StoreEpoch([2; 16]), 50),
            Err(SessionError::WrongEpoch)
        );
        assert_eq!(s.ack(EPOCH, 20), Ok(Some(20)));
        assert_eq!(s.hub_next(), 21);
        assert_eq!(s.next_send(), 21, "what the hub holds is not sent again");
    }

    #[test]
    fn batches_must_be_contiguous() {
        let mut s = SyncSession::new(EPOCH, 1000, 1000, 10);
        s.welcome(&welcome(Some(9))).expect("welcome");
        assert!(!s.sent(11, 20, 10), "a hole at 10");
        assert!(!s.sent(10, 9, 10), "an empty range");
        assert!(s.sent(10, 20, 10));
    }

    #[test]
    fn a_short_read_covers_the_holes_up_to_the_durable_end() {
        let request = ReadRequest {
            from: 10,
            max_records: 4,
        };
        // Full read: ends at its last record.
        assert_eq!(plan_batch(request, &[10, 11, 14, 15], 100), Some((10, 15)));
        // Short read: 16..=19 do not exist.
        assert_eq!(plan_batch(request, &[12, 15], 20), Some((10, 19)));
        // Everything in range was dropped by the full policy.
        assert_eq!(plan_batch(request, &[], 20), Some((10, 19)));
        // Nothing durable beyond `from`.
        assert_eq!(plan_batch(request, &[], 10), None);
        // A store that answers outside the request is not believed.
        assert_eq!(plan_batch(request, &[9, 12], 20), None);
        assert_eq!(plan_batch(request, &[12, 25], 20), None);
    }

    #[test]
    fn the_budget_paces_to_its_rate_and_lets_one_message_through_in_debt() {
        let t = Duration::from_millis;
        let mut b = Budget::new(1000, 100, t(0));
        assert_eq!(b.wait(t(0)), Duration::ZERO);
        b.spend(600, t(0));
        // 100 - 600 = -500 bytes at 1000 B/s: half a second.
        assert_eq!(b.wait(t(0)), t(500));
        assert_eq!(b.wait(t(250)), t(250));
        assert_eq!(b.wait(t(500)), Duration::ZERO);
        // Idle time refills only up to the burst.
        assert_eq!(b.wait(t(60_000)), Duration::ZERO);
        b.spend(300, t(60_000));
        assert_eq!(b.wait(t(60_000)), t(200));
    }

    #[test]
    fn the_window_grows_while_acks_come_back_fast_and_settles_at_the_link_rate() {
        let ms = Duration::from_millis;
        let mut t = WindowTuner::new(16_000, 16_000, 8_000_000, ms(500), ms(0));
        // A fast link, window-limited: a window acked every 20 ms.
        let mut acked = 0;
        let mut now = ms(0);
        for _ in 0..10 {
            acked += t.window() * 10;
            now += ms(200);
            t.acked(acked, now);
        }
        assert_eq!(t.window(), 8_000_000, "grows to the cap on a fast link");
        // A 125 kB/s link: the window settles at half a second of it.
        for _ in 0..20 {
            acked += 25_000;
            now += ms(200);
            t.acked(acked, now);
        }
        assert_eq!(t.window(), 62_500);
        // No acks for a while is not a sample until 1 s passed, then it is the rate.
        now += ms(500);
        assert_eq!(t.acked(acked, now), 62_500);
        now += ms(500);
        assert_eq!(t.acked(acked, now), 16_000);
    }

    /// One event of the model: the store grows, the agent sends, the hub takes a message,
    /// the link drops.
    #[derive(Debug, Clone)]
    enum Step {
        Commit(u8),
        Send,
        Deliver,
        DeliverAck,
        Drop,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => (1u8..20).prop_map(Step::Commit),
            4 => Just(Step::Send),
            4 => Just(Step::Deliver),
            3 => Just(Step::DeliverAck),
            1 => Just(Step::Drop),
        ]
    }

    /// The store of the model: numbers below `end`, minus `holes` (the full policy),
    /// content derived from the number; acked below `acked`.
    #[derive(Debug)]
    struct ModelStore {
        end: u64,
        holes: Vec<u64>,
        acked: u64,
    }

    impl ModelStore {
        fn content(seq: u64) -> u64 {
            seq.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        }

        fn read(&self, from: u64, max: usize) -> Vec<(u64, u64)> {
            (from..self.end)
                .filter(|s| !self.holes.contains(s))
                .take(max)
                .map(|s| (s, Self::content(s)))
                .collect()
        }
    }

    /// The hub of the model: what it persisted, its contiguous watermark, and what it
    /// received in which order.
    #[derive(Debug, Default)]
    struct ModelHub {
        held: BTreeMap<u64, u64>,
        /// Every number below is held or declared absent.
        next: u64,
    }

    impl ModelHub {
        fn take(&mut self, first: u64, last: u64, entries: &[(u64, u64)]) -> Result<(), String> {
            if first > self.next {
                return Err(format!(
                    "batch {first}..={last} leaves a hole at {}",
                    self.next
                ));
            }
            for &(seq, content) in entries {
                if let Some(old) = self.held.insert(seq, content)
                    && old != content
                {
                    return Err(format!("{seq} sent with different content"));
                }
            }
            self.next = self.next.max(last + 1);
            Ok(())
        }

        fn watermark(&self) -> Option<u64> {
            self.next.checked_sub(1)
        }
    }

    #[derive(Debug)]
    enum Wire {
        Batch(u64, u64, Vec<(u64, u64)>),
    }

    fn connect(store: &mut ModelStore, hub: &ModelHub, window: u64) -> SyncSession {
        let mut s = SyncSession::new(EPOCH, store.end, window, 5);
        if let Some(up_to) = s.welcome(&welcome(hub.watermark())).expect("welcome") {
            store.acked = store.acked.max(up_to + 1);
        }
        s
    }

    fn send(s: &mut SyncSession, store: &ModelStore, up: &mut VecDeque<Wire>) {
        if let Some(req) = s.next_read() {
            let entries = store.read(req.from, req.max_records);
            let seqs: Vec<u64> = entries.iter().map(|(s, _)| *s).collect();
            if let Some((first, last)) = plan_batch(req, &seqs, store.end) {
                let bytes = 10 + 8 * entries.len() as u64;
                assert!(s.sent(first, last, bytes));
                up.push_back(Wire::Batch(first, last, entries));
            }
        }
    }

    proptest! {
        #[test]
        fn whatever_the_interleaving_every_durable_number_reaches_the_hub_once_in_order(
            steps in proptest::collection::vec(step(), 1..200),
            holes in proptest::collection::vec(0u64..300, 0..30),
            window in 20u64..200,
        ) {
            let mut store = ModelStore { end: 0, holes, acked: 0 };
            let mut hub = ModelHub::default();
            let mut session = connect(&mut store, &hub, window);
            let mut up: VecDeque<Wire> = VecDeque::new();
            let mut down: VecDeque<u64> = VecDeque::new();
            let run = |step: &Step,
                           store: &mut ModelStore,
                           hub: &mut ModelHub,
                           session: &mut SyncSession,
                           up: &mut VecDeque<Wire>,
                           down: &mut VecDeque<u64>|
             -> Result<(), TestCaseError> {
                match step {
                    Step::Commit(n) => {
                        store.end += u64::from(*n);
                        session.durable(store.end);
                    }
                    Step::Send => send(session, store, up),
                    Step::Deliver => {
                        if let Some(Wire::Batch(first, last, entries)) = up.pop_front() {
                            hub.take(first, last, &entries).map_err(TestCaseError::fail)?;
                            if let Some(w) = hub.watermark() {
                                down.push_back(w);
                            }
                        }
                    }
                    Step::DeliverAck => {
                        if let Some(w) = down.pop_front()
                            && let Some(up_to) = session.ack(EPOCH, w).map_err(|e| TestCaseError::fail(e.to_string()))?
                        {
                            prop_assert!(up_to < store.end, "acked {up_to} beyond the store");
                            prop_assert!(up_to + 1 >= store.acked, "ack went backwards");
                            store.acked = up_to + 1;
                        }
                    }
                    Step::Drop => {
                        up.clear();
                        down.clear();
                        *session = connect(store, hub, window);
                    }
                }
                Ok(())
            };
            for step in &steps {
                run(step, &mut store, &mut hub, &mut session, &mut up, &mut down)?;
            }
            // The link heals: everything drains.
            for _ in 0..10_000 {
                if store.acked == store.end && up.is_empty() && down.is_empty() {
                    break;
                }
                for step in [Step::Send, Step::Deliver, Step::DeliverAck] {
                    run(&step, &mut store, &mut hub, &mut session, &mut up, &mut down)?;
                }
            }
            prop_assert_eq!(store.acked, store.end, "not everything was acked");
            let expected: Vec<(u64, u64)> = store.read(0, usize::MAX);
            let held: Vec<(u64, u64)> = hub.held.into_iter().collect();
            prop_assert_eq!(held, expected);
        }
    }
}
