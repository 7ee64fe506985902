//! `cp` and `rename`, with `dock` and with the real `docker` CLI through `dock daemon`:
//! docker's path rules, stopped and running containers, and symlinks in the container that
//! point outside it (no file outside the container is read or written).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::daemon::{http_exchange, Daemon};
use common::{assert_fails, code, stderr, DockRoot};

/// The container's `/etc/passwd` (the busybox fixture's), never the host's.
fn container_passwd() -> String {
    "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/:/bin/false\nnobody:x:65534:65534:nobody:/:/bin/false\n".into()
}

/// A name no file on the host has: what an escape would create.
fn unique(tag: &str) -> String {
    format!("dock-cp-{tag}-{}-{}", std::process::id(), rand_suffix())
}

fn rand_suffix() -> u64 {
    let mut buf = [0u8; 8];
    getrandom::fill(&mut buf).unwrap();
    u64::from_le_bytes(buf)
}

/// A tar (as bytes) holding the symlinks `escape -> /etc` and `up -> ../../../../..`.
fn escaping_links_tar() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, target) in [("escape", "/etc"), ("up", "../../../../..")] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_mode(0o777);
        header.set_size(0);
        builder.append_link(&mut header, name, target).unwrap();
    }
    builder.into_inner().unwrap()
}

