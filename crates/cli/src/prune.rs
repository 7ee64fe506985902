//! `container prune`, `image prune`, `system prune` and `system df`, with Docker 28's
//! confirmation prompt and output. The work is `runtime::prune`'s.

use std::io::{self, BufRead, Write};

use clap::{Args, Subcommand};
use registry::store::human_size;
use runtime::prune::{DiskUsage, ImageRemoval, PruneFilters};
use runtime::Runtime;

use crate::format::{ago, short_id, Table};
use crate::{Context, Failure};

/// `dock container …`
#[derive(Subcommand)]
// Each subcommand's arguments are built only when it is the one run.
#[command(defer = true)]
pub enum ContainerGroup {
    /// Remove all stopped containers
    Prune(ContainerPruneArgs),
}

/// `dock image …`
#[derive(Subcommand)]
// Each subcommand's arguments are built only when it is the one run.
#[command(defer = true)]
pub enum ImageGroup {
    /// Remove unused images
    Prune(ImagePruneArgs),
}

#[derive(Args)]
pub struct ContainerPruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Provide filter values: until=TIME, label=KEY[=VALUE], label!=KEY[=VALUE]
    #[arg(long)]
    filter: Vec<String>,
}

#[derive(Args)]
pub struct ImagePruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Provide filter values: until=TIME, label=KEY[=VALUE], label!=KEY[=VALUE]
    #[arg(long)]
    filter: Vec<String>,
}

#[derive(Args)]
pub struct SystemPruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Prune anonymous volumes
    #[arg(long)]
    volumes: bool,
    /// Provide filter values: until=TIME, label=KEY[=VALUE], label!=KEY[=VALUE]
    #[arg(long)]
    filter: Vec<String>,
}

#[derive(Args)]
pub struct DfArgs {
    /// Show detailed information on space usage
    #[arg(short, long)]
    verbose: bool,
}

pub fn run_container(ctx: &Context, cmd: ContainerGroup) -> anyhow::Result<u8> {
    match cmd {
        ContainerGroup::Prune(args) => {
            let warning = "WARNING! This will remove all stopped containers.";
            if !args.force && !confirm(warning)? {
                return Ok(0);
            }
            let rt = crate::containers::runtime(ctx)?;
            let (space, output) = prune_containers(&rt, &filters(&args.filter)?)?;
            finish(&[output], space)
        }
    }
}

pub fn run_image(ctx: &Context, cmd: ImageGroup) -> anyhow::Result<u8> {
    match cmd {
        ImageGroup::Prune(args) => {
            let warning = if args.all {
                "WARNING! This will remove all images without at least one container associated to them."
            } else {
                "WARNING! This will remove all dangling images."
            };
            if !args.force && !confirm(warning)? {
                return Ok(0);
            }
            let rt = crate::containers::runtime(ctx)?;
            let (space, output) = prune_images(&rt, args.all, &filters(&args.filter)?)?;
            finish(&[output], space)
        }
    }
}

pub fn system_prune(ctx: &Context, args: SystemPruneArgs) -> anyhow::Result<u8> {
    if !args.force {
        let mut warning = String::from("WARNING! This will remove:\n  - all stopped containers\n");
        if args.volumes {
            warning.push_str("  - all anonymous volumes not used by at least one container\n");
        }
        warning.push_str(if args.all {
            "  - all images without at least one container associated to them\n"
        } else {
            "  - all dangling images\n"
        });
        if !confirm(&warning)? {
            return Ok(0);
        }
    }
    let filters = filters(&args.filter)?;
    let rt = crate::containers::runtime(ctx)?;
    let mut outputs = Vec::new();
    let mut total = 0;
    let (space, output) = prune_containers(&rt, &filters)?;
    total += space;
    outputs.push(output);
    if args.volumes {
        let (names, space) = rt.prune_volumes(false)?;
        total += space;
        outputs.push(listing("Deleted Volumes:", names));
    }
    let (space, output) = prune_images(&rt, args.all, &filters)?;
    total += space;
    outputs.push(output);
    finish(&outputs, total)
}

fn filters(specs: &[String]) -> anyhow::Result<PruneFilters> {
    PruneFilters::parse(specs, chrono::Utc::now()).map_err(|e| {
        Failure {
            code: 1,
            message: e.to_string(),
        }
        .into()
    })
}

/// Docker's prompt: the question on stdout, one line read from stdin; only y or Y goes on.
/// No answer (stdin closed, not a terminal) is a no, and nothing is removed.
fn confirm(warning: &str) -> anyhow::Result<bool> {
    let mut out = io::stdout().lock();
    write!(out, "{warning}\nAre you sure you want to continue? [y/N] ")?;
    out.flush()?;
    let mut answer = String::new();
    io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y"))
}

fn listing(title: &str, items: Vec<String>) -> String {
    if items.is_empty() {
        return String::new();
    }
    let mut out = format!("{title}\n");
    for item in items {
        out.push_str(&item);
        out.push('\n');
    }
    out
}

fn prune_containers(rt: &Runtime, filters: &PruneFilters) -> anyhow::Result<(u64, String)> {
    let pruned = rt.prune_containers(filters)?;
    Ok((pruned.space, listing("Deleted Containers:", pruned.deleted)))
}

