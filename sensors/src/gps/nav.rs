//! Fixes from a u-blox receiver's UBX output: NAV-PVT, the legacy navigation set of
//! receivers without NAV-PVT, and the high-rate HNR-PVT.
//!
//! Older and timing receivers (u-blox 5 to 7, LEA-M8T) send no NAV-PVT: one navigation
//! epoch comes as NAV-POSLLH (position), NAV-SOL (fix type, `gpsFixOK`, satellites,
//! pDOP), NAV-VELNED (velocity) and NAV-TIMEUTC (UTC and its validity), all stamped with
//! the epoch's GPS time of week (iTOW). [`NavEpochAssembler`] combines the messages of
//! one iTOW into one [`Fix`], as gpsd does: a message of another iTOW closes the epoch in
//! progress; once the receiver's cycle is learned (the kind of the last message of a
//! whole epoch), that message closes its epoch at once, so a fix is not a cycle late.
//! A message of an epoch already closed (the cycle grew) teaches the new end of the cycle
//! and is dropped.
//!
//! [`UbxFixAssembler`] is the whole receiver: NAV-PVT when the receiver sends it (from
//! the first NAV-PVT on, the legacy set is ignored, so that no epoch gives two fixes),
//! the legacy epochs otherwise, and every HNR-PVT as a high-rate fix of its own, except
//! one at the instant (iTOW) of a navigation solution given or being gathered: where the
//! high-rate and the navigation solutions coincide, the instant gives one fix (the
//! navigation solution, which has the satellites and DOP), not two of every reading.
//!
//! A receiver that sends NAV-SOL without NAV-POSLLH or NAV-VELNED still gets a position
//! and velocity: NAV-SOL's ECEF solution, converted on the WGS 84 ellipsoid (as gpsd
//! does). It has no altitude above mean sea level (that needs a geoid model the receiver
//! did not apply), so altitudes stay absent then.
//!
//! Invariants: one fix per iTOW; values in SI units; nothing invented: a quantity is
//! present only when the message that carries it was received (an epoch without NAV-SOL
//! has no fix mode and is not valid, so its position readings are flagged invalid; an
//! epoch without a valid NAV-TIMEUTC has no time); the fix-OK flag of NAV-SOL decides
//! validity; a time-only or no-fix solution has no position or velocity.

use super::fix::{Fix, FixMode};
use super::ubx::{
    Frame, HnrPvt, MessageError, NavPosllh, NavPvt, NavSol, NavTimeUtc, NavVelned, msg,
};

/// One message of the legacy navigation set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NavMessage {
    /// NAV-SOL.
    Sol(NavSol),
    /// NAV-POSLLH.
    Posllh(NavPosllh),
    /// NAV-VELNED.
    Velned(NavVelned),
    /// NAV-TIMEUTC.
    TimeUtc(NavTimeUtc),
}

impl NavMessage {
    /// Decodes a frame of the legacy set; `Ok(None)` for a frame of any other kind.
    pub fn decode(frame: &Frame<'_>) -> Result<Option<Self>, MessageError> {
        Ok(Some(match frame.kind() {
            msg::NAV_SOL => NavMessage::Sol(NavSol::decode(frame)?),
            msg::NAV_POSLLH => NavMessage::Posllh(NavPosllh::decode(frame)?),
            msg::NAV_VELNED => NavMessage::Velned(NavVelned::decode(frame)?),
            msg::NAV_TIMEUTC => NavMessage::TimeUtc(NavTimeUtc::decode(frame)?),
            _ => return Ok(None),
        }))
    }

    /// GPS time of week of the epoch the message belongs to, ms.
    pub fn itow_ms(&self) -> u32 {
        match self {
            NavMessage::Sol(m) => m.itow_ms,
            NavMessage::Posllh(m) => m.itow_ms,
            NavMessage::Velned(m) => m.itow_ms,
            NavMessage::TimeUtc(m) => m.itow_ms,
        }
    }

    /// Class and id of the message.
    pub fn kind(&self) -> (u8, u8) {
        match self {
            NavMessage::Sol(_) => msg::NAV_SOL,
            NavMessage::Posllh(_) => msg::NAV_POSLLH,
            NavMessage::Velned(_) => msg::NAV_VELNED,
            NavMessage::TimeUtc(_) => msg::NAV_TIMEUTC,
        }
    }
}

/// The messages of one epoch received so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NavEpoch {
    /// GPS time of week shared by the messages, ms.
    pub itow_ms: u32,
    /// NAV-SOL, when received.
    pub sol: Option<NavSol>,
    /// NAV-POSLLH, when received.
    pub posllh: Option<NavPosllh>,
    /// NAV-VELNED, when received.
    pub velned: Option<NavVelned>,
    /// NAV-TIMEUTC, when received.
    pub timeutc: Option<NavTimeUtc>,
}

impl NavEpoch {
    fn new(itow_ms: u32) -> Self {
        NavEpoch {
            itow_ms,
            sol: None,
            posllh: None,
            velned: None,
            timeutc: None,
        }
    }

