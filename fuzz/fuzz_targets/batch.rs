//! Fuzz target: a batch's payload as the hub receives it; the first byte picks the encoding
//! and the limits. The body lives in `aloft_protocol::sync::fuzzing` so that the committed
//! corpus replays as an ordinary test (protocol/tests/fuzz_corpus.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aloft_protocol::sync::fuzzing::batch(data));
