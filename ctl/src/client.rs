//! The HTTPS JSON client of aloft-hub's API.
//!
//! Blocking (ureq over rustls with the ring provider: it cross-builds for ARM with Debian's
//! gcc; no aws-lc, no OpenSSL). Every failure becomes a [`ClientError`] whose words say
//! what to do: which flag to check, which role is needed. The hub's JSON error body
//! (`{"kind":"Status","message":...}`) is shown as it is; it is written for operators.

use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use ureq::tls::{PemItem, RootCerts, TlsConfig, TlsProvider};

use crate::config::Target;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The CA file could not be read or holds no certificate.
    #[error(
        "cannot use the CA file {path}: {reason}. Pass the hub's ca.pem (in its data directory) with --ca or ALOFT_CA"
    )]
    Ca {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// No token, and the hub wants one.
    #[error(
        "the hub at {hub} wants a token: pass --token, set ALOFT_TOKEN, or add one to the context (token-file)"
    )]
    NoToken {
        /// The hub.
        hub: String,
    },
    /// The hub refused the token.
    #[error(
        "the hub refused the token (HTTP 401: {message}). It is unknown or revoked: check --token, ALOFT_TOKEN or the context's token"
    )]
    Unauthorized {
        /// The hub's words.
        message: String,
    },
    /// The token's role does not allow this.
    #[error("{message} (HTTP 403)")]
    Forbidden {
        /// The hub's words (it names the role needed).
        message: String,
    },
    /// No such resource.
    #[error("{message}")]
    NotFound {
        /// The hub's words.
        message: String,
    },
    /// Another refusal or failure of the hub.
    #[error("the hub answered HTTP {status}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The hub's words.
        message: String,
    },
    /// The hub could not be reached or the connection failed.
    #[error(
        "cannot reach the hub at {hub}: {reason}. Is aloft-hub running there? Check --hub / ALOFT_HUB / the context's server"
    )]
    Unreachable {
        /// The hub.
        hub: String,
        /// Why.
        reason: String,
    },
    /// TLS failed (mostly: the CA does not match the hub's certificate).
    #[error(
        "TLS with the hub at {hub} failed: {reason}. Pass the CA that signed the hub's certificate (its data directory's ca.pem) with --ca or ALOFT_CA"
    )]
    Tls {
        /// The hub.
        hub: String,
        /// Why.
        reason: String,
    },
    /// The hub's answer was not the JSON expected.
    #[error("the hub's answer could not be read: {0}")]
    Body(String),
}

impl ClientError {
    /// Whether the hub answered "not found".
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::NotFound { .. })
    }
}

/// A connection to one hub with one token.
#[derive(Debug, Clone)]
pub struct Hub {
    agent: ureq::Agent,
    /// The agent for long-lived streams (no overall timeout).
    streaming: ureq::Agent,
    base: String,
    token: Option<String>,
}

impl Hub {
    /// Prepares requests to the target; reads the CA file now, so a wrong path fails first.
    pub fn new(target: &Target, request_timeout: Duration) -> Result<Self, ClientError> {
        let roots = match &target.ca {
            Some(path) => {
                let shown = path.display().to_string();
                let pem = std::fs::read(path).map_err(|e| ClientError::Ca {
                    path: shown.clone(),
                    reason: e.to_string(),
                })?;
                let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                    .filter_map(|item| match item {
                        Ok(PemItem::Certificate(cert)) => Some(cert),
                        _ => None,
                    })
                    .collect();
                if certs.is_empty() {
                    return Err(ClientError::Ca {
                        path: shown,
                        reason: "no PEM certificate in it".into(),
                    });
                }
                RootCerts::Specific(Arc::new(certs))
            }
            None => RootCerts::WebPki,
        };
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(roots)
            .build();
        let build = |timeout: Option<Duration>| -> ureq::Agent {
            ureq::Agent::config_builder()
                .tls_config(tls.clone())
                .http_status_as_error(false)
                .timeout_connect(Some(request_timeout.min(Duration::from_secs(10))))
                .timeout_global(timeout)
                .user_agent(concat!("aloftctl/", env!("CARGO_PKG_VERSION")))
                .build()
                .into()
        };
        Ok(Hub {
            agent: build(Some(request_timeout)),
            streaming: build(None),
            base: target.hub.clone(),
            token: target.token.clone(),
        })
    }

