//! The service client: resolves a surface through `unimem serve`.
//!
//! Connects to the service's `SOCK_SEQPACKET` socket, checks the version
//! with the handshake first, passes the surface's fd with the prepare
//! request (`SCM_RIGHTS`), then fetches the rest of the segments with
//! continuations into a map built from untrusted parts (`PaMap::push_at`
//! checks order, lengths and overflow), and asks for a checksum the service
//! computes through its own mapping. The returned [`Prepared`] holds the
//! connection and the handle: the pages stay pinned until it drops, which
//! sends complete.

use super::{Prepared, RemoteChecksum, Resolver};
use crate::error::{Error, ErrorKind, Result};
use crate::service::frame::{self, FrameBuf};
use crate::service::rule::{Rule, RULE_BASE};
use crate::surface::Surface;
use rustix::io::Errno;
use rustix::net::{self, sockopt};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use unimem_core::iokit::IoReturn;
use unimem_core::wire::{selector, Reply, Request, SegmentBatch, MAX_MESSAGE, VERSION};
use unimem_core::{PaMap, PageSize, Target};

pub use crate::service::DEFAULT_SOCKET;
pub use unimem_core::wire::ServerInfo;

/// How long the client waits for one reply. Preparing pins every page of
/// the range, which for gigabytes of never-touched memory takes seconds.
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);

/// How to start the service, for messages.
const HOW_TO_START: &str = "start it as root with `sudo unimem serve` (add `--allow-gid GROUP` \
or `--allow-uid UID` to admit users), or `sudo systemctl start unimem`";

/// A connection to the service that has passed the handshake.
pub struct ServiceClient {
    sock: OwnedFd,
    path: PathBuf,
    info: ServerInfo,
    buf: Box<FrameBuf>,
}

impl std::fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceClient")
            .field("path", &self.path)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// The uid the service must run as unless told otherwise: root.
pub const DEFAULT_SERVICE_UID: u32 = 0;

impl ServiceClient {
    /// Connects to the service at `path`, checks that it runs as root and
    /// does the handshake.
    pub fn connect(path: &Path) -> Result<ServiceClient> {
        Self::connect_to(path, DEFAULT_SERVICE_UID)
    }

    /// Connects to the service at `path`, checks that the process listening
    /// there runs as `service_uid` (before sending anything, so an impostor
    /// that bound the path gets neither a request nor an fd) and does the
    /// handshake.
    pub fn connect_to(path: &Path, service_uid: u32) -> Result<ServiceClient> {
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
        let mut client = ServiceClient {
            sock,
            path: path.to_path_buf(),
            info: ServerInfo {
                version: 0,
                address_kind: unimem_core::AddressKind::Physical,
                page_size: 0,
                max_segments_per_reply: 0,
                max_prepare_bytes: 0,
                server_version: String::new(),
            },
            buf: Box::new([0; MAX_MESSAGE + 1]),
        };
        let req = Request::Handshake {
            min_version: VERSION,
            max_version: VERSION,
        };
        match client.call(&req, None)? {
            Reply::Handshake(info) if info.version == VERSION => client.info = info,
            Reply::Handshake(info) => {
                return Err(Error::new(
                    ErrorKind::Protocol,
                    format!(
                        "the service at '{shown}' chose protocol version {}, this client speaks {VERSION}",
                        info.version
                    ),
                ))
            }
            other => return Err(unexpected(&other)),
        }
        Ok(client)
    }

