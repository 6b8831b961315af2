//! A simulated serial device behind a pseudo-terminal, with faults injectable at run time.
//!
//! [`SimulatedPort::spawn`] opens a pty (raw mode), and a thread runs one [`SerialDevice`]
//! on its master side: it advances simulated time (real time times a speed factor, plus a
//! scenario time offset), ticks the device with [`Scenario::state_at`], transmits what the
//! device emits paced at baud/10 bytes per second, and hands what the host writes to
//! [`SerialDevice::receive`]. A driver opens the slave side by path ([`SimulatedPort::path`],
//! or the stable symlink it keeps, like /dev/serial/by-id/...) exactly like a real port.
//!
//! The line behaves like a real UART: it transmits whether or not anyone listens. While no
//! host has the slave open (Linux then reports POLLHUP on the master, and reads there give
//! EIO), transmitted bytes are lost instead of piling up in the pty, so a host that opens
//! the port late starts mid-stream, as with a real device.
//!
//! Faults ([`Fault`]) arrive through a [`FaultInjector`]: garbage bytes, a corrupted or a
//! truncated next line, a stall, and a vanish that closes the pty (the host's reads hit
//! end-of-file/EIO, the symlink disappears as udev would remove it) and brings up a new pty
//! after the duration, the symlink moved to it.
//!
//! Invariants: the thread is joined and the symlink removed by [`SimulatedPort::stop`] or
//! on drop; [`PortCounters`] account for every byte the device emitted (written, unheard,
//! overrun or lost to a fault) and every fault applied.

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags};
use nix::pty::PtyMaster;

use super::{SerialDevice, poll_timeout, standard_baud};
use crate::flight::{Noise, Scenario};

/// Errors of the harness.
#[derive(Debug, thiserror::Error)]
pub enum PtyError {
    /// A pseudo-terminal could not be created or configured.
    #[error("cannot create a pseudo-terminal: {0}")]
    Pty(#[source] Errno),
    /// The stable symlink could not be made to point at the pty.
    #[error("cannot point the symlink {link} at the pty: {source}")]
    Symlink {
        /// Where the link was to be.
        link: PathBuf,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
    /// The harness thread could not be started.
    #[error("cannot start the simulated port's thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// The harness has stopped; no more faults can be injected.
    #[error("the simulated port has stopped")]
    Stopped,
    /// The device panicked inside the harness thread.
    #[error("the simulated device panicked")]
    DevicePanicked,
}

/// A fault to inject into the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// These bytes go out after what is already queued (line noise, a stray reset banner).
    Garbage(Vec<u8>),
    /// One byte in the middle of the next line that starts being transmitted is flipped, so
    /// its checksum fails. Waits for the next complete line (binary output has none).
    CorruptNextLine,
    /// The second half of the next line's content is cut off; its line end stays.
    TruncateNextLine,
    /// The line goes silent for this long; what the device emits meanwhile is lost (a
    /// wedged adapter), so afterwards the host sees current data, not a backlog.
    Stall(Duration),
    /// The device disappears for this long (an unplugged USB adapter): the pty is closed
    /// and the symlink removed; then a new pty appears and the symlink points at it.
    Vanish(Duration),
}

impl Fault {
    /// `len` random bytes from a seeded generator: reproducible noise.
    pub fn random_garbage(noise: &mut Noise, len: usize) -> Fault {
        Fault::Garbage((0..len).map(|_| noise.next_u64() as u8).collect())
    }
}

/// Settings of a [`SimulatedPort`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PortOptions {
    /// Simulated seconds per real second (1.0: real time).
    pub speed: f64,
    /// Scenario time at which the port starts, s.
    pub scenario_offset_s: f64,
    /// Where to keep a stable symlink to the current pty (like /dev/serial/by-id/...);
    /// its directory must exist.
    pub symlink: Option<PathBuf>,
    /// How often the device is ticked and the line serviced.
    pub tick: Duration,
    /// Bytes queued for the line beyond which new output is dropped as overrun.
    pub max_backlog: usize,
}

