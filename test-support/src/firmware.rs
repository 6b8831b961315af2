//! The detector front end's firmware image (firmware/) and the emulated board that runs it:
//! `qemu-system-arm -machine lm3s6965evb` with UART0 on a pseudo-terminal.
//!
//! ```no_run
//! use aloft_test_support::firmware::{FirmwareImage, Qemu};
//!
//! let image = FirmwareImage::build().expect("firmware image");
//! let qemu = Qemu::start(&image).expect("qemu");
//! // Open qemu.serial_path() like any serial device (115 200 baud, raw): the boot
//! // message is waiting there.
//! # let _ = qemu.serial_path();
//! ```
//!
//! Images: [`FirmwareImage::build`] (the normal build) and
//! [`FirmwareImage::build_with_fault_hooks`] (the test build, whose `Stall` command stops
//! the main loop) build once per test binary with Debian's rustc-web and
//! binutils-arm-none-eabi (`cargo xtask firmware` does the same, and
//! `cargo xtask test` builds both before the tests and names their folder in
//! [`IMAGES_ENV`], so no test builds again).
//!
//! The serial line: QEMU's pty backend discards what the guest sends while no one has the
//! terminal open, and the firmware's boot message comes microseconds after start. So
//! [`Qemu::start`] starts the machine halted (`-S`), opens the terminal itself in raw mode
//! and keeps it open for the machine's life, and only then lets the CPU run (`cont` on
//! QEMU's monitor). Nothing is lost, however late a reader opens the path, and a reader
//! that closes and reopens it (a hard restart in the agent) loses nothing either; what it
//! does not read piles up in the terminal (about 4 KiB) and then holds the UART's
//! transmit FIFO full, which the firmware counts as dropped events.
//!
//! Invariants: the QEMU process is killed and reaped when the [`Qemu`] drops; the images
//! are built at most once per process and variant.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};

use aloft_protocol::detector::{
    BootInfo, Command as Request, FrameDecoder, FromFrontEnd, Housekeeping, MAX_FRAME_BYTES,
    ReplyBody, ToFrontEnd, encode_frame,
};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// Names a folder holding images already built (`aloft-firmware.elf`,
/// `aloft-firmware-fault-hooks.elf`): then they are used as they are, never built.
pub const IMAGES_ENV: &str = "ALOFT_FIRMWARE_IMAGES";

/// The firmware's target.
pub const TARGET: &str = "thumbv7m-none-eabi";

/// The line rate of UART0 in the firmware's default settings, bit/s.
pub const BAUD: u32 = 115_200;

/// How much of QEMU's standard error [`Qemu::stderr`] keeps, bytes.
const STDERR_KEPT: usize = 16 * 1024;

/// How long QEMU may take to start and print its terminal's path.
const START_PATIENCE: Duration = Duration::from_secs(20);

/// Why an image could not be built or a machine not started.
#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    /// A tool could not be started.
    #[error("cannot run {tool}: {source}")]
    Spawn {
        /// The tool.
        tool: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The firmware's build failed.
    #[error("the firmware build ({variant}) failed: {status}")]
    Build {
        /// Which build.
        variant: &'static str,
        /// Cargo's exit status.
        status: std::process::ExitStatus,
    },
    /// A file could not be read, written or copied.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a 32-bit little-endian ELF with section headers.
    #[error("{0} is not a 32-bit little-endian ELF image")]
    NotElf(PathBuf),
    /// QEMU did not say where its terminal is.
    #[error("qemu-system-arm did not name its serial terminal within {patience:?}: {output}")]
    NoTerminal {
        /// How long it was given.
        patience: Duration,
        /// What it printed.
        output: String,
    },
    /// The terminal could not be opened or set raw.
    #[error("cannot open the serial terminal {path}: {source}")]
    Terminal {
        /// The terminal.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The front end did not send the message waited for.
    #[error("no {what} from the front end within {patience:?}")]
    Timeout {
        /// The message waited for.
        what: String,
        /// How long.
        patience: Duration,
    },
    /// The serial line failed.
    #[error("the serial line failed: {0}")]
    Line(#[source] std::io::Error),
    /// A build of this process failed earlier (its error was returned then).
    #[error("the {0} image failed to build earlier in this process: {1}")]
    EarlierFailure(&'static str, String),
}

/// Which build of the firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// What goes on the detector.
    Normal,
    /// With the `fault-hooks` feature: `Stall` stops the main loop.
    FaultHooks,
}

impl Variant {
    /// Both builds.
    pub const ALL: [Variant; 2] = [Variant::Normal, Variant::FaultHooks];

    /// The build's name, as in its file name.
    pub const fn name(self) -> &'static str {
        match self {
            Variant::Normal => "normal",
            Variant::FaultHooks => "fault-hooks",
        }
    }

    /// The image's file name.
    pub const fn file_name(self) -> &'static str {
        match self {
            Variant::Normal => "aloft-firmware.elf",
            Variant::FaultHooks => "aloft-firmware-fault-hooks.elf",
        }
    }
}

