//! Changes of an overlay upper directory against its lower layers, as `docker diff` shows them.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ffi::{CString, OsStr, OsString};
use std::fmt;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use crate::whiteout::{self, TarName};
use crate::{sys, Error, Result};

/// Kind of a change, numbered as Docker numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    Modify = 0,
    Add = 1,
    Delete = 2,
}

/// One changed path, `/`-rooted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Change {
    pub path: String,
    pub kind: ChangeKind,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let letter = match self.kind {
            ChangeKind::Modify => 'C',
            ChangeKind::Add => 'A',
            ChangeKind::Delete => 'D',
        };
        write!(f, "{letter} {}", self.path)
    }
}

/// Changes of `upper` against the union of `lowers` (top first), sorted by path.
///
/// A path is added when no lower layer shows it, modified when one does (content is not
/// compared, as in Docker), deleted when `upper` holds a whiteout for it: a 0/0 character
/// device or a tar-form `.wh.NAME` file. In an opaque directory every name the lower layers
/// show there and `upper` does not have is deleted. A directory that exists below with the
/// same mode, owner and mtime is not a change by itself, but every ancestor of a change is
/// reported as modified (unless it was added), as modern Docker does.
pub fn changes(lowers: &[PathBuf], upper: &Path) -> Result<Vec<Change>> {
    tracing::debug!(upper = %upper.display(), layers = lowers.len(), "computing changes");
    let mut found = BTreeMap::new();
    let walk = Walk { lowers };
    walk.dir(upper, Path::new("/"), false, &mut found)?;
    let changed: Vec<PathBuf> = found.keys().cloned().collect();
    for path in changed {
        for ancestor in path
            .ancestors()
            .skip(1)
            .take_while(|a| *a != Path::new("/"))
        {
            found
                .entry(ancestor.to_path_buf())
                .or_insert(ChangeKind::Modify);
        }
    }
    // PathBuf orders component by component: `/a`, `/a/b`, `/a.b`, as a directory walk does.
    Ok(found
        .into_iter()
        .map(|(path, kind)| Change {
            path: path.to_string_lossy().into_owned(),
            kind,
        })
        .collect())
}

fn is_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// True when `path` (a directory) carries `trusted.overlay.opaque=y`.
fn has_opaque_xattr(path: &Path) -> Result<bool> {
    let cpath = CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io_err(path)(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path contains a nul byte",
        ))
    })?;
    match sys::lgetxattr(&cpath, whiteout::OPAQUE_XATTR) {
        Ok(value) => Ok(value == b"y"),
        Err(err) if matches!(err.raw_os_error(), Some(libc::ENODATA | libc::ENOTSUP)) => Ok(false),
        Err(err) => Err(io_err(path)(err)),
    }
}

fn lstat(path: &Path) -> Result<Option<Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(err) if matches!(err.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => Ok(None),
        Err(err) => Err(io_err(path)(err)),
    }
}

fn sorted_names(dir: &Path) -> Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        names.push(entry.map_err(io_err(dir))?.file_name());
    }
    names.sort();
    Ok(names)
}

fn same_dir(a: &Metadata, b: &Metadata) -> bool {
    a.mode() == b.mode()
        && a.uid() == b.uid()
        && a.gid() == b.gid()
        && a.mtime() == b.mtime()
        && a.mtime_nsec() == b.mtime_nsec()
}

/// What one lower layer says about a path.
enum Layer {
    /// The path is there (not a whiteout).
    Present(PathBuf, Metadata),
    /// The layer hides the path and everything below (whiteout, non-directory or opaque parent).
    Hidden,
    /// The layer does not mention the path; look further down.
    Absent,
}

struct Walk<'a> {
    lowers: &'a [PathBuf],
}

