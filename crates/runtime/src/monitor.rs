//! The monitor: one small, single-threaded process per running container.
//!
//! Started by [`crate::Runtime::start`] as `dock --root ROOT __monitor ID` (setsid, stdio on
//! /dev/null) with the starter's socket on fd 3, whose hello is already waiting there. It claims
//! the container in its config, serves the attach socket, mounts the rootfs, creates the cgroup,
//! spawns the container's init (sysinit), answers the starter `Started` or `Error`, then owns the
//! container's stdio: output goes to the json log and to every attached client, client stdin to
//! the container. When the init exits it releases the cgroup and the rootfs, records the exit in
//! config.json, sends every client the exit frame, and exits itself.
//!
//! The starter is registered as a client before the command runs, so a foreground `dock run`
//! never misses early output.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use chrono::Utc;
use sysinit::netns::NetnsAhead;

use crate::attach::{self, FrameBuffer, Hello, Kind};
use crate::cgroup::{Cgroup, Limits};
use crate::container::{self, Container, Lock, NetworkSettings, ProcessRef};
use crate::exitrec::{self, ExitRecord};
use crate::logs::LogWriter;
use crate::queue::OutQueue;
use crate::{overlay, procs, Error, Runtime, STARTER_FD};

/// Read size for container output; the monitor's steady state stays small.
const CHUNK: usize = 16 * 1024;
/// Stop taking stdin from clients while this much waits for the container; their other
/// frames (signals, resizes) are still read from every other client.
const STDIN_HIGH_WATER: usize = 64 * 1024;
/// Output a client may have waiting before it counts as fallen behind and is dropped.
pub const CLIENT_QUEUE_LIMIT: usize = 1 << 20;
/// How long the exit frame may take to reach clients that are still reading.
const EXIT_FLUSH_LIMIT: std::time::Duration = std::time::Duration::from_secs(3);
/// A round of the exit flush in which no client took anything ends it.
const EXIT_FLUSH_STALL_MS: libc::c_int = 300;

/// The monitor's command line (after the program name): `--root ROOT [--debug] __monitor ID`.
/// [`Runtime::start`] writes it and the `dock` binary reads it back with [`Args::parse`]
/// before anything else, since every container start pays for the monitor's startup and a
/// full command-line parse is a good part of that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub root: PathBuf,
    pub debug: bool,
    pub id: String,
}

impl Args {
    pub fn to_command_line(&self) -> Vec<OsString> {
        let mut line = vec!["--root".into(), self.root.clone().into_os_string()];
        if self.debug {
            line.push("--debug".into());
        }
        line.push(crate::MONITOR_COMMAND.into());
        line.push(self.id.clone().into());
        line
    }

    /// The arguments after the program name, if they are exactly a monitor's.
    pub fn parse(line: &[OsString]) -> Option<Args> {
        let [root_flag, root, rest @ ..] = line else {
            return None;
        };
        let (debug, rest) = match rest {
            [flag, rest @ ..] if flag == "--debug" => (true, rest),
            _ => (false, rest),
        };
        match rest {
            [command, id] if root_flag == "--root" && command == crate::MONITOR_COMMAND => {
                Some(Args {
                    root: PathBuf::from(root),
                    debug,
                    id: id.to_str()?.to_string(),
                })
            }
            _ => None,
        }
    }
}

/// Runs the monitor role; the process exit status.
pub fn main(args: &Args) -> i32 {
    let (root, id) = (args.root.as_path(), args.id.as_str());
    // Nothing but stdio and the starter socket belongs to us.
    // SAFETY: closes descriptors this fresh process does not use.
    unsafe { libc::close_range((STARTER_FD + 1) as u32, u32::MAX, 0) };
    // Named for `ps`, `top` and `ss` (which show the host ports it holds), not "exe".
    // SAFETY: PR_SET_NAME with a nul-terminated name of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"dock-monitor".as_ptr()) };
    // SAFETY: the starter handed us fd 3; we own it from here.
    let mut starter = unsafe { UnixStream::from_raw_fd(STARTER_FD) };
    // Made while we wait for the hello (see start_run).
    let netns = start_netns(id);
    // The hello comes once the container exists: a starter may start us ahead of it.
    let hello = match attach::read_frame(&mut starter) {
        Ok(Some((Kind::Hello, data))) => Hello::decode(&data).unwrap_or_default(),
        // The starter gave up before the start (a `run` whose create failed), or said
        // something else first: nothing here is ours to touch. (A starter may have been
        // started for a root that is not to be used: `Starter::ahead`.)
        _ => return 0,
    };
    if args.debug {
        log_to(
            &container::Paths::new(&root.join("containers"), id)
                .dir
                .join("monitor.log"),
        );
    }
    let rt = match Runtime::open(root) {
        Ok(rt) => rt,
        Err(e) => {
            report_error(&mut starter, 125, &e.to_string());
            // The starter's connection closes with this process (see `finish`).
            std::process::exit(1);
        }
    };
    match Session::launch(rt, id, hello, netns) {
        Ok(mut session) => {
            let pid = session.init.to_be_bytes();
            let mut clients = Vec::new();
            if starter
                .write_all(&attach::encode(Kind::Started, &pid))
                .is_ok()
                && starter.set_nonblocking(true).is_ok()
            {
                let mut conn = Conn::new(starter);
                conn.hello = Some(hello);
                clients.push(conn);
            }
            session.clients = clients;
            // A starter that sends stdin counts even when it is gone already: then the
            // container's stdin closes right away.
            session.stdin_clients = usize::from(hello.stdin);
            session.drop_dead_clients();
            // Each run, and the runs its restart policy adds.
            loop {
                session.serve();
                if !session.restart() {
                    break;
                }
            }
            session.finish();
            // Last: our clients see our end as soon as this process is gone.
            netmgr::hand_off_netfilter_socket();
            std::process::exit(0)
        }
        Err((code, message)) => {
            report_error(&mut starter, code, &message);
            std::process::exit(1)
        }
    }
}

fn report_error(starter: &mut UnixStream, code: u8, message: &str) {
    let mut data = vec![code];
    data.extend_from_slice(message.as_bytes());
    let _ = starter.write_all(&attach::encode(Kind::Error, &data));
}

struct Conn {
    /// Non-blocking: the monitor never waits for a client.
    stream: UnixStream,
    hello: Option<Hello>,
    input: FrameBuffer,
    /// Frames the client has not taken yet, bounded (see [`CLIENT_QUEUE_LIMIT`]).
    output: OutQueue,
    /// Its next frame is stdin the container has no room for: not read until there is.
    parked: bool,
    /// Sent stdin (said so in its hello, or sent a stdin frame).
    sends_stdin: bool,
    /// Failed or closed; removed after the current poll round, so indices stay valid.
    dead: bool,
    /// Has been sent the exit frame.
    exit_sent: bool,
}

impl Conn {
    fn new(stream: UnixStream) -> Conn {
        Conn {
            stream,
            hello: None,
            input: FrameBuffer::default(),
            output: OutQueue::new(CLIENT_QUEUE_LIMIT),
            parked: false,
            sends_stdin: false,
            dead: false,
            exit_sent: false,
        }
    }

    /// Queues a control frame and writes what the client takes now.
    fn send_control(&mut self, frame: &[u8]) {
        self.output.push_control(frame);
        self.flush();
    }

