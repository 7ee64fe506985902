//! Containers whose `config.json` cannot be read (truncated, not JSON, wrong types) or whose
//! reconciliation failed: listed as broken with the reason, never hidden, and removable with
//! everything they hold. What a broken container holds is found from what is recorded
//! outside its config: the monitor in the exit record (`exit`) or behind the attach socket,
//! the processes in its cgroup, its endpoint in the network state, its rootfs mount.

use std::borrow::Cow;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};

use crate::container::{self, Listed, ProcessRef};
use crate::{cgroup, exitrec, listindex, overlay, procs, Client, Error, Hello, Result, Runtime};

/// What a listing found in one container directory: the container (a `T`, see [`Listed`]) or
/// a broken container (None when there is neither, as a directory without a config), and the
/// line the listing index is to have for it: its config's stamp and text when indexed. The
/// container is boxed: thousands of them would otherwise be copied from vector to vector on
/// their way to the caller, each copy into fresh pages.
struct Found<'a, T> {
    id: &'a str,
    container: Option<std::result::Result<Box<T>, BrokenContainer>>,
    line: Option<(listindex::FileStamp, Cow<'a, [u8]>)>,
}

/// One container's config as a listing finds it ([`Runtime::parse_config`]): the stamp of its
/// file, what parsing gave, and where its text is.
struct ParsedConfig<'i, T> {
    stamp: Option<listindex::FileStamp>,
    parsed: Result<T>,
    text: ConfigText<'i>,
}

/// Where the text of a config that a listing parsed is.
enum ConfigText<'i> {
    /// In the listing index, and the file is still the one indexed.
    Indexed(&'i [u8]),
    /// In the buffer it was read into.
    Read,
    /// Nowhere: it could not be read.
    Unread,
}

/// What a listing goes over: the listing index and, unless the index has every container of
/// the directory as it is now, the directory's entries.
struct Listing {
    index: listindex::Index,
    /// The directory's ids, and whether it held anything to sweep; None when the index has
    /// them all.
    dir: Option<(Vec<String>, bool)>,
    /// The directory's stamp as the listing began.
    stamp: graph::stamped::Stamp,
}

impl Listing {
    /// Every container to list, with its config as indexed.
    fn entries(&self) -> Vec<listindex::Entry<'_>> {
        match &self.dir {
            Some((ids, _)) => ids.iter().map(|id| self.index.get(id)).collect(),
            None => self.index.all(),
        }
    }

    /// The stamp under which the containers listed are all of the directory's, for the next
    /// listing: its time settled, and nothing swept that might have changed it.
    fn whole_under(&self) -> Option<&graph::stamped::Stamp> {
        let swept = self.dir.as_ref().is_some_and(|(_, swept)| *swept);
        (self.stamp.settled() && !swept).then_some(&self.stamp)
    }
}

/// `work` over `entries` in parts, on as many threads as there are CPUs (up to 8) when there
/// are many: each part is a stat or a read per container, and those wait on the kernel. The
/// results in the order of `entries`.
fn in_parallel<'a, T: Send>(
    entries: &'a [listindex::Entry<'a>],
    work: impl Fn(&'a [listindex::Entry<'a>]) -> Vec<T> + Sync,
) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
        .min(entries.len() / 128 + 1);
    if threads <= 1 {
        return work(entries);
    }
    let chunk = entries.len().div_ceil(threads);
    let work = &work;
    // Every part on a thread of its own: measured, this thread taking a part made the
    // listing slower. A part whose thread cannot be started (a process at its task limit)
    // is done here, in its turn.
    std::thread::scope(|scope| {
        let started: Vec<_> = entries
            .chunks(chunk)
            .map(|part| {
                std::thread::Builder::new()
                    .spawn_scoped(scope, move || work(part))
                    .map_err(|err| {
                        tracing::debug!(%err, "no thread: a part done here");
                        part
                    })
            })
            .collect();
        let mut all = Vec::with_capacity(entries.len());
        for part in started {
            all.extend(match part {
                Ok(thread) => thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(part) => work(part),
            });
        }
        all
    })
}

/// How long a broken container's monitor may take to end its run once told to.
const MONITOR_STOP_PATIENCE: Duration = Duration::from_secs(10);

