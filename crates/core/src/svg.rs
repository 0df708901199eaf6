//! A picture of an address map: one self-contained SVG a browser opens.
//!
//! Three parts, top to bottom: where the buffer lies in the address space
//! (the machine's RAM when known, then a zoom from the lowest to the
//! highest address of the buffer), the buffer in offset order coloured by
//! the length of the contiguous run each page belongs to, and the histogram
//! of segment sizes (the table's bins). Segments are aggregated into one
//! bin per pixel column before anything is drawn, so the picture's size and
//! drawing time grow with its width, not with the number of segments.
//!
//! An IOVA or unresolved DMA map never calls its addresses physical.

use crate::addr::{AddressKind, SegmentAddr};
use crate::map::PaMap;
use crate::report::summary;
use crate::size::human;
use std::fmt::Write;

mod draw;
use draw::{axis, empty_strip, esc, gradient, label, offset_colour, paint, run_colour};

/// Width of the picture in pixels.
pub const WIDTH: u32 = 1200;
/// Left edge of every strip.
pub const PLOT_X: f64 = 70.0;
/// Width of every strip: one bin per pixel column.
pub const PLOT_W: usize = 1060;

/// Where a strip lies in the picture (pixels).
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Band {
    /// Top edge, in pixels from the top of the picture.
    pub y: f64,
    /// Height in pixels.
    pub h: f64,
}

/// The machine's RAM, drawn with the buffer's segments over it.
pub const RAM_STRIP: Band = Band { y: 90.0, h: 40.0 };
/// From the buffer's lowest to its highest address.
pub const ZOOM_STRIP: Band = Band { y: 190.0, h: 40.0 };
/// The buffer in offset order.
pub const BUFFER_STRIP: Band = Band { y: 290.0, h: 40.0 };
/// Top of the histogram.
const HIST_Y: f64 = 420.0;
const HIST_ROW: f64 = 16.0;

/// Background of an address range that is RAM but not the buffer's, and of
/// any strip span nothing was drawn in. Grey, so every colour a segment is
/// painted in differs from it.
pub const EMPTY_FILL: &str = "#e4e4e4";

/// What to draw and what to call it.
#[derive(Debug, Clone)]
pub struct Picture<'a> {
    /// The map to draw.
    pub map: &'a PaMap,
    /// What the buffer is: "64 KiB memfd surface", "2 MiB of process 42".
    pub subject: String,
    /// When the map was read, as the title shows it.
    pub date: String,
    /// The machine's RAM as half-open ranges (the "System RAM" lines of
    /// /proc/iomem). Used for physical maps only.
    pub ram: Option<Vec<(u64, u64)>>,
    /// Why `ram` is `None`, shown in its place.
    pub ram_note: String,
}

/// Per-pixel-column aggregate of the bytes that fall into it.
struct Bins {
    lo: u64,
    span: f64,
    bytes: Vec<f64>,
    weighted: Vec<f64>,
}

impl Bins {
    fn new(lo: u64, hi: u64) -> Self {
        Self {
            lo,
            span: (hi.saturating_sub(lo)).max(1) as f64,
            bytes: vec![0.0; PLOT_W],
            weighted: vec![0.0; PLOT_W],
        }
    }

    fn pos(&self, at: u64) -> f64 {
        (at.saturating_sub(self.lo) as f64 / self.span * PLOT_W as f64).clamp(0.0, PLOT_W as f64)
    }

    /// Adds `[start, start + len)` with a value that is `value_at(start)`
    /// at its first byte and grows by one per byte when `ramp` (a buffer
    /// offset), or is constant otherwise.
    fn add(&mut self, start: u64, len: u64, value: f64, ramp: bool) {
        let (x0, x1) = (self.pos(start), self.pos(start.saturating_add(len)));
        let first = (x0.floor() as usize).min(PLOT_W - 1);
        let last = (x1.ceil() as usize).clamp(first + 1, PLOT_W);
        let per_px = self.span / PLOT_W as f64;
        for i in first..last {
            // Bytes of the extent inside this column; at least a sliver, so
            // a page in a column of gigabytes still shows.
            let a = x0.max(i as f64);
            let b = x1.min(i as f64 + 1.0);
            let share = ((b - a).max(0.0) * per_px).max(1.0);
            let mid = if ramp {
                value + ((a + b) / 2.0 - x0) * per_px
            } else {
                value
            };
            self.bytes[i] += share;
            self.weighted[i] += share * mid;
        }
    }

