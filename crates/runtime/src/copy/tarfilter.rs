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
            let prefixed = rewrite(
                reader,
                &mut out,
                &Rewrite {
                    prefix_dot: true,
                    ..Rewrite::default()
                },
            );
            tarring
                .join()
                .map_err(|_| io_err(io::Error::other("archiving panicked")))??;
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
    /// Mounts below the destination, as (relative path, destination): an entry inside one is
    /// refused (only the mount point's own directory entry passes).
    pub mounts_below: Vec<(String, String)>,
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
        let target = relative(&name);
        for (rel, destination) in &how.mounts_below {
            let is_mount_point = target == *rel && kind == EntryType::Directory;
            if paths::is_within(&format!("/{target}"), &format!("/{rel}")) && !is_mount_point {
                return Err(Error::UnderMount {
                    entry: String::from_utf8_lossy(&name).into_owned(),
                    destination: destination.clone(),
                });
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
        append_raw(&mut builder, &header, &name, link.as_deref(), &mut entry)
            .map_err(Error::Tar)?;
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
    for (bytes, kind) in [
        (Some(name), EntryType::GNULongName),
        (link, EntryType::GNULongLink),
    ] {
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
    // Any compression, as docker's Untar takes it; an empty stream extracts nothing.
    let Some(input) = archive::decompressed(input).map_err(Error::Tar)? else {
        return Ok(());
    };
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
        (
            Err(
                e @ (Error::Whiteout { .. }
                | Error::UnderMount { .. }
                | Error::OverwriteDir { .. }
                | Error::OverwriteNonDir { .. }),
            ),
            _,
        ) => Err(e),
        (_, Err(e)) => Err(e.into()),
        (Err(e), Ok(_)) => Err(e),
        (Ok(()), Ok(_)) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of one empty entry `name` of `kind`.
    fn single_entry(name: &str, kind: EntryType) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        builder
            .append_data(&mut file_header(kind, 0), name, io::empty())
            .unwrap();
        builder.into_inner().unwrap()
    }

    fn file_header(kind: EntryType, size: u64) -> Header {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(0o644);
        header.set_uid(7);
        header.set_gid(8);
        header.set_size(size);
        header
    }

    fn names(tar: &[u8]) -> Vec<(String, Option<String>, u64)> {
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
                let link = e
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned());
                (name, link, e.header().uid().unwrap())
            })
            .collect()
    }

    fn sample() -> Vec<u8> {
        let long = format!("dir/{}", "n".repeat(150));
        let mut builder = tar::Builder::new(Vec::new());
        builder
            .append_data(
                &mut file_header(EntryType::Directory, 0),
                "dir/",
                io::empty(),
            )
            .unwrap();
        builder
            .append_data(&mut file_header(EntryType::Regular, 2), &long, &b"hi"[..])
            .unwrap();
        builder
            .append_link(&mut file_header(EntryType::Link, 0), "dir/hard", &long)
            .unwrap();
        builder.into_inner().unwrap()
    }

    #[test]
    fn rewrite_rebases_names_and_hard_links_and_sets_owners() {
        let mut out = Vec::new();
        let how = Rewrite {
            rebase: Some(("dir".into(), "new".into())),
            owner: Some((0, 0)),
            ..Rewrite::default()
        };
        rewrite(sample().as_slice(), &mut out, &how).unwrap();
        let long = format!("new/{}", "n".repeat(150));
        assert_eq!(
            names(&out),
            vec![
                ("new/".into(), None, 0),
                (long.clone(), None, 0),
                ("new/hard".into(), Some(long), 0),
            ]
        );
        // The data survives.
        let mut archive = tar::Archive::new(out.as_slice());
        let mut entry = archive.entries().unwrap().nth(1).unwrap().unwrap();
        let mut data = String::new();
        entry.read_to_string(&mut data).unwrap();
        assert_eq!(data, "hi");
    }

    #[test]
    fn rewrite_keeps_owners_and_can_prefix_dot() {
        let mut out = Vec::new();
        let how = Rewrite {
            prefix_dot: true,
            ..Rewrite::default()
        };
        rewrite(sample().as_slice(), &mut out, &how).unwrap();
        let got = names(&out);
        assert_eq!(got[0], ("./dir/".into(), None, 7));
        assert_eq!(
            got[2].1.as_deref(),
            Some(format!("./dir/{}", "n".repeat(150)).as_str())
        );
    }

    #[test]
    fn rewrite_refuses_entries_under_a_mount_below_the_destination() {
        let how = Rewrite {
            mounts_below: vec![("data".into(), "/data".into())],
            ..Rewrite::default()
        };
        rewrite(
            single_entry("data/", EntryType::Directory).as_slice(),
            Vec::new(),
            &how,
        )
        .unwrap();
        rewrite(
            single_entry("database", EntryType::Regular).as_slice(),
            Vec::new(),
            &how,
        )
        .unwrap();
        let err = rewrite(
            single_entry("data/x", EntryType::Regular).as_slice(),
            Vec::new(),
            &how,
        );
        assert!(matches!(err, Err(Error::UnderMount { .. })), "{err:?}");
        let err = rewrite(
            single_entry("./data", EntryType::Regular).as_slice(),
            Vec::new(),
            &how,
        );
        assert!(matches!(err, Err(Error::UnderMount { .. })), "{err:?}");
    }

    #[test]
    fn rewrite_refuses_whiteouts() {
        let mut builder = tar::Builder::new(Vec::new());
        builder
            .append_data(
                &mut file_header(EntryType::Regular, 0),
                "a/.wh.b",
                io::empty(),
            )
            .unwrap();
        let tar = builder.into_inner().unwrap();
        let err = rewrite(tar.as_slice(), Vec::new(), &Rewrite::default()).unwrap_err();
        assert!(matches!(err, Error::Whiteout { .. }), "{err}");
    }

    #[test]
    fn no_overwrite_dir_non_dir_is_checked_against_the_destination() {
        let dest = tempfile::tempdir().unwrap();
        std::fs::create_dir(dest.path().join("dir")).unwrap();
        std::fs::write(dest.path().join("file"), "x").unwrap();
        let fd: OwnedFd = File::open(dest.path()).unwrap().into();
        let how = Rewrite {
            no_overwrite_dir_non_dir: Some((fd.as_fd(), "/dest".into())),
            ..Rewrite::default()
        };
        let err = rewrite(
            single_entry("dir", EntryType::Regular).as_slice(),
            Vec::new(),
            &how,
        );
        assert!(
            matches!(&err, Err(Error::OverwriteDir { path, .. }) if path == "/dest/dir"),
            "{err:?}"
        );
        let err = rewrite(
            single_entry("file/", EntryType::Directory).as_slice(),
            Vec::new(),
            &how,
        );
        assert!(matches!(err, Err(Error::OverwriteNonDir { .. })), "{err:?}");
        rewrite(
            single_entry("dir/", EntryType::Directory).as_slice(),
            Vec::new(),
            &how,
        )
        .unwrap();
        rewrite(
            single_entry("file", EntryType::Regular).as_slice(),
            Vec::new(),
            &how,
        )
        .unwrap();
    }

    #[test]
    fn archive_fd_names_entries_as_asked() {
        use std::os::unix::fs::OpenOptionsExt;
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir(src.path().join("sub")).unwrap();
        std::fs::write(src.path().join("sub/a"), "A").unwrap();
        std::os::unix::fs::symlink("/etc", src.path().join("link")).unwrap();
        let open = |p: &std::path::Path| -> OwnedFd {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
                .open(p)
                .unwrap()
                .into()
        };
        let dir = open(src.path());
        let mut out = Vec::new();
        archive_fd(dir.as_fd(), "copy", &mut out).unwrap();
        let got: Vec<String> = names(&out).into_iter().map(|n| n.0).collect();
        assert_eq!(got, ["copy/", "copy/link", "copy/sub/", "copy/sub/a"]);
        let mut out = Vec::new();
        archive_fd(dir.as_fd(), ".", &mut out).unwrap();
        let got: Vec<String> = names(&out).into_iter().map(|n| n.0).collect();
        assert_eq!(got, ["./", "./link", "./sub/", "./sub/a"]);
        // A symlink is archived as itself, never followed.
        let link = open(&src.path().join("link"));
        let mut out = Vec::new();
        archive_fd(link.as_fd(), "l", &mut out).unwrap();
        let owner = std::fs::symlink_metadata(src.path().join("link")).unwrap();
        let uid = u64::from(std::os::unix::fs::MetadataExt::uid(&owner));
        assert_eq!(names(&out), vec![("l".into(), Some("/etc".into()), uid)]);
    }
}
