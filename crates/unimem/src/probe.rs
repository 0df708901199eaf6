//! The seed experiment as a library call: create a surface, write the test
//! pattern, have a resolver prepare it, then verify coverage, the pattern,
//! and any checksums the resolver computed through its own mapping.

use crate::error::Result;
use crate::resolve::{Prepared, Resolver};
use crate::surface::{Backing, Surface};
use unimem_core::checksum::checksum;
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

/// One resolver checksum, compared with ours over the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ChecksumCheck {
    pub offset: u64,
    pub length: u64,
    pub resolver: u64,
    pub local: u64,
}

impl ChecksumCheck {
    pub fn ok(&self) -> bool {
        self.resolver == self.local
    }
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

/// A salt that differs between runs, so stale bytes never verify.
pub fn fresh_salt() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (t ^ (u64::from(std::process::id()) << 32)).rotate_left(17) | 1
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
    let mut surface = Surface::create(size, backing)?;
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
        .map(|c| {
            let local = usize::try_from(c.offset)
                .ok()
                .zip(usize::try_from(c.offset.saturating_add(c.length)).ok())
                .and_then(|(s, e)| surface.as_slice().get(s..e))
                .map_or(!c.value, checksum);
            ChecksumCheck {
                offset: c.offset,
                length: c.length,
                resolver: c.value,
                local,
            }
        })
        .collect();
    Ok(ProbeOutcome {
        prepared,
        surface,
        pattern,
        integrity,
        checksums,
    })
}
