//! The Aloft edge agent.
