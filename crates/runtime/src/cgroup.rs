//! One cgroup per container, in every hierarchy the machine has: limits, the device allow list,
//! joining, OOM detection and cleanup, on cgroup v1 (including the hybrid layout with a cgroup2
//! mount beside it) and v2.
//!
//! Every container lives at `<hierarchy root>/<parent>/<id>`, where `parent` names the dock root
//! (for example `dock`), in every hierarchy: each v1 mount (named ones such as `name=systemd`
//! included) and the cgroup2 mount. The container's cgroup namespace is rooted there, so a
//! cgroup filesystem mounted from any namespace it can create shows its own cgroup and nothing
//! of the host's. Where dock writes a limit (the memory controller with `-m`), the container's
//! processes live one level lower, in `<id>/container`: limits apply to the whole subtree, and
//! the files holding them lie outside what the container can reach. The parent is made once per
//! dock root and stays, as Docker's `docker` cgroup does: making and removing it with the first
//! and last container would cost every lone `run` ten more directories each way.
//! [`Hierarchy::remove_parent`] removes it when the root goes; creating a container retries when
//! the parent vanished between its mkdir and the container's.
//!
//! Joining: moving a process into a cgroup usually takes the kernel's global threadgroup lock,
//! whose first write lock waits for an RCU grace period (5-20 ms per container start). So the
//! container's first process is born in its cgroup2 cgroup (`clone3` with `CLONE_INTO_CGROUP`)
//! and moves its own single thread into each v1 one, which skips that lock (see
//! [`Cgroup::joining`] and `sysinit::Cgroups`).
//!
//! Devices: Docker's default allow list, through the v1 devices controller, or on pure v2 an
//! eBPF program attached to the container's cgroup (see [`crate::devices`]).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, ErrorKind};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tracing::{debug, warn};

use crate::devices::{self, DeviceAccess};

/// Where cgroup filesystems are normally mounted.
pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";

/// Names a cgroup2 mount to use as the only hierarchy, as on a pure v2 host (tests run the v2
/// paths this way on a hybrid machine's `/sys/fs/cgroup/unified`).
pub const CGROUP2_ROOT_ENV: &str = "DOCK_CGROUP2_ROOT";

/// The directory below a container's cgroup that holds its processes where dock writes limits
/// into the container's cgroup.
pub const PROCESS_LEAF: &str = "container";

/// Every v1 controller name the kernel knows; anything else in a cgroup mount's options is a
/// mount option (`rw`, `xattr`, ...) or, with `name=`, a named hierarchy.
const KNOWN_V1_CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

/// Controllers enabled for children on v2.
const V2_CONTROLLERS: &[&str] = &["cpu", "memory", "pids"];

/// `cpu.shares` bounds (moby's linuxMinCPUShares / linuxMaxCPUShares).
pub const MIN_CPU_SHARES: i64 = 2;
pub const MAX_CPU_SHARES: i64 = 262_144;
/// The CFS period `--cpus` is expressed over (Docker's 100 ms).
pub const CPU_PERIOD_US: i64 = 100_000;

/// How many times `remove` kills and re-reads a cgroup before giving up (10 ms apart).
const KILL_ROUNDS: u32 = 500;
/// How many times `rmdir` is retried on EBUSY while the kernel finishes tearing down tasks.
const RMDIR_ROUNDS: u32 = 200;
/// How many times creating a container's directory is retried when another container's cleanup
/// removed the shared parent between our mkdir of the parent and of the child.
const CREATE_ROUNDS: u32 = 10;
const ROUND_PAUSE: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot detect the cgroup hierarchy: {0}")]
    Detect(String),
    #[error("invalid cgroup name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("invalid limits: {0}")]
    InvalidLimits(String),
    #[error("pid {0} cannot join a cgroup")]
    InvalidPid(i32),
    #[error("cgroup controller {0} is not mounted")]
    MissingController(&'static str),
    #[error("failed to create cgroup directory {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("failed to write {value} to {}: {source}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        source: io::Error,
    },
    #[error("failed to read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("failed to kill pid {pid} in {}: {source}", path.display())]
    Kill {
        path: PathBuf,
        pid: i32,
        source: nix::Error,
    },
    #[error("cgroup {} still has processes after SIGKILL", path.display())]
    StillPopulated { path: PathBuf },
    #[error("failed to attach the device filter to {}: {source}", path.display())]
    DeviceFilter { path: PathBuf, source: io::Error },
    #[error("cgroup {} did not become {state}", path.display())]
    Freeze { path: PathBuf, state: &'static str },
    #[error("failed to remove cgroup directory {}: {source}", path.display())]
    RemoveDir { path: PathBuf, source: io::Error },
}

pub type Result<T, E = CgroupError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// Memory limits in bytes, with Docker's meaning: `memory_swap` is memory plus swap; `None`
/// means twice `memory`, `-1` means unlimited swap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    /// Which devices the container may create and open.
    pub devices: DeviceAccess,
    // -- run flags --
    /// `pids.max`.
    pub pids: Option<i64>,
    /// `--cpus` in billionths of a CPU: a CFS quota over [`CPU_PERIOD_US`].
    pub nano_cpus: Option<i64>,
    /// `cpu.shares` (v2: the equivalent `cpu.weight`).
    pub cpu_shares: Option<i64>,
}

/// What to write for memory plus swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SwapLimit {
    Unlimited,
    /// Memory plus swap, in bytes; at least the memory limit.
    Total(i64),
}

impl Limits {
    fn has_cpu(&self) -> bool {
        self.nano_cpus.is_some() || self.cpu_shares.is_some()
    }

    /// The CFS quota of `--cpus`, in microseconds per [`CPU_PERIOD_US`].
    pub fn cpu_quota_us(&self) -> Option<i64> {
        self.nano_cpus
            .map(|n| (n.saturating_mul(CPU_PERIOD_US) / 1_000_000_000).max(1_000))
    }

    /// Checks the values and resolves the memory+swap total. `Ok(None)` = no memory limit.
    fn resolve(&self) -> Result<Option<(i64, SwapLimit)>> {
        let memory = match self.memory {
            None | Some(0) => {
                return match self.memory_swap {
                    None | Some(0) => Ok(None),
                    Some(_) => Err(CgroupError::InvalidLimits(
                        "a memory+swap limit needs a memory limit too".into(),
                    )),
                };
            }
            Some(m) if m < 0 => {
                return Err(CgroupError::InvalidLimits(format!(
                    "memory limit {m} is negative"
                )))
            }
            Some(m) => m,
        };
        let swap = match self.memory_swap {
            None | Some(0) => SwapLimit::Total(memory.saturating_mul(2)),
            Some(-1) => SwapLimit::Unlimited,
            Some(s) if s < memory => {
                return Err(CgroupError::InvalidLimits(format!(
                    "memory+swap limit {s} is smaller than the memory limit {memory} (use -1 for unlimited swap)"
                )))
            }
            Some(s) => SwapLimit::Total(s),
        };
        Ok(Some((memory, swap)))
    }
}

/// The mounted cgroup filesystem(s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// One unified hierarchy.
    V2 { root: PathBuf },
    /// One mount per controller (co-mounted controllers share a path), and on hybrid systems the
    /// cgroup2 mount without controllers. Containers do not join that one: it has nothing to
    /// limit or count, and a cgroup2 join always takes the kernel's global threadgroup lock
    /// (10-20 ms for the first one). Their cgroup namespace root there is the monitor's cgroup,
    /// so they see `0::/` all the same.
    V1 {
        controllers: BTreeMap<String, PathBuf>,
        unified: Option<PathBuf>,
    },
}

