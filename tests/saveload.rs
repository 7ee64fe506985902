//! `dock save` and `dock load` (and the API's save/load under the real docker CLI): round
//! trips through skopeo, between dock roots, a hand-built Docker 20.10 archive, and hostile or
//! broken archives that must load nothing.

mod common;
#[path = "../crates/registry/tests/common/mod.rs"]
mod registry_common;

use std::fs;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use common::{busybox_tar, dock_bin, register_config_image, stderr, stdout, DockRoot};
use registry_common::{sha256, skopeo, tar_of};
use serde_json::{json, Value};

// ---- fixtures ----

/// A root with busybox imported as `bb` and `name` an image with a config on it (as a pull
/// stores one); the image id.
fn root_with_config_image(name: &str, cmd: &str) -> (DockRoot, String) {
    let root = DockRoot::new();
    root.import_busybox("bb");
    let id = register_config_image(
        root.path(),
        "bb",
        name,
        json!({"architecture": "amd64", "os": "linux",
               "config": {"Cmd": ["sh", "-c", cmd], "Env": ["PATH=/bin"]}}),
    );
    (root, id)
}

fn inspect_id(root: &DockRoot, name: &str) -> String {
    root.inspect(name)["Id"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string()
}

/// The diff ids of image `name`'s layers, base first, as the store records them.
fn diff_ids(root: &DockRoot, name: &str) -> Vec<String> {
    let graph = graph::Graph::open(root.path().join("graph")).unwrap();
    let tags = tagstore::TagStore::open(root.path().join("repositories")).unwrap();
    let image = tags.lookup(&graph, name).unwrap();
    let mut history = graph.history(&image.id).unwrap();
    history.reverse();
    history
        .iter()
        .filter(|i| !i.layerless)
        .map(|i| graph.diff_id(&i.id).unwrap())
        .collect()
}

/// Every entry of a tar: (path, content, link target).
fn entries(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut a = tar::Archive::new(archive);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            (path, data)
        })
        .collect()
}

