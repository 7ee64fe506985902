//! Docker 1.44's documents for containers and images, built in one place for the API
//! (`GET /containers/{id}/json`, `/containers/json`, `/images/{name}/json`, `/images/json`)
//! and for `dock inspect`, `dock ps` and `dock images`, so both show the same thing.
//!
//! Names and JSON types follow moby's `api/types` at API 1.44; the reference documents in
//! `tests/fixtures/api-1.44/` (derived from the 1.44 swagger) are what the shape test holds
//! these against. Go's nil slices and maps are `null`, as dockerd sends them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use graph::{Graph, Image};
use runtime::humanize::human_duration;
use runtime::{Container, Listed, Runtime};
use serde_json::{json, Map, Value};
use tagstore::TagStore;

use crate::filters::{FilterError, Filters, CONTAINER_KEYS, IMAGE_KEYS, STATUSES};
use crate::images::{api_id, familiar, reference_matches};
pub use crate::system::{go_arch, info_doc, version_doc};

#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error(transparent)]
    Runtime(#[from] runtime::Error),
    #[error(transparent)]
    Graph(#[from] graph::Error),
    #[error(transparent)]
    Tags(#[from] tagstore::Error),
}

// ---------------------------------------------------------------------------------------------
// Containers

/// `created`, `running`, `paused`, `restarting` or `exited` (`State.Status`, the `status`
/// filter).
pub fn status_word(state: &runtime::State) -> &'static str {
    if state.restarting {
        "restarting"
    } else if state.running && state.paused {
        "paused"
    } else if state.running {
        "running"
    } else if state.never_started() {
        "created"
    } else {
        "exited"
    }
}

/// One exposed port and its host bindings (none when not published or not running).
pub(crate) struct Port {
    pub container_port: u16,
    pub proto: String,
    pub bindings: Vec<runtime::PortBinding>,
}

/// The container's ports: every exposed port and `-p` spec, with what the network layer
/// published for it.
pub(crate) fn ports(c: &Container) -> Vec<Port> {
    let published = &c.network_settings.ports;
    let mut keys: Vec<(u16, String)> = Vec::new();
    let mut add = |key: &str| {
        let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
        if let Some(port) = port.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()) {
            keys.push((port, proto.to_string()));
        }
    };
    for key in &c.config.exposed_ports {
        add(key);
    }
    for spec in &c.config.port_specs {
        add(spec);
    }
    for key in published.keys() {
        add(key);
    }
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .map(|(container_port, proto)| Port {
            bindings: if c.state.running {
                published
                    .get(&format!("{container_port}/{proto}"))
                    .cloned()
                    .unwrap_or_default()
            } else {
                Vec::new()
            },
            container_port,
            proto,
        })
        .collect()
}

/// `HostConfig.NetworkMode` as Docker shows it.
pub fn network_mode(c: &Container) -> &'static str {
    if c.host_config.network_mode == "host" {
        "host"
    } else if c.config.network_disabled {
        "none"
    } else {
        "default"
    }
}

/// The network the container is attached to, as `NetworkSettings.Networks` names it.
fn network_name(c: &Container) -> &'static str {
    match network_mode(c) {
        "default" => "bridge",
        other => other,
    }
}

/// Go's nil slice for an empty list.
fn non_empty(list: &[String]) -> Value {
    if list.is_empty() {
        Value::Null
    } else {
        json!(list)
    }
}

