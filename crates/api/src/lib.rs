//! The Docker Engine API server: `dock daemon`.
//!
//! HTTP/1.1 on a unix socket (or TCP when asked, with TLS) that the real `docker` CLI talks to. This crate
//! holds no container or image logic of its own: it routes requests, calls `graph`, `tagstore`
//! and `runtime` from blocking tasks, and frames their answers (JSON, JSON-message streams,
//! multiplexed attach and log streams). Every dock command and the daemon share one state
//! directory, so what one of them does, the other sees.

mod auth;
mod body;
mod cmds;
mod containers;
mod content;
mod copy;
mod create;
mod error;
mod events;
mod exec;
pub mod filters;
mod images;
mod limits;
mod listen;
mod monitor;
mod prune;
mod push;
mod query;
mod router;
mod runs;
mod saveload;
mod server;
pub mod shapes;
mod state;
mod stream;
mod strict;
mod system;
#[cfg(test)]
mod test_support;
mod tls;
mod update;
mod volumes;

pub use error::{Error, Result};
pub use listen::Listen;
pub use server::serve;
pub use tls::{default_cert_dir, Exposure, TlsError, TlsFlags, TlsOptions};

/// The API version this server speaks; the CLI negotiates down to it.
pub const API_VERSION: &str = "1.44";
/// The oldest API version a client may ask for.
pub const MIN_API_VERSION: &str = "1.24";
/// dock's own version, shown by `docker version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Where `dock daemon` listens when not told otherwise.
pub const DEFAULT_HOST: &str = "unix:///run/dock.sock";
