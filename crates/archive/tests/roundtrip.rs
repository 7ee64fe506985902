//! tar_dir: sorted output, whiteouts converted back to the tar form, and the round trip
//! tar -> dir -> tar -> dir keeping content and metadata.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;

use archive::{extract, tar_dir, Compression};
use common::{meta, snapshot, ArchiveBuilder};
use tar::EntryType;

const NET_BIND_CAP: [u8; 20] = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

fn rich_archive() -> Vec<u8> {
    let mut ar = ArchiveBuilder::new();
    ar.dir_with("./", &meta(0o755, 0, 0, 100))
        .dir_with("tmp/", &meta(0o1777, 0, 0, 1_000_000))
        .dir_with("srv/", &meta(0o2750, 1000, 1001, 2_000_000))
        .file_with("srv/data", &meta(0o640, 1000, 1001, 3_000_000), b"data")
        .file_with("bin/su", &meta(0o4755, 0, 0, 4_000_000), b"su")
        .hardlink("bin/su2", "bin/su")
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
            "dev/sda",
            EntryType::Block,
            &meta(0o660, 0, 6, 6_000_001),
            8,
            0,
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
        ])
        .file_with(
            "bin/ping",
            &meta(0o755, 0, 0, 7_000_000),
            &vec![0xab; 70_000],
        )
        .file_with("etc/.wh.shadow", &meta(0o600, 12, 34, 1), b"")
        .dir_with("opt/", &meta(0o755, 0, 0, 8_000_000))
        .file("opt/.wh..wh..opq", b"")
        .file_with("opt/new", &meta(0o644, 0, 0, 9_000_000), b"n");
    ar.finish()
}

#[test]
fn tar_to_dir_to_tar_to_dir_keeps_everything() {
    let first = tempfile::tempdir().unwrap();
    extract(rich_archive().as_slice(), first.path()).unwrap();
    let expected = snapshot(first.path(), true);
    for compression in [
        Compression::None,
        Compression::Gzip,
        Compression::Bzip2,
        Compression::Xz,
        Compression::Zstd,
    ] {
        let mut tar = Vec::new();
        tar_dir(first.path(), &mut tar, compression).unwrap();
        assert_eq!(archive::detect(&tar), compression);
        let second = tempfile::tempdir().unwrap();
        extract(tar.as_slice(), second.path()).unwrap();
        assert_eq!(snapshot(second.path(), true), expected, "{compression:?}");
    }
    // Spot checks that the snapshot saw what matters.
    assert_eq!(expected["bin/su"].mode, 0o4755);
    assert_eq!(expected["bin/su"].links, vec!["bin/su", "bin/su2"]);
    assert_eq!(expected["tmp"].mode, 0o1777);
    assert_eq!(expected["dev/sda"].rdev, (8, 0));
    assert_eq!(
        expected["bin/ping"].xattrs["security.capability"],
        NET_BIND_CAP
    );
    assert_eq!(expected["etc/shadow"].kind, "char");
    assert_eq!(expected["opt"].xattrs["trusted.overlay.opaque"], b"y");
}

struct Listed {
    path: String,
    kind: EntryType,
    mode: u32,
    uid: u64,
    size: u64,
    link: Option<String>,
    xattrs: Vec<String>,
}

fn list(tar: &[u8]) -> Vec<Listed> {
    let mut archive = tar::Archive::new(tar);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let xattrs = match entry.pax_extensions().unwrap() {
            Some(pax) => pax.map(|r| r.unwrap().key().unwrap().to_string()).collect(),
            None => Vec::new(),
        };
        let header = entry.header();
        out.push(Listed {
            path: String::from_utf8(entry.path_bytes().into_owned()).unwrap(),
            kind: header.entry_type(),
            mode: header.mode().unwrap(),
            uid: header.uid().unwrap(),
            size: entry.size(),
            link: entry
                .link_name_bytes()
                .map(|l| String::from_utf8(l.into_owned()).unwrap()),
            xattrs,
        });
        let mut sink = Vec::new();
        entry.read_to_end(&mut sink).unwrap();
    }
    out
}

