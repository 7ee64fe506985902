//! Container commands of the real `docker` CLI against `dock daemon` (included by api.rs).

use std::io::Write;
use std::process::{Command, Stdio};

use super::{stderr, stdout, Daemon};

fn is_container_id(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A daemon with the busybox image imported as `bb`.
fn daemon_with_image() -> Daemon {
    let daemon = Daemon::start();
    daemon.import_busybox("bb");
    daemon
}

#[test]
fn run_detached_prints_the_id_and_ps_shows_it_up() {
    let daemon = daemon_with_image();
    // Under the call limit only if /wait's headers go out before the container exits.
    let id = daemon.ok(&["run", "-d", "--name", "sleeper", "bb", "sleep", "100"]);
    let id = id.trim();
    assert!(is_container_id(id), "{id:?}");
    let ps = daemon.ok(&[
        "ps",
        "--format",
        "{{.ID}}|{{.Names}}|{{.Status}}|{{.Command}}",
    ]);
    let row: Vec<&str> = ps.trim().split('|').collect();
    assert_eq!(row[0], &id[..12], "{ps}");
    assert_eq!(row[1], "sleeper");
    assert!(row[2].starts_with("Up"), "{ps}");
    assert!(row[3].contains("sleep 100"), "{ps}");
    assert_eq!(daemon.ok(&["ps", "-q"]).trim(), &id[..12]);
    assert_eq!(daemon.ok(&["ps", "--format", "{{.Image}}"]).trim(), "bb");
    assert_eq!(
        daemon
            .ok(&["inspect", "-f", "{{.State.Running}} {{.Name}}", "sleeper"])
            .trim(),
        "true /sleeper"
    );
    let counts = daemon.ok(&["info", "--format", "{{.Containers}} {{.ContainersRunning}}"]);
    assert_eq!(counts.trim(), "1 1");
}

#[test]
fn attached_run_keeps_stdout_and_stderr_apart_and_exits_with_the_code() {
    let daemon = daemon_with_image();
    let out = daemon.docker(&["run", "bb", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(stdout(&out), "out\n", "{}", stderr(&out));
    assert_eq!(stderr(&out), "err\n");
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn piped_stdin_reaches_the_container_and_its_end_closes_it() {
    let daemon = daemon_with_image();
    let out = daemon.docker_piped(&["run", "-i", "bb", "cat"], b"hi\n");
    assert_eq!(stdout(&out), "hi\n", "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(0));

    // Volumes both ways arrive whole: 2 MiB in, 3 MB out.
    let mut child = daemon
        .docker_cmd(&["run", "-i", "bb", "wc", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || input.write_all(&vec![b'x'; 2 << 20]));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert_eq!(
        stdout(&out).trim(),
        (2 << 20).to_string(),
        "{}",
        stderr(&out)
    );
    let out = daemon.docker(&["run", "bb", "head", "-c", "3000000", "/dev/zero"]);
    assert_eq!(out.stdout.len(), 3_000_000, "{}", stderr(&out));
    assert!(out.stdout.iter().all(|b| *b == 0));
}

#[test]
fn interactive_tty_echoes_resizes_and_exits_with_the_code() {
    let daemon = daemon_with_image();
    let docker = format!(
        "stty cols 100 rows 30; DOCKER_HOST={} DOCKER_CONFIG={} timeout --foreground 60 docker run -it bb sh",
        daemon.host,
        daemon.docker_config.path().display()
    );
    let mut child = Command::new("script")
        .args(["-qfec", &docker, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // stdin stays open until the end: an EOF would reach the shell as ^D.
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(b"echo hel\"\"lo\nstty size\nexit 4\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    drop(input);
    let screen = stdout(&out);
    assert!(
        screen.contains("echo hel\"\"lo"),
        "input is echoed: {screen:?}"
    );
    assert!(screen.contains("hello\r\n"), "{screen:?}");
    assert!(
        screen.contains("30 100"),
        "the terminal size reaches the container: {screen:?}"
    );
    assert_eq!(out.status.code(), Some(4), "{screen:?} {}", stderr(&out));
}

#[test]
fn run_rm_leaves_no_container() {
    let daemon = daemon_with_image();
    let out = daemon.docker(&["run", "--rm", "bb", "true"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(daemon.ok(&["ps", "-aq"]), "");
}

#[test]
fn logs_keep_streams_apart_and_follow_ends_with_the_container() {
    let daemon = daemon_with_image();
    let id = daemon.ok(&["run", "-d", "bb", "sh", "-c", "echo out; echo err >&2"]);
    let id = id.trim();
    assert_eq!(daemon.ok(&["wait", id]).trim(), "0");
    let out = daemon.docker(&["logs", id]);
    assert_eq!(stdout(&out), "out\n");
    assert_eq!(stderr(&out), "err\n");
    // -t: an RFC 3339 timestamp with nanoseconds, then the line.
    let stamped = daemon.ok(&["logs", "-t", id]);
    let (time, text) = stamped.trim_end().split_once(' ').unwrap();
    assert_eq!(text, "out");
    assert!(
        chrono::DateTime::parse_from_rfc3339(time).is_ok() && time.len() == 30,
        "{stamped:?}"
    );

    let id = daemon.ok(&["run", "-d", "bb", "sh", "-c", "echo a; sleep 1; echo b"]);
    let out = daemon.docker(&["logs", "-f", id.trim()]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "a\nb\n");
}

#[test]
fn wait_start_attach_return_the_exit_code() {
    let daemon = daemon_with_image();
    daemon.ok(&[
        "create",
        "--name",
        "five",
        "bb",
        "sh",
        "-c",
        "echo five; exit 5",
    ]);
    let out = daemon.docker(&["start", "-a", "five"]);
    assert_eq!(stdout(&out), "five\n");
    assert_eq!(out.status.code(), Some(5));
    let out = daemon.docker(&["wait", "five"]);
    assert_eq!(stdout(&out).trim(), "5");
    assert_eq!(out.status.code(), Some(0));

    // The container waits for a line on stdin, so it is surely running when attached.
    daemon.ok(&[
        "run",
        "-d",
        "-i",
        "--name",
        "six",
        "bb",
        "sh",
        "-c",
        "read x; echo got $x; exit 6",
    ]);
    let out = daemon.docker_piped(&["attach", "six"], b"hi\n");
    assert_eq!(stdout(&out), "got hi\n", "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(6));
}

#[test]
fn stop_kill_restart_rm_answer_as_docker_does() {
    let daemon = daemon_with_image();
    daemon.ok(&["run", "-d", "--name", "web", "bb", "sleep", "100"]);

    let out = daemon.docker(&["rm", "web"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("stop the container before removing or force remove"),
        "{}",
        stderr(&out)
    );
    assert_eq!(daemon.ok(&["restart", "-t", "1", "web"]), "web\n");
    assert_eq!(
        daemon
            .ok(&["inspect", "-f", "{{.State.Running}}", "web"])
            .trim(),
        "true"
    );
    assert_eq!(daemon.ok(&["kill", "web"]), "web\n");
    let out = daemon.docker(&["kill", "web"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is not running"), "{}", stderr(&out));
    // Stopping a stopped container is a 304: the name, exit 0.
    assert_eq!(daemon.ok(&["stop", "web"]), "web\n");
    assert_eq!(daemon.ok(&["start", "web"]), "web\n");
    assert_eq!(daemon.ok(&["start", "web"]), "web\n");
    assert_eq!(daemon.ok(&["stop", "-t", "1", "web"]), "web\n");
    assert_eq!(
        daemon
            .ok(&["inspect", "-f", "{{.State.Running}}", "web"])
            .trim(),
        "false"
    );
    assert_eq!(daemon.ok(&["rm", "web"]), "web\n");

    daemon.ok(&["run", "-d", "--name", "web2", "bb", "sleep", "100"]);
    assert_eq!(daemon.ok(&["rm", "-f", "web2"]), "web2\n");
    assert_eq!(daemon.ok(&["ps", "-aq"]), "");

    for verb in [
        "stop", "kill", "restart", "rm", "wait", "logs", "diff", "port",
    ] {
        let out = daemon.docker(&[verb, "nosuch"]);
        assert_eq!(out.status.code(), Some(1), "docker {verb} nosuch");
        assert!(
            stderr(&out).contains("No such container: nosuch"),
            "docker {verb}: {}",
            stderr(&out)
        );
    }
    let out = daemon.docker(&["rm", "-f", "nosuch"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn diff_export_commit_work_on_a_changed_container() {
    let daemon = daemon_with_image();
    let out = daemon.docker(&[
        "run",
        "--name",
        "maker",
        "bb",
        "sh",
        "-c",
        "echo data > /newfile; rm /etc/group",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let diff = daemon.ok(&["diff", "maker"]);
    let lines: Vec<&str> = diff.lines().collect();
    assert!(lines.contains(&"A /newfile"), "{diff}");
    assert!(lines.contains(&"D /etc/group"), "{diff}");
    assert!(lines.contains(&"C /etc"), "{diff}");

    let tar = daemon.root.path().join("export.tar");
    daemon.ok(&["export", "-o", tar.to_str().unwrap(), "maker"]);
    let listing = Command::new("tar").arg("tf").arg(&tar).output().unwrap();
    let listing = stdout(&listing);
    let names: Vec<&str> = listing
        .lines()
        .map(|l| l.trim_start_matches("./"))
        .collect();
    assert!(names.contains(&"newfile"), "{listing}");
    assert!(names.contains(&"bin/busybox"), "{listing}");
    assert!(!names.contains(&"etc/group"), "{listing}");

    let id = daemon.ok(&["commit", "-m", "msg", "-a", "me", "maker", "new:1"]);
    let id = id.trim();
    assert!(super::is_image_id(id), "{id:?}");
    let history = daemon.ok(&["history", "--format", "{{.Comment}}", "new:1"]);
    assert_eq!(
        history.lines().collect::<Vec<_>>(),
        vec!["msg", "Imported from -"]
    );
    assert_eq!(
        daemon
            .ok(&["image", "inspect", "-f", "{{.Author}} {{.Id}}", "new:1"])
            .trim(),
        format!("me {id}")
    );
    let out = daemon.docker(&["run", "--rm", "new:1", "cat", "/newfile"]);
    assert_eq!(stdout(&out), "data\n", "{}", stderr(&out));
}

#[test]
fn failures_to_run_exit_like_docker() {
    let daemon = daemon_with_image();
    let out = daemon.docker(&["run", "bb", "/nonexistent"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    // The reason is told once, by /start; the wait answers with the recorded exit code.
    assert!(!stderr(&out).contains("Error waiting"), "{}", stderr(&out));
    // As with Docker, a container that never ran stays `Created`.
    assert_eq!(
        daemon
            .ok(&["ps", "-a", "--format", "{{.Command}} {{.Status}}"])
            .trim(),
        "\"/nonexistent\" Created"
    );
    let out = daemon.docker(&["run", "--name", "dup", "bb", "true"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = daemon.docker(&["run", "--name", "dup", "bb", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("is already in use"),
        "{}",
        stderr(&out)
    );
    // An image a container uses cannot go.
    let out = daemon.docker(&["rmi", "bb"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is using its referenced image"),
        "{}",
        stderr(&out)
    );
    // Once the name moves to another image, ps shows the container's image by id.
    let image = daemon.ok(&["image", "inspect", "-f", "{{.Id}}", "bb"]);
    daemon.import_busybox("bb");
    let shown = daemon.ok(&["ps", "-a", "-l", "--format", "{{.Image}}"]);
    assert_eq!(shown.trim(), &image.trim()["sha256:".len()..][..12]);
}

#[test]
fn the_daemon_and_dock_share_one_state_and_containers_outlive_the_daemon() {
    let mut daemon = daemon_with_image();
    let id = daemon.ok(&["run", "-d", "--name", "via_api", "bb", "sleep", "100"]);
    let listed = daemon.root.ok(&["ps", "-q", "--no-trunc"]);
    assert_eq!(
        listed.trim(),
        id.trim(),
        "dock ps shows what docker run started"
    );

    let id = daemon
        .root
        .ok(&["run", "-d", "--name", "via_dock", "bb", "sleep", "100"]);
    assert_eq!(
        daemon
            .ok(&["inspect", "-f", "{{.State.Running}}", id.trim()])
            .trim(),
        "true"
    );
    assert_eq!(daemon.ok(&["stop", "-t", "1", "via_dock"]), "via_dock\n");
    assert_eq!(daemon.root.ok(&["ps", "-q"]).lines().count(), 1);

    assert!(daemon.stop().success(), "{}", daemon.log());
    let running = daemon.root.ok(&["ps", "-q", "--no-trunc"]);
    assert_eq!(
        running.trim(),
        listed.trim(),
        "stopping the daemon stops no container"
    );
}

#[test]
fn published_ports_show_in_port_and_answer_on_loopback() {
    let daemon = daemon_with_image();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let publish = format!("{port}:80");
    daemon.ok(&[
        "run", "-d", "--name", "web", "-p", &publish, "bb", "httpd", "-f", "-p", "80", "-h", "/etc",
    ]);
    assert_eq!(
        daemon.ok(&["port", "web"]).trim(),
        format!("80/tcp -> 0.0.0.0:{port}")
    );
    let out = daemon.docker(&["port", "web", "81"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("No public port '81' published for web"),
        "{}",
        stderr(&out)
    );

    // httpd needs a moment to listen: a bounded number of tries.
    let mut answer = String::new();
    for _ in 0..200 {
        if let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::Read;
            let _ = conn.write_all(b"GET /passwd HTTP/1.0\r\n\r\n");
            let _ = conn.read_to_string(&mut answer);
            if answer.contains("root:x:0:0") {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(answer.contains("root:x:0:0"), "{answer:?}");
}

#[test]
fn network_none_leaves_only_loopback() {
    let daemon = daemon_with_image();
    let out = daemon.docker(&["run", "--rm", "--network", "none", "bb", "ip", "-o", "link"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let links: Vec<String> = stdout(&out)
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(|n| n.trim().to_string()))
        .collect();
    assert_eq!(links, vec!["lo"]);
    let out = daemon.docker(&["run", "--network", "none", "-p", "80", "bb", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("cannot be published"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn capabilities_privileged_and_security_opts_through_the_docker_cli() {
    let daemon = daemon_with_image();
    let status = |args: &[&str]| {
        let mut all = vec!["run", "--rm", "--network", "none"];
        all.extend_from_slice(args);
        all.extend_from_slice(&[
            "bb",
            "grep",
            "-E",
            "^(Seccomp|NoNewPrivs|CapEff):",
            "/proc/self/status",
        ]);
        daemon.ok(&all)
    };
    assert_eq!(
        status(&[]),
        "CapEff:\t00000000a80425fb\nNoNewPrivs:\t0\nSeccomp:\t2\n"
    );
    assert_eq!(
        status(&[
            "--cap-add",
            "SYS_ADMIN",
            "--cap-drop",
            "chown",
            "--security-opt",
            "no-new-privileges"
        ]),
        "CapEff:\t00000000a82425fa\nNoNewPrivs:\t1\nSeccomp:\t2\n"
    );
    assert!(status(&["--security-opt", "seccomp=unconfined"]).ends_with("Seccomp:\t0\n"));
    assert!(status(&["--privileged"]).ends_with("Seccomp:\t0\n"));

    // The docker CLI sends a profile file's JSON; the daemon applies and stores it.
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let out = daemon.docker(&[
        "run",
        "--name",
        "nomkdir",
        "--security-opt",
        &opt,
        "bb",
        "mkdir",
        "/x",
    ]);
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
    let shown = daemon.ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.Privileged}} {{json .HostConfig.SecurityOpt}}",
        "nomkdir",
    ]);
    assert!(shown.starts_with("false [\"seccomp={"), "{shown}");

    let id = daemon.ok(&[
        "create",
        "--privileged",
        "--cap-add",
        "NET_ADMIN",
        "--cap-drop",
        "MKNOD",
        "bb",
        "true",
    ]);
    let shown = daemon.ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.Privileged}} {{.HostConfig.CapAdd}} {{.HostConfig.CapDrop}}",
        id.trim(),
    ]);
    // Stored as the client sent them (today's docker CLI adds the CAP_ prefix).
    assert_eq!(shown.trim(), "true [CAP_NET_ADMIN] [CAP_MKNOD]");

    // Bad names are a 400 naming them; nothing is created.
    let before = daemon.ok(&["ps", "-aq"]);
    let out = daemon.docker(&["create", "--cap-add", "BOGUS", "bb", "true"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("unknown capability: \"CAP_BOGUS\""),
        "{}",
        stderr(&out)
    );
    let out = daemon.docker(&["create", "--security-opt", "bogus=1", "bb", "true"]);
    assert!(
        stderr(&out).contains("invalid --security-opt: \"bogus=1\""),
        "{}",
        stderr(&out)
    );
    assert_eq!(daemon.ok(&["ps", "-aq"]), before);
}

#[test]
fn docker_run_honours_the_image_config_and_its_overrides() {
    let daemon = daemon_with_image();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": ["/bin/sh", "-c",
                "echo \"args=$* greeting=$GREETING pwd=$(pwd) uid=$(id -u)\"", "entry"],
            "Cmd": ["default"],
            "Env": ["GREETING=hello"],
            "WorkingDir": "/srv/app",
            "User": "nobody",
            "ExposedPorts": {"80/tcp": {}},
            "StopSignal": "SIGUSR1"
        },
        "history": [{"created_by": "ADD busybox /"}]
    });
    let id = crate::common::register_config_image(daemon.root.path(), "bb", "cfg", config);
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend_from_slice(extra);
        daemon.ok(&args)
    };
    assert_eq!(
        run(&["cfg"]),
        "args=default greeting=hello pwd=/srv/app uid=65534\n"
    );
    assert_eq!(
        run(&[
            "-e",
            "GREETING=bye",
            "-w",
            "/tmp/w",
            "-u",
            "0",
            "cfg",
            "x",
            "y"
        ]),
        "args=x y greeting=bye pwd=/tmp/w uid=0\n"
    );
    assert_eq!(
        run(&["--entrypoint", "/bin/echo", "cfg"]),
        "\n",
        "--entrypoint drops the image's Cmd"
    );
    assert_eq!(
        run(&["--entrypoint", "", "cfg", "echo", "plain"]),
        "plain\n"
    );
    let out = daemon.docker(&["run", "--rm", "--entrypoint", "", "cfg"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no command specified"),
        "{}",
        stderr(&out)
    );

    // docker inspect shows what the container was created with.
    daemon.ok(&["create", "--name", "c", "--network", "none", "cfg"]);
    let inspect = |format: &str| {
        daemon
            .ok(&["inspect", "-f", format, "c"])
            .trim()
            .to_string()
    };
    assert_eq!(
        inspect("{{json .Config.Entrypoint}}"),
        r#"["/bin/sh","-c","echo \"args=$* greeting=$GREETING pwd=$(pwd) uid=$(id -u)\"","entry"]"#
    );
    assert_eq!(inspect("{{json .Config.Cmd}}"), r#"["default"]"#);
    assert_eq!(
        inspect("{{.Config.WorkingDir}} {{.Config.User}} {{.Config.StopSignal}}"),
        "/srv/app nobody SIGUSR1"
    );
    assert_eq!(inspect("{{json .Config.ExposedPorts}}"), r#"{"80/tcp":{}}"#);
    // And image inspect what the image config says.
    let image = |format: &str| {
        daemon
            .ok(&["image", "inspect", "-f", format, "cfg"])
            .trim()
            .to_string()
    };
    assert_eq!(image("{{.Id}}"), format!("sha256:{id}"));
    assert_eq!(
        image("{{json .Config.Cmd}} {{.Config.WorkingDir}}"),
        r#"["default"] /srv/app"#
    );
    assert_eq!(image("{{len .RootFS.Layers}}"), "1");
}

#[test]
fn docker_run_flags_reach_the_runtime() {
    let daemon = daemon_with_image();
    // A restart policy, through HostConfig.RestartPolicy: exactly two restarts.
    let id = daemon.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--restart",
        "on-failure:2",
        "bb",
        "sh",
        "-c",
        "exit 3",
    ]);
    let id = id.trim();
    let mut state = String::new();
    for _ in 0..600 {
        state = daemon.ok(&[
            "inspect",
            "-f",
            "{{.State.Running}} {{.RestartCount}} {{.State.ExitCode}}",
            id,
        ]);
        if state.starts_with("false") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(state.trim(), "false 2 3");

    let id = daemon.ok(&[
        "create",
        "--network",
        "none",
        "--restart",
        "unless-stopped",
        "--read-only",
        "--pids-limit",
        "20",
        "--cpus",
        "1.5",
        "--cpu-shares",
        "512",
        "--init",
        "-l",
        "tier=web",
        "--stop-timeout",
        "3",
        "bb",
        "true",
    ]);
    let shown = daemon.ok(&[
        "inspect", "-f",
        "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.PidsLimit}} {{.HostConfig.NanoCpus}} {{.HostConfig.CpuShares}} {{.HostConfig.Init}} {{.Config.StopTimeout}} {{index .Config.Labels \"tier\"}}",
        id.trim(),
    ]);
    assert_eq!(
        shown.trim(),
        "unless-stopped true 20 1500000000 512 true 3 web"
    );
    assert_eq!(
        daemon
            .ok(&["ps", "-aq", "--no-trunc", "--filter", "label=tier=web"])
            .trim(),
        id.trim()
    );

    let out = daemon.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--read-only",
        "--init",
        "bb",
        "sh",
        "-c",
        "cat /proc/1/comm; touch /x",
    ]);
    assert_eq!(stdout(&out).lines().next(), Some("dock-init"));
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
    assert_ne!(out.status.code(), Some(0));

    let out = daemon.docker(&["create", "--restart", "bogus", "bb", "true"]);
    assert!(
        stderr(&out).contains("invalid restart policy"),
        "{}",
        stderr(&out)
    );
}
