//! The node registry: which nodes exist (persisted, with their credentials in `tokens`),
//! and what the hub knows of each right now (in memory: connected or not, the agent's
//! version and boot, link statistics, the newest value of every sensor quantity, sensor
//! reports and the backlog from the live lane).
//!
//! Invariants: a node exists only if created (by `init` or the API); its live state is a
//! copy of what its sessions reported and is lost at a hub restart, except last seen, the
//! agent version and boot id, which are persisted when a session starts and ends.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use aloft_protocol::sync::{BacklogReport, Hello, LiveUpdate, NodeHealth, SensorReport};
use aloft_protocol::{Quantity, Reading, SensorId, StoreEpoch};

use crate::clock::{hex, now_utc_ns};
use crate::storage::TablesError;
use crate::storage::nodes::{NodeRow, NodeTables};
use crate::storage::streams::{StorageError, StreamStatus, Streams};
use crate::tokens::{Role, TokenError, TokenInfo, Tokens};

/// Most (sensor, quantity) newest values and sensor names kept per node: far above any
/// real node (tens of sensors), far below what a misbehaving one could send.
const MAX_LIVE_KEYS: usize = 4096;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The database failed.
    #[error("registry database: {0}")]
    Db(#[from] TablesError),
    /// A token could not be made or revoked.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The streams could not be read.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The node exists already.
    #[error("node {0:?} exists already")]
    Exists(String),
    /// Not a usable node name.
    #[error(transparent)]
    InvalidName(NameRefused),
}

/// A node or sensor name that breaks the one grammar of names
/// ([`aloft_protocol::check_name`]), with what is wrong and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {what} name {} {error}; use {}", shown_name(.name), aloft_protocol::NAME_RULE)]
pub struct NameRefused {
    /// `node` or `sensor`.
    pub what: &'static str,
    /// The name as given.
    pub name: String,
    /// What is wrong with it.
    pub error: aloft_protocol::NameError,
}

/// A name quoted and escaped for a message, and cut after 63 characters: a name of a
/// megabyte is refused for its length, not echoed.
pub fn shown_name(name: &str) -> String {
    let head: String = name.chars().take(aloft_protocol::MAX_NAME_LEN).collect();
    if head.len() < name.len() {
        format!("{head:?}...")
    } else {
        format!("{head:?}")
    }
}

/// Checks a node or sensor name against the protocol's grammar.
pub fn check_name(what: &'static str, name: &str) -> Result<(), NameRefused> {
    aloft_protocol::check_name(name).map_err(|error| NameRefused {
        what,
        name: name.to_owned(),
        error,
    })
}

/// Traffic of a node's sessions since the hub started.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkStats {
    /// Sessions welcomed.
    pub sessions: u64,
    /// Sessions refused (bad input, wrong node, replaced).
    pub refusals: u64,
    /// WebSocket message bytes received.
    pub bytes_received: u64,
    /// WebSocket message bytes sent.
    pub bytes_sent: u64,
    /// Batches persisted.
    pub batches: u64,
    /// Records received in batches (duplicates included).
    pub records: u64,
    /// Live updates received.
    pub live_updates: u64,
}

/// The newest value of one (sensor, quantity), from the live lane.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestValue {
    /// The sensor's name (from the live lane's reports; `sensor-N` if unnamed).
    pub sensor: String,
    /// The reading.
    pub reading: Reading,
    /// When the hub received it, ns since the Unix epoch.
    pub received_utc_ns: i64,
}

#[derive(Debug, Clone, Default)]
struct Live {
    connected: bool,
    link: LinkStats,
    session_started_utc_ns: Option<i64>,
    last_seen_utc_ns: Option<i64>,
    sensors: Vec<SensorReport>,
    names: HashMap<SensorId, String>,
    latest: BTreeMap<(SensorId, Quantity), LatestValue>,
    backlog: Option<BacklogReport>,
    backlog_bound: Option<(StoreEpoch, u64)>,
    health: Option<NodeHealth>,
    health_received_utc_ns: Option<i64>,
    live_received_utc_ns: Option<i64>,
    agent_version: Option<String>,
    boot: Option<String>,
    epoch: Option<String>,
}

/// `part` as whole percent of `whole` (rounded down); `None` for an empty whole.
pub fn whole_percent(part: u64, whole: u64) -> Option<u64> {
    (whole > 0)
        .then(|| u64::try_from(u128::from(part) * 100 / u128::from(whole)).unwrap_or(u64::MAX))
}

