//! `unimem map`: the address map of an existing range of any process, with
//! page flags from /proc/kpageflags.

use crate::device::DeviceArgs;
use crate::output::{self, io_error};
use crate::probe::view::{render_nodes, NumaJson};
use crate::{EXIT_OK, EXIT_VERIFY_FAILED};
use clap::Args;
use serde::Serialize;
use std::fmt::Write;
use std::process::ExitCode;
use unimem::inspect::{self, ProcessMap};
use unimem::numa;
use unimem::Result;
use unimem_core::device::{render_verdict, DeviceVerdict};
use unimem_core::kpageflags::PageFlags;
use unimem_core::numa::split_by_node;
use unimem_core::report::{shown_rows, Shown};
use unimem_core::size::{human, parse_address, ByteSize};
use unimem_core::{Coverage, Target, VirtAddr};

#[derive(Debug, Args)]
pub struct MapArgs {
    /// Process whose memory to map.
    #[arg(long)]
    pub pid: u32,
    /// Start of the range (hex 0x... or decimal), page-aligned.
    #[arg(long, value_parser = parse_address_arg)]
    pub addr: u64,
    /// Length of the range: 4096, 2M, 1G.
    #[arg(long)]
    pub len: ByteSize,
    #[command(flatten)]
    pub output: crate::output::MapOutput,
    /// Split rows on every flag bit and print the words as read: the
    /// ageing bits (referenced, active, idle_page) and a huge page's
    /// compound_head/compound_tail then start rows of their own.
    #[arg(long)]
    pub raw: bool,
    /// A device's DMA limits to judge the map against.
    #[command(flatten)]
    pub device: DeviceArgs,
}

fn parse_address_arg(text: &str) -> std::result::Result<u64, String> {
    parse_address(text).map_err(|e| e.to_string())
}

pub fn run(args: &MapArgs) -> Result<ExitCode> {
    args.device.validate()?;
    let svg = args.output.svg_file()?;
    let pm = inspect::map_process(args.pid, VirtAddr(args.addr), args.len.bytes(), args.raw)?;
    let verdict = args.device.verdict(&pm.map);
    let runs = numa::node_runs(args.pid, VirtAddr(args.addr), args.len.bytes());
    let by_node = split_by_node(&pm.map, &runs);
    if let Some(svg) = svg {
        let subject = format!(
            "{} of process {} at {:#x}",
            human(args.len.bytes()),
            args.pid,
            args.addr
        );
        svg.write(&pm.map, subject, false)?;
    }
    if args.output.json {
        let mut doc = MapJson::new(&pm);
        doc.device = verdict.as_ref();
        doc.numa = Some(NumaJson::new(&by_node));
        output::json(&doc, args.output.pretty).map_err(io_error)?;
    } else {
        let mut text = render(&pm, args.output.all);
        if let Some(v) = &verdict {
            text.push_str(&render_verdict(v));
        }
        text.push_str(&render_nodes(&by_node));
        output::data(&text).map_err(io_error)?;
    }
    let full = pm.map.coverage() == Coverage::Full;
    let device_ok = verdict.as_ref().is_none_or(|v| v.ok);
    Ok(ExitCode::from(if full && device_ok {
        EXIT_OK
    } else {
        EXIT_VERIFY_FAILED
    }))
}

