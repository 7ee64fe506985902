//! Container commands: run, start, stop, restart, kill, rm, wait, attach, logs, ps, diff,
//! commit, export. The work is in the `runtime` crate; this file parses, renders, and moves
//! bytes between the terminal and an attach connection.

use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use anyhow::Context as _;
use clap::{ArgAction, Args, Subcommand};
use runtime::attach::{self, Event, FrameBuffer, Hello, Kind};
use runtime::{Container, CreateOptions, Runtime};

use crate::format::{human_duration, short_id, Ago, Table};
use crate::{Context, Failure};

#[derive(Subcommand)]
// Each subcommand's arguments are built only when it is the one run.
#[command(defer = true)]
pub enum ContainerCommand {
    /// Run a command in a new container
    #[command(disable_help_flag = true)]
    Run(RunArgs),
    /// Create a new container without starting it; prints its ID
    #[command(disable_help_flag = true)]
    Create(RunArgs),
    /// Start one or more stopped containers
    Start {
        /// Attach stdout/stderr and forward signals
        #[arg(short = 'a', long)]
        attach: bool,
        /// Attach the container's stdin
        #[arg(short = 'i', long)]
        interactive: bool,
        /// Containers to start: name, ID or ID prefix
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop one or more running containers (their stop signal, SIGTERM by default, then
    /// SIGKILL after a grace period)
    Stop {
        /// Signal to send instead of the container's stop signal
        #[arg(short = 's', long)]
        signal: Option<String>,
        /// Seconds to wait before killing the container [default: its --stop-timeout, else 10]
        #[arg(short = 't', long = "time")]
        time: Option<u64>,
        /// Containers to stop: name, ID or ID prefix
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Restart one or more containers
    Restart {
        /// Seconds to wait before killing the container [default: its --stop-timeout, else 10]
        #[arg(short = 't', long = "time")]
        time: Option<u64>,
        /// Containers to restart: name, ID or ID prefix
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Send a signal (default SIGKILL) to one or more running containers
    Kill {
        /// Signal to send: name (TERM, SIGTERM) or number
        #[arg(short = 's', long, default_value = "KILL")]
        signal: String,
        /// Containers to signal: name, ID or ID prefix
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove one or more containers
    Rm {
        /// Kill a running container first
        #[arg(short = 'f', long)]
        force: bool,
        /// Remove the anonymous volumes of the container
        #[arg(short = 'v', long)]
        volumes: bool,
        /// Containers to remove: name, ID or ID prefix
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Block until one or more containers stop, then print their exit codes
    Wait {
        /// Containers to wait for: name, ID or ID prefix
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Attach to a running container's streams
    Attach {
        /// Do not attach stdin
        #[arg(long)]
        no_stdin: bool,
        /// Override the key sequence for detaching a container
        #[arg(long = "detach-keys")]
        detach_keys: Option<String>,
        /// The running container to attach to: name, ID or ID prefix
        container: String,
    },
    /// Fetch the logs of a container
    Logs {
        /// Follow log output
        #[arg(short = 'f', long)]
        follow: bool,
        /// Show timestamps
        #[arg(short = 't', long)]
        timestamps: bool,
        /// Number of lines to show from the end ("all" for everything)
        #[arg(long, default_value = "all")]
        tail: String,
        /// Show logs since a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
        #[arg(long)]
        since: Option<String>,
        /// Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
        #[arg(long)]
        until: Option<String>,
        /// The container whose log to show: name, ID or ID prefix
        container: String,
    },
    /// List containers
    Ps {
        /// Show all containers (default shows just running)
        #[arg(short = 'a', long)]
        all: bool,
        /// Only display container IDs
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Don't truncate output
        #[arg(long)]
        no_trunc: bool,
        /// Filter output based on conditions provided (id, name, label, status, ancestor,
        /// exited, before, since: KEY=VALUE)
        #[arg(short = 'f', long = "filter")]
        filter: Vec<String>,
        /// Format output using a Go template ('table', 'table TEMPLATE', 'json', 'TEMPLATE')
        #[arg(long)]
        format: Option<String>,
    },
    /// Inspect changes to files or directories on a container's filesystem
    Diff {
        /// The container: name, ID or ID prefix
        container: String,
    },
    /// Create a new image from a container's changes
    Commit {
        /// Commit message
        #[arg(short = 'm', long)]
        message: Option<String>,
        /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
        #[arg(short = 'a', long)]
        author: Option<String>,
        /// The container to commit: name, ID or ID prefix
        container: String,
        /// REPOSITORY[:TAG]
        repository: Option<String>,
    },
    /// Export a container's filesystem as a tar archive on stdout
    Export {
        /// The container to export: name, ID or ID prefix
        container: String,
    },
    /// List port mappings, or look up the public port of PRIVATE_PORT[/PROTO]
    Port {
        /// The container: name, ID or ID prefix
        container: String,
        /// PRIVATE_PORT[/PROTO]
        private_port: Option<String>,
    },
}

#[derive(Args)]
pub struct RunArgs {
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
    /// Run the container in the background and print its ID
    #[arg(short = 'd', long)]
    detach: bool,
    /// Keep stdin open and attach it
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    tty: bool,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Set environment variables (KEY=VALUE)
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Overwrite the default ENTRYPOINT of the image ("" removes it)
    #[arg(long)]
    entrypoint: Option<String>,
    /// Working directory inside the container (created when missing)
    #[arg(short = 'w', long = "workdir")]
    workdir: Option<String>,
    /// Expose a port or a range of ports (PORT[-PORT][/PROTO])
    #[arg(long)]
    expose: Vec<String>,
    /// Publish all exposed ports to random host ports
    #[arg(short = 'P', long = "publish-all")]
    publish_all: bool,
    /// Signal to stop the container (name or number; default SIGTERM)
    #[arg(long = "stop-signal")]
    stop_signal: Option<String>,
    /// Memory limit in bytes (suffixes b, k, m, g)
    #[arg(short = 'm', long = "memory", value_parser = parse_memory)]
    memory: Option<i64>,
    /// Container host name
    #[arg(short = 'h', long)]
    hostname: Option<String>,
    /// Assign a name to the container
    #[arg(long)]
    name: Option<String>,
    /// Remove the container when it exits
    #[arg(long)]
    rm: bool,
    /// Publish a container's port to the host ([IP:][HOST:]PORT[/PROTO])
    #[arg(short = 'p', long = "publish")]
    publish: Vec<String>,
    /// Bind mount a volume: HOST-DIR:CTR[:ro], NAME:CTR[:ro], or CTR for an anonymous volume
    #[arg(short = 'v', long = "volume")]
    volume: Vec<String>,
    /// Attach a filesystem mount: type=bind|volume|tmpfs,source=,target=[,readonly]
    #[arg(long)]
    mount: Vec<String>,
    /// Mount a tmpfs directory: CTR[:OPTIONS]
    #[arg(long)]
    tmpfs: Vec<String>,
    /// Set custom DNS servers
    #[arg(long)]
    dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search")]
    dns_search: Vec<String>,
    /// Add a custom host-to-IP mapping (HOST:IP)
    #[arg(long = "add-host")]
    add_host: Vec<String>,
    /// Network mode: bridge (default) or none (only lo)
    #[arg(long = "network", visible_alias = "net", default_value = "bridge")]
    network: String,
    /// Give extended privileges: all capabilities, no seccomp, no masked paths, writable /sys
    #[arg(long)]
    privileged: bool,
    /// Add Linux capabilities (NAME, CAP_NAME or ALL)
    #[arg(long = "cap-add")]
    cap_add: Vec<String>,
    /// Drop Linux capabilities (NAME, CAP_NAME or ALL)
    #[arg(long = "cap-drop")]
    cap_drop: Vec<String>,
    /// Security options: seccomp=unconfined|PROFILE.json, no-new-privileges[=true|false]
    #[arg(long = "security-opt")]
    security_opt: Vec<String>,
    // -- run flags: env files, labels, restart policy, resources, init, attach --
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    env_file: Vec<std::path::PathBuf>,
    /// Set meta data on a container (KEY=VALUE)
    #[arg(short = 'l', long = "label")]
    label: Vec<String>,
    /// Read in a line delimited file of labels
    #[arg(long = "label-file")]
    label_file: Vec<std::path::PathBuf>,
    /// Restart policy to apply when a container exits: no, on-failure[:max-retries], always, unless-stopped
    #[arg(long, default_value = "no")]
    restart: String,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    read_only: bool,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Number of CPUs
    #[arg(long, value_parser = parse_cpus)]
    cpus: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", allow_hyphen_values = true)]
    cpu_shares: Option<i64>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap", value_parser = parse_memory_swap, allow_hyphen_values = true)]
    memory_swap: Option<i64>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    init: bool,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout", allow_hyphen_values = true)]
    stop_timeout: Option<i64>,
    /// Disable any container-specified HEALTHCHECK (dock runs no healthchecks)
    #[arg(long = "no-healthcheck")]
    _no_healthcheck: bool,
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short = 'a', long = "attach", value_parser = parse_stream)]
    attach: Vec<Stream>,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    /// Pull the image before creating the container: missing, always or never
    #[arg(long, value_name = "POLICY", default_value = "missing", value_parser = ["missing", "always", "never"])]
    pull: String,
    /// The image to run, then the command and its arguments
    ///
    /// One positional list, so that option parsing stops at the image as Docker's does:
    /// `run IMG sh -c ...`, `run IMG ls -la` pass `-c`, `-l` and `-a` to the command.
    #[arg(
        value_name = "IMAGE [COMMAND] [ARG...]",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    image_and_command: Vec<String>,
    /// The image (the first of `image_and_command`, see [`RunArgs::split`]).
    #[arg(skip)]
    image: String,
    #[arg(skip)]
    command: Vec<String>,
}

impl RunArgs {
    /// Fills `image` and `command` from the positional list; an option clap did not know
    /// (so taken as the image) is an error, as Docker's "unknown flag".
    fn split(&mut self) -> anyhow::Result<()> {
        let mut rest = std::mem::take(&mut self.image_and_command).into_iter();
        self.image = rest.next().unwrap_or_default();
        if self.image.starts_with('-') {
            let flag = self.image.split('=').next().unwrap_or_default();
            let message = if DOCKER_RUN_FLAGS_NOT_IMPLEMENTED.contains(&flag) {
                format!("{flag} is not supported by dock")
            } else {
                format!("unknown flag: {flag}")
            };
            return Err(Failure { code: 125, message }.into());
        }
        self.command = rest.collect();
        Ok(())
    }
}

/// Docker 28's `run`/`create` flags that dock does not implement: refused by name (125),
/// never accepted and ignored.
const DOCKER_RUN_FLAGS_NOT_IMPLEMENTED: &[&str] = &[
    "--annotation",
    "--blkio-weight",
    "--blkio-weight-device",
    "--cgroup-parent",
    "--cgroupns",
    "--cidfile",
    "--cpu-period",
    "--cpu-quota",
    "--cpu-rt-period",
    "--cpu-rt-runtime",
    "--cpuset-cpus",
    "--cpuset-mems",
    "--device",
    "--device-cgroup-rule",
    "--device-read-bps",
    "--device-read-iops",
    "--device-write-bps",
    "--device-write-iops",
    "--disable-content-trust",
    "--dns-option",
    "--dns-opt",
    "--domainname",
    "--gpus",
    "--group-add",
    "--health-cmd",
    "--health-interval",
    "--health-retries",
    "--health-start-interval",
    "--health-start-period",
    "--health-timeout",
    "--ip",
    "--ip6",
    "--ipc",
    "--isolation",
    "--kernel-memory",
    "--link",
    "--link-local-ip",
    "--log-driver",
    "--log-opt",
    "--mac-address",
    "--memory-reservation",
    "--memory-swappiness",
    "--network-alias",
    "--oom-kill-disable",
    "--oom-score-adj",
    "--pid",
    "--platform",
    "--quiet",
    "-q",
    "--runtime",
    "--shm-size",
    "--sig-proxy",
    "--storage-opt",
    "--sysctl",
    "--ulimit",
    "--userns",
    "--uts",
    "--volume-driver",
    "--volumes-from",
    "--use-api-socket",
];

fn parse_memory(s: &str) -> Result<i64, String> {
    runtime::parse_memory(s).ok_or_else(|| format!("invalid memory size {s:?} (use e.g. 512m, 1g)"))
}

// -- run flags: parsers --

/// `--memory-swap`: a size, or -1 for unlimited swap.
fn parse_memory_swap(s: &str) -> Result<i64, String> {
    if s.trim() == "-1" {
        return Ok(-1);
    }
    parse_memory(s)
}

/// `--cpus 1.5` in billionths of a CPU, as Docker's NanoCPUs.
fn parse_cpus(s: &str) -> Result<i64, String> {
    let bad = || format!("failed to parse {s} as a rational number");
    let (whole, fraction) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
    if (whole.is_empty() && fraction.is_empty())
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !fraction.chars().all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let mut digits: String = fraction.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let fraction: i64 = digits.parse().map_err(|_| bad())?;
    whole
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(fraction))
        .ok_or_else(bad)
}

/// A stream `-a` attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdin,
    Stdout,
    Stderr,
}

fn parse_stream(s: &str) -> Result<Stream, String> {
    match s.to_ascii_lowercase().as_str() {
        "stdin" => Ok(Stream::Stdin),
        "stdout" => Ok(Stream::Stdout),
        "stderr" => Ok(Stream::Stderr),
        _ => Err("valid streams are STDIN, STDOUT and STDERR".into()),
    }
}

/// Docker's detach keys: a comma-separated list of single characters and `ctrl-X`
/// (X one of a-z @ [ \\ ] ^ _); default Ctrl-p Ctrl-q.
fn detach_keys(spec: Option<&str>) -> anyhow::Result<Vec<u8>> {
    let Some(spec) = spec.filter(|s| !s.is_empty()) else {
        return Ok(vec![CTRL_P, CTRL_Q]);
    };
    let mut codes = Vec::new();
    for key in spec.split(',') {
        if key.len() == 1 {
            codes.push(key.as_bytes()[0]);
            continue;
        }
        let ctrl = key.strip_prefix("ctrl-").and_then(|k| match k.as_bytes() {
            [c @ b'a'..=b'z'] => Some(c - b'a' + 1),
            [b'@'] => Some(0),
            [b'['] => Some(27),
            [b'\\'] => Some(28),
            [b']'] => Some(29),
            [b'^'] => Some(30),
            [b'_'] => Some(31),
            _ => None,
        });
        match ctrl {
            Some(code) => codes.push(code),
            None if key.starts_with("ctrl-") => anyhow::bail!("Unknown character: '{key}'"),
            None => anyhow::bail!("Unknown sequence: '{key}'"),
        }
    }
    Ok(codes)
}

/// Docker's env and label files: `KEY=VALUE` lines (the value as written), `KEY` alone
/// (`with_env`: its value here, skipped when unset; otherwise kept as `KEY`), blank lines
/// and `#` comments skipped, a leading BOM dropped.
fn read_kv_file(path: &std::path::Path, with_env: bool) -> anyhow::Result<Vec<String>> {
    let bytes = std::fs::read(path).with_context(|| format!("open {}", path.display()))?;
    let mut out = Vec::new();
    for (n, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let raw = if n == 0 {
            raw.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(raw)
        } else {
            raw
        };
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Ok(line) = std::str::from_utf8(raw) else {
            anyhow::bail!(
                "env file {} contains invalid utf8 bytes at line {}",
                path.display(),
                n + 1
            );
        };
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (line, None),
        };
        if key.contains(char::is_whitespace) {
            anyhow::bail!("poorly formatted environment: variable '{key}' contains whitespaces");
        }
        if key.is_empty() {
            anyhow::bail!("poorly formatted environment: no variable name on line '{line}'");
        }
        match value {
            Some(v) => out.push(format!("{key}={v}")),
            None if with_env => {
                let key = key.trim();
                if let Ok(v) = std::env::var(key) {
                    out.push(format!("{key}={v}"));
                }
            }
            None => out.push(key.trim().to_string()),
        }
    }
    Ok(out)
}

/// `-l`/`--label-file` entries as a map (`KEY` alone: an empty value).
fn labels(args: &RunArgs) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let mut all = Vec::new();
    for file in &args.label_file {
        all.extend(read_kv_file(file, false)?);
    }
    all.extend(args.label.iter().cloned());
    Ok(all
        .into_iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv, String::new()),
        })
        .collect())
}

