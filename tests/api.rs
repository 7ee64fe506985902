//! `dock daemon` driven by the real `docker` CLI over a private unix socket.
//!
//! Each test starts its own daemon on a temp root and socket, gives the CLI a fresh config
//! dir, and runs every `docker` call under `timeout` so that a hang fails instead of blocking.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::daemon::{docker_command, spawn_daemon};
use common::{busybox_tar, dock_bin, stderr, stdout, DockRoot};

const DOCK_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Seconds any one `docker` call may take before it counts as hung.
const CALL_LIMIT: &str = "60";

/// A running `dock daemon` on a private root and socket, stopped on drop.
struct Daemon {
    root: DockRoot,
    /// What DOCKER_HOST says: `unix://...` or `tcp://...`.
    host: String,
    socket: PathBuf,
    docker_config: tempfile::TempDir,
    /// Global options every `docker` call gets before its command (the TLS flags).
    docker_args: Vec<String>,
    child: Option<Child>,
}

impl Daemon {
    fn start() -> Daemon {
        let root = DockRoot::new();
        let socket = root.path().join("api.sock");
        let host = format!("unix://{}", socket.display());
        Daemon::start_on(root, host, socket)
    }

    fn start_on(root: DockRoot, host: String, socket: PathBuf) -> Daemon {
        let child = spawn_daemon(root.path(), &host, &[]);
        Daemon::started(root, host, socket, child, Vec::new())
    }

    /// A daemon started with `daemon_args` after `-H listen`, which the `docker` CLI reaches
    /// on `host` with `docker_args` before each command.
    fn start_with(
        root: DockRoot,
        listen: &str,
        daemon_args: &[&str],
        host: String,
        docker_args: &[&str],
    ) -> Daemon {
        let child = spawn_daemon(root.path(), listen, daemon_args);
        let socket = root.path().join("unused.sock");
        let docker_args = docker_args.iter().map(|a| a.to_string()).collect();
        Daemon::started(root, host, socket, child, docker_args)
    }

    fn started(
        root: DockRoot,
        host: String,
        socket: PathBuf,
        child: Child,
        docker_args: Vec<String>,
    ) -> Daemon {
        let daemon = Daemon {
            root,
            host,
            socket,
            docker_config: tempfile::Builder::new()
                .prefix("dock-docker-config-")
                .tempdir()
                .unwrap(),
            docker_args,
            child: Some(child),
        };
        daemon.wait_until_listening();
        daemon
    }

    fn wait_until_listening(&self) {
        let listening = || match self.host.strip_prefix("tcp://") {
            Some(address) => std::net::TcpStream::connect(address).is_ok(),
            None => UnixStream::connect(&self.socket).is_ok(),
        };
        for _ in 0..1000 {
            if listening() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!(
            "dock daemon never listened on {}:\n{}",
            self.host,
            self.log()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("daemon.log")).unwrap_or_default()
    }

    fn docker_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = self.bare_docker_cmd();
        cmd.args(&self.docker_args).args(args);
        cmd
    }

    /// `docker` on this daemon's host without the global options of `docker_args`.
    fn bare_docker_cmd(&self) -> Command {
        let mut cmd = docker_command(&self.host, self.docker_config.path(), CALL_LIMIT);
        cmd.env_remove("DOCKER_CERT_PATH")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_TLS");
        cmd
    }

    /// `docker args...`, whatever its exit status.
    fn docker(&self, args: &[&str]) -> Output {
        self.docker_cmd(args).output().unwrap()
    }

    /// `docker args...` with `input` on its stdin.
    fn docker_with_input(&self, args: &[&str], input: &Path) -> Output {
        let mut cmd = self.docker_cmd(args);
        cmd.stdin(std::fs::File::open(input).unwrap());
        cmd.output().unwrap()
    }

    /// `docker args...` with `bytes` written to a pipe on its stdin, then the pipe closed.
    fn docker_piped(&self, args: &[&str], bytes: &[u8]) -> Output {
        let mut child = self
            .docker_cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(bytes).unwrap();
        child.wait_with_output().unwrap()
    }

