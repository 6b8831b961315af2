//! `cargo xtask demo`: the whole system on one machine, on the simulated flight.
//!
//! It builds the three binaries, makes a hub (`aloft-hub init`: CA, server certificate,
//! admin and node tokens) under `target/aloft-demo/`, starts it on a free loopback port,
//! starts `aloft-agent run` on `deploy/examples/sim.toml` with a `[hub]` section pointing at
//! it, waits until every sensor is live at the hub, shows `aloftctl get sensors` and a
//! `restart`, and leaves both running for the user to explore with `aloftctl` until Ctrl-C,
//! printing the exact commands to try. `--smoke` does the same non-interactively and stops
//! both with SIGTERM, failing if either does not stop cleanly (used by `cargo xtask test`).
//!
//! Invariant: every process this starts is stopped before it returns, on success and on
//! error alike (the children are killed when their guards drop).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{cargo, run, target_dir, workspace_root};

/// The node's name: the one in deploy/examples/sim.toml.
const NODE: &str = "glider-sim";
/// The sensor the demo restarts.
const RESTARTED: &str = "cosmic-ray";
/// Where in the simulated flight to start: climbing in the wave, everything moving.
const START_AT_S: &str = "900.0";
/// How long the sensors may take to be live at the hub.
const LIVE_WITHIN: Duration = Duration::from_secs(90);

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: nix::libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// A child process stopped (SIGTERM, then SIGKILL) when dropped.
pub(crate) struct Running {
    pub(crate) name: &'static str,
    pub(crate) child: Child,
}

