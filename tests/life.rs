//! Issue 11's everyday commands, end to end with `dock` and with the real docker CLI through
//! `dock daemon`: events, prunes and df, rmi -f / tag / start / commit / --version, Docker's
//! messages, and no option accepted only to be ignored.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::daemon::Daemon;
use common::{assert_fails, code, dock_bin, stderr, stdout, DockRoot};

/// How long a line of an event stream may take before the test counts it as hung (a guard,
/// not a timing assertion).
const HANG_GUARD: Duration = Duration::from_secs(60);

/// A running `events` command whose lines arrive on a channel; killed on drop.
struct Watcher {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Watcher {
    fn spawn(mut cmd: Command) -> Watcher {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watcher { child, lines }
    }

    /// Lines until one contains `needle` (that one included).
    fn until(&self, needle: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(HANG_GUARD) {
                Ok(line) => {
                    let done = line.contains(needle);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(e) => panic!("no {needle:?} in the events ({e}): {seen:#?}"),
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The stream shows a container created after the watcher started (`--since` covers the
/// time before its request arrived).
fn wait_until_following(root: &DockRoot, watcher: &Watcher) {
    let id = root.ok(&[
        "create",
        "--network",
        "none",
        "--name",
        "marker",
        "busybox",
        "true",
    ]);
    watcher.until(&format!("create {}", id.trim()));
}

#[test]
fn dock_events_show_a_container_that_starts_and_dies() {
    let root = DockRoot::with_busybox();
    let mut cmd = root.cmd();
    let now = format!(
        "{:.3}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    );
    cmd.args(["events", "--since", &now, "--filter", "type=container"]);
    let watcher = Watcher::spawn(cmd);
    wait_until_following(&root, &watcher);
    let out = root.run(&[
        "run",
        "--network",
        "none",
        "--name",
        "dies",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let lines = watcher.until(" container die ");
    let start = lines
        .iter()
        .find(|l| l.contains(" container start "))
        .unwrap();
    assert!(
        start.contains("name=dies") && start.contains("image=busybox"),
        "{start}"
    );
    let die = lines.last().unwrap();
    assert!(
        die.contains("exitCode=3") && die.contains("name=dies"),
        "{die}"
    );
    // Docker's line: an RFC 3339 time with nanoseconds first.
    let time = die.split(' ').next().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{die}");
    assert!(time.split('.').nth(1).unwrap().len() >= 9, "{die}");

    // Replayed with --since, filtered, bounded by --until, as Docker's JSON.
    let json = root.ok(&[
        "events",
        "--since",
        "1h",
        "--until",
        "0s",
        "--filter",
        "event=die",
        "--format",
        "json",
    ]);
    let events: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 1, "{json}");
    let e = &events[0];
    assert_eq!(e["Type"], "container");
    assert_eq!(e["Action"], "die");
    assert_eq!(e["status"], "die");
    assert_eq!(e["scope"], "local");
    assert_eq!(e["Actor"]["Attributes"]["exitCode"], "3");
    assert_eq!(e["Actor"]["Attributes"]["name"], "dies");
    assert_eq!(e["id"], e["Actor"]["ID"]);
    assert!(e["timeNano"].as_i64().unwrap() / 1_000_000_000 == e["time"].as_i64().unwrap());
    let bad = root.run(&["events", "--filter", "colour=red"]);
    assert_ne!(code(&bad), 0);
    assert!(stderr(&bad).contains("colour=red"), "{}", stderr(&bad));
}

#[test]
fn docker_events_through_the_daemon_show_what_docker_and_daemonless_dock_did() {
    let daemon = Daemon::start_on(DockRoot::with_busybox());
    // From now: what happens before the CLI's request arrives is replayed, not lost.
    let now = format!(
        "{:.3}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    );
    let cmd = daemon.docker_cmd(&["events", "--since", &now, "--filter", "type=container"]);
    let watcher = Watcher::spawn(cmd);
    wait_until_following(&daemon.root, &watcher);
    // The daemonless CLI's container, then the docker CLI's.
    let out = daemon.root.run(&[
        "run",
        "--network",
        "none",
        "--name",
        "by-dock",
        "busybox",
        "sh",
        "-c",
        "exit 4",
    ]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    let lines = watcher.until("exitCode=4");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" container start ") && l.contains("name=by-dock")),
        "{lines:#?}"
    );
    let out = daemon.docker(&[
        "run",
        "--network",
        "none",
        "--name",
        "by-docker",
        "busybox",
        "sh",
        "-c",
        "exit 5",
    ]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    let lines = watcher.until("exitCode=5");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" container start ") && l.contains("name=by-docker")),
        "{lines:#?}"
    );
    assert!(
        lines.last().unwrap().contains(" container die "),
        "{lines:#?}"
    );

    // Replay through the API, filtered by the CLI's filters parameter.
    // The CLI sends a duration as whole seconds: an --until in the future covers this second.
    let until = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1)
    .to_string();
    let json = daemon.docker_ok(&[
        "events",
        "--since",
        "1h",
        "--until",
        &until,
        "--filter",
        "container=by-docker",
        "--filter",
        "event=start",
        "--format",
        "{{json .}}",
    ]);
    let events: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 1, "{json}");
    assert_eq!(events[0]["Actor"]["Attributes"]["name"], "by-docker");
    assert_eq!(events[0]["from"], "busybox");
    let bad = daemon.docker(&[
        "events",
        "--since",
        "1h",
        "--until",
        "0s",
        "--filter",
        "colour=red",
    ]);
    assert_ne!(code(&bad), 0);
    assert!(stderr(&bad).contains("colour=red"), "{}", stderr(&bad));
}

#[test]
fn image_events_are_recorded() {
    let root = DockRoot::with_busybox();
    root.ok(&["tag", "busybox", "other:1"]);
    root.ok(&["rmi", "other:1"]);
    let json = root.ok(&[
        "events",
        "--since",
        "1h",
        "--until",
        "0s",
        "--filter",
        "type=image",
        "--format",
        "json",
    ]);
    let actions: Vec<(String, String)> = json
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|e| {
            (
                e["Action"].as_str().unwrap().to_string(),
                e["Actor"]["Attributes"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(actions[0].0, "import", "{actions:?}");
    assert!(
        actions.contains(&("tag".into(), "other:1".into())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("untag".into(), "other:1".into())),
        "{actions:?}"
    );
    // Others' commands add their line: rename, say.
    root.ok(&[
        "create",
        "--network",
        "none",
        "--name",
        "before",
        "busybox",
        "true",
    ]);
    root.ok(&["rename", "before", "after"]);
    let json = root.ok(&[
        "events",
        "--since",
        "1h",
        "--until",
        "0s",
        "--filter",
        "event=rename",
        "--format",
        "json",
    ]);
    let e: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(e["Actor"]["Attributes"]["name"], "after");
    assert_eq!(e["Actor"]["Attributes"]["oldName"], "/before");
}

#[test]
fn container_prune_asks_first_and_reports_as_docker() {
    let root = DockRoot::with_busybox();
    let id = root.ok(&[
        "run",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo data > /f",
    ]);
    let _ = id;
    let stopped = root.ok(&["ps", "-aq", "--no-trunc"]).trim().to_string();
    let running = root
        .ok(&["run", "-d", "--network", "none", "busybox", "sleep", "1000"])
        .trim()
        .to_string();
    // Without a terminal and without -f: the question, no answer, nothing removed.
    let out = root.run(&["container", "prune"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] "
    );
    assert!(root.ok(&["ps", "-aq", "--no-trunc"]).contains(&stopped));
    // A "y" goes on.
    let mut child = root
        .cmd()
        .args(["container", "prune"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"y\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = stdout(&out);
    assert!(
        text.ends_with(&format!(
            "Deleted Containers:\n{stopped}\n\nTotal reclaimed space: 5B\n"
        )),
        "{text}"
    );
    let left = root.ok(&["ps", "-aq", "--no-trunc"]);
    assert_eq!(left.trim(), running);
    // Filters: a label nobody has selects nothing.
    root.ok(&[
        "run",
        "--network",
        "none",
        "-l",
        "keep=1",
        "busybox",
        "true",
    ]);
    let out = root.ok(&["container", "prune", "-f", "--filter", "label=gone"]);
    assert_eq!(out, "Total reclaimed space: 0B\n");
    let out = root.ok(&["container", "prune", "-f", "--filter", "label=keep=1"]);
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    let bad = root.run(&["container", "prune", "-f", "--filter", "colour=red"]);
    assert_ne!(code(&bad), 0);
    root.ok(&["rm", "-f", &running]);
}

#[test]
fn image_prune_system_prune_and_df() {
    let root = DockRoot::with_busybox();
    let ctr = root
        .ok(&[
            "run",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "echo x > /x",
        ])
        .trim()
        .to_string();
    let _ = ctr;
    let ctr = root.ok(&["ps", "-aq", "--no-trunc"]).trim().to_string();
    let dangling = root.ok(&["commit", &ctr]).trim().to_string();
    root.ok(&["commit", &ctr, "kept:1"]);
    let df = root.ok(&["system", "df"]);
    let rows: Vec<Vec<&str>> = df.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        rows[0],
        ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
        "{df}"
    );
    assert_eq!(&rows[1][..3], ["Images", "3", "1"], "{df}");
    assert_eq!(&rows[2][..3], ["Containers", "1", "0"], "{df}");
    assert_eq!(rows[3][..2], ["Local", "Volumes"], "{df}");
    assert_eq!(rows[4], ["Build", "Cache", "0", "0", "0B", "0B"], "{df}");
    let verbose = root.ok(&["system", "df", "-v"]);
    assert!(verbose.starts_with("Images space usage:\n"), "{verbose}");
    assert!(
        verbose.contains("kept ") && verbose.contains("Containers space usage:"),
        "{verbose}"
    );

    // Dangling only: the unnamed commit (and the layer it sat on).
    let out = root.ok(&["image", "prune", "-f"]);
    assert!(out.starts_with("Deleted Images:\n"), "{out}");
    assert!(
        out.contains(&format!("deleted: sha256:{dangling}")),
        "{out}"
    );
    assert!(
        out.ends_with("B\n") && out.contains("\n\nTotal reclaimed space: "),
        "{out}"
    );
    assert!(root.ok(&["images", "-q"]).lines().count() == 2);
    // -a: every image no container uses; busybox is used by the stopped container.
    let out = root.ok(&["image", "prune", "-a", "-f"]);
    assert!(out.contains("untagged: kept:1"), "{out}");
    assert!(root.ok(&["images"]).contains("busybox"));
    // system prune -a: the container first, then its image.
    let out = root.ok(&["system", "prune", "-a", "-f"]);
    assert!(
        out.starts_with(&format!(
            "Deleted Containers:\n{ctr}\n\nDeleted Images:\nuntagged: busybox:latest\n"
        )),
        "{out}"
    );
    assert!(root.ok(&["images", "-q"]).trim().is_empty());
    // Without -f and without an answer: the question, nothing more.
    let out = root.run(&["system", "prune", "--volumes"]);
    assert!(
        stdout(&out).starts_with(
            "WARNING! This will remove:\n  - all stopped containers\n  - all anonymous volumes"
        ),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).ends_with("Are you sure you want to continue? [y/N] "));
}

#[test]
fn prunes_and_df_through_the_docker_cli() {
    let daemon = Daemon::start_on(DockRoot::with_busybox());
    daemon.docker_ok(&[
        "run",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo x > /x",
    ]);
    let ctr = daemon
        .docker_ok(&["ps", "-aq", "--no-trunc"])
        .trim()
        .to_string();
    let unnamed = daemon.docker_ok(&["commit", &ctr]).trim().to_string();
    let df = daemon.docker_ok(&["system", "df"]);
    assert!(
        df.contains("Images") && df.contains("Containers") && df.contains("Local Volumes"),
        "{df}"
    );
    let images_row: Vec<&str> = df.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&images_row[..3], ["Images", "2", "1"], "{df}");
    let verbose = daemon.docker_ok(&["system", "df", "-v"]);
    assert!(
        verbose.contains("busybox") && verbose.contains(&ctr[..12]),
        "{verbose}"
    );
    let out = daemon.docker_ok(&["image", "prune", "-f"]);
    assert!(out.contains(&format!("deleted: {unnamed}")), "{out}");
    let out = daemon.docker_ok(&["container", "prune", "-f"]);
    assert!(
        out.starts_with(&format!("Deleted Containers:\n{ctr}\n")),
        "{out}"
    );
    assert!(out.contains("Total reclaimed space: 2B"), "{out}");
    let out = daemon.docker_ok(&["image", "prune", "-a", "-f"]);
    assert!(out.contains("untagged: busybox:latest"), "{out}");
    assert!(daemon.docker_ok(&["images", "-q"]).trim().is_empty());
    // system prune asks for networks and build cache too: dock has none to free.
    daemon.root.import_busybox("again");
    let left = daemon.docker_ok(&["create", "--network", "none", "again", "true"]);
    let out = daemon.docker_ok(&["system", "prune", "-a", "-f", "--volumes"]);
    assert!(
        out.starts_with(&format!("Deleted Containers:\n{}\n", left.trim())),
        "{out}"
    );
    assert!(
        out.contains("untagged: again:latest") && out.contains("Total reclaimed space: "),
        "{out}"
    );
    let out = daemon.docker(&["container", "prune", "-f", "--filter", "colour=red"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("colour=red"), "{}", stderr(&out));
}

/// An image's hex id, from `dock inspect` (today's `Id` or 0.1.0's `id`).
fn image_id(root: &DockRoot, name: &str) -> String {
    let v = root.inspect(name);
    let id = v["Id"].as_str().or(v["id"].as_str()).unwrap();
    id.trim_start_matches("sha256:").to_string()
}

#[test]
fn everyday_commands_behave_as_docker_28() {
    let root = DockRoot::with_busybox();
    // --version
    let version = root.ok(&["--version"]);
    assert!(
        version.starts_with(&format!(
            "dock version {}, build ",
            env!("CARGO_PKG_VERSION")
        )),
        "{version}"
    );
    // tag moves an existing tag without -f; -f is still accepted.
    let c = root.ok(&[
        "run",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo > /new",
    ]);
    let _ = c;
    let ctr = root.ok(&["ps", "-aq", "--no-trunc"]).trim().to_string();
    let committed = root.ok(&["commit", &ctr, "app:1"]).trim().to_string();
    root.ok(&["tag", "busybox", "app:1"]);
    root.ok(&["tag", "-f", "busybox", "app:2"]);
    assert_ne!(image_id(&root, "app:1"), committed);
    assert_eq!(image_id(&root, "app:1"), image_id(&root, "busybox"));
    // commit with a bad name makes nothing.
    let images_before = root.ok(&["images", "-a", "-q"]);
    let out = root.run(&["commit", &ctr, "Bad:Name"]);
    assert_ne!(code(&out), 0);
    assert_eq!(root.ok(&["images", "-a", "-q"]), images_before);
    // rmi -f: by name, that name goes; by ID, every name, unless a running container uses it
    // (or it has children: the commit goes first).
    root.ok(&["rmi", &committed]);
    root.ok(&["tag", "busybox", "third:1"]);
    let image = image_id(&root, "busybox");
    let runner = root
        .ok(&["run", "-d", "--network", "none", "app:1", "sleep", "1000"])
        .trim()
        .to_string();
    let out = root.ok(&["rmi", "-f", "third:1"]);
    assert_eq!(out, "Untagged: third:1\n");
    let out = root.run(&["rmi", "-f", &image[..12]]);
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains("running container"),
        "{}",
        stderr(&out)
    );
    // start of a running container: its name, exit 0.
    let out = root.run(&["start", &runner]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{runner}\n"));
    root.ok(&["rm", "-f", &runner]);
    let out = root.ok(&["rmi", "-f", &image[..12]]);
    assert!(
        out.contains("Untagged: app:1") && out.contains("Untagged: busybox:latest"),
        "{out}"
    );
    assert!(
        !out.contains("Deleted"),
        "the stopped container keeps the layers: {out}"
    );
    assert!(!root.ok(&["images"]).contains("busybox"));
    // The stopped container still starts from them.
    assert_eq!(code(&root.run(&["start", "-a", &ctr])), 0);
    // Messages.
    let out = root.run(&["run", "-p", "99999", "busybox", "true"]);
    assert_fails(&out, 125, "invalid containerPort: 99999");
    let out = root.run(&["run", "-p", "99999:80", "busybox", "true"]);
    assert!(
        stderr(&out).contains("invalid hostPort: 99999"),
        "{}",
        stderr(&out)
    );
    let out = root.run(&["run", "-m", "1k", "busybox", "true"]);
    assert_fails(&out, 125, "Minimum memory limit allowed is 6MB");
    let out = root.run(&["import", "/nonexistent/layer.tar", "x"]);
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains("open /nonexistent/layer.tar"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("http"), "{}", stderr(&out));
    // --debug, piped: no colour codes.
    let out = root.run(&["--debug", "images"]);
    assert!(!stderr(&out).contains('\u{1b}'), "{}", stderr(&out));
}

#[test]
fn flags_and_fields_dock_lacks_are_refused_by_name() {
    let daemon = Daemon::start_on(DockRoot::with_busybox());
    // Honoured through the API: --read-only makes the rootfs read-only.
    let out = daemon.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--read-only",
        "busybox",
        "touch",
        "/x",
    ]);
    assert_fails(&out, 1, "Read-only file system");
    let out = daemon.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--cap-drop",
        "ALL",
        "busybox",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert!(
        stdout(&out).contains("0000000000000000"),
        "{}",
        stderr(&out)
    );
    for (flag, value, field) in [
        ("--ulimit", "nofile=10", "HostConfig.Ulimits"),
        ("--cpuset-cpus", "0", "HostConfig.CpusetCpus"),
        (
            "--device-read-bps",
            "/dev/null:1mb",
            "HostConfig.BlkioDeviceReadBps",
        ),
        ("--shm-size", "1g", "HostConfig.ShmSize"),
        ("--log-driver", "syslog", "HostConfig.LogConfig"),
    ] {
        let out = daemon.docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            flag,
            value,
            "busybox",
            "true",
        ]);
        assert_eq!(code(&out), 125, "{flag}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(field) && stderr(&out).contains(flag),
            "{flag}: {}",
            stderr(&out)
        );
        let out = daemon.root.run(&[
            "run",
            "--rm",
            "--network",
            "none",
            flag,
            value,
            "busybox",
            "true",
        ]);
        assert_eq!(code(&out), 125, "{flag}: {}", stderr(&out));
        assert!(stderr(&out).contains(flag), "{flag}: {}", stderr(&out));
    }
    assert!(
        daemon.docker_ok(&["ps", "-aq"]).trim().is_empty(),
        "a refused create made nothing"
    );
    // `--no-healthcheck` asks for what dock does: no healthcheck. Both accept it.
    let quiet = [
        "run",
        "--rm",
        "--network",
        "none",
        "--no-healthcheck",
        "busybox",
        "true",
    ];
    daemon.docker_ok(&quiet);
    daemon.root.ok(&quiet);
    // update: the restart policy is honoured, a resource refused by name.
    let id = daemon.docker_ok(&["run", "-d", "--network", "none", "busybox", "sleep", "1000"]);
    let id = id.trim();
    daemon.docker_ok(&["update", "--restart", "on-failure:3", id]);
    let policy = daemon.docker_ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}",
        id,
    ]);
    assert_eq!(policy.trim(), "on-failure:3");
    daemon.docker_ok(&["update", "--memory", "0", id]);
    assert_eq!(
        daemon
            .docker_ok(&["inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", id])
            .trim(),
        "on-failure",
        "an update without --restart keeps the policy"
    );
    let out = daemon.docker(&["update", "--memory", "100m", id]);
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains("Memory (--memory) is not supported by dock"),
        "{}",
        stderr(&out)
    );
    daemon.docker_ok(&["rm", "-f", id]);
}

