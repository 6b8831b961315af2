//! The board examples (`sensors/examples/`) fail with a message that names the missing
//! device and a non-zero exit status, never a panic, when the device path is absent.
//!
//! The examples are built with the package's tests (`cargo test` and `cargo nextest run`
//! build every example); this runs the built binaries from `target/<profile>/examples`.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The built example `name`, beside this test's own directory (`target/<profile>/deps`).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test runs from target/<profile>/deps");
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is not built: `cargo build -p aloft-sensors --examples`",
        path.display()
    );
    path
}

fn run(name: &str, args: &[&str]) -> Output {
    Command::new(example(name))
        .args(args)
        .output()
        .expect("the example starts")
}

fn missing_device() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("no-such-device");
    (dir, path.display().to_string())
}

fn assert_clear_failure(output: &Output, name: &str, device: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");
    assert!(
        stderr.starts_with(&format!("{name}: ")) && stderr.contains(device),
        "{name} should name the missing device: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{name} panicked: {stderr}");
}

#[test]
fn the_bme280_example_names_a_missing_bus_and_exits_non_zero() {
    let (_dir, bus) = missing_device();
    let output = run("bme280_linux", &[&bus, "0x76", "1"]);
    assert_clear_failure(&output, "bme280_linux", &bus);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot open the I2C bus") && stderr.contains("No such file"),
        "{stderr}"
    );
}

#[test]
fn the_ublox_example_names_a_missing_port_and_exits_non_zero() {
    let (_dir, port) = missing_device();
    let output = run("ublox_serial", &[&port, "115200", "1"]);
    assert_clear_failure(&output, "ublox_serial", &port);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not found"), "{stderr}");
}

#[test]
fn bad_arguments_are_refused_with_the_usage() {
    for (name, args) in [
        ("bme280_linux", ["/dev/i2c-1", "0x1FF"]),
        ("ublox_serial", ["/dev/ttyACM0", "fast"]),
    ] {
        let output = run(name, &args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains("usage:"), "{name}: {stderr}");
    }
}