impl Hierarchy {
    /// v2 when /sys/fs/cgroup is a cgroup2 filesystem, otherwise the v1 mounts (and a cgroup2
    /// mount beside them): those of /proc/self/cgroup when each is at its conventional place
    /// under /sys/fs/cgroup (checked by statfs), else those found in /proc/self/mountinfo.
    /// `DOCK_CGROUP2_ROOT`, when set, names the cgroup2 mount to use alone.
    pub fn detect() -> Result<Hierarchy> {
        if let Some(root) = std::env::var_os(CGROUP2_ROOT_ENV).filter(|r| !r.is_empty()) {
            debug!(root = %Path::new(&root).display(), "cgroup v2 from {CGROUP2_ROOT_ENV}");
            return Ok(Hierarchy::V2 { root: root.into() });
        }
        let stat = nix::sys::statfs::statfs(DEFAULT_ROOT)
            .map_err(|e| CgroupError::Detect(format!("statfs {DEFAULT_ROOT}: {e}")))?;
        if stat.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC {
            debug!(root = DEFAULT_ROOT, "cgroup v2");
            return Ok(Hierarchy::V2 {
                root: PathBuf::from(DEFAULT_ROOT),
            });
        }
        // /proc/self/mountinfo grows with every running container's mounts, so it is read
        // only when the hierarchies are not where convention mounts them.
        if let Some(hierarchy) = fs::read_to_string("/proc/self/cgroup")
            .ok()
            .and_then(|text| Self::from_proc_cgroup(&text, Path::new(DEFAULT_ROOT), mount_kind))
        {
            debug!(?hierarchy, "cgroup hierarchy from /proc/self/cgroup");
            return Ok(hierarchy);
        }
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| CgroupError::Detect(format!("read /proc/self/mountinfo: {e}")))?;
        let hierarchy = Self::from_mountinfo(&mountinfo)?;
        debug!(?hierarchy, "cgroup hierarchy from mountinfo");
        Ok(hierarchy)
    }

    /// The v1 hierarchies this process is in (/proc/self/cgroup `text`), each at its
    /// conventional mount point under `root` (`cpu,cpuacct`, `systemd` for `name=systemd`),
    /// and the cgroup2 one at `root/unified`; `kind` tells which cgroup version a directory is
    /// the mount of (statfs). `None` when one is not where convention puts it, or there is no
    /// v1 hierarchy: then mountinfo says.
    fn from_proc_cgroup(
        text: &str,
        root: &Path,
        kind: impl Fn(&Path) -> Option<Version>,
    ) -> Option<Hierarchy> {
        let mut controllers = BTreeMap::new();
        let mut unified = None;
        for line in text.lines() {
            let mut fields = line.splitn(3, ':');
            let (Some(number), Some(names), Some(_path)) =
                (fields.next(), fields.next(), fields.next())
            else {
                return None;
            };
            if number == "0" {
                let dir = root.join("unified");
                if kind(&dir) != Some(Version::V2) {
                    return None;
                }
                unified = Some(dir);
                continue;
            }
            let known: Vec<&str> = names
                .split(',')
                .filter(|n| KNOWN_V1_CONTROLLERS.contains(n) || n.starts_with("name="))
                .collect();
            if known.is_empty() {
                continue;
            }
            let dir_name: Vec<&str> = names
                .split(',')
                .map(|n| n.strip_prefix("name=").unwrap_or(n))
                .collect();
            let dir_name = dir_name.join(",");
            if dir_name.is_empty() || dir_name.contains('/') || dir_name.starts_with('.') {
                return None;
            }
            let dir = root.join(dir_name);
            if kind(&dir) != Some(Version::V1) {
                return None;
            }
            for name in known {
                controllers.entry(name.to_string()).or_insert(dir.clone());
            }
        }
        if controllers.is_empty() {
            return None;
        }
        Some(Hierarchy::V1 {
            controllers,
            unified,
        })
    }

    /// Parses /proc/self/mountinfo text. v1 controller mounts win over a cgroup2 mount, which
    /// on hybrid systems carries no controllers.
    pub fn from_mountinfo(mountinfo: &str) -> Result<Hierarchy> {
        let mut controllers = BTreeMap::new();
        let mut unified = None;
        for line in mountinfo.lines() {
            let Some((before, after)) = line.split_once(" - ") else {
                continue;
            };
            let Some(mount_point) = before.split(' ').nth(4) else {
                continue;
            };
            let mut after = after.split(' ');
            let (Some(fs_type), Some(_source), Some(options)) =
                (after.next(), after.next(), after.next())
            else {
                continue;
            };
            let mount_point = PathBuf::from(unescape_mountinfo(mount_point));
            match fs_type {
                "cgroup" => {
                    for option in options.split(',') {
                        if KNOWN_V1_CONTROLLERS.contains(&option) || option.starts_with("name=") {
                            controllers
                                .entry(option.to_string())
                                .or_insert_with(|| mount_point.clone());
                        }
                    }
                }
                "cgroup2" if unified.is_none() => unified = Some(mount_point),
                _ => {}
            }
        }
        match (controllers.is_empty(), unified) {
            (false, unified) => Ok(Hierarchy::V1 {
                controllers,
                unified,
            }),
            (true, Some(root)) => Ok(Hierarchy::V2 { root }),
            (true, None) => Err(CgroupError::Detect(
                "no cgroup or cgroup2 mount in /proc/self/mountinfo".into(),
            )),
        }
    }

    pub fn version(&self) -> Version {
        match self {
            Hierarchy::V2 { .. } => Version::V2,
            Hierarchy::V1 { .. } => Version::V1,
        }
    }

    /// The hierarchy roots a container joins: each v1 mount once (co-mounted controllers share
    /// one), then the cgroup2 mount.
    fn roots(&self) -> Vec<PathBuf> {
        self.members().into_iter().map(|m| m.root).collect()
    }

    /// [`Self::roots`], each with a controller (or `name=...`) mounted there (`""` for cgroup2).
    fn members(&self) -> Vec<MemberRoot> {
        match self {
            Hierarchy::V2 { root } => vec![MemberRoot {
                controller: String::new(),
                root: root.clone(),
            }],
            Hierarchy::V1 {
                controllers,
                unified,
            } => {
                let mut members: Vec<MemberRoot> = Vec::new();
                for (name, path) in controllers {
                    if !members.iter().any(|m| &m.root == path) {
                        members.push(MemberRoot {
                            controller: name.clone(),
                            root: path.clone(),
                        });
                    }
                }
                if let Some(root) = unified {
                    members.push(MemberRoot {
                        controller: String::new(),
                        root: root.clone(),
                    });
                }
                members
            }
        }
    }

    fn controller(&self, name: &str) -> Option<&Path> {
        match self {
            Hierarchy::V1 { controllers, .. } => controllers.get(name).map(PathBuf::as_path),
            Hierarchy::V2 { .. } => None,
        }
    }

    /// Removes the (empty) per-root parent directory in every hierarchy; missing ones are fine.
    pub fn remove_parent(&self, parent: &str) -> Result<()> {
        validate_parent(parent)?;
        for root in self.roots() {
            let dir = root.join(parent);
            debug!(path = %dir.display(), "rmdir cgroup parent");
            match fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(source) => return Err(CgroupError::RemoveDir { path: dir, source }),
            }
        }
        Ok(())
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or("");
            if let Ok(value) = u8::from_str_radix(digits, 8) {
                out.push(value);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn validate_component(name: &str, whole: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "empty path component"
    } else if name == "." || name == ".." {
        "'.' and '..' are not allowed"
    } else if name.contains('\0') {
        "contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(CgroupError::InvalidName {
        name: whole.to_string(),
        reason,
    })
}

