//! Container endpoints over the `runtime` crate: HTTP, Docker's JSON shapes and stream framing.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use runtime::attach::{Event, Hello};
use runtime::Container;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::body::{self, Response};
use crate::create::CreateBody;
use crate::error::{ApiError, ApiResult};
use crate::images::api_id;
use crate::query::Query;
use crate::runs::{AttachPipes, Chunk, Joined, Outcome};
use crate::state::{blocking, State};
use crate::stream::{Framing, StreamKind};

/// The largest create body accepted; the CLI sends a few kB.
const MAX_CREATE_BODY: usize = 1 << 20;
/// How often a `condition=removed` wait looks whether the container is gone.
const REMOVAL_POLL: Duration = Duration::from_millis(100);

/// How many containers exist, and how many of them run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub total: usize,
    /// Running ones, paused ones included.
    pub running: usize,
    pub paused: usize,
}

pub fn counts(state: &State) -> ApiResult<Counts> {
    let all = state.runtime.list().map_err(|e| runtime_error(e, ""))?;
    Ok(Counts {
        total: all.len(),
        running: all.iter().filter(|c| c.state.running).count(),
        paused: all
            .iter()
            .filter(|c| c.state.running && c.state.paused)
            .count(),
    })
}

/// Ids of the containers created from image `image_id`.
pub fn using_image(state: &State, image_id: &str) -> ApiResult<Vec<String>> {
    state
        .runtime
        .images_in_use(image_id)
        .map_err(|e| runtime_error(e, ""))
}

/// The runtime's errors as the statuses and texts the CLI relies on.
pub fn runtime_error(err: runtime::Error, name: &str) -> ApiError {
    use runtime::Error as E;
    match err {
        E::NoSuchContainer(_) => ApiError::not_found(format!("No such container: {name}")),
        E::NoSuchImage(image) => ApiError::not_found(format!(
            "No such image: {}",
            crate::images::with_tag(&image)
        )),
        E::NameInUse { name, holder } => ApiError::conflict(format!(
            "Conflict. The container name \"/{name}\" is already in use by container \"{holder}\". You have to remove (or rename) that container to be able to reuse that name."
        )),
        E::RemovePaused(container) => ApiError::conflict(format!(
            "cannot remove container \"/{container}\": container is paused and must be unpaused first"
        )),
        E::Running(container) => ApiError::conflict(format!(
            "cannot remove container \"/{container}\": container is running: stop the container before removing or force remove"
        )),
        E::NotRunning(container) => ApiError::conflict(format!("container {container} is not running")),
        E::AlreadyRunning(_) => ApiError::not_modified(),
        err @ (E::AlreadyPaused(_) | E::NotPaused(_) | E::Paused(_)) => {
            ApiError::conflict(err.to_string())
        }
        err @ E::Top(runtime::top::TopError::RenamedPid { .. }) => {
            ApiError::bad_request(err.to_string())
        }
        err @ (E::Ambiguous(_)
        | E::InvalidName(_)
        | E::NoCommand
        | E::MemoryTooLow(_)
        | E::InvalidWorkingDir(_)
        | E::InvalidSignal(_)
        | E::InvalidPort(_)
        | E::Network(_)
        | E::Security(_)
        | E::RestartPolicy(_)
        | E::InvalidResources(_)
        | E::InvalidOption(_)) => ApiError::bad_request(err.to_string()),
        E::Volume(e) => crate::volumes::volume_error(e),
        E::Start { code, message } => ApiError::bad_request(start_message(code, message)),
        other => ApiError::internal(other.to_string()),
    }
}

/// The CLI picks `run`'s exit code from the start error's text: 127 for "no such file or
/// directory" / "executable file not found", 126 for "permission denied" / "is a directory".
fn start_message(code: u8, message: String) -> String {
    let lower = message.to_lowercase();
    match code {
        127 if !lower.contains("no such file or directory")
            && !lower.contains("executable file not found") =>
        {
            format!("{message}: executable file not found in $PATH")
        }
        126 if !lower.contains("permission denied") && !lower.contains("is a directory") => {
            format!("{message}: permission denied")
        }
        _ => message,
    }
}

