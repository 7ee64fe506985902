//! Exec instances: `POST /containers/{id}/exec`, `POST /exec/{id}/start` (hijacked, with or
//! without a tty, or detached), `POST /exec/{id}/resize` and `GET /exec/{id}/json`.
//!
//! Like dockerd's, the instances live in this server's memory. The process is started by
//! [`runtime::Runtime::exec`] from a blocking task, so it is this server's child: threads copy
//! its pipes (or its terminal's master) to and from the hijacked connection and wait for it.
//! Its exit code is recorded before the connection's output ends, so a client that inspects
//! the instance once its stream closed (as the docker CLI does) finds it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use runtime::exec::{ExecOptions, Stdio};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::body::{self, Response};
use crate::containers::{find, read_body, runtime_error, session};
use crate::error::{ApiError, ApiResult};
use crate::query::Query;
use crate::runs::Chunk;
use crate::state::{blocking, State};
use crate::stream::{Framing, StreamKind};

const MAX_EXEC_BODY: usize = 1 << 20;

/// The exec instances this server created, by id.
#[derive(Default)]
pub struct Execs {
    all: Mutex<HashMap<String, Arc<Instance>>>,
}

impl Execs {
    fn get(&self, id: &str) -> ApiResult<Arc<Instance>> {
        let all = self.all.lock().unwrap_or_else(|e| e.into_inner());
        all.get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))
    }
}

/// One exec instance: what was asked, and how it runs.
struct Instance {
    id: String,
    container_id: String,
    config: CreateBody,
    status: Mutex<Status>,
}

#[derive(Default)]
struct Status {
    started: bool,
    running: bool,
    exit_code: Option<i32>,
    pid: i32,
    /// The terminal's master while it runs with a tty, for resize.
    terminal: Option<Arc<OwnedFd>>,
}

impl Instance {
    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn finished(&self, code: i32) {
        let mut status = self.status();
        status.running = false;
        status.exit_code = Some(code);
        status.terminal = None;
    }
}

/// Docker's ExecConfig, as `docker exec` sends it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    tty: bool,
    privileged: bool,
    user: String,
    working_dir: String,
    env: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    detach_keys: String,
}

/// `POST /exec/{id}/start`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct StartBody {
    detach: bool,
    tty: Option<bool>,
    console_size: Option<Vec<u16>>,
}

/// `POST /containers/{id}/exec`: 201 `{"Id"}`; 409 when the container is not running.
pub async fn create(state: Arc<State>, name: String, request: Incoming) -> ApiResult<Response> {
    let data = read_body(request, MAX_EXEC_BODY).await?;
    let config: CreateBody = serde_json::from_slice(&data)
        .map_err(|e| ApiError::bad_request(format!("invalid exec config: {e}")))?;
    if config.cmd.as_ref().is_none_or(|cmd| cmd.is_empty()) {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    let c = {
        let state = state.clone();
        blocking(move || find(&state, &name)).await?
    };
    if !c.state.running {
        return Err(ApiError::conflict(format!(
            "container {} is not running",
            c.id
        )));
    }
    if c.state.paused {
        return Err(runtime_error(runtime::Error::Paused(c.id.clone()), &c.id));
    }
    let id = graph::generate_id();
    let instance = Arc::new(Instance {
        id: id.clone(),
        container_id: c.id.clone(),
        config,
        status: Mutex::new(Status::default()),
    });
    state
        .execs
        .all
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id.clone(), instance);
    Ok(body::json(StatusCode::CREATED, &json!({ "Id": id })))
}

/// `GET /exec/{id}/json`.
pub async fn inspect(state: Arc<State>, id: String) -> ApiResult<Response> {
    let instance = state.execs.get(&id)?;
    let status = instance.status();
    let config = &instance.config;
    let cmd = config.cmd.clone().unwrap_or_default();
    Ok(body::json(
        StatusCode::OK,
        &json!({
            "ID": instance.id,
            "Running": status.running,
            "ExitCode": status.exit_code,
            "ProcessConfig": {
                "tty": config.tty,
                "entrypoint": cmd.first(),
                "arguments": cmd.get(1..).unwrap_or_default(),
                "privileged": config.privileged,
                "user": config.user,
            },
            "OpenStdin": config.attach_stdin,
            "OpenStderr": config.attach_stderr,
            "OpenStdout": config.attach_stdout,
            "CanRemove": false,
            "ContainerID": instance.container_id,
            "DetachKeys": config.detach_keys,
            "Pid": status.pid,
        }),
    ))
}

/// `POST /exec/{id}/resize?h=&w=`: the running instance's terminal gets the new size.
pub async fn resize(state: Arc<State>, id: String, query: Query) -> ApiResult<Response> {
    let size = |key| -> ApiResult<u16> {
        let value = query.int(key)?.unwrap_or(0);
        u16::try_from(value).map_err(|_| {
            ApiError::bad_request(format!("invalid {key}={value}: not a terminal size"))
        })
    };
    let (rows, cols) = (size("h")?, size("w")?);
    let instance = state.execs.get(&id)?;
    if let Some(master) = &instance.status().terminal {
        set_size(master, rows, cols);
    }
    Ok(body::with_type(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        body::empty(),
    ))
}

