//! `dock volume create|ls|inspect|rm|prune`: the work is in `runtime::volumes` and the
//! runtime's volume methods; this file parses and renders.

use std::collections::BTreeMap;
use std::io::{self, BufRead, IsTerminal, Write};

use clap::Subcommand;

use crate::containers::runtime;
use crate::format::Table;
use crate::Context;

#[derive(Subcommand)]
// Each subcommand's arguments are built only when it is the one run.
#[command(defer = true)]
pub enum VolumeCommand {
    /// Create a volume (a random name when none is given); prints its name
    Create {
        /// Volume driver name (only local)
        #[arg(short = 'd', long, default_value = "local")]
        driver: String,
        /// Set metadata for a volume (KEY=VALUE)
        #[arg(short = 'l', long = "label")]
        labels: Vec<String>,
        /// Driver options (KEY=VALUE), recorded
        #[arg(short = 'o', long = "opt")]
        opts: Vec<String>,
        /// The volume name (a random one when left out)
        name: Option<String>,
    },
    /// List volumes
    #[command(visible_alias = "list")]
    Ls {
        /// Only display volume names
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Display detailed information on one or more volumes
    Inspect {
        /// Volumes to inspect
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove one or more volumes; a volume a container uses is refused
    #[command(visible_alias = "remove")]
    Rm {
        /// Do not fail on a volume that does not exist
        #[arg(short = 'f', long)]
        force: bool,
        /// Volumes to remove
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove unused anonymous volumes (all unused ones with -a)
    Prune {
        /// Remove all unused volumes, not just anonymous ones
        #[arg(short = 'a', long)]
        all: bool,
        /// Do not prompt for confirmation
        #[arg(short = 'f', long)]
        force: bool,
    },
}

fn pairs(items: &[String]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

pub fn run(ctx: &Context, cmd: VolumeCommand) -> anyhow::Result<u8> {
    let rt = runtime(ctx)?;
    match cmd {
        VolumeCommand::Create {
            driver,
            labels,
            opts,
            name,
        } => {
            let v = rt.create_volume(name.as_deref(), &driver, pairs(&labels), pairs(&opts))?;
            println!("{}", v.name);
            Ok(0)
        }
        VolumeCommand::Ls { quiet } => {
            let all = rt.volumes()?.list()?;
            if quiet {
                let mut out = io::stdout().lock();
                for v in &all {
                    writeln!(out, "{}", v.name)?;
                }
                return Ok(0);
            }
            let mut table = Table::new(&["DRIVER", "VOLUME NAME"]);
            for v in all {
                table.row(vec![v.driver, v.name]);
            }
            print!("{}", table.render());
            Ok(0)
        }
        VolumeCommand::Inspect { names } => {
            let store = rt.volumes()?;
            let mut found = Vec::new();
            let mut failed = false;
            for name in &names {
                match store.get(name) {
                    Ok(v) => found.push(v),
                    Err(e) => {
                        eprintln!("Error: {e}");
                        failed = true;
                    }
                }
            }
            let mut out = Vec::new();
            let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
            serde::Serialize::serialize(&found, &mut ser)?;
            out.push(b'\n');
            io::stdout().write_all(&out)?;
            Ok(u8::from(failed))
        }
        VolumeCommand::Rm { force, names } => {
            let mut failed = false;
            for name in &names {
                match rt.remove_volume(name, force) {
                    Ok(()) => println!("{name}"),
                    Err(e) => {
                        eprintln!("Error: {e}");
                        failed = true;
                    }
                }
            }
            Ok(u8::from(failed))
        }
        VolumeCommand::Prune { all, force } => {
            if !force && io::stdin().is_terminal() {
                let what = if all {
                    "all volumes not used by at least one container"
                } else {
                    "all anonymous local volumes not used by at least one container"
                };
                eprint!(
                    "WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] "
                );
                let mut answer = String::new();
                io::stdin().lock().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    return Ok(0);
                }
            }
            let (removed, reclaimed) = rt.prune_volumes(all)?;
            if !removed.is_empty() {
                println!("Deleted Volumes:");
                for name in &removed {
                    println!("{name}");
                }
                println!();
            }
            println!(
                "Total reclaimed space: {}",
                registry::store::human_size(reclaimed)
            );
            Ok(0)
        }
    }
}
