//! End-to-end networking tests: the real `dock` binary against a private root whose bridge,
//! nftables table and subnet come from `NetConfig::for_root`, so tests run in parallel. Every
//! test owns a [`NetEnv`] whose Drop removes its containers, kills what is left, unmounts, and
//! destroys the root's network (table, veths, bridge), even when the test fails. Traffic goes
//! only to loopback, the root's gateway and the test's own containers.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{code, kill9, stderr, stdout, wait_for_exit, DockRoot};

/// How long a container may take to start listening before a fetch counts as failed.
const LISTEN_DEADLINE: Duration = Duration::from_secs(20);

struct NetEnv {
    root: DockRoot,
    net: netmgr::NetConfig,
}

impl NetEnv {
    fn new() -> NetEnv {
        let root = DockRoot::new();
        let net = runtime::Runtime::open(root.path())
            .unwrap()
            .net_config()
            .unwrap();
        root.import_busybox("busybox");
        NetEnv { root, net }
    }

    /// A detached httpd serving `hello from NAME` on port 80, with the given `-p` flags.
    fn httpd(&self, name: &str, publish: &[&str]) -> String {
        let script = format!(
            "mkdir -p /www && echo 'hello from {name}' > /www/index.html && exec httpd -f -p 80 -h /www"
        );
        let mut args = vec!["run", "-d", "--name", name];
        for p in publish {
            args.extend(["-p", p]);
        }
        args.extend(["busybox", "sh", "-c", &script]);
        self.ok(&args).trim().to_string()
    }

    /// The pid of the container's monitor, from its state (inspect does not show it).
    fn monitor_pid(&self, name: &str) -> i32 {
        let rt = runtime::Runtime::open(self.root.path()).unwrap();
        rt.get(name).unwrap().monitor.unwrap().pid
    }

    fn network(&self) -> netmgr::Network {
        netmgr::Network::open(self.net.clone()).unwrap()
    }

    fn ip_of(&self, name: &str) -> Ipv4Addr {
        self.inspect(name)["NetworkSettings"]["IPAddress"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// The published ports in the root's nftables table: the elements of its port maps
    /// (`dnat_any`, `dnat_addr`), and any chain or rule of a container (as older docks made).
    fn container_rules(&self) -> Vec<String> {
        let out = Command::new("nft")
            .args(["-j", "list", "table", "ip", &self.net.table])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let listing: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut found = Vec::new();
        for item in listing["nftables"].as_array().unwrap() {
            if let Some(map) = item.get("map") {
                for elem in map["elem"].as_array().into_iter().flatten() {
                    found.push(format!("element of {}: {elem}", map["name"]));
                }
            }
            if let Some(chain) = item.get("chain") {
                let name = chain["name"].as_str().unwrap_or("");
                if name.starts_with("ctr-") {
                    found.push(format!("chain {name}"));
                }
            }
        }
        found
    }

    /// Host veths of these containers that still exist.
    fn veths_left(&self, ids: &[String]) -> Vec<String> {
        let out = Command::new("ip").args(["-o", "link"]).output().unwrap();
        let links = stdout(&out);
        ids.iter()
            .map(|id| netmgr::host_veth_name(id))
            .filter(|veth| {
                links.contains(&format!(": {veth}@")) || links.contains(&format!(": {veth}:"))
            })
            .collect()
    }

    /// Asserts the root's network holds nothing for any container. The kernel deletes an
    /// exited container's veth pair with its network namespace, a moment after the exit:
    /// that part is waited for (bounded), the rest must be free at once.
    fn assert_network_free(&self, ids: &[String]) {
        assert_eq!(self.container_rules(), Vec::<String>::new(), "rules left");
        let net = self.network();
        assert!(
            net.allocated_addresses().unwrap().is_empty(),
            "addresses left: {:?}",
            net.allocated_addresses().unwrap()
        );
        assert!(
            net.allocated_ports().unwrap().is_empty(),
            "ports left: {:?}",
            net.allocated_ports().unwrap()
        );
        let mut veths = self.veths_left(ids);
        for _ in 0..500 {
            if veths.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
            veths = self.veths_left(ids);
        }
        assert_eq!(veths, Vec::<String>::new(), "veths left");
    }
}

/// The guard is the root: a `NetEnv` is a root with a busybox image and its network's names.
impl std::ops::Deref for NetEnv {
    type Target = DockRoot;

    fn deref(&self) -> &DockRoot {
        &self.root
    }
}

impl Drop for NetEnv {
    /// Politely first: removing the containers releases their networks through dock itself.
    /// The root's own Drop then kills what is left and destroys the network.
    fn drop(&mut self) {
        let ids = self.run(&["ps", "-a", "-q", "--no-trunc"]);
        for id in stdout(&ids).lines() {
            let _ = self.run(&["rm", "-f", id]);
        }
    }
}

/// A host port below dock's automatic range that nothing listens on right now.
fn free_host_port() -> u16 {
    let mut seed = [0u8; 2];
    getrandom::fill(&mut seed).unwrap();
    let start = 20000 + u16::from_le_bytes(seed) % 20000;
    (start..49000)
        .chain(20000..start)
        .find(|&p| TcpListener::bind(("0.0.0.0", p)).is_ok())
        .expect("a free host port")
}

/// One plain HTTP GET of `/`; the response body.
fn http_get(addr: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET / HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.") && head.contains(" 200 ") => {
            Ok(body.to_string())
        }
        _ => Err(std::io::Error::other(format!("bad response {response:?}"))),
    }
}

