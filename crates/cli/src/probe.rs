//! `unimem probe`: the seed experiment end to end.
//!
//! Linux resolves a memfd surface directly through pagemap or through the
//! resolver service; macOS resolves an IOSurface through the CybMemDriver
//! DEXT (`--via dext`, see `dext.rs`). Both print through `view.rs`.

#[cfg(any(target_os = "macos", unimem_apple_check))]
mod dext;
#[cfg(target_os = "linux")]
mod dma;
pub mod view;

use crate::device::DeviceArgs;
use clap::builder::PossibleValue;
use clap::{Args, ValueEnum};
use std::process::ExitCode;
use unimem::Result;
use unimem_core::size::parse_size;
#[cfg(target_os = "linux")]
use {
    crate::output,
    std::path::{Path, PathBuf},
    unimem::pagemap,
    unimem::probe::{self, ProbeOutcome, Step},
    unimem::resolve::service::ServiceResolver,
    unimem::resolve::{DirectResolver, Resolver},
    unimem::surface::Backing,
    unimem::{Error, ErrorKind},
    unimem_core::size::human,
    view::{ProbeView, ResolverJson, SurfaceJson},
};

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Surface size: 65536, 64K, 16M, 1G (rounded up to whole pages).
    #[arg(long, default_value = "64K", value_parser = parse_positive_size)]
    pub size: u64,
    /// What memory backs the surface.
    #[cfg(target_os = "linux")]
    #[arg(long, value_enum, default_value_t = BackingArg::Memfd)]
    pub backing: BackingArg,
    /// Who resolves the addresses.
    #[arg(long, value_enum, default_value_t = Via::DEFAULT)]
    pub via: Via,
    /// The resolver service's socket (with --via service or auto).
    #[cfg(target_os = "linux")]
    #[arg(long, default_value = unimem::service::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Print one JSON document on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Print every row of a large map.
    #[arg(long)]
    pub all: bool,
    /// With the direct resolver, read the addresses without pinning the
    /// pages first (a snapshot the kernel may invalidate by migrating them).
    #[cfg(target_os = "linux")]
    #[arg(long)]
    pub no_pin: bool,
    /// Keep the surface (and its preparation) until standard input closes,
    /// so its addresses can be used or inspected meanwhile.
    #[arg(long)]
    pub hold: bool,
    /// A device's DMA limits to judge the map against.
    #[command(flatten)]
    pub device: DeviceArgs,
    /// After prepare, read FILE with O_DIRECT into the pinned surface (a
    /// block device's DMA), then verify addresses and bytes.
    #[cfg(target_os = "linux")]
    #[arg(long, value_name = "FILE")]
    pub dma_from: Option<PathBuf>,
    /// Bytes to DMA from the start of FILE (default: the whole surface);
    /// the rest of the surface must keep its test pattern.
    #[cfg(target_os = "linux")]
    #[arg(long, value_name = "SIZE", requires = "dma_from", value_parser = parse_positive_size)]
    pub dma_len: Option<u64>,
    /// Order of the surface's huge pages in the buffer: as the file has
    /// them, or by physical address so adjacent ones coalesce (needs
    /// --backing hugetlb and the direct resolver).
    #[cfg(target_os = "linux")]
    #[arg(long, value_enum, default_value_t = Arrange::File)]
    pub arrange: Arrange,
}

#[cfg(target_os = "linux")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Arrange {
    /// in file order (the kernel's choice of virtual layout)
    File,
    /// ordered by physical address
    Physical,
}

#[cfg(target_os = "linux")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackingArg {
    /// shmem in base pages
    Memfd,
    /// huge pages from the hugetlb pool (MFD_HUGETLB)
    Hugetlb,
    /// shmem transparent huge pages
    Thp,
}

#[cfg(target_os = "linux")]
impl From<BackingArg> for Backing {
    fn from(b: BackingArg) -> Backing {
        match b {
            BackingArg::Memfd => Backing::Memfd,
            BackingArg::Hugetlb => Backing::Hugetlb,
            BackingArg::Thp => Backing::Thp,
        }
    }
}

