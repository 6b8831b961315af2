//! The hub's control layer: commands, desired sensor state, the audit trail and
//! on-demand agent logs, as a domain with no HTTP (the API's handlers call it). It
//! implements [`NodeControl`], the sessions' seam: what to send a node when it connects,
//! and what to do with the control messages it sends.
//!
//! # Layout
//!
//! - [`phase`]: a command's life as a state machine with no I/O.
//! - [`audit`]: the audit trail's vocabulary (action, kind, outcome) and its events.
//! - this module: [`Control`], which ties them to the control tables
//!   ([`ControlTables`], `control.sqlite` by default), the sessions and the registry.
//!
//! Invariants (docs/design.md invariant 4):
//! - A command is persisted (with its audit event, in one transaction) before the API
//!   answers; it is then pushed at once if the node is connected, and sent again after
//!   every welcome until the agent acks it. Resending is harmless: the agent applies an id
//!   at most once.
//! - Desired state is level-triggered and never expires: the whole spec of the node goes
//!   out after every welcome and after every change; a change bumps the sensor's
//!   generation, a write that changes nothing does not. A deleted entry leaves the spec
//!   (once the last one is deleted, the spec goes out empty), so the agent goes back to its
//!   config file. A node holds at most `MAX_DESIRED_SENSORS` entries of valid names: its
//!   whole spec always fits one downlink message.
//! - Every command, desired-state, node and token change is audited: who (token id, role),
//!   what, when, outcome. So are refusals of them.
//! - Nothing here blocks a session for long: SQLite writes of a few rows on a file of its
//!   own, never a wait on the network.

pub mod audit;
pub mod phase;

pub use audit::{Action, Kind, Object, Outcome, actor_of, event};

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use aloft_protocol::sync::{
    Command, CommandAction, CommandOutcome, DesiredSensorSpec, DesiredSpec, Downlink, LogBatch,
    MAX_DESIRED_SENSORS, MAX_TUNABLES, SensorTunables, TunableValue, UNSOLICITED_LOGS, Uplink,
    check_tunables,
};
use tokio::sync::{oneshot, watch};

use crate::Hub;
use crate::clock::{now_utc_ns, random_hex};
use crate::nodes::connected::Sessions;
use crate::nodes::control_seam::NodeControl;
use crate::nodes::registry::{NameRefused, Registry, RegistryError, check_name};
use crate::storage::control::{
    Actor, CommandRow, ControlTables, DesiredRow, EventRow, TablesError, Tunables,
};
use crate::storage::sqlite::SqliteControl;
use crate::tokens::Tokens;
use phase::{CancelRefused, Phase};

/// A command's default time to live: 1 h.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// The longest TTL accepted: a week. Longer is a desired state, not a command.
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often the hub looks for pending commands past their expiry.
const EXPIRY_TICK: Duration = Duration::from_secs(1);

/// Why a control operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The control database failed.
    #[error("control database: {0}")]
    Db(#[from] TablesError),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// No randomness for an id.
    #[error("no randomness for an id: {0}")]
    Random(#[from] getrandom::Error),
    /// No such node.
    #[error("node {0:?} does not exist; list nodes with `aloftctl get nodes`")]
    NoSuchNode(String),
    /// The node has reported its sensors and this is not one of them.
    #[error("node {node:?} has no sensor {sensor:?}; its sensors are: {known}")]
    NoSuchSensor {
        /// The node.
        node: String,
        /// The name asked for.
        sensor: String,
        /// The names it reported.
        known: String,
    },
    /// No such command.
    #[error("command {0:?} does not exist; list commands with `aloftctl get commands`")]
    NoSuchCommand(String),
    /// The command cannot be cancelled.
    #[error("command {id} cannot be cancelled: {reason}")]
    CannotCancel {
        /// The command.
        id: String,
        /// Why.
        reason: CancelRefused,
    },
    /// A request that makes no sense (a TTL of 0, an interval of 0).
    #[error("{0}")]
    Invalid(String),
    /// A node or sensor name that breaks the grammar of names.
    #[error(transparent)]
    InvalidName(#[from] NameRefused),
    /// A new sensor entry would take the node's desired state past what one downlink
    /// message carries.
    #[error(
        "node {node:?} has desired state for {max} sensors already, the most one node can have; delete entries it no longer needs (`aloftctl unset NODE SENSOR`)"
    )]
    TooManyDesired {
        /// The node.
        node: String,
        /// [`MAX_DESIRED_SENSORS`].
        max: usize,
    },
    /// No desired state for that sensor.
    #[error(
        "node {node:?} has no desired state for sensor {sensor:?}; `GET /api/v1/nodes/{node}/desired` shows what it has"
    )]
    NoSuchDesired {
        /// The node.
        node: String,
        /// The sensor.
        sensor: String,
    },
    /// Logs need a connected node.
    #[error(
        "node {0:?} is not connected: its logs are fetched from the agent live; try again when it is (`aloftctl get nodes`)"
    )]
    NotConnected(String),
    /// The node did not answer in time.
    #[error(
        "node {node:?} did not send its logs within {waited_s} s; the link may be slow or down"
    )]
    LogsTimeout {
        /// The node.
        node: String,
        /// How long the hub waited, s.
        waited_s: u64,
    },
}

