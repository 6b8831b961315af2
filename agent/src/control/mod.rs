//! Remote control on the agent's side: the hub's desired state, its commands, and log
//! fetches, applied by one task between the uplink's downlink and uplink channels.
//!
//! # Layout
//!
//! - [`commands`]: a command's life on the agent (pure decisions over the state file).
//! - [`desired`]: turning a `DesiredSpec` into live changes and an `Observed` answer.
//! - [`logs`]: the ring of recent log lines that answers `FetchLogs` (a tracing layer).
//!
//! # Wiring (for the daemon)
//!
//! ```text
//! let (ring_layer, ring) = control::log_ring(1000);     // main: next to the fmt layer
//! let state = Arc::new(StateFile::open(&state_path).0);  // run: one StateFile for all writers
//! let handles = ControlHandles::new(supervisor.handle(), state, Arc::new(file_config), ring);
//! let task = control::start(handles, downlink_rx, uplink_tx);
//! ```
//!
//! The uplink forwards `Downlink::Desired`, `Downlink::Command` and `Downlink::FetchLogs` on
//! `downlink` (anything else is ignored here) and sends what arrives on `uplink` to the hub.
//! Messages on `uplink` must not be dropped on a reconnect: the channel holds them while the
//! link is down, and one taken but not sent when the link failed is sent again in the next
//! session (the hub treats a repeated ack or result of a command id as the same one). The
//! live lane follows sensor status changes with
//! [`crate::supervisor::SupervisorHandle::changes`] and
//! [`crate::supervisor::SupervisorHandle::reports`].
//!
//! # Invariants (docs/design.md 4, 5, 7)
//!
//! - A command is applied at most once: before acting, the agent durably records that it
//!   is applying the command (fsync of the state file); after, it records the outcome. A
//!   redelivered command is acked and answered with the recorded outcome, never re-run. A
//!   command found "applying" at start was interrupted by a crash: it is reported
//!   `Failed` ("interrupted by an agent restart") and never re-run.
//! - Results reach the hub even across a crash: there is no ack of a result, so at every
//!   start the agent resends the newest [`RESENT_AT_START`] recorded outcomes (the hub
//!   takes a result for a command it already closed as a repeat and ignores it).
//! - Commands are applied one at a time, in arrival order (the state file has one
//!   "applying" slot); desired state and log fetches are answered meanwhile. A command is
//!   acked when it starts, right after its durable "applying" record: one still waiting
//!   is not acked, so the hub delivers it again if the agent dies before it starts.
//! - Expiry: a command whose expiry has passed by the agent's trusted UTC is reported
//!   `Expired` and not applied. When the agent has no trusted UTC (a board booted in 1970
//!   before its first GPS fix), it compares with the last good UTC it persisted, a lower
//!   bound of now: a command already expired by that bound is `Expired`; otherwise it is
//!   applied, because the hub checks the TTL against its own clock when it sends, so a
//!   command that arrives is fresh within a link round trip, and refusing every command
//!   until GPS time would leave operators unable to restart the GPS itself.
//! - Hostile or broken input is answered, not obeyed (invariant 6): a command with an
//!   oversized id or sensor name is reported failed and not remembered, and the state file
//!   keeps only the spec entries of sensors the node has, so it stays bounded.
//! - Desired state is level-triggered: each spec is the whole truth, fields it leaves out
//!   go back to the config file's values, and it is persisted so the agent samples with it
//!   at boot without a hub. Only interval, enabled and the tunables a sensor's kind
//!   declares change; the config file owns the hardware, so unknown sensors, impossible
//!   intervals and tunables the kind does not take are refused with a reason.

pub mod commands;
pub mod desired;
pub mod logs;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use aloft_protocol::sync::{Command, CommandOutcome, Downlink, Uplink};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::clock::AgentClock;
use crate::config::AgentConfig;
use crate::power::PowerGovernor;
use crate::state::{RecordedOutcome, StateFile};
use crate::supervisor::SupervisorHandle;
use commands::{Decision, Intake};
pub use logs::{LogRing, LogRingLayer};

/// The agent's trusted UTC now, ns since the Unix epoch; `None` while it has none.
pub type UtcClock = Arc<dyn Fn() -> Option<i64> + Send + Sync>;