#[test]
fn overlay_whiteouts_become_tar_whiteouts_in_sorted_order() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::create_dir_all(root.join("opt/sub")).unwrap();
    fs::write(root.join("etc/hosts"), b"h").unwrap();
    fs::write(root.join("b"), b"b").unwrap();
    fs::write(root.join("a.txt"), b"a").unwrap();
    common::mknod(&root.join("etc/shadow"), libc::S_IFCHR, 0, 0, 0);
    common::lchown(&root.join("etc/shadow"), 12, 34);
    common::set_xattr(&root.join("opt"), "trusted.overlay.opaque", b"y");
    common::set_xattr(&root.join("opt"), "user.keep", b"1");
    common::set_xattr(&root.join("etc"), "trusted.overlay.origin", b"junk");
    fs::hard_link(root.join("b"), root.join("opt/sub/b-link")).unwrap();

    let mut tar = Vec::new();
    tar_dir(root, &mut tar, Compression::None).unwrap();
    let entries = list(&tar);
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        // Sorted by the names on disk, as Docker does; `shadow` became `.wh.shadow`.
        [
            "./",
            "a.txt",
            "b",
            "etc/",
            "etc/hosts",
            "etc/.wh.shadow",
            "opt/",
            "opt/.wh..wh..opq",
            "opt/sub/",
            "opt/sub/b-link"
        ]
    );
    let by_path = |path: &str| entries.iter().find(|e| e.path == path).unwrap();
    let shadow = by_path("etc/.wh.shadow");
    assert_eq!(
        (shadow.kind, shadow.mode, shadow.size, shadow.uid),
        (EntryType::Regular, 0o600, 0, 12)
    );
    assert_eq!(by_path("opt/.wh..wh..opq").kind, EntryType::Regular);
    assert_eq!(by_path("opt/").xattrs, vec!["SCHILY.xattr.user.keep"]);
    assert!(entries
        .iter()
        .all(|e| e.xattrs.iter().all(|x| !x.contains("trusted.overlay"))));
    let link = by_path("opt/sub/b-link");
    assert_eq!(
        (link.kind, link.link.as_deref()),
        (EntryType::Link, Some("b"))
    );

    // And back: the tar form turns into the overlay form again.
    let again = tempfile::tempdir().unwrap();
    extract(tar.as_slice(), again.path()).unwrap();
    let shadow = fs::symlink_metadata(again.path().join("etc/shadow")).unwrap();
    assert_eq!((shadow.rdev(), shadow.uid(), shadow.gid()), (0, 12, 34));
    assert_eq!(
        common::xattrs(&again.path().join("opt"))
            .get("trusted.overlay.opaque")
            .map(Vec::as_slice),
        Some(&b"y"[..])
    );
    assert_eq!(
        fs::metadata(again.path().join("b")).unwrap().ino(),
        fs::metadata(again.path().join("opt/sub/b-link"))
            .unwrap()
            .ino()
    );
}

#[test]
fn long_names_and_link_targets_survive() {
    let dir = tempfile::tempdir().unwrap();
    let deep = dir.path().join("x".repeat(90)).join("y".repeat(90));
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("z".repeat(90)), b"deep").unwrap();
    std::os::unix::fs::symlink("t".repeat(200), deep.join("long-link")).unwrap();
    let mut tar = Vec::new();
    tar_dir(dir.path(), &mut tar, Compression::Zstd).unwrap();
    let out = tempfile::tempdir().unwrap();
    extract(tar.as_slice(), out.path()).unwrap();
    assert_eq!(snapshot(out.path(), false), snapshot(dir.path(), false));
}

#[test]
fn missing_source_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = tar_dir(&missing, Vec::new(), Compression::None).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}
