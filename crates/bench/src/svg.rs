//! `unimem-bench svg`: size and drawing time of `--svg` pictures of real
//! maps (4 KiB memfd surfaces at each size, as fragmented as this machine's
//! memory makes them) and of the worst case, a 1 GiB map of 262,144
//! single pages. Target: a 1 GiB, 260k-segment map draws to
//! under 1 MiB in under 100 ms.

use crate::Res;
use std::time::Instant;
use unimem::core::size::human;
use unimem::core::svg::{self, Picture};
use unimem::core::{AddressKind, PaMap, PageSize, Target, VirtAddr};
use unimem::pagemap::Pagemap;
use unimem::surface::{Backing, Surface};

const TARGET_BYTES: usize = 1 << 20;
const TARGET_MS: f64 = 100.0;

/// Median time (ms) and size (bytes) of drawing `map`, over `reps` runs
/// after one warm-up.
fn measure(map: &PaMap, ram: &Option<Vec<(u64, u64)>>, reps: u32) -> (f64, usize) {
    let draw = || {
        svg::render(&Picture {
            map,
            subject: "bench".into(),
            date: "-".into(),
            ram: ram.clone(),
            ram_note: String::new(),
        })
    };
    let size = draw().len();
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(draw());
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], size)
}

/// Prints one line per map and the target's PASS/MISS.
pub fn run(sizes: &[u64], reps: u32) -> Res<()> {
    let ram = unimem::iomem::system_ram().ok();
    println!(
        "{:<34} {:>10} {:>10} {:>12}",
        "map", "segments", "svg", "draw median"
    );
    for &size in sizes {
        let surface = Surface::create(size, Backing::Memfd)?;
        let map = Pagemap::open_self()?.resolve(
            VirtAddr(surface.addr().0),
            surface.len(),
            surface.page_size(),
        )?;
        let (ms, bytes) = measure(&map, &ram, reps);
        println!(
            "{:<34} {:>10} {:>10} {:>9.2} ms",
            format!("memfd {}", human(size)),
            map.address_segment_count(),
            human(bytes as u64),
            ms
        );
    }
    // Worst case: every page its own segment, scattered over 2 GiB.
    let page = PageSize::new(4096).expect("4 KiB is a page size");
    let pages = 262_144u64;
    let mut map = PaMap::new(AddressKind::Physical, page, pages * 4096);
    for i in 0..pages {
        let frame = (i * 7919) % (2 * pages);
        map.push(4096, Target::phys(0x1_0000_0000 + frame * 4096))?;
    }
    let (ms, bytes) = measure(&map, &ram, reps);
    println!(
        "{:<34} {:>10} {:>10} {:>9.2} ms",
        "1 GiB of single pages (synthetic)",
        map.address_segment_count(),
        human(bytes as u64),
        ms
    );
    let pass = bytes < TARGET_BYTES && ms < TARGET_MS;
    println!(
        "target: 1 GiB, 262144 segments -> < 1 MiB in < 100 ms: {} ({}, {ms:.2} ms)",
        if pass { "PASS" } else { "MISS" },
        human(bytes as u64)
    );
    Ok(())
}