/// The parent may be nested (`a/b`) but must stay relative and below the root.
fn validate_parent(parent: &str) -> Result<()> {
    if parent.starts_with('/') {
        return Err(CgroupError::InvalidName {
            name: parent.to_string(),
            reason: "must be relative",
        });
    }
    parent
        .split('/')
        .try_for_each(|part| validate_component(part, parent))
}

fn validate_id(id: &str) -> Result<()> {
    if id.contains('/') {
        return Err(CgroupError::InvalidName {
            name: id.to_string(),
            reason: "must not contain '/'",
        });
    }
    validate_component(id, id)
}

fn write_file(path: &Path, value: &str) -> Result<()> {
    debug!(path = %path.display(), value, "cgroup write");
    fs::write(path, value).map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

/// Writes each of `values` to `path` in a write of its own, through one descriptor (files such
/// as devices.allow take one rule per write).
fn write_rules(path: &Path, values: &[String]) -> Result<()> {
    use std::io::Write;
    debug!(path = %path.display(), ?values, "cgroup writes");
    let failed = |value: &str, source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    };
    // (create and truncate as fs::write does: a no-op on cgroupfs, what a fixture needs)
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| failed(&values.join(", "), e))?;
    for value in values {
        file.write_all(value.as_bytes())
            .map_err(|e| failed(value, e))?;
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The value of `key` in a flat-keyed file such as memory.events or memory.oom_control.
fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// A hierarchy root as a container joins it.
#[derive(Debug, Clone)]
struct MemberRoot {
    /// A v1 controller (or `name=...`) mounted there, to find a process's place in
    /// /proc/PID/cgroup; `""` for cgroup2.
    controller: String,
    root: PathBuf,
}

/// A container's place in one hierarchy.
#[derive(Debug, Clone)]
struct Member {
    controller: String,
    /// The hierarchy's root.
    root: PathBuf,
    /// `<root>/<parent>/<id>`: the container's cgroup, which holds its limits.
    dir: PathBuf,
    /// Where its processes live: `dir`, or `dir/container` where limits are written in `dir`.
    procs: PathBuf,
}

impl Member {
    fn is_cgroup2(&self) -> bool {
        self.controller.is_empty()
    }

    /// The directories of this member, deepest first: the process leaf, unless `exact` says
    /// this value made the cgroup and none was made (a crashed monitor's may be there), and
    /// the container's cgroup.
    fn dirs_deepest_first(&self, exact: bool) -> Vec<PathBuf> {
        if exact && self.procs == self.dir {
            return vec![self.dir.clone()];
        }
        vec![self.dir.join(PROCESS_LEAF), self.dir.clone()]
    }
}

/// A container's cgroup, in every hierarchy used.
#[derive(Debug, Clone)]
pub struct Cgroup {
    version: Version,
    /// One per hierarchy, v1 mounts first, cgroup2 last.
    members: Vec<Member>,
    /// The directory holding the memory files (v1 memory controller, or the v2 dir).
    memory_dir: Option<PathBuf>,
    /// Made by this value, so `procs` of each member is exactly where processes are.
    exact: bool,
    /// v1 only: each controller (and `name=...`) with the container's cgroup in its mount.
    v1_dirs: BTreeMap<String, PathBuf>,
}

/// Which of a cgroup's hierarchies one step of its creation makes: the cgroup2 one must exist
/// before the container's init is cloned into it; the v1 ones may be made while the init builds
/// its root, as it joins them only after the spawn hook (see [`Creating`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Unified,
    V1,
}

impl Phase {
    fn covers(self, member: &Member) -> bool {
        member.is_cgroup2() == (self == Phase::Unified)
    }

    /// Whether this step writes the limits: into the v1 controllers' cgroups on a v1 (or
    /// hybrid) host, into the one cgroup2 directory on a v2 host.
    fn writes_limits(self, version: Version) -> bool {
        (version == Version::V2) == (self == Phase::Unified)
    }
}

/// A cgroup made up to what the clone of its first process needs (its cgroup2 directory, and
/// on a v2 host everything): [`Creating::finish`] makes the v1 directories and writes their
/// limits, in the spawn hook while the child builds its root.
#[derive(Debug)]
pub struct Creating {
    cgroup: Cgroup,
    hierarchy: Hierarchy,
    parent: String,
    limits: Limits,
    memory: Option<(i64, SwapLimit)>,
}

impl Creating {
    /// The cgroup as it will be once finished.
    pub fn cgroup(&self) -> &Cgroup {
        &self.cgroup
    }

    /// Makes the v1 directories and writes their limits. On failure nothing of the
    /// container's cgroup is left, in any hierarchy: what runs in it already (the init,
    /// cloned into the cgroup2 directory) is killed with it.
    pub fn finish(&self) -> Result<()> {
        self.make(Phase::V1)
    }

    fn make(&self, phase: Phase) -> Result<()> {
        let cgroup = &self.cgroup;
        let mut round = 1;
        loop {
            match cgroup
                .set_up(
                    &self.hierarchy,
                    &self.parent,
                    self.memory,
                    &self.limits,
                    phase,
                )
                .and_then(|()| cgroup.set_cpu_and_pids(&self.hierarchy, &self.limits, phase))
            {
                Ok(()) => return Ok(()),
                // Another container's cleanup removed the (then empty) parent between our mkdir
                // of it and of our directory: create both again.
                Err(CgroupError::CreateDir { path, source })
                    if source.kind() == ErrorKind::NotFound && round < CREATE_ROUNDS =>
                {
                    debug!(path = %path.display(), round, "cgroup parent vanished, creating again");
                    round += 1;
                }
                Err(e) => {
                    if let Err(cleanup) = cgroup.remove() {
                        warn!(error = %cleanup, "cleanup of a half-created cgroup failed");
                    }
                    return Err(e);
                }
            }
        }
    }
}

impl Cgroup {
    /// Creates `<parent>/<id>` in the detected hierarchy with the given limits.
    pub fn create(parent: &str, id: &str, limits: &Limits) -> Result<Cgroup> {
        Self::create_in(&Hierarchy::detect()?, parent, id, limits)
    }

    /// Begins creating `<parent>/<id>` in the detected hierarchy: what a clone into it needs
    /// is made now, the rest by [`Creating::finish`]. Limits are checked now.
    pub fn begin(parent: &str, id: &str, limits: &Limits) -> Result<Creating> {
        Self::begin_in(&Hierarchy::detect()?, parent, id, limits)
    }

    /// Names the cgroup of a container created earlier (for cleanup after a crashed monitor).
    /// If the hierarchy cannot be detected or the names are invalid, the cgroup is empty and
    /// `remove` has nothing to do.
    pub fn open(parent: &str, id: &str) -> Cgroup {
        match Hierarchy::detect() {
            Ok(hierarchy) => Self::open_in(&hierarchy, parent, id),
            Err(e) => {
                warn!(parent, id, error = %e, "cannot open cgroup");
                Cgroup::empty(Version::V1)
            }
        }
    }

