//! What only macOS has: the IOKit, IOSurface and CoreFoundation calls
//! (`ffi`), and the words for each way they fail (`error`), which reach
//! callers as a [`crate::Error`] of the kind a user acts on.
//!
//! The IOSurface itself is `crate::surface::IoSurface`; the DEXT client is
//! `crate::resolve::dext`, the shared protocol client over IOKit.
//!
//! The module builds on macOS, and on any OS with
//! `RUSTFLAGS="--cfg unimem_apple_check"` for `cargo check`/clippy, with
//! no Apple framework linked (see `ffi`).

mod error;
pub(crate) mod ffi;

pub(crate) use error::AppleError;
pub use error::{ACTIVATION_STEPS, DEXT_NAME};
