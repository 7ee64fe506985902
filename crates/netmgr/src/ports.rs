//! Port specifications (`-p`), the host port pool and the host-side "is it free" probe.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::os::fd::OwnedFd;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Host ports handed out for `-p PRIVATE`: 49153 up to and excluding 65535, as Docker 0.1.0.
pub const PORT_RANGE_START: u16 = 49153;
pub const PORT_RANGE_END: u16 = 65535;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    #[default]
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `-p` argument: `PRIVATE`, `HOST:PRIVATE`, `IP:HOST:PRIVATE` or `IP::PRIVATE`,
/// each optionally followed by `/tcp` or `/udp` (TCP by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub proto: Proto,
}

impl PortSpec {
    pub fn tcp(container_port: u16) -> PortSpec {
        PortSpec {
            host_ip: None,
            host_port: None,
            container_port,
            proto: Proto::Tcp,
        }
    }
}

/// A port number; `bad` names which one (container or host) when it is not one.
fn parse_port(s: &str, whole: &str, bad: fn(String) -> Error) -> Result<u16> {
    match s.parse::<u16>() {
        Ok(p) if p != 0 && s.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ if s.is_empty() => Err(Error::InvalidPortSpec(whole.to_string())),
        _ => Err(bad(s.to_string())),
    }
}

impl FromStr for PortSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<PortSpec> {
        let invalid = || Error::InvalidPortSpec(s.to_string());
        let (ports, proto) = match s.rsplit_once('/') {
            Some((ports, "tcp")) => (ports, Proto::Tcp),
            Some((ports, "udp")) => (ports, Proto::Udp),
            Some(_) => return Err(invalid()),
            None => (s, Proto::Tcp),
        };
        let parts: Vec<&str> = ports.split(':').collect();
        let (host_ip, host_port, container_port) = match parts.as_slice() {
            [private] => (None, None, *private),
            [host, private] => (None, Some(*host), *private),
            [ip, host, private] => {
                let ip: Ipv4Addr = ip.parse().map_err(|_| invalid())?;
                (Some(ip), Some(*host), *private)
            }
            _ => return Err(invalid()),
        };
        let host_port = match host_port {
            None | Some("") => None,
            Some(p) => Some(parse_port(p, s, Error::InvalidHostPort)?),
        };
        Ok(PortSpec {
            host_ip,
            host_port,
            container_port: parse_port(container_port, s, Error::InvalidContainerPort)?,
            proto,
        })
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.host_ip, self.host_port) {
            (Some(ip), Some(hp)) => write!(f, "{ip}:{hp}:")?,
            (Some(ip), None) => write!(f, "{ip}::")?,
            (None, Some(hp)) => write!(f, "{hp}:")?,
            (None, None) => {}
        }
        write!(f, "{}/{}", self.container_port, self.proto)
    }
}

/// A published port as it was set up: `host_ip` None means every local address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip = self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        write!(
            f,
            "{ip}:{}->{}/{}",
            self.host_port, self.container_port, self.proto
        )
    }
}

/// Checks that no process on the host holds `port` by binding it ourselves for a moment.
pub fn probe_host_port(ip: Option<Ipv4Addr>, port: u16, proto: Proto) -> Result<()> {
    reserve_host_port(ip, port, proto).map(drop)
}

/// Binds `port` on the host and keeps it bound for as long as the returned socket lives, as
/// Docker does for a published port: no process (and no other dock root) can take a port
/// whose traffic the DNAT rules send to a container, and the bind fails clearly when one
/// already has it. TCP listens (as Docker's does) so that a `SO_REUSEADDR` bind elsewhere
/// still conflicts; nothing reaches it, the rules take the traffic first.
pub fn reserve_host_port(ip: Option<Ipv4Addr>, port: u16, proto: Proto) -> Result<OwnedFd> {
    let ip = ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let addr = SocketAddrV4::new(ip, port);
    let bound: io::Result<OwnedFd> = match proto {
        Proto::Tcp => TcpListener::bind(addr).map(OwnedFd::from),
        Proto::Udp => UdpSocket::bind(addr).map(OwnedFd::from),
    };
    bound.map_err(|source| match source.kind() {
        io::ErrorKind::AddrNotAvailable => Error::HostIpNotLocal(ip),
        _ => Error::PortInUse {
            ip,
            port,
            proto,
            source,
        },
    })
}

