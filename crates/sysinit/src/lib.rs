//! Starts a container's first process.
//!
//! [`spawn`] clones a child into new pid, mount, uts, ipc and net namespaces (and into its cgroup2
//! cgroup, [`Cgroups`]). The child builds the container's mount table (rootfs bind, the
//! [`Mount`]s over it: volumes, binds, tmpfs and the container's /etc files, pivot_root, /proc,
//! /sys, a fresh /dev, /dev/pts, /dev/shm, /dev/mqueue, the masked and read-only paths) and sets
//! the hostname, while the caller's `before_start(pid)` hook runs in the parent (the runtime
//! makes the v1 cgroups and wires the network there). Once that is done, it joins its v1
//! cgroups, unshares its cgroup namespace, sets the working directory and the controlling
//! terminal, installs the seccomp filter, switches to the user with the container's capability
//! set, and execs the command, which becomes PID 1 of the container.
//! [`Security`] says how it is confined: Docker's default by default ([`caps`], [`seccomp`]).
//!
//! # Safety model
//!
//! The child is created with a raw `clone` and runs without re-exec, so it is a copy of the parent
//! that may have been multi-threaded (cargo's test harness is). Everything it needs (C strings,
//! argv/envp arrays, PATH candidates, the resolved user) is prepared in the parent before the
//! clone; the child only makes raw system calls until `execve`: no allocation, no locks, no
//! logging, no libc wrappers that know about threads (set*id go through `syscall` directly).
//! `tracing` records the plan in the parent instead.
//!
//! Failures before exec travel back as an 8-byte record over a close-on-exec pipe; end-of-file
//! without a record means `execve` succeeded.

mod bpf;
pub mod caps;
mod child;
pub mod netns;
pub mod seccomp;
pub mod user;

use std::ffi::CString;
use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::sys::socket;
pub use nix::unistd::Pid;
pub use user::ExecUser;

use child::{Plan, Record};

/// PATH used to find the command when the environment has none (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything needed to start the container's first process.
#[derive(Debug)]
pub struct InitSpec {
    /// The mounted rootfs on the host; it becomes `/` of the container.
    pub rootfs: PathBuf,
    /// argv; `args[0]` is looked up in the container's PATH unless it contains a `/`.
    pub args: Vec<String>,
    /// The complete environment of the command (`KEY=value`).
    pub env: Vec<String>,
    /// `""` = root; otherwise `name|uid[:group|gid]`, looked up in the container's /etc files.
    pub user: String,
    pub hostname: String,
    /// Working directory inside the container, created when missing; `""` means `/`.
    pub workdir: String,
    pub stdio: Stdio,
    /// Mounts over the rootfs (volumes, binds, tmpfs, the container's /etc files), set up in
    /// this order before pivot_root; a parent must come before what is mounted below it.
    pub mounts: Vec<Mount>,
    /// The cgroups the child is born in (cgroup2) and joins after the hook (v1).
    pub cgroups: Cgroups,
    /// A network namespace made ahead ([`netns::NetnsAhead`]) for the child to be born in;
    /// `None` clones it a new one (unless `run.host_network`).
    pub netns: Option<OwnedFd>,
    /// Capabilities, seccomp, no_new_privs, masked and read-only paths.
    pub security: Security,
    /// `--init`, `--read-only`, `--network host`.
    pub run: RunFlags,
}

/// What `run` flags change in how the container starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunFlags {
    /// A reaper is PID 1 (`dock-init`): it forks the command, forwards it every signal,
    /// reaps every orphan, and exits with the command's status (128+N for signal N).
    pub init: bool,
    /// `/` is remounted read-only once everything is mounted (/dev, /dev/shm, /proc and
    /// whatever else is mounted stay as they are).
    pub readonly_rootfs: bool,
    /// Stay in the host's network namespace (no CLONE_NEWNET).
    pub host_network: bool,
}

