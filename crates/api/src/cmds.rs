//! `top`, `stats`, `pause` and `unpause` over the runtime, in dockerd's shapes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use hyper::StatusCode;
use runtime::stats::Stats;
use runtime::Container;

use crate::body::{self, Response};
use crate::containers::{find, runtime_error};
use crate::error::ApiResult;
use crate::query::Query;
use crate::state::{blocking, State};

/// How often a stats stream sends a sample, and how far apart the two samples of a
/// `stream=false` answer are (dockerd's collector interval).
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// `GET /containers/{id}/top?ps_args=…`: `{"Titles":[…],"Processes":[[…]]}`.
pub async fn top(state: Arc<State>, name: String, query: Query) -> ApiResult<Response> {
    let ps_args = query.get("ps_args").unwrap_or("").to_string();
    let top = blocking(move || {
        let c = find(&state, &name)?;
        state
            .runtime
            .top(&c.id, &ps_args)
            .map_err(|e| runtime_error(e, &name))
    })
    .await?;
    Ok(body::json(StatusCode::OK, &top))
}

/// `POST /containers/{id}/pause`: 204.
pub async fn pause(state: Arc<State>, name: String) -> ApiResult<Response> {
    blocking(move || {
        let c = find(&state, &name)?;
        state
            .runtime
            .pause(&c.id)
            .map_err(|e| runtime_error(e, &name))
    })
    .await?;
    Ok(body::status(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/unpause`: 204.
pub async fn unpause(state: Arc<State>, name: String) -> ApiResult<Response> {
    blocking(move || {
        let c = find(&state, &name)?;
        state
            .runtime
            .unpause(&c.id)
            .map_err(|e| runtime_error(e, &name))
    })
    .await?;
    Ok(body::status(StatusCode::NO_CONTENT))
}

/// A sample of the container as it is now: its cgroup's when it runs, else dockerd's empty
/// document (name and id only).
/// Whether it runs, and the sample.
fn sample(state: &State, name: &str) -> ApiResult<(bool, Stats)> {
    let c: Container = find(state, name)?;
    if !c.state.running || c.state.restarting {
        let empty = Stats {
            id: c.id.clone(),
            name: format!("/{}", c.name),
            read: zero_time(),
            preread: zero_time(),
            ..Stats::default()
        };
        return Ok((false, empty));
    }
    let stats = state
        .runtime
        .stats_sample(&c)
        .map_err(|e| runtime_error(e, name))?;
    Ok((true, stats))
}

/// Go's zero time, what dockerd sends for a time it has not got.
fn zero_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("0001-01-01T00:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// `next` with `previous`'s CPU figures as its `precpu_stats` (what CPU % is computed from).
fn chain(previous: Option<&Stats>, mut next: Stats) -> Stats {
    match previous {
        Some(p) => {
            next.precpu_stats = p.cpu_stats.clone();
            next.preread = p.read;
        }
        None => next.preread = zero_time(),
    }
    next
}

fn line(stats: &Stats) -> Bytes {
    let mut data = serde_json::to_vec(stats).unwrap_or_default();
    data.push(b'\n');
    Bytes::from(data)
}

/// `GET /containers/{id}/stats`: a JSON document a second while the client reads
/// (`stream=true`, the default); with `stream=false` one document, its `precpu_stats` from a
/// sample a second earlier; with `one-shot=true` as well, the first sample alone.
pub async fn stats(state: Arc<State>, name: String, query: Query) -> ApiResult<Response> {
    let stream = query.get("stream").is_none_or(|_| query.flag("stream"));
    let one_shot = query.flag("one-shot");
    let (running, first) = {
        let state = state.clone();
        let name = name.clone();
        blocking(move || sample(&state, &name)).await?
    };
    // Later samples by the full id: a container removed and another made under the same
    // name ends the stream rather than continuing it with the newcomer.
    let name = if first.id.is_empty() {
        name
    } else {
        first.id.clone()
    };
    if !stream {
        let stats = if one_shot || !running {
            chain(None, first)
        } else {
            tokio::time::sleep(STATS_INTERVAL).await;
            let (_, second) = blocking(move || sample(&state, &name)).await?;
            chain(Some(&first), second)
        };
        return Ok(body::json(StatusCode::OK, &stats));
    }
    let (tx, response_body) = body::channel();
    tokio::spawn(async move {
        let mut previous: Option<Stats> = None;
        let mut next = first;
        loop {
            let out = chain(previous.as_ref(), next);
            if tx.send(line(&out)).await.is_err() {
                return;
            }
            previous = Some(out);
            tokio::time::sleep(STATS_INTERVAL).await;
            let state = state.clone();
            let name = name.clone();
            next = match blocking(move || sample(&state, &name)).await {
                Ok((_, stats)) => stats,
                // Removed meanwhile: the stream ends.
                Err(_) => return,
            };
        }
    });
    Ok(body::with_type(StatusCode::OK, body::JSON, response_body))
}
