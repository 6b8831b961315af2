//! Fuzz target: a smart battery's SMBus replies, decoded as words and blocks and converted
//! into readings. The body lives in `aloft_sensors::fuzzing` so that the committed corpus
//! replays as an ordinary test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aloft_sensors::fuzzing::sbs(data));
