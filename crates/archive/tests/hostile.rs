//! Hostile archives: nothing may be written, linked, chmod-ed or chown-ed outside the
//! destination, and a refused archive leaves the destination as empty as it was.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use archive::{extract, Error};
use common::{snapshot, ArchiveBuilder, Node};

/// A temp dir holding `dest/` (empty) and `outside/` with sentinel files next to it.
struct Sandbox {
    _dir: tempfile::TempDir,
    root: PathBuf,
    dest: PathBuf,
    outside: PathBuf,
    before: BTreeMap<String, Node>,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let dest = root.join("dest");
        let outside = root.join("outside");
        fs::create_dir(&dest).unwrap();
        fs::create_dir_all(outside.join("etc")).unwrap();
        fs::write(outside.join("sentinel"), b"keep").unwrap();
        fs::write(outside.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
        let before = Self::outside_state(&root);
        Sandbox {
            _dir: dir,
            root,
            dest,
            outside,
            before,
        }
    }

    /// Everything in the temp dir except `dest/`, with the metadata of the temp dir itself.
    fn outside_state(root: &Path) -> BTreeMap<String, Node> {
        snapshot(root, true)
            .into_iter()
            .filter(|(path, _)| path != "dest" && !path.starts_with("dest/"))
            .collect()
    }

    fn outside(&self) -> &str {
        self.outside.to_str().unwrap()
    }

    /// Extract `archive`, expect a refusal, and check nothing changed anywhere.
    fn refused(&self, archive: Vec<u8>) -> Error {
        let err =
            extract(archive.as_slice(), &self.dest).expect_err("hostile archive must be refused");
        assert_eq!(
            Self::outside_state(&self.root),
            self.before,
            "something outside the destination changed"
        );
        assert!(
            common::names(&self.dest).is_empty(),
            "partial output left: {:?}",
            common::names(&self.dest)
        );
        err
    }

    fn untouched_outside(&self) {
        assert_eq!(
            Self::outside_state(&self.root),
            self.before,
            "something outside the destination changed"
        );
    }
}

fn message(err: &Error) -> String {
    err.to_string()
}

#[test]
fn parent_dir_entry_is_refused() {
    let sandbox = Sandbox::new();
    let mut ar = ArchiveBuilder::new();
    ar.dir("ok/")
        .file("ok/file", b"fine")
        .file("../x", b"escape");
    let err = sandbox.refused(ar.finish());
    assert!(message(&err).contains("../x"), "{err}");
    assert!(!sandbox.root.join("x").exists());
}

#[test]
fn nested_parent_dir_entry_is_refused() {
    let sandbox = Sandbox::new();
    let mut ar = ArchiveBuilder::new();
    ar.file("a/b", b"fine").file("a/../../sentinel", b"pwned");
    let err = sandbox.refused(ar.finish());
    assert!(message(&err).contains("a/../../sentinel"), "{err}");
}

#[test]
fn absolute_symlink_then_write_through_it_is_refused() {
    let sandbox = Sandbox::new();
    let mut ar = ArchiveBuilder::new();
    ar.symlink("l", &format!("{}/etc", sandbox.outside()))
        .file("l/passwd", b"pwned::0:0::/:/bin/sh\n");
    let err = sandbox.refused(ar.finish());
    assert!(
        message(&err).contains("l/passwd") && message(&err).contains("symlink"),
        "{err}"
    );
}

#[test]
fn symlink_to_host_etc_is_never_followed() {
    let sandbox = Sandbox::new();
    let probe = format!("dock-archive-test-{}", std::process::id());
    let mut ar = ArchiveBuilder::new();
    ar.symlink("l", "/etc")
        .file(&format!("l/{probe}"), b"pwned");
    let passwd_before = fs::read("/etc/passwd").unwrap();
    let result = extract(ar.finish().as_slice(), &sandbox.dest);
    let leaked = Path::new("/etc").join(&probe);
    let escaped = leaked.exists();
    if escaped {
        fs::remove_file(&leaked).unwrap();
    }
    assert!(!escaped, "wrote through the symlink into /etc");
    assert!(result.is_err());
    assert_eq!(fs::read("/etc/passwd").unwrap(), passwd_before);
    assert!(common::names(&sandbox.dest).is_empty());
}

#[test]
fn relative_symlink_climbing_out_is_not_followed() {
    let sandbox = Sandbox::new();
    let mut ar = ArchiveBuilder::new();
    ar.dir("a/")
        .symlink("a/l", "../../..")
        .file("a/l/sentinel", b"pwned");
    sandbox.refused(ar.finish());
    let mut ar = ArchiveBuilder::new();
    ar.symlink("up", "../outside").file("up/sentinel", b"pwned");
    sandbox.refused(ar.finish());
}

