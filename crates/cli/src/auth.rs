//! `login` and `logout`: credentials in the Docker client's `config.json`, checked against the
//! registry before they are stored.

use std::io::{self, BufRead, IsTerminal, Read, Write};

use anyhow::{bail, Context as _};
use clap::Subcommand;
use registry::{Client, Credentials, Login, RegistryConfig};

use crate::Context;

#[derive(Subcommand)]
// Each subcommand's arguments are built only when it is the one run.
#[command(defer = true)]
pub enum AuthCommand {
    /// Log in to a registry
    Login {
        /// The registry (host[:port]); the root's default-registry when left out
        server: Option<String>,
        /// Username
        #[arg(short, long)]
        username: Option<String>,
        /// Password (prefer --password-stdin)
        #[arg(short, long)]
        password: Option<String>,
        /// Take the password from stdin
        #[arg(long)]
        password_stdin: bool,
    },
    /// Log out from a registry
    Logout {
        /// The registry (host[:port]); the root's default-registry when left out
        server: Option<String>,
    },
}

pub fn run(ctx: &Context, cmd: AuthCommand) -> anyhow::Result<u8> {
    match cmd {
        AuthCommand::Login {
            server,
            username,
            password,
            password_stdin,
        } => login(ctx, server, username, password, password_stdin),
        AuthCommand::Logout { server } => logout(ctx, server),
    }
}

/// The Docker client's credentials file.
pub fn credentials() -> anyhow::Result<Credentials> {
    let path = Credentials::default_path()
        .context("neither DOCKER_CONFIG nor HOME is set: no place for credentials")?;
    Ok(Credentials::at(path))
}

/// `server` as given, else the root's default registry.
fn server_or_default(config: &RegistryConfig, server: Option<String>) -> anyhow::Result<String> {
    if let Some(s) = server {
        return Ok(s);
    }
    match &config.default_registry {
        Some(d) => Ok(d.clone()),
        None => bail!(
            "no registry given and no default registry is configured: name one \
             (dock login HOST[:PORT]) or set \"default-registry\" in {}",
            config.source.as_ref().map_or_else(
                || "the root's config.json".into(),
                |p| p.display().to_string()
            )
        ),
    }
}

fn login(
    ctx: &Context,
    server: Option<String>,
    username: Option<String>,
    password: Option<String>,
    password_stdin: bool,
) -> anyhow::Result<u8> {
    let config = RegistryConfig::load(&ctx.root)?;
    let server = server_or_default(&config, server)?;
    let creds = credentials()?;
    if password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        if password_stdin {
            bail!("--password and --password-stdin are mutually exclusive");
        }
    }
    let client = Client::new(config, None);
    // Nothing given: the stored login, when it still works, as Docker does.
    if username.is_none() && password.is_none() && !password_stdin {
        if let Some(stored) = creds.get(&server)? {
            println!("Authenticating with existing credentials...");
            if client.login(&server, stored).is_ok() {
                println!("Login Succeeded");
                return Ok(0);
            }
        }
    }
    let username = match username {
        Some(u) => u,
        None if password_stdin => bail!("must provide --username with --password-stdin"),
        None => prompt("Username: ")?,
    };
    if username.is_empty() {
        bail!("username is empty");
    }
    let password = match password {
        Some(p) => p,
        None if password_stdin => {
            let mut text = String::new();
            io::stdin()
                .read_to_string(&mut text)
                .context("read the password from stdin")?;
            text.trim_end_matches(['\n', '\r']).to_string()
        }
        None => prompt_secret("Password: ")?,
    };
    if password.is_empty() {
        bail!("password is empty");
    }
    let login = Login { username, password };
    client.login(&server, login.clone())?;
    creds.store(&server, &login)?;
    println!("Login Succeeded");
    Ok(0)
}

fn logout(ctx: &Context, server: Option<String>) -> anyhow::Result<u8> {
    let config = RegistryConfig::load(&ctx.root)?;
    let server = server_or_default(&config, server)?;
    let host = registry::reference::auth_key(&server);
    if credentials()?.erase(&server)? {
        println!("Removing login credentials for {host}");
    } else {
        println!("Not logged in to {host}");
    }
    Ok(0)
}

/// One line from the terminal; an interactive login needs one.
fn prompt(label: &str) -> anyhow::Result<String> {
    if !io::stdin().is_terminal() {
        bail!("cannot perform an interactive login from a non TTY device: use --username and --password-stdin");
    }
    print!("{label}");
    io::stdout().flush()?;
    let mut line = String::new();
    io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_string())
}

/// A line read with the terminal's echo off.
fn prompt_secret(label: &str) -> anyhow::Result<String> {
    if !io::stdin().is_terminal() {
        bail!("cannot perform an interactive login from a non TTY device: use --password-stdin");
    }
    print!("{label}");
    io::stdout().flush()?;
    let fd = libc::STDIN_FILENO;
    // SAFETY: termios is plain data, filled by tcgetattr before use.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is stdin, a terminal; saved points to a termios.
    let have_termios = unsafe { libc::tcgetattr(fd, &mut saved) } == 0;
    if have_termios {
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        quiet.c_lflag |= libc::ECHONL;
        // SAFETY: as above, with a termios derived from the saved one.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let mut line = String::new();
    let read = io::stdin().lock().read_line(&mut line);
    if have_termios {
        // SAFETY: restores what tcgetattr returned.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    }
    read.context("read the password")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
