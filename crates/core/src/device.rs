//! Device constraint verdicts: can a device with these DMA limits use this
//! map? The limits are the ones a Linux driver declares (`dma_set_mask`,
//! `dma_set_max_seg_size`, `dma_set_seg_boundary`, the block layer's
//! `max_segments`) plus a start alignment. From a [`PaMap`] this builds the
//! scatter-gather list a driver would: each address segment split at every
//! multiple of the segment boundary and into pieces of at most the maximum
//! segment size. Splitting satisfies the size and boundary rules by
//! construction (the verdict says how many segments needed it); the DMA
//! mask, the alignment and the entry count are what a map can fail.
//!
//! Pure and I/O-free, so a DEXT's map gets the same verdict as a Linux map.
//! Every address sum is checked: a map may end at the top of the 64-bit
//! space, and a boundary past the last address does not exist.

use crate::addr::SegmentAddr;
use crate::map::PaMap;
use crate::size::human;
use serde::Serialize;
use std::fmt::Write;

/// A device's DMA limits; `None` means the device has no such limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DeviceConstraints {
    /// Address bits the device drives: it reaches `[0, 2^bits)`. 1..=64.
    pub dma_bits: Option<u32>,
    /// Longest scatter-gather entry, in bytes.
    pub max_segment_size: Option<u64>,
    /// No entry may cross a multiple of this; a power of two.
    pub segment_boundary: Option<u64>,
    /// Most scatter-gather entries the device takes for one buffer.
    pub max_segments: Option<u64>,
    /// Every entry must start on a multiple of this; a power of two.
    pub align: Option<u64>,
}

/// Why a set of constraints cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintError {
    /// `dma_bits` outside 1..=64; carries the value given.
    #[error("--dma-bits {0} is out of range: give 1 to 64 address bits")]
    DmaBits(u32),
    /// `segment_boundary` or `align` is not a power of two.
    #[error("--{flag} {value} is not a power of two: give e.g. 4K, 64K or 4G")]
    NotPowerOfTwo {
        /// The command-line flag without its dashes: `segment-boundary` or
        /// `align`.
        flag: &'static str,
        /// The value given, in bytes.
        value: u64,
    },
    /// `max_segment_size` or `segment_boundary` is below the map's page
    /// size.
    #[error("--{flag} {value} is smaller than the page size {page}: a driver splits no finer than a page; give at least {page}")]
    BelowPage {
        /// The command-line flag without its dashes: `max-segment-size` or
        /// `segment-boundary`.
        flag: &'static str,
        /// The value given, in bytes.
        value: u64,
        /// The map's page size, in bytes.
        page: u64,
    },
    /// `max_segments` is 0.
    #[error("--max-segments 0 admits no buffer at all: give at least 1")]
    NoSegments,
}

impl DeviceConstraints {
    /// Whether any limit is set (no limits: no verdict to print).
    pub fn any(&self) -> bool {
        *self != DeviceConstraints::default()
    }

    /// Checks the values themselves, for maps in pages of `page_size`
    /// bytes. Splitting finer than a page is refused, as the Linux block
    /// layer does, which also bounds the list at about two entries a page.
    pub fn validate(&self, page_size: u64) -> Result<(), ConstraintError> {
        if let Some(bits) = self.dma_bits {
            if !(1..=64).contains(&bits) {
                return Err(ConstraintError::DmaBits(bits));
            }
        }
        for (flag, value) in [
            ("segment-boundary", self.segment_boundary),
            ("align", self.align),
        ] {
            if let Some(v) = value {
                if !v.is_power_of_two() {
                    return Err(ConstraintError::NotPowerOfTwo { flag, value: v });
                }
            }
        }
        for (flag, value) in [
            ("max-segment-size", self.max_segment_size),
            ("segment-boundary", self.segment_boundary),
        ] {
            if let Some(v) = value {
                if v < page_size {
                    return Err(ConstraintError::BelowPage {
                        flag,
                        value: v,
                        page: page_size,
                    });
                }
            }
        }
        if self.max_segments == Some(0) {
            return Err(ConstraintError::NoSegments);
        }
        Ok(())
    }

    /// The highest address the device reaches, from `dma_bits`.
    pub fn dma_mask(&self) -> Option<u64> {
        self.dma_bits.map(mask_of)
    }
}

