//! What the agent's end-to-end tests share: a free loopback port and the simulated flight's
//! example config pointed at a test's own directory.

// Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;

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
