//! Huge pages: hugetlb from an empty and a reserved pool, and shmem THP,
//! each against pagemap. These change sysctls, so they take the
//! memory-management lock and put back what they change.

use crate::common::*;
use crate::errors::assert_error;
use crate::map::map_rows;
use unimem_testkit::{mm_lock, Knob};

pub(crate) const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

/// Free pages in the 2 MiB hugetlb pool.
pub(crate) fn free_huge_pages() -> u64 {
    let t = std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
        .unwrap();
    t.trim().parse().unwrap()
}

#[test]
fn hugetlb_with_an_empty_pool_names_nr_hugepages() {
    require_root();
    let _serial = mm_lock();
    let _pool = Knob::set(NR_HUGEPAGES, "0");
    assert_error(
        &["probe", "--size", "4M", "--backing", "hugetlb"],
        "/proc/sys/vm/nr_hugepages",
    );
    assert_error(
        &["probe", "--size", "4M", "--backing", "hugetlb"],
        "2 are needed",
    );
}

#[test]
fn hugetlb_probe_counts_huge_pages_and_matches_pagemap() {
    require_root();
    let _serial = mm_lock();
    let _pool = Knob::set(NR_HUGEPAGES, "8");
    assert!(free_huge_pages() >= 4, "could not reserve 4 huge pages");
    let held = HeldProbe::start(&["--size", "8M", "--backing", "hugetlb"]);
    let j = held.json.clone();
    assert_eq!(j["page_size"], 2 << 20);
    assert_eq!(j["verification"]["ok"], true, "{j}");
    let segs = held.segments();
    for (a, l) in &segs {
        assert_eq!(
            a % (2 << 20),
            0,
            "hugetlb segment not 2 MiB aligned: {a:#x}"
        );
        assert_eq!(l % (2 << 20), 0);
    }
    // hugetlb pages are never migrated by compaction: compare directly.
    assert_eq!(segs, reference_segments(held.pid(), held.va(), held.len()));
    held.release();
    let out = unimem(&["probe", "--size", "4M", "--backing", "hugetlb"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Total mapped: 4194304 bytes (2 pages)"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn thp_probe_gets_huge_folios_where_shmem_thp_is_allowed() {
    require_root();
    let _serial = mm_lock();
    let path = "/sys/kernel/mm/transparent_hugepage/shmem_enabled";
    {
        let _deny = Knob::set(path, "deny");
        assert_error(
            &["probe", "--size", "8M", "--backing", "thp"],
            "shmem THP is off",
        );
    }
    // `never` included: the surface is collapsed with MADV_COLLAPSE, which
    // some kernels refuse under `never` (6.18 does); the error says so.
    for mode in ["never", "advise"] {
        let _mode = Knob::set(path, mode);
        if mode == "never" {
            let out = unimem(&["probe", "--size", "8M", "--backing", "thp", "--json"]);
            if !out.status.success() {
                let err = stderr(&out);
                assert!(
                    err.contains("MADV_COLLAPSE") && err.contains("'never'"),
                    "{err}"
                );
                continue;
            }
        }
        let held = HeldProbe::start(&["--size", "8M", "--backing", "thp"]);
        assert_eq!(held.json["verification"]["ok"], true);
        let (pid, va, len) = (held.pid(), held.va(), held.len());
        let rows = map_rows(pid, va, len, false);
        let thp_bytes: u64 = rows
            .iter()
            .filter(|r| r["flags"].as_array().unwrap().iter().any(|f| f == "thp"))
            .map(|r| r["length"].as_u64().unwrap())
            .sum();
        // MADV_COLLAPSE makes every aligned 2 MiB huge or fails the probe.
        assert!(
            thp_bytes >= 4 << 20,
            "shmem_enabled {mode}: only {thp_bytes} of {len} bytes are THP: {}",
            serde_json::Value::Array(rows)
        );
        let (reference, _) = stable(5, || reference_segments(pid, va, len), || ());
        assert!(
            reference.len() <= 16,
            "shmem_enabled {mode}: THP memory should be few large runs, got {}",
            reference.len()
        );
        held.release();
    }
}
