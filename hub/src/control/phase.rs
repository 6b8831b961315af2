//! A command's life, with no I/O: which transitions between the stored [`Phase`]s are
//! allowed.
//!
//! ```text
//! Pending --CommandAck--> Delivered --CommandResult--> Succeeded | Failed | Expired
//! Pending --TTL passed (hub)--> Expired
//! Pending --cancel--> Cancelled
//! ```
//!
//! Invariants: Succeeded and Failed are final; the agent's result is the truth of what
//! happened on the glider, so it also replaces Cancelled or Expired that the hub set while
//! the command was already on its way (a cancel that came too late must not hide a restart
//! that did happen). Once delivered, a command cannot be recalled: the protocol has no
//! recall message, and the agent has durably recorded it.

pub use crate::storage::control::Phase;

impl Phase {
    /// Whether nothing more will happen to it (short of a late agent result).
    pub fn is_final(self) -> bool {
        !matches!(self, Phase::Pending | Phase::Delivered)
    }

    /// The agent acked the command.
    pub fn on_ack(self) -> Option<Phase> {
        match self {
            Phase::Pending => Some(Phase::Delivered),
            _ => None,
        }
    }

    /// The agent reported how the command ended; `None` when that changes nothing (a
    /// repeated result).
    pub fn on_result(self, outcome: Phase) -> Option<Phase> {
        match self {
            Phase::Succeeded | Phase::Failed => None,
            _ if outcome == self => None,
            _ => Some(outcome),
        }
    }

    /// The hub's clock passed the expiry.
    pub fn on_expiry(self) -> Option<Phase> {
        match self {
            // A delivered command is the agent's to expire: it checks the expiry before it
            // acts and reports Expired itself.
            Phase::Pending => Some(Phase::Expired),
            _ => None,
        }
    }

    /// An operator asks to cancel.
    pub fn on_cancel(self) -> Result<Phase, CancelRefused> {
        match self {
            Phase::Pending => Ok(Phase::Cancelled),
            Phase::Delivered => Err(CancelRefused::Delivered),
            other => Err(CancelRefused::Final(other)),
        }
    }
}

/// Why a command cannot be cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CancelRefused {
    /// The agent holds it already.
    #[error("it was already delivered to the node, which applies it once; it cannot be recalled")]
    Delivered,
    /// It already ended.
    #[error("it already ended: {}", .0.name())]
    Final(Phase),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_command_is_delivered_by_an_ack_and_only_then() {
        assert_eq!(Phase::Pending.on_ack(), Some(Phase::Delivered));
        assert_eq!(Phase::Delivered.on_ack(), None);
        assert_eq!(Phase::Succeeded.on_ack(), None);
    }

    #[test]
    fn the_agents_result_ends_it_once_and_beats_a_late_cancel() {
        assert_eq!(
            Phase::Delivered.on_result(Phase::Succeeded),
            Some(Phase::Succeeded)
        );
        assert_eq!(Phase::Pending.on_result(Phase::Failed), Some(Phase::Failed));
        assert_eq!(Phase::Succeeded.on_result(Phase::Failed), None);
        assert_eq!(
            Phase::Cancelled.on_result(Phase::Succeeded),
            Some(Phase::Succeeded)
        );
        assert_eq!(Phase::Expired.on_result(Phase::Expired), None);
    }

    #[test]
    fn only_pending_commands_expire_at_the_hub_or_can_be_cancelled() {
        assert_eq!(Phase::Pending.on_expiry(), Some(Phase::Expired));
        assert_eq!(Phase::Delivered.on_expiry(), None);
        assert_eq!(Phase::Pending.on_cancel(), Ok(Phase::Cancelled));
        assert_eq!(Phase::Delivered.on_cancel(), Err(CancelRefused::Delivered));
        assert_eq!(
            Phase::Succeeded.on_cancel(),
            Err(CancelRefused::Final(Phase::Succeeded))
        );
    }

    #[test]
    fn names_round_trip() {
        for phase in [
            Phase::Pending,
            Phase::Delivered,
            Phase::Succeeded,
            Phase::Failed,
            Phase::Expired,
            Phase::Cancelled,
        ] {
            assert_eq!(Phase::from_name(phase.name()), Some(phase));
        }
        assert_eq!(Phase::from_name("pending"), None);
    }
}
