//! `push`: an image of the store to a registry, with Docker's progress lines.

use std::io::{self, IsTerminal, Write};

use clap::Subcommand;
use registry::{Client, Credentials, LayerEvent, LayerStatus, RegistryConfig};

use crate::Context;

#[derive(Subcommand)]
// Each subcommand's arguments are built only when it is the one run.
#[command(defer = true)]
pub enum PushCommand {
    /// Upload an image to a registry
    Push {
        /// Push every tag of the repository
        #[arg(short, long)]
        all_tags: bool,
        /// NAME[:TAG] (TAG defaults to latest)
        name: String,
    },
}

pub fn run(ctx: &Context, cmd: PushCommand) -> anyhow::Result<u8> {
    let PushCommand::Push { all_tags, name } = cmd;
    let config = RegistryConfig::load(&ctx.root)?;
    let target = config.reference(&name)?;
    let graph = ctx.graph()?;
    let tags = ctx.tags()?;
    let (repo, tag) = tagstore::parse_reference(&name);
    let jobs: Vec<(String, String)> = if all_tags {
        if tag.is_some() {
            anyhow::bail!("tag can't be used with --all-tags/-a");
        }
        let all = tags.repositories()?.remove(&repo).unwrap_or_default();
        if all.is_empty() {
            anyhow::bail!("an image does not exist locally with the tag: {repo}");
        }
        all.into_iter().collect()
    } else {
        let tag = tag.unwrap_or_else(|| "latest".to_string());
        let local = format!("{repo}:{tag}");
        match tags.lookup(&graph, &local) {
            Ok(image) => vec![(tag, image.id)],
            Err(tagstore::Error::NoSuchImage(_) | tagstore::Error::DanglingTag { .. }) => {
                anyhow::bail!("an image does not exist locally with the tag: {local}")
            }
            Err(e) => return Err(e.into()),
        }
    };
    let client = Client::new(config, Credentials::default_path().map(Credentials::at));
    println!("The push refers to repository [{}]", target.name());
    for (tag, id) in jobs {
        let mut reference = target.clone();
        reference.tag = Some(tag);
        let mut printer = Printer::new(io::stdout().is_terminal());
        let pushed =
            registry::push_image(&client, &graph, &id, &reference, &mut |e| printer.event(e));
        printer.finish();
        let pushed = pushed?;
        runtime::events::image(&ctx.root, &id, "push", Some(&reference.to_string()));
        println!(
            "{}: digest: {} size: {}",
            pushed.tag, pushed.digest, pushed.size
        );
    }
    Ok(0)
}

/// Docker's lines: one per layer and status; on a terminal the upload of the current layer
/// updates its line in place.
struct Printer {
    terminal: bool,
    /// a progress line is open (no newline yet)
    open: bool,
}

impl Printer {
    fn new(terminal: bool) -> Printer {
        Printer {
            terminal,
            open: false,
        }
    }

    fn event(&mut self, e: LayerEvent) {
        let mut out = io::stdout().lock();
        let text = match &e.status {
            LayerStatus::Preparing => "Preparing".to_string(),
            LayerStatus::Pushing { current, total } => {
                if self.terminal {
                    let _ = write!(
                        out,
                        "\r\x1b[K{}: Pushing {}",
                        e.id,
                        registry::store::progress_bar(*current, *total, 50)
                    );
                    let _ = out.flush();
                    self.open = true;
                }
                return;
            }
            LayerStatus::Pushed => "Pushed".to_string(),
            LayerStatus::Exists => "Layer already exists".to_string(),
            LayerStatus::Mounted { from } => format!("Mounted from {from}"),
        };
        if self.open {
            let _ = write!(out, "\r\x1b[K");
            self.open = false;
        }
        let _ = writeln!(out, "{}: {text}", e.id);
    }

    fn finish(&mut self) {
        if self.open {
            println!();
            self.open = false;
        }
    }
}
