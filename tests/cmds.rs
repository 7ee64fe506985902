//! `logs --since/--until`, `top`, `stats`, `pause`/`unpause`: with `dock`, and with the real
//! `docker` CLI through `dock daemon` (each test its own root, daemon and socket).

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::{assert_fails, code, stderr, stdout, DockRoot};

/// The counter the pause tests freeze: it writes ever larger numbers to /tmp/n.
const COUNTER: &str = "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; done";

/// The counter file as it is now, read from the container's upper dir on the host (empty
/// while the shell is between truncating and writing it).
fn counter(root: &Path, id: &str) -> String {
    let path = root.join("containers").join(id).join("upper/tmp/n");
    std::fs::read_to_string(path).unwrap_or_default()
}

fn count(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// Waits (up to 20 s) until `f` holds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("never happened: {what}");
}

/// A paused counter stays where it is; an unpaused one goes on.
fn assert_counter_frozen_then_running(root: &Path, id: &str, pause: impl Fn(), unpause: impl Fn()) {
    eventually("the counter counts", || {
        count(&counter(root, id)).is_some_and(|n| n > 0)
    });
    pause();
    let frozen = counter(root, id);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counter(root, id), frozen, "counted while paused");
    let before = count(&frozen).unwrap_or(0);
    unpause();
    eventually("the counter goes on after unpause", || {
        count(&counter(root, id)).is_some_and(|n| n > before + 1)
    });
}

// ---------------------------------------------------------------- dock

#[test]
fn dock_pause_freezes_the_counter_and_shows_paused() {
    let root = DockRoot::with_busybox();
    let id = root
        .ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "counter",
            "busybox",
            "sh",
            "-c",
            COUNTER,
        ])
        .trim()
        .to_string();
    let pause = || assert_eq!(root.ok(&["pause", "counter"]), "counter\n");
    let unpause = || assert_eq!(root.ok(&["unpause", "counter"]), "counter\n");
    assert_counter_frozen_then_running(root.path(), &id, pause, unpause);

    // Paused: in inspect and ps; a second pause, an exec are refused.
    root.ok(&["pause", "counter"]);
    let state = &root.inspect("counter")["State"];
    assert_eq!(state["Paused"], true, "{state}");
    assert_eq!(state["Running"], true, "{state}");
    let ps = root.ok(&["ps"]);
    assert!(ps.contains("(Paused)"), "{ps}");
    let again = root.run(&["pause", "counter"]);
    assert_eq!(code(&again), 1);
    assert_eq!(
        stderr(&again),
        format!("Error: container {id} is already paused\n")
    );
    let out = root.run(&["rm", "counter"]);
    assert_eq!(
        stderr(&out),
        "Error: conflict: container counter is paused and must be unpaused first\n"
    );
    let exec = root.run(&["exec", "counter", "true"]);
    assert_ne!(code(&exec), 0);
    assert!(
        stderr(&exec).contains("is paused, unpause the container before exec"),
        "{}",
        stderr(&exec)
    );

    // stop of a paused container thaws it first, and ends it.
    root.ok(&["stop", "-t", "1", "counter"]);
    let state = &root.inspect("counter")["State"];
    assert_eq!(state["Paused"], false, "{state}");
    assert_eq!(state["Running"], false, "{state}");

    // Not running, not paused, no such container.
    let out = root.run(&["pause", "counter"]);
    assert_eq!(
        stderr(&out),
        format!("Error: container {id} is not running\n")
    );
    let out = root.run(&["unpause", "counter"]);
    assert_eq!(
        stderr(&out),
        format!("Error: container {id} is not paused\n")
    );
    let out = root.run(&["pause", "nosuch"]);
    assert_eq!(code(&out), 1);
    assert_eq!(stderr(&out), "Error: no such container: nosuch\n");

    // kill and rm -f of a paused container.
    root.ok(&["start", "counter"]);
    root.ok(&["pause", "counter"]);
    root.ok(&["kill", "counter"]);
    assert_eq!(root.inspect("counter")["State"]["Running"], false);
    root.ok(&["start", "counter"]);
    root.ok(&["pause", "counter"]);
    root.ok(&["rm", "-f", "counter"]);
    assert!(root.run(&["inspect", "counter"]).status.code() != Some(0));
}

