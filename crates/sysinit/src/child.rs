//! The cloned child: from the clone to `execve`.
//!
//! Runs in a copy of a possibly multi-threaded parent, so it only reads what [`Plan`] prepared
//! and makes raw system calls: no allocation, no locks, no logging. The order follows runc and
//! youki: stdio, rootfs and mounts, pivot_root, /dev, masks, hostname (all while the parent's
//! before_start hook runs, which may make the v1 cgroups); then, once the sync pipe says the
//! hook is done, the v1 cgroups and the cgroup namespace, working directory, terminal, seccomp
//! (before the capabilities drop; with no_new_privs right before exec instead), capability
//! bounding set, user, capabilities, exec.

use std::ffi::{c_char, c_int, c_ulong, CStr, CString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr;

use crate::user::ExecUser;
use crate::{Security, SpawnError};

/// What the parent collected for [`Plan::new`].
pub(crate) struct PlanInput {
    pub rootfs: CString,
    pub hostname: CString,
    pub workdir: CString,
    pub workdir_parents: Vec<CString>,
    /// The mounts over the rootfs, in order.
    pub mounts: Vec<MountPlan>,
    /// With a terminal: its window size (rows, columns; 0 leaves it unset).
    pub terminal: Option<(u16, u16)>,
    /// The child's end of the socket the terminal's master is sent back on.
    pub console: Option<OwnedFd>,
    pub user: ExecUser,
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    pub candidates: Vec<CString>,
    pub stdio: Vec<OwnedFd>,
    /// v1 `tasks` files the child writes `0` to (see [`crate::V1Tasks`]), and their paths for
    /// messages (which outlive the descriptors in the parent).
    pub cgroup_tasks: Vec<JoinTasks>,
    pub cgroup_task_paths: Vec<std::path::PathBuf>,
    pub security: Security,
    /// `security.masked_paths` and `security.readonly_paths` as C strings.
    pub masked: Vec<CString>,
    pub readonly: Vec<CString>,
    // -- run flags --
    pub run: crate::RunFlags,
    /// The reaper's command line (`--init`), NUL-separated.
    pub init_title: Vec<u8>,
    /// Where our argument strings are, for the reaper to write its title over.
    pub arg_area: Option<(usize, usize)>,
}

/// A [`crate::V1Tasks`] as the child opens it.
pub(crate) struct JoinTasks {
    pub dir: OwnedFd,
    pub relative: CString,
}

/// Everything the child reads, prepared before the clone.
pub(crate) struct Plan {
    input: PlanInput,
    argv: Vec<*const c_char>,
    envp: Vec<*const c_char>,
    groups: Vec<libc::gid_t>,
    /// Points into `input.security.seccomp`, which lives as long as the plan.
    seccomp: Option<libc::sock_fprog>,
}

impl Plan {
    pub(crate) fn new(input: PlanInput) -> Result<Plan, SpawnError> {
        let null_terminated = |strings: &[CString]| {
            strings
                .iter()
                .map(|s| s.as_ptr())
                .chain([ptr::null()])
                .collect::<Vec<_>>()
        };
        let argv = null_terminated(&input.args);
        let envp = null_terminated(&input.env);
        let groups = input.user.groups.clone();
        let seccomp = match &input.security.seccomp {
            Some(program) => {
                let code = program.instructions();
                Some(libc::sock_fprog {
                    len: u16::try_from(code.len()).map_err(|_| {
                        SpawnError::Setup(format!(
                            "seccomp program of {} instructions is too long",
                            code.len()
                        ))
                    })?,
                    filter: code.as_ptr().cast_mut(),
                })
            }
            None => None,
        };
        Ok(Plan {
            input,
            argv,
            envp,
            groups,
            seccomp,
        })
    }

    /// Closes the parent's copies of the stdio descriptors once the child holds them.
    pub(crate) fn close_stdio(&mut self) {
        self.input.stdio.clear();
        self.input.console = None;
        self.input.cgroup_tasks.clear();
    }

    /// Turns the child's report into the error the caller sees.
    pub(crate) fn describe(&self, record: Record) -> SpawnError {
        let errno = crate::os_error_text(&std::io::Error::from_raw_os_error(record.errno));
        let index = usize::from(record.index);
        let lossy = |s: &CStr| s.to_string_lossy().into_owned();
        let command = lossy(&self.input.args[0]);
        let setup = |what: String| SpawnError::Setup(format!("{what}: {errno}"));
        let rootfs = lossy(&self.input.rootfs);
        match record.step {
            Step::Stdio => setup(format!("set up stdio descriptor {index}")),
            Step::CgroupNamespace => setup("unshare cgroup namespace".into()),
            Step::RootPropagation => setup("make / a recursive slave mount".into()),
            Step::BindRootfs => setup(format!("bind mount rootfs {rootfs} onto itself")),
            Step::PivotRoot => {
                let what = [
                    "open old root /",
                    "chdir to",
                    "pivot_root into",
                    "fchdir to old root from",
                    "detach old root from",
                    "chdir / in",
                ];
                setup(format!(
                    "{} {rootfs}",
                    what.get(index).unwrap_or(&"pivot_root into")
                ))
            }
            Step::Mount => {
                let m = &MOUNTS[index.min(MOUNTS.len() - 1)];
                setup(format!(
                    "mount {} at {} in {rootfs}",
                    lossy(m.fstype),
                    lossy(m.target)
                ))
            }
            Step::Device => {
                let d = &DEVICES[index.min(DEVICES.len() - 1)];
                setup(format!(
                    "create device {} in container {rootfs}",
                    lossy(d.path)
                ))
            }
            Step::Symlink => {
                let (target, link) = SYMLINKS[index.min(SYMLINKS.len() - 1)];
                setup(format!(
                    "create symlink {} -> {} in container {rootfs}",
                    lossy(link),
                    lossy(target)
                ))
            }
            Step::Volume => {
                let (mount, sub) = (index >> 4, index & 0xf);
                let what = [
                    "open the source of",
                    "make read-only",
                    "create the tmpfs of",
                    "create the mount point of",
                    "open the mount point of",
                    "mount",
                ];
                let (destination, source) = self
                    .input
                    .mounts
                    .get(mount)
                    .map(|m| (lossy(&m.destination), m.source_text()))
                    .unwrap_or_default();
                setup(format!(
                    "{} {source} at {destination} in {rootfs}",
                    what.get(sub).unwrap_or(&"mount")
                ))
            }
            Step::Hostname => setup(format!("set hostname {}", lossy(&self.input.hostname))),
            Step::Mask => setup(format!(
                "mask {}",
                self.input
                    .masked
                    .get(index)
                    .map(|p| lossy(p))
                    .unwrap_or_default()
            )),
            Step::ReadOnly => setup(format!(
                "make {} read-only",
                self.input
                    .readonly
                    .get(index)
                    .map(|p| lossy(p))
                    .unwrap_or_default()
            )),
            Step::Seccomp => setup("install the seccomp filter".into()),
            Step::JoinCgroup => setup(format!(
                "join cgroup {}",
                self.input
                    .cgroup_task_paths
                    .get(index)
                    .map(|path| path.display().to_string())
                    .unwrap_or_default()
            )),
            Step::NoNewPrivs => setup("set no_new_privs".into()),
            Step::Join => setup(if index == 0 {
                "join the container's namespaces".into()
            } else {
                "fork into the container's pid namespace".into()
            }),
            Step::Workdir => setup(format!(
                "change to working directory {}",
                lossy(&self.input.workdir)
            )),
            Step::Session => setup(if index == 0 {
                "create session".into()
            } else {
                "set controlling terminal on stdin".into()
            }),
            Step::Terminal => {
                let what = [
                    "open /dev/ptmx",
                    "unlock the terminal",
                    "set the terminal size",
                    "open the terminal",
                    "give the terminal to the container user",
                    "send the terminal to the runtime",
                    "make the terminal stdin, stdout and stderr",
                ];
                setup(format!(
                    "{} in container {rootfs}",
                    what.get(index).unwrap_or(&"set up the terminal")
                ))
            }
            Step::BoundingSet => setup(format!("drop capability {index} from the bounding set")),
            Step::User => {
                let user = &self.input.user;
                let what = ["set supplementary groups for", "set gid for", "set uid for"];
                setup(format!(
                    "{} uid {} gid {}",
                    what.get(index).unwrap_or(&"switch to"),
                    user.uid,
                    user.gid
                ))
            }
            Step::Capabilities => setup("set capabilities".into()),
            Step::Exec => {
                let candidate = self
                    .input
                    .candidates
                    .get(index)
                    .map(|c| lossy(c))
                    .unwrap_or_default();
                match record.errno {
                    libc::ENOENT if candidate_exists(&record) => SpawnError::NotFound(format!(
                        "exec: \"{command}\": {candidate}: no such file or directory (missing interpreter or loader)"
                    )),
                    libc::ENOENT => SpawnError::NotFound(not_found_message(&command)),
                    libc::EACCES | libc::EPERM => {
                        SpawnError::NotExecutable(format!("exec: \"{command}\": permission denied"))
                    }
                    libc::EISDIR => SpawnError::NotExecutable(format!("exec: \"{command}\": is a directory")),
                    libc::ENOEXEC => SpawnError::NotExecutable(format!("exec: \"{command}\": exec format error")),
                    _ => SpawnError::Setup(format!("exec {candidate}: {errno}")),
                }
            }
            Step::ReadOnlyRoot => setup(format!("remount the rootfs {rootfs} read-only")),
            Step::Init => setup("start the command under the init process".into()),
            Step::Unknown => SpawnError::Setup(format!("container init failed: {errno}")),
        }
    }
}

fn candidate_exists(record: &Record) -> bool {
    record.flags & FLAG_EXISTS != 0
}

/// Docker's wording for a command that is not there.
pub(crate) fn not_found_message(command: &str) -> String {
    if command.contains('/') {
        format!("exec: \"{command}\": stat {command}: no such file or directory")
    } else {
        format!("exec: \"{command}\": executable file not found in $PATH")
    }
}

/// Where the child failed. The numbering is private to this crate (parent and child are the same
/// binary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Step {
    Stdio = 1,
    CgroupNamespace,
    RootPropagation,
    BindRootfs,
    PivotRoot,
    Mount,
    Device,
    Symlink,
    Volume,
    Hostname,
    Mask,
    ReadOnly,
    Workdir,
    Session,
    BoundingSet,
    User,
    Capabilities,
    Exec,
    Terminal,
    Seccomp,
    NoNewPrivs,
    JoinCgroup,
    Join,
    ReadOnlyRoot,
    Init,
    Unknown,
}

