//! `dock cp` and `dock rename`, with the docker CLI's path rules (`runtime::copy::paths`)
//! on the local side and the runtime's copy of a container path on the other.

use std::fs;
use std::io::{self, IsTerminal, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{anyhow, bail, Context as _};
use clap::Args;
use runtime::copy::paths::{self, CopyInfo};
use runtime::copy::{CopyRoot, ExtractOptions, Rewrite};

use crate::Context;

#[derive(Args)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long)]
    archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    follow_link: bool,
    /// Suppress progress output during copy. Progress output is automatically suppressed if
    /// no terminal is attached
    #[arg(short = 'q', long)]
    quiet: bool,
    /// CONTAINER:SRC_PATH, or a local SRC_PATH, or - to read a tar archive from stdin
    src: String,
    /// a local DEST_PATH, or - to write a tar archive to stdout, or CONTAINER:DEST_PATH
    dest: String,
}

#[derive(Args)]
pub struct RenameArgs {
    /// The container to rename (name or ID)
    container: String,
    /// Its new name
    new_name: String,
}

pub fn rename(ctx: &Context, args: RenameArgs) -> anyhow::Result<u8> {
    let rt = crate::containers::runtime(ctx)?;
    rt.rename(&args.container, &args.new_name)
        .map_err(|e| match e {
            runtime::Error::InvalidName(bad) => anyhow!(
                "Invalid container name ({bad}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            ),
            runtime::Error::NameInUse { name, holder } => anyhow!(
                "Conflict. The container name \"/{name}\" is already in use by container \"{holder}\". You have to remove (or rename) that container to be able to reuse that name."
            ),
            other => other.into(),
        })?;
    Ok(0)
}

pub fn run(ctx: &Context, args: CpArgs) -> anyhow::Result<u8> {
    let (src_ctr, src_path) = paths::split_cp_arg(&args.src);
    let (dst_ctr, dst_path) = paths::split_cp_arg(&args.dest);
    match (src_ctr, dst_ctr) {
        (Some(_), Some(_)) => bail!("copying between containers is not supported"),
        (None, None) => bail!("must specify at least one container source"),
        _ => {}
    }
    if src_path.is_empty() || dst_path.is_empty() {
        bail!("filesystem path cannot be empty");
    }
    let rt = crate::containers::runtime(ctx)?;
    let progress = !args.quiet && io::stderr().is_terminal();
    let copied = AtomicU64::new(0);
    let shown_dest = match (src_ctr, dst_ctr) {
        (Some(ctr), _) => {
            let root = rt.copy_root(ctr)?;
            from_container(&root, src_path, dst_path, &args, &copied)?;
            dst_path.to_string()
        }
        (_, Some(ctr)) => {
            let root = rt.copy_root(ctr)?;
            to_container(&root, ctr, src_path, dst_path, &args, &copied)?;
            args.dest.clone()
        }
        (None, None) => unreachable!("refused above"),
    };
    if progress && dst_path != "-" {
        eprintln!(
            "Successfully copied {} to {shown_dest}",
            human_size(copied.load(Ordering::Relaxed))
        );
    }
    Ok(0)
}

/// Docker's `units.HumanSize`: decimal units, three significant digits.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    let text = format!("{size:.3}");
    let digits = if size >= 100.0 {
        0
    } else if size >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{:.*}", digits, text.parse::<f64>().unwrap_or(size));
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{}", UNITS[unit])
}

/// Counts what passes through, for the progress line.
struct Counting<'a, R> {
    inner: R,
    count: &'a AtomicU64,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// An OS error as Go prints it: "no such file or directory", without "(os error 2)".