/// A paused container whose monitor died (kill -9, a crash) is reaped like any other: the
/// next command thaws it so the kill lands, and nothing of it is left.
#[test]
fn dock_reaps_a_paused_container_whose_monitor_died() {
    let root = DockRoot::with_busybox();
    let id = root
        .ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "orphan",
            "busybox",
            "sh",
            "-c",
            COUNTER,
        ])
        .trim()
        .to_string();
    root.ok(&["pause", "orphan"]);
    let pid = root.inspect("orphan")["State"]["Pid"].as_i64().unwrap() as i32;
    for monitor in root.monitors() {
        common::kill9(monitor);
        common::wait_for_exit(monitor);
    }
    let state = &root.inspect("orphan")["State"];
    assert_eq!(state["Running"], false, "{state}");
    assert_eq!(state["Paused"], false, "{state}");
    common::wait_for_exit(pid);
    let left: Vec<PathBuf> = root
        .container_cgroups()
        .into_iter()
        .filter(|dir| dir.ends_with(&id))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The same on cgroup v2 (`cgroup.freeze`), with the machine's cgroup2 mount as the only
/// hierarchy.
#[test]
fn dock_pause_and_stats_on_cgroup_v2() {
    let Some(cgroup2) = cgroup2_mount() else {
        eprintln!("no cgroup2 mount beside v1 here; the v2 path is the v1 one");
        return;
    };
    let root = DockRoot::with_busybox();
    let dock = |args: &[&str]| -> String {
        let out = root
            .cmd()
            .env("DOCK_CGROUP2_ROOT", &cgroup2)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "dock {args:?}: {}", stderr(&out));
        stdout(&out)
    };
    let id = dock(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "c2",
        "busybox",
        "sh",
        "-c",
        COUNTER,
    ]);
    let id = id.trim();
    let cgroup = cgroup2.join(root.cgroup_parent()).join(id);
    assert_counter_frozen_then_running(
        root.path(),
        id,
        || {
            dock(&["pause", "c2"]);
            assert_eq!(
                std::fs::read_to_string(cgroup.join("cgroup.freeze"))
                    .unwrap()
                    .trim(),
                "1"
            );
        },
        || {
            dock(&["unpause", "c2"]);
        },
    );
    let table = dock(&["stats", "--no-stream", "c2"]);
    let row = stats_row(&table, "c2");
    // The busy loop uses CPU; the counter's sh is one process at least.
    assert!(row[2] != "0.00%", "{table}");
    dock(&["rm", "-f", "c2"]);
}

/// A cgroup2 mount beside the v1 hierarchies (a hybrid machine), if there is one.
fn cgroup2_mount() -> Option<PathBuf> {
    let unified = PathBuf::from("/sys/fs/cgroup/unified");
    unified.join("cgroup.procs").exists().then_some(unified)
}

/// The cells of `name`'s row of a `stats` table, split on runs of 2+ spaces... as the
/// columns hold single spaces ("1.5MiB / 1GiB"), split where 3 spaces are.
fn stats_row(table: &str, name: &str) -> Vec<String> {
    let mut lines = table.lines();
    assert_eq!(
        split_columns(lines.next().unwrap()),
        [
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "NET I/O",
            "BLOCK I/O",
            "PIDS"
        ],
        "{table}"
    );
    lines
        .map(split_columns)
        .find(|cells| cells.get(1).is_some_and(|n| n == name))
        .unwrap_or_else(|| panic!("no row for {name}:\n{table}"))
}

