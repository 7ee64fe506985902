//! `dock push` to a real `docker-registry`: what lands there is checked with skopeo (an
//! independent client), a second push uploads nothing, a push to another repository of the
//! same registry mounts, and an unauthorized push says how to log in.

mod common;
#[path = "../crates/registry/tests/common/mod.rs"]
mod registry_common;

use std::fs;
use std::io::Read;
use std::path::Path;

use common::{stderr, stdout, DockRoot};
use registry_common::*;

fn sha256_file(path: &Path) -> String {
    sha256(&fs::read(path).unwrap())
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn tar_names(tar: &[u8]) -> Vec<String> {
    tar::Archive::new(tar)
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

/// An image committed from a busybox container that wrote /hello; its id.
fn committed_image(root: &DockRoot) -> String {
    let out = root.run(&[
        "run",
        "--name",
        "maker",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo hello from dock > /hello",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = root
        .ok(&["commit", "-m", "add hello", "maker"])
        .trim()
        .to_string();
    root.ok(&["rm", "maker"]);
    id
}

#[test]
fn push_of_a_commit_is_read_back_by_skopeo() {
    let reg = TestRegistry::start();
    let root = DockRoot::with_busybox();
    let host = reg.host();
    let id = committed_image(&root);
    let name = format!("{host}/x:1");
    root.ok(&["tag", &id, &name]);

    let out = root.ok(&["push", &name]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!("The push refers to repository [{host}/x]")
    );
    assert_eq!(
        lines.iter().filter(|l| l.ends_with(": Preparing")).count(),
        2,
        "{out}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.ends_with(": Pushed")).count(),
        2,
        "{out}"
    );
    let last = lines.last().unwrap();
    assert!(last.starts_with("1: digest: sha256:"), "{out}");
    let digest = last.split_whitespace().nth(2).unwrap().to_string();
    let size: usize = last.split_whitespace().nth(4).unwrap().parse().unwrap();

    // skopeo sees a schema 2 manifest with that digest and size, gzip layers and the config.
    let src = format!("docker://{name}");
    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &src]).stdout;
    assert_eq!(sha256(&raw), digest);
    assert_eq!(raw.len(), size);
    let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    for l in layers {
        assert_eq!(
            l["mediaType"],
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
    }
    let config_raw = skopeo(&["inspect", "--tls-verify=false", "--config", "--raw", &src]).stdout;
    assert_eq!(sha256(&config_raw), manifest["config"]["digest"]);
    let config: serde_json::Value = serde_json::from_slice(&config_raw).unwrap();
    assert_eq!(config["os"], "linux");
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap().clone();
    assert_eq!(diff_ids.len(), 2);
    assert_eq!(config["history"].as_array().unwrap().len(), 2);

    // skopeo copy checks every digest; the layers' diff ids are the config's, and the top
    // layer holds the committed file.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("img");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &src,
        &format!("dir:{}", copy.display()),
    ]);
    for (l, diff_id) in layers.iter().zip(&diff_ids) {
        let blob = copy.join(&l["digest"].as_str().unwrap()[7..]);
        assert_eq!(sha256_file(&blob), l["digest"]);
        assert_eq!(
            fs::metadata(&blob).unwrap().len(),
            l["size"].as_u64().unwrap()
        );
        let tar = gunzip(&fs::read(&blob).unwrap());
        assert_eq!(sha256(&tar), *diff_id);
    }
    let top = gunzip(&fs::read(copy.join(&layers[1]["digest"].as_str().unwrap()[7..])).unwrap());
    assert!(
        tar_names(&top)
            .iter()
            .any(|n| n.trim_start_matches("./") == "hello"),
        "{:?}",
        tar_names(&top)
    );
    let base = gunzip(&fs::read(copy.join(&layers[0]["digest"].as_str().unwrap()[7..])).unwrap());
    assert!(tar_names(&base)
        .iter()
        .any(|n| n.trim_start_matches("./") == "bin/busybox"));

    // The store remembers the repo digest and, per layer, the blob it was pushed as.
    let meta: serde_json::Value = serde_json::from_slice(
        &fs::read(root.path().join("graph").join(&id).join("meta.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(meta["repo_digests"][0], format!("{host}/x@{digest}"));
    assert_eq!(
        root.inspect(&name)["RepoDigests"],
        serde_json::json!([format!("{host}/x@{digest}")])
    );

    // A second push uploads nothing and gives the same digest.
    let again = root.ok(&["push", &name]);
    assert_eq!(
        again
            .lines()
            .filter(|l| l.ends_with(": Layer already exists"))
            .count(),
        2,
        "{again}"
    );
    assert!(
        again
            .trim_end()
            .ends_with(&format!("1: digest: {digest} size: {size}")),
        "{again}"
    );

    // Another repository of the same registry: the layers are mounted, not uploaded.
    let other = format!("{host}/team/y:2");
    root.ok(&["tag", &id, &other]);
    let mounted = root.ok(&["push", &other]);
    assert_eq!(
        mounted
            .lines()
            .filter(|l| l.ends_with(": Mounted from x"))
            .count(),
        2,
        "{mounted}"
    );
    assert!(
        mounted.contains(&format!("2: digest: {digest}")),
        "{mounted}"
    );

    // The imported base alone (no config of its own) gets a synthesized one.
    let base_name = format!("{host}/base:latest");
    root.ok(&["tag", "busybox", &base_name]);
    let out = root.ok(&["push", &format!("{host}/base")]);
    assert!(
        out.contains(": Mounted from x") || out.contains(": Layer already exists"),
        "{out}"
    );
    let base_config: serde_json::Value = serde_json::from_slice(
        &skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--config",
            "--raw",
            &format!("docker://{base_name}"),
        ])
        .stdout,
    )
    .unwrap();
    assert_eq!(base_config["rootfs"]["diff_ids"][0], diff_ids[0]);

    // -a: every tag of the repository, each with its digest line.
    root.ok(&["tag", &id, &format!("{host}/x:2")]);
    let all = root.ok(&["push", "-a", &format!("{host}/x")]);
    assert!(all.contains(&format!("1: digest: {digest}")), "{all}");
    assert!(all.contains(&format!("2: digest: {digest}")), "{all}");
    let out = root.run(&["push", "-a", &name]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn push_errors() {
    let reg = TestRegistry::start();
    let root = DockRoot::with_busybox();
    let host = reg.host();

    // Not in the store.
    let out = root.run(&["push", &format!("{host}/nothing:1")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "an image does not exist locally with the tag: {host}/nothing:1"
        )),
        "{}",
        stderr(&out)
    );
    // An unqualified name without a default registry contacts nothing.
    let out = root.run(&["push", "busybox"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("default-registry"),
        "{}",
        stderr(&out)
    );

    // A registry that wants a login: the error says which command to run.
    let front = FakeServer::start(|req| {
        let host = req.header("host").unwrap_or("").to_string();
        let c = format!(r#"Bearer realm="http://{host}/token",service="fake""#);
        if req.path.starts_with("/token") {
            return Answer::new(200, &[], r#"{"token": "pull-only"}"#);
        }
        if req.method == "GET" && req.path == "/v2/" {
            return Answer::new(401, &[("www-authenticate", &c)], "");
        }
        Answer::new(
            401,
            &[("www-authenticate", &c)],
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
        )
    });
    let name = format!("{}/locked:1", front.host());
    root.ok(&["tag", "busybox", &name]);
    let home = tempfile::tempdir().unwrap();
    let out = root
        .cmd()
        .args(["push", &name])
        .env("DOCKER_CONFIG", home.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&format!("dock login {}", front.host())),
        "{}",
        stderr(&out)
    );
}

/// `dock daemon` on a private socket, with `DOCK_CERTS_DIR`; SIGTERM'd on drop.
struct Daemon {
    root: DockRoot,
    socket: std::path::PathBuf,
    docker_config: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl Daemon {
    fn start(root: DockRoot, certs_dir: &Path) -> Daemon {
        let socket = root.path().join("api.sock");
        let log = fs::File::create(root.path().join("daemon.log")).unwrap();
        let child = std::process::Command::new(common::dock_bin())
            .arg("--root")
            .arg(root.path())
            .args(["daemon", "-H"])
            .arg(format!("unix://{}", socket.display()))
            .env("DOCK_LOG", "debug")
            .env("DOCK_CERTS_DIR", certs_dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let daemon = Daemon {
            root,
            socket,
            docker_config: tempfile::tempdir().unwrap(),
            child: Some(child),
        };
        for _ in 0..1000 {
            if std::os::unix::net::UnixStream::connect(&daemon.socket).is_ok() {
                return daemon;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("dock daemon never listened: {}", daemon.log());
    }

    fn log(&self) -> String {
        fs::read_to_string(self.root.path().join("daemon.log")).unwrap_or_default()
    }

    fn docker(&self, args: &[&str], input: Option<&str>) -> std::process::Output {
        use std::io::Write;
        let mut child = std::process::Command::new("timeout")
            .args(["-k", "5", "120", "docker"])
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
            .env("DOCKER_CONFIG", self.docker_config.path())
            .env("DOCKER_CLI_HINTS", "false")
            .env_remove("DOCKER_API_VERSION")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        if let Some(input) = input {
            stdin.write_all(input.as_bytes()).unwrap();
        }
        drop(stdin);
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str], input: Option<&str>) -> String {
        let out = self.docker(args, input);
        assert!(
            out.status.success(),
            "docker {args:?}: {}\n{}\ndaemon log:\n{}",
            stdout(&out),
            stderr(&out),
            self.log()
        );
        stdout(&out)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on the pid of our own unreaped child.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let _ = child.wait();
        }
    }
}

fn htpasswd(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("htpasswd");
    let out = std::process::Command::new("htpasswd")
        .args(["-Bbc", path.to_str().unwrap(), "alice", "s3cret"])
        .output()
        .expect("htpasswd (apache2-utils)");
    assert!(out.status.success());
    path
}

#[test]
fn docker_push_and_login_through_dock_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs.d");
    let plain = TestRegistry::start();
    let tls = Tls::generate(tmp.path());
    let locked = TestRegistry::start_with(RegistryOptions {
        tls: Some(&tls),
        htpasswd: Some(htpasswd(tmp.path())),
    });
    fs::create_dir_all(certs.join(locked.host())).unwrap();
    fs::copy(&tls.ca, certs.join(locked.host()).join("ca.crt")).unwrap();
    let daemon = Daemon::start(DockRoot::with_busybox(), &certs);

    // A plain registry on loopback: no login needed.
    let name = format!("{}/api/img:1", plain.host());
    daemon.ok(&["tag", "busybox", &name], None);
    let out = daemon.ok(&["push", &name], None);
    assert!(
        out.contains(&format!(
            "The push refers to repository [{}/api/img]",
            plain.host()
        )),
        "{out}"
    );
    assert!(out.contains(": Pushed"), "{out}");
    let digest = out
        .lines()
        .find_map(|l| l.strip_prefix("1: digest: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{name}"),
    ])
    .stdout;
    assert_eq!(sha256(&raw), digest);
    // Again: nothing uploaded.
    let out = daemon.ok(&["push", &name], None);
    assert!(out.contains(": Layer already exists"), "{out}");

    // Basic auth behind TLS: refused without a login, with one the CLI sends X-Registry-Auth.
    let host = locked.host();
    let name = format!("{host}/private/img:2");
    daemon.ok(&["tag", "busybox", &name], None);
    let out = daemon.docker(&["push", &name], None);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("dock login {host}")),
        "{}",
        stderr(&out)
    );
    let out = daemon.docker(
        &["login", &host, "-u", "alice", "--password-stdin"],
        Some("wrong\n"),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("incorrect username or password"),
        "{}",
        stderr(&out)
    );
    let out = daemon.ok(
        &["login", &host, "-u", "alice", "--password-stdin"],
        Some("s3cret\n"),
    );
    assert!(out.contains("Login Succeeded"), "{out}");
    let out = daemon.ok(&["push", &name], None);
    assert!(out.contains(": Pushed"), "{out}");
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        "alice:s3cret",
        "--raw",
        &format!("docker://{name}"),
    ])
    .stdout;
    let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
    // A pull goes with the CLI's login too (X-Registry-Auth on /images/create).
    daemon.ok(&["rmi", &name], None);
    let out = daemon.ok(&["pull", &name], None);
    assert!(out.contains("Status: "), "{out}");
    daemon.ok(&["image", "inspect", &name], None);
    let out = daemon.ok(&["logout", &host], None);
    assert!(
        out.contains(&format!("Removing login credentials for {host}")),
        "{out}"
    );
    daemon.ok(&["rmi", &name], None);
    let out = daemon.docker(&["pull", &name], None);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("dock login {host}")),
        "{}",
        stderr(&out)
    );
}

