//! Reading `/proc/kpageflags`: one u64 of page flags per PFN (root only).
//! Read in one `pread` per run of contiguous PFNs, not one per page.

use crate::error::{Error, ErrorKind, Result};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use unimem_core::kpageflags::PageFlags;
use unimem_core::Pfn;

/// The kernel's flags of every page frame, one little-endian u64 per PFN.
pub const PATH: &str = "/proc/kpageflags";

/// Entries read per `pread`.
const CHUNK: usize = 8192;

/// `/proc/kpageflags`, open for reading.
#[derive(Debug)]
pub struct KPageFlags {
    file: File,
}

impl KPageFlags {
    /// Opens it; without root this is a permission error that says so.
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
    /// in bounded chunks. Frames past the end of the file (device memory
    /// above the last RAM frame, such as a mapped PCI BAR) have no flags:
    /// `each` gets `None` for them.
    pub fn for_each(
        &self,
        first: Pfn,
        count: u64,
        mut each: impl FnMut(u64, Option<PageFlags>),
    ) -> Result<()> {
        let mut bytes = vec![0u8; (count as usize).min(CHUNK) * 8];
        let mut done = 0u64;
        while done < count {
            let n = ((count - done) as usize).min(CHUNK);
            let pfn = first.0 + done;
            let got = self.read_at(&mut bytes[..n * 8], pfn * 8)?;
            for i in 0..n {
                let flags = bytes[i * 8..]
                    .get(..8)
                    .filter(|_| (i + 1) * 8 <= got)
                    .map(|b| PageFlags(u64::from_le_bytes(b.try_into().expect("8 bytes"))));
                each(done + i as u64, flags);
            }
            done += n as u64;
        }
        Ok(())
    }

    /// Reads up to `buf.len()` bytes at `offset`; fewer only at end of file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match self.file.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let pfn = (offset + got as u64) / 8;
                    return Err(Error::io(format!("cannot read {PATH} at PFN {pfn:#x}"), e));
                }
            }
        }
        Ok(got)
    }
}
