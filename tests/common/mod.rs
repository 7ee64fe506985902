//! Fixtures shared by the end-to-end tests: a busybox root filesystem and a dock root whose
//! Drop leaves nothing of it on the machine, plus small helpers for processes and output.
#![allow(dead_code)]

pub mod daemon;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub fn dock_bin() -> &'static str {
    env!("CARGO_BIN_EXE_dock")
}

/// A tar of a minimal busybox root filesystem, kept in cargo's target tmp dir.
pub fn busybox_tar() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let tar = Path::new(env!("CARGO_TARGET_TMPDIR")).join("busybox.tar");
        if tar.exists() {
            return tar;
        }
        // Built under a private name and renamed, so test binaries running at once agree.
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("busybox-{}", std::process::id()));
        let rootfs = dir.join("rootfs");
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["bin", "etc", "tmp", "root", "proc", "sys", "dev"] {
            std::fs::create_dir_all(rootfs.join(sub)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
            .expect("/bin/busybox (Debian's busybox-static; scripts/setup.sh installs it)");
        let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
            }
        }
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/:/bin/false\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        )
        .unwrap();
        std::fs::write(
            rootfs.join("etc/group"),
            "root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n",
        )
        .unwrap();
        let staged = dir.join("busybox.tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&staged)
            .arg(".")
            .status()
            .unwrap();
        assert!(status.success(), "tar of the busybox rootfs failed");
        std::fs::rename(&staged, &tar).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        tar
    })
}

/// A private dock root in a temp dir. Its Drop kills the root's monitors and containers,
/// removes its cgroups, unmounts everything under it, tears down its network (bridge, nftables
/// table, veths, state) if one was set up, and removes the dir, even when the test fails.
pub struct DockRoot {
    pub dir: tempfile::TempDir,
}

impl DockRoot {
    pub fn new() -> DockRoot {
        DockRoot {
            dir: tempfile::Builder::new()
                .prefix("dock-test-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(dock_bin());
        cmd.arg("--root").arg(self.dir.path());
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Run dock with `args`; the output, whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Run dock with `args`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "dock {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A new root with the busybox rootfs imported as `busybox`.
    pub fn with_busybox() -> DockRoot {
        let root = DockRoot::new();
        root.import_busybox("busybox");
        root
    }

    /// `dock run --rm --network none [options] busybox sh -c script`; the output, whatever
    /// the exit status.
    pub fn busybox_sh(&self, options: &[&str], script: &str) -> Output {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend_from_slice(options);
        args.extend_from_slice(&["busybox", "sh", "-c", script]);
        self.run(&args)
    }

    /// Import the busybox rootfs as `name`; its image id.
    pub fn import_busybox(&self, name: &str) -> String {
        let tar = busybox_tar().to_str().unwrap();
        self.ok(&["import", tar, name]).trim().to_string()
    }

    /// `dock inspect NAME`, the one object it prints.
    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&self.ok(&["inspect", name])).unwrap();
        v[0].clone()
    }

    /// The name of this root's cgroup parent, computed here rather than asked of the runtime,
    /// so tests check the runtime's naming.
    pub fn cgroup_parent(&self) -> String {
        use sha2::Digest;
        let root = std::fs::canonicalize(self.path()).unwrap();
        let digest = sha2::Sha256::digest(root.as_os_str().as_encoded_bytes());
        let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        format!("dock-{hex}")
    }

    /// This root's cgroup parent in every hierarchy where it exists.
    pub fn cgroup_parents(&self) -> Vec<PathBuf> {
        let parent = self.cgroup_parent();
        let mut hierarchies = subdirs(Path::new("/sys/fs/cgroup"));
        hierarchies.push(PathBuf::from("/sys/fs/cgroup"));
        hierarchies
            .into_iter()
            .map(|h| h.join(&parent))
            .filter(|dir| dir.is_dir())
            .collect()
    }

    /// The containers' cgroups (and anything else) below this root's cgroup parents.
    pub fn container_cgroups(&self) -> Vec<PathBuf> {
        self.cgroup_parents()
            .iter()
            .flat_map(|parent| subdirs(parent))
            .collect()
    }

    /// Mount points under the root.
    pub fn mounts(&self) -> Vec<String> {
        let root = std::fs::canonicalize(self.path()).unwrap();
        let root = root.to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .filter(|mp| mp.starts_with(&root))
            .collect()
    }

    /// Monitor processes of this root.
    pub fn monitors(&self) -> Vec<i32> {
        let root = self.path().to_string_lossy().into_owned();
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            if args.contains(&b"__monitor".as_slice()) && args.contains(&root.as_bytes()) {
                pids.push(pid);
            }
        }
        pids
    }

