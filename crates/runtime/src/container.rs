//! A container's config and state as stored in `containers/<id>/config.json` (Docker 0.1.0's
//! field names), written atomically and guarded by a per-container lock file.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Go's zero `time.Time`, which Docker writes for "never".
pub fn zero_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

fn is_zero_time(t: &DateTime<Utc>) -> bool {
    *t == zero_time()
}

/// What the user asked for at `run`, merged with the image's config as Docker merges them
/// (see [`crate::imageconfig`]). Docker's JSON names: `Entrypoint`, `WorkingDir`,
/// `ExposedPorts` (`{"80/tcp": {}}`), `StopSignal`, `Labels`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Config {
    pub hostname: String,
    pub user: String,
    pub memory: i64,
    pub memory_swap: i64,
    pub detach: bool,
    pub port_specs: Vec<String>,
    pub tty: bool,
    pub open_stdin: bool,
    pub env: Vec<String>,
    /// The arguments of the entrypoint, or the whole command when there is no entrypoint.
    /// (Containers of older dock versions have the whole command here and no entrypoint.)
    pub cmd: Vec<String>,
    /// The image as the user named it.
    pub image: String,
    /// `--network none`: only `lo`, in the container's own network namespace.
    pub network_disabled: bool,
    /// The program the command runs under (`cmd` are its arguments); empty: none.
    pub entrypoint: Vec<String>,
    /// The command's working directory; empty: `/`. Created when missing.
    pub working_dir: String,
    /// `80/tcp`, `53/udp`: the image's, `--expose` and `-p` ports; `-P` publishes them all.
    #[serde(with = "port_set")]
    pub exposed_ports: BTreeSet<String>,
    /// The signal `stop` sends first; empty: SIGTERM.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    pub labels: BTreeMap<String, String>,
    // -- run flags (restart, limits, init...) --
    /// `--stop-timeout`: seconds `stop` waits before SIGKILL when not told (-1: forever);
    /// `None`: 10.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    /// Anonymous volumes asked for (`-v /path`): `{"/path": {}}`.
    #[serde(with = "port_set")]
    pub volumes: BTreeSet<String>,
}

impl Config {
    /// The argv the container runs: entrypoint, then cmd.
    pub fn argv(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }
}

/// A set of ports as Go's `map[string]struct{}`: `{"80/tcp": {}}`.
mod port_set {
    use std::collections::{BTreeMap, BTreeSet};

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Empty {}

    pub fn serialize<S: Serializer>(set: &BTreeSet<String>, s: S) -> Result<S::Ok, S::Error> {
        let map: BTreeMap<&String, Empty> = set.iter().map(|k| (k, Empty {})).collect();
        map.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeSet<String>, D::Error> {
        let map = Option::<BTreeMap<String, serde::de::IgnoredAny>>::deserialize(d)?;
        Ok(map.into_iter().flatten().map(|(k, _)| k).collect())
    }
}

/// How the container is confined, with Docker's names (`HostConfig` of `docker inspect`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    /// `--privileged`: all capabilities and devices, no seccomp, no masked or read-only paths,
    /// /sys writable.
    pub privileged: bool,
    /// `--cap-add`, as given (`ALL`, `NET_ADMIN`, `cap_net_admin`, ...).
    pub cap_add: Vec<String>,
    /// `--cap-drop`, as given.
    pub cap_drop: Vec<String>,
    /// `--security-opt`, as Docker stores them: a profile file is kept as `seccomp=<its JSON>`
    /// (see [`crate::security`]).
    pub security_opt: Vec<String>,
    /// `-P`: every exposed port without a `-p` binding is published on a random host port.
    pub publish_all_ports: bool,
    /// `-v HOST:CTR[:MODE]` and `-v NAME:CTR[:MODE]`, as given.
    pub binds: Vec<String>,
    /// `--mount`, in the API's shape.
    pub mounts: Vec<crate::volumes::Mount>,
    /// `--tmpfs CTR[:OPTIONS]`: destination -> options.
    pub tmpfs: BTreeMap<String, String>,
    /// `--dns`: the container's nameservers instead of the host's.
    pub dns: Vec<String>,
    /// `--dns-search`: its search domains instead of the host's.
    pub dns_search: Vec<String>,
    /// `--add-host HOST:IP`, as given.
    pub extra_hosts: Vec<String>,
    // -- run flags: restart policy, resources, rootfs, init, host network --
    /// `--restart`; Docker's `{"Name": "no", "MaximumRetryCount": 0}` by default.
    pub restart_policy: RestartPolicy,
    /// `--read-only`: the rootfs is mounted read-only (/dev, /dev/shm, /proc stay as they are).
    pub readonly_rootfs: bool,
    /// `--pids-limit`: `pids.max`; `None` (or 0, -1 as given): unlimited.
    pub pids_limit: Option<i64>,
    /// `--cpus` in billionths of a CPU: `cpu.cfs_quota_us` over a 100 ms period (`cpu.max`).
    #[serde(rename = "NanoCpus")]
    pub nano_cpus: i64,
    /// `--cpu-shares`: `cpu.shares` (v2: `cpu.weight`, converted as runc does); 0: default.
    pub cpu_shares: i64,
    /// `--init`: a reaper runs as PID 1 and the command as its child.
    pub init: Option<bool>,
    /// `host` for `--network host` (the host's network namespace); empty otherwise
    /// (`Config.NetworkDisabled` marks `none`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub network_mode: String,
}

