//! Surfaces: the shared buffers unimem resolves, one kind per platform.
//!
//! On Linux a surface is a memfd mapped `MAP_SHARED` and populated before
//! anything reads its addresses; its fd is what the resolver service is
//! handed, proof that the client holds the memory. On macOS it is an
//! IOSurface, locked for its lifetime, which the DEXT maps from this
//! process's address space. Both offer the same calls: `create`, `addr`,
//! `len`, `page_size`, `as_slice`, `as_mut_slice`, `backing` and `id`.

#[cfg(any(target_os = "macos", unimem_apple_check))]
mod iosurface;
#[cfg(target_os = "linux")]
mod memfd;

#[cfg(any(target_os = "macos", unimem_apple_check))]
pub use iosurface::{os_page_size, IoSurface};
#[cfg(target_os = "linux")]
pub use memfd::{Arrangement, Backing, Surface};
#[cfg(target_os = "macos")]
pub use {iosurface::Backing, iosurface::IoSurface as Surface};

use crate::error::Result;

/// Creates this platform's surface of at least `size` bytes (rounded up to
/// whole pages of its backing).
pub fn create(size: u64, backing: Backing) -> Result<Surface> {
    #[cfg(target_os = "linux")]
    return Surface::create(size, backing);
    #[cfg(target_os = "macos")]
    {
        let Backing::IoSurface = backing;
        IoSurface::create(size)
    }
}
