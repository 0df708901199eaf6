//! Address newtypes: a CPU virtual address, a physical address, a device
//! (DMA) address and a page frame number are different things and never mix
//! silently. `AddressKind` says which space a map's addresses live in, so an
//! IOVA is never printed as a physical address.

use serde::Serialize;
use std::fmt;

/// A virtual address in some process's address space.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct VirtAddr(pub u64);

/// A CPU physical address (guest-physical inside a VM).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PhysAddr(pub u64);

/// An address a device uses for DMA: an IOVA behind an IOMMU, or whatever
/// the platform's DMA mapper hands out.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct DmaAddr(pub u64);

/// The address a map segment starts at, typed by the map's address space:
/// a [`PhysAddr`] in a map of [`AddressKind::Physical`] addresses (Linux
/// pagemap), a [`DmaAddr`] in a map of IOVAs or unresolved DMA addresses
/// (the DEXT). A map refuses a segment of the other kind, so an IOVA can
/// never pass for a physical address.
///
/// ```
/// use unimem_core::addr::{AddressKind, DmaAddr, PhysAddr, SegmentAddr};
/// let a = SegmentAddr::of(AddressKind::Iova, 0x8000_0000);
/// assert_eq!(a, SegmentAddr::Dma(DmaAddr(0x8000_0000)));
/// assert_eq!(a.phys(), None);
/// assert_eq!(SegmentAddr::of(AddressKind::Physical, 0x1000).phys(), Some(PhysAddr(0x1000)));
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(untagged)]
pub enum SegmentAddr {
    /// A CPU physical address.
    Phys(PhysAddr),
    /// A device (DMA) address: an IOVA, or the DMA mapper's.
    Dma(DmaAddr),
}

impl SegmentAddr {
    /// `raw` as an address of `kind`'s space.
    pub const fn of(kind: AddressKind, raw: u64) -> Self {
        match kind {
            AddressKind::Physical => SegmentAddr::Phys(PhysAddr(raw)),
            AddressKind::Iova | AddressKind::DmaUnresolved => SegmentAddr::Dma(DmaAddr(raw)),
        }
    }

    /// The address as a number, whatever its space.
    pub const fn get(self) -> u64 {
        match self {
            SegmentAddr::Phys(PhysAddr(a)) | SegmentAddr::Dma(DmaAddr(a)) => a,
        }
    }

    /// The physical address, if this is one.
    pub const fn phys(self) -> Option<PhysAddr> {
        match self {
            SegmentAddr::Phys(p) => Some(p),
            SegmentAddr::Dma(_) => None,
        }
    }

    /// The device address, if this is one.
    pub const fn dma(self) -> Option<DmaAddr> {
        match self {
            SegmentAddr::Dma(d) => Some(d),
            SegmentAddr::Phys(_) => None,
        }
    }

    /// Whether it belongs to `kind`'s address space.
    pub const fn is_of(self, kind: AddressKind) -> bool {
        matches!(
            (self, kind),
            (SegmentAddr::Phys(_), AddressKind::Physical)
                | (
                    SegmentAddr::Dma(_),
                    AddressKind::Iova | AddressKind::DmaUnresolved
                )
        )
    }

    /// The address `bytes` further on in the same space, or `None` past
    /// the end of the 64-bit space.
    pub const fn checked_add(self, bytes: u64) -> Option<Self> {
        match self {
            SegmentAddr::Phys(PhysAddr(a)) => match a.checked_add(bytes) {
                Some(b) => Some(SegmentAddr::Phys(PhysAddr(b))),
                None => None,
            },
            SegmentAddr::Dma(DmaAddr(a)) => match a.checked_add(bytes) {
                Some(b) => Some(SegmentAddr::Dma(DmaAddr(b))),
                None => None,
            },
        }
    }
}

impl fmt::Display for SegmentAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.get())
    }
}

impl fmt::LowerHex for SegmentAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.get(), f)
    }
}

/// A page frame number, in units of the base page size.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Pfn(pub u64);

impl Pfn {
    /// The physical address of the first byte of this frame, or `None` when
    /// the product does not fit 64 bits (only a corrupt word can do that).
    pub fn to_phys(self, page: PageSize) -> Option<PhysAddr> {
        self.0.checked_mul(page.bytes()).map(PhysAddr)
    }
}

macro_rules! hex_display {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }
    )*};
}
hex_display!(VirtAddr, PhysAddr, DmaAddr, Pfn);

/// A page size in bytes: a power of two, at least 4 KiB. Read from the OS,
/// never assumed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PageSize(u64);

impl PageSize {
    /// `None` unless `bytes` is a power of two of at least 4096.
    pub fn new(bytes: u64) -> Option<Self> {
        (bytes.is_power_of_two() && bytes >= 4096).then_some(Self(bytes))
    }

