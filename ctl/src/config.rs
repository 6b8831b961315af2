//! The config file (`~/.config/aloft/config.yaml`, like a kubeconfig) and how the hub, the
//! token and the CA are chosen.
//!
//! Precedence, highest first: flags (`--hub`, `--token`, `--ca`), environment (`ALOFT_HUB`,
//! `ALOFT_TOKEN`, `ALOFT_CA`; clap merges these two), then the context named by
//! `--context`/`ALOFT_CONTEXT`, else the file's `current-context`. A missing file is an
//! empty one: flags alone are enough. A context's `token-file` is read at each use, so a
//! file written by `aloft-hub init --admin-token-file` works without copying the secret.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cli::TargetArgs;

/// Why the config could not give a target.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("cannot read the config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid YAML of this shape.
    #[error("the config file {path} is malformed: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The parser's words (with line and column).
        message: String,
    },
    /// The file could not be written.
    #[error("cannot write the config file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `--context` names a context the file does not have.
    #[error(
        "no context `{name}` in {path}; known: {known}. Add one with `aloftctl config set-context {name} --server URL --certificate-authority CA --token-file FILE`"
    )]
    UnknownContext {
        /// The name asked for.
        name: String,
        /// The file.
        path: PathBuf,
        /// The names it has.
        known: String,
    },
    /// Nothing says which hub.
    #[error(
        "no hub given: pass --hub https://HOST:PORT, set ALOFT_HUB, or add a context with `aloftctl config set-context NAME --server URL --use`"
    )]
    NoHub,
    /// The hub's address has a scheme other than https.
    #[error(
        "the hub address {given} is not HTTPS: aloft-hub speaks HTTPS only (its API and node links are always TLS). Write https://{rest} or just {rest}"
    )]
    NotHttps {
        /// The address as given.
        given: String,
        /// It without its scheme.
        rest: String,
    },
    /// A token file could not be read.
    #[error("cannot read the token file {path}: {source}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The config file's contents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ConfigFile {
    /// The context used when none is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_context: Option<String>,
    /// The contexts.
    #[serde(default)]
    pub contexts: Vec<Context>,
}

/// One hub and the credentials to use there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Context {
    /// Its name.
    pub name: String,
    /// The hub's URL (`https://127.0.0.1:8443`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// PEM file of the CA to trust (relative paths are relative to the config file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<PathBuf>,
    /// The token itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A file holding the token (relative paths are relative to the config file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

/// Where and how to reach the hub, all sources merged.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Base URL without a trailing slash.
    pub hub: String,
    /// The bearer token, when any.
    pub token: Option<String>,
    /// The CA to trust; the system's web roots without it.
    pub ca: Option<PathBuf>,
}

/// The config file's path: `--config`/`ALOFT_CONFIG`, else `$XDG_CONFIG_HOME/aloft/config.yaml`,
/// else `~/.config/aloft/config.yaml`.
pub fn config_path(args: &TargetArgs) -> PathBuf {
    if let Some(path) = &args.config {
        return path.clone();
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("aloft").join("config.yaml")
}

impl ConfigFile {
    /// Loads the file; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_norway::from_str(&text).map_err(|e| ConfigError::Malformed {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Writes the file (mode 0600: it may hold tokens), creating its directory.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let write = |source| ConfigError::Write {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(write)?;
        }
        let text = serde_norway::to_string(self).map_err(|e| ConfigError::Malformed {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let tmp = path.with_extension("yaml.tmp");
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(write)?;
            file.write_all(text.as_bytes()).map_err(write)?;
            file.sync_all().map_err(write)?;
        }
        std::fs::rename(&tmp, path).map_err(write)
    }

    /// The context of that name.
    pub fn context(&self, name: &str) -> Option<&Context> {
        self.contexts.iter().find(|c| c.name == name)
    }
}

/// Merges flags, environment and the config file into a target.
pub fn resolve(args: &TargetArgs) -> Result<Target, ConfigError> {
    let path = config_path(args);
    let file = ConfigFile::load(&path)?;
    resolve_with(args, &file, &path)
}

