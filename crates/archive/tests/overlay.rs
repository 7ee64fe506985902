//! The whole commit flow on a real overlay mount: change files through the mount, compute
//! changes() of the upper dir, tar_dir() it, extract it as a new layer and mount the layers
//! again: the view must be the same, and changes() must list what was done.

mod common;

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use archive::{changes, extract, tar_dir, Compression};
use common::{meta, snapshot, ArchiveBuilder};

/// An overlay mount, unmounted when dropped (also when the test fails).
struct Mount(PathBuf);

impl Mount {
    fn overlay(target: &Path, options: &str) -> Mount {
        let source = CString::new("overlay").unwrap();
        let target_c = CString::new(target.as_os_str().as_bytes()).unwrap();
        let data = CString::new(options).unwrap();
        let ret = unsafe {
            libc::mount(
                source.as_ptr(),
                target_c.as_ptr(),
                source.as_ptr(),
                0,
                data.as_ptr().cast(),
            )
        };
        assert_eq!(
            ret,
            0,
            "mount overlay {options}: {}",
            std::io::Error::last_os_error()
        );
        Mount(target.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let target = CString::new(self.0.as_os_str().as_bytes()).unwrap();
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

fn base_layer() -> Vec<u8> {
    let mut ar = ArchiveBuilder::new();
    ar.dir_with("etc/", &meta(0o755, 0, 0, 1_000))
        .file_with(
            "etc/passwd",
            &meta(0o644, 0, 0, 1_000),
            b"root:x:0:0::/root:/bin/sh\n",
        )
        .file_with(
            "etc/shadow",
            &meta(0o640, 0, 42, 1_000),
            b"root:*:1::::::\n",
        )
        .file_with(
            "etc/.wh-like",
            &meta(0o644, 0, 0, 1_000),
            b"a name that starts like a whiteout",
        )
        .dir_with("usr/", &meta(0o755, 0, 0, 1_000))
        .dir_with("usr/local/", &meta(0o755, 0, 0, 1_000))
        .dir_with("opt/", &meta(0o755, 0, 0, 1_000))
        .dir_with("opt/app/", &meta(0o755, 0, 0, 1_000))
        .file_with("opt/app/old", &meta(0o644, 0, 0, 1_000), b"old")
        .file_with("bin/su", &meta(0o4755, 0, 0, 1_000), b"su");
    ar.finish()
}

#[test]
fn commit_flow_through_a_real_overlay() {
    let dir = tempfile::tempdir().unwrap();
    let [layer1, layer2, upper, work, merged, view] =
        ["layer1", "layer2", "upper", "work", "merged", "view"].map(|name| dir.path().join(name));
    for path in [&layer1, &layer2, &upper, &work, &merged, &view] {
        fs::create_dir(path).unwrap();
    }
    extract(base_layer().as_slice(), &layer1).unwrap();

    let expected_view;
    {
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            layer1.display(),
            upper.display(),
            work.display()
        );
        let _mount = Mount::overlay(&merged, &options);
        fs::write(
            merged.join("etc/passwd"),
            b"root:x:0:0::/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
        )
        .unwrap();
        fs::remove_file(merged.join("etc/shadow")).unwrap();
        fs::remove_file(merged.join("etc/.wh-like")).unwrap();
        fs::create_dir_all(merged.join("usr/local/bin")).unwrap();
        fs::write(merged.join("usr/local/bin/tool"), b"tool").unwrap();
        // Removing a directory and making it again gives an opaque directory in the upper.
        fs::remove_dir_all(merged.join("opt/app")).unwrap();
        fs::create_dir(merged.join("opt/app")).unwrap();
        fs::write(merged.join("opt/app/new"), b"new").unwrap();
        common::lchown(&merged.join("bin/su"), 0, 0);
        expected_view = snapshot(&merged, false);
    }

    let diff: Vec<String> = changes(std::slice::from_ref(&layer1), &upper)
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        diff,
        [
            "C /bin",
            "C /bin/su",
            "C /etc",
            "D /etc/.wh-like",
            "C /etc/passwd",
            "D /etc/shadow",
            "C /opt",
            "C /opt/app",
            "A /opt/app/new",
            "D /opt/app/old",
            "C /usr",
            "C /usr/local",
            "A /usr/local/bin",
            "A /usr/local/bin/tool",
        ]
    );

    // Commit: the upper as a tar layer, extracted as a new layer, mounted over the old one.
    let mut tar = Vec::new();
    tar_dir(&upper, &mut tar, Compression::Gzip).unwrap();
    extract(tar.as_slice(), &layer2).unwrap();
    let options = format!("lowerdir={}:{}", layer2.display(), layer1.display());
    let _mount = Mount::overlay(&view, &options);
    assert_eq!(snapshot(&view, false), expected_view);
    assert_eq!(fs::read(view.join("opt/app/new")).unwrap(), b"new");
    assert!(!view.join("opt/app/old").exists());
    assert!(!view.join("etc/shadow").exists());
}
