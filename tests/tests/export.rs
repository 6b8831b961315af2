//! The flight to 12 km exported end to end: the real agent flies the simulated flight
//! (sped up) with a live link to the real hub; the agent's store directory is copied as an
//! SD card would be after landing; then `aloftctl export` writes every format once from the
//! hub and once from the copied store, and the two must be the same files byte for byte
//! (the sidecar's `completeness`, which says where the records were read, aside).
//!
//! The hub's export is bounded to the records the store copy holds (`--upto`), since the
//! agent that drains the rest adds records of its own boot; both use one `--created`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aloft_tests::system::{
    Agent, AgentSetup, Flight, Hub, HubData, HubLink, NODE, SystemError, binary, store_dump,
    store_epoch, wait_until,
};

/// Every format, as `aloftctl export --format` names them.
const FORMATS: &[&str] = &[
    "csv", "parquet", "netcdf", "icartt", "igc", "geojson", "kml", "package",
];
/// Simulated seconds per real second. At 10 and above the simulated receiver's output
/// outruns its 115 200 baud line and it cannot answer the agent's configuration in time.
const SPEED: f64 = 5.0;
/// Where the flight starts: in the wave climb at about 10.7 km, so that the rest of the
/// climb to 12 km (3 234 s into the scenario) and across it takes about a minute.
const START_AT_S: f64 = 2_900.0;
/// The export's creation time, fixed so that two exports can be compared.
const CREATED: &str = "2026-12-01T12:00:00Z";
/// Records committed by the agent (its metric).
const COMMITTED: &str = "aloft_store_records_committed_total";

fn other(e: impl std::fmt::Display) -> SystemError {
    SystemError::Mismatch(e.to_string())
}

/// Every file under `dir`, by path relative to it.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