/// A host port bound by [`reserve_host_port`], with the address it was asked for.
#[derive(Debug)]
pub(crate) struct HeldPort {
    pub(crate) ip: Option<Ipv4Addr>,
    pub(crate) port: u16,
    pub(crate) proto: Proto,
    /// Open only to keep the port bound.
    _socket: OwnedFd,
}

impl HeldPort {
    /// Binds `port` as [`reserve_host_port`] does and remembers what for.
    pub(crate) fn reserve(ip: Option<Ipv4Addr>, port: u16, proto: Proto) -> Result<HeldPort> {
        let socket = reserve_host_port(ip, port, proto)?;
        Ok(HeldPort {
            ip,
            port,
            proto,
            _socket: socket,
        })
    }

    /// The one in `held` bound for exactly this address, port and protocol, taken out.
    pub(crate) fn take(
        held: &mut Vec<HeldPort>,
        ip: Option<Ipv4Addr>,
        port: u16,
        proto: Proto,
    ) -> Option<HeldPort> {
        let at = held
            .iter()
            .position(|h| (h.ip, h.port, h.proto) == (ip, port, proto))?;
        Some(held.swap_remove(at))
    }
}

fn key(port: u16, proto: Proto) -> String {
    format!("{port}/{proto}")
}

/// Host port pool: `"PORT/PROTO" -> owner`. Automatic ports come from a cursor that
/// wraps around the range, so a port that was just released is the last one reused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PortPool {
    next: u16,
    allocated: BTreeMap<String, String>,
}

impl PortPool {
    /// Takes `requested`, or the next free port of the range when None. `probe` says whether
    /// the host has the port free (see [`probe_host_port`]).
    pub fn acquire(
        &mut self,
        requested: Option<u16>,
        proto: Proto,
        owner: &str,
        probe: impl Fn(u16) -> Result<()>,
    ) -> Result<u16> {
        if let Some(port) = requested {
            if let Some(holder) = self.allocated.get(&key(port, proto)) {
                return Err(Error::PortTakenByDock {
                    port,
                    proto,
                    owner: holder.clone(),
                });
            }
            probe(port)?;
            self.allocated.insert(key(port, proto), owner.to_string());
            return Ok(port);
        }
        let span = PORT_RANGE_END - PORT_RANGE_START;
        if !(PORT_RANGE_START..PORT_RANGE_END).contains(&self.next) {
            self.next = PORT_RANGE_START;
        }
        for step in 0..span {
            let port = PORT_RANGE_START + (self.next - PORT_RANGE_START + step) % span;
            if self.allocated.contains_key(&key(port, proto)) {
                continue;
            }
            match probe(port) {
                Ok(()) => {}
                // No port will do on an address the host does not have.
                Err(e @ Error::HostIpNotLocal(_)) => return Err(e),
                Err(_) => continue,
            }
            self.next = if port + 1 == PORT_RANGE_END {
                PORT_RANGE_START
            } else {
                port + 1
            };
            self.allocated.insert(key(port, proto), owner.to_string());
            return Ok(port);
        }
        Err(Error::NoMorePorts { proto })
    }

    pub fn release(&mut self, port: u16, proto: Proto) -> bool {
        self.allocated.remove(&key(port, proto)).is_some()
    }

    /// Releases every port held by `owner`, returning how many.
    pub fn release_owner(&mut self, owner: &str) -> usize {
        let before = self.allocated.len();
        self.allocated.retain(|_, o| o != owner);
        before - self.allocated.len()
    }

    pub fn owner(&self, port: u16, proto: Proto) -> Option<&str> {
        self.allocated.get(&key(port, proto)).map(String::as_str)
    }

    /// Every allocated `(port, proto, owner)`.
    pub fn allocated(&self) -> impl Iterator<Item = (u16, Proto, &str)> {
        self.allocated.iter().filter_map(|(k, owner)| {
            let (port, proto) = k.split_once('/')?;
            let proto = if proto == "udp" {
                Proto::Udp
            } else {
                Proto::Tcp
            };
            Some((port.parse().ok()?, proto, owner.as_str()))
        })
    }
}