/// `ps --filter label=KEY[=VALUE]`: whether `c` matches every filter.
pub fn runtime(ctx: &Context) -> anyhow::Result<Runtime> {
    Ok(Runtime::open(&ctx.root)?)
}

/// `early_starter`: a monitor `main` started for `run` before it parsed the command line.
pub fn run(
    ctx: &Context,
    cmd: ContainerCommand,
    early_starter: Option<runtime::Starter>,
) -> anyhow::Result<u8> {
    let rt = runtime(ctx)?;
    match cmd {
        ContainerCommand::Run(mut args) => {
            args.split()?;
            // The container's monitor starts first: its exec and loading overlap with finding
            // the image and creating the container, and it waits for them.
            let starter = match early_starter.filter(|starter| starter.serves(&rt)) {
                Some(starter) => {
                    tracing::debug!(
                        id = starter.id(),
                        "the monitor started before parsing serves"
                    );
                    starter
                }
                None => rt.starter().map_err(start_failure)?,
            };
            args.image = crate::pull::ensure_image(ctx, &args.image, &args.pull)?;
            run_container(&rt, args, starter)
        }
        ContainerCommand::Create(mut args) => {
            args.split()?;
            args.image = crate::pull::ensure_image(ctx, &args.image, &args.pull)?;
            let c = create_container(&rt, &args, None)?;
            println!("{}", c.id);
            Ok(0)
        }
        ContainerCommand::Start {
            attach,
            interactive,
            containers,
        } => start(&rt, attach, interactive, &containers),
        ContainerCommand::Stop {
            signal,
            time,
            containers,
        } => {
            let signo = signal.as_deref().map(parse_signal).transpose()?;
            each(&containers, |name| {
                let c = rt.get(name)?;
                let timeout = time.map_or_else(|| Runtime::stop_timeout(&c), Duration::from_secs);
                rt.stop_with(&c.id, signo, timeout)?;
                println!("{name}");
                Ok(())
            })
        }
        ContainerCommand::Restart { time, containers } => each(&containers, |name| {
            let c = rt.get(name)?;
            let timeout = time.map_or_else(|| Runtime::stop_timeout(&c), Duration::from_secs);
            rt.stop(&c.id, timeout)?;
            rt.start(&c.id, Hello::default()).map_err(start_failure)?;
            println!("{name}");
            Ok(())
        }),
        ContainerCommand::Kill { signal, containers } => {
            let signo = parse_signal(&signal)?;
            each(&containers, |name| {
                let c = rt.get(name)?;
                rt.kill(&c.id, signo)?;
                println!("{name}");
                Ok(())
            })
        }
        ContainerCommand::Rm {
            force,
            volumes,
            containers,
        } => each(&containers, |name| {
            let id = match rt.get(name) {
                Ok(c) => c.id,
                // Removed without its config: what it holds is found elsewhere.
                Err(runtime::Error::Broken { id, .. }) => id,
                Err(e) => return Err(e.into()),
            };
            rt.remove_with(&id, force, volumes)?;
            println!("{name}");
            Ok(())
        }),
        ContainerCommand::Wait { containers } => each(&containers, |name| {
            let c = rt.get(name)?;
            println!("{}", rt.wait(&c.id)?);
            Ok(())
        }),
        ContainerCommand::Attach {
            no_stdin,
            detach_keys: keys,
            container,
        } => {
            let keys = detach_keys(keys.as_deref())?;
            let c = rt.get(&container)?;
            let stdin = !no_stdin && c.config.open_stdin;
            let hello = hello_for(c.config.tty, stdin);
            let client = rt.attach(&c.id, hello)?;
            pump(&rt, &c, client, stdin, &keys, false)
        }
        ContainerCommand::Logs {
            follow,
            timestamps,
            tail,
            since,
            until,
            container,
        } => {
            let now = chrono::Utc::now();
            let window = |flag: &str, value: Option<String>| {
                value
                    .map(|v| runtime::logs::parse_time(&v, now))
                    .transpose()
                    .with_context(|| format!("invalid value for \"{flag}\""))
            };
            let window = (window("since", since)?, window("until", until)?);
            logs(&rt, &container, follow, timestamps, &tail, window)
        }
        ContainerCommand::Ps {
            all,
            quiet,
            no_trunc,
            filter,
            format,
        } => ps(ctx, &rt, all, quiet, no_trunc, &filter, format.as_deref()),
        ContainerCommand::Diff { container } => {
            let c = rt.get(&container)?;
            let mut out = io::stdout().lock();
            for change in rt.changes(&c.id)? {
                writeln!(out, "{change}")?;
            }
            Ok(0)
        }
        ContainerCommand::Commit {
            message,
            author,
            container,
            repository,
        } => {
            let c = rt.get(&container)?;
            let (repository, tag) = match repository {
                Some(r) => {
                    let (repo, tag) = tagstore::parse_reference(&r);
                    (Some(repo), tag)
                }
                None => (None, None),
            };
            let image = rt.commit(
                &c.id,
                runtime::CommitOptions {
                    repository,
                    tag,
                    comment: message.unwrap_or_default(),
                    author: author.unwrap_or_default(),
                },
            )?;
            println!("{}", image.id);
            Ok(0)
        }
        ContainerCommand::Port {
            container,
            private_port,
        } => port(&rt, &container, private_port.as_deref()),
        ContainerCommand::Export { container } => {
            let c = rt.get(&container)?;
            if io::stdout().is_terminal() {
                anyhow::bail!("refusing to write a tar archive to a terminal: redirect stdout");
            }
            let mut out = io::BufWriter::new(io::stdout().lock());
            rt.export(&c.id, &mut out)?;
            out.flush()?;
            Ok(0)
        }
    }
}

