//! Published TCP ports reached from the host at 127.0.0.1, redirected when the connection
//! is made instead of on every packet.
//!
//! The DNAT rules work for every local address, but a connection from the host to
//! 127.0.0.1:PORT pays for them on each packet: conntrack rewrites both directions, the
//! output path re-routes every segment from `lo` to the bridge and the replies take a slow
//! route lookup. A small `cgroup/connect4` BPF program on the cgroup2 root instead rewrites
//! the address that `connect()` was given, for sockets of the host's network namespace only,
//! so the connection goes straight to the container as if the client had asked for its
//! address (as Cilium's socket load balancing does). The program is built here from a
//! dozen instructions, one per container, and attached through a BPF link whose descriptor
//! the monitor holds: when the container is released or its monitor dies, the kernel
//! detaches it. Where BPF is not available the DNAT rules carry the traffic as before.
//!
//! A second program, on `getpeername()`, gives a redirected socket back the address its
//! client asked for (the connect program records it per socket cookie in a small LRU map,
//! and a third program drops the entry when the socket is closed), so the client sees
//! 127.0.0.1:PORT as it would through NAT; everything else sees the connection as one
//! between the host and the container.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

/// One published port: connections to 127.0.0.1:`host_port` go to `ip`:`port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Redirect {
    pub host_port: u16,
    pub ip: Ipv4Addr,
    pub port: u16,
}

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_MAP_TYPE_LRU_HASH: u32 = 9;
const BPF_PROG_TYPE_CGROUP_SOCK: u32 = 9;
const BPF_PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;
const BPF_CGROUP_INET4_CONNECT: u32 = 10;
const BPF_CGROUP_INET4_GETPEERNAME: u32 = 29;
const BPF_CGROUP_INET_SOCK_RELEASE: u32 = 34;
const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;
const BPF_FUNC_MAP_UPDATE_ELEM: i32 = 2;
const BPF_FUNC_MAP_DELETE_ELEM: i32 = 3;
const BPF_FUNC_GET_SOCKET_COOKIE: i32 = 46;
const BPF_FUNC_GET_NETNS_COOKIE: i32 = 122;
const BPF_PSEUDO_MAP_FD: u8 = 1;
/// Redirected sockets remembered for `getpeername()`. A socket's entry goes when it is
/// closed; beyond this many open at once the oldest are dropped first.
const PEER_MAP_ENTRIES: u32 = 4096;
const SO_NETNS_COOKIE: libc::c_int = 71;

// struct bpf_sock_addr offsets.
const USER_IP4: i16 = 4;
const USER_PORT: i16 = 24;
const PROTOCOL: i16 = 36;

/// A `struct bpf_insn`.
#[derive(Clone, Copy)]
#[repr(C)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R6: u8 = 6;
const R10: u8 = 10;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}
/// dst = src (64 bit)
fn mov64_reg(dst: u8, src: u8) -> Insn {
    insn(0xbf, dst, src, 0, 0)
}
/// dst += imm (64 bit)
fn add64_imm(dst: u8, imm: i32) -> Insn {
    insn(0x07, dst, 0, 0, imm)
}
/// dst = imm (64 bit, sign-extended)
fn mov64_imm(dst: u8, imm: i32) -> Insn {
    insn(0xb7, dst, 0, 0, imm)
}
/// *(u64 *)(dst + off) = src
fn store64(dst: u8, off: i16, src: u8) -> Insn {
    insn(0x7b, dst, src, off, 0)
}
/// if dst == imm goto +off (64 bit)
fn jeq64_imm(dst: u8, imm: i32, off: i16) -> Insn {
    insn(0x15, dst, 0, off, imm)
}
/// dst = the map `fd` (two slots)
fn load_map(dst: u8, fd: &OwnedFd) -> [Insn; 2] {
    [
        insn(0x18, dst, BPF_PSEUDO_MAP_FD, 0, fd.as_raw_fd()),
        insn(0, 0, 0, 0, 0),
    ]
}
/// dst = imm (32 bit, zero-extended)
fn mov32_imm(dst: u8, imm: u32) -> Insn {
    insn(0xb4, dst, 0, 0, imm as i32)
}
/// dst = *(u32 *)(src + off)
fn load32(dst: u8, src: u8, off: i16) -> Insn {
    insn(0x61, dst, src, off, 0)
}
/// *(u32 *)(dst + off) = src
fn store32(dst: u8, off: i16, src: u8) -> Insn {
    insn(0x63, dst, src, off, 0)
}
/// if (u32)dst != imm goto +off
fn jne32_imm(dst: u8, imm: u32, off: i16) -> Insn {
    insn(0x56, dst, 0, off, imm as i32)
}
/// if dst != src goto +off (64 bit)
fn jne64_reg(dst: u8, src: u8, off: i16) -> Insn {
    insn(0x5d, dst, src, off, 0)
}
/// goto +off
fn ja(off: i16) -> Insn {
    insn(0x05, 0, 0, off, 0)
}
/// dst = imm64 (two slots)
fn load64_imm(dst: u8, imm: u64) -> [Insn; 2] {
    [
        insn(0x18, dst, 0, 0, imm as u32 as i32),
        insn(0, 0, 0, 0, (imm >> 32) as u32 as i32),
    ]
}
fn call(helper: i32) -> Insn {
    insn(0x85, 0, 0, 0, helper)
}
fn exit() -> Insn {
    insn(0x95, 0, 0, 0, 0)
}

