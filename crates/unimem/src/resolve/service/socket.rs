//! The service's socket as a transport of the wire protocol: connecting
//! (only to a server of the expected uid), one request and its reply at a
//! time with the surface's fd riding along, and the service's refusals
//! turned into errors that name its rule and say what to do.

use crate::error::{Error, ErrorKind, Result};
use crate::resolve::protocol::Transport;
use crate::service::frame::{self, FrameBuf};
use crate::service::rule::{Rule, RULE_BASE};
use rustix::io::Errno;
use rustix::net::{self, sockopt};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;
use unimem_core::iokit::IoReturn;
use unimem_core::wire::{selector, Reply, Request, MAX_MESSAGE};

/// How long the client waits for one reply. Preparing pins every page of
/// the range, which for gigabytes of never-touched memory takes seconds.
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);

/// How to start the service, for messages.
const HOW_TO_START: &str = "start it as root with `sudo unimem serve` (add `--allow-gid GROUP` \
or `--allow-uid UID` to admit users), or `sudo systemctl start unimem`";

/// The service's socket, carrying one request and its reply at a time.
pub struct SocketTransport {
    sock: OwnedFd,
    path: PathBuf,
    buf: Box<FrameBuf>,
}

impl std::fmt::Debug for SocketTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketTransport")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SocketTransport {
    /// The path of the socket this transport is connected to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Connects to the service's socket at `path` and checks that the
    /// process listening there runs as `service_uid`; nothing is sent yet.
    pub fn connect(path: &Path, service_uid: u32) -> Result<SocketTransport> {
        let shown = path.display();
        let sock = frame::socket()?;
        let addr = frame::address(path)?;
        net::connect(&sock, &addr).map_err(|e| {
            let (kind, msg) = match e {
                Errno::NOENT => (
                    ErrorKind::ResolverNotFound,
                    format!("the resolver service is not running (no socket at '{shown}'): {HOW_TO_START}"),
                ),
                Errno::CONNREFUSED => (
                    ErrorKind::ResolverNotFound,
                    format!(
                        "the resolver service is not running (nothing listens on '{shown}', \
                         a stale socket): {HOW_TO_START}"
                    ),
                ),
                Errno::ACCESS | Errno::PERM => (
                    ErrorKind::PermissionDenied,
                    format!(
                        "permission denied connecting to the resolver service at '{shown}': the \
                         socket's mode does not admit you; ask its administrator to start it \
                         with `--allow-uid {}` or `--allow-gid` a group of yours",
                        rustix::process::getuid().as_raw()
                    ),
                ),
                Errno::NOTDIR => (
                    ErrorKind::ResolverNotFound,
                    format!("'{shown}' is not a path to a socket: {HOW_TO_START}"),
                ),
                _ => (
                    ErrorKind::Io,
                    format!("cannot connect to the resolver service at '{shown}'"),
                ),
            };
            Error::with_source(kind, msg, e.into())
        })?;
        check_server(&sock, path, service_uid)?;
        let _ = sockopt::set_socket_timeout(&sock, sockopt::Timeout::Recv, Some(REPLY_TIMEOUT));
        Ok(SocketTransport {
            sock,
            path: path.to_path_buf(),
            buf: Box::new([0; MAX_MESSAGE + 1]),
        })
    }

    /// Sends `req` (with `fd` as `SCM_RIGHTS`, if any) and decodes the
    /// reply; an error reply becomes an [`Error`] that says what refused.
    pub fn call(&mut self, req: &Request, fd: Option<BorrowedFd<'_>>) -> Result<Reply> {
        let sel = req.selector();
        let fds: Vec<BorrowedFd<'_>> = fd.into_iter().collect();
        let sent = frame::send(self.sock.as_fd(), req.as_bytes(), &fds).map_err(|e| {
            Error::with_source(
                ErrorKind::Io,
                format!(
                    "cannot send the {} request to the service",
                    selector::name(sel)
                ),
                e.into(),
            )
        });
        // A service that refuses a connection says why and closes it; the
        // send then fails, but the refusal is still there to be read.
        let sent = match sent {
            Err(e) if matches!(e.os_code(), Some(libc::EPIPE | libc::ECONNRESET)) => Err(e),
            Err(e) => return Err(e),
            Ok(()) => Ok(()),
        };
        // A service that closes a connection with our request unread (a
        // refusal) leaves ECONNRESET pending, reported before the reply it
        // queued; the reply is read on the next try.
        let received = match frame::recv(self.sock.as_fd(), &mut self.buf) {
            Err(Errno::CONNRESET) => frame::recv(self.sock.as_fd(), &mut self.buf),
            other => other,
        };
        let frame = match received {
            Ok(Some(f)) => f,
            // The connection ended with nothing to read: the service
            // stopped, restarted or dropped this connection.
            Ok(None) | Err(Errno::CONNRESET | Errno::PIPE) => {
                let how = match &sent {
                    Err(e) => format!(" ({e})"),
                    Ok(()) => String::new(),
                };
                return Err(Error::new(
                    ErrorKind::ResolverNotFound,
                    format!(
                        "the resolver service at '{}' closed the connection instead of \
                         answering {}{how}: it stopped, restarted or dropped this client \
                         (see its log); connect again, and if it is not running, {HOW_TO_START}",
                        self.path.display(),
                        selector::name(sel)
                    ),
                ));
            }
            Err(Errno::AGAIN) => {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!(
                        "the service did not answer {} within {} s",
                        selector::name(sel),
                        REPLY_TIMEOUT.as_secs()
                    ),
                ))
            }
            Err(e) => {
                return Err(Error::with_source(
                    ErrorKind::Io,
                    "cannot receive the service's reply",
                    e.into(),
                ))
            }
        };
        if frame.oversized || !frame.fds.is_empty() {
            return Err(Error::new(
                ErrorKind::Protocol,
                "the service sent an oversized reply or fds: is it really unimem?",
            ));
        }
        // The service closes a connection that sat idle with nothing
        // prepared, leaving a reply that says so in place of ours.
        if let Ok(h) = unimem_core::wire::Header::parse(&self.buf[..frame.len]) {
            if !h.status().is_success()
                && Rule::from_detail(h.detail.get()) == Some(Rule::IdleTimeout)
            {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!(
                        "the resolver service closed this connection: {}",
                        Rule::IdleTimeout.describe()
                    ),
                ));
            }
        }
        let reply = Reply::decode(sel, &self.buf[..frame.len]).map_err(|e| {
            Error::new(
                ErrorKind::Protocol,
                format!("bad reply from the service: {e}"),
            )
        })?;
        match reply {
            Reply::Status(h) => Err(refusal(sel, h.status(), h.detail.get())),
            r => Ok(r),
        }
    }
}

