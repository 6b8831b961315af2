//! Fuzz target: SPS30 register blocks as the bus returns them. The body lives in
//! `aloft_sensors::fuzzing` so that the committed corpus replays as an ordinary test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aloft_sensors::fuzzing::sps30(data));
