//! Reserving hugetlb pages for the benchmark, and giving them back.
//!
//! The pool size is machine-wide state (`/proc/sys/vm/nr_hugepages`), so a
//! [`PoolGuard`] writes the old value back when it drops: on success, on
//! error and on panic (unwinding drops it). SIGINT/SIGTERM are caught by
//! the benchmark while it runs, so an interrupt also unwinds through here.

use crate::Res;
use std::fs;
use unimem::system;

const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

/// Extra pages of the default huge page size, reserved until drop.
#[derive(Debug)]
pub struct PoolGuard {
    old: u64,
    /// Held while the pool is changed: the project's tests that change
    /// pools or THP modes take the same lock.
    _lock: fs::File,
}

/// The lock file every pool or THP change in the project serializes on.
const MM_LOCK: &str = "/tmp/unimem-mm-tests.lock";

impl PoolGuard {
    /// Grows the default pool so that `pages` more are free. Returns why
    /// not when the kernel cannot find them (the old size is restored).
    pub fn reserve(pages: u64) -> Res<PoolGuard> {
        let page = system::default_huge_page_size().ok_or("this kernel has no hugetlb pages")?;
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(MM_LOCK)?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)?;
        let read = || -> Res<u64> { Ok(fs::read_to_string(NR_HUGEPAGES)?.trim().parse()?) };
        let old = read()?;
        fs::write(NR_HUGEPAGES, format!("{}\n", old + pages))
            .map_err(|e| format!("cannot write {NR_HUGEPAGES} (needs root): {e}"))?;
        // From here on the guard restores `old`, whatever happens.
        let guard = PoolGuard { old, _lock: lock };
        let pool = system::huge_pools()?
            .into_iter()
            .find(|p| p.page_size == page)
            .ok_or("the default hugetlb pool is missing")?;
        let usable = pool.free.saturating_sub(pool.reserved);
        if usable < pages {
            return Err(format!(
                "the kernel found only {usable} of {pages} free huge pages of {} KiB (memory too fragmented?)",
                page >> 10
            )
            .into());
        }
        Ok(guard)
    }
}

impl Drop for PoolGuard {
    fn drop(&mut self) {
        if let Err(e) = fs::write(NR_HUGEPAGES, format!("{}\n", self.old)) {
            eprintln!(
                "unimem-bench: cannot restore {NR_HUGEPAGES} to {}: {e}; do it by hand",
                self.old
            );
        }
    }
}
