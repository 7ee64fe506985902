//! Safe, fast extraction of a tar stream into a directory.
//!
//! Nothing is looked up through a symlink: every entry is created relative to an open file
//! descriptor of its parent directory, which was itself opened component by component with
//! `O_NOFOLLOW`. A symlink met on the way is refused; an existing entry at the target name is
//! replaced, never written through. The fds of the current parent chain are cached, so a
//! sorted archive costs one `openat` per directory, not one lookup per ancestor per file.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::rc::Rc;

use tar::EntryType;

use crate::skeleton::{Recorder, Tee};
use crate::whiteout::{self, TarName};
use crate::{compression, sys, Error, ExtractStats, Result};

/// Largest chunk of file data read and written at once.
const DATA_CHUNK: usize = 1 << 20;

/// Extract a tar stream (any supported compression) into `dest`, an existing directory.
///
/// On error every entry this call added at the top of `dest` is removed again, so an empty
/// `dest` is left empty.
pub fn extract(reader: impl Read, dest: &Path) -> Result<ExtractStats> {
    extract_into(reader, dest, None)
}

/// [`extract`], keeping the tar's skeleton in `skeleton` (see [`crate::rebuild`]) and its
/// digest: everything needed to give back exactly the bytes that were extracted.
pub fn extract_recorded(
    reader: impl Read,
    dest: &Path,
    skeleton: &mut dyn Write,
) -> Result<Recorded> {
    let recorder = Recorder::new(skeleton);
    let stats = extract_into(reader, dest, Some(Rc::clone(&recorder)))?;
    let diff_id = recorder.borrow_mut().finish().map_err(|source| Error::Io {
        path: dest.to_path_buf(),
        source,
    })?;
    Ok(Recorded { stats, diff_id })
}

/// What [`extract_recorded`] wrote and read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub stats: ExtractStats,
    /// `sha256:<hex>` of the uncompressed tar: the layer's diff ID.
    pub diff_id: String,
}

fn extract_into(
    reader: impl Read,
    dest: &Path,
    recorder: Option<Rc<RefCell<Recorder<'_>>>>,
) -> Result<ExtractStats> {
    let io_err = |source| Error::Io {
        path: dest.to_path_buf(),
        source,
    };
    let root: OwnedFd = File::open(dest).map_err(io_err)?.into();
    if sys::file_type(&sys::fstat(root.as_fd()).map_err(io_err)?) != libc::S_IFDIR {
        return Err(io_err(io::Error::from_raw_os_error(libc::ENOTDIR)));
    }
    let existing: HashSet<Vec<u8>> = sys::read_dir_names(root.as_fd())
        .map_err(io_err)?
        .into_iter()
        .collect();
    tracing::debug!(dest = %dest.display(), "extracting archive");

    let result = compression::decompressed(reader)
        .map_err(|source| Error::Read {
            after: None,
            source,
        })
        .and_then(|stream| match stream {
            Some(stream) => {
                let extractor = Extractor::new(&root, recorder.clone()).map_err(io_err)?;
                match &recorder {
                    Some(recorder) => extractor.run(Tee {
                        inner: stream,
                        recorder: Rc::clone(recorder),
                    }),
                    None => extractor.run(stream),
                }
            }
            None => Ok(ExtractStats::default()),
        });
    match result {
        Ok(stats) => {
            tracing::debug!(dest = %dest.display(), entries = stats.entries, bytes = stats.bytes, "extracted archive");
            Ok(stats)
        }
        Err(err) => {
            tracing::debug!(dest = %dest.display(), error = %err, "extraction failed, removing what it wrote");
            remove_added(root.as_fd(), &existing, dest);
            Err(err)
        }
    }
}

/// Remove every top-level entry of `dest` that was not in `existing`.
fn remove_added(root: BorrowedFd<'_>, existing: &HashSet<Vec<u8>>, dest: &Path) {
    let names = match sys::read_dir_names(root) {
        Ok(names) => names,
        Err(err) => {
            tracing::warn!(dest = %dest.display(), error = %err, "cannot list destination for cleanup");
            return;
        }
    };
    for name in names.into_iter().filter(|name| !existing.contains(name)) {
        let removed = sys::cstring(&name).and_then(|cname| remove_tree(root, &cname));
        if let Err(err) = removed {
            let path = dest.join(OsString::from_vec(name));
            tracing::warn!(path = %path.display(), error = %err, "cannot remove partial extraction");
        }
    }
}

