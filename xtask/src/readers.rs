//! The dataset readers of `cargo xtask test`: the Python packages nobody here wrote that the
//! export tests read every format back with (pyarrow, pandas, netCDF4, xarray,
//! compliance-checker, icartt, aerofiles, frictionless with its parquet extra, geojson,
//! fastkml), in a venv under the target dir.
//!
//! Invariant: the venv counts as ready only when its stamp file holds exactly the package
//! list below, written after pip succeeded; a changed list or an interrupted install is
//! installed again, and a ready venv costs one file read.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

use crate::{packages, run, target_dir};

const READER_PACKAGES: &[(&str, &str)] = &[(
    "python3-venv",
    "a venv for the dataset readers from PyPI (pyarrow, netCDF4, frictionless, ...)",
)];

/// PyPI packages: the readers each export format is checked with.
pub const PIP_PACKAGES: &[&str] = &[
    "pyarrow",
    "pandas",
    "netCDF4",
    "xarray",
    "compliance-checker",
    "icartt",
    "aerofiles",
    "frictionless[parquet]",
    "geojson",
    "fastkml",
];

/// Where the readers live.
fn venv() -> PathBuf {
    target_dir().join("export-readers").join("venv")
}

/// The stamp's content: the package list, one a line.
fn stamp_text() -> String {
    PIP_PACKAGES.iter().map(|p| format!("{p}\n")).collect()
}

/// The venv's interpreter if the readers are installed, without installing anything.
pub fn installed() -> Option<PathBuf> {
    let venv = venv();
    let python = venv.join("bin").join("python");
    let stamp = std::fs::read_to_string(venv.join("aloft-readers.stamp")).ok()?;
    (stamp == stamp_text() && python.exists()).then_some(python)
}

/// Makes the venv and installs the readers when they are missing; returns its interpreter.
pub fn ensure() -> Result<PathBuf> {
    if let Some(python) = installed() {
        return Ok(python);
    }
    packages::ensure(READER_PACKAGES)?;
    let venv = venv();
    let python = venv.join("bin").join("python");
    if !python.exists() {
        run(
            "python3 -m venv (for the dataset readers)",
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
        )?;
    }
    run(
        &format!("pip install {}", PIP_PACKAGES.join(" ")),
        Command::new(venv.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(PIP_PACKAGES),
    )?;
    let stamp = venv.join("aloft-readers.stamp");
    std::fs::write(&stamp, stamp_text()).with_context(|| format!("write {}", stamp.display()))?;
    Ok(python)
}
