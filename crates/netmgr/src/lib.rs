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
}

pub struct Network {
    cfg: NetConfig,
    nft: Nft,
    /// The host ports each container connected through this value publishes, kept bound
    /// until it is released (see [`reserve_host_port`]): the monitor holds its `Network` for
    /// the container's life.
    held_ports: Mutex<BTreeMap<String, Vec<OwnedFd>>>,
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
            held_ports: Mutex::new(BTreeMap::new()),
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
        let endpoint = self.with_state(|state| {
            let ip = state.ips.acquire(subnet, container_id)?;
            let mut mappings = Vec::with_capacity(ports.len());
            for spec in ports {
                let host_port =
                    state
                        .ports
                        .acquire(spec.host_port, spec.proto, container_id, |port| {
                            let socket = reserve_host_port(spec.host_ip, port, spec.proto)?;
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
            Ok(endpoint)
        })?;
        tracing::debug!(container_id, ip = %endpoint.ip, ports = ?endpoint.ports, "allocated");

        let setup = self
            .setup_links(pid, &netns, &endpoint)
            .and_then(|()| self.apply_port_rules(container_id, &endpoint));
        if let Err(err) = setup {
            if let Err(cleanup) = self.disconnect(container_id) {
                tracing::warn!(container_id, error = %cleanup, "cleanup after failed connect");
            }
            return Err(err);
        }
        let mut held = held.into_inner();
        held.extend(self.redirect_loopback(container_id, &endpoint));
        self.held_ports().insert(container_id.to_string(), held);
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

    fn held_ports(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<OwnedFd>>> {
        self.held_ports.lock().unwrap_or_else(|e| e.into_inner())
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

    /// Installs the container's DNAT rules in one transaction, replacing leftovers.
    fn apply_port_rules(&self, container_id: &str, endpoint: &Endpoint) -> Result<()> {
        if endpoint.ports.is_empty() {
            return Ok(());
        }
        let table = &self.cfg.table;
        let existing = match self.nft.list_table(table)? {
            Some(listing) => nft::find_container_rules(&listing, table, container_id),
            None => nft::ContainerRules::default(),
        };
        let script =
            nft::connect_script(table, container_id, &existing, endpoint.ip, &endpoint.ports);
        let context = format!("publish ports of container {container_id}");
        if self.nft.apply(&script, &context).is_ok() {
            return Ok(());
        }
        // The table may have been removed behind our back (the mark in `open` said it was
        // there): set it up again and retry once.
        self.apply_base_ruleset()?;
        self.nft.apply(&script, &context)
    }

    fn purge_port_rules(&self, container_id: &str) -> Result<()> {
        let table = &self.cfg.table;
        let Some(listing) = self.nft.list_table(table)? else {
            return Ok(());
        };
        let existing = nft::find_container_rules(&listing, table, container_id);
        if existing.is_empty() {
            return Ok(());
        }
        let script = nft::purge_script(table, container_id, &existing);
        self.nft.apply(
            &script,
            &format!("remove port rules of container {container_id}"),
        )
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
        // The rules go below; the host ports are free for others again after that.
        let reserved_ports = self.held_ports().remove(container_id);
        // Port rules exist only for a recorded endpoint with ports (the endpoint is recorded
        // before its rules are added and forgotten after they are removed), so the `nft`
        // round trips are skipped for everything else.
        let held = self.lock().and_then(|_lock| {
            let state = self.read_state()?;
            let endpoint = state.endpoints.get(container_id);
            let owns_any = endpoint.is_some()
                || state
                    .ips
                    .allocated()
                    .any(|(_, owner)| owner == container_id)
                || state
                    .ports
                    .allocated()
                    .any(|(_, _, owner)| owner == container_id);
            Ok((owns_any, endpoint.is_some_and(|ep| !ep.ports.is_empty())))
        });
        let (owns_any, may_have_rules) = match held {
            Ok(held) => held,
            Err(e) => {
                errors.push(e);
                (true, true)
            }
        };
        if may_have_rules {
            tracing::debug!(container_id, "remove port rules");
            if let Err(e) = self.purge_port_rules(container_id) {
                errors.push(e);
            }
        }
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
        if owns_any {
            let released = self.with_state(|state| {
                state.endpoints.remove(container_id);
                state.ports.release_owner(container_id);
                state.ips.release_owner(container_id);
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
