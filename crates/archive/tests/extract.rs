//! Extraction: every compression, every entry type, metadata, whiteouts, and stats.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use archive::{extract, Compression, ExtractStats};
use common::{meta, snapshot, xattrs, ArchiveBuilder};
use tar::EntryType;

/// `security.capability` granting cap_net_bind_service, permitted and effective (vfs cap v2).
const NET_BIND_CAP: [u8; 20] = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

fn sample() -> Vec<u8> {
    let mut ar = ArchiveBuilder::new();
    ar.dir("etc/")
        .file("etc/hostname", b"box\n")
        .file("bin/sh", &vec![7u8; 200_000])
        .symlink("bin/ash", "sh");
    ar.finish()
}

fn compress(data: &[u8], compression: Compression) -> Vec<u8> {
    match compression {
        Compression::None => data.to_vec(),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(data).unwrap();
            enc.finish().unwrap()
        }
        Compression::Bzip2 => {
            let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
            enc.write_all(data).unwrap();
            enc.finish().unwrap()
        }
        Compression::Xz => {
            let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 6);
            enc.write_all(data).unwrap();
            enc.finish().unwrap()
        }
        Compression::Zstd => zstd::encode_all(data, 3).unwrap(),
    }
}

#[test]
fn every_compression_is_detected_from_its_bytes() {
    let tar = sample();
    for compression in [
        Compression::None,
        Compression::Gzip,
        Compression::Bzip2,
        Compression::Xz,
        Compression::Zstd,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let bytes = compress(&tar, compression);
        assert_eq!(archive::detect(&bytes), compression);
        let stats = extract(bytes.as_slice(), dir.path())
            .unwrap_or_else(|e| panic!("{compression:?}: {e}"));
        assert_eq!(
            stats,
            ExtractStats {
                bytes: 200_004,
                entries: 4
            },
            "{compression:?}"
        );
        assert_eq!(fs::read(dir.path().join("etc/hostname")).unwrap(), b"box\n");
        assert_eq!(
            fs::read(dir.path().join("bin/sh")).unwrap(),
            vec![7u8; 200_000]
        );
        assert_eq!(
            fs::read_link(dir.path().join("bin/ash")).unwrap().to_str(),
            Some("sh")
        );
    }
}

#[test]
fn empty_input_is_an_empty_layer() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        extract(&b""[..], dir.path()).unwrap(),
        ExtractStats::default()
    );
    assert!(common::names(dir.path()).is_empty());
    // A compressed archive holding no entries at all is just as empty.
    let empty_tar = ArchiveBuilder::new().finish();
    let stats = extract(
        compress(&empty_tar, Compression::Gzip).as_slice(),
        dir.path(),
    )
    .unwrap();
    assert_eq!(stats, ExtractStats::default());
    assert!(common::names(dir.path()).is_empty());
}