impl Step {
    const ALL: [Step; 25] = [
        Step::Stdio,
        Step::CgroupNamespace,
        Step::RootPropagation,
        Step::BindRootfs,
        Step::PivotRoot,
        Step::Mount,
        Step::Device,
        Step::Symlink,
        Step::Volume,
        Step::Hostname,
        Step::Mask,
        Step::ReadOnly,
        Step::Workdir,
        Step::Session,
        Step::BoundingSet,
        Step::User,
        Step::Capabilities,
        Step::Exec,
        Step::Terminal,
        Step::Seccomp,
        Step::NoNewPrivs,
        Step::JoinCgroup,
        Step::Join,
        Step::ReadOnlyRoot,
        Step::Init,
    ];
}

/// `flags` bit: the exec candidate exists although execve said ENOENT (missing interpreter).
const FLAG_EXISTS: u8 = 1;

/// The child's failure report: step, flags, an index into the step's table, errno.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record {
    step: Step,
    flags: u8,
    index: u16,
    errno: i32,
}

impl Record {
    pub(crate) const LEN: usize = 8;

    fn encode(&self) -> [u8; Record::LEN] {
        let mut out = [0u8; Record::LEN];
        out[0] = self.step as u8;
        out[1] = self.flags;
        out[2..4].copy_from_slice(&self.index.to_ne_bytes());
        out[4..8].copy_from_slice(&self.errno.to_ne_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8; Record::LEN]) -> Record {
        let step = Step::ALL
            .iter()
            .copied()
            .find(|s| *s as u8 == bytes[0])
            .unwrap_or(Step::Unknown);
        Record {
            step,
            flags: bytes[1],
            index: u16::from_ne_bytes([bytes[2], bytes[3]]),
            errno: i32::from_ne_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        }
    }
}

