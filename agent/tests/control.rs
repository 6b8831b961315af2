//! The control task against a real supervisor running the simulated flight's devices and a
//! real state file: commands applied at most once (redelivered, interrupted by a crash,
//! expired), desired state changing the sampling live, refusals with reasons.
//!
//! Every wait is for a message or a record with a bounded timeout; no assertion is about
//! how fast anything is, only about what happened (the spacing of readings is bounded
//! from below by the interval the sensor samples at, which a slow machine only widens).

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aloft_agent::clock::monotonic_ns;
use aloft_agent::config::SensorKind;
use aloft_agent::config::{self, AgentConfig};
use aloft_agent::control::{self, ControlHandles, LogRing, UtcClock, commands::INTERRUPTED};
use aloft_agent::sensor::simulation::{Simulation, SimulationTuning};
use aloft_agent::sensor::{Device, DeviceError, LatestValues, PollOutcome};
use aloft_agent::state::{self, StateFile};
use aloft_agent::supervisor::{SensorSlot, Supervisor, SupervisorHandle, SupervisorOptions};
use aloft_protocol::sync::{
    Command, CommandAction, CommandOutcome, DesiredSensorSpec, DesiredSpec, Downlink, Observed,
    Uplink,
};
use aloft_protocol::{Record, SensorDescriptor, SensorId, SensorState};
use common::{Unmet, records_until};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};
use tracing_subscriber::layer::SubscriberExt;

/// The longest any awaited event may take.
const PATIENCE: Duration = Duration::from_secs(20);

/// 2026-06-01, a UTC the tests pretend is now.
const NOW_UTC_NS: i64 = 1_780_272_000_000_000_000;
const HOUR_NS: i64 = 3_600_000_000_000;

const STATIC: u16 = 0;

fn config_text(store: &std::path::Path) -> String {
    format!(
        r#"
[simulation]
seed = 7
start_at_s = 1800.0

[node]
name = "glider-test"

[store]
path = "{store}"
max_bytes = 16_777_216
full_policy = "drop-oldest"
flush_interval = "1s"
retain_acked = "1h"

[[sensor]]
name = "static"
kind = "ms5611"
interval = "20ms"

[[sensor]]
name = "outside-air"
kind = "bme280"
interval = "50ms"
[sensor.power]
chip = "/dev/gpiochip0"
line = 5
off_for = "3s"

[[sensor]]
name = "cosmic"
kind = "cosmicwatch"
"#,
        store = store.display()
    )
}

/// A node without its uplink: the simulated devices, the supervisor, the state file.
struct Node {
    supervisor: Option<Supervisor>,
    simulation: Option<Simulation>,
    handle: SupervisorHandle,
    records: mpsc::UnboundedReceiver<Record>,
    drain: JoinHandle<()>,
    config: Arc<AgentConfig>,
    state_path: PathBuf,
    _dir: tempfile::TempDir,
}

async fn boot() -> Node {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).expect("the store directory");
    let config = config::parse(&config_text(&store), "control-test.toml").expect("a valid config");
    let links = dir.path().join("links");
    std::fs::create_dir_all(&links).expect("the links directory");
    let latest = LatestValues::new();
    let (simulation, slots) = Simulation::start(
        config.simulation.as_ref().expect("a [simulation] table"),
        &config.sensors,
        &links,
        &latest,
        SimulationTuning::default(),
    )
    .expect("the simulation starts");
    let (tx, mut rx) = mpsc::channel(4096);
    let supervisor = Supervisor::start(slots, SupervisorOptions::default(), tx, latest)
        .await
        .expect("the supervisor starts");
    // Keep the sensors' channel empty so they never wait on the test.
    let (forward, records) = mpsc::unbounded_channel();
    let drain = tokio::spawn(async move {
        while let Some(r) = rx.recv().await {
            if forward.send(r).is_err() {
                break;
            }
        }
    });
    Node {
        handle: supervisor.handle(),
        supervisor: Some(supervisor),
        simulation: Some(simulation),
        records,
        drain,
        config: Arc::new(config),
        state_path: store.join("state.json"),
        _dir: dir,
    }
}