/// An OCI layout dir's one image: (config digest, config bytes, layer digests).
fn oci_image(dir: &Path) -> (String, Vec<u8>, Vec<String>) {
    let blob = |d: &str| fs::read(dir.join("blobs/sha256").join(&d[7..])).unwrap();
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifest: Value =
        serde_json::from_slice(&blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    let config_digest = manifest["config"]["digest"].as_str().unwrap().to_string();
    let layers = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    (config_digest.clone(), blob(&config_digest), layers)
}

/// A tar of entries of any kind: (path, kind, data or link target).
enum E<'a> {
    File(&'a str, Vec<u8>),
    Symlink(&'a str, &'a str),
}

fn tar_entries(list: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in list {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_mtime(1_600_000_000);
        match e {
            E::File(path, data) => {
                h.set_size(data.len() as u64);
                h.set_entry_type(tar::EntryType::Regular);
                // set_path refuses `..`: write the name by hand for hostile entries.
                let name = h.as_old_mut().name.as_mut();
                name[..path.len()].copy_from_slice(path.as_bytes());
                h.set_cksum();
                b.append(&h, &data[..]).unwrap();
            }
            E::Symlink(path, target) => {
                h.set_size(0);
                h.set_entry_type(tar::EntryType::Symlink);
                b.append_link(&mut h, path, target).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// A Docker 25+ style archive of one image over `layer`: (entries, image id, layer path).
fn docker25(layer: &[u8], tag: &str) -> (Vec<(String, Vec<u8>)>, String, String) {
    let diff = sha256(layer);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh", "-c", "echo from-docker25"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff]}
    }))
    .unwrap();
    let id = sha256(&config)[7..].to_string();
    let layer_path = format!("blobs/sha256/{}", &diff[7..]);
    let manifest = serde_json::to_vec(&json!([{
        "Config": format!("blobs/sha256/{id}"),
        "RepoTags": [tag],
        "Layers": [layer_path],
    }]))
    .unwrap();
    (
        vec![
            (format!("blobs/sha256/{id}"), config),
            (layer_path.clone(), layer.to_vec()),
            ("manifest.json".to_string(), manifest),
        ],
        id,
        layer_path,
    )
}

fn tar_files(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let list: Vec<E> = files.iter().map(|(p, d)| E::File(p, d.clone())).collect();
    tar_entries(&list)
}

fn load_file(root: &DockRoot, archive: &[u8]) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("image.tar");
    fs::write(&file, archive).unwrap();
    let out = root.run(&["load", "-i", file.to_str().unwrap()]);
    (out, dir)
}

// ---- 1. round trips through skopeo ----

#[test]
fn skopeo_reads_what_dock_saves_and_dock_loads_what_skopeo_writes() {
    let (root, id) = root_with_config_image("app", "echo from-app");
    let diffs = diff_ids(&root, "app");
    let work = tempfile::tempdir().unwrap();
    let saved = work.path().join("app.tar");
    root.ok(&["save", "-o", saved.to_str().unwrap(), "app:latest"]);
    let config = fs::read(Path::new(&format!(
        "{}/graph/{id}/config",
        root.path().display()
    )))
    .unwrap();

    // dock's file as an oci-archive: config byte for byte (the image ID), the layers' content
    // (skopeo gzips them on the way into the layout) the diff ids.
    let oci_dir = work.path().join("oci");
    let oci = format!("oci:{}:app", oci_dir.display());
    skopeo(&["copy", &format!("oci-archive:{}", saved.display()), &oci]);
    let (config_digest, copied, layers) = oci_image(&oci_dir);
    assert_eq!(config_digest, format!("sha256:{id}"));
    assert!(copied == config);
    assert_eq!(uncompressed_digests(&oci_dir, &layers), diffs);

    // As a docker-archive: skopeo turns the Docker manifest into an OCI one and writes the
    // config anew (same document, its own key order), so only the content is compared.
    let docker_dir = work.path().join("docker");
    skopeo(&[
        "copy",
        &format!("docker-archive:{}", saved.display()),
        &format!("oci:{}:app", docker_dir.display()),
    ]);
    let (_, rewritten, layers) = oci_image(&docker_dir);
    let parsed = |b: &[u8]| serde_json::from_slice::<Value>(b).unwrap();
    assert_eq!(parsed(&rewritten), parsed(&config));
    assert_eq!(uncompressed_digests(&docker_dir, &layers), diffs);

    // Back into dock from skopeo's docker-archive and oci-archive.
    let docker_archive = work.path().join("skopeo-docker.tar");
    skopeo(&[
        "copy",
        &oci,
        &format!("docker-archive:{}:app:v2", docker_archive.display()),
    ]);
    let oci_archive = work.path().join("skopeo-oci.tar");
    skopeo(&[
        "copy",
        &oci,
        &format!("oci-archive:{}:app:v3", oci_archive.display()),
    ]);
    for (file, name) in [(&docker_archive, "app:v2"), (&oci_archive, "app:v3")] {
        let other = DockRoot::new();
        let out = other.ok(&["load", "-i", file.to_str().unwrap()]);
        assert_eq!(out, format!("Loaded image: {name}\n"));
        assert_eq!(inspect_id(&other, name), id, "{name}");
        assert_eq!(diff_ids(&other, name), diffs, "{name}");
        assert_eq!(
            other.ok(&["run", "--rm", "--network", "none", name]),
            "from-app\n"
        );
    }
}

/// sha256 of each layer blob of an OCI layout, gunzipped when it is gzip.
fn uncompressed_digests(dir: &Path, layers: &[String]) -> Vec<String> {
    layers
        .iter()
        .map(|d| {
            let blob = fs::read(dir.join("blobs/sha256").join(&d[7..])).unwrap();
            if blob.starts_with(&[0x1f, 0x8b]) {
                let mut out = Vec::new();
                std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&blob[..]), &mut out)
                    .unwrap();
                sha256(&out)
            } else {
                sha256(&blob)
            }
        })
        .collect()
}