/// [`resolve`] with the file already loaded (tests).
pub fn resolve_with(
    args: &TargetArgs,
    file: &ConfigFile,
    path: &Path,
) -> Result<Target, ConfigError> {
    let wanted = args
        .context
        .clone()
        .or_else(|| file.current_context.clone());
    let context = match &wanted {
        Some(name) => match file.context(name) {
            Some(context) => Some(context),
            // A current-context naming nothing is as bad as --context naming nothing.
            None => {
                return Err(ConfigError::UnknownContext {
                    name: name.clone(),
                    path: path.to_owned(),
                    known: known_names(file),
                });
            }
        },
        None => None,
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let relative = |p: &PathBuf| {
        if p.is_absolute() {
            p.clone()
        } else {
            base.join(p)
        }
    };
    let hub = args
        .hub
        .clone()
        .or_else(|| context.and_then(|c| c.server.clone()))
        .ok_or(ConfigError::NoHub)?;
    let token = match (&args.token, context) {
        (Some(token), _) => Some(token.clone()),
        (None, Some(c)) => match (&c.token, &c.token_file) {
            (Some(token), _) => Some(token.clone()),
            (None, Some(file)) => {
                let file = relative(file);
                let text = std::fs::read_to_string(&file)
                    .map_err(|source| ConfigError::TokenFile { path: file, source })?;
                Some(text.trim().to_owned())
            }
            (None, None) => None,
        },
        (None, None) => None,
    };
    let ca = args
        .ca
        .clone()
        .or_else(|| context.and_then(|c| c.certificate_authority.as_ref().map(relative)));
    Ok(Target {
        hub: hub_url(&hub)?,
        token,
        ca,
    })
}

/// The hub's base URL from what was given: `https://HOST:PORT` as it is, a bare
/// `HOST:PORT` as HTTPS (the only scheme the hub speaks), any other scheme refused.
pub fn hub_url(given: &str) -> Result<String, ConfigError> {
    let given = given.trim();
    let url = match given.split_once("://") {
        None => format!("https://{given}"),
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => given.to_owned(),
        Some((_, rest)) => {
            return Err(ConfigError::NotHttps {
                given: given.to_owned(),
                rest: rest.trim_end_matches('/').to_owned(),
            });
        }
    };
    Ok(url.trim_end_matches('/').to_owned())
}

fn known_names(file: &ConfigFile) -> String {
    if file.contexts.is_empty() {
        return "none".into();
    }
    file.contexts
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> ConfigFile {
        serde_norway::from_str(
            "current-context: local\ncontexts:\n- name: local\n  server: https://127.0.0.1:8443/\n  certificate-authority: hub/ca.pem\n  token: from-file\n- name: field\n  server: https://hub.example:8443\n",
        )
        .unwrap_or_default()
    }

    #[test]
    fn the_current_context_gives_hub_token_and_a_ca_relative_to_the_file() {
        let target = resolve_with(
            &TargetArgs::default(),
            &file(),
            Path::new("/cfg/aloft/config.yaml"),
        );
        let target = target.map_err(|e| e.to_string());
        assert_eq!(
            target,
            Ok(Target {
                hub: "https://127.0.0.1:8443".into(),
                token: Some("from-file".into()),
                ca: Some(PathBuf::from("/cfg/aloft/hub/ca.pem")),
            })
        );
    }

    #[test]
    fn flags_override_the_context() {
        let args = TargetArgs {
            context: Some("field".into()),
            hub: Some("https://other:1".into()),
            token: Some("flag".into()),
            ..TargetArgs::default()
        };
        let target = resolve_with(&args, &file(), Path::new("/c.yaml")).map_err(|e| e.to_string());
        assert_eq!(
            target,
            Ok(Target {
                hub: "https://other:1".into(),
                token: Some("flag".into()),
                ca: None,
            })
        );
    }

    #[test]
    fn an_unknown_context_names_the_known_ones_and_how_to_add_it() {
        let args = TargetArgs {
            context: Some("lab".into()),
            ..TargetArgs::default()
        };
        let err = resolve_with(&args, &file(), Path::new("/c.yaml"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("known: local, field"), "{err}");
        assert!(err.contains("config set-context lab"), "{err}");
    }

    #[test]
    fn a_bare_host_and_port_is_https_and_plain_http_is_refused_as_such() {
        let url = |given: &str| hub_url(given).ok();
        assert_eq!(
            url("127.0.0.1:8443").as_deref(),
            Some("https://127.0.0.1:8443")
        );
        assert_eq!(
            url("hub.example:8443/").as_deref(),
            Some("https://hub.example:8443")
        );
        assert_eq!(url("HTTPS://h:1").as_deref(), Some("HTTPS://h:1"));
        for given in ["http://127.0.0.1:8443", "ws://h:1", "HTTP://h:1/"] {
            let err = hub_url(given).map_err(|e| e.to_string());
            let Err(err) = err else {
                panic!("{given} accepted");
            };
            assert!(err.contains("HTTPS only"), "{err}");
            assert!(err.contains("https://"), "{err}");
        }
    }

    #[test]
    fn no_hub_anywhere_says_how_to_give_one() {
        let err = resolve_with(
            &TargetArgs::default(),
            &ConfigFile::default(),
            Path::new("/c.yaml"),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("--hub"), "{err}");
    }

    #[test]
    fn a_saved_file_loads_back_and_is_private() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("sub/config.yaml");
        let original = file();
        original.save(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            ConfigFile::load(&path).map_err(|e| e.to_string()),
            Ok(original)
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.map_err(|e| e.to_string()), Ok(0o600));
    }

    #[test]
    fn a_malformed_file_names_itself() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "contexts: [name: 3, {").unwrap_or_else(|e| panic!("{e}"));
        let err = ConfigFile::load(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("config.yaml is malformed"), "{err}");
    }
}