/// Remove `name` in `dir` and, if it is a directory, everything below it; never follows a symlink.
pub(crate) fn remove_tree(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    match sys::unlinkat(dir, name, 0) {
        Err(err) if err.raw_os_error() == Some(libc::EISDIR) => {}
        other => return other,
    }
    let sub = sys::open_dir_at(dir, name)?;
    for child in sys::read_dir_names(sub.as_fd())? {
        remove_tree(sub.as_fd(), &sys::cstring(&child)?)?;
    }
    sys::unlinkat(dir, name, libc::AT_REMOVEDIR)
}

/// Split an entry name into its components: leading `/`, empty and `.` components dropped.
/// A `..` component is refused outright, like GNU tar does, so no name can climb out.
fn components(path: &[u8]) -> std::result::Result<Vec<&[u8]>, &'static str> {
    let mut out = Vec::new();
    for comp in path.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err("path contains `..`"),
            _ => out.push(comp),
        }
    }
    Ok(out)
}

/// The tar parser quotes raw header bytes in its messages; garbage input would put binary
/// on the user's terminal.
fn printable(err: io::Error) -> io::Error {
    let bad = |c: char| c.is_control() || c == char::REPLACEMENT_CHARACTER;
    let text = err.to_string();
    if !text.chars().any(bad) {
        return err;
    }
    let mut clean: String = text
        .chars()
        .map(|c| if bad(c) { '?' } else { c })
        .take(100)
        .collect();
    clean.push_str("... (not a tar archive?)");
    io::Error::new(err.kind(), clean)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Why walking to a directory failed.
enum WalkError {
    Symlink(usize),
    NotDir(usize),
    Missing(usize),
    Io(usize, io::Error),
}

impl WalkError {
    /// The error for `entry`, naming the component (a prefix of `comps`) that failed.
    fn into_error(self, entry: &str, what: &str, comps: &[&[u8]]) -> Error {
        let prefix = |depth: usize| lossy(&comps[..=depth].join(&b'/'));
        let refused = |reason: String| Error::Refused {
            entry: entry.to_string(),
            reason,
        };
        match self {
            WalkError::Symlink(depth) => refused(format!(
                "{what}path component {} is a symlink",
                prefix(depth)
            )),
            WalkError::NotDir(depth) => refused(format!(
                "{what}path component {} is not a directory",
                prefix(depth)
            )),
            WalkError::Missing(depth) => refused(format!("{what}{} does not exist", prefix(depth))),
            WalkError::Io(depth, source) => Error::Entry {
                entry: entry.to_string(),
                source: io::Error::new(source.kind(), format!("{what}{}: {source}", prefix(depth))),
            },
        }
    }
}

struct CachedDir {
    name: Vec<u8>,
    fd: OwnedFd,
    /// The group new entries get here: the directory's own group when it is setgid.
    inherited_gid: Option<u32>,
}

/// Open directories from the destination down to the parent of the current entry.
struct DirWalker<'r> {
    root: BorrowedFd<'r>,
    root_inherited_gid: Option<u32>,
    stack: Vec<CachedDir>,
    umask: u32,
}

fn inherited_gid(st: &libc::stat) -> Option<u32> {
    (st.st_mode & libc::S_ISGID != 0).then_some(st.st_gid)
}

impl<'r> DirWalker<'r> {
    fn top(&self) -> (BorrowedFd<'_>, Option<u32>) {
        match self.stack.last() {
            Some(dir) => (dir.fd.as_fd(), dir.inherited_gid),
            None => (self.root, self.root_inherited_gid),
        }
    }

