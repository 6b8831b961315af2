//! The connected nodes: one live session per node, and a handle to push downlink messages
//! to it.
//!
//! Invariants: at most one session per node is current; attaching a new one tells the old
//! one it was replaced (it may be half-open: it is not waited for); a session detaches only
//! itself, never its successor.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aloft_protocol::sync::Downlink;
use tokio::sync::mpsc;

/// How many downlink messages may wait for a session before `push` says no.
const QUEUE: usize = 256;

/// What a session receives from the rest of the hub.
#[derive(Debug)]
pub(crate) enum SessionSignal {
    /// Send this to the node.
    Send(Downlink),
    /// A newer session of the node took over: refuse and close.
    Replaced,
}

#[derive(Debug)]
struct Slot {
    id: u64,
    tx: mpsc::Sender<SessionSignal>,
}

/// The current session of every connected node.
#[derive(Debug, Clone, Default)]
pub struct Sessions {
    slots: Arc<Mutex<HashMap<String, Slot>>>,
    started: Arc<AtomicU64>,
}

/// A session's registration.
#[derive(Debug)]
pub(crate) struct Attached {
    pub id: u64,
    pub rx: mpsc::Receiver<SessionSignal>,
}

impl Sessions {
    /// Sends a message to the node's current session at once; `false` if the node is not
    /// connected or its queue is full (the control layer then delivers on next connect).
    pub fn push(&self, node: &str, message: Downlink) -> bool {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .get(node)
            .is_some_and(|slot| slot.tx.try_send(SessionSignal::Send(message)).is_ok())
    }

    /// Whether the node has a current session.
    pub fn is_connected(&self, node: &str) -> bool {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.get(node).is_some_and(|slot| !slot.tx.is_closed())
    }

    /// Names of the connected nodes.
    pub fn connected(&self) -> Vec<String> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<String> = slots.keys().cloned().collect();
        names.sort();
        names
    }

    /// Sessions started (welcomed) since the hub started, all nodes.
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Makes a new session the node's current one, replacing any other.
    pub(crate) fn attach(&self, node: &str) -> Attached {
        let id = self.started.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::channel(QUEUE);
        let old = self
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(node.to_owned(), Slot { id, tx });
        if let Some(old) = old {
            tracing::info!(node, old = old.id, new = id, "Session replaced.");
            // The old session may be stuck writing to a half-open socket: never wait.
            let _ = old.tx.try_send(SessionSignal::Replaced);
        }
        Attached { id, rx }
    }

    /// Removes the session `id` if it is still the node's current one.
    pub(crate) fn detach(&self, node: &str, id: u64) -> bool {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if slots.get(node).is_some_and(|s| s.id == id) {
            slots.remove(node);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_new_session_replaces_the_old_and_the_old_cannot_detach_it() {
        let sessions = Sessions::default();
        let mut first = sessions.attach("glider");
        let mut second = sessions.attach("glider");
        assert!(matches!(
            first.rx.recv().await,
            Some(SessionSignal::Replaced)
        ));
        assert!(!sessions.detach("glider", first.id));
        assert!(sessions.push("glider", Downlink::Ping { nonce: 7 }));
        assert!(matches!(
            second.rx.recv().await,
            Some(SessionSignal::Send(Downlink::Ping { nonce: 7 }))
        ));
        assert!(sessions.detach("glider", second.id));
        assert!(!sessions.push("glider", Downlink::Ping { nonce: 8 }));
        assert_eq!(sessions.started(), 2);
    }
}
