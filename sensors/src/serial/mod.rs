//! Serial ports: opening real ones, reading them line by line, and simulated devices
//! behind pseudo-terminals ([`pty`]).
//!
//! [`open`] is the one place where a port is opened and configured (raw, 8N1, no flow
//! control, the baud rate, a read timeout). It uses `serialport` (built without libudev),
//! and falls back to plain termios when the kernel or qemu-user answers the termios2
//! ioctl (`TCGETS2`) with ENOSYS. Either way the result is a [`Port`] whose reads and
//! writes go straight to the file descriptor through `poll`, so the errno of a vanished
//! device (EIO, ENXIO) survives and [`LineReader`] can tell a timeout from a disconnect.
//!
//! Invariant: nothing here panics on what a device sends; every outcome of a read is a
//! typed value ([`LineError`]).

pub mod pty;

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::flight::FlightState;

/// A device that talks over a serial line, as a simulator models it.
///
/// The pseudo-terminal harness calls [`SerialDevice::tick`] as simulated time advances and
/// writes what the device emits, paced at [`SerialDevice::baud`]; bytes the host writes to
/// the port are handed to [`SerialDevice::receive`].
pub trait SerialDevice: Send {
    /// Baud rate of the device's line (bytes are paced at baud / 10 per second).
    fn baud(&self) -> u32;

    /// Advances the device to `state.t_s` and appends whatever it transmits by then to `out`
    /// (a GNSS receiver its epoch's sentences, a detector its event lines).
    fn tick(&mut self, state: &FlightState, out: &mut Vec<u8>);

    /// The host wrote `bytes` to the device; appends any answer (ACK/NAK, poll replies) to `out`.
    fn receive(&mut self, bytes: &[u8], out: &mut Vec<u8>);
}

/// Why a port could not be opened. Every variant names the path, so a config error or a
/// log line says which of several ports it was.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Nothing at that path (or a dangling symlink: a USB adapter that is unplugged).
    #[error("serial port {path} not found")]
    NotFound {
        /// The path given to [`open`].
        path: PathBuf,
    },
    /// The process may not open the device (not in the `dialout` group?).
    #[error("no permission to open serial port {path}")]
    PermissionDenied {
        /// The path given to [`open`].
        path: PathBuf,
    },
    /// Another process holds the port exclusively.
    #[error("serial port {path} is busy: another process holds it")]
    Busy {
        /// The path given to [`open`].
        path: PathBuf,
    },
    /// The device opened but refused the settings (not a tty, unsupported baud, ...).
    #[error("serial port {path} could not be configured at {baud} baud: {reason}")]
    Configuration {
        /// The path given to [`open`].
        path: PathBuf,
        /// The requested baud rate.
        baud: u32,
        /// What the system said.
        reason: String,
    },
}

/// An open serial port: raw 8N1 at a baud rate, with a read timeout.
///
/// Reads wait at most the read timeout and then fail with [`io::ErrorKind::TimedOut`];
/// a read of 0 bytes or an EIO/ENXIO error means the device is gone.
#[derive(Debug)]
pub struct Port {
    path: PathBuf,
    device: PortDevice,
    timeout: Duration,
}

#[derive(Debug)]
enum PortDevice {
    /// Opened and configured by `serialport` (termios2, exclusive access).
    Serialport(serialport::TTYPort),
    /// Opened with plain termios where termios2 is missing.
    Termios(OwnedFd),
}

