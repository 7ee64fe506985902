//! `containers/<id>/exit`: the end of a run, recorded where it needs no new space.
//!
//! The monitor allocates the file when it claims the container (a full disk fails the start
//! then, not the exit) and later overwrites it in place: the blocks are there already, so
//! recording the exit code works on a full filesystem, where replacing `config.json` does not.
//! A reader trusts a record only when it names the monitor that ran the container (pid and
//! start time), so one run's record never passes for another's.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::container::ProcessRef;

/// The file's fixed size: a record and its padding.
pub const SIZE: usize = 1024;
/// The longest error message kept, so the record always fits.
const MAX_ERROR: usize = 600;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ExitRecord {
    /// The monitor of the run this record is about.
    pub monitor: ProcessRef,
    /// None while the container runs.
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(rename = "OOMKilled", default)]
    pub oom_killed: bool,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// Why the exit could not be recorded in config.json, if it could not.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

impl ExitRecord {
    /// The record of a run that has not ended.
    pub fn started(monitor: ProcessRef) -> ExitRecord {
        ExitRecord {
            monitor,
            ..ExitRecord::default()
        }
    }

    /// The record as stored: JSON padded with spaces to [`SIZE`].
    pub fn encode(&self) -> Vec<u8> {
        let mut record = self.clone();
        if record.error.len() > MAX_ERROR {
            let mut end = MAX_ERROR;
            while !record.error.is_char_boundary(end) {
                end -= 1;
            }
            record.error.truncate(end);
        }
        let mut bytes = serde_json::to_vec(&record).unwrap_or_default();
        bytes.resize(SIZE, b' ');
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Option<ExitRecord> {
        serde_json::from_slice(bytes).ok()
    }
}

/// Makes sure the file exists with its blocks allocated, and says the run of `monitor` began.
pub fn prepare(path: &Path, monitor: ProcessRef) -> io::Result<()> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    // The write reserves the file's blocks (allocated, or held for delayed allocation): a
    // later overwrite of the same bytes needs no more. No fsync: start stays cheap, and the
    // reservation holds without it. (A copy-on-write filesystem needs space for any write.)
    file.write_all_at(&ExitRecord::started(monitor).encode(), 0)?;
    file.set_len(SIZE as u64)
}

/// Overwrites the record in place; never grows the file.
pub fn write(path: &Path, record: &ExitRecord) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.write_all_at(&record.encode(), 0)
}

/// The record, if there is a readable one.
pub fn read(path: &Path) -> Option<ExitRecord> {
    let mut bytes = vec![0u8; SIZE];
    let file = File::open(path).ok()?;
    let n = file.read_at(&mut bytes, 0).ok()?;
    ExitRecord::decode(&bytes[..n])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn monitor() -> ProcessRef {
        ProcessRef {
            pid: 42,
            start_time: 4242,
        }
    }

    #[test]
    fn a_record_is_written_in_place_at_its_fixed_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exit");
        prepare(&path, monitor()).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), SIZE as u64);
        assert_eq!(read(&path), Some(ExitRecord::started(monitor())));
        let ended = ExitRecord {
            monitor: monitor(),
            exit_code: Some(3),
            oom_killed: false,
            finished_at: Some(Utc::now()),
            error: "é".repeat(1000),
        };
        write(&path, &ended).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), SIZE as u64);
        let back = read(&path).unwrap();
        assert_eq!(back.exit_code, Some(3));
        assert!(back.error.len() <= MAX_ERROR && back.error.starts_with('é'));
        // The next run starts over in the same blocks.
        prepare(&path, ProcessRef::default()).unwrap();
        assert_eq!(read(&path).unwrap().exit_code, None);
    }

    #[test]
    fn damaged_or_missing_records_are_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exit");
        assert_eq!(read(&path), None);
        assert!(
            write(&path, &ExitRecord::default()).is_err(),
            "never created here"
        );
        std::fs::write(&path, b"{\"Monitor\":").unwrap();
        assert_eq!(read(&path), None);
    }
}
