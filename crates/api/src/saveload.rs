//! `GET /images/{name}/get`, `GET /images/get?names=…` and `POST /images/load?quiet=`:
//! images as tar files through registry::archive_file, as `docker save` / `docker load` use them.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::StatusCode;
use registry::archive_file::{self, ArchiveError, LoadEvent};
use serde_json::json;
use tokio::sync::mpsc;

use crate::body::{self, Response};
use crate::containers::ChannelWriter;
use crate::error::{ApiError, ApiResult};
use crate::query::Query;
use crate::state::{blocking, State};

/// The archive of the named images, streamed; a name that names nothing is a 404 before
/// anything is sent.
pub async fn save(state: Arc<State>, names: Vec<String>) -> ApiResult<Response> {
    if names.is_empty() {
        return Err(ApiError::bad_request("no image names given (names=)"));
    }
    let images = {
        let state = state.clone();
        blocking(move || {
            let config = registry::RegistryConfig::load(&state.root)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            archive_file::resolve_names(&config, &state.graph, &state.tags, &names).map_err(|e| {
                match e {
                    ArchiveError::NoSuchImage { .. } => ApiError::not_found(e.to_string()),
                    ArchiveError::Invalid { .. } => ApiError::bad_request(e.to_string()),
                    other => ApiError::internal(other.to_string()),
                }
            })
        })
        .await?
    };
    let (tx, response_body) = body::channel();
    tokio::task::spawn_blocking(move || {
        let out = io::BufWriter::with_capacity(1 << 20, ChannelWriter { tx });
        match archive_file::save(&state.graph, &images, out, &mut |_| {}) {
            Ok(()) => {
                for image in &images {
                    let name = image.repo_tags.first().map(String::as_str);
                    runtime::events::image(&state.root, &image.id, "save", name);
                }
            }
            // The headers are out: all that can be done is to cut the stream short.
            Err(err) => tracing::warn!("save failed: {err}"),
        }
    });
    Ok(body::with_type(
        StatusCode::OK,
        "application/x-tar",
        response_body,
    ))
}

/// Loads the request body; Docker's JSON messages: `Loading layer` progress unless
/// `quiet`, then one `stream` line per loaded name (or image ID), or the error.
pub async fn load(state: Arc<State>, query: Query, request_body: Incoming) -> ApiResult<Response> {
    let quiet = query.flag("quiet");
    let (chunks_tx, chunks_rx) = mpsc::channel::<io::Result<Bytes>>(8);
    tokio::spawn(crate::images::forward_body(request_body, chunks_tx));
    let (out, response_body) = body::channel();
    tokio::task::spawn_blocking(move || {
        let reader = crate::images::BodyReader::new(chunks_rx, None);
        let result = archive_file::load(&state.graph, &state.tags, reader, &mut |event| {
            if quiet {
                return;
            }
            let LoadEvent::Loading {
                layer,
                current,
                total,
            } = event;
            // Progress only shows on a terminal; a client that left is noticed at the end.
            let _ = out.blocking_send(body::json_message(&json!({
                "status": "Loading layer",
                "progressDetail": { "current": current, "total": total },
                "progress": registry::store::progress_bar(current, total, 50),
                "id": layer,
            })));
        });
        match result {
            Ok(loaded) => {
                for image in &loaded {
                    let name = image.names.first().map(String::as_str);
                    runtime::events::image(&state.root, &image.id, "load", name);
                }
                for line in archive_file::messages(&loaded) {
                    let _ = out.blocking_send(body::json_message(&json!({
                        "stream": format!("{line}\n"),
                    })));
                }
            }
            Err(err) => {
                tracing::debug!(error = %err, "load failed");
                let _ = out.blocking_send(body::json_message_error(&err.to_string()));
            }
        }
    });
    Ok(body::with_type(StatusCode::OK, body::JSON, response_body))
}