impl Default for PortOptions {
    fn default() -> Self {
        PortOptions {
            speed: 1.0,
            scenario_offset_s: 0.0,
            symlink: None,
            tick: Duration::from_millis(10),
            max_backlog: 64 * 1024,
        }
    }
}

impl PortOptions {
    /// Real time, starting at the scenario's beginning, without a symlink.
    pub fn new() -> Self {
        Self::default()
    }

    /// With a simulated-time speed factor.
    pub fn speed(mut self, speed: f64) -> Self {
        self.speed = speed;
        self
    }

    /// Starting at scenario time `offset_s`.
    pub fn scenario_offset_s(mut self, offset_s: f64) -> Self {
        self.scenario_offset_s = offset_s;
        self
    }

    /// Ticking the device every `tick`.
    pub fn tick(mut self, tick: Duration) -> Self {
        self.tick = tick;
        self
    }

    /// Dropping new output beyond `bytes` queued for the line.
    pub fn max_backlog(mut self, bytes: usize) -> Self {
        self.max_backlog = bytes;
        self
    }

    /// With a stable symlink at `link`.
    pub fn symlink(mut self, link: impl Into<PathBuf>) -> Self {
        self.symlink = Some(link.into());
        self
    }
}

/// What the harness has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Device ticks.
    pub ticks: u64,
    /// Bytes the device emitted (from ticks and answers to the host).
    pub bytes_emitted: u64,
    /// Bytes written to the pty while a host had it open.
    pub bytes_written: u64,
    /// Bytes transmitted while no host had the port open: lost, as on a real line.
    pub bytes_unheard: u64,
    /// Bytes dropped because the backlog was full (device faster than its line).
    pub bytes_overrun: u64,
    /// Bytes lost to a stall or a vanish.
    pub bytes_lost_to_faults: u64,
    /// Bytes the host wrote, handed to the device.
    pub bytes_received: u64,
    /// Nanoseconds the line was live (not stalled or vanished), by the harness's clock.
    pub line_live_ns: u64,
    /// Most bytes an idle line saves up to send at once. Bytes transmitted never exceed
    /// `line_live_ns` times baud/10 per second: the pacing's own accounting.
    pub max_burst_bytes: u64,
    /// Garbage bytes injected.
    pub garbage_bytes: u64,
    /// Lines corrupted.
    pub lines_corrupted: u64,
    /// Lines truncated.
    pub lines_truncated: u64,
    /// Bytes cut out of truncated lines.
    pub bytes_truncated: u64,
    /// Bytes queued for the line right now.
    pub backlog_bytes: u64,
    /// Stalls begun.
    pub stalls: u64,
    /// Vanishes begun.
    pub vanishes: u64,
    /// Ptys brought up after a vanish.
    pub reappearances: u64,
    /// Failed attempts to bring up a pty again (retried every tick).
    pub pty_failures: u64,
}

impl PortCounters {
    /// Bytes that went over the line, heard or not.
    pub fn bytes_transmitted(&self) -> u64 {
        self.bytes_written + self.bytes_unheard
    }

    /// Whether every byte is accounted for: what the device emitted plus the injected
    /// garbage equals what was transmitted, overrun, lost to faults, cut by truncation or
    /// is still queued.
    pub fn balances(&self) -> bool {
        self.bytes_emitted + self.garbage_bytes
            == self.bytes_transmitted()
                + self.bytes_overrun
                + self.bytes_lost_to_faults
                + self.bytes_truncated
                + self.backlog_bytes
    }
}

enum Control {
    Fault(Fault),
    Stop,
}

#[derive(Debug, Default)]
struct Shared {
    path: Mutex<Option<PathBuf>>,
    counters: Mutex<PortCounters>,
    changed: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data behind the lock: a panic elsewhere leaves it usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Injects faults into a running [`SimulatedPort`]; cheap to clone and send to a thread.
#[derive(Debug, Clone)]
pub struct FaultInjector {
    control: Sender<Control>,
    thread: std::thread::Thread,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Control::Fault(fault) => f.debug_tuple("Fault").field(fault).finish(),
            Control::Stop => f.write_str("Stop"),
        }
    }
}

