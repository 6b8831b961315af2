//! What the end-to-end tests share: the real `aloft-hub` binary on a free loopback port,
//! `aloftctl` run as a process against it, and a stand-in agent speaking the real protocol
//! over real TLS (the hub's test client) that applies commands once and reports like the
//! agent does.

#![allow(dead_code, clippy::unwrap_used)] // A harness: a failed setup step stops the test loudly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aloft_hub::testing::{ClientError, HubProcess, InitTokens, NodeClient, client_config, hello};
use aloft_protocol::sync::{
    BacklogReport, CommandAction, CommandOutcome, DesiredSpec, Downlink, LiveUpdate, LogBatch,
    LogLine, Observed, ObservedSensor, SensorReport, Uplink,
};
use aloft_protocol::{SensorId, SensorState, StoreEpoch, Timestamp};
use serde_json::Value;

/// How long a test waits for something that should happen promptly.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// A workspace binary built by cargo next to this test (`cargo build` / `cargo xtask test`
/// build every binary); when it is missing (only this crate was built), it is built now.
/// Run `cargo build -p aloft-hub -p aloft-agent` first after changing them.
pub fn workspace_bin(package: &str, name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
    let bin = dir.join(name);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.contains(&bin) && !bin.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", package, "--bin", name])
            .status()
            .unwrap();
        assert!(status.success(), "building {name} failed");
        built.push(bin.clone());
    }
    bin
}

/// The hub binary.
pub fn hub_bin() -> PathBuf {
    workspace_bin("aloft-hub", "aloft-hub")
}

/// A running hub and what it takes to talk to it.
pub struct Hub {
    pub dir: tempfile::TempDir,
    pub process: Option<HubProcess>,
    pub tokens: InitTokens,
    pub data: PathBuf,
}

impl Hub {
    /// `aloft-hub init` (node `glider`) and `run`.
    pub fn start() -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("hub");
        let tokens = HubProcess::init(&hub_bin(), &data, "glider").unwrap();
        let process = HubProcess::start(&hub_bin(), &data).unwrap();
        Hub {
            dir,
            process: Some(process),
            tokens,
            data,
        }
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.process.as_ref().unwrap().addr
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr().port())
    }

    pub fn ca(&self) -> PathBuf {
        self.data.join("ca.pem")
    }

    /// Runs `aloftctl ARGS` with the admin token.
    pub fn ctl(&self, args: &[&str]) -> Run {
        self.ctl_as(&self.tokens.admin, args)
    }

    /// Runs `aloftctl ARGS` with a token, through the environment as a script would.
    pub fn ctl_as(&self, token: &str, args: &[&str]) -> Run {
        let output = self.ctl_command_as(token).args(args).output().unwrap();
        Run::of(args, output)
    }

    /// Runs `aloftctl ARGS` with nothing pointing it at this hub: no ALOFT_* variables,
    /// the hub's folder as HOME (where `aloftctl config` writes its contexts).
    pub fn ctl_plain(&self, args: &[&str]) -> Run {
        let output = ctl_command(self.dir.path()).args(args).output().unwrap();
        Run::of(args, output)
    }

    /// Writes `text` to the file `name` in the hub's folder (a manifest, a token file).
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `aloftctl` pointed at this hub with `token` through the environment, to be given
    /// its arguments (and spawned, for a watch).
    pub fn ctl_command_as(&self, token: &str) -> Command {
        let mut command = ctl_command(self.dir.path());
        command
            .env("ALOFT_HUB", self.url())
            .env("ALOFT_CA", self.ca())
            .env("ALOFT_TOKEN", token);
        command
    }

    /// The stand-in agent of node `glider` (the node `init` made), with init's node token.
    pub fn glider(&self, sensor_names: &[&str]) -> Agent {
        Agent::start(self, "glider", &self.tokens.node, sensor_names)
    }

    /// As [`Hub::glider`], continuing an earlier stand-in's log (a restarted agent).
    pub fn glider_again(&self, sensor_names: &[&str], log: Arc<Mutex<AgentLog>>) -> Agent {
        Agent::start_with(self, "glider", &self.tokens.node, sensor_names, log)
    }

    /// [`Hub::glider`], once `aloftctl get sensors` lists its sensors.
    pub fn glider_reported(&self, sensor_names: &[&str]) -> Agent {
        let agent = self.glider(sensor_names);
        self.wait_json(&["get", "sensors"], "sensors reported", |v| {
            sensor_names.iter().all(|name| item(v, name).is_some())
        });
        agent
    }

    /// `aloftctl ARGS -o json` that must succeed, parsed.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let run = self.ctl(&all).ok();
        serde_json::from_str(&run.stdout).unwrap()
    }

    /// Waits until `check` holds for `aloftctl ARGS -o json`.
    pub fn wait_json(&self, args: &[&str], what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let value = self.json(args);
            if check(&value) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: never happened; last: {value:#}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(process) = self.process.take() {
            let _ = process.stop();
        }
    }
}

