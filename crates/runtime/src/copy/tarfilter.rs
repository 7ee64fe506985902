//! Tar streams of one path (the daemon's `GET .../archive`) and the rewriting pass every copy
//! goes through before extraction: renaming the first element, owners, and docker's
//! directory/non-directory overwrite rule.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use tar::{EntryType, Header};

use super::paths;
use super::Error;

/// `/proc/self/fd/N`: a path that reopens what `fd` refers to, never a lookup by name.
pub fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: a zeroed stat is a valid out-parameter for fstat on a valid fd.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes into `st` only.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// The target of the symlink open (`O_PATH | O_NOFOLLOW`) as `fd`.
pub(crate) fn readlink_fd(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: readlinkat with an empty name reads the link `fd` itself refers to.
    let n = unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// Writes the entry open (`O_PATH | O_NOFOLLOW`) as `fd` as a tar stream under `name`: a
/// directory with everything below it (never following a symlink), or one file, symlink,
/// device or fifo.
pub fn archive_fd(fd: BorrowedFd<'_>, name: &str, mut out: impl Write) -> Result<(), Error> {
    let path = fd_path(fd);
    let io_err = |source| Error::Io {
        path: name.to_string(),
        source,
    };
    let st = fstat(fd).map_err(io_err)?;
    let kind = st.st_mode & libc::S_IFMT;
    if kind == libc::S_IFDIR && name == "." {
        // `PATH/.`: entries as `./...`, which the tar crate's setters cannot write.
        let (reader, mut writer) = io::pipe().map_err(io_err)?;
        return std::thread::scope(|scope| {
            let tarring = scope.spawn(move || {
                let result = archive::tar_dir(&path, &mut writer, archive::Compression::None);
                drop(writer);
                result
            });
            let prefixed = rewrite(reader, &mut out, &Rewrite {
                prefix_dot: true,
                ..Rewrite::default()
            });
            tarring.join().map_err(|_| io_err(io::Error::other("archiving panicked")))??;
            prefixed
        });
    }
    if kind == libc::S_IFDIR {
        archive::tar_dir_as(&path, out, archive::Compression::None, name.as_bytes())?;
        return Ok(());
    }
    let mut header = Header::new_gnu();
    header.set_mode(st.st_mode & 0o7777);
    header.set_uid(u64::from(st.st_uid));
    header.set_gid(u64::from(st.st_gid));
    header.set_mtime(st.st_mtime.max(0) as u64);
    header.set_size(0);
    let mut builder = tar::Builder::new(&mut out);
    match kind {
        libc::S_IFREG => {
            let file = File::open(&path).map_err(io_err)?;
            let st = fstat(file.as_fd()).map_err(io_err)?;
            header.set_entry_type(EntryType::Regular);
            header.set_size(st.st_size as u64);
            builder
                .append_data(&mut header, name, file.take(st.st_size as u64))
                .map_err(io_err)?;
        }
        libc::S_IFLNK => {
            let target = readlink_fd(fd).map_err(io_err)?;
            header.set_entry_type(EntryType::Symlink);
            builder
                .append_link(&mut header, name, std::ffi::OsStr::from_bytes(&target))
                .map_err(io_err)?;
        }
        libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
            header.set_entry_type(match kind {
                libc::S_IFCHR => EntryType::Char,
                libc::S_IFBLK => EntryType::Block,
                _ => EntryType::Fifo,
            });
            if kind != libc::S_IFIFO {
                header
                    .set_device_major(libc::major(st.st_rdev))
                    .map_err(io_err)?;
                header
                    .set_device_minor(libc::minor(st.st_rdev))
                    .map_err(io_err)?;
            }
            builder
                .append_data(&mut header, name, io::empty())
                .map_err(io_err)?;
        }
        _ => {
            return Err(io_err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a socket cannot be archived",
            )))
        }
    }
    builder.finish().map_err(io_err)?;
    drop(builder);
    out.flush().map_err(io_err)
}

