//! The init layer: a per-container read-only layer between the image and the container's upper
//! dir that holds exactly the mount points sysinit needs and the image lacks (`/proc`, `/sys`,
//! `/dev`, `/etc` and empty `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf`, where the
//! container's own files are bound: see [`crate::etcfiles`]), as Docker's `<id>-init` layer
//! does.
//!
//! Without it sysinit would create them in the upper dir, where `dock diff` shows them and
//! `dock commit` captures them. With it they are part of the container's lower layers: `diff`
//! and `commit` (which only read the upper dir) never see them, while `export` (a tar of the
//! mounted union) contains them as empty entries, as Docker's export does.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Directories sysinit mounts on at the top of the container's tree.
const MOUNT_DIRS: [&str; 3] = ["proc", "sys", "dev"];
/// The files sysinit binds the container's own onto, and their directory.
const ETC: &str = "etc";
const ETC_FILES: [&str; 3] = ["etc/hostname", "etc/hosts", "etc/resolv.conf"];

/// What the union of the image's layers has at a path.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    Missing,
    Dir,
    /// A file, symlink or anything else that is not a directory.
    Other,
}

/// Fills the empty directory `dir` with the mount points that the image (`lowers`, top first)
/// does not have. On error `dir` is left for the caller to remove with the container.
pub fn prepare(dir: &Path, lowers: &[PathBuf]) -> Result<()> {
    let mkdir = |rel: &str| {
        let path = dir.join(rel);
        tracing::debug!(path = %path.display(), "init layer: mount point directory");
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&path)
            .map_err(|e| Error::io(&path, e))
    };
    for name in MOUNT_DIRS {
        if lookup(lowers, name)? == Entry::Missing {
            mkdir(name)?;
        }
    }
    // A symlinked /etc (or file) is followed by sysinit in the merged tree; shadowing it
    // with a directory here would change what the image means.
    let etc = lookup(lowers, ETC)?;
    if etc == Entry::Other {
        return Ok(());
    }
    let mut made_etc = false;
    for rel in ETC_FILES {
        if lookup(lowers, rel)? != Entry::Missing {
            continue;
        }
        if !made_etc {
            // Holds the files; where the image has /etc, overlayfs merges the two directories.
            mkdir(ETC)?;
            made_etc = true;
        }
        let path = dir.join(rel);
        tracing::debug!(path = %path.display(), "init layer: /etc file mount point");
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

/// What the union of `lowers` (top first) shows at `rel` (relative, `/`-separated), honouring
/// whiteouts (0/0 character devices) and opaque directories as overlayfs does.
fn lookup(lowers: &[PathBuf], rel: &str) -> Result<Entry> {
    let parts: Vec<&str> = rel.split('/').collect();
    for layer in lowers {
        let mut path = layer.clone();
        let mut opaque_above = false;
        let mut verdict = None;
        for (index, part) in parts.iter().enumerate() {
            path.push(part);
            let meta = match fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                    // An opaque directory above hides whatever lower layers have here.
                    verdict = opaque_above.then_some(Entry::Missing);
                    break;
                }
                Err(e) => return Err(Error::io(&path, e)),
            };
            if meta.file_type().is_char_device() && meta.rdev() == 0 {
                verdict = Some(Entry::Missing);
                break;
            }
            if index + 1 == parts.len() {
                verdict = Some(if meta.is_dir() {
                    Entry::Dir
                } else {
                    Entry::Other
                });
                break;
            }
            if !meta.is_dir() {
                verdict = Some(Entry::Missing);
                break;
            }
            opaque_above |= is_opaque(&path)?;
        }
        if let Some(verdict) = verdict {
            return Ok(verdict);
        }
    }
    Ok(Entry::Missing)
}

/// Whether the directory `path` carries `trusted.overlay.opaque=y`.
fn is_opaque(path: &Path) -> Result<bool> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::io(path, io::Error::from(io::ErrorKind::InvalidInput)))?;
    let mut value = [0u8; 4];
    // SAFETY: lgetxattr with a nul-terminated path and name and a buffer of the given size.
    let len = unsafe {
        libc::lgetxattr(
            c_path.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    if len < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENODATA | libc::ENOTSUP | libc::ERANGE) => Ok(false),
            _ => Err(Error::io(path, e)),
        };
    }
    Ok(&value[..len as usize] == b"y")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut all = Vec::new();
        for entry in walk(dir) {
            all.push(
                entry
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        all.sort();
        all
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).unwrap().flatten() {
            out.push(entry.path());
            if entry.file_type().unwrap().is_dir() {
                out.extend(walk(&entry.path()));
            }
        }
        out
    }

    #[test]
    fn a_bare_image_gets_every_mount_point() {
        let tmp = tempfile::tempdir().unwrap();
        let layer = tmp.path().join("layer");
        fs::create_dir_all(layer.join("bin")).unwrap();
        let init = tmp.path().join("init");
        fs::create_dir(&init).unwrap();
        prepare(&init, &[layer]).unwrap();
        assert_eq!(
            names(&init),
            [
                "dev",
                "etc",
                "etc/hostname",
                "etc/hosts",
                "etc/resolv.conf",
                "proc",
                "sys"
            ]
        );
        let resolv = fs::metadata(init.join("etc/resolv.conf")).unwrap();
        assert!(resolv.is_file() && resolv.len() == 0);
    }

    #[test]
    fn what_any_layer_has_is_left_out_and_whiteouts_count_as_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let (top, base) = (tmp.path().join("top"), tmp.path().join("base"));
        for dir in ["proc", "sys", "dev", "etc"] {
            fs::create_dir_all(base.join(dir)).unwrap();
        }
        fs::create_dir_all(&top).unwrap();
        // The top layer deletes /sys: a whiteout is a 0/0 character device.
        let whiteout = CString::new(top.join("sys").as_os_str().as_bytes()).unwrap();
        // SAFETY: mknod of a fresh path in our temp dir.
        assert_eq!(
            unsafe { libc::mknod(whiteout.as_ptr(), libc::S_IFCHR | 0o600, 0) },
            0
        );
        let init = tmp.path().join("init");
        fs::create_dir(&init).unwrap();
        prepare(&init, &[top.clone(), base.clone()]).unwrap();
        // /etc exists below, so only the files are added and the directory merges with it.
        assert_eq!(
            names(&init),
            ["etc", "etc/hostname", "etc/hosts", "etc/resolv.conf", "sys"]
        );

        // An image with everything gets an empty init layer.
        fs::write(base.join("etc/resolv.conf"), "nameserver 10.0.0.1\n").unwrap();
        fs::write(base.join("etc/hosts"), "").unwrap();
        fs::write(base.join("etc/hostname"), "").unwrap();
        let full = tmp.path().join("full");
        fs::create_dir(&full).unwrap();
        prepare(&full, &[base]).unwrap();
        assert_eq!(names(&full), Vec::<String>::new());
    }

    #[test]
    fn a_symlinked_etc_is_not_shadowed() {
        let tmp = tempfile::tempdir().unwrap();
        let layer = tmp.path().join("layer");
        fs::create_dir_all(layer.join("private/etc")).unwrap();
        std::os::unix::fs::symlink("private/etc", layer.join("etc")).unwrap();
        let init = tmp.path().join("init");
        fs::create_dir(&init).unwrap();
        prepare(&init, &[layer]).unwrap();
        assert_eq!(names(&init), ["dev", "proc", "sys"]);
    }
}