    /// What the service said in the handshake.
    pub fn info(&self) -> &ServerInfo {
        &self.info
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends `req` (with `fd` as `SCM_RIGHTS`, if any) and decodes the
    /// reply; an error reply becomes an [`Error`] that says what refused.
    pub fn call(&mut self, req: &Request, fd: Option<BorrowedFd<'_>>) -> Result<Reply> {
        let sel = req.selector();
        let fds: Vec<BorrowedFd<'_>> = fd.into_iter().collect();
        let sent = frame::send(self.sock.as_fd(), &req.encode(), &fds).map_err(|e| {
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
            Reply::Status { status, detail, .. } => Err(refusal(sel, status, detail)),
            r => Ok(r),
        }
    }

    /// Prepares (maps and pins) `[offset, offset + length)` of the file
    /// behind `fd` and fetches every segment. Returns the handle and map.
    pub fn prepare(
        &mut self,
        fd: BorrowedFd<'_>,
        offset: u64,
        length: u64,
    ) -> Result<(u64, PaMap)> {
        let req = Request::Prepare {
            offset,
            length,
            client_va: 0,
            surface_id: 0,
        };
        let first = match self.call(&req, Some(fd))? {
            Reply::Segments { batch, .. } => batch,
            other => return Err(unexpected(&other)),
        };
        let handle = first.handle;
        let page = PageSize::new(first.page_size).ok_or_else(|| {
            Error::new(
                ErrorKind::Protocol,
                format!(
                    "the service's page size {} is not a power of two",
                    first.page_size
                ),
            )
        })?;
        if first.total_length != length || first.start != 0 {
            let _ = self.complete(handle);
            return Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "the service prepared {} bytes from {:#x}, not the {length} asked for",
                    first.total_length, first.start
                ),
            ));
        }
        let mut map = PaMap::new(first.address_kind, page, length);
        let mut batch = first;
        loop {
            if let Err(e) = add_batch(&mut map, &batch, handle, length) {
                let _ = self.complete(handle);
                return Err(e);
            }
            if batch.is_last() {
                break;
            }
            let req = Request::Segments {
                handle,
                continuation: batch.next,
            };
            batch = match self.call(&req, None) {
                Ok(Reply::Segments { batch, .. }) => batch,
                Ok(other) => {
                    let _ = self.complete(handle);
                    return Err(unexpected(&other));
                }
                Err(e) => {
                    let _ = self.complete(handle);
                    return Err(e);
                }
            };
        }
        Ok((handle, map))
    }

    /// The service's checksum of `[offset, offset + length)` of a prepared
    /// range, computed through its own mapping.
    pub fn checksum(&mut self, handle: u64, offset: u64, length: u64) -> Result<u64> {
        match self.call(
            &Request::Checksum {
                handle,
                offset,
                length,
            },
            None,
        )? {
            Reply::Checksum {
                checksum,
                handle: h,
                offset: o,
                length: l,
                algorithm,
            } if h == handle && o == offset && l == length => {
                if algorithm != unimem_core::checksum::ALGORITHM_FNV1A64_WORDS {
                    return Err(Error::new(
                        ErrorKind::Protocol,
                        format!(
                            "the service used checksum algorithm {algorithm}, not FNV-1a words"
                        ),
                    ));
                }
                Ok(checksum)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Releases a prepared range; returns the bytes the service unpinned.
    pub fn complete(&mut self, handle: u64) -> Result<u64> {
        match self.call(&Request::Complete { handle }, None)? {
            Reply::Complete { released_bytes, .. } => Ok(released_bytes),
            other => Err(unexpected(&other)),
        }
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

/// Appends one batch to the map, checking it continues where the map ends.
fn add_batch(map: &mut PaMap, b: &SegmentBatch, handle: u64, total: u64) -> Result<()> {
    if b.handle != handle || b.total_length != total || b.start != map.filled_to() {
        return Err(Error::new(
            ErrorKind::Protocol,
            format!(
                "the service's reply does not continue the map (handle {}, start {:#x}, expected {:#x})",
                b.handle,
                b.start,
                map.filled_to()
            ),
        ));
    }
    if !b.is_last() && b.segments.is_empty() {
        return Err(Error::new(
            ErrorKind::Protocol,
            "the service sent an empty batch before the end",
        ));
    }
    let mut offset = b.start;
    for &(addr, len) in &b.segments {
        // Page frame 0 never backs user memory: an address of 0 is a
        // service that could not see PFNs, never a real segment.
        if addr == 0 {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!("the service sent address 0 for offset {offset:#x}: it cannot see PFNs"),
            ));
        }
        map.push_at(offset, len, Target::Address(addr))
            .map_err(|e| {
                Error::new(
                    ErrorKind::Protocol,
                    format!("bad segment from the service: {e}"),
                )
            })?;
        offset += len;
    }
    Ok(())
}

fn unexpected(r: &Reply) -> Error {
    Error::new(
        ErrorKind::Protocol,
        format!(
            "the service answered with an unexpected {} reply",
            selector::name(r.selector())
        ),
    )
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

/// Which checksums the resolver asks the service for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumPlan {
    /// None.
    None,
    /// One over the whole surface.
    Whole,
}

/// A [`Resolver`] that asks `unimem serve`.
#[derive(Debug)]
pub struct ServiceResolver {
    client: Arc<Mutex<ServiceClient>>,
    plan: ChecksumPlan,
}

impl ServiceResolver {
    /// Connects to the service at `path` (which must run as root) and
    /// checks its version.
    pub fn connect(path: &Path) -> Result<ServiceResolver> {
        Self::connect_to(path, DEFAULT_SERVICE_UID)
    }

    /// Connects to the service at `path`, which must run as `service_uid`,
    /// and checks its version.
    pub fn connect_to(path: &Path, service_uid: u32) -> Result<ServiceResolver> {
        Ok(ServiceResolver {
            client: Arc::new(Mutex::new(ServiceClient::connect_to(path, service_uid)?)),
            plan: ChecksumPlan::Whole,
        })
    }

    /// Chooses which checksums to ask for (default: the whole surface).
    pub fn with_checksums(mut self, plan: ChecksumPlan) -> Self {
        self.plan = plan;
        self
    }

    pub fn info(&self) -> ServerInfo {
        lock(&self.client).info().clone()
    }
}

impl Resolver for ServiceResolver {
    fn name(&self) -> &'static str {
        "service"
    }

    fn describe(&self) -> String {
        let c = lock(&self.client);
        format!(
            "service ({}, {})",
            c.path().display(),
            c.info().server_version
        )
    }

    fn prepare(&mut self, surface: &Surface) -> Result<Prepared> {
        let mut client = lock(&self.client);
        let (handle, map) = client.prepare(surface.fd(), 0, surface.len())?;
        let mut checksums = Vec::new();
        if self.plan == ChecksumPlan::Whole {
            match client.checksum(handle, 0, surface.len()) {
                Ok(value) => checksums.push(RemoteChecksum {
                    offset: 0,
                    length: surface.len(),
                    value,
                }),
                Err(e) => {
                    let _ = client.complete(handle);
                    return Err(e);
                }
            }
        }
        drop(client);
        let hold = Hold {
            client: Arc::clone(&self.client),
            handle,
        };
        Ok(Prepared::new(map, true, checksums, Some(Box::new(hold))))
    }
}

/// Keeps a prepared range alive; completes it on drop.
struct Hold {
    client: Arc<Mutex<ServiceClient>>,
    handle: u64,
}

impl Drop for Hold {
    fn drop(&mut self) {
        // Failure here means the connection is gone, which releases the
        // range anyway.
        let _ = lock(&self.client).complete(self.handle);
    }
}

fn lock(m: &Mutex<ServiceClient>) -> std::sync::MutexGuard<'_, ServiceClient> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Connects (to a service that must run as `service_uid`), does the
/// handshake and returns what the service said, for `unimem info`.
pub fn server_info(path: &Path, service_uid: u32) -> Result<ServerInfo> {
    Ok(ServiceClient::connect_to(path, service_uid)?.info().clone())
}
