//! The audit trail's vocabulary: who did what to which object, and how it ended, as types,
//! so that a call site cannot misspell an action or swap a kind and an outcome.
//!
//! Invariant: the names these types store and show ([`Action::name`], [`Kind::name`],
//! [`Outcome::name`]) never change: they are in every stored event and in the API's
//! `Event` resources, which clients filter on.

use super::phase::Phase;
use crate::clock::now_utc_ns;
use crate::storage::control::{Actor, EventRow};
use crate::tokens::Principal;

/// What was done, or asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// A command, token or node was made.
    Create,
    /// A command was cancelled.
    Cancel,
    /// The hub expired a pending command past its TTL.
    Expire,
    /// A sensor's desired state was written.
    Set,
    /// A sensor's desired state, or a node, was removed.
    Delete,
    /// The agent acked a command.
    Deliver,
    /// The agent reported how a command ended.
    Complete,
    /// The agent reported something about itself (names it refused).
    Report,
    /// A token was revoked.
    Revoke,
    /// Tokens were listed.
    List,
}

impl Action {
    /// The name stored and shown.
    pub fn name(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Cancel => "cancel",
            Action::Expire => "expire",
            Action::Set => "set",
            Action::Delete => "delete",
            Action::Deliver => "deliver",
            Action::Complete => "complete",
            Action::Report => "report",
            Action::Revoke => "revoke",
            Action::List => "list",
        }
    }
}

/// The kind of object an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A command.
    Command,
    /// A sensor (its desired state).
    Sensor,
    /// A node.
    Node,
    /// A bearer token.
    Token,
}

impl Kind {
    /// The name stored and shown: the API's resource kind.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Command => "Command",
            Kind::Sensor => "Sensor",
            Kind::Node => "Node",
            Kind::Token => "Token",
        }
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Done.
    Ok,
    /// The caller's role does not allow it.
    Denied,
    /// Not done: the object's state does not allow it, or the input was refused.
    Refused,
    /// A command's new phase.
    Phase(Phase),
}

impl Outcome {
    /// The name stored and shown (a phase by its own name).
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Refused => "refused",
            Outcome::Phase(phase) => phase.name(),
        }
    }
}

/// The object an event is about: its kind, its name and the node it concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Object<'a> {
    /// Its kind.
    pub kind: Kind,
    /// Its name (empty when it has none yet, such as a refused creation).
    pub name: &'a str,
    /// The node it concerns.
    pub node: Option<&'a str>,
}

impl<'a> Object<'a> {
    /// An object of `kind` named `name`, of `node` when it concerns one.
    pub fn new(kind: Kind, name: &'a str, node: Option<&'a str>) -> Object<'a> {
        Object { kind, name, node }
    }
}

/// An audit event, stamped now.
pub fn event(
    actor: &Actor,
    action: Action,
    object: Object<'_>,
    outcome: Outcome,
    message: String,
) -> EventRow {
    EventRow {
        seq: 0,
        time_ns: now_utc_ns(),
        actor: actor.clone(),
        action: action.name().to_owned(),
        object_kind: object.kind.name().to_owned(),
        object_name: object.name.to_owned(),
        node: object.node.map(str::to_owned),
        outcome: outcome.name().to_owned(),
        message,
    }
}

/// The actor of an authenticated caller.
pub fn actor_of(who: &Principal) -> Actor {
    Actor {
        token: who.token_id.clone(),
        role: who.role.name().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored and shown vocabulary, as events written before these types held it.
    #[test]
    fn every_name_is_the_stored_vocabulary() {
        let actions = [
            Action::Create,
            Action::Cancel,
            Action::Expire,
            Action::Set,
            Action::Delete,
            Action::Deliver,
            Action::Complete,
            Action::Report,
            Action::Revoke,
            Action::List,
        ]
        .map(Action::name);
        assert_eq!(
            actions,
            [
                "create", "cancel", "expire", "set", "delete", "deliver", "complete", "report",
                "revoke", "list"
            ]
        );
        let kinds = [Kind::Command, Kind::Sensor, Kind::Node, Kind::Token].map(Kind::name);
        assert_eq!(kinds, ["Command", "Sensor", "Node", "Token"]);
        let outcomes = [
            Outcome::Ok,
            Outcome::Denied,
            Outcome::Refused,
            Outcome::Phase(Phase::Delivered),
            Outcome::Phase(Phase::Expired),
        ]
        .map(Outcome::name);
        assert_eq!(
            outcomes,
            ["ok", "denied", "refused", "Delivered", "Expired"]
        );
    }

    #[test]
    fn an_event_carries_its_object_and_names() {
        let row = event(
            &Actor::hub(),
            Action::Expire,
            Object::new(Kind::Command, "cmd-1", Some("glider")),
            Outcome::Phase(Phase::Expired),
            "its TTL passed".into(),
        );
        assert_eq!(
            (
                row.action.as_str(),
                row.object_kind.as_str(),
                row.object_name.as_str(),
                row.node.as_deref(),
                row.outcome.as_str()
            ),
            ("expire", "Command", "cmd-1", Some("glider"), "Expired")
        );
        assert_eq!(row.actor, Actor::hub());
    }
}
