//! No silent acceptance: every field of a `POST /containers/create` or
//! `POST /containers/{id}/update` body is either one dock honours, or at its zero or default
//! value, or the request is refused (400) with the field's name (and the docker flag that
//! sets it). docs/api-fields.md lists them.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// `Config` fields of a create that dock honours (`HostConfig` and `NetworkingConfig` are
/// checked on their own).
pub const CONFIG_HONOURED: &[&str] = &[
    "Hostname",
    "User",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "Tty",
    "OpenStdin",
    // The container's stdin closes when the last attached client that sent it goes.
    "StdinOnce",
    "Env",
    "Cmd",
    "Entrypoint",
    "Image",
    "WorkingDir",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "StopSignal",
    "StopTimeout",
];

/// `HostConfig` fields dock honours.
pub const HOST_CONFIG_HONOURED: &[&str] = &[
    "Binds",
    "Memory",
    "MemorySwap",
    "AutoRemove",
    "PortBindings",
    "PublishAllPorts",
    "Mounts",
    "Tmpfs",
    "Dns",
    "DnsSearch",
    "ExtraHosts",
    "Privileged",
    "CapAdd",
    "CapDrop",
    "SecurityOpt",
    "ConsoleSize",
    "NetworkMode",
    "RestartPolicy",
    "ReadonlyRootfs",
    "PidsLimit",
    "NanoCpus",
    "CpuShares",
    "Init",
    // The CLI's own (it writes the file); dockerd ignores it as well.
    "ContainerIDFile",
];

/// `POST /containers/{id}/update` fields dock honours.
pub const UPDATE_HONOURED: &[&str] = &["RestartPolicy"];

/// The docker flag that sets a field, for the message.
fn flag_of(field: &str) -> Option<&'static str> {
    Some(match field {
        "Domainname" => "--domainname",
        "Healthcheck" => "--health-cmd",
        "MacAddress" => "--mac-address",
        "Shell" => "SHELL",
        "OnBuild" => "ONBUILD",
        "NetworkDisabled" => "--network none",
        "LogConfig" => "--log-driver/--log-opt",
        "VolumeDriver" => "--volume-driver",
        "VolumesFrom" => "--volumes-from",
        "CgroupnsMode" => "--cgroupns",
        "DnsOptions" => "--dns-option",
        "GroupAdd" => "--group-add",
        "IpcMode" => "--ipc",
        "Cgroup" => "--cgroup",
        "Links" => "--link",
        "OomScoreAdj" => "--oom-score-adj",
        "PidMode" => "--pid",
        "UTSMode" => "--uts",
        "UsernsMode" => "--userns",
        "ShmSize" => "--shm-size",
        "Sysctls" => "--sysctl",
        "Runtime" => "--runtime",
        "Isolation" => "--isolation",
        "CgroupParent" => "--cgroup-parent",
        "BlkioWeight" => "--blkio-weight",
        "BlkioWeightDevice" => "--blkio-weight-device",
        "BlkioDeviceReadBps" => "--device-read-bps",
        "BlkioDeviceWriteBps" => "--device-write-bps",
        "BlkioDeviceReadIOps" => "--device-read-iops",
        "BlkioDeviceWriteIOps" => "--device-write-iops",
        "CpuPeriod" => "--cpu-period",
        "CpuQuota" => "--cpu-quota",
        "CpuRealtimePeriod" => "--cpu-rt-period",
        "CpuRealtimeRuntime" => "--cpu-rt-runtime",
        "CpusetCpus" => "--cpuset-cpus",
        "CpusetMems" => "--cpuset-mems",
        "Devices" => "--device",
        "DeviceCgroupRules" => "--device-cgroup-rule",
        "DeviceRequests" => "--gpus",
        "MemoryReservation" => "--memory-reservation",
        "MemorySwappiness" => "--memory-swappiness",
        "OomKillDisable" => "--oom-kill-disable",
        "Ulimits" => "--ulimit",
        "StorageOpt" => "--storage-opt",
        "Annotations" => "--annotation",
        "KernelMemory" => "--kernel-memory",
        "Memory" => "--memory",
        "MemorySwap" => "--memory-swap",
        "NanoCpus" => "--cpus",
        "CpuShares" => "--cpu-shares",
        "PidsLimit" => "--pids-limit",
        _ => return None,
    })
}

