//! `registry::push_image` over a graph holding an image as dock's pull stores one (layers by
//! chain ID with their diff IDs and blob sources, a config entry): pushes back to the same
//! registry upload no layer, other repositories mount, another registry gets copies, and
//! layers that cannot be sent are clear errors.

mod common;

use std::fs;
use std::io::Read;

use common::*;
use graph::{BlobSource, Graph, Image};
use registry::{chain_ids, push_image, LayerEvent, LayerStatus, PushError, Reference};

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Stores `img` as dock's pull would, recording `registry/repository` as each layer's
/// source; the image id.
fn store_pulled(graph: &Graph, img: &common::Image, registry: Option<(&str, &str)>) -> String {
    let diff_ids: Vec<String> = img.layers.iter().map(|l| l.2.clone()).collect();
    let chains = chain_ids(&diff_ids);
    let mut parent: Option<String> = None;
    for ((blob, digest, diff_id), chain) in img.layers.iter().zip(&chains) {
        let id = chain[7..].to_string();
        graph
            .register(
                &gunzip(blob)[..],
                Image {
                    id: id.clone(),
                    parent: parent.clone(),
                    created: chrono::Utc::now(),
                    diff_id: Some(diff_id.clone()),
                    ..Image::default()
                },
            )
            .unwrap();
        if let Some((registry, repository)) = registry {
            graph
                .update_meta(&id, |m| {
                    m.sources.push(BlobSource {
                        registry: registry.to_string(),
                        repository: repository.to_string(),
                        digest: digest.clone(),
                        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".to_string(),
                        size: blob.len() as u64,
                    })
                })
                .unwrap();
        }
        parent = Some(id);
    }
    let id = img.config_digest[7..].to_string();
    graph
        .register_config(
            Image {
                id: id.clone(),
                parent,
                created: chrono::Utc::now(),
                ..Image::default()
            },
            &img.config,
        )
        .unwrap();
    id
}

fn push(
    graph: &Graph,
    id: &str,
    target: &str,
) -> (Result<registry::Pushed, PushError>, Vec<LayerEvent>) {
    let client = client(None, None);
    let mut events = Vec::new();
    let r = Reference::parse(target).unwrap();
    let result = push_image(&client, graph, id, &r, &mut |e| events.push(e));
    (result, events)
}

fn finals(events: &[LayerEvent]) -> Vec<LayerStatus> {
    events
        .iter()
        .map(|e| e.status.clone())
        .filter(|s| !matches!(s, LayerStatus::Preparing | LayerStatus::Pushing { .. }))
        .collect()
}