    fn add(&mut self, m: NavMessage) {
        match m {
            NavMessage::Sol(m) => self.sol = Some(m),
            NavMessage::Posllh(m) => self.posllh = Some(m),
            NavMessage::Velned(m) => self.velned = Some(m),
            NavMessage::TimeUtc(m) => self.timeutc = Some(m),
        }
    }

    /// The epoch as one [`Fix`]: position from POSLLH, velocity from VELNED, mode,
    /// validity, satellites and pDOP from SOL, UTC from TIMEUTC when it says it is valid.
    ///
    /// With a NAV-SOL, its fix type gates the rest as NAV-PVT's does: position and
    /// horizontal velocity with a 2D or 3D fix, altitudes and vertical speed with a 3D
    /// fix only. Without one, what POSLLH and VELNED say is kept, not valid.
    pub fn to_fix(&self) -> Fix {
        let status = self.sol.map(|s| s.status());
        let mode = status.map(|s| s.mode);
        let has_position = mode != Some(FixMode::NoFix);
        let has_altitude = mode.is_none_or(|m| m == FixMode::ThreeD);
        let pos = self.posllh.filter(|_| has_position);
        let alt = self.posllh.filter(|_| has_altitude);
        let vel = self.velned.filter(|_| has_position);
        let vel_3d = self.velned.filter(|_| has_altitude);
        // Without POSLLH or VELNED, NAV-SOL's ECEF solution stands in (it has a fix here:
        // `has_position` is false for a SOL without one).
        let ecef = self.sol.filter(|_| has_position).map(EcefSolution::of);
        let ecef_pos = ecef.filter(|_| self.posllh.is_none());
        let ecef_vel = ecef.filter(|_| self.velned.is_none());
        let ecef_vel_3d = ecef_vel.filter(|_| has_altitude);
        Fix {
            time: self.timeutc.and_then(|t| t.utc()),
            latitude_deg: pos
                .map(|p| f64::from(p.lat) * 1e-7)
                .or(ecef_pos.map(|e| e.latitude_deg)),
            longitude_deg: pos
                .map(|p| f64::from(p.lon) * 1e-7)
                .or(ecef_pos.map(|e| e.longitude_deg)),
            altitude_msl_m: alt.map(|p| f64::from(p.h_msl_mm) * 1e-3),
            geoid_separation_m: alt
                .map(|p| (i64::from(p.height_mm) - i64::from(p.h_msl_mm)) as f64 * 1e-3),
            ground_speed_mps: vel
                .map(|v| f64::from(v.g_speed_cms) * 1e-2)
                .or(ecef_vel.map(|e| e.ned_mps[0].hypot(e.ned_mps[1]))),
            track_deg: vel
                .map(|v| f64::from(v.heading) * 1e-5)
                .or(ecef_vel.map(|e| {
                    e.ned_mps[1]
                        .atan2(e.ned_mps[0])
                        .to_degrees()
                        .rem_euclid(360.0)
                })),
            vertical_speed_mps: vel_3d
                .map(|v| -f64::from(v.vel_d_cms) * 1e-2)
                .or(ecef_vel_3d.map(|e| -e.ned_mps[2])),
            mode,
            quality: status.map(|s| s.quality),
            valid: status.is_some_and(|s| s.valid),
            satellites_used: self.sol.map(|s| s.num_sv),
            pdop: self.sol.map(|s| f64::from(s.p_dop) * 0.01),
            horizontal_accuracy_m: self.posllh.map(|p| f64::from(p.h_acc_mm) * 1e-3),
            vertical_accuracy_m: self.posllh.map(|p| f64::from(p.v_acc_mm) * 1e-3),
            ..Fix::default()
        }
    }
}

/// WGS 84 semi-major axis, m.
const WGS84_A: f64 = 6_378_137.0;
/// WGS 84 first eccentricity squared.
const WGS84_E2: f64 = 6.694_379_990_14e-3;

/// NAV-SOL's ECEF solution on the WGS 84 ellipsoid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EcefSolution {
    /// Geodetic latitude, degrees.
    pub latitude_deg: f64,
    /// Longitude, degrees.
    pub longitude_deg: f64,
    /// Height above the ellipsoid, m.
    pub height_m: f64,
    /// Velocity north, east, down, m/s.
    pub ned_mps: [f64; 3],
}

impl EcefSolution {
    /// The geodetic position and local velocity of a NAV-SOL's ECEF solution.
    pub fn of(sol: NavSol) -> Self {
        let m = |cm: i32| f64::from(cm) * 1e-2;
        let (lat, lon, height_m) = geodetic([m(sol.ecef_x_cm), m(sol.ecef_y_cm), m(sol.ecef_z_cm)]);
        let (sl, cl) = lat.sin_cos();
        let (so, co) = lon.sin_cos();
        let [vx, vy, vz] = [sol.ecef_vx_cms, sol.ecef_vy_cms, sol.ecef_vz_cms].map(m);
        EcefSolution {
            latitude_deg: lat.to_degrees(),
            longitude_deg: lon.to_degrees(),
            height_m,
            ned_mps: [
                -sl * co * vx - sl * so * vy + cl * vz,
                -so * vx + co * vy,
                -cl * co * vx - cl * so * vy - sl * vz,
            ],
        }
    }
}

