//! The envelopes around resources: [`List`], [`WatchEvent`], the [`Status`] of an error or
//! a deletion, and [`Version`].
//!
//! Invariant: a list's kind is its items' kind and `List` (`SensorList`); a watch line is
//! one [`WatchEvent`]; a `DELETED` event's object carries only `metadata.name`.

use serde::{Deserialize, Serialize};

use crate::{API_VERSION, ListMeta, ObjectMeta, Resource};

/// `{"apiVersion", "kind": "<Kind>List", "items": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct List<T> {
    /// [`API_VERSION`].
    #[serde(default)]
    pub api_version: String,
    /// `<Kind>List`.
    #[serde(default)]
    pub kind: String,
    /// What the list is about, for lists of one node's things.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ListMeta>,
    /// The objects.
    #[serde(default = "Vec::new")]
    pub items: Vec<T>,
}

impl<T> List<T> {
    /// A list of `kind`'s objects (`kind` without `List`).
    pub fn new(kind: &str, items: Vec<T>) -> Self {
        List {
            api_version: API_VERSION.to_owned(),
            kind: format!("{kind}List"),
            metadata: None,
            items,
        }
    }

    /// The list with its metadata.
    #[must_use]
    pub fn with_metadata(mut self, metadata: ListMeta) -> Self {
        self.metadata = Some(metadata);
        self
    }
}

impl<T: Resource> List<T> {
    /// A list of resources, its kind theirs.
    pub fn of(items: Vec<T>) -> Self {
        List::new(T::KIND, items)
    }
}

/// What happened to a watched object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WatchEventType {
    /// There now, or there at the start of the watch.
    Added,
    /// Changed.
    Modified,
    /// Gone.
    Deleted,
}

/// One line of a watch: `{"type": "ADDED", "object": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchEvent<T> {
    /// What happened.
    #[serde(rename = "type")]
    pub kind: WatchEventType,
    /// The object as it is now; for `DELETED`, only its name ([`DeletedObject`]).
    pub object: T,
}

/// Any object's kind and metadata, whatever its spec and status (Kubernetes'
/// `PartialObjectMetadata`): what a client needs to name an object of any kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PartialObjectMetadata {
    /// [`API_VERSION`].
    pub api_version: String,
    /// Its kind.
    pub kind: String,
    /// Its metadata.
    pub metadata: ObjectMeta,
}

/// The object of a `DELETED` watch event: only `metadata.name`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedObject {
    /// `{"name": ...}`.
    pub metadata: ObjectMeta,
}

/// An error (`status: Failure`, with reason and HTTP code) or the outcome of a deletion
/// (`status: Success`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Status {
    /// [`API_VERSION`].
    pub api_version: String,
    /// `Status`.
    pub kind: String,
    /// `Success` or `Failure`.
    pub status: String,
    /// Why it failed, one word (`NotFound`, `Conflict`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What happened, for people.
    pub message: String,
    /// The HTTP status code of a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
}

impl Status {
    /// A failure with its reason and HTTP code.
    pub fn failure(reason: impl Into<String>, message: impl Into<String>, code: u16) -> Self {
        Status {
            api_version: API_VERSION.to_owned(),
            kind: "Status".to_owned(),
            status: "Failure".to_owned(),
            reason: Some(reason.into()),
            message: message.into(),
            code: Some(code),
        }
    }

    /// A success (a deletion's answer).
    pub fn success(message: impl Into<String>) -> Self {
        Status {
            api_version: API_VERSION.to_owned(),
            kind: "Status".to_owned(),
            status: "Success".to_owned(),
            reason: None,
            message: message.into(),
            code: None,
        }
    }
}

/// `GET /api/v1/version`: `{"apiVersion", "kind": "Version", "version": "0.1.0"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Version {
    /// [`API_VERSION`].
    pub api_version: String,
    /// `Version`.
    pub kind: String,
    /// The hub's version.
    pub version: String,
}

impl Version {
    /// The version answer of a hub of `version`.
    pub fn new(version: impl Into<String>) -> Self {
        Version {
            api_version: API_VERSION.to_owned(),
            kind: "Version".to_owned(),
            version: version.into(),
        }
    }
}
