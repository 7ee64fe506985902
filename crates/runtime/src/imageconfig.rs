//! An image's config at `run`/`create` and at `commit`, with Docker's rules.
//!
//! At create the user's options are merged over the image's defaults as moby's
//! `mergeAndVerifyConfig` does: arguments after the image replace `Cmd`; `--entrypoint`
//! replaces `Entrypoint` and drops the image's `Cmd` (`--entrypoint ""` removes it); `Env` is
//! the user's values plus the image's keys the user did not set; `WorkingDir`, `User` and
//! `StopSignal` are the image's unless given; `ExposedPorts` and `Labels` are the union.
//! At commit the new config is the base image's config with the container's values of those
//! fields (the container's config already holds the image's, merged at create), a history
//! entry appended and the diff ids of every layer, as `docker commit` writes it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use oci_spec::image::Config as ImageDefaults;
use serde_json::{json, Map, Value};

use crate::{Config, Error, Result};

/// What the user gave for the parts of a container's config an image has defaults for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// The arguments after the image name; empty: the image's `Cmd` (unless `entrypoint` is
    /// given).
    pub cmd: Vec<String>,
    /// `None`: the image's entrypoint. `Some([X])` (`--entrypoint X`): X, and the image's
    /// `Cmd` is not used. `Some([""])` (`--entrypoint ""`): no entrypoint and not the image's
    /// `Cmd`. `Some([])` (an API client's `[]`): no entrypoint, the image's `Cmd`.
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=VALUE`, later ones win.
    pub env: Vec<String>,
    /// Empty: the image's; otherwise an absolute path.
    pub working_dir: String,
    /// Empty: the image's.
    pub user: String,
    /// `80/tcp`, `53/udp` (from `--expose`, `-p` and the API's `ExposedPorts`).
    pub exposed_ports: Vec<String>,
    /// Empty: the image's; else a signal name or number.
    pub stop_signal: String,
    pub labels: BTreeMap<String, String>,
}

/// The result of [`merge`]: what the container's [`Config`] records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Merged {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub exposed_ports: BTreeSet<String>,
    pub stop_signal: String,
    pub labels: BTreeMap<String, String>,
}

impl Merged {
    /// The container's argv: entrypoint, then cmd.
    pub fn argv(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }
}

fn env_key(kv: &str) -> &str {
    kv.split_once('=').map_or(kv, |(k, _)| k)
}

/// Docker's merge of the user's options over the image's defaults (`None`: an image without
/// a config), then its checks: a command (`no command specified`), an absolute working
/// directory, a known stop signal, valid exposed ports.
pub fn merge(user: &Overrides, image: Option<&ImageDefaults>) -> Result<Merged> {
    let empty = ImageDefaults::default();
    let image = image.unwrap_or(&empty);
    let mut env = user.env.clone();
    for kv in image.env().iter().flatten() {
        if !user.env.iter().any(|u| env_key(u) == env_key(kv)) {
            env.push(kv.clone());
        }
    }
    let mut cmd = user.cmd.clone();
    let mut entrypoint = user.entrypoint.clone();
    if entrypoint.as_ref().is_none_or(Vec::is_empty) {
        if cmd.is_empty() {
            cmd = image.cmd().clone().unwrap_or_default();
        }
        if entrypoint.is_none() {
            entrypoint = image.entrypoint().clone();
        }
    }
    let mut entrypoint = entrypoint.unwrap_or_default();
    if entrypoint.len() == 1 && entrypoint[0].is_empty() {
        entrypoint.clear();
    }
    if entrypoint.is_empty() && cmd.is_empty() {
        return Err(Error::NoCommand);
    }
    let working_dir = if user.working_dir.is_empty() {
        image.working_dir().clone().unwrap_or_default()
    } else {
        user.working_dir.clone()
    };
    let working_dir = clean_working_dir(&working_dir)?;
    let user_name = if user.user.is_empty() {
        image.user().clone().unwrap_or_default()
    } else {
        user.user.clone()
    };
    let mut exposed_ports = BTreeSet::new();
    for port in user
        .exposed_ports
        .iter()
        .chain(image.exposed_ports().iter().flatten())
    {
        exposed_ports.insert(normalize_port(port)?);
    }
    let stop_signal = if user.stop_signal.is_empty() {
        image.stop_signal().clone().unwrap_or_default()
    } else {
        user.stop_signal.clone()
    };
    if !stop_signal.is_empty() {
        crate::procs::signal_number(&stop_signal)
            .ok_or_else(|| Error::InvalidSignal(stop_signal.clone()))?;
    }
    let mut labels: BTreeMap<String, String> = image
        .labels()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.extend(user.labels.clone());
    Ok(Merged {
        entrypoint,
        cmd,
        env,
        working_dir,
        user: user_name,
        exposed_ports,
        stop_signal,
        labels,
    })
}

/// `/a/./b/../c/` -> `/a/c`, as Go's `filepath.Clean`; relative paths are refused as Docker
/// refuses them.
fn clean_working_dir(dir: &str) -> Result<String> {
    if dir.is_empty() {
        return Ok(String::new());
    }
    if !dir.starts_with('/') {
        return Err(Error::InvalidWorkingDir(dir.to_string()));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in dir.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// `80` -> `80/tcp`; `53/UDP` -> `53/udp`; a port must be 1-65535.
pub fn normalize_port(port: &str) -> Result<String> {
    let (number, proto) = port.split_once('/').unwrap_or((port, "tcp"));
    let proto = proto.to_ascii_lowercase();
    // Digits only (no sign), and written back as the number, as Docker's nat.NewPort:
    // `080` and `80` are one port.
    let number = number
        .parse::<u16>()
        .ok()
        .filter(|&n| n > 0 && number.bytes().all(|b| b.is_ascii_digit()));
    match number {
        Some(n) if matches!(proto.as_str(), "tcp" | "udp" | "sctp") => Ok(format!("{n}/{proto}")),
        _ => Err(Error::InvalidPort(port.to_string())),
    }
}

/// `--expose 80`, `--expose 8000-8002/udp`: the ports it names, normalized.
pub fn parse_expose(spec: &str) -> Result<Vec<String>> {
    let (range, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let Some((first, last)) = range.split_once('-') else {
        return Ok(vec![normalize_port(spec)?]);
    };
    let bad = || Error::InvalidPort(spec.to_string());
    let number = |text: &str| {
        text.parse::<u16>()
            .ok()
            .filter(|_| text.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(bad)
    };
    let (first, last) = (number(first)?, number(last)?);
    if first == 0 || last < first {
        return Err(bad());
    }
    (first..=last)
        .map(|n| normalize_port(&format!("{n}/{proto}")))
        .collect()
}

/// The `-p` specs the monitor publishes: the container's own, then with `-P` every exposed
/// TCP or UDP port no spec binds, on a random host port (SCTP cannot be published by dock
/// and is left out).
pub fn publish_specs(config: &Config, publish_all: bool) -> Vec<String> {
    let mut specs = config.port_specs.clone();
    if !publish_all {
        return specs;
    }
    let bound: BTreeSet<String> = config
        .port_specs
        .iter()
        .filter_map(|s| s.parse::<netmgr::PortSpec>().ok())
        .map(|p| format!("{}/{}", p.container_port, p.proto))
        .collect();
    for port in &config.exposed_ports {
        if bound.contains(port) {
            continue;
        }
        match port.split_once('/') {
            Some((number, "tcp")) => specs.push(number.to_string()),
            Some((_, "udp")) => specs.push(port.clone()),
            _ => tracing::debug!(%port, "not publishing a port of this protocol"),
        }
    }
    specs
}

/// The exposed-port key (`80/tcp`) of each `-p` spec that parses.
pub fn spec_ports(specs: &[String]) -> Vec<String> {
    specs
        .iter()
        .filter_map(|s| s.parse::<netmgr::PortSpec>().ok())
        .map(|p| format!("{}/{}", p.container_port, p.proto))
        .collect()
}

/// Parses raw image config bytes.
pub fn parse(id: &str, bytes: &[u8]) -> Result<oci_spec::image::ImageConfiguration> {
    serde_json::from_slice(bytes).map_err(|source| Error::ImageConfig {
        id: id.to_string(),
        source,
    })
}

/// The defaults an image committed by an older dock (no config entry, only the committed
/// container's config) gives: the command it ran.
pub fn legacy_defaults(container_config: &Value) -> Option<ImageDefaults> {
    let c: Config = serde_json::from_value(container_config.clone()).ok()?;
    let mut defaults = ImageDefaults::default();
    if !c.cmd.is_empty() {
        defaults.set_cmd(Some(c.cmd));
    }
    if !c.entrypoint.is_empty() {
        defaults.set_entrypoint(Some(c.entrypoint));
    }
    Some(defaults)
}

/// The architecture name Docker and the OCI use for this host (Go's GOARCH).
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// One history entry of a committed image.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub created: DateTime<Utc>,
    pub author: String,
    pub created_by: String,
    pub comment: String,
}

impl HistoryEntry {
    fn to_json(&self) -> Value {
        let mut h = Map::new();
        h.insert("created".into(), json!(rfc3339(self.created)));
        for (key, value) in [
            ("author", &self.author),
            ("created_by", &self.created_by),
            ("comment", &self.comment),
        ] {
            if !value.is_empty() {
                h.insert(key.into(), json!(value));
            }
        }
        Value::Object(h)
    }
}

/// What a committed image's config is made of besides the base config.
#[derive(Debug, Clone)]
pub struct Commit<'a> {
    /// The base image's raw config, if it has one.
    pub base: Option<&'a [u8]>,
    /// History for a base without a config: one entry per layer, base first.
    pub base_history: Vec<HistoryEntry>,
    pub container_id: &'a str,
    pub config: &'a Config,
    pub created: DateTime<Utc>,
    pub author: &'a str,
    pub comment: &'a str,
    /// Every layer's diff id, base first (the new layer last).
    pub diff_ids: Vec<String>,
}

/// RFC 3339 with nanoseconds, as Go writes `time.Time`.
fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// The raw config of a committed image, as `docker commit` writes it: the base's config with
/// the container's `Cmd`, `Entrypoint`, `Env`, `WorkingDir`, `User`, `ExposedPorts`,
/// `StopSignal` and `Labels`; `container`, `container_config`, `created`, `author`,
/// `comment`, the base's history and one entry for this commit (`created_by`: the
/// container's `Cmd`, as Docker records it), `rootfs.diff_ids`, `os` and `architecture`.
pub fn commit_config(commit: &Commit) -> Result<Vec<u8>> {
    let base: Map<String, Value> = match commit.base {
        Some(bytes) => match serde_json::from_slice(bytes) {
            Ok(Value::Object(map)) => map,
            Ok(_) => Map::new(),
            Err(source) => {
                return Err(Error::ImageConfig {
                    id: "base".into(),
                    source,
                })
            }
        },
        None => Map::new(),
    };
    let c = commit.config;
    let mut config = match base.get("config") {
        Some(Value::Object(config)) => config.clone(),
        _ => Map::new(),
    };
    let null_if_empty = |list: &Vec<String>| {
        if list.is_empty() {
            Value::Null
        } else {
            json!(list)
        }
    };
    config.insert("Cmd".into(), null_if_empty(&c.cmd));
    config.insert("Entrypoint".into(), null_if_empty(&c.entrypoint));
    config.insert("Env".into(), null_if_empty(&c.env));
    config.insert("WorkingDir".into(), json!(c.working_dir));
    config.insert("User".into(), json!(c.user));
    if c.exposed_ports.is_empty() {
        config.remove("ExposedPorts");
    } else {
        let ports: Map<String, Value> = c
            .exposed_ports
            .iter()
            .map(|p| (p.clone(), json!({})))
            .collect();
        config.insert("ExposedPorts".into(), Value::Object(ports));
    }
    if c.stop_signal.is_empty() {
        config.remove("StopSignal");
    } else {
        config.insert("StopSignal".into(), json!(c.stop_signal));
    }
    config.insert(
        "Labels".into(),
        if c.labels.is_empty() {
            Value::Null
        } else {
            json!(c.labels)
        },
    );

    let mut history: Vec<Value> = match base.get("history") {
        Some(Value::Array(h)) if commit.base.is_some() => h.clone(),
        _ => commit
            .base_history
            .iter()
            .map(HistoryEntry::to_json)
            .collect(),
    };
    history.push(
        HistoryEntry {
            created: commit.created,
            author: commit.author.to_string(),
            created_by: c.cmd.join(" "),
            comment: commit.comment.to_string(),
        }
        .to_json(),
    );

    let mut out = base;
    out.insert("architecture".into(), json!(host_architecture()));
    out.insert("os".into(), json!("linux"));
    out.remove("variant");
    out.remove("os.version");
    out.remove("os.features");
    out.insert("created".into(), json!(rfc3339(commit.created)));
    for (key, value) in [("author", commit.author), ("comment", commit.comment)] {
        if value.is_empty() {
            out.remove(key);
        } else {
            out.insert(key.into(), json!(value));
        }
    }
    out.insert("container".into(), json!(commit.container_id));
    out.insert(
        "container_config".into(),
        serde_json::to_value(c).unwrap_or(Value::Null),
    );
    out.insert("config".into(), Value::Object(config));
    out.insert("history".into(), Value::Array(history));
    out.insert(
        "rootfs".into(),
        json!({ "type": "layers", "diff_ids": commit.diff_ids }),
    );
    serde_json::to_vec(&Value::Object(out)).map_err(|source| Error::ImageConfig {
        id: commit.container_id.to_string(),
        source,
    })
}

/// One line of `history`, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    /// The image (or graph entry) the line stands for; `None` for the lines of an image
    /// config's history below its top, which Docker shows as `<missing>`.
    pub id: Option<String>,
    pub created: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
    /// Bytes of the layer the line added (0 for an empty layer).
    pub size: u64,
}

/// The command a graph entry's container ran (an older commit's record).
pub(crate) fn entry_command(entry: &graph::Image) -> String {
    entry
        .container_config
        .as_ref()
        .and_then(|v| serde_json::from_value::<Config>(v.clone()).ok())
        .map(|c| c.cmd.join(" "))
        .unwrap_or_default()
}

/// An image's history as `docker history` shows it: graph entries one per line down to the
/// first image config that has a history, then that history (newest first, the config's
/// own line carrying its id, the rest `None`), sized by its layers in order.
pub fn history(graph: &graph::Graph, id: &str) -> Result<Vec<HistoryRow>> {
    let graph_err = |e: graph::Error| Error::Graph(e.to_string());
    let chain = graph.history(id).map_err(graph_err)?;
    let mut rows = Vec::new();
    // A config without a history names the next line.
    let mut pending_id: Option<String> = None;
    for (i, entry) in chain.iter().enumerate() {
        if let Some(bytes) = graph.config(&entry.id).map_err(graph_err)? {
            let config = parse(&entry.id, &bytes)?;
            if let Some(history) = config.history().as_ref().filter(|h| !h.is_empty()) {
                let mut layers = chain[i..].iter().filter(|e| !e.layerless).rev();
                let mut lines: Vec<HistoryRow> = history
                    .iter()
                    .map(|h| HistoryRow {
                        id: None,
                        created: h
                            .created()
                            .as_deref()
                            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                            .map_or(entry.created, |t| t.with_timezone(&Utc)),
                        created_by: h.created_by().clone().unwrap_or_default(),
                        comment: h.comment().clone().unwrap_or_default(),
                        size: if h.empty_layer() == Some(true) {
                            0
                        } else {
                            layers.next().map_or(0, |l| l.size)
                        },
                    })
                    .collect();
                lines.reverse();
                lines[0].id = Some(pending_id.take().unwrap_or_else(|| entry.id.clone()));
                rows.extend(lines);
                return Ok(rows);
            }
        }
        if entry.layerless {
            pending_id.get_or_insert_with(|| entry.id.clone());
            continue;
        }
        rows.push(HistoryRow {
            id: Some(pending_id.take().unwrap_or_else(|| entry.id.clone())),
            created: entry.created,
            created_by: entry_command(entry),
            comment: entry.comment.clone(),
            size: entry.size,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(json: &str) -> ImageDefaults {
        serde_json::from_str(json).unwrap()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn web() -> ImageDefaults {
        image(
            r#"{"Entrypoint":["/bin/echo","entry"],"Cmd":["default","args"],
                "Env":["PATH=/opt/bin:/bin","GREETING=hello"],"WorkingDir":"/srv/app",
                "User":"nobody","ExposedPorts":{"80/tcp":{},"53/udp":{}},
                "StopSignal":"SIGQUIT","Labels":{"maintainer":"me"}}"#,
        )
    }

    #[test]
    fn the_image_config_alone() {
        let m = merge(&Overrides::default(), Some(&web())).unwrap();
        assert_eq!(m.argv(), ["/bin/echo", "entry", "default", "args"]);
        assert_eq!(m.entrypoint, ["/bin/echo", "entry"]);
        assert_eq!(m.cmd, ["default", "args"]);
        assert_eq!(m.env, ["PATH=/opt/bin:/bin", "GREETING=hello"]);
        assert_eq!(m.working_dir, "/srv/app");
        assert_eq!(m.user, "nobody");
        assert_eq!(
            m.exposed_ports.iter().collect::<Vec<_>>(),
            ["53/udp", "80/tcp"]
        );
        assert_eq!(m.stop_signal, "SIGQUIT");
        assert_eq!(m.labels["maintainer"], "me");
    }

    #[test]
    fn arguments_replace_cmd_only() {
        let user = Overrides {
            cmd: strings(&["mine"]),
            ..Overrides::default()
        };
        let m = merge(&user, Some(&web())).unwrap();
        assert_eq!(m.argv(), ["/bin/echo", "entry", "mine"]);
    }

    #[test]
    fn entrypoint_replaces_entrypoint_and_drops_the_image_cmd() {
        let user = Overrides {
            entrypoint: Some(strings(&["/bin/pwd"])),
            ..Overrides::default()
        };
        let m = merge(&user, Some(&web())).unwrap();
        assert_eq!(m.argv(), ["/bin/pwd"]);
        assert!(m.cmd.is_empty());
        let user = Overrides {
            entrypoint: Some(strings(&["/bin/ls"])),
            cmd: strings(&["-l", "/"]),
            ..Overrides::default()
        };
        assert_eq!(
            merge(&user, Some(&web())).unwrap().argv(),
            ["/bin/ls", "-l", "/"]
        );
    }

    #[test]
    fn an_empty_entrypoint_removes_it() {
        // `--entrypoint ""`: no entrypoint, and not the image's Cmd either.
        let reset = Overrides {
            entrypoint: Some(strings(&[""])),
            ..Overrides::default()
        };
        assert!(matches!(merge(&reset, Some(&web())), Err(Error::NoCommand)));
        let reset_with_args = Overrides {
            entrypoint: Some(strings(&[""])),
            cmd: strings(&["sh"]),
            ..Overrides::default()
        };
        let m = merge(&reset_with_args, Some(&web())).unwrap();
        assert!(m.entrypoint.is_empty());
        assert_eq!(m.argv(), ["sh"]);
        // The API's `"Entrypoint": []`: no entrypoint, the image's Cmd.
        let api_empty = Overrides {
            entrypoint: Some(vec![]),
            ..Overrides::default()
        };
        assert_eq!(
            merge(&api_empty, Some(&web())).unwrap().argv(),
            ["default", "args"]
        );
    }

    #[test]
    fn no_command_anywhere_is_an_error() {
        assert!(matches!(
            merge(&Overrides::default(), None),
            Err(Error::NoCommand)
        ));
        let entry_only = image(r#"{"Entrypoint":["/bin/sh"]}"#);
        assert_eq!(
            merge(&Overrides::default(), Some(&entry_only))
                .unwrap()
                .argv(),
            ["/bin/sh"]
        );
        assert_eq!(Error::NoCommand.to_string(), "no command specified");
    }

    #[test]
    fn env_user_values_win_and_image_keys_are_kept() {
        let user = Overrides {
            cmd: strings(&["x"]),
            env: strings(&["GREETING=bye", "EXTRA=1"]),
            ..Overrides::default()
        };
        let m = merge(&user, Some(&web())).unwrap();
        assert_eq!(m.env, ["GREETING=bye", "EXTRA=1", "PATH=/opt/bin:/bin"]);
    }

    #[test]
    fn working_dir_user_and_stop_signal_overrides() {
        let user = Overrides {
            working_dir: "/tmp/./new/../work/".into(),
            user: "1000:1000".into(),
            stop_signal: "USR1".into(),
            ..Overrides::default()
        };
        let m = merge(&user, Some(&web())).unwrap();
        assert_eq!(m.working_dir, "/tmp/work");
        assert_eq!(m.user, "1000:1000");
        assert_eq!(m.stop_signal, "USR1");
        let relative = Overrides {
            working_dir: "tmp".into(),
            ..Overrides::default()
        };
        let err = merge(&relative, Some(&web())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the working directory 'tmp' is invalid, it needs to be an absolute path"
        );
        let bad_signal = Overrides {
            stop_signal: "SIGNOPE".into(),
            ..Overrides::default()
        };
        assert_eq!(
            merge(&bad_signal, Some(&web())).unwrap_err().to_string(),
            "invalid signal: SIGNOPE"
        );
    }

    #[test]
    fn exposed_ports_and_labels_are_the_union() {
        let mut labels = BTreeMap::new();
        labels.insert("maintainer".to_string(), "you".to_string());
        labels.insert("extra".to_string(), "1".to_string());
        let user = Overrides {
            exposed_ports: strings(&["8080", "80/tcp"]),
            labels,
            ..Overrides::default()
        };
        let m = merge(&user, Some(&web())).unwrap();
        assert_eq!(
            m.exposed_ports.iter().collect::<Vec<_>>(),
            ["53/udp", "80/tcp", "8080/tcp"]
        );
        assert_eq!(m.labels["maintainer"], "you");
        assert_eq!(m.labels["extra"], "1");
        let bad = Overrides {
            exposed_ports: strings(&["http"]),
            ..Overrides::default()
        };
        assert_eq!(
            merge(&bad, Some(&web())).unwrap_err().to_string(),
            "invalid port \"http\": expected PORT[/tcp|udp|sctp] with PORT 1-65535"
        );
    }

    #[test]
    fn expose_ranges() {
        assert_eq!(parse_expose("80").unwrap(), ["80/tcp"]);
        assert_eq!(
            parse_expose("8000-8002/udp").unwrap(),
            ["8000/udp", "8001/udp", "8002/udp"]
        );
        assert!(parse_expose("9-8").is_err());
        assert!(parse_expose("0").is_err());
        assert!(parse_expose("80/icmp").is_err());
    }

    #[test]
    fn publish_all_adds_every_unbound_exposed_port() {
        let config = Config {
            port_specs: strings(&["8080:80"]),
            exposed_ports: ["80/tcp", "443/tcp", "53/udp", "9/sctp"]
                .into_iter()
                .map(String::from)
                .collect(),
            ..Config::default()
        };
        assert_eq!(publish_specs(&config, false), ["8080:80"]);
        assert_eq!(publish_specs(&config, true), ["8080:80", "443", "53/udp"]);
        assert_eq!(spec_ports(&config.port_specs), ["80/tcp"]);
    }

    #[test]
    fn legacy_committed_images_give_their_command() {
        let d = legacy_defaults(&json!({"Cmd": ["sh", "-c", "echo hi"], "Env": ["A=1"]})).unwrap();
        assert_eq!(
            d.cmd().as_deref(),
            Some(&strings(&["sh", "-c", "echo hi"])[..])
        );
        assert!(d.entrypoint().is_none());
        assert!(d.env().is_none());
    }

    fn container_config() -> Config {
        Config {
            cmd: strings(&["sh", "-c", "touch /x"]),
            entrypoint: strings(&["/entry"]),
            env: strings(&["PATH=/opt/bin:/bin", "MINE=1"]),
            working_dir: "/srv".into(),
            user: "nobody".into(),
            exposed_ports: ["80/tcp".to_string()].into_iter().collect(),
            stop_signal: "SIGQUIT".into(),
            ..Config::default()
        }
    }

    #[test]
    fn commit_keeps_the_base_config_and_records_the_container() {
        let base = br#"{"architecture":"amd64","os":"linux","variant":"v7",
            "config":{"Env":["PATH=/opt/bin:/bin"],"Entrypoint":["/entry"],"Cmd":["serve"],
                      "Healthcheck":{"Test":["CMD","true"]},"ExposedPorts":{"80/tcp":{}}},
            "rootfs":{"type":"layers","diff_ids":["sha256:aa"]},
            "history":[{"created":"2024-01-01T00:00:00Z","created_by":"ADD rootfs"}]}"#;
        let config = container_config();
        let created = DateTime::parse_from_rfc3339("2026-12-01T23:00:00.5Z")
            .unwrap()
            .with_timezone(&Utc);
        let bytes = commit_config(&Commit {
            base: Some(base),
            base_history: vec![],
            container_id: "c0ffee",
            config: &config,
            created,
            author: "me <me@x>",
            comment: "",
            diff_ids: strings(&["sha256:aa", "sha256:bb"]),
        })
        .unwrap();
        let parsed = parse("new", &bytes).unwrap();
        let c = parsed.config().as_ref().unwrap();
        assert_eq!(
            c.cmd().as_deref(),
            Some(&strings(&["sh", "-c", "touch /x"])[..])
        );
        assert_eq!(c.entrypoint().as_deref(), Some(&strings(&["/entry"])[..]));
        assert_eq!(c.working_dir().as_deref(), Some("/srv"));
        assert_eq!(c.user().as_deref(), Some("nobody"));
        assert_eq!(c.stop_signal().as_deref(), Some("SIGQUIT"));
        assert_eq!(
            parsed.rootfs().diff_ids(),
            &strings(&["sha256:aa", "sha256:bb"])
        );
        assert_eq!(parsed.author().as_deref(), Some("me <me@x>"));
        let history = parsed.history().as_ref().unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[1].created_by().as_deref(), Some("sh -c touch /x"));
        assert_eq!(history[1].comment(), &None);
        let raw: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(raw["created"], "2026-12-01T23:00:00.500000000Z");
        assert_eq!(raw["container"], "c0ffee");
        assert_eq!(raw["container_config"]["Cmd"][0], "sh");
        assert_eq!(raw["config"]["Healthcheck"]["Test"][1], "true");
        assert_eq!(raw["architecture"], host_architecture());
        assert!(raw.get("variant").is_none());
    }

    #[test]
    fn commit_on_a_base_without_config_synthesizes_its_history() {
        let config = Config {
            cmd: strings(&["true"]),
            ..Config::default()
        };
        let created = Utc::now();
        let bytes = commit_config(&Commit {
            base: None,
            base_history: vec![HistoryEntry {
                created,
                author: String::new(),
                created_by: String::new(),
                comment: "Imported from -".into(),
            }],
            container_id: "c",
            config: &config,
            created,
            author: "",
            comment: "second",
            diff_ids: strings(&["sha256:aa", "sha256:bb"]),
        })
        .unwrap();
        let raw: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(raw["history"][0]["comment"], "Imported from -");
        assert_eq!(raw["history"][1]["comment"], "second");
        assert_eq!(raw["config"]["Entrypoint"], Value::Null);
        assert_eq!(raw["os"], "linux");
        assert!(raw.get("author").is_none());
        assert!(raw["config"].get("ExposedPorts").is_none());
        parse("x", &bytes).unwrap();
    }

    #[test]
    fn history_reads_the_config_below_older_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let graph = graph::Graph::open(tmp.path().join("graph")).unwrap();
        let layer = |parent: Option<String>, comment: &str, cmd: &[&str]| {
            graph
                .create(
                    std::io::empty(),
                    graph::NewImage {
                        parent,
                        container: None,
                        container_config: Some(json!({ "Cmd": cmd })),
                        comment: comment.into(),
                        author: String::new(),
                    },
                )
                .unwrap()
        };
        let base = layer(None, "Imported from -", &[]);
        let top = layer(Some(base.id.clone()), "", &["touch", "/x"]);
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},
            "history":[{"created":"2026-01-01T00:00:00Z","comment":"Imported from -"},
                       {"created":"2026-01-02T00:00:00Z","created_by":"ENV A=1","empty_layer":true},
                       {"created":"2026-01-03T00:00:00Z","created_by":"touch /x"}]}"#;
        let image = graph
            .register_config(
                graph::Image {
                    id: graph::sha256_hex(config),
                    parent: Some(top.id.clone()),
                    created: Utc::now(),
                    ..graph::Image::default()
                },
                config,
            )
            .unwrap();
        // An older dock's commit on top: a plain entry.
        let legacy = layer(Some(image.id.clone()), "legacy", &["sh", "-c", "true"]);

        let rows = history(&graph, &legacy.id).unwrap();
        let summary: Vec<(Option<&str>, &str, &str)> = rows
            .iter()
            .map(|r| (r.id.as_deref(), r.created_by.as_str(), r.comment.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (Some(legacy.id.as_str()), "sh -c true", "legacy"),
                (Some(image.id.as_str()), "touch /x", ""),
                (None, "ENV A=1", ""),
                (None, "", "Imported from -"),
            ]
        );
        assert_eq!(rows[1].created.to_rfc3339(), "2026-01-03T00:00:00+00:00");
        assert_eq!(rows[2].size, 0);

        // Without any config: one line per entry.
        let rows = history(&graph, &top.id).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].created_by, "touch /x");
        assert_eq!(rows[1].id.as_deref(), Some(base.id.as_str()));
    }
}
