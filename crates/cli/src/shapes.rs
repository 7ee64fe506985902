//! What `dock inspect`, `ps --format`, `images --format`, `version --format` and
//! `info --format` show: the API's own documents (`api::shapes`), and the row contexts the
//! docker CLI gives its listing templates (`.ID .Names .Status`, `.Repository .Tag .Size`).

use std::io::{self, Write};

use api::shapes::ListedImage;
use chrono::{DateTime, TimeZone, Utc};
use clap::Args;
use runtime::Container;
use serde_json::{json, Value};

use crate::format::short_id;
use crate::template::Template;
use crate::{Context, Failure};

/// `dock inspect`.
#[derive(Args)]
pub struct InspectArgs {
    /// Format the output using the given Go template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Only this kind of object: container or image
    #[arg(long = "type", value_parser = ["container", "image"])]
    pub kind: Option<String>,
    /// Containers or images (a name that is both is the container, as in Docker)
    #[arg(required = true, value_name = "NAME|ID")]
    pub names: Vec<String>,
}

/// The document of `name`: the container's, else the image's; `None` when neither exists.
pub fn document(ctx: &Context, name: &str, kind: Option<&str>) -> anyhow::Result<Option<Value>> {
    if kind != Some("image") {
        let rt = crate::containers::runtime(ctx)?;
        match rt.get(name.trim_start_matches('/')) {
            Ok(c) => return Ok(Some(api::shapes::container_inspect(&rt, &c))),
            Err(runtime::Error::NoSuchContainer(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if kind != Some("container") {
        let graph = ctx.graph()?;
        let tags = ctx.tags()?;
        // An id may come as the API shows it, `sha256:<hex>`.
        let found = crate::pull::lookup(ctx, &graph, &tags, name).or_else(|err| {
            match name.strip_prefix("sha256:") {
                Some(hex) => Ok(graph.resolve(hex)?),
                None => Err(err),
            }
        });
        if let Ok(image) = found {
            return Ok(Some(api::shapes::image_inspect(&graph, &tags, &image)?));
        }
    }
    Ok(None)
}

pub fn inspect(ctx: &Context, args: &InspectArgs) -> anyhow::Result<u8> {
    let template = args.format.as_deref().map(Template::parse).transpose()?;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in &args.names {
        match document(ctx, name, args.kind.as_deref())? {
            Some(doc) => found.push(doc),
            None => missing.push(name),
        }
    }
    let mut out = Vec::new();
    match &template {
        Some(template) => {
            for doc in &found {
                out.extend_from_slice(template.render(doc)?.as_bytes());
                out.push(b'\n');
            }
        }
        None => {
            // As the docker CLI prints it: four-space indent.
            let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
            serde::Serialize::serialize(&found, &mut ser)?;
            out.push(b'\n');
        }
    }
    io::stdout().write_all(&out)?;
    for name in &missing {
        eprintln!("Error: No such object: {name}");
    }
    Ok(u8::from(!missing.is_empty()))
}

/// Go's `time.Time.String()` of a Unix time: `2024-01-02 15:04:05 +0000 UTC`.
fn go_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string()
}

/// Docker's sizes (`units.HumanSizeWithPrecision(size, 3)`): decimal units, three digits.
pub fn human_size(size: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = size as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    let decimals = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    let mut text = format!("{value:.decimals$}");
    if text.contains('.') {
        let kept = text.trim_end_matches('0').trim_end_matches('.').len();
        text.truncate(kept);
    }
    text.push_str(UNITS[unit]);
    text
}

/// The column titles of `ps` templates (docker's).
pub fn ps_headers() -> Value {
    json!({
        "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
        "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS",
        "Size": "SIZE", "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS",
        "Networks": "NETWORKS", "LocalVolumes": "LOCAL VOLUMES", "Image ID": "IMAGE ID",
    })
}

/// `docker ps`'s default table.
pub const PS_TABLE: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

/// Docker's `stringutils.Ellipsis`: at most `max` characters, the last one `…` when cut.
pub(crate) fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// What a `ps` template sees of one container (docker's container context).
pub fn ps_row(c: &Container, summary: &Value, no_trunc: bool) -> Value {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut image = text(&summary["Image"]);
    if !no_trunc {
        if let Some(hex) = image.strip_prefix("sha256:") {
            image = short_id(hex).to_string();
        }
    }
    let command = text(&summary["Command"]);
    let command = if no_trunc {
        command
    } else {
        ellipsis(&command, 20)
    };
    let ports: Vec<String> = summary["Ports"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .map(|p| match p.get("IP").and_then(Value::as_str) {
                    Some(ip) => format!(
                        "{ip}:{}->{}/{}",
                        p["PublicPort"],
                        p["PrivatePort"],
                        text(&p["Type"])
                    ),
                    None => format!("{}/{}", p["PrivatePort"], text(&p["Type"])),
                })
                .collect()
        })
        .unwrap_or_default();
    let labels: Vec<String> = c
        .config
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mounts: Vec<String> = c
        .mounts
        .iter()
        .map(|m| {
            let v = m.inspect();
            let name = v["Name"].as_str().map(str::to_string);
            name.unwrap_or_else(|| text(&v["Source"]))
        })
        .collect();
    let networks: Vec<String> = summary["NetworkSettings"]["Networks"]
        .as_object()
        .map(|n| n.keys().cloned().collect())
        .unwrap_or_default();
    let id = if no_trunc {
        c.id.clone()
    } else {
        short_id(&c.id).to_string()
    };
    json!({
        "ID": id,
        "Image": image,
        "Command": format!("{command:?}"),
        "CreatedAt": go_time(c.created),
        "RunningFor": crate::format::ago(c.created),
        "Ports": ports.join(", "),
        "State": text(&summary["State"]),
        "Status": text(&summary["Status"]),
        "Size": "0B",
        "Names": c.name,
        "Labels": labels.join(","),
        "Mounts": mounts.join(","),
        "Networks": networks.join(","),
        "LocalVolumes": c.mounts.iter().filter(|m| m.inspect()["Type"] == "volume").count().to_string(),
    })
}

/// The column titles of `images` templates.
pub fn image_headers() -> Value {
    json!({
        "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
        "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
        "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
        "VirtualSize": "VIRTUAL SIZE",
    })
}

/// What an `images` template sees of one row (docker's image context).
pub fn image_row(
    listed: &ListedImage,
    repo: &str,
    tag: &str,
    digest: &str,
    no_trunc: bool,
) -> Value {
    let id = if no_trunc {
        format!("sha256:{}", listed.id)
    } else {
        short_id(&listed.id).to_string()
    };
    let created = Utc
        .timestamp_opt(listed.created.timestamp(), 0)
        .single()
        .unwrap_or(listed.created);
    json!({
        "ID": id,
        "Repository": repo,
        "Tag": tag,
        "Digest": digest,
        "CreatedSince": crate::format::ago(listed.created),
        "CreatedAt": go_time(created),
        "Size": human_size(listed.size),
        "Containers": "N/A",
        "SharedSize": "N/A",
        "UniqueSize": "N/A",
        "VirtualSize": human_size(listed.size),
    })
}

/// Every row through `format` (a `table` one with its titles), printed.
pub fn print_rows(
    format: &str,
    default_table: &str,
    rows: &[Value],
    headers: &Value,
) -> anyhow::Result<u8> {
    let template = Template::parse_or_default(format, default_table)?;
    let out = template.render_list(rows, headers)?;
    io::stdout().write_all(out.as_bytes())?;
    Ok(0)
}

/// `dock version [--format]`: without a format, dock's two lines.
pub fn version(format: Option<&str>) -> anyhow::Result<u8> {
    let Some(format) = format else {
        println!("Version: {}", crate::VERSION);
        println!("OS/Arch: linux/{}", std::env::consts::ARCH);
        return Ok(0);
    };
    let client = json!({
        "Platform": { "Name": "dock" },
        "Version": crate::VERSION,
        "ApiVersion": "1.44",
        "DefaultAPIVersion": "1.44",
        "GitCommit": "",
        "GoVersion": "rust",
        "Os": "linux",
        "Arch": api::shapes::go_arch(),
        "BuildTime": "",
        "Context": "default",
    });
    let doc = json!({ "Client": client, "Server": api::shapes::version_doc() });
    let template = Template::parse(format)?;
    println!("{}", template.render(&doc)?);
    Ok(0)
}

/// `dock info --format`: the API's `/info` document through the template.
pub fn info(ctx: &Context, format: &str) -> anyhow::Result<u8> {
    let template = Template::parse(format)?;
    let graph = ctx.graph()?;
    let containers = crate::containers::runtime(ctx)?.list()?;
    let running = containers.iter().filter(|c| c.state.running).count();
    let paused = containers
        .iter()
        .filter(|c| c.state.running && c.state.paused)
        .count();
    let doc = api::shapes::info_doc(
        &ctx.root,
        graph.all()?.len(),
        containers.len(),
        running,
        paused,
    );
    println!("{}", template.render(&doc)?);
    Ok(0)
}

/// A filter error as the CLI reports it (exit 1, `Error: invalid filter 'x'`).
pub fn filter_failure(err: api::shapes::ShapeError) -> anyhow::Error {
    match err {
        api::shapes::ShapeError::Filter(e) => Failure {
            code: 1,
            message: e.to_string(),
        }
        .into(),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_dockers() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_234_567), "1.23MB");
        assert_eq!(human_size(4_500_000), "4.5MB");
        assert_eq!(human_size(12_340_000), "12.3MB");
        assert_eq!(human_size(1_000_000_000), "1GB");
    }

    #[test]
    fn go_time_strings() {
        let t = Utc.timestamp_opt(0, 0).single().unwrap();
        assert_eq!(go_time(t), "1970-01-01 00:00:00 +0000 UTC");
    }
}
