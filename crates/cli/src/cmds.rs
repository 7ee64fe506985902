//! `top`, `stats`, `pause` and `unpause`, with Docker's output.

use std::io::{self, Write};
use std::time::Duration;

use clap::Subcommand;
use runtime::stats::{Stats, Summary};
use runtime::{Container, Runtime};

use crate::format::{short_id, Table};
use crate::template::Template;
use crate::Context;

/// `docker stats`' default table.
pub const DEFAULT_STATS_FORMAT: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

#[derive(Subcommand)]
// Each subcommand's arguments are built only when it is the one run.
#[command(defer = true)]
pub enum CmdsCommand {
    /// Display the running processes of a container
    #[command(override_usage = "dock top CONTAINER [ps OPTIONS]")]
    Top {
        /// The container (name, id or id prefix)
        container: String,
        /// Options for `ps` (default -ef)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Display a live stream of container(s) resource usage statistics
    Stats {
        /// Show all containers (default shows just running)
        #[arg(short = 'a', long)]
        all: bool,
        /// Disable streaming stats and only pull the first result
        #[arg(long)]
        no_stream: bool,
        /// Do not truncate output
        #[arg(long)]
        no_trunc: bool,
        /// Format output using a Go template ("table", "table TEMPLATE", "json", "TEMPLATE";
        /// fields .Container .Name .ID .CPUPerc .MemUsage .MemPerc .NetIO .BlockIO .PIDs)
        #[arg(long)]
        format: Option<String>,
        /// Containers (default: every running one)
        containers: Vec<String>,
    },
    /// Pause all processes within one or more containers
    Pause {
        /// The containers to pause
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Unpause all processes within one or more containers
    Unpause {
        /// The containers to unpause
        #[arg(required = true)]
        containers: Vec<String>,
    },
}

/// How far apart two stats samples are (dockerd's collector interval).
const STATS_INTERVAL: Duration = Duration::from_secs(1);

pub fn run(ctx: &Context, cmd: CmdsCommand) -> anyhow::Result<u8> {
    let rt = crate::containers::runtime(ctx)?;
    match cmd {
        CmdsCommand::Top { container, ps_args } => {
            let top = rt.top(&container, &ps_args.join(" "))?;
            let mut table = Table::new(&top.titles.iter().map(String::as_str).collect::<Vec<_>>())
                .min_width(20);
            for row in top.processes {
                table.row(row);
            }
            print!("{}", table.render());
            Ok(0)
        }
        CmdsCommand::Pause { containers } => each(&containers, |name| rt.pause(name)),
        CmdsCommand::Unpause { containers } => each(&containers, |name| rt.unpause(name)),
        CmdsCommand::Stats {
            all,
            no_stream,
            no_trunc,
            format,
            containers,
        } => {
            let template = format
                .as_deref()
                .map(|f| Template::parse_or_default(f, DEFAULT_STATS_FORMAT))
                .transpose()?;
            stats(
                &rt,
                all,
                no_stream,
                no_trunc,
                template.as_ref(),
                &containers,
            )
        }
    }
}

/// Docker's multi-container commands: each name printed when done, each failure reported,
/// exit 1 when any failed.
fn each(names: &[String], act: impl Fn(&str) -> runtime::Result<()>) -> anyhow::Result<u8> {
    let mut failures = Vec::new();
    for name in names {
        match act(name) {
            Ok(()) => println!("{name}"),
            Err(e) => failures.push(e.to_string()),
        }
    }
    if failures.is_empty() {
        Ok(0)
    } else {
        Err(anyhow::anyhow!(failures.join("\n")))
    }
}

/// The containers `stats` shows, each with what `.Container` shows: those named (as
/// named), else the running ones (`-a`: all) by full id.
fn chosen(rt: &Runtime, all: bool, names: &[String]) -> anyhow::Result<Vec<(String, Container)>> {
    if names.is_empty() {
        let mut list = rt.list()?;
        list.retain(|c| all || c.state.running);
        return Ok(list.into_iter().map(|c| (c.id.clone(), c)).collect());
    }
    names.iter().map(|n| Ok((n.clone(), rt.get(n)?))).collect()
}

/// A sample, or for a container that does not run (or is gone meanwhile) the empty one.
fn sample(rt: &Runtime, c: &Container) -> Stats {
    let empty = || Stats {
        id: c.id.clone(),
        name: format!("/{}", c.name),
        ..Stats::default()
    };
    match rt.load(&c.id) {
        Ok(now) if now.state.running && !now.state.restarting => {
            rt.stats_sample(&now).unwrap_or_else(|e| {
                tracing::debug!(id = %c.id, error = %e, "no stats");
                empty()
            })
        }
        _ => empty(),
    }
}

fn stats(
    rt: &Runtime,
    all: bool,
    no_stream: bool,
    no_trunc: bool,
    template: Option<&Template>,
    names: &[String],
) -> anyhow::Result<u8> {
    let chosen = chosen(rt, all, names)?;
    let (given, containers): (Vec<String>, Vec<Container>) = chosen.into_iter().unzip();
    let mut previous: Vec<Stats> = containers.iter().map(|c| sample(rt, c)).collect();
    let mut out = io::stdout().lock();
    loop {
        std::thread::sleep(STATS_INTERVAL);
        let current: Vec<Stats> = containers
            .iter()
            .zip(&previous)
            .map(|(c, before)| {
                let mut now = sample(rt, c);
                now.precpu_stats = before.cpu_stats.clone();
                now.preread = before.read;
                now
            })
            .collect();
        let table = match template {
            None => stats_table(&current, no_trunc),
            Some(template) => {
                let rows: Vec<serde_json::Value> = current
                    .iter()
                    .zip(&given)
                    .map(|(s, given)| StatsRow::new(s, no_trunc).context(given))
                    .collect();
                let mut text = template.render_list(&rows, &stats_headers())?;
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                text
            }
        };
        if !no_stream {
            // Docker's screen refresh: clear, home.
            write!(out, "\x1b[2J\x1b[H")?;
        }
        write!(out, "{table}")?;
        out.flush()?;
        if no_stream {
            return Ok(0);
        }
        previous = current;
    }
}

/// Docker's default `stats` table.
pub fn stats_table(samples: &[Stats], no_trunc: bool) -> String {
    let mut table = Table::new(&[
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
    ])
    .min_width(10);
    for s in samples {
        let row = StatsRow::new(s, no_trunc);
        table.row(vec![
            row.id,
            row.name,
            row.cpu_perc,
            row.mem_usage,
            row.mem_perc,
            row.net_io,
            row.block_io,
            row.pids,
        ]);
    }
    table.render()
}

/// One container's cells, as the docker CLI's stats formatter renders them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsRow {
    pub id: String,
    pub name: String,
    pub cpu_perc: String,
    pub mem_usage: String,
    pub mem_perc: String,
    pub net_io: String,
    pub block_io: String,
    pub pids: String,
}

/// The column titles of `stats --format "table …"`.
pub fn stats_headers() -> serde_json::Value {
    serde_json::json!({
        "Container": "CONTAINER",
        "Name": "NAME",
        "ID": "CONTAINER ID",
        "CPUPerc": "CPU %",
        "MemUsage": "MEM USAGE / LIMIT",
        "MemPerc": "MEM %",
        "NetIO": "NET I/O",
        "BlockIO": "BLOCK I/O",
        "PIDs": "PIDS",
    })
}

impl StatsRow {
    /// What a `--format` template sees; `.Container` is the container as the user named it.
    pub fn context(self, container: &str) -> serde_json::Value {
        serde_json::json!({
            "Container": container,
            "Name": self.name,
            "ID": self.id,
            "CPUPerc": self.cpu_perc,
            "MemUsage": self.mem_usage,
            "MemPerc": self.mem_perc,
            "NetIO": self.net_io,
            "BlockIO": self.block_io,
            "PIDs": self.pids,
        })
    }

