//! Test fixtures: a private network (unique bridge, table, subnet, state dir) and "containers"
//! (processes in a new network namespace), all removed by Drop guards even when a test fails.

#![allow(dead_code)]

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::mem::ManuallyDrop;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use ipnet::Ipv4Net;
use netmgr::{host_veth_name, NetConfig, Network};

static PICKED_SUBNETS: Mutex<Vec<Ipv4Net>> = Mutex::new(Vec::new());
static PICKED_PORTS: Mutex<Vec<u16>> = Mutex::new(Vec::new());

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("random bytes");
    buf
}

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("random bytes");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// IPv4 routes on the host as networks (default route left out).
fn host_routes() -> Vec<Ipv4Net> {
    let table = fs::read_to_string("/proc/net/route").expect("read /proc/net/route");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let dest = u32::from_str_radix(cols.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(cols.get(7)?, 16).ok()?;
            // /proc/net/route prints the raw in-memory (network order) value.
            let dest = Ipv4Addr::from(dest.to_le_bytes());
            let prefix = mask.count_ones() as u8;
            (prefix > 0).then(|| Ipv4Net::new(dest, prefix).expect("prefix"))
        })
        .collect()
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// A random 10.x.y.0/prefix no route on the host and no other test of this process uses.
pub fn random_subnet(prefix: u8) -> Ipv4Net {
    let mut picked = PICKED_SUBNETS.lock().unwrap();
    let routes = host_routes();
    loop {
        let [x, y] = random_bytes::<2>();
        let candidate = Ipv4Net::new(Ipv4Addr::new(10, 100 + x % 150, y, 0), prefix)
            .unwrap()
            .trunc();
        if routes
            .iter()
            .chain(picked.iter())
            .all(|r| !overlaps(*r, candidate))
        {
            picked.push(candidate);
            return candidate;
        }
    }
}

/// A random port below the automatic range that nothing on the host holds right now.
pub fn random_free_port() -> u16 {
    let mut picked = PICKED_PORTS.lock().unwrap();
    loop {
        let [a, b] = random_bytes::<2>();
        let port = 20000 + (u16::from_le_bytes([a, b]) % 20000);
        if !picked.contains(&port) && TcpListener::bind(("0.0.0.0", port)).is_ok() {
            picked.push(port);
            return port;
        }
    }
}

/// Copies of this process's sockets bound to `port`, as a child that another thread forks
/// at this moment holds them until it execs: while a copy lives, the port stays bound.
pub fn copies_of_sockets_on(port: u16) -> Vec<OwnedFd> {
    let mut copies = Vec::new();
    for entry in fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<RawFd>() else {
            continue;
        };
        let is_socket = fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        // SAFETY: only borrowed (never closed); on a descriptor that is no longer a
        // socket, `local_addr` fails and nothing else is done with it.
        let socket = ManuallyDrop::new(unsafe { TcpListener::from_raw_fd(fd) });
        if socket.local_addr().is_ok_and(|addr| addr.port() == port) {
            copies.push(socket.try_clone().unwrap().into());
        }
    }
    copies
}

pub fn container_id() -> String {
    random_hex(32)
}

/// A private network; Drop removes the table, bridge, veths of every id used, and the state.
pub struct TestNet {
    pub cfg: NetConfig,
    pub net: Option<Network>,
    pub ids: Mutex<HashSet<String>>,
    _state: tempfile::TempDir,
}

impl TestNet {
    pub fn new() -> TestNet {
        TestNet::with_prefix(24)
    }

    pub fn with_prefix(prefix: u8) -> TestNet {
        let state = tempfile::tempdir().expect("tempdir");
        let tag = random_hex(3);
        let cfg = NetConfig::new(
            format!("dkt{tag}"),
            random_subnet(prefix),
            format!("dkt_{tag}"),
            state.path().join("net"),
        );
        let mut guard = TestNet {
            cfg: cfg.clone(),
            net: None,
            ids: Mutex::new(HashSet::new()),
            _state: state,
        };
        guard.net = Some(Network::open(cfg).expect("open network"));
        guard
    }

