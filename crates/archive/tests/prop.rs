//! Property tests of extraction: archives made of random headers, hostile names, link
//! targets, whiteouts and entry types. Whatever the archive, `extract` never panics, never
//! writes, links, chmods or chowns anything outside the destination (a sentinel tree sits
//! beside it), answers with a typed error, and a refused archive leaves the destination empty.
//!
//! The seed is fixed so CI always runs the same cases; `PROPTEST_RNG_SEED` and
//! `PROPTEST_CASES` explore more.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use archive::Error;
use common::{snapshot, Node};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use tar::{EntryType, Header};

fn config(cases: u32) -> ProptestConfig {
    let env = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            env.cases
        } else {
            cases
        },
        rng_seed: if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
            env.rng_seed
        } else {
            RngSeed::Fixed(0x646f_636b)
        },
        failure_persistence: None,
        ..env
    }
}

/// A path component, biased towards the ones that matter: `..`, `.`, empty, whiteouts,
/// the sentinel's names.
fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["a", "b", "dir", "outside", "sentinel", "etc", "passwd"]),
        3 => prop::sample::select(vec![
            "..", ".", "", ".wh.a", ".wh.b", ".wh.dir", ".wh..wh..opq", ".wh..", ".wh...",
            ".wh..wh.plnk", ".wh.", ".wh.outside",
        ]),
        1 => prop::sample::select(vec!["\u{e9}", "a b", "\u{1b}[31m", "x\u{7f}"]),
    ]
    .prop_map(String::from)
}

fn path() -> impl Strategy<Value = String> {
    (any::<bool>(), vec(component(), 0..4)).prop_map(|(absolute, comps)| {
        let joined = comps.join("/");
        if absolute {
            format!("/{joined}")
        } else {
            joined
        }
    })
}

fn link_target() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => path(),
        2 => prop::sample::select(vec![
            "../outside/sentinel", "../outside", "/", "../../", "..", "../outside/etc/passwd",
            "dir/../../outside/sentinel", "/proc/self/root/etc/passwd",
        ]).prop_map(String::from),
        1 => "[ -~]{0,24}",
    ]
}

fn kind() -> impl Strategy<Value = EntryType> {
    prop_oneof![
        4 => Just(EntryType::Regular),
        3 => Just(EntryType::Directory),
        3 => Just(EntryType::Symlink),
        3 => Just(EntryType::Link),
        1 => Just(EntryType::Char),
        1 => Just(EntryType::Block),
        1 => Just(EntryType::Fifo),
        1 => any::<u8>().prop_map(EntryType::new),
    ]
}

/// A PAX record for the next entry, values near the edges included.
fn pax_record() -> impl Strategy<Value = (String, Vec<u8>)> {
    let key = prop::sample::select(vec![
        "path",
        "linkpath",
        "mtime",
        "size",
        "uid",
        "SCHILY.xattr.user.x",
        "SCHILY.xattr.trusted.overlay.opaque",
        "SCHILY.xattr.trusted.overlay.redirect",
    ]);
    let value = prop_oneof![
        path().prop_map(String::into_bytes),
        "-?[0-9]{1,20}(\\.[0-9]{0,12})?".prop_map(String::into_bytes),
        prop::sample::select(vec![
            "-9223372036854775808.5",
            "-9223372036854775808",
            "9223372036854775807.999999999",
            "18446744073709551616",
            "-0.5",
            "1.",
            ".5",
            "1.+5",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        vec(any::<u8>(), 0..16),
    ];
    (key.prop_map(String::from), value)
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    kind: EntryType,
    link: Option<String>,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    device: (u32, u32),
    data: Vec<u8>,
    pax: Vec<(String, Vec<u8>)>,
    /// Raw header bytes overwritten after the fields are set (the checksum is fixed after).
    garbage: Vec<(usize, u8)>,
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        path(),
        kind(),
        proptest::option::of(link_target()),
        any::<u32>(),
        prop::sample::select(vec![0u64, 1, 1000, 65534, 0o7777777]),
        prop::sample::select(vec![0u64, 1, 1000, 65534, 0o7777777]),
        0u64..0o77777777777,
        (0u32..300, 0u32..300),
        vec(any::<u8>(), 0..80),
        vec(pax_record(), 0..2),
        prop_oneof![4 => Just(Vec::new()), 1 => vec((0usize..500, any::<u8>()), 1..4)],
    )
        .prop_map(
            |(name, kind, link, mode, uid, gid, mtime, device, data, pax, garbage)| Entry {
                name,
                kind,
                link,
                mode: mode & 0o7777,
                uid,
                gid,
                mtime,
                device,
                data,
                pax,
                garbage,
            },
        )
}

fn pad(out: &mut Vec<u8>) {
    let rest = out.len() % 512;
    if rest != 0 {
        out.resize(out.len() + 512 - rest, 0);
    }
}

fn pax_header(out: &mut Vec<u8>, records: &[(String, Vec<u8>)]) {
    let (header, data) = common::pax_entry(records);
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&data);
    pad(out);
}

