//! Pulling from a real `docker-registry`, fed by skopeo from OCI layouts written here.

mod common;

use std::fs;
use std::io::Read;

use common::*;
use registry::{media, Error, Platform, Reference};

fn reference(reg: &TestRegistry, rest: &str) -> Reference {
    Reference::parse(&format!("{}/{rest}", reg.host())).unwrap()
}

/// Downloads every layer, checks its digest while streaming, and returns the diff IDs of the
/// uncompressed streams.
fn diff_ids(client: &registry::Client, image: &registry::ResolvedImage) -> Vec<String> {
    let want = image.diff_ids();
    image
        .layers
        .iter()
        .zip(&want)
        .map(|(l, diff_id)| {
            let mut layer = client.open_layer(&image.reference, l).unwrap();
            let mut entries = tar::Archive::new(&mut layer);
            assert!(entries.entries().unwrap().count() > 0);
            layer.finish(Some(diff_id)).unwrap()
        })
        .collect()
}

#[test]
fn oci_image_by_tag_and_by_digest() {
    let reg = TestRegistry::start();
    let (_dir, img) = push_fixture(&reg, "team/app", "v1", &[]);
    let client = client(None, None);
    let r = reference(&reg, "team/app:v1");
    let got = client.resolve(&r, &Platform::host()).unwrap();
    assert_eq!(got.manifest.media_type, media::OCI_MANIFEST);
    assert_eq!(got.index, None);
    assert_eq!(got.digest, got.manifest.digest);
    assert_eq!(got.config_bytes, img.config);
    assert_eq!(got.id(), img.config_digest);
    assert_eq!(got.layers.len(), 3);
    let want: Vec<String> = img.layers.iter().map(|l| l.2.clone()).collect();
    assert_eq!(got.diff_ids(), want);
    assert_eq!(diff_ids(&client, &got), want);
    assert_eq!(
        got.image_config
            .config()
            .as_ref()
            .unwrap()
            .working_dir()
            .as_deref(),
        Some("/w")
    );

    // By digest: the same manifest, its bytes verified.
    let by_digest = client
        .resolve(&r.with_digest(&got.digest), &Platform::host())
        .unwrap();
    assert_eq!(by_digest.manifest, got.manifest);

    // fetch_blob streams into a writer and verifies.
    let mut out = Vec::new();
    let l = &got.layers[2];
    let n = client
        .fetch_blob(&r, l.digest().as_ref(), Some(l.size()), &mut out)
        .unwrap();
    assert_eq!(n, l.size());
    assert_eq!(sha256(&out), l.digest().to_string());
    assert_eq!(client.tags(&r).unwrap(), ["v1"]);
}

#[test]
fn docker_media_types() {
    let reg = TestRegistry::start();
    push_fixture(&reg, "dockerish", "1", &["-f", "v2s2"]);
    let client = client(None, None);
    let got = client
        .resolve(&reference(&reg, "dockerish:1"), &Platform::host())
        .unwrap();
    assert_eq!(got.manifest.media_type, media::DOCKER_MANIFEST);
    assert_eq!(got.config.media_type().to_string(), media::DOCKER_CONFIG);
    for l in &got.layers {
        assert_eq!(l.media_type().to_string(), media::DOCKER_LAYER_GZIP);
    }
    assert_eq!(diff_ids(&client, &got), got.diff_ids());
}

#[test]
fn zstd_layers() {
    let reg = TestRegistry::start();
    push_fixture(
        &reg,
        "zst",
        "1",
        &["-f", "oci", "--dest-compress-format", "zstd"],
    );
    let client = client(None, None);
    let got = client
        .resolve(&reference(&reg, "zst:1"), &Platform::host())
        .unwrap();
    assert!(
        got.layers
            .iter()
            .all(|l| l.media_type().to_string() == media::OCI_LAYER_ZSTD),
        "{:?}",
        got.layers
    );
    assert_eq!(diff_ids(&client, &got), got.diff_ids());
}

