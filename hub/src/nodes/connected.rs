//! The connected nodes: one live session per node, and a handle to push downlink messages
//! to it.
//!
//! Invariants: at most one session per node is current; attaching a new one tells the old
//! one it was replaced (it may be half-open: it is not waited for); a session detaches only
//! itself, never its successor. Revoking a session's token or deleting its node ends the
//! session at once ([`Sessions::end_token`], [`Sessions::end_node`]): the end is signalled
//! beside the downlink queue, so a full queue cannot delay it, and the session's persister
//! stores nothing after it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aloft_protocol::sync::Downlink;
use tokio::sync::{mpsc, watch};

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
    /// The token the session authenticated with.
    token: String,
    tx: mpsc::Sender<SessionSignal>,
    /// Set once to why the session must end now (its token revoked, its node deleted).
    end: watch::Sender<Option<String>>,
}

/// The current session of every connected node.
#[derive(Debug, Clone)]
pub struct Sessions {
    slots: Arc<Mutex<HashMap<String, Slot>>>,
    started: Arc<AtomicU64>,
    /// Bumped whenever what the hub shows of a node's live state changes (a session
    /// started or ended, its sensors' reports): sensor watches wait on it instead of polling.
    live: Arc<watch::Sender<u64>>,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            slots: Arc::default(),
            started: Arc::default(),
            live: Arc::new(watch::channel(0).0),
        }
    }
}

/// A session's registration.
#[derive(Debug)]
pub(crate) struct Attached {
    pub id: u64,
    pub rx: mpsc::Receiver<SessionSignal>,
    /// Turns `Some(reason)` when the session must end at once.
    pub end: watch::Receiver<Option<String>>,
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

    /// Says that a node's live state changed (its session started or ended, its sensors'
    /// reports or its health changed, it was created or deleted): wakes every
    /// [`Sessions::watch_live`] receiver.
    pub fn live_changed(&self) {
        self.live.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A receiver that sees a new value at every [`Sessions::live_changed`].
    pub fn watch_live(&self) -> watch::Receiver<u64> {
        self.live.subscribe()
    }

    /// Sessions started (welcomed) since the hub started, all nodes.
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Ends the sessions that authenticated with `token` (just revoked); how many.
    pub fn end_token(&self, token: &str) -> usize {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let mut ended = 0;
        for (node, slot) in slots.iter().filter(|(_, s)| s.token == token) {
            tracing::info!(
                node,
                session = slot.id,
                token,
                "Token revoked; ending its session."
            );
            slot.end.send_replace(Some(format!(
                "token {token} of node {node} was revoked; this session ends"
            )));
            ended += 1;
        }
        ended
    }

    /// Ends the node's session (the node was just deleted); whether it had one.
    pub fn end_node(&self, node: &str) -> bool {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let Some(slot) = slots.get(node) else {
            return false;
        };
        tracing::info!(node, session = slot.id, "Node deleted; ending its session.");
        slot.end.send_replace(Some(format!(
            "node {node} was deleted and its tokens revoked; this session ends"
        )));
        true
    }

    /// Makes a new session, authenticated by `token`, the node's current one, replacing any
    /// other.
    pub(crate) fn attach(&self, node: &str, token: &str) -> Attached {
        let id = self.started.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::channel(QUEUE);
        let (end, end_rx) = watch::channel(None);
        let old = self.slots.lock().unwrap_or_else(|e| e.into_inner()).insert(
            node.to_owned(),
            Slot {
                id,
                token: token.to_owned(),
                tx,
                end,
            },
        );
        if let Some(old) = old {
            tracing::info!(node, old = old.id, new = id, "Session replaced.");
            // The old session may be stuck writing to a half-open socket: never wait.
            let _ = old.tx.try_send(SessionSignal::Replaced);
        }
        Attached {
            id,
            rx,
            end: end_rx,
        }
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
        let mut first = sessions.attach("glider", "tok-1");
        let mut second = sessions.attach("glider", "tok-1");
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

    #[tokio::test]
    async fn revoking_a_token_ends_only_its_sessions_even_with_a_full_queue() {
        let sessions = Sessions::default();
        let glider = sessions.attach("glider", "tok-g");
        let other = sessions.attach("other", "tok-o");
        // A queue full of downlink messages must not hold the end back.
        while sessions.push("glider", Downlink::Ping { nonce: 1 }) {}
        assert_eq!(sessions.end_token("tok-g"), 1);
        assert!(
            glider
                .end
                .borrow()
                .as_deref()
                .is_some_and(|r| r.contains("revoked"))
        );
        assert!(other.end.borrow().is_none());
        assert!(sessions.end_node("other"));
        assert!(
            other
                .end
                .borrow()
                .as_deref()
                .is_some_and(|r| r.contains("deleted"))
        );
        assert!(!sessions.end_node("nobody"));
        assert_eq!(sessions.end_token("tok-none"), 0);
    }
}
