//! Runs one command in a container over an existing rootfs directory, with this process's stdio:
//! `run ROOTFS [-u USER] CMD ARGS...`. Handy for trying sysinit alone and for timing it
//! against `unshare --fork --pid --mount --uts --ipc --net --mount-proc chroot ROOTFS CMD`.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;

use nix::sys::wait::{waitpid, WaitStatus};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(rootfs) = args.next() else {
        eprintln!("usage: run ROOTFS [-u USER] CMD ARGS...");
        return ExitCode::from(2);
    };
    let mut user = String::new();
    let mut command = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-u" if command.is_empty() => user = args.next().unwrap_or_default(),
            _ => command.push(arg),
        }
    }
    let dup = |fd: std::os::fd::BorrowedFd| fd.try_clone_to_owned().expect("duplicate stdio");
    let spec = sysinit::InitSpec {
        rootfs: PathBuf::from(rootfs),
        args: command,
        env: vec![
            format!("PATH={}", sysinit::DEFAULT_PATH),
            "HOME=/root".into(),
            "TERM=xterm".into(),
        ],
        user,
        hostname: "sysinit-example".into(),
        workdir: "/".into(),
        stdio: sysinit::Stdio::Fds {
            stdin: dup(std::io::stdin().as_fd()),
            stdout: dup(std::io::stdout().as_fd()),
            stderr: dup(std::io::stderr().as_fd()),
        },
        mounts: Vec::new(),
        cgroups: sysinit::Cgroups::default(),
        netns: None,
        // Docker's default confinement, its seccomp profile included.
        security: sysinit::Security {
            seccomp: sysinit::seccomp::compile(
                sysinit::seccomp::DEFAULT_PROFILE,
                &sysinit::seccomp::Target::host(sysinit::caps::DEFAULT),
            )
            .expect("the default seccomp profile compiles"),
            ..sysinit::Security::default()
        },
        run: sysinit::RunFlags::default(),
    };
    match sysinit::spawn(spec, |_| Ok(())) {
        Ok(started) => match waitpid(started.pid, None) {
            Ok(WaitStatus::Exited(_, code)) => ExitCode::from(code as u8),
            Ok(WaitStatus::Signaled(_, sig, _)) => ExitCode::from(128 + sig as u8),
            other => {
                eprintln!("Error: waiting for {}: {other:?}", started.pid);
                ExitCode::from(125)
            }
        },
        Err(err) => {
            eprintln!("Error: {err}");
            ExitCode::from(err.exit_code() as u8)
        }
    }
}