impl Transport for SocketTransport {
    fn peer(&self) -> &'static str {
        "the resolver service"
    }

    fn call(&mut self, request: &Request, fd: Option<BorrowedFd<'_>>) -> Result<Reply> {
        SocketTransport::call(self, request, fd)
    }
}

/// Refuses a server whose credentials (`SO_PEERCRED`, taken by the kernel
/// when it listened) are not `service_uid`'s.
fn check_server(sock: &OwnedFd, path: &Path, service_uid: u32) -> Result<()> {
    let (pid, uid, _) = crate::service::sys::peer_cred(sock).map_err(|e| {
        Error::with_source(
            ErrorKind::PermissionDenied,
            format!(
                "cannot read the credentials of the service at '{}', so it cannot be trusted \
                 with the surface",
                path.display()
            ),
            e,
        )
    })?;
    if uid != service_uid {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "permission denied: the process listening on '{}' (pid {pid}) runs as uid {uid}, \
                 not uid {service_uid} as the resolver service must: it may be an impostor, so \
                 nothing was sent to it; check who owns that socket and its directory, or pass \
                 --service-uid if the service really runs as uid {uid}",
                path.display()
            ),
        ));
    }
    Ok(())
}

/// Turns an error reply into an error that says who refused and why.
fn refusal(sel: u16, status: IoReturn, detail: u32) -> Error {
    let what = selector::name(sel);
    if let Some(rule) = Rule::from_detail(detail) {
        let kind = match rule {
            Rule::Policy => ErrorKind::PermissionDenied,
            Rule::FdAccess => ErrorKind::PermissionDenied,
            Rule::Connections
            | Rule::PrepareBytes
            | Rule::ConnectionBytes
            | Rule::TotalBytes
            | Rule::Handles => ErrorKind::Resources,
            Rule::UnknownHandle => ErrorKind::NotFound,
            Rule::NotPresent | Rule::NotBacked => ErrorKind::PrepareFailed,
            Rule::SurfaceChanged => ErrorKind::SurfaceChanged,
            Rule::NotShrinkSealed | Rule::WriteSealed => ErrorKind::InvalidRequest,
            Rule::UserConnections | Rule::UserBytes => ErrorKind::Resources,
            Rule::FdKind => ErrorKind::Unsupported,
            _ => ErrorKind::InvalidRequest,
        };
        let hint = match rule {
            Rule::Policy => format!(
                "; you are uid {}: ask the administrator to add `--allow-uid` or `--allow-gid` for you",
                rustix::process::getuid().as_raw()
            ),
            Rule::PrepareBytes => " (the limit is --max-bytes of `unimem serve`; choose a smaller --size)".into(),
            _ => String::new(),
        };
        let denied = if kind == ErrorKind::PermissionDenied {
            "permission denied: "
        } else {
            ""
        };
        return Error::new(
            kind,
            format!(
                "{denied}the resolver service refused {what}: {}{hint} [{status:?}]",
                rule.describe()
            ),
        );
    }
    if detail >= RULE_BASE {
        return Error::new(
            ErrorKind::Protocol,
            format!("the resolver service refused {what} by a rule this client does not know ({detail:#x}) [{status:?}]"),
        );
    }
    let os = (detail != 0).then(|| std::io::Error::from_raw_os_error(detail as i32));
    let kind = match status {
        IoReturn::NOT_PRIVILEGED | IoReturn::NOT_PERMITTED => ErrorKind::PermissionDenied,
        IoReturn::NO_MEMORY | IoReturn::NO_RESOURCES => ErrorKind::Resources,
        IoReturn::BAD_ARGUMENT => ErrorKind::InvalidRequest,
        IoReturn::UNSUPPORTED => ErrorKind::Unsupported,
        IoReturn::NOT_FOUND => ErrorKind::NotFound,
        _ => ErrorKind::PrepareFailed,
    };
    let msg = match (status, &os) {
        (IoReturn::NOT_PRIVILEGED, _) => format!(
            "the resolver service cannot {what}: it cannot see physical addresses (it must run as root with CAP_SYS_ADMIN) [{status:?}]"
        ),
        (_, Some(e)) => format!("the resolver service failed to {what}: {e} [{status:?}]"),
        (_, None) => format!("the resolver service failed to {what}: {} [{status:?}]", status.describe()),
    };
    match os {
        Some(e) => Error::with_source(kind, msg, e),
        None => Error::new(kind, msg),
    }
}