// ---- 2. dock save a b:2 | dock load ----

#[test]
fn save_of_two_images_piped_into_load_restores_names_and_ids() {
    let (root, a) = root_with_config_image("a", "echo a");
    let b = register_config_image(
        root.path(),
        "bb",
        "b",
        json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["echo", "b"]}}),
    );
    root.ok(&["tag", "b", "b:2"]);
    let other = DockRoot::new();
    let pipeline = format!(
        "{dock} --root {src} save a b:2 | {dock} --root {dst} load",
        dock = dock_bin(),
        src = root.path().display(),
        dst = other.path().display()
    );
    let out = Command::new("sh").args(["-c", &pipeline]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "Loaded image: a:latest\nLoaded image: b:2\n",
        "{}",
        stderr(&out)
    );
    assert_eq!(inspect_id(&other, "a"), a);
    assert_eq!(inspect_id(&other, "b:2"), b);
    // b was saved only as b:2.
    assert!(!other.run(&["inspect", "b:latest"]).status.success());

    // The busybox layer both share is in the file once.
    let archive = root
        .cmd()
        .args(["save", "a", "b:2"])
        .output()
        .unwrap()
        .stdout;
    let files = entries(&archive);
    let diff = &diff_ids(&root, "a")[0];
    let layer = format!("blobs/sha256/{}", &diff[7..]);
    assert_eq!(files.iter().filter(|(p, _)| *p == layer).count(), 1);
    let names: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    for wanted in ["manifest.json", "index.json", "oci-layout", "repositories"] {
        assert!(names.contains(&wanted), "{names:?}");
    }

    // An imported image (no config of its own) goes with a config made from its layer, the
    // same every time: its ID in the other root is that config's digest.
    let bb = root.cmd().args(["save", "bb"]).output().unwrap().stdout;
    assert!(bb == root.cmd().args(["save", "bb"]).output().unwrap().stdout);
    let (out, _dir) = load_file(&other, &bb);
    assert_eq!(
        stdout(&out),
        "Loaded image: bb:latest\n",
        "{}",
        stderr(&out)
    );
    let manifest: Value = serde_json::from_slice(&entries(&bb)[0].1).unwrap();
    let config = manifest[0]["Config"].as_str().unwrap();
    assert_eq!(inspect_id(&other, "bb"), config.rsplit('/').next().unwrap());
    assert_eq!(diff_ids(&other, "bb"), diff_ids(&root, "a"));

    // A tar on a terminal is refused (no terminal here: stdout is a pipe, so it works).
    let out = root.cmd().args(["save", "nosuch"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no such image: nosuch"),
        "{}",
        stderr(&out)
    );
}

// ---- 3. a Docker 20.10 archive ----