/// Runs `f` for every name; errors are printed and make the exit status 1, like Docker.
fn each(names: &[String], mut f: impl FnMut(&str) -> anyhow::Result<()>) -> anyhow::Result<u8> {
    let mut failed = false;
    for name in names {
        if let Err(e) = f(name) {
            eprintln!("Error: {}", crate::error_chain(&e));
            failed = true;
        }
    }
    Ok(failed as u8)
}

fn start_failure(e: runtime::Error) -> anyhow::Error {
    match e {
        runtime::Error::Start { code, message } => Failure { code, message }.into(),
        other => Failure {
            code: 125,
            message: other.to_string(),
        }
        .into(),
    }
}

fn run_container(rt: &Runtime, args: RunArgs, starter: runtime::Starter) -> anyhow::Result<u8> {
    let bad_input = |message: String| Failure { code: 125, message };
    if args.detach && !args.attach.is_empty() {
        return Err(bad_input("Conflicting options: -a and -d".into()).into());
    }
    let keys = detach_keys(args.detach_keys.as_deref()).map_err(|e| bad_input(e.to_string()))?;
    let c = create_container(rt, &args, Some(&starter))?;
    if args.detach {
        drop(
            rt.start_with(starter, Hello::default())
                .map_err(start_failure)?,
        );
        println!("{}", c.id);
        return Ok(0);
    }
    // `-a`: only the streams named (stdin also with -i); none named: stdout and stderr.
    let stdin = args.interactive || args.attach.contains(&Stream::Stdin);
    let mut hello = hello_for(args.tty, stdin);
    if !args.attach.is_empty() {
        hello.stdout = args.attach.contains(&Stream::Stdout);
        hello.stderr = args.attach.contains(&Stream::Stderr);
    }
    hello.deletes_removed = c.auto_remove;
    let client = rt.start_with(starter, hello).map_err(start_failure)?;
    pump(rt, &c, client, stdin, &keys, hello.deletes_removed)
}

