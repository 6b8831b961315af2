//! Readings other programs on the board publish to `aloft/<node>/ingest/<sensor>`: the
//! message schema, its checks against the sensor the config declares (kind `mqtt`), and
//! the rate bound that keeps one publisher from starving the real sensors.
//!
//! Pure logic, no I/O: [`Ingest::accept`] takes a topic's sensor name, the payload and the
//! arrival time, and either appends readings to a caller's buffer or returns a
//! [`Rejection`] whose [`Rejection::reason`] is a fixed label (counted per sensor in the
//! metrics) and whose text goes to the error topic (docs/mqtt.md, "Ingest (in)").
//!
//! Invariants: a message is taken whole or not at all (a batch with one bad reading adds
//! nothing); nothing is clamped; every reading gets the declared sensor's id and a
//! monotonic time (the publisher's own time, when given, is mapped onto the monotonic clock
//! through the agent's UTC); a payload above [`PAYLOAD_BYTES_MAX`] is refused before it is
//! parsed; the token bucket refuses, never queues, so memory does not grow with a flood;
//! nothing here panics on any payload.

use std::borrow::Cow;

use aloft_protocol::{Quality, Quantity, Reading, SensorId, TimeSource, Timestamp};
use serde::Deserialize;

/// The largest payload taken, bytes: a batch of [`BATCH_READINGS_MAX`] readings with
/// their times and flags fits in about 100 kB; anything larger is refused unread.
pub const PAYLOAD_BYTES_MAX: usize = 128 * 1024;

/// The most readings one message may carry.
pub const BATCH_READINGS_MAX: usize = 1_000;

/// A publisher's time may run ahead of the agent's UTC by this much (two clocks on one
/// board, NTP steps) before it is refused as being in the future.
pub const FUTURE_TOLERANCE_NS: i64 = 60_000_000_000;

/// The earliest publisher time taken: 2000-01-01T00:00:00Z. A program on a board that
/// booted in 1970 without a clock would otherwise stamp its readings 30 years back.
pub const EARLIEST_TIME_NS: i64 = 946_684_800_000_000_000;

pub use crate::metrics::ingest::RejectReason;

/// A refused message: the reason and what exactly was wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {detail}", reason.label())]
pub struct Rejection {
    /// The fixed label.
    pub reason: RejectReason,
    /// For the publisher: which reading, which quantity, which bound.
    pub detail: String,
}

impl Rejection {
    /// A rejection for `reason`, saying what exactly was wrong.
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
        }
    }

    /// The error topic's payload: `{"reason":"malformed","detail":"..."}`.
    pub fn to_json(&self) -> Vec<u8> {
        #[derive(serde::Serialize)]
        struct Wire<'a> {
            reason: &'a str,
            detail: &'a str,
        }
        serde_json::to_vec(&Wire {
            reason: self.reason.label(),
            detail: &self.detail,
        })
        .unwrap_or_default()
    }
}

/// A quantity a sensor declares, with the values it accepts (inclusive).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeclaredQuantity {
    /// The quantity.
    pub quantity: Quantity,
    /// The lowest value taken, in the quantity's unit.
    pub min: f64,
    /// The highest value taken.
    pub max: f64,
}

/// A token bucket: `rate` tokens a second, at most `burst` saved up. One reading costs one
/// token; a message that does not find enough is refused whole, and refusing costs nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    rate_per_s: f64,
    burst: f64,
    tokens: f64,
    last_ns: Option<u64>,
}

impl TokenBucket {
    /// A full bucket. A rate or burst that is not a positive finite number takes nothing.
    pub fn new(rate_per_s: f64, burst: f64) -> Self {
        let sane = |x: f64| if x.is_finite() && x > 0.0 { x } else { 0.0 };
        let burst = sane(burst);
        TokenBucket {
            rate_per_s: sane(rate_per_s),
            burst,
            tokens: burst,
            last_ns: None,
        }
    }

