//! A monitor's per-client output queue: bounded, written without blocking.
//!
//! The monitor never waits for a client. What a client has not taken yet waits here; a client
//! whose queue would grow past its limit has fallen behind and is dropped, so one stalled
//! `attach` never holds up the container's output, its log or the other clients.

use std::collections::VecDeque;
use std::io::{self, Write};

/// Frames waiting for one client.
#[derive(Debug)]
pub struct OutQueue {
    buf: VecDeque<u8>,
    limit: usize,
}

impl OutQueue {
    /// A queue that holds at most `limit` bytes of data frames.
    pub fn new(limit: usize) -> OutQueue {
        OutQueue {
            buf: VecDeque::new(),
            limit,
        }
    }

    /// Queues a data frame; `false` (and nothing queued) when it would take the queue past
    /// its limit: the client fell behind.
    pub fn push_data(&mut self, frame: &[u8]) -> bool {
        if self.buf.len() + frame.len() > self.limit {
            return false;
        }
        self.buf.extend(frame);
        true
    }

    /// Queues a control frame (attached, signal acknowledgement, exit): always, since they
    /// are few and small.
    pub fn push_control(&mut self, frame: &[u8]) {
        self.buf.extend(frame);
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Writes what `out` takes without blocking; an error only when the client is gone.
    pub fn flush(&mut self, mut out: impl Write) -> io::Result<()> {
        while !self.buf.is_empty() {
            let (front, _) = self.buf.as_slices();
            match out.write(front) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.buf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that takes `room` bytes, then would block (or fails, once `gone`).
    struct Client {
        got: Vec<u8>,
        room: usize,
        gone: bool,
    }

    impl Write for &mut Client {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            if self.gone {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = data.len().min(self.room).min(3);
            self.got.extend_from_slice(&data[..n]);
            self.room -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_reading_client_gets_everything_in_order() {
        let mut q = OutQueue::new(16);
        let mut client = Client {
            got: Vec::new(),
            room: 1000,
            gone: false,
        };
        for chunk in [&b"hello "[..], b"world", b"!"] {
            assert!(q.push_data(chunk));
            q.flush(&mut client).unwrap();
        }
        assert!(q.is_empty());
        assert_eq!(client.got, b"hello world!");
    }

    #[test]
    fn a_stalled_client_is_never_waited_for_and_falls_behind_at_the_limit() {
        let mut q = OutQueue::new(10);
        let mut client = Client {
            got: Vec::new(),
            room: 4,
            gone: false,
        };
        assert!(q.push_data(b"abcdef"));
        // Takes 4 bytes, then would block: flush returns instead of waiting.
        q.flush(&mut client).unwrap();
        assert_eq!(client.got, b"abcd");
        assert_eq!(q.len(), 2);
        assert!(q.push_data(b"ghijklmn"));
        assert_eq!(q.len(), 10);
        // One more byte of data is past the limit: refused, nothing queued.
        assert!(!q.push_data(b"o"));
        assert_eq!(q.len(), 10);
        // Control frames still go in.
        q.push_control(b"X");
        client.room = 100;
        q.flush(&mut client).unwrap();
        assert_eq!(client.got, b"abcdefghijklmnX");
    }

    #[test]
    fn a_client_that_went_away_is_an_error() {
        let mut q = OutQueue::new(10);
        let mut client = Client {
            got: Vec::new(),
            room: 0,
            gone: true,
        };
        q.push_control(b"exit");
        assert!(q.flush(&mut client).is_err());
    }
}
