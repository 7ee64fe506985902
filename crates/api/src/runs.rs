//! Runs of containers as this server sees them: attaches and waits that arrive before `/start`
//! (the CLI attaches and waits first, then starts), the start itself, and the fan-out of one
//! run's events to those clients.
//!
//! A start registers its client with the monitor before the command runs, so output and the
//! exit code of even the shortest command reach everyone who asked before `/start`. Waits that
//! come while such a run is live subscribe to its outcome; attaches to a running container, and
//! anything about a container started elsewhere (`dock start`), go through its attach socket.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use runtime::attach::{Event, Hello};
use tokio::sync::{mpsc, watch};

use crate::error::{ApiError, ApiResult};
use crate::monitor::{self, Commands, Events};
use crate::stream::StreamKind;

/// How a run ended: the exit code, or why it never ran.
pub type Outcome = Result<i32, String>;

/// A piece of a container's output.
pub type Chunk = (StreamKind, Bytes);

/// One attached client's pipes as the run side holds them.
pub struct AttachPipes {
    pub stdout: bool,
    pub stderr: bool,
    pub output: mpsc::Sender<Chunk>,
    /// Present when the client sends stdin; its end means "close the container's stdin".
    pub stdin: Option<mpsc::Receiver<Bytes>>,
}

/// Clients waiting for a container's next run, or following its live run.
struct Entry {
    outcome: watch::Sender<Option<Outcome>>,
    attaches: Vec<AttachPipes>,
    /// A run started by this server is live: new attaches go to its monitor directly.
    live: bool,
    /// A start is under way: a second one is told the container runs already.
    starting: bool,
    /// Which start made this entry live: the fan-out of an earlier run must not remove the
    /// entry of a later one.
    run: u64,
}

impl Entry {
    fn new() -> Entry {
        Entry {
            outcome: watch::channel(None).0,
            attaches: Vec::new(),
            live: false,
            starting: false,
            run: 0,
        }
    }
}

/// How long a start waits for the previous run's fan-out to deliver that run's end: only a
/// client that stopped reading its output can hold it up, and it is given up on after this.
const PREVIOUS_RUN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

impl Default for Runs {
    fn default() -> Runs {
        Runs {
            entries: Mutex::default(),
            runs_started: Default::default(),
            console_sizes: Mutex::default(),
            previous_run_grace: PREVIOUS_RUN_GRACE,
        }
    }
}

pub struct Runs {
    entries: Mutex<HashMap<String, Entry>>,
    /// Numbers the starts made here.
    runs_started: std::sync::atomic::AtomicU64,
    /// Terminal sizes asked for at create (`HostConfig.ConsoleSize`), used at the first start.
    console_sizes: Mutex<HashMap<String, (u16, u16)>>,
    previous_run_grace: std::time::Duration,
}

/// Where a client stands towards a container's runs.
pub enum Joined {
    /// Subscribed to the next or live run started here.
    Run(watch::Receiver<Option<Outcome>>),
    /// Nothing started here; the container is running on its own monitor.
    Elsewhere,
    /// Not running and nothing pending: the caller decides.
    Idle,
}

impl Runs {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_console_size(&self, id: &str, rows: u16, cols: u16) {
        if rows > 0 && cols > 0 {
            let mut sizes = self.console_sizes.lock().unwrap_or_else(|e| e.into_inner());
            sizes.insert(id.to_string(), (rows, cols));
        }
    }

    /// Subscribe to the outcome of `id`'s live run here, or of its next run when `running`
    /// is false and `next` asked for; `running` is read under the same lock a start takes.
    pub fn join_wait(
        &self,
        id: &str,
        running: impl FnOnce() -> ApiResult<bool>,
        next: bool,
    ) -> ApiResult<Joined> {
        let mut entries = self.lock();
        if let Some(entry) = entries.get(id).filter(|entry| entry.live || next) {
            return Ok(Joined::Run(entry.outcome.subscribe()));
        }
        if running()? {
            return Ok(Joined::Elsewhere);
        }
        if !next {
            return Ok(Joined::Idle);
        }
        let entry = entries.entry(id.to_string()).or_insert_with(Entry::new);
        Ok(Joined::Run(entry.outcome.subscribe()))
    }

