//! `dock pull`: the registry crate's store does the work; this renders its progress, as
//! Docker's CLI does: one line per layer redrawn in place on a terminal, plain lines (one per
//! change of status) otherwise.

use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};

use clap::Subcommand;
use registry::store::{self, Event, PullOptions, Pulled};
use registry::{Client, Credentials, Platform, RegistryConfig};

use crate::Context;

#[derive(Subcommand)]
// Each subcommand's arguments are built only when it is the one run.
#[command(defer = true)]
pub enum PullCommand {
    /// Download an image from a registry
    Pull {
        /// NAME[:TAG|@DIGEST]; a name without a registry host uses "default-registry" from
        /// ROOT/config.json
        name: String,
        /// Pull this platform (os/arch[/variant]) from a multi-platform image
        #[arg(long)]
        platform: Option<String>,
        /// Download all tagged images in the repository
        #[arg(short = 'a', long = "all-tags")]
        all_tags: bool,
        /// Suppress verbose output
        #[arg(short = 'q', long)]
        quiet: bool,
    },
}

pub fn run(ctx: &Context, cmd: PullCommand) -> anyhow::Result<u8> {
    let PullCommand::Pull {
        name,
        platform,
        all_tags,
        quiet,
    } = cmd;
    let platform = platform.map(|p| p.parse::<Platform>()).transpose()?;
    let opts = PullOptions { platform, all_tags };
    let out = if quiet { Out::Quiet } else { Out::Stdout };
    let pulled = pull(ctx, &name, &opts, out)?;
    for image in pulled {
        println!("{}", image.name);
    }
    Ok(0)
}

/// The registry settings of the root and the Docker client's credentials.
pub fn client(ctx: &Context) -> anyhow::Result<Client> {
    let config = RegistryConfig::load(&ctx.root)?;
    Ok(Client::new(
        config,
        Credentials::default_path().map(Credentials::at),
    ))
}

/// Where progress goes: `pull` writes it on stdout, `run` and `create` on stderr (their
/// stdout is the container's), as Docker's CLI does.
#[derive(Clone, Copy, PartialEq)]
pub enum Out {
    Stdout,
    Stderr,
    Quiet,
}

impl Out {
    fn writer(self) -> Box<dyn Write> {
        match self {
            Out::Stderr => Box::new(io::stderr().lock()),
            _ => Box::new(io::stdout().lock()),
        }
    }
}

/// The image `name` names in this root: `REPO@DIGEST` by the repo digests pulls recorded,
/// anything else as the tag store resolves it.
pub fn lookup(
    ctx: &Context,
    graph: &graph::Graph,
    tags: &tagstore::TagStore,
    name: &str,
) -> anyhow::Result<graph::Image> {
    let config = RegistryConfig::load(&ctx.root).unwrap_or_default();
    Ok(store::lookup(&config, graph, tags, name)?)
}

/// `run`/`create --pull POLICY`: pulls `name` when it is missing (`missing`) or every time
/// (`always`), printing Docker's "Unable to find image" first; `never` pulls nothing. Returns
/// the name to create from: the image id for a `REPO@DIGEST` name (the tag store does not
/// know digests), else `name`. A name no registry can serve (no default registry) is left to
/// the runtime's "no such image". Failures are exit status 125, as Docker's.
pub fn ensure_image(ctx: &Context, name: &str, policy: &str) -> anyhow::Result<String> {
    let fail = |e: anyhow::Error| crate::Failure {
        code: 125,
        message: crate::error_chain(&e),
    };
    let local = {
        let graph = ctx.graph().map_err(fail)?;
        let tags = ctx.tags().map_err(fail)?;
        lookup(ctx, &graph, &tags, name).ok()
    };
    let pull_it = match (policy, &local) {
        ("never", _) => false,
        ("always", _) => true,
        (_, found) => found.is_none(),
    };
    let servable = RegistryConfig::load(&ctx.root)
        .ok()
        .is_some_and(|c| c.reference(name).is_ok());
    let image = if pull_it && servable {
        if local.is_none() {
            eprintln!("Unable to find image '{}' locally", with_tag(name));
        }
        let pulled = pull(ctx, name, &PullOptions::default(), Out::Stderr).map_err(fail)?;
        pulled.into_iter().next().map(|p| p.id)
    } else {
        local.map(|i| i.id)
    };
    Ok(match image {
        Some(id) if name.contains('@') => id,
        _ => name.to_string(),
    })
}

/// `name` with `:latest` when it has neither tag nor digest, as Docker's messages show it.
fn with_tag(name: &str) -> String {
    match tagstore::parse_reference(name) {
        (_, Some(_)) => name.to_string(),
        _ if name.contains('@') => name.to_string(),
        (repo, None) => format!("{repo}:latest"),
    }
}

