//! Container networking for dock: a bridge with the gateway address, a veth pair per
//! container with its peer inside the container's network namespace, a persistent IP and
//! host-port allocator shared by concurrent processes, and port mapping as kernel DNAT in an
//! nftables table of dock's own (reachable from other hosts, from the host's loopback and
//! from the gateway address).
//!
//! The runtime's per-container monitor calls [`Network::connect`] once the container process
//! exists in its new network namespace (before it execs) and [`Network::disconnect`] after it
//! exited. Both are keyed by container id, so a crashed monitor's leftovers are purged by the
//! next `connect` or by [`Network::reclaim`].

mod error;
pub mod ipalloc;
mod loopback;
mod netlink;
mod nft;
mod portmap;
pub mod ports;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use error::{Error, Result};
pub use ipalloc::{gateway_of, int_to_ip, ip_to_int, network_range, network_size, IpPool};
pub use ports::{
    probe_host_port, reserve_host_port, PortMapping, PortPool, PortSpec, Proto, PORT_RANGE_END,
    PORT_RANGE_START,
};

use netlink::Netlink;
use nft::Nft;
use portmap::{ElementOp, ElementSink, NetlinkSink};
use ports::HeldPort;

/// The root `dock` uses when none is given.
pub const DEFAULT_ROOT: &str = "/var/lib/dock";
/// MTU of the bridge and of every veth (Docker 0.1.0's LXC template used 1500).
pub const MTU: u32 = 1500;
/// Name of the interface inside the container.
pub const CONTAINER_IFACE: &str = "eth0";

const STATE_FILE: &str = "net.json";
const LOCK_FILE: &str = "net.lock";
/// Which base ruleset this boot's bridge already has, so `open` runs `nft` only when needed.
const RULESET_MARK_FILE: &str = "ruleset.applied";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// Bridge interface name (at most 15 bytes).
    pub bridge: String,
    /// Container subnet; the gateway (bridge address) is its first host address.
    pub subnet: Ipv4Net,
    /// Name of dock's nftables table (family `ip`).
    pub table: String,
    /// Where the allocator state and its lock live.
    pub state_dir: PathBuf,
}

impl NetConfig {
    pub fn new(
        bridge: impl Into<String>,
        subnet: Ipv4Net,
        table: impl Into<String>,
        state_dir: impl Into<PathBuf>,
    ) -> NetConfig {
        NetConfig {
            bridge: bridge.into(),
            subnet: subnet.trunc(),
            table: table.into(),
            state_dir: state_dir.into(),
        }
    }

    /// Defaults for a dock root: `dock0`, table `dock` and 172.17.0.0/16 for the default root;
    /// any other root gets names and a /24 derived from a hash of its path, so two roots on
    /// one host never share a bridge, table or subnet. State lives in `<root>/net`.
    pub fn for_root(root: &Path) -> NetConfig {
        let state_dir = root.join("net");
        if root == Path::new(DEFAULT_ROOT) {
            let subnet = Ipv4Net::new(Ipv4Addr::new(172, 17, 0, 0), 16).expect("valid prefix");
            return NetConfig::new("dock0", subnet, "dock", state_dir);
        }
        let digest = Sha256::digest(root.as_os_str().as_encoded_bytes());
        let tag = hex(&digest[..3]);
        let subnet = Ipv4Net::new(Ipv4Addr::new(10, 200 + digest[3] % 50, digest[4], 0), 24)
            .expect("valid prefix");
        NetConfig::new(
            format!("dock{tag}"),
            subnet,
            format!("dock-{tag}"),
            state_dir,
        )
    }

    pub fn gateway(&self) -> Ipv4Addr {
        gateway_of(self.subnet)
    }

    fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidConfig(what));
        let b = &self.bridge;
        if b.is_empty()
            || b.len() > 15
            || b.bytes()
                .any(|c| !(c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.'))
        {
            return bad(format!(
                "bridge name {b:?} must be 1-15 characters of [a-zA-Z0-9_.-]"
            ));
        }
        let t = &self.table;
        if t.is_empty()
            || t.len() > 64
            || !t.as_bytes()[0].is_ascii_alphabetic()
            || t.bytes()
                .any(|c| !(c.is_ascii_alphanumeric() || c == b'-' || c == b'_'))
        {
            return bad(format!(
                "table name {t:?} must start with a letter and use only [a-zA-Z0-9_-]"
            ));
        }
        if self.subnet.prefix_len() > 30 {
            return bad(format!(
                "subnet {} leaves no address for containers (need /30 or larger)",
                self.subnet
            ));
        }
        Ok(())
    }
}

/// What `connect` set up for a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    pub ports: Vec<PortMapping>,
    pub host_veth: String,
}

/// The persistent allocator state, shared by every dock process under `LOCK_FILE`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// The boot this state belongs to: the addresses, ports and links of an earlier boot
    /// are gone with it. Absent in files written before it was recorded: taken as this boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    boot_id: Option<String>,
    ips: IpPool,
    ports: PortPool,
    endpoints: BTreeMap<String, Endpoint>,
    /// The process that connected each endpoint (the container's monitor) and holds its
    /// host ports: when it is gone, so is the container, and the next `connect` releases
    /// what it left.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    holders: BTreeMap<String, Holder>,
    /// Published ports whose map elements could not be removed: the next `connect` removes
    /// them in its batch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    stale: Vec<PortMapping>,
}

/// A process, told apart from a later one with the same pid by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Holder {
    pid: i32,
    start_time: u64,
}

