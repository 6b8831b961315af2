//! What the agent's end-to-end tests share: a free loopback port, the simulated flight's
//! example config pointed at a test's own directory, the running binary's status and the
//! wait for it to say something, and the wait for a record from the supervisor's channel.

// Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

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

/// How many sensors deploy/examples/sim.toml runs (its `[[sensor]]` tables).
pub fn sim_sensor_count() -> usize {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/sim.toml");
    std::fs::read_to_string(example)
        .expect("deploy/examples/sim.toml")
        .lines()
        .filter(|l| l.trim() == "[[sensor]]")
        .count()
}

/// [`sim_toml`] written to `dir/name`; its path.
pub fn write_sim_config(dir: &Path, name: &str, metrics_port: u16) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, sim_toml(dir, metrics_port)).expect("the config written");
    path
}

/// What `aloft-agent status` prints for the agent whose endpoint is on `port`.
pub fn status(port: u16) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_aloft-agent"))
        .args(["status", "--address", &format!("127.0.0.1:{port}")])
        .output()
        .expect("aloft-agent status runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// [`status`] every 200 ms until `done` holds for it, which is returned; panics with the
/// last status after `patience`, or at once when `agent` (when given) has exited.
pub fn wait_for_status(
    port: u16,
    patience: Duration,
    what: &str,
    mut agent: Option<&mut Child>,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = std::time::Instant::now() + patience;
    loop {
        if let Some(agent) = agent.as_deref_mut() {
            assert!(
                agent.try_wait().expect("the agent's status").is_none(),
                "the agent exited while waiting for {what}"
            );
        }
        let text = status(port);
        if done(&text) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {what} within {patience:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
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
