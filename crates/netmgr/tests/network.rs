//! Real-kernel tests: bridges, veths, network namespaces and nftables. Each test owns its
//! bridge, table, subnet and state dir; guards remove them even when a test fails.

mod common;

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;

use common::{copies_of_sockets_on, fetch, random_free_port, Container, TestNet};
use netmgr::{Error, Network, PortSpec, Proto, PORT_RANGE_END, PORT_RANGE_START};

fn spec(s: &str) -> PortSpec {
    s.parse().unwrap()
}

#[test]
fn connect_configures_the_namespace_and_publishes_ports() {
    let t = TestNet::new();
    let c = Container::spawn();
    let id = t.id();
    let explicit = random_free_port();
    let ep = t
        .net()
        .connect(&id, c.pid(), &[spec("80"), spec(&format!("{explicit}:80"))])
        .unwrap();

    assert!(t.cfg.subnet.contains(&ep.ip));
    assert_ne!(ep.ip, t.gateway());
    assert_eq!((ep.prefix_len, ep.gateway), (24, t.gateway()));
    let auto = ep.ports[0];
    assert!(
        (PORT_RANGE_START..PORT_RANGE_END).contains(&auto.host_port),
        "{auto}"
    );
    assert_eq!((auto.container_port, auto.proto), (80, Proto::Tcp));
    assert_eq!(ep.ports[1].host_port, explicit);

    // Inside: eth0 with the address and MTU, lo up, default route via the gateway.
    let addr = c.ip(&["-4", "-o", "addr", "show", "dev", "eth0"]);
    assert!(addr.contains(&format!("inet {}/24", ep.ip)), "{addr}");
    let link = c.ip(&["-o", "link", "show", "dev", "eth0"]);
    assert!(link.contains("mtu 1500") && link.contains(",UP"), "{link}");
    let lo = c.ip(&["-o", "link", "show", "dev", "lo"]);
    assert!(lo.contains(",UP"), "{lo}");
    let route = c.ip(&["-4", "route", "show", "default"]);
    assert!(
        route.contains(&format!("default via {} dev eth0", t.gateway())),
        "{route}"
    );

    // Outside: the host veth is up and enslaved to the bridge.
    let master = fs::read_link(format!("/sys/class/net/{}/master", ep.host_veth)).unwrap();
    assert!(master.ends_with(&t.cfg.bridge), "{}", master.display());
    let flags = fs::read_to_string(format!("/sys/class/net/{}/flags", ep.host_veth)).unwrap();
    assert_eq!(
        u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap() & 1,
        1
    );

    let hairpin = fs::read_to_string(format!(
        "/sys/class/net/{}/brport/hairpin_mode",
        ep.host_veth
    ))
    .unwrap();
    assert_eq!(hairpin.trim(), "1");

    let server = c.serve(80, "hello from c\n", 5);
    let lo = Ipv4Addr::LOCALHOST;
    assert_eq!(
        fetch(SocketAddrV4::new(lo, auto.host_port)).unwrap(),
        "hello from c\n"
    );
    assert_eq!(
        fetch(SocketAddrV4::new(lo, explicit)).unwrap(),
        "hello from c\n"
    );
    assert_eq!(
        fetch(SocketAddrV4::new(t.gateway(), auto.host_port)).unwrap(),
        "hello from c\n"
    );
    assert_eq!(
        fetch(SocketAddrV4::new(ep.ip, 80)).unwrap(),
        "hello from c\n"
    );
    // Hairpin: the container reaches its own published port through the gateway.
    let own = SocketAddrV4::new(t.gateway(), auto.host_port);
    assert_eq!(c.in_netns(move || fetch(own)).unwrap(), "hello from c\n");
    server.join().unwrap();

    assert_eq!(t.net().endpoint(&id).unwrap(), Some(ep));
    t.net().disconnect(&id).unwrap();
}