fn set_size(master: &OwnedFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ with a valid winsize on a pty master we hold.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

/// `POST /exec/{id}/start`: detached, a 200 once the command runs; otherwise a `101`, then
/// the connection carries its stdin one way and its output the other (framed without a tty)
/// until it exits. A command that cannot start is reported on the stream, its exit code
/// (126, 127) recorded, as dockerd does.
pub async fn start(
    state: Arc<State>,
    id: String,
    mut request: Request<Incoming>,
) -> ApiResult<Response> {
    let instance = state.execs.get(&id)?;
    let upgrade = request.headers().get(hyper::header::UPGRADE).is_some();
    let on_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let data = read_body(request.into_body(), MAX_EXEC_BODY).await?;
    let start: StartBody = if data.iter().all(u8::is_ascii_whitespace) {
        StartBody::default()
    } else {
        serde_json::from_slice(&data)
            .map_err(|e| ApiError::bad_request(format!("invalid exec start config: {e}")))?
    };
    let container = {
        let state = state.clone();
        let id = instance.container_id.clone();
        blocking(move || find(&state, &id)).await?
    };
    if !container.state.running {
        return Err(ApiError::conflict(format!(
            "container {} is not running",
            container.id
        )));
    }
    {
        let mut status = instance.status();
        if status.started {
            return Err(ApiError::conflict(format!(
                "Exec command {id} is already running"
            )));
        }
        status.started = true;
        status.running = true;
    }
    let config = &instance.config;
    let tty = start.tty.unwrap_or(config.tty) || config.tty;
    let (rows, cols) = match start.console_size.as_deref() {
        Some([rows, cols]) => (*rows, *cols),
        _ => (0, 0),
    };
    let opts = ExecOptions {
        cmd: config.cmd.clone().unwrap_or_default(),
        env: config.env.clone().unwrap_or_default(),
        user: config.user.clone(),
        working_dir: config.working_dir.clone(),
        tty,
        privileged: config.privileged,
    };
    if start.detach || on_upgrade.is_none() {
        let attach = !start.detach;
        if attach {
            instance.finished(126);
            return Err(ApiError::bad_request(
                "exec start needs a connection upgrade (Upgrade: tcp)",
            ));
        }
        let run = Run::start(&state, &instance, opts, rows, cols, false).await;
        return match run {
            Ok(run) => {
                std::thread::spawn(move || run.finish(None));
                Ok(body::status(StatusCode::OK))
            }
            Err(e) => Err(e),
        };
    }
    let framing = Framing { tty };
    let (output_tx, output_rx) = mpsc::channel::<Chunk>(64);
    let (stdin_tx, stdin_rx) = if config.attach_stdin {
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let on_upgrade = on_upgrade.expect("checked above");
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(err) => {
                tracing::debug!(id = %instance.id, "exec upgrade failed: {err}");
                instance.finished(126);
                return;
            }
        };
        let pump = tokio::spawn(session(
            TokioIo::new(upgraded),
            framing,
            output_rx,
            stdin_tx,
        ));
        match Run::start(&state, &instance, opts, rows, cols, true).await {
            Ok(run) => {
                std::thread::spawn(move || run.pump(output_tx, stdin_rx));
            }
            Err(e) => {
                let _ = output_tx
                    .send((
                        StreamKind::Stdout,
                        Bytes::from(format!("{}\r\n", e.message)),
                    ))
                    .await;
                drop(output_tx);
            }
        }
        let _ = pump.await;
    });
    Ok(crate::stream::upgrade_response(framing))
}

/// A started exec process and this server's ends of its stdio.
struct Run {
    instance: Arc<Instance>,
    pid: runtime::exec::Pid,
    stdin: Option<File>,
    stdout: Option<File>,
    stderr: Option<File>,
    terminal: Option<Arc<OwnedFd>>,
}

