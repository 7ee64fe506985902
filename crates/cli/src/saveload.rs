//! `save` and `load`: images as tar files (registry::archive_file), with Docker's messages.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::path::PathBuf;

use clap::Subcommand;
use registry::archive_file::{self, LoadEvent, SaveEvent};
use registry::store::progress_bar;
use registry::RegistryConfig;

use crate::Context;

#[derive(Subcommand)]
// Each subcommand's arguments are built only when it is the one run.
#[command(defer = true)]
pub enum SaveLoadCommand {
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save {
        /// Write to a file, instead of STDOUT
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// NAME[:TAG], REPO (every tag), or an image ID
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Load an image from a tar archive or STDIN
    Load {
        /// Read from tar archive file, instead of STDIN
        #[arg(short, long)]
        input: Option<PathBuf>,
        /// Suppress the load output
        #[arg(short, long)]
        quiet: bool,
    },
}

pub fn run(ctx: &Context, cmd: SaveLoadCommand) -> anyhow::Result<u8> {
    match cmd {
        SaveLoadCommand::Save { output, images } => save(ctx, output, &images),
        SaveLoadCommand::Load { input, quiet } => load(ctx, input, quiet),
    }
}

fn save(ctx: &Context, output: Option<PathBuf>, names: &[String]) -> anyhow::Result<u8> {
    if output.is_none() && io::stdout().is_terminal() {
        anyhow::bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let graph = ctx.graph()?;
    let tags = ctx.tags()?;
    let config = RegistryConfig::load(&ctx.root)?;
    let images = archive_file::resolve_names(&config, &graph, &tags, names)?;
    let mut line = ProgressLine::new(io::stderr().is_terminal(), Stream::Stderr);
    let mut progress = |e: SaveEvent| line.show(&e.layer, "Saving", e.current, e.total);
    let saved = match output {
        None => {
            let out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
            archive_file::save(&graph, &images, out, &mut progress)
        }
        Some(path) => {
            let file = File::create(&path)
                .map_err(|e| anyhow::anyhow!("create {}: {e}", path.display()))?;
            let out = BufWriter::with_capacity(1 << 20, file);
            let saved = archive_file::save(&graph, &images, out, &mut progress);
            if saved.is_err() {
                let _ = std::fs::remove_file(&path);
            }
            saved
        }
    };
    line.finish();
    saved?;
    for image in &images {
        runtime::events::image(
            &ctx.root,
            &image.id,
            "save",
            image.repo_tags.first().map(String::as_str),
        );
    }
    Ok(0)
}

fn load(ctx: &Context, input: Option<PathBuf>, quiet: bool) -> anyhow::Result<u8> {
    let reader: Box<dyn Read> = match &input {
        Some(path) => {
            Box::new(File::open(path).map_err(|e| anyhow::anyhow!("open {}: {e}", path.display()))?)
        }
        None => {
            if io::stdin().is_terminal() {
                anyhow::bail!("requested load from stdin, but stdin is empty");
            }
            Box::new(io::stdin().lock())
        }
    };
    let graph = ctx.graph()?;
    let tags = ctx.tags()?;
    let mut line = ProgressLine::new(!quiet && io::stdout().is_terminal(), Stream::Stdout);
    let loaded = archive_file::load(&graph, &tags, reader, &mut |e| match e {
        LoadEvent::Loading {
            layer,
            current,
            total,
        } => line.show(&layer, "Loading layer", current, total),
    });
    line.finish();
    let loaded = loaded?;
    for image in &loaded {
        runtime::events::image(
            &ctx.root,
            &image.id,
            "load",
            image.names.first().map(String::as_str),
        );
    }
    for message in archive_file::messages(&loaded) {
        println!("{message}");
    }
    Ok(0)
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// One layer's progress, redrawn in place on a terminal; nothing otherwise.
struct ProgressLine {
    terminal: bool,
    stream: Stream,
    open: bool,
}

impl ProgressLine {
    fn new(terminal: bool, stream: Stream) -> ProgressLine {
        ProgressLine {
            terminal,
            stream,
            open: false,
        }
    }

    fn out(&self) -> Box<dyn Write> {
        match self.stream {
            Stream::Stdout => Box::new(io::stdout().lock()),
            Stream::Stderr => Box::new(io::stderr().lock()),
        }
    }

    fn show(&mut self, layer: &str, status: &str, current: u64, total: u64) {
        if !self.terminal {
            return;
        }
        let mut out = self.out();
        let _ = write!(
            out,
            "\r\x1b[K{layer}: {status} {}",
            progress_bar(current, total, 50)
        );
        if current >= total {
            let _ = writeln!(out);
            self.open = false;
        } else {
            self.open = true;
        }
        let _ = out.flush();
    }

    fn finish(&mut self) {
        if self.open {
            let _ = writeln!(self.out());
            self.open = false;
        }
    }
}