impl FaultInjector {
    /// Queues `fault`; the harness applies it at its next tick.
    pub fn inject(&self, fault: Fault) -> Result<(), PtyError> {
        self.control
            .send(Control::Fault(fault))
            .map_err(|_| PtyError::Stopped)?;
        self.thread.unpark();
        Ok(())
    }
}

/// One [`SerialDevice`] running behind a pseudo-terminal (see the module docs).
#[derive(Debug)]
pub struct SimulatedPort {
    shared: Arc<Shared>,
    injector: FaultInjector,
    thread: Option<JoinHandle<()>>,
    symlink: Option<PathBuf>,
}

impl SimulatedPort {
    /// Starts `device` behind a new pty, driven by `scenario`.
    pub fn spawn(
        device: impl SerialDevice + 'static,
        scenario: Arc<Scenario>,
        options: PortOptions,
    ) -> Result<Self, PtyError> {
        let baud = device.baud();
        let pty = Pty::open(baud)?;
        if let Some(link) = &options.symlink {
            point_symlink(link, &pty.path)?;
        }
        let shared = Arc::new(Shared::default());
        *lock(&shared.path) = Some(pty.path.clone());
        let (control, commands) = mpsc::channel();
        let bytes_per_s = f64::from(baud) / 10.0;
        // Two ticks' worth: enough to keep the line busy between ticks, small enough that
        // nothing leaves faster than the baud rate allows.
        let burst = (bytes_per_s * options.tick.as_secs_f64() * 2.0).max(1.0);
        let worker = Worker {
            device: Box::new(device),
            scenario,
            commands,
            shared: Arc::clone(&shared),
            pty: Some(pty),
            backlog: VecDeque::new(),
            last_sent_newline: true,
            corrupt_armed: 0,
            truncate_armed: 0,
            fault_floor: None,
            silent_until: None,
            vanished_until: None,
            credit: 0.0,
            bytes_per_s,
            burst,
            counters: PortCounters {
                max_burst_bytes: burst as u64,
                ..PortCounters::default()
            },
            options: options.clone(),
            baud,
        };
        let thread = std::thread::Builder::new()
            .name("simulated-serial".into())
            .spawn(move || worker.run())
            .map_err(PtyError::Spawn)?;
        let injector = FaultInjector {
            control,
            thread: thread.thread().clone(),
        };
        Ok(SimulatedPort {
            shared,
            injector,
            thread: Some(thread),
            symlink: options.symlink,
        })
    }

    /// The current pty's slave path (/dev/pts/N); `None` while the device has vanished.
    pub fn path(&self) -> Option<PathBuf> {
        lock(&self.shared.path).clone()
    }

    /// The stable symlink, if one was asked for.
    pub fn symlink(&self) -> Option<&Path> {
        self.symlink.as_deref()
    }

    /// A handle to inject faults from anywhere.
    pub fn injector(&self) -> FaultInjector {
        self.injector.clone()
    }

