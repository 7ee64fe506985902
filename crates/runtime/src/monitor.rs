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

use crate::attach::{self, FrameBuffer, Hello, Kind};
use crate::cgroup::{Cgroup, Limits};
use crate::container::{self, Container, Lock, NetworkSettings, ProcessRef};
use crate::logs::LogWriter;
use crate::{overlay, procs, Error, Runtime, STARTER_FD};

/// Read size for container output; the monitor's steady state stays small.
const CHUNK: usize = 16 * 1024;
/// Stop reading client input while this much stdin waits for the container.
const STDIN_HIGH_WATER: usize = 64 * 1024;

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
pub fn main(root: &Path, id: &str) -> i32 {
    // Nothing but stdio and the starter socket belongs to us.
    // SAFETY: closes descriptors this fresh process does not use.
    unsafe { libc::close_range((STARTER_FD + 1) as u32, u32::MAX, 0) };
    // Named for `ps`, `top` and `ss` (which show the host ports it holds), not "exe".
    // SAFETY: PR_SET_NAME with a nul-terminated name of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"dock-monitor".as_ptr()) };
    // SAFETY: the starter handed us fd 3; we own it from here.
    let mut starter = unsafe { UnixStream::from_raw_fd(STARTER_FD) };
    let hello = match attach::read_frame(&mut starter) {
        Ok(Some((Kind::Hello, data))) => Hello::decode(&data).unwrap_or_default(),
        _ => Hello::default(),
    };
    let rt = match Runtime::open(root) {
        Ok(rt) => rt,
        Err(e) => {
            report_error(&mut starter, 125, &e.to_string());
            // The starter's connection closes with this process (see `finish`).
            std::process::exit(1);
        }
    };
    match Session::launch(rt, id, hello) {
        Ok(mut session) => {
            let pid = session.init.to_be_bytes();
            let mut clients = Vec::new();
            if starter
                .write_all(&attach::encode(Kind::Started, &pid))
                .is_ok()
            {
                clients.push(Conn {
                    stream: starter,
                    hello: Some(hello),
                    input: FrameBuffer::default(),
                    dead: false,
                });
            }
            session.clients = clients;
            session.serve();
            session.finish();
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
    stream: UnixStream,
    hello: Option<Hello>,
    input: FrameBuffer,
    /// Failed or closed; removed after the current poll round, so indices stay valid.
    dead: bool,
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
    log: LogWriter,
    exit: Option<i32>,
    cgroup: Cgroup,
    /// `--rm`: the container leaves the store when it exits.
    auto_remove: bool,
    /// The bridge network the container is connected to; None with `--network none`.
    network: Option<netmgr::Network>,
}

type LaunchError = (u8, String);

impl Session {
    fn launch(rt: Runtime, id: &str, hello: Hello) -> Result<Session, LaunchError> {
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
            let me = std::process::id() as i32;
            c.state.running = true;
            c.state.pid = 0;
            c.state.oom_killed = false;
            c.monitor = Some(ProcessRef {
                pid: me,
                start_time: procs::start_time(me).unwrap_or_default(),
            });
            c.init = None;
            if let Err(e) = container::save(&paths.config(), &c) {
                let _ = fs::remove_file(&socket);
                return Err(runtime_err(e));
            }
            (c, listener)
        };
        tracing::debug!(%id, "monitor claimed the container");

        let cgroup_parent = rt.cgroup_parent();
        let mut cgroup: Option<Cgroup> = None;
        let mut network: Option<netmgr::Network> = None;
        let result = (|| -> Result<Session, LaunchError> {
            let lowers = rt.lowers(&c).map_err(runtime_err)?;
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
            };
            tracing::debug!(%id, parent = %cgroup_parent, ?limits, "creating cgroup");
            let cg = Cgroup::create(&cgroup_parent, id, &limits)
                .map_err(|e| runtime_err(Error::Cgroup(e.to_string())))?;
            let cg = cgroup.insert(cg);

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
                security: crate::security::for_container(rt.root(), &c.host_config)
                    .map_err(|e| (125u8, e.to_string()))?,
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
            let (hostname, extra_hosts) = (&c.config.hostname, &c.host_config.extra_hosts);
            let spawned = sysinit::spawn(spec, |pid| {
                if network_disabled {
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
                    c = current;
                }
                c.state.running = true;
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
                container::save(&paths.config(), &c).map_err(runtime_err)?;
            }
            Ok(Session {
                rt: Runtime::open(rt.root()).map_err(runtime_err)?,
                id: id.to_string(),
                init: pid,
                pidfd,
                out: stdio.out.take(),
                err: stdio.err.take(),
                tty: stdio.tty.take(),
                stdin: stdio.stdin.take(),
                stdin_pending: Vec::new(),
                stdin_close: false,
                listener,
                clients: Vec::new(),
                log,
                exit: None,
                cgroup: cgroup
                    .take()
                    .unwrap_or_else(|| Cgroup::open(&cgroup_parent, id)),
                auto_remove: c.auto_remove,
                network: network.take(),
            })
        })();
        match result {
            Ok(session) => Ok(session),
            Err((code, message)) => {
                tracing::debug!(%id, code, %message, "container failed to start");
                if let Some(cg) = cgroup {
                    let _ = cg.remove();
                }
                if let Some(net) = network {
                    if let Err(e) = net.disconnect(id) {
                        tracing::warn!(%id, error = %e, "releasing the network failed");
                    }
                }
                let _ = overlay::unmount(&paths.rootfs());
                if let Some(dir) = record_exit(&rt, id, code as i32, false) {
                    crate::delete_removed(&dir);
                }
                let _ = fs::remove_file(paths.socket());
                Err((code, message))
            }
        }
    }

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
            if self.stdin_pending.len() < STDIN_HIGH_WATER {
                for (i, conn) in self.clients.iter().enumerate() {
                    add(conn.stream.as_raw_fd(), libc::POLLIN, Slot::Client(i));
                }
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
                    Slot::Client(i) => {
                        if !self.clients[i].dead && !self.read_client(i, &mut buf) {
                            self.clients[i].dead = true;
                        }
                    }
                }
            }
            self.clients.retain(|conn| !conn.dead);
        }
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
        } else if ret < 0 {
            self.exit = Some(GONE_EXIT_CODE);
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    let _ = stream.set_nonblocking(false);
                    self.clients.push(Conn {
                        stream,
                        hello: None,
                        input: FrameBuffer::default(),
                        dead: false,
                    });
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

    fn broadcast(&mut self, stdout: bool, n: usize, buf: &[u8]) {
        let data = &buf[..n];
        let (stream_name, kind) = if stdout {
            ("stdout", Kind::Stdout)
        } else {
            ("stderr", Kind::Stderr)
        };
        if let Err(e) = self.log.write(stream_name, data) {
            tracing::debug!(error = %e, "writing the container log failed");
        }
        let frame = attach::encode(kind, data);
        for conn in self.clients.iter_mut().filter(|conn| !conn.dead) {
            let wants = conn
                .hello
                .is_some_and(|h| if stdout { h.stdout } else { h.stderr });
            if wants && conn.stream.write_all(&frame).is_err() {
                conn.dead = true;
            }
        }
    }

    fn flush_stdin(&mut self) {
        let Some(stdin) = &mut self.stdin else {
            self.stdin_pending.clear();
            return;
        };
        while !self.stdin_pending.is_empty() {
            match stdin.write(&self.stdin_pending) {
                Ok(n) => {
                    self.stdin_pending.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    // The container closed its stdin.
                    self.stdin = None;
                    self.stdin_pending.clear();
                    return;
                }
            }
        }
        if self.stdin_close && self.tty.is_none() {
            tracing::debug!(id = %self.id, "closing container stdin");
            self.stdin = None;
        }
    }

    /// Reads and handles a client's frames; `false` when the client is gone.
    fn read_client(&mut self, i: usize, buf: &mut [u8]) -> bool {
        let n = match self.clients[i].stream.read(buf) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return true,
            Err(_) => return false,
        };
        self.clients[i].input.extend(&buf[..n]);
        loop {
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
                    let offset = self.log.len().to_be_bytes();
                    if self.clients[i]
                        .stream
                        .write_all(&attach::encode(Kind::Attached, &offset))
                        .is_err()
                    {
                        return false;
                    }
                }
                (Kind::Stdin, data) => {
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
                    if self.exit.is_none() {
                        tracing::debug!(id = %self.id, signo, "forwarding signal");
                        // SAFETY: our own unreaped child; its pid cannot be reused yet.
                        unsafe { libc::kill(self.init, signo) };
                    }
                }
                _ => {}
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
    /// `--rm` container's directory is out of the store by then, and deleted right after.
    fn finish(mut self) {
        let code = self.exit.unwrap_or(GONE_EXIT_CODE);
        let oom = self.cgroup.oom_killed();
        // The cgroup's directories go in a thread of their own while the rest is released:
        // they share nothing, and each part takes a few hundred microseconds.
        let cgroup = self.cgroup.clone();
        let id = self.id.clone();
        let remove_cgroup = move || {
            if let Err(e) = cgroup.remove() {
                tracing::warn!(%id, error = %e, "removing the cgroup failed");
            }
        };
        let cgroup_removal = match std::thread::Builder::new()
            .name("cgroup".into())
            .spawn(remove_cgroup.clone())
        {
            Ok(handle) => Some(handle),
            Err(_) => {
                remove_cgroup();
                None
            }
        };
        let wait_for_cgroup = |removal: Option<std::thread::JoinHandle<()>>| {
            if let Some(handle) = removal {
                let _ = handle.join();
            }
        };
        if let Some(net) = &self.network {
            // Every process of the container is gone, so its network namespace is too: the
            // kernel deletes the veth pair with it, and we release the rest.
            tracing::debug!(id = %self.id, "releasing the network");
            if let Err(e) = net.release(&self.id) {
                tracing::warn!(id = %self.id, error = %e, "releasing the network failed");
            }
        }
        let paths = self.rt.paths(&self.id);
        if let Err(e) = overlay::detach(&paths.rootfs()) {
            tracing::warn!(id = %self.id, error = %e, "unmounting the rootfs failed");
        }
        // State first, then the socket: a client that cannot connect reads the exit. A kept
        // container's exit is recorded once its cgroup is gone, so that a start right after
        // finds the name free; a --rm container leaves the store and its files go meanwhile
        // (no start can come back to it).
        if self.auto_remove {
            if let Some(dir) = record_exit(&self.rt, &self.id, code, oom) {
                crate::delete_removed(&dir);
            }
            wait_for_cgroup(cgroup_removal);
        } else {
            wait_for_cgroup(cgroup_removal);
            record_exit(&self.rt, &self.id, code, oom);
        }
        let _ = fs::remove_file(paths.socket());
        let frame = attach::encode(Kind::Exit, &code.to_be_bytes());
        for conn in self.clients.iter_mut().filter(|conn| !conn.dead) {
            let _ = conn.stream.write_all(&frame);
        }
        // The connections close when this process is gone, not before: a client that sees
        // the end of its connection knows the monitor no longer exists.
        std::mem::forget(std::mem::take(&mut self.clients));
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
fn record_exit(rt: &Runtime, id: &str, code: i32, oom: bool) -> Option<PathBuf> {
    let paths = rt.paths(id);
    let result = (|| -> crate::Result<Option<PathBuf>> {
        let _lock = Lock::acquire(&paths.lock())?;
        let mut c: Container = container::load(&paths.config())?;
        if c.auto_remove {
            tracing::debug!(%id, "removing container (--rm)");
            let dir = rt.take_out(id)?;
            rt.release_anonymous_volumes(&c.mounts);
            return Ok(Some(dir));
        }
        c.state.running = false;
        c.state.pid = 0;
        c.state.exit_code = code;
        c.state.oom_killed = oom;
        c.state.finished_at = Utc::now();
        c.monitor = None;
        c.init = None;
        c.network_settings = NetworkSettings::default();
        container::save(&paths.config(), &c).map(|()| None)
    })();
    result.unwrap_or_else(|e| {
        tracing::warn!(%id, error = %e, "recording the exit failed");
        None
    })
}

/// Drops from our page tables the clean code and read-only data pages that starting up
/// touched (argument parsing, the image store, sysinit's setup...): the monitor idles for the
/// container's lifetime, and only the few pages its loop uses fault back in, from the page
/// cache. Only read-only file mappings without private (relocated) copies are released, so
/// nothing is lost: they read back identical.
fn release_startup_pages() {
    let Ok(smaps) = fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let mut candidate: Option<(usize, usize)> = None;
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
            let path = fields.nth(3).unwrap_or("");
            candidate = (!perms.contains('w') && perms.starts_with('r') && path.starts_with('/'))
                .then_some((start, end));
        } else if first == "Anonymous:" {
            if let Some((start, end)) = candidate.take() {
                if fields.next() == Some("0") {
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

/// Brings `lo` up in the network namespace of `pid` (`--network none`): enters it for one
/// ioctl and comes back. The monitor is single-threaded, so setns is safe here.
fn loopback_up(pid: i32) -> io::Result<()> {
    let own = File::open("/proc/self/ns/net")?;
    let theirs = File::open(format!("/proc/{pid}/ns/net"))?;
    // SAFETY: setns with namespace descriptors we hold open.
    if unsafe { libc::setns(theirs.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let result = (|| {
        // SAFETY: a plain datagram socket, closed by OwnedFd.
        let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if sock < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        let sock = unsafe { OwnedFd::from_raw_fd(sock) };
        // SAFETY: ifreq is plain data; zeroed is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS with a valid ifreq naming lo.
        unsafe {
            if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
                return Err(io::Error::last_os_error());
            }
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    })();
    // SAFETY: back to the namespace we came from.
    if unsafe { libc::setns(own.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
        // Staying in the container's netns would break every later network step.
        let e = io::Error::last_os_error();
        tracing::error!(error = %e, "cannot return to the host network namespace");
        std::process::abort();
    }
    result
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

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
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
