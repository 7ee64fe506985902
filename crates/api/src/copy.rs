//! `docker cp` and `docker rename`: `GET|HEAD|PUT /containers/{id}/archive` and
//! `POST /containers/{id}/rename`, over `runtime::copy`.

use std::io;
use std::sync::Arc;

use base64::Engine as _;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::StatusCode;
use runtime::copy::{Error as CopyError, ExtractOptions, PathStat};
use tokio::sync::{mpsc, oneshot};

use crate::body::{self, Response};
use crate::containers::{runtime_error, ChannelWriter};
use crate::error::{ApiError, ApiResult};
use crate::query::Query;
use crate::state::{blocking, State};

/// The header `HEAD` and `GET .../archive` describe the path with.
pub const PATH_STAT_HEADER: &str = "x-docker-container-path-stat";

/// The runtime's errors of a copy as Docker's statuses.
fn copy_error(err: runtime::Error, name: &str) -> ApiError {
    let runtime::Error::Copy(err) = err else {
        return runtime_error(err, name);
    };
    let status = match &err {
        CopyError::NotFound { .. } => StatusCode::NOT_FOUND,
        CopyError::ReadOnlyRootfs | CopyError::ReadOnlyVolume { .. } => StatusCode::FORBIDDEN,
        CopyError::NotADirectory { .. }
        | CopyError::StoppedMount { .. }
        | CopyError::OverwriteDir { .. }
        | CopyError::OverwriteNonDir { .. }
        | CopyError::Whiteout { .. }
        | CopyError::UnderMount { .. }
        | CopyError::Tar(_)
        | CopyError::Archive(archive::Error::Refused { .. } | archive::Error::Read { .. }) => {
            StatusCode::BAD_REQUEST
        }
        CopyError::Io { .. } | CopyError::Archive(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, err.to_string())
}

fn path_param(query: &Query) -> ApiResult<String> {
    match query.get("path") {
        Some(path) if !path.is_empty() => Ok(path.to_string()),
        _ => Err(ApiError::bad_request("path cannot be empty")),
    }
}

fn stat_header(stat: &PathStat) -> ApiResult<HeaderValue> {
    let json = serde_json::to_vec(stat)
        .map_err(|e| ApiError::internal(format!("encode the path stat: {e}")))?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(json);
    HeaderValue::from_str(&encoded).map_err(|e| ApiError::internal(e.to_string()))
}

fn bare(name: &str) -> String {
    name.trim_start_matches('/').to_string()
}

/// `HEAD /containers/{id}/archive?path=`: only the path's stat, in the header.
pub async fn stat(state: Arc<State>, name: String, query: Query) -> ApiResult<Response> {
    let path = path_param(&query)?;
    let name = bare(&name);
    let stat = blocking(move || {
        let root = state
            .runtime
            .copy_root(&name)
            .map_err(|e| copy_error(e, &name))?;
        root.stat(&path).map_err(|e| copy_error(e.into(), &name))
    })
    .await?;
    let mut response = body::status(StatusCode::OK);
    response
        .headers_mut()
        .insert(PATH_STAT_HEADER, stat_header(&stat)?);
    Ok(response)
}

/// `GET /containers/{id}/archive?path=`: the path as a tar, its stat in the header.
pub async fn get(state: Arc<State>, name: String, query: Query) -> ApiResult<Response> {
    let path = path_param(&query)?;
    let name = bare(&name);
    let (stat_tx, stat_rx) = oneshot::channel::<ApiResult<PathStat>>();
    let (tx, response_body) = body::channel();
    tokio::task::spawn_blocking(move || {
        let mut stat_tx = Some(stat_tx);
        let result = state.runtime.copy_root(&name).and_then(|root| {
            root.archive(&path, |stat| {
                let sent = stat_tx.take().map(|t| t.send(Ok(stat.clone())));
                match sent {
                    Some(Ok(())) => Ok(ChannelWriter { tx: tx.clone() }),
                    _ => Err(io::Error::other("the client left")),
                }
            })
            .map_err(Into::into)
        });
        if let Err(err) = result {
            match stat_tx.take() {
                Some(stat_tx) => {
                    let _ = stat_tx.send(Err(copy_error(err, &name)));
                }
                // The headers are out: all that can be done is to cut the stream short.
                None => tracing::warn!(container = %name, %path, "archive failed: {err}"),
            }
        }
        drop(tx);
    });
    let stat = stat_rx
        .await
        .map_err(|_| ApiError::internal("archive handler failed"))??;
    let mut response = body::with_type(StatusCode::OK, "application/x-tar", response_body);
    response
        .headers_mut()
        .insert(PATH_STAT_HEADER, stat_header(&stat)?);
    Ok(response)
}

/// `PUT /containers/{id}/archive?path=&noOverwriteDirNonDir=&copyUIDGID=`: extracts the body
/// (a tar, any compression) into the directory `path`.
pub async fn put(
    state: Arc<State>,
    name: String,
    query: Query,
    request_body: Incoming,
) -> ApiResult<Response> {
    let path = path_param(&query)?;
    let name = bare(&name);
    let opts = ExtractOptions {
        no_overwrite_dir_non_dir: query.flag("noOverwriteDirNonDir"),
        copy_uid_gid: query.flag("copyUIDGID"),
    };
    let (chunks_tx, chunks_rx) = mpsc::channel::<io::Result<bytes::Bytes>>(8);
    tokio::spawn(crate::images::forward_body(request_body, chunks_tx));
    blocking(move || {
        let root = state
            .runtime
            .copy_root(&name)
            .map_err(|e| copy_error(e, &name))?;
        let reader = crate::images::BodyReader::new(chunks_rx, None);
        root.extract(&path, reader, opts)
            .map_err(|e| copy_error(e.into(), &name))
    })
    .await?;
    Ok(body::status(StatusCode::OK))
}

/// `POST /containers/{id}/rename?name=`: 204, or Docker's 400/404/409.
pub async fn rename(state: Arc<State>, name: String, query: Query) -> ApiResult<Response> {
    let new = query.get("name").unwrap_or_default().to_string();
    let name = bare(&name);
    blocking(move || {
        state.runtime.rename(&name, &new).map_err(|e| match e {
            runtime::Error::InvalidName(bad) => ApiError::bad_request(format!(
                "Invalid container name ({bad}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )),
            other => runtime_error(other, &name),
        })
    })
    .await?;
    Ok(body::status(StatusCode::NO_CONTENT))
}
