//! `unimem probe`: the seed experiment end to end.

use crate::output::{self, io_error};
use crate::{EXIT_OK, EXIT_VERIFY_FAILED};
use clap::{Args, ValueEnum};
use serde::Serialize;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use unimem::pagemap;
use unimem::probe::{self, ProbeOutcome, Step};
use unimem::resolve::service::ServiceResolver;
use unimem::resolve::{DirectResolver, Resolver};
use unimem::surface::Backing;
use unimem::{Error, ErrorKind, Result};
use unimem_core::pattern::Verification;
use unimem_core::report::{self, JsonSegment};
use unimem_core::size::{human, parse_size};
use unimem_core::Coverage;

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Surface size: 65536, 64K, 16M, 1G (rounded up to whole pages).
    #[arg(long, default_value = "64K", value_parser = parse_positive_size)]
    pub size: u64,
    /// What memory backs the surface.
    #[arg(long, value_enum, default_value_t = BackingArg::Memfd)]
    pub backing: BackingArg,
    /// Who resolves the addresses.
    #[arg(long, value_enum, default_value_t = Via::Auto)]
    pub via: Via,
    /// The resolver service's socket (with --via service or auto).
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
    #[arg(long)]
    pub no_pin: bool,
    /// Keep the surface (and its preparation) until standard input closes,
    /// so its addresses can be used or inspected meanwhile.
    #[arg(long)]
    pub hold: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackingArg {
    /// shmem in base pages
    Memfd,
    /// huge pages from the hugetlb pool (MFD_HUGETLB)
    Hugetlb,
    /// shmem transparent huge pages
    Thp,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Via {
    /// direct when this process can see PFNs, else the service
    Auto,
    /// read /proc/self/pagemap (needs CAP_SYS_ADMIN)
    Direct,
    /// ask the resolver service (`unimem serve`), which pins the pages
    Service,
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

/// Picks the resolver. Direct refuses up front when PFNs are hidden, so no
/// surface is made for nothing; auto falls back to the service, and when
/// neither way works says how to get each.
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
    }
}

pub fn run(args: &ProbeArgs) -> Result<ExitCode> {
    let mut resolver = resolver(args.via, &args.socket, !args.no_pin)?;
    let outcome = probe::probe(
        args.size,
        args.backing.into(),
        probe::fresh_salt(),
        resolver.as_mut(),
        |s| output::note(&step_line(&s)),
    )?;
    if args.json {
        output::json(&ProbeJson::new(&outcome, resolver.name())).map_err(io_error)?;
    } else {
        output::data(&render(&outcome, args.all)).map_err(io_error)?;
        if !outcome.prepared.pinned && outcome.prepared.map.coverage() == Coverage::Full {
            output::note("[*] Addresses are a snapshot: the pages were not pinned, and the kernel may migrate them.");
        }
        if outcome.prepared.pinned {
            output::note("[*] The pages stay pinned at these addresses until the probe exits.");
        }
    }
    if args.hold {
        output::note("[*] Holding the surface; close standard input (Ctrl-D) to release it.");
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    }
    Ok(ExitCode::from(if outcome.verified() {
        EXIT_OK
    } else {
        EXIT_VERIFY_FAILED
    }))
}

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

fn render(o: &ProbeOutcome, all: bool) -> String {
    let mut out = String::from("\n");
    out.push_str(&report::render_map(&o.prepared.map, all));
    out.push_str(&report::render_verification(&o.prepared.map, &o.integrity));
    for c in &o.checksums {
        if c.ok() {
            out.push_str(&format!(
                "[+] Resolver checksum matches over {} bytes at {:#x} ({:#018x})\n",
                c.length, c.offset, c.local
            ));
        } else {
            out.push_str(&format!(
                "[-] Resolver checksum MISMATCH over {} bytes at {:#x}: resolver {:#018x}, ours {:#018x}\n",
                c.length, c.offset, c.resolver, c.local
            ));
        }
    }
    out
}

#[derive(Serialize)]
struct ProbeJson<'a> {
    address_kind: &'static str,
    page_size: u64,
    total_length: u64,
    segments: Vec<JsonSegment>,
    verification: VerificationJson<'a>,
    surface: SurfaceJson,
    resolver: ResolverJson,
}

#[derive(Serialize)]
struct VerificationJson<'a> {
    ok: bool,
    coverage: Coverage,
    mapped_bytes: u64,
    integrity: IntegrityJson<'a>,
    checksums: &'a [probe::ChecksumCheck],
}

#[derive(Serialize)]
struct IntegrityJson<'a> {
    ok: bool,
    #[serde(flatten)]
    detail: &'a Verification,
}

#[derive(Serialize)]
struct SurfaceJson {
    backing: &'static str,
    virtual_address: u64,
    length: u64,
    pattern_salt: u64,
}

#[derive(Serialize)]
struct ResolverJson {
    name: &'static str,
    pinned: bool,
}

impl<'a> ProbeJson<'a> {
    fn new(o: &'a ProbeOutcome, resolver: &'static str) -> Self {
        let map = &o.prepared.map;
        ProbeJson {
            address_kind: map.kind().name(),
            page_size: map.page_size().bytes(),
            total_length: map.total_length(),
            segments: report::json_segments(map),
            verification: VerificationJson {
                ok: o.verified(),
                coverage: map.coverage(),
                mapped_bytes: map.mapped_bytes(),
                integrity: IntegrityJson {
                    ok: o.integrity.ok(),
                    detail: &o.integrity,
                },
                checksums: &o.checksums,
            },
            surface: SurfaceJson {
                backing: o.surface.backing().name(),
                virtual_address: o.surface.addr().0,
                length: o.surface.len(),
                pattern_salt: o.pattern.salt,
            },
            resolver: ResolverJson {
                name: resolver,
                pinned: o.prepared.pinned,
            },
        }
    }
}
