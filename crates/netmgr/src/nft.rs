//! nftables through the `nft` binary, for what happens once per bridge and boot (the table,
//! its maps and chains) and for deleting the table: each change is one script fed to
//! `nft -f -`, which the kernel applies as one transaction. The per-container elements of the
//! maps go through `portmap`, without a process.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ipnet::Ipv4Net;

use crate::error::{Error, Result};
use crate::portmap::{MAP_ADDR, MAP_ANY};

/// The chain looking up published ports; reached only for local destinations.
pub(crate) const PORTS_CHAIN: &str = "ports";

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

/// Table, maps, base chains and their fixed rules; flushing and refilling the chains in the
/// same transaction makes this idempotent, and the maps' elements (the published ports of
/// running containers) stay as they are.
pub(crate) fn base_ruleset(table: &str, bridge: &str, subnet: Ipv4Net) -> String {
    format!(
        "table ip {table} {{
  map {MAP_ANY} {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}
  map {MAP_ADDR} {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}
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
flush chain ip {table} {PORTS_CHAIN}
add rule ip {table} prerouting fib daddr type local jump {PORTS_CHAIN}
add rule ip {table} output fib daddr type local jump {PORTS_CHAIN}
add rule ip {table} {PORTS_CHAIN} dnat to ip daddr . meta l4proto . th dport map @{MAP_ADDR}
add rule ip {table} {PORTS_CHAIN} dnat to meta l4proto . th dport map @{MAP_ANY}
add rule ip {table} postrouting ip saddr {subnet} oifname != \"{bridge}\" masquerade
add rule ip {table} postrouting ip saddr 127.0.0.0/8 oifname \"{bridge}\" masquerade
add rule ip {table} postrouting ip saddr {subnet} oifname \"{bridge}\" ct status dnat masquerade
add rule ip {table} forward iifname \"{bridge}\" accept
add rule ip {table} forward oifname \"{bridge}\" accept
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_ruleset_looks_ports_up_in_both_maps() {
        let base = base_ruleset("t", "br0", "10.1.2.0/24".parse().unwrap());
        assert!(base.contains(
            "map dnat_any { type inet_proto . inet_service : ipv4_addr . inet_service; }"
        ));
        assert!(base.contains(
            "add rule ip t ports dnat to ip daddr . meta l4proto . th dport map @dnat_addr\n"
        ));
        assert!(
            base.contains("add rule ip t ports dnat to meta l4proto . th dport map @dnat_any\n")
        );
        assert!(base.contains("flush chain ip t ports\n"));
        // The maps are declared, never flushed: their elements outlive a re-application.
        assert!(!base.contains("flush map"));
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