/// null, false, 0, "", [] and {}, and objects of only those (an all-empty EndpointSettings,
/// `{"Type":"","Config":{}}`).
pub fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.values().all(is_zero),
    }
}

/// A value the docker CLI or dockerd sends as the default, which is what dock does.
fn is_default(section: &str, key: &str, value: &Value) -> bool {
    match (section, key) {
        ("HostConfig", "MemorySwappiness") => value.as_i64() == Some(-1),
        // dock writes json-file logs.
        ("HostConfig", "LogConfig") => {
            matches!(
                value.get("Type").and_then(Value::as_str),
                None | Some("" | "json-file")
            ) && value.get("Config").is_none_or(is_zero)
        }
        // Each container has its own cgroup and IPC namespace.
        ("HostConfig", "CgroupnsMode") => value.as_str() == Some("private"),
        ("HostConfig", "IpcMode") => matches!(value.as_str(), Some("private" | "shareable")),
        ("HostConfig", "Isolation") => value.as_str() == Some("default"),
        ("HostConfig", "Runtime") => value.as_str() == Some("runc"),
        // `--no-healthcheck`: no healthcheck, which is all dock runs.
        ("", "Healthcheck") => {
            value.get("Test") == Some(&serde_json::json!(["NONE"]))
                && value
                    .as_object()
                    .is_some_and(|m| m.iter().all(|(k, v)| k == "Test" || is_zero(v)))
        }
        _ => false,
    }
}

fn refused(section: &str, key: &str) -> ApiError {
    let field = if section.is_empty() {
        key.to_string()
    } else {
        format!("{section}.{key}")
    };
    let message = match flag_of(key) {
        Some(flag) => format!("{field} ({flag}) is not supported by dock"),
        None => format!("{field} is not supported by dock"),
    };
    ApiError::bad_request(message)
}

/// The fields of `object` outside `honoured` must be zero or a default.
fn check_section(object: &Value, section: &str, honoured: &[&str], skip: &[&str]) -> ApiResult<()> {
    let Some(map) = object.as_object() else {
        return Ok(());
    };
    for (key, value) in map {
        if honoured.contains(&key.as_str()) || skip.contains(&key.as_str()) {
            continue;
        }
        if !is_zero(value) && !is_default(section, key, value) {
            return Err(refused(section, key));
        }
    }
    Ok(())
}

/// The parts of a `HostConfig.Mounts` entry dock reads (`runtime::volumes::Mount`): anything
/// else set (tmpfs mount options, a volume sub-path or driver, recursive read-only binds, …)
/// would be dropped by its parser, so it is refused here.
const MOUNT_HONOURED: &[&str] = &[
    "Type",
    "Source",
    "Target",
    "ReadOnly",
    "BindOptions",
    "VolumeOptions",
    "TmpfsOptions",
];
const BIND_OPTIONS_HONOURED: &[&str] = &["Propagation"];
const VOLUME_OPTIONS_HONOURED: &[&str] = &["NoCopy", "Labels"];
const TMPFS_OPTIONS_HONOURED: &[&str] = &["SizeBytes", "Mode"];

fn check_mounts(mounts: &Value) -> ApiResult<()> {
    for (i, mount) in mounts.as_array().into_iter().flatten().enumerate() {
        let section = format!("HostConfig.Mounts[{i}]");
        check_section(mount, &section, MOUNT_HONOURED, &[])?;
        for (options, honoured) in [
            ("BindOptions", BIND_OPTIONS_HONOURED),
            ("VolumeOptions", VOLUME_OPTIONS_HONOURED),
            ("TmpfsOptions", TMPFS_OPTIONS_HONOURED),
        ] {
            if let Some(value) = mount.get(options) {
                check_section(value, &format!("{section}.{options}"), honoured, &[])?;
            }
        }
    }
    Ok(())
}

