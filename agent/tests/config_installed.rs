//! Config problems that only show on the board or between sensors: two I2C devices at
//! one address of one bus, and a hub token file that is missing or empty (the agent would
//! then never connect). `check-config` is run as the binary, as the flight engineer and
//! the systemd unit run it.

#![allow(clippy::unwrap_used)] // Tests: a failed step should stop the test loudly.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

use aloft_agent::config;
use proptest::prelude::*;

const STORE: &str = "[node]\nname = \"glider\"\n\n[store]\npath = \"/tmp/aloft-installed\"\n\
    max_bytes = 10_000_000_000\nfull_policy = \"decimate\"\nflush_interval = \"1s\"\n\
    retain_acked = \"1h\"\n";

/// A pressure sensor table: an ms5611 or a bme280 on `bus` at `address`.
fn sensor(i: usize, kind: &str, bus: u8, address: u8) -> String {
    let interval = if kind == "bme280" { "1s" } else { "100ms" };
    format!(
        "\n[[sensor]]\nname = \"p{i}\"\nkind = \"{kind}\"\nbus = \"/dev/i2c-{bus}\"\n\
         address = 0x{address:02x}\ninterval = \"{interval}\"\n"
    )
}

#[test]
fn two_i2c_sensors_at_one_address_of_one_bus_are_a_problem_naming_both() {
    let text = format!(
        "{STORE}{}{}",
        sensor(0, "bme280", 1, 0x77),
        sensor(1, "ms5611", 1, 0x77)
    );
    let errors = config::parse(&text, "agent.toml").unwrap_err().to_string();
    assert!(
        errors.contains("sensor[1].address: 0x77 on /dev/i2c-1 is already sensor[0]'s address"),
        "{errors}"
    );
    // On two buses, or at the two addresses of one bus, they are fine.
    for (a, b) in [((1, 0x77), (2, 0x77)), ((1, 0x76), (1, 0x77))] {
        let text = format!(
            "{STORE}{}{}",
            sensor(0, "bme280", a.0, a.1),
            sensor(1, "ms5611", b.0, b.1)
        );
        config::parse(&text, "agent.toml").unwrap_or_else(|e| panic!("{e}"));
    }
}

proptest! {
    #[test]
    fn a_config_of_i2c_sensors_is_refused_exactly_when_two_share_bus_and_address(
        places in prop::collection::vec(
            (prop::sample::select(vec!["bme280", "ms5611"]), 1u8..3, prop::sample::select(vec![0x76u8, 0x77])),
            1..6,
        )
    ) {
        let mut text = STORE.to_owned();
        for (i, (kind, bus, address)) in places.iter().enumerate() {
            text.push_str(&sensor(i, kind, *bus, *address));
        }
        let mut seen = HashSet::new();
        let shared = places.iter().filter(|(_, bus, address)| !seen.insert((*bus, *address))).count();
        match config::parse(&text, "agent.toml") {
            Ok(_) => prop_assert_eq!(shared, 0),
            Err(errors) => {
                let problems: Vec<_> = errors.problems.iter().filter(|p| p.key.ends_with(".address")).collect();
                prop_assert_eq!(problems.len(), shared, "{}", errors);
                prop_assert_eq!(errors.problems.len(), shared, "{}", errors);
            }
        }
    }
}

fn check_config(path: &Path) -> (i32, String) {
    check_config_with(&[], path)
}

fn check_config_with(flags: &[&str], path: &Path) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_aloft-agent"))
        .arg("check-config")
        .args(flags)
        .arg(path)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[test]
fn check_config_refuses_a_missing_or_empty_token_file_naming_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("node.token");
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "{STORE}\n[hub]\nurl = \"wss://127.0.0.1:8443/v1/nodes/connect\"\ntoken_file = \"{}\"\n",
            token.display()
        ),
    )
    .unwrap();

    let (code, text) = check_config(&path);
    assert_ne!(code, 0, "{text}");
    let expected = format!(
        "{}: hub.token_file: {} cannot be read",
        path.display(),
        token.display()
    );
    assert!(text.contains(&expected), "{text}");
    assert!(text.contains("never connects"), "{text}");
    // The systemd unit's check before `run`: the file alone, so that an agent without its
    // token still starts and samples.
    let (code, text) = check_config_with(&["--file-only"], &path);
    assert_eq!(code, 0, "{text}");

    std::fs::write(&token, "\n").unwrap();
    let (code, text) = check_config(&path);
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains(&format!("hub.token_file: {} is empty", token.display())),
        "{text}"
    );

    std::fs::write(&token, "aloft_0123456789abcdef\n").unwrap();
    let (code, text) = check_config(&path);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(": valid."), "{text}");
}
