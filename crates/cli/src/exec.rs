//! `dock exec`: a command in a running container. The CLI joins the container itself (it
//! is root; [`runtime::Runtime::exec`]): the process is our child, with our stdio as its own
//! (through a pipe where ours is a terminal, which a container must never hold), or a
//! terminal from the container's devpts with `-t`, whose master we copy to and from ours.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use clap::Args;
use runtime::exec::{ExecOptions, Stdio};

use crate::containers::{runtime, terminal_size, RawMode};
use crate::{Context, Failure};

#[derive(Args)]
pub struct ExecArgs {
    /// Detached mode: run the command in the background
    #[arg(short = 'd', long)]
    detach: bool,
    /// Keep stdin open and attach it
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Allocate a pseudo-TTY (from the container's /dev/pts)
    #[arg(short = 't', long)]
    tty: bool,
    /// Username or UID (format: <name|uid>[:<group|gid>]); default: the container's
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Set environment variables (KEY=VALUE, or KEY to pass ours)
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Working directory inside the container; default: the container's
    #[arg(short = 'w', long = "workdir")]
    workdir: Option<String>,
    /// Give the command every capability
    #[arg(long)]
    privileged: bool,
    /// The container (name, ID or unique ID prefix)
    container: String,
    /// The command and its arguments
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// `-e KEY` passes the value of KEY from our environment, if set (as `run -e`).
fn resolve_env(env: &[String]) -> Vec<String> {
    env.iter()
        .filter_map(|kv| {
            if kv.contains('=') {
                Some(kv.clone())
            } else {
                std::env::var(kv).ok().map(|v| format!("{kv}={v}"))
            }
        })
        .collect()
}

fn exec_failure(e: runtime::Error) -> anyhow::Error {
    match e {
        runtime::Error::Start { code, message } => Failure { code, message }.into(),
        other => other.into(),
    }
}

pub fn run(ctx: &Context, args: ExecArgs) -> anyhow::Result<u8> {
    let rt = runtime(ctx)?;
    let tty = args.tty && !args.detach;
    let opts = ExecOptions {
        cmd: args.command.clone(),
        env: resolve_env(&args.env),
        user: args.user.clone().unwrap_or_default(),
        working_dir: args.workdir.clone().unwrap_or_default(),
        tty,
        privileged: args.privileged,
    };
    if tty {
        return with_terminal(&rt, &args, &opts);
    }
    let mut outputs = Vec::new();
    let stdin = if args.interactive && !args.detach {
        pass(0, &mut Vec::new())?
    } else {
        File::open("/dev/null")?.into()
    };
    let (stdout, stderr) = if args.detach {
        (
            File::options().write(true).open("/dev/null")?.into(),
            File::options().write(true).open("/dev/null")?.into(),
        )
    } else {
        (pass(1, &mut outputs)?, pass(2, &mut outputs)?)
    };
    let started = rt
        .exec(
            &args.container,
            &opts,
            Stdio::Fds {
                stdin,
                stdout,
                stderr,
            },
        )
        .map_err(exec_failure)?;
    if args.detach {
        return Ok(0);
    }
    let code = runtime::exec::wait(started.pid)?;
    for copier in outputs {
        let _ = copier.join();
    }
    Ok(code as u8)
}

/// A descriptor for the process's `fd`: a copy of ours, or, where ours is a terminal, a pipe
/// whose other end a thread copies from or to ours.
fn pass(fd: RawFd, copiers: &mut Vec<std::thread::JoinHandle<()>>) -> io::Result<OwnedFd> {
    // SAFETY: borrowing one of our standard descriptors for the duration of this call.
    let ours = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    if !ours.is_terminal() {
        return ours.try_clone_to_owned();
    }
    let (reader, writer) = io::pipe()?;
    let ours = ours.try_clone_to_owned()?;
    if fd == 0 {
        // Not joined: it may block on our terminal after the command is gone.
        std::thread::spawn(move || {
            let _ = io::copy(&mut File::from(ours), &mut { writer });
        });
        Ok(reader.into())
    } else {
        copiers.push(std::thread::spawn(move || {
            let _ = io::copy(&mut { reader }, &mut File::from(ours));
        }));
        Ok(writer.into())
    }
}

/// `-t`: copies between our stdio and the terminal's master until the command exits, and
/// passes our window size on.
fn with_terminal(rt: &runtime::Runtime, args: &ExecArgs, opts: &ExecOptions) -> anyhow::Result<u8> {
    let (rows, cols) = terminal_size().unwrap_or((0, 0));
    let started = rt
        .exec(&args.container, opts, Stdio::Terminal { rows, cols })
        .map_err(exec_failure)?;
    let master = started
        .terminal
        .ok_or_else(|| anyhow::anyhow!("exec did not return a terminal"))?;
    let send_stdin = args.interactive;
    let _raw = (send_stdin && io::stdin().is_terminal())
        .then(RawMode::enable)
        .flatten();
    // SAFETY: pidfd_open of our own, not yet reaped child.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, started.pid.as_raw(), 0) };
    if pidfd < 0 {
        return Err(io::Error::last_os_error().into());
    }
    // SAFETY: a fresh descriptor we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
    let sigfd = winch_fd()?;
    runtime::monitor::set_nonblocking(master.as_raw_fd())?;
    let mut term = File::from(master);
    let mut stdout = io::stdout().lock();
    let mut buf = vec![0u8; 32 * 1024];
    let mut inq: Vec<u8> = Vec::new();
    let mut stdin_open = send_stdin;
    let mut exited = false;
    loop {
        let mut fds = vec![
            libc::pollfd {
                fd: term.as_raw_fd(),
                events: libc::POLLIN | if inq.is_empty() { 0 } else { libc::POLLOUT },
                revents: 0,
            },
            libc::pollfd {
                fd: sigfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: pidfd.as_raw_fd(),
                events: if exited { 0 } else { libc::POLLIN },
                revents: 0,
            },
        ];
        if stdin_open && inq.len() < 64 * 1024 {
            fds.push(libc::pollfd {
                fd: 0,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // After the command exited: only what is already in the terminal, then stop.
        let timeout = if exited { 0 } else { -1 };
        // SAFETY: poll over a live array.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e.into());
        }
        if n == 0 && exited {
            break;
        }
        if fds[0].revents & libc::POLLOUT != 0 {
            match term.write(&inq) {
                Ok(n) => {
                    inq.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => inq.clear(),
            }
        }
        if fds[0].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            match term.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    stdout.write_all(&buf[..n])?;
                    stdout.flush()?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // EIO: the last holder of the terminal closed it.
                Err(_) => break,
            }
        }
        if fds[1].revents != 0 {
            let mut info = [0u8; 128];
            // SAFETY: draining signalfd records into a buffer of one record's size.
            while unsafe { libc::read(sigfd.as_raw_fd(), info.as_mut_ptr().cast(), info.len()) } > 0
            {
            }
            if let Some((rows, cols)) = terminal_size() {
                let ws = libc::winsize {
                    ws_row: rows,
                    ws_col: cols,
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                // SAFETY: TIOCSWINSZ with a valid winsize on the master we hold.
                unsafe { libc::ioctl(term.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
            }
        }
        if fds[2].revents != 0 {
            exited = true;
        }
        if fds.len() > 3 && fds[3].revents != 0 {
            let n = io::stdin().lock().read(&mut buf).unwrap_or(0);
            if n == 0 {
                stdin_open = false;
            } else {
                inq.extend_from_slice(&buf[..n]);
            }
        }
    }
    stdout.flush()?;
    drop(_raw);
    Ok(runtime::exec::wait(started.pid)? as u8)
}

/// SIGWINCH, blocked and read from a signalfd.
fn winch_fd() -> io::Result<OwnedFd> {
    // SAFETY: sigset and signalfd calls with valid pointers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGWINCH);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}
