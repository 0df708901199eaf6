//! The client of the CybMemDriver DEXT: finds its service by name, opens a
//! connection and speaks the wire protocol over `IOConnectCallStructMethod`,
//! each request the input struct and each reply the output struct of one
//! call. The protocol itself — handshake, prepare, paging, checksum,
//! complete and every check on what the DEXT answers — is the
//! [`ProtocolClient`] the service client shares; this module is the
//! transport and the macOS-specific words for what went wrong.
//!
//! The addresses carry the kind the DEXT reports in its handshake: a DEXT
//! whose DMA commands have no IOMMU parent reports `DmaUnresolved`, never
//! `Physical`.

use crate::lock::lock;
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex};

use unimem_core::iokit::IoReturn;
use unimem_core::wire::{self, Reply, Request};

use super::protocol::{PreparedRange, ProtocolClient, ResolvedRanges, SurfaceRef, Transport};
use super::{Prepared, RemoteChecksum, Resolver};
use crate::apple::{ffi, AppleError, DEXT_NAME};
use crate::error::Result;
use crate::surface::Surface;

/// `IOServiceOpen` type the DEXT's `NewUserClient` accepts.
pub const USER_CLIENT_TYPE: u32 = 0;

/// Ranges one client may hold prepared at a time in the DEXT
/// (`kMaxPrepared` in `dext/portable/session.hpp`); the handshake does not
/// carry it.
pub const MAX_PREPARED_RANGES: usize = 16;

/// One `IOConnectCallStructMethod`: the request bytes in, the reply bytes
/// out.
pub trait StructCall {
    /// Sends `input` with `selector`; returns how many bytes of `output`
    /// the reply filled, or the IOReturn of a call that failed outright.
    fn call_struct(
        &mut self,
        selector: u16,
        input: &[u8],
        output: &mut [u8],
    ) -> std::result::Result<usize, IoReturn>;
}

impl StructCall for ffi::Connection {
    fn call_struct(
        &mut self,
        selector: u16,
        input: &[u8],
        output: &mut [u8],
    ) -> std::result::Result<usize, IoReturn> {
        ffi::Connection::call_struct(self, u32::from(selector), input, output)
    }
}

/// The wire protocol over a connection to the DEXT.
pub struct DextTransport<C = ffi::Connection> {
    connection: C,
}

impl<C> DextTransport<C> {
    /// The connection underneath, for tests to inspect what the DEXT saw.
    pub fn connection(&self) -> &C {
        &self.connection
    }
}

impl<C: StructCall> Transport for DextTransport<C> {
    fn peer(&self) -> &'static str {
        "the DEXT"
    }

    fn call(&mut self, request: &Request, fd: Option<BorrowedFd<'_>>) -> Result<Reply> {
        debug_assert!(fd.is_none(), "the DEXT maps the client's memory itself");
        let sel = request.selector();
        let input = request.as_bytes();
        let mut output = vec![0u8; wire::reply_size(sel).unwrap_or(wire::MAX_MESSAGE)];
        let n = self
            .connection
            .call_struct(sel, input, &mut output)
            .map_err(|status| AppleError::from_call(sel, status))?;
        match Reply::decode(sel, &output[..n]).map_err(AppleError::from)? {
            Reply::Status(h) => Err(AppleError::from_reply(sel, h.status()).into()),
            reply => Ok(reply),
        }
    }
}

/// A connection to CybMemDriver, handshake done.
pub type DextClient<C = ffi::Connection> = ProtocolClient<DextTransport<C>>;

impl ProtocolClient<DextTransport<ffi::Connection>> {
    /// Finds the DEXT's service by name (`IOServiceNameMatching`: the
    /// service's class is IOUserService, so matching by class cannot find
    /// it), opens a connection and checks the version.
    pub fn open() -> Result<Self> {
        let service = ffi::Service::matching_name(c"CybMemDriver").ok_or(AppleError::NotLoaded)?;
        let connection = service
            .open(USER_CLIENT_TYPE)
            .map_err(AppleError::from_open)?;
        Self::over(connection)
    }
}

impl<C: StructCall> ProtocolClient<DextTransport<C>> {
    /// Handshakes over `connection`.
    pub fn over(connection: C) -> Result<Self> {
        ProtocolClient::handshake(DextTransport { connection })
    }

    /// Resolves `length` bytes of this process's memory at `client_va`
    /// (IOSurface `surface_id`) in as many ranges as the DEXT needs.
    pub fn resolve_client_memory(
        &mut self,
        client_va: u64,
        surface_id: u32,
        length: u64,
    ) -> Result<ResolvedRanges> {
        self.resolve_all(
            &SurfaceRef::client_memory(client_va, surface_id),
            length,
            MAX_PREPARED_RANGES,
        )
    }
}

/// A [`Resolver`] that asks the CybMemDriver DEXT: the surface is prepared
/// in as many ranges as the DEXT takes, each vouched for by a checksum the
/// DEXT computes through its own mapping, and kept prepared until the
/// [`Prepared`] drops.
pub struct DextResolver<C = ffi::Connection> {
    client: Arc<Mutex<DextClient<C>>>,
}

impl DextResolver<ffi::Connection> {
    /// Opens a connection to the DEXT and checks its version.
    pub fn open() -> Result<Self> {
        Ok(Self::new(DextClient::open()?))
    }
}

impl<C: StructCall> DextResolver<C> {
    /// A resolver over a connection already through the handshake.
    pub fn new(client: DextClient<C>) -> Self {
        Self {
            client: Arc::new(Mutex::new(client)),
        }
    }

