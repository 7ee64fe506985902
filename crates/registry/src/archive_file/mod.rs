//! Images as tar files: `dock save` and `dock load`.
//!
//! [`save`] writes the layout Docker 25+ writes, which is both a docker-archive and an OCI
//! image layout: `manifest.json` (`Config`, `RepoTags`, `Layers`), `index.json` (one
//! manifest per tag, named by `io.containerd.image.name` and `org.opencontainers.image.ref.name`),
//! `oci-layout`, the legacy `repositories`, and `blobs/sha256/` holding each config, each OCI
//! manifest and each layer's uncompressed tar (named by its diff ID, written once however many
//! images share it). Layers are exactly the tars they were registered from
//! ([`Graph::layer_tar`]), so their digests are the diff IDs the configs name. The metadata
//! goes first and the layers last, base first: a reader that streams (like [`load`]) knows
//! what each layer is when it arrives.
//!
//! [`load`] reads that layout, the one Docker 20.10 wrote (`<id>/layer.tar`, `<id>.json`,
//! `manifest.json`) and OCI image layouts (`index.json`, as skopeo's `oci-archive:` writes),
//! any compression. It streams: the archive's entries are read once, in order; a layer whose
//! place in its image is known when it arrives (the metadata came first) is registered
//! straight from the stream, others wait in unnamed temporary files in the graph directory
//! (gone even after a crash). Nothing is ever written to a path the archive names. Every
//! digest is checked (config = image ID, blob names, OCI descriptors' digests and sizes,
//! diff IDs); a path outside the archive, a duplicate entry, a symlinked blob, a truncated
//! entry, a missing blob or a bad digest fails the whole load, and what the load had already
//! registered is removed again.

mod load;
mod save;

use std::io;

pub use load::{load, messages, LoadEvent, Loaded};
pub use save::{resolve_names, save, SaveEvent, SaveImage};

/// Entries of this size or less are kept in memory while the archive is read.
const SMALL_ENTRY: u64 = 1 << 20;
/// Memory all small entries may take together; beyond it they go to temporary files too.
const MEMORY_BUDGET: u64 = 64 << 20;
/// JSON documents (manifests, configs, indexes) larger than this are refused.
const JSON_LIMIT: u64 = 16 << 20;
/// Progress is reported after each this many bytes of a layer.
const PROGRESS_STEP: u64 = 1 << 20;

const MANIFEST_JSON: &str = "manifest.json";
const INDEX_JSON: &str = "index.json";
const OCI_LAYOUT: &str = "oci-layout";
const REPOSITORIES: &str = "repositories";
const OCI_LAYOUT_CONTENT: &str = r#"{"imageLayoutVersion": "1.0.0"}"#;
/// Annotations of an index entry: the full name (containerd, Docker 25+) and the OCI ref name.
const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("image store: {0}")]
    Graph(#[from] graph::Error),

    #[error(transparent)]
    Tags(#[from] tagstore::Error),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    /// The tar stream itself is broken (bad header, cut short).
    #[error("read the image archive: {source}")]
    Read {
        #[source]
        source: io::Error,
    },

    #[error("write the image archive: {source}")]
    Write {
        #[source]
        source: io::Error,
    },

    #[error("archive entry {path:?}: {reason}")]
    UnsafePath { path: String, reason: String },

    #[error("archive entry {path} appears twice")]
    Duplicate { path: String },

    #[error("archive entry {path} ends after {actual} of its {expected} bytes: the archive is truncated")]
    Truncated {
        path: String,
        expected: u64,
        actual: u64,
    },

    #[error("{path} is a link to {target}: {reason}")]
    Link {
        path: String,
        target: String,
        reason: String,
    },

    #[error("{what} {path} is not in the archive")]
    Missing { what: String, path: String },

    #[error("{path} is not a regular file")]
    NotRegular { path: String },

    #[error("{path} has digest {actual}, expected {expected}")]
    DigestMismatch {
        path: String,
        expected: String,
        actual: String,
    },

    #[error("{path} is {actual} bytes, its descriptor says {expected}")]
    SizeMismatch {
        path: String,
        expected: u64,
        actual: u64,
    },

    #[error("layer {path}: its tar has diff id {actual}, the image config says {expected}")]
    DiffIdMismatch {
        path: String,
        expected: String,
        actual: String,
    },

    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },

    #[error("image config {config} lists {diff_ids} diff ids for {layers} layers")]
    LayerCount {
        config: String,
        layers: usize,
        diff_ids: usize,
    },

    #[error("cannot load {os} image on linux")]
    Os { os: String },

    #[error("{path}: no manifest for {platform} in the index")]
    Platform { path: String, platform: String },

    #[error("{path}: unsupported media type {media_type}")]
    MediaType { path: String, media_type: String },

    #[error("no manifest.json or index.json in the archive: it is not an image archive")]
    NotAnImageArchive,

    #[error("invalid image name {name:?} in the archive: {reason}")]
    Name { name: String, reason: String },

    #[error("no such image: {name}")]
    NoSuchImage { name: String },

    #[error("the config of image {id}: {source}")]
    Config {
        id: String,
        #[source]
        source: Box<crate::PushError>,
    },

    #[error("layer {id}: the store gave {actual} bytes for a tar of {expected}")]
    LayerSize {
        id: String,
        expected: u64,
        actual: u64,
    },
}

pub type Result<T, E = ArchiveError> = std::result::Result<T, E>;

fn io_err(context: impl std::fmt::Display) -> impl FnOnce(io::Error) -> ArchiveError {
    let context = context.to_string();
    move |source| ArchiveError::Io { context, source }
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

fn short(digest: &str) -> String {
    hex_of(digest).chars().take(12).collect()
}

/// `sha256:<64 lowercase hex>`: the only digests a blob path is made from.
fn is_sha256_digest(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(graph::is_full_id)
}

pub(crate) use crate::reference::familiar;

#[cfg(test)]
mod tests;
