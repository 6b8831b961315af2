//! The local MQTT bus (docs/mqtt.md): the agent's readings and statuses out to the board's
//! broker, and what other programs publish in.
//!
//! # Layout
//!
//! - this module: [`Outgoing`], a message to publish, and [`InboundHandler`], the seam through
//!   which the inbound side (ingest of other programs' readings, the device twin) takes the
//!   messages of the topics it subscribes to and answers with messages to publish.
//! - [`client`]: the bus task: session, reconnection with backoff, retained state after every
//!   connection, the coalescing timer, the inbound hand-off; [`start`] starts it.
//! - [`publish`]: topics, payloads and the coalescing of readings, without I/O.
//! - [`wire`]: the one seam over rumqttc's MQTT 3.1.1 and MQTT 5 clients.
//! - [`ingest`]: other programs' readings on `<prefix>/<node>/ingest/<sensor>`, checked
//!   against the config's `mqtt` sensors; [`mapper`]: a KubeEdge mapper's MQTT pushes;
//!   [`twin`]: KubeEdge's device twin topics and messages; all three without I/O.
//! - [`inbound`]: the handler that routes the inbound topics to those three and hands the
//!   readings taken to their `mqtt` sensor's device.
//!
//! Invariants: the bus is a view of the store, never its source; nothing on the bus can
//! block a sensor or the store writer, and the bus's memory is bounded whatever the broker
//! does.

pub mod client;
pub mod fuzzing;
pub mod inbound;
pub mod ingest;
pub mod mapper;
pub mod publish;
pub mod twin;
pub mod wire;

pub use client::{Bus, BusError, BusSources, start};

/// One message for the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The full topic name.
    pub topic: String,
    /// The payload.
    pub payload: Vec<u8>,
    /// Whether the broker keeps it as the topic's retained message.
    pub retain: bool,
}

/// The inbound side of the bus, plugged into the client loop: the loop subscribes to
/// [`InboundHandler::subscriptions`] at every connection and hands every message that
/// arrives on them to [`InboundHandler::handle`], publishing what it returns.
///
/// Runs on the bus task: a handler must not block (no waiting on the store writer; a
/// bounded `try_send` and a count of what was refused).
pub trait InboundHandler: Send {
    /// Topic filters to subscribe to (wildcards allowed).
    fn subscriptions(&self) -> Vec<String>;

    /// Takes one message that arrived on a subscribed topic; returns what to publish in
    /// answer (results, errors, changes).
    fn handle(&mut self, topic: &str, payload: &[u8]) -> Vec<Outgoing>;

    /// Called after every (re)connection, after the subscriptions: what to publish then
    /// (retained documents, for instance). Nothing by default.
    fn connected(&mut self) -> Vec<Outgoing> {
        Vec::new()
    }
}
