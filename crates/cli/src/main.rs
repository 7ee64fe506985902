//! `dock`: parse the command line, call the libraries, render their answers.

mod alloc;
mod auth;
mod check;
mod cmds;
mod containers;
mod cp;
mod events;
mod exec;
mod format;
mod images;
mod prune;
mod pull;
mod push;
mod saveload;
mod shapes;
mod system;
mod template;
mod volumes;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use graph::Graph;
use tagstore::TagStore;

/// The state directory when neither `--root` nor `DOCK_ROOT` names one.
const DEFAULT_ROOT: &str = "/var/lib/dock";

#[global_allocator]
static ALLOCATOR: alloc::Allocator = alloc::Allocator;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `dock --version`: Docker's `Docker version X, build Y` form with dock's name and version
/// (clap prints the command's name before it).
pub const VERSION_LINE: &str = concat!(
    "version ",
    env!("CARGO_PKG_VERSION"),
    ", build ",
    env!("DOCK_BUILD_COMMIT")
);

#[derive(Parser)]
#[command(
    name = "dock",
    version = VERSION_LINE,
    about = "A self-sufficient runtime for linux containers",
    disable_version_flag = true
)]
struct Cli {
    /// Print version information and quit
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version)]
    version: Option<bool>,
    /// State directory
    #[arg(
        long,
        env = "DOCK_ROOT",
        default_value = DEFAULT_ROOT,
        global = true,
        help_heading = "Global Options"
    )]
    root: PathBuf,
    /// Show what dock does, step by step
    #[arg(short = 'D', long, global = true, help_heading = "Global Options")]
    debug: bool,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of `run`'s options does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
// Each subcommand's arguments are built only when it is the one run.
#[command(defer = true)]
enum Command {
    #[command(flatten)]
    Image(images::ImageCommand),
    #[command(flatten)]
    Container(containers::ContainerCommand),
    #[command(flatten)]
    Auth(auth::AuthCommand),
    #[command(flatten)]
    Cmds(cmds::CmdsCommand),
    #[command(flatten)]
    Push(push::PushCommand),
    #[command(flatten)]
    Pull(pull::PullCommand),
    /// Manage volumes
    #[command(subcommand)]
    Volume(volumes::VolumeCommand),
    /// Run a command in a running container
    Exec(exec::ExecArgs),
    /// Get real time events from the server
    Events(events::EventsArgs),
    /// Manage containers
    #[command(name = "container", subcommand)]
    ContainerGroup(prune::ContainerGroup),
    /// Manage images
    #[command(name = "image", subcommand)]
    ImageGroup(prune::ImageGroup),
    /// Copy files/folders between a container and the local filesystem
    Cp(cp::CpArgs),
    /// Rename a container
    Rename(cp::RenameArgs),
    /// Manage the store as a whole
    #[command(subcommand)]
    System(system::SystemCommand),
    #[command(flatten)]
    SaveLoad(saveload::SaveLoadCommand),
    /// The per-container monitor (internal; started by run and start)
    #[command(name = runtime::MONITOR_COMMAND, hide = true)]
    Monitor { id: String },
    /// Return low-level information on a container or image
    Inspect(shapes::InspectArgs),
    /// Display system-wide information
    Info {
        /// Format the output using the given Go template
        #[arg(short = 'f', long)]
        format: Option<String>,
    },
    /// Show the dock version information
    Version {
        /// Format the output using the given Go template
        #[arg(short = 'f', long)]
        format: Option<String>,
    },
    /// Serve the Docker Engine API (`dock -d` is Docker 0.1.0's spelling)
    Daemon {
        /// Where to listen: unix:///PATH or tcp://IP:PORT (TCP beyond loopback needs --tlsverify)
        #[arg(short = 'H', long = "host", default_value = api::DEFAULT_HOST)]
        host: String,
        /// Serve TLS on a tcp:// host; implied by --tlsverify
        #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
        tls: Option<bool>,
        /// Serve TLS and demand client certificates signed by --tlscacert
        #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
        tlsverify: Option<bool>,
        /// Trust client certificates signed by this CA [default: $DOCKER_CERT_PATH/ca.pem or ~/.docker/ca.pem]
        #[arg(long, value_name = "PATH")]
        tlscacert: Option<PathBuf>,
        /// The server's TLS certificate [default: $DOCKER_CERT_PATH/cert.pem or ~/.docker/cert.pem]
        #[arg(long, value_name = "PATH")]
        tlscert: Option<PathBuf>,
        /// The server's TLS key [default: $DOCKER_CERT_PATH/key.pem or ~/.docker/key.pem]
        #[arg(long, value_name = "PATH")]
        tlskey: Option<PathBuf>,
    },
}

