//! Image endpoints over `graph` and `tagstore`: list, import, inspect, history, tag, delete.
//!
//! Docker's API speaks of images as `sha256:<hex>` and of names in their normalised form
//! (`docker.io/library/busybox`); dock keeps bare hex ids and the names as the user gave them.
//! The conversions live here and nowhere else.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::Arc;

use bytes::Bytes;
use graph::{Image, NewImage};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::StatusCode;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::body::{self, Response};
use crate::error::{ApiError, ApiResult};
use crate::query::Query;
use crate::state::{blocking, State};

/// Import progress is reported after each this many bytes.
const PROGRESS_STEP: u64 = 1 << 20;

/// `sha256:<hex>`, the form the API shows ids in.
pub fn api_id(id: &str) -> String {
    format!("sha256:{id}")
}

/// The short id Docker prints in conflict messages.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// `docker.io/library/busybox` -> `busybox`, `docker.io/me/x` -> `me/x`, and an image ID
/// without its `sha256:`; others unchanged.
pub fn familiar(name: &str) -> &str {
    registry::reference::familiar(name.strip_prefix("sha256:").unwrap_or(name))
}

/// `name` with `:latest` added when it has no tag, as Docker's messages show it.
pub fn with_tag(name: &str) -> String {
    match tagstore::parse_reference(name) {
        (_, Some(_)) => name.to_string(),
        (repo, None) => format!("{repo}:latest"),
    }
}

fn is_hex(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

pub fn store_error(err: &dyn std::fmt::Display) -> ApiError {
    ApiError::internal(err.to_string())
}

/// The image `name` (repo[:tag], `sha256:<hex>`, full id or unique prefix) names, or 404.
pub fn find_image(state: &State, name: &str) -> ApiResult<Image> {
    let familiar_name = familiar(name);
    let by_id = name.starts_with("sha256:") || is_hex(familiar_name);
    let found = if by_id {
        state.graph.resolve(familiar_name).ok()
    } else {
        None
    };
    if let Some(image) = found {
        return Ok(image);
    }
    if familiar_name.contains('@') {
        // Pulled by digest: found by the repo digests the pull recorded.
        let config = registry::RegistryConfig::load(&state.root).unwrap_or_default();
        return registry::store::lookup(&config, &state.graph, &state.tags, familiar_name)
            .map_err(|_| ApiError::not_found(format!("No such image: {name}")));
    }
    state
        .tags
        .lookup(&state.graph, familiar_name)
        .map_err(|err| match err {
            tagstore::Error::NoSuchImage(_)
            | tagstore::Error::DanglingTag { .. }
            | tagstore::Error::InvalidRepository(_)
            | tagstore::Error::InvalidTag(_)
            | tagstore::Error::Graph(graph::Error::NoSuchImage(_) | graph::Error::InvalidId(_)) => {
                ApiError::not_found(format!("No such image: {}", missing_name(name)))
            }
            tagstore::Error::Graph(err @ graph::Error::Ambiguous { .. }) => {
                ApiError::bad_request(err.to_string())
            }
            other => store_error(&other),
        })
}

fn missing_name(name: &str) -> String {
    let familiar_name = familiar(name);
    if name.starts_with("sha256:") || is_hex(familiar_name) {
        name.to_string()
    } else {
        with_tag(familiar_name)
    }
}

/// Every image id with its names, from one read of the repositories file.
fn names_by_image(state: &State) -> ApiResult<BTreeMap<String, Vec<String>>> {
    let mut names: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let repositories = match state.tags.repositories() {
        Ok(repositories) => repositories,
        // Listed without names rather than not at all; the log says why.
        Err(err @ tagstore::Error::Damaged { .. }) => {
            tracing::warn!(%err, "listing images without their names");
            return Ok(names);
        }
        Err(err) => return Err(store_error(&err)),
    };
    for (repo, tags) in repositories {
        for (tag, id) in tags {
            names.entry(id).or_default().push(format!("{repo}:{tag}"));
        }
    }
    Ok(names)
}

/// `GET /images/json`: one entry per image, newest first, untagged heads (or with `all=1`
/// every image) with empty `RepoTags`.
pub async fn list(state: Arc<State>, query: Query) -> ApiResult<Response> {
    let all = query.flag("all");
    let filters = crate::filters::Filters::from_json(query.get("filters"))
        .map_err(crate::containers::filter_error)?;
    let entries = blocking(move || {
        crate::shapes::image_summaries(&state.graph, &state.tags, all, &filters)
            .map_err(crate::containers::shape_error)
    })
    .await?;
    Ok(body::json(StatusCode::OK, &entries))
}

/// Docker's `reference` filter: the pattern against `repo` or `repo:tag`, `*` as a wildcard.
pub(crate) fn reference_matches(pattern: &str, repo_tag: &str) -> bool {
    let pattern = familiar(pattern);
    let (repo, _) = tagstore::parse_reference(repo_tag);
    if pattern.contains(':') || tagstore::parse_reference(pattern).1.is_some() {
        glob(pattern, repo_tag)
    } else {
        glob(pattern, &repo)
    }
}

/// `*` matches any run of characters other than `/`, as Go's path.Match does.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            let Some(rest) = text.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .take_while(|&i| !rest[..i].contains('/'))
                .filter(|&i| rest.is_char_boundary(i))
                .any(|i| glob(tail, &rest[i..]))
        }
    }
}