    /// The hub's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET path` as JSON.
    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        let request = self.authorised(self.agent.get(&self.url(path)));
        self.finish(request.call())
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &impl Serialize) -> Result<Value, ClientError> {
        let request = self.authorised(self.agent.post(&self.url(path)));
        self.finish(request.send_json(body))
    }

    /// `PUT path` with a JSON body.
    pub fn put(&self, path: &str, body: &impl Serialize) -> Result<Value, ClientError> {
        let request = self.authorised(self.agent.put(&self.url(path)));
        self.finish(request.send_json(body))
    }

    /// `PATCH path` with a JSON merge patch.
    pub fn patch(&self, path: &str, body: &impl Serialize) -> Result<Value, ClientError> {
        let request = self.authorised(self.agent.patch(&self.url(path)));
        self.finish(request.send_json(body))
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Result<Value, ClientError> {
        let request = self.authorised(self.agent.delete(&self.url(path)));
        self.finish(request.call())
    }

    /// `GET path` of a watch: one JSON value per line, handed to `each` until it returns
    /// `false` or the hub ends the stream. No overall timeout: a watch lasts.
    pub fn watch(
        &self,
        path: &str,
        mut each: impl FnMut(Value) -> bool,
    ) -> Result<(), ClientError> {
        let request = self.authorised(self.streaming.get(&self.url(path)));
        let response = request.call().map_err(|e| self.transport(e))?;
        if !response.status().is_success() {
            return Err(self.refusal(response));
        }
        let reader = BufReader::new(response.into_body().into_reader());
        for line in reader.lines() {
            let line = line.map_err(|e| ClientError::Unreachable {
                hub: self.base.clone(),
                reason: format!("the watch stream broke: {e}"),
            })?;
            if line.trim().is_empty() {
                continue;
            }
            let value: Value =
                serde_json::from_str(&line).map_err(|e| ClientError::Body(e.to_string()))?;
            if !each(value) {
                break;
            }
        }
        Ok(())
    }

    /// `GET path` of a download: the response with its headers and unread body, or the
    /// hub's refusal. No overall timeout: a large export takes as long as it takes.
    pub fn get_stream(&self, path: &str) -> Result<ureq::http::Response<ureq::Body>, ClientError> {
        let request = self.authorised(self.streaming.get(&self.url(path)));
        let response = request.call().map_err(|e| self.transport(e))?;
        if !response.status().is_success() {
            return Err(self.refusal(response));
        }
        Ok(response)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authorised<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(token) => request.header("Authorization", &format!("Bearer {token}")),
            None => request,
        }
    }

    fn finish(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, ClientError> {
        let mut response = result.map_err(|e| self.transport(e))?;
        if !response.status().is_success() {
            return Err(self.refusal(response));
        }
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| ClientError::Body(e.to_string()))?;
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| ClientError::Body(e.to_string()))
    }

    fn refusal(&self, mut response: ureq::http::Response<ureq::Body>) -> ClientError {
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let message = serde_json::from_str::<aloft_api::Status>(&text)
            .ok()
            .map(|status| status.message)
            .filter(|message| !message.is_empty())
            .unwrap_or_else(|| {
                if text.trim().is_empty() {
                    response
                        .status()
                        .canonical_reason()
                        .unwrap_or("no reason given")
                        .to_owned()
                } else {
                    text.trim().to_owned()
                }
            });
        match status {
            401 if self.token.is_none() => ClientError::NoToken {
                hub: self.base.clone(),
            },
            401 => ClientError::Unauthorized { message },
            403 => ClientError::Forbidden { message },
            404 => ClientError::NotFound { message },
            _ => ClientError::Status { status, message },
        }
    }

    fn transport(&self, error: ureq::Error) -> ClientError {
        let hub = self.base.clone();
        match error {
            ureq::Error::Rustls(e) => ClientError::Tls {
                hub,
                reason: e.to_string(),
            },
            ureq::Error::Tls(e) => ClientError::Tls {
                hub,
                reason: e.to_string(),
            },
            ureq::Error::Io(e) if e.to_string().contains("certificate") => ClientError::Tls {
                hub,
                reason: e.to_string(),
            },
            other => ClientError::Unreachable {
                hub,
                reason: other.to_string(),
            },
        }
    }
}

/// Escapes one path segment (names are plain, but never trust that in a URL).
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte));
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
