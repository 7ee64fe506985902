//! Runtime polish, end to end with the real `dock` binary on private roots: the init layer
//! keeps dock's own mount points out of `diff` and `commit` (but not out of `export`), and no
//! container's cgroup outlives it, however it ends (the root's parent stays). Containers run with
//! `--network none`: these tests are about storage and cgroups. Every test owns an [`Env`] whose
//! [`DockRoot`] kills monitors and containers, removes the root's cgroups and unmounts what is
//! left on drop.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{kill9, stderr, stdout, wait_for_exit, DockRoot};

struct Env {
    root: DockRoot,
}

impl Env {
    /// A root with the busybox fixture (which has /etc, /proc, /sys, /dev) as `busybox`.
    fn new() -> Env {
        Env {
            root: DockRoot::with_busybox(),
        }
    }

    fn id_of(&self, name: &str) -> String {
        self.inspect(name)["Id"].as_str().unwrap().to_string()
    }

    /// `dock diff NAME`, one line per change.
    fn diff(&self, name: &str) -> Vec<String> {
        self.ok(&["diff", name])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Lists a tar file's entries without `./` and trailing `/`.
    fn tar_entries(&self, tar: &Path) -> Vec<String> {
        let out = Command::new("tar").arg("-tf").arg(tar).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
            .lines()
            .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_string())
            .filter(|l| !l.is_empty() && l != ".")
            .collect()
    }

    fn export(&self, name: &str) -> Vec<String> {
        let tar = self.path().join(format!("{name}.tar"));
        let file = std::fs::File::create(&tar).unwrap();
        let status = self
            .root
            .cmd()
            .args(["export", name])
            .stdout(file)
            .status()
            .unwrap();
        assert!(status.success());
        let entries = self.tar_entries(&tar);
        std::fs::remove_file(&tar).unwrap();
        entries
    }
}

/// The guard is the root: an `Env` is a root with the busybox fixture.
impl std::ops::Deref for Env {
    type Target = DockRoot;

    fn deref(&self) -> &DockRoot {
        &self.root
    }
}