/// A u32 field of `struct bpf_sock_addr` holding network-order bytes, as a load reads it.
fn wire_u32(bytes: [u8; 4]) -> u32 {
    u32::from_ne_bytes(bytes)
}
fn wire_port(port: u16) -> u32 {
    let [hi, lo] = port.to_be_bytes();
    wire_u32([hi, lo, 0, 0])
}

/// The connect program: for a TCP socket of the host's namespace connecting to 127.0.0.1 on
/// one of the published ports, replace the address and remember the one asked for under
/// the socket's cookie in `peers`; always let the connect go on.
fn connect_program(host_netns_cookie: u64, redirects: &[Redirect], peers: &OwnedFd) -> Vec<Insn> {
    let mut p = vec![mov64_reg(R6, R1)];
    // Jumps to the end are patched once its position is known.
    let mut to_end = Vec::new();
    p.push(load32(R2, R6, PROTOCOL));
    to_end.push(p.len());
    p.push(jne32_imm(R2, libc::IPPROTO_TCP as u32, 0));
    p.push(load32(R2, R6, USER_IP4));
    to_end.push(p.len());
    p.push(jne32_imm(R2, wire_u32(Ipv4Addr::LOCALHOST.octets()), 0));
    p.push(mov64_reg(R1, R6));
    p.push(call(BPF_FUNC_GET_NETNS_COOKIE));
    p.extend(load64_imm(R1, host_netns_cookie));
    to_end.push(p.len());
    p.push(jne64_reg(R0, R1, 0));
    p.push(load32(R2, R6, USER_PORT));
    for r in redirects {
        let mut block = vec![
            mov32_imm(R3, wire_u32(r.ip.octets())),
            store32(R6, USER_IP4, R3),
            mov32_imm(R3, wire_port(r.port)),
            store32(R6, USER_PORT, R3),
            // peers[cookie] = (127.0.0.1, host port)
            mov64_reg(R1, R6),
            call(BPF_FUNC_GET_SOCKET_COOKIE),
            store64(R10, -16, R0),
            mov32_imm(R3, wire_u32(Ipv4Addr::LOCALHOST.octets())),
            store32(R10, -8, R3),
            mov32_imm(R3, wire_port(r.host_port)),
            store32(R10, -4, R3),
        ];
        block.extend(load_map(R1, peers));
        block.extend([
            mov64_reg(R2, R10),
            add64_imm(R2, -16),
            mov64_reg(R3, R10),
            add64_imm(R3, -8),
            mov64_imm(R4, 0),
            call(BPF_FUNC_MAP_UPDATE_ELEM),
        ]);
        // Not this port: skip the block and its jump to the end.
        p.push(jne32_imm(
            R2,
            wire_port(r.host_port),
            block.len() as i16 + 1,
        ));
        p.extend(block);
        to_end.push(p.len());
        p.push(ja(0));
    }
    let end = p.len();
    for at in to_end {
        p[at].off = (end - at - 1) as i16;
    }
    p.push(mov32_imm(R0, 1));
    p.push(exit());
    p
}

