//! Image commands: import, images, history, tag, rmi, and image inspect.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};

use anyhow::{bail, Context as _};
use clap::Subcommand;
use graph::{Image, NewImage};

use crate::format::{ago, short_id, Table};
use crate::Context;

#[derive(Subcommand)]
// Each subcommand's arguments are built only when it is the one run.
#[command(defer = true)]
pub enum ImageCommand {
    /// Create a new filesystem image from the contents of a tarball
    Import {
        /// A URL, a file, or - for standard input
        source: String,
        /// REPOSITORY[:TAG], or REPOSITORY followed by TAG
        repository: Option<String>,
        /// TAG, when REPOSITORY has none (0.1.0's form)
        tag: Option<String>,
    },
    /// List images
    Images {
        /// Only show image IDs
        #[arg(short, long)]
        quiet: bool,
        /// Show all images, not only tagged ones and heads
        #[arg(short, long)]
        all: bool,
        /// Don't truncate output
        #[arg(long)]
        no_trunc: bool,
        /// Show the registry digests images were pulled by
        #[arg(long)]
        digests: bool,
        /// Filter output based on conditions provided (dangling, reference, label, before,
        /// since: KEY=VALUE)
        #[arg(short = 'f', long = "filter")]
        filter: Vec<String>,
        /// Format output using a Go template ('table', 'table TEMPLATE', 'json', 'TEMPLATE')
        #[arg(long)]
        format: Option<String>,
        /// Only images of this repository (REPOSITORY[:TAG])
        name: Option<String>,
    },
    /// Show the history of an image
    History {
        /// The image: NAME[:TAG], ID or ID prefix
        image: String,
        /// Don't truncate output
        #[arg(long)]
        no_trunc: bool,
    },
    /// Tag an image into a repository
    Tag {
        /// Accepted for compatibility: an existing tag is always moved, as Docker does
        #[arg(short, long)]
        force: bool,
        /// The image to tag: NAME[:TAG], ID or ID prefix
        image: String,
        /// REPOSITORY[:TAG], or REPOSITORY followed by TAG
        repository: String,
        /// TAG, when REPOSITORY has none (0.1.0's form)
        tag: Option<String>,
    },
    /// Remove one or more images
    Rmi {
        /// Untag and remove the image even when it has other names or stopped containers
        /// use it (never one a running container uses)
        #[arg(short, long)]
        force: bool,
        /// Images: NAME[:TAG], NAME@DIGEST, ID or ID prefix
        #[arg(required = true)]
        images: Vec<String>,
    },
}

pub fn run(ctx: &Context, cmd: ImageCommand) -> anyhow::Result<u8> {
    match cmd {
        ImageCommand::Import {
            source,
            repository,
            tag,
        } => import(ctx, &source, repository.as_deref(), tag.as_deref()),
        ImageCommand::Images {
            quiet,
            all,
            no_trunc,
            digests,
            filter,
            format,
            name,
        } => images(
            ctx,
            ImagesArgs {
                quiet,
                all,
                no_trunc,
                digests,
                name: name.as_deref(),
                filter: &filter,
                format: format.as_deref(),
            },
        ),
        ImageCommand::History { image, no_trunc } => history(ctx, &image, no_trunc),
        ImageCommand::Tag {
            force: _,
            image,
            repository,
            tag,
        } => {
            let (repo, tag) = split_repo_tag(&repository, tag.as_deref());
            let tag = tag.unwrap_or_else(|| "latest".into());
            let graph = ctx.graph()?;
            // Docker moves an existing tag; -f is kept for scripts written for 0.1.0.
            let id = ctx.tags()?.set(&graph, &repo, &tag, &image, true)?;
            runtime::events::image(&ctx.root, &id, "tag", Some(&format!("{repo}:{tag}")));
            Ok(0)
        }
        ImageCommand::Rmi { force, images } => rmi(ctx, &images, force),
    }
}

/// `REPO:TAG`, or 0.1.0's `REPO TAG`.
fn split_repo_tag(repository: &str, tag: Option<&str>) -> (String, Option<String>) {
    match tag {
        Some(tag) => (repository.to_string(), Some(tag.to_string())),
        None => tagstore::parse_reference(repository),
    }
}