/// The container `name` names (id, prefix or name, with or without the leading `/`), or 404.
pub(crate) fn find(state: &State, name: &str) -> ApiResult<Container> {
    let bare = name.trim_start_matches('/');
    state.runtime.get(bare).map_err(|e| runtime_error(e, bare))
}

/// `GET /containers/json`: newest first; running ones only unless `all=1`.
pub async fn list(state: Arc<State>, query: Query) -> ApiResult<Response> {
    if query.flag("size") {
        // Refused, not ignored: a client asking for sizes must not get a table of zeros.
        return Err(ApiError::bad_request(
            "size=1 (ps --size) is not supported by dock",
        ));
    }
    let limit = query.int("limit")?.filter(|l| *l > 0);
    let listing = crate::shapes::ContainerListing {
        all: query.flag("all"),
        limit: limit.map(|l| l as usize),
    };
    let filters = crate::filters::Filters::from_json(query.get("filters")).map_err(filter_error)?;
    let entries = blocking(move || {
        crate::shapes::container_summaries(
            &state.runtime,
            &state.graph,
            &state.tags,
            listing,
            &filters,
        )
        .map_err(shape_error)
    })
    .await?;
    Ok(body::json(StatusCode::OK, &entries))
}

/// A bad `filters` parameter: 400 with what was wrong.
pub(crate) fn filter_error(err: crate::filters::FilterError) -> ApiError {
    ApiError::bad_request(err.to_string())
}

/// A listing's or document's failure as the API answers it.
pub(crate) fn shape_error(err: crate::shapes::ShapeError) -> ApiError {
    use crate::shapes::ShapeError as E;
    match err {
        E::Filter(e) => filter_error(e),
        E::Runtime(runtime::Error::NoSuchContainer(name)) => {
            ApiError::not_found(format!("No such container: {name}"))
        }
        E::Runtime(e) => runtime_error(e, ""),
        E::Tags(tagstore::Error::NoSuchImage(name)) => {
            ApiError::not_found(format!("No such image: {name}"))
        }
        E::Graph(graph::Error::NoSuchImage(name))
        | E::Tags(tagstore::Error::Graph(graph::Error::NoSuchImage(name))) => {
            ApiError::not_found(format!("No such image: {name}"))
        }
        other => ApiError::internal(other.to_string()),
    }
}

/// `POST /containers/create?name=`.
pub async fn create(state: Arc<State>, query: Query, request: Incoming) -> ApiResult<Response> {
    let data = read_body(request, MAX_CREATE_BODY).await?;
    let config = CreateBody::parse(&data)?;
    // Parsed once more as a document: a set field dock does not honour is refused by name.
    if let Ok(raw) = serde_json::from_slice::<Value>(&data) {
        crate::strict::check_create(&raw)?;
    }
    let name = query
        .non_empty("name")
        .map(|n| n.trim_start_matches('/').to_string());
    // `--platform`: only this machine's, which is what every container here runs as.
    if let Some(platform) = query.non_empty("platform") {
        let host = format!("linux/{}", runtime::imageconfig::host_architecture());
        if platform != host && !platform.starts_with(&format!("{host}/")) {
            return Err(ApiError::bad_request(format!(
                "platform {platform} (--platform) is not supported by dock: containers run as {host}"
            )));
        }
    }
    let network = match config.host_config.network_mode.as_str() {
        "" => runtime::NetworkMode::Bridge,
        mode => mode
            .parse::<runtime::NetworkMode>()
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
    };
    let discards_ports = !config.port_specs().is_empty() || config.host_config.publish_all_ports;
    let id = blocking(move || {
        // Resolve the name as the API does (sha256: ids, docker.io/library/ names) first.
        let image = crate::images::find_image(&state, &config.image)?;
        let image_name = if config.image.starts_with("sha256:") {
            image.id.clone()
        } else {
            crate::images::familiar(&config.image).to_string()
        };
        let detach = !(config.attach_stdin || config.attach_stdout || config.attach_stderr);
        let options = runtime::CreateOptions {
            image: image_name,
            cmd: config.cmd.clone().into_vec(),
            entrypoint: config.entrypoint(),
            working_dir: config.working_dir.clone(),
            exposed_ports: config.exposed_ports(),
            stop_signal: config.stop_signal.clone(),
            labels: config.labels.clone().unwrap_or_default(),
            name,
            hostname: Some(config.hostname.clone()).filter(|h| !h.is_empty()),
            user: config.user.clone(),
            env: config.env.clone().unwrap_or_default(),
            memory: config.host_config.memory,
            memory_swap: config.host_config.memory_swap,
            tty: config.tty,
            open_stdin: config.open_stdin,
            detach,
            port_specs: config.port_specs(),
            auto_remove: config.host_config.auto_remove,
            host_config: config.runtime_host_config(),
            stop_timeout: config.stop_timeout,
            volumes: config.volumes(),
        };
        let c = state
            .runtime
            .create_with_network(options, network)
            .map_err(|e| runtime_error(e, ""))?;
        tracing::debug!(id = %c.id, name = %c.name, "created container");
        if let Some([rows, cols]) = config.host_config.console_size {
            state.runs.set_console_size(
                &c.id,
                u16::try_from(rows).unwrap_or(0),
                u16::try_from(cols).unwrap_or(0),
            );
        }
        Ok(c.id)
    })
    .await?;
    // As dockerd: published ports of a host-network container are dropped, with a warning.
    let mut warnings: Vec<&str> = Vec::new();
    if network == runtime::NetworkMode::Host && discards_ports {
        warnings.push("Published ports are discarded when using host network mode");
    }
    Ok(body::json(
        StatusCode::CREATED,
        &json!({ "Id": id, "Warnings": warnings }),
    ))
}