/// A node booted and its sensor `sensor` running, with a control task started as
/// [`Node::control`] does.
async fn boot_running(sensor: u16, utc: Option<i64>) -> (Node, Session) {
    let mut node = boot().await;
    node.until_running(sensor).await;
    let session = node.control(utc);
    (node, session)
}

/// One run of the control task, as the uplink would drive it.
struct Session {
    downlink: mpsc::Sender<Downlink>,
    uplink: mpsc::Receiver<Uplink>,
    task: JoinHandle<()>,
}

/// The process's log ring, installed once as the global subscriber (as main does next to
/// its fmt layer). Every test of this binary logs into it; the log test looks only for
/// lines its own command id makes.
fn log_ring() -> LogRing {
    static RING: OnceLock<LogRing> = OnceLock::new();
    RING.get_or_init(|| {
        let (layer, ring) = control::log_ring(10_000);
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .expect("the only global subscriber");
        ring
    })
    .clone()
}

fn fixed_utc(utc: Option<i64>) -> UtcClock {
    Arc::new(move || utc)
}

impl Node {
    /// Starts a control task from the state file as it is on disk (a fresh agent start).
    fn control(&self, utc: Option<i64>) -> Session {
        let (state, problem) = StateFile::open(&self.state_path);
        assert!(problem.is_none(), "state file unreadable: {problem:?}");
        let handles = ControlHandles::new(
            self.handle.clone(),
            Arc::new(state),
            Arc::clone(&self.config),
            log_ring(),
        )
        .with_utc_clock(fixed_utc(utc));
        Session::start(handles)
    }

    fn health(&self, name: &str) -> aloft_agent::supervisor::state::SensorHealth {
        self.handle
            .health()
            .into_iter()
            .find(|h| h.name == name)
            .expect("a supervised sensor")
    }

    /// Records until `done` accepts one (which is returned with those before it).
    async fn until(&mut self, what: &str, done: impl FnMut(&Record) -> bool) -> Vec<Record> {
        let deadline = Instant::now() + PATIENCE;
        match records_until(async || self.records.recv().await, deadline, done).await {
            Ok(seen) => seen,
            Err(Unmet::Closed(_)) => panic!("no {what}: the records channel closed"),
            Err(Unmet::TimedOut(_)) => panic!("no {what}: timed out"),
        }
    }

    async fn until_running(&mut self, sensor: u16) {
        self.until(&format!("sensor {sensor} running"), |r| {
            matches!(r, Record::Status(s) if s.sensor == SensorId(sensor) && s.state == SensorState::Running)
        })
        .await;
    }

    /// The distinct times (monotonic ns) of the next `n` polls of `sensor` taken after
    /// `after` (a poll's readings share a time).
    async fn poll_times(&mut self, sensor: u16, n: usize, after: u64) -> Vec<u64> {
        let mut times: Vec<u64> = Vec::new();
        // One quantity, the first one seen: a sensor may measure some only every few
        // polls, at times of their own (the MS5611's temperature).
        let mut quantity = None;
        self.until(&format!("{n} polls of sensor {sensor}"), |r| {
            if let Record::Reading(x) = r
                && x.sensor == SensorId(sensor)
                && x.time.mono_ns > after
                && *quantity.get_or_insert(x.quantity) == x.quantity
                && times.last() != Some(&x.time.mono_ns)
            {
                times.push(x.time.mono_ns);
            }
            times.len() >= n
        })
        .await;
        times
    }

    /// Closes `session`, then stops the node.
    async fn shutdown_after(self, session: Session) {
        session.close().await;
        self.shutdown().await;
    }

    async fn shutdown(mut self) {
        if let Some(s) = self.supervisor.take() {
            s.shutdown().await;
        }
        if let Some(sim) = self.simulation.take() {
            sim.stop();
        }
        self.drain.abort();
    }
}

impl Session {
    /// Starts a control task with `handles`, its downlink and uplink held here.
    fn start(handles: ControlHandles) -> Session {
        let (downlink, downlink_rx) = mpsc::channel(16);
        let (uplink_tx, uplink) = mpsc::channel(16);
        let task = control::start(handles, downlink_rx, uplink_tx);
        Session {
            downlink,
            uplink,
            task,
        }
    }

