//! TLS of a `tcp://` listener with dockerd's flags, and who may be exposed to the API.
//!
//! `--tls` serves TLS without asking clients for a certificate; `--tlsverify` (any value, as in
//! dockerd) turns TLS on too, and with `true` demands a client certificate signed by
//! `--tlscacert` (mutual TLS). The files default to `ca.pem`, `cert.pem` and `key.pem` in
//! `$DOCKER_CERT_PATH` or `~/.docker`. The API gives root on this machine, so a TCP address
//! other than loopback is refused unless clients are verified, and a loopback one is served
//! with a warning.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{VerifierBuilderError, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};

use crate::listen::Listen;

/// Why the TLS configuration could not be loaded; each names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("read TLS {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: pem::Error,
    },
    #[error("no PEM {what} in {path}")]
    Empty { what: &'static str, path: PathBuf },
    #[error("TLS CA certificate {path}: {source}")]
    Ca {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("verify clients against the CA certificates in {path}: {source}")]
    Verifier {
        path: PathBuf,
        #[source]
        source: VerifierBuilderError,
    },
    #[error("TLS certificate {cert} with key {key}: {source}")]
    Identity {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("TLS protocol versions: {0}")]
    Protocols(#[source] rustls::Error),
}

/// dockerd's TLS flags as given on the command line (`None`: not given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFlags {
    /// `--tls[=BOOL]`
    pub tls: Option<bool>,
    /// `--tlsverify[=BOOL]`
    pub verify: Option<bool>,
    /// `--tlscacert PATH`
    pub ca: Option<PathBuf>,
    /// `--tlscert PATH`
    pub cert: Option<PathBuf>,
    /// `--tlskey PATH`
    pub key: Option<PathBuf>,
}

/// The TLS a TCP listener serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// Demand a client certificate signed by `ca` (mutual TLS).
    pub verify: bool,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFlags {
    /// The TLS these flags ask for, as dockerd reads them: `--tlsverify` given at all turns
    /// TLS on; files not named are looked for in `default_dir`. `None`: plain TCP.
    pub fn resolve(self, default_dir: &Path) -> Option<TlsOptions> {
        if self.verify.is_none() && self.tls != Some(true) {
            return None;
        }
        Some(TlsOptions {
            verify: self.verify == Some(true),
            ca: self.ca.unwrap_or_else(|| default_dir.join("ca.pem")),
            cert: self.cert.unwrap_or_else(|| default_dir.join("cert.pem")),
            key: self.key.unwrap_or_else(|| default_dir.join("key.pem")),
        })
    }
}

/// Where the TLS files are looked for when not named: `$DOCKER_CERT_PATH`, else `~/.docker`.
pub fn default_cert_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DOCKER_CERT_PATH").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    Path::new(&home).join(".docker")
}

/// Who can reach the API on `listen` with `tls`, when that is not only root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exposure {
    /// A unix socket (root and its group), or TCP with verified client certificates.
    Guarded,
    /// TCP on loopback without client verification: every user and process on this machine.
    Local,
    /// TCP on an address other hosts may reach, without client verification.
    Network,
}

impl Exposure {
    pub fn of(listen: &Listen, tls: Option<&TlsOptions>) -> Exposure {
        match listen {
            Listen::Unix(_) => Exposure::Guarded,
            Listen::Tcp(_) if tls.is_some_and(|t| t.verify) => Exposure::Guarded,
            Listen::Tcp(address) if address.ip().to_canonical().is_loopback() => Exposure::Local,
            Listen::Tcp(_) => Exposure::Network,
        }
    }
}

/// The rustls configuration of `options`: its certificate chain and key, and with `verify`
/// a client verifier over the CA certificates.
pub fn server_config(options: &TlsOptions) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Protocols)?;
    let builder = if options.verify {
        let mut roots = RootCertStore::empty();
        for ca in read_certificates(&options.ca, "CA certificate")? {
            roots.add(ca).map_err(|source| TlsError::Ca {
                path: options.ca.clone(),
                source,
            })?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|source| TlsError::Verifier {
                path: options.ca.clone(),
                source,
            })?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let chain = read_certificates(&options.cert, "certificate")?;
    let key = read_key(&options.key)?;
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|source| TlsError::Identity {
            cert: options.cert.clone(),
            key: options.key.clone(),
            source,
        })?;
    Ok(Arc::new(config))
}

