//! `cargo xtask bench export`: dataset export from the release hub, against the baselines
//! a researcher has without it, on the same ten million readings of the simulated flight
//! in the same run.
//!
//! The data: a hub data directory filled by `hub/examples/export_fill.rs` (release), which
//! ingests the flight's records through the hub's storage API in batches: node `bench`
//! with [`READINGS`] readings and node `bench-1m` with [`READINGS_1M`], the GNSS at
//! [`GPS_HZ`], the static port at [`STATIC_HZ`] and the pitot at [`PITOT_HZ`] (so ten
//! million readings are about two hours of flight). It is kept under
//! `target/export-bench/KEY/`, KEY naming those parameters, and reused while they stay.
//!
//! Figures, one a line `export.FIGURE VALUE UNIT`, each download by `curl` into a file:
//! - `export.parquet_per_s`, `export.csv_per_s`, `export.netcdf_per_s`: readings a second,
//!   `GET /api/v1/nodes/bench/export?format=F` from request to the last byte on disk;
//! - `export.ndjson_per_s`: the same through `GET /api/v1/nodes/bench/readings`;
//! - `export.pyarrow_per_s`: readings / (that NDJSON download + pyarrow reading the NDJSON
//!   and writing Parquet), the Python of `ALOFT_EXPORT_PYTHON` or
//!   `target/export-readers/venv`;
//! - `export.csv_vs_ndjson`, `export.parquet_vs_pyarrow`: the ratios (targets: at least 1);
//! - `export.parquet_rss_mb`, `export.parquet_rss_1m_mb`: the peak resident memory
//!   (VmHWM) of a fresh hub process that serves only that one Parquet export, of `bench`
//!   and of `bench-1m`.
//!
//! A figure that cannot be had (a format this build does not have, no Python) is named on
//! standard error with why, and the others are still measured. Nothing asserts.
//! `ALOFT_BENCH_BIN=DIR` uses the `aloft-hub` in DIR (the filler is always built).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::bench_hub_process::Process;
use crate::procfs::status_kb;
use crate::{cargo, run, target_dir};

/// Readings of node `bench`.
pub const READINGS: u64 = 10_000_000;
/// Readings of node `bench-1m`.
pub const READINGS_1M: u64 = 1_000_000;
/// GNSS fixes a second (11 readings each).
pub const GPS_HZ: u32 = 25;
/// Static port conversions a second (3 readings each).
pub const STATIC_HZ: u32 = 250;
/// Pitot conversions a second (2 readings each).
pub const PITOT_HZ: u32 = 125;
/// Changes when the filler's output changes, so an old cache is not reused.
const FILL_VERSION: u32 = 1;

const NODE: &str = "bench";
const NODE_1M: &str = "bench-1m";

