//! Fixtures shared by the end-to-end tests: a busybox root filesystem and a dock root.
#![allow(dead_code)]

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

/// A private dock root in a temp dir, removed on drop.
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

    /// Import the busybox rootfs as `name`; its image id.
    pub fn import_busybox(&self, name: &str) -> String {
        let tar = busybox_tar().to_str().unwrap();
        self.ok(&["import", tar, name]).trim().to_string()
    }
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
