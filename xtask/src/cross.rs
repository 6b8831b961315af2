//! `cargo xtask cross`: the edge binaries for the glider's ARM boards, built with Debian's
//! toolchain and run under qemu-user; and `cargo xtask bench cross`.
//!
//! No rustup target can be downloaded on the project's machines, so the cross builds use
//! Debian's `rustc-web` (1.96) through the rustup `cargo`: for aarch64 with Debian's arm64
//! standard library, for armv7 with a standard library built from `rust-web-src`
//! (`-Zbuild-std`, hence `RUSTC_BOOTSTRAP=1`). The linker, runner and C compiler of each
//! target are in `cross/<arch>.toml`, passed with `cargo --config`, so a person can build by
//! hand with the same file.
//!
//! Invariants: each target has its own cargo target dir (`target/cross/<arch>`), so neither
//! the host build nor the other target is invalidated by the other rustc; the release
//! binaries are built once and copied to `target/<triple>/release/`, where the test step,
//! the bench and the Containerfiles find them; every edge binary comes from
//! [`EDGE_BINARIES`].

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{cargo, packages, run, target_dir, workspace_root};

/// An edge binary: its package and its `[[bin]]` name.
#[derive(Debug, Clone, Copy)]
pub struct EdgeBinary {
    pub package: &'static str,
    pub bin: &'static str,
}

impl EdgeBinary {
    const fn new(package: &'static str, bin: &'static str) -> Self {
        EdgeBinary { package, bin }
    }
}

/// Everything that runs on the board. One line per binary: `cargo xtask cross`, its test
/// step (`--version` under qemu) and the bench all follow this list.
pub const EDGE_BINARIES: &[EdgeBinary] = &[
    EdgeBinary::new("aloft-agent", "aloft-agent"),
    EdgeBinary::new("aloftctl", "aloftctl"),
];

/// The agent, which the emulated-flight test and the first-reading figure run.
const AGENT: &str = "aloft-agent";

/// The size the issue allows each release binary on the board.
const MAX_BINARY_BYTES: u64 = 6_000_000;

/// Bound of every wait on the emulated agent: qemu-user runs it several times slower than
/// native, on a shared 2-core machine.
const PATIENCE: Duration = Duration::from_secs(120);

