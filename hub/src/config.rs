//! The hub's optional config file, `hub.toml` in its data directory: what the command line
//! does not say. Today one section, `[export]`: who made the data and what it is
//! ([`aloft_dataset::Metadata`]), written into every export's metadata.
//!
//! Invariants: a missing file is the defaults; a file that does not parse, or names a key
//! the hub does not know, stops the hub at start with the file, line and key named (never
//! silently ignored, so a misspelt licence never ships in an export).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The config file's name in the data directory.
pub const CONFIG_FILE: &str = "hub.toml";

/// The hub's config file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// Metadata of every export (title, institution, PI, project, platform, licence,
    /// pilot, glider).
    pub export: aloft_dataset::Metadata,
}

/// Why the config file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file exists and cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, or not the hub's config.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What and where (line, column, key).
        #[source]
        source: Box<toml::de::Error>,
    },
}

impl HubConfig {
    /// Reads `DATA/hub.toml`; the defaults when there is none.
    pub fn load(data_dir: &Path) -> Result<HubConfig, ConfigError> {
        let path = data_dir.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HubConfig::default()),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        HubConfig::parse(&text).map_err(|source| ConfigError::Parse {
            path,
            source: Box::new(source),
        })
    }

    /// Parses a config file's text.
    pub fn parse(text: &str) -> Result<HubConfig, toml::de::Error> {
        toml::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_export_section_sets_metadata_and_a_wrong_key_is_named() {
        let config = HubConfig::parse(
            "[export]\ntitle = \"Wave flight\"\ninstitution = \"Example University\"\nlicense = \"CC0-1.0\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.export.title, "Wave flight");
        assert_eq!(config.export.license, "CC0-1.0");
        assert_eq!(
            config.export.project,
            aloft_dataset::Metadata::default().project
        );
        let e = HubConfig::parse("[export]\nlicence = \"CC0-1.0\"\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("licence") && e.contains("line 2"), "{e}");
        assert_eq!(HubConfig::parse("").ok(), Some(HubConfig::default()));
    }

    #[test]
    fn a_missing_file_is_the_defaults() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(HubConfig::load(dir.path()).ok(), Some(HubConfig::default()));
    }
}