/// Geodetic latitude and longitude (radians) and height above the ellipsoid (m) of an
/// ECEF position (m): fixed-point iteration on the latitude, with the height taken in a
/// form that holds at the poles. Ten rounds leave well under a millimetre anywhere near
/// the Earth; any finite input gives finite output.
fn geodetic([x, y, z]: [f64; 3]) -> (f64, f64, f64) {
    let lon = y.atan2(x);
    let p = x.hypot(y);
    let mut lat = z.atan2(p * (1.0 - WGS84_E2));
    let mut height = 0.0;
    for _ in 0..10 {
        let (sl, cl) = lat.sin_cos();
        let n = WGS84_A / (1.0 - WGS84_E2 * sl * sl).sqrt();
        height = p * cl + z * sl - WGS84_A * WGS84_A / n;
        // Only a point near the Earth's centre (no receiver's) comes close to zero here.
        if (n + height).abs() < 1.0 {
            break;
        }
        lat = z.atan2(p * (1.0 - WGS84_E2 * n / (n + height)));
    }
    (lat, lon, height)
}

/// Combines the legacy navigation messages of each epoch (one iTOW) into one fix.
#[derive(Debug, Default)]
pub struct NavEpochAssembler {
    /// The epoch being received.
    epoch: Option<NavEpoch>,
    /// Kind of the last message received in `epoch`.
    latest: Option<(u8, u8)>,
    /// Kind of the message that ends the receiver's cycle, once learned.
    cycle_end: Option<(u8, u8)>,
    /// iTOW of the epoch last closed by its cycle's end message.
    closed_itow: Option<u32>,
}

impl NavEpochAssembler {
    /// An assembler that has learned nothing yet.
    pub fn new() -> Self {
        NavEpochAssembler::default()
    }

    /// Adds one message; calls `emit` with the fix of every epoch it completes (at most
    /// two: the epoch a new iTOW closes, and the new epoch when its one message ends the
    /// receiver's cycle).
    pub fn push(&mut self, message: NavMessage, mut emit: impl FnMut(Fix)) {
        self.push_timed(message, |_, fix| emit(fix));
    }

    /// [`NavEpochAssembler::push`], giving each fix with its epoch's iTOW.
    pub fn push_timed(&mut self, message: NavMessage, mut emit: impl FnMut(u32, Fix)) {
        let itow = message.itow_ms();
        let kind = message.kind();
        if self.epoch.is_none() && self.closed_itow == Some(itow) {
            // The cycle goes on past the message taken for its end: learn the new end.
            tracing::debug!(
                itow,
                ?kind,
                "UBX message after its epoch closed; the cycle ends later."
            );
            self.cycle_end = Some(kind);
            return;
        }
        if let Some(epoch) = self.epoch.take_if(|e| e.itow_ms != itow) {
            if self.cycle_end.is_none() {
                self.cycle_end = self.latest;
            }
            self.closed_itow = None;
            emit(epoch.itow_ms, epoch.to_fix());
        }
        self.epoch
            .get_or_insert_with(|| NavEpoch::new(itow))
            .add(message);
        self.latest = Some(kind);
        if self.cycle_end == Some(kind)
            && let Some(epoch) = self.epoch.take()
        {
            self.closed_itow = Some(itow);
            emit(itow, epoch.to_fix());
        }
    }

    /// Decodes `frame` and adds it when it is of the legacy set (other frames are
    /// ignored); a frame of the set that does not decode is returned as the error.
    pub fn push_frame(
        &mut self,
        frame: &Frame<'_>,
        emit: impl FnMut(Fix),
    ) -> Result<(), MessageError> {
        if let Some(message) = NavMessage::decode(frame)? {
            self.push(message, emit);
        }
        Ok(())
    }

    /// The fix of the epoch in progress, if any (the stream ended).
    pub fn finish(&mut self) -> Option<Fix> {
        self.epoch.take().map(|e| e.to_fix())
    }

    /// No epoch is in progress: the last one closed at the end of the receiver's cycle.
    pub fn between_epochs(&self) -> bool {
        self.epoch.is_none()
    }

    /// The kind of message that ends the receiver's cycle, once learned.
    pub fn cycle_end(&self) -> Option<(u8, u8)> {
        self.cycle_end
    }
}

/// All the fixes of a u-blox receiver's UBX output (see the module documentation).
#[derive(Debug, Default)]
pub struct UbxFixAssembler {
    legacy: NavEpochAssembler,
    /// The receiver sends NAV-PVT: its legacy messages are ignored.
    nav_pvt: bool,
    /// iTOW of the last two navigation solutions given.
    recent: [Option<u32>; 2],
}

impl UbxFixAssembler {
    /// An assembler that has seen nothing yet.
    pub fn new() -> Self {
        UbxFixAssembler::default()
    }