/// A container that is there (its directory) but cannot be read.
#[derive(Debug)]
pub struct BrokenContainer {
    pub id: String,
    /// Why: [`Error::Corrupt`] names `config.json` and the parse error.
    pub error: Error,
    /// When its directory was made (or last changed, where the filesystem has no birth time).
    pub created: DateTime<Utc>,
    /// Its monitor is alive: it still runs.
    pub running: bool,
}

impl BrokenContainer {
    /// `config.json: expected value at line 1 column 1`: the file by its name and what is
    /// wrong with it; other errors as they are.
    pub fn reason(&self) -> String {
        match &self.error {
            Error::Corrupt { path, message } => format!(
                "{}: {message}",
                path.file_name().unwrap_or_default().to_string_lossy()
            ),
            Error::Io { path, source } => format!(
                "{}: {source}",
                path.file_name().unwrap_or_default().to_string_lossy()
            ),
            other => other.to_string(),
        }
    }
}

/// Whether a load error means the container's config is damaged: then only the config-less
/// removal can take it. Any other error (a read that failed, a ghost not reaped) is passed
/// up, so a readable container is never removed without its config.
pub(crate) fn is_broken(err: &Error) -> bool {
    matches!(err, Error::Corrupt { .. })
}

impl Runtime {
    /// Every container (newest first), each a [`Container`] or only its [`container::Row`],
    /// and every broken one (by id). Each config is stated and, when it is the file the
    /// listing index holds ([`listindex`]), parsed from there; others are read. Both on as
    /// many threads as there are CPUs (up to 8) when there are many. The directory is read
    /// only when the index does not have all of it. The index is written again when a config
    /// was read that it did not hold, or the directory changed.
    pub fn list_with_broken<T: Listed>(&self) -> Result<(Vec<Box<T>>, Vec<BrokenContainer>)> {
        let containers =
            fs::File::open(&self.containers).map_err(|e| Error::io(&self.containers, e))?;
        let listing = self.listing()?;
        let entries = listing.entries();
        let now = SystemTime::now();
        let found = in_parallel(&entries, |entries| {
            self.load_listed::<T>(&containers, now, entries)
        });
        let (mut listed, mut broken) = (Vec::with_capacity(found.len()), vec![]);
        let mut lines = Vec::with_capacity(found.len());
        let (mut read_anew, mut indexed) = (false, 0);
        for Found { id, line, .. } in &found {
            read_anew |= matches!(line, Some((_, Cow::Owned(_))));
            indexed += usize::from(line.is_some());
            lines.push(listindex::Entry {
                id,
                indexed: line.as_ref().map(|(stamp, text)| (*stamp, text.as_ref())),
            });
        }
        let whole_under = listing.whole_under();
        let index = &listing.index;
        if read_anew
            || lines.len() != index.len()
            || indexed != index.indexed()
            || whole_under.map(graph::stamped::Stamp::line) != index.whole_under()
        {
            if let Err(err) = listindex::write(&self.containers, whole_under, &lines) {
                tracing::debug!(%err, "containers' listing index not written");
            }
        }
        drop(lines);
        for found in found {
            match found.container {
                Some(Ok(c)) => listed.push(c),
                Some(Err(b)) => broken.push(b),
                None => {}
            }
        }
        // Newest first, ties by id (the directory's order and the index's differ). Boxed, a
        // container is not copied again on its way to the caller, nor when sorted or filtered.
        listed.sort_by(|a, b| (b.created(), a.id()).cmp(&(a.created(), b.id())));
        broken.sort_by(|a, b| a.id.cmp(&b.id));
        Ok((listed, broken))
    }

    /// The listing index of the containers directory and, when the index does not have all
    /// of its containers, the directory's entries.
    fn listing(&self) -> Result<Listing> {
        let stamp = graph::stamped::Stamp::of(&self.containers, listindex::MAGIC)
            .map_err(|e| Error::io(&self.containers, e))?;
        let mut index = listindex::Index::read(&self.containers);
        let dir = match index.whole_under() == Some(stamp.line()) {
            true => None,
            false => {
                // Each of the directory's ids is looked up.
                index.sort_for_lookups();
                Some(self.ids_and_sweeps()?)
            }
        };
        Ok(Listing { index, dir, stamp })
    }