    fn flush(&mut self) {
        if !self.dead && self.output.flush(&self.stream).is_err() {
            self.dead = true;
        }
    }

    fn is_stdin_client(&self) -> bool {
        !self.dead && (self.sends_stdin || self.hello.is_some_and(|h| h.stdin))
    }
}

struct Session {
    rt: Runtime,
    id: String,
    init: i32,
    pidfd: OwnedFd,
    /// Container stdout (pipe), or the pty master with a tty.
    out: Option<File>,
    err: Option<File>,
    tty: Option<OwnedFd>,
    stdin: Option<File>,
    stdin_pending: Vec<u8>,
    stdin_close: bool,
    listener: UnixListener,
    clients: Vec<Conn>,
    /// Clients that send stdin; when the last of them goes, the container's stdin closes.
    stdin_clients: usize,
    log: LogWriter,
    /// The first failure to write the log, for `inspect` (State.Error) once the run ends.
    log_error: Option<String>,
    exit: Option<i32>,
    cgroup: Cgroup,
    /// `--rm`: the container leaves the store when it exits.
    auto_remove: bool,
    /// The bridge network the container is connected to; None with `--network none`.
    network: Option<netmgr::Network>,
    // -- restart policy --
    policy: crate::RestartPolicy,
    /// `StopSignal`, when the container has one.
    stop_signal: Option<i32>,
    /// A client's kill or stop ended (or ends) this run: no restart (Docker's ExitOnNext).
    exit_on_next: bool,
    run_started: std::time::Instant,
    /// The last restart's backoff.
    delay: Option<std::time::Duration>,
    /// Terminal size for the next runs.
    hello: Hello,
    /// The last run's cgroup, network and rootfs are released already.
    released: bool,
    /// What went wrong releasing or relaunching, for the exit record.
    problems: Vec<String>,
    last_oom: bool,
}

type LaunchError = (u8, String);

impl Session {
    fn launch(
        rt: Runtime,
        id: &str,
        hello: Hello,
        netns: Option<NetnsAhead>,
    ) -> Result<Session, LaunchError> {
        let runtime_err = |e: Error| (125u8, e.to_string());
        let paths = rt.paths(id);
        // Reconciles a ghost first; then claim the container under its lock.
        let loaded = rt.load(id).map_err(runtime_err)?;
        let (mut c, listener) = {
            let _lock = Lock::acquire(&paths.lock()).map_err(runtime_err)?;
            let mut c = container::load(&paths.config()).map_err(runtime_err)?;
            if c.state.running {
                return Err((125, Error::AlreadyRunning(loaded.name).to_string()));
            }
            // The socket exists before the state says running, so a client that finds no
            // socket can trust the state it reads next.
            let socket = paths.socket();
            let _ = fs::remove_file(&socket);
            let listener = attach::bind(&socket).map_err(|e| runtime_err(Error::io(&socket, e)))?;
            listener
                .set_nonblocking(true)
                .map_err(|e| runtime_err(Error::io(&socket, e)))?;
            let me = own_process();
            // Where the exit will be recorded, allocated now: a full disk fails this start,
            // never the record of its end.
            let record = paths.exit_record();
            if let Err(e) = exitrec::prepare(&record, me) {
                let _ = fs::remove_file(&socket);
                return Err(runtime_err(Error::io(&record, e)));
            }
            c.state.running = true;
            c.state.pid = 0;
            c.state.oom_killed = false;
            c.state.error = String::new();
            c.monitor = Some(me);
            c.init = None;
            c.state.restarting = false;
            c.monitor_lost = false;
            if let Err(e) = container::save(&paths.config(), &c) {
                let _ = fs::remove_file(&socket);
                return Err(runtime_err(e));
            }
            (c, listener)
        };
        tracing::debug!(%id, "monitor claimed the container");

        let hello_for_runs = Hello {
            stdin: false,
            ..hello
        };
        match start_run(&rt, id, &mut c, hello, netns) {
            Ok(run) => Ok(Session {
                id: id.to_string(),
                init: run.init,
                pidfd: run.pidfd,
                out: run.out,
                err: run.err,
                tty: run.tty,
                stdin: run.stdin,
                stdin_pending: Vec::new(),
                stdin_close: false,
                listener,
                clients: Vec::new(),
                stdin_clients: 0,
                log: run.log,
                log_error: None,
                exit: None,
                cgroup: run.cgroup,
                auto_remove: c.auto_remove,
                network: run.network,
                policy: c.host_config.restart_policy.clone(),
                stop_signal: (!c.config.stop_signal.is_empty())
                    .then(|| procs::signal_number(&c.config.stop_signal))
                    .flatten(),
                exit_on_next: false,
                run_started: std::time::Instant::now(),
                delay: None,
                hello: hello_for_runs,
                released: false,
                problems: Vec::new(),
                last_oom: false,
                rt,
            }),
            Err((code, message)) => {
                tracing::debug!(%id, code, %message, "container failed to start");
                if let Some(dir) = record_exit(&rt, id, code as i32, false, &[], false) {
                    crate::delete_removed(&dir);
                }
                let _ = fs::remove_file(paths.socket());
                Err((code, message))
            }
        }
    }
}

/// What one run of the container holds.
struct Run {
    init: i32,
    pidfd: OwnedFd,
    out: Option<File>,
    err: Option<File>,
    tty: Option<OwnedFd>,
    stdin: Option<File>,
    log: LogWriter,
    cgroup: Cgroup,
    network: Option<netmgr::Network>,
}

