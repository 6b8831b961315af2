//! `cargo xtask`: the one entry point for project chores.
//!
//! - `test`: everything a contributor must run: installs the Debian packages the tests
//!   need and the Python dataset readers (a venv) when they are missing, then fmt check, clippy with warnings denied, the whole test
//!   suite, and a smoke run of the demo.
//! - `bench NAME`: one benchmark, printing `NAME.FIGURE VALUE UNIT` lines.
//! - `demo`: the main job on simulated sensors.
//! - `cross ARCH...`: the edge binaries for aarch64 and armv7 with Debian's toolchain.
//! - `deploy`: the checks of deploy/ that `test` runs.
//! - `firmware`: the detector front end's firmware images, with their flash and RAM use.
//! - `cycles`: the import cycles between each crate's modules (the test suite checks the
//!   same in `module_cycles::tests`).
//!
//! Invariant: `test` builds the workspace once (one profile, one feature set) and every
//! later step reuses that build (the cross steps build in their own target dirs, once,
//! shared with `bench cross`); nothing here asserts timing.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

mod bench_agent;
mod bench_control;
mod bench_export;
mod bench_hub;
mod bench_hub_process;
mod bench_mqtt;
mod bench_mqtt_in;
mod bench_sync;
mod cross;
mod demo;
mod deploy;
mod firmware;
mod module_cycles;
mod packages;
mod procfs;
mod readers;

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Aloft's project chores")]
struct Cli {
    #[command(subcommand)]
    command: Chore,
}

