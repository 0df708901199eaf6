//! The seed experiment on macOS as a library call: create an IOSurface,
//! write the page-indexed pattern, open the CybMemDriver DEXT (handshake
//! first), prepare the whole surface (in consecutive ranges no longer than
//! the DEXT accepts in one prepare) and collect every segment into one map,
//! ask the DEXT for a checksum of each range through its own mapping, then
//! verify coverage, the pattern and the checksums.
//!
//! The outcome keeps the connection and the surface alive, so the
//! addresses stay valid (the DEXT keeps its DMA commands prepared) until
//! it is dropped: then every range is completed, the connection closed,
//! and only then the surface unlocked and released.

use unimem_core::addr::PageSize;
use unimem_core::map::PaMap;
use unimem_core::pattern::{Pattern, Verification};
use unimem_core::wire::ServerInfo;
use unimem_core::Coverage;

use super::error::AppleError;
use super::ffi;
use super::iosurface::IoSurface;
use crate::check::ChecksumCheck;
use crate::error::Result;
use crate::resolve::dext::{DextClient, StructCall};
use crate::resolve::protocol::PreparedRange;

/// The steps a probe reports as it goes, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    CreatingSurface {
        size: u64,
    },
    SurfaceReady {
        id: u32,
        addr: u64,
        len: u64,
        page_size: u64,
    },
    WritingPattern {
        salt: u64,
    },
    Connecting,
    Connected {
        server_version: String,
        protocol: u16,
    },
    Requesting {
        len: u64,
    },
    Verifying,
}

/// What resolving and checking the surface found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The ranges the DEXT holds prepared, consecutive, in order.
    pub ranges: Vec<PreparedRange>,
    /// The segments of the whole surface, labelled with the address kind
    /// the DEXT reported.
    pub map: PaMap,
    pub integrity: Verification,
    pub checksums: Vec<ChecksumCheck>,
}

impl Resolved {
    /// Coverage full, pattern intact, one checksum per range and every
    /// checksum equal.
    pub fn verified(&self) -> bool {
        self.map.coverage() == Coverage::Full
            && self.integrity.ok()
            && !self.checksums.is_empty()
            && self.checksums.iter().all(ChecksumCheck::ok)
    }
}

/// Everything a probe found, with the surface and the connection that keep
/// the addresses valid.
pub struct DextProbe {
    pub resolved: Resolved,
    pub pattern: Pattern,
    pub server: ServerInfo,
    pub surface_id: u32,
    pub surface_va: u64,
    pub surface_len: u64,
    // Drop order: the connection closes before the surface is unlocked.
    client: DextClient,
    surface: IoSurface,
}

impl DextProbe {
    pub fn verified(&self) -> bool {
        self.resolved.verified()
    }

    /// The surface's bytes as the CPU sees them now.
    pub fn bytes(&self) -> &[u8] {
        self.surface.bytes()
    }
}

impl Drop for DextProbe {
    fn drop(&mut self) {
        // Closing the connection would release them too; completing first
        // keeps the DEXT's log honest about who released what.
        let _ = self.client.complete_all(&self.resolved.ranges);
    }
}

impl std::fmt::Debug for DextProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DextProbe")
            .field("resolved", &self.resolved)
            .field("server", &self.server)
            .field("surface", &self.surface)
            .finish()
    }
}

/// The VM page size from the OS (16 KiB on Apple Silicon, 4 KiB on Intel).
pub fn os_page_size() -> Result<PageSize> {
    Ok(ffi::page_size()
        .and_then(PageSize::new)
        .ok_or(AppleError::Mismatch(
            "sysconf(_SC_PAGESIZE) did not give a power of two",
        ))?)
}

/// Runs the probe on a surface of `size` bytes rounded up to whole pages.
pub fn probe(size: u64, salt: u64, mut step: impl FnMut(Step)) -> Result<DextProbe> {
    let page = os_page_size()?;
    let len = page
        .round_up(size)
        .filter(|&n| n > 0)
        .ok_or_else(|| AppleError::SurfaceSize {
            length: size,
            reason: "not a positive size that whole pages can hold".into(),
        })?;

    step(Step::CreatingSurface { size: len });
    let mut surface = IoSurface::create(len)?;
    step(Step::SurfaceReady {
        id: surface.id(),
        addr: surface.base_address(),
        len: surface.len(),
        page_size: page.bytes(),
    });

    step(Step::WritingPattern { salt });
    let pattern = Pattern::new(page, salt);
    pattern.fill(0, surface.bytes_mut());

    step(Step::Connecting);
    let mut client = DextClient::open()?;
    let server = client.server().clone();
    step(Step::Connected {
        server_version: server.server_version.clone(),
        protocol: server.version,
    });

    step(Step::Requesting { len });
    let resolved = resolve_and_verify(
        &mut client,
        surface.base_address(),
        surface.id(),
        surface.bytes(),
        &pattern,
        &mut step,
    )?;
    Ok(DextProbe {
        resolved,
        pattern,
        server,
        surface_id: surface.id(),
        surface_va: surface.base_address(),
        surface_len: surface.len(),
        client,
        surface,
    })
}

