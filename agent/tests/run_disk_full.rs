//! `aloft-agent run` on a real filesystem that fills while it runs: the store sits on a small
//! tmpfs that another process (`dd`) fills to the last byte. The agent never exits, keeps
//! sampling (records wait in memory), reports the full store in `aloft-agent status`, and
//! once the space is freed writes everything it held; every number in the store is held or
//! covered by a gap record.
//!
//! Mounting needs root. Without it the test says so and passes, unless
//! `ALOFT_REQUIRE_TOOLS=1` (set by `cargo xtask test`) demands it; the store's own tests
//! cover a full and a failing disk through the storage seam.

#![allow(clippy::unwrap_used)] // A test harness: a failed setup step should stop the test loudly.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aloft_protocol::Record;
use aloft_store::{Outbox, StoreOptions};
use aloft_test_support::mounts::Tmpfs;

mod common;
use common::free_port;

/// Bound of every wait: generous for a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// `aloft-agent status` until `done` holds, checking the agent lives throughout.
fn wait_for(agent: &mut Child, port: u16, what: &str, done: impl Fn(&str) -> bool) -> String {
    common::wait_for_status(port, PATIENCE, what, Some(agent), done)
}

/// The number after `label` on the status's store health line.
fn figure(status: &str, label: &str) -> u64 {
    let line = status
        .lines()
        .find(|l| l.starts_with("store health"))
        .unwrap_or_else(|| panic!("no store health line:\n{status}"));
    let rest = &line[line.find(label).unwrap() + label.len()..];
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn a_filesystem_filled_by_another_process_does_not_stop_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let fs_dir = dir.path().join("fs");
    std::fs::create_dir_all(&fs_dir).unwrap();
    let Some(fs) = Tmpfs::mount(&fs_dir, "8m") else {
        assert!(
            std::env::var_os("ALOFT_REQUIRE_TOOLS").is_none(),
            "a tmpfs could not be mounted (root is needed)"
        );
        eprintln!("run_disk_full: SKIPPED: could not mount a tmpfs (not root?)");
        return;
    };
    let store = fs.path().join("store");
    let port = free_port();
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, common::sim_toml(dir.path(), port)).unwrap();
    let mut agent = Command::new(env!("CARGO_BIN_EXE_aloft-agent"))
        .args(["run", "--config"])
        .arg(&config)
        .arg("--store")
        .arg(&store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&mut agent, port, "every sensor reading", |s| {
        s.lines().filter(|l| l.contains(" running ")).count() == common::sim_sensor_count()
            && s.lines().any(|l| l.starts_with("store health ok"))
    });

    // Another process takes every byte left.
    let filler = fs.path().join("filler");
    let dd = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", filler.display()))
        .arg("bs=64k")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!dd.success(), "dd stops at a full filesystem");

    let full = wait_for(&mut agent, port, "a full store in status", |s| {
        s.contains("store health full")
    });
    assert!(
        full.contains("No space left"),
        "the cause is shown:\n{full}"
    );
    let waiting = figure(&full, "waiting in memory");
    let later = wait_for(&mut agent, port, "sampling while full", |s| {
        s.contains("store health full") && figure(s, "waiting in memory") > waiting + 50
    });
    let metrics = Command::new("curl")
        .args(["-sf", &format!("http://127.0.0.1:{port}/metrics")])
        .output();
    if let Ok(metrics) = metrics
        && metrics.status.success()
    {
        let text = String::from_utf8_lossy(&metrics.stdout);
        assert!(
            text.contains("aloft_store_health{state=\"full\"} 1"),
            "metrics show the full store"
        );
    }
    drop(later);

    // Space comes back: everything held in memory is written.
    std::fs::remove_file(&filler).unwrap();
    wait_for(&mut agent, port, "a healthy store again", |s| {
        s.contains("store health ok") && figure(s, "waiting in memory") < 1000
    });

    let pid = nix::unistd::Pid::from_raw(i32::try_from(agent.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + PATIENCE;
    let exit = loop {
        if let Some(exit) = agent.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "the agent did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        exit.success(),
        "a clean stop after the full disk, not {exit}"
    );

    // One boot (the agent never restarted); every number held or covered by a gap.
    let (outbox, report) = Outbox::open(&store, StoreOptions::default()).unwrap();
    assert!(!report.unclean);
    let records = outbox.read_from(0, usize::MAX).unwrap();
    let boots = records
        .iter()
        .filter(|(_, r)| matches!(r, Record::Boot(_)))
        .count();
    assert_eq!(boots, 1, "the agent never restarted");
    let mut covered = BTreeSet::new();
    for (_, r) in &records {
        if let Record::Gap(g) = r
            && let Some((lo, hi)) = g.covers
        {
            covered.extend(lo..=hi);
        }
    }
    let held: BTreeSet<u64> = records.iter().map(|r| r.0).collect();
    let first = records.first().unwrap().0;
    for seq in first..outbox.durable_end() {
        assert!(
            held.contains(&seq) || covered.contains(&seq),
            "number {seq} neither held nor covered by a gap"
        );
    }
    let readings = records
        .iter()
        .filter(|(_, r)| matches!(r, Record::Reading(_)))
        .count();
    assert!(
        readings > 500,
        "the flight's readings are in the store: {readings}"
    );
    drop(outbox);
}
