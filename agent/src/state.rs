//! The agent's small state: what it must remember across restarts besides the stream.
//!
//! One JSON file (`state.json` next to the store), versioned, replaced atomically: the new
//! content is written to a temporary file in the same directory, fsynced, renamed over the
//! old file, and the directory is fsynced. A crash or power cut at any point leaves either
//! the old file or the new one, never a mix; a torn temporary file is never read.
//!
//! Invariant 7 (edge autonomy): an unreadable or unknown-version state file never stops the
//! agent. [`load_or_default`] reports it, keeps it aside ([`aside_path`]) and falls back to
//! the empty state, so the agent runs from its config file. The store epoch is not here: it lives in the store.
//!
//! Several tasks change the file (the daemon's last good time, the control task's desired
//! state and commands): they share one [`StateFile`], whose [`StateFile::update`] changes
//! the state and saves it under one lock, so no writer overwrites another's change with an
//! older copy.
//!
//! Older files load: fields added since version 1 (per-sensor generations, command
//! outcomes) have defaults, and an applied command recorded as a bare id reads as applied
//! with no recorded outcome.
//!
//! JSON rather than postcard: the file is a few hundred bytes written a few times an hour,
//! and a flight engineer can read it with `cat` on the board.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Version of the file's layout; a file of another version is reported, not guessed at.
pub const STATE_VERSION: u32 = 1;

/// Applied command ids remembered: commands carry a TTL at the hub, so an id older than
/// this many later commands cannot be delivered again.
pub const MAX_APPLIED_COMMANDS: usize = 256;

/// Problems with the state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file could not be read or written.
    #[error("state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is not valid JSON of the expected shape (torn, corrupt, hand-edited).
    #[error("state file {path} is unreadable: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// The file was written by an agent with another layout.
    #[error("state file {path} has version {found}, this agent reads version {STATE_VERSION}")]
    Version {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
    },
}

/// The hub's desired state of one sensor: only what may change remotely (invariant 5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredSensor {
    /// The sensor's name in the config file.
    pub name: String,
    /// Sampling interval, when the hub sets one.
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    /// Whether the sensor runs, when the hub says.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The tunables the hub sets, over the config file's key by key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tunables: BTreeMap<String, aloft_protocol::sync::TunableValue>,
}

/// The last desired sensor configuration received from the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredState {
    /// The spec's generation (level-triggered, invariant 4).
    pub generation: u64,
    /// Per sensor.
    pub sensors: Vec<DesiredSensor>,
}

impl DesiredState {
    /// Applies what is safe to change remotely (interval, enabled) to `config`, the file that
    /// owns the hardware (invariant 5): the agent samples with the last desired state when it
    /// boots without a hub (invariant 7). Returns what could not be applied, in words, for
    /// the log: a sensor the file does not have, an interval on a device that sends at its
    /// own rate or below what the part can do.
    pub fn apply_to(&self, config: &mut crate::config::AgentConfig) -> Vec<String> {
        let mut refused = Vec::new();
        for desired in &self.sensors {
            let Some(sensor) = config.sensors.iter_mut().find(|s| s.name == desired.name) else {
                refused.push(format!("sensor {}: not in the config file", desired.name));
                continue;
            };
            if let Some(enabled) = desired.enabled {
                sensor.enabled = enabled;
            }
            if !desired.tunables.is_empty() {
                let mut merged = sensor.tunables();
                merged.extend(desired.tunables.clone());
                match crate::config::tunables::check(sensor.kind, &merged) {
                    Ok(()) => {
                        sensor.tunables = merged
                            .iter()
                            .map(|(k, v)| (k.clone(), crate::config::tunables::to_toml(v)))
                            .collect();
                    }
                    Err(why) => refused.push(format!("sensor {}: {why}", desired.name)),
                }
            }
            if let Some(interval) = desired.interval {
                match sensor.kind.min_interval() {
                    Some(min) if interval >= min => sensor.interval = Some(interval),
                    Some(min) => refused.push(format!(
                        "sensor {}: interval {interval:?} is below the {min:?} {} can do",
                        desired.name,
                        sensor.kind.with_article()
                    )),
                    None => refused.push(format!(
                        "sensor {}: {} sends at its own rate, it has no interval",
                        desired.name,
                        sensor.kind.with_article()
                    )),
                }
            }
        }
        refused
    }
}