/// Docker's restart policy: `no`, `always`, `unless-stopped`, `on-failure[:N]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    pub name: String,
    pub maximum_retry_count: i64,
}

impl Default for RestartPolicy {
    fn default() -> RestartPolicy {
        RestartPolicy {
            name: "no".into(),
            maximum_retry_count: 0,
        }
    }
}

impl RestartPolicy {
    /// `--restart` as Docker's CLI parses it: `NAME[:COUNT]`, then [`Self::validate`].
    pub fn parse(text: &str) -> Result<RestartPolicy> {
        let (name, count) = match text.split_once(':') {
            Some((name, count)) => {
                let count: i64 = count.parse().map_err(|_| {
                    Error::RestartPolicy("maximum retry count must be an integer".into())
                })?;
                (name, count)
            }
            None => (text, 0),
        };
        let policy = RestartPolicy {
            name: if name.is_empty() { "no" } else { name }.to_string(),
            maximum_retry_count: count,
        };
        policy.validate()?;
        Ok(policy)
    }

    /// The daemon's check, with its words.
    pub fn validate(&self) -> Result<()> {
        match self.name.as_str() {
            "" | "no" | "always" | "unless-stopped" => {
                if self.maximum_retry_count != 0 {
                    return Err(Error::RestartPolicy(
                        "maximum retry count can only be used with 'on-failure'".into(),
                    ));
                }
            }
            "on-failure" => {
                if self.maximum_retry_count < 0 {
                    return Err(Error::RestartPolicy(
                        "maximum retry count cannot be negative".into(),
                    ));
                }
            }
            other => {
                return Err(Error::RestartPolicy(format!(
                    "unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
                )))
            }
        }
        Ok(())
    }

    pub fn is_none(&self) -> bool {
        matches!(self.name.as_str(), "" | "no")
    }

    /// Whether a run that ended with `code` starts again (moby's restart manager), given
    /// the restarts so far and whether the user stopped it.
    pub fn should_restart(&self, code: i32, restarts: i64, manually_stopped: bool) -> bool {
        if manually_stopped {
            return false;
        }
        match self.name.as_str() {
            "always" | "unless-stopped" => true,
            "on-failure" => {
                code != 0 && (self.maximum_retry_count == 0 || restarts < self.maximum_retry_count)
            }
            _ => false,
        }
    }
}