    /// `(id, name)` of every container whose config can be read: what `create` checks a new
    /// name against. From the listing index where it holds (as [`Runtime::list_with_broken`]
    /// decides), each config parsed for its name alone; nothing is reconciled or written.
    pub(crate) fn names(&self) -> Result<Vec<(String, String)>> {
        #[derive(serde::Deserialize)]
        struct Named {
            #[serde(rename = "Name")]
            name: String,
        }
        let containers =
            fs::File::open(&self.containers).map_err(|e| Error::io(&self.containers, e))?;
        let listing = self.listing()?;
        let entries = listing.entries();
        let named = in_parallel(&entries, |entries| {
            let mut buf = Vec::with_capacity(8192);
            entries
                .iter()
                .filter_map(|entry| {
                    let config = self.parse_config::<Named>(&containers, entry, &mut buf);
                    Some((entry.id.to_string(), config.parsed.ok()?.name))
                })
                .collect()
        });
        Ok(named)
    }

    /// A container's config as a `T`: parsed from the listing index while the file is the one
    /// indexed (and it parses there), else read from the file into `buf`.
    fn parse_config<'i, T: serde::de::DeserializeOwned>(
        &self,
        containers: &fs::File,
        entry: &listindex::Entry<'i>,
        buf: &mut Vec<u8>,
    ) -> ParsedConfig<'i, T> {
        let id = entry.id;
        let stamp = listindex::FileStamp::of(containers, id);
        let in_index = stamp.and_then(|stamp| entry.config(stamp));
        if let Some(text) = in_index {
            // Checked as UTF-8 at once, then parsed as text: faster than checking each
            // string the parse meets.
            let parsed = std::str::from_utf8(text).map(serde_json::from_str);
            if let Ok(Ok(value)) = parsed {
                return ParsedConfig {
                    stamp,
                    parsed: Ok(value),
                    text: ConfigText::Indexed(text),
                };
            }
        }
        let read = self.read_config_at(containers, id, buf);
        // What does not parse as a `T` from the index, read again to say why: the same text
        // stays indexed (it may parse as another `T`, or a damaged line was the index's own).
        let text = match (&read, in_index) {
            (Ok(()), Some(indexed)) if indexed == buf.as_slice() => ConfigText::Indexed(indexed),
            (Ok(()), _) => ConfigText::Read,
            (Err(_), _) => ConfigText::Unread,
        };
        let parsed = read.and_then(|()| container::parse(&self.paths(id).config(), buf));
        ParsedConfig {
            stamp,
            parsed,
            text,
        }
    }

    /// [`Runtime::list_with_broken`]'s work for the containers `entries`.
    fn load_listed<'a, T: Listed>(
        &self,
        containers: &fs::File,
        now: SystemTime,
        entries: &'a [listindex::Entry<'a>],
    ) -> Vec<Found<'a, T>> {
        let mut found = Vec::with_capacity(entries.len());
        let mut buf = Vec::with_capacity(8192);
        for entry in entries {
            let id = entry.id;
            let ParsedConfig {
                stamp,
                parsed,
                text,
            } = self.parse_config::<Box<T>>(containers, entry, &mut buf);
            // Indexed next time, whether it parses as a `T` or not (listings of other `T`s
            // keep the same index): the text of a file whose time cannot be given again.
            let line = stamp.filter(|stamp| stamp.settled(now)).and_then(|stamp| {
                let text = match text {
                    ConfigText::Indexed(text) => Cow::Borrowed(text),
                    ConfigText::Read => stamp.frames(&buf).then(|| Cow::Owned(buf.clone()))?,
                    ConfigText::Unread => return None,
                };
                Some((stamp, text))
            });
            let checked = parsed.and_then(|c| match crate::is_ghost(&*c) {
                true => self.reap_ghost(c.id()).map(|c| Box::new(T::from(c))),
                false => Ok(c),
            });
            let container = match checked {
                Ok(c) => Some(Ok(c)),
                Err(Error::NoSuchContainer(_)) => None,
                Err(e) => {
                    tracing::debug!(%id, error = %e, "broken container");
                    Some(Err(self.broken(id, e)))
                }
            };
            found.push(Found {
                id,
                container,
                line,
            });
        }
        found
    }

    fn broken(&self, id: &str, error: Error) -> BrokenContainer {
        let dir = self.paths(id).dir;
        let created = fs::metadata(&dir)
            .and_then(|m| m.created().or_else(|_| m.modified()))
            .map(DateTime::<Utc>::from)
            .unwrap_or_else(|_| Utc::now());
        BrokenContainer {
            id: id.to_string(),
            error,
            created,
            running: self.live_monitor(id).is_some(),
        }
    }

    /// The monitor of container `id` while one runs it, found without its config: the exit
    /// record names the monitor of the current run; else whoever listens on its socket.
    pub(crate) fn live_monitor(&self, id: &str) -> Option<ProcessRef> {
        let paths = self.paths(id);
        if let Some(record) = exitrec::read(&paths.exit_record()) {
            let m = record.monitor;
            if record.exit_code.is_none() && procs::is_same(m.pid, m.start_time) {
                return Some(m);
            }
        }
        let stream = UnixStream::connect(paths.socket()).ok()?;
        let pid = peer_pid(&stream)?;
        let start_time = procs::start_time(pid)?;
        Some(ProcessRef { pid, start_time })
    }

    /// Removes container `id` without reading its config: its monitor is told to kill it (and
    /// releases what the run holds, as after any run), or killed when it does not answer;
    /// then what is left is released as for a vanished monitor (the processes in its cgroup,
    /// its network endpoint, its rootfs mount) and its directory goes. A running one needs
    /// `force`. Its volumes are kept (the list of them was in the config).
    pub fn remove_broken(&self, id: &str, force: bool) -> Result<()> {
        let paths = self.paths(id);
        if !paths.dir.is_dir() {
            return Err(Error::NoSuchContainer(id.to_string()));
        }
        if let Some(monitor) = self.live_monitor(id) {
            if !force {
                return Err(Error::Running(id.to_string()));
            }
            tracing::debug!(%id, pid = monitor.pid, "killing a broken container through its monitor");
            if let Ok(mut client) = Client::connect(&paths.socket(), Hello::default()) {
                let _ = client
                    .stream()
                    .set_read_timeout(Some(MONITOR_STOP_PATIENCE));
                if client.signal(libc::SIGKILL).is_ok() {
                    let _ = client.wait_exit();
                }
            }
            if !procs::wait_gone(monitor.pid, monitor.start_time, MONITOR_STOP_PATIENCE) {
                tracing::debug!(%id, pid = monitor.pid, "killing the monitor");
                if procs::is_same(monitor.pid, monitor.start_time) {
                    // SAFETY: kill of a pid verified by its start time just now.
                    unsafe { libc::kill(monitor.pid, libc::SIGKILL) };
                }
                if !procs::wait_gone(monitor.pid, monitor.start_time, MONITOR_STOP_PATIENCE) {
                    return Err(Error::Monitor {
                        id: id.to_string(),
                        message: format!("monitor {} does not exit", monitor.pid),
                    });
                }
            }
        }
        // What a monitor that is gone left behind; each step is idempotent.
        let cg = cgroup::Cgroup::open(&self.cgroup_parent(), id);
        cg.remove().map_err(|e| Error::Cgroup(e.to_string()))?;
        let cfg = self.net_config()?;
        if cfg.state_dir.exists() {
            tracing::debug!(%id, "releasing the network of a broken container");
            self.network()
                .and_then(|net| net.reclaim(id).map_err(|e| Error::Network(e.to_string())))?;
        }
        overlay::unmount(&paths.rootfs())?;
        let _lock = match container::Lock::acquire(&paths.lock()) {
            Ok(lock) => lock,
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(())
            }
            Err(e) => return Err(e),
        };
        tracing::debug!(%id, dir = %paths.dir.display(), "removing broken container");
        let removed: PathBuf = self.take_out(id)?;
        crate::remove_tree(&removed).map_err(|e| Error::io(&removed, e))
    }
}

