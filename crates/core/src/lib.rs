//! unimem-core: the pure half of unimem.
//!
//! Everything here builds on every OS and performs no I/O: the wire format
//! shared with the CybMemDriver DEXT and the Linux resolver service, the
//! address newtypes and the segment map, decoding of the kernel's pagemap and
//! kpageflags words, the page-indexed test pattern, the checksum both ends of
//! the wire compute, and the renderers of the seed's table, of JSON and of the SVG picture.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod addr;
pub mod checksum;
pub mod device;
pub mod iokit;
pub mod kpageflags;
pub mod map;
pub mod maps;
pub mod numa;
pub mod pagemap;
pub mod pattern;
pub mod report;
pub mod size;
pub mod svg;
pub mod wire;

pub use addr::{AddressKind, DmaAddr, PageSize, Pfn, PhysAddr, SegmentAddr, VirtAddr};
pub use map::{Coverage, PaMap, Segment, Target};