/// RFC 3339 with nanoseconds; Go's zero time stays `0001-01-01T00:00:00Z`.
pub fn rfc3339(time: DateTime<Utc>) -> String {
    if time == runtime::container::zero_time() {
        return "0001-01-01T00:00:00Z".to_string();
    }
    time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// One network endpoint (`NetworkSettings.Networks.*`, `EndpointSettings`).
fn endpoint(c: &Container, name: &str) -> Value {
    let ns = &c.network_settings;
    json!({
        "IPAMConfig": null,
        "Links": null,
        "Aliases": null,
        "MacAddress": "",
        "NetworkID": name,
        "EndpointID": "",
        "Gateway": ns.gateway,
        "IPAddress": ns.ip_address,
        "IPPrefixLen": ns.ip_prefix_len,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DriverOpts": null,
        "DNSNames": null,
    })
}

/// `GET /containers/{id}/json` and `dock inspect CONTAINER`.
pub fn container_inspect(rt: &Runtime, c: &Container) -> Value {
    let paths = rt.paths(&c.id);
    let etc = paths.etc_dir();
    let mut exposed = BTreeMap::new();
    let mut published: BTreeMap<String, Value> = BTreeMap::new();
    let mut bindings: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for spec in &c.config.port_specs {
        // The asked-for binding, as `HostConfig.PortBindings` shows it.
        let (spec, proto) = spec.split_once('/').unwrap_or((spec.as_str(), "tcp"));
        let parts: Vec<&str> = spec.split(':').collect();
        let (ip, host, private) = match parts.as_slice() {
            [private] => ("", "", *private),
            [host, private] => ("", *host, *private),
            [ip, host, private] => (*ip, *host, *private),
            _ => continue,
        };
        bindings
            .entry(format!("{private}/{proto}"))
            .or_default()
            .push(json!({ "HostIp": ip, "HostPort": host }));
    }
    for port in ports(c) {
        let key = format!("{}/{}", port.container_port, port.proto);
        exposed.insert(key.clone(), json!({}));
        let bindings: Vec<Value> = port
            .bindings
            .iter()
            .map(|b| json!({ "HostIp": b.host_ip, "HostPort": b.host_port }))
            .collect();
        // Exposed but not published shows as null, as Docker has it.
        let value = if bindings.is_empty() {
            Value::Null
        } else {
            Value::Array(bindings)
        };
        published.insert(key, value);
    }
    let mut networks = Map::new();
    if network_mode(c) != "none" || c.state.running {
        networks.insert(network_name(c).to_string(), endpoint(c, network_name(c)));
    }
    let mut config = json!({
        "Hostname": c.config.hostname,
        "Domainname": "",
        "User": c.config.user,
        "AttachStdin": false,
        "AttachStdout": !c.config.detach,
        "AttachStderr": !c.config.detach,
        "Tty": c.config.tty,
        "OpenStdin": c.config.open_stdin,
        "StdinOnce": c.config.open_stdin,
        "Env": runtime::container_env(&c.config),
        "Cmd": non_empty(&c.config.cmd),
        "Image": c.config.image,
        "Volumes": (!c.config.volumes.is_empty()).then(|| {
            c.config.volumes.iter().map(|v| (v.clone(), json!({}))).collect::<BTreeMap<_, _>>()
        }),
        "WorkingDir": c.config.working_dir,
        "Entrypoint": non_empty(&c.config.entrypoint),
        "OnBuild": null,
        "Labels": c.config.labels,
    });
    // Docker's omitempty fields: present only when set.
    if !exposed.is_empty() {
        config["ExposedPorts"] = json!(exposed);
    }
    if c.config.network_disabled {
        config["NetworkDisabled"] = json!(true);
    }
    if !c.config.stop_signal.is_empty() {
        config["StopSignal"] = json!(c.config.stop_signal);
    }
    if let Some(timeout) = c.config.stop_timeout {
        config["StopTimeout"] = json!(timeout);
    }
    let hc = &c.host_config;
    let mut host_config = json!({
        "Binds": non_empty(&hc.binds),
        "ContainerIDFile": "",
        "LogConfig": { "Type": "json-file", "Config": {} },
        "NetworkMode": network_mode(c),
        "PortBindings": bindings,
        "RestartPolicy": {
            "Name": hc.restart_policy.name,
            "MaximumRetryCount": hc.restart_policy.maximum_retry_count,
        },
        "AutoRemove": c.auto_remove,
        "VolumeDriver": "",
        "VolumesFrom": null,
        "ConsoleSize": [0, 0],
        "CapAdd": non_empty(&hc.cap_add),
        "CapDrop": non_empty(&hc.cap_drop),
        "CgroupnsMode": "private",
        "Dns": hc.dns,
        "DnsOptions": [],
        "DnsSearch": hc.dns_search,
        "ExtraHosts": non_empty(&hc.extra_hosts),
        "GroupAdd": null,
        "IpcMode": "private",
        "Cgroup": "",
        "Links": null,
        "OomScoreAdj": 0,
        "PidMode": "",
        "Privileged": hc.privileged,
        "PublishAllPorts": hc.publish_all_ports,
        "ReadonlyRootfs": hc.readonly_rootfs,
        "SecurityOpt": non_empty(&hc.security_opt),
        "UTSMode": "",
        "UsernsMode": "",
        "ShmSize": 67108864,
        "Isolation": "",
    });
    // Resources, in a second literal (serde_json's macro recursion limit).
    let resources = json!({
        "CpuShares": hc.cpu_shares,
        "Memory": c.config.memory,
        "NanoCpus": hc.nano_cpus,
        "CgroupParent": "",
        "BlkioWeight": 0,
        "BlkioWeightDevice": [],
        "BlkioDeviceReadBps": [],
        "BlkioDeviceWriteBps": [],
        "BlkioDeviceReadIOps": [],
        "BlkioDeviceWriteIOps": [],
        "CpuPeriod": 0,
        "CpuQuota": 0,
        "CpuRealtimePeriod": 0,
        "CpuRealtimeRuntime": 0,
        "CpusetCpus": "",
        "CpusetMems": "",
        "Devices": [],
        "DeviceCgroupRules": null,
        "DeviceRequests": null,
        "MemoryReservation": 0,
        "MemorySwap": c.config.memory_swap,
        "MemorySwappiness": null,
        "OomKillDisable": null,
        "PidsLimit": hc.pids_limit,
        "Ulimits": [],
        "CpuCount": 0,
        "CpuPercent": 0,
        "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0,
        "MaskedPaths": null,
        "ReadonlyPaths": null,
    });
    if let (Value::Object(hc_map), Value::Object(res)) = (&mut host_config, resources) {
        hc_map.extend(res);
    }
    if !hc.mounts.is_empty() {
        host_config["Mounts"] = json!(hc.mounts);
    }
    if !hc.tmpfs.is_empty() {
        host_config["Tmpfs"] = json!(hc.tmpfs);
    }
    if let Some(init) = hc.init {
        host_config["Init"] = json!(init);
    }
    let ns = &c.network_settings;
    json!({
        "Id": c.id,
        "Created": rfc3339(c.created),
        "Path": c.path,
        "Args": c.args,
        "State": {
            "Status": status_word(&c.state),
            "Running": c.state.running,
            "Paused": c.state.paused,
            "Restarting": c.state.restarting,
            "OOMKilled": c.state.oom_killed,
            "Dead": false,
            "Pid": c.state.pid,
            "ExitCode": c.state.exit_code,
            "Error": c.state.error,
            "StartedAt": rfc3339(c.state.started_at),
            "FinishedAt": rfc3339(c.state.finished_at),
        },
        "Image": api_id(&c.image),
        "ResolvConfPath": etc.join("resolv.conf"),
        "HostnamePath": etc.join("hostname"),
        "HostsPath": etc.join("hosts"),
        "LogPath": paths.log(&c.id),
        "Name": format!("/{}", c.name),
        "RestartCount": c.restart_count,
        "Driver": "overlay",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": null,
        "HostConfig": host_config,
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "LowerDir": paths.init(),
                "MergedDir": paths.rootfs(),
                "UpperDir": paths.upper(),
                "WorkDir": paths.work(),
            },
        },
        "Mounts": c.mounts.iter().map(|m| m.inspect()).collect::<Vec<_>>(),
        "Config": config,
        "NetworkSettings": {
            "Bridge": ns.bridge,
            "SandboxID": "",
            "SandboxKey": "",
            "Ports": published,
            "HairpinMode": false,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "SecondaryIPAddresses": null,
            "SecondaryIPv6Addresses": null,
            "EndpointID": "",
            "Gateway": ns.gateway,
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": ns.ip_address,
            "IPPrefixLen": ns.ip_prefix_len,
            "IPv6Gateway": "",
            "MacAddress": "",
            "Networks": networks,
        },
    })
}

