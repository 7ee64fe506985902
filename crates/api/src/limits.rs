//! What a client may hold of the server: how long it may take to send a request's headers
//! (an idle keep-alive connection counts as sending its next request) or the next part of a
//! request body, and how many connections may be open at once.

use std::sync::OnceLock;
use std::time::Duration;

/// Read timeout when `DOCK_API_READ_TIMEOUT_MS` does not set one (hyper's header default).
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Descriptors kept free of connections for everything else the daemon opens.
const RESERVED_FDS: u64 = 256;
/// The fewest connections served at once, whatever the descriptor limit.
const MIN_CONNECTIONS: u64 = 16;

/// The read timeout: `DOCK_API_READ_TIMEOUT_MS` (milliseconds, > 0), else the default.
pub fn read_timeout() -> Duration {
    static TIMEOUT: OnceLock<Duration> = OnceLock::new();
    *TIMEOUT
        .get_or_init(|| parse_timeout(std::env::var("DOCK_API_READ_TIMEOUT_MS").ok().as_deref()))
}

fn parse_timeout(value: Option<&str>) -> Duration {
    match value.map(|v| v.trim().parse::<u64>()) {
        Some(Ok(ms)) if ms > 0 => Duration::from_millis(ms),
        Some(_) => {
            tracing::warn!("DOCK_API_READ_TIMEOUT_MS is not a positive number of milliseconds: using the default");
            DEFAULT_READ_TIMEOUT
        }
        None => DEFAULT_READ_TIMEOUT,
    }
}

/// Connections served at once: what the descriptor limit leaves after a reserve, so the
/// accept loop waits instead of failing with EMFILE.
pub fn max_connections() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we pass.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur
    } else {
        1024
    };
    connections_for(soft)
}

fn connections_for(soft_fd_limit: u64) -> usize {
    soft_fd_limit
        .saturating_sub(RESERVED_FDS)
        .clamp(MIN_CONNECTIONS, 1 << 20) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_comes_from_the_environment_or_defaults() {
        assert_eq!(parse_timeout(None), DEFAULT_READ_TIMEOUT);
        assert_eq!(parse_timeout(Some("250")), Duration::from_millis(250));
        assert_eq!(parse_timeout(Some("0")), DEFAULT_READ_TIMEOUT);
        assert_eq!(parse_timeout(Some("soon")), DEFAULT_READ_TIMEOUT);
    }

    #[test]
    fn connections_leave_descriptors_for_the_rest() {
        assert_eq!(connections_for(1024), 768);
        assert_eq!(connections_for(100), 16);
        assert_eq!(connections_for(u64::MAX), 1 << 20);
    }
}
