//! Sync scenarios: the real `aloft-hub` and the real `aloft-agent` flying the simulated
//! flight (deploy/examples/sim.toml, sped up), the agent's `[hub]` pointing through the link
//! simulator, faults scripted on the link or dealt to the processes.
//!
//! Every scenario ends the same way ([`Rig::finish`]): the link heals, the agent stops with
//! SIGTERM, an agent with its sensors off is started on the same store until its store says
//! nothing is unsent, then everything stops and `aloft-hub dump` must equal
//! `aloft-agent store dump`: the same numbers in order, the same content, nothing missing,
//! nothing twice. After a SIGKILL only what the store itself lost may be missing, and the
//! store's own gap record says so: it is in both dumps.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use aloft_tests::link::{Action, Link, Script, Throttle};
use aloft_tests::system::{
    Agent, AgentSetup, Flight, Hub, HubData, HubLink, HubRecord, StoreRecord, Synced, SystemError,
    compare, store_dump, store_epoch, wait_until,
};

/// Records the hub acked, counted by the agent.
const ACKED: &str = "aloft_uplink_records_acked_total";
/// Unsent records metric of the agent's store.
const UNSENT: &str = "aloft_store_unsent_records";
/// How long the final drain may take (a few thousand records over loopback).
const DRAIN: Duration = Duration::from_secs(60);

/// A hub, a link in front of it, and an agent behind the link, in one temporary directory.
struct Rig {
    dir: tempfile::TempDir,
    data: HubData,
    hub: Option<Hub>,
    hub_addr: String,
    link: Link,
    setup: AgentSetup,
    agent: Option<Agent>,
}

impl Rig {
    fn new() -> Result<Self, SystemError> {
        Self::with_hub_link(|link| link)
    }