/// One `GET /containers/json` entry; `image` is the name shown in its `Image` field.
pub fn container_summary(c: &Container, image: &str) -> Value {
    let mut ports: Vec<Value> = Vec::new();
    for port in self::ports(c) {
        if port.bindings.is_empty() {
            ports.push(json!({ "PrivatePort": port.container_port, "Type": port.proto }));
        }
        for binding in &port.bindings {
            ports.push(json!({
                "IP": binding.host_ip,
                "PrivatePort": port.container_port,
                "PublicPort": binding.host_port.parse::<u16>().unwrap_or(0),
                "Type": port.proto,
            }));
        }
    }
    let mut networks = Map::new();
    if network_mode(c) != "none" || c.state.running {
        networks.insert(network_name(c).to_string(), endpoint(c, network_name(c)));
    }
    json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": image,
        "ImageID": api_id(&c.image),
        "Command": c.command_line(),
        "Created": c.created.timestamp(),
        "Ports": ports,
        "Labels": c.config.labels,
        "State": status_word(&c.state),
        "Status": c.status(human_duration),
        "HostConfig": { "NetworkMode": network_mode(c) },
        "NetworkSettings": { "Networks": networks },
        "Mounts": c.mounts.iter().map(|m| m.inspect()).collect::<Vec<_>>(),
    })
}

/// What a container listing asks for besides its filters.
#[derive(Debug, Default, Clone, Copy)]
pub struct ContainerListing {
    /// Stopped containers too (`-a`, `all=1`).
    pub all: bool,
    /// At most this many, newest first (`-n`, `limit=`).
    pub limit: Option<usize>,
}

/// The containers a listing shows, newest first, filtered (keys: [`CONTAINER_KEYS`]).
pub fn list_containers(
    rt: &Runtime,
    graph: &Graph,
    tags: &TagStore,
    listing: ContainerListing,
    filters: &Filters,
) -> Result<Vec<Box<Container>>, ShapeError> {
    Ok(list_containers_with_broken::<Container>(rt, graph, tags, listing, filters)?.0)
}

