//! `unimem probe`: the seed experiment end to end, on every platform.
//!
//! The platform picks the resolver (pagemap or the service on Linux, the
//! CybMemDriver DEXT on macOS); the rest — surface, pattern, prepare,
//! verification and output — is the same code everywhere (`view.rs`).

#[cfg(target_os = "linux")]
mod dma;
#[cfg(target_os = "linux")]
mod linux;
pub mod view;

use crate::device::DeviceArgs;
use crate::output;
use crate::platform::{self, BackingArg, ProbeOptions, Via};
use clap::Args;
use std::process::ExitCode;
use unimem::probe::{ProbeOutcome, Step};
use unimem::Result;
use unimem_core::size::{human, ByteSize};
use view::{ProbeView, ResolverJson, SurfaceJson};

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Surface size: 65536, 64K, 16M, 1G (rounded up to whole pages).
    #[arg(long, default_value = "64K")]
    pub size: ByteSize,
    /// What memory backs the surface.
    #[arg(long, value_enum, default_value_t = BackingArg::DEFAULT)]
    pub backing: BackingArg,
    /// Who resolves the addresses.
    #[arg(long, value_enum, default_value_t = Via::DEFAULT)]
    pub via: Via,
    #[command(flatten)]
    pub platform: ProbeOptions,
    /// Print one JSON document on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Print every row of a large map.
    #[arg(long)]
    pub all: bool,
    /// Keep the surface (and its preparation) until standard input closes,
    /// so its addresses can be used or inspected meanwhile.
    #[arg(long)]
    pub hold: bool,
    /// A device's DMA limits to judge the map against.
    #[command(flatten)]
    pub device: DeviceArgs,
}

pub fn run(args: &ProbeArgs) -> Result<ExitCode> {
    args.device.validate()?;
    #[cfg(target_os = "linux")]
    let dma_source = linux::open_dma_source(args)?;
    let mut resolver = platform::resolver(args.via, &args.platform)?;
    let note = |s| output::note(&step_line(&s));
    #[cfg(target_os = "linux")]
    let (mut outcome, arrangement) = linux::probe(args, resolver.as_mut(), note)?;
    #[cfg(not(target_os = "linux"))]
    let (outcome, arrangement) = (
        unimem::probe::probe(
            args.size.bytes(),
            args.backing.into(),
            unimem::probe::fresh_salt(),
            resolver.as_mut(),
            note,
        )?,
        None,
    );
    #[cfg(target_os = "linux")]
    let dma = linux::dma(args, dma_source.as_ref(), &mut outcome, resolver.as_mut())?;
    #[cfg(not(target_os = "linux"))]
    let dma = None;
    let mut view = outcome_view(&outcome, resolver.name());
    view.device = args.device.verdict(view.map);
    #[cfg(target_os = "linux")]
    {
        view.numa = Some(linux::numa_segments(&outcome));
    }
    view.dma = dma;
    view.arrangement = arrangement;
    view::finish(&view, args.json, args.all, args.hold)
}

fn outcome_view<'a>(o: &'a ProbeOutcome, resolver: &'static str) -> ProbeView<'a> {
    ProbeView {
        map: &o.prepared.map,
        integrity: &o.integrity,
        checksums: &o.checksums,
        checksums_required: o.prepared.checksums_required,
        surface: SurfaceJson {
            backing: o.surface.backing().name(),
            virtual_address: o.surface.addr().0,
            length: o.surface.len(),
            pattern_salt: o.pattern.salt,
            id: o.surface.id(),
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
            id,
        } => {
            let what = match id {
                Some(id) => format!("IOSurface {id}"),
                None => "Surface".to_string(),
            };
            format!(
                "[+] {what} at {addr:#x}: {len} bytes in pages of {}",
                human(*page_size)
            )
        }
        Step::WritingPattern { salt } => format!("[*] Writing test pattern (salt {salt:#018x})..."),
        Step::Connecting { resolver } => format!("[*] Connecting to resolver: {resolver}..."),
        Step::Requesting { len } => format!("[*] Requesting address segments for {len} bytes..."),
        Step::Verifying => "[*] Verifying coverage and data integrity...".to_string(),
    }
}
