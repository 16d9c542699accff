//! Server configuration: an optional TOML file, overridden by environment variables and flags.
//!
//! Precedence, highest first: command-line flag, environment variable (`CITYGRID_*`),
//! the `--config` file, built-in default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "citygrid-data";
/// Default listen address: loopback only; put a reverse proxy in front for the LAN.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// What a configuration file may hold. Every key is optional.
///
/// ```toml
/// bind = "0.0.0.0:8080"
/// data = "/var/lib/citygrid"
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub bind: Option<String>,
    pub data: Option<PathBuf>,
}

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("bad listen address {value:?}: {message} (expected e.g. 127.0.0.1:8080)")]
    Bind { value: String, message: String },
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string() })
    }
}

/// The resolved settings the server runs with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    pub data: PathBuf,
}

impl ServerConfig {
    /// Resolves flag/env values (already merged by the CLI parser) over the file and defaults.
    pub fn resolve(bind: Option<String>, data: Option<PathBuf>, file: Option<FileConfig>) -> Result<ServerConfig, ConfigError> {
        let file = file.unwrap_or_default();
        let bind_text = bind.or(file.bind).unwrap_or_else(|| DEFAULT_BIND.to_owned());
        let bind = bind_text
            .parse()
            .map_err(|e: std::net::AddrParseError| ConfigError::Bind { value: bind_text.clone(), message: e.to_string() })?;
        let data = data.or(file.data).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        Ok(ServerConfig { bind, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_file_overrides_defaults() {
        let file = FileConfig { bind: Some("0.0.0.0:9000".into()), data: Some("/srv/city".into()) };
        let c = ServerConfig::resolve(None, None, Some(file)).unwrap();
        assert_eq!(c.bind.to_string(), "0.0.0.0:9000");
        assert_eq!(c.data, PathBuf::from("/srv/city"));
        let file = FileConfig { bind: Some("0.0.0.0:9000".into()), data: None };
        let c = ServerConfig::resolve(Some("127.0.0.1:1234".into()), None, Some(file)).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:1234");
        assert_eq!(c.data, PathBuf::from(DEFAULT_DATA_DIR));
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        let e = ServerConfig::resolve(Some("localhost".into()), None, None).unwrap_err();
        assert!(e.to_string().contains("127.0.0.1:8080"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "bnid = \"x\"\n").unwrap();
        let e = FileConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("c.toml") && e.contains("bnid"), "{e}");
    }
}