    /// The directory `comps` below the root; missing directories are created (mode 0755)
    /// when `create` is set. A symlink or non-directory on the way is an error.
    fn enter(
        &mut self,
        comps: &[&[u8]],
        create: bool,
    ) -> std::result::Result<(BorrowedFd<'_>, Option<u32>), WalkError> {
        let mut keep = 0;
        while keep < self.stack.len() && keep < comps.len() && self.stack[keep].name == comps[keep]
        {
            keep += 1;
        }
        self.stack.truncate(keep);
        for (depth, comp) in comps.iter().enumerate().skip(keep) {
            let io_err = |err| WalkError::Io(depth, err);
            let name = sys::cstring(comp).map_err(io_err)?;
            let parent = self.top().0;
            let fd = match sys::open_dir_at(parent, &name) {
                Ok(fd) => fd,
                Err(err) if err.raw_os_error() == Some(libc::ENOENT) && create => {
                    match sys::mkdirat(parent, &name, 0o755) {
                        Err(err) if err.raw_os_error() != Some(libc::EEXIST) => {
                            return Err(io_err(err))
                        }
                        _ => {}
                    }
                    let fd = sys::open_dir_at(parent, &name).map_err(io_err)?;
                    if self.umask & 0o755 != 0 {
                        sys::fchmod(fd.as_fd(), 0o755).map_err(io_err)?;
                    }
                    fd
                }
                Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {
                    return Err(WalkError::Missing(depth))
                }
                Err(err) if matches!(err.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                    let st = sys::lstatat(parent, &name).map_err(io_err)?;
                    return Err(if sys::file_type(&st) == libc::S_IFLNK {
                        WalkError::Symlink(depth)
                    } else {
                        WalkError::NotDir(depth)
                    });
                }
                Err(err) => return Err(io_err(err)),
            };
            let st = sys::fstat(fd.as_fd()).map_err(io_err)?;
            self.stack.push(CachedDir {
                name: comp.to_vec(),
                fd,
                inherited_gid: inherited_gid(&st),
            });
        }
        Ok(self.top())
    }
}

/// Owner, mode, time and xattrs of an entry, with PAX records applied.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    mtime_nsec: u32,
    xattrs: Vec<(CString, Vec<u8>)>,
}

/// A directory whose mode and times are set once everything inside it was written.
struct DeferredDir {
    comps: Vec<Vec<u8>>,
    meta: Meta,
}

struct Extractor<'r, 'w> {
    walker: DirWalker<'r>,
    /// Told of each regular file's data, when the tar's skeleton is kept.
    recorder: Option<Rc<RefCell<Recorder<'w>>>>,
    deferred: Vec<DeferredDir>,
    deferred_index: HashMap<Vec<Vec<u8>>, usize>,
    root_meta: Option<Meta>,
    euid: u32,
    egid: u32,
    buf: Vec<u8>,
    stats: ExtractStats,
}

fn parse_pax_time(value: &[u8]) -> Option<(i64, u32)> {
    let text = std::str::from_utf8(value).ok()?;
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let nsec = if digits.is_empty() {
        0
    } else {
        digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32)
    };
    // A negative time with a fraction counts the fraction towards the past as well.
    if text.starts_with('-') && nsec > 0 {
        return Some((secs.checked_sub(1)?, 1_000_000_000 - nsec));
    }
    Some((secs, nsec))
}

/// A numeric header field; one left blank (all NUL or spaces, as some writers do) reads as 0,
/// the way Go's archive/tar and GNU tar read it.
fn lenient(parsed: io::Result<u64>, raw: &[u8]) -> io::Result<u64> {
    match parsed {
        Err(_) if raw.iter().all(|b| *b == 0 || *b == b' ') => Ok(0),
        other => other,
    }
}

fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
    let header = entry.header();
    let invalid =
        |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{what} out of range"));
    let old = header.as_old();
    let mode = lenient(header.mode().map(u64::from), &old.mode)? as u32 & 0o7777;
    let uid = u32::try_from(lenient(header.uid(), &old.uid)?).map_err(|_| invalid("uid"))?;
    let gid = u32::try_from(lenient(header.gid(), &old.gid)?).map_err(|_| invalid("gid"))?;
    let mtime =
        i64::try_from(lenient(header.mtime(), &old.mtime)?).map_err(|_| invalid("mtime"))?;
    let mut meta = Meta {
        mode,
        uid,
        gid,
        mtime,
        mtime_nsec: 0,
        xattrs: Vec::new(),
    };
    if let Some(pax) = entry.pax_extensions()? {
        for record in pax {
            let record = record?;
            let key = record.key_bytes();
            if key == b"mtime" {
                let (secs, nsec) =
                    parse_pax_time(record.value_bytes()).ok_or_else(|| invalid("pax mtime"))?;
                meta.mtime = secs;
                meta.mtime_nsec = nsec;
            } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                // Overlay's own xattrs (redirects, metacopy, ...) would let a layer steer the
                // overlay mount; only the whiteout conversion sets them.
                if name.starts_with(whiteout::OVERLAY_XATTR_PREFIX) {
                    tracing::debug!(xattr = %lossy(name), "dropping overlay xattr from archive");
                    continue;
                }
                meta.xattrs
                    .push((sys::cstring(name)?, record.value_bytes().to_vec()));
            }
        }
    }
    Ok(meta)
}

/// Set one xattr; a filesystem without support (or a symlink refusing `user.*`) is a warning.
fn set_xattr(set: impl FnOnce() -> io::Result<()>, name: &CStr) -> io::Result<()> {
    match set() {
        Err(err) if matches!(err.raw_os_error(), Some(libc::ENOTSUP | libc::EPERM)) => {
            tracing::warn!(xattr = %name.to_string_lossy(), error = %err, "xattr not kept");
            Ok(())
        }
        other => other,
    }
}

impl<'r, 'w> Extractor<'r, 'w> {
    fn new(root: &'r OwnedFd, recorder: Option<Rc<RefCell<Recorder<'w>>>>) -> io::Result<Self> {
        let st = sys::fstat(root.as_fd())?;
        Ok(Extractor {
            walker: DirWalker {
                root: root.as_fd(),
                root_inherited_gid: inherited_gid(&st),
                stack: Vec::new(),
                umask: sys::current_umask(),
            },
            recorder,
            deferred: Vec::new(),
            deferred_index: HashMap::new(),
            root_meta: None,
            euid: unsafe { libc::geteuid() },
            egid: unsafe { libc::getegid() },
            buf: vec![0; DATA_CHUNK],
            stats: ExtractStats::default(),
        })
    }

    fn run(mut self, stream: impl Read) -> Result<ExtractStats> {
        let mut archive = tar::Archive::new(stream);
        let mut entries = archive.entries().map_err(|source| Error::Read {
            after: None,
            source,
        })?;
        let mut last: Option<String> = None;
        loop {
            let mut entry = match entries.next() {
                None => break,
                Some(Ok(entry)) => entry,
                Some(Err(source)) => {
                    return Err(Error::Read {
                        after: last,
                        source: printable(source),
                    })
                }
            };
            let path = entry.path_bytes().into_owned();
            let name = lossy(&path);
            self.entry(&mut entry, &path, &name)?;
            last = Some(name);
        }
        if self.recorder.is_some() {
            // What follows the end-of-archive blocks (writers pad to whole records) is part of
            // the layer's bytes too.
            io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(|source| Error::Read {
                after: last.clone(),
                source,
            })?;
        }
        self.finish()?;
        Ok(self.stats)
    }

