//! `unimem probe`: the seed experiment end to end.
//!
//! Linux resolves a memfd surface directly through pagemap or through the
//! resolver service; macOS resolves an IOSurface through the CybMemDriver
//! DEXT (`--via dext`, see `dext.rs`). Both print through `view.rs`.

#[cfg(any(target_os = "macos", unimem_apple_check))]
mod dext;
mod view;

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
    /// The uid the resolver service must run as: the client checks the
    /// listening process's credentials before it sends the surface.
    #[cfg(target_os = "linux")]
    #[arg(long, value_name = "UID", default_value_t = 0)]
    pub service_uid: u32,
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
fn resolver(via: Via, socket: &Path, service_uid: u32, pin: bool) -> Result<Box<dyn Resolver>> {
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
    let service = || -> Result<Box<dyn Resolver>> {
        Ok(Box::new(ServiceResolver::connect_to(socket, service_uid)?))
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
        #[cfg(unimem_apple_check)]
        Via::Dext => Err(Error::new(
            ErrorKind::Unsupported,
            "--via dext does not use a Linux resolver",
        )),
    }
}

pub fn run(args: &ProbeArgs) -> Result<ExitCode> {
    match args.via {
        #[cfg(any(target_os = "macos", unimem_apple_check))]
        Via::Dext => dext::run(args),
        #[cfg(target_os = "linux")]
        via => run_linux(args, via),
    }
}

#[cfg(target_os = "linux")]
fn run_linux(args: &ProbeArgs, via: Via) -> Result<ExitCode> {
    let mut resolver = resolver(via, &args.socket, args.service_uid, !args.no_pin)?;
    let outcome = probe::probe(
        args.size,
        args.backing.into(),
        probe::fresh_salt(),
        resolver.as_mut(),
        |s| output::note(&step_line(&s)),
    )?;
    view::finish(
        &linux_view(&outcome, resolver.name()),
        args.json,
        args.all,
        args.hold,
    )
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
    }
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
