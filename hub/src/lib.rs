//! # aloft-hub
//!
//! The cloud end of Aloft: nodes sync their stream to it over one TLS WebSocket each, and
//! operators read it over an HTTPS JSON API on the same port.
//!
//! # Layout
//!
//! The folders are the components; each depends only on those listed after it (never
//! back), so a component can be read, tested and replaced from the ones below it.
//!
//! - [`server`]: `aloft-hub run`, the wiring: the TLS listener serving the node WebSocket
//!   ([`aloft_protocol::sync::NODE_PATH`]) and the API (`/api/v1/...`) on one port, the
//!   control layer plugged in ([`server::with_control`]), `GET /metrics`, shutdown.
//! - [`api`]: all of HTTP, the only module besides the server that names axum's types.
//!   `mod.rs`: the router, [`api::ApiState`], every error as a Kubernetes `Status`
//!   ([`api::ApiError`]); [`api::auth`]: bearer tokens, the [`api::Caller`] extractor and
//!   the audited [`api::require`]; [`api::watches`]: the one list query
//!   ([`api::watches::ListQuery`]), the NDJSON watch stream and the re-reads its watches
//!   share; [`api::bodies`]: the request bodies and their parser (fuzzed);
//!   [`api::resources`]: the resources' JSON; one module of handlers per resource:
//!   [`api::nodes`], [`api::readings`], [`api::export`], [`api::sensors`],
//!   [`api::desired`], [`api::commands`], [`api::events`], [`api::tokens`], [`api::logs`].
//! - [`export`]: dataset export, no HTTP: the export query ([`export::request`]), the
//!   node's stream as an [`aloft_dataset::RecordSource`] bounded to a snapshot
//!   ([`export::source::HubSource`]) and the tar stream of the files
//!   ([`export::tarball::TarOutput`]).
//! - [`control`]: the control domain, no HTTP: `mod.rs`: [`control::Control`] (commands,
//!   desired sensor state, agent logs, expiry), which implements [`NodeControl`] for the
//!   sessions; [`control::phase`]: a command's life, no I/O; [`control::audit`]: the typed
//!   vocabulary of audit events.
//! - [`init`]: `aloft-hub init`: the data directory, its certificates and first tokens.
//! - [`nodes`]: the nodes: [`nodes::session`]: one session per node over WebSocket;
//!   [`nodes::connected`]: [`Sessions`], the map of connected sessions; [`nodes::registry`]:
//!   [`Registry`], the nodes and their live state; [`nodes::control_seam`]: [`NodeControl`],
//!   the seam sessions reach the control layer through, so that nodes never name control.
//! - [`load`]: bounds on connections and watches, and the counters of `GET /metrics`.
//! - [`tokens`]: bearer tokens and roles.
//! - [`pki`]: the CA and the server certificate.
//! - [`storage`]: what must not be lost, behind traits, each in its module with the records
//!   it stores: [`storage::streams`] ([`storage::streams::StreamTables`], every node's
//!   stream and its queries, held as [`Streams`]), [`storage::control`] (commands, desired
//!   state, audit events), [`storage::nodes`], [`storage::tokens`]; [`storage::sqlite`] is
//!   the one backend: `db.rs` (`hub.sqlite`, one writer), and one module per trait
//!   (`control.rs` on `control.sqlite`).
//! - [`config`]: the optional config file, `hub.toml` in the data directory (`[export]`
//!   metadata).
//! - [`clock`]: the hub's clock and its text forms of times and ids, for every component.
//! - `testing` (feature `testing`): a protocol-speaking test client and hub process.
//!
//! Names where the layout had a choice: `nodes` (not `sessions`) because the folder holds
//! everything about a node's connection and state, of which the session is one part;
//! `nodes::connected` for the map of sessions, so it does not read as a plural of
//! `nodes::session`; `nodes::control_seam` for the trait, so it does not read as the
//! control layer itself; `storage::sqlite` as a folder beside the traits, so the second
//! backend is a sibling of it; the command's [`storage::control::Phase`] is defined with
//! the records that store it and its transitions stay in [`control::phase`]; the request
//! body types live in [`api::bodies`] with their parser, which the fuzz target calls.
//!
//! The crate root holds [`Hub`], the opened parts (tokens, registry, streams, sessions)
//! that the server, the API, the sessions and the control layer are given, and `dump`.
//! It and [`control::Control::open`] are where the SQLite backend is chosen; every other
//! module holds the storage traits.

pub mod api;
pub mod clock;
pub mod config;
pub mod control;
pub mod export;
pub mod init;
pub mod load;
pub mod nodes;
pub mod pki;
pub mod server;
pub mod storage;
pub mod tokens;

#[cfg(feature = "testing")]
pub mod testing;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use storage::TablesError;
use storage::nodes::NodeTables;
use storage::sqlite::{DB_FILE, Db, SqliteNodes, SqliteTokens};

pub use nodes::connected::Sessions;
pub use nodes::control_seam::{NoControl, NodeControl, RecordingControl};
pub use nodes::registry::{NodeStatus, Registry, RegistryError};
pub use storage::streams::{StorageError, Streams};
pub use tokens::{Principal, Role, TokenError, TokenInfo, Tokens};

/// Everything the hub holds, opened from its data directory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Hub {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Bearer tokens.
    pub tokens: Tokens,
    /// Nodes.
    pub registry: Registry,
    /// Stored streams.
    pub streams: Streams,
    /// Connected nodes.
    pub sessions: Sessions,
    /// The config file (`hub.toml`).
    pub config: Arc<config::HubConfig>,
}