/// The archive, byte for byte: names and link targets go into the header verbatim.
fn build(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        if !e.pax.is_empty() {
            pax_header(&mut out, &e.pax);
        }
        let mut header = Header::new_gnu();
        header.set_entry_type(e.kind);
        header.set_mode(e.mode);
        header.set_uid(e.uid);
        header.set_gid(e.gid);
        header.set_mtime(e.mtime);
        header.set_size(e.data.len() as u64);
        if matches!(e.kind, EntryType::Char | EntryType::Block) {
            header.set_device_major(e.device.0).unwrap();
            header.set_device_minor(e.device.1).unwrap();
        }
        let old = header.as_old_mut();
        old.name = [0; 100];
        old.name[..e.name.len()].copy_from_slice(e.name.as_bytes());
        if let Some(link) = &e.link {
            old.linkname = [0; 100];
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        for &(at, byte) in &e.garbage {
            header.as_mut_bytes()[at] = byte;
        }
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&e.data);
        pad(&mut out);
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

/// `dest/` (empty) with `outside/` beside it: a sentinel file, a directory and a symlink a
/// hostile entry might aim at.
struct Sandbox {
    _dir: tempfile::TempDir,
    root: PathBuf,
    dest: PathBuf,
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
        std::os::unix::fs::symlink("etc", outside.join("link")).unwrap();
        Sandbox {
            _dir: dir,
            root,
            dest,
        }
    }

    /// Everything but `dest/`, the temp dir's own metadata included.
    fn outside(&self) -> BTreeMap<String, Node> {
        snapshot(&self.root, true)
            .into_iter()
            .filter(|(path, _)| path != "dest" && !path.starts_with("dest/"))
            .collect()
    }
}

fn check(archive: &[u8]) -> Result<(), TestCaseError> {
    let sandbox = Sandbox::new();
    let before = sandbox.outside();
    let result = archive::extract(archive, &sandbox.dest);
    prop_assert_eq!(
        &sandbox.outside(),
        &before,
        "something outside the destination changed ({:?})",
        result
    );
    if let Err(err) = &result {
        // Typed: one of the crate's kinds, with a message that says something.
        let typed = matches!(
            err,
            Error::Io { .. } | Error::Read { .. } | Error::Refused { .. } | Error::Entry { .. }
        );
        prop_assert!(typed, "untyped error {:?}", err);
        prop_assert!(!err.to_string().is_empty());
        let left = common::names(&sandbox.dest);
        prop_assert!(
            left.is_empty(),
            "a failed extraction left {:?}: {}",
            left,
            err
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(192))]

    #[test]
    fn extraction_stays_inside_the_destination(entries in vec(entry(), 1..8)) {
        check(&build(&entries))?;
    }

    #[test]
    fn truncated_archives_are_errors_not_panics(
        entries in vec(entry(), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let archive = build(&entries);
        let end = cut.index(archive.len());
        check(&archive[..end])?;
    }
}

proptest! {
    #![proptest_config(config(128))]

    /// Junk behind each compression's magic (and bare junk): a typed error or an empty
    /// layer, never a panic, nothing outside.
    #[test]
    fn compressed_junk_is_refused(
        magic in prop::sample::select(vec![
            &b""[..], b"\x1f\x8b\x08", b"BZh9", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd",
        ]),
        junk in vec(any::<u8>(), 0..600),
    ) {
        let mut archive = magic.to_vec();
        archive.extend_from_slice(&junk);
        check(&archive)?;
    }

    /// A real archive compressed, then cut: never a panic, and an error leaves nothing.
    #[test]
    fn compressed_archives_cut_short_never_leave_a_partial_layer(
        entries in vec(entry(), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&build(&entries)).unwrap();
        let compressed = gz.finish().unwrap();
        let end = cut.index(compressed.len());
        check(&compressed[..end])?;
    }
}

/// Regression: `.wh...` is a whiteout of `..`; replacing "what is there" removed the
/// destination's parent, sentinel and all.
#[test]
fn a_whiteout_of_dot_dot_is_refused_and_removes_nothing() {
    for name in [".wh...", "dir/.wh...", ".wh..", "dir/.wh.."] {
        let sandbox = Sandbox::new();
        let before = sandbox.outside();
        let archive = build(&[Entry {
            name: name.to_string(),
            kind: EntryType::Regular,
            link: None,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            device: (0, 0),
            data: Vec::new(),
            pax: Vec::new(),
            garbage: Vec::new(),
        }]);
        let err = archive::extract(archive.as_slice(), &sandbox.dest).unwrap_err();
        assert!(matches!(err, Error::Refused { .. }), "{name}: {err:?}");
        assert_eq!(sandbox.outside(), before, "{name}");
        assert!(Path::new(&sandbox.dest).exists());
        assert!(common::names(&sandbox.dest).is_empty());
    }
}

/// Regression: a PAX mtime of i64::MIN with a fraction overflowed (a panic in debug builds).
#[test]
fn a_pax_mtime_at_the_edge_is_an_error_not_a_panic() {
    let sandbox = Sandbox::new();
    let archive = build(&[Entry {
        name: "f".into(),
        kind: EntryType::Regular,
        link: None,
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 0,
        device: (0, 0),
        data: b"x".to_vec(),
        pax: vec![("mtime".into(), b"-9223372036854775808.5".to_vec())],
        garbage: Vec::new(),
    }]);
    let err = archive::extract(archive.as_slice(), &sandbox.dest).unwrap_err();
    assert!(matches!(err, Error::Entry { .. }), "{err:?}");
    assert!(common::names(&sandbox.dest).is_empty());
}
