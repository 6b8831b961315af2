//! The SQLite implementation of the hub's storage.

pub mod control;
pub mod db;
pub mod streams;
