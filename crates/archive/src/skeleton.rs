//! A layer's tar, kept as a skeleton: every byte of the uncompressed stream except the contents
//! of the regular files, which stay where extraction put them. [`rebuild`] puts the two back
//! together into exactly the bytes that were extracted, so a layer's digest (its diff ID) holds
//! for the tar dock pushes or saves, whoever wrote the original (Docker keeps `tar-split` data
//! for the same reason).
//!
//! Format: a sequence of records, each a tag byte then little-endian fields:
//! `R len:u64 bytes` (bytes copied as they are), `F size:u64 path_len:u32 path` (`size` bytes
//! of the file at `path`, relative to the layer directory).

use std::cell::RefCell;
use std::ffi::CStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use sha2::{Digest, Sha256};

use crate::{sys, Error, Result};

const RAW: u8 = b'R';
const FILE: u8 = b'F';
/// Raw bytes are gathered up to this size before a record is written.
const RAW_CHUNK: usize = 64 << 10;

/// The recording side, shared between the reader the tar parser pulls from and the extractor,
/// which announces each regular file's data before reading it.
pub(crate) struct Recorder<'w> {
    out: &'w mut dyn Write,
    hasher: Sha256,
    raw: Vec<u8>,
    /// Bytes still to come that belong to the file announced last.
    elide: u64,
    /// A write to `out` failed; reported when extraction ends.
    failed: Option<io::Error>,
}

