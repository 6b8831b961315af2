//! `cargo xtask bench control`: remote control over loopback, release hub and agent, the
//! agent on the simulated sensors and connected through a cuttable TCP relay.
//!
//! Figures: `control.restart_p50_ms` and `control.restart_p99_ms`, from the restart
//! request to the hub until "running again" is visible through the API (the sensor's
//! reported restart count went up and its state is Running), over `RESTARTS` restarts of the
//! simulated MS5611 (its own init is a reset and a PROM read: about 3 ms of device time);
//! and `control.after_outage_s`, after a 60 s outage (the relay cut every connection and
//! refused new ones), from the agent's reconnect (the relay accepting its connection) to a
//! command queued during the outage applied (Succeeded visible through the API). Also
//! `control.command_p99_ms`, the same restarts until the command's result is visible.
//! Nothing here asserts: figures only.
//!
//! `ALOFT_BENCH_DEBUG=1` uses the debug binaries, to check the bench itself quickly.

use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aloftctl::client::Hub;
use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::bench_hub_process::{
    DEADLINE, LocalHub, build_hub_and_agent, percentile_ms, start_agent, wait,
};

const RESTARTS: usize = 500;
const OUTAGE: Duration = Duration::from_secs(60);
const NODE: &str = "bench";
const SENSOR: &str = "static";
const POLL: Duration = Duration::from_millis(1);

