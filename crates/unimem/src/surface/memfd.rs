//! The Linux surface: a memfd of any size, rounded up to its page size,
//! sealed against shrinking (`F_SEAL_SHRINK`), mapped shared and populated
//! before anything resolves it. Backings: plain shmem (base pages), hugetlb
//! (`MFD_HUGETLB`, from the reserved pool) and shmem THP (collapsed with
//! `MADV_COLLAPSE`, which works whatever `shmem_enabled` says).

mod arrange;

pub use arrange::Arrangement;

use crate::error::{Error, ErrorKind, Result};
use crate::mapping::{Advice, Mapping};
use crate::system;
use rustix::fs::{self as rfs, MemfdFlags};
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use unimem_core::size::human;
use unimem_core::{PageSize, VirtAddr};

/// What kind of memory backs a surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backing {
    /// shmem in base pages (4 KiB on x86-64).
    Memfd,
    /// hugetlbfs pages from the reserved pool (`MFD_HUGETLB`).
    Hugetlb,
    /// shmem with transparent huge pages, as `shmem_enabled` allows.
    Thp,
}

impl Backing {
    /// The name output uses: `memfd`, `hugetlb`, `thp`.
    pub fn name(self) -> &'static str {
        match self {
            Backing::Memfd => "memfd",
            Backing::Hugetlb => "hugetlb",
            Backing::Thp => "thp",
        }
    }
}

impl fmt::Display for Backing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A populated, shared memfd mapping.
#[derive(Debug)]
pub struct Surface {
    // Field order matters: the mapping is unmapped before the fd closes.
    mapping: Mapping,
    fd: OwnedFd,
    backing: Backing,
    page_size: PageSize,
}