/// How the command is confined. [`Security::default`] is Docker's default container without
/// its seccomp filter (compile one with [`seccomp::compile`] and set it).
#[derive(Debug, Clone)]
pub struct Security {
    /// The bounding set; root also gets it as its effective and permitted sets, any other user
    /// ends with empty sets (as in Docker). See [`caps`].
    pub capabilities: u64,
    /// Installed before the capabilities are dropped, or right before exec with
    /// `no_new_privileges`.
    pub seccomp: Option<seccomp::Program>,
    /// `prctl(PR_SET_NO_NEW_PRIVS)` before exec (`--security-opt no-new-privileges`).
    pub no_new_privileges: bool,
    /// Paths hidden from the container: files get /dev/null bound over them, directories an
    /// empty read-only tmpfs; paths that do not exist are skipped.
    pub masked_paths: Vec<String>,
    /// Paths bound read-only onto themselves; paths that do not exist are skipped.
    pub readonly_paths: Vec<String>,
    /// Mount /sys read-write (privileged containers); read-only otherwise.
    pub writable_sys: bool,
}

impl Default for Security {
    fn default() -> Security {
        Security {
            capabilities: caps::DEFAULT,
            seccomp: None,
            no_new_privileges: false,
            masked_paths: default_masked_paths(),
            readonly_paths: DEFAULT_READONLY_PATHS
                .iter()
                .map(|p| p.to_string())
                .collect(),
            writable_sys: false,
        }
    }
}

impl Security {
    /// `--privileged`: every capability (of this kernel that we have, [`caps::available`]), no
    /// seccomp, nothing masked or read-only, /sys writable.
    pub fn privileged() -> Security {
        Security {
            capabilities: caps::available(),
            seccomp: None,
            no_new_privileges: false,
            masked_paths: Vec::new(),
            readonly_paths: Vec::new(),
            writable_sys: true,
        }
    }
}

/// Docker 28's masked paths (moby's `oci.DefaultSpec`).
pub const DEFAULT_MASKED_PATHS: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker 28's read-only paths.
pub const DEFAULT_READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// [`DEFAULT_MASKED_PATHS`], owned: what `docker inspect` shows as `HostConfig.MaskedPaths`
/// of a default Docker 28 container.
pub fn default_masked_paths() -> Vec<String> {
    DEFAULT_MASKED_PATHS.iter().map(|p| p.to_string()).collect()
}

/// One mount over the container's rootfs. The destination is resolved inside the rootfs
/// (`openat2` with `RESOLVE_IN_ROOT`: no symlink leads out of it) and created when missing,
/// as a directory, or as an empty file when the source is not a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Absolute path in the container.
    pub destination: String,
    pub kind: MountKind,
    /// Read-only (recursively, for a bind).
    pub readonly: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// A recursive bind (`MS_BIND|MS_REC`, as a detached `open_tree` clone) of a host path.
    Bind { source: PathBuf },
    /// A fresh tmpfs; `options` are tmpfs's own (`size=64m,mode=1777`) and the flags
    /// `ro`, `rw`, `nosuid`, `suid`, `nodev`, `dev`, `noexec`, `exec`. Docker's default flags
    /// (`nosuid,nodev,noexec`) apply unless overridden.
    Tmpfs { options: String },
}

/// Where the container's first process joins its cgroups. Moving another process into a
/// cgroup takes the kernel's global threadgroup lock, whose first write lock waits for an RCU
/// grace period (5-20 ms); these two ways do not.
#[derive(Debug, Default)]
pub struct Cgroups {
    /// A cgroup2 directory the child is born in (`clone3` with `CLONE_INTO_CGROUP`).
    pub unified: Option<OwnedFd>,
    /// cgroup v1 `tasks` files the child writes `0` to (a process moving its own single
    /// thread).
    pub v1_tasks: Vec<V1Tasks>,
}

/// A cgroup v1 `tasks` file, named below a directory open since before the clone: [`spawn`]'s
/// hook may create the cgroup while the child builds its root, and the child joins after the
/// hook (before its cgroup namespace and its command).
#[derive(Debug)]
pub struct V1Tasks {
    /// A directory that exists when the child is cloned (the hierarchy's root).
    pub dir: OwnedFd,
    /// The `tasks` file below `dir`.
    pub relative: PathBuf,
    /// Its whole path, for messages.
    pub path: PathBuf,
}

