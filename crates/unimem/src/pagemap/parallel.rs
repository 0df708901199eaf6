//! Several threads reading one range's pagemap at once.
//!
//! The kernel walks page tables for a pagemap read under the shared
//! (read) side of the mm lock, so positional reads from several threads
//! proceed side by side. The range is cut into work items of one chunk;
//! threads take the next item from a shared counter, read and decode it
//! into a map of its own. While one thread decodes item N another is
//! already reading item N+1, so reading and decoding overlap. The calling
//! thread takes items too, and appends every finished item in range order, which also joins
//! the runs that cross item borders: a push coalesces with the extent
//! before it, so the result is the map one sequential read gives. Items
//! are dropped once appended, so memory stays near the final segment list.

use super::{Pagemap, CHUNK_ENTRIES};
use crate::error::{Error, ErrorKind, Result};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, OnceLock};
use unimem_core::{PaMap, PageSize, VirtAddr};

/// Ranges of fewer base pages stay on the calling thread: starting threads
/// costs more than they would save (4 chunks are 128 MiB of 4 KiB pages,
/// about 1.5 ms of reading).
pub const PARALLEL_MIN_PAGES: u64 = 4 * CHUNK_ENTRIES as u64;

/// Threads used for one large range: one per core, counted once (the
/// count reads cgroup files, which costs more than a small read).
pub fn workers() -> usize {
    static WORKERS: OnceLock<usize> = OnceLock::new();
    *WORKERS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Whether `len` bytes are worth several threads.
pub fn worth_it(base: PageSize, len: u64) -> bool {
    len >> base.shift() >= PARALLEL_MIN_PAGES && workers() > 1
}

/// Resolves `[va, va + len)` (checked by the caller) into `map` with one
/// thread per core, reading every entry.
pub fn resolve_into(pm: &Pagemap, map: &mut PaMap, va: VirtAddr, len: u64) -> Result<()> {
    let item = (CHUNK_ENTRIES as u64) << pm.base_page().shift();
    run_items(map, va, len, item, |part, at, n, buf, origin| {
        pm.feed_range(part, at, n, buf, origin)
    })
}

/// Cuts `[va, va + len)` into items of `item_len` bytes (the last may be
/// shorter), has `work` resolve each into a map of its own on one of
/// several threads, and appends them to `map` in order. `work` gets the
/// item's map, address and length, a read buffer the thread keeps between
/// items, and the item's offset in the range (for error offsets). The
/// first error in range order wins, with every page before it appended,
/// as a sequential read leaves it.
pub(crate) fn run_items<F>(
    map: &mut PaMap,
    va: VirtAddr,
    len: u64,
    item_len: u64,
    work: F,
) -> Result<()>
where
    F: Fn(&mut PaMap, VirtAddr, u64, &mut Vec<u8>, u64) -> Result<()> + Sync,
{
    let items = len.div_ceil(item_len);
    // The calling thread works too, so a helper that gets no CPU on a busy
    // machine costs at most the one item it took, never a stall.
    let helpers = (workers() as u64).min(items).saturating_sub(1);
    let (kind, page_size) = (map.kind(), map.page_size());
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    // Takes the next item and resolves it; `None` when all are taken.
    let take = |buf: &mut Vec<u8>| -> Option<(u64, PaMap, Result<()>)> {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= items {
            return None;
        }
        let off = i * item_len;
        let n = item_len.min(len - off);
        let mut part = PaMap::new(kind, page_size, n);
        let r = work(&mut part, VirtAddr(va.0 + off), n, buf, off);
        if r.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        Some((i, part, r))
    };
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel::<(u64, PaMap, Result<()>)>();
        for _ in 0..helpers {
            let tx = tx.clone();
            let take = &take;
            s.spawn(move || {
                let mut buf = Vec::new();
                while let Some(done) = take(&mut buf) {
                    if tx.send(done).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut merge = Merge {
            waiting: BTreeMap::new(),
            want: 0,
        };
        let mut buf = Vec::new();
        let result = (|| {
            while let Some(done) = take(&mut buf) {
                merge.add(map, done)?;
                while let Ok(done) = rx.try_recv() {
                    merge.add(map, done)?;
                }
            }
            while merge.want < items {
                match rx.recv() {
                    Ok(done) => merge.add(map, done)?,
                    Err(_) => {
                        return Err(Error::new(
                            ErrorKind::Io,
                            format!(
                                "a pagemap reader thread stopped after {} of {items} chunks",
                                merge.want
                            ),
                        ))
                    }
                }
            }
            Ok(())
        })();
        // Whatever happened, the helpers stop at their next item.
        stop.store(true, Ordering::Relaxed);
        result
    })
}

/// Items resolved out of order, appended to the map in order.
struct Merge {
    waiting: BTreeMap<u64, (PaMap, Result<()>)>,
    /// The next item the map needs.
    want: u64,
}

impl Merge {
    /// Takes item `i` and appends every item that is now next in line.
    fn add(&mut self, map: &mut PaMap, (i, part, r): (u64, PaMap, Result<()>)) -> Result<()> {
        self.waiting.insert(i, (part, r));
        while let Some((part, r)) = self.waiting.remove(&self.want) {
            append(map, &part)?;
            r?;
            self.want += 1;
        }
        Ok(())
    }
}

/// Pushes the extents of `part` onto the end of `map`.
pub(crate) fn append(map: &mut PaMap, part: &PaMap) -> Result<()> {
    map.append(part)
        .map_err(|e| Error::new(ErrorKind::Protocol, format!("bad pagemap entry: {e}")))
}