#[test]
fn a_docker_20_10_archive_loads_and_runs() {
    let layer = fs::read(busybox_tar()).unwrap();
    let diff = sha256(&layer);
    let extra = tar_of(&[("etc/legacy", b"from 20.10\n")]);
    let extra_diff = sha256(&extra);
    let config = |cmd: &str, diffs: &[&str]| {
        serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux", "created": "2021-01-01T00:00:00Z",
            "config": {"Cmd": ["sh", "-c", cmd], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diffs}
        }))
        .unwrap()
    };
    let c1 = config("cat /etc/legacy", &[&diff, &extra_diff]);
    let c2 = config("echo second", &[&diff]);
    let (id1, id2) = (sha256(&c1)[7..].to_string(), sha256(&c2)[7..].to_string());
    let v1_base = "1".repeat(64);
    let v1_top = "2".repeat(64);
    let v1_other = "3".repeat(64);
    let v1json = |id: &str, parent: Option<&str>| {
        let mut v = json!({"id": id, "created": "2021-01-01T00:00:00Z",
                           "container_config": {"Cmd": null}, "os": "linux"});
        if let Some(p) = parent {
            v["parent"] = json!(p);
        }
        serde_json::to_vec(&v).unwrap()
    };
    let manifest = serde_json::to_vec(&json!([
        {"Config": format!("{id1}.json"), "RepoTags": ["legacy:1"],
         "Layers": [format!("{v1_base}/layer.tar"), format!("{v1_top}/layer.tar")]},
        {"Config": format!("{id2}.json"), "RepoTags": ["legacy:2"],
         "Layers": [format!("{v1_other}/layer.tar")]}
    ]))
    .unwrap();
    let repositories =
        serde_json::to_vec(&json!({"legacy": {"1": v1_top, "2": v1_other}})).unwrap();
    let p = |id: &str, f: &str| format!("{id}/{f}");
    let (b_dir, t_dir, o_dir) = (v1_base.as_str(), v1_top.as_str(), v1_other.as_str());
    let paths = [
        p(b_dir, "VERSION"),
        p(b_dir, "json"),
        p(b_dir, "layer.tar"),
        p(t_dir, "VERSION"),
        p(t_dir, "json"),
        p(t_dir, "layer.tar"),
        p(o_dir, "VERSION"),
        p(o_dir, "json"),
        p(o_dir, "layer.tar"),
        format!("{id1}.json"),
        format!("{id2}.json"),
    ];
    let target = format!("../{v1_base}/layer.tar");
    let archive = tar_entries(&[
        E::File(&paths[0], b"1.0".to_vec()),
        E::File(&paths[1], v1json(&v1_base, None)),
        E::File(&paths[2], layer.clone()),
        E::File(&paths[3], b"1.0".to_vec()),
        E::File(&paths[4], v1json(&v1_top, Some(&v1_base))),
        E::File(&paths[5], extra.clone()),
        E::File(&paths[6], b"1.0".to_vec()),
        E::File(&paths[7], v1json(&v1_other, None)),
        // Docker 20.10 writes a layer it already wrote as a relative symlink to the first.
        E::Symlink(&paths[8], &target),
        E::File(&paths[9], c1),
        E::File(&paths[10], c2),
        E::File("manifest.json", manifest),
        E::File("repositories", repositories),
    ]);
    // Compressed, as `docker save | xz` would leave it: detected from the magic bytes.
    let compressed = zstd::encode_all(&archive[..], 3).unwrap();
    let root = DockRoot::new();
    let (out, _dir) = load_file(&root, &compressed);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "Loaded image: legacy:1\nLoaded image: legacy:2\n"
    );
    assert_eq!(inspect_id(&root, "legacy:1"), id1);
    assert_eq!(inspect_id(&root, "legacy:2"), id2);
    let out = root.ok(&["run", "--rm", "--network", "none", "legacy:1"]);
    assert_eq!(out, "from 20.10\n");
    let out = root.ok(&["run", "--rm", "--network", "none", "legacy:2"]);
    assert_eq!(out, "second\n");
}

// ---- 4. hostile and broken archives ----

/// Loads `archive` into a new root next to a sentinel dir; it must fail with `expect` in
/// its message, store nothing and write nothing outside the store.
fn refused(archive: &[u8], expect: &str) {
    let root = DockRoot::new();
    root.import_busybox("bb");
    let before_images = root.ok(&["images", "-a", "-q", "--no-trunc"]);
    let before_tags = fs::read(root.path().join("repositories")).unwrap();
    let (out, dir) = load_file(&root, archive);
    assert!(!out.status.success(), "loaded: {}", stdout(&out));
    let err = stderr(&out);
    assert!(err.starts_with("Error: "), "{err}");
    assert!(err.contains(expect), "wanted {expect:?} in: {err}");
    assert_eq!(
        root.ok(&["images", "-a", "-q", "--no-trunc"]),
        before_images
    );
    assert_eq!(
        fs::read(root.path().join("repositories")).unwrap(),
        before_tags
    );
    // No staging or temporary file left in the store, nothing next to the archive.
    let staging: Vec<_> = fs::read_dir(root.path().join("graph/_tmp"))
        .unwrap()
        .collect();
    assert!(staging.is_empty(), "{staging:?}");
    let beside: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, vec![std::ffi::OsString::from("image.tar")]);
    for escaped in ["/tmp/dock-escaped", "/etc/dock-escaped"] {
        assert!(!Path::new(escaped).exists(), "{escaped} was written");
    }
}

