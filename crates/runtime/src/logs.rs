//! The container log in Docker's json-file format: one `{"log","stream","time"}` object a line.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

impl Entry {
    pub fn is_stderr(&self) -> bool {
        self.stream == "stderr"
    }
    pub fn timestamp(&self) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(&self.time)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// A `--since`/`--until` value the docker CLI or the API could not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("failed to parse value as time or duration: {0:?}")]
    Invalid(String),
    #[error("invalid timestamp {0:?}: want unix seconds, optionally with a fraction")]
    Unix(String),
}

/// A point in time as `docker logs --since/--until` (and `events`) take it (the docker CLI's
/// `GetTimestamp`): a Go duration back from `now` (`10m`, `1h30m`, `1.5s`; whole seconds),
/// RFC 3339 with or without fraction and zone (`2026-12-02T01:02:03Z`, `...+01:00`; no zone:
/// local time), its shorter forms (`2026-12-02T01:02`, `2026-12-02T01`, `2026-12-02`), or
/// unix seconds with an optional fraction (`1764637323.5`).
pub fn parse_time(value: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, TimeError> {
    use chrono::{Local, NaiveDate, NaiveDateTime, TimeZone};
    let invalid = || TimeError::Invalid(value.to_string());
    if value != "0" {
        if let Some(nanos) = go_duration(value) {
            let at = now - chrono::Duration::nanoseconds(nanos);
            return DateTime::from_timestamp(at.timestamp(), 0).ok_or_else(invalid);
        }
    }
    let with_zone = value.contains(['z', 'Z', '+']) || value.matches('-').count() == 3;
    let parsed: Option<DateTime<Utc>> = if with_zone {
        let value = value.replace('z', "Z");
        DateTime::parse_from_rfc3339(&value)
            .ok()
            .or_else(|| {
                // 2006-01-02T15Z07:00, 2006-01-02T15:04Z07:00, 2006-01-02Z07:00
                let (local, zone) = match value.find(['Z', '+']) {
                    Some(i) => value.split_at(i),
                    None => {
                        let i = value.rfind('-')?;
                        value.split_at(i)
                    }
                };
                let zone = if zone == "Z" { "+00:00" } else { zone };
                let local = if local.contains('T') {
                    local.to_string()
                } else {
                    format!("{local}T00")
                };
                let full = match local.matches(':').count() {
                    0 => format!("{local}:00:00{zone}"),
                    1 => format!("{local}:00{zone}"),
                    _ => return None,
                };
                DateTime::parse_from_rfc3339(&full).ok()
            })
            .map(|t| t.with_timezone(&Utc))
    } else {
        let naive = if value.contains('T') {
            ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H"]
                .iter()
                .find_map(|f| {
                    NaiveDateTime::parse_from_str(value, f).ok().or_else(|| {
                        // chrono needs minutes: complete `T15` to `T15:00`.
                        (*f == "%Y-%m-%dT%H")
                            .then(|| {
                                NaiveDateTime::parse_from_str(
                                    &format!("{value}:00"),
                                    "%Y-%m-%dT%H:%M",
                                )
                                .ok()
                            })
                            .flatten()
                    })
                })
        } else if value.contains('-') {
            NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        } else {
            None
        };
        naive
            .and_then(|n| Local.from_local_datetime(&n).earliest())
            .map(|t| t.with_timezone(&Utc))
    };
    match parsed {
        Some(t) => Ok(t),
        None if value.contains('-') => Err(invalid()),
        None => parse_unix(value).map_err(|_| invalid()),
    }
}

/// `SECONDS[.FRACTION]`, as the Engine API takes `since`/`until` (moby's ParseTimestamps).
pub fn parse_unix(value: &str) -> Result<DateTime<Utc>, TimeError> {
    let bad = || TimeError::Unix(value.to_string());
    let (secs, frac) = match value.split_once('.') {
        Some((s, f)) => (s, Some(f)),
        None => (value, None),
    };
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    let nanos = match frac {
        None => 0,
        Some(f) if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) => {
            return Err(bad())
        }
        Some(f) => f.parse::<u32>().map_err(|_| bad())? * 10u32.pow(9 - f.len() as u32),
    };
    DateTime::from_timestamp(secs, nanos).ok_or_else(bad)
}

