//! Writing a directory as a tar stream, overlay whiteouts converted to the tar `.wh.` form.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use tar::{EntryType, Header};

use crate::compression::{Compression, Encoder};
use crate::{sys, whiteout, Error, Result};

/// Write the directory `src` as a tar stream in sorted order (names sorted byte-wise within
/// each directory, parents before children), optionally compressed.
///
/// Kept: regular files, directories, symlinks, hard links (as tar hard links), devices, fifos,
/// mode bits, owners, mtimes (whole seconds) and xattrs (PAX `SCHILY.xattr.*`). Overlay
/// whiteouts (0/0 character devices) become empty `.wh.NAME` files with mode 0600, an opaque
/// directory gets an extra `.wh..wh..opq` entry, and no `trusted.overlay.*` xattr is written.
/// Sockets cannot be archived and are skipped.
pub fn tar_dir(src: &Path, out: impl Write, compression: Compression) -> Result<()> {
    tar_tree(src, out, compression, b"./", b"")
}

/// [`tar_dir`] with every entry under `name/` (the directory itself as `name/`, its contents as
/// `name/...`), as `docker cp` archives a directory under the name it is copied as. `name` is
/// one path component (or `.`).
pub fn tar_dir_as(
    src: &Path,
    out: impl Write,
    compression: Compression,
    name: &[u8],
) -> Result<()> {
    let mut root = name.to_vec();
    root.push(b'/');
    tar_tree(src, out, compression, &root, &root)
}

/// The walk of [`tar_dir`]: the root directory's entry is named `root_name`, its contents are
/// named `prefix` + their relative path.
fn tar_tree(
    src: &Path,
    out: impl Write,
    compression: Compression,
    root_name: &[u8],
    prefix: &[u8],
) -> Result<()> {
    let io_err = |source| Error::Io {
        path: src.to_path_buf(),
        source,
    };
    let root: OwnedFd = File::open(src).map_err(io_err)?.into();
    tracing::debug!(src = %src.display(), ?compression, "archiving directory");
    let encoder = Encoder::new(out, compression).map_err(io_err)?;
    let mut writer = TarWriter {
        builder: tar::Builder::new(BufWriter::with_capacity(1 << 20, encoder)),
        hard_links: HashMap::new(),
        src,
    };
    let st = sys::fstat(root.as_fd()).map_err(io_err)?;
    writer.directory(root.as_fd(), &st, root_name)?;
    writer.walk(root.as_fd(), prefix)?;
    let buffered = writer.builder.into_inner().map_err(io_err)?;
    let encoder = buffered
        .into_inner()
        .map_err(|err| io_err(err.into_error()))?;
    encoder.finish().map_err(io_err)?;
    Ok(())
}

struct TarWriter<'a, W: Write> {
    builder: tar::Builder<W>,
    /// (device, inode) of files with more than one link -> the archive path written first.
    hard_links: HashMap<(u64, u64), Vec<u8>>,
    src: &'a Path,
}

fn header(st: &libc::stat, kind: EntryType) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(st.st_mode & 0o7777);
    header.set_uid(u64::from(st.st_uid));
    header.set_gid(u64::from(st.st_gid));
    header.set_mtime(st.st_mtime.max(0) as u64);
    header.set_size(0);
    header
}

/// One PAX record: `<length> <key>=<value>\n`, where the length counts the whole record.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// A reader that yields exactly `remaining` bytes or fails: a file that shrinks while it is
/// archived must not produce a corrupt stream.
struct Exact<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while it was archived",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

