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

#[cfg(test)]
mod tests {
    use super::*;

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
}
