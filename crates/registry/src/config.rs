//! Registry settings of a dock root: the keys `default-registry`, `registry-mirrors` and
//! `insecure-registries` of `ROOT/config.json`, with the meaning Docker's daemon.json gives the
//! last two. Other keys of the file (network settings) are left to their readers.

use std::fs;
use std::io;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::reference::{validate_host, ParsedName, Reference};

/// The file in a dock root that holds these settings.
pub const CONFIG_FILE: &str = "config.json";
/// Where per-registry CA certificates live: `CERTS_DIR/HOST[:PORT]/ca.crt`.
pub const DEFAULT_CERTS_DIR: &str = "/etc/docker/certs.d";
/// The environment variable that names another `certs.d` directory.
pub const CERTS_DIR_ENV: &str = "DOCK_CERTS_DIR";

#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// `host[:port]` unqualified names go to; none by default.
    pub default_registry: Option<String>,
    /// Mirror base URLs (`https://mirror.example`, `http://127.0.0.1:5001`), tried in order
    /// before the default registry for pulls, as Docker tries its mirrors before Docker Hub.
    pub mirrors: Vec<String>,
    /// `host[:port]` entries allowed plain HTTP.
    pub insecure_hosts: Vec<String>,
    /// CIDR entries: a registry whose address falls inside is allowed plain HTTP.
    pub insecure_cidrs: Vec<IpNet>,
    /// `certs.d` directory with `HOST[:PORT]/ca.crt` files trusted besides the system roots.
    pub certs_dir: PathBuf,
    /// The file the settings came from, for messages.
    pub source: Option<PathBuf>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            default_registry: None,
            mirrors: Vec::new(),
            insecure_hosts: Vec::new(),
            insecure_cidrs: Vec::new(),
            certs_dir: PathBuf::from(DEFAULT_CERTS_DIR),
            source: None,
        }
    }
}

#[derive(Deserialize, Default)]
struct File {
    #[serde(rename = "default-registry")]
    default_registry: Option<String>,
    #[serde(rename = "registry-mirrors", default)]
    registry_mirrors: Vec<String>,
    #[serde(rename = "insecure-registries", default)]
    insecure_registries: Vec<String>,
}

impl RegistryConfig {
    /// Reads `ROOT/config.json`; a missing file is the default configuration.
    /// `$DOCK_CERTS_DIR`, when set, replaces `/etc/docker/certs.d` (tests, unprivileged setups).
    pub fn load(root: &Path) -> Result<RegistryConfig> {
        let mut config = Self::from_file(&root.join(CONFIG_FILE))?;
        if let Some(dir) = std::env::var_os(CERTS_DIR_ENV).filter(|d| !d.is_empty()) {
            config.certs_dir = PathBuf::from(dir);
        }
        Ok(config)
    }

    pub fn from_file(path: &Path) -> Result<RegistryConfig> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(RegistryConfig {
                    source: Some(path.to_path_buf()),
                    ..RegistryConfig::default()
                })
            }
            Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
        };
        let file: File = serde_json::from_slice(&bytes).map_err(|e| Error::Json {
            context: format!("parse {}", path.display()),
            source: e,
        })?;
        let invalid = |reason: String| Error::InvalidConfig {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(d) = &file.default_registry {
            validate_host(d).map_err(|r| invalid(format!("default-registry: {r}")))?;
        }
        let mut mirrors = Vec::new();
        for m in file.registry_mirrors {
            let m = m.trim_end_matches('/').to_string();
            if !(m.starts_with("http://") || m.starts_with("https://")) {
                return Err(invalid(format!(
                    "registry-mirrors: {m:?} must start with http:// or https://"
                )));
            }
            mirrors.push(m);
        }
        let mut insecure_hosts = Vec::new();
        let mut insecure_cidrs = Vec::new();
        for entry in file.insecure_registries {
            let entry = entry
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .trim_end_matches('/');
            if let Ok(net) = entry.parse::<IpNet>() {
                insecure_cidrs.push(net);
            } else {
                validate_host(entry).map_err(|r| invalid(format!("insecure-registries: {r}")))?;
                insecure_hosts.push(entry.to_string());
            }
        }
        Ok(RegistryConfig {
            default_registry: file.default_registry,
            mirrors,
            insecure_hosts,
            insecure_cidrs,
            certs_dir: PathBuf::from(DEFAULT_CERTS_DIR),
            source: Some(path.to_path_buf()),
        })
    }

    /// Parses a user's image name, applying the default registry.
    pub fn reference(&self, name: &str) -> Result<Reference> {
        let config = match &self.source {
            Some(p) => p.display().to_string(),
            None => "the dock root's config.json".to_string(),
        };
        ParsedName::parse(name)?.qualify(self.default_registry.as_deref(), &config)
    }

    /// Whether `host[:port]` may be spoken to in plain HTTP: listed in `insecure-registries`
    /// (by name or by an address inside a listed CIDR), or on loopback (`localhost`,
    /// 127.0.0.0/8, ::1), which Docker treats as insecure by default.
    pub fn is_insecure(&self, host: &str) -> bool {
        if self.insecure_hosts.iter().any(|h| h == host) {
            return true;
        }
        let (name, port) = split_host_port(host);
        if name == "localhost" {
            return true;
        }
        let addrs: Vec<IpAddr> = match name.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            // Only a name that a CIDR entry could match is looked up.
            Err(_) if !self.insecure_cidrs.is_empty() => (name, port.unwrap_or(443))
                .to_socket_addrs()
                .map(|a| a.map(|s| s.ip()).collect())
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        addrs
            .iter()
            .any(|ip| ip.is_loopback() || self.insecure_cidrs.iter().any(|n| n.contains(ip)))
    }

    /// The base URLs to try for pulls from `reference`'s registry: mirrors first when it is the
    /// default registry (or Docker Hub), then none (the registry itself is always last).
    pub fn pull_mirrors(&self, reference: &Reference) -> &[String] {
        let is_default = self.default_registry.as_deref() == Some(reference.registry.as_str())
            || crate::reference::is_docker_hub(&reference.registry);
        if is_default {
            &self.mirrors
        } else {
            &[]
        }
    }

    /// `CERTS_DIR/HOST[:PORT]/ca.crt` when it exists.
    pub fn ca_file(&self, host: &str) -> Option<PathBuf> {
        let path = self.certs_dir.join(host).join("ca.crt");
        path.is_file().then_some(path)
    }
}