/// What every command works on: the state directory and the stores in it.
pub struct Context {
    pub root: PathBuf,
}

impl Context {
    /// The image store; the state directory is made private first (it may not exist yet).
    pub fn graph(&self) -> anyhow::Result<Graph> {
        runtime::secure_root(&self.root)?;
        Ok(Graph::open(self.root.join("graph"))?)
    }

    pub fn tags(&self) -> anyhow::Result<TagStore> {
        runtime::secure_root(&self.root)?;
        Ok(TagStore::open(self.root.join("repositories"))?)
    }
}

/// An error that carries the exit status the shell should see.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

fn main() -> ExitCode {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // A container's monitor, started by `run` and `start`: every start waits for it, so it
    // skips building the whole command line (and the log setup, unless it logs).
    if let Some(monitor) = runtime::monitor::Args::parse(args.get(1..).unwrap_or_default()) {
        if monitor.debug {
            init_logging(true);
        }
        return ExitCode::from(runtime::monitor::main(&monitor) as u8);
    }
    if args.get(1).is_some_and(|arg| arg == "-d") {
        args[1] = "daemon".into();
    }
    // `dock run`: the container's monitor starts before the command line is parsed, so that
    // its own start overlaps with that too. `run` uses it only if the parsed command line asks
    // for the same (`Starter::serves`); otherwise it is dropped, and goes.
    let early_starter =
        early_run(&args).and_then(|(root, debug)| runtime::Starter::ahead(&root, debug).ok());
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind;
            let _ = err.print();
            // Docker's CLI exits 125 for a command line it cannot parse; help and version 0.
            return match err.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::from(125),
            };
        }
    };
    init_logging(cli.debug);
    // The daemon and a monitor live on, and their stdout is no listing's.
    let short_command = !matches!(
        cli.command,
        Command::Daemon { .. } | Command::Monitor { .. }
    );
    if short_command {
        alloc::tune_for_short_command();
        die_of_sigpipe_on_closed_stdout();
    }
    let ctx = Context { root: cli.root };
    let result = match cli.command {
        Command::Image(cmd) => images::run(&ctx, cmd),
        Command::Container(cmd) => containers::run(&ctx, cmd, early_starter),
        Command::Auth(cmd) => auth::run(&ctx, cmd),
        Command::Cmds(cmd) => cmds::run(&ctx, cmd),
        Command::Exec(args) => exec::run(&ctx, args),
        Command::Events(args) => events::run(&ctx, args),
        Command::ContainerGroup(cmd) => prune::run_container(&ctx, cmd),
        Command::ImageGroup(cmd) => prune::run_image(&ctx, cmd),
        Command::Cp(args) => cp::run(&ctx, args),
        Command::Rename(args) => cp::rename(&ctx, args),
        Command::System(cmd) => system::run(&ctx, cmd),
        Command::Push(cmd) => push::run(&ctx, cmd),
        Command::Pull(cmd) => pull::run(&ctx, cmd),
        Command::Volume(cmd) => volumes::run(&ctx, cmd),
        Command::SaveLoad(cmd) => saveload::run(&ctx, cmd),
        Command::Monitor { id } => {
            let args = runtime::monitor::Args {
                root: ctx.root.clone(),
                debug: cli.debug,
                id,
            };
            Ok(runtime::monitor::main(&args) as u8)
        }
        Command::Inspect(args) => shapes::inspect(&ctx, &args),
        Command::Info { format: None } => images::info(&ctx),
        Command::Info {
            format: Some(format),
        } => shapes::info(&ctx, &format),
        Command::Daemon {
            host,
            tls,
            tlsverify,
            tlscacert,
            tlscert,
            tlskey,
        } => {
            let tls = api::TlsFlags {
                tls,
                verify: tlsverify,
                ca: tlscacert,
                cert: tlscert,
                key: tlskey,
            }
            .resolve(&api::default_cert_dir());
            api::serve(&ctx.root, &host, tls.as_ref())
                .map(|()| 0)
                .map_err(Into::into)
        }
        Command::Version { format } => shapes::version(format.as_deref()),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if short_command && broken_pipe(err.as_ref()) && stdout_is_closed() {
                die_of_sigpipe();
            }
            eprintln!("Error: {}", error_chain(&err));
            let code = err.downcast_ref::<Failure>().map_or(1, |f| f.code);
            ExitCode::from(code)
        }
    }
}

