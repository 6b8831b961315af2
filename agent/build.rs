//! The build time, for the certificate-time floor of the uplink (a board that boots in 1970
//! checks the hub's certificate at no earlier than this). `SOURCE_DATE_EPOCH` wins when set,
//! so reproducible builds (Debian's packaging, the cross build) stay reproducible.

use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rerun-if-changed=build.rs");
    let from_env = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let secs = from_env.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    println!("cargo:rustc-env=ALOFT_BUILD_UTC_S={secs}");
}