/// A built firmware image: an ELF file QEMU loads with `-kernel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareImage {
    /// The ELF file.
    pub elf: PathBuf,
    /// Which build.
    pub variant: Variant,
}

/// The project's root folder (test-support/ sits directly under it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Where the firmware's own cargo build happens: its own target dir, so that neither the
/// host workspace's build nor its lock is touched.
pub fn build_dir() -> PathBuf {
    target_dir().join("firmware")
}

/// Where built images are collected.
pub fn images_dir() -> PathBuf {
    build_dir().join("images")
}

/// `cargo build` of the firmware (release, `--locked`) in firmware/, as `cargo xtask
/// firmware` runs it: Debian's rustc-web named in firmware/.cargo/config.toml, `core`
/// built from rust-web-src (`-Zbuild-std` there, allowed by `RUSTC_BOOTSTRAP=1`).
pub fn build_command(variant: Variant) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    let firmware = workspace_root().join("firmware");
    cmd.current_dir(&firmware)
        .args(["build", "--release", "--locked", "--target-dir"])
        .arg(build_dir())
        .env("RUSTC_BOOTSTRAP", "1");
    // What an outer cargo (a test run) sets for its own target must not leak in.
    for var in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    if variant == Variant::FaultHooks {
        cmd.args(["--features", "fault-hooks"]);
    }
    cmd
}

/// Builds `variant` and copies the ELF to [`images_dir`]; returns the copy. Cargo makes
/// this cheap when nothing changed.
pub fn build_variant(variant: Variant) -> Result<FirmwareImage, FirmwareError> {
    // Both variants build to the same output path: one build and copy at a time.
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _building = BUILDING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let status = build_command(variant)
        .status()
        .map_err(|source| FirmwareError::Spawn {
            tool: "cargo (the firmware build)".into(),
            source,
        })?;
    if !status.success() {
        return Err(FirmwareError::Build {
            variant: variant.name(),
            status,
        });
    }
    let built = build_dir()
        .join(TARGET)
        .join("release")
        .join("aloft-firmware");
    let dir = images_dir();
    std::fs::create_dir_all(&dir).map_err(|source| FirmwareError::Io {
        path: dir.clone(),
        source,
    })?;
    let elf = dir.join(variant.file_name());
    std::fs::copy(&built, &elf).map_err(|source| FirmwareError::Io {
        path: built.clone(),
        source,
    })?;
    Ok(FirmwareImage { elf, variant })
}

impl FirmwareImage {
    /// The normal image, built once per process (or found in [`IMAGES_ENV`]).
    pub fn build() -> Result<FirmwareImage, FirmwareError> {
        Self::once(Variant::Normal)
    }

    /// The fault-hooks image, built once per process (or found in [`IMAGES_ENV`]).
    pub fn build_with_fault_hooks() -> Result<FirmwareImage, FirmwareError> {
        Self::once(Variant::FaultHooks)
    }

    fn once(variant: Variant) -> Result<FirmwareImage, FirmwareError> {
        static NORMAL: OnceLock<Result<FirmwareImage, String>> = OnceLock::new();
        static FAULT_HOOKS: OnceLock<Result<FirmwareImage, String>> = OnceLock::new();
        let cell = match variant {
            Variant::Normal => &NORMAL,
            Variant::FaultHooks => &FAULT_HOOKS,
        };
        let mut first = None;
        let result = cell.get_or_init(|| match Self::find_or_build(variant) {
            Ok(image) => Ok(image),
            Err(e) => {
                let text = e.to_string();
                first = Some(e);
                Err(text)
            }
        });
        match (result, first) {
            (Ok(image), _) => Ok(image.clone()),
            (Err(_), Some(e)) => Err(e),
            (Err(text), None) => Err(FirmwareError::EarlierFailure(variant.name(), text.clone())),
        }
    }