    /// What the DEXT said in the handshake.
    pub fn server(&self) -> wire::HandshakeReply {
        *lock(&self.client).server()
    }
}

impl<C: StructCall + Send + 'static> Resolver for DextResolver<C> {
    fn name(&self) -> &'static str {
        "dext"
    }

    fn describe(&self) -> String {
        let c = lock(&self.client);
        format!(
            "the {DEXT_NAME} DEXT ({}, protocol {})",
            c.server().server_version(),
            c.server().version
        )
    }

    fn prepare(&mut self, surface: &Surface) -> Result<Prepared> {
        let mut client = lock(&self.client);
        let va = surface.addr().0;
        let resolved =
            client.resolve_client_memory(va, surface.id().unwrap_or(0), surface.len())?;
        let mut checksums = Vec::with_capacity(resolved.ranges.len());
        for r in &resolved.ranges {
            match client.checksum(r.handle, 0, r.length) {
                Ok(value) => checksums.push(RemoteChecksum {
                    offset: r.offset,
                    length: r.length,
                    value,
                }),
                Err(e) => {
                    let _ = client.complete_all(&resolved.ranges);
                    return Err(e);
                }
            }
        }
        drop(client);
        let hold = Hold {
            client: Arc::clone(&self.client),
            ranges: resolved.ranges,
        };
        // The DEXT keeps its DMA commands prepared (pages wired) until the
        // ranges are completed or the connection closes.
        Ok(Prepared::new(resolved.map, true, Some(Box::new(hold))).with_checksums(checksums))
    }
}

/// Keeps the prepared ranges alive; completes them on drop.
struct Hold<C: StructCall> {
    client: Arc<Mutex<DextClient<C>>>,
    ranges: Vec<PreparedRange>,
}

impl<C: StructCall> Drop for Hold<C> {
    fn drop(&mut self) {
        // Closing the connection would release them too; completing first
        // keeps the DEXT's log honest about who released what.
        let _ = lock(&self.client).complete_all(&self.ranges);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::resolve::protocol::tests::{fake, FakePeer};
    use crate::ErrorKind;

    /// The fake resolver behind IOKit's calling convention: request bytes
    /// in, reply bytes out.
    impl StructCall for FakePeer {
        fn call_struct(
            &mut self,
            _selector: u16,
            input: &[u8],
            output: &mut [u8],
        ) -> std::result::Result<usize, IoReturn> {
            let request = Request::decode(input).map_err(|_| IoReturn::BAD_ARGUMENT)?;
            let bytes = self.answer(&request).encode();
            output[..bytes.len()].copy_from_slice(&bytes);
            Ok(bytes.len())
        }
    }

    #[test]
    fn the_dexts_refusals_keep_their_macos_words() {
        let mut f = fake();
        f.fail_prepare = Some((0, IoReturn::CANNOT_WIRE));
        let mut c = DextClient::over(f).unwrap();
        let e = c
            .resolve_client_memory(0x1_0000_0000, 1, 16384)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PrepareFailed);
        assert!(e.to_string().contains("could not prepare"), "{e}");
        assert!(e.to_string().contains("0xe00002de"), "{e}");
    }

    fn surface(len: u64) -> Surface {
        #[cfg(target_os = "linux")]
        let backing = crate::surface::Backing::Memfd;
        #[cfg(target_os = "macos")]
        let backing = crate::surface::Backing::IoSurface;
        crate::surface::create(len, backing).unwrap()
    }

    #[test]
    fn a_split_surface_gets_one_checksum_per_range_and_stays_prepared() {
        use crate::resolve::protocol::tests::{fake_with, run, PAGE};
        let s = surface(5 * PAGE);
        let mut r =
            DextResolver::new(DextClient::over(fake_with(run(0x10000, 5), 2 * PAGE)).unwrap());
        let p = r.prepare(&s).unwrap();
        assert!(p.pinned && p.checksums_required);
        assert_eq!(p.map.segments().len(), 1);
        let spans: Vec<(u64, u64)> = p.checksums.iter().map(|c| (c.offset, c.length)).collect();
        assert_eq!(
            spans,
            vec![(0, 2 * PAGE), (2 * PAGE, 2 * PAGE), (4 * PAGE, PAGE)]
        );
        assert_eq!(lock(&r.client).transport().connection().live.len(), 3);
        drop(p);
        assert!(lock(&r.client).transport().connection().live.is_empty());
    }

    #[test]
    fn a_failed_checksum_completes_every_range() {
        use crate::resolve::protocol::tests::{fake_with, run, PAGE};
        let s = surface(4 * PAGE);
        let mut f = fake_with(run(0x10000, 4), 2 * PAGE);
        f.fail_checksum = Some(IoReturn::IO_ERROR);
        let mut r = DextResolver::new(DextClient::over(f).unwrap());
        let e = r.prepare(&s).unwrap_err();
        assert!(e.to_string().contains("the DEXT rejected checksum"), "{e}");
        let c = lock(&r.client);
        assert_eq!(c.transport().connection().completed, vec![7, 8]);
        assert!(c.transport().connection().live.is_empty());
    }

    #[test]
    fn resolves_through_struct_calls() {
        let mut c = DextClient::over(fake()).unwrap();
        let r = c
            .resolve_client_memory(0x1_0000_0000, 1, 5 * 16384)
            .unwrap();
        assert_eq!(r.map.mapped_bytes(), 5 * 16384);
        assert_eq!(c.transport().connection().live.len(), 1);
        c.complete_all(&r.ranges).unwrap();
        assert!(c.transport().connection().live.is_empty());
    }
}
