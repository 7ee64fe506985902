use std::io::Cursor;

use graph::{Graph, Image, NewImage};
use serde_json::{json, Value};
use tagstore::TagStore;

use super::*;
use crate::digest::sha256_digest;

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, *data).unwrap();
    }
    b.into_inner().unwrap()
}

struct Store {
    _dir: tempfile::TempDir,
    graph: Graph,
    tags: TagStore,
}

fn store() -> Store {
    let dir = tempfile::tempdir().unwrap();
    let graph = Graph::open(dir.path().join("graph")).unwrap();
    let tags = TagStore::open(dir.path().join("repositories")).unwrap();
    Store {
        _dir: dir,
        graph,
        tags,
    }
}

/// An imported two-layer image tagged `name`: no config of its own.
fn imported(s: &Store, name: &str) -> String {
    let base = s
        .graph
        .create(
            Cursor::new(tar_of(&[("etc/base", b"base\n")])),
            NewImage::default(),
        )
        .unwrap();
    let top = s
        .graph
        .create(
            Cursor::new(tar_of(&[("app/top", &[5u8; 3000])])),
            NewImage {
                parent: Some(base.id.clone()),
                ..NewImage::default()
            },
        )
        .unwrap();
    let (repo, tag) = tagstore::parse_reference(name);
    s.tags
        .set(&s.graph, &repo, &tag.unwrap(), &top.id, true)
        .unwrap();
    top.id
}

fn saved(s: &Store, names: &[&str]) -> Vec<u8> {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let images = resolve_names(&RegistryConfig::default(), &s.graph, &s.tags, &names).unwrap();
    let mut out = Vec::new();
    save(&s.graph, &images, &mut out, &mut |_| {}).unwrap();
    out
}

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

use crate::config::RegistryConfig;

#[test]
fn save_writes_docker_25_layout_metadata_first_and_layers_by_diff_id() {
    let s = store();
    let id = imported(&s, "app:1");
    let archive = saved(&s, &["app:1"]);
    let files = entries(&archive);
    let names: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        &names[..6],
        &[
            "manifest.json",
            "index.json",
            "oci-layout",
            "repositories",
            "blobs/",
            "blobs/sha256/"
        ]
    );
    let get = |p: &str| files.iter().find(|(n, _)| n == p).unwrap().1.clone();
    let manifest: Value = serde_json::from_slice(&get("manifest.json")).unwrap();
    assert_eq!(manifest[0]["RepoTags"], json!(["app:1"]));
    let config = get(manifest[0]["Config"].as_str().unwrap());
    let config_v: Value = serde_json::from_slice(&config).unwrap();
    // Each layer blob is the registered tar: its digest is the diff id the config lists.
    let layers = manifest[0]["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    for (i, layer) in layers.iter().enumerate() {
        let blob = get(layer.as_str().unwrap());
        assert_eq!(sha256_digest(&blob), config_v["rootfs"]["diff_ids"][i]);
        assert_eq!(
            format!("blobs/sha256/{}", hex_of(&sha256_digest(&blob))),
            layer.as_str().unwrap()
        );
    }
    let index: Value = serde_json::from_slice(&get("index.json")).unwrap();
    let d = &index["manifests"][0];
    assert_eq!(
        d["annotations"][ANNOTATION_IMAGE_NAME],
        "docker.io/library/app:1"
    );
    assert_eq!(d["annotations"][ANNOTATION_REF_NAME], "1");
    let m = get(&format!(
        "blobs/sha256/{}",
        hex_of(d["digest"].as_str().unwrap())
    ));
    let m: Value = serde_json::from_slice(&m).unwrap();
    assert_eq!(m["config"]["digest"], sha256_digest(&config));
    let repos: Value = serde_json::from_slice(&get("repositories")).unwrap();
    assert_eq!(
        repos["app"]["1"],
        hex_of(layers[1].as_str().unwrap().rsplit('/').next().unwrap())
    );
    // The same store saves the same bytes.
    assert!(archive == saved(&s, &["app:1"]));
    assert!(s.graph.exists(&id));
}

#[test]
fn a_saved_archive_loads_into_another_store_with_its_names_and_id() {
    let s = store();
    imported(&s, "app:1");
    let archive = saved(&s, &["app"]);
    let config_id = {
        let files = entries(&archive);
        let m: Value = serde_json::from_slice(&files[0].1).unwrap();
        m[0]["Config"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string()
    };
    let other = store();
    let loaded = load(
        &other.graph,
        &other.tags,
        Cursor::new(&archive),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].id, config_id);
    assert_eq!(loaded[0].names, vec!["app:1".to_string()]);
    assert_eq!(
        other.tags.lookup(&other.graph, "app:1").unwrap().id,
        config_id
    );
    // Saved again from there, the archive is the same.
    assert!(saved(&other, &["app:1"]) == archive);
    // Loading again registers nothing new.
    let before = other.graph.all().unwrap().len();
    load(
        &other.graph,
        &other.tags,
        Cursor::new(&archive),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(other.graph.all().unwrap().len(), before);
}

/// An archive of `files`, with entries of other kinds added by `extra`.
fn archive_of(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, d)| (*p, &d[..])).collect();
    tar_of(&refs)
}

