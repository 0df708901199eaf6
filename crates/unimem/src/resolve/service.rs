//! The service client: resolves a surface through `unimem serve`.
//!
//! [`SocketTransport`] carries the wire protocol over the service's
//! `SOCK_SEQPACKET` socket, the surface's fd riding with the prepare
//! request (`SCM_RIGHTS`), and turns the service's refusals into errors
//! that name its rule. Everything else — the handshake, paging through
//! continuations, the checks on every reply, checksum and complete — is the
//! [`ProtocolClient`] every resolver shares. The [`Prepared`] a
//! [`ServiceResolver`] returns holds the connection and the handle: the
//! pages stay pinned until it drops, which sends complete.

use super::protocol::{ProtocolClient, SurfaceRef};
use super::{Prepared, RemoteChecksum, Resolver};
use crate::error::Result;
use crate::lock::lock;
use crate::surface::Surface;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::sync::{Arc, Mutex};
use unimem_core::PaMap;

pub use crate::service::DEFAULT_SOCKET;
pub use socket::SocketTransport;
pub use unimem_core::wire::HandshakeReply;

mod socket;

/// A connection to the service that has passed the handshake.
pub type ServiceClient = ProtocolClient<SocketTransport>;

/// The uid the service must run as unless told otherwise: root.
pub const DEFAULT_SERVICE_UID: u32 = 0;

impl ProtocolClient<SocketTransport> {
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
        ProtocolClient::handshake(SocketTransport::connect(path, service_uid)?)
    }

    /// What the service said in the handshake.
    pub fn info(&self) -> &HandshakeReply {
        self.server()
    }

    /// The socket this client is connected to.
    pub fn path(&self) -> &Path {
        self.transport().path()
    }

    /// Prepares (maps and pins) `[offset, offset + length)` of the file
    /// behind `fd` and fetches every segment. Returns the handle and map.
    pub fn prepare(
        &mut self,
        fd: BorrowedFd<'_>,
        offset: u64,
        length: u64,
    ) -> Result<(u64, PaMap)> {
        let p = self.prepare_range(&SurfaceRef::fd(fd), offset, length)?;
        Ok((p.handle, p.map))
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

    /// What the service said in the handshake: its address kind, page
    /// size and limits.
    pub fn info(&self) -> HandshakeReply {
        *lock(&self.client).info()
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
            c.info().server_version()
        )
    }

    fn prepare(&mut self, surface: &Surface) -> Result<Prepared> {
        let mut client = lock(&self.client);
        let (handle, map) = client.prepare(surface.fd(), 0, surface.len())?;
        let checksums = if self.plan == ChecksumPlan::Whole {
            match client.checksum(handle, 0, surface.len()) {
                Ok(value) => Some(vec![RemoteChecksum {
                    offset: 0,
                    length: surface.len(),
                    value,
                }]),
                Err(e) => {
                    let _ = client.complete(handle);
                    return Err(e);
                }
            }
        } else {
            None
        };
        drop(client);
        let hold = Hold {
            client: Arc::clone(&self.client),
            handle,
        };
        let prepared = Prepared::new(map, true, Some(Box::new(hold)));
        Ok(match checksums {
            Some(c) => prepared.with_checksums(c),
            None => prepared,
        })
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

/// Connects (to a service that must run as `service_uid`), does the
/// handshake and returns what the service said, for `unimem info`.
pub fn server_info(path: &Path, service_uid: u32) -> Result<HandshakeReply> {
    Ok(*ServiceClient::connect_to(path, service_uid)?.info())
}