#[test]
fn every_entry_type_and_its_metadata_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut ar = ArchiveBuilder::new();
    ar.dir_with("tmp/", &meta(0o1777, 0, 0, 1_000_000))
        .dir_with("srv/", &meta(0o2750, 1000, 1001, 2_000_000))
        .file_with("srv/data", &meta(0o640, 1000, 1001, 3_000_000), b"data")
        .file_with("bin/su", &meta(0o4755, 0, 0, 4_000_000), b"su")
        .file_with("bin/wall", &meta(0o2755, 0, 5, 4_000_001), b"wall")
        .file_with("etc/shadow", &meta(0o000, 0, 42, 4_000_002), b"secret")
        .hardlink("bin/su-again", "bin/su")
        .hardlink("/bin/su-abs", "/bin/su")
        .raw(
            "bin/link",
            EntryType::Symlink,
            &meta(0o777, 7, 8, 5_000_000),
            Some("/bin/su"),
            b"",
        )
        .device(
            "dev/null",
            EntryType::Char,
            &meta(0o666, 0, 0, 6_000_000),
            1,
            3,
        )
        .device(
            "dev/loop9",
            EntryType::Block,
            &meta(0o660, 0, 6, 6_000_001),
            7,
            9,
        )
        .device(
            "run/fifo",
            EntryType::Fifo,
            &meta(0o620, 3, 4, 6_000_002),
            0,
            0,
        )
        .pax(&[
            ("SCHILY.xattr.security.capability", &NET_BIND_CAP),
            ("SCHILY.xattr.user.note", b"hi"),
            ("mtime", b"7000000.25"),
        ])
        .file_with("bin/ping", &meta(0o755, 0, 0, 1), b"ping")
        .pax(&[("SCHILY.xattr.user.dir", b"yes")])
        .dir_with("srv/sub/", &meta(0o700, 9, 9, 8_000_000))
        .file_with("/abs/file", &meta(0o600, 0, 0, 9_000_000), b"abs");
    let stats = extract(ar.finish().as_slice(), dir.path()).unwrap();
    assert_eq!(stats.entries, 15);
    assert_eq!(stats.bytes, 4 + 2 + 4 + 6 + 4 + 3);

    let tree = snapshot(dir.path(), false);
    let node = |path: &str| tree.get(path).unwrap_or_else(|| panic!("{path} missing"));
    // Mode bits exactly as archived, no umask, setuid/setgid/sticky included.
    assert_eq!(
        (node("tmp").kind, node("tmp").mode, node("tmp").mtime),
        ("dir", 0o1777, 1_000_000)
    );
    assert_eq!(
        (node("srv").mode, node("srv").uid, node("srv").gid),
        (0o2750, 1000, 1001)
    );
    // A directory's mtime is set after its contents were written.
    assert_eq!(node("srv").mtime, 2_000_000);
    assert_eq!(
        (
            node("srv/data").mode,
            node("srv/data").uid,
            node("srv/data").gid
        ),
        (0o640, 1000, 1001)
    );
    assert_eq!(node("srv/data").mtime, 3_000_000);
    assert_eq!(
        (node("bin/su").mode, node("bin/su").content.as_slice()),
        (0o4755, &b"su"[..])
    );
    assert_eq!((node("bin/wall").mode, node("bin/wall").gid), (0o2755, 5));
    assert_eq!(
        (node("etc/shadow").mode, node("etc/shadow").gid),
        (0o000, 42)
    );
    assert_eq!(
        node("bin/su").links,
        vec!["bin/su", "bin/su-abs", "bin/su-again"]
    );
    assert_eq!(node("bin/link").kind, "symlink");
    assert_eq!(
        (
            node("bin/link").content.as_slice(),
            node("bin/link").uid,
            node("bin/link").gid
        ),
        (&b"/bin/su"[..], 7, 8)
    );
    assert_eq!(
        fs::symlink_metadata(dir.path().join("bin/link"))
            .unwrap()
            .mtime(),
        5_000_000
    );
    assert_eq!(
        (
            node("dev/null").kind,
            node("dev/null").rdev,
            node("dev/null").mode
        ),
        ("char", (1, 3), 0o666)
    );
    assert_eq!(
        (
            node("dev/loop9").kind,
            node("dev/loop9").rdev,
            node("dev/loop9").gid
        ),
        ("block", (7, 9), 6)
    );
    assert_eq!(
        (
            node("run/fifo").kind,
            node("run/fifo").mode,
            node("run/fifo").uid
        ),
        ("fifo", 0o620, 3)
    );
    let ping = node("bin/ping");
    assert_eq!(
        ping.xattrs.get("security.capability").map(Vec::as_slice),
        Some(&NET_BIND_CAP[..])
    );
    assert_eq!(
        ping.xattrs.get("user.note").map(Vec::as_slice),
        Some(&b"hi"[..])
    );
    let ping_meta = fs::metadata(dir.path().join("bin/ping")).unwrap();
    assert_eq!(
        (ping_meta.mtime(), ping_meta.mtime_nsec()),
        (7_000_000, 250_000_000)
    );
    assert_eq!(
        node("srv/sub").xattrs.get("user.dir").map(Vec::as_slice),
        Some(&b"yes"[..])
    );
    assert_eq!((node("srv/sub").mode, node("srv/sub").uid), (0o700, 9));
    // Leading `/` stripped; parents that were not in the archive are 0755.
    assert_eq!(node("abs/file").content, b"abs");
    assert_eq!((node("abs").kind, node("abs").mode), ("dir", 0o755));
}