#[test]
fn two_containers_reach_each_other_directly_and_through_a_published_port() {
    let t = TestNet::new();
    let (a, b) = (Container::spawn(), Container::spawn());
    let (id_a, id_b) = (t.id(), t.id());
    let port = random_free_port();
    let ep_a = t
        .net()
        .connect(&id_a, a.pid(), &[spec(&format!("{port}:80"))])
        .unwrap();
    let ep_b = t.net().connect(&id_b, b.pid(), &[]).unwrap();
    assert_ne!(ep_a.ip, ep_b.ip);
    assert_ne!(ep_a.host_veth, ep_b.host_veth);

    let server = a.serve(80, "a\n", 2);
    let direct = SocketAddrV4::new(ep_a.ip, 80);
    assert_eq!(b.in_netns(move || fetch(direct)).unwrap(), "a\n");
    let published = SocketAddrV4::new(ep_b.gateway, port);
    assert_eq!(b.in_netns(move || fetch(published)).unwrap(), "a\n");
    server.join().unwrap();

    t.net().disconnect(&id_a).unwrap();
    t.net().disconnect(&id_b).unwrap();
}

#[test]
fn disconnect_leaves_nothing_and_frees_address_and_ports() {
    let t = TestNet::new();
    let mut c = Container::spawn();
    let id = t.id();
    let (tcp, udp) = (random_free_port(), random_free_port());
    let ep = t
        .net()
        .connect(
            &id,
            c.pid(),
            &[
                spec(&format!("{tcp}:80")),
                spec(&format!("127.0.0.1:{udp}:53/udp")),
            ],
        )
        .unwrap();
    assert_eq!(t.elements_to(ep.ip).len(), 2, "{:?}", t.elements());
    assert_eq!(
        t.net().allocated_addresses().unwrap().get(&ep.ip),
        Some(&id)
    );
    assert_eq!(
        t.net().allocated_ports().unwrap().get(&(udp, Proto::Udp)),
        Some(&id)
    );

    // The container exited before the monitor cleaned up: host-side cleanup still works.
    c.kill();
    t.net().disconnect(&id).unwrap();

    assert!(!fs::exists(format!("/sys/class/net/{}", ep.host_veth)).unwrap());
    assert_eq!(t.elements(), Vec::<String>::new());
    assert!(t.net().allocated_addresses().unwrap().is_empty());
    assert!(t.net().allocated_ports().unwrap().is_empty());
    assert_eq!(t.net().endpoint(&id).unwrap(), None);

    // Disconnecting again is fine, and the ports can be taken again.
    t.net().disconnect(&id).unwrap();
    let c2 = Container::spawn();
    let id2 = t.id();
    let ep2 = t
        .net()
        .connect(&id2, c2.pid(), &[spec(&format!("{tcp}:80"))])
        .unwrap();
    assert_eq!(ep2.ports[0].host_port, tcp);
    t.net().disconnect(&id2).unwrap();
}

