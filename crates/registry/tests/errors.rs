//! Answers a real registry does not give: a fake registry on 127.0.0.1 serves them.

mod common;

use common::*;
use registry::{media, Error, Platform, Reference};

/// A registry that serves `manifest` (with `content_type` and an optional
/// `Docker-Content-Digest`) for every manifest request, and `blobs` by digest.
fn fake(
    manifest: Vec<u8>,
    content_type: &'static str,
    header_digest: Option<String>,
    blobs: Vec<(String, Vec<u8>)>,
) -> FakeServer {
    FakeServer::start(move |req| {
        if req.path == "/v2/" {
            return Answer::new(200, &[], "{}");
        }
        if req.path.contains("/manifests/") {
            let mut headers = vec![("content-type", content_type)];
            if let Some(d) = &header_digest {
                headers.push(("docker-content-digest", d.as_str()));
            }
            return Answer::new(200, &headers, manifest.clone());
        }
        for (d, b) in &blobs {
            if req.path.ends_with(d.as_str()) {
                return Answer::new(200, &[], b.clone());
            }
        }
        Answer::new(
            404,
            &[],
            r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}"#,
        )
    })
}

fn docker_manifest(config: &[u8], config_digest: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": media::DOCKER_MANIFEST,
        "config": {"mediaType": media::DOCKER_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": []
    }))
    .unwrap()
}

const CONFIG: &[u8] =
    br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;

fn reference(server: &FakeServer, rest: &str) -> Reference {
    Reference::parse(&format!("{}/{rest}", server.host())).unwrap()
}

#[test]
fn a_good_fake_resolves() {
    // The baseline the other tests break one thing of.
    let manifest = docker_manifest(CONFIG, &sha256(CONFIG));
    let server = fake(
        manifest.clone(),
        media::DOCKER_MANIFEST,
        Some(sha256(&manifest)),
        vec![(sha256(CONFIG), CONFIG.to_vec())],
    );
    let got = client(None, None)
        .resolve(&reference(&server, "app:1"), &Platform::host())
        .unwrap();
    assert_eq!(got.manifest.bytes, manifest);
    assert!(got.layers.is_empty());
}

#[test]
fn schema1_is_refused() {
    let body = br#"{"schemaVersion":1,"name":"app","tag":"1","architecture":"amd64","fsLayers":[],"history":[],"signatures":[]}"#;
    let server = fake(body.to_vec(), media::DOCKER_SCHEMA1_SIGNED, None, vec![]);
    let err = client(None, None)
        .resolve(&reference(&server, "app:1"), &Platform::host())
        .unwrap_err();
    assert!(matches!(err, Error::Schema1 { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}/app:1 is a Docker image manifest schema 1, which is no longer supported: \
             push it again with a current client",
            server.host()
        )
    );
}

#[test]
fn manifest_digest_mismatch() {
    let manifest = docker_manifest(CONFIG, &sha256(CONFIG));
    let other = sha256(b"something else");
    // By digest: the bytes must hash to the digest asked for.
    let server = fake(manifest.clone(), media::DOCKER_MANIFEST, None, vec![]);
    let r = reference(&server, &format!("app@{other}"));
    let err = client(None, None)
        .resolve(&r, &Platform::host())
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains(&other), "{err}");
    // By tag: the registry's Docker-Content-Digest must match the bytes.
    let server = fake(manifest, media::DOCKER_MANIFEST, Some(other), vec![]);
    let err = client(None, None)
        .resolve(&reference(&server, "app:1"), &Platform::host())
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
}

#[test]
fn config_digest_mismatch() {
    let manifest = docker_manifest(CONFIG, &sha256(CONFIG));
    let mut wrong = CONFIG.to_vec();
    wrong[2] = b'A';
    let server = fake(
        manifest,
        media::DOCKER_MANIFEST,
        None,
        vec![(sha256(CONFIG), wrong)],
    );
    let err = client(None, None)
        .resolve(&reference(&server, "app:1"), &Platform::host())
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
}

#[test]
fn content_type_must_match_media_type() {
    let manifest = docker_manifest(CONFIG, &sha256(CONFIG));
    let server = fake(
        manifest,
        media::OCI_MANIFEST,
        None,
        vec![(sha256(CONFIG), CONFIG.to_vec())],
    );
    let err = client(None, None)
        .resolve(&reference(&server, "app:1"), &Platform::host())
        .unwrap_err();
    assert!(matches!(err, Error::MediaTypeMismatch { .. }), "{err:?}");
}

