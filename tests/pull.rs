//! `dock pull` against a real `docker-registry` started by each test: images pushed by skopeo
//! (an independent client) or by the registry crate's client, pulled into a private dock
//! root, and run.

mod common;
#[path = "../crates/registry/tests/common/mod.rs"]
mod registry_common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::{busybox_tar, code, stderr, stdout, DockRoot};
use registry::{media, Reference};
use registry_common::{sha256, skopeo, tar_of, Answer, FakeServer, Layout, TestRegistry};

// ---- images made here ----

#[derive(Clone, Copy, PartialEq)]
enum Comp {
    Gzip,
    Zstd,
    None,
}

/// A layer: its tar and how it travels.
struct LayerSpec {
    tar: Vec<u8>,
    comp: Comp,
}

fn gz(tar: Vec<u8>) -> LayerSpec {
    LayerSpec {
        tar,
        comp: Comp::Gzip,
    }
}

fn busybox_layer() -> Vec<u8> {
    fs::read(busybox_tar()).unwrap()
}

/// A tar with directories, files and empty marker files (whiteouts are empty regular files).
fn files(entries: &[(&str, &str)]) -> Vec<u8> {
    let list: Vec<(&str, &[u8])> = entries.iter().map(|(p, c)| (*p, c.as_bytes())).collect();
    tar_of(&list)
}

/// An image's blobs, as a registry stores them.
struct Built {
    /// (blob, digest, media type, diff id)
    layers: Vec<(Vec<u8>, String, String, String)>,
    config: Vec<u8>,
    config_digest: String,
    manifest: Vec<u8>,
    manifest_digest: String,
    manifest_type: &'static str,
}

impl Built {
    fn id(&self) -> String {
        self.config_digest.trim_start_matches("sha256:").to_string()
    }
    fn chain_ids(&self) -> Vec<String> {
        let diffs: Vec<String> = self.layers.iter().map(|l| l.3.clone()).collect();
        registry::chain_ids(&diffs)
            .into_iter()
            .map(|c| c.trim_start_matches("sha256:").to_string())
            .collect()
    }
}

/// Blobs, config and manifest of an image in OCI or Docker media types.
fn build(arch: &str, layers: &[LayerSpec], docker: bool, label: &str) -> Built {
    let mut out = Vec::new();
    for spec in layers {
        let (blob, media_type) = match (spec.comp, docker) {
            (Comp::Gzip, false) => (registry_common::gzip(&spec.tar), media::OCI_LAYER_GZIP),
            (Comp::Gzip, true) => (registry_common::gzip(&spec.tar), media::DOCKER_LAYER_GZIP),
            (Comp::Zstd, _) => (
                zstd::encode_all(&spec.tar[..], 3).unwrap(),
                media::OCI_LAYER_ZSTD,
            ),
            (Comp::None, false) => (spec.tar.clone(), media::OCI_LAYER),
            (Comp::None, true) => (spec.tar.clone(), media::DOCKER_LAYER),
        };
        let digest = sha256(&blob);
        out.push((blob, digest, media_type.to_string(), sha256(&spec.tar)));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", format!("MADE={label}")],
                   "Cmd": ["sh", "-c", "echo made $MADE"], "Labels": {"made": label}},
        "rootfs": {"type": "layers", "diff_ids": out.iter().map(|l| l.3.clone()).collect::<Vec<_>>()},
        "history": []
    }))
    .unwrap();
    let config_digest = sha256(&config);
    let (manifest_type, config_type) = if docker {
        (media::DOCKER_MANIFEST, media::DOCKER_CONFIG)
    } else {
        (media::OCI_MANIFEST, media::OCI_CONFIG)
    };
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": manifest_type,
        "config": {"mediaType": config_type, "digest": config_digest, "size": config.len()},
        "layers": out.iter().map(|(blob, d, t, _)| serde_json::json!({
            "mediaType": t, "digest": d, "size": blob.len()})).collect::<Vec<_>>()
    }))
    .unwrap();
    Built {
        layers: out,
        config_digest,
        config,
        manifest_digest: sha256(&manifest),
        manifest,
        manifest_type,
    }
}

/// Writes `img` into an OCI layout (blobs only; index.json via `Layout::tag`).
fn write_layout(layout: &Layout, img: &Built) {
    for (blob, ..) in &img.layers {
        layout.blob(blob);
    }
    layout.blob(&img.config);
    layout.blob(&img.manifest);
}