/// Prepares `bytes` (the client memory at `client_va`) through the DEXT in
/// as many ranges as it needs, collects every segment into one map and a
/// checksum of each range, and checks them against `pattern`. On a failure
/// midway, every range prepared so far is completed before the error is
/// returned.
pub fn resolve_and_verify<C: StructCall>(
    client: &mut DextClient<C>,
    client_va: u64,
    surface_id: u32,
    bytes: &[u8],
    pattern: &Pattern,
    step: &mut impl FnMut(Step),
) -> Result<Resolved> {
    let len = bytes.len() as u64;
    let resolved = client.resolve_client_memory(client_va, surface_id, len)?;
    let mut checksums = Vec::with_capacity(resolved.ranges.len());
    for r in &resolved.ranges {
        match client.checksum(r.handle, 0, r.length) {
            Ok(value) => checksums.push(ChecksumCheck::against(bytes, r.offset, r.length, value)),
            Err(e) => {
                let _ = client.complete_all(&resolved.ranges);
                return Err(e);
            }
        }
    }
    step(Step::Verifying);
    Ok(Resolved {
        ranges: resolved.ranges,
        map: resolved.map,
        integrity: pattern.verify(0, bytes),
        checksums,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::protocol::tests::{fake, fake_with, run};
    use unimem_core::addr::AddressKind;

    #[test]
    fn a_dext_probe_reports_the_kind_and_checks_the_checksum() {
        let page = PageSize::new(16384).unwrap();
        let pattern = Pattern::new(page, 0x55);
        let mut bytes = vec![0u8; 5 * 16384];
        pattern.fill(0, &mut bytes);
        let mut client = DextClient::over(fake()).unwrap();
        let mut steps = Vec::new();
        let r = resolve_and_verify(&mut client, 0x1_0000_0000, 3, &bytes, &pattern, &mut |s| {
            steps.push(s)
        })
        .unwrap();
        assert_eq!(steps, vec![Step::Verifying]);
        assert_eq!(r.map.kind(), AddressKind::DmaUnresolved);
        assert_eq!(r.map.coverage(), Coverage::Full);
        assert!(r.integrity.ok());
        // The fake's checksum is a constant, so it must not verify.
        assert_eq!(r.checksums.len(), 1);
        assert!(!r.checksums[0].ok());
        assert!(!r.verified());
    }

    #[test]
    fn a_split_surface_gets_one_checksum_per_range() {
        let page = PageSize::new(16384).unwrap();
        let pattern = Pattern::new(page, 0x55);
        let mut bytes = vec![0u8; 5 * 16384];
        pattern.fill(0, &mut bytes);
        let mut client = DextClient::over(fake_with(run(0x10000, 5), 2 * 16384)).unwrap();
        let r = resolve_and_verify(&mut client, 0x1_0000_0000, 3, &bytes, &pattern, &mut |_| {})
            .unwrap();
        assert_eq!(r.ranges.len(), 3);
        assert_eq!(r.map.coverage(), Coverage::Full);
        assert_eq!(r.map.segments().len(), 1);
        let spans: Vec<(u64, u64)> = r.checksums.iter().map(|c| (c.offset, c.length)).collect();
        assert_eq!(
            spans,
            vec![(0, 2 * 16384), (2 * 16384, 2 * 16384), (4 * 16384, 16384)]
        );
        assert_eq!(client.transport().connection().live.len(), 3);
    }

    #[test]
    fn a_failed_checksum_completes_every_range() {
        let page = PageSize::new(16384).unwrap();
        let pattern = Pattern::new(page, 0x55);
        let bytes = vec![0u8; 4 * 16384];
        let mut f = fake_with(run(0x10000, 4), 2 * 16384);
        f.fail_checksum = Some(unimem_core::iokit::IoReturn::IO_ERROR);
        let mut client = DextClient::over(f).unwrap();
        let e = resolve_and_verify(&mut client, 0x1_0000_0000, 3, &bytes, &pattern, &mut |_| {})
            .unwrap_err();
        assert!(e.to_string().contains("the DEXT rejected checksum"), "{e}");
        assert_eq!(client.transport().connection().completed, vec![7, 8]);
        assert!(client.transport().connection().live.is_empty());
    }
}
