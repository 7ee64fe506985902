//! Listing indexes: what a listing would read from one file per object, kept in one file.
//!
//! The graph's index holds every image's json, one a line, under a [`Stamp`] of the graph
//! directory (its device, inode and modification time): a listing whose stamp matches reads
//! that one file; any other reads every object and writes the index again. This holds as long
//! as every change of an object changes the directory's time: adding or removing an entry
//! does so by itself, and a writer that changes an object in place calls [`touch`].
//! (The containers' index in the runtime stamps each file as well as the directory, and
//! shares [`settled`], [`map`], [`replace`] and the temp-file handling.)
//!
//! Nothing is indexed under a time that is not [`settled`], so that a later change cannot
//! land on the same (coarse) timestamp. A crash leaves at most a stale index or a temp file
//! of a dead writer ([`clean_temps`]).

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;

/// How old a modification time must be for an index to be written under it: file systems
/// give changes within one clock tick the same time.
pub const SETTLE: Duration = Duration::from_millis(100);

/// [`SETTLE`] for a time with no sub-second part, as file systems with whole-second (or
/// two-second) timestamps give: a later change within the same second would get it again.
pub const COARSE_SETTLE: Duration = Duration::from_secs(2);

/// Whether a modification time of `seconds` and `nanos` since the epoch is old enough at
/// `now` that any later change gets another.
pub fn settled(seconds: i64, nanos: i64, now: SystemTime) -> bool {
    let Ok(now) = now.duration_since(SystemTime::UNIX_EPOCH) else {
        return false;
    };
    let settle = if nanos == 0 { COARSE_SETTLE } else { SETTLE };
    let modified = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
    now.as_nanos() as i128 - modified >= settle.as_nanos() as i128
}

/// The directory an index describes, as it was before a listing read it.
pub struct Stamp {
    line: String,
    mtime: i64,
    mtime_ns: i64,
    read_at: SystemTime,
}

impl Stamp {
    /// `dir`'s stamp, under `magic` (the index's format).
    pub fn of(dir: &Path, magic: &str) -> io::Result<Stamp> {
        let meta = fs::metadata(dir)?;
        Ok(Stamp {
            line: format!(
                "{magic} {} {} {} {}",
                meta.dev(),
                meta.ino(),
                meta.mtime(),
                meta.mtime_nsec()
            ),
            mtime: meta.mtime(),
            mtime_ns: meta.mtime_nsec(),
            read_at: SystemTime::now(),
        })
    }

    /// The index's first line.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// Whether a change after the stamp was read is sure to land on a later time.
    pub fn settled(&self) -> bool {
        settled(self.mtime, self.mtime_ns, self.read_at)
    }
}

/// The bytes of an index file as [`map`] gives them.
pub struct Mapped(MappedRepr);

enum MappedRepr {
    Map(memmap2::Mmap),
    Bytes(Vec<u8>),
}

impl std::ops::Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            MappedRepr::Map(map) => map,
            MappedRepr::Bytes(bytes) => bytes,
        }
    }
}

impl From<Vec<u8>> for Mapped {
    fn from(bytes: Vec<u8>) -> Mapped {
        Mapped(MappedRepr::Bytes(bytes))
    }
}

/// The index file at `path` (or another file that is only ever replaced by rename), mapped
/// with its pages populated at once. Read into fresh memory, an index of megabytes cost a
/// page fault per page and a copy of each, more than parsing it; mapped, the page cache's own
/// pages are used. An index is only ever replaced (renamed over), never written in place, so
/// what is mapped does not change under a listing; one cut short in place by hand during a
/// listing would end that process with SIGBUS.
pub fn map(path: &Path) -> io::Result<Mapped> {
    let file = fs::File::open(path)?;
    if file.metadata()?.len() == 0 {
        return Ok(Mapped::from(Vec::new()));
    }
    // SAFETY: the file is not changed while mapped (above); it is only read through the map.
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file)? };
    Ok(Mapped(MappedRepr::Map(map)))
}