/// How [`rewrite`] changes each entry.
#[derive(Default)]
pub struct Rewrite<'a> {
    /// The first path element `.0` becomes `.1` (moby's `RebaseArchiveEntries`).
    pub rebase: Option<(String, String)>,
    /// Refuse to replace a directory of this destination with a non-directory or the other
    /// way round; `.1` is how the destination is named in messages.
    pub no_overwrite_dir_non_dir: Option<(BorrowedFd<'a>, String)>,
    /// Owner every entry gets; `None` keeps the archive's.
    pub owner: Option<(u64, u64)>,
    /// Names (and hard link targets) start with `./`, the archive of `PATH/.`.
    pub prefix_dot: bool,
}

fn dot_prefixed(name: &[u8]) -> Vec<u8> {
    if name.starts_with(b"./") {
        name.to_vec()
    } else {
        [b"./", name].concat()
    }
}

fn rebase_bytes(name: &[u8], from: &str, to: &str) -> Vec<u8> {
    match std::str::from_utf8(name) {
        Ok(text) => paths::rebase_entry(text, from, to).into_bytes(),
        Err(_) => name.to_vec(),
    }
}

/// The entry's name relative to the extraction directory: no leading `/` or `./`, no trailing `/`.
fn relative(name: &[u8]) -> String {
    let text = String::from_utf8_lossy(name);
    let cleaned = paths::clean(&format!("/{text}"));
    cleaned.trim_start_matches('/').to_string()
}

/// Copies the tar stream `input` to `output` entry by entry, changed as `how` says. Whiteout
/// names (`.wh.*`) are refused: extraction would turn them into overlay whiteouts.
pub fn rewrite(input: impl Read, output: impl Write, how: &Rewrite<'_>) -> Result<(), Error> {
    let tar_err = Error::Tar;
    let mut archive = tar::Archive::new(input);
    let mut builder = tar::Builder::new(output);
    for entry in archive.entries().map_err(tar_err)? {
        let mut entry = entry.map_err(tar_err)?;
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader) {
            continue;
        }
        let mut name = entry.path_bytes().into_owned();
        let mut link = entry.link_name_bytes().map(|l| l.into_owned());
        let xattrs: Vec<(String, Vec<u8>)> = match entry.pax_extensions().map_err(tar_err)? {
            Some(pax) => pax
                .filter_map(Result::ok)
                .filter_map(|ext| {
                    let key = ext.key().ok()?;
                    key.starts_with("SCHILY.xattr.")
                        .then(|| (key.to_string(), ext.value_bytes().to_vec()))
                })
                .collect(),
            None => Vec::new(),
        };
        let rel = relative(&name);
        if paths::base(&rel).starts_with(".wh.") {
            return Err(Error::Whiteout {
                entry: String::from_utf8_lossy(&name).into_owned(),
            });
        }
        if let Some((from, to)) = &how.rebase {
            name = rebase_bytes(&name, from, to);
            if kind == EntryType::Link {
                link = link.map(|l| rebase_bytes(&l, from, to));
            }
        }
        if how.prefix_dot {
            name = dot_prefixed(&name);
            if kind == EntryType::Link {
                link = link.map(|l| dot_prefixed(&l));
            }
        }
        let mut header = entry.header().clone();
        if let Some((dir, shown)) = &how.no_overwrite_dir_non_dir {
            check_overwrite(*dir, shown, &relative(&name), kind == EntryType::Directory)?;
        }
        if let Some((uid, gid)) = how.owner {
            header.set_uid(uid);
            header.set_gid(gid);
        }
        if !xattrs.is_empty() {
            builder
                .append_pax_extensions(xattrs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(Error::Tar)?;
        }
        let link = match kind {
            EntryType::Link | EntryType::Symlink => link,
            _ => None,
        };
        append_raw(&mut builder, &header, &name, link.as_deref(), &mut entry).map_err(Error::Tar)?;
    }
    builder.finish().map_err(Error::Tar)?;
    let mut output = builder.into_inner().map_err(Error::Tar)?;
    output.flush().map_err(Error::Tar)
}