    fn empty(version: Version) -> Cgroup {
        Cgroup {
            version,
            members: Vec::new(),
            memory_dir: None,
            exact: false,
            v1_dirs: BTreeMap::new(),
        }
    }

    pub fn open_in(hierarchy: &Hierarchy, parent: &str, id: &str) -> Cgroup {
        if let Err(e) = validate_parent(parent).and_then(|()| validate_id(id)) {
            warn!(error = %e, "cannot open cgroup");
            return Cgroup::empty(hierarchy.version());
        }
        let relative = Path::new(parent).join(id);
        let memory_dir = match hierarchy {
            Hierarchy::V2 { root } => Some(root.join(&relative)),
            Hierarchy::V1 { .. } => hierarchy.controller("memory").map(|r| r.join(&relative)),
        };
        let members = hierarchy
            .members()
            .into_iter()
            .map(|m| {
                let dir = m.root.join(&relative);
                Member {
                    controller: m.controller,
                    root: m.root,
                    procs: dir.clone(),
                    dir,
                }
            })
            .collect();
        let v1_dirs = match hierarchy {
            Hierarchy::V1 { controllers, .. } => controllers
                .iter()
                .map(|(name, root)| (name.clone(), root.join(&relative)))
                .collect(),
            Hierarchy::V2 { .. } => BTreeMap::new(),
        };
        Cgroup {
            version: hierarchy.version(),
            members,
            memory_dir,
            exact: false,
            v1_dirs,
        }
    }

    /// Creates the cgroup in `hierarchy`. On failure nothing of the container's cgroup is left
    /// (parents shared with other containers stay).
    pub fn create_in(
        hierarchy: &Hierarchy,
        parent: &str,
        id: &str,
        limits: &Limits,
    ) -> Result<Cgroup> {
        let creating = Self::begin_in(hierarchy, parent, id, limits)?;
        creating.finish()?;
        Ok(creating.cgroup)
    }

    /// As [`Cgroup::begin`], in `hierarchy`.
    pub fn begin_in(
        hierarchy: &Hierarchy,
        parent: &str,
        id: &str,
        limits: &Limits,
    ) -> Result<Creating> {
        validate_parent(parent)?;
        validate_id(id)?;
        let memory = limits.resolve()?;
        if memory.is_some()
            && hierarchy.version() == Version::V1
            && hierarchy.controller("memory").is_none()
        {
            return Err(CgroupError::MissingController("memory"));
        }
        // Where the cpu and pids limits go: those controllers' mounts (v1), the one dir (v2).
        let mut limit_roots: Vec<PathBuf> = Vec::new();
        for (wanted, controller) in [(limits.has_cpu(), "cpu"), (limits.pids.is_some(), "pids")] {
            if !wanted {
                continue;
            }
            match hierarchy {
                Hierarchy::V1 { .. } => match hierarchy.controller(controller) {
                    Some(root) => limit_roots.push(root.to_path_buf()),
                    None => return Err(CgroupError::MissingController(controller)),
                },
                Hierarchy::V2 { root } => limit_roots.push(root.clone()),
            }
        }
        let mut cgroup = Self::open_in(hierarchy, parent, id);
        cgroup.exact = true;
        if cgroup.members.is_empty() {
            return Err(CgroupError::Detect("no cgroup controller to use".into()));
        }
        // The memory limit is written in the container's cgroup, so its processes live below.
        if memory.is_some() {
            let memory_dir = cgroup.memory_dir.clone();
            for member in &mut cgroup.members {
                if Some(&member.dir) == memory_dir.as_ref() {
                    member.procs = member.dir.join(PROCESS_LEAF);
                }
            }
        }
        // So do the cpu and pids limits.
        for member in &mut cgroup.members {
            if limit_roots.contains(&member.root) {
                member.procs = member.dir.join(PROCESS_LEAF);
            }
        }
        let creating = Creating {
            cgroup,
            hierarchy: hierarchy.clone(),
            parent: parent.to_string(),
            limits: *limits,
            memory,
        };
        creating.make(Phase::Unified)?;
        Ok(creating)
    }