/// `aloftctl` with a clean environment: no config of the user's, no ALOFT_* of theirs.
pub fn ctl_command(home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aloftctl"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ALOFT_") {
            command.env_remove(key);
        }
    }
    command
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null());
    command
}

/// The token `aloftctl create node|token` printed: its last line.
pub fn created_token(stdout: &str) -> String {
    stdout.lines().last().unwrap_or_default().trim().to_owned()
}

/// One finished `aloftctl`.
#[derive(Debug)]
pub struct Run {
    pub args: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn of(args: &[&str], output: Output) -> Run {
        Run {
            args: args.join(" "),
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts exit 0.
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "aloftctl {} failed: {}{}",
            self.args, self.stdout, self.stderr
        );
        self
    }

    /// Asserts this exit code and that stderr says `words`.
    pub fn fails(self, code: i32, words: &str) -> Run {
        assert_eq!(
            self.code, code,
            "aloftctl {}: {}{}",
            self.args, self.stdout, self.stderr
        );
        assert!(
            self.stderr.contains(words),
            "aloftctl {}: stderr {:?} lacks {words:?}",
            self.args,
            self.stderr
        );
        self
    }
}

/// What the stand-in agent has seen and done.
#[derive(Debug, Default)]
pub struct AgentLog {
    /// Command ids in the order received (redeliveries included).
    pub received: Vec<String>,
    /// Command ids applied (each at most once).
    pub applied: Vec<String>,
    /// Desired specs received.
    pub desired: Vec<DesiredSpec>,
    /// Sessions welcomed.
    pub sessions: u32,
    /// Why the last connection attempt failed.
    pub refused: Option<String>,
}

/// A stand-in agent: connects with a token, reports `sensors`, applies each command id once
/// (acks, restarts the sensor: restarts + 1, reports, sends the result), applies desired
/// intervals and reports the observed generation, answers log requests.
pub struct Agent {
    pub log: Arc<Mutex<AgentLog>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug, Clone)]
struct Sensors {
    reports: Vec<SensorReport>,
    /// Added to every log line and command result the agent sends (hostile-text tests).
    words: String,
}

/// The report the stand-in agent sends for sensor `name`.
pub fn report(index: u16, name: &str) -> SensorReport {
    SensorReport {
        sensor: SensorId(index),
        name: name.to_owned(),
        kind: "simulated".to_owned(),
        state: SensorState::Running,
        reason: "ok".to_owned(),
        restarts: 0,
        last_restart: None,
        last_error: None,
        interval_ms: Some(1000),
        enabled: true,
        readings: 1,
    }
}

fn live(sensors: &Sensors) -> Uplink {
    Uplink::Live(LiveUpdate {
        time: Timestamp::monotonic(1),
        readings: Vec::new(),
        sensors: sensors.reports.clone(),
        backlog: BacklogReport {
            records: 0,
            bytes: 0,
            oldest_age_s: None,
        },
    })
}

impl Agent {
    /// Connects node `node` with `token` and serves until stopped. Applied command ids
    /// survive in `applied` across [`Agent::start_with`] (a restarted agent remembers).
    pub fn start(hub: &Hub, node: &str, token: &str, sensor_names: &[&str]) -> Agent {
        Agent::start_with(
            hub,
            node,
            token,
            sensor_names,
            Arc::new(Mutex::new(AgentLog::default())),
        )
    }

    /// As [`Agent::start`], continuing an earlier agent's log (its applied ids).
    pub fn start_with(
        hub: &Hub,
        node: &str,
        token: &str,
        sensor_names: &[&str],
        log: Arc<Mutex<AgentLog>>,
    ) -> Agent {
        let reports = sensor_names
            .iter()
            .zip(1u16..)
            .map(|(name, i)| report(i, name))
            .collect();
        Agent::start_reporting(hub, node, token, reports, "", log)
    }

