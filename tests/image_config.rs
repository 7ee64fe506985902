//! Image configs end to end (issue 8, acceptance 5): an image whose config sets Entrypoint,
//! Cmd, Env, WorkingDir, User, ExposedPorts and StopSignal runs as Docker runs it, alone and
//! with each override flag; `commit` writes a config whose digest is the image id, keeping
//! the base's config and recording the container's command and the layers' diff ids.
//!
//! The test images are config entries registered with `Graph::register_config` on top of the
//! imported busybox layer: no registry needed. Every test owns a [`DockRoot`], whose Drop
//! removes what its containers left (mounts, cgroups, network), even when the test fails.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{code, stderr, DockRoot};
use serde_json::{json, Value};

/// How long a container may take to reach a state the test waits for.
const DEADLINE: Duration = Duration::from_secs(30);

/// The config of the acceptance image: its entrypoint prints its arguments, the environment
/// variable GREETING, its working directory and its uid.
fn web_config() -> Value {
    json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": {
            "Entrypoint": ["/bin/sh", "-c",
                "echo \"args=$* greeting=$GREETING pwd=$(pwd) uid=$(id -u)\"", "entry"],
            "Cmd": ["default-a", "default-b"],
            "Env": ["GREETING=hello", "PATH=/opt/bin:/usr/bin:/bin"],
            "WorkingDir": "/srv/app",
            "User": "nobody",
            "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
            "StopSignal": "SIGUSR1",
            "Labels": {"org.example.role": "test"}
        },
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "ADD busybox /"}]
    })
}

fn open_store(root: &DockRoot) -> (graph::Graph, tagstore::TagStore) {
    let graph = graph::Graph::open(root.path().join("graph")).unwrap();
    let tags = tagstore::TagStore::open(root.path().join("repositories")).unwrap();
    (graph, tags)
}

fn register_image(root: &DockRoot, name: &str, config: Value) -> String {
    common::register_config_image(root.path(), "busybox", name, config)
}

/// A root with busybox imported and the acceptance image as `web`.
fn web_root() -> DockRoot {
    let root = DockRoot::with_busybox();
    register_image(&root, "web", web_config());
    root
}

/// `dock run --rm --network none ARGS...` (ARGS hold the image); stdout of a success.
fn run(root: &DockRoot, args: &[&str]) -> String {
    let mut all = vec!["run", "--rm", "--network", "none"];
    all.extend_from_slice(args);
    root.ok(&all)
}

#[test]
fn the_image_config_runs_as_docker_runs_it() {
    let root = web_root();
    assert_eq!(
        run(&root, &["web"]),
        "args=default-a default-b greeting=hello pwd=/srv/app uid=65534\n"
    );
    // The image's Env is the base, PATH included; Docker's defaults fill in HOME.
    let env = run(&root, &["--entrypoint", "/bin/env", "web"]);
    let env: Vec<&str> = env.lines().collect();
    for expected in ["PATH=/opt/bin:/usr/bin:/bin", "GREETING=hello", "HOME=/"] {
        assert!(env.contains(&expected), "{expected} not in {env:?}");
    }
    // The container's config records the merged values.
    let out = root.ok(&["create", "--name", "c", "--network", "none", "web", "x"]);
    assert_eq!(out.trim().len(), 64);
    let c = root.inspect("c");
    assert_eq!(c["Path"], "/bin/sh");
    assert_eq!(
        c["Args"],
        json!([
            "-c",
            "echo \"args=$* greeting=$GREETING pwd=$(pwd) uid=$(id -u)\"",
            "entry",
            "x"
        ])
    );
    assert_eq!(c["Config"]["Cmd"], json!(["x"]));
    assert_eq!(c["Config"]["Entrypoint"][0], "/bin/sh");
    assert_eq!(c["Config"]["WorkingDir"], "/srv/app");
    assert_eq!(c["Config"]["User"], "nobody");
    assert_eq!(
        c["Config"]["ExposedPorts"],
        json!({"53/udp": {}, "80/tcp": {}})
    );
    assert_eq!(c["Config"]["StopSignal"], "SIGUSR1");
    assert_eq!(c["Config"]["Labels"]["org.example.role"], "test");
    root.ok(&["rm", "c"]);
}