struct MountEntry {
    source: &'static CStr,
    target: &'static CStr,
    fstype: &'static CStr,
    flags: c_ulong,
    data: Option<&'static CStr>,
    /// The target lives on a fresh tmpfs, so it always has to be created first.
    mkdir_first: bool,
}

const NOSUID_NODEV_NOEXEC: c_ulong = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

/// The container's mounts, after pivot_root; /dev/pts and below need the /dev tmpfs first.
const MOUNTS: [MountEntry; 6] = [
    MountEntry {
        source: c"proc",
        target: c"/proc",
        fstype: c"proc",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
        mkdir_first: false,
    },
    MountEntry {
        source: c"sysfs",
        target: c"/sys",
        fstype: c"sysfs",
        flags: NOSUID_NODEV_NOEXEC | libc::MS_RDONLY,
        data: None,
        mkdir_first: false,
    },
    MountEntry {
        source: c"tmpfs",
        target: c"/dev",
        fstype: c"tmpfs",
        flags: libc::MS_NOSUID | libc::MS_STRICTATIME,
        data: Some(c"mode=755,size=65536k"),
        mkdir_first: false,
    },
    MountEntry {
        source: c"devpts",
        target: c"/dev/pts",
        fstype: c"devpts",
        flags: libc::MS_NOSUID | libc::MS_NOEXEC,
        data: Some(c"newinstance,ptmxmode=0666,mode=0620,gid=5"),
        mkdir_first: true,
    },
    MountEntry {
        source: c"shm",
        target: c"/dev/shm",
        fstype: c"tmpfs",
        flags: NOSUID_NODEV_NOEXEC,
        data: Some(c"mode=1777,size=65536k"),
        mkdir_first: true,
    },
    MountEntry {
        source: c"mqueue",
        target: c"/dev/mqueue",
        fstype: c"mqueue",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
        mkdir_first: true,
    },
];
/// Index in [`MOUNTS`] after which the device nodes and /dev symlinks are created.
const DEV_MOUNT: usize = 2;
/// Index of /sys in [`MOUNTS`], read-write for privileged containers.
const SYS_MOUNT: usize = 1;

struct Device {
    path: &'static CStr,
    major: u32,
    minor: u32,
}

const DEVICES: [Device; 6] = [
    Device {
        path: c"/dev/null",
        major: 1,
        minor: 3,
    },
    Device {
        path: c"/dev/zero",
        major: 1,
        minor: 5,
    },
    Device {
        path: c"/dev/full",
        major: 1,
        minor: 7,
    },
    Device {
        path: c"/dev/random",
        major: 1,
        minor: 8,
    },
    Device {
        path: c"/dev/urandom",
        major: 1,
        minor: 9,
    },
    Device {
        path: c"/dev/tty",
        major: 5,
        minor: 0,
    },
];

/// (target, link)
const SYMLINKS: [(&CStr, &CStr); 5] = [
    (c"/proc/self/fd", c"/dev/fd"),
    (c"/proc/self/fd/0", c"/dev/stdin"),
    (c"/proc/self/fd/1", c"/dev/stdout"),
    (c"/proc/self/fd/2", c"/dev/stderr"),
    (c"pts/ptmx", c"/dev/ptmx"),
];

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// struct mount_attr of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// What the child mounts for one [`crate::Mount`], prepared in the parent.
pub(crate) struct MountPlan {
    destination: CString,
    /// The destination's leading parts relative to the rootfs: `a`, `a/b`, `a/b/c`.
    prefixes: Vec<CString>,
    /// The last name of each prefix: `a`, `b`, `c`.
    names: Vec<CString>,
    /// The mount point is a directory (else an empty file is created when missing).
    is_dir: bool,
    readonly: bool,
    source: MountSource,
}

enum MountSource {
    Bind(CString),
    Tmpfs {
        /// fsconfig keys with their value, or flags without one.
        options: Vec<(CString, Option<CString>)>,
        attrs: u64,
    },
}

impl MountPlan {
    pub(crate) fn new(m: &crate::Mount) -> Result<MountPlan, SpawnError> {
        let bad =
            |what: &str| SpawnError::Setup(format!("mount destination {:?} {what}", m.destination));
        if !m.destination.starts_with('/') {
            return Err(bad("is not an absolute path"));
        }
        let mut parts: Vec<&str> = Vec::new();
        for part in m.destination.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                other => parts.push(other),
            }
        }
        if parts.is_empty() {
            return Err(bad("is the container's root"));
        }
        let c = |s: &str| CString::new(s).map_err(|_| bad("contains a nul byte"));
        let mut prefixes = Vec::new();
        let mut names = Vec::new();
        for i in 0..parts.len() {
            prefixes.push(c(&parts[..=i].join("/"))?);
            names.push(c(parts[i])?);
        }
        let (source, is_dir, readonly) = match &m.kind {
            crate::MountKind::Bind { source } => {
                let meta = std::fs::metadata(source).map_err(|e| {
                    SpawnError::Setup(format!(
                        "bind source path {}: {}",
                        source.display(),
                        crate::os_error_text(&e)
                    ))
                })?;
                let text = CString::new(source.as_os_str().as_encoded_bytes())
                    .map_err(|_| bad("has a source with a nul byte"))?;
                (MountSource::Bind(text), meta.is_dir(), m.readonly)
            }
            crate::MountKind::Tmpfs { options } => {
                let mut attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
                let mut readonly = m.readonly;
                let mut fs_options = Vec::new();
                for option in options.split(',').filter(|o| !o.is_empty()) {
                    let (set, clear) = match option {
                        "ro" => {
                            readonly = true;
                            (0, 0)
                        }
                        "rw" => {
                            readonly = false;
                            (0, 0)
                        }
                        "nosuid" => (MOUNT_ATTR_NOSUID, 0),
                        "suid" => (0, MOUNT_ATTR_NOSUID),
                        "nodev" => (MOUNT_ATTR_NODEV, 0),
                        "dev" => (0, MOUNT_ATTR_NODEV),
                        "noexec" => (MOUNT_ATTR_NOEXEC, 0),
                        "exec" => (0, MOUNT_ATTR_NOEXEC),
                        other => {
                            fs_options.push(match other.split_once('=') {
                                Some((key, value)) => (c(key)?, Some(c(value)?)),
                                None => (c(other)?, None),
                            });
                            (0, 0)
                        }
                    };
                    attrs = (attrs | set) & !clear;
                }
                if readonly {
                    attrs |= MOUNT_ATTR_RDONLY;
                }
                (
                    MountSource::Tmpfs {
                        options: fs_options,
                        attrs,
                    },
                    true,
                    readonly,
                )
            }
        };
        Ok(MountPlan {
            destination: c(&format!("/{}", parts.join("/")))?,
            prefixes,
            names,
            is_dir,
            readonly,
            source,
        })
    }

    fn source_text(&self) -> String {
        match &self.source {
            MountSource::Bind(path) => path.to_string_lossy().into_owned(),
            MountSource::Tmpfs { .. } => "tmpfs".into(),
        }
    }
}

