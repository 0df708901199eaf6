//! Renderers: the seed's "Physical Address Map" block, byte for byte where
//! the values fit the seed's columns, and the verification lines.
//!
//! ```text
//! === Physical Address Map ===
//! Total length:   65536 bytes
//! Segment count:  4
//!
//! Seg#     Phys Addr       Length    Pages
//! --------------------------------------------------
//! 0        0x0000800100000  16384 B      1
//! --------------------------------------------------
//! Total mapped: 65536 bytes (4 pages)
//! ```
//!
//! Columns widen (and the heading with them) only when a value does not fit
//! the seed's width, so columns stay aligned for any map. An IOVA map is
//! titled and headed as such: it never says "Phys Addr".

use crate::addr::SegmentAddr;
use crate::map::{PaMap, Segment, Target};
use crate::pattern::Verification;
use crate::size::human;
use serde::Serialize;
use std::fmt::Write;

/// Maps with more rows than this print the first and last [`EDGE_ROWS`].
pub const FULL_TABLE_LIMIT: usize = 64;
/// Rows a long table shows at each end, around its summary.
pub const EDGE_ROWS: usize = 16;

const RULE: &str = "--------------------------------------------------";

struct Widths {
    addr: usize,
    len: usize,
    pages: usize,
}

fn widths(map: &PaMap) -> Widths {
    let max_addr = map
        .segments()
        .iter()
        .filter_map(Segment::address)
        .map(SegmentAddr::get)
        .max()
        .unwrap_or(0);
    let max_len = map.segments().iter().map(|s| s.length).max().unwrap_or(0);
    let max_pages = map.page_size().pages_in(max_len);
    Widths {
        addr: 13.max(format!("{max_addr:x}").len()),
        len: 5.max(max_len.to_string().len()),
        pages: 6.max(max_pages.to_string().len()),
    }
}

fn row(out: &mut String, w: &Widths, map: &PaMap, index: Option<usize>, seg: &Segment) {
    let seg_no = index.map_or_else(|| "-".to_string(), |i| i.to_string());
    let addr = match seg.target {
        Target::Address(a) => format!("0x{a:0width$x}", width = w.addr),
        other => format!("({})", other.name()),
    };
    let pages = map.page_size().pages_in(seg.length);
    let _ = writeln!(
        out,
        "{seg_no:<8} {addr:<aw$}  {len:>lw$} B {pages:>pw$}",
        aw = w.addr + 2,
        len = seg.length,
        lw = w.len,
        pw = w.pages,
    );
}

/// One line of a table that may be elided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// Print row `i`.
    Row(usize),
    /// Stands for this many rows not printed.
    Elided(usize),
}

fn is_elided(rows: usize, all: bool) -> bool {
    !all && rows > FULL_TABLE_LIMIT
}

/// The lines of a table of `rows` rows: every row, or with `all` false and
/// more than [`FULL_TABLE_LIMIT`] rows, the first and last [`EDGE_ROWS`]
/// around one elision.
pub fn shown_rows(rows: usize, all: bool) -> Vec<Shown> {
    if !is_elided(rows, all) {
        return (0..rows).map(Shown::Row).collect();
    }
    let mut out: Vec<Shown> = (0..EDGE_ROWS).map(Shown::Row).collect();
    out.push(Shown::Elided(rows - 2 * EDGE_ROWS));
    out.extend((rows - EDGE_ROWS..rows).map(Shown::Row));
    out
}

/// The map block, from the title to "Total mapped". With `all` false, maps
/// of more than [`FULL_TABLE_LIMIT`] rows show their first and last
/// [`EDGE_ROWS`] rows and a summary.
pub fn render_map(map: &PaMap, all: bool) -> String {
    let mut out = String::new();
    let w = widths(map);
    let _ = writeln!(out, "=== {} ===", map.kind().title());
    let _ = writeln!(out, "Total length:   {} bytes", map.total_length());
    let _ = writeln!(out, "Segment count:  {}", map.address_segment_count());
    out.push('\n');
    let _ = writeln!(
        out,
        "{:<9}{:<aw$}{:>lw$}{:>pw$}",
        "Seg#",
        map.kind().column(),
        "Length",
        "Pages",
        aw = w.addr + 4 + w.len - 6,
        lw = 6,
        pw = w.pages + 3,
    );
    out.push_str(RULE);
    out.push('\n');

    // Rows are numbered among address segments; holes get "-".
    let mut numbered = Vec::with_capacity(map.segments().len());
    let mut n = 0;
    for s in map.segments() {
        numbered.push(s.address().map(|_| {
            n += 1;
            n - 1
        }));
    }
    let rows = map.segments().len();
    for shown in shown_rows(rows, all) {
        match shown {
            Shown::Row(i) => row(&mut out, &w, map, numbered[i], &map.segments()[i]),
            Shown::Elided(hidden) => {
                let _ = writeln!(
                    out,
                    "... {hidden} rows not shown (--all prints every row) ..."
                );
            }
        }
    }
    let elide = is_elided(rows, all);
    out.push_str(RULE);
    out.push('\n');
    let mapped = map.mapped_bytes();
    let _ = writeln!(
        out,
        "Total mapped: {} bytes ({} pages)",
        mapped,
        mapped / map.page_size().bytes()
    );
    if elide {
        out.push_str(&render_summary(map));
    }
    out
}