/// What a desired-state write asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpecChange {
    /// Desired interval, ms; `None` leaves it to the node's config file.
    pub interval_ms: Option<u32>,
    /// Desired enabled flag; `None` leaves it to the node's config file.
    pub enabled: Option<bool>,
    /// Exempt the sensor from the node's power steps (`Some(false)` clears it); `None`
    /// keeps it in a merge and clears it in a replace.
    pub power_override: Option<bool>,
}

/// A write of a sensor's desired tunables, as the body gave them: key to value, `None`
/// (JSON `null`) removing the key in a merge. `None` as a whole: the body named none.
pub type TunablesChange = Option<BTreeMap<String, Option<TunableValue>>>;

/// How a desired-state write is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecWrite {
    /// The spec is exactly this (`apply`): unset fields are no longer desired.
    Replace,
    /// Only the fields given change (`set`).
    Merge,
}

/// The result of a desired-state write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredWritten {
    /// The sensor's desired state after it (or as it would be, in a dry run).
    pub row: DesiredRow,
    /// Whether it changed anything (and bumped the generation).
    pub changed: bool,
}

/// The control layer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Control {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn ControlTables>,
    sessions: Sessions,
    registry: Registry,
    tokens: Tokens,
    /// Bumped at every change; watches wait on it.
    changes: watch::Sender<u64>,
    logs: Mutex<HashMap<u64, oneshot::Sender<LogBatch>>>,
    next_request: AtomicU64,
}

impl Control {
    /// Opens `control.sqlite` in the hub's data directory. Call [`Control::start_expiry`]
    /// from within the runtime to have pending commands expire on time.
    pub fn open(hub: &Hub) -> Result<Control, ControlError> {
        Control::open_parts(
            &hub.data_dir,
            hub.sessions.clone(),
            hub.registry.clone(),
            hub.tokens.clone(),
        )
    }

    /// [`Control::open`] from the hub's parts.
    pub fn open_parts(
        data_dir: &Path,
        sessions: Sessions,
        registry: Registry,
        tokens: Tokens,
    ) -> Result<Control, ControlError> {
        let tables = SqliteControl::open(data_dir)?;
        Ok(Control::new(Arc::new(tables), sessions, registry, tokens))
    }

    /// The control layer on `store`, any backend's control tables.
    pub fn new(
        store: Arc<dyn ControlTables>,
        sessions: Sessions,
        registry: Registry,
        tokens: Tokens,
    ) -> Control {
        let (changes, _) = watch::channel(0);
        Control {
            inner: Arc::new(Inner {
                store,
                sessions,
                registry,
                tokens,
                changes,
                logs: Mutex::new(HashMap::new()),
                next_request: AtomicU64::new(1),
            }),
        }
    }