    fn find_or_build(variant: Variant) -> Result<FirmwareImage, FirmwareError> {
        if let Some(dir) = std::env::var_os(IMAGES_ENV) {
            let elf = PathBuf::from(dir).join(variant.file_name());
            if !elf.is_file() {
                return Err(FirmwareError::Io {
                    path: elf,
                    source: std::io::ErrorKind::NotFound.into(),
                });
            }
            return Ok(FirmwareImage { elf, variant });
        }
        build_variant(variant)
    }

    /// Flash and RAM the image takes, from its ELF section headers.
    pub fn footprint(&self) -> Result<Footprint, FirmwareError> {
        let bytes = std::fs::read(&self.elf).map_err(|source| FirmwareError::Io {
            path: self.elf.clone(),
            source,
        })?;
        Footprint::of_elf(&bytes).ok_or_else(|| FirmwareError::NotElf(self.elf.clone()))
    }
}

/// What an image occupies on the part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Flash: code, read-only data, and the initial values of `.data`.
    pub flash_bytes: u64,
    /// Static RAM: `.data`, `.bss`, `.uninit`, and the boot record memory.x reserves
    /// (the stack comes on top).
    pub ram_bytes: u64,
}

/// The start of the LM3S6965's SRAM; flash is below it.
const SRAM_START: u64 = 0x2000_0000;

/// The boot record at the end of SRAM (firmware/memory.x).
const BOOT_RECORD_BYTES: u64 = 32;

impl Footprint {
    /// Sums the allocated sections of a 32-bit little-endian ELF; `None` when `elf` is not
    /// one.
    pub fn of_elf(elf: &[u8]) -> Option<Footprint> {
        const SHF_ALLOC: u32 = 0x2;
        const SHT_NOBITS: u32 = 8;
        let u16_at = |at: usize| -> Option<u64> {
            Some(u64::from(u16::from_le_bytes(
                elf.get(at..at + 2)?.try_into().ok()?,
            )))
        };
        let u32_at = |at: usize| -> Option<u32> {
            Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?))
        };
        // ELF magic, 32-bit class, little-endian.
        if elf.get(..6)? != b"\x7fELF\x01\x01" {
            return None;
        }
        let shoff = usize::try_from(u32_at(0x20)?).ok()?;
        let shentsize = usize::try_from(u16_at(0x2E)?).ok()?;
        let shnum = usize::try_from(u16_at(0x30)?).ok()?;
        let mut footprint = Footprint {
            flash_bytes: 0,
            ram_bytes: BOOT_RECORD_BYTES,
        };
        for i in 0..shnum {
            let header = shoff + i * shentsize;
            let kind = u32_at(header + 4)?;
            let flags = u32_at(header + 8)?;
            let addr = u64::from(u32_at(header + 12)?);
            let size = u64::from(u32_at(header + 20)?);
            if flags & SHF_ALLOC == 0 || size == 0 {
                continue;
            }
            if addr >= SRAM_START {
                footprint.ram_bytes += size;
                if kind != SHT_NOBITS {
                    // `.data`'s initial values live in flash and are copied at start.
                    footprint.flash_bytes += size;
                }
            } else if kind != SHT_NOBITS {
                footprint.flash_bytes += size;
            }
        }
        Some(footprint)
    }
}

/// How the emulated board is set up beyond the image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QemuOptions {
    /// The simulated detector's muon rate, mHz, through the board's simulation strap
    /// (firmware/src/strap.rs); `None` keeps the physical default (about 3 a second).
    pub muon_rate_mhz: Option<u32>,
    /// The fault strap, honoured by the fault-hooks image only: the first start after
    /// power-on panics before its main loop (the panic handler's reset then reads as
    /// "watchdog").
    pub panic_at_first_boot: bool,
}

/// Where the simulation strap sits: after the 16-byte boot record at the end of SRAM
/// (firmware/memory.x).
const STRAP_ADDRESS: u32 = 0x2000_FFF0;

/// The strap's magic word (firmware/src/strap.rs).
const STRAP_MAGIC: u32 = 0x5349_4D01;

/// The fault strap's magic word and its panic code (firmware/src/strap.rs).
const FAULT_STRAP_MAGIC: u32 = 0x464C_5401;
const PANIC_AT_FIRST_BOOT: u32 = 1;