/// `create`, and the first half of `run`: every option error is exit status 125.
fn create_container(
    rt: &Runtime,
    args: &RunArgs,
    starter: Option<&runtime::Starter>,
) -> anyhow::Result<Container> {
    let bad_input = |e: runtime::Error| Failure {
        code: 125,
        message: e.to_string(),
    };
    let bad_flag = |e: anyhow::Error| Failure {
        code: 125,
        message: crate::error_chain(&e),
    };
    // -- run flags: env files first, then -e (a later value of a key wins) --
    let mut env_files = Vec::new();
    for file in &args.env_file {
        env_files.extend(read_kv_file(file, true).map_err(bad_flag)?);
    }
    let labels = labels(args).map_err(bad_flag)?;
    let restart_policy = runtime::RestartPolicy::parse(&args.restart).map_err(bad_input)?;
    let stdin_attached = args.interactive || args.attach.contains(&Stream::Stdin);
    let network_mode: runtime::NetworkMode = args.network.parse().map_err(bad_input)?;
    if network_mode == runtime::NetworkMode::Host && (!args.publish.is_empty() || args.publish_all)
    {
        eprintln!("WARNING: Published ports are discarded when using host network mode");
    }
    let env: Vec<String> = env_files
        .into_iter()
        .chain(args.env.iter().filter_map(|kv| {
            if kv.contains('=') {
                Some(kv.clone())
            } else {
                // `-e KEY` passes the value of KEY from our environment, if set.
                std::env::var(kv).ok().map(|v| format!("{kv}={v}"))
            }
        }))
        .collect();
    let network = network_mode;
    let mut exposed_ports = Vec::new();
    for spec in &args.expose {
        exposed_ports.extend(runtime::imageconfig::parse_expose(spec).map_err(bad_input)?);
    }
    // As Docker's CLI does: a profile file is read now and stored as its JSON.
    let security_opt = runtime::security::inline_profile_files(&args.security_opt)
        .map_err(|e| bad_input(e.into()))?;
    // As Docker's CLI sends them: `-v /path` is an anonymous volume (Config.Volumes), the
    // rest are binds; --mount and --tmpfs are parsed here, checked by create.
    let (volumes, binds): (Vec<String>, Vec<String>) =
        args.volume.iter().cloned().partition(|v| !v.contains(':'));
    let mounts = args
        .mount
        .iter()
        .map(|m| runtime::volumes::parse_mount_flag(m))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_input(e.into()))?;
    let tmpfs = args
        .tmpfs
        .iter()
        .map(|t| runtime::volumes::parse_tmpfs_flag(t))
        .collect::<Result<_, _>>()
        .map_err(|e| bad_input(e.into()))?;
    let opts = CreateOptions {
        image: args.image.clone(),
        cmd: args.command.clone(),
        name: args.name.clone(),
        hostname: args.hostname.clone(),
        user: args.user.clone().unwrap_or_default(),
        env,
        memory: args.memory.unwrap_or(0),
        memory_swap: args.memory_swap.unwrap_or(0),
        tty: args.tty,
        open_stdin: stdin_attached,
        detach: args.detach,
        port_specs: args.publish.clone(),
        auto_remove: args.rm,
        host_config: runtime::HostConfig {
            privileged: args.privileged,
            cap_add: args.cap_add.clone(),
            cap_drop: args.cap_drop.clone(),
            security_opt,
            publish_all_ports: args.publish_all,
            // -- run flags --
            restart_policy,
            readonly_rootfs: args.read_only,
            pids_limit: args.pids_limit,
            nano_cpus: args.cpus.unwrap_or(0),
            cpu_shares: args.cpu_shares.unwrap_or(0),
            init: args.init.then_some(true),
            network_mode: String::new(),
            binds,
            mounts,
            tmpfs,
            dns: args.dns.clone(),
            dns_search: args.dns_search.clone(),
            extra_hosts: args.add_host.clone(),
        },
        // `--entrypoint ""` is `[""]`, as Docker's CLI sends it: no entrypoint, no image Cmd.
        entrypoint: args.entrypoint.clone().map(|e| vec![e]),
        working_dir: args.workdir.clone().unwrap_or_default(),
        exposed_ports,
        stop_signal: args.stop_signal.clone().unwrap_or_default(),
        labels,
        stop_timeout: args.stop_timeout,
        volumes,
    };
    // Port specs, capabilities and security options are checked by create, before anything
    // exists.
    let created = match starter {
        Some(starter) => rt.create_for(starter, opts, network),
        None => rt.create_with_network(opts, network),
    };
    Ok(created.map_err(bad_input)?)
}

