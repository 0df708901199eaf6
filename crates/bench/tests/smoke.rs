//! Keeps the benchmark from rotting: runs it on small buffers, fresh and
//! fragmented, and checks the JSON it prints (shape, every method present
//! in both conditions with a positive time and the buffer's segments, every
//! target evaluated or marked not measured). No timing thresholds: the
//! benchmark's targets are reported, never enforced.
#![cfg(target_os = "linux")]

use serde_json::Value;
use std::process::Command;

#[test]
fn small_run_prints_complete_json() {
    assert!(
        rustix::process::geteuid().is_root(),
        "the benchmark reads PFNs and pins memory: run the tests as root"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_unimem-bench"))
        .args([
            "--sizes",
            "64K,1M",
            "--reps",
            "1",
            "--hugetlb",
            "0",
            "--thp",
            "4M",
            "--json",
        ])
        .output()
        .expect("run unimem-bench");
    assert!(
        out.status.success(),
        "unimem-bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("one JSON document on stdout");
    let results = doc["results"].as_array().expect("results");
    let methods = [
        "limit",
        "direct",
        "per_page",
        "procfs",
        "service",
        "pin",
        "roundtrip",
        "memset",
        "fill",
        "readsum",
        "verify",
        "populate",
        "probe",
    ];
    for (size, condition) in [64u64 << 10, 1 << 20]
        .into_iter()
        .flat_map(|s| ["fresh", "fragmented"].map(|c| (s, c)))
    {
        for method in methods {
            let row = results
                .iter()
                .find(|r| {
                    r["method"] == method
                        && r["size"] == size
                        && r["backing"] == "memfd"
                        && r["condition"] == condition
                })
                .unwrap_or_else(|| panic!("no result for {method} at {size} {condition}"));
            assert!(
                row["segments"].as_u64().is_some_and(|v| v > 0),
                "{method} at {size} {condition}: segments {}",
                row["segments"]
            );
            assert!(
                row["segments_per_gib"].as_f64().is_some_and(|v| v > 0.0),
                "{method} at {size} {condition}: no segments per GiB"
            );
            for key in ["median_ns", "min_ns", "max_ns"] {
                assert!(
                    row[key].as_u64().is_some_and(|v| v > 0),
                    "{method} at {size} {condition}: {key} is {}",
                    row[key]
                );
            }
            assert!(row["min_ns"].as_u64() <= row["median_ns"].as_u64());
            assert!(row["median_ns"].as_u64() <= row["max_ns"].as_u64());
            assert!(
                row["ratio_to_limit"].as_f64().is_some_and(|v| v > 0.0),
                "{method} at {size} {condition}: no ratio to the limit"
            );
        }
    }
    // The THP row runs where the kernel collapses shmem, else says why not.
    let thp = results
        .iter()
        .any(|r| r["backing"] == "thp" && r["method"] == "direct");
    let skipped = doc["skipped"].as_array().expect("skipped");
    assert!(
        thp || skipped.iter().any(|k| k["what"] == "thp 4 MiB"),
        "no THP row and no reason: {skipped:?}"
    );
    let rss = doc["rss"].as_array().expect("rss");
    assert!(
        rss.iter()
            .any(|r| r["method"] == "direct" && r["size"] == 1u64 << 20),
        "no RSS measurement of direct at 1 MiB: {rss:?}"
    );
    let targets = doc["targets"].as_array().expect("targets");
    assert!(targets.len() >= 4, "targets: {targets:?}");
    for t in targets {
        assert!(
            ["PASS", "MISS", "NOT MEASURED"].contains(&t["status"].as_str().unwrap_or("")),
            "target status: {t}"
        );
    }
}