/// The command's standard streams.
#[derive(Debug)]
pub enum Stdio {
    /// These descriptors become its stdin, stdout and stderr.
    Fds {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    /// A pseudo-terminal from the container's own `/dev/pts`, so the command's `tty` names it
    /// (`/dev/pts/0`) and it belongs to the command's user: its slave becomes stdin, stdout,
    /// stderr and the controlling terminal, and [`spawn`] returns its master. The window
    /// size is set before the command runs when both numbers are non-zero.
    Terminal { rows: u16, cols: u16 },
}

/// A started container init.
#[derive(Debug)]
pub struct Started {
    /// Its pid in the caller's pid namespace; the caller reaps it.
    pub pid: Pid,
    /// The master of its terminal, with [`Stdio::Terminal`].
    pub terminal: Option<OwnedFd>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpawnError {
    /// The command does not exist (exit code 127); the message names it.
    #[error("{0}")]
    NotFound(String),
    /// The command exists but cannot be executed (exit code 126); the message names it.
    #[error("{0}")]
    NotExecutable(String),
    /// The container could not be set up; the message names the step and path.
    #[error("{0}")]
    Setup(String),
    /// The caller's `before_start` hook failed; the child was killed and reaped.
    #[error("{0}")]
    Hook(String),
}

impl SpawnError {
    /// The exit code Docker reports for this failure: 127 and 126 for command problems, 125 for
    /// everything on the runtime's side.
    pub fn exit_code(&self) -> i32 {
        match self {
            SpawnError::NotFound(_) => 127,
            SpawnError::NotExecutable(_) => 126,
            SpawnError::Setup(_) | SpawnError::Hook(_) => 125,
        }
    }
}

/// With a terminal, the pair the child sends its pty master back over before it execs (ours,
/// theirs); none without one.
fn console_pair(stdio: &Stdio) -> Result<(Option<OwnedFd>, Option<OwnedFd>), SpawnError> {
    match stdio {
        Stdio::Terminal { .. } => {
            let (ours, theirs) = socket::socketpair(
                socket::AddressFamily::Unix,
                socket::SockType::SeqPacket,
                None,
                socket::SockFlag::SOCK_CLOEXEC,
            )
            .map_err(|e| setup_err("create terminal socket", e.into()))?;
            Ok((Some(ours), Some(theirs)))
        }
        Stdio::Fds { .. } => Ok((None, None)),
    }
}

/// Starts the container's first process and returns its pid (in the caller's pid namespace),
/// and its terminal if it has one, once the command was exec'd, or the reason it could not be.
///
/// `before_start(pid)` runs in the caller while the child builds its mount table; the child
/// waits for it before it joins its v1 cgroups (which the hook may create), drops privileges
/// and execs. A file the hook changes that the child
/// bind-mounts (the container's `hosts`) must be written in place. If the hook fails the child
/// is killed and reaped.
///
/// The caller reaps the returned pid. Call it from a process that is not concurrently forking
/// with inherited non-close-on-exec descriptors it cares about; multi-threaded callers are fine
/// (see the crate docs).
pub fn spawn(
    spec: InitSpec,
    before_start: impl FnOnce(Pid) -> Result<(), String>,
) -> Result<Started, SpawnError> {
    let (sync_read, sync_write) = pipe().map_err(|e| setup_err("create sync pipe", e))?;
    let (error_read, error_write) = pipe().map_err(|e| setup_err("create error pipe", e))?;
    let (console_ours, console_theirs) = console_pair(&spec.stdio)?;
    let mut plan = prepare(&spec, console_theirs, true)?;

    tracing::debug!(capabilities = %format!("{:#018x}", spec.security.capabilities),
        seccomp_instructions = spec.security.seccomp.as_ref().map_or(0, |p| p.instructions().len()),
        no_new_privileges = spec.security.no_new_privileges, masked = ?spec.security.masked_paths,
        writable_sys = spec.security.writable_sys, "container confinement");
    tracing::debug!(rootfs = %spec.rootfs.display(), args = ?spec.args, hostname = %spec.hostname,
        "cloning container init into new pid, mount, uts, ipc and net namespaces");
    let mut flags = libc::CLONE_NEWPID
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWNET
        | libc::SIGCHLD;
    if spec.run.host_network || spec.netns.is_some() {
        flags &= !libc::CLONE_NEWNET;
    }
    // SAFETY: a fork-like clone (no CLONE_VM, no new stack): the child gets a copy of the address
    // space and runs only `child::run`, which never returns and makes only raw system calls.
    let clone = || unsafe { clone_init(flags as u64, spec.cgroups.unified.as_ref()) };
    // Into a namespace made ahead: this thread is in it for the clone, and the child inherits
    // it from the thread. Only the parent goes back.
    let ret = match (&spec.netns, spec.run.host_network) {
        (Some(netns), false) => {
            let host = netns::enter(netns)
                .map_err(|e| setup_err("enter the container's network namespace", e))?;
            let ret = clone();
            if ret != 0 {
                netns::leave(host);
            }
            ret
        }
        _ => clone(),
    };
    if ret < 0 {
        return Err(setup_err(
            "clone container init",
            io::Error::last_os_error(),
        ));
    }
    if ret == 0 {
        // SAFETY: we are the freshly cloned child; the descriptors are ours.
        unsafe {
            child::run(
                &plan,
                sync_read.as_raw_fd(),
                sync_write.as_raw_fd(),
                error_read.as_raw_fd(),
                error_write.as_raw_fd(),
            )
        }
    }
    let pid = Pid::from_raw(ret as i32);
    // Our copies of the child's ends, and the stdio it now holds, must go, or EOF never comes.
    drop(sync_read);
    drop(error_write);
    plan.close_stdio();
    drop(spec);

    tracing::debug!(%pid, "running before_start hook");
    let mut error_file = fs::File::from(error_read);
    if let Err(msg) = before_start(pid) {
        tracing::debug!(%pid, error = %msg, "before_start failed, killing container init");
        // SAFETY: plain kill of our own, not yet reaped child.
        unsafe { libc::kill(pid.as_raw(), libc::SIGKILL) };
        reap(pid);
        // The child sets up its root while the hook runs: when that failed first (and the
        // hook failed for want of the child), its own report says what went wrong.
        let mut record = [0u8; Record::LEN];
        return Err(match read_full(&mut error_file, &mut record) {
            Ok(Record::LEN) => plan.describe(Record::decode(&record)),
            _ => SpawnError::Hook(msg),
        });
    }
    // If the child's setup failed meanwhile, it is gone and its report waits on the error
    // pipe: that report, not the failed release, is what to say.
    let mut sync_file = fs::File::from(sync_write);
    let released = io::Write::write_all(&mut sync_file, b"1");
    drop(sync_file);

    let mut record = [0u8; Record::LEN];
    let filled = match read_full(&mut error_file, &mut record) {
        Ok(filled) => filled,
        Err(e) => {
            reap(pid);
            return Err(setup_err("read container init status", e));
        }
    };
    if filled == 0 {
        if let Err(e) = released {
            reap(pid);
            return Err(setup_err("release container init", e));
        }
        tracing::debug!(%pid, "container command exec'd");
        let terminal = match console_ours {
            Some(console) => match receive_fd(&console) {
                Ok(master) => Some(master),
                Err(e) => {
                    // SAFETY: plain kill of our own, not yet reaped child.
                    unsafe { libc::kill(pid.as_raw(), libc::SIGKILL) };
                    reap(pid);
                    return Err(setup_err("receive the container's terminal", e));
                }
            },
            None => None,
        };
        return Ok(Started { pid, terminal });
    }
    reap(pid);
    if filled < record.len() {
        return Err(SpawnError::Setup(
            "container init sent a truncated error report".into(),
        ));
    }
    Err(plan.describe(Record::decode(&record)))
}

/// A process to start in a running container (`dock exec`).
#[derive(Debug)]
pub struct ExecSpec {
    /// A pidfd of the container's init: the process joins every namespace it has.
    pub init: OwnedFd,
    /// The init's root as seen from here (`/proc/PID/root`), where the user is looked up.
    pub root: PathBuf,
    /// argv; `args[0]` is looked up in the container's PATH unless it contains a `/`.
    pub args: Vec<String>,
    pub env: Vec<String>,
    /// `""` = root; otherwise `name|uid[:group|gid]`, from the container's /etc files.
    pub user: String,
    /// Working directory in the container (not created); `""` means `/`.
    pub workdir: String,
    /// With [`Stdio::Terminal`] the pty comes from the container's own devpts.
    pub stdio: Stdio,
    /// The container's cgroups (its process leaf in each hierarchy).
    pub cgroups: Cgroups,
    /// Capabilities, seccomp and no_new_privs; the paths are the container's already.
    pub security: Security,
}

/// Starts a process in the namespaces, cgroups and root of a running container, as its user
/// with its confinement, and returns its pid (in the caller's pid namespace; the caller
/// reaps it) once the command was exec'd, or the reason it could not be.
///
/// The caller clones an intermediate child into the container's cgroup2 cgroup; it joins
/// the v1 cgroups and the init's namespaces (`setns` on its pidfd), and forks the command's
/// process into the pid namespace as the caller's own child (`CLONE_PARENT`). From there on
/// it is the init's path: stdio, working directory, session and terminal (opened in the
/// container's devpts), seccomp, user, capabilities, exec with 126/127 reporting. Safe in a
/// multi-threaded caller (see the crate docs).
pub fn exec(spec: ExecSpec) -> Result<Started, SpawnError> {
    let (pid_read, pid_write) = pipe().map_err(|e| setup_err("create pid pipe", e))?;
    let (error_read, error_write) = pipe().map_err(|e| setup_err("create error pipe", e))?;
    let (console_ours, console_theirs) = console_pair(&spec.stdio)?;
    let init = spec.init;
    let spec = InitSpec {
        rootfs: spec.root,
        args: spec.args,
        env: spec.env,
        user: spec.user,
        hostname: String::new(),
        workdir: spec.workdir,
        stdio: spec.stdio,
        mounts: Vec::new(),
        cgroups: spec.cgroups,
        netns: None,
        // No reaper and no remount: the container has its own, and its root already is.
        run: RunFlags::default(),
        security: Security {
            masked_paths: Vec::new(),
            readonly_paths: Vec::new(),
            ..spec.security
        },
    };
    let mut plan = prepare(&spec, console_theirs, false)?;
    tracing::debug!(args = ?spec.args, user = %spec.user, workdir = %spec.workdir,
        capabilities = %format!("{:#018x}", spec.security.capabilities),
        seccomp = spec.security.seccomp.is_some(), "exec into a running container");
    // SAFETY: a fork-like clone, as in `spawn`; the child runs only `child::run_exec`.
    let ret = unsafe { clone_init(libc::SIGCHLD as u64, spec.cgroups.unified.as_ref()) };
    if ret < 0 {
        return Err(setup_err("clone exec process", io::Error::last_os_error()));
    }
    if ret == 0 {
        // SAFETY: we are the freshly cloned child; the descriptors are ours.
        unsafe {
            child::run_exec(
                &plan,
                init.as_raw_fd(),
                pid_write.as_raw_fd(),
                error_write.as_raw_fd(),
            )
        }
    }
    let intermediate = Pid::from_raw(ret as i32);
    drop(pid_write);
    drop(error_write);
    plan.close_stdio();
    drop(spec);

    let mut pid_bytes = [0u8; 4];
    let got = read_full(&mut fs::File::from(pid_read), &mut pid_bytes);
    reap(intermediate);
    let pid = match got {
        Ok(4) => Some(Pid::from_raw(i32::from_ne_bytes(pid_bytes))),
        Ok(_) => None,
        Err(e) => return Err(setup_err("read the exec process id", e)),
    };
    let mut record = [0u8; Record::LEN];
    let filled = read_full(&mut fs::File::from(error_read), &mut record);
    let filled = match filled {
        Ok(n) => n,
        Err(e) => {
            if let Some(pid) = pid {
                // SAFETY: plain kill of our own, not yet reaped child.
                unsafe { libc::kill(pid.as_raw(), libc::SIGKILL) };
                reap(pid);
            }
            return Err(setup_err("read exec process status", e));
        }
    };
    match (pid, filled) {
        (Some(pid), 0) => {
            tracing::debug!(%pid, "exec'd in the container");
            let terminal = match console_ours {
                Some(console) => match receive_fd(&console) {
                    Ok(master) => Some(master),
                    Err(e) => {
                        // SAFETY: plain kill of our own, not yet reaped child.
                        unsafe { libc::kill(pid.as_raw(), libc::SIGKILL) };
                        reap(pid);
                        return Err(setup_err("receive the exec process's terminal", e));
                    }
                },
                None => None,
            };
            Ok(Started { pid, terminal })
        }
        (pid, filled) => {
            if let Some(pid) = pid {
                reap(pid);
            }
            if filled < Record::LEN {
                return Err(SpawnError::Setup(
                    "exec process ended without a report".into(),
                ));
            }
            Err(plan.describe(Record::decode(&record)))
        }
    }
}

/// Reads until `buf` is full or end of file; the number of bytes read.
fn read_full(file: &mut fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// struct clone_args, as far as clone3 is used here.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// A fork-like clone with `flags` (namespaces and the exit signal), into `cgroup` when given.
///
/// # Safety
/// As fork: the child must only make async-signal-safe calls until it execs or exits.
unsafe fn clone_init(flags: u64, cgroup: Option<&OwnedFd>) -> libc::c_long {
    match cgroup {
        None => libc::syscall(
            libc::SYS_clone,
            flags as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        ),
        Some(dir) => {
            let args = CloneArgs {
                flags: (flags & !0xff) | CLONE_INTO_CGROUP,
                exit_signal: flags & 0xff,
                cgroup: dir.as_raw_fd() as u64,
                ..CloneArgs::default()
            };
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                size_of::<CloneArgs>(),
            )
        }
    }
}

/// The descriptor the child sent before exec (already queued: the child execs only after).
fn receive_fd(console: &OwnedFd) -> io::Result<OwnedFd> {
    let mut data = [0u8; 1];
    let mut iov = [io::IoSliceMut::new(&mut data)];
    let mut space = nix::cmsg_space!(RawFd);
    let message = socket::recvmsg::<()>(
        console.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        socket::MsgFlags::MSG_DONTWAIT | socket::MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    for cmsg in message.cmsgs().map_err(io::Error::from)? {
        if let socket::ControlMessageOwned::ScmRights(fds) = cmsg {
            let mut fds = fds.into_iter();
            if let Some(fd) = fds.next() {
                // SAFETY: the kernel just installed these descriptors for us.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                for extra in fds {
                    // SAFETY: as above; not ours to keep.
                    drop(unsafe { OwnedFd::from_raw_fd(extra) });
                }
                return Ok(owned);
            }
        }
    }
    Err(io::Error::other("no descriptor in the message"))
}

/// Builds everything the child needs, so that it does not allocate after the clone.
/// `create_workdir`: make the working directory when it is missing (the init; an exec'd
/// process fails instead, as Docker's).
fn prepare(
    spec: &InitSpec,
    console: Option<OwnedFd>,
    create_workdir: bool,
) -> Result<Plan, SpawnError> {
    let command = spec
        .args
        .first()
        .ok_or_else(|| SpawnError::Setup("no command given".into()))?;
    if command.is_empty() {
        return Err(SpawnError::NotFound(child::not_found_message(command)));
    }
    let rootfs = open_dir(&spec.rootfs)?;
    let passwd = read_in_root(&rootfs, &spec.rootfs, "etc/passwd")?;
    let group = read_in_root(&rootfs, &spec.rootfs, "etc/group")?;
    let user = user::resolve(&spec.user, passwd.as_deref(), group.as_deref())
        .map_err(SpawnError::Setup)?;
    tracing::debug!(user = %spec.user, uid = user.uid, gid = user.gid, groups = ?user.groups, "resolved container user");

    let path_var = spec
        .env
        .iter()
        .rev()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let candidates: Vec<String> = if command.contains('/') {
        vec![command.clone()]
    } else {
        path_var
            .split(':')
            .map(|dir| if dir.is_empty() { "." } else { dir })
            .map(|dir| format!("{}/{command}", dir.trim_end_matches('/')))
            .collect()
    };

    let workdir = if spec.workdir.is_empty() {
        "/".to_string()
    } else {
        spec.workdir.clone()
    };
    if !workdir.starts_with('/') {
        return Err(SpawnError::Setup(format!(
            "working directory {workdir} is not absolute"
        )));
    }
    let mut workdir_parents = Vec::new();
    let mut prefix = String::new();
    for part in workdir
        .split('/')
        .filter(|p| create_workdir && !p.is_empty())
    {
        prefix.push('/');
        prefix.push_str(part);
        workdir_parents.push(cstring(&prefix, "working directory")?);
    }

    let mut stdio_dups = Vec::with_capacity(3);
    let mut terminal = None;
    match &spec.stdio {
        Stdio::Fds {
            stdin,
            stdout,
            stderr,
        } => {
            for (name, fd) in ["stdin", "stdout", "stderr"]
                .iter()
                .zip([stdin, stdout, stderr])
            {
                stdio_dups.push(
                    dup_above_stdio(fd.as_raw_fd())
                        .map_err(|e| setup_err(&format!("duplicate {name}"), e))?,
                );
            }
        }
        Stdio::Terminal { rows, cols } => terminal = Some((*rows, *cols)),
    }

    Plan::new(child::PlanInput {
        rootfs: cstring_path(&spec.rootfs)?,
        hostname: cstring(&spec.hostname, "hostname")?,
        workdir: cstring(&workdir, "working directory")?,
        workdir_parents,
        mounts: spec
            .mounts
            .iter()
            .map(child::MountPlan::new)
            .collect::<Result<_, _>>()?,
        terminal,
        console,
        user,
        args: spec
            .args
            .iter()
            .map(|a| cstring(a, "argument"))
            .collect::<Result<_, _>>()?,
        env: spec
            .env
            .iter()
            .map(|e| cstring(e, "environment variable"))
            .collect::<Result<_, _>>()?,
        candidates: candidates
            .iter()
            .map(|c| cstring(c, "command"))
            .collect::<Result<_, _>>()?,
        stdio: stdio_dups,
        cgroup_tasks: spec
            .cgroups
            .v1_tasks
            .iter()
            .map(|tasks| {
                let dir = tasks
                    .dir
                    .try_clone()
                    .map_err(|e| setup_err(&format!("duplicate {}", tasks.path.display()), e))?;
                Ok(child::JoinTasks {
                    dir,
                    relative: cstring_path(&tasks.relative)?,
                })
            })
            .collect::<Result<_, SpawnError>>()?,
        cgroup_task_paths: spec
            .cgroups
            .v1_tasks
            .iter()
            .map(|tasks| tasks.path.clone())
            .collect(),
        security: spec.security.clone(),
        masked: spec
            .security
            .masked_paths
            .iter()
            .map(|p| cstring(p, "masked path"))
            .collect::<Result<_, _>>()?,
        readonly: spec
            .security
            .readonly_paths
            .iter()
            .map(|p| cstring(p, "read-only path"))
            .collect::<Result<_, _>>()?,
        run: spec.run,
        init_title: init_title(&spec.args),
        arg_area: if spec.run.init { arg_area() } else { None },
    })
}

/// What `ps` shows for the reaper: `dock-init -- CMD ARGS`, as Docker's `docker-init -- ...`.
fn init_title(args: &[String]) -> Vec<u8> {
    let mut title = b"dock-init\0--\0".to_vec();
    for arg in args {
        title.extend_from_slice(arg.as_bytes());
        title.push(0);
    }
    title
}

/// The bounds of this process's argument strings (`arg_start`, `arg_end` of
/// /proc/self/stat): the reaper, a copy of us, writes its title there.
fn arg_area() -> Option<(usize, usize)> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Field 3 (state) is fields[0]: arg_start is field 48, arg_end field 49.
    let start = fields.get(45)?.parse().ok()?;
    let end = fields.get(46)?.parse().ok()?;
    (end > start).then_some((start, end))
}

fn setup_err(what: &str, err: io::Error) -> SpawnError {
    SpawnError::Setup(format!("{what}: {}", os_error_text(&err)))
}

fn cstring(s: &str, what: &str) -> Result<CString, SpawnError> {
    CString::new(s).map_err(|_| SpawnError::Setup(format!("{what} {s:?} contains a nul byte")))
}

fn cstring_path(path: &Path) -> Result<CString, SpawnError> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| SpawnError::Setup(format!("path {} contains a nul byte", path.display())))
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A close-on-exec copy numbered 3 or above, so the child's dup2 onto 0, 1 and 2 cannot clobber
/// another of its stdio descriptors.
fn dup_above_stdio(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor the caller owns.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dup` is a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}

fn open_dir(path: &Path) -> Result<OwnedFd, SpawnError> {
    let c_path = cstring_path(path)?;
    // SAFETY: plain open of a nul-terminated path.
    let fd = unsafe {
        libc::open(
            c_path.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        let err = io::Error::last_os_error();
        return Err(SpawnError::Setup(format!(
            "open rootfs {}: {}",
            path.display(),
            os_error_text(&err)
        )));
    }
    // SAFETY: `fd` is a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[repr(C)]
pub(crate) struct OpenHow {
    pub(crate) flags: u64,
    pub(crate) mode: u64,
    pub(crate) resolve: u64,
}

/// How often an `openat2` that answers EAGAIN is tried: with `RESOLVE_IN_ROOT` or
/// `RESOLVE_BENEATH` the kernel gives up a lookup that a rename or mount anywhere on the
/// system raced with (a ".." could have escaped), and says to try again.
pub(crate) const OPENAT2_TRIES: u32 = 64;

/// `openat2(dir, path, {flags, resolve})`: e.g. `RESOLVE_IN_ROOT` to look `path` up inside a
/// container's rootfs as if it were `/`, so no symlink of the image reaches the host. Tried
/// again while the kernel answers EAGAIN (see [`OPENAT2_TRIES`]).
pub fn openat2(
    dir: std::os::fd::BorrowedFd<'_>,
    path: &std::ffi::CStr,
    flags: libc::c_int,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags: flags as u64,
        mode: 0,
        resolve,
    };
    let mut tries = 0;
    let fd = loop {
        // SAFETY: openat2 with a valid dirfd, a nul-terminated path and an open_how of its size.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                size_of::<OpenHow>(),
            )
        };
        tries += 1;
        if fd >= 0 {
            break fd;
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EAGAIN) || tries == OPENAT2_TRIES {
            return Err(err);
        }
    };
    // SAFETY: `fd` is a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Reads `rel` inside the rootfs with symlinks resolved as if the rootfs were `/` (an image's
/// absolute symlink must not make us read the host's file). `None` when it does not exist.
fn read_in_root(root: &OwnedFd, root_path: &Path, rel: &str) -> Result<Option<String>, SpawnError> {
    let c_rel = cstring(rel, "path")?;
    let path = root_path.join(rel);
    let opened = openat2(
        std::os::fd::AsFd::as_fd(root),
        &c_rel,
        libc::O_RDONLY | libc::O_CLOEXEC,
        libc::RESOLVE_IN_ROOT,
    );
    let fd = match opened {
        Ok(fd) => fd,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(SpawnError::Setup(format!(
                "open {}: {}",
                path.display(),
                os_error_text(&err)
            )))
        }
    };
    let mut file = fs::File::from(fd);
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| {
        SpawnError::Setup(format!("read {}: {}", path.display(), os_error_text(&e)))
    })?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// An OS error as our messages want it: "no such file or directory", without "(os error 2)".
pub fn os_error_text(err: &io::Error) -> String {
    let text = err.to_string();
    let text = match text.find(" (os error ") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Waits for a child that failed before exec, so it does not linger as a zombie.
fn reap(pid: Pid) {
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let ret = unsafe { libc::waitpid(pid.as_raw(), &mut status, 0) };
        if ret >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// Renames anywhere on the system make the kernel give up `..` lookups in a root with
    /// EAGAIN; `openat2` tries again, so a lookup never fails for that.
    #[test]
    fn openat2_in_root_survives_concurrent_renames() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("root/a")).unwrap();
        std::fs::write(dir.path().join("root/file"), "x").unwrap();
        std::fs::create_dir(dir.path().join("spin")).unwrap();
        let root = std::fs::File::open(dir.path().join("root")).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let (one, two) = (dir.path().join("spin"), dir.path().join("spun"));
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::fs::rename(&one, &two).unwrap();
                    std::fs::rename(&two, &one).unwrap();
                }
            });
            let path = c"a/../a/../file";
            for _ in 0..20_000 {
                let opened = openat2(
                    root.as_fd(),
                    path,
                    libc::O_RDONLY | libc::O_CLOEXEC,
                    libc::RESOLVE_IN_ROOT,
                );
                if let Err(err) = opened {
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    panic!("openat2: {err}");
                }
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }
}