/// What of a health report counts as a change for watches: everything but its time, with
/// the store's bytes counted only by whole percent of its cap (the store grows at every
/// flush, and a report follows every live update); the power step in force counts whole.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthKey {
    time_source: aloft_protocol::TimeSource,
    clock_trusted: Option<bool>,
    store_max_bytes: u64,
    store_policy: String,
    store_percent: Option<u64>,
    gnss_models: Vec<aloft_protocol::sync::GnssModel>,
    power: Option<aloft_protocol::PowerReport>,
}

impl HealthKey {
    /// The key of `health`.
    pub fn of(health: &NodeHealth) -> Self {
        HealthKey {
            time_source: health.time.source,
            clock_trusted: health.clock_trusted,
            store_max_bytes: health.store_max_bytes,
            store_policy: health.store_policy.clone(),
            store_percent: whole_percent(health.store_bytes, health.store_max_bytes),
            gnss_models: health.gnss_models.clone(),
            power: health.power.clone(),
        }
    }
}

/// A node as the API shows it.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    /// Its name.
    pub name: String,
    /// When it was created, ns.
    pub created_utc_ns: i64,
    /// Whether a session is current.
    pub connected: bool,
    /// When the hub last heard from it, ns.
    pub last_seen_utc_ns: Option<i64>,
    /// When the current session started, ns.
    pub session_started_utc_ns: Option<i64>,
    /// The agent's version (last hello).
    pub agent_version: Option<String>,
    /// The agent's boot id, hex (last hello).
    pub boot: Option<String>,
    /// The store epoch of the current or last session, hex.
    pub epoch: Option<String>,
    /// Traffic since the hub started.
    pub link: LinkStats,
    /// Sensor reports of the newest live update.
    pub sensors: Vec<SensorReport>,
    /// Newest value of every (sensor, quantity).
    pub latest: Vec<LatestValue>,
    /// The agent's backlog, as last reported.
    pub backlog: Option<BacklogReport>,
    /// The newest sequence number that backlog can reach, in the session's epoch: the
    /// watermark the hub had told the node when the report arrived, plus the backlog.
    /// Once the hub holds every number up to it, the reported backlog has arrived.
    pub backlog_bound: Option<(StoreEpoch, u64)>,
    /// The node's health (store, clock, GNSS dynamic models), as last reported on the live
    /// lane by an agent of protocol version 2 or later.
    pub health: Option<NodeHealth>,
    /// When that health report arrived, ns.
    pub health_received_utc_ns: Option<i64>,
    /// When the newest live update arrived, ns.
    pub live_received_utc_ns: Option<i64>,
    /// Its streams (one per store epoch) with their watermarks.
    pub streams: Vec<StreamStatus>,
    /// What is wrong with its name, for a node made before names were checked against
    /// the grammar; `None` for a valid name.
    pub name_problem: Option<String>,
    /// Sensor names of its live lane that break the grammar (an agent older than the
    /// rule): shown as sent, never addressable by commands or desired state.
    pub misnamed_sensors: Vec<String>,
}

/// A node just created, with its token's secret (shown once).
#[derive(Debug, Clone)]
pub struct NodeCreated {
    /// The node's name.
    pub name: String,
    /// Its token.
    pub token: TokenInfo,
    /// The token's secret.
    pub secret: String,
}

/// The registry.
#[derive(Debug, Clone)]
pub struct Registry {
    tables: Arc<dyn NodeTables>,
    tokens: Tokens,
    streams: Streams,
    live: Arc<Mutex<HashMap<String, Live>>>,
}

/// Whether a node name is acceptable: the protocol's one grammar of names (a DNS-1123
/// label), the same the agent's config and the protocol ask.
pub fn valid_node_name(name: &str) -> bool {
    aloft_protocol::is_valid_name(name)
}