/// `http_get`, retried while the server may still be starting.
fn fetch(addr: SocketAddr) -> String {
    let deadline = Instant::now() + LISTEN_DEADLINE;
    loop {
        match http_get(addr) {
            Ok(body) => return body,
            Err(e) if Instant::now() > deadline => panic!("GET http://{addr}/: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[test]
fn published_ports_reach_the_container_from_the_host_the_gateway_and_a_peer() {
    let env = NetEnv::new();
    let fixed = free_host_port();
    let fixed_spec = format!("{fixed}:80");
    let web = env.httpd("web", &["80", &fixed_spec]);

    let c = env.inspect("web");
    let settings = &c["NetworkSettings"];
    let ip = env.ip_of("web");
    assert!(
        env.net.subnet.contains(&ip),
        "{ip} not in {}",
        env.net.subnet
    );
    assert_eq!(settings["Gateway"], env.net.gateway().to_string());
    assert_eq!(settings["IPPrefixLen"], env.net.subnet.prefix_len());
    assert_eq!(settings["Bridge"], env.net.bridge.as_str());
    let bindings = settings["Ports"]["80/tcp"].as_array().unwrap();
    assert_eq!(bindings.len(), 2, "{settings}");
    let auto: u16 = bindings
        .iter()
        .map(|b| b["HostPort"].as_str().unwrap().parse().unwrap())
        .find(|&p| p != fixed)
        .unwrap();
    assert!(
        (netmgr::PORT_RANGE_START..netmgr::PORT_RANGE_END).contains(&auto),
        "{auto}"
    );

    let expected = "hello from web\n";
    for port in [auto, fixed] {
        assert_eq!(fetch((Ipv4Addr::LOCALHOST, port).into()), expected);
        assert_eq!(fetch((env.net.gateway(), port).into()), expected);
    }
    assert_eq!(fetch((ip, 80).into()), expected);

    // A second container on the bridge reaches the first by its address.
    // (nc, not wget: the static busybox wget dies of SIGSEGV in this bare rootfs.)
    let get = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 10 {ip} 80");
    let out = env.run(&["run", "--rm", "busybox", "sh", "-c", &get]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).ends_with(&format!("\r\n\r\n{expected}")),
        "{}",
        stdout(&out)
    );

    // dock port, ps and inspect tell the same story.
    let port = env.ok(&["port", "web"]);
    let mut lines: Vec<&str> = port.lines().collect();
    lines.sort();
    let mut want = vec![
        format!("80/tcp -> 0.0.0.0:{auto}"),
        format!("80/tcp -> 0.0.0.0:{fixed}"),
    ];
    want.sort();
    assert_eq!(lines, want);
    let one = env.ok(&["port", &web[..12], "80/tcp"]);
    assert!(
        one.lines().any(|l| l == format!("0.0.0.0:{fixed}")),
        "{one}"
    );
    assert_eq!(one, env.ok(&["port", "web", "80"]));
    let unknown = env.run(&["port", "web", "81"]);
    assert_ne!(code(&unknown), 0);
    assert!(stderr(&unknown).contains("81/tcp"), "{}", stderr(&unknown));
    let ps = env.ok(&["ps"]);
    assert!(ps.contains(&format!("0.0.0.0:{fixed}->80/tcp")), "{ps}");
    assert!(ps.contains(&format!("0.0.0.0:{auto}->80/tcp")), "{ps}");
    // Docker 0.1.0's PortMapping (kept in the container's state) holds one host port per
    // private port.
    let stored = runtime::Runtime::open(env.root.path())
        .unwrap()
        .get("web")
        .unwrap();
    let legacy = stored.network_settings.port_mapping.unwrap()["80"].clone();
    assert!([auto, fixed]
        .map(|p| p.to_string())
        .contains(&legacy.to_string()));

    env.ok(&["stop", "-t", "1", "web"]);
    let stopped = env.inspect("web");
    assert_eq!(stopped["NetworkSettings"]["IPAddress"], "");
    assert_eq!(env.ok(&["ps"]).lines().count(), 1);
    env.assert_network_free(&[web]);
}

#[test]
fn thirty_containers_started_at_once_get_distinct_addresses_and_ports() {
    let env = NetEnv::new();
    let children: Vec<_> = (0..30)
        .map(|_| {
            env.root
                .cmd()
                .args(["run", "-d", "-p", "80", "busybox", "sleep", "600"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ids = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        ids.push(stdout(&out).trim().to_string());
    }
    let mut addresses = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for id in &ids {
        let c = env.inspect(id);
        addresses.insert(
            c["NetworkSettings"]["IPAddress"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        ports.insert(
            c["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(addresses.len(), 30, "{addresses:?}");
    assert_eq!(ports.len(), 30, "{ports:?}");
    let net = env.network();
    assert_eq!(net.allocated_addresses().unwrap().len(), 30);
    assert_eq!(net.allocated_ports().unwrap().len(), 30);
    let mut rm = vec!["rm", "-f"];
    rm.extend(ids.iter().map(String::as_str));
    env.ok(&rm);
    env.assert_network_free(&ids);
}

#[test]
fn exit_kill_and_a_killed_monitor_all_release_the_network() {
    let env = NetEnv::new();
    // Exits by itself.
    let out = env.run(&["run", "--name", "brief", "-p", "80", "busybox", "true"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let brief = env.inspect("brief")["Id"].as_str().unwrap().to_string();
    // Killed.
    let killed = env
        .ok(&["run", "-d", "-p", "80", "busybox", "sleep", "600"])
        .trim()
        .to_string();
    env.ok(&["kill", &killed]);
    // Its monitor SIGKILLed; the next `dock ps` notices.
    let orphan = env
        .ok(&[
            "run", "-d", "-p", "80", "-p", "53/udp", "busybox", "sleep", "600",
        ])
        .trim()
        .to_string();
    let monitor = env.monitor_pid(&orphan);
    assert_eq!(env.veths_left(std::slice::from_ref(&orphan)).len(), 1);
    assert!(!env.container_rules().is_empty());
    kill9(monitor);
    wait_for_exit(monitor);
    let ps = env.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (137)"), "{ps}");
    env.assert_network_free(&[brief, killed, orphan.clone()]);
    assert!(env.mounts().is_empty(), "{:?}", env.mounts());
    // The reclaimed container runs again with a fresh network.
    env.ok(&["start", &orphan]);
    assert_eq!(env.network().allocated_ports().unwrap().len(), 2);
    env.ok(&["kill", &orphan]);
    env.assert_network_free(&[orphan]);
}

/// A container whose monitor is SIGKILLed keeps its published port recorded; the next run
/// asking for the same host port (no `ps` in between) releases it and gets the port, and
/// once that one is gone no element is left.
#[test]
fn a_killed_monitors_port_is_taken_over_by_the_next_run() {
    let env = NetEnv::new();
    let port = free_host_port();
    let spec = format!("{port}:80");
    let first = env.httpd("first", &[&spec, "81"]);
    let monitor = env.monitor_pid(&first);
    assert_eq!(
        env.container_rules().len(),
        2,
        "{:?}",
        env.container_rules()
    );
    kill9(monitor);
    wait_for_exit(monitor);

    let second = env.httpd("second", &[&spec]);
    assert_eq!(
        fetch((Ipv4Addr::LOCALHOST, port).into()),
        "hello from second\n"
    );
    let second_ip = env.ip_of("second").to_string();
    let rules = env.container_rules();
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert!(rules[0].contains(&format!("\"{second_ip}\"")), "{rules:?}");
    let net = env.network();
    let owners: BTreeSet<String> = net.allocated_ports().unwrap().into_values().collect();
    assert_eq!(owners, BTreeSet::from([second.clone()]));

    env.ok(&["rm", "-f", "second"]);
    let ps = env.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (137)"), "{ps}");
    env.ok(&["rm", "-f", "first"]);
    env.assert_network_free(&[first, second]);
}

#[test]
fn a_taken_host_port_or_a_bad_spec_fails_the_run_and_leaves_nothing() {
    let env = NetEnv::new();
    let port = free_host_port();
    let spec = format!("{port}:80");
    let holder = env.httpd("holder", &[&spec]);

    let out = env.run(&[
        "run", "-d", "--name", "second", "-p", &spec, "busybox", "sleep", "600",
    ]);
    assert_eq!(code(&out), 125, "{}", stderr(&out));
    assert!(stderr(&out).contains(&port.to_string()), "{}", stderr(&out));
    let second = env.inspect("second");
    assert_eq!(second["State"]["Running"], false);
    let second_id = second["Id"].as_str().unwrap().to_string();
    assert_eq!(
        env.veths_left(std::slice::from_ref(&second_id)),
        Vec::<String>::new()
    );
    let net = env.network();
    let owners: BTreeSet<String> = net.allocated_addresses().unwrap().into_values().collect();
    assert_eq!(owners, BTreeSet::from([holder.clone()]));
    let ports = net.allocated_ports().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports.get(&(port, netmgr::Proto::Tcp)), Some(&holder));
    assert_eq!(
        env.container_rules().len(),
        1,
        "{:?}",
        env.container_rules()
    );
    assert!(
        env.mounts().iter().all(|m| !m.contains(&second_id)),
        "{:?}",
        env.mounts()
    );
    assert!(env.monitors().len() == 1, "{:?}", env.monitors());
    // The holder still answers.
    assert_eq!(
        fetch((Ipv4Addr::LOCALHOST, port).into()),
        "hello from holder\n"
    );

    // A bad spec is refused before anything is created.
    let before = env.ok(&["ps", "-a", "-q"]);
    for bad in ["99999", "80:", "x:80", "80/sctp", "1.2.3:80:80", ""] {
        let out = env.run(&["run", "-p", bad, "busybox", "true"]);
        assert_eq!(code(&out), 125, "{bad:?}: {}", stderr(&out));
        // Docker's words name the part: "invalid containerPort: 99999", "invalid hostPort: x".
        assert!(
            stderr(&out).to_lowercase().contains("port"),
            "{bad:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(env.ok(&["ps", "-a", "-q"]), before);

    env.ok(&["rm", "-f", "holder", "second"]);
    env.assert_network_free(&[holder, second_id]);
}

#[test]
fn network_none_has_only_loopback_and_touches_no_bridge() {
    let env = NetEnv::new();
    for flag in ["--network", "--net"] {
        let out = env.run(&["run", "--rm", flag, "none", "busybox", "ip", "-o", "link"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let links: Vec<String> = stdout(&out)
            .lines()
            .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
            .collect();
        assert_eq!(links, ["lo"]);
        assert!(stdout(&out).contains("UP"), "lo is down: {}", stdout(&out));
    }
    // Loopback works inside.
    let out = env.root.busybox_sh(
        &[],
        "mkdir /www && echo up > /www/index.html && httpd -p 127.0.0.1:80 -h /www && wget -qO- http://127.0.0.1/",
    );
    assert_eq!(stdout(&out), "up\n", "{}", stderr(&out));
    // No bridge work at all: the bridge was never created.
    let links = stdout(&Command::new("ip").args(["-o", "link"]).output().unwrap());
    assert!(
        !links.contains(&format!(": {}:", env.net.bridge)),
        "bridge {} exists",
        env.net.bridge
    );
    let out = env.run(&["run", "--network", "none", "-p", "80", "busybox", "true"]);
    assert_eq!(code(&out), 125);
    // (`--network host` is a mode of its own now: tests/runflags.rs.)
    let out = env.run(&["run", "--network", "container:x", "busybox", "true"]);
    assert_eq!(code(&out), 125);
    assert!(
        stderr(&out).contains("use bridge, host or none"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.ok(&["ps", "-a", "-q"]), "");
}
