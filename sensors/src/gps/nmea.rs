//! NMEA 0183 sentence parsing. (Work in progress.)

/// XOR of `body`: the NMEA checksum of the bytes between `$` and `*`.
pub fn checksum(body: &[u8]) -> u8 {
    body.iter().fold(0, |acc, b| acc ^ b)
}
