//! The SQLite backend of the hub's storage: `hub.sqlite` ([`Db`]) holds the stream tables
//! ([`SqliteStreams`]), the nodes ([`SqliteNodes`]) and the tokens ([`SqliteTokens`]), and
//! `control.sqlite` the control tables ([`SqliteControl`]).

pub mod control;
pub mod db;
pub mod nodes;
pub mod streams;
pub mod tokens;

pub use control::SqliteControl;
pub use db::{DB_FILE, Db};
pub use nodes::SqliteNodes;
pub use streams::SqliteStreams;
pub use tokens::SqliteTokens;
