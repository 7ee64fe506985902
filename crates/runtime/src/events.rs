//! Docker's events (`dock events`, `GET /events`), recorded where every process sees them.
//!
//! Whoever does something (a `dock` command, the API server, a container's monitor) appends
//! one JSON line to `ROOT/events` with a single `write` on an `O_APPEND` descriptor, so lines of
//! concurrent writers never interleave. Past [`MAX_LOG_BYTES`] the log is renamed to
//! `ROOT/events.1` (under `ROOT/events.lock`, one old generation kept). Readers replay both
//! files for `--since` and follow the current one by polling its size and inode.
//!
//! Recording never fails the action it describes: a write that fails is logged at warn level.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Container;

/// The log under the root.
pub const LOG_FILE: &str = "events";
/// The previous generation of the log.
pub const OLD_LOG_FILE: &str = "events.1";
/// A log larger than this is rotated after the write that grew it past.
pub const MAX_LOG_BYTES: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid filter {0:?}: expected KEY=VALUE")]
    FilterSyntax(String),
    #[error(
        "invalid filter {0:?}: dock filters events by type, event, container, image and label"
    )]
    FilterKey(String),
    #[error(
        "invalid time {0:?}: expected a Unix timestamp, an RFC 3339 date or a duration like 10m"
    )]
    Time(String),
}

/// Docker's `events.Message`, with the legacy `status`, `id` and `from`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from: String,
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes", default)]
    pub attributes: BTreeMap<String, String>,
}

impl Message {
    /// An event of `kind` ("container", "image", "volume", ...) happening now.
    pub fn new(kind: &str, action: &str, id: &str) -> Message {
        let now = Utc::now();
        let nanos = now.timestamp_nanos_opt().unwrap_or_default();
        Message {
            status: String::new(),
            id: String::new(),
            from: String::new(),
            kind: kind.to_string(),
            action: action.to_string(),
            actor: Actor {
                id: id.to_string(),
                attributes: BTreeMap::new(),
            },
            scope: "local".to_string(),
            time: now.timestamp(),
            time_nano: nanos,
        }
    }

    /// A container event: its labels, `name` and `image` (as the user named it) as attributes.
    pub fn container(c: &Container, action: &str) -> Message {
        let mut m = Message::new("container", action, &c.id);
        m.actor.attributes = c.config.labels.clone();
        m.actor
            .attributes
            .insert("name".into(), c.name.trim_start_matches('/').to_string());
        let image = if c.config.image.is_empty() {
            &c.image
        } else {
            &c.config.image
        };
        m.actor.attributes.insert("image".into(), image.clone());
        m.status = action.to_string();
        m.id = c.id.clone();
        m.from = image.clone();
        m
    }

    /// An image event; `name` (REPO:TAG) when the action concerns one.
    pub fn image(id: &str, action: &str, name: Option<&str>) -> Message {
        let id = if id.contains(':') {
            id.to_string()
        } else {
            format!("sha256:{id}")
        };
        let mut m = Message::new("image", action, &id);
        m.actor
            .attributes
            .insert("name".into(), name.unwrap_or(&id).to_string());
        m.status = action.to_string();
        m.id = name.unwrap_or(&id).to_string();
        m
    }

    /// One more attribute (`exitCode`, `signal`, ...).
    pub fn with(mut self, key: &str, value: impl ToString) -> Message {
        self.actor.attributes.insert(key.into(), value.to_string());
        self
    }

    /// The line `docker events` prints: local time with nanoseconds, type, action, actor and
    /// its attributes sorted by key.
    pub fn line(&self) -> String {
        // Go's RFC3339NanoFixed: "Z" for UTC, else the offset.
        let local = DateTime::from_timestamp_nanos(self.time_nano).with_timezone(&chrono::Local);
        let zone = if local.offset().local_minus_utc() == 0 {
            "Z".to_string()
        } else {
            local.format("%:z").to_string()
        };
        let time = format!("{}{zone}", local.format("%Y-%m-%dT%H:%M:%S%.9f"));
        let mut line = format!("{time} {} {} {}", self.kind, self.action, self.actor.id);
        if !self.actor.attributes.is_empty() {
            let attrs: Vec<String> = self
                .actor
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            line.push_str(&format!(" ({})", attrs.join(", ")));
        }
        line
    }
}