/// A create body: Config, HostConfig, NetworkingConfig.
pub fn check_create(body: &Value) -> ApiResult<()> {
    check_section(
        body,
        "",
        CONFIG_HONOURED,
        &["HostConfig", "NetworkingConfig"],
    )?;
    let host_config = body.get("HostConfig").unwrap_or(&Value::Null);
    check_section(host_config, "HostConfig", HOST_CONFIG_HONOURED, &[])?;
    check_mounts(host_config.get("Mounts").unwrap_or(&Value::Null))?;
    let mode = host_config
        .get("NetworkMode")
        .and_then(Value::as_str)
        .unwrap_or("");
    let endpoints = body
        .get("NetworkingConfig")
        .and_then(|n| n.get("EndpointsConfig"))
        .and_then(Value::as_object);
    // The CLI names the network it connects to with empty settings: that one is fine.
    for (network, settings) in endpoints.into_iter().flatten() {
        let own = network == mode
            || (matches!(mode, "" | "default" | "bridge")
                && matches!(network.as_str(), "bridge" | "default"));
        if !own || !is_zero(settings) {
            return Err(ApiError::bad_request(format!(
                "NetworkingConfig.EndpointsConfig.{network} (--network {network}, --ip, --network-alias) is not supported by dock"
            )));
        }
    }
    if let Some(networking) = body.get("NetworkingConfig") {
        check_section(networking, "NetworkingConfig", &["EndpointsConfig"], &[])?;
    }
    Ok(())
}