fn split_columns(line: &str) -> Vec<String> {
    line.split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// A row with real numbers: CPU % and MEM % as `N.NN%`, a memory use and limit that are not
/// zero, I/O pairs, at least one process.
fn assert_real_stats(row: &[String], table: &str) {
    assert_eq!(row.len(), 8, "{table}");
    let percent = |cell: &str| {
        let n = cell
            .strip_suffix('%')
            .unwrap_or_else(|| panic!("{cell}: {table}"));
        assert!(
            n.split_once('.').is_some_and(|(_, f)| f.len() == 2),
            "{cell}: {table}"
        );
        n.parse::<f64>().unwrap()
    };
    percent(&row[2]);
    percent(&row[4]);
    let (usage, limit) = row[3].split_once(" / ").unwrap();
    assert!(usage != "0B" && limit != "0B", "{table}");
    assert!(row[5].contains(" / ") && row[6].contains(" / "), "{table}");
    assert!(row[7].parse::<u64>().unwrap() >= 1, "{table}");
}

#[test]
fn dock_stats_top_and_errors() {
    let root = DockRoot::with_busybox();
    let id = root
        .ok(&[
            "run",
            "-d",
            "--name",
            "web",
            "busybox",
            "sh",
            "-c",
            "while :; do sleep 1; done",
        ])
        .trim()
        .to_string();
    let table = root.ok(&["stats", "--no-stream"]);
    let row = stats_row(&table, "web");
    assert_eq!(row[0], &id[..12]);
    assert_real_stats(&row, &table);
    // The container has its eth0 on the bridge: NET I/O is its counters (maybe still 0B).
    let full = root.ok(&["stats", "--no-stream", "--no-trunc", "web"]);
    assert_eq!(stats_row(&full, "web")[0], id, "{full}");
    // --format: Docker's fields, `table` with its titles, `json`.
    let line = root.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Container}}|{{.Name}}|{{.ID}}|{{.PIDs}}",
        "web",
    ]);
    let cells: Vec<&str> = line.trim_end().split('|').collect();
    assert_eq!(cells[..3], ["web", "web", &id[..12]], "{line}");
    assert!(cells[3].parse::<u64>().unwrap() >= 1, "{line}");
    let table = root.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "table {{.Name}}\t{{.CPUPerc}}\t{{.MemPerc}}",
    ]);
    assert_eq!(
        split_columns(table.lines().next().unwrap()),
        ["NAME", "CPU %", "MEM %"],
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&root.ok(&["stats", "--no-stream", "--format", "json", "web"]))
            .unwrap();
    assert_eq!(json["Name"], "web", "{json}");
    assert!(json["MemUsage"].as_str().unwrap().contains(" / "), "{json}");
    let out = root.run(&["stats", "--no-stream", "--format", "{{.Nope", "web"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).starts_with("Error: template parsing error"),
        "{}",
        stderr(&out)
    );

    // top: ps -ef rows of the container's processes only.
    let top = root.ok(&["top", "web"]);
    let mut lines = top.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("UID") && header.contains("PID") && header.ends_with("CMD"),
        "{top}"
    );
    let rows: Vec<&str> = lines.collect();
    assert!(
        rows.iter()
            .any(|r| r.ends_with("sh -c while :; do sleep 1; done")),
        "{top}"
    );
    assert!(
        rows.iter().all(|r| !r.contains("dock")),
        "host processes in {top}"
    );
    // ps options after the container.
    let top = root.ok(&["top", "web", "-o", "pid,comm"]);
    let mut lines = top.lines();
    assert_eq!(
        split_columns(lines.next().unwrap()),
        ["PID", "COMMAND"],
        "{top}"
    );
    assert!(lines.any(|l| l.trim_end().ends_with("sh")), "{top}");
    let out = root.run(&["top", "web", "-o", "user=PID"]);
    assert_eq!(
        stderr(&out),
        "Error: specifying \"user=PID\" is not allowed\n"
    );

    root.ok(&["rm", "-f", "web"]);
    root.ok(&["create", "--name", "idle", "busybox", "true"]);
    let idle = root.inspect("idle")["Id"].as_str().unwrap().to_string();
    let out = root.run(&["top", "idle"]);
    assert_eq!(code(&out), 1);
    assert_eq!(
        stderr(&out),
        format!("Error: container {idle} is not running\n")
    );
    let out = root.run(&["stats", "--no-stream", "nosuch"]);
    assert_eq!(stderr(&out), "Error: no such container: nosuch\n");
    // A container that does not run: a row of zeros, as docker shows it.
    let table = root.ok(&["stats", "--no-stream", "idle"]);
    assert_eq!(
        stats_row(&table, "idle")[2..],
        ["0.00%", "0B / 0B", "0.00%", "0B / 0B", "0B / 0B", "0"]
    );
}