    /// Takes one UBX frame; calls `emit` with every fix it completes. Frames of kinds
    /// that carry no solution are ignored; a solution frame that does not decode is
    /// returned as the error.
    pub fn push(
        &mut self,
        frame: &Frame<'_>,
        mut emit: impl FnMut(Fix),
    ) -> Result<(), MessageError> {
        let recent = &mut self.recent;
        let mut navigation = |itow: u32, fix: Fix| {
            *recent = [Some(itow), recent[0]];
            emit(fix);
        };
        match frame.kind() {
            msg::NAV_PVT => {
                let pvt = NavPvt::decode(frame)?;
                if !self.nav_pvt {
                    self.nav_pvt = true;
                    // What was gathered of this epoch is in the NAV-PVT too.
                    self.legacy = NavEpochAssembler::new();
                }
                navigation(pvt.itow_ms, pvt.to_fix());
            }
            msg::HNR_PVT => {
                let hnr = HnrPvt::decode(frame)?;
                let gathering = self.legacy.epoch.map(|e| e.itow_ms);
                if self.recent.contains(&Some(hnr.itow_ms)) || gathering == Some(hnr.itow_ms) {
                    tracing::trace!(
                        itow = hnr.itow_ms,
                        "HNR-PVT at the instant of a navigation solution, dropped."
                    );
                } else {
                    emit(hnr.to_fix());
                }
            }
            _ if self.nav_pvt => {}
            _ => {
                if let Some(message) = NavMessage::decode(frame)? {
                    self.legacy.push_timed(message, &mut navigation);
                }
            }
        }
        Ok(())
    }

    /// The fix of the legacy epoch in progress, if any (the stream ended).
    pub fn finish(&mut self) -> Option<Fix> {
        self.legacy.finish()
    }

    /// No legacy epoch is in progress.
    pub fn between_epochs(&self) -> bool {
        self.legacy.between_epochs()
    }

    /// Whether the receiver sends NAV-PVT (its fixes come from it).
    pub fn uses_nav_pvt(&self) -> bool {
        self.nav_pvt
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gps::ubx::{FLAG_GNSS_FIX_OK, sol_flags, timeutc_valid, valid};
    use proptest::prelude::*;

    const ITOW: u32 = 291_019_000;

    /// NAV-SOL of the epoch, its ECEF where POSLLH puts the receiver.
    fn sol(itow_ms: u32) -> NavSol {
        let [x, y, z] =
            ecef_of(-34.906_226_6, 138.608_119_9, 25.378).map(|m| (m * 100.0).round() as i32);
        NavSol {
            itow_ms,
            ecef_x_cm: x,
            ecef_y_cm: y,
            ecef_z_cm: z,
            week: 1959,
            gps_fix: 3,
            flags: sol_flags::GPS_FIX_OK | sol_flags::WKN_SET | sol_flags::TOW_SET,
            p_dop: 146,
            num_sv: 14,
            ..NavSol::default()
        }
    }

    fn posllh(itow_ms: u32) -> NavPosllh {
        NavPosllh {
            itow_ms,
            lon: 1_386_081_199,
            lat: -349_062_266,
            height_mm: 25_378,
            h_msl_mm: 28_849,
            h_acc_mm: 1_500,
            v_acc_mm: 2_200,
        }
    }

    fn velned(itow_ms: u32) -> NavVelned {
        NavVelned {
            itow_ms,
            vel_n_cms: 3_000,
            vel_e_cms: -4_000,
            vel_d_cms: -250,
            speed_cms: 5_006,
            g_speed_cms: 5_000,
            heading: 30_687_000,
            s_acc_cms: 10,
            c_acc: 100_000,
        }
    }

    fn timeutc(itow_ms: u32) -> NavTimeUtc {
        // 291 019 000 ms into GPS week 1959 is 2017-07-19 08:50:01 UTC (18 s leap).
        let s = itow_ms / 1000 - 291_019 + 1;
        NavTimeUtc {
            itow_ms,
            t_acc_ns: 20,
            nano: 0,
            year: 2017,
            month: 7,
            day: 19,
            hour: 8,
            minute: 50 + (s / 60) as u8,
            second: (s % 60) as u8,
            valid: timeutc_valid::TOW | timeutc_valid::WKN | timeutc_valid::UTC,
        }
    }

    /// One epoch as u-blox orders it (by message id): POSLLH, SOL, VELNED, TIMEUTC.
    fn epoch(itow: u32) -> [NavMessage; 4] {
        [
            NavMessage::Posllh(posllh(itow)),
            NavMessage::Sol(sol(itow)),
            NavMessage::Velned(velned(itow)),
            NavMessage::TimeUtc(timeutc(itow)),
        ]
    }

    /// Fixes as they come, with the index of the message after which each came.
    fn run(messages: &[NavMessage]) -> Vec<(usize, Fix)> {
        let mut a = NavEpochAssembler::new();
        let mut out = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            a.push(*m, |f| out.push((i, f)));
        }
        out.extend(a.finish().map(|f| (messages.len(), f)));
        out
    }