/// The entries of the index at `path` when it was written under `stamp`, parsed as `T`; None
/// when there is none, it is stale or a line does not parse (it is then rebuilt). The two
/// halves are parsed side by side: a listing of 10,000 objects is mostly this parse.
pub fn read<T: DeserializeOwned + Send>(path: &Path, stamp: &Stamp) -> Option<Vec<T>> {
    let text = map(path).ok()?;
    let end = memchr::memchr(b'\n', &text)?;
    let (first, entries) = (&text[..end], &text[end + 1..]);
    if first != stamp.line.as_bytes() {
        return None;
    }
    let middle = entries.len() / 2;
    let split =
        memchr::memchr(b'\n', &entries[middle..]).map_or(entries.len(), |at| middle + at + 1);
    let (first_half, second_half) = entries.split_at(split);
    // The first half's array has room for the second's: joining them copies the second
    // half once, rather than the first one too into a larger array.
    let (all_lines_room, second_room) = (
        entries.len() / LINE_ESTIMATE,
        second_half.len() / LINE_ESTIMATE,
    );
    let (second, first) = if entries.len() < 1 << 16 {
        (
            parse_lines::<T>(second_half, second_room),
            parse_lines::<T>(first_half, all_lines_room),
        )
    } else {
        side_by_side(
            || parse_lines::<T>(second_half, second_room),
            || parse_lines::<T>(first_half, all_lines_room),
        )
    };
    let (mut entries, second) = (first?, second?);
    entries.extend(second);
    Some(entries)
}

/// At most about the bytes of an index line (an image's takes about 160): the room made for
/// a text's entries is its length divided by this.
const LINE_ESTIMATE: usize = 128;

/// Runs `other` on a thread of its own while `here` runs on this one; both here, one after
/// the other, when no thread can be started (a process at its task limit).
pub fn side_by_side<A: Send, B>(
    other: impl FnOnce() -> A + Send,
    here: impl FnOnce() -> B,
) -> (A, B) {
    let other = std::sync::Mutex::new(Some(other));
    let take = || {
        other
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .expect("run once")
    };
    std::thread::scope(
        |scope| match std::thread::Builder::new().spawn_scoped(scope, || take()()) {
            Ok(thread) => {
                let here = here();
                let other = thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (other, here)
            }
            Err(err) => {
                tracing::debug!(%err, "no thread: one after the other");
                let here = here();
                (take()(), here)
            }
        },
    )
}

/// Each of `lines` (each ended by a newline, the last one perhaps not) parsed, in an array
/// with room for `room` entries; None if one does not parse.
fn parse_lines<T: DeserializeOwned>(lines: &[u8], room: usize) -> Option<Vec<T>> {
    let mut entries = Vec::with_capacity(room);
    let mut rest = lines;
    while !rest.is_empty() {
        let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let line = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or_default();
        // Checked as UTF-8 at once, then parsed as text: faster than checking each string
        // the parse meets.
        let Ok(line) = std::str::from_utf8(line) else {
            tracing::debug!("listing index not UTF-8, rebuilding it");
            return None;
        };
        match serde_json::from_str(line) {
            Ok(entry) => entries.push(entry),
            Err(err) => {
                tracing::debug!(%err, "listing index unreadable, rebuilding it");
                return None;
            }
        }
    }
    Some(entries)
}

/// Replaces the index at `path` (its directory made if needed) with `entries` under
/// `stamp`, atomically.
pub fn write(path: &Path, stamp: &Stamp, entries: &[String]) -> io::Result<()> {
    let mut text = String::with_capacity(
        stamp.line.len() + 1 + entries.iter().map(|e| e.len() + 1).sum::<usize>(),
    );
    text.push_str(&stamp.line);
    text.push('\n');
    for entry in entries {
        text.push_str(entry);
        text.push('\n');
    }
    replace(path, text.as_bytes())
}

