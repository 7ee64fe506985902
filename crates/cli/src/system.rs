//! `dock system …`: commands about the store as a whole; each one's body lives in a module
//! of its own (check: check.rs; df, prune: prune.rs).

use clap::Subcommand;

use crate::prune::{self, DfArgs, SystemPruneArgs};
use crate::Context;

#[derive(Subcommand)]
// Each subcommand's arguments are built only when it is the one run.
#[command(defer = true)]
pub enum SystemCommand {
    /// Check the store: images, layers, tags, containers and leftovers
    Check(crate::check::CheckArgs),
    /// Show dock disk usage: images, containers, local volumes
    Df(DfArgs),
    /// Remove unused data: stopped containers, dangling (with -a: unused) images, and with
    /// --volumes anonymous volumes no container uses
    Prune(SystemPruneArgs),
}

pub fn run(ctx: &Context, cmd: SystemCommand) -> anyhow::Result<u8> {
    match cmd {
        SystemCommand::Check(args) => crate::check::run(ctx, args),
        SystemCommand::Df(args) => prune::df(ctx, args),
        SystemCommand::Prune(args) => prune::system_prune(ctx, args),
    }
}