/// `dock cp - CTR:/` with the escaping symlinks.
fn plant_links(root: &DockRoot, ctr: &str) {
    let mut child = root
        .cmd()
        .args(["cp", "-", &format!("{ctr}:/")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&escaping_links_tar())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "planting links: {}", stderr(&out));
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Host paths an escape through `/escape` or `/up` would have written for `name`.
fn escape_targets(name: &str) -> Vec<PathBuf> {
    vec![
        Path::new("/etc").join(name),
        Path::new("/").join(name),
        Path::new("/tmp").join(name),
    ]
}

fn assert_absent(paths: &[PathBuf]) {
    for p in paths {
        assert!(
            std::fs::symlink_metadata(p).is_err(),
            "{} appeared outside the container",
            p.display()
        );
    }
}

#[test]
fn dock_cp_copies_files_and_directories_both_ways_on_stopped_containers() {
    let root = DockRoot::with_busybox();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    root.ok(&[
        "create",
        "--name",
        "never",
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    write(&w.join("f.txt"), "hello\n");
    std::fs::create_dir_all(w.join("dir/sub")).unwrap();
    write(&w.join("dir/sub/a"), "A");

    // A file into an existing directory, a file to a new name, a directory to a new name.
    root.ok(&["cp", w.join("f.txt").to_str().unwrap(), "never:/tmp"]);
    root.ok(&[
        "cp",
        w.join("f.txt").to_str().unwrap(),
        "never:/tmp/renamed",
    ]);
    root.ok(&["cp", w.join("dir").to_str().unwrap(), "never:/tmp/newdir"]);
    assert!(root.mounts().is_empty(), "mounts left: {:?}", root.mounts());

    // Back out.
    root.ok(&[
        "cp",
        "never:/tmp/f.txt",
        w.join("out.txt").to_str().unwrap(),
    ]);
    assert_eq!(read(&w.join("out.txt")), "hello\n");
    root.ok(&[
        "cp",
        "never:/tmp/renamed",
        w.join("renamed").to_str().unwrap(),
    ]);
    assert_eq!(read(&w.join("renamed")), "hello\n");
    std::fs::create_dir(w.join("into")).unwrap();
    root.ok(&["cp", "never:/tmp/newdir", w.join("into").to_str().unwrap()]);
    assert_eq!(read(&w.join("into/newdir/sub/a")), "A");
    // `/.`: the directory's contents, not the directory.
    root.ok(&[
        "cp",
        "never:/tmp/newdir/.",
        w.join("contents").to_str().unwrap(),
    ]);
    assert_eq!(read(&w.join("contents/sub/a")), "A");
    // A directory to a new local name.
    root.ok(&["cp", "never:/etc", w.join("etccopy").to_str().unwrap()]);
    assert_eq!(read(&w.join("etccopy/passwd")), container_passwd());
    assert!(root.mounts().is_empty(), "mounts left: {:?}", root.mounts());

    // An exited container too; what it wrote is there.
    root.ok(&[
        "run",
        "--name",
        "exited",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo ran > /ran",
    ]);
    root.ok(&["cp", "exited:/ran", w.join("ran").to_str().unwrap()]);
    assert_eq!(read(&w.join("ran")), "ran\n");
    root.ok(&["cp", w.join("f.txt").to_str().unwrap(), "exited:/"]);
    let out = root.ok(&["start", "-a", "exited"]);
    assert_eq!(out, "", "a restart still works after a copy");
    root.ok(&["cp", "exited:/f.txt", w.join("back.txt").to_str().unwrap()]);
    assert_eq!(read(&w.join("back.txt")), "hello\n");
    assert!(root.mounts().is_empty(), "mounts left: {:?}", root.mounts());
}

#[test]
fn dock_cp_follows_docker_path_rules_and_errors() {
    let root = DockRoot::with_busybox();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    root.ok(&[
        "create",
        "--name",
        "c1",
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    write(&w.join("f"), "x");
    let f = w.join("f");
    let f = f.to_str().unwrap();

    let out = root.run(&["cp", "c1:/nope", w.to_str().unwrap()]);
    assert_fails(&out, 1, "Could not find the file /nope in container c1");
    let out = root.run(&["cp", f, "c1:/nodir/x"]);
    assert_fails(&out, 1, "Could not find the file /nodir in container c1");
    let out = root.run(&["cp", f, "c1:/newdir/"]);
    assert!(
        stderr(&out).contains("no such directory"),
        "{}",
        stderr(&out)
    );
    let out = root.run(&["cp", w.to_str().unwrap(), "c1:/etc/passwd"]);
    assert!(
        stderr(&out).contains("cannot copy directory"),
        "{}",
        stderr(&out)
    );
    let out = root.run(&["cp", "c1:/etc", f]);
    assert!(
        stderr(&out).contains("cannot copy directory"),
        "{}",
        stderr(&out)
    );
    let out = root.run(&["cp", "c1:/etc/passwd", w.join("nodir/x").to_str().unwrap()]);
    assert!(
        stderr(&out).contains("invalid output path: directory"),
        "{}",
        stderr(&out)
    );
    let out = root.run(&["cp", "a", "b"]);
    assert!(stderr(&out).contains("must specify at least one container source"));
    let out = root.run(&["cp", "c1:/a", "c1:/b"]);
    assert!(stderr(&out).contains("copying between containers is not supported"));
    let out = root.run(&["cp", "nosuch:/etc", w.to_str().unwrap()]);
    assert_fails(&out, 1, "no such container");
    // A file onto an existing directory of the same name is refused (NoOverwriteDirNonDir).
    std::fs::create_dir(w.join("passwd")).unwrap();
    root.ok(&["cp", w.join("passwd").to_str().unwrap(), "c1:/tmp/"]);
    let out = root.run(&["cp", "c1:/etc/passwd", w.to_str().unwrap()]);
    assert!(
        stderr(&out).contains("cannot overwrite directory"),
        "{}",
        stderr(&out)
    );

    // Owners: root's without -a, the archive's with it.
    std::os::unix::fs::chown(f, Some(1234), Some(4321)).unwrap();
    root.ok(&["cp", f, "c1:/tmp/plain"]);
    root.ok(&["cp", "-a", f, "c1:/tmp/kept"]);
    for (name, uid, gid) in [("plain", 0, 0), ("kept", 1234, 4321)] {
        let tar = root
            .cmd()
            .args(["cp", &format!("c1:/tmp/{name}"), "-"])
            .output()
            .unwrap();
        assert!(tar.status.success(), "{}", stderr(&tar));
        let mut archive = tar::Archive::new(tar.stdout.as_slice());
        let entry = archive.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap(), Path::new(name));
        assert_eq!(entry.header().uid().unwrap(), uid, "{name}");
        assert_eq!(entry.header().gid().unwrap(), gid, "{name}");
    }
    // A tar on stdin needs a directory.
    let out = root.run(&["cp", "-", "c1:/etc/passwd"]);
    assert!(
        stderr(&out).contains("must be a directory"),
        "{}",
        stderr(&out)
    );
    assert!(root.mounts().is_empty(), "mounts left: {:?}", root.mounts());
}

/// Copies in and out through `/escape -> /etc` and `/up -> ../../../../..` stay in the
/// container: checked against the host's files.
fn check_no_escape(root: &DockRoot, ctr: &str, w: &Path) {
    let name = unique("in");
    write(&w.join(&name), "planted");
    let src = w.join(&name);
    let src = src.to_str().unwrap();
    for dest in ["/escape/", "/up/", "/up/etc/", "/up/tmp/"] {
        root.ok(&["cp", src, &format!("{ctr}:{dest}")]);
    }
    assert_absent(&escape_targets(&name));
    // They landed in the container's own /etc, / and /tmp.
    for inside in ["/etc", "", "/tmp"] {
        let out = w.join(format!("got-{}", inside.replace('/', "_")));
        root.ok(&[
            "cp",
            &format!("{ctr}:{inside}/{name}"),
            out.to_str().unwrap(),
        ]);
        assert_eq!(read(&out), "planted");
    }
    // Out: the container's passwd, never the host's.
    for src in ["/escape/passwd", "/up/etc/passwd", "/up/../../etc/passwd"] {
        let out = w.join(unique("out"));
        root.ok(&["cp", &format!("{ctr}:{src}"), out.to_str().unwrap()]);
        assert_eq!(read(&out), container_passwd(), "{src}");
    }
    // -L follows the link in the container: its /etc, named as the link.
    let out = w.join(unique("follow"));
    root.ok(&["cp", "-L", &format!("{ctr}:/escape"), out.to_str().unwrap()]);
    assert_eq!(read(&out.join("passwd")), container_passwd());
    // Without -L the link itself is copied.
    let out = w.join(unique("link"));
    root.ok(&["cp", &format!("{ctr}:/escape"), out.to_str().unwrap()]);
    assert_eq!(std::fs::read_link(&out).unwrap(), Path::new("/etc"));
    // A tar that walks through its own symlink is refused, nothing written outside.
    let evil = unique("evil");
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    builder.append_link(&mut header, "hop", "/etc").unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_size(1);
    header.set_mode(0o644);
    builder
        .append_data(&mut header, format!("hop/{evil}"), &b"x"[..])
        .unwrap();
    let tar = builder.into_inner().unwrap();
    let mut child = root
        .cmd()
        .args(["cp", "-", &format!("{ctr}:/tmp")])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&tar).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        !out.status.success(),
        "a tar through its own symlink must fail"
    );
    assert_absent(&escape_targets(&evil));
}

#[test]
fn dock_cp_through_symlinks_never_leaves_the_container() {
    let root = DockRoot::with_busybox();
    let work = tempfile::tempdir().unwrap();
    let host_passwd = read(Path::new("/etc/passwd"));
    root.ok(&[
        "create",
        "--name",
        "stopped",
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    plant_links(&root, "stopped");
    check_no_escape(&root, "stopped", work.path());
    assert!(root.mounts().is_empty(), "mounts left: {:?}", root.mounts());

    root.ok(&[
        "run",
        "-d",
        "--name",
        "running",
        "--network",
        "none",
        "busybox",
        "sleep",
        "300",
    ]);
    plant_links(&root, "running");
    check_no_escape(&root, "running", work.path());
    assert_eq!(read(Path::new("/etc/passwd")), host_passwd);
    root.ok(&["rm", "-f", "running"]);
}

#[test]
fn dock_cp_reaches_a_running_containers_volume_and_refuses_a_stopped_ones() {
    let root = DockRoot::with_busybox();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    write(&w.join("v.txt"), "in the volume");
    root.ok(&[
        "run",
        "-d",
        "--name",
        "vc",
        "--network",
        "none",
        "-v",
        "cpvol:/data",
        "busybox",
        "sleep",
        "300",
    ]);
    root.ok(&["cp", w.join("v.txt").to_str().unwrap(), "vc:/data/"]);
    let out = root.ok(&["exec", "vc", "cat", "/data/v.txt"]);
    assert_eq!(out, "in the volume");
    root.ok(&["cp", "vc:/data/v.txt", w.join("back").to_str().unwrap()]);
    assert_eq!(read(&w.join("back")), "in the volume");
    // A file the container writes in its rootfs while running.
    root.ok(&["exec", "vc", "sh", "-c", "echo live > /live"]);
    root.ok(&["cp", "vc:/live", w.join("live").to_str().unwrap()]);
    assert_eq!(read(&w.join("live")), "live\n");

    // Its own hosts file (a bind mount in its namespace), as `cat` inside shows it.
    root.ok(&["cp", "vc:/etc/hosts", w.join("hosts").to_str().unwrap()]);
    assert_eq!(
        read(&w.join("hosts")),
        root.ok(&["exec", "vc", "cat", "/etc/hosts"])
    );
    assert!(read(&w.join("hosts")).contains("localhost"));

    // A directory copied into / whose entries would land under the volume is refused.
    std::fs::create_dir_all(w.join("tree/data")).unwrap();
    write(&w.join("tree/data/hidden"), "x");
    let out = root.run(&["cp", &format!("{}/.", w.join("tree").display()), "vc:/"]);
    assert_fails(&out, 1, "would land under the mount at /data");

    root.ok(&["stop", "-t", "0", "vc"]);
    let mounts_before = root.mounts();
    let out = root.run(&["cp", w.join("v.txt").to_str().unwrap(), "vc:/data/"]);
    assert_fails(
        &out,
        1,
        "it lies in the mount at /data, which is mounted only while the container runs",
    );
    // The rootfs outside the volume still works.
    root.ok(&["cp", w.join("v.txt").to_str().unwrap(), "vc:/tmp/"]);
    assert_eq!(root.mounts(), mounts_before, "a copy left a mount");
}

#[test]
fn dock_rename_works_running_or_stopped_and_refuses_what_docker_refuses() {
    let root = DockRoot::with_busybox();
    root.ok(&[
        "create",
        "--name",
        "old",
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    let holder = root.ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "--network",
        "none",
        "busybox",
        "sleep",
        "300",
    ]);
    root.ok(&["rename", "old", "new1"]);
    assert_eq!(
        root.inspect("new1")["Name"]
            .as_str()
            .unwrap()
            .trim_start_matches('/'),
        "new1"
    );
    root.ok(&["rename", "busy", "busy2"]);
    assert_eq!(root.inspect("busy2")["State"]["Running"], true);
    let out = root.run(&["rename", "new1", "busy2"]);
    assert_eq!(code(&out), 1);
    let holder = holder.trim();
    assert!(
        stderr(&out).contains(&format!(
            "Conflict. The container name \"/busy2\" is already in use by container \"{holder}\". You have to remove (or rename) that container to be able to reuse that name."
        )),
        "{}",
        stderr(&out)
    );
    let out = root.run(&["rename", "new1", "bad name"]);
    assert!(
        stderr(&out).contains("Invalid container name (bad name)"),
        "{}",
        stderr(&out)
    );
    let out = root.run(&["rename", "new1", "new1"]);
    assert!(stderr(&out).contains("Renaming a container with the same name as its current name"));
    let out = root.run(&["rename", "nosuch", "x1"]);
    assert!(
        stderr(&out).contains("no such container"),
        "{}",
        stderr(&out)
    );
    // The new name reaches the container; the old one is free again.
    root.ok(&[
        "create",
        "--name",
        "old",
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    root.ok(&["rm", "-f", "busy2"]);
}

// ---- the real docker CLI through `dock daemon` ----

/// One raw HTTP/1.0 request (so no chunked answer) to the daemon; (status, response head,
/// body).
fn http(daemon: &Daemon, method: &str, path: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: dock\r\nConnection: close\r\nContent-Length: {}\r\nContent-Type: application/x-tar\r\n\r\n",
        body.len()
    );
    http_exchange(&daemon.socket, &head, body)
}

#[test]
fn docker_cp_in_and_out_of_stopped_and_running_containers_without_escaping() {
    let daemon = Daemon::start();
    daemon.import_busybox("bb");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let host_passwd = read(Path::new("/etc/passwd"));
    write(&w.join("f.txt"), "from docker\n");
    std::fs::create_dir_all(w.join("dir/sub")).unwrap();
    write(&w.join("dir/sub/a"), "A");
    let f = w.join("f.txt");
    let f = f.to_str().unwrap();

    daemon.docker_ok(&[
        "create",
        "--name",
        "dc",
        "--network",
        "none",
        "bb",
        "sleep",
        "300",
    ]);
    // A stopped (never started) container: a file, a directory, both ways.
    daemon.docker_ok(&["cp", f, "dc:/tmp/"]);
    daemon.docker_ok(&["cp", w.join("dir").to_str().unwrap(), "dc:/tmp/d2"]);
    daemon.docker_ok(&["cp", "dc:/tmp/f.txt", w.join("o1").to_str().unwrap()]);
    assert_eq!(read(&w.join("o1")), "from docker\n");
    daemon.docker_ok(&["cp", "dc:/tmp/d2", w.join("o2").to_str().unwrap()]);
    assert_eq!(read(&w.join("o2/sub/a")), "A");
    daemon.docker_ok(&["cp", "dc:/tmp/d2/.", w.join("o3").to_str().unwrap()]);
    assert_eq!(read(&w.join("o3/sub/a")), "A");
    assert!(
        daemon.root.mounts().is_empty(),
        "mounts left: {:?}",
        daemon.root.mounts()
    );

    // Symlinks pointing outside, planted with a tar on stdin.
    let mut child = daemon
        .docker_cmd(&["cp", "-", "dc:/"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&escaping_links_tar())
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    for running in [false, true] {
        if running {
            daemon.docker_ok(&["start", "dc"]);
        }
        let name = unique("docker");
        write(&w.join(&name), "planted");
        let src = w.join(&name);
        for dest in ["dc:/escape/", "dc:/up/", "dc:/up/tmp/"] {
            daemon.docker_ok(&["cp", src.to_str().unwrap(), dest]);
        }
        assert_absent(&escape_targets(&name));
        let back = w.join(unique("back"));
        daemon.docker_ok(&["cp", &format!("dc:/etc/{name}"), back.to_str().unwrap()]);
        assert_eq!(read(&back), "planted");
        for src in ["dc:/escape/passwd", "dc:/up/etc/passwd"] {
            let out = w.join(unique("passwd"));
            daemon.docker_ok(&["cp", src, out.to_str().unwrap()]);
            assert_eq!(read(&out), container_passwd(), "{src} running={running}");
        }
        let out = w.join(unique("follow"));
        daemon.docker_ok(&["cp", "-L", "dc:/escape", out.to_str().unwrap()]);
        assert_eq!(read(&out.join("passwd")), container_passwd());
    }
    assert_eq!(read(Path::new("/etc/passwd")), host_passwd);

    // Docker's messages for a missing path, both ways.
    let out = daemon.docker(&["cp", "dc:/nope", w.to_str().unwrap()]);
    assert_fails(&out, 1, "Could not find the file /nope in container dc");
    let out = daemon.docker(&["cp", f, "dc:/nodir/x"]);
    assert_fails(&out, 1, "Could not find the file /nodir in container dc");
    // A body larger than the socket's buffers is still being sent when the daemon answers:
    // the client gets the answer, not a broken pipe.
    let big = w.join("big");
    std::fs::write(&big, vec![7u8; 4 << 20]).unwrap();
    let out = daemon.docker(&["cp", big.to_str().unwrap(), "dc:/nodir/x"]);
    assert_fails(&out, 1, "Could not find the file /nodir in container dc");
}

#[test]
fn archive_endpoints_answer_with_dockers_statuses_and_stat_header() {
    let daemon = Daemon::start();
    daemon.import_busybox("bb");
    daemon.docker_ok(&["create", "--name", "ac", "--network", "none", "bb", "true"]);
    daemon.docker_ok(&[
        "create",
        "--name",
        "ro",
        "--read-only",
        "--network",
        "none",
        "bb",
        "true",
    ]);

    let (status, head, body) = http(
        &daemon,
        "HEAD",
        "/v1.44/containers/ac/archive?path=/etc/passwd",
        b"",
    );
    assert_eq!(status, 200);
    assert!(body.is_empty());
    let line = head
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("x-docker-container-path-stat:")
        })
        .expect("stat header");
    let encoded = line.split_once(':').unwrap().1.trim();
    use base64::Engine as _;
    let json = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    let stat: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(stat["name"], "passwd");
    assert_eq!(stat["size"], container_passwd().len());
    assert_eq!(stat["mode"], 0o644);
    assert_eq!(stat["linkTarget"], "");
    assert!(stat["mtime"].is_string());
    // A directory carries Go's ModeDir bit.
    let (_, head, _) = http(&daemon, "HEAD", "/containers/ac/archive?path=/etc", b"");
    assert!(head
        .to_ascii_lowercase()
        .contains("x-docker-container-path-stat"));

    let (status, _, body) = http(&daemon, "GET", "/containers/ac/archive?path=/etc", b"");
    assert_eq!(status, 200);
    let mut archive = tar::Archive::new(body.as_slice());
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"etc/passwd".to_string()), "{names:?}");

    assert_eq!(
        http(&daemon, "HEAD", "/containers/ac/archive?path=/nope", b"").0,
        404
    );
    assert_eq!(
        http(&daemon, "GET", "/containers/ac/archive?path=/nope", b"").0,
        404
    );
    assert_eq!(
        http(&daemon, "GET", "/containers/nosuch/archive?path=/", b"").0,
        404
    );
    assert_eq!(http(&daemon, "GET", "/containers/ac/archive", b"").0, 400);

    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(2);
    header.set_mode(0o644);
    builder
        .append_data(&mut header, "put.txt", &b"hi"[..])
        .unwrap();
    let tar = builder.into_inner().unwrap();
    assert_eq!(
        http(&daemon, "PUT", "/containers/ac/archive?path=/tmp", &tar).0,
        200
    );
    // A compressed body is taken as docker takes it.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(2);
    header.set_mode(0o644);
    builder
        .append_data(&mut header, "gz.txt", &b"gz"[..])
        .unwrap();
    gz.write_all(&builder.into_inner().unwrap()).unwrap();
    let gz = gz.finish().unwrap();
    assert_eq!(
        http(&daemon, "PUT", "/containers/ac/archive?path=/tmp", &gz).0,
        200
    );
    assert!(daemon
        .docker_ok(&["cp", "ac:/tmp/gz.txt", "-"])
        .contains("gz"));
    assert_eq!(
        http(
            &daemon,
            "PUT",
            "/containers/ac/archive?path=/etc/passwd",
            &tar
        )
        .0,
        400
    );
    assert_eq!(
        http(&daemon, "PUT", "/containers/ac/archive?path=/nodir", &tar).0,
        404
    );
    let (status, _, body) = http(&daemon, "PUT", "/containers/ro/archive?path=/tmp", &tar);
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("container rootfs is marked read-only"));
    // noOverwriteDirNonDir: a file over the directory /tmp.
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(0);
    header.set_mode(0o644);
    builder.append_data(&mut header, "tmp", &b""[..]).unwrap();
    let file_over_dir = builder.into_inner().unwrap();
    let (status, _, body) = http(
        &daemon,
        "PUT",
        "/containers/ac/archive?path=/&noOverwriteDirNonDir=true",
        &file_over_dir,
    );
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("cannot overwrite directory"));
    let out = daemon.docker_ok(&["cp", "ac:/tmp/put.txt", "-"]);
    assert!(out.contains("hi"));
    assert!(
        daemon.root.mounts().is_empty(),
        "mounts left: {:?}",
        daemon.root.mounts()
    );
}