/// Appends an entry named exactly `name` (the tar crate's own path setters drop a leading
/// `./`, which docker's rebasing of `PATH/.` archives relies on): a fresh GNU header with
/// `like`'s metadata, GNU long-name entries for names over 100 bytes.
fn append_raw<W: Write>(
    builder: &mut tar::Builder<W>,
    like: &Header,
    name: &[u8],
    link: Option<&[u8]>,
    data: impl Read,
) -> io::Result<()> {
    let mut header = Header::new_gnu();
    header.set_entry_type(like.entry_type());
    header.set_mode(like.mode()?);
    header.set_uid(like.uid()?);
    header.set_gid(like.gid()?);
    header.set_mtime(like.mtime()?);
    header.set_size(like.entry_size()?);
    if let (Ok(Some(major)), Ok(Some(minor))) = (like.device_major(), like.device_minor()) {
        header.set_device_major(major)?;
        header.set_device_minor(minor)?;
    }
    for (bytes, kind) in [(Some(name), EntryType::GNULongName), (link, EntryType::GNULongLink)] {
        let Some(bytes) = bytes else { continue };
        let field: &mut [u8; 100] = if kind == EntryType::GNULongName {
            &mut header.as_old_mut().name
        } else {
            &mut header.as_old_mut().linkname
        };
        field.fill(0);
        let n = bytes.len().min(100);
        field[..n].copy_from_slice(&bytes[..n]);
        if bytes.len() > 100 {
            let mut long = Header::new_gnu();
            long.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
            long.set_entry_type(kind);
            long.set_mode(0o644);
            long.set_size(bytes.len() as u64 + 1);
            long.set_cksum();
            builder.append(&long, [bytes, b"\0"].concat().as_slice())?;
        }
    }
    header.set_cksum();
    builder.append(&header, data)
}

/// moby's `NoOverwriteDirNonDir` for the entry `rel` of the destination open as `dir`.
fn check_overwrite(dir: BorrowedFd<'_>, shown: &str, rel: &str, is_dir: bool) -> Result<(), Error> {
    if rel.is_empty() {
        return Ok(());
    }
    let Ok(c_rel) = CString::new(rel) else {
        return Ok(());
    };
    let existing = match sysinit::openat2(
        dir,
        &c_rel,
        libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(_) => return Ok(()),
    };
    let st = fstat(existing.as_fd()).map_err(|source| Error::Io {
        path: format!("{shown}/{rel}"),
        source,
    })?;
    let existing_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    let path = format!("{}/{rel}", shown.trim_end_matches('/'));
    match (existing_dir, is_dir) {
        (true, false) => Err(Error::OverwriteDir {
            path,
            dest: shown.to_string(),
        }),
        (false, true) => Err(Error::OverwriteNonDir {
            path,
            dest: shown.to_string(),
        }),
        _ => Ok(()),
    }
}

/// Extracts `input`, rewritten as `how` says, into the directory open as `dir` with the
/// archive crate's safe extraction (rooted at the descriptor: nothing is created or followed
/// outside it).
pub fn extract_into(dir: &OwnedFd, input: impl Read, how: &Rewrite<'_>) -> Result<(), Error> {
    let dest = fd_path(dir.as_fd());
    let (reader, mut writer) = io::pipe().map_err(|source| Error::Io {
        path: dest.display().to_string(),
        source,
    })?;
    let (rewritten, extracted) = std::thread::scope(|scope| {
        let extracting = scope.spawn(|| archive::extract(reader, &dest));
        let rewritten = rewrite(input, &mut writer, how);
        drop(writer);
        let extracted = extracting.join().unwrap_or_else(|_| {
            Err(archive::Error::Read {
                after: None,
                source: io::Error::other("extraction panicked"),
            })
        });
        (rewritten, extracted)
    });
    match (rewritten, extracted) {
        (Err(e @ (Error::Whiteout { .. } | Error::OverwriteDir { .. } | Error::OverwriteNonDir { .. })), _) => Err(e),
        (_, Err(e)) => Err(e.into()),
        (Err(e), Ok(_)) => Err(e),
        (Ok(()), Ok(_)) => Ok(()),
    }
}
