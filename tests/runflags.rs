//! `run`/`create` flags real images need: restart policies (in the monitor, and under `dock
//! daemon` after a monitor was killed), `--pids-limit`, `--read-only`, `--cpus`,
//! `--cpu-shares`, `--memory-swap`, `--env-file`, `--label`, `--init`, `--stop-timeout`,
//! `-a`, `--network host`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;

/// Polls `done` until it holds; gives up (failing the test) after a generous bound. Not a
/// timing assertion: only a guard against hanging forever.
/// The container's stored state (what inspect does not show: its monitor, the stop flag).
fn stored(root: &DockRoot, id: &str) -> runtime::Container {
    runtime::Runtime::open(root.path())
        .unwrap()
        .get(id)
        .unwrap()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1200 {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("gave up waiting until {what}");
}

/// `dock daemon` on a socket under the root, killed when dropped.
struct Daemon(Child);

impl Daemon {
    fn start(root: &DockRoot) -> Daemon {
        let socket = root.path().join("api.sock");
        let child = root
            .cmd()
            .args(["daemon", "-H"])
            .arg(format!("unix://{}", socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until("the daemon listens", || socket.exists());
        Daemon(child)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn on_failure_restarts_a_failing_command_exactly_n_times() {
    let root = DockRoot::with_busybox();
    let id = root.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo ran; exit 3",
    ]);
    let id = id.trim();
    wait_until("the restarts are over", || {
        let c = root.inspect(id);
        c["State"]["Running"] == false
    });
    let c = root.inspect(id);
    assert_eq!(c["RestartCount"], 2, "{c}");
    assert_eq!(c["State"]["ExitCode"], 3);
    assert_eq!(c["State"]["Restarting"], false);
    assert_eq!(c["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(c["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 2);
    let logs = root.ok(&["logs", id]);
    assert_eq!(logs.matches("ran").count(), 3, "{logs}");
    // Nothing of the three runs is left.
    assert!(root.mounts().is_empty(), "{:?}", root.mounts());
    assert!(
        root.container_cgroups().is_empty(),
        "{:?}",
        root.container_cgroups()
    );
    // A user's start counts again from zero.
    root.ok(&["start", id]);
    wait_until("the second round of restarts is over", || {
        root.inspect(id)["State"]["Running"] == false
    });
    assert_eq!(root.inspect(id)["RestartCount"], 2);
}

#[test]
fn restart_policies_are_checked_with_dockers_words() {
    let root = DockRoot::with_busybox();
    for (flags, message) in [
        (
            &["--restart", "bogus"][..],
            "invalid restart policy: unknown policy 'bogus'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'",
        ),
        (
            &["--restart", "on-failure:x"],
            "invalid restart policy: maximum retry count must be an integer",
        ),
        (
            &["--restart", "always:3"],
            "invalid restart policy: maximum retry count can only be used with 'on-failure'",
        ),
        (&["--restart", "always", "--rm"], "Conflicting options: --restart and --rm"),
    ] {
        let mut args = vec!["create"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "true"]);
        let out = root.run(&args);
        assert_eq!(code(&out), 125, "{flags:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{flags:?}: {}", stderr(&out));
    }
}

#[test]
fn always_comes_back_under_the_daemon_after_its_monitor_is_killed() {
    let root = DockRoot::with_busybox();
    let _daemon = Daemon::start(&root);
    let id = root.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "1000",
    ]);
    let id = id.trim();
    let first = root.inspect(id);
    assert_eq!(first["State"]["Running"], true);
    let monitor = stored(&root, id).monitor.unwrap().pid;
    kill9(monitor);
    wait_for_exit(monitor);
    wait_until("the daemon started it again", || {
        let c = root.inspect(id);
        c["State"]["Running"] == true
            && stored(&root, id).monitor.map(|m| m.pid) != Some(monitor)
            && c["RestartCount"] == 1
    });
    let c = root.inspect(id);
    assert_ne!(c["State"]["Pid"], first["State"]["Pid"]);
    // A stop is the user's: it stays stopped, and the daemon leaves it so.
    root.ok(&["stop", "-t", "1", id]);
    let c = root.inspect(id);
    assert_eq!(c["State"]["Running"], false);
    assert!(stored(&root, id).has_been_manually_stopped);
}

#[test]
fn always_restarts_in_its_monitor_until_stopped() {
    let root = DockRoot::with_busybox();
    let id = root.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "echo up",
    ]);
    let id = id.trim();
    wait_until("it restarted twice", || {
        root.inspect(id)["RestartCount"].as_i64() >= Some(2)
    });
    let status = root.ok(&["ps", "-a"]);
    assert!(status.contains(id.get(..12).unwrap()), "{status}");
    root.ok(&["stop", id]);
    let c = root.inspect(id);
    assert_eq!(c["State"]["Running"], false, "{c}");
    assert_eq!(c["State"]["Restarting"], false);
    assert!(root.mounts().is_empty(), "{:?}", root.mounts());
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    let root = DockRoot::with_busybox();
    // A bounded fork bomb: a subshell forks a hundred sleepers, and dies at the first fork
    // the limit refuses; counting /proc then needs no fork (a glob).
    let out = root.busybox_sh(
        &["--pids-limit", "20"],
        "(n=0; while [ $n -lt 100 ]; do sleep 1000 & n=$((n+1)); done); \
         set -- /proc/[0-9]*; echo procs $#",
    );
    let text = stdout(&out);
    let procs: usize = text
        .trim()
        .strip_prefix("procs ")
        .unwrap_or_else(|| panic!("{text}\n{}", stderr(&out)))
        .parse()
        .unwrap();
    assert!(procs <= 20, "{procs} processes under --pids-limit 20");
    assert!(stderr(&out).contains("fork"), "{}", stderr(&out));
    assert!(
        root.container_cgroups().is_empty(),
        "{:?}",
        root.container_cgroups()
    );
}