/// Why the hub's data could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Not a hub data directory (no `aloft-hub init` yet).
    #[error("{0} is not a hub data directory (run `aloft-hub init --data {0}` first)")]
    NotInitialised(String),
    /// The database could not be opened.
    #[error("opening the hub database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The config file (`hub.toml`) could not be read.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
}

impl Hub {
    /// Opens an initialised data directory.
    pub fn open(data_dir: &Path) -> Result<Hub, OpenError> {
        if !data_dir.join(DB_FILE).is_file() {
            return Err(OpenError::NotInitialised(data_dir.display().to_string()));
        }
        let config = config::HubConfig::load(data_dir)?;
        let mut hub = Hub::from_db(data_dir, Db::open(data_dir)?);
        hub.config = Arc::new(config);
        Ok(hub)
    }

    fn from_db(data_dir: &Path, db: Db) -> Hub {
        let tokens = Tokens::new(Arc::new(SqliteTokens::new(db.clone())));
        let streams = Streams::sqlite(db.clone());
        let nodes = Arc::new(SqliteNodes::new(db));
        let registry = Registry::new(nodes, tokens.clone(), streams.clone());
        Hub {
            data_dir: data_dir.to_owned(),
            tokens,
            registry,
            streams,
            sessions: Sessions::default(),
            config: Arc::default(),
        }
    }
}

/// One line of `aloft-hub dump`: `{"epoch":"<32 hex>","seq":N,"record":{...}}`.
pub fn dump_line(
    epoch: aloft_protocol::StoreEpoch,
    seq: u64,
    record: &aloft_protocol::Record,
) -> String {
    serde_json::json!({
        "epoch": clock::hex(&epoch.0),
        "seq": seq,
        "record": record,
    })
    .to_string()
}

/// Writes every stored record of `node` to `out` as JSON lines in (epoch, seq) order.
/// Opens the database without changing it, so it runs beside a running hub.
pub fn dump(data_dir: &Path, node: &str, out: &mut dyn std::io::Write) -> Result<u64, DumpError> {
    if !data_dir.join(DB_FILE).is_file() {
        return Err(OpenError::NotInitialised(data_dir.display().to_string()).into());
    }
    let db = Db::open_existing(data_dir).map_err(OpenError::Db)?;
    // An unknown name would dump nothing, which reads like a node that sent nothing. A
    // deleted node whose stream is still stored dumps it.
    let nodes = SqliteNodes::new(db.clone());
    let streams = Streams::sqlite(db);
    if !nodes.exists(node)? && streams.streams(node)?.is_empty() {
        let names = nodes.names()?;
        return Err(DumpError::UnknownNode {
            node: node.to_owned(),
            data_dir: data_dir.display().to_string(),
            known: if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            },
        });
    }
    let mut count = 0;
    let mut failed = None;
    streams.dump(node, |epoch, seq, record| {
        match writeln!(out, "{}", dump_line(epoch, seq, &record)) {
            Ok(()) => {
                count += 1;
                true
            }
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    })?;
    match failed {
        Some(e) => Err(DumpError::Io(e)),
        None => Ok(count),
    }
}

/// Why `dump` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DumpError {
    /// The data directory.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The stored stream.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The nodes table.
    #[error("reading the nodes: {0}")]
    Nodes(#[from] TablesError),
    /// Writing the output.
    #[error("writing: {0}")]
    Io(std::io::Error),
    /// No node of that name, and no stream stored for one.
    #[error("no node {node} in {data_dir}; its nodes: {known}")]
    UnknownNode {
        /// The name asked for.
        node: String,
        /// The data directory.
        data_dir: String,
        /// The nodes it has.
        known: String,
    },
}

#[cfg(test)]
mod tests {
    use aloft_protocol::{Gap, GapReason, Record, StoreEpoch};

    use super::*;

    #[test]
    fn dump_names_the_nodes_for_an_unknown_one_and_keeps_a_deleted_nodes_stream() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let data = dir.path().join("hub");
        init::init(&init::InitOptions {
            data_dir: data.clone(),
            sans: vec!["localhost".into()],
            node: "glider".into(),
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let hub = Hub::open(&data).unwrap_or_else(|e| panic!("{e}"));
        hub.registry
            .create_node("kite")
            .unwrap_or_else(|e| panic!("{e}"));
        let gap = Record::Gap(Gap {
            reason: GapReason::DroppedOldest,
            covers: None,
            readings: Some(3),
            sensor: None,
            span: None,
        });
        hub.streams
            .ingest("glider", StoreEpoch([7; 16]), 0, 0, &[(0, gap)])
            .unwrap_or_else(|e| panic!("{e}"));

        let mut out = Vec::new();
        match dump(&data, "nosuch", &mut out) {
            Err(DumpError::UnknownNode { known, .. }) => assert_eq!(known, "glider, kite"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            dump(&data, "kite", &mut out).ok(),
            Some(0),
            "known, nothing stored"
        );

        assert!(hub.registry.delete_node("glider").unwrap_or(false));
        assert_eq!(
            dump(&data, "glider", &mut out).ok(),
            Some(1),
            "its stream is kept"
        );
        assert!(String::from_utf8_lossy(&out).contains("\"seq\":0"));
    }
}
