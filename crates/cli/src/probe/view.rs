//! What `unimem probe` prints, whichever platform resolved the surface: a
//! platform-neutral view of the outcome, rendered as the seed's table and
//! verification lines or as one JSON document, and the exit code.

use crate::output::{self, io_error};
use crate::{EXIT_OK, EXIT_VERIFY_FAILED};
use serde::Serialize;
use std::process::ExitCode;
use unimem::check::ChecksumCheck;
use unimem::Result;
use unimem_core::device::{render_verdict, DeviceVerdict};
use unimem_core::map::PaMap;
use unimem_core::numa::{per_node, Node, NodeSegment};
use unimem_core::pattern::Verification;
use unimem_core::report::{self, JsonSegment};
use unimem_core::Coverage;

/// A probe's outcome, borrowed from the platform's own outcome type.
pub struct ProbeView<'a> {
    pub map: &'a PaMap,
    pub integrity: &'a Verification,
    pub checksums: &'a [ChecksumCheck],
    /// Whether the resolver vouches with checksums (so one is owed).
    pub checksums_required: bool,
    pub surface: SurfaceJson,
    pub resolver: ResolverJson,
    /// The verdict on the device limits given on the command line.
    pub device: Option<DeviceVerdict>,
    /// Address segments split by NUMA node, where the platform tells.
    pub numa: Option<Vec<NodeSegment>>,
    /// What a DMA into the prepared surface showed (`--dma-from`).
    pub dma: Option<Extra>,
    /// How arranging the huge pages changed the runs (`--arrange`).
    pub arrangement: Option<Extra>,
}

/// A result of an optional step, already rendered for both outputs.
pub struct Extra {
    pub ok: bool,
    /// Its `[+]`/`[-]` lines.
    pub lines: String,
    /// Its JSON object.
    pub json: serde_json::Value,
}

impl ProbeView<'_> {
    /// The library's one rule (`unimem::probe::verified`), and every
    /// device limit given met and a DMA, if one was asked for, verified.
    pub fn verified(&self) -> bool {
        unimem::probe::verified(
            &self.map.coverage(),
            self.integrity,
            self.checksums,
            self.checksums_required,
        ) && self.device.as_ref().is_none_or(|d| d.ok)
            && self.dma.as_ref().is_none_or(|d| d.ok)
    }
}

/// Prints the view (table, or JSON indented with `pretty`), holds the
/// surface if asked, and returns the exit code: 0 verified, 1 not.
pub fn finish(view: &ProbeView<'_>, shown: &output::MapOutput, hold: bool) -> Result<ExitCode> {
    if shown.json {
        output::json(&ProbeJson::new(view), shown.pretty).map_err(io_error)?;
    } else {
        output::data(&render(view, shown.all)).map_err(io_error)?;
        if !view.resolver.pinned && view.map.coverage() == Coverage::Full {
            output::note("[*] Addresses are a snapshot: the pages were not pinned, and the kernel may migrate them.");
        }
        if view.resolver.pinned {
            output::note("[*] The pages stay pinned at these addresses until the probe exits.");
        }
    }
    if hold {
        output::note("[*] Holding the surface; close standard input (Ctrl-D) to release it.");
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
    }
    Ok(ExitCode::from(if view.verified() {
        EXIT_OK
    } else {
        EXIT_VERIFY_FAILED
    }))
}

/// The seed's block (titled by the address kind), the verification lines,
/// and one line per resolver checksum.
pub fn render(v: &ProbeView<'_>, all: bool) -> String {
    let mut out = String::from("\n");
    out.push_str(&report::render_map(v.map, all));
    out.push_str(&report::render_verification(v.map, v.integrity));
    for c in v.checksums {
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
    if let Some(a) = &v.arrangement {
        out.push_str(&a.lines);
    }
    if let Some(d) = &v.dma {
        out.push_str(&d.lines);
    }
    if let Some(d) = &v.device {
        out.push_str(&render_verdict(d));
    }
    if let Some(segments) = &v.numa {
        out.push_str(&render_nodes(segments));
    }
    out
}

/// One line per NUMA node, only when the buffer spans more than one
/// (a single-node machine prints nothing: every page is on node 0).
pub fn render_nodes(segments: &[NodeSegment]) -> String {
    let nodes = per_node(segments);
    if nodes.len() < 2 {
        return String::new();
    }
    let mut out = String::from("NUMA nodes:\n");
    for (node, bytes, count) in nodes {
        out.push_str(&format!(
            "    node {node:<8} {bytes} bytes in {count} segments\n"
        ));
    }
    out
}

/// The `numa` object of the JSON documents. `segments` is left out when
/// one known node holds the whole buffer (every address segment is then on
/// `nodes[0]`), so the document does not double on single-node machines.
#[derive(Serialize)]
pub struct NumaJson<'a> {
    nodes: Vec<NodeBytes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    segments: Option<&'a [NodeSegment]>,
}

#[derive(Serialize)]
struct NodeBytes {
    node: Node,
    bytes: u64,
    segments: usize,
}

impl<'a> NumaJson<'a> {
    pub fn new(segments: &'a [NodeSegment]) -> Self {
        let nodes: Vec<NodeBytes> = per_node(segments)
            .into_iter()
            .map(|(node, bytes, segments)| NodeBytes {
                node,
                bytes,
                segments,
            })
            .collect();
        let one_known = nodes.len() == 1 && nodes[0].node.0.is_some();
        NumaJson {
            nodes,
            segments: (!one_known).then_some(segments),
        }
    }
}