fn reference(reg_host: &str, name: &str) -> Reference {
    Reference::parse(&format!("{reg_host}/{name}")).unwrap()
}

/// Pushes `img` with the registry crate's client as `name` (`repo:tag`).
fn push_built(reg: &TestRegistry, name: &str, img: &Built) {
    let client = registry_common::client(None, None);
    let r = reference(&reg.host(), name);
    for (blob, digest, ..) in &img.layers {
        client
            .push_blob(&r, digest, blob.len() as u64, None, || Ok(&blob[..]))
            .unwrap();
    }
    client
        .push_blob(
            &r,
            &img.config_digest,
            img.config.len() as u64,
            None,
            || Ok(&img.config[..]),
        )
        .unwrap();
    client
        .put_manifest(&r, img.manifest_type, &img.manifest)
        .unwrap();
}

/// Pushes a manifest list / index over `images` (each with its os/arch) as `name`.
fn push_list(reg: &TestRegistry, name: &str, list_type: &str, images: &[(&Built, &str)]) -> String {
    let client = registry_common::client(None, None);
    let r = reference(&reg.host(), name);
    for (img, _) in images {
        for (blob, digest, ..) in &img.layers {
            client
                .push_blob(&r, digest, blob.len() as u64, None, || Ok(&blob[..]))
                .unwrap();
        }
        client
            .push_blob(
                &r,
                &img.config_digest,
                img.config.len() as u64,
                None,
                || Ok(&img.config[..]),
            )
            .unwrap();
        let by_digest = r.with_digest(&img.manifest_digest);
        client
            .put_manifest(&by_digest, img.manifest_type, &img.manifest)
            .unwrap();
    }
    let list = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": list_type,
        "manifests": images.iter().map(|(img, arch)| serde_json::json!({
            "mediaType": img.manifest_type, "digest": img.manifest_digest,
            "size": img.manifest.len(), "platform": {"os": "linux", "architecture": arch}
        })).collect::<Vec<_>>()
    }))
    .unwrap();
    client.put_manifest(&r, list_type, &list).unwrap()
}

/// The three-layer image of acceptance 1: busybox, then files, then a layer that deletes a
/// file (whiteout) and replaces a directory's contents (opaque directory).
fn three_layers() -> Vec<LayerSpec> {
    vec![
        gz(busybox_layer()),
        gz(files(&[
            ("data/keep", "kept\n"),
            ("data/gone", "to be deleted\n"),
            ("opq/old1", "old\n"),
            ("opq/sub/old2", "old\n"),
        ])),
        gz(files(&[
            ("data/.wh.gone", ""),
            ("opq/.wh..wh..opq", ""),
            ("opq/new", "new\n"),
            ("data/added", "added\n"),
        ])),
    ]
}

/// The files a container sees under /data and /opq, one path per line, sorted.
const LIST_FILES: &str = "find /data /opq | sort";
const EXPECTED_FILES: &str = "/data\n/data/added\n/data/keep\n/opq\n/opq/new\n";

// ---- helpers on a dock root ----

fn pull(root: &DockRoot, name: &str) -> String {
    root.ok(&["pull", name])
}

fn run_in(root: &DockRoot, image: &str, script: &str) -> String {
    root.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        image,
        "sh",
        "-c",
        script,
    ])
}

fn graph_dir(root: &DockRoot) -> PathBuf {
    root.path().join("graph")
}

/// Entry ids in the graph (no staging).
fn entries(root: &DockRoot) -> BTreeSet<String> {
    fs::read_dir(graph_dir(root))
        .map(|dir| {
            dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.len() == 64)
                .collect()
        })
        .unwrap_or_default()
}