#[test]
fn directory_entry_through_a_symlink_is_refused() {
    let sandbox = Sandbox::new();
    let mut ar = ArchiveBuilder::new();
    ar.symlink("l", sandbox.outside())
        .dir_with("l/newdir/", &common::meta(0o777, 1000, 1000, 1));
    let err = sandbox.refused(ar.finish());
    assert!(message(&err).contains("l/newdir"), "{err}");
    assert!(!sandbox.outside.join("newdir").exists());
}

#[test]
fn directory_entry_over_a_symlink_replaces_it_and_never_chmods_the_target() {
    let sandbox = Sandbox::new();
    let mut ar = ArchiveBuilder::new();
    ar.symlink("l", sandbox.outside())
        .dir_with("l/", &common::meta(0o777, 1000, 1000, 1))
        .file("l/x", b"inside");
    extract(ar.finish().as_slice(), &sandbox.dest).unwrap();
    sandbox.untouched_outside();
    let l = fs::symlink_metadata(sandbox.dest.join("l")).unwrap();
    assert!(l.is_dir());
    assert_eq!((l.mode() & 0o7777, l.uid()), (0o777, 1000));
    assert_eq!(fs::read(sandbox.dest.join("l/x")).unwrap(), b"inside");
}

#[test]
fn file_entry_over_a_symlink_pointing_outside_replaces_the_symlink() {
    let sandbox = Sandbox::new();
    let mut ar = ArchiveBuilder::new();
    ar.symlink("l", &format!("{}/sentinel", sandbox.outside()))
        .file_with("l", &common::meta(0o4777, 1000, 1000, 1), b"pwned");
    extract(ar.finish().as_slice(), &sandbox.dest).unwrap();
    sandbox.untouched_outside();
    let l = fs::symlink_metadata(sandbox.dest.join("l")).unwrap();
    assert!(l.is_file());
    assert_eq!(fs::read(sandbox.dest.join("l")).unwrap(), b"pwned");
    // Devices and fifos over a symlink replace it the same way.
    let mut ar = ArchiveBuilder::new();
    ar.symlink("n", &format!("{}/sentinel", sandbox.outside()))
        .device(
            "n",
            tar::EntryType::Fifo,
            &common::meta(0o666, 5, 5, 1),
            0,
            0,
        );
    extract(ar.finish().as_slice(), &sandbox.dest).unwrap();
    sandbox.untouched_outside();
}

#[test]
fn hard_link_to_host_file_is_refused() {
    let sandbox = Sandbox::new();
    let passwd = fs::metadata("/etc/passwd").unwrap();
    let mut ar = ArchiveBuilder::new();
    ar.file("ok", b"fine").hardlink("passwd", "/etc/passwd");
    let err = sandbox.refused(ar.finish());
    assert!(message(&err).contains("passwd"), "{err}");
    assert_eq!(fs::metadata("/etc/passwd").unwrap().nlink(), passwd.nlink());
    let mut ar = ArchiveBuilder::new();
    ar.hardlink("sentinel", &format!("{}/sentinel", sandbox.outside()));
    sandbox.refused(ar.finish());
}

#[test]
fn hard_link_via_parent_dir_is_refused() {
    let sandbox = Sandbox::new();
    let mut ar = ArchiveBuilder::new();
    ar.file("ok", b"fine").hardlink("x", "../outside/sentinel");
    let err = sandbox.refused(ar.finish());
    assert!(message(&err).contains("../outside/sentinel"), "{err}");
    assert_eq!(
        fs::metadata(sandbox.outside.join("sentinel"))
            .unwrap()
            .nlink(),
        1
    );
}

#[test]
fn hard_link_through_a_planted_symlink_is_refused() {
    let sandbox = Sandbox::new();
    let mut ar = ArchiveBuilder::new();
    ar.symlink("l", sandbox.outside())
        .hardlink("x", "l/sentinel");
    let err = sandbox.refused(ar.finish());
    assert!(message(&err).contains("symlink"), "{err}");
    assert_eq!(
        fs::metadata(sandbox.outside.join("sentinel"))
            .unwrap()
            .nlink(),
        1
    );
}

#[test]
fn whiteouts_through_a_planted_symlink_are_refused() {
    let sandbox = Sandbox::new();
    let mut ar = ArchiveBuilder::new();
    ar.symlink("l", sandbox.outside())
        .file("l/.wh.sentinel", b"");
    sandbox.refused(ar.finish());
    let mut ar = ArchiveBuilder::new();
    ar.symlink("l", sandbox.outside())
        .file("l/.wh..wh..opq", b"");
    sandbox.refused(ar.finish());
}

