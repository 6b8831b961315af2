//! The u-blox UBX binary protocol: frame codec and the messages Aloft uses.
//!
//! A frame is `0xB5 0x62`, class, id, payload length (u16 LE), payload, and an 8-bit
//! Fletcher checksum (CK_A, CK_B) over class..payload. [`Frame`] borrows its payload from
//! the receive buffer (zero-copy); the typed messages ([`NavPvt`], the legacy navigation
//! set [`NavSol`], [`NavPosllh`], [`NavVelned`], [`NavTimeUtc`], the high-rate [`HnrPvt`],
//! [`CfgNav5`], [`ConfigValue`] lists for CFG-VALSET/VALGET, [`Ack`], [`MonVer`]) decode
//! from a frame and encode to wire bytes. Offsets and scalings are those of the u-blox 8 /
//! M8 protocol specification (UBX-13003221).
//!
//! Invariants: decoding never panics on any input and returns a small, `Copy` error; a
//! frame is only handed out once its checksum has been verified; every typed message keeps
//! every field of its payload, so decode then encode reproduces the payload byte for byte.

use aloft_protocol::DynamicModel;

use super::fix::{Fix, FixMode, GnssTime};

/// The two sync characters that open every UBX frame.
pub const SYNC: [u8; 2] = [0xB5, 0x62];
/// Sync, class, id and length: the bytes before the payload.
pub const HEADER_LEN: usize = 6;
/// Header plus checksum: a frame is `FRAME_OVERHEAD + payload length` bytes.
pub const FRAME_OVERHEAD: usize = 8;

/// Message class and id pairs Aloft uses.
pub mod msg {
    /// ACK-NAK: the receiver rejected a message.
    pub const ACK_NAK: (u8, u8) = (0x05, 0x00);
    /// ACK-ACK: the receiver accepted a message.
    pub const ACK_ACK: (u8, u8) = (0x05, 0x01);
    /// CFG-NAV5: navigation engine settings (dynamic model) on u-blox 6 to 8.
    pub const CFG_NAV5: (u8, u8) = (0x06, 0x24);
    /// CFG-VALSET: set configuration items by key (generation 9 and later).
    pub const CFG_VALSET: (u8, u8) = (0x06, 0x8A);
    /// CFG-VALGET: read configuration items by key (generation 9 and later).
    pub const CFG_VALGET: (u8, u8) = (0x06, 0x8B);
    /// MON-VER: firmware and hardware version.
    pub const MON_VER: (u8, u8) = (0x0A, 0x04);
    /// NAV-PVT: position, velocity and time solution.
    pub const NAV_PVT: (u8, u8) = (0x01, 0x07);
    /// NAV-POSLLH: geodetic position (receivers before NAV-PVT).
    pub const NAV_POSLLH: (u8, u8) = (0x01, 0x02);
    /// NAV-SOL: fix type, validity, ECEF solution, DOP and satellites.
    pub const NAV_SOL: (u8, u8) = (0x01, 0x06);
    /// NAV-VELNED: velocity north, east, down.
    pub const NAV_VELNED: (u8, u8) = (0x01, 0x12);
    /// NAV-TIMEUTC: UTC of the epoch with its validity.
    pub const NAV_TIMEUTC: (u8, u8) = (0x01, 0x21);
    /// HNR-PVT: high-rate navigation solution (dead-reckoning receivers).
    pub const HNR_PVT: (u8, u8) = (0x28, 0x00);
}

/// Configuration key of the navigation dynamic model (CFG-NAVSPG-DYNMODEL, U1).
pub const KEY_NAVSPG_DYNMODEL: u32 = 0x2011_0021;

/// Why bytes are not a UBX frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The bytes do not start with `0xB5 0x62`.
    #[error("no UBX sync characters")]
    BadSync,
    /// More bytes are needed: the whole frame is `needed` bytes long.
    #[error("UBX frame truncated: {needed} bytes needed")]
    Truncated {
        /// Length of the whole frame, or of its header while that is incomplete.
        needed: usize,
    },
    /// The checksum does not match.
    #[error("UBX checksum mismatch: computed {computed:#06x}, received {received:#06x}")]
    Checksum {
        /// CK_A << 8 | CK_B over the received class..payload.
        computed: u16,
        /// CK_A << 8 | CK_B as received.
        received: u16,
    },
}

/// Why a frame is not the typed message asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The frame has another class or id.
    #[error("expected UBX {expected:02x?}, got {found:02x?}")]
    WrongMessage {
        /// Class and id the decoder handles.
        expected: (u8, u8),
        /// Class and id of the frame.
        found: (u8, u8),
    },
    /// The payload length does not fit the message.
    #[error("UBX payload of {found} bytes where the message needs {expected}")]
    Length {
        /// Length (or minimum length) the message needs.
        expected: usize,
        /// Length received.
        found: usize,
    },
    /// A configuration key whose value size is not defined.
    #[error("configuration key {key:#010x} has no defined size")]
    KeySize {
        /// The key.
        key: u32,
    },
}

/// 8-bit Fletcher checksum (CK_A, CK_B) over `bytes` (class..payload).
pub fn checksum(bytes: &[u8]) -> (u8, u8) {
    bytes.iter().fold((0u8, 0u8), |(a, b), &x| {
        let a = a.wrapping_add(x);
        (a, b.wrapping_add(a))
    })
}

/// One UBX frame whose checksum has been verified; the payload borrows from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Message class.
    pub class: u8,
    /// Message id within the class.
    pub id: u8,
    /// Payload bytes.
    pub payload: &'a [u8],
}

impl<'a> Frame<'a> {
    /// A frame of `(class, id)` with `payload`.
    pub fn new((class, id): (u8, u8), payload: &'a [u8]) -> Self {
        Frame { class, id, payload }
    }

    /// Class and id as a pair (compare with the constants in [`msg`]).
    pub fn kind(&self) -> (u8, u8) {
        (self.class, self.id)
    }

    /// Decodes the frame at the start of `bytes`; returns it and the number of bytes it
    /// occupies. Bytes after the frame are ignored.
    pub fn decode(bytes: &'a [u8]) -> Result<(Frame<'a>, usize), FrameError> {
        match bytes {
            [] => return Err(FrameError::Truncated { needed: HEADER_LEN }),
            [s0] if *s0 == SYNC[0] => return Err(FrameError::Truncated { needed: HEADER_LEN }),
            [s0, s1, ..] if [*s0, *s1] == SYNC => {}
            _ => return Err(FrameError::BadSync),
        }
        let Some(&[class, id, l0, l1]) = bytes.get(2..HEADER_LEN) else {
            return Err(FrameError::Truncated { needed: HEADER_LEN });
        };
        let len = usize::from(u16::from_le_bytes([l0, l1]));
        let total = FRAME_OVERHEAD + len;
        let (Some(body), Some(&[ck_a, ck_b])) =
            (bytes.get(2..HEADER_LEN + len), bytes.get(total - 2..total))
        else {
            return Err(FrameError::Truncated { needed: total });
        };
        let (a, b) = checksum(body);
        if (a, b) != (ck_a, ck_b) {
            return Err(FrameError::Checksum {
                computed: u16::from_be_bytes([a, b]),
                received: u16::from_be_bytes([ck_a, ck_b]),
            });
        }
        let payload = body.get(4..).unwrap_or_default();
        Ok((Frame { class, id, payload }, total))
    }

    /// Length of the frame on the wire.
    pub fn wire_len(&self) -> usize {
        FRAME_OVERHEAD + self.payload.len()
    }

    /// Appends the frame's wire bytes to `out`.
    ///
    /// A payload over 65 535 bytes cannot be framed; its length is truncated to the u16
    /// field, which no message Aloft builds comes near.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let len = u16::try_from(self.payload.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&SYNC);
        out.extend_from_slice(&[self.class, self.id]);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(self.payload.get(..usize::from(len)).unwrap_or(self.payload));
        let (a, b) = checksum(out.get(start + 2..).unwrap_or_default());
        out.extend_from_slice(&[a, b]);
    }

    /// The frame's wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.wire_len());
        self.encode_into(&mut out);
        out
    }

    fn expect(&self, kind: (u8, u8)) -> Result<(), MessageError> {
        if self.kind() == kind {
            Ok(())
        } else {
            Err(MessageError::WrongMessage {
                expected: kind,
                found: self.kind(),
            })
        }
    }
}

/// The wire bytes of a poll: a frame of `kind` with an empty payload.
pub fn poll(kind: (u8, u8)) -> Vec<u8> {
    Frame::new(kind, &[]).to_bytes()
}

/// Little-endian field reads from a payload of known length. The length is checked by
/// the decoders before any read, so the fallback of zero is never observable.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn array<const N: usize>(&self, at: usize) -> [u8; N] {
        self.0
            .get(at..at + N)
            .and_then(|s| s.try_into().ok())
            .unwrap_or([0; N])
    }
    fn u8(&self, at: usize) -> u8 {
        self.0.get(at).copied().unwrap_or(0)
    }
    fn u16(&self, at: usize) -> u16 {
        u16::from_le_bytes(self.array(at))
    }
    fn i16(&self, at: usize) -> i16 {
        i16::from_le_bytes(self.array(at))
    }
    fn u32(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.array(at))
    }
    fn i32(&self, at: usize) -> i32 {
        i32::from_le_bytes(self.array(at))
    }
}

fn exact_len(frame: &Frame<'_>, kind: (u8, u8), len: usize) -> Result<(), MessageError> {
    frame.expect(kind)?;
    if frame.payload.len() == len {
        Ok(())
    } else {
        Err(MessageError::Length {
            expected: len,
            found: frame.payload.len(),
        })
    }
}

/// NAV-PVT validity flags (`valid`).
pub mod valid {
    /// UTC date is valid.
    pub const DATE: u8 = 0x01;
    /// UTC time of day is valid.
    pub const TIME: u8 = 0x02;
    /// UTC time of day has no seconds uncertainty.
    pub const FULLY_RESOLVED: u8 = 0x04;
}

