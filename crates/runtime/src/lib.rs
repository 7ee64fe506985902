//! Containers: config and state, overlay storage, cgroups, the per-container monitor.
//!
//! Every operation works directly on the state directory; no daemon has to run. A running
//! container is owned by its monitor (see [`monitor`]), a detached `dock` process that talks the
//! [`attach`] protocol on `containers/<id>/attach.sock`.
//!
//! A monitor that died (kill -9, reboot) is noticed by the next command reading the container
//! (its pid is gone or has another start time): the container's processes are killed, its
//! rootfs unmounted and its cgroup removed, and it is recorded as exited with code 137
//! ("killed", as Docker reports a SIGKILLed container).

pub mod attach;
pub mod broken;
pub mod cgroup;
pub mod check;
pub mod container;
pub mod copy;
pub mod devices;
pub mod etcfiles;
pub mod events;
pub mod exec;
pub mod exitrec;
pub mod humanize;
pub mod imageconfig;
pub mod initlayer;
mod listindex;
pub mod logs;
pub mod monitor;
pub mod overlay;
pub mod procs;
pub mod prune;
pub mod queue;
pub mod security;
pub mod stats;
pub mod top;
pub mod volumes;

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use graph::Graph;
use tagstore::TagStore;

pub use attach::{Client, Event, Hello};
pub use broken::BrokenContainer;
pub use container::{
    Config, Container, HostConfig, Listed, NetworkSettings, PortBinding, RestartPolicy, Row, State,
};

/// The hidden subcommand that runs a monitor: `dock --root ROOT __monitor ID`, with the
/// starter's socket as fd 3.
pub const MONITOR_COMMAND: &str = "__monitor";
/// The descriptor a monitor finds its starter's socket on.
pub const STARTER_FD: i32 = 3;

/// Default environment of every container (Docker 0.1.0's).
pub const DEFAULT_ENV: [&str; 2] = [
    "HOME=/",
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
];

/// Exit code recorded for a container whose monitor vanished: it was killed.
pub const GHOST_EXIT_CODE: i32 = 137;

/// Optional network settings of a root, `{"bridge": "br0", "subnet": "10.10.0.0/24"}`; what
/// it leaves out comes from [`netmgr::NetConfig::for_root`].
pub const NET_CONFIG_FILE: &str = "config.json";

/// How a container is networked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NetworkMode {
    /// A veth on the root's bridge, an address, and the published ports.
    #[default]
    Bridge,
    /// Only `lo`, in the container's own network namespace.
    None,
    /// The host's network namespace: no veth, no address, no published ports.
    Host,
}

