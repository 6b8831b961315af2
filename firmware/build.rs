//! Puts memory.x and device.x where cortex-m-rt's link.x finds them: the linker's search
//! path, here the build's out dir.

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    for script in ["memory.x", "device.x"] {
        let text = std::fs::read(script).unwrap_or_default();
        if std::fs::write(out.join(script), text).is_err() {
            println!("cargo::error=could not write {script} to OUT_DIR");
        }
        println!("cargo::rerun-if-changed={script}");
    }
    println!("cargo::rustc-link-search={}", out.display());
}