/// What the control task needs from the daemon.
#[non_exhaustive]
pub struct ControlHandles {
    /// The running sensors.
    pub supervisor: SupervisorHandle,
    /// The state file, shared with every other writer of it (the daemon's last good time).
    pub state: Arc<StateFile>,
    /// The config file as loaded, *before* the persisted desired state was applied to it:
    /// what a sensor goes back to when the hub's spec stops saying anything about it.
    pub config: Arc<AgentConfig>,
    /// The recent log lines, for `FetchLogs`.
    pub logs: LogRing,
    /// Trusted UTC for command expiry (the daemon's clock by default).
    pub utc_now: UtcClock,
    /// How long a command may take before it is reported failed
    /// ([`DEFAULT_COMMAND_PATIENCE`] by default).
    pub command_patience: Duration,
    /// The power policy, which lowers what the desired state asks under the step in force
    /// (one that lowers nothing by default).
    pub power: PowerGovernor,
}

/// How long a command may take by default: far more than any restart (a u-blox
/// re-initialises in a second or two, a power line stays off for seconds), so only a device
/// wedged in its open reaches it. Commands apply one at a time: without a bound, one wedged
/// sensor would hold back every later command, restarts of other sensors included.
pub const DEFAULT_COMMAND_PATIENCE: Duration = Duration::from_secs(120);

impl std::fmt::Debug for ControlHandles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlHandles")
            .field("supervisor", &self.supervisor)
            .field("state", &self.state.path())
            .field("node", &self.config.node.name)
            .finish_non_exhaustive()
    }
}

impl ControlHandles {
    /// Handles with the daemon's clock ([`AgentClock`]: the installed timekeeper's trusted
    /// UTC, or none).
    pub fn new(
        supervisor: SupervisorHandle,
        state: Arc<StateFile>,
        config: Arc<AgentConfig>,
        logs: LogRing,
    ) -> Self {
        ControlHandles {
            supervisor,
            state,
            config,
            logs,
            utc_now: Arc::new(|| AgentClock::new().now().utc_ns),
            command_patience: DEFAULT_COMMAND_PATIENCE,
            power: PowerGovernor::inactive(),
        }
    }

    /// With the node's power policy.
    pub fn with_power(mut self, power: PowerGovernor) -> Self {
        self.power = power;
        self
    }

    /// With another source of trusted UTC (tests: a clock before or after an expiry, or
    /// none at all).
    pub fn with_utc_clock(mut self, utc_now: UtcClock) -> Self {
        self.utc_now = utc_now;
        self
    }

    /// With another bound on how long a command may take.
    pub fn with_command_patience(mut self, patience: Duration) -> Self {
        self.command_patience = patience;
        self
    }
}

/// Starts the control task: applies `Downlink::Desired`, `Command` and `FetchLogs`
/// arriving on `downlink`, sends `Uplink::CommandAck`, `CommandResult`, `Observed` and
/// `Logs` on `uplink`. A command interrupted by a crash is reported first. The task ends
/// when `downlink` closes (after finishing the command under way) or `uplink` closes.
pub fn start(
    handles: ControlHandles,
    downlink: mpsc::Receiver<Downlink>,
    uplink: mpsc::Sender<Uplink>,
) -> JoinHandle<()> {
    tokio::spawn(Controller { handles, uplink }.run(downlink))
}

/// Creates the log ring: the layer to install in the tracing subscriber and the handle
/// that reads it. Keeps the newest `capacity` lines.
pub fn log_ring(capacity: usize) -> (LogRingLayer, LogRing) {
    logs::log_ring(capacity)
}

/// Outcomes resent at every start: more than the commands that can finish between a
/// result's recording and its arrival at the hub (one applies at a time; a few may finish
/// while the link is down), few enough to cost nothing.
pub const RESENT_AT_START: usize = 8;

/// Commands waiting behind the one being applied. They are acked only when they start, so
/// one left out is delivered again by the hub; the bound keeps a flood from growing memory.
pub const MAX_QUEUED_COMMANDS: usize = 64;

type Applying = Pin<Box<dyn Future<Output = (String, RecordedOutcome)> + Send>>;

/// The uplink is gone: the agent is stopping.
struct UplinkClosed;

struct Controller {
    handles: ControlHandles,
    uplink: mpsc::Sender<Uplink>,
}