/// Go's `time.ParseDuration`, in nanoseconds: `[-+]?(DIGITS[.DIGITS]UNIT)+` with units ns,
/// us (µs), ms, s, m, h; `0` alone is zero.
pub fn go_duration(value: &str) -> Option<i64> {
    let (negative, mut rest) = match value.as_bytes().first()? {
        b'-' => (true, &value[1..]),
        b'+' => (false, &value[1..]),
        _ => (false, value),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return None;
        }
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale: f64 = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number.parse::<f64>().ok()? * scale;
    }
    if total > i64::MAX as f64 {
        return None;
    }
    let nanos = total.round() as i64;
    Some(if negative { -nanos } else { nanos })
}

/// Whether an entry logged at `time` is within `since` (inclusive) and `until` (inclusive),
/// as dockerd filters its log.
pub fn in_window(
    time: DateTime<Utc>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> bool {
    since.is_none_or(|s| time >= s) && until.is_none_or(|u| time <= u)
}

/// Appends entries; tracks the file length so attach clients learn where they joined.
pub struct LogWriter {
    file: File,
    len: u64,
}

impl LogWriter {
    pub fn open(path: &Path) -> Result<LogWriter> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        Ok(LogWriter { file, len })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// One entry per line of `data` (a trailing partial line is an entry of its own).
    pub fn write(&mut self, stream: &str, data: &[u8]) -> std::io::Result<()> {
        let time = Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true);
        let mut out = Vec::with_capacity(data.len() + 64);
        for line in data.split_inclusive(|b| *b == b'\n') {
            let entry = Entry {
                log: String::from_utf8_lossy(line).into_owned(),
                stream: stream.to_string(),
                time: time.clone(),
            };
            serde_json::to_writer(&mut out, &entry)?;
            out.push(b'\n');
        }
        self.file.write_all(&out)?;
        self.len += out.len() as u64;
        Ok(())
    }
}