    /// Takes `n` tokens at monotonic time `now_ns` if there are enough.
    pub fn take(&mut self, n: usize, now_ns: u64) -> bool {
        if let Some(last) = self.last_ns {
            let dt = now_ns.saturating_sub(last) as f64 / 1e9;
            self.tokens = (self.tokens + dt * self.rate_per_s).min(self.burst);
        }
        self.last_ns = Some(self.last_ns.map_or(now_ns, |l| l.max(now_ns)));
        let n = n as f64;
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

/// One `mqtt` sensor as ingest sees it.
#[derive(Debug, Clone)]
pub struct IngestSensor {
    /// Its number in readings.
    pub id: SensorId,
    /// Its name: the last level of its topic.
    pub name: String,
    /// What it may send.
    pub quantities: Vec<(String, DeclaredQuantity)>,
    /// Its rate bound.
    pub bucket: TokenBucket,
    /// Whether readings are taken now.
    pub enabled: bool,
}

impl IngestSensor {
    fn declared(&self, name: &str) -> Option<DeclaredQuantity> {
        self.quantities
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| *d)
    }
}

/// One value as another path of the bus gives it (a twin's reported value, a mapper's
/// push): checked exactly as a published reading is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IngestValue<'a> {
    /// The quantity's name.
    pub quantity: &'a str,
    /// The value, in the quantity's unit.
    pub value: f64,
    /// Seconds since the Unix epoch, UTC; `None` stamps it on arrival.
    pub time_s: Option<f64>,
}

/// One reading as published.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireReading<'a> {
    #[serde(borrow)]
    quantity: Cow<'a, str>,
    value: f64,
    #[serde(default)]
    time: Option<f64>,
    #[serde(default, borrow)]
    quality: Option<Vec<Cow<'a, str>>>,
}

/// A batch: `{"readings": [...]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireBatch<'a> {
    #[serde(borrow)]
    readings: Vec<WireReading<'a>>,
}

/// The quality flag named `name` (as [`Quality::names`] spells them).
pub fn quality_from_name(name: &str) -> Option<Quality> {
    (0..16)
        .map(|bit| Quality::from_bits(1 << bit))
        .find(|q| q.names().next() == Some(name))
}

/// The `mqtt` sensors of one node and their buckets.
#[derive(Debug, Clone, Default)]
pub struct Ingest {
    sensors: Vec<IngestSensor>,
}

impl Ingest {
    /// Ingest for these sensors.
    pub fn new(sensors: Vec<IngestSensor>) -> Self {
        Ingest { sensors }
    }

    /// The sensors, in config order.
    pub fn sensors(&self) -> &[IngestSensor] {
        &self.sensors
    }

    /// Switches the sensor `name` on or off (the hub's desired state); `false` when there is
    /// no such sensor.
    pub fn set_enabled(&mut self, name: &str, enabled: bool) -> bool {
        match self.sensors.iter_mut().find(|s| s.name == name) {
            Some(s) => {
                s.enabled = enabled;
                true
            }
            None => false,
        }
    }

    /// The sensor called `name`.
    pub fn sensor(&self, name: &str) -> Option<&IngestSensor> {
        self.sensors.iter().find(|s| s.name == name)
    }