    /// Starts the task that marks pending commands expired when their TTL passes; it ends
    /// when the last clone of this `Control` is dropped.
    pub fn start_expiry(&self) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EXPIRY_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let control = Control { inner };
                if let Err(e) = control.expire_due() {
                    tracing::warn!(error = %e, "Command expiry check failed.");
                }
            }
        })
    }

    /// A receiver that sees a new value at every change of commands, desired state or
    /// events.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// The registry this layer reads sensors from.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The hub's tokens.
    pub fn tokens(&self) -> &Tokens {
        &self.inner.tokens
    }

    /// Whether the node has a current session.
    pub fn is_connected(&self, node: &str) -> bool {
        self.inner.sessions.is_connected(node)
    }

    fn changed(&self) {
        self.inner.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Records an audit event (the API's node and token changes, refusals).
    pub fn audit(&self, row: EventRow) {
        match self.inner.store.add_event(&row) {
            Ok(()) => self.changed(),
            // The audit trail failing must be loud, but it must not undo what was done.
            Err(e) => tracing::error!(
                error = %e,
                action = %row.action,
                kind = %row.object_kind,
                name = %row.object_name,
                "Audit event not recorded."
            ),
        }
    }

    fn check_node(&self, node: &str) -> Result<(), ControlError> {
        if self.inner.registry.exists(node)? {
            Ok(())
        } else {
            Err(ControlError::NoSuchNode(node.to_owned()))
        }
    }

    /// Refuses a sensor the node has never reported, when it has reported its sensors.
    /// A node the hub has not heard from since it started cannot be checked: the agent
    /// then refuses an unknown name itself (in its Observed or CommandResult).
    fn check_sensor(&self, node: &str, sensor: &str) -> Result<(), ControlError> {
        let Some(status) = self.inner.registry.node(node)? else {
            return Err(ControlError::NoSuchNode(node.to_owned()));
        };
        if status.sensors.is_empty() || status.sensors.iter().any(|s| s.name == sensor) {
            return Ok(());
        }
        if self.inner.store.desired_one(node, sensor)?.is_some() {
            return Ok(());
        }
        Err(ControlError::NoSuchSensor {
            node: node.to_owned(),
            sensor: sensor.to_owned(),
            known: status
                .sensors
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Creates a restart command: persisted and audited, then pushed if the node is
    /// connected (else it goes out when the node next connects).
    pub fn restart(
        &self,
        who: &Actor,
        node: &str,
        sensor: &str,
        hard: bool,
        ttl: Duration,
    ) -> Result<CommandRow, ControlError> {
        if ttl.is_zero() || ttl > MAX_TTL {
            return Err(ControlError::Invalid(format!(
                "ttl must be between 1 s and {} s",
                MAX_TTL.as_secs()
            )));
        }
        check_name("node", node)?;
        check_name("sensor", sensor)?;
        self.check_node(node)?;
        self.check_sensor(node, sensor)?;
        let now = now_utc_ns();
        let ttl_ns = i64::try_from(ttl.as_nanos()).unwrap_or(i64::MAX);
        let command = CommandRow {
            id: format!("cmd-{}", random_hex(6)?),
            node: node.to_owned(),
            sensor: sensor.to_owned(),
            hard,
            ttl_s: ttl.as_secs(),
            created_ns: now,
            expires_ns: now.saturating_add(ttl_ns),
            phase: Phase::Pending,
            message: "waiting for the node to receive it".into(),
            actor: who.clone(),
            delivered_ns: None,
            finished_ns: None,
            revision: 1,
        };
        let audit = event(
            who,
            Action::Create,
            Object::new(Kind::Command, &command.id, Some(node)),
            Outcome::Ok,
            format!(
                "restart {sensor}{} (ttl {} s)",
                if hard { " (hard)" } else { "" },
                command.ttl_s
            ),
        );
        self.inner.store.insert_command(&command, &audit)?;
        self.changed();
        let pushed = self
            .inner
            .sessions
            .push(node, Downlink::Command(wire_command(&command)));
        tracing::info!(command = %command.id, node, sensor, hard, pushed, "Restart command created.");
        Ok(command)
    }

    /// Cancels a command that the node has not received.
    pub fn cancel(&self, who: &Actor, id: &str) -> Result<CommandRow, ControlError> {
        let command = self
            .inner
            .store
            .command(id)?
            .ok_or_else(|| ControlError::NoSuchCommand(id.to_owned()))?;
        let to = match command.phase.on_cancel() {
            Ok(to) => to,
            Err(reason) => {
                self.audit(event(
                    who,
                    Action::Cancel,
                    Object::new(Kind::Command, id, Some(&command.node)),
                    Outcome::Refused,
                    reason.to_string(),
                ));
                return Err(ControlError::CannotCancel {
                    id: id.to_owned(),
                    reason,
                });
            }
        };
        let message = format!("cancelled by {}", who.token);
        let audit = event(
            who,
            Action::Cancel,
            Object::new(Kind::Command, id, Some(&command.node)),
            Outcome::Ok,
            message.clone(),
        );
        match self
            .inner
            .store
            .transition(id, command.phase, to, &message, now_utc_ns(), &audit)?
        {
            Some(row) => {
                self.changed();
                Ok(row)
            }
            // The agent's ack won the race: say so as the phase it is now in.
            None => {
                let phase = self
                    .inner
                    .store
                    .command(id)?
                    .map(|c| c.phase)
                    .unwrap_or(Phase::Delivered);
                let reason = phase.on_cancel().err().unwrap_or(CancelRefused::Delivered);
                Err(ControlError::CannotCancel {
                    id: id.to_owned(),
                    reason,
                })
            }
        }
    }

    /// One command.
    pub fn command(&self, id: &str) -> Result<Option<CommandRow>, ControlError> {
        Ok(self.inner.store.command(id)?)
    }

    /// Commands (of a node), oldest first, the newest `limit`.
    pub fn commands(
        &self,
        node: Option<&str>,
        limit: u32,
    ) -> Result<Vec<CommandRow>, ControlError> {
        Ok(self.inner.store.commands(node, limit)?)
    }

    /// Marks pending commands past their expiry Expired; how many.
    pub fn expire_due(&self) -> Result<usize, ControlError> {
        let now = now_utc_ns();
        let mut expired = 0;
        for command in self.inner.store.due_for_expiry(now)? {
            let Some(to) = command.phase.on_expiry() else {
                continue;
            };
            let message = format!(
                "not delivered within its ttl of {} s (the node did not connect)",
                command.ttl_s
            );
            let audit = event(
                &Actor::hub(),
                Action::Expire,
                Object::new(Kind::Command, &command.id, Some(&command.node)),
                Outcome::Phase(to),
                message.clone(),
            );
            if self
                .inner
                .store
                .transition(&command.id, command.phase, to, &message, now, &audit)?
                .is_some()
            {
                expired += 1;
                tracing::info!(command = %command.id, node = %command.node, "Command expired.");
            }
        }
        if expired > 0 {
            self.changed();
        }
        Ok(expired)
    }

    /// Writes a sensor's desired interval and enabled flag ([`Control::write_desired`]
    /// without tunables: a replace clears them, a merge keeps them).
    pub fn set_desired(
        &self,
        who: &Actor,
        node: &str,
        sensor: &str,
        change: SpecChange,
        how: SpecWrite,
        dry_run: bool,
    ) -> Result<DesiredWritten, ControlError> {
        self.write_desired(who, node, sensor, change, None, how, dry_run)
    }

    /// Writes a sensor's desired state; bumps the generation and sends the node its new
    /// spec if anything changed. A dry run validates and computes without writing.
    /// Tunables are checked against the protocol's bounds only (the agent checks what the
    /// sensor's kind accepts, and reports a refusal with its reason); a merge sets the keys
    /// given and removes those given as `None`.
    #[allow(clippy::too_many_arguments)]
    pub fn write_desired(
        &self,
        who: &Actor,
        node: &str,
        sensor: &str,
        change: SpecChange,
        tunables: TunablesChange,
        how: SpecWrite,
        dry_run: bool,
    ) -> Result<DesiredWritten, ControlError> {
        if let Some(given) = &tunables {
            // Every key given is held to the bounds, the removed ones too: a body of a
            // million nulls is refused, not looked up.
            if given.len() > MAX_TUNABLES {
                return Err(ControlError::Invalid(format!(
                    "{} tunables in one write; a sensor has at most {MAX_TUNABLES}",
                    given.len()
                )));
            }
            let placeholder = TunableValue::Bool(false);
            check_tunables(
                given
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_ref().unwrap_or(&placeholder))),
            )
            .map_err(|e| ControlError::Invalid(e.to_string()))?;
        }
        if change.interval_ms == Some(0) {
            return Err(ControlError::Invalid(
                "intervalMs must be at least 1".into(),
            ));
        }
        check_name("node", node)?;
        check_name("sensor", sensor)?;
        self.check_node(node)?;
        self.check_sensor(node, sensor)?;
        let now = now_utc_ns();
        let old = self.inner.store.desired_one(node, sensor)?;
        // The whole spec goes out in one message: bounded entries of bounded names keep
        // it under the message cap, so the hub never sends what the agent must refuse.
        if old.is_none() && self.inner.store.desired(Some(node))?.len() >= MAX_DESIRED_SENSORS {
            return Err(ControlError::TooManyDesired {
                node: node.to_owned(),
                max: MAX_DESIRED_SENSORS,
            });
        }
        let (interval_ms, enabled, power_override) = match (how, &old) {
            (SpecWrite::Merge, Some(old)) => (
                change.interval_ms.or(old.interval_ms),
                change.enabled.or(old.enabled),
                change.power_override.unwrap_or(old.power_override),
            ),
            _ => (
                change.interval_ms,
                change.enabled,
                change.power_override.unwrap_or(false),
            ),
        };
        let mut wanted: Tunables = match (how, &old) {
            (SpecWrite::Merge, Some(old)) => old.tunables.clone(),
            _ => Tunables::new(),
        };
        for (key, value) in tunables.into_iter().flatten() {
            match value {
                Some(v) => {
                    wanted.insert(key, v);
                }
                None => {
                    wanted.remove(&key);
                }
            }
        }
        check_tunables(wanted.iter().map(|(k, v)| (k.as_str(), v)))
            .map_err(|e| ControlError::Invalid(e.to_string()))?;
        let changed = match &old {
            Some(old) => {
                old.interval_ms != interval_ms
                    || old.enabled != enabled
                    || old.tunables != wanted
                    || old.power_override != power_override
            }
            None => {
                interval_ms.is_some() || enabled.is_some() || !wanted.is_empty() || power_override
            }
        };
        let row = DesiredRow {
            node: node.to_owned(),
            sensor: sensor.to_owned(),
            generation: old.as_ref().map_or(0, |o| o.generation) + u64::from(changed),
            interval_ms,
            enabled,
            tunables: wanted,
            observed_generation: old.as_ref().and_then(|o| o.observed_generation),
            refused: old.as_ref().and_then(|o| o.refused.clone()),
            observed_tunables: old.as_ref().and_then(|o| o.observed_tunables.clone()),
            power_override,
            created_ns: old.as_ref().map_or(now, |o| o.created_ns),
            updated_ns: if changed {
                now
            } else {
                old.as_ref().map_or(now, |o| o.updated_ns)
            },
        };
        if dry_run || !changed {
            return Ok(DesiredWritten { row, changed });
        }
        let audit = event(
            who,
            Action::Set,
            Object::new(Kind::Sensor, sensor, Some(node)),
            Outcome::Ok,
            format!(
                "generation {}: interval {}, enabled {}{}{}",
                row.generation,
                interval_ms.map_or("from config".to_owned(), |ms| format!("{ms} ms")),
                enabled.map_or("from config".to_owned(), |e| e.to_string()),
                if power_override {
                    ", exempt from power steps"
                } else {
                    ""
                },
                if row.tunables.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", tunables {}",
                        row.tunables
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    )
                }
            ),
        );
        self.inner.store.put_desired(&row, &audit)?;
        self.changed();
        let pushed = self.push_desired(node)?;
        tracing::info!(
            node,
            sensor,
            generation = row.generation,
            pushed,
            "Desired state changed."
        );
        Ok(DesiredWritten { row, changed })
    }

    /// Deletes a sensor's desired state: the agent goes back to its config file's values
    /// for that sensor. Any existing entry can be deleted, also one whose name an older hub
    /// let through. A dry run checks and returns the entry without deleting it.
    pub fn delete_desired(
        &self,
        who: &Actor,
        node: &str,
        sensor: &str,
        dry_run: bool,
    ) -> Result<DesiredRow, ControlError> {
        self.check_node(node)?;
        let Some(row) = self.inner.store.desired_one(node, sensor)? else {
            return Err(ControlError::NoSuchDesired {
                node: node.to_owned(),
                sensor: sensor.to_owned(),
            });
        };
        if dry_run {
            return Ok(row);
        }
        let audit = event(
            who,
            Action::Delete,
            Object::new(Kind::Sensor, sensor, Some(node)),
            Outcome::Ok,
            format!(
                "desired state removed at generation {}: interval and enabled from config",
                row.generation
            ),
        );
        self.inner.store.delete_desired(node, sensor, &audit)?;
        self.changed();
        let pushed = self.push_desired(node)?;
        tracing::info!(node, sensor, pushed, "Desired state deleted.");
        Ok(row)
    }

    /// Sends the node its whole spec now, if it is connected (an empty spec too: that
    /// is what sends every sensor back to its config file).
    fn push_desired(&self, node: &str) -> Result<bool, ControlError> {
        let spec = self.desired_spec(node)?.unwrap_or(DesiredSpec {
            sensors: vec![],
            tunables: vec![],
            power_overrides: vec![],
        });
        Ok(self.inner.sessions.push(node, Downlink::Desired(spec)))
    }

    /// Desired state of a node's sensors (or all nodes').
    pub fn desired(&self, node: Option<&str>) -> Result<Vec<DesiredRow>, ControlError> {
        Ok(self.inner.store.desired(node)?)
    }

    /// The spec the node is sent, `None` when nothing is desired of it. Entries an older
    /// hub stored under names that break the rule for names are left out (no agent config
    /// holds such a name, and one could be of any size), and so is anything past
    /// [`MAX_DESIRED_SENSORS`]: the spec always fits one downlink message. Both are
    /// logged; such entries can still be deleted.
    pub fn desired_spec(&self, node: &str) -> Result<Option<DesiredSpec>, ControlError> {
        let rows = self.inner.store.desired(Some(node))?;
        if rows.is_empty() {
            return Ok(None);
        }
        let total = rows.len();
        let (valid, misnamed): (Vec<_>, Vec<_>) = rows
            .into_iter()
            .partition(|r| aloft_protocol::is_valid_name(&r.sensor));
        if !misnamed.is_empty() {
            tracing::warn!(
                node,
                entries = misnamed.len(),
                first = %crate::nodes::registry::shown_name(&misnamed[0].sensor),
                "Desired-state entries whose sensor names break the rule for names are not sent; delete them."
            );
        }
        if valid.len() > MAX_DESIRED_SENSORS {
            tracing::warn!(
                node,
                entries = valid.len(),
                sent = MAX_DESIRED_SENSORS,
                "More desired-state entries than one message carries; the rest are not sent; delete the ones not needed."
            );
        }
        let sent: Vec<_> = valid.into_iter().take(MAX_DESIRED_SENSORS).collect();
        // Within the bounds, as every write checked: the spec still fits one message.
        let tunables = sent
            .iter()
            .filter(|r| !r.tunables.is_empty())
            .map(|r| SensorTunables {
                name: r.sensor.clone(),
                tunables: r.tunables.clone().into_iter().collect(),
            })
            .collect();
        let power_overrides = sent
            .iter()
            .filter(|r| r.power_override)
            .map(|r| r.sensor.clone())
            .collect();
        let sensors: Vec<_> = sent
            .into_iter()
            .map(|r| DesiredSensorSpec {
                name: r.sensor,
                generation: r.generation,
                interval_ms: r.interval_ms,
                enabled: r.enabled,
            })
            .collect();
        tracing::trace!(node, total, sent = sensors.len(), "Desired spec built.");
        Ok(Some(DesiredSpec {
            sensors,
            tunables,
            power_overrides,
        }))
    }

    /// Audit events (of a node), after `after`, the newest `limit`, oldest first.
    pub fn events(
        &self,
        node: Option<&str>,
        after: u64,
        limit: u32,
    ) -> Result<Vec<EventRow>, ControlError> {
        Ok(self.inner.store.events(node, after, limit)?)
    }

    /// A node was deleted: its pending commands are cancelled and its desired state
    /// forgotten (a node of the same name created later starts clean).
    pub fn forget_node(&self, who: &Actor, node: &str) -> Result<(), ControlError> {
        for command in self.inner.store.commands_in(node, Phase::Pending)? {
            let message = "cancelled: the node was deleted".to_owned();
            let audit = event(
                who,
                Action::Cancel,
                Object::new(Kind::Command, &command.id, Some(node)),
                Outcome::Ok,
                message.clone(),
            );
            self.inner.store.transition(
                &command.id,
                Phase::Pending,
                Phase::Cancelled,
                &message,
                now_utc_ns(),
                &audit,
            )?;
        }
        self.inner.store.forget_desired(node)?;
        self.changed();
        Ok(())
    }

    /// Cancels a pending command an older hub accepted for a sensor name that breaks the
    /// rule for names, instead of sending it: no agent config holds such a name, and one
    /// could be of any size.
    fn cancel_misnamed(&self, command: &CommandRow) -> Result<(), ControlError> {
        let message = format!(
            "cancelled: {}",
            check_name("sensor", &command.sensor)
                .err()
                .map_or_else(String::new, |e| e.to_string())
        );
        let audit = event(
            &Actor::hub(),
            Action::Cancel,
            Object::new(Kind::Command, &command.id, Some(&command.node)),
            Outcome::Ok,
            message.clone(),
        );
        if self
            .inner
            .store
            .transition(
                &command.id,
                Phase::Pending,
                Phase::Cancelled,
                &message,
                now_utc_ns(),
                &audit,
            )?
            .is_some()
        {
            self.changed();
            tracing::warn!(node = %command.node, command = %command.id, "Command of a sensor name that breaks the rule cancelled, not sent.");
        }
        Ok(())
    }

    /// Asks the node for recent log lines and waits for them.
    pub async fn fetch_logs(
        &self,
        node: &str,
        sensor: Option<String>,
        max_lines: u32,
        timeout: Duration,
    ) -> Result<LogBatch, ControlError> {
        if let Some(sensor) = &sensor {
            check_name("sensor", sensor)?;
        }
        self.check_node(node)?;
        let request = self.inner.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.inner
            .logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(request, tx);
        let sent = self.inner.sessions.push(
            node,
            Downlink::FetchLogs {
                request,
                sensor,
                max_lines,
            },
        );
        let result = if sent {
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(batch)) => Ok(batch),
                _ => Err(ControlError::LogsTimeout {
                    node: node.to_owned(),
                    waited_s: timeout.as_secs(),
                }),
            }
        } else {
            Err(ControlError::NotConnected(node.to_owned()))
        };
        self.inner
            .logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&request);
        result
    }

    fn on_ack(&self, node: &str, id: &str) -> Result<(), ControlError> {
        let Some(command) = self.inner.store.command(id)? else {
            tracing::warn!(node, command = id, "Ack of an unknown command ignored.");
            return Ok(());
        };
        if command.node != node {
            // A node can only touch its own commands.
            tracing::warn!(node, command = id, owner = %command.node, "Ack of another node's command ignored.");
            return Ok(());
        }
        let Some(to) = command.phase.on_ack() else {
            return Ok(());
        };
        let message = "the node holds it and applies it once".to_owned();
        let audit = event(
            &Actor::node(node),
            Action::Deliver,
            Object::new(Kind::Command, id, Some(node)),
            Outcome::Phase(to),
            message.clone(),
        );
        if self
            .inner
            .store
            .transition(id, command.phase, to, &message, now_utc_ns(), &audit)?
            .is_some()
        {
            self.changed();
        }
        Ok(())
    }

    fn on_result(
        &self,
        node: &str,
        id: &str,
        outcome: &CommandOutcome,
    ) -> Result<(), ControlError> {
        let Some(command) = self.inner.store.command(id)? else {
            tracing::warn!(node, command = id, "Result of an unknown command ignored.");
            return Ok(());
        };
        if command.node != node {
            tracing::warn!(node, command = id, owner = %command.node, "Result of another node's command ignored.");
            return Ok(());
        }
        let (to, mut message) = match outcome {
            CommandOutcome::Succeeded { message } => (Phase::Succeeded, message.clone()),
            CommandOutcome::Failed { message } => (Phase::Failed, message.clone()),
            CommandOutcome::Expired => (
                Phase::Expired,
                "the node received it after its expiry and did not apply it".to_owned(),
            ),
            _ => (
                Phase::Failed,
                "the node reported an outcome this hub does not know".to_owned(),
            ),
        };
        let Some(to) = command.phase.on_result(to) else {
            return Ok(());
        };
        if command.phase == Phase::Cancelled {
            message = format!("the cancel came too late: {message}");
        }
        let audit = event(
            &Actor::node(node),
            Action::Complete,
            Object::new(Kind::Command, id, Some(node)),
            Outcome::Phase(to),
            message.clone(),
        );
        if self
            .inner
            .store
            .transition(id, command.phase, to, &message, now_utc_ns(), &audit)?
            .is_some()
        {
            self.changed();
            tracing::info!(node, command = id, phase = to.name(), "Command ended.");
        }
        Ok(())
    }

    /// Log lines the agent sent unasked: problems the operator must see, such as a
    /// downlink message the agent refused. Each becomes an audit event of the node (a
    /// bounded number per batch), so `aloftctl get events` shows it.
    fn on_agent_report(&self, node: &str, batch: LogBatch) {
        const MAX_REPORTED_LINES: usize = 16;
        for line in batch.lines.into_iter().take(MAX_REPORTED_LINES) {
            let message = aloft_protocol::sync::bounded_text(
                &line.message,
                aloft_protocol::sync::MAX_TEXT_BYTES,
            );
            tracing::warn!(node, level = %line.level, report = %message, "The node reports a problem.");
            self.audit(event(
                &Actor::node(node),
                Action::Report,
                Object::new(Kind::Node, node, Some(node)),
                Outcome::Refused,
                message,
            ));
        }
    }

    fn handle(&self, node: &str, message: Uplink) -> Result<(), ControlError> {
        match message {
            Uplink::CommandAck { id } => self.on_ack(node, &id),
            Uplink::CommandResult { id, outcome } => {
                // An agent that applied without our seeing its ack (lost on a cut) still
                // delivered it: the result settles both.
                self.on_result(node, &id, &outcome)
            }
            Uplink::Observed(observed) => {
                let mut any = false;
                for sensor in observed.sensors {
                    let in_force: Option<Tunables> = observed
                        .tunables
                        .iter()
                        .find(|t| t.name == sensor.name)
                        .map(|t| t.tunables.iter().cloned().collect());
                    any |= self.inner.store.observe(
                        node,
                        &sensor.name,
                        sensor.observed_generation,
                        sensor.refused.as_deref(),
                        in_force.as_ref(),
                    )?;
                }
                if any {
                    self.changed();
                }
                Ok(())
            }
            Uplink::Logs(batch) if batch.request == UNSOLICITED_LOGS => {
                self.on_agent_report(node, batch);
                Ok(())
            }
            Uplink::Logs(batch) => {
                let waiter = self
                    .inner
                    .logs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&batch.request);
                match waiter {
                    Some(tx) => {
                        let _ = tx.send(batch);
                    }
                    None => tracing::debug!(
                        node,
                        request = batch.request,
                        "Logs nobody waits for any more."
                    ),
                }
                Ok(())
            }
            other => {
                tracing::debug!(node, ?other, "Not a control message; ignored.");
                Ok(())
            }
        }
    }
}