/// [`list_containers`], each a [`Container`] or only its [`runtime::Row`], and the broken
/// containers (config.json unreadable) a listing shows: with `all` or while their monitor
/// runs, with no filter but `status=dead` and no limit. Each is logged.
pub fn list_containers_with_broken<T: Listed>(
    rt: &Runtime,
    graph: &Graph,
    tags: &TagStore,
    listing: ContainerListing,
    filters: &Filters,
) -> Result<(Vec<Box<T>>, Vec<runtime::BrokenContainer>), ShapeError> {
    filters.check_keys(CONTAINER_KEYS)?;
    for status in filters.get("status") {
        if !STATUSES.contains(&status.as_str()) {
            return Err(FilterError::Value {
                key: "status".into(),
                value: status.clone(),
            }
            .into());
        }
    }
    let mut exit_codes = Vec::new();
    for code in filters.get("exited") {
        exit_codes.push(code.parse::<i64>().map_err(|_| FilterError::Value {
            key: "exited".into(),
            value: code.clone(),
        })?);
    }
    let created_of = |name: &String| rt.get(name.trim_start_matches('/')).map(|c| c.created);
    let before = filters
        .get("before")
        .iter()
        .map(created_of)
        .collect::<Result<Vec<_>, _>>()?;
    let since = filters
        .get("since")
        .iter()
        .map(created_of)
        .collect::<Result<Vec<_>, _>>()?;
    let ancestors: BTreeSet<String> = filters
        .get("ancestor")
        .iter()
        .filter_map(|name| resolve_image(graph, tags, name))
        .collect();
    let mut chains: HashMap<String, bool> = HashMap::new();
    let mut descends = |image: &str| -> bool {
        if let Some(&known) = chains.get(image) {
            return known;
        }
        let mut id = Some(image.to_string());
        let mut found = false;
        while let Some(current) = id {
            if ancestors.contains(&current) {
                found = true;
                break;
            }
            id = graph.get(&current).ok().and_then(|i| i.parent);
        }
        chains.insert(image.to_string(), found);
        found
    };
    let all = listing.all || listing.limit.is_some() || filters.contains("status");
    let (mut containers, broken) = rt.list_with_broken::<T>()?;
    for b in &broken {
        tracing::warn!(id = %b.id, error = %b.error, "listing a broken container");
    }
    let only_dead = filters.get("status").iter().all(|s| s == "dead")
        && CONTAINER_KEYS
            .iter()
            .all(|key| *key == "status" || !filters.contains(key));
    // Shown (so they can be removed) with `all`, or while their monitor runs.
    let broken: Vec<runtime::BrokenContainer> = broken
        .into_iter()
        .filter(|b| (listing.all || b.running) && listing.limit.is_none() && only_dead)
        .collect();
    containers.retain(|c| {
        let names = filters.get("name");
        let ids = filters.get("id");
        let statuses = filters.get("status");
        let (state, created) = (c.state(), c.created());
        (all || state.running)
            && (names.is_empty()
                || names
                    .iter()
                    .any(|n| c.name().contains(n.trim_start_matches('/'))))
            && (ids.is_empty() || ids.iter().any(|i| c.id().starts_with(i.as_str())))
            && (statuses.is_empty() || statuses.iter().any(|s| s == status_word(state)))
            && (exit_codes.is_empty()
                || (status_word(state) == "exited"
                    && exit_codes.contains(&i64::from(state.exit_code))))
            && filters.labels_match(c.labels())
            && !before.iter().any(|t| created >= *t)
            && !since.iter().any(|t| created <= *t)
            && (!filters.contains("ancestor") || descends(c.image()))
    });
    containers.truncate(listing.limit.unwrap_or(usize::MAX));
    Ok((containers, broken))
}

/// A broken container's `GET /containers/json` entry: Docker's shape for a container whose
/// removal failed, `dead`, with the reason as its status, so clients show and remove it.
pub fn broken_summary(b: &runtime::BrokenContainer) -> Value {
    json!({
        "Id": b.id,
        "Names": [],
        "Image": "",
        "ImageID": "",
        "Command": "",
        "Created": b.created.timestamp(),
        "Ports": [],
        "Labels": {},
        "State": "dead",
        "Status": format!("Broken: {}", b.reason()),
        "HostConfig": { "NetworkMode": "default" },
        "NetworkSettings": { "Networks": {} },
        "Mounts": [],
    })
}

/// The image name a listing shows for `c`: the name it was created from while that still
/// names its image (Docker's choice), else the image id.
pub fn shown_image(graph: &Graph, tags: &TagStore, c: &Container) -> String {
    let same = tags
        .lookup(graph, &c.config.image)
        .is_ok_and(|image| image.id == c.image);
    if same {
        c.config.image.clone()
    } else {
        api_id(&c.image)
    }
}

/// `GET /containers/json` as a whole.
pub fn container_summaries(
    rt: &Runtime,
    graph: &Graph,
    tags: &TagStore,
    listing: ContainerListing,
    filters: &Filters,
) -> Result<Vec<Value>, ShapeError> {
    let (containers, broken) =
        list_containers_with_broken::<Container>(rt, graph, tags, listing, filters)?;
    Ok(containers
        .iter()
        .map(|c| container_summary(c, &shown_image(graph, tags, c)))
        .chain(broken.iter().map(broken_summary))
        .collect())
}

/// The image id `name` (repo[:tag], id or prefix, `sha256:` or not) names, if any.
fn resolve_image(graph: &Graph, tags: &TagStore, name: &str) -> Option<String> {
    let name = familiar(name);
    tags.lookup(graph, name)
        .or_else(|_| graph.resolve(name).map_err(tagstore::Error::Graph))
        .ok()
        .map(|i| i.id)
}

// ---------------------------------------------------------------------------------------------
// Images

/// `NAME@DIGEST` names the image was pulled or pushed by, as recorded in its meta.
pub fn repo_digests(graph: &Graph, image: &Image) -> Vec<String> {
    graph
        .meta(&image.id)
        .map(|m| m.repo_digests)
        .unwrap_or_default()
}

