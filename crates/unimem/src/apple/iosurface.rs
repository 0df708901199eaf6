//! An IOSurface as a unimem surface: one plane of `length` bytes (width =
//! bytes, height 1, one byte per element), locked read-write for as long as
//! the value lives, so its base address stays put while the DEXT resolves
//! and pins the pages behind it.
//!
//! Every CoreFoundation object made on the way (the numbers and the
//! property dictionary) is owned by a value that releases it; the surface
//! is unlocked and released on drop.

use super::error::AppleError;
use super::ffi::{self, SurfaceKey, SurfaceRef};

/// A locked IOSurface of `len()` bytes.
pub struct IoSurface {
    surface: SurfaceRef,
    requested: u64,
}

impl IoSurface {
    /// Creates a surface of `length` bytes and locks it.
    pub fn create(length: u64) -> Result<Self, AppleError> {
        if length == 0 {
            return Err(AppleError::SurfaceSize {
                length,
                reason: "a surface needs at least one byte".into(),
            });
        }
        let signed = i64::try_from(length).map_err(|_| AppleError::SurfaceSize {
            length,
            reason: "larger than a CFNumber of type SInt64 can carry".into(),
        })?;
        // IOSurface bounds each property; ask rather than guess.
        for key in [SurfaceKey::Width, SurfaceKey::BytesPerRow] {
            let max = ffi_max(key);
            if max != 0 && length > max {
                return Err(AppleError::SurfaceSize {
                    length,
                    reason: format!(
                        "IOSurface allows at most {max} for {key:?} on this Mac; \
                         ask for a smaller buffer"
                    ),
                });
            }
        }

        let cf = |what: &'static str| AppleError::CoreFoundation { what };
        let bytes = ffi::cf_number_i64(signed).ok_or_else(|| cf("CFNumberCreate(length)"))?;
        let one = ffi::cf_number_i64(1).ok_or_else(|| cf("CFNumberCreate(1)"))?;
        let dict = ffi::cf_mutable_dictionary().ok_or_else(|| cf("CFDictionaryCreateMutable"))?;
        ffi::cf_dictionary_set(&dict, SurfaceKey::Width, &bytes);
        ffi::cf_dictionary_set(&dict, SurfaceKey::Height, &one);
        ffi::cf_dictionary_set(&dict, SurfaceKey::BytesPerElement, &one);
        ffi::cf_dictionary_set(&dict, SurfaceKey::BytesPerRow, &bytes);
        ffi::cf_dictionary_set(&dict, SurfaceKey::AllocSize, &bytes);

        let mut surface = SurfaceRef::create(&dict).ok_or(AppleError::SurfaceCreate { length })?;
        // dict, bytes and one are released when they go out of scope; the
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
        })
    }

    /// The global IOSurface ID (for logs on both sides).
    pub fn id(&self) -> u32 {
        self.surface.id()
    }

    /// The bytes the caller asked for.
    pub fn len(&self) -> u64 {
        self.requested
    }

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
    pub fn bytes(&self) -> &[u8] {
        let all = self.surface.bytes().unwrap_or(&[]);
        &all[..all.len().min(self.requested as usize)]
    }

    /// The first `len()` bytes, writable (to lay down the test pattern).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        let requested = self.requested as usize;
        let all = self.surface.bytes_mut().unwrap_or(&mut []);
        let n = all.len().min(requested);
        &mut all[..n]
    }
}

fn ffi_max(key: SurfaceKey) -> u64 {
    key.maximum() as u64
}

impl std::fmt::Debug for IoSurface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoSurface")
            .field("id", &self.id())
            .field("len", &self.requested)
            .field("base", &format_args!("{:#x}", self.base_address()))
            .finish()
    }
}