fn errno() -> i32 {
    // SAFETY: errno is thread-local and always readable.
    unsafe { *libc::__errno_location() }
}

/// Reports the failure to the parent and exits; the exit code only matters if nobody listens.
unsafe fn fail(error_fd: c_int, step: Step, index: usize, errno: i32, flags: u8) -> ! {
    let record = Record {
        step,
        flags,
        index: index as u16,
        errno,
    }
    .encode();
    libc::write(error_fd, record.as_ptr().cast(), record.len());
    let code = match (step, errno) {
        (Step::Exec, libc::ENOENT) => 127,
        (Step::Exec, _) => 126,
        _ => 1,
    };
    libc::_exit(code)
}

/// Runs `$call`; on a negative result reports `$step`/`$index` with errno.
macro_rules! check {
    ($err:expr, $step:expr, $index:expr, $call:expr) => {{
        let ret = $call;
        if ret < 0 {
            fail($err, $step, $index as usize, errno(), 0);
        }
        ret
    }};
}

unsafe fn mount(
    source: *const c_char,
    target: *const c_char,
    fstype: *const c_char,
    flags: c_ulong,
    data: Option<&CStr>,
) -> c_int {
    libc::mount(
        source,
        target,
        fstype,
        flags,
        data.map_or(ptr::null(), |d| d.as_ptr().cast()),
    )
}

/// The child's whole life. Never returns.
///
/// # Safety
/// Must be called only in the freshly cloned child, with the pipe ends from `spawn`.
pub(crate) unsafe fn run(
    plan: &Plan,
    sync_read: c_int,
    sync_write: c_int,
    error_read: c_int,
    error_write: c_int,
) -> ! {
    let err = error_write;
    let input = &plan.input;
    libc::close(sync_write);
    libc::close(error_read);

    for (target, fd) in input.stdio.iter().enumerate() {
        check!(
            err,
            Step::Stdio,
            target,
            libc::dup2(fd.as_raw_fd(), target as c_int)
        );
    }

    // Nothing we mount may propagate back to the host.
    check!(
        err,
        Step::RootPropagation,
        0,
        mount(
            ptr::null(),
            c"/".as_ptr(),
            ptr::null(),
            libc::MS_SLAVE | libc::MS_REC,
            None
        )
    );
    let rootfs = input.rootfs.as_ptr();
    check!(
        err,
        Step::BindRootfs,
        0,
        mount(
            rootfs,
            rootfs,
            ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            None
        )
    );

    // The volumes, binds, tmpfs and /etc files, while the host's paths are still reachable;
    // their mount points are resolved inside the rootfs.
    if !input.mounts.is_empty() {
        let root = check!(
            err,
            Step::BindRootfs,
            0,
            libc::open(rootfs, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        );
        for (index, m) in input.mounts.iter().enumerate() {
            mount_one(err, root, index, m);
        }
        libc::close(root);
    }

    // pivot_root(".", ".") stacks the old root on the new one; detaching it leaves only the rootfs
    // (runc's trick, no put_old directory needed).
    let old_root = check!(
        err,
        Step::PivotRoot,
        0,
        libc::open(
            c"/".as_ptr(),
            libc::O_DIRECTORY | libc::O_RDONLY | libc::O_CLOEXEC
        )
    );
    check!(err, Step::PivotRoot, 1, libc::chdir(rootfs));
    check!(
        err,
        Step::PivotRoot,
        2,
        libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr())
    );
    check!(err, Step::PivotRoot, 3, libc::fchdir(old_root));
    check!(
        err,
        Step::PivotRoot,
        4,
        libc::umount2(c".".as_ptr(), libc::MNT_DETACH)
    );
    libc::close(old_root);
    check!(err, Step::PivotRoot, 5, libc::chdir(c"/".as_ptr()));

    for (index, m) in MOUNTS.iter().enumerate() {
        if m.mkdir_first {
            libc::mkdir(m.target.as_ptr(), 0o755);
        }
        let flags = if index == SYS_MOUNT && input.security.writable_sys {
            m.flags & !libc::MS_RDONLY
        } else {
            m.flags
        };
        let mut ret = mount(
            m.source.as_ptr(),
            m.target.as_ptr(),
            m.fstype.as_ptr(),
            flags,
            m.data,
        );
        if ret < 0 && errno() == libc::ENOENT && !m.mkdir_first {
            libc::mkdir(m.target.as_ptr(), 0o755);
            ret = mount(
                m.source.as_ptr(),
                m.target.as_ptr(),
                m.fstype.as_ptr(),
                flags,
                m.data,
            );
        }
        check!(err, Step::Mount, index, ret);
        if index == DEV_MOUNT {
            populate_dev(err);
        }
    }

    if !input.hostname.is_empty() {
        check!(
            err,
            Step::Hostname,
            0,
            libc::sethostname(input.hostname.as_ptr(), input.hostname.as_bytes().len())
        );
    }
    mask_paths(err, plan);
    // The root is ready; the command waits for the parent's before_start hook (the v1
    // cgroups, the network), which ran meanwhile. EOF means it failed or the parent died.
    let mut go = 0u8;
    loop {
        let n = libc::read(sync_read, (&mut go as *mut u8).cast(), 1);
        if n == 1 {
            break;
        }
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        libc::_exit(1);
    }
    libc::close(sync_read);
    // Into our own cgroup in every v1 hierarchy (clone3 put us into the cgroup2 one), so the
    // namespace below is rooted there.
    join_v1_cgroups(err, plan);
    check!(
        err,
        Step::CgroupNamespace,
        0,
        libc::unshare(libc::CLONE_NEWCGROUP)
    );
    enter_command(err, plan)
}