#[test]
fn docker_rename_through_the_daemon() {
    let daemon = Daemon::start();
    daemon.import_busybox("bb");
    daemon.docker_ok(&[
        "create",
        "--name",
        "first",
        "--network",
        "none",
        "bb",
        "true",
    ]);
    let running = daemon.docker_ok(&[
        "run",
        "-d",
        "--name",
        "second",
        "--network",
        "none",
        "bb",
        "sleep",
        "300",
    ]);
    daemon.docker_ok(&["rename", "first", "renamed"]);
    daemon.docker_ok(&["rename", "second", "second2"]);
    let names = daemon.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(names, ["renamed", "second2"]);
    let out = daemon.docker(&["rename", "renamed", "second2"]);
    assert_fails(&out, 1, &format!(
            "Conflict. The container name \"/second2\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
            running.trim()
        ));
    assert_eq!(
        http(
            &daemon,
            "POST",
            "/containers/renamed/rename?name=second2",
            b""
        )
        .0,
        409
    );
    assert_eq!(
        http(&daemon, "POST", "/containers/renamed/rename?name=-bad", b"").0,
        400
    );
    assert_eq!(
        http(
            &daemon,
            "POST",
            "/containers/nosuch/rename?name=okname",
            b""
        )
        .0,
        404
    );
    assert_eq!(
        http(
            &daemon,
            "POST",
            "/containers/renamed/rename?name=again",
            b""
        )
        .0,
        204
    );
}