    /// Takes `values` for `sensor` (a twin's reported values, a mapper's push) with the checks
    /// and the rate bound of a published message; all or nothing.
    pub fn accept_values(
        &mut self,
        sensor: &str,
        values: &[IngestValue<'_>],
        arrival: Timestamp,
        out: &mut Vec<Reading>,
    ) -> Result<(SensorId, usize), Rejection> {
        let wire: Vec<WireReading<'_>> = values
            .iter()
            .map(|v| WireReading {
                quantity: Cow::Borrowed(v.quantity),
                value: v.value,
                time: v.time_s,
                quality: None,
            })
            .collect();
        self.take(sensor, arrival, out, |s, out| {
            take_batch(s, &wire, arrival, out)
        })
    }

    /// Takes the message `payload` published for `sensor` at `arrival`; on success appends
    /// its readings to `out` and returns the sensor's id and how many were added.
    pub fn accept(
        &mut self,
        sensor: &str,
        payload: &[u8],
        arrival: Timestamp,
        out: &mut Vec<Reading>,
    ) -> Result<(SensorId, usize), Rejection> {
        if payload.len() > PAYLOAD_BYTES_MAX {
            return Err(Rejection::new(
                RejectReason::Oversized,
                format!(
                    "payload of {} bytes, at most {PAYLOAD_BYTES_MAX}",
                    payload.len()
                ),
            ));
        }
        self.take(sensor, arrival, out, |s, out| {
            decode_into(s, payload, arrival, out)
        })
    }

    /// The checks every path shares: a known, enabled sensor; `decode` all or nothing; the
    /// rate bound.
    fn take(
        &mut self,
        sensor: &str,
        arrival: Timestamp,
        out: &mut Vec<Reading>,
        decode: impl FnOnce(&IngestSensor, &mut Vec<Reading>) -> Result<usize, Rejection>,
    ) -> Result<(SensorId, usize), Rejection> {
        let Some(s) = self.sensors.iter_mut().find(|s| s.name == sensor) else {
            return Err(Rejection::new(
                RejectReason::UnknownSensor,
                format!("no mqtt sensor {:?} in the config", truncated(sensor)),
            ));
        };
        if !s.enabled {
            return Err(Rejection::new(
                RejectReason::Disabled,
                format!("sensor {sensor} is disabled"),
            ));
        }
        let start = out.len();
        let n = match decode(s, out) {
            Ok(n) => n,
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        };
        if !s.bucket.take(n, arrival.mono_ns) {
            out.truncate(start);
            return Err(Rejection::new(
                RejectReason::RateLimited,
                format!("{n} readings above the sensor's rate bound"),
            ));
        }
        Ok((s.id, n))
    }
}

/// At most 64 characters of outside text, for a reason.
fn truncated(text: &str) -> &str {
    match text.char_indices().nth(64) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

fn decode_into(
    sensor: &IngestSensor,
    payload: &[u8],
    arrival: Timestamp,
    out: &mut Vec<Reading>,
) -> Result<usize, Rejection> {
    let malformed = |e: serde_json::Error| Rejection::new(RejectReason::Malformed, e.to_string());
    let first = payload
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .copied()
        .unwrap_or(b'?');
    match first {
        b'[' => {
            let batch: Vec<WireReading<'_>> = serde_json::from_slice(payload).map_err(malformed)?;
            take_batch(sensor, &batch, arrival, out)
        }
        b'{' => {
            // One reading, or `{"readings": [...]}`: the key decides.
            if looks_like_batch(payload) {
                let batch: WireBatch<'_> = serde_json::from_slice(payload).map_err(malformed)?;
                take_batch(sensor, &batch.readings, arrival, out)
            } else {
                let one: WireReading<'_> = serde_json::from_slice(payload).map_err(malformed)?;
                out.push(reading(sensor, &one, 0, arrival)?);
                Ok(1)
            }
        }
        _ => Err(Rejection::new(
            RejectReason::Malformed,
            "expected a JSON object or array",
        )),
    }
}

/// Whether an object's first key is `readings`.
fn looks_like_batch(payload: &[u8]) -> bool {
    payload
        .trim_ascii_start()
        .get(1..)
        .is_some_and(|rest| rest.trim_ascii_start().starts_with(b"\"readings\""))
}

fn take_batch(
    sensor: &IngestSensor,
    batch: &[WireReading<'_>],
    arrival: Timestamp,
    out: &mut Vec<Reading>,
) -> Result<usize, Rejection> {
    if batch.len() > BATCH_READINGS_MAX {
        return Err(Rejection::new(
            RejectReason::Oversized,
            format!(
                "{} readings in one message, at most {BATCH_READINGS_MAX}",
                batch.len()
            ),
        ));
    }
    if batch.is_empty() {
        return Err(Rejection::new(RejectReason::Malformed, "an empty batch"));
    }
    out.reserve(batch.len());
    for (i, w) in batch.iter().enumerate() {
        out.push(reading(sensor, w, i, arrival)?);
    }
    Ok(batch.len())
}

fn reading(
    sensor: &IngestSensor,
    w: &WireReading<'_>,
    index: usize,
    arrival: Timestamp,
) -> Result<Reading, Rejection> {
    let at = |reason, what: String| Rejection::new(reason, format!("reading {index}: {what}"));
    let name = w.quantity.as_ref();
    let Some(declared) = sensor.declared(name) else {
        return Err(match Quantity::from_name(name) {
            Some(_) => at(
                RejectReason::UndeclaredQuantity,
                format!("{name} is not declared for sensor {}", sensor.name),
            ),
            None => at(
                RejectReason::UnknownQuantity,
                format!("no quantity {:?}", truncated(name)),
            ),
        });
    };
    if !w.value.is_finite() {
        return Err(at(RejectReason::NotFinite, format!("{name} is not finite")));
    }
    // Outside the declared range: taken and flagged, as any sensor's reading outside its
    // rated range is, never clamped and never dropped.
    let mut quality = if (declared.min..=declared.max).contains(&w.value) {
        Quality::GOOD
    } else {
        Quality::OUT_OF_RANGE
    };
    for flag in w.quality.iter().flatten() {
        quality |= quality_from_name(flag).ok_or_else(|| {
            at(
                RejectReason::BadQuality,
                format!("no quality flag {:?}", truncated(flag)),
            )
        })?;
    }
    let time = match w.time {
        None => arrival,
        Some(t) => publisher_time(t, arrival).map_err(|why| at(RejectReason::BadTime, why))?,
    };
    Ok(Reading {
        sensor: sensor.id,
        quantity: declared.quantity,
        time,
        value: w.value,
        quality,
    })
}

/// The publisher's time `unix_s` (seconds since the Unix epoch, UTC) as a timestamp. With
/// the agent's UTC known it is placed on the monotonic clock by the difference to the
/// arrival; without, the reading keeps the arrival's monotonic time and the publisher's UTC,
/// said to come from a system clock (the publisher's).
pub fn publisher_time(unix_s: f64, arrival: Timestamp) -> Result<Timestamp, String> {
    if !unix_s.is_finite() {
        return Err("time is not finite".into());
    }
    let ns = unix_s * 1e9;
    // i64 nanoseconds end in 2262: a larger time cannot be meant.
    if !(EARLIEST_TIME_NS as f64..=i64::MAX as f64).contains(&ns) {
        return Err(format!("time {unix_s} is before 2000 or beyond 2262"));
    }
    let utc_ns = ns as i64;
    match arrival.utc_ns {
        Some(now_utc) => {
            if utc_ns > now_utc.saturating_add(FUTURE_TOLERANCE_NS) {
                return Err(format!("time {unix_s} is ahead of the agent's clock"));
            }
            let age_ns = u64::try_from(now_utc.saturating_sub(utc_ns)).unwrap_or(0);
            let mono_ns = arrival
                .mono_ns
                .checked_sub(age_ns)
                .ok_or_else(|| format!("time {unix_s} is before the agent's boot"))?;
            Ok(Timestamp::with_utc(mono_ns, utc_ns, arrival.source))
        }
        None => Ok(Timestamp::with_utc(
            arrival.mono_ns,
            utc_ns,
            TimeSource::SystemClock,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW_UTC: i64 = 1_780_000_000_000_000_000;
    const NOW_MONO: u64 = 3_600_000_000_000;

    fn arrival() -> Timestamp {
        Timestamp::with_utc(NOW_MONO, NOW_UTC, TimeSource::SystemClock)
    }

    fn ingest(rate: f64, burst: f64) -> Ingest {
        Ingest::new(vec![IngestSensor {
            id: SensorId(7),
            name: "sampler".into(),
            quantities: vec![
                (
                    "air_temperature".into(),
                    DeclaredQuantity {
                        quantity: Quantity::AirTemperature,
                        min: 173.15,
                        max: 373.15,
                    },
                ),
                (
                    "relative_humidity".into(),
                    DeclaredQuantity {
                        quantity: Quantity::RelativeHumidity,
                        min: 0.0,
                        max: 100.0,
                    },
                ),
            ],
            bucket: TokenBucket::new(rate, burst),
            enabled: true,
        }])
    }

    fn accept(i: &mut Ingest, payload: &str) -> Result<Vec<Reading>, Rejection> {
        let mut out = Vec::new();
        i.accept("sampler", payload.as_bytes(), arrival(), &mut out)
            .map(|_| out)
    }

    fn reason(i: &mut Ingest, payload: &str) -> RejectReason {
        accept(i, payload)
            .err()
            .map(|e| e.reason)
            .unwrap_or_else(|| {
                panic!("{payload} was taken");
            })
    }

    #[test]
    fn a_single_reading_without_time_is_stamped_on_arrival() {
        let mut i = ingest(100.0, 100.0);
        let r = accept(&mut i, r#"{"quantity":"air_temperature","value":250.5}"#).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].sensor, SensorId(7));
        assert_eq!(r[0].quantity, Quantity::AirTemperature);
        assert_eq!(r[0].value, 250.5);
        assert_eq!(r[0].time, arrival());
        assert!(r[0].quality.is_good());
    }

    #[test]
    fn a_batch_keeps_each_readings_own_time_and_flags() {
        let mut i = ingest(100.0, 100.0);
        let earlier_s = (NOW_UTC - 2_000_000_000) as f64 / 1e9;
        let text = format!(
            r#"{{"readings":[{{"quantity":"air_temperature","value":260,"time":{earlier_s},"quality":["stale"]}},
               {{"quantity":"relative_humidity","value":40}}]}}"#
        );
        let r = accept(&mut i, &text).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].quality, Quality::STALE);
        // Two seconds earlier on the monotonic clock too (to float precision of the time).
        let back = NOW_MONO - r[0].time.mono_ns;
        assert!((1_999_000_000..=2_001_000_000).contains(&back), "{back}");
        assert_eq!(r[1].time, arrival());
        let bare = r#"[{"quantity":"relative_humidity","value":1}]"#;
        assert_eq!(accept(&mut i, bare).unwrap().len(), 1);
    }

    #[test]
    fn every_kind_of_bad_message_is_refused_with_its_reason() {
        let mut i = ingest(1000.0, 1000.0);
        let cases = [
            ("not json", RejectReason::Malformed),
            (
                "{\"quantity\":\"air_temperature\"}",
                RejectReason::Malformed,
            ),
            (
                "{\"quantity\":\"air_temperature\",\"value\":\"1\"}",
                RejectReason::Malformed,
            ),
            (
                "{\"quantity\":\"air_temperature\",\"value\":1,\"x\":1}",
                RejectReason::Malformed,
            ),
            ("[]", RejectReason::Malformed),
            (
                "{\"quantity\":\"warp_factor\",\"value\":1}",
                RejectReason::UnknownQuantity,
            ),
            (
                "{\"quantity\":\"air_pressure\",\"value\":1}",
                RejectReason::UndeclaredQuantity,
            ),
            (
                "{\"quantity\":\"air_temperature\",\"value\":1e999}",
                RejectReason::Malformed,
            ),
            (
                "{\"quantity\":\"air_temperature\",\"value\":300,\"quality\":[\"shiny\"]}",
                RejectReason::BadQuality,
            ),
            (
                "{\"quantity\":\"air_temperature\",\"value\":300,\"time\":12}",
                RejectReason::BadTime,
            ),
            (
                "{\"quantity\":\"air_temperature\",\"value\":300,\"time\":4e9}",
                RejectReason::BadTime,
            ),
        ];
        for (payload, want) in cases {
            assert_eq!(reason(&mut i, payload), want, "{payload}");
        }
        let mut out = Vec::new();
        let e = i
            .accept("nobody", b"{}", arrival(), &mut out)
            .err()
            .unwrap();
        assert_eq!(e.reason, RejectReason::UnknownSensor);
        let big = vec![b' '; PAYLOAD_BYTES_MAX + 1];
        let e = i
            .accept("sampler", &big, arrival(), &mut out)
            .err()
            .unwrap();
        assert_eq!(e.reason, RejectReason::Oversized);
        assert!(out.is_empty());
    }

    #[test]
    fn a_batch_with_one_bad_reading_adds_nothing() {
        let mut i = ingest(100.0, 100.0);
        let mut out = vec![];
        let text =
            r#"[{"quantity":"air_temperature","value":300},{"quantity":"air_pressure","value":1}]"#;
        let e = i
            .accept("sampler", text.as_bytes(), arrival(), &mut out)
            .err()
            .unwrap();
        assert_eq!(e.reason, RejectReason::UndeclaredQuantity);
        assert!(e.detail.starts_with("reading 1:"), "{}", e.detail);
        assert!(out.is_empty());
    }

    #[test]
    fn a_value_outside_the_declared_range_is_taken_and_flagged() {
        let mut i = ingest(100.0, 100.0);
        let mut out = vec![];
        let text = r#"[{"quantity":"air_temperature","value":300},{"quantity":"air_temperature","value":12,"quality":["stale"]}]"#;
        i.accept("sampler", text.as_bytes(), arrival(), &mut out)
            .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].quality, Quality::GOOD);
        assert_eq!(out[1].value, 12.0);
        assert!(out[1].quality.contains(Quality::OUT_OF_RANGE));
        assert!(out[1].quality.contains(Quality::STALE));
    }