fn os_text(err: &io::Error) -> String {
    let text = err.to_string();
    let text = text
        .split(" (os error ")
        .next()
        .unwrap_or(&text)
        .to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// The docker CLI's `resolveLocalPath`: absolute, trailing `/` or `/.` kept.
fn absolute(path: &str) -> anyhow::Result<String> {
    let abs = if path.starts_with('/') {
        path.to_string()
    } else {
        let cwd = std::env::current_dir().context("current directory")?;
        format!("{}/{path}", cwd.display())
    };
    Ok(paths::preserve_trailing_dot_or_separator(
        &paths::clean(&abs),
        path,
    ))
}

/// The docker CLI's `ValidateOutputPath`.
fn validate_output_path(path: &str) -> anyhow::Result<()> {
    let dir = paths::dir(&paths::clean(path));
    if !dir.is_empty() && dir != "." && !Path::new(&dir).exists() {
        bail!("invalid output path: directory {dir:?} does not exist");
    }
    if let Ok(meta) = fs::metadata(path) {
        if !meta.is_dir() && !meta.is_file() {
            bail!("invalid output path: {path:?} must be a directory or a regular file");
        }
    }
    Ok(())
}

/// moby's `CopyInfoDestinationPath`: the local destination, symlinks at its end followed.
fn destination_info(path: &str) -> anyhow::Result<CopyInfo> {
    let mut path = path.to_string();
    let original = path.clone();
    let mut meta = fs::symlink_metadata(&path);
    let mut links = 0;
    while let Ok(m) = &meta {
        if !m.file_type().is_symlink() {
            break;
        }
        links += 1;
        if links > 10 {
            bail!("too many symlinks in {original}");
        }
        let target = fs::read_link(&path)
            .with_context(|| format!("readlink {path}"))?
            .to_string_lossy()
            .into_owned();
        path = if target.starts_with('/') {
            target
        } else {
            let (parent, _) = paths::split_path_dir_entry(&path);
            paths::clean(&format!("{parent}/{target}"))
        };
        meta = fs::symlink_metadata(&path);
    }
    match meta {
        Ok(m) => Ok(CopyInfo {
            path,
            exists: true,
            is_dir: m.is_dir(),
            rebase_name: None,
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let (parent, _) = paths::split_path_dir_entry(&path);
            let parent_meta = fs::metadata(&parent).with_context(|| format!("stat {parent}"))?;
            if !parent_meta.is_dir() {
                bail!("not a directory");
            }
            Ok(CopyInfo {
                path,
                ..CopyInfo::default()
            })
        }
        Err(e) => Err(anyhow!("lstat {path}: {e}")),
    }
}

/// moby's `CopyInfoSourcePath`: the local source, its parent's symlinks resolved (and its
/// own with `-L`).
fn source_info(path: &str, follow_link: bool) -> anyhow::Result<CopyInfo> {
    let canonical = |p: &str| {
        fs::canonicalize(if p.is_empty() { "." } else { p })
            .map(|p| p.to_string_lossy().into_owned())
            .map_err(|e| anyhow!("lstat {path}: {}", os_text(&e)))
    };
    let (resolved, rebase_name) = if follow_link {
        paths::rebase_name(path, &canonical(path)?)
    } else {
        let (dir, base) = paths::split(path);
        let resolved = format!("{}/{base}", canonical(dir)?.trim_end_matches('/'));
        let rebase = (paths::has_trailing_separator(path)
            && paths::base(path) != paths::base(&resolved))
        .then(|| paths::base(path));
        (resolved, rebase)
    };
    let meta = fs::symlink_metadata(&resolved)
        .map_err(|e| anyhow!("lstat {resolved}: {}", os_text(&e)))?;
    Ok(CopyInfo {
        path: resolved,
        exists: true,
        is_dir: meta.is_dir(),
        rebase_name,
    })
}

/// The error of a copy whose two ends both failed: the archiving side's, unless it only
/// failed because the extracting side stopped reading (a broken pipe).
fn pick<T>(
    archived: Result<T, runtime::copy::Error>,
    extracted: anyhow::Result<()>,
) -> anyhow::Result<()> {
    match (archived, extracted) {
        (Err(a), Err(x)) if crate::broken_pipe(&a) => Err(x),
        (Err(a), _) => Err(a.into()),
        (Ok(_), x) => x,
    }
}

fn from_container(
    root: &CopyRoot,
    src: &str,
    dst: &str,
    args: &CpArgs,
    copied: &AtomicU64,
) -> anyhow::Result<()> {
    let dst = if dst == "-" {
        dst.to_string()
    } else {
        absolute(dst)?
    };
    if dst != "-" {
        validate_output_path(&dst)?;
    }
    let mut src = src.to_string();
    let mut rebase_name = None;
    if args.follow_link {
        if let Ok(stat) = root.stat(&src) {
            if stat.is_symlink() {
                let mut target = stat.link_target.clone();
                if !target.starts_with('/') {
                    let (parent, _) = paths::split_path_dir_entry(&src);
                    target = paths::clean(&format!("{parent}/{target}"));
                }
                (src, rebase_name) = paths::rebase_name(&src, &target);
            }
        }
    }
    if dst == "-" {
        if io::stdout().is_terminal() {
            bail!("refusing to write a tar archive to a terminal: redirect stdout");
        }
        let stdout = io::stdout().lock();
        root.archive(&src, |_| Ok(io::BufWriter::new(stdout)))?;
        return Ok(());
    }
    let (reader, writer) = io::pipe().context("pipe")?;
    let (stat_tx, stat_rx) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        let archiving = scope.spawn(|| {
            root.archive(&src, move |stat| {
                let _ = stat_tx.send(stat.clone());
                Ok(writer)
            })
        });
        let extracted = match stat_rx.recv() {
            Ok(stat) => {
                let src_info = CopyInfo {
                    path: src.clone(),
                    exists: true,
                    is_dir: stat.is_dir(),
                    rebase_name: rebase_name.clone(),
                };
                let reader = Counting {
                    inner: reader,
                    count: copied,
                };
                copy_to(reader, &src_info, &dst)
            }
            Err(_) => {
                drop(reader);
                Ok(())
            }
        };
        let archived = archiving
            .join()
            .unwrap_or_else(|_| panic!("archiving {src} panicked"));
        pick(archived, extracted)
    })
}

