//! The containers' listing index, `containers/_index/containers`: a header, one line per
//! container, `<id> <inode> <mtime s> <mtime ns> <size>` or `<id> -` for one whose config is
//! not indexed, and then the indexed configs as read, back to back in the lines' order, each
//! as long as its size says. Lines and configs apart, reading the index touches only its
//! lines; each config is touched by the parse that uses it.
//!
//! A listing stats each config (one `fstatat`, no open or read) and parses the indexed copy
//! when the file is still the one indexed, else reads the file. A config is replaced by
//! rename (a new inode), and one damaged in place gets a new time: either way its stat
//! differs from the index's. A config is indexed only once its time is settled
//! ([`graph::stamped::settled`]), so that no later change can land on the same (coarse)
//! timestamp. A config that does not parse is indexed as well: listings that parse less of
//! each config ([`crate::container::Row`]) or all of it keep one index between them, and a
//! config that does not parse is read again to say why.
//!
//! The header, `dock-container-index 2 <dev> <inode> <mtime s> <mtime ns> <lines>` (a
//! [`graph::stamped::Stamp`] line and the count of lines), names the containers directory as
//! it was when its entries were read, when that time was settled and nothing was left to
//! sweep (see [`crate::Runtime`]'s `ids`); else `dock-container-index 2 - <lines>`. While the
//! directory still has that stamp, its entries are the index's ids: adding, renaming or
//! removing an entry changes the directory's time, so a listing need not read the directory.
//! An index that is short of a line or a byte (a crash before its data reached the disk), or
//! that has a line that does not read, is not used at all. A crash leaves at most a stale
//! index, which the stamps refuse, or a temp file of a dead writer, which the next rewrite
//! removes.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::sys::stat::{fstatat, FileStat};

/// The index's file name in `containers/<graph::INDEX_DIR>/`.
pub(crate) const INDEX_FILE: &str = "containers";
/// The format, first in the index and in the directory stamps it is written under.
pub(crate) const MAGIC: &str = "dock-container-index 2";

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

    /// Whether `text` can be the whole file of this stamp: it is of its size. Only such a
    /// text is indexed, framed by that size.
    pub(crate) fn frames(&self, text: &[u8]) -> bool {
        i64::try_from(text.len()) == Ok(self.size)
    }
}

/// The index as read: its text, and each container's id and indexed config within it.
pub(crate) struct Index {
    text: graph::stamped::Mapped,
    /// In the file's order until [`Index::sort_for_lookups`], then by key: a lookup searches
    /// the keys rather than hashing 64-byte ids.
    lines: Vec<Line>,
    sorted: bool,
    /// The line of the directory's stamp under which `lines` are all of its containers.
    whole_under: Option<String>,
}

/// One line of the index: its id's [`graph::id_key`], and byte ranges of `Index::text`.
struct Line {
    key: u64,
    id: Range<usize>,
    config: Option<(FileStamp, Range<usize>)>,
}

/// A container to list: its id, and its config as indexed, if it is.
#[derive(Clone, Copy)]
pub(crate) struct Entry<'i> {
    pub(crate) id: &'i str,
    pub(crate) indexed: Option<(FileStamp, &'i [u8])>,
}

impl<'i> Entry<'i> {
    /// The indexed config when the file still has `stamp`.
    pub(crate) fn config(&self, stamp: FileStamp) -> Option<&'i [u8]> {
        self.indexed
            .and_then(|(indexed, text)| (indexed == stamp).then_some(text))
    }
}

impl Index {
    /// The index of the containers directory `dir`; empty when there is none.
    pub(crate) fn read(dir: &Path) -> Index {
        Index::parse(graph::stamped::map(&path(dir)).unwrap_or_else(|_| Vec::new().into()))
    }

    /// The index in `text`; empty when it is of another format or damaged anywhere (every
    /// config is then read from its file, and the index written again).
    fn parse(text: graph::stamped::Mapped) -> Index {
        let lines = parse_body(&text);
        match lines {
            Some((lines, whole_under)) => Index {
                text,
                lines,
                sorted: false,
                whole_under,
            },
            None => Index {
                text: Vec::new().into(),
                lines: Vec::new(),
                sorted: true,
                whole_under: None,
            },
        }
    }