fn start(rt: &Runtime, attach: bool, interactive: bool, names: &[String]) -> anyhow::Result<u8> {
    if attach || interactive {
        if names.len() > 1 {
            anyhow::bail!("you cannot start and attach multiple containers at once");
        }
        let c = rt.get(&names[0])?;
        let stdin = interactive && c.config.open_stdin;
        let client = rt
            .start(&c.id, hello_for(c.config.tty, stdin))
            .map_err(start_failure)?;
        return pump(rt, &c, client, stdin, &[CTRL_P, CTRL_Q], false);
    }
    each(names, |name| {
        let c = rt.get(name)?;
        // Docker: starting a running container is not an error.
        match rt.start(&c.id, Hello::default()) {
            Ok(client) => drop(client),
            Err(runtime::Error::AlreadyRunning(_)) => {}
            Err(e) => return Err(start_failure(e)),
        }
        println!("{name}");
        Ok(())
    })
}

fn hello_for(tty: bool, stdin: bool) -> Hello {
    let (rows, cols) = if tty {
        terminal_size().unwrap_or((0, 0))
    } else {
        (0, 0)
    };
    Hello {
        stdout: true,
        stderr: true,
        stdin,
        rows,
        cols,
        deletes_removed: false,
    }
}

pub(crate) fn terminal_size() -> Option<(u16, u16)> {
    for fd in [1, 0, 2] {
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ fills a winsize.
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_row > 0 {
            return Some((ws.ws_row, ws.ws_col));
        }
    }
    None
}

/// Our terminal in raw mode until dropped.
pub(crate) struct RawMode {
    saved: libc::termios,
}

impl RawMode {
    pub(crate) fn enable() -> Option<RawMode> {
        // SAFETY: termios calls on our stdin with valid structs.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut saved) != 0 {
                return None;
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            if libc::tcsetattr(0, libc::TCSANOW, &raw) != 0 {
                return None;
            }
            Some(RawMode { saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the attributes we saved.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &self.saved) };
    }
}