/// Checks what skopeo reads of `name` (plain HTTP): the manifest has `digest`, every layer's
/// blob has its digest and size and gunzips to the config's diff id. Returns the config.
fn verify_with_skopeo(name: &str, digest: &str) -> (serde_json::Value, Vec<Vec<u8>>) {
    let src = format!("docker://{name}");
    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &src]).stdout;
    assert_eq!(sha256(&raw), digest);
    let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let config_raw = skopeo(&["inspect", "--tls-verify=false", "--config", "--raw", &src]).stdout;
    assert_eq!(sha256(&config_raw), manifest["config"]["digest"]);
    let config: serde_json::Value = serde_json::from_slice(&config_raw).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("img");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &src,
        &format!("dir:{}", copy.display()),
    ]);
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), diff_ids.len());
    let mut tars = Vec::new();
    for (l, diff_id) in layers.iter().zip(diff_ids) {
        let blob = copy.join(&l["digest"].as_str().unwrap()[7..]);
        assert_eq!(sha256_file(&blob), l["digest"]);
        assert_eq!(
            fs::metadata(&blob).unwrap().len(),
            l["size"].as_u64().unwrap()
        );
        let tar = gunzip(&fs::read(&blob).unwrap());
        assert_eq!(sha256(&tar), *diff_id);
        tars.push(tar);
    }
    (config, tars)
}

