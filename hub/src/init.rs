//! `aloft-hub init`: a new data directory with the CA, the server certificate, the
//! database, an admin token and the first node with its token.
//!
//! Invariant: never overwrites an existing hub (a second `init` on the same directory is
//! refused), so tokens and certificates agents trust are not replaced by accident.

use std::path::{Path, PathBuf};

use crate::Hub;
use crate::nodes::registry::RegistryError;
use crate::pki::{self, PkiError};
use crate::storage::sqlite::{DB_FILE, Db};
use crate::tokens::{Role, TokenError};

/// What `init` needs.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The data directory (created if missing).
    pub data_dir: PathBuf,
    /// Names the server certificate is valid for (DNS names or IP addresses).
    pub sans: Vec<String>,
    /// The first node's name.
    pub node: String,
}

/// What `init` made: the secrets, shown once.
#[derive(Debug, Clone)]
pub struct Initialised {
    /// The admin token's secret.
    pub admin_token: String,
    /// The node's token's secret.
    pub node_token: String,
    /// The node's name.
    pub node: String,
    /// The CA certificate to give agents and clients.
    pub ca_file: PathBuf,
}

/// Why `init` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// The directory holds a hub already.
    #[error("{0} already holds a hub; refusing to overwrite it")]
    Exists(String),
    /// The directory could not be made.
    #[error("creating {path}: {source}")]
    Io {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Certificates.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The database.
    #[error("creating the database: {0}")]
    Db(#[from] rusqlite::Error),
    /// Tokens.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The node.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Whether `dir` already holds a hub made by [`init`].
pub fn holds_hub(dir: &Path) -> bool {
    dir.join(DB_FILE).exists()
}

/// Creates the hub's data directory.
pub fn init(options: &InitOptions) -> Result<Initialised, InitError> {
    let dir = &options.data_dir;
    if holds_hub(dir) {
        return Err(InitError::Exists(dir.display().to_string()));
    }
    create_dir_private(dir)?;
    pki::create(dir, &options.sans)?;
    let db = Db::open(dir)?;
    let hub = Hub::from_db(dir, db);
    let (_, admin_token) = hub.tokens.create(Role::Admin, None, "created by init")?;
    let node = hub.registry.create_node(&options.node)?;
    tracing::info!(data = %dir.display(), node = %options.node, sans = ?options.sans, "Hub initialised.");
    Ok(Initialised {
        admin_token,
        node_token: node.secret,
        node: options.node.clone(),
        ca_file: dir.join(pki::CA_CERT),
    })
}

fn create_dir_private(dir: &Path) -> Result<(), InitError> {
    use std::os::unix::fs::DirBuilderExt;
    let err = |source| InitError::Io {
        path: dir.display().to_string(),
        source,
    };
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err)?;
    }
    Ok(())
}