/// How a command ended, as remembered so that a redelivered command gets the same answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RecordedOutcome {
    /// Done.
    Succeeded {
        /// What happened.
        message: String,
    },
    /// Not done, or not completely (an interrupted command included).
    Failed {
        /// Why.
        message: String,
    },
    /// Arrived after its expiry; not applied.
    Expired,
}

/// A command the agent has finished with: applied, refused, expired or interrupted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedCommand {
    /// The command's id.
    pub id: String,
    /// How it ended; `None` for an id recorded by an agent that did not keep outcomes.
    pub outcome: Option<RecordedOutcome>,
}

impl<'de> Deserialize<'de> for AppliedCommand {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Files written before outcomes were kept list bare ids.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Entry {
            Id(String),
            Full {
                id: String,
                #[serde(default)]
                outcome: Option<RecordedOutcome>,
            },
        }
        Ok(match Entry::deserialize(d)? {
            Entry::Id(id) => AppliedCommand { id, outcome: None },
            Entry::Full { id, outcome } => AppliedCommand { id, outcome },
        })
    }
}

/// Everything in the state file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentState {
    /// The hub's last desired state; `None` means the config file alone rules.
    #[serde(default)]
    pub desired: Option<DesiredState>,
    /// The generation of each sensor's desired spec in `desired` (the hub bumps one sensor's
    /// generation when it changes that sensor's spec). A sensor missing here has the spec's
    /// `generation` (files written before per-sensor generations).
    #[serde(default)]
    pub desired_generations: BTreeMap<String, u64>,
    /// Commands finished with (oldest first, at most [`MAX_APPLIED_COMMANDS`]).
    #[serde(default)]
    pub applied_commands: VecDeque<AppliedCommand>,
    /// A command the agent started applying and has not finished: after a crash it is
    /// reported failed, never re-run (invariant 4).
    #[serde(default)]
    pub applying_command: Option<String>,
    /// The latest UTC the agent trusted, ns since the Unix epoch: after a boot in 1970 it
    /// bounds what the system clock may say and serves certificate checks.
    #[serde(default)]
    pub last_good_utc_ns: Option<i64>,
    /// The sensors the hub's last desired state exempts from power steps (those the node
    /// has): they run as the desired state says whatever the battery.
    #[serde(default)]
    pub power_overrides: Vec<String>,
}

impl AgentState {
    /// Whether a command id was already applied (or was being applied at a crash).
    pub fn has_seen_command(&self, id: &str) -> bool {
        self.applied(id).is_some() || self.applying_command.as_deref() == Some(id)
    }

    /// The finished command with this id, if the agent remembers it.
    pub fn applied(&self, id: &str) -> Option<&AppliedCommand> {
        self.applied_commands.iter().find(|c| c.id == id)
    }

    /// Records a command as applied without an outcome (kept for callers that have none).
    pub fn record_applied(&mut self, id: String) {
        self.finish_command(AppliedCommand { id, outcome: None });
    }

    /// Records a command as finished with `outcome`, clearing it as the one applying and
    /// forgetting the oldest beyond the bound.
    pub fn record_outcome(&mut self, id: String, outcome: RecordedOutcome) {
        self.finish_command(AppliedCommand {
            id,
            outcome: Some(outcome),
        });
    }

    fn finish_command(&mut self, command: AppliedCommand) {
        if self.applying_command.as_deref() == Some(command.id.as_str()) {
            self.applying_command = None;
        }
        match self
            .applied_commands
            .iter_mut()
            .find(|c| c.id == command.id)
        {
            Some(known) => {
                if command.outcome.is_some() {
                    known.outcome = command.outcome;
                }
            }
            None => self.applied_commands.push_back(command),
        }
        while self.applied_commands.len() > MAX_APPLIED_COMMANDS {
            self.applied_commands.pop_front();
        }
    }

