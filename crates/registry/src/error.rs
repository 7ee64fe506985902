//! The one error type of the registry crate.

use std::io;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The text is not an image reference by Docker's grammar.
    #[error("invalid reference format: {input:?}: {reason}")]
    InvalidReference { input: String, reason: String },

    /// An unqualified name and no `default-registry`: nothing was contacted.
    #[error(
        "{name:?} names no registry and no default registry is configured: \
         write the registry into the name (localhost:5000/{name}) or set \
         \"default-registry\" in {config}"
    )]
    NoDefaultRegistry { name: String, config: String },

    #[error("invalid registry configuration in {path}: {reason}")]
    InvalidConfig { path: PathBuf, reason: String },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    #[error("{context}: {source}")]
    Json {
        context: String,
        #[source]
        source: serde_json::Error,
    },

    /// Neither HTTPS nor (where allowed) plain HTTP reached the registry.
    #[error("registry {host} is not reachable: {source}")]
    Unreachable {
        host: String,
        #[source]
        source: Box<ureq::Error>,
    },

    /// A request failed below HTTP after the registry had answered before.
    #[error("request to {url} failed: {source}")]
    Http {
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },

    #[error("repository {name} not found: name unknown")]
    NameUnknown { name: String },

    #[error("manifest for {reference} not found")]
    ManifestUnknown { reference: String },

    #[error("blob {digest} not found in {name}")]
    BlobUnknown { name: String, digest: String },

    #[error(
        "unauthorized: authentication required for {host}{detail}: log in with `dock login {host}`"
    )]
    Unauthorized { host: String, detail: String },

    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },

    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },

    #[error(
        "no matching manifest for {wanted} in the manifest list entries of {reference} \
         (it has {available})"
    )]
    PlatformNotFound {
        reference: String,
        wanted: String,
        available: String,
    },

    #[error(
        "{reference} is a Docker image manifest schema 1, which is no longer supported: \
         push it again with a current client"
    )]
    Schema1 { reference: String },

    #[error("unsupported media type {media_type} for {what}")]
    UnsupportedMediaType { what: String, media_type: String },

    #[error("{what}: Content-Type {content_type} does not match mediaType {media_type}")]
    MediaTypeMismatch {
        what: String,
        content_type: String,
        media_type: String,
    },

    #[error("invalid {what}: {reason}")]
    InvalidDocument { what: String, reason: String },

    #[error("invalid platform {input:?}: {reason}")]
    InvalidPlatform { input: String, reason: String },

    /// An error answer of the registry not covered above.
    #[error("{method} {url}: registry answered {status}{detail}")]
    Registry {
        method: String,
        url: String,
        status: u16,
        detail: String,
    },

    #[error("token from {realm}: {reason}")]
    Token { realm: String, reason: String },

    #[error("credentials file {path}: {reason}")]
    Credentials { path: PathBuf, reason: String },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