/// A board's CPU family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    /// 64-bit ARM (Raspberry Pi 3/4/5, most current boards): aarch64-unknown-linux-gnu.
    Aarch64,
    /// 32-bit ARMv7 with hardware float: armv7-unknown-linux-gnueabihf.
    Armv7,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::Aarch64, Arch::Armv7];

    pub fn name(self) -> &'static str {
        match self {
            Arch::Aarch64 => "aarch64",
            Arch::Armv7 => "armv7",
        }
    }

    pub fn triple(self) -> &'static str {
        match self {
            Arch::Aarch64 => "aarch64-unknown-linux-gnu",
            Arch::Armv7 => "armv7-unknown-linux-gnueabihf",
        }
    }

    /// The qemu-user emulator and the root it loads the target's glibc from.
    fn qemu(self) -> (&'static str, &'static str) {
        match self {
            Arch::Aarch64 => ("qemu-aarch64", "/usr/aarch64-linux-gnu"),
            Arch::Armv7 => ("qemu-arm", "/usr/arm-linux-gnueabihf"),
        }
    }

    /// The emulator's command line before the binary: the same as cargo's runner in
    /// `cross/<arch>.toml` (a test holds them equal). The guest's libraries are pinned to
    /// the root's, since the host's ld.so.cache also lists libc6:arm64, another build of
    /// glibc than the cross loader's, with which the first pthread_create hangs.
    fn runner(self) -> [String; 5] {
        let (qemu, root) = self.qemu();
        [
            qemu.to_owned(),
            "-L".to_owned(),
            root.to_owned(),
            "-E".to_owned(),
            format!("LD_LIBRARY_PATH={root}/lib"),
        ]
    }

    /// Debian's armhf standard library (1.85) is older than the workspace's
    /// rust-version, so armv7 builds its own from source.
    fn builds_std(self) -> bool {
        self == Arch::Armv7
    }

    /// What the build needs from Debian, and why.
    fn packages(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Arch::Aarch64 => &[
                (
                    "rustc-web",
                    "Debian's rustc 1.96, which the cross builds use",
                ),
                (
                    "libstd-rust-web-dev:arm64",
                    "rustc-web's standard library for aarch64",
                ),
                ("gcc-aarch64-linux-gnu", "the aarch64 linker and C compiler"),
                ("libc6-dev-arm64-cross", "aarch64 glibc to link against"),
            ],
            Arch::Armv7 => &[
                (
                    "rustc-web",
                    "Debian's rustc 1.96, which the cross builds use",
                ),
                (
                    "rust-web-src",
                    "the standard library's source, built for armv7 (-Zbuild-std)",
                ),
                ("gcc-arm-linux-gnueabihf", "the armv7 linker and C compiler"),
                ("libc6-dev-armhf-cross", "armhf glibc to link against"),
            ],
        }
    }

    /// `cross/<arch>.toml`.
    fn cargo_config(self) -> PathBuf {
        workspace_root()
            .join("cross")
            .join(format!("{}.toml", self.name()))
    }

    /// This target's own cargo target dir.
    fn build_dir(self) -> PathBuf {
        target_dir().join("cross").join(self.name())
    }

    /// Where `cargo xtask cross` leaves the release binaries.
    pub fn release_dir(self) -> PathBuf {
        target_dir().join(self.triple()).join("release")
    }

    /// A command that runs `binary` of this arch under qemu-user.
    pub fn emulate(self, binary: &Path) -> Command {
        let [qemu, args @ ..] = self.runner();
        let mut cmd = Command::new(qemu);
        cmd.args(args).arg(binary);
        cmd
    }

    /// `cargo SUBCOMMAND` for this target, with its config, target dir and toolchain.
    fn cargo(self, subcommand: &str) -> Command {
        let mut cmd = cargo();
        cmd.arg("--config")
            .arg(self.cargo_config())
            .arg(subcommand)
            .arg("--locked")
            .arg("--target-dir")
            .arg(self.build_dir());
        if self.builds_std() {
            // Lets the stable cargo and rustc take -Zbuild-std, and compile the standard
            // library, which uses unstable features.
            cmd.env("RUSTC_BOOTSTRAP", "1");
        }
        cmd
    }
}

/// What `cargo xtask test` and `cargo xtask bench cross` emulate with.
const EMULATOR_PACKAGES: &[(&str, &str)] = &[(
    "qemu-user",
    "qemu-aarch64 and qemu-arm, which run the cross-compiled binaries and tests",
)];

/// Installs what building (and, with `emulate`, running) for `arches` needs, when missing.
pub fn ensure_packages(arches: &[Arch], emulate: bool, install: bool) -> Result<()> {
    let mut wanted: Vec<(&'static str, &'static str)> = Vec::new();
    for arch in arches {
        for p in arch.packages() {
            if !wanted.iter().any(|w| w.0 == p.0) {
                wanted.push(*p);
            }
        }
    }
    if emulate {
        wanted.extend_from_slice(EMULATOR_PACKAGES);
    }
    if !install {
        let missing: Vec<&str> = wanted
            .iter()
            .map(|(p, _)| *p)
            .filter(|p| package_version(p).is_none())
            .collect();
        if !missing.is_empty() {
            bail!(
                "missing Debian packages {} (not installing: --no-install)",
                missing.join(" ")
            );
        }
        return Ok(());
    }
    if wanted.iter().any(|(p, _)| p.ends_with(":arm64")) {
        add_arm64_architecture()?;
    }
    packages::ensure(&wanted)?;
    check_std_matches_rustc(arches)
}

/// arm64 packages install beside the amd64 ones only once dpkg knows the architecture.
fn add_arm64_architecture() -> Result<()> {
    let foreign = Command::new("dpkg")
        .arg("--print-foreign-architectures")
        .output()
        .context("could not run dpkg (is this a Debian machine?)")?;
    if String::from_utf8_lossy(&foreign.stdout)
        .split_whitespace()
        .any(|a| a == "arm64")
    {
        return Ok(());
    }
    run(
        "dpkg --add-architecture arm64 (for Debian's aarch64 standard library)",
        Command::new("dpkg").args(["--add-architecture", "arm64"]),
    )
    .context("adding arm64 needs root: run `sudo dpkg --add-architecture arm64`")
}