fn read_certificates(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read_error = |source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(read_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_error)?;
    if certificates.is_empty() {
        return Err(TlsError::Empty {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certificates)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    const WHAT: &str = "private key";
    PrivateKeyDer::from_pem_file(path).map_err(|source| match source {
        pem::Error::NoItemsFound => TlsError::Empty {
            what: WHAT,
            path: path.to_path_buf(),
        },
        source => TlsError::Read {
            what: WHAT,
            path: path.to_path_buf(),
            source,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(address: &str) -> Listen {
        Listen::Tcp(address.parse().unwrap())
    }

    fn options(verify: bool) -> TlsOptions {
        TlsFlags {
            tls: Some(true),
            verify: Some(verify),
            ..TlsFlags::default()
        }
        .resolve(Path::new("/certs"))
        .unwrap()
    }

    #[test]
    fn flags_resolve_as_dockerd_reads_them() {
        let dir = Path::new("/certs");
        assert_eq!(TlsFlags::default().resolve(dir), None);
        assert_eq!(
            TlsFlags {
                tls: Some(false),
                ..TlsFlags::default()
            }
            .resolve(dir),
            None
        );
        let tls_only = TlsFlags {
            tls: Some(true),
            ..TlsFlags::default()
        }
        .resolve(dir)
        .unwrap();
        assert!(!tls_only.verify);
        assert_eq!(tls_only.ca, dir.join("ca.pem"));
        assert_eq!(tls_only.cert, dir.join("cert.pem"));
        assert_eq!(tls_only.key, dir.join("key.pem"));
        // --tlsverify implies --tls, even against --tls=false.
        let verify = TlsFlags {
            tls: Some(false),
            verify: Some(true),
            cert: Some("/elsewhere/server.pem".into()),
            ..TlsFlags::default()
        }
        .resolve(dir)
        .unwrap();
        assert!(verify.verify);
        assert_eq!(verify.cert, Path::new("/elsewhere/server.pem"));
        assert_eq!(verify.key, dir.join("key.pem"));
        // And --tlsverify=false is TLS without client verification, as in dockerd.
        let unverified = TlsFlags {
            verify: Some(false),
            ..TlsFlags::default()
        }
        .resolve(dir)
        .unwrap();
        assert!(!unverified.verify);
    }

    #[test]
    fn only_verified_clients_may_reach_a_network_address() {
        let unix = Listen::Unix("/run/dock.sock".into());
        assert_eq!(Exposure::of(&unix, None), Exposure::Guarded);
        for address in [
            "0.0.0.0:2375",
            "192.0.2.1:2375",
            "[::]:2375",
            "[2001:db8::1]:2375",
        ] {
            let listen = tcp(address);
            assert_eq!(Exposure::of(&listen, None), Exposure::Network, "{address}");
            assert_eq!(
                Exposure::of(&listen, Some(&options(false))),
                Exposure::Network,
                "{address}"
            );
            assert_eq!(
                Exposure::of(&listen, Some(&options(true))),
                Exposure::Guarded,
                "{address}"
            );
        }
        for address in [
            "127.0.0.1:2375",
            "127.3.2.1:2375",
            "[::1]:2375",
            "[::ffff:127.0.0.1]:2375",
        ] {
            let listen = tcp(address);
            assert_eq!(Exposure::of(&listen, None), Exposure::Local, "{address}");
            assert_eq!(
                Exposure::of(&listen, Some(&options(false))),
                Exposure::Local,
                "{address}"
            );
            assert_eq!(
                Exposure::of(&listen, Some(&options(true))),
                Exposure::Guarded,
                "{address}"
            );
        }
    }

    #[test]
    fn missing_and_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = TlsOptions {
            verify: true,
            ca: dir.path().join("ca.pem"),
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        };
        let err = server_config(&options).unwrap_err().to_string();
        assert!(
            err.contains("CA certificate") && err.contains("ca.pem"),
            "{err}"
        );

        std::fs::write(&options.ca, "not a certificate\n").unwrap();
        let err = server_config(&options).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("no PEM CA certificate in {}", options.ca.display())
        );

        options.verify = false; // the CA is not read then
        let err = server_config(&options).unwrap_err().to_string();
        assert!(err.starts_with("read TLS certificate "), "{err}");
        assert!(err.contains(&options.cert.display().to_string()), "{err}");

        std::fs::write(&options.cert, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
        let err = server_config(&options).unwrap_err().to_string();
        assert!(err.contains(&options.cert.display().to_string()), "{err}");
    }
}