    /// Every container it has a line for.
    pub(crate) fn all(&self) -> Vec<Entry<'_>> {
        self.lines.iter().map(|line| self.entry(line)).collect()
    }

    /// Makes [`Index::get`] possible. A listing that takes every line as it is needs no
    /// lookup, and does without.
    pub(crate) fn sort_for_lookups(&mut self) {
        if !self.sorted {
            self.lines.sort_unstable_by_key(|line| line.key);
            self.sorted = true;
        }
    }

    /// Container `id` as the index has it (a directory's entry, so not necessarily indexed),
    /// once [`Index::sort_for_lookups`].
    pub(crate) fn get<'s>(&'s self, id: &'s str) -> Entry<'s> {
        debug_assert!(self.sorted, "an index looked up unsorted");
        let key = graph::id_key(id);
        let from = self.lines.partition_point(|line| line.key < key);
        let indexed = self.lines[from..]
            .iter()
            .take_while(|line| line.key == key)
            .find(|line| &self.text[line.id.clone()] == id.as_bytes())
            .and_then(|line| self.entry(line).indexed);
        Entry { id, indexed }
    }

    fn entry(&self, line: &Line) -> Entry<'_> {
        Entry {
            // Checked as UTF-8 when parsed.
            id: std::str::from_utf8(&self.text[line.id.clone()]).unwrap_or_default(),
            indexed: line
                .config
                .as_ref()
                .map(|(stamp, config)| (*stamp, &self.text[config.clone()])),
        }
    }

    /// How many containers it has a line for.
    pub(crate) fn len(&self) -> usize {
        self.lines.len()
    }

    /// How many configs it holds.
    pub(crate) fn indexed(&self) -> usize {
        self.lines
            .iter()
            .filter(|line| line.config.is_some())
            .count()
    }

    /// The line of the directory's stamp under which it is whole.
    pub(crate) fn whole_under(&self) -> Option<&str> {
        self.whole_under.as_deref()
    }
}

/// The lines of index `text`, each config's range located after them, and
/// the directory's stamp under which they are whole; None unless every line reads and the
/// configs' sizes add up to the end of the text.
fn parse_body(text: &[u8]) -> Option<(Vec<Line>, Option<String>)> {
    let end = memchr::memchr(b'\n', text)?;
    let (stamp, count) = std::str::from_utf8(&text[..end]).ok()?.rsplit_once(' ')?;
    let count: usize = count.parse().ok()?;
    let whole_under = match stamp.strip_prefix(MAGIC)? {
        " -" => None,
        dir if dir.starts_with(' ') => Some(stamp.to_string()),
        _ => return None,
    };
    let mut at = end + 1;
    let mut lines = Vec::with_capacity(count.min(text.len() / 64));
    for _ in 0..count {
        let end = at + memchr::memchr(b'\n', &text[at..])?;
        let (id, stamp) = parse_line(&text[at..end])?;
        lines.push(Line {
            key: graph::id_key(id),
            id: at..at + id.len(),
            // Where its config is comes below, once every line is read.
            config: stamp.map(|stamp| (stamp, 0..0)),
        });
        at = end + 1;
    }
    for (stamp, config) in lines.iter_mut().filter_map(|line| line.config.as_mut()) {
        let length = usize::try_from(stamp.size).ok()?;
        *config = at..at.checked_add(length)?;
        at = config.end;
    }
    if at != text.len() {
        return None;
    }
    Some((lines, whole_under))
}

/// `<id> -` or `<id> <inode> <mtime s> <mtime ns> <size>`: the id, and its config's stamp
/// when indexed.
fn parse_line(line: &[u8]) -> Option<(&str, Option<FileStamp>)> {
    let line = std::str::from_utf8(line).ok()?;
    let (id, rest) = line.split_once(' ')?;
    // What the directory would hold: a line damaged in its id would stand for no container,
    // and a path in it be stated.
    if !graph::is_full_id(id) {
        return None;
    }
    if rest == "-" {
        return Some((id, None));
    }
    let mut fields = rest.split(' ');
    let stamp = FileStamp {
        inode: fields.next()?.parse().ok()?,
        mtime: fields.next()?.parse().ok()?,
        mtime_ns: fields.next()?.parse().ok()?,
        size: fields.next()?.parse().ok()?,
    };
    fields.next().is_none().then_some((id, Some(stamp)))
}

