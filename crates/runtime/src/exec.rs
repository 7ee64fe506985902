//! `exec`: a process started in a running container, in every namespace of its init, in its
//! cgroups, as its user (or another), with its capability set and seccomp filter, and with its
//! environment plus the caller's. The joining itself is sysinit's ([`sysinit::exec`]); the
//! process is the caller's child, and being in the container's pid namespace it ends when the
//! container's init does.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use crate::container::Config;
use crate::{procs, Error, Result, Runtime};

pub use sysinit::{Pid, Started, Stdio};

/// What `dock exec` and `POST /containers/{id}/exec` ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// The command and its arguments (looked up in the container's PATH).
    pub cmd: Vec<String>,
    /// `KEY=value` over the container's environment.
    pub env: Vec<String>,
    /// `name|uid[:group|gid]`; empty: the container's user.
    pub user: String,
    /// Absolute path; empty: the container's working directory.
    pub working_dir: String,
    /// A terminal: adds `TERM=xterm` unless the environment has a TERM.
    pub tty: bool,
    /// Every capability (the container's seccomp filter and no_new_privs stay, as in Docker).
    pub privileged: bool,
}

/// The exec'd process's environment: the container's (Docker's defaults, the image's and the
/// container's values), `TERM=xterm` with a terminal, then `opts.env`, a later value of a key
/// replacing an earlier one.
pub fn exec_env(config: &Config, opts: &ExecOptions) -> Vec<String> {
    let mut base = config.clone();
    base.tty = opts.tty;
    base.env.extend(opts.env.iter().cloned());
    crate::container_env(&base)
}

/// The exit status of a process as a shell shows it: its code, or 128 + the signal.
pub fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

/// Waits for an exec'd process (the caller's child) and returns its exit code.
pub fn wait(pid: Pid) -> io::Result<i32> {
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let ret = unsafe { libc::waitpid(pid.as_raw(), &mut status, 0) };
        if ret == pid.as_raw() {
            return Ok(exit_code(status));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

impl Runtime {
    /// Starts `opts.cmd` in running container `name` (full id, unique prefix or name) with
    /// `stdio` (a terminal from the container's devpts with [`Stdio::Terminal`]). Refused
    /// with [`Error::NotRunning`] (Docker's "container ID is not running") when it is not.
    /// A command that is missing is `Error::Start` with code 127, one that cannot be run
    /// 126 (as any other failure to start it, as Docker's exec).
    pub fn exec(&self, name: &str, opts: &ExecOptions, stdio: Stdio) -> Result<Started> {
        if opts.cmd.is_empty() {
            return Err(Error::NoCommand);
        }
        if !opts.working_dir.is_empty() && !opts.working_dir.starts_with('/') {
            return Err(Error::InvalidWorkingDir(opts.working_dir.clone()));
        }
        let c = self.get(name)?;
        let not_running = || Error::NotRunning(c.id.clone());
        let init = match (c.state.running, c.init) {
            (true, Some(init)) => init,
            _ => return Err(not_running()),
        };
        // SAFETY: pidfd_open of a pid; the descriptor is checked below.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, init.pid, 0) };
        if fd < 0 {
            return Err(not_running());
        }
        // SAFETY: a fresh descriptor we own.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // Checked after the pidfd exists: it names the init we verified, not a reused pid.
        if !procs::is_same(init.pid, init.start_time) {
            return Err(not_running());
        }
        if c.state.paused {
            // Born frozen, it would never run.
            return Err(Error::Paused(c.id.clone()));
        }
        let mut security = crate::security::for_container(&self.root, &c.host_config)?;
        if opts.privileged {
            security.capabilities = sysinit::caps::available();
        }
        let cgroups = crate::cgroup::Cgroup::open(&self.cgroup_parent(), &c.id)
            .joining_running()
            .map_err(|e| Error::Cgroup(e.to_string()))?;
        let user = if opts.user.is_empty() {
            c.config.user.clone()
        } else {
            opts.user.clone()
        };
        let workdir = if opts.working_dir.is_empty() {
            c.config.working_dir.clone()
        } else {
            opts.working_dir.clone()
        };
        tracing::debug!(id = %c.id, init = init.pid, cmd = ?opts.cmd, %user, %workdir, "exec");
        let spec = sysinit::ExecSpec {
            init: pidfd,
            root: format!("/proc/{}/root", init.pid).into(),
            args: opts.cmd.clone(),
            env: exec_env(&c.config, opts),
            user,
            workdir,
            stdio,
            cgroups,
            security,
        };
        sysinit::exec(spec).map_err(|e| Error::Start {
            code: match e {
                sysinit::SpawnError::NotFound(_) => 127,
                _ => 126,
            },
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_is_the_containers_with_term_and_the_callers_values() {
        let config = Config {
            env: vec!["A=1".into(), "B=2".into()],
            ..Config::default()
        };
        let opts = ExecOptions {
            env: vec!["B=3".into(), "C=4".into()],
            ..ExecOptions::default()
        };
        assert_eq!(
            exec_env(&config, &opts),
            [
                "HOME=/",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "A=1",
                "B=3",
                "C=4"
            ]
        );
        let tty = ExecOptions {
            tty: true,
            env: vec!["TERM=vt100".into()],
            ..ExecOptions::default()
        };
        let env = exec_env(&config, &tty);
        assert!(env.contains(&"TERM=vt100".to_string()), "{env:?}");
        assert!(!env.contains(&"TERM=xterm".to_string()), "{env:?}");
    }

    #[test]
    fn exit_codes_as_a_shell_shows_them() {
        assert_eq!(exit_code(3 << 8), 3);
        assert_eq!(exit_code(libc::SIGKILL), 137);
    }
}