/// Who resolves the addresses. Each platform offers its own ways (the
/// values are listed by hand so that `cfg` can choose them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    #[cfg(target_os = "linux")]
    Auto,
    #[cfg(target_os = "linux")]
    Direct,
    #[cfg(target_os = "linux")]
    Service,
    #[cfg(any(target_os = "macos", unimem_apple_check))]
    Dext,
}

impl Via {
    #[cfg(target_os = "linux")]
    pub const DEFAULT: Via = Via::Auto;
    #[cfg(not(target_os = "linux"))]
    pub const DEFAULT: Via = Via::Dext;

    const ALL: &'static [Via] = &[
        #[cfg(target_os = "linux")]
        Via::Auto,
        #[cfg(target_os = "linux")]
        Via::Direct,
        #[cfg(target_os = "linux")]
        Via::Service,
        #[cfg(any(target_os = "macos", unimem_apple_check))]
        Via::Dext,
    ];
}

impl ValueEnum for Via {
    fn value_variants<'a>() -> &'a [Self] {
        Via::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            #[cfg(target_os = "linux")]
            Via::Auto => PossibleValue::new("auto")
                .help("direct when this process can see PFNs, else the service"),
            #[cfg(target_os = "linux")]
            Via::Direct => {
                PossibleValue::new("direct").help("read /proc/self/pagemap (needs CAP_SYS_ADMIN)")
            }
            #[cfg(target_os = "linux")]
            Via::Service => PossibleValue::new("service")
                .help("ask the resolver service (`unimem serve`), which pins the pages"),
            #[cfg(any(target_os = "macos", unimem_apple_check))]
            Via::Dext => PossibleValue::new("dext")
                .help("ask the CybMemDriver DEXT (macOS), which keeps the pages prepared"),
        })
    }
}

fn parse_positive_size(text: &str) -> std::result::Result<u64, String> {
    match parse_size(text) {
        Ok(0) => Err(format!(
            "size '{text}' is 0: a surface needs at least one byte"
        )),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// Picks the resolver (Linux). Direct refuses up front when PFNs are
/// hidden, so no surface is made for nothing; auto falls back to the
/// service, and when neither way works says how to get each.
#[cfg(target_os = "linux")]
fn resolver(via: Via, socket: &Path, pin: bool) -> Result<Box<dyn Resolver>> {
    let direct = || -> Result<Box<dyn Resolver>> {
        if !pagemap::can_see_pfns()? {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                pagemap::HIDDEN_PFNS,
            ));
        }
        Ok(Box::new(if pin {
            DirectResolver::new()?
        } else {
            DirectResolver::unpinned()?
        }))
    };
    let service =
        || -> Result<Box<dyn Resolver>> { Ok(Box::new(ServiceResolver::connect(socket)?)) };
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
        #[cfg(unimem_apple_check)]
        Via::Dext => Err(Error::new(
            ErrorKind::Unsupported,
            "--via dext does not use a Linux resolver",
        )),
    }
}

pub fn run(args: &ProbeArgs) -> Result<ExitCode> {
    args.device.validate()?;
    match args.via {
        #[cfg(any(target_os = "macos", unimem_apple_check))]
        Via::Dext => dext::run(args),
        #[cfg(target_os = "linux")]
        via => run_linux(args, via),
    }
}