fn aloftctl(args: &[&std::ffi::OsStr]) -> Result<std::process::Output, SystemError> {
    let out = Command::new(binary("aloftctl")?)
        .args(args)
        .env_remove("ALOFT_CONFIG")
        .output()
        .map_err(other)?;
    if !out.status.success() {
        return Err(SystemError::Mismatch(format!(
            "aloftctl {:?} failed ({}): {}",
            args,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(out)
}

/// The sidecar without its `completeness` (which says where the records were read).
/// In a package's sidecar, the files that carry completeness (the nested sidecars, the
/// README and `datapackage.json`) are left out of its file list too.
fn sidecar_without_completeness(bytes: &[u8]) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    v.as_object_mut().unwrap().remove("completeness");
    if let Some(files) = v["files"].as_array_mut() {
        files.retain(|f| {
            let path = f["path"].as_str().unwrap_or_default();
            !path.ends_with(".sidecar.json") && path != "README.md" && path != "datapackage.json"
        });
    }
    v
}

/// A package's `datapackage.json` without what says where the records were read: the
/// sidecars' and README's sizes and checksums, and its `sources`.
fn datapackage_without_sidecars(bytes: &[u8]) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    v.as_object_mut().unwrap().remove("sources");
    if let Some(resources) = v["resources"].as_array_mut() {
        resources.retain(|r| {
            !r["path"]
                .as_str()
                .is_some_and(|p| p.ends_with(".sidecar.json") || p == "README.md")
        });
    }
    v
}

/// A package's README without the lines that describe the sidecars (their sizes and
/// checksums) or say where the records were read (`complete: the hub holds ...`).
fn readme_without_sidecars(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| {
            !l.contains(".sidecar.json")
                && !l.starts_with("complete: ")
                && !l.starts_with("partial: ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_flight_to_12_km_exports_the_same_files_from_the_hub_and_from_the_store()
-> Result<(), SystemError> {
    let mut dir = tempfile::tempdir().map_err(other)?;
    // ALOFT_TEST_KEEP=1 keeps the directory (logs, stores, exports) for a post-mortem.
    if std::env::var_os("ALOFT_TEST_KEEP").is_some() {
        dir.disable_cleanup(true);
        eprintln!("keeping {}", dir.path().display());
    }
    let data = HubData::init(&dir.path().join("hub"))?;
    let hub = Hub::start(&data)?;
    let store = dir.path().join("store");
    let setup = AgentSetup::write(
        dir.path(),
        "flight",
        &store,
        &Flight {
            speed: SPEED,
            start_at_s: START_AT_S,
            sensors: true,
            hub: Some(HubLink::through(hub.addr(), &data)),
        },
    )?;
    let agent = Agent::start(&setup)?;
    let hub_url = format!("https://{}", hub.addr());
    let token = data.admin_token()?;
    let target = |verb: &[&str]| -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = vec![
            "--hub".into(),
            hub_url.clone().into(),
            "--token".into(),
            token.clone().into(),
            "--ca".into(),
            data.ca_file.clone().into(),
        ];
        args.extend(verb.iter().map(std::ffi::OsString::from));
        args
    };
    // Up to 12 km: the GNSS
    // altitude the hub shows as the sensor's newest value.
    let top = target(&["top", "-n", NODE, "-o", "json"]);
    let top: Vec<&std::ffi::OsStr> = top.iter().map(|a| a.as_os_str()).collect();
    wait_until("the glider at 12 km", Duration::from_secs(240), || {
        let out = aloftctl(&top).ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let value: serde_json::Value = serde_json::from_str(&text).ok()?;
        let altitude = value["items"]
            .as_array()?
            .iter()
            .flat_map(|s| {
                s["status"]["values"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .find(|v| v["quantity"] == "altitude_msl")?["value"]
            .as_f64()?;
        (altitude >= 11_950.0).then_some(altitude)
    })?;
    wait_until("records committed", Duration::from_secs(30), || {
        agent.metric(COMMITTED).filter(|n| *n > 0.0)
    })?;
    agent.into_process().terminate()?;

    // The SD card after landing: a copy of the store, read-only from here on.
    let card = dir.path().join("card");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(&store)
        .arg(&card)
        .status()
        .map_err(other)?;
    assert!(copied.success());
    let held = store_dump(&card)?;
    let newest = held.last().map(|r| r.seq).unwrap();
    let upto = format!("{}:{newest}", store_epoch(&card)?);

    // The hub gets whatever the link had not delivered from an agent with its sensors off.
    let agent = Agent::start_draining(dir.path(), &store, HubLink::through(hub.addr(), &data))?;
    wait_until("nothing unsent", Duration::from_secs(60), || {
        agent
            .metric("aloft_store_unsent_records")
            .filter(|n| *n == 0.0)
    })?;
    agent.into_process().terminate()?;

    for format in FORMATS {
        let from_hub = dir.path().join(format!("hub-{format}"));
        let from_card = dir.path().join(format!("card-{format}"));
        aloftctl(&[
            "--hub".as_ref(),
            hub_url.as_ref(),
            "--token".as_ref(),
            token.as_ref(),
            "--ca".as_ref(),
            data.ca_file.as_os_str(),
            "export".as_ref(),
            "--node".as_ref(),
            NODE.as_ref(),
            "--format".as_ref(),
            format.as_ref(),
            "--upto".as_ref(),
            upto.as_ref(),
            "--created".as_ref(),
            CREATED.as_ref(),
            "-o".as_ref(),
            from_hub.as_os_str(),
        ])?;
        aloftctl(&[
            "export".as_ref(),
            "--store".as_ref(),
            card.as_os_str(),
            "--node".as_ref(),
            NODE.as_ref(),
            "--format".as_ref(),
            format.as_ref(),
            "--created".as_ref(),
            CREATED.as_ref(),
            "-o".as_ref(),
            from_card.as_os_str(),
        ])?;
        let (a, b) = (tree(&from_hub), tree(&from_card));
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>(),
            "{format}: the hub and the store exported different files"
        );
        for (path, bytes) in &a {
            let theirs = &b[path];
            let name = path.to_string_lossy();
            if name == "datapackage.json" {
                assert!(
                    datapackage_without_sidecars(bytes) == datapackage_without_sidecars(theirs),
                    "{format}: datapackage.json differs beyond its sidecars"
                );
            } else if name == "README.md" {
                assert!(
                    readme_without_sidecars(bytes) == readme_without_sidecars(theirs),
                    "{format}: README.md differs beyond its sidecars and completeness"
                );
            } else if name.ends_with(".sidecar.json") {
                assert!(
                    sidecar_without_completeness(bytes) == sidecar_without_completeness(theirs),
                    "{format}: {} differs beyond its completeness",
                    path.display()
                );
            } else {
                assert!(
                    bytes == theirs,
                    "{format}: {} differs between the hub and the store",
                    path.display()
                );
            }
        }
        let sidecar = a
            .iter()
            .find(|(p, _)| {
                p.to_string_lossy().ends_with(".sidecar.json") && p.parent() == Some(Path::new(""))
            })
            .map(|(_, b)| serde_json::from_slice::<serde_json::Value>(b).unwrap())
            .unwrap();
        let top = sidecar["totals"]["altitude_m"][1].as_f64().unwrap_or(0.0);
        assert!(
            top >= 11_900.0,
            "{format}: the export reaches {top} m, not the flight's 12 km"
        );
        assert!(sidecar["totals"]["rows"].as_u64().unwrap() > 0);
    }
    hub.into_process().terminate()?;
    Ok(())
}