    #[test]
    fn a_batch_larger_than_the_bound_is_oversized() {
        let mut i = ingest(1e9, 1e9);
        let one = r#"{"quantity":"relative_humidity","value":1}"#;
        let text = format!("[{}]", vec![one; BATCH_READINGS_MAX + 1].join(","));
        assert_eq!(reason(&mut i, &text), RejectReason::Oversized);
    }

    #[test]
    fn a_flood_is_refused_beyond_the_burst_and_the_rate_refills() {
        let mut i = ingest(10.0, 5.0);
        let one = r#"{"quantity":"relative_humidity","value":1}"#;
        let mut out = vec![];
        let mut at = |mono: u64| {
            i.accept(
                "sampler",
                one.as_bytes(),
                Timestamp::monotonic(mono),
                &mut out,
            )
            .map_err(|e| e.reason)
        };
        for _ in 0..5 {
            assert!(at(NOW_MONO).is_ok());
        }
        assert_eq!(at(NOW_MONO), Err(RejectReason::RateLimited));
        // 100 ms at 10/s: one more token.
        assert!(at(NOW_MONO + 100_000_000).is_ok());
        assert_eq!(at(NOW_MONO + 100_000_000), Err(RejectReason::RateLimited));
        assert_eq!(out.len(), 6);
    }

