//! `/_ping`, `/version`, `/info`.

use std::path::Path;
use std::sync::Arc;

use hyper::header::{HeaderValue, CACHE_CONTROL, PRAGMA};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::body::{self, Response};
use crate::error::ApiResult;
use crate::state::{blocking, State};
use crate::{API_VERSION, MIN_API_VERSION, VERSION};

/// The CLI reads the negotiation headers (added to every answer by the router) from this.
pub fn ping(method: &Method) -> Response {
    let content = if method == Method::HEAD {
        body::empty()
    } else {
        body::full("OK")
    };
    let mut response = body::with_type(StatusCode::OK, "text/plain; charset=utf-8", content);
    let headers = response.headers_mut();
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert("builder-version", HeaderValue::from_static("1"));
    headers.insert("swarm", HeaderValue::from_static("inactive"));
    response
}

pub fn version() -> Response {
    body::json(StatusCode::OK, &version_doc())
}

/// `GET /version`'s document (also what `dock version --format` sees as `.Server`).
pub fn version_doc() -> Value {
    let kernel = kernel_version();
    let details = json!({
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "Os": "linux",
        "Arch": go_arch(),
        "KernelVersion": kernel,
        "GitCommit": "",
        "GoVersion": "rust",
        "Experimental": "false",
    });
    json!({
        "Platform": { "Name": "dock" },
        "Components": [{ "Name": "Engine", "Version": VERSION, "Details": details }],
        "Version": VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "Os": "linux",
        "Arch": go_arch(),
        "KernelVersion": kernel,
        "GitCommit": "",
        "GoVersion": "rust",
        "Experimental": false,
    })
}

pub async fn info(state: Arc<State>) -> ApiResult<Response> {
    let root = state.root.clone();
    let (images, containers) = blocking(move || {
        let images = state
            .graph
            .all()
            .map_err(|err| crate::images::store_error(&err))?
            .len();
        Ok((images, crate::containers::counts(&state)?))
    })
    .await?;
    Ok(body::json(
        StatusCode::OK,
        &info_doc(
            &root,
            images,
            containers.total,
            containers.running,
            containers.paused,
        ),
    ))
}

/// `GET /info`'s document (also what `dock info --format` sees).
/// `running` counts the paused ones too; Docker's `ContainersRunning` does not.
pub fn info_doc(
    root: &Path,
    images: usize,
    containers: usize,
    running: usize,
    paused: usize,
) -> Value {
    json!({
        "ID": "",
        "Containers": containers,
        "ContainersRunning": running - paused,
        "ContainersPaused": paused,
        "ContainersStopped": containers - running,
        "Images": images,
        "Driver": "overlay",
        "DriverStatus": [],
        "ServerVersion": VERSION,
        "KernelVersion": kernel_version(),
        "OperatingSystem": operating_system(),
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "NCPU": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "MemTotal": mem_total(),
        "Name": read_trimmed("/proc/sys/kernel/hostname"),
        "DockerRootDir": root,
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "Swarm": { "LocalNodeState": "inactive" },
        "Warnings": null,
    })
}

/// Go's name for this architecture, which `docker version` shows.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn kernel_version() -> String {
    read_trimmed("/proc/sys/kernel/osrelease")
}

fn operating_system() -> String {
    let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    release
        .lines()
        .find_map(|line| line.strip_prefix("PRETTY_NAME="))
        .map(|name| name.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".to_string())
}

/// Bytes of memory, from /proc/meminfo's kB figure.
fn mem_total() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}