/// Moves this single-threaded process into each v1 cgroup of the plan: `0` written to the
/// cgroup's `tasks` file, which moves the writer itself without the kernel's global
/// threadgroup lock (see [`crate::Cgroups`]).
unsafe fn join_v1_cgroups(err: c_int, plan: &Plan) {
    for (index, tasks) in plan.input.cgroup_tasks.iter().enumerate() {
        let fd = check!(
            err,
            Step::JoinCgroup,
            index,
            libc::openat(
                tasks.dir.as_raw_fd(),
                tasks.relative.as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC
            )
        );
        check!(
            err,
            Step::JoinCgroup,
            index,
            libc::write(fd, c"0".as_ptr().cast(), 1)
        );
        libc::close(fd);
        // A hierarchy's root must not stay open until exec: another process of the container
        // could reach it through /proc/PID/fd and move itself to the root cgroup (v1 does not
        // check cgroup namespaces). Nothing drops the plan in the child, so this is the only
        // close.
        libc::close(tasks.dir.as_raw_fd());
    }
}

/// The part of the init's life an exec'd process shares: working directory, session and
/// terminal, seccomp, user and capabilities, exec.
unsafe fn enter_command(err: c_int, plan: &Plan) -> ! {
    let input = &plan.input;
    if libc::chdir(input.workdir.as_ptr()) < 0 {
        if errno() != libc::ENOENT {
            fail(err, Step::Workdir, 0, errno(), 0);
        }
        for dir in &input.workdir_parents {
            libc::mkdir(dir.as_ptr(), 0o755);
        }
        check!(err, Step::Workdir, 0, libc::chdir(input.workdir.as_ptr()));
    }
    // `--read-only`: last, once every mount point and the working directory exist. Only the
    // root's own mount changes; what is mounted on it keeps its flags.
    if input.run.readonly_rootfs {
        check!(
            err,
            Step::ReadOnlyRoot,
            0,
            mount(
                ptr::null(),
                c"/".as_ptr(),
                ptr::null(),
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                None
            )
        );
    }

    check!(err, Step::Session, 0, libc::setsid());
    if let Some((rows, cols)) = input.terminal {
        open_terminal(err, plan, rows, cols);
        check!(err, Step::Session, 1, libc::ioctl(0, libc::TIOCSCTTY, 0));
    }

    // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: do it while we have it
    // (runc's order). Everything after this point must be allowed by the profile.
    if !input.security.no_new_privileges {
        install_seccomp(err, plan);
    }
    switch_user(err, plan);
    if input.run.init {
        // Returns in the command's process only.
        become_reaper(err, plan);
    }
    exec(err, plan)
}

/// `--init`: forks the command (which returns from here to exec) and stays as PID 1, the
/// reaper: every signal it gets goes to the command, every child that exits is reaped, and
/// when the command exits it exits with its status (128+N when signal N killed it).
unsafe fn become_reaper(err: c_int, plan: &Plan) {
    let mut all: libc::sigset_t = std::mem::zeroed();
    libc::sigfillset(&mut all);
    libc::sigprocmask(libc::SIG_BLOCK, &all, ptr::null_mut());
    let pid = check!(
        err,
        Step::Init,
        0,
        libc::syscall(
            libc::SYS_clone,
            libc::SIGCHLD as c_ulong,
            0usize,
            0usize,
            0usize,
            0usize
        )
    ) as libc::pid_t;
    if pid == 0 {
        // The command: a process group of its own, in the terminal's foreground (with the
        // signals still blocked, so tcsetpgrp raises no SIGTTOU); exec unblocks them.
        libc::setpgid(0, 0);
        if plan.input.terminal.is_some() {
            libc::tcsetpgrp(0, libc::getpid());
        }
        return;
    }
    if plan.input.security.no_new_privileges {
        // The command installs the filter right before its exec; the reaper runs under it too.
        if libc::prctl(
            libc::PR_SET_NO_NEW_PRIVS,
            1 as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
        ) < 0
        {
            libc::kill(pid, libc::SIGKILL);
            fail(err, Step::NoNewPrivs, 0, errno(), 0);
        }
        install_seccomp(err, plan);
    }
    // The error pipe too: the runtime hears of the command's exec from the command's copy.
    libc::close_range(3, libc::c_uint::MAX, 0);
    libc::prctl(
        libc::PR_SET_NAME,
        c"dock-init".as_ptr() as c_ulong,
        0 as c_ulong,
        0 as c_ulong,
        0 as c_ulong,
    );
    if let Some((start, end)) = plan.input.arg_area {
        let area = std::slice::from_raw_parts_mut(start as *mut u8, end - start);
        let title = &plan.input.init_title;
        let n = title.len().min(area.len());
        area[..n].copy_from_slice(&title[..n]);
        area[n..].fill(0);
    }
    let mut info: libc::siginfo_t = std::mem::zeroed();
    loop {
        let sig = libc::syscall(
            libc::SYS_rt_sigtimedwait,
            &all as *const libc::sigset_t,
            &mut info as *mut libc::siginfo_t,
            ptr::null::<libc::timespec>(),
            8usize,
        ) as c_int;
        if sig < 0 {
            continue;
        }
        if sig != libc::SIGCHLD {
            libc::kill(pid, sig);
            continue;
        }
        loop {
            let mut status: c_int = 0;
            let reaped = libc::syscall(
                libc::SYS_wait4,
                -1 as libc::pid_t,
                &mut status as *mut c_int,
                libc::WNOHANG,
                ptr::null_mut::<libc::rusage>(),
            ) as libc::pid_t;
            if reaped <= 0 {
                break;
            }
            if reaped == pid {
                if libc::WIFEXITED(status) {
                    libc::_exit(libc::WEXITSTATUS(status));
                }
                if libc::WIFSIGNALED(status) {
                    libc::_exit(128 + libc::WTERMSIG(status));
                }
            }
        }
    }
}

