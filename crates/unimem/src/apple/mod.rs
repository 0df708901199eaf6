//! The macOS backend: the seed's path, an IOSurface resolved by the
//! CybMemDriver DEXT.
//!
//! [`IoSurface`] allocates and locks the shared buffer; the DEXT client
//! (`crate::resolve::dext`, the shared protocol client over IOKit) turns
//! it into DMA address segments that stay valid until completed, plus
//! checksums the DEXT computes through its own mapping. [`AppleError`]
//! words each macOS failure; it reaches callers as a [`crate::Error`] of
//! the kind a user acts on.
//!
//! The module builds on macOS, and on any OS with
//! `RUSTFLAGS="--cfg unimem_apple_check"` for `cargo check`/clippy, with
//! no Apple framework linked (see `ffi`).

mod error;
pub(crate) mod ffi;
mod iosurface;
pub mod probe;

pub use crate::resolve::dext::{DextClient, MAX_PREPARED_RANGES, USER_CLIENT_TYPE};
pub use crate::resolve::protocol::PreparedRange;
pub use error::{AppleError, ACTIVATION_STEPS, DEXT_NAME};
pub use ffi::page_size;
pub use iosurface::IoSurface;