    fn needs_chmod(&self, mode: u32) -> bool {
        mode & self.walker.umask != 0 || mode & 0o7000 != 0
    }

    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &[u8],
        name: &str,
    ) -> Result<()> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() || kind.as_byte() == b'V' {
            return Ok(());
        }
        let refused = |reason: &str| Error::Refused {
            entry: name.to_string(),
            reason: reason.to_string(),
        };
        let entry_err = |source: io::Error| Error::Entry {
            entry: name.to_string(),
            source,
        };
        let comps = components(path).map_err(refused)?;
        let Some((last, parent)) = comps.split_last() else {
            if !kind.is_dir() {
                return Err(refused(
                    "entry would replace the destination directory itself",
                ));
            }
            self.root_meta = Some(read_meta(entry).map_err(entry_err)?);
            self.stats.entries += 1;
            return Ok(());
        };
        let walk_err = |err: WalkError| err.into_error(name, "", &comps);
        if parent
            .iter()
            .any(|comp| comp.starts_with(whiteout::META_PREFIX))
        {
            tracing::debug!(entry = name, "dropping entry inside aufs metadata");
            return Ok(());
        }

        match whiteout::classify(last) {
            TarName::Plain => {}
            TarName::Meta => {
                tracing::debug!(entry = name, "dropping aufs metadata entry");
                return Ok(());
            }
            TarName::Opaque => {
                let (dir, _) = self.walker.enter(parent, true).map_err(walk_err)?;
                tracing::debug!(entry = name, "marking directory opaque");
                sys::fsetxattr(dir, whiteout::OPAQUE_XATTR, b"y").map_err(entry_err)?;
                self.stats.entries += 1;
                return Ok(());
            }
            TarName::Deleted(b"." | b"..") => {
                // `.wh..` and `.wh...` would delete the directory itself or its parent.
                return Err(refused("whiteout of `.` or `..`"));
            }
            TarName::Deleted(deleted) => {
                // Owner and time from the header (so tar_dir gives them back unchanged); the
                // mode of a whiteout means nothing to overlayfs.
                let meta = read_meta(entry).map_err(entry_err)?;
                let (dir, _) = self.walker.enter(parent, true).map_err(walk_err)?;
                let cname = sys::cstring(deleted).map_err(entry_err)?;
                tracing::debug!(entry = name, "creating overlay whiteout");
                create_replacing(dir, &cname, || sys::mknodat(dir, &cname, libc::S_IFCHR, 0))
                    .map_err(entry_err)?;
                sys::lchownat(dir, &cname, meta.uid, meta.gid).map_err(entry_err)?;
                sys::lutimensat(dir, &cname, meta.mtime, meta.mtime_nsec).map_err(entry_err)?;
                self.stats.entries += 1;
                return Ok(());
            }
        }

        let meta = read_meta(entry).map_err(entry_err)?;
        let cname = sys::cstring(last).map_err(entry_err)?;
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let (euid, egid) = (self.euid, self.egid);
                let chmod = self.needs_chmod(meta.mode);
                let (dir, inherited) = self.walker.enter(parent, true).map_err(walk_err)?;
                let flags = libc::O_WRONLY
                    | libc::O_CREAT
                    | libc::O_EXCL
                    | libc::O_NOFOLLOW
                    | libc::O_NOCTTY;
                let create = || sys::openat(dir, &cname, flags, meta.mode & 0o777);
                let fd = match create() {
                    Err(err) if err.raw_os_error() == Some(libc::EEXIST) => {
                        replace_existing(dir, &cname, false).and_then(|_| create())
                    }
                    other => other,
                }
                .map_err(entry_err)?;
                let mut file = File::from(fd);
                let expected = (!kind.is_gnu_sparse()).then(|| entry.size());
                if let (Some(recorder), Some(size)) = (&self.recorder, expected) {
                    recorder.borrow_mut().file(size, &comps.join(&b'/'));
                }
                let written =
                    write_data(entry, &mut file, &mut self.buf, expected).map_err(entry_err)?;
                let chown = meta.uid != euid || meta.gid != inherited.unwrap_or(egid);
                apply_fd_meta(file.as_fd(), &meta, chown, chmod).map_err(entry_err)?;
                self.stats.bytes += written;
            }
            EntryType::Directory => {
                let (dir, _) = self.walker.enter(parent, true).map_err(walk_err)?;
                // Owner-only until the end, when its real mode and times are set.
                create_replacing_keep_dir(dir, &cname, || sys::mkdirat(dir, &cname, 0o700))
                    .map_err(entry_err)?;
                let comps: Vec<Vec<u8>> = comps.iter().map(|c| c.to_vec()).collect();
                match self.deferred_index.get(&comps) {
                    Some(&index) => self.deferred[index].meta = meta,
                    None => {
                        self.deferred_index
                            .insert(comps.clone(), self.deferred.len());
                        self.deferred.push(DeferredDir { comps, meta });
                    }
                }
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| refused("symlink without a target"))?;
                let target = sys::cstring(&target).map_err(entry_err)?;
                let (euid, egid) = (self.euid, self.egid);
                let (dir, inherited) = self.walker.enter(parent, true).map_err(walk_err)?;
                create_replacing(dir, &cname, || sys::symlinkat(&target, dir, &cname))
                    .map_err(entry_err)?;
                let chown = meta.uid != euid || meta.gid != inherited.unwrap_or(egid);
                apply_name_meta(dir, &cname, last, &meta, chown, false).map_err(entry_err)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let header = entry.header();
                let (file_type, dev) = match kind {
                    EntryType::Fifo => (libc::S_IFIFO, 0),
                    _ => {
                        let major = header.device_major().map_err(entry_err)?.unwrap_or(0);
                        let minor = header.device_minor().map_err(entry_err)?.unwrap_or(0);
                        let file_type = if kind == EntryType::Char {
                            libc::S_IFCHR
                        } else {
                            libc::S_IFBLK
                        };
                        (file_type, libc::makedev(major, minor))
                    }
                };
                let (euid, egid) = (self.euid, self.egid);
                let chmod = self.needs_chmod(meta.mode);
                let (dir, inherited) = self.walker.enter(parent, true).map_err(walk_err)?;
                tracing::debug!(entry = name, "creating device node");
                create_replacing(dir, &cname, || {
                    sys::mknodat(dir, &cname, file_type | (meta.mode & 0o777), dev)
                })
                .map_err(entry_err)?;
                let chown = meta.uid != euid || meta.gid != inherited.unwrap_or(egid);
                apply_name_meta(dir, &cname, last, &meta, chown, chmod).map_err(entry_err)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| refused("hard link without a target"))?;
                self.hard_link(&comps, &cname, &target, name)?;
            }
            other => {
                return Err(refused(&format!(
                    "unsupported entry type {:?}",
                    other.as_byte() as char
                )));
            }
        }
        self.stats.entries += 1;
        Ok(())
    }

    fn hard_link(
        &mut self,
        comps: &[&[u8]],
        cname: &CStr,
        target: &[u8],
        name: &str,
    ) -> Result<()> {
        let target_name = lossy(target);
        let refused = |reason: String| Error::Refused {
            entry: name.to_string(),
            reason,
        };
        let entry_err = |source: io::Error| Error::Entry {
            entry: name.to_string(),
            source,
        };
        let what = format!("hard link target {target_name}: ");
        let target_comps = components(target)
            .map_err(|reason| refused(format!("hard link target {target_name}: {reason}")))?;
        let Some((target_last, target_parent)) = target_comps.split_last() else {
            return Err(refused(format!(
                "hard link target {target_name:?} names no file"
            )));
        };
        let target_cname = sys::cstring(target_last).map_err(entry_err)?;
        // The target's directory is opened on its own walk so the cached chain stays the
        // entry's parent; neither walk follows a symlink.
        let target_dir =
            open_dir_path(self.walker.root, target_parent).map_err(|err| match err {
                WalkError::Missing(_) => refused(format!(
                    "hard link target {target_name} is not in the archive"
                )),
                err => err.into_error(name, &what, &target_comps),
            })?;
        let target_dir = target_dir
            .as_ref()
            .map_or(self.walker.root, |fd| fd.as_fd());
        let (dir, _) = self
            .walker
            .enter(&comps[..comps.len() - 1], true)
            .map_err(|err| err.into_error(name, "", comps))?;
        let link = || sys::linkat(target_dir, &target_cname, dir, cname);
        let result = match link() {
            Err(err) if err.raw_os_error() == Some(libc::EEXIST) => {
                let same = sys::lstatat(target_dir, &target_cname)
                    .and_then(|a| {
                        sys::lstatat(dir, cname)
                            .map(|b| a.st_dev == b.st_dev && a.st_ino == b.st_ino)
                    })
                    .unwrap_or(false);
                if same {
                    Ok(())
                } else {
                    replace_existing(dir, cname, false).and_then(|_| link())
                }
            }
            other => other,
        };
        match result {
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => Err(refused(format!(
                "hard link target {target_name} is not in the archive"
            ))),
            Err(err)
                if err.raw_os_error() == Some(libc::EPERM)
                    && sys::lstatat(target_dir, &target_cname)
                        .is_ok_and(|st| sys::file_type(&st) == libc::S_IFDIR) =>
            {
                Err(refused(format!(
                    "hard link target {target_name} is a directory"
                )))
            }
            other => other.map_err(entry_err),
        }
    }

    /// Set the final owner, xattrs, mode and times of the directories, deepest first, and of
    /// the destination itself when the archive had a `./` entry.
    fn finish(&mut self) -> Result<()> {
        let deferred = std::mem::take(&mut self.deferred);
        let (euid, egid) = (self.euid, self.egid);
        for dir in deferred.iter().rev() {
            let name = lossy(&dir.comps.join(&b'/'));
            let entry_err = |source: io::Error| Error::Entry {
                entry: name.clone(),
                source,
            };
            let comps: Vec<&[u8]> = dir.comps.iter().map(|c| c.as_slice()).collect();
            let (last, parent) = comps
                .split_last()
                .expect("deferred directories have a name");
            // A later entry may have replaced the directory (or a parent) by something else.
            let Ok((parent_fd, _)) = self.walker.enter(parent, false) else {
                continue;
            };
            let fd = match sys::open_dir_at(parent_fd, &sys::cstring(last).map_err(entry_err)?) {
                Ok(fd) => fd,
                Err(err)
                    if matches!(
                        err.raw_os_error(),
                        Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
                    ) =>
                {
                    continue
                }
                Err(err) => return Err(entry_err(err)),
            };
            let st = sys::fstat(fd.as_fd()).map_err(entry_err)?;
            let chown = st.st_uid != dir.meta.uid || st.st_gid != dir.meta.gid;
            apply_fd_meta(fd.as_fd(), &dir.meta, chown, true).map_err(entry_err)?;
        }
        self.walker.stack.clear();
        if let Some(meta) = &self.root_meta {
            let entry_err = |source: io::Error| Error::Entry {
                entry: ".".to_string(),
                source,
            };
            let chown =
                meta.uid != euid || meta.gid != self.walker.root_inherited_gid.unwrap_or(egid);
            apply_fd_meta(self.walker.root, meta, chown, true).map_err(entry_err)?;
        }
        Ok(())
    }
}