/// Blob uploads (POST/PUT/PATCH under /blobs/uploads/) the proxy saw, by digest when known.
fn uploads(front: &FakeServer, from: usize) -> Vec<String> {
    front.requests()[from..]
        .iter()
        .filter(|r| r.path.contains("/blobs/uploads/") && !r.path.contains("mount="))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[test]
fn pushes_of_a_pulled_image() {
    let reg = TestRegistry::start();
    let (_layout, img) = push_fixture(&reg, "team/app", "1", &[]);
    // dock reaches the registry through a recording proxy: that is the registry it knows.
    let front = FakeServer::start({
        let port = reg.port;
        move |_| Answer::Proxy(port)
    });
    let host = front.host();
    let tmp = tempfile::tempdir().unwrap();
    let graph = Graph::open(tmp.path().join("graph")).unwrap();
    let id = store_pulled(&graph, &img, Some((&host, "team/app")));

    // Back to where it came from: every layer is there, nothing is uploaded.
    let before = front.requests().len();
    let (pushed, events) = push(&graph, &id, &format!("{host}/team/app:2"));
    let pushed = pushed.unwrap();
    assert_eq!(finals(&events), vec![LayerStatus::Exists; 3]);
    assert_eq!(uploads(&front, before), Vec::<String>::new());
    // Ids are short diff ids, base first.
    assert_eq!(events[0].id, img.layers[0].2[7..19]);
    // The config went out byte for byte.
    let src = format!("docker://{}/team/app:2", reg.host());
    let config = skopeo(&["inspect", "--tls-verify=false", "--config", "--raw", &src]).stdout;
    assert_eq!(config, img.config);
    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &src]).stdout;
    assert_eq!(sha256(&raw), pushed.digest);
    let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(manifest["mediaType"], registry::media::DOCKER_MANIFEST);
    for (l, (blob, digest, _)) in manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&img.layers)
    {
        assert_eq!(l["digest"], *digest);
        assert_eq!(l["size"], blob.len());
        assert_eq!(l["mediaType"], registry::media::DOCKER_LAYER_GZIP);
    }
    assert_eq!(
        graph.meta(&id).unwrap().repo_digests,
        [format!("{host}/team/app@{}", pushed.digest)]
    );

    // Another repository: mounted; only the config is uploaded.
    let before = front.requests().len();
    let (result, events) = push(&graph, &id, &format!("{host}/other/copy:1"));
    result.unwrap();
    assert_eq!(
        finals(&events),
        vec![
            LayerStatus::Mounted {
                from: "team/app".into()
            };
            3
        ]
    );
    let ups = uploads(&front, before);
    assert!(
        ups.iter()
            .all(|u| !img.layers.iter().any(|l| u.contains(&l.1[7..]))),
        "{ups:?}"
    );
    // Pushed blobs are recorded as sources of their layers.
    let top = graph.get(&id).unwrap().parent.unwrap();
    let sources = graph.meta(&top).unwrap().sources;
    assert!(
        sources.iter().any(|s| s.repository == "other/copy"),
        "{sources:?}"
    );

    // Another registry: each layer goes as its own tar, exactly the bytes pulled, compressed
    // anew; the config, and so the image ID, is the same.
    let second = TestRegistry::start();
    let (result, events) = push(&graph, &id, &format!("{}/mirror/app:1", second.host()));
    let mirrored = result.unwrap();
    assert_eq!(finals(&events), vec![LayerStatus::Pushed; 3]);
    let src = format!("docker://{}/mirror/app:1", second.host());
    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &src]).stdout;
    let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(manifest["config"]["digest"], format!("sha256:{id}"));
    for (l, (_, _, diff_id)) in manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&img.layers)
    {
        let blob = fs::read(second.blob_path(l["digest"].as_str().unwrap())).unwrap();
        assert_eq!(&sha256(&gunzip(&blob)), diff_id);
    }
    // And again: already there.
    let (result, events) = push(&graph, &id, &format!("{}/mirror/app:1", second.host()));
    assert_eq!(result.unwrap().digest, mirrored.digest);
    assert_eq!(finals(&events), vec![LayerStatus::Exists; 3]);
}

#[test]
fn layers_without_a_source_go_from_their_tar_and_changed_ones_are_refused() {
    let reg = TestRegistry::start();
    let (_layout, img) = push_fixture(&reg, "team/app", "1", &[]);
    let tmp = tempfile::tempdir().unwrap();

    // A pulled layer with no known source goes from its own tar.
    let graph = Graph::open(tmp.path().join("a")).unwrap();
    let id = store_pulled(&graph, &img, None);
    let target = format!("{}/elsewhere:1", reg.host());
    let (result, events) = push(&graph, &id, &target);
    result.unwrap();
    assert_eq!(finals(&events).len(), img.layers.len());

    // A layer dock made whose files changed after its diff id was taken.
    let graph = Graph::open(tmp.path().join("c")).unwrap();
    let made = graph
        .create(
            &tar_of(&[("etc/made", b"by dock\n")])[..],
            Default::default(),
        )
        .unwrap();
    graph.diff_id(&made.id).unwrap();
    fs::write(graph.layer_path(&made.id).join("etc/made"), "changed\n").unwrap();
    let err = push(&graph, &made.id, &target).0.unwrap_err();
    assert!(
        matches!(err, PushError::Graph(graph::Error::DiffIdMismatch { .. })),
        "{err:?}"
    );
    assert!(!reg.blob_path(&sha256(b"x")).exists());
}