/// `POST /images/create`: `fromSrc=-` imports the request body; `fromImage` pulls.
pub async fn create(
    state: Arc<State>,
    query: Query,
    auth: Option<crate::auth::AuthConfig>,
    request_body: Incoming,
) -> ApiResult<Response> {
    if let Some(image) = query.non_empty("fromImage") {
        return pull(state, image, &query, auth);
    }
    let source = query.non_empty("fromSrc").ok_or_else(|| {
        ApiError::bad_request("either fromSrc or fromImage must be given".to_string())
    })?;
    if source != "-" {
        return Err(ApiError::bad_request(format!(
            "importing from {source} is not supported: the daemon downloads nothing, send the tarball as the request body"
        )));
    }
    if let Some(change) = query.all("changes").first() {
        return Err(ApiError::bad_request(format!(
            "import --change is not supported: {change}"
        )));
    }
    let target = match query.non_empty("repo") {
        None => None,
        Some(repo) => {
            let (repo, embedded_tag) = tagstore::parse_reference(familiar(repo));
            let tag = query
                .non_empty("tag")
                .map(str::to_string)
                .or(embedded_tag)
                .unwrap_or_else(|| "latest".to_string());
            tagstore::validate_repository(&repo)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            tagstore::validate_tag(&tag).map_err(|e| ApiError::bad_request(e.to_string()))?;
            Some((repo, tag))
        }
    };
    let comment = query
        .non_empty("message")
        .map_or_else(|| format!("Imported from {source}"), str::to_string);

    let (chunks_tx, chunks_rx) = mpsc::channel::<io::Result<Bytes>>(8);
    tokio::spawn(forward_body(request_body, chunks_tx));
    let (out, response_body) = body::channel();
    tokio::task::spawn_blocking(move || {
        let reader = BodyReader::new(chunks_rx, Some(out.clone()));
        let line = match import(&state, reader, comment, target) {
            Ok(id) => body::json_message(&json!({ "status": api_id(&id) })),
            Err(message) => body::json_message_error(&message),
        };
        let _ = out.blocking_send(line);
    });
    Ok(body::with_type(StatusCode::OK, body::JSON, response_body))
}

