//! The shipped example configs load and validate: a test that fails when an example breaks
//! or when the loader starts refusing what the examples teach.

use std::path::{Path, PathBuf};

use aloft_agent::config::{self, SensorKind};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples")
}

fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .expect("deploy/examples exists")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_config_loads_and_validates() {
    let files = example_files();
    let names: Vec<_> = files
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
        .collect();
    assert!(
        names.contains(&"glider.toml".to_string()) && names.contains(&"sim.toml".to_string()),
        "examples found: {names:?}"
    );
    for file in &files {
        if let Err(e) = config::load(file) {
            panic!("{} does not load:\n{e}", file.display());
        }
        let report = config::check(file);
        assert!(report.valid, "{}", report.text);
    }
}

#[test]
fn glider_example_is_the_glider_sensor_set_on_hardware() {
    let c = config::load(&examples_dir().join("glider.toml")).expect("glider.toml loads");
    assert!(!c.is_simulated());
    let kinds: Vec<SensorKind> = c.sensors.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            SensorKind::Ublox,
            SensorKind::Cosmicwatch,
            SensorKind::Ms5611,
            SensorKind::Bme280,
            SensorKind::Scd41,
            SensorKind::Ms4525do,
            SensorKind::Pom,
            SensorKind::Sps30,
            SensorKind::Icm20948,
            SensorKind::Wind,
            SensorKind::Sbs,
            SensorKind::Detector
        ]
    );
    for s in &c.sensors {
        if s.kind.is_serial() {
            let port = s
                .port
                .as_ref()
                .expect("serial sensors have ports on hardware");
            assert!(port.starts_with("/dev/serial/by-id"), "{}", port.display());
            assert!(s.power.is_some(), "{} has a power line", s.name);
        } else if s.kind.is_i2c() {
            assert_eq!(s.bus.as_deref(), Some(Path::new("/dev/i2c-1")));
        } else {
            assert!(s.bus.is_none() && s.port.is_none(), "{} is derived", s.name);
        }
    }
    let (_, pitot) = c.sensor("pitot").expect("pitot");
    assert_eq!(pitot.static_pressure_from.as_deref(), Some("static"));
    assert_eq!(pitot.outside_air_from.as_deref(), Some("outside-air"));
    let (_, gps) = c.sensor("gps").expect("gps");
    assert!(gps.capture.is_some());
    assert!(c.store.path.starts_with("/var/lib/aloft"));
    assert!(c.hub.is_some());
    assert_eq!(c.metrics.listen.to_string(), "127.0.0.1:9464");
}

#[test]
fn sim_example_runs_the_same_sensor_set_without_hardware_paths() {
    let glider = config::load(&examples_dir().join("glider.toml")).expect("glider.toml loads");
    let sim = config::load(&examples_dir().join("sim.toml")).expect("sim.toml loads");
    assert!(sim.is_simulated());
    let set = |c: &config::AgentConfig| -> Vec<(String, SensorKind)> {
        c.sensors.iter().map(|s| (s.name.clone(), s.kind)).collect()
    };
    assert_eq!(set(&sim), set(&glider));
    assert!(
        sim.sensors
            .iter()
            .all(|s| s.port.is_none() && s.bus.is_none())
    );
    // Usable on this machine: a store under /tmp or relative to the working directory.
    assert!(sim.store.path.starts_with("/tmp") || sim.store.path.is_relative());
}

#[test]
fn check_of_a_valid_file_summarises_what_the_agent_will_run() {
    let path = examples_dir().join("glider.toml");
    let c = config::load(&path).expect("glider.toml loads");
    let report = config::check(&path);
    assert!(report.valid, "{}", report.text);
    assert!(
        report
            .text
            .lines()
            .next()
            .is_some_and(|l| l.ends_with(": valid."))
    );
    assert!(report.text.contains(&c.node.name));
    assert!(report.text.contains(&c.store.path.display().to_string()));
    for (i, s) in c.sensors.iter().enumerate() {
        let line = report
            .text
            .lines()
            .find(|l| l.starts_with(&format!("sensor[{i}] {} {}", s.name, s.kind)))
            .unwrap_or_else(|| panic!("no line for sensor[{i}] in:\n{}", report.text));
        if let Some(baud) = s.baud_or_default() {
            assert!(line.contains(&format!("{baud} baud")), "{line}");
        }
        if let Some(address) = s.address_or_default() {
            assert!(line.contains(&format!("0x{address:02x}")), "{line}");
        }
    }
}