    /// Makes the directories of the members `phase` covers and, if it writes the limits,
    /// the memory and device limits.
    fn set_up(
        &self,
        hierarchy: &Hierarchy,
        parent: &str,
        memory: Option<(i64, SwapLimit)>,
        limits: &Limits,
        phase: Phase,
    ) -> Result<()> {
        if let (Hierarchy::V2 { root }, Phase::Unified) = (hierarchy, phase) {
            enable_v2_controllers(root, parent);
        }
        let cpuset = hierarchy.controller("cpuset");
        for member in self.members.iter().filter(|m| phase.covers(m)) {
            debug!(path = %member.procs.display(), "mkdir cgroup");
            fs::create_dir_all(&member.procs).map_err(|source| CgroupError::CreateDir {
                path: member.procs.clone(),
                source,
            })?;
            if cpuset == Some(member.root.as_path()) {
                inherit_cpuset(&member.root, &member.procs)?;
            }
        }
        if !phase.writes_limits(self.version) {
            return Ok(());
        }
        let devices = limits.devices;
        if let (Some((memory, swap)), Some(dir)) = (memory, &self.memory_dir) {
            match self.version {
                Version::V1 => set_v1_memory(dir, memory, swap)?,
                Version::V2 => set_v2_memory(dir, memory, swap)?,
            }
        }
        if let Some(root) = hierarchy.controller("devices") {
            let dir = self
                .dir_under(root)
                .ok_or(CgroupError::MissingController("devices"))?;
            for (file, rules) in devices::v1_rules(devices) {
                write_rules(&dir.join(file), &rules)?;
            }
        } else if let (Hierarchy::V2 { .. }, DeviceAccess::Default) = (hierarchy, devices) {
            let dir = &self.members[0].dir;
            // (A fixture directory is no cgroup to attach to.)
            if !is_cgroupfs(dir) {
                return Ok(());
            }
            debug!(path = %dir.display(), "attaching the device filter");
            devices::attach_filter(dir).map_err(|source| CgroupError::DeviceFilter {
                path: dir.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// `--cpus`, `--cpu-shares` and `--pids-limit`, in v1's or v2's files, if `phase` writes
    /// the limits.
    fn set_cpu_and_pids(&self, hierarchy: &Hierarchy, limits: &Limits, phase: Phase) -> Result<()> {
        if !phase.writes_limits(self.version) {
            return Ok(());
        }
        let dir_of = |controller: &str| -> Option<PathBuf> {
            match hierarchy {
                Hierarchy::V2 { .. } => self.members.first().map(|m| m.dir.clone()),
                Hierarchy::V1 { .. } => hierarchy
                    .controller(controller)
                    .and_then(|root| self.dir_under(root))
                    .map(Path::to_path_buf),
            }
        };
        if limits.has_cpu() {
            let dir = dir_of("cpu").ok_or(CgroupError::MissingController("cpu"))?;
            match self.version {
                Version::V1 => {
                    if let Some(shares) = limits.cpu_shares {
                        write_file(&dir.join("cpu.shares"), &shares.to_string())?;
                    }
                    if let Some(quota) = limits.cpu_quota_us() {
                        write_file(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                        write_file(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                    }
                }
                Version::V2 => {
                    if let Some(shares) = limits.cpu_shares {
                        write_file(&dir.join("cpu.weight"), &cpu_weight(shares).to_string())?;
                    }
                    if let Some(quota) = limits.cpu_quota_us() {
                        write_file(&dir.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
                    }
                }
            }
        }
        if let Some(pids) = limits.pids {
            let dir = dir_of("pids").ok_or(CgroupError::MissingController("pids"))?;
            write_file(&dir.join("pids.max"), &pids.to_string())?;
        }
        Ok(())
    }

    /// The container's cgroup in the hierarchy mounted at `root`.
    fn dir_under(&self, root: &Path) -> Option<&Path> {
        self.members
            .iter()
            .find(|m| m.root == root)
            .map(|m| m.dir.as_path())
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// The container's cgroup in the v1 hierarchy of `controller` (`cpuacct`, `freezer`, ...).
    pub fn v1_dir(&self, controller: &str) -> Option<&Path> {
        self.v1_dirs.get(controller).map(PathBuf::as_path)
    }

    /// The container's cgroup in the cgroup2 hierarchy (the only one on v2, beside the v1
    /// mounts on a hybrid machine).
    pub fn v2_dir(&self) -> Option<&Path> {
        self.members
            .iter()
            .find(|m| m.is_cgroup2())
            .map(|m| m.dir.as_path())
    }

    /// Where the freezer of this container is: v1's freezer controller where the machine
    /// mounts one, else cgroup2's `cgroup.freeze`.
    pub fn freezer(&self) -> Option<Freezer> {
        if let Some(dir) = self.v1_dir("freezer") {
            return Some(Freezer::V1(dir.to_path_buf()));
        }
        self.v2_dir().map(|dir| Freezer::V2(dir.to_path_buf()))
    }

    /// The container's cgroup in each hierarchy (where its limits are), v1 mounts first.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.members.iter().map(|m| m.dir.clone()).collect()
    }

    /// Where the container's processes live in each hierarchy, in the order of [`Self::paths`].
    pub fn process_paths(&self) -> Vec<PathBuf> {
        self.members.iter().map(|m| m.procs.clone()).collect()
    }

    /// Moves `pid` (the whole process) into the cgroup in every hierarchy.
    pub fn add_pid(&self, pid: i32) -> Result<()> {
        self.add_pid_to(pid, |_| true)
    }

    fn add_pid_to(&self, pid: i32, which: impl Fn(&Member) -> bool) -> Result<()> {
        if pid <= 0 {
            return Err(CgroupError::InvalidPid(pid));
        }
        let value = pid.to_string();
        for member in self.members.iter().filter(|m| which(m)) {
            write_file(&member.procs.join("cgroup.procs"), &value)?;
        }
        Ok(())
    }

    /// Whether the kernel OOM killer killed a process of this cgroup. v1 counts a kill only
    /// in the cgroup of the process killed, so the process leaf is asked too.
    pub fn oom_killed(&self) -> bool {
        let Some(dir) = &self.memory_dir else {
            return false;
        };
        let file = match self.version {
            Version::V1 => "memory.oom_control",
            Version::V2 => "memory.events",
        };
        [dir.join(PROCESS_LEAF), dir.clone()].iter().any(|dir| {
            match fs::read_to_string(dir.join(file)) {
                Ok(text) => keyed_value(&text, "oom_kill").is_some_and(|count| count > 0),
                Err(e) => {
                    debug!(path = %dir.display(), error = %e, "no oom information");
                    false
                }
            }
        })
    }

    /// The pids in the cgroup, from every hierarchy (missing directories count as empty).
    pub fn pids(&self) -> Result<Vec<i32>> {
        let mut pids = Vec::new();
        for dir in self
            .members
            .iter()
            .flat_map(|m| m.dirs_deepest_first(self.exact))
        {
            let path = dir.join("cgroup.procs");
            let text = match fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(source) => return Err(CgroupError::Read { path, source }),
            };
            for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                if !pids.contains(&pid) {
                    pids.push(pid);
                }
            }
        }
        Ok(pids)
    }

    /// Kills what is left in the cgroup and removes its directories (the parent stays). Missing
    /// ones are fine, so this can run more than once.
    pub fn remove(&self) -> Result<()> {
        // A paused container's processes act on SIGKILL only once thawed (v1's freezer).
        if let Some(freezer) = self.freezer().filter(Freezer::is_frozen) {
            debug!(?freezer, "thawing before the kill");
            freezer.thaw()?;
        }
        self.kill_all()?;
        for dir in self
            .members
            .iter()
            .flat_map(|m| m.dirs_deepest_first(self.exact))
        {
            remove_dir_when_idle(&dir)?;
        }
        Ok(())
    }

    /// What the container's first process needs to join this cgroup by itself, without the
    /// kernel's global lock that moving it in from outside takes: the cgroup2 directory to be
    /// born in, and each v1 `tasks` file to move its own thread with, named below its
    /// hierarchy's root (the v1 directories may not exist yet, see [`Creating`]).
    pub fn joining(&self) -> Result<sysinit::Cgroups> {
        let mut cgroups = sysinit::Cgroups::default();
        for member in &self.members {
            if member.is_cgroup2() {
                cgroups.unified = Some(open_dir(&member.procs)?);
            } else {
                let path = member.procs.join("tasks");
                let relative = path
                    .strip_prefix(&member.root)
                    .map_err(|_| {
                        CgroupError::Detect(format!("{} outside its hierarchy", path.display()))
                    })?
                    .to_path_buf();
                cgroups.v1_tasks.push(sysinit::V1Tasks {
                    dir: open_dir(&member.root)?,
                    relative,
                    path,
                });
            }
        }
        Ok(cgroups)
    }

    /// As [`Self::joining`], for a process that joins a running container (`exec`): in each
    /// hierarchy where the container's processes live in its [`PROCESS_LEAF`] (a limit is
    /// written in its cgroup), there.
    pub fn joining_running(&self) -> Result<sysinit::Cgroups> {
        let mut running = self.clone();
        for member in &mut running.members {
            let leaf = member.dir.join(PROCESS_LEAF);
            if leaf.is_dir() {
                member.procs = leaf;
            }
        }
        running.joining()
    }

    fn kill_all(&self) -> Result<()> {
        // Every process of the container was born in its cgroup2 cgroup and cannot leave the
        // subtree, so that one says whether anything is left and kills it all at once.
        if let Some(member) = self.members.iter().find(|m| m.is_cgroup2()) {
            if kill_subtree(&member.dir)? {
                return Ok(());
            }
        }
        let first = self
            .members
            .first()
            .map(|m| m.dir.clone())
            .unwrap_or_default();
        // The monitor never joins the container's cgroup; were it found there, it must not
        // kill itself (its directory then stays busy and removing it reports that).
        let me = std::process::id() as i32;
        for _ in 0..KILL_ROUNDS {
            let mut pids = self.pids()?;
            pids.retain(|pid| *pid != me);
            if pids.is_empty() {
                return Ok(());
            }
            for pid in pids {
                debug!(pid, "SIGKILL process left in cgroup");
                match kill(Pid::from_raw(pid), Signal::SIGKILL) {
                    Ok(()) | Err(nix::Error::ESRCH) => {}
                    Err(source) => {
                        return Err(CgroupError::Kill {
                            path: first,
                            pid,
                            source,
                        })
                    }
                }
            }
            thread::sleep(ROUND_PAUSE);
        }
        Err(CgroupError::StillPopulated { path: first })
    }
}

/// A container's freezer: `pause` stops every process of its cgroup (subtree included) where
/// it is, `unpause` lets them go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freezer {
    /// The v1 freezer controller's cgroup: `freezer.state` FROZEN / THAWED.
    V1(PathBuf),
    /// A cgroup2 cgroup: `cgroup.freeze` 1 / 0, `frozen 1` in `cgroup.events` once done.
    V2(PathBuf),
}

/// How many times freezing is checked (and asked again) before giving up, 10 ms apart.
const FREEZE_ROUNDS: u32 = 500;

impl Freezer {
    /// Freezes the cgroup and returns once every process in it is frozen.
    pub fn freeze(&self) -> Result<()> {
        self.set(true)
    }

    /// Thaws the cgroup.
    pub fn thaw(&self) -> Result<()> {
        self.set(false)
    }

    fn set(&self, frozen: bool) -> Result<()> {
        match self {
            Freezer::V1(dir) => {
                let state = dir.join("freezer.state");
                let want = if frozen { "FROZEN" } else { "THAWED" };
                for _ in 0..FREEZE_ROUNDS {
                    // A new task can join while FREEZING: writing FROZEN again retries it.
                    write_file(&state, want)?;
                    if read_file(&state)?.trim() == want {
                        return Ok(());
                    }
                    thread::sleep(ROUND_PAUSE);
                }
                Err(CgroupError::Freeze {
                    path: state,
                    state: want,
                })
            }
            Freezer::V2(dir) => {
                let file = dir.join("cgroup.freeze");
                write_file(&file, if frozen { "1" } else { "0" })?;
                let events = dir.join("cgroup.events");
                for _ in 0..FREEZE_ROUNDS {
                    match fs::read_to_string(&events) {
                        Ok(text) if keyed_value(&text, "frozen") == Some(u64::from(frozen)) => {
                            return Ok(())
                        }
                        Ok(_) => thread::sleep(ROUND_PAUSE),
                        // A fixture or an older kernel: the write is all there is.
                        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                        Err(source) => {
                            return Err(CgroupError::Read {
                                path: events,
                                source,
                            })
                        }
                    }
                }
                Err(CgroupError::Freeze {
                    path: file,
                    state: if frozen { "frozen" } else { "thawed" },
                })
            }
        }
    }

    /// Whether the cgroup is frozen (or freezing) now.
    pub fn is_frozen(&self) -> bool {
        match self {
            Freezer::V1(dir) => {
                fs::read_to_string(dir.join("freezer.state")).is_ok_and(|s| s.trim() != "THAWED")
            }
            Freezer::V2(dir) => {
                fs::read_to_string(dir.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
            }
        }
    }
}

/// Kills every process in the cgroup2 cgroup `dir` and its descendants (`cgroup.kill`) and
/// waits until none is left. `false` when this cannot be told or done that way (no such
/// files: a fixture, an older kernel, a cgroup that was never made) or the processes take
/// longer than [`KILL_ROUNDS`] short pauses to go, for the caller to go through the pids
/// instead (with its longer pauses).
fn kill_subtree(dir: &Path) -> Result<bool> {
    let events = dir.join("cgroup.events");
    let populated = || -> Result<Option<bool>> {
        match fs::read_to_string(&events) {
            Ok(text) => Ok(keyed_value(&text, "populated").map(|n| n > 0)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CgroupError::Read {
                path: events.clone(),
                source,
            }),
        }
    };
    match populated()? {
        None => return Ok(false),
        Some(false) => return Ok(true),
        Some(true) => {}
    }
    let kill_file = dir.join("cgroup.kill");
    if !kill_file.exists() {
        return Ok(false);
    }
    write_file(&kill_file, "1")?;
    for _ in 0..KILL_ROUNDS {
        if populated()? != Some(true) {
            return Ok(true);
        }
        thread::sleep(Duration::from_millis(1));
    }
    debug!(path = %dir.display(), "cgroup still populated after cgroup.kill, going through its pids");
    Ok(false)
}

fn open_dir(path: &Path) -> Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
        .map(OwnedFd::from)
        .map_err(|source| CgroupError::Read {
            path: path.to_path_buf(),
            source,
        })
}

/// A new cpuset cgroup starts without cpus and memory nodes and cannot take processes: each
/// empty level from the hierarchy root down to `dir` gets its parent's.
fn inherit_cpuset(root: &Path, dir: &Path) -> Result<()> {
    let mut levels: Vec<&Path> = dir.ancestors().take_while(|p| *p != root).collect();
    levels.reverse();
    for level in levels {
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let own = level.join(file);
            match fs::read_to_string(&own) {
                Ok(text) if text.trim().is_empty() => {}
                // Set already, or a fixture directory without cpuset files.
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(source) => return Err(CgroupError::Read { path: own, source }),
            }
            let above = level.parent().unwrap_or(root).join(file);
            write_file(&own, read_file(&above)?.trim())?;
        }
    }
    Ok(())
}

/// Enables memory and pids for children at every level from the root down to `parent`, as far
/// as the kernel offers them there (a level with processes of its own refuses, which is left to
/// the limit writes to report).
fn enable_v2_controllers(root: &Path, parent: &str) {
    let mut level = root.to_path_buf();
    let mut levels = vec![level.clone()];
    for part in parent.split('/') {
        level = level.join(part);
        levels.push(level.clone());
    }
    for dir in levels {
        if let Err(source) = fs::create_dir_all(&dir) {
            warn!(path = %dir.display(), error = %source, "cannot create cgroup parent");
            return;
        }
        // Without cgroup.controllers (a fixture) assume both are available.
        let available: Vec<&str> = match fs::read_to_string(dir.join("cgroup.controllers")) {
            Ok(text) => V2_CONTROLLERS
                .iter()
                .copied()
                .filter(|c| text.split_whitespace().any(|a| a == *c))
                .collect(),
            Err(_) => V2_CONTROLLERS.to_vec(),
        };
        if available.is_empty() {
            continue;
        }
        let value = available
            .iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(" ");
        if let Err(e) = write_file(&dir.join("cgroup.subtree_control"), &value) {
            warn!(error = %e, "cannot enable cgroup controllers");
        }
    }
}

/// runc's conversion of v1 `cpu.shares` (2..262144) to v2 `cpu.weight` (1..10000).
pub fn cpu_weight(shares: i64) -> i64 {
    let shares = shares.clamp(MIN_CPU_SHARES, MAX_CPU_SHARES);
    1 + ((shares - 2) * 9999) / 262_142
}

/// Whether this machine accounts swap in its memory cgroups, so a memory+swap limit can be
/// enforced: v1's `memory.memsw.limit_in_bytes`, v2's `memory.swap.max` (looked for in the
/// cgroup of this process, or one below the root).
pub fn swap_limit_supported() -> bool {
    match Hierarchy::detect() {
        Ok(Hierarchy::V1 { controllers, .. }) => controllers
            .get("memory")
            .is_some_and(|root| root.join("memory.memsw.limit_in_bytes").exists()),
        Ok(Hierarchy::V2 { root }) => {
            let own = fs::read_to_string("/proc/self/cgroup")
                .ok()
                .and_then(|text| {
                    text.lines()
                        .find_map(|l| l.strip_prefix("0::/").map(str::to_string))
                })
                .filter(|p| !p.is_empty());
            let mut candidates: Vec<PathBuf> = own.into_iter().map(|p| root.join(p)).collect();
            candidates.extend(
                fs::read_dir(&root)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir()),
            );
            candidates
                .iter()
                .any(|dir| dir.join("memory.swap.max").exists())
        }
        Err(_) => false,
    }
}

fn read_i64(path: &Path) -> Result<i64> {
    let text = read_file(path)?;
    text.trim().parse().map_err(|e| CgroupError::Read {
        path: path.to_path_buf(),
        source: io::Error::new(ErrorKind::InvalidData, format!("{text:?}: {e}")),
    })
}

/// memory.limit_in_bytes, memory.soft_limit_in_bytes and, with swap accounting,
/// memory.memsw.limit_in_bytes. The kernel keeps memsw >= memory at every step, so the order of
/// the two writes depends on the current memsw limit.
fn set_v1_memory(dir: &Path, memory: i64, swap: SwapLimit) -> Result<()> {
    let limit = dir.join("memory.limit_in_bytes");
    let memsw = dir.join("memory.memsw.limit_in_bytes");
    let memory_value = memory.to_string();
    let swap_value = match swap {
        SwapLimit::Unlimited => "-1".to_string(),
        SwapLimit::Total(total) => total.to_string(),
    };
    if memsw.exists() {
        let current_memsw = read_i64(&memsw).unwrap_or(i64::MAX);
        if memory <= current_memsw {
            write_file(&limit, &memory_value)?;
            write_file(&memsw, &swap_value)?;
        } else {
            write_file(&memsw, &swap_value)?;
            write_file(&limit, &memory_value)?;
        }
    } else {
        debug!(path = %memsw.display(), "no swap accounting, memory+swap limit not set");
        write_file(&limit, &memory_value)?;
    }
    write_file(&dir.join("memory.soft_limit_in_bytes"), &memory_value)
}

/// memory.max and, where swap is accounted, memory.swap.max (the swap part alone).
fn set_v2_memory(dir: &Path, memory: i64, swap: SwapLimit) -> Result<()> {
    write_file(&dir.join("memory.max"), &memory.to_string())?;
    let swap_max = dir.join("memory.swap.max");
    if swap_max.exists() {
        let value = match swap {
            SwapLimit::Unlimited => "max".to_string(),
            SwapLimit::Total(total) => (total - memory).to_string(),
        };
        write_file(&swap_max, &value)?;
    } else {
        debug!(path = %swap_max.display(), "no swap accounting, swap limit not set");
    }
    Ok(())
}

fn remove_dir_when_idle(dir: &Path) -> Result<()> {
    for _ in 0..RMDIR_ROUNDS {
        debug!(path = %dir.display(), "rmdir cgroup");
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            // A just-killed task can keep the cgroup busy for a moment.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => thread::sleep(ROUND_PAUSE),
            // A fixture directory holds the regular files our writes created; cgroupfs
            // directories never hold removable files, so this branch only serves plain dirs.
            Err(e) if e.kind() == ErrorKind::DirectoryNotEmpty && !is_cgroupfs(dir) => {
                return fs::remove_dir_all(dir).map_err(|source| CgroupError::RemoveDir {
                    path: dir.to_path_buf(),
                    source,
                });
            }
            Err(source) => {
                return Err(CgroupError::RemoveDir {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
    }
    Err(CgroupError::StillPopulated {
        path: dir.to_path_buf(),
    })
}

/// Which cgroup version's filesystem `dir` is (statfs), if any.
fn mount_kind(dir: &Path) -> Option<Version> {
    let fs_type = nix::sys::statfs::statfs(dir).ok()?.filesystem_type();
    if fs_type == nix::sys::statfs::CGROUP_SUPER_MAGIC {
        Some(Version::V1)
    } else if fs_type == nix::sys::statfs::CGROUP2_SUPER_MAGIC {
        Some(Version::V2)
    } else {
        None
    }
}

fn is_cgroupfs(dir: &Path) -> bool {
    match nix::sys::statfs::statfs(dir) {
        Ok(stat) => {
            let fs_type = stat.filesystem_type();
            fs_type == nix::sys::statfs::CGROUP2_SUPER_MAGIC
                || fs_type == nix::sys::statfs::CGROUP_SUPER_MAGIC
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_cgroup_kill_falls_back_to_the_pids() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        fs::write(dir.join("cgroup.kill"), "").unwrap();
        // Populated for good: the fast rounds give up and leave it to kill_all's pid loop.
        fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        assert!(!kill_subtree(dir).unwrap());
        assert_eq!(fs::read_to_string(dir.join("cgroup.kill")).unwrap(), "1");
        fs::write(dir.join("cgroup.events"), "populated 0\nfrozen 0\n").unwrap();
        assert!(kill_subtree(dir).unwrap());
        fs::remove_file(dir.join("cgroup.events")).unwrap();
        assert!(!kill_subtree(dir).unwrap());
    }

    #[test]
    fn limits_follow_docker_semantics() {
        let limits = |memory, memory_swap| Limits {
            memory,
            memory_swap,
            ..Limits::default()
        };
        assert_eq!(limits(None, None).resolve().unwrap(), None);
        assert_eq!(
            limits(Some(100), None).resolve().unwrap(),
            Some((100, SwapLimit::Total(200)))
        );
        assert_eq!(
            limits(Some(100), Some(-1)).resolve().unwrap(),
            Some((100, SwapLimit::Unlimited))
        );
        assert_eq!(
            limits(Some(100), Some(150)).resolve().unwrap(),
            Some((100, SwapLimit::Total(150)))
        );
        let err = limits(Some(100), Some(50)).resolve().unwrap_err();
        assert!(err.to_string().contains("50"), "{err}");
        assert!(limits(None, Some(50)).resolve().is_err());
        assert!(limits(Some(-5), None).resolve().is_err());
    }

    #[test]
    fn mountinfo_hybrid_gives_v1_with_unified() {
        let text = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 31 0:39 / /sys/fs/cgroup/my\\040pids rw,relatime - cgroup cgroup rw,pids
";
        let hierarchy = Hierarchy::from_mountinfo(text).unwrap();
        let Hierarchy::V1 {
            controllers,
            unified,
        } = &hierarchy
        else {
            panic!("expected v1, got {hierarchy:?}");
        };
        assert_eq!(
            controllers.keys().collect::<Vec<_>>(),
            ["cpu", "cpuacct", "memory", "name=systemd", "pids"]
        );
        assert_eq!(
            controllers["cpuacct"],
            Path::new("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(controllers["pids"], Path::new("/sys/fs/cgroup/my pids"));
        assert_eq!(
            unified.as_deref(),
            Some(Path::new("/sys/fs/cgroup/unified"))
        );
        // Every mount once (cpu and cpuacct share one), named ones too, then the cgroup2 mount.
        assert_eq!(
            hierarchy.roots(),
            [
                "/sys/fs/cgroup/cpu,cpuacct",
                "/sys/fs/cgroup/memory",
                "/sys/fs/cgroup/systemd",
                "/sys/fs/cgroup/my pids",
                "/sys/fs/cgroup/unified"
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn proc_cgroup_at_conventional_mounts_gives_what_mountinfo_does() {
        let text = "\
12:cpu,cpuacct:/user.slice
11:memory:/a:b
10:name=systemd:/init.scope
9:debug:/
0::/init.scope
";
        let root = Path::new("/sys/fs/cgroup");
        let mounts = |dir: &Path| match dir.file_name()?.to_str()? {
            "cpu,cpuacct" | "memory" | "systemd" => Some(Version::V1),
            "unified" => Some(Version::V2),
            _ => None,
        };
        let hierarchy = Hierarchy::from_proc_cgroup(text, root, mounts).unwrap();
        let mountinfo = "\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        assert_eq!(hierarchy, Hierarchy::from_mountinfo(mountinfo).unwrap());
        // Not a cgroup mount where convention puts it, or the wrong version: mountinfo says.
        let no_unified = |dir: &Path| mounts(dir).filter(|v| *v == Version::V1);
        assert_eq!(Hierarchy::from_proc_cgroup(text, root, no_unified), None);
        let memory_elsewhere = |dir: &Path| mounts(dir).filter(|_| !dir.ends_with("memory"));
        assert_eq!(
            Hierarchy::from_proc_cgroup(text, root, memory_elsewhere),
            None
        );
        assert_eq!(Hierarchy::from_proc_cgroup("0::/\n", root, mounts), None);
        assert_eq!(Hierarchy::from_proc_cgroup("garbage\n", root, mounts), None);
    }

    /// On this machine, when it is not pure v2, the cheap detection finds what mountinfo does.
    #[test]
    fn proc_cgroup_detection_agrees_with_mountinfo_here() {
        if mount_kind(Path::new(DEFAULT_ROOT)) == Some(Version::V2) {
            return;
        }
        let text = fs::read_to_string("/proc/self/cgroup").unwrap();
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
        if let Some(fast) = Hierarchy::from_proc_cgroup(&text, Path::new(DEFAULT_ROOT), mount_kind)
        {
            assert_eq!(fast, Hierarchy::from_mountinfo(&mountinfo).unwrap());
        }
    }

    #[test]
    fn mountinfo_pure_v2_and_none() {
        let text = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            Hierarchy::from_mountinfo(text).unwrap(),
            Hierarchy::V2 {
                root: PathBuf::from("/sys/fs/cgroup")
            }
        );
        let err = Hierarchy::from_mountinfo("1 0 0:1 / / rw - ext4 /dev/sda rw\n").unwrap_err();
        assert!(err.to_string().contains("mountinfo"), "{err}");
    }

    #[test]
    fn names_are_checked() {
        let hierarchy = Hierarchy::V2 {
            root: PathBuf::from("/nonexistent-root"),
        };
        for (parent, id) in [
            ("dock", "../x"),
            ("dock", "a/b"),
            ("/abs", "x"),
            ("", "x"),
            ("dock", ""),
        ] {
            let err = Cgroup::create_in(&hierarchy, parent, id, &Limits::default()).unwrap_err();
            assert!(
                matches!(err, CgroupError::InvalidName { .. }),
                "{parent} {id}: {err}"
            );
        }
    }

    #[test]
    fn cpu_and_pids_limits_land_in_v1_and_v2_files() {
        let limits = Limits {
            pids: Some(20),
            nano_cpus: Some(1_500_000_000),
            cpu_shares: Some(512),
            ..Limits::default()
        };
        assert_eq!(limits.cpu_quota_us(), Some(150_000));
        assert_eq!(cpu_weight(2), 1);
        assert_eq!(cpu_weight(1024), 39);
        assert_eq!(cpu_weight(262_144), 10_000);

        let tmp = tempfile::tempdir().unwrap();
        let v2 = Hierarchy::V2 {
            root: tmp.path().join("v2"),
        };
        let cg = Cgroup::create_in(&v2, "dock", "c1", &limits).unwrap();
        let dir = tmp.path().join("v2/dock/c1");
        assert_eq!(
            fs::read_to_string(dir.join("cpu.max")).unwrap(),
            "150000 100000"
        );
        assert_eq!(fs::read_to_string(dir.join("cpu.weight")).unwrap(), "20");
        assert_eq!(fs::read_to_string(dir.join("pids.max")).unwrap(), "20");
        // The processes live below the files holding the limits.
        assert_eq!(cg.process_paths(), [dir.join(PROCESS_LEAF)]);

        let root = |name: &str| tmp.path().join("v1").join(name);
        let v1 = Hierarchy::V1 {
            controllers: [
                ("cpu", "cpu"),
                ("cpuacct", "cpu"),
                ("pids", "pids"),
                ("memory", "memory"),
            ]
            .into_iter()
            .map(|(c, dir)| (c.to_string(), root(dir)))
            .collect(),
            unified: None,
        };
        let cg = Cgroup::create_in(&v1, "dock", "c2", &limits).unwrap();
        let cpu = root("cpu").join("dock/c2");
        assert_eq!(fs::read_to_string(cpu.join("cpu.shares")).unwrap(), "512");
        assert_eq!(
            fs::read_to_string(cpu.join("cpu.cfs_quota_us")).unwrap(),
            "150000"
        );
        assert_eq!(
            fs::read_to_string(cpu.join("cpu.cfs_period_us")).unwrap(),
            "100000"
        );
        let pids = root("pids").join("dock/c2");
        assert_eq!(fs::read_to_string(pids.join("pids.max")).unwrap(), "20");
        let procs = cg.process_paths();
        assert!(procs.contains(&cpu.join(PROCESS_LEAF)), "{procs:?}");
        assert!(procs.contains(&pids.join(PROCESS_LEAF)), "{procs:?}");
        // No memory limit: the memory cgroup holds the processes itself.
        assert!(procs.contains(&root("memory").join("dock/c2")), "{procs:?}");

        let no_pids = Hierarchy::V1 {
            controllers: [("memory".to_string(), root("memory"))]
                .into_iter()
                .collect(),
            unified: None,
        };
        let err = Cgroup::create_in(&no_pids, "dock", "c3", &limits).unwrap_err();
        assert!(
            matches!(err, CgroupError::MissingController("cpu")),
            "{err}"
        );
    }

    #[test]
    fn freezers_write_v1_and_v2_files() {
        let tmp = tempfile::tempdir().unwrap();
        let v1 = Freezer::V1(tmp.path().to_path_buf());
        v1.freeze().unwrap();
        assert_eq!(
            fs::read_to_string(tmp.path().join("freezer.state")).unwrap(),
            "FROZEN"
        );
        assert!(v1.is_frozen());
        v1.thaw().unwrap();
        assert!(!v1.is_frozen());
        let v2 = Freezer::V2(tmp.path().to_path_buf());
        v2.freeze().unwrap();
        assert_eq!(
            fs::read_to_string(tmp.path().join("cgroup.freeze")).unwrap(),
            "1"
        );
        assert!(v2.is_frozen());
        fs::write(tmp.path().join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        v2.thaw().unwrap();
        assert!(!v2.is_frozen());

        // Which one a container uses: v1's freezer where mounted, else its cgroup2 cgroup.
        let hybrid = Hierarchy::V1 {
            controllers: [("freezer".to_string(), PathBuf::from("/cg/freezer"))]
                .into_iter()
                .collect(),
            unified: Some(PathBuf::from("/cg/unified")),
        };
        let cg = Cgroup::open_in(&hybrid, "dock", "c1");
        assert_eq!(
            cg.freezer(),
            Some(Freezer::V1("/cg/freezer/dock/c1".into()))
        );
        assert_eq!(cg.v2_dir(), Some(Path::new("/cg/unified/dock/c1")));
        let v2 = Hierarchy::V2 {
            root: PathBuf::from("/cg2"),
        };
        let cg = Cgroup::open_in(&v2, "dock", "c1");
        assert_eq!(cg.freezer(), Some(Freezer::V2("/cg2/dock/c1".into())));
        assert_eq!(cg.v1_dir("freezer"), None);
    }

    #[test]
    fn keyed_values() {
        let text = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed_value(text, "oom_kill"), Some(3));
        assert_eq!(keyed_value(text, "oom"), None);
    }
}