    /// `docker args...`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        self.check(args, &out);
        stdout(&out)
    }

    fn check(&self, args: &[&str], out: &Output) {
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}\nstdout: {}\nstderr: {}\ndaemon log:\n{}",
            out.status,
            stdout(out),
            stderr(out),
            self.log()
        );
    }

    /// Import the busybox rootfs through the API as `name`; the printed image id.
    fn import_busybox(&self, name: &str) -> String {
        let args = ["import", "-", name];
        let out = self.docker_with_input(&args, busybox_tar());
        self.check(&args, &out);
        stdout(&out).trim().to_string()
    }

    /// Stop the daemon with SIGTERM; its exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("daemon already stopped");
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped yet.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        child.wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: as in stop().
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let _ = child.wait();
        }
        common::daemon::remove_leftovers(self.root.path());
    }
}

fn is_image_id(text: &str) -> bool {
    text.strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The `docker images` rows as (repository, tag, short id).
fn image_rows(daemon: &Daemon) -> Vec<(String, String, String)> {
    daemon
        .ok(&["images", "--format", "{{.Repository}} {{.Tag}} {{.ID}}"])
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields[0].into(), fields[1].into(), fields[2].into())
        })
        .collect()
}

#[test]
fn version_and_info_show_the_api_and_dock_versions() {
    let daemon = Daemon::start();
    let version = daemon.ok(&["version"]);
    let server = version
        .split("Server:")
        .nth(1)
        .unwrap_or_else(|| panic!("no server section in:\n{version}"));
    assert!(
        server.lines().any(|l| l.trim_start().starts_with("Version:") && l.trim_end().ends_with(DOCK_VERSION)),
        "{version}"
    );
    assert!(
        server
            .lines()
            .any(|l| l.contains("API version:") && l.contains("1.44 (minimum version 1.24)")),
        "{version}"
    );
    // A newer client negotiates down to 1.44; an older one (Debian's) speaks its own version.
    let client_api = version
        .split("Server:")
        .next()
        .and_then(|client| client.lines().find(|l| l.contains("API version:")))
        .unwrap_or_else(|| panic!("no client API version in:\n{version}"));
    if client_api.contains("downgraded") {
        assert!(client_api.contains("1.44 (downgraded from"), "{version}");
    }
    assert_eq!(
        daemon
            .ok(&[
                "version",
                "-f",
                "{{.Server.Version}} {{.Server.APIVersion}}"
            ])
            .trim(),
        format!("{DOCK_VERSION} 1.44")
    );
    let info = daemon.ok(&["info"]);
    assert!(
        info.contains(&format!("Server Version: {DOCK_VERSION}")),
        "{info}"
    );
    assert_eq!(
        daemon
            .ok(&["info", "--format", "{{.Images}} {{.Containers}}"])
            .trim(),
        "0 0"
    );
}

#[test]
fn import_images_tag_history_rmi_behave_as_against_docker() {
    let daemon = Daemon::start();
    let id = daemon.import_busybox("bbox:v1");
    assert!(is_image_id(&id), "import printed {id:?}");
    let short = id["sha256:".len()..][..12].to_string();
    assert_eq!(
        image_rows(&daemon),
        vec![("bbox".into(), "v1".into(), short.clone())]
    );

    // Names with slashes and a registry port route through the paths.
    assert_eq!(
        daemon.ok(&["tag", "bbox:v1", "localhost:5000/me/sub:2"]),
        ""
    );
    assert_eq!(daemon.ok(&["tag", "bbox:v1", "other"]), "");
    let mut rows = image_rows(&daemon);
    rows.sort();
    assert_eq!(
        rows,
        vec![
            ("bbox".into(), "v1".into(), short.clone()),
            ("localhost:5000/me/sub".into(), "2".into(), short.clone()),
            ("other".into(), "latest".into(), short.clone()),
        ]
    );
    assert_eq!(
        daemon
            .ok(&[
                "image",
                "inspect",
                "-f",
                "{{.Id}}",
                "localhost:5000/me/sub:2"
            ])
            .trim(),
        id
    );
    // One row per name, as Docker lists them.
    let ids = daemon.ok(&["images", "-q", "--no-trunc"]);
    assert_eq!(ids.lines().collect::<Vec<_>>(), vec![id.as_str(); 3]);
    assert_eq!(
        daemon
            .ok(&["images", "--format", "{{.Tag}}", "bbox"])
            .trim(),
        "v1"
    );

    let history = daemon.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.ID}}|{{.Comment}}",
        "other",
    ]);
    assert_eq!(history.trim(), format!("{id}|Imported from -"));
    let history = daemon.ok(&["history", "-q", &short]);
    assert_eq!(history.trim(), short);

    // One of several names only untags; the last one deletes the image.
    assert_eq!(
        daemon.ok(&["rmi", "localhost:5000/me/sub:2"]),
        "Untagged: localhost:5000/me/sub:2\n"
    );
    assert_eq!(daemon.ok(&["rmi", "other"]), "Untagged: other:latest\n");
    assert_eq!(
        daemon.ok(&["rmi", "bbox:v1"]),
        format!("Untagged: bbox:v1\nDeleted: {id}\n")
    );
    assert_eq!(daemon.ok(&["images", "-q"]), "");

    // By id, an image with several names needs -f.
    let id = daemon.import_busybox("first");
    daemon.ok(&["tag", "first", "second:x"]);
    let out = daemon.docker(&["rmi", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("must be forced) - image is referenced in multiple repositories"),
        "{}",
        stderr(&out)
    );
    let removed = daemon.ok(&["rmi", "-f", &id]);
    let mut lines: Vec<&str> = removed.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            format!("Deleted: {id}").as_str(),
            "Untagged: first:latest",
            "Untagged: second:x"
        ]
    );
}