impl Holder {
    /// This process.
    fn me() -> Holder {
        static ME: OnceLock<Holder> = OnceLock::new();
        *ME.get_or_init(|| Holder {
            pid: std::process::id() as i32,
            start_time: start_time_of(std::process::id() as i32).unwrap_or(0),
        })
    }

    /// Whether the process is certainly gone: its pid is free, or (`thorough`, which reads
    /// its /proc entry) taken by a process started at another time, or a zombie (an ended
    /// process its parent has not reaped yet holds nothing any more).
    fn is_gone(&self, thorough: bool) -> bool {
        if *self == Holder::me() {
            return false;
        }
        // SAFETY: signal 0 only checks that the pid exists.
        if unsafe { libc::kill(self.pid, 0) } != 0
            && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
        {
            return true;
        }
        thorough
            && process_stat(self.pid).is_some_and(|(state, started)| {
                started != self.start_time || matches!(state, 'Z' | 'X')
            })
    }
}

/// Fields 3 and 22 of /proc/PID/stat: the process's state and when it started, in clock
/// ticks since boot.
fn process_stat(pid: i32) -> Option<(char, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((state, fields.nth(18)?.parse().ok()?))
}

/// When the process started ([`process_stat`]).
fn start_time_of(pid: i32) -> Option<u64> {
    process_stat(pid).map(|(_, started)| started)
}

impl State {
    /// Forgets what `owner` holds: endpoint, ports, address.
    fn release_owner(&mut self, owner: &str) {
        self.endpoints.remove(owner);
        self.holders.remove(owner);
        self.ports.release_owner(owner);
        self.ips.release_owner(owner);
    }

    /// Releases the endpoints whose holder is gone (checked thoroughly for those holding one
    /// of the `wanted` host ports): the element removals for the batch, and the owners with
    /// their host veths to delete once the lock is released.
    fn release_vanished(
        &mut self,
        wanted: &[PortSpec],
        is_gone: impl Fn(&Holder, bool) -> bool,
    ) -> (Vec<ElementOp>, Vec<(String, String)>) {
        let wants = |owner: &str| {
            wanted.iter().any(|spec| {
                spec.host_port
                    .is_some_and(|port| self.ports.owner(port, spec.proto) == Some(owner))
            })
        };
        let vanished: Vec<String> = self
            .holders
            .iter()
            .filter(|(owner, holder)| is_gone(holder, wants(owner)))
            .map(|(owner, _)| owner.clone())
            .collect();
        let mut ops = Vec::new();
        let mut veths = Vec::new();
        for owner in vanished {
            tracing::debug!(container_id = %owner, "its monitor is gone: releasing its network");
            if let Some(endpoint) = self.endpoints.get(&owner) {
                ops.extend(portmap::remove_ops(&endpoint.ports));
                veths.push((owner.clone(), endpoint.host_veth.clone()));
            }
            self.release_owner(&owner);
        }
        (ops, veths)
    }
}

pub struct Network {
    cfg: NetConfig,
    nft: Nft,
    /// Where the published ports' map elements go (the kernel, or a recorder in tests).
    elements: Box<dyn ElementSink>,
    /// What this value keeps open for each container it connected, until it is released:
    /// the monitor holds its `Network` for the container's life.
    held: Mutex<BTreeMap<String, Held>>,
}

/// The host ports of one container, kept bound (see [`reserve_host_port`]), and the BPF
/// links of its loopback redirect.
#[derive(Debug, Default)]
struct Held {
    ports: Vec<HeldPort>,
    /// Open only to keep the redirect attached.
    _links: Vec<OwnedFd>,
}

