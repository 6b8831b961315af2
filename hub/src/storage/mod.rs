//! Where the hub keeps what it must not lose.

pub mod sqlite;