#[cfg(target_os = "linux")]
fn run_linux(args: &ProbeArgs, via: Via) -> Result<ExitCode> {
    let dma_source = args.dma_from.as_deref().map(dma::open).transpose()?;
    if args.arrange == Arrange::Physical && args.backing != BackingArg::Hugetlb {
        return Err(Error::new(
            ErrorKind::InvalidRequest,
            "--arrange physical needs --backing hugetlb: only huge pages stay where they are once ordered",
        ));
    }
    let mut resolver = resolver(via, &args.socket, !args.no_pin)?;
    let note = |s| output::note(&step_line(&s));
    let (mut outcome, arrangement) = if args.arrange == Arrange::Physical {
        if resolver.name() != "direct" {
            return Err(Error::new(
                ErrorKind::InvalidRequest,
                "--arrange physical needs the direct resolver (--via direct, as root): the service \
                 maps the surface's file in file order, not in this process's order",
            ));
        }
        note(Step::CreatingSurface {
            size: args.size,
            backing: Backing::Hugetlb,
        });
        let mut surface = unimem::surface::Surface::create(args.size, Backing::Hugetlb)?;
        let arrangement = surface.arrange_physical()?;
        let outcome = probe::probe_surface(surface, probe::fresh_salt(), resolver.as_mut(), note)?;
        (outcome, Some(arrangement))
    } else {
        let outcome = probe::probe(
            args.size,
            args.backing.into(),
            probe::fresh_salt(),
            resolver.as_mut(),
            note,
        )?;
        (outcome, None)
    };
    let dma_report = match (&dma_source, &args.dma_from) {
        (Some(src), Some(path)) => {
            output::note(&format!(
                "[*] Reading {} into the surface with O_DIRECT...",
                path.display()
            ));
            Some(dma::run(
                src,
                path,
                args.dma_len,
                &mut outcome,
                resolver.as_mut(),
            )?)
        }
        _ => None,
    };
    let mut view = linux_view(&outcome, resolver.name());
    view.dma = dma_report.map(|r| view::Extra {
        ok: r.ok,
        lines: r.lines(),
        json: serde_json::to_value(&r).unwrap_or_default(),
    });
    view.device = args.device.verdict(view.map);
    view.numa = Some(numa_segments(&outcome));
    view.arrangement = arrangement.map(|a| view::Extra {
        ok: true,
        lines: arrangement_line(&a),
        json: serde_json::to_value(a).unwrap_or_default(),
    });
    view::finish(&view, args.json, args.all, args.hold)
}

#[cfg(target_os = "linux")]
fn linux_view<'a>(o: &'a ProbeOutcome, resolver: &'static str) -> ProbeView<'a> {
    ProbeView {
        map: &o.prepared.map,
        integrity: &o.integrity,
        checksums: &o.checksums,
        surface: SurfaceJson {
            backing: o.surface.backing().name(),
            virtual_address: o.surface.addr().0,
            length: o.surface.len(),
            pattern_salt: o.pattern.salt,
            id: None,
        },
        resolver: ResolverJson {
            name: resolver,
            pinned: o.prepared.pinned,
        },
        device: None,
        numa: None,
        dma: None,
        arrangement: None,
    }
}

#[cfg(target_os = "linux")]
fn arrangement_line(a: &unimem::surface::Arrangement) -> String {
    format!(
        "[+] Arranged {} huge pages by physical address: contiguous runs {} -> {}, largest run {} -> {}\n",
        a.huge_pages,
        a.runs_before,
        a.runs_after,
        human(a.largest_run_before),
        human(a.largest_run_after)
    )
}

/// The surface's segments split by NUMA node, read in this process (which
/// maps the surface on every path).
#[cfg(target_os = "linux")]
fn numa_segments(o: &ProbeOutcome) -> Vec<unimem_core::numa::NodeSegment> {
    let runs = unimem::numa::node_runs(0, o.surface.addr(), o.surface.len());
    unimem_core::numa::split_by_node(&o.prepared.map, &runs)
}

#[cfg(target_os = "linux")]
fn step_line(step: &Step) -> String {
    match step {
        Step::CreatingSurface { size, backing } => {
            format!(
                "[*] Creating {backing} surface of {size} bytes ({})...",
                human(*size)
            )
        }
        Step::SurfaceReady {
            addr,
            len,
            page_size,
        } => {
            format!(
                "[+] Surface at {addr:#x}: {len} bytes in pages of {}",
                human(*page_size)
            )
        }
        Step::WritingPattern { salt } => format!("[*] Writing test pattern (salt {salt:#018x})..."),
        Step::Connecting { resolver } => format!("[*] Connecting to resolver: {resolver}..."),
        Step::Requesting { len } => format!("[*] Requesting address segments for {len} bytes..."),
        Step::Verifying => "[*] Verifying coverage and data integrity...".to_string(),
    }
}
