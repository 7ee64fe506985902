//! The `POST /containers/create` body: the parts of Docker's container config dock honours.
//! Unknown and zero fields are ignored; asked-for features dock lacks are refused by name.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{ApiError, ApiResult};

/// `["a","b"]`, `"a b"` or null, as Docker's StrSlice accepts.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(untagged)]
pub enum StrSlice {
    #[default]
    Null,
    One(String),
    Many(Vec<String>),
}

impl StrSlice {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            StrSlice::Null => Vec::new(),
            StrSlice::One(text) => text.split_whitespace().map(str::to_string).collect(),
            StrSlice::Many(items) => items,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateBody {
    pub hostname: String,
    pub domainname: String,
    pub user: String,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub env: Option<Vec<String>>,
    pub cmd: StrSlice,
    pub entrypoint: StrSlice,
    pub image: String,
    pub working_dir: String,
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    pub labels: Option<BTreeMap<String, String>>,
    pub stop_signal: String,
    pub host_config: HostConfig,
    // -- run flags --
    pub stop_timeout: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    pub memory: i64,
    pub memory_swap: i64,
    pub auto_remove: bool,
    pub port_bindings: Option<BTreeMap<String, Option<Vec<PortBinding>>>>,
    pub publish_all_ports: bool,
    pub binds: Option<Vec<String>>,
    pub mounts: Option<Vec<runtime::volumes::Mount>>,
    pub tmpfs: Option<BTreeMap<String, String>>,
    pub dns: Option<Vec<String>>,
    pub dns_search: Option<Vec<String>>,
    pub extra_hosts: Option<Vec<String>>,
    pub privileged: bool,
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
    /// As Docker's CLI sends them: a seccomp profile file arrives as `seccomp=<its JSON>`.
    pub security_opt: Option<Vec<String>>,
    pub console_size: Option<[u32; 2]>,
    pub network_mode: String,
    // -- run flags --
    pub restart_policy: Option<RestartPolicy>,
    pub readonly_rootfs: bool,
    pub pids_limit: Option<i64>,
    pub nano_cpus: i64,
    pub cpu_shares: i64,
    pub init: Option<bool>,
}

/// `HostConfig.RestartPolicy`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    pub name: String,
    pub maximum_retry_count: i64,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBinding {
    pub host_ip: String,
    pub host_port: String,
}

impl CreateBody {
    pub fn parse(data: &[u8]) -> ApiResult<CreateBody> {
        let body: CreateBody = serde_json::from_slice(data)
            .map_err(|err| ApiError::bad_request(format!("invalid container config: {err}")))?;
        if body.image.is_empty() {
            return Err(ApiError::bad_request(
                "no image given in the container config",
            ));
        }
        Ok(body)
    }

    /// Privileges and confinement as the runtime stores them (checked by its create).
    pub fn runtime_host_config(&self) -> runtime::HostConfig {
        let hc = &self.host_config;
        runtime::HostConfig {
            privileged: hc.privileged,
            cap_add: hc.cap_add.clone().unwrap_or_default(),
            cap_drop: hc.cap_drop.clone().unwrap_or_default(),
            security_opt: hc.security_opt.clone().unwrap_or_default(),
            publish_all_ports: hc.publish_all_ports,
            // -- run flags (checked by the runtime's create) --
            restart_policy: hc
                .restart_policy
                .as_ref()
                .map(|p| runtime::RestartPolicy {
                    name: if p.name.is_empty() { "no" } else { &p.name }.to_string(),
                    maximum_retry_count: p.maximum_retry_count,
                })
                .unwrap_or_default(),
            readonly_rootfs: hc.readonly_rootfs,
            pids_limit: hc.pids_limit,
            nano_cpus: hc.nano_cpus,
            cpu_shares: hc.cpu_shares,
            init: hc.init,
            network_mode: String::new(),
            binds: hc.binds.clone().unwrap_or_default(),
            mounts: hc.mounts.clone().unwrap_or_default(),
            tmpfs: hc.tmpfs.clone().unwrap_or_default(),
            dns: hc.dns.clone().unwrap_or_default(),
            dns_search: hc.dns_search.clone().unwrap_or_default(),
            extra_hosts: hc.extra_hosts.clone().unwrap_or_default(),
        }
    }