/// The command as the agent receives it.
pub fn wire_command(command: &CommandRow) -> Command {
    Command {
        id: command.id.clone(),
        expires_utc_ns: command.expires_ns,
        action: CommandAction::RestartSensor {
            sensor: command.sensor.clone(),
            hard: command.hard,
        },
    }
}

impl NodeControl for Control {
    fn on_connect(&self, node: &str) -> Vec<Downlink> {
        let mut out = Vec::new();
        // Level-triggered: the whole spec, also when its last entry was deleted (an empty
        // spec), so that entries deleted while the node was away stop applying.
        match self.desired_spec(node) {
            Ok(Some(spec)) => out.push(Downlink::Desired(spec)),
            Ok(None) => match self.inner.store.desired_cleared(node) {
                Ok(true) => out.push(Downlink::Desired(DesiredSpec {
                    sensors: vec![],
                    tunables: vec![],
                    power_overrides: vec![],
                })),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(node, error = %e, "Desired state not readable at connect.")
                }
            },
            Err(e) => tracing::error!(node, error = %e, "Desired state not readable at connect."),
        }
        // Expired ones first, so none of them goes out past its expiry.
        if let Err(e) = self.expire_due() {
            tracing::warn!(node, error = %e, "Command expiry check failed.");
        }
        match self.inner.store.commands_in(node, Phase::Pending) {
            Ok(commands) => {
                for command in commands {
                    if aloft_protocol::is_valid_name(&command.sensor) {
                        out.push(Downlink::Command(wire_command(&command)));
                    } else if let Err(e) = self.cancel_misnamed(&command) {
                        tracing::error!(node, command = %command.id, error = %e, "Could not cancel a command of a bad sensor name.");
                    }
                }
            }
            Err(e) => {
                tracing::error!(node, error = %e, "Pending commands not readable at connect.")
            }
        }
        out
    }

    fn on_control(&self, node: &str, message: Uplink) {
        if let Err(e) = self.handle(node, message) {
            tracing::error!(node, error = %e, "Control message not recorded.");
        }
    }
}

#[cfg(test)]
mod tests;
