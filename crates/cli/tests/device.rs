//! Device constraint verdicts from the real binary, checked against a
//! scatter-gather list the test builds itself, page by page, from its own
//! reading of pagemap.
#![cfg(target_os = "linux")]

mod common;

use common::*;

fn assert_usage_error(args: &[&str], needle: &str) {
    let out = unimem(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    let lines: Vec<&str> = err.trim_end().lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: one line expected: {err}");
    assert!(lines[0].starts_with("unimem: "), "{args:?}: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: expected {needle:?} in {err}"
    );
    assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
}

#[test]
fn bad_device_values_exit_2_with_one_line() {
    assert_usage_error(&["probe", "--dma-bits", "0"], "0 is not in 1..=64");
    assert_usage_error(&["probe", "--dma-bits", "65"], "65 is not in 1..=64");
    assert_usage_error(&["probe", "--dma-bits", "x"], "--dma-bits");
    assert_usage_error(
        &["probe", "--segment-boundary", "3K"],
        "is not a power of two",
    );
    assert_usage_error(&["probe", "--align", "12288"], "is not a power of two");
    assert_usage_error(&["probe", "--max-segment-size", "0"], "is 0");
    assert_usage_error(
        &["probe", "--max-segment-size", "512"],
        "smaller than the page size",
    );
    assert_usage_error(&["probe", "--max-segments", "0"], "--max-segments");
    assert_usage_error(
        &[
            "map",
            "--pid",
            "1",
            "--addr",
            "0x1000",
            "--len",
            "4K",
            "--segment-boundary",
            "100",
        ],
        "is not a power of two",
    );
}

/// The limits a test gives, as plain numbers.
struct Limits {
    bits: u32,
    max_size: u64,
    boundary: u64,
    max_segments: u64,
    align: u64,
}

/// What a driver's scatter-gather list would be, built page by page from
/// the reference runs: a new entry starts where the address run breaks,
/// at a multiple of the boundary, or when the entry is full.
struct Expected {
    entries: u64,
    over_mask: u64,
    unaligned: u64,
}

fn expected(runs: &[(u64, u64)], l: &Limits) -> Expected {
    let page = page_size();
    let mask = if l.bits == 64 {
        u64::MAX
    } else {
        (1u64 << l.bits) - 1
    };
    let mut list: Vec<(u64, u64)> = Vec::new();
    for &(addr, len) in runs {
        let mut first = true;
        for p in (0..len).step_by(page as usize) {
            let a = addr + p;
            let extend = match list.last() {
                Some(&(s, n)) => {
                    !first && a % l.boundary != 0 && n + page <= l.max_size && s + n == a
                }
                None => false,
            };
            if extend {
                list.last_mut().unwrap().1 += page;
            } else {
                list.push((a, page));
            }
            first = false;
        }
    }
    Expected {
        entries: list.len() as u64,
        over_mask: list.iter().filter(|(a, n)| a + n - 1 > mask).count() as u64,
        unaligned: list.iter().filter(|(a, _)| a % l.align != 0).count() as u64,
    }
}

fn check<'a>(json: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    json["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["constraint"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {json}"))
}

#[test]
fn probe_verdict_matches_a_list_built_from_pagemap() {
    require_root();
    let page = page_size();
    // Limits chosen so every rule does something on a scattered memfd:
    // 64 KiB entries, 32 KiB boundaries, a 33-bit mask (8 GiB, part of
    // this machine's memory), and 8 KiB alignment that single pages miss.
    let l = Limits {
        bits: 33,
        max_size: 64 * 1024,
        boundary: 32 * 1024,
        max_segments: 100,
        align: 2 * page,
    };
    let held = HeldProbe::start(&[
        "--size",
        "16M",
        "--dma-bits",
        "33",
        "--max-segment-size",
        "64K",
        "--segment-boundary",
        "32K",
        "--max-segments",
        "100",
        "--align",
        "8K",
    ]);
    // The probe pinned the pages, so the reference reading is the map.
    let runs = reference_segments(held.pid(), held.va(), held.len());
    assert_eq!(coalesce(held.segments()), runs);
    let e = expected(&runs, &l);
    let d = &held.json["device"];
    assert_eq!(d["entries"], e.entries, "{d}");
    assert_eq!(d["map_segments"], runs.len() as u64, "{d}");
    assert_eq!(check(d, "dma_bits")["violations"], e.over_mask, "{d}");
    assert_eq!(check(d, "align")["violations"], e.unaligned, "{d}");
    assert_eq!(
        check(d, "max_segments")["violations"],
        e.entries.saturating_sub(l.max_segments),
        "{d}"
    );
    // Splitting meets the size and boundary rules by construction.
    assert_eq!(check(d, "max_segment_size")["ok"], true);
    assert_eq!(check(d, "segment_boundary")["ok"], true);
    let ok = e.over_mask == 0 && e.unaligned == 0 && e.entries <= l.max_segments;
    assert_eq!(d["ok"], ok, "{d}");
    assert_eq!(held.json["verification"]["ok"], ok);
    // A violated constraint fails the probe like a failed verification.
    let status = held.release();
    assert_eq!(status.code(), Some(if ok { 0 } else { 1 }));
}

#[test]
fn map_verdict_and_exit_status_follow_the_limits() {
    require_root();
    let held = HeldProbe::start(&["--size", "4M"]);
    let runs = reference_segments(held.pid(), held.va(), held.len());
    let pid = held.pid().to_string();
    let va = format!("{:#x}", held.va());
    let base = ["map", "--pid", &pid, "--addr", &va, "--len", "4M"];

    // A 64-bit device taking as many entries as there are runs: met.
    let n = runs.len().to_string();
    let mut args = base.to_vec();
    args.extend(["--dma-bits", "64", "--max-segments", &n]);
    let out = unimem(&args);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        text.contains(&format!(
            "[+] Device constraints met: {} scatter-gather entries from {} address segments",
            runs.len(),
            runs.len()
        )),
        "{text}"
    );

    // With 64 KiB entries, one entry fewer than the list needs: violated,
    // exit 1, and the first entry past the limit is the list's last one.
    let l = Limits {
        bits: 64,
        max_size: 64 * 1024,
        boundary: 1 << 63,
        max_segments: u64::MAX,
        align: 1,
    };
    let e = expected(&runs, &l);
    assert!(e.entries >= 64, "4 MiB in 64 KiB entries");
    let fewer = (e.entries - 1).to_string();
    let mut args = base.to_vec();
    args.extend([
        "--max-segment-size",
        "64K",
        "--max-segments",
        &fewer,
        "--json",
    ]);
    let out = unimem(&args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = &json["device"];
    assert_eq!(d["entries"], e.entries, "{d}");
    let n = check(d, "max_segments");
    assert_eq!(n["violations"], 1, "{d}");
    let first = &n["first_violation"];
    let (last_addr, last_len) = *runs.last().unwrap();
    let tail = if last_len % (64 * 1024) == 0 {
        64 * 1024
    } else {
        last_len % (64 * 1024)
    };
    assert_eq!(first["address"], last_addr + last_len - tail, "{d}");
    assert_eq!(first["length"], tail, "{d}");
    assert_eq!(first["offset"], held.len() - tail, "{d}");
    drop(held);
}