impl Surface {
    /// Creates a surface of at least `size` bytes (rounded up to the page
    /// size of `backing`) and populates every page.
    pub fn create(size: u64, backing: Backing) -> Result<Surface> {
        if size == 0 {
            return Err(Error::new(
                ErrorKind::InvalidRequest,
                "size is 0: a surface needs at least one page",
            ));
        }
        let page_size = match backing {
            Backing::Hugetlb => system::default_huge_page_size()
                .and_then(PageSize::new)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::Unsupported,
                        "this kernel has no hugetlb support (no Hugepagesize in /proc/meminfo)",
                    )
                })?,
            Backing::Memfd | Backing::Thp => system::page_size(),
        };
        let len = page_size.round_up(size).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidRequest,
                format!("size {size} is too large to round up to whole pages"),
            )
        })?;
        let len_usize = usize::try_from(len).map_err(|_| {
            Error::new(
                ErrorKind::InvalidRequest,
                format!("size {size} does not fit this machine's address space"),
            )
        })?;
        match backing {
            Backing::Hugetlb => check_huge_pool(page_size, len)?,
            Backing::Thp => {
                check_shmem_thp()?;
                check_available(len)?;
            }
            Backing::Memfd => check_available(len)?,
        }

        let mut flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
        if backing == Backing::Hugetlb {
            flags |= MemfdFlags::HUGETLB;
        }
        let fd = rfs::memfd_create("unimem-surface", flags)
            .map_err(|e| Error::with_source(ErrorKind::Io, "memfd_create failed", e.into()))?;
        rfs::ftruncate(&fd, len).map_err(|e| {
            Error::with_source(
                ErrorKind::Resources,
                format!("cannot size the memfd to {len} bytes"),
                e.into(),
            )
        })?;
        // A resolver pins the pages for as long as a device may use them;
        // sealed against shrinking, the file cannot lose them under it.
        rfs::fcntl_add_seals(&fd, rfs::SealFlags::SHRINK).map_err(|e| {
            Error::with_source(
                ErrorKind::Unsupported,
                "cannot seal the memfd against shrinking (F_SEAL_SHRINK)",
                e.into(),
            )
        })?;
        let mapping = Mapping::shared(&fd, 0, len_usize).map_err(|e| {
            if backing == Backing::Hugetlb && e.kind() == ErrorKind::Resources {
                Error::new(
                    ErrorKind::Resources,
                    format!(
                        "the hugetlb pool cannot reserve {} for the surface: {}",
                        human(len),
                        pool_advice(page_size, len)
                    ),
                )
            } else {
                e
            }
        })?;
        if backing == Backing::Thp {
            mapping.advise(Advice::Hugepage).map_err(|e| {
                Error::with_source(
                    ErrorKind::Unsupported,
                    "madvise(MADV_HUGEPAGE) failed",
                    e.into(),
                )
            })?;
        }
        let surface = Surface {
            mapping,
            fd,
            backing,
            page_size,
        };
        surface.populate()?;
        if backing == Backing::Thp {
            surface.collapse()?;
        }
        Ok(surface)
    }

    /// Takes over a surface another process created and passed its fd:
    /// a memfd (or a tmpfs or hugetlbfs file) opened read-write and sealed
    /// against shrinking (`F_SEAL_SHRINK`), since a file truncated under a
    /// mapping turns reads of the lost pages into SIGBUS. The whole file is
    /// mapped shared; nothing is faulted in, so pages its owner never wrote
    /// stay holes, and a resolver reports them as such.
    ///
    /// ```no_run
    /// # fn demo(fd: std::os::fd::OwnedFd) -> unimem::Result<()> {
    /// let surface = unimem::surface::Surface::from_fd(fd)?;
    /// println!("{} bytes at {:#x}", surface.len(), surface.addr().0);
    /// # Ok(()) }
    /// ```
    pub fn from_fd(fd: OwnedFd) -> Result<Surface> {
        const HUGETLBFS_MAGIC: i64 = 0x9584_58f6;
        let seals = rfs::fcntl_get_seals(&fd).unwrap_or(rfs::SealFlags::empty());
        if !seals.contains(rfs::SealFlags::SHRINK) {
            return Err(Error::new(
                ErrorKind::InvalidRequest,
                "the surface's file is not sealed against shrinking: its owner must seal it \
                 with fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) before passing it on",
            ));
        }
        let st = rfs::fstat(&fd)?;
        let len = u64::try_from(st.st_size).unwrap_or(0);
        if len == 0 {
            return Err(Error::new(
                ErrorKind::InvalidRequest,
                "the surface's file is empty: its owner must size it (ftruncate) first",
            ));
        }
        let (backing, page_size) = if rfs::fstatfs(&fd)?.f_type as i64 == HUGETLBFS_MAGIC {
            let page = PageSize::new(st.st_blksize as u64).ok_or_else(|| {
                Error::new(
                    ErrorKind::Unsupported,
                    "the hugetlbfs file reports a page size that is not a power of two",
                )
            })?;
            (Backing::Hugetlb, page)
        } else {
            (Backing::Memfd, system::page_size())
        };
        let len_usize = usize::try_from(len).map_err(|_| {
            Error::new(
                ErrorKind::InvalidRequest,
                format!("a file of {len} bytes does not fit this machine's address space"),
            )
        })?;
        let mapping = Mapping::shared(&fd, 0, len_usize)?;
        Ok(Surface {
            mapping,
            fd,
            backing,
            page_size,
        })
    }

    /// Faults in every page for writing, so each has a frame before any
    /// address is read.
    fn populate(&self) -> Result<()> {
        match self.mapping.advise(Advice::PopulateWrite) {
            Ok(()) => Ok(()),
            Err(e) if e == rustix::io::Errno::INVAL => {
                // Kernels before 5.14 lack MADV_POPULATE_WRITE. Touching
                // pages instead would turn a hugetlb shortage into SIGBUS.
                Err(Error::with_source(
                    ErrorKind::Unsupported,
                    "this kernel lacks MADV_POPULATE_WRITE (Linux 5.14+ is needed)",
                    e.into(),
                ))
            }
            Err(e) => Err(Error::with_source(
                ErrorKind::Resources,
                format!(
                    "cannot populate the {} surface of {} (out of memory?)",
                    self.backing,
                    human(self.len())
                ),
                e.into(),
            )),
        }
    }

    /// Rebuilds a THP surface in huge pages with `MADV_COLLAPSE`, so it is
    /// huge even where `shmem_enabled` is `never` and the fault path gave
    /// base pages.
    fn collapse(&self) -> Result<()> {
        self.mapping.advise(Advice::Collapse).map_err(|e| {
            let mode = system::thp_mode(system::THP_SHMEM_ENABLED).unwrap_or_default();
            let why = match e {
                rustix::io::Errno::INVAL if mode == "never" => format!(
                    "this kernel refuses to collapse shmem while {} is 'never' (some kernels \
                     collapse anyway, others, like 6.18, do not): as root, echo advise > {} and \
                     retry, or use --backing hugetlb",
                    system::THP_SHMEM_ENABLED,
                    system::THP_SHMEM_ENABLED
                ),
                rustix::io::Errno::INVAL => format!(
                    "this kernel has no MADV_COLLAPSE for shmem (Linux 6.1+ is needed; {} is \
                     '{mode}'): use --backing hugetlb",
                    system::THP_SHMEM_ENABLED
                ),
                rustix::io::Errno::AGAIN | rustix::io::Errno::NOMEM => {
                    "the kernel found no free huge pages (memory fragmented?): retry, or as root \
                     echo 1 > /proc/sys/vm/compact_memory first"
                        .to_string()
                }
                _ => "the kernel refused to collapse the surface into transparent huge pages"
                    .to_string(),
            };
            Error::with_source(
                ErrorKind::Unsupported,
                format!("MADV_COLLAPSE failed: {why}"),
                e.into(),
            )
        })
    }

    /// The surface's length in bytes: the size asked for, rounded up to whole pages.
    pub fn len(&self) -> u64 {
        self.mapping.len() as u64
    }

    /// Never true for a surface that was created: it has at least one page.
    pub fn is_empty(&self) -> bool {
        self.mapping.is_empty()
    }

    /// Where the surface is mapped in this process.
    pub fn addr(&self) -> VirtAddr {
        self.mapping.addr()
    }

    /// What memory backs it.
    pub fn backing(&self) -> Backing {
        self.backing
    }

    /// The page size of this surface's memory (a huge page size for hugetlb).
    pub fn page_size(&self) -> PageSize {
        self.page_size
    }

    /// The surface's bytes as the CPU sees them.
    pub fn as_slice(&self) -> &[u8] {
        self.mapping.as_slice()
    }

    /// The surface's bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.mapping.as_mut_slice()
    }

    /// The mapping itself, for pinning.
    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    /// The IOSurface id of a macOS surface; a memfd has none.
    pub fn id(&self) -> Option<u32> {
        None
    }

    /// The memfd, to pass to a resolver that must prove we hold it.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn check_available(len: u64) -> Result<()> {
    if let Some(avail) = system::available_memory() {
        if len > avail {
            return Err(Error::new(
                ErrorKind::Resources,
                format!(
                    "a surface of {} exceeds the {} of memory available (MemAvailable in /proc/meminfo); choose a smaller --size",
                    human(len),
                    human(avail)
                ),
            ));
        }
    }
    Ok(())
}

