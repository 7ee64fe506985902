//! Issue 14's reliability points for the monitor, the daemon and memory limits: nothing hangs
//! behind a stdin backlog or a client that stopped reading, signals are acknowledged, stdin
//! closes with its last client, the daemon reaps its monitors and drops half-sent requests,
//! and a memory limit below Docker's minimum is refused.
//!
//! No timing is asserted: every wait has a generous guard that fails the test when something
//! hangs, and every process a test starts is killed when the test ends, passed or failed.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Far above what any step takes; reaching it means the step hangs.
const GUARD: Duration = Duration::from_secs(60);

/// A child process killed (and reaped) when dropped.
struct Guarded(Child);

impl Guarded {
    fn spawn(cmd: &mut Command) -> Guarded {
        Guarded(cmd.spawn().unwrap())
    }

    fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    /// Waits for the exit, failing the test if it does not come within the guard.
    fn wait(&mut self, what: &str) -> std::process::ExitStatus {
        let deadline = Instant::now() + GUARD;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "{what} hangs");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `dock args` to its end, failing the test if it hangs.
fn guarded(root: &DockRoot, args: &[&str]) -> Output {
    let mut child = Guarded::spawn(
        root.cmd()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    child.wait(&format!("dock {args:?}"));
    let mut out = Output {
        status: child.0.wait().unwrap(),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut out.stdout)
        .unwrap();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut out.stderr)
        .unwrap();
    out
}

/// Polls `check` until it holds, failing with `what` if it does not within the guard.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + GUARD;
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn running(root: &DockRoot, name: &str) -> bool {
    let out = root.run(&["inspect", name]);
    out.status.success()
        && serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()[0]["State"]["Running"]
            == true
}

fn log_file(root: &DockRoot, id: &str) -> PathBuf {
    root.path()
        .join("containers")
        .join(id)
        .join(format!("{id}-json.log"))
}

fn logs(root: &DockRoot, name: &str) -> String {
    stdout(&root.run(&["logs", name]))
}

#[test]
fn stop_gets_through_a_full_stdin_backlog() {
    let root = DockRoot::with_busybox();
    let mut run = Guarded::spawn(
        root.cmd()
            .args(["run", "-i", "--network", "none", "--name", "fed"])
            .args(["busybox", "sleep", "1000"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let mut stdin = run.0.stdin.take().unwrap();
    // `head -c 200k /dev/zero |`: more than the container's pipe, the monitor's backlog and the
    // socket between them hold; the writer blocks once they are full (sleep never reads).
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&vec![0u8; 200 * 1024]);
        let _ = done_tx.send(());
        // Kept open: the backlog stays.
        std::thread::park_timeout(GUARD);
    });
    eventually("the container runs", || running(&root, "fed"));
    // Either all of it was taken, or the backlog is full: both are the case to test.
    let _ = done_rx.recv_timeout(Duration::from_secs(2));
    let out = guarded(&root, &["stop", "-t", "1", "fed"]);
    assert!(out.status.success(), "stop: {}", stderr(&out));
    assert!(!running(&root, "fed"));
    let status = run.wait("run -i after its container stopped");
    assert_eq!(status.code(), Some(137), "sleep ignores SIGTERM as PID 1");
    feeder.thread().unpark();
    let _ = feeder.join();
}

#[test]
fn the_run_clients_own_signals_pass_a_full_stdin_backlog() {
    let root = DockRoot::with_busybox();
    let mut run = Guarded::spawn(
        root.cmd()
            .args(["run", "-i", "--network", "none", "--name", "proxied"])
            .args(["busybox", "sh", "-c"])
            .arg("trap 'exit 7' TERM; echo ready; while :; do sleep 0.05; done")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let mut stdin = run.0.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&vec![0u8; 200 * 1024]);
        std::thread::park_timeout(GUARD);
    });
    eventually("the trap is set", || {
        logs(&root, "proxied").contains("ready")
    });
    // SIGTERM to `dock run` is forwarded to the container (sig-proxy).
    // SAFETY: plain kill of our own child.
    unsafe { libc::kill(run.pid(), libc::SIGTERM) };
    let status = run.wait("run -i after SIGTERM");
    assert_eq!(status.code(), Some(7));
    feeder.thread().unpark();
    let _ = feeder.join();
}