/// NAV-PVT `flags` bit: a valid fix within the DOP and accuracy masks.
pub const FLAG_GNSS_FIX_OK: u8 = 0x01;
/// NAV-PVT `flags` bit: differential corrections were applied.
pub const FLAG_DIFF_SOLN: u8 = 0x02;

/// UBX-NAV-PVT (class 0x01 id 0x07, 92 bytes): the receiver's navigation solution.
///
/// Fields keep the wire's integer units (named in each field's doc); [`NavPvt::to_fix`]
/// converts to SI. Fields Aloft does not use are kept too, so that encode reproduces the
/// payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NavPvt {
    /// GPS time of week of the epoch, ms.
    pub itow_ms: u32,
    /// UTC year.
    pub year: u16,
    /// UTC month 1-12.
    pub month: u8,
    /// UTC day 1-31.
    pub day: u8,
    /// UTC hour 0-23.
    pub hour: u8,
    /// UTC minute 0-59.
    pub minute: u8,
    /// UTC second 0-60.
    pub second: u8,
    /// Validity flags, see [`valid`].
    pub valid: u8,
    /// Time accuracy estimate, ns.
    pub t_acc_ns: u32,
    /// Fraction of the second, ns, -1e9..1e9 (added to the UTC time above).
    pub nano: i32,
    /// 0 no fix, 1 dead reckoning only, 2 2D, 3 3D, 4 GNSS + dead reckoning, 5 time only.
    pub fix_type: u8,
    /// Fix status flags ([`FLAG_GNSS_FIX_OK`], [`FLAG_DIFF_SOLN`], ...).
    pub flags: u8,
    /// Additional flags (confirmed date/time).
    pub flags2: u8,
    /// Satellites used in the solution.
    pub num_sv: u8,
    /// Longitude, 1e-7 degrees.
    pub lon: i32,
    /// Latitude, 1e-7 degrees.
    pub lat: i32,
    /// Height above the ellipsoid, mm.
    pub height_mm: i32,
    /// Height above mean sea level, mm.
    pub h_msl_mm: i32,
    /// Horizontal accuracy estimate, mm.
    pub h_acc_mm: u32,
    /// Vertical accuracy estimate, mm.
    pub v_acc_mm: u32,
    /// North velocity, mm/s.
    pub vel_n: i32,
    /// East velocity, mm/s.
    pub vel_e: i32,
    /// Down velocity, mm/s.
    pub vel_d: i32,
    /// Ground speed (2D), mm/s.
    pub g_speed: i32,
    /// Heading of motion (2D), 1e-5 degrees.
    pub head_mot: i32,
    /// Speed accuracy estimate, mm/s.
    pub s_acc: u32,
    /// Heading accuracy estimate, 1e-5 degrees.
    pub head_acc: u32,
    /// Position dilution of precision, 0.01.
    pub p_dop: u16,
    /// Bytes 78..84: `flags3` and reserved bytes.
    pub reserved: [u8; 6],
    /// Heading of vehicle, 1e-5 degrees.
    pub head_veh: i32,
    /// Magnetic declination, 1e-2 degrees.
    pub mag_dec: i16,
    /// Magnetic declination accuracy, 1e-2 degrees.
    pub mag_acc: u16,
}

impl NavPvt {
    /// Payload length.
    pub const LEN: usize = 92;

    /// Decodes a NAV-PVT frame.
    pub fn decode(frame: &Frame<'_>) -> Result<Self, MessageError> {
        exact_len(frame, msg::NAV_PVT, Self::LEN)?;
        let f = Fields(frame.payload);
        Ok(NavPvt {
            itow_ms: f.u32(0),
            year: f.u16(4),
            month: f.u8(6),
            day: f.u8(7),
            hour: f.u8(8),
            minute: f.u8(9),
            second: f.u8(10),
            valid: f.u8(11),
            t_acc_ns: f.u32(12),
            nano: f.i32(16),
            fix_type: f.u8(20),
            flags: f.u8(21),
            flags2: f.u8(22),
            num_sv: f.u8(23),
            lon: f.i32(24),
            lat: f.i32(28),
            height_mm: f.i32(32),
            h_msl_mm: f.i32(36),
            h_acc_mm: f.u32(40),
            v_acc_mm: f.u32(44),
            vel_n: f.i32(48),
            vel_e: f.i32(52),
            vel_d: f.i32(56),
            g_speed: f.i32(60),
            head_mot: f.i32(64),
            s_acc: f.u32(68),
            head_acc: f.u32(72),
            p_dop: f.u16(76),
            reserved: f.array(78),
            head_veh: f.i32(84),
            mag_dec: f.i16(88),
            mag_acc: f.u16(90),
        })
    }

    /// The 92-byte payload.
    pub fn payload(&self) -> [u8; Self::LEN] {
        let mut p = Vec::with_capacity(Self::LEN);
        p.extend_from_slice(&self.itow_ms.to_le_bytes());
        p.extend_from_slice(&self.year.to_le_bytes());
        p.extend_from_slice(&[self.month, self.day, self.hour, self.minute, self.second]);
        p.push(self.valid);
        p.extend_from_slice(&self.t_acc_ns.to_le_bytes());
        p.extend_from_slice(&self.nano.to_le_bytes());
        p.extend_from_slice(&[self.fix_type, self.flags, self.flags2, self.num_sv]);
        for v in [self.lon, self.lat, self.height_mm, self.h_msl_mm] {
            p.extend_from_slice(&v.to_le_bytes());
        }
        p.extend_from_slice(&self.h_acc_mm.to_le_bytes());
        p.extend_from_slice(&self.v_acc_mm.to_le_bytes());
        for v in [
            self.vel_n,
            self.vel_e,
            self.vel_d,
            self.g_speed,
            self.head_mot,
        ] {
            p.extend_from_slice(&v.to_le_bytes());
        }
        p.extend_from_slice(&self.s_acc.to_le_bytes());
        p.extend_from_slice(&self.head_acc.to_le_bytes());
        p.extend_from_slice(&self.p_dop.to_le_bytes());
        p.extend_from_slice(&self.reserved);
        p.extend_from_slice(&self.head_veh.to_le_bytes());
        p.extend_from_slice(&self.mag_dec.to_le_bytes());
        p.extend_from_slice(&self.mag_acc.to_le_bytes());
        p.try_into().unwrap_or([0; Self::LEN])
    }

    /// The whole frame's wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        Frame::new(msg::NAV_PVT, &self.payload()).to_bytes()
    }

    /// UTC of the epoch when the receiver says its time of day is valid; the date only
    /// when it says the date is valid too. `nano` (which may be negative) is folded into
    /// the seconds, carrying across minute, hour and day boundaries.
    pub fn utc(&self) -> Option<GnssTime> {
        (self.valid & valid::TIME != 0).then(|| {
            fold_utc(
                CalendarTime {
                    year: self.year,
                    month: self.month,
                    day: self.day,
                    hour: self.hour,
                    minute: self.minute,
                    second: self.second,
                    nano: self.nano,
                },
                self.valid & valid::DATE != 0,
            )
        })
    }

    /// Fix mode from `fixType`: dead reckoning alone and time-only are no position fix.
    pub fn mode(&self) -> FixMode {
        mode_of(self.fix_type)
    }

    /// The solution as a [`Fix`] in SI units. Position and velocity are given only with a
    /// 2D or 3D fix, altitudes only with a 3D fix; time only when the validity flags say so.
    /// A time-only solution (`fixType` 5) gives the time and no position; a solution
    /// without `gnssFixOK` is not valid, so its position readings are flagged invalid.
    pub fn to_fix(&self) -> Fix {
        let status = SolutionStatus::of(self.fix_type, self.flags);
        let has_position = status.mode != FixMode::NoFix;
        let has_altitude = status.mode == FixMode::ThreeD;
        let some = |cond: bool, v: f64| cond.then_some(v);
        Fix {
            time: self.utc(),
            latitude_deg: some(has_position, f64::from(self.lat) * 1e-7),
            longitude_deg: some(has_position, f64::from(self.lon) * 1e-7),
            altitude_msl_m: some(has_altitude, f64::from(self.h_msl_mm) * 1e-3),
            geoid_separation_m: some(
                has_altitude,
                (i64::from(self.height_mm) - i64::from(self.h_msl_mm)) as f64 * 1e-3,
            ),
            ground_speed_mps: some(has_position, f64::from(self.g_speed) * 1e-3),
            track_deg: some(has_position, f64::from(self.head_mot) * 1e-5),
            vertical_speed_mps: some(has_altitude, -f64::from(self.vel_d) * 1e-3),
            mode: Some(status.mode),
            quality: Some(status.quality),
            valid: status.valid,
            satellites_used: Some(self.num_sv),
            satellites: Vec::new(),
            hdop: None,
            vdop: None,
            pdop: Some(f64::from(self.p_dop) * 0.01),
            horizontal_accuracy_m: Some(f64::from(self.h_acc_mm) * 1e-3),
            vertical_accuracy_m: Some(f64::from(self.v_acc_mm) * 1e-3),
        }
    }
}

/// A UTC calendar time as the UBX messages give it: whole seconds and a signed fraction.
#[derive(Debug, Clone, Copy)]
struct CalendarTime {
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    /// Fraction of the second, ns, -1e9..1e9 (added to the time above).
    nano: i32,
}

/// The calendar time with its signed fraction folded into the seconds, carrying across
/// minute, hour and day boundaries; the date kept only when `with_date`.
fn fold_utc(t: CalendarTime, with_date: bool) -> GnssTime {
    let day_ns = 86_400 * 1_000_000_000i128;
    let tod_ns = (i128::from(t.hour) * 3600 + i128::from(t.minute) * 60 + i128::from(t.second))
        * 1_000_000_000
        + i128::from(t.nano);
    let days = i128::from(days_from_civil(i64::from(t.year), t.month, t.day));
    let total = days * day_ns + tod_ns;
    let (days, tod) = (total.div_euclid(day_ns), total.rem_euclid(day_ns));
    let secs = tod / 1_000_000_000;
    let date = with_date.then(|| civil_from_days(i64::try_from(days).unwrap_or(0)));
    GnssTime {
        date,
        hour: u8::try_from(secs / 3600).unwrap_or(0),
        minute: u8::try_from(secs / 60 % 60).unwrap_or(0),
        second: u8::try_from(secs % 60).unwrap_or(0),
        nanosecond: u32::try_from(tod % 1_000_000_000).unwrap_or(0),
    }
}

