//! `cargo xtask bench mqtt`: the agent's local MQTT bus against a real Mosquitto from Debian
//! (docs/mqtt.md, "Measurements").
//!
//! One broker for the run, started on a free loopback port with its own config
//! ([`aloft_test_support::mosquitto`]). Each group of figures is one function that takes the
//! [`Rig`] (the release agent, the run's directory, the broker):
//!
//! - [`out_figures`]: the simulated flight's devices in one `aloft-agent simulate` process, read
//!   by the release agent through its hardware path, without `[mqtt]` and with it in turn,
//!   [`ROUNDS`] times each, each for [`MEASURE`] after [`WARM_UP`]; the means are compared. A `mosquitto_sub` on
//!   `aloft/<node>/#` counts the readings the bus publishes. Figures:
//!   `mqtt.publish_per_s` (reading publishes a second, at the subscriber),
//!   `mqtt.agent_cpu_pct_extra` (CPU % of one core, bus on minus off) and
//!   `mqtt.agent_wakeups_extra_per_s` (context switches of all the agent's threads a
//!   second, on minus off; target at most 20).
//!
//! - [`ingest_figures`]: `mqtt.ingest_per_s`, `mqtt.mosquitto_sub_per_s` and
//!   `mqtt.ingest_vs_broker` (the inbound side's, in `bench_mqtt_in`).
//!
//! Nothing here asserts: figures only; notes go to stderr.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aloft_test_support::mosquitto::{Mosquitto, Subscription};
use anyhow::{Context, Result, anyhow, bail};

use crate::bench_agent::{sim_example, stop, switches};
use crate::procfs::{clock_ticks_per_s, cpu_ticks};

/// How long each flight (bus off, bus on) is measured, after its warm-up.
const MEASURE: Duration = Duration::from_secs(30);
/// Flights of each kind, in turn.
const ROUNDS: usize = 2;
const WARM_UP: Duration = Duration::from_secs(5);
/// What every figure group shares.
pub struct Rig {
    /// The release agent.
    pub agent: PathBuf,
    /// The run's directory (removed at the end).
    pub dir: PathBuf,
    /// The broker.
    pub broker: Mosquitto,
}