#[test]
fn unknown_objects_answer_like_docker() {
    let daemon = Daemon::start();
    let out = daemon.docker(&["inspect", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out).trim(), "[]");
    assert!(
        stderr(&out).contains("No such object: nosuch"),
        "{}",
        stderr(&out)
    );

    // The message arrives as plain text: the error JSON's content type is exact.
    for args in [
        &["image", "inspect", "nosuch"][..],
        &["history", "nosuch"],
        &["rmi", "nosuch"],
        &["tag", "nosuch", "x"],
    ] {
        let out = daemon.docker(args);
        assert_eq!(out.status.code(), Some(1), "docker {args:?}");
        assert!(
            stderr(&out).contains("Error response from daemon: No such image: nosuch:latest"),
            "docker {args:?}: {}",
            stderr(&out)
        );
        assert!(!stderr(&out).contains('{'), "{}", stderr(&out));
    }

    // A missing image makes `run` ask for a pull, refused at once: no registry is configured.
    let out = daemon.docker(&["run", "nosuchimg"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Unable to find image 'nosuchimg:latest' locally"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("no default registry is configured"),
        "{}",
        stderr(&out)
    );
    assert!(daemon.docker(&["pull", "busybox"]).status.code() == Some(1));
}

#[test]
fn a_broken_import_reports_the_error_and_leaves_nothing() {
    let daemon = Daemon::start();
    let garbage = daemon.root.path().join("garbage.tar");
    std::fs::write(&garbage, vec![0x42u8; 4096]).unwrap();
    let out = daemon.docker_with_input(&["import", "-", "broken"], &garbage);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(!stderr(&out).trim().is_empty());
    assert_eq!(daemon.ok(&["images", "-aq"]), "");
}

#[test]
fn the_daemon_stops_on_sigterm_and_removes_its_socket() {
    let mut daemon = Daemon::start();
    // A second daemon (0.1.0's `dock -d` spelling) on the same socket refuses to steal it.
    let second = Command::new(dock_bin())
        .arg("-d")
        .arg("--root")
        .arg(daemon.root.path())
        .arg("-H")
        .arg(format!("unix://{}", daemon.socket.display()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(
        stderr(&second).contains("already listening"),
        "{}",
        stderr(&second)
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&daemon.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660);

    assert!(daemon.stop().success(), "{}", daemon.log());
    assert!(!daemon.socket.exists());
}

#[test]
fn the_daemon_listens_on_tcp_when_asked() {
    let port = free_port();
    let root = DockRoot::new();
    let socket = root.path().join("unused.sock");
    let daemon = Daemon::start_on(root, format!("tcp://127.0.0.1:{port}"), socket);
    assert_eq!(
        daemon
            .ok(&["version", "-f", "{{.Server.APIVersion}}"])
            .trim(),
        "1.44"
    );
    assert!(!daemon.socket.exists());
    // Served, but not without saying who can reach root through it.
    let log = daemon.log();
    assert!(
        log.contains(&format!(
            "the API on tcp://127.0.0.1:{port} does not verify clients"
        )) && log.contains("every user and process on this machine can reach it"),
        "{log}"
    );
}

/// A free loopback port: bound, read and released for a daemon to take.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[path = "api_containers.rs"]
mod containers;

#[path = "api_tls.rs"]
mod tls;