/// Replaces the file at `path` (its directory made if needed) with `text`, atomically. Not
/// synced: a crash loses at most an index, which the next listing rebuilds.
pub fn replace(path: &Path, text: &[u8]) -> io::Result<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an index path names a file in a directory",
        ));
    };
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(err) if err.kind() != io::ErrorKind::AlreadyExists => return Err(err),
        _ => {}
    }
    // Unique per writer: the API server lists on several threads at once.
    let tmp = dir.join(format!(
        "{}.{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        crate::random_suffix()
    ));
    fs::write(&tmp, text)?;
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Sets `dir`'s modification time to now: what a writer that changed an object in place
/// does, so that indexes of `dir` are stale.
pub fn touch(dir: &Path) -> io::Result<()> {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
    ];
    // SAFETY: a valid C string and two timespecs, as utimensat(2) takes them.
    if unsafe { libc::utimensat(libc::AT_FDCWD, path.as_ptr(), times.as_ptr(), 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The writer's pid in the name of an index temp file of `file` (`<file>.<pid>.<random>.tmp`).
pub fn temp_pid(name: &str, file: &str) -> Option<u32> {
    let writer = name
        .strip_prefix(file)?
        .strip_prefix('.')?
        .strip_suffix(".tmp")?;
    // `<pid>.<random>` (or an older `<pid>`).
    writer.split('.').next()?.parse().ok()
}

/// Removes the temp files of index `file` in `dir` whose writer is gone (killed between
/// write and rename).
pub fn clean_temps(dir: &Path, file: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|name| temp_pid(name, file)) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_is_read_back_under_its_stamp_only() {
        let dir = tempfile::tempdir().unwrap();
        let objects = dir.path().join("objects");
        fs::create_dir(&objects).unwrap();
        let index = dir.path().join("_index/objects");
        let stamp = Stamp::of(&objects, "test-index 1").unwrap();
        let entries: Vec<String> = (0..1001).map(|n| n.to_string()).collect();
        write(&index, &stamp, &entries).unwrap();
        let read_back: Vec<u32> = read(&index, &stamp).unwrap();
        assert_eq!(read_back, (0..1001).collect::<Vec<u32>>());
        // Another format, or a changed directory: stale.
        assert!(read::<u32>(&index, &Stamp::of(&objects, "test-index 2").unwrap()).is_none());
        touch(&objects).unwrap();
        assert!(read::<u32>(&index, &Stamp::of(&objects, "test-index 1").unwrap()).is_none());
        // No temp file is left behind.
        assert_eq!(fs::read_dir(index.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn an_unparsable_line_makes_the_index_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("index");
        let stamp = Stamp::of(dir.path(), "test-index 1").unwrap();
        write(&index, &stamp, &["1".into(), "two".into(), "3".into()]).unwrap();
        assert!(read::<u32>(&index, &stamp).is_none());
        write(&index, &stamp, &[]).unwrap();
        assert_eq!(read::<u32>(&index, &stamp).unwrap(), Vec::<u32>::new());
    }

    #[test]
    fn side_by_side_gives_both_results() {
        let (a, b) = side_by_side(|| 1 + 1, || "here");
        assert_eq!((a, b), (2, "here"));
    }

    #[test]
    fn a_large_index_is_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("index");
        let stamp = Stamp::of(dir.path(), "test-index 1").unwrap();
        let entries: Vec<String> = (0..100_000).map(|n| n.to_string()).collect();
        write(&index, &stamp, &entries).unwrap();
        let read_back: Vec<u32> = read(&index, &stamp).unwrap();
        assert_eq!(read_back, (0..100_000).collect::<Vec<u32>>());
    }

    #[test]
    fn temp_names_give_their_writers_pid() {
        assert_eq!(temp_pid("images.42.0a1b.tmp", "images"), Some(42));
        assert_eq!(temp_pid("images.42.tmp", "images"), Some(42));
        assert_eq!(temp_pid("images", "images"), None);
        assert_eq!(temp_pid("containers.7.x.tmp", "images"), None);
    }
}