/// Docker's restart backoff: 100 ms, doubled for each restart, at most a minute; back to
/// 100 ms after a run of 10 s or more.
pub fn restart_delay(
    previous: Option<std::time::Duration>,
    ran: std::time::Duration,
) -> std::time::Duration {
    use std::time::Duration;
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(60);
    match previous {
        Some(d) if ran < Duration::from_secs(10) => (d * 2).min(MAX),
        _ => FIRST,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct State {
    pub running: bool,
    pub pid: i32,
    pub exit_code: i32,
    #[serde(deserialize_with = "graph::rfc3339::deserialize")]
    pub started_at: DateTime<Utc>,
    #[serde(
        default = "zero_time",
        deserialize_with = "graph::rfc3339::deserialize"
    )]
    pub finished_at: DateTime<Utc>,
    #[serde(rename = "OOMKilled", default)]
    pub oom_killed: bool,
    /// Why the last run's bookkeeping failed (Docker's `State.Error`), empty when it did not.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// Between two runs of a restart policy: `running` stays true (as Docker has it).
    #[serde(default)]
    pub restarting: bool,
    /// Frozen by `pause` (`running` stays true, as Docker has it).
    #[serde(default)]
    pub paused: bool,
}

impl Default for State {
    fn default() -> State {
        State {
            running: false,
            pid: 0,
            exit_code: 0,
            started_at: zero_time(),
            finished_at: zero_time(),
            oom_killed: false,
            error: String::new(),
            restarting: false,
            paused: false,
        }
    }
}

impl State {
    /// `true` until the container ran once.
    pub fn never_started(&self) -> bool {
        !self.running && is_zero_time(&self.started_at)
    }

    /// `Up 3 minutes`, `Exited (0) 2 minutes ago` or `Created` as seen at `now`, given a
    /// duration formatter.
    pub fn status_at(
        &self,
        now: DateTime<Utc>,
        human: impl Fn(chrono::Duration) -> String,
    ) -> String {
        if self.restarting {
            return format!(
                "Restarting ({}) {} ago",
                self.exit_code,
                human(now - self.finished_at)
            );
        }
        if self.running {
            let paused = if self.paused { " (Paused)" } else { "" };
            return format!("Up {}{paused}", human(now - self.started_at));
        }
        if self.never_started() {
            return "Created".into();
        }
        let finished = if is_zero_time(&self.finished_at) {
            self.started_at
        } else {
            self.finished_at
        };
        format!("Exited ({}) {} ago", self.exit_code, human(now - finished))
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkSettings {
    pub ip_address: String,
    pub ip_prefix_len: u8,
    pub gateway: String,
    /// Private port -> public port, both decimal strings; `null` when not running.
    /// TCP ports are keyed by the bare number (Docker 0.1.0), UDP ports as `53/udp`.
    pub port_mapping: Option<BTreeMap<String, String>>,
    /// The bridge the container is attached to; empty when not running or not networked.
    pub bridge: String,
    /// Docker's later view of the same mappings: `80/tcp` -> its host bindings.
    pub ports: BTreeMap<String, Vec<PortBinding>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct PortBinding {
    pub host_ip: String,
    pub host_port: String,
}

impl NetworkSettings {
    /// The settings of a connected container (what `dock inspect` and `dock port` show).
    pub fn from_endpoint(endpoint: &netmgr::Endpoint, bridge: &str) -> NetworkSettings {
        let mut port_mapping = BTreeMap::new();
        let mut ports: BTreeMap<String, Vec<PortBinding>> = BTreeMap::new();
        for m in &endpoint.ports {
            let private = match m.proto {
                netmgr::Proto::Tcp => m.container_port.to_string(),
                netmgr::Proto::Udp => format!("{}/udp", m.container_port),
            };
            port_mapping.insert(private, m.host_port.to_string());
            ports
                .entry(format!("{}/{}", m.container_port, m.proto))
                .or_default()
                .push(PortBinding {
                    host_ip: m
                        .host_ip
                        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED)
                        .to_string(),
                    host_port: m.host_port.to_string(),
                });
        }
        NetworkSettings {
            ip_address: endpoint.ip.to_string(),
            ip_prefix_len: endpoint.prefix_len,
            gateway: endpoint.gateway.to_string(),
            port_mapping: Some(port_mapping),
            bridge: bridge.to_string(),
            ports,
        }
    }

    /// `0.0.0.0:49153->80/tcp, ...` as `docker ps` shows published ports.
    pub fn ports_summary(&self) -> String {
        ports_summary(&self.ports)
    }
}

fn ports_summary(ports: &BTreeMap<String, Vec<PortBinding>>) -> String {
    let mut all = Vec::new();
    for (private, bindings) in ports {
        for b in bindings {
            all.push(format!("{}:{}->{private}", b.host_ip, b.host_port));
        }
    }
    all.join(", ")
}

/// The monitor process that owns a running container, identified by pid and start time so a
/// reused pid is never mistaken for it.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ProcessRef {
    pub pid: i32,
    pub start_time: u64,
}

/// A container's `config.json`. [`Row`] reads the same file for listings: a field both have
/// takes the same serde attributes in both.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Container {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(deserialize_with = "graph::rfc3339::deserialize")]
    pub created: DateTime<Utc>,
    pub path: String,
    pub args: Vec<String>,
    pub config: Config,
    pub state: State,
    /// The resolved image id.
    pub image: String,
    pub network_settings: NetworkSettings,
    pub name: String,
    /// Remove the container when it exits (`run --rm`).
    #[serde(default)]
    pub auto_remove: bool,
    /// The monitor of the current run, while running.
    #[serde(default)]
    pub monitor: Option<ProcessRef>,
    /// The container's first process of the current run, while running.
    #[serde(default)]
    pub init: Option<ProcessRef>,
    /// Privileges and confinement; absent in containers of older dock versions (Docker's
    /// defaults).
    #[serde(default)]
    pub host_config: HostConfig,
    // -- restart policy bookkeeping --
    /// Restarts by the restart policy since the user last started it.
    #[serde(default)]
    pub restart_count: i64,
    /// The user stopped or killed it (Docker's flag): its policy does not start it again.
    #[serde(default)]
    pub has_been_manually_stopped: bool,
    /// Its last run ended because its monitor vanished: what `dock daemon` restarts under a
    /// restart policy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub monitor_lost: bool,
    /// The volumes, binds and tmpfs mounts, made real at create (Docker's `Mounts`).
    #[serde(default)]
    pub mounts: Vec<crate::volumes::MountPoint>,
}

