//! `docker cp` inside the runtime: stat, archive and extract one path of a container,
//! running or stopped, without ever leaving its tree.
//!
//! Every path is first resolved as a string by [`paths::resolve`] (symlinks followed as if
//! the container's root were `/`), then opened with `openat2(RESOLVE_IN_ROOT)` under the
//! container's root descriptor, so a symlink swapped in between still cannot lead out. Tars
//! are written from and extracted into descriptors ([`tarfilter`]), never host paths.
//!
//! Which tree: a stopped container's overlay is mounted for the copy (under the container's
//! lock, unmounted when the [`CopyRoot`] drops). A running container's paths are reached
//! through its mounted rootfs, and paths inside its volumes, binds and tmpfs through
//! `/proc/PID/root` of its first process (its own mount namespace), as are its `/etc/hosts`,
//! `/etc/hostname` and `/etc/resolv.conf`. A stopped container's
//! mounts are not mounted: a path inside one is refused with [`Error::StoppedMount`].

pub mod paths;
pub mod tarfilter;

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::container::{self, Container, Lock};
use crate::volumes::MountPoint;
use crate::{overlay, procs, Runtime};

pub use tarfilter::{archive_fd, extract_into, fd_path, rewrite, Rewrite};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Docker's words: the CLI and tools print and match them.
    #[error("Could not find the file {path} in container {container}")]
    NotFound { path: String, container: String },
    #[error("extraction point is not a directory")]
    NotADirectory { path: String },
    #[error("container rootfs is marked read-only")]
    ReadOnlyRootfs,
    #[error("mounted volume is marked read-only")]
    ReadOnlyVolume { destination: String },
    #[error(
        "cannot copy {path} of container {container}: it lies in the mount at {destination}, \
         which is mounted only while the container runs"
    )]
    StoppedMount {
        path: String,
        container: String,
        destination: String,
    },
    #[error("cannot overwrite directory {path:?} with non-directory {dest:?}")]
    OverwriteDir { path: String, dest: String },
    #[error("cannot overwrite non-directory {path:?} with directory {dest:?}")]
    OverwriteNonDir { path: String, dest: String },
    #[error(
        "archive entry {entry} would land under the mount at {destination}, where the \
         container would not see it: copy into {destination} itself"
    )]
    UnderMount { entry: String, destination: String },
    #[error("archive entry {entry}: whiteout names (.wh.*) cannot be copied")]
    Whiteout { entry: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("read the archive: {0}")]
    Tar(#[source] io::Error),
    #[error(transparent)]
    Archive(#[from] archive::Error),
}

/// What `HEAD .../archive` answers in `X-Docker-Container-Path-Stat` (moby's
/// `ContainerPathStat`): `mode` carries Go's `os.FileMode` bits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    pub mode: u32,
    pub mtime: DateTime<Utc>,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

impl PathStat {
    pub fn is_dir(&self) -> bool {
        paths::go_mode_is_dir(self.mode)
    }

    pub fn is_symlink(&self) -> bool {
        paths::go_mode_is_symlink(self.mode)
    }
}

/// How [`CopyRoot::extract`] writes (the query of `PUT .../archive`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractOptions {
    /// Refuse to replace a directory with a non-directory or the other way round.
    pub no_overwrite_dir_non_dir: bool,
    /// Keep the archive's owners (`cp -a`); otherwise everything belongs to root.
    pub copy_uid_gid: bool,
}

/// A container's tree opened for copying; a stopped container's overlay stays mounted, and
/// its lock held, until this drops.
pub struct CopyRoot {
    container: Container,
    /// The name the container was asked by, for messages.
    asked: String,
    rootfs: Option<OwnedFd>,
    /// `/proc/PID/root` of a running container's first process: its mounts included.
    ns_root: Option<OwnedFd>,
    mounted: Option<PathBuf>,
    _lock: Option<Lock>,
}

impl Drop for CopyRoot {
    fn drop(&mut self) {
        self.rootfs.take();
        self.ns_root.take();
        if let Some(rootfs) = self.mounted.take() {
            tracing::debug!(rootfs = %rootfs.display(), "unmounting the rootfs mounted for a copy");
            if let Err(e) = overlay::unmount(&rootfs) {
                tracing::warn!(rootfs = %rootfs.display(), error = %e, "unmounting after a copy failed");
            }
        }
    }
}

