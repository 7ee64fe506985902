//! changes(): what `docker diff` prints for an overlay upper directory over its lower layers.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use archive::{changes, ChangeKind};

/// Lower layers (top first) and an upper dir in one temp dir.
struct Layers {
    _dir: tempfile::TempDir,
    lowers: Vec<PathBuf>,
    upper: PathBuf,
}

impl Layers {
    fn new(count: usize) -> Layers {
        let dir = tempfile::tempdir().unwrap();
        let lowers: Vec<PathBuf> = (0..count)
            .map(|i| dir.path().join(format!("lower{i}")))
            .collect();
        for lower in &lowers {
            fs::create_dir(lower).unwrap();
        }
        let upper = dir.path().join("upper");
        fs::create_dir(&upper).unwrap();
        Layers {
            _dir: dir,
            lowers,
            upper,
        }
    }

    fn lower(&self, index: usize) -> &Path {
        &self.lowers[index]
    }

    /// Lines as `docker diff` prints them.
    fn diff(&self) -> Vec<String> {
        changes(&self.lowers, &self.upper)
            .unwrap()
            .iter()
            .map(|c| c.to_string())
            .collect()
    }
}

fn write(path: &Path, data: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

/// A copied-up directory: same mode and mtime as in the lower layer, as overlayfs makes it.
fn copy_up_dir(lower: &Path, upper: &Path) {
    fs::create_dir_all(upper).unwrap();
    let mode = fs::metadata(lower).unwrap().permissions().mode();
    fs::set_permissions(upper, fs::Permissions::from_mode(mode)).unwrap();
    common::set_mtime(upper, 1_500_000_000);
    common::set_mtime(lower, 1_500_000_000);
}

fn whiteout(path: &Path) {
    common::mknod(path, libc::S_IFCHR, 0, 0, 0);
}

#[test]
fn added_file_at_the_top() {
    let layers = Layers::new(1);
    write(&layers.lower(0).join("etc/passwd"), b"root");
    write(&layers.upper.join("new.txt"), b"new");
    assert_eq!(layers.diff(), ["A /new.txt"]);
}

#[test]
fn modified_file_shows_its_parent_as_changed() {
    let layers = Layers::new(1);
    write(&layers.lower(0).join("etc/passwd"), b"root");
    copy_up_dir(&layers.lower(0).join("etc"), &layers.upper.join("etc"));
    write(&layers.upper.join("etc/passwd"), b"root\nuser");
    assert_eq!(layers.diff(), ["C /etc", "C /etc/passwd"]);
}

#[test]
fn deleted_file_is_reported_by_its_real_name() {
    let layers = Layers::new(1);
    write(&layers.lower(0).join("etc/shadow"), b"x");
    write(&layers.lower(0).join("etc/.what"), b"x");
    copy_up_dir(&layers.lower(0).join("etc"), &layers.upper.join("etc"));
    whiteout(&layers.upper.join("etc/shadow"));
    whiteout(&layers.upper.join("etc/.what"));
    assert_eq!(layers.diff(), ["C /etc", "D /etc/.what", "D /etc/shadow"]);
}

#[test]
fn tar_form_whiteouts_are_decoded_by_prefix() {
    // Docker 0.1.0 trimmed the characters `.`, `w`, `h`: `.wh.hello` gave `ello`, `.wh.www` gave ``.
    let layers = Layers::new(1);
    for name in ["hello", "www", ".hidden"] {
        write(&layers.lower(0).join(name), b"x");
    }
    for name in [".wh.hello", ".wh.www", ".wh..hidden"] {
        write(&layers.upper.join(name), b"");
    }
    assert_eq!(layers.diff(), ["D /.hidden", "D /hello", "D /www"]);
}

#[test]
fn opaque_directory_deletes_what_was_below() {
    let layers = Layers::new(2);
    write(&layers.lower(1).join("opt/a"), b"a");
    write(&layers.lower(0).join("opt/b"), b"b");
    write(&layers.lower(0).join("opt/keep"), b"old");
    write(&layers.lower(1).join("opt/sub/deep"), b"d");
    fs::create_dir_all(layers.upper.join("opt/sub")).unwrap();
    common::set_xattr(&layers.upper.join("opt"), "trusted.overlay.opaque", b"y");
    write(&layers.upper.join("opt/keep"), b"new");
    write(&layers.upper.join("opt/c"), b"c");
    assert_eq!(
        layers.diff(),
        [
            "C /opt",
            "D /opt/a",
            "D /opt/b",
            "A /opt/c",
            "C /opt/keep",
            "C /opt/sub",
            "D /opt/sub/deep"
        ]
    );
}

#[test]
fn nested_add_shows_every_existing_parent_as_changed() {
    let layers = Layers::new(1);
    write(&layers.lower(0).join("usr/local/share/x"), b"x");
    copy_up_dir(&layers.lower(0).join("usr"), &layers.upper.join("usr"));
    copy_up_dir(
        &layers.lower(0).join("usr/local"),
        &layers.upper.join("usr/local"),
    );
    write(&layers.upper.join("usr/local/bin/tool"), b"tool");
    // Undo the mtime bumps of the writes: the parents equal their lower copies, and are
    // still reported because something below them changed.
    common::set_mtime(&layers.upper.join("usr"), 1_500_000_000);
    common::set_mtime(&layers.upper.join("usr/local"), 1_500_000_000);
    assert_eq!(
        layers.diff(),
        [
            "C /usr",
            "C /usr/local",
            "A /usr/local/bin",
            "A /usr/local/bin/tool"
        ]
    );
}

#[test]
fn lower_layer_whiteouts_and_opaque_dirs_hide_deeper_layers() {
    let layers = Layers::new(2);
    // Deleted by the top lower layer: adding it again is an add.
    write(&layers.lower(1).join("gone"), b"old");
    whiteout(&layers.lower(0).join("gone"));
    write(&layers.upper.join("gone"), b"again");
    // Hidden by an opaque directory in the top lower layer.
    write(&layers.lower(1).join("d/hidden"), b"old");
    fs::create_dir_all(layers.lower(0).join("d")).unwrap();
    common::set_xattr(&layers.lower(0).join("d"), "trusted.overlay.opaque", b"y");
    write(&layers.upper.join("d/hidden"), b"new");
    // Present only in the bottom layer: modified.
    write(&layers.lower(1).join("kept"), b"old");
    write(&layers.upper.join("kept"), b"new");
    let diff = layers.diff();
    assert!(diff.contains(&"A /gone".to_string()), "{diff:?}");
    assert!(diff.contains(&"A /d/hidden".to_string()), "{diff:?}");
    assert!(diff.contains(&"C /kept".to_string()), "{diff:?}");
}

#[test]
fn kinds_use_docker_numbering_and_order_is_by_path_components() {
    let layers = Layers::new(1);
    write(&layers.upper.join("a/b"), b"");
    write(&layers.upper.join("a.b"), b"");
    let found = changes(&layers.lowers, &layers.upper).unwrap();
    let paths: Vec<&str> = found.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["/a", "/a/b", "/a.b"]);
    assert!(found
        .iter()
        .all(|c| c.kind == ChangeKind::Add && c.kind as u8 == 1));
}

#[test]
fn missing_upper_is_an_error_naming_it() {
    let layers = Layers::new(0);
    let missing = layers.upper.join("nope");
    let err = changes(&layers.lowers, &missing).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}