#[test]
fn hostile_dotdot_in_a_manifest_layer_path_is_refused() {
    let (mut files, _, layer_path) = docker25(&tar_of(&[("a", b"1")]), "x:1");
    let manifest = String::from_utf8(files[2].1.clone()).unwrap();
    files[2].1 = manifest
        .replace(&layer_path, "../../../../tmp/dock-escaped")
        .into_bytes();
    refused(&tar_files(&files), "path leads outside the archive");
}

#[test]
fn hostile_dotdot_in_an_entry_name_is_refused() {
    let (mut files, _, _) = docker25(&tar_of(&[("a", b"1")]), "x:1");
    files.push(("../../../../tmp/dock-escaped".to_string(), b"x".to_vec()));
    refused(&tar_files(&files), "path leads outside the archive");
}

#[test]
fn hostile_symlinked_layer_blob_is_refused() {
    let (files, _, layer_path) = docker25(&tar_of(&[("a", b"1")]), "x:1");
    let archive = tar_entries(&[
        E::File(&files[0].0, files[0].1.clone()),
        E::Symlink(&layer_path, "/etc/passwd"),
        E::File(&files[2].0, files[2].1.clone()),
    ]);
    refused(&archive, "blobs must be regular files");
}

#[test]
fn hostile_symlinked_legacy_layer_outside_the_archive_is_refused() {
    let layer = tar_of(&[("a", b"1")]);
    let (files, id, _) = docker25(&layer, "x:1");
    let manifest = serde_json::to_vec(&json!([{
        "Config": format!("{id}.json"), "RepoTags": ["x:1"], "Layers": ["abc/layer.tar"]
    }]))
    .unwrap();
    let config_path = format!("{id}.json");
    let archive = tar_entries(&[
        E::File(&config_path, files[0].1.clone()),
        E::Symlink("abc/layer.tar", "../../../../etc/passwd"),
        E::File("manifest.json", manifest),
    ]);
    refused(&archive, "leads outside the archive");
}

#[test]
fn broken_truncated_archive_is_refused() {
    let layer = fs::read(busybox_tar()).unwrap();
    let (files, _, _) = docker25(&layer, "x:1");
    // Metadata first (as dock writes it), so the layer streams into the store and is cut.
    let reordered = vec![files[2].clone(), files[0].clone(), files[1].clone()];
    let archive = tar_files(&reordered);
    refused(&archive[..archive.len() / 2], "truncated");
}

#[test]
fn broken_truncated_blob_is_refused() {
    let layer = fs::read(busybox_tar()).unwrap();
    let (mut files, _, _) = docker25(&layer, "x:1");
    // A complete archive whose layer blob lost its end.
    files[1].1.truncate(layer.len() / 2);
    refused(&tar_files(&files), "layer");
}

#[test]
fn broken_digest_mismatch_is_refused() {
    let (mut files, _, _) = docker25(&tar_of(&[("a", b"1")]), "x:1");
    // The config changed after it was named by its digest.
    files[0].1 = String::from_utf8(files[0].1.clone())
        .unwrap()
        .replace("from-docker25", "tampered")
        .into_bytes();
    refused(&tar_files(&files), "has digest sha256:");
}

#[test]
fn broken_manifest_naming_a_missing_layer_is_refused() {
    let (files, _, layer_path) = docker25(&tar_of(&[("a", b"1")]), "x:1");
    let kept: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .filter(|(p, _)| *p != layer_path)
        .collect();
    refused(&tar_files(&kept), "is not in the archive");
}

