//! What the NMEA and u-blox adapters share: one GNSS receiver's byte stream, split into
//! NMEA sentences and UBX frames by the framer and assembled into one fix per epoch, with
//! the count of what could not be read.
//!
//! Invariants: fixes come from NMEA or from NAV-PVT ([`FixSource`]), never both, which would
//! double every reading; bytes skipped before the first complete sentence or frame since
//! [`GnssStream::reset`] are the tail of one cut by the open, not line noise, and are not
//! counted as bad.

use std::path::PathBuf;

use aloft_protocol::{Reading, SensorId, Timestamp};
use aloft_sensors::Sample;
use aloft_sensors::gps::fix::FixAssembler;
use aloft_sensors::gps::framer::{GnssFramer, Item};
use aloft_sensors::gps::nmea;
use aloft_sensors::gps::ubx::{NavPvt, msg};

/// Where the fixes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FixSource {
    /// The NMEA sentences of each epoch (UBX frames are ignored).
    Nmea,
    /// The UBX NAV-PVT message of each epoch (NMEA sentences are ignored).
    NavPvt,
}

/// The framer and fix assembler of one receiver's line.
#[derive(Debug)]
pub(crate) struct GnssStream {
    source: FixSource,
    /// The receiver's port, for the logs.
    port: PathBuf,
    framer: GnssFramer,
    fixes: FixAssembler,
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
            synced: false,
        }
    }

    /// Forgets every partial sentence, frame and epoch (the port was opened again).
    pub(crate) fn reset(&mut self) {
        self.framer = GnssFramer::new();
        self.fixes = FixAssembler::new();
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
                Item::Ubx(frame)
                    if self.source == FixSource::NavPvt && frame.kind() == msg::NAV_PVT =>
                {
                    match NavPvt::decode(&frame) {
                        Ok(pvt) => pvt.to_fix().push_readings(id, now, out),
                        Err(_) => bad += 1,
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
        self.fixes.between_epochs() && self.framer.pending() == 0
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