/// `fromImage=NAME&tag=TAG|DIGEST&platform=OS/ARCH`: the pull streams Docker's JSON
/// progress messages; without a tag (and none in the name) every tag is pulled, as dockerd
/// does. A name or platform that cannot be used is refused before anything is contacted.
/// The registry login is the request's `X-Registry-Auth`, as dockerd takes it: the daemon
/// keeps no credentials of its own.
fn pull(
    state: Arc<State>,
    image: &str,
    query: &Query,
    auth: Option<crate::auth::AuthConfig>,
) -> ApiResult<Response> {
    let image = familiar(image);
    let name = match query.non_empty("tag") {
        Some(tag) if tag.starts_with("sha256:") => format!("{image}@{tag}"),
        Some(tag) => format!("{image}:{tag}"),
        None => image.to_string(),
    };
    let platform = query
        .non_empty("platform")
        .map(str::parse::<registry::Platform>)
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let config = registry::RegistryConfig::load(&state.root)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let reference = config
        .reference(&name)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let opts = registry::store::PullOptions {
        platform,
        all_tags: reference.tag.is_none() && reference.digest.is_none(),
    };
    let (out, response_body) = body::channel();
    let client = crate::auth::client(&state, auth.as_ref(), &reference.registry)?;
    tokio::task::spawn_blocking(move || {
        let result = registry::store::pull(
            &client,
            &state.graph,
            &state.tags,
            &name,
            &opts,
            // Progress only shows on a terminal; a client that left is noticed at the end.
            &mut |event| {
                let _ = out.blocking_send(body::json_message(&progress_json(&event)));
            },
        );
        match result {
            Ok(pulled) => {
                for p in pulled {
                    tracing::debug!(name = %p.name, id = %p.id, "pulled image");
                    runtime::events::image(&state.root, &p.id, "pull", Some(&p.name));
                }
            }
            Err(err) => {
                tracing::debug!(%name, error = %err, "pull failed");
                let _ = out.blocking_send(body::json_message_error(&err.to_string()));
            }
        }
    });
    Ok(body::with_type(StatusCode::OK, body::JSON, response_body))
}

/// One progress event as dockerd's JSON message.
fn progress_json(event: &registry::store::Event) -> Value {
    let mut message = json!({ "status": event.status() });
    if let Some(id) = event.id() {
        message["id"] = json!(id);
        if !matches!(event, registry::store::Event::PullingFrom { .. }) {
            message["progressDetail"] = json!({});
        }
    }
    if let Some((current, total)) = event.progress() {
        message["progressDetail"] = json!({ "current": current, "total": total });
        message["progress"] = json!(event.progress_text(50));
    }
    message
}

fn import(
    state: &State,
    reader: BodyReader,
    comment: String,
    target: Option<(String, String)>,
) -> Result<String, String> {
    let image = state
        .graph
        .create(
            reader,
            NewImage {
                comment,
                ..NewImage::default()
            },
        )
        .map_err(|e| e.to_string())?;
    tracing::debug!(id = %image.id, "imported image");
    if let Some((repo, tag)) = target {
        if let Err(err) = state.tags.set(&state.graph, &repo, &tag, &image.id, true) {
            // Leave no untagged image behind when the name could not be recorded.
            let _ = state.graph.delete(&image.id);
            return Err(err.to_string());
        }
    }
    runtime::events::image(&state.root, &image.id, "import", None);
    Ok(image.id)
}

/// Moves the request body's chunks to the blocking reader; ends on the body's end or error.
pub(crate) async fn forward_body(mut incoming: Incoming, chunks: mpsc::Sender<io::Result<Bytes>>) {
    let timeout = crate::limits::read_timeout();
    loop {
        // A client that stops sending mid-body is given up on after the read timeout.
        let Ok(next) = tokio::time::timeout(timeout, incoming.frame()).await else {
            let _ = chunks
                .send(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("read the request body: nothing for {timeout:?}"),
                )))
                .await;
            return;
        };
        let item = match next {
            None => return,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => Ok(data),
                Err(_trailers) => continue,
            },
            Some(Err(err)) => Err(io::Error::other(format!("read the request body: {err}"))),
        };
        let failed = item.is_err();
        if failed {
            let _ = chunks.send(item).await;
            return;
        }
        if chunks.send(item).await.is_err() {
            // The handler stopped reading (an error, such as `docker cp` to a missing
            // directory): read on, so the client gets the error instead of a broken pipe.
            drain_body(incoming, timeout).await;
            return;
        }
    }
}

/// At most this much of a request body is read and dropped after its handler gave up on it;
/// past it the connection is closed, as Go's server does past its own (smaller) limit.
const DRAIN_LIMIT: usize = 16 << 20;

/// Reads the rest of `incoming` (up to [`DRAIN_LIMIT`], each chunk within `timeout`) so
/// hyper can answer on a connection whose client is still sending.
async fn drain_body(mut incoming: Incoming, timeout: std::time::Duration) {
    let mut drained = 0usize;
    while drained <= DRAIN_LIMIT {
        match tokio::time::timeout(timeout, incoming.frame()).await {
            Ok(Some(Ok(frame))) => drained += frame.data_ref().map_or(0, Bytes::len),
            _ => return,
        }
    }
}

