//! The real binaries under test: `aloft-hub` and `aloft-agent` started in temporary
//! directories, stopped with SIGTERM or killed with SIGKILL, their outputs read back.
//!
//! Invariants: every process started here is killed when its handle drops, so a failing
//! test leaves nothing running; every wait has a deadline and says what it waited for;
//! each process's log goes to a file in the test's directory and the tail of it is quoted
//! in the error when the process misbehaves. Binaries are found next to the running
//! executable (`target/<profile>/`), never built from here.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// The node name of the simulated flight's config (deploy/examples/sim.toml).
pub const NODE: &str = "glider-sim";
/// How often waits look again.
const POLL: Duration = Duration::from_millis(50);
/// How long a process may take to start or stop before the test fails.
pub const PROCESS_DEADLINE: Duration = Duration::from_secs(30);

/// Why a step of a scenario failed.
#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    /// A binary is not where the build puts it.
    #[error(
        "{name} not found at {path}: build the workspace's binaries first (cargo build --workspace, or run the tests with cargo nextest / cargo test --workspace)"
    )]
    Binary {
        /// The binary.
        name: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// An I/O step failed.
    #[error("{what}: {source}")]
    Io {
        /// The step.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// Something did not happen in time.
    #[error("timed out after {waited:?} waiting for {what}{log}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// For how long.
        waited: Duration,
        /// Log tails that may say why.
        log: String,
    },
    /// A command failed.
    #[error("{what} failed ({status}): {output}")]
    Command {
        /// The command.
        what: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it said.
        output: String,
    },
    /// A process stopped when it should have run.
    #[error("{what} exited ({status}){log}")]
    Exited {
        /// The process.
        what: String,
        /// How.
        status: ExitStatus,
        /// The tail of its log.
        log: String,
    },
    /// Output that should be JSON lines is not.
    #[error("{what}: line {line} is not the expected JSON: {text}")]
    Output {
        /// Whose output.
        what: String,
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// The hub does not hold what the agent's store holds.
    #[error("hub and agent differ: {0}")]
    Mismatch(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SystemError {
    let what = what.into();
    move |source| SystemError::Io { what, source }
}

/// Polls `probe` until it gives a value or `timeout` passes.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Result<T, SystemError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(SystemError::Timeout {
                what: what.into(),
                waited: timeout,
                log: String::new(),
            });
        }
        std::thread::sleep(POLL);
    }
}

/// The directory of the binaries built with the running executable: tests run from
/// `target/<profile>/deps/`, benches too.
pub fn binary(name: &str) -> Result<PathBuf, SystemError> {
    let exe = std::env::current_exe().map_err(io("locate the test executable"))?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(SystemError::Binary {
            name: name.into(),
            path,
        })
    }
}

/// A loopback port free now (the agent's metrics endpoint takes a fixed address).
pub fn free_port() -> Result<u16, SystemError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("find a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(io("find a free port"))?
        .port())
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(30);
    format!(
        "\n--- last lines of {} ---\n{}",
        log.display(),
        lines.get(from..).unwrap_or_default().join("\n")
    )
}

