//! A layer blob on its way from the registry to the extractor: the download thread appends
//! to an unnamed temporary file (gone with the process, even after SIGKILL), the applier
//! reads behind it and waits when it catches up. The layer being applied streams straight
//! through; layers downloaded ahead of their turn wait in their files.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};

use crate::error::Error;

#[derive(Debug)]
enum End {
    Open,
    /// Downloaded completely and verified against its digest and size.
    Done,
    /// The download failed; the error is taken by whoever reports it.
    Failed(Option<Error>),
    /// The pull gave up (another layer failed).
    Cancelled,
}

#[derive(Debug)]
struct State {
    written: u64,
    end: End,
}

/// One layer's temporary file and how far it is written.
#[derive(Debug)]
pub(crate) struct Spool {
    file: File,
    state: Mutex<State>,
    changed: Condvar,
}

impl Spool {
    /// A new empty spool in `dir` (the store's filesystem).
    pub(crate) fn new(dir: &Path) -> io::Result<Arc<Spool>> {
        Ok(Arc::new(Spool {
            file: tempfile::tempfile_in(dir)?,
            state: Mutex::new(State {
                written: 0,
                end: End::Open,
            }),
            changed: Condvar::new(),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends downloaded bytes.
    pub(crate) fn append(&self, bytes: &[u8]) -> io::Result<()> {
        (&self.file).write_all(bytes)?;
        self.lock().written += bytes.len() as u64;
        self.changed.notify_all();
        Ok(())
    }

    pub(crate) fn finish(&self, result: Result<(), Error>) {
        let mut state = self.lock();
        if matches!(state.end, End::Open) {
            state.end = match result {
                Ok(()) => End::Done,
                Err(e) => End::Failed(Some(e)),
            };
        }
        drop(state);
        self.changed.notify_all();
    }

    pub(crate) fn cancel(&self) {
        let mut state = self.lock();
        if matches!(state.end, End::Open) {
            state.end = End::Cancelled;
        }
        drop(state);
        self.changed.notify_all();
    }

    /// Downloaded completely and verified.
    pub(crate) fn is_done(&self) -> bool {
        matches!(self.lock().end, End::Done)
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        matches!(self.lock().end, End::Cancelled)
    }

    /// The download's error, once (the first caller gets it).
    pub(crate) fn take_error(&self) -> Option<Error> {
        match &mut self.lock().end {
            End::Failed(e) => e.take(),
            _ => None,
        }
    }

    pub(crate) fn reader(self: &Arc<Spool>) -> SpoolReader {
        SpoolReader {
            spool: self.clone(),
            offset: 0,
        }
    }
}

/// Reads a spool from its start, blocking until bytes are there; the end of the stream only
/// once the download is complete and verified. A failed download is an error of kind
/// `InvalidData` (the download's error stays in the spool for [`Spool::take_error`]).
pub(crate) struct SpoolReader {
    spool: Arc<Spool>,
    offset: u64,
}

impl SpoolReader {
    /// Bytes handed out so far.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }
}

impl Read for SpoolReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut state = self.spool.lock();
        loop {
            if state.written > self.offset {
                break;
            }
            match &state.end {
                End::Open => {
                    state = self
                        .spool
                        .changed
                        .wait(state)
                        .unwrap_or_else(|e| e.into_inner())
                }
                End::Done => return Ok(0),
                End::Failed(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the layer download failed",
                    ))
                }
                End::Cancelled => {
                    return Err(io::Error::new(
                        io::ErrorKind::Interrupted,
                        "the pull was cancelled",
                    ))
                }
            }
        }
        let available = state.written - self.offset;
        drop(state);
        let want = buf
            .len()
            .min(usize::try_from(available).unwrap_or(usize::MAX));
        let n = self.spool.file.read_at(&mut buf[..want], self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn reader_follows_the_writer_and_ends_when_done() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path()).unwrap();
        let mut reader = spool.reader();
        let writer = {
            let spool = spool.clone();
            thread::spawn(move || {
                for i in 0..100u8 {
                    spool.append(&[i; 1000]).unwrap();
                }
                spool.finish(Ok(()));
            })
        };
        let mut all = Vec::new();
        reader.read_to_end(&mut all).unwrap();
        writer.join().unwrap();
        assert_eq!(all.len(), 100_000);
        assert!(all
            .chunks(1000)
            .enumerate()
            .all(|(i, c)| c.iter().all(|&b| b == i as u8)));
        // Unnamed: nothing of it is visible in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_failed_download_fails_the_reader_and_keeps_its_error() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path()).unwrap();
        spool.append(b"partial").unwrap();
        spool.finish(Err(Error::BlobUnknown {
            name: "r/x".into(),
            digest: "sha256:00".into(),
        }));
        let mut reader = spool.reader();
        let mut buf = [0u8; 64];
        assert_eq!(reader.read(&mut buf).unwrap(), 7);
        assert_eq!(
            reader.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert!(matches!(
            spool.take_error(),
            Some(Error::BlobUnknown { .. })
        ));
        assert!(spool.take_error().is_none());
    }

    #[test]
    fn cancel_wakes_a_waiting_reader() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path()).unwrap();
        let mut reader = spool.reader();
        let waiter = thread::spawn(move || reader.read(&mut [0u8; 8]).unwrap_err().kind());
        spool.cancel();
        assert_eq!(waiter.join().unwrap(), io::ErrorKind::Interrupted);
        assert!(spool.is_cancelled());
    }
}
