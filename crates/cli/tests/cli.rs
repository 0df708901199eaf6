//! The real `unimem` binary, end to end, checked against independent
//! readings of pagemap made by the test itself.

mod common;

use common::*;
use std::process::Command;

// Tests that change /proc/sys/vm/nr_hugepages or THP modes take the
// workspace's one memory-management lock and put back what they change.
use unimem_testkit::{mm_lock, Knob};

const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

/// Free pages in the 2 MiB hugetlb pool.
fn free_huge_pages() -> u64 {
    let t = std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
        .unwrap();
    t.trim().parse().unwrap()
}

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

#[test]
fn unprivileged_direct_probe_is_permission_denied() {
    require_root();
    let out = as_nobody(&["probe", "--via", "direct"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.trim_end()
            .lines()
            .last()
            .unwrap_or("")
            .starts_with("unimem: "),
        "{err}"
    );
    assert!(err.contains("CAP_SYS_ADMIN"), "{err}");
    assert!(
        !stdout(&out).contains("0x0000000000000"),
        "a map of zeros was printed"
    );
    assert!(
        !stdout(&out).contains("Phys Addr"),
        "no table may be printed: {}",
        stdout(&out)
    );
}

fn assert_error(args: &[&str], needle: &str) {
    let out = unimem(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(
        err.trim_end()
            .lines()
            .last()
            .unwrap_or("")
            .starts_with("unimem: "),
        "{args:?}: {err}"
    );
    assert_eq!(
        err.trim_end()
            .lines()
            .filter(|l| l.starts_with("unimem:"))
            .count(),
        1,
        "{args:?}: {err}"
    );
    assert!(
        err.contains(needle),
        "{args:?}: expected {needle:?} in {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        stdout(&out).is_empty(),
        "{args:?}: nothing belongs on stdout: {}",
        stdout(&out)
    );
}

#[test]
fn bad_input_is_a_clear_error_with_status_2() {
    assert_error(&["probe", "--size", "0"], "is 0");
    assert_error(&["probe", "--size", "abc"], "invalid size 'abc'");
    assert_error(&["probe", "--size", "64P"], "invalid size '64P'");
    assert_error(
        &["probe", "--size", "99999999999999999999"],
        "does not fit 64 bits",
    );
    assert_error(&["probe", "--size", "1T"], "exceeds");
    assert_error(
        &["probe", "--backing", "ramdisk"],
        "invalid value 'ramdisk'",
    );
    assert_error(
        &["map", "--pid", "1", "--addr", "0x1000", "--len", "0"],
        "is 0",
    );
    assert_error(
        &["map", "--pid", "1", "--addr", "zz", "--len", "4K"],
        "invalid address 'zz'",
    );
    assert_error(&["frobnicate"], "unrecognized subcommand");
}

#[test]
fn map_errors_for_exited_unmapped_and_unaligned() {
    require_root();
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    assert_error(
        &[
            "map",
            "--pid",
            &pid.to_string(),
            "--addr",
            "0x7f0000000000",
            "--len",
            "4K",
        ],
        "does not exist",
    );
    let me = std::process::id().to_string();
    assert_error(
        &["map", "--pid", &me, "--addr", "0x1000", "--len", "4K"],
        "no mapping of process",
    );
    assert_error(
        &[
            "map",
            "--pid",
            &me,
            "--addr",
            "0x7f0000000001",
            "--len",
            "4K",
        ],
        "not aligned",
    );
    assert_error(
        &[
            "map",
            "--pid",
            &me,
            "--addr",
            "0x7f0000000000",
            "--len",
            "4097",
        ],
        "not a multiple",
    );
    assert_error(
        &[
            "map",
            "--pid",
            &me,
            "--addr",
            "0xfffffffffffff000",
            "--len",
            "8K",
        ],
        "wraps",
    );
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

/// `unimem serve` as a child process on a private socket; killed on drop.
struct Served {
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl Served {
    fn start(extra: &[&str]) -> Served {
        Self::start_under(&[], extra)
    }

    /// `unimem serve` run by `wrapper` (e.g. `unshare ...`), if not empty.
    fn start_under(wrapper: &[&str], extra: &[&str]) -> Served {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("unimem-cli-serve-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let sock = dir.join("unimem.sock");
        let bin = bin();
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        let child = cmd
            .args(["serve", "--socket", sock.to_str().unwrap()])
            .args(extra)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // From here the child is owned by `Served`, whose drop reaps it.
        let served = Served { child, dir };
        for _ in 0..200 {
            if sock.exists() {
                return served;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("unimem serve did not create {}", sock.display());
    }

    fn socket(&self) -> String {
        self.dir.join("unimem.sock").to_str().unwrap().to_string()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn unprivileged_probe_through_the_real_service_gets_pinned_addresses() {
    require_root();
    let served = Served::start(&["--allow-uid", "65534"]);
    let held = HeldProbe::start_as(
        65534,
        &[
            "--via",
            "service",
            "--socket",
            &served.socket(),
            "--size",
            "16M",
        ],
    );
    let j = &held.json;
    assert_eq!(j["resolver"]["name"], "service");
    assert_eq!(j["resolver"]["pinned"], true);
    assert_eq!(j["verification"]["ok"], true, "{j}");
    assert!(
        !j["verification"]["checksums"]
            .as_array()
            .unwrap()
            .is_empty(),
        "no resolver checksum was verified"
    );
    // Pinned: the addresses cannot have moved, so one reading must match.
    assert_eq!(
        held.segments(),
        reference_segments(held.pid(), held.va(), held.len())
    );
    assert_eq!(held.release().code(), Some(0));
}

#[test]
fn auto_without_pfns_or_service_explains_both_ways() {
    require_root();
    let out = as_nobody(&["probe", "--socket", "/nonexistent/unimem.sock"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("run as root") && err.contains("unimem serve"),
        "{err}"
    );
    assert!(stdout(&out).is_empty());
}

#[test]
fn a_uid_the_service_does_not_admit_is_refused() {
    require_root();
    let served = Served::start(&["--allow-uid", "4242"]);
    let out = as_nobody(&["probe", "--via", "service", "--socket", &served.socket()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.to_lowercase().contains("permission denied") || err.contains("not admitted"),
        "{err}"
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
        let out = unimem(&[
            "map",
            "--pid",
            &pid.to_string(),
            "--addr",
            &format!("{va:#x}"),
            "--len",
            &len.to_string(),
            "--json",
        ]);
        let j: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", stderr(&out)));
        let thp_bytes: u64 = j["segments"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["flags"].as_array().unwrap().iter().any(|f| f == "thp"))
            .map(|r| r["length"].as_u64().unwrap())
            .sum();
        // MADV_COLLAPSE makes every aligned 2 MiB huge or fails the probe.
        assert!(
            thp_bytes >= 4 << 20,
            "shmem_enabled {mode}: only {thp_bytes} of {len} bytes are THP: {j}"
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

#[test]
fn serve_refuses_an_open_file_limit_too_small_for_its_limits() {
    require_root();
    let dir = std::env::temp_dir().join(format!("unimem-cli-nofile-{}", std::process::id()));
    let sock = dir.join("s.sock");
    let out = Command::new("prlimit")
        .args(["--nofile=256:256", "--"])
        .arg(bin())
        .args(["serve", "--socket", sock.to_str().unwrap()])
        .output()
        .expect("prlimit (util-linux) runs");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("open-file limit is 256"), "{err}");
    assert!(!sock.exists(), "a refused service left its socket behind");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_client_the_service_cannot_see_by_pid_is_still_served() {
    require_root();
    // In a pid namespace of its own, the service sees its clients' pid as 0
    // (SO_PEERCRED): admission must rest on uid/gid alone, and nothing may
    // assume a non-zero pid.
    let served = Served::start_under(&["unshare", "--pid", "--fork", "--kill-child"], &[]);
    let out = unimem(&[
        "probe",
        "--via",
        "service",
        "--socket",
        &served.socket(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["resolver"]["name"], "service");
    assert_eq!(j["verification"]["ok"], true);
}

/// The kpageflags word of every page of `[va, va + len)` in `pid`, read by
/// the test itself: pagemap bits 0-54 give the PFN, kpageflags is indexed
/// by PFN.
fn captured_words(pid: u32, va: u64, len: u64) -> Vec<u64> {
    use std::os::unix::fs::FileExt;
    let pagemap = std::fs::File::open(format!("/proc/{pid}/pagemap")).unwrap();
    let kpageflags = std::fs::File::open("/proc/kpageflags").unwrap();
    (0..len / 4096)
        .map(|i| {
            let mut e = [0u8; 8];
            pagemap.read_exact_at(&mut e, (va / 4096 + i) * 8).unwrap();
            let pfn = u64::from_le_bytes(e) & ((1 << 55) - 1);
            kpageflags.read_exact_at(&mut e, pfn * 8).unwrap();
            u64::from_le_bytes(e)
        })
        .collect()
}

fn map_rows(pid: u32, va: u64, len: u64, raw: bool) -> Vec<serde_json::Value> {
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

/// Issue 12: a whole huge page is one row that says `huge` or `thp`, never
/// `compound_head`; its flags are what every page has; `--raw` shows head
/// and tails apart, as read.
#[test]
fn map_rows_fold_whole_huge_pages_and_match_captured_words() {
    const HEAD: u64 = 1 << 15;
    const TAIL: u64 = 1 << 16;
    require_root();
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
            let first = (row["virtual_address"].as_u64().unwrap() - va) / 4096;
            let pages = row["length"].as_u64().unwrap() / 4096;
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
                    pages % 512,
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
            let at = va + i as u64 * 4096;
            assert!(
                folded.iter().any(|r| {
                    let s = r["virtual_address"].as_u64().unwrap();
                    s <= at && at + (2 << 20) <= s + r["length"].as_u64().unwrap()
                }),
                "{backing}: the huge page at {at:#x} ({w:#x}) is split across rows"
            );
        }
        // Raw rows carry the words as read, head apart from its tails.
        for row in &raw {
            let first = (row["virtual_address"].as_u64().unwrap() - va) / 4096;
            let pages = row["length"].as_u64().unwrap() / 4096;
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
