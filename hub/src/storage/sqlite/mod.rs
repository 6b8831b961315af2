//! The SQLite backend of the hub's storage: `hub.sqlite` ([`Db`]) holds the stream tables
//! ([`SqliteStreams`]) beside the nodes and tokens, and `control.sqlite` the control tables
//! ([`SqliteControl`]).

pub mod control;
pub mod db;
pub mod streams;

pub use control::SqliteControl;
pub use db::{DB_FILE, Db};
pub use streams::SqliteStreams;