fn package_version(package: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", package])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// rustc refuses a standard library built by another version (E0514). A security update
/// of rustc-web alone would leave the arm64 library behind: say how to bring both level.
fn check_std_matches_rustc(arches: &[Arch]) -> Result<()> {
    let rustc = package_version("rustc-web");
    // bookworm itself has rustc-web 1.85; 1.96 comes from bookworm-security.
    let minor = rustc
        .as_deref()
        .and_then(|v| v.split('.').nth(1))
        .and_then(|m| m.parse::<u32>().ok());
    if minor.is_none_or(|m| m < 89) {
        bail!(
            "rustc-web {} is older than the workspace's rust-version 1.89: enable the \
             bookworm-security suite in apt's sources and run apt-get update",
            rustc.as_deref().unwrap_or("(missing)")
        );
    }
    if !arches.contains(&Arch::Aarch64) {
        return Ok(());
    }
    let std = package_version("libstd-rust-web-dev:arm64");
    if rustc != std {
        bail!(
            "rustc-web is {} but libstd-rust-web-dev:arm64 is {}; run\n  apt-get install rustc-web libstd-rust-web-dev:arm64",
            rustc.as_deref().unwrap_or("missing"),
            std.as_deref().unwrap_or("missing")
        );
    }
    Ok(())
}

/// Builds every edge binary for `arch` with the release profile and copies it to
/// `target/<triple>/release/`; returns the copies. Cargo makes this a no-op when nothing
/// changed, so the test step and the bench share one build.
pub fn build(arch: Arch) -> Result<Vec<PathBuf>> {
    let started = Instant::now();
    let mut cmd = arch.cargo("build");
    cmd.arg("--release");
    if arch.builds_std() {
        // The release profile aborts on panic: std is built to match.
        cmd.arg("-Zbuild-std=std,panic_abort");
    }
    for b in EDGE_BINARIES {
        cmd.args(["-p", b.package, "--bin", b.bin]);
    }
    // Without aloftctl's Parquet writer (arrow-rs and zstd), which the board does not need:
    // every other export format stays. No edge binary has another default feature.
    cmd.arg("--no-default-features");
    run(&format!("cross build ({}, release)", arch.name()), &mut cmd)?;
    let built = arch.build_dir().join(arch.triple()).join("release");
    let into = arch.release_dir();
    std::fs::create_dir_all(&into).with_context(|| format!("create {}", into.display()))?;
    let mut binaries = Vec::new();
    for b in EDGE_BINARIES {
        let from = built.join(b.bin);
        let to = into.join(b.bin);
        copy_if_changed(&from, &to)?;
        binaries.push(to);
    }
    eprintln!(
        "xtask: cross build ({}) took {:.0} s; binaries in {}",
        arch.name(),
        started.elapsed().as_secs_f64(),
        into.display()
    );
    Ok(binaries)
}

/// Copies unless `to` is already the same file's content (keeps its mtime for make-like
/// consumers and avoids rewriting megabytes on every no-op build).
fn copy_if_changed(from: &Path, to: &Path) -> Result<()> {
    let new = std::fs::read(from).with_context(|| format!("read {}", from.display()))?;
    if std::fs::read(to).is_ok_and(|old| old == new) {
        return Ok(());
    }
    // Write beside and rename, so a running copy (Text file busy) is never half-written.
    let partial = to.with_extension("partial");
    std::fs::write(&partial, &new).with_context(|| format!("write {}", partial.display()))?;
    let mode = std::fs::metadata(from)?.permissions();
    std::fs::set_permissions(&partial, mode)?;
    std::fs::rename(&partial, to).with_context(|| format!("rename to {}", to.display()))?;
    Ok(())
}

/// `cargo xtask cross ARCH...`; with `test`, also the checks under qemu-user.
pub fn cross(arches: &[Arch], test: bool, install: bool) -> Result<()> {
    if test {
        return self::test(arches, install);
    }
    ensure_packages(arches, false, install)?;
    for arch in arches {
        for binary in build(*arch)? {
            let bytes = std::fs::metadata(&binary)?.len();
            eprintln!("xtask: {} ({bytes} bytes)", binary.display());
        }
    }
    Ok(())
}

/// The library tests each arch runs under qemu-user, and why those.
///
/// aarch64 is the glider's board: every unit test of the agent, whose lib holds the
/// supervisor, store writer, serial layer and config. armv7 is 32-bit (usize and time_t
/// are 32 bits): the crates whose correctness depends on widths, the wire format the 64-bit
/// hub must decode (protocol), the store's offsets and sizes (store), and the drivers'
/// fixed-point compensation and the parsers (sensors). The agent's own tests would add its
/// tree (tokio, clap, ...) to the armv7 build for code that does not change with the width.
fn unit_tests(arch: Arch) -> &'static [&'static str] {
    match arch {
        Arch::Aarch64 => &["aloft-agent"],
        Arch::Armv7 => &["aloft-protocol", "aloft-store", "aloft-sensors"],
    }
}

