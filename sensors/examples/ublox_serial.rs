//! Reads a u-blox GNSS receiver on a serial port as the agent does: sets the Airborne <2g
//! dynamic model (the default Portable model drops fixes above 12 000 m or 310 m/s) and
//! confirms it by reading it back, then splits the line into NMEA sentences and UBX frames
//! and prints one fix per epoch.
//!
//! On the board (a NEO-M8N on a USB adapter, or on the Pi's UART at `/dev/serial0`):
//!
//! ```text
//! cargo build --release --example ublox_serial -p aloft-sensors   # or cross-build
//! ./ublox_serial /dev/serial/by-id/usb-u-blox_AG_-_www.u-blox.com_u-blox_GNSS_receiver-if00
//! ./ublox_serial /dev/ttyAMA0 9600 10   # ten fixes at the factory line rate
//! ```
//!
//! The user needs read-write access to the port (the `dialout` group). A missing port, a
//! receiver that does not confirm the model or a port that vanishes ends the program with
//! a message and exit status 1.

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use aloft_protocol::DynamicModel;
use aloft_sensors::gps::fix::{Fix, FixAssembler};
use aloft_sensors::gps::framer::{GnssFramer, Item};
use aloft_sensors::gps::{nmea, ublox};
use aloft_sensors::serial::{self, LineError};

const USAGE: &str = "usage: ublox_serial [PORT (/dev/ttyACM0)] [BAUD (115200)] [COUNT]";

/// Bound of each read, and of each wait for an answer to a UBX command.
const TIMEOUT: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ublox_serial: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let path = args.first().map_or("/dev/ttyACM0", String::as_str);
    let baud = match args.get(1) {
        Some(text) => text
            .parse::<u32>()
            .map_err(|_| format!("bad baud rate {text:?}; {USAGE}"))?,
        None => 115_200,
    };
    let count = match args.get(2) {
        Some(text) => Some(
            text.parse::<u64>()
                .map_err(|_| format!("bad count {text:?}; {USAGE}"))?,
        ),
        None => None,
    };
    let mut port = serial::open(path, baud, TIMEOUT).map_err(|e| e.to_string())?;
    let info = ublox::configure_dynamic_model(&mut port, DynamicModel::Airborne2g, TIMEOUT)
        .map_err(|e| format!("the receiver on {path} did not confirm Airborne <2g: {e}"))?;
    println!(
        "{} (firmware {}) on {path}: dynamic model {:?}",
        info.module.as_deref().unwrap_or("u-blox receiver"),
        info.firmware.as_deref().unwrap_or("unknown"),
        info.dynamic_model
    );
    let mut framer = GnssFramer::new();
    let mut fixes = FixAssembler::new();
    let mut buf = [0u8; 4096];
    let mut printed = 0u64;
    while count.is_none_or(|n| printed < n) {
        let n = match port.read(&mut buf) {
            Ok(0) => return Err(format!("{path} closed")),
            Ok(n) => n,
            Err(e) => match LineError::from_io(&e) {
                LineError::Timeout => continue,
                _ => return Err(format!("{path}: {e}")),
            },
        };
        framer.push(buf.get(..n).unwrap_or_default());
        while let Some(item) = framer.next_item() {
            // UBX frames (the answers to the configuration) and skipped bytes pass by.
            let Item::Nmea(line) = item else { continue };
            let Ok(sentence) = nmea::parse(line) else {
                continue;
            };
            if let Some(fix) = fixes.push(&sentence) {
                println!("{}", describe(&fix));
                printed += 1;
            }
        }
    }
    Ok(())
}

fn describe(fix: &Fix) -> String {
    let or_dash = |v: Option<f64>, unit: &str, digits: usize| {
        v.map_or("-".into(), |v| format!("{v:.digits$}{unit}"))
    };
    format!(
        "{} {} {} alt {} gs {} sats {}{}",
        fix.time.map_or("--:--:--".into(), |t| t.to_string()),
        or_dash(fix.latitude_deg, "°", 6),
        or_dash(fix.longitude_deg, "°", 6),
        or_dash(fix.altitude_msl_m, " m", 1),
        or_dash(fix.ground_speed_mps, " m/s", 1),
        fix.satellites_used.map_or("-".into(), |n| n.to_string()),
        if fix.valid { "" } else { " (no fix)" }
    )
}