fn open_dir(path: &std::path::Path) -> crate::Result<OwnedFd> {
    File::open(path)
        .map(OwnedFd::from)
        .map_err(|e| crate::Error::io(path, e))
}

impl Runtime {
    /// Opens container `name` (name, id or prefix) for copying; a stopped one is mounted.
    pub fn copy_root(&self, name: &str) -> crate::Result<CopyRoot> {
        let c = self.get(name)?;
        let paths = self.paths(&c.id);
        let rootfs = paths.rootfs();
        if c.state.running {
            if !overlay::is_mounted(&rootfs) {
                return Err(crate::Error::Mount {
                    path: rootfs,
                    message: "container is starting, its rootfs is not mounted yet".into(),
                });
            }
            let ns_root = c.init.and_then(|p| {
                let fd = open_dir(&PathBuf::from(format!("/proc/{}/root", p.pid))).ok()?;
                // Opened, then checked: a reused pid is never taken for the container's.
                procs::is_same(p.pid, p.start_time).then_some(fd)
            });
            return Ok(CopyRoot {
                rootfs: Some(open_dir(&rootfs)?),
                container: c,
                asked: name.to_string(),
                ns_root,
                mounted: None,
                _lock: None,
            });
        }
        // The lock keeps a monitor from claiming the container while it is mounted for us.
        let lock = Lock::acquire(&paths.lock())?;
        let c = container::load(&paths.config())?;
        if c.state.running {
            drop(lock);
            return self.copy_root(&c.id);
        }
        let lowers = self.lowers(&c)?;
        tracing::debug!(id = %c.id, rootfs = %rootfs.display(), "mounting a stopped container's rootfs for a copy");
        overlay::mount(
            &lowers,
            &paths.upper(),
            &paths.work(),
            &rootfs,
            overlay::Sync::Durable,
        )?;
        let mut root = CopyRoot {
            container: c,
            asked: name.to_string(),
            rootfs: None,
            ns_root: None,
            mounted: Some(rootfs.clone()),
            _lock: Some(lock),
        };
        root.rootfs = Some(open_dir(&rootfs)?);
        Ok(root)
    }
}

/// A `/`-rooted, symlink-free path as the relative name `openat2` wants.
fn c_rel(path: &str) -> CString {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    CString::new(rel).unwrap_or_else(|_| c".".into())
}

/// `path` (absolute) opened under `root` with `RESOLVE_IN_ROOT`: nothing outside `root`.
fn open_in(root: BorrowedFd<'_>, path: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    if path.as_bytes().contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    sysinit::openat2(
        root,
        &c_rel(path),
        flags | libc::O_CLOEXEC,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    )
}

/// [`paths::Lookup`] over a root descriptor.
struct FdLookup<'a>(BorrowedFd<'a>);

impl paths::Lookup for FdLookup<'_> {
    fn kind(&self, path: &str) -> io::Result<paths::Kind> {
        let fd = open_in(self.0, path, libc::O_PATH | libc::O_NOFOLLOW)?;
        let st = tarfilter::fstat(fd.as_fd())?;
        Ok(match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => paths::Kind::Dir,
            libc::S_IFLNK => paths::Kind::Symlink,
            _ => paths::Kind::Other,
        })
    }

    fn readlink(&self, path: &str) -> io::Result<String> {
        let fd = open_in(self.0, path, libc::O_PATH | libc::O_NOFOLLOW)?;
        let target = tarfilter::readlink_fd(fd.as_fd())?;
        Ok(String::from_utf8_lossy(&target).into_owned())
    }
}

fn is_missing(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR))
}

/// One resolved path: where it is, its descriptor (`O_PATH | O_NOFOLLOW`) and its stat.
struct Found<'a> {
    fd: OwnedFd,
    st: libc::stat,
    mount: Option<&'a MountPoint>,
}

impl CopyRoot {
    pub fn container(&self) -> &Container {
        &self.container
    }

