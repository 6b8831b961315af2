//! The download of an export stream from the hub, resumable: the bytes go to a hidden
//! part file beside the output (`.STEM.export.part`), with a small JSON state file
//! (`.STEM.export.json`: the request, the hub's snapshot `upto` and creation time, the
//! bytes that are safely on disk).
//!
//! Invariants: the state's byte count never exceeds what was synced to the part file, so
//! a download killed at any moment resumes from a prefix of the same stream; a resume
//! asks the hub for the same snapshot (`upto`, `created`) from that byte (`skip`), and its
//! bytes are the same as those of an uncut stream; a part file of another request is
//! discarded, never continued; a stream is complete only when [`archive::check`] says so.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use super::ExportFailure;
use super::archive::{self, ArchiveError, Member};
use crate::client::{ClientError, Hub, segment};

/// Attempts in a row without a byte of progress before giving up.
const ATTEMPTS: u32 = 5;
/// The first wait before a retry; doubled each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// How often the part file is synced and the state written while bytes arrive.
const SYNC_EVERY: Duration = Duration::from_millis(250);
/// Bytes after which the part file is synced and the state written in any case.
const SYNC_BYTES: u64 = 16 << 20;

/// What a part file belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    /// The hub and the request, without `upto`, `created` and `skip`.
    request: String,
    /// The snapshot (`Aloft-Export-Upto`).
    upto: Option<String>,
    /// The creation time, ns (`Aloft-Export-Created`).
    created: Option<String>,
    /// Bytes of the stream synced to the part file.
    bytes: u64,
}

/// A download's files in the output directory.
#[derive(Debug)]
pub struct Download {
    /// The stream's bytes so far.
    pub part: PathBuf,
    /// Its state.
    state: PathBuf,
}

impl Download {
    /// The part and state files of the export `stem` in `dir`.
    pub fn at(dir: &Path, stem: &str) -> Download {
        Download {
            part: dir.join(format!(".{stem}.export.part")),
            state: dir.join(format!(".{stem}.export.json")),
        }
    }

    /// Removes the part and state files.
    pub fn remove(&self) {
        let _ = fs::remove_file(&self.part);
        let _ = fs::remove_file(&self.state);
    }

    fn read_state(&self) -> Option<State> {
        let text = fs::read(&self.state).ok()?;
        serde_json::from_slice(&text).ok()
    }

    fn write_state(&self, state: &State) -> Result<(), ExportFailure> {
        let tmp = self.state.with_extension("json.new");
        let text = serde_json::to_vec(state).map_err(|e| ExportFailure::Io {
            what: "writing the download's state".into(),
            source: e.into(),
        })?;
        fs::write(&tmp, text)
            .and_then(|()| fs::rename(&tmp, &self.state))
            .map_err(|source| ExportFailure::Io {
                what: format!("writing {}", self.state.display()),
                source,
            })
    }
}

