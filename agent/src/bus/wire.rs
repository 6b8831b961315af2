//! The one seam over rumqttc's two clients: MQTT 3.1.1 (`rumqttc`) and MQTT 5
//! (`rumqttc::v5`). The rest of the bus sees a [`Sender`] (publish, subscribe, disconnect,
//! none of which waits) and a [`Connection`] (the event loop that does the network and
//! reconnects when polled after an error), and [`Event`]s in its own terms.
//!
//! Invariants: requests go through rumqttc's bounded channel of [`Session::queue`] requests;
//! a full channel refuses ([`Refused::Full`]) instead of waiting, so no caller can be blocked
//! by the broker; every session is clean (clean session / clean start): what was queued
//! for a dead connection is dropped by rumqttc at the next CONNACK, never replayed late.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5;

use crate::config::{MIN_KEEPALIVE, MqttVersion};

/// The largest packet accepted from or sent to the broker, bytes: above the inbound side's
/// largest payload, so that it refuses an oversized one with a reason; with MQTT 5 the
/// broker is told and drops larger ones, with 3.1.1 a larger one ends the connection (the
/// broker's `max_packet_size` prevents that: docs/mqtt.md).
pub const MAX_PACKET_BYTES: usize = 256 * 1024;
/// How long a TCP connect, a TLS handshake or a write may take before the connection is
/// given up.
pub const NETWORK_TIMEOUT_S: u64 = 5;

/// Everything needed to open a session with the broker.
#[derive(Clone)]
#[non_exhaustive]
pub struct Session {
    /// Protocol version.
    pub version: MqttVersion,
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Client id.
    pub client_id: String,
    /// QoS 1 when true, else 0.
    pub at_least_once: bool,
    /// MQTT keepalive.
    pub keepalive: Duration,
    /// User name and password.
    pub credentials: Option<(String, String)>,
    /// TLS client config (`ring`), if TLS.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Topic and payload of the last will (retained).
    pub will: (String, Vec<u8>),
    /// Requests the channel to the event loop holds.
    pub queue: usize,
}

impl std::fmt::Debug for Session {
    // The password is never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("version", &self.version)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.client_id)
            .field("at_least_once", &self.at_least_once)
            .field(
                "user",
                &self.credentials.as_ref().map(|(user, _)| user.as_str()),
            )
            .field("tls", &self.tls.is_some())
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

/// What the event loop reports, in the bus's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The broker accepted the connection (a new session).
    Connected,
    /// A message arrived on a subscribed topic.
    Message {
        /// Its topic.
        topic: String,
        /// Its payload.
        payload: Vec<u8>,
    },
    /// Anything else (acks, pings, outgoing packets).
    Other,
}

/// Why a request was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The channel to the event loop is full (the broker is slow or away).
    #[error("the request queue is full")]
    Full,
    /// The event loop is gone.
    #[error("the connection is closed")]
    Closed,
}

/// Queues requests for the event loop without waiting.
#[derive(Debug, Clone)]
pub enum Sender {
    /// MQTT 3.1.1.
    V4(rumqttc::AsyncClient, rumqttc::QoS),
    /// MQTT 5.
    V5(v5::AsyncClient, v5::mqttbytes::QoS),
}

// rumqttc folds a full channel and a closed one into `TryRequest`; while the bus runs its
// event loop is alive, so a refused `try_` request means a full channel.
fn refused_v4(e: &rumqttc::ClientError) -> Refused {
    match e {
        rumqttc::ClientError::TryRequest(_) => Refused::Full,
        rumqttc::ClientError::Request(_) => Refused::Closed,
    }
}

fn refused_v5(e: &v5::ClientError) -> Refused {
    match e {
        v5::ClientError::TryRequest(_) => Refused::Full,
        v5::ClientError::Request(_) => Refused::Closed,
    }
}

impl Sender {
    /// Queues a publish at the session's QoS.
    pub fn publish(&self, topic: &str, payload: Vec<u8>, retain: bool) -> Result<(), Refused> {
        match self {
            Sender::V4(c, qos) => c
                .try_publish(topic, *qos, retain, payload)
                .map_err(|e| refused_v4(&e)),
            Sender::V5(c, qos) => c
                .try_publish(topic, *qos, retain, payload)
                .map_err(|e| refused_v5(&e)),
        }
    }

    /// Queues a subscription at the session's QoS.
    pub fn subscribe(&self, filter: &str) -> Result<(), Refused> {
        match self {
            Sender::V4(c, qos) => c.try_subscribe(filter, *qos).map_err(|e| refused_v4(&e)),
            Sender::V5(c, qos) => c.try_subscribe(filter, *qos).map_err(|e| refused_v5(&e)),
        }
    }

