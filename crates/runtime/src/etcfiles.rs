//! The container's own `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf`, as Docker makes
//! them: files in the container's directory, written at every start and bind-mounted over the
//! rootfs by sysinit (their mount points come from the init layer, so `diff` and `commit`
//! never see them).
//!
//! resolv.conf is the host's (`/etc/resolv.conf`, or `$DOCK_RESOLV_CONF`) without its loopback
//! nameservers, which cannot be reached from the container's network namespace; when none is
//! left, Docker's fallback (Google's public DNS) is used. `--dns` and `--dns-search` replace
//! the host's nameservers and search domains.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Names the file the host's resolver configuration is read from (tests point it elsewhere;
/// the host's own file is never written).
pub const RESOLV_CONF_ENV: &str = "DOCK_RESOLV_CONF";
/// Docker's fallback nameservers when the host has none a container can reach.
pub const FALLBACK_NAMESERVERS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];
/// systemd-resolved's file with the real upstream servers, used (as Docker does) when the
/// host's /etc/resolv.conf names only the local stub.
const RESOLVED_UPSTREAM: &str = "/run/systemd/resolve/resolv.conf";

/// The file names in the container directory, and where they go in the container.
pub const FILES: [(&str, &str); 3] = [
    ("hostname", "/etc/hostname"),
    ("hosts", "/etc/hosts"),
    ("resolv.conf", "/etc/resolv.conf"),
];

/// `/etc/hosts` of a container: localhost, the IPv6 names, `extra` (`--add-host`), then the
/// container's own address (when it has one) with its hostname.
pub fn hosts(hostname: &str, ip: Option<IpAddr>, extra: &[(String, String)]) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::\tip6-localnet\nff00::\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    for (host, address) in extra {
        out.push_str(&format!("{address}\t{host}\n"));
    }
    if let Some(ip) = ip {
        out.push_str(&format!("{ip}\t{hostname}\n"));
    }
    out
}

/// `--add-host HOST:IP` (also `HOST=IP`; `IP` may be IPv6, or `host-gateway`): (host, ip).
pub fn parse_extra_host(spec: &str) -> Result<(String, String)> {
    let invalid = || {
        Error::InvalidOption(format!(
            "invalid argument {spec:?} for --add-host: expected HOST:IP"
        ))
    };
    let (host, address) = match spec.split_once('=') {
        Some(pair) => pair,
        None => spec.split_once(':').ok_or_else(invalid)?,
    };
    let address = address.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(invalid());
    }
    if address != HOST_GATEWAY && address.parse::<IpAddr>().is_err() {
        return Err(Error::InvalidOption(format!(
            "invalid IP address in add-host: {address:?}"
        )));
    }
    Ok((host.to_string(), address.to_string()))
}

/// The `--add-host` address that stands for the bridge's gateway (the host).
pub const HOST_GATEWAY: &str = "host-gateway";

/// `--dns IP`.
pub fn check_dns(ip: &str) -> Result<()> {
    ip.parse::<IpAddr>()
        .map(|_| ())
        .map_err(|_| Error::InvalidOption(format!("{ip} is not an ip address")))
}

/// The host's resolver file: `$DOCK_RESOLV_CONF`, else /etc/resolv.conf, except that a host
/// whose /etc/resolv.conf names only systemd-resolved's stub gets its upstream file.
pub fn host_resolv_conf() -> PathBuf {
    if let Some(path) = std::env::var_os(RESOLV_CONF_ENV) {
        return PathBuf::from(path);
    }
    let etc = PathBuf::from("/etc/resolv.conf");
    let stub_only = fs::read_to_string(&etc).is_ok_and(|text| {
        let servers = nameservers(&text);
        !servers.is_empty() && servers.iter().all(|s| s == "127.0.0.53")
    });
    if stub_only && Path::new(RESOLVED_UPSTREAM).exists() {
        return PathBuf::from(RESOLVED_UPSTREAM);
    }
    etc
}

fn nameservers(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next().map(str::to_string))
                .flatten()
        })
        .collect()
}

