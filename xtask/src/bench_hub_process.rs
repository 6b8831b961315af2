//! What the benches that run a real hub share: building the hub and agent binaries, a hub
//! initialised and started in a scratch directory on a free loopback port, an agent started
//! on a config, and the waits and percentiles their figures need.
//!
//! Invariant: every process started here is killed when its [`Process`] is dropped, so a
//! bench that fails part-way leaves nothing running.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aloftctl::client::Hub;
use aloftctl::config::Target;
use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{cargo, run, target_dir};

/// How long a bench waits for the hub to reach a state before it fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Builds `aloft-hub` and `aloft-agent` (release; debug with `ALOFT_BENCH_DEBUG`) and
/// returns the folder they are in.
pub fn build_hub_and_agent() -> Result<PathBuf> {
    let debug = std::env::var_os("ALOFT_BENCH_DEBUG").is_some();
    let mut build = cargo();
    build.args([
        "build",
        "--quiet",
        "--locked",
        "-p",
        "aloft-hub",
        "-p",
        "aloft-agent",
    ]);
    if !debug {
        build.arg("--release");
    }
    run("build the hub and the agent", &mut build)?;
    Ok(target_dir().join(if debug { "debug" } else { "release" }))
}

/// A child process killed on drop.
pub struct Process(pub Child);

/// Starts `bin/aloft-hub run` on `data` on a free loopback port; returns the process and
/// the address its `aloft-hub listening on` line names (its later output is drained).
pub fn run_hub(bin: &Path, data: &Path) -> Result<(Process, String)> {
    let mut process = Process(
        Command::new(bin.join("aloft-hub"))
            .arg("run")
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()?,
    );
    let stdout = process.0.stdout.take().context("hub stdout")?;
    let mut lines = std::io::BufReader::new(stdout).lines();
    let line = lines.next().context("the hub said nothing")??;
    std::thread::spawn(move || for _ in lines {});
    let addr = line
        .strip_prefix("aloft-hub listening on ")
        .context("unexpected hub line")?
        .trim()
        .to_owned();
    Ok((process, addr))
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A hub made by `aloft-hub init` under `dir/hub` with one node, running on a free port.
pub struct LocalHub {
    pub process: Process,
    /// `host:port` it listens on.
    pub addr: String,
    /// Its data directory (CA and certificate inside).
    pub data: PathBuf,
    /// The admin token `init` wrote.
    pub admin_token: String,
}

impl LocalHub {
    /// Initialises a hub with `node` in `dir` (tokens in `dir/admin.token` and
    /// `dir/node.token`) and starts it.
    pub fn start(bin: &Path, dir: &Path, node: &str) -> Result<LocalHub> {
        let data = dir.join("hub");
        let status = Command::new(bin.join("aloft-hub"))
            .arg("init")
            .arg("--data")
            .arg(&data)
            .args(["--node", node])
            .arg("--admin-token-file")
            .arg(dir.join("admin.token"))
            .arg("--node-token-file")
            .arg(dir.join("node.token"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("aloft-hub init failed");
        }
        let (process, addr) = run_hub(bin, &data)?;
        let admin_token = std::fs::read_to_string(dir.join("admin.token"))?
            .trim()
            .to_owned();
        Ok(LocalHub {
            process,
            addr,
            data,
            admin_token,
        })
    }

    /// The hub's process id.
    pub fn pid(&self) -> u32 {
        self.process.0.id()
    }

    /// Where a client with `token` reaches this hub.
    pub fn target(&self, token: String) -> Target {
        Target {
            hub: format!("https://{}", self.addr),
            token: Some(token),
            ca: Some(self.data.join("ca.pem")),
        }
    }

    /// An API client with the admin token.
    pub fn admin_api(&self) -> Result<Hub> {
        Ok(Hub::new(
            &self.target(self.admin_token.clone()),
            Duration::from_secs(10),
        )?)
    }
}

/// Starts `aloft-agent run --config config`.
pub fn start_agent(bin: &Path, config: &Path) -> Result<Process> {
    Ok(Process(
        Command::new(bin.join("aloft-agent"))
            .arg("run")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()?,
    ))
}

/// Polls `path` until `check` holds, failing past [`DEADLINE`].
pub fn wait(api: &Hub, path: &str, what: &str, check: impl Fn(&Value) -> bool) -> Result<()> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match api.get(path) {
            Ok(v) if check(&v) => return Ok(()),
            _ if Instant::now() > deadline => bail!("{what}: not within {DEADLINE:?}"),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The `pct` percentile of `samples` in ms (nearest rank), NaN when there are none.
pub fn percentile_ms(samples: &mut [Duration], pct: f64) -> f64 {
    samples.sort_unstable();
    if samples.is_empty() {
        return f64::NAN;
    }
    let rank = ((pct / 100.0) * samples.len() as f64).ceil() as usize;
    let index = rank.clamp(1, samples.len()) - 1;
    samples
        .get(index)
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}
