//! An `mqtt` sensor: a [`Device`] fed by the bus with the readings another program
//! publishes to `<prefix>/<node>/ingest/<sensor>` (checked by `crate::bus::ingest`), so that
//! they take the path of every sensor's readings: the supervisor, the store writer, the
//! hub, the exports, with a status, a descriptor and restarts.
//!
//! The bus side holds an [`IngestSender`], the device the matching [`IngestReceiver`]: a
//! bounded channel of checked batches. The sender never blocks (the bus task must not
//! wait on a sensor): a full channel refuses the batch, and the bus counts it.
//!
//! Invariants: the channel holds at most [`FEED_BATCHES_MAX`] batches, so a stalled store
//! writer or a sensor in backoff costs bounded memory; the descriptor names the topic the
//! readings come on and the client id the config declares for their publisher; a reading
//! leaves here as it came from the bus, with the sensor's id.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use aloft_protocol::{DeviceParameter, ParameterValue, Reading, SensorDescriptor};

use super::{Device, DeviceError, PollOutcome};
use crate::config::{SensorConfig, SensorKind};

/// Batches (one per accepted message) waiting for the device, at most.
pub const FEED_BATCHES_MAX: usize = 4_096;

/// How long one poll waits for a batch: the device wakes at most this often when idle.
pub const POLL_WAIT: Duration = Duration::from_millis(500);

/// While a burst arrives (more than one message waiting at a wake-up), the device waits
/// this long for more before it hands them over: one wake-up and one hand-off to the store
/// writer per burst instead of one per message.
pub const BURST_GATHER: Duration = Duration::from_millis(2);

/// A publisher silent this long is called degraded (three times as long, failed): a
/// program on the board that publishes at least once a minute is alive.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(60);

/// What the descriptor calls the device.
const DEVICE: &str = "MQTT ingest";

/// The bus's end of an `mqtt` sensor's feed.
#[derive(Debug, Clone)]
pub struct IngestSender {
    tx: SyncSender<Vec<Reading>>,
}

/// Why a batch did not reach the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    /// The device has not taken the batches before it (a stalled store writer, a restart).
    #[error("the sensor's feed is full")]
    Full,
    /// The device is gone (the agent is stopping).
    #[error("the sensor's device is gone")]
    Gone,
}

impl IngestSender {
    /// Hands a checked batch to the device without waiting; gives it back with the error.
    pub fn send(&self, batch: Vec<Reading>) -> Result<(), (FeedError, Vec<Reading>)> {
        self.tx.try_send(batch).map_err(|e| match e {
            TrySendError::Full(b) => (FeedError::Full, b),
            TrySendError::Disconnected(b) => (FeedError::Gone, b),
        })
    }
}

/// The device's end of an `mqtt` sensor's feed.
#[derive(Debug)]
pub struct IngestReceiver {
    rx: Receiver<Vec<Reading>>,
}

/// A new feed of [`FEED_BATCHES_MAX`] batches.
pub fn feed() -> (IngestSender, IngestReceiver) {
    feed_of(FEED_BATCHES_MAX)
}

/// A new feed of `batches` batches.
pub fn feed_of(batches: usize) -> (IngestSender, IngestReceiver) {
    let (tx, rx) = sync_channel(batches);
    (IngestSender { tx }, IngestReceiver { rx })
}

/// The `mqtt` sensor's device.
#[derive(Debug)]
pub struct MqttDevice {
    descriptor: SensorDescriptor,
    feed: IngestReceiver,
    open: bool,
}

impl MqttDevice {
    /// The device of the `mqtt` sensor `config`, whose readings arrive on `topic` through
    /// `feed`.
    pub fn new(
        config: &SensorConfig,
        topic: &str,
        feed: IngestReceiver,
    ) -> Result<Self, DeviceError> {
        if config.kind != SensorKind::Mqtt {
            return Err(DeviceError::Config(format!(
                "{} is not an mqtt sensor",
                config.kind
            )));
        }
        Ok(MqttDevice {
            descriptor: descriptor(config, topic),
            feed,
            open: false,
        })
    }
}

impl MqttDevice {
    /// The device of the `mqtt` sensor `config` before the bus feeds it: polls report that
    /// no bus feeds it (a config without `[mqtt]`), until the bus replaces it with a fed one
    /// (`crate::bus::inbound::attach_feeds`).
    pub fn detached(config: &SensorConfig) -> Result<Self, DeviceError> {
        let (_, rx) = feed_of(1);
        MqttDevice::new(config, "", rx)
    }
}

