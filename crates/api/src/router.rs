//! Hand-written routing: an optional `/v1.NN` prefix, then the Docker paths. Image names keep
//! their slashes and colons in the path, so `/images/` routes take everything up to a known suffix.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request};

use crate::body::{self, Response};
use crate::error::{ApiError, ApiResult};
use crate::query::{decode, Query};
use crate::state::State;
use crate::{
    auth, cmds, containers, copy, events, exec, images, prune, push, saveload, system, update,
    volumes, API_VERSION, MIN_API_VERSION, VERSION,
};

/// Answer one request; every error becomes its JSON answer, and every answer carries the
/// headers the real daemon adds to all of them.
pub async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let mut response = match route(state, req).await {
        Ok(response) => response,
        Err(err) => {
            tracing::debug!(%method, %uri, status = err.status.as_u16(), message = %err.message, "request failed");
            body::error(&err)
        }
    };
    let headers = response.headers_mut();
    headers.insert("api-version", HeaderValue::from_static(API_VERSION));
    headers.insert("ostype", HeaderValue::from_static("linux"));
    headers.insert("docker-experimental", HeaderValue::from_static("false"));
    if let Ok(server) = HeaderValue::from_str(&format!("Dock/{VERSION} (linux)")) {
        headers.insert("server", server);
    }
    response
}

async fn route(state: Arc<State>, req: Request<Incoming>) -> ApiResult<Response> {
    let path = split_version(req.uri().path())?;
    let path = decode(path, false);
    let query = Query::parse(req.uri().query());
    let method = req.method().clone();
    tracing::debug!(%method, %path, "request");
    if crate::content::requires_json(&method, &path) {
        if let Err(err) = crate::content::check_for_json(req.headers()) {
            // Read what the client sent first: a connection closed with its body unread is
            // reset, and the client may never see the answer.
            let _ = containers::read_body(req.into_body(), crate::content::MAX_REFUSED_BODY).await;
            return Err(err);
        }
    }

    match (&method, path.as_str()) {
        (&Method::GET | &Method::HEAD, "/_ping") => return Ok(system::ping(&method)),
        (&Method::GET, "/version") => return Ok(system::version()),
        (&Method::GET, "/info") => return system::info(state).await,
        (&Method::GET, "/events") => return events::events(state, query).await,
        (&Method::POST, "/containers/prune") => return prune::containers(state, query).await,
        (&Method::POST, "/images/prune") => return prune::images(state, query).await,
        (&Method::GET, "/system/df") => return prune::df(state).await,
        (&Method::POST, "/networks/prune") => return prune::networks(query).await,
        (&Method::POST, "/build/prune") => return prune::build_cache(query).await,
        (&Method::GET, "/images/json") => return images::list(state, query).await,
        (&Method::POST, "/images/create") => {
            let auth = auth::registry_auth(req.headers())?;
            return images::create(state, query, auth, req.into_body()).await;
        }
        (&Method::GET, "/images/get") => {
            let names = query.all("names").into_iter().map(str::to_string);
            return saveload::save(state, names.collect()).await;
        }
        (&Method::POST, "/images/load") => {
            return saveload::load(state, query, req.into_body()).await
        }
        (&Method::POST, "/auth") => return auth::login(state, req.into_body()).await,
        (&Method::POST, "/commit") => return containers::commit(state, query).await,
        (&Method::GET, "/containers/json") => return containers::list(state, query).await,
        (&Method::POST, "/containers/create") => {
            return containers::create(state, query, req.into_body()).await
        }
        (&Method::GET, "/volumes") => return volumes::list(state, query).await,
        (&Method::POST, "/volumes/create") => return volumes::create(state, req.into_body()).await,
        (&Method::POST, "/volumes/prune") => return volumes::prune(state, query).await,
        _ => {}
    }
    if let Some(name) = path.strip_prefix("/volumes/") {
        if !name.is_empty() && !name.contains('/') {
            let name = name.to_string();
            match method {
                Method::GET => return volumes::inspect(state, name).await,
                Method::DELETE => return volumes::remove(state, name, query).await,
                _ => {}
            }
        }
    }
    if let Some(rest) = path.strip_prefix("/containers/") {
        let (name, action) = rest.split_once('/').unwrap_or((rest, ""));
        if !name.is_empty() {
            let name = name.to_string();
            match (&method, action) {
                (&Method::DELETE, "") => return containers::remove(state, name, query).await,
                (&Method::GET, "json") => return containers::inspect(state, name).await,
                (&Method::POST, "start") => return containers::start(state, name).await,
                (&Method::POST, "stop") => return containers::stop(state, name, query).await,
                (&Method::POST, "restart") => return containers::restart(state, name, query).await,
                (&Method::POST, "kill") => return containers::kill(state, name, query).await,
                (&Method::POST, "wait") => return containers::wait(state, name, query).await,
                (&Method::POST, "attach") => {
                    return containers::attach(state, name, query, req).await
                }
                (&Method::GET, "logs") => return containers::logs(state, name, query).await,
                (&Method::GET, "top") => return cmds::top(state, name, query).await,
                (&Method::GET, "stats") => return cmds::stats(state, name, query).await,
                (&Method::POST, "pause") => return cmds::pause(state, name).await,
                (&Method::POST, "unpause") => return cmds::unpause(state, name).await,
                (&Method::GET, "export") => return containers::export(state, name).await,
                (&Method::HEAD, "archive") => return copy::stat(state, name, query).await,
                (&Method::GET, "archive") => return copy::get(state, name, query).await,
                (&Method::PUT, "archive") => {
                    return copy::put(state, name, query, req.into_body()).await
                }
                (&Method::POST, "rename") => return copy::rename(state, name, query).await,
                (&Method::GET, "changes") => return containers::changes(state, name).await,
                (&Method::POST, "resize") => return containers::resize(state, name, query).await,
                (&Method::POST, "update") => {
                    return update::update(state, name, req.into_body()).await
                }
                (&Method::POST, "exec") => return exec::create(state, name, req.into_body()).await,
                _ => {}
            }
        }
    }
    if let Some(rest) = path.strip_prefix("/exec/") {
        if let Some((id, action)) = rest.split_once('/') {
            let id = id.to_string();
            match (&method, action) {
                (&Method::POST, "start") => return exec::start(state, id, req).await,
                (&Method::POST, "resize") => return exec::resize(state, id, query).await,
                (&Method::GET, "json") => return exec::inspect(state, id).await,
                _ => {}
            }
        }
    }
    if let Some(rest) = path.strip_prefix("/images/") {
        if method == Method::DELETE && !rest.is_empty() {
            return images::remove(state, rest.to_string(), query).await;
        }
        if let Some((name, action)) = rest.rsplit_once('/') {
            if !name.is_empty() {
                let name = name.to_string();
                match (&method, action) {
                    (&Method::GET, "json") => return images::inspect(state, name).await,
                    (&Method::GET, "history") => return images::history(state, name).await,
                    (&Method::GET, "get") => return saveload::save(state, vec![name]).await,
                    (&Method::POST, "tag") => return images::tag(state, name, query).await,
                    (&Method::POST, "push") => {
                        return push::push(state, name, query, req.headers()).await
                    }
                    _ => {}
                }
            }
        }
    }
    Err(not_found())
}