/// A running process of the system, killed when dropped.
#[derive(Debug)]
pub struct Process {
    what: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    fn spawn(what: &str, mut command: Command, log: PathBuf) -> Result<Self, SystemError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io(format!("open {}", log.display())))?;
        command.stderr(file).stdin(Stdio::null());
        let child = command.spawn().map_err(io(format!("start {what}")))?;
        tracing::debug!(what, pid = child.id(), "Started.");
        Ok(Self {
            what: what.into(),
            child,
            log,
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The tail of its log, for error messages.
    pub fn log_tail(&self) -> String {
        tail(&self.log)
    }

    /// Fails if it has exited.
    pub fn check_running(&mut self) -> Result<(), SystemError> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(SystemError::Exited {
                what: self.what.clone(),
                status,
                log: tail(&self.log),
            }),
            _ => Ok(()),
        }
    }

    fn signal(&self, signal: Signal) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }

    fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, SystemError> {
        let child = &mut self.child;
        let waited = wait_until(&format!("{} to exit", self.what), timeout, || {
            child.try_wait().ok().flatten()
        });
        waited.map_err(|e| match e {
            SystemError::Timeout { what, waited, .. } => SystemError::Timeout {
                what,
                waited,
                log: tail(&self.log),
            },
            other => other,
        })
    }

    /// Stops it with SIGTERM and waits; it must exit successfully.
    pub fn terminate(mut self) -> Result<(), SystemError> {
        self.signal(Signal::SIGTERM);
        let status = self.wait_exit(PROCESS_DEADLINE)?;
        if status.success() {
            Ok(())
        } else {
            Err(SystemError::Exited {
                what: self.what.clone(),
                status,
                log: tail(&self.log),
            })
        }
    }

    /// Kills it with SIGKILL (a crash, a power cut) and reaps it.
    pub fn kill(mut self) -> Result<(), SystemError> {
        self.signal(Signal::SIGKILL);
        self.wait_exit(PROCESS_DEADLINE).map(|_| ())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal(Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// A hub's data directory, made by `aloft-hub init`.
#[derive(Debug, Clone)]
pub struct HubData {
    /// The data directory.
    pub dir: PathBuf,
    /// The node's token, in a file (mode 0600).
    pub node_token_file: PathBuf,
    /// The admin token, in a file.
    pub admin_token_file: PathBuf,
    /// The CA that signed the hub's certificate.
    pub ca_file: PathBuf,
}

impl HubData {
    /// Runs `aloft-hub init` into `dir` (which must not exist yet) for node [`NODE`].
    pub fn init(dir: &Path) -> Result<Self, SystemError> {
        let parent = dir.parent().unwrap_or(dir);
        let data = Self {
            dir: dir.to_path_buf(),
            node_token_file: parent.join("node.token"),
            admin_token_file: parent.join("admin.token"),
            ca_file: dir.join("ca.pem"),
        };
        let output = Command::new(binary("aloft-hub")?)
            .arg("init")
            .arg("--data")
            .arg(dir)
            .args(["--node", NODE])
            .arg("--node-token-file")
            .arg(&data.node_token_file)
            .arg("--admin-token-file")
            .arg(&data.admin_token_file)
            .stdin(Stdio::null())
            .output()
            .map_err(io("run aloft-hub init"))?;
        if !output.status.success() {
            return Err(SystemError::Command {
                what: "aloft-hub init".into(),
                status: output.status,
                output: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(data)
    }

    /// The admin token.
    pub fn admin_token(&self) -> Result<String, SystemError> {
        std::fs::read_to_string(&self.admin_token_file)
            .map(|t| t.trim().to_owned())
            .map_err(io("read the admin token"))
    }

    /// Every record the hub holds for [`NODE`], by `aloft-hub dump`.
    pub fn dump(&self) -> Result<Vec<HubRecord>, SystemError> {
        let output = Command::new(binary("aloft-hub")?)
            .arg("dump")
            .arg("--data")
            .arg(&self.dir)
            .args(["--node", NODE])
            .stdin(Stdio::null())
            .output()
            .map_err(io("run aloft-hub dump"))?;
        if !output.status.success() {
            return Err(SystemError::Command {
                what: "aloft-hub dump".into(),
                status: output.status,
                output: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        json_lines("aloft-hub dump", &output.stdout, |v| {
            Some(HubRecord {
                epoch: v.get("epoch")?.as_str()?.to_ascii_lowercase(),
                seq: v.get("seq")?.as_u64()?,
                record: v.get("record")?.clone(),
            })
        })
    }
}

fn json_lines<T>(
    what: &str,
    bytes: &[u8],
    mut parse: impl FnMut(Value) -> Option<T>,
) -> Result<Vec<T>, SystemError> {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str::<Value>(line)
                .ok()
                .and_then(&mut parse)
                .ok_or_else(|| SystemError::Output {
                    what: what.into(),
                    line: i + 1,
                    text: line.chars().take(200).collect(),
                })
        })
        .collect()
}

/// One record as the hub's dump prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct HubRecord {
    /// The store epoch, lowercase hex.
    pub epoch: String,
    /// Its number in the epoch.
    pub seq: u64,
    /// The record.
    pub record: Value,
}

/// A running `aloft-hub run`.
#[derive(Debug)]
pub struct Hub {
    process: Process,
    addr: SocketAddr,
}

impl Hub {
    /// Starts the hub on a free loopback port and waits for its `listening` line.
    pub fn start(data: &HubData) -> Result<Self, SystemError> {
        Self::start_on(data, "127.0.0.1:0")
    }

    /// Starts the hub on `listen` (a restart on the same port as before).
    pub fn start_on(data: &HubData, listen: &str) -> Result<Self, SystemError> {
        Self::start_with(data, listen, &[])
    }

    /// [`Hub::start_on`] with more `aloft-hub run` flags (`--header-timeout 1s`, ...).
    pub fn start_with(data: &HubData, listen: &str, flags: &[&str]) -> Result<Self, SystemError> {
        let log = data.dir.parent().unwrap_or(&data.dir).join("hub.log");
        let mut command = Command::new(binary("aloft-hub")?);
        command
            .arg("run")
            .arg("--data")
            .arg(&data.dir)
            .args(["--listen", listen])
            .args(flags)
            .env(
                "RUST_LOG",
                std::env::var("ALOFT_TEST_LOG").unwrap_or("info".into()),
            )
            .stdout(Stdio::piped());
        let mut process = Process::spawn("aloft-hub", command, log)?;
        let stdout = process.child.stdout.take();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let Some(stdout) = stdout else { return };
            // Reads to the end so the hub never blocks on a full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line
                    .strip_prefix("aloft-hub listening on ")
                    .and_then(|a| a.trim().parse::<SocketAddr>().ok())
                {
                    let _ = tx.send(addr);
                }
            }
        });
        let deadline = Instant::now() + PROCESS_DEADLINE;
        loop {
            if let Ok(addr) = rx.recv_timeout(POLL) {
                return Ok(Self { process, addr });
            }
            process.check_running()?;
            if Instant::now() >= deadline {
                return Err(SystemError::Timeout {
                    what: "the hub's `aloft-hub listening on` line".into(),
                    waited: PROCESS_DEADLINE,
                    log: process.log_tail(),
                });
            }
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process, to stop or kill.
    pub fn into_process(self) -> Process {
        self.process
    }

    /// Fails if it has exited.
    pub fn check_running(&mut self) -> Result<(), SystemError> {
        self.process.check_running()
    }
}

/// The agent's `[hub]` section.
#[derive(Debug, Clone)]
pub struct HubLink {
    /// `wss://ADDR/v1/nodes/connect`, ADDR the link's.
    pub url: String,
    /// The node token's file.
    pub token_file: PathBuf,
    /// The hub's CA.
    pub ca_file: PathBuf,
    /// Tunables, written as given (`"3s"`, `125000`).
    pub tunables: Vec<(String, String)>,
}

impl HubLink {
    /// Through `link_addr` to the hub of `data`, with a 3 s read deadline, a 1 s keepalive
    /// and 1 s reconnect cap, so faults are noticed and healed quickly.
    pub fn through(link_addr: SocketAddr, data: &HubData) -> Self {
        Self {
            url: format!("wss://{link_addr}/v1/nodes/connect"),
            token_file: data.node_token_file.clone(),
            ca_file: data.ca_file.clone(),
            tunables: vec![
                ("read_deadline".into(), "\"3s\"".into()),
                ("keepalive".into(), "\"1s\"".into()),
                ("reconnect_max".into(), "\"1s\"".into()),
            ],
        }
    }

    /// Sets a tunable (`value` as TOML).
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.tunables.retain(|(k, _)| k != key);
        self.tunables.push((key.into(), value.into()));
        self
    }
}

/// An agent's config: the simulated flight of deploy/examples/sim.toml rewritten into a
/// test directory.
#[derive(Debug, Clone)]
pub struct AgentSetup {
    /// The config file.
    pub config: PathBuf,
    /// The store's directory.
    pub store: PathBuf,
    /// The metrics endpoint.
    pub metrics: SocketAddr,
    /// Where its log goes.
    pub log: PathBuf,
}

/// What to change in the simulated flight's config.
#[derive(Debug, Clone)]
pub struct Flight {
    /// Simulated seconds per real second.
    pub speed: f64,
    /// Where in the flight to start.
    pub start_at_s: f64,
    /// Whether the sensors run (off: an agent that only syncs what its store holds).
    pub sensors: bool,
    /// The `[hub]` section, if any.
    pub hub: Option<HubLink>,
}

impl Default for Flight {
    fn default() -> Self {
        Self {
            speed: 5.0,
            start_at_s: 1_150.0,
            sensors: true,
            hub: None,
        }
    }
}

impl AgentSetup {
    /// Writes `dir/NAME.toml` with the store in `store`.
    pub fn write(
        dir: &Path,
        name: &str,
        store: &Path,
        flight: &Flight,
    ) -> Result<Self, SystemError> {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/sim.toml");
        let text =
            std::fs::read_to_string(&example).map_err(io(format!("read {}", example.display())))?;
        let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mut text = text
            .replace("/tmp/aloft-sim/store", &store.display().to_string())
            .replace(
                "/tmp/aloft-sim/capture",
                &dir.join(format!("{name}-capture")).display().to_string(),
            )
            .replace("127.0.0.1:9464", &metrics.to_string())
            .replace("speed = 1.0", &format!("speed = {:.1}", flight.speed))
            .replace(
                "start_at_s = 0.0",
                &format!("start_at_s = {:.1}", flight.start_at_s),
            );
        if !flight.sensors {
            text = text
                .lines()
                .filter(|l| l.trim() != "enabled = true")
                .map(|l| {
                    if l.trim() == "[[sensor]]" {
                        "[[sensor]]\nenabled = false\n".to_owned()
                    } else {
                        format!("{l}\n")
                    }
                })
                .collect();
        }
        if let Some(hub) = &flight.hub {
            text.push_str(&format!(
                "\n[hub]\nurl = {:?}\ntoken_file = {:?}\nca_file = {:?}\n",
                hub.url,
                hub.token_file.display().to_string(),
                hub.ca_file.display().to_string()
            ));
            for (key, value) in &hub.tunables {
                text.push_str(&format!("{key} = {value}\n"));
            }
        }
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, text).map_err(io(format!("write {}", config.display())))?;
        Ok(Self {
            config,
            store: store.to_path_buf(),
            metrics,
            log: dir.join(format!("{name}.log")),
        })
    }
}

/// A running `aloft-agent run`.
#[derive(Debug)]
pub struct Agent {
    process: Process,
    metrics: SocketAddr,
}

impl Agent {
    /// Starts the agent of `setup` and waits for its metrics endpoint.
    pub fn start(setup: &AgentSetup) -> Result<Self, SystemError> {
        Self::start_wrapped_env(setup, &[], &[])
    }

    /// Starts an agent with its sensors off over `store` (config `dir/drain.toml`): it only
    /// sends the hub what the store still holds unsent.
    pub fn start_draining(dir: &Path, store: &Path, hub: HubLink) -> Result<Self, SystemError> {
        let setup = AgentSetup::write(
            dir,
            "drain",
            store,
            &Flight {
                sensors: false,
                hub: Some(hub),
                ..Flight::default()
            },
        )?;
        Self::start(&setup)
    }

    /// Starts it under `wrapper` (e.g. `["faketime", "1970-01-02 00:00:00"]`, which must
    /// exec the agent so that signals reach it) with `env` added to its environment.
    pub fn start_wrapped_env(
        setup: &AgentSetup,
        wrapper: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self, SystemError> {
        let agent = binary("aloft-agent")?;
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&agent);
                c
            }
            None => Command::new(&agent),
        };
        command
            .args(["run", "--config"])
            .arg(&setup.config)
            .env(
                "RUST_LOG",
                std::env::var("ALOFT_TEST_LOG").unwrap_or("info".into()),
            )
            .envs(env.iter().copied())
            .stdout(Stdio::null());
        let mut agent = Self {
            process: Process::spawn("aloft-agent", command, setup.log.clone())?,
            metrics: setup.metrics,
        };
        let deadline = Instant::now() + PROCESS_DEADLINE;
        while agent.metrics_text().is_none() {
            agent.process.check_running()?;
            if Instant::now() >= deadline {
                return Err(SystemError::Timeout {
                    what: "the agent's metrics endpoint".into(),
                    waited: PROCESS_DEADLINE,
                    log: agent.process.log_tail(),
                });
            }
            std::thread::sleep(POLL);
        }
        Ok(agent)
    }

    /// The metrics page, if the endpoint answers.
    pub fn metrics_text(&self) -> Option<String> {
        http_get(self.metrics, "/metrics")
    }

    /// The sum of every series of metric `name` (without labels or with them).
    pub fn metric(&self, name: &str) -> Option<f64> {
        let text = self.metrics_text()?;
        metric_sum(&text, name)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The process, to stop or kill.
    pub fn into_process(self) -> Process {
        self.process
    }

    /// Fails if it has exited.
    pub fn check_running(&mut self) -> Result<(), SystemError> {
        self.process.check_running()
    }

    /// The tail of its log.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }
}

/// The sum of the series of `name` in a Prometheus text page.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value = rest.rsplit(' ').next()?.parse::<f64>().ok()?;
        *found.get_or_insert(0.0) += value;
    }
    found
}