    /// Ids of the container directories under the root.
    pub fn container_dirs(&self) -> Vec<String> {
        std::fs::read_dir(self.path().join("containers"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.len() == 64)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Empties and removes every cgroup of this root: the containers' and their parent.
    fn remove_cgroups(&self) {
        for parent in self.cgroup_parents() {
            // Containers' cgroups and their process leaves, deepest first, then the parent.
            let mut dirs = Vec::new();
            let mut pending = vec![parent];
            while let Some(dir) = pending.pop() {
                pending.extend(subdirs(&dir));
                dirs.push(dir);
            }
            dirs.reverse();
            for dir in &dirs {
                // A paused container's processes die only once thawed (v1 freezer).
                for (file, thawed) in [("freezer.state", "THAWED"), ("cgroup.freeze", "0")] {
                    if dir.join(file).exists() {
                        let _ = std::fs::write(dir.join(file), thawed);
                    }
                }
                for _ in 0..100 {
                    let procs =
                        std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                    if procs.trim().is_empty() {
                        break;
                    }
                    for pid in procs.lines().filter_map(|l| l.trim().parse().ok()) {
                        kill9(pid);
                    }
                    std::thread::yield_now();
                }
            }
            for dir in &dirs {
                for _ in 0..1000 {
                    if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                        break;
                    }
                    std::thread::yield_now();
                }
            }
        }
    }

    fn unmount_all(&self) {
        let mut mounts = self.mounts();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mp in mounts {
            let c = std::ffi::CString::new(mp).unwrap();
            // SAFETY: detach a mount under our own test root.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }

    /// The root's table, veths, bridge and state, if its network was ever set up: opening a
    /// network creates its bridge, which a root that never networked should not get.
    fn destroy_network(&self) {
        let cfg = match runtime::Runtime::open(self.path()).and_then(|rt| rt.net_config()) {
            Ok(cfg) => cfg,
            Err(e) => {
                eprintln!("network config of {}: {e}", self.path().display());
                return;
            }
        };
        let bridge_exists = Path::new("/sys/class/net").join(&cfg.bridge).exists();
        let state_left = std::fs::read_dir(&cfg.state_dir).is_ok_and(|mut rd| rd.next().is_some());
        if !bridge_exists && !state_left {
            return;
        }
        let bridge = cfg.bridge.clone();
        if let Err(e) = netmgr::Network::open(cfg).and_then(netmgr::Network::destroy) {
            eprintln!(
                "tearing down network {bridge} of {}: {e}",
                self.path().display()
            );
        }
    }
}

impl Drop for DockRoot {
    fn drop(&mut self) {
        for pid in self.monitors() {
            kill9(pid);
        }
        self.remove_cgroups();
        self.unmount_all();
        self.destroy_network();
    }
}

/// The directories directly under `dir` (none when it cannot be read).
pub fn subdirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

pub fn kill9(pid: i32) {
    // SAFETY: plain kill.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Blocks until process `pid` (not necessarily our child) has exited.
pub fn wait_for_exit(pid: i32) {
    // SAFETY: pidfd_open and poll with valid arguments; the fd is closed below.
    unsafe {
        let fd = libc::syscall(libc::SYS_pidfd_open, pid, 0) as i32;
        if fd < 0 {
            return; // already gone
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        while libc::poll(&mut pfd, 1, -1) < 0 {}
        libc::close(fd);
    }
}

/// The exit code of `out`, -1 when a signal ended it.
pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// `out` exited with `expected` and said `needle` on stderr.
pub fn assert_fails(out: &Output, expected: i32, needle: &str) {
    assert_eq!(code(out), expected, "{}", stderr(out));
    assert!(stderr(out).contains(needle), "{}", stderr(out));
}

pub fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::to_string).collect()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Registers `config` as an image config entry on top of image `base` of the dock root at
/// `root` (its `rootfs.diff_ids` set to `base`'s layers) and tags it `name:latest`, as a
/// pull stores an image; the image id (the config's sha256). No dock process may be writing
/// the root's store meanwhile.
pub fn register_config_image(
    root: &Path,
    base: &str,
    name: &str,
    mut config: serde_json::Value,
) -> String {
    let graph = graph::Graph::open(root.join("graph")).unwrap();
    let tags = tagstore::TagStore::open(root.join("repositories")).unwrap();
    let base = tags.lookup(&graph, base).unwrap();
    let mut layers: Vec<graph::Image> = graph
        .history(&base.id)
        .unwrap()
        .into_iter()
        .filter(|i| !i.layerless)
        .collect();
    layers.reverse();
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| graph.diff_id(&l.id).unwrap())
        .collect();
    config["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": diff_ids});
    let bytes = serde_json::to_vec(&config).unwrap();
    let image = graph::Image {
        id: graph::sha256_hex(&bytes),
        parent: Some(base.id),
        created: chrono::Utc::now(),
        ..graph::Image::default()
    };
    let image = graph.register_config(image, &bytes).unwrap();
    tags.set(&graph, name, "latest", &image.id, true).unwrap();
    image.id
}