impl Controller {
    async fn run(self, mut downlink: mpsc::Receiver<Downlink>) {
        if self.report_at_start().await.is_err() {
            return;
        }
        let mut queue: VecDeque<Command> = VecDeque::new();
        let mut applying: Option<(String, Applying)> = None;
        let mut open = true;
        loop {
            if applying.is_none() {
                while let Some(command) = queue.pop_front() {
                    match self.begin(command).await {
                        Ok(Some(started)) => {
                            applying = Some(started);
                            break;
                        }
                        Ok(None) => {}
                        Err(UplinkClosed) => return,
                    }
                }
            }
            if !open && applying.is_none() {
                return;
            }
            let sent = tokio::select! {
                message = downlink.recv(), if open => match message {
                    Some(message) => {
                        let in_flight = applying.as_ref().map(|(id, _)| id.as_str());
                        self.on_message(message, in_flight, &mut queue).await
                    }
                    None => {
                        // The daemon is stopping: finish the command under way (the
                        // supervisor answers it, at worst with "no longer supervised").
                        open = false;
                        queue.clear();
                        Ok(())
                    }
                },
                (id, outcome) = async {
                    match applying.as_mut() {
                        Some((_, future)) => future.await,
                        None => std::future::pending().await,
                    }
                } => {
                    applying = None;
                    self.finish(id, outcome).await
                }
            };
            if sent.is_err() {
                return;
            }
        }
    }

    async fn send(&self, message: Uplink) -> Result<(), UplinkClosed> {
        self.uplink.send(message).await.map_err(|_| UplinkClosed)
    }

    /// At start: resends the newest outcomes (a crash may have lost them on their way),
    /// then reports a command a crash interrupted and records it as finished (invariant 4).
    async fn report_at_start(&self) -> Result<(), UplinkClosed> {
        let snapshot = self.handles.state.snapshot();
        for (id, outcome) in commands::recent_results(&snapshot, RESENT_AT_START) {
            tracing::debug!(command = %id, "Resending a command's outcome.");
            self.send(Uplink::CommandResult {
                id,
                outcome: to_wire(&outcome),
            })
            .await?;
        }
        let interrupted = self.handles.state.update(commands::close_interrupted);
        match interrupted {
            Ok(Some((id, outcome))) => {
                tracing::warn!(command = %id, "Command interrupted by an agent restart; reported failed, not re-run.");
                self.send(Uplink::CommandResult {
                    id,
                    outcome: to_wire(&outcome),
                })
                .await
            }
            Ok(None) => Ok(()),
            Err(e) => {
                // Still "applying" in the file: it is reported at the next start instead.
                tracing::error!(error = %e, "Could not record the interrupted command as failed.");
                Ok(())
            }
        }
    }

    async fn on_message(
        &self,
        message: Downlink,
        in_flight: Option<&str>,
        queue: &mut VecDeque<Command>,
    ) -> Result<(), UplinkClosed> {
        match message {
            Downlink::Command(command) => self.on_command(command, in_flight, queue).await,
            Downlink::Desired(spec) => {
                let observed = desired::apply(&self.handles, &spec).await;
                self.send(Uplink::Observed(observed)).await
            }
            Downlink::FetchLogs {
                request,
                sensor,
                max_lines,
            } => {
                let batch = self
                    .handles
                    .logs
                    .batch(request, sensor.as_deref(), max_lines);
                self.send(Uplink::Logs(batch)).await
            }
            // Session traffic (welcome, acks, pings) is the uplink's.
            _ => Ok(()),
        }
    }

    async fn on_command(
        &self,
        command: Command,
        in_flight: Option<&str>,
        queue: &mut VecDeque<Command>,
    ) -> Result<(), UplinkClosed> {
        if queue.iter().any(|c| c.id == command.id) {
            // Waiting, not yet recorded: its ack comes when it starts. Acking it now would
            // let a crash before then lose it (the hub stops delivering acked commands).
            return Ok(());
        }
        let intake = Intake {
            now_utc_ns: (self.handles.utc_now)(),
            waiting: in_flight == Some(command.id.as_str()),
        };
        let decision = commands::decide(&self.handles.state.snapshot(), &command, intake);
        match decision {
            Decision::Repeat(outcome) => {
                tracing::info!(command = %command.id, "Command delivered again; answered with its recorded outcome, not re-run.");
                self.send(Uplink::CommandAck {
                    id: command.id.clone(),
                })
                .await?;
                self.send(Uplink::CommandResult {
                    id: command.id,
                    outcome: to_wire(&outcome),
                })
                .await
            }
            Decision::Malformed(message) => {
                tracing::warn!(id_bytes = command.id.len(), "Malformed command refused.");
                // The id is echoed as it came: the hub matches the answer by it.
                self.send(Uplink::CommandAck {
                    id: command.id.clone(),
                })
                .await?;
                self.send(Uplink::CommandResult {
                    id: command.id,
                    outcome: CommandOutcome::Failed { message },
                })
                .await
            }
            Decision::AlreadyUnderWay => self.send(Uplink::CommandAck { id: command.id }).await,
            Decision::Expired => self.expire(command).await,
            Decision::Apply { utc_known } => {
                if !utc_known {
                    tracing::warn!(command = %command.id, "No trusted UTC to check the command's expiry against; applying it (the hub checked it when it sent).");
                }
                if queue.len() >= MAX_QUEUED_COMMANDS {
                    // Not acked, so the hub delivers it again after the next welcome.
                    tracing::warn!(command = %command.id, queued = queue.len(), "Too many commands waiting; this one is left for the hub to resend.");
                } else {
                    queue.push_back(command);
                }
                Ok(())
            }
        }
    }