pub(crate) async fn read_body(request: Incoming, limit: usize) -> ApiResult<Bytes> {
    let timeout = crate::limits::read_timeout();
    let data = tokio::time::timeout(
        timeout,
        http_body_util::Limited::new(request, limit).collect(),
    )
    .await
    .map_err(|_| {
        ApiError::bad_request(format!(
            "read the request body: not complete after {timeout:?}"
        ))
    })?
    .map_err(|err| ApiError::bad_request(format!("read the request body: {err}")))?;
    Ok(data.to_bytes())
}

/// `GET /containers/{id}/json`.
pub async fn inspect(state: Arc<State>, name: String) -> ApiResult<Response> {
    let value = blocking(move || {
        let c = find(&state, &name)?;
        Ok(crate::shapes::container_inspect(&state.runtime, &c))
    })
    .await?;
    Ok(body::json(StatusCode::OK, &value))
}

/// `POST /containers/{id}/start`: 204, or 304 when it already runs.
pub async fn start(state: Arc<State>, name: String) -> ApiResult<Response> {
    let handle = tokio::runtime::Handle::current();
    blocking(move || {
        let c = find(&state, &name)?;
        if c.state.running {
            return Err(ApiError::not_modified());
        }
        start_container(&state, &c.id, &handle)
    })
    .await?;
    Ok(body::status(StatusCode::NO_CONTENT))
}

/// Start `id` through the runs registry, so clients that came before get its whole run.
fn start_container(state: &Arc<State>, id: &str, handle: &tokio::runtime::Handle) -> ApiResult<()> {
    let runtime_state = state.clone();
    let runs = state.runs.clone();
    let running = || Ok(find(state, id)?.state.running);
    runs.start_blocking(id, handle, running, |hello| {
        tracing::debug!(%id, "starting container");
        let client = runtime_state
            .runtime
            .start(id, hello)
            .map_err(|e| runtime_error(e, id))?;
        Ok(client.into_stream())
    })
    // The monitor stays our child until it exits; the server reaps it then.
}