fn is_loopback(server: &str) -> bool {
    // A zone (`fe80::1%eth0`) does not make an address reachable either way.
    let server = server.split('%').next().unwrap_or(server);
    server.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The container's resolv.conf from the host's `host` text. Without `dns`/`dns_search` it is
/// the host's file without its loopback `nameserver` lines; with them, nameserver, search and
/// options lines as Docker generates them (`dns_search` `["."]`: no search domains).
pub fn resolv_conf(host: &str, dns: &[String], dns_search: &[String]) -> String {
    let kept: Vec<&str> = host
        .lines()
        .filter(|line| {
            let mut words = line.split_whitespace();
            !(words.next() == Some("nameserver") && words.next().is_some_and(is_loopback))
        })
        .collect();
    let fallback = || {
        FALLBACK_NAMESERVERS
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    if dns.is_empty() && dns_search.is_empty() {
        let mut out: String = kept.iter().map(|line| format!("{line}\n")).collect();
        if nameservers(&out).is_empty() {
            for server in fallback() {
                out.push_str(&format!("nameserver {server}\n"));
            }
        }
        return out;
    }
    let kept_text: String = kept.iter().map(|line| format!("{line}\n")).collect();
    let servers = if dns.is_empty() {
        let servers = nameservers(&kept_text);
        if servers.is_empty() {
            fallback()
        } else {
            servers
        }
    } else {
        dns.to_vec()
    };
    let search: Vec<String> = if dns_search.is_empty() {
        kept.iter()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                matches!(words.next(), Some("search" | "domain"))
                    .then(|| words.map(str::to_string).collect::<Vec<_>>())
            })
            .next_back()
            .unwrap_or_default()
    } else {
        dns_search
            .iter()
            .filter(|d| d.as_str() != ".")
            .cloned()
            .collect()
    };
    let options: Vec<String> = kept
        .iter()
        .filter_map(|line| line.trim_start().strip_prefix("options"))
        .flat_map(|rest| rest.split_whitespace().map(str::to_string))
        .collect();
    let mut out = String::new();
    for server in servers {
        out.push_str(&format!("nameserver {server}\n"));
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// Writes the container's hostname, hosts (without an address yet: see [`write_hosts`])
/// and resolv.conf into `dir`, the container's directory, before it starts.
pub fn write_all(dir: &Path, config: &crate::Config, hc: &crate::HostConfig) -> Result<()> {
    write(&dir.join("hostname"), &format!("{}\n", config.hostname))?;
    write_hosts(dir, &config.hostname, &hc.extra_hosts, None, None)?;
    let source = host_resolv_conf();
    let host = read_host_resolv(&source)?;
    tracing::debug!(source = %source.display(), dns = ?hc.dns, search = ?hc.dns_search, "writing resolv.conf");
    write(
        &dir.join("resolv.conf"),
        &resolv_conf(&host, &hc.dns, &hc.dns_search),
    )
}

/// Writes `dir/hosts` for a container at `ip` (none: not networked); `host-gateway` in
/// `extra_hosts` is `gateway` (left out without one).
pub fn write_hosts(
    dir: &Path,
    hostname: &str,
    extra_hosts: &[String],
    ip: Option<IpAddr>,
    gateway: Option<IpAddr>,
) -> Result<()> {
    let mut extra = Vec::new();
    for spec in extra_hosts {
        let (host, address) = parse_extra_host(spec)?;
        if address == HOST_GATEWAY {
            if let Some(gateway) = gateway {
                extra.push((host, gateway.to_string()));
            }
        } else {
            extra.push((host, address));
        }
    }
    write(&dir.join("hosts"), &hosts(hostname, ip, &extra))
}

/// Writes `path` in place (truncate and write, never a new inode): a running container's bind
/// mount keeps showing the file.
pub fn write(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Reads the host's resolver file; a missing one counts as empty.
pub fn read_host_resolv(path: &Path) -> Result<String> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Error::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_nameservers_go_and_the_rest_stays_as_written() {
        let host = "# generated\nnameserver 127.0.0.53\nnameserver 10.1.2.3\nnameserver ::1\nsearch corp.example\noptions edns0\n";
        assert_eq!(
            resolv_conf(host, &[], &[]),
            "# generated\nnameserver 10.1.2.3\nsearch corp.example\noptions edns0\n"
        );
        // Nothing reachable left: Docker's fallback.
        assert_eq!(
            resolv_conf("nameserver 127.0.0.1\n", &[], &[]),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
    }

    #[test]
    fn dns_and_search_options_replace_the_hosts() {
        let host = "nameserver 10.1.2.3\nsearch corp.example\noptions ndots:2\n";
        assert_eq!(
            resolv_conf(host, &["10.0.0.53".into()], &[]),
            "nameserver 10.0.0.53\nsearch corp.example\noptions ndots:2\n"
        );
        assert_eq!(
            resolv_conf(host, &[], &["a.example".into(), "b.example".into()]),
            "nameserver 10.1.2.3\nsearch a.example b.example\noptions ndots:2\n"
        );
        assert_eq!(
            resolv_conf(host, &["10.0.0.53".into()], &[".".into()]),
            "nameserver 10.0.0.53\noptions ndots:2\n"
        );
    }

    #[test]
    fn hosts_name_the_container_and_the_extra_hosts() {
        let text = hosts(
            "web",
            Some("172.18.0.2".parse().unwrap()),
            &[("a".into(), "1.2.3.4".into())],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "127.0.0.1\tlocalhost");
        assert_eq!(lines[lines.len() - 2], "1.2.3.4\ta");
        assert_eq!(lines[lines.len() - 1], "172.18.0.2\tweb");
        assert!(!hosts("web", None, &[]).contains("web"));
    }

    #[test]
    fn extra_hosts_parse_like_docker() {
        assert_eq!(
            parse_extra_host("a:1.2.3.4").unwrap(),
            ("a".to_string(), "1.2.3.4".to_string())
        );
        assert_eq!(parse_extra_host("v6:::1").unwrap().1, "::1");
        assert_eq!(parse_extra_host("b=[fe80::1]").unwrap().1, "fe80::1");
        assert_eq!(parse_extra_host("gw:host-gateway").unwrap().1, HOST_GATEWAY);
        assert!(parse_extra_host("nocolon").is_err());
        assert!(parse_extra_host("a:notanip").is_err());
        assert!(check_dns("10.0.0.53").is_ok());
        assert!(check_dns("ns.example").is_err());
    }
}