    /// Runs of neighbouring columns that get the same colour.
    fn runs(&self, colour: impl Fn(f64) -> String) -> Vec<(usize, usize, String)> {
        let mut out: Vec<(usize, usize, String)> = Vec::new();
        for i in 0..PLOT_W {
            if self.bytes[i] <= 0.0 {
                continue;
            }
            let c = colour(self.weighted[i] / self.bytes[i]);
            match out.last_mut() {
                Some((_, end, last)) if *end == i && *last == c => *end = i + 1,
                _ => out.push((i, i + 1, c)),
            }
        }
        out
    }
}

/// The words the title uses for the map's addresses. Only a physical map
/// says "physical".
pub fn kind_words(kind: AddressKind) -> &'static str {
    match kind {
        AddressKind::Physical => "physical addresses",
        AddressKind::Iova => "IOVAs (device addresses behind an IOMMU)",
        AddressKind::DmaUnresolved => "DMA addresses (unresolved: system mapper or CPU)",
    }
}

/// The SVG document for `p`.
pub fn render(p: &Picture<'_>) -> String {
    let map = p.map;
    let total = map.total_length().max(1);
    let physical = map.kind() == AddressKind::Physical;
    let stats = summary(map);
    let height = HIST_Y + 30.0 + HIST_ROW * stats.histogram.len().max(1) as f64;
    let mut o = String::with_capacity(64 * 1024);
    let _ = write!(
        o,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="monospace" font-size="12" fill="#333">"##
    );
    let _ = write!(
        o,
        r##"<rect width="100%" height="100%" fill="#ffffff"/><text x="{PLOT_X}" y="26" font-size="16" font-weight="bold">{} · {} · {} segment{} · {}</text>"##,
        esc(&p.subject),
        kind_words(map.kind()),
        stats.segments,
        if stats.segments == 1 { "" } else { "s" },
        esc(&p.date),
    );
    let _ = write!(
        o,
        r#"<text x="{PLOT_X}" y="46">{} in pages of {}; {} of it has an address. Each pixel column shows the mean offset (strips 1, 2) or run length (strip 3) of its bytes.</text>"#,
        human(map.total_length()),
        human(map.page_size().bytes()),
        human(map.mapped_bytes()),
    );

    let addressed: Vec<_> = map.address_segments().copied().collect();
    let lowest = addressed
        .iter()
        .filter_map(|s| s.address().map(SegmentAddr::get))
        .min();
    let highest = addressed
        .iter()
        .filter_map(|s| s.address().map(|a| a.get() + s.length))
        .max();

    // 1. The whole RAM, when known, with the buffer on it.
    let ram = p.ram.as_ref().filter(|r| physical && !r.is_empty());
    match ram {
        Some(ranges) => {
            let lo = ranges.iter().map(|r| r.0).chain(lowest).min().unwrap_or(0);
            let hi = ranges.iter().map(|r| r.1).chain(highest).max().unwrap_or(1);
            label(
                &mut o,
                RAM_STRIP,
                &format!(
                    "System RAM ({} in {} ranges, from /proc/iomem; white: not RAM)",
                    human(ranges.iter().map(|r| r.1 - r.0).sum()),
                    ranges.len()
                ),
            );
            let bins = Bins::new(lo, hi);
            let _ = write!(
                o,
                r##"<rect x="{PLOT_X}" y="{}" width="{PLOT_W}" height="{}" fill="#ffffff" stroke="#999"/>"##,
                RAM_STRIP.y, RAM_STRIP.h
            );
            for (s, e) in ranges {
                let (x0, x1) = (bins.pos(*s), bins.pos(*e));
                let _ = write!(
                    o,
                    r#"<rect x="{:.2}" y="{}" width="{:.2}" height="{}" fill="{EMPTY_FILL}"/>"#,
                    PLOT_X + x0,
                    RAM_STRIP.y,
                    (x1 - x0).max(0.5),
                    RAM_STRIP.h
                );
            }
            segments_by_offset(&mut o, &addressed, lo, hi, total, RAM_STRIP);
            if let (Some(a), Some(b)) = (lowest, highest) {
                let (x0, x1) = (bins.pos(a), bins.pos(b));
                let _ = write!(
                    o,
                    r##"<rect x="{:.2}" y="{}" width="{:.2}" height="{}" fill="none" stroke="#000" stroke-dasharray="3,2"/>"##,
                    PLOT_X + x0 - 1.0,
                    RAM_STRIP.y - 4.0,
                    (x1 - x0) + 2.0,
                    RAM_STRIP.h + 8.0
                );
            }
            axis(&mut o, RAM_STRIP, lo, hi);
        }
        None => {
            let why = if physical {
                p.ram_note.clone()
            } else {
                "device address space: the machine's RAM ranges do not apply".to_string()
            };
            label(&mut o, RAM_STRIP, &why);
        }
    }

    // 2. Zoom: the lowest to the highest address of the buffer.
    match (lowest, highest) {
        (Some(lo), Some(hi)) => {
            label(
                &mut o,
                ZOOM_STRIP,
                &format!(
                    "Lowest to highest address of the buffer ({} span), coloured by offset in the buffer",
                    human(hi - lo)
                ),
            );
            empty_strip(&mut o, ZOOM_STRIP);
            segments_by_offset(&mut o, &addressed, lo, hi, total, ZOOM_STRIP);
            axis(&mut o, ZOOM_STRIP, lo, hi);
        }
        _ => label(&mut o, ZOOM_STRIP, "No page of the buffer has an address"),
    }

    // 3. The buffer in offset order, coloured by run length.
    let page = map.page_size().bytes().max(1);
    let log_page = (page as f64).log2();
    let log_max = (stats.largest.max(page) as f64).log2();
    let scale = (log_max - log_page).max(1.0);
    label(
        &mut o,
        BUFFER_STRIP,
        "The buffer in offset order, coloured by the length of its contiguous run (grey: no address)",
    );
    empty_strip(&mut o, BUFFER_STRIP);
    let mut bins = Bins::new(0, total);
    for s in &addressed {
        bins.add(s.offset, s.length, (s.length as f64).log2(), false);
    }
    paint(
        &mut o,
        &bins.runs(|v| run_colour((v - log_page) / scale)),
        BUFFER_STRIP,
    );
    axis(&mut o, BUFFER_STRIP, 0, total);

    // Legend.
    let ly = BUFFER_STRIP.y + BUFFER_STRIP.h + 40.0;
    gradient(&mut o, ly, PLOT_X, "offset 0", &human(total), offset_colour);
    gradient(
        &mut o,
        ly,
        PLOT_X + 560.0,
        &format!("run {}", human(page)),
        &human(stats.largest.max(page)),
        run_colour,
    );

    // Histogram of segment sizes, the table's bins.
    let _ = write!(
        o,
        r#"<text x="{PLOT_X}" y="{}">Segment sizes ({} segments, smallest {}, largest {})</text>"#,
        HIST_Y - 6.0,
        stats.segments,
        human(stats.smallest),
        human(stats.largest)
    );
    let top = stats
        .histogram
        .iter()
        .map(|h| h.1)
        .max()
        .unwrap_or(1)
        .max(1);
    for (i, (bucket, count)) in stats.histogram.iter().enumerate() {
        let y = HIST_Y + 6.0 + i as f64 * HIST_ROW;
        let w = (*count as f64 / top as f64 * 800.0).max(1.0);
        let t = ((*bucket as f64).log2() - log_page) / scale;
        let _ = write!(
            o,
            r#"<text x="{PLOT_X}" y="{:.1}">&gt;= {:>9}</text><rect x="{:.1}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="{}"/><text x="{:.1}" y="{:.1}">{count}</text>"#,
            y + 11.0,
            human(*bucket),
            PLOT_X + 110.0,
            y + 1.0,
            HIST_ROW - 3.0,
            run_colour(t),
            PLOT_X + 116.0 + w,
            y + 11.0,
        );
    }
    o.push_str("</svg>\n");
    o
}

/// Draws the address segments on `[lo, hi)`, coloured by buffer offset.
fn segments_by_offset(
    o: &mut String,
    segments: &[crate::map::Segment],
    lo: u64,
    hi: u64,
    total: u64,
    band: Band,
) {
    let mut bins = Bins::new(lo, hi);
    for s in segments {
        if let Some(a) = s.address().map(SegmentAddr::get) {
            bins.add(a, s.length, s.offset as f64, true);
        }
    }
    paint(o, &bins.runs(|v| offset_colour(v / total as f64)), band);
}

/// The "System RAM" ranges of a /proc/iomem text, half-open. Lines whose
/// addresses read as zero (what a non-root reader sees) are left out.
pub fn system_ram(iomem: &str) -> Vec<(u64, u64)> {
    iomem
        .lines()
        .filter(|l| !l.starts_with(' ') && l.trim_end().ends_with(": System RAM"))
        .filter_map(|l| {
            let (range, _) = l.split_once(" : ")?;
            let (a, b) = range.trim().split_once('-')?;
            let a = u64::from_str_radix(a, 16).ok()?;
            let b = u64::from_str_radix(b, 16).ok()?;
            (b > a).then_some((a, b + 1))
        })
        .collect()
}
