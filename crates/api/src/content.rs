//! The daemon's `CheckForJSON`: endpoints that read a JSON body refuse any other content type
//! with a 400 naming it, as dockerd does (a request without a body needs no type).

use hyper::header::{HeaderMap, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use hyper::Method;

use crate::error::{ApiError, ApiResult};

/// How much of a refused body is read (and dropped) before the 400 goes out.
pub const MAX_REFUSED_BODY: usize = 1 << 20;

/// Whether `method path` (version prefix stripped) reads a JSON body (dockerd checks these).
pub fn requires_json(method: &Method, path: &str) -> bool {
    if method != Method::POST {
        return false;
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    matches!(
        segments.as_slice(),
        ["containers", "create"]
            | ["commit"]
            | ["volumes", "create"]
            | ["networks", "create"]
            | ["containers", _, "exec" | "update"]
            | ["exec", _, "start"]
    )
}

/// `application/json` (parameters allowed), or no type on an empty body; else a 400.
pub fn check_for_json(headers: &HeaderMap) -> ApiResult<()> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let empty_body = headers.get(TRANSFER_ENCODING).is_none()
        && headers
            .get(CONTENT_LENGTH)
            .is_none_or(|len| len.as_bytes() == b"0");
    if content_type.is_empty() && empty_body {
        return Ok(());
    }
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media_type.is_empty() || !media_type.contains('/') {
        return Err(ApiError::bad_request(format!(
            "malformed Content-Type header ({content_type}): mime: no media type"
        )));
    }
    if media_type != "application/json" {
        return Err(ApiError::bad_request(format!(
            "unsupported Content-Type header ({content_type}): must be 'application/json'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;
    use hyper::StatusCode;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn json_bodies_pass_and_others_are_400s_naming_the_type() {
        let ok = headers(&[
            ("content-type", "application/json; charset=utf-8"),
            ("content-length", "2"),
        ]);
        assert!(check_for_json(&ok).is_ok());
        assert!(check_for_json(&headers(&[])).is_ok());
        let text = headers(&[("content-type", "text/plain"), ("content-length", "2")]);
        let err = check_for_json(&text).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.message.contains("text/plain"), "{}", err.message);
        let untyped = headers(&[("content-length", "2")]);
        assert!(check_for_json(&untyped).is_err());
    }

    #[test]
    fn the_endpoints_dockerd_checks() {
        assert!(requires_json(&Method::POST, "/containers/create"));
        assert!(requires_json(&Method::POST, "/containers/abc/exec"));
        assert!(requires_json(&Method::POST, "/exec/abc/start"));
        assert!(requires_json(&Method::POST, "/commit"));
        assert!(!requires_json(&Method::POST, "/containers/abc/start"));
        assert!(!requires_json(&Method::GET, "/containers/create"));
        assert!(!requires_json(&Method::POST, "/images/create"));
    }
}