#[test]
fn load_reads_gzip_from_stdin_and_refuses_what_is_not_an_image_archive() {
    let (files, id, _) = docker25(&fs::read(busybox_tar()).unwrap(), "d25:1");
    let archive = registry_common::gzip(&tar_files(&files));
    let root = DockRoot::new();
    let mut child = root
        .cmd()
        .args(["load", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&archive).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(stdout(&out), "Loaded image: d25:1\n", "{}", stderr(&out));
    assert_eq!(inspect_id(&root, "d25:1"), id);
    assert_eq!(
        root.ok(&["run", "--rm", "--network", "none", "d25:1"]),
        "from-docker25\n"
    );
    refused(&tar_of(&[("etc/passwd", b"x")]), "not an image archive");
}

// ---- 5. docker save / docker load through dock daemon ----

struct Daemon {
    root: DockRoot,
    host: String,
    config: tempfile::TempDir,
    child: Child,
}

impl Daemon {
    fn start(root: DockRoot) -> Daemon {
        let socket = root.path().join("api.sock");
        let log = fs::File::create(root.path().join("daemon.log")).unwrap();
        let child = Command::new(dock_bin())
            .arg("--root")
            .arg(root.path())
            .args(["daemon", "-H"])
            .arg(format!("unix://{}", socket.display()))
            .env("DOCK_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        for _ in 0..1000 {
            if UnixStream::connect(&socket).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Daemon {
            host: format!("unix://{}", socket.display()),
            root,
            config: tempfile::tempdir().unwrap(),
            child,
        }
    }

    fn docker(&self, args: &[&str], stdin: Option<&Path>) -> Output {
        let mut cmd = Command::new("timeout");
        cmd.args(["-k", "5", "60", "docker"])
            .args(args)
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", self.config.path())
            .env_remove("DOCKER_API_VERSION")
            .env_remove("DOCKER_CONTEXT");
        match stdin {
            Some(path) => cmd.stdin(fs::File::open(path).unwrap()),
            None => cmd.stdin(Stdio::null()),
        };
        cmd.output().unwrap()
    }

    fn ok(&self, args: &[&str], stdin: Option<&Path>) -> String {
        let out = self.docker(args, stdin);
        assert!(
            out.status.success(),
            "docker {args:?}: {}\ndaemon log:\n{}",
            stderr(&out),
            fs::read_to_string(self.root.path().join("daemon.log")).unwrap_or_default()
        );
        stdout(&out)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill only sends a signal to the daemon this test started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

#[test]
fn docker_save_and_docker_load_through_dock_daemon() {
    let (root, id) = root_with_config_image("app", "echo from-app");
    let diffs = diff_ids(&root, "app");
    let daemon = Daemon::start(root);
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("app.tar");
    daemon.ok(&["save", "-o", file.to_str().unwrap(), "app"], None);
    // The docker CLI's file is the archive dock writes: skopeo reads it as an oci-archive.
    let dir = work.path().join("oci");
    skopeo(&[
        "copy",
        &format!("oci-archive:{}", file.display()),
        &format!("oci:{}:app", dir.display()),
    ]);
    let (config_digest, _, layers) = oci_image(&dir);
    assert_eq!(config_digest, format!("sha256:{id}"));
    assert_eq!(uncompressed_digests(&dir, &layers), diffs);

    daemon.ok(&["rmi", "app"], None);
    let out = daemon.ok(&["load", "-i", file.to_str().unwrap()], None);
    assert_eq!(out.trim(), "Loaded image: app:latest");
    let shown = daemon.ok(
        &["images", "--no-trunc", "--format", "{{.ID}}", "app"],
        None,
    );
    assert_eq!(shown.trim(), format!("sha256:{id}"));

    // From stdin, and `docker load` of a file that is not an image archive says why.
    let out = daemon.ok(&["load"], Some(&file));
    assert_eq!(out.trim(), "Loaded image: app:latest");
    let junk = work.path().join("junk.tar");
    fs::write(&junk, tar_of(&[("x", b"y")])).unwrap();
    let out = daemon.docker(&["load", "-i", junk.to_str().unwrap()], None);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not an image archive"),
        "{}",
        stderr(&out)
    );
    let missing = daemon.docker(&["save", "-o", junk.to_str().unwrap(), "nosuch"], None);
    assert!(!missing.status.success());
}