fn mask_of(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// One extent of the buffer: where it is in the buffer and at which address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Extent {
    /// Byte offset of its first byte from the start of the buffer.
    pub offset: u64,
    /// Address of its first byte, of the map's kind (physical or IOVA).
    pub address: u64,
    /// Length in bytes; at least 1.
    pub length: u64,
}

/// The verdict on one constraint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// `dma_bits`, `max_segment_size`, `segment_boundary`, `max_segments`
    /// or `align`: the flag's name with underscores.
    pub constraint: &'static str,
    /// The value the device declared.
    pub limit: u64,
    /// The constraint holds: no violations. Always true for the rules a
    /// driver meets by splitting (`max_segment_size`, `segment_boundary`).
    pub ok: bool,
    /// Scatter-gather entries that break the constraint (for
    /// `max_segments`: entries beyond the limit).
    pub violations: u64,
    /// The first entry that breaks it (for `max_segments`: the first entry
    /// past the limit).
    pub first_violation: Option<Extent>,
    /// For the rules a driver meets by splitting: how many map segments
    /// needed a split, and the first of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments_split: Option<u64>,
    /// The first map segment that needed a split, whole (before
    /// splitting); `None` when none did, or for the other rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_split: Option<Extent>,
}

/// The verdict on a whole map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceVerdict {
    /// Every constraint holds.
    pub ok: bool,
    /// The limits the verdict was made under.
    pub constraints: DeviceConstraints,
    /// Map segments that carry addresses (before splitting).
    pub map_segments: u64,
    /// Entries in the scatter-gather list after splitting.
    pub entries: u64,
    /// Present only for the constraints that were set, in flag order.
    pub checks: Vec<Check>,
}

/// The scatter-gather entries a driver builds from one address segment:
/// pieces that cross no multiple of `boundary` and are at most `max` long.
struct Entries {
    offset: u64,
    address: u64,
    remaining: u64,
    max: Option<u64>,
    boundary: Option<u64>,
}

impl Iterator for Entries {
    type Item = Extent;

    fn next(&mut self) -> Option<Extent> {
        if self.remaining == 0 {
            return None;
        }
        let mut length = self.remaining;
        if let Some(b) = self.boundary {
            // Bytes up to the next multiple of b, computed as a distance
            // so a boundary at 2^64 (past the top) never overflows.
            let to_boundary = b - (self.address & (b - 1));
            length = length.min(to_boundary);
        }
        if let Some(m) = self.max {
            length = length.min(m);
        }
        let entry = Extent {
            offset: self.offset,
            address: self.address,
            length,
        };
        self.remaining -= length;
        // With bytes left, the next entry's address is inside the segment,
        // which PaMap guarantees does not wrap; saturate for hand-made ones.
        self.offset = self.offset.saturating_add(length);
        self.address = self.address.saturating_add(length);
        Some(entry)
    }
}

/// Whether a segment of `length` bytes at `address` crosses a multiple of
/// `boundary` (ending exactly on one is not crossing it).
fn crosses(address: u64, length: u64, boundary: u64) -> bool {
    let to_boundary = boundary - (address & (boundary - 1));
    length > to_boundary
}

/// Whether an entry reaches past `mask` (its last byte is above it).
fn beyond(e: &Extent, mask: u64) -> bool {
    // length >= 1, and address + length - 1 cannot wrap for a valid entry;
    // saturate anyway so a hand-made extent never panics.
    e.address.saturating_add(e.length - 1) > mask
}

#[derive(Default)]
struct Tally {
    count: u64,
    first: Option<Extent>,
}

impl Tally {
    fn add(&mut self, e: Extent) {
        self.count += 1;
        self.first.get_or_insert(e);
    }
}