fn render(pm: &ProcessMap, all: bool) -> String {
    let map = &pm.map;
    let mut out = String::new();
    let _ = writeln!(out, "=== {} ===", map.kind().title());
    let _ = writeln!(out, "Process:        {}", pm.pid);
    let _ = writeln!(
        out,
        "Range:          {:#x}..{:#x}",
        pm.va.0,
        pm.va.0 + map.total_length()
    );
    let _ = writeln!(out, "Total length:   {} bytes", map.total_length());
    let _ = writeln!(out, "Segment count:  {}", map.address_segment_count());
    out.push('\n');
    let _ = writeln!(
        out,
        "{:<8} {:<16} {:<17} {:>12} {:>8}  Flags",
        "Seg#",
        "Virt Addr",
        map.kind().column(),
        "Length",
        "Pages"
    );
    let rule = "-".repeat(96);
    let _ = writeln!(out, "{rule}");
    for shown in shown_rows(pm.rows.len(), all) {
        let i = match shown {
            Shown::Row(i) => i,
            Shown::Elided(hidden) => {
                let _ = writeln!(
                    out,
                    "... {hidden} rows not shown (--all prints every row) ..."
                );
                continue;
            }
        };
        let r = &pm.rows[i];
        let addr = match r.target {
            Target::Address(a) => format!("0x{a:013x}"),
            other => format!("({})", other.name()),
        };
        let flags = r.flags.map_or_else(String::new, |f| f.describe());
        let _ = writeln!(
            out,
            "{:<8} 0x{:<14x} {:<17} {:>10} B {:>8}  {}",
            i,
            pm.va.0 + r.offset,
            addr,
            r.length,
            map.page_size().pages_in(r.length),
            flags
        );
    }
    let _ = writeln!(out, "{rule}");
    let mapped = map.mapped_bytes();
    let _ = writeln!(
        out,
        "Total mapped: {} bytes ({} pages)",
        mapped,
        mapped / map.page_size().bytes()
    );
    match map.coverage() {
        Coverage::Full => out.push_str("[+] Every page of the range is present\n"),
        Coverage::Gap {
            offset,
            length,
            reason,
            ..
        } => {
            let _ = writeln!(
                out,
                "[-] Not every page has an address: first hole {length} bytes at {:#x} ({reason})",
                pm.va.0 + offset
            );
        }
    }
    out
}

/// The JSON document of a map. Rows are serialized straight from the
/// process map as the writer asks for them: a map with a row per page has
/// hundreds of thousands, and copying them first would double the work.
#[derive(Serialize)]
struct MapJson<'a> {
    pid: u32,
    address_kind: &'static str,
    page_size: u64,
    virtual_address: u64,
    total_length: u64,
    mapped_bytes: u64,
    coverage: Coverage,
    segments: Rows<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<&'a DeviceVerdict>,
    #[serde(skip_serializing_if = "Option::is_none")]
    numa: Option<NumaJson<'a>>,
}

/// Every row of a process map, as a JSON array of [`RowJson`].
struct Rows<'a>(&'a ProcessMap);

impl Serialize for Rows<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let pm = self.0;
        s.collect_seq(pm.rows.iter().map(|r| RowJson {
            virtual_address: pm.va.0 + r.offset,
            offset: r.offset,
            address: match r.target {
                Target::Address(a) => Some(a),
                _ => None,
            },
            length: r.length,
            state: r.target.name(),
            flags: FlagNames(r.flags),
            flags_raw: r.flags.map(|f| f.0),
            mapping: r.mapping.as_deref(),
        }))
    }
}

#[derive(Serialize)]
struct RowJson<'a> {
    virtual_address: u64,
    offset: u64,
    /// `null` for holes.
    address: Option<unimem_core::SegmentAddr>,
    length: u64,
    state: &'static str,
    /// What every page of the row has, named as page-types names them.
    flags: FlagNames,
    /// The same bits as one word (`null` for holes and device memory).
    flags_raw: Option<u64>,
    mapping: Option<&'a str>,
}

/// The names of a row's page flags as a JSON array (empty without flags).
struct FlagNames(Option<PageFlags>);

impl Serialize for FlagNames {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.0.into_iter().flat_map(PageFlags::name_iter))
    }
}

impl<'a> MapJson<'a> {
    fn new(pm: &'a ProcessMap) -> Self {
        let map = &pm.map;
        MapJson {
            pid: pm.pid,
            address_kind: map.kind().name(),
            page_size: map.page_size().bytes(),
            virtual_address: pm.va.0,
            total_length: map.total_length(),
            mapped_bytes: map.mapped_bytes(),
            coverage: map.coverage(),
            segments: Rows(pm),
            device: None,
            numa: None,
        }
    }
}