    /// `Volumes` keys: anonymous volumes (`docker run -v /path`).
    pub fn volumes(&self) -> Vec<String> {
        self.volumes
            .iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// `Entrypoint`: null keeps the image's, `[]` removes it, `[""]` removes it and the
    /// image's `Cmd` (see `runtime::imageconfig::Overrides`).
    pub fn entrypoint(&self) -> Option<Vec<String>> {
        match &self.entrypoint {
            StrSlice::Null => None,
            other => Some(other.clone().into_vec()),
        }
    }

    /// `ExposedPorts` keys, as given (the runtime checks and normalizes them).
    pub fn exposed_ports(&self) -> Vec<String> {
        self.exposed_ports
            .iter()
            .flatten()
            .map(|(port, _)| port.clone())
            .collect()
    }

    /// `-p` specs in the `[IP:]HOST:PRIVATE[/proto]` form, one per binding.
    pub fn port_specs(&self) -> Vec<String> {
        let mut specs = Vec::new();
        for (port, bindings) in self.host_config.port_bindings.iter().flatten() {
            let (private, proto) = port.split_once('/').unwrap_or((port, "tcp"));
            let suffix = if proto == "tcp" {
                String::new()
            } else {
                format!("/{proto}")
            };
            let bindings = bindings.clone().unwrap_or_default();
            if bindings.is_empty() {
                specs.push(format!("{private}{suffix}"));
            }
            for binding in bindings {
                let spec = match (binding.host_ip.as_str(), binding.host_port.as_str()) {
                    ("", "") => private.to_string(),
                    ("", host) => format!("{host}:{private}"),
                    (ip, host) => format!("{ip}:{host}:{private}"),
                };
                specs.push(format!("{spec}{suffix}"));
            }
        }
        specs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cli_create_body() {
        let body = CreateBody::parse(
            br#"{"Hostname":"myhost","User":"nobody","Env":["FOO=bar"],"Cmd":["-c","sleep 100"],
            "Entrypoint":["/bin/sh"],"Image":"busybox","WorkingDir":"/tmp","Tty":true,"OpenStdin":true,
            "ExposedPorts":{"7000/tcp":{},"80/tcp":{},"9000/udp":{}},"Volumes":{},
            "HostConfig":{"Binds":null,"AutoRemove":true,"Memory":67108864,"ConsoleSize":[30,100],
            "PortBindings":{"7000/tcp":[{"HostIp":"","HostPort":""}],"80/tcp":[{"HostIp":"","HostPort":"8080"}],
            "9000/udp":[{"HostIp":"127.0.0.1","HostPort":"9000"}]},"Unknown":1},"Whatever":null}"#,
        )
        .unwrap();
        assert_eq!(body.entrypoint(), Some(vec!["/bin/sh".to_string()]));
        assert_eq!(body.cmd.clone().into_vec(), vec!["-c", "sleep 100"]);
        assert_eq!(body.working_dir, "/tmp");
        assert_eq!(body.exposed_ports(), vec!["7000/tcp", "80/tcp", "9000/udp"]);
        assert_eq!(body.host_config.memory, 64 << 20);
        assert!(body.host_config.auto_remove && body.tty && body.open_stdin);
        assert_eq!(
            body.port_specs(),
            vec!["7000", "8080:80", "127.0.0.1:9000:9000/udp"]
        );
    }

    #[test]
    fn reads_volumes_mounts_dns_and_refuses_bad_bodies() {
        let body = CreateBody::parse(
            br#"{"Image":"x","Volumes":{"/anon":{}},"HostConfig":{"Binds":["/a:/b:ro","v:/c"],
            "Mounts":[{"Type":"tmpfs","Target":"/t","TmpfsOptions":{"SizeBytes":1048576}}],
            "Tmpfs":{"/run":"size=1m"},"Dns":["10.0.0.53"],"DnsSearch":["example"],
            "ExtraHosts":["a:1.2.3.4"]}}"#,
        )
        .unwrap();
        let hc = body.runtime_host_config();
        assert_eq!(hc.binds, ["/a:/b:ro", "v:/c"]);
        assert_eq!(hc.mounts[0].kind, "tmpfs");
        assert_eq!(
            hc.mounts[0].tmpfs_options.as_ref().unwrap().size_bytes,
            1 << 20
        );
        assert_eq!(hc.tmpfs["/run"], "size=1m");
        assert_eq!(
            (hc.dns.len(), hc.dns_search.len(), hc.extra_hosts.len()),
            (1, 1, 1)
        );
        assert_eq!(body.volumes(), ["/anon"]);
        assert!(CreateBody::parse(br#"{"Cmd":["x"]}"#).is_err());
        assert!(CreateBody::parse(b"{nope").is_err());
        let body = CreateBody::parse(br#"{"Image":"x","Cmd":"echo hi"}"#).unwrap();
        assert_eq!(body.cmd.clone().into_vec(), vec!["echo", "hi"]);
        assert_eq!(body.entrypoint(), None);
        let body = CreateBody::parse(
            br#"{"Image":"x","Entrypoint":[],"StopSignal":"SIGQUIT",
            "HostConfig":{"PublishAllPorts":true}}"#,
        )
        .unwrap();
        assert_eq!(body.entrypoint(), Some(vec![]));
        assert_eq!(body.stop_signal, "SIGQUIT");
        assert!(body.host_config.publish_all_ports);
    }

    #[test]
    fn reads_the_run_flags() {
        let body = CreateBody::parse(
            br#"{"Image":"x","StopTimeout":3,"Labels":{"a":"b"},"HostConfig":{
            "RestartPolicy":{"Name":"on-failure","MaximumRetryCount":2},"ReadonlyRootfs":true,
            "PidsLimit":20,"NanoCpus":1500000000,"CpuShares":512,"Init":true,"NetworkMode":"host"}}"#,
        )
        .unwrap();
        let hc = body.runtime_host_config();
        assert_eq!(hc.restart_policy.name, "on-failure");
        assert_eq!(hc.restart_policy.maximum_retry_count, 2);
        assert!(hc.readonly_rootfs);
        assert_eq!(hc.pids_limit, Some(20));
        assert_eq!(hc.nano_cpus, 1_500_000_000);
        assert_eq!(hc.cpu_shares, 512);
        assert_eq!(hc.init, Some(true));
        assert_eq!(body.stop_timeout, Some(3));
        assert_eq!(body.host_config.network_mode, "host");
        let none =
            CreateBody::parse(br#"{"Image":"x","HostConfig":{"RestartPolicy":{"Name":""}}}"#)
                .unwrap()
                .runtime_host_config();
        assert_eq!(none.restart_policy.name, "no");
    }

