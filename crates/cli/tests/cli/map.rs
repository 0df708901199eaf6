//! `map` of another process: its addresses, holes and page-flag rows against
//! the test's own pagemap and kpageflags readings.

use crate::common::*;
use crate::huge::{free_huge_pages, NR_HUGEPAGES};
use unimem_testkit::{mm_lock, Knob};

#[test]
fn map_of_another_process_matches_its_own_pagemap_exactly() {
    require_root();
    let held = HeldProbe::start(&["--size", "4M"]);
    let (pid, va, len) = (held.pid(), held.va(), held.len());
    let args = [
        "map",
        "--pid",
        &pid.to_string(),
        "--addr",
        &format!("{va:#x}"),
        "--len",
        &len.to_string(),
        "--json",
    ];
    let args: Vec<&str> = args.iter().map(|s| s.as_ref()).collect();
    let (reference, out) = stable(5, || reference_segments(pid, va, len), || unimem(&args));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["pid"], pid);
    assert_eq!(j["coverage"]["status"], "full");
    let rows = j["segments"].as_array().unwrap();
    let mut expected_offset = 0;
    for r in rows {
        assert_eq!(r["offset"], expected_offset);
        assert_eq!(r["state"], "mapped");
        let flags: Vec<&str> = r["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        // A touched memfd page is a mapped, swap-backed (shmem) page.
        assert!(
            flags.contains(&"mmap") && flags.contains(&"swapbacked"),
            "{r}"
        );
        assert!(
            !flags.contains(&"anonymous"),
            "memfd pages are not anonymous: {r}"
        );
        expected_offset += r["length"].as_u64().unwrap();
    }
    assert_eq!(expected_offset, len);
    assert_eq!(coalesce(segments_of(&j)), reference);
    held.release();
}

