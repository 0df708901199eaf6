//! `unimem probe --via dext` (macOS): the seed's path. An IOSurface is
//! resolved by the CybMemDriver DEXT; the map carries the address kind the
//! DEXT reports, so its addresses are never labelled physical unless the
//! DEXT says they are.

use super::view::{self, ProbeView, ResolverJson, SurfaceJson};
use super::ProbeArgs;
use crate::output;
use std::process::ExitCode;
use unimem::apple::probe::{self, Step};
use unimem::Result;
use unimem_core::size::human;

pub fn run(args: &ProbeArgs) -> Result<ExitCode> {
    let outcome = probe::probe(args.size, unimem::check::fresh_salt(), |s| {
        output::note(&step_line(&s))
    })?;
    let r = &outcome.resolved;
    let v = ProbeView {
        map: &r.map,
        integrity: &r.integrity,
        checksums: &r.checksums,
        surface: SurfaceJson {
            backing: "iosurface",
            virtual_address: outcome.surface_va,
            length: outcome.surface_len,
            pattern_salt: outcome.pattern.salt,
            id: Some(outcome.surface_id),
        },
        // The DEXT keeps its DMA commands prepared (pages wired) until the
        // range is completed or the connection closes.
        resolver: ResolverJson {
            name: "dext",
            pinned: true,
        },
        device: args.device.verdict(&r.map),
        // The DEXT's reply carries no node.
        numa: None,
        dma: None,
        arrangement: None,
    };
    view::finish(&v, args.json, args.all, args.hold)
}

fn step_line(step: &Step) -> String {
    match step {
        Step::CreatingSurface { size } => {
            format!(
                "[*] Creating IOSurface of {size} bytes ({})...",
                human(*size)
            )
        }
        Step::SurfaceReady {
            id,
            addr,
            len,
            page_size,
        } => format!(
            "[+] IOSurface {id} at {addr:#x}: {len} bytes in pages of {}",
            human(*page_size)
        ),
        Step::WritingPattern { salt } => format!("[*] Writing test pattern (salt {salt:#018x})..."),
        Step::Connecting => format!("[*] Connecting to the {} DEXT...", unimem::apple::DEXT_NAME),
        Step::Connected {
            server_version,
            protocol,
        } => format!("[+] Connected: {server_version}, protocol {protocol}"),
        Step::Requesting { len } => format!("[*] Requesting address segments for {len} bytes..."),
        Step::Verifying => "[*] Verifying coverage and data integrity...".to_string(),
    }
}
