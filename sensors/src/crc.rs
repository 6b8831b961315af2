//! The CRC-8 the I2C parts check their bytes with: most significant bit first, no
//! reflection, no final XOR, only the polynomial and the initial value differ (Sensirion's
//! words: 0x31 from 0xFF; SMBus's packet error code: 0x07 from 0).
//!
//! Invariant: pure and total: any bytes give a CRC, nothing panics.

/// CRC-8 of `data` with `polynomial` (without its x^8 term) from `initial`, most
/// significant bit first.
pub fn crc8_msb_first(polynomial: u8, initial: u8, data: &[u8]) -> u8 {
    let mut crc = initial;
    for &byte in data {
        crc ^= byte;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ polynomial
            } else {
                crc << 1
            };
        }
    }
    crc
}
