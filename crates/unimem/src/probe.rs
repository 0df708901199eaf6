//! The seed experiment as a library call: create a surface, write the test
//! pattern, have a resolver prepare it, then verify coverage, the pattern,
//! and any checksums the resolver computed through its own mapping.

pub use crate::check::{fresh_salt, ChecksumCheck};
use crate::error::Result;
use crate::resolve::{Prepared, Resolver};
use crate::surface::{Backing, Surface};
use unimem_core::pattern::{Pattern, Verification};
use unimem_core::Coverage;

/// The steps a probe reports as it goes, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    CreatingSurface { size: u64, backing: Backing },
    SurfaceReady { addr: u64, len: u64, page_size: u64 },
    WritingPattern { salt: u64 },
    Connecting { resolver: String },
    Requesting { len: u64 },
    Verifying,
}

/// Everything a probe found. Field order matters: the preparation is
/// released before the surface is unmapped.
#[derive(Debug)]
pub struct ProbeOutcome {
    pub prepared: Prepared,
    pub surface: Surface,
    pub pattern: Pattern,
    pub integrity: Verification,
    pub checksums: Vec<ChecksumCheck>,
}

impl ProbeOutcome {
    pub fn coverage(&self) -> Coverage {
        self.prepared.map.coverage()
    }

    /// Coverage full, pattern intact, every checksum equal.
    pub fn verified(&self) -> bool {
        self.coverage() == Coverage::Full
            && self.integrity.ok()
            && self.checksums.iter().all(ChecksumCheck::ok)
    }
}

/// Runs the probe: create, write, prepare, verify.
pub fn probe(
    size: u64,
    backing: Backing,
    salt: u64,
    resolver: &mut dyn Resolver,
    mut step: impl FnMut(Step),
) -> Result<ProbeOutcome> {
    step(Step::CreatingSurface { size, backing });
    let surface = Surface::create(size, backing)?;
    probe_surface(surface, salt, resolver, step)
}

/// Runs the probe on a surface made by the caller (arranged, say): write,
/// prepare, verify.
pub fn probe_surface(
    mut surface: Surface,
    salt: u64,
    resolver: &mut dyn Resolver,
    mut step: impl FnMut(Step),
) -> Result<ProbeOutcome> {
    step(Step::SurfaceReady {
        addr: surface.addr().0,
        len: surface.len(),
        page_size: surface.page_size().bytes(),
    });

    step(Step::WritingPattern { salt });
    let pattern = Pattern::new(surface.page_size(), salt);
    pattern.fill(0, surface.as_mut_slice());

    step(Step::Connecting {
        resolver: resolver.describe(),
    });
    step(Step::Requesting { len: surface.len() });
    let prepared = resolver.prepare(&surface)?;

    step(Step::Verifying);
    let integrity = pattern.verify(0, surface.as_slice());
    let checksums = prepared
        .checksums
        .iter()
        .map(|c| ChecksumCheck::against(surface.as_slice(), c.offset, c.length, c.value))
        .collect();
    Ok(ProbeOutcome {
        prepared,
        surface,
        pattern,
        integrity,
        checksums,
    })
}