#[test]
fn dock_logs_since_and_until() {
    let root = DockRoot::with_busybox();
    root.ok(&[
        "run",
        "--network",
        "none",
        "--name",
        "talk",
        "busybox",
        "sh",
        "-c",
        "echo one; sleep 1; echo two",
    ]);
    let stamped = root.ok(&["logs", "-t", "talk"]);
    let times: Vec<&str> = stamped
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(times.len(), 2, "{stamped}");
    let (first, second) = (times[0], times[1]);
    let logs = |extra: &[&str]| {
        let mut args = vec!["logs"];
        args.extend_from_slice(extra);
        args.push("talk");
        root.ok(&args)
    };
    assert_eq!(logs(&["--since", second]), "two\n");
    assert_eq!(logs(&["--until", first]), "one\n");
    assert_eq!(logs(&["--since", first, "--until", second]), "one\ntwo\n");
    // Unix seconds with a fraction, as `date +%s.%N` prints them.
    let unix = |rfc: &str| {
        let t = chrono::DateTime::parse_from_rfc3339(rfc).unwrap();
        format!("{}.{:09}", t.timestamp(), t.timestamp_subsec_nanos())
    };
    assert_eq!(logs(&["--since", &unix(second)]), "two\n");
    assert_eq!(logs(&["--until", &unix(first)]), "one\n");
    // Relative: everything is from the last 10 minutes, nothing from before.
    assert_eq!(logs(&["--since", "10m"]), "one\ntwo\n");
    assert_eq!(logs(&["--until", "10m"]), "");
    assert_eq!(logs(&["--tail", "1", "--since", "1h"]), "two\n");
    let out = root.run(&["logs", "--since", "yesterday", "talk"]);
    assert_fails(
        &out,
        1,
        "failed to parse value as time or duration: \"yesterday\"",
    );
    // -f ends at --until.
    root.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "forever",
        "busybox",
        "sh",
        "-c",
        "while :; do echo tick; sleep 1; done",
    ]);
    let out = root.run(&["logs", "-f", "--until", "1s", "forever"]);
    assert!(out.status.success(), "{}", stderr(&out));
    root.ok(&["rm", "-f", "forever"]);
}

// ---------------------------------------------------------------- docker via dock daemon

/// A daemon with the busybox rootfs imported as `bb`.
fn daemon_with_bb() -> Daemon {
    let daemon = Daemon::start();
    daemon.import_busybox("bb");
    daemon
}

impl Daemon {
    /// `GET path` on the socket (HTTP/1.0: the answer ends with the connection); the body
    /// as far as `enough` wants it.
    fn get(&self, path: &str, enough: impl Fn(&str) -> bool) -> (String, String) {
        let mut stream = UnixStream::connect(&self.socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(stream, "GET {path} HTTP/1.0\r\nHost: dock\r\n\r\n").unwrap();
        let mut text = String::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = stream.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            if let Some((_, body)) = text.split_once("\r\n\r\n") {
                if enough(body) {
                    break;
                }
            }
        }
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head.to_string(), body.to_string())
    }
}

