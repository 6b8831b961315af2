//! I2C buses: opening a Linux i2c-dev adapter (with bounded retries), and in [`sim`] the
//! pieces the register-level simulators share (a simulated clock with its `DelayNs`, bus
//! faults, the inversion of a compensation). [`open_bus`] also reaches simulated devices
//! served by another process over a [`bridge`] socket.
//!
//! Invariants: opening never panics and never retries forever; every failure names the
//! path it was about. Retries sleep only through the [`Sleeper`] seam, so tests run
//! without sleeping. The real bus cannot be exercised on the build machines (no
//! i2c-stub module), so only its open and retry paths are tested here.

pub mod bridge;
pub mod sim;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use linux_embedded_hal::I2cdev;

/// Why an i2c-dev path could not be opened, in the terms a flight engineer acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenFailure {
    /// No such device node: wrong bus number, or the i2c-dev module is not loaded.
    NotFound,
    /// The agent's user may not open it (not in the `i2c` group, or a udev rule is missing).
    PermissionDenied,
    /// The path exists but is not an I2C adapter (the I2C_SLAVE ioctl is refused).
    NotAnI2cAdapter,
    /// Anything else the kernel reported.
    Other,
}

/// An i2c-dev path that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open I2C bus {}: {source}", path.display())]
pub struct OpenError {
    /// The device node that was tried.
    pub path: PathBuf,
    /// What the kernel said.
    #[source]
    pub source: io::Error,
}

impl OpenError {
    /// Classifies the failure (see [`OpenFailure`]).
    pub fn failure(&self) -> OpenFailure {
        if self.source.kind() == io::ErrorKind::NotFound {
            return OpenFailure::NotFound;
        }
        if self.source.kind() == io::ErrorKind::PermissionDenied {
            return OpenFailure::PermissionDenied;
        }
        if self.source.raw_os_error() == Some(libc::ENOTTY) {
            return OpenFailure::NotAnI2cAdapter;
        }
        OpenFailure::Other
    }
}

/// All attempts of [`open_with_retry`] failed.
#[derive(Debug, thiserror::Error)]
#[error("gave up on I2C bus {} after {attempts} attempts: {last}", last.path.display())]
pub struct RetryError {
    /// How many times opening was tried.
    pub attempts: u32,
    /// The failure of the last attempt.
    #[source]
    pub last: OpenError,
}

/// Opens the i2c-dev adapter at `path` (`/dev/i2c-1`).
///
/// linux-embedded-hal issues the `I2C_SLAVE` ioctl while opening, so a path that is not
/// an adapter (a regular file, `/dev/null`) fails here with
/// [`OpenFailure::NotAnI2cAdapter`] rather than at the first transfer.
pub fn open(path: impl AsRef<Path>) -> Result<I2cdev, OpenError> {
    let path = path.as_ref();
    I2cdev::new(path).map_err(|e| OpenError {
        path: path.to_path_buf(),
        source: io::Error::from(e),
    })
}

/// A bus the agent reads sensors on: a Linux i2c-dev adapter, or the [`bridge`] to
/// simulated devices in another process.
pub enum Bus {
    /// An i2c-dev adapter (`/dev/i2c-1`).
    Adapter(I2cdev),
    /// A Unix socket served by [`bridge::I2cBridge`].
    Bridge(bridge::BridgeBus),
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bus::Adapter(_) => f.write_str("Bus::Adapter"),
            Bus::Bridge(bus) => f.debug_tuple("Bus::Bridge").field(bus).finish(),
        }
    }
}

