//! The path rules of `docker cp`, as moby's `pkg/archive/copy.go` and the daemon's
//! `ResolvePath` apply them: pure string logic plus symlink resolution inside a root through
//! the [`Lookup`] seam, so all of it is tested without root.

use std::io;

/// Go's `filepath.Clean` for `/`-separated paths.
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Go's `filepath.Base`: the last element, trailing slashes ignored; `/` for the root.
pub fn base(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/".into();
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_string()
}

/// Go's `filepath.Dir`: everything but the last element, cleaned.
pub fn dir(path: &str) -> String {
    let cut = path.rfind('/').map_or(0, |i| i + 1);
    clean(&path[..cut])
}

/// Go's `filepath.Split`: (everything up to and including the last `/`, the rest).
pub fn split(path: &str) -> (&str, &str) {
    let cut = path.rfind('/').map_or(0, |i| i + 1);
    (&path[..cut], &path[cut..])
}

pub fn has_trailing_separator(path: &str) -> bool {
    path.ends_with('/')
}

/// The path names the current directory as its last element (`x/.`, `.`).
pub fn specifies_current_dir(path: &str) -> bool {
    base(path) == "."
}

/// The path insists on a directory: it ends in `/` or `/.`.
pub fn asserts_directory(path: &str) -> bool {
    has_trailing_separator(path) || specifies_current_dir(path)
}

/// `cleaned` with the trailing `/.` or `/` that `original` had put back.
pub fn preserve_trailing_dot_or_separator(cleaned: &str, original: &str) -> String {
    let mut out = cleaned.to_string();
    if !specifies_current_dir(&out) && specifies_current_dir(original) {
        if !has_trailing_separator(&out) {
            out.push('/');
        }
        out.push('.');
    }
    if !has_trailing_separator(&out) && has_trailing_separator(original) {
        out.push('/');
    }
    out
}

/// A path given for a container, as an absolute path in it (`etc/` -> `/etc/`).
pub fn container_abs(path: &str) -> String {
    preserve_trailing_dot_or_separator(&clean(&format!("/{path}")), path)
}

/// moby's `SplitPathDirEntry`: (parent, last element), a trailing `.` kept as the element.
pub fn split_path_dir_entry(path: &str) -> (String, String) {
    let mut cleaned = clean(path);
    if specifies_current_dir(path) {
        cleaned.push_str("/.");
    }
    (dir(&cleaned), base(&cleaned))
}

/// moby's `GetRebaseName`: `resolved` with `path`'s trailing `/.` or `/`, and the name the
/// archive's first element must take when resolving changed the last element.
pub fn rebase_name(path: &str, resolved: &str) -> (String, Option<String>) {
    let mut resolved = resolved.to_string();
    if specifies_current_dir(path) && !specifies_current_dir(&resolved) {
        resolved.push_str("/.");
    }
    if has_trailing_separator(path) && !has_trailing_separator(&resolved) {
        resolved.push('/');
    }
    let name = (base(path) != base(&resolved)).then(|| base(path));
    (resolved, name)
}

/// The docker CLI's `splitCpArg`: `CONTAINER:PATH` or a local path (absolute, or with no
/// `:`, or starting with `.` before the `:`).
pub fn split_cp_arg(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((container, path)) if !container.starts_with('.') => (Some(container), path),
        _ => (None, arg),
    }
}

/// What is known about one side of a copy (moby's `CopyInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyInfo {
    pub path: String,
    pub exists: bool,
    pub is_dir: bool,
    /// The name the archive's first element must take, when it differs from the path's.
    pub rebase_name: Option<String>,
}

/// Why a copy cannot go ahead, in moby's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrepareError {
    #[error("cannot copy directory")]
    CannotCopyDir,
    #[error("no such directory")]
    DirNotExists,
}

/// Where a prepared archive goes: the directory it is extracted into, and the renaming of
/// its first element (`from` -> `to`) if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub dest_dir: String,
    pub rebase: Option<(String, String)>,
}