/// Open the directory `comps` below `root` without creating or following anything
/// (`None` is `root` itself).
fn open_dir_path(
    root: BorrowedFd<'_>,
    comps: &[&[u8]],
) -> std::result::Result<Option<OwnedFd>, WalkError> {
    let mut current: Option<OwnedFd> = None;
    for (depth, comp) in comps.iter().enumerate() {
        let parent = current.as_ref().map_or(root, |fd| fd.as_fd());
        let name = sys::cstring(comp).map_err(|err| WalkError::Io(depth, err))?;
        let fd = match sys::open_dir_at(parent, &name) {
            Ok(fd) => fd,
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {
                return Err(WalkError::Missing(depth))
            }
            Err(err) if matches!(err.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                let st = sys::lstatat(parent, &name).map_err(|err| WalkError::Io(depth, err))?;
                return Err(if sys::file_type(&st) == libc::S_IFLNK {
                    WalkError::Symlink(depth)
                } else {
                    WalkError::NotDir(depth)
                });
            }
            Err(err) => return Err(WalkError::Io(depth, err)),
        };
        current = Some(fd);
    }
    Ok(current)
}

/// Remove whatever is at `name` so a new entry can take its place; a directory is kept (and
/// `true` returned) when `keep_dir` is set, the way tar merges a directory entry into an
/// existing directory.
fn replace_existing(dir: BorrowedFd<'_>, name: &CStr, keep_dir: bool) -> io::Result<bool> {
    let st = match sys::lstatat(dir, name) {
        Ok(st) => st,
        Err(err) if err.raw_os_error() == Some(libc::ENOENT) => return Ok(false),
        Err(err) => return Err(err),
    };
    if sys::file_type(&st) == libc::S_IFDIR {
        if keep_dir {
            return Ok(true);
        }
        remove_tree(dir, name)?;
    } else {
        sys::unlinkat(dir, name, 0)?;
    }
    Ok(false)
}

