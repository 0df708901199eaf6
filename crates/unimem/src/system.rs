//! What this machine offers: page size, huge page pools, THP modes, kernel
//! release, available memory, and whether this process can see PFNs.

use crate::error::{Error, ErrorKind, Result};
use std::fs;
use std::path::Path;
use unimem_core::PageSize;

/// The base page size, from the OS.
pub fn page_size() -> PageSize {
    PageSize::new(rustix::param::page_size() as u64)
        .expect("the kernel's page size is a power of two >= 4096")
}

/// One hugetlb pool (`/sys/kernel/mm/hugepages/hugepages-<N>kB`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HugePool {
    /// Size of one huge page of this pool, in bytes.
    pub page_size: u64,
    /// Pages in the pool (`nr_hugepages`).
    pub total: u64,
    /// Pages not allocated yet (`free_hugepages`); reserved ones included.
    pub free: u64,
    /// Free pages already promised to a mapping (`resv_hugepages`), so not
    /// available to a new one.
    pub reserved: u64,
}

const HUGEPAGES: &str = "/sys/kernel/mm/hugepages";

fn read_u64(path: &Path) -> Result<u64> {
    let text = fs::read_to_string(path)
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    text.trim().parse().map_err(|_| {
        Error::new(
            ErrorKind::Io,
            format!("{} does not hold a number", path.display()),
        )
    })
}

/// Every hugetlb pool, smallest page size first.
pub fn huge_pools() -> Result<Vec<HugePool>> {
    let mut pools = Vec::new();
    let dir = match fs::read_dir(HUGEPAGES) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(pools),
        Err(e) => return Err(Error::io(format!("cannot list {HUGEPAGES}"), e)),
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(kb) = name
            .to_str()
            .and_then(|n| n.strip_prefix("hugepages-"))
            .and_then(|n| n.strip_suffix("kB"))
        else {
            continue;
        };
        let Ok(kb) = kb.parse::<u64>() else { continue };
        let p = entry.path();
        pools.push(HugePool {
            page_size: kb * 1024,
            total: read_u64(&p.join("nr_hugepages"))?,
            free: read_u64(&p.join("free_hugepages"))?,
            reserved: read_u64(&p.join("resv_hugepages"))?,
        });
    }
    pools.sort_by_key(|p| p.page_size);
    Ok(pools)
}

/// The default hugetlb page size (`Hugepagesize:` in /proc/meminfo).
pub fn default_huge_page_size() -> Option<u64> {
    meminfo_kb("Hugepagesize:").map(|kb| kb * 1024)
}

/// A `/proc/meminfo` field in kB.
pub fn meminfo_kb(field: &str) -> Option<u64> {
    let text = fs::read_to_string("/proc/meminfo").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Bytes of memory available for new allocations (`MemAvailable`).
pub fn available_memory() -> Option<u64> {
    meminfo_kb("MemAvailable:").map(|kb| kb * 1024)
}

/// The selected value of a sysfs mode file like `always [madvise] never`.
pub fn selected_mode(text: &str) -> Option<String> {
    let start = text.find('[')?;
    let end = text[start..].find(']')? + start;
    Some(text[start + 1..end].to_string())
}

/// THP mode for anonymous memory (`always`, `madvise`, `never`); read with
/// [`thp_mode`].
pub const THP_ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/enabled";
/// THP mode for shmem, and so for memfd surfaces (`always`, `within_size`,
/// `advise`, `never`, `deny`, `force`); read with [`thp_mode`].
pub const THP_SHMEM_ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/shmem_enabled";
/// Number of huge pages in the default-size hugetlb pool; writing it
/// (as root) grows or shrinks the pool.
pub const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

/// The selected mode of a THP sysfs file, if the kernel has it.
pub fn thp_mode(path: &str) -> Option<String> {
    fs::read_to_string(path)
        .ok()
        .as_deref()
        .and_then(selected_mode)
}

/// `uname -r`.
pub fn kernel_release() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selected_mode_reads_brackets() {
        assert_eq!(
            selected_mode("always [madvise] never\n").as_deref(),
            Some("madvise")
        );
        assert_eq!(
            selected_mode("always within_size advise [never] deny force").as_deref(),
            Some("never")
        );
        assert_eq!(selected_mode("none"), None);
    }

    #[test]
    fn page_size_is_what_the_kernel_maps_with() {
        // An independent reading: the kernel's page size for this
        // process's own stack mapping, as /proc/self/smaps reports it.
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let kib: u64 = smaps
            .lines()
            .find_map(|l| l.strip_prefix("KernelPageSize:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("smaps has a KernelPageSize line");
        assert_eq!(page_size().bytes(), kib * 1024);
    }
}