    /// The generation of sensor `name`'s desired spec, if the desired state has one.
    pub fn desired_generation(&self, name: &str) -> Option<u64> {
        let desired = self.desired.as_ref()?;
        desired.sensors.iter().find(|s| s.name == name)?;
        Some(
            self.desired_generations
                .get(name)
                .copied()
                .unwrap_or(desired.generation),
        )
    }
}

/// The state file shared by every task that changes it: one lock, one writer at a time.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    state: Mutex<AgentState>,
}

impl StateFile {
    /// Loads `path` ([`load_or_default`]: an unreadable file is reported, kept aside, and
    /// the agent starts from the empty state).
    pub fn open(path: &Path) -> (StateFile, Option<StateError>) {
        let loaded = load_or_default(path);
        (StateFile::with_state(path, loaded.state), loaded.problem)
    }

    /// A state file at `path` starting from `state` (not saved until the first update).
    pub fn with_state(path: &Path, state: AgentState) -> StateFile {
        StateFile {
            path: path.to_owned(),
            state: Mutex::new(state),
        }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A copy of the state now.
    pub fn snapshot(&self) -> AgentState {
        self.lock().clone()
    }

    /// Changes the state with `change` and saves it (fsync, atomic rename). If the save
    /// fails, the state in memory stays as it was: what the file says is what the agent
    /// believes, so a change it could not make durable is never acted on.
    pub fn update<R>(&self, change: impl FnOnce(&mut AgentState) -> R) -> Result<R, StateError> {
        let mut state = self.lock();
        let mut next = state.clone();
        let result = change(&mut next);
        save(&self.path, &next)?;
        *state = next;
        Ok(result)
    }

    fn lock(&self) -> MutexGuard<'_, AgentState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Serialize, Deserialize)]
struct Envelope<S> {
    version: u32,
    state: S,
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

/// Reads the state file; `Ok(None)` when there is none yet.
pub fn load(path: &Path) -> Result<Option<AgentState>, StateError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let corrupt = |source| StateError::Corrupt {
        path: path.to_owned(),
        source,
    };
    let version = serde_json::from_slice::<VersionOnly>(&bytes)
        .map_err(corrupt)?
        .version;
    if version != STATE_VERSION {
        return Err(StateError::Version {
            path: path.to_owned(),
            found: version,
        });
    }
    let envelope: Envelope<AgentState> = serde_json::from_slice(&bytes).map_err(corrupt)?;
    Ok(Some(envelope.state))
}

/// The state at start, and the problem that made the agent fall back, if any.
#[derive(Debug)]
pub struct LoadedState {
    /// The state to run with (the empty state when the file was missing or unreadable).
    pub state: AgentState,
    /// Why the file was not used, when it existed and could not be read.
    pub problem: Option<StateError>,
}

/// Reads the state file, falling back to the empty state (the config file rules) when it
/// is unreadable: the agent must start anyway (invariant 7).
pub fn load_or_default(path: &Path) -> LoadedState {
    match load(path) {
        Ok(state) => LoadedState {
            state: state.unwrap_or_default(),
            problem: None,
        },
        Err(problem) => {
            // Keep the unreadable file for a post-flight look (and for a newer agent after
            // a downgrade) instead of letting the next save overwrite it.
            let kept = match problem {
                StateError::Corrupt { .. } | StateError::Version { .. } => {
                    let aside = aside_path(path);
                    fs::rename(path, &aside).ok().map(|()| aside)
                }
                StateError::Io { .. } => None,
            };
            tracing::warn!(
                path = %path.display(),
                error = %problem,
                kept_as = ?kept,
                "State file unusable; running from the config file alone."
            );
            LoadedState {
                state: AgentState::default(),
                problem: Some(problem),
            }
        }
    }
}

/// Where an unreadable state file is kept: `state.json.unreadable`.
pub fn aside_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".unreadable");
    PathBuf::from(name)
}

