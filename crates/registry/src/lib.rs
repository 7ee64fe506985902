//! The registry v2 / OCI distribution client: image references, the registry settings of a
//! dock root, manifests and blobs over HTTP(S) with Basic and Bearer auth, pushes, and the
//! Docker client's credentials file. Synchronous, on `ureq`.
//!
//! Digests are always over the exact bytes received: every manifest and config is kept as raw
//! bytes next to its parsed form.

pub mod archive_file;
mod client;
pub mod config;
pub mod credentials;
pub mod digest;
mod error;
pub mod media;
pub mod platform;
mod pull;
mod push;
pub mod push_image;
pub mod reference;
pub mod store;

pub use client::Client;
pub use config::RegistryConfig;
pub use credentials::{Credentials, Login};
pub use digest::{chain_id, chain_ids, uncompressed, HashingReader, LayerCompression};
pub use error::{Error, Result};
pub use platform::Platform;
pub use pull::{into_error, BlobReader, LayerReader, RawManifest, ResolvedImage};
pub use push::{Mount, PushedBlob};
pub use push_image::{push_image, LayerEvent, LayerStatus, PushError, Pushed};
pub use reference::{ParsedName, Reference};