#[test]
fn truncated_archive_is_refused() {
    let sandbox = Sandbox::new();
    let mut ar = ArchiveBuilder::new();
    ar.file("small", b"ok").file("big", &vec![1u8; 100_000]);
    let mut bytes = ar.finish();
    bytes.truncate(512 * 3 + 40_000);
    let err = sandbox.refused(bytes);
    assert!(message(&err).contains("big"), "{err}");
    // Cut inside a header too.
    let mut ar = ArchiveBuilder::new();
    ar.file("small", b"ok").file("next", b"data");
    let mut bytes = ar.finish();
    bytes.truncate(512 * 2 + 100);
    sandbox.refused(bytes);
    // And a compressed stream cut short.
    let mut ar = ArchiveBuilder::new();
    ar.file("small", b"ok").file(
        "big",
        &(0..200_000u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<_>>(),
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &ar.finish()).unwrap();
    let mut bytes = gz.finish().unwrap();
    bytes.truncate(bytes.len() / 2);
    sandbox.refused(bytes);
}

#[test]
fn garbage_input_is_refused() {
    let sandbox = Sandbox::new();
    let garbage: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let err = sandbox.refused(garbage);
    assert!(message(&err).starts_with("read archive"), "{err}");
    // Garbage behind a gzip magic fails in the decoder.
    let mut fake_gzip = vec![0x1f, 0x8b];
    fake_gzip.extend_from_slice(b"this is not deflate data at all");
    sandbox.refused(fake_gzip);
}

#[test]
fn bad_header_checksum_is_refused() {
    let sandbox = Sandbox::new();
    let mut ar = ArchiveBuilder::new();
    ar.file("first", b"ok").file("second", b"bad");
    let mut bytes = ar.finish();
    // Flip a byte of the second header's name.
    bytes[1024 + 2] ^= 0x20;
    let err = sandbox.refused(bytes);
    assert!(
        message(&err).contains("checksum") && message(&err).contains("first"),
        "{err}"
    );
}

#[test]
fn existing_destination_content_survives_a_refused_archive() {
    let sandbox = Sandbox::new();
    fs::write(sandbox.dest.join("keep"), b"mine").unwrap();
    let mut ar = ArchiveBuilder::new();
    ar.file("new", b"x").file("../x", b"escape");
    extract(ar.finish().as_slice(), &sandbox.dest).unwrap_err();
    assert_eq!(common::names(&sandbox.dest), vec!["keep"]);
    assert_eq!(fs::read(sandbox.dest.join("keep")).unwrap(), b"mine");
    sandbox.untouched_outside();
}

#[test]
fn entry_replacing_the_destination_itself_is_refused() {
    let sandbox = Sandbox::new();
    let mut ar = ArchiveBuilder::new();
    ar.file("a", b"fine").symlink("./", sandbox.outside());
    let err = sandbox.refused(ar.finish());
    assert!(message(&err).contains("destination"), "{err}");
    let mut ar = ArchiveBuilder::new();
    ar.file("/", b"not a directory");
    sandbox.refused(ar.finish());
}

#[test]
fn missing_destination_is_an_error_naming_it() {
    let sandbox = Sandbox::new();
    let missing = sandbox.root.join("missing");
    let mut ar = ArchiveBuilder::new();
    ar.file("a", b"x");
    let err = extract(ar.finish().as_slice(), &missing).unwrap_err();
    assert!(message(&err).contains("missing"), "{err}");
    assert!(!missing.exists());
    sandbox.untouched_outside();
}

#[test]
fn hard_link_to_a_directory_is_refused() {
    let sandbox = Sandbox::new();
    let mut ar = ArchiveBuilder::new();
    ar.dir("d/").hardlink("x", "d");
    let err = sandbox.refused(ar.finish());
    assert!(message(&err).contains("is a directory"), "{err}");
}

#[test]
fn directory_replaced_by_a_symlink_later_never_gets_the_directory_metadata() {
    // The CVE-2026-33056 shape the other way round: the deferred chmod/chown/utimes of `d`
    // must not land on what a later symlink `d` points at.
    let sandbox = Sandbox::new();
    let mut ar = ArchiveBuilder::new();
    ar.dir_with("d/", &common::meta(0o777, 1000, 1000, 1))
        .symlink("d", sandbox.outside());
    extract(ar.finish().as_slice(), &sandbox.dest).unwrap();
    sandbox.untouched_outside();
    assert!(fs::symlink_metadata(sandbox.dest.join("d"))
        .unwrap()
        .file_type()
        .is_symlink());
}
