//! The seam between sessions and the control layer (commands, desired state,
//! logs): the session asks it what to send when a node connects and hands it every control
//! message the node sends. Defined here, on the sessions' side, so that the dependency runs
//! one way: the control layer names the nodes (it pushes through [`crate::Sessions`]),
//! the nodes never name the control layer. The hub runs without one ([`NoControl`]).
//!
//! Invariant: implementations must not block for long: they run on the session's task.

use std::sync::Mutex;

use aloft_protocol::sync::{Downlink, Uplink};

/// What the control layer does at the two moments a session involves it.
pub trait NodeControl: Send + Sync + std::fmt::Debug {
    /// A node has said hello and been welcomed: what to send it now (its desired spec, its
    /// pending commands).
    fn on_connect(&self, node: &str) -> Vec<Downlink>;
    /// A control message from the node: CommandAck, CommandResult, Observed, Logs.
    fn on_control(&self, node: &str, message: Uplink);
}

/// No control layer: sends nothing, drops control messages.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoControl;

impl NodeControl for NoControl {
    fn on_connect(&self, _node: &str) -> Vec<Downlink> {
        Vec::new()
    }

    fn on_control(&self, node: &str, message: Uplink) {
        tracing::debug!(node, ?message, "Control message dropped: no control layer.");
    }
}

/// Sends a fixed list on connect and records every control message (for tests).
#[derive(Debug, Default)]
pub struct RecordingControl {
    on_connect: Vec<Downlink>,
    received: Mutex<Vec<(String, Uplink)>>,
}

impl RecordingControl {
    /// Sends `on_connect` at every connect.
    pub fn new(on_connect: Vec<Downlink>) -> RecordingControl {
        RecordingControl {
            on_connect,
            received: Mutex::new(Vec::new()),
        }
    }

    /// Every control message received so far, with its node.
    pub fn received(&self) -> Vec<(String, Uplink)> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl NodeControl for RecordingControl {
    fn on_connect(&self, _node: &str) -> Vec<Downlink> {
        self.on_connect.clone()
    }

    fn on_control(&self, node: &str, message: Uplink) {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((node.to_owned(), message));
    }
}
