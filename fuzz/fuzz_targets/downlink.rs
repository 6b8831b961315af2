//! Fuzz target: one WebSocket message from the hub, as the agent decodes it. The body
//! lives in `aloft_protocol::sync::fuzzing` so that the committed corpus replays as an
//! ordinary test (protocol/tests/fuzz_corpus.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aloft_protocol::sync::fuzzing::downlink(data));
