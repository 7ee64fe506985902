//! Where the daemon listens: `-H unix:///path`, `-H /path` or `-H tcp://IP:PORT`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl FromStr for Listen {
    type Err = Error;

    fn from_str(host: &str) -> Result<Listen, Error> {
        let invalid = |reason: &str| Error::InvalidHost {
            host: host.to_string(),
            reason: reason.to_string(),
        };
        if let Some(path) = host.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(invalid("a unix socket path must be absolute"));
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        if host.starts_with('/') {
            return Ok(Listen::Unix(PathBuf::from(host)));
        }
        if let Some(address) = host.strip_prefix("tcp://") {
            let address = address.trim_end_matches('/');
            return address
                .parse()
                .map(Listen::Tcp)
                .map_err(|_| invalid("expected tcp://IP:PORT, e.g. tcp://127.0.0.1:2375"));
        }
        Err(invalid("expected unix:///PATH or tcp://IP:PORT"))
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Unix(path) => write!(f, "unix://{}", path.display()),
            Listen::Tcp(address) => write!(f, "tcp://{address}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_unix_and_tcp_hosts() {
        assert_eq!(
            "unix:///run/dock.sock".parse::<Listen>().unwrap(),
            Listen::Unix("/run/dock.sock".into())
        );
        assert_eq!(
            "/tmp/x.sock".parse::<Listen>().unwrap(),
            Listen::Unix("/tmp/x.sock".into())
        );
        assert_eq!(
            "tcp://127.0.0.1:2375".parse::<Listen>().unwrap(),
            Listen::Tcp("127.0.0.1:2375".parse().unwrap())
        );
    }

    #[test]
    fn rejects_bad_hosts_naming_them() {
        for bad in [
            "unix://relative.sock",
            "tcp://localhost",
            "http://x",
            "fd://",
        ] {
            let err = bad.parse::<Listen>().unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }
}