#[test]
fn map_shows_holes_explicitly() {
    require_root();
    let held = HeldProbe::start(&["--size", "64K"]);
    let (pid, va) = (held.pid(), held.va());
    // Extend the range one page past the surface: either another mapping
    // follows it, or nothing does; both must show, never invented addresses.
    let out = unimem(&[
        "map",
        "--pid",
        &pid.to_string(),
        "--addr",
        &format!("{va:#x}"),
        "--len",
        "16M",
        "--json",
    ]);
    let j: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", stderr(&out)));
    for r in j["segments"].as_array().unwrap() {
        match r["state"].as_str().unwrap() {
            "mapped" => assert!(r["address"].as_u64().unwrap() > 0),
            _ => assert!(r["address"].is_null(), "a hole carries an address: {r}"),
        }
    }
    let holes = j["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["state"] != "mapped")
        .count();
    if holes > 0 {
        assert_eq!(
            out.status.code(),
            Some(1),
            "a map with holes is not fully covered"
        );
        assert_eq!(j["coverage"]["status"], "gap");
    }
    held.release();
}

/// The kpageflags word of every page of `[va, va + len)` in `pid`, read by
/// the test itself: pagemap bits 0-54 give the PFN, kpageflags is indexed
/// by PFN.
fn captured_words(pid: u32, va: u64, len: u64) -> Vec<u64> {
    use std::os::unix::fs::FileExt;
    let pagemap = std::fs::File::open(format!("/proc/{pid}/pagemap")).unwrap();
    let kpageflags = std::fs::File::open("/proc/kpageflags").unwrap();
    let page = page_size();
    (0..len / page)
        .map(|i| {
            let mut e = [0u8; 8];
            pagemap.read_exact_at(&mut e, (va / page + i) * 8).unwrap();
            let pfn = u64::from_le_bytes(e) & ((1 << 55) - 1);
            kpageflags.read_exact_at(&mut e, pfn * 8).unwrap();
            u64::from_le_bytes(e)
        })
        .collect()
}

/// The rows of `unimem map --json` (with `--raw`, as read) of
/// `[va, va + len)` in `pid`.
pub(crate) fn map_rows(pid: u32, va: u64, len: u64, raw: bool) -> Vec<serde_json::Value> {
    let (pid, va, len) = (pid.to_string(), format!("{va:#x}"), len.to_string());
    let mut args = vec!["map", "--pid", &pid, "--addr", &va, "--len", &len, "--json"];
    if raw {
        args.push("--raw");
    }
    let out = unimem(&args);
    let j: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", stderr(&out)));
    j["segments"].as_array().unwrap().clone()
}

/// A whole huge page (2 MiB, the hugetlb pool this test fills) is one row that says `huge` or `thp`, never
/// `compound_head`; its flags are what every page has; `--raw` shows head
/// and tails apart, as read.
#[test]
fn map_rows_fold_whole_huge_pages_and_match_captured_words() {
    const HEAD: u64 = 1 << 15;
    const TAIL: u64 = 1 << 16;
    const HUGE: u64 = 2 << 20;
    require_root();
    let page = page_size();
    let _serial = mm_lock();
    let _pool = Knob::set(NR_HUGEPAGES, "8");
    let _advise = Knob::set(
        "/sys/kernel/mm/transparent_hugepage/shmem_enabled",
        "advise",
    );
    assert!(free_huge_pages() >= 2, "could not reserve 2 huge pages");
    for (backing, kind_bit, name) in [("hugetlb", 1u64 << 17, "huge"), ("thp", 1 << 22, "thp")] {
        let held = HeldProbe::start(&["--size", "4M", "--backing", backing]);
        let (pid, va, len) = (held.pid(), held.va(), held.len());
        let words = captured_words(pid, va, len);
        let huge_pages = words
            .iter()
            .filter(|w| *w & HEAD != 0 && *w & kind_bit != 0)
            .count();
        assert!(
            huge_pages >= 1,
            "{backing}: no huge page to compare against"
        );
        let folded = map_rows(pid, va, len, false);
        let raw = map_rows(pid, va, len, true);
        // The words are read again after the map, so a page that moved in
        // between shows up as a difference rather than a false pass.
        assert_eq!(
            words,
            captured_words(pid, va, len),
            "{backing}: pages changed meanwhile"
        );
        for row in &folded {
            let first = (row["virtual_address"].as_u64().unwrap() - va) / page;
            let pages = row["length"].as_u64().unwrap() / page;
            let mine = &words[first as usize..(first + pages) as usize];
            let every = mine.iter().fold(!0u64, |acc, w| {
                let w = if w & ((1 << 17) | (1 << 22)) != 0 {
                    w & !(HEAD | TAIL)
                } else {
                    *w
                };
                acc & w
            });
            assert_eq!(row["flags_raw"].as_u64(), Some(every), "{backing}: {row}");
            let names: Vec<&str> = row["flags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap())
                .collect();
            assert!(
                !names.iter().any(|n| n.starts_with("compound")),
                "{backing}: {row}"
            );
            if mine[0] & kind_bit != 0 {
                assert!(names.contains(&name), "{backing}: {row}");
                assert_eq!(
                    pages * page % HUGE,
                    0,
                    "{backing}: huge rows are whole huge pages: {row}"
                );
            }
        }
        // Every whole huge page lies inside one folded row.
        for (i, w) in words
            .iter()
            .enumerate()
            .filter(|(_, w)| *w & HEAD != 0 && *w & kind_bit != 0)
        {
            let at = va + i as u64 * page;
            assert!(
                folded.iter().any(|r| {
                    let s = r["virtual_address"].as_u64().unwrap();
                    s <= at && at + HUGE <= s + r["length"].as_u64().unwrap()
                }),
                "{backing}: the huge page at {at:#x} ({w:#x}) is split across rows"
            );
        }
        // Raw rows carry the words as read, head apart from its tails.
        for row in &raw {
            let first = (row["virtual_address"].as_u64().unwrap() - va) / page;
            let pages = row["length"].as_u64().unwrap() / page;
            let mine = &words[first as usize..(first + pages) as usize];
            assert!(
                mine.iter().all(|w| Some(*w) == row["flags_raw"].as_u64()),
                "{backing}: {row}"
            );
        }
        assert!(
            raw.len() >= folded.len() + huge_pages,
            "{backing}: {} raw rows",
            raw.len()
        );
        held.release();
    }
}
