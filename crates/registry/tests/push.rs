//! Pushing to a real `docker-registry`; skopeo reads back what was pushed.

mod common;

use std::fs;

use common::*;
use registry::{media, Mount, Platform, PushedBlob, Reference};

#[test]
fn push_then_read_back_with_skopeo_and_dock() {
    let reg = TestRegistry::start();
    let client = client(None, None);
    let img = docker_image();
    let r = Reference::parse(&format!("{}/team/pushed:1", reg.host())).unwrap();
    let (what, digest) = push(&client, &r, &img, None).unwrap();
    assert_eq!(
        what,
        [
            PushedBlob::Uploaded,
            PushedBlob::Uploaded,
            PushedBlob::Uploaded
        ]
    );
    assert_eq!(digest, sha256(&img.manifest));

    // skopeo sees exactly the bytes pushed.
    let src = format!("docker://{}", r);
    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &src]).stdout;
    assert_eq!(raw, img.manifest);
    let config = skopeo(&["inspect", "--tls-verify=false", "--config", "--raw", &src]).stdout;
    assert_eq!(config, img.config);
    // skopeo copy verifies every digest on the way.
    let out = tempfile::tempdir().unwrap();
    let dest = format!("dir:{}", out.path().join("img").display());
    skopeo(&["copy", "--src-tls-verify=false", &src, &dest]);
    for (blob, digest, _) in &img.layers {
        assert_eq!(
            &fs::read(out.path().join("img").join(&digest[7..])).unwrap(),
            blob
        );
    }

    // And dock's own pull side resolves it by tag and by the digest the push returned.
    let got = client.resolve(&r, &Platform::host()).unwrap();
    assert_eq!(got.manifest.bytes, img.manifest);
    assert_eq!(got.config_bytes, img.config);
    let got = client
        .resolve(&r.with_digest(&digest), &Platform::host())
        .unwrap();
    assert_eq!(got.digest, digest);

    // A second push uploads nothing.
    let (what, _) = push(&client, &r, &img, None).unwrap();
    assert_eq!(
        what,
        [PushedBlob::Exists, PushedBlob::Exists, PushedBlob::Exists]
    );

    // Pushing by digest works too (no tag).
    assert_eq!(
        client
            .put_manifest(
                &r.with_digest(&digest),
                media::DOCKER_MANIFEST,
                &img.manifest
            )
            .unwrap(),
        digest
    );
}

#[test]
fn cross_repository_mount() {
    let reg = TestRegistry::start();
    let client = client(None, None);
    let img = docker_image();
    let from = Reference::parse(&format!("{}/base/one:1", reg.host())).unwrap();
    push(&client, &from, &img, None).unwrap();
    let to = Reference::parse(&format!("{}/other/two:1", reg.host())).unwrap();
    let (what, _) = push(&client, &to, &img, Some("base/one")).unwrap();
    // The layers are mounted; the config had no source repository given and is uploaded.
    assert_eq!(
        what,
        [
            PushedBlob::Mounted,
            PushedBlob::Mounted,
            PushedBlob::Uploaded
        ]
    );
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{to}"),
    ])
    .stdout;
    assert_eq!(raw, img.manifest);

    // A mount from a repository without the blob starts an ordinary upload (202).
    let fresh = tar_of(&[("x", b"fresh")]);
    let d = sha256(&fresh);
    let third = Reference::parse(&format!("{}/third:1", reg.host())).unwrap();
    let Mount::Upload(location) = client.mount_blob(&third, &d, "base/one").unwrap() else {
        panic!("mounted a blob that is nowhere");
    };
    client
        .finish_upload(&third, &location, &d, fresh.len() as u64, &fresh[..])
        .unwrap();
    assert!(client.blob_exists(&third, &d).unwrap());
}

#[test]
fn upload_with_a_wrong_digest_is_refused() {
    let reg = TestRegistry::start();
    let client = client(None, None);
    let r = Reference::parse(&format!("{}/bad:1", reg.host())).unwrap();
    let body = b"some bytes";
    let wrong = sha256(b"other bytes");
    let err = client
        .upload_blob(&r, &wrong, body.len() as u64, &body[..])
        .unwrap_err();
    assert!(err.to_string().contains("digest invalid"), "{err}");
    assert!(!client.blob_exists(&r, &wrong).unwrap());
}
