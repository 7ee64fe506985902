//! Volumes, binds, tmpfs and the container's own /etc files, end to end through `dock` and
//! through the real `docker` CLI against `dock daemon` (issue 10, acceptance 2, 3 and the
//! volume parts of 5).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::{code, stderr, stdout, DockRoot};

/// A host directory for binds, removed (after the root's mounts are gone) even on failure.
struct HostDir(tempfile::TempDir);

impl HostDir {
    fn new() -> HostDir {
        HostDir(
            tempfile::Builder::new()
                .prefix("dock-vol-")
                .tempdir()
                .unwrap(),
        )
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn join(&self, rel: &str) -> PathBuf {
        self.0.path().join(rel)
    }
}

/// The root's volume directories (names).
fn volume_dirs(root: &DockRoot) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.path().join("volumes"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The paths in a tar stream.
fn tar_entries(bytes: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            e.path()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches("./")
                .trim_end_matches('/')
                .to_string()
        })
        .collect()
}

fn ok_out(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

#[test]
fn a_bind_mount_reaches_the_host_ro_refuses_writes_and_missing_sources_follow_docker() {
    let root = DockRoot::with_busybox();
    let host = HostDir::new();
    let data = host.path().display().to_string();

    let out = root.busybox_sh(&["-v", &format!("{data}:/data")], "echo hi > /data/f");
    ok_out(&out, "write through -v");
    assert_eq!(std::fs::read_to_string(host.join("f")).unwrap(), "hi\n");

    let out = root.busybox_sh(
        &["-v", &format!("{data}:/data:ro")],
        "cat /data/f; echo no > /data/g",
    );
    assert_ne!(code(&out), 0, "a write to a :ro bind succeeded");
    assert_eq!(stdout(&out), "hi\n");
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
    assert!(!host.join("g").exists());

    // -v of a missing host path creates it as a directory, as Docker does...
    let missing = host.join("made/by/run");
    let out = root.busybox_sh(&["-v", &format!("{}:/m", missing.display())], "touch /m/x");
    ok_out(&out, "-v of a missing host path");
    assert!(missing.join("x").is_file());
    // ...but --mount type=bind refuses it, before anything exists.
    let refused = host.join("refused");
    let out = root.busybox_sh(
        &[
            "--mount",
            &format!("type=bind,src={},dst=/r", refused.display()),
        ],
        "true",
    );
    assert_eq!(code(&out), 125, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("bind source path does not exist"),
        "{}",
        stderr(&out)
    );
    assert!(!refused.exists());
    assert!(root.container_dirs().is_empty());

    // --mount of an existing path, read-only; --tmpfs with its options.
    let out = root.busybox_sh(
        &[
            "--mount",
            &format!("type=bind,source={data},target=/b,readonly"),
            "--tmpfs",
            "/scratch:size=1m",
        ],
        "cat /b/f; touch /b/z 2>/dev/null || echo ro; echo s > /scratch/s && \
         grep ' /scratch ' /proc/self/mountinfo | grep -c 'size=1024k'",
    );
    assert_eq!(ok_out(&out, "--mount and --tmpfs"), "hi\nro\n1\n");

    // A destination twice is refused.
    let out = root.busybox_sh(&["-v", &format!("{data}:/d"), "--tmpfs", "/d"], "true");
    assert_eq!(code(&out), 125);
    assert!(
        stderr(&out).contains("duplicate mount point: /d"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_named_volume_is_seeded_from_the_image_and_outlives_its_containers() {
    let root = DockRoot::with_busybox();
    // An image with content where the volume goes.
    root.ok(&[
        "run",
        "--network",
        "none",
        "--name",
        "maker",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /srv/app && echo from-image > /srv/app/seed",
    ]);
    root.ok(&["commit", "maker", "seeded"]);

    let out = root.run(&[
        "run",
        "--network",
        "none",
        "--name",
        "first",
        "-v",
        "appdata:/srv/app",
        "seeded",
        "sh",
        "-c",
        "cat /srv/app/seed; echo kept > /srv/app/kept",
    ]);
    assert_eq!(ok_out(&out, "first"), "from-image\n");
    assert!(volume_dirs(&root).contains(&"appdata".to_string()));
    let listed = root.ok(&["volume", "ls", "-q"]);
    assert_eq!(listed.trim(), "appdata");
    let inspect: serde_json::Value =
        serde_json::from_str(&root.ok(&["volume", "inspect", "appdata"])).unwrap();
    let mountpoint = inspect[0]["Mountpoint"].as_str().unwrap().to_string();
    assert!(
        mountpoint.ends_with("volumes/appdata/_data"),
        "{mountpoint}"
    );
    assert_eq!(
        std::fs::read_to_string(Path::new(&mountpoint).join("kept")).unwrap(),
        "kept\n"
    );

    // In use (by a stopped container too): rm refused.
    let out = root.run(&["volume", "rm", "appdata"]);
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains("volume is in use"),
        "{}",
        stderr(&out)
    );

    // Mounts in inspect, in Docker's shape.
    let c = root.inspect("first");
    let mounts = c["Mounts"].as_array().unwrap();
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    assert_eq!(mounts[0]["Type"], "volume");
    assert_eq!(mounts[0]["Name"], "appdata");
    assert_eq!(mounts[0]["Destination"], "/srv/app");
    assert_eq!(mounts[0]["RW"], true);

    // The data outlives the container, even `rm -v` (named volumes are not anonymous).
    root.ok(&["rm", "-v", "first"]);
    let out = root.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "appdata:/other",
        "busybox",
        "cat",
        "/other/kept",
        "/other/seed",
    ]);
    assert_eq!(ok_out(&out, "second"), "kept\nfrom-image\n");

    root.ok(&["volume", "rm", "appdata"]);
    assert!(volume_dirs(&root).is_empty());
    let out = root.run(&["volume", "inspect", "appdata"]);
    assert_ne!(code(&out), 0);

    // create / prune: prune takes only unused anonymous volumes unless -a.
    assert_eq!(root.ok(&["volume", "create", "made"]).trim(), "made");
    root.ok(&["volume", "prune", "-f"]);
    assert_eq!(volume_dirs(&root), ["made"]);
    root.ok(&["volume", "prune", "-a", "-f"]);
    assert!(volume_dirs(&root).is_empty());
}

#[test]
fn an_anonymous_volume_goes_with_rm_v_and_with_run_rm() {
    let root = DockRoot::with_busybox();
    root.ok(&[
        "run",
        "--network",
        "none",
        "--name",
        "anon",
        "-v",
        "/scratch",
        "busybox",
        "sh",
        "-c",
        "echo x > /scratch/x",
    ]);
    let c = root.inspect("anon");
    let name = c["Mounts"][0]["Name"].as_str().unwrap().to_string();
    assert_eq!(name.len(), 64, "{c}");
    let vol: serde_json::Value =
        serde_json::from_str(&root.ok(&["volume", "inspect", &name])).unwrap();
    assert!(vol[0]["Labels"]
        .as_object()
        .unwrap()
        .contains_key("com.docker.volume.anonymous"));
    // Not in use by anyone else: `prune` would take it only once the container is gone.
    root.ok(&["volume", "prune", "-f"]);
    assert_eq!(volume_dirs(&root), std::slice::from_ref(&name));
    root.ok(&["rm", "-v", "anon"]);
    assert!(volume_dirs(&root).is_empty());

    // `rm` without -v keeps it, as Docker does.
    root.ok(&[
        "run",
        "--network",
        "none",
        "--name",
        "keep",
        "-v",
        "/k",
        "busybox",
        "true",
    ]);
    root.ok(&["rm", "keep"]);
    assert_eq!(volume_dirs(&root).len(), 1);
    root.ok(&["volume", "prune", "-f"]);
    assert!(volume_dirs(&root).is_empty());

    // An image's `Volumes` become anonymous volumes, seeded from the image (its /etc here).
    common::register_config_image(
        root.path(),
        "busybox",
        "withvol",
        serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Volumes": {"/etc": {}}, "Cmd": ["sh"]},
        }),
    );
    let out = root.run(&[
        "run",
        "--network",
        "none",
        "--name",
        "iv",
        "withvol",
        "sh",
        "-c",
        "grep -c ^root: /etc/passwd; grep ' /etc ' /proc/self/mountinfo | grep -c volumes/",
    ]);
    assert_eq!(ok_out(&out, "image volume"), "1\n1\n");
    let c = root.inspect("iv");
    assert_eq!(c["Mounts"][0]["Destination"], "/etc", "{c}");
    assert_eq!(volume_dirs(&root).len(), 1);
    root.ok(&["rm", "-v", "iv"]);
    assert!(volume_dirs(&root).is_empty());

    // `run --rm` takes its anonymous volumes along, never the named ones.
    root.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "/gone",
        "-v",
        "named:/n",
        "busybox",
        "true",
    ]);
    assert_eq!(volume_dirs(&root), ["named"]);
}