#[test]
fn a_client_that_stopped_reading_holds_up_neither_log_nor_stop() {
    let root = DockRoot::with_busybox();
    let line = "x".repeat(200);
    let id = root
        .ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "chatty",
            "busybox",
            "sh",
            "-c",
            &format!("while :; do echo {line}; done"),
        ])
        .trim()
        .to_string();
    // An attach whose own output nobody reads: once its pipe and socket are full it stops
    // reading the monitor.
    let mut attach = Guarded::spawn(
        root.cmd()
            .args(["attach", "chatty"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let mut first = [0u8; 1];
    attach
        .0
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    let log = log_file(&root, &id);
    let attached_at = std::fs::metadata(&log).unwrap().len();
    // Far more than the attach's pipe, its socket buffers and the monitor's queue for it hold.
    let grown = attached_at + 16 * 1024 * 1024;
    eventually("the log grows past the stalled client", || {
        std::fs::metadata(&log).unwrap().len() > grown
    });
    let out = guarded(&root, &["stop", "-t", "1", "chatty"]);
    assert!(out.status.success(), "stop: {}", stderr(&out));
    assert!(!running(&root, "chatty"));
    assert!(logs(&root, "chatty").starts_with(&line));
}

#[test]
fn twenty_hups_right_after_start_all_arrive() {
    let root = DockRoot::with_busybox();
    let script = "trap 'n=$((n+1)); echo hup $n' HUP; echo ready; \
                  while :; do sleep 1000 & wait $!; kill $! 2>/dev/null; done";
    let id = root
        .ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "hups",
            "busybox",
            "sh",
            "-c",
            script,
        ])
        .trim()
        .to_string();
    eventually("the trap is set", || logs(&root, "hups").contains("ready"));
    // The monitor acknowledges a signal once it sent it.
    let socket = root.path().join("containers").join(&id).join("attach.sock");
    let mut client = runtime::Client::connect(&socket, runtime::attach::Hello::default()).unwrap();
    assert_eq!(
        client
            .signal_acked(libc::SIGHUP, Duration::from_secs(60))
            .unwrap(),
        Some(0)
    );
    drop(client);
    eventually("the first HUP arrives", || {
        logs(&root, "hups").contains("hup 1\n")
    });
    for n in 2..=20 {
        let out = guarded(&root, &["kill", "-s", "HUP", "hups"]);
        assert!(out.status.success(), "kill {n}: {}", stderr(&out));
        eventually(&format!("HUP {n} arrives"), || {
            logs(&root, "hups").contains(&format!("hup {n}\n"))
        });
    }
    assert!(running(&root, "hups"));
    root.ok(&["kill", "hups"]);
}