/// This boot's identity (`/proc/sys/kernel/random/boot_id`).
fn boot_id() -> &'static str {
    static BOOT_ID: OnceLock<String> = OnceLock::new();
    BOOT_ID.get_or_init(|| {
        fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|id| id.trim().to_string())
            .unwrap_or_default()
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Host-side veth name of a container: `dk` + 10 hex chars of a hash of its id, so it is
/// unique per container and can be found again without any state.
pub fn host_veth_name(container_id: &str) -> String {
    let digest = Sha256::digest(container_id.as_bytes());
    format!("dk{}", &hex(&digest[..5]))
}

fn validate_container_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 64
        || id
            .bytes()
            .any(|c| !(c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.'))
    {
        return Err(Error::InvalidContainerId(id.to_string()));
    }
    Ok(())
}

fn write_kernel_setting(path: &str, value: &str) -> Result<()> {
    tracing::debug!(path, value, "write kernel setting");
    fs::write(path, value).map_err(|e| Error::io("write", path, e))
}

/// Refuses a subnet that overlaps a route of another interface: the bridge would shadow
/// (or be shadowed by) a network the host already reaches.
fn check_subnet_is_free(cfg: &NetConfig) -> Result<()> {
    let path = "/proc/net/route";
    let table = fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (Some(device), Some(dest), Some(mask)) = (cols.first(), cols.get(1), cols.get(7))
        else {
            continue;
        };
        let (Ok(dest), Ok(mask)) = (u32::from_str_radix(dest, 16), u32::from_str_radix(mask, 16))
        else {
            continue;
        };
        // The file shows the kernel's network-order words in host (little-endian) order.
        let prefix = mask.count_ones() as u8;
        let Ok(route) = Ipv4Net::new(Ipv4Addr::from(dest.to_le_bytes()), prefix) else {
            continue;
        };
        let overlaps =
            cfg.subnet.contains(&route.network()) || route.contains(&cfg.subnet.network());
        if prefix > 0 && *device != cfg.bridge && overlaps {
            return Err(Error::SubnetInUse {
                subnet: cfg.subnet,
                route,
                device: device.to_string(),
            });
        }
    }
    Ok(())
}

/// For a process about to end that sent element batches (a container's monitor): its
/// netfilter socket goes to a short-lived `/bin/true`, which releases it after this process
/// has ended. The kernel's release of that socket waits for nf_tables to clean up the last
/// batch (an RCU grace period, 5 to 10 ms here); done by this process's exit, it would hold
/// up whoever waits for this process to be gone (every `run` and `stop` of a container with
/// published ports). Best effort: when the spawn fails, this process releases it as before.
pub fn hand_off_netfilter_socket() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let Some(socket) = portmap::take_socket() else {
        return;
    };
    let fd = socket.as_raw_fd();
    let mut releaser = std::process::Command::new("/bin/true");
    releaser
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: between fork and exec only dup2, fcntl and close_range, all async-signal-safe:
    // the child keeps the socket as fd 3 and nothing else of ours past its exec (our
    // clients' connections among them).
    unsafe {
        releaser.pre_exec(move || {
            let kept = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if kept < 0 || libc::close_range(4, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    match releaser.spawn() {
        // Not waited for: it outlives this process and is reaped by whoever inherits it.
        Ok(child) => drop(child),
        Err(err) => tracing::debug!(%err, "netfilter socket released by this process"),
    }
    drop(socket);
}

impl Network {
    /// Creates (or finds) the bridge with the gateway address, sets the sysctls and installs
    /// the nftables table and its base chains. Safe to call from several processes at once.
    pub fn open(cfg: NetConfig) -> Result<Network> {
        let cfg = NetConfig {
            subnet: cfg.subnet.trunc(),
            ..cfg
        };
        cfg.validate()?;
        check_subnet_is_free(&cfg)?;
        // Private to root, as the rest of the state directory.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&cfg.state_dir)
            .map_err(|e| Error::io("create", &cfg.state_dir, e))?;
        let network = Network {
            cfg,
            nft: Nft::system(),
            elements: Box::new(NetlinkSink::new()),
            held: Mutex::new(BTreeMap::new()),
        };
        let bridge_index = network.ensure_bridge()?;
        write_kernel_setting("/proc/sys/net/ipv4/ip_forward", "1")?;
        write_kernel_setting(
            &format!(
                "/proc/sys/net/ipv4/conf/{}/route_localnet",
                network.cfg.bridge
            ),
            "1",
        )?;
        // `nft` costs milliseconds: the base ruleset is applied once per bridge and boot (a
        // recreated bridge gets a new index, a reboot a new boot id).
        let mark = network.ruleset_mark(bridge_index);
        let mark_path = network.cfg.state_dir.join(RULESET_MARK_FILE);
        if fs::read_to_string(&mark_path).ok().as_deref() != Some(mark.as_str()) {
            network.apply_base_ruleset()?;
            fs::write(&mark_path, &mark).map_err(|e| Error::io("write", &mark_path, e))?;
        }
        Ok(network)
    }

    fn ruleset_mark(&self, bridge_index: u32) -> String {
        let base = nft::base_ruleset(&self.cfg.table, &self.cfg.bridge, self.cfg.subnet);
        let digest = hex(&Sha256::digest(base.as_bytes())[..8]);
        format!("{} {bridge_index} {digest}\n", boot_id())
    }

    fn apply_base_ruleset(&self) -> Result<()> {
        let base = nft::base_ruleset(&self.cfg.table, &self.cfg.bridge, self.cfg.subnet);
        self.nft
            .apply(&base, &format!("set up table ip {}", self.cfg.table))
    }

    pub fn config(&self) -> &NetConfig {
        &self.cfg
    }

    /// The bridge's index; creates it with the gateway address when missing, and brings it up.
    fn ensure_bridge(&self) -> Result<u32> {
        let name = &self.cfg.bridge;
        let mut nl = Netlink::new().map_err(|e| Error::netlink("open socket", e))?;
        let index = match nl
            .link_index(name)
            .map_err(|e| Error::netlink(format!("look up {name}"), e))?
        {
            Some(index) => index,
            None => {
                tracing::debug!(bridge = %name, "create bridge");
                match nl.create_bridge(name, MTU) {
                    Ok(()) => {}
                    // Another dock process created it first.
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                    Err(e) => return Err(Error::netlink(format!("create bridge {name}"), e)),
                }
                nl.link_index(name)
                    .map_err(|e| Error::netlink(format!("look up {name}"), e))?
                    .ok_or_else(|| {
                        Error::netlink(
                            format!("look up {name}"),
                            io::Error::from_raw_os_error(libc::ENODEV),
                        )
                    })?
            }
        };
        let gateway =
            Ipv4Net::new(self.cfg.gateway(), self.cfg.subnet.prefix_len()).expect("valid prefix");
        tracing::debug!(bridge = %name, %gateway, "bridge address and up");
        nl.add_address(index, gateway)
            .map_err(|e| Error::netlink(format!("add {gateway} to {name}"), e))?;
        nl.set_up(index)
            .map_err(|e| Error::netlink(format!("set {name} up"), e))?;
        Ok(index)
    }

    fn lock(&self) -> Result<File> {
        let path = self.cfg.state_dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        file.lock().map_err(|e| Error::io("lock", &path, e))?;
        Ok(file)
    }

    /// The state of this boot: a file written before the last boot (or left empty by a
    /// crash while it was being replaced) holds nothing that still exists.
    fn read_state(&self) -> Result<State> {
        let path = self.cfg.state_dir.join(STATE_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let fresh = || State {
            boot_id: Some(boot_id().to_string()),
            ..State::default()
        };
        if bytes.is_empty() {
            return Ok(fresh());
        }
        let mut state: State = serde_json::from_slice(&bytes)
            .map_err(|source| Error::CorruptState { path, source })?;
        match &state.boot_id {
            Some(id) if id != boot_id() => {
                tracing::debug!(boot_id = %id, "network state of an earlier boot: starting afresh");
                Ok(fresh())
            }
            _ => {
                state.boot_id = Some(boot_id().to_string());
                Ok(state)
            }
        }
    }

    /// Replaces the state atomically. Not fsync'd: it describes links, rules and
    /// allocations that a power loss ends anyway (see `read_state`), and a sync on every
    /// container start and exit would cost more than the rest of the bookkeeping.
    fn write_state(&self, state: &State) -> Result<()> {
        let path = self.cfg.state_dir.join(STATE_FILE);
        let tmp = self.cfg.state_dir.join(format!("{STATE_FILE}.tmp"));
        let json = serde_json::to_vec_pretty(state).expect("state serializes");
        fs::write(&tmp, json).map_err(|e| Error::io("write", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| Error::io("rename into", &path, e))
    }

    /// Runs `change` on the state under the lock; the state is saved only when it succeeds.
    fn with_state<T>(&self, change: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let _lock = self.lock()?;
        let mut state = self.read_state()?;
        let out = change(&mut state)?;
        self.write_state(&state)?;
        Ok(out)
    }

    /// What `connect` recorded for a container, if it is connected.
    pub fn endpoint(&self, container_id: &str) -> Result<Option<Endpoint>> {
        let _lock = self.lock()?;
        Ok(self.read_state()?.endpoints.remove(container_id))
    }

    /// Every allocated address and its owner (container id).
    pub fn allocated_addresses(&self) -> Result<BTreeMap<Ipv4Addr, String>> {
        let _lock = self.lock()?;
        let state = self.read_state()?;
        Ok(state
            .ips
            .allocated()
            .map(|(ip, owner)| (ip, owner.to_string()))
            .collect())
    }

    /// Every allocated host port (with its protocol) and its owner (container id).
    pub fn allocated_ports(&self) -> Result<BTreeMap<(u16, Proto), String>> {
        let _lock = self.lock()?;
        let state = self.read_state()?;
        Ok(state
            .ports
            .allocated()
            .map(|(port, proto, owner)| ((port, proto), owner.to_string()))
            .collect())
    }

    /// Connects the network namespace of process `pid` (which must not be the host's): a
    /// veth pair with `eth0` inside, an address, the default route via the gateway, and the
    /// published ports. Anything left for `container_id` by a crashed run is purged first.
    pub fn connect(&self, container_id: &str, pid: i32, ports: &[PortSpec]) -> Result<Endpoint> {
        validate_container_id(container_id)?;
        // Ports this value holds for this container (connected again) or for a vanished
        // one (below) pass to whoever takes the same port now without being unbound in
        // between: no other process can take the port meanwhile, and a child that another
        // thread is forking cannot keep a closed socket's copy bound until it execs.
        let handed_over = RefCell::new(self.held().remove(container_id).unwrap_or_default().ports);
        // Only a socket bound exactly as an explicit request asks is taken over; any other
        // would keep its port from being bound another way (0.0.0.0 against 127.0.0.1).
        let explicit = |ip, port, proto| {
            ports
                .iter()
                .any(|spec| (spec.host_ip, spec.host_port, spec.proto) == (ip, Some(port), proto))
        };
        self.reclaim(container_id)?;
        let netns_path = format!("/proc/{pid}/ns/net");
        let netns = File::open(&netns_path)
            .map_err(|e| Error::io("open network namespace", &netns_path, e))?;
        let own = fs::metadata("/proc/self/ns/net")
            .map_err(|e| Error::io("stat", "/proc/self/ns/net", e))?;
        let theirs = netns
            .metadata()
            .map_err(|e| Error::io("stat", &netns_path, e))?;
        if (own.dev(), own.ino()) == (theirs.dev(), theirs.ino()) {
            return Err(Error::SameNetns(pid));
        }

        let host_veth = host_veth_name(container_id);
        let subnet = self.cfg.subnet;
        let held = RefCell::new(Vec::with_capacity(ports.len()));
        let mut vanished_veths = Vec::new();
        let endpoint = self.with_state(|state| {
            // What containers whose monitor is gone left (their ports may be the ones asked
            // for now) goes in the same batch as this container's elements.
            let (mut ops, vanished) = state.release_vanished(ports, Holder::is_gone);
            for (owner, _) in &vanished {
                // Only when the state names a process that is gone while this value held
                // its ports, as after a tampered state; a real holder's sockets closed with it.
                if let Some(held) = self.held().remove(owner) {
                    handed_over.borrow_mut().extend(held.ports);
                }
            }
            handed_over
                .borrow_mut()
                .retain(|held| explicit(held.ip, held.port, held.proto));
            vanished_veths = vanished.into_iter().map(|(_, veth)| veth).collect();
            let ip = state.ips.acquire(subnet, container_id)?;
            let mut mappings = Vec::with_capacity(ports.len());
            for spec in ports {
                let host_port =
                    state
                        .ports
                        .acquire(spec.host_port, spec.proto, container_id, |port| {
                            let ip = spec.host_ip;
                            let taken =
                                HeldPort::take(&mut handed_over.borrow_mut(), ip, port, spec.proto);
                            let socket = match taken {
                                Some(socket) => socket,
                                None => HeldPort::reserve(ip, port, spec.proto)?,
                            };
                            held.borrow_mut().push(socket);
                            Ok(())
                        })?;
                mappings.push(PortMapping {
                    host_ip: spec.host_ip,
                    host_port,
                    container_port: spec.container_port,
                    proto: spec.proto,
                });
            }
            let endpoint = Endpoint {
                ip,
                prefix_len: subnet.prefix_len(),
                gateway: self.cfg.gateway(),
                ports: mappings,
                host_veth: host_veth.clone(),
            };
            state
                .endpoints
                .insert(container_id.to_string(), endpoint.clone());
            state.holders.insert(container_id.to_string(), Holder::me());
            // The elements go in while the state says whose they are: a crash leaves them
            // recorded, and a failed batch leaves nothing (the state is then not saved).
            ops.extend(portmap::connect_ops(
                endpoint.ip,
                &endpoint.ports,
                &state.stale,
            ));
            self.apply_elements(&ops, &format!("publish ports of container {container_id}"))?;
            state.stale.clear();
            Ok(endpoint)
        })?;
        tracing::debug!(container_id, ip = %endpoint.ip, ports = ?endpoint.ports, "allocated");
        for veth in vanished_veths {
            if let Err(e) = Netlink::new().and_then(|mut nl| nl.delete_link(&veth)) {
                tracing::debug!(%veth, error = %e, "veth of a vanished container");
            }
        }

        let setup = self.setup_links(pid, &netns, &endpoint);
        if let Err(err) = setup {
            if let Err(cleanup) = self.disconnect(container_id) {
                tracing::warn!(container_id, error = %cleanup, "cleanup after failed connect");
            }
            return Err(err);
        }
        let held = Held {
            ports: held.into_inner(),
            _links: self.redirect_loopback(container_id, &endpoint),
        };
        self.held().insert(container_id.to_string(), held);
        Ok(endpoint)
    }

    /// Connections from the host to 127.0.0.1 on the endpoint's published TCP ports go
    /// straight to the container (see the `loopback` module); the BPF links are returned
    /// to be held with the ports. Without BPF the DNAT rules carry that traffic as well.
    fn redirect_loopback(&self, container_id: &str, endpoint: &Endpoint) -> Vec<OwnedFd> {
        let redirects: Vec<loopback::Redirect> = endpoint
            .ports
            .iter()
            .filter(|m| m.proto == Proto::Tcp)
            .filter(|m| m.host_ip.is_none_or(|ip| ip == Ipv4Addr::LOCALHOST))
            .map(|m| loopback::Redirect {
                host_port: m.host_port,
                ip: endpoint.ip,
                port: m.container_port,
            })
            .collect();
        if redirects.is_empty() {
            return Vec::new();
        }
        match loopback::attach(&redirects) {
            Ok(links) => links,
            Err(e) => {
                tracing::debug!(container_id, error = %e, "no loopback redirect, the DNAT rules carry 127.0.0.1");
                Vec::new()
            }
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn setup_links(&self, pid: i32, netns: &File, endpoint: &Endpoint) -> Result<()> {
        let bridge_index = self.ensure_bridge()?;
        let host = &endpoint.host_veth;
        let mut nl = Netlink::new().map_err(|e| Error::netlink("open socket", e))?;
        tracing::debug!(%host, pid, "create veth pair, peer {CONTAINER_IFACE} in the container netns");
        nl.create_veth(host, bridge_index, CONTAINER_IFACE, netns, MTU).map_err(|e| {
            let action = if e.raw_os_error() == Some(libc::EEXIST) {
                format!("create veth {host}: {host} on the host or {CONTAINER_IFACE} in process {pid}'s netns already exists")
            } else {
                format!("create veth {host} <-> {CONTAINER_IFACE} in process {pid}'s netns")
            };
            Error::netlink(action, e)
        })?;
        let host_index = nl
            .link_index(host)
            .map_err(|e| Error::netlink(format!("look up {host}"), e))?
            .ok_or_else(|| {
                Error::netlink(
                    format!("look up {host}"),
                    io::Error::from_raw_os_error(libc::ENODEV),
                )
            })?;
        nl.set_up(host_index)
            .map_err(|e| Error::netlink(format!("set {host} up"), e))?;
        // Hairpin: a container reaching its own published port comes back out the same port.
        write_kernel_setting(&format!("/sys/class/net/{host}/brport/hairpin_mode"), "1")?;

        let in_ns = |what: &str| format!("{what} in process {pid}'s netns");
        let mut ns =
            Netlink::in_netns(netns).map_err(|e| Error::netlink(in_ns("open socket"), e))?;
        let eth0 = ns
            .link_index(CONTAINER_IFACE)
            .map_err(|e| Error::netlink(in_ns("look up eth0"), e))?
            .ok_or_else(|| {
                Error::netlink(
                    in_ns("look up eth0"),
                    io::Error::from_raw_os_error(libc::ENODEV),
                )
            })?;
        let address = Ipv4Net::new(endpoint.ip, endpoint.prefix_len).expect("valid prefix");
        tracing::debug!(pid, %address, gateway = %endpoint.gateway, "configure eth0, lo and default route");
        ns.add_address(eth0, address)
            .map_err(|e| Error::netlink(in_ns(&format!("add {address} to eth0")), e))?;
        ns.set_up(eth0)
            .map_err(|e| Error::netlink(in_ns("set eth0 up"), e))?;
        if let Some(lo) = ns
            .link_index("lo")
            .map_err(|e| Error::netlink(in_ns("look up lo"), e))?
        {
            ns.set_up(lo)
                .map_err(|e| Error::netlink(in_ns("set lo up"), e))?;
        }
        ns.add_default_route(endpoint.gateway).map_err(|e| {
            Error::netlink(
                in_ns(&format!("add default route via {}", endpoint.gateway)),
                e,
            )
        })?;
        Ok(())
    }

    /// Applies one batch of element changes; when the table or a map is missing (removed
    /// behind our back: the mark in `open` said it was there), sets the table up again and
    /// retries once.
    fn apply_elements(&self, ops: &[ElementOp], context: &str) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let table = &self.cfg.table;
        let error = |source| Error::PortElements {
            context: context.to_string(),
            table: table.clone(),
            source,
        };
        match self.elements.apply(table, ops) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if ops.iter().all(|op| matches!(op, ElementOp::Remove { .. })) {
                    // No table, no elements to remove.
                    return Ok(());
                }
                tracing::debug!(%table, error = %e, "table missing: setting it up again");
                self.apply_base_ruleset()?;
                self.elements.apply(table, ops).map_err(error)
            }
            Err(e) => Err(error(e)),
        }
    }

    /// Releases everything `container_id` holds: port rules first, then the host veth (which
    /// takes the peer with it; works when the netns is already gone), then its ports and
    /// address. Every step runs even when an earlier one failed; all failures are returned
    /// together. Idempotent: disconnecting an unknown container is fine.
    pub fn disconnect(&self, container_id: &str) -> Result<()> {
        self.teardown(container_id, true)
    }

    /// What a container whose processes have all exited releases: its port rules, ports and
    /// address, as [`Network::disconnect`] does, but not its veth pair. The kernel deletes
    /// both ends when it frees the container's network namespace, right after its last
    /// process is gone, and does so off our path: deleting the host end here would wait
    /// out an RCU barrier (about 20 ms on these machines) before the exit could be
    /// reported. A pair still there when the same container connects again is deleted by
    /// that `connect`, and [`Network::destroy`] deletes every port of the bridge.
    pub fn release(&self, container_id: &str) -> Result<()> {
        self.teardown(container_id, false)
    }

    fn teardown(&self, container_id: &str, delete_veth: bool) -> Result<()> {
        validate_container_id(container_id)?;
        let mut errors = Vec::new();
        // The elements go below; the host ports are free for others again after that.
        let reserved_ports = self.held().remove(container_id);
        // One pass under the lock: the elements of the recorded endpoint go in one batch (a
        // failure is remembered in `stale` for the next connect) and, unless the veth must
        // go first, the ports and the address too. State is written only when it changed.
        let first = self.lock().and_then(|_lock| {
            let mut state = self.read_state()?;
            let mut changed = false;
            let mut failed = None;
            if let Some(endpoint) = state.endpoints.get(container_id) {
                if !endpoint.ports.is_empty() {
                    tracing::debug!(container_id, "remove port elements");
                    let ops = portmap::remove_ops(&endpoint.ports);
                    let context = format!("remove published ports of container {container_id}");
                    if let Err(e) = self.apply_elements(&ops, &context) {
                        let ports = endpoint.ports.clone();
                        state.stale.extend(ports);
                        changed = true;
                        failed = Some(e);
                    }
                }
            }
            let owns_any = state.endpoints.contains_key(container_id)
                || state.holders.contains_key(container_id)
                || state
                    .ips
                    .allocated()
                    .any(|(_, owner)| owner == container_id)
                || state
                    .ports
                    .allocated()
                    .any(|(_, _, owner)| owner == container_id);
            if owns_any && !delete_veth {
                state.release_owner(container_id);
                changed = true;
            }
            if changed {
                self.write_state(&state)?;
            }
            Ok((owns_any && delete_veth, failed))
        });
        let release_after_veth = match first {
            Ok((release, failed)) => {
                errors.extend(failed);
                release
            }
            Err(e) => {
                errors.push(e);
                delete_veth
            }
        };
        if delete_veth {
            let host_veth = host_veth_name(container_id);
            tracing::debug!(container_id, %host_veth, "delete veth");
            let deleted = Netlink::new()
                .and_then(|mut nl| nl.delete_link(&host_veth))
                .map_err(|e| Error::netlink(format!("delete {host_veth}"), e));
            if let Err(e) = deleted {
                errors.push(e);
            }
        }
        if release_after_veth {
            let released = self.with_state(|state| {
                state.release_owner(container_id);
                Ok(())
            });
            if let Err(e) = released {
                errors.push(e);
            }
        }
        drop(reserved_ports);
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Teardown(errors)),
        }
    }

    /// Reclaims what a crashed monitor left for `container_id` (same as [`Network::disconnect`]).
    pub fn reclaim(&self, container_id: &str) -> Result<()> {
        self.disconnect(container_id)
    }

    /// Removes the whole network: the nftables table, every veth of a recorded container
    /// and every other port of the bridge, the bridge and the state files. Keeps going past failures; meant for tests and
    /// for tearing down a dock root.
    pub fn destroy(self) -> Result<()> {
        let mut errors = Vec::new();
        let endpoints = match self.lock().and_then(|_lock| self.read_state()) {
            Ok(state) => state.endpoints,
            Err(e) => {
                errors.push(e);
                BTreeMap::new()
            }
        };
        tracing::debug!(table = %self.cfg.table, "delete nft table");
        if let Err(e) = self.nft.delete_table(&self.cfg.table) {
            errors.push(e);
        }
        match Netlink::new() {
            Ok(mut nl) => {
                let mut links: BTreeSet<String> =
                    endpoints.values().map(|ep| ep.host_veth.clone()).collect();
                // Veths of released containers whose namespace somebody still holds.
                match nl.link_index(&self.cfg.bridge) {
                    Ok(Some(bridge)) => match nl.ports_of(bridge) {
                        Ok(ports) => links.extend(ports),
                        Err(e) => errors.push(Error::netlink(
                            format!("list the ports of {}", self.cfg.bridge),
                            e,
                        )),
                    },
                    Ok(None) => {}
                    Err(e) => {
                        errors.push(Error::netlink(format!("look up {}", self.cfg.bridge), e))
                    }
                }
                for link in links.into_iter().chain([self.cfg.bridge.clone()]) {
                    tracing::debug!(%link, "delete link");
                    if let Err(e) = nl.delete_link(&link) {
                        errors.push(Error::netlink(format!("delete {link}"), e));
                    }
                }
            }
            Err(e) => errors.push(Error::netlink("open socket", e)),
        }
        for name in [STATE_FILE, LOCK_FILE, RULESET_MARK_FILE] {
            let path = self.cfg.state_dir.join(name);
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    errors.push(Error::io("remove", &path, e))
                }
                _ => {}
            }
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Teardown(errors)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inodes of this process's open netfilter netlink sockets.
    fn own_netfilter_sockets() -> Vec<u64> {
        let netfilter: Vec<u64> = std::fs::read_to_string("/proc/self/net/netlink")
            .unwrap()
            .lines()
            .skip(1)
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                (fields.get(1) == Some(&"12")).then(|| fields.last()?.parse().ok())?
            })
            .collect();
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .filter_map(|fd| {
                let target = std::fs::read_link(fd.path()).ok()?;
                let inode = target
                    .to_str()?
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?;
                inode.parse().ok()
            })
            .filter(|inode| netfilter.contains(inode))
            .collect()
    }

    #[test]
    fn a_zombie_holds_nothing() {
        // SAFETY: the child only calls _exit; the parent reaps it below.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            unsafe { libc::_exit(0) };
        }
        // An ended child stays a zombie until it is reaped.
        let zombie = loop {
            match process_stat(pid) {
                Some(('Z', started)) => {
                    break Holder {
                        pid,
                        start_time: started,
                    }
                }
                _ => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        };
        assert!(!zombie.is_gone(false), "its pid still exists");
        assert!(zombie.is_gone(true));
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(zombie.is_gone(false));
        assert!(!Holder::me().is_gone(true));
    }

    #[test]
    fn a_process_about_to_end_hands_its_netfilter_socket_on() {
        let before = own_netfilter_sockets();
        drop(portmap::open_socket().unwrap());
        let opened = own_netfilter_sockets();
        assert_eq!(opened.len(), before.len() + 1, "{opened:?}");
        hand_off_netfilter_socket();
        assert_eq!(own_netfilter_sockets(), before);
        // Nothing left to hand on: a no-op.
        hand_off_netfilter_socket();
    }
    use portmap::Recorder;
    use std::sync::Arc;

    fn mapping(host_port: u16, proto: Proto) -> PortMapping {
        PortMapping {
            host_ip: None,
            host_port,
            container_port: 80,
            proto,
        }
    }

    /// A state where `owner` holds `ip` and the given host ports, connected by `holder`.
    fn hold(state: &mut State, owner: &str, ports: &[PortMapping], holder: Holder) {
        let subnet: Ipv4Net = "10.9.0.0/24".parse().unwrap();
        let ip = state.ips.acquire(subnet, owner).unwrap();
        for m in ports {
            state
                .ports
                .acquire(Some(m.host_port), m.proto, owner, |_| Ok(()))
                .unwrap();
        }
        state.endpoints.insert(
            owner.to_string(),
            Endpoint {
                ip,
                prefix_len: 24,
                gateway: gateway_of(subnet),
                ports: ports.to_vec(),
                host_veth: host_veth_name(owner),
            },
        );
        state.holders.insert(owner.to_string(), holder);
    }

    /// A network over a temporary state directory whose elements go to a recorder: what
    /// `release` does needs no root.
    fn recorded_network(dir: &Path) -> (Network, Arc<Recorder>) {
        let recorder = Arc::new(Recorder::default());
        let cfg = NetConfig::new("dkt0", "10.9.0.0/24".parse().unwrap(), "dock-t", dir);
        let network = Network {
            cfg,
            nft: Nft::new("/nonexistent/nft"),
            elements: Box::new(recorder.clone()),
            held: Mutex::new(BTreeMap::new()),
        };
        (network, recorder)
    }

    #[test]
    fn release_removes_the_elements_in_one_batch_and_forgets_the_endpoint() {
        let dir = tempfile::tempdir().unwrap();
        let (net, recorder) = recorded_network(dir.path());
        let mut state = State::default();
        let ports = [mapping(49153, Proto::Tcp), mapping(5353, Proto::Udp)];
        hold(&mut state, "c1", &ports, Holder::me());
        hold(
            &mut state,
            "c2",
            &[mapping(49154, Proto::Tcp)],
            Holder::me(),
        );
        net.write_state(&state).unwrap();

        net.release("c1").unwrap();
        let batches = recorder.batches.lock().unwrap().clone();
        assert_eq!(
            batches,
            vec![("dock-t".to_string(), portmap::remove_ops(&ports))]
        );
        let state = net.read_state().unwrap();
        assert_eq!(state.endpoints.keys().collect::<Vec<_>>(), ["c2"]);
        assert_eq!(state.holders.keys().collect::<Vec<_>>(), ["c2"]);
        assert_eq!(state.ports.allocated().count(), 1);
        assert_eq!(state.ips.allocated().count(), 1);
        assert!(state.stale.is_empty());
        // Nothing to remove for a container without ports or unknown: no batch at all.
        net.release("c1").unwrap();
        net.release("nobody").unwrap();
        assert_eq!(recorder.batches.lock().unwrap().len(), 1);
    }

    #[test]
    fn elements_that_could_not_be_removed_are_remembered_for_the_next_connect() {
        let dir = tempfile::tempdir().unwrap();
        let (net, recorder) = recorded_network(dir.path());
        let mut state = State::default();
        let ports = [mapping(49153, Proto::Tcp)];
        hold(&mut state, "c1", &ports, Holder::me());
        net.write_state(&state).unwrap();

        *recorder.fail_with.lock().unwrap() = Some(libc::EIO);
        let err = net.release("c1").unwrap_err();
        assert!(err.to_string().contains("dock-t"), "{err}");
        let state = net.read_state().unwrap();
        // The container's allocations are free; its elements are on the list.
        assert!(state.endpoints.is_empty());
        assert_eq!(state.ports.allocated().count(), 0);
        assert_eq!(state.stale, ports);
        // The next connect's batch removes them first.
        let ops = portmap::connect_ops("10.9.0.3".parse().unwrap(), &[], &state.stale);
        assert_eq!(ops, portmap::remove_ops(&ports));
    }

    #[test]
    fn endpoints_of_vanished_monitors_are_released_with_their_elements() {
        let mut state = State::default();
        let dead = Holder {
            pid: 1_000_001,
            start_time: 5,
        };
        let reused = Holder {
            pid: 1_000_002,
            start_time: 6,
        };
        hold(&mut state, "dead", &[mapping(49153, Proto::Tcp)], dead);
        hold(&mut state, "reused", &[mapping(8080, Proto::Tcp)], reused);
        hold(
            &mut state,
            "alive",
            &[mapping(49155, Proto::Tcp)],
            Holder::me(),
        );
        // Written by an older dock: no holder, never taken for vanished.
        hold(&mut state, "old", &[mapping(49156, Proto::Tcp)], dead);
        state.holders.remove("old");

        // The pid of `reused` is alive, but another process has it: found only when its
        // port is the one asked for (the thorough check).
        let is_gone = |h: &Holder, thorough: bool| *h == dead || (thorough && *h == reused);
        let (ops, veths) = state.release_vanished(&[PortSpec::tcp(80)], is_gone);
        assert_eq!(ops, portmap::remove_ops(&[mapping(49153, Proto::Tcp)]));
        assert_eq!(veths, [("dead".to_string(), host_veth_name("dead"))]);
        assert!(!state.endpoints.contains_key("dead"));
        assert_eq!(state.ports.owner(49153, Proto::Tcp), None);

        let wanted: PortSpec = "8080:80".parse().unwrap();
        let (ops, _) = state.release_vanished(&[wanted], is_gone);
        assert_eq!(ops, portmap::remove_ops(&[mapping(8080, Proto::Tcp)]));
        assert_eq!(state.ports.owner(8080, Proto::Tcp), None);
        let left: Vec<&String> = state.endpoints.keys().collect();
        assert_eq!(left, ["alive", "old"]);
    }

    #[test]
    fn this_process_is_alive_and_a_free_pid_is_gone() {
        let me = Holder::me();
        assert!(me.start_time > 0);
        assert!(!me.is_gone(true));
        // pid_max is at most 2^22.
        let free = Holder {
            pid: (1 << 22) + 1,
            start_time: 1,
        };
        assert!(free.is_gone(false));
        let init_elsewhere = Holder {
            pid: 1,
            start_time: u64::MAX,
        };
        assert!(!init_elsewhere.is_gone(false));
        assert!(init_elsewhere.is_gone(true));
    }

    #[test]
    fn veth_names_fit_and_differ() {
        let a = host_veth_name("aaaaaaaaaaaa0001");
        let b = host_veth_name("aaaaaaaaaaaa0002");
        assert_eq!(a.len(), 12);
        assert!(a.starts_with("dk"));
        assert_ne!(a, b);
        assert_eq!(a, host_veth_name("aaaaaaaaaaaa0001"));
    }

    #[test]
    fn config_for_roots() {
        let default = NetConfig::for_root(Path::new(DEFAULT_ROOT));
        assert_eq!(
            (default.bridge.as_str(), default.table.as_str()),
            ("dock0", "dock")
        );
        assert_eq!(default.gateway(), Ipv4Addr::new(172, 17, 0, 1));
        let other = NetConfig::for_root(Path::new("/tmp/some-root"));
        assert!(other.bridge.len() <= 15);
        assert_ne!(other.bridge, default.bridge);
        assert_eq!(other.state_dir, Path::new("/tmp/some-root/net"));
        other.validate().unwrap();
        default.validate().unwrap();
    }

    #[test]
    fn bad_config_and_ids_are_named() {
        let mut cfg = NetConfig::new(
            "a-bridge-name-too-long",
            "10.1.2.0/24".parse().unwrap(),
            "t",
            "/tmp/x",
        );
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("a-bridge-name-too-long"));
        cfg.bridge = "ok0".into();
        cfg.table = "1bad table".into();
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("1bad table"));
        cfg.table = "t".into();
        cfg.subnet = "10.1.2.0/31".parse().unwrap();
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("10.1.2.0/31"));
        for bad in ["", "a b", "x;y", &"f".repeat(65)] {
            assert!(
                matches!(
                    validate_container_id(bad),
                    Err(Error::InvalidContainerId(_))
                ),
                "{bad:?}"
            );
        }
        validate_container_id(&"f".repeat(64)).unwrap();
    }
}
