//! Whether a client's file is, and stays, the memory the service pinned.
//!
//! Three checks, none of which allocates a page of the client's file:
//!
//! - **Seals at prepare.** A memfd must carry `F_SEAL_SHRINK`, so the file
//!   cannot be truncated under a prepared range (the kernel's udmabuf asks
//!   the same). A surface sealed against writing is refused by name: the
//!   service pins for writing.
//! - **Backed at prepare.** Every page of the range must already exist in
//!   the file: pinning a hole would allocate the client's memory at the
//!   service's expense. tmpfs answers `SEEK_DATA`/`SEEK_HOLE` from its page
//!   cache without allocating; hugetlbfs does not track holes that way, so
//!   there the file's allocated blocks must cover its whole size.
//! - **Still the pinned pages before every reply.** Hole punching is
//!   possible under `F_SEAL_SHRINK`. Punching or truncating a range zaps
//!   every mapping's page-table entries, the service's included, while the
//!   pinned pages live on as orphans. So the service re-reads the pagemap of
//!   its own mapping over the pages a reply describes and compares each
//!   entry with the frame it recorded at prepare: a page that is not present
//!   or has another frame means the file changed. Reading pagemap never
//!   faults anything in. A page that is only unmapped from the service
//!   (reclaim may unmap a pinned page it then cannot free; compaction puts
//!   a migration entry in place for a moment) is not a change: a migration
//!   entry is read again, and a page the file still has (`mincore`) is
//!   mapped again, which allocates nothing, and its frame compared.

use super::rule::Rule;
use super::{sys, Refusal};
use crate::pagemap::Pagemap;
use rustix::fs::{SealFlags, SeekFrom};
use rustix::io::Errno;
use std::os::fd::AsFd;
use unimem_core::{PaMap, VirtAddr};

/// pagemap entry bit: the page is present.
const PRESENT: u64 = 1 << 63;
/// pagemap entry bit: a swap entry. A pinned page is never swapped out;
/// what shows this way is a migration entry while compaction tries (and
/// fails) to move the pinned page, which puts it back at once.
const SWAPPED: u64 = 1 << 62;
/// Times a chunk is read again while it shows such a transient entry.
const TRANSIENT_RETRIES: u32 = 200;
/// The frame now mapped at `va` after mapping the file's page there again,
/// or None if the file has no page at that offset (a hole), which is left
/// alone.
fn remap_if_in_file(pagemap: &Pagemap, va: VirtAddr, page: u64) -> Result<Option<u64>, Refusal> {
    match sys::page_resident(va.0, page as usize) {
        Ok(true) => {}
        Ok(false) | Err(_) => return Ok(None),
    }
    let mut byte = [0u8; 1];
    if sys::read_own_memory(va.0, &mut byte).is_err() {
        return Ok(None);
    }
    let mut word = [0u64; 1];
    pagemap.read(va, &mut word).map_err(|e| {
        Refusal::from_errno(
            "read the service's pagemap",
            e.os_code().unwrap_or(libc::EIO),
            e.to_string(),
        )
    })?;
    Ok((word[0] & PRESENT != 0).then_some(word[0] & PFN_MASK))
}

/// pagemap entry bits 0–54: the page frame number.
const PFN_MASK: u64 = (1 << 55) - 1;
/// Pagemap entries read per `pread` when verifying.
const CHUNK_PAGES: usize = 64 << 10;

/// Refuses a memfd that may shrink or may not be written.
pub fn check_seals(fd: impl AsFd, hugetlb: bool) -> Result<(), Refusal> {
    let seals = match rustix::fs::fcntl_get_seals(&fd) {
        Ok(s) => s,
        // A file that does not support sealing at all (a tmpfs file made by
        // open, or an old kernel's hugetlbfs) cannot promise to stay put.
        Err(Errno::INVAL) => SealFlags::empty(),
        Err(e) => return Err(Refusal::os("fcntl(F_GET_SEALS) on the client's fd", e)),
    };
    if seals.intersects(SealFlags::WRITE | SealFlags::FUTURE_WRITE) {
        return Err(Refusal::rule(Rule::WriteSealed, format!("seals {seals:?}")));
    }
    if !seals.contains(SealFlags::SHRINK) {
        let kind = if hugetlb { "hugetlbfs file" } else { "memfd" };
        return Err(Refusal::rule(
            Rule::NotShrinkSealed,
            format!("{kind} with seals {seals:?}"),
        ));
    }
    Ok(())
}