#[test]
fn later_entries_replace_earlier_ones_without_following_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut ar = ArchiveBuilder::new();
    ar.file("a", b"first")
        .file("a", b"second")
        .dir("d/")
        .file("d/x", b"x")
        .dir_with("d/", &meta(0o711, 0, 0, 5))
        .file("f", b"file")
        .dir("f/")
        .symlink("s", "a")
        .file("s", b"not through the link");
    extract(ar.finish().as_slice(), dir.path()).unwrap();
    assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"second");
    // A directory entry over an existing directory merges and takes the last metadata.
    assert_eq!(fs::read(dir.path().join("d/x")).unwrap(), b"x");
    let d = fs::metadata(dir.path().join("d")).unwrap();
    assert_eq!((d.permissions().mode() & 0o7777, d.mtime()), (0o711, 5));
    assert!(fs::symlink_metadata(dir.path().join("f")).unwrap().is_dir());
    // The symlink was replaced; its target kept its content.
    assert!(fs::symlink_metadata(dir.path().join("s"))
        .unwrap()
        .is_file());
    assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"second");
}

#[test]
fn tar_whiteouts_become_overlay_whiteouts() {
    let dir = tempfile::tempdir().unwrap();
    let mut ar = ArchiveBuilder::new();
    ar.dir("etc/")
        .file_with("etc/.wh.shadow", &meta(0o600, 12, 34, 1), b"")
        .file("etc/.wh..hidden", b"")
        .dir("opt/")
        .file("opt/.wh..wh..opq", b"")
        .file("opt/new", b"n")
        .file(".wh..wh.plnk/123", b"aufs hard link cache")
        .file(".wh..wh.aufs", b"");
    let stats = extract(ar.finish().as_slice(), dir.path()).unwrap();
    assert_eq!(stats.entries, 6);
    let shadow = fs::symlink_metadata(dir.path().join("etc/shadow")).unwrap();
    assert!(shadow.file_type().is_char_device());
    assert_eq!(
        (shadow.rdev(), shadow.uid(), shadow.gid(), shadow.mtime()),
        (0, 12, 34, 1)
    );
    assert!(fs::symlink_metadata(dir.path().join("etc/.hidden"))
        .unwrap()
        .file_type()
        .is_char_device());
    assert_eq!(
        common::names(&dir.path().join("etc")),
        vec![".hidden", "shadow"]
    );
    assert_eq!(
        xattrs(&dir.path().join("opt"))
            .get("trusted.overlay.opaque")
            .map(Vec::as_slice),
        Some(&b"y"[..])
    );
    assert_eq!(common::names(&dir.path().join("opt")), vec!["new"]);
    assert_eq!(common::names(dir.path()), vec!["etc", "opt"]);
}

#[test]
fn overlay_xattrs_in_the_archive_are_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let mut ar = ArchiveBuilder::new();
    ar.pax(&[
        ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
        ("SCHILY.xattr.user.ok", b"1"),
    ])
    .dir("d/");
    extract(ar.finish().as_slice(), dir.path()).unwrap();
    let attrs = xattrs(&dir.path().join("d"));
    assert!(!attrs.contains_key("trusted.overlay.redirect"));
    assert_eq!(attrs.get("user.ok").map(Vec::as_slice), Some(&b"1"[..]));
}

#[test]
fn root_entry_sets_destination_metadata_and_long_names_work() {
    let dir = tempfile::tempdir().unwrap();
    let long = format!("{}/{}", "d".repeat(120), "f".repeat(150));
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(EntryType::Directory);
    header.set_mode(0o751);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1234);
    header.set_size(0);
    builder.append_data(&mut header, "./", &b""[..]).unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1);
    header.set_size(4);
    builder
        .append_data(&mut header, &long, &b"long"[..])
        .unwrap();
    extract(builder.into_inner().unwrap().as_slice(), dir.path()).unwrap();
    assert_eq!(fs::read(dir.path().join(&long)).unwrap(), b"long");
    let root = fs::metadata(dir.path()).unwrap();
    assert_eq!(
        (root.permissions().mode() & 0o7777, root.mtime()),
        (0o751, 1234)
    );
}

#[test]
fn blank_numeric_fields_read_as_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_path("blank").unwrap();
    header.set_mode(0o600);
    header.set_size(2);
    // uid, gid and mtime left as NUL bytes, as some writers leave them.
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&header, &b"ok"[..]).unwrap();
    extract(builder.into_inner().unwrap().as_slice(), dir.path()).unwrap();
    let meta = fs::metadata(dir.path().join("blank")).unwrap();
    assert_eq!(
        (
            meta.uid(),
            meta.gid(),
            meta.mtime(),
            meta.permissions().mode() & 0o777
        ),
        (0, 0, 0, 0o600)
    );
}