/// Run `create`; if the name is taken, remove what is there and run it once more.
fn create_replacing(
    dir: BorrowedFd<'_>,
    name: &CStr,
    create: impl Fn() -> io::Result<()>,
) -> io::Result<()> {
    match create() {
        Err(err) if err.raw_os_error() == Some(libc::EEXIST) => {
            replace_existing(dir, name, false)?;
            create()
        }
        other => other,
    }
}

/// Like [`create_replacing`] for a directory: an existing directory is kept as it is.
fn create_replacing_keep_dir(
    dir: BorrowedFd<'_>,
    name: &CStr,
    create: impl Fn() -> io::Result<()>,
) -> io::Result<()> {
    match create() {
        Err(err) if err.raw_os_error() == Some(libc::EEXIST) => {
            if replace_existing(dir, name, true)? {
                Ok(())
            } else {
                create()
            }
        }
        other => other,
    }
}

/// Copy the entry's data into `file`: read a chunk, write it whole, repeat.
fn write_data(
    entry: &mut impl Read,
    file: &mut File,
    buf: &mut [u8],
    expected: Option<u64>,
) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match entry.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        if filled == 0 {
            break;
        }
        file.write_all(&buf[..filled])?;
        total += filled as u64;
        if filled < buf.len() {
            break;
        }
    }
    if let Some(expected) = expected {
        if total != expected {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("archive ends inside the entry's data ({total} of {expected} bytes)"),
            ));
        }
    }
    Ok(total)
}

