//! Docker 0.1.0's network_test.go in Rust form (networkRange, networkSize, ipToInt/intToIp,
//! the /29 allocator), plus the port allocator and `-p` parsing. Pure: no kernel state.

use std::io;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use netmgr::{
    int_to_ip, ip_to_int, network_range, network_size, Error, IpPool, PortPool, PortSpec, Proto,
    PORT_RANGE_START,
};

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn network_range_and_size() {
    let cases = [
        ("192.168.0.1/24", "192.168.0.0", "192.168.0.255", 256),
        ("10.0.0.1/8", "10.0.0.0", "10.255.255.255", 16_777_216),
        ("10.1.2.3/8", "10.0.0.0", "10.255.255.255", 16_777_216),
        ("10.1.2.3/32", "10.1.2.3", "10.1.2.3", 1),
        ("10.1.2.3/31", "10.1.2.2", "10.1.2.3", 2),
        ("10.1.2.3/26", "10.1.2.0", "10.1.2.63", 64),
    ];
    for (input, first, last, size) in cases {
        assert_eq!(network_range(net(input)), (ip(first), ip(last)), "{input}");
        assert_eq!(network_size(net(input)), size, "{input}");
    }
}

#[test]
fn ip_int_round_trip() {
    let n = ip_to_int(ip("127.0.0.1"));
    assert_ne!(n, 0);
    assert_eq!(n, 0x7f00_0001);
    assert_eq!(int_to_ip(n), ip("127.0.0.1"));
    assert_eq!(
        int_to_ip(ip_to_int(ip("255.255.255.255"))),
        ip("255.255.255.255")
    );
}

#[test]
fn slash_29_hands_out_five_and_reuses_released() {
    let subnet = net("127.0.0.1/29");
    let mut pool = IpPool::default();
    let got: Vec<Ipv4Addr> = (0..5)
        .map(|i| pool.acquire(subnet, &format!("c{i}")).unwrap())
        .collect();
    let want: Vec<Ipv4Addr> = (2..=6).map(|d| ip(&format!("127.0.0.{d}"))).collect();
    assert_eq!(got, want);
    assert!(matches!(
        pool.acquire(subnet, "c5"),
        Err(Error::NoMoreAddresses(_))
    ));
    pool.release(got[4]).unwrap();
    assert_eq!(pool.acquire(subnet, "c6").unwrap(), got[4]);
    assert_eq!(pool.owner(got[4]), Some("c6"));
}

#[test]
fn released_address_comes_back_only_when_nothing_else_is_free() {
    let subnet = net("10.9.9.0/29");
    let mut pool = IpPool::default();
    let first = pool.acquire(subnet, "a").unwrap();
    pool.release(first).unwrap();
    let mut later = Vec::new();
    for i in 0..4 {
        later.push(pool.acquire(subnet, &format!("b{i}")).unwrap());
    }
    assert!(!later.contains(&first));
    assert_eq!(pool.acquire(subnet, "c").unwrap(), first);
    assert!(pool.acquire(subnet, "d").is_err());
}

#[test]
fn released_in_order_come_back_in_order() {
    let subnet = net("10.9.9.0/29");
    let mut pool = IpPool::default();
    let all: Vec<Ipv4Addr> = (0..5)
        .map(|i| pool.acquire(subnet, &format!("c{i}")).unwrap())
        .collect();
    pool.release(all[3]).unwrap();
    pool.release(all[1]).unwrap();
    assert_eq!(pool.acquire(subnet, "x").unwrap(), all[3]);
    assert_eq!(pool.acquire(subnet, "y").unwrap(), all[1]);
}

#[test]
fn release_unknown_and_by_owner() {
    let subnet = net("10.9.9.0/28");
    let mut pool = IpPool::default();
    assert!(matches!(
        pool.release(ip("10.9.9.2")),
        Err(Error::AddressNotAllocated(_))
    ));
    let a = pool.acquire(subnet, "a").unwrap();
    let b = pool.acquire(subnet, "b").unwrap();
    assert_eq!(pool.release_owner("a"), vec![a]);
    assert_eq!(pool.owner(b), Some("b"));
    assert_eq!(pool.owner(a), None);
}

fn spec(
    host_ip: Option<&str>,
    host_port: Option<u16>,
    container_port: u16,
    proto: Proto,
) -> PortSpec {
    PortSpec {
        host_ip: host_ip.map(|s| s.parse().unwrap()),
        host_port,
        container_port,
        proto,
    }
}

#[test]
fn parses_every_form() {
    use Proto::*;
    let cases = [
        ("80", spec(None, None, 80, Tcp)),
        ("8080:80", spec(None, Some(8080), 80, Tcp)),
        (
            "127.0.0.1:8080:80",
            spec(Some("127.0.0.1"), Some(8080), 80, Tcp),
        ),
        ("127.0.0.1::80", spec(Some("127.0.0.1"), None, 80, Tcp)),
        ("53/udp", spec(None, None, 53, Udp)),
        ("5353:53/udp", spec(None, Some(5353), 53, Udp)),
        ("80/tcp", spec(None, None, 80, Tcp)),
        (":80", spec(None, None, 80, Tcp)),
    ];
    for (input, want) in cases {
        let got: PortSpec = input.parse().unwrap();
        assert_eq!(got, want, "{input}");
        let again: PortSpec = got.to_string().parse().unwrap();
        assert_eq!(again, got, "round trip of {input}");
    }
}