impl Registry {
    /// The registry; warns once of every node whose name breaks the grammar of names
    /// (created by an older hub that allowed `_` and `.`): such nodes keep their streams
    /// and sessions, and their `Node` resource says so in a condition.
    /// The registry of `tables`, which holds the nodes.
    pub fn new(tables: Arc<dyn NodeTables>, tokens: Tokens, streams: Streams) -> Registry {
        let registry = Registry {
            tables,
            tokens,
            streams,
            live: Arc::new(Mutex::new(HashMap::new())),
        };
        match registry.misnamed_nodes() {
            Ok(names) if !names.is_empty() => tracing::warn!(
                nodes = ?names,
                rule = aloft_protocol::NAME_RULE,
                "Nodes whose names break the rule for names: they keep their data and sessions, but commands and desired state cannot address them; create each under a valid name and move its agent there."
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "Could not check the node names."),
        }
        registry
    }

    /// Nodes whose names break the grammar of names (made before it was enforced), by name.
    pub fn misnamed_nodes(&self) -> Result<Vec<String>, RegistryError> {
        let names = self.tables.names()?;
        Ok(names.into_iter().filter(|n| !valid_node_name(n)).collect())
    }

    fn with_live<T>(&self, node: &str, f: impl FnOnce(&mut Live) -> T) -> T {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        f(live.entry(node.to_owned()).or_default())
    }

    /// Creates a node and its first token.
    pub fn create_node(&self, name: &str) -> Result<NodeCreated, RegistryError> {
        check_name("node", name).map_err(RegistryError::InvalidName)?;
        if !self.tables.insert(name, now_utc_ns())? {
            return Err(RegistryError::Exists(name.to_owned()));
        }
        let (token, secret) =
            self.tokens
                .create(Role::Node, Some(name), &format!("node {name}"))?;
        tracing::info!(node = name, token = %token.id, "Node created.");
        Ok(NodeCreated {
            name: name.to_owned(),
            token,
            secret,
        })
    }

    /// Deletes a node and revokes its tokens (its stored stream stays, for the record);
    /// `false` if there was no such node.
    pub fn delete_node(&self, name: &str) -> Result<bool, RegistryError> {
        let deleted = self.tables.delete(name)?;
        self.tokens.revoke_node(name)?;
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        if deleted {
            tracing::info!(node = name, "Node deleted.");
        }
        Ok(deleted)
    }

    /// Whether a node exists.
    pub fn exists(&self, name: &str) -> Result<bool, RegistryError> {
        Ok(self.tables.exists(name)?)
    }