impl<W: Write> TarWriter<'_, W> {
    fn io_err(&self, rel: &[u8]) -> impl Fn(io::Error) -> Error + '_ {
        let path = self.src.join(OsStr::from_bytes(rel));
        move |source| Error::Io {
            path: path.clone(),
            source,
        }
    }

    /// A PAX extended header carrying `xattrs` for the entry that follows it.
    fn append_pax(&mut self, path: &[u8], xattrs: &[(CString, Vec<u8>)]) -> Result<()> {
        if xattrs.is_empty() {
            return Ok(());
        }
        let mut records = Vec::new();
        for (name, value) in xattrs {
            pax_record(
                &mut records,
                &[b"SCHILY.xattr.", name.to_bytes()].concat(),
                value,
            );
        }
        let mut pax = Header::new_ustar();
        pax.set_entry_type(EntryType::XHeader);
        pax.set_path("././@PaxHeader").expect("short ascii path");
        pax.set_mode(0o644);
        pax.set_size(records.len() as u64);
        pax.set_cksum();
        self.builder
            .append(&pax, records.as_slice())
            .map_err(self.io_err(path))
    }

    fn append(
        &mut self,
        mut header: Header,
        path: &[u8],
        xattrs: &[(CString, Vec<u8>)],
        data: impl Read,
    ) -> Result<()> {
        self.append_pax(path, xattrs)?;
        let result = match header.entry_type() {
            EntryType::Link | EntryType::Symlink => {
                unreachable!("links are appended by append_link")
            }
            _ => self
                .builder
                .append_data(&mut header, Path::new(OsStr::from_bytes(path)), data),
        };
        result.map_err(self.io_err(path))
    }

    /// Xattrs worth archiving, sorted by name; overlay's own are internal to the mount.
    fn keep_xattrs(
        &self,
        names: Vec<CString>,
        get: impl Fn(&CString) -> io::Result<Vec<u8>>,
        rel: &[u8],
    ) -> Result<Vec<(CString, Vec<u8>)>> {
        let mut names: Vec<CString> = names
            .into_iter()
            .filter(|name| !name.to_bytes().starts_with(whiteout::OVERLAY_XATTR_PREFIX))
            .collect();
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            match get(&name) {
                Ok(value) => out.push((name, value)),
                // Removed between list and get.
                Err(err) if err.raw_os_error() == Some(libc::ENODATA) => {}
                Err(err) => return Err(self.io_err(rel)(err)),
            }
        }
        Ok(out)
    }

    fn fd_xattrs(&self, fd: BorrowedFd<'_>, rel: &[u8]) -> Result<Vec<(CString, Vec<u8>)>> {
        let names = sys::flistxattr(fd).map_err(self.io_err(rel))?;
        self.keep_xattrs(names, |name| sys::fgetxattr(fd, name), rel)
    }

    fn name_xattrs(
        &self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        rel: &[u8],
    ) -> Result<Vec<(CString, Vec<u8>)>> {
        let path = sys::proc_path(dir, name).map_err(self.io_err(rel))?;
        let names = sys::llistxattr(&path).map_err(self.io_err(rel))?;
        self.keep_xattrs(names, |xattr| sys::lgetxattr(&path, xattr), rel)
    }

    /// The entry of the directory open as `fd`, plus the opaque marker when it is opaque.
    fn directory(&mut self, fd: BorrowedFd<'_>, st: &libc::stat, path: &[u8]) -> Result<()> {
        let opaque = match sys::fgetxattr(fd, whiteout::OPAQUE_XATTR) {
            Ok(value) => value == b"y",
            Err(err) if matches!(err.raw_os_error(), Some(libc::ENODATA | libc::ENOTSUP)) => false,
            Err(err) => return Err(self.io_err(path)(err)),
        };
        let xattrs = self.fd_xattrs(fd, path)?;
        self.append(header(st, EntryType::Directory), path, &xattrs, io::empty())?;
        if opaque {
            let mut marker = path.to_vec();
            marker.extend_from_slice(whiteout::OPAQUE_MARKER);
            let mut header = header(st, EntryType::Regular);
            header.set_mode(st.st_mode & 0o777);
            self.append(header, &marker, &[], io::empty())?;
        }
        Ok(())
    }

    /// Archive the contents of the directory open as `dir`, whose archive path is `prefix`
    /// (empty or ending in `/`).
    fn walk(&mut self, dir: BorrowedFd<'_>, prefix: &[u8]) -> Result<()> {
        let mut names = sys::read_dir_names(dir).map_err(self.io_err(prefix))?;
        names.sort();
        for name in names {
            let mut rel = prefix.to_vec();
            rel.extend_from_slice(&name);
            let cname = sys::cstring(&name).map_err(self.io_err(&rel))?;
            let st = match sys::lstatat(dir, &cname) {
                Ok(st) => st,
                // Removed while we were archiving (a running container).
                Err(err) if err.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(err) => return Err(self.io_err(&rel)(err)),
            };
            if sys::is_whiteout(&st) {
                let path = [prefix, &whiteout::tar_name(&name)].concat();
                let mut header = header(&st, EntryType::Regular);
                header.set_mode(0o600);
                self.append(header, &path, &[], io::empty())?;
                continue;
            }
            let file_type = sys::file_type(&st);
            if file_type != libc::S_IFDIR && st.st_nlink > 1 {
                let key = (st.st_dev, st.st_ino);
                if let Some(first) = self.hard_links.get(&key).cloned() {
                    let mut header = header(&st, EntryType::Link);
                    let (path, target) = (
                        Path::new(OsStr::from_bytes(&rel)),
                        Path::new(OsStr::from_bytes(&first)),
                    );
                    self.builder
                        .append_link(&mut header, path, target)
                        .map_err(self.io_err(&rel))?;
                    continue;
                }
                self.hard_links.insert(key, rel.clone());
            }
            match file_type {
                libc::S_IFDIR => {
                    let sub = sys::open_dir_at(dir, &cname).map_err(self.io_err(&rel))?;
                    rel.push(b'/');
                    self.directory(sub.as_fd(), &st, &rel)?;
                    self.walk(sub.as_fd(), &rel)?;
                }
                libc::S_IFREG => {
                    let flags =
                        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK;
                    let file = match sys::openat(dir, &cname, flags, 0) {
                        Ok(fd) => File::from(fd),
                        // Removed while we were archiving (a running container).
                        Err(err) if err.raw_os_error() == Some(libc::ENOENT) => continue,
                        Err(err) => return Err(self.io_err(&rel)(err)),
                    };
                    let st = sys::fstat(file.as_fd()).map_err(self.io_err(&rel))?;
                    let xattrs = self.fd_xattrs(file.as_fd(), &rel)?;
                    let mut header = header(&st, EntryType::Regular);
                    header.set_size(st.st_size as u64);
                    self.append(
                        header,
                        &rel,
                        &xattrs,
                        Exact {
                            inner: file,
                            remaining: st.st_size as u64,
                        },
                    )?;
                }
                libc::S_IFLNK => {
                    let target = sys::readlinkat(dir, &cname).map_err(self.io_err(&rel))?;
                    let xattrs = self.name_xattrs(dir, &name, &rel)?;
                    self.append_pax(&rel, &xattrs)?;
                    let mut header = header(&st, EntryType::Symlink);
                    let (path, target) = (
                        Path::new(OsStr::from_bytes(&rel)),
                        Path::new(OsStr::from_bytes(&target)),
                    );
                    self.builder
                        .append_link(&mut header, path, target)
                        .map_err(self.io_err(&rel))?;
                }
                libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
                    let kind = match file_type {
                        libc::S_IFCHR => EntryType::Char,
                        libc::S_IFBLK => EntryType::Block,
                        _ => EntryType::Fifo,
                    };
                    let mut header = header(&st, kind);
                    if kind != EntryType::Fifo {
                        header
                            .set_device_major(libc::major(st.st_rdev))
                            .map_err(self.io_err(&rel))?;
                        header
                            .set_device_minor(libc::minor(st.st_rdev))
                            .map_err(self.io_err(&rel))?;
                    }
                    let xattrs = self.name_xattrs(dir, &name, &rel)?;
                    self.append(header, &rel, &xattrs, io::empty())?;
                }
                _ => {
                    tracing::debug!(path = %self.src.join(OsStr::from_bytes(&rel)).display(), "skipping socket")
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        let mut out = Vec::new();
        pax_record(&mut out, b"SCHILY.xattr.user.a", b"1");
        assert_eq!(out, b"25 SCHILY.xattr.user.a=1\n");
        assert_eq!(out.len(), 25);
        // Crossing a power of ten: the length field grows by one digit.
        let mut out = Vec::new();
        pax_record(&mut out, b"k", &[b'v'; 94]);
        assert_eq!(&out[..4], b"101 ");
        assert_eq!(out.len(), 101);
    }
}
