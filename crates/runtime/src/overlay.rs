//! The storage driver: an overlay of the image's layers with a per-container upper dir.
//!
//! Layers are passed one per `fsconfig("lowerdir+")` call of the new mount API (kernel 6.8+),
//! so any depth fits; on older kernels the classic `mount(2)` is used with paths relative to
//! the layers' common directory, which the calling (single-threaded) process enters for the call.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::Mount {
        path: p.to_path_buf(),
        message: "path contains a nul byte".into(),
    })
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

/// How an overlay is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// Writes reach the disk as on any filesystem: `fsync` in the container syncs them,
    /// and unmounting syncs the upper directory's filesystem.
    Durable,
    /// Overlay's `volatile`: `fsync` and the sync at unmount are skipped. For a container
    /// removed when it exits (`--rm`, as Podman does), whose writes nobody keeps: unmounting
    /// no longer waits for the writeback of the whole filesystem under the upper directory.
    Volatile,
}

/// Mounts `lowers` (top first) + `upper` at `target`.
pub fn mount(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    sync: Sync,
) -> Result<()> {
    tracing::debug!(target = %target.display(), layers = lowers.len(), ?sync, "mounting overlay rootfs");
    if lowers.is_empty() {
        return Err(Error::Mount {
            path: target.to_path_buf(),
            message: "image has no layers".into(),
        });
    }
    // A volatile mount that was never unmounted (the host went down under it) leaves this
    // mark, and the kernel refuses the directories until it is gone: what the upper holds
    // is whatever reached the disk, as after any crash.
    let volatile_mark = work.join("work/incompat/volatile");
    if volatile_mark.exists() && !is_mounted(target) {
        tracing::debug!(path = %volatile_mark.display(), "removing the mark of an interrupted volatile mount");
        let incompat = work.join("work/incompat");
        fs::remove_dir_all(&incompat).map_err(|e| Error::io(&incompat, e))?;
    }
    let mounted = match mount_new_api(lowers, upper, work, target, sync) {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EINVAL)) => {
            tracing::debug!(error = %e, "new mount api unavailable, using mount(2)");
            mount_classic(lowers, upper, work, target, sync)
        }
        Err(e) => Err(Error::Mount {
            path: target.to_path_buf(),
            message: format!("overlay: {e}"),
        }),
    };
    match mounted {
        // Kernels before 5.10 do not know `volatile`: such a mount is merely slower to end.
        Err(e) if sync == Sync::Volatile => {
            tracing::debug!(error = %e, "volatile overlay refused, mounting it durable");
            mount(lowers, upper, work, target, Sync::Durable)
        }
        other => other,
    }
}

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn fsconfig_string(fd: libc::c_long, key: &str, value: &CString) -> io::Result<()> {
    let key = cstr(key);
    // SAFETY: fsconfig on a filesystem context fd we own with nul-terminated strings.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fd as libc::c_int,
            FSCONFIG_SET_STRING,
            key.as_ptr(),
            value.as_ptr(),
            0,
        )
    })
    .map(drop)
}

struct Fd(libc::c_long);
impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: closing a descriptor this guard owns.
        unsafe { libc::close(self.0 as libc::c_int) };
    }
}

fn mount_new_api(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    sync: Sync,
) -> io::Result<()> {
    let name = cstr("overlay");
    // SAFETY: fsopen with a nul-terminated filesystem name.
    let fs = Fd(check(unsafe {
        libc::syscall(libc::SYS_fsopen, name.as_ptr(), FSOPEN_CLOEXEC)
    })?);
    let io_path = |p: &Path| cpath(p).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL));
    fsconfig_string(fs.0, "source", &cstr("overlay"))?;
    for lower in lowers {
        fsconfig_string(fs.0, "lowerdir+", &io_path(lower)?)?;
    }
    fsconfig_string(fs.0, "upperdir", &io_path(upper)?)?;
    fsconfig_string(fs.0, "workdir", &io_path(work)?)?;
    if sync == Sync::Volatile {
        let key = cstr("volatile");
        // SAFETY: fsconfig flag on a filesystem context fd we own, nul-terminated key.
        check(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.0 as libc::c_int,
                FSCONFIG_SET_FLAG,
                key.as_ptr(),
                std::ptr::null::<libc::c_char>(),
                0,
            )
        })?;
    }
    // SAFETY: fsconfig command without key/value.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.0 as libc::c_int,
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    })?;
    // SAFETY: fsmount of a created context.
    let mnt = Fd(check(unsafe {
        libc::syscall(libc::SYS_fsmount, fs.0 as libc::c_int, FSMOUNT_CLOEXEC, 0)
    })?);
    let empty = cstr("");
    let target_c = io_path(target)?;
    // SAFETY: move_mount of our detached mount onto an existing directory.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.0 as libc::c_int,
            empty.as_ptr(),
            libc::AT_FDCWD,
            target_c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })?;
    Ok(())
}