impl Container {
    /// `Up 3 minutes`, `Exited (0) 2 minutes ago` or `Created`, given a duration formatter.
    pub fn status(&self, human: impl Fn(chrono::Duration) -> String) -> String {
        self.status_at(Utc::now(), human)
    }

    /// [`Container::status`] as seen at `now`: a listing reads the clock once for all its rows.
    pub fn status_at(
        &self,
        now: DateTime<Utc>,
        human: impl Fn(chrono::Duration) -> String,
    ) -> String {
        self.state.status_at(now, human)
    }

    /// `path args...`, the command as one line.
    pub fn command_line(&self) -> String {
        command_line(&self.path, &self.args)
    }
}

fn command_line(path: &str, args: &[String]) -> String {
    std::iter::once(path)
        .chain(args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A container as a listing shows and filters it (`ps` and its `--filter`s): of a
/// [`Container`], its id, name, creation time, command, image (as named and resolved), labels,
/// state, published ports and monitor. Read from the same `config.json`, the rest skipped,
/// it takes half the time a whole [`Container`] does, and that was most of the time `ps -a`
/// over thousands of containers took. (A config damaged only in what a row skips lists as a
/// row; the commands that read it whole call it broken.)
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Row {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(deserialize_with = "graph::rfc3339::deserialize")]
    pub created: DateTime<Utc>,
    pub path: String,
    pub args: Vec<String>,
    pub config: RowConfig,
    pub state: State,
    /// The resolved image id.
    pub image: String,
    pub network_settings: RowNetwork,
    pub name: String,
    #[serde(default)]
    pub monitor: Option<ProcessRef>,
}

/// What a [`Row`] keeps of the [`Config`].
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct RowConfig {
    /// The image as the user named it.
    pub image: String,
    pub labels: BTreeMap<String, String>,
}

/// What a [`Row`] keeps of the [`NetworkSettings`].
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct RowNetwork {
    pub ports: BTreeMap<String, Vec<PortBinding>>,
}

impl Row {
    /// `path args...`, the command as one line.
    pub fn command_line(&self) -> String {
        command_line(&self.path, &self.args)
    }
}

impl RowNetwork {
    /// As [`NetworkSettings::ports_summary`].
    pub fn ports_summary(&self) -> String {
        ports_summary(&self.ports)
    }
}

impl From<Container> for Row {
    fn from(c: Container) -> Row {
        Row {
            id: c.id,
            created: c.created,
            path: c.path,
            args: c.args,
            config: RowConfig {
                image: c.config.image,
                labels: c.config.labels,
            },
            state: c.state,
            image: c.image,
            network_settings: RowNetwork {
                ports: c.network_settings.ports,
            },
            name: c.name,
            monitor: c.monitor,
        }
    }
}

/// What a listing ([`crate::Runtime::list_with_broken`]) can be made of: whole
/// [`Container`]s, or [`Row`]s where those are enough. What listing and filtering need of
/// either.
pub trait Listed: serde::de::DeserializeOwned + From<Container> + Send {
    fn id(&self) -> &str;
    fn name(&self) -> &str;
    fn created(&self) -> DateTime<Utc>;
    fn state(&self) -> &State;
    /// The resolved image id.
    fn image(&self) -> &str;
    fn labels(&self) -> &BTreeMap<String, String>;
    /// The monitor of the current run, while running.
    fn monitor(&self) -> Option<ProcessRef>;
}

macro_rules! listed {
    ($type:ty) => {
        impl Listed for $type {
            fn id(&self) -> &str {
                &self.id
            }
            fn name(&self) -> &str {
                &self.name
            }
            fn created(&self) -> DateTime<Utc> {
                self.created
            }
            fn state(&self) -> &State {
                &self.state
            }
            fn image(&self) -> &str {
                &self.image
            }
            fn labels(&self) -> &BTreeMap<String, String> {
                &self.config.labels
            }
            fn monitor(&self) -> Option<ProcessRef> {
                self.monitor
            }
        }
    };
}
listed!(Container);
listed!(Row);

/// Paths of one container's directory.
#[derive(Debug, Clone)]
pub struct Paths {
    pub dir: PathBuf,
}

impl Paths {
    pub fn new(containers_dir: &Path, id: &str) -> Paths {
        Paths {
            dir: containers_dir.join(id),
        }
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }
    pub fn lock(&self) -> PathBuf {
        self.dir.join("lock")
    }
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    /// The init layer: the mount points the image lacks (see [`crate::initlayer`]).
    pub fn init(&self) -> PathBuf {
        self.dir.join("init")
    }
    /// The exit record ([`crate::exitrec`]).
    pub fn exit_record(&self) -> PathBuf {
        self.dir.join("exit")
    }
    pub fn socket(&self) -> PathBuf {
        self.dir.join("attach.sock")
    }
    pub fn log(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}-json.log"))
    }
    /// Where the container's /etc/hostname, /etc/hosts and /etc/resolv.conf are kept
    /// (see [`crate::etcfiles`]): the container directory itself, as in Docker.
    pub fn etc_dir(&self) -> PathBuf {
        self.dir.clone()
    }
}