/// Fix mode of a UBX fix type (NAV-PVT `fixType`, NAV-SOL and HNR-PVT `gpsFix`): 0 no
/// fix, 1 dead reckoning only, 2 2D, 3 3D, 4 GNSS + dead reckoning, 5 time only. Dead
/// reckoning alone and time only are no position fix.
pub fn mode_of(fix_type: u8) -> FixMode {
    match fix_type {
        2 => FixMode::TwoD,
        3 | 4 => FixMode::ThreeD,
        _ => FixMode::NoFix,
    }
}

/// What a UBX solution says of itself: mode, GGA-like quality and validity.
///
/// The fix type and the first two flag bits (`gnssFixOK`/`gpsFixOK`, `diffSoln`) mean
/// the same in NAV-PVT, NAV-SOL and HNR-PVT. The protocol specification makes the
/// fix-OK flag the test of a usable fix (within the DOP and accuracy masks): without it
/// the fix is not valid whatever the fix type says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SolutionStatus {
    /// Fix mode from the fix type.
    pub mode: FixMode,
    /// GGA-like quality: 0 invalid, 1 autonomous, 2 differential, 6 dead reckoning.
    pub quality: u8,
    /// The fix-OK flag.
    pub valid: bool,
}

impl SolutionStatus {
    /// The status of fix type `fix_type` with flags `flags`.
    pub fn of(fix_type: u8, flags: u8) -> Self {
        let mode = mode_of(fix_type);
        let valid = flags & FLAG_GNSS_FIX_OK != 0;
        let quality = match (mode != FixMode::NoFix, valid) {
            (true, true) if flags & FLAG_DIFF_SOLN != 0 => 2,
            (true, true) => 1,
            _ if fix_type == 1 => 6,
            _ => 0,
        };
        SolutionStatus {
            mode,
            quality,
            valid,
        }
    }
}

/// Little-endian payload writer of the encoders.
struct Payload(Vec<u8>);

impl Payload {
    fn with_capacity(n: usize) -> Self {
        Payload(Vec::with_capacity(n))
    }
    fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    fn u8(self, v: u8) -> Self {
        self.bytes(&[v])
    }
    fn u16(self, v: u16) -> Self {
        self.bytes(&v.to_le_bytes())
    }
    fn i16(self, v: i16) -> Self {
        self.bytes(&v.to_le_bytes())
    }
    fn u32(self, v: u32) -> Self {
        self.bytes(&v.to_le_bytes())
    }
    fn i32(self, v: i32) -> Self {
        self.bytes(&v.to_le_bytes())
    }
    /// The payload as an array of the message's length (the encoders write exactly it).
    fn finish<const N: usize>(self) -> [u8; N] {
        self.0.try_into().unwrap_or([0; N])
    }
}

/// NAV-SOL `flags` bits.
pub mod sol_flags {
    /// A valid fix within the DOP and accuracy masks.
    pub const GPS_FIX_OK: u8 = 0x01;
    /// Differential corrections were applied.
    pub const DIFF_SOLN: u8 = 0x02;
    /// The week number is valid.
    pub const WKN_SET: u8 = 0x04;
    /// The time of week is valid.
    pub const TOW_SET: u8 = 0x08;
}

/// UBX-NAV-SOL (class 0x01 id 0x06, 52 bytes): the navigation solution of receivers
/// before NAV-PVT: fix type, validity, ECEF position and velocity, pDOP, satellites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NavSol {
    /// GPS time of week of the epoch, ms.
    pub itow_ms: u32,
    /// Fraction of the millisecond of `itow_ms`, ns (-500 000..500 000).
    pub ftow_ns: i32,
    /// GPS week number.
    pub week: i16,
    /// Fix type, as NAV-PVT's `fixType` (0..5).
    pub gps_fix: u8,
    /// Fix status flags, see [`sol_flags`].
    pub flags: u8,
    /// ECEF X, cm.
    pub ecef_x_cm: i32,
    /// ECEF Y, cm.
    pub ecef_y_cm: i32,
    /// ECEF Z, cm.
    pub ecef_z_cm: i32,
    /// 3D position accuracy estimate, cm.
    pub p_acc_cm: u32,
    /// ECEF X velocity, cm/s.
    pub ecef_vx_cms: i32,
    /// ECEF Y velocity, cm/s.
    pub ecef_vy_cms: i32,
    /// ECEF Z velocity, cm/s.
    pub ecef_vz_cms: i32,
    /// Speed accuracy estimate, cm/s.
    pub s_acc_cms: u32,
    /// Position dilution of precision, 0.01.
    pub p_dop: u16,
    /// Byte 46, reserved.
    pub reserved1: u8,
    /// Satellites used in the solution.
    pub num_sv: u8,
    /// Bytes 48..52, reserved.
    pub reserved2: [u8; 4],
}

impl NavSol {
    /// Payload length.
    pub const LEN: usize = 52;

    /// Decodes a NAV-SOL frame.
    pub fn decode(frame: &Frame<'_>) -> Result<Self, MessageError> {
        exact_len(frame, msg::NAV_SOL, Self::LEN)?;
        let f = Fields(frame.payload);
        Ok(NavSol {
            itow_ms: f.u32(0),
            ftow_ns: f.i32(4),
            week: f.i16(8),
            gps_fix: f.u8(10),
            flags: f.u8(11),
            ecef_x_cm: f.i32(12),
            ecef_y_cm: f.i32(16),
            ecef_z_cm: f.i32(20),
            p_acc_cm: f.u32(24),
            ecef_vx_cms: f.i32(28),
            ecef_vy_cms: f.i32(32),
            ecef_vz_cms: f.i32(36),
            s_acc_cms: f.u32(40),
            p_dop: f.u16(44),
            reserved1: f.u8(46),
            num_sv: f.u8(47),
            reserved2: f.array(48),
        })
    }

    /// The 52-byte payload.
    pub fn payload(&self) -> [u8; Self::LEN] {
        Payload::with_capacity(Self::LEN)
            .u32(self.itow_ms)
            .i32(self.ftow_ns)
            .i16(self.week)
            .u8(self.gps_fix)
            .u8(self.flags)
            .i32(self.ecef_x_cm)
            .i32(self.ecef_y_cm)
            .i32(self.ecef_z_cm)
            .u32(self.p_acc_cm)
            .i32(self.ecef_vx_cms)
            .i32(self.ecef_vy_cms)
            .i32(self.ecef_vz_cms)
            .u32(self.s_acc_cms)
            .u16(self.p_dop)
            .u8(self.reserved1)
            .u8(self.num_sv)
            .bytes(&self.reserved2)
            .finish()
    }

    /// The whole frame's wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        Frame::new(msg::NAV_SOL, &self.payload()).to_bytes()
    }

    /// Mode, quality and validity of the solution.
    pub fn status(&self) -> SolutionStatus {
        SolutionStatus::of(self.gps_fix, self.flags)
    }
}

/// UBX-NAV-POSLLH (class 0x01 id 0x02, 28 bytes): geodetic position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NavPosllh {
    /// GPS time of week of the epoch, ms.
    pub itow_ms: u32,
    /// Longitude, 1e-7 degrees.
    pub lon: i32,
    /// Latitude, 1e-7 degrees.
    pub lat: i32,
    /// Height above the ellipsoid, mm.
    pub height_mm: i32,
    /// Height above mean sea level, mm.
    pub h_msl_mm: i32,
    /// Horizontal accuracy estimate, mm.
    pub h_acc_mm: u32,
    /// Vertical accuracy estimate, mm.
    pub v_acc_mm: u32,
}

impl NavPosllh {
    /// Payload length.
    pub const LEN: usize = 28;

    /// Decodes a NAV-POSLLH frame.
    pub fn decode(frame: &Frame<'_>) -> Result<Self, MessageError> {
        exact_len(frame, msg::NAV_POSLLH, Self::LEN)?;
        let f = Fields(frame.payload);
        Ok(NavPosllh {
            itow_ms: f.u32(0),
            lon: f.i32(4),
            lat: f.i32(8),
            height_mm: f.i32(12),
            h_msl_mm: f.i32(16),
            h_acc_mm: f.u32(20),
            v_acc_mm: f.u32(24),
        })
    }

    /// The 28-byte payload.
    pub fn payload(&self) -> [u8; Self::LEN] {
        Payload::with_capacity(Self::LEN)
            .u32(self.itow_ms)
            .i32(self.lon)
            .i32(self.lat)
            .i32(self.height_mm)
            .i32(self.h_msl_mm)
            .u32(self.h_acc_mm)
            .u32(self.v_acc_mm)
            .finish()
    }

    /// The whole frame's wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        Frame::new(msg::NAV_POSLLH, &self.payload()).to_bytes()
    }
}

/// UBX-NAV-VELNED (class 0x01 id 0x12, 36 bytes): velocity in the local north, east,
/// down frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NavVelned {
    /// GPS time of week of the epoch, ms.
    pub itow_ms: u32,
    /// North velocity, cm/s.
    pub vel_n_cms: i32,
    /// East velocity, cm/s.
    pub vel_e_cms: i32,
    /// Down velocity, cm/s.
    pub vel_d_cms: i32,
    /// Speed (3D), cm/s.
    pub speed_cms: u32,
    /// Ground speed (2D), cm/s.
    pub g_speed_cms: u32,
    /// Heading of motion (2D), 1e-5 degrees.
    pub heading: i32,
    /// Speed accuracy estimate, cm/s.
    pub s_acc_cms: u32,
    /// Course (heading) accuracy estimate, 1e-5 degrees.
    pub c_acc: u32,
}

impl NavVelned {
    /// Payload length.
    pub const LEN: usize = 36;