/// A container `Config` (moby's `container.Config`) from an image config's `config` or an
/// older image's `container_config`, whatever their spelling; every key Docker always sends
/// is there, so `{{.Config.Cmd}}` works on any image.
pub fn image_container_config(source: Option<&Value>) -> Value {
    let mut config = json!({
        "Hostname": "",
        "Domainname": "",
        "User": "",
        "AttachStdin": false,
        "AttachStdout": false,
        "AttachStderr": false,
        "Tty": false,
        "OpenStdin": false,
        "StdinOnce": false,
        "Env": null,
        "Cmd": null,
        "Image": "",
        "Volumes": null,
        "WorkingDir": "",
        "Entrypoint": null,
        "OnBuild": null,
        "Labels": null,
    });
    let Some(Value::Object(source)) = source else {
        return config;
    };
    let strings = |v: &Value| -> Option<Value> {
        match v {
            Value::Null => Some(Value::Null),
            Value::String(s) => Some(json!([s])),
            Value::Array(items) if items.iter().all(Value::is_string) => Some(v.clone()),
            _ => None,
        }
    };
    // A set: Docker's `{"80/tcp": {}}`, or dock's older list of keys.
    let set = |v: &Value| -> Option<Value> {
        match v {
            Value::Object(map) if map.is_empty() => None,
            Value::Object(map) => Some(Value::Object(
                map.keys().map(|k| (k.clone(), json!({}))).collect(),
            )),
            Value::Array(items) if !items.is_empty() => Some(Value::Object(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|k| (k.to_string(), json!({})))
                    .collect(),
            )),
            _ => None,
        }
    };
    for (key, value) in source {
        // Both the API's spelling and the lowercase one of older stores.
        let key = match key.as_str() {
            "hostname" => "Hostname",
            "user" => "User",
            "env" => "Env",
            "cmd" => "Cmd",
            "entrypoint" => "Entrypoint",
            "working_dir" => "WorkingDir",
            "labels" => "Labels",
            other => other,
        };
        match key {
            "Hostname" | "Domainname" | "User" | "Image" | "WorkingDir" => {
                if let Some(s) = value.as_str() {
                    config[key] = json!(s);
                }
            }
            "AttachStdin" | "AttachStdout" | "AttachStderr" | "Tty" | "OpenStdin" | "StdinOnce" => {
                if let Some(b) = value.as_bool() {
                    config[key] = json!(b);
                }
            }
            "Env" | "Cmd" | "Entrypoint" | "OnBuild" => {
                if let Some(v) = strings(value) {
                    config[key] = v;
                }
            }
            "Shell" => {
                if let Some(v) = strings(value).filter(|v| !v.is_null()) {
                    config[key] = v;
                }
            }
            "Volumes" => config[key] = set(value).unwrap_or(Value::Null),
            "ExposedPorts" => {
                if let Some(v) = set(value) {
                    config[key] = v;
                }
            }
            "Labels" => {
                if let Value::Object(map) = value {
                    if map.values().all(Value::is_string) {
                        config[key] = value.clone();
                    }
                }
            }
            "StopSignal" => {
                if let Some(s) = value.as_str().filter(|s| !s.is_empty()) {
                    config[key] = json!(s);
                }
            }
            "StopTimeout" => {
                if let Some(n) = value.as_i64() {
                    config[key] = json!(n);
                }
            }
            "ArgsEscaped" | "NetworkDisabled" if value.as_bool() == Some(true) => {
                config[key] = json!(true);
            }
            "Healthcheck" if value.is_object() => config[key] = value.clone(),
            _ => {}
        }
    }
    config
}

/// The image's config document (OCI image config), when it has one.
fn image_config_doc(graph: &Graph, id: &str) -> Result<Option<Map<String, Value>>, ShapeError> {
    Ok(graph
        .image_config(id)?
        .and_then(|raw| serde_json::from_slice::<Value>(&raw).ok())
        .and_then(|v| match v {
            Value::Object(map) => Some(map),
            _ => None,
        }))
}

