//! What the NMEA and u-blox adapters share: one GNSS receiver's byte stream, split into
//! NMEA sentences and UBX frames by the framer and assembled into one fix per epoch, with
//! the count of what could not be read.
//!
//! A receiver set to UBX gets its fixes from NAV-PVT when it sends it, else from the
//! legacy set of older and timing receivers (NAV-POSLLH, NAV-SOL, NAV-VELNED, NAV-TIMEUTC:
//! one fix per epoch), and from every HNR-PVT (see [`aloft_sensors::gps::nav`]).
//!
//! Invariants: fixes come from NMEA or from UBX ([`FixSource`]), never both, which would
//! double every reading; bytes skipped before the first complete sentence or frame since
//! [`GnssStream::reset`] are the tail of one cut by the open, not line noise, and are not
//! counted as bad.

use std::path::PathBuf;

use aloft_protocol::{Reading, SensorId, Timestamp};
use aloft_sensors::Sample;
use aloft_sensors::gps::fix::FixAssembler;
use aloft_sensors::gps::framer::{GnssFramer, Item};
use aloft_sensors::gps::nav::UbxFixAssembler;
use aloft_sensors::gps::nmea;

/// Where the fixes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FixSource {
    /// The NMEA sentences of each epoch (UBX frames are ignored).
    Nmea,
    /// The UBX solution messages: NAV-PVT, or the legacy NAV set, and HNR-PVT (NMEA
    /// sentences are ignored).
    Ubx,
}

/// The framer and fix assembler of one receiver's line.
#[derive(Debug)]
pub(crate) struct GnssStream {
    source: FixSource,
    /// The receiver's port, for the logs.
    port: PathBuf,
    framer: GnssFramer,
    fixes: FixAssembler,
    ubx: UbxFixAssembler,
    /// A complete sentence or frame was seen since the reset.
    synced: bool,
}

impl GnssStream {
    /// The stream of the receiver on `port`, taking its fixes from `source`.
    pub(crate) fn new(source: FixSource, port: PathBuf) -> Self {
        GnssStream {
            source,
            port,
            framer: GnssFramer::new(),
            fixes: FixAssembler::new(),
            ubx: UbxFixAssembler::new(),
            synced: false,
        }
    }

    /// Forgets every partial sentence, frame and epoch (the port was opened again).
    pub(crate) fn reset(&mut self) {
        self.framer = GnssFramer::new();
        self.fixes = FixAssembler::new();
        self.ubx = UbxFixAssembler::new();
        self.synced = false;
    }

    /// Feeds `bytes` read at `now`: appends the readings of every fix they
    /// complete to `out` (as sensor `id`) and returns how many bad sentences, frames or
    /// skipped runs of bytes they held.
    pub(crate) fn push(
        &mut self,
        bytes: &[u8],
        id: SensorId,
        now: Timestamp,
        out: &mut Vec<Reading>,
    ) -> u32 {
        self.framer.push(bytes);
        let mut bad = 0u32;
        while let Some(item) = self.framer.next_item() {
            if !matches!(item, Item::Skipped { .. }) {
                self.synced = true;
            }
            match item {
                Item::Nmea(line) if self.source == FixSource::Nmea => match nmea::parse(line) {
                    Ok(sentence) => {
                        if let Some(fix) = self.fixes.push(&sentence) {
                            fix.push_readings(id, now, out);
                        }
                    }
                    Err(_) => bad += 1,
                },
                Item::Ubx(frame) if self.source == FixSource::Ubx => {
                    let pushed = self.ubx.push(&frame, |fix| fix.push_readings(id, now, out));
                    if let Err(error) = pushed {
                        tracing::debug!(port = %self.port.display(), kind = ?frame.kind(), %error, "UBX solution frame not decoded.");
                        bad += 1;
                    }
                }
                Item::Skipped { bytes, reason } => {
                    tracing::debug!(port = %self.port.display(), bytes, ?reason, "GNSS bytes skipped.");
                    if self.synced {
                        bad += 1;
                    }
                }
                _ => {}
            }
        }
        bad
    }

    /// The epoch closed at the end of the receiver's cycle and nothing is half-read: the
    /// line is quiet until the next burst.
    pub(crate) fn between_epochs(&self) -> bool {
        let epochs = match self.source {
            FixSource::Nmea => self.fixes.between_epochs(),
            FixSource::Ubx => self.ubx.between_epochs(),
        };
        epochs && self.framer.pending() == 0
    }

    /// The fix assembler.
    #[cfg(test)]
    pub(crate) fn fixes(&self) -> &FixAssembler {
        &self.fixes
    }

    /// Bytes the framer holds of an incomplete sentence or frame.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.framer.pending()
    }
}

#[cfg(test)]
mod tests {
    use aloft_protocol::{Quality, Quantity, TimeSource};
    use aloft_sensors::flight::FlightState;
    use aloft_sensors::gps::sim::{Outputs, UbloxSim, UbloxSimConfig};
    use aloft_sensors::serial::SerialDevice;

    use super::*;

    /// Glider at 3000 m, `t_s` into the flight (2026-03-18 12:00 UTC plus `t_s`).
    fn state(t_s: f64) -> FlightState {
        FlightState {
            t_s,
            utc_ns: 1_773_835_200_000_000_000 + (t_s * 1e9) as i64,
            latitude_deg: 36.65,
            longitude_deg: -118.05,
            altitude_m: 3000.0,
            geoid_separation_m: -27.0,
            ground_speed_mps: 40.0,
            track_deg: 270.0,
            vertical_speed_mps: 2.0,
            ..aloft_sensors::flight::Scenario::new(7, 1_773_835_200_000_000_000).state_at(t_s)
        }
    }