    async fn next(&mut self) -> Uplink {
        match timeout_at(Instant::now() + PATIENCE, self.uplink.recv()).await {
            Ok(Some(m)) => m,
            other => panic!("no uplink message: {other:?}"),
        }
    }

    async fn send(&self, message: Downlink) {
        self.downlink
            .send(message)
            .await
            .expect("control task alive");
    }

    /// Sends a restart of `sensor` as command `id`.
    async fn send_restart(&self, id: &str, sensor: &str, hard: bool, expires_utc_ns: i64) {
        self.send(restart(id, sensor, hard, expires_utc_ns)).await;
    }

    /// Asks for the newest `max_lines` log lines, of `sensor` only when given.
    async fn send_fetch_logs(&self, request: u64, sensor: Option<&str>, max_lines: u32) {
        self.send(Downlink::FetchLogs {
            request,
            sensor: sensor.map(Into::into),
            max_lines,
        })
        .await;
    }

    /// The ack and the result of command `id`.
    async fn ack_and_result(&mut self, id: &str) -> CommandOutcome {
        assert_eq!(self.next().await, Uplink::CommandAck { id: id.into() });
        match self.next().await {
            Uplink::CommandResult { id: got, outcome } if got == id => outcome,
            other => panic!("expected the result of {id}, got {other:?}"),
        }
    }

    async fn observed(&mut self, spec: DesiredSpec) -> Observed {
        self.send(Downlink::Desired(spec)).await;
        match self.next().await {
            Uplink::Observed(o) => o,
            other => panic!("expected Observed, got {other:?}"),
        }
    }

    async fn close(self) {
        drop(self.downlink);
        let _ = timeout_at(Instant::now() + PATIENCE, self.task).await;
    }
}

fn restart(id: &str, sensor: &str, hard: bool, expires_utc_ns: i64) -> Downlink {
    Downlink::Command(Command {
        id: id.into(),
        expires_utc_ns,
        action: CommandAction::RestartSensor {
            sensor: sensor.into(),
            hard,
        },
    })
}

