//! The SVG picture rendered to pixels (resvg): columns where known
//! segments lie are painted, empty spans are not, and a fragmented
//! gigabyte stays small.

use resvg::tiny_skia::{Pixmap, Transform};
use resvg::usvg::{Options, Tree};
use unimem_core::svg::{self, Band, Picture, BUFFER_STRIP, PLOT_W, PLOT_X, RAM_STRIP, ZOOM_STRIP};
use unimem_core::{AddressKind, PaMap, PageSize, Target};

const PAGE: u64 = 4096;

struct Rendered(Pixmap);

impl Rendered {
    fn new(svg_text: &str) -> Self {
        let tree = Tree::from_str(svg_text, &Options::default()).expect("the SVG parses");
        let size = tree.size().to_int_size();
        let mut pixmap = Pixmap::new(size.width(), size.height()).unwrap();
        resvg::render(&tree, Transform::default(), &mut pixmap.as_mut());
        Rendered(pixmap)
    }

    fn rgb(&self, x: u32, y: u32) -> (u8, u8, u8) {
        let p = self.0.pixel(x, y).expect("pixel inside the picture");
        (p.red(), p.green(), p.blue())
    }

    /// The middle row of `band` at the column that draws `at` on `[lo, hi)`.
    fn at(&self, band: Band, lo: u64, hi: u64, at: u64) -> (u8, u8, u8) {
        let x = PLOT_X + ((at - lo) as f64 / (hi - lo) as f64 * PLOT_W as f64).floor();
        self.rgb(x as u32, (band.y + band.h / 2.0) as u32)
    }
}

/// Segment colours are saturated; backgrounds (RAM, empty, not RAM) grey
/// or white.
fn painted((r, g, b): (u8, u8, u8)) -> bool {
    r.max(g).max(b) - r.min(g).min(b) > 60
}

fn picture(map: &PaMap, ram: Option<Vec<(u64, u64)>>) -> String {
    svg::render(&Picture {
        map,
        subject: "test buffer".into(),
        date: "2026-01-01".into(),
        ram,
        ram_note: "RAM ranges unknown".into(),
    })
}

/// Three runs far apart, pushed in buffer order: 64 KiB, 64 KiB, 1 MiB.
fn scattered(kind: AddressKind) -> PaMap {
    let mut m = PaMap::new(kind, PageSize::new(PAGE).unwrap(), (128 << 10) + (1 << 20));
    m.push(64 << 10, m.target(0x1000_0000)).unwrap();
    m.push(64 << 10, m.target(0x1800_0000)).unwrap();
    m.push(1 << 20, m.target(0x3000_0000)).unwrap();
    m
}

#[test]
fn zoom_strip_paints_segments_and_leaves_gaps_empty() {
    let map = scattered(AddressKind::Physical);
    let img = Rendered::new(&picture(&map, None));
    let (lo, hi) = (0x1000_0000u64, 0x3010_0000u64);
    let first = img.at(ZOOM_STRIP, lo, hi, 0x1000_8000);
    let second = img.at(ZOOM_STRIP, lo, hi, 0x1800_8000);
    let third = img.at(ZOOM_STRIP, lo, hi, 0x3008_0000);
    for (name, px) in [("first", first), ("second", second), ("third", third)] {
        assert!(painted(px), "{name} segment not painted: {px:?}");
    }
    for gap in [0x1400_0000u64, 0x2000_0000, 0x2c00_0000] {
        let px = img.at(ZOOM_STRIP, lo, hi, gap);
        assert!(!painted(px), "gap at {gap:#x} painted: {px:?}");
    }
    // Colour follows the buffer offset: offset 0 red, the last MiB (mean
    // offset past the middle) green to blue.
    assert!(
        first.0 > first.1 && first.0 > first.2,
        "offset 0 is red: {first:?}"
    );
    assert!(
        third.0 < third.1.max(third.2),
        "later offsets are not red: {third:?}"
    );
}

