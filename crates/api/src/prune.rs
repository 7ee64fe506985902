//! `POST /containers/prune`, `POST /images/prune` and `GET /system/df`, over
//! `runtime::prune` (what `dock container prune`, `image prune` and `system df` use).

use std::sync::Arc;

use hyper::StatusCode;
use runtime::prune::{ImageRemoval, PruneFilters};
use serde_json::{json, Value};

use crate::body::{self, Response};
use crate::error::{ApiError, ApiResult};
use crate::events::filter_pairs;
use crate::images::api_id;
use crate::query::Query;
use crate::state::{blocking, State};

fn prune_error(err: runtime::Error) -> ApiError {
    match err {
        runtime::Error::InvalidFilter(_) => ApiError::bad_request(err.to_string()),
        other => ApiError::internal(other.to_string()),
    }
}

/// The prune filters; `dangling` is taken out for images (`false`: every unused image).
fn prune_filters(query: &Query, dangling: Option<&mut bool>) -> ApiResult<PruneFilters> {
    let now = chrono::Utc::now();
    let mut filters = PruneFilters::default();
    let mut dangling = dangling;
    for (key, value) in filter_pairs(query)? {
        if key == "dangling" {
            if let Some(only) = dangling.as_deref_mut() {
                *only = match value.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "invalid filter 'dangling={value}'"
                        )))
                    }
                };
                continue;
            }
        }
        filters.add(&key, &value, now).map_err(prune_error)?;
    }
    Ok(filters)
}

pub async fn containers(state: Arc<State>, query: Query) -> ApiResult<Response> {
    let filters = prune_filters(&query, None)?;
    let pruned = blocking(move || {
        state
            .runtime
            .prune_containers(&filters)
            .map_err(prune_error)
    })
    .await?;
    let deleted = if pruned.deleted.is_empty() {
        Value::Null
    } else {
        json!(pruned.deleted)
    };
    Ok(body::json(
        StatusCode::OK,
        &json!({ "ContainersDeleted": deleted, "SpaceReclaimed": pruned.space }),
    ))
}

pub async fn images(state: Arc<State>, query: Query) -> ApiResult<Response> {
    let mut dangling_only = true;
    let filters = prune_filters(&query, Some(&mut dangling_only))?;
    let pruned = blocking(move || {
        state
            .runtime
            .prune_images(!dangling_only, &filters)
            .map_err(prune_error)
    })
    .await?;
    let removals: Vec<Value> = pruned
        .removals
        .into_iter()
        .map(|r| match r {
            ImageRemoval::Untagged(name) => json!({ "Untagged": name }),
            ImageRemoval::Deleted(id) => json!({ "Deleted": id }),
        })
        .collect();
    let deleted = if removals.is_empty() {
        Value::Null
    } else {
        Value::Array(removals)
    };
    Ok(body::json(
        StatusCode::OK,
        &json!({ "ImagesDeleted": deleted, "SpaceReclaimed": pruned.space }),
    ))
}

pub async fn df(state: Arc<State>) -> ApiResult<Response> {
    let (usage, shown) = blocking(move || {
        let usage = state.runtime.disk_usage().map_err(prune_error)?;
        // Each container's Image as listings show it.
        let shown: Vec<String> = usage
            .containers
            .iter()
            .map(|c| crate::shapes::shown_image(&state.graph, &state.tags, &c.container))
            .collect();
        Ok((usage, shown))
    })
    .await?;
    let images: Vec<Value> = usage
        .images
        .iter()
        .map(|i| {
            json!({
                "Id": api_id(&i.id),
                "ParentId": i.parent.as_deref().map(api_id).unwrap_or_default(),
                "RepoTags": i.repo_tags,
                "RepoDigests": [],
                "Created": i.created.timestamp(),
                "Size": i.size,
                "SharedSize": i.shared_size,
                "VirtualSize": i.size,
                "Labels": null,
                "Containers": i.containers,
            })
        })
        .collect();
    let containers: Vec<Value> = usage
        .containers
        .iter()
        .zip(&shown)
        .map(|(c, image)| {
            let mut v = crate::shapes::container_summary(&c.container, image);
            v["SizeRw"] = json!(c.size_rw);
            v["SizeRootFs"] = json!(c.size_rw);
            v
        })
        .collect();
    let volumes: Vec<Value> = usage
        .volumes
        .iter()
        .map(|v| {
            let mut value = serde_json::to_value(&v.volume).unwrap_or(Value::Null);
            value["UsageData"] = json!({ "Size": v.size, "RefCount": v.ref_count });
            value
        })
        .collect();
    Ok(body::json(
        StatusCode::OK,
        &json!({
            "LayersSize": usage.layers_size,
            "Images": images,
            "Containers": containers,
            "Volumes": volumes,
            "BuildCache": [],
        }),
    ))
}

/// `POST /networks/prune`: dock has only its bridge, which is not the user's to prune; the
/// answer says nothing was deleted (what `docker system prune` asks along the way).
pub async fn networks(query: Query) -> ApiResult<Response> {
    prune_filters(&query, None)?;
    Ok(body::json(
        StatusCode::OK,
        &json!({ "NetworksDeleted": null }),
    ))
}

/// `POST /build/prune`: dock builds nothing, so there is no build cache to free.
pub async fn build_cache(query: Query) -> ApiResult<Response> {
    for (key, value) in filter_pairs(&query)? {
        match key.as_str() {
            "until" | "label" | "label!" | "unused-for" | "type" | "id" | "parent" | "private"
            | "shared" | "inuse" => {}
            _ => {
                return Err(ApiError::bad_request(format!(
                    "invalid filter '{key}={value}'"
                )))
            }
        }
    }
    Ok(body::json(
        StatusCode::OK,
        &json!({ "CachesDeleted": null, "SpaceReclaimed": 0 }),
    ))
}
