//! The attach protocol spoken on `containers/<id>/attach.sock` (and on the socketpair a starting
//! `dock` hands its monitor).
//!
//! Every message is a frame: `[kind u8][len u32 big-endian][len bytes]`.
//!
//! Client to monitor: first a [`Kind::Hello`] (`[flags u8][rows u16][cols u16]`, see [`Hello`]),
//! then any of [`Kind::Stdin`] (an empty payload closes the container's stdin),
//! [`Kind::Resize`] (`[rows u16][cols u16]`) and [`Kind::Signal`] (`[signo i32]`).
//!
//! Monitor to client: [`Kind::Attached`] (`[log offset u64]`: the log's length when the client was
//! registered, so `logs -f` can read the file up to there and continue with frames), then
//! [`Kind::Stdout`] / [`Kind::Stderr`] data, [`Kind::Signaled`] (`[errno i32]`) for each signal
//! frame once the signal was sent (0) or could not be, and at last [`Kind::Exit`] (`[code i32]`) once the
//! container exited and everything it held was released. A starting `dock` first receives
//! [`Kind::Started`] (`[pid i32]`) or [`Kind::Error`] (`[exit code u8][message]`).

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

use crate::{Error, Result};

/// Frame kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Stdin = 0,
    Stdout = 1,
    Stderr = 2,
    Exit = 3,
    Started = 4,
    Error = 5,
    Attached = 6,
    /// The answer to a [`Kind::Signal`]: `[errno i32]`, 0 once the signal was sent.
    Signaled = 7,
    Hello = 16,
    Resize = 17,
    Signal = 18,
}

impl Kind {
    pub fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            0 => Kind::Stdin,
            1 => Kind::Stdout,
            2 => Kind::Stderr,
            3 => Kind::Exit,
            4 => Kind::Started,
            5 => Kind::Error,
            6 => Kind::Attached,
            7 => Kind::Signaled,
            16 => Kind::Hello,
            17 => Kind::Resize,
            18 => Kind::Signal,
            _ => return None,
        })
    }
}

/// Largest payload accepted; data frames are much smaller.
pub const MAX_FRAME: usize = 1 << 20;
pub const HEADER_LEN: usize = 5;

/// What a client wants from the monitor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hello {
    pub stdout: bool,
    pub stderr: bool,
    /// The client sends stdin frames.
    pub stdin: bool,
    /// Terminal size for a tty container (0 = leave as is).
    pub rows: u16,
    pub cols: u16,
    /// The client deletes a `--rm` container's directory once the exit frame says it is out
    /// of the store ([`crate::Runtime::delete_taken_out`]), while the monitor exits: the two
    /// take about as long, and the client waits for both. Should the frame not reach the
    /// client, the monitor deletes it after all.
    pub deletes_removed: bool,
}

impl Hello {
    pub fn encode(&self) -> [u8; 5] {
        let flags = self.stdout as u8
            | (self.stderr as u8) << 1
            | (self.stdin as u8) << 2
            | (self.deletes_removed as u8) << 3;
        let r = self.rows.to_be_bytes();
        let c = self.cols.to_be_bytes();
        [flags, r[0], r[1], c[0], c[1]]
    }

    pub fn decode(data: &[u8]) -> Option<Hello> {
        if data.len() < 5 {
            return None;
        }
        Some(Hello {
            stdout: data[0] & 1 != 0,
            stderr: data[0] & 2 != 0,
            stdin: data[0] & 4 != 0,
            deletes_removed: data[0] & 8 != 0,
            rows: u16::from_be_bytes([data[1], data[2]]),
            cols: u16::from_be_bytes([data[3], data[4]]),
        })
    }
}

/// One frame's header and payload, serialized.
pub fn encode(kind: Kind, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + data.len());
    out.push(kind as u8);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// Splits the first complete frame off `buf`: `Ok(None)` when more bytes are needed.
pub fn parse(buf: &[u8]) -> io::Result<Option<(Kind, &[u8], usize)>> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let kind =
        Kind::from_u8(buf[0]).ok_or_else(|| bad_frame(format!("unknown frame kind {}", buf[0])))?;
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > MAX_FRAME {
        return Err(bad_frame(format!("frame of {len} bytes is too large")));
    }
    if buf.len() < HEADER_LEN + len {
        return Ok(None);
    }
    Ok(Some((
        kind,
        &buf[HEADER_LEN..HEADER_LEN + len],
        HEADER_LEN + len,
    )))
}

