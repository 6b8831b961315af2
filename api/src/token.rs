//! `Token`: an API or node credential, never with its secret except once at creation
//! (docs/api.md, "Token").

use serde::{Deserialize, Serialize};

use crate::resource;

resource!(
    /// `GET` / `POST /api/v1/tokens`.
    Token,
    TokenSpec,
    TokenStatus
);

/// What the token may do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenSpec {
    /// `viewer`, `operator`, `admin` or `node`.
    pub role: String,
    /// The node a `node` token is bound to.
    pub node: Option<String>,
    /// Who or what it is for.
    pub description: String,
}

/// Whether it still works.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TokenStatus {
    /// Revoked tokens never authenticate again.
    pub revoked: bool,
    /// When it was revoked.
    pub revoked_at: Option<String>,
    /// The secret, only in the answer that created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}
