//! Where the capture tests find their recordings.
//!
//! The gpsd regression captures (BSD-2-Clause) and the simulator's own CosmicWatch recording
//! are in the repository under `sensors/testdata/captures/`. The real CosmicWatch capture has
//! no stated licence, so it stays outside: it is read from `shared/data/captures/` beside the
//! checkout when that folder is there, and the tests that need it say so when it is not.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub mod gpsd;

/// The repository's captures.
pub fn captures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/captures")
}

/// Reads one of the repository's captures.
pub fn read_capture(name: &str) -> Vec<u8> {
    let path = captures_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reads a capture kept beside the checkout (`shared/data/captures/NAME`), or says on stderr
/// that it is absent and returns `None`.
pub fn read_capture_beside_checkout(name: &str) -> Option<Vec<u8>> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Some(path) = manifest
        .ancestors()
        .map(|dir| dir.join("shared/data/captures").join(name))
        .find(|p| p.is_file())
    else {
        eprintln!("skipped: {name} is not beside the checkout (shared/data/captures/)");
        return None;
    };
    Some(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}