/// moby's `PrepareArchiveCopy`: where an archive of `src` is extracted so that it lands at
/// `dst` with docker's semantics (into an existing directory; as the new name otherwise).
pub fn prepare_copy(src: &CopyInfo, dst: &CopyInfo) -> Result<Prepared, PrepareError> {
    let (dst_dir, dst_base) = split_path_dir_entry(&dst.path);
    let (_, src_base) = split_path_dir_entry(&src.path);
    let src_base = src.rebase_name.clone().unwrap_or(src_base);
    let renamed = |dst_dir: String| Prepared {
        dest_dir: dst_dir,
        rebase: Some((src_base.clone(), dst_base.clone())),
    };
    if dst.exists && dst.is_dir {
        return Ok(Prepared {
            dest_dir: dst.path.clone(),
            rebase: None,
        });
    }
    if dst.exists && src.is_dir {
        return Err(PrepareError::CannotCopyDir);
    }
    if dst.exists || src.is_dir {
        return Ok(renamed(dst_dir));
    }
    if asserts_directory(&dst.path) {
        return Err(PrepareError::DirNotExists);
    }
    Ok(renamed(dst_dir))
}

/// moby's `RebaseArchiveEntries` on one name: the first element `from` becomes `to`.
pub fn rebase_entry(name: &str, from: &str, to: &str) -> String {
    let from = if from == "/" { "" } else { from };
    if from.is_empty() {
        let rest = name.trim_start_matches('/');
        let rest = rest.strip_prefix("./").unwrap_or(rest);
        return match rest {
            "" | "." => format!("{to}/"),
            rest => format!("{to}/{rest}"),
        };
    }
    match name.strip_prefix(from) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("{to}{rest}"),
        _ => name.to_string(),
    }
}

/// What [`resolve`] needs of the tree it walks.
pub trait Lookup {
    /// The kind of the entry at the absolute, symlink-free `path` (its last element not
    /// followed).
    fn kind(&self, path: &str) -> io::Result<Kind>;
    /// The target of the symlink at the absolute, symlink-free `path`.
    fn readlink(&self, path: &str) -> io::Result<String>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    Symlink,
    Other,
}

/// The most symlinks one resolution follows (Linux's own limit is 40).
const MAX_LINKS: usize = 40;