    /// Decodes a NAV-VELNED frame.
    pub fn decode(frame: &Frame<'_>) -> Result<Self, MessageError> {
        exact_len(frame, msg::NAV_VELNED, Self::LEN)?;
        let f = Fields(frame.payload);
        Ok(NavVelned {
            itow_ms: f.u32(0),
            vel_n_cms: f.i32(4),
            vel_e_cms: f.i32(8),
            vel_d_cms: f.i32(12),
            speed_cms: f.u32(16),
            g_speed_cms: f.u32(20),
            heading: f.i32(24),
            s_acc_cms: f.u32(28),
            c_acc: f.u32(32),
        })
    }

    /// The 36-byte payload.
    pub fn payload(&self) -> [u8; Self::LEN] {
        Payload::with_capacity(Self::LEN)
            .u32(self.itow_ms)
            .i32(self.vel_n_cms)
            .i32(self.vel_e_cms)
            .i32(self.vel_d_cms)
            .u32(self.speed_cms)
            .u32(self.g_speed_cms)
            .i32(self.heading)
            .u32(self.s_acc_cms)
            .u32(self.c_acc)
            .finish()
    }

    /// The whole frame's wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        Frame::new(msg::NAV_VELNED, &self.payload()).to_bytes()
    }
}

/// NAV-TIMEUTC validity flags (`valid`, bits 0..2; bits 4..7 name the UTC standard).
pub mod timeutc_valid {
    /// The GPS time of week is valid.
    pub const TOW: u8 = 0x01;
    /// The GPS week number is valid.
    pub const WKN: u8 = 0x02;
    /// The UTC time is valid (the leap seconds are known).
    pub const UTC: u8 = 0x04;
}

/// UBX-NAV-TIMEUTC (class 0x01 id 0x21, 20 bytes): UTC of the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NavTimeUtc {
    /// GPS time of week of the epoch, ms.
    pub itow_ms: u32,
    /// Time accuracy estimate, ns.
    pub t_acc_ns: u32,
    /// Fraction of the second, ns, -1e9..1e9 (added to the UTC time below).
    pub nano: i32,
    /// UTC year.
    pub year: u16,
    /// UTC month 1-12.
    pub month: u8,
    /// UTC day 1-31.
    pub day: u8,
    /// UTC hour 0-23.
    pub hour: u8,
    /// UTC minute 0-59.
    pub minute: u8,
    /// UTC second 0-60.
    pub second: u8,
    /// Validity flags, see [`timeutc_valid`].
    pub valid: u8,
}

impl NavTimeUtc {
    /// Payload length.
    pub const LEN: usize = 20;

    /// Decodes a NAV-TIMEUTC frame.
    pub fn decode(frame: &Frame<'_>) -> Result<Self, MessageError> {
        exact_len(frame, msg::NAV_TIMEUTC, Self::LEN)?;
        let f = Fields(frame.payload);
        Ok(NavTimeUtc {
            itow_ms: f.u32(0),
            t_acc_ns: f.u32(4),
            nano: f.i32(8),
            year: f.u16(12),
            month: f.u8(14),
            day: f.u8(15),
            hour: f.u8(16),
            minute: f.u8(17),
            second: f.u8(18),
            valid: f.u8(19),
        })
    }

    /// The 20-byte payload.
    pub fn payload(&self) -> [u8; Self::LEN] {
        Payload::with_capacity(Self::LEN)
            .u32(self.itow_ms)
            .u32(self.t_acc_ns)
            .i32(self.nano)
            .u16(self.year)
            .bytes(&[self.month, self.day, self.hour, self.minute, self.second])
            .u8(self.valid)
            .finish()
    }

    /// The whole frame's wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        Frame::new(msg::NAV_TIMEUTC, &self.payload()).to_bytes()
    }

    /// UTC of the epoch when the receiver says UTC and the time of week are valid (the
    /// time of day is known to the leap second); the date only when the week number is
    /// valid too.
    pub fn utc(&self) -> Option<GnssTime> {
        let time = timeutc_valid::UTC | timeutc_valid::TOW;
        (self.valid & time == time).then(|| {
            fold_utc(
                CalendarTime {
                    year: self.year,
                    month: self.month,
                    day: self.day,
                    hour: self.hour,
                    minute: self.minute,
                    second: self.second,
                    nano: self.nano,
                },
                self.valid & timeutc_valid::WKN != 0,
            )
        })
    }
}

/// UBX-HNR-PVT (class 0x28 id 0x00, 72 bytes): the high-rate navigation solution of the
/// dead-reckoning receivers (e.g. NEO-M8U), up to 30 Hz between the GNSS epochs.
///
/// `valid` has NAV-PVT's bits ([`valid`]); `flags` bits 0 and 1 are NAV-PVT's
/// ([`FLAG_GNSS_FIX_OK`], [`FLAG_DIFF_SOLN`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HnrPvt {
    /// GPS time of week of the solution, ms.
    pub itow_ms: u32,
    /// UTC year.
    pub year: u16,
    /// UTC month 1-12.
    pub month: u8,
    /// UTC day 1-31.
    pub day: u8,
    /// UTC hour 0-23.
    pub hour: u8,
    /// UTC minute 0-59.
    pub minute: u8,
    /// UTC second 0-60.
    pub second: u8,
    /// Validity flags, see [`valid`].
    pub valid: u8,
    /// Fraction of the second, ns, -1e9..1e9.
    pub nano: i32,
    /// Fix type, as NAV-PVT's `fixType` (0..5).
    pub gps_fix: u8,
    /// Fix status flags (GPSfixOK, DiffSoln, WKNSET, TOWSET, headVehValid).
    pub flags: u8,
    /// Bytes 18..20, reserved.
    pub reserved1: [u8; 2],
    /// Longitude, 1e-7 degrees.
    pub lon: i32,
    /// Latitude, 1e-7 degrees.
    pub lat: i32,
    /// Height above the ellipsoid, mm.
    pub height_mm: i32,
    /// Height above mean sea level, mm.
    pub h_msl_mm: i32,
    /// Ground speed (2D), mm/s.
    pub g_speed: i32,
    /// Speed (3D), mm/s.
    pub speed: i32,
    /// Heading of motion (2D), 1e-5 degrees.
    pub head_mot: i32,
    /// Heading of vehicle, 1e-5 degrees.
    pub head_veh: i32,
    /// Horizontal accuracy estimate, mm.
    pub h_acc_mm: u32,
    /// Vertical accuracy estimate, mm.
    pub v_acc_mm: u32,
    /// Speed accuracy estimate, mm/s.
    pub s_acc: u32,
    /// Heading accuracy estimate, 1e-5 degrees.
    pub head_acc: u32,
    /// Bytes 68..72, reserved.
    pub reserved2: [u8; 4],
}

impl HnrPvt {
    /// Payload length.
    pub const LEN: usize = 72;

    /// Decodes an HNR-PVT frame.
    pub fn decode(frame: &Frame<'_>) -> Result<Self, MessageError> {
        exact_len(frame, msg::HNR_PVT, Self::LEN)?;
        let f = Fields(frame.payload);
        Ok(HnrPvt {
            itow_ms: f.u32(0),
            year: f.u16(4),
            month: f.u8(6),
            day: f.u8(7),
            hour: f.u8(8),
            minute: f.u8(9),
            second: f.u8(10),
            valid: f.u8(11),
            nano: f.i32(12),
            gps_fix: f.u8(16),
            flags: f.u8(17),
            reserved1: f.array(18),
            lon: f.i32(20),
            lat: f.i32(24),
            height_mm: f.i32(28),
            h_msl_mm: f.i32(32),
            g_speed: f.i32(36),
            speed: f.i32(40),
            head_mot: f.i32(44),
            head_veh: f.i32(48),
            h_acc_mm: f.u32(52),
            v_acc_mm: f.u32(56),
            s_acc: f.u32(60),
            head_acc: f.u32(64),
            reserved2: f.array(68),
        })
    }

    /// The 72-byte payload.
    pub fn payload(&self) -> [u8; Self::LEN] {
        Payload::with_capacity(Self::LEN)
            .u32(self.itow_ms)
            .u16(self.year)
            .bytes(&[self.month, self.day, self.hour, self.minute, self.second])
            .u8(self.valid)
            .i32(self.nano)
            .u8(self.gps_fix)
            .u8(self.flags)
            .bytes(&self.reserved1)
            .i32(self.lon)
            .i32(self.lat)
            .i32(self.height_mm)
            .i32(self.h_msl_mm)
            .i32(self.g_speed)
            .i32(self.speed)
            .i32(self.head_mot)
            .i32(self.head_veh)
            .u32(self.h_acc_mm)
            .u32(self.v_acc_mm)
            .u32(self.s_acc)
            .u32(self.head_acc)
            .bytes(&self.reserved2)
            .finish()
    }