impl Walk<'_> {
    /// Look `rel` up in one layer, honouring its whiteouts and opaque directories.
    fn in_layer(&self, layer: &Path, rel: &Path) -> Result<Layer> {
        let comps: Vec<&OsStr> = rel
            .components()
            .filter_map(|c| {
                if let Component::Normal(c) = c {
                    Some(c)
                } else {
                    None
                }
            })
            .collect();
        let mut path = layer.to_path_buf();
        let mut opaque_above = false;
        let check_dir = |path: &Path, opaque_above: &mut bool| -> Result<()> {
            if has_opaque_xattr(path)? {
                *opaque_above = true;
            }
            Ok(())
        };
        if comps.is_empty() {
            let meta = lstat(&path)?
                .ok_or_else(|| io_err(layer)(io::Error::from_raw_os_error(libc::ENOENT)))?;
            return Ok(Layer::Present(path, meta));
        }
        check_dir(&path, &mut opaque_above)?;
        for (index, comp) in comps.iter().enumerate() {
            path.push(comp);
            let Some(meta) = lstat(&path)? else {
                return Ok(if opaque_above {
                    Layer::Hidden
                } else {
                    Layer::Absent
                });
            };
            if is_whiteout(&meta) {
                return Ok(Layer::Hidden);
            }
            if index + 1 == comps.len() {
                return Ok(Layer::Present(path, meta));
            }
            if !meta.is_dir() {
                return Ok(Layer::Hidden);
            }
            check_dir(&path, &mut opaque_above)?;
        }
        unreachable!("the loop returns at the last component")
    }

    /// The metadata of `rel` in the union of the lower layers, if it exists there.
    fn lower(&self, rel: &Path) -> Result<Option<Metadata>> {
        for layer in self.lowers {
            match self.in_layer(layer, rel)? {
                Layer::Present(_, meta) => return Ok(Some(meta)),
                Layer::Hidden => return Ok(None),
                Layer::Absent => {}
            }
        }
        Ok(None)
    }

    /// The names the union of the lower layers shows in directory `rel`.
    fn lower_children(&self, rel: &Path) -> Result<BTreeSet<OsString>> {
        let mut names = BTreeSet::new();
        let mut seen = HashSet::new();
        for layer in self.lowers {
            let (path, meta) = match self.in_layer(layer, rel)? {
                Layer::Present(path, meta) => (path, meta),
                Layer::Hidden => break,
                Layer::Absent => continue,
            };
            if !meta.is_dir() {
                break;
            }
            for name in sorted_names(&path)? {
                if !seen.insert(name.clone()) {
                    continue;
                }
                let child = lstat(&path.join(&name))?;
                if child.as_ref().is_some_and(|meta| !is_whiteout(meta)) {
                    names.insert(name);
                }
            }
            if has_opaque_xattr(&path)? {
                break;
            }
        }
        Ok(names)
    }

    /// Record the changes below the upper directory `dir`, which is `rel` in the image.
    /// `opaque_above`: an ancestor is opaque, so the lower layers are not merged in here.
    fn dir(
        &self,
        dir: &Path,
        rel: &Path,
        opaque_above: bool,
        found: &mut BTreeMap<PathBuf, ChangeKind>,
    ) -> Result<()> {
        let names = sorted_names(dir)?;
        let opaque = opaque_above
            || has_opaque_xattr(dir)?
            || names
                .iter()
                .any(|name| name.as_bytes() == whiteout::OPAQUE_MARKER);
        if opaque {
            let present: HashSet<&OsStr> = names.iter().map(|n| n.as_os_str()).collect();
            for name in self.lower_children(rel)? {
                if !present.contains(name.as_os_str()) {
                    found.insert(rel.join(name), ChangeKind::Delete);
                }
            }
        }
        for name in &names {
            match whiteout::classify(name.as_bytes()) {
                TarName::Plain => {}
                TarName::Opaque | TarName::Meta => continue,
                TarName::Deleted(deleted) => {
                    found.insert(rel.join(OsStr::from_bytes(deleted)), ChangeKind::Delete);
                    continue;
                }
            }
            let path = dir.join(name);
            let rel_path = rel.join(name);
            // Gone since the listing (a running container).
            let Some(meta) = lstat(&path)? else { continue };
            if is_whiteout(&meta) {
                found.insert(rel_path, ChangeKind::Delete);
                continue;
            }
            let kind = match self.lower(&rel_path)? {
                None => Some(ChangeKind::Add),
                Some(lower) if meta.is_dir() && lower.is_dir() && same_dir(&meta, &lower) => None,
                Some(_) => Some(ChangeKind::Modify),
            };
            if let Some(kind) = kind {
                found.entry(rel_path.clone()).or_insert(kind);
            }
            if meta.is_dir() {
                self.dir(&path, &rel_path, opaque, found)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_uses_docker_letters() {
        let change = |kind| {
            Change {
                path: "/etc/passwd".into(),
                kind,
            }
            .to_string()
        };
        assert_eq!(change(ChangeKind::Modify), "C /etc/passwd");
        assert_eq!(change(ChangeKind::Add), "A /etc/passwd");
        assert_eq!(change(ChangeKind::Delete), "D /etc/passwd");
        assert_eq!(ChangeKind::Delete as u8, 2);
    }
}