/// Appends `message` to the root's log. Never fails the caller: a failure is logged.
pub fn record(root: &Path, message: &Message) {
    if let Err(e) = append(root, message) {
        tracing::warn!(action = %message.action, error = %e, "recording the event failed");
    }
}

/// `record` of a container event: the one line callers add where something happens.
pub fn container(root: &Path, c: &Container, action: &str) {
    record(root, &Message::container(c, action));
}

/// `record` of an image event.
pub fn image(root: &Path, id: &str, action: &str, name: Option<&str>) {
    record(root, &Message::image(id, action, name));
}

fn append(root: &Path, message: &Message) -> Result<(), Error> {
    let path = root.join(LOG_FILE);
    let io_err = |source| Error::Io {
        path: path.clone(),
        source,
    };
    let mut line = serde_json::to_vec(message).map_err(|e| io_err(io::Error::other(e)))?;
    line.push(b'\n');
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err)?;
    // One write: O_APPEND places it at the end atomically, whole.
    let written = file.write(&line).map_err(io_err)?;
    if written != line.len() {
        return Err(io_err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short write to the event log",
        )));
    }
    let size = file.metadata().map_err(io_err)?.len();
    if size > MAX_LOG_BYTES {
        rotate(root, file.metadata().map_err(io_err)?.ino())?;
    }
    Ok(())
}

/// Renames the log to its old generation, once, whoever else is rotating.
fn rotate(root: &Path, ino: u64) -> Result<(), Error> {
    let lock_path = root.join("events.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|source| Error::Io {
            path: lock_path.clone(),
            source,
        })?;
    lock.lock().map_err(|source| Error::Io {
        path: lock_path,
        source,
    })?;
    let path = root.join(LOG_FILE);
    // Someone rotated it before us: the log at the path is a new one.
    match fs::metadata(&path) {
        Ok(meta) if meta.ino() == ino && meta.len() > MAX_LOG_BYTES => {}
        _ => return Ok(()),
    }
    fs::rename(&path, root.join(OLD_LOG_FILE)).map_err(|source| Error::Io { path, source })
}

/// What `--filter` / `filters` keep: each key given must match one of its values.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub types: Vec<String>,
    pub events: Vec<String>,
    pub containers: Vec<String>,
    pub images: Vec<String>,
    /// `label=KEY` or `label=KEY=VALUE`: the actor's attributes (a container's labels).
    pub labels: Vec<String>,
}

impl Filters {
    /// From `KEY=VALUE` specs (the CLI's `--filter`).
    pub fn parse(specs: &[String]) -> Result<Filters, Error> {
        let mut filters = Filters::default();
        for spec in specs {
            let (key, value) = spec
                .split_once('=')
                .ok_or_else(|| Error::FilterSyntax(spec.clone()))?;
            filters.add(key, value)?;
        }
        Ok(filters)
    }

    /// One filter value; an unknown key is an error.
    pub fn add(&mut self, key: &str, value: &str) -> Result<(), Error> {
        let list = match key {
            "type" => &mut self.types,
            "event" => &mut self.events,
            "container" => &mut self.containers,
            "image" => &mut self.images,
            "label" => &mut self.labels,
            _ => return Err(Error::FilterKey(format!("{key}={value}"))),
        };
        list.push(value.to_string());
        Ok(())
    }

    pub fn matches(&self, m: &Message) -> bool {
        let attr = |k: &str| m.actor.attributes.get(k).map(String::as_str);
        let actor_is = |names: &[String], kind: &str| {
            names.is_empty()
                || (m.kind == kind
                    && names.iter().any(|n| {
                        m.actor.id == *n
                            || (n.len() >= 4 && m.actor.id.starts_with(n.as_str()))
                            || m.actor.id.strip_prefix("sha256:").is_some_and(|id| {
                                id.starts_with(n.trim_start_matches("sha256:")) && n.len() >= 4
                            })
                            || attr("name") == Some(n.as_str())
                    }))
        };
        let image_ok = self.images.is_empty()
            || (m.kind == "container" && self.images.iter().any(|i| attr("image") == Some(i)))
            || actor_is(&self.images, "image");
        (self.types.is_empty() || self.types.contains(&m.kind))
            && (self.events.is_empty()
                || self
                    .events
                    .iter()
                    .any(|e| *e == m.action || m.action.starts_with(&format!("{e}:"))))
            && actor_is(&self.containers, "container")
            && image_ok
            && self.labels.iter().all(|l| match l.split_once('=') {
                Some((k, v)) => attr(k) == Some(v),
                None => attr(l).is_some(),
            })
    }
}