#[derive(Subcommand)]
enum Chore {
    /// Run everything a contributor must run: fmt, clippy, all tests, the demo smoke run.
    Test {
        /// Do not install missing Debian packages (tests that need them then fail or skip).
        #[arg(long)]
        no_install: bool,
        /// Arguments passed on to the test runner (a filter, for example).
        #[arg(last = true)]
        runner_args: Vec<OsString>,
    },
    /// Run one benchmark and print its figures, one `NAME.FIGURE VALUE UNIT` a line.
    Bench {
        /// Which benchmark.
        #[arg(value_enum)]
        name: Bench,
    },
    /// The main job on simulated sensors: a simulated flight, read live.
    Demo {
        /// A short non-interactive run that fails if the demo does (used by `test`).
        #[arg(long)]
        smoke: bool,
    },
    /// Build the edge binaries for ARM boards into target/<triple>/release/.
    Cross {
        /// Which boards' CPUs.
        #[arg(value_enum, required = true)]
        arches: Vec<cross::Arch>,
        /// Also run the checks of `cargo xtask test` for them under qemu-user.
        #[arg(long)]
        test: bool,
        /// Do not install missing Debian packages.
        #[arg(long)]
        no_install: bool,
    },
    /// Check deploy/ (systemd units, Kubernetes manifests, Containerfiles) as `test` does.
    Deploy {
        /// Do not install missing Debian or PyPI packages.
        #[arg(long)]
        no_install: bool,
    },
    /// List the import cycles between each crate's modules; fail if a crate has one.
    Cycles,
    /// Build the detector front end's firmware images (normal and fault-hooks) into
    /// target/firmware/images/ and print their flash and RAM use.
    Firmware {
        /// Do not install missing Debian packages.
        #[arg(long)]
        no_install: bool,
        /// Also check firmware/'s formatting and lint it (rust-web-clippy), as `test` does.
        #[arg(long)]
        check: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Bench {
    /// The release agent on the simulated flight: peak memory, CPU, wake-ups; and the
    /// memory of reading a million-reading backlog.
    Agent,
    /// Remote control over loopback: restart latency to "running again", and a queued
    /// command applied after a 60 s outage.
    Control,
    /// What 100 open watches cost the hub while a node syncs: CPU, event latency, API p99.
    Hub,
    /// Dataset export of ten million readings from the release hub (Parquet, CSV,
    /// NetCDF) against the NDJSON route and pyarrow; the export's peak memory.
    Export,
    /// Parsing throughput of NMEA and CosmicWatch lines against the `nmea` crate.
    Parse,
    /// Durable appends per second of the store against SQLite, and bytes per reading.
    Store,
    /// The ARM release binaries' sizes and the aarch64 agent's time to its first stored
    /// reading under qemu-user.
    Cross,
    /// Hub and agent syncing a million-reading backlog over TLS: speed, bytes, 1 Mbit/s link.
    Sync,
    /// The detector firmware's flash and RAM, bytes per event on the wire, and the event
    /// rate 115 200 baud carries, checked in QEMU.
    Firmware,
    /// The agent's MQTT bus against a real Mosquitto: publishes a second, and the agent's
    /// extra CPU and wake-ups with the bus on during the simulated flight; readings ingested
    /// from Mosquitto against the broker's own rate.
    Mqtt,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Chore::Test {
            no_install,
            runner_args,
        } => test(no_install, &runner_args),
        Chore::Bench { name } => bench(name),
        Chore::Demo { smoke } => demo::demo(smoke),
        Chore::Cross {
            arches,
            test,
            no_install,
        } => cross::cross(&arches, test, !no_install),
        Chore::Deploy { no_install } => deploy::test(!no_install),
        Chore::Cycles => module_cycles::check(&workspace_root()),
        Chore::Firmware { no_install, check } => firmware::firmware(!no_install, check),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    // xtask/ sits directly under the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

fn run(step: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: {step}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start {step}"))?;
    if !status.success() {
        bail!("{step} failed ({status})");
    }
    Ok(())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn test(no_install: bool, runner_args: &[OsString]) -> Result<()> {
    let started = std::time::Instant::now();
    if no_install {
        packages::report_missing(packages::TEST_PACKAGES);
    } else {
        packages::ensure(packages::TEST_PACKAGES)?;
    }
    // The Python that reads every export format back (test-support's `python::readers`).
    let readers = if no_install {
        readers::installed()
    } else {
        Some(readers::ensure()?)
    };

    run(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--", "--check"]),
    )?;
    run(
        "cargo clippy (warnings denied)",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
    )?;

    // The firmware (outside the workspace): its lints and both images, built once here for
    // the suite's firmware tests.
    let firmware_images = firmware::test(!no_install)?;
    no_aws_lc()?;

    // One build of every test target; the demo smoke run below reuses its binaries.
    let nextest = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut tests = cargo();
    if nextest {
        tests.args([
            "nextest",
            "run",
            "--workspace",
            "--locked",
            "--no-fail-fast",
        ]);
    } else {
        eprintln!("xtask: cargo-nextest not found, using cargo test");
        tests.args(["test", "--workspace", "--locked", "--no-fail-fast"]);
    }
    tests.args(runner_args);
    // Tests that need gpsd and friends fail (instead of skipping) when told the tools
    // were installed.
    if !no_install {
        tests.env("ALOFT_REQUIRE_TOOLS", "1");
    }
    if let Some(python) = &readers {
        tests.env("ALOFT_EXPORT_PYTHON", python);
    }
    if let Some(images) = &firmware_images {
        tests.env(aloft_test_support::firmware::IMAGES_ENV, images);
    }
    run("the test suite", &mut tests)?;
    if nextest {
        run(
            "doc tests",
            cargo().args(["test", "--workspace", "--locked", "--doc"]),
        )?;
    }

    demo::demo(true)?;
    cross_and_deploy(no_install)?;
    eprintln!(
        "xtask: all checks passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// rustls with `ring` only: no crate of the workspace may pull in aws-lc (it does not
/// cross-build with Debian's gcc; rumqttc's default TLS feature would bring it).
fn no_aws_lc() -> Result<()> {
    let out = cargo()
        .args(["tree", "--workspace", "--locked", "-i", "aws-lc-sys"])
        .output()
        .context("run cargo tree")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        bail!(
            "aws-lc-sys is in the dependency tree; turn its user's default features off:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    if !stderr.contains("did not match any packages") {
        bail!("cargo tree -i aws-lc-sys failed: {stderr}");
    }
    Ok(())
}

/// The ARM builds under qemu-user and the deploy artifacts' linters (after the host suite,
/// whose debug agent the unit checks point at).
fn cross_and_deploy(no_install: bool) -> Result<()> {
    cross::test(&cross::Arch::ALL, !no_install)?;
    deploy::test(!no_install)
}

fn bench(name: Bench) -> Result<()> {
    match name {
        Bench::Agent => bench_agent::bench(),
        Bench::Cross => cross::bench(),
        Bench::Control => bench_control::bench(),
        Bench::Hub => bench_hub::bench(),
        Bench::Export => bench_export::bench(),
        Bench::Sync => bench_sync::bench(),
        Bench::Firmware => firmware::bench(),
        Bench::Mqtt => bench_mqtt::bench(),
        Bench::Parse => run(
            "cargo bench parse",
            cargo().args([
                "bench",
                "--quiet",
                "--locked",
                "-p",
                "aloft-sensors",
                "--bench",
                "parse",
            ]),
        ),
        Bench::Store => run(
            "cargo bench store",
            cargo().args([
                "bench",
                "--quiet",
                "--locked",
                "-p",
                "aloft-store-candidates",
                "--bench",
                "store",
            ]),
        ),
    }
}
