//! The store-wide lock: one `flock` on `<graph>/_store.lock` orders every change that must see
//! the whole store at once: a container's creation (resolve its image, record the container
//! that names it), `tag` (resolve, record), an image's registration (its parent still there,
//! rename into place) and `rmi` (check tags, children and containers, delete). A process
//! killed while holding it releases it with its last descriptor, so a crash never wedges the
//! store.
//!
//! The lock is re-entrant within a thread: a thread that holds it (say `commit`, which
//! registers and then tags) takes it again for free, so callers may nest locked operations.
//! Other threads of the same process open their own descriptor, and `flock` orders them
//! like separate processes.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::{io_err, Result};

/// The lock file's name inside the graph directory.
pub const STORE_LOCK_FILE: &str = "_store.lock";

thread_local! {
    /// (device, inode) of each store lock file this thread holds, with its nesting depth.
    static HELD: RefCell<Vec<((u64, u64), usize)>> = const { RefCell::new(Vec::new()) };
}

/// The store lock of the graph at `graph_dir`: `<graph_dir>/_store.lock`.
pub fn store_lock_path(graph_dir: &Path) -> PathBuf {
    graph_dir.join(STORE_LOCK_FILE)
}

/// A held store lock; released (or its nesting undone) on drop.
#[derive(Debug)]
pub struct StoreLock {
    key: (u64, u64),
    /// The descriptor that holds the flock; `None` for a nested hold.
    _file: Option<File>,
}

fn open(path: &Path) -> Result<(File, (u64, u64))> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err(format!("open {}", path.display())))?;
    let meta = file
        .metadata()
        .map_err(io_err(format!("stat {}", path.display())))?;
    Ok((file, (meta.dev(), meta.ino())))
}

/// Increments the nesting of `key` when this thread holds it already.
fn nest(key: (u64, u64)) -> bool {
    HELD.with(|held| {
        let mut held = held.borrow_mut();
        match held.iter_mut().find(|(k, _)| *k == key) {
            Some((_, depth)) => {
                *depth += 1;
                true
            }
            None => false,
        }
    })
}

fn record(key: (u64, u64)) {
    HELD.with(|held| held.borrow_mut().push((key, 1)));
}

impl StoreLock {
    /// Take the lock at `path` (see [`store_lock_path`]), waiting for its holder.
    pub fn acquire(path: &Path) -> Result<StoreLock> {
        let (file, key) = open(path)?;
        if nest(key) {
            return Ok(StoreLock { key, _file: None });
        }
        file.lock()
            .map_err(io_err(format!("lock {}", path.display())))?;
        record(key);
        Ok(StoreLock {
            key,
            _file: Some(file),
        })
    }

    /// Take the lock at `path` only if nobody holds it (this thread holding it counts as free);
    /// `None` when another process or thread does.
    pub fn try_acquire(path: &Path) -> Result<Option<StoreLock>> {
        let (file, key) = open(path)?;
        if nest(key) {
            return Ok(Some(StoreLock { key, _file: None }));
        }
        match file.try_lock() {
            Ok(()) => {
                record(key);
                Ok(Some(StoreLock {
                    key,
                    _file: Some(file),
                }))
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(err)) => {
                Err(io_err(format!("lock {}", path.display()))(err))
            }
        }
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            if let Some(pos) = held.iter().position(|(k, _)| *k == self.key) {
                held[pos].1 -= 1;
                if held[pos].1 == 0 {
                    held.remove(pos);
                }
            }
        });
        // The flock goes with `_file`, after the bookkeeping: a nested guard has no file.
    }
}

/// Whether this thread holds the store lock at `path`.
pub fn held_here(path: &Path) -> io::Result<bool> {
    let meta = std::fs::metadata(path)?;
    let key = (meta.dev(), meta.ino());
    Ok(HELD.with(|held| held.borrow().iter().any(|(k, _)| *k == key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nests_in_a_thread_and_excludes_other_threads() {
        let dir = tempfile::tempdir().unwrap();
        let path = store_lock_path(dir.path());
        let outer = StoreLock::acquire(&path).unwrap();
        let inner = StoreLock::acquire(&path).unwrap();
        assert!(held_here(&path).unwrap());
        let p = path.clone();
        let other = std::thread::spawn(move || StoreLock::try_acquire(&p).unwrap().is_some());
        assert!(!other.join().unwrap(), "another thread got a held lock");
        drop(inner);
        assert!(held_here(&path).unwrap());
        let p = path.clone();
        let other = std::thread::spawn(move || StoreLock::try_acquire(&p).unwrap().is_some());
        assert!(
            !other.join().unwrap(),
            "the outer hold went with the inner one"
        );
        drop(outer);
        assert!(!held_here(&path).unwrap());
        let p = path.clone();
        let other = std::thread::spawn(move || StoreLock::try_acquire(&p).unwrap().is_some());
        assert!(other.join().unwrap(), "a released lock stayed taken");
    }
}