    /// Records that `command` is being applied, acks it and starts it; `None` when it
    /// ended at once (its record could not be made durable, so it is not applied).
    async fn begin(&self, command: Command) -> Result<Option<(String, Applying)>, UplinkClosed> {
        let id = command.id.clone();
        // It may have expired while it waited behind a slow one.
        let now = (self.handles.utc_now)();
        if commands::has_expired(&self.handles.state.snapshot(), &command, now) {
            return self.expire(command).await.map(|()| None);
        }
        let recorded = self
            .handles
            .state
            .update(|s| s.applying_command = Some(id.clone()));
        if let Err(e) = recorded {
            // Acting without the record would break "at most once" after a crash.
            tracing::error!(command = %id, error = %e, "Cannot record the command durably; not applying it.");
            let outcome = RecordedOutcome::Failed {
                message: format!("not applied: the agent could not record it durably: {e}"),
            };
            self.send(Uplink::CommandAck { id: id.clone() }).await?;
            self.send(Uplink::CommandResult {
                id,
                outcome: to_wire(&outcome),
            })
            .await?;
            return Ok(None);
        }
        self.send(Uplink::CommandAck { id: id.clone() }).await?;
        tracing::info!(command = %id, action = ?command.action, "Applying command.");
        let supervisor = self.handles.supervisor.clone();
        let patience = self.handles.command_patience;
        let future: Applying = Box::pin(async move {
            let outcome = tokio::time::timeout(patience, commands::act(&supervisor, &command))
                .await
                .unwrap_or_else(|_| RecordedOutcome::Failed {
                    // The sensor's thread may still finish the restart: it was asked once
                    // and is never asked again for this command.
                    message: format!(
                        "no answer within {:.1} s; the sensor may still be restarting",
                        patience.as_secs_f64()
                    ),
                });
            (command.id, outcome)
        });
        Ok(Some((id, future)))
    }

    /// Records and reports a command that arrived (or waited) past its expiry.
    async fn expire(&self, command: Command) -> Result<(), UplinkClosed> {
        tracing::info!(command = %command.id, expires_utc_ns = command.expires_utc_ns, "Command past its expiry; not applied.");
        let id = command.id.clone();
        let recorded = self
            .handles
            .state
            .update(|s| s.record_outcome(id, RecordedOutcome::Expired));
        if let Err(e) = recorded {
            tracing::warn!(command = %command.id, error = %e, "Could not record the expired command.");
        }
        self.send(Uplink::CommandAck {
            id: command.id.clone(),
        })
        .await?;
        self.send(Uplink::CommandResult {
            id: command.id,
            outcome: CommandOutcome::Expired,
        })
        .await
    }

    /// Records a command's outcome and reports it.
    async fn finish(&self, id: String, outcome: RecordedOutcome) -> Result<(), UplinkClosed> {
        tracing::info!(command = %id, outcome = ?outcome, "Command finished.");
        let recorded = self.handles.state.update({
            let (id, outcome) = (id.clone(), outcome.clone());
            move |s| s.record_outcome(id, outcome)
        });
        if let Err(e) = recorded {
            // Left "applying": after a restart it is reported failed, never re-run.
            tracing::error!(command = %id, error = %e, "Could not record the command's outcome.");
        }
        self.send(Uplink::CommandResult {
            id,
            outcome: to_wire(&outcome),
        })
        .await
    }
}

/// The wire form of a recorded outcome.
pub fn to_wire(outcome: &RecordedOutcome) -> CommandOutcome {
    match outcome {
        RecordedOutcome::Succeeded { message } => CommandOutcome::Succeeded {
            message: message.clone(),
        },
        RecordedOutcome::Failed { message } => CommandOutcome::Failed {
            message: message.clone(),
        },
        RecordedOutcome::Expired => CommandOutcome::Expired,
    }
}
