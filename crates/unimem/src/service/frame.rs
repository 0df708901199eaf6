//! One message on the `SOCK_SEQPACKET` socket, with any fds riding along as
//! `SCM_RIGHTS`. Shared by the service and its client.
//!
//! Receiving is bounded: the buffer holds one byte more than the largest
//! message, so an oversized message is seen as truncated (`MSG_TRUNC`)
//! rather than read; the ancillary buffer holds [`MAX_FDS`] fds, and any
//! beyond that are closed by the kernel (`MSG_CTRUNC`). Received fds are
//! close-on-exec and owned, so a frame dropped for any reason closes them.
//! Every send uses `MSG_NOSIGNAL`: a peer that went away is an error, never
//! a SIGPIPE.

use crate::error::{Error, ErrorKind, Result};
use rustix::io::Errno;
use rustix::net::{
    self, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;
use unimem_core::wire::MAX_MESSAGE;

/// A new close-on-exec `SOCK_SEQPACKET` Unix socket.
pub fn socket() -> Result<OwnedFd> {
    net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| Error::with_source(ErrorKind::Io, "cannot create a Unix socket", e.into()))
}

/// The socket address of `path`, or an error that names it.
pub fn address(path: &Path) -> Result<SocketAddrUnix> {
    SocketAddrUnix::new(path).map_err(|e| {
        Error::with_source(
            ErrorKind::InvalidRequest,
            format!(
                "socket path '{}' is too long for a Unix socket",
                path.display()
            ),
            e.into(),
        )
    })
}

/// Fds accepted in one message; more is an error, and this many lets the
/// service see that there were too many.
pub const MAX_FDS: usize = 4;

/// A buffer for one received message.
pub type FrameBuf = [u8; MAX_MESSAGE + 1];

/// What one `recvmsg` brought.
#[derive(Debug)]
pub struct Frame {
    /// Bytes of the message held in the buffer.
    pub len: usize,
    /// The message was longer than [`MAX_MESSAGE`].
    pub oversized: bool,
    /// Fds that came with it.
    pub fds: Vec<OwnedFd>,
    /// More fds came than fit (the kernel closed the rest).
    pub fds_truncated: bool,
}

/// Receives one message. `Ok(None)` is the end of the connection.
pub fn recv(sock: BorrowedFd<'_>, buf: &mut FrameBuf) -> Result<Option<Frame>, Errno> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    loop {
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [IoSliceMut::new(&mut buf[..])];
        let msg = match net::recvmsg(sock, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
            Ok(m) => m,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        };
        let mut fds = Vec::new();
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(it) = m {
                fds.extend(it);
            }
        }
        if msg.bytes == 0 && fds.is_empty() {
            return Ok(None);
        }
        return Ok(Some(Frame {
            len: msg.bytes.min(buf.len()),
            oversized: msg.flags.contains(ReturnFlags::TRUNC) || msg.bytes > MAX_MESSAGE,
            fds,
            fds_truncated: msg.flags.contains(ReturnFlags::CTRUNC),
        }));
    }
}

/// Sends one message, with `fds` as `SCM_RIGHTS` if any.
pub fn send(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), Errno> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(Errno::INVAL);
    }
    let iov = [IoSlice::new(bytes)];
    loop {
        match net::sendmsg(sock, &iov, &mut control, SendFlags::NOSIGNAL) {
            Ok(n) if n == bytes.len() => return Ok(()),
            Ok(_) => return Err(Errno::MSGSIZE),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        }
    }
}