    #[test]
    fn one_epoch_combines_into_one_fix_with_every_field_from_its_message() {
        let fixes = run(&epoch(ITOW));
        assert_eq!(fixes.len(), 1);
        let f = &fixes[0].1;
        let t = f.time.unwrap();
        assert_eq!(t.date, Some((2017, 7, 19)));
        assert_eq!((t.hour, t.minute, t.second), (8, 50, 1));
        assert!((f.latitude_deg.unwrap() + 34.906_226_6).abs() < 1e-9);
        assert!((f.longitude_deg.unwrap() - 138.608_119_9).abs() < 1e-9);
        assert!((f.altitude_msl_m.unwrap() - 28.849).abs() < 1e-9);
        assert!((f.geoid_separation_m.unwrap() + 3.471).abs() < 1e-9);
        assert!((f.ground_speed_mps.unwrap() - 50.0).abs() < 1e-9);
        assert!((f.track_deg.unwrap() - 306.87).abs() < 1e-9);
        assert!((f.vertical_speed_mps.unwrap() - 2.5).abs() < 1e-9);
        assert!((f.horizontal_accuracy_m.unwrap() - 1.5).abs() < 1e-9);
        assert!((f.vertical_accuracy_m.unwrap() - 2.2).abs() < 1e-9);
        assert!((f.pdop.unwrap() - 1.46).abs() < 1e-9);
        assert_eq!(f.mode, Some(FixMode::ThreeD));
        assert_eq!((f.quality, f.satellites_used), (Some(1), Some(14)));
        assert!(f.valid && f.has_position_fix());
    }

    #[test]
    fn once_the_cycle_is_learned_its_last_message_closes_the_epoch_at_once() {
        let stream: Vec<NavMessage> = (0..4).flat_map(|i| epoch(ITOW + i * 1000)).collect();
        let fixes = run(&stream);
        assert_eq!(fixes.len(), 4);
        // The first epoch waits for the next iTOW (the cycle is not known yet); the rest
        // close at their TIMEUTC, the end of the cycle.
        let at: Vec<usize> = fixes.iter().map(|(i, _)| *i).collect();
        assert_eq!(at, [4, 7, 11, 15]);
        for (n, (_, f)) in fixes.iter().enumerate() {
            assert_eq!(usize::from(f.time.unwrap().second), 1 + n);
            assert!(f.has_position_fix());
        }
    }

    #[test]
    fn a_cycle_that_grows_is_learned_and_no_epoch_splits_afterwards() {
        // Two epochs without TIMEUTC, then the receiver adds it.
        let mut stream: Vec<NavMessage> = Vec::new();
        for i in 0..2 {
            stream.extend_from_slice(&epoch(ITOW + i * 1000)[..3]);
        }
        for i in 2..5 {
            stream.extend(epoch(ITOW + i * 1000));
        }
        let mut a = NavEpochAssembler::new();
        let mut fixes = Vec::new();
        for m in &stream {
            a.push(*m, |f| fixes.push(f));
        }
        fixes.extend(a.finish());
        assert_eq!(a.cycle_end(), Some(msg::NAV_TIMEUTC));
        // Epoch 2's TIMEUTC came after its VELNED had closed it: it only taught the new
        // end of the cycle. Epochs 3 and 4 have their time.
        assert_eq!(fixes.len(), 5);
        let timed: Vec<bool> = fixes.iter().map(|f| f.time.is_some()).collect();
        assert_eq!(timed, [false, false, false, true, true]);
        assert!(fixes.iter().all(|f| f.latitude_deg.is_some()));
    }

    #[test]
    fn a_lost_message_leaves_its_quantities_out_and_the_next_epoch_whole() {
        let mut stream: Vec<NavMessage> = (0..2).flat_map(|i| epoch(ITOW + i * 1000)).collect();
        // Epoch 3 loses its POSLLH.
        stream.extend_from_slice(&epoch(ITOW + 2000)[1..]);
        stream.extend(epoch(ITOW + 3000));
        let fixes = run(&stream);
        assert_eq!(fixes.len(), 4);
        let damaged = &fixes[2].1;
        // The position falls back on NAV-SOL's ECEF, without an altitude above sea level.
        assert!((damaged.latitude_deg.unwrap() + 34.906_226_6).abs() < 2e-7);
        assert!((damaged.longitude_deg.unwrap() - 138.608_119_9).abs() < 2e-7);
        assert_eq!(
            (damaged.altitude_msl_m, damaged.horizontal_accuracy_m),
            (None, None)
        );
        assert!(damaged.ground_speed_mps.is_some() && damaged.time.is_some());
        assert!(fixes[3].1.latitude_deg.is_some());
    }

    #[test]
    fn an_epoch_without_sol_keeps_its_values_but_is_not_valid() {
        let fixes = run(&[
            NavMessage::Posllh(posllh(ITOW)),
            NavMessage::Velned(velned(ITOW)),
        ]);
        let f = &fixes[0].1;
        assert!(f.latitude_deg.is_some() && f.vertical_speed_mps.is_some());
        assert_eq!((f.mode, f.quality, f.valid), (None, None, false));
        assert!(!f.has_position_fix());
    }