#[test]
fn docker_pause_unpause_freezes_the_counter() {
    let daemon = daemon_with_bb();
    let id = daemon
        .docker_ok(&["run", "-d", "--name", "counter", "bb", "sh", "-c", COUNTER])
        .trim()
        .to_string();
    let pause = || assert_eq!(daemon.docker_ok(&["pause", "counter"]), "counter\n");
    let unpause = || assert_eq!(daemon.docker_ok(&["unpause", "counter"]), "counter\n");
    assert_counter_frozen_then_running(daemon.root.path(), &id, pause, unpause);

    daemon.docker_ok(&["pause", "counter"]);
    assert_eq!(
        daemon.docker_ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Paused}} {{.State.Running}}",
            "counter"
        ]),
        "paused true true\n"
    );
    let status = daemon.docker_ok(&["ps", "--format", "{{.Status}}"]);
    assert!(
        status.starts_with("Up ") && status.trim_end().ends_with("(Paused)"),
        "{status}"
    );
    assert_eq!(
        daemon.docker_ok(&["ps", "--filter", "status=paused", "--format", "{{.Names}}"]),
        "counter\n"
    );
    let info = daemon.docker_ok(&[
        "info",
        "--format",
        "{{.ContainersPaused}} {{.ContainersRunning}}",
    ]);
    assert_eq!(info, "1 0\n");
    let out = daemon.docker(&["pause", "counter"]);
    assert_eq!(code(&out), 1);
    assert_eq!(
        stderr(&out),
        format!("Error response from daemon: container {id} is already paused\n")
    );
    let out = daemon.docker(&["rm", "counter"]);
    assert_eq!(
        stderr(&out),
        "Error response from daemon: cannot remove container \"/counter\": container is paused and must be unpaused first\n"
    );
    let out = daemon.docker(&["exec", "counter", "true"]);
    assert!(
        stderr(&out).contains("is paused, unpause the container before exec"),
        "{}",
        stderr(&out)
    );
    // stop thaws it first.
    daemon.docker_ok(&["stop", "-t", "1", "counter"]);
    assert_eq!(
        daemon.docker_ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Paused}}",
            "counter"
        ]),
        "exited false\n"
    );
    let out = daemon.docker(&["unpause", "counter"]);
    assert_eq!(
        stderr(&out),
        format!("Error response from daemon: container {id} is not paused\n")
    );
    let out = daemon.docker(&["pause", "counter"]);
    assert_eq!(
        stderr(&out),
        format!("Error response from daemon: container {id} is not running\n")
    );
    let out = daemon.docker(&["pause", "nosuch"]);
    assert_eq!(code(&out), 1);
    assert_eq!(
        stderr(&out),
        "Error response from daemon: No such container: nosuch\n"
    );
    // kill and rm -f of a paused container.
    daemon.docker_ok(&["start", "counter"]);
    daemon.docker_ok(&["pause", "counter"]);
    daemon.docker_ok(&["kill", "counter"]);
    daemon.docker_ok(&["start", "counter"]);
    daemon.docker_ok(&["pause", "counter"]);
    daemon.docker_ok(&["rm", "-f", "counter"]);
}