/// Replaces the state file atomically with `state`.
pub fn save(path: &Path, state: &AgentState) -> Result<(), StateError> {
    let bytes = serde_json::to_vec_pretty(&Envelope {
        version: STATE_VERSION,
        state,
    })
    .map_err(|source| StateError::Corrupt {
        path: path.to_owned(),
        source,
    })?;
    write_atomically(path, &bytes).map_err(|source| StateError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Replaces `path` with `bytes` so that a crash leaves the old or the new content: temp
/// file in the same directory, fsync, rename, fsync of the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace_with(path, |file| file.write_all(bytes))
}

/// The seam of [`write_atomically`]: `write` fills the temp file; if it fails, the temp
/// file is removed and `path` keeps its old content.
fn replace_with(path: &Path, write: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut tmp_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?
        .to_owned();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let written = (|| {
        let mut file = File::create(&tmp)?;
        write(&mut file)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        // Best effort: a leftover temp file is harmless (never read, overwritten next time).
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, path)?;
    // The rename is only durable once the directory entry is.
    File::open(&dir)?.sync_all()
}

#[cfg(test)]
mod desired_tests {
    use super::*;

    fn config() -> crate::config::AgentConfig {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/sim.toml");
        crate::config::load(&example).unwrap()
    }

    #[test]
    fn desired_state_changes_interval_and_enabled_only_where_safe() {
        let mut config = config();
        let desired = DesiredState {
            generation: 3,
            sensors: vec![
                DesiredSensor {
                    name: "static".into(),
                    interval: Some(Duration::from_millis(250)),
                    enabled: None,
                    tunables: BTreeMap::new(),
                },
                DesiredSensor {
                    name: "co2".into(),
                    interval: None,
                    enabled: Some(false),
                    tunables: BTreeMap::new(),
                },
                DesiredSensor {
                    name: "gps".into(),
                    interval: Some(Duration::from_secs(1)),
                    enabled: None,
                    tunables: BTreeMap::new(),
                },
                DesiredSensor {
                    name: "pitot".into(),
                    interval: Some(Duration::from_nanos(1)),
                    enabled: None,
                    tunables: BTreeMap::new(),
                },
                DesiredSensor {
                    name: "wing-strain".into(),
                    interval: None,
                    enabled: Some(true),
                    tunables: BTreeMap::new(),
                },
            ],
        };
        let refused = desired.apply_to(&mut config);
        let sensor = |n: &str| config.sensor(n).unwrap().1.clone();
        assert_eq!(sensor("static").interval, Some(Duration::from_millis(250)));
        assert!(!sensor("co2").enabled);
        assert_eq!(
            sensor("gps").interval,
            None,
            "a GNSS receiver has no interval"
        );
        assert_ne!(sensor("pitot").interval, Some(Duration::from_nanos(1)));
        assert_eq!(refused.len(), 3, "{refused:?}");
        assert!(refused.iter().any(|r| r.contains("wing-strain")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AgentState {
        let mut s = AgentState {
            desired: Some(DesiredState {
                generation: 7,
                sensors: vec![DesiredSensor {
                    name: "static".into(),
                    interval: Some(Duration::from_millis(100)),
                    enabled: Some(true),
                    tunables: BTreeMap::new(),
                }],
            }),
            last_good_utc_ns: Some(1_780_000_000_000_000_000),
            ..AgentState::default()
        };
        s.record_applied("cmd-1".into());
        s.power_overrides = vec!["static".into()];
        s
    }

    #[test]
    fn saved_state_loads_back_equal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        save(&path, &sample()).unwrap();
        assert_eq!(load(&path).unwrap(), Some(sample()));
    }

    #[test]
    fn desired_tunables_load_back_and_a_state_file_without_them_still_loads() {
        use aloft_protocol::sync::TunableValue;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut state = sample();
        if let Some(d) = state.desired.as_mut() {
            d.sensors[0].tunables = BTreeMap::from([
                (
                    "pressure_oversampling".to_owned(),
                    TunableValue::Integer(16),
                ),
                (
                    "dynamic_model".to_owned(),
                    TunableValue::Text("airborne4g".into()),
                ),
                ("switch".to_owned(), TunableValue::Bool(true)),
            ]);
        }
        save(&path, &state).unwrap();
        assert_eq!(load(&path).unwrap(), Some(state));
        // A file written before tunables existed has no such key: it reads as none.
        save(&path, &sample()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("tunables"), "{text}");
        assert_eq!(load(&path).unwrap(), Some(sample()));
    }

    #[test]
    fn a_missing_file_is_no_state_and_no_problem() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = load_or_default(&dir.path().join("state.json"));
        assert_eq!(loaded.state, AgentState::default());
        assert!(loaded.problem.is_none());
    }

    #[test]
    fn a_write_that_fails_halfway_leaves_the_old_file_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        save(&path, &sample()).unwrap();
        let mut newer = sample();
        newer.last_good_utc_ns = Some(1_790_000_000_000_000_000);
        let bytes = serde_json::to_vec(&Envelope {
            version: STATE_VERSION,
            state: &newer,
        })
        .unwrap();
        let result = replace_with(&path, |f| {
            f.write_all(&bytes[..bytes.len() / 2])?;
            Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
        });
        assert!(result.is_err());
        assert_eq!(load(&path).unwrap(), Some(sample()));
        assert!(!dir.path().join("state.json.tmp").exists());
    }

    #[test]
    fn applied_commands_stay_bounded_and_forget_the_oldest() {
        let mut s = AgentState::default();
        for i in 0..MAX_APPLIED_COMMANDS + 10 {
            s.record_applied(format!("c{i}"));
        }
        assert_eq!(s.applied_commands.len(), MAX_APPLIED_COMMANDS);
        assert!(!s.has_seen_command("c0"));
        assert!(s.has_seen_command(&format!("c{}", MAX_APPLIED_COMMANDS + 9)));
    }

    #[test]
    fn a_file_written_before_generations_and_outcomes_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        // What the first agents wrote: bare command ids, one generation for the spec.
        fs::write(
            &path,
            br#"{"version": 1, "state": {
                "desired": {"generation": 7, "sensors": [{"name": "co2", "enabled": false}]},
                "applied_commands": ["restart-co2-1", "restart-gps-2"],
                "applying_command": null,
                "last_good_utc_ns": 1780000000000000000}}"#,
        )
        .unwrap();
        let state = load(&path).unwrap().unwrap();
        assert_eq!(
            state.applied("restart-gps-2"),
            Some(&AppliedCommand {
                id: "restart-gps-2".into(),
                outcome: None
            })
        );
        assert_eq!(state.desired_generation("co2"), Some(7));
        assert_eq!(state.desired_generation("static"), None);
        // Saved again in the new shape, it reads back the same.
        save(&path, &state).unwrap();
        assert_eq!(load(&path).unwrap(), Some(state));
    }

    #[test]
    fn an_outcome_recorded_later_completes_an_applied_id_and_clears_applying() {
        let mut s = AgentState {
            applying_command: Some("c1".into()),
            ..AgentState::default()
        };
        s.record_outcome("c1".into(), RecordedOutcome::Expired);
        assert_eq!(s.applying_command, None);
        s.record_applied("c1".into());
        assert_eq!(
            s.applied("c1").and_then(|c| c.outcome.clone()),
            Some(RecordedOutcome::Expired),
            "a bare record does not erase a known outcome"
        );
        assert_eq!(s.applied_commands.len(), 1);
    }

    #[test]
    fn a_state_file_update_that_cannot_be_saved_changes_nothing_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone").join("state.json");
        let file = StateFile::with_state(&path, sample());
        let result = file.update(|s| s.applying_command = Some("c2".into()));
        assert!(matches!(result, Err(StateError::Io { .. })), "{result:?}");
        assert_eq!(file.snapshot(), sample());
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        file.update(|s| s.applying_command = Some("c2".into()))
            .unwrap();
        assert_eq!(
            load(&path).unwrap().and_then(|s| s.applying_command),
            Some("c2".into())
        );
    }

    #[test]
    fn a_command_interrupted_by_a_crash_counts_as_seen() {
        let s = AgentState {
            applying_command: Some("restart-gps-1".into()),
            ..AgentState::default()
        };
        assert!(s.has_seen_command("restart-gps-1"));
    }
}