/// An OCI index with an attestation-like `unknown/unknown` entry first, and the same as a
/// Docker manifest list.
#[test]
fn index_and_manifest_list_pick_the_platform() {
    let reg = TestRegistry::start();
    let dir = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(dir.path());
    let amd = layout.image("amd64", &[&[("arch", b"amd64\n")]]);
    let arm = layout.image("arm64", &[&[("arch", b"arm64\n")]]);
    let odd = layout.image("amd64", &[&[("arch", b"attestation\n")]]);
    let index = layout.index(&[
        (&odd, "unknown", "unknown"),
        (&arm, "linux", "arm64"),
        (&amd, "linux", "amd64"),
    ]);
    layout.tag("multi", OCI_INDEX, &sha256(&index), index.len());
    let src = layout.source("multi");
    for (name, flags) in [("oci-index", vec![]), ("docker-list", vec!["-f", "v2s2"])] {
        let dest = format!("docker://{}/{name}:1", reg.host());
        let mut args = vec!["copy", "--dest-tls-verify=false", "--multi-arch", "all"];
        args.extend(flags);
        args.extend([src.as_str(), dest.as_str()]);
        skopeo(&args);
        let client = client(None, None);
        let r = reference(&reg, &format!("{name}:1"));
        let got = client.resolve(&r, &"linux/amd64".parse().unwrap()).unwrap();
        let index = got.index.clone().expect("resolved through an index");
        let want_type = if name == "oci-index" {
            media::OCI_INDEX
        } else {
            media::DOCKER_MANIFEST_LIST
        };
        assert_eq!(index.media_type, want_type);
        assert_eq!(got.digest, index.digest, "the repo digest is the index's");
        assert_eq!(got.image_config.architecture().to_string(), "amd64");
        assert_eq!(got.diff_ids(), [amd.layers[0].2.clone()]);
        let got = client.resolve(&r, &"linux/arm64".parse().unwrap()).unwrap();
        assert_eq!(got.diff_ids(), [arm.layers[0].2.clone()]);
        // The host's platform by default (this machine is one of the two).
        let host = client.resolve(&r, &Platform::host()).unwrap();
        assert_eq!(
            host.image_config.architecture().to_string(),
            Platform::host().architecture
        );

        let err = client
            .resolve(&r, &"linux/s390x".parse().unwrap())
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::PlatformNotFound { .. }), "{err:?}");
        assert!(
            msg.contains("linux/s390x") && msg.contains("linux/arm64, linux/amd64"),
            "{msg}"
        );
        assert!(!msg.contains("unknown"), "{msg}");
    }
}

#[test]
fn corrupted_blob_is_a_digest_mismatch() {
    let reg = TestRegistry::start();
    let (_dir, img) = push_fixture(&reg, "app", "1", &[]);
    let client = client(None, None);
    let r = reference(&reg, "app:1");
    let got = client.resolve(&r, &Platform::host()).unwrap();
    // Flip one byte of a layer in the registry's storage: same size, other digest.
    let (blob, digest, _) = &img.layers[2];
    let path = reg.blob_path(digest);
    let mut bytes = fs::read(&path).unwrap();
    assert_eq!(&bytes, blob);
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    let l = &got.layers[2];
    let err = client
        .fetch_blob(&r, digest, Some(l.size()), &mut Vec::new())
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains(digest.as_str()), "{err}");

    // Through the reader: the mismatch shows at the end of the stream.
    let mut reader = client.open_blob(&r, digest, Some(l.size())).unwrap();
    let mut sink = Vec::new();
    let e = reader.read_to_end(&mut sink).unwrap_err();
    assert!(matches!(reader.error(e), Error::DigestMismatch { .. }));

    // A truncated blob is a size mismatch.
    fs::write(&path, &bytes[..mid]).unwrap();
    let err = client
        .fetch_blob(&r, digest, Some(l.size()), &mut Vec::new())
        .unwrap_err();
    assert!(
        matches!(err, Error::SizeMismatch { .. } | Error::Http { .. }),
        "{err:?}"
    );
}