/// Mounts the rootfs, creates the cgroup, spawns the init and connects the network for one run
/// of claimed container `c`, and records it as started; on failure releases what it took.
///
/// The container's network namespace (unless it has the host's) is made on a thread while
/// the rootfs is mounted and the cgroup created: `netns` when the caller started that thread
/// already.
fn start_run(
    rt: &Runtime,
    id: &str,
    c: &mut Container,
    hello: Hello,
    netns: Option<NetnsAhead>,
) -> Result<Run, LaunchError> {
    let runtime_err = |e: Error| (125u8, e.to_string());
    let paths = rt.paths(id);
    {
        let cgroup_parent = rt.cgroup_parent();
        let mut cgroup: Option<Cgroup> = None;
        let mut network: Option<netmgr::Network> = None;
        let result = (|| -> Result<Run, LaunchError> {
            let host_network = c.host_config.network_mode == "host";
            let netns_ahead = match netns {
                _ if host_network => None,
                Some(ahead) => Some(ahead),
                None => start_netns(id),
            };
            let lowers = rt.lowers(c).map_err(runtime_err)?;
            let rootfs = paths.rootfs();
            if overlay::is_mounted(&rootfs) {
                overlay::unmount(&rootfs).map_err(runtime_err)?;
            }
            let sync = if c.auto_remove {
                overlay::Sync::Volatile
            } else {
                overlay::Sync::Durable
            };
            overlay::mount(&lowers, &paths.upper(), &paths.work(), &rootfs, sync)
                .map_err(runtime_err)?;

            let limits = Limits {
                memory: (c.config.memory > 0).then_some(c.config.memory),
                memory_swap: (c.config.memory_swap != 0).then_some(c.config.memory_swap),
                devices: if c.host_config.privileged {
                    crate::devices::DeviceAccess::All
                } else {
                    crate::devices::DeviceAccess::Default
                },
                pids: c.host_config.pids_limit.filter(|n| *n > 0),
                nano_cpus: (c.host_config.nano_cpus > 0).then_some(c.host_config.nano_cpus),
                cpu_shares: (c.host_config.cpu_shares > 0).then_some(c.host_config.cpu_shares),
            };
            tracing::debug!(%id, parent = %cgroup_parent, ?limits, "creating cgroup");
            // The v1 part is made in the spawn hook, while the init builds its root.
            let creating = Cgroup::begin(&cgroup_parent, id, &limits)
                .map_err(|e| runtime_err(Error::Cgroup(e.to_string())))?;
            let cg = cgroup.insert(creating.cgroup().clone());

            let log = LogWriter::open(&paths.log(id)).map_err(runtime_err)?;
            let io_err = |what: &str, e: io::Error| (125u8, format!("{what}: {e}"));
            let mut stdio = Stdio::default();
            // With a tty, sysinit opens the terminal in the container's own devpts (so `tty`
            // names it) and hands back its master, wired up once the command runs.
            let child_stdio = if c.config.tty {
                sysinit::Stdio::Terminal {
                    rows: hello.rows,
                    cols: hello.cols,
                }
            } else {
                let (out_r, out_w) = pipe().map_err(|e| io_err("stdout pipe", e))?;
                let (err_r, err_w) = pipe().map_err(|e| io_err("stderr pipe", e))?;
                stdio.out = Some(File::from(out_r));
                stdio.err = Some(File::from(err_r));
                let child_in = if c.config.open_stdin {
                    let (in_r, in_w) = pipe().map_err(|e| io_err("stdin pipe", e))?;
                    set_nonblocking(in_w.as_raw_fd()).map_err(|e| io_err("stdin pipe", e))?;
                    stdio.stdin = Some(File::from(in_w));
                    in_r
                } else {
                    File::open("/dev/null")
                        .map_err(|e| io_err("open /dev/null", e))?
                        .into()
                };
                sysinit::Stdio::Fds {
                    stdin: child_in,
                    stdout: out_w,
                    stderr: err_w,
                }
            };

            // The container's /etc files and its volumes, binds and tmpfs (empty volumes
            // seeded from the image now that the rootfs is mounted).
            let etc_dir = paths.etc_dir();
            crate::etcfiles::write_all(&etc_dir, &c.config, &c.host_config).map_err(runtime_err)?;
            let mounts = crate::volumes::sysinit_mounts(&c.mounts, &etc_dir, &rootfs)
                .map_err(|e| runtime_err(e.into()))?;
            let spec = sysinit::InitSpec {
                rootfs: rootfs.clone(),
                args: std::iter::once(c.path.clone())
                    .chain(c.args.iter().cloned())
                    .collect(),
                env: crate::container_env(&c.config),
                user: c.config.user.clone(),
                hostname: c.config.hostname.clone(),
                workdir: c.config.working_dir.clone(),
                stdio: child_stdio,
                mounts,
                // The init joins its cgroup itself (see Cgroup::joining).
                cgroups: cg
                    .joining()
                    .map_err(|e| runtime_err(Error::Cgroup(e.to_string())))?,
                netns: netns_ahead.and_then(|ahead| {
                    ahead
                        .get()
                        .inspect_err(|e| tracing::debug!(%id, error = %e, "no netns made ahead: the clone makes it"))
                        .ok()
                }),
                security: crate::security::for_container(rt.root(), &c.host_config)
                    .map_err(|e| (125u8, e.to_string()))?,
                run: sysinit::RunFlags {
                    init: c.host_config.init.unwrap_or(false),
                    readonly_rootfs: c.host_config.readonly_rootfs,
                    host_network,
                },
            };
            let port_specs =
                crate::imageconfig::publish_specs(&c.config, c.host_config.publish_all_ports)
                    .iter()
                    .map(|s| s.parse::<netmgr::PortSpec>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| (125u8, e.to_string()))?;
            let mut endpoint: Option<netmgr::Endpoint> = None;
            let (net_slot, endpoint_slot, rt_ref) = (&mut network, &mut endpoint, &rt);
            let network_disabled = c.config.network_disabled;
            // A namespace made ahead has its lo up already.
            let lo_up = spec.netns.is_some();
            let (hostname, extra_hosts) = (&c.config.hostname, &c.host_config.extra_hosts);
            let spawned = sysinit::spawn(spec, |pid| {
                creating
                    .finish()
                    .map_err(|e| Error::Cgroup(e.to_string()).to_string())?;
                if host_network {
                    tracing::debug!(%id, pid = pid.as_raw(), "network host: nothing to connect");
                    return Ok(());
                }
                if network_disabled {
                    if lo_up {
                        return Ok(());
                    }
                    tracing::debug!(%id, pid = pid.as_raw(), "network none: bringing lo up");
                    return loopback_up(pid.as_raw())
                        .map_err(|e| format!("bring up lo of container {id}: {e}"));
                }
                let net = net_slot.insert(rt_ref.network().map_err(|e| e.to_string())?);
                tracing::debug!(%id, pid = pid.as_raw(), ?port_specs, "connecting the network");
                let ep = net
                    .connect(id, pid.as_raw(), &port_specs)
                    .map_err(|e| format!("connect container {id} to the network: {e}"))?;
                let (ip, gateway) = (Some(ep.ip.into()), Some(ep.gateway.into()));
                crate::etcfiles::write_hosts(&etc_dir, hostname, extra_hosts, ip, gateway)
                    .map_err(|e| e.to_string())?;
                *endpoint_slot = Some(ep);
                Ok(())
            });
            let started = spawned.map_err(|e| (e.exit_code() as u8, e.to_string()))?;
            let pid = started.pid.as_raw();
            tracing::debug!(%id, pid, "container started");
            if let Some(master) = started.terminal {
                let wired = (|| -> io::Result<()> {
                    let writer = master.try_clone()?;
                    set_nonblocking(writer.as_raw_fd())?;
                    stdio.stdin = Some(File::from(writer));
                    stdio.out = Some(File::from(master.try_clone()?));
                    stdio.tty = Some(master);
                    Ok(())
                })();
                if let Err(e) = wired {
                    // SAFETY: killing and reaping our own child that we cannot serve.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    let mut status = 0;
                    // SAFETY: reaping our own child.
                    unsafe { libc::waitpid(pid, &mut status, 0) };
                    return Err(io_err("container terminal", e));
                }
            }
            // SAFETY: pidfd_open of our own unreaped child.
            let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
            if pidfd < 0 {
                let e = io::Error::last_os_error();
                // SAFETY: killing our own child that we cannot watch.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                let mut status = 0;
                // SAFETY: reaping our own child.
                unsafe { libc::waitpid(pid, &mut status, 0) };
                return Err(io_err("pidfd_open", e));
            }
            // SAFETY: a fresh descriptor we own.
            let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };

            {
                let _lock = Lock::acquire(&paths.lock()).map_err(runtime_err)?;
                if let Ok(current) = container::load(&paths.config()) {
                    *c = current;
                }
                c.state.running = true;
                c.state.restarting = false;
                c.state.paused = false;
                c.state.pid = pid;
                c.state.exit_code = 0;
                c.state.started_at = Utc::now();
                c.network_settings = match (&endpoint, &network) {
                    (Some(ep), Some(net)) => {
                        NetworkSettings::from_endpoint(ep, &net.config().bridge)
                    }
                    _ => NetworkSettings::default(),
                };
                c.init = Some(ProcessRef {
                    pid,
                    start_time: procs::start_time(pid).unwrap_or_default(),
                });
                container::save(&paths.config(), c).map_err(runtime_err)?;
            }
            crate::events::container(rt.root(), c, "start");
            Ok(Run {
                init: pid,
                pidfd,
                out: stdio.out.take(),
                err: stdio.err.take(),
                tty: stdio.tty.take(),
                stdin: stdio.stdin.take(),
                log,
                cgroup: cgroup
                    .take()
                    .unwrap_or_else(|| Cgroup::open(&cgroup_parent, id)),
                network: network.take(),
            })
        })();
        if result.is_err() {
            if let Some(cg) = cgroup {
                let _ = cg.remove();
            }
            if let Some(net) = network {
                if let Err(e) = net.disconnect(id) {
                    tracing::warn!(%id, error = %e, "releasing the network failed");
                }
            }
            let _ = overlay::unmount(&paths.rootfs());
        }
        result
    }
}

