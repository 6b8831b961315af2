//! `cargo xtask bench agent`: the release agent running the simulated flight, measured from
//! outside through /proc, and the memory of reading a million-reading backlog.
//!
//! The flight's devices run in another process (`aloft-agent simulate`: serial devices on
//! pseudo-terminals, I2C register models on bridge sockets), and the agent reads them
//! through its hardware path with the config that process writes; so the agent's process
//! holds nothing of the simulation and its figures are its own. The simulator's CPU is
//! printed on stderr as a note, not as a figure.
//!
//! Figures: `agent.rss_mb` (peak resident set over the run), `agent.cpu_pct` (of one core),
//! `agent.wakeups_per_s` (context switches of all its threads per second: each is a wake-up
//! of a sleeping thread or a preemption), `agent.wakeups_floor_per_s` (what the flown
//! config's sampling rates need at the least: `AgentConfig::wakeups_floor_per_s`),
//! `agent.wakeups_per_s_power_saving` (the same flight with the deepest power step of the
//! example's policy in force from the start), and `agent.rss_after_backlog_mb` (peak resident set of `aloft-agent store dump` reading a
//! 1 000 000-reading store through the same bounded read path the uplink uses). Nothing
//! here asserts: figures only.
//!
//! One flight is one call of [`flight`] with a config's text and the prefix of its figures,
//! so a flight with another config (a power step in force) is one more call.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aloft_protocol::{Quality, Quantity, Reading, Record, SensorId, Timestamp};
use aloft_store::{FullPolicy, Outbox, StoreOptions};
use anyhow::{Context, Result, bail};

use crate::procfs::{clock_ticks_per_s, cpu_ticks, status_kb};
use crate::{cargo, run, target_dir, workspace_root};

/// How long the flight is measured, after a warm-up.
const MEASURE: Duration = Duration::from_secs(60);
const WARM_UP: Duration = Duration::from_secs(5);
/// The warm-up of the power-saving flight: the battery's first reading (every 5 s), the
/// policy's check and its dwell, with room to spare.
const POWER_SAVING_WARM_UP: Duration = Duration::from_secs(20);
/// Where in the simulated flight to fly: the wave climb near 4.7 km, where the detector
/// counts about 5 muons a second, as the mix asks.
const START_AT_S: f64 = 1_150.0;
const BACKLOG_READINGS: u64 = 1_000_000;

