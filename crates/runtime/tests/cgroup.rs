//! cgroup tests: v2 and v1 on fixture directories, then the real hierarchy of this machine (root):
//! limits and joining, a real OOM kill, the device allow list, and cleanup after a crash.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use runtime::cgroup::{Cgroup, CgroupError, Hierarchy, Limits, Version};

const MIB: i64 = 1024 * 1024;

/// Removes the test's cgroup and its parent in every hierarchy, even when the test failed.
struct CgroupGuard {
    hierarchy: Hierarchy,
    parent: String,
    id: String,
}

impl CgroupGuard {
    fn new(hierarchy: Hierarchy, test: &str) -> CgroupGuard {
        CgroupGuard {
            hierarchy,
            parent: format!("dock-test-{}-{test}", std::process::id()),
            id: format!("c-{test}"),
        }
    }
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        let _ = Cgroup::open_in(&self.hierarchy, &self.parent, &self.id).remove();
        let _ = self.hierarchy.remove_parent(&self.parent);
    }
}

/// Kills and reaps a spawned process, even when the test failed.
struct ChildGuard(Option<Child>);

impl ChildGuard {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child not taken")
    }

    fn pid(&mut self) -> i32 {
        self.child().id() as i32
    }

    /// Hands the process over for `wait_with_output`.
    fn take(&mut self) -> Child {
        self.0.take().expect("child not taken")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `sh -c 'read x; <then>'`: waits for a line on stdin before running `then`, so the test can
/// move it into the cgroup first.
fn spawn_waiting(then: &str) -> ChildGuard {
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!("read x; {then}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    ChildGuard(Some(child))
}

fn release(child: &mut ChildGuard) {
    let mut stdin = child.child().stdin.take().expect("stdin piped");
    stdin.write_all(b"go\n").expect("write to child stdin");
}

fn read(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

fn procs(dir: &Path) -> Vec<i32> {
    read(&dir.join("cgroup.procs"))
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

// ---- fixtures ----

#[test]
fn v2_fixture_create_limits_join_oom_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let hierarchy = Hierarchy::V2 { root: root.clone() };
    let dir = root.join("dock").join("abc");
    // Swap accounting exists when memory.swap.max does; the kernel would provide it.
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("memory.swap.max"), "max").unwrap();

    let limits = Limits {
        memory: Some(512 * MIB),
        memory_swap: Some(768 * MIB),
        ..Limits::default()
    };
    let cgroup = Cgroup::create_in(&hierarchy, "dock", "abc", &limits).unwrap();
    assert_eq!(cgroup.version(), Version::V2);
    assert_eq!(cgroup.paths(), std::slice::from_ref(&dir));
    assert_eq!(read(&dir.join("memory.max")), "536870912");
    // v2 counts swap alone: 768 MiB total minus 512 MiB memory.
    assert_eq!(read(&dir.join("memory.swap.max")), (256 * MIB).to_string());
    assert_eq!(
        read(&root.join("cgroup.subtree_control")),
        "+cpu +memory +pids"
    );
    assert_eq!(
        read(&root.join("dock").join("cgroup.subtree_control")),
        "+cpu +memory +pids"
    );

    // The limit lies in the container's cgroup, its processes one level down.
    let leaf = dir.join("container");
    assert_eq!(cgroup.process_paths(), std::slice::from_ref(&leaf));
    cgroup.add_pid(4242).unwrap();
    assert_eq!(procs(&leaf), [4242]);
    assert!(matches!(cgroup.add_pid(0), Err(CgroupError::InvalidPid(0))));

    assert!(!cgroup.oom_killed(), "no memory.events yet");
    fs::write(
        dir.join("memory.events"),
        "low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n",
    )
    .unwrap();
    assert!(!cgroup.oom_killed());
    fs::write(
        dir.join("memory.events"),
        "low 0\nhigh 0\nmax 9\noom 2\noom_kill 1\n",
    )
    .unwrap();
    assert!(cgroup.oom_killed());

    // The kernel empties cgroup.procs once the processes are gone; pid 4242 is not ours.
    fs::write(leaf.join("cgroup.procs"), "").unwrap();
    cgroup.remove().unwrap();
    assert!(!dir.exists());
    assert!(root.join("dock").exists(), "the shared parent stays");
    cgroup.remove().unwrap();
    // cgroupfs has no removable files; in the fixture the parent's control file is a real one.
    fs::remove_file(root.join("dock").join("cgroup.subtree_control")).unwrap();
    hierarchy.remove_parent("dock").unwrap();
    assert!(!root.join("dock").exists());
}

#[test]
fn v2_fixture_default_and_unlimited_swap() {
    let tmp = tempfile::tempdir().unwrap();
    let hierarchy = Hierarchy::V2 {
        root: tmp.path().to_path_buf(),
    };
    for (id, swap, expected) in [
        ("twice", None, (64 * MIB).to_string()),
        ("unlimited", Some(-1), "max".to_string()),
    ] {
        let dir = tmp.path().join("dock").join(id);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("memory.swap.max"), "max").unwrap();
        let limits = Limits {
            memory: Some(64 * MIB),
            memory_swap: swap,
            ..Limits::default()
        };
        Cgroup::create_in(&hierarchy, "dock", id, &limits).unwrap();
        assert_eq!(read(&dir.join("memory.swap.max")), expected, "{id}");
    }
    // Without swap accounting only memory.max is written.
    let limits = Limits {
        memory: Some(64 * MIB),
        memory_swap: None,
        ..Limits::default()
    };
    let cgroup = Cgroup::create_in(&hierarchy, "dock", "noswap", &limits).unwrap();
    assert!(!cgroup.paths()[0].join("memory.swap.max").exists());
    assert_eq!(
        read(&cgroup.paths()[0].join("memory.max")),
        (64 * MIB).to_string()
    );
}

fn v1_fixture(root: &Path) -> Hierarchy {
    let controllers: BTreeMap<String, PathBuf> = ["memory", "devices", "pids", "cpuset"]
        .iter()
        .map(|c| (c.to_string(), root.join(c)))
        .collect();
    Hierarchy::V1 {
        controllers,
        unified: Some(root.join("unified")),
    }
}

#[test]
fn v1_fixture_memory_devices_join_oom() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let hierarchy = v1_fixture(root);
    let memory = root.join("memory/dock/abc");
    fs::create_dir_all(&memory).unwrap();
    fs::write(
        memory.join("memory.memsw.limit_in_bytes"),
        "9223372036854771712",
    )
    .unwrap();

    let limits = Limits {
        memory: Some(512 * MIB),
        memory_swap: None,
        ..Limits::default()
    };
    let cgroup = Cgroup::create_in(&hierarchy, "dock", "abc", &limits).unwrap();
    assert_eq!(cgroup.version(), Version::V1);
    // Every hierarchy, so that no cgroup namespace of the container is rooted at the host's:
    // each v1 mount and the cgroup2 mount without controllers.
    let joined = ["cpuset", "devices", "memory", "pids", "unified"];
    assert_eq!(
        cgroup.paths(),
        joined.map(|c| root.join(c).join("dock/abc"))
    );
    // The memory limit's files stay out of the container's reach.
    let mut expected = joined.map(|c| root.join(c).join("dock/abc"));
    expected[2] = memory.join("container");
    assert_eq!(cgroup.process_paths(), expected);
    assert_eq!(read(&memory.join("memory.limit_in_bytes")), "536870912");
    assert_eq!(
        read(&memory.join("memory.memsw.limit_in_bytes")),
        "1073741824"
    );
    assert_eq!(
        read(&memory.join("memory.soft_limit_in_bytes")),
        "536870912"
    );
    let devices = root.join("devices/dock/abc");
    assert_eq!(read(&devices.join("devices.deny")), "a");
    // One write per rule: a fixture file holds them run together; the real tests check what
    // they allow.
    assert_eq!(
        read(&devices.join("devices.allow")),
        "c 1:3 rwmc 1:5 rwmc 1:7 rwmc 1:8 rwmc 1:9 rwmc 5:0 rwmc 5:2 rwmc 136:* rwm"
    );

    cgroup.add_pid(777).unwrap();
    for dir in cgroup.process_paths() {
        assert_eq!(procs(&dir), [777], "{}", dir.display());
    }
    // The container's first process joins by itself: born in the cgroup2 directory, and
    // through each v1 `tasks` file, named below its hierarchy's root.
    let joining = cgroup.joining().unwrap();
    assert!(joining.unified.is_some());
    assert_eq!(joining.v1_tasks.len(), 4);
    for (tasks, dir) in joining.v1_tasks.iter().zip(&cgroup.process_paths()) {
        assert_eq!(tasks.path, dir.join("tasks"));
        let root = fs::read_link(format!("/proc/self/fd/{}", tasks.dir.as_raw_fd())).unwrap();
        assert_eq!(root.join(&tasks.relative), tasks.path);
    }

    fs::write(
        memory.join("memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
    )
    .unwrap();
    assert!(!cgroup.oom_killed());
    fs::write(
        memory.join("memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    )
    .unwrap();
    assert!(cgroup.oom_killed());

    for dir in cgroup.process_paths() {
        fs::write(dir.join("cgroup.procs"), "").unwrap();
    }
    cgroup.remove().unwrap();
    for dir in cgroup.paths() {
        assert!(!dir.exists(), "{}", dir.display());
    }
}

/// `begin` makes only what the clone needs (the cgroup2 directory), `finish` the v1
/// directories and their limits; a `finish` that fails leaves nothing.
#[test]
fn v1_cgroups_are_made_by_finish_and_a_failed_finish_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let hierarchy = v1_fixture(root);
    let limits = Limits {
        pids: Some(10),
        ..Limits::default()
    };
    let creating = Cgroup::begin_in(&hierarchy, "dock", "two", &limits).unwrap();
    let dirs =
        ["cpuset", "devices", "memory", "pids", "unified"].map(|c| root.join(c).join("dock/two"));
    assert_eq!(creating.cgroup().paths(), dirs);
    let made = |dir: &PathBuf| dir.is_dir();
    assert_eq!(
        dirs.each_ref().map(made),
        [false, false, false, false, true]
    );
    creating.finish().unwrap();
    assert!(dirs.iter().all(made));
    assert_eq!(read(&root.join("devices/dock/two/devices.deny")), "a");
    assert_eq!(read(&root.join("pids/dock/two/pids.max")), "10");

    // A limit that cannot be written: finish fails and takes the cgroup2 directory along.
    fs::create_dir_all(root.join("pids/dock/three/pids.max")).unwrap();
    let creating = Cgroup::begin_in(&hierarchy, "dock", "three", &limits).unwrap();
    let unified = root.join("unified/dock/three");
    assert!(unified.is_dir());
    // (What the kernel provides, read to find processes to kill.)
    fs::write(unified.join("cgroup.procs"), "").unwrap();
    creating.finish().unwrap_err();
    for c in ["cpuset", "devices", "memory", "pids", "unified"] {
        assert!(!root.join(c).join("dock/three").exists(), "{c}");
    }
}

#[test]
fn v1_fixture_without_swap_accounting_or_memory_controller() {
    let tmp = tempfile::tempdir().unwrap();
    let hierarchy = v1_fixture(tmp.path());
    let limits = Limits {
        memory: Some(32 * MIB),
        memory_swap: None,
        ..Limits::default()
    };
    let cgroup = Cgroup::create_in(&hierarchy, "dock", "noswap", &limits).unwrap();
    let memory = &tmp.path().join("memory/dock/noswap");
    assert!(cgroup.paths().contains(memory));
    assert_eq!(
        read(&memory.join("memory.limit_in_bytes")),
        (32 * MIB).to_string()
    );
    assert!(!memory.join("memory.memsw.limit_in_bytes").exists());

    let no_memory = Hierarchy::V1 {
        controllers: BTreeMap::from([("pids".to_string(), tmp.path().join("pids"))]),
        unified: None,
    };
    let err = Cgroup::create_in(&no_memory, "dock", "x", &limits).unwrap_err();
    assert!(
        matches!(err, CgroupError::MissingController("memory")),
        "{err}"
    );
    assert!(!tmp.path().join("pids/dock/x").exists());
}

#[test]
fn failed_write_names_path_and_value_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let hierarchy = v1_fixture(root);
    // A directory where the limit file should be makes the write fail.
    let limit_file = root.join("memory/dock/bad/memory.limit_in_bytes");
    fs::create_dir_all(&limit_file).unwrap();
    let limits = Limits {
        memory: Some(512 * MIB),
        memory_swap: None,
        ..Limits::default()
    };
    let err = Cgroup::create_in(&hierarchy, "dock", "bad", &limits).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "failed to write 536870912 to {}: ",
            limit_file.display()
        )),
        "{message}"
    );
    for controller in ["memory", "devices", "pids", "unified"] {
        let dir = root.join(controller).join("dock/bad");
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

#[test]
fn bad_limits_are_rejected_before_anything_is_created() {
    let tmp = tempfile::tempdir().unwrap();
    let hierarchy = Hierarchy::V2 {
        root: tmp.path().to_path_buf(),
    };
    let limits = Limits {
        memory: Some(64 * MIB),
        memory_swap: Some(32 * MIB),
        ..Limits::default()
    };
    let err = Cgroup::create_in(&hierarchy, "dock", "x", &limits).unwrap_err();
    assert!(matches!(err, CgroupError::InvalidLimits(_)), "{err}");
    assert!(!tmp.path().join("dock").exists());
}

// ---- the real hierarchy of this machine ----

fn memory_files(cgroup: &Cgroup, hierarchy: &Hierarchy) -> (PathBuf, PathBuf) {
    match hierarchy {
        Hierarchy::V1 { controllers, .. } => {
            let dir = cgroup
                .paths()
                .iter()
                .find(|p| p.starts_with(&controllers["memory"]))
                .unwrap()
                .clone();
            (
                dir.join("memory.limit_in_bytes"),
                dir.join("memory.memsw.limit_in_bytes"),
            )
        }
        Hierarchy::V2 { .. } => {
            let dir = cgroup.paths()[0].clone();
            (dir.join("memory.max"), dir.join("memory.swap.max"))
        }
    }
}

#[test]
fn real_limits_join_and_remove() {
    let hierarchy = Hierarchy::detect().unwrap();
    let guard = CgroupGuard::new(hierarchy.clone(), "join");
    let limits = Limits {
        memory: Some(32 * MIB),
        memory_swap: None,
        ..Limits::default()
    };
    let cgroup = Cgroup::create_in(&hierarchy, &guard.parent, &guard.id, &limits).unwrap();
    let (limit, swap) = memory_files(&cgroup, &hierarchy);
    assert_eq!(read(&limit), (32 * MIB).to_string());
    if swap.exists() {
        let expected = match hierarchy.version() {
            Version::V1 => 64 * MIB,
            Version::V2 => 32 * MIB,
        };
        assert_eq!(read(&swap), expected.to_string());
    }

    let mut child = spawn_waiting("exit 0");
    let pid = child.pid();
    cgroup.add_pid(pid).unwrap();
    for dir in cgroup.process_paths() {
        assert_eq!(procs(&dir), [pid], "{}", dir.display());
    }
    let own = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let relative = format!("/{}/{}", guard.parent, guard.id);
    assert!(
        own.lines().any(|l| l.ends_with(&relative)),
        "{relative} not in /proc/{pid}/cgroup:\n{own}"
    );
    assert_eq!(cgroup.pids().unwrap(), [pid]);

    cgroup.remove().unwrap();
    let status = child.child().wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    for dir in cgroup.paths() {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    cgroup.remove().unwrap();
}

#[test]
fn real_oom_kill_is_reported() {
    let hierarchy = Hierarchy::detect().unwrap();
    let guard = CgroupGuard::new(hierarchy.clone(), "oom");
    let limits = Limits {
        memory: Some(32 * MIB),
        memory_swap: None,
        ..Limits::default()
    };
    let cgroup = Cgroup::create_in(&hierarchy, &guard.parent, &guard.id, &limits).unwrap();
    // dd reads 200 MiB of zeros into one buffer, far over 32 MiB (64 MiB with swap).
    let mut child = spawn_waiting("exec dd if=/dev/zero of=/dev/null bs=200M count=1");
    cgroup.add_pid(child.pid()).unwrap();
    assert!(!cgroup.oom_killed());
    release(&mut child);
    let status = child.child().wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert!(cgroup.oom_killed());
    cgroup.remove().unwrap();
    for dir in cgroup.paths() {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

fn mknod_script(dir: &Path) -> String {
    let dir = dir.display();
    format!(
        "mknod {dir}/null c 1 3 && echo null-ok; mknod {dir}/disk b 8 0 && echo disk-ok; echo done"
    )
}

#[test]
fn real_device_list_blocks_disks() {
    let hierarchy = Hierarchy::detect().unwrap();
    if hierarchy.version() == Version::V2 {
        eprintln!("pure cgroup v2: device control needs eBPF, which dock does not do");
        return;
    }
    let guard = CgroupGuard::new(hierarchy.clone(), "devices");
    let cgroup =
        Cgroup::create_in(&hierarchy, &guard.parent, &guard.id, &Limits::default()).unwrap();

    // Outside the cgroup root may create the disk node: the test would prove nothing otherwise.
    let outside = tempfile::tempdir().unwrap();
    let output = Command::new("sh")
        .arg("-c")
        .arg(mknod_script(outside.path()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("disk-ok"), "control run: {stdout}");

    let inside = tempfile::tempdir().unwrap();
    let mut child = spawn_waiting(&mknod_script(inside.path()));
    cgroup.add_pid(child.pid()).unwrap();
    release(&mut child);
    let output = child.take().wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stdout.contains("null-ok"),
        "stdout: {stdout} stderr: {stderr}"
    );
    assert!(stdout.contains("done"), "stdout: {stdout} stderr: {stderr}");
    assert!(!stdout.contains("disk-ok"), "stdout: {stdout}");
    assert!(
        stderr.contains("Operation not permitted"),
        "stderr: {stderr}"
    );
    assert!(!inside.path().join("disk").exists());
    cgroup.remove().unwrap();
}

#[test]
fn real_open_cleans_up_after_a_crashed_monitor() {
    let hierarchy = Hierarchy::detect().unwrap();
    let guard = CgroupGuard::new(hierarchy.clone(), "crash");
    let limits = Limits {
        memory: Some(64 * MIB),
        memory_swap: Some(-1),
        ..Limits::default()
    };
    let mut child = spawn_waiting("exit 0");
    let paths = {
        let cgroup = Cgroup::create_in(&hierarchy, &guard.parent, &guard.id, &limits).unwrap();
        cgroup.add_pid(child.pid()).unwrap();
        // The monitor "crashes": its Cgroup value is gone, the process is left running.
        cgroup.paths().to_vec()
    };
    let reopened = Cgroup::open(&guard.parent, &guard.id);
    assert_eq!(reopened.paths(), paths.as_slice());
    assert_eq!(reopened.pids().unwrap(), [child.pid()]);
    reopened.remove().unwrap();
    let status = child.child().wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    for dir in &paths {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

#[test]
fn real_v2_semantics_on_the_unified_mount() {
    // On hybrid machines the cgroup2 mount has no controllers but does have cgroup.kill and the
    // v2 membership rules, so create/join/kill/remove run for real on v2 there.
    let root = match Hierarchy::detect().unwrap() {
        Hierarchy::V2 { root } => root,
        Hierarchy::V1 {
            unified: Some(root),
            ..
        } => root,
        Hierarchy::V1 { unified: None, .. } => {
            eprintln!("no cgroup2 mount on this machine");
            return;
        }
    };
    let hierarchy = Hierarchy::V2 { root };
    let guard = CgroupGuard::new(hierarchy.clone(), "v2");
    let cgroup =
        Cgroup::create_in(&hierarchy, &guard.parent, &guard.id, &Limits::default()).unwrap();
    let mut child = spawn_waiting("exit 0");
    let pid = child.pid();
    cgroup.add_pid(pid).unwrap();
    assert_eq!(procs(&cgroup.paths()[0]), [pid]);
    assert!(!cgroup.oom_killed());
    cgroup.remove().unwrap();
    let status = child.child().wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert!(!cgroup.paths()[0].exists());
}

#[test]
fn real_parent_stays_for_the_next_container_and_survives_racing_creates() {
    let hierarchy = Hierarchy::detect().unwrap();
    let guard = CgroupGuard::new(hierarchy.clone(), "parent");
    let guards: Vec<CgroupGuard> = ["a", "b"]
        .iter()
        .map(|id| CgroupGuard {
            hierarchy: hierarchy.clone(),
            parent: guard.parent.clone(),
            id: id.to_string(),
        })
        .collect();
    let a =
        Cgroup::create_in(&hierarchy, &guard.parent, &guards[0].id, &Limits::default()).unwrap();
    let b =
        Cgroup::create_in(&hierarchy, &guard.parent, &guards[1].id, &Limits::default()).unwrap();
    let parents: Vec<PathBuf> = a
        .paths()
        .iter()
        .map(|dir| dir.parent().unwrap().to_path_buf())
        .collect();
    a.remove().unwrap();
    for parent in &parents {
        assert!(
            parent.is_dir(),
            "{} went while b is in it",
            parent.display()
        );
    }
    b.remove().unwrap();
    for parent in &parents {
        assert!(
            parent.is_dir(),
            "{} went with the last container",
            parent.display()
        );
        assert!(common_subdirs(parent).is_empty(), "{}", parent.display());
    }
    hierarchy.remove_parent(&guard.parent).unwrap();
    for parent in &parents {
        assert!(!parent.exists(), "{} left behind", parent.display());
    }

    // Creates and removes racing with the parent's removal (as a root is torn down): a create
    // whose parent vanishes between the two mkdirs makes it again.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let remover = {
        let (hierarchy, parent, stop) = (hierarchy.clone(), guard.parent.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = hierarchy.remove_parent(&parent);
                std::thread::sleep(std::time::Duration::from_micros(300));
            }
        })
    };
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let hierarchy = hierarchy.clone();
            let parent = guard.parent.clone();
            std::thread::spawn(move || {
                for round in 0..25 {
                    let id = format!("w{worker}-{round}");
                    let _cleanup = CgroupGuard {
                        hierarchy: hierarchy.clone(),
                        parent: parent.clone(),
                        id: id.clone(),
                    };
                    let cgroup = Cgroup::create_in(&hierarchy, &parent, &id, &Limits::default())
                        .unwrap_or_else(|e| panic!("create {id}: {e}"));
                    cgroup.remove().unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    remover.join().unwrap();
}

fn common_subdirs(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect()
}