fn prune_images(rt: &Runtime, all: bool, filters: &PruneFilters) -> anyhow::Result<(u64, String)> {
    let pruned = rt.prune_images(all, filters)?;
    let lines = pruned
        .removals
        .into_iter()
        .map(|r| match r {
            ImageRemoval::Untagged(name) => format!("untagged: {name}"),
            ImageRemoval::Deleted(id) => format!("deleted: {id}"),
        })
        .collect();
    Ok((pruned.space, listing("Deleted Images:", lines)))
}

/// Each part's listing followed by an empty line, then the total, as Docker prints them.
fn finish(outputs: &[String], space: u64) -> anyhow::Result<u8> {
    let mut out = io::stdout().lock();
    for output in outputs.iter().filter(|o| !o.is_empty()) {
        writeln!(out, "{output}")?;
    }
    writeln!(out, "Total reclaimed space: {}", human_size(space))?;
    Ok(0)
}

/// `SIZE (N%)` as Docker's df shows reclaimable space.
fn reclaimable(part: u64, total: u64) -> String {
    match (part * 100).checked_div(total) {
        Some(percent) => format!("{} ({percent}%)", human_size(part)),
        None => human_size(part),
    }
}

pub fn df(ctx: &Context, args: DfArgs) -> anyhow::Result<u8> {
    let usage = crate::containers::runtime(ctx)?.disk_usage()?;
    let text = if args.verbose {
        verbose(&usage)
    } else {
        summary(&usage)
    };
    io::stdout().write_all(text.as_bytes())?;
    Ok(0)
}

fn summary(u: &DiskUsage) -> String {
    let mut table = Table::new(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]);
    table.row(vec![
        "Images".into(),
        u.images.len().to_string(),
        u.images
            .iter()
            .filter(|i| i.containers > 0)
            .count()
            .to_string(),
        human_size(u.layers_size),
        reclaimable(u.images_reclaimable(), u.layers_size),
    ]);
    table.row(vec![
        "Containers".into(),
        u.containers.len().to_string(),
        u.containers
            .iter()
            .filter(|c| c.container.state.running)
            .count()
            .to_string(),
        human_size(u.containers_size()),
        reclaimable(u.containers_reclaimable(), u.containers_size()),
    ]);
    table.row(vec![
        "Local Volumes".into(),
        u.volumes.len().to_string(),
        u.volumes
            .iter()
            .filter(|v| v.ref_count > 0)
            .count()
            .to_string(),
        human_size(u.volumes_size()),
        reclaimable(u.volumes_reclaimable(), u.volumes_size()),
    ]);
    table.row(["Build Cache", "0", "0", "0B", "0B"]);
    table.render()
}

fn verbose(u: &DiskUsage) -> String {
    let mut out = String::from("Images space usage:\n\n");
    let mut images = Table::new(&[
        "REPOSITORY",
        "TAG",
        "IMAGE ID",
        "CREATED",
        "SIZE",
        "SHARED SIZE",
        "UNIQUE SIZE",
        "CONTAINERS",
    ]);
    for i in &u.images {
        let names: Vec<(String, String)> = if i.repo_tags.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            i.repo_tags
                .iter()
                .map(|t| {
                    let (r, t) = t.rsplit_once(':').unwrap_or((t, "latest"));
                    (r.to_string(), t.to_string())
                })
                .collect()
        };
        for (repo, tag) in names {
            images.row(vec![
                repo,
                tag,
                short_id(&i.id).to_string(),
                ago(i.created),
                human_size(i.size),
                human_size(i.shared_size),
                human_size(i.size - i.shared_size),
                i.containers.to_string(),
            ]);
        }
    }
    out.push_str(&images.render());
    out.push_str("\nContainers space usage:\n\n");
    let mut containers = Table::new(&[
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "LOCAL VOLUMES",
        "SIZE",
        "CREATED",
        "STATUS",
        "NAMES",
    ]);
    for c in &u.containers {
        let k = &c.container;
        let command = k.command_line();
        let command = if command.chars().count() > 20 {
            format!("\"{}…\"", command.chars().take(19).collect::<String>())
        } else {
            format!("\"{command}\"")
        };
        containers.row(vec![
            short_id(&k.id).to_string(),
            k.config.image.clone(),
            command,
            k.mounts
                .iter()
                .filter(|m| m.kind == runtime::volumes::MountType::Volume)
                .count()
                .to_string(),
            human_size(c.size_rw),
            ago(k.created),
            k.status(crate::format::human_duration),
            k.name.clone(),
        ]);
    }
    out.push_str(&containers.render());
    out.push_str("\nLocal Volumes space usage:\n\n");
    let mut volumes = Table::new(&["VOLUME NAME", "LINKS", "SIZE"]);
    for v in &u.volumes {
        volumes.row(vec![
            v.volume.name.clone(),
            v.ref_count.to_string(),
            human_size(v.size),
        ]);
    }
    out.push_str(&volumes.render());
    out.push_str("\nBuild cache usage: 0B\n");
    out
}
