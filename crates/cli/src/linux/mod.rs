//! The `unimem` command on Linux: memfd surfaces resolved through pagemap
//! directly or through the resolver service, plus `map` and `serve`, which
//! only Linux has.

pub mod info;
pub mod map;
pub mod serve;
pub mod watch;

use clap::{Args, ValueEnum};
use std::path::PathBuf;
use unimem::pagemap;
use unimem::resolve::{DirectResolver, Resolver, ServiceResolver};
use unimem::surface::Backing;
use unimem::{Error, ErrorKind, Result};

/// Who resolves the addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Via {
    /// direct when this process can see PFNs, else the service
    Auto,
    /// read /proc/self/pagemap (needs CAP_SYS_ADMIN)
    Direct,
    /// ask the resolver service (`unimem serve`), which pins the pages
    Service,
}

impl Via {
    /// The default `--via`.
    pub const DEFAULT: Via = Via::Auto;
}

/// What memory backs the surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackingArg {
    /// shmem in base pages
    Memfd,
    /// huge pages from the hugetlb pool (MFD_HUGETLB)
    Hugetlb,
    /// shmem transparent huge pages
    Thp,
}

impl BackingArg {
    /// The default `--backing`.
    pub const DEFAULT: BackingArg = BackingArg::Memfd;
}

impl From<BackingArg> for Backing {
    fn from(b: BackingArg) -> Backing {
        match b {
            BackingArg::Memfd => Backing::Memfd,
            BackingArg::Hugetlb => Backing::Hugetlb,
            BackingArg::Thp => Backing::Thp,
        }
    }
}

/// The probe's options that only Linux has.
#[derive(Debug, Args)]
pub struct ProbeOptions {
    /// The resolver service's socket (with --via service or auto).
    #[arg(long, default_value = unimem::service::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// The uid the resolver service must run as: the client checks the
    /// listening process's credentials before it sends the surface.
    #[arg(long, value_name = "UID", default_value_t = unimem::resolve::service::DEFAULT_SERVICE_UID)]
    pub service_uid: u32,
    /// With the direct resolver, read the addresses without pinning the
    /// pages first (a snapshot the kernel may invalidate by migrating them).
    #[arg(long)]
    pub no_pin: bool,
    /// After prepare, read FILE with O_DIRECT into the pinned surface (a
    /// block device's DMA), then verify addresses and bytes.
    #[arg(long, value_name = "FILE")]
    pub dma_from: Option<PathBuf>,
    /// Bytes to DMA from the start of FILE (default: the whole surface);
    /// the rest of the surface must keep its test pattern.
    #[arg(long, value_name = "SIZE", requires = "dma_from")]
    pub dma_len: Option<unimem_core::size::ByteSize>,
    /// Order of the surface's huge pages in the buffer: as the file has
    /// them, or by physical address so adjacent ones coalesce (needs
    /// --backing hugetlb and the direct resolver).
    #[arg(long, value_enum, default_value_t = Arrange::File)]
    pub arrange: Arrange,
}

/// The order of a hugetlb surface's pages in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Arrange {
    /// in file order (the kernel's choice of virtual layout)
    File,
    /// ordered by physical address
    Physical,
}

/// Picks the resolver. Direct refuses up front when PFNs are hidden, so no
/// surface is made for nothing; auto falls back to the service, and when
/// neither way works says how to get each.
pub fn resolver(via: Via, options: &ProbeOptions) -> Result<Box<dyn Resolver>> {
    let direct = || -> Result<Box<dyn Resolver>> {
        if !pagemap::can_see_pfns()? {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                pagemap::HIDDEN_PFNS,
            ));
        }
        Ok(Box::new(if options.no_pin {
            DirectResolver::unpinned()?
        } else {
            DirectResolver::new()?
        }))
    };
    let service = || -> Result<Box<dyn Resolver>> {
        Ok(Box::new(ServiceResolver::connect_to(
            &options.socket,
            options.service_uid,
        )?))
    };
    match via {
        Via::Direct => direct(),
        Via::Service => service(),
        Via::Auto => match direct() {
            Ok(r) => Ok(r),
            Err(d) if d.kind() == ErrorKind::PermissionDenied => service().map_err(|s| {
                Error::new(
                    s.kind(),
                    format!(
                        "no resolver can be used: this process cannot read PFNs (run as root for --via direct), \
                         and the resolver service is not usable ({s}); start it as root with \
                         `unimem serve --allow-uid {uid}` or see dist/README.md",
                        uid = rustix::process::getuid().as_raw()
                    ),
                )
            }),
            Err(d) => Err(d),
        },
    }
}