/// Opens the serial device at `path` (a symlink such as /dev/serial/by-id/... is
/// followed) raw at `baud` 8N1 without flow control; reads wait at most `read_timeout`.
///
/// The port is held exclusively (TIOCEXCL and an flock), so a second driver configured on
/// the same device gets [`OpenError::Busy`] instead of stealing half its bytes.
pub fn open(path: impl AsRef<Path>, baud: u32, read_timeout: Duration) -> Result<Port, OpenError> {
    let path = path.as_ref();
    let owned = || path.to_path_buf();
    if baud == 0 {
        return Err(OpenError::Configuration {
            path: owned(),
            baud,
            reason: "a baud rate of 0 hangs the line up".into(),
        });
    }
    // A dangling by-id symlink is the usual shape of an unplugged adapter: say not found.
    if let Err(e) = std::fs::metadata(path) {
        return Err(match e.kind() {
            io::ErrorKind::PermissionDenied => OpenError::PermissionDenied { path: owned() },
            _ => OpenError::NotFound { path: owned() },
        });
    }
    let Some(name) = path.to_str() else {
        return Err(OpenError::Configuration {
            path: owned(),
            baud,
            reason: "the path is not UTF-8".into(),
        });
    };
    let device = match serialport::new(name, baud)
        .timeout(read_timeout)
        .open_native()
    {
        Ok(port) => PortDevice::Serialport(port),
        Err(e) if lacks_termios2(&e) => {
            tracing::info!(path = %path.display(), baud, "Kernel lacks termios2, configuring with plain termios.");
            return open_fallback(path, baud, read_timeout);
        }
        Err(e) => return Err(classify_open_error(path, baud, e)),
    };
    tracing::debug!(path = %path.display(), baud, ?read_timeout, "Opened serial port.");
    Ok(Port {
        path: owned(),
        device,
        timeout: read_timeout,
    })
}

/// `serialport` keeps only errno's text, so ENOSYS from `TCGETS2`/`TCSETS2` (old kernels,
/// qemu-user) is recognised by it.
fn lacks_termios2(e: &serialport::Error) -> bool {
    e.kind == serialport::ErrorKind::Unknown && e.description == Errno::ENOSYS.desc()
}

fn classify_open_error(path: &Path, baud: u32, e: serialport::Error) -> OpenError {
    let path = path.to_path_buf();
    match e.kind {
        serialport::ErrorKind::Io(io::ErrorKind::NotFound) => OpenError::NotFound { path },
        serialport::ErrorKind::Io(io::ErrorKind::PermissionDenied) => {
            OpenError::PermissionDenied { path }
        }
        // EBUSY from TIOCEXCL and a held flock both arrive as NoDevice.
        serialport::ErrorKind::NoDevice => OpenError::Busy { path },
        _ => OpenError::Configuration {
            path,
            baud,
            reason: e.description,
        },
    }
}

/// [`open`] through the plain termios fallback.
pub(crate) fn open_fallback(
    path: &Path,
    baud: u32,
    read_timeout: Duration,
) -> Result<Port, OpenError> {
    Ok(Port {
        path: path.to_path_buf(),
        device: PortDevice::Termios(open_with_termios(path, baud)?),
        timeout: read_timeout,
    })
}

/// The fallback: open with nix and configure raw termios at a standard baud rate.
/// Public within the crate so that tests exercise it on a machine that has termios2.
pub(crate) fn open_with_termios(path: &Path, baud: u32) -> Result<OwnedFd, OpenError> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    use nix::sys::termios::{self, ControlFlags, SetArg};

    let configuration = |reason: String| OpenError::Configuration {
        path: path.to_path_buf(),
        baud,
        reason,
    };
    let Some(rate) = standard_baud(baud) else {
        return Err(configuration("not a standard termios baud rate".into()));
    };
    let fd = nix::fcntl::open(
        path,
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| match e {
        Errno::ENOENT | Errno::ENXIO | Errno::ENODEV => OpenError::NotFound {
            path: path.to_path_buf(),
        },
        Errno::EACCES | Errno::EPERM => OpenError::PermissionDenied {
            path: path.to_path_buf(),
        },
        Errno::EBUSY => OpenError::Busy {
            path: path.to_path_buf(),
        },
        other => configuration(other.desc().into()),
    })?;
    let mut settings = termios::tcgetattr(&fd).map_err(|e| configuration(e.desc().into()))?;
    termios::cfmakeraw(&mut settings);
    settings.control_flags |= ControlFlags::CREAD | ControlFlags::CLOCAL;
    settings.control_flags &=
        !(ControlFlags::CSTOPB | ControlFlags::PARENB | ControlFlags::CRTSCTS);
    termios::cfsetspeed(&mut settings, rate).map_err(|e| configuration(e.desc().into()))?;
    termios::tcsetattr(&fd, SetArg::TCSANOW, &settings)
        .map_err(|e| configuration(e.desc().into()))?;
    // Blocking again: reads wait in poll with the timeout, not in a spin.
    fcntl(&fd, FcntlArg::F_SETFL(OFlag::empty())).map_err(|e| configuration(e.desc().into()))?;
    Ok(fd)
}