/// Size statistics of a map's address segments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Segments with an address.
    pub segments: usize,
    /// Length of the shortest, in bytes.
    pub smallest: u64,
    /// Length of the longest, in bytes.
    pub largest: u64,
    /// `(bucket, count)`: segments whose length is in `[bucket, 2*bucket)`.
    pub histogram: Vec<(u64, usize)>,
}

/// The size statistics of `map`'s address segments (holes left out).
pub fn summary(map: &PaMap) -> Summary {
    let mut hist = std::collections::BTreeMap::<u64, usize>::new();
    let mut smallest = u64::MAX;
    let mut largest = 0;
    let mut count = 0;
    for s in map.address_segments() {
        count += 1;
        smallest = smallest.min(s.length);
        largest = largest.max(s.length);
        let bucket = 1u64 << (63 - s.length.leading_zeros());
        *hist.entry(bucket).or_default() += 1;
    }
    Summary {
        segments: count,
        smallest: if count == 0 { 0 } else { smallest },
        largest,
        histogram: hist.into_iter().collect(),
    }
}

fn render_summary(map: &PaMap) -> String {
    let s = summary(map);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Segments: {}, smallest {}, largest {}",
        s.segments,
        human(s.smallest),
        human(s.largest)
    );
    let _ = writeln!(out, "Segment sizes:");
    let top = s.histogram.iter().map(|h| h.1).max().unwrap_or(1);
    for (bucket, count) in &s.histogram {
        let bar = "#".repeat((count * 40).div_ceil(top));
        let _ = writeln!(out, "  >= {:>9}  {count:>8}  {bar}", human(*bucket));
    }
    out
}

/// The verification lines: coverage, then integrity.
pub fn render_verification(map: &PaMap, integrity: &Verification) -> String {
    let mut out = String::new();
    match map.coverage() {
        crate::map::Coverage::Full => out.push_str("[+] Full surface coverage verified\n"),
        crate::map::Coverage::Gap {
            offset,
            length,
            reason,
            mapped,
        } => {
            let _ = writeln!(
                out,
                "[-] Coverage gap: {length} bytes at offset {offset:#x} are {reason} ({mapped} of {} bytes mapped)",
                map.total_length()
            );
        }
    }
    out.push_str(&render_integrity(integrity));
    out
}

/// The `[+]`/`[-]` line (and mismatch details) for the pattern check.
pub fn render_integrity(v: &Verification) -> String {
    let mut out = String::new();
    if v.ok() {
        out.push_str("[+] Data integrity OK -- test pattern intact\n");
        return out;
    }
    let _ = writeln!(
        out,
        "[-] Data integrity FAILED -- {} of {} words differ from the test pattern",
        v.mismatched_words,
        v.checked_bytes / 8
    );
    for m in &v.first {
        let _ = write!(
            out,
            "    at {:#014x}: expected {} found {}",
            m.offset,
            hex(&m.expected),
            hex(&m.actual)
        );
        match m.belongs_at {
            Some(o) => {
                let _ = writeln!(out, " (the bytes of offset {o:#x})");
            }
            None => out.push('\n'),
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A segment as JSON prints it: its address and length, and the buffer
/// offset it starts at, so a consumer never has to lay segments end to end
/// (a map with a hole lists only the segments that have addresses).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JsonSegment {
    /// First address of the run (a JSON number).
    pub address: SegmentAddr,
    /// Bytes in the run.
    pub length: u64,
    /// Buffer offset of its first byte.
    pub offset: u64,
}

/// The address segments of `map`, in buffer order, for JSON.
pub fn json_segments(map: &PaMap) -> Vec<JsonSegment> {
    map.segments()
        .iter()
        .filter_map(|s| {
            s.address().map(|address| JsonSegment {
                address,
                length: s.length,
                offset: s.offset,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