/// Whatever is left in the graph's staging dir.
fn staging(root: &DockRoot) -> Vec<String> {
    fs::read_dir(graph_dir(root).join("_tmp"))
        .map(|dir| {
            dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn du_bytes(path: &Path) -> u64 {
    let out = Command::new("du").arg("-sb").arg(path).output().unwrap();
    stdout(&out)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn assert_failed_cleanly(root: &DockRoot, out: &Output, wants: &str) {
    assert_eq!(
        code(out),
        1,
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
    let err = stderr(out);
    assert!(err.contains(wants), "want {wants:?} in: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("Error: "), "{err}");
    assert!(
        staging(root).is_empty(),
        "staging left: {:?}",
        staging(root)
    );
}

// ---- acceptance 1 ----

/// An OCI layout pushed by skopeo: three layers, a whiteout and an opaque directory; `run`
/// sees exactly the files it should. Pulled by tag, then by digest.
#[test]
fn skopeo_pushed_oci_image_runs_with_whiteouts_and_opaque_dirs() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(dir.path());
    let img = build("amd64", &three_layers(), false, "oci");
    write_layout(&layout, &img);
    layout.tag(
        "v1",
        media::OCI_MANIFEST,
        &img.manifest_digest,
        img.manifest.len(),
    );
    let dest = format!("docker://{}/team/app:v1", reg.host());
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &layout.source("v1"),
        &dest,
    ]);

    let root = DockRoot::new();
    let name = format!("{}/team/app:v1", reg.host());
    let out = pull(&root, &name);
    // Plain lines when stdout is no terminal, Docker's wording.
    assert!(out.contains("v1: Pulling from team/app"), "{out}");
    for (_, digest, ..) in &img.layers {
        let short = &digest[7..19];
        assert!(out.contains(&format!("{short}: Pull complete")), "{out}");
    }
    assert!(
        out.contains(&format!("Digest: {}", img.manifest_digest)),
        "{out}"
    );
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {name}")),
        "{out}"
    );
    assert_eq!(out.lines().last(), Some(name.as_str()));
    assert_eq!(run_in(&root, &name, LIST_FILES), EXPECTED_FILES);

    // The store: one entry per chain ID with its diff id, the image named by its config.
    let mut want: BTreeSet<String> = img.chain_ids().into_iter().collect();
    want.insert(img.id());
    assert_eq!(entries(&root), want);
    let inspect = root.inspect(&name);
    assert_eq!(inspect["Id"], format!("sha256:{}", img.id()));
    assert_eq!(
        inspect["RepoDigests"],
        serde_json::json!([format!("{}/team/app@{}", reg.host(), img.manifest_digest)])
    );
    let images = root.ok(&["images", "--digests"]);
    assert!(
        images.contains(&img.manifest_digest),
        "images --digests: {images}"
    );
    assert_eq!(root.ok(&["images", "-q"]).trim(), &img.id()[..12]);

    // Again: only the manifest and the config; up to date.
    let again = pull(&root, &name);
    assert!(
        again.contains(&format!("Status: Image is up to date for {name}")),
        "{again}"
    );
    assert!(again.contains("Already exists"), "{again}");

    // By digest, in a fresh root: the same image, found by that name too.
    let fresh = DockRoot::new();
    let by_digest = format!("{}/team/app@{}", reg.host(), img.manifest_digest);
    let out = pull(&fresh, &by_digest);
    assert_eq!(out.lines().last(), Some(by_digest.as_str()), "{out}");
    assert_eq!(run_in(&fresh, &by_digest, LIST_FILES), EXPECTED_FILES);
    assert_eq!(
        fresh.inspect(&by_digest)["Id"],
        format!("sha256:{}", img.id())
    );
    // Untagged, it lists under its repository; rmi by that name removes it and its layers.
    let listing = fresh.ok(&["images", "--digests"]);
    assert!(
        listing.contains(&format!("{}/team/app", reg.host()))
            && listing.contains(&img.manifest_digest),
        "{listing}"
    );
    fresh.ok(&["rmi", &by_digest]);
    assert_eq!(entries(&fresh), BTreeSet::new());
}

// ---- acceptance 2 ----

/// Docker media types (skopeo converting the OCI layout to schema 2), an OCI index and a
/// Docker manifest list with two platforms (the host's chosen), a zstd layer and an
/// uncompressed one, and pull by digest.
#[test]
fn docker_media_types_lists_indexes_and_zstd() {
    let reg = TestRegistry::start();
    let host = reg.host();
    let root = DockRoot::new();

    // Docker schema 2 by skopeo -f v2s2.
    let dir = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(dir.path());
    let img = build("amd64", &three_layers(), false, "oci");
    write_layout(&layout, &img);
    layout.tag(
        "v1",
        media::OCI_MANIFEST,
        &img.manifest_digest,
        img.manifest.len(),
    );
    let dest = format!("docker://{host}/dockerish:v2s2");
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "-f",
        "v2s2",
        &layout.source("v1"),
        &dest,
    ]);
    let name = format!("{host}/dockerish:v2s2");
    pull(&root, &name);
    assert_eq!(run_in(&root, &name, LIST_FILES), EXPECTED_FILES);

    // Two platforms: the host's (amd64) one is picked, from an OCI index and from a Docker
    // manifest list. The amd64 image has a zstd layer and an uncompressed one.
    let base = || gz(busybox_layer());
    let amd64_oci = build(
        "amd64",
        &[
            base(),
            LayerSpec {
                tar: files(&[("platform", "amd64\n")]),
                comp: Comp::Zstd,
            },
            LayerSpec {
                tar: files(&[("plain", "uncompressed\n")]),
                comp: Comp::None,
            },
        ],
        false,
        "amd64",
    );
    let arm64_oci = build(
        "arm64",
        &[base(), gz(files(&[("platform", "arm64\n")]))],
        false,
        "arm64",
    );
    let index_digest = push_list(
        &reg,
        "multi:oci",
        media::OCI_INDEX,
        &[(&arm64_oci, "arm64"), (&amd64_oci, "amd64")],
    );
    let name = format!("{host}/multi:oci");
    let out = pull(&root, &name);
    // The repo digest is the index's.
    assert!(out.contains(&format!("Digest: {index_digest}")), "{out}");
    assert_eq!(
        run_in(&root, &name, "cat /platform /plain"),
        "amd64\nuncompressed\n"
    );
    assert_eq!(
        root.inspect(&name)["Id"],
        format!("sha256:{}", amd64_oci.id())
    );

    let amd64_docker = build(
        "amd64",
        &[base(), gz(files(&[("platform", "docker amd64\n")]))],
        true,
        "d-amd64",
    );
    let arm64_docker = build(
        "arm64",
        &[base(), gz(files(&[("platform", "docker arm64\n")]))],
        true,
        "d-arm64",
    );
    let list_digest = push_list(
        &reg,
        "multi:docker",
        media::DOCKER_MANIFEST_LIST,
        &[(&amd64_docker, "amd64"), (&arm64_docker, "arm64")],
    );
    let name = format!("{host}/multi:docker");
    pull(&root, &name);
    assert_eq!(run_in(&root, &name, "cat /platform"), "docker amd64\n");

    // --platform picks the other one; by digest of the list.
    let other = DockRoot::new();
    let by_digest = format!("{host}/multi@{list_digest}");
    other.ok(&["pull", "--platform", "linux/arm64", &by_digest]);
    assert_eq!(
        other.inspect(&by_digest)["Id"],
        format!("sha256:{}", arm64_docker.id())
    );
    // A platform the list lacks: an error naming what there is, nothing stored.
    let out = other.run(&[
        "pull",
        "--platform",
        "linux/s390x",
        &format!("{host}/multi:oci"),
    ]);
    assert_failed_cleanly(&other, &out, "linux/s390x");
    assert!(stderr(&out).contains("linux/arm64"), "{}", stderr(&out));

    // The busybox base is one entry for all of them (same chain ID).
    let base_id = amd64_oci.chain_ids()[0].clone();
    assert_eq!(amd64_docker.chain_ids()[0], base_id);
    assert!(entries(&root).contains(&base_id));
}