#[derive(Serialize)]
pub struct ProbeJson<'a> {
    address_kind: &'static str,
    page_size: u64,
    total_length: u64,
    segments: Vec<JsonSegment>,
    verification: VerificationJson<'a>,
    surface: &'a SurfaceJson,
    resolver: &'a ResolverJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<&'a DeviceVerdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    numa: Option<NumaJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dma: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arrangement: Option<&'a serde_json::Value>,
}

#[derive(Serialize)]
struct VerificationJson<'a> {
    ok: bool,
    coverage: Coverage,
    mapped_bytes: u64,
    integrity: IntegrityJson<'a>,
    checksums: &'a [ChecksumCheck],
}

#[derive(Serialize)]
struct IntegrityJson<'a> {
    ok: bool,
    #[serde(flatten)]
    detail: &'a Verification,
}

#[derive(Serialize)]
pub struct SurfaceJson {
    pub backing: &'static str,
    pub virtual_address: u64,
    pub length: u64,
    pub pattern_salt: u64,
    /// The IOSurface ID on macOS; absent on Linux.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u32>,
}

#[derive(Serialize)]
pub struct ResolverJson {
    pub name: &'static str,
    pub pinned: bool,
}

impl<'a> ProbeJson<'a> {
    pub fn new(v: &'a ProbeView<'a>) -> Self {
        let map = v.map;
        ProbeJson {
            address_kind: map.kind().name(),
            page_size: map.page_size().bytes(),
            total_length: map.total_length(),
            segments: report::json_segments(map),
            verification: VerificationJson {
                ok: v.verified(),
                coverage: map.coverage(),
                mapped_bytes: map.mapped_bytes(),
                integrity: IntegrityJson {
                    ok: v.integrity.ok(),
                    detail: v.integrity,
                },
                checksums: v.checksums,
            },
            surface: &v.surface,
            resolver: &v.resolver,
            device: v.device.as_ref(),
            numa: v.numa.as_deref().map(NumaJson::new),
            dma: v.dma.as_ref().map(|d| &d.json),
            arrangement: v.arrangement.as_ref().map(|a| &a.json),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use unimem_core::addr::{AddressKind, PageSize};
    use unimem_core::pattern::Pattern;

    /// Four scattered pages, as a DEXT could return them.
    fn dext_like_map() -> PaMap {
        let page = PageSize::new(16384).unwrap();
        let mut map = PaMap::new(AddressKind::DmaUnresolved, page, 4 * 16384);
        for a in [
            0x8_0010_0000u64,
            0x8_0030_4000,
            0x8_0010_8000,
            0x8_0050_c000,
        ] {
            map.push(16384, map.target(a)).unwrap();
        }
        map
    }

    /// What the macOS probe shows for `map`: an IOSurface resolved by the
    /// DEXT, which vouches with checksums.
    fn dext_view<'a>(
        map: &'a PaMap,
        integrity: &'a Verification,
        checksums: &'a [ChecksumCheck],
    ) -> ProbeView<'a> {
        ProbeView {
            map,
            integrity,
            checksums,
            checksums_required: true,
            surface: SurfaceJson {
                backing: "iosurface",
                virtual_address: 0x1_0000_0000,
                length: 4 * 16384,
                pattern_salt: 3,
                id: Some(9),
            },
            resolver: ResolverJson {
                name: "dext",
                pinned: true,
            },
            device: None,
            numa: None,
            dma: None,
            arrangement: None,
        }
    }

    #[test]
    fn a_dext_map_is_never_called_physical() {
        let map = dext_like_map();
        let pattern = Pattern::new(map.page_size(), 3);
        let mut bytes = vec![0u8; 4 * 16384];
        pattern.fill(0, &mut bytes);
        let integrity = pattern.verify(0, &bytes);
        let checks = [ChecksumCheck::against(
            &bytes,
            0,
            bytes.len() as u64,
            unimem_core::checksum::checksum(&bytes),
        )];
        let view = dext_view(&map, &integrity, &checks);
        assert!(view.verified());
        let text = render(&view, false);
        assert!(!text.contains("Phys"), "{text}");
        assert!(text.contains("DMA Addr"), "{text}");
        assert!(text.contains("Segment count:  4"), "{text}");
        assert!(
            text.contains("[+] Full surface coverage verified"),
            "{text}"
        );
        assert!(text.contains("[+] Resolver checksum matches"), "{text}");
        let json = serde_json::to_value(ProbeJson::new(&view)).unwrap();
        assert_eq!(json["address_kind"], "dma_unresolved");
        assert_eq!(json["page_size"], 16384);
        assert_eq!(json["surface"]["id"], 9);
        assert_eq!(json["resolver"]["pinned"], true);
        assert_eq!(json["verification"]["ok"], true);
    }

    #[test]
    fn a_dext_map_without_its_checksum_does_not_verify() {
        let map = dext_like_map();
        let pattern = Pattern::new(map.page_size(), 3);
        let mut bytes = vec![0u8; 4 * 16384];
        pattern.fill(0, &mut bytes);
        let integrity = pattern.verify(0, &bytes);
        let view = dext_view(&map, &integrity, &[]);
        assert!(!view.verified());
        let json = serde_json::to_value(ProbeJson::new(&view)).unwrap();
        assert_eq!(json["verification"]["ok"], false);
    }
}