/// Imports an image holding nothing but busybox in /bin: no /etc, /proc, /sys, /dev or /tmp.
fn import_bare(env: &Env, name: &str) {
    let rootfs = env.path().join("bare-rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for applet in ["sh", "cat", "ls", "test", "true", "mkdir"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    let tar = env.path().join("bare.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    env.ok(&["import", tar.to_str().unwrap(), name]);
    std::fs::remove_dir_all(&rootfs).unwrap();
    std::fs::remove_file(&tar).unwrap();
}

/// The layer a commit made: the parent of the image config entry `commit` printed.
fn committed_layer(root: &Path, image: &str) -> std::path::PathBuf {
    let graph = graph::Graph::open(root.join("graph")).unwrap();
    let parent = graph.get(image).unwrap().parent.unwrap();
    graph.layer_path(&parent)
}

/// Entries of a directory tree, relative and sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            out.push(
                path.strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
            if entry.file_type().unwrap().is_dir() {
                walk(base, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn an_image_without_mount_points_shows_only_what_the_container_wrote() {
    let env = Env::new();
    import_bare(&env, "bare");
    let none = "--network=none";
    env.ok(&[
        "run",
        none,
        "--name",
        "w",
        "bare",
        "sh",
        "-c",
        "echo hi > /greeting",
    ]);
    assert_eq!(env.diff("w"), ["A /greeting"]);

    // The mount points are there for the container all the same.
    let checks = "test -f /proc/self/status && test -d /sys/kernel && test -c /dev/null \
                  && test -d /dev/pts && test -f /etc/resolv.conf && echo ok";
    assert_eq!(
        env.ok(&["run", none, "--name", "m", "bare", "sh", "-c", checks]),
        "ok\n"
    );
    assert_eq!(env.diff("m"), Vec::<String>::new());
    if let Ok(host) = std::fs::read_to_string("/etc/resolv.conf") {
        let out = env.ok(&["run", none, "--rm", "bare", "cat", "/etc/resolv.conf"]);
        assert_eq!(
            out,
            runtime::etcfiles::resolv_conf(&host, &[], &[]),
            "the host's resolv.conf (without loopback nameservers) is bound over the init layer's"
        );
    }

    // Commit captures only the upper dir.
    let image = env.ok(&["commit", "w", "greeted"]).trim().to_string();
    let layer = committed_layer(env.path(), &image);
    assert_eq!(tree(&layer), ["greeting"]);
    let out = env.run(&["run", none, "--name", "g", "greeted", "cat", "/greeting"]);
    assert_eq!(stdout(&out), "hi\n", "{}", stderr(&out));
    assert_eq!(env.diff("g"), Vec::<String>::new());

    // Export is the whole tree the container saw: the mount points are empty entries in it.
    let entries = env.export("w");
    for want in [
        "greeting",
        "bin/busybox",
        "proc",
        "sys",
        "dev",
        "etc",
        "etc/resolv.conf",
    ] {
        assert!(
            entries.iter().any(|e| e == want),
            "{want} not in {entries:?}"
        );
    }
    assert!(
        !entries
            .iter()
            .any(|e| e.starts_with("proc/") || e.starts_with("dev/")),
        "{entries:?}"
    );
}

#[test]
fn an_image_with_the_mount_points_gets_docker_s_diff_lines_and_a_clean_commit() {
    let env = Env::new();
    let none = "--network=none";
    env.ok(&[
        "run",
        none,
        "--name",
        "root",
        "busybox",
        "sh",
        "-c",
        "echo hi > /greeting",
    ]);
    assert_eq!(env.diff("root"), ["A /greeting"]);
    env.ok(&[
        "run",
        none,
        "--name",
        "tmp",
        "busybox",
        "sh",
        "-c",
        "echo x > /tmp/x",
    ]);
    assert_eq!(env.diff("tmp"), ["C /tmp", "A /tmp/x"]);
    env.ok(&[
        "run",
        none,
        "--name",
        "etc",
        "busybox",
        "sh",
        "-c",
        "echo x > /etc/motd",
    ]);
    assert_eq!(env.diff("etc"), ["C /etc", "A /etc/motd"]);

    // The fixture has /etc, /proc, /sys and /dev: only the /etc files the container gets
    // its own of are added beneath them.
    let id = env.id_of("root");
    let init = env.path().join("containers").join(&id).join("init");
    assert_eq!(
        tree(&init),
        ["etc", "etc/hostname", "etc/hosts", "etc/resolv.conf"]
    );

    let image = env.ok(&["commit", "tmp", "withtmp"]).trim().to_string();
    let layer = committed_layer(env.path(), &image);
    assert_eq!(tree(&layer), ["tmp", "tmp/x"]);
    assert_eq!(
        env.ok(&["run", none, "--rm", "withtmp", "cat", "/tmp/x"]),
        "x\n"
    );
}

#[test]
fn a_containers_cgroups_go_however_it_ends_and_the_roots_parent_stays() {
    let env = Env::new();
    let none = "--network=none";
    // A normal exit.
    env.ok(&["run", none, "busybox", "true"]);
    assert_eq!(env.container_cgroups(), Vec::<PathBuf>::new());
    // The root's parent is made once and stays for the next container (as Docker's does).
    assert!(!env.cgroup_parents().is_empty());

    // Killed.
    let id = env.ok(&["run", none, "-d", "busybox", "sleep", "1000"]);
    assert!(
        !env.container_cgroups().is_empty(),
        "a running container has a cgroup"
    );
    // The container is in its cgroup (memory, devices, pids), its monitor is not.
    let c: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", id.trim()])).unwrap();
    let init = c[0]["State"]["Pid"].as_i64().unwrap();
    let own = format!("/{}/{}", env.cgroup_parent(), id.trim());
    let cgroups = std::fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap();
    for controller in ["memory", "devices", "pids"] {
        assert!(
            cgroups
                .lines()
                .any(|l| l.split(':').nth(1) == Some(controller) && l.ends_with(&own)),
            "{controller} {own} not in {cgroups}"
        );
    }
    let monitors = env.monitors();
    assert_eq!(monitors.len(), 1);
    let cgroups = std::fs::read_to_string(format!("/proc/{}/cgroup", monitors[0])).unwrap();
    assert!(!cgroups.contains(&env.cgroup_parent()), "{cgroups}");
    env.ok(&["kill", id.trim()]);
    assert_eq!(env.container_cgroups(), Vec::<PathBuf>::new());

    // --rm, killed: the monitor may still be exiting when kill returns.
    let id = env.ok(&["run", none, "-d", "--rm", "busybox", "sleep", "1000"]);
    let monitors = env.monitors();
    env.ok(&["kill", id.trim()]);
    for pid in monitors {
        wait_for_exit(pid);
    }
    assert_eq!(env.container_cgroups(), Vec::<PathBuf>::new());

    // A monitor killed with SIGKILL: the next command reaps the ghost and its cgroup.
    let id = env.ok(&["run", none, "-d", "busybox", "sleep", "1000"]);
    let monitors = env.monitors();
    assert_eq!(monitors.len(), 1);
    kill9(monitors[0]);
    wait_for_exit(monitors[0]);
    let ps = env.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (137)"), "{ps}");
    assert_eq!(env.container_cgroups(), Vec::<PathBuf>::new());

    // Two at once: the parent stays while one still runs.
    let first = env.ok(&["run", none, "-d", "busybox", "sleep", "1000"]);
    let second = env.ok(&["run", none, "-d", "busybox", "sleep", "1000"]);
    env.ok(&["kill", first.trim()]);
    assert!(
        !env.container_cgroups().is_empty(),
        "the second container's cgroup went"
    );
    let out = env.ok(&["inspect", second.trim()]);
    let state: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(state[0]["State"]["Running"], true);
    env.ok(&["kill", second.trim()]);
    assert_eq!(env.container_cgroups(), Vec::<PathBuf>::new());
    env.ok(&["rm", id.trim()]);
    assert!(env.mounts().is_empty(), "{:?}", env.mounts());
}

#[test]
fn ten_concurrent_runs_on_one_root_all_succeed_and_leave_no_container_cgroup() {
    let env = Env::new();
    for round in 0..3 {
        let children: Vec<_> = (0..10)
            .map(|i| {
                env.root
                    .cmd()
                    .args(["run", "--rm", "--network=none", "busybox", "echo"])
                    .arg(format!("{round}-{i}"))
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for (i, child) in children.into_iter().enumerate() {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "run {round}-{i}: {}", stderr(&out));
            assert_eq!(stdout(&out), format!("{round}-{i}\n"));
        }
        // Each monitor exits right after its client returns.
        for pid in env.monitors() {
            wait_for_exit(pid);
        }
        assert_eq!(env.container_cgroups(), Vec::<PathBuf>::new());
        assert_eq!(env.container_dirs(), Vec::<String>::new());
    }
    assert!(env.mounts().is_empty(), "{:?}", env.mounts());
}
