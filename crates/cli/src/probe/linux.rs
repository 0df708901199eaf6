//! The probe's steps only Linux has: arranging a hugetlb surface in
//! physical order, a block device's DMA into the prepared surface, and the
//! NUMA node of each segment.

#[path = "dma.rs"]
mod dma;

use super::view::Extra;
use super::ProbeArgs;
use crate::platform::{Arrange, BackingArg};
use unimem::dma::DmaSource;
use unimem::probe::{self, ProbeOutcome, Step};
use unimem::resolve::Resolver;
use unimem::surface::{Arrangement, Backing, Surface};
use unimem::{Error, ErrorKind, Result};
use unimem_core::numa::{split_by_node, NodeSegment};
use unimem_core::size::human;

/// What a Linux probe needs beyond the shared steps: the file to DMA from,
/// opened before any surface is made, so a bad path costs nothing.
pub struct Extras {
    dma_source: Option<DmaSource>,
}

impl Extras {
    /// Opens `--dma-from`, if given.
    pub fn open(args: &ProbeArgs) -> Result<Self> {
        Ok(Self {
            dma_source: args
                .platform
                .dma_from
                .as_deref()
                .map(dma::open)
                .transpose()?,
        })
    }

    /// Creates, writes and prepares the surface, arranged first when asked.
    pub fn probe(
        &self,
        args: &ProbeArgs,
        resolver: &mut dyn Resolver,
        note: impl FnMut(Step),
    ) -> Result<(ProbeOutcome, Option<Extra>)> {
        arranged_probe(args, resolver, note)
    }

    /// The DMA from `--dma-from`, if asked for, and its verification.
    pub fn dma(
        &self,
        args: &ProbeArgs,
        outcome: &mut ProbeOutcome,
        resolver: &mut dyn Resolver,
    ) -> Result<Option<Extra>> {
        dma(args, self.dma_source.as_ref(), outcome, resolver)
    }
}

fn arranged_probe(
    args: &ProbeArgs,
    resolver: &mut dyn Resolver,
    note: impl FnMut(Step),
) -> Result<(ProbeOutcome, Option<Extra>)> {
    if args.platform.arrange == Arrange::File {
        return Ok((super::plain_probe(args, resolver, note)?, None));
    }
    if args.backing != BackingArg::Hugetlb {
        return Err(Error::new(
            ErrorKind::InvalidRequest,
            "--arrange physical needs --backing hugetlb: only huge pages stay where they are once ordered",
        ));
    }
    if resolver.name() != "direct" {
        return Err(Error::new(
            ErrorKind::InvalidRequest,
            "--arrange physical needs the direct resolver (--via direct, as root): the service \
             maps the surface's file in file order, not in this process's order",
        ));
    }
    let mut note = note;
    note(Step::CreatingSurface {
        size: args.size.bytes(),
        backing: Backing::Hugetlb,
    });
    let mut surface = Surface::create(args.size.bytes(), Backing::Hugetlb)?;
    let arrangement = surface.arrange_physical()?;
    let outcome = probe::probe_surface(surface, probe::fresh_salt(), resolver, note)?;
    let extra = Extra {
        ok: true,
        lines: arrangement_line(&arrangement),
        json: serde_json::to_value(arrangement).unwrap_or_default(),
    };
    Ok((outcome, Some(extra)))
}

fn arrangement_line(a: &Arrangement) -> String {
    format!(
        "[+] Arranged {} huge pages by physical address: contiguous runs {} -> {}, largest run {} -> {}\n",
        a.huge_pages,
        a.runs_before,
        a.runs_after,
        human(a.largest_run_before),
        human(a.largest_run_after)
    )
}

fn dma(
    args: &ProbeArgs,
    source: Option<&DmaSource>,
    outcome: &mut ProbeOutcome,
    resolver: &mut dyn Resolver,
) -> Result<Option<Extra>> {
    let (Some(src), Some(path)) = (source, args.platform.dma_from.as_deref()) else {
        return Ok(None);
    };
    crate::output::note(&format!(
        "[*] Reading {} into the surface with O_DIRECT...",
        path.display()
    ));
    let len = args.platform.dma_len.map(|l| l.bytes());
    let report = dma::run(src, path, len, outcome, resolver)?;
    Ok(Some(Extra {
        ok: report.ok,
        lines: report.lines(),
        json: serde_json::to_value(&report).unwrap_or_default(),
    }))
}

/// The surface's segments split by NUMA node, read in this process (which
/// maps the surface on every path).
pub fn numa_segments(o: &ProbeOutcome) -> Option<Vec<NodeSegment>> {
    let runs = unimem::numa::node_runs(0, o.surface.addr(), o.surface.len());
    Some(split_by_node(&o.prepared.map, &runs))
}