impl Session {
    fn serve(&mut self) {
        let mut buf = vec![0u8; CHUNK];
        // Startup pages are released once the container has been quiet for a moment, so a
        // short-lived one (`run --rm IMG true`) exits without paying for it.
        let mut startup_pages = true;
        loop {
            if self.exit.is_some() && self.out.is_none() && self.err.is_none() {
                return;
            }
            let mut fds: Vec<libc::pollfd> = Vec::with_capacity(6 + self.clients.len());
            let mut slots: Vec<Slot> = Vec::with_capacity(fds.capacity());
            let mut add = |fd: RawFd, events: libc::c_short, slot: Slot| {
                fds.push(libc::pollfd {
                    fd,
                    events,
                    revents: 0,
                });
                slots.push(slot);
            };
            if self.exit.is_none() {
                add(self.pidfd.as_raw_fd(), libc::POLLIN, Slot::Exit);
            }
            add(self.listener.as_raw_fd(), libc::POLLIN, Slot::Listener);
            if let Some(out) = &self.out {
                add(out.as_raw_fd(), libc::POLLIN, Slot::Out);
            }
            if let Some(err) = &self.err {
                add(err.as_raw_fd(), libc::POLLIN, Slot::Err);
            }
            if let Some(stdin) = &self.stdin {
                if !self.stdin_pending.is_empty() {
                    add(stdin.as_raw_fd(), libc::POLLOUT, Slot::Stdin);
                }
            }
            // Every client is watched: a parked one only for hang-ups (poll reports those
            // unasked), the others for frames, and those with output waiting for room.
            for (i, conn) in self.clients.iter().enumerate() {
                let mut events = if conn.parked { 0 } else { libc::POLLIN };
                if !conn.output.is_empty() {
                    events |= libc::POLLOUT;
                }
                add(conn.stream.as_raw_fd(), events, Slot::Client(i));
            }
            let timeout = if startup_pages {
                IDLE_BEFORE_RELEASE_MS
            } else {
                -1
            };
            // SAFETY: poll over a live array of pollfd.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n == 0 {
                release_startup_pages();
                startup_pages = false;
                continue;
            }
            if n < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::debug!(error = %io::Error::last_os_error(), "poll failed");
                return;
            }
            for (pfd, slot) in fds.iter().zip(slots) {
                if pfd.revents == 0 {
                    continue;
                }
                match slot {
                    Slot::Exit => self.reap(),
                    Slot::Listener => self.accept(),
                    Slot::Out => self.pump_output(true, &mut buf),
                    Slot::Err => self.pump_output(false, &mut buf),
                    Slot::Stdin => self.flush_stdin(),
                    Slot::Client(i) => self.serve_client(i, pfd.revents, &mut buf),
                }
            }
            self.drop_dead_clients();
        }
    }

    fn serve_client(&mut self, i: usize, revents: libc::c_short, buf: &mut [u8]) {
        if self.clients[i].dead {
            return;
        }
        if revents & libc::POLLOUT != 0 {
            self.clients[i].flush();
        }
        if self.clients[i].parked {
            if revents & (libc::POLLHUP | libc::POLLERR) != 0 {
                self.clients[i].dead = true;
            }
            return;
        }
        if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
            && !self.read_client(i, buf)
        {
            self.clients[i].dead = true;
        }
    }

    fn count_stdin_clients(&self) -> usize {
        self.clients.iter().filter(|c| c.is_stdin_client()).count()
    }

    /// Forgets closed and dropped clients; when the last one that sent stdin is gone, the
    /// container's stdin closes (once what they sent reached it).
    fn drop_dead_clients(&mut self) {
        self.clients.retain(|conn| !conn.dead);
        let now = self.count_stdin_clients();
        if now == 0 && self.stdin_clients > 0 && self.stdin.is_some() {
            tracing::debug!(id = %self.id, "the last stdin client left");
            self.stdin_close = true;
            self.flush_stdin();
        }
        self.stdin_clients = now;
    }

    fn reap(&mut self) {
        let mut status = 0;
        // SAFETY: non-blocking wait for our own child.
        let ret = unsafe { libc::waitpid(self.init, &mut status, libc::WNOHANG) };
        if ret == self.init {
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                return;
            };
            tracing::debug!(id = %self.id, code, "container exited");
            self.exit = Some(code);
            self.stdin = None;
            self.stdin_pending.clear();
            self.unpark_clients();
        } else if ret < 0 {
            self.exit = Some(GONE_EXIT_CODE);
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_ok() {
                        self.clients.push(Conn::new(stream));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    fn pump_output(&mut self, stdout: bool, buf: &mut [u8]) {
        let source = if stdout { &mut self.out } else { &mut self.err };
        let Some(file) = source else { return };
        match file.read(buf) {
            Ok(0) => *source = None,
            Ok(n) => self.broadcast(stdout, n, buf),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            // A pty master reads EIO once the last slave closed: the end of output.
            Err(_) => *source = None,
        }
    }

    /// Output goes to the log, then into each client's queue: never waits for a client, and
    /// drops one whose queue is full.
    fn broadcast(&mut self, stdout: bool, n: usize, buf: &[u8]) {
        let data = &buf[..n];
        let (stream_name, kind) = if stdout {
            ("stdout", Kind::Stdout)
        } else {
            ("stderr", Kind::Stderr)
        };
        if let Err(e) = self.log.write(stream_name, data) {
            tracing::debug!(error = %e, "writing the container log failed");
            if self.log_error.is_none() {
                self.log_error = Some(format!("writing the log: {e}"));
            }
        }
        let frame = attach::encode(kind, data);
        for conn in self.clients.iter_mut().filter(|conn| !conn.dead) {
            let wants = conn
                .hello
                .is_some_and(|h| if stdout { h.stdout } else { h.stderr });
            if !wants {
                continue;
            }
            if conn.output.push_data(&frame) {
                conn.flush();
            } else {
                tracing::debug!(id = %self.id, "dropping a client that fell behind");
                conn.dead = true;
            }
        }
    }

    fn flush_stdin(&mut self) {
        let Some(stdin) = &mut self.stdin else {
            self.stdin_pending.clear();
            self.unpark_clients();
            return;
        };
        while !self.stdin_pending.is_empty() {
            match stdin.write(&self.stdin_pending) {
                Ok(n) => {
                    self.stdin_pending.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    // The container closed its stdin.
                    self.stdin = None;
                    self.stdin_pending.clear();
                    break;
                }
            }
        }
        if self.stdin.is_some()
            && self.stdin_pending.is_empty()
            && self.stdin_close
            && self.tty.is_none()
        {
            tracing::debug!(id = %self.id, "closing container stdin");
            self.stdin = None;
        }
        self.unpark_clients();
    }

    /// Once the stdin backlog has room again, parked clients' frames are taken up again.
    fn unpark_clients(&mut self) {
        if self.stdin.is_some() && self.stdin_pending.len() >= STDIN_HIGH_WATER {
            return;
        }
        for i in 0..self.clients.len() {
            if self.clients[i].parked && !self.clients[i].dead {
                self.clients[i].parked = false;
                if !self.handle_frames(i) {
                    self.clients[i].dead = true;
                }
                if self.stdin.is_some() && self.stdin_pending.len() >= STDIN_HIGH_WATER {
                    return;
                }
            }
        }
    }

    /// Reads and handles a client's frames; `false` when the client is gone.
    fn read_client(&mut self, i: usize, buf: &mut [u8]) -> bool {
        let n = match self.clients[i].stream.read(buf) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                ) =>
            {
                return true
            }
            Err(_) => return false,
        };
        self.clients[i].input.extend(&buf[..n]);
        self.handle_frames(i)
    }

    /// Handles the client's complete frames, up to one carrying stdin the container has no
    /// room for (the client is parked then); `false` when the client sent garbage.
    fn handle_frames(&mut self, i: usize) -> bool {
        loop {
            match self.clients[i].input.peek_kind() {
                Ok(Some(Kind::Stdin))
                    if self.stdin.is_some() && self.stdin_pending.len() >= STDIN_HIGH_WATER =>
                {
                    self.clients[i].parked = true;
                    return true;
                }
                Ok(Some(_)) => {}
                Ok(None) => return true,
                Err(_) => return false,
            }
            let frame = match self.clients[i].input.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return true,
                Err(_) => return false,
            };
            match frame {
                (Kind::Hello, data) => {
                    let hello = Hello::decode(&data).unwrap_or_default();
                    if hello.rows > 0 {
                        self.resize(hello.rows, hello.cols);
                    }
                    self.clients[i].hello = Some(hello);
                    if hello.stdin {
                        self.stdin_clients = self.count_stdin_clients();
                    }
                    let offset = self.log.len().to_be_bytes();
                    self.clients[i].send_control(&attach::encode(Kind::Attached, &offset));
                }
                (Kind::Stdin, data) => {
                    if !self.clients[i].sends_stdin {
                        self.clients[i].sends_stdin = true;
                        self.stdin_clients = self.count_stdin_clients();
                    }
                    if data.is_empty() {
                        self.stdin_close = true;
                    } else if self.stdin.is_some() {
                        self.stdin_pending.extend_from_slice(&data);
                    }
                    self.flush_stdin();
                }
                (Kind::Resize, data) if data.len() >= 4 => {
                    self.resize(
                        u16::from_be_bytes([data[0], data[1]]),
                        u16::from_be_bytes([data[2], data[3]]),
                    );
                }
                (Kind::Signal, data) if data.len() >= 4 => {
                    let signo = i32::from_be_bytes([data[0], data[1], data[2], data[3]]);
                    // As Docker's kill: SIGKILL, or the stop signal (any signal when the
                    // container has none), ends the restarts.
                    if signo == libc::SIGKILL
                        || self.stop_signal.is_none()
                        || self.stop_signal == Some(signo)
                    {
                        self.exit_on_next = true;
                    }
                    let errno = if self.exit.is_none() {
                        tracing::debug!(id = %self.id, signo, "forwarding signal");
                        // SAFETY: our own unreaped child; its pid cannot be reused yet.
                        if unsafe { libc::kill(self.init, signo) } == 0 {
                            0
                        } else {
                            io::Error::last_os_error()
                                .raw_os_error()
                                .unwrap_or(libc::EIO)
                        }
                    } else {
                        libc::ESRCH
                    };
                    // Acknowledged once sent, so `kill` returns after the signal is pending.
                    self.clients[i]
                        .send_control(&attach::encode(Kind::Signaled, &errno.to_be_bytes()));
                }
                _ => {}
            }
            if self.clients[i].dead {
                return true;
            }
        }
    }

    fn resize(&self, rows: u16, cols: u16) {
        if let Some(master) = &self.tty {
            let ws = libc::winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            // SAFETY: TIOCSWINSZ with a valid winsize on our pty master.
            unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        }
    }

    /// Releases everything, records the exit, tells the clients, in that order: when a client
    /// sees the exit frame, nothing of the container is left but its directory (and, for a
    /// few milliseconds more, the veth pair the kernel is deleting with its namespace). A
    /// `--rm` container's directory is out of the store by then, and deleted right after: by
    /// the client that said it would (`Hello::deletes_removed`) and got the exit frame, else
    /// by us. That client alone is told before the cgroup is gone, so that it deletes while
    /// the cgroup goes: it reads until the connection closes, when this process exits.
    fn finish(mut self) {
        let code = self.exit.unwrap_or(GONE_EXIT_CODE);
        let manually_stopped = self.exit_on_next;
        if self.released {
            // A restart that was called off or could not start: released already.
            let mut problems = std::mem::take(&mut self.problems);
            problems.extend(self.log_error.take());
            if let Some(dir) = record_exit(
                &self.rt,
                &self.id,
                code,
                self.last_oom,
                &problems,
                manually_stopped,
            ) {
                crate::delete_removed(&dir);
            }
            self.announce_exit(code);
            return;
        }
        let oom = self.cgroup.oom_killed();
        // The cgroup's directories go in a thread of their own while the rest is released:
        // they share nothing, and each part takes a few hundred microseconds.
        let cgroup = self.cgroup.clone();
        let id = self.id.clone();
        let remove_cgroup = move || match cgroup.remove() {
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(%id, error = %e, "removing the cgroup failed");
                Some(format!("removing the cgroup: {e}"))
            }
        };
        let (cgroup_removal, mut cgroup_problem) = match std::thread::Builder::new()
            .name("cgroup".into())
            .spawn(remove_cgroup.clone())
        {
            Ok(handle) => (Some(handle), None),
            Err(_) => (None, remove_cgroup()),
        };
        let wait_for_cgroup = |removal: Option<std::thread::JoinHandle<Option<String>>>| {
            removal.and_then(|handle| handle.join().ok().flatten())
        };
        // What went wrong on the way out is kept in State.Error, where `inspect` shows it.
        let mut problems: Vec<String> = self.log_error.take().into_iter().collect();
        if let Some(net) = &self.network {
            // Every process of the container is gone, so its network namespace is too: the
            // kernel deletes the veth pair with it, and we release the rest.
            tracing::debug!(id = %self.id, "releasing the network");
            if let Err(e) = net.release(&self.id) {
                tracing::warn!(id = %self.id, error = %e, "releasing the network failed");
                problems.push(format!("releasing the network: {e}"));
            }
        }
        let paths = self.rt.paths(&self.id);
        if let Err(e) = overlay::detach(&paths.rootfs()) {
            tracing::warn!(id = %self.id, error = %e, "unmounting the rootfs failed");
            problems.push(format!("unmounting the rootfs: {e}"));
        }
        // State first, then the socket: a client that cannot connect reads the exit. A kept
        // container's exit is recorded once its cgroup is gone, so that a start right after
        // finds the name free; a --rm container leaves the store and its files go meanwhile
        // (no start can come back to it).
        if self.auto_remove {
            let removed = record_exit(&self.rt, &self.id, code, oom, &problems, manually_stopped);
            if let Some(dir) = removed {
                // A client that deletes the directory is told before the cgroup is waited
                // for, and deletes it while the cgroup goes; it reads on until this process
                // is gone, which is after. The others are told once the cgroup is gone.
                self.queue_exit(code, |conn| conn.hello.is_some_and(|h| h.deletes_removed));
                wait_for_cgroup(cgroup_removal);
                // None of them got the exit frame: the directory is ours to delete.
                if !self.announce_exit(code) {
                    crate::delete_removed(&dir);
                }
                return;
            }
            wait_for_cgroup(cgroup_removal);
        } else {
            if let Some(problem) = wait_for_cgroup(cgroup_removal).or(cgroup_problem.take()) {
                problems.push(problem);
            }
            record_exit(&self.rt, &self.id, code, oom, &problems, manually_stopped);
        }
        self.announce_exit(code);
    }

    /// The last steps of the monitor: the socket goes, every client gets the exit frame.
    /// Whether one that deletes a removed container's directory got it.
    fn announce_exit(&mut self, code: i32) -> bool {
        let paths = self.rt.paths(&self.id);
        let _ = fs::remove_file(paths.socket());
        self.queue_exit(code, |_| true);
        flush_before_exit(&mut self.clients);
        let deleter_told = self.clients.iter().any(|conn| {
            !conn.dead && conn.output.is_empty() && conn.hello.is_some_and(|h| h.deletes_removed)
        });
        // The connections close when this process is gone, not before: a client that sees
        // the end of its connection knows the monitor no longer exists.
        std::mem::forget(std::mem::take(&mut self.clients));
        deleter_told
    }

    /// Queues the exit frame for the live clients `wanted` picks that do not have it yet, and
    /// writes what each takes now; [`flush_before_exit`] waits for the rest.
    fn queue_exit(&mut self, code: i32, wanted: impl Fn(&Conn) -> bool) {
        let frame = attach::encode(Kind::Exit, &code.to_be_bytes());
        for conn in self.clients.iter_mut() {
            if !conn.dead && !conn.exit_sent && wanted(conn) {
                conn.exit_sent = true;
                conn.send_control(&frame);
            }
        }
    }
}

