//! gpsd as the reference decoder: a log file fed through gpsd by its own test harness
//! (`gpsfake`, on a free loopback port), its JSON reports collected.
//!
//! Needs Debian's `gpsd gpsd-clients gpsd-tools python3-gps`. Without them the tests that
//! use this fail when `ALOFT_REQUIRE_TOOLS=1` (the project's test command installs them and
//! sets it), and otherwise say they skipped on stderr and pass.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The Debian packages gpsfake and gpsd come in.
pub const PACKAGES: &str = "gpsd gpsd-clients gpsd-tools python3-gps";

/// How long gpsd may take over one log before the test gives up on it.
pub const GPSD_DEADLINE: Duration = Duration::from_secs(120);

/// Whether gpsfake and gpsd are installed; `false` means skip (already said on stderr).
pub fn tools_present(test: &str) -> bool {
    let runs = |program: &str, arg: &str| {
        Command::new(program)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    if runs("gpsfake", "--help") && runs("gpsd", "-V") {
        return true;
    }
    if std::env::var("ALOFT_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("gpsfake or gpsd is missing: install the Debian packages {PACKAGES}");
    }
    // Straight to stderr: the test harness would swallow eprintln! of a passing test.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: gpsfake or gpsd not found (Debian packages: {PACKAGES}); \
         set ALOFT_REQUIRE_TOOLS=1 to make this a failure"
    );
    false
}

/// gpsfake and the gpsd it starts, in their own process group: killed together when
/// dropped, so a failing or timed-out test leaves nothing running.
struct GpsdRun(Child);

impl Drop for GpsdRun {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.0.wait();
    }
}

fn free_loopback_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

/// gpsd's JSON reports for a log file, as gpsd's regression harness produces them.
///
/// gpsfake starts its own gpsd and connects to its control socket; on a loaded machine the
/// connection can come before gpsd listens ("Connection refused"), which is the harness's
/// start-up, not what is compared: such a run is tried again, at most three times.
pub fn gpsd_reports(log: &Path) -> Vec<serde_json::Value> {
    let mut attempt = 1;
    loop {
        match gpsfake_run(log) {
            Ok(reports) => return reports,
            Err(errors) if errors.contains("Connection refused") && attempt < 3 => {
                attempt += 1;
            }
            Err(errors) => panic!("gpsfake failed: {errors}"),
        }
    }
}

/// One gpsfake run over `log`: the JSON reports, or what gpsfake said when it failed.
fn gpsfake_run(log: &Path) -> Result<Vec<serde_json::Value>, String> {
    let port = free_loopback_port();
    let child = Command::new("gpsfake")
        .args(["-1", "-p", "-q", "-s", "115200", "-P"])
        .arg(port.to_string())
        .args(["-r", r#"?WATCH={"json":true}"#])
        .arg(log)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("start gpsfake");
    let mut run = GpsdRun(child);
    let mut stdout = run.0.stdout.take().expect("piped stdout");
    let mut stderr = run.0.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        let _ = tx.send(out);
    });
    // gpsfake -1 closes its output when the log is through; bounded in any case.
    let out = rx.recv_timeout(GPSD_DEADLINE).unwrap_or_else(|_| {
        panic!(
            "gpsfake did not finish {} within {GPSD_DEADLINE:?}",
            log.display()
        )
    });
    let status = run.0.wait().expect("gpsfake exit status");
    let mut errors = String::new();
    let _ = stderr.read_to_string(&mut errors);
    if !status.success() {
        return Err(format!("({status}): {errors}"));
    }
    Ok(out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("gpsd prints JSON"))
        .collect())
}
