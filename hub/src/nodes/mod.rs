//! The nodes: their sessions over WebSocket, which are connected now, the registry of what
//! the hub knows of each, and the seam through which sessions reach the control layer.

pub mod connected;
pub mod control_seam;
pub mod registry;
pub mod session;