/// What an `mqtt` sensor is: where its readings come from and what it takes.
pub fn descriptor(config: &SensorConfig, topic: &str) -> SensorDescriptor {
    let mut d = SensorDescriptor::new(DEVICE);
    d.firmware = Some(env!("CARGO_PKG_VERSION").to_string());
    let text = |name: &str, value: &str| DeviceParameter {
        name: name.to_string(),
        value: ParameterValue::Text(value.to_string()),
    };
    if !topic.is_empty() {
        d.parameters.push(text("topic", topic));
    }
    if let Some(client) = &config.client_id {
        d.parameters.push(text("client_id", client));
    }
    if let Some(mapper) = &config.mapper_topic {
        d.parameters.push(text("mapper_topic", mapper));
    }
    for (name, range) in &config.quantities {
        d = d
            .with_real(format!("{name}.min"), range.min)
            .with_real(format!("{name}.max"), range.max);
    }
    d.with_real("max_readings_per_s", config.max_readings_per_s_or_default())
}

impl Device for MqttDevice {
    fn open(&mut self) -> Result<SensorDescriptor, DeviceError> {
        self.open = true;
        Ok(self.descriptor.clone())
    }

    fn poll(&mut self, out: &mut Vec<Reading>) -> Result<PollOutcome, DeviceError> {
        if !self.open {
            return Err(DeviceError::NotAnswering("not open".into()));
        }
        match self.feed.rx.recv_timeout(POLL_WAIT) {
            Ok(batch) => out.extend_from_slice(&batch),
            Err(RecvTimeoutError::Timeout) => return Ok(PollOutcome::Healthy),
            Err(RecvTimeoutError::Disconnected) => {
                return Err(DeviceError::NotAnswering(
                    "no MQTT bus feeds this sensor (is there an [mqtt] section?)".into(),
                ));
            }
        }
        // Whatever else is waiting, in the same wake-up; while more keeps coming, gather
        // it for a moment, up to a feed's worth.
        let mut batches = 1;
        loop {
            let mut more = 0;
            while batches < FEED_BATCHES_MAX {
                match self.feed.rx.try_recv() {
                    Ok(batch) => {
                        out.extend_from_slice(&batch);
                        batches += 1;
                        more += 1;
                    }
                    Err(_) => break,
                }
            }
            if more == 0 || batches >= FEED_BATCHES_MAX {
                return Ok(PollOutcome::Healthy);
            }
            std::thread::sleep(BURST_GATHER);
        }
    }

    fn close(&mut self) {
        self.open = false;
    }

    fn interval(&self) -> Option<Duration> {
        None
    }

    fn silence_limit(&self) -> Duration {
        SILENCE_LIMIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aloft_protocol::{Quality, Quantity, SensorId, Timestamp};

    fn config() -> SensorConfig {
        toml::from_str(
            "name = 'sampler'\nkind = 'mqtt'\nclient_id = 'vendor-tool'\n\
             [quantities.air_temperature]\nmin = 200.0\nmax = 330.0\n",
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn reading(v: f64) -> Reading {
        Reading {
            sensor: SensorId(3),
            quantity: Quantity::AirTemperature,
            time: Timestamp::monotonic(1),
            value: v,
            quality: Quality::GOOD,
        }
    }

    #[test]
    fn the_descriptor_names_the_topic_and_the_publisher() {
        let (_, rx) = feed();
        let mut d = MqttDevice::new(&config(), "aloft/n/ingest/sampler", rx).unwrap();
        let desc = d.open().unwrap();
        assert_eq!(
            desc.parameter("topic"),
            Some(&ParameterValue::Text("aloft/n/ingest/sampler".into()))
        );
        assert_eq!(
            desc.parameter("client_id"),
            Some(&ParameterValue::Text("vendor-tool".into()))
        );
        assert_eq!(
            desc.parameter("air_temperature.max"),
            Some(&ParameterValue::Real(330.0))
        );
    }

    #[test]
    fn a_poll_takes_every_waiting_batch_and_a_full_feed_refuses() {
        let (tx, rx) = feed_of(2);
        let mut d = MqttDevice::new(&config(), "t", rx).unwrap();
        d.open().unwrap();
        tx.send(vec![reading(250.0)]).unwrap();
        tx.send(vec![reading(251.0), reading(252.0)]).unwrap();
        let (e, back) = tx.send(vec![reading(253.0)]).unwrap_err();
        assert_eq!(e, FeedError::Full);
        assert_eq!(back.len(), 1);
        let mut out = vec![];
        assert_eq!(d.poll(&mut out).unwrap(), PollOutcome::Healthy);
        let values: Vec<f64> = out.iter().map(|r| r.value).collect();
        assert_eq!(values, [250.0, 251.0, 252.0]);
        assert!(out.iter().all(|r| r.sensor == SensorId(3)));
    }

    #[test]
    fn a_closed_device_reports_an_error_and_a_gone_bus_too() {
        let (tx, rx) = feed();
        let mut d = MqttDevice::new(&config(), "t", rx).unwrap();
        assert!(d.poll(&mut vec![]).is_err());
        d.open().unwrap();
        drop(tx);
        assert!(d.poll(&mut vec![]).is_err());
    }
}