pub fn bench() -> Result<()> {
    // The release agent (debug with ALOFT_BENCH_DEBUG).
    let bin = crate::bench_mqtt_in::build_agent()?;
    if !aloft_test_support::mosquitto::available() {
        bail!(
            "mosquitto and mosquitto-clients are not installed: apt-get install mosquitto mosquitto-clients"
        );
    }
    let dir = std::env::temp_dir().join(format!("aloft-bench-mqtt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = Mosquitto::start(&dir.join("broker"))
        .map_err(|e| anyhow!("start mosquitto: {e}"))
        .and_then(|broker| {
            let rig = Rig {
                agent: bin.join("aloft-agent"),
                dir: dir.clone(),
                broker,
            };
            out_figures(&rig)?;
            ingest_figures(&rig)
        });
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// `mqtt.ingest_per_s`, `mqtt.mosquitto_sub_per_s`, `mqtt.ingest_vs_broker`
/// ([`crate::bench_mqtt_in`], with its own broker and agent).
fn ingest_figures(rig: &Rig) -> Result<()> {
    let bin = rig
        .agent
        .parent()
        .context("the release agent has no folder")?;
    for line in crate::bench_mqtt_in::ingest(bin, &rig.dir.join("ingest"))?.lines() {
        println!("{line}");
    }
    Ok(())
}

/// One measured flight.
#[derive(Debug, Clone, Copy)]
struct Flown {
    cpu_pct: f64,
    wakeups_per_s: f64,
    elapsed_s: f64,
}

impl Flown {
    /// The mean of several flights.
    fn mean(flights: &[Flown]) -> Flown {
        let n = flights.len().max(1) as f64;
        Flown {
            cpu_pct: flights.iter().map(|f| f.cpu_pct).sum::<f64>() / n,
            wakeups_per_s: flights.iter().map(|f| f.wakeups_per_s).sum::<f64>() / n,
            elapsed_s: flights.iter().map(|f| f.elapsed_s).sum::<f64>() / n,
        }
    }
}

/// `mqtt.publish_per_s`, `mqtt.agent_cpu_pct_extra`, `mqtt.agent_wakeups_extra_per_s`.
fn out_figures(rig: &Rig) -> Result<()> {
    let dir = rig.dir.join("out");
    std::fs::create_dir_all(&dir)?;
    let config = crate::bench_agent::write_flown_config(&dir, &sim_example()?)?;
    let node = aloft_agent::config::load(&config)
        .map_err(|e| anyhow!("{e}"))?
        .node
        .name;

    let devices = dir.join("devices");
    let mut simulator = crate::bench_agent::start_simulated_devices(&rig.agent, &config, &devices)?;
    let result = (|| -> Result<()> {
        let plain = devices.join("agent.toml");
        let with_bus = devices.join("agent-mqtt.toml");
        let mut bus_text = std::fs::read_to_string(&plain)?;
        bus_text.push_str(&format!("\n[mqtt]\nbroker = \"{}\"\n", rig.broker.addr()));
        std::fs::write(&with_bus, bus_text)?;

        let subscription = Subscription::start(&rig.broker, &format!("aloft/{node}/#"), None)
            .map_err(|e| anyhow!("start mosquitto_sub: {e}"))?;
        // Off and on in turn, so that the load of a shared machine falls on both alike.
        let (mut off, mut on, mut published) = (Vec::new(), Vec::new(), 0);
        for round in 1..=ROUNDS {
            eprintln!("xtask: round {round} of {ROUNDS}: flying without the bus, then with it");
            off.push(fly(&rig.agent, &plain, || 0)?.0);
            let (flown, counted) = fly(&rig.agent, &with_bus, || readings(&subscription))?;
            on.push(flown);
            published += counted;
        }
        let (off, on) = (Flown::mean(&off), Flown::mean(&on));
        println!(
            "mqtt.publish_per_s {:.1} 1/s",
            published as f64 / (on.elapsed_s * ROUNDS as f64)
        );
        println!("mqtt.agent_cpu_pct_extra {:.2} %", on.cpu_pct - off.cpu_pct);
        println!(
            "mqtt.agent_wakeups_extra_per_s {:.1} 1/s",
            on.wakeups_per_s - off.wakeups_per_s
        );
        eprintln!(
            "note: the agent without the bus: {:.2} % CPU, {:.1} wake-ups/s; with it: {:.2} %, {:.1}/s",
            off.cpu_pct, off.wakeups_per_s, on.cpu_pct, on.wakeups_per_s
        );
        Ok(())
    })();
    stop(&mut simulator);
    result
}

/// Reading publishes the subscription received (status topics left out).
fn readings(subscription: &Subscription) -> usize {
    subscription
        .received()
        .iter()
        .filter(|m| !m.topic.ends_with("/status"))
        .count()
}

/// Runs the agent with `config` for the warm-up and [`MEASURE`]; its figures, and how much
/// `count` grew over the measurement.
fn fly(agent: &Path, config: &Path, mut count: impl FnMut() -> usize) -> Result<(Flown, usize)> {
    let mut child = Command::new(agent)
        .args(["run", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start the agent")?;
    let pid = child.id();
    std::thread::sleep(WARM_UP);
    let (count0, cpu0, sw0, t0) = (count(), cpu_ticks(pid), switches(pid), Instant::now());
    std::thread::sleep(MEASURE);
    let elapsed_s = t0.elapsed().as_secs_f64();
    let (cpu1, sw1, count1) = (cpu_ticks(pid), switches(pid), count());
    let alive = matches!(child.try_wait(), Ok(None));
    stop(&mut child);
    let (Some(cpu0), Some(cpu1), true) = (cpu0, cpu1, alive) else {
        bail!("the agent stopped during the benchmark");
    };
    Ok((
        Flown {
            cpu_pct: cpu1.saturating_sub(cpu0) as f64 / clock_ticks_per_s() / elapsed_s * 100.0,
            wakeups_per_s: sw1.saturating_sub(sw0) as f64 / elapsed_s,
            elapsed_s,
        },
        count1.saturating_sub(count0),
    ))
}