impl std::str::FromStr for NetworkMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<NetworkMode> {
        match s {
            "bridge" | "default" => Ok(NetworkMode::Bridge),
            "none" => Ok(NetworkMode::None),
            "host" => Ok(NetworkMode::Host),
            other => Err(Error::Network(format!(
                "unsupported network mode {other:?}: use bridge, host or none"
            ))),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },
    #[error("mount {}: {message}", path.display())]
    Mount { path: PathBuf, message: String },
    #[error("no such container: {0}")]
    NoSuchContainer(String),
    /// The container is there but cannot be read (see [`BrokenContainer`]): `rm -f` removes it.
    #[error("container {id} is broken: {source}")]
    Broken {
        id: String,
        #[source]
        source: Box<Error>,
    },
    #[error("container name or id prefix {0} is ambiguous")]
    Ambiguous(String),
    #[error("no such image: {0}")]
    NoSuchImage(String),
    /// The image is there but cannot be read: a damaged tag store or image json.
    #[error("image {name}: {source}")]
    Image {
        name: String,
        #[source]
        source: tagstore::Error,
    },
    #[error(
        "conflict: the container name \"/{name}\" is already in use by container \"{holder}\"; \
         you have to remove (or rename) that container to be able to reuse that name"
    )]
    NameInUse { name: String, holder: String },
    #[error("invalid container name {0}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName(String),
    #[error("conflict: container {0} is running: stop it before removing it, or use -f")]
    Running(String),
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("container {0} is already running")]
    AlreadyRunning(String),
    #[error("container {0} is already paused")]
    AlreadyPaused(String),
    #[error("container {0} is not paused")]
    NotPaused(String),
    /// `rm` without `-f` of a paused container.
    #[error("conflict: container {0} is paused and must be unpaused first")]
    RemovePaused(String),
    /// `exec` into a paused container (dockerd's words).
    #[error("Container {0} is paused, unpause the container before exec")]
    Paused(String),
    /// `top`: options refused, or `ps` failed or printed what cannot be read.
    #[error(transparent)]
    Top(#[from] top::TopError),
    #[error(transparent)]
    Stats(#[from] stats::StatsError),
    #[error("no command specified")]
    NoCommand,
    /// A memory limit below [`MIN_MEMORY`]; Docker's words, which tools match.
    #[error("Minimum memory limit allowed is 6MB")]
    MemoryTooLow(i64),
    #[error("the working directory '{0}' is invalid, it needs to be an absolute path")]
    InvalidWorkingDir(String),
    #[error("invalid signal: {0}")]
    InvalidSignal(String),
    #[error("invalid port {0:?}: expected PORT[/tcp|udp|sctp] with PORT 1-65535")]
    InvalidPort(String),
    /// An image's config that does not parse.
    #[error("image config of {id}: {source}")]
    ImageConfig {
        id: String,
        #[source]
        source: serde_json::Error,
    },
    /// The container could not start; `code` is what `dock run` exits with (125, 126, 127).
    #[error("{message}")]
    Start { code: u8, message: String },
    #[error("monitor of container {id}: {message}")]
    Monitor { id: String, message: String },
    #[error("image store: {0}")]
    Graph(String),
    #[error("archive: {0}")]
    Archive(String),
    #[error("cgroup: {0}")]
    Cgroup(String),
    #[error("{0}")]
    Network(String),
    #[error("invalid network config {}: {message}", path.display())]
    NetworkConfig { path: PathBuf, message: String },
    /// A bad `--privileged`/`--cap-add`/`--cap-drop`/`--security-opt` combination or profile.
    #[error(transparent)]
    Security(#[from] security::Error),
    /// A bad `--restart`, in Docker's words.
    #[error("invalid restart policy: {0}")]
    RestartPolicy(String),
    /// A resource limit (`--cpus`, `--memory-swap`, ...) Docker refuses, in its words, or one
    /// this machine cannot enforce.
    #[error("{0}")]
    InvalidResources(String),
    /// A bad `--dns`, `--dns-search` or `--add-host`.
    #[error("{0}")]
    InvalidOption(String),
    /// A prune filter dock does not know or cannot read.
    #[error(
        "invalid filter {0:?}: prunes filter by until=TIME and label=KEY[=VALUE] (or label!=)"
    )]
    InvalidFilter(String),
    /// Volumes and mounts: bad specs, unknown or busy volumes, their files.
    #[error(transparent)]
    Volume(#[from] volumes::Error),
    /// `cp`: a path that is missing, refused or unreadable.
    #[error(transparent)]
    Copy(#[from] copy::Error),
}

impl Error {
    pub fn io(path: &Path, source: io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What `run`/`create` asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub image: String,
    pub cmd: Vec<String>,
    pub name: Option<String>,
    pub hostname: Option<String>,
    pub user: String,
    pub env: Vec<String>,
    pub memory: i64,
    pub memory_swap: i64,
    pub tty: bool,
    pub open_stdin: bool,
    pub detach: bool,
    pub port_specs: Vec<String>,
    pub auto_remove: bool,
    /// Privileges and confinement; checked here, before anything exists.
    pub host_config: HostConfig,
    /// `--entrypoint` (see [`imageconfig::Overrides::entrypoint`]); `None`: the image's.
    pub entrypoint: Option<Vec<String>>,
    /// `-w`; empty: the image's.
    pub working_dir: String,
    /// `--expose` (normalized `80/tcp`); the `-p` ports are added by create.
    pub exposed_ports: Vec<String>,
    /// `--stop-signal`; empty: the image's, else SIGTERM.
    pub stop_signal: String,
    pub labels: std::collections::BTreeMap<String, String>,
    // -- run flags --
    /// `--stop-timeout` (seconds, -1: forever); `None`: 10.
    pub stop_timeout: Option<i64>,
    /// Anonymous volumes (`-v /path`, the API's `Config.Volumes`).
    pub volumes: Vec<String>,
}

/// What `commit` records.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    pub repository: Option<String>,
    pub tag: Option<String>,
    pub comment: String,
    pub author: String,
}

/// Make state directory `root` private to its owner (root), creating it if needed, and close
/// what an older dock left open (0755): `containers/` and then each container directory in
/// it, `graph/` and then each image directory in it, `net/`. Layers keep images' setuid
/// files and device nodes, container directories their configs and logs: no other host user
/// may reach them. Layers themselves are not walked; the directories above them are enough.
/// A root that is private already costs one stat per directory named here.
pub fn secure_root(root: &Path) -> Result<()> {
    use graph::perms::{ensure_private, ensure_private_tree, tighten, tighten_tree};
    ensure_private(root).map_err(|e| Error::io(root, e))?;
    let containers = root.join("containers");
    ensure_private_tree(&containers).map_err(|e| Error::io(&containers, e))?;
    let graph = root.join("graph");
    tighten_tree(&graph).map_err(|e| Error::io(&graph, e))?;
    let net = root.join("net");
    tighten(&net).map_err(|e| Error::io(&net, e))?;
    Ok(())
}

/// The monitor of a container that `run` is about to create, started first so that its own
/// start (exec, loading the binary) overlaps with creating the container. It waits for the
/// hello that [`Runtime::start_with`] sends; dropped instead, it is killed before it touched
/// anything, and the drop returns once it is gone.
pub struct Starter {
    /// What the monitor was started with: the state directory, whether it logs, and the id
    /// the container is to have.
    args: monitor::Args,
    /// The binary it runs.
    exe: PathBuf,
    /// The monitor's pid, a child of ours.
    pid: i32,
    /// Until the hello is sent.
    client: Option<Client>,
}

impl Starter {
    /// A starter for a new container of state directory `root`, started before that is even
    /// opened: `dock run` starts it before it parses its command line, so that the monitor's
    /// start overlaps with that too. Used only where it [`Starter::serves`] the runtime.
    pub fn ahead(root: &Path, debug: bool) -> Result<Starter> {
        let args = monitor::Args {
            root: root.to_path_buf(),
            debug,
            id: graph::generate_id(),
        };
        spawn_starter(Path::new(SELF_EXE), args)
    }

    /// Whether this starter's monitor is the one `rt` would start now for its container: the
    /// same binary and arguments (state directory, logging).
    pub fn serves(&self, rt: &Runtime) -> bool {
        self.exe == rt.monitor_exe && self.args == rt.monitor_args(self.args.id.clone())
    }

    /// The id the container is to have.
    pub fn id(&self) -> &str {
        &self.args.id
    }
}

impl Drop for Starter {
    fn drop(&mut self) {
        if self.client.take().is_some() {
            // Before its hello a monitor has done nothing but wait for it (and make a network
            // namespace, its own, which goes with it): killed, not waited for through its whole
            // start (the connection closing would end it too).
            // SAFETY: a signal to our own child, not reaped yet, so its pid is still its own.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            // Reaped here, so that a failed `run` leaves no process behind, not even a zombie.
            SPAWNED_MONITORS
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .retain(|&pid| pid != self.pid);
            let mut status = 0;
            // SAFETY: waitpid on our own child, which no reaper waits for any more.
            unsafe { libc::waitpid(self.pid, &mut status, 0) };
        }
    }
}

/// Starts the monitor `exe` with `args`; it waits for a hello on the starter's connection.
fn spawn_starter(exe: &Path, args: monitor::Args) -> Result<Starter> {
    let id = &args.id;
    let (ours, theirs) =
        UnixStream::pair().map_err(|e| monitor_error(id, format!("socketpair: {e}")))?;
    tracing::debug!(%id, exe = %exe.display(), "spawning monitor");
    let pid = spawn_monitor(exe, &args.to_command_line(), &theirs)
        .map_err(|e| monitor_error(id, format!("spawn {}: {e}", exe.display())))?;
    Ok(Starter {
        args,
        exe: exe.to_path_buf(),
        pid,
        client: Some(Client::from_stream(ours)),
    })
}

/// This executable: what runs monitors unless told otherwise ([`Runtime::set_monitor_exe`]).
const SELF_EXE: &str = "/proc/self/exe";

/// The containers of one state directory.
pub struct Runtime {
    root: PathBuf,
    containers: PathBuf,
    monitor_exe: PathBuf,
}

impl Runtime {
    /// Open the containers of state directory `root`, creating it if needed and making it
    /// private first ([`secure_root`]).
    pub fn open(root: impl Into<PathBuf>) -> Result<Runtime> {
        let root = root.into();
        secure_root(&root)?;
        let containers = root.join("containers");
        Ok(Runtime {
            root,
            containers,
            monitor_exe: PathBuf::from(SELF_EXE),
        })
    }

    /// The `dock` binary that runs monitors (default: this executable).
    pub fn set_monitor_exe(&mut self, exe: impl Into<PathBuf>) {
        self.monitor_exe = exe.into();
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn graph(&self) -> Result<Graph> {
        Graph::open(self.root.join("graph")).map_err(|e| Error::Graph(e.to_string()))
    }

    pub fn tags(&self) -> Result<TagStore> {
        TagStore::open(self.root.join("repositories")).map_err(|e| Error::Graph(e.to_string()))
    }

    /// The cgroup parent of this root's containers: `dock` for /var/lib/dock, otherwise
    /// `dock-<first 8 hex of sha256(root)>`, so test roots never collide.
    pub fn cgroup_parent(&self) -> String {
        cgroup_parent_for(&self.root)
    }

    pub fn paths(&self, id: &str) -> container::Paths {
        container::Paths::new(&self.containers, id)
    }

    /// The ids of the containers directory's entries; what crashed removals and creates left
    /// is swept on the way.
    fn ids(&self) -> Result<Vec<String>> {
        self.ids_and_sweeps().map(|(ids, _)| ids)
    }

    /// [`Runtime::ids`], and whether the directory held anything to sweep (removed, or
    /// being removed or created, as it was read).
    fn ids_and_sweeps(&self) -> Result<(Vec<String>, bool)> {
        let entries = fs::read_dir(&self.containers).map_err(|e| Error::io(&self.containers, e))?;
        let (mut ids, mut swept) = (Vec::new(), false);
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&self.containers, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if graph::is_full_id(&name) {
                ids.push(name);
            } else if name.starts_with(REMOVED_PREFIX) {
                // Left by a process that died while deleting it (or being deleted right now).
                delete_removed(&entry.path());
                swept = true;
            } else if name.starts_with(CREATING_PREFIX) {
                self.sweep_creating(&entry.path());
                swept = true;
            }
        }
        Ok((ids, swept))
    }

    /// The store lock ([`graph::storelock`]) of this root.
    pub fn store_lock_path(&self) -> PathBuf {
        graph::store_lock_path(&self.root.join("graph"))
    }

    /// Removes `dir`, a `.creating-<id>` staging dir, when its creator is gone: creators hold
    /// the store lock for as long as it exists, so it is stale when the lock is free (or held
    /// by this thread, which is not creating while it lists).
    fn sweep_creating(&self, dir: &Path) {
        match graph::StoreLock::try_acquire(&self.store_lock_path()) {
            Ok(Some(_store)) => {
                tracing::debug!(dir = %dir.display(), "removing a crashed create's staging");
                delete_removed(dir);
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "store lock unavailable; staging left"),
        }
    }

    /// Takes container `id`'s directory out of the store in one step (a rename, so no command
    /// ever sees half a container), for [`delete_removed`] to delete.
    pub fn take_out(&self, id: &str) -> Result<PathBuf> {
        let dir = self.paths(id).dir;
        let removed = self.removed_dir(id);
        fs::rename(&dir, &removed).map_err(|e| Error::io(&dir, e))?;
        Ok(removed)
    }

    /// Where [`Runtime::take_out`] puts container `id`'s directory.
    fn removed_dir(&self, id: &str) -> PathBuf {
        self.containers.join(format!("{REMOVED_PREFIX}{id}"))
    }

    /// Deletes what is left of container `id` after [`Runtime::take_out`], as the client
    /// of a `--rm` run does (see [`attach::Hello::deletes_removed`]). Whatever another
    /// process deletes meanwhile counts as deleted.
    pub fn delete_taken_out(&self, id: &str) {
        delete_removed(&self.removed_dir(id));
    }

    /// Reads a container by full id, noticing a vanished monitor.
    pub fn load(&self, id: &str) -> Result<Container> {
        let paths = self.paths(id);
        let c = match container::load(&paths.config()) {
            Ok(c) => c,
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NoSuchContainer(id.to_string()))
            }
            Err(e) => return Err(e),
        };
        self.checked(c)
    }

    /// [`Runtime::load`]'s read for listings: `config.json` opened relative to `containers`,
    /// a descriptor of the containers directory (no walk of the root's path per container),
    /// and read into `buf`, which the caller reuses.
    pub(crate) fn read_config_at(
        &self,
        containers: &fs::File,
        id: &str,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        use nix::fcntl::{openat, OFlag};
        use std::io::Read;
        let relative = format!("{id}/{}", container::CONFIG_FILE);
        let opened = openat(
            containers,
            relative.as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        );
        let path = || self.paths(id).config();
        let mut file = match opened {
            Ok(fd) => fs::File::from(fd),
            Err(nix::errno::Errno::ENOENT) => return Err(Error::NoSuchContainer(id.to_string())),
            Err(errno) => return Err(Error::io(&path(), io::Error::from(errno))),
        };
        buf.clear();
        // Through `take`: a plain read_to_end would first stat the file for its size.
        Read::by_ref(&mut file)
            .take(u64::MAX)
            .read_to_end(buf)
            .map_err(|e| Error::io(&path(), e))?;
        Ok(())
    }

    /// `c` as read, or marked exited when it says running but its monitor is gone.
    pub(crate) fn checked(&self, c: Container) -> Result<Container> {
        if !is_ghost(&c) {
            return Ok(c);
        }
        self.reap_ghost(&c.id)
    }

    /// Every container, newest first; broken ones are left out (see
    /// [`Runtime::list_with_broken`]).
    pub fn list(&self) -> Result<Vec<Container>> {
        Ok(self.list_with_broken()?.0.into_iter().map(|c| *c).collect())
    }

    /// By full id, name, or unique id prefix.
    /// A broken container (full id or unique prefix) is [`Error::Broken`].
    pub fn get(&self, name: &str) -> Result<Container> {
        let broken = |id: &str, e: Error| Error::Broken {
            id: id.to_string(),
            source: Box::new(e),
        };
        if graph::is_full_id(name) {
            return self.load(name).map_err(|e| match e {
                e if broken::is_broken(&e) => broken(name, e),
                e => e,
            });
        }
        let (all, mut unreadable) = self.list_with_broken::<Container>()?;
        if let Some(c) = all.iter().find(|c| c.name == name) {
            return Ok(Container::clone(c));
        }
        let matches = |id: &str| !name.is_empty() && id.starts_with(name);
        let found: Vec<&Container> = all
            .iter()
            .map(|c| &**c)
            .filter(|c| matches(&c.id))
            .collect();
        let found_broken: Vec<usize> = (0..unreadable.len())
            .filter(|&i| matches(&unreadable[i].id))
            .collect();
        match (found.as_slice(), found_broken.as_slice()) {
            ([c], []) => Ok((*c).clone()),
            ([], [i]) => {
                let b = unreadable.swap_remove(*i);
                Err(broken(&b.id, b.error))
            }
            ([], []) => Err(Error::NoSuchContainer(name.to_string())),
            _ => Err(Error::Ambiguous(name.to_string())),
        }
    }

    /// Containers (ids) created from image `image_id`.
    pub fn images_in_use(&self, image_id: &str) -> Result<Vec<String>> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|c| c.image == image_id)
            .map(|c| c.id)
            .collect())
    }

    /// The network settings of this root: `<root>/config.json` over the per-root defaults.
    pub fn net_config(&self) -> Result<netmgr::NetConfig> {
        #[derive(serde::Deserialize)]
        struct File {
            bridge: Option<String>,
            subnet: Option<String>,
        }
        /// Every key the file may hold: the network's, and the registry settings the
        /// registry crate reads from the same file. Any other is a typo, and an error.
        const KNOWN_KEYS: [&str; 5] = [
            "bridge",
            "subnet",
            "default-registry",
            "registry-mirrors",
            "insecure-registries",
        ];
        // The canonical path, so `--root x` and `--root /abs/x` share one network.
        let root = fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone());
        let mut cfg = netmgr::NetConfig::for_root(&root);
        let path = root.join(NET_CONFIG_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(cfg),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let invalid = |message: String| Error::NetworkConfig {
            path: path.clone(),
            message,
        };
        let keys: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
        if let Some(unknown) = keys.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
            return Err(invalid(format!(
                "unknown key {unknown:?}, expected one of {}",
                KNOWN_KEYS.join(", ")
            )));
        }
        let file: File = serde_json::from_value(serde_json::Value::Object(keys))
            .map_err(|e| invalid(e.to_string()))?;
        if let Some(bridge) = file.bridge {
            cfg.bridge = bridge;
        }
        if let Some(subnet) = file.subnet {
            let net: ipnet::Ipv4Net = subnet
                .parse()
                .map_err(|_| invalid(format!("subnet {subnet:?} is not an IPv4 CIDR")))?;
            cfg.subnet = net.trunc();
        }
        Ok(cfg)
    }

    /// Opens (and sets up when needed) this root's bridge network.
    pub fn network(&self) -> Result<netmgr::Network> {
        netmgr::Network::open(self.net_config()?).map_err(|e| Error::Network(e.to_string()))
    }

    /// The run defaults of `image`: the `config` of the first image config in its history,
    /// or, for an image an older dock committed (no config entry), the command of the
    /// committed container. `None`: no defaults at all.
    pub fn image_defaults(
        &self,
        graph: &Graph,
        image: &graph::Image,
    ) -> Result<Option<oci_spec::image::Config>> {
        let graph_err = |e: graph::Error| Error::Graph(e.to_string());
        for entry in graph.history(&image.id).map_err(graph_err)? {
            if let Some(bytes) = graph.config(&entry.id).map_err(graph_err)? {
                return Ok(imageconfig::parse(&entry.id, &bytes)?.config().clone());
            }
            if let Some(legacy) = entry
                .container_config
                .as_ref()
                .and_then(imageconfig::legacy_defaults)
            {
                return Ok(Some(legacy));
            }
        }
        Ok(None)
    }

    pub fn create(&self, opts: CreateOptions) -> Result<Container> {
        self.create_with_network(opts, NetworkMode::Bridge)
    }

    /// `create` with a network mode; `-p` specs are checked here, before anything exists.
    pub fn create_with_network(
        &self,
        opts: CreateOptions,
        network: NetworkMode,
    ) -> Result<Container> {
        self.create_as(graph::generate_id(), opts, network)
    }

    /// `create_with_network` of the container whose monitor `starter` already is (`run`):
    /// the container gets the starter's id.
    pub fn create_for(
        &self,
        starter: &Starter,
        opts: CreateOptions,
        network: NetworkMode,
    ) -> Result<Container> {
        self.create_as(starter.args.id.clone(), opts, network)
    }

    fn create_as(
        &self,
        id: String,
        opts: CreateOptions,
        network: NetworkMode,
    ) -> Result<Container> {
        // Below this the container's own start (sysinit, before exec) would be OOM-killed.
        if opts.memory != 0 && opts.memory < MIN_MEMORY {
            return Err(Error::MemoryTooLow(opts.memory));
        }
        for spec in &opts.port_specs {
            spec.parse::<netmgr::PortSpec>()
                .map_err(|e| Error::Network(e.to_string()))?;
        }
        if network == NetworkMode::None
            && (!opts.port_specs.is_empty() || opts.host_config.publish_all_ports)
        {
            return Err(Error::Network(
                "conflicting options: ports cannot be published with --network none".into(),
            ));
        }
        security::validate(&self.root, &opts.host_config)?;
        let mut opts = opts;
        check_run_flags(&mut opts, network)?;
        for ip in &opts.host_config.dns {
            etcfiles::check_dns(ip)?;
        }
        for spec in &opts.host_config.extra_hosts {
            etcfiles::parse_extra_host(spec)?;
        }
        let graph = self.graph()?;
        let tags = self.tags()?;
        let image = tags.lookup(&graph, &opts.image).map_err(|e| match e {
            tagstore::Error::NoSuchImage(_)
            | tagstore::Error::DanglingTag { .. }
            | tagstore::Error::Graph(graph::Error::NoSuchImage(_) | graph::Error::InvalidId(_)) => {
                Error::NoSuchImage(opts.image.clone())
            }
            // A damaged tag store or image json: said as it is, naming the file.
            e => Error::Image {
                name: opts.image.clone(),
                source: e,
            },
        })?;
        let defaults = self.image_defaults(&graph, &image)?;
        // Anonymous volumes: the user's (`-v /path`) and the image's `Volumes`, as Docker
        // merges them. Every mount is checked before anything exists; made real below.
        let mut anonymous: std::collections::BTreeSet<String> =
            opts.volumes.iter().cloned().collect();
        if let Some(image_volumes) = defaults.as_ref().and_then(|d| d.volumes().clone()) {
            anonymous.extend(image_volumes);
        }
        let mount_requests = volumes::requests(
            &opts.host_config.binds,
            &opts.host_config.mounts,
            &opts.host_config.tmpfs,
            &anonymous,
        )?;
        let mut exposed_ports = opts.exposed_ports.clone();
        exposed_ports.extend(imageconfig::spec_ports(&opts.port_specs));
        let merged = imageconfig::merge(
            &imageconfig::Overrides {
                cmd: opts.cmd.clone(),
                entrypoint: opts.entrypoint.clone(),
                env: opts.env.clone(),
                working_dir: opts.working_dir.clone(),
                user: opts.user.clone(),
                exposed_ports,
                stop_signal: opts.stop_signal.clone(),
                labels: opts.labels.clone(),
            },
            defaults.as_ref(),
        )?;
        let argv = merged.argv();
        if let Some(name) = &opts.name {
            validate_name(name)?;
        }
        let config = Config {
            hostname: opts
                .hostname
                .clone()
                .unwrap_or_else(|| id[..12].to_string()),
            user: merged.user,
            memory: opts.memory,
            memory_swap: opts.memory_swap,
            detach: opts.detach,
            port_specs: opts.port_specs.clone(),
            tty: opts.tty,
            open_stdin: opts.open_stdin,
            env: merged.env,
            cmd: merged.cmd,
            image: opts.image.clone(),
            network_disabled: network == NetworkMode::None,
            entrypoint: merged.entrypoint,
            working_dir: merged.working_dir,
            exposed_ports: merged.exposed_ports,
            stop_signal: merged.stop_signal,
            labels: merged.labels,
            stop_timeout: opts.stop_timeout,
            volumes: anonymous,
        };

        // Under the store lock until the container is in place: an `rmi` of its image runs
        // wholly before (the image is gone, checked here) or after (it sees this container).
        let _store = graph
            .lock_store()
            .map_err(|e| Error::Graph(e.to_string()))?;
        if !graph.exists(&image.id) {
            return Err(Error::NoSuchImage(opts.image.clone()));
        }
        // Names are checked and the directory created under one lock, so two creates with
        // the same name cannot both succeed.
        let _names = container::Lock::acquire(&self.containers.join(NAMES_LOCK))?;
        let existing = self.names()?;
        let name = match opts.name {
            Some(name) => {
                if let Some((holder, _)) = existing.iter().find(|(_, n)| *n == name) {
                    return Err(Error::NameInUse {
                        name,
                        holder: holder.clone(),
                    });
                }
                name
            }
            None => generate_name(&id, |n| existing.iter().any(|(_, name)| name == n)),
        };
        // Under the volume store's lock until the container is saved: a volume `rm` that
        // checks who uses it sees this container or finds no volume to take. A container
        // without mounts leaves the store alone.
        let store = if mount_requests.is_empty() {
            None
        } else {
            Some(self.volumes()?)
        };
        let _volumes_lock = store.as_ref().map(|s| s.lock()).transpose()?;
        let mounts = match &store {
            Some(store) => volumes::materialize(store, &mount_requests)?,
            None => Vec::new(),
        };
        let c = Container {
            id: id.clone(),
            created: Utc::now(),
            path: argv[0].clone(),
            args: argv[1..].to_vec(),
            config,
            state: State::default(),
            image: image.id.clone(),
            network_settings: NetworkSettings::default(),
            name,
            auto_remove: opts.auto_remove,
            monitor: None,
            init: None,
            host_config: opts.host_config.clone(),
            restart_count: 0,
            has_been_manually_stopped: false,
            monitor_lost: false,
            mounts,
        };
        // Built in `.creating-<id>` and renamed into place whole: a crash leaves no half
        // container, only a staging dir the next listing removes (see `ids`).
        let paths = container::Paths {
            dir: self.containers.join(format!("{CREATING_PREFIX}{id}")),
        };
        let target = self.paths(&id).dir;
        tracing::debug!(%id, dir = %paths.dir.display(), "creating container");
        let result = (|| {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&paths.dir)
                .map_err(|e| Error::io(&paths.dir, e))?;
            for dir in [paths.upper(), paths.work(), paths.rootfs(), paths.init()] {
                fs::DirBuilder::new()
                    .mode(0o755)
                    .create(&dir)
                    .map_err(|e| Error::io(&dir, e))?;
            }
            let layers = graph
                .layers(&image.id)
                .map_err(|e| Error::Graph(e.to_string()))?;
            initlayer::prepare(&paths.init(), &layers)?;
            container::save(&paths.config(), &c)?;
            fs::rename(&paths.dir, &target).map_err(|e| Error::io(&target, e))
        })();
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&paths.dir);
            if let Some(store) = &store {
                for m in c.mounts.iter().filter(|m| m.anonymous) {
                    let _ = store.delete(&m.name);
                }
            }
            return Err(e);
        }
        events::container(&self.root, &c, "create");
        Ok(c)
    }

    /// Starts the container's monitor and waits until the command runs. The returned client
    /// is registered with the monitor before the command started, so it misses no output.
    pub fn start(&self, id: &str, hello: Hello) -> Result<Client> {
        self.start_as(id, hello, false)
    }

    /// Starts a container its restart policy brings back (`dock daemon`): counted in its
    /// `RestartCount`, where a user's start resets that count.
    pub fn start_by_policy(&self, id: &str) -> Result<Client> {
        self.start_as(id, Hello::default(), true)
    }

    fn start_as(&self, id: &str, hello: Hello, by_policy: bool) -> Result<Client> {
        self.ready_to_start(id, by_policy)?;
        let starter = self.spawn_starter(id.to_string())?;
        self.hand_over(starter, hello)
    }

    /// The monitor of a container about to be created (see [`Starter`]), with a new id for
    /// it: pass it to [`Runtime::create_for`], then [`Runtime::start_with`].
    pub fn starter(&self) -> Result<Starter> {
        self.spawn_starter(graph::generate_id())
    }

    /// [`Runtime::start`] of the container `starter` was spawned for.
    pub fn start_with(&self, starter: Starter, hello: Hello) -> Result<Client> {
        self.ready_to_start(&starter.args.id, false)?;
        self.hand_over(starter, hello)
    }

    /// Refuses a running container; counts or resets its restarts as the start demands.
    fn ready_to_start(&self, id: &str, by_policy: bool) -> Result<()> {
        let c = self.load(id)?;
        if c.state.running {
            return Err(Error::AlreadyRunning(c.name));
        }
        if by_policy || c.restart_count != 0 || c.has_been_manually_stopped {
            let paths = self.paths(id);
            let _lock = container::Lock::acquire(&paths.lock())?;
            let mut c = container::load(&paths.config())?;
            if by_policy {
                c.restart_count += 1;
            } else {
                c.restart_count = 0;
                c.has_been_manually_stopped = false;
            }
            container::save(&paths.config(), &c)?;
        }
        Ok(())
    }

    /// Starts the monitor of container `id`; it waits for our hello.
    fn spawn_starter(&self, id: String) -> Result<Starter> {
        spawn_starter(&self.monitor_exe, self.monitor_args(id))
    }

    /// What the monitor of container `id` is started with. With `--debug` it logs its steps to
    /// containers/<id>/monitor.log.
    fn monitor_args(&self, id: String) -> monitor::Args {
        monitor::Args {
            root: self.root.clone(),
            debug: tracing::enabled!(tracing::Level::DEBUG),
            id,
        }
    }

    /// Sends the starter's monitor its hello, which starts the container, and waits until
    /// the container's command runs (or could not be started).
    fn hand_over(&self, mut starter: Starter, hello: Hello) -> Result<Client> {
        let mut client = starter
            .client
            .take()
            .expect("a starter is handed over once");
        let id = starter.args.id.as_str();
        client
            .send(attach::Kind::Hello, &hello.encode())
            .map_err(|e| monitor_error(id, format!("hello: {e}")))?;
        match client.next_event() {
            Ok(Some(Event::Started { .. })) => Ok(client),
            Ok(Some(Event::StartError { code, message })) => {
                // Returns once the monitor released everything and exits.
                client.drain();
                Err(Error::Start { code, message })
            }
            Ok(Some(other)) => Err(monitor_error(
                id,
                format!("unexpected {other:?} before start"),
            )),
            Ok(None) => Err(monitor_error(
                id,
                "exited before starting the container".into(),
            )),
            Err(e) => Err(monitor_error(id, e.to_string())),
        }
    }

    /// Connects to a running container's monitor.
    pub fn attach(&self, id: &str, hello: Hello) -> Result<Client> {
        let c = self.load(id)?;
        if !c.state.running {
            return Err(Error::NotRunning(c.name));
        }
        Client::connect(&self.paths(id).socket(), hello)
    }

    /// Sends `signo` to the container's first process; SIGKILL also waits for the exit.
    pub fn kill(&self, id: &str, signo: i32) -> Result<()> {
        let c = self.load(id)?;
        if !c.state.running {
            return Err(Error::NotRunning(c.name));
        }
        self.thaw_if_paused(&c)?;
        let socket = self.paths(id).socket();
        let mut client = match Client::connect(&socket, Hello::default()) {
            Ok(client) => client,
            Err(e) => {
                // The monitor may just be exiting; recheck.
                let c = self.load(id)?;
                if !c.state.running {
                    return Ok(());
                }
                return Err(e);
            }
        };
        tracing::debug!(%id, signo, "signalling container");
        events::record(
            &self.root,
            &events::Message::container(&c, "kill").with("signal", signo),
        );
        // Returns once the monitor sent the signal (or the container is gone), so signals
        // sent one after another reach the container in that order.
        match client
            .signal_acked(signo, SIGNAL_ACK_PATIENCE)
            .map_err(|e| Error::io(&socket, e))?
        {
            Some(0) | None => {}
            Some(errno) => {
                tracing::debug!(%id, signo, errno, "the monitor could not send the signal")
            }
        }
        if signo == libc::SIGKILL {
            client.wait_exit().map_err(|e| Error::io(&socket, e))?;
        }
        Ok(())
    }

    /// The container's stop signal (`--stop-signal`, the image's `StopSignal`), else SIGTERM,
    /// then SIGKILL after `timeout`; returns once the container exited.
    pub fn stop(&self, id: &str, timeout: Duration) -> Result<()> {
        self.stop_with(id, None, timeout)
    }

    /// `stop` with `signal` instead of the container's stop signal when given.
    pub fn stop_with(&self, id: &str, signal: Option<i32>, timeout: Duration) -> Result<()> {
        let c = self.load(id)?;
        if !c.state.running {
            return Ok(());
        }
        self.thaw_if_paused(&c)?;
        let signal = signal.unwrap_or_else(|| stop_signal(&c.config));
        let socket = self.paths(id).socket();
        let mut client = match Client::connect(&socket, Hello::default()) {
            Ok(client) => client,
            Err(e) => {
                if !self.load(id)?.state.running {
                    return Ok(());
                }
                return Err(e);
            }
        };
        let io_err = |e| Error::io(&socket, e);
        tracing::debug!(%id, signal, "sending the stop signal");
        events::record(
            &self.root,
            &events::Message::container(&c, "kill").with("signal", signal),
        );
        let stopped = || events::container(&self.root, &c, "stop");
        if client
            .signal_acked(signal, SIGNAL_ACK_PATIENCE)
            .map_err(io_err)?
            .is_none()
        {
            // Exited already: what is left is the monitor closing the connection.
            client.drain();
            stopped();
            return Ok(());
        }
        if !timeout.is_zero() {
            client
                .stream()
                .set_read_timeout(Some(timeout))
                .map_err(io_err)?;
            match client.wait_exit() {
                Ok(_) => {
                    stopped();
                    return Ok(());
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(io_err(e)),
            }
        }
        tracing::debug!(%id, "container ignored its stop signal, sending SIGKILL");
        client.stream().set_read_timeout(None).map_err(io_err)?;
        client.signal(libc::SIGKILL).map_err(io_err)?;
        client.wait_exit().map_err(io_err)?;
        stopped();
        Ok(())
    }

    /// Blocks until the container is not running; its exit code.
    pub fn wait(&self, id: &str) -> Result<i32> {
        let c = self.load(id)?;
        if !c.state.running {
            return Ok(c.state.exit_code);
        }
        let socket = self.paths(id).socket();
        if let Ok(mut client) = Client::connect(&socket, Hello::default()) {
            if let Ok(Some(code)) = client.wait_exit() {
                return Ok(code);
            }
        }
        // The monitor went away without telling us: the state (or a ghost check) knows. One
        // that could not save the exit (a full disk) may still be on its way out: once it is
        // gone, the ghost check reads the exit from its record.
        let now = self.load(id);
        let now = match &now {
            Ok(c) if c.state.running => match c.monitor {
                Some(m) if procs::wait_gone(m.pid, m.start_time, MONITOR_EXIT_PATIENCE) => {
                    self.load(id)
                }
                _ => now,
            },
            _ => now,
        };
        match now {
            Ok(c) if !c.state.running => Ok(c.state.exit_code),
            Ok(_) => Err(monitor_error(
                id,
                "attach socket is gone but the container is running".into(),
            )),
            Err(Error::NoSuchContainer(_)) => Ok(c.state.exit_code),
            Err(e) => Err(e),
        }
    }

    /// Removes a stopped container; `force` kills a running one first.
    pub fn remove(&self, id: &str, force: bool) -> Result<()> {
        self.remove_with(id, force, false)
    }

    /// `remove`, and with `volumes` (`rm -v`) its anonymous volumes that no other container
    /// uses.
    pub fn remove_with(&self, id: &str, force: bool, volumes: bool) -> Result<()> {
        let c = match self.load(id) {
            Ok(c) => c,
            Err(e) if broken::is_broken(&e) => return self.remove_broken(id, force),
            Err(e) => return Err(e),
        };
        if c.state.running {
            if !force && c.state.paused {
                return Err(Error::RemovePaused(c.name));
            }
            if !force {
                return Err(Error::Running(c.name));
            }
            match self.kill(id, libc::SIGKILL) {
                Ok(()) | Err(Error::NotRunning(_)) | Err(Error::NoSuchContainer(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let paths = self.paths(id);
        let gone = |e: &Error| matches!(e, Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound);
        // A `--rm` container removes itself when killed.
        let _lock = match container::Lock::acquire(&paths.lock()) {
            Ok(lock) => lock,
            Err(e) if gone(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        // Not `load`: its ghost check takes this same lock.
        let c = match container::load(&paths.config()) {
            Ok(c) => c,
            Err(e) if gone(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        if c.state.running {
            return Err(Error::Running(c.name));
        }
        overlay::unmount(&paths.rootfs())?;
        tracing::debug!(%id, dir = %paths.dir.display(), "removing container");
        let removed = self.take_out(id)?;
        // Another process's listing may be sweeping it too: see `remove_tree`.
        remove_tree(&removed).map_err(|e| Error::io(&removed, e))?;
        if volumes {
            self.release_anonymous_volumes(&c.mounts);
        }
        events::container(&self.root, &c, "destroy");
        Ok(())
    }

    /// `docker update --restart`: a new restart policy, checked as at create; refused for a
    /// `--rm` container, as dockerd does. The monitor of a running container reads it when
    /// the current run ends.
    pub fn update_restart_policy(&self, id: &str, policy: RestartPolicy) -> Result<Container> {
        policy.validate()?;
        let id = self.get(id)?.id;
        let paths = self.paths(&id);
        let _lock = container::Lock::acquire(&paths.lock())?;
        let mut c = container::load(&paths.config())?;
        if c.auto_remove && !policy.is_none() {
            return Err(Error::InvalidResources(
                "Restart policy cannot be updated because AutoRemove is enabled for the container"
                    .into(),
            ));
        }
        c.host_config.restart_policy = policy;
        container::save(&paths.config(), &c)?;
        events::container(&self.root, &c, "update");
        Ok(c)
    }

    /// The volumes of this root.
    pub fn volumes(&self) -> Result<volumes::VolumeStore> {
        Ok(volumes::VolumeStore::open(&self.root)?)
    }

    /// Every container's config as stored, without the ghost check (which may itself remove
    /// volumes, and so must not run under the volume store's lock).
    fn stored(&self) -> Result<Vec<Container>> {
        let mut all = Vec::new();
        for id in self.ids()? {
            match container::load(&self.paths(&id).config()) {
                Ok(c) => all.push(c),
                Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(all)
    }

    /// Ids of the containers (running or not) that mount volume `name`.
    pub fn volume_users(&self, name: &str) -> Result<Vec<String>> {
        Ok(self
            .stored()?
            .into_iter()
            .filter(|c| {
                c.mounts
                    .iter()
                    .any(|m| m.kind == volumes::MountType::Volume && m.name == name)
            })
            .map(|c| c.id)
            .collect())
    }

    /// Creates volume `name` (a random name when `None`); an existing one is returned as is.
    pub fn create_volume(
        &self,
        name: Option<&str>,
        driver: &str,
        labels: std::collections::BTreeMap<String, String>,
        options: std::collections::BTreeMap<String, String>,
    ) -> Result<volumes::Volume> {
        let store = self.volumes()?;
        let _lock = store.lock()?;
        Ok(store.create(name, driver, labels, options)?)
    }

    /// Removes volume `name`; refused while any container uses it. `force`: a missing volume
    /// is no error (as `docker volume rm -f`).
    pub fn remove_volume(&self, name: &str, force: bool) -> Result<()> {
        let store = self.volumes()?;
        let _lock = store.lock()?;
        if let Err(volumes::Error::NoSuchVolume(_)) = store.get(name) {
            if force {
                return Ok(());
            }
        }
        store.get(name)?;
        let users = self.volume_users(name)?;
        if !users.is_empty() {
            return Err(volumes::Error::InUse {
                name: name.to_string(),
                containers: users,
            }
            .into());
        }
        Ok(store.delete(name)?)
    }

    /// Removes the volumes no container uses: the anonymous ones, or with `all` every one;
    /// the names removed and the bytes their files held.
    pub fn prune_volumes(&self, all: bool) -> Result<(Vec<String>, u64)> {
        let store = self.volumes()?;
        let _lock = store.lock()?;
        let containers = self.stored()?;
        let mut removed = Vec::new();
        let mut reclaimed = 0;
        for v in store.list()? {
            let used = containers.iter().any(|c| {
                c.mounts
                    .iter()
                    .any(|m| m.kind == volumes::MountType::Volume && m.name == v.name)
            });
            if used || !(all || v.is_anonymous()) {
                continue;
            }
            let size = store.size(&v.name);
            store.delete(&v.name)?;
            reclaimed += size;
            removed.push(v.name);
        }
        Ok((removed, reclaimed))
    }

    /// Removes the anonymous volumes among `mounts` that no container uses any more (after
    /// `rm -v`, or when a `--rm` container went); failures are only logged.
    pub fn release_anonymous_volumes(&self, mounts: &[volumes::MountPoint]) {
        for m in mounts.iter().filter(|m| m.anonymous) {
            match self.remove_volume(&m.name, true) {
                Ok(()) => {}
                Err(Error::Volume(volumes::Error::InUse { .. })) => {}
                Err(e) => {
                    tracing::warn!(volume = %m.name, error = %e, "removing an anonymous volume failed")
                }
            }
        }
    }

    /// The lower layers of the container's rootfs, top first: its init layer (containers
    /// created before init layers existed have none), then the image's layers.
    pub fn lowers(&self, c: &Container) -> Result<Vec<PathBuf>> {
        let mut lowers = Vec::new();
        let init = self.paths(&c.id).init();
        if init.is_dir() {
            lowers.push(init);
        }
        let layers = self
            .graph()?
            .layers(&c.image)
            .map_err(|e| Error::Graph(e.to_string()))?;
        lowers.extend(layers);
        Ok(lowers)
    }

    /// The changes of the container's filesystem against its image and init layer.
    pub fn changes(&self, id: &str) -> Result<Vec<archive::Change>> {
        let c = self.load(id)?;
        let lowers = self.lowers(&c)?;
        archive::changes(&lowers, &self.paths(id).upper())
            .map_err(|e| Error::Archive(e.to_string()))
    }

    /// A new image from the container's upper dir (running or not), tagged when asked, as
    /// `docker commit` makes it: a layer entry with the upper dir's changes, and on top of it
    /// an image config entry ([`imageconfig::commit_config`]) whose id is its config's
    /// digest. Returns the config entry.
    pub fn commit(&self, id: &str, opts: CommitOptions) -> Result<graph::Image> {
        let c = self.load(id)?;
        // A name that cannot be recorded is refused before anything is made.
        if let Some(repo) = &opts.repository {
            tagstore::validate_repository(repo).map_err(|e| Error::Graph(e.to_string()))?;
            if let Some(tag) = &opts.tag {
                tagstore::validate_tag(tag).map_err(|e| Error::Graph(e.to_string()))?;
            }
        }
        let graph = self.graph()?;
        // Held from the layer to the name: an `image prune` between them would take the new,
        // still untagged layer for a dangling image. A commit's layer is the container's
        // changes, small next to the imports and pulls that extract outside the lock.
        let _store = graph
            .lock_store()
            .map_err(|e| Error::Graph(e.to_string()))?;
        let upper = self.paths(id).upper();
        let (reader, mut writer) = io::pipe().map_err(|e| Error::io(&upper, e))?;
        let tar_upper = upper.clone();
        let tarring = std::thread::spawn(move || {
            let result = archive::tar_dir(&tar_upper, &mut writer, archive::Compression::None);
            drop(writer);
            result
        });
        let new = graph::NewImage {
            parent: Some(c.image.clone()),
            container: Some(c.id.clone()),
            container_config: serde_json::to_value(&c.config).ok(),
            comment: opts.comment.clone(),
            author: opts.author.clone(),
        };
        let created = graph.create(DrainOnDrop(reader), new);
        let tarred = match tarring.join() {
            Ok(result) => result.map_err(|e| Error::Archive(e.to_string())),
            Err(_) => Err(Error::Archive(format!("tar of {} failed", upper.display()))),
        };
        let layer = created.map_err(|e| Error::Graph(e.to_string()))?;
        let image = tarred.and_then(|()| self.register_commit_config(&graph, &c, &layer, &opts));
        let image = match image {
            Ok(image) => image,
            Err(e) => {
                // Nothing names the layer yet: no half-made image stays behind.
                if let Err(del) = graph.delete(&layer.id) {
                    tracing::warn!(id = %layer.id, error = %del, "removing the layer of a failed commit");
                }
                return Err(e);
            }
        };
        let name = opts
            .repository
            .map(|repo| format!("{repo}:{}", opts.tag.as_deref().unwrap_or("latest")));
        events::record(
            &self.root,
            &events::Message::image(&image.id, "commit", name.as_deref())
                .with("comment", &opts.comment),
        );
        if let Some(name) = &name {
            let (repo, tag) = name.rsplit_once(':').unwrap_or((name, "latest"));
            if let Err(e) = self.tags().and_then(|tags| {
                tags.set(&graph, repo, tag, &image.id, true)
                    .map_err(|e| Error::Graph(e.to_string()))
            }) {
                // The name was checked first; should the store still refuse it, no untagged
                // image stays behind.
                let _ = graph.delete(&image.id);
                if let Some(layer) = &image.parent {
                    let _ = graph.delete(layer);
                }
                return Err(e);
            }
            events::image(&self.root, &image.id, "tag", Some(name));
        }
        Ok(image)
    }

    /// The config entry of a commit whose new layer entry is `layer`.
    fn register_commit_config(
        &self,
        graph: &Graph,
        c: &Container,
        layer: &graph::Image,
        opts: &CommitOptions,
    ) -> Result<graph::Image> {
        let graph_err = |e: graph::Error| Error::Graph(e.to_string());
        let base = graph.image_config(&c.image).map_err(graph_err)?;
        // Every layer, base first; the new one last.
        let mut layers: Vec<graph::Image> = graph
            .history(&layer.id)
            .map_err(graph_err)?
            .into_iter()
            .filter(|entry| !entry.layerless)
            .collect();
        layers.reverse();
        let diff_ids = layers
            .iter()
            .map(|l| graph.diff_id(&l.id))
            .collect::<Result<Vec<_>, _>>()
            .map_err(graph_err)?;
        // A base without a config (imported, or an older dock's commit): one history entry
        // per layer it has, from what the graph recorded.
        let base_history = layers[..layers.len() - 1]
            .iter()
            .map(|l| imageconfig::HistoryEntry {
                created: l.created,
                author: l.author.clone(),
                created_by: imageconfig::entry_command(l),
                comment: l.comment.clone(),
            })
            .collect();
        let created = Utc::now();
        let bytes = imageconfig::commit_config(&imageconfig::Commit {
            base: base.as_deref(),
            base_history,
            container_id: &c.id,
            config: &c.config,
            created,
            author: &opts.author,
            comment: &opts.comment,
            diff_ids,
        })?;
        let image = graph::Image {
            id: graph::sha256_hex(&bytes),
            parent: Some(layer.id.clone()),
            comment: opts.comment.clone(),
            created,
            container: Some(c.id.clone()),
            container_config: serde_json::to_value(&c.config).ok(),
            author: opts.author.clone(),
            size: 0,
            diff_id: None,
            layerless: true,
        };
        graph.register_config(image, &bytes).map_err(graph_err)
    }

    /// A tar of the container's whole filesystem; a stopped one is mounted just for this.
    pub fn export(&self, id: &str, out: impl Write) -> Result<()> {
        let c = self.load(id)?;
        let paths = self.paths(id);
        let rootfs = paths.rootfs();
        let tar = |out| {
            archive::tar_dir(&rootfs, out, archive::Compression::None)
                .map_err(|e| Error::Archive(e.to_string()))
        };
        if c.state.running {
            if !overlay::is_mounted(&rootfs) {
                return Err(Error::Mount {
                    path: rootfs,
                    message: "container is starting, its rootfs is not mounted yet".into(),
                });
            }
            return tar(out);
        }
        // Holding the lock keeps a monitor from claiming the container while we mount.
        let _lock = container::Lock::acquire(&paths.lock())?;
        let lowers = self.lowers(&c)?;
        overlay::mount(
            &lowers,
            &paths.upper(),
            &paths.work(),
            &rootfs,
            overlay::Sync::Durable,
        )?;
        let result = tar(out);
        overlay::unmount(&rootfs)?;
        result
    }

    /// Log entries of the container from byte `start` to `end`.
    pub fn logs(&self, id: &str, start: u64, end: Option<u64>) -> Result<Vec<logs::Entry>> {
        logs::read(&self.paths(id).log(id), start, end)
    }

    /// Releases what a container whose monitor vanished still holds, and records its exit.
    fn reap_ghost(&self, id: &str) -> Result<Container> {
        let paths = self.paths(id);
        let _lock = container::Lock::acquire(&paths.lock())?;
        let mut c = container::load(&paths.config())?;
        if !c.state.running || monitor_alive(&c) {
            return Ok(c);
        }
        tracing::debug!(%id, "monitor is gone, releasing the container");
        if let Some(init) = c.init {
            if procs::is_same(init.pid, init.start_time) {
                // Killing the pid namespace's init kills every process in it.
                // SAFETY: plain kill of a pid verified by start time just now.
                unsafe { libc::kill(init.pid, libc::SIGKILL) };
            }
        }
        let cg = cgroup::Cgroup::open(&self.cgroup_parent(), id);
        c.state.oom_killed = c.state.oom_killed || cg.oom_killed();
        cg.remove().map_err(|e| Error::Cgroup(e.to_string()))?;
        if uses_bridge(&c) {
            // Its veth, port rules, address and ports; disconnect is idempotent.
            tracing::debug!(%id, "releasing the network of a vanished monitor");
            self.network()
                .and_then(|net| net.reclaim(id).map_err(|e| Error::Network(e.to_string())))?;
        }
        overlay::unmount(&paths.rootfs())?;
        let _ = fs::remove_file(paths.socket());
        // The monitor may have recorded the exit where it needs no new space, and then
        // failed to replace config.json (a full disk).
        let recorded = exitrec::read(&paths.exit_record())
            .filter(|r| Some(r.monitor) == c.monitor && r.exit_code.is_some());
        c.state.running = false;
        c.state.restarting = false;
        c.state.paused = false;
        c.state.pid = 0;
        c.monitor_lost = true;
        match recorded {
            Some(record) => {
                tracing::debug!(%id, code = ?record.exit_code, "the monitor recorded the exit");
                c.state.exit_code = record.exit_code.unwrap_or(GHOST_EXIT_CODE);
                c.state.oom_killed |= record.oom_killed;
                c.state.finished_at = record.finished_at.unwrap_or_else(Utc::now);
                c.state.error = record.error;
            }
            None => {
                c.state.exit_code = GHOST_EXIT_CODE;
                c.state.finished_at = Utc::now();
                // The monitor went before it could say so (a recorded exit was logged by it).
                let die = events::Message::container(&c, "die").with("exitCode", GHOST_EXIT_CODE);
                events::record(&self.root, &die);
            }
        }
        c.monitor = None;
        c.init = None;
        c.network_settings = NetworkSettings::default();
        if c.auto_remove {
            fs::remove_dir_all(&paths.dir).map_err(|e| Error::io(&paths.dir, e))?;
            self.release_anonymous_volumes(&c.mounts);
            events::container(&self.root, &c, "destroy");
            return Err(Error::NoSuchContainer(id.to_string()));
        }
        if let Err(e) = container::save(&paths.config(), &c) {
            // Shown as it is, with the reason, rather than hidden; the next reader tries again.
            tracing::warn!(%id, error = %e, "recording the exit of a vanished monitor failed");
            c.state.error = format!("recording the exit failed: {e}");
        }
        Ok(c)
    }
}

/// Reads the pipe to its end when dropped, so the tar writer never blocks on a consumer that
/// stopped early (an error in the image store).
struct DrainOnDrop(io::PipeReader);

impl Read for DrainOnDrop {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        let _ = io::copy(&mut self.0, &mut io::sink());
    }
}

/// Says it runs, but its monitor is gone: what [`Runtime::reap_ghost`] settles.
pub(crate) fn is_ghost(c: &impl Listed) -> bool {
    c.state().running && !monitor_alive(c)
}

fn monitor_alive(c: &impl Listed) -> bool {
    c.monitor()
        .is_some_and(|m| procs::is_same(m.pid, m.start_time))
}

/// Starts a monitor: `exe` with `args`, in a session of its own, with `starter` as its
/// descriptor [`STARTER_FD`] and /dev/null as stdin, stdout and stderr (with `--debug` it
/// logs to its container's directory itself). It outlives us; whoever inherits it reaps it.
///
/// posix_spawn rather than fork + exec: glibc starts the child with a vfork-like clone, so
/// starting a container does not copy the page tables of this process only to discard them,
/// and a multi-threaded caller (the API server) forks nothing.
fn spawn_monitor(
    exe: &Path,
    args: &[std::ffi::OsString],
    starter: &impl std::os::fd::AsRawFd,
) -> io::Result<i32> {
    // Held across the spawn: a reaper woken by this monitor's exit finds it listed.
    let mut spawned = SPAWNED_MONITORS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    use std::ffi::CString;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    let c_string = |bytes: &[u8]| {
        CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "nul byte"))
    };
    let program = c_string(exe.as_os_str().as_bytes())?;
    let mut words = vec![program.clone()];
    for arg in args {
        words.push(c_string(arg.as_bytes())?);
    }
    let environment: Vec<CString> = std::env::vars_os()
        .filter_map(|(key, value)| {
            let mut pair = key.as_bytes().to_vec();
            pair.push(b'=');
            pair.extend_from_slice(value.as_bytes());
            CString::new(pair).ok()
        })
        .collect();
    let pointers = |strings: &[CString]| {
        strings
            .iter()
            .map(|s| s.as_ptr() as *mut libc::c_char)
            .chain([std::ptr::null_mut()])
            .collect::<Vec<_>>()
    };
    let (argv, envp) = (pointers(&words), pointers(&environment));
    let null = fs::File::open("/dev/null")?;
    // Above the descriptors the child gets, so no dup2 below has the same source and target.
    // SAFETY: F_DUPFD_CLOEXEC on descriptors we own; the copies are closed when dropped.
    let above = |fd: i32| -> io::Result<OwnedFd> {
        let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, STARTER_FD + 1) };
        if copy < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(unsafe { OwnedFd::from_raw_fd(copy) })
    };
    let starter = above(starter.as_raw_fd())?;
    let null = above(null.as_raw_fd())?;
    let plan = [
        (null.as_raw_fd(), 0),
        (null.as_raw_fd(), 1),
        (null.as_raw_fd(), 2),
        (starter.as_raw_fd(), STARTER_FD),
    ];
    // SAFETY: the attribute and file-action objects are initialised before use and destroyed
    // after; argv and envp are null-terminated arrays of strings that outlive the call.
    unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        libc::posix_spawn_file_actions_init(&mut actions);
        libc::posix_spawnattr_init(&mut attr);
        let mut ret = libc::posix_spawnattr_setflags(&mut attr, libc::POSIX_SPAWN_SETSID);
        for (from, to) in plan {
            if ret == 0 {
                ret = libc::posix_spawn_file_actions_adddup2(&mut actions, from, to);
            }
        }
        let mut pid = 0;
        if ret == 0 {
            ret = libc::posix_spawn(
                &mut pid,
                program.as_ptr(),
                &actions,
                &attr,
                argv.as_ptr(),
                envp.as_ptr(),
            );
        }
        libc::posix_spawn_file_actions_destroy(&mut actions);
        libc::posix_spawnattr_destroy(&mut attr);
        if ret != 0 {
            return Err(io::Error::from_raw_os_error(ret));
        }
        spawned.push(pid);
        Ok(pid)
    }
}

/// What went wrong with container `id`'s monitor.
fn monitor_error(id: &str, message: String) -> Error {
    Error::Monitor {
        id: id.to_string(),
        message,
    }
}

/// Monitors this process started and has not reaped yet.
static SPAWNED_MONITORS: std::sync::Mutex<Vec<i32>> = std::sync::Mutex::new(Vec::new());

/// Reaps the monitors this process started that have exited, whatever they call themselves
/// (a long-lived caller such as the API server calls this on SIGCHLD); the number reaped.
/// Other children are left to whoever waits for them.
pub fn reap_monitors() -> usize {
    let mut spawned = SPAWNED_MONITORS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let before = spawned.len();
    spawned.retain(|&pid| {
        let mut status = 0;
        // SAFETY: waitpid on a child we started; WNOHANG never blocks.
        let ret = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        // 0: still running; -1: not ours to wait for any more (ECHILD).
        ret == 0
    });
    before - spawned.len()
}

/// Whether the container is connected to the root's bridge (not `none`, not `host`).
pub fn uses_bridge(c: &Container) -> bool {
    !c.config.network_disabled && c.host_config.network_mode != "host"
}

/// Docker's checks and adjustments of the run flags (restart policy, CPU, pids, swap, host
/// network), in its words; `create` runs them before anything exists.
fn check_run_flags(opts: &mut CreateOptions, network: NetworkMode) -> Result<()> {
    let hc = &mut opts.host_config;
    hc.restart_policy.validate()?;
    if hc.restart_policy.name.is_empty() {
        hc.restart_policy.name = "no".into();
    }
    if opts.auto_remove && !hc.restart_policy.is_none() {
        return Err(Error::InvalidResources(
            "Conflicting options: --restart and --rm".into(),
        ));
    }
    if hc.nano_cpus != 0 {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
        if hc.nano_cpus < 10_000_000 || hc.nano_cpus > cpus * 1_000_000_000 {
            return Err(Error::InvalidResources(format!(
                "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
            )));
        }
    }
    // moby's adaptContainerSettings: shares clamped to what the kernel takes.
    if hc.cpu_shares < 0 {
        hc.cpu_shares = cgroup::MIN_CPU_SHARES;
    } else if hc.cpu_shares > cgroup::MAX_CPU_SHARES {
        hc.cpu_shares = cgroup::MAX_CPU_SHARES;
    }
    // 0 and -1 (and any negative) are "unlimited", as Docker stores them.
    if hc.pids_limit.is_some_and(|n| n <= 0) {
        hc.pids_limit = None;
    }
    if opts.memory_swap > 0 {
        if opts.memory == 0 {
            return Err(Error::InvalidResources(
                "You should always set the Memory limit when using Memoryswap limit, see usage"
                    .into(),
            ));
        }
        if opts.memory_swap < opts.memory {
            return Err(Error::InvalidResources(
                "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
            ));
        }
        if !cgroup::swap_limit_supported() {
            return Err(Error::InvalidResources(
                "your kernel does not support swap limit capabilities or the cgroup is not \
                 mounted: --memory-swap cannot be enforced"
                    .into(),
            ));
        }
    }
    if network == NetworkMode::Host {
        hc.network_mode = "host".into();
        if !opts.port_specs.is_empty() || hc.publish_all_ports {
            // Docker's behaviour: discarded (its CLI prints the warning).
            tracing::warn!("Published ports are discarded when using host network mode");
            opts.port_specs.clear();
            hc.publish_all_ports = false;
        }
        if opts.hostname.is_none() {
            opts.hostname = host_name();
        }
    }
    Ok(())
}

/// The host's name (`--network host` containers have it, as in Docker).
fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec()).ok()
}

/// What `dock daemon` starts when it sweeps the root: a container not running that its
/// restart policy brings back. At the daemon's start (`at_start`, a reboot perhaps) that is,
/// as in Docker, every `always` container that ran before and every `unless-stopped` one the
/// user did not stop; later, one whose monitor vanished (killed) under `always`,
/// `unless-stopped`, or `on-failure` with retries left.
pub fn wants_policy_start(c: &Container, at_start: bool) -> bool {
    let policy = &c.host_config.restart_policy;
    if c.state.running || c.state.never_started() || c.auto_remove {
        return false;
    }
    if at_start {
        match policy.name.as_str() {
            "always" => return true,
            "unless-stopped" => return !c.has_been_manually_stopped,
            _ => {}
        }
    }
    c.monitor_lost
        && policy.should_restart(
            c.state.exit_code,
            c.restart_count,
            c.has_been_manually_stopped,
        )
}

impl Runtime {
    /// Starts every container [`wants_policy_start`] names; the ids started, and the errors.
    pub fn start_by_policies(&self, at_start: bool) -> Vec<(String, Result<()>)> {
        let Ok(all) = self.list() else {
            return Vec::new();
        };
        all.iter()
            .filter(|c| wants_policy_start(c, at_start))
            .map(|c| {
                tracing::debug!(id = %c.id, policy = %c.host_config.restart_policy.name, "restart policy starts the container");
                (c.id.clone(), self.start_by_policy(&c.id).map(drop))
            })
            .collect()
    }

    /// `stop`'s timeout when none is given: the container's `--stop-timeout`, else 10 s.
    pub fn stop_timeout(c: &Container) -> Duration {
        match c.config.stop_timeout {
            Some(t) if t < 0 => Duration::from_secs(u32::MAX as u64),
            Some(t) => Duration::from_secs(t as u64),
            None => Duration::from_secs(10),
        }
    }
}

/// Docker's smallest memory limit (`linuxMinMemory`): 6 MiB.
pub const MIN_MEMORY: i64 = 6 << 20;

/// How long `kill` and `stop` wait for a monitor to acknowledge a signal: only one too old to
/// acknowledge takes this long.
const SIGNAL_ACK_PATIENCE: Duration = Duration::from_secs(10);

/// How long `wait` gives a monitor that closed its socket to exit (it takes a few seconds at
/// most: the last flush to its clients).
const MONITOR_EXIT_PATIENCE: Duration = Duration::from_secs(30);

/// The name a removed container's directory has between [`Runtime::take_out`] and
/// [`delete_removed`]; never a container id.
pub const REMOVED_PREFIX: &str = ".removed-";

/// The name a container's directory has while `create` builds it, before it is renamed to
/// its id; never a container id.
pub const CREATING_PREFIX: &str = ".creating-";

/// The lock file (in `containers/`) that orders name checks against creation and renames.
pub const NAMES_LOCK: &str = ".names.lock";

/// Deletes a directory [`Runtime::take_out`] took out of the store; errors are only logged
/// (the next listing of the store tries again).
pub fn delete_removed(dir: &Path) {
    if let Err(e) = remove_tree(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "deleting a removed container failed");
    }
}

/// Deletes `dir` and everything below it. Other processes may be deleting the same tree at the
/// same time (every listing of the store sweeps what `take_out` left): whatever vanishes
/// meanwhile, `dir` itself included, counts as deleted, so each of them succeeds.
fn remove_tree(dir: &Path) -> io::Result<()> {
    fn gone(r: io::Result<()>) -> io::Result<()> {
        match r {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        // A file (or symlink) where a directory was expected: unlink it.
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return gone(fs::remove_file(dir)),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            // The directory went while being read: whatever is left, remove_dir says.
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => return Err(e),
        };
        let path = entry.path();
        // The entry's own type (d_type): a symlink is unlinked, never followed.
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => remove_tree(&path)?,
            Ok(_) => gone(fs::remove_file(&path))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    gone(fs::remove_dir(dir))
}

pub fn cgroup_parent_for(root: &Path) -> String {
    use sha2::Digest;
    let root = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    if root == Path::new("/var/lib/dock") {
        return "dock".into();
    }
    let digest = sha2::Sha256::digest(root.as_os_str().as_encoded_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("dock-{hex}")
}

fn validate_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName(name.to_string()))
    }
}

