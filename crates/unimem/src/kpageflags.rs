//! Reading `/proc/kpageflags`: one u64 of page flags per PFN (root only).
//! Read in one `pread` per run of contiguous PFNs, not one per page.

use crate::error::{Error, ErrorKind, Result};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use unimem_core::kpageflags::PageFlags;
use unimem_core::Pfn;

pub const PATH: &str = "/proc/kpageflags";

/// Entries read per `pread`.
const CHUNK: usize = 8192;

#[derive(Debug)]
pub struct KPageFlags {
    file: File,
}

impl KPageFlags {
    pub fn open() -> Result<Self> {
        let file = File::open(PATH).map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => Error::with_source(
                ErrorKind::PermissionDenied,
                format!("cannot open {PATH}: page flags are readable by root only"),
                e,
            ),
            _ => Error::io(format!("cannot open {PATH}"), e),
        })?;
        Ok(Self { file })
    }

    /// Calls `each(index, flags)` for `count` frames from `first`, reading
    /// in bounded chunks.
    pub fn for_each(
        &self,
        first: Pfn,
        count: u64,
        mut each: impl FnMut(u64, PageFlags),
    ) -> Result<()> {
        let mut bytes = vec![0u8; (count as usize).min(CHUNK) * 8];
        let mut done = 0u64;
        while done < count {
            let n = ((count - done) as usize).min(CHUNK);
            let pfn = first.0 + done;
            self.file
                .read_exact_at(&mut bytes[..n * 8], pfn * 8)
                .map_err(|e| Error::io(format!("cannot read {PATH} at PFN {pfn:#x}"), e))?;
            for (i, b) in bytes[..n * 8].chunks_exact(8).enumerate() {
                each(
                    done + i as u64,
                    PageFlags(u64::from_le_bytes(b.try_into().expect("8 bytes"))),
                );
            }
            done += n as u64;
        }
        Ok(())
    }
}
