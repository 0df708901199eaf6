//! NUMA nodes per segment, against the machine's own node list and the
//! test's own pagemap reading.
#![cfg(target_os = "linux")]

mod common;

use common::*;

/// Node numbers listed in /sys/devices/system/node/online.
fn online_nodes() -> Vec<u64> {
    let text = std::fs::read_to_string("/sys/devices/system/node/online")
        .expect("this kernel lists its NUMA nodes (/sys/devices/system/node/online)");
    let mut out = Vec::new();
    for part in text.trim().split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        out.extend(a.parse::<u64>().unwrap()..=b.parse::<u64>().unwrap());
    }
    out
}

#[test]
fn probe_and_map_give_every_segment_an_online_node() {
    require_root();
    let online = online_nodes();
    let held = HeldProbe::start(&["--size", "8M"]);
    let runs = reference_segments(held.pid(), held.va(), held.len());
    for json in [
        held.json.clone(),
        serde_json::from_slice(
            &unimem(&[
                "map",
                "--pid",
                &held.pid().to_string(),
                "--addr",
                &format!("{:#x}", held.va()),
                "--len",
                "8M",
                "--json",
            ])
            .stdout,
        )
        .unwrap(),
    ] {
        let numa = &json["numa"];
        let nodes = numa["nodes"].as_array().expect("numa.nodes");
        // With one known node, segments are left out: every address
        // segment is on it. Otherwise each piece carries its node.
        let segs: Vec<serde_json::Value> = match numa.get("segments") {
            Some(s) => s.as_array().unwrap().clone(),
            None => {
                assert_eq!(nodes.len(), 1, "{numa}");
                let node = &nodes[0]["node"];
                assert!(node.is_u64(), "{numa}");
                json["segments"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|s| !s["address"].is_null())
                    .map(|s| {
                        let mut s = s.clone();
                        s["node"] = node.clone();
                        s
                    })
                    .collect()
            }
        };
        // The pieces cover the same addresses as the reference, in order.
        let pieces = coalesce(segs.iter().map(|s| {
            (
                s["address"].as_u64().unwrap(),
                s["length"].as_u64().unwrap(),
            )
        }));
        assert_eq!(pieces, runs);
        for s in &segs {
            let node = s["node"].as_u64().unwrap_or_else(|| panic!("{s}"));
            assert!(online.contains(&node), "node {node} not online: {s}");
        }
        // Consecutive pieces of one address run differ in node.
        for w in segs.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            if a["address"].as_u64().unwrap() + a["length"].as_u64().unwrap()
                == b["address"].as_u64().unwrap()
                && a["offset"].as_u64().unwrap() + a["length"].as_u64().unwrap()
                    == b["offset"].as_u64().unwrap()
            {
                assert_ne!(a["node"], b["node"], "{a} {b}");
            }
        }
        let total: u64 = numa["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["bytes"].as_u64().unwrap())
            .sum();
        assert_eq!(total, 8 << 20);
        if online.len() == 1 {
            assert_eq!(numa["nodes"].as_array().unwrap().len(), 1);
            assert_eq!(numa["nodes"][0]["node"], online[0]);
        }
    }
    // The table shows nodes only when the buffer spans more than one.
    let text = stdout(&unimem(&["probe", "--size", "1M"]));
    if online.len() == 1 {
        assert!(!text.contains("NUMA nodes:"), "{text}");
    }
    drop(held);
}
