//! The listener (TLS on TCP when asked), the accept loop and the shutdown on SIGINT/SIGTERM.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::error::{Error, Result};
use crate::limits;
use crate::listen::Listen;
use crate::router;
use crate::state::State;
use crate::tls::{self, Exposure, TlsOptions};

/// Mode of the unix socket: root and its group may talk to the daemon.
const SOCKET_MODE: u32 = 0o660;
/// How long shutdown waits for blocking work (an import in flight) before leaving it.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// How long a client may take over its TLS handshake before the connection is dropped.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(30);
/// Pause after a failed accept, so a persistent failure does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serve the Docker Engine API for the state under `root` on `host` until SIGINT or SIGTERM,
/// with `tls` on a `tcp://` host (a unix socket is guarded by its mode and takes no TLS).
/// A TCP address other than loopback is refused unless `tls` verifies clients; a loopback
/// one without verification is served with a warning.
/// Containers are not touched when the server stops: their monitors keep them running.
pub fn serve(root: &Path, host: &str, tls: Option<&TlsOptions>) -> Result<()> {
    let listen: Listen = host.parse()?;
    let tls = match listen {
        Listen::Tcp(_) => tls,
        Listen::Unix(_) => {
            if tls.is_some() {
                tracing::warn!(%listen, "TLS options apply to tcp:// hosts only");
            }
            None
        }
    };
    match Exposure::of(&listen, tls) {
        Exposure::Guarded => {}
        Exposure::Local => tracing::warn!(
            "the API on {listen} does not verify clients (no --tlsverify): every user and \
             process on this machine can reach it, and through it root"
        ),
        Exposure::Network => {
            return Err(Error::Insecure {
                address: listen.to_string(),
                tls: tls.is_some(),
            })
        }
    }
    let tls = tls
        .map(tls::server_config)
        .transpose()?
        .map(TlsAcceptor::from);
    let state = Arc::new(State::open(root)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("dock-api")
        .build()
        .map_err(Error::Runtime)?;
    let result = runtime.block_on(run(listen, tls, state));
    // Blocking tasks (a container wait, an import) must not hold the process up.
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    result
}

async fn run(listen: Listen, tls: Option<TlsAcceptor>, state: Arc<State>) -> Result<()> {
    let mut terminate = signal(SignalKind::terminate()).map_err(Error::Signal)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(Error::Signal)?;
    let mut child_exited = signal(SignalKind::child()).map_err(Error::Signal)?;
    let listener = Listener::bind(&listen, tls)?;
    let connections = Arc::new(Semaphore::new(limits::max_connections()));
    tracing::info!(%listen, "API listening");
    // Restart policies: at the start (after a reboot, say) and then each sweep.
    let mut policy_sweep = tokio::time::interval(POLICY_SWEEP);
    policy_sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first_sweep = true;
    let sweeping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = policy_sweep.tick() => {
                // One sweep at a time, off the accept loop; a tick during one is skipped
                // (the first, at the start, is never skipped: nothing runs before it).
                if !sweeping.swap(true, std::sync::atomic::Ordering::AcqRel) {
                    let at_start = std::mem::take(&mut first_sweep);
                    let (state, sweeping) = (state.clone(), sweeping.clone());
                    tokio::task::spawn_blocking(move || {
                        sweep_restart_policies(&state, at_start);
                        sweeping.store(false, std::sync::atomic::Ordering::Release);
                    });
                }
            }
            // Monitors started here are our children until they exit.
            _ = child_exited.recv() => {
                let reaped = runtime::reap_monitors();
                tracing::debug!(reaped, "reaped monitors");
            }
            accepted = listener.accept(&state, &connections) => {
                if let Err(err) = accepted {
                    tracing::warn!(%listen, "accept failed: {err}");
                    // Out of descriptors, say: give the open connections time to end.
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }
    tracing::info!(%listen, "API stopping");
    Ok(())
}

/// How often the daemon looks for containers their restart policy brings back (a monitor
/// killed, the machine rebooted): what Docker's daemon does for its containers.
const POLICY_SWEEP: Duration = Duration::from_secs(1);

/// Starts what [`runtime::wants_policy_start`] names; `at_start` at the daemon's start.
fn sweep_restart_policies(state: &State, at_start: bool) {
    for (id, result) in state.runtime.start_by_policies(at_start) {
        match result {
            Ok(()) => tracing::info!(%id, "restarted by its restart policy"),
            Err(e) => tracing::warn!(%id, error = %e, "restart policy: starting failed"),
        }
    }
}

/// A bound socket; a unix socket file is removed again when this is dropped.
enum Listener {
    Unix {
        listener: UnixListener,
        _socket_file: SocketFile,
    },
    Tcp {
        listener: TcpListener,
        /// Each connection's TLS handshake, when the listener serves TLS.
        tls: Option<TlsAcceptor>,
    },
}

impl Listener {
    fn bind(listen: &Listen, tls: Option<TlsAcceptor>) -> Result<Listener> {
        let listen_error = |source| Error::Listen {
            address: listen.to_string(),
            source,
        };
        match listen {
            Listen::Tcp(address) => {
                tracing::debug!(%address, tls = tls.is_some(), "bind tcp");
                let socket = std::net::TcpListener::bind(address).map_err(listen_error)?;
                socket.set_nonblocking(true).map_err(listen_error)?;
                Ok(Listener::Tcp {
                    listener: TcpListener::from_std(socket).map_err(listen_error)?,
                    tls,
                })
            }
            Listen::Unix(path) => {
                remove_stale_socket(path)?;
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(listen_error)?;
                }
                tracing::debug!(path = %path.display(), "bind unix socket");
                let socket = std::os::unix::net::UnixListener::bind(path).map_err(listen_error)?;
                let file = SocketFile(path.clone());
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
                    .map_err(listen_error)?;
                socket.set_nonblocking(true).map_err(listen_error)?;
                let socket = UnixListener::from_std(socket).map_err(listen_error)?;
                Ok(Listener::Unix {
                    listener: socket,
                    _socket_file: file,
                })
            }
        }
    }

    /// Accept one connection and serve it on its own task, once fewer than the limit are open.
    async fn accept(
        &self,
        state: &Arc<State>,
        connections: &Arc<Semaphore>,
    ) -> std::io::Result<()> {
        let Ok(permit) = connections.clone().acquire_owned().await else {
            return Ok(());
        };
        match self {
            Listener::Unix { listener, .. } => {
                let (stream, _) = listener.accept().await?;
                tokio::spawn(serve_connection(stream, state.clone(), permit));
            }
            Listener::Tcp { listener, tls } => {
                let (stream, peer) = listener.accept().await?;
                tracing::debug!(%peer, "tcp connection");
                match tls {
                    None => {
                        tokio::spawn(serve_connection(stream, state.clone(), permit));
                    }
                    // The handshake runs on the connection's task, so a slow or refused
                    // client never holds up the next accept.
                    Some(acceptor) => {
                        tokio::spawn(serve_tls_connection(
                            acceptor.clone(),
                            stream,
                            peer,
                            state.clone(),
                            permit,
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// HTTP/1.1 with keep-alive and upgrades (the attach hijack) on one connection. A client
/// gets [`limits::read_timeout`] for each request's headers, counted from when the server is
/// ready for them (so an idle keep-alive connection is closed after it too); `permit` holds
/// its place among the open connections.
async fn serve_connection<S>(stream: S, state: Arc<State>, permit: OwnedSemaphorePermit)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(router::handle(state, req).await) }
    });
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits::read_timeout())
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
    drop(permit);
    if let Err(err) = served {
        // A client that drops a pending `/wait` (a detached run) ends up here: not a fault.
        tracing::debug!("connection ended: {err}");
    }
}

/// The TLS handshake (refusing a client without a certificate the CA signed, when verifying),
/// then HTTP over it.
async fn serve_tls_connection(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<State>,
    permit: OwnedSemaphorePermit,
) {
    match tokio::time::timeout(HANDSHAKE_LIMIT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => serve_connection(stream, state, permit).await,
        // A port probe that connects and closes is no refused client.
        Ok(Err(err)) if err.kind() == std::io::ErrorKind::UnexpectedEof => {
            tracing::debug!(%peer, "connection closed before the TLS handshake: {err}")
        }
        Ok(Err(err)) => tracing::warn!(%peer, "TLS handshake refused: {err}"),
        Err(_) => tracing::warn!(%peer, "TLS handshake not finished in time"),
    }
}

/// The socket file, removed when the listener goes.
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        tracing::debug!(path = %self.0.display(), "remove socket");
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A socket file left by a daemon that died is removed; one with a live daemon behind it is not.
fn remove_stale_socket(path: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(metadata) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !metadata.file_type().is_socket() {
        return Err(Error::Listen {
            address: format!("unix://{}", path.display()),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way",
            ),
        });
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(Error::InUse(path.to_path_buf()));
    }
    tracing::debug!(path = %path.display(), "remove stale socket");
    std::fs::remove_file(path).map_err(|source| Error::Listen {
        address: format!("unix://{}", path.display()),
        source,
    })
}