impl Run {
    /// Starts the process (`attached`: with pipes to copy, else on /dev/null); a failure is
    /// recorded as its exit code.
    async fn start(
        state: &Arc<State>,
        instance: &Arc<Instance>,
        opts: ExecOptions,
        rows: u16,
        cols: u16,
        attached: bool,
    ) -> ApiResult<Run> {
        let state = state.clone();
        let instance = instance.clone();
        blocking(move || {
            let container = instance.container_id.clone();
            let config = instance.config.clone();
            let io_err = |e: std::io::Error| ApiError::internal(format!("exec stdio: {e}"));
            let mut ours = (None, None, None);
            let stdio = if opts.tty {
                Stdio::Terminal { rows, cols }
            } else {
                let null = || File::options().read(true).write(true).open("/dev/null");
                let stdin: OwnedFd = if attached && config.attach_stdin {
                    let (r, w) = std::io::pipe().map_err(io_err)?;
                    ours.0 = Some(File::from(OwnedFd::from(w)));
                    r.into()
                } else {
                    null().map_err(io_err)?.into()
                };
                let output = |wanted: bool, slot: &mut Option<File>| -> ApiResult<OwnedFd> {
                    if attached && wanted {
                        let (r, w) = std::io::pipe().map_err(io_err)?;
                        *slot = Some(File::from(OwnedFd::from(r)));
                        Ok(w.into())
                    } else {
                        Ok(null().map_err(io_err)?.into())
                    }
                };
                let stdout = output(config.attach_stdout, &mut ours.1)?;
                let stderr = output(config.attach_stderr, &mut ours.2)?;
                Stdio::Fds {
                    stdin,
                    stdout,
                    stderr,
                }
            };
            match state.runtime.exec(&container, &opts, stdio) {
                Ok(started) => {
                    let terminal = started.terminal.map(Arc::new);
                    {
                        let mut status = instance.status();
                        status.pid = started.pid.as_raw();
                        status.terminal = terminal.clone();
                    }
                    Ok(Run {
                        instance,
                        pid: started.pid,
                        stdin: ours.0,
                        stdout: ours.1,
                        stderr: ours.2,
                        terminal,
                    })
                }
                Err(e) => {
                    let code = match &e {
                        runtime::Error::Start { code, .. } => i32::from(*code),
                        _ => 126,
                    };
                    instance.finished(code);
                    Err(runtime_error(e, &container))
                }
            }
        })
        .await
    }

    /// Copies the process's stdio to and from the connection's channels; once its output
    /// ended, waits for it and records the exit, then lets the connection close.
    fn pump(mut self, output: mpsc::Sender<Chunk>, stdin: Option<mpsc::Receiver<Bytes>>) {
        let mut readers = Vec::new();
        let mut copy_out = |source: File, kind: StreamKind| {
            let output = output.clone();
            readers.push(std::thread::spawn(move || {
                let mut source = source;
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match source.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            // A client gone: keep draining, so the command never blocks.
                            let _ = output.blocking_send((kind, Bytes::copy_from_slice(&buf[..n])));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        // EIO from a terminal: the last holder closed it.
                        Err(_) => break,
                    }
                }
            }));
        };
        let mut input: Option<File> = self.stdin.take();
        if let Some(master) = &self.terminal {
            if let Ok(copy) = master.try_clone() {
                copy_out(File::from(copy), StreamKind::Stdout);
            }
            if self.instance.config.attach_stdin {
                input = master.try_clone().ok().map(File::from);
            }
        }
        if let Some(out) = self.stdout.take() {
            copy_out(out, StreamKind::Stdout);
        }
        if let Some(err) = self.stderr.take() {
            copy_out(err, StreamKind::Stderr);
        }
        if let (Some(mut input), Some(mut stdin)) = (input, stdin) {
            // Ends with the client's half-close (the pipe closes: the command reads EOF) or
            // when the command is gone.
            std::thread::spawn(move || {
                while let Some(data) = stdin.blocking_recv() {
                    if input.write_all(&data).is_err() {
                        break;
                    }
                }
            });
        }
        self.finish(Some((readers, output)));
    }

    /// Waits for the process and records its exit; with `attached`, after its output ended
    /// and before the connection's output is closed.
    #[allow(clippy::type_complexity)]
    fn finish(self, attached: Option<(Vec<std::thread::JoinHandle<()>>, mpsc::Sender<Chunk>)>) {
        let drain = match (&attached, &self.terminal) {
            // Detached with a terminal: nobody reads it, so we do.
            (None, Some(master)) => master.try_clone().ok().map(|copy| {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut File::from(copy), &mut std::io::sink());
                })
            }),
            _ => None,
        };
        let (readers, output) = attached.unzip();
        for reader in readers.into_iter().flatten() {
            let _ = reader.join();
        }
        let code = runtime::exec::wait(self.pid).unwrap_or(255);
        tracing::debug!(id = %self.instance.id, code, "exec process exited");
        self.instance.finished(code);
        drop(output);
        drop(drain);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_config_reads_dockers_field_names() {
        let body: CreateBody = serde_json::from_str(
            r#"{"AttachStdin":true,"AttachStdout":true,"AttachStderr":true,"Tty":true,
                "Env":["A=1"],"Cmd":["sh","-c","exit 3"],"User":"nobody","WorkingDir":"/tmp",
                "Privileged":false,"DetachKeys":"","ConsoleSize":[24,80]}"#,
        )
        .unwrap();
        assert!(body.attach_stdin && body.tty);
        assert_eq!(body.cmd.unwrap(), ["sh", "-c", "exit 3"]);
        assert_eq!(body.user, "nobody");
        assert_eq!(body.working_dir, "/tmp");
        let start: StartBody =
            serde_json::from_str(r#"{"Detach":false,"Tty":true,"ConsoleSize":[30,100]}"#).unwrap();
        assert_eq!(start.console_size.unwrap(), [30, 100]);
    }
}
