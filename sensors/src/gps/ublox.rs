//! Configuring a u-blox receiver's dynamic model, and checking it stuck.
//!
//! In its default Portable model a u-blox receiver drops its fix above 12 000 m or
//! 310 m/s: the glider's ceiling. [`configure_dynamic_model`] sets the model over the
//! receiver's port and confirms it:
//!
//! 1. poll MON-VER for the module and firmware (best effort: the descriptor names them);
//! 2. send CFG-NAV5 with only the dynamic-model mask bit and wait for the ACK of exactly
//!    CFG-NAV5, skipping the NMEA and UBX traffic interleaved with the answer;
//! 3. on a NAK or no answer, fall back to CFG-VALSET of CFG-NAVSPG-DYNMODEL in the RAM and
//!    BBR layers (generation 9 receivers NAK or ignore CFG-NAV5);
//! 4. read the model back the same way it was set (CFG-NAV5 poll or CFG-VALGET);
//! 5. repeat up to [`ATTEMPTS`] times, then fail with a typed [`ConfigError`].
//!
//! A brown-out reverts the receiver to Portable, so the agent also calls
//! [`check_dynamic_model`] periodically and reconfigures when it reports another model.
//!
//! Invariant: success is only reported for a model the receiver itself reported back,
//! never for one merely sent. The port is any `Read + Write` (a serial port with a read
//! timeout); `TimedOut` and `WouldBlock` mean "no data yet", and the deadline is the only
//! thing that ends a wait.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use aloft_protocol::{DynamicModel, SensorDescriptor};

use super::framer::{GnssFramer, Item};
use super::ubx::{Ack, CfgNav5, CfgValGet, CfgValSet, Frame, KEY_NAVSPG_DYNMODEL, MonVer, msg};

/// How many times the whole set-and-verify procedure is tried.
pub const ATTEMPTS: u32 = 3;

/// Why the dynamic model could not be configured or read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The port failed.
    #[error("GNSS port: {0}")]
    Io(#[from] io::Error),
    /// No answer before the deadline.
    #[error("no answer from the receiver to {waiting_for} within {timeout:?}")]
    Timeout {
        /// The message whose answer was awaited.
        waiting_for: &'static str,
        /// How long it was awaited.
        timeout: Duration,
    },
    /// The receiver NAKed both CFG-NAV5 and CFG-VALSET (or both polls of the model).
    #[error("receiver rejected both CFG-NAV5 and CFG-VALSET")]
    Rejected,
    /// The receiver acknowledged the set but reported another model when read back.
    #[error(
        "dynamic model did not stick: asked for {requested:?}, receiver reports code {reported}"
    )]
    DidNotStick {
        /// The model sent.
        requested: DynamicModel,
        /// The code read back.
        reported: u8,
    },
    /// The receiver reported a model code u-blox does not define.
    #[error("receiver reports unknown dynamic model code {0}")]
    UnknownModel(u8),
}

/// How the model was set: the message family the receiver accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigPath {
    /// CFG-NAV5 (u-blox 6 to 8).
    Nav5,
    /// CFG-VALSET / CFG-VALGET (generation 9 and later).
    ValSet,
}

/// What the receiver said about itself, and the model it confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverInfo {
    /// Module from MON-VER (`NEO-M8N`), if it answered.
    pub module: Option<String>,
    /// Firmware (`SPG 3.01`, from FWVER or the software version), if it answered.
    pub firmware: Option<String>,
    /// Hardware version (`00080000`), if it answered.
    pub hardware: Option<String>,
    /// UBX protocol version (`18.00`), if it said.
    pub protocol_version: Option<String>,
    /// The model the receiver reported back after the set.
    pub dynamic_model: DynamicModel,
    /// Which message family set it.
    pub path: ConfigPath,
}

impl ReceiverInfo {
    /// The descriptor record of this receiver: device, firmware and confirmed model.
    pub fn to_descriptor(&self) -> SensorDescriptor {
        let device = match &self.module {
            Some(m) => format!("u-blox {m}"),
            None => "u-blox".to_string(),
        };
        let mut d = SensorDescriptor::new(device)
            .with_integer("dyn_model", i64::from(self.dynamic_model.code()));
        d.firmware = self.firmware.clone();
        d.dynamic_model = Some(self.dynamic_model);
        if let Some(hw) = &self.hardware {
            d.parameters.push(aloft_protocol::DeviceParameter {
                name: "hw_version".into(),
                value: aloft_protocol::ParameterValue::Text(hw.clone()),
            });
        }
        if let Some(p) = &self.protocol_version {
            d.parameters.push(aloft_protocol::DeviceParameter {
                name: "protocol_version".into(),
                value: aloft_protocol::ParameterValue::Text(p.clone()),
            });
        }
        d
    }
}