#[test]
fn rejects_bad_specs_naming_them() {
    // Docker's words for a port that is not one, naming which.
    for (bad, message) in [
        ("0", "invalid containerPort: 0"),
        ("65536", "invalid containerPort: 65536"),
        ("abc", "invalid containerPort: abc"),
        ("+80", "invalid containerPort: +80"),
        ("8080:0", "invalid containerPort: 0"),
        ("99999:80", "invalid hostPort: 99999"),
    ] {
        let err = bad.parse::<PortSpec>().unwrap_err();
        assert_eq!(err.to_string(), message, "{bad}");
    }
    for bad in ["", "80/sctp", "1.2.3:80:80", "a:b:c:d", "80:", "80/"] {
        let err = bad.parse::<PortSpec>().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("invalid port specification: {bad}"),
            "{bad}"
        );
    }
}

#[test]
fn auto_ports_come_from_the_range_in_order_and_wrap() {
    let mut pool = PortPool::default();
    let free = |_| Ok(());
    assert_eq!(
        pool.acquire(None, Proto::Tcp, "a", free).unwrap(),
        PORT_RANGE_START
    );
    assert_eq!(
        pool.acquire(None, Proto::Tcp, "a", free).unwrap(),
        PORT_RANGE_START + 1
    );
    assert!(pool.release(PORT_RANGE_START, Proto::Tcp));
    // The released port is not reused while fresh ones remain.
    assert_eq!(
        pool.acquire(None, Proto::Tcp, "b", free).unwrap(),
        PORT_RANGE_START + 2
    );
    // Ports the host holds are skipped.
    let busy = |p: u16| {
        if p == PORT_RANGE_START + 3 {
            Err(Error::PortInUse {
                ip: Ipv4Addr::UNSPECIFIED,
                port: p,
                proto: Proto::Tcp,
                source: io::Error::from(io::ErrorKind::AddrInUse),
            })
        } else {
            Ok(())
        }
    };
    assert_eq!(
        pool.acquire(None, Proto::Tcp, "b", busy).unwrap(),
        PORT_RANGE_START + 4
    );
    // Same number, other protocol: a separate port.
    assert_eq!(
        pool.acquire(Some(PORT_RANGE_START + 1), Proto::Udp, "c", free)
            .unwrap(),
        PORT_RANGE_START + 1
    );
    assert_eq!(pool.release_owner("b"), 2);
    assert_eq!(pool.owner(PORT_RANGE_START + 1, Proto::Tcp), Some("a"));
}

#[test]
fn explicit_port_taken_by_dock_names_port_and_owner() {
    let mut pool = PortPool::default();
    pool.acquire(Some(8080), Proto::Tcp, "first", |_| Ok(()))
        .unwrap();
    let err = pool
        .acquire(Some(8080), Proto::Tcp, "second", |_| Ok(()))
        .unwrap_err();
    assert!(matches!(err, Error::PortTakenByDock { port: 8080, .. }));
    assert!(err.to_string().contains("8080"), "{err}");
    assert!(err.to_string().contains("first"), "{err}");
}

#[test]
fn exhausted_range_is_an_error() {
    let mut pool = PortPool::default();
    let none_free = |p: u16| {
        Err(Error::PortInUse {
            ip: Ipv4Addr::UNSPECIFIED,
            port: p,
            proto: Proto::Udp,
            source: io::Error::from(io::ErrorKind::AddrInUse),
        })
    };
    assert!(matches!(
        pool.acquire(None, Proto::Udp, "a", none_free),
        Err(Error::NoMorePorts { .. })
    ));
}

#[test]
fn probing_names_what_is_wrong_with_the_host_port() {
    let held = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let err = netmgr::probe_host_port(None, port, Proto::Tcp).unwrap_err();
    assert!(
        matches!(err, Error::PortInUse { port: p, .. } if p == port),
        "{err}"
    );
    assert!(err.to_string().contains(&port.to_string()), "{err}");
    // Binding only: an address this host does not have is refused before any traffic.
    let foreign = Ipv4Addr::new(203, 0, 113, 7);
    let err = netmgr::probe_host_port(Some(foreign), 8080, Proto::Tcp).unwrap_err();
    assert!(
        matches!(err, Error::HostIpNotLocal(ip) if ip == foreign),
        "{err}"
    );
    let mut pool = PortPool::default();
    let err = pool
        .acquire(None, Proto::Udp, "c", |p| {
            netmgr::probe_host_port(Some(foreign), p, Proto::Udp)
        })
        .unwrap_err();
    assert!(matches!(err, Error::HostIpNotLocal(_)), "{err}");
}