/// `GET /images/{name}/json` and `dock inspect IMAGE`.
pub fn image_inspect(graph: &Graph, tags: &TagStore, image: &Image) -> Result<Value, ShapeError> {
    let repo_tags = tags.names(&image.id)?;
    let size = graph.image_size(&image.id)?;
    let doc = image_config_doc(graph, &image.id)?;
    let field = |name: &str| doc.as_ref().and_then(|d| d.get(name));
    let legacy = image.container_config.as_ref();
    let config = image_container_config(field("config").or(legacy));
    let container_config = image_container_config(field("container_config").or(legacy));
    let text = |name: &str, default: &str| {
        field(name)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_string()
    };
    let layers = field("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .cloned()
        .unwrap_or_else(|| json!([]));
    let mut value = json!({
        "Id": api_id(&image.id),
        "RepoTags": repo_tags,
        "RepoDigests": repo_digests(graph, image),
        "Parent": image.parent.as_deref().map(api_id).unwrap_or_default(),
        "Comment": image.comment,
        "Created": image.created.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "Container": image.container.clone().unwrap_or_default(),
        "ContainerConfig": container_config,
        "DockerVersion": crate::VERSION,
        "Author": image.author,
        "Config": config,
        "Architecture": text("architecture", crate::system::go_arch()),
        "Os": text("os", "linux"),
        "Size": size,
        "GraphDriver": { "Name": "overlay", "Data": null },
        "RootFS": { "Type": "layers", "Layers": layers },
        "Metadata": { "LastTagTime": "0001-01-01T00:00:00Z" },
    });
    if let Some(variant) = field("variant").and_then(Value::as_str) {
        value["Variant"] = json!(variant);
    }
    Ok(value)
}

/// An image's labels from a listing's details, reading no file: those of the first
/// configuration in its history, else its own json's `container_config`. `images` is the
/// listing, sorted by id.
fn listed_labels(
    images: &[Image],
    positions: &graph::Positions,
    details: &HashMap<String, graph::Details>,
    at: usize,
) -> BTreeMap<String, String> {
    let image = &images[at];
    let mut entry = Some(at).filter(|_| !details.is_empty());
    // At most one step per image: a parent cycle (a damaged store) cannot loop.
    for _ in 0..=images.len() {
        let Some(current) = entry else { break };
        if let Some(labels) = details
            .get(&images[current].id)
            .and_then(|d| d.config_labels.as_ref())
        {
            return labels.clone();
        }
        entry = positions.parent_of(current);
    }
    image
        .container_config
        .as_ref()
        .and_then(|c| c.get("Labels").or_else(|| c.get("labels")))
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default()
}

/// Every `(image id, repo:tag)` of the tag store, sorted; none (with a warning) when it is
/// damaged.
fn named_ids(tags: &TagStore) -> Result<Vec<(String, String)>, ShapeError> {
    match tags.names_by_id() {
        Ok(named) => Ok(named),
        Err(err @ tagstore::Error::Damaged { .. }) => {
            tracing::warn!(%err, "listing images without their names");
            Ok(Vec::new())
        }
        Err(err) => Err(err.into()),
    }
}

/// One image of a listing with the names it is shown under: what a listing shows of the
/// image's json, no more, so that a listing of thousands takes the images' place in memory
/// rather than new memory of its own.
#[derive(Debug, Clone)]
pub struct ListedImage {
    pub id: String,
    pub parent: Option<String>,
    pub created: DateTime<Utc>,
    /// [`Image::layerless`]: an image configuration entry, the one a pull's repo digests name.
    pub layerless: bool,
    /// `repo:tag` names, sorted (empty: dangling).
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    /// The whole chain's size.
    pub size: u64,
    pub labels: BTreeMap<String, String>,
}

// Listed images are collected in place of the images they come from (see
// `list_images_with_broken`), which needs them to fit there.
const _: () = assert!(
    std::mem::size_of::<ListedImage>() <= std::mem::size_of::<Image>()
        && std::mem::align_of::<ListedImage>() == std::mem::align_of::<Image>()
);

impl ListedImage {
    /// The `GET /images/json` entry.
    pub fn summary(&self) -> Value {
        json!({
            "Id": api_id(&self.id),
            "ParentId": self.parent.as_deref().map(api_id).unwrap_or_default(),
            "RepoTags": self.repo_tags,
            "RepoDigests": self.repo_digests,
            "Created": self.created.timestamp(),
            "Size": self.size,
            "SharedSize": -1,
            "Labels": if self.labels.is_empty() { Value::Null } else { json!(self.labels) },
            "Containers": -1,
        })
    }
}

/// The images a listing shows, newest first: tagged images and untagged heads (with `all`,
/// every image), filtered (keys: [`IMAGE_KEYS`]).
pub fn list_images(
    graph: &Graph,
    tags: &TagStore,
    all: bool,
    filters: &Filters,
) -> Result<Vec<ListedImage>, ShapeError> {
    let (listed, broken) = list_images_with_broken(graph, tags, all, filters)?;
    for broken in &broken {
        tracing::warn!(id = %broken.id, error = %broken.error, "leaving a broken image out of the listing");
    }
    Ok(listed)
}

/// [`list_images`], and the images whose json is broken (unfiltered). A damaged tag store
/// lists the images without names (logged), rather than not at all.
pub fn list_images_with_broken(
    graph: &Graph,
    tags: &TagStore,
    all: bool,
    filters: &Filters,
) -> Result<(Vec<ListedImage>, Vec<graph::BrokenImage>), ShapeError> {
    filters.check_keys(IMAGE_KEYS)?;
    let dangling = filters.bool("dangling")?;
    let references = filters.get("reference");
    let created_of = |name: &String| -> Result<DateTime<Utc>, ShapeError> {
        let name = familiar(name);
        match tags.lookup(graph, name) {
            Ok(image) => Ok(image.created),
            Err(_) => Ok(graph.resolve(name)?.created),
        }
    };
    let before = filters
        .get("before")
        .iter()
        .map(created_of)
        .collect::<Result<Vec<_>, _>>()?;
    let since = filters
        .get("since")
        .iter()
        .map(created_of)
        .collect::<Result<Vec<_>, _>>()?;
    // The names are read while the images are: two files, two cores.
    let (named, listing) = graph::stamped::side_by_side(|| named_ids(tags), || graph.listing());
    let graph::Listing {
        images: everything,
        broken,
        mut details,
    } = listing?;
    // Everything below is indexed by position in the listing (sorted by id): no hashing of
    // ids, no copies of them.
    let positions = graph::Positions::new(&everything);
    let mut named = named?.into_iter().peekable();
    let mut is_parent = vec![false; everything.len()];
    for at in 0..everything.len() {
        if let Some(parent) = positions.parent_of(at) {
            is_parent[parent] = true;
        }
    }
    let sizes = graph::image_sizes(&everything);

    // What is shown, decided on borrowed images, in id order; then the chosen ones are made
    // into listed images in place.
    let mut chosen: Vec<(usize, Vec<String>, BTreeMap<String, String>)> =
        Vec::with_capacity(everything.len());
    for (at, image) in everything.iter().enumerate() {
        // Both sorted by id: the names of images not listed are passed over.
        while named.next_if(|(id, _)| *id < image.id).is_some() {}
        let mut repo_tags = Vec::new();
        while let Some((_, name)) = named.next_if(|(id, _)| *id == image.id) {
            repo_tags.push(name);
        }
        // Shown: named images, and (without `all`) heads that are not a pull's layer entries.
        let shown = !repo_tags.is_empty()
            || all
            || (!is_parent[at] && !registry::store::is_layer_entry(image));
        if !shown {
            continue;
        }
        if let Some(want) = dangling {
            if want != repo_tags.is_empty() {
                continue;
            }
        }
        if !references.is_empty() {
            repo_tags.retain(|t| references.iter().any(|r| reference_matches(r, t)));
            if repo_tags.is_empty() {
                continue;
            }
        }
        if before.iter().any(|t| image.created >= *t) || since.iter().any(|t| image.created <= *t) {
            continue;
        }
        let labels = listed_labels(&everything, &positions, &details, at);
        if !filters.labels_match(&labels) {
            continue;
        }
        chosen.push((at, repo_tags, labels));
    }
    drop(positions);
    // A listed image is smaller than an image: collected from the listing's own array, it
    // is written over the images already read (no new memory for thousands of them).
    let mut chosen = chosen.into_iter().peekable();
    let mut listed: Vec<ListedImage> = everything
        .into_iter()
        .enumerate()
        .filter_map(|(at, image)| {
            let (_, repo_tags, labels) = chosen.next_if(|(next, ..)| *next == at)?;
            Some(ListedImage {
                repo_digests: details
                    .remove(&image.id)
                    .map(|d| d.repo_digests)
                    .unwrap_or_default(),
                id: image.id,
                parent: image.parent,
                created: image.created,
                layerless: image.layerless,
                repo_tags,
                size: sizes[at],
                labels,
            })
        })
        .collect();
    newest_first(&mut listed);
    Ok((listed, broken))
}

/// Orders `listed` (in id order) newest first, by id among images of the same time: a
/// stable sort of positions, then the images put in that order in place.
fn newest_first(listed: &mut [ListedImage]) {
    if listed.is_sorted_by(|a, b| a.created >= b.created) {
        return;
    }
    let mut order: Vec<usize> = (0..listed.len()).collect();
    order.sort_by_key(|&at| std::cmp::Reverse(listed[at].created));
    permute(listed, order);
}

/// Reorders `items` in place so that `items[i]` holds what was at `order[i]` (a permutation):
/// at most one swap per item, following each cycle of `order` from its first position.
fn permute<T>(items: &mut [T], mut order: Vec<usize>) {
    debug_assert!(
        {
            let mut sorted = order.clone();
            sorted.sort_unstable();
            sorted.into_iter().eq(0..items.len())
        },
        "not a permutation of the items"
    );
    for start in 0..items.len() {
        // A position done points at itself.
        let mut hole = start;
        loop {
            let from = order[hole];
            order[hole] = hole;
            if from == start {
                break;
            }
            // `hole` gets its item; what was at `start` moves on to `from`, the next hole.
            items.swap(hole, from);
            hole = from;
        }
    }
}

/// `GET /images/json` as a whole.
pub fn image_summaries(
    graph: &Graph,
    tags: &TagStore,
    all: bool,
    filters: &Filters,
) -> Result<Vec<Value>, ShapeError> {
    Ok(list_images(graph, tags, all, filters)?
        .iter()
        .map(ListedImage::summary)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A graph with `base` (tagged base:1, labelled through its config) and an untagged child.
    fn store() -> (tempfile::TempDir, Graph, TagStore, Image, Image) {
        let dir = tempfile::tempdir().unwrap();
        let graph = Graph::open(dir.path().join("graph")).unwrap();
        let tags = TagStore::open(dir.path().join("repositories")).unwrap();
        let new = |parent: Option<String>, labels| graph::NewImage {
            parent,
            container_config: Some(json!({ "Labels": labels })),
            ..Default::default()
        };
        let base = graph
            .create(std::io::empty(), new(None, json!({"tier": "db"})))
            .unwrap();
        let child = graph
            .create(std::io::empty(), new(Some(base.id.clone()), json!({})))
            .unwrap();
        tags.set(&graph, "base", "1", &base.id, false).unwrap();
        (dir, graph, tags, base, child)
    }

    fn ids(graph: &Graph, tags: &TagStore, filters: &[&str]) -> Vec<String> {
        let filters = Filters::from_args(filters).unwrap();
        list_images(graph, tags, false, &filters)
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect()
    }

    #[test]
    fn permuting_in_place_puts_each_item_where_the_order_says() {
        // Every permutation of five items: cycles of every length, fixed points, none.
        fn each_order(prefix: &mut Vec<usize>, n: usize, seen: &mut dyn FnMut(&[usize])) {
            if prefix.len() == n {
                return seen(prefix);
            }
            for next in 0..n {
                if !prefix.contains(&next) {
                    prefix.push(next);
                    each_order(prefix, n, seen);
                    prefix.pop();
                }
            }
        }
        let mut count = 0;
        each_order(&mut Vec::new(), 5, &mut |order| {
            let items = ["a", "b", "c", "d", "e"].map(String::from);
            let want: Vec<String> = order.iter().map(|&at| items[at].clone()).collect();
            let mut got = items.to_vec();
            permute(&mut got, order.to_vec());
            assert_eq!(got, want, "order {order:?}");
            count += 1;
        });
        assert_eq!(count, 120);
    }

    #[test]
    fn a_listing_is_newest_first_and_by_id_within_a_time() {
        let at = |secs| DateTime::from_timestamp(secs, 0).unwrap();
        let listed = |id: &str, created| ListedImage {
            id: id.to_string(),
            parent: None,
            created,
            layerless: false,
            repo_tags: Vec::new(),
            repo_digests: Vec::new(),
            size: 0,
            labels: BTreeMap::new(),
        };
        // In id order, as a listing makes them.
        let mut images: Vec<ListedImage> = [("a", 2), ("b", 9), ("c", 2), ("d", 5), ("e", 9)]
            .into_iter()
            .map(|(id, secs)| listed(id, at(secs)))
            .collect();
        newest_first(&mut images);
        let ids: Vec<&str> = images.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["b", "e", "d", "a", "c"]);
    }

    #[test]
    fn image_listings_filter_like_docker() {
        let (_dir, graph, tags, base, child) = store();
        let (base_id, child_id) = (base.id.as_str(), child.id.as_str());
        assert_eq!(ids(&graph, &tags, &[]), [child_id, base_id]);
        assert_eq!(ids(&graph, &tags, &["dangling=true"]), [child_id]);
        assert_eq!(ids(&graph, &tags, &["dangling=false"]), [base_id]);
        assert_eq!(ids(&graph, &tags, &["reference=base"]), [base_id]);
        assert_eq!(ids(&graph, &tags, &["reference=base:1"]), [base_id]);
        assert!(ids(&graph, &tags, &["reference=base:2"]).is_empty());
        assert_eq!(ids(&graph, &tags, &["label=tier=db"]), [base_id]);
        assert_eq!(ids(&graph, &tags, &["since=base:1"]), [child_id]);
        assert_eq!(
            ids(&graph, &tags, &[&format!("before={}", child.id)]),
            [base_id]
        );
        let unknown = Filters::from_args(&["bogus=1"]).unwrap();
        let err = list_images(&graph, &tags, false, &unknown).err().unwrap();
        assert_eq!(err.to_string(), "invalid filter 'bogus'");
        let summary = list_images(&graph, &tags, false, &Filters::default()).unwrap()[1].summary();
        assert_eq!(summary["RepoTags"], json!(["base:1"]));
        assert_eq!(summary["Labels"], json!({"tier": "db"}));
    }

    #[test]
    fn image_inspect_always_has_a_config() {
        let (_dir, graph, tags, base, _) = store();
        let doc = image_inspect(&graph, &tags, &base).unwrap();
        assert_eq!(doc["Id"], format!("sha256:{}", base.id));
        assert_eq!(doc["RepoTags"], json!(["base:1"]));
        assert!(doc["Config"]["Cmd"].is_null());
        assert_eq!(doc["Config"]["Labels"], json!({"tier": "db"}));
        assert_eq!(doc["RootFS"]["Type"], "layers");
    }

    #[test]
    fn an_image_without_config_still_has_a_config_object() {
        let config = image_container_config(None);
        assert!(config["Cmd"].is_null());
        assert_eq!(config["Hostname"], "");
        assert!(config.as_object().unwrap().contains_key("Labels"));
    }

    #[test]
    fn older_configs_are_put_in_docker_types() {
        let legacy = json!({
            "Cmd": ["sh"], "ExposedPorts": ["80/tcp"], "Volumes": ["/data"],
            "Memory": 0, "PortSpecs": [], "Labels": {"a": "b"}, "StopSignal": ""
        });
        let config = image_container_config(Some(&legacy));
        assert_eq!(config["Cmd"], json!(["sh"]));
        assert_eq!(config["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(config["Volumes"], json!({"/data": {}}));
        assert_eq!(config["Labels"], json!({"a": "b"}));
        assert!(config.get("Memory").is_none() && config.get("PortSpecs").is_none());
        assert!(config.get("StopSignal").is_none());
    }
}
