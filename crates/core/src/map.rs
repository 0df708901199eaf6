//! The segment map of a buffer: ordered, non-overlapping extents that cover
//! `[0, total_length)` of the buffer in buffer order. An extent is either a
//! run of bytes backed by contiguous addresses, or an explicit hole (not
//! present, swapped out, not mapped). Adjacent extents coalesce when their
//! addresses continue each other, so a map's memory grows with the number of
//! physically contiguous runs, not with the number of pages.

use crate::addr::{AddressKind, DmaAddr, PageSize, PhysAddr, SegmentAddr};
use serde::Serialize;

/// What backs one extent of the buffer.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// Bytes backed by contiguous addresses starting here, of the map's
    /// address space.
    Address(SegmentAddr),
    /// Mapped, but no page is present (never touched, or dropped).
    NotPresent,
    /// Swapped out: no address until it is faulted back in.
    Swapped,
    /// No mapping at all in the process's address space.
    Unmapped,
}

impl Target {
    /// Bytes at the physical address `raw`.
    pub const fn phys(raw: u64) -> Target {
        Target::Address(SegmentAddr::Phys(PhysAddr(raw)))
    }

    /// Bytes at the device (DMA) address `raw`.
    pub const fn dma(raw: u64) -> Target {
        Target::Address(SegmentAddr::Dma(DmaAddr(raw)))
    }

    /// How the table and a [`Coverage::Gap`]'s `reason` call this kind of
    /// extent: "mapped", "not present", "swapped" or "unmapped".
    pub fn name(self) -> &'static str {
        match self {
            Target::Address(_) => "mapped",
            Target::NotPresent => "not present",
            Target::Swapped => "swapped",
            Target::Unmapped => "unmapped",
        }
    }
}

/// One extent: `length` bytes at buffer offset `offset`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Segment {
    /// Byte offset of the extent's first byte from the start of the buffer
    /// (not an address).
    pub offset: u64,
    /// Length in bytes; never 0 in a [`PaMap`].
    pub length: u64,
    /// What backs these bytes: addresses that run on for `length` bytes,
    /// or the kind of hole.
    pub target: Target,
}

impl Segment {
    /// Buffer offset one past the extent's last byte (`offset + length`).
    pub fn end(&self) -> u64 {
        self.offset + self.length
    }

    /// The address of the extent's first byte; `None` for a hole.
    pub fn address(&self) -> Option<SegmentAddr> {
        match self.target {
            Target::Address(a) => Some(a),
            _ => None,
        }
    }

    /// Whether `next` continues this extent, so the two can be one.
    fn continued_by(&self, next: &Segment) -> bool {
        if self.end() != next.offset {
            return false;
        }
        match (self.target, next.target) {
            (Target::Address(a), Target::Address(b)) => a.checked_add(self.length) == Some(b),
            (a, b) => a == b,
        }
    }
}

/// Whether the map covers the whole buffer with addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Coverage {
    /// Every byte of `[0, total_length)` has an address.
    Full,
    /// Some bytes have none; the first such extent is described.
    Gap {
        /// Buffer offset of the first byte without an address.
        offset: u64,
        /// Length of that first hole.
        length: u64,
        /// Why it has none ("not present", "swapped", "unmapped", "missing").
        reason: &'static str,
        /// Bytes with an address, over the whole map.
        mapped: u64,
    },
}

/// Errors building a map from untrusted parts (wire replies).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// The extent leaves a gap before it or overlaps the one before.
    #[error(
        "segment at offset {offset:#x} does not follow the previous one (expected {expected:#x})"
    )]
    OutOfOrder {
        /// Buffer offset the extent claimed to start at.
        offset: u64,
        /// Buffer offset where the map ends, where it had to start.
        expected: u64,
    },
    /// An address of another space than the map's (a physical address in
    /// a map of IOVAs, say).
    #[error("segment at offset {offset:#x} carries a {got} address in a map of {map} addresses")]
    WrongKind {
        /// Buffer offset of the extent.
        offset: u64,
        /// The kind of address the extent carries.
        got: &'static str,
        /// The map's kind.
        map: &'static str,
    },
    /// An extent of 0 bytes.
    #[error("segment at offset {offset:#x} has length 0")]
    Empty {
        /// Buffer offset of the empty extent.
        offset: u64,
    },
    /// The extent ends beyond the buffer's `total_length`.
    #[error("segment at offset {offset:#x} runs past the buffer end {total:#x}")]
    PastEnd {
        /// Buffer offset of the extent.
        offset: u64,
        /// The map's `total_length`, in bytes.
        total: u64,
    },
    /// Its address plus its length does not fit 64 bits.
    #[error("segment at offset {offset:#x} wraps the 64-bit address space")]
    AddressOverflow {
        /// Buffer offset of the extent.
        offset: u64,
    },
}

/// The address map of one buffer: which addresses back each byte of
/// `[0, total_length)`, as coalesced [`Segment`]s in buffer order.
///
/// A resolver builds it by pushing extents in order; extents whose
/// addresses continue each other merge into one segment.
///
/// ```
/// use unimem_core::{AddressKind, Coverage, PaMap, PageSize, Target};
///
/// let page = PageSize::new(4096).unwrap();
/// let mut map = PaMap::new(AddressKind::Physical, page, 4 * 4096);
/// // Two pages at 0x10000 and 0x11000 continue each other: one segment.
/// map.push(4096, Target::phys(0x10000)).unwrap();
/// map.push(4096, Target::phys(0x11000)).unwrap();
/// // A page elsewhere starts a new one.
/// map.push(4096, Target::phys(0x80000)).unwrap();
/// assert_eq!(map.address_segment_count(), 2);
/// assert_eq!(map.lookup(4096 + 8).map(|a| a.get()), Some(0x11008));
///
/// // The last page is not present: the map does not cover the buffer.
/// map.push(4096, Target::NotPresent).unwrap();
/// assert_eq!(
///     map.coverage(),
///     Coverage::Gap { offset: 3 * 4096, length: 4096, reason: "not present", mapped: 3 * 4096 },
/// );
///
/// // Extents from a resolver must follow on exactly, and stay inside the buffer.
/// assert!(map.push_at(0, 4096, Target::phys(0x1000)).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaMap {
    kind: AddressKind,
    page_size: PageSize,
    total_length: u64,
    segments: Vec<Segment>,
}