/// Integration tests every arch runs under qemu-user, as (package, test target): the batch
/// codec's test vectors, encoded on x86_64 and compiled into the test, which each ARM build
/// must decode to the expected records and encode to the same bytes.
const CROSS_VECTOR_TESTS: &[(&str, &str)] = &[("aloft-protocol", "batch_vector")];

/// The cross steps of `cargo xtask test` (and of `cargo xtask cross --test`): for each
/// arch, the release build (shared with the bench), its size, `--version` of each edge
/// binary under qemu, the unit tests and the batch codec's vector test under qemu; and on
/// aarch64 the agent flying the simulated flight with its serial sensors on
/// pseudo-terminals.
///
/// With `install` false and packages missing, the steps are skipped (as the host suite
/// skips the gpsd tests), saying so.
pub fn test(arches: &[Arch], install: bool) -> Result<()> {
    if let Err(e) = ensure_packages(arches, true, install) {
        if install {
            return Err(e);
        }
        eprintln!("xtask: skipping the cross steps: {e:#}");
        return Ok(());
    }
    for &arch in arches {
        let binaries = timed(&format!("cross build {}", arch.name()), || build(arch))?;
        check_sizes(arch, &binaries)?;
        timed(&format!("--version under qemu ({})", arch.name()), || {
            versions(arch, &binaries)
        })?;
        timed(
            &format!("unit and vector tests under qemu ({})", arch.name()),
            || run_unit_tests(arch),
        )?;
        if arch == Arch::Aarch64 {
            let agent = arch.release_dir().join(AGENT);
            timed("aarch64 agent on pseudo-terminals under qemu", || {
                let mut flight = EmulatedFlight::start(arch, &agent, None)?;
                flight.until_serial_sensors_read()?;
                flight.stop()
            })?;
            timed(
                "aarch64 agent under qemu syncing with the x86 hub, restarted by aloftctl",
                || with_hub(arch, &agent),
            )?;
        }
    }
    Ok(())
}