    #[test]
    fn gps_fix_ok_clear_makes_the_epoch_invalid() {
        let bad = NavSol {
            flags: sol_flags::WKN_SET | sol_flags::TOW_SET,
            ..sol(ITOW)
        };
        let mut messages = epoch(ITOW);
        messages[1] = NavMessage::Sol(bad);
        let f = &run(&messages)[0].1;
        assert!(!f.valid && !f.has_position_fix());
        assert_eq!(f.mode, Some(FixMode::ThreeD));
        assert_eq!(f.quality, Some(0));
        assert!(f.latitude_deg.is_some(), "the values are kept, flagged");
    }

    #[test]
    fn time_only_and_no_fix_epochs_give_the_time_and_no_position() {
        for (gps_fix, mode) in [(5, FixMode::NoFix), (0, FixMode::NoFix)] {
            let mut messages = epoch(ITOW);
            messages[1] = NavMessage::Sol(NavSol {
                gps_fix,
                ..sol(ITOW)
            });
            let f = &run(&messages)[0].1;
            assert_eq!(f.mode, Some(mode));
            assert!(f.time.is_some());
            assert_eq!(
                (f.latitude_deg, f.altitude_msl_m, f.ground_speed_mps),
                (None, None, None)
            );
            assert!(!f.has_position_fix());
        }
        // A 2D fix: position and ground speed, no altitude or vertical speed.
        let mut messages = epoch(ITOW);
        messages[1] = NavMessage::Sol(NavSol {
            gps_fix: 2,
            ..sol(ITOW)
        });
        let f = &run(&messages)[0].1;
        assert!(f.latitude_deg.is_some() && f.ground_speed_mps.is_some());
        assert_eq!((f.altitude_msl_m, f.vertical_speed_mps), (None, None));
    }

    #[test]
    fn timeutc_without_valid_utc_gives_no_time() {
        let mut messages = epoch(ITOW);
        messages[3] = NavMessage::TimeUtc(NavTimeUtc {
            valid: timeutc_valid::TOW | timeutc_valid::WKN,
            ..timeutc(ITOW)
        });
        assert_eq!(run(&messages)[0].1.time, None);
    }

    fn frames(messages: &[NavMessage]) -> Vec<Vec<u8>> {
        messages
            .iter()
            .map(|m| match m {
                NavMessage::Sol(m) => m.to_bytes(),
                NavMessage::Posllh(m) => m.to_bytes(),
                NavMessage::Velned(m) => m.to_bytes(),
                NavMessage::TimeUtc(m) => m.to_bytes(),
            })
            .collect()
    }

    fn through(a: &mut UbxFixAssembler, bytes: &[Vec<u8>]) -> Vec<Fix> {
        let mut out = Vec::new();
        for b in bytes {
            let (frame, _) = Frame::decode(b).unwrap();
            a.push(&frame, |f| out.push(f)).unwrap();
        }
        out
    }

    #[test]
    fn nav_pvt_is_preferred_and_hnr_pvt_is_a_fix_of_its_own() {
        let mut a = UbxFixAssembler::new();
        let legacy: Vec<NavMessage> = (0..2).flat_map(|i| epoch(ITOW + i * 1000)).collect();
        let mut bytes = frames(&legacy);
        // The receiver is switched to NAV-PVT in the middle of an epoch's burst.
        bytes.extend(frames(&epoch(ITOW + 2000)[..2]));
        let pvt = NavPvt {
            itow_ms: ITOW + 2000,
            fix_type: 3,
            flags: FLAG_GNSS_FIX_OK,
            lat: 1,
            ..NavPvt::default()
        };
        bytes.push(pvt.to_bytes());
        bytes.extend(frames(&epoch(ITOW + 3000)));
        let hnr = HnrPvt {
            itow_ms: ITOW + 3050,
            gps_fix: 3,
            flags: FLAG_GNSS_FIX_OK,
            valid: valid::TIME,
            lat: 2,
            ..HnrPvt::default()
        };
        bytes.push(hnr.to_bytes());
        let fixes = through(&mut a, &bytes);
        assert!(a.uses_nav_pvt());
        // Two legacy epochs, the NAV-PVT, nothing of the legacy set after it, the HNR-PVT.
        let lats: Vec<Option<f64>> = fixes.iter().map(|f| f.latitude_deg).collect();
        assert_eq!(fixes.len(), 4, "{lats:?}");
        assert_eq!(lats[2], Some(1e-7));
        assert_eq!(lats[3], Some(2e-7));
        assert_eq!(a.finish(), None);
    }