fn standard_baud(baud: u32) -> Option<nix::sys::termios::BaudRate> {
    use nix::sys::termios::BaudRate as B;
    Some(match baud {
        1200 => B::B1200,
        2400 => B::B2400,
        4800 => B::B4800,
        9600 => B::B9600,
        19_200 => B::B19200,
        38_400 => B::B38400,
        57_600 => B::B57600,
        115_200 => B::B115200,
        230_400 => B::B230400,
        460_800 => B::B460800,
        921_600 => B::B921600,
        _ => return None,
    })
}

impl Port {
    /// The path the port was opened by (the symlink, if it was given one).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How long a read waits for the first byte.
    pub fn read_timeout(&self) -> Duration {
        self.timeout
    }

    /// Changes how long a read (and a write) waits.
    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Whether the port was configured through the plain termios fallback.
    pub fn is_termios_fallback(&self) -> bool {
        matches!(self.device, PortDevice::Termios(_))
    }

    /// The `serialport` handle for modem lines and other settings, unless the port came
    /// from the termios fallback.
    pub fn serialport_mut(&mut self) -> Option<&mut serialport::TTYPort> {
        match &mut self.device {
            PortDevice::Serialport(port) => Some(port),
            PortDevice::Termios(_) => None,
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match &self.device {
            // SAFETY: the TTYPort owns this descriptor and lives as long as the borrow.
            PortDevice::Serialport(port) => unsafe { BorrowedFd::borrow_raw(port.as_raw_fd()) },
            PortDevice::Termios(fd) => fd.as_fd(),
        }
    }

    /// Waits up to the timeout for `events`; false on timeout.
    fn wait(&self, events: PollFlags) -> io::Result<bool> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let mut fds = [PollFd::new(self.fd(), events)];
            let left = deadline.saturating_duration_since(Instant::now());
            match nix::poll::poll(&mut fds, poll_timeout(left)) {
                Ok(0) => return Ok(false),
                // Whatever woke us (data, hang-up, error), the read or write says what.
                Ok(_) => return Ok(true),
                Err(Errno::EINTR) if !left.is_zero() => continue,
                Err(e) => return Err(io::Error::from(e)),
            }
        }
    }
}

impl AsRawFd for Port {
    fn as_raw_fd(&self) -> RawFd {
        self.fd().as_raw_fd()
    }
}

impl Read for Port {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if !self.wait(PollFlags::POLLIN)? {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "serial read timed out",
            ));
        }
        nix::unistd::read(self.fd(), buf).map_err(io::Error::from)
    }
}

impl Write for Port {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if !self.wait(PollFlags::POLLOUT)? {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "serial write timed out",
            ));
        }
        nix::unistd::write(self.fd(), buf).map_err(io::Error::from)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A poll timeout of at least `d`, rounded up to whole ms so a short wait never spins.
pub(crate) fn poll_timeout(d: Duration) -> PollTimeout {
    let ms = d.as_micros().div_ceil(1_000);
    PollTimeout::try_from(ms.min(i32::MAX as u128)).unwrap_or(PollTimeout::MAX)
}

/// What went wrong instead of a line. Small and `Copy`: it is on the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The line was silent for the port's read timeout; a partial line is kept.
    #[error("no complete line within the read timeout")]
    Timeout,
    /// The device is gone: end of file, hang-up, EIO, ENXIO, ENODEV or a broken pipe (an
    /// unplugged USB adapter). Reopen the port.
    #[error("serial device disconnected")]
    Disconnected,
    /// A line longer than the limit; it is dropped up to its newline, and reading goes on.
    #[error("line longer than {max} bytes dropped")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// Any other I/O error.
    #[error("serial I/O error: {kind}")]
    Io {
        /// What kind.
        kind: io::ErrorKind,
        /// The errno, if the system gave one.
        errno: Option<i32>,
    },
}

impl LineError {
    /// Sorts an I/O error from a port read into timeout, disconnect or other.
    pub fn from_io(e: &io::Error) -> Self {
        let errno = e.raw_os_error();
        let gone = [Errno::EIO, Errno::ENXIO, Errno::ENODEV, Errno::EPIPE]
            .into_iter()
            .any(|g| errno == Some(g as i32));
        match e.kind() {
            _ if gone => LineError::Disconnected,
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => LineError::Timeout,
            io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::NotConnected
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted => LineError::Disconnected,
            kind => LineError::Io { kind, errno },
        }
    }
}

