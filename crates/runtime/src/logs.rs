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
