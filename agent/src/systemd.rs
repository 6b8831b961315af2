//! systemd integration: the `sd_notify` protocol, written here (it is one datagram per
//! message) rather than pulled in as a crate with libsystemd behind it.
//!
//! `Type=notify` units get `NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace);
//! each message is one datagram of `KEY=VALUE` lines. `WatchdogSec=` gives `WATCHDOG_USEC`
//! (and `WATCHDOG_PID`): the service must send `WATCHDOG=1` more often than that, and
//! sends it at half the interval as sd_watchdog_enabled(3) advises.
//!
//! Invariants: with `NOTIFY_SOCKET` unset every call is a no-op; sending never blocks the
//! agent (the socket is non-blocking: a systemd that does not read loses a message rather
//! than stalling a sensor).

use std::ffi::OsStr;
use std::future::Future;
use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Problems talking to systemd.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `NOTIFY_SOCKET` is set but is not a usable address.
    #[error("NOTIFY_SOCKET {0:?} is not an absolute path or @abstract name")]
    BadAddress(String),
    /// The socket could not be made or the message not sent.
    #[error("sd_notify: {0}")]
    Io(#[from] io::Error),
}

/// A connection to the service manager's notification socket (or nothing).
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// A notifier that sends nothing (not run by systemd, or in tests).
    pub fn disabled() -> Self {
        Notifier {
            target: None,
            watchdog: None,
        }
    }

    /// From the process environment (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID`).
    pub fn from_env() -> Result<Self, NotifyError> {
        let socket = std::env::var_os("NOTIFY_SOCKET");
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        Notifier::from_vars(socket.as_deref(), usec.as_deref(), pid.as_deref())
    }

    /// From the values of the three variables; `None` for an unset one.
    pub fn from_vars(
        notify_socket: Option<&OsStr>,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
    ) -> Result<Self, NotifyError> {
        let Some(raw) = notify_socket.filter(|s| !s.is_empty()) else {
            return Ok(Notifier::disabled());
        };
        let addr = parse_address(raw)?;
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        // The watchdog is ours only if no PID is named or it is this process.
        let for_us = watchdog_pid
            .map(|p| p.trim().parse::<u32>().ok() == Some(std::process::id()))
            .unwrap_or(true);
        let watchdog = watchdog_usec
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&u| u > 0 && for_us)
            .map(|u| Duration::from_micros(u / 2));
        Ok(Notifier {
            target: Some((socket, addr)),
            watchdog,
        })
    }

    /// Whether messages go anywhere.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// How often to send `WATCHDOG=1` (half of `WATCHDOG_USEC`), when systemd asks for it.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends raw `KEY=VALUE` lines.
    pub fn notify(&self, state: &str) -> Result<(), NotifyError> {
        let Some((socket, addr)) = &self.target else {
            return Ok(());
        };
        socket.send_to_addr(state.as_bytes(), addr)?;
        Ok(())
    }

    /// `READY=1`: start-up is done (sensors supervised, store open).
    pub fn ready(&self) -> Result<(), NotifyError> {
        self.notify("READY=1")
    }

    /// `WATCHDOG=1`: the agent is alive.
    pub fn watchdog(&self) -> Result<(), NotifyError> {
        self.notify("WATCHDOG=1")
    }

    /// `STATUS=...`: one line `systemctl status` shows (newlines become spaces).
    pub fn status(&self, text: &str) -> Result<(), NotifyError> {
        let line: String = text
            .chars()
            .map(|c| if c == '\n' { ' ' } else { c })
            .collect();
        self.notify(&format!("STATUS={line}"))
    }

    /// `STOPPING=1`: a graceful stop began (SIGTERM): systemd waits for the flush.
    pub fn stopping(&self) -> Result<(), NotifyError> {
        self.notify("STOPPING=1")
    }

    /// `EXTEND_TIMEOUT_USEC=...`: the stop (or start) needs up to `by` more, e.g. while a
    /// large final flush of the store runs after SIGTERM.
    pub fn extend_timeout(&self, by: Duration) -> Result<(), NotifyError> {
        self.notify(&format!("EXTEND_TIMEOUT_USEC={}", by.as_micros()))
    }

    /// Sends `WATCHDOG=1` every [`Notifier::watchdog_interval`] until `shutdown` completes;
    /// returns at once when systemd asked for no watchdog. A failed send is logged, never
    /// fatal: systemd restarts the agent if keep-alives stop arriving, which is the point.
    pub async fn run_watchdog(&self, shutdown: impl Future<Output = ()>) {
        let Some(period) = self.watchdog else {
            return;
        };
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = ticks.tick() => {
                    if let Err(error) = self.watchdog() {
                        tracing::warn!(%error, "Watchdog keep-alive not sent.");
                    }
                }
            }
        }
    }
}

fn parse_address(raw: &OsStr) -> Result<SocketAddr, NotifyError> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = raw.as_bytes();
    let bad = || NotifyError::BadAddress(raw.to_string_lossy().into_owned());
    match bytes.first() {
        Some(b'@') => abstract_address(&bytes[1..]).map_err(|_| bad()),
        Some(b'/') => SocketAddr::from_pathname(std::path::Path::new(raw)).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_address(name: &[u8]) -> io::Result<SocketAddr> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_address(_name: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unset_socket_makes_every_call_a_no_op() {
        let n = Notifier::from_vars(None, Some("1000000"), None).unwrap();
        assert!(!n.is_enabled());
        assert!(n.ready().is_ok() && n.stopping().is_ok());
        assert_eq!(n.watchdog_interval(), None);
    }

    #[test]
    fn a_relative_socket_path_is_refused() {
        let e = Notifier::from_vars(Some(OsStr::new("run/notify")), None, None).unwrap_err();
        assert!(matches!(e, NotifyError::BadAddress(_)));
    }

    #[test]
    fn watchdog_is_half_of_watchdog_usec_and_only_for_our_pid() {
        let sock = Some(OsStr::new("/run/systemd/notify"));
        let n = Notifier::from_vars(sock, Some("30000000"), None).unwrap();
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(15)));
        let me = std::process::id().to_string();
        let n = Notifier::from_vars(sock, Some("30000000"), Some(&me)).unwrap();
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(15)));
        let other = (std::process::id() + 1).to_string();
        let n = Notifier::from_vars(sock, Some("30000000"), Some(&other)).unwrap();
        assert_eq!(n.watchdog_interval(), None);
    }
}