#[test]
fn docker_stats_top_and_logs_through_the_daemon() {
    let daemon = daemon_with_bb();
    let id = daemon
        .docker_ok(&[
            "run",
            "-d",
            "--name",
            "web",
            "bb",
            "sh",
            "-c",
            "echo one; sleep 1; echo two; while :; do sleep 1; done",
        ])
        .trim()
        .to_string();

    // stats --no-stream: real numbers, not `--`.
    let table = daemon.docker_ok(&["stats", "--no-stream"]);
    let row = stats_row(&table, "web");
    assert_eq!(row[0], &id[..12]);
    assert_real_stats(&row, &table);
    // --format through the docker CLI: the same fields from the API's document.
    let line = daemon.docker_ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}|{{.ID}}|{{.PIDs}}",
        "web",
    ]);
    let cells: Vec<&str> = line.trim_end().split('|').collect();
    assert_eq!(cells[..2], ["web", &id[..12]], "{line}");
    assert!(cells[2].parse::<u64>().unwrap() >= 1, "{line}");
    let out = daemon.docker(&["stats", "--no-stream", "nosuch"]);
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains("No such container: nosuch"),
        "{}",
        stderr(&out)
    );

    // The API's documents: one with stream=false (precpu from a second earlier), a line a
    // second streamed.
    let (head, body) = daemon.get(&format!("/containers/{id}/stats?stream=false"), |_| false);
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    for key in [
        "read",
        "preread",
        "pids_stats",
        "blkio_stats",
        "cpu_stats",
        "precpu_stats",
        "memory_stats",
        "networks",
    ] {
        assert!(stats.get(key).is_some(), "{key}: {stats}");
    }
    let cpu = &stats["cpu_stats"];
    assert!(
        cpu["cpu_usage"]["total_usage"].as_u64().unwrap() > 0,
        "{stats}"
    );
    assert!(
        cpu["system_cpu_usage"].as_u64().unwrap()
            > stats["precpu_stats"]["system_cpu_usage"].as_u64().unwrap(),
        "{stats}"
    );
    assert!(cpu["online_cpus"].as_u64().unwrap() >= 1, "{stats}");
    assert!(
        stats["memory_stats"]["usage"].as_u64().unwrap() > 0,
        "{stats}"
    );
    assert!(
        stats["memory_stats"]["limit"].as_u64().unwrap() > 0,
        "{stats}"
    );
    assert!(stats["networks"]["eth0"]["rx_bytes"].is_u64(), "{stats}");
    assert_eq!(stats["name"], "/web");
    let (_, body) = daemon.get(
        &format!("/containers/{id}/stats?stream=false&one-shot=true"),
        |_| false,
    );
    let one: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(one["precpu_stats"]["system_cpu_usage"].is_null(), "{one}");
    let (_, body) = daemon.get(&format!("/containers/{id}/stats"), |b| {
        b.lines().count() >= 3
    });
    let docs: Vec<serde_json::Value> = body
        .lines()
        .take(2)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs[1]["precpu_stats"], docs[0]["cpu_stats"]);

    // top
    let top = daemon.docker_ok(&["top", "web"]);
    let header = top.lines().next().unwrap();
    assert!(
        header.starts_with("UID") && header.contains("PID") && header.ends_with("CMD"),
        "{top}"
    );
    assert!(top.contains("while :; do sleep 1; done"), "{top}");
    let top = daemon.docker_ok(&["top", "web", "-o", "pid,comm"]);
    assert_eq!(
        split_columns(top.lines().next().unwrap()),
        ["PID", "COMMAND"],
        "{top}"
    );
    let (_, body) = daemon.get(
        &format!("/containers/{id}/top?ps_args=-o%20pid,args"),
        |_| false,
    );
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        json["Titles"],
        serde_json::json!(["PID", "COMMAND"]),
        "{json}"
    );
    assert!(
        json["Processes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p[1].as_str().unwrap().starts_with("sh -c echo one")),
        "{json}"
    );

    // logs --since/--until
    eventually("both lines are logged", || {
        daemon.docker_ok(&["logs", "web"]) == "one\ntwo\n"
    });
    let stamped = daemon.docker_ok(&["logs", "-t", "web"]);
    let times: Vec<&str> = stamped
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        daemon.docker_ok(&["logs", "--since", times[1], "web"]),
        "two\n"
    );
    assert_eq!(
        daemon.docker_ok(&["logs", "--until", times[0], "web"]),
        "one\n"
    );
    assert_eq!(
        daemon.docker_ok(&["logs", "--since", "10m", "web"]),
        "one\ntwo\n"
    );
    assert_eq!(daemon.docker_ok(&["logs", "--until", "10m", "web"]), "");
    let out = daemon.docker(&["logs", "-f", "--until", "2s", "web"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Errors: a container that does not run.
    daemon.docker_ok(&["rm", "-f", "web"]);
    daemon.docker_ok(&["create", "--name", "idle", "bb", "true"]);
    let idle = daemon.docker_ok(&["inspect", "-f", "{{.Id}}", "idle"]);
    let out = daemon.docker(&["top", "idle"]);
    assert_eq!(code(&out), 1);
    assert_eq!(
        stderr(&out),
        format!(
            "Error response from daemon: container {} is not running\n",
            idle.trim()
        )
    );
    let out = daemon.docker(&["top", "nosuch"]);
    assert_eq!(
        stderr(&out),
        "Error response from daemon: No such container: nosuch\n"
    );
}
