//! What the agent's end-to-end tests share: a free loopback port, the simulated flight's
//! example config pointed at a test's own directory, and the wait for a record from the
//! supervisor's channel.

// Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;

use aloft_protocol::Record;
use tokio::time::{Instant, timeout_at};

/// A loopback port free at the time of the call.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// deploy/examples/sim.toml with `dir`'s store and capture directory and the metrics
/// endpoint on `metrics_port`.
pub fn sim_toml(dir: &Path, metrics_port: u16) -> String {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/sim.toml");
    std::fs::read_to_string(example)
        .expect("deploy/examples/sim.toml")
        .replace(
            "/tmp/aloft-sim/store",
            &dir.join("store").display().to_string(),
        )
        .replace(
            "/tmp/aloft-sim/capture",
            &dir.join("capture").display().to_string(),
        )
        .replace("127.0.0.1:9464", &format!("127.0.0.1:{metrics_port}"))
}

/// Why [`records_until`] gave up, with the records it saw before.
#[derive(Debug)]
pub enum Unmet {
    /// The channel closed.
    Closed(Vec<Record>),
    /// The deadline passed.
    TimedOut(Vec<Record>),
}

/// Records from `next` until `done` accepts one, returned with all those before it in
/// order; gives up when the channel closes or at `deadline`.
pub async fn records_until(
    mut next: impl AsyncFnMut() -> Option<Record>,
    deadline: Instant,
    mut done: impl FnMut(&Record) -> bool,
) -> Result<Vec<Record>, Unmet> {
    let mut seen = Vec::new();
    loop {
        match timeout_at(deadline, next()).await {
            Ok(Some(r)) => {
                let hit = done(&r);
                seen.push(r);
                if hit {
                    return Ok(seen);
                }
            }
            Ok(None) => return Err(Unmet::Closed(seen)),
            Err(_) => return Err(Unmet::TimedOut(seen)),
        }
    }
}