    /// As [`Agent::start_with`], reporting `reports` as they are and adding `words` to
    /// every log line and command result.
    pub fn start_reporting(
        hub: &Hub,
        node: &str,
        token: &str,
        reports: Vec<SensorReport>,
        words: &str,
        log: Arc<Mutex<AgentLog>>,
    ) -> Agent {
        let addr = hub.addr();
        let tls = client_config(&hub.ca()).unwrap();
        let node = node.to_owned();
        let token = token.to_owned();
        let mut sensors = Sensors {
            reports,
            words: words.to_owned(),
        };
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = log.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut client = match NodeClient::connect(addr, &tls, &token).await {
                    Ok(client) => client,
                    Err(e) => {
                        shared.lock().unwrap().refused = Some(match e {
                            ClientError::Http(code) => format!("HTTP {code}"),
                            other => other.to_string(),
                        });
                        return;
                    }
                };
                if client
                    .hello(hello(&node, StoreEpoch([7; 16])))
                    .await
                    .is_err()
                {
                    return;
                }
                shared.lock().unwrap().sessions += 1;
                if client.send(&live(&sensors)).await.is_err() {
                    return;
                }
                loop {
                    let message = tokio::select! {
                        m = client.recv() => m,
                        _ = &mut stopped => return,
                    };
                    let message = match message {
                        Ok(m) => m,
                        Err(ClientError::Deadline(_)) => continue,
                        Err(_) => return,
                    };
                    let replies = respond(&shared, &mut sensors, message);
                    for reply in replies {
                        if client.send(&reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        });
        Agent {
            log,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Disconnects (the link drops).
    pub fn stop(mut self) -> Arc<Mutex<AgentLog>> {
        self.halt();
        self.log.clone()
    }

    fn halt(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Waits until `check` holds for the agent's log.
    pub fn wait(&self, what: &str, check: impl Fn(&AgentLog) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !check(&self.log.lock().unwrap()) {
            assert!(
                Instant::now() < deadline,
                "agent: {what}: never happened: {:?}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The shortest interval the stand-in agent's sensors accept.
pub const STAND_IN_MIN_INTERVAL_MS: u32 = 10;

fn respond(log: &Arc<Mutex<AgentLog>>, sensors: &mut Sensors, message: Downlink) -> Vec<Uplink> {
    match message {
        Downlink::Command(command) => {
            let mut log = log.lock().unwrap();
            log.received.push(command.id.clone());
            let mut out = vec![Uplink::CommandAck {
                id: command.id.clone(),
            }];
            // Applied at most once, as the agent does: a redelivered id is only re-reported.
            let first_time = !log.applied.contains(&command.id);
            let outcome = match &command.action {
                CommandAction::RestartSensor { sensor, .. } => {
                    match sensors.reports.iter_mut().find(|r| &r.name == sensor) {
                        Some(report) => {
                            if first_time {
                                report.restarts += 1;
                                report.last_restart = Some((
                                    Timestamp::monotonic(2),
                                    format!("operator command {}", command.id),
                                ));
                                log.applied.push(command.id.clone());
                            }
                            CommandOutcome::Succeeded {
                                message: format!("{sensor} restarted{}", sensors.words),
                            }
                        }
                        None => CommandOutcome::Failed {
                            message: format!("no sensor {sensor} in the config"),
                        },
                    }
                }
                _ => CommandOutcome::Failed {
                    message: "unknown action".into(),
                },
            };
            out.push(live(sensors));
            out.push(Uplink::CommandResult {
                id: command.id,
                outcome,
            });
            out
        }
        Downlink::Desired(spec) => {
            let mut observed = Vec::new();
            for wanted in &spec.sensors {
                let refused = match sensors.reports.iter_mut().find(|r| r.name == wanted.name) {
                    // As the agent refuses an interval below what the part can do (and
                    // applies the rest of the spec).
                    Some(report)
                        if wanted
                            .interval_ms
                            .is_some_and(|ms| ms < STAND_IN_MIN_INTERVAL_MS) =>
                    {
                        if let Some(enabled) = wanted.enabled {
                            report.enabled = enabled;
                        }
                        Some(format!(
                            "interval: {}ms is shorter than {} can do ({STAND_IN_MIN_INTERVAL_MS}ms at least)",
                            wanted.interval_ms.unwrap_or(0),
                            report.name
                        ))
                    }
                    Some(report) => {
                        if let Some(ms) = wanted.interval_ms {
                            report.interval_ms = Some(ms);
                        }
                        if let Some(enabled) = wanted.enabled {
                            report.enabled = enabled;
                            report.state = if enabled {
                                SensorState::Running
                            } else {
                                SensorState::Disabled
                            };
                        }
                        None
                    }
                    None => Some(format!("no sensor {} in the config", wanted.name)),
                };
                observed.push(ObservedSensor {
                    name: wanted.name.clone(),
                    observed_generation: wanted.generation,
                    refused,
                });
            }
            log.lock().unwrap().desired.push(spec);
            // The new state first: whoever sees the generation observed also sees its
            // effect (the sensor disabled, the new interval).
            vec![
                live(sensors),
                Uplink::Observed(Observed {
                    sensors: observed,
                    tunables: vec![],
                }),
            ]
        }
        Downlink::FetchLogs {
            request, sensor, ..
        } => vec![Uplink::Logs(LogBatch {
            request,
            lines: vec![LogLine {
                time: Timestamp::with_utc(
                    5,
                    1_780_000_000_000_000_000,
                    aloft_protocol::TimeSource::Gnss,
                ),
                level: "WARN".into(),
                sensor: sensor.clone().or(Some("gps".into())),
                message: format!("stale fix: no sentence for 2 s{}", sensors.words),
            }],
        })],
        Downlink::Ping { nonce } => vec![Uplink::Pong { nonce }],
        _ => Vec::new(),
    }
}

/// The object of a `-o json` answer by name in a list.
pub fn item<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list.get("items")?
        .as_array()?
        .iter()
        .find(|i| i.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
}

/// Counts of phases by command id, for messages.
pub fn phases(list: &Value) -> HashMap<String, String> {
    list.get("items")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|i| {
                    (
                        i.pointer("/metadata/name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                        i.pointer("/status/phase")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