fn mount_classic(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    sync: Sync,
) -> Result<()> {
    let mount_err = |e: io::Error| Error::Mount {
        path: target.to_path_buf(),
        message: format!("overlay: {e}"),
    };
    // Layer dirs are graph/<id>/layer: relative to graph/ each is 71 bytes instead of the full
    // path. The bottom layer is always an image layer (a container's init layer sits on top
    // and stays absolute).
    let base = lowers[lowers.len() - 1]
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let names: Vec<String> = lowers
        .iter()
        .map(|l| match l.strip_prefix(&base) {
            Ok(rel) if !base.as_os_str().is_empty() => rel.to_string_lossy().into_owned(),
            _ => l.to_string_lossy().into_owned(),
        })
        .collect();
    let cwd = std::env::current_dir().ok();
    if names.iter().any(|n| !n.starts_with('/')) {
        std::env::set_current_dir(&base).map_err(mount_err)?;
    }
    let lowerdir = names.join(":");
    let mut data = format!(
        "lowerdir={lowerdir},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    if sync == Sync::Volatile {
        data.push_str(",volatile");
    }
    let result = nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(data.as_str()),
    );
    if let Some(cwd) = cwd {
        let _ = std::env::set_current_dir(cwd);
    }
    result.map_err(|e| mount_err(e.into()))
}

/// Unmounts `target` if something is mounted there; a busy mount is detached.
pub fn unmount(target: &Path) -> Result<()> {
    tracing::debug!(target = %target.display(), "unmounting rootfs");
    match nix::mount::umount2(target, nix::mount::MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(nix::errno::Errno::EBUSY) => {
            nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH).map_err(|e| {
                Error::Mount {
                    path: target.to_path_buf(),
                    message: format!("unmount: {e}"),
                }
            })
        }
        Err(e) => Err(Error::Mount {
            path: target.to_path_buf(),
            message: format!("unmount: {e}"),
        }),
    }
}

/// Detaches the mount at `target` at once (`MNT_DETACH`): the monitor's exit path, where
/// nothing uses the rootfs any more and a synchronous unmount would only add its wait for
/// the kernel's grace period to every `run`. Nothing mounted there is fine.
pub fn detach(target: &Path) -> Result<()> {
    tracing::debug!(target = %target.display(), "detaching rootfs");
    match nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(Error::Mount {
            path: target.to_path_buf(),
            message: format!("unmount: {e}"),
        }),
    }
}

/// Whether `target` is a mount point: statx's mount-root attribute (Linux 5.8), whose cost does
/// not grow with the number of mounts (every running container adds some), else per
/// /proc/self/mountinfo.
pub fn is_mounted(target: &Path) -> bool {
    statx_mount_root(target).unwrap_or_else(|| is_in_mountinfo(target))
}

/// `STATX_ATTR_MOUNT_ROOT` of `target` (not following a final symlink); `None` when statx
/// fails or the kernel does not report the attribute.
fn statx_mount_root(target: &Path) -> Option<bool> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(target.as_os_str().as_bytes()).ok()?;
    // SAFETY: statx fills the zeroed buffer it is given; `path` is NUL-terminated.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            0,
            &mut stx,
        )
    };
    let mount_root = libc::STATX_ATTR_MOUNT_ROOT as u64;
    if rc != 0 || stx.stx_attributes_mask & mount_root == 0 {
        return None;
    }
    Some(stx.stx_attributes & mount_root != 0)
}

fn is_in_mountinfo(target: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = target.to_string_lossy();
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|mp| unescape(mp) == want)
}

fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// Unmounts on drop, so a failing test leaves no mount behind.
    struct Mounted(PathBuf);
    impl Drop for Mounted {
        fn drop(&mut self) {
            let _ = detach(&self.0);
        }
    }

    /// `count` layers `<graph>/<64 hex>/layer`, each holding its own file; top first.
    fn layers(graph: &Path, count: usize) -> Vec<PathBuf> {
        (0..count)
            .map(|i| {
                let layer = graph.join(format!("{i:064x}")).join("layer");
                fs::create_dir_all(&layer).unwrap();
                fs::write(layer.join(format!("file{i}")), i.to_string()).unwrap();
                // The same name in every layer: the top one must win.
                fs::write(layer.join("top"), i.to_string()).unwrap();
                layer
            })
            .collect()
    }

    fn check(lowers: &[PathBuf], dir: &Path, classic: bool) {
        let (upper, work, target) = (dir.join("upper"), dir.join("work"), dir.join("rootfs"));
        for d in [&upper, &work, &target] {
            fs::create_dir_all(d).unwrap();
        }
        if classic {
            mount_classic(lowers, &upper, &work, &target, Sync::Durable).unwrap();
        } else {
            mount(lowers, &upper, &work, &target, Sync::Durable).unwrap();
        }
        let guard = Mounted(target.clone());
        assert!(is_mounted(&target));
        for i in 0..lowers.len() {
            assert_eq!(
                fs::read_to_string(target.join(format!("file{i}"))).unwrap(),
                i.to_string()
            );
        }
        assert_eq!(fs::read_to_string(target.join("top")).unwrap(), "0");
        fs::write(target.join("new"), "x").unwrap();
        assert!(upper.join("new").exists());
        assert!(!lowers[0].join("new").exists());
        drop(guard);
        assert!(!is_mounted(&target));
    }

    #[test]
    fn statx_and_mountinfo_agree_on_mount_points() {
        let tmp = tempfile::tempdir().unwrap();
        for (path, mounted) in [
            (Path::new("/"), true),
            (Path::new("/proc"), true),
            (tmp.path(), false),
        ] {
            assert_eq!(is_mounted(path), mounted, "{}", path.display());
            assert_eq!(is_in_mountinfo(path), mounted, "{}", path.display());
            if let Some(root) = statx_mount_root(path) {
                assert_eq!(root, mounted, "{}", path.display());
            }
        }
        assert!(!is_mounted(&tmp.path().join("missing")));
    }

    #[test]
    fn deep_images_mount_with_the_new_api_and_with_mount2() {
        let tmp = tempfile::tempdir().unwrap();
        let graph = tmp.path().join("graph");
        // 120 full-length layer paths are far more than one page of mount options.
        let deep = layers(&graph, 120);
        check(&deep, &tmp.path().join("a"), false);
        // mount(2) fits 40 layers by naming them relative to the graph directory.
        check(&deep[..40], &tmp.path().join("b"), true);
        // A layer outside the graph (a container's init layer) on top stays absolute.
        let init = tmp.path().join("c/init");
        fs::create_dir_all(&init).unwrap();
        fs::write(init.join("top"), "0").unwrap();
        let mut with_init = vec![init];
        with_init.extend_from_slice(&deep[1..40]);
        let (upper, work, target) = (
            tmp.path().join("c/u"),
            tmp.path().join("c/w"),
            tmp.path().join("c/m"),
        );
        for d in [&upper, &work, &target] {
            fs::create_dir_all(d).unwrap();
        }
        mount_classic(&with_init, &upper, &work, &target, Sync::Durable).unwrap();
        let guard = Mounted(target.clone());
        assert_eq!(fs::read_to_string(target.join("top")).unwrap(), "0");
        assert_eq!(fs::read_to_string(target.join("file39")).unwrap(), "39");
        drop(guard);
    }

    #[test]
    fn unmount_of_nothing_is_fine_and_no_layers_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        unmount(tmp.path()).unwrap();
        detach(tmp.path()).unwrap();
        let err = mount(&[], tmp.path(), tmp.path(), tmp.path(), Sync::Durable).unwrap_err();
        assert!(err.to_string().contains("no layers"), "{err}");
    }

    fn mount_options(target: &Path) -> String {
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let target = target.to_str().unwrap();
        mounts
            .lines()
            .find(|line| line.split(' ').nth(4) == Some(target))
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn a_volatile_mount_says_so_and_its_crash_mark_does_not_block_the_next_mount() {
        let tmp = tempfile::tempdir().unwrap();
        let lowers = layers(&tmp.path().join("graph"), 2);
        let dir = tmp.path().join("c");
        let (upper, work, target) = (dir.join("upper"), dir.join("work"), dir.join("rootfs"));
        for d in [&upper, &work, &target] {
            fs::create_dir_all(d).unwrap();
        }
        mount(&lowers, &upper, &work, &target, Sync::Volatile).unwrap();
        let guard = Mounted(target.clone());
        assert!(
            mount_options(&target).contains("volatile"),
            "{}",
            mount_options(&target)
        );
        fs::write(target.join("new"), "x").unwrap();
        // The kernel marks the work directory while a volatile mount is up...
        let mark = work.join("work/incompat/volatile");
        assert!(mark.is_dir());
        // ...and a mark left by a crash (no unmount) keeps the directories from mounting
        // again unless it is removed.
        drop(guard);
        fs::create_dir_all(&mark).unwrap();
        mount(&lowers, &upper, &work, &target, Sync::Durable).unwrap();
        let guard = Mounted(target.clone());
        assert!(!mount_options(&target).contains("volatile"));
        assert_eq!(fs::read_to_string(target.join("new")).unwrap(), "x");
        drop(guard);
    }
}