/// The emulated board running one image, its UART0 on a pseudo-terminal. Killed on drop.
#[derive(Debug)]
pub struct Qemu {
    child: Child,
    monitor: Option<ChildStdin>,
    serial_path: PathBuf,
    stderr: Arc<Mutex<String>>,
    // Held open (raw) for the machine's life: QEMU's pty backend drops output while the
    // terminal is closed (see the module doc).
    _terminal: File,
}

impl Qemu {
    /// Starts `qemu-system-arm -machine lm3s6965evb` on `image`, opens its serial terminal
    /// in raw mode, then lets the CPU run.
    pub fn start(image: &FirmwareImage) -> Result<Qemu, FirmwareError> {
        Self::start_with(image, QemuOptions::default())
    }

    /// [`Qemu::start`] with `options`.
    pub fn start_with(image: &FirmwareImage, options: QemuOptions) -> Result<Qemu, FirmwareError> {
        let mut qemu = Command::new("qemu-system-arm");
        if let Some(rate) = options.muon_rate_mhz {
            // QEMU's generic loader writes the strap into SRAM at every reset, before the
            // CPU runs (little-endian, as the guest).
            let data = (u64::from(rate) << 32) | u64::from(STRAP_MAGIC);
            qemu.args([
                "-device",
                &format!("loader,addr={STRAP_ADDRESS:#x},data={data:#x},data-len=8"),
            ]);
        }
        if options.panic_at_first_boot {
            let data = (u64::from(PANIC_AT_FIRST_BOOT) << 32) | u64::from(FAULT_STRAP_MAGIC);
            qemu.args([
                "-device",
                &format!(
                    "loader,addr={:#x},data={data:#x},data-len=8",
                    STRAP_ADDRESS + 8
                ),
            ]);
        }
        let mut child = qemu
            .args([
                "-machine",
                "lm3s6965evb",
                "-nographic",
                "-monitor",
                "stdio",
                "-serial",
                "pty",
                // Halted until the terminal is open.
                "-S",
                "-kernel",
            ])
            .arg(&image.elf)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| FirmwareError::Spawn {
                tool: "qemu-system-arm (Debian package qemu-system-arm)".into(),
                source,
            })?;
        let monitor = child.stdin.take();
        let stdout = child.stdout.take();
        let found = match stdout {
            Some(stdout) => find_terminal(stdout),
            None => Err(String::new()),
        };
        let serial_path = match found {
            Ok(path) => path,
            Err(output) => {
                let _ = child.kill();
                let mut stderr = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut stderr);
                }
                let _ = child.wait();
                return Err(FirmwareError::NoTerminal {
                    patience: START_PATIENCE,
                    output: format!("{output}{stderr}"),
                });
            }
        };
        let terminal = open_raw(&serial_path)?;
        // Drained for the machine's life, so that QEMU never blocks on a full pipe; the
        // end is kept for [`Qemu::stderr`].
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(pipe) = child.stderr.take() {
            let kept = Arc::clone(&stderr);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut text = kept.lock().unwrap_or_else(PoisonError::into_inner);
                    if text.len() > STDERR_KEPT {
                        let cut = text.len() - STDERR_KEPT / 2;
                        let cut = (cut..text.len())
                            .find(|&i| text.is_char_boundary(i))
                            .unwrap_or(text.len());
                        text.drain(..cut);
                    }
                    text.push_str(&line);
                    text.push('\n');
                }
            });
        }
        let mut qemu = Qemu {
            child,
            monitor,
            serial_path,
            stderr,
            _terminal: terminal,
        };
        qemu.monitor_command("cont")?;
        Ok(qemu)
    }

    /// The pseudo-terminal of UART0, to open like any serial device.
    pub fn serial_path(&self) -> &Path {
        &self.serial_path
    }

    /// Opens the terminal (another descriptor, raw mode) for reading and writing frames.
    pub fn open_serial(&self) -> Result<File, FirmwareError> {
        open_raw(&self.serial_path)
    }

    /// The end of what QEMU wrote to its standard error, for a failing test's message.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether QEMU still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Resets the emulated board as its reset pin would (`system_reset` on the monitor):
    /// the firmware then reports the cause "external".
    pub fn press_reset(&mut self) -> Result<(), FirmwareError> {
        self.monitor_command("system_reset")
    }

    fn monitor_command(&mut self, command: &str) -> Result<(), FirmwareError> {
        let Some(monitor) = self.monitor.as_mut() else {
            return Err(FirmwareError::Spawn {
                tool: "qemu-system-arm's monitor".into(),
                source: std::io::ErrorKind::BrokenPipe.into(),
            });
        };
        monitor
            .write_all(format!("{command}\n").as_bytes())
            .and_then(|()| monitor.flush())
            .map_err(|source| FirmwareError::Spawn {
                tool: format!("qemu-system-arm's monitor ({command})"),
                source,
            })
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads QEMU's monitor output until it names the terminal of `serial0`, in a thread so
/// that a silent QEMU cannot hang the caller past [`START_PATIENCE`]; the thread goes on
/// draining the monitor's output so QEMU never blocks on it.
fn find_terminal(stdout: std::process::ChildStdout) -> Result<PathBuf, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut seen = String::new();
        let mut line = String::new();
        let mut sent = false;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if sent {
                continue;
            }
            seen.push_str(&line);
            // "char device redirected to /dev/pts/3 (label serial0)"
            if let Some(rest) = line.split("redirected to ").nth(1)
                && let Some(path) = rest.split_whitespace().next()
            {
                sent = tx.send(Ok(PathBuf::from(path))).is_ok();
            }
        }
        if !sent {
            let _ = tx.send(Err(seen));
        }
    });
    let deadline = Instant::now() + START_PATIENCE;
    rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .unwrap_or_else(|_| Err("(nothing)".to_owned()))
}