/// End to end across architectures: the emulated agent on the simulated flight syncs with
/// the host's `aloft-hub` over loopback TLS, every sensor shows running through the host's
/// `aloftctl`, and a restart issued with it reaches the emulated agent and succeeds.
fn with_hub(arch: Arch, agent: &Path) -> Result<()> {
    run(
        "build the host's aloft-hub and aloftctl",
        cargo().args([
            "build",
            "--quiet",
            "--locked",
            "-p",
            "aloft-hub",
            "-p",
            "aloftctl",
            "--bins",
        ]),
    )?;
    let bin = target_dir().join("debug");
    let dir = std::env::temp_dir().join(format!(
        "aloft-cross-hub-{}-{}",
        arch.name(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let result = with_hub_in(arch, agent, &bin, &dir);
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!(
            "xtask: the hub's log and data are kept in {}",
            dir.display()
        );
    }
    result
}

fn with_hub_in(arch: Arch, agent: &Path, bin: &Path, dir: &Path) -> Result<()> {
    const NODE: &str = "glider-sim";
    let crate::demo::HubFiles {
        data: hub_dir,
        admin_token: admin,
        node_token: node,
    } = crate::demo::init_hub(bin, dir, NODE)?;
    let (hub, address) = crate::demo::start_hub(bin, &hub_dir, dir)?;
    let ca = hub_dir.join("ca.pem");
    let section = format!(
        "\n[hub]\nurl = \"wss://{address}/v1/nodes/connect\"\ntoken_file = {node:?}\nca_file = {ca:?}\n"
    );
    let mut flight = EmulatedFlight::start(arch, agent, Some(&section))?;
    let token = std::fs::read_to_string(&admin)?.trim().to_owned();
    let aloftctl = |args: &[&str]| -> Result<std::process::Output> {
        Command::new(bin.join("aloftctl"))
            .args(args)
            .env("ALOFT_CONFIG", dir.join("aloftctl.yaml"))
            .env("ALOFT_HUB", format!("https://{address}"))
            .env("ALOFT_TOKEN", &token)
            .env("ALOFT_CA", &ca)
            .env_remove("ALOFT_CONTEXT")
            .output()
            .context("could not start aloftctl")
    };
    let deadline = Instant::now() + PATIENCE;
    loop {
        let out = aloftctl(&["get", "sensors", "--node", NODE, "-o", "json"])?;
        if out.status.success() && crate::demo::all_running(&String::from_utf8_lossy(&out.stdout)) {
            break;
        }
        if let Some(status) = flight.child.try_wait()? {
            bail!(
                "the emulated agent exited ({status}); its log:\n{}",
                flight.log()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the emulated agent's sensors were not all running at the hub within {PATIENCE:?}; \
                 aloftctl said: {}{}\nthe agent's log:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                flight.log()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = aloftctl(&[
        "restart",
        "sensor",
        "cosmic-ray",
        "--node",
        NODE,
        "--wait",
        "--timeout",
        "60s",
    ])?;
    if !out.status.success() {
        bail!(
            "aloftctl restart did not succeed ({}): {}{}\nthe agent's log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            flight.log()
        );
    }
    eprintln!(
        "xtask: {}",
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
    );
    flight.stop()?;
    hub.stop(PATIENCE)
}

fn timed<T>(step: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let started = Instant::now();
    let result = f();
    eprintln!(
        "xtask: {step}: {} in {:.0} s",
        if result.is_ok() { "ok" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    result
}

fn check_sizes(arch: Arch, binaries: &[PathBuf]) -> Result<()> {
    for binary in binaries {
        let bytes = std::fs::metadata(binary)?.len();
        if bytes > MAX_BINARY_BYTES {
            bail!(
                "{} is {bytes} bytes, over the {MAX_BINARY_BYTES} the board allows ({})",
                binary.display(),
                arch.name()
            );
        }
    }
    Ok(())
}

/// Each binary starts on the emulated CPU and says the workspace's version.
fn versions(arch: Arch, binaries: &[PathBuf]) -> Result<()> {
    for binary in binaries {
        let out = arch
            .emulate(binary)
            .arg("--version")
            .output()
            .with_context(|| format!("run {} under qemu", binary.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let name = binary.file_name().unwrap_or_default().to_string_lossy();
        let expected = format!("{name} {}", env!("CARGO_PKG_VERSION"));
        if !out.status.success() || text.trim() != expected {
            bail!(
                "{} --version under {} said {:?} ({}), not {expected:?}; stderr: {}",
                binary.display(),
                arch.qemu().0,
                text.trim(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        eprintln!("xtask: {} under {}: {}", name, arch.qemu().0, text.trim());
    }
    Ok(())
}

/// Unit tests of host-kernel behaviour that qemu-user does not reproduce, skipped under
/// emulation (they run on the host): qemu does not know the i2c-dev `I2C_SLAVE` ioctl and
/// answers ENOSYS where Linux answers ENOTTY for a file that is not an adapter.
const NOT_UNDER_QEMU: &[&str] = &[
    "i2c::tests::dev_null_is_refused_at_open_as_not_an_adapter",
    "i2c::tests::regular_file_is_not_an_adapter_either",
];

fn run_unit_tests(arch: Arch) -> Result<()> {
    let mut cmd = arch.cargo("test");
    if arch.builds_std() {
        // Tests unwind: std, the test harness and panic_unwind are built for them.
        cmd.arg("-Zbuild-std");
    }
    for p in unit_tests(arch) {
        cmd.args(["-p", p]);
    }
    cmd.arg("--lib")
        // A cheaper dev profile under emulation: no debug info to write and link (the
        // workspace already builds dependencies at opt-level 2 in dev).
        .env("CARGO_PROFILE_DEV_DEBUG", "0")
        .env("CARGO_INCREMENTAL", "0")
        .args(["--", "--exact"]);
    for test in NOT_UNDER_QEMU {
        cmd.args(["--skip", test]);
    }
    run(
        &format!(
            "unit tests of {} under {}",
            unit_tests(arch).join(", "),
            arch.qemu().0
        ),
        &mut cmd,
    )?;
    for (package, test) in CROSS_VECTOR_TESTS {
        let mut cmd = arch.cargo("test");
        if arch.builds_std() {
            cmd.arg("-Zbuild-std");
        }
        cmd.args(["-p", package, "--test", test])
            .env("CARGO_PROFILE_DEV_DEBUG", "0")
            .env("CARGO_INCREMENTAL", "0");
        run(
            &format!("{package} --test {test} under {}", arch.qemu().0),
            &mut cmd,
        )?;
    }
    Ok(())
}

/// The agent of one arch under qemu-user on the simulated flight (deploy/examples/sim.toml)
/// with a temporary store and its endpoint on a free loopback port. The simulation puts
/// the serial devices behind pseudo-terminals, so the emulated agent opens and configures
/// real ttys through the same serial layer it uses on the board. Stopped on drop.
struct EmulatedFlight {
    child: Child,
    port: u16,
    dir: PathBuf,
    started: Instant,
}

impl EmulatedFlight {
    fn start(arch: Arch, agent: &Path, hub: Option<&str>) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "aloft-cross-{}-{}",
            arch.name(),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let example = workspace_root().join("deploy/examples/sim.toml");
        let text = std::fs::read_to_string(&example)
            .with_context(|| format!("read {}", example.display()))?;
        let replacements = [
            (
                "\"/tmp/aloft-sim/store\"",
                format!("{:?}", dir.join("store")),
            ),
            (
                "\"/tmp/aloft-sim/capture/",
                format!("\"{}/", dir.join("capture").display()),
            ),
            ("\"127.0.0.1:9464\"", format!("\"127.0.0.1:{port}\"")),
        ];
        let mut config = text;
        for (from, to) in &replacements {
            if !config.contains(from) {
                bail!(
                    "{} no longer has {from}, which this step replaces with its own",
                    example.display()
                );
            }
            config = config.replace(from, to);
        }
        if let Some(hub) = hub {
            config.push_str(hub);
        }
        let path = dir.join("agent.toml");
        std::fs::write(&path, config)?;
        let log = std::fs::File::create(dir.join("agent.log"))?;
        let started = Instant::now();
        let child = arch
            .emulate(agent)
            .args(["run", "--config"])
            .arg(&path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {} under {}", agent.display(), arch.qemu().0))?;
        Ok(EmulatedFlight {
            child,
            port,
            dir,
            started,
        })
    }

    /// The agent's Prometheus text, or `None` while it does not answer yet.
    fn metrics(&self) -> Option<String> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
    }

    /// Polls the metrics until `done` says yes, failing if the agent exits or the
    /// patience runs out; returns the time since start at the first yes.
    fn until(&mut self, what: &str, done: impl Fn(&str) -> bool) -> Result<Duration> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(text) = self.metrics()
                && done(&text)
            {
                return Ok(self.started.elapsed());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the emulated agent exited ({status}) before {what}; its log:\n{}",
                    self.log()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "no {what} within {PATIENCE:?} under emulation; the agent's log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default();
        // The end is what explains a failure.
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Time from start to the first reading appended to the store.
    fn first_reading(&mut self) -> Result<Duration> {
        self.until("stored reading", |m| {
            sensors_with_readings(m).next().is_some()
        })
    }

    /// Both serial sensors (u-blox GNSS at 115200 and CosmicWatch at 9600, each on a
    /// pseudo-terminal) deliver readings: the port opened and its line settings took
    /// under qemu-user, which answers termios2 with ENOSYS.
    fn until_serial_sensors_read(&mut self) -> Result<()> {
        let took = self.until("readings from both serial sensors", |m| {
            let read: Vec<&str> = sensors_with_readings(m).collect();
            read.contains(&"gps") && read.contains(&"cosmic-ray")
        })?;
        eprintln!(
            "xtask: the emulated agent read gps and cosmic-ray over pseudo-terminals after {:.1} s",
            took.as_secs_f64()
        );
        Ok(())
    }

    /// SIGTERM, as systemd stops it: the agent must commit its store and exit 0.
    fn stop(mut self) -> Result<()> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if status.success() {
                    return Ok(());
                }
                bail!(
                    "the emulated agent exited with {status} on SIGTERM; its log:\n{}",
                    self.log()
                );
            }
            if Instant::now() > deadline {
                bail!("the emulated agent did not stop within {PATIENCE:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for EmulatedFlight {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sensors with a nonzero `aloft_readings_total` in a Prometheus text.
fn sensors_with_readings(metrics: &str) -> impl Iterator<Item = &str> {
    metrics.lines().filter_map(|line| {
        let rest = line.strip_prefix("aloft_readings_total{sensor=\"")?;
        let (sensor, rest) = rest.split_once('"')?;
        let count: u64 = rest.rsplit(' ').next()?.parse().ok()?;
        (count > 0).then_some(sensor)
    })
}

/// `cargo xtask bench cross`: the release binaries' sizes and the emulated agent's time to
/// its first stored reading. Reuses the test step's build when it is current.
pub fn bench() -> Result<()> {
    ensure_packages(&Arch::ALL, true, true)?;
    let mut sizes = Vec::new();
    for arch in Arch::ALL {
        build(arch)?;
        let agent = arch.release_dir().join(AGENT);
        sizes.push((arch, std::fs::metadata(&agent)?.len()));
    }
    let agent = Arch::Aarch64.release_dir().join(AGENT);
    let mut flight = EmulatedFlight::start(Arch::Aarch64, &agent, None)?;
    let first = flight.first_reading()?;
    flight.stop()?;
    for (arch, bytes) in sizes {
        println!("cross.{}_agent_bytes {bytes} bytes", arch.name());
    }
    println!("cross.aarch64_first_reading_s {:.2} s", first.as_secs_f64());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_runner_in_each_cross_config_is_the_emulator_xtask_runs() {
        for arch in Arch::ALL {
            let config = std::fs::read_to_string(arch.cargo_config()).unwrap_or_default();
            let quoted: Vec<String> = arch.runner().iter().map(|a| format!("{a:?}")).collect();
            let runner = config
                .split_once("runner = [")
                .and_then(|(_, rest)| rest.split_once(']'))
                .map(|(list, _)| list.split(',').map(str::trim).filter(|a| !a.is_empty()))
                .map(|list| list.map(str::to_owned).collect::<Vec<_>>());
            assert_eq!(runner, Some(quoted), "{}", arch.cargo_config().display());
        }
    }

    #[test]
    fn every_cross_vector_test_exists() {
        for (package, test) in CROSS_VECTOR_TESTS {
            let dir = package.strip_prefix("aloft-").unwrap_or(package);
            let path = workspace_root()
                .join(dir)
                .join("tests")
                .join(format!("{test}.rs"));
            assert!(path.is_file(), "{}", path.display());
        }
    }

    #[test]
    fn sensors_with_readings_counts_only_nonzero_reading_lines() {
        let text = "# HELP aloft_readings_total Readings taken.\n\
            aloft_readings_total{sensor=\"gps\",quantity=\"latitude\"} 12\n\
            aloft_readings_total{sensor=\"co2\",quantity=\"co2\"} 0\n\
            aloft_sensor_errors_total{sensor=\"pitot\",kind=\"nack\"} 3\n";
        assert_eq!(sensors_with_readings(text).collect::<Vec<_>>(), ["gps"]);
    }
}