/// With `--debug`: our log lines (stderr) go to `path`, appended. Not to the starter's stderr:
/// the monitor outlives the starter, and a closed stderr must not take it down.
fn log_to(path: &Path) {
    if let Ok(log) = fs::OpenOptions::new().create(true).append(true).open(path) {
        // SAFETY: dup2 of a descriptor we own onto stderr.
        unsafe { libc::dup2(log.as_raw_fd(), libc::STDERR_FILENO) };
    }
}

/// The restart policy between runs.
impl Session {
    /// After a run ended: when the policy says so, releases the run, records the container
    /// as restarting, ends the clients of that run (each gets its exit), waits Docker's
    /// backoff while serving new clients (a kill or stop calls the restart off), and starts
    /// the next run. `false`: no next run, [`Session::finish`] comes.
    fn restart(&mut self) -> bool {
        let code = self.exit.unwrap_or(GONE_EXIT_CODE);
        let paths = self.rt.paths(&self.id);
        // The policy as it is now (`update --restart` may have changed it meanwhile).
        let restarts = match container::load(&paths.config()) {
            Ok(c) => {
                self.policy = c.host_config.restart_policy.clone();
                c.restart_count
            }
            Err(_) => return false,
        };
        if self.policy.is_none() || self.exit_on_next {
            return false;
        }
        if !self.policy.should_restart(code, restarts, false) {
            return false;
        }
        let delay = crate::container::restart_delay(self.delay, self.run_started.elapsed());
        self.delay = Some(delay);
        tracing::debug!(id = %self.id, code, ?delay, restarts, "restart policy restarts the container");
        self.last_oom = self.cgroup.oom_killed();
        let mut problems: Vec<String> = self.log_error.take().into_iter().collect();
        problems.extend(self.release_run());
        self.released = true;
        if let Err(e) = record_restarting(&self.rt, &self.id, code, self.last_oom, &problems) {
            tracing::warn!(id = %self.id, error = %e, "recording the restart failed");
            self.problems = problems;
            return false;
        }
        let frame = attach::encode(Kind::Exit, &code.to_be_bytes());
        for conn in self.clients.iter_mut().filter(|conn| !conn.dead) {
            conn.send_control(&frame);
        }
        flush_before_exit(&mut self.clients);
        self.clients.clear();
        self.stdin_clients = 0;
        if !self.wait_restart(delay) {
            return false;
        }
        let mut c = match container::load(&paths.config()) {
            Ok(c) => c,
            Err(e) => {
                self.problems.push(format!("restarting: {e}"));
                return false;
            }
        };
        match start_run(&self.rt, &self.id, &mut c, self.hello, None) {
            Ok(run) => {
                self.init = run.init;
                self.pidfd = run.pidfd;
                self.out = run.out;
                self.err = run.err;
                self.tty = run.tty;
                self.stdin = run.stdin;
                self.log = run.log;
                self.cgroup = run.cgroup;
                self.network = run.network;
                self.stdin_pending.clear();
                self.stdin_close = false;
                self.exit = None;
                self.released = false;
                self.run_started = std::time::Instant::now();
                true
            }
            Err((code, message)) => {
                tracing::debug!(id = %self.id, code, %message, "restart failed");
                self.exit = Some(i32::from(code));
                self.problems.push(format!("restarting: {message}"));
                false
            }
        }
    }

