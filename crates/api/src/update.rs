//! `POST /containers/{id}/update`: the restart policy is honoured; any other field set to a
//! value is refused by name (`strict::check_update`), as dock changes no limit of a running
//! container.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::body::{self, Response};
use crate::containers::{read_body, runtime_error};
use crate::create::RestartPolicy;
use crate::error::{ApiError, ApiResult};
use crate::state::{blocking, State};

const MAX_UPDATE_BODY: usize = 1 << 20;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct UpdateBody {
    restart_policy: Option<RestartPolicy>,
}

pub async fn update(state: Arc<State>, name: String, request: Incoming) -> ApiResult<Response> {
    let data = read_body(request, MAX_UPDATE_BODY).await?;
    let raw: Value = serde_json::from_slice(&data)
        .map_err(|err| ApiError::bad_request(format!("invalid update config: {err}")))?;
    crate::strict::check_update(&raw)?;
    let body: UpdateBody = serde_json::from_value(raw)
        .map_err(|err| ApiError::bad_request(format!("invalid update config: {err}")))?;
    // An empty name is "not given" (the CLI sends one without --restart), as dockerd reads it.
    if let Some(policy) = body.restart_policy.filter(|p| !p.name.is_empty()) {
        let policy = runtime::RestartPolicy {
            name: policy.name,
            maximum_retry_count: policy.maximum_retry_count,
        };
        blocking(move || {
            state
                .runtime
                .update_restart_policy(&name, policy)
                .map(drop)
                .map_err(|e| runtime_error(e, &name))
        })
        .await?;
    }
    Ok(body::json(StatusCode::OK, &json!({ "Warnings": [] })))
}