    /// Queues a clean DISCONNECT (the broker then does not publish the last will).
    pub fn disconnect(&self) -> Result<(), Refused> {
        match self {
            Sender::V4(c, _) => c.try_disconnect().map_err(|e| refused_v4(&e)),
            Sender::V5(c, _) => c.try_disconnect().map_err(|e| refused_v5(&e)),
        }
    }
}

/// The event loop: polled, it connects, reads, writes, pings and, after an error,
/// reconnects.
pub enum Connection {
    /// MQTT 3.1.1.
    V4(Box<rumqttc::EventLoop>),
    /// MQTT 5.
    V5(Box<v5::EventLoop>),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Connection::V4(_) => "Connection::V4",
            Connection::V5(_) => "Connection::V5",
        })
    }
}

impl Connection {
    /// The next event; an error means the connection is down (the next poll reconnects).
    pub async fn poll(&mut self) -> Result<Event, String> {
        match self {
            Connection::V4(events) => match events.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => Ok(Event::Connected),
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => Ok(Event::Message {
                    topic: p.topic,
                    payload: p.payload.to_vec(),
                }),
                Ok(_) => Ok(Event::Other),
                Err(e) => Err(e.to_string()),
            },
            Connection::V5(events) => match events.poll().await {
                Ok(v5::Event::Incoming(v5::mqttbytes::v5::Packet::ConnAck(_))) => {
                    Ok(Event::Connected)
                }
                Ok(v5::Event::Incoming(v5::mqttbytes::v5::Packet::Publish(p))) => {
                    Ok(Event::Message {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        payload: p.payload.to_vec(),
                    })
                }
                Ok(_) => Ok(Event::Other),
                Err(e) => Err(e.to_string()),
            },
        }
    }
}

/// Opens (lazily: nothing happens until the first poll) a session with the broker.
pub fn open(session: &Session) -> (Sender, Connection) {
    // rumqttc panics on a shorter keepalive; the config check refuses one, this makes sure.
    let keepalive = session.keepalive.max(MIN_KEEPALIVE);
    let will_topic = session.will.0.clone();
    let will_payload = session.will.1.clone();
    match session.version {
        MqttVersion::V311 => {
            let qos = if session.at_least_once {
                rumqttc::QoS::AtLeastOnce
            } else {
                rumqttc::QoS::AtMostOnce
            };
            let mut o = rumqttc::MqttOptions::new(&session.client_id, &session.host, session.port);
            o.set_keep_alive(keepalive)
                .set_clean_session(true)
                .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES)
                .set_last_will(rumqttc::LastWill::new(
                    will_topic,
                    will_payload,
                    rumqttc::QoS::AtLeastOnce,
                    true,
                ));
            if let Some((user, password)) = &session.credentials {
                o.set_credentials(user, password);
            }
            if let Some(tls) = &session.tls {
                o.set_transport(rumqttc::Transport::tls_with_config(
                    rumqttc::TlsConfiguration::Rustls(Arc::clone(tls)),
                ));
            }
            let (client, mut events) = rumqttc::AsyncClient::new(o, session.queue);
            let mut network = rumqttc::NetworkOptions::new();
            network.set_connection_timeout(NETWORK_TIMEOUT_S);
            events.set_network_options(network);
            (Sender::V4(client, qos), Connection::V4(Box::new(events)))
        }
        MqttVersion::V5 => {
            let qos = if session.at_least_once {
                v5::mqttbytes::QoS::AtLeastOnce
            } else {
                v5::mqttbytes::QoS::AtMostOnce
            };
            let mut o = v5::MqttOptions::new(&session.client_id, &session.host, session.port);
            let max = u32::try_from(MAX_PACKET_BYTES).unwrap_or(u32::MAX);
            o.set_keep_alive(keepalive)
                .set_clean_start(true)
                .set_max_packet_size(Some(max))
                .set_last_will(v5::mqttbytes::v5::LastWill::new(
                    will_topic,
                    will_payload,
                    v5::mqttbytes::QoS::AtLeastOnce,
                    true,
                    None,
                ))
                .set_connection_timeout(NETWORK_TIMEOUT_S);
            if let Some((user, password)) = &session.credentials {
                o.set_credentials(user, password);
            }
            if let Some(tls) = &session.tls {
                o.set_transport(rumqttc::Transport::tls_with_config(
                    rumqttc::TlsConfiguration::Rustls(Arc::clone(tls)),
                ));
            }
            let (client, events) = v5::AsyncClient::new(o, session.queue);
            (Sender::V5(client, qos), Connection::V5(Box::new(events)))
        }
    }
}
