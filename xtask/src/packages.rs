//! Debian packages the test suite needs, installed when missing.
//!
//! The test command runs on a fresh Debian machine that has only the Rust toolchain. It
//! installs what it needs with apt-get when it runs as root (as CI does), and otherwise
//! fails with the exact command a person should run.

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// What the tests need from Debian, and why.
pub const TEST_PACKAGES: &[(&str, &str)] = &[
    (
        "gpsd",
        "the reference GNSS decoder, the oracle of the NMEA differential test",
    ),
    ("gpsd-clients", "gpspipe, to read gpsd's decode"),
    ("gpsd-tools", "gpsfake, to feed a capture to gpsd"),
    ("python3-gps", "the Python module gpsfake runs on"),
    (
        "faketime",
        "libfaketime, to boot the agent in 1970 in the sync tests",
    ),
    (
        "mosquitto",
        "the MQTT broker the agent's bus publishes to in the MQTT tests and bench",
    ),
    (
        "mosquitto-clients",
        "mosquitto_sub and mosquitto_pub, the real subscribers and publishers of the MQTT tests",
    ),
];

/// What building and linting the detector front end's firmware needs from Debian, and
/// why (`cargo xtask firmware` and `test` install them).
pub const FIRMWARE_PACKAGES: &[(&str, &str)] = &[
    (
        "rustc-web",
        "Debian's rustc 1.96, which builds the firmware (bookworm-security)",
    ),
    (
        "rust-web-src",
        "the core library's source, built for thumbv7m-none-eabi (-Zbuild-std=core)",
    ),
    (
        "rust-web-clippy",
        "clippy for rustc-web: the firmware's lint check",
    ),
    (
        "binutils-arm-none-eabi",
        "arm-none-eabi-ld, the firmware's linker",
    ),
];

/// The emulator that runs the firmware image (`qemu-system-arm -machine lm3s6965evb`),
/// installed together at the version of the machine's qemu-utils, which a
/// bookworm-backports qemu-utils otherwise has apt remove (firmware.rs says how).
pub const FIRMWARE_EMULATOR_PACKAGES: [&str; 3] =
    ["qemu-system-arm", "qemu-system-common", "qemu-system-data"];

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout).contains("install ok installed")
        })
}

fn missing(packages: &[(&'static str, &str)]) -> Vec<&'static str> {
    packages
        .iter()
        .filter(|(p, _)| !installed(p))
        .map(|(p, _)| *p)
        .collect()
}

/// Lists missing packages without installing them.
pub fn report_missing(packages: &[(&'static str, &str)]) {
    let missing = missing(packages);
    if !missing.is_empty() {
        eprintln!(
            "xtask: not installing {}: tests that need them will skip",
            missing.join(" ")
        );
    }
}

/// Installs the packages that are missing, or explains how to.
pub fn ensure(packages: &[(&'static str, &str)]) -> Result<()> {
    let missing = missing(packages);
    if missing.is_empty() {
        return Ok(());
    }
    for (p, why) in packages.iter().filter(|(p, _)| missing.contains(p)) {
        eprintln!("xtask: needs Debian package {p}: {why}");
    }
    let command = format!(
        "apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    // The owner of /proc/self is this process's effective user.
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root {
        bail!(
            "missing Debian packages and not running as root; install them with\n  sudo apt-get update && sudo {command}\nor run `cargo xtask test --no-install` to skip the tests that need them"
        );
    }
    eprintln!("xtask: running as root: installing {}", missing.join(" "));
    let apt = |args: &[&str]| -> Result<()> {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("could not run apt-get (is this a Debian machine?)")?;
        if !status.success() {
            bail!(
                "apt-get {} failed ({status}); run `{command}` by hand to see why",
                args.join(" ")
            );
        }
        Ok(())
    };
    apt(&["update", "-q"])?;
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend(missing.iter().copied());
    apt(&install)?;
    let still = self::missing(packages);
    if !still.is_empty() {
        bail!(
            "apt-get reported success but {} are still not installed",
            still.join(" ")
        );
    }
    Ok(())
}
