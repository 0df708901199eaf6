//! Keeps the benchmark from rotting: runs it on small buffers and checks the
//! JSON it prints (shape, every method present with a positive time, every
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
    for size in [64u64 << 10, 1 << 20] {
        for method in ["limit", "direct", "per_page", "procfs", "service", "pin"] {
            let row = results
                .iter()
                .find(|r| r["method"] == method && r["size"] == size && r["backing"] == "memfd")
                .unwrap_or_else(|| panic!("no result for {method} at {size}"));
            for key in ["median_ns", "min_ns", "max_ns"] {
                assert!(
                    row[key].as_u64().is_some_and(|v| v > 0),
                    "{method} at {size}: {key} is {}",
                    row[key]
                );
            }
            assert!(row["min_ns"].as_u64() <= row["median_ns"].as_u64());
            assert!(row["median_ns"].as_u64() <= row["max_ns"].as_u64());
            assert!(
                row["ratio_to_limit"].as_f64().is_some_and(|v| v > 0.0),
                "{method} at {size}: no ratio to the limit"
            );
        }
    }
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
