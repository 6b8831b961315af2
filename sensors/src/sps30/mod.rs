//! Sensirion SPS30 particulate matter sensor on I2C (address 0x69).

/// The SPS30's fixed I2C address.
pub const ADDRESS: u8 = 0x69;