fn docker_archive(layer: &[u8]) -> (Vec<(&'static str, Vec<u8>)>, String) {
    let diff = sha256_digest(layer);
    let config = serde_json::to_vec(&json!({
        "os": "linux", "architecture": "amd64",
        "rootfs": {"type": "layers", "diff_ids": [diff]}
    }))
    .unwrap();
    let config_hex = hex_of(&sha256_digest(&config)).to_string();
    let manifest = serde_json::to_vec(&json!([{
        "Config": format!("blobs/sha256/{config_hex}"),
        "RepoTags": ["x:1"],
        "Layers": [format!("blobs/sha256/{}", hex_of(&diff))],
    }]))
    .unwrap();
    let config_path: &'static str =
        Box::leak(format!("blobs/sha256/{config_hex}").into_boxed_str());
    let layer_path: &'static str =
        Box::leak(format!("blobs/sha256/{}", hex_of(&diff)).into_boxed_str());
    (
        vec![
            ("manifest.json", manifest),
            (config_path, config),
            (layer_path, layer.to_vec()),
        ],
        config_hex,
    )
}

fn refused(archive: &[u8]) -> ArchiveError {
    let s = store();
    let err = load(&s.graph, &s.tags, Cursor::new(archive), &mut |_| {}).unwrap_err();
    assert!(s.graph.all().unwrap().is_empty(), "{err}: something stored");
    assert!(s.tags.repositories().unwrap().is_empty());
    err
}

#[test]
fn a_layer_whose_content_is_not_its_name_is_refused_and_nothing_stays() {
    let layer = tar_of(&[("a", b"1")]);
    let (mut files, _) = docker_archive(&layer);
    files[2].1 = tar_of(&[("a", b"2")]);
    let err = refused(&archive_of(&files));
    assert!(matches!(err, ArchiveError::DiffIdMismatch { .. }), "{err}");
}

#[test]
fn a_missing_layer_and_a_dotdot_path_are_refused() {
    let layer = tar_of(&[("a", b"1")]);
    let (files, _) = docker_archive(&layer);
    let err = refused(&archive_of(&files[..2]));
    assert!(matches!(err, ArchiveError::Missing { .. }), "{err}");

    let mut files = files.clone();
    let m = String::from_utf8(files[0].1.clone()).unwrap();
    files[0].1 = m
        .replace("\"blobs/sha256/", "\"blobs/../../../etc/")
        .into_bytes();
    let err = refused(&archive_of(&files));
    assert!(matches!(err, ArchiveError::UnsafePath { .. }), "{err}");
}

#[test]
fn a_loaded_layer_is_rolled_back_when_a_later_one_fails() {
    // Two images; the first loads from the stream, the second's layer is broken.
    let good = tar_of(&[("a", b"1")]);
    let (mut files, _) = docker_archive(&good);
    let bad_layer = tar_of(&[("b", b"2")]);
    let (other, _) = docker_archive(&bad_layer);
    let mut manifest: Value = serde_json::from_slice(&files[0].1).unwrap();
    let second: Value = serde_json::from_slice(&other[0].1).unwrap();
    manifest.as_array_mut().unwrap().push(second[0].clone());
    manifest[1]["RepoTags"] = json!(["y:1"]);
    files[0].1 = serde_json::to_vec(&manifest).unwrap();
    files.push(other[1].clone());
    files.push((other[2].0, tar_of(&[("b", b"3")])));
    let err = refused(&archive_of(&files));
    assert!(matches!(err, ArchiveError::DiffIdMismatch { .. }), "{err}");
}

#[test]
fn paths_are_cleaned_and_refused_outside_the_archive() {
    assert_eq!(
        load_clean(b"./blobs//sha256/x"),
        Ok("blobs/sha256/x".into())
    );
    assert!(load_clean(b"../x").is_err());
    assert!(load_clean(b"a/../../x").is_err());
    assert!(load_clean(b"/etc/passwd").is_err());
}

#[test]
fn links_resolve_lexically_inside_the_archive() {
    let n = super::load::normalize_for_tests;
    assert_eq!(n("b/../a/layer.tar"), Some("a/layer.tar".into()));
    assert_eq!(n("b/../../etc/passwd"), None);
}

fn load_clean(p: &[u8]) -> Result<String, String> {
    super::load::clean_path_for_tests(p).map_err(|e| e.to_string())
}

#[test]
fn index_names_become_tag_store_names() {
    let s = store();
    let id = imported(&s, "localhost:5000/team/app:2");
    let image = s.graph.get(&id).unwrap();
    assert!(!image.layerless);
    let archive = saved(&s, &["localhost:5000/team/app:2"]);
    let files = entries(&archive);
    let index: Value = serde_json::from_slice(&files[1].1).unwrap();
    assert_eq!(
        index["manifests"][0]["annotations"][ANNOTATION_IMAGE_NAME],
        "localhost:5000/team/app:2"
    );
    // Without manifest.json, the OCI layout's names are used.
    let kept: Vec<(&str, Vec<u8>)> = files
        .iter()
        .filter(|(p, _)| p != "manifest.json" && !p.ends_with('/'))
        .map(|(p, d)| (p.as_str(), d.clone()))
        .collect();
    let other = store();
    let loaded = load(
        &other.graph,
        &other.tags,
        Cursor::new(archive_of(&kept)),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(
        loaded[0].names,
        vec!["localhost:5000/team/app:2".to_string()]
    );
    let _ = Image::default();
}

#[test]
fn load_messages_as_docker_prints_them() {
    let loaded = vec![
        super::Loaded {
            id: "a".repeat(64),
            names: vec!["app:1".into(), "app:2".into()],
            replaced: vec![("app:1".into(), "b".repeat(64))],
        },
        super::Loaded {
            id: "c".repeat(64),
            names: vec![],
            replaced: vec![],
        },
    ];
    assert_eq!(
            messages(&loaded),
            vec![
                format!(
                    "The image app:1 already exists, renaming the old one with ID sha256:{} to empty string",
                    "b".repeat(64)
                ),
                "Loaded image: app:1".to_string(),
                "Loaded image: app:2".to_string(),
                format!("Loaded image ID: sha256:{}", "c".repeat(64)),
            ]
        );
}