/// Docker-style `adjective_surname`, derived from the id; a number is added on collision.
fn generate_name(id: &str, taken: impl Fn(&str) -> bool) -> String {
    const LEFT: [&str; 16] = [
        "admiring", "bold", "brave", "clever", "eager", "focused", "gentle", "happy", "jolly",
        "keen", "lucid", "modest", "nifty", "quirky", "serene", "vigilant",
    ];
    const RIGHT: [&str; 16] = [
        "babbage", "curie", "darwin", "euler", "fermi", "galileo", "hopper", "kepler", "lovelace",
        "newton", "noether", "pascal", "ritchie", "thompson", "turing", "wozniak",
    ];
    let nibble = |i: usize| usize::from_str_radix(&id[i..i + 1], 16).unwrap_or(0);
    let base = format!("{}_{}", LEFT[nibble(0)], RIGHT[nibble(1)]);
    if !taken(&base) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}{n}"))
        .find(|n| !taken(n))
        .unwrap_or(base)
}

/// Final environment: Docker's defaults, `TERM=xterm` with a tty, then the user's values, a
/// later value of the same key replacing an earlier one.
pub fn container_env(config: &Config) -> Vec<String> {
    let mut env: Vec<String> = DEFAULT_ENV.iter().map(|s| s.to_string()).collect();
    if config.tty {
        env.push("TERM=xterm".into());
    }
    for kv in &config.env {
        let key = kv.split('=').next().unwrap_or(kv);
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    env
}

/// The signal `stop` sends first: the container's `StopSignal`, else SIGTERM.
pub fn stop_signal(config: &Config) -> i32 {
    procs::signal_number(&config.stop_signal).unwrap_or(libc::SIGTERM)
}

/// A memory size as Docker's `RAMInBytes` (go-units) reads it: `512`, `512b`, `64k`,
/// `512m`, `1.5g`, `1 GiB`, `2t`, `1p` (binary units, any case, an optional space before the
/// unit, `i` and `b` optional after it) in bytes; a fraction is cut to whole bytes.
pub fn parse_memory(s: &str) -> Option<i64> {
    let s = s.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, rest) = s.split_at(end);
    // `\d+(\.\d+)?`: digits on both sides of one dot.
    let valid_number = match number.split_once('.') {
        Some((whole, fraction)) => {
            !whole.is_empty()
                && !fraction.is_empty()
                && whole
                    .bytes()
                    .chain(fraction.bytes())
                    .all(|b| b.is_ascii_digit())
        }
        None => !number.is_empty(),
    };
    if !valid_number {
        return None;
    }
    let rest = rest.strip_prefix(' ').unwrap_or(rest).to_ascii_lowercase();
    let (shift, tail) = match rest.as_bytes().first() {
        Some(b'k') => (10, &rest[1..]),
        Some(b'm') => (20, &rest[1..]),
        Some(b'g') => (30, &rest[1..]),
        Some(b't') => (40, &rest[1..]),
        Some(b'p') => (50, &rest[1..]),
        _ => (0, rest.as_str()),
    };
    let tail = tail.strip_prefix('i').unwrap_or(tail);
    if !tail.strip_prefix('b').unwrap_or(tail).is_empty() {
        return None;
    }
    let mult: i64 = 1 << shift;
    if number.contains('.') {
        let bytes = number.parse::<f64>().ok()? * mult as f64;
        // i64::MAX as f64 rounds up to 2^63, which no i64 holds.
        (bytes.is_finite() && bytes < i64::MAX as f64).then_some(bytes as i64)
    } else {
        number.parse::<i64>().ok()?.checked_mul(mult)
    }
}