#[test]
fn ram_strip_shows_ram_not_ram_and_the_buffer() {
    let map = scattered(AddressKind::Physical);
    let ram = vec![(0x0, 0x2000_0000), (0x2800_0000, 0x4000_0000)];
    let img = Rendered::new(&picture(&map, Some(ram)));
    let (lo, hi) = (0u64, 0x4000_0000u64);
    assert!(painted(img.at(RAM_STRIP, lo, hi, 0x1000_0000)));
    assert!(painted(img.at(RAM_STRIP, lo, hi, 0x3000_0000)));
    // RAM without the buffer: grey; the hole in RAM: white.
    let ram_px = img.at(RAM_STRIP, lo, hi, 0x0800_0000);
    assert!(!painted(ram_px) && ram_px.0 < 250, "{ram_px:?}");
    assert_eq!(img.at(RAM_STRIP, lo, hi, 0x2400_0000), (255, 255, 255));
}

#[test]
fn buffer_strip_colours_by_run_length_and_leaves_holes_empty() {
    // 16 scattered pages, a 1 MiB hole, then one 4 MiB run.
    let total = (16 * PAGE) + (1 << 20) + (4 << 20);
    let mut m = PaMap::new(AddressKind::Physical, PageSize::new(PAGE).unwrap(), total);
    for i in 0..16u64 {
        m.push(PAGE, Target::phys(0x4000_0000 + i * 2 * PAGE))
            .unwrap();
    }
    m.push(1 << 20, Target::NotPresent).unwrap();
    m.push(4 << 20, Target::phys(0x8000_0000)).unwrap();
    let img = Rendered::new(&picture(&m, None));
    let short = img.at(BUFFER_STRIP, 0, total, 8 * PAGE);
    let hole = img.at(BUFFER_STRIP, 0, total, 16 * PAGE + (512 << 10));
    let long = img.at(BUFFER_STRIP, 0, total, total - (1 << 20));
    assert!(painted(short) && painted(long), "{short:?} {long:?}");
    assert!(!painted(hole), "the hole is painted: {hole:?}");
    assert!(short.0 > short.2, "single pages are reddish: {short:?}");
    assert!(long.2 > long.0, "the 4 MiB run is bluish: {long:?}");
}

#[test]
fn device_maps_are_never_called_physical() {
    for kind in [AddressKind::Iova, AddressKind::DmaUnresolved] {
        let text = picture(&scattered(kind), Some(vec![(0, 1 << 40)]));
        assert!(
            !text.to_lowercase().contains("physical"),
            "{kind:?}: {text}"
        );
        assert!(!text.contains("System RAM"), "{kind:?}");
        let img = Rendered::new(&text);
        assert!(painted(img.at(
            ZOOM_STRIP,
            0x1000_0000,
            0x3010_0000,
            0x1000_8000
        )));
    }
    let text = picture(&scattered(AddressKind::Physical), None);
    assert!(text.contains("physical addresses"));
}

#[test]
fn a_fragmented_gigabyte_stays_small() {
    // 262144 single pages, every other frame: a 1 GiB map at its worst.
    let pages = 262_144u64;
    let mut m = PaMap::new(
        AddressKind::Physical,
        PageSize::new(PAGE).unwrap(),
        pages * PAGE,
    );
    for i in 0..pages {
        let frame = (i * 7919) % (2 * pages);
        m.push(PAGE, Target::phys(0x1_0000_0000 + frame * PAGE))
            .unwrap();
    }
    assert_eq!(m.address_segment_count(), pages as usize);
    let text = picture(&m, Some(vec![(0, 0x8_0000_0000)]));
    assert!(text.len() < 1 << 20, "{} bytes", text.len());
    let img = Rendered::new(&text);
    assert!(painted(img.at(
        ZOOM_STRIP,
        0x1_0000_0000,
        0x1_0000_0000 + 2 * pages * PAGE,
        0x1_0000_0000
    )));
}

#[test]
fn system_ram_lines_of_iomem() {
    let text = "00000000-00000fff : Reserved\n\
                00001000-0009fbff : System RAM\n\
                00100000-bffd9fff : System RAM\n\
                \x20 01000000-01ffffff : Kernel code\n\
                100000000-63fffffff : System RAM\n\
                00000000-00000000 : System RAM\n";
    assert_eq!(
        svg::system_ram(text),
        [
            (0x1000, 0x9fc00),
            (0x10_0000, 0xbffd_a000),
            (0x1_0000_0000, 0x6_4000_0000)
        ]
    );
}
