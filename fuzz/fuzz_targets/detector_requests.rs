//! Fuzz target: bytes from the agent into the detector front end's request intake. The
//! body lives in `aloft_detector::fuzzing` so that the committed corpus replays as an
//! ordinary test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aloft_detector::fuzzing::requests(data));
