//! A `dock daemon` on a private root and socket, driven by the real `docker` CLI and by raw
//! HTTP requests; stopped, and its root cleaned up, on drop.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::{busybox_tar, dock_bin, stderr, stdout, DockRoot};

/// A running `dock daemon` (debug log in `daemon.log` of its root) on `api.sock` of its root.
pub struct Daemon {
    child: Option<Child>,
    pub socket: PathBuf,
    /// Seconds any one `docker` call may take before `timeout` ends it as hung.
    pub call_limit: &'static str,
    pub docker_config: tempfile::TempDir,
    /// Dropped last: removes what is left of containers, mounts, cgroups and network.
    pub root: DockRoot,
}

impl Daemon {
    /// A daemon on a new empty root.
    pub fn start() -> Daemon {
        Daemon::start_on(DockRoot::new())
    }

    /// A daemon on `root`, listening once this returns.
    pub fn start_on(root: DockRoot) -> Daemon {
        let socket = root.path().join("api.sock");
        let child = spawn_daemon(root.path(), &format!("unix://{}", socket.display()), &[]);
        let daemon = Daemon {
            child: Some(child),
            socket,
            call_limit: "60",
            docker_config: tempfile::Builder::new()
                .prefix("dock-docker-config-")
                .tempdir()
                .unwrap(),
            root,
        };
        for _ in 0..1000 {
            if UnixStream::connect(&daemon.socket).is_ok() {
                return daemon;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "dock daemon never listened on {}:\n{}",
            daemon.socket.display(),
            daemon.log()
        );
    }

    /// What the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("daemon.log")).unwrap_or_default()
    }

    /// `docker args...` on this daemon, under `timeout` with a private config dir.
    pub fn docker_cmd(&self, args: &[&str]) -> Command {
        let host = format!("unix://{}", self.socket.display());
        let mut cmd = docker_command(&host, self.docker_config.path(), self.call_limit);
        cmd.args(args);
        cmd
    }

    /// `docker args...`, whatever its exit status.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_cmd(args).output().unwrap()
    }

    /// `docker args...`, which must succeed; its stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        self.check(args, &out);
        stdout(&out)
    }

    /// Fails the test, with the daemon's log, unless `out` of `docker args...` succeeded.
    pub fn check(&self, args: &[&str], out: &Output) {
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}\nstdout: {}\nstderr: {}\ndaemon log:\n{}",
            out.status,
            stdout(out),
            stderr(out),
            self.log()
        );
    }

    /// `docker import - name` of the busybox rootfs.
    pub fn import_busybox(&self, name: &str) {
        let args = ["import", "-", name];
        let mut cmd = self.docker_cmd(&args);
        cmd.stdin(std::fs::File::open(busybox_tar()).unwrap());
        let out = cmd.output().unwrap();
        self.check(&args, &out);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on the pid of a child we spawned and have not reaped yet.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let _ = child.wait();
        }
        remove_leftovers(self.root.path());
    }
}

/// What containers of the dock root at `root` leave once its daemon has stopped: removes the
/// containers (monitors, mounts, cgroups), the root's network and its cgroup parent.
pub fn remove_leftovers(root: &Path) {
    let Ok(rt) = runtime::Runtime::open(root) else {
        return;
    };
    for c in rt.list().unwrap_or_default() {
        let _ = rt.remove(&c.id, true);
    }
    // The root's network (bridge, nftables table, state), if it was ever set up.
    if rt.net_config().is_ok_and(|cfg| cfg.state_dir.exists()) {
        if let Ok(network) = rt.network() {
            let _ = network.destroy();
        }
    }
    // And the per-root cgroup parent the containers lived under.
    if let Ok(hierarchy) = runtime::cgroup::Hierarchy::detect() {
        let _ = hierarchy.remove_parent(&rt.cgroup_parent());
    }
}

/// `docker` (its command to come) on the daemon at `host` with the CLI config dir `config`,
/// ended as hung after `call_limit` seconds, deaf to the caller's DOCKER_API_VERSION and
/// DOCKER_CONTEXT.
pub fn docker_command(host: &str, config: &Path, call_limit: &str) -> Command {
    let mut cmd = Command::new("timeout");
    // -k: an attached CLI forwards SIGTERM to the container instead of exiting.
    cmd.args(["-k", "5", call_limit, "docker"])
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", config)
        .env("DOCKER_CLI_HINTS", "false")
        .env_remove("DOCKER_API_VERSION")
        .env_remove("DOCKER_CONTEXT")
        .stdin(Stdio::null());
    cmd
}

/// `dock --root root daemon -H host args...`, its debug log in `daemon.log` of the root.
pub fn spawn_daemon(root: &Path, host: &str, args: &[&str]) -> Child {
    let log = std::fs::File::create(root.join("daemon.log")).unwrap();
    Command::new(dock_bin())
        .arg("--root")
        .arg(root)
        .arg("daemon")
        .arg("-H")
        .arg(host)
        .args(args)
        .env("DOCK_LOG", "debug")
        .env_remove("DOCKER_CERT_PATH")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Sends `request_head` (ending in the blank line) and `body` on a new connection to
/// `socket` and reads until the daemon closes it; (status, response head, raw body).
pub fn http_exchange(socket: &Path, request_head: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream.write_all(request_head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head, raw[split + 4..].to_vec())
}