    pub fn new(s: &Stats, no_trunc: bool) -> StatsRow {
        let sum: Summary = s.summary();
        StatsRow {
            id: if no_trunc {
                s.id.clone()
            } else {
                short_id(&s.id).to_string()
            },
            name: match s.name.strip_prefix('/') {
                Some(name) if !name.is_empty() => name.to_string(),
                _ => "--".to_string(),
            },
            cpu_perc: format!("{:.2}%", sum.cpu_percent),
            mem_usage: format!(
                "{} / {}",
                bytes_size(sum.memory),
                bytes_size(sum.memory_limit)
            ),
            mem_perc: format!("{:.2}%", sum.memory_percent),
            net_io: format!("{} / {}", human_size(sum.net_rx), human_size(sum.net_tx)),
            block_io: format!(
                "{} / {}",
                human_size(sum.block_read),
                human_size(sum.block_write)
            ),
            pids: sum.pids.to_string(),
        }
    }
}

/// go-units `BytesSize`: binary units, `%.4g`.
pub fn bytes_size(size: f64) -> String {
    custom_size(
        size,
        1024.0,
        &["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"],
        4,
    )
}

/// go-units `HumanSizeWithPrecision(size, 3)`: decimal units.
pub fn human_size(size: f64) -> String {
    custom_size(size, 1000.0, &["B", "kB", "MB", "GB", "TB", "PB", "EB"], 3)
}

fn custom_size(mut size: f64, base: f64, units: &[&str], precision: usize) -> String {
    let mut unit = 0;
    while size >= base && unit < units.len() - 1 {
        size /= base;
        unit += 1;
    }
    format!("{}{}", go_g(size, precision), units[unit])
}

/// Go's `%.Pg`: P significant digits, no trailing zeros, exponent form when the exponent
/// is below -4 or at least P.
pub fn go_g(value: f64, precision: usize) -> String {
    if value == 0.0 {
        return "0".into();
    }
    let precision = precision.max(1);
    let sci = format!("{:.*e}", precision - 1, value);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if exp < -4 || exp >= precision as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.abs())
    } else {
        let decimals = (precision as i32 - 1 - exp).max(0) as usize;
        trim(&format!("{value:.decimals$}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_see_dockers_fields() {
        let s = Stats {
            id: "ab".repeat(32),
            name: "/web".into(),
            ..Stats::default()
        };
        let row = StatsRow::new(&s, false).context("web");
        let t = Template::parse("{{.Container}} {{.Name}} {{.ID}} {{.CPUPerc}} {{.PIDs}}").unwrap();
        assert_eq!(t.render(&row).unwrap(), "web web abababababab 0.00% 0");
        let t = Template::parse("table {{.Name}}\t{{.MemUsage}}").unwrap();
        assert_eq!(
            t.render_list(&[row], &stats_headers()).unwrap(),
            "NAME      MEM USAGE / LIMIT\nweb       0B / 0B\n"
        );
        // Docker's default table and ours agree.
        let t = Template::parse(DEFAULT_STATS_FORMAT).unwrap();
        let row = StatsRow::new(&s, false).context("web");
        assert_eq!(
            t.render_list(&[row], &stats_headers()).unwrap(),
            stats_table(&[s], false)
        );
    }

    #[test]
    fn sizes_as_go_units_prints_them() {
        assert_eq!(bytes_size(0.0), "0B");
        assert_eq!(bytes_size(1000.0), "1000B");
        assert_eq!(bytes_size(1536.0), "1.5KiB");
        assert_eq!(bytes_size(10_485_760.0), "10MiB");
        assert_eq!(bytes_size(2_097_152_000.0), "1.953GiB");
        assert_eq!(human_size(1500.0), "1.5kB");
        assert_eq!(human_size(12_345.0), "12.3kB");
        assert_eq!(human_size(999.0), "999B");
        assert_eq!(human_size(999.7), "1e+03B");
        assert_eq!(go_g(0.000012345, 3), "1.23e-05");
        assert_eq!(go_g(123.0, 4), "123");
    }

    #[test]
    fn a_row_shows_what_the_docker_cli_computes() {
        let mut s = Stats {
            id: "0123456789abcdef".repeat(4),
            name: "/web".into(),
            ..Stats::default()
        };
        s.cpu_stats.cpu_usage.total_usage = 600_000_000;
        s.cpu_stats.system_cpu_usage = 4_000_000_000;
        s.cpu_stats.online_cpus = 2;
        s.precpu_stats.cpu_usage.total_usage = 100_000_000;
        s.precpu_stats.system_cpu_usage = 2_000_000_000;
        s.memory_stats.usage = 3 << 20;
        s.memory_stats.limit = 1 << 30;
        s.pids_stats.current = 4;
        let row = StatsRow::new(&s, false);
        assert_eq!(row.id, "0123456789ab");
        assert_eq!(row.name, "web");
        assert_eq!(row.cpu_perc, "50.00%");
        assert_eq!(row.mem_usage, "3MiB / 1GiB");
        assert_eq!(row.mem_perc, "0.29%");
        assert_eq!(row.net_io, "0B / 0B");
        assert_eq!(row.block_io, "0B / 0B");
        assert_eq!(row.pids, "4");
        let table = stats_table(std::slice::from_ref(&s), false);
        assert_eq!(
            table,
            "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O   BLOCK I/O   PIDS\n\
             0123456789ab   web       50.00%    3MiB / 1GiB         0.29%     0B / 0B   0B / 0B     4\n"
        );
        let table = stats_table(&[s], true);
        let row = table.lines().nth(1).unwrap();
        assert!(row.starts_with(&"0123456789abcdef".repeat(4)), "{table}");
    }
}
