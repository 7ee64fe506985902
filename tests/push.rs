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