pub fn bench() -> Result<()> {
    run(
        "build the release agent",
        cargo().args([
            "build",
            "--quiet",
            "--locked",
            "--release",
            "-p",
            "aloft-agent",
        ]),
    )?;
    let agent = target_dir().join("release").join("aloft-agent");
    let dir = std::env::temp_dir().join(format!("aloft-bench-agent-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = sim_example().and_then(|text| {
        let full = flight(&agent, &dir.join("flight"), &text, WARM_UP)?;
        full.print("agent");
        let saving = flight(
            &agent,
            &dir.join("power-saving"),
            &deepest_step_in_force(&text)?,
            POWER_SAVING_WARM_UP,
        )?;
        println!(
            "agent.wakeups_per_s_power_saving {:.1} 1/s",
            saving.wakeups_per_s
        );
        if full.wakeups_per_s > 0.0 {
            eprintln!(
                "note: the deepest power step: {:.2} of the full wake-ups (target at most 0.5)",
                saving.wakeups_per_s / full.wakeups_per_s
            );
        }
        backlog(&agent, &dir)
    });
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// deploy/examples/sim.toml, as it is.
pub(crate) fn sim_example() -> Result<String> {
    let example = workspace_root().join("deploy/examples/sim.toml");
    std::fs::read_to_string(&example).with_context(|| format!("read {}", example.display()))
}

/// The example's config with every step of its power policy holding from the start (each
/// step's voltage threshold above any pack's voltage) and a short dwell, so the deepest
/// step is in force when the measurement starts.
fn deepest_step_in_force(text: &str) -> Result<String> {
    let mut config: toml::Table = text.parse().context("parse deploy/examples/sim.toml")?;
    let power = config
        .get_mut("power")
        .and_then(toml::Value::as_table_mut)
        .context("deploy/examples/sim.toml has no [power]; update the benchmark")?;
    power.insert("check_interval".into(), "1s".into());
    power.insert("dwell".into(), "1s".into());
    let steps = power
        .get_mut("step")
        .and_then(toml::Value::as_array_mut)
        .filter(|steps| !steps.is_empty())
        .context("deploy/examples/sim.toml's [power] has no [[power.step]]")?;
    for step in steps {
        if let Some(step) = step.as_table_mut() {
            step.insert("voltage_below_v".into(), 100.0.into());
        }
    }
    toml::to_string(&config).context("write the power-saving config")
}

/// What one measured flight gave.
#[derive(Debug, Clone, Copy)]
struct FlightFigures {
    /// Peak resident set, MB.
    rss_mb: f64,
    /// CPU, % of one core.
    cpu_pct: f64,
    /// Context switches of all the agent's threads, per second.
    wakeups_per_s: f64,
    /// What the flown config's sampling rates need at the least, per second.
    wakeups_floor_per_s: f64,
}

impl FlightFigures {
    /// Prints the figures under `prefix` (`agent`): `agent.rss_mb`, `agent.cpu_pct`,
    /// `agent.wakeups_per_s`, `agent.wakeups_floor_per_s`.
    fn print(&self, prefix: &str) {
        println!("{prefix}.rss_mb {:.1} MB", self.rss_mb);
        println!("{prefix}.cpu_pct {:.2} %", self.cpu_pct);
        println!("{prefix}.wakeups_per_s {:.1} 1/s", self.wakeups_per_s);
        println!(
            "{prefix}.wakeups_floor_per_s {:.1} 1/s",
            self.wakeups_floor_per_s
        );
        if self.wakeups_floor_per_s > 0.0 {
            eprintln!(
                "note: {prefix}: {:.2} times the floor (target at most 1.25)",
                self.wakeups_per_s / self.wakeups_floor_per_s
            );
        }
    }
}

/// Context switches of every thread of the process so far.
pub(crate) fn switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .map(|s| {
            s.lines()
                .filter(|l| {
                    l.starts_with("voluntary_ctxt_switches")
                        || l.starts_with("nonvoluntary_ctxt_switches")
                })
                .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

/// `aloft-agent simulate`: the simulated flight's devices of `config` behind ptys and the
/// I2C bridge in `devices` (with the `agent.toml` that points an agent at them), once they
/// say they are ready.
pub(crate) fn start_simulated_devices(
    agent: &Path,
    config: &Path,
    devices: &Path,
) -> Result<Child> {
    let mut simulator = Command::new(agent)
        .args(["simulate", "--config"])
        .arg(config)
        .arg("--devices")
        .arg(devices)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("start the simulated devices")?;
    let mut ready = String::new();
    if let Some(out) = simulator.stdout.take() {
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut ready)?;
    }
    if !ready.contains("devices ready") {
        stop(&mut simulator);
        bail!("`aloft-agent simulate` did not start its devices: {ready:?}");
    }
    Ok(simulator)
}

pub(crate) fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Writes `dir/sim.toml`: the config `text` with its store and capture in `dir`, its
/// metrics on a free port and the flight started at [`START_AT_S`] (where the benches fly).
pub(crate) fn write_flown_config(dir: &Path, text: &str) -> Result<PathBuf> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let text = text
        .replace(
            "/tmp/aloft-sim/store",
            &dir.join("store").display().to_string(),
        )
        .replace(
            "/tmp/aloft-sim/capture",
            &dir.join("capture").display().to_string(),
        )
        .replace("127.0.0.1:9464", &format!("127.0.0.1:{port}"))
        .replace("start_at_s = 0.0", &format!("start_at_s = {START_AT_S:.1}"));
    if !text.contains(&format!("start_at_s = {START_AT_S:.1}")) {
        bail!("the flown config no longer has `start_at_s = 0.0`; update the benchmark");
    }
    let config = dir.join("sim.toml");
    std::fs::write(&config, text)?;
    Ok(config)
}

/// Flies the simulated flight of the config `text` (deploy/examples/sim.toml or one made
/// from it) with the devices in another process, in `dir` (made afresh), and measures it.
fn flight(agent: &Path, dir: &Path, text: &str, warm_up: Duration) -> Result<FlightFigures> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let config = write_flown_config(dir, text)?;

    let devices = dir.join("devices");
    let mut simulator = start_simulated_devices(agent, &config, &devices)?;
    let agent_config = devices.join("agent.toml");
    let result = aloft_agent::config::load(&agent_config)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .and_then(|config| {
            measure_flight(
                agent,
                &agent_config,
                simulator.id(),
                config.wakeups_floor_per_s(),
                warm_up,
            )
        });
    stop(&mut simulator);
    result
}

