//! The detector front end end to end: the firmware image (fault-hooks build) in
//! `qemu-system-arm -machine lm3s6965evb`, its UART relayed to a pseudo-terminal that the
//! real `aloft-agent` reads as a `detector` sensor, the agent syncing to the real
//! `aloft-hub`, and an operator's `aloftctl`:
//!
//! 1. the sensor runs and its events and housekeeping reach the hub;
//! 2. `aloftctl restart sensor muons --hard --wait` resets the emulated MCU by the
//!    firmware's own command: the hub shows the restart, and the agent records a boot with
//!    the boot count one higher and the reset cause `software`;
//! 3. `aloftctl set sensor muons --tunable threshold_mv=150 --wait` is applied, observed
//!    and lowers the channels' hit rate;
//! 4. bytes injected on the line are rejected (CRC, COBS) and counted, and events go on;
//! 5. a `Stall` request injected toward the firmware stops its main loop: the watchdog
//!    resets it, and the agent records a boot with the reset cause `watchdog`.
//!
//! One QEMU, one hub, one agent for all of it. Needs qemu-system-arm,
//! binutils-arm-none-eabi and rustc-web (`cargo xtask test` installs them and builds the
//! images first); without them the test skips, unless `ALOFT_REQUIRE_TOOLS=1`. Every wait
//! is for something the system reports, bounded by a deadline.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use aloft_protocol::detector::{Command as Request, MAX_FRAME_BYTES, ToFrontEnd, encode_frame};
use aloft_test_support::firmware::{FirmwareImage, Qemu, QemuOptions};
use aloft_test_support::serial_relay::{SerialRelay, Toward};
use aloft_tests::system::{
    Agent, AgentSetup, Hub, HubData, NODE, SystemError, binary, free_port, store_dump, wait_until,
};
use serde_json::Value;

/// Any error, as a test failure with its text.
fn other(e: impl std::fmt::Display) -> SystemError {
    SystemError::Mismatch(e.to_string())
}

/// Bound of every wait: QEMU, the hub and the agent on a shared, loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// The muon rate the board's simulation strap sets, mHz: 20 a second, so that a rate
/// change shows within a few housekeeping intervals.
const MUON_RATE_MHZ: u32 = 20_000;

fn tools() -> bool {
    let present = ["qemu-system-arm", "arm-none-eabi-ld"].iter().all(|tool| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }) && Path::new("/usr/bin/rustc").exists();
    if !present && std::env::var("ALOFT_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("qemu-system-arm, binutils-arm-none-eabi or rustc-web missing");
    }
    if !present {
        eprintln!("skipped: qemu-system-arm, binutils-arm-none-eabi or rustc-web missing");
    }
    present
}

/// `aloftctl` as the hub's admin.
struct Ctl {
    hub: String,
    ca: std::path::PathBuf,
    token: String,
}

