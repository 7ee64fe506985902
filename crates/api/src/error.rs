//! Errors of the server itself (start-up, listening), and the HTTP error answers of handlers.

use std::io;
use std::path::PathBuf;

use hyper::StatusCode;

/// Why the daemon could not start or stopped with a failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid host {host:?}: {reason}")]
    InvalidHost { host: String, reason: String },
    #[error("another daemon is already listening on {0}")]
    InUse(PathBuf),
    #[error("listen on {address}: {source}")]
    Listen {
        address: String,
        #[source]
        source: io::Error,
    },
    #[error("open the image store under {path}: {message}")]
    Store { path: PathBuf, message: String },
    #[error(
        "refusing to serve the API on {address} {}: whoever reaches this address gets root on \
         this machine; pass --tlsverify --tlscacert CA.pem --tlscert CERT.pem --tlskey KEY.pem \
         to demand client certificates, or listen on a loopback address or a unix socket",
        if *tls { "with --tls but without --tlsverify" } else { "without TLS" }
    )]
    Insecure { address: String, tls: bool },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("start the async runtime: {0}")]
    Runtime(#[source] io::Error),
    #[error("wait for signals: {0}")]
    Signal(#[source] io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error answer: its status and the message that goes out as `{"message": ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// 304: the container already is in the state asked for; the CLI treats it as success.
    pub fn not_modified() -> ApiError {
        ApiError::new(StatusCode::NOT_MODIFIED, "")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

pub type ApiResult<T> = std::result::Result<T, ApiError>;
