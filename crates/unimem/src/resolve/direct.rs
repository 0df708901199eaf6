//! The direct resolver: this process reads its own pagemap. Needs
//! CAP_SYS_ADMIN. By default it first takes a long-term pin on the surface
//! (io_uring buffer registration), so the addresses it reads stay valid for
//! as long as the [`Prepared`] lives; unpinned, they are a snapshot the
//! kernel may invalidate at any time by migrating pages.

use super::{Prepared, Resolver};
use crate::error::Result;
use crate::pagemap::Pagemap;
use crate::pin::Pin;
use crate::surface::Surface;

/// A [`Resolver`] that reads `/proc/self/pagemap` in this process: physical
/// addresses, pinned first unless made with [`DirectResolver::unpinned`].
#[derive(Debug)]
pub struct DirectResolver {
    pagemap: Pagemap,
    pin: bool,
}

impl DirectResolver {
    /// A resolver that pins before reading addresses.
    pub fn new() -> Result<Self> {
        Ok(Self {
            pagemap: Pagemap::open_self()?,
            pin: true,
        })
    }

    /// A resolver that reads a snapshot without pinning.
    pub fn unpinned() -> Result<Self> {
        Ok(Self {
            pagemap: Pagemap::open_self()?,
            pin: false,
        })
    }
}

impl Resolver for DirectResolver {
    fn name(&self) -> &'static str {
        "direct"
    }

    fn describe(&self) -> String {
        let how = if self.pin {
            "pinned with io_uring"
        } else {
            "unpinned snapshot"
        };
        format!("direct (/proc/self/pagemap, {how})")
    }

    fn prepare(&mut self, surface: &Surface) -> Result<Prepared> {
        // Pinning may migrate pages (out of ZONE_MOVABLE or CMA): read the
        // addresses only once the pin holds.
        let pin = if self.pin {
            Some(Pin::new(surface.mapping()).map_err(|e| {
                e.with_hint("`--no-pin` reads an unpinned snapshot of the addresses instead")
            })?)
        } else {
            None
        };
        let map = self
            .pagemap
            .resolve(surface.addr(), surface.len(), surface.page_size())?;
        let pinned = pin.is_some();
        let hold = pin.map(|p| Box::new(p) as Box<dyn Send>);
        Ok(Prepared::new(map, pinned, hold))
    }
}