#[test]
fn volume_contents_are_never_in_diff_commit_or_export() {
    let root = DockRoot::with_busybox();
    let host = HostDir::new();
    let bind = format!("{}:/bound", host.path().display());
    root.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "w",
        "-v",
        &bind,
        "-v",
        "vol:/vol",
        "-v",
        "/anon",
        "--tmpfs",
        "/tmpfs",
        "busybox",
        "sh",
        "-c",
        "for d in /bound /vol /anon /tmpfs; do echo secret > $d/secret; done; \
         echo mine > /own; touch /ready; sleep 1000",
    ]);
    // Export of the running container: the host's view of its rootfs has no volumes.
    let mut ready = false;
    for _ in 0..500 {
        if root.ok(&["diff", "w"]).contains("/ready") {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(ready, "the container never wrote /ready");
    let check = |entries: &[String], what: &str| {
        assert!(entries.iter().any(|e| e == "own"), "{what}: {entries:?}");
        assert!(
            !entries.iter().any(|e| e.ends_with("secret")),
            "{what} holds volume data: {entries:?}"
        );
    };
    let out = root.run(&["export", "w"]);
    assert!(out.status.success(), "{}", stderr(&out));
    check(&tar_entries(&out.stdout), "export (running)");
    let diff = root.ok(&["diff", "w"]);
    assert!(
        diff.contains("A /own") && !diff.contains("secret"),
        "{diff}"
    );
    root.ok(&["kill", "w"]);

    let out = root.cmd().args(["export", "w"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    check(&tar_entries(&out.stdout), "export (stopped)");
    let image = root.ok(&["commit", "w", "committed"]).trim().to_string();
    let out = root.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "committed",
        "sh",
        "-c",
        "cat /own; find /bound /vol /anon /tmpfs -type f",
    ]);
    assert_eq!(ok_out(&out, "run the commit"), "mine\n", "{image}");
    assert_eq!(
        std::fs::read_to_string(host.join("secret")).unwrap(),
        "secret\n"
    );
}

#[test]
fn the_containers_etc_files_name_it_and_resolve_like_the_host() {
    let root = DockRoot::with_busybox();
    let host = HostDir::new();
    let resolv = host.join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 127.0.0.53\nnameserver 10.9.8.7\nsearch corp.test\noptions ndots:2\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        root.cmd()
            .env("DOCK_RESOLV_CONF", &resolv)
            .args(args)
            .output()
            .unwrap()
    };
    // Bridge network: /etc/hosts names the container at its address.
    let out = run(&[
        "run",
        "--name",
        "named-box",
        "-h",
        "box",
        "--add-host",
        "a:1.2.3.4",
        "busybox",
        "sh",
        "-c",
        "cat /etc/resolv.conf; echo --; cat /etc/hostname; hostname; echo --; cat /etc/hosts",
    ]);
    let text = ok_out(&out, "run");
    let (resolv_text, rest) = text.split_once("--\n").unwrap();
    let (names, hosts) = rest.split_once("--\n").unwrap();
    assert_eq!(
        resolv_text, "nameserver 10.9.8.7\nsearch corp.test\noptions ndots:2\n",
        "the loopback nameserver goes, the rest stays"
    );
    assert_eq!(names, "box\nbox\n");
    assert!(hosts.starts_with("127.0.0.1\tlocalhost\n"), "{hosts}");
    assert!(hosts.contains("1.2.3.4\ta\n"), "{hosts}");
    let box_line = hosts.lines().last().unwrap();
    let (ip, name) = box_line.split_once('\t').unwrap();
    assert_eq!(name, "box");
    let ip: std::net::Ipv4Addr = ip.parse().unwrap();
    assert!(ip.is_private(), "{box_line}");
    // The files are the container's own, in its directory, and never part of its changes.
    assert_eq!(root.ok(&["diff", "named-box"]), "");
    let id = root.inspect("named-box")["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = root.path().join("containers").join(&id);
    assert_eq!(
        std::fs::read_to_string(dir.join("hostname")).unwrap(),
        "box\n"
    );

    // --dns and --dns-search replace the host's.
    let out = run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--dns",
        "10.0.0.53",
        "--dns-search",
        "x.test",
        "busybox",
        "cat",
        "/etc/resolv.conf",
    ]);
    assert_eq!(
        ok_out(&out, "--dns"),
        "nameserver 10.0.0.53\nsearch x.test\noptions ndots:2\n"
    );
    // Without networking, /etc/hosts has no address for the container.
    let out = run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-h",
        "alone",
        "busybox",
        "cat",
        "/etc/hosts",
    ]);
    assert!(!ok_out(&out, "hosts").contains("alone"));
    // Bad values are refused before anything exists.
    for bad in [["--dns", "ns.example"], ["--add-host", "nocolon"]] {
        let out = run(&["run", "--rm", bad[0], bad[1], "busybox", "true"]);
        assert_eq!(code(&out), 125, "{bad:?}: {}", stderr(&out));
    }
}