    #[test]
    fn a_disabled_sensor_takes_nothing() {
        let mut i = ingest(10.0, 5.0);
        assert!(i.set_enabled("sampler", false));
        assert_eq!(
            reason(&mut i, r#"{"quantity":"relative_humidity","value":1}"#),
            RejectReason::Disabled
        );
    }

    #[test]
    fn without_the_agents_utc_the_publishers_time_is_kept_as_its_clocks() {
        let t = publisher_time(1_780_000_000.5, Timestamp::monotonic(5)).unwrap();
        assert_eq!(t.mono_ns, 5);
        assert_eq!(t.utc_ns, Some(1_780_000_000_500_000_000));
        assert_eq!(t.source, TimeSource::SystemClock);
    }

    #[test]
    fn quality_names_round_trip() {
        for bit in 0..7 {
            let q = Quality::from_bits(1 << bit);
            let name = q.names().next().unwrap();
            assert_eq!(quality_from_name(name), Some(q));
        }
        assert_eq!(quality_from_name("good"), None);
    }

    #[test]
    fn a_rejection_serialises_as_reason_and_detail() {
        let r = Rejection::new(RejectReason::NotFinite, "reading 0: \"x\"");
        let v: serde_json::Value = serde_json::from_slice(&r.to_json()).unwrap();
        assert_eq!(v["reason"], "not_finite");
        assert_eq!(v["detail"], "reading 0: \"x\"");
    }

    /// Arbitrary JSON of bounded depth, with hostile leaves: huge and tiny numbers, long
    /// names, the schema's own keys.
    fn json() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            any::<i64>().prop_map(|i| Value::Number(i.into())),
            prop_oneof![
                Just("air_temperature".to_string()),
                Just("relative_humidity".to_string()),
                Just("stale".to_string()),
                "[a-z_]{0,10}",
                "\\PC{0,300}",
            ]
            .prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 64, 6, |inner| {
            let key = prop_oneof![
                Just("quantity".to_string()),
                Just("value".to_string()),
                Just("time".to_string()),
                Just("quality".to_string()),
                Just("readings".to_string()),
                "\\PC{0,20}",
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(key, inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn check_never_panics_and_always_gives_a_reason(payload: &[u8]) {
        let mut i = ingest(1e6, 1e6);
        let mut out = Vec::new();
        match i.accept("sampler", payload, arrival(), &mut out) {
            Ok((id, n)) => {
                assert_eq!(id, SensorId(7));
                assert_eq!(out.len(), n);
                for r in &out {
                    assert!(r.value.is_finite());
                    assert!(matches!(
                        r.quantity,
                        Quantity::AirTemperature | Quantity::RelativeHumidity
                    ));
                }
            }
            Err(e) => {
                assert!(out.is_empty());
                assert!(!e.detail.is_empty());
                assert!(e.detail.len() < 1024, "{}", e.detail.len());
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_are_refused_with_a_reason(
            payload in prop::collection::vec(any::<u8>(), 0..512)
        ) {
            check_never_panics_and_always_gives_a_reason(&payload);
        }

        #[test]
        fn arbitrary_json_shapes_never_panic(value in json()) {
            let text = serde_json::to_vec(&value).unwrap();
            check_never_panics_and_always_gives_a_reason(&text);
        }

        #[test]
        fn well_formed_readings_in_range_are_all_taken(
            values in prop::collection::vec(0.0f64..=100.0, 1..50),
            single in any::<bool>(),
        ) {
            let mut i = ingest(1e6, 1e6);
            let readings: Vec<_> = values.iter().map(|v| serde_json::json!(
                {"quantity": "relative_humidity", "value": v})).collect();
            let text = if single && readings.len() == 1 {
                readings[0].to_string()
            } else {
                serde_json::json!({"readings": readings}).to_string()
            };
            let mut out = Vec::new();
            let (_, n) = i.accept("sampler", text.as_bytes(), arrival(), &mut out).unwrap();
            prop_assert_eq!(n, values.len());
            let got: Vec<f64> = out.iter().map(|r| r.value).collect();
            prop_assert_eq!(got, values);
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let depth = 60_000;
        let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        check_never_panics_and_always_gives_a_reason(text.as_bytes());
        let text = format!(
            "{{\"readings\":{}{}}}",
            "[{\"quantity\":".repeat(2000),
            "1}]".repeat(2000)
        );
        check_never_panics_and_always_gives_a_reason(text.as_bytes());
    }
}
