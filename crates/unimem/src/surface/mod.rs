//! Surfaces: the shared buffers unimem resolves.
//!
//! On Linux a surface is a memfd mapped `MAP_SHARED` and populated before
//! anything reads its addresses. Its fd is what the resolver service is
//! handed: proof that the client holds the memory.

mod memfd;

pub use memfd::{Arrangement, Backing, Surface};
