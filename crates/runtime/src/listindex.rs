//! The containers' listing index, `containers/_index/containers`: one line per container,
//! `<id> <inode> <mtime s> <mtime ns> <size> <its config.json as read>`. A listing stats each
//! config (one `fstatat`, no open or read) and parses the indexed copy when the file is still
//! the one indexed, else reads the file. A config is replaced by rename (a new inode), and one
//! damaged in place gets a new time: either way its stat differs from the index's. A config
//! is indexed only once its time is settled ([`graph::stamped::settled`]), so that no later
//! change can land on the same (coarse) timestamp. A config that does not parse is indexed as
//! well: listings that parse less of each config ([`crate::container::Row`]) or all of it keep
//! one index between them, and a config that does not parse is read again to say why. A crash
//! leaves at most a stale line, which the stat refuses, or a temp file of a dead writer, which
//! the next rewrite removes.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::sys::stat::{fstatat, FileStat};

/// The index's file name in `containers/<graph::INDEX_DIR>/`.
pub(crate) const INDEX_FILE: &str = "containers";
const MAGIC: &str = "dock-container-index 1";

/// What identifies one version of a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    inode: u64,
    mtime: i64,
    mtime_ns: i64,
    size: i64,
}

impl FileStamp {
    /// The stamp of `<id>/config.json` under the containers directory `dir`; None when it
    /// cannot be stated (the read that follows reports why).
    pub(crate) fn of(dir: &fs::File, id: &str) -> Option<FileStamp> {
        let relative = format!("{id}/{}", crate::container::CONFIG_FILE);
        let stat: FileStat = fstatat(dir, relative.as_str(), nix::fcntl::AtFlags::empty()).ok()?;
        Some(FileStamp {
            inode: stat.st_ino,
            mtime: stat.st_mtime,
            mtime_ns: stat.st_mtime_nsec,
            size: stat.st_size,
        })
    }

    /// Whether a change after `now` is sure to give the file another time.
    pub(crate) fn settled(&self, now: SystemTime) -> bool {
        graph::stamped::settled(self.mtime, self.mtime_ns, now)
    }
}

/// The index as read: its text, and each container's stamp and config text within it.
#[derive(Default)]
pub(crate) struct Index {
    text: String,
    /// Sorted by key: a lookup searches the keys rather than hashing 64-byte ids.
    entries: Vec<Entry>,
}

/// One line of the index: its id's [`graph::id_key`], and byte ranges of `Index::text`.
struct Entry {
    key: u64,
    id: Range<usize>,
    stamp: FileStamp,
    config: Range<usize>,
}

impl Index {
    /// The index of the containers directory `dir`; empty when there is none.
    pub(crate) fn read(dir: &Path) -> Index {
        Index::parse(fs::read_to_string(path(dir)).unwrap_or_default())
    }

    /// The index in `text`; empty when it is of another format. A line that cannot be read
    /// is left out (its container is read from its file).
    fn parse(text: String) -> Index {
        let Some(body) = text.strip_prefix(MAGIC).and_then(|t| t.strip_prefix('\n')) else {
            return Index::default();
        };
        let at = |part: &str| {
            let start = part.as_ptr() as usize - text.as_ptr() as usize;
            start..start + part.len()
        };
        let mut entries: Vec<Entry> = body
            .lines()
            .filter_map(|line| {
                let mut fields = line.splitn(6, ' ');
                let id = fields.next()?;
                let mut number = || fields.next()?.parse::<i64>().ok();
                let stamp = FileStamp {
                    inode: number()? as u64,
                    mtime: number()?,
                    mtime_ns: number()?,
                    size: number()?,
                };
                let config = fields.next()?;
                Some(Entry {
                    key: graph::id_key(id),
                    id: at(id),
                    stamp,
                    config: at(config),
                })
            })
            .collect();
        entries.sort_unstable_by_key(|entry| entry.key);
        Index { text, entries }
    }

