//! Reads a BME280 on a Linux board through the kernel's i2c-dev interface, as the agent's
//! hardware path does, and prints one measurement a second.
//!
//! On the board (a Raspberry Pi: enable I2C with `raspi-config`, then the bus is
//! `/dev/i2c-1`; SDO to GND is address 0x76, to VDD 0x77):
//!
//! ```text
//! cargo build --release --example bme280_linux -p aloft-sensors   # or cross-build
//! ./bme280_linux /dev/i2c-1 0x76        # forever
//! ./bme280_linux /dev/i2c-1 0x77 5      # five readings
//! ```
//!
//! The user needs read-write access to the bus (the `i2c` group). A missing bus, a device
//! that does not answer or the wrong chip ends the program with a message and exit status 1.

use std::process::ExitCode;
use std::time::Duration;

use aloft_sensors::bme280::{ADDRESS_PRIMARY, Bme280};
use linux_embedded_hal::{Delay, I2cdev};

const USAGE: &str = "usage: bme280_linux [BUS (/dev/i2c-1)] [ADDRESS (0x76)] [COUNT]";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bme280_linux: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let bus = args.first().map_or("/dev/i2c-1", String::as_str);
    let address = match args.get(1) {
        Some(text) => {
            parse_address(text).ok_or_else(|| format!("bad address {text:?}; {USAGE}"))?
        }
        None => ADDRESS_PRIMARY,
    };
    let count = match args.get(2) {
        Some(text) => Some(
            text.parse::<u64>()
                .map_err(|_| format!("bad count {text:?}; {USAGE}"))?,
        ),
        None => None,
    };
    let i2c = I2cdev::new(bus).map_err(|e| format!("cannot open the I2C bus {bus}: {e}"))?;
    let mut delay = Delay;
    let mut sensor = Bme280::new(i2c, address);
    sensor
        .init(&mut delay)
        .map_err(|e| format!("no BME280 at {address:#04x} on {bus}: {e}"))?;
    println!("BME280 at {address:#04x} on {bus}");
    let mut done = 0u64;
    while count.is_none_or(|n| done < n) {
        let m = sensor
            .measure(&mut delay)
            .map_err(|e| format!("measurement failed: {e}"))?;
        let pressure = m
            .pressure_pa
            .map_or("-".into(), |p| format!("{:.2} hPa", p / 100.0));
        let humidity = m
            .relative_humidity
            .map_or("-".into(), |h| format!("{:.1} %RH", h * 100.0));
        println!("{:.2} °C  {pressure}  {humidity}", m.temperature_k - 273.15);
        done += 1;
        if count.is_none_or(|n| done < n) {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    Ok(())
}

/// `0x76`, `0X77` or `118`.
fn parse_address(text: &str) -> Option<u8> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u8::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}
