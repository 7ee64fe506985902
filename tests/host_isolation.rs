//! A container's root cannot reach the host: not its cgroups, whatever namespaces it creates,
//! and not its devices, on cgroup v1 and on the cgroup2 mount. Run as an attacker would, with
//! real containers on the real kernel.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::{code, stderr, stdout, DockRoot};

/// `tests/fixtures/cgroup_attacker.c`, built static once per test run.
fn attacker_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let source =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/cgroup_attacker.c");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("cgroup-attacker-{}", std::process::id()));
        let status = Command::new("gcc")
            .args(["-static", "-O1", "-o"])
            .arg(&out)
            .arg(&source)
            .status()
            .expect("gcc (scripts/setup.sh installs it)");
        assert!(status.success(), "gcc -static of {}", source.display());
        out
    })
}

/// A tar of the busybox rootfs with `extra` (built by `add` in a scratch dir) on top.
fn busybox_tar_with(root: &DockRoot, name: &str, add: impl FnOnce(&Path)) -> PathBuf {
    let scratch = root.path().join(format!("scratch-{name}"));
    std::fs::create_dir_all(&scratch).unwrap();
    add(&scratch);
    let tar = root.path().join(format!("{name}.tar"));
    std::fs::copy(common::busybox_tar(), &tar).unwrap();
    let status = Command::new("tar")
        .arg("-rf")
        .arg(&tar)
        .arg("-C")
        .arg(&scratch)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success(), "tar -r into {}", tar.display());
    std::fs::remove_dir_all(&scratch).unwrap();
    tar
}

fn import(root: &DockRoot, tar: &Path, name: &str) {
    root.ok(&["import", tar.to_str().unwrap(), name]);
}

/// The value of `<hierarchy> <key>: N` lines of the attacker's report.
fn counts(report: &str, key: &str) -> Vec<(String, u64)> {
    report
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(' ')?;
            let n = rest.strip_prefix(key)?.strip_prefix(": ")?;
            Some((name.to_string(), n.parse().ok()?))
        })
        .collect()
}

#[test]
fn container_root_cannot_reach_host_cgroups_and_its_memory_limit_holds() {
    let root = DockRoot::new();
    let tar = busybox_tar_with(&root, "attacker", |dir| {
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::copy(attacker_binary(), dir.join("bin/attacker")).unwrap();
    });
    import(&root, &tar, "attacker");

    // Docker's seccomp profile stops it at the first step, and so does the lack of
    // CAP_SYS_ADMIN for the mounts.
    let out = root.run(&["run", "--rm", "--network", "none", "attacker", "attacker"]);
    let report = stdout(&out);
    assert!(
        report.contains("unshare: Operation not permitted"),
        "{report}"
    );
    assert!(!report.contains(": ok"), "{report}");

    // Without seccomp the namespaces can be had, but they lead nowhere.
    let out = root.run(&[
        "run",
        "--name",
        "escape",
        "--security-opt",
        "seccomp=unconfined",
        "--network",
        "none",
        "-m",
        "32m",
        "attacker",
        "attacker",
    ]);
    let report = stdout(&out);
    assert!(
        report.contains("unshare: ok"),
        "the attack must get this far:\n{report}"
    );
    let mounted: Vec<&str> = report
        .lines()
        .filter_map(|l| l.strip_prefix("mount ")?.strip_suffix(": ok"))
        .collect();
    // Every hierarchy the host has is mountable from the container's namespaces.
    for needed in ["memory", "devices", "pids", "cpu", "freezer"] {
        let on_host = Path::new("/sys/fs/cgroup").join(needed).is_dir();
        assert!(
            !on_host || mounted.contains(&needed),
            "{needed} not mounted:\n{report}"
        );
    }
    // What it mounts is its own cgroup alone: nothing of the host's below, nothing outside its
    // own cgroup writable.
    let below = counts(&report, "cgroups-below-root");
    let writable = counts(&report, "writable-outside");
    assert_eq!(below.len(), mounted.len(), "{report}");
    assert!(
        below.iter().all(|(_, n)| *n == 0),
        "host cgroups visible:\n{report}"
    );
    assert!(
        writable.iter().all(|(_, n)| *n == 0),
        "host cgroup files writable:\n{report}"
    );
    // Raising the limit of its own cgroup does not lift the container's limit: 64 MB past it
    // is still OOM-killed.
    assert!(!report.contains("allocated"), "{report}");
    assert_eq!(code(&out), 137, "{report}\n{}", stderr(&out));
    assert_eq!(root.inspect("escape")["State"]["OOMKilled"], true);
}

/// (major, minor) of the block device holding the host's root filesystem.
fn host_root_disk() -> (u64, u64) {
    let dev = std::fs::metadata("/").unwrap().dev();
    (libc::major(dev) as u64, libc::minor(dev) as u64)
}

/// Creates device nodes in an image layer: the host's disk and tty1, open to everyone.
fn device_image(root: &DockRoot) {
    let (major, minor) = host_root_disk();
    let tar = busybox_tar_with(root, "devices", |dir| {
        let nodes = dir.join("nodes");
        std::fs::create_dir_all(&nodes).unwrap();
        for (name, kind, major, minor) in [("disk", "b", major, minor), ("tty1", "c", 4, 1)] {
            let path = nodes.join(name);
            let status = Command::new("mknod")
                .args(["-m", "666"])
                .arg(&path)
                .args([kind, &major.to_string(), &minor.to_string()])
                .status()
                .unwrap();
            assert!(status.success(), "mknod {}", path.display());
        }
    });
    import(root, &tar, "devices");
}