/// Blocks SIGINT, SIGTERM and SIGWINCH and reads them from a signalfd, so they can be
/// forwarded to the container.
fn signal_fd() -> io::Result<OwnedFd> {
    // SAFETY: sigset and signalfd calls with valid pointers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGWINCH] {
            libc::sigaddset(&mut set, sig);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

const CTRL_P: u8 = 0x10;
const CTRL_Q: u8 = 0x11;

/// Copies between our stdio and an attach connection until the container exits (its exit
/// code), or the user detaches with Ctrl-p Ctrl-q on a tty (0).
fn pump(
    rt: &Runtime,
    c: &Container,
    client: runtime::Client,
    send_stdin: bool,
    detach_keys: &[u8],
    deletes_removed: bool,
) -> anyhow::Result<u8> {
    let tty = c.config.tty;
    let _raw = (tty && send_stdin && io::stdin().is_terminal())
        .then(RawMode::enable)
        .flatten();
    let sock = client.into_stream();
    sock.set_nonblocking(true)?;
    let sigfd = signal_fd()?;
    let mut input = FrameBuffer::default();
    let mut outq: Vec<u8> = Vec::new();
    let mut stdin_open = send_stdin;
    // How much of the detach sequence the last bytes typed were.
    let mut matched = 0usize;
    let mut buf = vec![0u8; 32 * 1024];
    let mut stdout = io::stdout().lock();
    let mut stderr = io::stderr();
    // Output that cannot be written (a closed pipe) ends the pump, but a --rm container's
    // directory must still go: we stop writing and sending, close our side (the monitor then
    // drops us, and deletes the directory itself unless it sent us the exit already), and read
    // on for the exit frame or the end.
    let mut failed: Option<io::Error> = None;
    let fail = |failed: &mut Option<io::Error>, e: io::Error| {
        let _ = sock.shutdown(std::net::Shutdown::Write);
        *failed = Some(e);
    };
    loop {
        if failed.is_some() {
            stdin_open = false;
            outq.clear();
        }
        let mut fds = vec![libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLIN | if outq.is_empty() { 0 } else { libc::POLLOUT },
            revents: 0,
        }];
        fds.push(libc::pollfd {
            fd: sigfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        if stdin_open && outq.len() < 64 * 1024 {
            fds.push(libc::pollfd {
                fd: 0,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: poll over a live array.
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e.into());
        }
        if fds[0].revents & libc::POLLOUT != 0 {
            match (&sock).write(&outq) {
                Ok(n) => {
                    outq.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => outq.clear(),
            }
        }
        if fds[0].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            let n = match io::Read::read(&mut &sock, &mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(_) => 0,
            };
            if n == 0 {
                if let Some(e) = failed {
                    return Err(e.into());
                }
                break;
            }
            input.extend(&buf[..n]);
            while let Some((kind, data)) = input.next_frame()? {
                match Event::from_frame(kind, data)? {
                    Event::Stdout(data) if failed.is_none() => {
                        if let Err(e) = stdout.write_all(&data).and_then(|()| stdout.flush()) {
                            fail(&mut failed, e);
                        }
                    }
                    Event::Stderr(data) if failed.is_none() => {
                        if let Err(e) = stderr.write_all(&data) {
                            fail(&mut failed, e);
                        }
                    }
                    Event::Exit(code) => {
                        // A --rm container is out of the store by now; its directory is
                        // ours to delete while the monitor exits (Hello::deletes_removed).
                        if deletes_removed {
                            rt.delete_taken_out(&c.id);
                        }
                        if let Some(e) = failed {
                            return Err(e.into());
                        }
                        stdout.flush()?;
                        // The monitor closes the connection as it exits: then nothing of
                        // the container is left.
                        let mut client = runtime::Client::from_stream(sock);
                        client.drain();
                        return Ok(code as u8);
                    }
                    _ => {}
                }
            }
        }
        if fds[1].revents != 0 {
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: reading one siginfo record into a struct of that size.
            while unsafe {
                libc::read(
                    sigfd.as_raw_fd(),
                    &mut info as *mut _ as *mut libc::c_void,
                    size,
                )
            } == size as isize
            {
                let signo = info.ssi_signo as i32;
                if signo == libc::SIGWINCH {
                    if let Some((rows, cols)) = terminal_size() {
                        let mut data = rows.to_be_bytes().to_vec();
                        data.extend_from_slice(&cols.to_be_bytes());
                        outq.extend(attach::encode(Kind::Resize, &data));
                    }
                } else if let Err(e) = rt.kill(&c.id, signo) {
                    // On a connection of its own: never queued behind stdin the container
                    // has not read.
                    tracing::debug!(id = %c.id, signo, error = %e, "forwarding a signal failed");
                }
            }
        }
        if fds.len() > 2 && fds[2].revents != 0 {
            let n = read_fd(0, &mut buf);
            if n == 0 {
                stdin_open = false;
                if matched > 0 {
                    outq.extend(attach::encode(Kind::Stdin, &detach_keys[..matched]));
                }
                outq.extend(attach::encode(Kind::Stdin, &[]));
                continue;
            }
            let mut data = Vec::with_capacity(n + 1);
            for &b in &buf[..n] {
                if !tty || detach_keys.is_empty() {
                    data.push(b);
                    continue;
                }
                if b != detach_keys[matched] && matched > 0 {
                    // Not the sequence after all: what was held back goes through.
                    data.extend_from_slice(&detach_keys[..matched]);
                    matched = 0;
                }
                if b == detach_keys[matched] {
                    matched += 1;
                    if matched == detach_keys.len() {
                        drop(_raw);
                        return Ok(0);
                    }
                } else {
                    data.push(b);
                }
            }
            if !data.is_empty() {
                outq.extend(attach::encode(Kind::Stdin, &data));
            }
        }
    }
    stdout.flush()?;
    // The monitor went away without an exit frame (killed): the state knows the rest.
    match rt.load(&c.id) {
        Ok(now) if !now.state.running => Ok(now.state.exit_code as u8),
        Ok(_) => anyhow::bail!("lost the connection to container {}", c.name),
        Err(runtime::Error::NoSuchContainer(_)) => Ok(runtime::GHOST_EXIT_CODE as u8),
        Err(e) => Err(e.into()),
    }
}

/// `read(2)` on a raw fd: 0 at end of file or on error.
fn read_fd(fd: RawFd, buf: &mut [u8]) -> usize {
    loop {
        // SAFETY: reading into a buffer we own.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        if n >= 0 {
            return n as usize;
        }
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return 0;
        }
    }
}

fn logs(
    rt: &Runtime,
    name: &str,
    follow: bool,
    timestamps: bool,
    tail: &str,
    (since, until): (
        Option<chrono::DateTime<chrono::Utc>>,
        Option<chrono::DateTime<chrono::Utc>>,
    ),
) -> anyhow::Result<u8> {
    use runtime::logs::in_window;
    let c = rt.get(name)?;
    let tail: Option<usize> = match tail {
        "all" | "" => None,
        n => Some(
            n.parse()
                .with_context(|| format!("invalid --tail value {n:?}: a number or \"all\""))?,
        ),
    };
    let mut client = None;
    let mut end = None;
    if follow && c.state.running {
        let hello = Hello {
            stdout: true,
            stderr: true,
            ..Hello::default()
        };
        if let Ok(mut cl) = rt.attach(&c.id, hello) {
            if let Ok(Some(Event::Attached { log_offset })) = cl.next_event() {
                end = Some(log_offset);
                client = Some(cl);
            }
        }
    }
    let mut entries = rt.logs(&c.id, 0, end)?;
    if let Some(n) = tail {
        let skip = entries.len().saturating_sub(n);
        entries.drain(..skip);
    }
    entries.retain(|e| {
        e.timestamp()
            .is_none_or(|time| in_window(time, since, until))
    });
    let mut stdout = io::stdout().lock();
    let mut stderr = io::stderr().lock();
    for e in &entries {
        let out: &mut dyn Write = if e.is_stderr() {
            &mut stderr
        } else {
            &mut stdout
        };
        if timestamps {
            write!(out, "{} ", e.time)?;
        }
        out.write_all(e.log.as_bytes())?;
    }
    stdout.flush()?;
    let Some(mut client) = client else {
        return Ok(0);
    };
    let stamp = || chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    // Following ends at --until, as Docker's does.
    if let Some(until) = until {
        let left = (until - chrono::Utc::now()).to_std().unwrap_or_default();
        if left.is_zero() {
            return Ok(0);
        }
        client.stream().set_read_timeout(Some(left))?;
    }
    loop {
        let event = match client.next_event() {
            Ok(Some(event)) => event,
            Ok(None) => break,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(e) => return Err(e.into()),
        };
        if until.is_some_and(|u| chrono::Utc::now() > u) {
            break;
        }
        match event {
            Event::Stdout(data) => {
                if timestamps {
                    write!(stdout, "{} ", stamp())?;
                }
                stdout.write_all(&data)?;
                stdout.flush()?;
            }
            Event::Stderr(data) => {
                if timestamps {
                    write!(stderr, "{} ", stamp())?;
                }
                stderr.write_all(&data)?;
            }
            Event::Exit(_) => break,
            _ => {}
        }
    }
    Ok(0)
}

fn ps(
    ctx: &Context,
    rt: &Runtime,
    all: bool,
    quiet: bool,
    no_trunc: bool,
    filter: &[String],
    format: Option<&str>,
) -> anyhow::Result<u8> {
    let filters = api::filters::Filters::from_args(filter).map_err(|e| crate::Failure {
        code: 1,
        message: e.to_string(),
    })?;
    let graph = ctx.graph()?;
    let tags = ctx.tags()?;
    let listing = api::shapes::ContainerListing { all, limit: None };
    let shown_id = |id| if no_trunc { id } else { short_id(id) };
    // The ids, the table and the filters need only each container's [`runtime::Row`].
    let list = || {
        api::shapes::list_containers_with_broken::<runtime::Row>(
            rt, &graph, &tags, listing, &filters,
        )
    };
    if quiet {
        if format.is_some() {
            // Docker's CLI: the ids, and this on stderr.
            eprintln!(
                "WARNING: Ignoring custom format, because both --format and --quiet are set."
            );
        }
        let (containers, broken) = list().map_err(crate::shapes::filter_failure)?;
        let mut out = io::stdout().lock();
        for c in &containers {
            writeln!(out, "{}", shown_id(&c.id))?;
        }
        for b in &broken {
            writeln!(out, "{}", shown_id(&b.id))?;
        }
        return Ok(0);
    }
    if let Some(format) = format {
        // A template may name any field: whole containers.
        let (containers, _) = api::shapes::list_containers_with_broken::<Container>(
            rt, &graph, &tags, listing, &filters,
        )
        .map_err(crate::shapes::filter_failure)?;
        let values: Vec<serde_json::Value> = containers
            .iter()
            .map(|c| {
                let summary =
                    api::shapes::container_summary(c, &api::shapes::shown_image(&graph, &tags, c));
                crate::shapes::ps_row(c, &summary, no_trunc)
            })
            .collect();
        let headers = crate::shapes::ps_headers();
        return crate::shapes::print_rows(format, crate::shapes::PS_TABLE, &values, &headers);
    }
    let (containers, broken) = list().map_err(crate::shapes::filter_failure)?;
    let mut table = Table::new(&[
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ]);
    // The image column, once for each (name given, image) pair: most containers share one,
    // most often with the row before, which is looked at first.
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let mut column_of: HashMap<(&str, &str), usize> = HashMap::new();
    let mut previous: Option<((&str, &str), usize)> = None;
    let columns: Vec<usize> = containers
        .iter()
        .map(|c| {
            let pair = (c.config.image.as_str(), c.image.as_str());
            let column = match previous {
                Some((last, column)) if last == pair => column,
                _ => *column_of.entry(pair).or_insert_with(|| {
                    pairs.push(pair);
                    pairs.len() - 1
                }),
            };
            previous = Some((pair, column));
            column
        })
        .collect();
    let image_columns = image_columns(&tags, &graph, &pairs);
    let now = chrono::Utc::now();
    for (c, column) in containers.iter().zip(columns) {
        let image = &image_columns[column];
        let command = c.command_line();
        let command = if no_trunc {
            command
        } else {
            crate::shapes::ellipsis(&command, 20)
        };
        table.cell(shown_id(&c.id));
        table.cell(image);
        table.cell_fmt(format_args!("{command:?}"));
        table.cell_fmt(Ago { now, t: c.created });
        table.cell(&c.state.status_at(now, human_duration));
        table.cell(&c.network_settings.ports_summary());
        table.cell(&c.name);
        table.end_row();
    }
    for b in &broken {
        table.row(vec![
            shown_id(&b.id).to_string(),
            String::new(),
            String::new(),
            crate::format::ago_from(now, b.created),
            format!("Broken: {}", b.reason()),
            String::new(),
            String::new(),
        ]);
    }
    table.write_to(&mut io::stdout().lock())?;
    // The process ends with this listing: its thousands of allocations go with it, which
    // costs less than freeing them one by one.
    std::mem::forget((image_columns, column_of, pairs));
    std::mem::forget((containers, table));
    Ok(0)
}

/// The image column of `ps` for each `(name given, image id)` pair: the name given while it
/// still names the image (Docker's choice), otherwise another of the image's names, otherwise
/// its short id. A name names an image as `TagStore::lookup` resolves it: a tag first, else
/// a full id or unique id prefix of an image that exists. One pass over the tags for all.
fn image_columns(
    tags: &tagstore::TagStore,
    graph: &graph::Graph,
    pairs: &[(&str, &str)],
) -> Vec<String> {
    let references: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(given, _)| {
            let (repo, tag) = tagstore::split_reference(given);
            (repo, tag.filter(|t| !t.is_empty()).unwrap_or("latest"))
        })
        .collect();
    let images: Vec<&str> = pairs.iter().map(|(_, image)| *image).collect();
    // A damaged tag file names nothing; ids still resolve.
    let found = tags
        .find_names(&references, &images)
        .unwrap_or_else(|_| tagstore::FoundNames {
            named: vec![None; pairs.len()],
            first: vec![None; pairs.len()],
        });
    pairs
        .iter()
        .zip(found.named)
        .zip(found.first)
        .map(|((&(given, image), named), first)| {
            // A full id is never shown as given; a name that is no tag may be an id prefix.
            let names_it = !graph::is_full_id(given)
                && match named {
                    Some(id) => id == image,
                    None => graph.resolve(given).is_ok_and(|found| found.id == image),
                };
            match names_it {
                true => given.to_string(),
                false => first.unwrap_or_else(|| short_id(image).to_string()),
            }
        })
        .collect()
}