#[test]
fn unknown_manifest_and_name() {
    let reg = TestRegistry::start();
    push_fixture(&reg, "app", "1", &[]);
    let client = client(None, None);
    let err = client
        .resolve(&reference(&reg, "app:2"), &Platform::host())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("manifest for {}/app:2 not found", reg.host())
    );
    let err = client
        .resolve(&reference(&reg, "nothing/here"), &Platform::host())
        .unwrap_err();
    // Registry 2.8 says MANIFEST_UNKNOWN for a repository it does not have.
    assert!(matches!(err, Error::ManifestUnknown { .. }), "{err:?}");
    let err = client.tags(&reference(&reg, "nothing/here")).unwrap_err();
    assert!(matches!(err, Error::NameUnknown { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "repository {}/nothing/here not found: name unknown",
            reg.host()
        )
    );
    // A digest the registry does not have.
    let missing = sha256(b"missing");
    let err = client
        .resolve(
            &reference(&reg, &format!("app@{missing}")),
            &Platform::host(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::ManifestUnknown { .. }), "{err:?}");
}

#[test]
fn unreachable_registry_names_the_host() {
    let port = free_port();
    let client = client(None, None);
    let r = Reference::parse(&format!("127.0.0.1:{port}/app")).unwrap();
    let err = client.resolve(&r, &Platform::host()).unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("registry 127.0.0.1:{port} is not reachable")),
        "{err}"
    );
}

#[test]
fn mirrors_serve_the_default_registry_first_and_fall_back() {
    let reg = TestRegistry::start();
    let (_dir, img) = push_fixture(&reg, "library/app", "1", &[]);
    let upstream = reg.port;
    let mirror = FakeServer::start(move |_| Answer::Proxy(upstream));
    let empty = FakeServer::start(|req| {
        if req.path == "/v2/" {
            Answer::new(200, &[], "{}")
        } else {
            Answer::new(
                404,
                &[],
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
            )
        }
    });
    let closed = format!("http://127.0.0.1:{}", free_port());
    let config = |mirrors: Vec<String>| registry::RegistryConfig {
        default_registry: Some(reg.host()),
        mirrors,
        certs_dir: no_certs_dir(),
        ..Default::default()
    };

    // The mirror serves manifest, config and layers.
    let c = registry::Client::new(config(vec![mirror.url()]), None);
    let r = c.config().reference("app:1").unwrap();
    assert_eq!(r.to_string(), format!("{}/library/app:1", reg.host()));
    let got = c.resolve(&r, &Platform::host()).unwrap();
    for l in &got.layers {
        let mut layer = c.open_layer(&r, l).unwrap();
        std::io::copy(&mut layer, &mut std::io::sink()).unwrap();
    }
    let paths: Vec<String> = mirror.requests().iter().map(|q| q.path.clone()).collect();
    assert!(
        paths
            .iter()
            .any(|p| p.ends_with("/v2/library/app/manifests/1")),
        "{paths:?}"
    );
    for (_, digest, _) in &img.layers {
        assert!(
            paths.iter().any(|p| p.ends_with(digest.as_str())),
            "{digest} not from the mirror"
        );
    }

    // A mirror without the image, and one that is down: the registry itself serves.
    let c = registry::Client::new(config(vec![closed, empty.url()]), None);
    let got = c.resolve(&r, &Platform::host()).unwrap();
    assert_eq!(got.config_bytes, img.config);
    let l = &got.layers[0];
    c.fetch_blob(&r, l.digest().as_ref(), Some(l.size()), &mut Vec::new())
        .unwrap();
    assert!(empty
        .requests()
        .iter()
        .any(|q| q.path.contains("/manifests/")));
    assert!(!empty.requests().iter().any(|q| q.path.contains("/blobs/")));

    // Names on other registries never go to a mirror.
    let before = mirror.requests().len();
    let c = registry::Client::new(config(vec![mirror.url()]), None);
    let other = Reference::parse(&format!("localhost:{}/library/app:1", reg.port)).unwrap();
    c.resolve(&other, &Platform::host()).unwrap();
    assert_eq!(mirror.requests().len(), before);
}