/// An error of either kind of [`Bus`].
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// From the i2c-dev adapter.
    #[error(transparent)]
    Adapter(#[from] linux_embedded_hal::I2CError),
    /// From the bridge.
    #[error(transparent)]
    Bridge(#[from] bridge::BridgeError),
}

impl embedded_hal::i2c::Error for BusError {
    fn kind(&self) -> embedded_hal::i2c::ErrorKind {
        match self {
            BusError::Adapter(e) => e.kind(),
            BusError::Bridge(e) => e.kind(),
        }
    }
}

impl embedded_hal::i2c::ErrorType for Bus {
    type Error = BusError;
}

impl embedded_hal::i2c::I2c for Bus {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [embedded_hal::i2c::Operation<'_>],
    ) -> Result<(), Self::Error> {
        match self {
            Bus::Adapter(bus) => Ok(bus.transaction(address, operations)?),
            Bus::Bridge(bus) => Ok(bus.transaction(address, operations)?),
        }
    }
}

/// Opens the bus at `path`: a Unix socket is a [`bridge`] to simulated devices, anything
/// else is opened as an i2c-dev adapter with [`open`].
pub fn open_bus(path: impl AsRef<Path>) -> Result<Bus, OpenError> {
    use std::os::unix::fs::FileTypeExt;
    let path = path.as_ref();
    let is_socket = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket());
    if is_socket {
        return bridge::BridgeBus::connect(path)
            .map(Bus::Bridge)
            .map_err(|source| OpenError {
                path: path.to_path_buf(),
                source,
            });
    }
    open(path).map(Bus::Adapter)
}

/// How [`open_with_retry`] retries: a bounded number of attempts with exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Total attempts, including the first (at least one is always made).
    pub attempts: u32,
    /// Wait after the first failure.
    pub initial_backoff: Duration,
    /// Upper bound of any single wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Five attempts over about three seconds: long enough for a udev rule or a
    /// module load at boot, short enough that a wrong bus number is reported promptly.
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// A policy with `attempts` attempts and the default backoff.
    pub fn with_attempts(attempts: u32) -> Self {
        RetryPolicy {
            attempts,
            ..RetryPolicy::default()
        }
    }

    /// The wait after failed attempt number `failed` (1-based): doubling, capped.
    pub fn backoff(&self, failed: u32) -> Duration {
        let factor = 1u32
            .checked_shl(failed.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_backoff
            .checked_mul(factor)
            .map_or(self.max_backoff, |d| d.min(self.max_backoff))
    }
}

/// The seam through which retries wait, so tests can record waits instead of sleeping.
pub trait Sleeper {
    /// Waits for `duration`.
    fn sleep(&mut self, duration: Duration);
}

/// Sleeps the calling thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadSleeper;