/// The container's cgroup directory of `controller` (v1) or its cgroup2 dir.
fn cgroup_dir(root: &DockRoot, controller: &str, id: &str) -> PathBuf {
    let v1 = Path::new("/sys/fs/cgroup").join(controller);
    let base = if v1.is_dir() {
        v1
    } else {
        PathBuf::from("/sys/fs/cgroup")
    };
    base.join(root.cgroup_parent()).join(id)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

#[test]
fn cpu_and_pids_limits_land_in_the_cgroup() {
    let root = DockRoot::with_busybox();
    let id = root.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--cpus",
        "1.5",
        "--cpu-shares",
        "512",
        "--pids-limit",
        "50",
        "busybox",
        "sleep",
        "1000",
    ]);
    let id = id.trim();
    let cpu = cgroup_dir(&root, "cpu", id);
    if cpu.join("cpu.cfs_quota_us").exists() {
        assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "150000");
        assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "100000");
        assert_eq!(read(&cpu.join("cpu.shares")), "512");
    } else {
        assert_eq!(read(&cpu.join("cpu.max")), "150000 100000");
        assert_eq!(read(&cpu.join("cpu.weight")), "20");
    }
    assert_eq!(read(&cgroup_dir(&root, "pids", id).join("pids.max")), "50");
    let c = root.inspect(id);
    assert_eq!(c["HostConfig"]["NanoCpus"], 1_500_000_000i64);
    assert_eq!(c["HostConfig"]["CpuShares"], 512);
    assert_eq!(c["HostConfig"]["PidsLimit"], 50);
    root.ok(&["rm", "-f", id]);
    assert!(
        root.container_cgroups().is_empty(),
        "{:?}",
        root.container_cgroups()
    );

    let out = root.run(&["create", "--cpus", "100000", "busybox", "true"]);
    assert_eq!(code(&out), 125);
    assert!(
        stderr(&out).contains("Range of CPUs is from 0.01 to"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn memory_swap_is_enforced_or_refused() {
    let root = DockRoot::with_busybox();
    let out = root.run(&["create", "--memory-swap", "128m", "busybox", "true"]);
    assert_eq!(code(&out), 125);
    assert!(
        stderr(&out).contains("You should always set the Memory limit when using Memoryswap limit"),
        "{}",
        stderr(&out)
    );
    let out = root.run(&[
        "create",
        "-m",
        "64m",
        "--memory-swap",
        "32m",
        "busybox",
        "true",
    ]);
    assert_eq!(code(&out), 125);
    assert!(stderr(&out).contains("Minimum memoryswap limit should be larger than memory limit"));

    let memory = cgroup_dir(&root, "memory", "x");
    let memsw_supported = memory
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("memory.memsw.limit_in_bytes")
        .exists();
    let out = root.run(&[
        "run",
        "-d",
        "--network",
        "none",
        "-m",
        "64m",
        "--memory-swap",
        "128m",
        "busybox",
        "sleep",
        "1000",
    ]);
    if !memsw_supported {
        assert_eq!(code(&out), 125);
        assert!(stderr(&out).contains("swap limit"), "{}", stderr(&out));
        return;
    }
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out);
    let dir = cgroup_dir(&root, "memory", id.trim());
    assert_eq!(
        read(&dir.join("memory.memsw.limit_in_bytes")),
        (128u64 << 20).to_string()
    );
    assert_eq!(
        read(&dir.join("memory.limit_in_bytes")),
        (64u64 << 20).to_string()
    );
    root.ok(&["rm", "-f", id.trim()]);
}

#[test]
fn read_only_keeps_the_rootfs_from_writes_but_not_dev_shm() {
    let root = DockRoot::with_busybox();
    let out = root.busybox_sh(
        &["--read-only", "-w", "/made/by/workdir"],
        "touch /x 2>&1; touch /tmp/x 2>&1; touch /dev/shm/ok && echo shm ok; \
         echo > /dev/null && echo dev ok; pwd",
    );
    let text = stdout(&out);
    assert_eq!(text.matches("Read-only file system").count(), 2, "{text}");
    assert!(text.contains("shm ok"), "{text}");
    assert!(text.contains("dev ok"), "{text}");
    assert!(text.contains("/made/by/workdir"), "{text}");
    // Without it, / is writable.
    let out = root.busybox_sh(&[], "touch /x && echo wrote");
    assert_eq!(stdout(&out).trim(), "wrote");
}

#[test]
fn env_files_and_labels() {
    let root = DockRoot::with_busybox();
    let file = root.path().join("env.list");
    std::fs::write(&file, "# settings\nA=from file\nB=also from file\n").unwrap();
    let out = root.busybox_sh(
        &["--env-file", file.to_str().unwrap(), "-e", "B=from flag"],
        "echo \"$A|$B\"",
    );
    assert_eq!(
        stdout(&out).trim(),
        "from file|from flag",
        "{}",
        stderr(&out)
    );
    let out = root.run(&[
        "create",
        "--env-file",
        "/nonexistent/env",
        "busybox",
        "true",
    ]);
    assert_eq!(code(&out), 125);
    assert!(
        stderr(&out).contains("/nonexistent/env"),
        "{}",
        stderr(&out)
    );

    let id = root.ok(&[
        "create", "-l", "app=web", "--label", "tier", "busybox", "true",
    ]);
    let id = id.trim();
    let c = root.inspect(id);
    assert_eq!(
        c["Config"]["Labels"],
        serde_json::json!({"app": "web", "tier": ""})
    );
    let short = &id[..12];
    assert_eq!(
        root.ok(&["ps", "-aq", "--filter", "label=app=web"]).trim(),
        short
    );
    assert_eq!(
        root.ok(&["ps", "-aq", "--filter", "label=tier"]).trim(),
        short
    );
    assert_eq!(
        root.ok(&["ps", "-aq", "--filter", "label=app=db"]).trim(),
        ""
    );
}

#[test]
fn init_is_pid_1_reaps_orphans_and_passes_signals_and_exit_codes() {
    let root = DockRoot::with_busybox();
    // An orphan: its parent exits at once, so it is PID 1's to reap once it exits.
    let out = root.busybox_sh(
        &["--init"],
        "cat /proc/1/comm; echo self $$; \
         sh -c 'true & echo $! > /tmp/orphan'; p=$(cat /tmp/orphan); \
         i=0; while [ -e /proc/$p ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; \
         [ -e /proc/$p ] && echo orphan left || echo orphan reaped; exit 7",
    );
    let text = stdout(&out);
    assert_eq!(code(&out), 7, "{text}{}", stderr(&out));
    let lines = lines(&text);
    assert_eq!(lines[0], "dock-init");
    assert_ne!(lines[1], "self 1", "the command is not PID 1 under --init");
    assert_eq!(lines[2], "orphan reaped", "{text}");

    // Signals go to the command: `stop` reaches its trap.
    let id = root.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--init",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 42' TERM; while :; do sleep 0.05; done",
    ]);
    let id = id.trim();
    root.ok(&["stop", id]);
    assert_eq!(root.inspect(id)["State"]["ExitCode"], 42);
    assert_eq!(root.inspect(id)["HostConfig"]["Init"], true);
}