/// Waits (bounded) for the kernel to delete `link`; whether it is gone.
fn link_goes_away(link: &str) -> bool {
    for _ in 0..500 {
        if !fs::exists(format!("/sys/class/net/{link}")).unwrap() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

#[test]
fn release_frees_rules_ports_and_address_and_leaves_the_veth_to_the_namespace() {
    let t = TestNet::new();
    let mut c = Container::spawn();
    let id = t.id();
    let port = random_free_port();
    let ep = t
        .net()
        .connect(&id, c.pid(), &[spec(&format!("{port}:80"))])
        .unwrap();

    assert_eq!(t.elements_to(ep.ip).len(), 1);
    t.net().release(&id).unwrap();
    assert_eq!(t.elements(), Vec::<String>::new());
    assert!(t.net().allocated_addresses().unwrap().is_empty());
    assert!(t.net().allocated_ports().unwrap().is_empty());
    assert_eq!(t.net().endpoint(&id).unwrap(), None);
    // The pair belongs to the namespace, which is still alive here...
    assert!(fs::exists(format!("/sys/class/net/{}", ep.host_veth)).unwrap());
    // ...and goes with it.
    c.kill();
    assert!(link_goes_away(&ep.host_veth), "{} left", ep.host_veth);

    // A pair still there when the same container connects again is replaced, and
    // destroy deletes a released pair whose namespace is still held.
    let again = Container::spawn();
    t.net().connect(&id, again.pid(), &[]).unwrap();
    t.net().release(&id).unwrap();
    let second = Container::spawn();
    let ep = t.net().connect(&id, second.pid(), &[]).unwrap();
    let addresses = second.ip(&["-o", "-4", "addr", "show", "eth0"]);
    assert!(addresses.contains(&ep.ip.to_string()), "{addresses}");
    t.net().release(&id).unwrap();
    assert!(fs::exists(format!("/sys/class/net/{}", ep.host_veth)).unwrap());
    let mut t = t;
    t.net.take().unwrap().destroy().unwrap();
    assert!(!fs::exists(format!("/sys/class/net/{}", ep.host_veth)).unwrap());
    assert!(!fs::exists(format!("/sys/class/net/{}", t.cfg.bridge)).unwrap());
}

#[test]
fn connect_after_a_crash_purges_leftovers_and_reapplies() {
    let t = TestNet::new();
    let id = t.id();
    let port = random_free_port();
    {
        let first = Container::spawn();
        t.net()
            .connect(&id, first.pid(), &[spec(&format!("{port}:80"))])
            .unwrap();
        // The monitor dies here: no disconnect. State and rules stay, the netns goes.
    }
    assert_eq!(t.elements().len(), 1);
    assert!(t.net().endpoint(&id).unwrap().is_some());

    // The socket this value holds for the port passes to the new connect: a copy that a
    // child forked at this moment would hold cannot keep the port taken.
    let forked_copies = copies_of_sockets_on(port);
    assert_eq!(forked_copies.len(), 1);
    let second = Container::spawn();
    let ep = t
        .net()
        .connect(&id, second.pid(), &[spec(&format!("{port}:80"))])
        .unwrap();
    drop(forked_copies);
    assert_eq!(t.elements_to(ep.ip).len(), 1, "{:?}", t.elements());
    assert_eq!(t.elements().len(), 1, "{:?}", t.elements());
    assert_eq!(t.net().allocated_addresses().unwrap().len(), 1);

    let server = second.serve(80, "second\n", 1);
    assert_eq!(
        fetch(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).unwrap(),
        "second\n"
    );
    server.join().unwrap();
    assert_eq!(ep.ports[0].host_port, port);
    t.net().disconnect(&id).unwrap();
}

/// A monitor killed with SIGKILL: its endpoint, ports and map elements stay recorded under
/// its pid. The next connect sees that process gone and releases them in its own batch, so
/// another container gets the same host port and no element of the dead one remains.
#[test]
fn a_vanished_monitors_port_goes_to_the_next_connect_with_no_element_left() {
    let t = TestNet::new();
    let port = random_free_port();
    let first = Container::spawn();
    let dead_id = t.id();
    let dead = t
        .net()
        .connect(
            &dead_id,
            first.pid(),
            &[spec(&format!("{port}:80")), spec("81")],
        )
        .unwrap();
    assert_eq!(t.elements_to(dead.ip).len(), 2);
    // Make the endpoint's holder a process that has exited (as a killed monitor).
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    let state_file = t.cfg.state_dir.join("net.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&state_file).unwrap()).unwrap();
    state["holders"][&dead_id]["pid"] = gone_pid.into();
    fs::write(&state_file, state.to_string()).unwrap();
    drop(first);

    // This value holds the dead one's port: its socket passes to the new owner, so a copy
    // that a child forked at this moment would hold cannot keep the port taken.
    let forked_copies = copies_of_sockets_on(port);
    assert_eq!(forked_copies.len(), 1);
    let second = Container::spawn();
    let id = t.id();
    let ep = t
        .net()
        .connect(&id, second.pid(), &[spec(&format!("{port}:80"))])
        .unwrap();
    drop(forked_copies);
    assert_eq!(ep.ports[0].host_port, port);
    assert_eq!(t.elements_to(dead.ip), Vec::<String>::new());
    assert_eq!(t.elements(), t.elements_to(ep.ip));
    assert_eq!(t.elements().len(), 1);
    assert_eq!(t.net().endpoint(&dead_id).unwrap(), None);
    let owners: HashSet<String> = t.net().allocated_ports().unwrap().into_values().collect();
    assert_eq!(owners, HashSet::from([id.clone()]));
    let server = second.serve(80, "second\n", 1);
    assert_eq!(
        fetch(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).unwrap(),
        "second\n"
    );
    server.join().unwrap();
    t.net().release(&id).unwrap();
    assert_eq!(t.elements(), Vec::<String>::new());
}

#[test]
fn explicit_ports_taken_on_the_host_or_by_dock_are_errors_naming_the_port() {
    let t = TestNet::new();
    let holder = TcpListener::bind("0.0.0.0:0").unwrap();
    let busy = holder.local_addr().unwrap().port();
    let c = Container::spawn();
    let id = t.id();

    let err = t
        .net()
        .connect(&id, c.pid(), &[spec(&format!("{busy}:80"))])
        .unwrap_err();
    assert!(
        matches!(err, Error::PortInUse { port, .. } if port == busy),
        "{err}"
    );
    assert!(err.to_string().contains(&busy.to_string()), "{err}");
    // Nothing half-done is left behind.
    assert!(t.net().allocated_addresses().unwrap().is_empty());
    assert_eq!(t.net().endpoint(&id).unwrap(), None);
    assert!(!fs::exists(format!("/sys/class/net/{}", netmgr::host_veth_name(&id))).unwrap());

    let udp_holder = UdpSocket::bind("127.0.0.1:0").unwrap();
    let busy_udp = udp_holder.local_addr().unwrap().port();
    let err = t
        .net()
        .connect(
            &id,
            c.pid(),
            &[spec(&format!("127.0.0.1:{busy_udp}:53/udp"))],
        )
        .unwrap_err();
    assert!(err.to_string().contains(&busy_udp.to_string()), "{err}");

    let port = random_free_port();
    t.net()
        .connect(&id, c.pid(), &[spec(&format!("{port}:80"))])
        .unwrap();
    let other = Container::spawn();
    let other_id = t.id();
    let err = t
        .net()
        .connect(&other_id, other.pid(), &[spec(&format!("{port}:8080"))])
        .unwrap_err();
    assert!(
        matches!(err, Error::PortTakenByDock { port: p, .. } if p == port),
        "{err}"
    );
    assert!(err.to_string().contains(&port.to_string()), "{err}");
    assert!(!fs::exists(format!(
        "/sys/class/net/{}",
        netmgr::host_veth_name(&other_id)
    ))
    .unwrap());
    t.net().disconnect(&id).unwrap();
}

#[test]
fn automatic_ports_skip_ports_held_on_the_host() {
    let t = TestNet::new();
    let c = Container::spawn();
    let id = t.id();
    // Hold the first free port of the range, so the allocator must pass over it.
    let held = (PORT_RANGE_START..PORT_RANGE_END)
        .find_map(|p| TcpListener::bind(("0.0.0.0", p)).ok())
        .expect("a free port in the range");
    let held_port = held.local_addr().unwrap().port();
    let ep = t
        .net()
        .connect(&id, c.pid(), &[spec("80"), spec("81")])
        .unwrap();
    let got: Vec<u16> = ep.ports.iter().map(|m| m.host_port).collect();
    assert!(!got.contains(&held_port), "{got:?} contains {held_port}");
    assert!(
        got.iter()
            .all(|p| (PORT_RANGE_START..PORT_RANGE_END).contains(p)),
        "{got:?}"
    );
    assert_ne!(got[0], got[1]);
    t.net().disconnect(&id).unwrap();
}

/// Binds a host port that a release just freed. A child that another test thread is
/// forking may hold a copy of the reservation socket until it execs, so the bind is given a
/// moment (bounded).
fn bind_once_released(addr: (&str, u16)) -> TcpListener {
    for _ in 0..500 {
        if let Ok(listener) = TcpListener::bind(addr) {
            return listener;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("{addr:?} still taken after the release");
}

/// Host ports are the host's, not one network's: a published port stays bound while its
/// container is connected, so another dock root (or any process) cannot take it.
#[test]
fn a_published_port_is_held_on_the_host_until_release() {
    let (a, b) = (TestNet::new(), TestNet::new());
    let (ca, cb) = (Container::spawn(), Container::spawn());
    let (ida, idb) = (a.id(), b.id());
    let explicit = random_free_port();
    let ep_a = a
        .net()
        .connect(
            &ida,
            ca.pid(),
            &[spec("80"), spec(&format!("{explicit}:81"))],
        )
        .unwrap();
    let auto = ep_a.ports[0].host_port;

    // The other root picks another automatic port and cannot have the explicit one.
    let ep_b = b.net().connect(&idb, cb.pid(), &[spec("80")]).unwrap();
    assert_ne!(ep_b.ports[0].host_port, auto);
    let err = b
        .net()
        .connect(&b.id(), cb.pid(), &[spec(&format!("{explicit}:80"))])
        .unwrap_err();
    assert!(
        matches!(err, Error::PortInUse { port, .. } if port == explicit),
        "{err}"
    );
    // Nor can a process on the host.
    assert!(TcpListener::bind(("0.0.0.0", explicit)).is_err());
    assert!(TcpListener::bind(("127.0.0.1", auto)).is_err());

    a.net().release(&ida).unwrap();
    bind_once_released(("0.0.0.0", explicit));
    b.net().disconnect(&idb).unwrap();
}

/// The host's connections to 127.0.0.1 on a published TCP port are redirected when they
/// are made, so they reach the container without NAT on every packet; another network
/// namespace's 127.0.0.1 stays its own, and the redirect goes with the release.
#[test]
fn host_connections_to_loopback_go_straight_to_the_container() {
    let t = TestNet::new();
    let c = Container::spawn();
    let id = t.id();
    let port = random_free_port();
    let ep = t
        .net()
        .connect(&id, c.pid(), &[spec(&format!("{port}:80"))])
        .unwrap();
    let server = c.serve(80, "inside\n", 2);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // Redirected at connect: the connection is the host's (the gateway's) to the container,
    // while the client still sees the address it asked for as its peer.
    assert_eq!(stream.local_addr().unwrap().ip(), t.gateway());
    assert_eq!(
        stream.peer_addr().unwrap(),
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    );
    let mut greeting = String::new();
    stream.read_to_string(&mut greeting).unwrap();
    assert_eq!(greeting, "inside\n");
    // A connection made to the container's own address keeps that address as its peer.
    let direct = TcpStream::connect((ep.ip, 80)).unwrap();
    assert_eq!(direct.peer_addr().unwrap(), SocketAddr::from((ep.ip, 80)));
    drop(direct);
    server.join().unwrap();

    let other = Container::spawn();
    other.ip(&["link", "set", "lo", "up"]);
    let peer = other.in_netns(move || {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (_accepted, from) = listener.accept().unwrap();
        (stream.peer_addr().unwrap(), from.ip())
    });
    assert_eq!(
        peer,
        (
            SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            Ipv4Addr::LOCALHOST.into()
        )
    );

    t.net().release(&id).unwrap();
    let listener = bind_once_released(("127.0.0.1", port));
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let _accepted = listener.accept().unwrap();
    assert_eq!(stream.local_addr().unwrap().ip(), Ipv4Addr::LOCALHOST);
}

#[test]
fn concurrent_connects_get_distinct_addresses_and_ports() {
    let t = Arc::new(TestNet::new());
    let containers: Vec<Container> = (0..10).map(|_| Container::spawn()).collect();
    let ids: Vec<String> = (0..10).map(|_| t.id()).collect();
    let endpoints: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = containers
            .iter()
            .zip(&ids)
            .map(|(c, id)| {
                let cfg = t.cfg.clone();
                let pid = c.pid();
                // Each thread opens the network on its own, like separate dock processes.
                scope.spawn(move || {
                    Network::open(cfg)
                        .unwrap()
                        .connect(id, pid, &[spec("80")])
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ips: HashSet<_> = endpoints.iter().map(|e| e.ip).collect();
    let ports: HashSet<_> = endpoints.iter().map(|e| e.ports[0].host_port).collect();
    assert_eq!((ips.len(), ports.len()), (10, 10));
    assert_eq!(t.net().allocated_addresses().unwrap().len(), 10);
    for id in &ids {
        t.net().disconnect(id).unwrap();
    }
    assert!(t.net().allocated_ports().unwrap().is_empty());
}

#[test]
fn small_subnet_runs_out_and_reuses_released_addresses() {
    let t = TestNet::with_prefix(29);
    let containers: Vec<Container> = (0..6).map(|_| Container::spawn()).collect();
    let ids: Vec<String> = (0..6).map(|_| t.id()).collect();
    let mut ips = Vec::new();
    for (c, id) in containers.iter().zip(&ids).take(5) {
        ips.push(t.net().connect(id, c.pid(), &[]).unwrap().ip);
    }
    let err = t
        .net()
        .connect(&ids[5], containers[5].pid(), &[])
        .unwrap_err();
    assert!(matches!(err, Error::NoMoreAddresses(_)), "{err}");
    t.net().disconnect(&ids[2]).unwrap();
    let ep = t.net().connect(&ids[5], containers[5].pid(), &[]).unwrap();
    assert_eq!(ep.ip, ips[2]);
    for id in &ids {
        t.net().disconnect(id).unwrap();
    }
}

#[test]
fn refuses_the_host_namespace_and_bad_ids() {
    let t = TestNet::new();
    let id = t.id();
    let err = t
        .net()
        .connect(&id, std::process::id() as i32, &[])
        .unwrap_err();
    assert!(matches!(err, Error::SameNetns(_)), "{err}");
    assert!(t.net().allocated_addresses().unwrap().is_empty());
    let err = t.net().connect("bad id", 1, &[]).unwrap_err();
    assert!(matches!(err, Error::InvalidContainerId(_)), "{err}");
}

#[test]
fn open_is_idempotent_and_destroy_removes_everything() {
    let mut t = TestNet::new();
    let again = Network::open(t.cfg.clone()).unwrap();
    drop(again);
    let addr = fs::read_to_string(format!(
        "/proc/sys/net/ipv4/conf/{}/route_localnet",
        t.cfg.bridge
    ))
    .unwrap();
    assert_eq!(addr.trim(), "1");
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .unwrap()
            .trim(),
        "1"
    );
    let chains: Vec<String> = t.listing()["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["chain"]["name"].as_str().map(String::from))
        .collect();
    assert_eq!(
        chains,
        ["prerouting", "output", "postrouting", "forward", "ports"]
    );

    t.net.take().unwrap().destroy().unwrap();
    assert!(!fs::exists(format!("/sys/class/net/{}", t.cfg.bridge)).unwrap());
    let listed = std::process::Command::new("nft")
        .args(["list", "table", "ip", &t.cfg.table])
        .output()
        .unwrap();
    assert!(!listed.status.success());
}

#[test]
fn a_subnet_already_routed_elsewhere_is_refused() {
    let t = TestNet::new();
    let tag = common::random_hex(3);
    let state = tempfile::tempdir().unwrap();
    let cfg = netmgr::NetConfig::new(
        format!("dkt{tag}"),
        t.cfg.subnet,
        format!("dkt_{tag}"),
        state.path(),
    );
    let err = Network::open(cfg)
        .err()
        .expect("overlapping subnet refused");
    assert!(
        matches!(&err, Error::SubnetInUse { device, .. } if *device == t.cfg.bridge),
        "{err}"
    );
    assert!(!fs::exists(format!("/sys/class/net/dkt{tag}")).unwrap());
}

/// Allocations describe links and rules of the running kernel: a state file of an earlier
/// boot, or one a crash left empty, holds nothing; a damaged one of this boot is an error.
#[test]
fn state_of_an_earlier_boot_or_left_empty_is_void_and_damage_is_named() {
    let t = TestNet::new();
    let c = Container::spawn();
    let id = t.id();
    t.net().connect(&id, c.pid(), &[]).unwrap();
    let state_file = t.cfg.state_dir.join("net.json");
    let text = fs::read_to_string(&state_file).unwrap();
    let boot_id = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    assert!(text.contains(boot_id.trim()), "{text}");
    assert_eq!(t.net().allocated_addresses().unwrap().len(), 1);

    fs::write(
        &state_file,
        text.replace(boot_id.trim(), "00000000-0000-0000-0000-000000000000"),
    )
    .unwrap();
    assert!(t.net().allocated_addresses().unwrap().is_empty());

    fs::write(&state_file, "").unwrap();
    assert!(t.net().allocated_addresses().unwrap().is_empty());

    // A file written before the boot was recorded is this boot's.
    let without_boot: serde_json::Value = {
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v.as_object_mut().unwrap().remove("boot_id");
        v
    };
    fs::write(&state_file, without_boot.to_string()).unwrap();
    assert_eq!(t.net().allocated_addresses().unwrap().len(), 1);

    fs::write(&state_file, "{\"ips\": [").unwrap();
    let err = t.net().allocated_addresses().unwrap_err();
    assert!(err.to_string().contains("net.json"), "{err}");
    fs::remove_file(&state_file).unwrap();
    t.net().disconnect(&id).unwrap();
}
