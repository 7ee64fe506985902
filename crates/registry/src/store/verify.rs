//! The uncompressed layer stream with its diff ID checked before the extractor sees its end.
//!
//! A tar reader stops at the end-of-archive blocks and never reads what follows, and the
//! store commits a layer as soon as extraction returns. So this reader holds back the last
//! [`HOLD_BACK`] bytes of the stream until the stream has ended and its digest matched: the
//! end-of-archive blocks are in that tail, so extraction cannot complete (and the layer
//! cannot be committed) unless the whole blob was received and verified.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use crate::digest::HashingReader;
use crate::error::Error;

/// How much of the stream's end waits for the digest check. Tar pads to 10 KiB records;
/// more than this after the end-of-archive blocks is still caught, after the fact, by the
/// caller's check of [`Verified::diff_id`].
pub(crate) const HOLD_BACK: usize = 1 << 20;
const READ_CHUNK: usize = 256 << 10;

/// Where a verification error is left for the caller (the extractor only passes io errors).
pub(crate) type ErrorSlot = Arc<Mutex<Option<Error>>>;

pub(crate) struct Verified<R: Read> {
    inner: HashingReader<R>,
    expected: String,
    what: String,
    held: VecDeque<u8>,
    chunk: Vec<u8>,
    ended: bool,
    error: ErrorSlot,
}

impl<R: Read> Verified<R> {
    pub(crate) fn new(
        inner: HashingReader<R>,
        expected: &str,
        what: String,
        error: ErrorSlot,
    ) -> Self {
        Verified {
            inner,
            expected: expected.to_string(),
            what,
            held: VecDeque::new(),
            chunk: vec![0u8; READ_CHUNK],
            ended: false,
            error,
        }
    }

    /// Reads what the consumer left and gives the stream's digest (the diff ID).
    pub(crate) fn diff_id(mut self) -> io::Result<String> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(self.inner.digest())
    }

    fn fill(&mut self) -> io::Result<()> {
        while !self.ended && self.held.len() < HOLD_BACK + READ_CHUNK {
            let n = self.inner.read(&mut self.chunk)?;
            if n == 0 {
                self.ended = true;
                let actual = self.inner.digest();
                if actual != self.expected {
                    let err = Error::DigestMismatch {
                        what: self.what.clone(),
                        expected: self.expected.clone(),
                        actual,
                    };
                    let message = err.to_string();
                    *self.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(err);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, message));
                }
            } else {
                self.held.extend(&self.chunk[..n]);
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for Verified<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.fill()?;
        let releasable = if self.ended {
            self.held.len()
        } else {
            self.held.len().saturating_sub(HOLD_BACK)
        };
        let n = buf.len().min(releasable);
        let (a, b) = self.held.as_slices();
        let from_a = n.min(a.len());
        buf[..from_a].copy_from_slice(&a[..from_a]);
        buf[from_a..n].copy_from_slice(&b[..n - from_a]);
        self.held.drain(..n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256_digest;

    fn verified<'a>(data: &'a [u8], expected: &str) -> (Verified<&'a [u8]>, ErrorSlot) {
        let slot = ErrorSlot::default();
        let v = Verified::new(
            HashingReader::new(data),
            expected,
            "layer".into(),
            slot.clone(),
        );
        (v, slot)
    }

    #[test]
    fn passes_a_matching_stream_through() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (mut v, slot) = verified(&data, &sha256_digest(&data));
        let mut out = Vec::new();
        v.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
        assert!(slot.lock().unwrap().is_none());
    }

    #[test]
    fn a_consumer_cannot_reach_the_end_of_a_bad_stream() {
        let data = vec![1u8; 3_000_000];
        let (mut v, slot) = verified(&data, &sha256_digest(b"other"));
        let mut out = vec![0u8; data.len()];
        // Everything but the held-back tail comes through; the tail never does.
        let mut got = 0;
        let err = loop {
            match v.read(&mut out[got..]) {
                Ok(n) => got += n,
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(got <= data.len() - HOLD_BACK);
        assert!(matches!(
            slot.lock().unwrap().take(),
            Some(Error::DigestMismatch { .. })
        ));
    }

    #[test]
    fn diff_id_reads_what_the_consumer_left() {
        let data = vec![9u8; 10_000];
        let (mut v, _) = verified(&data, &sha256_digest(&data));
        let mut first = [0u8; 100];
        v.read_exact(&mut first).unwrap();
        assert_eq!(v.diff_id().unwrap(), sha256_digest(&data));
    }
}