    /// Queues `fault` (shorthand for `injector().inject(fault)`).
    pub fn inject(&self, fault: Fault) -> Result<(), PtyError> {
        self.injector.inject(fault)
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> PortCounters {
        *lock(&self.shared.counters)
    }

    /// Waits until `done` holds for the counters, or `timeout` passes. Returns the
    /// counters that satisfied it, `None` on timeout.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&PortCounters) -> bool,
    ) -> Option<PortCounters> {
        let deadline = Instant::now() + timeout;
        let mut counters = lock(&self.shared.counters);
        loop {
            if done(&counters) {
                return Some(*counters);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.thread.as_ref().is_none_or(JoinHandle::is_finished) {
                return None;
            }
            counters = self
                .shared
                .changed
                .wait_timeout(counters, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Stops the thread, closes the pty and removes the symlink. Returns the final counters.
    pub fn stop(mut self) -> Result<PortCounters, PtyError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<PortCounters, PtyError> {
        let Some(thread) = self.thread.take() else {
            return Ok(self.counters());
        };
        // The worker may already be gone (a device panic); joining tells.
        let _ = self.injector.control.send(Control::Stop);
        thread.thread().unpark();
        let joined = thread.join();
        if let Some(link) = &self.symlink {
            remove_symlink(link);
        }
        *lock(&self.shared.path) = None;
        joined.map_err(|_| PtyError::DevicePanicked)?;
        Ok(self.counters())
    }
}

impl Drop for SimulatedPort {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!(error = %e, "Simulated port stopped with an error.");
        }
    }
}

/// The master side of a pty and the slave's path.
struct Pty {
    master: PtyMaster,
    path: PathBuf,
}

impl Pty {
    fn open(baud: u32) -> Result<Pty, PtyError> {
        use nix::sys::termios;
        let master =
            nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY).map_err(PtyError::Pty)?;
        nix::pty::grantpt(&master).map_err(PtyError::Pty)?;
        nix::pty::unlockpt(&master).map_err(PtyError::Pty)?;
        let path = PathBuf::from(nix::pty::ptsname_r(&master).map_err(PtyError::Pty)?);
        // Open the slave once to make it raw (no echo that would come back as host bytes,
        // no CR/LF translation) and close it: from then on the master sees POLLHUP until a
        // host opens the slave, which is how the harness knows nobody is listening.
        {
            let slave: OwnedFd = nix::fcntl::open(
                &path,
                OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(PtyError::Pty)?;
            let mut settings = termios::tcgetattr(&slave).map_err(PtyError::Pty)?;
            termios::cfmakeraw(&mut settings);
            if let Some(rate) = standard_baud(baud) {
                termios::cfsetspeed(&mut settings, rate).map_err(PtyError::Pty)?;
            }
            termios::tcsetattr(&slave, termios::SetArg::TCSANOW, &settings)
                .map_err(PtyError::Pty)?;
        }
        fcntl(master.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(PtyError::Pty)?;
        fcntl(master.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(PtyError::Pty)?;
        Ok(Pty { master, path })
    }

    /// Whether a host has the slave open.
    fn host_present(&self) -> bool {
        let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLOUT)];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO) {
            Ok(_) => !fds[0]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLHUP)),
            Err(_) => false,
        }
    }
}