/// Output to a pipe whose reader is gone (`dock ps -a | head`) ends dock as it ends Docker's
/// CLI: killed by SIGPIPE, with nothing on stderr (the shell shows 141). Rust ignores SIGPIPE,
/// so such a write fails instead: a `print!` panics, a write returns an error. Both are
/// turned into the signal here, only when stdout is what is closed: a write to a monitor's or
/// the daemon's socket that fails still reports its error.
fn die_of_sigpipe_on_closed_stdout() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // std's words for a print! that met EPIPE (a hung-up terminal's EIO is not this).
        let epipe = std::io::Error::from_raw_os_error(libc::EPIPE).to_string();
        let closed_pipe = info
            .payload()
            .downcast_ref::<String>()
            .is_some_and(|message| {
                message.starts_with("failed printing to stdout") && message.ends_with(&epipe)
            });
        if closed_pipe && stdout_is_closed() {
            die_of_sigpipe();
        }
        report(info)
    }));
}

/// Whether `err` or one of its sources is a broken pipe.
pub(crate) fn broken_pipe(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// Whether stdout is a pipe or socket that no one reads any more.
fn stdout_is_closed() -> bool {
    let mut stdout = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd; a zero timeout only looks.
    let ready = unsafe { libc::poll(&mut stdout, 1, 0) };
    ready == 1 && stdout.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

/// Ends the process by SIGPIPE, as the kernel would have had we not ignored it.
fn die_of_sigpipe() -> ! {
    // SAFETY: restoring the default action and raising the signal at this thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    std::process::exit(128 + libc::SIGPIPE)
}

/// For `dock [--root PATH] [-D] run ...`: the state directory and whether it logs, as the
/// global options before `run` (or `DOCK_ROOT`, or the default) say. None for any other
/// command line; options after `run` are for the parsed command line to check.
fn early_run(args: &[std::ffi::OsString]) -> Option<(PathBuf, bool)> {
    let (mut root, mut debug) = (None, false);
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        match arg.to_str()? {
            "run" => {
                let root = root
                    .or_else(|| std::env::var_os("DOCK_ROOT").map(PathBuf::from))
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT));
                return Some((root, debug));
            }
            "--root" => root = Some(PathBuf::from(rest.next()?)),
            "-D" | "--debug" => debug = true,
            other => root = Some(PathBuf::from(other.strip_prefix("--root=")?)),
        }
    }
    None
}

/// The error and its causes, each cause left out when the message above already says it.
pub fn error_chain(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}

fn init_logging(debug: bool) {
    let filter = if debug { "debug" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DOCK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        // Colours only for a terminal: piped or logged, the text stays plain.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .init();
}

// Where image commands meet containers.

/// Containers (ids) created from image `image_id`.
pub fn images_in_use(ctx: &Context, image_id: &str) -> anyhow::Result<Vec<String>> {
    Ok(containers::runtime(ctx)?.images_in_use(image_id)?)
}

pub fn container_count(ctx: &Context) -> anyhow::Result<usize> {
    Ok(containers::runtime(ctx)?.list()?.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn early(line: &[&str]) -> Option<(PathBuf, bool)> {
        let args: Vec<std::ffi::OsString> = line.iter().map(Into::into).collect();
        early_run(&args)
    }

    #[test]
    fn the_early_monitor_is_for_the_global_options_before_run() {
        let default = std::env::var_os("DOCK_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT));
        assert_eq!(early(&["dock", "run", "img"]), Some((default, false)));
        let root = Some((PathBuf::from("/r"), true));
        assert_eq!(early(&["dock", "--root", "/r", "-D", "run", "img"]), root);
        assert_eq!(early(&["dock", "--debug", "--root=/r", "run", "-it"]), root);
        assert_eq!(early(&["dock", "ps", "run"]), None);
        assert_eq!(early(&["dock", "--root"]), None);
        assert_eq!(early(&["dock", "--root", "/r", "-x", "run"]), None);
        assert_eq!(early(&["dock"]), None);
    }
}