/// A container's state and settings, in its directory.
pub(crate) const CONFIG_FILE: &str = "config.json";

/// Reads `config.json`.
pub fn load(path: &Path) -> Result<Container> {
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(path, &bytes)
}

/// A `config.json` (or the part of it a `T` takes) read from `path`.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Replaces `config.json` by write-temp + rename: atomic against a crash of any process, so a
/// reader sees the old or the new state, never a torn one. No fsync: after a machine crash every
/// container that said running is a ghost and is marked exited anyway, and a lost last update
/// of a stopped container only loses what `ps` would show about it; the three fsyncs of every
/// `run` cost more than the rest of its state handling.
pub fn save(path: &Path, container: &Container) -> Result<()> {
    let tmp = path.with_extension(format!("json.tmp-{}", std::process::id()));
    let bytes = serde_json::to_vec(container).map_err(|e| Error::Corrupt {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let write = || -> std::io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(&bytes)?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// An exclusive file lock, released on drop.
pub struct Lock {
    _file: File,
}

impl Lock {
    pub fn acquire(path: &Path) -> Result<Lock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        file.lock().map_err(|e| Error::io(path, e))?;
        Ok(Lock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_uses_docker_field_names_and_round_trips() {
        let c = Container {
            id: "ab".repeat(32),
            created: Utc::now(),
            path: "echo".into(),
            args: vec!["hi".into()],
            config: Config {
                cmd: vec!["hi".into()],
                entrypoint: vec!["echo".into()],
                working_dir: "/srv".into(),
                exposed_ports: ["80/tcp".to_string()].into_iter().collect(),
                stop_signal: "SIGQUIT".into(),
                ..Config::default()
            },
            state: State::default(),
            image: "cd".repeat(32),
            network_settings: NetworkSettings::default(),
            name: "web".into(),
            auto_remove: false,
            monitor: None,
            init: None,
            host_config: HostConfig {
                privileged: false,
                cap_add: vec!["NET_ADMIN".into()],
                cap_drop: vec![],
                security_opt: vec!["no-new-privileges".into()],
                publish_all_ports: true,
                ..HostConfig::default()
            },
            restart_count: 0,
            has_been_manually_stopped: false,
            monitor_lost: false,
            mounts: vec![],
        };
        let json = serde_json::to_value(&c).unwrap();
        for key in [
            "Id",
            "Created",
            "Path",
            "Args",
            "Config",
            "State",
            "Image",
            "NetworkSettings",
            "Name",
        ] {
            assert!(json.get(key).is_some(), "missing {key} in {json}");
        }
        assert_eq!(json["State"]["OOMKilled"], false);
        assert_eq!(json["State"]["StartedAt"], "0001-01-01T00:00:00Z");
        assert_eq!(json["Config"]["OpenStdin"], false);
        assert_eq!(json["NetworkSettings"]["IpAddress"], "");
        assert_eq!(json["HostConfig"]["CapAdd"][0], "NET_ADMIN");
        assert_eq!(json["HostConfig"]["SecurityOpt"][0], "no-new-privileges");
        assert_eq!(json["HostConfig"]["Privileged"], false);
        assert_eq!(json["HostConfig"]["PublishAllPorts"], true);
        assert_eq!(json["Config"]["Entrypoint"][0], "echo");
        assert_eq!(json["Config"]["WorkingDir"], "/srv");
        assert_eq!(
            json["Config"]["ExposedPorts"],
            serde_json::json!({"80/tcp": {}})
        );
        assert_eq!(json["Config"]["StopSignal"], "SIGQUIT");
        assert_eq!(c.config.argv(), ["echo", "hi"]);
        let back: Container = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
        assert_eq!(c.status(|_| String::new()), "Created");
        assert_eq!(c.command_line(), "echo hi");
    }

    #[test]
    fn a_row_read_from_a_config_is_the_row_of_its_container() {
        let mut network_settings = NetworkSettings::default();
        network_settings.ports.insert(
            "80/tcp".into(),
            vec![PortBinding {
                host_ip: "0.0.0.0".into(),
                host_port: "49153".into(),
            }],
        );
        let c = Container {
            id: "ab".repeat(32),
            created: Utc::now(),
            path: "sh".into(),
            args: vec!["-c".into(), "sleep 9".into()],
            config: Config {
                image: "busybox".into(),
                labels: [("tier".to_string(), "web".to_string())].into(),
                env: vec!["A=1".into()],
                ..Config::default()
            },
            state: State {
                running: true,
                pid: 42,
                started_at: Utc::now(),
                ..State::default()
            },
            image: "cd".repeat(32),
            network_settings,
            name: "web".into(),
            auto_remove: true,
            monitor: Some(ProcessRef {
                pid: 41,
                start_time: 7,
            }),
            init: None,
            host_config: HostConfig::default(),
            restart_count: 2,
            has_been_manually_stopped: false,
            monitor_lost: false,
            mounts: vec![],
        };
        let json = serde_json::to_vec(&c).unwrap();
        let row: Row = serde_json::from_slice(&json).unwrap();
        assert_eq!(row, Row::from(c.clone()));
        assert_eq!(row.command_line(), "sh -c sleep 9");
        assert_eq!(
            row.network_settings.ports_summary(),
            c.network_settings.ports_summary()
        );
        assert_eq!(
            row.network_settings.ports_summary(),
            "0.0.0.0:49153->80/tcp"
        );
        let now = Utc::now();
        assert_eq!(
            row.state.status_at(now, |_| "1 second".into()),
            c.status_at(now, |_| "1 second".into())
        );
    }

    #[test]
    fn restart_policies_parse_check_and_decide_as_dockers() {
        let p = RestartPolicy::parse("on-failure:2").unwrap();
        assert_eq!((p.name.as_str(), p.maximum_retry_count), ("on-failure", 2));
        assert!(RestartPolicy::parse("").unwrap().is_none());
        assert!(RestartPolicy::parse("no").unwrap().is_none());
        for (text, message) in [
            ("bogus", "unknown policy 'bogus'"),
            ("on-failure:x", "maximum retry count must be an integer"),
            ("always:1", "can only be used with 'on-failure'"),
            ("on-failure:-1", "cannot be negative"),
        ] {
            let err = RestartPolicy::parse(text).unwrap_err().to_string();
            assert!(err.starts_with("invalid restart policy: "), "{err}");
            assert!(err.contains(message), "{text}: {err}");
        }
        // on-failure: only failures, at most N times (0: no maximum).
        assert!(p.should_restart(3, 0, false));
        assert!(p.should_restart(3, 1, false));
        assert!(!p.should_restart(3, 2, false));
        assert!(!p.should_restart(0, 0, false));
        let unbounded = RestartPolicy::parse("on-failure").unwrap();
        assert!(unbounded.should_restart(1, 1000, false));
        let always = RestartPolicy::parse("always").unwrap();
        assert!(always.should_restart(0, 1000, false));
        assert!(!always.should_restart(0, 0, true));
        assert!(!RestartPolicy::default().should_restart(1, 0, false));

        use std::time::Duration;
        let ms = Duration::from_millis;
        assert_eq!(restart_delay(None, ms(5)), ms(100));
        assert_eq!(restart_delay(Some(ms(100)), ms(5)), ms(200));
        assert_eq!(
            restart_delay(Some(ms(51_200)), ms(5)),
            Duration::from_secs(60)
        );
        assert_eq!(
            restart_delay(Some(ms(800)), Duration::from_secs(10)),
            ms(100)
        );
    }

    #[test]
    fn save_replaces_the_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let mut c: Container = serde_json::from_str(
            r#"{"Id":"x","Created":"2024-01-01T00:00:00Z","Path":"true","Args":[],"Config":{},
                "State":{"Running":false,"Pid":0,"ExitCode":3,"StartedAt":"2024-01-01T00:00:00Z"},
                "Image":"y","NetworkSettings":{},"Name":"n"}"#,
        )
        .unwrap();
        // A config.json from before HostConfig: Docker's defaults.
        assert_eq!(c.host_config, HostConfig::default());
        save(&path, &c).unwrap();
        c.state.exit_code = 4;
        save(&path, &c).unwrap();
        assert_eq!(load(&path).unwrap().state.exit_code, 4);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(c
            .status(|_| "1 second".into())
            .starts_with("Exited (4) 1 second ago"));
    }
}