    /// Attach `pipes` to the next run; given back when the container runs (started here or
    /// elsewhere), to be attached to its monitor directly.
    pub fn join_attach(
        &self,
        id: &str,
        pipes: AttachPipes,
        running: impl FnOnce() -> ApiResult<bool>,
    ) -> ApiResult<Option<AttachPipes>> {
        let mut entries = self.lock();
        if let Some(entry) = entries.get_mut(id) {
            if entry.live {
                return Ok(Some(pipes));
            }
            entry.attaches.push(pipes);
            return Ok(None);
        }
        if running()? {
            return Ok(Some(pipes));
        }
        entries
            .entry(id.to_string())
            .or_insert_with(Entry::new)
            .attaches
            .push(pipes);
        Ok(None)
    }

    /// Forget everything pending for a removed container: its clients see their streams end.
    pub fn forget(&self, id: &str) {
        if let Some(entry) = self.lock().remove(id) {
            entry
                .outcome
                .send_replace(Some(Err(format!("container {id} was removed"))));
        }
        let mut sizes = self.console_sizes.lock().unwrap_or_else(|e| e.into_inner());
        sizes.remove(id);
    }

    /// Start `id` with `start` (the blocking runtime call, given the hello to register with)
    /// and hand the run to everyone pending. Must be called from a blocking context.
    pub fn start_blocking(
        self: &Arc<Self>,
        id: &str,
        handle: &tokio::runtime::Handle,
        running: impl Fn() -> ApiResult<bool>,
        start: impl FnOnce(Hello) -> Result<std::os::unix::net::UnixStream, ApiError>,
    ) -> ApiResult<()> {
        let (attaches, outcome, run) = loop {
            let (mut previous, previous_run) = {
                let mut entries = self.lock();
                let entry = entries.entry(id.to_string()).or_insert_with(Entry::new);
                if entry.starting {
                    return Err(ApiError::not_modified());
                }
                if !entry.live {
                    let run = self
                        .runs_started
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                        + 1;
                    entry.live = true;
                    entry.starting = true;
                    entry.run = run;
                    // Clients that left before the start get nothing, above all not the stdin.
                    entry.attaches.retain(|pipes| !pipes.output.is_closed());
                    break (
                        std::mem::take(&mut entry.attaches),
                        entry.outcome.clone(),
                        run,
                    );
                }
                (entry.outcome.subscribe(), entry.run)
            };
            // Read without the lock: it goes to the disk.
            if running()? {
                return Err(ApiError::not_modified());
            }
            // The previous run ended (a stop or kill returns once the exit is recorded) but
            // its fan-out has not seen the exit frame yet: let it hand its outcome to its
            // clients first, then this run gets an entry of its own.
            let delivered = handle.block_on(tokio::time::timeout(
                self.previous_run_grace,
                previous.wait_for(Option::is_some),
            ));
            if delivered.is_err() {
                tracing::debug!(%id, "the previous run's clients stopped reading; starting anyway");
                let mut entries = self.lock();
                if let Some(entry) = entries.get(id).filter(|e| e.run == previous_run && e.live) {
                    entry.outcome.send_replace(Some(Err(format!(
                        "container {id} was started again before its output was delivered"
                    ))));
                    entries.remove(id);
                }
            }
        };
        let (rows, cols) = {
            let sizes = self.console_sizes.lock().unwrap_or_else(|e| e.into_inner());
            sizes.get(id).copied().unwrap_or((0, 0))
        };
        let hello = Hello {
            stdout: attaches.iter().any(|a| a.stdout),
            stderr: attaches.iter().any(|a| a.stderr),
            stdin: attaches.iter().any(|a| a.stdin.is_some()),
            rows,
            cols,
            deletes_removed: false,
        };
        let stream = match start(hello) {
            Ok(stream) => stream,
            Err(err) => {
                let mut entries = self.lock();
                if err.status == hyper::StatusCode::NOT_MODIFIED {
                    // Running already (started elsewhere): the pending clients stay pending.
                    if let Some(entry) = entries.get_mut(id) {
                        entry.live = false;
                        entry.starting = false;
                        entry.attaches.extend(attaches);
                    }
                } else {
                    // A run that cannot start closes its attaches and tells its waiters why.
                    entries.remove(id);
                    outcome.send_replace(Some(Err(err.message.clone())));
                }
                return Err(err);
            }
        };
        let _guard = handle.enter();
        let (events, commands) = match monitor::from_std(stream) {
            Ok(halves) => halves,
            Err(e) => {
                let message = format!("watch container {id}: {e}");
                self.lock().remove(id);
                outcome.send_replace(Some(Err(message.clone())));
                return Err(ApiError::internal(message));
            }
        };
        if let Some(entry) = self.lock().get_mut(id) {
            entry.starting = false;
        }
        let runs = self.clone();
        let id = id.to_string();
        handle.spawn(async move {
            let code = fan_out(events, commands, attaches, false).await;
            let mut entries = runs.lock();
            if entries.get(&id).is_some_and(|entry| entry.run == run) {
                entries.remove(&id);
            }
            // Still under the lock: a start waiting for this finds the entry gone.
            outcome.send_replace(Some(
                code.ok_or_else(|| format!("the monitor of container {id} went away")),
            ));
        });
        Ok(())
    }
}