    #[test]
    fn an_instant_of_a_navigation_solution_gives_no_hnr_fix_besides() {
        let hnr = |itow_ms| HnrPvt {
            itow_ms,
            gps_fix: 3,
            flags: FLAG_GNSS_FIX_OK,
            lat: 2,
            ..HnrPvt::default()
        };
        let pvt = |itow_ms| NavPvt {
            itow_ms,
            fix_type: 3,
            flags: FLAG_GNSS_FIX_OK,
            lat: 1,
            num_sv: 9,
            ..NavPvt::default()
        };
        // NAV-PVT at 1 Hz, HNR-PVT at 2 Hz: the whole seconds coincide.
        let mut a = UbxFixAssembler::new();
        let bytes: Vec<Vec<u8>> = (0..3)
            .flat_map(|i| {
                let t = ITOW + 1000 * i;
                [
                    pvt(t).to_bytes(),
                    hnr(t).to_bytes(),
                    hnr(t + 500).to_bytes(),
                ]
            })
            .collect();
        let fixes = through(&mut a, &bytes);
        let lats: Vec<f64> = fixes.iter().filter_map(|f| f.latitude_deg).collect();
        assert_eq!(lats, [1e-7, 2e-7, 1e-7, 2e-7, 1e-7, 2e-7]);
        // A legacy receiver whose HNR-PVT of an instant comes before the epoch closes.
        let mut a = UbxFixAssembler::new();
        let mut bytes = Vec::new();
        for i in 0..3 {
            let t = ITOW + 1000 * i;
            let e = frames(&epoch(t));
            bytes.extend_from_slice(&e[..2]);
            bytes.push(hnr(t).to_bytes());
            bytes.extend_from_slice(&e[2..]);
            bytes.push(hnr(t + 500).to_bytes());
        }
        let mut fixes = through(&mut a, &bytes);
        fixes.extend(a.finish());
        // Three epochs with their satellites, the three half-second HNR-PVT between them
        // (the first epoch, before the cycle is learned, closes at the second's start).
        let sats: Vec<Option<u8>> = fixes.iter().map(|f| f.satellites_used).collect();
        assert_eq!(sats, [None, Some(14), Some(14), None, Some(14), None]);
    }

    #[test]
    fn a_damaged_solution_frame_is_a_typed_error() {
        let mut a = UbxFixAssembler::new();
        let short = Frame::new(msg::NAV_SOL, &[0u8; 40]);
        assert_eq!(
            a.push(&short, |_| {}),
            Err(MessageError::Length {
                expected: 52,
                found: 40
            })
        );
        let other = Frame::new(msg::MON_VER, &[0u8; 3]);
        assert_eq!(a.push(&other, |_| {}), Ok(()));
    }

    /// ECEF of a geodetic position: the textbook forward conversion.
    fn ecef_of(lat_deg: f64, lon_deg: f64, h: f64) -> [f64; 3] {
        let (sl, cl) = lat_deg.to_radians().sin_cos();
        let (so, co) = lon_deg.to_radians().sin_cos();
        let n = WGS84_A / (1.0 - WGS84_E2 * sl * sl).sqrt();
        [
            (n + h) * cl * co,
            (n + h) * cl * so,
            (n * (1.0 - WGS84_E2) + h) * sl,
        ]
    }

    #[test]
    fn geodetic_of_the_ellipsoids_axes_and_of_the_centre() {
        let (lat, lon, h) = geodetic([WGS84_A, 0.0, 0.0]);
        assert!(lat.abs() < 1e-12 && lon.abs() < 1e-12 && h.abs() < 1e-6);
        // The semi-minor axis b = 6 356 752.3142 m.
        let (lat, _, h) = geodetic([0.0, 0.0, -6_356_752.314_245]);
        assert!(
            (lat.to_degrees() + 90.0).abs() < 1e-12 && h.abs() < 1e-4,
            "{h}"
        );
        let (lat, lon, h) = geodetic([0.0; 3]);
        assert!(lat.is_finite() && lon.is_finite() && h.is_finite());
    }

