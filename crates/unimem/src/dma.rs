//! A real device writes into a prepared surface: a file on a block device
//! is read with `O_DIRECT`, so the block device's DMA lands straight in the
//! surface's (pinned) pages, bypassing the page cache.
//!
//! With the surface registered as an io_uring fixed buffer the read is
//! `IORING_OP_READ_FIXED` (the kernel uses the pages it pinned at
//! registration, as a driver uses a prepared buffer); otherwise it is a
//! plain `O_DIRECT` `pread` into the mapping.
//!
//! Why the `unsafe` here is sound: the ring registers exactly the surface's
//! mapping, which the caller borrows mutably for the whole call; each read
//! targets a range inside it and is waited for before the next is queued
//! and before the function returns, and the buffers are unregistered
//! before the ring is dropped.
#![allow(unsafe_code)]

use crate::error::{Error, ErrorKind, Result};
use io_uring::{opcode, types, IoUring};
use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use unimem_core::checksum::Checksum;
use unimem_core::pattern::Pattern;

/// Bytes per read: within one registered buffer (at most 1 GiB), and
/// small enough that a short read costs little to redo.
const CHUNK: u64 = 16 << 20;

const SUGGEST: &str = "give a file on a block device (ext4, xfs on a disk), e.g. one made with \
     `dd if=/dev/urandom of=/var/tmp/dma.bin bs=1M count=64`";

/// A file opened for DMA.
#[derive(Debug)]
pub struct DmaSource {
    file: File,
    path: PathBuf,
    /// The file's length.
    pub length: u64,
    /// The block device the file lives on (`vda`, `nvme0n1p2`).
    pub device: String,
}