/// Opens a terminal in the container's own devpts (mounted above), sends its master to the
/// runtime and makes its slave our stdin, stdout and stderr (runc's console socket).
unsafe fn open_terminal(err: c_int, plan: &Plan, rows: u16, cols: u16) {
    let master = check!(
        err,
        Step::Terminal,
        0,
        libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC
        )
    );
    let unlock: c_int = 0;
    check!(
        err,
        Step::Terminal,
        1,
        libc::ioctl(master, libc::TIOCSPTLCK, &unlock)
    );
    if rows > 0 && cols > 0 {
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        check!(
            err,
            Step::Terminal,
            2,
            libc::ioctl(master, libc::TIOCSWINSZ, &size)
        );
    }
    let slave = check!(
        err,
        Step::Terminal,
        3,
        libc::ioctl(master, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY)
    );
    // As Docker has it: the command's user owns its terminal (group tty from devpts' gid=5).
    check!(
        err,
        Step::Terminal,
        4,
        libc::fchown(slave, plan.input.user.uid, libc::gid_t::MAX)
    );
    let console = plan.input.console.as_ref().map_or(-1, |fd| fd.as_raw_fd());
    check!(err, Step::Terminal, 5, send_fd(console, master));
    libc::close(master);
    for target in 0..3 {
        check!(err, Step::Terminal, 6, libc::dup2(slave, target));
    }
    if slave > 2 {
        libc::close(slave);
    }
}

/// Sends `fd` over the unix socket `socket` (SCM_RIGHTS), with a one-byte payload.
unsafe fn send_fd(socket: c_int, fd: c_int) -> isize {
    // Room for one cmsghdr carrying one int, aligned for cmsghdr; on our stack, not the heap.
    let mut space = [0u64; 4];
    let len = libc::CMSG_SPACE(size_of::<c_int>() as u32) as usize;
    if len > size_of_val(&space) {
        *libc::__errno_location() = libc::EINVAL;
        return -1;
    }
    let mut byte = 0u8;
    let mut iov = libc::iovec {
        iov_base: (&mut byte as *mut u8).cast(),
        iov_len: 1,
    };
    let mut msg: libc::msghdr = std::mem::zeroed();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = space.as_mut_ptr().cast();
    msg.msg_controllen = len;
    let cmsg = libc::CMSG_FIRSTHDR(&msg);
    (*cmsg).cmsg_level = libc::SOL_SOCKET;
    (*cmsg).cmsg_type = libc::SCM_RIGHTS;
    (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<c_int>() as u32) as usize;
    ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<c_int>(), fd);
    libc::sendmsg(socket, &msg, 0)
}

unsafe fn populate_dev(err: c_int) {
    // Device nodes get exactly 0666.
    let old_umask = libc::umask(0);
    for (index, d) in DEVICES.iter().enumerate() {
        let dev = libc::makedev(d.major, d.minor);
        check!(
            err,
            Step::Device,
            index,
            libc::mknod(d.path.as_ptr(), libc::S_IFCHR | 0o666, dev)
        );
    }
    libc::umask(old_umask);
    for (index, (target, link)) in SYMLINKS.iter().enumerate() {
        check!(
            err,
            Step::Symlink,
            index,
            libc::symlink(target.as_ptr(), link.as_ptr())
        );
    }
}

unsafe fn mask_file(path: &CStr) -> c_int {
    mount(
        c"/dev/null".as_ptr(),
        path.as_ptr(),
        ptr::null(),
        libc::MS_BIND,
        None,
    )
}

unsafe fn mask_dir(path: &CStr) -> c_int {
    mount(
        c"tmpfs".as_ptr(),
        path.as_ptr(),
        c"tmpfs".as_ptr(),
        libc::MS_RDONLY,
        None,
    )
}

/// Masks (files: /dev/null bound over them; directories: an empty read-only tmpfs) and
/// read-only binds, as runc does them. What a masked path is comes from a `stat` first, not
/// from a bind that fails with ENOTDIR as runc's does: a failed bind has already cloned its
/// source and waits out an RCU grace period to drop it, a tenth of a millisecond or more.
unsafe fn mask_paths(err: c_int, plan: &Plan) {
    for (index, path) in plan.input.masked.iter().enumerate() {
        let mut stat: libc::stat = std::mem::zeroed();
        if libc::stat(path.as_ptr(), &mut stat) < 0 {
            if errno() == libc::ENOENT {
                continue;
            }
            fail(err, Step::Mask, index, errno(), 0);
        }
        let ret = if stat.st_mode & libc::S_IFMT == libc::S_IFDIR {
            mask_dir(path)
        } else {
            mask_file(path)
        };
        if ret < 0 && errno() != libc::ENOENT {
            fail(err, Step::Mask, index, errno(), 0);
        }
    }
    for (index, path) in plan.input.readonly.iter().enumerate() {
        if mount(
            path.as_ptr(),
            path.as_ptr(),
            ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            None,
        ) < 0
        {
            if errno() == libc::ENOENT {
                continue;
            }
            fail(err, Step::ReadOnly, index, errno(), 0);
        }
        let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | NOSUID_NODEV_NOEXEC;
        check!(
            err,
            Step::ReadOnly,
            index,
            mount(ptr::null(), path.as_ptr(), ptr::null(), flags, None)
        );
    }
}

const SECCOMP_SET_MODE_FILTER: c_ulong = 1;

/// Installs the plan's seccomp program, if any.
unsafe fn install_seccomp(err: c_int, plan: &Plan) {
    if let Some(prog) = &plan.seccomp {
        let flags = plan.input.security.seccomp.as_ref().map_or(0, |p| p.flags) as c_ulong;
        check!(
            err,
            Step::Seccomp,
            0,
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                flags,
                prog as *const libc::sock_fprog
            )
        );
    }
}