/// Owner, xattrs, mode, times, in that order: chown clears setuid bits and file capabilities.
fn apply_fd_meta(fd: BorrowedFd<'_>, meta: &Meta, chown: bool, chmod: bool) -> io::Result<()> {
    if chown {
        sys::fchown(fd, meta.uid, meta.gid)?;
    }
    for (name, value) in &meta.xattrs {
        set_xattr(|| sys::fsetxattr(fd, name, value), name)?;
    }
    if chmod {
        sys::fchmod(fd, meta.mode)?;
    }
    sys::futimens(fd, meta.mtime, meta.mtime_nsec)
}

/// [`apply_fd_meta`] for entries that cannot be opened (symlinks, devices, fifos).
fn apply_name_meta(
    dir: BorrowedFd<'_>,
    name: &CStr,
    raw_name: &[u8],
    meta: &Meta,
    chown: bool,
    chmod: bool,
) -> io::Result<()> {
    if chown {
        sys::lchownat(dir, name, meta.uid, meta.gid)?;
    }
    if !meta.xattrs.is_empty() {
        let path = sys::proc_path(dir, raw_name)?;
        for (xattr, value) in &meta.xattrs {
            set_xattr(|| sys::lsetxattr(&path, xattr, value), xattr)?;
        }
    }
    if chmod {
        sys::fchmodat(dir, name, meta.mode)?;
    }
    sys::lutimensat(dir, name, meta.mtime, meta.mtime_nsec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_strip_root_and_dots_and_refuse_parent() {
        assert_eq!(
            components(b"/etc//passwd").unwrap(),
            vec![&b"etc"[..], b"passwd"]
        );
        assert_eq!(components(b"./a/./b/").unwrap(), vec![&b"a"[..], b"b"]);
        assert!(components(b"./").unwrap().is_empty());
        assert!(components(b"a/../../x").is_err());
        assert!(components(b"..").is_err());
    }

    #[test]
    fn pax_times_keep_fractions() {
        assert_eq!(
            parse_pax_time(b"1700000000.5"),
            Some((1_700_000_000, 500_000_000))
        );
        assert_eq!(parse_pax_time(b"12"), Some((12, 0)));
        assert_eq!(parse_pax_time(b"-1.25"), Some((-2, 750_000_000)));
        assert_eq!(parse_pax_time(b"x"), None);
        // Found by tests/prop.rs: one second before i64::MIN overflowed.
        assert_eq!(parse_pax_time(b"-9223372036854775808.5"), None);
        assert_eq!(parse_pax_time(b"-9223372036854775808"), Some((i64::MIN, 0)));
    }
}