#[test]
fn arguments_replace_cmd_and_entrypoint_replaces_both() {
    let root = web_root();
    assert_eq!(
        run(&root, &["web", "x", "y"]),
        "args=x y greeting=hello pwd=/srv/app uid=65534\n"
    );
    // --entrypoint drops the image's Cmd: echo without arguments prints an empty line.
    assert_eq!(run(&root, &["--entrypoint", "/bin/echo", "web"]), "\n");
    assert_eq!(
        run(&root, &["--entrypoint", "/bin/echo", "web", "one", "two"]),
        "one two\n"
    );
    // --entrypoint "" removes the entrypoint; the arguments are the whole command.
    assert_eq!(
        run(&root, &["--entrypoint", "", "web", "echo", "plain"]),
        "plain\n"
    );
    // ... and without arguments there is nothing to run, as in Docker.
    let out = root.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "",
        "web",
    ]);
    assert_eq!(code(&out), 125, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no command specified"),
        "{}",
        stderr(&out)
    );
    assert!(root.container_dirs().is_empty());
    // An image without any config still needs a command.
    let out = root.run(&["run", "--rm", "--network", "none", "busybox"]);
    assert_eq!(code(&out), 125);
    assert!(stderr(&out).contains("no command specified"));
}

#[test]
fn env_workdir_and_user_flags_override_the_image() {
    let root = web_root();
    assert_eq!(
        run(&root, &["-e", "GREETING=bye", "web"]),
        "args=default-a default-b greeting=bye pwd=/srv/app uid=65534\n"
    );
    let env = run(
        &root,
        &[
            "-e",
            "GREETING=bye",
            "-e",
            "EXTRA=1",
            "--entrypoint",
            "/bin/env",
            "web",
        ],
    );
    let env: Vec<&str> = env.lines().collect();
    for expected in ["GREETING=bye", "EXTRA=1", "PATH=/opt/bin:/usr/bin:/bin"] {
        assert!(env.contains(&expected), "{expected} not in {env:?}");
    }
    assert!(!env.contains(&"GREETING=hello"), "{env:?}");
    // A missing working directory is created, as Docker does.
    assert_eq!(
        run(&root, &["-w", "/tmp/made/here", "web"]),
        "args=default-a default-b greeting=hello pwd=/tmp/made/here uid=65534\n"
    );
    assert_eq!(
        run(&root, &["--workdir", "/etc", "-u", "0", "web"]),
        "args=default-a default-b greeting=hello pwd=/etc uid=0\n"
    );
    assert_eq!(
        run(&root, &["--user", "daemon", "web", "z"]),
        "args=z greeting=hello pwd=/srv/app uid=1\n"
    );
    let out = root.run(&["run", "--rm", "--network", "none", "-w", "rel", "web"]);
    assert_eq!(code(&out), 125);
    assert!(
        stderr(&out)
            .contains("the working directory 'rel' is invalid, it needs to be an absolute path"),
        "{}",
        stderr(&out)
    );
}

/// One plain HTTP GET of `/`, retried while the server may still be starting; the body.
fn fetch(addr: SocketAddr) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            write!(stream, "GET / HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            match response.split_once("\r\n\r\n") {
                Some((head, body)) if head.contains(" 200 ") => Ok(body.to_string()),
                _ => Err(std::io::Error::other(format!("bad response {response:?}"))),
            }
        })();
        match attempt {
            Ok(body) => return body,
            Err(e) if Instant::now() > deadline => panic!("GET http://{addr}/: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[test]
fn publish_all_publishes_every_exposed_port() {
    let root = web_root();
    let script = "mkdir -p /www && echo 'hello from web' > /www/index.html \
                  && exec httpd -f -p 80 -h /www";
    root.ok(&[
        "run",
        "-d",
        "--name",
        "pub",
        "-P",
        "--expose",
        "9000-9001/udp",
        "-u",
        "0",
        "--entrypoint",
        "/bin/sh",
        "web",
        "-c",
        script,
    ]);
    let ports = root.ok(&["port", "pub"]);
    let mut lines: Vec<&str> = ports.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 4, "{ports}");
    let expected = ["53/udp", "80/tcp", "9000/udp", "9001/udp"];
    for (line, key) in lines.iter().zip(expected) {
        assert!(line.starts_with(&format!("{key} -> 0.0.0.0:")), "{ports}");
    }
    let host_port: u16 = root
        .ok(&["port", "pub", "80"])
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        fetch((Ipv4Addr::LOCALHOST, host_port).into()),
        "hello from web\n"
    );
    let c = root.inspect("pub");
    assert_eq!(c["HostConfig"]["PublishAllPorts"], true);
    assert_eq!(
        c["Config"]["ExposedPorts"],
        json!({"53/udp": {}, "80/tcp": {}, "9000/udp": {}, "9001/udp": {}})
    );
    root.ok(&["rm", "-f", "pub"]);

    // With --network none there is nothing to publish to.
    let out = root.run(&["run", "--rm", "--network", "none", "-P", "web"]);
    assert_eq!(code(&out), 125, "{}", stderr(&out));
}

