//! A macOS probe adds nothing to the shared steps: arranging, DMA from a
//! block device and NUMA nodes are Linux's (see `linux.rs`).

use super::view::Extra;
use super::ProbeArgs;
use unimem::probe::{ProbeOutcome, Step};
use unimem::resolve::Resolver;
use unimem::Result;
use unimem_core::numa::NodeSegment;

/// Nothing to open on macOS.
pub struct Extras;

impl Extras {
    /// Nothing to open.
    pub fn open(_args: &ProbeArgs) -> Result<Self> {
        Ok(Extras)
    }

    /// The shared probe, as it is.
    pub fn probe(
        &self,
        args: &ProbeArgs,
        resolver: &mut dyn Resolver,
        note: impl FnMut(Step),
    ) -> Result<(ProbeOutcome, Option<Extra>)> {
        Ok((super::plain_probe(args, resolver, note)?, None))
    }

    /// No DMA from a file on macOS.
    pub fn dma(
        &self,
        _args: &ProbeArgs,
        _outcome: &mut ProbeOutcome,
        _resolver: &mut dyn Resolver,
    ) -> Result<Option<Extra>> {
        Ok(None)
    }
}

/// The DEXT reports no NUMA nodes.
pub fn numa_segments(_o: &ProbeOutcome) -> Option<Vec<NodeSegment>> {
    None
}