fn spec(entries: &[(&str, u64, Option<u32>, Option<bool>)]) -> DesiredSpec {
    DesiredSpec {
        sensors: entries
            .iter()
            .map(
                |(name, generation, interval_ms, enabled)| DesiredSensorSpec {
                    name: (*name).into(),
                    generation: *generation,
                    interval_ms: *interval_ms,
                    enabled: *enabled,
                },
            )
            .collect(),
        tunables: vec![],
        power_overrides: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_is_applied_once_and_a_redelivery_gets_the_same_answer_without_a_second_restart()
{
    let mut node = boot().await;
    node.until_running(STATIC).await;
    let mut changes = node.handle.changes();
    changes.borrow_and_update();

    let mut session = node.control(Some(NOW_UTC_NS));
    session
        .send_restart("c-1", "static", false, NOW_UTC_NS + HOUR_NS)
        .await;
    let outcome = session.ack_and_result("c-1").await;
    assert!(
        matches!(&outcome, CommandOutcome::Succeeded { message } if message.contains("static")),
        "{outcome:?}"
    );
    assert_eq!(node.health("static").restarts, 1);

    // The live lane sees the restart without waiting for the store: the watch moved and
    // the report says running again, one restart, with the command as its reason.
    assert!(changes.has_changed().expect("the supervisor is alive"));
    let report = node
        .handle
        .reports()
        .into_iter()
        .find(|r| r.name == "static")
        .expect("a report");
    assert_eq!(
        (report.state, report.restarts),
        (SensorState::Running, 1),
        "{report:?}"
    );
    assert!(
        report
            .last_restart
            .as_ref()
            .is_some_and(|(_, why)| why.contains("command c-1")),
        "{report:?}"
    );

    // Redelivered in the same run (the hub missed the ack): the same answer, no restart.
    session
        .send_restart("c-1", "static", false, NOW_UTC_NS + HOUR_NS)
        .await;
    assert_eq!(session.ack_and_result("c-1").await, outcome);
    session.close().await;

    // Redelivered after an agent restart (a fresh control task from the state file),
    // which first resends the outcome in case a crash lost it on its way.
    let mut session = node.control(Some(NOW_UTC_NS));
    assert_eq!(
        session.next().await,
        Uplink::CommandResult {
            id: "c-1".into(),
            outcome: outcome.clone()
        }
    );
    session
        .send_restart("c-1", "static", false, NOW_UTC_NS + HOUR_NS)
        .await;
    assert_eq!(session.ack_and_result("c-1").await, outcome);
    assert_eq!(node.health("static").restarts, 1, "applied once");
    let on_disk = state::load(&node.state_path).unwrap().unwrap();
    assert_eq!(on_disk.applying_command, None);
    assert!(on_disk.applied("c-1").is_some());
    node.shutdown_after(session).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_interrupted_by_a_crash_is_reported_failed_and_never_rerun() {
    let (mut node, mut session) = boot_running(1, Some(NOW_UTC_NS)).await;
    // A hard restart keeps the power off for 3 s: the "crash" comes in the middle.
    session
        .send_restart("c-hard", "outside-air", true, NOW_UTC_NS + HOUR_NS)
        .await;
    assert_eq!(
        session.next().await,
        Uplink::CommandAck {
            id: "c-hard".into()
        }
    );
    // The ack follows the durable "applying" record.
    let on_disk = state::load(&node.state_path).unwrap().unwrap();
    assert_eq!(on_disk.applying_command.as_deref(), Some("c-hard"));
    // The agent dies here: its control task is gone with everything in memory.
    session.task.abort();
    let _ = session.task.await;
    drop(session.uplink);

    let mut session = node.control(Some(NOW_UTC_NS));
    let failed = CommandOutcome::Failed {
        message: INTERRUPTED.into(),
    };
    assert_eq!(
        session.next().await,
        Uplink::CommandResult {
            id: "c-hard".into(),
            outcome: failed.clone()
        },
        "reported at start, before anything arrives"
    );
    let on_disk = state::load(&node.state_path).unwrap().unwrap();
    assert_eq!(on_disk.applying_command, None);

    // The hub never saw a result and delivers it again: answered, not re-run.
    session
        .send_restart("c-hard", "outside-air", true, NOW_UTC_NS + HOUR_NS)
        .await;
    assert_eq!(session.ack_and_result("c-hard").await, failed);
    // The one restart that began before the "crash" ends; no second one follows.
    node.until_running(1).await;
    assert_eq!(node.health("outside-air").restarts, 1);
    node.shutdown_after(session).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_command_is_reported_expired_and_not_applied_even_when_redelivered_early() {
    let (node, mut session) = boot_running(STATIC, Some(NOW_UTC_NS)).await;
    session
        .send_restart("c-old", "static", false, NOW_UTC_NS - 1)
        .await;
    assert_eq!(
        session.ack_and_result("c-old").await,
        CommandOutcome::Expired
    );
    session.close().await;

    // A clock that now says it is earlier changes nothing: the answer is recorded.
    let mut session = node.control(Some(NOW_UTC_NS - HOUR_NS));
    assert_eq!(
        session.next().await,
        Uplink::CommandResult {
            id: "c-old".into(),
            outcome: CommandOutcome::Expired
        },
        "resent at start"
    );
    session
        .send_restart("c-old", "static", false, NOW_UTC_NS - 1)
        .await;
    assert_eq!(
        session.ack_and_result("c-old").await,
        CommandOutcome::Expired
    );
    assert_eq!(node.health("static").restarts, 0);
    node.shutdown_after(session).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_trusted_utc_a_command_is_applied_and_failures_say_why() {
    let (node, mut session) = boot_running(STATIC, None).await;
    session.send(restart("c-1970", "static", false, 1)).await;
    assert!(matches!(
        session.ack_and_result("c-1970").await,
        CommandOutcome::Succeeded { .. }
    ));
    session.send(restart("c-nope", "wing", false, 1)).await;
    assert_eq!(
        session.ack_and_result("c-nope").await,
        CommandOutcome::Failed {
            message: "no sensor named wing".into()
        }
    );
    session.send(restart("c-nopower", "static", true, 1)).await;
    assert!(matches!(
        session.ack_and_result("c-nopower").await,
        CommandOutcome::Failed { message } if message.contains("no power line")
    ));
    assert_eq!(node.health("static").restarts, 1);
    node.shutdown_after(session).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desired_interval_slows_the_sampling_live_and_reports_the_observed_generation() {
    let (mut node, mut session) = boot_running(STATIC, Some(NOW_UTC_NS)).await;
    let observed = session
        .observed(spec(&[("static", 3, Some(200), None)]))
        .await;
    assert_eq!(observed.sensors.len(), 1);
    assert_eq!(observed.sensors[0].observed_generation, 3);
    assert_eq!(observed.sensors[0].refused, None);
    assert_eq!(
        node.health("static").interval,
        Some(Duration::from_millis(200))
    );

    // The first poll after the change may be the tick scheduled before it; from then on
    // the sensor waits for its 200 ms tick, never polling early. Four gaps span at least
    // 800 ms (at the file's 20 ms they would span 80 ms); the 100 ms of slack is for a
    // measurement delayed at either end, which shortens the span.
    let times = node.poll_times(STATIC, 6, monotonic_ns()).await;
    let span = times[5] - times[1];
    assert!(
        span >= 700_000_000,
        "4 polls in {span} ns at a 200 ms interval: {times:?}"
    );
    assert_eq!(
        node.health("static").restarts,
        0,
        "changed without a restart"
    );

    // Persisted for the next boot, with the sensor's generation.
    let on_disk = state::load(&node.state_path).unwrap().unwrap();
    assert_eq!(on_disk.desired_generation("static"), Some(3));
    let mut boot_config = (*node.config).clone();
    let desired = on_disk.desired.expect("a desired state");
    assert!(desired.apply_to(&mut boot_config).is_empty());
    assert_eq!(
        boot_config.sensor("static").unwrap().1.interval,
        Some(Duration::from_millis(200))
    );
    node.shutdown_after(session).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desired_disable_stops_a_sensor_and_a_spec_without_it_brings_back_the_config_file() {
    let (mut node, mut session) = boot_running(STATIC, Some(NOW_UTC_NS)).await;
    let observed = session
        .observed(spec(&[("static", 5, Some(100), Some(false))]))
        .await;
    assert_eq!(observed.sensors[0].observed_generation, 5);
    let health = node.health("static");
    assert_eq!(health.state, SensorState::Disabled, "{health:?}");
    assert!(!health.enabled);
    assert!(health.reason.contains("generation 5"), "{}", health.reason);
    let readings_when_disabled = health.readings;

    // The hub drops its spec: the file's values rule again (enabled, 20 ms).
    let observed = session.observed(spec(&[])).await;
    assert!(observed.sensors.is_empty());
    node.until(
        "static running again",
        |r| matches!(r, Record::Status(s) if s.sensor == SensorId(STATIC) && s.state == SensorState::Running && s.restarts == 0),
    )
    .await;
    node.poll_times(STATIC, 3, monotonic_ns()).await;
    let health = node.health("static");
    assert!(health.enabled);
    assert_eq!(health.interval, Some(Duration::from_millis(20)));
    assert!(health.readings > readings_when_disabled);
    let on_disk = state::load(&node.state_path).unwrap().unwrap();
    assert_eq!(on_disk.desired, None);

    // A restart of a disabled sensor is refused, with the reason.
    session
        .observed(spec(&[("static", 6, None, Some(false))]))
        .await;
    session
        .send_restart("c-off", "static", false, NOW_UTC_NS + HOUR_NS)
        .await;
    assert_eq!(
        session.ack_and_result("c-off").await,
        CommandOutcome::Failed {
            message: "sensor static is disabled".into()
        }
    );
    node.shutdown_after(session).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_specs_say_why_and_leave_the_sensors_as_they_were() {
    let (node, mut session) = boot_running(STATIC, Some(NOW_UTC_NS)).await;
    let observed = session
        .observed(spec(&[
            ("wing-strain", 2, Some(100), None),
            ("cosmic", 3, Some(1000), None),
            ("static", 4, Some(0), Some(true)),
        ]))
        .await;
    let refused = |name: &str| {
        let o = observed
            .sensors
            .iter()
            .find(|o| o.name == name)
            .expect("observed");
        (o.observed_generation, o.refused.clone().unwrap_or_default())
    };
    let (generation, why) = refused("wing-strain");
    assert_eq!(generation, 2);
    assert!(why.contains("not in the node's config file"), "{why}");
    let (_, why) = refused("cosmic");
    assert!(why.contains("own rate"), "{why}");
    let (_, why) = refused("static");
    assert!(why.contains("below"), "{why}");
    let health = node.health("static");
    assert_eq!(health.interval, Some(Duration::from_millis(20)));
    assert!(health.enabled);
    assert_eq!(node.health("cosmic").interval, None);
    node.shutdown_after(session).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetched_logs_are_the_newest_lines_of_the_sensor_asked_for() {
    let (node, mut session) = boot_running(STATIC, Some(NOW_UTC_NS)).await;
    session
        .send_restart("c-logs", "static", false, NOW_UTC_NS + HOUR_NS)
        .await;
    session.ack_and_result("c-logs").await;

    session.send_fetch_logs(41, Some("static"), 200).await;
    let batch = match session.next().await {
        Uplink::Logs(batch) => batch,
        other => panic!("expected Logs, got {other:?}"),
    };
    assert_eq!(batch.request, 41);
    assert!(batch.lines.len() <= 200);
    assert!(
        batch
            .lines
            .iter()
            .all(|l| l.sensor.as_deref() == Some("static")),
        "only the sensor's lines: {:?}",
        batch.lines
    );
    let restarting = batch
        .lines
        .iter()
        .position(|l| l.message.starts_with("Sensor restarting.") && l.message.contains("c-logs"))
        .unwrap_or_else(|| panic!("the restart is in the log: {:?}", batch.lines));
    assert!(
        batch.lines[restarting..].iter().any(
            |l| l.message.starts_with("Sensor state changed.") && l.message.contains("Running")
        ),
        "and its coming back after it: {:?}",
        batch.lines
    );
    assert!(
        batch
            .lines
            .windows(2)
            .all(|w| w[0].time.mono_ns <= w[1].time.mono_ns),
        "oldest first"
    );

    // The node's log has the control task's own lines, without a sensor.
    session.send_fetch_logs(42, None, 10_000).await;
    let Uplink::Logs(all) = session.next().await else {
        panic!("expected Logs");
    };
    assert!(
        all.lines
            .iter()
            .any(|l| l.sensor.is_none() && l.message.contains("c-logs") && l.level == "INFO"),
        "the command's own log lines"
    );
    node.shutdown_after(session).await;
}

/// A device whose every open after the first blocks until released (when `wedges`): a
/// sensor wedged in its initialisation.
struct Wedged {
    release: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    wedges: bool,
    opens: u32,
}

impl Device for Wedged {
    fn open(&mut self) -> Result<SensorDescriptor, DeviceError> {
        self.opens += 1;
        if self.wedges && self.opens > 1 {
            let (lock, released) = &*self.release;
            let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            // Bounded, so a failing test cannot leave the thread behind for ever.
            let _ = released.wait_timeout_while(guard, PATIENCE, |r| !*r);
        }
        Ok(SensorDescriptor::new("wedged"))
    }

    fn poll(
        &mut self,
        _out: &mut Vec<aloft_protocol::Reading>,
    ) -> Result<PollOutcome, DeviceError> {
        Ok(PollOutcome::Healthy)
    }

    fn close(&mut self) {}

    fn interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(20))
    }

    fn silence_limit(&self) -> Duration {
        Duration::from_secs(600)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_gets_no_answer_is_reported_failed_and_later_commands_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = config::parse(&config_text(dir.path()), "control-test.toml").unwrap();
    let now = Arc::new(AtomicI64::new(NOW_UTC_NS));
    let release = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
    let slot = |id: u16, name: &str, wedges: bool| SensorSlot {
        id: SensorId(id),
        name: name.into(),
        kind: SensorKind::Ms5611,
        enabled: true,
        device: Box::new(Wedged {
            release: Arc::clone(&release),
            wedges,
            opens: 0,
        }),
        power: None,
        simulated: true,
        tunables: Default::default(),
    };
    let (tx, mut rx) = mpsc::channel(64);
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let supervisor = Supervisor::start(
        vec![slot(0, "wedged", true), slot(1, "other", false)],
        SupervisorOptions::default(),
        tx,
        LatestValues::new(),
    )
    .await
    .unwrap();
    let state_path = dir.path().join("state.json");
    let handles = ControlHandles::new(
        supervisor.handle(),
        Arc::new(StateFile::with_state(&state_path, Default::default())),
        Arc::new(config),
        log_ring(),
    )
    .with_utc_clock({
        let now = Arc::clone(&now);
        Arc::new(move || Some(now.load(Ordering::SeqCst)))
    })
    .with_command_patience(Duration::from_secs(2));
    let mut session = Session::start(handles);

    session
        .send_restart("c-stuck", "wedged", false, NOW_UTC_NS + HOUR_NS)
        .await;
    session
        .send_restart("c-next", "other", false, NOW_UTC_NS + 3 * HOUR_NS)
        .await;
    session
        .send_restart("c-late", "other", false, NOW_UTC_NS + HOUR_NS)
        .await;
    // The hub resends the waiting one (a reconnect): it is not acked before it starts, so
    // a crash now would not lose it.
    session
        .send_restart("c-next", "other", false, NOW_UTC_NS + 3 * HOUR_NS)
        .await;
    // Messages are handled in order: the answer to this one says all above were taken.
    session.send_fetch_logs(9, Some("none"), 1).await;
    assert_eq!(
        session.next().await,
        Uplink::CommandAck {
            id: "c-stuck".into()
        }
    );
    assert!(matches!(session.next().await, Uplink::Logs(b) if b.request == 9));
    // Two hours pass while they wait: c-late expires in the queue.
    now.store(NOW_UTC_NS + 2 * HOUR_NS, Ordering::SeqCst);
    let stuck = match session.next().await {
        Uplink::CommandResult { id, outcome } if id == "c-stuck" => outcome,
        other => panic!("expected the result of c-stuck, got {other:?}"),
    };
    assert!(
        matches!(&stuck, CommandOutcome::Failed { message } if message.contains("no answer within 2.0 s")),
        "{stuck:?}"
    );
    // The queue goes on while the wedged sensor is still stuck: one ack, one result.
    assert!(matches!(
        session.ack_and_result("c-next").await,
        CommandOutcome::Succeeded { .. }
    ));
    assert_eq!(
        session.ack_and_result("c-late").await,
        CommandOutcome::Expired,
        "expiry is checked again when a waiting command's turn comes"
    );
    assert!(session.uplink.try_recv().is_err(), "nothing more");
    let on_disk = state::load(&state_path).unwrap().unwrap();
    assert_eq!(on_disk.applying_command, None);
    assert!(on_disk.applied("c-stuck").is_some());
    let health = |name: &str| {
        supervisor
            .health()
            .into_iter()
            .find(|h| h.name == name)
            .unwrap()
    };
    assert_eq!(
        health("wedged").state,
        SensorState::Starting,
        "still opening"
    );

    // Unwedged, the restart asked once completes; nothing asks it again.
    let mut changes = supervisor.handle().changes();
    {
        let (lock, released) = &*release;
        *lock.lock().unwrap() = true;
        released.notify_all();
    }
    let deadline = Instant::now() + PATIENCE;
    while health("wedged").state != SensorState::Running {
        assert!(Instant::now() < deadline, "{:?}", health("wedged"));
        let _ = timeout_at(deadline, changes.changed()).await;
    }
    assert_eq!(health("wedged").restarts, 1);
    assert_eq!(health("other").restarts, 1);
    session.close().await;
    supervisor.shutdown().await;
    drain.abort();
}