    /// One second of a 10 Hz receiver with these outputs.
    fn one_second(outputs: Outputs) -> Vec<u8> {
        let mut sim = UbloxSim::new(UbloxSimConfig::default().with_outputs(outputs));
        let mut bytes = Vec::new();
        for i in 0..100 {
            sim.tick(&state(100.0 + f64::from(i) * 0.01), &mut bytes);
        }
        bytes
    }

    fn readings(source: FixSource, bytes: &[u8], chunk: usize) -> (Vec<Reading>, u32, bool) {
        let mut stream = GnssStream::new(source, PathBuf::from("/dev/ttyGNSS"));
        let (mut out, mut bad) = (Vec::new(), 0);
        for piece in bytes.chunks(chunk) {
            bad += stream.push(piece, SensorId(4), Timestamp::monotonic(9), &mut out);
        }
        (out, bad, stream.between_epochs())
    }

    fn count(out: &[Reading], q: Quantity) -> usize {
        out.iter().filter(|r| r.quantity == q).count()
    }

    #[test]
    fn a_legacy_receivers_epochs_reach_readings_one_fix_each() {
        let bytes = one_second(Outputs::LEGACY_NAV_ONLY);
        for chunk in [1, 17, 4096] {
            let (out, bad, between) = readings(FixSource::Ubx, &bytes, chunk);
            assert_eq!(bad, 0);
            assert!(between, "the cycle's last message closed the last epoch");
            // Ten epochs, ten fixes: the first one closed by the second's iTOW.
            for q in [
                Quantity::Latitude,
                Quantity::Longitude,
                Quantity::AltitudeMsl,
                Quantity::GroundSpeed,
                Quantity::VerticalSpeed,
                Quantity::SatellitesUsed,
                Quantity::HorizontalAccuracy,
            ] {
                assert_eq!(count(&out, q), 10, "{q:?} with reads of {chunk}");
            }
            for r in &out {
                assert!(r.quality.is_good(), "{r:?}");
                assert_eq!(r.time.source, TimeSource::Gnss, "NAV-TIMEUTC dates them");
            }
            let lat = out
                .iter()
                .find(|r| r.quantity == Quantity::Latitude)
                .unwrap();
            assert!((lat.value - 36.65).abs() < 1e-3);
        }
        // The same bytes on an NMEA-configured stream give nothing.
        assert!(readings(FixSource::Nmea, &bytes, 4096).0.is_empty());
    }

    #[test]
    fn nav_pvt_alongside_the_legacy_set_gives_one_fix_per_epoch() {
        let bytes = one_second(Outputs {
            legacy_nav: true,
            ..Outputs::NAV_PVT_ONLY
        });
        let (out, bad, _) = readings(FixSource::Ubx, &bytes, 4096);
        assert_eq!(bad, 0);
        assert_eq!(count(&out, Quantity::Latitude), 10);
        // NAV-PVT's pDOP, which the legacy set also has; its velD vertical speed.
        assert_eq!(count(&out, Quantity::Pdop), 10);
    }

    #[test]
    fn hnr_pvt_gives_fixes_of_its_own_and_a_damaged_solution_frame_counts_as_bad() {
        let hnr_only = one_second(Outputs {
            hnr_pvt: true,
            nav_pvt: false,
            ..Outputs::NAV_PVT_ONLY
        });
        let (out, bad, _) = readings(FixSource::Ubx, &hnr_only, 4096);
        assert_eq!(bad, 0);
        assert_eq!(count(&out, Quantity::Latitude), 10);
        // HNR-PVT has no satellite count.
        assert_eq!(count(&out, Quantity::SatellitesUsed), 0);

        // The simulator sends HNR-PVT at the navigation instants: with NAV-PVT, each
        // instant gives one fix (NAV-PVT's, which comes first), not two.
        let both = one_second(Outputs {
            hnr_pvt: true,
            ..Outputs::NAV_PVT_ONLY
        });
        let (out, bad, _) = readings(FixSource::Ubx, &both, 4096);
        assert_eq!(bad, 0);
        assert_eq!(count(&out, Quantity::Latitude), 10);
        assert_eq!(count(&out, Quantity::SatellitesUsed), 10);

        // A NAV-SOL frame of the wrong length (checksum good) is a bad frame.
        let mut bytes = one_second(Outputs::LEGACY_NAV_ONLY);
        bytes.extend(aloft_sensors::gps::ubx::Frame::new((0x01, 0x06), &[0; 40]).to_bytes());
        let (_, bad, _) = readings(FixSource::Ubx, &bytes, 4096);
        assert_eq!(bad, 1);
    }

    #[test]
    fn a_legacy_receiver_without_a_fix_gives_time_but_no_valid_position() {
        let mut sim =
            UbloxSim::new(UbloxSimConfig::default().with_outputs(Outputs::LEGACY_NAV_ONLY));
        let mut bytes = Vec::new();
        // Portable model above its 12 000 m limit: no fix.
        for i in 0..30 {
            let high = FlightState {
                altitude_m: 12_500.0,
                ..state(100.0 + f64::from(i) * 0.01)
            };
            sim.tick(&high, &mut bytes);
        }
        let (out, bad, _) = readings(FixSource::Ubx, &bytes, 64);
        assert_eq!(bad, 0);
        assert_eq!(count(&out, Quantity::Latitude), 0);
        let modes: Vec<&Reading> = out
            .iter()
            .filter(|r| r.quantity == Quantity::FixMode)
            .collect();
        assert!(!modes.is_empty());
        for r in modes {
            assert_eq!(r.value, 1.0, "no fix");
            assert_eq!(r.quality, Quality::GOOD);
            assert_eq!(r.time.source, TimeSource::Gnss);
        }
    }
}
