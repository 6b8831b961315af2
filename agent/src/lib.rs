//! The Aloft edge agent.
//!
//! # Layout
//!
//! - [`bus`]: the local MQTT bus: readings and statuses out, other programs' messages in.
//! - [`replay`]: decode a capture from a real device into JSON records (`aloft-agent replay`).
//! - [`config`]: the configuration file: its types, loading, validation with key and line,
//!   `check-config` (the file owns the hardware).
//! - [`clock`]: monotonic time always, UTC when the system clock can be trusted.
//! - [`timekeeping`]: boot id, trusted time, time-correlation records (invariant 8).
//! - [`systemd`]: sd_notify READY, WATCHDOG, STATUS, STOPPING, EXTEND_TIMEOUT.
//! - [`metrics`]: the metrics registry the sensor tasks and the store update.
//! - [`status`]: the local picture `aloft-agent status` prints.
//! - [`power`]: the power policy: steps from the battery, applied by lowering sampling.
//! - [`endpoint`]: the local HTTP endpoint serving [`metrics`] at `/metrics` and [`status`]
//!   at `/status`.
//! - [`state`]: the agent's small state file, replaced atomically.
//! - [`control`]: the hub's desired state, commands and log fetches, applied once.
//! - [`inspect`]: `aloft-agent store dump`, the store's records as JSON lines.
//! - [`run`]: the daemon (`aloft-agent run`): wires the parts and writes the store.
//! - [`supervisor`]: one supervised thread per sensor. Its decisions (degrade, stall, recover,
//!   backoff, restart, enable) are [`supervisor::supervision`], with no I/O; the thread around
//!   it only opens, polls, waits for commands and carries out what it decides.
//! - [`uplink`]: the link to aloft-hub: sync of the store, live lane, control messages.
//! - [`sensor`]: the adapter of each device kind, the power lines, the shared latest values,
//!   the simulation, and the one place each configured sensor's slot is assembled.
//!
//! Dependencies run one way: [`supervisor`] drives what [`sensor`] builds (devices, power
//! lines, slots) and nothing in [`sensor`] uses the supervisor.

pub mod bus;
pub mod clock;
pub mod config;
pub mod control;
pub mod endpoint;
pub mod inspect;
pub mod metrics;
pub mod power;
pub mod replay;
pub mod run;
pub mod sensor;
pub mod state;
pub mod status;
pub mod supervisor;
pub mod systemd;
pub mod timekeeping;
pub mod uplink;