/// Points `link` at `target` atomically (a new link renamed over the old one).
fn point_symlink(link: &Path, target: &Path) -> Result<(), PtyError> {
    let error = |source| PtyError::Symlink {
        link: link.to_path_buf(),
        source,
    };
    let mut temporary = link.as_os_str().to_owned();
    temporary.push(format!(".new-{}", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let _ = std::fs::remove_file(&temporary);
    std::os::unix::fs::symlink(target, &temporary).map_err(error)?;
    std::fs::rename(&temporary, link).map_err(error)
}

fn remove_symlink(link: &Path) {
    if let Err(e) = std::fs::remove_file(link)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(link = %link.display(), error = %e, "Cannot remove the simulated port's symlink.");
    }
}

/// The harness thread's state.
struct Worker {
    device: Box<dyn SerialDevice>,
    scenario: Arc<Scenario>,
    commands: Receiver<Control>,
    shared: Arc<Shared>,
    /// `None` while vanished.
    pty: Option<Pty>,
    /// Bytes waiting for the line.
    backlog: VecDeque<u8>,
    /// Whether the last byte that went out ended a line (where "the next line" starts).
    last_sent_newline: bool,
    corrupt_armed: u32,
    truncate_armed: u32,
    /// Where the first line not yet faulted starts in the backlog, once one was faulted.
    fault_floor: Option<usize>,
    silent_until: Option<Instant>,
    vanished_until: Option<Instant>,
    /// Bytes the line may send now (fractional: the rate rarely divides a tick).
    credit: f64,
    bytes_per_s: f64,
    burst: f64,
    counters: PortCounters,
    options: PortOptions,
    baud: u32,
}

impl Worker {
    fn run(mut self) {
        let start = Instant::now();
        let mut last = start;
        let mut out = Vec::new();
        let mut host_bytes = [0u8; 4096];
        tracing::debug!(path = ?self.pty.as_ref().map(|p| p.path.clone()), baud = self.baud, "Simulated port started.");
        loop {
            loop {
                match self.commands.try_recv() {
                    Ok(Control::Fault(fault)) => self.apply(fault),
                    Ok(Control::Stop) | Err(TryRecvError::Disconnected) => {
                        self.publish();
                        tracing::debug!("Simulated port stopped.");
                        return;
                    }
                    Err(TryRecvError::Empty) => break,
                }
            }
            let now = Instant::now();
            let dt = now.saturating_duration_since(last);
            last = now;

            let sim_t = self.options.scenario_offset_s
                + now.saturating_duration_since(start).as_secs_f64() * self.options.speed;
            out.clear();
            self.device.tick(&self.scenario.state_at(sim_t), &mut out);
            self.counters.ticks += 1;
            if let Some(pty) = &self.pty {
                match nix::unistd::read(pty.master.as_fd(), &mut host_bytes) {
                    Ok(n) if n > 0 => {
                        let bytes = host_bytes.get(..n).unwrap_or(&[]);
                        self.counters.bytes_received += n as u64;
                        self.device.receive(bytes, &mut out);
                    }
                    // EIO: nobody has the slave open; EAGAIN: the host wrote nothing.
                    _ => {}
                }
            }
            self.counters.bytes_emitted += out.len() as u64;

            self.end_faults(now);
            if self.vanished_until.is_some() || self.silent_until.is_some() {
                self.counters.bytes_lost_to_faults += out.len() as u64;
            } else {
                self.enqueue(&out);
                self.apply_line_faults();
                self.counters.line_live_ns += dt.as_nanos().min(u128::from(u64::MAX)) as u64;
                self.credit += dt.as_secs_f64() * self.bytes_per_s;
                self.transmit();
                // An idle line saves up no more than a burst; a busy one loses no capacity
                // when this thread is scheduled late.
                if self.backlog.is_empty() {
                    self.credit = self.credit.min(self.burst);
                }
            }
            self.publish();
            self.sleep();
        }
    }

    fn apply(&mut self, fault: Fault) {
        tracing::debug!(?fault, "Injecting a fault into the simulated port.");
        match fault {
            Fault::Garbage(bytes) => {
                self.counters.garbage_bytes += bytes.len() as u64;
                if self.vanished_until.is_some() {
                    self.counters.bytes_lost_to_faults += bytes.len() as u64;
                } else {
                    self.backlog.extend(bytes);
                }
            }
            Fault::CorruptNextLine => self.corrupt_armed += 1,
            Fault::TruncateNextLine => self.truncate_armed += 1,
            Fault::Stall(duration) => {
                self.counters.stalls += 1;
                self.counters.bytes_lost_to_faults += self.backlog.len() as u64;
                self.backlog.clear();
                self.fault_floor = None;
                self.silent_until = Some(Instant::now() + duration);
            }
            Fault::Vanish(duration) => {
                self.counters.vanishes += 1;
                self.counters.bytes_lost_to_faults += self.backlog.len() as u64;
                self.backlog.clear();
                self.fault_floor = None;
                // Closing the master hangs up the host's slave fd: EOF or EIO on its reads.
                self.pty = None;
                *lock(&self.shared.path) = None;
                if let Some(link) = &self.options.symlink {
                    remove_symlink(link);
                }
                tracing::info!(?duration, "Simulated device vanished.");
                self.vanished_until = Some(Instant::now() + duration);
            }
        }
    }

    fn end_faults(&mut self, now: Instant) {
        if self.silent_until.is_some_and(|until| now >= until) {
            self.silent_until = None;
        }
        if self.vanished_until.is_some_and(|until| now >= until) {
            match self.reappear() {
                Ok(path) => {
                    tracing::info!(path = %path.display(), "Simulated device reappeared.");
                    self.counters.reappearances += 1;
                    self.vanished_until = None;
                    // A fresh line: nothing half-sent, no saved-up burst.
                    self.last_sent_newline = true;
                    self.credit = 0.0;
                }
                Err(e) => {
                    self.counters.pty_failures += 1;
                    tracing::warn!(error = %e, "Cannot bring the simulated device back yet.");
                }
            }
        }
    }

    fn reappear(&mut self) -> Result<PathBuf, PtyError> {
        let pty = Pty::open(self.baud)?;
        let path = pty.path.clone();
        // The path is published before the symlink moves, so whoever sees the link also
        // sees the path (tests rely on this order).
        *lock(&self.shared.path) = Some(path.clone());
        if let Some(link) = &self.options.symlink
            && let Err(e) = point_symlink(link, &pty.path)
        {
            *lock(&self.shared.path) = None;
            return Err(e);
        }
        self.pty = Some(pty);
        Ok(path)
    }

    fn enqueue(&mut self, out: &[u8]) {
        let room = self.options.max_backlog.saturating_sub(self.backlog.len());
        let (kept, dropped) = out.split_at(out.len().min(room));
        if !dropped.is_empty() && self.counters.bytes_overrun == 0 {
            tracing::warn!(
                baud = self.baud,
                "Simulated device emits faster than its line: overrun."
            );
        }
        self.counters.bytes_overrun += dropped.len() as u64;
        self.backlog.extend(kept);
    }

    /// Applies armed corruptions and truncations to the next complete lines in the backlog.
    fn apply_line_faults(&mut self) {
        while self.corrupt_armed > 0 || self.truncate_armed > 0 {
            let Some((start, content_end)) =
                next_line(&self.backlog, self.fault_floor, self.last_sent_newline)
            else {
                return;
            };
            let content = content_end - start;
            if self.corrupt_armed > 0 && content > 0 {
                let i = start + content / 2;
                if let Some(byte) = self.backlog.get_mut(i) {
                    *byte = flip(*byte);
                }
                self.corrupt_armed -= 1;
                self.counters.lines_corrupted += 1;
                // One fault per line: a following truncation waits for the line after.
                self.mark_consumed_through(start);
                continue;
            }
            if self.truncate_armed > 0 && content >= 2 {
                let cut = start + content / 2..content_end;
                self.counters.bytes_truncated += cut.len() as u64;
                self.backlog.drain(cut);
                self.truncate_armed -= 1;
                self.counters.lines_truncated += 1;
                self.mark_consumed_through(start);
                continue;
            }
            // An empty or one-byte line cannot show the fault: try the one after.
            self.mark_consumed_through(start);
        }
    }

    /// Makes [`next_line`] search past the line starting at `start` from now on.
    fn mark_consumed_through(&mut self, start: usize) {
        self.fault_floor = self
            .backlog
            .iter()
            .skip(start)
            .position(|&b| b == b'\n')
            .map(|offset| start + offset + 1);
    }

    fn transmit(&mut self) {
        let n = (self.credit.floor() as usize).min(self.backlog.len());
        if n == 0 {
            return;
        }
        let Some(pty) = &self.pty else { return };
        let sent = if pty.host_present() {
            let (front, back) = self.backlog.as_slices();
            let chunk = if front.is_empty() { back } else { front };
            let chunk = chunk.get(..n.min(chunk.len())).unwrap_or(&[]);
            match nix::unistd::write(pty.master.as_fd(), chunk) {
                Ok(written) => {
                    self.counters.bytes_written += written as u64;
                    written
                }
                // EAGAIN: the host is not reading and its buffer is full; EIO: it just
                // closed. Either way the bytes wait (and overrun if it lasts).
                Err(_) => 0,
            }
        } else {
            self.counters.bytes_unheard += n as u64;
            n
        };
        if sent > 0 {
            self.last_sent_newline = self.backlog.get(sent - 1) == Some(&b'\n');
            self.backlog.drain(..sent);
            self.fault_floor = self
                .fault_floor
                .and_then(|f| f.checked_sub(sent))
                .filter(|&f| f > 0);
            self.credit -= sent as f64;
        }
    }

    fn publish(&mut self) {
        self.counters.backlog_bytes = self.backlog.len() as u64;
        let mut counters = lock(&self.shared.counters);
        if *counters != self.counters {
            *counters = self.counters;
            self.shared.changed.notify_all();
        }
    }

    /// Waits for the next tick, waking early when the host writes or a fault arrives.
    fn sleep(&self) {
        let tick = self.options.tick;
        match &self.pty {
            // A host with the slave open: wait for its bytes too. POLLHUP (nobody there)
            // would wake poll at once, so then just park.
            Some(pty) if pty.host_present() => {
                let mut fds = [PollFd::new(pty.master.as_fd(), PollFlags::POLLIN)];
                let _ = nix::poll::poll(&mut fds, poll_timeout(tick));
            }
            _ => std::thread::park_timeout(tick),
        }
    }
}

/// The next line in `backlog` that has not started going out: from `floor` if given,
/// else from the front if the last byte sent ended a line, else after the first newline.
/// Returns where it starts and where its content ends (before `\r\n`), once it is
/// complete.
fn next_line(
    backlog: &VecDeque<u8>,
    floor: Option<usize>,
    at_line_start: bool,
) -> Option<(usize, usize)> {
    let start = match floor {
        Some(floor) => floor,
        None if at_line_start => 0,
        None => backlog.iter().position(|&b| b == b'\n')? + 1,
    };
    let newline = start + backlog.iter().skip(start).position(|&b| b == b'\n')?;
    let content_end = if newline > start && backlog.get(newline - 1) == Some(&b'\r') {
        newline - 1
    } else {
        newline
    };
    Some((start, content_end))
}

/// Flips the lowest bit, which changes any XOR or CRC checksum, never into a line end.
fn flip(byte: u8) -> u8 {
    match byte ^ 0x01 {
        b'\n' | b'\r' => byte ^ 0x02,
        flipped => flipped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deque(bytes: &[u8]) -> VecDeque<u8> {
        bytes.iter().copied().collect()
    }

    #[test]
    fn next_line_starts_at_the_front_after_a_sent_line_end() {
        let backlog = deque(b"$A*41\r\n$B*42\r\n");
        assert_eq!(next_line(&backlog, None, true), Some((0, 5)));
    }

    #[test]
    fn next_line_skips_the_rest_of_a_line_already_going_out() {
        let backlog = deque(b"*41\r\n$B*42\r\n");
        assert_eq!(next_line(&backlog, None, false), Some((5, 10)));
    }

    #[test]
    fn next_line_waits_for_a_complete_line_and_honours_the_floor() {
        assert_eq!(next_line(&deque(b"$A,1,2"), None, true), None);
        let backlog = deque(b"$A\n$B\n$C\n");
        assert_eq!(next_line(&backlog, Some(3), true), Some((3, 5)));
        assert_eq!(next_line(&backlog, Some(9), true), None);
    }

    proptest::proptest! {
        #[test]
        fn next_line_on_any_backlog_is_a_whole_line_inside_it(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            floor in proptest::option::of(0usize..250),
            at_line_start in proptest::prelude::any::<bool>(),
        ) {
            let backlog = deque(&bytes);
            if let Some((start, end)) = next_line(&backlog, floor, at_line_start) {
                proptest::prop_assert!(start <= end && end < bytes.len());
                proptest::prop_assert!(!bytes[start..end].contains(&b'\n'));
                let newline = if bytes[end] == b'\r' { end + 1 } else { end };
                proptest::prop_assert_eq!(bytes[newline], b'\n');
            }
        }
    }

    #[test]
    fn flip_changes_every_byte_and_never_makes_a_line_end() {
        for b in 0..=255u8 {
            let f = flip(b);
            assert_ne!(f, b);
            if b != b'\n' && b != b'\r' {
                assert!(f != b'\n' && f != b'\r', "{b:#x} -> {f:#x}");
            }
        }
    }
}
