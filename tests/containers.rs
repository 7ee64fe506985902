//! End-to-end container tests: the real `dock` binary against a private root, on a busybox
//! image. Docker 0.1.0's runtime and container tests, plus isolation and lifecycle checks.
//! Every test owns an [`Env`] whose [`DockRoot`] kills monitors and containers, unmounts
//! everything under the root, removes the root's cgroups and tears down its network on drop,
//! even when the test fails.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{code, kill9, lines, stderr, stdout, wait_for_exit, DockRoot};

struct Env {
    root: DockRoot,
    image: String,
}

impl Env {
    fn new() -> Env {
        let root = DockRoot::new();
        let image = root.import_busybox("busybox");
        Env { root, image }
    }

    /// `dock args` with `input` on stdin.
    fn run_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .root
            .cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Container cgroups left under the parent.
    fn cgroup_children(&self) -> Vec<PathBuf> {
        let mut children = Vec::new();
        for dir in self.cgroup_parents() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                if entry.path().is_dir() {
                    children.push(entry.path());
                }
            }
        }
        children
    }

    /// Asserts nothing of any container is left on the machine.
    fn assert_clean(&self) {
        assert_eq!(self.mounts(), Vec::<String>::new(), "mounts left");
        assert_eq!(
            self.cgroup_children(),
            Vec::<PathBuf>::new(),
            "cgroups left"
        );
        assert_eq!(self.monitors(), Vec::<i32>::new(), "monitors left");
    }
}

/// The guard is the root: an `Env` is a root with a busybox image.
impl std::ops::Deref for Env {
    type Target = DockRoot;

    fn deref(&self) -> &DockRoot {
        &self.root
    }
}