impl Sleeper for ThreadSleeper {
    fn sleep(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// Opens `path` like [`open`], retrying per `policy`; waits block the calling thread
/// (from async code, call it in a blocking task).
pub fn open_with_retry(path: impl AsRef<Path>, policy: &RetryPolicy) -> Result<I2cdev, RetryError> {
    open_with_retry_using(path, policy, &mut ThreadSleeper)
}

/// [`open_with_retry`] waiting through `sleeper` (tests record the waits instead).
pub fn open_with_retry_using(
    path: impl AsRef<Path>,
    policy: &RetryPolicy,
    sleeper: &mut impl Sleeper,
) -> Result<I2cdev, RetryError> {
    let path = path.as_ref();
    retry(policy, sleeper, || open(path))
}

/// The retry loop of [`open_with_retry`], over any opener (tests count its calls).
pub fn retry<T>(
    policy: &RetryPolicy,
    sleeper: &mut impl Sleeper,
    mut attempt: impl FnMut() -> Result<T, OpenError>,
) -> Result<T, RetryError> {
    let attempts = policy.attempts.max(1);
    let mut made = 0;
    loop {
        made += 1;
        match attempt() {
            Ok(bus) => return Ok(bus),
            Err(last) if made >= attempts => {
                return Err(RetryError {
                    attempts: made,
                    last,
                });
            }
            Err(e) => {
                let wait = policy.backoff(made);
                tracing::warn!(path = %e.path.display(), attempt = made, of = attempts,
                    wait_ms = wait.as_millis() as u64, error = %e.source,
                    "Opening the I2C bus failed; retrying.");
                sleeper.sleep(wait);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default)]
    struct RecordingSleeper(Vec<Duration>);

    impl Sleeper for RecordingSleeper {
        fn sleep(&mut self, duration: Duration) {
            self.0.push(duration);
        }
    }

    #[test]
    fn nonexistent_bus_fails_after_exactly_the_configured_attempts() {
        let policy = RetryPolicy::with_attempts(4);
        let mut sleeper = RecordingSleeper::default();
        let path = "/dev/i2c-aloft-does-not-exist-97";
        let err = open_with_retry_using(path, &policy, &mut sleeper)
            .map(|_| ())
            .unwrap_err();
        assert_eq!(err.attempts, 4);
        assert_eq!(err.last.failure(), OpenFailure::NotFound);
        assert_eq!(err.last.path, Path::new(path));
        // A wait between attempts, none after the last one.
        assert_eq!(
            sleeper.0,
            [
                Duration::from_millis(200),
                Duration::from_millis(400),
                Duration::from_millis(800)
            ]
        );
        assert!(err.to_string().contains(path), "{err}");
    }

    #[test]
    fn retry_calls_the_opener_exactly_attempts_times_and_stops_at_first_success() {
        let policy = RetryPolicy::with_attempts(3);
        let mut calls = 0;
        let failing = |calls: &mut u32| {
            *calls += 1;
            Err::<u32, _>(OpenError {
                path: PathBuf::from("/dev/i2c-9"),
                source: io::Error::from(io::ErrorKind::NotFound),
            })
        };
        let err = retry(&policy, &mut RecordingSleeper::default(), || {
            failing(&mut calls)
        })
        .unwrap_err();
        assert_eq!((calls, err.attempts), (3, 3));

        let mut calls = 0;
        let got = retry(&policy, &mut RecordingSleeper::default(), || {
            calls += 1;
            if calls < 2 {
                failing(&mut 0)
            } else {
                Ok(calls)
            }
        });
        assert_eq!(got.ok(), Some(2));
    }

    #[test]
    fn zero_attempts_still_tries_once() {
        let mut calls = 0;
        let policy = RetryPolicy::with_attempts(0);
        let err = retry(&policy, &mut RecordingSleeper::default(), || {
            calls += 1;
            Err::<(), _>(OpenError {
                path: PathBuf::from("/dev/i2c-9"),
                source: io::Error::from(io::ErrorKind::NotFound),
            })
        })
        .unwrap_err();
        assert_eq!((calls, err.attempts), (1, 1));
    }

    #[test]
    fn single_attempt_with_the_thread_sleeper_does_not_sleep() {
        let err = open_with_retry("/dev/i2c-aloft-missing", &RetryPolicy::with_attempts(1))
            .map(|_| ())
            .unwrap_err();
        assert_eq!(err.attempts, 1);
        assert_eq!(err.last.failure(), OpenFailure::NotFound);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff(1), Duration::from_millis(200));
        assert_eq!(policy.backoff(4), Duration::from_millis(1600));
        assert_eq!(policy.backoff(5), Duration::from_secs(2));
        assert_eq!(policy.backoff(200), Duration::from_secs(2));
    }

    #[test]
    fn dev_null_is_refused_at_open_as_not_an_adapter() {
        // Observed: the I2C_SLAVE ioctl linux-embedded-hal issues while opening fails
        // with ENOTTY, so the error comes at open, not at the first transfer.
        let err = open("/dev/null").map(|_| ()).unwrap_err();
        assert_eq!(err.failure(), OpenFailure::NotAnI2cAdapter, "{err}");
        assert!(err.to_string().contains("/dev/null"), "{err}");
    }

    #[test]
    fn regular_file_is_not_an_adapter_either() {
        let file = tempfile::NamedTempFile::new().unwrap();
        // Observed like /dev/null: the ioctl is refused with ENOTTY while opening.
        let err = open(file.path()).map(|_| ()).unwrap_err();
        assert_eq!(err.failure(), OpenFailure::NotAnI2cAdapter, "{err}");
    }
}
