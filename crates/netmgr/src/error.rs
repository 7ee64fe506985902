//! The crate's one error type.

use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::Proto;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid network config: {0}")]
    InvalidConfig(String),

    #[error("invalid container id {0:?}: expected 1-64 characters of [a-zA-Z0-9_.-]")]
    InvalidContainerId(String),

    #[error("invalid port specification: {0}")]
    InvalidPortSpec(String),

    /// A container port that is not a number in 1-65535 (Docker's words).
    #[error("invalid containerPort: {0}")]
    InvalidContainerPort(String),

    /// A host port that is not a number in 1-65535 (Docker's words).
    #[error("invalid hostPort: {0}")]
    InvalidHostPort(String),

    #[error("no more ip addresses available in {0}")]
    NoMoreAddresses(ipnet::Ipv4Net),

    #[error("ip address {0} is not allocated")]
    AddressNotAllocated(Ipv4Addr),

    #[error("no more ports available ({proto})")]
    NoMorePorts { proto: Proto },

    #[error("port {port}/{proto} is already allocated by dock (container {owner})")]
    PortTakenByDock {
        port: u16,
        proto: Proto,
        owner: String,
    },

    #[error("host address {0} is not an address of this host")]
    HostIpNotLocal(Ipv4Addr),

    #[error("subnet {subnet} overlaps {route}, routed via {device}")]
    SubnetInUse {
        subnet: ipnet::Ipv4Net,
        route: ipnet::Ipv4Net,
        device: String,
    },

    #[error("port {port}/{proto} on {ip} is already in use on the host: {source}")]
    PortInUse {
        ip: Ipv4Addr,
        port: u16,
        proto: Proto,
        source: io::Error,
    },

    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },

    #[error("corrupt network state {}: {source}", path.display())]
    CorruptState {
        path: PathBuf,
        source: serde_json::Error,
    },

    #[error("netlink: {action}: {source}")]
    Netlink { action: String, source: io::Error },

    #[error("process {0} shares the host's network namespace; refusing to configure it")]
    SameNetns(i32),

    #[error("nft not found: install nftables (apt-get install nftables)")]
    NftMissing,

    #[error("nft failed ({context}): {stderr}")]
    Nft { context: String, stderr: String },

    #[error("nftables ({context}) in table ip {table}: {source}")]
    PortElements {
        context: String,
        table: String,
        source: io::Error,
    },

    #[error("{}", join_errors(.0))]
    Teardown(Vec<Error>),
}

fn join_errors(errors: &[Error]) -> String {
    let parts: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    format!("teardown failed: {}", parts.join("; "))
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn netlink(action: impl Into<String>, source: io::Error) -> Error {
        Error::Netlink {
            action: action.into(),
            source,
        }
    }
}
