//! `dock system …`: commands about the store as a whole.

use clap::Subcommand;

use crate::Context;

#[derive(Subcommand)]
pub enum SystemCommand {
    /// Check the store: images, layers, tags, containers and leftovers
    Check(crate::check::CheckArgs),
}

pub fn run(ctx: &Context, cmd: SystemCommand) -> anyhow::Result<u8> {
    match cmd {
        SystemCommand::Check(args) => crate::check::run(ctx, args),
    }
}