/// Refuses `[offset, offset + length)` unless every page of it is backed.
pub fn check_backed(
    fd: impl AsFd,
    hugetlb: bool,
    offset: u64,
    length: u64,
    file_size: u64,
) -> Result<(), Refusal> {
    let end = offset + length;
    if hugetlb {
        // hugetlbfs counts the huge pages in its page cache in st_blocks
        // and answers SEEK_HOLE with the file size, holes or not.
        let st = rustix::fs::fstat(&fd).map_err(|e| Refusal::os("fstat of the client's fd", e))?;
        let allocated = (st.st_blocks.max(0) as u64).saturating_mul(512);
        if allocated < file_size {
            return Err(Refusal::rule(
                Rule::NotBacked,
                format!(
                    "hugetlbfs file of {file_size:#x} bytes has only {allocated:#x} allocated \
                     (every huge page of the file must be written)"
                ),
            ));
        }
        return Ok(());
    }
    match rustix::fs::seek(&fd, SeekFrom::Hole(offset)) {
        Ok(hole) if hole >= end => Ok(()),
        Ok(hole) => Err(Refusal::rule(
            Rule::NotBacked,
            format!("hole at offset {hole:#x} of {offset:#x}+{length:#x}"),
        )),
        // ENXIO: offset at or past the end of the file (checked before,
        // but the client may have changed it since).
        Err(Errno::NXIO) => Err(Refusal::rule(
            Rule::NotBacked,
            format!("offset {offset:#x} is past the end of the file"),
        )),
        Err(e) => Err(Refusal::os("lseek(SEEK_HOLE) on the client's fd", e)),
    }
}

/// Bytes the file has allocated now (`st_blocks`), to see whether pinning
/// had to fill a hole that appeared after [`check_backed`].
pub fn allocated_bytes(fd: impl AsFd) -> Result<u64, Refusal> {
    let st = rustix::fs::fstat(&fd).map_err(|e| Refusal::os("fstat of the client's fd", e))?;
    Ok((st.st_blocks.max(0) as u64).saturating_mul(512))
}

/// Checks that `[offset, offset + length)` of a prepared range, mapped by
/// the service at `base`, is still backed by the frames `map` recorded at
/// prepare: one pagemap read of those pages and a compare.
pub fn verify_unchanged(
    pagemap: &Pagemap,
    map: &PaMap,
    base: VirtAddr,
    offset: u64,
    length: u64,
) -> Result<(), Refusal> {
    let shift = pagemap.base_page().shift();
    let page = 1u64 << shift;
    let pages = (length >> shift) as usize;
    let mut words = vec![0u64; pages.min(CHUNK_PAGES)];
    let segs = map.segments();
    let mut seg = segs.partition_point(|s| s.end() <= offset);
    let mut done = 0usize;
    while done < pages {
        let n = (pages - done).min(CHUNK_PAGES);
        let at = offset + ((done as u64) << shift);
        let mut retries = 0;
        loop {
            pagemap
                .read(VirtAddr(base.0 + at), &mut words[..n])
                .map_err(|e| {
                    Refusal::from_errno(
                        "read the service's pagemap",
                        e.os_code().unwrap_or(libc::EIO),
                        e.to_string(),
                    )
                })?;
            if retries == TRANSIENT_RETRIES || !words[..n].iter().any(|w| w & SWAPPED != 0) {
                break;
            }
            retries += 1;
            std::thread::sleep(std::time::Duration::from_micros(500));
        }
        for (i, &w) in words[..n].iter().enumerate() {
            let off = at + ((i as u64) << shift);
            while seg < segs.len() && segs[seg].end() <= off {
                seg += 1;
            }
            let expected = segs
                .get(seg)
                .and_then(|s| Some(s.address()?.get() + (off - s.offset)))
                .map(|a| a / page);
            let mut now = (w & PRESENT != 0).then_some(w & PFN_MASK);
            if now.is_none() {
                // Not mapped here now. Punched out, or only unmapped from
                // this process (reclaim may unmap a pinned page it then
                // cannot free)? A page still in the file is mapped again
                // (it exists, so nothing is allocated) and compared.
                now = remap_if_in_file(pagemap, VirtAddr(base.0 + off), page)?;
            }
            if now.is_none() || now != expected {
                let what = match now {
                    None => "is no longer in the file".to_string(),
                    Some(pfn) => format!("is now frame {pfn:#x}"),
                };
                return Err(Refusal::rule(
                    Rule::SurfaceChanged,
                    format!("the page at offset {off:#x} {what}"),
                ));
            }
        }
        done += n;
    }
    Ok(())
}