fn import(
    ctx: &Context,
    source: &str,
    repository: Option<&str>,
    tag: Option<&str>,
) -> anyhow::Result<u8> {
    let target = repository.map(|r| split_repo_tag(r, tag));
    // Check the name before reading anything, so a bad name costs no download.
    if let Some((repo, tag)) = &target {
        tagstore::validate_repository(repo)?;
        if let Some(tag) = tag {
            tagstore::validate_tag(tag)?;
        }
    }
    let graph = ctx.graph()?;
    let tags = ctx.tags()?;
    let (reader, total): (Box<dyn Read>, Option<u64>) = if source == "-" {
        (Box::new(io::stdin().lock()), None)
    } else if source.contains("://") {
        eprintln!("Downloading from {source}");
        download(source)?
    } else {
        // Not a URL: a file, as Docker reads it; a missing one is reported as such.
        let file = File::open(source).with_context(|| format!("open {source}"))?;
        let len = file.metadata().ok().map(|m| m.len());
        (Box::new(file), len)
    };
    let reader: Box<dyn Read> = if io::stderr().is_terminal() {
        Box::new(Progress::new(reader, total))
    } else {
        reader
    };
    let image = graph.create(
        reader,
        NewImage {
            comment: format!("Imported from {source}"),
            ..NewImage::default()
        },
    )?;
    if let Some((repo, tag)) = target {
        if let Err(err) = tags.set(&graph, &repo, tag.as_deref().unwrap_or(""), &image.id, true) {
            // Leave no untagged image behind when the name could not be recorded.
            let _ = graph.delete(&image.id);
            return Err(err.into());
        }
    }
    runtime::events::image(&ctx.root, &image.id, "import", None);
    println!("{}", image.id);
    Ok(0)
}

fn download(url: &str) -> anyhow::Result<(Box<dyn Read>, Option<u64>)> {
    let response = match ureq::get(url).call() {
        Ok(response) => response,
        Err(ureq::Error::StatusCode(code)) => {
            bail!("downloading {url}: server answered HTTP status {code}")
        }
        Err(err) => bail!("downloading {url}: {err}"),
    };
    let total = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    Ok((Box::new(response.into_body().into_reader()), total))
}

/// Counts bytes on their way through and redraws one status line on stderr.
struct Progress<R> {
    inner: R,
    done: u64,
    total: Option<u64>,
    shown: u64,
    /// A line was drawn and not ended yet.
    open: bool,
}

impl<R: Read> Progress<R> {
    fn new(inner: R, total: Option<u64>) -> Self {
        Progress {
            inner,
            done: 0,
            total,
            shown: 0,
            open: false,
        }
    }

    fn draw(&mut self, last: bool) {
        let line = match self.total {
            Some(total) if total > 0 => format!(
                "\r{} / {} ({:.0}%)",
                mib(self.done),
                mib(total),
                self.done as f64 * 100.0 / total as f64
            ),
            _ => format!("\r{}", mib(self.done)),
        };
        let mut err = io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
        self.open = !last;
        if last {
            let _ = err.write_all(b"\n");
        }
        self.shown = self.done;
    }
}

/// The reader may be dropped before its end (a tar stops at its end marker): the line is
/// ended all the same, so what is printed next starts on a line of its own.
impl<R> Drop for Progress<R> {
    fn drop(&mut self) {
        if self.open {
            let _ = io::stderr().lock().write_all(b"\n");
        }
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if n == 0 {
            if self.open || self.done > 0 {
                self.draw(true);
            }
        } else if self.done - self.shown >= 1 << 20 {
            self.draw(false);
        }
        Ok(n)
    }
}

/// The name Docker shows for an image: its first tag, else its short id.
fn display_name(tags: &tagstore::TagStore, id: &str, no_trunc: bool) -> anyhow::Result<String> {
    let names = match tags.names(id) {
        Ok(names) => names,
        // A damaged tag store: shown by id.
        Err(tagstore::Error::Damaged { .. }) => Vec::new(),
        Err(err) => return Err(err.into()),
    };
    Ok(match names.into_iter().next() {
        Some(name) => name,
        None if no_trunc => id.to_string(),
        None => short_id(id).to_string(),
    })
}

/// The digest of the repo digest recorded for `repo` (as written or as the registry names it).
fn repo_digest(
    config: Option<&registry::RegistryConfig>,
    listed: &api::shapes::ListedImage,
    repo: &str,
) -> Option<String> {
    if !listed.layerless {
        return None;
    }
    let qualified = config
        .and_then(|c| c.reference(repo).ok())
        .map(|r| r.name());
    listed
        .repo_digests
        .iter()
        .filter_map(|d| d.rsplit_once('@'))
        .find(|(r, _)| *r == repo || qualified.as_deref() == Some(*r))
        .map(|(_, d)| d.to_string())
}