#[test]
fn create_list_get_destroy_and_a_second_destroy_fails() {
    let env = Env::new();
    assert_eq!(env.ok(&["ps", "-a", "-q"]), "");
    let out = env.run(&["run", "--name", "lister", "busybox", "ls", "-al"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let ids = lines(&env.ok(&["ps", "-a", "-q", "--no-trunc"]));
    assert_eq!(ids.len(), 1);
    let id = &ids[0];
    assert_eq!(id.len(), 64);
    // By full id, unique prefix and name: the same container.
    for name in [id.as_str(), &id[..5], "lister"] {
        let c = env.inspect(name);
        assert_eq!(c["Id"], id.as_str());
        assert_eq!(c["Name"], "/lister");
        assert_eq!(c["Path"], "ls");
        assert_eq!(c["Args"], serde_json::json!(["-al"]));
        assert_eq!(c["Image"], format!("sha256:{}", env.image));
        assert_eq!(c["State"]["Running"], false);
    }
    let table = env.ok(&["ps", "-a"]);
    let header = table.lines().next().unwrap();
    assert!(header.starts_with("CONTAINER ID "), "{header}");
    for col in ["IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"] {
        assert!(header.contains(col), "{header}");
    }
    assert!(table.contains("\"ls -al\""), "{table}");
    assert!(table.contains("Exited (0)"), "{table}");
    assert!(table.contains("lister"), "{table}");
    // Only running containers without -a.
    assert_eq!(env.ok(&["ps", "-q"]), "");

    assert_eq!(env.ok(&["rm", "lister"]).trim(), "lister");
    assert!(!env.path().join("containers").join(id).exists());
    assert_eq!(env.ok(&["ps", "-a", "-q"]), "");
    let again = env.run(&["rm", id]);
    assert_ne!(code(&again), 0);
    assert!(
        stderr(&again).contains("no such container"),
        "{}",
        stderr(&again)
    );
    let unknown = env.run(&["inspect", "lister"]);
    assert_ne!(code(&unknown), 0);
    env.assert_clean();
}

/// `run` starts its container's monitor before it parses its command line, from the global
/// options before `run`; where the parsed command line says otherwise, that monitor goes and
/// the right one starts.
#[test]
fn run_starts_the_monitor_its_whole_command_line_asks_for() {
    let env = Env::new();
    let root = env.path().to_str().unwrap();
    // The state directory after `run`: the early monitor was for the default one.
    let out = Command::new(common::dock_bin())
        .args([
            "run", "--root", root, "--rm", "busybox", "sh", "-c", "exit 3",
        ])
        .env_remove("DOCK_ROOT")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    // Logging asked for before `run`: the early monitor serves. After it: another starts.
    let out = env.run(&["-D", "run", "--rm", "busybox", "true"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("started before parsing serves"));
    let out = env.run(&["run", "-D", "--rm", "busybox", "true"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!stderr(&out).contains("started before parsing serves"));
    assert!(
        stderr(&out).contains("spawning monitor"),
        "{}",
        stderr(&out)
    );
    // Command lines that do not parse, or only ask for help: nothing is started, and no
    // monitor is left.
    for line in [
        &["run", "--no-such-flag", "busybox", "true"][..],
        &["run", "--name"][..],
        &["run", "--help"][..],
    ] {
        let out = env.run(line);
        assert_eq!(code(&out) == 0, line == ["run", "--help"], "{line:?}");
        assert_eq!(
            env.monitors(),
            Vec::<i32>::new(),
            "monitors left by {line:?}"
        );
    }
    assert!(env.container_dirs().is_empty());
    env.assert_clean();
}

#[test]
fn names_are_unique_and_prefixes_must_be_unambiguous() {
    let env = Env::new();
    env.ok(&["run", "--name", "one", "busybox", "true"]);
    let dup = env.run(&["run", "--name", "one", "busybox", "true"]);
    assert_eq!(code(&dup), 125);
    let holder = lines(&env.ok(&["ps", "-a", "-q", "--no-trunc"]))[0].clone();
    assert!(
        stderr(&dup).contains("one") && stderr(&dup).contains(&holder),
        "{}",
        stderr(&dup)
    );
    assert_eq!(env.container_dirs().len(), 1);
    // `run` starts the monitor while it creates: the failed run's monitor is gone too.
    assert_eq!(env.monitors(), Vec::<i32>::new(), "monitors left");
    for _ in 0..20 {
        env.ok(&["run", "busybox", "true"]);
    }
    // Some one-hex-digit prefix is shared by two of the 21 ids.
    let ids = lines(&env.ok(&["ps", "-a", "-q", "--no-trunc"]));
    let shared = (0..16)
        .map(|d| format!("{d:x}"))
        .find(|p| ids.iter().filter(|id| id.starts_with(p.as_str())).count() > 1)
        .unwrap();
    let out = env.run(&["inspect", &shared]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("ambiguous"), "{}", stderr(&out));
}

#[test]
fn run_output_exit_codes_and_start_errors() {
    let env = Env::new();
    let out = env.run(&["run", "busybox", "echo", "-n", "foobar"]);
    assert_eq!(stdout(&out), "foobar");
    assert_eq!(code(&out), 0);
    assert_eq!(code(&env.run(&["run", "busybox", "true"])), 0);
    assert_eq!(code(&env.run(&["run", "busybox", "false"])), 1);
    assert_eq!(code(&env.run(&["run", "busybox", "sh", "-c", "exit 3"])), 3);

    let out = env.run(&["run", "busybox", "sh", "-c", "echo out; echo err >&2"]);
    assert_eq!(stdout(&out), "out\n");
    assert_eq!(stderr(&out), "err\n");

    let out = env.run(&["run", "busybox", "no-such-command"]);
    assert_eq!(code(&out), 127);
    assert!(stderr(&out).contains("no-such-command"), "{}", stderr(&out));
    let out = env.run(&["run", "busybox", "/etc/passwd"]);
    assert_eq!(code(&out), 126);
    assert!(stderr(&out).contains("/etc/passwd"), "{}", stderr(&out));
    let out = env.run(&["run", "nosuchimage", "true"]);
    assert_eq!(code(&out), 125);
    assert_eq!(stderr(&out).trim(), "Error: no such image: nosuchimage");

    // Exit codes are recorded and `wait` prints them.
    let id = env
        .ok(&["run", "-d", "busybox", "sh", "-c", "exit 7"])
        .trim()
        .to_string();
    assert_eq!(env.ok(&["wait", &id]).trim(), "7");
    assert_eq!(env.inspect(&id)["State"]["ExitCode"], 7);
    env.assert_clean();
}

#[test]
fn detached_run_prints_the_full_id_and_kill_stops_it_at_once() {
    let env = Env::new();
    let id = env
        .ok(&["run", "-d", "busybox", "sleep", "1000"])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");
    assert_eq!(env.inspect(&id)["State"]["Running"], true);
    assert_eq!(
        lines(&env.ok(&["ps", "-q", "--no-trunc"])),
        vec![id.clone()]
    );
    assert!(env.ok(&["ps"]).contains("Up "));
    env.ok(&["kill", &id]);
    // Kill waits: not running right after.
    let c = env.inspect(&id);
    assert_eq!(c["State"]["Running"], false);
    assert_eq!(c["State"]["ExitCode"], 137);
    assert_eq!(env.ok(&["ps", "-q"]), "");
    assert_ne!(code(&env.run(&["kill", &id])), 0);
    env.assert_clean();
}

#[test]
fn restart_twice_gives_the_same_output_and_a_fresh_process_can_restore_it() {
    let env = Env::new();
    let out = env.ok(&["run", "--name", "again", "busybox", "echo", "-n", "foobar"]);
    assert_eq!(out, "foobar");
    // Each `dock` is a fresh process reading the state from disk (0.1.0's TestRestore).
    for _ in 0..2 {
        assert_eq!(env.ok(&["start", "-a", "again"]), "foobar");
    }
    // Logs accumulate across runs.
    assert_eq!(env.ok(&["logs", "again"]), "foobarfoobarfoobar");
    env.ok(&["restart", "again"]);
    env.ok(&["wait", "again"]);
    assert_eq!(env.ok(&["logs", "--tail", "1", "again"]), "foobar");
    env.assert_clean();
}

#[test]
fn files_written_survive_a_restart_and_stay_out_of_the_image() {
    let env = Env::new();
    env.ok(&[
        "run",
        "--name",
        "w",
        "busybox",
        "sh",
        "-c",
        "echo kept > /state",
    ]);
    env.ok(&["start", "w"]);
    env.ok(&["wait", "w"]);
    env.ok(&["run", "--name", "r", "busybox", "true"]);
    // Same upper dir on restart: the file is still there.
    let c = env.inspect("w");
    let id = c["Id"].as_str().unwrap();
    assert!(env
        .path()
        .join("containers")
        .join(id)
        .join("upper/state")
        .exists());
    let layer = env.path().join("graph").join(&env.image).join("layer");
    assert!(!layer.join("state").exists());
    let out = env.run(&["run", "busybox", "cat", "/state"]);
    assert_ne!(code(&out), 0, "a new container must not see another's file");
}

#[test]
fn commit_then_run_diff_and_export() {
    let env = Env::new();
    env.ok(&[
        "run",
        "--name",
        "c1",
        "-m",
        "33554432",
        "busybox",
        "sh",
        "-c",
        "echo hello > /world; rm /bin/ls",
    ]);
    let diff = lines(&env.ok(&["diff", "c1"]));
    assert!(diff.contains(&"A /world".to_string()), "{diff:?}");
    assert!(diff.contains(&"D /bin/ls".to_string()), "{diff:?}");
    assert!(diff.contains(&"C /bin".to_string()), "{diff:?}");

    let new_id = env.ok(&[
        "commit",
        "-m",
        "unit test commited image",
        "c1",
        "committed:v1",
    ]);
    let new_id = new_id.trim();
    assert_eq!(new_id.len(), 64);
    let img = env.inspect(new_id);
    // As Docker: the image is a config on top of the new layer, whose parent is the base.
    let layer = env.inspect(img["Parent"].as_str().unwrap());
    assert_eq!(layer["Parent"], format!("sha256:{}", env.image));
    assert_eq!(img["Comment"], "unit test commited image");
    let out = env.run(&["run", "-m", "32m", "committed:v1", "cat", "/world"]);
    assert_eq!(stdout(&out), "hello\n", "{}", stderr(&out));
    let out = env.run(&["run", "committed:v1", "ls", "/"]);
    assert_eq!(code(&out), 127, "ls was deleted in the committed layer");

    // rmi refuses an image a container uses.
    let out = env.run(&["rmi", new_id]);
    assert_ne!(code(&out), 0);

    // Export of a stopped container: the whole filesystem, mounted only for the export.
    let tar = env.path().join("export.tar");
    let file = std::fs::File::create(&tar).unwrap();
    let status = env
        .root
        .cmd()
        .args(["export", "c1"])
        .stdout(file)
        .status()
        .unwrap();
    assert!(status.success());
    let listing = Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
    let listing = stdout(&listing);
    assert!(
        listing
            .lines()
            .any(|l| l.trim_start_matches("./") == "world"),
        "{listing}"
    );
    assert!(
        listing
            .lines()
            .any(|l| l.trim_start_matches("./") == "bin/busybox"),
        "{listing}"
    );
    assert!(
        !listing
            .lines()
            .any(|l| l.trim_start_matches("./") == "bin/ls"),
        "{listing}"
    );
    env.assert_clean();
}

#[test]
fn commit_of_a_running_container_works() {
    let env = Env::new();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "live",
        "busybox",
        "sh",
        "-c",
        "echo x > /live; sleep 1000",
    ]);
    // The file is written right after start; wait for it via the container's own view.
    loop {
        let out = env.run(&["diff", "live"]);
        if stdout(&out).contains("A /live") {
            break;
        }
        std::thread::yield_now();
    }
    let id = env.ok(&["commit", "live", "fromlive"]);
    assert_eq!(env.ok(&["run", "--rm", "fromlive", "cat", "/live"]), "x\n");
    assert!(!id.trim().is_empty());
    env.ok(&["rm", "-f", "live"]);
    env.assert_clean();
}

#[test]
fn stdin_round_trip_and_again_after_a_restart() {
    let env = Env::new();
    let out = env.run_with_input(
        &["run", "-i", "--name", "cat", "busybox", "cat"],
        b"hello world",
    );
    assert_eq!(stdout(&out), "hello world", "{}", stderr(&out));
    assert_eq!(code(&out), 0);
    let out = env.run_with_input(&["start", "-a", "-i", "cat"], b"hello world #2");
    assert_eq!(stdout(&out), "hello world #2", "{}", stderr(&out));
    // Without -i the container's stdin is empty.
    let out = env.run_with_input(&["run", "busybox", "cat"], b"ignored");
    assert_eq!(stdout(&out), "");
    env.assert_clean();
}

#[test]
fn attach_to_a_detached_interactive_container() {
    let env = Env::new();
    env.ok(&[
        "run",
        "-d",
        "-i",
        "--name",
        "t",
        "busybox",
        "sh",
        "-c",
        "read line; echo got $line; exit 4",
    ]);
    let out = env.run_with_input(&["attach", "t"], b"ping\n");
    assert_eq!(stdout(&out), "got ping\n");
    assert_eq!(code(&out), 4);
    env.assert_clean();
}

#[test]
fn users_by_default_name_and_id() {
    let env = Env::new();
    let root = "uid=0(root) gid=0(root)";
    let daemon = "uid=1(daemon) gid=1(daemon)";
    assert!(env.ok(&["run", "busybox", "id"]).contains(root));
    for (user, want) in [
        ("root", root),
        ("0", root),
        ("1", daemon),
        ("daemon", daemon),
    ] {
        let out = env.run(&["run", "-u", user, "busybox", "id"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert!(stdout(&out).contains(want), "-u {user}: {}", stdout(&out));
    }
    let out = env.run(&["run", "-u", "nobody-here", "busybox", "id"]);
    assert_ne!(code(&out), 0);
}

#[test]
fn two_containers_at_once() {
    let env = Env::new();
    let a = env
        .ok(&["run", "-d", "busybox", "sleep", "1000"])
        .trim()
        .to_string();
    let b = env
        .ok(&["run", "-d", "busybox", "sleep", "1000"])
        .trim()
        .to_string();
    let running: BTreeSet<String> = lines(&env.ok(&["ps", "-q", "--no-trunc"]))
        .into_iter()
        .collect();
    assert_eq!(running, [a.clone(), b.clone()].into_iter().collect());
    assert_eq!(env.monitors().len(), 2);
    env.ok(&["kill", &a, &b]);
    assert_eq!(env.ok(&["ps", "-q"]), "");
    env.assert_clean();
}

#[test]
fn a_real_tty() {
    let env = Env::new();
    let dock = format!(
        "{} --root {} run -t busybox sh -c 'test -t 0 && test -t 1 && echo is-a-tty; echo TERM=$TERM; tty'",
        common::dock_bin(),
        env.path().display()
    );
    let out = Command::new("script")
        .args(["-qec", &dock, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(text.contains("is-a-tty"), "{text}");
    assert!(text.contains("TERM=xterm"), "{text}");
    // The terminal is the container's own, so `tty` can name it.
    assert!(text.contains("/dev/pts/0"), "{text}");
    let out = env.run(&["run", "busybox", "sh", "-c", "test -t 1 || echo no-tty"]);
    assert_eq!(stdout(&out), "no-tty\n");
    env.assert_clean();
}

#[test]
fn environment_is_exactly_home_and_path_plus_e() {
    let env = Env::new();
    let mut got = lines(&env.ok(&["run", "busybox", "env"]));
    got.sort();
    assert_eq!(
        got,
        [
            "HOME=/",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        ]
    );
    let mut got = lines(&env.ok(&[
        "run",
        "-e",
        "A=1",
        "-e",
        "A=2",
        "-e",
        "HOME=/root",
        "busybox",
        "env",
    ]));
    got.sort();
    assert_eq!(
        got,
        [
            "A=2",
            "HOME=/root",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        ]
    );
}

#[test]
fn memory_limit_is_set_and_enforced() {
    let env = Env::new();
    let id = env
        .ok(&["run", "-d", "-m", "32m", "busybox", "sleep", "1000"])
        .trim()
        .to_string();
    let limit_files: Vec<PathBuf> = env
        .cgroup_parents()
        .iter()
        .map(|d| d.join(&id))
        .flat_map(|d| [d.join("memory.limit_in_bytes"), d.join("memory.max")])
        .filter(|f| f.exists())
        .collect();
    assert!(!limit_files.is_empty(), "no memory limit file for {id}");
    for f in &limit_files {
        assert_eq!(
            std::fs::read_to_string(f).unwrap().trim(),
            "33554432",
            "{}",
            f.display()
        );
    }
    assert_eq!(env.inspect(&id)["HostConfig"]["Memory"], 33554432);
    env.ok(&["rm", "-f", &id]);

    // `tail` of an endless line keeps it all in memory: past the limit it is OOM-killed.
    let out = env.run(&[
        "run",
        "--name",
        "hog",
        "-m",
        "16m",
        "busybox",
        "tail",
        "/dev/zero",
    ]);
    assert_eq!(code(&out), 137, "{}", stderr(&out));
    let c = env.inspect("hog");
    assert_eq!(c["State"]["OOMKilled"], true);
    assert_eq!(c["State"]["ExitCode"], 137);
    env.assert_clean();
}

#[test]
fn isolation_pid_hostname_mounts_devices_and_proc() {
    let env = Env::new();
    let out = env.ok(&["run", "busybox", "sh", "-c", "echo $$"]);
    assert_eq!(out.trim(), "1");
    // Host processes are invisible: only the container's own are listed.
    let out = env.ok(&["run", "busybox", "sh", "-c", "ls /proc | grep -c '^[0-9]'"]);
    assert!(out.trim().parse::<u32>().unwrap() <= 3, "{out}");
    let id = env
        .ok(&["run", "-d", "busybox", "sh", "-c", "hostname; sleep 1000"])
        .trim()
        .to_string();
    env.ok(&["kill", &id]);
    assert_eq!(env.ok(&["logs", &id]).trim(), &id[..12]);
    assert_eq!(
        env.ok(&["run", "-h", "custom", "busybox", "hostname"])
            .trim(),
        "custom"
    );
    assert_ne!(
        code(&env.run(&["run", "busybox", "mount", "-t", "tmpfs", "none", "/tmp"])),
        0
    );
    // Devices outside the container's allow list cannot be created.
    assert_ne!(
        code(&env.run(&["run", "busybox", "mknod", "/tmp/mem", "c", "1", "1"])),
        0
    );
    assert_ne!(
        code(&env.run(&["run", "busybox", "mknod", "/tmp/sda", "b", "8", "0"])),
        0
    );
    assert_ne!(
        code(&env.run(&["run", "busybox", "sh", "-c", "head -c 1 /proc/kcore"])),
        0
    );
    env.assert_clean();
}

#[test]
fn stop_waits_the_timeout_then_kills_a_shell_ignoring_term() {
    let env = Env::new();
    let id = env
        .ok(&[
            "run",
            "-d",
            "busybox",
            "sh",
            "-c",
            "trap '' TERM; while true; do sleep 1; done",
        ])
        .trim()
        .to_string();
    assert_eq!(env.ok(&["stop", "-t", "1", &id[..12]]).trim(), &id[..12]);
    let c = env.inspect(&id);
    assert_eq!(c["State"]["Running"], false);
    assert_eq!(c["State"]["ExitCode"], 137);
    // A stopped container can be stopped again without error.
    env.ok(&["stop", &id]);
    env.assert_clean();
}

#[test]
fn rm_of_a_running_container_needs_force() {
    let env = Env::new();
    env.ok(&["run", "-d", "--name", "busy", "busybox", "sleep", "1000"]);
    let out = env.run(&["rm", "busy"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("busy"), "{}", stderr(&out));
    env.ok(&["rm", "-f", "busy"]);
    assert!(env.container_dirs().is_empty());
    // A --rm container removes itself when killed; rm -f still succeeds.
    env.ok(&[
        "run", "-d", "--rm", "--name", "gone", "busybox", "sleep", "1000",
    ]);
    env.ok(&["rm", "-f", "gone"]);
    assert!(env.container_dirs().is_empty());
    env.assert_clean();
}

#[test]
fn a_killed_monitor_leaves_no_ghost() {
    let env = Env::new();
    let id = env
        .ok(&["run", "-d", "busybox", "sleep", "1000"])
        .trim()
        .to_string();
    let c = env.inspect(&id);
    let init = c["State"]["Pid"].as_i64().unwrap() as i32;
    assert!(!env.mounts().is_empty());
    let monitors = env.monitors();
    assert_eq!(monitors.len(), 1);
    kill9(monitors[0]);
    wait_for_exit(monitors[0]);
    let ps = env.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (137)"), "{ps}");
    let c = env.inspect(&id);
    assert_eq!(c["State"]["Running"], false);
    assert!(env.mounts().is_empty(), "{:?}", env.mounts());
    assert!(env.cgroup_children().is_empty());
    let alive = std::fs::read_to_string(format!("/proc/{init}/stat"))
        .map(|s| !s.contains(") Z"))
        .unwrap_or(false);
    assert!(!alive, "the container's process survived");
    // And it can run again.
    env.ok(&["start", &id]);
    env.ok(&["kill", &id]);
    env.assert_clean();
}

#[test]
fn run_rm_leaves_nothing() {
    let env = Env::new();
    let left = || -> Vec<_> {
        std::fs::read_dir(env.path().join("containers"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .filter(|name| name != ".names.lock" && name != "_index")
            .collect()
    };
    assert_eq!(env.ok(&["run", "--rm", "busybox", "echo", "x"]), "x\n");
    // `run` deletes the directory while the monitor exits, and returns once both are done.
    assert!(left().is_empty(), "{:?}", left());
    // Output that cannot be written (stdout a pipe nobody reads): run fails, and the directory
    // goes all the same (run reads on for the exit frame; without it the monitor deletes).
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = env
        .cmd()
        .args(["run", "--rm", "busybox", "seq", "10"])
        .stdout(writer)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", stderr(&out));
    for monitor in env.monitors() {
        wait_for_exit(monitor);
    }
    assert!(left().is_empty(), "{:?}", left());
    // Nobody keeps what a `--rm` container writes, so its overlay skips syncing it
    // (`volatile`); a kept container's does not.
    let root_mount = "grep ' / / ' /proc/self/mountinfo";
    let rm = env.ok(&["run", "--rm", "busybox", "sh", "-c", root_mount]);
    assert!(rm.contains("fsync=volatile"), "{rm}");
    let kept = env.ok(&["run", "--name", "kept", "busybox", "sh", "-c", root_mount]);
    assert!(
        kept.contains(" overlay ") && !kept.contains("volatile"),
        "{kept}"
    );
    env.ok(&["rm", "kept"]);
    let out = env.run(&["run", "--rm", "busybox", "nope"]);
    assert_eq!(code(&out), 127);
    env.ok(&["run", "-d", "--rm", "busybox", "sleep", "1000"]);
    let monitors = env.monitors();
    assert_eq!(monitors.len(), 1);
    let id = lines(&env.ok(&["ps", "-q", "--no-trunc"]))[0].clone();
    env.ok(&["kill", &id]);
    // `kill` may return when the container is removed but its monitor has yet to exit (it
    // deletes the files of a container already out of the store).
    wait_for_exit(monitors[0]);
    assert!(left().is_empty(), "{:?}", left());
    env.assert_clean();
}

#[test]
fn a_removed_container_left_half_deleted_is_invisible_and_swept() {
    let env = Env::new();
    let id = env.ok(&["create", "busybox", "true"]).trim().to_string();
    let containers = env.path().join("containers");
    // What a `rm` or a --rm monitor killed while deleting leaves behind.
    std::fs::rename(
        containers.join(&id),
        containers.join(format!(".removed-{id}")),
    )
    .unwrap();
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    assert!(!containers.join(format!(".removed-{id}")).exists());
    assert!(code(&env.run(&["start", &id])) != 0);
}

/// Open descriptors of this process that point into `root` (other tests in this process open
/// and close their own pipes at any time, so only ours are counted).
fn fds_into(root: &Path) -> Vec<PathBuf> {
    let root = std::fs::canonicalize(root).unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|target| target.starts_with(&root))
        .collect()
}

#[test]
fn a_hundred_run_rm_cycles_leave_nothing_behind() {
    let env = Env::new();
    for i in 0..100 {
        let out = env.run(&["run", "busybox", "true"]);
        assert_eq!(code(&out), 0, "cycle {i}: {}", stderr(&out));
        let id = lines(&env.ok(&["ps", "-a", "-q", "--no-trunc"]));
        env.ok(&["rm", &id[0]]);
    }
    assert!(env.container_dirs().is_empty());
    env.assert_clean();
    assert_eq!(
        fds_into(env.path()),
        Vec::<PathBuf>::new(),
        "file descriptors left open"
    );
}

#[test]
fn an_image_of_forty_layers_mounts() {
    let env = Env::new();
    let mut image = "busybox".to_string();
    for i in 0..40 {
        let name = format!("l{i}");
        env.ok(&[
            "run",
            "--name",
            &name,
            &image,
            "touch",
            &format!("/layer{i}"),
        ]);
        image = env.ok(&["commit", &name]).trim().to_string();
        assert_eq!(image.len(), 64);
        env.ok(&["rm", &name]);
    }
    let history = env.ok(&["history", &image]);
    assert!(history.lines().count() > 40, "{history}");
    let out = env.run(&["run", "--rm", &image, "sh", "-c", "ls / | grep -c layer"]);
    assert_eq!(stdout(&out).trim(), "40", "{}", stderr(&out));
    env.assert_clean();
}

#[test]
fn logs_keep_streams_apart_and_follow_a_running_container() {
    let env = Env::new();
    env.ok(&[
        "run",
        "--name",
        "l",
        "busybox",
        "sh",
        "-c",
        "echo a; echo b >&2; echo c",
    ]);
    let out = env.run(&["logs", "l"]);
    assert_eq!(stdout(&out), "a\nc\n");
    assert_eq!(stderr(&out), "b\n");
    // The last entry of both streams together, with its timestamp.
    let out = env.run(&["logs", "-t", "--tail", "1", "l"]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains('T') && text.contains("Z "), "{text}");
    let c = env.inspect("l");
    let id = c["Id"].as_str().unwrap();
    let log = std::fs::read_to_string(
        env.path()
            .join("containers")
            .join(id)
            .join(format!("{id}-json.log")),
    )
    .unwrap();
    let first: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(first["log"], "a\n");
    assert_eq!(first["stream"], "stdout");
    assert!(first["time"].as_str().unwrap().ends_with('Z'));

    env.ok(&[
        "run",
        "-d",
        "-i",
        "--name",
        "f",
        "busybox",
        "sh",
        "-c",
        "echo first; read x; echo second",
    ]);
    let follow = env
        .root
        .cmd()
        .args(["logs", "-f", "f"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    env.run_with_input(&["attach", "f"], b"go\n");
    let out = follow.wait_with_output().unwrap();
    assert_eq!(stdout(&out), "first\nsecond\n");
    env.assert_clean();
}

#[test]
fn foreground_signals_are_forwarded() {
    let env = Env::new();
    let mut child = env
        .root
        .cmd()
        .args([
            "run",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got-term; exit 5' TERM; echo ready; while true; do sleep 1; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 6];
    std::io::Read::read_exact(&mut out, &mut buf).unwrap();
    assert_eq!(&buf, b"ready\n");
    // SAFETY: plain kill of our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(rest, "got-term\n");
    assert_eq!(status.code(), Some(5));
    env.assert_clean();
}

#[test]
fn clients_that_vanish_do_not_disturb_the_others() {
    let env = Env::new();
    env.ok(&[
        "run",
        "-d",
        "-i",
        "--name",
        "echo",
        "busybox",
        "sh",
        "-c",
        "while read l; do echo \"$l\"; done",
    ]);
    let follower = || {
        env.root
            .cmd()
            .args(["logs", "-f", "echo"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut gone = [follower(), follower()];
    let kept = follower();
    for child in &mut gone {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let out = env.run_with_input(&["attach", "echo"], b"one\ntwo\n");
    assert_eq!(stdout(&out), "one\ntwo\n");
    assert_eq!(code(&out), 0);
    let kept = kept.wait_with_output().unwrap();
    assert_eq!(stdout(&kept), "one\ntwo\n");
    env.assert_clean();
}