impl<'w> Recorder<'w> {
    pub(crate) fn new(out: &'w mut dyn Write) -> Rc<RefCell<Recorder<'w>>> {
        Rc::new(RefCell::new(Recorder {
            out,
            hasher: Sha256::new(),
            raw: Vec::with_capacity(RAW_CHUNK),
            elide: 0,
            failed: None,
        }))
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.failed.is_none() {
            if let Err(err) = self.out.write_all(bytes) {
                self.failed = Some(err);
            }
        }
    }

    fn flush_raw(&mut self) {
        if self.raw.is_empty() {
            return;
        }
        let raw = std::mem::take(&mut self.raw);
        self.write(&[RAW]);
        self.write(&(raw.len() as u64).to_le_bytes());
        self.write(&raw);
        self.raw = raw;
        self.raw.clear();
    }

    /// The next `size` bytes of the stream are the contents of the file at `path`.
    pub(crate) fn file(&mut self, size: u64, path: &[u8]) {
        self.flush_raw();
        self.write(&[FILE]);
        self.write(&size.to_le_bytes());
        self.write(&(path.len() as u32).to_le_bytes());
        self.write(path);
        self.elide = size;
    }

    fn pass(&mut self, mut bytes: &[u8]) {
        self.hasher.update(bytes);
        if self.elide > 0 {
            let skip = bytes
                .len()
                .min(usize::try_from(self.elide).unwrap_or(usize::MAX));
            self.elide -= skip as u64;
            bytes = &bytes[skip..];
        }
        self.raw.extend_from_slice(bytes);
        if self.raw.len() >= RAW_CHUNK {
            self.flush_raw();
        }
    }

    /// Write what is pending; the `sha256:<hex>` digest of everything that passed.
    pub(crate) fn finish(&mut self) -> io::Result<String> {
        self.flush_raw();
        if let Some(err) = self.failed.take() {
            return Err(err);
        }
        self.out.flush()?;
        let digest = std::mem::take(&mut self.hasher).finalize();
        Ok(format!("sha256:{}", hex(&digest)))
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stream the tar parser reads: every byte passes through the recorder.
pub(crate) struct Tee<'w, R> {
    pub(crate) inner: R,
    pub(crate) recorder: Rc<RefCell<Recorder<'w>>>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.recorder.borrow_mut().pass(&buf[..n]);
        Ok(n)
    }
}

/// Write the tar a skeleton was recorded from, reading file contents from `layer` (the
/// directory it was extracted into). Returns the number of bytes written. Paths are walked
/// without following symlinks, so nothing outside `layer` is ever read.
pub fn rebuild(skeleton: impl Read, layer: &Path, mut out: impl Write) -> Result<u64> {
    let mut skeleton = io::BufReader::with_capacity(RAW_CHUNK, skeleton);
    let broken = |reason: String| Error::Read {
        after: None,
        source: io::Error::new(
            io::ErrorKind::InvalidData,
            format!("layer skeleton of {}: {reason}", layer.display()),
        ),
    };
    let out_err = |source| Error::Io {
        path: layer.to_path_buf(),
        source,
    };
    let root: OwnedFd = File::open(layer)
        .map_err(|source| Error::Io {
            path: layer.to_path_buf(),
            source,
        })?
        .into();
    let mut buf = vec![0u8; 1 << 20];
    let mut written = 0u64;
    loop {
        let mut tag = [0u8; 1];
        match skeleton.read(&mut tag) {
            Ok(0) => break,
            Ok(_) => {}
            Err(err) => return Err(broken(err.to_string())),
        }
        let size = read_u64(&mut skeleton).map_err(|e| broken(e.to_string()))?;
        match tag[0] {
            RAW => {
                let copied = io::copy(&mut (&mut skeleton).take(size), &mut out)
                    .map_err(|e| broken(e.to_string()))?;
                if copied != size {
                    return Err(broken("ends inside a record".into()));
                }
            }
            FILE => {
                let mut len = [0u8; 4];
                skeleton
                    .read_exact(&mut len)
                    .map_err(|e| broken(e.to_string()))?;
                let mut path = vec![0u8; u32::from_le_bytes(len) as usize];
                skeleton
                    .read_exact(&mut path)
                    .map_err(|e| broken(e.to_string()))?;
                if size > 0 {
                    let file = open_beneath(&root, &path).map_err(|source| Error::Entry {
                        entry: String::from_utf8_lossy(&path).into_owned(),
                        source,
                    })?;
                    copy_exactly(file, size, &mut out, &mut buf).map_err(|source| {
                        Error::Entry {
                            entry: String::from_utf8_lossy(&path).into_owned(),
                            source,
                        }
                    })?;
                }
            }
            other => return Err(broken(format!("unknown record {other:#04x}"))),
        }
        written += size;
    }
    out.flush().map_err(out_err)?;
    Ok(written)
}

/// The size of the tar [`rebuild`] writes from `skeleton`, read from the skeleton alone (no
/// file of the layer is touched).
pub fn rebuilt_size(skeleton: impl Read) -> Result<u64> {
    let mut skeleton = io::BufReader::with_capacity(RAW_CHUNK, skeleton);
    let broken = |reason: String| Error::Read {
        after: None,
        source: io::Error::new(
            io::ErrorKind::InvalidData,
            format!("layer skeleton: {reason}"),
        ),
    };
    let mut total = 0u64;
    loop {
        let mut tag = [0u8; 1];
        match skeleton.read(&mut tag) {
            Ok(0) => break,
            Ok(_) => {}
            Err(err) => return Err(broken(err.to_string())),
        }
        let size = read_u64(&mut skeleton).map_err(|e| broken(e.to_string()))?;
        let skip = match tag[0] {
            RAW => size,
            FILE => {
                let mut len = [0u8; 4];
                skeleton
                    .read_exact(&mut len)
                    .map_err(|e| broken(e.to_string()))?;
                u64::from(u32::from_le_bytes(len))
            }
            other => return Err(broken(format!("unknown record {other:#04x}"))),
        };
        let skipped = io::copy(&mut (&mut skeleton).take(skip), &mut io::sink())
            .map_err(|e| broken(e.to_string()))?;
        if skipped != skip {
            return Err(broken("ends inside a record".into()));
        }
        total += size;
    }
    Ok(total)
}

fn read_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut bytes = [0u8; 8];
    r.read_exact(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

/// Open the regular file `path` (slash-separated, relative) below `root`, no symlink followed.
fn open_beneath(root: &OwnedFd, path: &[u8]) -> io::Result<File> {
    let comps: Vec<&[u8]> = path
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    let Some((last, parents)) = comps.split_last() else {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "empty path"));
    };
    if comps.contains(&&b".."[..]) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "path contains `..`",
        ));
    }
    let mut dir: Option<OwnedFd> = None;
    for comp in parents {
        let name = sys::cstring(comp)?;
        let parent = dir.as_ref().unwrap_or(root).as_fd();
        dir = Some(sys::open_dir_at(parent, &name)?);
    }
    let name = sys::cstring(last)?;
    let parent = dir.as_ref().unwrap_or(root).as_fd();
    let fd = sys::openat(
        parent,
        name.as_c_str() as &CStr,
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK,
        0,
    )?;
    let file = File::from(fd);
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no longer a regular file",
        ));
    }
    Ok(file)
}

fn copy_exactly(mut file: File, size: u64, out: &mut impl Write, buf: &mut [u8]) -> io::Result<()> {
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("file is {} bytes shorter than when it was extracted", left),
            ));
        }
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}
