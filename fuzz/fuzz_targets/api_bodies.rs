//! Fuzz target: a request body of the hub's HTTPS API, parsed as every body type the API
//! reads (command, sensor spec, token, node) by the function the handlers call. The body
//! lives in `aloft_hub::api::bodies` so that the committed corpus replays as a unit test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aloft_hub::api::bodies::fuzz_every_body(data));