/// Deliver one monitor connection's events to its attached clients and feed stdin from the
/// one that sends it. The exit code, or `None` if the monitor vanished (or, with
/// `until_detached`, once every client left).
pub async fn fan_out(
    mut events: Events,
    commands: Commands,
    attaches: Vec<AttachPipes>,
    until_detached: bool,
) -> Option<i32> {
    let mut outputs: Vec<(bool, bool, mpsc::Sender<Chunk>)> = Vec::new();
    let mut stdin_source = None;
    for pipes in attaches {
        if stdin_source.is_none() {
            stdin_source = pipes.stdin;
        }
        outputs.push((pipes.stdout, pipes.stderr, pipes.output));
    }
    let feeder = tokio::spawn(feed_stdin(commands, stdin_source));
    let code = loop {
        let (kind, data) = match events.next().await {
            Ok(Some(Event::Stdout(data))) => (StreamKind::Stdout, data),
            Ok(Some(Event::Stderr(data))) => (StreamKind::Stderr, data),
            Ok(Some(Event::Exit(code))) => break Some(code),
            Ok(Some(_)) => continue,
            Ok(None) => break None,
            Err(err) => {
                tracing::debug!("monitor stream failed: {err}");
                break None;
            }
        };
        let data = Bytes::from(data);
        let mut gone = Vec::new();
        for (index, (stdout, stderr, output)) in outputs.iter().enumerate() {
            let wanted = match kind {
                StreamKind::Stdout => *stdout,
                _ => *stderr,
            };
            // A detached client is dropped; the container keeps running.
            if wanted && output.send((kind, data.clone())).await.is_err() {
                gone.push(index);
            }
        }
        for index in gone.into_iter().rev() {
            outputs.remove(index);
        }
        if until_detached && outputs.is_empty() {
            break None;
        }
    };
    feeder.abort();
    code
}

