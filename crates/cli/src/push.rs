//! `push`: an image of the store to a registry, with Docker's progress lines.

use std::io::{self, IsTerminal, Write};

use clap::Subcommand;
use registry::{Client, Credentials, LayerEvent, LayerStatus, RegistryConfig};

use crate::Context;

#[derive(Subcommand)]
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
                        "\r\x1b[K{}: Pushing {}{}/{}",
                        e.id,
                        bar(*current, *total),
                        human(*current),
                        human(*total)
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

fn bar(current: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    let filled = (current.min(total) * WIDTH)
        .checked_div(total)
        .unwrap_or(WIDTH);
    let mut s = String::from("[");
    for i in 0..WIDTH {
        s.push(match i.cmp(&filled) {
            std::cmp::Ordering::Less => '=',
            std::cmp::Ordering::Equal => '>',
            std::cmp::Ordering::Greater => ' ',
        });
    }
    s.push_str("] ");
    s
}

/// Docker's decimal sizes: 1.2MB, 512kB, 10B.
fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < units.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        return format!("{n}B");
    }
    let digits = format!("{v:.2}");
    format!(
        "{}{}",
        digits.trim_end_matches('0').trim_end_matches('.'),
        units[unit]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_bars() {
        assert_eq!(human(10), "10B");
        assert_eq!(human(1_500_000), "1.5MB");
        assert_eq!(human(512_000), "512kB");
        assert_eq!(bar(0, 0).len(), 53);
        assert!(bar(25, 50).starts_with("[=========================>"));
    }
}
