//! The probe end to end: the seed block with real addresses, its JSON
//! against the test's own pagemap reading, `--no-pin`, summarised large
//! maps, `info`, and a 4 GiB probe's memory.

use crate::common::*;

#[test]
fn probe_prints_the_seed_block_with_real_addresses() {
    require_root();
    let out = unimem(&["probe"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let lines: Vec<&str> = text.lines().collect();
    for expected in [
        "=== Physical Address Map ===",
        "Total length:   65536 bytes",
        "Seg#     Phys Addr       Length    Pages",
        "--------------------------------------------------",
        "Total mapped: 65536 bytes (16 pages)",
        "[+] Full surface coverage verified",
        "[+] Data integrity OK -- test pattern intact",
    ] {
        assert!(
            lines.contains(&expected),
            "missing line {expected:?} in:\n{text}"
        );
    }
    // Every row has a non-zero address, and the rows add up to the surface.
    let rows: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("0x") && l.contains(" B "))
        .collect();
    assert!(!rows.is_empty());
    let mut total = 0;
    for r in &rows {
        let f: Vec<&str> = r.split_whitespace().collect();
        let addr = u64::from_str_radix(f[1].trim_start_matches("0x"), 16).unwrap();
        assert_ne!(addr, 0, "a zero address was printed: {r}");
        total += f[2].parse::<u64>().unwrap();
    }
    assert_eq!(total, 65536);
    let count_line = lines
        .iter()
        .find(|l| l.starts_with("Segment count:"))
        .unwrap();
    assert_eq!(
        count_line
            .split_whitespace()
            .last()
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        rows.len()
    );
    // Steps go to stderr, never into the data on stdout.
    assert!(stderr(&out).contains("Writing test pattern"));
    assert!(!text.contains("[*]"));
}

#[test]
fn probe_json_matches_an_independent_pagemap_reading() {
    require_root();
    // The probe pins before it reads addresses and holds the pin while it
    // waits, so the pages cannot move: a mismatch is a real failure.
    let held = HeldProbe::start(&["--size", "8M"]);
    let j = &held.json;
    assert_eq!(j["address_kind"], "physical");
    assert_eq!(j["page_size"], page_size());
    assert_eq!(j["total_length"], 8 << 20);
    assert_eq!(j["verification"]["ok"], true, "{j}");
    assert_eq!(j["resolver"]["name"], "direct");
    assert_eq!(
        j["resolver"]["pinned"], true,
        "the direct resolver pins by default"
    );
    assert!(
        j["surface"].get("id").is_none(),
        "a memfd has no IOSurface id: {j}"
    );
    let reported = held.segments();
    let reference = reference_segments(held.pid(), held.va(), held.len());
    assert_eq!(
        reported, reference,
        "the pinned probe's map differs from pagemap"
    );
    assert_eq!(held.release().code(), Some(0));
}

#[test]
fn no_pin_reads_an_unpinned_snapshot_and_says_so() {
    require_root();
    let out = unimem(&["probe", "--via", "direct", "--no-pin", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["resolver"]["pinned"], false);
    let out = unimem(&["probe", "--via", "direct", "--no-pin"]);
    assert!(stderr(&out).contains("snapshot"), "{}", stderr(&out));
}

#[test]
fn large_maps_are_summarised_unless_all() {
    require_root();
    let out = unimem(&["probe", "--size", "16M"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let count: usize = text
        .lines()
        .find(|l| l.starts_with("Segment count:"))
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap()
        .parse()
        .unwrap();
    if count > 64 {
        assert!(
            text.contains("rows not shown (--all prints every row)"),
            "{text}"
        );
        assert!(text.contains("Segment sizes:"), "{text}");
        let rows = text
            .lines()
            .filter(|l| l.contains(" B ") && l.contains("0x"))
            .count();
        assert_eq!(rows, 32);
    } else {
        eprintln!("16 MiB resolved to only {count} segments; elision not exercised by this run");
    }
    let all = unimem(&["probe", "--size", "16M", "--all"]);
    let all_text = stdout(&all);
    let n: usize = all_text
        .lines()
        .find(|l| l.starts_with("Segment count:"))
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        all_text
            .lines()
            .filter(|l| l.contains(" B ") && l.contains("0x"))
            .count(),
        n
    );
}

#[test]
fn info_reports_the_machine() {
    let out = unimem(&["info", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["page_size"].as_u64(), Some(page_size()));
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(j["kernel"].as_str(), Some(release.trim()));
    let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
    assert_eq!(j["pfns_visible"].as_bool(), Some(root));
    let text = stdout(&unimem(&["info"]));
    assert!(
        text.contains("Page size:") && text.contains("shmem THP:"),
        "{text}"
    );
}

#[test]
fn four_gib_probe_memory_does_not_grow_with_pages() {
    require_root();
    let held = HeldProbe::start(&["--size", "4G"]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", held.pid())).unwrap();
    let kb = |field: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(field))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap()
    };
    let peak = kb("VmHWM:") * 1024;
    let segments = held.segments().len() as u64;
    let overhead = peak.saturating_sub(held.len());
    eprintln!("4 GiB probe: peak RSS {peak} bytes, {segments} segments, overhead {overhead} bytes");
    assert_eq!(held.json["verification"]["ok"], true);
    // 1 Mi pages: anything per page (8 bytes or more) would add >= 8 MiB on
    // top of the JSON document and the segment list (24 bytes each,
    // counted generously).
    let allowance = 12 << 20;
    let json_and_segments = segments * 24 * 8;
    assert!(
        overhead < allowance + json_and_segments,
        "overhead {overhead} bytes for {segments} segments exceeds {} bytes",
        allowance + json_and_segments
    );
    held.release();
}
