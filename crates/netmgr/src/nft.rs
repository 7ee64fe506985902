//! nftables through the `nft` binary: every change is one script fed to `nft -f -`, which the
//! kernel applies as one transaction. Reading uses `nft -j list table`.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ipnet::Ipv4Net;

use crate::error::{Error, Result};
use crate::ports::PortMapping;

/// The chain every per-container chain is jumped to from; reached only for local destinations.
pub(crate) const PORTS_CHAIN: &str = "ports";

pub(crate) fn container_chain(container_id: &str) -> String {
    format!("ctr-{container_id}")
}

pub(crate) struct Nft {
    binary: PathBuf,
}

impl Nft {
    pub(crate) fn new(binary: impl Into<PathBuf>) -> Nft {
        Nft {
            binary: binary.into(),
        }
    }

    /// `nft` from the usual places: /usr/sbin is not on every PATH.
    pub(crate) fn system() -> Nft {
        let sbin = Path::new("/usr/sbin/nft");
        Nft::new(if sbin.exists() {
            sbin.to_path_buf()
        } else {
            PathBuf::from("nft")
        })
    }

    fn run(&self, args: &[&str], stdin: Option<&str>, context: &str) -> Result<String> {
        let mut command = Command::new(&self.binary);
        command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = command.spawn().map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NftMissing,
            _ => Error::io("run", &self.binary, e),
        })?;
        if let Some(script) = stdin {
            let mut pipe = child.stdin.take().expect("stdin was piped");
            // A failed write shows up as nft's own error below.
            let _ = pipe.write_all(script.as_bytes());
        }
        let output = child
            .wait_with_output()
            .map_err(|e| Error::io("wait for", &self.binary, e))?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let mut stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        if stderr.contains("Operation not supported") || stderr.contains("Protocol not supported") {
            stderr.push_str(
                " (the kernel lacks an nf_tables feature: load nf_tables, nft_nat, nft_fib_ipv4, \
                 nft_masq, nft_ct, and install nftables with apt-get install nftables)",
            );
        }
        Err(Error::Nft {
            context: context.to_string(),
            stderr,
        })
    }

    /// Applies `script` as one transaction.
    pub(crate) fn apply(&self, script: &str, context: &str) -> Result<()> {
        tracing::debug!(%context, script, "nft -f -");
        self.run(&["-f", "-"], Some(script), context).map(drop)
    }

    /// The table as nft's JSON, None when it does not exist.
    pub(crate) fn list_table(&self, table: &str) -> Result<Option<serde_json::Value>> {
        match self.run(
            &["-j", "list", "table", "ip", table],
            None,
            &format!("list table ip {table}"),
        ) {
            Ok(out) => serde_json::from_str(&out)
                .map(Some)
                .map_err(|e| Error::Nft {
                    context: format!("list table ip {table}"),
                    stderr: format!("unparsable json: {e}"),
                }),
            Err(Error::Nft { stderr, .. }) if stderr.contains("No such file or directory") => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub(crate) fn delete_table(&self, table: &str) -> Result<()> {
        match self.apply(
            &format!("delete table ip {table}\n"),
            &format!("delete table ip {table}"),
        ) {
            Err(Error::Nft { stderr, .. }) if stderr.contains("No such file or directory") => {
                Ok(())
            }
            other => other,
        }
    }
}

/// Table, base chains and their fixed rules; flushing and refilling the base chains in the
/// same transaction makes this idempotent without touching per-container chains.
pub(crate) fn base_ruleset(table: &str, bridge: &str, subnet: Ipv4Net) -> String {
    format!(
        "table ip {table} {{
  chain prerouting {{ type nat hook prerouting priority -100; policy accept; }}
  chain output {{ type nat hook output priority -100; policy accept; }}
  chain postrouting {{ type nat hook postrouting priority 100; policy accept; }}
  chain forward {{ type filter hook forward priority 0; policy accept; }}
  chain {PORTS_CHAIN} {{ }}
}}
flush chain ip {table} prerouting
flush chain ip {table} output
flush chain ip {table} postrouting
flush chain ip {table} forward
add rule ip {table} prerouting fib daddr type local jump {PORTS_CHAIN}
add rule ip {table} output fib daddr type local jump {PORTS_CHAIN}
add rule ip {table} postrouting ip saddr {subnet} oifname != \"{bridge}\" masquerade
add rule ip {table} postrouting ip saddr 127.0.0.0/8 oifname \"{bridge}\" masquerade
add rule ip {table} postrouting ip saddr {subnet} oifname \"{bridge}\" ct status dnat masquerade
add rule ip {table} forward iifname \"{bridge}\" accept
add rule ip {table} forward oifname \"{bridge}\" accept
"
    )
}

/// What a table holds for one container: its chain (if any) and the handles of the rules
/// in the ports chain that jump to it.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ContainerRules {
    pub chain_exists: bool,
    pub jump_handles: Vec<u64>,
}

impl ContainerRules {
    pub(crate) fn is_empty(&self) -> bool {
        !self.chain_exists && self.jump_handles.is_empty()
    }
}