/// The getpeername program: a socket the connect program redirected gets back the address
/// its client asked for.
fn getpeername_program(peers: &OwnedFd) -> Vec<Insn> {
    let mut p = vec![
        mov64_reg(R6, R1),
        call(BPF_FUNC_GET_SOCKET_COOKIE),
        store64(R10, -8, R0),
    ];
    p.extend(load_map(R1, peers));
    p.extend([
        mov64_reg(R2, R10),
        add64_imm(R2, -8),
        call(BPF_FUNC_MAP_LOOKUP_ELEM),
        jeq64_imm(R0, 0, 4),
        load32(R2, R0, 0),
        store32(R6, USER_IP4, R2),
        load32(R2, R0, 4),
        store32(R6, USER_PORT, R2),
        mov32_imm(R0, 1),
        exit(),
    ]);
    p
}

/// The release program: a closed socket's entry leaves `peers`.
fn release_program(peers: &OwnedFd) -> Vec<Insn> {
    let mut p = vec![call(BPF_FUNC_GET_SOCKET_COOKIE), store64(R10, -8, R0)];
    p.extend(load_map(R1, peers));
    p.extend([
        mov64_reg(R2, R10),
        add64_imm(R2, -8),
        call(BPF_FUNC_MAP_DELETE_ELEM),
        mov32_imm(R0, 1),
        exit(),
    ]);
    p
}

fn bpf(command: libc::c_long, attr: &mut [u8; 144]) -> io::Result<OwnedFd> {
    // SAFETY: the bpf syscall with an attribute buffer of the kernel's union size.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, command, attr.as_mut_ptr(), attr.len()) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor the kernel gave us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

fn put_u32(attr: &mut [u8], at: usize, value: u32) {
    attr[at..at + 4].copy_from_slice(&value.to_ne_bytes());
}
fn put_u64(attr: &mut [u8], at: usize, value: u64) {
    attr[at..at + 8].copy_from_slice(&value.to_ne_bytes());
}

fn create_peer_map() -> io::Result<OwnedFd> {
    let mut attr = [0u8; 144];
    put_u32(&mut attr, 0, BPF_MAP_TYPE_LRU_HASH);
    put_u32(&mut attr, 4, 8);
    put_u32(&mut attr, 8, 8);
    put_u32(&mut attr, 12, PEER_MAP_ENTRIES);
    attr[28..28 + 13].copy_from_slice(b"dock_lo_peers");
    bpf(BPF_MAP_CREATE, &mut attr)
}

/// Loads `program`. The verifier's log is asked for only when the load fails, to say why:
/// with a log from the start, a program longer than the log fails for that reason alone.
fn load(program: &[Insn], program_type: u32, attach_type: u32, name: &str) -> io::Result<OwnedFd> {
    let license = CString::new("GPL").expect("no nul");
    let attempt = |log: Option<&mut Vec<u8>>| {
        let mut attr = [0u8; 144];
        put_u32(&mut attr, 0, program_type);
        put_u32(&mut attr, 4, program.len() as u32);
        put_u64(&mut attr, 8, program.as_ptr() as u64);
        put_u64(&mut attr, 16, license.as_ptr() as u64);
        if let Some(log) = log {
            put_u32(&mut attr, 24, 1);
            put_u32(&mut attr, 28, log.len() as u32);
            put_u64(&mut attr, 32, log.as_mut_ptr() as u64);
        }
        let name = &name.as_bytes()[..name.len().min(15)];
        attr[48..48 + name.len()].copy_from_slice(name);
        put_u32(&mut attr, 68, attach_type);
        bpf(BPF_PROG_LOAD, &mut attr)
    };
    attempt(None).map_err(|e| {
        let mut log = vec![0u8; 256 * 1024];
        let _ = attempt(Some(&mut log));
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        let verifier = String::from_utf8_lossy(&log[..end]);
        // The verifier's conclusion is at the end of its log.
        let last = verifier
            .trim()
            .lines()
            .last()
            .unwrap_or_default()
            .to_string();
        let why = if last.is_empty() {
            String::new()
        } else {
            format!(" ({last})")
        };
        io::Error::new(e.kind(), format!("load BPF program {name}: {e}{why}"))
    })
}

/// `statfs` type of a cgroup2 file system.
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

fn is_cgroup2(path: &str) -> bool {
    let Ok(path) = CString::new(path) else {
        return false;
    };
    // SAFETY: statfs into a zeroed struct of the right type, with a nul-terminated path.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    let ret = unsafe { libc::statfs(path.as_ptr(), &mut fs) };
    ret == 0 && fs.f_type as i64 == CGROUP2_SUPER_MAGIC
}

/// The cgroup2 hierarchy's root as this process sees it: where systems mount it (unified or
/// hybrid), else as /proc/self/mountinfo says. That file is read only as the fallback: it
/// grows with every mount, and each running container has some, so reading it first would
/// make every start slower as more containers run.
fn cgroup2_root() -> io::Result<PathBuf> {
    if let Some(path) = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .find(|path| is_cgroup2(path))
    {
        return Ok(PathBuf::from(path));
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    mountinfo
        .lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fields: Vec<&str> = left.split(' ').collect();
            let is_root = right.split(' ').next() == Some("cgroup2") && fields.get(3) == Some(&"/");
            is_root.then(|| fields.get(4).map(PathBuf::from)).flatten()
        })
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no cgroup2 hierarchy mounted"))
}

