//! Fuzz target: a detector front end's bytes as the agent reads them from its port. The
//! body lives in `aloft_agent::sensor::detector::fuzz_intake` so that the committed corpus
//! replays as an ordinary test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aloft_agent::sensor::detector::fuzz_intake(data));