/// For tests: the store lock of a runtime held by another thread, as a create holds it while
/// it stages, until this is released (or dropped).
#[cfg(test)]
pub(crate) struct StoreLockHeld {
    release: Option<std::sync::mpsc::Sender<()>>,
    holder: Option<std::thread::JoinHandle<()>>,
}

#[cfg(test)]
impl StoreLockHeld {
    pub(crate) fn by_another_thread(rt: &Runtime) -> StoreLockHeld {
        let lock = rt.store_lock_path();
        fs::create_dir_all(lock.parent().unwrap()).unwrap();
        let (held, is_held) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let _lock = graph::StoreLock::acquire(&lock).unwrap();
            held.send(()).unwrap();
            let _ = released.recv();
        });
        is_held.recv().unwrap();
        StoreLockHeld {
            release: Some(release),
            holder: Some(holder),
        }
    }

    /// Returns once the other thread let go of the lock.
    pub(crate) fn release(mut self) {
        self.let_go();
    }

    fn let_go(&mut self) {
        drop(self.release.take());
        if let Some(holder) = self.holder.take() {
            holder.join().unwrap();
        }
    }
}

#[cfg(test)]
impl Drop for StoreLockHeld {
    fn drop(&mut self) {
        self.let_go();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_removes_a_crashed_create_only_when_the_store_lock_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let rt = Runtime::open(dir.path()).unwrap();
        fs::create_dir_all(dir.path().join("graph")).unwrap();
        let staging = dir
            .path()
            .join("containers")
            .join(format!("{CREATING_PREFIX}{}", "a".repeat(64)));
        fs::create_dir_all(staging.join("upper")).unwrap();
        // A create in progress (another thread holds the lock): left alone.
        let held = StoreLockHeld::by_another_thread(&rt);
        assert!(rt.list().unwrap().is_empty());
        assert!(staging.is_dir(), "a live create's staging was removed");
        held.release();
        // Its creator gone: the next listing removes it.
        assert!(rt.list().unwrap().is_empty());
        assert!(!staging.exists(), "a crashed create's staging stayed");
    }

