//! `cargo xtask bench hub`: what open watches cost the release hub while one release agent
//! syncs the simulated flight (every simulated sensor, its live lane and its stream) over
//! loopback.
//!
//! Figures, one a line `hub.FIGURE VALUE UNIT`:
//! - `hub.idle_watch_cpu_pct`: the hub's CPU (% of one core, from /proc) over `WINDOW` with
//!   `WATCHES` watches open on resources that do not change (commands and events, held by
//!   `TOKENS` viewer tokens), minus the same run's figure over `WINDOW` without them.
//! - `hub.watch_event_latency_ms`: p99 over `COMMANDS` commands, from sending a command's
//!   creation to all the watchers having seen a line naming it.
//! - `hub.api_p99_ms`: p99 of `READS` plain reads (`GET /api/v1/nodes/NODE`) with no watch
//!   open; `hub.api_p99_ms_under_watches`: the same with the watches open.
//! - `hub.sensor_watch_cpu_pct`: the hub's CPU with `WATCHES` sensor watches open (after the
//!   others closed), minus the figure without watches. Sensor status does change (the node's
//!   live lane, about once a second), so this is the cost of following it.
//!
//! Nothing here asserts: figures only. The machine may be shared: the figures carry its
//! noise. `ALOFT_BENCH_DEBUG=1` uses the debug binaries, to check the bench itself quickly;
//! `ALOFT_BENCH_BIN=DIR` uses the `aloft-hub` and `aloft-agent` in DIR and builds nothing
//! (to measure an older build beside the current one).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aloftctl::client::Hub;
use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::bench_hub_process::{
    DEADLINE, LocalHub, build_hub_and_agent, percentile_ms, start_agent, wait,
};
use crate::procfs::{clock_ticks_per_s, cpu_ticks};

const NODE: &str = "bench";
const TOKENS: usize = 10;
const WATCHES: usize = 100;
const WINDOW: Duration = Duration::from_secs(20);
const READS: usize = 300;
const COMMANDS: usize = 30;

pub fn bench() -> Result<()> {
    if let Some(bin) = std::env::var_os("ALOFT_BENCH_BIN") {
        return in_temp_dir(Path::new(&bin));
    }
    in_temp_dir(&build_hub_and_agent()?)
}