pub fn bench() -> Result<()> {
    let bin = build_hub_and_agent()?;
    let dir = std::env::temp_dir().join(format!("aloft-bench-control-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = measure(&bin, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure(bin: &Path, dir: &Path) -> Result<()> {
    let hub = LocalHub::start(bin, dir, NODE)?;
    let relay = Relay::start(&hub.addr)?;

    let config = agent_config(dir, relay.port)?;
    let _agent = start_agent(bin, &config)?;
    let api = hub.admin_api()?;
    let sensor_path = format!("/api/v1/nodes/{NODE}/sensors/{SENSOR}");
    let running = |s: &Value| s.pointer("/status/state").and_then(Value::as_str) == Some("Running");
    let restarts = |s: &Value| {
        s.pointer("/status/restarts")
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    wait(&api, &sensor_path, "the sensor running", |s| running(s))?;
    eprintln!("xtask: {RESTARTS} restarts");

    let mut to_running = Vec::with_capacity(RESTARTS);
    let mut to_result = Vec::with_capacity(RESTARTS);
    for _ in 0..RESTARTS {
        let before = restarts(&api.get(&sensor_path)?);
        let started = Instant::now();
        let command = create(&api)?;
        let id = command
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let mut result_seen = None;
        loop {
            let sensor = api.get(&sensor_path)?;
            if result_seen.is_none() && finished(&api, &id)? {
                result_seen = Some(started.elapsed());
            }
            if restarts(&sensor) > before && running(&sensor) {
                to_running.push(started.elapsed());
                break;
            }
            if started.elapsed() > DEADLINE {
                bail!("restart {id} not seen running again within {DEADLINE:?}");
            }
            std::thread::sleep(POLL);
        }
        // Let the command's result land before the next one, so each is measured alone.
        let deadline = Instant::now() + DEADLINE;
        while result_seen.is_none() {
            if finished(&api, &id)? {
                result_seen = Some(started.elapsed());
            } else if Instant::now() > deadline {
                bail!("command {id} never ended");
            }
            std::thread::sleep(POLL);
        }
        to_result.extend(result_seen);
    }

    eprintln!("xtask: a {} s outage", OUTAGE.as_secs());
    relay.cut();
    wait(
        &api,
        &format!("/api/v1/nodes/{NODE}"),
        "the node offline",
        |n| n.pointer("/status/connected") == Some(&Value::Bool(false)),
    )?;
    let command = create(&api)?;
    let id = command
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    std::thread::sleep(OUTAGE);
    relay.restore();
    let deadline = Instant::now() + OUTAGE;
    let reconnected = loop {
        if let Some(at) = relay.last_accept() {
            break at;
        }
        if Instant::now() > deadline {
            bail!("the agent did not reconnect");
        }
        std::thread::sleep(POLL);
    };
    let applied = loop {
        if finished(&api, &id)? {
            break Instant::now();
        }
        if Instant::now() > deadline {
            bail!("the queued command was not applied after the outage");
        }
        std::thread::sleep(POLL);
    };

    println!(
        "control.restart_p50_ms {:.1} ms",
        percentile_ms(&mut to_running, 50.0)
    );
    println!(
        "control.restart_p99_ms {:.1} ms",
        percentile_ms(&mut to_running, 99.0)
    );
    println!(
        "control.command_p99_ms {:.1} ms",
        percentile_ms(&mut to_result, 99.0)
    );
    println!(
        "control.after_outage_s {:.3} s",
        applied.duration_since(reconnected).as_secs_f64()
    );
    Ok(())
}

fn create(api: &Hub) -> Result<Value> {
    Ok(api.post(
        &format!("/api/v1/nodes/{NODE}/commands"),
        &json!({"spec": {"action": "restartSensor", "sensor": SENSOR, "hard": false}}),
    )?)
}

fn finished(api: &Hub, id: &str) -> Result<bool> {
    let command = api.get(&format!("/api/v1/commands/{id}"))?;
    Ok(command.pointer("/status/phase").and_then(Value::as_str) == Some("Succeeded"))
}

/// The simulated flight's example config with only the MS5611, syncing through the relay.
fn agent_config(dir: &Path, relay_port: u16) -> Result<PathBuf> {
    let store = dir.join("store");
    let text = format!(
        "[simulation]\nseed = 7\nspeed = 1.0\nstart_at_s = 0.0\n\n[node]\nname = \"{NODE}\"\n\n\
         [store]\npath = \"{}\"\nmax_bytes = 67_108_864\nfull_policy = \"drop-oldest\"\nflush_interval = \"1s\"\nretain_acked = \"1h\"\n\n\
         [[sensor]]\nname = \"{SENSOR}\"\nkind = \"ms5611\"\naddress = 0x77\ninterval = \"100ms\"\n\n\
         [hub]\nurl = \"wss://127.0.0.1:{relay_port}/v1/nodes/connect\"\ntoken_file = \"{}\"\nca_file = \"{}\"\n",
        store.display(),
        dir.join("node.token").display(),
        dir.join("hub").join("ca.pem").display(),
    );
    let path = dir.join("agent.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// A TCP relay between the agent and the hub that can cut every connection and refuse new
/// ones (an outage), and says when it last accepted one (a reconnect).
struct Relay {
    port: u16,
    blocked: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    accepted: Arc<Mutex<Option<Instant>>>,
}

impl Relay {
    fn start(target: &str) -> Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let relay = Relay {
            port,
            blocked: Arc::new(AtomicBool::new(false)),
            open: Arc::new(Mutex::new(Vec::new())),
            accepted: Arc::new(Mutex::new(None)),
        };
        let (blocked, open, accepted) = (
            relay.blocked.clone(),
            relay.open.clone(),
            relay.accepted.clone(),
        );
        let target = target.to_owned();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if blocked.load(Ordering::SeqCst) {
                    // Refused: closed at once, as an unreachable hub looks to the agent.
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                *accepted.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                let pipes = (
                    client.try_clone(),
                    server.try_clone(),
                    client.try_clone(),
                    server.try_clone(),
                );
                let (Ok(c1), Ok(s1), Ok(c2), Ok(s2)) = pipes else {
                    continue;
                };
                open.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend([c2, s2]);
                std::thread::spawn(move || pipe(c1, server));
                std::thread::spawn(move || pipe(s1, client));
            }
        });
        Ok(relay)
    }

    /// An outage: every connection cut, new ones refused.
    fn cut(&self) {
        self.blocked.store(true, Ordering::SeqCst);
        *self.accepted.lock().unwrap_or_else(|e| e.into_inner()) = None;
        for stream in self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// The link is back.
    fn restore(&self) {
        self.blocked.store(false, Ordering::SeqCst);
    }

    fn last_accept(&self) -> Option<Instant> {
        *self.accepted.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}