/// A header's value as text.
fn header(response: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Downloads the stream of `path` (a request without `upto`, `created`, `skip`; `created`
/// is the caller's fixed creation time and `upto` its fixed snapshot, if any) into the
/// part file, resuming a part of the same request; returns the part file, open, and its
/// checked members.
pub fn fetch(
    hub: &Hub,
    path: &str,
    created: Option<i64>,
    upto: Option<&str>,
    download: &Download,
    sidecar: &str,
    bar: &ProgressBar,
) -> Result<(File, Vec<Member>), ExportFailure> {
    let request = format!(
        "{} {path}{}{}",
        hub.base(),
        created.map(|c| format!(" created={c}")).unwrap_or_default(),
        upto.map(|u| format!(" upto={u}")).unwrap_or_default()
    );
    let io = |what: &str, source| ExportFailure::Io {
        what: format!("{what} {}", download.part.display()),
        source,
    };
    let part_len = fs::metadata(&download.part).map(|m| m.len()).ok();
    let mut state = match download.read_state() {
        Some(s)
            if s.request == request
                && s.upto.is_some()
                && s.created.is_some()
                && part_len.is_some_and(|len| len >= s.bytes) =>
        {
            bar.suspend(|| eprintln!("resumed at {} bytes", s.bytes));
            s
        }
        other => {
            if other.is_some() || part_len.is_some() {
                bar.suspend(|| {
                    eprintln!(
                        "discarding {}: a partial download of another export",
                        download.part.display()
                    )
                });
                download.remove();
            }
            State {
                request: request.clone(),
                upto: None,
                created: None,
                bytes: 0,
            }
        }
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&download.part)
        .map_err(|e| io("opening", e))?;
    file.set_len(state.bytes).map_err(|e| io("truncating", e))?;
    if state.bytes > 0
        && let Ok(members) = archive::check(&mut file, sidecar)
    {
        return Ok((file, members));
    }
    bar.set_position(state.bytes);
    let mut fruitless = 0;
    loop {
        let resuming = state.upto.is_some() && state.created.is_some();
        let url = match (&state.upto, &state.created) {
            (Some(upto), Some(at)) => format!(
                "{path}&upto={}&created={}&skip={}",
                segment(upto),
                segment(at),
                state.bytes
            ),
            _ => {
                let mut url = path.to_owned();
                if let Some(c) = created {
                    url.push_str(&format!("&created={c}"));
                }
                if let Some(u) = upto {
                    url.push_str(&format!("&upto={}", segment(u)));
                }
                url
            }
        };
        let before = state.bytes;
        let reason = match hub.get_stream(&url) {
            Ok(response) => {
                let upto = header(&response, "Aloft-Export-Upto");
                let at = header(&response, "Aloft-Export-Created");
                let skipped = header(&response, "Aloft-Export-Skipped");
                let same_snapshot = resuming && upto == state.upto && at == state.created;
                if !(same_snapshot && skipped.as_deref() == Some(&state.bytes.to_string())) {
                    if resuming {
                        tracing::info!(
                            skipped = ?skipped,
                            upto = ?upto,
                            "The hub sent the export from its start; the partial download is dropped."
                        );
                    }
                    if skipped.is_some_and(|s| s != "0") {
                        // From the middle of another snapshot: nothing to build on.
                        state.upto = None;
                        state.created = None;
                        state.bytes = 0;
                        file.set_len(0).map_err(|e| io("truncating", e))?;
                        fruitless += 1;
                        if fruitless >= ATTEMPTS {
                            return Err(ExportFailure::Interrupted {
                                attempts: fruitless,
                                reason: "the hub does not resume at the byte asked for".into(),
                            });
                        }
                        continue;
                    }
                    state.upto = upto;
                    state.created = at;
                    state.bytes = 0;
                    file.set_len(0).map_err(|e| io("truncating", e))?;
                    bar.set_position(0);
                }
                if let Some(records) = header(&response, "Aloft-Export-Records") {
                    bar.set_message(format!("({records} records)"));
                }
                download.write_state(&state)?;
                let body = response.into_body().into_reader();
                let broke = copy(body, &mut file, &mut state, download, bar)?;
                match archive::check(&mut file, sidecar) {
                    Ok(members) => return Ok((file, members)),
                    Err(ArchiveError::Incomplete(why)) => broke.unwrap_or(why),
                    Err(refused) => {
                        download.remove();
                        return Err(refused.into());
                    }
                }
            }
            Err(e @ ClientError::Unreachable { .. }) => e.to_string(),
            Err(e @ ClientError::Status { status, .. }) if status >= 500 => e.to_string(),
            Err(ClientError::Status { status, message }) if resuming && status < 500 => {
                bar.suspend(|| {
                    eprintln!("the hub cannot resume this download ({message}); starting over")
                });
                tracing::info!(status, "Resume refused; starting over.");
                state.upto = None;
                state.created = None;
                state.bytes = 0;
                file.set_len(0).map_err(|e| io("truncating", e))?;
                download.write_state(&state)?;
                format!("HTTP {status}: {message}")
            }
            Err(refused) => return Err(refused.into()),
        };
        if state.bytes > before {
            fruitless = 0;
        } else {
            fruitless += 1;
        }
        if fruitless >= ATTEMPTS {
            return Err(ExportFailure::Interrupted {
                attempts: fruitless,
                reason,
            });
        }
        let wait = FIRST_BACKOFF * 2u32.pow(fruitless.saturating_sub(1));
        tracing::warn!(bytes = state.bytes, reason = %reason, wait_ms = wait.as_millis() as u64, "The export stream broke; resuming.");
        std::thread::sleep(wait);
    }
}

/// Appends the body to the part file, syncing it and recording the bytes in the state as
/// they arrive; returns why the body broke, if it did.
fn copy(
    mut body: impl Read,
    file: &mut File,
    state: &mut State,
    download: &Download,
    bar: &ProgressBar,
) -> Result<Option<String>, ExportFailure> {
    let write_err = |source| ExportFailure::Io {
        what: format!("writing {}", download.part.display()),
        source,
    };
    file.seek(SeekFrom::Start(state.bytes)).map_err(write_err)?;
    let mut buf = vec![0u8; 64 << 10];
    let mut pending = 0u64;
    let mut synced = Instant::now();
    // The first bytes of a response are recorded at once, so that even a stream that
    // stalls right away leaves something to resume from.
    let mut first = true;
    let broke = loop {
        match body.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => {
                file.write_all(&buf[..n]).map_err(write_err)?;
                pending += n as u64;
                bar.inc(n as u64);
                if first || synced.elapsed() >= SYNC_EVERY || pending >= SYNC_BYTES {
                    first = false;
                    file.sync_data().map_err(write_err)?;
                    state.bytes += pending;
                    pending = 0;
                    download.write_state(state)?;
                    synced = Instant::now();
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Some(e.to_string()),
        }
    };
    file.sync_data().map_err(write_err)?;
    state.bytes += pending;
    download.write_state(state)?;
    Ok(broke)
}