fn in_temp_dir(bin: &Path) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("aloft-bench-hub-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = measure(bin, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure(bin: &Path, dir: &Path) -> Result<()> {
    let hub = LocalHub::start(bin, dir, NODE)?;
    let hub_pid = hub.pid();
    let config = agent_config(dir, &hub.addr)?;
    let _agent = start_agent(bin, &config)?;
    let api = hub.admin_api()?;
    let node_path = format!("/api/v1/nodes/{NODE}");
    wait(&api, &node_path, "the node connected", |n| {
        n.pointer("/status/connected") == Some(&Value::Bool(true))
    })?;
    // One command settled before the watches open, so that a commands watch has a first
    // line (its ADDED) that says it is open, and nothing changes afterwards.
    let first = create(&api)?;
    wait(
        &api,
        &format!("/api/v1/commands/{first}"),
        "the first command ended",
        |c| {
            matches!(
                c.pointer("/status/phase").and_then(Value::as_str),
                Some("Succeeded" | "Failed")
            )
        },
    )?;
    let mut viewers = Vec::with_capacity(TOKENS);
    for i in 0..TOKENS {
        let token = api.post(
            "/api/v1/tokens",
            &json!({"spec": {"role": "viewer", "description": format!("bench viewer {i}")}}),
        )?;
        let secret = token
            .pointer("/status/secret")
            .and_then(Value::as_str)
            .context("no secret in the created token")?
            .to_owned();
        viewers.push(Hub::new(&hub.target(secret), Duration::from_secs(10))?);
    }

    eprintln!("xtask: {} s of the hub without watches", WINDOW.as_secs());
    let cpu_without = cpu_pct(hub_pid, WINDOW)?;
    let mut reads = read_latencies(&api, &node_path)?;
    let api_p99 = percentile_ms(&mut reads, 99.0);

    eprintln!("xtask: opening {WATCHES} watches");
    let (seen_tx, seen_rx) = mpsc::channel::<(usize, Instant, String)>();
    let mut held = Vec::with_capacity(WATCHES);
    for w in 0..WATCHES {
        let viewer = viewers[w % TOKENS].clone();
        let path = if w % 2 == 0 {
            "/api/v1/commands?watch=true&timeoutSeconds=3600"
        } else {
            "/api/v1/events?watch=true&timeoutSeconds=3600"
        };
        let seen = seen_tx.clone();
        held.push(std::thread::spawn(move || {
            let _ = viewer.watch(path, |line| {
                seen.send((w, Instant::now(), line.to_string())).is_ok()
            });
        }));
    }
    drop(seen_tx);
    let mut open = [false; WATCHES];
    let deadline = Instant::now() + DEADLINE;
    while open.iter().any(|o| !o) {
        let left = deadline.saturating_duration_since(Instant::now());
        let (w, _, _) = seen_rx
            .recv_timeout(left)
            .context("not every watch opened in time")?;
        open[w] = true;
    }
    // What the opening sent is not news.
    while seen_rx.try_recv().is_ok() {}

    eprintln!(
        "xtask: {} s of the hub with the watches open",
        WINDOW.as_secs()
    );
    let cpu_with = cpu_pct(hub_pid, WINDOW)?;
    let mut reads = read_latencies(&api, &node_path)?;
    let api_p99_watched = percentile_ms(&mut reads, 99.0);

    eprintln!("xtask: {COMMANDS} commands seen by every watcher");
    let mut latencies = Vec::with_capacity(COMMANDS);
    for _ in 0..COMMANDS {
        let started = Instant::now();
        let id = create(&api)?;
        let mut reached: HashMap<usize, Instant> = HashMap::new();
        let deadline = started + DEADLINE;
        while reached.len() < WATCHES {
            let left = deadline.saturating_duration_since(Instant::now());
            let (w, at, line) = seen_rx
                .recv_timeout(left)
                .with_context(|| format!("command {id} not seen by every watcher"))?;
            if line.contains(&id) {
                reached.entry(w).or_insert(at);
            }
        }
        let last = reached.values().max().copied().unwrap_or(started);
        latencies.push(last.duration_since(started));
        // Let the command's own changes (delivered, succeeded) pass before the next.
        std::thread::sleep(Duration::from_millis(300));
        while seen_rx.try_recv().is_ok() {}
    }

    // A watch ends at its next line once the receiver is gone: one more command ends them
    // all, before the sensor watches open.
    drop(seen_rx);
    let _ = create(&api)?;
    for thread in held {
        let _ = thread.join();
    }

    eprintln!(
        "xtask: {} s of the hub with {WATCHES} sensor watches open",
        WINDOW.as_secs()
    );
    let (sensor_tx, sensor_rx) = mpsc::channel::<usize>();
    for w in 0..WATCHES {
        let viewer = viewers[w % TOKENS].clone();
        let seen = sensor_tx.clone();
        std::thread::spawn(move || {
            let _ = viewer.watch("/api/v1/sensors?watch=true&timeoutSeconds=3600", |_| {
                seen.send(w).is_ok()
            });
        });
    }
    drop(sensor_tx);
    let mut open = [false; WATCHES];
    let deadline = Instant::now() + DEADLINE;
    while open.iter().any(|o| !o) {
        let left = deadline.saturating_duration_since(Instant::now());
        let w = sensor_rx
            .recv_timeout(left)
            .context("not every sensor watch opened in time")?;
        open[w] = true;
    }
    // Drained beside the measurement, so the watches never block on a full channel.
    std::thread::spawn(move || for _ in sensor_rx {});
    let cpu_sensors = cpu_pct(hub_pid, WINDOW)?;

    println!("hub.idle_watch_cpu_pct {:.2} %", cpu_with - cpu_without);
    println!(
        "hub.watch_event_latency_ms {:.1} ms",
        percentile_ms(&mut latencies, 99.0)
    );
    println!("hub.api_p99_ms {api_p99:.1} ms");
    println!("hub.api_p99_ms_under_watches {api_p99_watched:.1} ms");
    println!(
        "hub.sensor_watch_cpu_pct {:.2} %",
        cpu_sensors - cpu_without
    );
    eprintln!(
        "xtask: hub CPU without watches {cpu_without:.2} %, with the idle ones {cpu_with:.2} %, with sensor watches {cpu_sensors:.2} %"
    );
    Ok(())
}