    #[test]
    fn an_epoch_of_nav_sol_alone_takes_position_and_velocity_from_ecef() {
        // 45 N 7 E at 3000 m above the ellipsoid, flying 30 m/s north-east, climbing 2 m/s.
        let [x, y, z] = ecef_of(45.0, 7.0, 3000.0);
        let cm = |m: f64| (m * 100.0).round() as i32;
        let (sl, cl) = 45f64.to_radians().sin_cos();
        let (so, co) = 7f64.to_radians().sin_cos();
        let (vn, ve, vd) = (30.0 / 2f64.sqrt(), 30.0 / 2f64.sqrt(), -2.0);
        let v = [
            -sl * co * vn - so * ve - cl * co * vd,
            -sl * so * vn + co * ve - cl * so * vd,
            cl * vn - sl * vd,
        ];
        let only_sol = NavSol {
            ecef_x_cm: cm(x),
            ecef_y_cm: cm(y),
            ecef_z_cm: cm(z),
            ecef_vx_cms: cm(v[0]),
            ecef_vy_cms: cm(v[1]),
            ecef_vz_cms: cm(v[2]),
            ..sol(ITOW)
        };
        let f = &run(&[
            NavMessage::Sol(only_sol),
            NavMessage::TimeUtc(timeutc(ITOW)),
        ])[0]
            .1;
        // A centimetre is 1e-7 degrees.
        assert!((f.latitude_deg.unwrap() - 45.0).abs() < 2e-7);
        assert!((f.longitude_deg.unwrap() - 7.0).abs() < 2e-7);
        assert!((f.ground_speed_mps.unwrap() - 30.0).abs() < 0.02);
        assert!((f.track_deg.unwrap() - 45.0).abs() < 0.05);
        assert!((f.vertical_speed_mps.unwrap() - 2.0).abs() < 0.02);
        // No geoid model: no altitude above mean sea level.
        assert_eq!((f.altitude_msl_m, f.geoid_separation_m), (None, None));
        assert!(f.has_position_fix());
        // POSLLH and VELNED, when they come, win.
        let f = &run(&[
            NavMessage::Posllh(posllh(ITOW)),
            NavMessage::Sol(only_sol),
            NavMessage::Velned(velned(ITOW)),
        ])[0]
            .1;
        assert!((f.latitude_deg.unwrap() + 34.906_226_6).abs() < 1e-9);
        assert!((f.ground_speed_mps.unwrap() - 50.0).abs() < 1e-9);
        // A NAV-SOL without a fix gives no position from its ECEF either.
        let f = &run(&[NavMessage::Sol(NavSol {
            gps_fix: 0,
            ..only_sol
        })])[0]
            .1;
        assert_eq!((f.latitude_deg, f.ground_speed_mps), (None, None));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn geodetic_inverts_the_forward_conversion(
            lat in -90.0f64..=90.0,
            lon in -179.999f64..180.0,
            h in -1_000.0f64..60_000.0,
        ) {
            let (la, lo, hh) = geodetic(ecef_of(lat, lon, h));
            prop_assert!((la.to_degrees() - lat).abs() < 1e-9, "{} {}", la.to_degrees(), lat);
            if lat.abs() < 89.999 {
                prop_assert!((lo.to_degrees() - lon).abs() < 1e-9);
            }
            prop_assert!((hh - h).abs() < 1e-4, "{} {}", hh, h);
        }

        #[test]
        fn any_frames_of_the_solution_classes_never_panic(
            frames in proptest::collection::vec(
                (
                    prop::sample::select(vec![msg::NAV_SOL, msg::NAV_POSLLH, msg::NAV_VELNED, msg::NAV_TIMEUTC, msg::HNR_PVT, msg::NAV_PVT]),
                    prop::sample::select(vec![20usize, 28, 36, 52, 72, 92, 0, 7]),
                    proptest::collection::vec(any::<u8>(), 92),
                ),
                0..30,
            ),
        ) {
            let mut a = UbxFixAssembler::new();
            let mut n = 0usize;
            for (kind, len, bytes) in &frames {
                let frame = Frame::new(*kind, &bytes[..*len]);
                let _ = a.push(&frame, |f| {
                    n += 1;
                    let mut out = Vec::new();
                    crate::Sample::push_readings(&f, aloft_protocol::SensorId(0), aloft_protocol::Timestamp::monotonic(1), &mut out);
                    assert!(out.iter().all(|r| r.value.is_finite()));
                });
            }
            n += usize::from(a.finish().is_some());
            prop_assert!(n <= frames.len());
        }

        #[test]
        fn shuffled_epochs_never_give_more_fixes_than_itows_seen(
            order in Just((0..12usize).collect::<Vec<_>>()).prop_shuffle(),
        ) {
            let all: Vec<NavMessage> = (0..3).flat_map(|i| epoch(ITOW + i * 1000)).collect();
            let stream: Vec<NavMessage> = order.iter().map(|&i| all[i]).collect();
            let fixes = run(&stream);
            let changes = 1 + stream.windows(2).filter(|w| w[0].itow_ms() != w[1].itow_ms()).count();
            prop_assert!(fixes.len() <= changes);
            for (_, f) in &fixes {
                if let Some(t) = f.time {
                    prop_assert!((1..=3).contains(&t.second));
                }
            }
        }

        #[test]
        fn encoded_epochs_assemble_into_one_fix_each_with_their_values(
            epochs in proptest::collection::vec((-900_000_000i32..900_000_000, -1_800_000_000i32..1_800_000_000, -400_000i32..50_000_000, 0u32..50_000), 1..20),
        ) {
            let mut stream = Vec::new();
            for (i, &(lat, lon, h_msl_mm, g_speed_cms)) in epochs.iter().enumerate() {
                let itow = ITOW + 1000 * i as u32;
                let mut e = epoch(itow);
                e[0] = NavMessage::Posllh(NavPosllh { lat, lon, h_msl_mm, ..posllh(itow) });
                e[2] = NavMessage::Velned(NavVelned { g_speed_cms, ..velned(itow) });
                stream.extend(e);
            }
            let mut a = UbxFixAssembler::new();
            let mut fixes = through(&mut a, &frames(&stream));
            // The first epoch teaches the cycle; from the second on, each closes at once.
            prop_assert_eq!(a.between_epochs(), epochs.len() > 1);
            fixes.extend(a.finish());
            prop_assert_eq!(fixes.len(), epochs.len());
            for (f, &(lat, lon, h, g)) in fixes.iter().zip(&epochs) {
                prop_assert_eq!(f.latitude_deg, Some(f64::from(lat) * 1e-7));
                prop_assert_eq!(f.longitude_deg, Some(f64::from(lon) * 1e-7));
                prop_assert_eq!(f.altitude_msl_m, Some(f64::from(h) * 1e-3));
                prop_assert_eq!(f.ground_speed_mps, Some(f64::from(g) * 1e-2));
            }
        }
    }
}