fn pool_advice(page: PageSize, len: u64) -> String {
    let needed = len / page.bytes();
    match system::huge_pools()
        .ok()
        .and_then(|p| p.into_iter().find(|p| p.page_size == page.bytes()))
    {
        Some(pool) => {
            let usable = pool.free.saturating_sub(pool.reserved);
            format!(
                "the pool of {} pages has {} free of {} ({} reserved) and {} are needed; as root: echo {} > {}",
                human(page.bytes()),
                usable,
                pool.total,
                pool.reserved,
                needed,
                pool.total + needed.saturating_sub(usable),
                system::NR_HUGEPAGES
            )
        }
        None => format!(
            "{needed} pages of {} are needed; reserve them in {}",
            human(page.bytes()),
            system::NR_HUGEPAGES
        ),
    }
}

fn check_huge_pool(page: PageSize, len: u64) -> Result<()> {
    let needed = len / page.bytes();
    let pools = system::huge_pools()?;
    let Some(pool) = pools.iter().find(|p| p.page_size == page.bytes()) else {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "no hugetlb pool of {} pages on this kernel",
                human(page.bytes())
            ),
        ));
    };
    if pool.free.saturating_sub(pool.reserved) < needed {
        let what = if pool.total == 0 {
            "is empty"
        } else {
            "is too small"
        };
        return Err(Error::new(
            ErrorKind::Resources,
            format!("the hugetlb pool {what}: {}", pool_advice(page, len)),
        ));
    }
    Ok(())
}

fn check_shmem_thp() -> Result<()> {
    match system::thp_mode(system::THP_SHMEM_ENABLED).as_deref() {
        None => Err(Error::new(
            ErrorKind::Unsupported,
            format!("this kernel has no shmem THP ({} is missing)", system::THP_SHMEM_ENABLED),
        )),
        // `never` only stops the fault path: MADV_COLLAPSE still builds
        // huge pages. `deny` refuses them to every caller.
        Some("deny") => Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "shmem THP is off ({} is 'deny', which refuses even MADV_COLLAPSE): as root, echo advise > {} and retry, or use --backing hugetlb",
                system::THP_SHMEM_ENABLED,
                system::THP_SHMEM_ENABLED
            ),
        )),
        Some(_) => Ok(()),
    }
}
