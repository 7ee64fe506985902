//! `dock events`: what happened to containers and images, from the root's event log (so
//! what other `dock` commands, monitors and `dock daemon` did, as it happens).

use std::io::Write;

use clap::Args;
use runtime::events::{self, Filters};

use crate::{Context, Failure};

#[derive(Args)]
pub struct EventsArgs {
    /// Show events created since this time (Unix timestamp, RFC 3339 date, or duration like 10m)
    #[arg(long)]
    since: Option<String>,
    /// Stream events until this time (same forms as --since)
    #[arg(long)]
    until: Option<String>,
    /// Keep only matching events: type=container|image, event=ACTION, container=NAME|ID, image=NAME|ID, label=KEY[=VALUE]
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Format: "json" (or "{{json .}}") prints each event as Docker's JSON message
    #[arg(long)]
    format: Option<String>,
}

pub fn run(ctx: &Context, args: EventsArgs) -> anyhow::Result<u8> {
    let invalid = |message: String| Failure { code: 1, message };
    let now = chrono::Utc::now();
    let time = |t: &Option<String>| -> anyhow::Result<Option<i64>> {
        t.as_deref()
            .map(|t| events::parse_time(t, now).map_err(|e| invalid(e.to_string()).into()))
            .transpose()
    };
    let (since, until) = (time(&args.since)?, time(&args.until)?);
    let filters = Filters::parse(&args.filter).map_err(|e| invalid(e.to_string()))?;
    let json = match args.format.as_deref().map(str::trim) {
        None | Some("") => false,
        Some("json" | "{{json .}}") => true,
        Some(other) => {
            return Err(invalid(format!(
                "unsupported --format {other:?}: dock's events take json or {{{{json .}}}}"
            ))
            .into())
        }
    };
    runtime::secure_root(&ctx.root)?;
    let mut out = std::io::stdout().lock();
    events::watch(&ctx.root, since, until, &filters, &mut |m| {
        let Some(m) = m else {
            return true;
        };
        let line = if json {
            serde_json::to_string(m).unwrap_or_default()
        } else {
            m.line()
        };
        // A closed pipe (`dock events | head`) ends the stream.
        writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
    })?;
    Ok(0)
}
