//! `unimem probe`: the seed experiment end to end, on every platform.
//!
//! The platform picks the resolver (pagemap or the service on Linux, the
//! CybMemDriver DEXT on macOS); the rest — surface, pattern, prepare,
//! verification and output — is the same code everywhere (`view.rs`).

// What only one platform adds to a probe (Linux: arranging huge pages,
// DMA from a block device, NUMA nodes), behind the same calls on each.
#[cfg_attr(target_os = "linux", path = "probe/linux.rs")]
#[cfg_attr(target_os = "macos", path = "probe/macos.rs")]
mod steps;
pub mod view;

use crate::device::DeviceArgs;
use crate::platform::{self, BackingArg, ProbeOptions, Via};
use crate::progress::Progress;
use clap::Args;
use std::process::ExitCode;
use unimem::probe::{Advance, Phase, ProbeOutcome, Step};
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
    /// A device's DMA limits to judge the map against.
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub output: crate::output::MapOutput,
    /// Print no step lines and no progress bars on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// Keep the surface (and its preparation) until standard input closes,
    /// so its addresses can be used or inspected meanwhile.
    #[arg(long)]
    pub hold: bool,
}

pub fn run(args: &ProbeArgs) -> Result<ExitCode> {
    args.device.validate()?;
    let svg = args.output.svg_file()?;
    let extras = steps::Extras::open(args)?;
    let mut resolver = platform::resolver(args.via, &args.platform)?;
    let mut progress = Progress::new(args.size.bytes(), args.output.json, args.quiet);
    let (mut outcome, arrangement) = extras.probe(args, resolver.as_mut(), |s| match s {
        Step::Progress(Advance { phase, done, total }) => {
            let what = match phase {
                Phase::Fill => "fill",
                Phase::Verify => "verify",
            };
            progress.bytes(what, done, total)
        }
        Step::CreatingSurface { size, .. } => {
            progress.line(&step_line(&s));
            progress.waiting("create", size);
        }
        Step::Requesting { len } => {
            progress.line(&step_line(&s));
            progress.waiting("resolve", len);
        }
        s => progress.line(&step_line(&s)),
    })?;
    drop(progress);
    let dma = extras.dma(args, &mut outcome, resolver.as_mut())?;
    let mut view = outcome_view(&outcome, resolver.name());
    view.device = args.device.verdict(view.map);
    view.numa = steps::numa_segments(&outcome);
    view.dma = dma;
    view.arrangement = arrangement;
    if let Some(svg) = svg {
        let subject = format!(
            "{} {} surface",
            human(outcome.surface.len()),
            outcome.surface.backing().name()
        );
        svg.write(view.map, subject, args.quiet)?;
    }
    view::finish(&view, &args.output, args.hold)
}

/// The shared probe on the surface `args` ask for: what every platform
/// runs when nothing of its own (an arrangement) is asked for.
fn plain_probe(
    args: &ProbeArgs,
    resolver: &mut dyn unimem::resolve::Resolver,
    note: impl FnMut(Step),
) -> Result<ProbeOutcome> {
    unimem::probe::probe(
        args.size.bytes(),
        args.backing.into(),
        unimem::probe::fresh_salt(),
        resolver,
        note,
    )
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
        Step::Progress(_) => String::new(),
    }
}
