//! The Python that holds the dataset readers nobody here wrote (pyarrow, pandas, netCDF4,
//! xarray, compliance-checker, icartt, aerofiles, frictionless, geojson, fastkml), for
//! tests that read an export back with them.
//!
//! `cargo xtask test` installs them in a venv and names its interpreter in
//! `ALOFT_EXPORT_PYTHON`; it also sets `ALOFT_REQUIRE_TOOLS=1`, and then a test that finds
//! no interpreter fails instead of skipping. A plain `cargo test` without the venv skips
//! those tests with a line on stderr.

use std::path::PathBuf;
use std::process::Command;

/// The environment variable naming the readers' Python interpreter.
pub const PYTHON_ENV: &str = "ALOFT_EXPORT_PYTHON";

/// The interpreter with the readers, or `None` (the caller skips) when there is none and
/// the tools are not required.
///
/// # Panics
///
/// When `ALOFT_REQUIRE_TOOLS=1` and no interpreter is named or it does not exist.
pub fn readers() -> Option<PathBuf> {
    let named = std::env::var_os(PYTHON_ENV).map(PathBuf::from);
    match named {
        Some(p) if p.exists() => Some(p),
        _ if std::env::var_os("ALOFT_REQUIRE_TOOLS").is_some_and(|v| v == "1") => {
            panic!(
                "{PYTHON_ENV} names no Python with the dataset readers, and ALOFT_REQUIRE_TOOLS=1"
            )
        }
        _ => {
            eprintln!(
                "skipped: {PYTHON_ENV} names no Python with the dataset readers (cargo xtask test installs them)"
            );
            None
        }
    }
}

/// What a Python script printed, when it succeeded.
#[derive(Debug, Clone)]
pub struct ScriptOutput {
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// Runs `script` with `python`, the arguments in `sys.argv[1:]`.
///
/// # Panics
///
/// When the script cannot start or exits with failure: its output is in the message.
pub fn run(python: &std::path::Path, script: &str, args: &[&std::ffi::OsStr]) -> ScriptOutput {
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "the Python reader failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    ScriptOutput { stdout, stderr }
}