    /// The whole frame's wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        Frame::new(msg::HNR_PVT, &self.payload()).to_bytes()
    }

    /// UTC of the solution under the same validity rules as NAV-PVT's.
    pub fn utc(&self) -> Option<GnssTime> {
        (self.valid & valid::TIME != 0).then(|| {
            fold_utc(
                CalendarTime {
                    year: self.year,
                    month: self.month,
                    day: self.day,
                    hour: self.hour,
                    minute: self.minute,
                    second: self.second,
                    nano: self.nano,
                },
                self.valid & valid::DATE != 0,
            )
        })
    }

    /// The solution as a [`Fix`], under NAV-PVT's rules (see [`NavPvt::to_fix`]). HNR-PVT
    /// has no down velocity, satellite count or DOP, so those stay absent.
    pub fn to_fix(&self) -> Fix {
        let status = SolutionStatus::of(self.gps_fix, self.flags);
        let has_position = status.mode != FixMode::NoFix;
        let has_altitude = status.mode == FixMode::ThreeD;
        let some = |cond: bool, v: f64| cond.then_some(v);
        Fix {
            time: self.utc(),
            latitude_deg: some(has_position, f64::from(self.lat) * 1e-7),
            longitude_deg: some(has_position, f64::from(self.lon) * 1e-7),
            altitude_msl_m: some(has_altitude, f64::from(self.h_msl_mm) * 1e-3),
            geoid_separation_m: some(
                has_altitude,
                (i64::from(self.height_mm) - i64::from(self.h_msl_mm)) as f64 * 1e-3,
            ),
            ground_speed_mps: some(has_position, f64::from(self.g_speed) * 1e-3),
            track_deg: some(has_position, f64::from(self.head_mot) * 1e-5),
            mode: Some(status.mode),
            quality: Some(status.quality),
            valid: status.valid,
            horizontal_accuracy_m: Some(f64::from(self.h_acc_mm) * 1e-3),
            vertical_accuracy_m: Some(f64::from(self.v_acc_mm) * 1e-3),
            ..Fix::default()
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub(crate) fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let (m, d) = (i64::from(month), i64::from(day));
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (inverse of
/// [`days_from_civil`]); years outside u16 saturate.
pub(crate) fn civil_from_days(days: i64) -> (u16, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        u16::try_from(y.clamp(0, i64::from(u16::MAX))).unwrap_or(0),
        u8::try_from(m).unwrap_or(1),
        u8::try_from(d).unwrap_or(1),
    )
}

/// CFG-NAV5 `mask` bit: apply the dynamic model.
pub const NAV5_MASK_DYN: u16 = 0x0001;

/// UBX-CFG-NAV5 (class 0x06 id 0x24, 36 bytes): navigation engine settings.
///
/// An empty CFG-NAV5 is a poll; the receiver answers with the current settings and an
/// ACK. Only fields whose `mask` bit is set are applied by a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CfgNav5 {
    /// Which settings a set applies ([`NAV5_MASK_DYN`] for the dynamic model).
    pub mask: u16,
    /// Dynamic model code (see [`DynamicModel::code`]).
    pub dyn_model: u8,
    /// Bytes 3..36 (fixMode onwards), kept as received.
    pub rest: [u8; 33],
}

impl CfgNav5 {
    /// Payload length.
    pub const LEN: usize = 36;

    /// The wire bytes of a poll of the current settings.
    pub fn poll() -> Vec<u8> {
        poll(msg::CFG_NAV5)
    }

    /// A set that changes the dynamic model and nothing else.
    pub fn set_dynamic_model(model: DynamicModel) -> Self {
        CfgNav5 {
            mask: NAV5_MASK_DYN,
            dyn_model: model.code(),
            rest: [0; 33],
        }
    }

    /// Decodes a CFG-NAV5 frame (a poll answer or a set).
    pub fn decode(frame: &Frame<'_>) -> Result<Self, MessageError> {
        exact_len(frame, msg::CFG_NAV5, Self::LEN)?;
        let f = Fields(frame.payload);
        Ok(CfgNav5 {
            mask: f.u16(0),
            dyn_model: f.u8(2),
            rest: f.array(3),
        })
    }

    /// The dynamic model, if the code is one u-blox defines.
    pub fn dynamic_model(&self) -> Option<DynamicModel> {
        DynamicModel::from_code(self.dyn_model)
    }

    /// The 36-byte payload.
    pub fn payload(&self) -> [u8; Self::LEN] {
        let mut p = [0; Self::LEN];
        let [m0, m1] = self.mask.to_le_bytes();
        let mut head = [m0, m1, self.dyn_model].into_iter().chain(self.rest);
        for b in p.iter_mut() {
            *b = head.next().unwrap_or(0);
        }
        p
    }

    /// The whole frame's wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        Frame::new(msg::CFG_NAV5, &self.payload()).to_bytes()
    }
}

/// CFG-VALSET/VALGET layer bits.
pub mod layer {
    /// Volatile RAM: the setting in force now.
    pub const RAM: u8 = 0x01;
    /// Battery-backed RAM: survives a reset while the backup supply holds.
    pub const BBR: u8 = 0x02;
    /// Flash, where the module has one.
    pub const FLASH: u8 = 0x04;
}

/// Size in bytes of a configuration key's value, from the key's size bits (28..30).
pub fn key_value_size(key: u32) -> Option<usize> {
    match (key >> 28) & 0x7 {
        1 | 2 => Some(1),
        3 => Some(2),
        4 => Some(4),
        5 => Some(8),
        _ => None,
    }
}

/// One configuration item: a key and its value (little-endian, of the key's size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigValue {
    /// Configuration key id.
    pub key: u32,
    /// Value, zero-extended.
    pub value: u64,
}

impl ConfigValue {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.key.to_le_bytes());
        let size = key_value_size(self.key).unwrap_or(0);
        out.extend_from_slice(self.value.to_le_bytes().get(..size).unwrap_or_default());
    }
}

fn decode_values(mut bytes: &[u8]) -> Result<Vec<ConfigValue>, MessageError> {
    let mut items = Vec::new();
    while !bytes.is_empty() {
        let Some((key, rest)) = bytes.split_first_chunk::<4>() else {
            return Err(MessageError::Length {
                expected: 4,
                found: bytes.len(),
            });
        };
        let key = u32::from_le_bytes(*key);
        let size = key_value_size(key).ok_or(MessageError::KeySize { key })?;
        let Some(value) = rest.get(..size) else {
            return Err(MessageError::Length {
                expected: size,
                found: rest.len(),
            });
        };
        let mut wide = [0u8; 8];
        wide.iter_mut().zip(value).for_each(|(w, v)| *w = *v);
        items.push(ConfigValue {
            key,
            value: u64::from_le_bytes(wide),
        });
        bytes = rest.get(size..).unwrap_or_default();
    }
    Ok(items)
}

/// UBX-CFG-VALSET (class 0x06 id 0x8A), version 0: set items in the given layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CfgValSet {
    /// Layers to write ([`layer`] bits).
    pub layers: u8,
    /// Items to set.
    pub items: Vec<ConfigValue>,
}

impl CfgValSet {
    /// Sets the dynamic model in RAM (now) and BBR (across a reset with backup power).
    pub fn dynamic_model(model: DynamicModel) -> Self {
        CfgValSet {
            layers: layer::RAM | layer::BBR,
            items: vec![ConfigValue {
                key: KEY_NAVSPG_DYNMODEL,
                value: model.code().into(),
            }],
        }
    }

    /// Decodes a CFG-VALSET frame.
    pub fn decode(frame: &Frame<'_>) -> Result<Self, MessageError> {
        frame.expect(msg::CFG_VALSET)?;
        let [_version, layers, _r0, _r1, rest @ ..] = frame.payload else {
            return Err(MessageError::Length {
                expected: 4,
                found: frame.payload.len(),
            });
        };
        Ok(CfgValSet {
            layers: *layers,
            items: decode_values(rest)?,
        })
    }

    /// The whole frame's wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut p = vec![0, self.layers, 0, 0];
        self.items.iter().for_each(|i| i.encode_into(&mut p));
        Frame::new(msg::CFG_VALSET, &p).to_bytes()
    }
}

/// UBX-CFG-VALGET (class 0x06 id 0x8B): a poll (version 0, keys only) or the receiver's
/// answer (version 1, keys with values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CfgValGet {
    /// Request for the values of `keys` in `layer` (0 = RAM).
    Poll {
        /// Layer to read (0 RAM, 1 BBR, 2 flash, 7 default).
        layer: u8,
        /// Keys asked for.
        keys: Vec<u32>,
    },
    /// The receiver's values.
    Response {
        /// Layer the values come from.
        layer: u8,
        /// Keys with values.
        items: Vec<ConfigValue>,
    },
}

impl CfgValGet {
    /// Poll of the dynamic model in RAM (the value in force).
    pub fn poll_dynamic_model() -> Self {
        CfgValGet::Poll {
            layer: 0,
            keys: vec![KEY_NAVSPG_DYNMODEL],
        }
    }

    /// Decodes a CFG-VALGET frame.
    pub fn decode(frame: &Frame<'_>) -> Result<Self, MessageError> {
        frame.expect(msg::CFG_VALGET)?;
        let [version, layer, _p0, _p1, rest @ ..] = frame.payload else {
            return Err(MessageError::Length {
                expected: 4,
                found: frame.payload.len(),
            });
        };
        if *version == 0 {
            let chunks = rest.chunks_exact(4);
            if !chunks.remainder().is_empty() {
                return Err(MessageError::Length {
                    expected: 4,
                    found: chunks.remainder().len(),
                });
            }
            let keys = chunks
                .map(|c| u32::from_le_bytes(c.try_into().unwrap_or([0; 4])))
                .collect();
            Ok(CfgValGet::Poll {
                layer: *layer,
                keys,
            })
        } else {
            Ok(CfgValGet::Response {
                layer: *layer,
                items: decode_values(rest)?,
            })
        }
    }

    /// The value of `key` in a response.
    pub fn value(&self, key: u32) -> Option<u64> {
        match self {
            CfgValGet::Response { items, .. } => {
                items.iter().find(|i| i.key == key).map(|i| i.value)
            }
            CfgValGet::Poll { .. } => None,
        }
    }

    /// The whole frame's wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let p = match self {
            CfgValGet::Poll { layer, keys } => {
                let mut p = vec![0, *layer, 0, 0];
                keys.iter()
                    .for_each(|k| p.extend_from_slice(&k.to_le_bytes()));
                p
            }
            CfgValGet::Response { layer, items } => {
                let mut p = vec![1, *layer, 0, 0];
                items.iter().for_each(|i| i.encode_into(&mut p));
                p
            }
        };
        Frame::new(msg::CFG_VALGET, &p).to_bytes()
    }
}

/// UBX-ACK-ACK / ACK-NAK: the receiver's answer to a CFG message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// Class and id of the message answered.
    pub acked: (u8, u8),
    /// `true` for ACK-ACK, `false` for ACK-NAK.
    pub accepted: bool,
}

impl Ack {
    /// Decodes an ACK-ACK or ACK-NAK frame.
    pub fn decode(frame: &Frame<'_>) -> Result<Self, MessageError> {
        let accepted = match frame.kind() {
            msg::ACK_ACK => true,
            msg::ACK_NAK => false,
            found => {
                return Err(MessageError::WrongMessage {
                    expected: msg::ACK_ACK,
                    found,
                });
            }
        };
        match frame.payload {
            [class, id] => Ok(Ack {
                acked: (*class, *id),
                accepted,
            }),
            p => Err(MessageError::Length {
                expected: 2,
                found: p.len(),
            }),
        }
    }

