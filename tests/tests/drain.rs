//! A drain's premise, against the real `aloft-agent`: an agent started on a store that
//! holds unsent records never tells its metrics endpoint "nothing unsent" before it has
//! counted them. Every sync test ends by starting a sensorless agent on the flown store
//! and waiting for `aloft_store_unsent_records` to read 0; a 0 served before the first
//! group commit ended those drains before anything was sent.

use std::time::{Duration, Instant};

use aloft_tests::system::{
    Agent, AgentSetup, Flight, SystemError, http_get, metric_sum, wait_until,
};

const COMMITTED: &str = "aloft_store_records_committed_total";
const UNSENT: &str = "aloft_store_unsent_records";
/// Starts of the sensorless agent: each one's first answers fall in a different place of
/// its start-up.
const STARTS: usize = 6;

fn other(e: impl std::fmt::Display) -> SystemError {
    SystemError::Mismatch(e.to_string())
}

#[test]
fn an_agent_started_on_unsent_records_never_reads_as_drained_before_counting_them()
-> Result<(), SystemError> {
    let dir = tempfile::tempdir().map_err(other)?;
    let store = dir.path().join("store");
    // A flight with no hub: everything it stores stays unsent.
    let flown = AgentSetup::write(dir.path(), "flown", &store, &Flight::default())?;
    let agent = Agent::start(&flown)?;
    wait_until("records committed", Duration::from_secs(30), || {
        agent.metric(COMMITTED).filter(|n| *n > 0.0)
    })?;
    agent.into_process().terminate()?;

    let idle = AgentSetup::write(
        dir.path(),
        "idle",
        &store,
        &Flight {
            sensors: false,
            ..Flight::default()
        },
    )?;
    for start in 0..STARTS {
        // From its endpoint's very first answer on, polled without pause (a drain polls
        // every 50 ms; this finds the earliest answer it could see).
        let endpoint = idle.metrics;
        let watcher = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Some(value) =
                    http_get(endpoint, "/metrics").and_then(|text| metric_sum(&text, UNSENT))
                {
                    return Some(value);
                }
            }
            None
        });
        let agent = Agent::start(&idle)?;
        let first = watcher
            .join()
            .map_err(|_| other("the metrics poller panicked"))?
            .ok_or_else(|| other("no unsent gauge within 30 s"))?;
        assert!(
            first > 0.0,
            "start {start}: the agent read as drained ({UNSENT} {first}) with unsent records in its store"
        );
        agent.into_process().terminate()?;
    }
    Ok(())
}
