//! A network namespace made ahead of a container's start, on a thread of its own.
//!
//! Creating a network namespace takes the kernel about half a millisecond on the development
//! machine (every per-namespace subsystem sets up its part): most of what a clone with all of a
//! container's namespaces costs. Made on a thread while the caller mounts the rootfs and
//! creates the cgroup, it is off the start's path; [`spawn`](crate::spawn) then clones the init
//! into it (see [`InitSpec::netns`](crate::InitSpec::netns)).

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::mpsc::{self, Receiver};

/// A network namespace being made, with its loopback up.
#[derive(Debug)]
pub struct NetnsAhead(Receiver<io::Result<OwnedFd>>);

impl NetnsAhead {
    /// Starts making the namespace on a thread of its own.
    pub fn start() -> io::Result<NetnsAhead> {
        let (made, namespace) = mpsc::sync_channel(1);
        // Not joined: [`NetnsAhead::get`] waits for the namespace, not for the thread's end.
        std::thread::Builder::new()
            .name("netns".into())
            .spawn(move || {
                let _ = made.send(make());
            })?;
        Ok(NetnsAhead(namespace))
    }

    /// The namespace, once made.
    pub fn get(self) -> io::Result<OwnedFd> {
        self.0.recv().unwrap_or_else(|_| {
            Err(io::Error::other(
                "the thread making a network namespace ended without one",
            ))
        })
    }
}

/// Runs on a thread of its own, which it leaves in the new namespace (and which ends then).
fn make() -> io::Result<OwnedFd> {
    // SAFETY: unshares this thread's own network namespace; other threads keep theirs.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let netns = File::open("/proc/thread-self/ns/net")?;
    loopback_up()?;
    Ok(netns.into())
}

/// Brings up `lo` in the calling thread's network namespace.
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: a plain datagram socket, closed by OwnedFd.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS with a valid ifreq naming lo.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Moves the calling thread into network namespace `netns`; returns the one it was in, for
/// [`leave`].
pub fn enter(netns: &OwnedFd) -> io::Result<OwnedFd> {
    let own = File::open("/proc/thread-self/ns/net")?;
    // SAFETY: setns with a namespace descriptor we hold open.
    if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(own.into())
}

/// Returns the calling thread to the namespace [`enter`] took it from. A thread that cannot
/// would do every later network step in the wrong namespace: the process aborts instead.
pub fn leave(own: OwnedFd) {
    // SAFETY: setns with a namespace descriptor we hold open.
    if unsafe { libc::setns(own.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
        let e = io::Error::last_os_error();
        tracing::error!(error = %e, "cannot return to the host network namespace");
        std::process::abort();
    }
}

/// Runs `f` with the calling thread in network namespace `netns`, then returns it to the one
/// it was in. Not around a fork-like clone: its child would return too, and leave.
pub fn within<T>(netns: &OwnedFd, f: impl FnOnce() -> T) -> io::Result<T> {
    let own = enter(netns)?;
    let out = f();
    leave(own);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn netns_inode(path: &str) -> u64 {
        std::fs::metadata(path).unwrap().ino()
    }

    /// A namespace made ahead is a new one with lo up, and `within` runs in it and comes back.
    #[test]
    fn made_ahead_with_lo_up_and_entered_for_a_moment() {
        let host = netns_inode("/proc/thread-self/ns/net");
        let netns = NetnsAhead::start().unwrap().get().unwrap();
        let made = netns_inode(&format!("/proc/self/fd/{}", netns.as_raw_fd()));
        assert_ne!(made, host);
        let (inside, echoed) = within(&netns, || {
            // A datagram to ourselves over 127.0.0.1 arrives only with lo up.
            let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            sock.send_to(b"x", sock.local_addr().unwrap()).unwrap();
            let mut buf = [0u8; 1];
            let echoed = sock.recv(&mut buf).is_ok() && buf == *b"x";
            (netns_inode("/proc/thread-self/ns/net"), echoed)
        })
        .unwrap();
        assert_eq!(inside, made);
        assert!(echoed, "lo is up in the namespace made ahead");
        assert_eq!(netns_inode("/proc/thread-self/ns/net"), host);
    }
}