#[test]
fn stop_uses_the_containers_stop_timeout() {
    let root = DockRoot::with_busybox();
    let script = "trap 'exit 42' TERM; while :; do sleep 0.05; done";
    // The default grace period lets the trap run.
    let graceful = root.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    root.ok(&["stop", graceful.trim()]);
    assert_eq!(root.inspect(graceful.trim())["State"]["ExitCode"], 42);
    // --stop-timeout 0: SIGKILL right after the stop signal, with no grace.
    let hasty = root.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--stop-timeout",
        "0",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    let c = root.inspect(hasty.trim());
    assert_eq!(c["Config"]["StopTimeout"], 0);
    root.ok(&["stop", hasty.trim()]);
    assert_eq!(root.inspect(hasty.trim())["State"]["ExitCode"], 137);
}

#[test]
fn attach_names_the_streams_run_shows() {
    let root = DockRoot::with_busybox();
    let script = "echo to-out; echo to-err >&2";
    let out = root.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-a",
        "stdout",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(stdout(&out).trim(), "to-out");
    assert!(!stderr(&out).contains("to-err"), "{}", stderr(&out));
    let out = root.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-a",
        "STDERR",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(stdout(&out).trim(), "");
    assert!(stderr(&out).contains("to-err"), "{}", stderr(&out));
    let out = root.run(&["run", "-d", "-a", "stdout", "busybox", "true"]);
    assert_eq!(code(&out), 125);
    assert!(stderr(&out).contains("Conflicting options: -a and -d"));
}

#[test]
fn network_host_shares_the_hosts_network_namespace() {
    let root = DockRoot::with_busybox();
    let host_ns = std::fs::read_link("/proc/self/ns/net").unwrap();
    let out = root.run(&[
        "run",
        "--rm",
        "--network",
        "host",
        "-p",
        "8080:80",
        "busybox",
        "sh",
        "-c",
        "readlink /proc/self/ns/net; hostname",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines = lines(&text);
    assert_eq!(lines[0], host_ns.to_string_lossy());
    let mut name = [0u8; 256];
    // SAFETY: gethostname into our buffer.
    unsafe { libc::gethostname(name.as_mut_ptr().cast(), name.len()) };
    let end = name.iter().position(|b| *b == 0).unwrap();
    assert_eq!(lines[1], String::from_utf8_lossy(&name[..end]));
    assert!(
        stderr(&out)
            .contains("WARNING: Published ports are discarded when using host network mode"),
        "{}",
        stderr(&out)
    );
    // No bridge was made for it.
    let cfg = runtime::Runtime::open(root.path())
        .unwrap()
        .net_config()
        .unwrap();
    assert!(!Path::new("/sys/class/net").join(&cfg.bridge).exists());
}