/// How a DMA went.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DmaRun {
    /// Bytes read, from the start of the file into the start of the
    /// surface.
    pub bytes: u64,
    /// Wall time of the reads alone (not opening or registering);
    /// serialized as seconds.
    #[serde(serialize_with = "seconds")]
    pub elapsed: Duration,
    /// `io_uring READ_FIXED` or `O_DIRECT pread`.
    pub method: &'static str,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl DmaSource {
    /// Opens `path` with `O_DIRECT`, refusing a file that no block device
    /// would DMA from (tmpfs, an overlay without direct I/O, a pipe).
    pub fn open(path: &Path) -> Result<DmaSource> {
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::NotFound {
                ErrorKind::NotFound
            } else {
                ErrorKind::Io
            };
            Error::with_source(kind, format!("cannot use '{shown}' for --dma-from"), e)
        })?;
        if !meta.is_file() {
            return Err(Error::new(
                ErrorKind::InvalidRequest,
                format!("'{shown}' is not a regular file; {SUGGEST}"),
            ));
        }
        let device = block_device(meta.dev()).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidRequest,
                format!(
                    "'{shown}' is not on a block device (tmpfs or another memory file system), so \
                     no device would write it; {SUGGEST}"
                ),
            )
        })?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .map_err(|e| {
                Error::with_source(
                    ErrorKind::Unsupported,
                    format!("the file system of '{shown}' refuses O_DIRECT; {SUGGEST}"),
                    e,
                )
            })?;
        Ok(DmaSource {
            file,
            path: path.to_path_buf(),
            length: meta.len(),
            device,
        })
    }

    /// Checks that `len` bytes can be read by DMA: whole pages (which
    /// satisfies any logical block size up to a page), and no more than
    /// the file holds.
    pub fn check_length(&self, len: u64, page: u64) -> Result<()> {
        let shown = self.path.display();
        if len == 0 || !len.is_multiple_of(page) {
            return Err(Error::new(
                ErrorKind::InvalidRequest,
                format!("a DMA of {len} bytes is not a whole number of {page}-byte pages, as O_DIRECT needs"),
            ));
        }
        if self.length < len {
            return Err(Error::new(
                ErrorKind::InvalidRequest,
                format!(
                    "'{shown}' holds {} bytes, fewer than the {len} to read into the surface: \
                     give a longer file on a block device, or a smaller --dma-len",
                    self.length
                ),
            ));
        }
        Ok(())
    }

    /// Reads the first `len` bytes into `surface` with READ_FIXED on a
    /// ring that registers the surface's memory.
    pub fn read_fixed(&self, surface: &mut [u8], len: u64) -> Result<DmaRun> {
        assert!(len <= surface.len() as u64, "DMA past the surface");
        let addr = surface.as_mut_ptr() as usize;
        let iovecs: Vec<libc::iovec> = (0..surface.len())
            .step_by(crate::pin::MAX_IOVEC)
            .map(|off| libc::iovec {
                iov_base: (addr + off) as *mut libc::c_void,
                iov_len: (surface.len() - off).min(crate::pin::MAX_IOVEC),
            })
            .collect();
        let mut ring = IoUring::new(4).map_err(|e| {
            Error::with_source(ErrorKind::Unsupported, "cannot create an io_uring", e)
        })?;
        // SAFETY: the iovecs cover `surface`, borrowed mutably until the
        // buffers are unregistered below.
        unsafe { ring.submitter().register_buffers(&iovecs) }.map_err(|e| {
            Error::with_source(
                ErrorKind::PrepareFailed,
                "cannot register the surface as an io_uring buffer",
                e,
            )
        })?;
        let start = Instant::now();
        let result = self.read_fixed_chunks(&mut ring, surface, len);
        let elapsed = start.elapsed();
        let _ = ring.submitter().unregister_buffers();
        result.map(|()| DmaRun {
            bytes: len,
            elapsed,
            method: "io_uring READ_FIXED",
        })
    }

    fn read_fixed_chunks(&self, ring: &mut IoUring, surface: &mut [u8], len: u64) -> Result<()> {
        let base = surface.as_mut_ptr();
        let fd = types::Fd(std::os::fd::AsRawFd::as_raw_fd(&self.file));
        let mut done = 0u64;
        while done < len {
            let index = done as usize / crate::pin::MAX_IOVEC;
            let to_iovec_end = ((index + 1) * crate::pin::MAX_IOVEC) as u64 - done;
            let n = (len - done).min(CHUNK).min(to_iovec_end);
            // SAFETY: `done + n <= len <= surface.len()`, inside buffer
            // `index` of the registration; the read is waited for below.
            let entry = opcode::ReadFixed::new(
                fd,
                unsafe { base.add(done as usize) },
                n as u32,
                index as u16,
            )
            .offset(done)
            .build();
            // SAFETY: the entry's buffer stays valid until its completion,
            // which is awaited before the next iteration.
            unsafe { ring.submission().push(&entry) }
                .map_err(|_| Error::new(ErrorKind::Io, "the io_uring submission queue is full"))?;
            ring.submit_and_wait(1)
                .map_err(|e| Error::with_source(ErrorKind::Io, "io_uring submit failed", e))?;
            let cqe = ring
                .completion()
                .next()
                .ok_or_else(|| Error::new(ErrorKind::Io, "io_uring gave no completion"))?;
            let res = cqe.result();
            if res < 0 {
                return Err(Error::with_source(
                    ErrorKind::Io,
                    format!("the O_DIRECT read at offset {done:#x} failed"),
                    std::io::Error::from_raw_os_error(-res),
                ));
            }
            if res == 0 {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!("the file ended at {done:#x}"),
                ));
            }
            // A short read resumes where it stopped (still block-aligned:
            // O_DIRECT transfers whole blocks).
            done += res as u64;
        }
        Ok(())
    }

    /// Reads the first `len` bytes into `surface` with O_DIRECT `pread`.
    pub fn read_direct(&self, surface: &mut [u8], len: u64) -> Result<DmaRun> {
        let buf = &mut surface[..len as usize];
        let start = Instant::now();
        let mut done = 0usize;
        while done < buf.len() {
            let end = (done + CHUNK as usize).min(buf.len());
            let n =
                rustix::io::pread(&self.file, &mut buf[done..end], done as u64).map_err(|e| {
                    Error::with_source(
                        ErrorKind::Io,
                        format!("the O_DIRECT read at offset {done:#x} failed"),
                        e.into(),
                    )
                })?;
            if n == 0 {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!("the file ended at {done:#x}"),
                ));
            }
            done += n;
        }
        Ok(DmaRun {
            bytes: len,
            elapsed: start.elapsed(),
            method: "O_DIRECT pread",
        })
    }

    /// The checksum `[offset, offset + length)` of the surface must have
    /// after a DMA of `dma_len` bytes: the file's bytes, read normally
    /// (through the page cache, not by DMA), below `dma_len`; the test
    /// pattern above it.
    pub fn expected_checksum(
        &self,
        pattern: &Pattern,
        dma_len: u64,
        offset: u64,
        length: u64,
    ) -> Result<u64> {
        let f = File::open(&self.path)
            .map_err(|e| Error::io(format!("cannot open '{}'", self.path.display()), e))?;
        let mut sum = Checksum::default();
        let mut buf = vec![0u8; 1 << 20];
        let end = offset + length;
        let mut at = offset;
        while at < end {
            let n = (end - at).min(buf.len() as u64);
            let n = if at < dma_len { n.min(dma_len - at) } else { n } as usize;
            if at < dma_len {
                std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf[..n], at)
                    .map_err(|e| Error::io(format!("cannot read '{}'", self.path.display()), e))?;
            } else {
                pattern.fill(at, &mut buf[..n]);
            }
            sum.update(&buf[..n]);
            at += n as u64;
        }
        Ok(sum.value())
    }
}

/// The name of the block device with number `dev` (`/sys/dev/block/M:m`),
/// if there is one.
fn block_device(dev: u64) -> Option<String> {
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let link = std::fs::read_link(format!("/sys/dev/block/{major}:{minor}")).ok()?;
    link.file_name()?.to_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_file_systems_and_missing_files_are_refused() {
        let e = DmaSource::open(Path::new("/nonexistent/dma.bin")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let shm = Path::new("/dev/shm/unimem-dma-test");
        std::fs::write(shm, vec![0u8; 4096]).unwrap();
        let e = DmaSource::open(shm).unwrap_err();
        let _ = std::fs::remove_file(shm);
        assert!(e.to_string().contains("not on a block device"), "{e}");
    }
}