    #[test]
    fn reads_privileges_and_security_options() {
        let body = CreateBody::parse(
            br#"{"Image":"x","HostConfig":{"Privileged":true,"CapAdd":["NET_ADMIN"],"CapDrop":null,
            "SecurityOpt":["no-new-privileges","seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}"]}}"#,
        )
        .unwrap();
        let hc = body.runtime_host_config();
        assert!(hc.privileged);
        assert_eq!(hc.cap_add, ["NET_ADMIN"]);
        assert!(hc.cap_drop.is_empty());
        assert_eq!(
            hc.security_opt,
            [
                "no-new-privileges",
                r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW"}"#
            ]
        );
    }

    mod properties {
        use super::super::*;
        use crate::test_support::proptest_config as config;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(config(128))]

            /// `HostConfig.PortBindings` as Docker's clients send them become `-p` specs that
            /// read back as the same bindings.
            #[test]
            fn port_bindings_become_specs_of_the_same_ports(
                private in 1u16..,
                udp in any::<bool>(),
                bindings in proptest::collection::vec(
                    (proptest::option::of(any::<[u8; 4]>()), proptest::option::of(1u16..)),
                    0..3,
                ),
            ) {
                let proto = if udp { "udp" } else { "tcp" };
                let list: Vec<serde_json::Value> = bindings
                    .iter()
                    .map(|(ip, port)| serde_json::json!({
                        "HostIp": ip.map(|a| std::net::Ipv4Addr::from(a).to_string()).unwrap_or_default(),
                        "HostPort": port.map(|p| p.to_string()).unwrap_or_default(),
                    }))
                    .collect();
                let body = serde_json::json!({
                    "Image": "busybox",
                    "HostConfig": { "PortBindings": { format!("{private}/{proto}"): list } },
                });
                let body = CreateBody::parse(body.to_string().as_bytes()).unwrap();
                let specs: Vec<netmgr::PortSpec> = body
                    .port_specs()
                    .iter()
                    .map(|s| s.parse().map_err(|e| TestCaseError::fail(format!("{s}: {e}"))))
                    .collect::<Result<_, _>>()?;
                prop_assert_eq!(specs.len(), bindings.len().max(1));
                for (i, spec) in specs.iter().enumerate() {
                    prop_assert_eq!(spec.container_port, private);
                    prop_assert_eq!(spec.proto.as_str(), proto);
                    if let Some((ip, port)) = bindings.get(i) {
                        prop_assert_eq!(spec.host_ip, ip.map(std::net::Ipv4Addr::from));
                        prop_assert_eq!(spec.host_port, *port);
                    }
                }
            }

            /// Any bytes as a create body: a 400 or a body, never a panic.
            #[test]
            fn any_create_body_is_read_or_refused(data in proptest::collection::vec(any::<u8>(), 0..200)) {
                if let Ok(body) = CreateBody::parse(&data) {
                    let _ = body.port_specs();
                    let _ = body.runtime_host_config();
                }
            }
        }
    }
}