/// The answer a wait was for.
enum Reply<T> {
    Message(T),
    Nak,
}

/// The time a wait's deadline is measured in, read beside the port it waits on.
///
/// On a real port that is the wall clock; a simulated line in the tests keeps its own
/// time, so a wait there ends after the same traffic however busy the machine is.
trait LineClock<P> {
    /// Time since an arbitrary fixed origin.
    fn now(&self, port: &P) -> Duration;
}

/// The wall clock, from when the procedure started.
struct WallClock(Instant);

impl WallClock {
    fn start() -> Self {
        WallClock(Instant::now())
    }
}

impl<P> LineClock<P> for WallClock {
    fn now(&self, _port: &P) -> Duration {
        self.0.elapsed()
    }
}

/// A receiver port with the framer that splits what it says.
struct Link<'p, P, C> {
    port: &'p mut P,
    framer: GnssFramer,
    timeout: Duration,
    clock: C,
}

impl<'p, P: Read + Write, C: LineClock<P>> Link<'p, P, C> {
    fn new(port: &'p mut P, timeout: Duration, clock: C) -> Self {
        Link {
            port,
            framer: GnssFramer::new(),
            timeout,
            clock,
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), ConfigError> {
        self.port.write_all(bytes)?;
        self.port.flush()?;
        Ok(())
    }

    /// Reads until `pick` accepts a UBX frame or the timeout passes; every other item
    /// (NMEA, other frames, garbage) is skipped.
    fn wait<T>(
        &mut self,
        waiting_for: &'static str,
        mut pick: impl FnMut(&Frame<'_>) -> Option<T>,
    ) -> Result<T, ConfigError> {
        let deadline = self.clock.now(self.port) + self.timeout;
        let mut buf = [0u8; 512];
        loop {
            while let Some(item) = self.framer.next_item() {
                match item {
                    Item::Ubx(frame) => {
                        if let Some(t) = pick(&frame) {
                            return Ok(t);
                        }
                    }
                    Item::Skipped { bytes, reason } => {
                        tracing::debug!(bytes, ?reason, "Skipped bytes on the GNSS port.");
                    }
                    Item::Nmea(_) => {}
                }
            }
            if self.clock.now(self.port) >= deadline {
                return Err(ConfigError::Timeout {
                    waiting_for,
                    timeout: self.timeout,
                });
            }
            match self.port.read(&mut buf) {
                Ok(0) => {
                    // End of file or a closed line: nothing will arrive before the deadline
                    // sooner than if we wait a little, and spinning would starve the agent.
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(n) => self.framer.push(buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A non-blocking port has no timeout of its own: yield briefly rather than
                // spin on the CPU the rest of the agent needs.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Sends `request` and waits for the ACK or NAK of exactly `kind`.
    fn acked(
        &mut self,
        request: &[u8],
        kind: (u8, u8),
        name: &'static str,
    ) -> Result<bool, ConfigError> {
        self.send(request)?;
        self.wait(name, |f| {
            Ack::decode(f)
                .ok()
                .filter(|a| a.acked == kind)
                .map(|a| a.accepted)
        })
    }

    /// Sends a poll and waits for its answer decoded by `decode`, or a NAK of `kind`.
    fn polled<T>(
        &mut self,
        request: &[u8],
        kind: (u8, u8),
        name: &'static str,
        decode: impl Fn(&Frame<'_>) -> Option<T>,
    ) -> Result<Reply<T>, ConfigError> {
        self.send(request)?;
        self.wait(name, |f| {
            if f.kind() == kind {
                return decode(f).map(Reply::Message);
            }
            Ack::decode(f)
                .ok()
                .filter(|a| a.acked == kind && !a.accepted)
                .map(|_| Reply::Nak)
        })
    }

    fn mon_ver(&mut self) -> Result<Option<MonVer>, ConfigError> {
        let reply = self.polled(&MonVer::poll(), msg::MON_VER, "MON-VER poll", |f| {
            MonVer::decode(f).ok()
        });
        match reply {
            Ok(Reply::Message(v)) => Ok(Some(v)),
            Ok(Reply::Nak) | Err(ConfigError::Timeout { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn read_nav5(&mut self) -> Result<Reply<u8>, ConfigError> {
        self.polled(&CfgNav5::poll(), msg::CFG_NAV5, "CFG-NAV5 poll", |f| {
            CfgNav5::decode(f).ok().map(|n| n.dyn_model)
        })
    }

    fn read_valget(&mut self) -> Result<Reply<u8>, ConfigError> {
        let poll = CfgValGet::poll_dynamic_model().to_bytes();
        self.polled(&poll, msg::CFG_VALGET, "CFG-VALGET poll", |f| {
            CfgValGet::decode(f)
                .ok()
                .and_then(|r| r.value(KEY_NAVSPG_DYNMODEL))
                .and_then(|v| u8::try_from(v).ok())
        })
    }

    /// One set-and-verify over one path.
    fn set_and_verify(
        &mut self,
        model: DynamicModel,
        path: ConfigPath,
    ) -> Result<Reply<DynamicModel>, ConfigError> {
        let accepted = match path {
            ConfigPath::Nav5 => self.acked(
                &CfgNav5::set_dynamic_model(model).to_bytes(),
                msg::CFG_NAV5,
                "CFG-NAV5 set",
            )?,
            ConfigPath::ValSet => self.acked(
                &CfgValSet::dynamic_model(model).to_bytes(),
                msg::CFG_VALSET,
                "CFG-VALSET",
            )?,
        };
        if !accepted {
            return Ok(Reply::Nak);
        }
        let read = match path {
            ConfigPath::Nav5 => self.read_nav5()?,
            ConfigPath::ValSet => self.read_valget()?,
        };
        match read {
            Reply::Message(code) if code == model.code() => Ok(Reply::Message(model)),
            Reply::Message(reported) => Err(ConfigError::DidNotStick {
                requested: model,
                reported,
            }),
            Reply::Nak => Ok(Reply::Nak),
        }
    }
}

/// Sets the receiver's dynamic model and confirms it by reading it back.
///
/// `timeout` bounds each wait for one answer (a second is ample for a receiver at
/// 115 200 baud; tests pass milliseconds). The whole procedure takes at most
/// [`ATTEMPTS`] × 5 × `timeout` plus the MON-VER poll.
pub fn configure_dynamic_model<P: Read + Write>(
    port: &mut P,
    model: DynamicModel,
    timeout: Duration,
) -> Result<ReceiverInfo, ConfigError> {
    configure_with(Link::new(port, timeout, WallClock::start()), model)
}

fn configure_with<P: Read + Write, C: LineClock<P>>(
    mut link: Link<'_, P, C>,
    model: DynamicModel,
) -> Result<ReceiverInfo, ConfigError> {
    let version = link.mon_ver()?;
    if version.is_none() {
        tracing::warn!("Receiver did not answer MON-VER; its descriptor will lack firmware.");
    }
    let mut last = ConfigError::Rejected;
    for attempt in 1..=ATTEMPTS {
        match try_paths(&mut link, model) {
            Ok((confirmed, path)) => {
                tracing::info!(attempt, ?confirmed, ?path, "GNSS dynamic model confirmed.");
                return Ok(ReceiverInfo {
                    module: version
                        .as_ref()
                        .and_then(|v| v.module().map(str::to_string)),
                    firmware: version.as_ref().map(|v| v.firmware().to_string()),
                    hardware: version.as_ref().map(|v| v.hw_version.clone()),
                    protocol_version: version
                        .as_ref()
                        .and_then(|v| v.protocol_version().map(str::to_string)),
                    dynamic_model: confirmed,
                    path,
                });
            }
            Err(ConfigError::Io(e)) => return Err(ConfigError::Io(e)),
            Err(e) => {
                tracing::warn!(attempt, error = %e, "GNSS dynamic model not confirmed.");
                last = e;
            }
        }
    }
    Err(last)
}

/// CFG-NAV5 first; CFG-VALSET when CFG-NAV5 is NAKed or unanswered.
fn try_paths<P: Read + Write, C: LineClock<P>>(
    link: &mut Link<'_, P, C>,
    model: DynamicModel,
) -> Result<(DynamicModel, ConfigPath), ConfigError> {
    let nav5 = link.set_and_verify(model, ConfigPath::Nav5);
    match nav5 {
        Ok(Reply::Message(m)) => return Ok((m, ConfigPath::Nav5)),
        Ok(Reply::Nak) | Err(ConfigError::Timeout { .. }) => {}
        Err(e) => return Err(e),
    }
    match link.set_and_verify(model, ConfigPath::ValSet)? {
        Reply::Message(m) => Ok((m, ConfigPath::ValSet)),
        // Both NAKed; a CFG-NAV5 timeout with a VALSET NAK is reported as the timeout.
        Reply::Nak => match nav5 {
            Err(e) => Err(e),
            Ok(_) => Err(ConfigError::Rejected),
        },
    }
}

/// Reads the dynamic model in force (CFG-NAV5 poll, or CFG-VALGET where CFG-NAV5 is
/// NAKed or unanswered): the periodic check that catches a brown-out's revert to Portable.
///
/// One attempt only: the check runs inside the sensor's read loop, whose navigation
/// traffic it skips while it waits, and an unanswered check is retried by the next
/// periodic one.
pub fn check_dynamic_model<P: Read + Write>(
    port: &mut P,
    timeout: Duration,
) -> Result<DynamicModel, ConfigError> {
    read_model(&mut Link::new(port, timeout, WallClock::start()))
}

/// One CFG-NAV5 poll, and a CFG-VALGET poll where that is NAKed or unanswered.
fn read_model<P: Read + Write, C: LineClock<P>>(
    link: &mut Link<'_, P, C>,
) -> Result<DynamicModel, ConfigError> {
    let nav5 = link.read_nav5();
    let code = match nav5 {
        Ok(Reply::Message(code)) => code,
        Ok(Reply::Nak) | Err(ConfigError::Timeout { .. }) => match link.read_valget()? {
            Reply::Message(code) => code,
            Reply::Nak => return Err(nav5.err().unwrap_or(ConfigError::Rejected)),
        },
        Err(e) => return Err(e),
    };
    DynamicModel::from_code(code).ok_or(ConfigError::UnknownModel(code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gps::sim::tests::state;
    use crate::gps::sim::{CommandBehaviour, Generation, UbloxSim, UbloxSimConfig};
    use crate::serial::SerialDevice;
    use std::collections::VecDeque;

    /// An in-memory duplex port to a simulated receiver, paced like the real line: each
    /// byte read advances simulated time by one character time (10 bits at the
    /// receiver's baud), an idle read by a millisecond, so navigation traffic flows between
    /// the answers at its real rate; answers to writes queue behind what the receiver has
    /// already sent, as on a real line.
    struct SimPort {
        sim: UbloxSim,
        t_s: f64,
        live: bool,
        altitude_m: f64,
        to_host: VecDeque<u8>,
        chunk: usize,
    }

    impl SimPort {
        fn new(sim: UbloxSim) -> Self {
            SimPort {
                sim,
                t_s: 100.0,
                live: true,
                altitude_m: 12_500.0,
                to_host: VecDeque::new(),
                chunk: 37,
            }
        }
        /// No navigation output at all: a receiver that is silent on the line.
        fn quiet(mut self) -> Self {
            self.live = false;
            self
        }
    }

    impl Read for SimPort {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.chunk).min(self.to_host.len());
            let char_time = 10.0 / f64::from(self.sim.baud());
            self.t_s += if n == 0 { 1e-3 } else { n as f64 * char_time };
            if self.live {
                let mut out = Vec::new();
                self.sim.tick(&state(self.t_s, self.altitude_m), &mut out);
                self.to_host.extend(out);
            }
            if n == 0 {
                return Err(io::ErrorKind::TimedOut.into());
            }
            for (b, x) in buf.iter_mut().zip(self.to_host.drain(..n)) {
                *b = x;
            }
            Ok(n)
        }
    }

    impl Write for SimPort {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut out = Vec::new();
            self.sim.receive(buf, &mut out);
            self.to_host.extend(out);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Simulated line time: how long a port has carried traffic, so a wait's deadline
    /// falls after the same bytes however busy the machine running the test is.
    trait SimTime {
        fn sim_time(&self) -> Duration;
    }

    impl SimTime for SimPort {
        fn sim_time(&self) -> Duration {
            Duration::from_secs_f64(self.t_s)
        }
    }

    struct SimClock;

    impl<P: SimTime> LineClock<P> for SimClock {
        fn now(&self, port: &P) -> Duration {
            port.sim_time()
        }
    }

    /// [`configure_dynamic_model`] with its deadlines in simulated line time.
    fn configure<P: Read + Write + SimTime>(
        port: &mut P,
        model: DynamicModel,
        timeout: Duration,
    ) -> Result<ReceiverInfo, ConfigError> {
        configure_with(Link::new(port, timeout, SimClock), model)
    }

    /// [`check_dynamic_model`] with its deadlines in simulated line time.
    fn check<P: Read + Write + SimTime>(
        port: &mut P,
        timeout: Duration,
    ) -> Result<DynamicModel, ConfigError> {
        read_model(&mut Link::new(port, timeout, SimClock))
    }

    /// A second of line time: thousands of navigation messages at 115 200 baud.
    const T: Duration = Duration::from_secs(1);
    const SHORT: Duration = Duration::from_millis(20);

    fn port(config: UbloxSimConfig) -> SimPort {
        SimPort::new(UbloxSim::new(config))
    }

    #[test]
    fn m8_is_configured_through_cfg_nav5_amid_nmea_traffic() {
        let mut p = port(UbloxSimConfig::default());
        let info = configure_dynamic_model(&mut p, DynamicModel::Airborne2g, T).unwrap();
        assert_eq!(info.dynamic_model, DynamicModel::Airborne2g);
        assert_eq!(info.path, ConfigPath::Nav5);
        assert_eq!(info.module.as_deref(), Some("NEO-M8N"));
        assert_eq!(p.sim.dynamic_model(), DynamicModel::Airborne2g);
        let d = info.to_descriptor();
        assert_eq!(d.device, "u-blox NEO-M8N");
        assert_eq!(d.firmware.as_deref(), Some("SPG 3.01"));
        assert_eq!(d.dynamic_model, Some(DynamicModel::Airborne2g));
    }

    #[test]
    fn generation_9_falls_back_to_valset_and_verifies_with_valget() {
        let mut p = port(UbloxSimConfig::default().with_generation(Generation::Gen9));
        let info = configure(&mut p, DynamicModel::Airborne2g, T).unwrap();
        assert_eq!(info.path, ConfigPath::ValSet);
        assert_eq!(info.module.as_deref(), Some("NEO-M9N"));
        assert_eq!(p.sim.dynamic_model(), DynamicModel::Airborne2g);
    }

    #[test]
    fn receiver_that_naks_everything_is_rejected() {
        let mut p = port(UbloxSimConfig::default().with_commands(CommandBehaviour::NakAll));
        let err = configure(&mut p, DynamicModel::Airborne2g, T).unwrap_err();
        assert!(matches!(err, ConfigError::Rejected), "{err:?}");
        assert_eq!(p.sim.dynamic_model(), DynamicModel::Portable);
    }

    #[test]
    fn silent_receiver_times_out_while_its_nmea_keeps_flowing() {
        let mut p = port(UbloxSimConfig::default().with_commands(CommandBehaviour::Ignore));
        let started = p.sim_time();
        let err = configure(&mut p, DynamicModel::Airborne2g, SHORT).unwrap_err();
        assert!(matches!(err, ConfigError::Timeout { .. }), "{err:?}");
        // MON-VER plus, per attempt, CFG-NAV5 and CFG-VALSET: 7 waits of 20 ms, each
        // overrunning by at most one read of the line.
        let spent = p.sim_time() - started;
        let read = Duration::from_secs_f64(37.0 * 10.0 / 115_200.0);
        assert!(spent >= SHORT * 7, "{spent:?}");
        assert!(spent <= (SHORT + read) * 7, "{spent:?}");
    }

    #[test]
    fn dead_line_times_out() {
        let mut p = port(UbloxSimConfig::default().with_commands(CommandBehaviour::Ignore)).quiet();
        let err = check(&mut p, SHORT).unwrap_err();
        assert!(matches!(err, ConfigError::Timeout { .. }), "{err:?}");
    }

    #[test]
    fn answers_split_into_single_bytes_are_still_found() {
        let mut p = port(UbloxSimConfig::default());
        p.chunk = 1;
        let info = configure(&mut p, DynamicModel::Airborne2g, T).unwrap();
        assert_eq!(info.dynamic_model, DynamicModel::Airborne2g);
    }

    /// A noisy line: every read carries four bytes of noise (false `$` and UBX sync)
    /// before its data, so frames that span reads are corrupted too, as line noise does:
    /// the framer must resync and the procedure retry.
    struct Noisy(SimPort, u8);

    impl SimTime for Noisy {
        fn sim_time(&self) -> Duration {
            self.0.sim_time()
        }
    }

    impl Read for Noisy {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.read(buf.get_mut(4..).unwrap_or_default())?;
            self.1 = self.1.wrapping_add(1);
            let noise = [b'$', 0xB5, self.1, 0x62];
            buf.copy_within(4..4 + n, 4);
            buf[..4].copy_from_slice(&noise);
            Ok(n + 4)
        }
    }

    impl Write for Noisy {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn line_noise_that_corrupts_frames_is_survived_by_resync_and_retry() {
        let mut p = Noisy(port(UbloxSimConfig::default()), 0);
        p.0.chunk = 64;
        let info = configure(&mut p, DynamicModel::Airborne2g, T).unwrap();
        assert_eq!(info.dynamic_model, DynamicModel::Airborne2g);
        assert_eq!(check(&mut p, T).unwrap(), DynamicModel::Airborne2g);
    }

    #[test]
    fn brown_out_is_seen_by_the_check_and_reconfiguring_restores_airborne() {
        for generation in [Generation::M8, Generation::Gen9] {
            let mut p = port(UbloxSimConfig::default().with_generation(generation));
            configure(&mut p, DynamicModel::Airborne2g, T).unwrap();
            assert_eq!(check(&mut p, T).unwrap(), DynamicModel::Airborne2g);
            p.sim.brown_out();
            assert_eq!(check(&mut p, T).unwrap(), DynamicModel::Portable);
            configure(&mut p, DynamicModel::Airborne2g, T).unwrap();
            assert_eq!(check(&mut p, T).unwrap(), DynamicModel::Airborne2g);
        }
    }

    #[test]
    fn configured_receiver_reports_a_fix_above_12_km() {
        let mut p = port(UbloxSimConfig::default());
        let mut nav = Vec::new();
        p.sim.tick(&state(50.0, 12_500.0), &mut nav);
        let before = nav_fix_types(&nav);
        configure(&mut p, DynamicModel::Airborne2g, T).unwrap();
        let mut nav = Vec::new();
        p.sim.tick(&state(p.t_s + 0.1, 12_500.0), &mut nav);
        assert_eq!(before, vec![0]);
        assert_eq!(nav_fix_types(&nav), vec![3]);
    }

    fn nav_fix_types(bytes: &[u8]) -> Vec<u8> {
        let (_, frames) = crate::gps::sim::tests::split(bytes);
        frames
            .iter()
            .filter_map(|(c, i, p)| crate::gps::ubx::NavPvt::decode(&Frame::new((*c, *i), p)).ok())
            .map(|p| p.fix_type)
            .collect()
    }

    /// A receiver that acknowledges the set but keeps its model (a firmware bug, or a
    /// brown-out between set and read-back).
    struct Forgetful(SimPort);

    impl SimTime for Forgetful {
        fn sim_time(&self) -> Duration {
            self.0.sim_time()
        }
    }

    impl Read for Forgetful {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read(buf)
        }
    }

    impl Write for Forgetful {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = self.0.write(buf)?;
            if buf.get(2..4) == Some(&[msg::CFG_NAV5.0, msg::CFG_NAV5.1]) && buf.len() > 8 {
                self.0.sim.brown_out();
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn model_that_does_not_stick_is_a_typed_error() {
        let mut p = Forgetful(port(UbloxSimConfig::default()));
        let err = configure(&mut p, DynamicModel::Airborne2g, T).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::DidNotStick {
                    requested: DynamicModel::Airborne2g,
                    reported: 0
                }
            ),
            "{err:?}"
        );
    }
}