    /// The indexed config of container `id` when its file still has `stamp`.
    pub(crate) fn config(&self, id: &str, stamp: FileStamp) -> Option<&str> {
        let key = graph::id_key(id);
        let from = self.entries.partition_point(|entry| entry.key < key);
        let entry = self.entries[from..]
            .iter()
            .take_while(|entry| entry.key == key)
            .find(|entry| &self.text[entry.id.clone()] == id)?;
        (entry.stamp == stamp).then(|| &self.text[entry.config.clone()])
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The index file of the containers directory `dir`.
pub(crate) fn path(dir: &Path) -> PathBuf {
    dir.join(graph::INDEX_DIR).join(INDEX_FILE)
}

/// Whether the index of `dir` is large enough (a thousand containers or so) to be read on
/// a thread of its own.
pub(crate) fn is_large(dir: &Path) -> bool {
    fs::metadata(path(dir)).is_ok_and(|m| m.len() > 1 << 20)
}

/// Replaces the index with `lines` (each `(id, stamp, config)`).
pub(crate) fn write<'s>(
    dir: &Path,
    lines: impl Iterator<Item = (&'s str, FileStamp, &'s str)>,
) -> std::io::Result<()> {
    use std::fmt::Write;
    let mut text = String::from(MAGIC);
    text.push('\n');
    for (id, s, config) in lines {
        let _ = writeln!(
            text,
            "{id} {} {} {} {} {config}",
            s.inode, s.mtime, s.mtime_ns, s.size
        );
    }
    let index = path(dir);
    if let Some(index_dir) = index.parent() {
        graph::stamped::clean_temps(index_dir, INDEX_FILE);
    }
    graph::stamped::replace(&index, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(inode: u64) -> FileStamp {
        FileStamp {
            inode,
            mtime: 1_700_000_000,
            mtime_ns: 5,
            size: 9,
        }
    }

    #[test]
    fn an_indexed_config_is_given_only_for_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let config = r#"{"Id": "a b c", "Name": "x y"}"#;
        write(
            dir.path(),
            [("aaa", stamp(1), config), ("bbb", stamp(2), "{}")].into_iter(),
        )
        .unwrap();
        let index = Index::read(dir.path());
        assert_eq!(index.len(), 2);
        assert_eq!(index.config("aaa", stamp(1)), Some(config));
        assert_eq!(index.config("aaa", stamp(3)), None, "another inode");
        let touched = FileStamp {
            mtime_ns: 6,
            ..stamp(1)
        };
        assert_eq!(index.config("aaa", touched), None, "another time");
        assert_eq!(index.config("ccc", stamp(1)), None);
    }

    #[test]
    fn ids_with_the_same_first_eight_bytes_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ["0123456789", "0123456788", "01234567", "0123456"];
        let configs = ["{\"n\":0}", "{\"n\":1}", "{\"n\":2}", "{\"n\":3}"];
        let lines = ids.iter().zip(configs).enumerate();
        write(
            dir.path(),
            lines.map(|(i, (id, config))| (*id, stamp(i as u64), config)),
        )
        .unwrap();
        let index = Index::read(dir.path());
        for (i, (id, config)) in ids.iter().zip(configs).enumerate() {
            assert_eq!(index.config(id, stamp(i as u64)), Some(config), "{id}");
        }
        assert_eq!(index.config("012345678", stamp(0)), None);
    }

    #[test]
    fn another_format_or_a_damaged_line_is_not_used() {
        assert_eq!(
            Index::parse("dock-container-index 0\naaa 1 2 3 4 {}".into()).len(),
            0
        );
        let text = format!("{MAGIC}\naaa 1 x 3 4 {{}}\nbbb 1 2 3 4 {{}}\nccc 1");
        let index = Index::parse(text);
        assert_eq!(index.len(), 1);
        let bbb = FileStamp {
            inode: 1,
            mtime: 2,
            mtime_ns: 3,
            size: 4,
        };
        assert_eq!(index.config("bbb", bbb), Some("{}"));
    }

    #[test]
    fn only_a_file_older_than_the_settle_time_is_settled() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let at = |seconds_before: i64, ns: i64| FileStamp {
            mtime: 1_700_000_000 - seconds_before,
            mtime_ns: ns,
            ..stamp(1)
        };
        assert!(at(1, 1).settled(now));
        assert!(!at(1, 999_999_999).settled(now));
        // A whole-second time may be a coarse file system's: it waits two seconds.
        assert!(!at(1, 0).settled(now));
        assert!(at(2, 0).settled(now));
    }

    #[test]
    fn a_rewrite_removes_the_temp_files_of_dead_writers() {
        let dir = tempfile::tempdir().unwrap();
        let index_dir = dir.path().join(graph::INDEX_DIR);
        fs::create_dir_all(&index_dir).unwrap();
        // pid_max is at most 2^22: no process has this pid.
        let dead = index_dir.join(format!("{INDEX_FILE}.{}.ab.tmp", 1 << 23));
        let live = index_dir.join(format!("{INDEX_FILE}.{}.cd.tmp", std::process::id()));
        fs::write(&dead, "x").unwrap();
        fs::write(&live, "x").unwrap();
        write(dir.path(), std::iter::empty()).unwrap();
        assert!(!dead.exists());
        assert!(live.exists());
    }
}
