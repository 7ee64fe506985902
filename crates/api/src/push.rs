//! `POST /images/{name}/push`: `registry::push_image` with Docker's JSON progress stream.

use std::sync::Arc;

use hyper::{HeaderMap, StatusCode};
use registry::{LayerEvent, LayerStatus, RegistryConfig};
use serde_json::{json, Value};

use crate::auth::{self, registry_error};
use crate::body::{self, Response};
use crate::error::{ApiError, ApiResult};
use crate::images::{familiar, store_error};
use crate::query::Query;
use crate::state::{blocking, State};

/// Pushes `name:tag`, or every tag of repository `name` when `tag` is empty (the API's rule).
pub async fn push(
    state: Arc<State>,
    name: String,
    query: Query,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let auth = auth::registry_auth(headers)?;
    let (repo, embedded) = tagstore::parse_reference(familiar(&name));
    let tag = query.non_empty("tag").map(str::to_string).or(embedded);
    // Everything that can be refused is refused before the stream starts.
    let (target, jobs) = {
        let state = state.clone();
        blocking(move || {
            let config = RegistryConfig::load(&state.root).map_err(|e| registry_error(&e))?;
            let target = config.reference(&repo).map_err(|e| registry_error(&e))?;
            let repos = state.tags.repositories().map_err(|e| store_error(&e))?;
            let tags = repos.get(&repo);
            let jobs: Vec<(String, String)> = match &tag {
                Some(t) => tags
                    .and_then(|m| m.get(t))
                    .map(|id| vec![(t.clone(), id.clone())])
                    .unwrap_or_default(),
                None => tags
                    .map(|m| m.iter().map(|(t, id)| (t.clone(), id.clone())).collect())
                    .unwrap_or_default(),
            };
            if jobs.is_empty() {
                let shown = match &tag {
                    Some(t) => format!("{repo}:{t}"),
                    None => repo.clone(),
                };
                return Err(ApiError::not_found(format!(
                    "An image does not exist locally with the tag: {shown}"
                )));
            }
            Ok((target, jobs))
        })
        .await?
    };
    let (out, response_body) = body::channel();
    tokio::task::spawn_blocking(move || {
        let send = |value: Value| {
            let _ = out.blocking_send(body::json_message(&value));
        };
        send(json!({
            "status": format!("The push refers to repository [{}]", target.name())
        }));
        let client = match auth::client(&state, auth.as_ref(), &target.registry) {
            Ok(c) => c,
            Err(e) => {
                let _ = out.blocking_send(body::json_message_error(&e.message));
                return;
            }
        };
        for (tag, id) in jobs {
            let mut reference = target.clone();
            reference.tag = Some(tag);
            let result = registry::push_image(&client, &state.graph, &id, &reference, &mut |e| {
                send(event_json(&e))
            });
            match result {
                Ok(pushed) => {
                    runtime::events::image(&state.root, &id, "push", Some(&reference.to_string()));
                    send(json!({
                        "status": format!(
                            "{}: digest: {} size: {}",
                            pushed.tag, pushed.digest, pushed.size
                        )
                    }));
                    send(json!({
                        "progressDetail": {},
                        "aux": { "Tag": pushed.tag, "Digest": pushed.digest, "Size": pushed.size },
                    }));
                }
                Err(e) => {
                    let _ = out.blocking_send(body::json_message_error(&error_text(&e)));
                    return;
                }
            }
        }
    });
    Ok(body::with_type(StatusCode::OK, body::JSON, response_body))
}

/// The error and its causes, as the CLI prints them.
fn error_text(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// One layer event as Docker's JSON message.
fn event_json(e: &LayerEvent) -> Value {
    let status = match &e.status {
        LayerStatus::Preparing => "Preparing".to_string(),
        LayerStatus::Pushing { current, total } => {
            return json!({
                "status": "Pushing",
                "progressDetail": { "current": current, "total": total },
                "id": e.id,
            })
        }
        LayerStatus::Pushed => "Pushed".to_string(),
        LayerStatus::Exists => "Layer already exists".to_string(),
        LayerStatus::Mounted { from } => format!("Mounted from {from}"),
    };
    json!({ "status": status, "progressDetail": {}, "id": e.id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_as_docker_messages() {
        let e = |status| LayerEvent {
            id: "0123456789ab".into(),
            status,
        };
        assert_eq!(
            event_json(&e(LayerStatus::Mounted {
                from: "team/x".into()
            })),
            json!({"status": "Mounted from team/x", "progressDetail": {}, "id": "0123456789ab"})
        );
        assert_eq!(
            event_json(&e(LayerStatus::Pushing {
                current: 5,
                total: 10
            }))["progressDetail"],
            json!({"current": 5, "total": 10})
        );
        assert_eq!(
            event_json(&e(LayerStatus::Exists))["status"],
            "Layer already exists"
        );
    }
}