/// Client stdin to the monitor; its end closes the container's stdin.
async fn feed_stdin(mut commands: Commands, source: Option<mpsc::Receiver<Bytes>>) {
    let Some(mut source) = source else {
        // Keep the connection's write half open: closing it is not "stdin closed".
        std::future::pending::<()>().await;
        return;
    };
    while let Some(data) = source.recv().await {
        if let Err(err) = commands.stdin(&data).await {
            tracing::debug!("container stdin: {err}");
            return;
        }
    }
    if let Err(err) = commands.close_stdin().await {
        tracing::debug!("close container stdin: {err}");
    }
    std::future::pending::<()>().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime::attach::Kind;
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Starts container "c1", which the runtime says is not running, on `stream` (the
    /// monitor's end a start hands back), from a blocking thread as the server does.
    async fn start_stopped(runs: &Arc<Runs>, stream: UnixStream) -> ApiResult<()> {
        let (r, h) = (runs.clone(), tokio::runtime::Handle::current());
        tokio::task::spawn_blocking(move || {
            r.start_blocking("c1", &h, || Ok(false), |_| Ok(stream))
        })
        .await
        .unwrap()
    }

    /// A wait on the live run of "c1".
    fn join_live(runs: &Runs) -> watch::Receiver<Option<Outcome>> {
        match runs.join_wait("c1", || Ok(false), false).unwrap() {
            Joined::Run(outcome) => outcome,
            _ => panic!("the live run should be joined"),
        }
    }

    fn exit_frame(code: i32) -> Vec<u8> {
        runtime::attach::encode(Kind::Exit, &code.to_be_bytes())
    }

    /// A restart's start comes right after its stop saw the exit, possibly before this
    /// server's fan-out of the old run did: it must start the container, not answer 304.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_start_after_the_run_ended_waits_for_its_fan_out_and_starts() {
        let runs = Arc::new(Runs::default());
        let handle = tokio::runtime::Handle::current();
        let (first_ours, first_monitor) = UnixStream::pair().unwrap();
        start_stopped(&runs, first_ours).await.unwrap();
        let mut first_outcome = join_live(&runs);

        // The container has exited (running() is false) but the old run's exit frame is
        // still on its way: the second start waits for it instead of calling it a 304. The
        // frame is sent only once the second start looked at the container.
        let started = Arc::new(AtomicBool::new(false));
        let (second_ours, _second_monitor) = UnixStream::pair().unwrap();
        let (r, h, s) = (runs.clone(), handle.clone(), started.clone());
        let first_monitor = std::sync::Mutex::new(first_monitor);
        let second = tokio::task::spawn_blocking(move || {
            r.start_blocking(
                "c1",
                &h,
                || {
                    let mut monitor = first_monitor.lock().unwrap();
                    monitor.write_all(&exit_frame(7)).unwrap();
                    Ok(false)
                },
                |_| {
                    s.store(true, Ordering::SeqCst);
                    Ok(second_ours)
                },
            )
        });
        second.await.unwrap().unwrap();
        assert!(started.load(Ordering::SeqCst));
        first_outcome.wait_for(Option::is_some).await.unwrap();
        assert_eq!(*first_outcome.borrow(), Some(Ok(7)));
        // The new run is live in an entry of its own.
        assert!(matches!(
            runs.join_wait("c1", || Ok(true), false).unwrap(),
            Joined::Run(_)
        ));
    }

    /// A previous run whose client stopped reading cannot hold a start up for ever: after the
    /// grace period its waiters are told and the new run starts.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stuck_previous_run_is_given_up_after_its_grace() {
        let runs = Arc::new(Runs {
            previous_run_grace: std::time::Duration::from_millis(50),
            ..Runs::default()
        });
        // A client whose output channel is full and never read: the fan-out blocks on it.
        let (output, _never_read) = mpsc::channel(1);
        runs.lock()
            .entry("c1".into())
            .or_insert_with(Entry::new)
            .attaches
            .push(AttachPipes {
                stdout: true,
                stderr: false,
                output,
                stdin: None,
            });
        let (first_ours, mut first_monitor) = UnixStream::pair().unwrap();
        start_stopped(&runs, first_ours).await.unwrap();
        let mut first_outcome = join_live(&runs);
        for chunk in [b"a", b"b", b"c"] {
            first_monitor
                .write_all(&runtime::attach::encode(Kind::Stdout, chunk))
                .unwrap();
        }
        first_monitor.write_all(&exit_frame(0)).unwrap();

        let (second_ours, _second_monitor) = UnixStream::pair().unwrap();
        start_stopped(&runs, second_ours).await.unwrap();
        first_outcome.wait_for(Option::is_some).await.unwrap();
        let told = first_outcome.borrow().clone();
        assert!(
            matches!(&told, Some(Err(m)) if m.contains("started again")),
            "{told:?}"
        );
    }

    /// A start while this server's run is running is a 304 and does not call the runtime.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_start_while_the_run_is_live_is_not_modified() {
        let runs = Arc::new(Runs::default());
        let handle = tokio::runtime::Handle::current();
        let (ours, _monitor) = UnixStream::pair().unwrap();
        start_stopped(&runs, ours).await.unwrap();
        let (r, h) = (runs.clone(), handle.clone());
        let err = tokio::task::spawn_blocking(move || {
            r.start_blocking("c1", &h, || Ok(true), |_| panic!("started twice"))
        })
        .await
        .unwrap()
        .unwrap_err();
        assert_eq!(err.status, hyper::StatusCode::NOT_MODIFIED);
    }
}
