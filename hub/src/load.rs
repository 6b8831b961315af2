//! What one client may hold of the hub, and the counters of what was refused or closed:
//! open connections in all and per peer address, open watches per token, and the
//! Prometheus text of those counters (`GET /metrics`).
//!
//! Invariants: a connection or watch is counted from its admission until its guard is
//! dropped, however it ends, so the counts never drift; an admission over a bound is refused
//! before anything is read from the client and counted once; counters only grow.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Reads made by watches since the hub started (the first read of each included). A
/// process-wide counter because watches of every hub in the process share the one
/// `GET /metrics` meaning: reads made by the hub's code.
pub static WATCH_READS: AtomicU64 = AtomicU64::new(0);

/// The bounds `aloft-hub run` serves with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time allowed for a TLS handshake.
    pub handshake_timeout: Duration,
    /// Time allowed for a complete HTTP request head, counted from the connection's start
    /// and, on a keep-alive connection, from the end of the previous response: it is also
    /// how long an idle keep-alive connection stays open. Node WebSocket sessions (after
    /// the upgrade) and streaming answers (watches) are not bound by it.
    pub header_timeout: Duration,
    /// Connections open at once, all peers.
    pub max_connections: usize,
    /// Connections open at once from one peer address (a load balancer, or many nodes
    /// behind one NAT, come from one address).
    pub max_connections_per_peer: usize,
    /// Watches (`?watch=true`) open at once per token.
    pub max_watches_per_token: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(20),
            max_connections: 8192,
            max_connections_per_peer: 2048,
            max_watches_per_token: 64,
        }
    }
}

/// Why a connection was refused or closed by the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Over [`Limits::max_connections`].
    TotalLimit,
    /// Over [`Limits::max_connections_per_peer`].
    PeerLimit,
}

#[derive(Debug, Default)]
struct Counters {
    connections_open: AtomicU64,
    refused_total_limit: AtomicU64,
    refused_peer_limit: AtomicU64,
    handshake_timeouts: AtomicU64,
    handshake_failures: AtomicU64,
    header_timeouts: AtomicU64,
    watches_open: AtomicU64,
    watches_refused: AtomicU64,
}

#[derive(Debug, Default)]
struct Held {
    connections: usize,
    per_peer: HashMap<IpAddr, usize>,
    watches: HashMap<String, usize>,
}

/// The hub's load: what is open, against [`Limits`], and the counters. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Load {
    limits: Limits,
    held: Arc<Mutex<Held>>,
    counters: Arc<Counters>,
}

/// An admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct ConnectionGuard {
    load: Load,
    peer: IpAddr,
}

/// An admitted watch; dropping it frees its place.
#[derive(Debug)]
pub struct WatchGuard {
    load: Load,
    token: String,
}

impl Load {
    /// Nothing open yet.
    pub fn new(limits: Limits) -> Load {
        Load {
            limits,
            held: Arc::new(Mutex::new(Held::default())),
            counters: Arc::new(Counters::default()),
        }
    }

    /// The bounds.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a new connection from `peer`, or says which bound it is over (counted).
    pub fn admit(&self, peer: IpAddr) -> Result<ConnectionGuard, Refused> {
        let mut held = self.held();
        if held.connections >= self.limits.max_connections {
            self.counters
                .refused_total_limit
                .fetch_add(1, Ordering::Relaxed);
            return Err(Refused::TotalLimit);
        }
        let from_peer = held.per_peer.entry(peer).or_insert(0);
        if *from_peer >= self.limits.max_connections_per_peer {
            self.counters
                .refused_peer_limit
                .fetch_add(1, Ordering::Relaxed);
            return Err(Refused::PeerLimit);
        }
        *from_peer += 1;
        held.connections += 1;
        self.counters
            .connections_open
            .fetch_add(1, Ordering::Relaxed);
        Ok(ConnectionGuard {
            load: self.clone(),
            peer,
        })
    }