/// `POST /containers/{id}/stop?t=`: 204, or 304 when it is not running.
pub async fn stop(state: Arc<State>, name: String, query: Query) -> ApiResult<Response> {
    let (signal, timeout) = stop_options(&query)?;
    blocking(move || {
        let c = find(&state, &name)?;
        if !c.state.running {
            return Err(ApiError::not_modified());
        }
        let timeout = timeout.unwrap_or_else(|| runtime::Runtime::stop_timeout(&c));
        tracing::debug!(id = %c.id, ?timeout, "stopping container");
        state
            .runtime
            .stop_with(&c.id, signal, timeout)
            .map_err(|e| runtime_error(e, &name))
    })
    .await?;
    Ok(body::status(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/restart?t=`: stop when running, then start.
pub async fn restart(state: Arc<State>, name: String, query: Query) -> ApiResult<Response> {
    let (signal, timeout) = stop_options(&query)?;
    let handle = tokio::runtime::Handle::current();
    blocking(move || {
        let c = find(&state, &name)?;
        if c.state.running {
            let timeout = timeout.unwrap_or_else(|| runtime::Runtime::stop_timeout(&c));
            state
                .runtime
                .stop_with(&c.id, signal, timeout)
                .map_err(|e| runtime_error(e, &name))?;
        }
        start_container(&state, &c.id, &handle)
    })
    .await?;
    Ok(body::status(StatusCode::NO_CONTENT))
}

/// `signal` (`stop -s`, API 1.42+; default: the container's stop signal) and `t`.
/// Without `t`: the container's `StopTimeout`, else 10 s.
fn stop_options(query: &Query) -> ApiResult<(Option<i32>, Option<Duration>)> {
    let signal = query.non_empty("signal").map(parse_signal).transpose()?;
    let timeout = match query.int("t")? {
        Some(t) if t >= 0 => Some(Duration::from_secs(t as u64)),
        Some(_) => Some(Duration::from_secs(u32::MAX as u64)),
        None => None,
    };
    Ok((signal, timeout))
}

/// `POST /containers/{id}/kill?signal=`: SIGKILL unless told otherwise.
pub async fn kill(state: Arc<State>, name: String, query: Query) -> ApiResult<Response> {
    let signal = match query.non_empty("signal") {
        None => libc::SIGKILL,
        Some(name) => parse_signal(name)?,
    };
    blocking(move || {
        let c = find(&state, &name)?;
        let not_running = || {
            ApiError::conflict(format!(
                "cannot kill container: {name}: container {} is not running",
                c.id
            ))
        };
        if !c.state.running {
            return Err(not_running());
        }
        tracing::debug!(id = %c.id, signal, "killing container");
        match state.runtime.kill(&c.id, signal) {
            Ok(()) => Ok(()),
            Err(runtime::Error::NotRunning(_)) => Err(not_running()),
            Err(e) => Err(runtime_error(e, &name)),
        }
    })
    .await?;
    Ok(body::status(StatusCode::NO_CONTENT))
}

/// `HUP`, `SIGHUP`, `sighup` or a number.
pub fn parse_signal(text: &str) -> ApiResult<i32> {
    runtime::procs::signal_number(text)
        .ok_or_else(|| ApiError::bad_request(format!("invalid signal: {text}")))
}

/// `DELETE /containers/{id}?force=`.
pub async fn remove(state: Arc<State>, name: String, query: Query) -> ApiResult<Response> {
    let force = query.flag("force");
    let volumes = query.flag("v");
    blocking(move || {
        let bare = name.trim_start_matches('/');
        let id = match state.runtime.get(bare) {
            Ok(c) => c.id,
            // Removed without its config (Runtime::remove_broken).
            Err(runtime::Error::Broken { id, .. }) => id,
            Err(e) => return Err(runtime_error(e, bare)),
        };
        tracing::debug!(%id, force, "removing container");
        state
            .runtime
            .remove_with(&id, force, volumes)
            .map_err(|e| runtime_error(e, &name))?;
        state.runs.forget(&id);
        Ok(())
    })
    .await?;
    Ok(body::status(StatusCode::NO_CONTENT))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

/// `POST /containers/{id}/wait?condition=`: headers at once, `{"StatusCode":N}` on exit.
/// The run to wait for is chosen when the request arrives, so an exit between this and
/// `/start`'s answer is not missed; a 404 goes out before any header.
pub async fn wait(state: Arc<State>, name: String, query: Query) -> ApiResult<Response> {
    let condition = match query.non_empty("condition").unwrap_or("not-running") {
        "not-running" => WaitCondition::NotRunning,
        "next-exit" => WaitCondition::NextExit,
        "removed" => WaitCondition::Removed,
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid condition: {other:?}: want not-running, next-exit or removed"
            )))
        }
    };
    let (container, joined) = {
        let state = state.clone();
        blocking(move || {
            let c = find(&state, &name)?;
            // Waiting for removal waits for the run first when the container never ran.
            let next = condition == WaitCondition::NextExit
                || (condition == WaitCondition::Removed && c.state.never_started());
            let joined =
                state
                    .runs
                    .join_wait(&c.id, || Ok(find(&state, &c.id)?.state.running), next)?;
            Ok((c, joined))
        })
        .await?
    };
    let (tx, response_body) = body::channel();
    tokio::spawn(async move {
        let outcome = tokio::select! {
            outcome = wait_outcome(&state, &container, joined, condition) => outcome,
            // The client left (a detached `run`): stop waiting.
            () = tx.closed() => return,
        };
        let line = match outcome {
            Ok(code) => json!({ "StatusCode": code }),
            Err(message) => json!({ "StatusCode": -1, "Error": { "Message": message } }),
        };
        let _ = tx.send(Bytes::from(format!("{line}\n"))).await;
    });
    Ok(body::with_type(StatusCode::OK, body::JSON, response_body))
}

async fn wait_outcome(
    state: &Arc<State>,
    c: &Container,
    joined: Joined,
    condition: WaitCondition,
) -> Outcome {
    let code = match joined {
        Joined::Run(mut outcome) => {
            let result = outcome.wait_for(Option::is_some).await.map(|v| v.clone());
            match result {
                Ok(Some(Ok(code))) => code,
                // A start that failed recorded its exit code (125-127), which is the answer;
                // the reason went to the client of /start already.
                Ok(Some(Err(message))) => recorded_exit(state, &c.id).await.ok_or(message)?,
                _ => return Err(format!("lost track of container {}", c.id)),
            }
        }
        Joined::Elsewhere => exit_of_running(state, &c.id).await?,
        Joined::Idle => c.state.exit_code,
    };
    if condition == WaitCondition::Removed {
        loop {
            let gone = {
                let state = state.clone();
                let id = c.id.clone();
                blocking(move || {
                    Ok(matches!(
                        state.runtime.load(&id),
                        Err(runtime::Error::NoSuchContainer(_))
                    ))
                })
                .await
                .map_err(|e| e.message)?
            };
            if gone {
                break;
            }
            tokio::time::sleep(REMOVAL_POLL).await;
        }
    }
    Ok(code)
}

/// The exit code recorded for a container that is not running, if it still exists.
async fn recorded_exit(state: &Arc<State>, id: &str) -> Option<i32> {
    let state = state.clone();
    let id = id.to_string();
    let c = blocking(move || state.runtime.load(&id).map_err(|e| runtime_error(e, &id)))
        .await
        .ok()?;
    (!c.state.running).then_some(c.state.exit_code)
}

/// The exit code of a container running on a monitor this server did not start.
async fn exit_of_running(state: &Arc<State>, id: &str) -> Outcome {
    let socket = state.runtime.paths(id).socket();
    if let Ok((mut events, _commands)) = crate::monitor::connect(&socket, Hello::default()).await {
        if let Ok(Some(code)) = events.exit_code().await {
            return Ok(code);
        }
    }
    // The monitor went away first: the recorded state knows the code.
    let state = state.clone();
    let id = id.to_string();
    blocking(move || state.runtime.wait(&id).map_err(|e| runtime_error(e, &id)))
        .await
        .map_err(|e| e.message)
}

/// `POST /containers/{id}/resize?h=&w=`: a running container's terminal gets the new size.
pub async fn resize(state: Arc<State>, name: String, query: Query) -> ApiResult<Response> {
    let size = |key| -> ApiResult<u16> {
        let value = query.int(key)?.unwrap_or(0);
        u16::try_from(value).map_err(|_| {
            ApiError::bad_request(format!("invalid {key}={value}: not a terminal size"))
        })
    };
    let (rows, cols) = (size("h")?, size("w")?);
    let c = {
        let state = state.clone();
        blocking(move || find(&state, &name)).await?
    };
    if !c.state.running {
        // Too late to matter (a short-lived container); the CLI would only retry.
        return Ok(body::with_type(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            body::empty(),
        ));
    }
    let socket = state.runtime.paths(&c.id).socket();
    let sent = async {
        let (_events, mut commands) = crate::monitor::connect(&socket, Hello::default()).await?;
        commands.resize(rows, cols).await
    };
    if let Err(err) = sent.await {
        tracing::debug!(id = %c.id, "resize: {err}");
    }
    Ok(body::with_type(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        body::empty(),
    ))
}

/// `GET /containers/{id}/changes`: Kind 0 modified, 1 added, 2 deleted.
pub async fn changes(state: Arc<State>, name: String) -> ApiResult<Response> {
    let changes = blocking(move || {
        let c = find(&state, &name)?;
        state
            .runtime
            .changes(&c.id)
            .map_err(|e| runtime_error(e, &name))
    })
    .await?;
    let entries: Vec<Value> = changes
        .into_iter()
        .map(|change| {
            let kind = match change.kind {
                archive::ChangeKind::Modify => 0,
                archive::ChangeKind::Add => 1,
                archive::ChangeKind::Delete => 2,
            };
            json!({ "Path": change.path, "Kind": kind })
        })
        .collect();
    Ok(body::json(StatusCode::OK, &entries))
}

/// `GET /containers/{id}/export`: the container's filesystem as a tar, streamed.
pub async fn export(state: Arc<State>, name: String) -> ApiResult<Response> {
    let id = {
        let state = state.clone();
        blocking(move || find(&state, &name).map(|c| c.id)).await?
    };
    let (tx, response_body) = body::channel();
    tokio::task::spawn_blocking(move || {
        let out = ChannelWriter { tx };
        if let Err(err) = state.runtime.export(&id, out) {
            // The headers are out: all that can be done is to cut the stream short.
            tracing::warn!(%id, "export failed: {err}");
        }
    });
    Ok(body::with_type(
        StatusCode::OK,
        "application/x-tar",
        response_body,
    ))
}

/// A blocking `Write` into a channel body.
pub(crate) struct ChannelWriter {
    pub(crate) tx: mpsc::Sender<Bytes>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `POST /commit?container=&repo=&tag=&comment=&author=`.
pub async fn commit(state: Arc<State>, query: Query) -> ApiResult<Response> {
    let container = query
        .non_empty("container")
        .ok_or_else(|| ApiError::bad_request("no container given (container=)"))?
        .to_string();
    if let Some(change) = query.all("changes").first() {
        return Err(ApiError::bad_request(format!(
            "commit --change is not supported: {change}"
        )));
    }
    let (repository, tag) = match query.non_empty("repo") {
        None => (None, None),
        Some(repo) => {
            let (repo, embedded) = tagstore::parse_reference(crate::images::familiar(repo));
            let tag = query
                .non_empty("tag")
                .map(str::to_string)
                .or(embedded)
                .unwrap_or_else(|| "latest".to_string());
            tagstore::validate_repository(&repo)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            tagstore::validate_tag(&tag).map_err(|e| ApiError::bad_request(e.to_string()))?;
            (Some(repo), Some(tag))
        }
    };
    let options = runtime::CommitOptions {
        repository,
        tag,
        comment: query.get("comment").unwrap_or("").to_string(),
        author: query.get("author").unwrap_or("").to_string(),
    };
    let image = blocking(move || {
        let c = find(&state, &container)?;
        tracing::debug!(id = %c.id, "committing container");
        state
            .runtime
            .commit(&c.id, options)
            .map_err(|e| runtime_error(e, &container))
    })
    .await?;
    Ok(body::json(
        StatusCode::CREATED,
        &json!({ "Id": api_id(&image.id) }),
    ))
}

/// `GET /containers/{id}/logs`: what was logged, framed unless the container has a tty;
/// with `follow=1` the body stays open until the container stops.
pub async fn logs(state: Arc<State>, name: String, query: Query) -> ApiResult<Response> {
    let want_stdout = query.flag("stdout");
    let want_stderr = query.flag("stderr");
    if !want_stdout && !want_stderr {
        return Err(ApiError::bad_request("you must choose at least one stream"));
    }
    let tail = match query.non_empty("tail") {
        None | Some("all") => None,
        Some(n) => match n.parse::<i64>() {
            Ok(n) if n < 0 => None,
            Ok(n) => Some(n as usize),
            Err(_) => return Err(ApiError::bad_request(format!("invalid tail value {n:?}"))),
        },
    };
    let since = unix_time(&query, "since")?;
    let until = unix_time(&query, "until")?;
    let follow = query.flag("follow");
    let timestamps = query.flag("timestamps");
    let c = {
        let state = state.clone();
        blocking(move || find(&state, &name)).await?
    };
    let framing = Framing { tty: c.config.tty };
    let filter = LogFilter {
        stdout: want_stdout,
        stderr: want_stderr,
        since,
        until,
        timestamps,
        framing,
    };
    let (tx, response_body) = body::channel();
    tokio::spawn(async move {
        if let Err(message) = send_logs(&state, &c, follow, tail, &filter, &tx).await {
            let _ = tx
                .send(crate::stream::frame(StreamKind::System, message.as_bytes()))
                .await;
        }
    });
    Ok(body::with_type(
        StatusCode::OK,
        framing.content_type(),
        response_body,
    ))
}

/// `since`/`until` as the CLI sends them: unix seconds, maybe with a fraction (to the
/// nanosecond); 0 = unset.
fn unix_time(query: &Query, key: &str) -> ApiResult<Option<DateTime<Utc>>> {
    let Some(text) = query.non_empty(key) else {
        return Ok(None);
    };
    let time = runtime::logs::parse_unix(text)
        .map_err(|e| ApiError::bad_request(format!("invalid {key} value: {e}")))?;
    Ok(Some(time).filter(|t| *t != DateTime::UNIX_EPOCH))
}

struct LogFilter {
    stdout: bool,
    stderr: bool,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    timestamps: bool,
    framing: Framing,
}

impl LogFilter {
    fn encode(&self, kind: StreamKind, time: DateTime<Utc>, data: &[u8]) -> Option<Bytes> {
        let wanted = match kind {
            StreamKind::Stdout => self.stdout,
            _ => self.stderr,
        };
        if !wanted || !runtime::logs::in_window(time, self.since, self.until) {
            return None;
        }
        let mut payload = Vec::with_capacity(data.len() + 32);
        if self.timestamps {
            payload.extend_from_slice(
                time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
                    .as_bytes(),
            );
            payload.push(b' ');
        }
        payload.extend_from_slice(data);
        Some(self.framing.encode(kind, &payload))
    }
}

/// The logged entries (the last `tail`), then with `follow` the live output until the exit.
async fn send_logs(
    state: &Arc<State>,
    c: &Container,
    follow: bool,
    tail: Option<usize>,
    filter: &LogFilter,
    tx: &mpsc::Sender<Bytes>,
) -> Result<(), String> {
    // Joining first tells where the log stood, so nothing is sent twice or missed.
    let mut live = None;
    let mut end = None;
    if follow && c.state.running {
        let socket = state.runtime.paths(&c.id).socket();
        let hello = Hello {
            stdout: filter.stdout,
            stderr: filter.stderr,
            ..Hello::default()
        };
        if let Ok((mut events, commands)) = crate::monitor::connect(&socket, hello).await {
            if let Ok(Some(Event::Attached { log_offset })) = events.next().await {
                end = Some(log_offset);
                live = Some((events, commands));
            }
        }
    }
    let entries = {
        let state = state.clone();
        let id = c.id.clone();
        blocking(move || {
            state
                .runtime
                .logs(&id, 0, end)
                .map_err(|e| runtime_error(e, &id))
        })
        .await
        .map_err(|e| e.message)?
    };
    let skip = tail.map_or(0, |t| entries.len().saturating_sub(t));
    for entry in entries.into_iter().skip(skip) {
        let kind = if entry.is_stderr() {
            StreamKind::Stderr
        } else {
            StreamKind::Stdout
        };
        let time = entry.timestamp().unwrap_or_else(Utc::now);
        if let Some(frame) = filter.encode(kind, time, entry.log.as_bytes()) {
            if tx.send(frame).await.is_err() {
                return Ok(());
            }
        }
    }
    let Some((mut events, _commands)) = live else {
        return Ok(());
    };
    loop {
        // Following ends at `until`, as dockerd's does.
        let next = match filter.until {
            Some(until) => {
                let left = (until - Utc::now()).to_std().unwrap_or_default();
                match tokio::time::timeout(left, events.next()).await {
                    Ok(next) => next,
                    Err(_) => return Ok(()),
                }
            }
            None => events.next().await,
        };
        let (kind, data) = match next {
            Ok(Some(Event::Stdout(data))) => (StreamKind::Stdout, data),
            Ok(Some(Event::Stderr(data))) => (StreamKind::Stderr, data),
            Ok(Some(Event::Exit(_))) | Ok(None) => return Ok(()),
            Ok(Some(_)) => continue,
            Err(err) => return Err(format!("follow the log: {err}")),
        };
        if let Some(frame) = filter.encode(kind, Utc::now(), &data) {
            if tx.send(frame).await.is_err() {
                return Ok(());
            }
        }
    }
}

/// `POST /containers/{id}/attach`: a `101`, then the raw connection carries the container's
/// stdin one way and its output the other. The client's half-close means "stdin ends", not
/// "client gone"; the output ends (write shutdown) when the run does.
pub async fn attach(
    state: Arc<State>,
    name: String,
    query: Query,
    mut request: Request<Incoming>,
) -> ApiResult<Response> {
    if request.headers().get(hyper::header::UPGRADE).is_none() {
        return Err(ApiError::bad_request(
            "attach needs a connection upgrade (Upgrade: tcp)",
        ));
    }
    let stdin = query.flag("stdin");
    let mut stdout = query.flag("stdout");
    let mut stderr = query.flag("stderr");
    if !stdin && !stdout && !stderr {
        // Docker's default: every stream.
        stdout = true;
        stderr = true;
    }
    let (output_tx, output_rx) = mpsc::channel::<Chunk>(64);
    let (stdin_tx, stdin_rx) = if stdin {
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let pipes = AttachPipes {
        stdout,
        stderr,
        output: output_tx,
        stdin: stdin_rx,
    };
    let (c, elsewhere) = {
        let state = state.clone();
        blocking(move || {
            let c = find(&state, &name)?;
            let elsewhere = state
                .runs
                .join_attach(&c.id, pipes, || Ok(find(&state, &c.id)?.state.running))?;
            Ok((c, elsewhere))
        })
        .await?
    };
    if let Some(pipes) = elsewhere {
        // Running on a monitor this server did not start: attach to it directly.
        let socket = state.runtime.paths(&c.id).socket();
        let hello = Hello {
            stdout,
            stderr,
            stdin,
            rows: 0,
            cols: 0,
            deletes_removed: false,
        };
        let (events, commands) = crate::monitor::connect(&socket, hello)
            .await
            .map_err(|e| ApiError::conflict(format!("attach to container {}: {e}", c.id)))?;
        tokio::spawn(crate::runs::fan_out(events, commands, vec![pipes], true));
    }
    let framing = Framing { tty: c.config.tty };
    let on_upgrade = hyper::upgrade::on(&mut request);
    let id = c.id.clone();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => session(TokioIo::new(upgraded), framing, output_rx, stdin_tx).await,
            Err(err) => tracing::debug!(%id, "attach upgrade failed: {err}"),
        }
    });
    Ok(crate::stream::upgrade_response(framing))
}

/// Pump one hijacked connection until the run's output ends.
pub(crate) async fn session<T>(
    io: T,
    framing: Framing,
    mut output: mpsc::Receiver<Chunk>,
    stdin: Option<mpsc::Sender<Bytes>>,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (mut from_client, mut to_client) = tokio::io::split(io);
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Some(stdin) = &stdin {
                        if stdin.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        // The client's half-close: dropping the sender closes the container's stdin; the
        // output keeps flowing.
        drop(stdin);
    });
    while let Some((kind, data)) = output.recv().await {
        if to_client
            .write_all(&framing.encode(kind, &data))
            .await
            .is_err()
        {
            break;
        }
    }
    let _ = to_client.flush().await;
    let _ = to_client.shutdown().await;
    reader.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("HUP").unwrap(), libc::SIGHUP);
        assert_eq!(parse_signal("SIGTERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("int").unwrap(), libc::SIGINT);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
    }

    #[test]
    fn start_errors_carry_the_words_the_cli_maps_to_exit_codes() {
        assert!(
            start_message(127, "exec /nonexistent".into()).contains("executable file not found")
        );
        assert_eq!(
            start_message(127, "stat /x: no such file or directory".into()),
            "stat /x: no such file or directory"
        );
        assert!(start_message(126, "exec /etc".into()).contains("permission denied"));
        assert_eq!(start_message(125, "cgroup: x".into()), "cgroup: x");
    }
}