    #[test]
    fn removing_a_tree_tolerates_others_removing_it_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), "x").unwrap();
        for round in 0..5 {
            let tree = dir.path().join(format!("{REMOVED_PREFIX}{round}"));
            for d in 0..20 {
                let sub = tree.join(format!("d{d}")).join("deeper");
                fs::create_dir_all(&sub).unwrap();
                for f in 0..30 {
                    fs::write(sub.join(format!("f{f}")), "x").unwrap();
                    fs::write(tree.join(format!("d{d}")).join(format!("f{f}")), "x").unwrap();
                }
            }
            std::os::unix::fs::symlink(&outside, tree.join("link")).unwrap();
            let results: Vec<io::Result<()>> = std::thread::scope(|scope| {
                let workers: Vec<_> = (0..8).map(|_| scope.spawn(|| remove_tree(&tree))).collect();
                workers.into_iter().map(|w| w.join().unwrap()).collect()
            });
            for r in results {
                r.unwrap();
            }
            assert!(!tree.exists(), "round {round}: {} is left", tree.display());
            assert!(outside.join("keep").exists(), "a symlink was followed");
        }
        // Already gone when called, as when a listing in another process swept the whole tree
        // between `take_out` and `remove`'s own removal (std's remove_dir_all fails then).
        remove_tree(&dir.path().join("missing")).unwrap();
        // A plain file in its place.
        let file = dir.path().join("file");
        fs::write(&file, "x").unwrap();
        remove_tree(&file).unwrap();
        assert!(!file.exists());
    }

    #[test]
    fn root_config_takes_registry_keys_and_refuses_typos() {
        let dir = tempfile::tempdir().unwrap();
        let rt = Runtime::open(dir.path()).unwrap();
        let path = dir.path().join(NET_CONFIG_FILE);
        fs::write(
            &path,
            r#"{"subnet": "10.99.0.0/24", "default-registry": "localhost:5000",
                "registry-mirrors": [], "insecure-registries": ["10.0.0.0/8"]}"#,
        )
        .unwrap();
        assert_eq!(rt.net_config().unwrap().subnet.to_string(), "10.99.0.0/24");
        fs::write(&path, r#"{"subnets": "10.99.0.0/24"}"#).unwrap();
        let err = rt.net_config().unwrap_err().to_string();
        assert!(err.contains("unknown key \"subnets\""), "{err}");
    }

    #[test]
    fn the_daemon_starts_what_restart_policies_bring_back() {
        let mut c: Container = serde_json::from_str(
            r#"{"Id":"x","Created":"2024-01-01T00:00:00Z","Path":"true","Args":[],"Config":{},
                "State":{"Running":false,"Pid":0,"ExitCode":137,"StartedAt":"2024-01-01T00:00:00Z"},
                "Image":"y","NetworkSettings":{},"Name":"n"}"#,
        )
        .unwrap();
        let policy = |c: &mut Container, text: &str| {
            c.host_config.restart_policy = RestartPolicy::parse(text).unwrap()
        };
        // Stopped the ordinary way: only the daemon's start brings `always` back.
        policy(&mut c, "always");
        assert!(!wants_policy_start(&c, false));
        assert!(wants_policy_start(&c, true));
        c.has_been_manually_stopped = true;
        assert!(wants_policy_start(&c, true));
        policy(&mut c, "unless-stopped");
        assert!(!wants_policy_start(&c, true));
        // Its monitor vanished: brought back, unless the user stopped it.
        c.has_been_manually_stopped = false;
        c.monitor_lost = true;
        assert!(wants_policy_start(&c, false));
        policy(&mut c, "on-failure:2");
        c.restart_count = 1;
        assert!(wants_policy_start(&c, false));
        c.restart_count = 2;
        assert!(!wants_policy_start(&c, false));
        policy(&mut c, "no");
        assert!(!wants_policy_start(&c, false) && !wants_policy_start(&c, true));
        // Never started, or running: left alone.
        policy(&mut c, "always");
        c.state.running = true;
        assert!(!wants_policy_start(&c, true));
        c.state = State::default();
        assert!(!wants_policy_start(&c, true));
    }

    #[test]
    fn run_flags_are_checked_and_adjusted_as_docker_does() {
        let mut opts = CreateOptions {
            host_config: HostConfig {
                cpu_shares: -5,
                pids_limit: Some(-1),
                ..HostConfig::default()
            },
            ..CreateOptions::default()
        };
        check_run_flags(&mut opts, NetworkMode::Bridge).unwrap();
        assert_eq!(opts.host_config.cpu_shares, cgroup::MIN_CPU_SHARES);
        assert_eq!(opts.host_config.pids_limit, None);
        assert_eq!(opts.host_config.restart_policy.name, "no");
        opts.host_config.cpu_shares = 1 << 30;
        opts.port_specs = vec!["8080:80".into()];
        check_run_flags(&mut opts, NetworkMode::Host).unwrap();
        assert_eq!(opts.host_config.cpu_shares, cgroup::MAX_CPU_SHARES);
        assert!(opts.port_specs.is_empty());
        assert_eq!(opts.host_config.network_mode, "host");
        assert_eq!(opts.hostname, host_name());
        for (change, message) in [
            (
                (|o: &mut CreateOptions| o.host_config.nano_cpus = 1_000) as fn(&mut CreateOptions),
                "Range of CPUs is from 0.01 to",
            ),
            (
                |o: &mut CreateOptions| o.memory_swap = 1 << 30,
                "You should always set the Memory limit",
            ),
            (
                |o: &mut CreateOptions| {
                    o.memory = 1 << 30;
                    o.memory_swap = 1 << 20;
                },
                "Minimum memoryswap limit should be larger than memory limit",
            ),
            (
                |o: &mut CreateOptions| {
                    o.auto_remove = true;
                    o.host_config.restart_policy = RestartPolicy::parse("always").unwrap();
                },
                "Conflicting options: --restart and --rm",
            ),
        ] {
            let mut opts = CreateOptions::default();
            change(&mut opts);
            let err = check_run_flags(&mut opts, NetworkMode::Bridge).unwrap_err();
            assert!(err.to_string().contains(message), "{err}");
        }
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("1024"), Some(1024));
        assert_eq!(parse_memory("512m"), Some(512 << 20));
        assert_eq!(parse_memory("1g"), Some(1 << 30));
        assert_eq!(parse_memory("64K"), Some(64 << 10));
        assert_eq!(parse_memory("12x"), None);
        assert_eq!(parse_memory("m"), None);
    }

    #[test]
    fn env_defaults_tty_and_overrides() {
        let mut cfg = Config::default();
        assert_eq!(container_env(&cfg), DEFAULT_ENV);
        cfg.tty = true;
        cfg.env = vec!["A=1".into(), "PATH=/x".into(), "A=2".into()];
        assert_eq!(
            container_env(&cfg),
            ["HOME=/", "TERM=xterm", "PATH=/x", "A=2"]
        );
    }

    #[test]
    fn names_and_cgroup_parents() {
        assert!(validate_name("web-1.a_b").is_ok());
        assert!(validate_name("-x").is_err());
        assert!(validate_name("").is_err());
        assert!(validate_name("a/b").is_err());
        let id = "0f".repeat(32);
        let first = generate_name(&id, |_| false);
        assert_eq!(first, "admiring_wozniak");
        assert_eq!(generate_name(&id, |n| n == first), "admiring_wozniak2");
        assert_eq!(cgroup_parent_for(Path::new("/var/lib/dock")), "dock");
        let p = cgroup_parent_for(Path::new("/nonexistent/root"));
        assert!(p.starts_with("dock-") && p.len() == 13, "{p}");
    }

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn chmod(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_new_root_is_private() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("var/lib/dock");
        Runtime::open(&root).unwrap();
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("containers")), 0o700);
        // graph/ and net/ are not made by opening the runtime, but private when they are.
        assert!(!root.join("net").exists());
        Graph::open(root.join("graph")).unwrap();
        assert_eq!(mode(&root.join("graph")), 0o700);
    }

    #[test]
    fn a_root_an_older_dock_left_open_is_closed_down_to_the_layers() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let id = "a".repeat(64);
        let open = [
            root.clone(),
            root.join("containers"),
            root.join("containers").join(&id),
            root.join("graph"),
            root.join("graph").join(&id),
            root.join("graph/_tmp"),
            root.join("net"),
        ];
        // What must keep its mode: container contents, a layer (the container's `/`).
        let kept = [
            root.join("containers").join(&id).join("upper"),
            root.join("graph").join(&id).join("layer"),
            root.join("graph").join(&id).join("layer/bin"),
        ];
        for dir in open.iter().chain(&kept) {
            fs::create_dir_all(dir).unwrap();
            chmod(dir, 0o755);
        }
        let log = root
            .join("containers")
            .join(&id)
            .join(format!("{id}-json.log"));
        fs::write(&log, "").unwrap();
        chmod(&log, 0o644);

        Runtime::open(&root).unwrap();
        for dir in &open {
            assert_eq!(mode(dir), 0o700, "{}", dir.display());
        }
        for dir in &kept {
            assert_eq!(mode(dir), 0o755, "{}", dir.display());
        }
        assert_eq!(mode(&log), 0o644);
    }

    #[test]
    fn a_private_root_is_only_looked_at() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        Runtime::open(&root).unwrap();
        // Below a private containers/ nothing is walked: a container dir left open there
        // (by hand) is out of reach anyway and is not stat'ed on every command.
        let dir = root.join("containers").join("b".repeat(64));
        fs::create_dir(&dir).unwrap();
        chmod(&dir, 0o755);
        secure_root(&root).unwrap();
        assert_eq!(mode(&dir), 0o755);
    }
}
