//! `cargo xtask bench sync`: the release hub and agent syncing a million-reading backlog
//! over loopback with TLS, through the link simulator of `aloft-tests` that counts the
//! bytes and throttles to 1 Mbit/s. The measuring lives in tests/benches/sync.rs (it needs
//! the link simulator and TLS); this builds the release binaries it runs and starts it.
//! Figures: `sync.drain_per_s`, `sync.bytes_per_reading`, `sync.json_bytes_per_reading`,
//! `sync.vs_json`, `sync.link_utilisation_pct`, `sync.live_age_s`,
//! `sync.first_live_after_connect_s` (docs/sync.md says what each means).

use anyhow::Result;

use crate::{cargo, run};

pub fn bench() -> Result<()> {
    // The bench finds the binaries next to itself, in target/release.
    run(
        "build the release hub and agent",
        cargo().args([
            "build",
            "--quiet",
            "--locked",
            "--release",
            "-p",
            "aloft-hub",
            "-p",
            "aloft-agent",
        ]),
    )?;
    run(
        "cargo bench sync",
        cargo().args([
            "bench",
            "--quiet",
            "--locked",
            "-p",
            "aloft-tests",
            "--bench",
            "sync",
        ]),
    )
}