/// Entries from byte `start` up to `end` (or the end of the file).
pub fn read(path: &Path, start: u64, end: Option<u64>) -> Result<Vec<Entry>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    file.seek(SeekFrom::Start(start))
        .map_err(|e| Error::io(path, e))?;
    let reader: Box<dyn Read> = match end {
        Some(end) => Box::new(file.take(end.saturating_sub(start))),
        None => Box::new(file),
    };
    let mut entries = Vec::new();
    for line in BufReader::new(reader).lines() {
        let line = line.map_err(|e| Error::io(path, e))?;
        if line.is_empty() {
            continue;
        }
        // A line cut short by a crash is skipped rather than failing the whole log.
        if let Ok(entry) = serde_json::from_str::<Entry>(&line) {
            entries.push(entry);
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_and_until_take_what_the_docker_cli_takes() {
        let now = DateTime::parse_from_rfc3339("2026-12-02T10:00:00.75Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        // Durations back from now, in whole seconds.
        assert_eq!(parse_time("10m", now).unwrap(), at("2026-12-02T09:50:00Z"));
        assert_eq!(
            parse_time("1h30m", now).unwrap(),
            at("2026-12-02T08:30:00Z")
        );
        assert_eq!(parse_time("1.5s", now).unwrap(), at("2026-12-02T09:59:59Z"));
        assert_eq!(
            parse_time("500ms", now).unwrap(),
            at("2026-12-02T10:00:00Z")
        );
        // RFC 3339 and its shorter forms with a zone.
        assert_eq!(
            parse_time("2026-12-02T01:02:03Z", now).unwrap(),
            at("2026-12-02T01:02:03Z")
        );
        assert_eq!(
            parse_time("2026-12-02T01:02:03.123456789+01:00", now).unwrap(),
            at("2026-12-02T00:02:03.123456789Z")
        );
        assert_eq!(
            parse_time("2026-12-02T01:02Z", now).unwrap(),
            at("2026-12-02T01:02:00Z")
        );
        assert_eq!(
            parse_time("2026-12-02T01Z", now).unwrap(),
            at("2026-12-02T01:00:00Z")
        );
        assert_eq!(
            parse_time("2026-12-02Z", now).unwrap(),
            at("2026-12-02T00:00:00Z")
        );
        assert_eq!(
            parse_time("2026-12-02T01:02:03-02:00", now).unwrap(),
            at("2026-12-02T03:02:03Z")
        );
        // Unix seconds, with a fraction; "0" is the epoch, not a duration.
        assert_eq!(
            parse_time("1764637323", now).unwrap(),
            DateTime::from_timestamp(1_764_637_323, 0).unwrap()
        );
        assert_eq!(
            parse_time("1764637323.25", now).unwrap(),
            DateTime::from_timestamp(1_764_637_323, 250_000_000).unwrap()
        );
        assert_eq!(parse_time("0", now).unwrap(), DateTime::UNIX_EPOCH);
        // Local forms parse (in whatever zone this machine is).
        assert!(parse_time("2026-12-02T01:02:03", now).is_ok());
        assert!(parse_time("2026-12-02T01:02", now).is_ok());
        assert!(parse_time("2026-12-02", now).is_ok());
        for bad in ["yesterday", "10x", "2026-13-02", "1.2.3", "", "-"] {
            let err = parse_time(bad, now).unwrap_err();
            assert_eq!(err, TimeError::Invalid(bad.to_string()), "{bad}");
        }
    }

    #[test]
    fn api_timestamps_and_windows() {
        assert_eq!(
            parse_unix("12.5").unwrap(),
            DateTime::from_timestamp(12, 500_000_000).unwrap()
        );
        assert_eq!(
            parse_unix("12.000000001").unwrap(),
            DateTime::from_timestamp(12, 1).unwrap()
        );
        assert!(parse_unix("12.").is_err());
        assert!(parse_unix("10m").is_err());
        assert_eq!(go_duration("-1m"), Some(-60_000_000_000));
        assert_eq!(go_duration("2h45m0.5s"), Some(9_900_500_000_000));
        assert_eq!(go_duration("m"), None);
        let t = |s| DateTime::from_timestamp(s, 0).unwrap();
        assert!(in_window(t(5), Some(t(5)), Some(t(5))));
        assert!(!in_window(t(4), Some(t(5)), None));
        assert!(!in_window(t(6), None, Some(t(5))));
        assert!(in_window(t(6), None, None));
    }

    #[test]
    fn lines_become_entries_and_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x-json.log");
        let mut w = LogWriter::open(&path).unwrap();
        w.write("stdout", b"one\ntwo\npart").unwrap();
        let mid = w.len();
        drop(w);
        let mut w = LogWriter::open(&path).unwrap();
        assert_eq!(w.len(), mid);
        w.write("stderr", b"err\n").unwrap();
        let all = read(&path, 0, None).unwrap();
        let logs: Vec<_> = all
            .iter()
            .map(|e| (e.log.as_str(), e.is_stderr()))
            .collect();
        assert_eq!(
            logs,
            [
                ("one\n", false),
                ("two\n", false),
                ("part", false),
                ("err\n", true)
            ]
        );
        assert!(all[0].timestamp().is_some());
        assert_eq!(read(&path, 0, Some(mid)).unwrap().len(), 3);
        assert_eq!(read(&path, mid, None).unwrap().len(), 1);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with(r#"{"log":"one\n","stream":"stdout","time":""#),
            "{text}"
        );
    }
}
