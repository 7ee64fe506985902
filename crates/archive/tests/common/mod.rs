//! Helpers shared by the archive integration tests: archives built in memory (raw headers
//! where the names are hostile) and snapshots of directory trees.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

/// An in-memory tar archive whose names and link targets are written verbatim.
pub struct ArchiveBuilder {
    builder: tar::Builder<Vec<u8>>,
}

/// Metadata of one entry to write.
#[derive(Clone)]
pub struct Meta {
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

impl Default for Meta {
    fn default() -> Self {
        Meta {
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1_600_000_000,
        }
    }
}

pub fn meta(mode: u32, uid: u64, gid: u64, mtime: u64) -> Meta {
    Meta {
        mode,
        uid,
        gid,
        mtime,
    }
}

impl Default for ArchiveBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ArchiveBuilder {
    pub fn new() -> Self {
        ArchiveBuilder {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    /// A raw header: `name` and `link` go into the fields byte for byte, so `../x` and `/etc`
    /// are written as they are (the tar crate's own setters refuse them).
    pub fn raw(
        &mut self,
        name: &str,
        kind: EntryType,
        meta: &Meta,
        link: Option<&str>,
        data: &[u8],
    ) -> &mut Self {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(meta.mode);
        header.set_uid(meta.uid);
        header.set_gid(meta.gid);
        header.set_mtime(meta.mtime);
        header.set_size(data.len() as u64);
        let old = header.as_old_mut();
        assert!(name.len() < old.name.len(), "test names stay short");
        old.name = [0; 100];
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            old.linkname = [0; 100];
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_cksum();
        self.builder.append(&header, data).unwrap();
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.raw(name, EntryType::Regular, &Meta::default(), None, data)
    }

    pub fn file_with(&mut self, name: &str, meta: &Meta, data: &[u8]) -> &mut Self {
        self.raw(name, EntryType::Regular, meta, None, data)
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.raw(
            name,
            EntryType::Directory,
            &meta(0o755, 0, 0, 1_600_000_000),
            None,
            b"",
        )
    }

    pub fn dir_with(&mut self, name: &str, meta: &Meta) -> &mut Self {
        self.raw(name, EntryType::Directory, meta, None, b"")
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(
            name,
            EntryType::Symlink,
            &meta(0o777, 0, 0, 1_600_000_000),
            Some(target),
            b"",
        )
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(name, EntryType::Link, &Meta::default(), Some(target), b"")
    }

    pub fn device(
        &mut self,
        name: &str,
        kind: EntryType,
        meta: &Meta,
        major: u32,
        minor: u32,
    ) -> &mut Self {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(meta.mode);
        header.set_uid(meta.uid);
        header.set_gid(meta.gid);
        header.set_mtime(meta.mtime);
        header.set_size(0);
        header.set_device_major(major).unwrap();
        header.set_device_minor(minor).unwrap();
        header.set_path(name).unwrap();
        header.set_cksum();
        self.builder.append(&header, &b""[..]).unwrap();
        self
    }

    /// A PAX extended header for the next entry.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let (header, data) = pax_entry(records);
        self.builder.append(&header, data.as_slice()).unwrap();
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }
}

/// One path of a tree, as far as a root filesystem cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub content: Vec<u8>,
    pub rdev: (u32, u32),
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// Paths sharing this node's inode (hard links), this one included, when there are several.
    pub links: Vec<String>,
}

pub fn xattrs(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let cpath = CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 4096];
    let n = unsafe { libc::llistxattr(cpath.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    assert!(n >= 0, "llistxattr {}", path.display());
    let mut out = BTreeMap::new();
    for name in names[..n as usize]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
    {
        let cname = CString::new(name).unwrap();
        let mut value = vec![0u8; 4096];
        let len = unsafe {
            libc::lgetxattr(
                cpath.as_ptr(),
                cname.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        assert!(len >= 0);
        value.truncate(len as usize);
        out.insert(String::from_utf8_lossy(name).into_owned(), value);
    }
    out
}

pub fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    let cpath = CString::new(path.as_os_str().as_bytes()).unwrap();
    let cname = CString::new(name).unwrap();
    let ret = unsafe {
        libc::lsetxattr(
            cpath.as_ptr(),
            cname.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        ret,
        0,
        "setxattr {name} on {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

pub fn mknod(path: &Path, kind: u32, mode: u32, major: u32, minor: u32) {
    let cpath = CString::new(path.as_os_str().as_bytes()).unwrap();
    let ret = unsafe { libc::mknod(cpath.as_ptr(), kind | mode, libc::makedev(major, minor)) };
    assert_eq!(
        ret,
        0,
        "mknod {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

pub fn lchown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
}

/// Every path below `root` (not `root` itself unless `with_root`), with its node.
pub fn snapshot(root: &Path, with_root: bool) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    if with_root {
        out.insert(".".to_string(), node(root));
    }
    walk(root, root, &mut out, &mut inodes);
    for paths in inodes.values().filter(|paths| paths.len() > 1) {
        for path in paths {
            out.get_mut(path).unwrap().links = paths.clone();
        }
    }
    out
}

fn node(path: &Path) -> Node {
    let meta = fs::symlink_metadata(path).unwrap();
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        "dir"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else if ft.is_fifo() {
        "fifo"
    } else {
        "file"
    };
    let content = if ft.is_file() {
        fs::read(path).unwrap()
    } else if ft.is_symlink() {
        fs::read_link(path).unwrap().as_os_str().as_bytes().to_vec()
    } else {
        Vec::new()
    };
    Node {
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        mtime: if ft.is_symlink() { 0 } else { meta.mtime() },
        content,
        rdev: (libc::major(meta.rdev()), libc::minor(meta.rdev())),
        xattrs: xattrs(path),
        links: Vec::new(),
    }
}

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, Node>,
    inodes: &mut BTreeMap<(u64, u64), Vec<String>>,
) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let meta = fs::symlink_metadata(&path).unwrap();
        if !meta.is_dir() && meta.nlink() > 1 {
            inodes
                .entry((meta.dev(), meta.ino()))
                .or_default()
                .push(rel.clone());
        }
        out.insert(rel, node(&path));
        if meta.is_dir() {
            walk(root, &path, out, inodes);
        }
    }
}

/// Names directly inside `dir`.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Set a path's mtime (and atime) without following symlinks.
pub fn set_mtime(path: &Path, secs: i64) {
    let cpath = CString::new(path.as_os_str().as_bytes()).unwrap();
    let ts = libc::timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = [ts, ts];
    let ret = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            cpath.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(ret, 0);
}

/// A PAX extended header entry (`len key=value\n` records) and its data.
#[allow(dead_code)] // each test crate including this module uses part of it
pub fn pax_entry<K: AsRef<str>, V: AsRef<[u8]>>(records: &[(K, V)]) -> (Header, Vec<u8>) {
    let mut data = Vec::new();
    for (key, value) in records {
        let (key, value) = (key.as_ref(), value.as_ref());
        let rest = key.len() + value.len() + 3;
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        data.extend_from_slice(format!("{len} {key}=").as_bytes());
        data.extend_from_slice(value);
        data.push(b'\n');
    }
    let mut header = Header::new_ustar();
    header.set_entry_type(EntryType::XHeader);
    header.set_path("PaxHeaders/x").unwrap();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    (header, data)
}