    /// Releases what the ended run held: cgroup, network, rootfs; what went wrong.
    fn release_run(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = self.cgroup.remove() {
            problems.push(format!("removing the cgroup: {e}"));
        }
        if let Some(net) = self.network.take() {
            if let Err(e) = net.release(&self.id) {
                problems.push(format!("releasing the network: {e}"));
            }
        }
        if let Err(e) = overlay::detach(&self.rt.paths(&self.id).rootfs()) {
            problems.push(format!("unmounting the rootfs: {e}"));
        }
        problems
    }

    /// Serves clients for `delay`; `false` when one of them called the restart off.
    fn wait_restart(&mut self, delay: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + delay;
        let mut buf = vec![0u8; CHUNK];
        loop {
            if self.exit_on_next {
                return false;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return true;
            }
            let timeout = (deadline - now).as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
            let mut fds = vec![libc::pollfd {
                fd: self.listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            for conn in &self.clients {
                let mut events = libc::POLLIN;
                if !conn.output.is_empty() {
                    events |= libc::POLLOUT;
                }
                fds.push(libc::pollfd {
                    fd: conn.stream.as_raw_fd(),
                    events,
                    revents: 0,
                });
            }
            // SAFETY: poll over a live array of pollfd.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n <= 0 {
                continue;
            }
            if fds[0].revents != 0 {
                self.accept();
            }
            for (i, pfd) in fds.iter().enumerate().skip(1) {
                if pfd.revents != 0 && i - 1 < self.clients.len() {
                    self.serve_client(i - 1, pfd.revents, &mut buf);
                }
            }
            self.drop_dead_clients();
        }
    }
}

/// Records a run's end that its restart policy follows with another: still running (as
/// Docker has it), restarting, the exit code, one more restart.
fn record_restarting(
    rt: &Runtime,
    id: &str,
    code: i32,
    oom: bool,
    problems: &[String],
) -> crate::Result<()> {
    let paths = rt.paths(id);
    let _lock = Lock::acquire(&paths.lock())?;
    let mut c: Container = container::load(&paths.config())?;
    c.state.running = true;
    c.state.restarting = true;
    c.state.pid = 0;
    c.state.exit_code = code;
    c.state.oom_killed = oom;
    c.state.finished_at = Utc::now();
    c.state.error = problems.join("; ");
    c.restart_count += 1;
    c.init = None;
    c.network_settings = NetworkSettings::default();
    container::save(&paths.config(), &c)
}

/// Gives clients that still read a moment to take their last output and the exit frame;
/// ends when all did, when none took anything for a while, or at [`EXIT_FLUSH_LIMIT`].
fn flush_before_exit(clients: &mut [Conn]) {
    let deadline = std::time::Instant::now() + EXIT_FLUSH_LIMIT;
    loop {
        let mut fds: Vec<libc::pollfd> = clients
            .iter()
            .filter(|conn| !conn.dead && !conn.output.is_empty())
            .map(|conn| libc::pollfd {
                fd: conn.stream.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            })
            .collect();
        if fds.is_empty() || std::time::Instant::now() >= deadline {
            return;
        }
        // SAFETY: poll over a live array of pollfd.
        let n = unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                EXIT_FLUSH_STALL_MS,
            )
        };
        if n == 0 {
            return;
        }
        if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
        for conn in clients
            .iter_mut()
            .filter(|c| !c.dead && !c.output.is_empty())
        {
            conn.flush();
        }
    }
}

