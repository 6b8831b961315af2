//! Real filesystems for tests that need a disk to fill or refuse writes: a tmpfs of a given
//! size and a read-only bind mount, made with mount(8).
//!
//! Invariants: a mount is made only when `mount` succeeds (else the constructor says `None`,
//! and the test decides whether that is a skip or a failure), and it is unmounted when its
//! value drops, so a failing test leaves nothing mounted. Mounting needs root.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted on a folder, unmounted when dropped.
#[derive(Debug)]
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (mount(8)'s `size=` syntax: `512k`, `8m`) on `dir`.
    pub fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(dir.to_path_buf()))
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A read-only bind mount of a folder, unmounted when dropped.
#[derive(Debug)]
pub struct ReadOnlyBind(PathBuf);

impl ReadOnlyBind {
    /// Binds `dir` at `at` and makes the bind read-only.
    pub fn new(dir: &Path, at: &Path) -> Option<ReadOnlyBind> {
        let bind = Command::new("mount")
            .arg("--bind")
            .arg(dir)
            .arg(at)
            .status()
            .ok()?;
        if !bind.success() {
            return None;
        }
        // From here the drop unmounts, also when the remount fails.
        let mount = ReadOnlyBind(at.to_path_buf());
        let ro = Command::new("mount")
            .args(["-o", "remount,bind,ro"])
            .arg(at)
            .status()
            .ok()?;
        ro.success().then_some(mount)
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ReadOnlyBind {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