/// `host:port` -> (`host`, port); `[v6]:port` -> (`v6`, port).
pub(crate) fn split_host_port(host: &str) -> (&str, Option<u16>) {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some((addr, after)) = rest.split_once(']') {
            return (addr, after.strip_prefix(':').and_then(|p| p.parse().ok()));
        }
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => (name, port.parse().ok()),
        _ => (host, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, json: &str) -> PathBuf {
        let path = dir.join(CONFIG_FILE);
        fs::write(&path, json).unwrap();
        path
    }

    #[test]
    fn missing_file_is_default_without_registry() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = RegistryConfig::load(dir.path()).unwrap();
        assert_eq!(cfg.default_registry, None);
        let err = cfg.reference("busybox").unwrap_err();
        assert!(matches!(err, Error::NoDefaultRegistry { .. }), "{err:?}");
        // The message names the file to edit.
        assert!(err
            .to_string()
            .contains(&dir.path().join(CONFIG_FILE).display().to_string()));
    }

    #[test]
    fn reads_docker_keys_and_ignores_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            r#"{"bridge": "x0", "default-registry": "localhost:5000",
                "registry-mirrors": ["http://127.0.0.1:5001/"],
                "insecure-registries": ["reg.internal:5000", "10.1.0.0/16", "http://other:1"]}"#,
        );
        let cfg = RegistryConfig::from_file(&path).unwrap();
        assert_eq!(cfg.default_registry.as_deref(), Some("localhost:5000"));
        assert_eq!(cfg.mirrors, ["http://127.0.0.1:5001"]);
        assert_eq!(cfg.insecure_hosts, ["reg.internal:5000", "other:1"]);
        assert!(cfg.is_insecure("reg.internal:5000"));
        assert!(cfg.is_insecure("10.1.2.3:5000"));
        assert!(!cfg.is_insecure("10.2.0.1:5000"));
        assert_eq!(
            cfg.reference("busybox").unwrap().to_string(),
            "localhost:5000/library/busybox"
        );
        let r = cfg.reference("busybox").unwrap();
        assert_eq!(cfg.pull_mirrors(&r), ["http://127.0.0.1:5001"]);
        let other = cfg.reference("127.0.0.1:6000/x").unwrap();
        assert!(cfg.pull_mirrors(&other).is_empty());
    }

    #[test]
    fn loopback_is_insecure_by_default_and_nothing_else() {
        let cfg = RegistryConfig::default();
        for host in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.3.4.5",
            "[::1]:5000",
        ] {
            assert!(cfg.is_insecure(host), "{host}");
        }
        for host in ["10.0.0.1:5000", "reg.example", "reg.example:5000"] {
            assert!(!cfg.is_insecure(host), "{host}");
        }
    }

    #[test]
    fn bad_values_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        for json in [
            r#"{"default-registry": "not a host"}"#,
            r#"{"registry-mirrors": ["mirror.example"]}"#,
            r#"{"insecure-registries": ["bad host"]}"#,
        ] {
            let path = write(dir.path(), json);
            let err = RegistryConfig::from_file(&path).unwrap_err();
            assert!(
                matches!(err, Error::InvalidConfig { .. }),
                "{json}: {err:?}"
            );
            assert!(err.to_string().contains(&path.display().to_string()));
        }
        let path = write(dir.path(), "{");
        assert!(matches!(
            RegistryConfig::from_file(&path),
            Err(Error::Json { .. })
        ));
    }

    #[test]
    fn ca_file_under_certs_dir() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = RegistryConfig {
            certs_dir: dir.path().to_path_buf(),
            ..RegistryConfig::default()
        };
        assert_eq!(cfg.ca_file("127.0.0.1:5000"), None);
        fs::create_dir(dir.path().join("127.0.0.1:5000")).unwrap();
        fs::write(dir.path().join("127.0.0.1:5000/ca.crt"), "x").unwrap();
        assert!(cfg.ca_file("127.0.0.1:5000").is_some());
    }
}
