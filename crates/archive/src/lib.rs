//! Tar streams in and out of directories.
//!
//! Interim minimal implementation: the archive work replaces the body of every
//! function here while keeping these signatures.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Compression of a tar stream, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

/// What an extraction wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExtractStats {
    /// Sum of regular file sizes written.
    pub bytes: u64,
    /// Number of entries written.
    pub entries: u64,
}

/// Extract a tar stream (any supported compression) into `dest`, an existing directory.
pub fn extract(reader: impl Read, dest: &Path) -> Result<ExtractStats> {
    let io_err = |source| Error::Io { path: dest.to_path_buf(), source };
    let mut buffered = BufReader::new(reader);
    if buffered.fill_buf().map_err(io_err)?.is_empty() {
        return Ok(ExtractStats::default());
    }
    let mut ar = tar::Archive::new(buffered);
    ar.set_preserve_permissions(true);
    ar.unpack(dest).map_err(io_err)?;
    Ok(ExtractStats::default())
}

/// Write the directory `src` as a tar stream, whiteouts converted to the `.wh.` form.
pub fn tar_dir(src: &Path, out: impl Write, _compression: Compression) -> Result<()> {
    let io_err = |source| Error::Io { path: src.to_path_buf(), source };
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    b.append_dir_all(".", src).map_err(io_err)?;
    b.into_inner().map_err(io_err)?;
    Ok(())
}
