//! Container commands: run, start, stop, restart, kill, rm, wait, attach, logs, ps, diff,
//! commit, export. The work is in the `runtime` crate; this file parses, renders, and moves
//! bytes between the terminal and an attach connection.

use std::io::{self, IsTerminal, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use anyhow::Context as _;
use clap::{ArgAction, Args, Subcommand};
use runtime::attach::{self, Event, FrameBuffer, Hello, Kind};
use runtime::{Container, CreateOptions, Runtime};

use crate::format::{ago, human_duration, short_id, Table};
use crate::{Context, Failure};

#[derive(Subcommand)]
pub enum ContainerCommand {
    /// Run a command in a new container
    #[command(disable_help_flag = true)]
    Run(RunArgs),
    /// Create a new container without starting it; prints its ID
    #[command(disable_help_flag = true)]
    Create(RunArgs),
    /// Start one or more stopped containers
    Start {
        /// Attach stdout/stderr and forward signals
        #[arg(short = 'a', long)]
        attach: bool,
        /// Attach the container's stdin
        #[arg(short = 'i', long)]
        interactive: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop one or more running containers (their stop signal, SIGTERM by default, then
    /// SIGKILL after a grace period)
    Stop {
        /// Signal to send instead of the container's stop signal
        #[arg(short = 's', long)]
        signal: Option<String>,
        /// Seconds to wait before killing the container
        #[arg(short = 't', long = "time", default_value_t = 10)]
        time: u64,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Restart one or more containers
    Restart {
        /// Seconds to wait before killing the container
        #[arg(short = 't', long = "time", default_value_t = 10)]
        time: u64,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Send a signal (default SIGKILL) to one or more running containers
    Kill {
        /// Signal to send: name (TERM, SIGTERM) or number
        #[arg(short = 's', long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove one or more containers
    Rm {
        /// Kill a running container first
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Block until one or more containers stop, then print their exit codes
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Attach to a running container's streams
    Attach {
        /// Do not attach stdin
        #[arg(long)]
        no_stdin: bool,
        container: String,
    },
    /// Fetch the logs of a container
    Logs {
        /// Follow log output
        #[arg(short = 'f', long)]
        follow: bool,
        /// Show timestamps
        #[arg(short = 't', long)]
        timestamps: bool,
        /// Number of lines to show from the end ("all" for everything)
        #[arg(long, default_value = "all")]
        tail: String,
        container: String,
    },
    /// List containers
    Ps {
        /// Show all containers (default shows just running)
        #[arg(short = 'a', long)]
        all: bool,
        /// Only display container IDs
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Don't truncate output
        #[arg(long)]
        no_trunc: bool,
    },
    /// Inspect changes to files or directories on a container's filesystem
    Diff { container: String },
    /// Create a new image from a container's changes
    Commit {
        /// Commit message
        #[arg(short = 'm', long)]
        message: Option<String>,
        /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
        #[arg(short = 'a', long)]
        author: Option<String>,
        container: String,
        /// REPOSITORY[:TAG]
        repository: Option<String>,
    },
    /// Export a container's filesystem as a tar archive on stdout
    Export { container: String },
    /// List port mappings, or look up the public port of PRIVATE_PORT[/PROTO]
    Port {
        container: String,
        /// PRIVATE_PORT[/PROTO]
        private_port: Option<String>,
    },
}

#[derive(Args)]
pub struct RunArgs {
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
    /// Run the container in the background and print its ID
    #[arg(short = 'd', long)]
    detach: bool,
    /// Keep stdin open and attach it
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    tty: bool,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Set environment variables (KEY=VALUE)
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Overwrite the default ENTRYPOINT of the image ("" removes it)
    #[arg(long)]
    entrypoint: Option<String>,
    /// Working directory inside the container (created when missing)
    #[arg(short = 'w', long = "workdir")]
    workdir: Option<String>,
    /// Expose a port or a range of ports (PORT[-PORT][/PROTO])
    #[arg(long)]
    expose: Vec<String>,
    /// Publish all exposed ports to random host ports
    #[arg(short = 'P', long = "publish-all")]
    publish_all: bool,
    /// Signal to stop the container (name or number; default SIGTERM)
    #[arg(long = "stop-signal")]
    stop_signal: Option<String>,
    /// Memory limit in bytes (suffixes b, k, m, g)
    #[arg(short = 'm', long = "memory", value_parser = parse_memory)]
    memory: Option<i64>,
    /// Container host name
    #[arg(short = 'h', long)]
    hostname: Option<String>,
    /// Assign a name to the container
    #[arg(long)]
    name: Option<String>,
    /// Remove the container when it exits
    #[arg(long)]
    rm: bool,
    /// Publish a container's port to the host ([IP:][HOST:]PORT[/PROTO])
    #[arg(short = 'p', long = "publish")]
    publish: Vec<String>,
    /// Network mode: bridge (default) or none (only lo)
    #[arg(long = "network", visible_alias = "net", default_value = "bridge")]
    network: String,
    /// Give extended privileges: all capabilities, no seccomp, no masked paths, writable /sys
    #[arg(long)]
    privileged: bool,
    /// Add Linux capabilities (NAME, CAP_NAME or ALL)
    #[arg(long = "cap-add")]
    cap_add: Vec<String>,
    /// Drop Linux capabilities (NAME, CAP_NAME or ALL)
    #[arg(long = "cap-drop")]
    cap_drop: Vec<String>,
    /// Security options: seccomp=unconfined|PROFILE.json, no-new-privileges[=true|false]
    #[arg(long = "security-opt")]
    security_opt: Vec<String>,
    /// Pull the image before creating the container: missing, always or never
    #[arg(long, value_name = "POLICY", default_value = "missing", value_parser = ["missing", "always", "never"])]
    pull: String,
    /// The image to run
    image: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn parse_memory(s: &str) -> Result<i64, String> {
    runtime::parse_memory(s).ok_or_else(|| format!("invalid memory size {s:?} (use e.g. 512m, 1g)"))
}

pub fn runtime(ctx: &Context) -> anyhow::Result<Runtime> {
    Ok(Runtime::open(&ctx.root)?)
}

pub fn run(ctx: &Context, cmd: ContainerCommand) -> anyhow::Result<u8> {
    let rt = runtime(ctx)?;
    match cmd {
        ContainerCommand::Run(mut args) => {
            args.image = crate::pull::ensure_image(ctx, &args.image, &args.pull)?;
            run_container(&rt, args)
        }
        ContainerCommand::Create(mut args) => {
            args.image = crate::pull::ensure_image(ctx, &args.image, &args.pull)?;
            let c = create_container(&rt, &args)?;
            println!("{}", c.id);
            Ok(0)
        }
        ContainerCommand::Start {
            attach,
            interactive,
            containers,
        } => start(&rt, attach, interactive, &containers),
        ContainerCommand::Stop {
            signal,
            time,
            containers,
        } => {
            let signo = signal.as_deref().map(parse_signal).transpose()?;
            each(&containers, |name| {
                let c = rt.get(name)?;
                rt.stop_with(&c.id, signo, Duration::from_secs(time))?;
                println!("{name}");
                Ok(())
            })
        }
        ContainerCommand::Restart { time, containers } => each(&containers, |name| {
            let c = rt.get(name)?;
            rt.stop(&c.id, Duration::from_secs(time))?;
            rt.start(&c.id, Hello::default()).map_err(start_failure)?;
            println!("{name}");
            Ok(())
        }),
        ContainerCommand::Kill { signal, containers } => {
            let signo = parse_signal(&signal)?;
            each(&containers, |name| {
                let c = rt.get(name)?;
                rt.kill(&c.id, signo)?;
                println!("{name}");
                Ok(())
            })
        }
        ContainerCommand::Rm { force, containers } => each(&containers, |name| {
            let c = rt.get(name)?;
            rt.remove(&c.id, force)?;
            println!("{name}");
            Ok(())
        }),
        ContainerCommand::Wait { containers } => each(&containers, |name| {
            let c = rt.get(name)?;
            println!("{}", rt.wait(&c.id)?);
            Ok(())
        }),
        ContainerCommand::Attach {
            no_stdin,
            container,
        } => {
            let c = rt.get(&container)?;
            let stdin = !no_stdin && c.config.open_stdin;
            let hello = hello_for(c.config.tty, stdin);
            let client = rt.attach(&c.id, hello)?;
            pump(&rt, &c, client, stdin)
        }
        ContainerCommand::Logs {
            follow,
            timestamps,
            tail,
            container,
        } => logs(&rt, &container, follow, timestamps, &tail),
        ContainerCommand::Ps {
            all,
            quiet,
            no_trunc,
        } => ps(ctx, &rt, all, quiet, no_trunc),
        ContainerCommand::Diff { container } => {
            let c = rt.get(&container)?;
            let mut out = io::stdout().lock();
            for change in rt.changes(&c.id)? {
                writeln!(out, "{change}")?;
            }
            Ok(0)
        }
        ContainerCommand::Commit {
            message,
            author,
            container,
            repository,
        } => {
            let c = rt.get(&container)?;
            let (repository, tag) = match repository {
                Some(r) => {
                    let (repo, tag) = tagstore::parse_reference(&r);
                    (Some(repo), tag)
                }
                None => (None, None),
            };
            let image = rt.commit(
                &c.id,
                runtime::CommitOptions {
                    repository,
                    tag,
                    comment: message.unwrap_or_default(),
                    author: author.unwrap_or_default(),
                },
            )?;
            println!("{}", image.id);
            Ok(0)
        }
        ContainerCommand::Port {
            container,
            private_port,
        } => port(&rt, &container, private_port.as_deref()),
        ContainerCommand::Export { container } => {
            let c = rt.get(&container)?;
            if io::stdout().is_terminal() {
                anyhow::bail!("refusing to write a tar archive to a terminal: redirect stdout");
            }
            let mut out = io::BufWriter::new(io::stdout().lock());
            rt.export(&c.id, &mut out)?;
            out.flush()?;
            Ok(0)
        }
    }
}

/// Runs `f` for every name; errors are printed and make the exit status 1, like Docker.
fn each(names: &[String], mut f: impl FnMut(&str) -> anyhow::Result<()>) -> anyhow::Result<u8> {
    let mut failed = false;
    for name in names {
        if let Err(e) = f(name) {
            eprintln!("Error: {}", crate::error_chain(&e));
            failed = true;
        }
    }
    Ok(failed as u8)
}

fn start_failure(e: runtime::Error) -> anyhow::Error {
    match e {
        runtime::Error::Start { code, message } => Failure { code, message }.into(),
        other => Failure {
            code: 125,
            message: other.to_string(),
        }
        .into(),
    }
}

fn run_container(rt: &Runtime, args: RunArgs) -> anyhow::Result<u8> {
    let c = create_container(rt, &args)?;
    if args.detach {
        drop(rt.start(&c.id, Hello::default()).map_err(start_failure)?);
        println!("{}", c.id);
        return Ok(0);
    }
    let hello = hello_for(args.tty, args.interactive);
    let client = rt.start(&c.id, hello).map_err(start_failure)?;
    pump(rt, &c, client, args.interactive)
}

/// `create`, and the first half of `run`: every option error is exit status 125.
fn create_container(rt: &Runtime, args: &RunArgs) -> anyhow::Result<Container> {
    let env = args
        .env
        .iter()
        .filter_map(|kv| {
            if kv.contains('=') {
                Some(kv.clone())
            } else {
                // `-e KEY` passes the value of KEY from our environment, if set.
                std::env::var(kv).ok().map(|v| format!("{kv}={v}"))
            }
        })
        .collect();
    let bad_input = |e: runtime::Error| Failure {
        code: 125,
        message: e.to_string(),
    };
    let network: runtime::NetworkMode = args.network.parse().map_err(bad_input)?;
    let mut exposed_ports = Vec::new();
    for spec in &args.expose {
        exposed_ports.extend(runtime::imageconfig::parse_expose(spec).map_err(bad_input)?);
    }
    // As Docker's CLI does: a profile file is read now and stored as its JSON.
    let security_opt = runtime::security::inline_profile_files(&args.security_opt)
        .map_err(|e| bad_input(e.into()))?;
    let opts = CreateOptions {
        image: args.image.clone(),
        cmd: args.command.clone(),
        name: args.name.clone(),
        hostname: args.hostname.clone(),
        user: args.user.clone().unwrap_or_default(),
        env,
        memory: args.memory.unwrap_or(0),
        memory_swap: 0,
        tty: args.tty,
        open_stdin: args.interactive,
        detach: args.detach,
        port_specs: args.publish.clone(),
        auto_remove: args.rm,
        host_config: runtime::HostConfig {
            privileged: args.privileged,
            cap_add: args.cap_add.clone(),
            cap_drop: args.cap_drop.clone(),
            security_opt,
            publish_all_ports: args.publish_all,
        },
        // `--entrypoint ""` is `[""]`, as Docker's CLI sends it: no entrypoint, no image Cmd.
        entrypoint: args.entrypoint.clone().map(|e| vec![e]),
        working_dir: args.workdir.clone().unwrap_or_default(),
        exposed_ports,
        stop_signal: args.stop_signal.clone().unwrap_or_default(),
        labels: Default::default(),
    };
    // Port specs, capabilities and security options are checked by create, before anything
    // exists.
    Ok(rt.create_with_network(opts, network).map_err(bad_input)?)
}

fn start(rt: &Runtime, attach: bool, interactive: bool, names: &[String]) -> anyhow::Result<u8> {
    if attach || interactive {
        if names.len() > 1 {
            anyhow::bail!("you cannot start and attach multiple containers at once");
        }
        let c = rt.get(&names[0])?;
        let stdin = interactive && c.config.open_stdin;
        let client = rt
            .start(&c.id, hello_for(c.config.tty, stdin))
            .map_err(start_failure)?;
        return pump(rt, &c, client, stdin);
    }
    each(names, |name| {
        let c = rt.get(name)?;
        drop(rt.start(&c.id, Hello::default()).map_err(start_failure)?);
        println!("{name}");
        Ok(())
    })
}

fn hello_for(tty: bool, stdin: bool) -> Hello {
    let (rows, cols) = if tty {
        terminal_size().unwrap_or((0, 0))
    } else {
        (0, 0)
    };
    Hello {
        stdout: true,
        stderr: true,
        stdin,
        rows,
        cols,
    }
}

fn terminal_size() -> Option<(u16, u16)> {
    for fd in [1, 0, 2] {
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ fills a winsize.
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_row > 0 {
            return Some((ws.ws_row, ws.ws_col));
        }
    }
    None
}

/// Our terminal in raw mode until dropped.
struct RawMode {
    saved: libc::termios,
}

impl RawMode {
    fn enable() -> Option<RawMode> {
        // SAFETY: termios calls on our stdin with valid structs.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut saved) != 0 {
                return None;
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            if libc::tcsetattr(0, libc::TCSANOW, &raw) != 0 {
                return None;
            }
            Some(RawMode { saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the attributes we saved.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &self.saved) };
    }
}

/// Blocks SIGINT, SIGTERM and SIGWINCH and reads them from a signalfd, so they can be
/// forwarded to the container.
fn signal_fd() -> io::Result<OwnedFd> {
    // SAFETY: sigset and signalfd calls with valid pointers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGWINCH] {
            libc::sigaddset(&mut set, sig);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

const CTRL_P: u8 = 0x10;
const CTRL_Q: u8 = 0x11;

/// Copies between our stdio and an attach connection until the container exits (its exit
/// code), or the user detaches with Ctrl-p Ctrl-q on a tty (0).
fn pump(
    rt: &Runtime,
    c: &Container,
    client: runtime::Client,
    send_stdin: bool,
) -> anyhow::Result<u8> {
    let tty = c.config.tty;
    let _raw = (tty && send_stdin && io::stdin().is_terminal())
        .then(RawMode::enable)
        .flatten();
    let sock = client.into_stream();
    sock.set_nonblocking(true)?;
    let sigfd = signal_fd()?;
    let mut input = FrameBuffer::default();
    let mut outq: Vec<u8> = Vec::new();
    let mut stdin_open = send_stdin;
    let mut held_ctrl_p = false;
    let mut buf = vec![0u8; 32 * 1024];
    let mut stdout = io::stdout().lock();
    let mut stderr = io::stderr();
    loop {
        let mut fds = vec![libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLIN | if outq.is_empty() { 0 } else { libc::POLLOUT },
            revents: 0,
        }];
        fds.push(libc::pollfd {
            fd: sigfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        if stdin_open && outq.len() < 64 * 1024 {
            fds.push(libc::pollfd {
                fd: 0,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: poll over a live array.
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e.into());
        }
        if fds[0].revents & libc::POLLOUT != 0 {
            match (&sock).write(&outq) {
                Ok(n) => {
                    outq.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => outq.clear(),
            }
        }
        if fds[0].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            let n = match io::Read::read(&mut &sock, &mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(_) => 0,
            };
            if n == 0 {
                break;
            }
            input.extend(&buf[..n]);
            while let Some((kind, data)) = input.next_frame()? {
                match Event::from_frame(kind, data)? {
                    Event::Stdout(data) => {
                        stdout.write_all(&data)?;
                        stdout.flush()?;
                    }
                    Event::Stderr(data) => {
                        stderr.write_all(&data)?;
                    }
                    Event::Exit(code) => {
                        stdout.flush()?;
                        // The monitor closes the connection as it exits: then nothing of
                        // the container is left.
                        let mut client = runtime::Client::from_stream(sock);
                        client.drain();
                        return Ok(code as u8);
                    }
                    _ => {}
                }
            }
        }
        if fds[1].revents != 0 {
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: reading one siginfo record into a struct of that size.
            while unsafe {
                libc::read(
                    sigfd.as_raw_fd(),
                    &mut info as *mut _ as *mut libc::c_void,
                    size,
                )
            } == size as isize
            {
                let signo = info.ssi_signo as i32;
                if signo == libc::SIGWINCH {
                    if let Some((rows, cols)) = terminal_size() {
                        let mut data = rows.to_be_bytes().to_vec();
                        data.extend_from_slice(&cols.to_be_bytes());
                        outq.extend(attach::encode(Kind::Resize, &data));
                    }
                } else if let Err(e) = rt.kill(&c.id, signo) {
                    // On a connection of its own: never queued behind stdin the container
                    // has not read.
                    tracing::debug!(id = %c.id, signo, error = %e, "forwarding a signal failed");
                }
            }
        }
        if fds.len() > 2 && fds[2].revents != 0 {
            let n = read_fd(0, &mut buf);
            if n == 0 {
                stdin_open = false;
                if held_ctrl_p {
                    outq.extend(attach::encode(Kind::Stdin, &[CTRL_P]));
                }
                outq.extend(attach::encode(Kind::Stdin, &[]));
                continue;
            }
            let mut data = Vec::with_capacity(n + 1);
            for &b in &buf[..n] {
                if !tty {
                    data.push(b);
                } else if held_ctrl_p && b == CTRL_Q {
                    drop(_raw);
                    return Ok(0);
                } else if b == CTRL_P {
                    if held_ctrl_p {
                        data.push(CTRL_P);
                    }
                    held_ctrl_p = true;
                } else {
                    if held_ctrl_p {
                        data.push(CTRL_P);
                        held_ctrl_p = false;
                    }
                    data.push(b);
                }
            }
            if !data.is_empty() {
                outq.extend(attach::encode(Kind::Stdin, &data));
            }
        }
    }
    stdout.flush()?;
    // The monitor went away without an exit frame (killed): the state knows the rest.
    match rt.load(&c.id) {
        Ok(now) if !now.state.running => Ok(now.state.exit_code as u8),
        Ok(_) => anyhow::bail!("lost the connection to container {}", c.name),
        Err(runtime::Error::NoSuchContainer(_)) => Ok(runtime::GHOST_EXIT_CODE as u8),
        Err(e) => Err(e.into()),
    }
}

/// `read(2)` on a raw fd: 0 at end of file or on error.
fn read_fd(fd: RawFd, buf: &mut [u8]) -> usize {
    loop {
        // SAFETY: reading into a buffer we own.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        if n >= 0 {
            return n as usize;
        }
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return 0;
        }
    }
}

fn logs(
    rt: &Runtime,
    name: &str,
    follow: bool,
    timestamps: bool,
    tail: &str,
) -> anyhow::Result<u8> {
    let c = rt.get(name)?;
    let tail: Option<usize> = match tail {
        "all" | "" => None,
        n => Some(
            n.parse()
                .with_context(|| format!("invalid --tail value {n:?}: a number or \"all\""))?,
        ),
    };
    let mut client = None;
    let mut end = None;
    if follow && c.state.running {
        let hello = Hello {
            stdout: true,
            stderr: true,
            ..Hello::default()
        };
        if let Ok(mut cl) = rt.attach(&c.id, hello) {
            if let Ok(Some(Event::Attached { log_offset })) = cl.next_event() {
                end = Some(log_offset);
                client = Some(cl);
            }
        }
    }
    let mut entries = rt.logs(&c.id, 0, end)?;
    if let Some(n) = tail {
        let skip = entries.len().saturating_sub(n);
        entries.drain(..skip);
    }
    let mut stdout = io::stdout().lock();
    let mut stderr = io::stderr().lock();
    for e in &entries {
        let out: &mut dyn Write = if e.is_stderr() {
            &mut stderr
        } else {
            &mut stdout
        };
        if timestamps {
            write!(out, "{} ", e.time)?;
        }
        out.write_all(e.log.as_bytes())?;
    }
    stdout.flush()?;
    let Some(mut client) = client else {
        return Ok(0);
    };
    let stamp = || chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    while let Some(event) = client.next_event()? {
        match event {
            Event::Stdout(data) => {
                if timestamps {
                    write!(stdout, "{} ", stamp())?;
                }
                stdout.write_all(&data)?;
                stdout.flush()?;
            }
            Event::Stderr(data) => {
                if timestamps {
                    write!(stderr, "{} ", stamp())?;
                }
                stderr.write_all(&data)?;
            }
            Event::Exit(_) => break,
            _ => {}
        }
    }
    Ok(0)
}

/// Docker's `stringutils.Ellipsis`: at most `max` characters, the last one `…` when cut.
fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Image names for a listing, from one read of the repositories file (and of the graph's ids,
/// only when a name is no tag): `TagStore::lookup` and `TagStore::names` without a read per
/// row.
struct ImageNames {
    repositories: tagstore::Repositories,
    /// Each tagged image's first `repo:tag` (sorted, as `TagStore::names`).
    first: std::collections::HashMap<String, String>,
    graph: Option<graph::Graph>,
    ids: std::cell::OnceCell<Vec<String>>,
}

impl ImageNames {
    fn new(ctx: &Context) -> ImageNames {
        let repositories = ctx
            .tags_read()
            .map(|(_, repositories)| repositories)
            .unwrap_or_default();
        let mut first: std::collections::HashMap<String, String> = Default::default();
        for (repo, tags) in &repositories {
            for (tag, id) in tags {
                let name = format!("{repo}:{tag}");
                match first.get_mut(id) {
                    Some(current) if *current <= name => {}
                    Some(current) => *current = name,
                    None => {
                        first.insert(id.clone(), name);
                    }
                }
            }
        }
        ImageNames {
            repositories,
            first,
            graph: ctx.graph().ok(),
            ids: std::cell::OnceCell::new(),
        }
    }

    /// The id `name` names as `TagStore::lookup` resolves it: a tag first, else a full id or
    /// unique id prefix of an image that exists.
    fn resolve(&self, name: &str) -> Option<String> {
        let (repo, tag) = tagstore::parse_reference(name);
        let tag = tag
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "latest".to_string());
        if let Some(id) = self.repositories.get(&repo).and_then(|tags| tags.get(&tag)) {
            return Some(id.clone());
        }
        let is_hex =
            !name.is_empty() && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !is_hex {
            return None;
        }
        let ids = self.ids.get_or_init(|| {
            let mut ids: Vec<String> = self
                .graph
                .as_ref()
                .and_then(|g| g.all().ok())
                .unwrap_or_default()
                .into_iter()
                .map(|image| image.id)
                .collect();
            ids.sort();
            ids
        });
        let from = ids.partition_point(|id| id.as_str() < name);
        let mut matches = ids[from..].iter().take_while(|id| id.starts_with(name));
        match (matches.next(), matches.next()) {
            (Some(id), None) => Some(id.clone()),
            _ => None,
        }
    }

    fn first_name(&self, id: &str) -> Option<String> {
        self.first.get(id).cloned()
    }
}

fn ps(ctx: &Context, rt: &Runtime, all: bool, quiet: bool, no_trunc: bool) -> anyhow::Result<u8> {
    let containers: Vec<Container> = rt
        .list()?
        .into_iter()
        .filter(|c| all || c.state.running)
        .collect();
    let id = |c: &Container| {
        if no_trunc {
            c.id.clone()
        } else {
            short_id(&c.id).to_string()
        }
    };
    if quiet {
        let mut out = io::stdout().lock();
        for c in &containers {
            writeln!(out, "{}", id(c))?;
        }
        return Ok(0);
    }
    let names = ImageNames::new(ctx);
    let mut table = Table::new(&[
        "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES",
    ]);
    for c in &containers {
        // The name the user gave while it still names the container's image (Docker's
        // choice), otherwise another of its names, otherwise its short id.
        let given_still_names_it = names.resolve(&c.config.image).as_deref() == Some(&c.image);
        let image = if given_still_names_it && !graph::is_full_id(&c.config.image) {
            c.config.image.clone()
        } else {
            names
                .first_name(&c.image)
                .unwrap_or_else(|| short_id(&c.image).to_string())
        };
        let command = c.command_line();
        let command = if no_trunc {
            command
        } else {
            ellipsis(&command, 20)
        };
        let ports = c.network_settings.ports_summary();
        table.row(vec![
            id(c),
            image,
            format!("{command:?}"),
            ago(c.created),
            c.status(human_duration),
            ports,
            c.name.clone(),
        ]);
    }
    print!("{}", table.render());
    Ok(0)
}

/// `dock port`: every mapping as `80/tcp -> 0.0.0.0:49153`, or just the host side of one.
fn port(rt: &Runtime, name: &str, private: Option<&str>) -> anyhow::Result<u8> {
    let c = rt.get(name)?;
    let ports = &c.network_settings.ports;
    let mut out = io::stdout().lock();
    let Some(private) = private else {
        for (key, bindings) in ports {
            for b in bindings {
                writeln!(out, "{key} -> {}:{}", b.host_ip, b.host_port)?;
            }
        }
        return Ok(0);
    };
    let (number, proto) = private.split_once('/').unwrap_or((private, "tcp"));
    let valid = number.parse::<u16>().is_ok_and(|n| n > 0) && matches!(proto, "tcp" | "udp");
    if !valid {
        anyhow::bail!("invalid port {private:?}: expected PORT or PORT/tcp or PORT/udp");
    }
    let key = format!("{number}/{proto}");
    match ports.get(&key) {
        Some(bindings) if !bindings.is_empty() => {
            for b in bindings {
                writeln!(out, "{}:{}", b.host_ip, b.host_port)?;
            }
            Ok(0)
        }
        _ => anyhow::bail!("no public port {key} published for container {name}"),
    }
}

/// `KILL`, `SIGKILL`, `kill` or `9`.
fn parse_signal(s: &str) -> anyhow::Result<i32> {
    runtime::procs::signal_number(s).ok_or_else(|| anyhow::anyhow!("invalid signal: {s}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("sigterm").unwrap(), 15);
        assert_eq!(parse_signal("10").unwrap(), 10);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
    }

    #[test]
    fn commands_are_cut_like_docker() {
        assert_eq!(ellipsis("echo hi", 20), "echo hi");
        assert_eq!(
            ellipsis("sh -c while true; do sleep 1; done", 20),
            "sh -c while true; d…"
        );
    }
}
