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
//! JSON rather than postcard: the file is a few hundred bytes written a few times an hour,
//! and a flight engineer can read it with `cat` on the board.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
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
            if let Some(interval) = desired.interval {
                match sensor.kind.min_interval() {
                    Some(min) if interval >= min => sensor.interval = Some(interval),
                    Some(min) => refused.push(format!(
                        "sensor {}: interval {interval:?} is below the {min:?} a {} can do",
                        desired.name, sensor.kind
                    )),
                    None => refused.push(format!(
                        "sensor {}: a {} sends at its own rate, it has no interval",
                        desired.name, sensor.kind
                    )),
                }
            }
        }
        refused
    }
}

/// Everything in the state file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentState {
    /// The hub's last desired state; `None` means the config file alone rules.
    #[serde(default)]
    pub desired: Option<DesiredState>,
    /// Ids of commands applied (oldest first, at most [`MAX_APPLIED_COMMANDS`]).
    #[serde(default)]
    pub applied_commands: VecDeque<String>,
    /// A command the agent started applying and has not finished: after a crash it is
    /// reported failed, never re-run (invariant 4).
    #[serde(default)]
    pub applying_command: Option<String>,
    /// The latest UTC the agent trusted, ns since the Unix epoch: after a boot in 1970 it
    /// bounds what the system clock may say and serves certificate checks.
    #[serde(default)]
    pub last_good_utc_ns: Option<i64>,
}

impl AgentState {
    /// Whether a command id was already applied (or was being applied at a crash).
    pub fn has_seen_command(&self, id: &str) -> bool {
        self.applied_commands.iter().any(|c| c == id)
            || self.applying_command.as_deref() == Some(id)
    }

    /// Records a command as applied, forgetting the oldest beyond the bound.
    pub fn record_applied(&mut self, id: String) {
        if self.applying_command.as_deref() == Some(id.as_str()) {
            self.applying_command = None;
        }
        if !self.applied_commands.contains(&id) {
            self.applied_commands.push_back(id);
        }
        while self.applied_commands.len() > MAX_APPLIED_COMMANDS {
            self.applied_commands.pop_front();
        }
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
                },
                DesiredSensor {
                    name: "co2".into(),
                    interval: None,
                    enabled: Some(false),
                },
                DesiredSensor {
                    name: "gps".into(),
                    interval: Some(Duration::from_secs(1)),
                    enabled: None,
                },
                DesiredSensor {
                    name: "pitot".into(),
                    interval: Some(Duration::from_nanos(1)),
                    enabled: None,
                },
                DesiredSensor {
                    name: "wing-strain".into(),
                    interval: None,
                    enabled: Some(true),
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
                }],
            }),
            last_good_utc_ns: Some(1_780_000_000_000_000_000),
            ..AgentState::default()
        };
        s.record_applied("cmd-1".into());
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
    fn a_command_interrupted_by_a_crash_counts_as_seen() {
        let s = AgentState {
            applying_command: Some("restart-gps-1".into()),
            ..AgentState::default()
        };
        assert!(s.has_seen_command("restart-gps-1"));
    }
}
