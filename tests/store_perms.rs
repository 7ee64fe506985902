//! The store is closed to other host users: layers (with images' setuid-root files),
//! container directories, configs and logs cannot be reached by anyone but root, a root an
//! older dock left open (0755) is closed by the next command, and containers still work for
//! any user inside them.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{busybox_tar, stderr, stdout, DockRoot};

/// The uid and gid other host users are played by.
const NOBODY: &str = "65534";

/// `args` run as host user nobody, without supplementary groups.
///
/// setpriv keeps root's capabilities up to its own execve, whose path lookup would then
/// pass any directory: a shell without them execs `args`, as a real user's process would.
fn as_nobody(args: &[&str]) -> Output {
    Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            "--",
            "/bin/sh",
            "-c",
            "exec \"$@\"",
            "sh",
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("setpriv (util-linux)")
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The busybox rootfs plus `/bin/suidbox`, a setuid-root copy of busybox, as a tar.
fn setuid_image_tar(dir: &Path) -> PathBuf {
    let extra = dir.join("extra");
    std::fs::create_dir_all(extra.join("bin")).unwrap();
    let suid = extra.join("bin/suidbox");
    std::fs::copy("/bin/busybox", &suid).unwrap();
    chmod(&suid, 0o4755);
    let tar = dir.join("suid.tar");
    std::fs::copy(busybox_tar(), &tar).unwrap();
    let status = Command::new("tar")
        .args(["--owner=0", "--group=0", "-rf"])
        .arg(&tar)
        .arg("-C")
        .arg(&extra)
        .arg("./bin/suidbox")
        .status()
        .unwrap();
    assert!(status.success());
    tar
}

/// A root with the setuid image, one exited container (config and log) and one running.
struct Store {
    root: DockRoot,
    image: String,
    exited: String,
    running: String,
    _work: tempfile::TempDir,
}

impl Store {
    /// Made by dock itself in a root directory it creates: the tempdir is removed first.
    fn new() -> Store {
        let root = DockRoot::new();
        std::fs::remove_dir(root.path()).unwrap();
        let work = tempfile::tempdir().unwrap();
        let tar = setuid_image_tar(work.path());
        let image = root.ok(&["import", s(&tar), "suid"]).trim().to_string();
        let out = root.ok(&[
            "run",
            "--name",
            "done",
            "suid",
            "echo",
            "a line for the log",
        ]);
        assert_eq!(out, "a line for the log\n");
        let exited = root.inspect("done")["Id"].as_str().unwrap().to_string();
        let running = root
            .ok(&["run", "-d", "--name", "up", "suid", "sleep", "100"])
            .trim()
            .to_string();
        Store {
            root,
            image,
            exited,
            running,
            _work: work,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    fn layer(&self) -> PathBuf {
        self.path("graph").join(&self.image).join("layer")
    }

    fn container(&self, id: &str) -> PathBuf {
        self.path("containers").join(id)
    }

    /// The store's directories that must be closed (0700).
    fn private_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![
            self.root.path().to_path_buf(),
            self.path("graph"),
            self.path("graph").join(&self.image),
            self.path("graph/_tmp"),
            self.path("containers"),
            self.container(&self.exited),
            self.container(&self.running),
        ];
        if self.path("net").exists() {
            dirs.push(self.path("net"));
        }
        dirs
    }

    /// Everything a host user must not list, read or run.
    fn secrets(&self) -> Vec<PathBuf> {
        let log = |id: &str| self.container(id).join(format!("{id}-json.log"));
        vec![
            self.root.path().to_path_buf(),
            self.path("graph"),
            self.layer(),
            self.layer().join("bin"),
            self.layer().join("bin/suidbox"),
            self.layer().join("etc/passwd"),
            self.path("containers"),
            self.container(&self.exited),
            self.container(&self.exited).join("config.json"),
            log(&self.exited),
            self.container(&self.running),
            self.container(&self.running).join("rootfs/bin"),
            log(&self.running),
        ]
    }

    /// As host user nobody: no listing, reading or running of anything in `secrets`.
    fn assert_closed_to_other_users(&self) {
        for path in self.secrets() {
            assert!(path.exists(), "{}", path.display());
            let listed = as_nobody(&["ls", s(&path)]);
            assert!(
                !listed.status.success() && stderr(&listed).contains("Permission denied"),
                "nobody lists {}: {}{}",
                path.display(),
                stdout(&listed),
                stderr(&listed)
            );
            if path.is_file() {
                let read = as_nobody(&["cat", s(&path)]);
                assert!(
                    !read.status.success() && stderr(&read).contains("Permission denied"),
                    "nobody reads {}",
                    path.display()
                );
            }
        }
        // The image's setuid-root binary, straight and through the running container's rootfs.
        for suid in [
            self.layer().join("bin/suidbox"),
            self.container(&self.running).join("rootfs/bin/suidbox"),
        ] {
            assert_eq!(std::fs::metadata(&suid).unwrap().mode() & 0o4000, 0o4000);
            let ran = as_nobody(&[s(&suid), "id", "-u"]);
            assert!(
                !ran.status.success() && !stdout(&ran).contains('0'),
                "nobody ran {}: {}{}",
                suid.display(),
                stdout(&ran),
                stderr(&ran)
            );
            assert!(
                stderr(&ran).contains("Permission denied"),
                "{}",
                stderr(&ran)
            );
        }
    }
}

#[test]
fn a_new_store_is_closed_to_other_host_users() {
    // The checks below mean something: nobody reaches an open directory beside the store.
    let beside = tempfile::tempdir().unwrap();
    chmod(beside.path(), 0o755);
    std::fs::write(beside.path().join("f"), "readable").unwrap();
    chmod(&beside.path().join("f"), 0o644);
    assert_eq!(
        stdout(&as_nobody(&["cat", s(&beside.path().join("f"))])),
        "readable"
    );

    let store = Store::new();
    for dir in store.private_dirs() {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    store.assert_closed_to_other_users();
    // And the containers were not hindered.
    assert_eq!(store.root.ok(&["logs", "done"]), "a line for the log\n");
}

#[test]
fn a_store_an_older_dock_left_open_is_closed_by_the_next_command() {
    let store = Store::new();
    let opened = store.private_dirs();
    for dir in &opened {
        chmod(dir, 0o755);
    }
    // Open, as older docks made it: nobody runs the image's setuid binary from the layer.
    let suid = store.layer().join("bin/suidbox");
    let listed = as_nobody(&["ls", s(&store.layer().join("bin"))]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert!(stdout(&listed).contains("suidbox"));

    // Any command closes it: here one that reads containers only.
    store.root.ok(&["ps", "-a"]);
    for dir in &opened {
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
    }
    // The layer and the container's files keep their own modes.
    assert_eq!(mode(&store.layer()), 0o755);
    assert_eq!(mode(&suid) & 0o7777, 0o4755);
    store.assert_closed_to_other_users();
    assert_eq!(
        store
            .root
            .ok(&["run", "--rm", "suid", "echo", "still runs"]),
        "still runs\n"
    );
}

#[test]
fn any_user_in_a_container_reaches_its_files_under_the_closed_store() {
    let root = DockRoot::new();
    root.import_busybox("bb");
    assert_eq!(mode(root.path()), 0o700);
    let out = root.ok(&[
        "run",
        "--rm",
        "-u",
        "nobody",
        "bb",
        "sh",
        "-c",
        "id -u; head -n 1 /etc/passwd; ls /bin | grep -c . >/dev/null && echo listed; \
         /bin/busybox true && echo ran",
    ]);
    assert_eq!(
        out,
        format!("{NOBODY}\nroot:x:0:0:root:/root:/bin/sh\nlisted\nran\n")
    );
}
