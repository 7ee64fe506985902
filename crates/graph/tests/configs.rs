//! Image configuration entries, diff IDs and the meta file: the content-addressed side of the
//! graph that pulled, committed and pushed images use.

use std::io::Cursor;
use std::sync::Arc;

use graph::{sha256_hex, BlobSource, Error, Graph, Image, NewImage};

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_cksum();
        builder.append_data(&mut header, path, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn temp_graph() -> (tempfile::TempDir, Graph) {
    let dir = tempfile::tempdir().unwrap();
    let graph = Graph::open(dir.path().join("graph")).unwrap();
    (dir, graph)
}

fn layer(graph: &Graph, files: &[(&str, &[u8])], parent: Option<&str>) -> Image {
    let new = NewImage {
        parent: parent.map(str::to_string),
        ..NewImage::default()
    };
    graph.create(Cursor::new(tar_of(files)), new).unwrap()
}

fn config_entry(graph: &Graph, config: &[u8], parent: &str) -> Result<Image, Error> {
    let image = Image {
        id: sha256_hex(config),
        parent: Some(parent.to_string()),
        created: chrono::Utc::now(),
        ..Image::default()
    };
    graph.register_config(image, config)
}

#[test]
fn a_config_entry_is_named_by_its_digest_and_has_no_layer() {
    let (_dir, graph) = temp_graph();
    let base = layer(&graph, &[("a", b"1")], None);
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let image = config_entry(&graph, config, &base.id).unwrap();
    assert!(image.layerless);
    assert_eq!(graph.get(&image.id).unwrap(), image);
    assert_eq!(
        graph.config(&image.id).unwrap().as_deref(),
        Some(&config[..])
    );
    assert_eq!(graph.config(&base.id).unwrap(), None);
    assert_eq!(
        graph.image_config(&image.id).unwrap().as_deref(),
        Some(&config[..])
    );
    assert_eq!(graph.image_config(&base.id).unwrap(), None);
    // Only the base's layer is mounted for it.
    assert_eq!(
        graph.layers(&image.id).unwrap(),
        vec![graph.layer_path(&base.id)]
    );
    assert!(!graph.root().join(&image.id).join("layer").exists());
    // An image committed on top finds the config below it.
    let top = layer(&graph, &[("b", b"2")], Some(&image.id));
    assert_eq!(
        graph.image_config(&top.id).unwrap().as_deref(),
        Some(&config[..])
    );
    assert_eq!(graph.layers(&top.id).unwrap().len(), 2);
    assert!(matches!(
        config_entry(&graph, config, &base.id),
        Err(Error::AlreadyExists(_))
    ));
}

#[test]
fn a_config_whose_digest_is_not_the_id_is_refused_and_nothing_stored() {
    let (_dir, graph) = temp_graph();
    let base = layer(&graph, &[("a", b"1")], None);
    let image = Image {
        id: sha256_hex(b"other"),
        parent: Some(base.id.clone()),
        ..Image::default()
    };
    let err = graph.register_config(image, b"{}").unwrap_err();
    assert!(matches!(err, Error::ConfigDigest { .. }), "{err}");
    assert_eq!(graph.all().unwrap().len(), 1);
}

#[test]
fn a_layer_gives_back_exactly_the_tar_it_was_made_from() {
    let (_dir, graph) = temp_graph();
    let mut tar = tar_of(&[("etc/hostname", b"box\n"), ("bin/sh", &[7u8; 3000])]);
    tar.extend_from_slice(&[0u8; 4096]); // padding another writer might add
    let image = graph
        .create(Cursor::new(tar.clone()), NewImage::default())
        .unwrap();
    let diff_id = format!("sha256:{}", sha256_hex(&tar));
    assert_eq!(image.diff_id.as_deref(), Some(diff_id.as_str()));
    assert_eq!(graph.diff_id(&image.id).unwrap(), diff_id);
    let mut out = Vec::new();
    assert_eq!(graph.layer_tar(&image.id, &mut out).unwrap(), diff_id);
    assert!(out == tar);
    // Its size is known from the skeleton alone, before any byte is written.
    assert_eq!(graph.layer_tar_size(&image.id).unwrap(), tar.len() as u64);
    // Changed on disk, the layer no longer gives its tar: an error, not other bytes.
    std::fs::write(graph.layer_path(&image.id).join("bin/sh"), [8u8; 3000]).unwrap();
    let err = graph.layer_tar(&image.id, std::io::sink()).unwrap_err();
    assert!(matches!(err, Error::DiffIdMismatch { .. }), "{err}");
}

#[test]
fn a_layer_whose_tar_is_not_its_stated_diff_id_is_refused_and_nothing_stored() {
    let (_dir, graph) = temp_graph();
    let image = Image {
        id: "cd".repeat(32),
        diff_id: Some(format!("sha256:{}", "ab".repeat(32))),
        ..Image::default()
    };
    let err = graph
        .register(Cursor::new(tar_of(&[("x", b"y")])), image)
        .unwrap_err();
    assert!(matches!(err, Error::DiffIdMismatch { .. }), "{err}");
    assert!(graph.all().unwrap().is_empty());
    assert_eq!(
        std::fs::read_dir(graph.root().join("_tmp"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn an_older_layer_without_a_skeleton_gets_the_diff_id_of_a_new_tar() {
    let (_dir, graph) = temp_graph();
    let image = layer(&graph, &[("a", b"1")], None);
    // As an older dock stored it: no diff id, no skeleton.
    let dir = graph.root().join(&image.id);
    std::fs::remove_file(dir.join("layer.skeleton.zst")).unwrap();
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("json")).unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("diff_id");
    std::fs::write(dir.join("json"), serde_json::to_vec(&json).unwrap()).unwrap();

    let diff_id = graph.diff_id(&image.id).unwrap();
    let mut tar = Vec::new();
    archive::tar_dir(
        &graph.layer_path(&image.id),
        &mut tar,
        archive::Compression::None,
    )
    .unwrap();
    assert_eq!(diff_id, format!("sha256:{}", sha256_hex(&tar)));
    assert_eq!(
        graph.meta(&image.id).unwrap().diff_id,
        Some(diff_id.clone())
    );
    let mut out = Vec::new();
    assert_eq!(graph.layer_tar(&image.id, &mut out).unwrap(), diff_id);
    assert!(out == tar);
    assert_eq!(graph.layer_tar_size(&image.id).unwrap(), tar.len() as u64);
    let config = config_entry(&graph, b"{}", &image.id).unwrap();
    assert!(matches!(graph.diff_id(&config.id), Err(Error::NoLayer(_))));
}

#[test]
fn concurrent_meta_updates_all_land() {
    let (_dir, graph) = temp_graph();
    let base = layer(&graph, &[("a", b"1")], None);
    let graph = Arc::new(graph);
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let graph = Arc::clone(&graph);
            let id = base.id.clone();
            std::thread::spawn(move || {
                graph
                    .update_meta(&id, |meta| {
                        meta.repo_digests
                            .push(format!("localhost:5000/r{i}@sha256:x"));
                        meta.sources.push(BlobSource {
                            registry: "localhost:5000".into(),
                            repository: format!("r{i}"),
                            ..BlobSource::default()
                        });
                    })
                    .unwrap();
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let meta = graph.meta(&base.id).unwrap();
    assert_eq!(meta.repo_digests.len(), 8);
    assert_eq!(meta.sources.len(), 8);
    // No temporary file is left beside it.
    let names: Vec<String> = std::fs::read_dir(graph.root().join(&base.id))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, ["json", "layer", "layer.skeleton.zst", "meta.json"]);
    assert!(matches!(
        graph.update_meta(&"ef".repeat(32), |_| {}),
        Err(Error::NoSuchImage(_))
    ));
}

#[test]
fn an_image_is_as_big_as_its_chain() {
    let (_dir, graph) = temp_graph();
    let base = layer(&graph, &[("a", &[1u8; 100])], None);
    let top = layer(&graph, &[("b", &[2u8; 20])], Some(&base.id));
    let config = config_entry(&graph, b"{}", &top.id).unwrap();
    assert_eq!(graph.image_size(&config.id).unwrap(), 120);
    assert_eq!(graph.image_size(&base.id).unwrap(), 100);
    let all = graph.all().unwrap();
    let sizes = graph::image_sizes(&all);
    let positions = graph::Positions::new(&all);
    let size_of = |id: &str| sizes[positions.get(id).unwrap()];
    assert_eq!(size_of(&config.id), 120);
    assert_eq!(size_of(&top.id), 120);
    assert_eq!(size_of(&base.id), 100);
}
