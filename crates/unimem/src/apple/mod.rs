//! The macOS backend: the seed's path, an IOSurface resolved by the
//! CybMemDriver DEXT.
//!
//! [`IoSurface`] allocates and locks the shared buffer; [`DextClient`]
//! connects to the DEXT (`dext/` in this repository) and turns a range of
//! the surface into DMA address segments that stay valid until completed,
//! plus checksums the DEXT computes through its own mapping. Failures are
//! [`AppleError`]s, one variant per thing a user does differently.
//!
//! The module builds on macOS, and on any OS with
//! `RUSTFLAGS="--cfg unimem_apple_check"` for `cargo check`/clippy, with
//! no Apple framework linked (see `ffi`).

mod dext;
mod error;
mod ffi;
mod iosurface;
pub mod probe;

pub use dext::{
    DextClient, DextPrepared, DextResolved, PreparedRange, Transport, MAX_PREPARED_RANGES,
    USER_CLIENT_TYPE,
};
pub use error::{AppleError, ACTIVATION_STEPS, DEXT_NAME};
pub use ffi::page_size;
pub use iosurface::IoSurface;