/// Bounding set, groups, gid, uid, then the capability sets. set*id go through `syscall`: glibc's
/// wrappers would try to signal the parent's other threads, which do not exist here.
unsafe fn switch_user(err: c_int, plan: &Plan) {
    let capabilities = plan.input.security.capabilities;
    for cap in 0..64u32 {
        if capabilities & (1 << cap) != 0 {
            continue;
        }
        if libc::prctl(libc::PR_CAPBSET_DROP, cap as c_ulong, 0, 0, 0) < 0 {
            if errno() == libc::EINVAL {
                break; // past the kernel's last capability
            }
            fail(err, Step::BoundingSet, cap as usize, errno(), 0);
        }
    }
    let user = &plan.input.user;
    check!(
        err,
        Step::User,
        0,
        libc::syscall(libc::SYS_setgroups, plan.groups.len(), plan.groups.as_ptr())
    );
    check!(
        err,
        Step::User,
        1,
        libc::syscall(libc::SYS_setresgid, user.gid, user.gid, user.gid)
    );
    check!(
        err,
        Step::User,
        2,
        libc::syscall(libc::SYS_setresuid, user.uid, user.uid, user.uid)
    );
    // Root keeps the container's set; any other user ends with empty sets, as in Docker. The
    // inheritable set is always empty (CVE-2022-24769).
    let granted = if user.uid == 0 { capabilities } else { 0 };
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: granted as u32,
            permitted: granted as u32,
            inheritable: 0,
        },
        CapData {
            effective: (granted >> 32) as u32,
            permitted: (granted >> 32) as u32,
            inheritable: 0,
        },
    ];
    check!(
        err,
        Step::Capabilities,
        0,
        libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr())
    );
}

/// How often a busy executable is retried, 2 ms apart.
const ETXTBSY_RETRIES: u32 = 100;

/// Resets what the parent changed for itself, then tries each PATH candidate like execvp.
unsafe fn exec(err: c_int, plan: &Plan) -> ! {
    // Rust ignores SIGPIPE, and the monitor may ignore or block more; the command gets defaults.
    for sig in 1..=64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    libc::sigprocmask(libc::SIG_SETMASK, &empty, ptr::null_mut());
    // Nothing of the monitor's leaks into the container beyond stdio.
    libc::close_range(3, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC as c_int);
    // With no_new_privs the filter comes as late as possible, so as few calls as possible
    // run under it (runc's order).
    if plan.input.security.no_new_privileges {
        check!(
            err,
            Step::NoNewPrivs,
            0,
            libc::prctl(
                libc::PR_SET_NO_NEW_PRIVS,
                1 as c_ulong,
                0 as c_ulong,
                0 as c_ulong,
                0 as c_ulong
            )
        );
        install_seccomp(err, plan);
    }

    let mut denied: Option<(usize, i32)> = None;
    for (index, candidate) in plan.input.candidates.iter().enumerate() {
        // A stat is far cheaper than an execve that fails (which, under the seccomp filter,
        // is most of PATH): skip what is not there.
        let mut st: libc::stat = std::mem::zeroed();
        if libc::stat(candidate.as_ptr(), &mut st) < 0 && errno() == libc::ENOENT {
            continue;
        }
        // ETXTBSY: another thread of a multi-threaded parent may have forked while the file was
        // open for writing; that copy closes the descriptor at its own exec, so wait a little.
        for _ in 0..ETXTBSY_RETRIES {
            libc::execve(candidate.as_ptr(), plan.argv.as_ptr(), plan.envp.as_ptr());
            if errno() != libc::ETXTBSY {
                break;
            }
            let pause = libc::timespec {
                tv_sec: 0,
                tv_nsec: 2_000_000,
            };
            libc::nanosleep(&pause, ptr::null_mut());
        }
        match errno() {
            libc::ENOENT => {
                // The file is there, its interpreter or loader is not.
                let mut st: libc::stat = std::mem::zeroed();
                if libc::stat(candidate.as_ptr(), &mut st) == 0 {
                    fail(err, Step::Exec, index, libc::ENOENT, FLAG_EXISTS);
                }
            }
            libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
            libc::EACCES => {
                if denied.is_none() {
                    let mut st: libc::stat = std::mem::zeroed();
                    let is_dir = libc::stat(candidate.as_ptr(), &mut st) == 0
                        && st.st_mode & libc::S_IFMT == libc::S_IFDIR;
                    denied = Some((index, if is_dir { libc::EISDIR } else { libc::EACCES }));
                }
            }
            other => fail(err, Step::Exec, index, other, 0),
        }
    }
    match denied {
        Some((index, errno)) => fail(err, Step::Exec, index, errno, 0),
        None => fail(err, Step::Exec, 0, libc::ENOENT, 0),
    }
}

/// `openat2(dirfd, path, how)` as a raw system call, tried again while the kernel answers
/// EAGAIN (see [`crate::openat2`]).
unsafe fn openat2(dirfd: c_int, path: &CStr, flags: c_int, resolve: u64) -> c_int {
    let how = crate::OpenHow {
        flags: flags as u64,
        mode: 0,
        resolve,
    };
    let mut tries = 0;
    loop {
        let fd = libc::syscall(
            libc::SYS_openat2,
            dirfd,
            path.as_ptr(),
            &how as *const crate::OpenHow,
            size_of::<crate::OpenHow>(),
        ) as c_int;
        tries += 1;
        if fd >= 0 || *libc::__errno_location() != libc::EAGAIN || tries == crate::OPENAT2_TRIES {
            return fd;
        }
    }
}

