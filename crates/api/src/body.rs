//! Response bodies and the helpers that build responses.
//!
//! Everything goes out as one boxed body type: a full buffer, nothing, or a channel whose
//! sender a task keeps writing to. A channel body lets hyper flush the headers at once and
//! the data as it comes (`/wait`, `logs -f`, import progress, export).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::Frame;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::StatusCode;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::error::ApiError;

pub type Body = BoxBody<Bytes, io::Error>;
pub type Response = hyper::Response<Body>;

pub const JSON: &str = "application/json";

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A response with `status`, no body.
pub fn status(status: StatusCode) -> Response {
    let mut response = hyper::Response::new(empty());
    *response.status_mut() = status;
    response
}

/// A JSON response; `Content-Type: application/json` exactly, as the CLI compares it.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(data) => with_type(status, JSON, full(data)),
        Err(err) => error(&ApiError::internal(format!("encode the answer: {err}"))),
    }
}

pub fn with_type(status: StatusCode, content_type: &'static str, body: Body) -> Response {
    let mut response = hyper::Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The daemon's error answer: `{"message": ...}`, or an empty 304.
pub fn error(err: &ApiError) -> Response {
    if err.status == StatusCode::NOT_MODIFIED {
        return status(err.status);
    }
    let data = serde_json::json!({ "message": err.message }).to_string();
    with_type(err.status, JSON, full(data))
}

/// A body fed through a channel: each `Bytes` sent becomes a chunk; dropping the sender ends it.
pub struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|data| Ok(Frame::data(data))))
    }
}

/// A channel body and the sender that feeds it.
pub fn channel() -> (mpsc::Sender<Bytes>, Body) {
    let (tx, rx) = mpsc::channel(16);
    (tx, ChannelBody { rx }.boxed())
}

/// One line of a JSON-message stream, as Docker's streamformatter writes it.
pub fn json_message(value: &serde_json::Value) -> Bytes {
    let mut line = value.to_string().into_bytes();
    line.extend_from_slice(b"\r\n");
    Bytes::from(line)
}

/// The stream form of an error that happened after the headers went out.
pub fn json_message_error(message: &str) -> Bytes {
    json_message(&serde_json::json!({
        "errorDetail": { "message": message },
        "error": message,
    }))
}