    /// A rig whose agent's `[hub]` section is changed by `tune`.
    fn with_hub_link(tune: impl FnOnce(HubLink) -> HubLink) -> Result<Self, SystemError> {
        let mut dir = tempfile::tempdir().map_err(|source| SystemError::Io {
            what: "make a temporary directory".into(),
            source,
        })?;
        // ALOFT_TEST_KEEP=1 keeps the directory (logs, stores, hub data) for a post-mortem.
        if std::env::var_os("ALOFT_TEST_KEEP").is_some() {
            dir.disable_cleanup(true);
            eprintln!("keeping {}", dir.path().display());
        }
        let data = HubData::init(&dir.path().join("hub"))?;
        let hub = Hub::start(&data)?;
        let link = Link::start(hub.addr()).map_err(|e| SystemError::Io {
            what: "start the link".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let hub_link = tune(HubLink::through(link.addr(), &data));
        let setup = AgentSetup::write(
            dir.path(),
            "agent",
            &dir.path().join("store"),
            &Flight {
                hub: Some(hub_link),
                ..Flight::default()
            },
        )?;
        Ok(Self {
            hub_addr: hub.addr().to_string(),
            dir,
            data,
            hub: Some(hub),
            link,
            setup,
            agent: None,
        })
    }

    fn start_agent(&mut self) -> Result<(), SystemError> {
        self.agent = Some(Agent::start(&self.setup)?);
        Ok(())
    }

    fn agent(&mut self) -> Result<&mut Agent, SystemError> {
        self.agent
            .as_mut()
            .ok_or_else(|| SystemError::Mismatch("the scenario expected a running agent".into()))
    }

    /// Waits until the hub has acked `records` more of the running agent's records
    /// (the agent's `aloft_uplink_records_acked_total`).
    fn wait_acked(&mut self, records: u64) -> Result<(), SystemError> {
        let agent = self.agent()?;
        let start = agent.metric(ACKED).unwrap_or(0.0);
        let want = start + records as f64;
        let waited = wait_until(
            &format!("{records} more records acked by the hub"),
            Duration::from_secs(60),
            || {
                if agent.check_running().is_err() {
                    return Some(());
                }
                agent.metric(ACKED).filter(|n| *n >= want).map(|_| ())
            },
        );
        if let Err(e) = waited {
            return Err(with_logs(e, agent));
        }
        agent.check_running()
    }

    /// Restarts the hub on its port: `crash` kills it with SIGKILL.
    fn restart_hub(&mut self, crash: bool) -> Result<(), SystemError> {
        if let Some(hub) = self.hub.take() {
            let process = hub.into_process();
            if crash {
                process.kill()?;
            } else {
                process.terminate()?;
            }
        }
        self.hub = Some(Hub::start_on(&self.data, &self.hub_addr)?);
        Ok(())
    }

    /// Heals the link, stops the agent, drains its store with a sensorless agent, stops
    /// everything, and compares the hub with the store.
    fn finish(self) -> Result<Synced, SystemError> {
        self.finish_with_hub().map(|(synced, _)| synced)
    }

    /// [`Rig::finish`], also giving what the hub holds of every epoch.
    fn finish_with_hub(mut self) -> Result<(Synced, Vec<HubRecord>), SystemError> {
        self.link.apply(Action::Throttle(None));
        self.link.apply(Action::Heal);
        if let Some(agent) = self.agent.take() {
            agent.into_process().terminate()?;
        }
        // Dumped now: the sensorless agent keeps no acked records (its retention is sized
        // by its enabled sensors' rates), so its store dump starts late.
        let flown = store_dump(&self.setup.store)?;
        let agent = Agent::start_draining(
            self.dir.path(),
            &self.setup.store,
            HubLink::through(self.link.addr(), &self.data),
        )?;
        let drained = wait_until("the agent's store to have nothing unsent", DRAIN, || {
            agent.metric(UNSENT).filter(|n| *n == 0.0)
        });
        if let Err(e) = drained {
            return Err(with_logs(e, &agent));
        }
        agent.into_process().terminate()?;
        if let Some(hub) = self.hub.take() {
            hub.into_process().terminate()?;
        }
        let store = merge_dumps(flown, store_dump(&self.setup.store)?)?;
        let hub = self.data.dump()?;
        let synced = compare(&hub, &store_epoch(&self.setup.store)?, &store)?;
        eprintln!("synced: {synced:?}");
        Ok((synced, hub))
    }

    fn store(&self) -> PathBuf {
        self.setup.store.clone()
    }
}

/// The records of two dumps of one store, one after the other: the same number must hold
/// the same record in both.
fn merge_dumps(
    first: Vec<StoreRecord>,
    second: Vec<StoreRecord>,
) -> Result<Vec<StoreRecord>, SystemError> {
    let mut merged: BTreeMap<u64, StoreRecord> = BTreeMap::new();
    for record in first.into_iter().chain(second) {
        if let Some(held) = merged.get(&record.seq)
            && held != &record
        {
            return Err(SystemError::Mismatch(format!(
                "the store changed record {} between two dumps: {} then {}",
                record.seq, held.record, record.record
            )));
        }
        merged.insert(record.seq, record);
    }
    Ok(merged.into_values().collect())
}

fn with_logs(error: SystemError, agent: &Agent) -> SystemError {
    SystemError::Mismatch(format!("{error}{}", agent.log_tail()))
}

/// Readings the flight makes in the time it is flown must all be at the hub.
fn assert_substantial(synced: Synced) {
    assert!(
        synced.readings > 1_000,
        "the scenario synced too little to prove anything: {synced:?}"
    );
}

#[test]
fn every_fault_kind_for_many_cycles_loses_nothing_and_duplicates_nothing() -> Result<(), SystemError>
{
    let mut rig = Rig::new()?;
    rig.start_agent()?;
    rig.wait_acked(1_000)?;
    let step = Duration::from_millis(1_500);
    let cycle = Script::new()
        .then(step, Action::Cut)
        .then(step, Action::CutMidFrame)
        .then(step, Action::Blackhole)
        // Longer than the 3 s read deadline: the agent must give up on the half-open link.
        .then(Duration::from_secs(4), Action::Heal)
        .then(step, Action::Down)
        .then(step, Action::Heal)
        .then(
            step,
            Action::Flap {
                every: Duration::from_millis(1_000),
                outage: Duration::from_millis(300),
            },
        )
        .then(Duration::from_secs(3), Action::Heal)
        .then(step, Action::Throttle(Some(Throttle::starlink(1_000_000))))
        .then(step, Action::Throttle(None));
    let script = cycle.repeat(2);
    let played = rig.link.play(script.clone());
    assert!(
        played.wait(script.duration() + Duration::from_secs(10)),
        "the script did not finish"
    );
    rig.agent()?.check_running()?;
    let connections = rig.link.connections();
    assert!(
        connections >= 8,
        "every fault should have forced a reconnect; {connections} connections"
    );
    assert_substantial(rig.finish()?);
    Ok(())
}

#[test]
fn a_hub_crash_mid_sync_loses_nothing() -> Result<(), SystemError> {
    let mut rig = Rig::new()?;
    // A backlog first: the link is down while the flight runs.
    rig.link.apply(Action::Down);
    rig.start_agent()?;
    wait_until(
        "a backlog in the agent's store",
        Duration::from_secs(60),
        || {
            let unsent = rig.agent.as_ref()?.metric("aloft_store_unsent_records")?;
            (unsent > 3_000.0).then_some(())
        },
    )?;
    rig.link.apply(Action::Heal);
    rig.wait_acked(2_000)?;
    rig.restart_hub(true)?;
    rig.wait_acked(2_000)?;
    rig.restart_hub(false)?;
    rig.wait_acked(500)?;
    assert_substantial(rig.finish()?);
    Ok(())
}

#[test]
fn an_agent_killed_mid_sync_resumes_and_the_hub_holds_what_its_store_holds()
-> Result<(), SystemError> {
    let mut rig = Rig::new()?;
    rig.start_agent()?;
    rig.wait_acked(2_000)?;
    for _ in 0..2 {
        if let Some(agent) = rig.agent.take() {
            agent.into_process().kill()?;
        }
        rig.start_agent()?;
        rig.wait_acked(1_000)?;
    }
    let synced = rig.finish()?;
    assert_substantial(synced);
    // Each crash is said by the store's own gap record, and that record is at the hub too.
    assert!(
        synced.gaps >= 2,
        "two SIGKILLs must leave two crash gaps in the stream: {synced:?}"
    );
    Ok(())
}

#[test]
fn a_half_open_link_is_noticed_within_the_read_deadline_and_the_agent_reconnects()
-> Result<(), SystemError> {
    let mut rig = Rig::new()?;
    rig.start_agent()?;
    rig.wait_acked(500)?;
    let before = rig.link.connections();
    rig.link.apply(Action::Blackhole);
    // read_deadline is 3 s and reconnect_max 1 s: a new attempt within 10 s, far from TCP's
    // minutes. New connections stay black-holed too, so only the deadline can end them.
    wait_until(
        "the agent to notice the half-open link and try again",
        Duration::from_secs(10),
        || (rig.link.connections() > before).then_some(()),
    )?;
    let during = rig.link.connections();
    wait_until(
        "the agent to give up on its stalled new connection too",
        Duration::from_secs(10),
        || (rig.link.connections() > during).then_some(()),
    )?;
    rig.link.apply(Action::Heal);
    rig.wait_acked(500)?;
    assert_substantial(rig.finish()?);
    Ok(())
}

#[test]
fn a_replaced_sd_card_is_a_new_epoch_synced_completely() -> Result<(), SystemError> {
    let mut rig = Rig::new()?;
    rig.start_agent()?;
    rig.wait_acked(1_000)?;
    if let Some(agent) = rig.agent.take() {
        agent.into_process().terminate()?;
    }
    // Drain the first card, then swap: a new store directory with the same config.
    let first_card = rig.store();
    let flown = store_dump(&first_card)?;
    let hub_link = HubLink::through(rig.link.addr(), &rig.data);
    let first = AgentSetup::write(
        rig.dir.path(),
        "first-drain",
        &first_card,
        &Flight {
            sensors: false,
            hub: Some(hub_link.clone()),
            ..Flight::default()
        },
    )?;
    let agent = Agent::start(&first)?;
    wait_until("the first card to be synced", DRAIN, || {
        agent.metric(UNSENT).filter(|n| *n == 0.0)
    })?;
    agent.into_process().terminate()?;
    let first_records = merge_dumps(flown, store_dump(&first_card)?)?;
    let first_epoch = store_epoch(&first_card)?;

    rig.setup = AgentSetup::write(
        rig.dir.path(),
        "second-card",
        &rig.dir.path().join("second-card"),
        &Flight {
            hub: Some(hub_link),
            ..Flight::default()
        },
    )?;
    rig.start_agent()?;
    rig.wait_acked(1_000)?;
    let second_epoch = store_epoch(&rig.store())?;
    assert_ne!(first_epoch, second_epoch, "a new card must be a new epoch");
    let (second, hub) = rig.finish_with_hub()?;
    assert_substantial(second);
    // The old card's numbers overlap the new card's (both count from 0): the hub keeps both.
    let first = compare(&hub, &first_epoch, &first_records)?;
    assert_substantial(first);
    assert_eq!(first_records.first().map(|r| r.seq), Some(0));
    Ok(())
}

/// Whether the test must run (`cargo xtask test` installs faketime) or may skip.
fn tool_required() -> bool {
    std::env::var_os("ALOFT_REQUIRE_TOOLS").is_some()
}

/// libfaketime, from Debian's `faketime` package.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

#[test]
fn a_board_booted_in_1970_connects_and_syncs() -> Result<(), SystemError> {
    if !std::path::Path::new(LIBFAKETIME).exists() {
        assert!(!tool_required(), "faketime is not installed");
        eprintln!("skipped: Debian's faketime is not installed");
        return Ok(());
    }
    let mut rig = Rig::new()?;
    // Before its first GPS fix: the simulated receiver would take its time from the faked
    // clock (and NMEA's two-digit year makes 1970 into 2070), so it stays off.
    let config = std::fs::read_to_string(&rig.setup.config).map_err(|source| SystemError::Io {
        what: "read the agent's config".into(),
        source,
    })?;
    std::fs::write(
        &rig.setup.config,
        config.replacen("enabled = true", "enabled = false", 1),
    )
    .map_err(|source| SystemError::Io {
        what: "write the agent's config".into(),
        source,
    })?;
    // A fresh store and state: no persisted last good time, so the agent has only its build
    // time as a floor for checking the hub's certificate (valid from a day before `init`).
    // libfaketime is preloaded directly: the `faketime` wrapper forks, so signals would
    // reach the wrapper, not the agent. Monotonic time stays real: the timers run on it.
    let agent = Agent::start_wrapped_env(
        &rig.setup,
        &[],
        &[
            ("LD_PRELOAD", LIBFAKETIME),
            ("FAKETIME", "@1970-01-02 00:00:00"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    )?;
    rig.agent = Some(agent);
    rig.wait_acked(1_000)?;
    // The drain agent of `finish` runs with the real clock; what the 1970 agent stored is
    // already at the hub or follows.
    assert_substantial(rig.finish()?);
    Ok(())
}
