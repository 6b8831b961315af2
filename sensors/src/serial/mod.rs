//! Serial ports: opening real ones, and simulated devices behind pseudo-terminals.
//!
//! (Work in progress: the pseudo-terminal harness and port opening.)

use crate::flight::FlightState;

/// A device that talks over a serial line, as a simulator models it.
///
/// The pseudo-terminal harness calls [`SerialDevice::tick`] as simulated time advances and
/// writes what the device emits, paced at [`SerialDevice::baud`]; bytes the host writes to
/// the port are handed to [`SerialDevice::receive`].
pub trait SerialDevice: Send {
    /// Baud rate of the device's line (bytes are paced at baud / 10 per second).
    fn baud(&self) -> u32;

    /// Advances the device to `state.t_s` and appends whatever it transmits by then to `out`
    /// (a GNSS receiver its epoch's sentences, a detector its event lines).
    fn tick(&mut self, state: &FlightState, out: &mut Vec<u8>);

    /// The host wrote `bytes` to the device; appends any answer (ACK/NAK, poll replies) to `out`.
    fn receive(&mut self, bytes: &[u8], out: &mut Vec<u8>);
}
