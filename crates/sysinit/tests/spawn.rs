//! Real containers from a busybox rootfs: every test clones a child into new namespaces via
//! `sysinit::spawn`, waits for it and checks what the command saw. Needs root.

use std::fs;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use nix::sys::signal::kill;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{pipe, Pid};
use sysinit::{seccomp, spawn, InitSpec, Mount, MountKind, Security, SpawnError, Stdio};
use tempfile::TempDir;

const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "id", "hostname", "mount", "mknod", "ls", "test", "sleep", "true",
    "false", "ps", "env", "grep", "wc", "head", "touch", "mkdir", "pwd", "tty", "stty", "unshare",
    "umount",
];

/// A throwaway busybox rootfs; the temp dir goes away on drop.
struct Rootfs {
    dir: TempDir,
}

impl Rootfs {
    fn new() -> Rootfs {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for sub in ["bin", "etc", "proc", "sys", "dev", "tmp", "mnt", "root"] {
            fs::create_dir(root.join(sub)).unwrap();
        }
        // A hard link, not a copy: a copy is open for writing while other test threads clone,
        // and their children would hold it open (ETXTBSY) until they exec.
        if fs::hard_link("/bin/busybox", root.join("bin/busybox")).is_err() {
            fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        }
        for applet in APPLETS {
            symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\n\
             daemon:x:1:1:daemon:/usr/sbin:/bin/false\n\
             app:x:1000:1000::/home/app:/bin/sh\n\
             nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        .unwrap();
        fs::write(
            root.join("etc/group"),
            "root:x:0:\ndaemon:x:1:\nwheel:x:10:root,app\naudio:x:29:app\napp:x:1000:\nnogroup:x:65534:\n",
        )
        .unwrap();
        fs::write(root.join("etc/notexec"), "#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(root.join("etc/notexec"), fs::Permissions::from_mode(0o644)).unwrap();
        Rootfs { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

#[derive(Debug)]
struct Outcome {
    stdout: String,
    stderr: String,
    code: i32,
}

/// Kills and reaps the container if a test fails before waiting for it.
struct ChildGuard(Option<Pid>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = kill(pid, nix::sys::signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }
}

fn spec(root: &Path, args: &[&str], stdin: OwnedFd, stdout: OwnedFd, stderr: OwnedFd) -> InitSpec {
    InitSpec {
        rootfs: root.to_path_buf(),
        args: args.iter().map(|s| s.to_string()).collect(),
        env: vec!["PATH=/bin".into(), "HOME=/root".into()],
        user: String::new(),
        hostname: "testbox".into(),
        workdir: "/".into(),
        stdio: Stdio::Fds {
            stdin,
            stdout,
            stderr,
        },
        mounts: Vec::new(),
        cgroups: sysinit::Cgroups::default(),
        netns: None,
        // Docker's default, seccomp included: everything here must work under it.
        security: default_security(),
        run: sysinit::RunFlags::default(),
    }
}

/// Docker's default confinement with its default seccomp profile, compiled once.
fn default_security() -> Security {
    static PROGRAM: OnceLock<Option<seccomp::Program>> = OnceLock::new();
    let program = PROGRAM.get_or_init(|| {
        seccomp::compile(
            seccomp::DEFAULT_PROFILE,
            &seccomp::Target::host(sysinit::caps::DEFAULT),
        )
        .unwrap()
    });
    Security {
        seccomp: program.clone(),
        ..Security::default()
    }
}

fn wait_code(pid: Pid) -> i32 {
    match waitpid(pid, None).unwrap() {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        other => panic!("unexpected wait status {other:?}"),
    }
}

/// Runs `args` in a fresh container over `root`, after `adjust` edited the spec.
fn try_run(
    root: &Path,
    args: &[&str],
    adjust: impl FnOnce(&mut InitSpec),
) -> Result<Outcome, SpawnError> {
    let (stdin_read, stdin_write) = pipe().unwrap();
    let (stdout_read, stdout_write) = pipe().unwrap();
    let (stderr_read, stderr_write) = pipe().unwrap();
    drop(stdin_write);
    let mut spec = spec(root, args, stdin_read, stdout_write, stderr_write);
    adjust(&mut spec);
    let pid = spawn(spec, |_| Ok(()))?.pid;
    let mut guard = ChildGuard(Some(pid));
    let mut stdout = String::new();
    fs::File::from(stdout_read)
        .read_to_string(&mut stdout)
        .unwrap();
    let mut stderr = String::new();
    fs::File::from(stderr_read)
        .read_to_string(&mut stderr)
        .unwrap();
    let code = wait_code(guard.0.take().unwrap());
    Ok(Outcome {
        stdout,
        stderr,
        code,
    })
}

fn run(root: &Path, script: &str) -> Outcome {
    run_with(root, script, |_| {})
}

fn run_with(root: &Path, script: &str, adjust: impl FnOnce(&mut InitSpec)) -> Outcome {
    let out = try_run(root, &["sh", "-c", script], adjust).unwrap();
    assert_eq!(
        out.code, 0,
        "script {script:?} failed: stdout {:?} stderr {:?}",
        out.stdout, out.stderr
    );
    out
}

#[test]
fn command_is_pid_1_and_host_processes_are_invisible() {
    let rootfs = Rootfs::new();
    let out = run(&rootfs.path(), "echo $$; ls /proc | grep -c '^[0-9]'");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "1");
    let pids: u32 = lines[1].parse().unwrap();
    // sh, ls, grep: nothing from the host.
    assert!(pids <= 3, "saw {pids} processes");
    let ps = run(&rootfs.path(), "ps -o pid,comm");
    assert!(
        ps.stdout.lines().any(|l| l.trim_start().starts_with("1 ")),
        "{}",
        ps.stdout
    );
    assert!(ps.stdout.lines().count() <= 3, "{}", ps.stdout);
}

#[test]
fn hostname_and_environment_are_exactly_as_given() {
    let rootfs = Rootfs::new();
    let out = run_with(&rootfs.path(), "hostname", |s| s.hostname = "box-7".into());
    assert_eq!(out.stdout, "box-7\n");
    let env = vec![
        "PATH=/bin".to_string(),
        "HOME=/root".to_string(),
        "FOO=bar baz".to_string(),
    ];
    let given = env.clone();
    let out = try_run(&rootfs.path(), &["env"], |s| s.env = given).unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut seen: Vec<&str> = out.stdout.lines().collect();
    seen.sort();
    let mut want: Vec<&str> = env.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(seen, want);
}

#[test]
fn mounting_is_not_allowed_and_proc_sys_are_protected() {
    let rootfs = Rootfs::new();
    let out = try_run(
        &rootfs.path(),
        &["mount", "-t", "tmpfs", "none", "/mnt"],
        |_| {},
    )
    .unwrap();
    assert_ne!(out.code, 0, "mount succeeded in the container");
    // Masked like Docker: files read as empty (kcore may not exist at all on this kernel),
    // directories are empty.
    let out = run(
        &rootfs.path(),
        "cat /proc/kcore 2>/dev/null | wc -c; wc -c < /proc/keys; wc -c < /proc/timer_list; ls /sys/firmware | wc -l; \
         grep -c -e ' /proc/keys ' -e ' /proc/timer_list ' /proc/self/mountinfo; \
         if mkdir /sys/dock-test 2>/dev/null; then echo sys-writable; fi; \
         if echo 1 > /proc/sys/kernel/domainname 2>/dev/null; then echo procsys-writable; fi; \
         grep ' /sys ' /proc/mounts",
    );
    let lines: Vec<&str> = out.stdout.lines().map(str::trim).collect();
    assert_eq!(
        lines[..5],
        ["0", "0", "0", "0", "2"],
        "sensitive paths are not masked: {}",
        out.stdout
    );
    assert!(!out.stdout.contains("writable"), "{}", out.stdout);
    let lines = &lines[5..];
    assert!(
        lines[0].contains(" ro,"),
        "/sys is not read-only: {}",
        lines[0]
    );
}

#[test]
fn dev_has_the_standard_nodes_and_mounts() {
    let rootfs = Rootfs::new();
    let out = run(
        &rootfs.path(),
        "ls /dev; echo x > /dev/null && echo null-ok; head -c 5 /dev/zero | wc -c; head -c 3 /dev/urandom | wc -c; \
         grep -E ' /dev(/pts|/shm|/mqueue)? ' /proc/mounts | while read a b c d; do echo \"$b $c\"; done",
    );
    for entry in [
        "null", "zero", "full", "random", "urandom", "tty", "ptmx", "fd", "stdin", "stdout",
        "stderr", "pts", "shm", "mqueue",
    ] {
        assert!(
            out.stdout.lines().any(|l| l == entry),
            "/dev/{entry} missing: {}",
            out.stdout
        );
    }
    assert!(
        !out.stdout.lines().any(|l| l == "core" || l == "sda"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("null-ok\n5\n3\n"), "{}", out.stdout);
    for mount in [
        "/dev tmpfs",
        "/dev/pts devpts",
        "/dev/shm tmpfs",
        "/dev/mqueue mqueue",
    ] {
        assert!(
            out.stdout.contains(mount),
            "{mount} missing: {}",
            out.stdout
        );
    }
}

fn ids(rootfs: &Rootfs, user: &str) -> String {
    let user = user.to_string();
    run_with(&rootfs.path(), "echo $(id -u) $(id -g) $(id -G)", |s| {
        s.user = user
    })
    .stdout
    .trim()
    .to_string()
}

#[test]
fn users_groups_and_numbers_resolve_like_docker() {
    let rootfs = Rootfs::new();
    // `id -G` prints the gid first, then the supplementary groups.
    assert_eq!(ids(&rootfs, ""), "0 0 0 10");
    assert_eq!(ids(&rootfs, "root"), "0 0 0 10");
    assert_eq!(ids(&rootfs, "0"), "0 0 0 10");
    assert_eq!(ids(&rootfs, "1"), "1 1 1");
    assert_eq!(ids(&rootfs, "daemon"), "1 1 1");
    assert_eq!(ids(&rootfs, "daemon:daemon"), "1 1 1");
    assert_eq!(ids(&rootfs, "app"), "1000 1000 1000 10 29");
    assert_eq!(ids(&rootfs, "app:audio"), "1000 29 29");
    assert_eq!(ids(&rootfs, "4242"), "4242 0 0");
    let out = run_with(&rootfs.path(), "id", |s| s.user = "daemon".into());
    assert!(
        out.stdout.starts_with("uid=1(daemon) gid=1(daemon)"),
        "{}",
        out.stdout
    );
}

#[test]
fn unknown_user_or_group_is_an_error_naming_it() {
    let rootfs = Rootfs::new();
    let err = try_run(&rootfs.path(), &["true"], |s| s.user = "ghost".into())
        .err()
        .unwrap();
    assert!(
        matches!(&err, SpawnError::Setup(m) if m.contains("ghost")),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), 125);
    let err = try_run(&rootfs.path(), &["true"], |s| {
        s.user = "daemon:ghosts".into()
    })
    .err()
    .unwrap();
    assert!(err.to_string().contains("ghosts"), "{err}");
}

#[test]
fn capabilities_are_dockers_default_set() {
    let rootfs = Rootfs::new();
    let out = run(
        &rootfs.path(),
        "grep -E '^Cap(Inh|Prm|Eff|Bnd)' /proc/self/status",
    );
    assert!(
        out.stdout.contains("CapInh:\t0000000000000000"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("CapPrm:\t00000000a80425fb"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("CapEff:\t00000000a80425fb"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("CapBnd:\t00000000a80425fb"),
        "{}",
        out.stdout
    );
    let out = run_with(
        &rootfs.path(),
        "grep -E '^Cap(Prm|Eff|Bnd)' /proc/self/status",
        |s| s.user = "app".into(),
    );
    assert!(
        out.stdout.contains("CapPrm:\t0000000000000000"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("CapEff:\t0000000000000000"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("CapBnd:\t00000000a80425fb"),
        "{}",
        out.stdout
    );
}

/// Runs `script` with a terminal of `rows` x `cols` as `user`; what it printed there.
fn run_on_terminal(rootfs: &Path, user: &str, script: &str, rows: u16, cols: u16) -> String {
    let (null_read, null_write) = pipe().unwrap();
    let mut spec = spec(
        rootfs,
        &["sh", "-c", script],
        null_read,
        dup(&null_write),
        null_write,
    );
    spec.user = user.into();
    spec.stdio = Stdio::Terminal { rows, cols };
    let started = spawn(spec, |_| Ok(())).unwrap();
    let mut guard = ChildGuard(Some(started.pid));
    let master = started.terminal.expect("a terminal master");
    let code = wait_code(guard.0.take().unwrap());
    // The output sits in the terminal's buffer; read what is there (EIO once the slave is gone).
    let mut master = fs::File::from(master);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let out = String::from_utf8_lossy(&out).into_owned();
    assert_eq!(code, 0, "{out:?}");
    out
}

fn dup(fd: &OwnedFd) -> OwnedFd {
    fd.as_fd().try_clone_to_owned().unwrap()
}

#[test]
fn a_terminal_comes_from_the_container_s_devpts_and_is_the_controlling_one() {
    let rootfs = Rootfs::new();
    let out = run_on_terminal(
        &rootfs.path(),
        "",
        "test -t 0 && test -t 1 && test -t 2 && echo tty; tty; stty size; \
         ls -ln /dev/pts/0; exec 3</dev/tty && echo controlling",
        30,
        100,
    );
    let lines: Vec<&str> = out.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert_eq!(lines[0], "tty", "{out:?}");
    // `tty` names it: it is the container's own /dev/pts/0, not a host pty.
    assert_eq!(lines[1], "/dev/pts/0", "{out:?}");
    assert_eq!(lines[2], "30 100", "{out:?}");
    assert!(
        lines[3].starts_with("crw--w----") && lines[3].contains(" 0 "),
        "{out:?}"
    );
    assert_eq!(lines[4], "controlling", "{out:?}");
}

#[test]
fn a_terminal_belongs_to_the_command_s_user() {
    let rootfs = Rootfs::new();
    let out = run_on_terminal(&rootfs.path(), "app", "id -u; ls -ln $(tty)", 0, 0);
    let lines: Vec<&str> = out.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert_eq!(lines[0], "1000", "{out:?}");
    let owner: Vec<&str> = lines[1].split_whitespace().take(4).collect();
    assert_eq!(owner[2..], ["1000", "5"], "{out:?}");
}

#[test]
fn missing_command_is_127_naming_it() {
    let rootfs = Rootfs::new();
    let err = try_run(&rootfs.path(), &["no-such-cmd"], |_| {})
        .err()
        .unwrap();
    assert_eq!(
        err,
        SpawnError::NotFound("exec: \"no-such-cmd\": executable file not found in $PATH".into())
    );
    assert_eq!(err.exit_code(), 127);
    let err = try_run(&rootfs.path(), &["/bin/nope"], |_| {})
        .err()
        .unwrap();
    assert!(
        matches!(&err, SpawnError::NotFound(m) if m.contains("/bin/nope")),
        "{err:?}"
    );
}

#[test]
fn non_executable_file_or_directory_is_126() {
    let rootfs = Rootfs::new();
    let err = try_run(&rootfs.path(), &["/etc/notexec"], |_| {})
        .err()
        .unwrap();
    assert_eq!(
        err,
        SpawnError::NotExecutable("exec: \"/etc/notexec\": permission denied".into())
    );
    assert_eq!(err.exit_code(), 126);
    let err = try_run(&rootfs.path(), &["/etc"], |_| {}).err().unwrap();
    assert_eq!(
        err,
        SpawnError::NotExecutable("exec: \"/etc\": is a directory".into())
    );
}

#[test]
fn failing_hook_leaves_no_child() {
    let rootfs = Rootfs::new();
    let seen = Arc::new(Mutex::new(None));
    let (stdin_read, _stdin_write) = pipe().unwrap();
    let (_out_read, out_write) = pipe().unwrap();
    let err_write = out_write.try_clone().unwrap();
    let recorded = Arc::clone(&seen);
    let err = spawn(
        spec(
            &rootfs.path(),
            &["sleep", "100"],
            stdin_read,
            out_write,
            err_write,
        ),
        move |pid| {
            *recorded.lock().unwrap() = Some(pid);
            Err("cgroup join failed for test".into())
        },
    )
    .err()
    .unwrap();
    assert_eq!(err, SpawnError::Hook("cgroup join failed for test".into()));
    let pid = seen.lock().unwrap().expect("hook did not run");
    // Killed and reaped: the pid is gone, not a zombie.
    assert_eq!(kill(pid, None), Err(nix::errno::Errno::ESRCH));
}

#[test]
fn hook_sees_the_returned_pid_before_the_command_runs() {
    let rootfs = Rootfs::new();
    let (stdin_read, _stdin_write) = pipe().unwrap();
    let (out_read, out_write) = pipe().unwrap();
    let err_write = out_write.try_clone().unwrap();
    let marker = rootfs.path().join("tmp/hook-ran");
    let hook_marker = marker.clone();
    let seen = Arc::new(Mutex::new(None));
    let recorded = Arc::clone(&seen);
    let pid = spawn(
        spec(
            &rootfs.path(),
            &["cat", "/tmp/hook-ran"],
            stdin_read,
            out_write,
            err_write,
        ),
        move |pid| {
            *recorded.lock().unwrap() = Some(pid);
            fs::write(&hook_marker, "hook first\n").map_err(|e| e.to_string())
        },
    )
    .unwrap()
    .pid;
    let mut guard = ChildGuard(Some(pid));
    assert_eq!(*seen.lock().unwrap(), Some(pid));
    let mut out = String::new();
    fs::File::from(out_read).read_to_string(&mut out).unwrap();
    assert_eq!(wait_code(guard.0.take().unwrap()), 0);
    assert_eq!(out, "hook first\n");
}

#[test]
fn the_child_builds_its_root_while_the_hook_runs() {
    let rootfs = Rootfs::new();
    let root_dir = fs::metadata(rootfs.path()).unwrap();
    let (stdin_read, _stdin_write) = pipe().unwrap();
    let (_out_read, out_write) = pipe().unwrap();
    let err_write = out_write.try_clone().unwrap();
    // The hook waits until the child's root is the rootfs with the container's own /proc
    // mounted on it: the two overlap.
    let pid = spawn(
        spec(&rootfs.path(), &["true"], stdin_read, out_write, err_write),
        |pid| {
            let (root, proc_of_init) = (
                format!("/proc/{pid}/root"),
                format!("/proc/{pid}/root/proc/1/stat"),
            );
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let in_rootfs = fs::metadata(&root)
                    .is_ok_and(|m| (m.dev(), m.ino()) == (root_dir.dev(), root_dir.ino()));
                if in_rootfs && Path::new(&proc_of_init).exists() {
                    return Ok(());
                }
                if std::time::Instant::now() > deadline {
                    return Err("the child did not build its root while the hook ran".into());
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        },
    )
    .unwrap()
    .pid;
    assert_eq!(wait_code(pid), 0);
}

#[test]
fn a_setup_failure_during_the_hook_is_reported_as_itself() {
    let rootfs = Rootfs::new();
    let (stdin_read, _stdin_write) = pipe().unwrap();
    let (_out_read, out_write) = pipe().unwrap();
    let err_write = out_write.try_clone().unwrap();
    let mut failing = spec(&rootfs.path(), &["true"], stdin_read, out_write, err_write);
    failing.mounts = vec![Mount {
        destination: "/mnt".into(),
        kind: MountKind::Tmpfs {
            options: "size=bogus".into(),
        },
        readonly: false,
    }];
    // A hook that fails because the child is gone (as the network's does, without its
    // namespace): what is reported is the child's own failure.
    let err = spawn(failing, |pid| {
        let stat = format!("/proc/{pid}/stat");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !fs::read_to_string(&stat).is_ok_and(|s| s.contains(") Z ")) {
            if std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Err("the hook found no child".into())
    })
    .err()
    .unwrap();
    assert!(
        matches!(&err, SpawnError::Setup(m) if m.contains("/mnt")),
        "{err:?}"
    );
}

#[test]
fn workdir_is_created_and_mounts_are_bound_read_only_or_not() {
    let rootfs = Rootfs::new();
    let host = tempfile::tempdir().unwrap();
    let resolv = host.path().join("resolv.conf");
    fs::write(&resolv, "nameserver 192.0.2.53\n").unwrap();
    let data = host.path().join("data");
    fs::create_dir(&data).unwrap();
    let ro = host.path().join("ro");
    fs::create_dir(&ro).unwrap();
    let bind = |source: &Path, destination: &str, readonly: bool| Mount {
        destination: destination.into(),
        kind: MountKind::Bind {
            source: source.to_path_buf(),
        },
        readonly,
    };
    let mounts = vec![
        bind(&resolv, "/etc/resolv.conf", true),
        bind(&data, "/srv/data", false),
        bind(&ro, "/ro", true),
        Mount {
            destination: "/srv/data/t".into(),
            kind: MountKind::Tmpfs {
                options: "size=1m,mode=1777".into(),
            },
            readonly: false,
        },
    ];
    let out = run_with(
        &rootfs.path(),
        "pwd; cat /etc/resolv.conf; echo x >> /etc/resolv.conf 2>/dev/null && echo writable; \
         echo hi > /srv/data/f; touch /ro/f 2>/dev/null && echo ro-writable; \
         echo t > /srv/data/t/f && grep ' /srv/data/t ' /proc/self/mountinfo | grep -c 'nosuid,nodev,noexec'; \
         true",
        |s| {
            s.workdir = "/work/dir".into();
            s.mounts = mounts;
        },
    );
    assert_eq!(
        out.stdout, "/work/dir\nnameserver 192.0.2.53\n1\n",
        "stderr {}",
        out.stderr
    );
    assert_eq!(
        fs::read_to_string(&resolv).unwrap(),
        "nameserver 192.0.2.53\n"
    );
    assert_eq!(fs::read_to_string(data.join("f")).unwrap(), "hi\n");
    // The tmpfs was the container's alone; its mount point is in the volume.
    assert!(data.join("t").is_dir() && !data.join("t/f").exists());
    // Missing mount points were made in the rootfs, a file for a file.
    assert!(rootfs.path().join("srv/data").is_dir());
    assert!(rootfs.path().join("etc/resolv.conf").is_file());
}

#[test]
fn a_symlinked_mount_point_stays_inside_the_rootfs() {
    let rootfs = Rootfs::new();
    let outside = tempfile::tempdir().unwrap();
    // An image's absolute symlink (and a relative one climbing out) resolve as the container
    // sees them: into the rootfs, never to the host's directory.
    symlink("/tmp", rootfs.path().join("abs")).unwrap();
    symlink("../../../../../../..", rootfs.path().join("up")).unwrap();
    let source = tempfile::tempdir().unwrap();
    fs::write(source.path().join("marker"), "m").unwrap();
    let bind = |destination: &str| Mount {
        destination: destination.into(),
        kind: MountKind::Bind {
            source: source.path().to_path_buf(),
        },
        readonly: true,
    };
    let script =
        "cat /tmp/marker; echo; cat /x/marker; echo; grep -c ' /tmp ' /proc/self/mountinfo";
    let out = run_with(&rootfs.path(), script, |s| {
        s.mounts = vec![bind("/abs"), bind("/up/x")];
    });
    assert_eq!(out.stdout, "m\nm\n1\n", "stderr {}", out.stderr);
    assert!(rootfs.path().join("x").is_dir());

    // A dangling symlink to the host's temp dir is refused; nothing is made there.
    let target = outside.path().join("made");
    symlink(&target, rootfs.path().join("dangling")).unwrap();
    let err = try_run(&rootfs.path(), &["true"], |s| {
        s.mounts = vec![bind("/dangling")];
    })
    .unwrap_err();
    assert!(err.to_string().contains("mount point of"), "{err}");
    assert!(!target.exists());

    // A source that does not exist is refused before the clone.
    let err = try_run(&rootfs.path(), &["true"], |s| {
        s.mounts = vec![Mount {
            destination: "/x".into(),
            kind: MountKind::Bind {
                source: "/nonexistent/dock-src".into(),
            },
            readonly: false,
        }];
    })
    .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/dock-src"), "{err}");
}

#[test]
fn nothing_is_left_mounted_on_the_host() {
    let rootfs = Rootfs::new();
    let count_mounts = |root: &Path| {
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(root.to_str().unwrap()))
            .count()
    };
    let out = run(&rootfs.path(), "cat /proc/self/mountinfo | wc -l");
    assert!(out.stdout.trim().parse::<u32>().unwrap() > 5);
    assert_eq!(count_mounts(&rootfs.path()), 0);
    assert!(!Path::new(&rootfs.path()).join("proc/self").exists());
}

/// Unmounts the test's overlay even when the test fails.
struct OverlayGuard(PathBuf);

impl Drop for OverlayGuard {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn overlay_rootfs_like_the_runtime_mounts_it() {
    let lower = Rootfs::new();
    let dir = tempfile::tempdir().unwrap();
    let (upper, work, merged) = (
        dir.path().join("upper"),
        dir.path().join("work"),
        dir.path().join("merged"),
    );
    for d in [&upper, &work, &merged] {
        fs::create_dir(d).unwrap();
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.path().display(),
        upper.display(),
        work.display()
    );
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(options.as_str()),
    )
    .unwrap();
    let _guard = OverlayGuard(merged.clone());

    let out = run(&merged, "echo written > /tmp/new; head -n 1 /etc/passwd");
    assert_eq!(out.stdout, "root:x:0:0:root:/root:/bin/sh\n");
    assert_eq!(
        fs::read_to_string(upper.join("tmp/new")).unwrap(),
        "written\n"
    );
    // Only the overlay itself is mounted there on the host; the container's mounts died with it.
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let here = mountinfo
        .lines()
        .filter(|l| l.contains(merged.to_str().unwrap()))
        .count();
    assert_eq!(here, 1, "{mountinfo}");
}

const DEVICES_ROOT: &str = "/sys/fs/cgroup/devices";

/// A cgroup v1 devices group of the test's own, made by [`DevicesCgroup::create`] (in the
/// spawn hook), removed on drop (its task is gone by then).
struct DevicesCgroup(PathBuf);

impl DevicesCgroup {
    fn new(name: &str) -> DevicesCgroup {
        DevicesCgroup(
            Path::new(DEVICES_ROOT).join(format!("sysinit-test-{}-{name}", std::process::id())),
        )
    }

    fn create(&self, rules: &[&str]) {
        fs::create_dir(&self.0).unwrap();
        fs::write(self.0.join("devices.deny"), "a").unwrap();
        for rule in rules {
            fs::write(self.0.join("devices.allow"), rule).unwrap();
        }
    }

    /// The cgroup as the child joins it, after the hook: below the hierarchy's root, which
    /// is open before the clone.
    fn joining(&self) -> sysinit::Cgroups {
        let root = fs::File::open(DEVICES_ROOT).unwrap();
        sysinit::Cgroups {
            unified: None,
            v1_tasks: vec![sysinit::V1Tasks {
                dir: root.into(),
                relative: self.0.strip_prefix(DEVICES_ROOT).unwrap().join("tasks"),
                path: self.0.join("tasks"),
            }],
        }
    }
}

impl Drop for DevicesCgroup {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.0);
    }
}

/// The hook makes the devices cgroup while the child builds its root; the child joins it
/// before its command, which its rules then confine.
#[test]
fn a_device_cgroup_the_hook_makes_confines_the_command() {
    if !Path::new(DEVICES_ROOT).join("devices.allow").exists() {
        eprintln!("no cgroup v1 devices controller, skipping");
        return;
    }
    let rootfs = Rootfs::new();
    let script = "echo x > /dev/null && echo null-ok || echo null-denied; \
                  mknod /tmp/disk b 8 0 2>/dev/null && echo mknod-ok; true";
    let run = |group: &DevicesCgroup, rules: &[&str]| -> String {
        let (stdin_read, _stdin_write) = pipe().unwrap();
        let (out_read, out_write) = pipe().unwrap();
        let err_write = out_write.try_clone().unwrap();
        let mut confined = spec(
            &rootfs.path(),
            &["sh", "-c", script],
            stdin_read,
            out_write,
            err_write,
        );
        confined.cgroups = group.joining();
        let pid = spawn(confined, |_| {
            group.create(rules);
            Ok(())
        })
        .unwrap()
        .pid;
        let mut guard = ChildGuard(Some(pid));
        let mut out = String::new();
        fs::File::from(out_read).read_to_string(&mut out).unwrap();
        assert_eq!(wait_code(guard.0.take().unwrap()), 0);
        out
    };
    // Docker 0.1.0's allow list: /dev/null works, a disk cannot be made.
    let allowed = DevicesCgroup::new("allowed");
    let rules = [
        "c 1:3 rwm",
        "c 1:5 rwm",
        "c 1:7 rwm",
        "c 1:8 rwm",
        "c 1:9 rwm",
        "c 5:0 rwm",
        "c 5:1 rwm",
        "c 5:2 rwm",
        "c 136:* rwm",
    ];
    assert_eq!(run(&allowed, &rules), "null-ok\n");
    // Nothing allowed: not even /dev/null opens.
    let denied = DevicesCgroup::new("denied");
    let out = run(&denied, &[]);
    assert!(
        out.contains("null-denied\n") && !out.contains("null-ok"),
        "{out}"
    );

    // A cgroup that is not there when the child joins is an error naming its tasks file.
    let missing = DevicesCgroup::new("missing");
    let (stdin_read, _stdin_write) = pipe().unwrap();
    let (_out_read, out_write) = pipe().unwrap();
    let err_write = out_write.try_clone().unwrap();
    let mut confined = spec(&rootfs.path(), &["true"], stdin_read, out_write, err_write);
    confined.cgroups = missing.joining();
    let err = spawn(confined, |_| Ok(())).err().unwrap();
    let tasks = missing.0.join("tasks");
    assert!(
        matches!(&err, SpawnError::Setup(m) if m.contains(tasks.to_str().unwrap())),
        "{err:?}"
    );
}

#[test]
fn setup_errors_name_the_path() {
    let err = try_run(Path::new("/nonexistent/sysinit-rootfs"), &["true"], |_| {})
        .err()
        .unwrap();
    assert_eq!(
        err,
        SpawnError::Setup(
            "open rootfs /nonexistent/sysinit-rootfs: no such file or directory".into()
        )
    );
    let rootfs = Rootfs::new();
    let err = try_run(&rootfs.path(), &["true"], |s| {
        s.workdir = "relative/dir".into()
    })
    .err()
    .unwrap();
    assert!(err.to_string().contains("relative/dir"), "{err}");
    let err = try_run(&rootfs.path(), &["true"], |s| {
        s.workdir = "/etc/passwd/sub".into()
    })
    .err()
    .unwrap();
    assert_eq!(
        err,
        SpawnError::Setup("change to working directory /etc/passwd/sub: not a directory".into())
    );
}

// Confinement: seccomp, capabilities, no_new_privs, masked and read-only paths.

/// A static helper that calls keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, create)
/// and prints the errno, or "ok"; busybox has no keyctl. Built once with `gcc -static`.
fn keyctl_helper() -> &'static Path {
    static HELPER: OnceLock<PathBuf> = OnceLock::new();
    HELPER.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let bin = dir.join("keyctl-helper");
        if bin.exists() {
            return bin;
        }
        let src = dir.join(format!("keyctl-{}.c", std::process::id()));
        fs::write(
            &src,
            "#include <errno.h>\n#include <stdio.h>\n#include <unistd.h>\n#include <sys/syscall.h>\n\
             int main(void) {\n\
               long r = syscall(SYS_keyctl, 0, -3, 1);\n\
               if (r < 0) { printf(\"keyctl errno %d\\n\", errno); return 1; }\n\
               printf(\"keyctl ok\\n\");\n  return 0;\n}\n",
        )
        .unwrap();
        // Built under a private name and renamed, so concurrent test binaries agree.
        let staged = dir.join(format!("keyctl-helper-{}", std::process::id()));
        let status = std::process::Command::new("gcc")
            .args(["-static", "-O2", "-o"])
            .arg(&staged)
            .arg(&src)
            .status()
            .expect("gcc (scripts/setup.sh installs it)");
        assert!(status.success(), "gcc -static failed");
        fs::remove_file(&src).unwrap();
        fs::rename(&staged, &bin).unwrap();
        bin
    })
}

fn with_keyctl(rootfs: &Rootfs) {
    let target = rootfs.path().join("bin/keyctl-helper");
    if fs::hard_link(keyctl_helper(), &target).is_err() {
        fs::copy(keyctl_helper(), &target).unwrap();
    }
}

/// Docker's default profile compiled for `capabilities`.
fn default_program(capabilities: u64) -> Option<seccomp::Program> {
    seccomp::compile(
        seccomp::DEFAULT_PROFILE,
        &seccomp::Target::host(capabilities),
    )
    .unwrap()
}

fn status_field<'a>(status: &'a str, field: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in {status}"))
        .trim()
}

#[test]
fn default_seccomp_filter_blocks_what_docker_blocks() {
    let rootfs = Rootfs::new();
    with_keyctl(&rootfs);
    let out = run(&rootfs.path(), "cat /proc/self/status");
    assert_eq!(status_field(&out.stdout, "Seccomp"), "2");
    assert_eq!(status_field(&out.stdout, "NoNewPrivs"), "0");
    // A user namespace would let container root mount what it likes (issue 12): EPERM, as
    // under Docker.
    let out = try_run(&rootfs.path(), &["unshare", "-U", "true"], |_| {}).unwrap();
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("Operation not permitted"),
        "{}",
        out.stderr
    );
    let out = try_run(&rootfs.path(), &["unshare", "-m", "true"], |_| {}).unwrap();
    assert!(
        out.stderr.contains("Operation not permitted"),
        "{}",
        out.stderr
    );
    // The kernel keyring is not namespaced: refused by the filter.
    let out = try_run(&rootfs.path(), &["keyctl-helper"], |_| {}).unwrap();
    assert_eq!(
        out.stdout,
        format!("keyctl errno {}\n", libc::EPERM),
        "{}",
        out.stderr
    );
    // mount is refused too (without CAP_SYS_ADMIN it would be anyway).
    let out = try_run(
        &rootfs.path(),
        &["mount", "-t", "tmpfs", "none", "/mnt"],
        |_| {},
    )
    .unwrap();
    assert_ne!(out.code, 0, "mount succeeded");
    // Without the filter the same keyctl works: the test shows the filter, not the kernel.
    let out = try_run(&rootfs.path(), &["keyctl-helper"], |s| {
        s.security.seccomp = None
    })
    .unwrap();
    assert_eq!(out.stdout, "keyctl ok\n", "{}", out.stderr);
    let out = run_with(&rootfs.path(), "grep Seccomp: /proc/self/status", |s| {
        s.security.seccomp = None
    });
    assert_eq!(status_field(&out.stdout, "Seccomp"), "0");
}

#[test]
fn a_custom_profile_denies_mkdir_with_eperm() {
    let rootfs = Rootfs::new();
    let profile = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["mkdir","mkdirat","no_such_syscall"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#;
    let program = seccomp::compile(profile, &seccomp::Target::host(sysinit::caps::DEFAULT))
        .unwrap()
        .unwrap();
    let out = try_run(&rootfs.path(), &["mkdir", "/tmp/denied"], |s| {
        s.security.seccomp = Some(program.clone())
    })
    .unwrap();
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("Operation not permitted"),
        "{}",
        out.stderr
    );
    assert!(!rootfs.path().join("tmp/denied").exists());
    // And with no_new_privs the filter still comes (late, right before exec).
    let out = run_with(
        &rootfs.path(),
        "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; mkdir /tmp/x || true",
        |s| {
            s.security.seccomp = Some(program.clone());
            s.security.no_new_privileges = true;
        },
    );
    assert_eq!(status_field(&out.stdout, "Seccomp"), "2");
    assert_eq!(status_field(&out.stdout, "NoNewPrivs"), "1");
    assert!(!rootfs.path().join("tmp/x").exists());
}

#[test]
fn no_new_privileges_with_the_default_profile_and_another_user() {
    let rootfs = Rootfs::new();
    let out = run_with(&rootfs.path(), "cat /proc/self/status", |s| {
        s.security.no_new_privileges = true;
        s.user = "app".into();
    });
    assert_eq!(status_field(&out.stdout, "NoNewPrivs"), "1");
    assert_eq!(status_field(&out.stdout, "Seccomp"), "2");
    assert_eq!(status_field(&out.stdout, "CapEff"), "0000000000000000");
    assert_eq!(status_field(&out.stdout, "CapBnd"), "00000000a80425fb");
}

#[test]
fn capability_set_is_the_one_given() {
    let rootfs = Rootfs::new();
    let no_chown = sysinit::caps::DEFAULT & !1;
    let out = run_with(
        &rootfs.path(),
        "cat /proc/self/status; chown 1 /tmp || echo chown-refused",
        |s| {
            s.security.capabilities = no_chown;
            s.security.seccomp = default_program(no_chown);
        },
    );
    assert_eq!(status_field(&out.stdout, "CapEff"), "00000000a80425fa");
    assert_eq!(status_field(&out.stdout, "CapBnd"), "00000000a80425fa");
    // With CAP_SYS_ADMIN the profile opens unshare and mount, as Docker's does.
    let admin = sysinit::caps::DEFAULT | 1 << 21;
    let out = run_with(
        &rootfs.path(),
        "unshare -U true && echo unshared; mount -t tmpfs none /mnt && echo mounted; umount /mnt",
        |s| {
            s.security.capabilities = admin;
            s.security.seccomp = default_program(admin);
        },
    );
    assert_eq!(out.stdout, "unshared\nmounted\n", "{}", out.stderr);
}

#[test]
fn privileged_has_everything_open() {
    let rootfs = Rootfs::new();
    let out = run_with(
        &rootfs.path(),
        "cat /proc/self/status; grep ' /sys ' /proc/mounts; wc -c < /proc/interrupts; \
         grep -c ' /proc/keys ' /proc/self/mountinfo || true",
        |s| s.security = Security::privileged(),
    );
    assert_eq!(status_field(&out.stdout, "Seccomp"), "0");
    assert_eq!(
        u64::from_str_radix(status_field(&out.stdout, "CapEff"), 16).unwrap(),
        sysinit::caps::available()
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    let sys = lines.iter().find(|l| l.starts_with("sysfs /sys ")).unwrap();
    assert!(sys.contains(" rw,"), "/sys is read-only: {sys}");
    let n = lines.len();
    assert_ne!(lines[n - 2].trim(), "0", "/proc/interrupts is masked");
    assert_eq!(lines[n - 1].trim(), "0", "/proc/keys is masked");
}

#[test]
fn dockers_masked_paths_are_empty_and_read_only_paths_refuse_writes() {
    let rootfs = Rootfs::new();
    let masked = sysinit::default_masked_paths();
    assert!(masked.iter().any(|p| p == "/proc/interrupts"));
    // Each masked path is absent, an empty file or an empty directory.
    let mut script = String::new();
    for path in &masked {
        script.push_str(&format!(
            "if [ -d {path} ]; then echo \"{path} $(ls -A {path} | wc -l)\"; \
             elif [ -e {path} ]; then echo \"{path} $(cat {path} | wc -c)\"; \
             else echo \"{path} 0\"; fi; "
        ));
    }
    let out = run(&rootfs.path(), &script);
    for path in &masked {
        assert!(
            out.stdout.lines().any(|l| l == format!("{path} 0")),
            "{path} is not masked: {}",
            out.stdout
        );
    }
    // Each read-only path is a read-only mount of its own (a path this kernel lacks is
    // skipped, as Docker skips it)...
    let mountinfo = run(&rootfs.path(), "cat /proc/self/mountinfo").stdout;
    for path in sysinit::DEFAULT_READONLY_PATHS {
        let mount = mountinfo
            .lines()
            .rfind(|l| l.split(' ').nth(4) == Some(path));
        match mount {
            Some(line) => assert!(
                line.split(' ').nth(5).is_some_and(|o| o.starts_with("ro")),
                "{path} is not read-only: {line}"
            ),
            None => assert!(
                !Path::new(path).exists(),
                "{path} is not a mount: {mountinfo}"
            ),
        }
    }
    // ...and refuses writes that root could otherwise make, with EROFS.
    for target in [
        "/proc/sysrq-trigger",
        "/proc/sys/kernel/domainname",
        "/proc/irq/default_smp_affinity",
    ] {
        let script = format!("[ -e {target} ] || {{ echo absent; exit 0; }}; echo 1 > {target}");
        let out = try_run(&rootfs.path(), &["sh", "-c", &script], |_| {}).unwrap();
        if out.stdout == "absent\n" {
            continue;
        }
        assert_ne!(out.code, 0, "{target} was writable");
        assert!(
            out.stderr.contains("Read-only file system"),
            "{target}: {}",
            out.stderr
        );
    }
}

/// `sysinit::exec` into a running init: runs `args` with `adjust` applied; the outcome.
fn try_exec(
    init: Pid,
    args: &[&str],
    adjust: impl FnOnce(&mut sysinit::ExecSpec),
) -> Result<Outcome, SpawnError> {
    use std::os::fd::FromRawFd;
    let (stdout_read, stdout_write) = pipe().unwrap();
    let (stderr_read, stderr_write) = pipe().unwrap();
    // SAFETY: pidfd_open of our own live child; the descriptor is ours.
    let pidfd = unsafe {
        OwnedFd::from_raw_fd(libc::syscall(libc::SYS_pidfd_open, init.as_raw(), 0) as i32)
    };
    let mut spec = sysinit::ExecSpec {
        init: pidfd,
        root: format!("/proc/{init}/root").into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        env: vec!["PATH=/bin".into(), "FROM=exec".into()],
        user: String::new(),
        workdir: String::new(),
        stdio: Stdio::Fds {
            stdin: fs::File::open("/dev/null").unwrap().into(),
            stdout: stdout_write,
            stderr: stderr_write,
        },
        cgroups: sysinit::Cgroups::default(),
        security: default_security(),
    };
    adjust(&mut spec);
    let pid = sysinit::exec(spec)?.pid;
    let mut guard = ChildGuard(Some(pid));
    let mut stdout = String::new();
    fs::File::from(stdout_read)
        .read_to_string(&mut stdout)
        .unwrap();
    let mut stderr = String::new();
    fs::File::from(stderr_read)
        .read_to_string(&mut stderr)
        .unwrap();
    let code = wait_code(guard.0.take().unwrap());
    Ok(Outcome {
        stdout,
        stderr,
        code,
    })
}

#[test]
fn exec_joins_a_running_init_and_reports_like_it() {
    let rootfs = Rootfs::new();
    let (stdout_read, stdout_write) = pipe().unwrap();
    drop(stdout_read);
    let null = || -> OwnedFd { fs::File::open("/dev/null").unwrap().into() };
    let spec = spec(
        &rootfs.path(),
        &["sleep", "1000"],
        null(),
        stdout_write,
        null(),
    );
    let init = spawn(spec, |_| Ok(())).unwrap().pid;
    let _guard = ChildGuard(Some(init));

    let out = try_exec(
        init,
        &[
            "sh",
            "-c",
            "echo $$ $FROM; hostname; cat /proc/1/cmdline; echo; pwd; id -u",
        ],
        |spec| {
            spec.user = "app".into();
            spec.workdir = "/tmp".into();
        },
    )
    .unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let (pid, from) = lines[0].split_once(' ').unwrap();
    assert!(pid.parse::<i32>().unwrap() > 1, "{}", out.stdout);
    assert_eq!(from, "exec");
    assert_eq!(
        &lines[1..],
        ["testbox", "sleep\u{0}1000\u{0}", "/tmp", "1000"]
    );

    assert_eq!(
        try_exec(init, &["sh", "-c", "exit 3"], |_| {})
            .unwrap()
            .code,
        3
    );
    let Err(err) = try_exec(init, &["nope"], |_| {}) else {
        panic!("a missing command ran")
    };
    assert_eq!(err.exit_code(), 127, "{err}");
    let Err(err) = try_exec(init, &["/etc/notexec"], |_| {}) else {
        panic!("a file that is not executable ran")
    };
    assert_eq!(err.exit_code(), 126, "{err}");
    let Err(err) = try_exec(init, &["true"], |spec| spec.workdir = "/nowhere".into()) else {
        panic!("an exec into a missing working directory ran")
    };
    assert!(matches!(err, SpawnError::Setup(_)), "{err}");
    assert!(err.to_string().contains("/nowhere"), "{err}");
    assert!(
        !rootfs.path().join("nowhere").exists(),
        "an exec never creates its workdir"
    );
}

/// A network namespace made ahead is the one the init runs in (with lo up), and the caller's
/// thread is back in its own once spawn returns.
#[test]
fn the_init_runs_in_the_network_namespace_made_ahead() {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let rootfs = Rootfs::new();
    let netns = sysinit::netns::NetnsAhead::start().unwrap().get().unwrap();
    let made = fs::metadata(format!("/proc/self/fd/{}", netns.as_raw_fd()))
        .unwrap()
        .ino();
    let host = fs::metadata("/proc/thread-self/ns/net").unwrap().ino();
    let out = run_with(
        &rootfs.path(),
        "readlink /proc/self/ns/net; cat /sys/class/net/lo/operstate",
        |spec| spec.netns = Some(netns),
    );
    assert_eq!(out.stdout, format!("net:[{made}]\nunknown\n"));
    assert_eq!(
        fs::metadata("/proc/thread-self/ns/net").unwrap().ino(),
        host
    );
}
