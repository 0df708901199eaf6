//! What a resolver of a whole surface hands back, and the trait every
//! surface resolver implements.

use crate::error::Result;
use crate::surface::Surface;
use unimem_core::PaMap;

/// A checksum the resolver computed over part of the prepared range,
/// through its own mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RemoteChecksum {
    /// Byte offset of the hashed range from the start of the prepared range
    /// (the whole surface); a multiple of 8.
    pub offset: u64,
    /// Length of the hashed range in bytes; a multiple of 8.
    pub length: u64,
    /// The FNV-1a words checksum ([`unimem_core::checksum`]) the resolver
    /// computed.
    pub value: u64,
}

/// A resolved (prepared) surface. Dropping it completes the preparation:
/// pins and handles held for it are released.
pub struct Prepared {
    /// Addresses of every byte of the surface, as the resolver found them.
    pub map: PaMap,
    /// Whether the addresses are held by a long-term pin while this lives.
    /// Unpinned addresses are a snapshot: the kernel may migrate pages.
    pub pinned: bool,
    /// Checksums computed by the resolver through its own mapping.
    pub checksums: Vec<RemoteChecksum>,
    /// Whether the resolver vouches for the bytes with checksums, so a
    /// preparation without one cannot be verified.
    pub checksums_required: bool,
    /// Whatever keeps the preparation alive (a pin, a service handle).
    _hold: Option<Box<dyn Send>>,
}

impl Prepared {
    /// A preparation of `map`, kept alive by `hold` (released on drop),
    /// with no checksum from the resolver.
    pub fn new(map: PaMap, pinned: bool, hold: Option<Box<dyn Send>>) -> Self {
        Self {
            map,
            pinned,
            checksums: Vec::new(),
            checksums_required: false,
            _hold: hold,
        }
    }

    /// The same preparation, vouched for by the resolver's `checksums`:
    /// from now on at least one is required to verify it.
    pub fn with_checksums(mut self, checksums: Vec<RemoteChecksum>) -> Self {
        self.checksums = checksums;
        self.checksums_required = true;
        self
    }
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("map", &self.map)
            .field("pinned", &self.pinned)
            .field("checksums", &self.checksums)
            .field("checksums_required", &self.checksums_required)
            .finish_non_exhaustive()
    }
}

/// Something that resolves a whole surface.
pub trait Resolver {
    /// Short name for output: `direct`, `service`, `dext`.
    fn name(&self) -> &'static str;
    /// Where it resolves: `/proc/self/pagemap`, a socket path, a DEXT.
    fn describe(&self) -> String;
    /// Resolves every byte of `surface`.
    fn prepare(&mut self, surface: &Surface) -> Result<Prepared>;
}
