//! A relay between a serial device's terminal and a new pseudo-terminal that a driver opens
//! instead, which can insert bytes into either direction: line noise on the wire, or a
//! request the driver itself would never send.
//!
//! [`SerialRelay::start`] takes the device side already open (e.g.
//! `Qemu::open_serial()`), makes a pty and copies bytes both ways on a thread. It keeps the
//! pty's slave side open itself for its whole life, so that a driver that closes and reopens
//! the path (a restart) finds what arrived meanwhile waiting, as on a real UART with a
//! buffer, and the master side never reports a hang-up. [`SerialRelay::inject`] queues
//! bytes that go out in the chosen direction before the next bytes relayed that way.
//!
//! Invariants: every byte read on one side is written to the other, in order, injected
//! bytes between them; [`SerialRelay::counters`] say how many of each; the thread stops and
//! is joined when the relay drops.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::pty::PtyMaster;

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The pseudo-terminal could not be made or configured.
    #[error("cannot make the relay's pseudo-terminal: {0}")]
    Pty(#[source] Errno),
    /// The thread could not be started.
    #[error("cannot start the relay's thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// Which way injected bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toward {
    /// To the driver that opened [`SerialRelay::path`] (what the device sends).
    Host,
    /// To the device (what the driver sends).
    Device,
}

/// Bytes relayed and injected so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayCounters {
    /// From the device to the host.
    pub to_host: u64,
    /// From the host to the device.
    pub to_device: u64,
    /// Injected toward the host.
    pub injected_to_host: u64,
    /// Injected toward the device.
    pub injected_to_device: u64,
}

#[derive(Debug, Default)]
struct Shared {
    to_host: Vec<u8>,
    to_device: Vec<u8>,
    counters: RelayCounters,
}