pub fn bench() -> Result<()> {
    crate::packages::ensure(&[("curl", "downloads the exports the export bench times")])?;
    let bin = match std::env::var_os("ALOFT_BENCH_BIN") {
        Some(dir) => PathBuf::from(dir),
        None => {
            run(
                "build the release hub",
                cargo().args([
                    "build",
                    "--quiet",
                    "--locked",
                    "--release",
                    "-p",
                    "aloft-hub",
                ]),
            )?;
            target_dir().join("release")
        }
    };
    let data = filled()?;
    let scratch = target_dir()
        .join("export-bench")
        .join(format!("out-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let result = measure(&bin, &data, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// The filled data directory, made once per set of parameters.
fn filled() -> Result<PathBuf> {
    let key = format!(
        "flight-v{FILL_VERSION}-g{GPS_HZ}-s{STATIC_HZ}-p{PITOT_HZ}-n{READINGS}-m{READINGS_1M}"
    );
    let dir = target_dir().join("export-bench").join(key);
    let data = dir.join("hub");
    if dir.join("done").is_file() {
        eprintln!("xtask: reusing the filled hub in {}", data.display());
        return Ok(data);
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let started = Instant::now();
    run(
        "fill a hub with the simulated flight (release, in-process ingest)",
        cargo()
            .args([
                "run",
                "--quiet",
                "--locked",
                "--release",
                "-p",
                "aloft-hub",
                "--example",
                "export_fill",
                "--",
            ])
            .arg(&data)
            .args([
                GPS_HZ.to_string(),
                STATIC_HZ.to_string(),
                PITOT_HZ.to_string(),
            ])
            .arg(format!("{NODE}={READINGS}"))
            .arg(format!("{NODE_1M}={READINGS_1M}")),
    )?;
    std::fs::write(dir.join("done"), b"")?;
    eprintln!("xtask: filled in {:.0} s", started.elapsed().as_secs_f64());
    Ok(data)
}

/// The release hub serving `data` on a free port.
struct Serving {
    process: Process,
    addr: String,
    ca: PathBuf,
    token: String,
}

impl Serving {
    fn start(bin: &Path, data: &Path) -> Result<Serving> {
        let (process, addr) = crate::bench_hub_process::run_hub(bin, data)?;
        let token = std::fs::read_to_string(data.with_extension("admin.token"))?
            .trim()
            .to_owned();
        Ok(Serving {
            process,
            addr,
            ca: data.join("ca.pem"),
            token,
        })
    }

    /// Downloads `path` into `file`; the seconds it took. Anything but 200 is an error
    /// with the hub's message.
    fn download(&self, path: &str, file: &Path) -> Result<f64> {
        let started = Instant::now();
        let output = Command::new("curl")
            .args(["--silent", "--show-error", "--output"])
            .arg(file)
            .args(["--write-out", "%{http_code}", "--cacert"])
            .arg(&self.ca)
            .args(["--header", &format!("Authorization: Bearer {}", self.token)])
            .arg(format!("https://{}{path}", self.addr))
            .stderr(Stdio::piped())
            .output()
            .context("running curl")?;
        let seconds = started.elapsed().as_secs_f64();
        let code = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if !output.status.success() {
            bail!(
                "curl failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        if code != "200" {
            let body = std::fs::read_to_string(file).unwrap_or_default();
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned))
                .unwrap_or(body);
            bail!("HTTP {code}: {message}");
        }
        Ok(seconds)
    }

    /// The process's peak resident memory so far, MB.
    fn peak_rss_mb(&self) -> Option<f64> {
        status_kb(self.process.0.id(), "VmHWM:").map(|kb| kb as f64 / 1024.0)
    }
}

fn figure(name: &str, value: Result<f64>, unit: &str) -> Option<f64> {
    match value {
        Ok(v) => {
            println!("export.{name} {v:.2} {unit}");
            Some(v)
        }
        Err(e) => {
            eprintln!("xtask: export.{name} not measured: {e:#}");
            None
        }
    }
}

fn ratio(a: Option<f64>, b: Option<f64>, what: &str) -> Result<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Ok(a / b),
        _ => bail!("needs {what}"),
    }
}

fn python() -> Result<PathBuf> {
    let python = std::env::var_os("ALOFT_EXPORT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("export-readers/venv/bin/python"));
    if !python.exists() {
        bail!(
            "no Python with pyarrow at {} (set ALOFT_EXPORT_PYTHON)",
            python.display()
        );
    }
    Ok(python)
}

/// What a researcher does without Aloft's export: pyarrow reads the NDJSON and writes
/// Parquet (zstd, as the export does). The seconds it took.
fn pyarrow(ndjson: &Path, parquet: &Path) -> Result<f64> {
    let python = python()?;
    let script = "import sys, pyarrow.json as pj, pyarrow.parquet as pq\n\
                  table = pj.read_json(sys.argv[1])\n\
                  pq.write_table(table, sys.argv[2], compression='zstd')\n\
                  print(table.num_rows)\n";
    let started = Instant::now();
    let output = Command::new(&python)
        .args(["-c", script])
        .arg(ndjson)
        .arg(parquet)
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!(
            "pyarrow failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let rows: u64 = String::from_utf8_lossy(&output.stdout).trim().parse()?;
    if rows != READINGS {
        bail!("pyarrow read {rows} rows of {READINGS} readings");
    }
    Ok(seconds)
}

fn export_path(node: &str, format: &str) -> String {
    format!("/api/v1/nodes/{node}/export?format={format}")
}

fn measure(bin: &Path, data: &Path, scratch: &Path) -> Result<()> {
    let hub = Serving::start(bin, data)?;
    let per_s = |seconds: Result<f64>| seconds.map(|s| READINGS as f64 / s);
    let throughput = |format: &str| {
        let file = scratch.join(format!("export.{format}.tar"));
        eprintln!("xtask: exporting {READINGS} readings as {format}");
        let seconds = hub.download(&export_path(NODE, format), &file);
        if let Ok(s) = &seconds {
            let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            eprintln!("xtask: {format}: {s:.1} s, {:.0} MB", bytes as f64 / 1e6);
        }
        let _ = std::fs::remove_file(&file);
        per_s(seconds)
    };
    let parquet = figure("parquet_per_s", throughput("parquet"), "readings/s");
    let csv = figure("csv_per_s", throughput("csv"), "readings/s");
    figure("netcdf_per_s", throughput("netcdf"), "readings/s");

    let ndjson_file = scratch.join("readings.ndjson");
    eprintln!("xtask: {READINGS} readings through /readings (NDJSON)");
    let (ndjson_s, pyarrow_total) =
        match hub.download(&format!("/api/v1/nodes/{NODE}/readings"), &ndjson_file) {
            Ok(download) => {
                eprintln!("xtask: NDJSON: {download:.1} s; pyarrow reading it, writing Parquet");
                let converted = pyarrow(&ndjson_file, &scratch.join("pyarrow.parquet"));
                (Ok(download), converted.map(|c| download + c))
            }
            Err(e) => {
                let again = anyhow::anyhow!("{e:#}");
                (Err(e), Err(again))
            }
        };
    let ndjson = figure("ndjson_per_s", per_s(ndjson_s), "readings/s");
    let _ = std::fs::remove_file(&ndjson_file);
    let pyarrow = figure("pyarrow_per_s", per_s(pyarrow_total), "readings/s");
    figure(
        "csv_vs_ndjson",
        ratio(csv, ndjson, "export.csv_per_s and export.ndjson_per_s"),
        "x",
    );
    figure(
        "parquet_vs_pyarrow",
        ratio(
            parquet,
            pyarrow,
            "export.parquet_per_s and export.pyarrow_per_s",
        ),
        "x",
    );
    drop(hub);

    for (name, node) in [("parquet_rss_mb", NODE), ("parquet_rss_1m_mb", NODE_1M)] {
        figure(name, peak_rss(bin, data, scratch, node, "parquet"), "MB");
    }
    // For reference while Parquet is not in this build: the same with CSV (standard
    // error only; not a figure of the bench).
    for node in [NODE, NODE_1M] {
        if let Ok(mb) = peak_rss(bin, data, scratch, node, "csv") {
            eprintln!("xtask: for reference, peak RSS of a CSV export of {node}: {mb:.1} MB");
        }
    }
    Ok(())
}

/// The peak RSS of a fresh hub serving only one export of `node` in `format`, MB.
fn peak_rss(bin: &Path, data: &Path, scratch: &Path, node: &str, format: &str) -> Result<f64> {
    let hub = Serving::start(bin, data)?;
    let file = scratch.join(format!("rss-{node}.{format}.tar"));
    let result = hub.download(&export_path(node, format), &file);
    let _ = std::fs::remove_file(&file);
    result?;
    hub.peak_rss_mb().context("no VmHWM in /proc for the hub")
}