/// How long the container must be quiet before the monitor drops its startup pages.
const IDLE_BEFORE_RELEASE_MS: libc::c_int = 5;

/// Exit code when the init could not be waited for (should not happen).
const GONE_EXIT_CODE: i32 = 255;

#[derive(Clone, Copy)]
enum Slot {
    Exit,
    Listener,
    Out,
    Err,
    Stdin,
    Client(usize),
}

#[derive(Default)]
struct Stdio {
    out: Option<File>,
    err: Option<File>,
    tty: Option<OwnedFd>,
    stdin: Option<File>,
}

/// Records the end of a run (or a failed start) in config.json; `--rm` takes the container out
/// of the store and returns its directory, for the caller to delete.
fn record_exit(
    rt: &Runtime,
    id: &str,
    code: i32,
    oom: bool,
    problems: &[String],
    manually_stopped: bool,
) -> Option<PathBuf> {
    let paths = rt.paths(id);
    let finished_at = Utc::now();
    let error = problems.join("; ");
    let mut record = ExitRecord {
        monitor: own_process(),
        exit_code: Some(code),
        oom_killed: oom,
        finished_at: Some(finished_at),
        error: error.clone(),
    };
    // The event before anything that lets a waiter go: whoever saw the exit finds `die` logged.
    if let Ok(c) = container::load(&paths.config()) {
        let die = crate::events::Message::container(&c, "die").with("exitCode", code);
        crate::events::record(rt.root(), &die);
    }
    // First, and in place: this works on a full disk, where config.json cannot be replaced.
    if let Err(e) = exitrec::write(&paths.exit_record(), &record) {
        tracing::warn!(%id, error = %e, "writing the exit record failed");
    }
    let result = (|| -> crate::Result<Option<PathBuf>> {
        let _lock = Lock::acquire(&paths.lock())?;
        let mut c: Container = container::load(&paths.config())?;
        if c.auto_remove {
            tracing::debug!(%id, "removing container (--rm)");
            let dir = rt.take_out(id)?;
            rt.release_anonymous_volumes(&c.mounts);
            crate::events::container(rt.root(), &c, "destroy");
            return Ok(Some(dir));
        }
        c.state.running = false;
        c.state.restarting = false;
        c.state.paused = false;
        c.has_been_manually_stopped = manually_stopped;
        c.state.pid = 0;
        c.state.exit_code = code;
        c.state.oom_killed = oom;
        c.state.finished_at = finished_at;
        c.state.error = error.clone();
        c.monitor = None;
        c.init = None;
        c.network_settings = NetworkSettings::default();
        container::save(&paths.config(), &c).map(|()| None)
    })();
    result.unwrap_or_else(|e| {
        tracing::warn!(%id, error = %e, "recording the exit failed");
        // The next command that reads the container finds the exit here, and why.
        let failed = format!("recording the exit failed: {e}");
        record.error = if error.is_empty() {
            failed
        } else {
            format!("{error}; {failed}")
        };
        if let Err(e) = exitrec::write(&paths.exit_record(), &record) {
            tracing::warn!(%id, error = %e, "writing the exit record failed");
        }
        None
    })
}

/// This process as the container's config names its monitor.
fn own_process() -> ProcessRef {
    let pid = std::process::id() as i32;
    ProcessRef {
        pid,
        start_time: procs::start_time(pid).unwrap_or_default(),
    }
}

/// Drops from our page tables the clean code and read-only data pages that starting up
/// touched (argument parsing, the image store, sysinit's setup...): the monitor idles for the
/// container's lifetime, and only the few pages its loop uses fault back in, from the page
/// cache. Only read-only file mappings without private (relocated) copies are released, so
/// nothing is lost: they read back identical. They come back in small pages
/// ([`map_small_pages_from_now`]).
fn release_startup_pages() {
    let Ok(smaps) = fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    // A mapping's start, end and file offset.
    let mut candidate: Option<(usize, usize, usize)> = None;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((start, end)) = first.split_once('-') {
            let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            ) else {
                candidate = None;
                continue;
            };
            let perms = fields.next().unwrap_or("");
            let offset = fields
                .next()
                .and_then(|o| usize::from_str_radix(o, 16).ok());
            let path = fields.nth(2).unwrap_or("");
            candidate = offset
                .filter(|_| !perms.contains('w') && perms.starts_with('r') && path.starts_with('/'))
                .map(|offset| (start, end, offset));
        } else if first == "Anonymous:" {
            if let Some((start, end, offset)) = candidate.take() {
                if fields.next() == Some("0") {
                    map_small_pages_from_now(start, end, offset);
                    // SAFETY: a read-only, file-backed mapping with no private pages: dropping
                    // its pages only means they are read from the page cache again.
                    unsafe {
                        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED)
                    };
                }
            }
        }
    }
}

/// A huge page, and the largest folio the page cache holds our code in.
const HUGE_PAGE: usize = 2 << 20;