/// `dock daemon` on the root's socket, killed on drop (before the root is cleaned).
struct Daemon {
    child: Child,
    host: String,
    config: tempfile::TempDir,
    // Dropped after the daemon: field order.
    root: DockRoot,
}

impl Daemon {
    fn start(root: DockRoot) -> Daemon {
        let socket = root.path().join("api.sock");
        let host = format!("unix://{}", socket.display());
        let log = std::fs::File::create(root.path().join("daemon.log")).unwrap();
        let child = Command::new(common::dock_bin())
            .arg("--root")
            .arg(root.path())
            .args(["daemon", "-H", &host])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        for _ in 0..1000 {
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Daemon {
            child,
            host,
            config: tempfile::tempdir().unwrap(),
            root,
        }
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .args(["-k", "5", "60", "docker"])
            .args(args)
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", self.config.path())
            .env("DOCKER_CLI_HINTS", "false")
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        ok_out(&self.docker(args), &format!("docker {args:?}"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) of the daemon we spawned and have not reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

#[test]
fn the_docker_cli_runs_with_volumes_and_manages_them() {
    let daemon = Daemon::start(DockRoot::with_busybox());
    let host = HostDir::new();
    let bind = format!("{}:/data", host.path().display());
    let out = daemon.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &bind,
        "-v",
        "dvol:/v",
        "-v",
        "/anon",
        "--tmpfs",
        "/t",
        "busybox",
        "sh",
        "-c",
        "echo via-docker > /data/f; echo v > /v/f; echo a > /anon/a; echo t > /t/t; cat /v/f",
    ]);
    assert_eq!(out, "v\n");
    assert_eq!(
        std::fs::read_to_string(host.join("f")).unwrap(),
        "via-docker\n"
    );
    // --rm took the anonymous volume; the named one stays.
    let listed = daemon.ok(&["volume", "ls", "--format", "{{.Driver}} {{.Name}}"]);
    assert_eq!(listed, "local dvol\n");

    assert_eq!(daemon.ok(&["volume", "create", "made"]).trim(), "made");
    let inspected = daemon.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "made"]);
    assert!(
        inspected.trim().ends_with("volumes/made/_data"),
        "{inspected}"
    );

