//! The body of the `detector_requests` fuzz target, kept in the library so that its corpus
//! replays as an ordinary test (`tests/fuzz_corpus.rs`).
//!
//! Arbitrary bytes arrive from the agent's side of the line into [`FrontEnd::receive`],
//! interleaved with sampling and a drained, paced output. Beyond "no panic" it checks that
//! every request frame is accounted for (answered, rejected, or after an accepted reset),
//! that rejections are exactly the frames an independent decoder rejects plus the requests
//! that found the reply queue full, and that every byte sent decodes as whole messages.

use aloft_protocol::detector::{
    FirmwareVersion, FrameDecoder, FromFrontEnd, ResetCause, ToFrontEnd,
};

use crate::frontend::{BootFacts, FrontEnd, FrontEndConfig};
use crate::pulse::{DetectorModel, SimulatedDetector};

const TICK_HZ: u32 = 1_000_000;

/// Feeds `data` to a front end as bytes from the agent. The first byte picks the fault
/// hook (bit 0) and how many ticks pass per received byte (the rest).
pub fn requests(data: &[u8]) {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let mut config = FrontEndConfig::new(
        1,
        FirmwareVersion {
            major: 0,
            minor: 1,
            patch: 0,
        },
        TICK_HZ,
    );
    config.fault_hook = mode & 1 == 1;
    let step = u64::from(mode >> 1) * 10;
    let boot = BootFacts {
        reset_cause: ResetCause::PowerOn,
        boot_count: 1,
    };
    let source = SimulatedDetector::new(DetectorModel::default(), u64::from(mode));
    let Ok(mut front_end) = FrontEnd::new(config, boot, source) else {
        panic!("the fuzz configuration is valid");
    };
    let mut mirror = FrameDecoder::new();
    let (mut mirror_ok, mut mirror_err) = (0u32, 0u32);
    let mut out = FrameDecoder::new();
    let mut now = 0u64;
    let mut drain = |front_end: &mut FrontEnd<SimulatedDetector>, now: u64| {
        while let Some(byte) = front_end.next_tx_byte(now) {
            if let Some(frame) = out.push::<FromFrontEnd>(byte) {
                assert!(frame.is_ok(), "the front end sent a bad frame: {frame:?}");
            }
        }
    };
    for &byte in bytes {
        if front_end.action().is_some() {
            break;
        }
        now += step;
        front_end.receive(byte, now);
        match mirror.push::<ToFrontEnd>(byte) {
            Some(Ok(_)) => mirror_ok += 1,
            Some(Err(_)) => mirror_err += 1,
            None => {}
        }
        front_end.poll(now);
        drain(&mut front_end, now);
    }
    // Let the line empty: a second is far more than any queue holds at 115 200 baud.
    for _ in 0..100 {
        now += u64::from(TICK_HZ) / 100;
        front_end.poll(now);
        drain(&mut front_end, now);
    }
    let c = front_end.counters();
    assert_eq!(c.rejected_frames_total, mirror_err + c.unanswered_requests);
    assert_eq!(
        mirror_ok,
        c.requests_answered + c.unanswered_requests + c.requests_after_reset
    );
    assert_eq!(
        c.events_total,
        c.events_sent + c.dropped_events_total + front_end.events_waiting()
    );
}