/// `dock port`: every mapping as `80/tcp -> 0.0.0.0:49153`, or just the host side of one.
fn port(rt: &Runtime, name: &str, private: Option<&str>) -> anyhow::Result<u8> {
    let c = rt.get(name)?;
    let ports = &c.network_settings.ports;
    let mut out = io::stdout().lock();
    let Some(private) = private else {
        for (key, bindings) in ports {
            for b in bindings {
                writeln!(out, "{key} -> {}:{}", b.host_ip, b.host_port)?;
            }
        }
        return Ok(0);
    };
    let (number, proto) = private.split_once('/').unwrap_or((private, "tcp"));
    let valid = number.parse::<u16>().is_ok_and(|n| n > 0) && matches!(proto, "tcp" | "udp");
    if !valid {
        anyhow::bail!("invalid port {private:?}: expected PORT or PORT/tcp or PORT/udp");
    }
    let key = format!("{number}/{proto}");
    match ports.get(&key) {
        Some(bindings) if !bindings.is_empty() => {
            for b in bindings {
                writeln!(out, "{}:{}", b.host_ip, b.host_port)?;
            }
            Ok(0)
        }
        _ => anyhow::bail!("no public port {key} published for container {name}"),
    }
}

/// `KILL`, `SIGKILL`, `kill` or `9`.
fn parse_signal(s: &str) -> anyhow::Result<i32> {
    runtime::procs::signal_number(s).ok_or_else(|| anyhow::anyhow!("invalid signal: {s}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("sigterm").unwrap(), 15);
        assert_eq!(parse_signal("10").unwrap(), 10);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
    }

    #[test]
    fn run_flag_values_parse_as_docker_parses_them() {
        assert_eq!(parse_cpus("1.5").unwrap(), 1_500_000_000);
        assert_eq!(parse_cpus("0.01").unwrap(), 10_000_000);
        assert_eq!(parse_cpus("2").unwrap(), 2_000_000_000);
        assert_eq!(
            parse_cpus("x").unwrap_err(),
            "failed to parse x as a rational number"
        );
        assert_eq!(parse_memory_swap("-1").unwrap(), -1);
        assert_eq!(parse_memory_swap("1g").unwrap(), 1 << 30);
        assert_eq!(parse_stream("STDOUT").unwrap(), Stream::Stdout);
        assert!(parse_stream("tty").is_err());
        assert_eq!(detach_keys(None).unwrap(), [CTRL_P, CTRL_Q]);
        assert_eq!(detach_keys(Some("ctrl-a,x")).unwrap(), [1, b'x']);
        assert_eq!(
            detach_keys(Some("ctrl-1")).unwrap_err().to_string(),
            "Unknown character: 'ctrl-1'"
        );
    }

    #[test]
    fn options_stop_at_the_image() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(subcommand)]
            command: ContainerCommand,
        }
        let parse = |line: &[&str]| {
            let cli = <Cli as clap::Parser>::try_parse_from(line).unwrap();
            let ContainerCommand::Run(mut args) = cli.command else {
                panic!("not run")
            };
            args.split().unwrap();
            args
        };
        let args = parse(&[
            "dock", "run", "-l", "a=b", "-a", "stdout", "bb", "ls", "-la", "-c",
        ]);
        assert_eq!(args.image, "bb");
        assert_eq!(args.command, ["ls", "-la", "-c"]);
        assert_eq!(args.label, ["a=b"]);
        assert_eq!(args.attach, [Stream::Stdout]);
        let args = parse(&["dock", "run", "-c", "512", "bb", "sh", "-c", "echo hi"]);
        assert_eq!(args.cpu_shares, Some(512));
        assert_eq!(args.command, ["sh", "-c", "echo hi"]);
    }

    #[test]
    fn env_files_read_as_docker_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("env");
        std::fs::write(
            &file,
            "\u{feff}# comment\n\nA=1\n  B= two words \nDOCK_TEST_UNSET_VARIABLE\nC=x=y\r\n",
        )
        .unwrap();
        assert_eq!(
            read_kv_file(&file, true).unwrap(),
            ["A=1", "B= two words ", "C=x=y"]
        );
        assert_eq!(
            read_kv_file(&file, false).unwrap(),
            ["A=1", "B= two words ", "DOCK_TEST_UNSET_VARIABLE", "C=x=y"]
        );
        std::fs::write(&file, "BAD KEY=1\n").unwrap();
        let err = read_kv_file(&file, true).unwrap_err().to_string();
        assert!(err.contains("'BAD KEY' contains whitespaces"), "{err}");
        assert!(read_kv_file(&dir.path().join("missing"), true).is_err());
    }

    #[test]
    fn commands_are_cut_like_docker() {
        assert_eq!(crate::shapes::ellipsis("echo hi", 20), "echo hi");
        assert_eq!(
            crate::shapes::ellipsis("sh -c while true; do sleep 1; done", 20),
            "sh -c while true; d…"
        );
    }
}