    /// The size in bytes (4096 for 4 KiB pages).
    pub fn bytes(self) -> u64 {
        self.0
    }

    /// log2 of the size: the shift between a byte address and its page
    /// number (12 for 4 KiB pages).
    pub fn shift(self) -> u32 {
        self.0.trailing_zeros()
    }

    /// Whether `value` (an address or a byte offset) is a multiple of the
    /// page size.
    pub fn is_aligned(self, value: u64) -> bool {
        value & (self.0 - 1) == 0
    }

    /// `value` rounded up to a whole number of pages; `None` on overflow.
    pub fn round_up(self, value: u64) -> Option<u64> {
        value.checked_add(self.0 - 1).map(|v| v & !(self.0 - 1))
    }

    /// `value` rounded down to the start of its page; never overflows.
    pub fn round_down(self, value: u64) -> u64 {
        value & !(self.0 - 1)
    }

    /// Number of pages in `len` bytes, counting a partial page as one.
    pub fn pages_in(self, len: u64) -> u64 {
        len.div_ceil(self.0)
    }
}

/// Which address space the addresses of a map belong to.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressKind {
    /// CPU physical addresses (guest-physical in a VM): Linux pagemap, or a
    /// macOS DMA command whose device has no mapper at all.
    Physical,
    /// IOVAs valid only behind one IOMMU (a DART on Apple Silicon).
    Iova,
    /// DMA addresses for a device with no IOMMU parent: the platform's
    /// system mapper's addresses if it has one, otherwise physical. The
    /// resolver could not tell which.
    DmaUnresolved,
}

impl AddressKind {
    /// The value carried in the wire format's `address_kind` field.
    pub const fn to_wire(self) -> u32 {
        match self {
            AddressKind::Physical => 1,
            AddressKind::Iova => 2,
            AddressKind::DmaUnresolved => 3,
        }
    }

    /// The kind a wire `address_kind` field names; `None` for 0 and every
    /// other value this build does not know, which a decoder must refuse.
    pub const fn from_wire(value: u32) -> Option<Self> {
        match value {
            1 => Some(AddressKind::Physical),
            2 => Some(AddressKind::Iova),
            3 => Some(AddressKind::DmaUnresolved),
            _ => None,
        }
    }

    /// Name used in JSON output.
    pub const fn name(self) -> &'static str {
        match self {
            AddressKind::Physical => "physical",
            AddressKind::Iova => "iova",
            AddressKind::DmaUnresolved => "dma_unresolved",
        }
    }

    /// Column heading used in the table, never "Phys Addr" for an IOVA.
    pub const fn column(self) -> &'static str {
        match self {
            AddressKind::Physical => "Phys Addr",
            AddressKind::Iova => "IOVA",
            AddressKind::DmaUnresolved => "DMA Addr",
        }
    }

    /// Title of the map block.
    pub const fn title(self) -> &'static str {
        match self {
            AddressKind::Physical => "Physical Address Map",
            AddressKind::Iova => "IOVA Map (device addresses, not physical)",
            AddressKind::DmaUnresolved => "DMA Address Map (system mapper or physical)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_rejects_non_powers_of_two() {
        assert!(PageSize::new(4096).is_some());
        assert!(PageSize::new(16384).is_some());
        assert!(PageSize::new(4095).is_none());
        assert!(PageSize::new(6144).is_none());
        assert!(PageSize::new(2048).is_none());
        assert!(PageSize::new(0).is_none());
    }

    #[test]
    fn page_size_rounding() {
        let p = PageSize::new(4096).unwrap();
        assert_eq!(p.round_up(1), Some(4096));
        assert_eq!(p.round_up(4096), Some(4096));
        assert_eq!(p.round_up(u64::MAX), None);
        assert_eq!(p.round_down(8191), 4096);
        assert_eq!(p.pages_in(8193), 3);
        assert_eq!(p.shift(), 12);
    }

    #[test]
    fn pfn_to_phys_checks_overflow() {
        let p = PageSize::new(4096).unwrap();
        assert_eq!(Pfn(0x1234).to_phys(p), Some(PhysAddr(0x1234000)));
        assert_eq!(Pfn(u64::MAX).to_phys(p), None);
    }

    #[test]
    fn address_kind_round_trips_through_wire() {
        for k in [
            AddressKind::Physical,
            AddressKind::Iova,
            AddressKind::DmaUnresolved,
        ] {
            assert_eq!(AddressKind::from_wire(k.to_wire()), Some(k));
        }
        assert_eq!(AddressKind::from_wire(0), None);
        assert_eq!(AddressKind::from_wire(99), None);
    }
}
