//! Volume endpoints over the runtime's volume store: `GET /volumes`, `POST /volumes/create`,
//! `GET`/`DELETE /volumes/{name}`, `POST /volumes/prune`, in Docker's JSON shapes.

use std::collections::BTreeMap;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::body::{self, Response};
use crate::containers::read_body;
use crate::error::{ApiError, ApiResult};
use crate::query::Query;
use crate::state::{blocking, State};

/// A create body is a few hundred bytes.
const MAX_CREATE_BODY: usize = 64 << 10;

/// The runtime's volume errors as dockerd answers them.
pub fn volume_error(err: runtime::volumes::Error) -> ApiError {
    use runtime::volumes::Error as E;
    match err {
        e @ E::NoSuchVolume(_) => ApiError::not_found(e.to_string()),
        e @ E::InUse { .. } => ApiError::conflict(e.to_string()),
        e @ (E::InvalidSpec { .. }
        | E::InvalidMount { .. }
        | E::InvalidMountFlag { .. }
        | E::Duplicate(_)
        | E::InvalidName(_)
        | E::Driver(_)) => ApiError::bad_request(e.to_string()),
        e @ (E::Io { .. } | E::Json { .. }) => ApiError::internal(e.to_string()),
    }
}

fn runtime_error(err: runtime::Error) -> ApiError {
    match err {
        runtime::Error::Volume(e) => volume_error(e),
        other => ApiError::internal(other.to_string()),
    }
}

/// `GET /volumes?filters=`: `{"Volumes": [...], "Warnings": []}`; filters `name` (substring),
/// `dangling` (true: unused) and `label` (KEY or KEY=VALUE).
pub async fn list(state: Arc<State>, query: Query) -> ApiResult<Response> {
    let names = query.filter("name")?;
    let dangling = query.filter("dangling")?;
    let labels = query.filter("label")?;
    let volumes = blocking(move || {
        let all = state
            .runtime
            .volumes()
            .and_then(|store| Ok(store.list()?))
            .map_err(runtime_error)?;
        let mut out = Vec::new();
        for v in all {
            if !names.is_empty() && !names.iter().any(|n| v.name.contains(n.as_str())) {
                continue;
            }
            if let Some(want) = dangling.first() {
                let unused = state
                    .runtime
                    .volume_users(&v.name)
                    .map_err(runtime_error)?
                    .is_empty();
                if unused != matches!(want.as_str(), "true" | "1") {
                    continue;
                }
            }
            let labelled = labels.iter().all(|l| match l.split_once('=') {
                Some((k, val)) => v.labels.get(k).is_some_and(|have| have == val),
                None => v.labels.contains_key(l.as_str()),
            });
            if labelled {
                out.push(v);
            }
        }
        Ok(out)
    })
    .await?;
    Ok(body::json(
        StatusCode::OK,
        &json!({ "Volumes": volumes, "Warnings": [] }),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: String,
    driver: String,
    driver_opts: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
}

/// `POST /volumes/create`: 201 and the volume (an existing one of that name as it is).
pub async fn create(state: Arc<State>, request: Incoming) -> ApiResult<Response> {
    let data = read_body(request, MAX_CREATE_BODY).await?;
    let body: CreateBody = if data.is_empty() {
        CreateBody::default()
    } else {
        serde_json::from_slice(&data)
            .map_err(|e| ApiError::bad_request(format!("invalid volume config: {e}")))?
    };
    let volume = blocking(move || {
        let name = (!body.name.is_empty()).then_some(body.name.as_str());
        state
            .runtime
            .create_volume(
                name,
                &body.driver,
                body.labels.clone().unwrap_or_default(),
                body.driver_opts.clone().unwrap_or_default(),
            )
            .map_err(runtime_error)
    })
    .await?;
    Ok(body::json(StatusCode::CREATED, &volume))
}

/// `GET /volumes/{name}`.
pub async fn inspect(state: Arc<State>, name: String) -> ApiResult<Response> {
    let volume = blocking(move || {
        state
            .runtime
            .volumes()
            .and_then(|store| Ok(store.get(&name)?))
            .map_err(runtime_error)
    })
    .await?;
    Ok(body::json(StatusCode::OK, &volume))
}

/// `DELETE /volumes/{name}?force=`: 204; 409 while a container uses it.
pub async fn remove(state: Arc<State>, name: String, query: Query) -> ApiResult<Response> {
    let force = query.flag("force");
    blocking(move || {
        state
            .runtime
            .remove_volume(&name, force)
            .map_err(runtime_error)
    })
    .await?;
    Ok(body::status(StatusCode::NO_CONTENT))
}

/// `POST /volumes/prune?filters=`: unused anonymous volumes, every unused one with the
/// filter `all=true` (API 1.42+).
pub async fn prune(state: Arc<State>, query: Query) -> ApiResult<Response> {
    let all = query
        .filter("all")?
        .iter()
        .any(|v| matches!(v.as_str(), "true" | "1"));
    let (deleted, reclaimed) =
        blocking(move || state.runtime.prune_volumes(all).map_err(runtime_error)).await?;
    Ok(body::json(
        StatusCode::OK,
        &json!({ "VolumesDeleted": deleted, "SpaceReclaimed": reclaimed }),
    ))
}