/// Mounts `m` (number `index`) in the rootfs open at `root`: the source as a detached mount
/// (a recursive bind clone, read-only if asked, or a new tmpfs), then moved onto its mount
/// point, resolved and created inside the rootfs.
unsafe fn mount_one(err: c_int, root: c_int, index: usize, m: &MountPlan) {
    let code = |sub: usize| (index << 4) | sub;
    let tree = match &m.source {
        MountSource::Bind(source) => {
            let tree = check!(
                err,
                Step::Volume,
                code(0),
                libc::syscall(
                    libc::SYS_open_tree,
                    libc::AT_FDCWD,
                    source.as_ptr(),
                    OPEN_TREE_CLONE | AT_RECURSIVE | libc::O_CLOEXEC as libc::c_uint
                )
            ) as c_int;
            if m.readonly {
                let attr = MountAttr {
                    attr_set: MOUNT_ATTR_RDONLY,
                    attr_clr: 0,
                    propagation: 0,
                    userns_fd: 0,
                };
                check!(
                    err,
                    Step::Volume,
                    code(1),
                    libc::syscall(
                        libc::SYS_mount_setattr,
                        tree,
                        c"".as_ptr(),
                        libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
                        &attr as *const MountAttr,
                        size_of::<MountAttr>()
                    )
                );
            }
            tree
        }
        MountSource::Tmpfs { options, attrs } => {
            let fs = check!(
                err,
                Step::Volume,
                code(2),
                libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), FSOPEN_CLOEXEC)
            ) as c_int;
            for (key, value) in options {
                let (cmd, value) = match value {
                    Some(v) => (FSCONFIG_SET_STRING, v.as_ptr()),
                    None => (FSCONFIG_SET_FLAG, ptr::null()),
                };
                check!(
                    err,
                    Step::Volume,
                    code(2),
                    libc::syscall(libc::SYS_fsconfig, fs, cmd, key.as_ptr(), value, 0)
                );
            }
            check!(
                err,
                Step::Volume,
                code(2),
                libc::syscall(
                    libc::SYS_fsconfig,
                    fs,
                    FSCONFIG_CMD_CREATE,
                    ptr::null::<c_char>(),
                    ptr::null::<c_char>(),
                    0
                )
            );
            let tree = check!(
                err,
                Step::Volume,
                code(2),
                libc::syscall(libc::SYS_fsmount, fs, FSMOUNT_CLOEXEC, *attrs)
            ) as c_int;
            libc::close(fs);
            tree
        }
    };
    let target = mount_point(err, root, m, code(3), code(4));
    check!(
        err,
        Step::Volume,
        code(5),
        libc::syscall(
            libc::SYS_move_mount,
            tree,
            c"".as_ptr(),
            target,
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH
        )
    );
    libc::close(tree);
    libc::close(target);
}

/// An `O_PATH` descriptor of `m`'s mount point in the rootfs open at `root`, created (with
/// its missing parents) when it does not exist. Every lookup is `RESOLVE_IN_ROOT`: a symlink
/// in the image resolves as it would inside the container, never to the host.
unsafe fn mount_point(err: c_int, root: c_int, m: &MountPlan, create: usize, open: usize) -> c_int {
    const IN_ROOT: u64 = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    let path_flags = libc::O_PATH | libc::O_CLOEXEC;
    let dir_flags = path_flags | libc::O_DIRECTORY;
    let last = m.prefixes.len() - 1;
    let fd = openat2(root, &m.prefixes[last], path_flags, IN_ROOT);
    if fd >= 0 {
        return fd;
    }
    if errno() != libc::ENOENT {
        fail(err, Step::Volume, open, errno(), 0);
    }
    let mut parent = root;
    for i in 0..last {
        let mut fd = openat2(root, &m.prefixes[i], dir_flags, IN_ROOT);
        if fd < 0 && errno() == libc::ENOENT {
            if libc::mkdirat(parent, m.names[i].as_ptr(), 0o755) < 0 && errno() != libc::EEXIST {
                fail(err, Step::Volume, create, errno(), 0);
            }
            fd = openat2(root, &m.prefixes[i], dir_flags, IN_ROOT);
        }
        if fd < 0 {
            fail(err, Step::Volume, create, errno(), 0);
        }
        if parent != root {
            libc::close(parent);
        }
        parent = fd;
    }
    let name = m.names[last].as_ptr();
    let made = if m.is_dir {
        libc::mkdirat(parent, name, 0o755)
    } else {
        let file = libc::openat(
            parent,
            name,
            libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_WRONLY | libc::O_CLOEXEC,
            0o644,
        );
        if file >= 0 {
            libc::close(file);
        }
        file
    };
    if made < 0 && errno() != libc::EEXIST {
        fail(err, Step::Volume, create, errno(), 0);
    }
    if parent != root {
        libc::close(parent);
    }
    let fd = openat2(root, &m.prefixes[last], path_flags, IN_ROOT);
    if fd < 0 {
        fail(err, Step::Volume, open, errno(), 0);
    }
    fd
}

/// The namespaces an exec'd process joins: all of the container init's.
const EXEC_NAMESPACES: c_int = libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWCGROUP;

/// An exec'd process, first as the intermediate child of the caller (born in the container's
/// cgroup2 cgroup): joins the container's v1 cgroups (before its cgroup namespace, which would
/// hide the source cgroup), then every namespace of the init through its pidfd (which also
/// makes the mount namespace's root, the container's `/`, our root and working directory),
/// then forks the command's process into the pid namespace as our sibling (`CLONE_PARENT`),
/// so the caller waits for it. The intermediate reports that pid on `pid_write` and exits.
///
/// # Safety
/// Must be called only in the freshly cloned child, with the descriptors from `exec`.
pub(crate) unsafe fn run_exec(plan: &Plan, init: c_int, pid_write: c_int, error_write: c_int) -> ! {
    let err = error_write;
    let input = &plan.input;
    join_v1_cgroups(err, plan);
    check!(err, Step::Join, 0, libc::setns(init, EXEC_NAMESPACES));
    let ret = libc::syscall(
        libc::SYS_clone,
        (libc::CLONE_PARENT | libc::SIGCHLD) as c_ulong,
        0usize,
        0usize,
        0usize,
        0usize,
    );
    if ret < 0 {
        fail(err, Step::Join, 1, errno(), 0);
    }
    if ret == 0 {
        libc::close(pid_write);
        for (target, fd) in input.stdio.iter().enumerate() {
            check!(
                err,
                Step::Stdio,
                target,
                libc::dup2(fd.as_raw_fd(), target as c_int)
            );
        }
        enter_command(err, plan)
    }
    let pid = (ret as i32).to_ne_bytes();
    libc::write(pid_write, pid.as_ptr().cast(), pid.len());
    libc::_exit(0)
}