/// moby's `CopyTo`: extracts the archive of `src` so that it lands at the local `dst`.
fn copy_to(reader: impl Read, src: &CopyInfo, dst: &str) -> anyhow::Result<()> {
    let dst_info = destination_info(dst)?;
    let prepared = paths::prepare_copy(src, &dst_info)?;
    let (_, src_base) = paths::split_path_dir_entry(&src.path);
    let rebase = match (&src.rebase_name, prepared.rebase) {
        (Some(_), Some((_, to))) => Some((src_base, to)),
        (Some(name), None) => Some((src_base, name.clone())),
        (None, rebase) => rebase,
    };
    let dir: OwnedFd = fs::File::open(&prepared.dest_dir)
        .with_context(|| format!("open {}", prepared.dest_dir))?
        .into();
    // SAFETY: geteuid/getegid cannot fail.
    let owner = unsafe { (u64::from(libc::geteuid()), u64::from(libc::getegid())) };
    let how = Rewrite {
        rebase,
        no_overwrite_dir_non_dir: Some((dir.as_fd(), prepared.dest_dir.clone())),
        owner: Some(owner),
        prefix_dot: false,
        mounts_below: Vec::new(),
    };
    runtime::copy::extract_into(&dir, reader, &how)?;
    Ok(())
}

fn to_container(
    root: &CopyRoot,
    ctr: &str,
    src: &str,
    dst: &str,
    args: &CpArgs,
    copied: &AtomicU64,
) -> anyhow::Result<()> {
    let mut dst_info = CopyInfo {
        path: dst.to_string(),
        ..CopyInfo::default()
    };
    // Docker's CLI ignores a failed stat (the extraction reports it); a path it cannot
    // reach at all (a stopped container's volume) is said at once.
    let unreachable = |stat: &Result<_, runtime::copy::Error>| match stat {
        Err(e @ runtime::copy::Error::StoppedMount { .. }) => Err(anyhow!(e.to_string())),
        _ => Ok(()),
    };
    let mut dst_stat = root.stat(dst);
    unreachable(&dst_stat)?;
    if let Ok(stat) = &dst_stat {
        if stat.is_symlink() {
            let mut target = stat.link_target.clone();
            if !target.starts_with('/') {
                let (parent, _) = paths::split_path_dir_entry(dst);
                target = paths::clean(&format!("{parent}/{target}"));
            }
            dst_info.path = target.clone();
            dst_stat = root.stat(&target);
            unreachable(&dst_stat)?;
        }
    }
    if let Ok(stat) = &dst_stat {
        if !stat.is_dir() && !paths::go_mode_is_regular(stat.mode) {
            bail!("destination \"{ctr}:{dst}\" must be a directory or a regular file");
        }
        dst_info.exists = true;
        dst_info.is_dir = stat.is_dir();
    }
    let opts = ExtractOptions {
        no_overwrite_dir_non_dir: true,
        copy_uid_gid: args.archive,
    };
    if src == "-" {
        if !dst_info.is_dir {
            bail!("destination \"{ctr}:{dst}\" must be a directory");
        }
        let stdin = Counting {
            inner: io::stdin().lock(),
            count: copied,
        };
        root.extract(&dst_info.path, stdin, opts)?;
        return Ok(());
    }
    let src_info = source_info(&absolute(src)?, args.follow_link)?;
    let prepared = paths::prepare_copy(&src_info, &dst_info)?;
    let (_, src_base) = paths::split_path_dir_entry(&src_info.path);
    let name = match &prepared.rebase {
        Some((_, to)) => to.clone(),
        None => src_info.rebase_name.clone().unwrap_or(src_base),
    };
    let flags = libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let opened = fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(&src_info.path);
    let source: OwnedFd = opened
        .map_err(|e| anyhow!("lstat {}: {}", src_info.path, os_text(&e)))?
        .into();
    if let Ok(meta) = fs::symlink_metadata(&src_info.path) {
        if meta.file_type().is_socket() {
            bail!("{}: a socket cannot be copied", src_info.path);
        }
    }
    let (reader, mut writer) = io::pipe().context("pipe")?;
    std::thread::scope(|scope| {
        let archiving = scope.spawn(move || {
            let result = runtime::copy::archive_fd(source.as_fd(), &name, &mut writer);
            drop(writer);
            result
        });
        let reader = Counting {
            inner: reader,
            count: copied,
        };
        let extracted = root.extract(&prepared.dest_dir, reader, opts);
        let archived = archiving
            .join()
            .unwrap_or_else(|_| panic!("archiving {} panicked", src_info.path));
        pick(archived, extracted.map_err(Into::into))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_print_as_docker_units() {
        assert_eq!(super::human_size(0), "0B");
        assert_eq!(super::human_size(512), "512B");
        assert_eq!(super::human_size(2048), "2.05kB");
        assert_eq!(super::human_size(10_500_000), "10.5MB");
    }
}