/// The request body (as `forward_body` sends it) as a blocking `Read`; with `progress`, an
/// import's `Importing` messages go on the response stream.
pub(crate) struct BodyReader {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
    done: u64,
    reported: u64,
    progress: Option<mpsc::Sender<Bytes>>,
}

impl BodyReader {
    pub(crate) fn new(
        chunks: mpsc::Receiver<io::Result<Bytes>>,
        progress: Option<mpsc::Sender<Bytes>>,
    ) -> BodyReader {
        BodyReader {
            chunks,
            current: Bytes::new(),
            done: 0,
            reported: 0,
            progress,
        }
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                None => return Ok(0),
                Some(chunk) => self.current = chunk?,
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        self.done += n as u64;
        let Some(progress) = &self.progress else {
            return Ok(n);
        };
        if self.done - self.reported >= PROGRESS_STEP {
            self.reported = self.done;
            // Progress only shows on a terminal; a client that left is noticed at the end.
            let _ = progress.blocking_send(body::json_message(&json!({
                "status": "Importing",
                "progressDetail": { "current": self.done },
                "id": "",
            })));
        }
        Ok(n)
    }
}

/// `GET /images/{name}/json`.
pub async fn inspect(state: Arc<State>, name: String) -> ApiResult<Response> {
    let value = blocking(move || {
        let image = find_image(&state, &name)?;
        crate::shapes::image_inspect(&state.graph, &state.tags, &image)
            .map_err(crate::containers::shape_error)
    })
    .await?;
    Ok(body::json(StatusCode::OK, &value))
}

