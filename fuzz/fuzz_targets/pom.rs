//! Fuzz target: ozone monitor input as it arrives from a port. The body lives in
//! `aloft_sensors::fuzzing` so that the committed corpus replays as an ordinary test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aloft_sensors::fuzzing::pom(data));