/// `--since` / `--until`: a Unix timestamp (`1700000000`, `1700000000.5`), an RFC 3339 date
/// (or `2006-01-02`, `2006-01-02T15:04:05` in UTC), or a duration before `now` (`10m`, `1h30m`).
/// Nanoseconds since the epoch.
pub fn parse_time(text: &str, now: DateTime<Utc>) -> Result<i64, Error> {
    let bad = || Error::Time(text.to_string());
    let t = text.trim();
    if t.is_empty() {
        return Err(bad());
    }
    if let Some((secs, frac)) = t.split_once('.').or(Some((t, ""))) {
        if !secs.is_empty()
            && secs.bytes().all(|b| b.is_ascii_digit())
            && frac.bytes().all(|b| b.is_ascii_digit())
        {
            let secs: i64 = secs.parse().map_err(|_| bad())?;
            let mut digits: String = frac.chars().take(9).collect();
            while digits.len() < 9 {
                digits.push('0');
            }
            let nanos: i64 = digits.parse().map_err(|_| bad())?;
            return secs
                .checked_mul(1_000_000_000)
                .and_then(|n| n.checked_add(nanos))
                .ok_or_else(bad);
        }
    }
    if let Ok(date) = DateTime::parse_from_rfc3339(t) {
        return date.timestamp_nanos_opt().ok_or_else(bad);
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(naive) = chrono::NaiveDateTime::parse_from_str(t, format) {
            return naive.and_utc().timestamp_nanos_opt().ok_or_else(bad);
        }
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return day
            .and_hms_opt(0, 0, 0)
            .and_then(|d| d.and_utc().timestamp_nanos_opt())
            .ok_or_else(bad);
    }
    // A duration back from `now`, without a sign.
    let nanos = match t.starts_with(['-', '+']) {
        true => None,
        false => crate::logs::go_duration(t),
    }
    .ok_or_else(bad)?;
    now.timestamp_nanos_opt()
        .and_then(|n| n.checked_sub(nanos))
        .ok_or_else(bad)
}

/// The recorded events with `since <= time`, oldest first (both generations of the log).
pub fn replay(root: &Path, since_nano: i64) -> Result<Vec<Message>, Error> {
    let mut out = Vec::new();
    for name in [OLD_LOG_FILE, LOG_FILE] {
        let path = root.join(name);
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(Error::Io { path, source }),
        };
        out.extend(
            parse_lines(&text)
                .0
                .into_iter()
                .filter(|m| m.time_nano >= since_nano),
        );
    }
    Ok(out)
}

/// The whole lines of `bytes` as messages (lines that do not parse are skipped), and how many
/// bytes they took.
fn parse_lines(bytes: &[u8]) -> (Vec<Message>, usize) {
    let mut out = Vec::new();
    let mut used = 0;
    while let Some(end) = bytes[used..].iter().position(|&b| b == b'\n') {
        let line = &bytes[used..used + end];
        if let Ok(m) = serde_json::from_slice::<Message>(line) {
            out.push(m);
        }
        used += end + 1;
    }
    (out, used)
}

/// Follows the log from its end at `open`: each `poll` returns what was appended since, also
/// across a rotation.
pub struct Follower {
    path: PathBuf,
    file: Option<File>,
    ino: u64,
    pending: Vec<u8>,
    /// The log rotated away at the last poll, with its unfinished line: a writer that opened
    /// it before the rename may still append, so it is read once more.
    retired: Option<(File, Vec<u8>)>,
}

impl Follower {
    pub fn open(root: &Path) -> Follower {
        let path = root.join(LOG_FILE);
        let mut follower = Follower {
            path,
            file: None,
            ino: 0,
            pending: Vec::new(),
            retired: None,
        };
        if let Some((mut file, ino)) = follower.open_file() {
            if file.seek(SeekFrom::End(0)).is_ok() {
                follower.file = Some(file);
                follower.ino = ino;
            }
        }
        follower
    }

    fn open_file(&self) -> Option<(File, u64)> {
        let file = File::open(&self.path).ok()?;
        let ino = file.metadata().ok()?.ino();
        Some((file, ino))
    }