/// The index file of the containers directory `dir`.
pub(crate) fn path(dir: &Path) -> PathBuf {
    dir.join(graph::INDEX_DIR).join(INDEX_FILE)
}

/// Replaces the index with `lines` (each indexed config one that its stamp
/// [`FileStamp::frames`]), all of the directory's containers when `whole_under` is its stamp.
pub(crate) fn write(
    dir: &Path,
    whole_under: Option<&graph::stamped::Stamp>,
    lines: &[Entry<'_>],
) -> std::io::Result<()> {
    use std::io::Write;
    let length = lines
        .iter()
        .map(|line| line.id.len() + line.indexed.map_or(3, |(_, text)| text.len() + 80))
        .sum::<usize>();
    let mut text = Vec::with_capacity(MAGIC.len() + 80 + length);
    let _ = match whole_under {
        Some(stamp) => writeln!(text, "{} {}", stamp.line(), lines.len()),
        None => writeln!(text, "{MAGIC} - {}", lines.len()),
    };
    for Entry { id, indexed } in lines {
        let _ = match indexed {
            Some((s, _)) => writeln!(
                text,
                "{id} {} {} {} {}",
                s.inode, s.mtime, s.mtime_ns, s.size
            ),
            None => writeln!(text, "{id} -"),
        };
    }
    for (_, config) in lines.iter().filter_map(|line| line.indexed) {
        text.extend_from_slice(config);
    }
    let index = path(dir);
    if let Some(index_dir) = index.parent() {
        graph::stamped::clean_temps(index_dir, INDEX_FILE);
    }
    graph::stamped::replace(&index, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index in `text`, ready for lookups.
    fn parse(text: &str) -> Index {
        let mut index = Index::parse(text.as_bytes().to_vec().into());
        index.sort_for_lookups();
        index
    }

    fn read(dir: &Path) -> Index {
        let mut index = Index::read(dir);
        index.sort_for_lookups();
        index
    }

    fn entry<'t>(id: &'t str, indexed: Option<(FileStamp, &'t [u8])>) -> Entry<'t> {
        Entry { id, indexed }
    }

    /// The stamp of a file `config` (by its size) whose inode is `inode`.
    fn stamp(inode: u64, config: &[u8]) -> FileStamp {
        FileStamp {
            inode,
            mtime: 1_700_000_000,
            mtime_ns: 5,
            size: config.len() as i64,
        }
    }

    /// A full id: `hex` and zeros.
    fn id(hex: &str) -> String {
        format!("{hex:0<64}")
    }

    #[test]
    fn an_indexed_config_is_given_only_for_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c, d) = (id("a"), id("b"), id("c"), id("d"));
        let config: &[u8] = br#"{"Id": "a b c", "Name": "x y"}"#;
        let lines = [
            entry(&a, Some((stamp(1, config), config))),
            entry(&b, Some((stamp(2, b"{}"), b"{}"))),
            entry(&d, None),
        ];
        write(dir.path(), None, &lines).unwrap();
        let index = read(dir.path());
        assert_eq!((index.len(), index.indexed()), (3, 2));
        assert_eq!(index.get(&a).config(stamp(1, config)), Some(config));
        let another_inode = stamp(3, config);
        assert_eq!(index.get(&a).config(another_inode), None);
        let another_time = FileStamp {
            mtime_ns: 6,
            ..stamp(1, config)
        };
        assert_eq!(index.get(&a).config(another_time), None);
        let another_size = stamp(1, b"{}");
        assert_eq!(index.get(&a).config(another_size), None);
        assert_eq!(index.get(&c).config(stamp(1, config)), None);
        assert_eq!(index.get(&d).config(stamp(1, config)), None, "not indexed");
        let mut all: Vec<(&str, bool)> = index
            .all()
            .iter()
            .map(|entry| (entry.id, entry.indexed.is_some()))
            .collect();
        all.sort();
        assert_eq!(all, [(&*a, true), (&*b, true), (&*d, false)]);
        // Only a text of its file's size is indexed under its stamp.
        assert!(stamp(1, config).frames(config));
        assert!(!stamp(1, config).frames(b"{}"));
    }

    #[test]
    fn ids_with_the_same_first_eight_bytes_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let ids = [
            id("0123456789"),
            id("0123456788"),
            id("01234567"),
            id("0123456"),
        ];
        let configs: [&[u8]; 4] = [b"{\"n\":0}", b"{\"n\":1}", b"{\"n\":2}", b"{\"n\":3}"];
        let lines: Vec<_> = (0..4)
            .map(|i| entry(&ids[i], Some((stamp(i as u64, configs[i]), configs[i]))))
            .collect();
        write(dir.path(), None, &lines).unwrap();
        let index = read(dir.path());
        for (i, (id, config)) in ids.iter().zip(configs).enumerate() {
            let stamp = stamp(i as u64, config);
            assert_eq!(index.get(id).config(stamp), Some(config), "{id}");
        }
        assert_eq!(
            index.get(&id("012345678")).config(stamp(0, configs[0])),
            None
        );
    }

    #[test]
    fn an_index_of_another_format_or_damaged_anywhere_is_not_used() {
        let (a, b, c) = (id("a"), id("b"), id("c"));
        assert_eq!(
            parse(&format!("dock-container-index 1\n{a} 1 2 3 4 {{}}\n")).len(),
            0
        );
        let good = format!("{MAGIC} - 3\n{a} 1 2 3 2\n{b} -\n{c} 4 5 6 3\n{{}}[1]");
        let index = parse(&good);
        assert_eq!((index.len(), index.indexed()), (3, 2));
        let at = |inode, mtime, mtime_ns, size| FileStamp {
            inode,
            mtime,
            mtime_ns,
            size,
        };
        assert_eq!(index.get(&a).config(at(1, 2, 3, 2)), Some(&b"{}"[..]));
        assert_eq!(index.get(&c).config(at(4, 5, 6, 3)), Some(&b"[1]"[..]));
        for damaged in [
            good.replace(&format!("{a} 1 2"), &format!("{a} 1 x")),
            good.replace(&format!("{b} -"), &b),
            good.replace(&format!("{a} 1 2 3 2"), &format!("{a} 1 2 3 2 9")),
            good.replace(&format!("{c} 4 5 6 3"), &format!("{c} 4 5 6 4")),
            good.replace(&a, "a/../b"),
            good.replace(" - 3", " - 4"),
            good.replace(" - 3", " - three"),
            good.replace(MAGIC, "dock-container-index 22"),
            good[..good.len() - 1].to_string(),
            format!("{good}\n"),
        ] {
            assert_eq!(parse(&damaged).len(), 0, "{damaged}");
        }
        // Inode numbers are unsigned, and may use all 64 bits.
        let high = good.replace(&format!("{a} 1 2"), &format!("{a} {} 2", u64::MAX));
        assert_eq!(parse(&high).len(), 3);
    }

    #[test]
    fn an_index_is_whole_under_its_stamp_only() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let dir_stamp = |dir: &Path| graph::stamped::Stamp::of(dir, MAGIC).unwrap();
        let (a, b) = (id("a"), id("b"));
        let lines = [entry(&a, Some((stamp(1, b"{}"), b"{}"))), entry(&b, None)];
        let written = dir_stamp(dir.path());
        write(dir.path(), Some(&written), &lines).unwrap();
        let index = read(dir.path());
        assert_eq!(index.whole_under(), Some(written.line()));
        assert_ne!(index.whole_under(), Some(dir_stamp(other.path()).line()));
        assert_eq!(index.len(), 2);
        // Written without a stamp, or none there at all.
        write(dir.path(), None, &lines).unwrap();
        assert_eq!(Index::read(dir.path()).whole_under(), None);
        assert_eq!(Index::read(dir.path()).len(), 2);
        fs::remove_file(path(dir.path())).unwrap();
        assert_eq!(Index::read(dir.path()).whole_under(), None);
        assert_eq!(Index::read(dir.path()).len(), 0);
    }

    #[test]
    fn only_a_file_older_than_the_settle_time_is_settled() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let at = |seconds_before: i64, ns: i64| FileStamp {
            mtime: 1_700_000_000 - seconds_before,
            mtime_ns: ns,
            ..stamp(1, b"{}")
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
        write(dir.path(), None, &[]).unwrap();
        assert!(!dead.exists());
        assert!(live.exists());
    }
}