    daemon.ok(&[
        "run",
        "--name",
        "user",
        "--network",
        "none",
        "-v",
        "made:/m",
        "busybox",
        "true",
    ]);
    let mounts = daemon.ok(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}} {{.RW}}{{end}}",
        "user",
    ]);
    assert_eq!(mounts.trim(), "volume made /m true");
    let out = daemon.docker(&["volume", "rm", "made"]);
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains("volume is in use"),
        "{}",
        stderr(&out)
    );
    daemon.ok(&["rm", "user"]);
    daemon.ok(&["volume", "rm", "made", "dvol"]);
    assert_eq!(daemon.ok(&["volume", "ls", "-q"]), "");
    assert!(volume_dirs(&daemon.root).is_empty());

    // The container's /etc files through the API's Dns, DnsSearch and ExtraHosts.
    let out = daemon.ok(&[
        "run", "--rm", "--network", "none", "--dns", "10.0.0.53", "--dns-search", "x.test",
        "--add-host", "a:1.2.3.4", "-h", "dbox", "busybox", "sh", "-c",
        "grep -c '^nameserver 10.0.0.53$' /etc/resolv.conf; grep -c '^search x.test$' /etc/resolv.conf; \
         grep -c '^1.2.3.4	a$' /etc/hosts; cat /etc/hostname",
    ]);
    assert_eq!(out, "1\n1\n1\ndbox\n");

    // docker rm -v takes the container's anonymous volume along.
    daemon.ok(&[
        "run",
        "--name",
        "anon",
        "--network",
        "none",
        "-v",
        "/a",
        "busybox",
        "true",
    ]);
    assert_eq!(volume_dirs(&daemon.root).len(), 1);
    daemon.ok(&["rm", "-v", "anon"]);
    assert!(volume_dirs(&daemon.root).is_empty());

    // Binds of a missing path: created for -v, refused for --mount type=bind.
    let missing = host.join("new");
    daemon.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &format!("{}:/n", missing.display()),
        "busybox",
        "true",
    ]);
    assert!(missing.is_dir());
    let out = daemon.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--mount",
        &format!("type=bind,src={},dst=/n", host.join("nope").display()),
        "busybox",
        "true",
    ]);
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains("bind source path does not exist"),
        "{}",
        stderr(&out)
    );
}
