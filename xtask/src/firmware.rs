//! `cargo xtask firmware`: the detector front end's firmware image (firmware/), both builds,
//! with their flash and RAM use; its steps in `cargo xtask test`; and `cargo xtask bench
//! firmware`.
//!
//! The firmware is built without any rustup download: Debian's rustc-web (1.96) compiles
//! `core` for thumbv7m-none-eabi from rust-web-src (`-Zbuild-std=core`, allowed by
//! `RUSTC_BOOTSTRAP=1`) and binutils-arm-none-eabi's `ld` links; rust-web-clippy lints it
//! (the rustup clippy has no thumbv7m core). The build command itself is test-support's
//! (`firmware::build_command`), so the tests, this chore and the bench build the same way.
//!
//! `qemu-system-arm` runs the image. These machines carry a qemu-utils from
//! bookworm-backports (10.0), which Breaks bookworm's qemu-system-common (7.2): installing
//! bookworm's qemu-system-arm would remove it. So qemu-system-arm is installed at the
//! installed qemu-utils' version (enabling bookworm-backports when that is where it comes
//! from; if the suite has moved on, its current set with qemu-utils upgraded alongside),
//! and an install that `apt-get -s` shows removing a package, or upgrading one not asked
//! for (qemu-user, which the cross tests run), is refused.
//!
//! Invariants: both images are built once per command and the test suite is pointed at
//! them (`ALOFT_FIRMWARE_IMAGES`); the normal image stays within [`MAX_FLASH_BYTES`].

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use aloft_protocol::detector::{Command as Request, ReplyBody};
use aloft_test_support::firmware::{
    self as image, FirmwareImage, FrontEndLine, Qemu, QemuOptions, Variant,
};
use anyhow::{Context, Result, bail};

use crate::{packages, run, workspace_root};

/// The flash the firmware may take.
pub const MAX_FLASH_BYTES: u64 = 32 * 1024;

/// The emulator's packages, installed together at one version.
use packages::{FIRMWARE_EMULATOR_PACKAGES as QEMU_PACKAGES, FIRMWARE_PACKAGES as BUILD_PACKAGES};

/// Bound of each wait on the emulated board.
const PATIENCE: Duration = Duration::from_secs(60);

fn package_version(package: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Status} ${Version}", package])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let version = text.strip_prefix("install ok installed ")?.trim();
    (out.status.success() && !version.is_empty()).then(|| version.to_owned())
}

fn apt(args: &[&str]) -> Result<std::process::Output> {
    Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .context("could not run apt-get (is this a Debian machine?)")
}