/// What `images` was asked for.
pub struct ImagesArgs<'a> {
    pub quiet: bool,
    pub all: bool,
    pub no_trunc: bool,
    pub digests: bool,
    pub name: Option<&'a str>,
    pub filter: &'a [String],
    pub format: Option<&'a str>,
}

/// `docker images`' default table.
const IMAGES_TABLE: &str = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

fn images(ctx: &Context, args: ImagesArgs) -> anyhow::Result<u8> {
    let mut filter = args.filter.to_vec();
    // `images NAME[:TAG]`: Docker's reference filter.
    if let Some(name) = args.name {
        filter.push(format!("reference={name}"));
    }
    let filters = api::filters::Filters::from_args(&filter).map_err(|e| crate::Failure {
        code: 1,
        message: e.to_string(),
    })?;
    let graph = ctx.graph()?;
    let tags = ctx.tags()?;
    let (listed, broken) = api::shapes::list_images_with_broken(&graph, &tags, args.all, &filters)
        .map_err(crate::shapes::filter_failure)?;
    for broken in &broken {
        eprintln!("Warning: image {} is broken: {}", broken.id, broken.error);
    }
    let id = |id: &str| {
        if args.no_trunc {
            format!("sha256:{id}")
        } else {
            short_id(id).to_string()
        }
    };
    // One row per name (newest image first, its names sorted); an untagged image once.
    let mut rows: Vec<(&str, &str, &api::shapes::ListedImage)> = Vec::with_capacity(listed.len());
    for item in &listed {
        if item.repo_tags.is_empty() {
            // Pulled by digest: Docker shows the repository with no tag.
            let repo = item
                .repo_digests
                .first()
                .and_then(|d| d.rsplit_once('@').map(|(r, _)| r));
            rows.push((repo.unwrap_or("<none>"), "<none>", item));
        }
        for name in &item.repo_tags {
            let (repo, tag) = tagstore::split_reference(name);
            rows.push((repo, tag.unwrap_or_default(), item));
        }
    }
    // Broken images (unfiltered listings only): under their names (or none), their reason
    // where the time would be.
    let mut broken_rows: Vec<(String, String, &graph::BrokenImage)> = Vec::new();
    if filter.is_empty() && !broken.is_empty() {
        let repositories = tags.repositories().unwrap_or_default();
        for image in &broken {
            let mut named = false;
            for (repo, repo_tags) in &repositories {
                for (tag, image_id) in repo_tags {
                    if *image_id == image.id {
                        broken_rows.push((repo.clone(), tag.clone(), image));
                        named = true;
                    }
                }
            }
            if !named {
                broken_rows.push(("<none>".into(), "<none>".into(), image));
            }
        }
    }
    let mut out = String::new();
    if args.quiet {
        // An image's rows are next to each other: each id once.
        let ids = rows
            .iter()
            .map(|(_, _, item)| &item.id)
            .chain(broken_rows.iter().map(|(_, _, broken)| &broken.id));
        let mut last = None;
        for image_id in ids {
            if last != Some(image_id) {
                out.push_str(&id(image_id));
                out.push('\n');
                last = Some(image_id);
            }
        }
        io::stdout().write_all(out.as_bytes())?;
        return Ok(0);
    }
    let config = match args.digests || args.format.is_some() {
        true => registry::RegistryConfig::load(&ctx.root).ok(),
        false => None,
    };
    let digest = |item: &api::shapes::ListedImage, repo: &str| {
        repo_digest(config.as_ref(), item, repo).unwrap_or_else(|| "<none>".to_string())
    };
    if let Some(format) = args.format {
        let values: Vec<serde_json::Value> = rows
            .iter()
            .map(|(repo, tag, item)| {
                crate::shapes::image_row(item, repo, tag, &digest(item, repo), args.no_trunc)
            })
            .collect();
        let headers = crate::shapes::image_headers();
        return crate::shapes::print_rows(format, IMAGES_TABLE, &values, &headers);
    }
    let header: &[&str] = if args.digests {
        &["REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "SIZE"]
    } else {
        &["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    };
    let mut table = Table::new(header);
    let now = chrono::Utc::now();
    for (repo, tag, item) in &rows {
        table.cell(repo);
        table.cell(tag);
        if args.digests {
            table.cell(&digest(item, repo));
        }
        match args.no_trunc {
            true => table.cell(&id(&item.id)),
            false => table.cell(short_id(&item.id)),
        }
        table.cell_fmt(crate::format::Ago {
            now,
            t: item.created,
        });
        table.cell(&crate::shapes::human_size(item.size));
        table.end_row();
    }
    for (repo, tag, broken) in &broken_rows {
        let mut row = vec![repo.clone(), tag.clone()];
        if args.digests {
            row.push("<none>".to_string());
        }
        row.extend([
            id(&broken.id),
            format!("Broken: {}", broken.reason()),
            String::new(),
        ]);
        table.row(row);
    }
    table.write_to(&mut io::stdout().lock())?;
    // The process ends with this listing: its thousands of allocations go with it, which
    // costs less than freeing them one by one.
    std::mem::forget((listed, table));
    Ok(0)
}

fn history(ctx: &Context, name: &str, no_trunc: bool) -> anyhow::Result<u8> {
    let graph = ctx.graph()?;
    let tags = ctx.tags()?;
    let image = tags.lookup(&graph, name)?;
    let mut table = Table::new(&["ID", "CREATED", "CREATED BY"]);
    for row in runtime::imageconfig::history(&graph, &image.id)? {
        let id = match &row.id {
            Some(id) => display_name(&tags, id, no_trunc)?,
            None => "<missing>".to_string(),
        };
        table.row(vec![id, ago(row.created), row.created_by]);
    }
    io::stdout().write_all(table.render().as_bytes())?;
    Ok(0)
}

/// Remove every named image; report each failure and go on, as Docker does.
fn rmi(ctx: &Context, names: &[String], force: bool) -> anyhow::Result<u8> {
    let graph = ctx.graph()?;
    let tags = ctx.tags()?;
    let mut failed = false;
    for name in names {
        if let Err(err) = remove_image(ctx, &graph, &tags, name, force) {
            eprintln!("Error: {}", crate::error_chain(&err));
            failed = true;
        }
    }
    Ok(u8::from(failed))
}

fn remove_image(
    ctx: &Context,
    graph: &graph::Graph,
    tags: &tagstore::TagStore,
    name: &str,
    force: bool,
) -> anyhow::Result<()> {
    // Checked and deleted under the store lock: a concurrent create, tag or commit either
    // finished first (and is seen) or waits and then finds the image gone.
    let _store = graph.lock_store()?;
    let (repo, tag) = tagstore::parse_reference(name);
    let tag = tag.unwrap_or_else(|| "latest".to_string());
    let tagged = tags
        .repositories()?
        .get(&repo)
        .and_then(|t| t.get(&tag))
        .cloned();
    let found = match &tagged {
        Some(id) => graph.get(id),
        // Pulled by digest: found by its repo digest.
        None if name.contains('@') => Ok(crate::pull::lookup(ctx, graph, tags, name)?),
        None => graph.resolve(name),
    };
    let image = match found {
        Ok(image) => image,
        Err(err @ (graph::Error::Json { .. } | graph::Error::WrongId { .. })) => {
            let id = match tagged {
                Some(id) => id,
                None => graph.resolve_id(name)?,
            };
            return remove_broken_image(ctx, graph, tags, &id, force, err);
        }
        Err(err) => return Err(err.into()),
    };
    let children = graph.children(&image.id)?;
    let users = crate::images_in_use(ctx, &image.id)?;
    let last_name = tags.names(&image.id)?.len() <= 1;
    if force {
        if tagged.is_some() {
            // Docker: a name goes even when the image stays dangling for its containers.
            tags.untag(&repo, &tag)?;
            runtime::events::image(
                &ctx.root,
                &image.id,
                "untag",
                Some(&format!("{repo}:{tag}")),
            );
            println!("Untagged: {repo}:{tag}");
            if !tags.names(&image.id)?.is_empty() || !users.is_empty() || !children.is_empty() {
                return Ok(());
            }
            return untag_all_and_delete(ctx, graph, tags, image);
        }
        return force_remove(ctx, graph, tags, image, &children, &users);
    }
    if let (true, Some(container)) = (last_name, users.first()) {
        // Untagging would strand an image a container runs from; Docker refuses too.
        bail!(
            "conflict: unable to remove repository reference \"{name}\" - container {} is using its referenced image {}",
            short_id(container),
            short_id(&image.id)
        );
    }
    if tagged.is_some() && (!last_name || !children.is_empty() || !users.is_empty()) {
        // Other names, children or containers keep the image: only the name goes.
        tags.untag(&repo, &tag)?;
        runtime::events::image(
            &ctx.root,
            &image.id,
            "untag",
            Some(&format!("{repo}:{tag}")),
        );
        println!("Untagged: {repo}:{tag}");
        return Ok(());
    }
    refuse_children(&image.id, &children)?;
    if let Some(container) = users.first() {
        bail!(
            "conflict: unable to delete {} - image is being used by container {}",
            short_id(&image.id),
            short_id(container)
        );
    }
    untag_all_and_delete(ctx, graph, tags, image)
}

/// Refuses, as Docker does even when forced, to delete image `id` that has `children`.
fn refuse_children(id: &str, children: &[Image]) -> anyhow::Result<()> {
    if !children.is_empty() {
        let names: Vec<&str> = children.iter().map(|c| short_id(&c.id)).collect();
        bail!(
            "conflict: unable to delete {} (cannot be forced) - image has dependent child images: {}",
            short_id(id),
            names.join(", ")
        );
    }
    Ok(())
}

/// Every name of image `id` goes, each with its `Untagged:` line and untag event.
fn untag_all(ctx: &Context, tags: &tagstore::TagStore, id: &str) -> anyhow::Result<()> {
    for removed in tags.remove_image(id)? {
        runtime::events::image(&ctx.root, id, "untag", Some(&removed));
        println!("Untagged: {removed}");
    }
    Ok(())
}

/// Every name of `image` goes, then the image and the parents it leaves unused.
fn untag_all_and_delete(
    ctx: &Context,
    graph: &graph::Graph,
    tags: &tagstore::TagStore,
    image: Image,
) -> anyhow::Result<()> {
    let id = image.id.clone();
    untag_all(ctx, tags, &id)?;
    // Parents left untagged, childless and unused go too (a pulled image's own layers).
    let mut in_use = |id: &str| -> tagstore::Result<bool> {
        Ok(crate::images_in_use(ctx, id).map_or(true, |users| !users.is_empty()))
    };
    for id in tagstore::delete_with_parents(graph, tags, image, true, &mut in_use)? {
        deleted(ctx, &id);
    }
    Ok(())
}

/// Says that image `id` was deleted: its `Deleted:` line and its delete event.
fn deleted(ctx: &Context, id: &str) {
    runtime::events::image(&ctx.root, id, "delete", None);
    println!("Deleted: {id}");
}

/// `rmi -f` of an image whose json is damaged: its tags and its directory go (its parent is
/// not known, so nothing below it is pruned). Refused while a container or an image names it.
fn remove_broken_image(
    ctx: &Context,
    graph: &graph::Graph,
    tags: &tagstore::TagStore,
    id: &str,
    force: bool,
    err: graph::Error,
) -> anyhow::Result<()> {
    if !force {
        bail!(
            "image {} is broken ({err}): use rmi -f to remove it",
            short_id(id)
        );
    }
    if let Some(container) = crate::images_in_use(ctx, id)?.first() {
        bail!(
            "conflict: unable to delete {} - image is being used by container {}",
            short_id(id),
            short_id(container)
        );
    }
    let children = graph.children(id)?;
    refuse_children(id, &children)?;
    untag_all(ctx, tags, id)?;
    graph.delete(id)?;
    deleted(ctx, id);
    Ok(())
}

/// `rmi -f ID`: Docker's forced removal. Refused only for an image with children or one a
/// running container uses; every name goes; stopped containers keep the image's layers
/// (their root file system), so it stays as `<none>` until they are removed.
fn force_remove(
    ctx: &Context,
    graph: &graph::Graph,
    tags: &tagstore::TagStore,
    image: Image,
    children: &[Image],
    users: &[String],
) -> anyhow::Result<()> {
    refuse_children(&image.id, children)?;
    let rt = crate::containers::runtime(ctx)?;
    for user in users {
        if rt.get(user).is_ok_and(|c| c.state.running) {
            bail!(
                "conflict: unable to delete {} (cannot be forced) - image is being used by running container {}",
                short_id(&image.id),
                short_id(user)
            );
        }
    }
    if users.is_empty() {
        return untag_all_and_delete(ctx, graph, tags, image);
    }
    untag_all(ctx, tags, &image.id)?;
    Ok(())
}

pub fn info(ctx: &Context) -> anyhow::Result<u8> {
    let graph = ctx.graph()?;
    println!("Containers: {}", crate::container_count(ctx)?);
    println!("Images: {}", graph.all()?.len());
    println!("Storage Driver: overlay");
    println!("Dock Root Dir: {}", ctx.root.display());
    if let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        println!("Kernel Version: {}", release.trim());
    }
    println!("Version: {}", crate::VERSION);
    Ok(0)
}