    pub fn net(&self) -> &Network {
        self.net.as_ref().expect("network is open")
    }

    /// Remembers `id` so Drop deletes its veth even if the test fails before disconnect.
    pub fn id(&self) -> String {
        let id = container_id();
        self.ids.lock().unwrap().insert(id.clone());
        id
    }

    pub fn gateway(&self) -> Ipv4Addr {
        self.cfg.gateway()
    }

    pub fn listing(&self) -> serde_json::Value {
        let out = Command::new("nft")
            .args(["-j", "list", "table", "ip", &self.cfg.table])
            .output()
            .expect("run nft");
        assert!(
            out.status.success(),
            "nft list: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("nft json")
    }

    /// Every element of the table's port maps (`dnat_any`, `dnat_addr`), as nft's JSON.
    pub fn elements(&self) -> Vec<String> {
        let listing = self.listing();
        let mut found = Vec::new();
        for item in listing["nftables"].as_array().unwrap() {
            if let Some(map) = item.get("map") {
                for elem in map["elem"].as_array().into_iter().flatten() {
                    found.push(format!("{}: {elem}", map["name"]));
                }
            }
        }
        found
    }

    /// The elements sending a host port to `ip`.
    pub fn elements_to(&self, ip: Ipv4Addr) -> Vec<String> {
        let quoted = format!("\"{ip}\"");
        self.elements()
            .into_iter()
            .filter(|e| e.contains(&quoted))
            .collect()
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        if let Some(net) = self.net.take() {
            let _ = net.destroy();
        }
        for id in self.ids.lock().unwrap().iter() {
            let _ = Command::new("ip")
                .args(["link", "del", &host_veth_name(id)])
                .stderr(Stdio::null())
                .status();
        }
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &self.cfg.table])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.cfg.bridge])
            .stderr(Stdio::null())
            .status();
    }
}

fn netns_id(path: &str) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// A process in a new network namespace; Drop kills it (which frees the namespace).
pub struct Container {
    child: Child,
}

impl Container {
    pub fn spawn() -> Container {
        let child = Command::new("unshare")
            .args(["--net", "sleep", "300"])
            .spawn()
            .expect("spawn unshare");
        let container = Container { child };
        let own = netns_id("/proc/self/ns/net");
        let theirs = format!("/proc/{}/ns/net", container.pid());
        // unshare switches namespaces right after it starts; wait until it has.
        for _ in 0..10_000 {
            let current = netns_id(&theirs);
            if current.is_some() && current != own {
                return container;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        panic!(
            "process {} never left the host network namespace",
            container.pid()
        );
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn netns(&self) -> File {
        File::open(format!("/proc/{}/ns/net", self.pid())).expect("open netns")
    }

    /// Runs `f` on a thread inside this container's network namespace.
    pub fn in_netns<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let netns = self.netns();
        std::thread::spawn(move || {
            nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("netns thread")
    }

    /// `ip ARGS` run inside the container's network namespace.
    pub fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("nsenter")
            .args(["-t", &self.pid().to_string(), "-n", "ip"])
            .args(args)
            .output()
            .expect("run nsenter ip");
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A TCP server on 0.0.0.0:`port` inside the container that answers `connections`
    /// connections with `greeting`, then stops.
    pub fn serve(&self, port: u16, greeting: &str, connections: usize) -> JoinHandle<()> {
        let listener =
            self.in_netns(move || TcpListener::bind(("0.0.0.0", port)).expect("bind in container"));
        let greeting = greeting.to_string();
        std::thread::spawn(move || {
            for _ in 0..connections {
                let (mut stream, _) = listener.accept().expect("accept");
                let _ = stream.write_all(greeting.as_bytes());
            }
        })
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Connects to `addr` and reads what the server says.
pub fn fetch(addr: impl Into<SocketAddr>) -> std::io::Result<String> {
    let addr = addr.into();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut out = String::new();
    stream.read_to_string(&mut out)?;
    Ok(out)
}