/// Installs qemu-system-arm without removing the installed qemu-utils.
fn ensure_qemu() -> Result<()> {
    if package_version("qemu-system-arm").is_some() {
        return Ok(());
    }
    if std::fs::metadata("/proc/self").map(|m| m.uid()).ok() != Some(0) {
        bail!(
            "qemu-system-arm is missing and this is not root; install it at the version of \
             qemu-utils (docs/firmware.md), or run with --no-install to skip the firmware steps"
        );
    }
    // First choice: the emulator at exactly the installed qemu-utils' version. When the
    // suite has moved on since (a newer backport), the suite's current set, which upgrades
    // qemu-utils along with it rather than removing it.
    let mut candidates: Vec<Vec<String>> = Vec::new();
    match package_version("qemu-utils") {
        Some(version) => {
            if version.contains("bpo12") {
                enable_backports()?;
                let mut suite: Vec<String> = ["-t", "bookworm-backports", "qemu-utils"]
                    .map(str::to_owned)
                    .to_vec();
                suite.extend(QEMU_PACKAGES.map(str::to_owned));
                candidates.push(QEMU_PACKAGES.map(|p| format!("{p}={version}")).to_vec());
                candidates.push(suite);
            } else {
                candidates.push(QEMU_PACKAGES.map(|p| format!("{p}={version}")).to_vec());
            }
        }
        None => candidates.push(vec!["qemu-system-arm".to_owned()]),
    }
    let mut refusals = String::new();
    for wanted in &candidates {
        let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
        let mut simulate = vec!["-s", "install", "--no-install-recommends"];
        simulate.extend(&wanted);
        let plan = apt(&simulate)?;
        let plan_text = String::from_utf8_lossy(&plan.stdout);
        if !plan.status.success() || plan_text.lines().any(|l| disturbs(l, &wanted)) {
            refusals.push_str(&format!(
                "\n`apt-get -s install {}` removes or upgrades other packages, or fails:\n{}{}",
                wanted.join(" "),
                plan_text,
                String::from_utf8_lossy(&plan.stderr)
            ));
            continue;
        }
        eprintln!("xtask: installing {}", wanted.join(" "));
        let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
        install.extend(&wanted);
        let out = apt(&install)?;
        if !out.status.success() {
            bail!(
                "apt-get install {} failed: {}",
                wanted.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        return Ok(());
    }
    bail!("qemu-system-arm cannot be installed without removing or upgrading others:{refusals}")
}

/// Whether a line of `apt-get -s install WANTED` removes a package, or upgrades an installed
/// one that was not asked for (say qemu-user, which the cross tests run).
fn disturbs(line: &str, wanted: &[&str]) -> bool {
    if line.starts_with("Remv ") {
        return true;
    }
    let Some(rest) = line.strip_prefix("Inst ") else {
        return false;
    };
    let mut words = rest.split_whitespace();
    let name = words.next().unwrap_or_default();
    let upgrade = words.next().is_some_and(|w| w.starts_with('['));
    let asked = wanted
        .iter()
        .any(|w| w.split('=').next() == Some(name.split(':').next().unwrap_or(name)));
    upgrade && !asked
}

/// Adds Debian's bookworm-backports suite to apt's sources (its packages install only
/// when asked for by version or suite) and updates the lists.
fn enable_backports() -> Result<()> {
    let listed = Command::new("apt-cache")
        .args(["policy"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("bookworm-backports"));
    if listed {
        return Ok(());
    }
    let path = "/etc/apt/sources.list.d/bookworm-backports.sources";
    eprintln!(
        "xtask: enabling bookworm-backports in {path} (the installed qemu-utils is from there)"
    );
    std::fs::write(
        path,
        "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\n\
         Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
    )
    .with_context(|| format!("write {path}"))?;
    let out = apt(&["update", "-q"])?;
    if !out.status.success() {
        bail!(
            "apt-get update failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Installs (with `install`) or checks what building and running the firmware needs.
pub fn ensure_packages(install: bool) -> Result<()> {
    if install {
        packages::ensure(BUILD_PACKAGES)?;
        return ensure_qemu();
    }
    let missing: Vec<&str> = BUILD_PACKAGES
        .iter()
        .map(|(p, _)| *p)
        .chain(["qemu-system-arm"])
        .filter(|p| package_version(p).is_none())
        .collect();
    if !missing.is_empty() {
        bail!(
            "missing Debian packages {} (not installing: --no-install)",
            missing.join(" ")
        );
    }
    Ok(())
}

/// Builds both images; returns them, normal first.
pub fn build() -> Result<Vec<FirmwareImage>> {
    let mut images = Vec::new();
    for variant in Variant::ALL {
        eprintln!("xtask: firmware build ({})", variant.name());
        images.push(image::build_variant(variant)?);
    }
    Ok(images)
}

/// Prints an image's footprint; fails when the normal build outgrows the flash budget.
fn report(image: &FirmwareImage) -> Result<()> {
    let footprint = image.footprint()?;
    eprintln!(
        "xtask: {} ({}): flash {} bytes of {MAX_FLASH_BYTES}, static RAM {} bytes",
        image.elf.display(),
        image.variant.name(),
        footprint.flash_bytes,
        footprint.ram_bytes
    );
    if image.variant == Variant::Normal && footprint.flash_bytes > MAX_FLASH_BYTES {
        bail!(
            "the firmware takes {} bytes of flash, over its {MAX_FLASH_BYTES}",
            footprint.flash_bytes
        );
    }
    Ok(())
}

/// `cargo xtask firmware`; with `check`, first the lints `test` runs.
pub fn firmware(install: bool, check: bool) -> Result<()> {
    ensure_packages(install)?;
    if check {
        lint()?;
    }
    for image in build()? {
        report(&image)?;
    }
    Ok(())
}

/// `cargo fmt`, then clippy (both builds, warnings denied) of firmware/, which the
/// workspace's own fmt and clippy do not reach.
fn lint() -> Result<()> {
    let dir = workspace_root().join("firmware");
    run(
        "cargo fmt --check (firmware/)",
        crate::cargo()
            .current_dir(&dir)
            .args(["fmt", "--", "--check"]),
    )?;
    for features in [&[][..], &["--features", "fault-hooks"][..]] {
        run(
            &format!(
                "clippy of firmware/ {} (warnings denied)",
                features.join(" ")
            ),
            Command::new("/usr/bin/cargo-clippy")
                .current_dir(&dir)
                .args(["clippy", "--release", "--locked", "--target-dir"])
                .arg(image::build_dir())
                .args(features)
                .args(["--", "-D", "warnings"])
                .env("RUSTC_BOOTSTRAP", "1")
                .env_remove("RUSTC_WORKSPACE_WRAPPER")
                .env_remove("RUSTC_WRAPPER"),
        )?;
    }
    Ok(())
}

/// The firmware steps of `cargo xtask test`, before the test suite: lint firmware/, build
/// both images once and check their size. Returns the folder to name in
/// `ALOFT_FIRMWARE_IMAGES` for the suite's firmware tests, or `None` when the tools are
/// missing and not installed (the tests then skip, saying so).
pub fn test(install: bool) -> Result<Option<PathBuf>> {
    if let Err(e) = ensure_packages(install) {
        if install {
            return Err(e);
        }
        eprintln!("xtask: skipping the firmware steps: {e:#}");
        return Ok(None);
    }
    lint()?;
    let images = build()?;
    for image in &images {
        report(image)?;
    }
    Ok(Some(image::images_dir()))
}

/// Events sent and dropped over `intervals` housekeeping intervals at `rate_per_s`, and the
/// bytes read meanwhile.
struct RateRun {
    events: u32,
    dropped: u32,
    bytes: u64,
}

fn run_at(image: &FirmwareImage, rate_per_s: u32, intervals: u32) -> Result<RateRun> {
    let options = QemuOptions {
        muon_rate_mhz: Some(rate_per_s.saturating_mul(1_000)),
        ..QemuOptions::default()
    };
    let qemu = Qemu::start_with(image, options)?;
    let mut line = FrontEndLine::open(&qemu)?;
    line.boot(PATIENCE)?;
    // The first interval fills the queue from empty: measure from the second on.
    line.housekeeping(PATIENCE)?;
    let first = line.housekeeping(PATIENCE)?;
    let bytes_before = line.bytes_read;
    let mut last = first;
    for _ in 0..intervals {
        last = line.housekeeping(PATIENCE)?;
    }
    Ok(RateRun {
        events: last.events_total - first.events_total,
        dropped: last.dropped_events_total - first.dropped_events_total,
        bytes: line.bytes_read - bytes_before,
    })
}

/// The counter's rate against the host's clock, from two pings 2 s apart (QEMU's virtual
/// clock follows the host's): that the firmware's 50 MHz is what QEMU's clock tree gives.
fn tick_rate(line: &mut FrontEndLine) -> Result<f64> {
    let mut ping = || -> Result<(u64, std::time::Instant)> {
        let sent = std::time::Instant::now();
        match line.request(Request::Ping, PATIENCE)? {
            ReplyBody::Pong { ticks } => Ok((ticks, sent + sent.elapsed() / 2)),
            other => bail!("a ping was answered {other:?}"),
        }
    };
    let (first, at_first) = ping()?;
    std::thread::sleep(Duration::from_secs(2));
    let (second, at_second) = ping()?;
    Ok((second - first) as f64 / (at_second - at_first).as_secs_f64())
}

/// `cargo xtask bench firmware`: the image's flash and RAM, the wire's bytes per event and
/// the event rate a 115 200 baud line carries (from the frame sizes, aloft_detector's
/// `line_budget`), checked in QEMU at twice that rate (drops reported) and half (none).
pub fn bench() -> Result<()> {
    ensure_packages(true)?;
    let normal = image::build_variant(Variant::Normal)?;
    let footprint = normal.footprint()?;

    let qemu = Qemu::start(&normal)?;
    let mut line = FrontEndLine::open(&qemu)?;
    let boot = line.boot(PATIENCE)?;
    let tick_hz_seen = tick_rate(&mut line)?;
    drop(qemu);
    let budget = aloft_detector::line_budget(
        115_200,
        boot.tick_hz,
        boot.settings.housekeeping_interval_ms,
    );
    let max = budget.max_events_per_s;
    const INTERVALS: u32 = 5;
    let above = run_at(&normal, max * 2, INTERVALS)?;
    let below = run_at(&normal, max / 2, INTERVALS)?;

    println!("firmware.flash_bytes {} bytes", footprint.flash_bytes);
    println!("firmware.ram_bytes {} bytes", footprint.ram_bytes);
    println!(
        "firmware.bytes_per_event {:.3} bytes",
        f64::from(budget.bytes_per_event_milli()) / 1_000.0
    );
    println!("firmware.max_events_per_s_115200 {max} events/s");
    println!(
        "firmware.check_tick_hz {tick_hz_seen:.0} Hz (the boot message says {})",
        boot.tick_hz
    );
    let dropped_pct = |run: &RateRun| 100.0 * f64::from(run.dropped) / f64::from(run.events.max(1));
    println!(
        "firmware.check_dropped_pct_at_{}_per_s {:.1} % (of {} events in {INTERVALS} s)",
        max * 2,
        dropped_pct(&above),
        above.events
    );
    println!(
        "firmware.check_dropped_pct_at_{}_per_s {:.1} % (of {} events in {INTERVALS} s)",
        max / 2,
        dropped_pct(&below),
        below.events
    );
    println!(
        "firmware.check_wire_bytes_per_event_at_{}_per_s {:.2} bytes",
        max / 2,
        below.bytes as f64 / f64::from(below.events.max(1))
    );
    if above.dropped == 0 || below.dropped != 0 {
        bail!(
            "the line check failed: {} dropped at {} events/s (expected some), {} at {} (expected none)",
            above.dropped,
            max * 2,
            below.dropped,
            max / 2
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(path: &str) -> toml::Table {
        let text = std::fs::read_to_string(workspace_root().join(path)).unwrap_or_default();
        text.parse().unwrap_or_default()
    }

    #[test]
    fn an_install_plan_that_removes_or_upgrades_others_disturbs() {
        let wanted = ["qemu-system-arm=1:10.0.2", "qemu-utils"];
        assert!(disturbs("Remv qemu-utils [1:10.0.2]", &wanted));
        assert!(disturbs(
            "Inst qemu-user [1:7.2] (1:10.0.2 Debian Backports [amd64])",
            &wanted
        ));
        assert!(!disturbs(
            "Inst qemu-utils [1:10.0.1] (1:10.0.2 Debian Backports [amd64])",
            &wanted
        ));
        assert!(!disturbs(
            "Inst libfdt1 (1.6.1-4+b1 Debian:12.15 [amd64])",
            &wanted
        ));
        assert!(!disturbs(
            "Conf qemu-system-arm (1:10.0.2 Debian Backports [amd64])",
            &wanted
        ));
    }

    #[test]
    fn the_firmware_has_the_workspaces_lints() {
        let root = manifest("Cargo.toml");
        let firmware = manifest("firmware/Cargo.toml");
        let workspace_lints = root.get("workspace").and_then(|w| w.get("lints"));
        assert!(workspace_lints.is_some());
        assert_eq!(firmware.get("lints"), workspace_lints);
    }

    #[test]
    fn the_firmware_is_its_own_workspace_and_the_host_excludes_it() {
        let firmware = manifest("firmware/Cargo.toml");
        assert!(firmware.get("workspace").is_some_and(toml::Value::is_table));
        let root = manifest("Cargo.toml");
        let excluded = root
            .get("workspace")
            .and_then(|w| w.get("exclude"))
            .and_then(toml::Value::as_array)
            .is_some_and(|list| list.iter().any(|v| v.as_str() == Some("firmware")));
        assert!(excluded);
    }
}