#[test]
fn no_default_registry_contacts_nothing() {
    // Nothing listens anywhere here: the error comes from the name alone.
    let cfg = registry::RegistryConfig::default();
    let err = cfg.reference("busybox").unwrap_err();
    assert!(matches!(err, Error::NoDefaultRegistry { .. }), "{err:?}");
    assert!(err.to_string().contains("\"default-registry\""), "{err}");
}

/// An uncompressed layer whose padding after the tar end blocks was changed: a tar reader sees
/// nothing wrong, the digest check at the end of the stream does.
#[test]
fn layer_corruption_a_tar_reader_would_miss() {
    let tar = tar_of(&[("f", b"data")]);
    let digest = sha256(&tar);
    let mut served = tar.clone();
    *served.last_mut().unwrap() = 1;
    let layer = registry::media::OCI_LAYER;
    let desc: oci_spec::image::Descriptor = serde_json::from_value(serde_json::json!({
        "mediaType": layer, "digest": digest, "size": tar.len()
    }))
    .unwrap();
    let server = fake(
        vec![],
        media::OCI_MANIFEST,
        None,
        vec![(digest.clone(), served)],
    );
    let c = client(None, None);
    let r = reference(&server, "app:1");
    let mut reader = c.open_layer(&r, &desc).unwrap();
    let mut archive = tar::Archive::new(&mut reader);
    for e in archive.entries().unwrap() {
        e.unwrap();
    }
    let err = reader.finish(None).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");

    // The right blob, but not the diff ID the config names.
    let server = fake(
        vec![],
        media::OCI_MANIFEST,
        None,
        vec![(digest.clone(), tar.clone())],
    );
    let r = reference(&server, "app:1");
    let wrong = sha256(b"not it");
    let err = c
        .open_layer(&r, &desc)
        .unwrap()
        .finish(Some(&wrong))
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
    let r2 = reference(&server, "app:1");
    assert_eq!(
        c.open_layer(&r2, &desc)
            .unwrap()
            .finish(Some(&digest))
            .unwrap(),
        digest
    );
}

/// Registries that know repositories (Docker Hub, Harbor) answer NAME_UNKNOWN.
#[test]
fn name_unknown_from_a_manifest_request() {
    let server = FakeServer::start(|req| {
        if req.path == "/v2/" {
            return Answer::new(200, &[], "{}");
        }
        Answer::new(
            404,
            &[("content-type", "application/json")],
            r#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#,
        )
    });
    let err = client(None, None)
        .resolve(&reference(&server, "team/none:1"), &Platform::host())
        .unwrap_err();
    assert!(matches!(err, Error::NameUnknown { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "repository {}/team/none not found: name unknown",
            server.host()
        )
    );
}

/// A registry that answers uploads with a relative Location carrying a query.
#[test]
fn relative_upload_location_with_a_query() {
    let server = FakeServer::start(|req| match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/v2/") => Answer::new(200, &[], "{}"),
        ("HEAD", _) => Answer::new(404, &[], ""),
        ("POST", "/v2/team/app/blobs/uploads/") => Answer::new(
            202,
            &[("location", "/v2/team/app/blobs/uploads/u1?_state=xyz")],
            "",
        ),
        ("PUT", p)
            if p.starts_with("/v2/team/app/blobs/uploads/u1?_state=xyz&digest=sha256%3A") =>
        {
            Answer::new(201, &[], "")
        }
        _ => Answer::new(400, &[], "unexpected"),
    });
    let c = client(None, None);
    let r = reference(&server, "team/app:1");
    let blob = b"blob bytes";
    let pushed = c
        .push_blob(&r, &sha256(blob), blob.len() as u64, None, || Ok(&blob[..]))
        .unwrap();
    assert_eq!(pushed, registry::PushedBlob::Uploaded);
    let put = server
        .requests()
        .into_iter()
        .find(|q| q.method == "PUT")
        .unwrap();
    assert_eq!(put.body, blob);
    assert_eq!(put.header("content-length"), Some("10"));
}