/// Blocks until the container's log has `text`.
fn wait_for_log(root: &DockRoot, name: &str, text: &str) {
    let deadline = Instant::now() + DEADLINE;
    while !root.ok(&["logs", name]).contains(text) {
        assert!(Instant::now() < deadline, "{name} never logged {text:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn stop_sends_the_image_stop_signal_or_the_flag_s() {
    let root = web_root();
    let trap = |signal: &str, code: u8| {
        format!("trap 'echo caught {signal}; exit {code}' {signal}; echo ready; while :; do sleep 1; done")
    };
    // The image says SIGUSR1.
    root.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "image-signal",
        "--entrypoint",
        "/bin/sh",
        "web",
        "-c",
        &trap("USR1", 7),
    ]);
    // --stop-signal overrides it.
    root.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "flag-signal",
        "--stop-signal",
        "SIGUSR2",
        "--entrypoint",
        "/bin/sh",
        "web",
        "-c",
        &trap("USR2", 8),
    ]);
    for (name, signal, code) in [("image-signal", "USR1", "7"), ("flag-signal", "USR2", "8")] {
        wait_for_log(&root, name, "ready");
        root.ok(&["stop", "-t", "60", name]);
        assert_eq!(root.ok(&["wait", name]).trim(), code);
        assert!(root
            .ok(&["logs", name])
            .contains(&format!("caught {signal}")));
    }
    assert_eq!(
        root.inspect("flag-signal")["Config"]["StopSignal"],
        "SIGUSR2"
    );
    let out = root.run(&["create", "--stop-signal", "SIGNOPE", "web"]);
    assert_eq!(code(&out), 125);
    assert!(
        stderr(&out).contains("invalid signal: SIGNOPE"),
        "{}",
        stderr(&out)
    );
}

