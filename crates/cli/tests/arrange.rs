//! `probe --backing hugetlb --arrange physical`: the huge pages remapped in
//! physical order still verify, match the test's own pagemap reading, and
//! never make more runs than the file order did.
//!
//! Reserves huge pages: holds the project's mm lock file and puts
//! `nr_hugepages` back on drop.
#![cfg(target_os = "linux")]

mod common;

use common::*;

const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

#[test]
fn arranged_huge_pages_verify_and_coalesce_at_least_as_well() {
    require_root();
    let _lock = unimem_testkit::mm_lock();
    let n: u64 = unimem_testkit::Knob::current(NR_HUGEPAGES.as_ref())
        .parse()
        .unwrap();
    let _pool = unimem_testkit::Knob::set(NR_HUGEPAGES, &(n + 40).to_string());

    let held = HeldProbe::start(&[
        "--size",
        "64M",
        "--backing",
        "hugetlb",
        "--arrange",
        "physical",
    ]);
    let json = &held.json;
    assert_eq!(json["verification"]["ok"], true, "{json}");
    let a = &json["arrangement"];
    assert_eq!(a["huge_pages"], 32, "{a}");
    let (before, after) = (
        a["runs_before"].as_u64().unwrap(),
        a["runs_after"].as_u64().unwrap(),
    );
    assert!(after <= before, "{a}");
    assert!(
        a["largest_run_after"].as_u64() >= a["largest_run_before"].as_u64(),
        "{a}"
    );
    // The map is the test's own reading of the arranged range, its runs
    // are the arrangement's, and their addresses ascend.
    let runs = reference_segments(held.pid(), held.va(), held.len());
    assert_eq!(coalesce(held.segments()), runs);
    assert_eq!(runs.len() as u64, after);
    assert!(runs.windows(2).all(|w| w[0].0 < w[1].0), "{runs:x?}");
    // The bytes, read through /proc/PID/mem, are the page-indexed pattern
    // in buffer order: word at offset o is ((o / page) << 32 | o % page) ^ salt.
    let salt = json["surface"]["pattern_salt"].as_u64().unwrap();
    let page = json["page_size"].as_u64().unwrap();
    let mem = std::fs::File::open(format!("/proc/{}/mem", held.pid())).unwrap();
    let mut bytes = vec![0u8; held.len() as usize];
    std::os::unix::fs::FileExt::read_exact_at(&mem, &mut bytes, held.va()).unwrap();
    for (i, w) in bytes.chunks_exact(8).enumerate() {
        let o = i as u64 * 8;
        let want = ((o / page) << 32 | (o % page)) ^ salt;
        assert_eq!(
            u64::from_le_bytes(w.try_into().unwrap()),
            want,
            "word at {o:#x}"
        );
    }
    assert_eq!(held.release().code(), Some(0));

    // Only hugetlb surfaces can be arranged.
    let out = unimem(&["probe", "--arrange", "physical"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("needs --backing hugetlb"),
        "{}",
        stderr(&out)
    );
}
