//! Where the hub keeps what it must not lose, behind traits a backend implements:
//! [`streams::StreamTables`] (every node's stream and the queries over it),
//! [`control::ControlTables`] (commands, desired state, the audit trail),
//! [`nodes::NodeTables`] (the nodes that exist) and [`tokens::TokenTables`] (bearer tokens,
//! by their digest). The rest of the hub holds them as trait objects; [`sqlite`] is the one
//! backend today.

pub mod control;
pub mod nodes;
pub mod sqlite;
pub mod streams;
pub mod tokens;

/// Why a backend's tables failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TablesError {
    /// The SQLite backend failed.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}
