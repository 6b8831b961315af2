//! The store backends side by side: the segmented log the agent uses and the candidates
//! it was chosen against, redb ([`redb_backend`]) and sled 0.34 ([`sled_backend`]), behind
//! the same [`Backend`] trait, so the same [`Outbox`] runs on each.
//! docs/decisions/store-backend.md has the measurements and the decision.
//!
//! A crate of its own so that the candidates' contract tests, the SIGKILL torture of all
//! three (its writer, `torture-writer`, is a binary here and links every backend) and the
//! store benchmark use redb, sled and SQLite as ordinary dependencies, while `aloft-store`
//! (built and unit-tested for the ARM boards under qemu) carries none of them.
//!
//! [`Backend`]: aloft_store::Backend
//! [`Outbox`]: aloft_store::Outbox

mod chunks;
pub mod redb_backend;
pub mod sled_backend;

use std::path::Path;

use aloft_store::{OpenReport, Outbox, StoreError, StoreOptions};

/// A backend by the name the torture writer and the tests give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The segmented log, in `DIR` itself.
    Log,
    /// redb, in `DIR/store.redb`.
    Redb,
    /// sled 0.34, in `DIR/store.sled`.
    Sled,
}

impl Kind {
    /// Every backend.
    pub const ALL: [Kind; 3] = [Kind::Log, Kind::Redb, Kind::Sled];

    /// Its name: `log`, `redb` or `sled`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Log => "log",
            Kind::Redb => "redb",
            Kind::Sled => "sled",
        }
    }

    /// The backend called `name`.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Opens (or creates) a redb store in directory `dir`.
pub fn open_redb(
    dir: &Path,
    options: StoreOptions,
) -> Result<(Outbox<redb_backend::RedbBackend>, OpenReport), StoreError> {
    let (backend, recovery) = redb_backend::RedbBackend::open(&dir.join("store.redb"))?;
    Outbox::open_with(backend, recovery, options)
}

/// Opens (or creates) a sled store in directory `dir`.
pub fn open_sled(
    dir: &Path,
    options: StoreOptions,
) -> Result<(Outbox<sled_backend::SledBackend>, OpenReport), StoreError> {
    let (backend, recovery) = sled_backend::SledBackend::open(&dir.join("store.sled"))?;
    Outbox::open_with(backend, recovery, options)
}