// ---- acceptance 3 ----

/// Two images sharing their base: the base is stored once (by entries and by bytes); `rmi` of
/// one prunes its own layers and keeps the other whole.
#[test]
fn a_shared_base_is_stored_once_and_survives_rmi_of_one() {
    let reg = TestRegistry::start();
    let host = reg.host();
    let a = build(
        "amd64",
        &[gz(busybox_layer()), gz(files(&[("who", "a\n")]))],
        false,
        "a",
    );
    let b = build(
        "amd64",
        &[gz(busybox_layer()), gz(files(&[("who", "b\n")]))],
        false,
        "b",
    );
    push_built(&reg, "a:1", &a);
    push_built(&reg, "b:1", &b);
    let root = DockRoot::new();
    pull(&root, &format!("{host}/a:1"));
    let after_a = du_bytes(&graph_dir(&root));
    let out = pull(&root, &format!("{host}/b:1"));
    assert!(
        out.contains(&format!("{}: Already exists", &a.layers[0].1[7..19])),
        "{out}"
    );
    let after_b = du_bytes(&graph_dir(&root));
    let busybox = fs::metadata(busybox_tar()).unwrap().len();
    // B added its small layer and config, not another busybox.
    assert!(
        after_b - after_a < busybox / 4,
        "graph grew by {} bytes for b (busybox is {busybox})",
        after_b - after_a
    );
    let base = a.chain_ids()[0].clone();
    assert_eq!(b.chain_ids()[0], base);
    let mut want: BTreeSet<String> = a.chain_ids().into_iter().chain(b.chain_ids()).collect();
    want.insert(a.id());
    want.insert(b.id());
    assert_eq!(entries(&root), want);

    // rmi a: its config and its own layer go, the shared base stays; b runs whole.
    let out = root.ok(&["rmi", &format!("{host}/a:1")]);
    assert!(out.contains(&format!("Deleted: {}", a.id())), "{out}");
    assert!(
        out.contains(&format!("Deleted: {}", a.chain_ids()[1])),
        "{out}"
    );
    assert!(!out.contains(&base), "{out}");
    let mut want: BTreeSet<String> = b.chain_ids().into_iter().collect();
    want.insert(b.id());
    assert_eq!(entries(&root), want);
    assert_eq!(
        run_in(&root, &format!("{host}/b:1"), "cat /who; ls /bin/busybox"),
        "b\n/bin/busybox\n"
    );
    // rmi b: nothing is left.
    root.ok(&["rmi", &format!("{host}/b:1")]);
    assert_eq!(entries(&root), BTreeSet::new());
}