/// A running relay. Dropping it stops the thread.
#[derive(Debug)]
pub struct SerialRelay {
    path: PathBuf,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SerialRelay {
    /// Relays between `device` (a terminal, open for reading and writing) and a new pty.
    pub fn start(device: File) -> Result<SerialRelay, RelayError> {
        use nix::sys::termios;
        let master =
            nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY).map_err(RelayError::Pty)?;
        nix::pty::grantpt(&master).map_err(RelayError::Pty)?;
        nix::pty::unlockpt(&master).map_err(RelayError::Pty)?;
        let path = PathBuf::from(nix::pty::ptsname_r(&master).map_err(RelayError::Pty)?);
        let slave: OwnedFd = nix::fcntl::open(
            &path,
            OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(RelayError::Pty)?;
        let mut settings = termios::tcgetattr(&slave).map_err(RelayError::Pty)?;
        termios::cfmakeraw(&mut settings);
        termios::tcsetattr(&slave, termios::SetArg::TCSANOW, &settings).map_err(RelayError::Pty)?;
        fcntl(master.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(RelayError::Pty)?;
        fcntl(device.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(RelayError::Pty)?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            master,
            _slave: slave,
            device,
            shared: Arc::clone(&shared),
            stop: Arc::clone(&stop),
        };
        let thread = std::thread::Builder::new()
            .name("serial-relay".into())
            .spawn(move || worker.run())
            .map_err(RelayError::Spawn)?;
        Ok(SerialRelay {
            path,
            shared,
            stop,
            thread: Some(thread),
        })
    }

    /// The pty a driver opens instead of the device.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues `bytes` to go `toward` one side before the next relayed bytes.
    pub fn inject(&self, toward: Toward, bytes: &[u8]) {
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        match toward {
            Toward::Host => shared.to_host.extend_from_slice(bytes),
            Toward::Device => shared.to_device.extend_from_slice(bytes),
        }
    }

    /// Bytes relayed and injected so far.
    pub fn counters(&self) -> RelayCounters {
        self.shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .counters
    }
}

impl Drop for SerialRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Worker {
    master: PtyMaster,
    // Held so the master never sees a hang-up while the driver has the path closed.
    _slave: OwnedFd,
    device: File,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
}

impl Worker {
    fn run(mut self) {
        let mut buf = [0u8; 4096];
        while !self.stop.load(Ordering::SeqCst) {
            let (mut from_device, mut from_host) = (false, false);
            {
                let mut fds = [
                    PollFd::new(self.device.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.master.as_fd(), PollFlags::POLLIN),
                ];
                if nix::poll::poll(&mut fds, PollTimeout::from(20u16)).is_ok() {
                    let ready = |fd: &PollFd<'_>| {
                        fd.revents()
                            .is_some_and(|r| r.intersects(PollFlags::POLLIN))
                    };
                    from_device = ready(&fds[0]);
                    from_host = ready(&fds[1]);
                }
            }
            self.flush_injected();
            if from_device
                && let Ok(n) = self.device.read(&mut buf)
                && n > 0
            {
                self.count(|c| c.to_host += n as u64);
                write_all_nonblocking(&mut self.master, &buf[..n]);
            }
            if from_host
                && let Ok(n) = self.master.read(&mut buf)
                && n > 0
            {
                self.count(|c| c.to_device += n as u64);
                write_all_nonblocking(&mut self.device, &buf[..n]);
            }
        }
    }

    /// Counted before it is written, so that whoever has read a byte sees it counted.
    fn flush_injected(&mut self) {
        let (to_host, to_device) = {
            let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
            (
                std::mem::take(&mut shared.to_host),
                std::mem::take(&mut shared.to_device),
            )
        };
        if !to_host.is_empty() {
            self.count(|c| c.injected_to_host += to_host.len() as u64);
            write_all_nonblocking(&mut self.master, &to_host);
        }
        if !to_device.is_empty() {
            self.count(|c| c.injected_to_device += to_device.len() as u64);
            write_all_nonblocking(&mut self.device, &to_device);
        }
    }

    fn count(&self, add: impl FnOnce(&mut RelayCounters)) {
        add(&mut self
            .shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .counters);
    }
}

/// Writes all of `bytes` to a non-blocking descriptor, waiting for room when it is full.
fn write_all_nonblocking(out: &mut (impl Write + AsFd), mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match out.write(bytes) {
            Ok(0) => return,
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let mut fds = [PollFd::new(out.as_fd(), PollFlags::POLLOUT)];
                let _ = nix::poll::poll(&mut fds, PollTimeout::from(100u16));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn pty_pair() -> (PtyMaster, PathBuf) {
        let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY).unwrap();
        nix::pty::grantpt(&master).unwrap();
        nix::pty::unlockpt(&master).unwrap();
        let path = PathBuf::from(nix::pty::ptsname_r(&master).unwrap());
        (master, path)
    }

    fn open_raw(path: &Path) -> File {
        use nix::sys::termios;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let mut settings = termios::tcgetattr(&file).unwrap();
        termios::cfmakeraw(&mut settings);
        termios::tcsetattr(&file, termios::SetArg::TCSANOW, &settings).unwrap();
        file
    }

    fn read_exactly(from: &mut impl Read, n: usize) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut out = Vec::new();
        let mut buf = [0u8; 256];
        while out.len() < n {
            assert!(Instant::now() < deadline, "only {out:?}");
            if let Ok(k) = from.read(&mut buf) {
                out.extend_from_slice(&buf[..k]);
            }
        }
        out
    }

    #[test]
    fn bytes_pass_both_ways_with_injected_ones_between() {
        #![allow(clippy::unwrap_used)]
        // The "device": a pty whose master side the test plays.
        let (mut device, device_path) = pty_pair();
        let relay = SerialRelay::start(open_raw(&device_path)).unwrap();
        let mut host = open_raw(relay.path());
        device.write_all(b"abc").unwrap();
        assert_eq!(read_exactly(&mut host, 3), b"abc");
        relay.inject(Toward::Host, b"!!");
        device.write_all(b"def").unwrap();
        assert_eq!(read_exactly(&mut host, 5), b"!!def");
        host.write_all(b"xyz").unwrap();
        assert_eq!(read_exactly(&mut device, 3), b"xyz");
        relay.inject(Toward::Device, b"?");
        assert_eq!(read_exactly(&mut device, 1), b"?");
        let c = relay.counters();
        assert_eq!((c.to_host, c.injected_to_host), (6, 2));
        assert_eq!((c.to_device, c.injected_to_device), (3, 1));
    }
}