/// Each probe prints `NAME: ok` or `NAME: denied`. Terminals are only opened, never read: a
/// read of the host's tty1 would block.
fn probe_script() -> String {
    let (major, minor) = host_root_disk();
    let probes = [
        ("null", "echo x > /dev/null".to_string()),
        ("zero", "head -c 1 /dev/zero >/dev/null".into()),
        ("full", "head -c 1 /dev/full >/dev/null".into()),
        ("urandom", "head -c 1 /dev/urandom >/dev/null".into()),
        ("random", "head -c 1 /dev/random >/dev/null".into()),
        ("mknod-disk", format!("mknod /tmp/disk b {major} {minor}")),
        (
            "open-disk",
            format!(
                "mknod /tmp/disk2 b {major} {minor} 2>/dev/null; head -c 1 /tmp/disk2 >/dev/null"
            ),
        ),
        ("mknod-tty0", "mknod /tmp/tty0 c 4 0".into()),
        (
            "open-tty1",
            "mknod /tmp/tty1 c 4 1 2>/dev/null; ( : < /tmp/tty1 )".into(),
        ),
        ("mknod-mem", "mknod /tmp/mem c 1 1".into()),
        ("image-disk", "head -c 1 /nodes/disk >/dev/null".into()),
        ("image-tty1", "( : < /nodes/tty1 )".into()),
    ];
    probes
        .iter()
        .map(|(name, cmd)| format!("if {cmd}; then echo {name}: ok; else echo {name}: denied; fi"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `dock run --rm [options] --network none devices sh -c script`, with the cgroup v2
/// hierarchy at `cgroup2_root` when one is given.
fn run_in_devices(
    root: &DockRoot,
    cgroup2_root: Option<&str>,
    options: &[&str],
    script: &str,
) -> Output {
    let mut cmd = root.cmd();
    if let Some(path) = cgroup2_root {
        cmd.env("DOCK_CGROUP2_ROOT", path);
    }
    cmd.args(["run", "--rm"])
        .args(options)
        .args(["--network", "none", "devices", "sh", "-c", script])
        .output()
        .unwrap()
}

fn assert_device_rules(root: &DockRoot, cgroup2_root: Option<&str>) {
    for user in ["root", "nobody"] {
        let out = run_in_devices(root, cgroup2_root, &["-u", user], &probe_script());
        let report = stdout(&out);
        let allowed = ["null", "zero", "full", "urandom", "random"];
        for line in report.lines() {
            let (name, verdict) = line.split_once(": ").unwrap();
            let expected = if allowed.contains(&name) {
                "ok"
            } else {
                "denied"
            };
            assert_eq!(
                verdict,
                expected,
                "{name} as {user}:\n{report}\n{}",
                stderr(&out)
            );
        }
        assert_eq!(report.lines().count(), 12, "{report}\n{}", stderr(&out));
    }
    // The terminal devices work with -t.
    let out = run_in_devices(
        root,
        cgroup2_root,
        &["-t"],
        "tty && echo hi > /dev/tty && echo tty-ok",
    );
    let text = stdout(&out);
    assert!(
        text.contains("/dev/pts/0") && text.contains("tty-ok"),
        "{text}\n{}",
        stderr(&out)
    );
}

#[test]
fn privileged_containers_reach_every_device() {
    let root = DockRoot::new();
    device_image(&root);
    let (major, minor) = host_root_disk();
    // (Opening the disk itself is refused to the whole machine here; its node and the
    // host's terminals are what a default container is refused and a privileged one is not.)
    let script = format!(
        "mknod /tmp/disk b {major} {minor} && mknod /tmp/tty0 c 4 0 && ( : < /tmp/tty0 ) \\
         && ( : < /nodes/tty1 ) && echo all-ok"
    );
    for cgroup2_root in [None, cgroup2_mount()] {
        let out = run_in_devices(&root, cgroup2_root, &["--privileged"], &script);
        let text = stdout(&out);
        assert!(
            text.contains("all-ok"),
            "{cgroup2_root:?}: {text}{}",
            stderr(&out)
        );
    }
}

#[test]
fn devices_are_dockers_default_list_on_cgroup_v1() {
    let root = DockRoot::new();
    device_image(&root);
    assert_device_rules(&root, None);
}

#[test]
fn devices_are_dockers_default_list_on_the_cgroup2_mount() {
    // A pure v2 host has no devices controller: the allow list is a BPF program on the
    // container's cgroup. On a hybrid machine the cgroup2 mount shows the same path.
    let Some(cgroup2) = cgroup2_mount() else {
        eprintln!("no cgroup2 mount on this machine");
        return;
    };
    let root = DockRoot::new();
    device_image(&root);
    assert_device_rules(&root, Some(cgroup2));
}

/// The machine's cgroup2 mount: the hybrid layout's or the only one.
fn cgroup2_mount() -> Option<&'static str> {
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .find(|p| is_cgroup2(Path::new(p)))
}

fn is_cgroup2(path: &Path) -> bool {
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statfs into a zeroed struct with a valid path.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == CGROUP2_SUPER_MAGIC
    }
}
