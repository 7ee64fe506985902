//! A layer's skeleton: extraction keeps enough to rebuild exactly the tar it read, whoever
//! wrote it, and the rebuild never reads outside the layer.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::process::Command;

use archive::{extract_recorded, rebuild};
use common::{meta, ArchiveBuilder};
use sha2::{Digest, Sha256};
use tar::EntryType;

fn sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Extract `tar` (possibly compressed, `plain` is its uncompressed form), rebuild it and
/// check the bytes and the digest.
fn round_trip(input: &[u8], plain: &[u8]) -> (tempfile::TempDir, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let mut skeleton = Vec::new();
    let recorded = extract_recorded(input, dir.path(), &mut skeleton).unwrap();
    assert_eq!(recorded.diff_id, sha256(plain));
    let mut out = Vec::new();
    let written = rebuild(skeleton.as_slice(), dir.path(), &mut out).unwrap();
    assert_eq!(written, plain.len() as u64);
    assert!(out == plain, "rebuilt tar differs from the original");
    (dir, skeleton)
}

fn every_kind() -> Vec<u8> {
    let mut ar = ArchiveBuilder::new();
    ar.dir_with("etc/", &meta(0o755, 0, 0, 1_000_000))
        .file_with(
            "etc/passwd",
            &meta(0o644, 0, 0, 2),
            b"root:x:0:0::/root:/bin/sh\n",
        )
        .file("empty", b"")
        .file("big", &vec![9u8; 70_000])
        .hardlink("etc/passwd-", "etc/passwd")
        .symlink("bin/ash", "/bin/sh")
        .raw(
            "bin/sh",
            EntryType::Regular,
            &meta(0o4755, 0, 0, 3),
            None,
            &vec![1u8; 513],
        )
        .device("dev/null", EntryType::Char, &meta(0o666, 0, 0, 4), 1, 3)
        .pax(&[("SCHILY.xattr.user.note", b"hi"), ("mtime", b"7000000.25")])
        .file_with("bin/ping", &meta(0o755, 0, 0, 1), b"ping")
        .file(".wh.gone", b"")
        .file("opq/.wh..wh..opq", b"")
        .file("opq/kept", b"kept");
    ar.finish()
}

#[test]
fn every_kind_of_entry_rebuilds_byte_for_byte() {
    let tar = every_kind();
    let (dir, skeleton) = round_trip(&tar, &tar);
    // File contents are not in the skeleton: it is much smaller than the tar.
    assert!(
        skeleton.len() < tar.len() / 4,
        "{} of {}",
        skeleton.len(),
        tar.len()
    );
    assert!(dir.path().join("opq/kept").is_file());
}

#[test]
fn trailing_padding_and_compression_are_part_of_the_digest() {
    let mut tar = every_kind();
    tar.extend_from_slice(&[0u8; 10_240]); // a writer that pads to whole records
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    round_trip(&gz, &tar);
    round_trip(&zstd::encode_all(tar.as_slice(), 3).unwrap(), &tar);
}

#[test]
fn gnu_tar_archives_rebuild_exactly() {
    let src = tempfile::tempdir().unwrap();
    let long = src.path().join("a".repeat(90)).join("b".repeat(90));
    fs::create_dir_all(&long).unwrap();
    fs::write(long.join("c".repeat(100)), vec![3u8; 12_345]).unwrap();
    fs::write(src.path().join("small"), b"x").unwrap();
    fs::hard_link(src.path().join("small"), src.path().join("small-link")).unwrap();
    symlink("small", src.path().join("sym")).unwrap();
    for format in ["gnu", "posix"] {
        let out = Command::new("tar")
            .args(["--format", format, "--xattrs", "-C"])
            .arg(src.path())
            .args(["-cf", "-", "."])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        round_trip(&out.stdout, &out.stdout);
    }
}

#[test]
fn empty_input_is_the_empty_layer() {
    let dir = tempfile::tempdir().unwrap();
    let mut skeleton = Vec::new();
    let recorded = extract_recorded(&b""[..], dir.path(), &mut skeleton).unwrap();
    assert_eq!(recorded.diff_id, sha256(b""));
    let mut out = Vec::new();
    rebuild(skeleton.as_slice(), dir.path(), &mut out).unwrap();
    assert!(out.is_empty());
}

#[test]
fn rebuild_never_follows_a_symlink_out_of_the_layer() {
    let mut ar = ArchiveBuilder::new();
    ar.file("etc/hostname", b"box\n");
    let tar = ar.finish();
    let (dir, skeleton) = round_trip(&tar, &tar);
    // Someone swaps the directory for a link to the host's /etc.
    fs::remove_dir_all(dir.path().join("etc")).unwrap();
    symlink("/etc", dir.path().join("etc")).unwrap();
    let err = rebuild(skeleton.as_slice(), dir.path(), Vec::new()).unwrap_err();
    assert!(err.to_string().contains("etc/hostname"), "{err}");
}

#[test]
fn a_file_that_shrank_is_an_error_naming_it() {
    let mut ar = ArchiveBuilder::new();
    ar.file("data", &[5u8; 1000]);
    let tar = ar.finish();
    let (dir, skeleton) = round_trip(&tar, &tar);
    fs::write(dir.path().join("data"), b"short").unwrap();
    let err = rebuild(skeleton.as_slice(), dir.path(), Vec::new()).unwrap_err();
    assert!(err.to_string().contains("data"), "{err}");
    // A damaged skeleton is an error too, not a panic.
    fs::write(dir.path().join("data"), [5u8; 1000]).unwrap();
    let err = rebuild(&skeleton[..skeleton.len() / 2], dir.path(), Vec::new()).unwrap_err();
    assert!(err.to_string().contains("skeleton"), "{err}");
}
