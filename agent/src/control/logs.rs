//! The newest agent log lines, kept in memory for `aloftctl logs node|sensor NAME`.
//!
//! [`LogRingLayer`] is a tracing layer installed next to the fmt layer: it sees the same
//! (filtered) events and keeps the newest `capacity` of them as [`LogLine`]s, with the
//! event's `sensor` field apart so the hub can ask for one sensor's lines. [`LogRing`]
//! reads them for a [`Downlink::FetchLogs`](aloft_protocol::sync::Downlink::FetchLogs).
//!
//! Invariants: memory is bounded (at most `capacity` lines of at most [`MAX_LINE_BYTES`]
//! each); an answer stays well under the protocol's message cap ([`MAX_BATCH_BYTES`]),
//! dropping the oldest lines first; recording never blocks on anything but the ring's own
//! short lock (never the timekeeper's, which logs under its own lock).

use std::collections::VecDeque;
use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, MutexGuard};

use aloft_protocol::Timestamp;
use aloft_protocol::sync::{LogBatch, LogLine, MAX_MESSAGE_BYTES};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use crate::clock::system_clock_stamp;

/// A line longer than this is cut (a runaway debug dump must not fill the ring's memory).
pub const MAX_LINE_BYTES: usize = 512;

/// The text of one answer stays below this, half the protocol's message cap.
pub const MAX_BATCH_BYTES: usize = MAX_MESSAGE_BYTES / 2;

/// Per line, the bytes a batch spends beside the text (time, level, lengths), counted
/// generously so the cap holds.
const LINE_OVERHEAD_BYTES: usize = 40;

#[derive(Debug)]
struct Ring {
    lines: VecDeque<LogLine>,
    capacity: usize,
}

/// The recent log lines (cheap to clone: every clone reads the same ring).
#[derive(Debug, Clone)]
pub struct LogRing {
    inner: Arc<Mutex<Ring>>,
}

/// The tracing layer that fills a [`LogRing`].
#[derive(Debug, Clone)]
pub struct LogRingLayer {
    ring: LogRing,
}

/// A ring of `capacity` lines and the layer that fills it.
pub fn log_ring(capacity: usize) -> (LogRingLayer, LogRing) {
    let ring = LogRing {
        inner: Arc::new(Mutex::new(Ring {
            lines: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
        })),
    };
    (LogRingLayer { ring: ring.clone() }, ring)
}

impl LogRing {
    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `line`, forgetting the oldest beyond the capacity.
    pub fn push(&self, line: LogLine) {
        let mut ring = self.lock();
        if ring.capacity == 0 {
            return;
        }
        while ring.lines.len() >= ring.capacity {
            ring.lines.pop_front();
        }
        ring.lines.push_back(line);
    }

    /// The newest `max_lines` lines (only `sensor`'s when given), oldest first, within
    /// [`MAX_BATCH_BYTES`].
    pub fn recent(&self, sensor: Option<&str>, max_lines: u32) -> Vec<LogLine> {
        let ring = self.lock();
        let mut bytes = 0usize;
        let mut picked: Vec<LogLine> = ring
            .lines
            .iter()
            .rev()
            .filter(|l| sensor.is_none() || l.sensor.as_deref() == sensor)
            .take(usize::try_from(max_lines).unwrap_or(usize::MAX))
            .take_while(|l| {
                bytes += l.message.len()
                    + l.level.len()
                    + l.sensor.as_ref().map_or(0, String::len)
                    + LINE_OVERHEAD_BYTES;
                bytes <= MAX_BATCH_BYTES
            })
            .cloned()
            .collect();
        picked.reverse();
        picked
    }

    /// The answer to a `FetchLogs`.
    pub fn batch(&self, request: u64, sensor: Option<&str>, max_lines: u32) -> LogBatch {
        LogBatch {
            request,
            lines: self.recent(sensor, max_lines),
        }
    }
}

/// Collects an event's message and fields as the fmt layer shows them, the `sensor` field
/// apart.
#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
    sensor: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            "sensor" => self.sensor = Some(value.to_string()),
            name => {
                let _ = write!(self.rest, " {name}={value:?}");
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            // `sensor = %name` arrives here as Display wrapped in Debug: no quotes.
            "sensor" => self.sensor = Some(format!("{value:?}")),
            name => {
                let _ = write!(self.rest, " {name}={value:?}");
            }
        }
    }
}

fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max.saturating_sub('…'.len_utf8());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// When a line was logged: monotonic time, and the system clock's UTC when it is plausible
/// (later than this build), as [`crate::clock::AgentClock`] stamps without a timekeeper
/// ([`system_clock_stamp`]).
/// Not the timekeeper's stamp: the timekeeper logs while holding its own lock, and
/// stamping from inside its log line would take that lock again and hang the agent.
fn log_time() -> Timestamp {
    system_clock_stamp()
}

impl<S: Subscriber> Layer<S> for LogRingLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut message = fields.message;
        message.push_str(&fields.rest);
        let line = LogLine {
            time: log_time(),
            level: event.metadata().level().as_str().to_string(),
            sensor: fields.sensor.map(|s| cut(s, 64)),
            message: cut(message, MAX_LINE_BYTES),
        };
        self.ring.push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    fn logged(capacity: usize, log: impl FnOnce()) -> LogRing {
        let (layer, ring) = log_ring(capacity);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, log);
        ring
    }

    #[test]
    fn the_ring_keeps_the_newest_lines_with_their_sensor_and_fields() {
        let ring = logged(3, || {
            for n in 0..5 {
                tracing::info!(sensor = %"gps", n, "Fix {n}.");
            }
            tracing::warn!(error = "NACK", "Bus trouble.");
        });
        let lines = ring.recent(None, 100);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].message, "Fix 3. n=3");
        assert_eq!(lines[0].sensor.as_deref(), Some("gps"));
        assert_eq!(lines[0].level, "INFO");
        assert_eq!(lines[2].message, "Bus trouble. error=\"NACK\"");
        assert_eq!(lines[2].sensor, None);
        assert_eq!(lines[2].level, "WARN");
    }

    #[test]
    fn one_sensors_lines_are_its_own_newest_last_and_at_most_max_lines() {
        let ring = logged(100, || {
            for n in 0..10 {
                let sensor = if n % 2 == 0 { "co2" } else { "static" };
                tracing::info!(sensor, n, "Reading.");
            }
        });
        let co2 = ring.recent(Some("co2"), 2);
        let ns: Vec<_> = co2.iter().map(|l| l.message.clone()).collect();
        assert_eq!(ns, vec!["Reading. n=6", "Reading. n=8"]);
        assert!(ring.recent(Some("pitot"), 10).is_empty());
        let batch = ring.batch(7, None, 1000);
        assert_eq!((batch.request, batch.lines.len()), (7, 10));
    }

    #[test]
    fn long_lines_are_cut_and_an_answer_stays_under_the_message_cap() {
        let ring = logged(5000, || {
            let long = "x".repeat(10_000);
            for _ in 0..5000 {
                tracing::info!(dump = %long, "Ä long one.");
            }
        });
        let lines = ring.recent(None, u32::MAX);
        assert!(lines.iter().all(|l| l.message.len() <= MAX_LINE_BYTES));
        assert!(lines.len() < 5000, "the byte cap dropped the oldest");
        let encoded = aloft_protocol::sync::Uplink::Logs(ring.batch(1, None, u32::MAX)).encode();
        assert!(encoded.len() < MAX_MESSAGE_BYTES, "{}", encoded.len());
    }
}
