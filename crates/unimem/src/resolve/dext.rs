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

use std::os::fd::BorrowedFd;

use unimem_core::iokit::IoReturn;
use unimem_core::wire::{self, Reply, Request};

use super::protocol::{ProtocolClient, ResolvedRanges, SurfaceRef, Transport};
use crate::apple::{ffi, AppleError, IoSurface};
use crate::error::Result;

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
        let input = request.encode();
        let mut output = vec![0u8; wire::reply_size(sel).unwrap_or(wire::MAX_MESSAGE)];
        let n = self
            .connection
            .call_struct(sel, &input, &mut output)
            .map_err(|status| AppleError::from_call(sel, status))?;
        match Reply::decode(sel, &output[..n]).map_err(AppleError::from)? {
            Reply::Status { status, .. } => Err(AppleError::from_reply(sel, status).into()),
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

    /// Prepares the whole surface, in as many ranges as the DEXT needs, and
    /// collects its segments into one map.
    pub fn resolve(&mut self, surface: &IoSurface) -> Result<ResolvedRanges> {
        self.resolve_client_memory(surface.base_address(), surface.id(), surface.len())
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