impl Running {
    /// Asks the process to stop with SIGTERM and waits for it; an error if it does not
    /// exit cleanly within `within`.
    pub(crate) fn stop(mut self, within: Duration) -> Result<()> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if status.success() {
                    return Ok(());
                }
                bail!("{} stopped with {status}", self.name);
            }
            if Instant::now() > deadline {
                bail!("{} did not stop within {within:?} of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Paths and settings of one demo.
struct Demo {
    bin: PathBuf,
    dir: PathBuf,
}

impl Demo {
    fn aloftctl(&self) -> Command {
        let mut cmd = Command::new(self.bin.join("aloftctl"));
        // Only the demo's own config file: a user's ALOFT_HUB or ALOFT_TOKEN must not
        // point the demo elsewhere.
        cmd.env("ALOFT_CONFIG", self.config())
            .env_remove("ALOFT_HUB")
            .env_remove("ALOFT_TOKEN")
            .env_remove("ALOFT_CA")
            .env_remove("ALOFT_CONTEXT");
        cmd
    }

    /// aloftctl's config file for the demo, with one context, `demo`.
    fn config(&self) -> PathBuf {
        self.dir.join("aloftctl.yaml")
    }

    /// Runs aloftctl, returning its standard output; an error with its standard error if
    /// it fails.
    fn ctl(&self, args: &[&str]) -> Result<String> {
        let out = self
            .aloftctl()
            .args(args)
            .output()
            .context("could not start aloftctl")?;
        if !out.status.success() {
            bail!(
                "aloftctl {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Shows a command and its output, as the user would type it.
    fn show(&self, args: &[&str]) -> Result<()> {
        println!("$ aloftctl {}", args.join(" "));
        print!("{}", self.ctl(args)?);
        println!();
        Ok(())
    }
}

pub fn demo(smoke: bool) -> Result<()> {
    run(
        "build aloft-hub, aloft-agent and aloftctl",
        cargo().args([
            "build",
            "--quiet",
            "--locked",
            "-p",
            "aloft-hub",
            "-p",
            "aloft-agent",
            "-p",
            "aloftctl",
            "--bins",
        ]),
    )?;
    let bin = target_dir().join("debug");
    let dir = target_dir().join("aloft-demo");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;

    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        let action = nix::sys::signal::SigAction::new(
            nix::sys::signal::SigHandler::Handler(on_interrupt),
            nix::sys::signal::SaFlags::empty(),
            nix::sys::signal::SigSet::empty(),
        );
        // Ctrl-C, and a stop from a supervisor or a terminal closing: the children are
        // stopped in order either way, never left running.
        for signal in [
            nix::sys::signal::Signal::SIGINT,
            nix::sys::signal::Signal::SIGTERM,
            nix::sys::signal::Signal::SIGHUP,
        ] {
            nix::sys::signal::sigaction(signal, &action)
                .with_context(|| format!("could not handle {signal}"))?;
        }
    }

    let HubFiles {
        data: hub_dir,
        admin_token: admin_file,
        node_token: node_file,
    } = init_hub(&bin, &dir, NODE)?;
    let (hub, address) = start_hub(&bin, &hub_dir, &dir)?;
    let demo = Demo { bin, dir };
    let ca = hub_dir.join("ca.pem");
    let url = format!("https://{address}");
    let admin = admin_file.to_string_lossy();
    let ca_arg = ca.to_string_lossy();
    demo.ctl(&[
        "config",
        "set-context",
        "demo",
        "--server",
        &url,
        "--certificate-authority",
        &ca_arg,
        "--token-file",
        &admin,
        "--use",
    ])?;
    let config = write_agent_config(&demo.dir, &address, &node_file, &ca)?;
    let agent = Running {
        name: "aloft-agent",
        child: Command::new(demo.bin.join("aloft-agent"))
            .args(["run", "--config"])
            .arg(&config)
            .arg("--store")
            .arg(demo.dir.join("store"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(&demo.dir, "agent.log")?)
            .spawn()
            .context("could not start aloft-agent")?,
    };
    let mut processes = [hub, agent];

    println!("Simulated flight: hub on {address}, agent {NODE} syncing to it.");
    println!("Logs: {}/hub.log and agent.log\n", demo.dir.display());
    wait_until_live(&demo, &mut processes)?;
    demo.show(&["get", "sensors", "--node", NODE])?;
    demo.show(&[
        "restart",
        "sensor",
        RESTARTED,
        "--node",
        NODE,
        "--wait",
        "--timeout",
        "30s",
    ])?;
    demo.show(&["get", "sensors", "--node", NODE])?;

    let [hub, agent] = processes;
    if smoke {
        demo.show(&["get", "commands"])?;
        // The agent's own account of the restart, fetched from the node on demand.
        let logs = demo.ctl(&["logs", "sensor", RESTARTED, "--node", NODE])?;
        if !logs.contains("restart") {
            bail!("aloftctl logs showed no line of the restart: {logs:?}");
        }
        agent.stop(Duration::from_secs(20))?;
        hub.stop(Duration::from_secs(20))?;
        println!("demo smoke run: hub and agent stopped cleanly");
        return Ok(());
    }

    let env = format!("export ALOFT_CONFIG={}", demo.config().display());
    let ctl = demo.bin.join("aloftctl");
    let ctl = ctl.display();
    println!("Hub and agent keep running. In another terminal, try:\n");
    println!("  {env}");
    for example in [
        format!("{ctl} get nodes"),
        format!("{ctl} get sensors --node {NODE} -w"),
        format!("{ctl} top --node {NODE}"),
        format!("{ctl} describe sensor static --node {NODE}"),
        format!("{ctl} restart sensor gps --node {NODE} --wait"),
        format!("{ctl} set sensor static --node {NODE} --interval 500ms"),
        format!("{ctl} get commands"),
        format!("{ctl} get events"),
        format!("{ctl} logs sensor cosmic-ray --node {NODE}"),
    ] {
        println!("  {example}");
    }
    println!("\nCtrl-C stops both.");
    let mut processes = [hub, agent];
    while !INTERRUPTED.load(Ordering::SeqCst) {
        for p in &mut processes {
            if let Some(status) = p.exited() {
                bail!("{} stopped unexpectedly ({status}); see its log", p.name);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("\nstopping");
    let [hub, agent] = processes;
    agent.stop(Duration::from_secs(20))?;
    hub.stop(Duration::from_secs(20))
}

/// What `aloft-hub init` made under a directory.
pub(crate) struct HubFiles {
    /// The hub's data directory (its CA is `ca.pem` there).
    pub(crate) data: PathBuf,
    /// File holding the admin token.
    pub(crate) admin_token: PathBuf,
    /// File holding the node's token.
    pub(crate) node_token: PathBuf,
}

/// Makes a hub under `dir` (data in `dir/hub`, tokens in files beside it) with one node,
/// its log in `dir/hub-init.log`.
pub(crate) fn init_hub(bin: &Path, dir: &Path, node: &str) -> Result<HubFiles> {
    let files = HubFiles {
        data: dir.join("hub"),
        admin_token: dir.join("admin.token"),
        node_token: dir.join("node.token"),
    };
    run(
        "aloft-hub init",
        Command::new(bin.join("aloft-hub"))
            .args(["init", "--data"])
            .arg(&files.data)
            .args(["--node", node, "--admin-token-file"])
            .arg(&files.admin_token)
            .arg("--node-token-file")
            .arg(&files.node_token)
            .stdout(Stdio::null())
            .stderr(log_file(dir, "hub-init.log")?),
    )?;
    Ok(files)
}

pub(crate) fn log_file(dir: &Path, name: &str) -> Result<std::fs::File> {
    let path = dir.join(name);
    std::fs::File::create(&path).with_context(|| format!("could not create {}", path.display()))
}

/// Starts the hub on a free loopback port; returns it and the address it reports.
pub(crate) fn start_hub(bin: &Path, hub_dir: &Path, dir: &Path) -> Result<(Running, String)> {
    let mut child = Command::new(bin.join("aloft-hub"))
        .args(["run", "--data"])
        .arg(hub_dir)
        .args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file(dir, "hub.log")?)
        .spawn()
        .context("could not start aloft-hub")?;
    let stdout = child.stdout.take().context("no stdout of aloft-hub")?;
    let hub = Running {
        name: "aloft-hub",
        child,
    };
    // The hub prints one line once it listens; read it on a thread so that a hub that
    // never says it does not hang the demo.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(lines.next());
        // Keep draining so the hub never blocks on a full pipe.
        for _ in lines {}
    });
    let line = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Some(Ok(line))) => line,
        _ => bail!("aloft-hub did not say where it listens; see its log"),
    };
    let address = line
        .strip_prefix("aloft-hub listening on ")
        .with_context(|| format!("unexpected first line of aloft-hub: {line:?}"))?
        .trim()
        .to_owned();
    Ok((hub, address))
}

/// deploy/examples/sim.toml, started mid-climb, with its metrics on a free port, its
/// capture under the demo's directory and a `[hub]` section.
fn write_agent_config(dir: &Path, hub: &str, token: &Path, ca: &Path) -> Result<PathBuf> {
    let example = workspace_root().join("deploy/examples/sim.toml");
    let mut text = std::fs::read_to_string(&example)
        .with_context(|| format!("could not read {}", example.display()))?;
    let metrics = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    for (from, to) in [
        ("start_at_s = 0.0", format!("start_at_s = {START_AT_S}")),
        (
            "listen = \"127.0.0.1:9464\"",
            format!("listen = \"{metrics}\""),
        ),
        (
            "dir = \"/tmp/aloft-sim/capture/gps\"",
            format!("dir = {:?}", dir.join("capture/gps")),
        ),
    ] {
        if !text.contains(from) {
            bail!(
                "{} no longer has `{from}`: update xtask/src/demo.rs",
                example.display()
            );
        }
        text = text.replacen(from, &to, 1);
    }
    text.push_str(&format!(
        "\n[hub]\nurl = \"wss://{hub}/v1/nodes/connect\"\ntoken_file = {:?}\nca_file = {:?}\n",
        token, ca
    ));
    let path = dir.join("agent.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Waits until the hub lists every sensor of the node as running.
fn wait_until_live(demo: &Demo, processes: &mut [Running]) -> Result<()> {
    let deadline = Instant::now() + LIVE_WITHIN;
    let mut last = String::new();
    while Instant::now() < deadline {
        for p in processes.iter_mut() {
            if let Some(status) = p.exited() {
                bail!(
                    "{} stopped ({status}); see its log in {}",
                    p.name,
                    demo.dir.display()
                );
            }
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        match demo.ctl(&["get", "sensors", "--node", NODE, "-o", "json"]) {
            Ok(json) if all_running(&json) => return Ok(()),
            Ok(json) => last = json,
            Err(e) => last = format!("{e:#}"),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    bail!("the sensors were not all running at the hub within {LIVE_WITHIN:?}; last: {last}")
}

/// Whether `get sensors -o json` (a kubectl-style `List`) lists the six sensors of the
/// simulated flight, all running.
pub(crate) fn all_running(json: &str) -> bool {
    let Ok(list) = serde_json::from_str::<serde_json::Value>(json) else {
        return false;
    };
    let Some(items) = list.get("items").and_then(serde_json::Value::as_array) else {
        return false;
    };
    items.len() >= 6
        && items.iter().all(|sensor| {
            sensor
                .pointer("/status/state")
                .and_then(serde_json::Value::as_str)
                == Some("Running")
        })
}
