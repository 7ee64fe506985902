//! Store directories that only their owner (root) can enter.
//!
//! Layers keep what images carry, setuid-root binaries and device nodes among them, so no
//! other host user may reach them. Closing the few directories above them is enough, and
//! cheap: a directory that is already private costs one stat, and only a store made by an
//! older dock (0755 directories) is changed, once.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// The mode of a private store directory: its owner only.
pub const PRIVATE_MODE: u32 = 0o700;

/// What [`ensure_private`] and [`tighten`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirMode {
    /// Was private already; nothing changed.
    Private,
    /// Created, private.
    Created,
    /// Had permissions for group or others (`from`); now [`PRIVATE_MODE`].
    Tightened { from: u32 },
}

/// Whether `mode` lets anyone but the owner in.
pub fn is_open(mode: u32) -> bool {
    mode & 0o077 != 0
}

/// Make `dir` private: create it with [`PRIVATE_MODE`] (its missing parents as usual), or
/// take group's and others' permissions off it.
pub fn ensure_private(dir: &Path) -> io::Result<DirMode> {
    if let Some(found) = tighten(dir)? {
        return Ok(found);
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    match fs::DirBuilder::new().mode(PRIVATE_MODE).create(dir) {
        Ok(()) => {
            tracing::debug!(dir = %dir.display(), "created private directory");
            Ok(DirMode::Created)
        }
        // Another process made it meanwhile, with whatever mode: check it again.
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => tighten(dir)?.ok_or(err),
        Err(err) => Err(err),
    }
}

/// Take group's and others' permissions off `dir` if it exists (`None` if it does not).
pub fn tighten(dir: &Path) -> io::Result<Option<DirMode>> {
    let metadata = match fs::metadata(dir) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    if !metadata.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        ));
    }
    let mode = metadata.permissions().mode() & 0o7777;
    if !is_open(mode) {
        return Ok(Some(DirMode::Private));
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(PRIVATE_MODE))?;
    tracing::debug!(dir = %dir.display(), from = format!("{mode:o}"), "made directory private");
    Ok(Some(DirMode::Tightened { from: mode }))
}

/// [`tighten`] each directory directly in `dir` (not deeper, and not through symlinks); how
/// many were changed. For the entries of a store directory an older dock left open.
pub fn tighten_subdirs(dir: &Path) -> io::Result<usize> {
    let mut changed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        match tighten(&entry.path()) {
            Ok(Some(DirMode::Tightened { .. })) => changed += 1,
            Ok(_) => {}
            // Removed meanwhile by another process.
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
    }
    Ok(changed)
}

/// [`ensure_private`] `dir` and, when it was open (an older dock's), [`tighten_subdirs`] it:
/// the entries of an open store directory were made open too.
pub fn ensure_private_tree(dir: &Path) -> io::Result<DirMode> {
    let found = ensure_private(dir)?;
    if let DirMode::Tightened { .. } = found {
        tighten_subdirs(dir)?;
    }
    Ok(found)
}

/// [`tighten`] `dir` if it exists and, when it was open, [`tighten_subdirs`] it.
pub fn tighten_tree(dir: &Path) -> io::Result<Option<DirMode>> {
    let found = tighten(dir)?;
    if let Some(DirMode::Tightened { .. }) = found {
        tighten_subdirs(dir)?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn creates_a_private_dir_and_its_parents() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/store");
        assert_eq!(ensure_private(&dir).unwrap(), DirMode::Created);
        assert_eq!(mode(&dir), PRIVATE_MODE);
        // Parents are made as any directory is, not private.
        assert!(mode(&tmp.path().join("a/b")) & 0o700 == 0o700);
        assert_eq!(ensure_private(&dir).unwrap(), DirMode::Private);
    }

    #[test]
    fn an_open_dir_is_tightened_and_a_private_one_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        fs::create_dir(&dir).unwrap();
        for open in [0o755, 0o750, 0o711, 0o701, 0o770, 0o2755] {
            chmod(&dir, open);
            assert_eq!(
                ensure_private(&dir).unwrap(),
                DirMode::Tightened { from: open }
            );
            assert_eq!(mode(&dir), PRIVATE_MODE);
        }
        // Closed to others already, whatever the owner keeps: not touched.
        chmod(&dir, 0o500);
        assert_eq!(tighten(&dir).unwrap(), Some(DirMode::Private));
        assert_eq!(mode(&dir), 0o500);
        assert_eq!(tighten(&tmp.path().join("absent")).unwrap(), None);
    }

    #[test]
    fn a_file_in_the_way_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        fs::write(&file, "").unwrap();
        let err = ensure_private(&file).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotADirectory);
    }

    #[test]
    fn subdirs_are_tightened_one_level_deep_only() {
        let tmp = tempfile::tempdir().unwrap();
        let top = &tmp.path().join("top");
        let elsewhere = tmp.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        chmod(&elsewhere, 0o755);
        for sub in ["open/layer", "closed"] {
            fs::create_dir_all(top.join(sub)).unwrap();
        }
        chmod(&top.join("open"), 0o755);
        chmod(&top.join("open/layer"), 0o755);
        chmod(&top.join("closed"), 0o700);
        fs::write(top.join("file"), "").unwrap();
        chmod(&top.join("file"), 0o644);
        std::os::unix::fs::symlink(&elsewhere, top.join("link")).unwrap();

        assert_eq!(tighten_subdirs(top).unwrap(), 1);
        assert_eq!(mode(&top.join("open")), PRIVATE_MODE);
        // A layer's own root keeps its mode: it is the container's `/`.
        assert_eq!(mode(&top.join("open/layer")), 0o755);
        assert_eq!(mode(&top.join("file")), 0o644);
        assert_eq!(mode(&elsewhere), 0o755);
    }

    #[test]
    fn a_tree_is_walked_only_when_its_top_was_open() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().join("top");
        assert_eq!(tighten_tree(&top).unwrap(), None);
        assert_eq!(ensure_private_tree(&top).unwrap(), DirMode::Created);
        fs::create_dir(top.join("sub")).unwrap();
        chmod(&top.join("sub"), 0o755);
        // A private top: its entries are not looked at.
        assert_eq!(tighten_tree(&top).unwrap(), Some(DirMode::Private));
        assert_eq!(mode(&top.join("sub")), 0o755);
        chmod(&top, 0o755);
        assert_eq!(
            tighten_tree(&top).unwrap(),
            Some(DirMode::Tightened { from: 0o755 })
        );
        assert_eq!(mode(&top.join("sub")), PRIVATE_MODE);
        chmod(&top, 0o711);
        chmod(&top.join("sub"), 0o755);
        assert_eq!(
            ensure_private_tree(&top).unwrap(),
            DirMode::Tightened { from: 0o711 }
        );
        assert_eq!(mode(&top.join("sub")), PRIVATE_MODE);
    }
}
