//! The `unimem` command on macOS: an IOSurface resolved by the
//! CybMemDriver DEXT. `map` and `serve` answer with one clear error.

pub mod info;
pub mod unsupported;

use clap::{Args, ValueEnum};
use unimem::resolve::{DextResolver, Resolver};
use unimem::surface::Backing;
use unimem::Result;

/// Who resolves the addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Via {
    /// ask the CybMemDriver DEXT, which keeps the pages prepared
    Dext,
}

impl Via {
    /// The default `--via`.
    pub const DEFAULT: Via = Via::Dext;
}

/// What memory backs the surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackingArg {
    /// an IOSurface, locked while it lives
    Iosurface,
}

impl BackingArg {
    /// The default `--backing`.
    pub const DEFAULT: BackingArg = BackingArg::Iosurface;
}

impl From<BackingArg> for Backing {
    fn from(b: BackingArg) -> Backing {
        match b {
            BackingArg::Iosurface => Backing::IoSurface,
        }
    }
}

/// The probe has no options only macOS has.
#[derive(Debug, Args)]
pub struct ProbeOptions {}

/// Opens the DEXT.
pub fn resolver(via: Via, _options: &ProbeOptions) -> Result<Box<dyn Resolver>> {
    match via {
        Via::Dext => Ok(Box::new(DextResolver::open()?)),
    }
}

/// `unimem map` and `unimem serve`: Linux only.
pub mod map {
    pub use super::unsupported::Rest as MapArgs;
    use std::process::ExitCode;

    pub fn run(_: &MapArgs) -> unimem::Result<ExitCode> {
        super::unsupported::run(
            "map",
            "it reads another process's /proc/PID/pagemap, which only Linux has",
        )
    }
}

/// `unimem serve`: Linux only.
pub mod serve {
    pub use super::unsupported::Rest as ServeArgs;
    use std::process::ExitCode;

    pub fn run(_: &ServeArgs) -> unimem::Result<ExitCode> {
        super::unsupported::run(
            "serve",
            "the resolver service is Linux's counterpart of the CybMemDriver DEXT; \
             on macOS activate the DEXT instead (DEVELOPMENT.md)",
        )
    }
}

/// `unimem watch`: Linux only.
pub mod watch {
    pub use super::unsupported::Rest as WatchArgs;
    use std::process::ExitCode;

    pub fn run(_: &WatchArgs) -> unimem::Result<ExitCode> {
        super::unsupported::run(
            "watch",
            "it re-reads another process's /proc/PID/pagemap, which only Linux has",
        )
    }
}