/// Creates a restart of the simulated MS5611; its id.
fn create(api: &Hub) -> Result<String> {
    let command = api.post(
        &format!("/api/v1/nodes/{NODE}/commands"),
        &json!({"spec": {"action": "restartSensor", "sensor": "static", "hard": false}}),
    )?;
    Ok(command
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .context("no name in the created command")?
        .to_owned())
}

fn read_latencies(api: &Hub, path: &str) -> Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(READS);
    for _ in 0..READS {
        let started = Instant::now();
        api.get(path)?;
        samples.push(started.elapsed());
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(samples)
}

/// The process's CPU over `window`, % of one core.
fn cpu_pct(pid: u32, window: Duration) -> Result<f64> {
    let (before, t0) = (cpu_ticks(pid).context("hub CPU")?, Instant::now());
    std::thread::sleep(window);
    let (after, t1) = (cpu_ticks(pid).context("hub CPU")?, Instant::now());
    let seconds = after.saturating_sub(before) as f64 / clock_ticks_per_s();
    Ok(seconds / t1.duration_since(t0).as_secs_f64() * 100.0)
}

/// The simulated flight (every simulated sensor of deploy/examples/sim.toml) syncing
/// straight to the hub.
fn agent_config(dir: &Path, hub_addr: &str) -> Result<PathBuf> {
    let store = dir.join("store");
    let text = format!(
        "[simulation]\nseed = 7\nspeed = 1.0\nstart_at_s = 0.0\n\n[node]\nname = \"{NODE}\"\n\n\
         [store]\npath = \"{}\"\nmax_bytes = 268_435_456\nfull_policy = \"decimate\"\nflush_interval = \"1s\"\nretain_acked = \"1h\"\n\n\
         [[sensor]]\nname = \"gps\"\nkind = \"ublox\"\nbaud = 115_200\n\n\
         [[sensor]]\nname = \"cosmic-ray\"\nkind = \"cosmicwatch\"\nbaud = 9_600\n\n\
         [[sensor]]\nname = \"static\"\nkind = \"ms5611\"\naddress = 0x77\ninterval = \"100ms\"\n\n\
         [[sensor]]\nname = \"outside-air\"\nkind = \"bme280\"\naddress = 0x76\ninterval = \"1s\"\n\n\
         [[sensor]]\nname = \"co2\"\nkind = \"scd41\"\naddress = 0x62\ninterval = \"5s\"\nambient_pressure_from = \"static\"\n\n\
         [[sensor]]\nname = \"pitot\"\nkind = \"ms4525do\"\naddress = 0x28\ninterval = \"20ms\"\nstatic_pressure_from = \"static\"\noutside_air_from = \"outside-air\"\n\n\
         [hub]\nurl = \"wss://{hub_addr}/v1/nodes/connect\"\ntoken_file = \"{}\"\nca_file = \"{}\"\n",
        store.display(),
        dir.join("node.token").display(),
        dir.join("hub").join("ca.pem").display(),
    );
    let path = dir.join("agent.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}