    /// The messages appended since the last poll.
    pub fn poll(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        if let Some((mut old, mut pending)) = self.retired.take() {
            out.extend(drain(&mut old, &mut pending));
        }
        if let Some(file) = &mut self.file {
            out.extend(drain(file, &mut self.pending));
        }
        // Rotated (or created): finish the old file, then read the new one from its start.
        let current = fs::metadata(&self.path).ok().map(|m| m.ino());
        if current.is_some() && current != Some(self.ino) || self.file.is_none() {
            if let Some((file, ino)) = self.open_file() {
                let old = self.file.replace(file);
                let old_pending = std::mem::take(&mut self.pending);
                self.retired = old.map(|old| (old, old_pending));
                self.ino = ino;
                if let Some(file) = &mut self.file {
                    out.extend(drain(file, &mut self.pending));
                }
            }
        }
        out
    }
}

/// The whole lines appended to `file` since the last read; a partial last line stays in
/// `pending` for the next.
fn drain(file: &mut File, pending: &mut Vec<u8>) -> Vec<Message> {
    let _ = file.read_to_end(pending);
    let (messages, used) = parse_lines(pending);
    pending.drain(..used);
    messages
}

/// How often a follower looks for new lines.
pub const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Docker's events stream: with `since`, the recorded events from then; then (unless `until`
/// passed already) those that happen, until `until`. `emit` gets each matching message, and
/// `None` at every poll; it returns false to stop (the reader went away).
pub fn watch(
    root: &Path,
    since: Option<i64>,
    until: Option<i64>,
    filters: &Filters,
    emit: &mut dyn FnMut(Option<&Message>) -> bool,
) -> Result<(), Error> {
    let now = || Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
    // Opened first, so nothing falls between the replay and the follow; what both see is
    // shown once.
    let mut follower = Follower::open(root);
    let opened = now();
    let mut replayed_late = Vec::new();
    if let Some(since) = since {
        for m in replay(root, since)? {
            if until.is_some_and(|u| m.time_nano > u) {
                break;
            }
            if m.time_nano >= opened {
                replayed_late.push(m.clone());
            }
            if filters.matches(&m) && !emit(Some(&m)) {
                return Ok(());
            }
        }
    }
    loop {
        if until.is_some_and(|u| now() > u) {
            return Ok(());
        }
        for m in follower.poll() {
            if let Some(i) = replayed_late.iter().position(|r| *r == m) {
                replayed_late.swap_remove(i);
                continue;
            }
            if until.is_some_and(|u| m.time_nano > u) {
                return Ok(());
            }
            if filters.matches(&m) && !emit(Some(&m)) {
                return Ok(());
            }
        }
        if !emit(None) {
            return Ok(());
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(nanos: i64, kind: &str, action: &str, id: &str) -> Message {
        let mut m = Message::new(kind, action, id);
        m.time_nano = nanos;
        m.time = nanos / 1_000_000_000;
        m
    }

    #[test]
    fn records_replays_and_follows_across_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        record(root, &at(1, "container", "create", "a"));
        let mut follower = Follower::open(root);
        assert!(follower.poll().is_empty());
        record(root, &at(2, "container", "start", "a"));
        let got = follower.poll();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].action, "start");
        // Rotation by hand: the follower finishes the old file, then reads the new one.
        record(root, &at(3, "container", "die", "a"));
        fs::rename(root.join(LOG_FILE), root.join(OLD_LOG_FILE)).unwrap();
        record(root, &at(4, "container", "destroy", "a"));
        let actions: Vec<String> = follower.poll().into_iter().map(|m| m.action).collect();
        assert_eq!(actions, ["die", "destroy"]);
        let since: Vec<i64> = replay(root, 2)
            .unwrap()
            .into_iter()
            .map(|m| m.time_nano)
            .collect();
        assert_eq!(since, [2, 3, 4]);
    }

    #[test]
    fn a_line_a_late_writer_adds_to_the_rotated_log_still_arrives() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        record(root, &at(1, "container", "create", "a"));
        let mut follower = Follower::open(root);
        // A writer that opened the log before it was rotated away.
        let mut late = OpenOptions::new()
            .append(true)
            .open(root.join(LOG_FILE))
            .unwrap();
        fs::rename(root.join(LOG_FILE), root.join(OLD_LOG_FILE)).unwrap();
        record(root, &at(2, "container", "start", "a"));
        let actions: Vec<String> = follower.poll().into_iter().map(|m| m.action).collect();
        assert_eq!(actions, ["start"]);
        let mut line = serde_json::to_vec(&at(3, "container", "die", "a")).unwrap();
        line.push(b'\n');
        late.write_all(&line).unwrap();
        let actions: Vec<String> = follower.poll().into_iter().map(|m| m.action).collect();
        assert_eq!(actions, ["die"]);
        assert!(follower.poll().is_empty());
    }

    #[test]
    fn a_big_log_rotates_and_keeps_every_line_whole() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let big = "x".repeat(1000);
        let threads_count = 4;
        let threads: Vec<_> = (0..threads_count)
            .map(|t| {
                let root = root.clone();
                let big = big.clone();
                std::thread::spawn(move || {
                    for i in 0..1500 {
                        record(&root, &at(i, "image", "tag", &format!("{t}-{big}")));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(fs::metadata(root.join(OLD_LOG_FILE)).is_ok());
        for name in [LOG_FILE, OLD_LOG_FILE] {
            let text = fs::read_to_string(root.join(name)).unwrap();
            for line in text.lines() {
                let m: Message = serde_json::from_str(line).unwrap();
                assert!(m.actor.id.ends_with(&big));
            }
            // Each writer that opened the log before a rotation may still land one line in
            // the old generation.
            let line = text.lines().map(str::len).max().unwrap_or(0) as u64 + 1;
            assert!(text.len() as u64 <= MAX_LOG_BYTES + threads_count * line);
        }
    }

    #[test]
    fn messages_have_dockers_shape_and_line() {
        let m = Message::image("abc", "tag", Some("bb:latest"));
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["Type"], "image");
        assert_eq!(v["Actor"]["ID"], "sha256:abc");
        assert_eq!(v["Actor"]["Attributes"]["name"], "bb:latest");
        assert_eq!(v["scope"], "local");
        assert_eq!(v["status"], "tag");
        assert!(v["timeNano"].as_i64().unwrap() / 1_000_000_000 == v["time"].as_i64().unwrap());
        let line = at(0, "container", "die", "abc")
            .with("exitCode", 3)
            .with("name", "x")
            .line();
        assert!(
            line.ends_with(" container die abc (exitCode=3, name=x)"),
            "{line}"
        );
    }

    #[test]
    fn filters_by_type_event_container_image_and_label() {
        let mut start = at(0, "container", "start", "0123456789ab");
        start.actor.attributes.insert("name".into(), "web".into());
        start.actor.attributes.insert("image".into(), "bb".into());
        let tag = Message::image("feed", "tag", Some("bb:latest"));
        let f = |specs: &[&str]| {
            Filters::parse(&specs.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
        };
        assert!(f(&[]).matches(&start) && f(&[]).matches(&tag));
        assert!(f(&["type=container"]).matches(&start));
        assert!(!f(&["type=container"]).matches(&tag));
        assert!(f(&["event=start", "event=die"]).matches(&start));
        assert!(!f(&["event=die"]).matches(&start));
        assert!(f(&["container=web"]).matches(&start));
        assert!(f(&["container=0123"]).matches(&start));
        assert!(!f(&["container=db"]).matches(&start));
        assert!(!f(&["container=web"]).matches(&tag));
        assert!(f(&["image=bb"]).matches(&start));
        assert!(f(&["image=bb:latest"]).matches(&tag));
        start.actor.attributes.insert("tier".into(), "web".into());
        assert!(f(&["label=tier"]).matches(&start));
        assert!(f(&["label=tier=web"]).matches(&start));
        assert!(!f(&["label=tier=db"]).matches(&start));
        assert!(!f(&["label=tier"]).matches(&tag));
        assert!(Filters::parse(&["nokey".into()]).is_err());
        assert!(Filters::parse(&["volume=x".into()]).is_err());
    }

    #[test]
    fn times_parse_as_docker_reads_them() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:10:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let base = now.timestamp_nanos_opt().unwrap();
        assert_eq!(parse_time("10m", now).unwrap(), base - 600_000_000_000);
        assert_eq!(parse_time("1h30m", now).unwrap(), base - 5_400_000_000_000);
        assert_eq!(
            parse_time("1700000000", now).unwrap(),
            1_700_000_000_000_000_000
        );
        assert_eq!(
            parse_time("1700000000.5", now).unwrap(),
            1_700_000_000_500_000_000
        );
        assert_eq!(
            parse_time("2026-01-01T00:00:00Z", now).unwrap(),
            base - 600_000_000_000
        );
        assert_eq!(
            parse_time("2026-01-01", now).unwrap(),
            base - 600_000_000_000
        );
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("", now).is_err());
    }
}
