//! Where the hub keeps what it must not lose, behind traits a backend implements:
//! [`streams::StreamTables`] (every node's stream and the queries over it) and
//! [`control::ControlTables`] (commands, desired state, the audit trail). The rest of the
//! hub holds them as trait objects; [`sqlite`] is the one backend today.

pub mod control;
pub mod sqlite;
pub mod streams;
