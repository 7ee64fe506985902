//! What a Docker tool reads back: documents in Docker 1.44's names and types, `--format` and
//! `--filter` through the real `docker` CLI and through `dock`, and 400s for bad requests.
//!
//! The reference documents in tests/fixtures/api-1.44/ are derived from moby's 1.44 swagger
//! (see generate.py there); `compare` holds dock's documents against them, key by key and
//! type by type, recursively.

mod common;

use std::path::Path;
use std::process::Output;

use common::daemon::{http_exchange, Daemon};
use common::{busybox_tar, stderr};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// A daemon on a private root, the docker CLI and a raw HTTP client for it

impl Daemon {
    /// `dock` on the daemon's root (they share the state directory).
    fn dock_ok(&self, args: &[&str]) -> String {
        self.root.ok(args)
    }

    fn dock(&self, args: &[&str]) -> Output {
        self.root.run(args)
    }

    /// One raw HTTP/1.1 request; the status and the body.
    fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> (u16, String) {
        http(&self.socket, method, path, content_type, body)
    }

    /// `GET path`, which must answer 200 with JSON.
    fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.request("GET", path, None, b"");
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

fn http(
    socket: &Path,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = content_type {
        head.push_str(&format!("Content-Type: {t}\r\n"));
    }
    head.push_str("\r\n");
    let (status, head, body) = http_exchange(socket, &head, body);
    let body = String::from_utf8_lossy(&body);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(&body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The key-set and type comparison

/// Keys Docker leaves out when empty (`omitempty` in moby's api/types at v25, API 1.44), by
/// path; `*` stands for any map key, `[]` for any array element.
const OPTIONAL: &[&str] = &[
    // container inspect
    "SizeRw",
    "SizeRootFs",
    "State.Health",
    "HostConfig.KernelMemoryTCP",
    "HostConfig.Annotations",
    "HostConfig.StorageOpt",
    "HostConfig.Tmpfs",
    "HostConfig.Sysctls",
    "HostConfig.Runtime",
    "HostConfig.Mounts",
    "HostConfig.Init",
    "Mounts[].Type",
    "Mounts[].Name",
    "Mounts[].Driver",
    // container.Config (containers' Config, images' Config and ContainerConfig)
    "Config.ExposedPorts",
    "Config.Healthcheck",
    "Config.ArgsEscaped",
    "Config.NetworkDisabled",
    "Config.MacAddress",
    "Config.StopSignal",
    "Config.StopTimeout",
    "Config.Shell",
    "ContainerConfig.ExposedPorts",
    "ContainerConfig.Healthcheck",
    "ContainerConfig.ArgsEscaped",
    "ContainerConfig.NetworkDisabled",
    "ContainerConfig.MacAddress",
    "ContainerConfig.StopSignal",
    "ContainerConfig.StopTimeout",
    "ContainerConfig.Shell",
    // image inspect
    "Variant",
    "OsVersion",
    "VirtualSize",
    // container summary
    "Ports[].IP",
    "Ports[].PublicPort",
];

/// Scalars that are Go pointers (`null` when unset).
const NULLABLE: &[&str] = &[
    "HostConfig.PidsLimit",
    "HostConfig.MemorySwappiness",
    "HostConfig.OomKillDisable",
    "HostConfig.Init",
    "Config.StopTimeout",
    "ContainerConfig.StopTimeout",
];

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Every way `ours` departs from `reference`: keys Docker does not have, keys Docker always
/// sends that are missing, and values of another JSON type.
fn compare(reference: &Value, ours: &Value, path: &str, problems: &mut Vec<String>) {
    if ours.is_null() {
        // Go's nil slices, maps and pointers.
        let ok = matches!(reference, Value::Array(_) | Value::Object(_) | Value::Null)
            || NULLABLE.contains(&path);
        if !ok {
            problems.push(format!(
                "{path}: null where Docker has a {}",
                type_name(reference)
            ));
        }
        return;
    }
    match reference {
        Value::Null => {}
        Value::Object(want) => {
            let Value::Object(have) = ours else {
                problems.push(format!(
                    "{path}: {} where Docker has an object",
                    type_name(ours)
                ));
                return;
            };
            if want.is_empty() {
                return; // any object
            }
            if want.len() == 1 && want.contains_key("*") {
                for (key, value) in have {
                    let _ = key;
                    compare(&want["*"], value, &join(path, "*"), problems);
                }
                return;
            }
            for key in have.keys() {
                if !want.contains_key(key) {
                    problems.push(format!("{}: not a Docker 1.44 key", join(path, key)));
                }
            }
            for (key, value) in want {
                let sub = join(path, key);
                match have.get(key) {
                    Some(v) => compare(value, v, &sub, problems),
                    None if OPTIONAL.contains(&sub.as_str()) => {}
                    None => problems.push(format!("{sub}: missing (Docker always sends it)")),
                }
            }
        }
        Value::Array(want) => {
            let Value::Array(have) = ours else {
                problems.push(format!(
                    "{path}: {} where Docker has an array",
                    type_name(ours)
                ));
                return;
            };
            if let Some(item) = want.first() {
                for v in have {
                    compare(item, v, &format!("{path}[]"), problems);
                }
            }
        }
        scalar => {
            if type_name(scalar) != type_name(ours) {
                problems.push(format!(
                    "{path}: {} where Docker has a {}",
                    type_name(ours),
                    type_name(scalar)
                ));
            }
        }
    }
}

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/api-1.44")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn assert_shape(fixture_name: &str, ours: &Value) {
    let mut problems = Vec::new();
    compare(&fixture(fixture_name), ours, "", &mut problems);
    assert!(
        problems.is_empty(),
        "{fixture_name}:\n{}\n\ndocument:\n{}",
        problems.join("\n"),
        serde_json::to_string_pretty(ours).unwrap()
    );
}

#[test]
fn the_comparison_finds_unknown_missing_and_mistyped_keys() {
    let reference = serde_json::json!({"A": "", "B": {"*": 0}, "C": [{"D": false}], "SizeRw": 0});
    let good = serde_json::json!({"A": "x", "B": {"k": 1}, "C": [{"D": true}]});
    let mut problems = Vec::new();
    compare(&reference, &good, "", &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    let bad = serde_json::json!({"a": "x", "B": {"k": "1"}, "C": [{"D": 1}]});
    compare(&reference, &bad, "", &mut problems);
    assert_eq!(
        problems,
        [
            "a: not a Docker 1.44 key",
            "A: missing (Docker always sends it)",
            "B.*: string where Docker has a number",
            "C[].D: number where Docker has a boolean",
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Acceptance 4 (shapes) and 2 (`dock inspect` is the API's document)

#[test]
fn documents_have_docker_1_44_names_and_types_and_dock_inspect_is_the_api_document() {
    let daemon = Daemon::start();
    let tar = busybox_tar().to_str().unwrap();
    daemon.dock_ok(&["import", tar, "busybox"]);
    let web = daemon
        .dock_ok(&[
            "run",
            "-d",
            "--name",
            "web",
            "-p",
            "127.0.0.1::80",
            "-l",
            "tier=front",
            "-v",
            "/data",
            "busybox",
            "sleep",
            "600",
        ])
        .trim()
        .to_string();
    daemon.dock_ok(&[
        "run",
        "--network",
        "none",
        "--name",
        "done",
        "busybox",
        "true",
    ]);

    for name in ["web", "done"] {
        let api = daemon.get_json(&format!("/containers/{name}/json"));
        assert_shape("container-inspect.json", &api);
        let cli: Value = serde_json::from_str(&daemon.dock_ok(&["inspect", name])).unwrap();
        assert_eq!(cli, Value::Array(vec![api.clone()]), "dock inspect {name}");
    }
    let web_doc = daemon.get_json("/containers/web/json");
    assert_eq!(web_doc["Id"], web.as_str());
    assert_eq!(web_doc["State"]["Status"], "running");
    assert_eq!(web_doc["Config"]["Labels"]["tier"], "front");
    assert_eq!(web_doc["HostConfig"]["RestartPolicy"]["Name"], "no");
    assert_eq!(web_doc["HostConfig"]["LogConfig"]["Type"], "json-file");
    assert!(
        web_doc["HostConfig"]["PortBindings"]["80/tcp"].is_array(),
        "{web_doc}"
    );
    assert!(
        web_doc["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
            .as_str()
            .is_some_and(|ip| !ip.is_empty())
    );
    assert_eq!(web_doc["Mounts"][0]["Destination"], "/data");

    let image = daemon.get_json("/images/busybox/json");
    assert_shape("image-inspect.json", &image);
    assert!(
        image["Config"].is_object(),
        "an imported image has a Config: {image}"
    );
    let cli: Value = serde_json::from_str(&daemon.dock_ok(&["inspect", "busybox"])).unwrap();
    let as_json = daemon.dock_ok(&["inspect", "-f", "{{json .}}", "busybox"]);
    assert_eq!(serde_json::from_str::<Value>(&as_json).unwrap(), image);
    assert_eq!(cli, Value::Array(vec![image]));

    let containers = daemon.get_json("/containers/json?all=1");
    assert_eq!(containers.as_array().unwrap().len(), 2, "{containers}");
    for c in containers.as_array().unwrap() {
        assert_shape("container-summary.json", c);
    }
    let running = &containers
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["Id"] == web.as_str())
        .unwrap();
    assert_eq!(running["Ports"][0]["IP"], "127.0.0.1", "{running}");
    let images = daemon.get_json("/images/json");
    assert_eq!(images.as_array().unwrap().len(), 1, "{images}");
    for i in images.as_array().unwrap() {
        assert_shape("image-summary.json", i);
    }

    // A name that is both a container and an image: the container, as in Docker.
    daemon.dock_ok(&["tag", "busybox", "web"]);
    let both: Value = serde_json::from_str(&daemon.dock_ok(&["inspect", "web"])).unwrap();
    assert_eq!(both[0]["Id"], web.as_str());
    let as_image: Value =
        serde_json::from_str(&daemon.dock_ok(&["inspect", "--type", "image", "web"])).unwrap();
    assert!(as_image[0]["Id"].as_str().unwrap().starts_with("sha256:"));
    let out = daemon.dock(&["inspect", "nosuch"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("No such object: nosuch"),
        "{}",
        stderr(&out)
    );
}

// ---------------------------------------------------------------------------------------------
// Acceptance 1 and 2: --format and --filter, through docker and through dock

#[test]
fn formats_and_filters_read_the_same_through_docker_and_dock() {
    let daemon = Daemon::start();
    let tar = busybox_tar().to_str().unwrap();
    daemon.dock_ok(&["import", tar, "busybox"]);
    // Untagged: a dangling image.
    let dangling = daemon.dock_ok(&["import", tar]).trim().to_string();
    daemon.dock_ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "up",
        "busybox",
        "sleep",
        "600",
    ]);
    daemon.dock_ok(&[
        "run",
        "--network",
        "none",
        "--name",
        "down",
        "busybox",
        "true",
    ]);

    // inspect -f '{{.Config.Cmd}}' of an imported image (no command): Docker's `[]`.
    let args = ["inspect", "-f", "{{.Config.Cmd}}", "busybox"];
    assert_eq!(daemon.docker_ok(&args), "[]\n");
    assert_eq!(daemon.dock_ok(&args), "[]\n");
    let args = [
        "inspect",
        "-f",
        "{{.State.Running}} {{.Name}} {{json .Config.Cmd}}",
        "up",
    ];
    assert_eq!(daemon.docker_ok(&args), "true /up [\"sleep\",\"600\"]\n");
    assert_eq!(daemon.dock_ok(&args), daemon.docker_ok(&args));

    // ps --format, --filter.
    let args = ["ps", "-a", "--format", "{{.Names}} {{.State}}"];
    let listing = daemon.docker_ok(&args);
    assert_eq!(sorted_lines(&listing), ["down exited", "up running"]);
    assert_eq!(sorted_lines(&daemon.dock_ok(&args)), sorted_lines(&listing));
    for tool in [
        daemon.docker_ok(&["ps", "--format", "{{.Names}} {{.Status}}"]),
        daemon.dock_ok(&["ps", "--format", "{{.Names}} {{.Status}}"]),
    ] {
        assert!(tool.starts_with("up Up "), "{tool}");
        assert_eq!(tool.lines().count(), 1, "{tool}");
    }
    let args = ["ps", "--filter", "status=exited", "--format", "{{.Names}}"];
    assert_eq!(daemon.docker_ok(&args), "down\n");
    assert_eq!(daemon.dock_ok(&args), "down\n");
    let args = [
        "ps",
        "-a",
        "--filter",
        "exited=0",
        "--filter",
        "ancestor=busybox",
        "-q",
    ];
    assert_eq!(daemon.dock_ok(&args), daemon.docker_ok(&args));
    let args = [
        "ps",
        "-a",
        "--filter",
        "name=up",
        "--format",
        "table {{.Names}}\t{{.State}}",
    ];
    let table = daemon.dock_ok(&args);
    assert_eq!(table, daemon.docker_ok(&args));
    assert!(table.starts_with("NAMES "), "{table}");
    let args = ["ps", "-a", "--filter", "since=down", "-q"];
    assert_eq!(daemon.dock_ok(&args), daemon.docker_ok(&args));
    // -q wins over --format, with a warning.
    let args = ["ps", "-aq", "--format", "{{.Names}}"];
    let (dock, docker) = (daemon.dock(&args), daemon.docker(&args));
    assert!(dock.status.success() && docker.status.success());
    assert_eq!(
        sorted_lines(&String::from_utf8_lossy(&dock.stdout)),
        sorted_lines(&String::from_utf8_lossy(&docker.stdout))
    );
    assert_eq!(
        sorted_lines(&String::from_utf8_lossy(&dock.stdout)).len(),
        2
    );
    let warning = "WARNING: Ignoring custom format, because both --format and --quiet are set.";
    assert_eq!(stderr(&dock).trim(), warning);
    assert!(stderr(&docker).contains(warning), "{}", stderr(&docker));

    // images --filter dangling=true, images NAME, SIZE.
    let args = ["images", "--filter", "dangling=true", "-q", "--no-trunc"];
    assert_eq!(daemon.docker_ok(&args), format!("sha256:{dangling}\n"));
    assert_eq!(daemon.dock_ok(&args), daemon.docker_ok(&args));
    let header = daemon.dock_ok(&["images"]);
    let header: Vec<&str> = header
        .lines()
        .next()
        .unwrap()
        .split("  ")
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    assert_eq!(header, ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
    for name in ["busybox", "busybox:latest"] {
        let args = [
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.Size}}",
            name,
        ];
        let rows = daemon.dock_ok(&args);
        assert_eq!(rows, daemon.docker_ok(&args));
        assert!(rows.starts_with("busybox:latest "), "{rows}");
        assert_eq!(rows.lines().count(), 1, "{rows}");
    }
    assert_eq!(daemon.dock_ok(&["images", "-q", "nosuch"]), "");

    // version and info formats.
    assert_eq!(
        daemon.dock_ok(&["version", "--format", "{{.Server.ApiVersion}}"]),
        "1.44\n"
    );
    assert_eq!(
        daemon.docker_ok(&["version", "--format", "{{.Server.Version}}"]),
        daemon.dock_ok(&["version", "--format", "{{.Server.Version}}"])
    );
    let args = [
        "info",
        "--format",
        "{{.Containers}} {{.ContainersRunning}} {{.Images}}",
    ];
    assert_eq!(daemon.dock_ok(&args), daemon.docker_ok(&args));

    // Mistakes: unknown filters and bad templates are errors naming them.
    let out = daemon.dock(&["ps", "--filter", "bogus=1"]);
    assert!(!out.status.success());
    assert_eq!(stderr(&out).trim(), "Error: invalid filter 'bogus'");
    let out = daemon.docker(&["ps", "--filter", "bogus=1"]);
    assert!(
        !out.status.success() && stderr(&out).contains("invalid filter 'bogus'"),
        "{}",
        stderr(&out)
    );
    let out = daemon.dock(&["images", "--filter", "dangling=maybe"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("dangling=maybe"), "{}", stderr(&out));
    for args in [
        &["ps", "--format", "{{.Names"][..],
        &["inspect", "-f", "{{.State.Running", "up"][..],
        &["images", "--format", "{{nosuch .ID}}"][..],
    ] {
        let out = daemon.dock(args);
        assert!(!out.status.success(), "dock {args:?}");
        assert!(
            stderr(&out).starts_with("Error: template"),
            "dock {args:?}: {}",
            stderr(&out)
        );
    }
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

// ---------------------------------------------------------------------------------------------
// Acceptance 5: bad requests are 400s with a message, and the daemon keeps serving

/// Method, path, content type, body, and what the 400's message must say.
type BadRequest<'a> = (&'a str, String, Option<&'a str>, &'a [u8], &'a str);

#[test]
fn bad_requests_get_400s_with_a_message_and_the_daemon_keeps_serving() {
    let daemon = Daemon::start();
    let tar = busybox_tar().to_str().unwrap();
    daemon.dock_ok(&["import", tar, "busybox"]);
    daemon.dock_ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "up",
        "busybox",
        "sleep",
        "600",
    ]);
    let json = Some("application/json");
    let create = br#"{"Image":"busybox","Cmd":["true"]}"#;
    let cases: Vec<BadRequest> = vec![
        (
            "POST",
            "/containers/create".into(),
            json,
            b"{bad",
            "invalid",
        ),
        (
            "POST",
            "/containers/create".into(),
            Some("text/plain"),
            create,
            "text/plain",
        ),
        (
            "POST",
            "/containers/create".into(),
            None,
            create,
            "Content-Type",
        ),
        (
            "POST",
            "/containers/up/exec".into(),
            json,
            b"{\"Cmd\":",
            "invalid",
        ),
        (
            "POST",
            "/containers/up/exec".into(),
            Some("text/plain"),
            br#"{"Cmd":["true"]}"#,
            "text/plain",
        ),
        (
            "GET",
            format!(
                "/containers/json?filters={}",
                query_escape(r#"{"bogus":["1"]}"#)
            ),
            None,
            b"",
            "invalid filter 'bogus'",
        ),
        (
            "GET",
            format!("/containers/json?filters={}", query_escape("{bad")),
            None,
            b"",
            "invalid filters",
        ),
        // Sizes dock does not compute are refused, not reported as zeros.
        (
            "GET",
            "/containers/json?size=1".into(),
            None,
            b"",
            "size=1 (ps --size) is not supported",
        ),
        (
            "GET",
            format!(
                "/containers/json?filters={}",
                query_escape(r#"{"status":["sleeping"]}"#)
            ),
            None,
            b"",
            "status=sleeping",
        ),
        (
            "GET",
            format!(
                "/images/json?filters={}",
                query_escape(r#"{"dangling":{"maybe":true}}"#)
            ),
            None,
            b"",
            "dangling=maybe",
        ),
        (
            "GET",
            format!("/images/json?filters={}", query_escape(r#"{"x":["1"]}"#)),
            None,
            b"",
            "invalid filter 'x'",
        ),
    ];
    for (method, path, content_type, body, expected) in &cases {
        let (status, answer) = daemon.request(method, path, *content_type, body);
        assert_eq!(status, 400, "{method} {path}: {answer}");
        let message: Value =
            serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{answer}: {e}"));
        let message = message["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{method} {path}: {message}");
        // Still serving, right after each.
        let (status, _) = daemon.request("GET", "/_ping", None, b"");
        assert_eq!(status, 200);
    }
    // Both filter forms work, and a normal request through the docker CLI too.
    for filters in [
        r#"{"status":["running"]}"#,
        r#"{"status":{"running":true}}"#,
    ] {
        let list = daemon.get_json(&format!(
            "/containers/json?filters={}",
            query_escape(filters)
        ));
        assert_eq!(list.as_array().unwrap().len(), 1, "{filters}: {list}");
        assert_eq!(list[0]["Names"][0], "/up");
    }
    assert_eq!(daemon.docker_ok(&["ps", "--format", "{{.Names}}"]), "up\n");
    let (status, answer) = daemon.request("POST", "/containers/create?name=ok", json, create);
    assert_eq!(status, 201, "{answer}");
}