    fn rootfs(&self) -> BorrowedFd<'_> {
        self.rootfs
            .as_ref()
            .expect("open while the CopyRoot lives")
            .as_fd()
    }

    /// The tree symlinks are read in: the container's own view when it runs.
    fn lookup(&self) -> FdLookup<'_> {
        FdLookup(
            self.ns_root
                .as_ref()
                .map_or_else(|| self.rootfs(), |fd| fd.as_fd()),
        )
    }

    fn io_err(&self, path: &str) -> impl Fn(io::Error) -> Error + '_ {
        let path = path.to_string();
        move |source| Error::Io {
            path: path.clone(),
            source,
        }
    }

    fn not_found(&self, path: &str) -> Error {
        Error::NotFound {
            path: path.to_string(),
            container: self.asked.clone(),
        }
    }

    /// The mount `resolved` lies in, and the root descriptor that reaches it.
    fn view(&self, resolved: &str) -> Result<(BorrowedFd<'_>, Option<&MountPoint>), Error> {
        let mount = self
            .container
            .mounts
            .iter()
            .filter(|m| paths::is_within(resolved, &paths::clean(&m.destination)))
            .max_by_key(|m| m.destination.len());
        // A running container's hostname, hosts and resolv.conf are bind mounts of its own.
        let etc_file = crate::etcfiles::FILES
            .iter()
            .any(|(_, inside)| *inside == resolved);
        match (mount, &self.ns_root) {
            (None, Some(ns)) if etc_file => Ok((ns.as_fd(), None)),
            (None, _) => Ok((self.rootfs(), None)),
            (Some(m), Some(ns)) => Ok((ns.as_fd(), Some(m))),
            (Some(m), None) => Err(Error::StoppedMount {
                path: resolved.to_string(),
                container: self.asked.clone(),
                destination: m.destination.clone(),
            }),
        }
    }

    /// The container's mounts strictly below the directory `resolved`, as (path relative to
    /// it, destination): an extraction there would land hidden under the mount.
    fn mounts_below(&self, resolved: &str) -> Vec<(String, String)> {
        self.container
            .mounts
            .iter()
            .filter_map(|m| {
                let destination = paths::clean(&m.destination);
                let rel = destination.strip_prefix(resolved.trim_end_matches('/'))?;
                let rel = rel.strip_prefix('/')?;
                (!rel.is_empty()).then(|| (rel.to_string(), m.destination.clone()))
            })
            .collect()
    }

    /// Opens `resolved` (its last element not followed); `asked` names it in errors.
    fn find(&self, resolved: &str, asked: &str) -> Result<Found<'_>, Error> {
        let (root, mount) = self.view(resolved)?;
        let fd = match open_in(root, resolved, libc::O_PATH | libc::O_NOFOLLOW) {
            Ok(fd) => fd,
            Err(e) if is_missing(&e) => return Err(self.not_found(asked)),
            Err(e) => return Err(self.io_err(asked)(e)),
        };
        let st = tarfilter::fstat(fd.as_fd()).map_err(self.io_err(asked))?;
        Ok(Found { fd, st, mount })
    }

    /// The daemon's `ResolvePath`: the parent resolved in the container, the last element not.
    fn resolve_source(&self, path: &str) -> Result<(String, String), Error> {
        let abs = paths::container_abs(path);
        let (dir, base) = paths::split(&abs);
        let dir = paths::resolve(&self.lookup(), dir, true).map_err(self.io_err(path))?;
        let resolved = match base {
            "" | "." => dir,
            base => paths::clean(&format!("{dir}/{base}")),
        };
        Ok((abs, resolved))
    }

    /// `HEAD .../archive`: what `path` is (a symlink itself, with its target resolved in the
    /// container as `linkTarget`).
    pub fn stat(&self, path: &str) -> Result<PathStat, Error> {
        let (abs, resolved) = self.resolve_source(path)?;
        let found = self.find(&resolved, path)?;
        Ok(self.path_stat(&abs, &found))
    }

    fn path_stat(&self, abs: &str, found: &Found<'_>) -> PathStat {
        let st = &found.st;
        let link_target = if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            paths::resolve(&self.lookup(), abs, true).unwrap_or_default()
        } else {
            String::new()
        };
        let mtime =
            DateTime::from_timestamp(st.st_mtime, st.st_mtime_nsec as u32).unwrap_or_default();
        PathStat {
            name: paths::base(abs),
            size: st.st_size,
            mode: paths::go_file_mode(st.st_mode),
            mtime,
            link_target,
        }
    }

    /// `GET .../archive`: `path` as a tar whose entries start with its name (`.` for a path
    /// ending in `/.`, so its contents); `on_stat` sees the stat before any byte is written
    /// and gives the writer.
    pub fn archive<W: Write>(
        &self,
        path: &str,
        on_stat: impl FnOnce(&PathStat) -> io::Result<W>,
    ) -> Result<PathStat, Error> {
        let (abs, resolved) = self.resolve_source(path)?;
        let found = self.find(&resolved, path)?;
        let stat = self.path_stat(&abs, &found);
        let out = on_stat(&stat).map_err(self.io_err(path))?;
        let name = match paths::base(&abs).as_str() {
            "/" => ".".to_string(),
            name => name.to_string(),
        };
        tracing::debug!(container = %self.container.id, %path, %resolved, %name, "archiving a path");
        archive_fd(found.fd.as_fd(), &name, out)?;
        Ok(stat)
    }

    /// `PUT .../archive`: extracts the tar `input` into the directory `path` (symlinks, the
    /// last element's too, followed inside the container).
    pub fn extract(&self, path: &str, input: impl Read, opts: ExtractOptions) -> Result<(), Error> {
        let abs = paths::container_abs(path);
        let resolved = paths::resolve(&self.lookup(), &abs, true).map_err(self.io_err(path))?;
        let found = self.find(&resolved, path)?;
        if found.st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(Error::NotADirectory {
                path: path.to_string(),
            });
        }
        match found.mount {
            Some(m) if !m.rw => {
                return Err(Error::ReadOnlyVolume {
                    destination: m.destination.clone(),
                })
            }
            None if self.container.host_config.readonly_rootfs => {
                return Err(Error::ReadOnlyRootfs)
            }
            _ => {}
        }
        let dir: OwnedFd = File::open(fd_path(found.fd.as_fd()))
            .map_err(self.io_err(path))?
            .into();
        tracing::debug!(container = %self.container.id, %path, %resolved, "extracting into a path");
        let how = Rewrite {
            rebase: None,
            no_overwrite_dir_non_dir: opts
                .no_overwrite_dir_non_dir
                .then(|| (dir.as_fd(), resolved.clone())),
            owner: (!opts.copy_uid_gid).then_some((0, 0)),
            prefix_dot: false,
            mounts_below: self.mounts_below(&resolved),
        };
        extract_into(&dir, input, &how)
    }
}

