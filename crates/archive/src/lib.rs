//! Tar streams in and out of directories.
//!
//! - [`extract`]: any supported compression (detected from the first bytes), safe by
//!   construction (nothing is created, followed, chmod-ed or chown-ed outside the destination),
//!   tar whiteouts converted to overlay whiteouts. The rules: a leading `/` is dropped; a name
//!   with a `..` component is refused; a symlink is never followed, so a path component that
//!   is a symlink is refused while an entry landing on an existing symlink replaces it; a hard
//!   link must name an entry already extracted, reached the same way. A refused or broken
//!   archive is an error naming the entry, and everything the call added to the destination
//!   is removed again.
//! - [`tar_dir`]: the way back, overlay whiteouts converted to the tar `.wh.` form.
//! - [`changes`]: what an overlay upper directory changed against its lower layers, as
//!   `docker diff` shows it.

use std::io;
use std::path::PathBuf;

mod changes;
mod compression;
mod create;
mod extract;
mod skeleton;
mod sys;
pub mod whiteout;

pub use changes::{changes, Change, ChangeKind};
pub use compression::{decompressed, detect, Compression};
pub use create::{tar_dir, tar_dir_as};
pub use extract::{extract, extract_recorded, Recorded};
pub use skeleton::{rebuild, rebuilt_size};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The stream itself is broken: bad compression, bad header checksum, truncated.
    #[error("read archive{}: {source}", after.as_ref().map(|entry| format!(" after entry {entry}")).unwrap_or_default())]
    Read {
        /// The last entry read completely.
        after: Option<String>,
        #[source]
        source: io::Error,
    },
    /// The entry is refused: it would reach outside the destination, or cannot be represented.
    #[error("archive entry {entry}: {reason}")]
    Refused { entry: String, reason: String },
    /// Writing the entry failed.
    #[error("archive entry {entry}: {source}")]
    Entry {
        entry: String,
        #[source]
        source: io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What an extraction wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExtractStats {
    /// Sum of regular file sizes written.
    pub bytes: u64,
    /// Number of entries written (whiteouts included).
    pub entries: u64,
}