#[test]
fn help_describes_arguments_and_lists_global_options_once() {
    let root = DockRoot::new();
    for command in [
        "wait",
        "start",
        "rm",
        "tag",
        "rmi",
        "events",
        "system",
        "container",
    ] {
        let help = root.ok(&[command, "--help"]);
        assert_eq!(help.matches("--root").count(), 1, "{command}: {help}");
        assert!(help.contains("Global Options:"), "{command}: {help}");
    }
    let wait = root.ok(&["wait", "--help"]);
    assert!(
        wait.contains("<CONTAINERS>...  Containers to wait for"),
        "{wait}"
    );
    let system = root.ok(&["system", "--help"]);
    assert!(
        system.contains("df") && system.contains("prune"),
        "{system}"
    );
}

#[test]
fn docker_rmi_force_untags_and_refuses_for_a_running_container() {
    let daemon = Daemon::start_on(DockRoot::with_busybox());
    daemon.docker_ok(&["tag", "busybox", "second:1"]);
    let id = daemon
        .docker_ok(&["inspect", "-f", "{{.Id}}", "busybox"])
        .trim()
        .to_string();
    let runner = daemon.docker_ok(&["run", "-d", "--network", "none", "busybox", "sleep", "1000"]);
    let out = daemon.docker(&["rmi", "-f", &id]);
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains("running container"),
        "{}",
        stderr(&out)
    );
    daemon.docker_ok(&["stop", "-t", "0", runner.trim()]);
    let out = daemon.docker(&["rmi", &id]);
    assert_ne!(code(&out), 0, "two names and a container: must be forced");
    let out = daemon.docker_ok(&["rmi", "-f", &id]);
    assert!(
        out.contains("Untagged: busybox:latest") && out.contains("Untagged: second:1"),
        "{out}"
    );
    assert!(daemon
        .docker_ok(&["images", "--format", "{{.Repository}}"])
        .lines()
        .all(|r| r == "<none>"));
    // The stopped container still runs from the image's layers.
    daemon.docker_ok(&["start", runner.trim()]);
    daemon.docker_ok(&["rm", "-f", runner.trim()]);
}

#[test]
fn import_progress_on_a_terminal_ends_its_line_before_the_id() {
    let root = DockRoot::new();
    // `script` gives the import a terminal, so the progress line is drawn.
    let line = format!(
        "{} --root {} import {} prog",
        dock_bin(),
        root.path().display(),
        common::busybox_tar().display()
    );
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out).replace("\r\n", "\n");
    assert!(text.contains("MiB"), "no progress drawn: {text:?}");
    let id = text.lines().last().unwrap().to_string();
    assert!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{text:?}"
    );
}