/// The pid of the process on the other end of a unix socket (SO_PEERCRED).
fn peer_pid(stream: &UnixStream) -> Option<i32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, which outlives the call.
    let ret = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (ret == 0 && cred.pid > 0).then_some(cred.pid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::{Container, Row};
    use std::os::unix::fs::MetadataExt;

    fn runtime() -> (tempfile::TempDir, Runtime) {
        let dir = tempfile::tempdir().unwrap();
        let rt = Runtime::open(dir.path().join("root")).unwrap();
        fs::create_dir_all(dir.path().join("root/containers")).unwrap();
        (dir, rt)
    }

    /// Writes container `id`'s config as `save` does (a new file renamed in), dated `age` ago.
    fn write_config(rt: &Runtime, id: &str, name: &str, age: Duration) {
        let paths = rt.paths(id);
        fs::create_dir_all(&paths.dir).unwrap();
        let json = serde_json::json!({"Id": id, "Created": "2024-01-01T00:00:00Z",
            "Path": "true", "Args": [], "Config": {},
            "State": {"Running": false, "Pid": 0, "ExitCode": 0,
                      "StartedAt": "0001-01-01T00:00:00Z"},
            "Image": "ab".repeat(32), "NetworkSettings": {}, "Name": name});
        let c: Container = container::parse(&paths.config(), json.to_string().as_bytes()).unwrap();
        container::save(&paths.config(), &c).unwrap();
        age_file(&paths.config(), age);
    }

    fn age_file(path: &std::path::Path, age: Duration) {
        fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(SystemTime::now() - age)
            .unwrap();
    }

    /// Names of the listed containers, sorted, the broken ones' ids, and how many configs the
    /// index holds. Rows are listed too, before and after: the same containers and broken
    /// ones, and the index the same.
    fn listed(rt: &Runtime) -> (Vec<String>, Vec<String>, usize) {
        let as_rows = || {
            let (rows, broken) = rt.list_with_broken::<Row>().unwrap();
            let rows: Vec<Row> = rows.into_iter().map(|r| *r).collect();
            let broken: Vec<String> = broken.into_iter().map(|b| b.id).collect();
            (
                rows,
                broken,
                listindex::Index::read(&rt.containers).indexed(),
            )
        };
        let before = as_rows();
        let (good, broken) = rt.list_with_broken::<Container>().unwrap();
        let rows: Vec<Row> = good
            .iter()
            .map(|c| Row::from(Container::clone(c)))
            .collect();
        let broken_ids: Vec<String> = broken.iter().map(|b| b.id.clone()).collect();
        assert_eq!((&before.0, &before.1), (&rows, &broken_ids));
        assert_eq!(as_rows(), before);
        let mut names: Vec<String> = good.into_iter().map(|c| c.name).collect();
        names.sort();
        let broken = broken.into_iter().map(|b| b.id).collect();
        (
            names,
            broken,
            listindex::Index::read(&rt.containers).indexed(),
        )
    }

    #[test]
    fn the_listing_index_follows_every_change_of_a_config() {
        let (_dir, rt) = runtime();
        let old = Duration::from_secs(5);
        let ids: Vec<String> = ["a1", "b2", "c3"].iter().map(|p| p.repeat(32)).collect();
        for (id, name) in ids.iter().zip(["one", "two", "three"]) {
            write_config(&rt, id, name, old);
        }
        let all = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(listed(&rt), (all(&["one", "three", "two"]), vec![], 3));
        // Read from the index, the same.
        assert_eq!(listed(&rt), (all(&["one", "three", "two"]), vec![], 3));
        // Replaced (a new file), even dated as the indexed one was.
        write_config(&rt, &ids[0], "uno", old);
        assert_eq!(listed(&rt), (all(&["three", "two", "uno"]), vec![], 3));
        // Damaged in place: listed as broken (its text indexed as it is now).
        let config = rt.paths(&ids[1]).config();
        fs::write(&config, b"{\"Id\": \"trunc").unwrap();
        age_file(&config, old);
        assert_eq!(
            listed(&rt),
            (all(&["three", "uno"]), vec![ids[1].clone()], 3)
        );
        // Removed: gone.
        fs::remove_dir_all(rt.paths(&ids[2]).dir).unwrap();
        assert_eq!(listed(&rt), (all(&["uno"]), vec![ids[1].clone()], 2));
    }

    #[test]
    fn a_config_only_rows_can_read_is_indexed_once_for_both_listings() {
        let (_dir, rt) = runtime();
        let id = "c9".repeat(32);
        write_config(&rt, &id, "odd", Duration::from_secs(5));
        // Damaged where a row does not look: a row, but a broken container.
        let config = rt.paths(&id).config();
        let text = fs::read_to_string(&config).unwrap().replacen(
            "\"Name\"",
            "\"HostConfig\":{\"PidsLimit\":\"x\"},\"Name\"",
            1,
        );
        fs::write(&config, text).unwrap();
        age_file(&config, Duration::from_secs(5));
        let index_file = listindex::path(&rt.containers);
        let inode = || fs::metadata(&index_file).map(|m| m.ino()).ok();
        let (rows, _) = rt.list_with_broken::<Row>().unwrap();
        assert_eq!(rows.len(), 1);
        let written = inode();
        assert!(written.is_some());
        for _ in 0..2 {
            let (good, broken) = rt.list_with_broken::<Container>().unwrap();
            assert!(good.is_empty());
            assert_eq!(broken[0].id, id);
            assert!(broken[0].reason().starts_with("config.json: "));
            assert_eq!(rt.list_with_broken::<Row>().unwrap().0.len(), 1);
            // Neither listing wrote the index again.
            assert_eq!(inode(), written);
        }
    }

    #[test]
    fn a_row_listing_reaps_a_container_whose_monitor_is_gone() {
        let (_dir, rt) = runtime();
        let id = "b8".repeat(32);
        write_config(&rt, &id, "ghost", Duration::from_secs(5));
        let config = rt.paths(&id).config();
        let mut c = container::load(&config).unwrap();
        c.state.running = true;
        c.state.started_at = chrono::Utc::now();
        // `--network none`: reaping it has no bridge network to reclaim (and set up first).
        c.config.network_disabled = true;
        // pid_max is at most 2^22: no process has this pid.
        c.monitor = Some(ProcessRef {
            pid: 1 << 23,
            start_time: 1,
        });
        container::save(&config, &c).unwrap();
        let (rows, broken) = rt.list_with_broken::<Row>().unwrap();
        assert!(broken.is_empty());
        assert_eq!(rows.len(), 1);
        assert!(!rows[0].state.running, "{:?}", rows[0].state);
        assert_eq!(rows[0].monitor, None);
        // Recorded as exited: the next listing reads the same.
        let c = container::load(&config).unwrap();
        assert!(!c.state.running && c.monitor_lost);
        assert_eq!(*rows[0], Row::from(c));
    }

    #[test]
    fn names_come_from_the_index_or_the_files_and_leave_out_what_cannot_be_read() {
        let (_dir, rt) = runtime();
        let old = Duration::from_secs(5);
        let ids: Vec<String> = ["e5", "f6"].iter().map(|p| p.repeat(32)).collect();
        write_config(&rt, &ids[0], "indexed", old);
        listed(&rt);
        write_config(&rt, &ids[1], "fresh", Duration::ZERO);
        let garbage = rt.paths(&"a7".repeat(32));
        fs::create_dir_all(&garbage.dir).unwrap();
        fs::write(garbage.config(), b"[").unwrap();
        let mut names = rt.names().unwrap();
        names.sort();
        assert_eq!(
            names,
            vec![
                (ids[0].clone(), "indexed".to_string()),
                (ids[1].clone(), "fresh".to_string()),
            ]
        );
        // Renamed in place of the indexed file: the new name.
        write_config(&rt, &ids[0], "renamed", old);
        assert!(rt.names().unwrap().iter().any(|(_, n)| n == "renamed"));
    }

    /// Sets the modification time of directory `dir` to `at`.
    fn set_dir_time(dir: &std::path::Path, at: SystemTime) {
        fs::File::open(dir).unwrap().set_modified(at).unwrap();
    }

    #[test]
    fn a_whole_index_stands_for_the_directory_while_its_time_is_the_same() {
        let (_dir, rt) = runtime();
        let old = Duration::from_secs(5);
        let ids: Vec<String> = ["a1", "b2", "c3"].iter().map(|p| p.repeat(32)).collect();
        write_config(&rt, &ids[0], "one", old);
        write_config(&rt, &ids[1], "two", old);
        let all = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let whole = || {
            listindex::Index::read(&rt.containers)
                .whole_under()
                .is_some()
        };
        // The first listing makes the index's directory: the directory's time is new.
        listed(&rt);
        assert!(!whole());
        let then = SystemTime::now() - old;
        set_dir_time(&rt.containers, then);
        assert_eq!(listed(&rt), (all(&["one", "two"]), vec![], 2));
        assert!(whole());
        // Listings from a whole index leave it as it is.
        let index_file = listindex::path(&rt.containers);
        let inode = || fs::metadata(&index_file).unwrap().ino();
        let written = inode();
        listed(&rt);
        assert_eq!(inode(), written);
        // Created in the same instant: listed by id.
        let (rows, _) = rt.list_with_broken::<Row>().unwrap();
        let in_order: Vec<&str> = rows.iter().map(|row| row.id.as_str()).collect();
        assert_eq!(in_order, [ids[0].as_str(), ids[1].as_str()]);
        // An entry made behind the index's back, with the directory's time put back: the
        // directory is not read, so it is not listed, nor is its name taken.
        write_config(&rt, &ids[2], "three", old);
        set_dir_time(&rt.containers, then);
        assert_eq!(listed(&rt).0, all(&["one", "two"]));
        let mut names: Vec<String> = rt.names().unwrap().into_iter().map(|(_, n)| n).collect();
        names.sort();
        assert_eq!(names, all(&["one", "two"]));
        // Once the directory's time tells of it, it is; whole again once that time settles.
        set_dir_time(&rt.containers, SystemTime::now());
        assert_eq!(listed(&rt), (all(&["one", "three", "two"]), vec![], 3));
        assert!(!whole());
        set_dir_time(&rt.containers, then);
        assert_eq!(listed(&rt), (all(&["one", "three", "two"]), vec![], 3));
        assert!(whole());
        // A config changed in place is still seen: each file is stated.
        let config = rt.paths(&ids[1]).config();
        fs::write(&config, b"{").unwrap();
        age_file(&config, old);
        assert_eq!(
            listed(&rt),
            (all(&["one", "three"]), vec![ids[1].clone()], 3)
        );
        assert!(whole());
        // Removed: the directory's time changes by itself.
        fs::remove_dir_all(rt.paths(&ids[0]).dir).unwrap();
        assert_eq!(listed(&rt), (all(&["three"]), vec![ids[1].clone()], 2));
    }

    #[test]
    fn a_directory_with_a_create_under_way_is_read_until_it_is_swept() {
        let (_dir, rt) = runtime();
        let old = Duration::from_secs(5);
        write_config(&rt, &"a1".repeat(32), "one", old);
        listed(&rt);
        let staging = rt
            .containers
            .join(format!("{}{}", crate::CREATING_PREFIX, "b2".repeat(32)));
        fs::create_dir(&staging).unwrap();
        set_dir_time(&rt.containers, SystemTime::now() - old);
        // The store lock held elsewhere, as a create holds it while it stages.
        let held = crate::StoreLockHeld::by_another_thread(&rt);
        listed(&rt);
        assert!(staging.exists());
        // The directory holds more than its containers: the next listing reads it again.
        let index = listindex::Index::read(&rt.containers);
        assert_eq!((index.len(), index.whole_under()), (1, None));
        held.release();
        listed(&rt);
        assert!(!staging.exists(), "its creator gone, it is swept");
    }

    #[test]
    fn a_config_changed_within_the_settle_time_is_read_until_it_settles() {
        let (_dir, rt) = runtime();
        let id = "d4".repeat(32);
        write_config(&rt, &id, "fresh", Duration::ZERO);
        assert_eq!(listed(&rt), (vec!["fresh".to_string()], vec![], 0));
        age_file(&rt.paths(&id).config(), Duration::from_secs(5));
        assert_eq!(listed(&rt), (vec!["fresh".to_string()], vec![], 1));
    }

    #[test]
    fn a_damaged_config_is_listed_as_broken_naming_the_file() {
        let (_dir, rt) = runtime();
        let id = "ab".repeat(32);
        let paths = rt.paths(&id);
        fs::create_dir_all(&paths.dir).unwrap();
        fs::write(paths.config(), b"{\"Id\": \"trunc").unwrap();
        let (good, broken) = rt.list_with_broken::<Container>().unwrap();
        assert!(good.is_empty());
        assert_eq!(broken.len(), 1);
        assert_eq!(broken[0].id, id);
        assert!(!broken[0].running);
        let reason = broken[0].reason();
        assert!(reason.starts_with("config.json: "), "{reason}");
        // Found by prefix, as broken, and not by list().
        assert!(rt.list().unwrap().is_empty());
        match rt.get(&id[..6]) {
            Err(Error::Broken { id: found, .. }) => assert_eq!(found, id),
            other => panic!("{other:?}"),
        }
        // Wrong types are as broken as bad JSON.
        fs::write(paths.config(), br#"{"Id": 5, "State": []}"#).unwrap();
        assert!(matches!(rt.get(&id), Err(Error::Broken { .. })));
    }
}