#[test]
fn killing_the_interactive_client_closes_the_containers_stdin() {
    let root = DockRoot::with_busybox();
    let mut run = Guarded::spawn(
        root.cmd()
            .args(["run", "-i", "--network", "none", "--name", "reader"])
            .args(["busybox", "sh", "-c", "cat; echo cat ended"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    // Our end of its stdin stays open: only the client's death can close the container's.
    let _stdin = run.0.stdin.take().unwrap();
    eventually("the container runs", || running(&root, "reader"));
    kill9(run.pid());
    run.wait("the killed client");
    eventually("cat sees the end of its stdin", || {
        !running(&root, "reader")
    });
    assert!(logs(&root, "reader").contains("cat ended"));
    let c = root.inspect("reader");
    assert_eq!(c["State"]["ExitCode"], 0, "{c}");
}

#[test]
fn a_memory_limit_below_the_minimum_is_refused_and_leaves_nothing() {
    let root = DockRoot::with_busybox();
    for limit in ["1", "4k", "6291455"] {
        let out = root.run(&["run", "-m", limit, "--network", "none", "busybox", "true"]);
        assert_eq!(code(&out), 125, "-m {limit}");
        assert!(
            stderr(&out).contains("Minimum memory limit allowed is 6MB"),
            "-m {limit}: {}",
            stderr(&out)
        );
        let out = root.run(&["create", "-m", limit, "busybox", "true"]);
        assert_eq!(code(&out), 125, "create -m {limit}");
    }
    assert_eq!(root.ok(&["ps", "-aq"]), "");
    assert_eq!(root.container_dirs(), Vec::<String>::new());
    assert_eq!(root.container_cgroups(), Vec::<PathBuf>::new());

    // At the minimum the container runs, its processes below the limit, its monitor not.
    let id = root
        .ok(&[
            "run",
            "-d",
            "-m",
            "6m",
            "--network",
            "none",
            "busybox",
            "sleep",
            "1000",
        ])
        .trim()
        .to_string();
    let init = root.inspect(&id)["State"]["Pid"].as_i64().unwrap();
    let leaf = format!("/{}/{id}/container", root.cgroup_parent());
    let cgroups = std::fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap();
    assert!(
        cgroups.lines().any(
            |l| (l.starts_with("0::") || l.split(':').nth(1) == Some("memory"))
                && l.ends_with(&leaf)
        ),
        "{leaf} not in {cgroups}"
    );
    let monitors = root.monitors();
    assert_eq!(monitors.len(), 1);
    let cgroups = std::fs::read_to_string(format!("/proc/{}/cgroup", monitors[0])).unwrap();
    assert!(!cgroups.contains(&id), "{cgroups}");
    root.ok(&["rm", "-f", &id]);
}

/// A `dock daemon` on a private socket, killed on drop (its containers with the root).
struct Daemon {
    root: DockRoot,
    socket: PathBuf,
    child: Guarded,
}

impl Daemon {
    fn start(read_timeout_ms: u64) -> Daemon {
        let root = DockRoot::with_busybox();
        let socket = root.path().join("api.sock");
        let log = std::fs::File::create(root.path().join("daemon.log")).unwrap();
        let child = Guarded::spawn(
            root.cmd()
                .arg("daemon")
                .arg("-H")
                .arg(format!("unix://{}", socket.display()))
                .env("DOCK_API_READ_TIMEOUT_MS", read_timeout_ms.to_string())
                .stdout(Stdio::null())
                .stderr(log),
        );
        let daemon = Daemon {
            root,
            socket,
            child,
        };
        eventually("the daemon listens", || {
            UnixStream::connect(&daemon.socket).is_ok()
        });
        daemon
    }

    fn pid(&self) -> i32 {
        self.child.pid()
    }

    /// One request on a fresh connection; (status, body).
    fn request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut stream = UnixStream::connect(&self.socket).unwrap();
        stream.set_read_timeout(Some(GUARD)).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: dock\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{method} {path}: {answer:?}"));
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        (status, body.to_string())
    }

    /// The daemon's children: (pid, state letter).
    fn children(&self) -> Vec<(i32, char)> {
        let mut out = Vec::new();
        for task in std::fs::read_dir(format!("/proc/{}/task", self.pid()))
            .unwrap()
            .flatten()
        {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for pid in children.split_whitespace().filter_map(|p| p.parse().ok()) {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let state = stat
                    .rfind(')')
                    .and_then(|i| stat[i + 1..].trim_start().chars().next())
                    .unwrap_or('?');
                out.push((pid, state));
            }
        }
        out
    }

    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(rt) = runtime::Runtime::open(self.root.path()) {
            for c in rt.list().unwrap_or_default() {
                let _ = rt.remove(&c.id, true);
            }
        }
    }
}

fn id_of(body: &str) -> String {
    let start = body
        .find("\"Id\":\"")
        .unwrap_or_else(|| panic!("no id in {body:?}"))
        + 6;
    body[start..start + 64].to_string()
}

/// One API create/start/wait/delete cycle of a container that exits at once.
fn cycle(daemon: &Daemon) {
    let (status, body) = daemon.request(
        "POST",
        "/containers/create",
        r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"NetworkMode":"none"}}"#,
    );
    assert_eq!(status, 201, "{body}");
    let id = id_of(&body);
    let (status, body) = daemon.request("POST", &format!("/containers/{id}/start"), "");
    assert_eq!(status, 204, "{body}");
    let (status, body) = daemon.request("POST", &format!("/containers/{id}/wait"), "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"StatusCode\":0"), "{body}");
    let (status, body) = daemon.request("DELETE", &format!("/containers/{id}"), "");
    assert_eq!(status, 204, "{body}");
}

