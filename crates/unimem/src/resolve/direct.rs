//! The direct resolver: this process reads its own pagemap. Needs
//! CAP_SYS_ADMIN; gives a snapshot of the addresses (no pin).

use super::{Prepared, Resolver};
use crate::error::Result;
use crate::pagemap::Pagemap;
use crate::surface::Surface;

#[derive(Debug)]
pub struct DirectResolver {
    pagemap: Pagemap,
}

impl DirectResolver {
    pub fn new() -> Result<Self> {
        Ok(Self {
            pagemap: Pagemap::open_self()?,
        })
    }
}

impl Resolver for DirectResolver {
    fn name(&self) -> &'static str {
        "direct"
    }

    fn describe(&self) -> String {
        "direct (/proc/self/pagemap)".into()
    }

    fn prepare(&mut self, surface: &Surface) -> Result<Prepared> {
        let map = self
            .pagemap
            .resolve(surface.addr(), surface.len(), surface.page_size())?;
        Ok(Prepared::new(map, false, Vec::new(), None))
    }
}