// ---- acceptance 8 ----

/// SIGKILL while the last layer is downloading (held by a proxy) after the first one is
/// stored: no image, no staging, no temporary file; the next pull completes and skips the
/// stored layer.
#[test]
fn sigkill_during_a_pull_leaves_no_image_and_the_next_pull_completes() {
    let reg = TestRegistry::start();
    let img = build("amd64", &three_layers(), false, "kill");
    push_built(&reg, "slow:1", &img);
    let held = img.layers[2].1.clone();
    let release = Arc::new(AtomicBool::new(false));
    let port = reg.port;
    let proxy = {
        let release = release.clone();
        FakeServer::start(move |req| {
            if req.path.ends_with(&held) {
                while !release.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            Answer::Proxy(port)
        })
    };
    let root = DockRoot::new();
    let name = format!("{}/slow:1", proxy.host());
    let mut child = root
        .cmd()
        .args(["pull", &name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first = img.chain_ids()[0].clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !entries(&root).contains(&first) {
        assert!(
            Instant::now() < deadline,
            "the first layer never got stored"
        );
        assert!(child.try_wait().unwrap().is_none(), "pull ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The held blob was asked for: the pull is mid-download.
    while !proxy
        .requests()
        .iter()
        .any(|r| r.path.ends_with(&img.layers[2].1))
    {
        assert!(
            Instant::now() < deadline,
            "the last layer was never requested"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    release.store(true, Ordering::SeqCst);

    assert!(
        !entries(&root).contains(&img.id()),
        "an image entry was left"
    );
    assert_eq!(root.ok(&["images", "-q"]), "");
    // Graph::open (any command) sweeps the dead pull's staging; nothing else is left.
    root.ok(&["images"]);
    assert!(staging(&root).is_empty(), "{:?}", staging(&root));
    let stray: Vec<String> = fs::read_dir(graph_dir(&root))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() != 64 && !["_tmp", "_index", "_store.lock"].contains(&n.as_str()))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");

    // The next pull completes (directly from the registry) and skips what is stored.
    let direct = format!("{}/slow:1", reg.host());
    let out = pull(&root, &direct);
    assert!(
        out.contains(&format!("{}: Already exists", &img.layers[0].1[7..19])),
        "{out}"
    );
    assert_eq!(run_in(&root, &direct, LIST_FILES), EXPECTED_FILES);
}

/// Two pulls of the same image at once end with one consistent image.
#[test]
fn concurrent_pulls_end_with_one_image() {
    let reg = TestRegistry::start();
    let img = build("amd64", &three_layers(), false, "twice");
    push_built(&reg, "twice:1", &img);
    let root = DockRoot::new();
    let name = format!("{}/twice:1", reg.host());
    let children: Vec<_> = (0..2)
        .map(|_| {
            root.cmd()
                .args(["pull", &name])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let mut want: BTreeSet<String> = img.chain_ids().into_iter().collect();
    want.insert(img.id());
    assert_eq!(entries(&root), want);
    assert!(staging(&root).is_empty());
    assert_eq!(run_in(&root, &name, LIST_FILES), EXPECTED_FILES);
}

// ---- errors that cross into the store ----

/// A blob whose bytes do not match its digest: exit 1, one line, nothing stored.
#[test]
fn a_digest_mismatch_stores_nothing() {
    let reg = TestRegistry::start();
    let img = build("amd64", &three_layers(), false, "bad");
    push_built(&reg, "bad:1", &img);
    let (bad_blob, bad_digest) = (img.layers[0].0.clone(), img.layers[0].1.clone());
    let port = reg.port;
    let proxy = FakeServer::start(move |req| {
        if req.path.ends_with(&bad_digest) {
            let mut corrupt = bad_blob.clone();
            let mid = corrupt.len() / 2;
            corrupt[mid] ^= 0xff;
            return Answer::new(
                200,
                &[("content-type", "application/octet-stream")],
                corrupt,
            );
        }
        Answer::Proxy(port)
    });
    let root = DockRoot::new();
    let out = root.run(&["pull", &format!("{}/bad:1", proxy.host())]);
    assert_failed_cleanly(&root, &out, "digest mismatch");
    assert!(stderr(&out).contains(&img.layers[0].1), "{}", stderr(&out));
    assert_eq!(entries(&root), BTreeSet::new());
}

/// A layer whose uncompressed stream is not the config's diff id: refused before it is stored.
#[test]
fn a_diff_id_mismatch_stores_nothing() {
    let reg = TestRegistry::start();
    let mut img = build("amd64", &[gz(files(&[("a", "a\n")]))], false, "diff");
    // A config that names another diff id for the (intact) blob.
    let wrong = sha256(b"not this layer");
    let config = String::from_utf8(img.config.clone())
        .unwrap()
        .replace(&img.layers[0].3, &wrong);
    img.config = config.into_bytes();
    img.config_digest = sha256(&img.config);
    img.layers[0].3 = wrong.clone();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": img.config_digest, "size": img.config.len()},
        "layers": [{"mediaType": media::OCI_LAYER_GZIP, "digest": img.layers[0].1, "size": img.layers[0].0.len()}]
    }))
    .unwrap();
    img.manifest = manifest;
    push_built(&reg, "diff:1", &img);
    let root = DockRoot::new();
    let out = root.run(&["pull", &format!("{}/diff:1", reg.host())]);
    assert_failed_cleanly(&root, &out, "digest mismatch");
    assert!(stderr(&out).contains(&wrong), "{}", stderr(&out));
    assert_eq!(entries(&root), BTreeSet::new());
}

#[test]
fn names_without_a_registry_need_a_configured_default() {
    let root = DockRoot::new();
    let out = root.run(&["pull", "busybox"]);
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(err.contains("no default registry is configured"), "{err}");
    assert!(err.contains("default-registry"), "{err}");
    assert!(!root.path().join("graph").exists() || entries(&root).is_empty());

    // With one configured, `busybox` is library/busybox there, tagged as written.
    let reg = TestRegistry::start();
    let img = build("amd64", &[gz(busybox_layer())], false, "default");
    push_built(&reg, "library/busybox:latest", &img);
    fs::write(
        root.path().join("config.json"),
        format!(r#"{{"default-registry": "{}"}}"#, reg.host()),
    )
    .unwrap();
    let out = pull(&root, "busybox");
    assert!(
        out.contains("Status: Downloaded newer image for busybox:latest"),
        "{out}"
    );
    assert_eq!(run_in(&root, "busybox", "echo hi"), "hi\n");
}

#[test]
fn registry_errors_name_what_is_missing() {
    let reg = TestRegistry::start();
    let img = build("amd64", &[gz(files(&[("a", "a\n")]))], false, "e");
    push_built(&reg, "there:1", &img);
    let root = DockRoot::new();
    let host = reg.host();
    let out = root.run(&["pull", &format!("{host}/there:nope")]);
    assert_failed_cleanly(
        &root,
        &out,
        &format!("manifest for {host}/there:nope not found"),
    );
    let out = root.run(&["pull", &format!("{host}/nothere:1")]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{host}/nothere")),
        "{}",
        stderr(&out)
    );
    // Nothing listens on this port.
    let dead = format!("127.0.0.1:{}", registry_common::free_port());
    let out = root.run(&["pull", &format!("{dead}/x:1")]);
    assert_failed_cleanly(&root, &out, &format!("registry {dead} is not reachable"));
    assert_eq!(entries(&root), BTreeSet::new());
}

/// `run` of a missing image pulls it first (`--pull missing`, the default) with Docker's
/// message; `--pull never` refuses; `--pull always` checks the registry again.
#[test]
fn run_pulls_a_missing_image() {
    let reg = TestRegistry::start();
    let img = build(
        "amd64",
        &[gz(busybox_layer()), gz(files(&[("hello", "pulled\n")]))],
        false,
        "run",
    );
    push_built(&reg, "runme:1", &img);
    let root = DockRoot::new();
    let name = format!("{}/runme:1", reg.host());
    let out = root.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--pull",
        "never",
        &name,
        "true",
    ]);
    assert_ne!(code(&out), 0);
    assert!(!entries(&root).contains(&img.id()));

    let out = root.run(&["run", "--rm", "--network", "none", &name, "cat", "/hello"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("Unable to find image '{name}' locally")),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        stdout(&out).lines().last(),
        Some("pulled"),
        "{}",
        stdout(&out)
    );

    // Present now: no pull, no message; without a command the pulled config's Cmd and Env run.
    let out = root.run(&["run", "--rm", "--network", "none", &name, "cat", "/hello"]);
    assert_eq!(stderr(&out), "");
    assert_eq!(stdout(&out), "pulled\n");
    let out = root.run(&["run", "--rm", "--network", "none", &name]);
    assert_eq!(stdout(&out), "made run\n", "{}", stderr(&out));
    // `always` asks the registry again; progress goes to stderr, the id alone to stdout.
    let out = root.run(&["create", "--pull", "always", &name, "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Image is up to date"),
        "{}",
        stderr(&out)
    );
    let id = stdout(&out).trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    root.ok(&["rm", &id]);
}

// ---- acceptance 7: the docker CLI through `dock daemon` ----

/// `dock daemon` on a private socket whose `docker` calls may take as long as a pull.
fn pull_daemon() -> Daemon {
    let mut daemon = Daemon::start();
    daemon.call_limit = "120";
    daemon
}

/// `docker pull` shows its progress from dock's JSON messages; `docker run` of a missing
/// image pulls it through the daemon; `docker images --digests` and `image inspect` show the
/// repo digest.
#[test]
fn docker_cli_pulls_and_runs_through_the_daemon() {
    let reg = TestRegistry::start();
    let host = reg.host();
    let img = build("amd64", &three_layers(), true, "docker-cli");
    push_built(&reg, "cli/app:1", &img);
    let other = build(
        "amd64",
        &[gz(busybox_layer()), gz(files(&[("who", "run-pulled\n")]))],
        false,
        "docker-run",
    );
    push_built(&reg, "cli/other:2", &other);
    let daemon = pull_daemon();

    let name = format!("{host}/cli/app:1");
    let out = daemon.docker(&["pull", &name]);
    assert!(out.status.success(), "{}\n{}", stderr(&out), daemon.log());
    let text = stdout(&out);
    assert!(text.contains("1: Pulling from cli/app"), "{text}");
    assert!(text.contains("Pull complete"), "{text}");
    assert!(
        text.contains(&format!("Digest: {}", img.manifest_digest)),
        "{text}"
    );
    assert!(
        text.contains(&format!("Status: Downloaded newer image for {name}")),
        "{text}"
    );
    let inspect = daemon.docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}} {{json .RepoDigests}}",
        &name,
    ]);
    assert_eq!(
        stdout(&inspect).trim(),
        format!(
            "{} [\"{host}/cli/app@{}\"]",
            img.config_digest, img.manifest_digest
        ),
        "{}",
        stderr(&inspect)
    );
    let images = daemon.docker(&[
        "images",
        "--digests",
        "--format",
        "{{.Repository}} {{.Tag}} {{.Digest}}",
    ]);
    assert_eq!(
        stdout(&images).trim(),
        format!("{host}/cli/app 1 {}", img.manifest_digest),
        "{}",
        stderr(&images)
    );
    // Its size is its layers' (the image entry itself holds none), in both views.
    let size = daemon.docker(&["image", "inspect", "--format", "{{.Size}}", &name]);
    let size: u64 = stdout(&size).trim().parse().expect("a size");
    assert!(size > 0);
    let listed = daemon.docker(&["images", "--format", "{{.Size}}", &name]);
    assert_ne!(stdout(&listed).trim(), "0B");
    assert!(!stdout(&listed).trim().is_empty(), "{}", stderr(&listed));
    // The second pull is up to date.
    let again = daemon.docker(&["pull", &name]);
    assert!(
        stdout(&again).contains(&format!("Status: Image is up to date for {name}")),
        "{}",
        stdout(&again)
    );

    // run of a missing image: the CLI pulls it through the daemon, then runs it.
    let missing = format!("{host}/cli/other:2");
    let out = daemon.docker(&["run", "--rm", "--network", "none", &missing, "cat", "/who"]);
    assert!(out.status.success(), "{}\n{}", stderr(&out), daemon.log());
    assert!(
        stderr(&out).contains(&format!("Unable to find image '{missing}' locally")),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "run-pulled\n");

    // A name without a registry, none configured: refused at once.
    let out = daemon.docker(&["pull", "busybox"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no default registry is configured"),
        "{}",
        stderr(&out)
    );
    // A manifest the registry lacks: the stream's error.
    let out = daemon.docker(&["pull", &format!("{host}/cli/app:nope")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("manifest for {host}/cli/app:nope not found")),
        "{}",
        stderr(&out)
    );
}

/// A disk that fills up while a layer is extracted: exit 1, one line naming the cause,
/// nothing stored and no staging left.
#[test]
fn a_full_disk_while_extracting_stores_nothing() {
    let reg = TestRegistry::start();
    // 24 MB of zeros: a tiny blob (the download fits), a layer the disk cannot hold.
    let zeros = vec![0u8; 24 << 20];
    let big = tar_of(&[("big/zeros", &zeros[..])]);
    let img = build(
        "amd64",
        &[gz(files(&[("small", "s\n")])), gz(big)],
        false,
        "full",
    );
    push_built(&reg, "full:1", &img);
    let root = DockRoot::new();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(root.path())
        .status()
        .unwrap();
    assert!(status.success());
    // DockRoot's drop unmounts it.
    let out = root.run(&["pull", &format!("{}/full:1", reg.host())]);
    assert_failed_cleanly(&root, &out, "No space left on device");
    assert!(!entries(&root).contains(&img.id()));
    assert_eq!(root.ok(&["images", "-q"]), "");
}

/// `pull -a`: every tag of the repository, each tagged.
#[test]
fn pull_all_tags() {
    let reg = TestRegistry::start();
    let one = build("amd64", &[gz(files(&[("v", "1\n")]))], false, "one");
    let two = build("amd64", &[gz(files(&[("v", "2\n")]))], false, "two");
    push_built(&reg, "many:1", &one);
    push_built(&reg, "many:2", &two);
    let root = DockRoot::new();
    let repo = format!("{}/many", reg.host());
    let out = root.ok(&["pull", "-a", &repo]);
    assert!(out.contains(&format!("{repo}:1")), "{out}");
    assert!(out.contains(&format!("{repo}:2")), "{out}");
    assert_eq!(
        root.inspect(&format!("{repo}:1"))["Id"],
        format!("sha256:{}", one.id())
    );
    assert_eq!(
        root.inspect(&format!("{repo}:2"))["Id"],
        format!("sha256:{}", two.id())
    );
    let out = root.run(&["pull", "-a", &format!("{repo}:1")]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("all-tags"), "{}", stderr(&out));
}

/// A registry that wants a login, and one that only has schema 1: exit 1, one line each,
/// nothing stored.
#[test]
fn unauthorized_and_schema1_are_refused() {
    let locked = FakeServer::start(|_| {
        Answer::new(
            401,
            &[("www-authenticate", "Basic realm=\"test\"")],
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
        )
    });
    let root = DockRoot::new();
    let out = root.run(&["pull", &format!("{}/private/app:1", locked.host())]);
    assert_failed_cleanly(
        &root,
        &out,
        &format!("log in with `dock login {}`", locked.host()),
    );
    assert!(stderr(&out).contains("unauthorized"), "{}", stderr(&out));

    let schema1 = br#"{"schemaVersion":1,"name":"old/app","tag":"1","fsLayers":[],"history":[]}"#;
    let old = FakeServer::start(move |req| {
        if req.path.contains("/manifests/") {
            Answer::new(
                200,
                &[("content-type", media::DOCKER_SCHEMA1_SIGNED)],
                &schema1[..],
            )
        } else {
            Answer::new(200, &[], "{}")
        }
    });
    let out = root.run(&["pull", &format!("{}/old/app:1", old.host())]);
    assert_failed_cleanly(&root, &out, "schema 1");
    assert_eq!(entries(&root), BTreeSet::new());
}
