//! `dock exec` and the exec endpoints of `dock daemon` (through the real `docker` CLI): a
//! process in every namespace, the cgroups, the root, the user, the capability set and the
//! seccomp filter of a running container, with its environment, stdio and exit code.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::{code, dock_bin, stderr, stdout, DockRoot};

/// `dock run -d --network none [options] busybox sleep 1000`; the container id.
fn sleeper(root: &DockRoot, options: &[&str]) -> String {
    let mut args = vec!["run", "-d", "--network", "none"];
    args.extend_from_slice(options);
    args.extend_from_slice(&["busybox", "sleep", "1000"]);
    root.ok(&args).trim().to_string()
}

fn exec(root: &DockRoot, args: &[&str]) -> Output {
    let mut all = vec!["exec"];
    all.extend_from_slice(args);
    root.run(&all)
}

/// The value of `field` (e.g. `CapEff:`) in a /proc/PID/status text.
fn status_field(status: &str, field: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in {status}"))
        .trim()
        .to_string()
}

/// `script -qec COMMAND /dev/null` (a terminal for the command) with `input` on its stdin.
fn under_script(command: &str, input: &[u8]) -> Output {
    let mut child = Command::new("timeout")
        .args(["-k", "5", "60", "script", "-qec", command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    // Held open until the command is done: script stops forwarding at end of input.
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    out
}

#[test]
fn exec_joins_the_containers_namespaces_root_and_cgroups() {
    let root = DockRoot::with_busybox();
    let id = sleeper(&root, &["-h", "box"]);

    // Its pid namespace: PID 1 is the container's command, and nothing of the host shows.
    let ps = stdout(&exec(&root, &[&id, "ps", "-o", "pid,args"]));
    let rows: Vec<&str> = ps.lines().skip(1).map(str::trim).collect();
    assert!(rows.contains(&"1 sleep 1000"), "{ps}");
    assert_eq!(
        rows.len(),
        2,
        "only the container's init and ps itself: {ps}"
    );
    // Its uts namespace and its root (the image's /etc/passwd, not the host's).
    assert_eq!(stdout(&exec(&root, &[&id, "hostname"])).trim(), "box");
    let passwd = stdout(&exec(&root, &[&id, "cat", "/etc/passwd"]));
    assert!(passwd.contains("nobody:x:65534:65534"), "{passwd}");
    assert_eq!(passwd.lines().count(), 3, "{passwd}");
    // Its cgroups and cgroup namespace: the same lines its init sees.
    let cgroups = stdout(&exec(
        &root,
        &[
            &id,
            "sh",
            "-c",
            "cat /proc/self/cgroup; echo --; cat /proc/1/cgroup",
        ],
    ));
    let (mine, init) = cgroups.split_once("--\n").unwrap();
    assert_eq!(mine, init, "{cgroups}");
    // Its mount and net namespaces: the same as the init's.
    for ns in ["mnt", "net", "ipc", "uts", "pid", "cgroup"] {
        let link = format!("/proc/self/ns/{ns}");
        let out = stdout(&exec(
            &root,
            &[
                &id,
                "sh",
                "-c",
                &format!("readlink {link}; readlink /proc/1/ns/{ns}"),
            ],
        ));
        let ids: Vec<&str> = out.lines().collect();
        assert_eq!(ids.len(), 2, "{out}");
        assert_eq!(ids[0], ids[1], "{ns}: {out}");
    }
}

#[test]
fn exec_exit_codes_reach_the_shell() {
    let root = DockRoot::with_busybox();
    let id = sleeper(&root, &[]);
    assert_eq!(code(&exec(&root, &[&id, "true"])), 0);
    assert_eq!(code(&exec(&root, &[&id, "sh", "-c", "exit 3"])), 3);
    let out = exec(&root, &[&id, "/etc/passwd"]);
    assert_eq!(code(&out), 126, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("permission denied"),
        "{}",
        stderr(&out)
    );
    let out = exec(&root, &[&id, "nope"]);
    assert_eq!(code(&out), 127, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("executable file not found in $PATH"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn exec_user_env_and_workdir() {
    let root = DockRoot::with_busybox();
    let id = sleeper(&root, &["-e", "FROM_RUN=1", "-w", "/root"]);
    assert_eq!(
        stdout(&exec(&root, &["-u", "nobody", &id, "id", "-u"])).trim(),
        "65534"
    );
    assert_eq!(
        stdout(&exec(&root, &["--user", "1:1", &id, "id", "-g"])).trim(),
        "1"
    );
    assert_eq!(stdout(&exec(&root, &[&id, "id", "-u"])).trim(), "0");
    let env = stdout(&exec(
        &root,
        &["-e", "FOO=bar", "-e", "FROM_RUN=2", &id, "env"],
    ));
    assert!(env.lines().any(|l| l == "FOO=bar"), "{env}");
    assert!(env.lines().any(|l| l == "FROM_RUN=2"), "{env}");
    assert!(env.lines().any(|l| l.starts_with("PATH=")), "{env}");
    let env = stdout(&exec(&root, &[&id, "env"]));
    assert!(env.lines().any(|l| l == "FROM_RUN=1"), "{env}");
    // The container's working directory by default, -w over it; a missing one is an error.
    assert_eq!(stdout(&exec(&root, &[&id, "pwd"])).trim(), "/root");
    assert_eq!(
        stdout(&exec(&root, &["-w", "/tmp", &id, "pwd"])).trim(),
        "/tmp"
    );
    let out = exec(&root, &["-w", "/nowhere", &id, "pwd"]);
    assert_eq!(code(&out), 126, "{}", stderr(&out));
    assert!(stderr(&out).contains("/nowhere"), "{}", stderr(&out));
}

#[test]
fn exec_stdin_only_with_i() {
    let root = DockRoot::with_busybox();
    let id = sleeper(&root, &[]);
    let mut child = root
        .cmd()
        .args(["exec", "-i", &id, "sh", "-c", "tr a-z A-Z; exit 4"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(stdout(&out), "HELLO\n");
    assert_eq!(code(&out), 4);
    // Without -i the command reads end of file at once, whatever our stdin is.
    let mut child = root
        .cmd()
        .args(["exec", &id, "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let _held_open = child.stdin.take();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 0);
    assert_eq!(stdout(&out), "");
}

#[test]
fn exec_t_gets_a_terminal_of_the_containers_devpts() {
    let root = DockRoot::with_busybox();
    let id = sleeper(&root, &[]);
    let dock = format!("{} --root {}", dock_bin(), root.path().display());
    let out = under_script(&format!("{dock} exec -t {id} tty"), b"");
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{text}");
    assert!(text.trim().starts_with("/dev/pts/"), "{text}");
    // Without -t: no terminal (and never ours).
    let out = under_script(&format!("{dock} exec {id} tty"), b"");
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(stdout(&out).contains("not a tty"), "{}", stdout(&out));
    // The terminal is from the container's own devpts: its ptmx knows it.
    let out = under_script(
        &format!("{dock} exec -it {id} sh"),
        b"ls /dev/pts; echo sum-$((40+2)); exit 5\n",
    );
    let text = stdout(&out);
    assert_eq!(code(&out), 5, "{text}");
    assert!(text.contains("sum-42"), "{text}");
    assert!(text.contains("ptmx"), "{text}");
}

#[test]
fn exec_into_a_stopped_container_is_refused() {
    let root = DockRoot::with_busybox();
    let id = root
        .ok(&["run", "-d", "--network", "none", "busybox", "true"])
        .trim()
        .to_string();
    root.ok(&["wait", &id]);
    let out = exec(&root, &[&id, "true"]);
    assert_eq!(code(&out), 1);
    assert_eq!(
        stderr(&out).trim(),
        format!("Error: container {id} is not running")
    );
    let out = exec(&root, &["nosuch", "true"]);
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains("no such container: nosuch"),
        "{}",
        stderr(&out)
    );
}

/// Host pids whose command line is exactly `args`.
fn host_pids_of(args: &[&str]) -> Vec<i32> {
    let wanted: Vec<u8> = args.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted))
        .collect()
}

#[test]
fn exec_d_runs_in_the_background_and_ends_with_the_container() {
    let root = DockRoot::with_busybox();
    // With a memory limit its processes live in a leaf below the limit: exec joins that.
    let id = sleeper(&root, &["-m", "64m"]);
    let marker = format!("sleep {}", 7000 + std::process::id() % 1000);
    let out = exec(
        &root,
        &[
            "-d",
            &id,
            "sh",
            "-c",
            &format!("echo started > /tmp/m; exec {marker}"),
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    let words: Vec<&str> = marker.split(' ').collect();
    let mut pids = Vec::new();
    for _ in 0..500 {
        pids = host_pids_of(&words);
        if !pids.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(pids.len(), 1, "the detached command runs");
    assert_eq!(stdout(&exec(&root, &[&id, "cat", "/tmp/m"])), "started\n");
    // The host's view of its cgroups: the init's, in every hierarchy.
    let init = root.inspect(&id)["State"]["Pid"].as_i64().unwrap();
    let cgroups = std::fs::read_to_string(format!("/proc/{}/cgroup", pids[0])).unwrap();
    assert_eq!(
        cgroups,
        std::fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap()
    );
    assert!(cgroups.contains(&id), "{cgroups}");
    root.ok(&["stop", "-t", "1", &id]);
    common::wait_for_exit(pids[0]);
    assert!(host_pids_of(&words).is_empty());
}

#[test]
fn exec_has_the_containers_capabilities_and_seccomp() {
    let root = DockRoot::with_busybox();
    let id = sleeper(&root, &["--cap-drop", "NET_RAW"]);
    let out = stdout(&exec(
        &root,
        &[
            &id,
            "sh",
            "-c",
            "cat /proc/self/status; echo --; cat /proc/1/status",
        ],
    ));
    let (mine, init) = out.split_once("--\n").unwrap();
    for field in ["CapEff:", "CapPrm:", "CapBnd:", "Seccomp:", "NoNewPrivs:"] {
        assert_eq!(
            status_field(mine, field),
            status_field(init, field),
            "{field}"
        );
    }
    let eff = u64::from_str_radix(&status_field(mine, "CapEff:"), 16).unwrap();
    assert_eq!(eff & (1 << 13), 0, "CAP_NET_RAW (13) is dropped: {eff:#x}");
    assert_ne!(eff & (1 << 0), 0, "CAP_CHOWN stays: {eff:#x}");
    assert_eq!(status_field(mine, "Seccomp:"), "2", "filtered");
    // Another user gets no capabilities, as in the container.
    let out = stdout(&exec(
        &root,
        &["-u", "nobody", &id, "cat", "/proc/self/status"],
    ));
    assert_eq!(status_field(&out, "CapEff:"), "0000000000000000");
    // --privileged: every capability, the container's seccomp filter still.
    let out = stdout(&exec(
        &root,
        &["--privileged", &id, "cat", "/proc/self/status"],
    ));
    let eff = u64::from_str_radix(&status_field(&out, "CapEff:"), 16).unwrap();
    assert_ne!(eff & (1 << 13), 0, "{eff:#x}");
    assert_ne!(eff & (1 << 21), 0, "CAP_SYS_ADMIN: {eff:#x}");
    // no-new-privileges reaches exec'd processes too.
    let nnp = sleeper(&root, &["--security-opt", "no-new-privileges"]);
    let out = stdout(&exec(&root, &[&nnp, "cat", "/proc/self/status"]));
    assert_eq!(status_field(&out, "NoNewPrivs:"), "1");
    assert_eq!(status_field(&out, "Seccomp:"), "2");
}

/// `dock daemon` on a private socket over `root`, stopped on drop.
struct Daemon {
    socket: PathBuf,
    config: tempfile::TempDir,
    child: Child,
}

impl Daemon {
    fn start(root: &Path) -> Daemon {
        let socket = root.join("api.sock");
        let log = std::fs::File::create(root.join("daemon.log")).unwrap();
        let child = Command::new(dock_bin())
            .arg("--root")
            .arg(root)
            .args(["daemon", "-H"])
            .arg(format!("unix://{}", socket.display()))
            .env("DOCK_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        for _ in 0..1000 {
            if UnixStream::connect(&socket).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Daemon {
            socket,
            config: tempfile::tempdir().unwrap(),
            child,
        }
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .args(["-k", "5", "60", "docker"])
            .args(args)
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.config.path())
            .env("DOCKER_CLI_HINTS", "false")
            .env_remove("DOCKER_API_VERSION")
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the pid of our unreaped child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

#[test]
fn docker_exec_against_dock_daemon() {
    let root = DockRoot::with_busybox();
    let daemon = Daemon::start(root.path());
    let log = || std::fs::read_to_string(root.path().join("daemon.log")).unwrap_or_default();
    let out = daemon.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "-e",
        "X=1",
        "busybox",
        "sleep",
        "1000",
    ]);
    assert_eq!(code(&out), 0, "{}\n{}", stderr(&out), log());
    let id = stdout(&out).trim().to_string();

    let out = daemon.docker(&["exec", &id, "sh", "-c", "echo out-$X; echo err >&2"]);
    assert_eq!(code(&out), 0, "{}\n{}", stderr(&out), log());
    assert_eq!(stdout(&out), "out-1\n");
    assert_eq!(stderr(&out), "err\n");
    let mut piped = Command::new("timeout")
        .args([
            "-k",
            "5",
            "60",
            "docker",
            "exec",
            "-i",
            &id,
            "sh",
            "-c",
            "tr a-z A-Z; exit 5",
        ])
        .env("DOCKER_HOST", daemon.host())
        .env("DOCKER_CONFIG", daemon.config.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    piped
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped in\n")
        .unwrap();
    let out = piped.wait_with_output().unwrap();
    assert_eq!(
        (code(&out), stdout(&out)),
        (5, "PIPED IN\n".to_string()),
        "{}",
        stderr(&out)
    );
    let out = daemon.docker(&["exec", &id, "sh", "-c", "exit 3"]);
    assert_eq!(code(&out), 3, "{}", log());
    let out = daemon.docker(&["exec", &id, "nope"]);
    assert_eq!(code(&out), 127, "{}{}", stdout(&out), stderr(&out));
    let out = daemon.docker(&["exec", &id, "/etc/passwd"]);
    assert_eq!(code(&out), 126, "{}{}", stdout(&out), stderr(&out));
    let out = daemon.docker(&[
        "exec",
        "-u",
        "nobody",
        "-w",
        "/tmp",
        "-e",
        "Y=2",
        &id,
        "sh",
        "-c",
        "id -u; pwd; echo $Y",
    ]);
    assert_eq!(stdout(&out), "65534\n/tmp\n2\n", "{}", stderr(&out));
    let out = daemon.docker(&["exec", &id, "ps", "-o", "pid,args"]);
    assert!(
        stdout(&out).lines().any(|l| l.trim() == "1 sleep 1000"),
        "{}",
        stdout(&out)
    );
    let out = daemon.docker(&["exec", "-d", &id, "sh", "-c", "echo detached > /tmp/d"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let mut seen = String::new();
    for _ in 0..500 {
        seen = stdout(&daemon.docker(&["exec", &id, "cat", "/tmp/d"]));
        if !seen.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(seen, "detached\n");

    // A terminal, interactive: `docker exec -it C sh` under script.
    let host = daemon.host();
    let command = format!(
        "DOCKER_HOST={host} DOCKER_CONFIG={} docker exec -it {id} sh",
        daemon.config.path().display()
    );
    let out = under_script(&command, b"tty; echo sum-$((40+2)); exit 6\n");
    let text = stdout(&out);
    assert_eq!(code(&out), 6, "{text}\n{}", log());
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("sum-42"), "{text}");

    let out = daemon.docker(&["stop", "-t", "1", &id]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = daemon.docker(&["exec", &id, "true"]);
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains(&format!("container {id} is not running")),
        "{}",
        stderr(&out)
    );
}

/// One HTTP/1.1 request to the daemon's socket (the connection closed after it): the status
/// and the body.
fn http(daemon: &Daemon, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::Read;
    let mut stream = UnixStream::connect(&daemon.socket).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let (head, rest) = answer.split_once("\r\n\r\n").unwrap();
    let body = if head.to_lowercase().contains("transfer-encoding: chunked") {
        // One chunk is all these answers need.
        rest.split_once("\r\n")
            .map_or("", |(_, b)| b)
            .rsplit_once("\r\n0\r\n")
            .map_or("", |(b, _)| b)
    } else {
        rest
    };
    (status, body.trim_end_matches("\r\n").to_string())
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn exec_endpoints_track_running_exit_code_and_pid() {
    let root = DockRoot::with_busybox();
    let id = sleeper(&root, &[]);
    let daemon = Daemon::start(root.path());
    let (status, body) = http(
        &daemon,
        "POST",
        &format!("/containers/{id}/exec"),
        r#"{"Cmd":["sh","-c","read x < /proc/self/fd/0; exit 7"],"Tty":true}"#,
    );
    assert_eq!(status, 201, "{body}");
    let exec_id = json(&body)["Id"].as_str().unwrap().to_string();
    let inspect = |daemon: &Daemon| {
        let (status, body) = http(daemon, "GET", &format!("/exec/{exec_id}/json"), "");
        assert_eq!(status, 200, "{body}");
        json(&body)
    };
    let before = inspect(&daemon);
    assert_eq!(before["Running"], false);
    assert_eq!(before["ExitCode"], serde_json::Value::Null);
    assert_eq!(before["Pid"], 0);
    assert_eq!(before["ContainerID"], id.as_str());
    assert_eq!(before["ProcessConfig"]["entrypoint"], "sh");
    assert_eq!(before["ProcessConfig"]["tty"], true);

    // Detached with a terminal: it waits for a line on its terminal, which nobody sends.
    let (status, body) = http(
        &daemon,
        "POST",
        &format!("/exec/{exec_id}/start"),
        r#"{"Detach":true}"#,
    );
    assert_eq!(status, 200, "{body}");
    let running = inspect(&daemon);
    assert_eq!(running["Running"], true);
    let pid = running["Pid"].as_i64().unwrap();
    assert!(pid > 0);
    let (status, _) = http(
        &daemon,
        "POST",
        &format!("/exec/{exec_id}/resize?h=30&w=100"),
        "",
    );
    assert_eq!(status, 200);
    let (status, body) = http(
        &daemon,
        "POST",
        &format!("/exec/{exec_id}/start"),
        r#"{"Detach":true}"#,
    );
    assert_eq!(status, 409, "{body}");
    // Its terminal is the daemon's to hold; killing it ends the instance with 128 + 9.
    common::kill9(pid as i32);
    let mut ended = serde_json::Value::Null;
    for _ in 0..500 {
        ended = inspect(&daemon);
        if ended["Running"] == false {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(ended["Running"], false);
    assert_eq!(ended["ExitCode"], 137);

    let (status, body) = http(&daemon, "GET", "/exec/nosuch/json", "");
    assert_eq!(
        (status, json(&body)["message"].clone()),
        (404, "No such exec instance: nosuch".into())
    );
    let (status, body) = http(
        &daemon,
        "POST",
        &format!("/containers/{id}/exec"),
        r#"{"Cmd":[]}"#,
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = http(
        &daemon,
        "POST",
        &format!("/containers/{id}/exec"),
        r#"{"Cmd":["true"]}"#,
    );
    assert_eq!(status, 201, "{body}");
    let late = json(&body)["Id"].as_str().unwrap().to_string();
    root.ok(&["stop", "-t", "1", &id]);
    let (status, body) = http(
        &daemon,
        "POST",
        &format!("/exec/{late}/start"),
        r#"{"Detach":true}"#,
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        json(&body)["message"],
        format!("container {id} is not running")
    );
    let (status, body) = http(
        &daemon,
        "POST",
        &format!("/containers/{id}/exec"),
        r#"{"Cmd":["true"]}"#,
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        json(&body)["message"],
        format!("container {id} is not running")
    );
}

#[test]
fn exec_terminals_get_the_clients_size() {
    let root = DockRoot::with_busybox();
    let id = sleeper(&root, &[]);
    let dock = format!("{} --root {}", dock_bin(), root.path().display());
    let out = under_script(
        &format!("stty rows 31 cols 101; {dock} exec -t {id} stty size"),
        b"",
    );
    assert_eq!(stdout(&out).trim(), "31 101", "{}", stderr(&out));
    let daemon = Daemon::start(root.path());
    let command = format!(
        "stty rows 32 cols 102; DOCKER_HOST={} DOCKER_CONFIG={} docker exec -t {id} stty size",
        daemon.host(),
        daemon.config.path().display()
    );
    let out = under_script(&command, b"");
    assert_eq!(stdout(&out).trim(), "32 102", "{}", stderr(&out));
}

#[test]
fn exec_into_a_read_only_container_with_an_init() {
    let root = DockRoot::with_busybox();
    let id = sleeper(&root, &["--init", "--read-only"]);
    let out = exec(&root, &[&id, "sh", "-c", "touch /x"]);
    assert_eq!(code(&out), 1, "the root stays read-only: {}", stderr(&out));
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
    let ps = stdout(&exec(&root, &[&id, "ps", "-o", "pid,args"]));
    let rows: Vec<&str> = ps.lines().skip(1).map(str::trim).collect();
    assert!(rows[0].starts_with("1 "), "{ps}");
    assert!(rows.iter().any(|r| r.ends_with("sleep 1000")), "{ps}");
    assert_eq!(code(&exec(&root, &[&id, "sh", "-c", "exit 9"])), 9);
}