impl PaMap {
    /// An empty map of a buffer of `total_length` bytes whose addresses are
    /// of `kind`, resolved in pages of `page_size`.
    pub fn new(kind: AddressKind, page_size: PageSize, total_length: u64) -> Self {
        Self {
            kind,
            page_size,
            total_length,
            segments: Vec::new(),
        }
    }

    /// Which address space the segments' addresses belong to.
    pub fn kind(&self) -> AddressKind {
        self.kind
    }

    /// The page size the resolver worked in: the granularity at which an
    /// address can jump.
    pub fn page_size(&self) -> PageSize {
        self.page_size
    }

    /// Length in bytes of the buffer the map describes, filled or not.
    pub fn total_length(&self) -> u64 {
        self.total_length
    }

    /// Every extent, holes included, in buffer order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// `raw` as the target of an extent in this map's address space.
    pub const fn target(&self, raw: u64) -> Target {
        Target::Address(SegmentAddr::of(self.kind, raw))
    }

    /// Extents that carry addresses, i.e. what a device may use.
    pub fn address_segments(&self) -> impl Iterator<Item = &Segment> + '_ {
        self.segments.iter().filter(|s| s.address().is_some())
    }

    /// Buffer offset up to which the map has been filled.
    pub fn filled_to(&self) -> u64 {
        self.segments.last().map_or(0, Segment::end)
    }

    /// Appends the extent that starts where the map currently ends,
    /// coalescing with the last one when it continues it.
    pub fn push(&mut self, length: u64, target: Target) -> Result<(), MapError> {
        let offset = self.filled_to();
        self.push_at(offset, length, target)
    }

    /// Appends an extent at an explicit offset; offsets must be contiguous
    /// and in order, which is what replies from a resolver must respect.
    pub fn push_at(&mut self, offset: u64, length: u64, target: Target) -> Result<(), MapError> {
        let expected = self.filled_to();
        if offset != expected {
            return Err(MapError::OutOfOrder { offset, expected });
        }
        if length == 0 {
            return Err(MapError::Empty { offset });
        }
        match offset.checked_add(length) {
            Some(end) if end <= self.total_length => {}
            _ => {
                return Err(MapError::PastEnd {
                    offset,
                    total: self.total_length,
                })
            }
        }
        if let Target::Address(a) = target {
            if !a.is_of(self.kind) {
                return Err(MapError::WrongKind {
                    offset,
                    got: match a {
                        SegmentAddr::Phys(_) => "physical",
                        SegmentAddr::Dma(_) => "device (DMA)",
                    },
                    map: self.kind.name(),
                });
            }
            if a.checked_add(length).is_none() {
                return Err(MapError::AddressOverflow { offset });
            }
        }
        let seg = Segment {
            offset,
            length,
            target,
        };
        match self.segments.last_mut() {
            Some(last) if last.continued_by(&seg) => last.length += length,
            _ => self.segments.push(seg),
        }
        Ok(())
    }

    /// Appends every extent of `part` (a map of the range that follows
    /// this one's end) as if each were pushed in turn: the first coalesces
    /// with this map's last extent where it continues it; the others, which
    /// `part` has already coalesced, are copied with their offsets moved.
    pub fn append(&mut self, part: &PaMap) -> Result<(), MapError> {
        let base = self.filled_to();
        let Some((first, rest)) = part.segments.split_first() else {
            return Ok(());
        };
        match base.checked_add(part.filled_to()) {
            Some(end) if end <= self.total_length => {}
            _ => {
                return Err(MapError::PastEnd {
                    offset: base,
                    total: self.total_length,
                })
            }
        }
        self.push(first.length, first.target)?;
        self.segments.extend(rest.iter().map(|s| Segment {
            offset: s.offset + base,
            ..*s
        }));
        Ok(())
    }

    /// Bytes that have an address.
    pub fn mapped_bytes(&self) -> u64 {
        self.address_segments().map(|s| s.length).sum()
    }

    /// Number of extents that have an address (the "Segment count").
    pub fn address_segment_count(&self) -> usize {
        self.address_segments().count()
    }

    /// Whether every byte of the buffer has an address, or where the first
    /// hole is. Bytes not filled yet count as a hole whose reason is
    /// "missing".
    pub fn coverage(&self) -> Coverage {
        let mapped = self.mapped_bytes();
        if let Some(hole) = self.segments.iter().find(|s| s.address().is_none()) {
            return Coverage::Gap {
                offset: hole.offset,
                length: hole.length,
                reason: hole.target.name(),
                mapped,
            };
        }
        let filled = self.filled_to();
        if filled < self.total_length {
            return Coverage::Gap {
                offset: filled,
                length: self.total_length - filled,
                reason: "missing",
                mapped,
            };
        }
        Coverage::Full
    }

    /// The address of the byte at buffer offset `offset`, if it has one.
    pub fn lookup(&self, offset: u64) -> Option<SegmentAddr> {
        let i = self.segments.partition_point(|s| s.end() <= offset);
        let seg = self.segments.get(i)?;
        if seg.offset > offset {
            return None;
        }
        seg.address()?.checked_add(offset - seg.offset)
    }
}

#[cfg(test)]
mod tests;