/// The raw config of image `id`, checked to be what its id is the digest of.
fn config_of(root: &DockRoot, id: &str) -> Value {
    let (graph, _) = open_store(root);
    let bytes = graph
        .config(id)
        .unwrap()
        .expect("a committed image has a config");
    assert_eq!(
        graph::sha256_hex(&bytes),
        id,
        "the image id is its config's sha256"
    );
    serde_json::from_slice(&bytes).unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    let hex: String = sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// The `sha256:` digest of the tar each layer of `id` gives back (`Graph::layer_tar`, the
/// bytes a push sends), base first.
fn layer_digests(root: &DockRoot, id: &str) -> Vec<String> {
    let (graph, _) = open_store(root);
    let mut layers: Vec<graph::Image> = graph
        .history(id)
        .unwrap()
        .into_iter()
        .filter(|i| !i.layerless)
        .collect();
    layers.reverse();
    layers
        .iter()
        .map(|l| {
            let mut tar = Vec::new();
            graph.layer_tar(&l.id, &mut tar).unwrap();
            sha256(&tar)
        })
        .collect()
}

#[test]
fn commit_writes_a_config_that_keeps_the_base_and_records_the_container() {
    let root = DockRoot::with_busybox();
    let mut base = web_config();
    base["config"]["Entrypoint"] = json!(["/bin/sh", "-c"]);
    base["config"]["Cmd"] = json!(["echo base"]);
    base["config"]["Healthcheck"] = json!({"Test": ["CMD", "true"]});
    let base_id = register_image(&root, "shell", base);

    root.ok(&[
        "run",
        "--network",
        "none",
        "--name",
        "c1",
        "-e",
        "MINE=1",
        "-u",
        "0",
        "shell",
        "echo changed > /srv/app/file; echo done",
    ]);
    let id = root
        .ok(&[
            "commit",
            "-m",
            "a message",
            "-a",
            "Someone <s@example.com>",
            "c1",
            "snap:v1",
        ])
        .trim()
        .to_string();
    assert_ne!(id, base_id);
    let config = config_of(&root, &id);
    let c = &config["config"];
    // The base's config, with the container's changes.
    assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c"]));
    assert_eq!(c["Cmd"], json!(["echo changed > /srv/app/file; echo done"]));
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for expected in ["MINE=1", "GREETING=hello", "PATH=/opt/bin:/usr/bin:/bin"] {
        assert!(env.contains(&expected), "{expected} not in {env:?}");
    }
    assert_eq!(c["User"], "0");
    assert_eq!(c["WorkingDir"], "/srv/app");
    assert_eq!(c["ExposedPorts"], json!({"53/udp": {}, "80/tcp": {}}));
    assert_eq!(c["StopSignal"], "SIGUSR1");
    assert_eq!(c["Labels"]["org.example.role"], "test");
    assert_eq!(c["Healthcheck"]["Test"][1], "true");
    assert_eq!(config["author"], "Someone <s@example.com>");
    assert_eq!(config["comment"], "a message");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["container_config"]["Cmd"], c["Cmd"]);
    let container_id = root.inspect("c1")["Id"].as_str().unwrap().to_string();
    assert_eq!(config["container"], container_id);
    let history = config["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["created_by"], "ADD busybox /");
    assert_eq!(
        history[1]["created_by"],
        "echo changed > /srv/app/file; echo done"
    );
    assert_eq!(history[1]["comment"], "a message");
    // rootfs.diff_ids: the busybox layer, then the new one, each the digest of its tar.
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    let expected = layer_digests(&root, &id);
    assert_eq!(expected.len(), 2);
    let imported = std::fs::read(common::busybox_tar()).unwrap();
    assert_eq!(
        expected[0],
        sha256(&imported),
        "the base layer is the tar imported"
    );
    assert_eq!(
        diff_ids,
        &expected.iter().map(|d| json!(d)).collect::<Vec<_>>()
    );
    assert_eq!(config["rootfs"]["type"], "layers");
    // It parses as an OCI image config.
    let parsed: oci_spec::image::ImageConfiguration =
        serde_json::from_value(config.clone()).unwrap();
    assert_eq!(parsed.rootfs().diff_ids().len(), 2);

    // The tag names the config entry; running it runs the recorded command under the base's
    // entrypoint, and the layer has the file.
    let images = root.ok(&["images"]);
    assert!(
        images
            .lines()
            .any(|l| l.starts_with("snap") && l.contains(&id[..12])),
        "{images}"
    );
    assert_eq!(run(&root, &["snap:v1"]), "done\n");
    assert_eq!(run(&root, &["snap:v1", "cat /srv/app/file"]), "changed\n");
    root.ok(&["rm", "c1"]);
}

#[test]
fn commit_of_a_container_on_an_imported_image() {
    let root = DockRoot::with_busybox();
    root.ok(&[
        "run",
        "--network",
        "none",
        "--name",
        "c2",
        "busybox",
        "sh",
        "-c",
        "echo x > /x; cat /x",
    ]);
    let id = root.ok(&["commit", "c2", "plain"]).trim().to_string();
    let config = config_of(&root, &id);
    assert_eq!(
        config["config"]["Cmd"],
        json!(["sh", "-c", "echo x > /x; cat /x"])
    );
    assert_eq!(config["config"]["Entrypoint"], Value::Null);
    let history = config["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "one entry per layer: {history:?}");
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    let expected = layer_digests(&root, &id);
    assert_eq!(
        diff_ids,
        &expected.iter().map(|d| json!(d)).collect::<Vec<_>>()
    );
    // The committed command is the image's Cmd now.
    assert_eq!(run(&root, &["plain"]), "x\n");
    // A commit of a container of the commit: three layers, three history entries.
    root.ok(&[
        "run",
        "--network",
        "none",
        "--name",
        "c3",
        "plain",
        "touch",
        "/y",
    ]);
    let id3 = root.ok(&["commit", "c3"]).trim().to_string();
    let config3 = config_of(&root, &id3);
    assert_eq!(config3["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);
    assert_eq!(config3["history"].as_array().unwrap().len(), 3);
    assert_eq!(
        config3["rootfs"]["diff_ids"].as_array().unwrap()[..2],
        diff_ids[..]
    );
    root.ok(&["rm", "c2", "c3"]);
}