/// A plain HTTP/1.0 GET on loopback; the body, if the answer is 200.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200")
        .then_some(())
        .or(head.starts_with("HTTP/1.0 200").then_some(()))?;
    Some(body.to_owned())
}

/// One record of `aloft-agent store dump`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreRecord {
    /// Its number.
    pub seq: u64,
    /// The record (the dump's line without `seq`).
    pub record: Value,
}

/// Every record of the store in `dir` (the agent must be stopped).
pub fn store_dump(dir: &Path) -> Result<Vec<StoreRecord>, SystemError> {
    let output = Command::new(binary("aloft-agent")?)
        .args(["store", "dump", "--store"])
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(io("run aloft-agent store dump"))?;
    if !output.status.success() {
        return Err(SystemError::Command {
            what: "aloft-agent store dump".into(),
            status: output.status,
            output: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    json_lines("aloft-agent store dump", &output.stdout, |mut v| {
        let object = v.as_object_mut()?;
        let seq = object.remove("seq")?.as_u64()?;
        Some(StoreRecord {
            seq,
            record: Value::Object(object.clone()),
        })
    })
}

/// The epoch of the store in `dir`, lowercase hex (its `epoch` file: 16 bytes, then a CRC).
pub fn store_epoch(dir: &Path) -> Result<String, SystemError> {
    let bytes = std::fs::read(dir.join("epoch")).map_err(io("read the store's epoch"))?;
    let id = bytes.get(..16).ok_or_else(|| {
        SystemError::Mismatch(format!("{} has a short epoch file", dir.display()))
    })?;
    Ok(id.iter().map(|b| format!("{b:02x}")).collect())
}

/// How a store compares with the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Synced {
    /// Records the store and the hub both hold.
    pub records: usize,
    /// Readings among them.
    pub readings: usize,
    /// Gap records among them.
    pub gaps: usize,
}

/// Checks that the hub holds exactly the records of the store (epoch `epoch`): the same
/// numbers, in order, with the same content, none missing, none twice.
pub fn compare(
    hub: &[HubRecord],
    epoch: &str,
    store: &[StoreRecord],
) -> Result<Synced, SystemError> {
    let held: Vec<&HubRecord> = hub.iter().filter(|r| r.epoch == epoch).collect();
    if let Some(pair) = held
        .windows(2)
        .find(|w| w.first().map(|a| a.seq) >= w.get(1).map(|b| b.seq))
    {
        return Err(SystemError::Mismatch(format!(
            "the hub's records of epoch {epoch} are not strictly increasing: {} then {}",
            pair.first().map_or(0, |r| r.seq),
            pair.get(1).map_or(0, |r| r.seq)
        )));
    }
    // The store may have dropped acked records it no longer retains; the hub holds them all.
    let first = store.first().map_or(0, |r| r.seq);
    let held: Vec<&HubRecord> = held.into_iter().filter(|r| r.seq >= first).collect();
    if held.len() != store.len() {
        let hub_seqs: std::collections::BTreeSet<u64> = held.iter().map(|r| r.seq).collect();
        let store_seqs: std::collections::BTreeSet<u64> = store.iter().map(|r| r.seq).collect();
        let missing: Vec<u64> = store_seqs.difference(&hub_seqs).take(10).copied().collect();
        let extra: Vec<u64> = hub_seqs.difference(&store_seqs).take(10).copied().collect();
        return Err(SystemError::Mismatch(format!(
            "the store holds {} records from {first}, the hub {}; missing at the hub (first 10): {missing:?}; at the hub only: {extra:?}",
            store.len(),
            held.len()
        )));
    }
    let mut synced = Synced {
        records: 0,
        readings: 0,
        gaps: 0,
    };
    for (at_hub, in_store) in held.iter().zip(store) {
        if at_hub.seq != in_store.seq || at_hub.record != in_store.record {
            return Err(SystemError::Mismatch(format!(
                "record {} differs: hub {} {}, store {} {}",
                in_store.seq, at_hub.seq, at_hub.record, in_store.seq, in_store.record
            )));
        }
        synced.records += 1;
        if in_store.record.get("Reading").is_some() {
            synced.readings += 1;
        }
        if in_store.record.get("Gap").is_some() {
            synced.gaps += 1;
        }
    }
    Ok(synced)
}