/// The generic answer to a path nothing serves; `docker inspect` probes with it.
fn not_found() -> ApiError {
    ApiError::not_found("page not found")
}

/// The path without its `/v1.NN` prefix; a version outside what we speak is a 400.
fn split_version(path: &str) -> ApiResult<&str> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok(path);
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let (version, tail) = rest.split_at(end);
    let Some(asked) = parse_version(version) else {
        return Ok(path);
    };
    if asked > parse_version(API_VERSION).unwrap_or_default() {
        return Err(ApiError::bad_request(format!(
            "client version {version} is too new. Maximum supported API version is {API_VERSION}"
        )));
    }
    if asked < parse_version(MIN_API_VERSION).unwrap_or_default() {
        return Err(ApiError::bad_request(format!(
            "client version {version} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        )));
    }
    Ok(if tail.is_empty() { "/" } else { tail })
}

/// "1.44" as (1, 44), so that 1.9 < 1.10.
fn parse_version(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::StatusCode;

    #[test]
    fn strips_supported_version_prefixes() {
        assert_eq!(split_version("/v1.44/images/json").unwrap(), "/images/json");
        assert_eq!(split_version("/v1.24/_ping").unwrap(), "/_ping");
        assert_eq!(split_version("/images/json").unwrap(), "/images/json");
        assert_eq!(split_version("/version").unwrap(), "/version");
    }

    #[test]
    fn refuses_versions_out_of_range() {
        let err = split_version("/v1.50/info").unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.message.contains("client version 1.50 is too new"));
        let err = split_version("/v1.9/info").unwrap_err();
        assert!(err.message.contains("client version 1.9 is too old"));
    }
}
