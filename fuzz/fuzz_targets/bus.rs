//! Fuzz target: what other programs publish on the local MQTT bus (ingest readings, KubeEdge
//! twin requests, a mapper's pushes), through the agent's decoders. The body lives in
//! `aloft_agent::bus::fuzzing` so that the committed corpus replays as a unit test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aloft_agent::bus::fuzzing::bus_message(data));
