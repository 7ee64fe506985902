//! `dock system check [--repair]`: one line per problem ([`runtime::check`]); exit 1 when the
//! store has any (after `--repair`: any that is left), 0 and nothing when it is clean.

use std::io::Write;

use clap::Args;

use crate::Context;

#[derive(Args)]
pub struct CheckArgs {
    /// Remove what cannot be used (keeps every valid image and container)
    #[arg(long)]
    repair: bool,
}

pub fn run(ctx: &Context, args: CheckArgs) -> anyhow::Result<u8> {
    let findings = runtime::check::check_store(&ctx.root, args.repair)?;
    let mut out = std::io::stdout().lock();
    let mut left = false;
    for finding in &findings {
        match &finding.repair {
            None => {
                left = true;
                writeln!(out, "{}", finding.problem)?;
            }
            Some(runtime::check::Repair::Fixed(what)) => {
                writeln!(out, "{}: repaired: {what}", finding.problem)?;
            }
            Some(runtime::check::Repair::Kept(why)) => {
                left = true;
                writeln!(out, "{}: {why}", finding.problem)?;
            }
        }
    }
    Ok(u8::from(left))
}