impl Ctl {
    fn run(&self, args: &[&str]) -> Result<String, SystemError> {
        let out = Command::new(binary("aloftctl")?)
            .args(args)
            .env_remove("ALOFT_CONFIG")
            .env("ALOFT_HUB", &self.hub)
            .env("ALOFT_CA", &self.ca)
            .env("ALOFT_TOKEN", &self.token)
            .output()
            .map_err(other)?;
        if !out.status.success() {
            return Err(SystemError::Mismatch(format!(
                "aloftctl {args:?} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The hub's view of the sensor.
    fn sensor(&self) -> Option<Value> {
        let text = self
            .run(&["get", "sensors", "muons", "--node", NODE, "-o", "json"])
            .ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Waits until the hub's view of the sensor passes `check`.
    fn wait_sensor(
        &self,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Result<Value, SystemError> {
        wait_until(what, PATIENCE, || self.sensor().filter(|s| check(s)))
    }
}

/// The newest value of `quantity` in the hub's view of a sensor.
fn newest(sensor: &Value, quantity: &str) -> Option<f64> {
    sensor
        .pointer("/status/values")?
        .as_array()?
        .iter()
        .find(|v| v.get("quantity").and_then(Value::as_str) == Some(quantity))?
        .get("value")?
        .as_f64()
}

fn state(sensor: &Value) -> Option<&str> {
    sensor.pointer("/status/state").and_then(Value::as_str)
}

fn monotonic_ns() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

/// The agent's config: one detector on `port`, syncing to the hub of `data` at `hub`.
fn agent_setup(
    dir: &Path,
    port: &Path,
    data: &HubData,
    hub: std::net::SocketAddr,
) -> Result<AgentSetup, SystemError> {
    let metrics = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let store = dir.join("store");
    let text = format!(
        "[node]\nname = {NODE:?}\n\
         [store]\npath = {store:?}\nmax_bytes = 268_435_456\nfull_policy = \"decimate\"\n\
         flush_interval = \"1s\"\nretain_acked = \"1h\"\n\
         [[sensor]]\nname = \"muons\"\nkind = \"detector\"\nport = {port:?}\n\
         [metrics]\nlisten = \"{metrics}\"\n\
         [hub]\nurl = \"wss://{hub}/v1/nodes/connect\"\ntoken_file = {token:?}\nca_file = {ca:?}\n\
         keepalive = \"1s\"\nread_deadline = \"3s\"\nreconnect_max = \"1s\"\n",
        store = store.display().to_string(),
        port = port.display().to_string(),
        token = data.node_token_file.display().to_string(),
        ca = data.ca_file.display().to_string(),
    );
    let config = dir.join("agent.toml");
    std::fs::write(&config, text).map_err(other)?;
    Ok(AgentSetup {
        config,
        store,
        metrics,
        log: dir.join("agent.log"),
    })
}

/// The boots the agent recorded, in order: (boot count, reset cause).
fn boots(records: &[Value]) -> Vec<(i64, String)> {
    records
        .iter()
        .filter_map(|r| r.pointer("/Descriptor/descriptor/parameters"))
        .filter_map(|p| {
            let p = p.as_array()?;
            let find = |name: &str| {
                p.iter()
                    .find(|x| x.get("name").and_then(Value::as_str) == Some(name))
                    .and_then(|x| x.get("value"))
                    .cloned()
            };
            let count = find("boot_count")?;
            let cause = find("reset_cause")?;
            Some((
                count
                    .get("Integer")
                    .and_then(Value::as_i64)
                    .or(count.as_i64())?,
                cause
                    .get("Text")
                    .and_then(Value::as_str)
                    .or(cause.as_str())?
                    .to_owned(),
            ))
        })
        .collect()
}

/// Mean of the readings of `quantity` (as the store dump spells it) stamped within
/// `from..to` (agent monotonic ns).
fn mean_between(records: &[Value], quantity: &str, from: u64, to: u64) -> (f64, usize) {
    let values: Vec<f64> = records
        .iter()
        .filter_map(|r| r.get("Reading"))
        .filter(|r| r.get("quantity").and_then(Value::as_str) == Some(quantity))
        .filter(|r| {
            r.pointer("/time/mono_ns")
                .and_then(Value::as_u64)
                .is_some_and(|t| (from..to).contains(&t))
        })
        .filter_map(|r| r.get("value").and_then(Value::as_f64))
        .collect();
    let n = values.len();
    (values.iter().sum::<f64>() / n.max(1) as f64, n)
}

#[test]
fn the_agent_reads_resets_and_tunes_the_firmware_in_qemu_through_the_hub() -> Result<(), SystemError>
{
    if !tools() {
        return Ok(());
    }
    let mut dir = tempfile::tempdir().map_err(other)?;
    // ALOFT_TEST_KEEP=1 keeps the directory (logs, store, hub data) for a post-mortem.
    if std::env::var_os("ALOFT_TEST_KEEP").is_some() {
        dir.disable_cleanup(true);
        eprintln!("keeping {}", dir.path().display());
    }
    let image = FirmwareImage::build_with_fault_hooks().map_err(other)?;
    let qemu = Qemu::start_with(
        &image,
        QemuOptions {
            muon_rate_mhz: Some(MUON_RATE_MHZ),
            ..QemuOptions::default()
        },
    )
    .map_err(other)?;
    let relay = SerialRelay::start(qemu.open_serial().map_err(other)?).map_err(other)?;
    let data = HubData::init(&dir.path().join("hub"))?;
    let hub = Hub::start(&data)?;
    let ctl = Ctl {
        hub: format!("https://{}", hub.addr()),
        ca: data.ca_file.clone(),
        token: data.admin_token()?,
    };
    let setup = agent_setup(dir.path(), relay.path(), &data, hub.addr())?;
    let agent = Agent::start(&setup)?;
    let result = scenario(&ctl, &relay);
    let log = agent.log_tail();
    agent.into_process().terminate()?;
    let (t_set, t_applied, t_stall) =
        result.map_err(|e| SystemError::Mismatch(format!("{e}{log}")))?;
    hub.into_process().terminate()?;
    drop(qemu);

    let records: Vec<Value> = store_dump(&setup.store)?
        .into_iter()
        .map(|r| r.record)
        .collect();
    // 2 and 5: every boot the agent saw, with its count and cause.
    let boots = boots(&records);
    let software = boots
        .iter()
        .position(|(_, cause)| cause == "software")
        .ok_or_else(|| SystemError::Mismatch(format!("no software reset among {boots:?}")))?;
    let watchdog = boots
        .iter()
        .position(|(_, cause)| cause == "watchdog")
        .ok_or_else(|| SystemError::Mismatch(format!("no watchdog reset among {boots:?}")))?;
    assert!(software < watchdog, "{boots:?}");
    assert!(
        boots[software].0 >= 2,
        "the software reset's boot count: {boots:?}"
    );
    assert_eq!(
        boots[watchdog].0,
        boots[software].0 + 1,
        "one boot between: {boots:?}"
    );
    // 3: the threshold lowers the hit rate (from about 21 to under 1 per second).
    let (before, n_before) = mean_between(&records, "SipmHitRateA", 0, t_set);
    let (after, n_after) =
        mean_between(&records, "SipmHitRateA", t_applied + 1_500_000_000, t_stall);
    assert!(
        n_before >= 2 && n_after >= 2,
        "{n_before} readings before the threshold, {n_after} after ({t_set}, {t_applied})"
    );
    assert!(
        after * 3.0 < before,
        "hit rate {before:.2}/s at 40 mV, {after:.2}/s at 150 mV"
    );
    Ok(())
}

/// The operator's part, while everything runs: returns the agent-clock times just before
/// the threshold was set, just after it was applied, and just before the stall.
fn scenario(ctl: &Ctl, relay: &SerialRelay) -> Result<(u64, u64, u64), SystemError> {
    // 1: running, events and housekeeping at the hub.
    ctl.wait_sensor("the detector running with events and housekeeping", |s| {
        state(s) == Some("Running")
            && newest(s, "muon_event_count").is_some()
            && newest(s, "sipm_hit_rate_a").is_some()
    })?;

    // 2: a hard restart is the firmware's reset.
    let out = ctl.run(&[
        "restart",
        "sensor",
        "muons",
        "--node",
        NODE,
        "--hard",
        "--wait",
        "--timeout",
        "60s",
    ])?;
    if !out.contains("succeeded") {
        return Err(SystemError::Mismatch(format!("restart: {out}")));
    }
    let restarted = ctl.wait_sensor("the restart at the hub", |s| {
        s.pointer("/status/restarts").and_then(Value::as_u64) == Some(1)
            && state(s) == Some("Running")
    })?;
    let reason = restarted
        .pointer("/status/lastRestartReason")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !reason.contains("hard restart") {
        return Err(SystemError::Mismatch(format!(
            "restart reason: {restarted:#}"
        )));
    }

    // Enough housekeeping at the default threshold to compare with: about 20 events a
    // second, housekeeping every second.
    let events_before = ctl
        .wait_sensor("events after the restart", |s| {
            newest(s, "muon_event_count").is_some_and(|n| n > 120.0)
        })
        .map(|s| newest(&s, "muon_event_count").unwrap_or(0.0))?;

    // 3: the threshold, applied and observed.
    let t_set = monotonic_ns();
    ctl.run(&[
        "set",
        "sensor",
        "muons",
        "--node",
        NODE,
        "--tunable",
        "threshold_mv=150",
        "--wait",
    ])?;
    ctl.wait_sensor("threshold 150 mV in force", |s| {
        s.pointer("/status/tunables/threshold_mv")
            .and_then(Value::as_i64)
            == Some(150)
    })?;
    let t_applied = monotonic_ns();

    // 4: noise on the line: rejected and counted, and the events go on.
    let rejected_before = ctl
        .sensor()
        .and_then(|s| newest(&s, "detector_rejected_frames"))
        .unwrap_or(0.0);
    let mut seen = rejected_before;
    for _ in 0..3 {
        relay.inject(Toward::Host, &[0x13, 0x37, 0xfe, 0x42, 0x99]);
        // Each burst in another frame: wait for the one before to be counted.
        let counted = ctl.wait_sensor("a rejected frame counted", |s| {
            newest(s, "detector_rejected_frames").is_some_and(|n| n > seen)
        })?;
        seen = newest(&counted, "detector_rejected_frames").unwrap_or(seen);
    }
    if seen < rejected_before + 3.0 {
        return Err(SystemError::Mismatch(format!(
            "3 bursts of noise, {} rejected frames counted",
            seen - rejected_before
        )));
    }
    ctl.wait_sensor("events after the noise", |s| {
        newest(s, "muon_event_count").is_some_and(|n| n > events_before)
            && newest(s, "detector_rejected_frames").is_some_and(|n| n > rejected_before)
    })?;

    // The hit rate at 150 mV is judged over the readings between the threshold's
    // application and the stall (the reset brings the default threshold back until the
    // agent applies its tunables again): at least three housekeeping intervals of them,
    // whatever the noise phase took.
    while monotonic_ns() < t_applied + 4_500_000_000 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let t_stall = monotonic_ns();

    // 5: a stalled main loop, reset by the watchdog.
    let mut stall = [0u8; MAX_FRAME_BYTES];
    let len = encode_frame(
        &ToFrontEnd {
            id: 0xBEEF,
            command: Request::Stall,
        },
        &mut stall,
    )
    .map_err(|e| SystemError::Mismatch(e.to_string()))?;
    let mut bytes = vec![0u8];
    bytes.extend_from_slice(&stall[..len]);
    relay.inject(Toward::Device, &bytes);
    // The front end's numbers start again after the reset, with the agent's tunables.
    ctl.wait_sensor("events after the watchdog reset", |s| {
        newest(s, "muon_event_count").is_some_and(|n| n < events_before)
            && matches!(state(s), Some("Running" | "Degraded"))
    })?;
    Ok((t_set, t_applied, t_stall))
}