fn bad_frame(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Reads one whole frame (blocking).
pub fn read_frame(mut reader: impl Read) -> io::Result<Option<(Kind, Vec<u8>)>> {
    let mut header = [0u8; HEADER_LEN];
    let mut filled = 0;
    while filled < HEADER_LEN {
        match reader.read(&mut header[filled..]) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let kind = Kind::from_u8(header[0])
        .ok_or_else(|| bad_frame(format!("unknown frame kind {}", header[0])))?;
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len > MAX_FRAME {
        return Err(bad_frame(format!("frame of {len} bytes is too large")));
    }
    let mut data = vec![0u8; len];
    reader.read_exact(&mut data)?;
    Ok(Some((kind, data)))
}

/// What a client receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Attached {
        log_offset: u64,
    },
    Started {
        pid: i32,
    },
    StartError {
        code: u8,
        message: String,
    },
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// A signal frame was handled: 0, or the errno of kill(2).
    Signaled(i32),
    Exit(i32),
}

impl Event {
    pub fn from_frame(kind: Kind, data: Vec<u8>) -> io::Result<Event> {
        let int = |data: &[u8]| -> io::Result<i32> {
            let bytes: [u8; 4] = data
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| bad_frame("short frame".into()))?;
            Ok(i32::from_be_bytes(bytes))
        };
        Ok(match kind {
            Kind::Stdout => Event::Stdout(data),
            Kind::Stderr => Event::Stderr(data),
            Kind::Exit => Event::Exit(int(&data)?),
            Kind::Signaled => Event::Signaled(int(&data)?),
            Kind::Started => Event::Started { pid: int(&data)? },
            Kind::Error => Event::StartError {
                code: data.first().copied().unwrap_or(125),
                message: String::from_utf8_lossy(data.get(1..).unwrap_or_default()).into_owned(),
            },
            Kind::Attached => {
                let bytes: [u8; 8] = data
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| bad_frame("short frame".into()))?;
                Event::Attached {
                    log_offset: u64::from_be_bytes(bytes),
                }
            }
            other => {
                return Err(bad_frame(format!(
                    "unexpected frame kind {other:?} from monitor"
                )))
            }
        })
    }
}

/// The client side: a connection to a container's monitor.
pub struct Client {
    stream: UnixStream,
}

impl Client {
    /// Connects to the attach socket and says hello.
    pub fn connect(socket: &Path, hello: Hello) -> Result<Client> {
        let stream = connect(socket).map_err(|e| Error::io(socket, e))?;
        let mut client = Client { stream };
        client
            .send(Kind::Hello, &hello.encode())
            .map_err(|e| Error::io(socket, e))?;
        Ok(client)
    }

    /// Wraps an already connected stream (the starter's socketpair end).
    pub fn from_stream(stream: UnixStream) -> Client {
        Client { stream }
    }

    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    pub fn into_stream(self) -> UnixStream {
        self.stream
    }

    pub fn send(&mut self, kind: Kind, data: &[u8]) -> io::Result<()> {
        self.stream.write_all(&encode(kind, data))
    }

    pub fn send_stdin(&mut self, data: &[u8]) -> io::Result<()> {
        self.send(Kind::Stdin, data)
    }

    pub fn close_stdin(&mut self) -> io::Result<()> {
        self.send(Kind::Stdin, &[])
    }

    pub fn resize(&mut self, rows: u16, cols: u16) -> io::Result<()> {
        let mut data = [0u8; 4];
        data[..2].copy_from_slice(&rows.to_be_bytes());
        data[2..].copy_from_slice(&cols.to_be_bytes());
        self.send(Kind::Resize, &data)
    }

    pub fn signal(&mut self, signo: i32) -> io::Result<()> {
        self.send(Kind::Signal, &signo.to_be_bytes())
    }