/// `path` with every symlink followed as if `/` were the root of `fs`: an absolute target
/// starts again at that root, and `..` never climbs above it (moby's
/// `FollowSymlinkInScope`). The last element is followed only when `follow_last`. A missing
/// element ends the resolution: the rest is appended as written, so the caller's own lookup
/// reports it missing.
pub fn resolve(fs: &dyn Lookup, path: &str, follow_last: bool) -> io::Result<String> {
    let mut done: Vec<String> = Vec::new();
    let mut todo: Vec<String> = path
        .split('/')
        .rev()
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    let mut links = 0;
    let mut missing = false;
    while let Some(part) = todo.pop() {
        match part.as_str() {
            "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        done.push(part);
        if missing || (todo.is_empty() && !follow_last) {
            continue;
        }
        let current = format!("/{}", done.join("/"));
        match fs.kind(&current) {
            Ok(Kind::Symlink) => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = fs.readlink(&current)?;
                done.pop();
                if target.starts_with('/') {
                    done.clear();
                }
                todo.extend(
                    target
                        .split('/')
                        .rev()
                        .filter(|p| !p.is_empty())
                        .map(str::to_string),
                );
            }
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                missing = true;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(format!("/{}", done.join("/")))
}

/// Go's `os.FileMode` bits for a `st_mode`, as `X-Docker-Container-Path-Stat` carries them.
pub fn go_file_mode(st_mode: u32) -> u32 {
    const DIR: u32 = 1 << 31;
    const SYMLINK: u32 = 1 << 27;
    const DEVICE: u32 = 1 << 26;
    const NAMED_PIPE: u32 = 1 << 25;
    const SOCKET: u32 = 1 << 24;
    const SETUID: u32 = 1 << 23;
    const SETGID: u32 = 1 << 22;
    const CHAR_DEVICE: u32 = 1 << 21;
    const STICKY: u32 = 1 << 20;
    let mut mode = st_mode & 0o777;
    mode |= match st_mode & libc::S_IFMT {
        libc::S_IFDIR => DIR,
        libc::S_IFLNK => SYMLINK,
        libc::S_IFBLK => DEVICE,
        libc::S_IFCHR => DEVICE | CHAR_DEVICE,
        libc::S_IFIFO => NAMED_PIPE,
        libc::S_IFSOCK => SOCKET,
        _ => 0,
    };
    if st_mode & libc::S_ISUID != 0 {
        mode |= SETUID;
    }
    if st_mode & libc::S_ISGID != 0 {
        mode |= SETGID;
    }
    if st_mode & libc::S_ISVTX != 0 {
        mode |= STICKY;
    }
    mode
}

/// Go's `FileMode.IsDir`.
pub fn go_mode_is_dir(mode: u32) -> bool {
    mode & (1 << 31) != 0
}

/// Go's `FileMode` of a symlink.
pub fn go_mode_is_symlink(mode: u32) -> bool {
    mode & (1 << 27) != 0
}

/// Go's `FileMode.IsRegular`: no type bit set.
pub fn go_mode_is_regular(mode: u32) -> bool {
    const TYPE: u32 =
        (1 << 31) | (1 << 27) | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19);
    mode & TYPE == 0
}

/// `path` is `mount` or below it (both absolute and clean).
pub fn is_within(path: &str, mount: &str) -> bool {
    let mount = mount.trim_end_matches('/');
    mount.is_empty()
        || path == mount
        || path
            .strip_prefix(mount)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn clean_base_dir_split_match_go() {
        assert_eq!(clean("/a/./b/../c/"), "/a/c");
        assert_eq!(clean("/../.."), "/");
        assert_eq!(clean("a/../../b"), "../b");
        assert_eq!(clean(""), ".");
        assert_eq!(base("/etc/"), "etc");
        assert_eq!(base("/"), "/");
        assert_eq!(base("/etc/."), ".");
        assert_eq!(dir("/etc/hosts"), "/etc");
        assert_eq!(dir("hosts"), ".");
        assert_eq!(split("/etc/hosts"), ("/etc/", "hosts"));
        assert_eq!(split("/etc/"), ("/etc/", ""));
    }

    #[test]
    fn container_paths_keep_their_trailing_dot_or_slash() {
        assert_eq!(container_abs("etc"), "/etc");
        assert_eq!(container_abs("/etc/"), "/etc/");
        assert_eq!(container_abs("/etc/."), "/etc/.");
        assert_eq!(container_abs("/etc/./"), "/etc/./");
        assert_eq!(container_abs("/../../etc/../tmp"), "/tmp");
        assert_eq!(container_abs("/"), "/");
        assert!(asserts_directory("/x/"));
        assert!(asserts_directory("/x/."));
        assert!(!asserts_directory("/x"));
        assert_eq!(
            split_path_dir_entry("/a/b/."),
            ("/a/b".to_string(), ".".to_string())
        );
        assert_eq!(
            split_path_dir_entry("/a/b/"),
            ("/a".to_string(), "b".to_string())
        );
    }

    #[test]
    fn cp_arguments_split_as_the_docker_cli_does() {
        assert_eq!(split_cp_arg("c:/etc"), (Some("c"), "/etc"));
        assert_eq!(split_cp_arg("/abs:x"), (None, "/abs:x"));
        assert_eq!(split_cp_arg("./a:b"), (None, "./a:b"));
        assert_eq!(split_cp_arg("file"), (None, "file"));
        assert_eq!(split_cp_arg("-"), (None, "-"));
        assert_eq!(split_cp_arg("c:"), (Some("c"), ""));
    }

    #[test]
    fn rebase_names_follow_get_rebase_name() {
        assert_eq!(
            rebase_name("/a/link", "/b/target"),
            ("/b/target".into(), Some("link".into()))
        );
        assert_eq!(rebase_name("/a/link/.", "/b/t"), ("/b/t/.".into(), None));
        assert_eq!(rebase_name("/a/x", "/b/x"), ("/b/x".into(), None));
        assert_eq!(rebase_entry("dir/a/b", "dir", "new"), "new/a/b");
        assert_eq!(rebase_entry("dir", "dir", "new"), "new");
        assert_eq!(rebase_entry("dirx/a", "dir", "new"), "dirx/a");
        assert_eq!(rebase_entry("./a", ".", "new"), "new/a");
        assert_eq!(rebase_entry("bin/sh", "/", "new"), "new/bin/sh");
        assert_eq!(rebase_entry("./bin", "/", "new"), "new/bin");
        assert_eq!(rebase_entry("./", "/", "new"), "new/");
    }

    fn info(path: &str, exists: bool, is_dir: bool) -> CopyInfo {
        CopyInfo {
            path: path.into(),
            exists,
            is_dir,
            rebase_name: None,
        }
    }

    #[test]
    fn prepare_copy_covers_docker_cases() {
        // Into an existing directory: extracted there, unchanged.
        let p = prepare_copy(&info("/s/f", true, false), &info("/d", true, true)).unwrap();
        assert_eq!(
            p,
            Prepared {
                dest_dir: "/d".into(),
                rebase: None
            }
        );
        // A directory onto an existing file.
        assert_eq!(
            prepare_copy(&info("/s/d", true, true), &info("/f", true, false)),
            Err(PrepareError::CannotCopyDir)
        );
        // A file onto an existing file: renamed into its parent.
        let p = prepare_copy(&info("/s/f", true, false), &info("/d/g", true, false)).unwrap();
        assert_eq!(p.dest_dir, "/d");
        assert_eq!(p.rebase, Some(("f".into(), "g".into())));
        // A directory to a new name.
        let p = prepare_copy(&info("/s/d", true, true), &info("/new", false, false)).unwrap();
        assert_eq!(p.dest_dir, "/");
        assert_eq!(p.rebase, Some(("d".into(), "new".into())));
        // A directory's contents (`/.`) to a new name.
        let p = prepare_copy(&info("/s/d/.", true, true), &info("/n", false, false)).unwrap();
        assert_eq!(p.rebase, Some((".".into(), "n".into())));
        // A file to a missing directory (trailing slash).
        assert_eq!(
            prepare_copy(&info("/s/f", true, false), &info("/nodir/", false, false)),
            Err(PrepareError::DirNotExists)
        );
        // A symlink copied under its own name.
        let mut src = info("/t/target", true, false);
        src.rebase_name = Some("link".into());
        let p = prepare_copy(&src, &info("/d/x", false, false)).unwrap();
        assert_eq!(p.rebase, Some(("link".into(), "x".into())));
    }

    /// A tree of paths: directories, symlinks (with targets) and files.
    struct Fake(
        HashMap<&'static str, Option<&'static str>>,
        Vec<&'static str>,
    );

    impl Lookup for Fake {
        fn kind(&self, path: &str) -> io::Result<Kind> {
            if self.1.contains(&path) {
                return Ok(Kind::Dir);
            }
            match self.0.get(path) {
                Some(Some(_)) => Ok(Kind::Symlink),
                Some(None) => Ok(Kind::Other),
                None => Err(io::Error::from_raw_os_error(libc::ENOENT)),
            }
        }
        fn readlink(&self, path: &str) -> io::Result<String> {
            Ok(self.0[path].expect("a symlink").to_string())
        }
    }

    fn fake() -> Fake {
        Fake(
            HashMap::from([
                ("/escape", Some("/etc")),
                ("/up", Some("../../../../..")),
                ("/data/rel", Some("../etc/passwd")),
                ("/loop", Some("/loop")),
                ("/etc/passwd", None),
            ]),
            vec!["/etc", "/data"],
        )
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let fs = fake();
        assert_eq!(resolve(&fs, "/escape/passwd", true).unwrap(), "/etc/passwd");
        assert_eq!(resolve(&fs, "/up/etc/shadow", true).unwrap(), "/etc/shadow");
        assert_eq!(resolve(&fs, "/up", true).unwrap(), "/");
        assert_eq!(resolve(&fs, "/data/rel", true).unwrap(), "/etc/passwd");
        // The last element is kept as written when not followed.
        assert_eq!(resolve(&fs, "/data/rel", false).unwrap(), "/data/rel");
        assert_eq!(resolve(&fs, "/../../escape", false).unwrap(), "/escape");
        // Missing elements are kept, `..` still clamped.
        assert_eq!(resolve(&fs, "/nope/a/../b", true).unwrap(), "/nope/b");
        let err = resolve(&fs, "/loop/x", true).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn file_modes_use_go_bits() {
        assert_eq!(go_file_mode(libc::S_IFDIR | 0o755), (1 << 31) | 0o755);
        assert_eq!(go_file_mode(libc::S_IFLNK | 0o777), (1 << 27) | 0o777);
        assert_eq!(go_file_mode(libc::S_IFREG | 0o4755), (1 << 23) | 0o755);
        assert!(go_mode_is_dir(go_file_mode(libc::S_IFDIR)));
        assert!(go_mode_is_regular(go_file_mode(libc::S_IFREG | 0o644)));
        assert!(!go_mode_is_regular(go_file_mode(libc::S_IFCHR)));
        assert!(is_within("/data/x", "/data"));
        assert!(is_within("/data", "/data/"));
        assert!(!is_within("/database", "/data"));
    }
}