/// Runs the agent with `config` (reading the devices of the simulator `simulator_pid`) for
/// `warm_up` and the measurement; its figures, with the config's wake-up floor.
fn measure_flight(
    agent: &Path,
    config: &Path,
    simulator_pid: u32,
    wakeups_floor_per_s: f64,
    warm_up: Duration,
) -> Result<FlightFigures> {
    eprintln!(
        "xtask: flying the simulated flight for {} s",
        (warm_up + MEASURE).as_secs()
    );
    let mut child = Command::new(agent)
        .args(["run", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start the agent")?;
    let pid = child.id();
    std::thread::sleep(warm_up);
    let (cpu0, sw0, t0) = (cpu_ticks(pid), switches(pid), Instant::now());
    let sim0 = cpu_ticks(simulator_pid);
    let mut peak_kb = 0;
    while t0.elapsed() < MEASURE {
        std::thread::sleep(Duration::from_millis(500));
        match status_kb(pid, "VmHWM:") {
            Some(kb) => peak_kb = peak_kb.max(kb),
            None => {
                stop(&mut child);
                bail!("the agent stopped during the benchmark");
            }
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let (cpu1, sw1) = (cpu_ticks(pid), switches(pid));
    let sim1 = cpu_ticks(simulator_pid);
    stop(&mut child);
    let (Some(cpu0), Some(cpu1)) = (cpu0, cpu1) else {
        bail!("could not read the agent's CPU time")
    };
    let pct_of_core = |ticks: u64| ticks as f64 / clock_ticks_per_s() / elapsed * 100.0;
    if let (Some(sim0), Some(sim1)) = (sim0, sim1) {
        // Not a figure of the agent: what simulating its devices took, in the other process.
        eprintln!(
            "note: the simulated devices (aloft-agent simulate) took {:.2} % of one core",
            pct_of_core(sim1.saturating_sub(sim0))
        );
    }
    let rss_mb = peak_kb as f64 / 1024.0;
    let cpu_pct = pct_of_core(cpu1.saturating_sub(cpu0));
    let wakeups_per_s = sw1.saturating_sub(sw0) as f64 / elapsed;
    Ok(FlightFigures {
        rss_mb,
        cpu_pct,
        wakeups_per_s,
        wakeups_floor_per_s,
    })
}

fn backlog(agent: &Path, dir: &Path) -> Result<()> {
    let store: PathBuf = dir.join("backlog");
    eprintln!("xtask: filling a store with {BACKLOG_READINGS} readings");
    let options = StoreOptions::new(4 * 1024 * 1024 * 1024, FullPolicy::DropOldest);
    let (mut outbox, _) = Outbox::open(&store, options).context("open the backlog store")?;
    for i in 0..BACKLOG_READINGS {
        let reading = Reading {
            sensor: SensorId((i % 6) as u16),
            quantity: Quantity::ALL[(i % 20) as usize],
            time: Timestamp::monotonic(1_000_000_000 + i * 10_000_000),
            value: 19_400.0 + (i % 977) as f64 * 0.37,
            quality: Quality::GOOD,
        };
        outbox.append(&Record::Reading(reading))?;
        if i % 10_000 == 9_999 {
            outbox.commit()?;
        }
    }
    outbox.close()?;

    let mut child = Command::new(agent)
        .args(["store", "dump", "--store"])
        .arg(&store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start the store reader")?;
    let pid = child.id();
    let mut peak_kb = 0;
    loop {
        if let Some(kb) = status_kb(pid, "VmHWM:") {
            peak_kb = peak_kb.max(kb);
        }
        match child.try_wait()? {
            Some(status) if status.success() => break,
            Some(status) => bail!("the backlog read failed ({status})"),
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    println!(
        "agent.rss_after_backlog_mb {:.1} MB",
        peak_kb as f64 / 1024.0
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_power_saving_config_is_a_valid_config_whose_every_step_holds() {
        let text = deepest_step_in_force(&sim_example().unwrap()).unwrap();
        let config = aloft_agent::config::parse(&text, "power-saving.toml")
            .unwrap_or_else(|e| panic!("{e}"));
        let power = config.power.expect("a power policy");
        assert_eq!(power.dwell, Duration::from_secs(1));
        assert!(power.steps.len() >= 2, "{:?}", power.steps);
        for step in &power.steps {
            assert_eq!(step.voltage_below_v, Some(100.0), "{step:?}");
        }
        // What the flight rewrites is still there.
        assert!(text.contains("start_at_s = 0.0"));
        assert!(text.contains("/tmp/aloft-sim/store"));
    }
}