    /// Sends `signo` and waits until the monitor says it sent it: `Ok(Some(errno))` (0 when
    /// delivered), `Ok(None)` when the container exited first (the exit frame, or the monitor
    /// closing the connection). A monitor too old to acknowledge is waited for `patience`.
    pub fn signal_acked(&mut self, signo: i32, patience: Duration) -> io::Result<Option<i32>> {
        self.signal(signo)?;
        self.stream.set_read_timeout(Some(patience))?;
        let acked = loop {
            match self.next_event() {
                Ok(Some(Event::Signaled(errno))) => break Ok(Some(errno)),
                Ok(Some(Event::Exit(_))) | Ok(None) => break Ok(None),
                Ok(Some(_)) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break Ok(None),
                // No answer: a monitor that predates acknowledgements sent it.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break Ok(Some(0))
                }
                Err(e) => break Err(e),
            }
        };
        self.stream.set_read_timeout(None)?;
        acked
    }

    /// Reads and drops whatever comes until the monitor closes the connection.
    pub fn drain(&mut self) {
        let _ = self.stream.set_nonblocking(false);
        let _ = self.stream.set_read_timeout(None);
        let _ = io::copy(&mut self.stream, &mut io::sink());
    }

    /// The next event; `None` when the monitor closed the connection.
    pub fn next_event(&mut self) -> io::Result<Option<Event>> {
        match read_frame(&mut self.stream)? {
            None => Ok(None),
            Some((kind, data)) => Event::from_frame(kind, data).map(Some),
        }
    }

    /// Reads events until the exit frame; `None` if the monitor went away without one.
    /// Returns only once the monitor closed the connection, i.e. when it is exiting, so
    /// nothing of the container is left when this returns.
    pub fn wait_exit(&mut self) -> io::Result<Option<i32>> {
        loop {
            match self.next_event() {
                Ok(Some(Event::Exit(code))) => {
                    self.drain();
                    return Ok(Some(code));
                }
                Ok(Some(_)) => {}
                Ok(None) => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }
}

impl AsFd for Client {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

impl AsRawFd for Client {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.stream.as_raw_fd()
    }
}

/// Runs `f` with a path to `path` short enough for a unix socket address: long paths go
/// through `/proc/self/fd/<dir>/<name>` of an `O_PATH` descriptor of the parent directory.
fn with_short_path<T>(path: &Path, f: impl FnOnce(&Path) -> io::Result<T>) -> io::Result<T> {
    // sun_path holds 108 bytes including the terminating nul.
    if path.as_os_str().len() < 100 {
        return f(path);
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return f(path);
    };
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(dir)?;
    let short = Path::new("/proc/self/fd")
        .join(dir.as_raw_fd().to_string())
        .join(name);
    f(&short)
}

/// Connects to a monitor's socket at `path`, however long the path is.
pub fn connect(path: &Path) -> io::Result<UnixStream> {
    with_short_path(path, |p| UnixStream::connect(p))
}

/// Binds a listening socket at `path`, however long the path is.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    with_short_path(path, |p| UnixListener::bind(p))
}

/// Incremental reader of frames from a non-blocking source.
#[derive(Default)]
pub struct FrameBuffer {
    buf: Vec<u8>,
}

impl FrameBuffer {
    pub fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The kind of the next complete frame, if there is one, without taking it.
    pub fn peek_kind(&self) -> io::Result<Option<Kind>> {
        Ok(parse(&self.buf)?.map(|(kind, _, _)| kind))
    }

    /// Bytes received and not taken as frames yet.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Takes the next complete frame, if there is one.
    pub fn next_frame(&mut self) -> io::Result<Option<(Kind, Vec<u8>)>> {
        let Some((kind, data, used)) = parse(&self.buf)? else {
            return Ok(None);
        };
        let data = data.to_vec();
        self.buf.drain(..used);
        Ok(Some((kind, data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_and_frames_round_trip() {
        let hello = Hello {
            stdout: true,
            stderr: false,
            stdin: true,
            rows: 24,
            cols: 80,
            deletes_removed: false,
        };
        assert_eq!(Hello::decode(&hello.encode()), Some(hello));
        let deleter = Hello {
            stdin: false,
            deletes_removed: true,
            ..hello
        };
        assert_eq!(Hello::decode(&deleter.encode()), Some(deleter));
        let mut fb = FrameBuffer::default();
        let bytes = [
            encode(Kind::Stdout, b"hi\n"),
            encode(Kind::Exit, &3i32.to_be_bytes()),
        ]
        .concat();
        fb.extend(&bytes[..4]);
        assert!(fb.next_frame().unwrap().is_none());
        fb.extend(&bytes[4..]);
        let (kind, data) = fb.next_frame().unwrap().unwrap();
        assert_eq!(
            Event::from_frame(kind, data).unwrap(),
            Event::Stdout(b"hi\n".to_vec())
        );
        let (kind, data) = fb.next_frame().unwrap().unwrap();
        assert_eq!(Event::from_frame(kind, data).unwrap(), Event::Exit(3));
        assert!(fb.next_frame().unwrap().is_none());
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(parse(&[99, 0, 0, 0, 0]).is_err());
        assert!(parse(&[1, 0xff, 0xff, 0xff, 0xff]).is_err());
        let mut read = &encode(Kind::Error, b"\x7fnot found")[..];
        let (kind, data) = read_frame(&mut read).unwrap().unwrap();
        assert_eq!(
            Event::from_frame(kind, data).unwrap(),
            Event::StartError {
                code: 127,
                message: "not found".into()
            }
        );
    }
}
