//! The resources and envelopes of the hub's HTTPS API (docs/api.md), as serde types shared
//! by `aloft-hub`, which serializes them, and `aloftctl`, which reads them back.
//!
//! Kubernetes shape: every resource is `{apiVersion, kind, metadata, spec, status}`, lists
//! are [`List`]s, watches stream [`WatchEvent`]s and errors are a [`Status`]. Field names
//! are camelCase on the wire, except the readings stream's snake_case rows ([`Reading`]).
//!
//! Invariants:
//! - No I/O and no runtime: serde only, so the crate builds wherever `aloftctl` runs (the
//!   edge boards included).
//! - A field the hub does not know is `None` and written as `null` (never a made-up
//!   value); fields that only some answers carry (a token's secret once, a dry run's
//!   outcome) and metadata that does not apply to an object are left out when absent. Reading is lenient: a field missing from what a hub
//!   sent reads as `None` or empty, so a client can show `<none>` rather than fail.
//! - docs/api.md is checked against these types (`tests/doc.rs`): every JSON example in
//!   it reads into its type and writes back equal (so a field unknown to the type fails),
//!   and every field name of every type appears in it.

pub mod command;
pub mod desired;
pub mod envelope;
pub mod event;
pub mod meta;
pub mod node;
pub mod query;
pub mod request;
pub mod sensor;
pub mod text;
pub mod token;

pub use command::{Actor, Command, CommandSpec, CommandStatus};
pub use desired::{
    DesiredSensor, DesiredState, DesiredStateSpec, DesiredStateStatus, ObservedSensor,
};
pub use envelope::{
    DeletedObject, List, PartialObjectMetadata, Status, Version, WatchEvent, WatchEventType,
};
pub use event::{Event, EventSpec, EventStatus, ObjectReference};
pub use meta::{ListMeta, ObjectMeta};
pub use node::{
    Backlog, Condition, GnssModel, LastRestart, LatestValue, LinkStats, Node, NodeHealth,
    NodePower, NodeSensor, NodeSpec, NodeStatus, StoreFill, StreamStatus,
};
pub use query::{Gap, LogLine, Reading, SeqRange, TimeSpan};
pub use request::{
    CommandRequest, CommandRequestSpec, NodeRequest, NodeRequestMeta, TokenRequest,
    TokenRequestSpec,
};
pub use sensor::{Sensor, SensorSpec, SensorStatus, SensorValue, TunableValue, Tunables};
pub use token::{Token, TokenSpec, TokenStatus};

/// The API group and version of every resource.
pub const API_VERSION: &str = "aloft.dev/v1";

/// A resource kind: its `kind` string, from which its list's kind follows.
pub trait Resource {
    /// The `kind` of one object (`Sensor`); a list of them is `SensorList`.
    const KIND: &'static str;

    /// Its metadata.
    fn metadata(&self) -> &ObjectMeta;
}

/// Declares a resource: `apiVersion`, `kind`, `metadata`, `spec`, `status`, read leniently
/// (what a hub left out reads as the default), with a constructor that fills in
/// `apiVersion` and `kind`.
macro_rules! resource {
    ($(#[$doc:meta])* $name:ident, $spec:ty, $status:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "camelCase", default)]
        pub struct $name {
            /// [`API_VERSION`](crate::API_VERSION).
            pub api_version: String,
            #[doc = concat!("`", stringify!($name), "`.")]
            pub kind: String,
            /// Name and identity.
            pub metadata: crate::ObjectMeta,
            /// What is wanted.
            pub spec: $spec,
            /// What is.
            pub status: $status,
        }

        impl $name {
            #[doc = concat!("A `", stringify!($name), "` of this metadata, spec and status.")]
            pub fn new(metadata: crate::ObjectMeta, spec: $spec, status: $status) -> Self {
                $name {
                    api_version: crate::API_VERSION.to_owned(),
                    kind: stringify!($name).to_owned(),
                    metadata,
                    spec,
                    status,
                }
            }
        }

        impl crate::Resource for $name {
            const KIND: &'static str = stringify!($name);

            fn metadata(&self) -> &crate::ObjectMeta {
                &self.metadata
            }
        }
    };
}
pub(crate) use resource;