#[test]
fn a_commit_on_a_pulled_image_is_pushed_and_pulled_by_another_root() {
    let reg = TestRegistry::start();
    // dock reaches the registry through a recording proxy, so requests can be counted.
    let front = FakeServer::start({
        let port = reg.port;
        move |_| Answer::Proxy(port)
    });
    let host = front.host();

    // The base: busybox in an OCI layout, pushed by skopeo.
    let dir = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(dir.path());
    let tar = fs::read(common::busybox_tar()).unwrap();
    let gz = gzip(&tar);
    let layer_digest = layout.blob(&gz);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": registry::Platform::host().architecture, "os": "linux",
        "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&tar)]},
        "history": [{"created_by": "busybox"}]
    }))
    .unwrap();
    let config_digest = layout.blob(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest, "size": gz.len()}]
    }))
    .unwrap();
    let manifest_digest = layout.blob(&manifest);
    layout.tag("1", OCI_MANIFEST, &manifest_digest, manifest.len());
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &layout.source("1"),
        &format!("docker://{}/base/busybox:1", reg.host()),
    ]);

    let a = DockRoot::new();
    let base = format!("{host}/base/busybox:1");
    a.ok(&["pull", &base]);

    // Pushed back where it came from: no blob is uploaded.
    let before = front.requests().len();
    let out = a.ok(&["push", &base]);
    assert_eq!(
        out.lines()
            .filter(|l| l.ends_with(": Layer already exists"))
            .count(),
        1,
        "{out}"
    );
    let uploads: Vec<String> = front.requests()[before..]
        .iter()
        .filter(|r| r.path.contains("/blobs/uploads/"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(uploads, Vec::<String>::new());

    // A commit on it, tagged and pushed: the base layer is mounted, the new one uploaded.
    let out = a.run(&[
        "run",
        "--name",
        "maker",
        "--network",
        "none",
        &base,
        "sh",
        "-c",
        "echo hello from dock > /hello",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = a.ok(&["commit", "maker"]).trim().to_string();
    a.ok(&["rm", "maker"]);
    let name = format!("{host}/x:1");
    a.ok(&["tag", &id, &name]);
    let out = a.ok(&["push", &name]);
    assert_eq!(
        out.lines()
            .filter(|l| l.ends_with(": Mounted from base/busybox"))
            .count(),
        1,
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.ends_with(": Pushed")).count(),
        1,
        "{out}"
    );
    let digest = out
        .lines()
        .find_map(|l| l.strip_prefix("1: digest: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();

    // skopeo: config, layers and digests; the base config's settings are kept.
    let (config, tars) = verify_with_skopeo(&format!("{}/x:1", reg.host()), &digest);
    assert_eq!(config["rootfs"]["diff_ids"][0], sha256(&tar));
    assert_eq!(config["config"]["Cmd"][0], "sh");
    assert_eq!(config["history"].as_array().unwrap().len(), 2);
    assert_eq!(tars[0], tar);
    assert!(tar_names(&tars[1])
        .iter()
        .any(|n| n.trim_start_matches("./") == "hello"));

    // Another root pulls it and runs it.
    let b = DockRoot::new();
    b.ok(&["pull", &name]);
    let out = b.ok(&["run", "--rm", "--network", "none", &name, "cat", "/hello"]);
    assert_eq!(out, "hello from dock\n");
}