pub(crate) fn find_container_rules(
    listing: &serde_json::Value,
    table: &str,
    container_id: &str,
) -> ContainerRules {
    let chain = container_chain(container_id);
    let mut found = ContainerRules::default();
    let items = listing
        .get("nftables")
        .and_then(|v| v.as_array())
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for item in items {
        if let Some(c) = item.get("chain") {
            if c["table"] == table && c["name"] == chain.as_str() {
                found.chain_exists = true;
            }
        }
        if let Some(rule) = item.get("rule") {
            if rule["table"] != table || rule["chain"] != PORTS_CHAIN {
                continue;
            }
            let jumps_to_ours = rule["expr"]
                .as_array()
                .is_some_and(|exprs| exprs.iter().any(|e| e["jump"]["target"] == chain.as_str()));
            if jumps_to_ours {
                if let Some(handle) = rule["handle"].as_u64() {
                    found.jump_handles.push(handle);
                }
            }
        }
    }
    found
}

/// Commands removing what `existing` found for a container.
pub(crate) fn purge_script(table: &str, container_id: &str, existing: &ContainerRules) -> String {
    let mut script = String::new();
    for handle in &existing.jump_handles {
        let _ = writeln!(
            script,
            "delete rule ip {table} {PORTS_CHAIN} handle {handle}"
        );
    }
    if existing.chain_exists {
        let chain = container_chain(container_id);
        let _ = writeln!(script, "flush chain ip {table} {chain}");
        let _ = writeln!(script, "delete chain ip {table} {chain}");
    }
    script
}

/// One transaction: drop what a previous run left for this container, then install its
/// chain with one DNAT rule per mapping and the jump to it.
pub(crate) fn connect_script(
    table: &str,
    container_id: &str,
    existing: &ContainerRules,
    container_ip: Ipv4Addr,
    mappings: &[PortMapping],
) -> String {
    let chain = container_chain(container_id);
    let mut script = String::new();
    for handle in &existing.jump_handles {
        let _ = writeln!(
            script,
            "delete rule ip {table} {PORTS_CHAIN} handle {handle}"
        );
    }
    let _ = writeln!(script, "add chain ip {table} {chain}");
    let _ = writeln!(script, "flush chain ip {table} {chain}");
    for m in mappings {
        let daddr = m
            .host_ip
            .filter(|ip| !ip.is_unspecified())
            .map(|ip| format!("ip daddr {ip} "))
            .unwrap_or_default();
        let _ = writeln!(
            script,
            "add rule ip {table} {chain} {daddr}{proto} dport {hp} dnat to {container_ip}:{cp} comment \"{container_id}\"",
            proto = m.proto,
            hp = m.host_port,
            cp = m.container_port,
        );
    }
    let _ = writeln!(
        script,
        "add rule ip {table} {PORTS_CHAIN} jump {chain} comment \"{container_id}\""
    );
    script
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Proto;

    #[test]
    fn finds_chain_and_jumps_of_one_container_only() {
        let listing = serde_json::json!({"nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "ip", "name": "t", "handle": 1}},
            {"chain": {"family": "ip", "table": "t", "name": "ports", "handle": 2}},
            {"chain": {"family": "ip", "table": "t", "name": "ctr-a", "handle": 3}},
            {"chain": {"family": "ip", "table": "t", "name": "ctr-ab", "handle": 4}},
            {"rule": {"family": "ip", "table": "t", "chain": "ports", "handle": 7,
                      "expr": [{"jump": {"target": "ctr-a"}}]}},
            {"rule": {"family": "ip", "table": "t", "chain": "ports", "handle": 8,
                      "expr": [{"jump": {"target": "ctr-ab"}}]}},
            {"rule": {"family": "ip", "table": "t", "chain": "ports", "handle": 9,
                      "expr": [{"jump": {"target": "ctr-a"}}]}}
        ]});
        let found = find_container_rules(&listing, "t", "a");
        assert_eq!(
            found,
            ContainerRules {
                chain_exists: true,
                jump_handles: vec![7, 9]
            }
        );
        assert!(find_container_rules(&listing, "t", "zz").is_empty());
        let purge = purge_script("t", "a", &found);
        assert!(purge.contains("delete rule ip t ports handle 7\n"));
        assert!(purge.contains("delete chain ip t ctr-a\n"));
        assert!(!purge.contains("handle 8"));
    }

    #[test]
    fn connect_script_has_one_rule_per_mapping() {
        let mappings = [
            PortMapping {
                host_ip: None,
                host_port: 49153,
                container_port: 80,
                proto: Proto::Tcp,
            },
            PortMapping {
                host_ip: Some("127.0.0.1".parse().unwrap()),
                host_port: 5353,
                container_port: 53,
                proto: Proto::Udp,
            },
        ];
        let script = connect_script(
            "t",
            "c1",
            &ContainerRules::default(),
            "10.0.0.2".parse().unwrap(),
            &mappings,
        );
        assert!(script
            .contains("add rule ip t ctr-c1 tcp dport 49153 dnat to 10.0.0.2:80 comment \"c1\"\n"));
        assert!(script.contains("add rule ip t ctr-c1 ip daddr 127.0.0.1 udp dport 5353 dnat to 10.0.0.2:53 comment \"c1\"\n"));
        assert!(script.ends_with("add rule ip t ports jump ctr-c1 comment \"c1\"\n"));
    }

    #[test]
    fn missing_binary_says_what_to_install() {
        let nft = Nft::new("/nonexistent/nft");
        let err = nft.apply("list tables\n", "probe").unwrap_err();
        assert!(matches!(err, Error::NftMissing));
        assert!(
            err.to_string().contains("apt-get install nftables"),
            "{err}"
        );
    }
}
