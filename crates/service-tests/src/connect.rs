//! Raw connections to the service: a bare `SOCK_SEQPACKET` socket, below
//! the library's client, for frames no client would send and for clients
//! that stop where a test wants them.

use std::os::fd::OwnedFd;
use std::path::Path;

/// A raw connection to the socket at `path`, or why there is none.
pub fn connect(path: &Path) -> rustix::io::Result<OwnedFd> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let s = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::net::connect(&s, &SocketAddrUnix::new(path)?)?;
    Ok(s)
}

/// A raw connection to the socket at `path`; panics if there is none.
pub fn raw_connect(path: &Path) -> OwnedFd {
    connect(path).unwrap_or_else(|e| panic!("cannot connect to {}: {e}", path.display()))
}