/// Opens a terminal for reading and writing and sets it raw (no echo, no line editing,
/// no byte translation), 8N1 at [`BAUD`].
fn open_raw(path: &Path) -> Result<File, FirmwareError> {
    use nix::sys::termios::{self, BaudRate, SetArg};
    let wrap = |source: std::io::Error| FirmwareError::Terminal {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(wrap)?;
    let mut settings = termios::tcgetattr(file.as_fd()).map_err(|e| wrap(e.into()))?;
    termios::cfmakeraw(&mut settings);
    termios::cfsetspeed(&mut settings, BaudRate::B115200).map_err(|e| wrap(e.into()))?;
    termios::tcsetattr(file.as_fd(), SetArg::TCSANOW, &settings).map_err(|e| wrap(e.into()))?;
    Ok(file)
}

/// The agent's end of the UART, for tests and benches: requests out, messages in, decoded
/// with the protocol crate's framing.
#[derive(Debug)]
pub struct FrontEndLine {
    port: File,
    decoder: FrameDecoder,
    next_id: u16,
    /// Frames from the front end that failed to decode.
    pub rejected: u64,
    /// Bytes read from the line.
    pub bytes_read: u64,
}

impl FrontEndLine {
    /// Opens the machine's serial terminal.
    pub fn open(qemu: &Qemu) -> Result<FrontEndLine, FirmwareError> {
        Ok(FrontEndLine {
            port: qemu.open_serial()?,
            decoder: FrameDecoder::new(),
            next_id: 1,
            rejected: 0,
            bytes_read: 0,
        })
    }

    /// The next message, or `None` when `deadline` passes first.
    pub fn next(&mut self, deadline: Instant) -> Result<Option<FromFrontEnd>, FirmwareError> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let mut buf = [0u8; 1];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let millis = u16::try_from(left.as_millis().min(1_000)).unwrap_or(1_000);
            let mut fds = [PollFd::new(self.port.as_fd(), PollFlags::POLLIN)];
            if poll(&mut fds, PollTimeout::from(millis))
                .map_err(|e| FirmwareError::Line(e.into()))?
                == 0
            {
                continue;
            }
            if self.port.read(&mut buf).map_err(FirmwareError::Line)? == 0 {
                return Ok(None);
            }
            self.bytes_read += 1;
            match self.decoder.push::<FromFrontEnd>(buf[0]) {
                Some(Ok(message)) => return Ok(Some(message)),
                Some(Err(_)) => self.rejected += 1,
                None => {}
            }
        }
    }

    /// Reads until `pick` chooses a message, for at most `patience`.
    pub fn until<T>(
        &mut self,
        what: &str,
        patience: Duration,
        mut pick: impl FnMut(&FromFrontEnd) -> Option<T>,
    ) -> Result<T, FirmwareError> {
        let deadline = Instant::now() + patience;
        loop {
            let Some(message) = self.next(deadline)? else {
                return Err(FirmwareError::Timeout {
                    what: what.to_owned(),
                    patience,
                });
            };
            if let Some(found) = pick(&message) {
                return Ok(found);
            }
        }
    }

    /// The next boot message.
    pub fn boot(&mut self, patience: Duration) -> Result<BootInfo, FirmwareError> {
        self.until("boot message", patience, |m| match m {
            FromFrontEnd::Boot(info) => Some(*info),
            _ => None,
        })
    }

    /// The next housekeeping message.
    pub fn housekeeping(&mut self, patience: Duration) -> Result<Housekeeping, FirmwareError> {
        self.until("housekeeping", patience, |m| match m {
            FromFrontEnd::Housekeeping(h) => Some(*h),
            _ => None,
        })
    }

    /// Writes raw bytes to the line.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), FirmwareError> {
        self.port
            .write_all(bytes)
            .and_then(|()| self.port.flush())
            .map_err(FirmwareError::Line)
    }

    /// Sends `command` in a frame; returns the request's id.
    pub fn send(&mut self, command: Request) -> Result<u16, FirmwareError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let mut frame = [0u8; MAX_FRAME_BYTES];
        let len = encode_frame(&ToFrontEnd { id, command }, &mut frame)
            .map_err(|e| FirmwareError::Line(std::io::Error::other(e)))?;
        self.write(&frame[..len])?;
        Ok(id)
    }

    /// Sends `command` and waits at most `patience` for its reply.
    pub fn request(
        &mut self,
        command: Request,
        patience: Duration,
    ) -> Result<ReplyBody, FirmwareError> {
        let id = self.send(command)?;
        self.until("reply", patience, |m| match m {
            FromFrontEnd::Reply(reply) if reply.id == id => Some(reply.body),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 32-bit little-endian ELF with the given (type, flags, address, size) sections.
    fn elf(sections: &[(u32, u32, u32, u32)]) -> Vec<u8> {
        const SHENTSIZE: usize = 40;
        let shoff = 52usize;
        let mut out = vec![0u8; shoff + SHENTSIZE * sections.len()];
        out[..6].copy_from_slice(b"\x7fELF\x01\x01");
        out[0x20..0x24].copy_from_slice(&(shoff as u32).to_le_bytes());
        out[0x2E..0x30].copy_from_slice(&(SHENTSIZE as u16).to_le_bytes());
        out[0x30..0x32].copy_from_slice(&(sections.len() as u16).to_le_bytes());
        for (i, (kind, flags, addr, size)) in sections.iter().enumerate() {
            let at = shoff + i * SHENTSIZE;
            out[at + 4..at + 8].copy_from_slice(&kind.to_le_bytes());
            out[at + 8..at + 12].copy_from_slice(&flags.to_le_bytes());
            out[at + 12..at + 16].copy_from_slice(&addr.to_le_bytes());
            out[at + 20..at + 24].copy_from_slice(&size.to_le_bytes());
        }
        out
    }

    const PROGBITS: u32 = 1;
    const NOBITS: u32 = 8;
    const ALLOC: u32 = 2;

    #[test]
    fn flash_counts_code_and_data_images_and_ram_counts_data_bss_and_the_record() {
        let image = elf(&[
            (PROGBITS, ALLOC, 0, 236),               // .vector_table
            (PROGBITS, ALLOC | 4, 236, 12_000),      // .text
            (PROGBITS, ALLOC, 12_236, 1_000),        // .rodata
            (PROGBITS, ALLOC | 1, 0x2000_0000, 16),  // .data: in flash and RAM
            (NOBITS, ALLOC | 1, 0x2000_0010, 2_000), // .bss
            (PROGBITS, 0, 0, 300_000),               // .debug_info: neither
        ]);
        assert_eq!(
            Footprint::of_elf(&image),
            Some(Footprint {
                flash_bytes: 236 + 12_000 + 1_000 + 16,
                ram_bytes: 16 + 2_000 + BOOT_RECORD_BYTES,
            })
        );
    }

    #[test]
    fn what_is_not_a_32_bit_little_endian_elf_has_no_footprint() {
        assert_eq!(Footprint::of_elf(b""), None);
        assert_eq!(Footprint::of_elf(b"#!/bin/sh\n"), None);
        let mut big_endian = elf(&[]);
        big_endian[5] = 2;
        assert_eq!(Footprint::of_elf(&big_endian), None);
        // Section headers past the end of the file.
        let mut truncated = elf(&[(PROGBITS, ALLOC, 0, 10)]);
        truncated.truncate(60);
        assert_eq!(Footprint::of_elf(&truncated), None);
    }
}