/// Renaming: Docker's name rule (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`) and its errors.
impl Runtime {
    /// Renames container `name` to `new` (a leading `/` allowed), running or not; unique under
    /// the lock `create` takes.
    pub fn rename(&self, name: &str, new: &str) -> crate::Result<()> {
        let new = new.strip_prefix('/').unwrap_or(new);
        if name.is_empty() || new.is_empty() {
            return Err(crate::Error::InvalidOption(
                "Neither old nor new names may be empty".into(),
            ));
        }
        if !valid_name(new) {
            return Err(crate::Error::InvalidName(new.to_string()));
        }
        let c = self.get(name)?;
        if c.name == new {
            return Err(crate::Error::InvalidOption(
                "Renaming a container with the same name as its current name".into(),
            ));
        }
        let _names = Lock::acquire(&self.containers.join(".names.lock"))?;
        if let Some(holder) = self.list()?.into_iter().find(|o| o.name == new) {
            return Err(crate::Error::NameInUse {
                name: new.to_string(),
                holder: holder.id,
            });
        }
        let paths = self.paths(&c.id);
        let _lock = Lock::acquire(&paths.lock())?;
        let mut c = container::load(&paths.config())?;
        tracing::debug!(id = %c.id, old = %c.name, %new, "renaming container");
        c.name = new.to_string();
        container::save(&paths.config(), &c)
    }
}

/// Docker's `RestrictedNamePattern`: at least two characters.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_follow_dockers_pattern() {
        assert!(super::valid_name("web-1.a_b"));
        assert!(super::valid_name("ab"));
        assert!(!super::valid_name("a"));
        assert!(!super::valid_name("-ab"));
        assert!(!super::valid_name("a b"));
        assert!(!super::valid_name("a/b"));
    }

    #[test]
    fn path_stat_serializes_as_docker_sends_it() {
        let stat = super::PathStat {
            name: "hosts".into(),
            size: 3,
            mode: super::paths::go_file_mode(libc::S_IFREG | 0o644),
            mtime: chrono::DateTime::from_timestamp(1, 5).unwrap(),
            link_target: String::new(),
        };
        let v = serde_json::to_value(&stat).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys.len(), 5);
        for key in ["name", "size", "mode", "mtime", "linkTarget"] {
            assert!(v.get(key).is_some(), "{key} missing in {v}");
        }
        assert_eq!(v["mode"], 0o644);
        assert!(v["mtime"]
            .as_str()
            .unwrap()
            .starts_with("1970-01-01T00:00:01"));
    }
}