/// An update body (Docker's Resources and RestartPolicy).
pub fn check_update(body: &Value) -> ApiResult<()> {
    check_section(body, "", UPDATE_HONOURED, &[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What `docker run bb true` (CLI 28) sends: all of it is accepted.
    const CLI_DEFAULT: &str = r#"{"Hostname":"","Domainname":"","User":"","AttachStdin":false,
    "AttachStdout":true,"AttachStderr":true,"Tty":false,"OpenStdin":false,"StdinOnce":false,
    "Env":[],"Cmd":["true"],"Image":"bb","Volumes":{},"WorkingDir":"","Entrypoint":null,
    "OnBuild":null,"Labels":{},"HostConfig":{"Binds":null,"ContainerIDFile":"",
    "LogConfig":{"Type":"","Config":{}},"NetworkMode":"default","PortBindings":{},
    "RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":false,"VolumeDriver":"",
    "VolumesFrom":null,"ConsoleSize":[0,0],"CapAdd":null,"CapDrop":null,"CgroupnsMode":"",
    "Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IpcMode":"",
    "Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"","Privileged":false,
    "PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,"UTSMode":"",
    "UsernsMode":"","ShmSize":0,"Isolation":"","CpuShares":0,"Memory":0,"NanoCpus":0,
    "CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],
    "BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],"BlkioDeviceWriteIOps":[],"CpuPeriod":0,
    "CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"",
    "Devices":[],"DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,
    "MemorySwap":0,"MemorySwappiness":null,"OomKillDisable":null,"PidsLimit":null,"Ulimits":[],
    "CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":null,
    "ReadonlyPaths":null},"NetworkingConfig":{"EndpointsConfig":{}}}"#;

    fn with(path: &[&str], value: Value) -> Value {
        let mut body: Value = serde_json::from_str(CLI_DEFAULT).unwrap();
        let mut at = &mut body;
        for key in &path[..path.len() - 1] {
            at = &mut at[*key];
        }
        at[path[path.len() - 1]] = value;
        body
    }

    fn message(body: &Value) -> String {
        check_create(body).unwrap_err().message
    }

    #[test]
    fn the_clis_defaults_pass_and_honoured_fields_pass_when_set() {
        check_create(&serde_json::from_str(CLI_DEFAULT).unwrap()).unwrap();
        check_create(&with(&["HostConfig", "ReadonlyRootfs"], json!(true))).unwrap();
        check_create(&with(&["HostConfig", "CapDrop"], json!(["ALL"]))).unwrap();
        check_create(&with(&["HostConfig", "MemorySwappiness"], json!(-1))).unwrap();
        check_create(&with(&["HostConfig", "IpcMode"], json!("private"))).unwrap();
        check_create(&with(
            &["HostConfig", "LogConfig"],
            json!({"Type": "json-file"}),
        ))
        .unwrap();
        check_create(&with(&["StdinOnce"], json!(true))).unwrap();
        check_create(&with(&["Healthcheck"], json!({"Test": ["NONE"]}))).unwrap();
        assert!(
            message(&with(&["Healthcheck"], json!({"Test": ["CMD", "true"]})))
                .contains("Healthcheck (--health-cmd)")
        );
        let mut host = with(&["HostConfig", "NetworkMode"], json!("host"));
        host["NetworkingConfig"]["EndpointsConfig"] =
            json!({"host": {"Aliases": null, "IPAddress": ""}});
        check_create(&host).unwrap();
    }

    #[test]
    fn mount_options_dock_does_not_read_are_refused() {
        let honoured = with(
            &["HostConfig", "Mounts"],
            json!([
                {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1048576}},
                {"Type": "volume", "Source": "v", "Target": "/v",
                 "VolumeOptions": {"NoCopy": true, "DriverConfig": {"Name": ""}}},
                {"Type": "bind", "Source": "/s", "Target": "/b",
                 "BindOptions": {"Propagation": "rprivate", "NonRecursive": false}},
            ]),
        );
        check_create(&honoured).unwrap();
        let tmpfs = with(
            &["HostConfig", "Mounts"],
            json!([{"Type": "tmpfs", "Target": "/t",
                    "TmpfsOptions": {"Options": [["noexec"]]}}]),
        );
        assert_eq!(
            message(&tmpfs),
            "HostConfig.Mounts[0].TmpfsOptions.Options is not supported by dock"
        );
        let subpath = with(
            &["HostConfig", "Mounts"],
            json!([{}, {"Type": "volume", "Source": "v", "Target": "/v",
                        "VolumeOptions": {"Subpath": "x"}}]),
        );
        assert_eq!(
            message(&subpath),
            "HostConfig.Mounts[1].VolumeOptions.Subpath is not supported by dock"
        );
        let consistency = with(
            &["HostConfig", "Mounts"],
            json!([{"Type": "bind", "Source": "/s", "Target": "/b", "Consistency": "cached"}]),
        );
        assert!(message(&consistency).contains("Mounts[0].Consistency"));
    }

    #[test]
    fn set_fields_dock_lacks_are_refused_by_name_and_flag() {
        assert_eq!(
            message(&with(
                &["HostConfig", "Ulimits"],
                json!([{"Name": "nofile", "Soft": 10, "Hard": 10}])
            )),
            "HostConfig.Ulimits (--ulimit) is not supported by dock"
        );
        assert!(message(&with(&["HostConfig", "CpusetCpus"], json!("0"))).contains("--cpuset-cpus"));
        assert!(message(&with(
            &["HostConfig", "BlkioDeviceReadBps"],
            json!([{"Path": "/dev/sda", "Rate": 1}])
        ))
        .contains("--device-read-bps"));
        assert!(
            message(&with(&["HostConfig", "MemorySwappiness"], json!(10)))
                .contains("MemorySwappiness")
        );
        assert!(message(&with(
            &["HostConfig", "LogConfig"],
            json!({"Type": "syslog"})
        ))
        .contains("LogConfig"));
        assert!(message(&with(&["Domainname"], json!("example.com"))).starts_with("Domainname "));
        assert!(
            message(&with(&["Healthcheck"], json!({"Test": ["CMD", "true"]})))
                .contains("Healthcheck")
        );
        assert!(message(&with(&["HostConfig", "SomethingNew"], json!(1)))
            .contains("HostConfig.SomethingNew"));
        let net = with(
            &["NetworkingConfig", "EndpointsConfig"],
            json!({"bridge": {"Aliases": ["web"]}}),
        );
        assert!(message(&net).contains("EndpointsConfig.bridge"));
    }

    #[test]
    fn updates_honour_only_the_restart_policy() {
        check_update(&json!({"RestartPolicy": {"Name": "always"}, "Memory": 0, "CpusetCpus": ""}))
            .unwrap();
        let err = check_update(&json!({"Memory": 1 << 30})).unwrap_err();
        assert_eq!(err.message, "Memory (--memory) is not supported by dock");
    }
}