#[test]
fn the_daemon_reaps_every_monitor_and_gives_back_its_descriptors() {
    let daemon = Daemon::start(30_000);
    // Lazily opened descriptors (the runtime's threads, the image store) are counted in.
    cycle(&daemon);
    eventually("the first monitor is reaped", || {
        daemon.children().is_empty()
    });
    let fds = daemon.fds();
    for _ in 0..200 {
        cycle(&daemon);
    }
    eventually("every monitor is reaped", || daemon.children().is_empty());
    assert!(daemon.children().iter().all(|(_, state)| *state != 'Z'));
    eventually("the descriptors are back", || daemon.fds() <= fds);
}

#[test]
fn the_daemon_closes_half_sent_requests_and_idle_connections() {
    let daemon = Daemon::start(300);
    let read_to_end = |mut stream: UnixStream| -> String {
        stream.set_read_timeout(Some(GUARD)).unwrap();
        let mut answer = Vec::new();
        match stream.read_to_end(&mut answer) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("the connection was not closed: {e}"),
        }
        String::from_utf8_lossy(&answer).into_owned()
    };
    // Half a request head.
    let mut half = UnixStream::connect(&daemon.socket).unwrap();
    half.write_all(b"GET /_ping HTTP/1.1\r\nHost: dock\r\n")
        .unwrap();
    let answer = read_to_end(half);
    assert!(!answer.contains("200 OK"), "{answer}");
    // Nothing at all.
    let idle = UnixStream::connect(&daemon.socket).unwrap();
    read_to_end(idle);
    // A whole head, half a body.
    let mut half_body = UnixStream::connect(&daemon.socket).unwrap();
    half_body
        .write_all(
            b"POST /containers/create HTTP/1.1\r\nHost: dock\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"Image\":",
        )
        .unwrap();
    let answer = read_to_end(half_body);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("read the request body"), "{answer}");
    // A keep-alive connection that goes quiet after its answer.
    let mut kept = UnixStream::connect(&daemon.socket).unwrap();
    kept.write_all(b"GET /_ping HTTP/1.1\r\nHost: dock\r\n\r\n")
        .unwrap();
    let answer = read_to_end(kept);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // And the daemon still serves.
    assert_eq!(daemon.request("GET", "/_ping", "").0, 200);
    assert_eq!(
        daemon.root.container_dirs(),
        Vec::<String>::new(),
        "nothing was created"
    );
}

/// A small ext4 filesystem in a file, mounted with [`LoopFs::mount`]; unmounted (lazily) and
/// deleted when dropped.
struct LoopFs {
    image: tempfile::NamedTempFile,
    mountpoint: Option<PathBuf>,
}

impl LoopFs {
    fn new(size_mb: u64) -> LoopFs {
        let image = tempfile::Builder::new()
            .prefix("dock-test-fs-")
            .tempfile()
            .unwrap();
        image.as_file().set_len(size_mb << 20).unwrap();
        let out = Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(image.path())
            .output()
            .expect("mkfs.ext4 (e2fsprogs)");
        assert!(out.status.success(), "mkfs.ext4: {}", stderr(&out));
        LoopFs {
            image,
            mountpoint: None,
        }
    }

