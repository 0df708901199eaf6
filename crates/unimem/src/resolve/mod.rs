//! Resolvers: who turns a surface into its address map.
//!
//! `direct` reads this process's pagemap (needs CAP_SYS_ADMIN); the service
//! client asks `unimem serve` over a Unix socket; on macOS the DEXT client
//! asks CybMemDriver. All hand back a [`Prepared`] buffer: its map, valid
//! for as long as the value lives (pinned where the resolver pins), and any
//! checksums the resolver computed through its own mapping of the memory.
//!
//! The service and the DEXT speak the same wire protocol; `protocol` is its
//! one client, and each of them only a transport under it.

#[cfg(any(target_os = "macos", unimem_apple_check))]
pub mod dext;
#[cfg(target_os = "linux")]
pub mod direct;
pub mod protocol;
#[cfg(target_os = "linux")]
pub mod service;

#[cfg(any(target_os = "macos", unimem_apple_check))]
pub use dext::DextResolver;
#[cfg(target_os = "linux")]
pub use direct::DirectResolver;
#[cfg(any(target_os = "linux", target_os = "macos"))]
pub use resolver::{Prepared, RemoteChecksum, Resolver};
#[cfg(target_os = "linux")]
pub use service::ServiceResolver;

#[cfg(any(target_os = "linux", target_os = "macos"))]
mod resolver;
