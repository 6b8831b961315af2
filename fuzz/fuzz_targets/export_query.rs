//! Fuzz target: the raw query string of the hub's export route, parsed and checked by the
//! function the route calls. The body lives in `aloft_hub::export::request` so that the
//! committed corpus replays as a unit test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aloft_hub::export::request::fuzz_query(data));
