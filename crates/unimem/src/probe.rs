//! The seed experiment as a library call, on every platform: create a
//! surface (a memfd on Linux, an IOSurface on macOS), write the test
//! pattern, have a resolver prepare it (pagemap, the service or the DEXT),
//! then verify coverage, the pattern, and the checksums the resolver
//! computed through its own mapping.

pub use crate::check::{fresh_salt, ChecksumCheck};
use crate::error::Result;
use crate::resolve::{Prepared, Resolver};
use crate::surface::{self, Backing, Surface};
use unimem_core::pattern::{Pattern, Verification};
use unimem_core::Coverage;

/// The steps a probe reports as it goes, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// About to create the surface.
    CreatingSurface {
        /// Bytes asked for, before rounding up to whole pages.
        size: u64,
        /// The memory the surface is made of.
        backing: Backing,
    },
    /// The surface exists and is mapped in this process.
    SurfaceReady {
        /// Virtual address of its first byte in this process.
        addr: u64,
        /// Its length in bytes, whole pages.
        len: u64,
        /// Bytes per page of its memory (a huge page size for hugetlb).
        page_size: u64,
        /// The IOSurface id on macOS; a memfd has none.
        id: Option<u32>,
    },
    /// About to write the test pattern.
    WritingPattern {
        /// The salt that makes this run's pattern differ from earlier ones.
        salt: u64,
    },
    /// About to ask the resolver.
    Connecting {
        /// The resolver as [`Resolver::describe`] names it.
        resolver: String,
    },
    /// Asking the resolver to prepare the surface.
    Requesting {
        /// Bytes to prepare: the whole surface.
        len: u64,
    },
    /// Checking coverage, the pattern and the resolver's checksums.
    Verifying,
    /// Part of filling or verifying is through.
    Progress(Advance),
}

/// [`Step::Progress`]: `done` of `total` bytes of a long phase are
/// through, reported at the start and after every [`PROGRESS_CHUNK`] of
/// filling and verifying, so a caller can draw a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advance {
    /// The phase in progress.
    pub phase: Phase,
    /// Bytes through so far.
    pub done: u64,
    /// Bytes the phase goes through: the whole surface.
    pub total: u64,
}

/// A phase of a probe that reports [`Step::Progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Writing the test pattern.
    Fill,
    /// Checking the test pattern.
    Verify,
}

/// Bytes filled or verified between two progress reports.
pub const PROGRESS_CHUNK: usize = 64 << 20;

/// Everything a probe found. Field order matters: the preparation is
/// released before the surface is unmapped.
#[derive(Debug)]
pub struct ProbeOutcome {
    /// The resolver's map of the surface, still prepared (pinned, where the
    /// resolver pins) while this lives.
    pub prepared: Prepared,
    /// The surface the map describes.
    pub surface: Surface,
    /// The pattern written into the surface.
    pub pattern: Pattern,
    /// Whether the surface still held the pattern after the resolver
    /// prepared it.
    pub integrity: Verification,
    /// Each resolver checksum compared with this process's.
    pub checksums: Vec<ChecksumCheck>,
}

impl ProbeOutcome {
    /// Whether the map gives every byte of the surface an address.
    pub fn coverage(&self) -> Coverage {
        self.prepared.map.coverage()
    }

    /// The one rule, on every platform: coverage full, pattern intact,
    /// every checksum equal, and at least one checksum from a resolver that
    /// vouches for the bytes with them.
    pub fn verified(&self) -> bool {
        verified(
            &self.coverage(),
            &self.integrity,
            &self.checksums,
            self.prepared.checksums_required,
        )
    }
}

/// Whether a probe's findings verify it: coverage full, pattern intact,
/// every checksum equal, and at least one checksum where `required`.
pub fn verified(
    coverage: &Coverage,
    integrity: &Verification,
    checksums: &[ChecksumCheck],
    required: bool,
) -> bool {
    *coverage == Coverage::Full
        && integrity.ok()
        && checksums.iter().all(ChecksumCheck::ok)
        && (!required || !checksums.is_empty())
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
    let surface: Surface = surface::create(size, backing)?;
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
        id: surface.id(),
    });

    step(Step::WritingPattern { salt });
    let pattern = Pattern::new(surface.page_size(), salt);
    let total = surface.len();
    let mut done = 0u64;
    step(Step::Progress(Advance {
        phase: Phase::Fill,
        done,
        total,
    }));
    for chunk in surface.as_mut_slice().chunks_mut(PROGRESS_CHUNK) {
        pattern.fill(done, chunk);
        done += chunk.len() as u64;
        step(Step::Progress(Advance {
            phase: Phase::Fill,
            done,
            total,
        }));
    }

    step(Step::Connecting {
        resolver: resolver.describe(),
    });
    step(Step::Requesting { len: surface.len() });
    let prepared = resolver.prepare(&surface)?;

    step(Step::Verifying);
    let mut integrity = Verification::empty();
    let mut done = 0u64;
    step(Step::Progress(Advance {
        phase: Phase::Verify,
        done,
        total,
    }));
    for chunk in surface.as_slice().chunks(PROGRESS_CHUNK) {
        pattern.verify_into(done, chunk, &mut integrity);
        integrity.checked_bytes += chunk.len() as u64;
        done += chunk.len() as u64;
        step(Step::Progress(Advance {
            phase: Phase::Verify,
            done,
            total,
        }));
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use unimem_core::pattern::Pattern;
    use unimem_core::PageSize;

    fn intact() -> Verification {
        let page = PageSize::new(4096).unwrap();
        let p = Pattern::new(page, 3);
        let mut b = vec![0u8; 4096];
        p.fill(0, &mut b);
        p.verify(0, &b)
    }

    #[test]
    fn a_resolver_that_vouches_with_checksums_must_deliver_one() {
        let ok = ChecksumCheck::against(&[1, 2, 3, 4, 5, 6, 7, 8], 0, 8, 0);
        let good = ChecksumCheck {
            local: ok.local,
            resolver: ok.local,
            ..ok
        };
        let bad = ChecksumCheck {
            resolver: !ok.local,
            ..good
        };
        let (full, i) = (Coverage::Full, intact());
        assert!(verified(&full, &i, &[], false));
        assert!(
            !verified(&full, &i, &[], true),
            "no checksum where one is owed"
        );
        assert!(verified(&full, &i, &[good], true));
        assert!(!verified(&full, &i, &[good, bad], true));
        let gap = Coverage::Gap {
            offset: 0,
            length: 4096,
            reason: "not present",
            mapped: 0,
        };
        assert!(!verified(&gap, &i, &[good], true));
    }
}
