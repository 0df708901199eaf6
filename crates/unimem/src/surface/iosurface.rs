//! The macOS surface: an IOSurface of one plane of `length` bytes (width =
//! bytes, height 1, one byte per element; rows of one page when IOSurface's
//! maximum width is smaller), locked read-write for as long as the value
//! lives, so its base address stays put while the DEXT resolves and pins
//! the pages behind it.
//!
//! Every CoreFoundation object made on the way (the numbers and the
//! property dictionary) is owned by a value that releases it; the surface
//! is unlocked and released on drop.

use crate::apple::ffi::{self, SurfaceKey, SurfaceRef};
use crate::apple::AppleError;
use crate::error::Result;
use unimem_core::{PageSize, VirtAddr};

/// What backs a surface on macOS: always an IOSurface.
#[cfg(target_os = "macos")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backing {
    /// An IOSurface, locked for the surface's lifetime.
    IoSurface,
}

#[cfg(target_os = "macos")]
impl Backing {
    /// The name output uses: `iosurface`.
    pub fn name(self) -> &'static str {
        "iosurface"
    }
}

#[cfg(target_os = "macos")]
impl std::fmt::Display for Backing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A locked IOSurface of `len()` bytes.
pub struct IoSurface {
    surface: SurfaceRef,
    requested: u64,
    page_size: PageSize,
}

/// The VM page size from the OS (16 KiB on Apple Silicon, 4 KiB on Intel).
pub fn os_page_size() -> Result<PageSize> {
    Ok(ffi::page_size()
        .and_then(PageSize::new)
        .ok_or(AppleError::Mismatch(
            "sysconf(_SC_PAGESIZE) did not give a power of two",
        ))?)
}

impl IoSurface {
    /// Creates a surface of at least `size` bytes, rounded up to whole
    /// pages, and locks it.
    pub fn create(size: u64) -> Result<Self> {
        let page_size = os_page_size()?;
        let length =
            page_size
                .round_up(size)
                .filter(|&n| n > 0)
                .ok_or_else(|| AppleError::SurfaceSize {
                    length: size,
                    reason: "not a positive size that whole pages can hold".into(),
                })?;
        Ok(Self::create_exact(length, page_size)?)
    }

    fn create_exact(length: u64, page_size: PageSize) -> std::result::Result<Self, AppleError> {
        let signed = i64::try_from(length).map_err(|_| AppleError::SurfaceSize {
            length,
            reason: "larger than a CFNumber of type SInt64 can carry".into(),
        })?;
        // IOSurface bounds each property; ask rather than guess.
        let page = page_size.bytes();
        let (width, height) = layout(
            length,
            page,
            ffi_max(SurfaceKey::Width),
            ffi_max(SurfaceKey::BytesPerRow),
            ffi_max(SurfaceKey::Height),
        )
        .map_err(|reason| AppleError::SurfaceSize { length, reason })?;

        let cf = |what: &'static str| AppleError::CoreFoundation { what };
        let number = |v: u64, what: &'static str| {
            i64::try_from(v)
                .ok()
                .and_then(ffi::cf_number_i64)
                .ok_or_else(|| cf(what))
        };
        let bytes = ffi::cf_number_i64(signed).ok_or_else(|| cf("CFNumberCreate(length)"))?;
        let row = number(width, "CFNumberCreate(width)")?;
        let rows = number(height, "CFNumberCreate(height)")?;
        let one = ffi::cf_number_i64(1).ok_or_else(|| cf("CFNumberCreate(1)"))?;
        let dict = ffi::cf_mutable_dictionary().ok_or_else(|| cf("CFDictionaryCreateMutable"))?;
        ffi::cf_dictionary_set(&dict, SurfaceKey::Width, &row);
        ffi::cf_dictionary_set(&dict, SurfaceKey::Height, &rows);
        ffi::cf_dictionary_set(&dict, SurfaceKey::BytesPerElement, &one);
        ffi::cf_dictionary_set(&dict, SurfaceKey::BytesPerRow, &row);
        ffi::cf_dictionary_set(&dict, SurfaceKey::AllocSize, &bytes);

