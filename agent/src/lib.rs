//! The Aloft edge agent.
//!
//! # Layout
//!
//! - [`replay`]: decode a capture from a real device into JSON records (`aloft-agent replay`).
//! - [`demo`]: the simulated flight read live by the real drivers (`cargo xtask demo`).
//! - [`config`]: the configuration file: its types, loading, validation with key and line,
//!   `check-config` (the file owns the hardware).
//! - [`clock`]: monotonic time always, UTC when the system clock can be trusted.
//! - [`timekeeping`]: boot id, trusted time, time-correlation records (invariant 8).
//! - [`systemd`]: sd_notify READY, WATCHDOG, STATUS, STOPPING, EXTEND_TIMEOUT.
//! - [`metrics`]: the metrics registry and the local endpoint (`/metrics`, `/status`).
//! - [`status`]: the local picture `aloft-agent status` prints.
//! - [`state`]: the agent's small state file, replaced atomically.
//! - [`control`]: the hub's desired state, commands and log fetches, applied once.
//! - [`inspect`]: `aloft-agent store dump`, the store's records as JSON lines.
//! - [`run`]: the daemon (`aloft-agent run`): wires the parts and writes the store.
//! - [`supervisor`]: one supervised thread per sensor: states, backoff, restarts, power lines.
//! - [`uplink`]: the link to aloft-hub: sync of the store, live lane, control messages.
//! - [`sensor`]: the adapter of each device kind, the shared latest values, the simulation.

pub mod clock;
pub mod config;
pub mod control;
pub mod demo;
pub mod inspect;
pub mod metrics;
pub mod replay;
pub mod run;
pub mod sensor;
pub mod state;
pub mod status;
pub mod supervisor;
pub mod systemd;
pub mod timekeeping;
pub mod uplink;
