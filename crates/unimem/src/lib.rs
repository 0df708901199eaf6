//! unimem: for a buffer shared between the CPU and devices, which physical
//! (or device) address ranges back it, and is the data there the data the
//! CPU wrote.
//!
//! This crate is the I/O on top of `unimem-core`: surfaces (a memfd on
//! Linux, an IOSurface on macOS), resolvers (pagemap read directly, the
//! resolver service, the CybMemDriver DEXT), and the Linux service itself.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod check;
#[cfg(target_os = "linux")]
pub mod dma;
pub mod error;
#[cfg(target_os = "linux")]
pub mod inspect;
#[cfg(target_os = "linux")]
pub mod iomem;
#[cfg(target_os = "linux")]
pub mod kpageflags;
mod lock;
#[cfg(target_os = "linux")]
pub mod mapping;
#[cfg(target_os = "linux")]
pub mod numa;
#[cfg(target_os = "linux")]
pub mod pagemap;
#[cfg(target_os = "linux")]
pub mod pin;
#[cfg(any(target_os = "linux", target_os = "macos"))]
pub mod probe;
pub mod resolve;
#[cfg(target_os = "linux")]
pub mod service;
#[cfg(any(target_os = "linux", target_os = "macos"))]
pub mod surface;
#[cfg(target_os = "linux")]
pub mod system;
#[cfg(target_os = "linux")]
pub mod vmstat;
#[cfg(target_os = "linux")]
pub mod watch;

pub use error::{Error, ErrorKind, Result};
pub use unimem_core as core;
#[cfg(any(target_os = "macos", unimem_apple_check))]
pub mod apple;