        let mut surface = SurfaceRef::create(&dict).ok_or(AppleError::SurfaceCreate { length })?;
        // dict and the numbers are released when they go out of scope; the
        // surface does not keep the dictionary.
        let status = surface.lock();
        if !status.is_success() {
            return Err(AppleError::SurfaceLock { status });
        }
        let alloc = surface.alloc_size() as u64;
        if alloc < length {
            return Err(AppleError::SurfaceSize {
                length,
                reason: format!("IOSurface allocated only {alloc} bytes"),
            });
        }
        Ok(IoSurface {
            surface,
            requested: length,
            page_size,
        })
    }

    /// The global IOSurface ID (for logs on both sides).
    pub fn id(&self) -> Option<u32> {
        Some(self.surface.id())
    }

    /// What backs it.
    #[cfg(target_os = "macos")]
    pub fn backing(&self) -> Backing {
        Backing::IoSurface
    }

    /// The OS page size, the grain of the surface and of the pattern.
    pub fn page_size(&self) -> PageSize {
        self.page_size
    }

    /// The base address in this process.
    pub fn addr(&self) -> VirtAddr {
        VirtAddr(self.base_address())
    }

    /// The surface's length: the size asked for, rounded up to whole pages.
    pub fn len(&self) -> u64 {
        self.requested
    }

    /// Always false: creation refuses 0 bytes.
    pub fn is_empty(&self) -> bool {
        self.requested == 0
    }

    /// What IOSurface allocated (at least `len()`, whole pages).
    pub fn alloc_size(&self) -> u64 {
        self.surface.alloc_size() as u64
    }

    /// The base address in this process: what the DEXT wraps with
    /// `CreateMemoryDescriptorFromClient`. Stable while the surface is locked.
    pub fn base_address(&self) -> u64 {
        self.surface.base_address()
    }

    /// The first `len()` bytes.
    pub fn as_slice(&self) -> &[u8] {
        let all = self.surface.bytes().unwrap_or(&[]);
        &all[..all.len().min(self.requested as usize)]
    }

    /// The first `len()` bytes, writable (to lay down the test pattern).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let requested = self.requested as usize;
        let all = self.surface.bytes_mut().unwrap_or(&mut []);
        let n = all.len().min(requested);
        &mut all[..n]
    }
}

/// The surface's shape, one byte per element: one row of `length` bytes
/// (the seed's layout) when IOSurface allows a row that wide, else rows of
/// one page. Either way the allocation is one range of at least `length`
/// bytes from the base address, which is all the probe uses. A maximum of
/// 0 means IOSurface states none.
fn layout(
    length: u64,
    page: u64,
    max_width: u64,
    max_bytes_per_row: u64,
    max_height: u64,
) -> Result<(u64, u64), String> {
    let fits = |v: u64, max: u64| max == 0 || v <= max;
    if fits(length, max_width) && fits(length, max_bytes_per_row) {
        return Ok((length, 1));
    }
    if page == 0 || !length.is_multiple_of(page) || !fits(page, max_width) {
        return Err(format!(
            "IOSurface allows rows of at most {max_width} bytes on this Mac, \
             and {length} is not a whole number of {page}-byte pages"
        ));
    }
    let rows = length / page;
    if !fits(rows, max_height) {
        return Err(format!(
            "IOSurface allows at most {max_height} rows of {page} bytes on this Mac; \
             ask for a smaller buffer"
        ));
    }
    Ok((page, rows))
}

fn ffi_max(key: SurfaceKey) -> u64 {
    key.maximum() as u64
}

impl std::fmt::Debug for IoSurface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoSurface")
            .field("id", &self.surface.id())
            .field("len", &self.requested)
            .field("base", &format_args!("{:#x}", self.base_address()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::layout;

    #[test]
    fn one_row_when_allowed_else_rows_of_a_page() {
        assert_eq!(layout(65536, 16384, 0, 0, 0), Ok((65536, 1)));
        assert_eq!(
            layout(65536, 16384, 1 << 20, 1 << 20, 1 << 14),
            Ok((65536, 1))
        );
        assert_eq!(layout(65536, 16384, 32768, 0, 16384), Ok((16384, 4)));
        assert!(layout(65536, 16384, 32768, 0, 2).is_err());
        assert!(layout(65537, 16384, 32768, 0, 0).is_err());
    }
}