    fn mount(&mut self, at: &std::path::Path) {
        let out = Command::new("mount")
            .args(["-o", "loop"])
            .arg(self.image.path())
            .arg(at)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount: {}", stderr(&out));
        self.mountpoint = Some(at.to_path_buf());
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        if let Some(at) = self.mountpoint.take() {
            let at = std::ffi::CString::new(at.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: detaching our own test mount (the loop device goes with it).
            unsafe { libc::umount2(at.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

#[test]
fn an_exit_on_a_full_disk_is_kept_and_shown() {
    let mut fs = LoopFs::new(48);
    // Dropped before the filesystem: containers, mounts and cgroups go first.
    let root = DockRoot::new();
    fs.mount(root.path());
    root.import_busybox("busybox");
    // The container fills what it may (not the blocks ext4 keeps for root), says so, and
    // exits with 3 when told.
    let id = root
        .ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "filler",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 3' USR1; dd if=/dev/zero of=/fill bs=1M 2>/dev/null; \
             touch /filled; while :; do sleep 0.05; done",
        ])
        .trim()
        .to_string();
    let upper = root.path().join("containers").join(&id).join("upper");
    eventually("the container filled the disk", || {
        upper.join("filled").exists()
    });
    // The rest, root's reserve included, from here.
    let rest = root.path().join("rest");
    {
        let mut file = std::fs::File::create(&rest).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        let small = [0u8; 512];
        while matches!(file.write(&small), Ok(n) if n > 0) {}
        let _ = file.sync_all();
    }
    let out = guarded(&root, &["kill", "-s", "USR1", "filler"]);
    assert!(out.status.success(), "kill: {}", stderr(&out));
    let out = guarded(&root, &["wait", "filler"]);
    assert_eq!(stdout(&out).trim(), "3", "{}", stderr(&out));
    // The disk is still full: the container is listed with its exit code all the same, and
    // says why its state could not be saved.
    let ps = root.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (3)"), "{ps}");
    let state = &root.inspect("filler")["State"];
    assert_eq!(state["ExitCode"], 3, "{state}");
    assert_eq!(state["Running"], false, "{state}");
    assert!(
        state["Error"]
            .as_str()
            .is_some_and(|e| e.contains("No space left on device")),
        "{state}"
    );
    // With space again, it stays so, now for good.
    std::fs::remove_file(&rest).unwrap();
    std::fs::remove_file(upper.join("fill")).unwrap();
    let ps = root.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (3)"), "{ps}");
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.path().join("containers").join(&id).join("config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(config["State"]["ExitCode"], 3, "{config}");
    assert_eq!(config["State"]["Running"], false, "{config}");
    root.ok(&["rm", "filler"]);
}

/// Removed containers' directories are swept by every listing of the store, so parallel `rm -f`
/// processes delete the same trees at once: each of them must still succeed, and nothing is
/// left behind.
#[test]
fn parallel_rm_f_all_succeed_and_leave_nothing() {
    let root = DockRoot::with_busybox();
    for round in 0..5 {
        let names: Vec<String> = (0..8).map(|i| format!("par-{round}-{i}")).collect();
        for (i, name) in names.iter().enumerate() {
            // Half of them running, so `rm -f` kills too.
            let mut args = vec!["create", "--network", "none", "--name", name];
            if i % 2 == 0 {
                args[0] = "run";
                args.insert(1, "-d");
            }
            args.extend_from_slice(&["busybox", "sleep", "1000"]);
            root.ok(&args);
        }
        // By name: each rm lists the store, and so sweeps what the others took out.
        // And listings beside them sweep too.
        let (outs, listings): (Vec<Output>, Vec<Output>) = std::thread::scope(|scope| {
            let root = &root;
            let workers: Vec<_> = names
                .iter()
                .map(|name| scope.spawn(move || guarded(root, &["rm", "-f", name])))
                .collect();
            let listers: Vec<_> = (0..4)
                .map(|_| scope.spawn(move || guarded(root, &["ps", "-a"])))
                .collect();
            let join = |w: std::thread::ScopedJoinHandle<'_, Output>| w.join().unwrap();
            (
                workers.into_iter().map(join).collect(),
                listers.into_iter().map(join).collect(),
            )
        });
        for out in &listings {
            assert!(
                out.status.success(),
                "round {round}: ps -a: {}",
                stderr(out)
            );
        }
        for (name, out) in names.iter().zip(&outs) {
            assert!(
                out.status.success(),
                "round {round}: rm -f {name}: {}",
                stderr(out)
            );
        }
        assert_eq!(root.ok(&["ps", "-aq"]), "", "round {round}");
        let left: Vec<String> = std::fs::read_dir(root.path().join("containers"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".removed-") || n.len() == 64)
            .collect();
        assert_eq!(left, Vec::<String>::new(), "round {round}");
    }
    assert_eq!(root.container_cgroups(), Vec::<PathBuf>::new());
}
