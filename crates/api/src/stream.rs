//! Docker's stream framing for attach and logs, and the hijacked attach connection.
//!
//! Without a tty every chunk goes out as `[STREAM, 0, 0, 0, SIZE_BE32] + payload` (stdcopy);
//! with one the bytes go out raw. The hijack hands the raw socket over after a `101`.

use bytes::{BufMut, Bytes, BytesMut};
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE, UPGRADE};
use hyper::StatusCode;

use crate::body::{self, Response};

pub const MULTIPLEXED: &str = "application/vnd.docker.multiplexed-stream";
pub const RAW: &str = "application/vnd.docker.raw-stream";

/// Which stream a frame belongs to; the numbers are the wire values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Stdout = 1,
    Stderr = 2,
    /// An error from the daemon; the CLI stops with `error from daemon in stream: ...`.
    System = 3,
}

/// One multiplexed frame.
pub fn frame(kind: StreamKind, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(8 + payload.len());
    out.put_u8(kind as u8);
    out.put_bytes(0, 3);
    out.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
    out.put_slice(&payload[..payload.len().min(u32::MAX as usize)]);
    out.freeze()
}

/// How output of a container goes on the wire: framed without a tty, raw with one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    pub tty: bool,
}

impl Framing {
    pub fn content_type(self) -> &'static str {
        if self.tty {
            RAW
        } else {
            MULTIPLEXED
        }
    }

    pub fn encode(self, kind: StreamKind, payload: &[u8]) -> Bytes {
        if self.tty {
            Bytes::copy_from_slice(payload)
        } else {
            frame(kind, payload)
        }
    }
}

/// The `101` that hands the connection over, as moby's attach answers it.
pub fn upgrade_response(framing: Framing) -> Response {
    let mut response = body::status(StatusCode::SWITCHING_PROTOCOLS);
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(framing.content_type()),
    );
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("tcp"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_the_stream_and_big_endian_size() {
        let f = frame(StreamKind::Stdout, b"hello stdout\n");
        assert_eq!(&f[..8], &[1, 0, 0, 0, 0, 0, 0, 13]);
        assert_eq!(&f[8..], b"hello stdout\n");
        let f = frame(StreamKind::Stderr, &[7u8; 300]);
        assert_eq!(&f[..8], &[2, 0, 0, 0, 0, 0, 1, 44]);
        assert_eq!(f.len(), 308);
    }

    #[test]
    fn a_tty_goes_out_raw() {
        let raw = Framing { tty: true };
        assert_eq!(&raw.encode(StreamKind::Stdout, b"x\r\n")[..], b"x\r\n");
        assert_eq!(raw.content_type(), RAW);
        assert_eq!(Framing { tty: false }.content_type(), MULTIPLEXED);
    }
}
