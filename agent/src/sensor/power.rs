//! The GPIO line that powers a sensor, for hard restarts.
//!
//! A [`PowerLine`] is the seam: [`GpioPowerLine`] drives a Linux GPIO character device
//! through linux-embedded-hal's gpio-cdev pin, [`SimulatedPowerLine`] records its
//! electrical levels so tests can check a hard restart pulled the line and let it go.
//!
//! Invariants: levels are electrical (`High`/`Low`), and `active_low` is applied in one
//! place ([`powered_level`]), so "off" is low for an active-high supply and high for an
//! active-low one; a line is left powered whenever the agent is not in the middle of a hard
//! restart.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use embedded_hal::digital::OutputPin;
use linux_embedded_hal::gpio_cdev::{self, Chip, LineRequestFlags};
use linux_embedded_hal::{CdevPin, CdevPinError};

use crate::config::PowerLineConfig;

/// An electrical level of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    /// Driven low.
    Low,
    /// Driven high.
    High,
}

/// The level that powers the sensor.
pub fn powered_level(active_low: bool) -> Level {
    if active_low { Level::Low } else { Level::High }
}

/// Why a power line could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PowerError {
    /// The GPIO chip or line could not be opened or requested.
    #[error("cannot use GPIO line {line} of {chip}: {source}")]
    Open {
        /// The chip.
        chip: PathBuf,
        /// The line offset.
        line: u32,
        /// What the kernel said.
        source: gpio_cdev::errors::Error,
    },
    /// Setting the line failed.
    #[error("cannot set GPIO line {line} of {chip}: {source}")]
    Set {
        /// The chip.
        chip: PathBuf,
        /// The line offset.
        line: u32,
        /// What the kernel said.
        source: CdevPinError,
    },
}

/// A line that switches a sensor's supply.
pub trait PowerLine: Send + fmt::Debug {
    /// Drives the line to `level`.
    fn set(&mut self, level: Level) -> Result<(), PowerError>;
}

/// A line of a Linux GPIO chip (`/dev/gpiochip0`), held as an output while the agent runs.
pub struct GpioPowerLine {
    pin: CdevPin,
    chip: PathBuf,
    line: u32,
}

impl fmt::Debug for GpioPowerLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpioPowerLine")
            .field("chip", &self.chip)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

impl GpioPowerLine {
    /// Requests the configured line as an output, driven to its powered level so that
    /// taking it over never cuts a running sensor's supply.
    pub fn open(config: &PowerLineConfig) -> Result<Self, PowerError> {
        let open_error = |source| PowerError::Open {
            chip: config.chip.clone(),
            line: config.line,
            source,
        };
        let mut chip = Chip::new(&config.chip).map_err(open_error)?;
        let initial = match powered_level(config.active_low) {
            Level::High => 1,
            Level::Low => 0,
        };
        let handle = chip
            .get_line(config.line)
            .and_then(|l| l.request(LineRequestFlags::OUTPUT, initial, "aloft-agent"))
            .map_err(open_error)?;
        let pin = CdevPin::new(handle).map_err(open_error)?;
        Ok(GpioPowerLine {
            pin,
            chip: config.chip.clone(),
            line: config.line,
        })
    }
}

impl PowerLine for GpioPowerLine {
    fn set(&mut self, level: Level) -> Result<(), PowerError> {
        let result = match level {
            Level::High => self.pin.set_high(),
            Level::Low => self.pin.set_low(),
        };
        result.map_err(|source| PowerError::Set {
            chip: self.chip.clone(),
            line: self.line,
            source,
        })
    }
}

/// A line that only remembers what it was told: every level it was set to, in order.
#[derive(Debug, Clone, Default)]
pub struct SimulatedPowerLine {
    levels: Arc<Mutex<Vec<Level>>>,
}

impl SimulatedPowerLine {
    /// A line with no transitions yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The levels set so far (shared by every clone).
    pub fn transitions(&self) -> Vec<Level> {
        self.levels
            .lock()
            .map(|l| l.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }
}

impl PowerLine for SimulatedPowerLine {
    fn set(&mut self, level: Level) -> Result<(), PowerError> {
        match self.levels.lock() {
            Ok(mut l) => l.push(level),
            Err(e) => e.into_inner().push(level),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_active_low_supply_is_powered_by_a_low_line() {
        assert_eq!(powered_level(true), Level::Low);
        assert_eq!(powered_level(false), Level::High);
    }

    #[test]
    fn a_missing_gpio_chip_fails_clearly_with_its_path_and_line() {
        let config = PowerLineConfig {
            chip: "/dev/gpiochip-aloft-missing".into(),
            line: 17,
            active_low: false,
            off_for: Duration::from_secs(1),
        };
        let e = GpioPowerLine::open(&config).expect_err("no such chip here");
        let message = e.to_string();
        assert!(message.contains("/dev/gpiochip-aloft-missing"), "{message}");
        assert!(message.contains("17"), "{message}");
        assert!(
            std::error::Error::source(&e).is_some(),
            "the kernel's error is kept as the source"
        );
    }

    #[test]
    fn a_simulated_line_records_every_level_in_order_across_clones() {
        let line = SimulatedPowerLine::new();
        let mut driver = line.clone();
        driver.set(Level::Low).expect("simulated");
        driver.set(Level::High).expect("simulated");
        assert_eq!(line.transitions(), vec![Level::Low, Level::High]);
    }
}