/// The cookie of the network namespace this process is in.
fn netns_cookie() -> io::Result<u64> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let mut cookie = 0u64;
    let mut len = size_of::<u64>() as libc::socklen_t;
    // SAFETY: getsockopt into a u64 of the size we pass.
    let ret = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cookie)
}

fn context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Loads the programs for `redirects` and attaches them to the cgroup2 root; they stay
/// attached while the returned links are open. Must be called in the host's network
/// namespace.
pub(crate) fn attach(redirects: &[Redirect]) -> io::Result<Vec<OwnedFd>> {
    attach_programs(redirects).map(|(links, _peers)| links)
}

/// [`attach`], and the map of redirected sockets.
fn attach_programs(redirects: &[Redirect]) -> io::Result<(Vec<OwnedFd>, OwnedFd)> {
    let cookie =
        netns_cookie().map_err(|e| context(e, "read the host's network namespace cookie"))?;
    // The programs hold the map; our descriptor is only for the tests.
    let peers = create_peer_map().map_err(|e| context(e, "create BPF map dock_lo_peers"))?;
    let connect = load(
        &connect_program(cookie, redirects, &peers),
        BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
        BPF_CGROUP_INET4_CONNECT,
        "dock_lo_connect",
    )?;
    let getpeername = load(
        &getpeername_program(&peers),
        BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
        BPF_CGROUP_INET4_GETPEERNAME,
        "dock_lo_peer",
    )?;
    let release = load(
        &release_program(&peers),
        BPF_PROG_TYPE_CGROUP_SOCK,
        BPF_CGROUP_INET_SOCK_RELEASE,
        "dock_lo_release",
    )?;
    let root = cgroup2_root().map_err(|e| context(e, "find the cgroup2 hierarchy"))?;
    let cgroup = File::open(&root).map_err(|e| context(e, &format!("open {}", root.display())))?;
    tracing::debug!(?redirects, cgroup = %root.display(), "attach loopback redirect");
    // getpeername and release first: a redirected socket must never miss its own address,
    // nor outlive its entry.
    let mut links = Vec::with_capacity(3);
    for (program, attach_type) in [
        (getpeername, BPF_CGROUP_INET4_GETPEERNAME),
        (release, BPF_CGROUP_INET_SOCK_RELEASE),
        (connect, BPF_CGROUP_INET4_CONNECT),
    ] {
        let mut attr = [0u8; 144];
        put_u32(&mut attr, 0, program.as_raw_fd() as u32);
        put_u32(&mut attr, 4, cgroup.as_raw_fd() as u32);
        put_u32(&mut attr, 8, attach_type);
        let link = bpf(BPF_LINK_CREATE, &mut attr)
            .map_err(|e| context(e, &format!("attach a BPF program to {}", root.display())))?;
        links.push(link);
    }
    Ok((links, peers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_land_on_the_final_return() {
        let redirects = [
            Redirect {
                host_port: 49153,
                ip: Ipv4Addr::new(10, 0, 0, 2),
                port: 80,
            },
            Redirect {
                host_port: 8080,
                ip: Ipv4Addr::new(10, 0, 0, 2),
                port: 8000,
            },
        ];
        // Any descriptor number will do for the encoding.
        let map = OwnedFd::from(File::open("/dev/null").unwrap());
        let p = connect_program(7, &redirects, &map);
        let end = p.len() - 2;
        let port_checks: Vec<usize> = (0..p.len())
            .filter(|&at| p[at].code == 0x56 && p[at].imm as u32 != wire_u32([127, 0, 0, 1]))
            .filter(|&at| p[at].imm as u32 != libc::IPPROTO_TCP as u32)
            .collect();
        assert_eq!(port_checks.len(), 2);
        for (at, i) in p.iter().enumerate() {
            if port_checks.contains(&at) {
                // A port that does not match skips to the next check, or to the end.
                let next = at + 1 + i.off as usize;
                assert!(
                    next == end || port_checks.contains(&next),
                    "instruction {at}"
                );
            } else if matches!(i.code, 0x05 | 0x5d | 0x56) {
                assert_eq!(at + 1 + i.off as usize, end, "instruction {at}");
            }
        }
        assert_eq!((p[end].code, p[end].imm, p[end + 1].code), (0xb4, 1, 0x95));
        let g = getpeername_program(&map);
        assert_eq!((g[g.len() - 1].code, g[g.len() - 2].imm), (0x95, 1));
    }

    /// Needs root and BPF: as many ports as a container may publish still load.
    #[test]
    fn a_long_program_loads() {
        let redirects: Vec<Redirect> = (0..200)
            .map(|i| Redirect {
                host_port: 50000 + i,
                ip: Ipv4Addr::new(10, 0, 0, 2),
                port: 80 + i,
            })
            .collect();
        let peers = create_peer_map().unwrap();
        load(
            &connect_program(1, &redirects, &peers),
            BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
            BPF_CGROUP_INET4_CONNECT,
            "dock_lo_test",
        )
        .unwrap();
    }

    /// Whether `map` has any entry.
    fn has_entries(map: &OwnedFd) -> bool {
        let mut next_key = 0u64;
        let mut attr = [0u8; 144];
        put_u32(&mut attr, 0, map.as_raw_fd() as u32);
        put_u64(&mut attr, 16, &mut next_key as *mut u64 as u64);
        // SAFETY: BPF_MAP_GET_NEXT_KEY with no key (the first) into a u64.
        let ret = unsafe { libc::syscall(libc::SYS_bpf, 4, attr.as_mut_ptr(), attr.len()) };
        ret == 0
    }

    /// Needs root and BPF. A connection to 127.0.0.1:ASKED lands on another local port, its
    /// client still sees ASKED as its peer, and its entry goes when it is closed.
    #[test]
    fn a_redirected_socket_keeps_the_address_asked_for_until_it_closes() {
        use std::net::{TcpListener, TcpStream};
        let target = TcpListener::bind("127.0.0.1:0").unwrap();
        let asked = TcpListener::bind("127.0.0.1:0").unwrap();
        let asked_port = asked.local_addr().unwrap().port();
        drop(asked);
        let (links, peers) = attach_programs(&[Redirect {
            host_port: asked_port,
            ip: Ipv4Addr::LOCALHOST,
            port: target.local_addr().unwrap().port(),
        }])
        .unwrap();
        let client = TcpStream::connect(("127.0.0.1", asked_port)).unwrap();
        let (_accepted, _) = target.accept().unwrap();
        assert_eq!(
            client.peer_addr().unwrap(),
            (Ipv4Addr::LOCALHOST, asked_port).into()
        );
        assert!(has_entries(&peers));
        drop(client);
        assert!(!has_entries(&peers));
        drop(links);
        // Detached with its links: the port is an ordinary one again.
        assert!(TcpStream::connect(("127.0.0.1", asked_port)).is_err());
    }

    /// Needs a cgroup2 hierarchy (unified or hybrid), as the redirect does.
    #[test]
    fn the_cgroup2_root_is_a_cgroup2_mount() {
        let root = cgroup2_root().unwrap();
        assert!(is_cgroup2(root.to_str().unwrap()), "{}", root.display());
        assert!(!is_cgroup2("/proc"));
    }

    #[test]
    fn ports_and_addresses_are_in_network_order() {
        assert_eq!(wire_port(0x1f90).to_ne_bytes(), [0x1f, 0x90, 0, 0]);
        assert_eq!(wire_u32([127, 0, 0, 1]).to_ne_bytes(), [127, 0, 0, 1]);
    }
}