/// Splits what a port sends into lines: on `\n`, with a trailing `\r` stripped.
///
/// A partial line is kept across reads and timeouts. A line longer than the limit is
/// reported once as [`LineError::TooLong`] and skipped up to its newline, so one burst of
/// noise without newlines costs at most the limit in memory and resyncs at the next line.
#[derive(Debug)]
pub struct LineReader<R> {
    port: R,
    buf: Vec<u8>,
    /// Bytes at the front of `buf` that the last call returned, dropped on the next call.
    consumed: usize,
    max_line: usize,
    /// Skipping the rest of an over-long line that was already reported.
    skipping: bool,
}

impl<R: Read> LineReader<R> {
    /// Reads lines from `port`, refusing lines longer than `max_line` bytes (without the
    /// line end).
    pub fn new(port: R, max_line: usize) -> Self {
        LineReader {
            port,
            buf: Vec::with_capacity(max_line.saturating_add(2).min(64 * 1024)),
            consumed: 0,
            max_line,
            skipping: false,
        }
    }

    /// The next line, without its line end. Reads from the port as needed; each read
    /// waits at most the port's timeout.
    pub fn read_line(&mut self) -> Result<&[u8], LineError> {
        self.buf.drain(..self.consumed.min(self.buf.len()));
        self.consumed = 0;
        let mut scanned = 0;
        let end = loop {
            if let Some(offset) = self
                .buf
                .get(scanned..)
                .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
            {
                let newline = scanned + offset;
                if self.skipping {
                    self.skipping = false;
                    self.buf.drain(..=newline);
                    scanned = 0;
                    continue;
                }
                let end = if newline > 0 && self.buf.get(newline - 1) == Some(&b'\r') {
                    newline - 1
                } else {
                    newline
                };
                if end > self.max_line {
                    self.buf.drain(..=newline);
                    return Err(LineError::TooLong { max: self.max_line });
                }
                self.consumed = newline + 1;
                break end;
            }
            scanned = self.buf.len();
            if self.skipping {
                self.buf.clear();
                scanned = 0;
            } else if self.buf.len() > self.max_line.saturating_add(1) {
                // +1: the line's `\r` may be here while its `\n` is still on the wire.
                self.buf.clear();
                self.skipping = true;
                return Err(LineError::TooLong { max: self.max_line });
            }
            let mut chunk = [0u8; 512];
            match self.port.read(&mut chunk) {
                Ok(0) => {
                    self.discard_partial();
                    return Err(LineError::Disconnected);
                }
                Ok(n) => self.buf.extend_from_slice(chunk.get(..n).unwrap_or(&[])),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let error = LineError::from_io(&e);
                    if error == LineError::Disconnected {
                        self.discard_partial();
                    }
                    return Err(error);
                }
            }
        };
        Ok(self.buf.get(..end).unwrap_or(&[]))
    }

    /// A line cut by a disconnect never completes: drop it.
    fn discard_partial(&mut self) {
        self.buf.clear();
        self.skipping = false;
    }

    /// Bytes read but not yet returned as a line.
    pub fn pending(&self) -> &[u8] {
        self.buf.get(self.consumed..).unwrap_or(&[])
    }

    /// The port.
    pub fn get_ref(&self) -> &R {
        &self.port
    }

    /// The port, for writing to the device.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.port
    }

    /// Gives the port back; a partial line is lost.
    pub fn into_inner(self) -> R {
        self.port
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    /// A port that hands out scripted chunks and outcomes, one per read.
    struct ScriptedPort(VecDeque<io::Result<Vec<u8>>>);

    impl ScriptedPort {
        fn new(script: Vec<io::Result<&[u8]>>) -> Self {
            ScriptedPort(script.into_iter().map(|r| r.map(<[u8]>::to_vec)).collect())
        }
    }

    impl Read for ScriptedPort {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.pop_front() {
                None => Ok(0),
                Some(Err(e)) => Err(e),
                Some(Ok(mut chunk)) => {
                    let n = chunk.len().min(buf.len());
                    buf[..n].copy_from_slice(&chunk[..n]);
                    if n < chunk.len() {
                        chunk.drain(..n);
                        self.0.push_front(Ok(chunk));
                    }
                    Ok(n)
                }
            }
        }
    }

    fn timed_out() -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, "timed out")
    }

    #[test]
    fn lines_are_split_on_newline_with_carriage_return_stripped() {
        let port = ScriptedPort::new(vec![Ok(b"$A*00\r\n$B*01\nC\r\n")]);
        let mut reader = LineReader::new(port, 82);
        assert_eq!(reader.read_line(), Ok(&b"$A*00"[..]));
        assert_eq!(reader.read_line(), Ok(&b"$B*01"[..]));
        assert_eq!(reader.read_line(), Ok(&b"C"[..]));
        assert_eq!(reader.read_line(), Err(LineError::Disconnected));
    }

    #[test]
    fn partial_line_survives_a_timeout_and_completes_on_the_next_read() {
        let port = ScriptedPort::new(vec![Ok(b"$GPGGA,12"), Err(timed_out()), Ok(b"34*56\r\n")]);
        let mut reader = LineReader::new(port, 82);
        assert_eq!(reader.read_line(), Err(LineError::Timeout));
        assert_eq!(reader.pending(), b"$GPGGA,12");
        assert_eq!(reader.read_line(), Ok(&b"$GPGGA,1234*56"[..]));
    }

    #[test]
    fn over_long_line_is_reported_once_and_reader_resyncs_at_next_newline() {
        let noise = [b'x'; 300];
        let port = ScriptedPort::new(vec![Ok(&noise), Ok(&noise), Ok(b"yy\r\nnext\r\n")]);
        let mut reader = LineReader::new(port, 82);
        assert_eq!(reader.read_line(), Err(LineError::TooLong { max: 82 }));
        assert_eq!(reader.read_line(), Ok(&b"next"[..]));
        assert!(reader.buf.capacity() < 2_000);
    }

    #[test]
    fn complete_over_long_line_in_one_read_is_skipped() {
        let mut bytes = vec![b'a'; 20];
        bytes.extend_from_slice(b"\nok\n");
        let port = ScriptedPort::new(vec![Ok(&bytes)]);
        let mut reader = LineReader::new(port, 10);
        assert_eq!(reader.read_line(), Err(LineError::TooLong { max: 10 }));
        assert_eq!(reader.read_line(), Ok(&b"ok"[..]));
    }

    #[test]
    fn line_of_exactly_the_limit_passes_even_with_its_cr_split_from_its_lf() {
        let port = ScriptedPort::new(vec![Ok(b"0123456789\r"), Ok(b"\n")]);
        let mut reader = LineReader::new(port, 10);
        assert_eq!(reader.read_line(), Ok(&b"0123456789"[..]));
    }

    #[test]
    fn eio_enxio_broken_pipe_and_eof_are_disconnects_other_errors_are_io() {
        for e in [
            io::Error::from_raw_os_error(libc::EIO),
            io::Error::from_raw_os_error(libc::ENXIO),
            io::Error::from(io::ErrorKind::BrokenPipe),
        ] {
            assert_eq!(LineError::from_io(&e), LineError::Disconnected, "{e}");
        }
        assert_eq!(LineError::from_io(&timed_out()), LineError::Timeout);
        assert!(matches!(
            LineError::from_io(&io::Error::from_raw_os_error(libc::EBADF)),
            LineError::Io {
                errno: Some(libc::EBADF),
                ..
            }
        ));
        let port = ScriptedPort::new(vec![
            Ok(b"half"),
            Err(io::Error::from_raw_os_error(libc::EIO)),
        ]);
        let mut reader = LineReader::new(port, 82);
        assert_eq!(reader.read_line(), Err(LineError::Disconnected));
        assert!(reader.pending().is_empty(), "a cut line never completes");
    }

    #[test]
    fn interrupted_reads_are_retried() {
        let port = ScriptedPort::new(vec![
            Err(io::Error::from(io::ErrorKind::Interrupted)),
            Ok(b"a\n"),
        ]);
        let mut reader = LineReader::new(port, 82);
        assert_eq!(reader.read_line(), Ok(&b"a"[..]));
    }

    #[test]
    fn opening_a_missing_path_names_it() {
        let e = open("/dev/aloft-no-such-port", 9600, Duration::from_millis(10));
        let Err(OpenError::NotFound { path }) = e else {
            panic!("{e:?}")
        };
        assert_eq!(path, Path::new("/dev/aloft-no-such-port"));
    }

    #[test]
    fn opening_something_that_is_not_a_tty_is_a_configuration_error() {
        let Ok(file) = tempfile::NamedTempFile::new() else {
            return;
        };
        let e = open(file.path(), 9600, Duration::from_millis(10));
        assert!(
            matches!(e, Err(OpenError::Configuration { baud: 9600, .. })),
            "{e:?}"
        );
        let e = open_with_termios(file.path(), 9600);
        assert!(matches!(e, Err(OpenError::Configuration { .. })), "{e:?}");
    }

    #[test]
    fn baud_zero_and_non_standard_termios_rates_are_refused() {
        let e = open("/dev/null", 0, Duration::from_millis(10));
        assert!(
            matches!(e, Err(OpenError::Configuration { baud: 0, .. })),
            "{e:?}"
        );
        let e = open_with_termios(Path::new("/dev/null"), 250_000);
        assert!(
            matches!(e, Err(OpenError::Configuration { baud: 250_000, .. })),
            "{e:?}"
        );
    }

    #[test]
    fn enosys_from_serialport_selects_the_termios_fallback() {
        // How serialport's own nix conversion words an errno it has no kind for.
        let unknown = |e: Errno| serialport::Error::new(serialport::ErrorKind::Unknown, e.desc());
        assert!(lacks_termios2(&unknown(Errno::ENOSYS)));
        assert!(!lacks_termios2(&unknown(Errno::ENOTTY)));
    }

    /// Answers every byte the host writes with the same byte.
    struct Echo;

    impl SerialDevice for Echo {
        fn baud(&self) -> u32 {
            115_200
        }
        fn tick(&mut self, _: &FlightState, _: &mut Vec<u8>) {}
        fn receive(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
            out.extend_from_slice(bytes);
        }
    }

    #[test]
    fn termios_fallback_talks_to_a_pty_both_ways_and_times_out_when_silent() {
        let scenario = std::sync::Arc::new(crate::flight::Scenario::new(1, 0));
        let Ok(sim) = pty::SimulatedPort::spawn(Echo, scenario, pty::PortOptions::new()) else {
            panic!("no pty")
        };
        let Some(path) = sim.path() else {
            panic!("no path")
        };
        let port = open_fallback(&path, 115_200, Duration::from_millis(100));
        let Ok(mut port) = port else {
            panic!("{port:?}")
        };
        assert!(port.is_termios_fallback());
        let mut reader = LineReader::new(&mut port, 82);
        assert_eq!(reader.read_line(), Err(LineError::Timeout));
        assert!(reader.get_mut().write_all(b"$PING*00\r\n").is_ok());
        let mut echoed = None;
        for _ in 0..50 {
            match reader.read_line() {
                Ok(line) => {
                    echoed = Some(line.to_vec());
                    break;
                }
                Err(LineError::Timeout) => continue,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(echoed.as_deref(), Some(&b"$PING*00"[..]));
        assert!(sim.stop().is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_bytes_in_any_chunks_never_panic_and_lines_stay_bounded(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..20),
            max in 1usize..100,
        ) {
            let script = chunks.iter().map(|c| Ok(c.as_slice())).collect();
            let mut reader = LineReader::new(ScriptedPort::new(script), max);
            for _ in 0..1_000 {
                match reader.read_line() {
                    Ok(line) => {
                        prop_assert!(line.len() <= max);
                        prop_assert!(!line.contains(&b'\n'));
                    }
                    Err(LineError::Disconnected) => break,
                    Err(_) => {}
                }
            }
        }

        #[test]
        fn lines_split_across_arbitrary_chunks_come_back_whole(
            lines in proptest::collection::vec("[ -~]{0,40}", 0..20),
            cut in 1usize..50,
        ) {
            let mut bytes = Vec::new();
            for line in &lines {
                bytes.extend_from_slice(line.as_bytes());
                bytes.extend_from_slice(b"\r\n");
            }
            let script = bytes.chunks(cut).map(Ok).collect();
            let mut reader = LineReader::new(ScriptedPort::new(script), 82);
            for line in &lines {
                prop_assert_eq!(reader.read_line(), Ok(line.as_bytes()));
            }
            prop_assert_eq!(reader.read_line(), Err(LineError::Disconnected));
        }
    }
}