    /// The whole frame's wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let kind = if self.accepted {
            msg::ACK_ACK
        } else {
            msg::ACK_NAK
        };
        Frame::new(kind, &[self.acked.0, self.acked.1]).to_bytes()
    }
}

/// UBX-MON-VER (class 0x0A id 0x04): software and hardware version, then extensions such
/// as `FWVER=SPG 3.01`, `PROTVER=18.00`, `MOD=NEO-M8N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonVer {
    /// Software version (30-byte NUL-terminated field).
    pub sw_version: String,
    /// Hardware version (10-byte field).
    pub hw_version: String,
    /// Extension strings (30-byte fields).
    pub extensions: Vec<String>,
}

impl MonVer {
    const SW: usize = 30;
    const HW: usize = 10;
    const EXT: usize = 30;

    /// Decodes a MON-VER answer (not the empty poll).
    pub fn decode(frame: &Frame<'_>) -> Result<Self, MessageError> {
        frame.expect(msg::MON_VER)?;
        let p = frame.payload;
        let min = Self::SW + Self::HW;
        if p.len() < min || !(p.len() - min).is_multiple_of(Self::EXT) {
            return Err(MessageError::Length {
                expected: min,
                found: p.len(),
            });
        }
        let text = |b: &[u8]| {
            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
            String::from_utf8_lossy(b.get(..end).unwrap_or_default()).into_owned()
        };
        Ok(MonVer {
            sw_version: text(p.get(..Self::SW).unwrap_or_default()),
            hw_version: text(p.get(Self::SW..min).unwrap_or_default()),
            extensions: p
                .get(min..)
                .unwrap_or_default()
                .chunks(Self::EXT)
                .map(text)
                .collect(),
        })
    }

    /// The wire bytes of a poll of the version.
    pub fn poll() -> Vec<u8> {
        poll(msg::MON_VER)
    }

