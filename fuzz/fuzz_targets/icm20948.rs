//! Fuzz target: ICM-20948 FIFO bursts as the driver reads them. The body lives in
//! `aloft_sensors::fuzzing` so that the committed corpus replays as an ordinary test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aloft_sensors::fuzzing::icm20948(data));