    /// Opens a watch for the token (its secret's digest, never the secret itself), or
    /// `None` (counted) when the token holds [`Limits::max_watches_per_token`] already.
    pub fn open_watch(&self, token: &str) -> Option<WatchGuard> {
        let mut held = self.held();
        let open = held.watches.entry(token.to_owned()).or_insert(0);
        if *open >= self.limits.max_watches_per_token {
            self.counters
                .watches_refused
                .fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *open += 1;
        self.counters.watches_open.fetch_add(1, Ordering::Relaxed);
        Some(WatchGuard {
            load: self.clone(),
            token: token.to_owned(),
        })
    }

    /// A TLS handshake passed its deadline.
    pub fn handshake_timed_out(&self) {
        self.counters
            .handshake_timeouts
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A TLS handshake failed.
    pub fn handshake_failed(&self) {
        self.counters
            .handshake_failures
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A request head did not arrive within [`Limits::header_timeout`] (a slow client,
    /// or an idle keep-alive).
    pub fn header_timed_out(&self) {
        self.counters
            .header_timeouts
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The counters as Prometheus text exposition format (version 0.0.4), with
    /// `sessions` (connected nodes) as a gauge.
    pub fn prometheus(&self, sessions: usize) -> String {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        metric(
            "aloft_hub_connections_open",
            "gauge",
            "TCP connections the hub holds now (API, watches and node sessions).",
            &[("", get(&c.connections_open))],
        );
        metric(
            "aloft_hub_connections_refused_total",
            "counter",
            "Connections refused at accept because a bound was reached.",
            &[
                ("{reason=\"total_limit\"}", get(&c.refused_total_limit)),
                ("{reason=\"peer_limit\"}", get(&c.refused_peer_limit)),
            ],
        );
        metric(
            "aloft_hub_connections_closed_total",
            "counter",
            "Connections the hub closed because the client was too slow or idle.",
            &[
                ("{reason=\"handshake_timeout\"}", get(&c.handshake_timeouts)),
                ("{reason=\"header_timeout\"}", get(&c.header_timeouts)),
            ],
        );
        metric(
            "aloft_hub_tls_handshake_failures_total",
            "counter",
            "TLS handshakes that failed (not timed out).",
            &[("", get(&c.handshake_failures))],
        );
        metric(
            "aloft_hub_watches_open",
            "gauge",
            "Watches (?watch=true) open now.",
            &[("", get(&c.watches_open))],
        );
        metric(
            "aloft_hub_watches_refused_total",
            "counter",
            "Watches refused with 429 because their token held the most allowed.",
            &[("", get(&c.watches_refused))],
        );
        metric(
            "aloft_hub_watch_reads_total",
            "counter",
            "Reads made by watches (each watch reads once, then only after a change).",
            &[("", WATCH_READS.load(Ordering::Relaxed))],
        );
        metric(
            "aloft_hub_sessions_connected",
            "gauge",
            "Nodes with a live session.",
            &[("", sessions as u64)],
        );
        out
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut held = self.load.held();
        held.connections = held.connections.saturating_sub(1);
        if let Some(n) = held.per_peer.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.per_peer.remove(&self.peer);
            }
        }
        self.load
            .counters
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        let mut held = self.load.held();
        if let Some(n) = held.watches.get_mut(&self.token) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.watches.remove(&self.token);
            }
        }
        self.load
            .counters
            .watches_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the order of admissions and releases, no peer holds more than its
        /// bound, the total never passes its bound, each refusal is counted once, and every
        /// place comes back when its guard is dropped.
        #[test]
        fn bounds_hold_and_places_come_back(
            steps in proptest::collection::vec((0u8..4, any::<bool>()), 1..200),
            total in 1usize..12,
            per_peer in 1usize..6,
        ) {
            let load = Load::new(Limits { max_connections: total, max_connections_per_peer: per_peer, ..Limits::default() });
            let mut guards: Vec<ConnectionGuard> = Vec::new();
            let mut refused = 0u64;
            for (peer, release) in steps {
                if release && !guards.is_empty() {
                    guards.remove(0);
                    continue;
                }
                let ip = IpAddr::from([127, 0, 0, peer]);
                match load.admit(ip) {
                    Ok(g) => guards.push(g),
                    Err(_) => refused += 1,
                }
                prop_assert!(guards.len() <= total);
                prop_assert!(guards.iter().filter(|g| g.peer == ip).count() <= per_peer);
            }
            let counted = load.counters.refused_total_limit.load(Ordering::Relaxed)
                + load.counters.refused_peer_limit.load(Ordering::Relaxed);
            prop_assert_eq!(counted, refused);
            guards.clear();
            prop_assert_eq!(load.held().connections, 0);
            prop_assert!(load.held().per_peer.is_empty());
            prop_assert_eq!(load.counters.connections_open.load(Ordering::Relaxed), 0);
        }
    }

    #[test]
    fn watches_are_bounded_per_token_and_counted() {
        let load = Load::new(Limits {
            max_watches_per_token: 2,
            ..Limits::default()
        });
        let a1 = load.open_watch("a");
        let a2 = load.open_watch("a");
        assert!(a1.is_some() && a2.is_some());
        assert!(load.open_watch("a").is_none());
        let b = load.open_watch("b");
        assert!(b.is_some());
        drop(a1);
        assert!(load.open_watch("a").is_some());
        let text = load.prometheus(1);
        assert!(
            text.contains("aloft_hub_watches_refused_total 1\n"),
            "{text}"
        );
        assert!(text.contains("aloft_hub_sessions_connected 1\n"), "{text}");
    }
}