/// Pulls `name` into the root's store with progress on `out`.
pub fn pull(
    ctx: &Context,
    name: &str,
    opts: &PullOptions,
    out: Out,
) -> anyhow::Result<Vec<Pulled>> {
    let client = client(ctx)?;
    // The name is checked (and the default registry applied) before the store is touched.
    client.config().reference(name)?;
    let graph = ctx.graph()?;
    let tags = ctx.tags()?;
    let is_terminal = match out {
        Out::Stdout => io::stdout().is_terminal(),
        Out::Stderr => io::stderr().is_terminal(),
        Out::Quiet => false,
    };
    let mut render: Box<dyn Render> = if out == Out::Quiet {
        Box::new(Quiet)
    } else if is_terminal {
        Box::new(Terminal::new(terminal_width().unwrap_or(80), out))
    } else {
        Box::new(Plain {
            last: HashMap::new(),
            out,
        })
    };
    let result = store::pull(&client, &graph, &tags, name, opts, &mut |event| {
        render.event(&event)
    });
    render.end();
    for p in result.iter().flatten() {
        runtime::events::image(&ctx.root, &p.id, "pull", Some(&p.name));
    }
    Ok(result?)
}

trait Render {
    fn event(&mut self, event: &Event);
    fn end(&mut self) {}
}

struct Quiet;

impl Render for Quiet {
    fn event(&mut self, _: &Event) {}
}

/// One line per status change; progress updates within a status are not repeated.
struct Plain {
    last: HashMap<String, String>,
    out: Out,
}

impl Render for Plain {
    fn event(&mut self, event: &Event) {
        let status = event.status();
        let line = match event.id() {
            Some(id) => {
                if self.last.get(id) == Some(&status) {
                    return;
                }
                self.last.insert(id.to_string(), status.clone());
                format!("{id}: {status}")
            }
            None => status,
        };
        let _ = writeln!(self.out.writer(), "{line}");
    }
}

/// Docker's terminal display: each id keeps its line, redrawn in place with ANSI cursor moves.
struct Terminal {
    width: usize,
    ids: Vec<String>,
    out: Out,
}

impl Terminal {
    fn new(width: usize, out: Out) -> Terminal {
        Terminal {
            width: width.max(20),
            ids: Vec::new(),
            out,
        }
    }

    fn line(&self, event: &Event) -> String {
        let head = match event.id() {
            Some(id) => format!("{id}: {}", event.status()),
            None => event.status(),
        };
        let line = match event.progress() {
            Some((current, total)) => {
                // The numbers take up to ~20 columns; the bar gets what is left, at most 50.
                let room = self.width.saturating_sub(head.chars().count() + 25);
                let bar = if room >= 10 {
                    store::progress_bar(current, total, room.min(50))
                } else {
                    format!(
                        "{}/{}",
                        store::human_size(current),
                        store::human_size(total)
                    )
                };
                format!("{head} {bar}")
            }
            None => head,
        };
        // A wrapped line would break the cursor arithmetic.
        line.chars().take(self.width - 1).collect()
    }
}

impl Render for Terminal {
    fn event(&mut self, event: &Event) {
        let line = self.line(event);
        let mut out = self.out.writer();
        match event.id() {
            None => {
                self.ids.clear();
                let _ = writeln!(out, "{line}");
            }
            Some(id) => match self.ids.iter().position(|i| i == id) {
                Some(pos) => {
                    let up = self.ids.len() - pos;
                    let _ = write!(out, "\x1b[{up}A\r\x1b[2K{line}\x1b[{up}B\r");
                }
                None => {
                    self.ids.push(id.to_string());
                    let _ = writeln!(out, "{line}");
                }
            },
        }
        let _ = out.flush();
    }
}

fn terminal_width() -> Option<usize> {
    // SAFETY: a zeroed winsize is a valid value; TIOCGWINSZ fills it.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer is to `ws`, which outlives the call.
    let ok = [1, 2]
        .iter()
        .any(|&fd| unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0);
    (ok && ws.ws_col > 0).then_some(usize::from(ws.ws_col))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_lines_fit_the_width() {
        let t = Terminal::new(60, Out::Stdout);
        let line = t.line(&Event::Downloading {
            layer: "0123456789ab".into(),
            current: 5_000_000,
            total: 10_000_000,
        });
        assert!(line.chars().count() < 60, "{line}");
        assert!(line.starts_with("0123456789ab: Downloading ["), "{line}");
        assert!(line.ends_with("5MB/10MB"), "{line}");
    }
}
