//! `GET /events`: the root's event log (`runtime::events`) as Docker's stream of JSON
//! messages, so what `dock` commands and monitors did shows up as well as the API's own work.

use std::sync::Arc;

use bytes::Bytes;
use hyper::StatusCode;
use runtime::events::{self, Filters};

use crate::body::{self, Response};
use crate::error::{ApiError, ApiResult};
use crate::query::Query;
use crate::state::State;

/// Every `key=value` of the `filters` parameter (`{"type":{"container":true}}` or
/// `{"type":["container"]}`), in order.
pub fn filter_pairs(query: &Query) -> ApiResult<Vec<(String, String)>> {
    let Some(raw) = query.non_empty("filters") else {
        return Ok(Vec::new());
    };
    let parsed: serde_json::Map<String, serde_json::Value> = serde_json::from_str(raw)
        .map_err(|err| ApiError::bad_request(format!("invalid filters {raw:?}: {err}")))?;
    let mut pairs = Vec::new();
    for (key, values) in parsed {
        match values {
            serde_json::Value::Object(map) => pairs.extend(
                map.into_iter()
                    .filter(|(_, on)| on.as_bool().unwrap_or(true))
                    .map(|(v, _)| (key.clone(), v)),
            ),
            serde_json::Value::Array(items) => pairs.extend(
                items
                    .into_iter()
                    .filter_map(|v| v.as_str().map(|v| (key.clone(), v.to_string()))),
            ),
            _ => return Err(ApiError::bad_request(format!("invalid filter {key:?}"))),
        }
    }
    Ok(pairs)
}

/// The events filters; a key dock does not filter by is a 400.
pub fn filters(query: &Query) -> ApiResult<Filters> {
    let mut filters = Filters::default();
    for (key, value) in filter_pairs(query)? {
        filters
            .add(&key, &value)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    Ok(filters)
}

fn time(query: &Query, key: &str) -> ApiResult<Option<i64>> {
    query
        .non_empty(key)
        .map(|t| {
            events::parse_time(t, chrono::Utc::now())
                .map_err(|e| ApiError::bad_request(format!("{key}: {e}")))
        })
        .transpose()
}

pub async fn events(state: Arc<State>, query: Query) -> ApiResult<Response> {
    let filters = filters(&query)?;
    let (since, until) = (time(&query, "since")?, time(&query, "until")?);
    let (tx, response_body) = body::channel();
    let root = state.root.clone();
    tokio::task::spawn_blocking(move || {
        let result = events::watch(&root, since, until, &filters, &mut |m| match m {
            Some(m) => {
                let mut line = serde_json::to_vec(m).unwrap_or_default();
                line.push(b'\n');
                tx.blocking_send(Bytes::from(line)).is_ok()
            }
            None => !tx.is_closed(),
        });
        if let Err(e) = result {
            let _ = tx.blocking_send(body::json_message_error(&e.to_string()));
        }
    });
    Ok(body::with_type(StatusCode::OK, body::JSON, response_body))
}