    /// The value of extension `NAME=value`.
    pub fn extension(&self, name: &str) -> Option<&str> {
        self.extensions
            .iter()
            .find_map(|e| e.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
    }

    /// Module name (`MOD=`), e.g. `NEO-M8N`.
    pub fn module(&self) -> Option<&str> {
        self.extension("MOD")
    }

    /// Protocol version (`PROTVER=`), e.g. `18.00`.
    pub fn protocol_version(&self) -> Option<&str> {
        self.extension("PROTVER")
    }

    /// Firmware version: `FWVER=` where present, else the software version.
    pub fn firmware(&self) -> &str {
        self.extension("FWVER").unwrap_or(&self.sw_version)
    }

    /// The whole frame's wire bytes; strings longer than their field are cut.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut p = Vec::new();
        let mut field = |s: &str, width: usize| {
            let bytes = s.as_bytes();
            let n = bytes.len().min(width - 1);
            p.extend_from_slice(bytes.get(..n).unwrap_or_default());
            p.resize(p.len() + width - n, 0);
        };
        field(&self.sw_version, Self::SW);
        field(&self.hw_version, Self::HW);
        for e in &self.extensions {
            field(e, Self::EXT);
        }
        Frame::new(msg::MON_VER, &p).to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn checksum_of_cfg_nav5_poll_matches_the_protocol_description() {
        // The interface description's CFG-NAV5 poll: B5 62 06 24 00 00 2A 84.
        assert_eq!(
            poll(msg::CFG_NAV5),
            [0xB5, 0x62, 0x06, 0x24, 0x00, 0x00, 0x2A, 0x84]
        );
        // MON-VER poll as commonly logged: B5 62 0A 04 00 00 0E 34.
        assert_eq!(
            poll(msg::MON_VER),
            [0xB5, 0x62, 0x0A, 0x04, 0x00, 0x00, 0x0E, 0x34]
        );
    }

    #[test]
    fn airborne_2g_nav5_set_has_the_well_known_bytes() {
        let bytes = CfgNav5::set_dynamic_model(DynamicModel::Airborne2g).to_bytes();
        assert_eq!(bytes.len(), 44);
        assert_eq!(
            &bytes[..9],
            &[0xB5, 0x62, 0x06, 0x24, 36, 0, 0x01, 0x00, 0x07]
        );
        let (frame, n) = Frame::decode(&bytes).unwrap();
        assert_eq!(n, 44);
        let back = CfgNav5::decode(&frame).unwrap();
        assert_eq!(back.dynamic_model(), Some(DynamicModel::Airborne2g));
        assert_eq!(back.mask, NAV5_MASK_DYN);
    }

    #[test]
    fn corrupted_checksum_is_a_typed_error() {
        let mut bytes = poll(msg::CFG_NAV5);
        bytes[7] ^= 1;
        assert!(matches!(
            Frame::decode(&bytes),
            Err(FrameError::Checksum { .. })
        ));
        assert_eq!(
            Frame::decode(&bytes[..5]),
            Err(FrameError::Truncated { needed: 6 })
        );
        assert_eq!(
            Frame::decode(&bytes[..7]),
            Err(FrameError::Truncated { needed: 8 })
        );
        assert_eq!(Frame::decode(b"$GP"), Err(FrameError::BadSync));
    }

    #[test]
    fn valset_dynmodel_encodes_key_and_one_byte_value() {
        let bytes = CfgValSet::dynamic_model(DynamicModel::Airborne2g).to_bytes();
        let (frame, _) = Frame::decode(&bytes).unwrap();
        assert_eq!(frame.payload, &[0, 3, 0, 0, 0x21, 0x00, 0x11, 0x20, 7]);
        let back = CfgValSet::decode(&frame).unwrap();
        assert_eq!(back, CfgValSet::dynamic_model(DynamicModel::Airborne2g));
    }

    #[test]
    fn valget_response_reports_the_value_of_its_key() {
        let resp = CfgValGet::Response {
            layer: 0,
            items: vec![ConfigValue {
                key: KEY_NAVSPG_DYNMODEL,
                value: 7,
            }],
        };
        let bytes = resp.to_bytes();
        let (frame, _) = Frame::decode(&bytes).unwrap();
        let back = CfgValGet::decode(&frame).unwrap();
        assert_eq!(back.value(KEY_NAVSPG_DYNMODEL), Some(7));
        let poll = CfgValGet::poll_dynamic_model().to_bytes();
        let (frame, _) = Frame::decode(&poll).unwrap();
        assert_eq!(
            CfgValGet::decode(&frame).unwrap(),
            CfgValGet::poll_dynamic_model()
        );
    }

    #[test]
    fn ack_and_nak_name_the_message_they_answer() {
        let (f, _) =
            Frame::decode(&[0xB5, 0x62, 0x05, 0x01, 2, 0, 0x06, 0x24, 0x32, 0x5B]).unwrap();
        assert_eq!(
            Ack::decode(&f).unwrap(),
            Ack {
                acked: msg::CFG_NAV5,
                accepted: true
            }
        );
        let nak = Ack {
            acked: msg::CFG_VALSET,
            accepted: false,
        };
        let bytes = nak.to_bytes();
        assert_eq!(Ack::decode(&Frame::decode(&bytes).unwrap().0).unwrap(), nak);
    }

    #[test]
    fn mon_ver_extensions_give_module_and_protocol() {
        let v = MonVer {
            sw_version: "ROM CORE 3.01 (107888)".into(),
            hw_version: "00080000".into(),
            extensions: vec![
                "FWVER=SPG 3.01".into(),
                "PROTVER=18.00".into(),
                "MOD=NEO-M8N".into(),
            ],
        };
        let bytes = v.to_bytes();
        assert_eq!(bytes.len(), 8 + 40 + 90);
        let back = MonVer::decode(&Frame::decode(&bytes).unwrap().0).unwrap();
        assert_eq!(back, v);
        assert_eq!(back.module(), Some("NEO-M8N"));
        assert_eq!(back.protocol_version(), Some("18.00"));
        assert_eq!(back.firmware(), "SPG 3.01");
    }

    fn pvt() -> NavPvt {
        NavPvt {
            itow_ms: 291_019_000,
            year: 2017,
            month: 7,
            day: 19,
            hour: 8,
            minute: 50,
            second: 1,
            valid: valid::DATE | valid::TIME | valid::FULLY_RESOLVED,
            nano: -100_231,
            fix_type: 3,
            flags: FLAG_GNSS_FIX_OK | FLAG_DIFF_SOLN,
            num_sv: 14,
            lon: 1_386_081_199,
            lat: -349_062_266,
            height_mm: 25_378,
            h_msl_mm: 28_849,
            h_acc_mm: 1_500,
            v_acc_mm: 2_200,
            vel_d: 230,
            g_speed: 16,
            head_mot: 3_147_180,
            p_dop: 146,
            ..NavPvt::default()
        }
    }

    #[test]
    fn nav_pvt_to_fix_converts_units_and_folds_negative_nano() {
        let fix = pvt().to_fix();
        let t = fix.time.unwrap();
        assert_eq!(t.date, Some((2017, 7, 19)));
        assert_eq!(
            (t.hour, t.minute, t.second, t.nanosecond),
            (8, 50, 0, 999_899_769)
        );
        assert!((fix.latitude_deg.unwrap() + 34.906_226_6).abs() < 1e-9);
        assert!((fix.longitude_deg.unwrap() - 138.608_119_9).abs() < 1e-9);
        assert!((fix.altitude_msl_m.unwrap() - 28.849).abs() < 1e-9);
        assert!((fix.geoid_separation_m.unwrap() + 3.471).abs() < 1e-9);
        assert!((fix.vertical_speed_mps.unwrap() + 0.23).abs() < 1e-9);
        assert!((fix.track_deg.unwrap() - 31.4718).abs() < 1e-9);
        assert!((fix.pdop.unwrap() - 1.46).abs() < 1e-9);
        assert_eq!(fix.mode, Some(FixMode::ThreeD));
        assert_eq!(fix.quality, Some(2));
        assert!(fix.valid);
    }

    #[test]
    fn nano_borrow_crosses_midnight_and_new_year() {
        let p = NavPvt {
            year: 2017,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
            nano: -1,
            ..pvt()
        };
        let t = p.utc().unwrap();
        assert_eq!(t.date, Some((2016, 12, 31)));
        assert_eq!(
            (t.hour, t.minute, t.second, t.nanosecond),
            (23, 59, 59, 999_999_999)
        );
    }

    #[test]
    fn time_is_withheld_unless_flagged_valid() {
        assert_eq!(NavPvt { valid: 0, ..pvt() }.to_fix().time, None);
        let t = NavPvt {
            valid: valid::TIME,
            ..pvt()
        }
        .to_fix()
        .time
        .unwrap();
        assert_eq!(t.date, None);
    }

    #[test]
    fn no_fix_has_no_position() {
        let fix = NavPvt {
            fix_type: 0,
            flags: 0,
            ..pvt()
        }
        .to_fix();
        assert_eq!(fix.mode, Some(FixMode::NoFix));
        assert_eq!((fix.latitude_deg, fix.altitude_msl_m), (None, None));
        assert!(!fix.valid);
        let fix2d = NavPvt {
            fix_type: 2,
            ..pvt()
        }
        .to_fix();
        assert!(fix2d.latitude_deg.is_some() && fix2d.altitude_msl_m.is_none());
    }

    /// A payload of `len` bytes with little-endian fields written at the specification's
    /// offsets: independent of the encoders under test.
    fn spec_payload(len: usize, fields: &[(usize, &[u8])]) -> Vec<u8> {
        let mut p = vec![0u8; len];
        for (at, bytes) in fields {
            p[*at..*at + bytes.len()].copy_from_slice(bytes);
        }
        p
    }

    #[test]
    fn nav_sol_fields_sit_at_the_specification_offsets() {
        let p = spec_payload(
            52,
            &[
                (0, &291_019_000u32.to_le_bytes()),
                (4, &(-123_456i32).to_le_bytes()),
                (8, &1959i16.to_le_bytes()),
                (10, &[3]),
                (11, &[0x0F]),
                (12, &(-392_993_123i32).to_le_bytes()),
                (16, &345_678_901i32.to_le_bytes()),
                (20, &(-362_345_678i32).to_le_bytes()),
                (24, &250u32.to_le_bytes()),
                (28, &(-12i32).to_le_bytes()),
                (32, &34i32.to_le_bytes()),
                (36, &(-56i32).to_le_bytes()),
                (40, &40u32.to_le_bytes()),
                (44, &146u16.to_le_bytes()),
                (47, &[14]),
            ],
        );
        let sol = NavSol::decode(&Frame::new(msg::NAV_SOL, &p)).unwrap();
        assert_eq!(sol.itow_ms, 291_019_000);
        assert_eq!(sol.ftow_ns, -123_456);
        assert_eq!(sol.week, 1959);
        assert_eq!((sol.gps_fix, sol.flags), (3, 0x0F));
        assert_eq!(
            (sol.ecef_x_cm, sol.ecef_y_cm, sol.ecef_z_cm),
            (-392_993_123, 345_678_901, -362_345_678)
        );
        assert_eq!(sol.p_acc_cm, 250);
        assert_eq!(
            (sol.ecef_vx_cms, sol.ecef_vy_cms, sol.ecef_vz_cms),
            (-12, 34, -56)
        );
        assert_eq!((sol.s_acc_cms, sol.p_dop, sol.num_sv), (40, 146, 14));
        assert_eq!(
            sol.status(),
            SolutionStatus {
                mode: FixMode::ThreeD,
                quality: 2,
                valid: true
            }
        );
        assert_eq!(sol.payload().to_vec(), p);
        assert_eq!(
            NavSol::decode(&Frame::new(msg::NAV_SOL, &p[..51])),
            Err(MessageError::Length {
                expected: 52,
                found: 51
            })
        );
    }

    #[test]
    fn nav_posllh_fields_sit_at_the_specification_offsets() {
        let p = spec_payload(
            28,
            &[
                (0, &291_019_000u32.to_le_bytes()),
                (4, &1_386_081_199i32.to_le_bytes()),
                (8, &(-349_062_266i32).to_le_bytes()),
                (12, &25_378i32.to_le_bytes()),
                (16, &28_849i32.to_le_bytes()),
                (20, &1_500u32.to_le_bytes()),
                (24, &2_200u32.to_le_bytes()),
            ],
        );
        let pos = NavPosllh::decode(&Frame::new(msg::NAV_POSLLH, &p)).unwrap();
        assert_eq!(
            pos,
            NavPosllh {
                itow_ms: 291_019_000,
                lon: 1_386_081_199,
                lat: -349_062_266,
                height_mm: 25_378,
                h_msl_mm: 28_849,
                h_acc_mm: 1_500,
                v_acc_mm: 2_200,
            }
        );
        assert_eq!(pos.payload().to_vec(), p);
        assert!(matches!(
            NavPosllh::decode(&Frame::new(msg::NAV_SOL, &p)),
            Err(MessageError::WrongMessage { .. })
        ));
    }

    #[test]
    fn nav_velned_fields_sit_at_the_specification_offsets() {
        let p = spec_payload(
            36,
            &[
                (0, &1000u32.to_le_bytes()),
                (4, &(-1_234i32).to_le_bytes()),
                (8, &3_456i32.to_le_bytes()),
                (12, &(-200i32).to_le_bytes()),
                (16, &3_700u32.to_le_bytes()),
                (20, &3_670u32.to_le_bytes()),
                (24, &10_965_432i32.to_le_bytes()),
                (28, &30u32.to_le_bytes()),
                (32, &500_000u32.to_le_bytes()),
            ],
        );
        let v = NavVelned::decode(&Frame::new(msg::NAV_VELNED, &p)).unwrap();
        assert_eq!(
            (v.itow_ms, v.vel_n_cms, v.vel_e_cms, v.vel_d_cms),
            (1000, -1_234, 3_456, -200)
        );
        assert_eq!(
            (v.speed_cms, v.g_speed_cms, v.heading),
            (3_700, 3_670, 10_965_432)
        );
        assert_eq!((v.s_acc_cms, v.c_acc), (30, 500_000));
        assert_eq!(v.payload().to_vec(), p);
    }

    #[test]
    fn nav_timeutc_fields_and_validity_bits_follow_the_specification() {
        let p = spec_payload(
            20,
            &[
                (0, &291_019_000u32.to_le_bytes()),
                (4, &25u32.to_le_bytes()),
                (8, &(-100_231i32).to_le_bytes()),
                (12, &2017u16.to_le_bytes()),
                (14, &[7, 19, 8, 50, 1]),
                // validTOW | validWKN | validUTC, utcStandard 3 (USNO) in bits 4..7.
                (19, &[0x37]),
            ],
        );
        let t = NavTimeUtc::decode(&Frame::new(msg::NAV_TIMEUTC, &p)).unwrap();
        assert_eq!((t.itow_ms, t.t_acc_ns, t.nano), (291_019_000, 25, -100_231));
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second, t.valid),
            (2017, 7, 19, 8, 50, 1, 0x37)
        );
        assert_eq!(t.payload().to_vec(), p);
        let utc = t.utc().unwrap();
        assert_eq!(utc.date, Some((2017, 7, 19)));
        assert_eq!(
            (utc.hour, utc.minute, utc.second, utc.nanosecond),
            (8, 50, 0, 999_899_769)
        );
        // Without validUTC the leap seconds are unknown: no UTC at all.
        assert_eq!(NavTimeUtc { valid: 0x03, ..t }.utc(), None);
        assert_eq!(NavTimeUtc { valid: 0x06, ..t }.utc(), None);
        // Without a valid week the date is unknown, the time of day is not.
        let no_week = NavTimeUtc { valid: 0x05, ..t }.utc().unwrap();
        assert_eq!((no_week.date, no_week.minute), (None, 50));
    }

    #[test]
    fn hnr_pvt_fields_sit_at_the_specification_offsets() {
        let p = spec_payload(
            72,
            &[
                (0, &291_019_050u32.to_le_bytes()),
                (4, &2017u16.to_le_bytes()),
                (6, &[7, 19, 8, 50, 1, 0x07]),
                (12, &50_000_000i32.to_le_bytes()),
                (16, &[4, 0x01]),
                (20, &1_386_081_199i32.to_le_bytes()),
                (24, &(-349_062_266i32).to_le_bytes()),
                (28, &25_378i32.to_le_bytes()),
                (32, &28_849i32.to_le_bytes()),
                (36, &16_000i32.to_le_bytes()),
                (40, &16_100i32.to_le_bytes()),
                (44, &3_147_180i32.to_le_bytes()),
                (48, &3_100_000i32.to_le_bytes()),
                (52, &1_500u32.to_le_bytes()),
                (56, &2_200u32.to_le_bytes()),
                (60, &100u32.to_le_bytes()),
                (64, &200_000u32.to_le_bytes()),
            ],
        );
        let h = HnrPvt::decode(&Frame::new(msg::HNR_PVT, &p)).unwrap();
        assert_eq!(
            (h.itow_ms, h.nano, h.gps_fix, h.flags),
            (291_019_050, 50_000_000, 4, 1)
        );
        assert_eq!(
            (h.lon, h.lat, h.height_mm, h.h_msl_mm),
            (1_386_081_199, -349_062_266, 25_378, 28_849)
        );
        assert_eq!(
            (h.g_speed, h.speed, h.head_mot, h.head_veh),
            (16_000, 16_100, 3_147_180, 3_100_000)
        );
        assert_eq!(
            (h.h_acc_mm, h.v_acc_mm, h.s_acc, h.head_acc),
            (1_500, 2_200, 100, 200_000)
        );
        assert_eq!(h.payload().to_vec(), p);
        let fix = h.to_fix();
        let t = fix.time.unwrap();
        assert_eq!(
            (t.date, t.second, t.nanosecond),
            (Some((2017, 7, 19)), 1, 50_000_000)
        );
        assert_eq!(fix.mode, Some(FixMode::ThreeD));
        assert!(fix.valid && fix.has_position_fix());
        assert!((fix.latitude_deg.unwrap() + 34.906_226_6).abs() < 1e-9);
        assert!((fix.altitude_msl_m.unwrap() - 28.849).abs() < 1e-9);
        assert!((fix.geoid_separation_m.unwrap() + 3.471).abs() < 1e-9);
        assert!((fix.ground_speed_mps.unwrap() - 16.0).abs() < 1e-9);
        assert!((fix.track_deg.unwrap() - 31.4718).abs() < 1e-9);
        assert_eq!(fix.vertical_speed_mps, None);
        assert_eq!((fix.satellites_used, fix.pdop), (None, None));
    }

    #[test]
    fn time_only_gives_the_time_and_no_position() {
        for fix in [
            NavPvt {
                fix_type: 5,
                ..pvt()
            }
            .to_fix(),
            HnrPvt {
                gps_fix: 5,
                flags: FLAG_GNSS_FIX_OK,
                valid: valid::DATE | valid::TIME,
                year: 2017,
                month: 7,
                day: 19,
                lat: 1,
                lon: 1,
                h_msl_mm: 1,
                ..HnrPvt::default()
            }
            .to_fix(),
        ] {
            assert_eq!(fix.time.and_then(|t| t.date), Some((2017, 7, 19)));
            assert_eq!(fix.mode, Some(FixMode::NoFix));
            assert_eq!(
                (fix.latitude_deg, fix.longitude_deg, fix.altitude_msl_m),
                (None, None, None)
            );
            assert_eq!((fix.ground_speed_mps, fix.track_deg), (None, None));
            assert_eq!(fix.quality, Some(0));
            assert!(!fix.has_position_fix());
            // Readings: the time-stamped counts and accuracies, no position at all.
            let mut out = Vec::new();
            crate::Sample::push_readings(
                &fix,
                aloft_protocol::SensorId(1),
                aloft_protocol::Timestamp::monotonic(1),
                &mut out,
            );
            assert!(out.iter().all(|r| !matches!(
                r.quantity,
                aloft_protocol::Quantity::Latitude
                    | aloft_protocol::Quantity::Longitude
                    | aloft_protocol::Quantity::AltitudeMsl
            )));
            assert!(
                out.iter()
                    .all(|r| r.time.source == aloft_protocol::TimeSource::Gnss)
            );
        }
    }

    #[test]
    fn a_fix_without_gnss_fix_ok_is_not_valid_and_its_position_is_flagged() {
        let fix = NavPvt {
            flags: FLAG_DIFF_SOLN,
            ..pvt()
        }
        .to_fix();
        assert!(!fix.valid);
        assert_eq!(fix.quality, Some(0));
        assert_eq!(fix.mode, Some(FixMode::ThreeD));
        let mut out = Vec::new();
        crate::Sample::push_readings(
            &fix,
            aloft_protocol::SensorId(1),
            aloft_protocol::Timestamp::monotonic(1),
            &mut out,
        );
        use aloft_protocol::{Quality, Quantity};
        for q in [
            Quantity::Latitude,
            Quantity::Longitude,
            Quantity::AltitudeMsl,
            Quantity::GroundSpeed,
            Quantity::Track,
            Quantity::VerticalSpeed,
        ] {
            let r = out.iter().find(|r| r.quantity == q).unwrap();
            assert!(r.quality.contains(Quality::INVALID), "{q:?}");
        }
        let hnr = HnrPvt {
            gps_fix: 3,
            flags: 0,
            ..HnrPvt::default()
        }
        .to_fix();
        assert!(!hnr.valid && !hnr.has_position_fix());
        assert_eq!(
            SolutionStatus::of(3, 0x0E),
            SolutionStatus {
                mode: FixMode::ThreeD,
                quality: 0,
                valid: false
            }
        );
        assert_eq!(SolutionStatus::of(1, 0).quality, 6);
        assert_eq!(SolutionStatus::of(4, 1).mode, FixMode::ThreeD);
    }

    #[test]
    fn civil_dates_round_trip_over_centuries() {
        for days in (-700_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(i64::from(y), m, d), days);
        }
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok((frame, n)) = Frame::decode(&bytes) {
                prop_assert!(n <= bytes.len());
                let _ = NavPvt::decode(&frame);
                let _ = CfgNav5::decode(&frame);
                let _ = CfgValSet::decode(&frame);
                let _ = CfgValGet::decode(&frame);
                let _ = Ack::decode(&frame);
                let _ = MonVer::decode(&frame);
            }
        }

        #[test]
        fn arbitrary_payloads_decode_without_panic(
            class in prop::sample::select(vec![0x01u8, 0x05, 0x06, 0x0A]),
            id in any::<u8>(),
            payload in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let bytes = Frame::new((class, id), &payload).to_bytes();
            let (frame, _) = Frame::decode(&bytes).unwrap();
            for kind in [msg::CFG_VALSET, msg::CFG_VALGET, msg::MON_VER] {
                let f = Frame::new(kind, frame.payload);
                let _ = (CfgValSet::decode(&f), CfgValGet::decode(&f), MonVer::decode(&f));
                if let Ok(t) = MonVer::decode(&f) { let _ = (t.module(), t.firmware()); }
            }
            let _ = NavPvt::decode(&Frame::new(msg::NAV_PVT, frame.payload)).map(|p| p.to_fix());
        }

        #[test]
        fn frames_round_trip(class: u8, id: u8, payload in proptest::collection::vec(any::<u8>(), 0..600)) {
            let bytes = Frame::new((class, id), &payload).to_bytes();
            let (frame, n) = Frame::decode(&bytes).unwrap();
            prop_assert_eq!(n, bytes.len());
            prop_assert_eq!(frame, Frame::new((class, id), &payload));
        }

        #[test]
        fn nav_pvt_payload_round_trips(payload in proptest::collection::vec(any::<u8>(), 92)) {
            let frame = Frame::new(msg::NAV_PVT, &payload);
            let pvt = NavPvt::decode(&frame).unwrap();
            prop_assert_eq!(pvt.payload().to_vec(), payload);
            let _ = pvt.to_fix();
        }

        #[test]
        fn any_payload_of_the_legacy_and_hnr_messages_is_a_value_or_a_typed_error(
            kind in prop::sample::select(vec![msg::NAV_SOL, msg::NAV_POSLLH, msg::NAV_VELNED, msg::NAV_TIMEUTC, msg::HNR_PVT]),
            payload in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let f = Frame::new(kind, &payload);
            let results = [
                NavSol::decode(&f).map(|m| { let _ = m.status(); NavSol::LEN }),
                NavPosllh::decode(&f).map(|_| NavPosllh::LEN),
                NavVelned::decode(&f).map(|_| NavVelned::LEN),
                NavTimeUtc::decode(&f).map(|m| { let _ = m.utc(); NavTimeUtc::LEN }),
                HnrPvt::decode(&f).map(|m| { let _ = m.to_fix(); HnrPvt::LEN }),
            ];
            // Exactly the decoder of the frame's kind answers, and only at its length.
            let ok: Vec<usize> = results.iter().filter_map(|r| r.ok()).collect();
            prop_assert!(ok.len() <= 1);
            if let Some(len) = ok.first() {
                prop_assert_eq!(*len, payload.len());
            }
            for r in results {
                if let Err(e) = r {
                    let typed = matches!(e, MessageError::WrongMessage { .. } | MessageError::Length { .. });
                    prop_assert!(typed, "{:?}", e);
                }
            }
        }

        #[test]
        fn legacy_and_hnr_payloads_round_trip(
            sol in proptest::collection::vec(any::<u8>(), 52),
            posllh in proptest::collection::vec(any::<u8>(), 28),
            velned in proptest::collection::vec(any::<u8>(), 36),
            timeutc in proptest::collection::vec(any::<u8>(), 20),
            hnr in proptest::collection::vec(any::<u8>(), 72),
        ) {
            prop_assert_eq!(NavSol::decode(&Frame::new(msg::NAV_SOL, &sol)).unwrap().payload().to_vec(), sol);
            prop_assert_eq!(NavPosllh::decode(&Frame::new(msg::NAV_POSLLH, &posllh)).unwrap().payload().to_vec(), posllh);
            prop_assert_eq!(NavVelned::decode(&Frame::new(msg::NAV_VELNED, &velned)).unwrap().payload().to_vec(), velned);
            let t = NavTimeUtc::decode(&Frame::new(msg::NAV_TIMEUTC, &timeutc)).unwrap();
            prop_assert_eq!(t.payload().to_vec(), timeutc);
            if let Some(utc) = t.utc() {
                prop_assert!(utc.hour < 24 && utc.minute < 60 && utc.second < 60 && utc.nanosecond < 1_000_000_000);
            }
            let h = HnrPvt::decode(&Frame::new(msg::HNR_PVT, &hnr)).unwrap();
            prop_assert_eq!(h.payload().to_vec(), hnr);
            let fix = h.to_fix();
            prop_assert_eq!(fix.latitude_deg.is_some(), matches!(h.gps_fix, 2..=4));
            prop_assert_eq!(fix.valid, h.flags & FLAG_GNSS_FIX_OK != 0);
        }

        #[test]
        fn cfg_nav5_payload_round_trips(payload in proptest::collection::vec(any::<u8>(), 36)) {
            let nav5 = CfgNav5::decode(&Frame::new(msg::CFG_NAV5, &payload)).unwrap();
            prop_assert_eq!(nav5.payload().to_vec(), payload);
        }

        #[test]
        fn valset_round_trips(layers: u8, values in proptest::collection::vec((0u32..0x0FFF_FFFF, 1u32..6, any::<u64>()), 0..8)) {
            let items: Vec<ConfigValue> = values.into_iter().map(|(k, size, v)| {
                let key = (size << 28) | k;
                let bits = key_value_size(key).unwrap() * 8;
                let value = if size == 1 { v & 1 } else if bits == 64 { v } else { v & ((1 << bits) - 1) };
                ConfigValue { key, value }
            }).collect();
            let set = CfgValSet { layers, items };
            let bytes = set.to_bytes();
            prop_assert_eq!(CfgValSet::decode(&Frame::decode(&bytes).unwrap().0).unwrap(), set);
        }
    }
}