/// `GET /images/{name}/history`: newest first, as `runtime::imageconfig::history` reads it
/// (lines of an image config's history below its top have the id `<missing>`, as in Docker).
pub async fn history(state: Arc<State>, name: String) -> ApiResult<Response> {
    let entries = blocking(move || {
        let image = find_image(&state, &name)?;
        let names = names_by_image(&state)?;
        let rows = runtime::imageconfig::history(&state.graph, &image.id)
            .map_err(|e| store_error(&e))?;
        Ok(rows
            .iter()
            .map(|row| {
                json!({
                    "Id": row.id.as_deref().map_or("<missing>".to_string(), api_id),
                    "Created": row.created.timestamp(),
                    "CreatedBy": row.created_by,
                    "Tags": row.id.as_ref().and_then(|id| names.get(id)).cloned().unwrap_or_default(),
                    "Size": row.size,
                    "Comment": row.comment,
                })
            })
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(body::json(StatusCode::OK, &entries))
}

/// `POST /images/{name}/tag?repo=&tag=`: the CLI sends normalised names; the tag moves from
/// whichever image had it, as Docker does.
pub async fn tag(state: Arc<State>, name: String, query: Query) -> ApiResult<Response> {
    let repo = query
        .non_empty("repo")
        .ok_or_else(|| ApiError::bad_request("repository name must be given (repo=)"))?;
    let (repo, embedded_tag) = tagstore::parse_reference(familiar(repo));
    let tag = query
        .non_empty("tag")
        .map(str::to_string)
        .or(embedded_tag)
        .unwrap_or_else(|| "latest".to_string());
    tagstore::validate_repository(&repo).map_err(|e| ApiError::bad_request(e.to_string()))?;
    tagstore::validate_tag(&tag).map_err(|e| ApiError::bad_request(e.to_string()))?;
    blocking(move || {
        let image = find_image(&state, &name)?;
        state
            .tags
            .set(&state.graph, &repo, &tag, &image.id, true)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        tracing::debug!(id = %image.id, %repo, %tag, "tagged image");
        runtime::events::image(
            &state.root,
            &image.id,
            "tag",
            Some(&format!("{repo}:{tag}")),
        );
        Ok(())
    })
    .await?;
    Ok(body::status(StatusCode::CREATED))
}

/// `DELETE /images/{name}`: `[{"Untagged": ..}, {"Deleted": ..}]` as Docker answers.
pub async fn remove(state: Arc<State>, name: String, query: Query) -> ApiResult<Response> {
    let force = query.flag("force");
    let prune = !query.flag("noprune");
    let entries = blocking(move || {
        let id = find_image(&state, &name).ok().map(|i| i.id);
        let entries = remove_image(&state, &name, force, prune)?;
        for entry in &entries {
            if let (Some(untagged), Some(id)) = (entry["Untagged"].as_str(), &id) {
                runtime::events::image(&state.root, id, "untag", Some(untagged));
            }
            if let Some(deleted) = entry["Deleted"].as_str() {
                runtime::events::image(&state.root, deleted, "delete", None);
            }
        }
        Ok(entries)
    })
    .await?;
    Ok(body::json(StatusCode::OK, &entries))
}

fn remove_image(state: &State, name: &str, force: bool, prune: bool) -> ApiResult<Vec<Value>> {
    // Checked and deleted under the store lock, as the CLI's `rmi`.
    let _store = state.graph.lock_store().map_err(|e| store_error(&e))?;
    let familiar_name = familiar(name);
    let (repo, tag) = tagstore::parse_reference(familiar_name);
    let tag = tag.unwrap_or_else(|| "latest".to_string());
    let tagged = state
        .tags
        .repositories()
        .map_err(|e| store_error(&e))?
        .get(&repo)
        .and_then(|tags| tags.get(&tag))
        .cloned();
    let mut report = Vec::new();
    let image = match tagged {
        // A name: untag it; the image goes with its last name unless something still needs it.
        Some(id) => {
            let users = containers_using(state, &id)?;
            let names = state.tags.names(&id).map_err(|e| store_error(&e))?;
            if names.len() == 1 && !users.is_empty() && !force {
                return Err(ApiError::conflict(format!(
                    "conflict: unable to remove repository reference \"{familiar_name}\" (must force) - container {} is using its referenced image {}",
                    short(&users[0]),
                    short(&id)
                )));
            }
            state.tags.untag(&repo, &tag).map_err(|e| store_error(&e))?;
            tracing::debug!(%repo, %tag, %id, "untagged image");
            report.push(json!({ "Untagged": format!("{repo}:{tag}") }));
            let children = state.graph.children(&id).map_err(|e| store_error(&e))?;
            if names.len() > 1 || !users.is_empty() || !children.is_empty() {
                return Ok(report);
            }
            state.graph.get(&id).map_err(|e| store_error(&e))?
        }
        None => {
            let by_id = name.starts_with("sha256:") || is_hex(familiar_name);
            if by_id {
                let id = familiar_name.trim_start_matches("sha256:");
                if let Some(report) = remove_broken(state, id, force)? {
                    return Ok(report);
                }
            }
            let image = match by_id {
                true => state.graph.resolve(familiar_name).ok(),
                // Pulled by digest: found by its repo digest.
                false if familiar_name.contains('@') => find_image(state, name).ok(),
                false => None,
            };
            let image = image.ok_or_else(|| {
                ApiError::not_found(format!("No such image: {}", missing_name(name)))
            })?;
            let id = image.id.clone();
            let names = state.tags.names(&id).map_err(|e| store_error(&e))?;
            if names.len() > 1 && !force {
                return Err(ApiError::conflict(format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    short(&id)
                )));
            }
            if !state
                .graph
                .children(&id)
                .map_err(|e| store_error(&e))?
                .is_empty()
            {
                return Err(ApiError::conflict(format!(
                    "conflict: unable to delete {} (cannot be forced) - image has dependent child images",
                    short(&id)
                )));
            }
            let users = containers_using(state, &id)?;
            let running = users
                .iter()
                .find(|u| state.runtime.get(u).is_ok_and(|c| c.state.running));
            if let Some(user) = running {
                return Err(ApiError::conflict(format!(
                    "conflict: unable to delete {} (cannot be forced) - image is being used by running container {}",
                    short(&id),
                    short(user)
                )));
            }
            if force && !users.is_empty() {
                // Forced (as `dock rmi -f`): every name goes; the stopped containers' root
                // file systems are its layers, so the image stays, untagged.
                for removed in state.tags.remove_image(&id).map_err(|e| store_error(&e))? {
                    report.push(json!({ "Untagged": removed }));
                }
                return Ok(report);
            }
            if let Some(user) = users.first() {
                // A container's rootfs is mounted from its image's layers: never delete those.
                return Err(ApiError::conflict(format!(
                    "conflict: unable to delete {} (must be forced) - image is being used by stopped container {}",
                    short(&id),
                    short(user)
                )));
            }
            for removed in state.tags.remove_image(&id).map_err(|e| store_error(&e))? {
                report.push(json!({ "Untagged": removed }));
            }
            image
        }
    };
    delete_with_parents(state, image, prune, &mut report)?;
    Ok(report)
}

/// `id` (full or prefix) when it names an image whose json is broken: with `force`, its
/// tags and directory go (its parent is not known: nothing below it is pruned); without, a
/// 409 naming the file. `None`: not a broken image.
fn remove_broken(state: &State, id: &str, force: bool) -> ApiResult<Option<Vec<Value>>> {
    let Ok(id) = state.graph.resolve_id(id) else {
        return Ok(None);
    };
    let err = match state.graph.get(&id) {
        Err(err @ (graph::Error::Json { .. } | graph::Error::WrongId { .. })) => err,
        _ => return Ok(None),
    };
    if !force {
        return Err(ApiError::conflict(format!(
            "conflict: unable to delete {} (must be forced) - image is broken: {err}",
            short(&id)
        )));
    }
    if let Some(user) = containers_using(state, &id)?.first() {
        return Err(ApiError::conflict(format!(
            "conflict: unable to delete {} (cannot be forced) - image is being used by container {}",
            short(&id),
            short(user)
        )));
    }
    if !state
        .graph
        .children(&id)
        .map_err(|e| store_error(&e))?
        .is_empty()
    {
        return Err(ApiError::conflict(format!(
            "conflict: unable to delete {} (cannot be forced) - image has dependent child images",
            short(&id)
        )));
    }
    let mut report = Vec::new();
    for removed in state.tags.remove_image(&id).map_err(|e| store_error(&e))? {
        report.push(json!({ "Untagged": removed }));
    }
    state.graph.delete(&id).map_err(|e| store_error(&e))?;
    report.push(json!({ "Deleted": api_id(&id) }));
    Ok(Some(report))
}

/// Delete `image`, then (with `prune`) each parent that is left untagged, childless and unused.
fn delete_with_parents(
    state: &State,
    image: Image,
    prune: bool,
    report: &mut Vec<Value>,
) -> ApiResult<()> {
    let mut in_use = |id: &str| -> tagstore::Result<bool> {
        // The API's container listing fails only on a broken store; count it as used then.
        Ok(containers_using(state, id).map_or(true, |users| !users.is_empty()))
    };
    let deleted =
        tagstore::delete_with_parents(&state.graph, &state.tags, image, prune, &mut in_use)
            .map_err(|e| ApiError::conflict(e.to_string()))?;
    report.extend(deleted.iter().map(|id| json!({ "Deleted": api_id(id) })));
    Ok(())
}

/// Ids of the containers created from image `image_id`.
fn containers_using(state: &State, image_id: &str) -> ApiResult<Vec<String>> {
    crate::containers::using_image(state, image_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn familiar_names_drop_the_default_registry() {
        assert_eq!(familiar("docker.io/library/busybox"), "busybox");
        assert_eq!(familiar("docker.io/me/sub"), "me/sub");
        assert_eq!(familiar("localhost:5000/foo/bar"), "localhost:5000/foo/bar");
        assert_eq!(familiar("sha256:abc"), "abc");
    }

    #[test]
    fn reference_filter_matches_repo_or_repo_tag() {
        assert!(reference_matches("busybox", "busybox:latest"));
        assert!(reference_matches("busybox:latest", "busybox:latest"));
        assert!(!reference_matches("busybox:1", "busybox:latest"));
        assert!(reference_matches("busy*", "busybox:2"));
        assert!(!reference_matches("busy*", "busy/box:2"));
        assert!(reference_matches("*/box", "busy/box:2"));
        assert!(!reference_matches("other", "busybox:latest"));
    }

    #[test]
    fn missing_names_get_their_tag() {
        assert_eq!(missing_name("nosuch"), "nosuch:latest");
        assert_eq!(missing_name("docker.io/library/x:2"), "x:2");
        assert_eq!(missing_name("sha256:abcd"), "sha256:abcd");
    }
}