/// Keeps a fault in the read-only mapping `[start, end)` of a file from `offset` on from
/// mapping a whole 2 MiB folio from now on. Where the page cache holds our code in such folios
/// (scripts/release-build.sh), a fault maps the whole folio it falls in (in one huge page, or
/// in 512 small ones since Linux 6.18), and two such faults of the idle loop would take the
/// monitor's resident memory past 4 MiB. The kernel maps a whole folio only where it lies
/// within one mapping: every other 2 MiB of the file, starting halfway into a folio, is
/// marked NOHUGEPAGE, which splits the mapping in the middle of every folio (and leaves no
/// piece that holds a whole huge page).
fn map_small_pages_from_now(start: usize, end: usize, offset: usize) {
    let file_end = offset + (end - start);
    let mut piece = (offset & !(HUGE_PAGE - 1)) + HUGE_PAGE / 2;
    while piece < file_end {
        let (from, to) = (piece.max(offset), (piece + HUGE_PAGE).min(file_end));
        let at = start + (from - offset);
        // SAFETY: advice on part of one of our own read-only file mappings.
        unsafe { libc::madvise(at as *mut libc::c_void, to - from, libc::MADV_NOHUGEPAGE) };
        piece += 2 * HUGE_PAGE;
    }
}

/// A network namespace made on a thread of its own (see sysinit::netns); `None` leaves it to
/// the clone.
fn start_netns(id: &str) -> Option<NetnsAhead> {
    NetnsAhead::start()
        .inspect_err(|e| tracing::debug!(%id, error = %e, "no netns thread: the clone makes it"))
        .ok()
}

/// Brings `lo` up in the network namespace of `pid` (`--network none` whose namespace was not
/// made ahead): this thread enters it for one ioctl and comes back.
fn loopback_up(pid: i32) -> io::Result<()> {
    let theirs = OwnedFd::from(File::open(format!("/proc/{pid}/ns/net"))?);
    sysinit::netns::within(&theirs, sysinit::netns::loopback_up)?
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the array on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptors we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Put `fd` in non-blocking mode (the monitor's pipes and pty, `dock exec`'s pty master).
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod args_tests {
    use super::*;

    #[test]
    fn the_command_line_round_trips_and_nothing_else_parses() {
        for debug in [false, true] {
            let args = Args {
                root: PathBuf::from("/var/lib/dock"),
                debug,
                id: "a".repeat(64),
            };
            assert_eq!(Args::parse(&args.to_command_line()), Some(args));
        }
        let line = |words: &[&str]| words.iter().map(OsString::from).collect::<Vec<_>>();
        for words in [
            &["--root", "/r", "ps"][..],
            &["--root", "/r", "__monitor"],
            &["--root", "/r", "__monitor", "id", "more"],
            &["--debug", "--root", "/r", "__monitor", "id"],
            &["run", "--root", "/r", "__monitor"],
        ] {
            assert_eq!(Args::parse(&line(words)), None, "{words:?}");
        }
    }
}

#[cfg(test)]
mod page_tests {
    use super::*;
    use std::io::Write;

    /// The mappings within `[start, end)` (it may have been split), each with what it has
    /// resident, from our smaps.
    fn mappings_within(start: usize, end: usize) -> Vec<(usize, usize, u64)> {
        let smaps = fs::read_to_string("/proc/self/smaps").unwrap();
        let mut found: Vec<(usize, usize, u64)> = Vec::new();
        let mut inside = false;
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            if let Some((from, to)) = first.split_once('-') {
                if let (Ok(from), Ok(to)) = (
                    usize::from_str_radix(from, 16),
                    usize::from_str_radix(to, 16),
                ) {
                    inside = from >= start && to <= end;
                    if inside {
                        found.push((from, to, 0));
                    }
                    continue;
                }
            }
            if inside && first == "Rss:" {
                let kib = line
                    .split_whitespace()
                    .nth(1)
                    .unwrap()
                    .parse::<u64>()
                    .unwrap();
                found.last_mut().unwrap().2 = kib;
            }
        }
        found
    }

    /// The file's first `len` bytes, mapped read-only at a 2 MiB boundary (as our code is
    /// mapped: address and file offset agree in their last 21 bits).
    fn map_aligned(file: &File, len: usize) -> usize {
        // SAFETY: a reservation of our own, of which only the aligned part stays, replaced by
        // a fixed file mapping; the caller unmaps that (`unmap`).
        unsafe {
            let room = libc::mmap(
                std::ptr::null_mut(),
                len + HUGE_PAGE,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(room, libc::MAP_FAILED);
            let room = room as usize;
            let at = room.next_multiple_of(HUGE_PAGE);
            if at > room {
                libc::munmap(room as *mut libc::c_void, at - room);
            }
            // (Never empty: `at` is less than 2 MiB past `room`.)
            libc::munmap((at + len) as *mut libc::c_void, room + HUGE_PAGE - at);
            let mapped = libc::mmap(
                at as *mut libc::c_void,
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_FIXED,
                file.as_raw_fd(),
                0,
            );
            assert_eq!(mapped as usize, at);
            at
        }
    }

    fn unmap(at: usize, len: usize) {
        // SAFETY: a mapping `map_aligned` made, unmapped once.
        unsafe { libc::munmap(at as *mut libc::c_void, len) };
    }

    fn touch(addr: usize) {
        // SAFETY: a byte of a live read-only mapping of ours.
        unsafe { std::ptr::read_volatile(addr as *const u8) };
    }

    #[test]
    fn after_the_split_no_fault_maps_a_whole_huge_page_of_code() {
        // Written 2 MiB at a time, as scripts/release-build.sh installs dock: where the file
        // system and the kernel give large folios, the page cache now holds 2 MiB ones.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("code");
        let mut file = File::create(&path).unwrap();
        let block = vec![0x90u8; HUGE_PAGE];
        for _ in 0..4 {
            file.write_all(&block).unwrap();
        }
        let file = File::open(&path).unwrap();
        let len = 4 * HUGE_PAGE;

        // Unsplit, one fault maps at least the kernel's fault-around, and a whole 2 MiB where
        // the folio is one (what the split guards against).
        let plain = map_aligned(&file, len);
        touch(plain + HUGE_PAGE + 4096);
        let unsplit: u64 = mappings_within(plain, plain + len)
            .iter()
            .map(|m| m.2)
            .sum();
        unmap(plain, len);

        let split = map_aligned(&file, len);
        map_small_pages_from_now(split, split + len, 0);
        // In a piece marked NOHUGEPAGE, in one left as it was, and at the split's edge.
        let touched = [HUGE_PAGE + 4096, 2 * HUGE_PAGE + 4096, 3 * HUGE_PAGE / 2];
        for offset in touched {
            touch(split + offset);
        }
        let mappings = mappings_within(split, split + len);
        unmap(split, len);

        // No mapping holds a whole 2 MiB of the file: the kernel never maps one at a fault.
        for (from, to, _) in &mappings {
            let first_whole = from.next_multiple_of(HUGE_PAGE);
            assert!(
                first_whole + HUGE_PAGE > *to,
                "{:#x}-{:#x} holds a whole 2 MiB",
                from - split,
                to - split
            );
        }
        assert!(
            mappings.len() >= 4,
            "split into {} mappings",
            mappings.len()
        );
        let resident: u64 = mappings.iter().map(|m| m.2).sum();
        let faults = touched.len() as u64;
        assert!(
            resident < faults * (HUGE_PAGE / 1024) as u64,
            "{faults} faults mapped {resident} KiB (unsplit, one mapped {unsplit} KiB)"
        );
    }
}