    /// Every node, by name.
    pub fn nodes(&self) -> Result<Vec<NodeStatus>, RegistryError> {
        let names = self.tables.names()?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            if let Some(node) = self.node(&name)? {
                out.push(node);
            }
        }
        Ok(out)
    }

    /// One node, `None` if it does not exist.
    pub fn node(&self, name: &str) -> Result<Option<NodeStatus>, RegistryError> {
        let Some(NodeRow {
            created_utc_ns: created,
            last_seen_utc_ns: last_seen,
            agent_version,
            boot_id: boot,
        }) = self.tables.get(name)?
        else {
            return Ok(None);
        };
        let streams = self.streams.streams(name)?;
        let live = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .unwrap_or_default();
        let misnamed_sensors = live
            .sensors
            .iter()
            .filter(|s| !aloft_protocol::is_valid_name(&s.name))
            .take(8)
            .map(|s| shown_name(&s.name))
            .collect();
        Ok(Some(NodeStatus {
            name: name.to_owned(),
            created_utc_ns: created,
            connected: live.connected,
            last_seen_utc_ns: live.last_seen_utc_ns.or(last_seen),
            session_started_utc_ns: live.session_started_utc_ns,
            agent_version: live.agent_version.or(agent_version),
            boot: live.boot.or(boot),
            epoch: live.epoch,
            link: live.link,
            sensors: live.sensors,
            latest: live.latest.into_values().collect(),
            backlog: live.backlog,
            backlog_bound: live.backlog_bound,
            health: live.health,
            health_received_utc_ns: live.health_received_utc_ns,
            live_received_utc_ns: live.live_received_utc_ns,
            streams,
            name_problem: check_name("node", name).err().map(|e| e.to_string()),
            misnamed_sensors,
        }))
    }

    /// A session of the node was welcomed.
    pub(crate) fn session_started(&self, node: &str, hello: &Hello) -> Result<(), RegistryError> {
        let now = now_utc_ns();
        let boot = hex(&hello.boot.0);
        self.with_live(node, |live| {
            live.connected = true;
            live.link.sessions += 1;
            live.session_started_utc_ns = Some(now);
            live.last_seen_utc_ns = Some(now);
            live.agent_version = Some(hello.agent_version.clone());
            live.boot = Some(boot.clone());
            live.epoch = Some(hex(&hello.epoch.0));
        });
        self.tables
            .session_started(node, now, &hello.agent_version, &boot)?;
        Ok(())
    }

    /// The node's current session ended.
    pub(crate) fn session_ended(&self, node: &str) -> Result<(), RegistryError> {
        let now = now_utc_ns();
        self.with_live(node, |live| {
            live.connected = false;
            live.session_started_utc_ns = None;
            live.last_seen_utc_ns = Some(now);
        });
        self.tables.seen(node, now)?;
        Ok(())
    }

    /// A session was refused.
    pub(crate) fn refused(&self, node: &str) {
        self.with_live(node, |live| live.link.refusals += 1);
    }

    /// Traffic of a session: a message received or sent.
    pub(crate) fn traffic(&self, node: &str, received: u64, sent: u64) {
        let now = now_utc_ns();
        self.with_live(node, |live| {
            live.link.bytes_received += received;
            live.link.bytes_sent += sent;
            if received > 0 {
                live.last_seen_utc_ns = Some(now);
            }
        });
    }

    /// A batch was persisted.
    pub(crate) fn batch(&self, node: &str, records: u64) {
        self.with_live(node, |live| {
            live.link.batches += 1;
            live.link.records += records;
        });
    }

    /// A live update arrived.
    #[cfg(test)]
    pub(crate) fn live(&self, node: &str, update: LiveUpdate) {
        self.live_with_bound(node, update, None);
    }

    /// A live update arrived; `bound` is where its backlog ends at the latest (see
    /// [`NodeStatus::backlog_bound`]).
    pub(crate) fn live_with_bound(
        &self,
        node: &str,
        update: LiveUpdate,
        bound: Option<(StoreEpoch, u64)>,
    ) {
        let now = now_utc_ns();
        self.with_live(node, |live| {
            live.link.live_updates += 1;
            live.live_received_utc_ns = Some(now);
            for report in &update.sensors {
                if live.names.len() < MAX_LIVE_KEYS || live.names.contains_key(&report.sensor) {
                    live.names.insert(report.sensor, report.name.clone());
                }
            }
            if !update.sensors.is_empty() {
                live.sensors = update.sensors;
            }
            for reading in update.readings {
                let sensor = live
                    .names
                    .get(&reading.sensor)
                    .cloned()
                    .unwrap_or_else(|| format!("sensor-{}", reading.sensor.0));
                let key = (reading.sensor, reading.quantity);
                if live.latest.len() >= MAX_LIVE_KEYS && !live.latest.contains_key(&key) {
                    // A node cannot grow the hub's memory without bound.
                    continue;
                }
                live.latest.insert(
                    key,
                    LatestValue {
                        sensor,
                        reading,
                        received_utc_ns: now,
                    },
                );
            }
            live.backlog = Some(update.backlog);
            live.backlog_bound = bound;
        });
    }

    /// The node's health arrived on the live lane: kept, newest only.
    pub(crate) fn health(&self, node: &str, health: NodeHealth) {
        let now = now_utc_ns();
        self.with_live(node, |live| {
            live.health = Some(health);
            live.health_received_utc_ns = Some(now);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sqlite::{Db, SqliteNodes, SqliteTokens};

    fn sqlite_registry(db: Db) -> Registry {
        let tokens = Tokens::new(Arc::new(SqliteTokens::new(db.clone())));
        Registry::new(
            Arc::new(SqliteNodes::new(db.clone())),
            tokens,
            Streams::sqlite(db),
        )
    }

    #[test]
    fn a_node_cannot_grow_the_live_view_without_bound() {
        use aloft_protocol::{Quality, Timestamp};
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let registry = sqlite_registry(db);
        registry.create_node("glider").unwrap();
        let reading = |sensor: u16| Reading {
            sensor: SensorId(sensor),
            quantity: Quantity::AirPressure,
            time: Timestamp::monotonic(1),
            value: f64::from(sensor),
            quality: Quality::GOOD,
        };
        registry.live(
            "glider",
            LiveUpdate {
                time: Timestamp::monotonic(1),
                readings: (0..5000).map(reading).collect(),
                sensors: vec![],
                backlog: BacklogReport {
                    records: 0,
                    bytes: 0,
                    oldest_age_s: None,
                },
            },
        );
        let node = registry.node("glider").unwrap().unwrap();
        assert_eq!(node.latest.len(), MAX_LIVE_KEYS);
        assert_eq!(node.latest[0].sensor, "sensor-0");
    }

    #[test]
    fn the_newest_health_of_the_live_lane_is_kept_on_the_node() {
        use aloft_protocol::Timestamp;
        use aloft_protocol::sync::GnssModel;
        let dir = tempfile::tempdir().unwrap();
        let registry = sqlite_registry(Db::open(dir.path()).unwrap());
        registry.create_node("glider").unwrap();
        assert_eq!(registry.node("glider").unwrap().unwrap().health, None);
        let health = |store_bytes| NodeHealth {
            time: Timestamp::monotonic(store_bytes),
            clock_trusted: Some(true),
            store_bytes,
            store_max_bytes: 1 << 30,
            store_policy: "decimate".into(),
            gnss_models: vec![GnssModel {
                sensor: SensorId(0),
                code: 7,
            }],
            power: None,
        };
        registry.health("glider", health(10));
        registry.health("glider", health(20));
        let node = registry.node("glider").unwrap().unwrap();
        assert_eq!(node.health, Some(health(20)));
        assert!(node.health_received_utc_ns.is_some());
    }

    #[test]
    fn a_node_named_before_the_rule_keeps_its_data_and_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        db.write(|conn| {
            conn.execute(
                "INSERT INTO nodes(name, created_utc_ns) VALUES ('glider_2.alps', 1), ('glider', 1)",
                [],
            )
        })
        .unwrap();
        let registry = sqlite_registry(db);
        assert_eq!(registry.misnamed_nodes().unwrap(), ["glider_2.alps"]);
        let node = registry.node("glider_2.alps").unwrap().unwrap();
        let problem = node.name_problem.unwrap();
        assert!(problem.contains("'_' at position 7"), "{problem}");
        assert!(registry.exists("glider_2.alps").unwrap());
        assert_eq!(registry.node("glider").unwrap().unwrap().name_problem, None);
    }

    #[test]
    fn sensors_an_older_agent_names_against_the_rule_are_kept_and_reported() {
        use aloft_protocol::{SensorState, Timestamp};
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let registry = sqlite_registry(db);
        registry.create_node("glider").unwrap();
        let report = |name: &str| SensorReport {
            sensor: SensorId(1),
            name: name.into(),
            kind: "bme280".into(),
            state: SensorState::Running,
            reason: "ok".into(),
            restarts: 0,
            last_restart: None,
            last_error: None,
            interval_ms: Some(1000),
            enabled: true,
            readings: 1,
        };
        registry.live(
            "glider",
            LiveUpdate {
                time: Timestamp::monotonic(1),
                readings: vec![],
                sensors: vec![report("outside_air"), report("static")],
                backlog: BacklogReport {
                    records: 0,
                    bytes: 0,
                    oldest_age_s: None,
                },
            },
        );
        let node = registry.node("glider").unwrap().unwrap();
        assert_eq!(node.sensors.len(), 2, "kept as sent");
        assert_eq!(node.misnamed_sensors, ["\"outside_air\""]);
    }

    #[test]
    fn a_node_cannot_be_created_under_a_name_the_agent_would_refuse() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let registry = sqlite_registry(db);
        for bad in ["glider_2", "glider.alps", "Glider", "-g", "g-", ""] {
            let err = registry.create_node(bad).unwrap_err();
            assert!(
                matches!(err, RegistryError::InvalidName(_)),
                "{bad:?}: {err}"
            );
        }
        let long = "a".repeat(1_200_000);
        let message = registry.create_node(&long).unwrap_err().to_string();
        assert!(
            message.contains("1200000 characters long"),
            "{}",
            message.len()
        );
        assert!(message.len() < 400, "the name is not echoed whole");
        assert!(registry.create_node("glider-2").is_ok());
    }

    #[test]
    fn node_names_are_checked() {
        assert!(valid_node_name("glider"));
        assert!(!valid_node_name("glider-2.alps"));
        assert!(!valid_node_name("glider_2"));
        assert!(!valid_node_name(""));
        assert!(!valid_node_name("-x"));
        assert!(!valid_node_name("Glider"));
        assert!(!valid_node_name("a/b"));
        assert!(!valid_node_name(&"a".repeat(64)));
    }
}
