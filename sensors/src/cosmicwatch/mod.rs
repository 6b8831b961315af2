//! The CosmicWatch desktop muon detector: its serial format (v2 and v3X), the
//! dead-time-corrected count rate, and a simulator of both generations.
//!
//! # Formats
//!
//! **v2** (Arduino Nano, 9600 baud): a block of `#` header lines at boot, the detector's
//! name (`Device ID: billy` in the real capture; older sketches print the bare name),
//! then one space-separated line per event:
//! `event_count arduino_time_ms adc_0_1023 sipm_mV deadtime_ms temperature_C`, with the
//! dead time accumulated before the event. Source: spenceraxani/
//! CosmicWatch-Desktop-Muon-Detector-v2, `Arduino/OLED/OLED.ino`, and the capture
//! `shared/data/captures/cosmicwatch-v2-slave-0deg.txt`.
//!
//! **v3X** (RP2040, 115200 baud, tab separated). The v3X repository
//! (spenceraxani/CosmicWatch-Desktop-Muon-Detector-v3X) ships its firmware only as `.uf2`
//! images; the layout is taken from its readers and from the open re-implementation that
//! documents compatibility with it:
//! - `Data/import_data.py` writes the legend
//!   `Event Timestamp[s] Flag ADC[12b] SiPM[mV] Deadtime[s] Temp[C] Press[Pa]
//!   Accel(X:Y:Z)[g] Gyro(X:Y:Z)[deg/sec] Name` (then appends the computer's time and date);
//! - `GUI/GUI.py` reads 13 columns from a computer file (the 11 above plus time and date)
//!   and 10 from the SD card (no `Name`), splitting accelerometer and gyroscope on `:`;
//! - deguio/CosmicWatch-Desktop-Muon-Detector-v3X, `Firmware/CosmicWatchOpen/FIRMWARE.md`
//!   §9: `Temp Press` present only when the BMP280 answered at boot, `Accel Gyro` only when
//!   the MPU-6050 did, `Name` only on USB; times `%.6f` s, flag 0/1, ADC 0..4095, SiPM
//!   `%.1f` mV, temperature `%.1f` °C, pressure `%.0f` Pa, `%.3f` g, `%.1f` deg/s; the
//!   header's title line `CosmicWatch: The Desktop Muon Detector v3X`, a
//!   `Detector Name: <name>` line, and `# HK ...` housekeeping comments during the run.
//!
//! # Layout
//!
//! - [`mod@line`](mod@line): zero-allocation parser of one line into a [`MuonEvent`] (SI units) or a
//!   header line; [`MuonEvent::write_line`] writes the firmware's text back;
//!   `impl Sample for MuonEvent`.
//! - [`stream`]: [`DetectorStream`]: format and name detection, reboot detection, bad
//!   line counting, bounded line reassembly from raw bytes.
//! - [`rate`]: [`CountRate`]: events / live time over a sliding window of detector time.
//! - [`detector`]: [`MuonDetector`], stream and rate together: lines in, readings out
//!   (what the agent's supervisor of a CosmicWatch port uses).
//! - [`sim`]: [`CosmicWatchSim`], a [`crate::serial::SerialDevice`].
//!
//! Invariants: no parser panics on any bytes; values are in SI units (s, V, K, Pa,
//! m s-2, rad s-1); a temperature outside the detector sensor's rated range (below
//! -40 °C) and a pressure below the BMP280's 300 hPa are flagged
//! [`aloft_protocol::Quality::OUT_OF_RANGE`], never clamped.

pub mod detector;
pub mod line;
pub mod rate;
pub mod sim;
pub mod stream;

pub use detector::MuonDetector;
pub use line::{Format, Imu, Line, LineError, MuonEvent, parse_line};
pub use rate::{CountRate, RateEstimate, RateUnavailable};
pub use sim::CosmicWatchSim;
pub use stream::{DetectorStream, RebootCause, StreamCounters, StreamItem};
