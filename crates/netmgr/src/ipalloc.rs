//! IPv4 helpers and the address pool (Docker 0.1.0's `networkRange`, `networkSize`,
//! `ipToInt`, `intToIp` and `IPAllocator`, made lazy and persistent).

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// First (network) and last (broadcast) address of `net`, whatever host bits it carries.
pub fn network_range(net: Ipv4Net) -> (Ipv4Addr, Ipv4Addr) {
    (net.network(), net.broadcast())
}

/// Number of addresses in `net`, network and broadcast included (/24 gives 256).
pub fn network_size(net: Ipv4Net) -> u64 {
    1u64 << (32 - u32::from(net.prefix_len()))
}

pub fn ip_to_int(ip: Ipv4Addr) -> u32 {
    u32::from_be_bytes(ip.octets())
}

pub fn int_to_ip(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(n.to_be_bytes())
}

/// The gateway (bridge) address of a subnet: its first host address.
pub fn gateway_of(net: Ipv4Net) -> Ipv4Addr {
    int_to_ip(ip_to_int(net.network()).wrapping_add(1))
}

/// Address pool state. Never-used addresses are handed out first, in ascending order
/// (a cursor, so nothing is enumerated up front); once the cursor reached the end of
/// the subnet, released addresses come back least recently released first. The
/// network, broadcast and gateway addresses are never handed out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IpPool {
    /// Offset from the network address of the next never-used candidate.
    next: u64,
    /// Address -> owner (container id).
    allocated: BTreeMap<Ipv4Addr, String>,
    /// Released addresses, oldest release first.
    released: VecDeque<Ipv4Addr>,
}

impl IpPool {
    pub fn acquire(&mut self, subnet: Ipv4Net, owner: &str) -> Result<Ipv4Addr> {
        let base = ip_to_int(subnet.network());
        let gateway = gateway_of(subnet);
        let broadcast_offset = network_size(subnet).saturating_sub(1);
        while self.next < broadcast_offset {
            let offset = self.next;
            self.next += 1;
            if offset == 0 {
                continue;
            }
            let ip = int_to_ip(base.wrapping_add(offset as u32));
            if ip == gateway || self.allocated.contains_key(&ip) {
                continue;
            }
            self.allocated.insert(ip, owner.to_string());
            return Ok(ip);
        }
        while let Some(ip) = self.released.pop_front() {
            // Entries from a different subnet (config changed) are dropped, never handed out.
            if subnet.contains(&ip) && ip != gateway && !self.allocated.contains_key(&ip) {
                self.allocated.insert(ip, owner.to_string());
                return Ok(ip);
            }
        }
        Err(Error::NoMoreAddresses(subnet))
    }

    pub fn release(&mut self, ip: Ipv4Addr) -> Result<()> {
        if self.allocated.remove(&ip).is_none() {
            return Err(Error::AddressNotAllocated(ip));
        }
        self.released.retain(|r| *r != ip);
        self.released.push_back(ip);
        Ok(())
    }

    /// Releases every address held by `owner`, returning them.
    pub fn release_owner(&mut self, owner: &str) -> Vec<Ipv4Addr> {
        let held: Vec<Ipv4Addr> = self
            .allocated
            .iter()
            .filter(|(_, o)| o.as_str() == owner)
            .map(|(ip, _)| *ip)
            .collect();
        for ip in &held {
            self.allocated.remove(ip);
            self.released.push_back(*ip);
        }
        held
    }

    pub fn owner(&self, ip: Ipv4Addr) -> Option<&str> {
        self.allocated.get(&ip).map(String::as_str)
    }

    pub fn allocated(&self) -> impl Iterator<Item = (Ipv4Addr, &str)> {
        self.allocated.iter().map(|(ip, o)| (*ip, o.as_str()))
    }
}