/// The verdict for `map` under `c`. Call [`DeviceConstraints::validate`]
/// first: with a max size or boundary below the map's page size the list
/// could grow past two entries a page.
pub fn verdict(map: &PaMap, c: &DeviceConstraints) -> DeviceVerdict {
    let mask = c.dma_mask();
    let mut map_segments = 0u64;
    let mut entries = 0u64;
    let (mut over_mask, mut unaligned, mut past_count) =
        (Tally::default(), Tally::default(), Tally::default());
    let (mut split_size, mut split_boundary) = (Tally::default(), Tally::default());
    for seg in map.segments() {
        let Some(address) = seg.address().map(SegmentAddr::get) else {
            continue;
        };
        map_segments += 1;
        let whole = Extent {
            offset: seg.offset,
            address,
            length: seg.length,
        };
        if c.max_segment_size.is_some_and(|m| seg.length > m) {
            split_size.add(whole);
        }
        if c.segment_boundary
            .is_some_and(|b| crosses(address, seg.length, b))
        {
            split_boundary.add(whole);
        }
        let pieces = Entries {
            offset: seg.offset,
            address,
            remaining: seg.length,
            max: c.max_segment_size,
            boundary: c.segment_boundary,
        };
        for e in pieces {
            entries += 1;
            if mask.is_some_and(|m| beyond(&e, m)) {
                over_mask.add(e);
            }
            if c.align.is_some_and(|a| e.address & (a - 1) != 0) {
                unaligned.add(e);
            }
            if c.max_segments.is_some_and(|n| entries > n) {
                past_count.add(e);
            }
        }
    }

    let mut checks = Vec::new();
    let limit_check = |constraint, limit, t: Tally| Check {
        constraint,
        limit,
        ok: t.count == 0,
        violations: t.count,
        first_violation: t.first,
        segments_split: None,
        first_split: None,
    };
    let split_check = |constraint, limit, t: Tally| Check {
        constraint,
        limit,
        ok: true,
        violations: 0,
        first_violation: None,
        segments_split: Some(t.count),
        first_split: t.first,
    };
    if let Some(bits) = c.dma_bits {
        checks.push(limit_check("dma_bits", u64::from(bits), over_mask));
    }
    if let Some(m) = c.max_segment_size {
        checks.push(split_check("max_segment_size", m, split_size));
    }
    if let Some(b) = c.segment_boundary {
        checks.push(split_check("segment_boundary", b, split_boundary));
    }
    if let Some(n) = c.max_segments {
        checks.push(limit_check("max_segments", n, past_count));
    }
    if let Some(a) = c.align {
        checks.push(limit_check("align", a, unaligned));
    }
    DeviceVerdict {
        ok: checks.iter().all(|c| c.ok),
        constraints: *c,
        map_segments,
        entries,
        checks,
    }
}

fn human_limit(c: &Check) -> String {
    match c.constraint {
        "dma_bits" | "max_segments" => c.limit.to_string(),
        _ => human(c.limit),
    }
}

fn describe(e: &Extent) -> String {
    format!(
        "offset {:#x}, address {:#x}, {} bytes",
        e.offset, e.address, e.length
    )
}

/// The verdict block the table prints after the verification lines.
pub fn render_verdict(v: &DeviceVerdict) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "[{}] Device constraints {}: {} scatter-gather entries from {} address segments",
        if v.ok { '+' } else { '-' },
        if v.ok { "met" } else { "VIOLATED" },
        v.entries,
        v.map_segments
    );
    for c in &v.checks {
        let mark = if c.ok { '+' } else { '-' };
        let limit = human_limit(c);
        let line = match (c.constraint, c.ok) {
            ("dma_bits", true) => {
                format!(
                    "DMA mask {limit} bits: every entry lies at or below {:#x}",
                    mask_of(c.limit as u32)
                )
            }
            ("dma_bits", false) => format!(
                "DMA mask {limit} bits: {} entries reach above {:#x}",
                c.violations,
                mask_of(c.limit as u32)
            ),
            ("max_segment_size", _) => format!(
                "max segment size {limit}: {} address segments split to fit",
                c.segments_split.unwrap_or(0)
            ),
            ("segment_boundary", _) => format!(
                "segment boundary {limit}: {} address segments split at a boundary",
                c.segments_split.unwrap_or(0)
            ),
            ("max_segments", true) => {
                format!("max segments {limit}: the list has {} entries", v.entries)
            }
            ("max_segments", false) => format!(
                "max segments {limit}: the list has {} entries, {} too many",
                v.entries, c.violations
            ),
            ("align", true) => format!("alignment {limit}: every entry starts aligned"),
            (_, _) => format!(
                "alignment {limit}: {} entries start unaligned",
                c.violations
            ),
        };
        let _ = writeln!(out, "    [{mark}] {line}");
        if let Some(e) = &c.first_violation {
            let _ = writeln!(out, "        first: {}", describe(e));
        }
    }
    out
}

#[cfg(test)]
mod tests;
